//! The event this worker publishes: `DocumentProcessed`, with the fleet's versioned envelope.
//! It carries counts and where the results are, never document text; the object key (which
//! can hold a patient's name) only under the `full` PHI policy.

use fleet_core::envelope::{ENVELOPE_VERSION, EventEnvelope, deterministic_event_id};
use fleet_core::ports::BusEvent;
use serde_json::{Value, json};

/// EventBridge `source` of every event this worker publishes.
pub const SOURCE: &str = "fleet.doc-pipeline";
/// `detail-type` (and envelope `event_type`).
pub const DOCUMENT_PROCESSED: &str = "DocumentProcessed";
/// Payload schema version.
pub const SCHEMA_VERSION: &str = "1";
const WORKER: &str = crate::WORKER;

/// How much PHI an event carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum PhiPolicy {
    /// Counts, ids and locations: no object key, no text.
    Minimal,
    /// Also the source object key. Never the text.
    Full,
}

impl PhiPolicy {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Minimal => "minimal",
            Self::Full => "full",
        }
    }
}

/// The document id: deterministic from the idempotency key (bucket + key + version), so a
/// redelivery, a restart or a completion notification all name the same document.
pub fn document_id(idempotency_key: &str) -> String {
    deterministic_event_id("doc-pipeline/document", idempotency_key)
}

/// The envelope of a processed document. `payload_minimal` is what every consumer may see;
/// `key` is added under the full policy.
pub fn build(
    document_id: &str,
    mut payload: Value,
    key: &str,
    policy: PhiPolicy,
    occurred_at: &str,
    correlation_id: &str,
) -> EventEnvelope {
    if policy == PhiPolicy::Full
        && let Some(source) = payload.get_mut("source").and_then(Value::as_object_mut)
    {
        source.insert("key".into(), json!(key));
    }
    EventEnvelope {
        event_id: deterministic_event_id(WORKER, document_id),
        envelope_version: ENVELOPE_VERSION.to_string(),
        event_type: DOCUMENT_PROCESSED.to_string(),
        schema_version: SCHEMA_VERSION.to_string(),
        occurred_at: occurred_at.to_string(),
        producer: WORKER.to_string(),
        correlation_id: correlation_id.to_string(),
        phi_policy: policy.as_str().to_string(),
        payload,
    }
}

/// The bus entry for an envelope (also used to republish a stored envelope).
pub fn bus_event(envelope: &EventEnvelope) -> BusEvent {
    BusEvent {
        source: SOURCE.to_string(),
        detail_type: envelope.event_type.clone(),
        detail: serde_json::to_string(envelope).expect("envelope serialises"),
        resources: Vec::new(),
        time: Some(envelope.occurred_at.clone()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn payload() -> Value {
        json!({"document_id": "d", "source": {"bucket": "b", "version_id": null}})
    }

    #[test]
    fn minimal_leaves_the_key_out_and_full_puts_it_in() {
        let min = build(
            "d",
            payload(),
            "Jane Doe referral.pdf",
            PhiPolicy::Minimal,
            "t",
            "c",
        );
        assert!(!serde_json::to_string(&min).unwrap().contains("Jane"));
        let full = build(
            "d",
            payload(),
            "Jane Doe referral.pdf",
            PhiPolicy::Full,
            "t",
            "c",
        );
        assert_eq!(full.payload["source"]["key"], "Jane Doe referral.pdf");
        assert_eq!(full.phi_policy, "full");
    }

    #[test]
    fn ids_are_deterministic_per_document() {
        let a = build("d1", payload(), "k", PhiPolicy::Minimal, "t1", "c1");
        let b = build("d1", payload(), "k", PhiPolicy::Minimal, "t2", "c2");
        let c = build("d2", payload(), "k", PhiPolicy::Minimal, "t1", "c1");
        assert_eq!(a.event_id, b.event_id);
        assert_ne!(a.event_id, c.event_id);
        assert_eq!(document_id("x"), document_id("x"));
        assert_ne!(document_id("x"), document_id("y"));
        let e = bus_event(&a);
        assert_eq!(
            (e.source.as_str(), e.detail_type.as_str()),
            (SOURCE, DOCUMENT_PROCESSED)
        );
    }
}
