//! The events this worker publishes: a `Patient*` detail-type with the fleet's versioned
//! envelope, its payload cut to the configured PHI policy.

pub use fleet_core::PhiPolicy;
use fleet_core::envelope::{EventEnvelope, EventFacts};
use fleet_core::ports::BusEvent;
use fleet_hl7::{AdtMessage, IdentifierTypes};

/// EventBridge `source` of every event this worker publishes.
pub const SOURCE: &str = "fleet.hl7-ingest";
/// Payload schema version of the Patient* events.
pub const SCHEMA_VERSION: &str = "1";
use crate::WORKER;

/// The idempotency key of a message: sending facility + control id (MSH-4 + MSH-10), each
/// escaped ([`fleet_hl7::key`]): a `|` decoded from `\F\` cannot make two messages share a key.
pub fn idempotency_key(msg: &AdtMessage) -> String {
    fleet_hl7::key::idempotency_key(&msg.sending_facility, &[&msg.control_id])
}

/// The envelope and the bus entry for one mapped message; a `minimal` payload carries only
/// the identifiers whose type is on `id_types`.
pub fn build(
    msg: &AdtMessage,
    policy: PhiPolicy,
    id_types: &IdentifierTypes,
    correlation_id: &str,
) -> (EventEnvelope, BusEvent) {
    let payload = match policy {
        PhiPolicy::Minimal => msg.phi_minimal_with(id_types),
        PhiPolicy::Full => msg.full(),
    };
    let envelope = EventEnvelope::new(
        EventFacts {
            producer: WORKER,
            event_type: msg.event_type.as_str(),
            schema_version: SCHEMA_VERSION,
            idempotency_key: &idempotency_key(msg),
            occurred_at: &msg.message_time.to_rfc3339(),
            correlation_id,
            policy,
        },
        payload,
    );
    let bus_event = bus_event(&envelope);
    (envelope, bus_event)
}

/// The bus entry for an envelope (also used to republish a stored envelope).
pub fn bus_event(envelope: &EventEnvelope) -> BusEvent {
    envelope.bus_event(SOURCE)
}
