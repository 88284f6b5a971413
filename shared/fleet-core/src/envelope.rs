//! The versioned event envelope every worker publishes as an EventBridge `detail`.

use serde::{Deserialize, Serialize};

/// Version of the envelope layout (not of the payload schema).
pub const ENVELOPE_VERSION: &str = "1";

/// `detail` of every event the fleet publishes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EventEnvelope {
    /// Deterministic: derived from the idempotency key, so a republish carries the same id.
    pub event_id: String,
    pub envelope_version: String,
    /// e.g. "PatientAdmitted".
    pub event_type: String,
    /// Payload schema version, e.g. "1".
    pub schema_version: String,
    /// RFC 3339 time of the fact (message time), not of publication.
    pub occurred_at: String,
    /// The producing worker.
    pub producer: String,
    /// Correlation id (the source message id unless the producer had one).
    pub correlation_id: String,
    /// "minimal" or "full".
    pub phi_policy: String,
    pub payload: serde_json::Value,
}

/// A deterministic event id from a namespace and an idempotency key (UUID v5).
pub fn deterministic_event_id(namespace: &str, key: &str) -> String {
    let ns = uuid::Uuid::new_v5(
        &uuid::Uuid::NAMESPACE_URL,
        format!("urn:fleet:{namespace}").as_bytes(),
    );
    uuid::Uuid::new_v5(&ns, key.as_bytes()).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_ids_are_deterministic_and_distinct_per_key() {
        let a = deterministic_event_id("hl7", "FAC|1");
        assert_eq!(a, deterministic_event_id("hl7", "FAC|1"));
        assert_ne!(a, deterministic_event_id("hl7", "FAC|2"));
        assert_ne!(a, deterministic_event_id("doc", "FAC|1"));
    }
}
