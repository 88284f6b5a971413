//! The events this worker publishes: a `Patient*` detail-type with the fleet's versioned
//! envelope, its payload cut to the configured PHI policy.

use fleet_core::envelope::{ENVELOPE_VERSION, EventEnvelope, deterministic_event_id};
use fleet_core::ports::BusEvent;
use fleet_hl7::AdtMessage;

/// EventBridge `source` of every event this worker publishes.
pub const SOURCE: &str = "fleet.hl7-ingest";
/// Payload schema version of the Patient* events.
pub const SCHEMA_VERSION: &str = "1";
const WORKER: &str = "hl7-ingest";

/// How much PHI an event carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum PhiPolicy {
    /// Identifiers and event facts only: no name, birth date or address.
    Minimal,
    /// Everything the mapping reads. Only for consumers entitled to it.
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

/// The idempotency key of a message: sending facility + control id (MSH-4 + MSH-10).
pub fn idempotency_key(msg: &AdtMessage) -> String {
    format!("{}|{}", msg.sending_facility, msg.control_id)
}

/// The envelope and the bus entry for one mapped message.
pub fn build(
    msg: &AdtMessage,
    policy: PhiPolicy,
    correlation_id: &str,
) -> (EventEnvelope, BusEvent) {
    let event_type = msg.event_type.as_str().to_string();
    let payload = match policy {
        PhiPolicy::Minimal => msg.phi_minimal(),
        PhiPolicy::Full => msg.full(),
    };
    let envelope = EventEnvelope {
        event_id: deterministic_event_id(WORKER, &idempotency_key(msg)),
        envelope_version: ENVELOPE_VERSION.to_string(),
        event_type: event_type.clone(),
        schema_version: SCHEMA_VERSION.to_string(),
        occurred_at: msg.message_time.clone(),
        producer: WORKER.to_string(),
        correlation_id: correlation_id.to_string(),
        phi_policy: policy.as_str().to_string(),
        payload,
    };
    let bus_event = bus_event(&envelope);
    (envelope, bus_event)
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
