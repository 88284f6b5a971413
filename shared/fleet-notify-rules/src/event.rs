//! The bodies the notify queue receives, and the PHI values an event carries.
//!
//! Accepted: the EventBridge event as an SQS target delivers it (`id`, `source`,
//! `detail-type`, `detail`), or that event inside an SNS notification
//! (`{"Type":"Notification","Message":"<event JSON>"}`, as an SNS → SQS subscription without
//! raw delivery delivers it).

use serde_json::Value;

/// A usable event, with the key notifications are deduplicated by.
#[derive(Debug, Clone)]
pub struct Event {
    /// The EventBridge envelope.
    pub value: Value,
    /// The fleet envelope's `detail.event_id` when present (stable across republishes, which
    /// get a new EventBridge `id`), else the EventBridge `id`.
    pub dedup_key: String,
}

/// Why a body is not an event; fixed words, never body content.
pub fn parse(body: &str) -> Result<Event, &'static str> {
    let mut v: Value = serde_json::from_str(body).map_err(|_| "body is not JSON")?;
    if v.get("Type").and_then(Value::as_str) == Some("Notification") {
        let inner = v
            .get("Message")
            .and_then(Value::as_str)
            .ok_or("SNS notification without a Message string")?;
        v = serde_json::from_str(inner).map_err(|_| "SNS Message is not JSON")?;
    }
    let obj = v.as_object().ok_or("event is not a JSON object")?;
    let id = obj
        .get("id")
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .ok_or("event has no id")?;
    for field in ["source", "detail-type"] {
        let present = obj
            .get(field)
            .and_then(Value::as_str)
            .is_some_and(|s| !s.is_empty());
        if !present {
            return Err(match field {
                "source" => "event has no source",
                _ => "event has no detail-type",
            });
        }
    }
    let detail = obj
        .get("detail")
        .filter(|d| d.is_object())
        .ok_or("event has no detail object")?;
    let dedup_key = detail
        .get("event_id")
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .unwrap_or(id)
        .to_string();
    Ok(Event {
        value: v,
        dedup_key,
    })
}

pub use crate::phi::{PhiValues, phi_values};

/// Whether `text` contains any of the event's PHI values ([`phi_values`]), compared after
/// normalisation (case, width, accents, separators; see [`crate::phi`]).
pub fn leaks(text: &str, phi: &PhiValues) -> bool {
    phi.found_in(text)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn admitted() -> Value {
        json!({"id": "eb-1", "source": "fleet.hl7-ingest", "detail-type": "PatientAdmitted",
            "detail": {"event_id": "ev-1", "payload": {
                "patient": {"identifiers": [{"id": "MRN12345", "authority": "GEN", "id_type": "MR"}],
                    "name": {"family": "Okonkwo", "given": "Adaeze", "middle": null},
                    "birth_date": "1980-04-09",
                    "address": {"street": "12 Elm Street", "city": "Springfield", "postal_code": "01101", "state": "MA"}},
                "visit": {"location": {"point_of_care": "WARD3"}, "visit_number": "V778899"}}}})
    }

    #[test]
    fn events_parse_directly_and_inside_sns() {
        let ev = admitted();
        let direct = parse(&ev.to_string()).unwrap();
        assert_eq!(direct.dedup_key, "ev-1");
        let wrapped = json!({"Type": "Notification", "MessageId": "m", "Message": ev.to_string()});
        assert_eq!(parse(&wrapped.to_string()).unwrap().dedup_key, "ev-1");
        let mut no_fleet_id = ev.clone();
        no_fleet_id["detail"]
            .as_object_mut()
            .unwrap()
            .remove("event_id");
        assert_eq!(parse(&no_fleet_id.to_string()).unwrap().dedup_key, "eb-1");
    }

    #[test]
    fn bodies_that_are_not_events_are_refused() {
        assert_eq!(parse("HL7|x").unwrap_err(), "body is not JSON");
        assert_eq!(
            parse(r#"{"Type":"Notification"}"#).unwrap_err(),
            "SNS notification without a Message string"
        );
        assert_eq!(
            parse(r#"{"source":"a","detail-type":"b","detail":{}}"#).unwrap_err(),
            "event has no id"
        );
        assert_eq!(
            parse(r#"{"id":"1","source":"a","detail-type":"b"}"#).unwrap_err(),
            "event has no detail object"
        );
        assert_eq!(
            parse(r#"{"id":"1","detail-type":"b","detail":{}}"#).unwrap_err(),
            "event has no source"
        );
    }

    #[test]
    fn phi_values_cover_names_birth_date_identifiers_address_and_visit() {
        let phi = phi_values(&admitted());
        for want in [
            "okonkwo",
            "adaeze",
            "19800409",
            "mrn12345",
            "12elmstreet",
            "springfield",
            "01101",
            "v778899",
        ] {
            assert!(phi.contains(want), "{want} missing from {phi:?}");
        }
        // Facts that are not PHI stay usable (a state is not an identifier).
        assert!(!phi.contains("ward3"));
        assert!(!phi.contains("ma"));
        assert!(!leaks("Admission to the MAIN ward", &phi));
        assert!(leaks("Admitted: OKONKWO", &phi));
        assert!(!leaks("Admission to WARD3", &phi));
    }

    #[test]
    fn document_text_and_keys_are_phi() {
        let ev = json!({"id": "1", "source": "fleet.doc-pipeline", "detail-type": "DocumentProcessed",
            "detail": {"payload": {"source": {"bucket": "b", "key": "Jane Doe referral.pdf"},
                "entities": [{"text": "metformin 500 mg"}]}}});
        let phi = phi_values(&ev);
        assert!(leaks("file Jane Doe referral.pdf", &phi));
        assert!(leaks("found METFORMIN 500 mg", &phi));
    }
}
