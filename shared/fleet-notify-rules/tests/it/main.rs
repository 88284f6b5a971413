//! fleet-notify-rules: the PHI check against the bypasses of issue 16 item 6, and its
//! properties.

mod item6;
mod properties;

use fleet_notify_rules::event;
use fleet_notify_rules::rules::Rules;
use serde_json::{Value, json};

/// An admission of a synthetic patient; `patient` fields replace the defaults.
pub fn admitted(patient: Value) -> Value {
    let mut p = json!({
        "identifiers": [{"id": "MRN5550001", "authority": "GENHOSP", "id_type": "MR"}],
        "name": {"family": "Quillfeather", "given": "Adaeze"},
        "birth_date": "1961-03-04",
        "address": {"street": "12 Harbour Lane", "city": "Springfield", "state": "IL"}
    });
    for (k, v) in patient.as_object().unwrap() {
        p[k] = v.clone();
    }
    json!({"id": "eb-1", "source": "fleet.hl7-ingest", "detail-type": "PatientAdmitted",
        "detail": {"event_id": "ev-1", "payload": {"patient": p,
            "visit": {"location": {"point_of_care": "4EAST"}}}}})
}

/// One rule over `fields` with these templates (TOML basic strings through JSON escaping).
pub fn rules(fields: &[&str], subject: Option<&str>, body: &str) -> Rules {
    let mut file = String::from(
        "[[rule]]\nname = \"r\"\ndestination = \"sms:+15555550123\"\n\
         pattern = { source = [\"fleet.hl7-ingest\"] }\n",
    );
    file.push_str(&format!(
        "fields = {}\n",
        serde_json::to_string(fields).unwrap()
    ));
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
    Rules::parse(&file).unwrap()
}

/// What the worker would publish for `event`: `None` when the rendering was refused for PHI
/// or the check of the rendered text found a PHI value (the handler's two refusals). A
/// template error fails the test: these templates are valid.
pub fn sent(rules: &Rules, event: &Value) -> Option<(Option<String>, String)> {
    let phi = event::phi_values(event);
    match rules.render(&rules.rules[0], event) {
        Err(e) => {
            let what = format!("{e:?}");
            assert!(what.starts_with("PhiInText"), "not a PHI refusal: {what}");
            None
        }
        Ok(r) => {
            let leaked = event::leaks(r.subject.as_deref().unwrap_or(""), &phi)
                || event::leaks(&r.body, &phi);
            (!leaked).then_some((r.subject, r.body))
        }
    }
}

/// The text `template` renders from the allow-listed `fields` of `event`, without the
/// worker's checks (what the check of the text alone must catch).
pub fn raw(fields: &[&str], template: &str, event: &Value) -> String {
    let fields: Vec<Vec<String>> = fields
        .iter()
        .map(|f| f.split('.').map(str::to_string).collect())
        .collect();
    let mut env = minijinja::Environment::new();
    env.set_undefined_behavior(minijinja::UndefinedBehavior::Strict);
    let ctx = json!({"event": fleet_notify_rules::rules::allowed(event, &fields), "rule": "r"});
    env.render_str(template, ctx).unwrap()
}

/// Whether the check of a text finds one of `event`'s PHI values in it.
pub fn text_leaks(text: &str, event: &Value) -> bool {
    event::leaks(text, &event::phi_values(event))
}
