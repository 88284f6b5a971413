//! The notification PHI check (issue 16 item 6): a template and an event from arbitrary bytes;
//! whatever `Rules::render` lets through must not contain any normalised PHI value of the
//! event. The oracle is independent of the check's own value collection and matching: every
//! PHI field's raw value (and each spelling of the birth date), normalised, must not be a
//! substring of the normalised subject or body (values of 3 or more normalised characters;
//! two-letter values are matched on word boundaries by the check and not asserted here).
//!
//! Input: byte 0 picks the allow-listed PHI field (low 3 bits; 5-7: none), whether the
//! template goes into the subject (bit 3), and the template mode (bit 4). Byte 1..4 make the
//! birth date. The rest, split at NUL: family, given, MRN, street, point of care, template.
//! Template mode 0: the template is a chain of filters chosen by its bytes over a field;
//! mode 1: the bytes are the template (expressions only: no blocks, loops, `*` or `range`,
//! so rendering stays bounded).
#![no_main]

use fleet_notify_rules::phi::{date_spellings, normalise};
use fleet_notify_rules::rules::{RenderError, Rules};
use libfuzzer_sys::fuzz_target;
use serde_json::json;

const FIELDS: &[(&str, &str)] = &[
    (
        "detail.payload.patient.name.family",
        "event.detail.payload.patient.name.family",
    ),
    (
        "detail.payload.patient.name.given",
        "event.detail.payload.patient.name.given",
    ),
    (
        "detail.payload.patient.birth_date",
        "event.detail.payload.patient.birth_date",
    ),
    (
        "detail.payload.patient.address.street",
        "event.detail.payload.patient.address.street",
    ),
    (
        "detail.payload.patient.identifiers",
        "event.detail.payload.patient.identifiers[0].id",
    ),
];
const POC: &str = "event.detail.payload.visit.location.point_of_care";

const FILTERS: &[&str] = &[
    "upper",
    "lower",
    "title",
    "capitalize",
    "trim",
    "reverse",
    "list|join(' ')",
    "list|join('')",
    "list|reverse|join('-')",
    "replace('a', 'a.')",
    "replace('e', '3')",
    "replace(' ', '')",
    "string",
    "escape",
    "pprint",
    "length",
    "first",
    "last",
    "indent(2)",
    "split|join('_')",
    "list|sort|join",
    "list|unique|join",
    "default('x')",
    "int",
    "lower|replace('o', '0')",
];

fn text(bytes: &[u8], max: usize) -> String {
    String::from_utf8_lossy(&bytes[..bytes.len().min(max)]).into_owned()
}

fuzz_target!(|data: &[u8]| {
    if data.len() < 5 {
        return;
    }
    let sel = data[0];
    let birth = format!(
        "{:04}-{:02}-{:02}",
        1900 + u32::from(data[1]) % 125,
        1 + data[2] % 12,
        1 + data[3] % 28
    );
    let mut parts = data[4..].splitn(6, |&b| b == 0);
    let mut next = |max| text(parts.next().unwrap_or(b"Okonkwo"), max);
    let (family, given, mrn, street, poc) = (next(40), next(40), next(24), next(60), next(24));
    let raw_template = next(512);

    let field = usize::from(sel & 7);
    let field = FIELDS.get(field);
    let mut template = String::new();
    if sel & 16 == 0 {
        // A chain of filters over the PHI field (or the point of care), with literal text.
        let expr = field.map_or(POC, |f| f.1);
        let mut e = format!("({expr})");
        for b in raw_template.bytes().take(6) {
            e = format!("({e}|{})", FILTERS[usize::from(b) % FILTERS.len()]);
        }
        template = format!("Note: {{{{ {e} }}}} on {{{{ {POC} }}}}.");
    } else {
        let t = &raw_template;
        if t.contains("{%") || t.contains('*') || t.contains("range") || t.contains("{#") {
            return;
        }
        template.push_str(t);
    }
    let mut fields = vec![
        "detail-type".to_string(),
        "detail.payload.visit.location.point_of_care".to_string(),
    ];
    if let Some((path, _)) = field {
        fields.push((*path).to_string());
    }
    let mut file = String::from(
        "[[rule]]\nname = \"fuzz\"\ndestination = \"sms:+15555550123\"\n\
         pattern = { source = [\"fleet.hl7-ingest\"] }\n",
    );
    file.push_str(&format!(
        "fields = {}\n",
        serde_json::to_string(&fields).unwrap()
    ));
    let (subject, body) = if sel & 8 != 0 {
        (Some(template.as_str()), "A visit.")
    } else {
        (None, template.as_str())
    };
    if let Some(s) = subject {
        file.push_str(&format!(
            "subject = {}\n",
            serde_json::to_string(s).unwrap()
        ));
    }
    file.push_str(&format!(
        "body = {}\n",
        serde_json::to_string(body).unwrap()
    ));
    let Ok(rules) = Rules::parse(&file) else {
        return;
    };
    let event = json!({"id": "eb-1", "source": "fleet.hl7-ingest", "detail-type": "PatientAdmitted",
        "detail": {"event_id": "ev-1", "payload": {
            "patient": {
                "identifiers": [{"id": mrn, "authority": "GEN", "id_type": "MR"}],
                "name": {"family": family, "given": given},
                "birth_date": birth,
                "address": {"street": street, "city": "Springfield", "state": "IL"}},
            "visit": {"location": {"point_of_care": poc}}}}});

    let rendered = match rules.render(&rules.rules[0], &event) {
        Ok(r) => r,
        Err(RenderError::PhiInText(_) | RenderError::Template(_)) => return,
    };
    let sent = [
        normalise(rendered.subject.as_deref().unwrap_or("")),
        normalise(&rendered.body),
    ];
    let mut values = vec![
        family.clone(),
        given.clone(),
        mrn.clone(),
        street.clone(),
        birth.clone(),
    ];
    values.extend(date_spellings(&birth));
    values.push("Springfield".to_string());
    for v in &values {
        let n = normalise(v);
        if n.chars().count() < 3 {
            continue;
        }
        for s in &sent {
            assert!(
                !s.contains(&n),
                "a PHI value reached the text: template {template:?}, value {v:?}, text {s:?}"
            );
        }
    }
});
