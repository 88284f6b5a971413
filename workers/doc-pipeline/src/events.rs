//! The event this worker publishes: `DocumentProcessed`, with the fleet's versioned envelope.
//! It carries counts and where the results are, never document text; the object key (which
//! can hold a patient's name) only under the `full` PHI policy.

pub use fleet_core::PhiPolicy;
use fleet_core::envelope::{EventEnvelope, EventFacts, deterministic_event_id};
use fleet_core::ports::BusEvent;
use serde_json::{Value, json};

/// EventBridge `source` of every event this worker publishes.
pub const SOURCE: &str = "fleet.doc-pipeline";
/// `detail-type` (and envelope `event_type`).
pub const DOCUMENT_PROCESSED: &str = "DocumentProcessed";
/// Payload schema version.
pub const SCHEMA_VERSION: &str = "1";
const WORKER: &str = crate::WORKER;

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
    EventEnvelope::new(
        EventFacts {
            producer: WORKER,
            event_type: DOCUMENT_PROCESSED,
            schema_version: SCHEMA_VERSION,
            idempotency_key: document_id,
            occurred_at,
            correlation_id,
            policy,
        },
        payload,
    )
}

/// The bus entry for an envelope (also used to republish a stored envelope).
pub fn bus_event(envelope: &EventEnvelope) -> BusEvent {
    envelope.bus_event(SOURCE)
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
