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

/// How much PHI an event carries. Each worker decides what `minimal` leaves out of its payload
/// (hl7-ingest: names, birth dates, addresses; doc-pipeline: the object key); the envelope
/// records which policy cut it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PhiPolicy {
    /// Identifiers and event facts only: what every consumer may see. The default.
    #[default]
    Minimal,
    /// Everything the worker reads. Only for consumers entitled to it.
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

impl std::fmt::Display for PhiPolicy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for PhiPolicy {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "minimal" => Ok(Self::Minimal),
            "full" => Ok(Self::Full),
            other => Err(format!(
                "unknown PHI policy {other:?}: expected minimal or full"
            )),
        }
    }
}

/// What a worker says about one event; [`EventEnvelope::new`] adds the rest.
#[derive(Debug, Clone)]
pub struct EventFacts<'a> {
    /// The producing worker, also the namespace of its deterministic event ids.
    pub producer: &'a str,
    pub event_type: &'a str,
    pub schema_version: &'a str,
    /// The key the event id is derived from (a redelivery derives the same id).
    pub idempotency_key: &'a str,
    pub occurred_at: &'a str,
    pub correlation_id: &'a str,
    pub policy: PhiPolicy,
}

impl EventEnvelope {
    /// The envelope of one event, its payload already cut to `facts.policy`.
    pub fn new(facts: EventFacts<'_>, payload: serde_json::Value) -> Self {
        Self {
            event_id: deterministic_event_id(facts.producer, facts.idempotency_key),
            envelope_version: ENVELOPE_VERSION.to_string(),
            event_type: facts.event_type.to_string(),
            schema_version: facts.schema_version.to_string(),
            occurred_at: facts.occurred_at.to_string(),
            producer: facts.producer.to_string(),
            correlation_id: facts.correlation_id.to_string(),
            phi_policy: facts.policy.as_str().to_string(),
            payload,
        }
    }

    /// The bus entry for this envelope from `source` (also used to republish a stored one).
    pub fn bus_event(&self, source: &str) -> crate::ports::BusEvent {
        crate::ports::BusEvent {
            source: source.to_string(),
            detail_type: self.event_type.clone(),
            detail: serde_json::to_string(self).expect("an envelope always serialises"),
            resources: Vec::new(),
            time: Some(self.occurred_at.clone()),
            trace_header: None,
        }
    }
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

    #[test]
    fn phi_policy_round_trips_through_its_name() {
        for p in [PhiPolicy::Minimal, PhiPolicy::Full] {
            assert_eq!(p.as_str().parse::<PhiPolicy>(), Ok(p));
        }
        assert!("everything".parse::<PhiPolicy>().is_err());
        assert_eq!(PhiPolicy::default(), PhiPolicy::Minimal);
    }

    #[test]
    fn new_derives_the_id_from_producer_and_key_and_bus_event_carries_the_envelope() {
        let facts = |key| EventFacts {
            producer: "w",
            event_type: "Thing",
            schema_version: "2",
            idempotency_key: key,
            occurred_at: "2026-01-01T00:00:00Z",
            correlation_id: "c",
            policy: PhiPolicy::Full,
        };
        let e = EventEnvelope::new(facts("k"), serde_json::json!({"n": 1}));
        assert_eq!(e.event_id, deterministic_event_id("w", "k"));
        assert_ne!(
            e.event_id,
            EventEnvelope::new(facts("k2"), serde_json::Value::Null).event_id
        );
        assert_eq!(
            (e.envelope_version.as_str(), e.phi_policy.as_str()),
            (ENVELOPE_VERSION, "full")
        );
        let bus = e.bus_event("fleet.w");
        assert_eq!(
            (bus.source.as_str(), bus.detail_type.as_str()),
            ("fleet.w", "Thing")
        );
        assert_eq!(
            serde_json::from_str::<EventEnvelope>(&bus.detail).unwrap(),
            e
        );
        assert_eq!(bus.time.as_deref(), Some("2026-01-01T00:00:00Z"));
    }
}
