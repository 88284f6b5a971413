//! Issue 16 item 6: the PHI check runs on what is sent. One test per bypass; each renders a
//! text that carries a PHI value of the event past the old check and must now be refused.

use serde_json::json;

use crate::{admitted, raw, rules, sent, text_leaks};

const FAMILY: &str = "detail.payload.patient.name.family";
const GIVEN: &str = "detail.payload.patient.name.given";
const STREET: &str = "detail.payload.patient.address.street";
const BIRTH: &str = "detail.payload.patient.birth_date";
const SET: &str = "{% set p = event.detail.payload.patient %}";

#[test]
fn item6_a_subject_with_collapsed_whitespace_is_checked_as_sent() {
    // The street as the feed sent it (two spaces); the subject's whitespace is collapsed to
    // one before sending, so the text sent is "12 Harbour Lane".
    let ev = admitted(json!({"address": {"street": "12  Harbour  Lane", "city": "Springfield"}}));
    let subject = format!("{SET}Visit from {{{{ p.address.street }}}}");
    let r = rules(&[STREET], Some(&subject), "A visit.");
    assert_eq!(sent(&r, &ev), None);
    let collapsed = raw(&[STREET], &subject, &ev)
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ");
    assert!(text_leaks(&collapsed, &ev), "{collapsed}");
}

#[test]
fn item6_a_subject_cut_to_100_characters_is_checked_before_the_cut() {
    // The family name straddles the 100th character: the subject sent ends "... Quill".
    let pad = "x".repeat(94);
    let subject = format!("{SET}{pad} {{{{ p.name.family }}}}");
    let r = rules(&[FAMILY], Some(&subject), "A visit.");
    assert_eq!(sent(&r, &admitted(json!({}))), None);
    assert!(text_leaks(
        &raw(&[FAMILY], &subject, &admitted(json!({}))),
        &admitted(json!({}))
    ));
}

#[test]
fn item6_upper_case_of_sharp_s_is_folded() {
    // "Weiß"|upper is "WEISS": ASCII, so it passes the subject's ASCII rule too.
    let ev = admitted(json!({"name": {"family": "Weiß", "given": "Adaeze"}}));
    let t = format!("{SET}Patient {{{{ p.name.family|upper }}}}");
    assert_eq!(sent(&rules(&[FAMILY], Some(&t), "x"), &ev), None);
    assert_eq!(sent(&rules(&[FAMILY], None, &t), &ev), None);
    assert!(text_leaks(&raw(&[FAMILY], &t, &ev), &ev));
}

#[test]
fn item6_join_of_the_letters_is_refused() {
    let t = format!("{SET}Patient {{{{ p.name.family|list|join(' ') }}}}");
    let ev = admitted(json!({}));
    assert_eq!(sent(&rules(&[FAMILY], None, &t), &ev), None);
    assert!(text_leaks(&raw(&[FAMILY], &t, &ev), &ev));
}

#[test]
fn item6_replace_inserting_separators_is_refused() {
    let t = format!("{SET}Patient {{{{ p.name.family|replace('e', 'e-') }}}}");
    let ev = admitted(json!({}));
    assert_eq!(sent(&rules(&[FAMILY], None, &t), &ev), None);
    assert!(text_leaks(&raw(&[FAMILY], &t, &ev), &ev));
}

#[test]
fn item6_reverse_is_refused() {
    let t = format!("{SET}Patient {{{{ p.name.family|reverse }}}}");
    let ev = admitted(json!({}));
    assert_eq!(sent(&rules(&[FAMILY], None, &t), &ev), None);
    assert!(text_leaks(&raw(&[FAMILY], &t, &ev), &ev));
}

#[test]
fn item6_slices_put_back_together_are_refused() {
    let t = format!("{SET}Patient {{{{ p.name.family[:5] }}}}~{{{{ p.name.family[5:] }}}}");
    let ev = admitted(json!({}));
    assert_eq!(sent(&rules(&[FAMILY], None, &t), &ev), None);
    assert!(text_leaks(&raw(&[FAMILY], &t, &ev), &ev));
    // A part of the name alone: no text check can know it, the allow-list check does.
    let r = rules(
        &[FAMILY],
        None,
        &format!("{SET}Patient {{{{ p.name.family[:5] }}}}"),
    );
    assert_eq!(sent(&r, &admitted(json!({}))), None);
}

#[test]
fn item6_birth_dates_in_other_spellings_are_refused() {
    let months = r#"{"01":"January","02":"February","03":"March","04":"April"}"#;
    for (spelling, template) in [
        ("03/04/1961", "{{ b[5:7] }}/{{ b[8:10] }}/{{ b[:4] }}"),
        ("04/03/1961", "{{ b[8:10] }}/{{ b[5:7] }}/{{ b[:4] }}"),
        ("4.3.1961", "{{ b[8:10]|int }}.{{ b[5:7]|int }}.{{ b[:4] }}"),
        (
            "March 4, 1961",
            "{{ m[b[5:7]] }} {{ b[8:10]|int }}, {{ b[:4] }}",
        ),
        (
            "4 March 1961",
            "{{ b[8:10]|int }} {{ m[b[5:7]] }} {{ b[:4] }}",
        ),
        ("19610304", "{{ b|replace('-', '') }}"),
    ] {
        let body = format!(
            "{{% set b = event.detail.payload.patient.birth_date %}}\
             {{% set m = {months} %}}Born {template}."
        );
        let ev = admitted(json!({}));
        assert_eq!(sent(&rules(&[BIRTH], None, &body), &ev), None, "{spelling}");
        let text = raw(&[BIRTH], &body, &ev);
        assert!(text.contains(spelling), "{text}");
        assert!(text_leaks(&text, &ev), "{spelling}");
    }
    // The feed's own spelling (HL7 YYYYMMDD) in the event, ISO in the text.
    let ev = admitted(json!({"birth_date": "19610304"}));
    let t = "{% set b = event.detail.payload.patient.birth_date %}Born {{ b[:4] }}-{{ b[4:6] }}-{{ b[6:] }}.";
    assert_eq!(
        sent(&rules(&[BIRTH], None, t), &ev),
        None,
        "ISO from YYYYMMDD"
    );
    assert!(text_leaks(&raw(&[BIRTH], t, &ev), &ev));
}

#[test]
fn item6_a_two_letter_name_is_checked() {
    let ev = admitted(json!({"name": {"family": "Quillfeather", "given": "Li"}}));
    let t = format!("{SET}Patient {{{{ p.name.given }}}} admitted.");
    assert_eq!(sent(&rules(&[GIVEN], None, &t), &ev), None);
    assert!(text_leaks(&raw(&[GIVEN], &t, &ev), &ev));
}

#[test]
fn texts_without_phi_are_still_sent() {
    let r = rules(
        &["detail.payload.visit.location.point_of_care", "detail-type"],
        Some("Admission to {{ event.detail.payload.visit.location.point_of_care }}"),
        "A patient was admitted to {{ event.detail.payload.visit.location.point_of_care }} in March.",
    );
    let ev = admitted(json!({"name": {"family": "Quillfeather", "given": "Li"}}));
    assert_eq!(
        sent(&r, &ev),
        Some((
            Some("Admission to 4EAST".to_string()),
            "A patient was admitted to 4EAST in March.".to_string()
        ))
    );
}
