//! notify's rules file and templates, fed from arbitrary bytes. The first byte picks the mode:
//!
//! - even: the rest is a rules file (TOML, split from an event body at the first NUL). Parsing
//!   refuses or accepts; every rule that matches the parsed event renders or refuses; a
//!   rendered subject is always one line of printable ASCII within SNS's 100 characters and a
//!   body is never empty nor holds a PHI value of the event.
//! - odd: the rest is a subject and a body template (split at the first newline) in a rule
//!   that allow-lists `detail-type` and one payload field. Rendering one event and the same
//!   event with every other field changed (the patient's name, birth date, MRN) must give the
//!   same text (unless the PHI check refuses one: a literal name in the template): a template
//!   sees only what the allow-list lets through.
#![no_main]

use fleet_notify_rules::event;
use fleet_notify_rules::rules::{MAX_SUBJECT_CHARS, RenderError, Rendered, Rules};
use libfuzzer_sys::fuzz_target;
use serde_json::{Value, json};

fn admitted(family: &str, birth: &str, mrn: &str) -> Value {
    json!({"id": "eb-1", "source": "fleet.hl7-ingest", "detail-type": "PatientAdmitted",
        "detail": {"event_id": "ev-1", "payload": {
            "patient": {"identifiers": [{"id": mrn, "authority": "GEN", "id_type": "MR"}],
                "name": {"family": family, "given": "Adaeze"}, "birth_date": birth},
            "visit": {"location": {"point_of_care": "4EAST"}}}}})
}

fn check(r: &Rendered) {
    if let Some(s) = &r.subject {
        assert!(!s.is_empty() && s.chars().count() <= MAX_SUBJECT_CHARS);
        assert!(s.is_ascii() && !s.chars().any(char::is_control));
    }
    assert!(!r.body.is_empty());
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let text = String::from_utf8_lossy(rest);
    if mode % 2 == 0 {
        let (file, body) = text.split_once('\0').unwrap_or((&text, ""));
        let Ok(rules) = Rules::parse(file) else {
            return;
        };
        let value = match event::parse(body) {
            Ok(ev) => ev.value,
            Err(_) => admitted("Okonkwo", "1961-04-12", "MRN12345"),
        };
        let phi = event::phi_values(&value);
        for rule in rules.matching(&value) {
            if let Ok(r) = rules.render(rule, &value) {
                check(&r);
                assert!(
                    !event::leaks(&r.body, &phi),
                    "a rendered body holds a PHI value"
                );
            }
        }
    } else {
        let (subject, body) = text.split_once('\n').unwrap_or(("", &text));
        let mut file = String::from(
            "[[rule]]\nname = \"fuzz\"\ndestination = \"sms:+15555550123\"\n\
             pattern = { source = [\"fleet.hl7-ingest\"] }\n\
             fields = [\"detail-type\", \"detail.payload.visit.location.point_of_care\"]\n",
        );
        // A JSON string literal is a valid TOML basic string.
        if !subject.is_empty() {
            file.push_str(&format!(
                "subject = {}\n",
                serde_json::to_string(subject).unwrap()
            ));
        }
        file.push_str(&format!(
            "body = {}\n",
            serde_json::to_string(body).unwrap()
        ));
        let Ok(rules) = Rules::parse(&file) else {
            return;
        };
        let rule = &rules.rules[0];
        let one = rules.render(rule, &admitted("Okonkwo", "1961-04-12", "MRN12345"));
        let other = rules.render(rule, &admitted("Quillfeather", "1933-11-02", "MRN99999"));
        match (&one, &other) {
            (Ok(a), Ok(b)) => {
                check(a);
                assert_eq!(a, b, "a template saw a field outside the allow-list");
            }
            (Err(_), Err(_)) => {}
            // The text holds a PHI value of one event only (a literal name in the template).
            (Err(RenderError::PhiInText(_)), Ok(_)) | (Ok(_), Err(RenderError::PhiInText(_))) => {}
            _ => panic!("one event rendered and the other did not: {one:?} / {other:?}"),
        }
    }
});
