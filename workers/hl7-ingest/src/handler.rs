//! The message handler: guard + map each HL7 message in a body, write its records in one
//! conditional transaction, publish its event.
//!
//! One request per message in the common case: the event record (keyed by sending facility +
//! control id, condition "not exists"), the patient record and the encounter record (each
//! "only if older") go in one TransactWriteItems. The event record's condition is the
//! idempotency check; the others keep out-of-order messages from regressing newer state. A
//! message with the same time as the stored state is settled by [`TieBreak`].

use std::borrow::Cow;
use std::sync::Arc;

use async_trait::async_trait;
use base64::Engine as _;
use base64::prelude::BASE64_STANDARD;
use fleet_core::ports::{
    BODY_ENCODING_ATTRIBUTE, BODY_ENCODING_BASE64, Condition, ConditionalPut, Record, RecordStore,
    TransactOutcome,
};
use fleet_core::{ErrorCode, EventEnvelope, PortError};
use fleet_hl7::key::record_key;
use fleet_hl7::{AdtMessage, Hl7Error, IdentifierTypes, MapConfig};
use fleet_runtime::{Delivery, EventPublisher, Failure, Handler, Outcome};
use serde_json::json;
use sha2::{Digest, Sha256};

use crate::events::{self, PhiPolicy};
pub use crate::ordering::TieBreak;
use crate::ordering::{control_id_after, not_newer_than};

/// Sort key of each record kind.
const SK_EVENT: &str = "EVENT";
const SK_PATIENT: &str = "PATIENT";
const SK_ENCOUNTER: &str = "ENCOUNTER";
const EVENT_INDEX: usize = 0;

/// What the handler did with one message (for tests and the demo).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Applied {
    /// Records written and the event published.
    New,
    /// The event record already existed: the stored event was published again with its id.
    Republished,
}

/// One message of a body: its mapping (what it dereferences to) and the SHA-256 of its bytes as
/// `split_messages` normalises them, which tells a redelivery (the same bytes) from another
/// message reusing the sending facility and control id.
#[derive(Debug, Clone)]
pub struct ParsedMessage {
    message: AdtMessage,
    content_sha256: [u8; 32],
}

impl ParsedMessage {
    /// The SHA-256 of the message's bytes.
    pub fn content_sha256(&self) -> &[u8; 32] {
        &self.content_sha256
    }
}

impl std::ops::Deref for ParsedMessage {
    type Target = AdtMessage;
    fn deref(&self) -> &AdtMessage {
        &self.message
    }
}

/// Lower-case hex of `bytes`.
fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    bytes
        .iter()
        .fold(String::with_capacity(bytes.len() * 2), |mut s, b| {
            let _ = write!(s, "{b:02x}");
            s
        })
}

/// How many hex digits of each hash a `HL7_CONTROL_ID_REUSED` detail names.
const HASH_PREFIX: usize = 12;

pub struct Hl7Handler {
    records: Arc<dyn RecordStore>,
    publisher: EventPublisher,
    map: MapConfig,
    policy: PhiPolicy,
    id_types: IdentifierTypes,
}

impl Hl7Handler {
    pub fn new(
        records: Arc<dyn RecordStore>,
        publisher: EventPublisher,
        map: MapConfig,
        policy: PhiPolicy,
    ) -> Self {
        Self {
            records,
            publisher,
            map,
            policy,
            id_types: IdentifierTypes::default(),
        }
    }

    /// The identifier types `minimal` events carry (default: MR, PI, PN).
    pub fn with_identifier_types(mut self, id_types: IdentifierTypes) -> Self {
        self.id_types = id_types;
        self
    }

    /// Parse every message of a body first, so a bad message in a batch fails the whole body
    /// before anything is written (the batch is then dead-lettered whole and replays cleanly).
    pub fn parse_body(&self, body: &[u8]) -> Result<Vec<ParsedMessage>, Hl7Error> {
        let parts = fleet_hl7::split_messages(body);
        if parts.is_empty() {
            return Err(Hl7Error {
                code: ErrorCode::Hl7Empty,
                detail: "body holds no HL7 message".into(),
            });
        }
        let mut out = Vec::with_capacity(parts.len());
        for (i, part) in parts.into_iter().enumerate() {
            let raw = part.map_err(|e| with_position(e, i))?;
            let message = fleet_hl7::parse_adt(&raw, &self.map).map_err(|e| with_position(e, i))?;
            out.push(ParsedMessage {
                message,
                content_sha256: Sha256::digest(&raw).into(),
            });
        }
        Ok(out)
    }

    /// Write and publish one mapped message delivered by a standard queue
    /// ([`TieBreak::ControlId`]).
    pub async fn apply(
        &self,
        msg: &ParsedMessage,
        correlation_id: &str,
    ) -> Result<Applied, Failure> {
        self.apply_with(msg, correlation_id, TieBreak::ControlId)
            .await
    }

    /// Write and publish one mapped message, an equal message time broken by `tie`.
    pub async fn apply_with(
        &self,
        msg: &ParsedMessage,
        correlation_id: &str,
        tie: TieBreak,
    ) -> Result<Applied, Failure> {
        let (envelope, bus_event) = events::build(msg, self.policy, &self.id_types, correlation_id);
        let mut puts = records_for(msg, &envelope, tie.condition(msg.message_time_ms));
        // Whether each put has been through the tie-break already (at most once each).
        let mut tie_checked = vec![false; puts.len()];
        let applied = loop {
            match self.records.transact_put(&puts).await? {
                TransactOutcome::Written => break Applied::New,
                TransactOutcome::ConditionFailed(failed) if failed.contains(&EVENT_INDEX) => {
                    return self.republish(msg).await;
                }
                TransactOutcome::ConditionFailed(failed) if failed.is_empty() => {
                    // A cancellation that names no item cannot be narrowed down: retry later.
                    return Err(PortError::transient(
                        "hl7.records",
                        "transaction cancelled without naming the failed condition",
                    )
                    .into());
                }
                TransactOutcome::ConditionFailed(failed) => {
                    // Newer patient or encounter state is already stored: keep it, write the
                    // rest. State with the same message time goes to the tie-break.
                    let mut kept = Vec::with_capacity(puts.len());
                    let mut kept_checked = Vec::with_capacity(puts.len());
                    for ((i, put), checked) in puts.into_iter().enumerate().zip(tie_checked) {
                        if !failed.contains(&i) {
                            kept.push(put);
                            kept_checked.push(checked);
                        } else if !checked && self.wins_tie(&put, msg, tie).await? {
                            kept.push(ConditionalPut {
                                condition: not_newer_than(msg.message_time_ms),
                                ..put
                            });
                            kept_checked.push(true);
                        }
                    }
                    puts = kept;
                    tie_checked = kept_checked;
                }
            }
        };
        self.publisher.publish(bus_event).await?;
        Ok(applied)
    }

    /// Whether `msg` should still replace the stored record `put` failed its "only if older"
    /// condition against: on a standard queue, when the stored state has the same message time
    /// and a control id that sorts before this message's. The caller then writes the record
    /// "only if not newer", so a newer write in between still wins. (Not a compare-and-swap on
    /// the control id: a third message with the same time written between this read and that
    /// write can be overwritten by this one.)
    async fn wins_tie(
        &self,
        put: &ConditionalPut,
        msg: &AdtMessage,
        tie: TieBreak,
    ) -> Result<bool, PortError> {
        if tie != TieBreak::ControlId {
            // A FIFO put already applied on an equal time: it lost to newer state.
            return Ok(false);
        }
        let Some(stored) = self.records.get(&put.record.pk, &put.record.sk).await? else {
            // Gone (expired) since the condition was evaluated: nothing newer to keep.
            return Ok(true);
        };
        let order = msg.message_time_ms;
        let stored_control_id = stored.data["last_control_id"].as_str().unwrap_or("");
        Ok(stored.order < order
            || (stored.order == order && control_id_after(&msg.control_id, stored_control_id)))
    }

    /// A redelivered message whose records exist: publish the stored event again with its
    /// original id (the write may have succeeded before a crash that prevented the publish).
    /// When the stored content hash differs, this is another message reusing the sending
    /// facility and control id: `HL7_CONTROL_ID_REUSED`, nothing published. (An event record
    /// written before the hash was kept has none and is taken for a redelivery.)
    async fn republish(&self, msg: &ParsedMessage) -> Result<Applied, Failure> {
        let pk = event_pk(msg);
        let stored = self.records.get(&pk, SK_EVENT).await?.ok_or_else(|| {
            PortError::transient(
                "hl7.republish",
                "event record vanished after a failed condition",
            )
        })?;
        let envelope: EventEnvelope = serde_json::from_value(stored.data["envelope"].clone())
            .map_err(|_| {
                PortError::invalid(
                    "hl7.republish",
                    "stored event record has no readable envelope",
                )
            })?;
        let received = hex(msg.content_sha256());
        if let Some(stored_hash) = stored.data["content_sha256"].as_str()
            && stored_hash != received
        {
            let prefix = |h: &str| h.get(..HASH_PREFIX).unwrap_or(h).to_string();
            return Err(Failure::permanent(
                ErrorCode::Hl7ControlIdReused,
                format!(
                    "sending facility and control id already recorded for other content \
                     (stored sha256 {}, received sha256 {})",
                    prefix(stored_hash),
                    prefix(&received)
                ),
            ));
        }
        self.publisher.publish(events::bus_event(&envelope)).await?;
        Ok(Applied::Republished)
    }
}

/// The bytes of a delivery's body: the body itself, or, when [`BODY_ENCODING_ATTRIBUTE`] says
/// `base64` (the MLLP gateway's carriage of bytes SQS cannot take as text, such as ISO 8859-1),
/// the bytes it decodes to (standard alphabet, padded, nothing else accepted). A body that does
/// not decode, and any other value of the attribute, is `BODY_ENCODING`; the details are fixed
/// and name neither the body nor the attribute's value (both are producer data).
pub fn body_bytes(delivery: &Delivery) -> Result<Cow<'_, [u8]>, Failure> {
    let Some(encoding) = delivery.attributes.get(BODY_ENCODING_ATTRIBUTE) else {
        return Ok(Cow::Borrowed(delivery.body.as_bytes()));
    };
    if encoding.as_str() != Some(BODY_ENCODING_BASE64) {
        return Err(Failure::permanent(
            ErrorCode::BodyEncoding,
            format!(
                "message attribute {BODY_ENCODING_ATTRIBUTE} names an encoding other than \
                 {BODY_ENCODING_BASE64}; the body was not read"
            ),
        ));
    }
    BASE64_STANDARD
        .decode(delivery.body.as_bytes())
        .map(Cow::Owned)
        .map_err(|_| {
            Failure::permanent(
                ErrorCode::BodyEncoding,
                format!(
                    "body marked {BODY_ENCODING_ATTRIBUTE}={BODY_ENCODING_BASE64} is not \
                     padded standard base64"
                ),
            )
        })
}

fn with_position(mut e: Hl7Error, index: usize) -> Hl7Error {
    if index > 0 {
        e.detail = format!("message {} of the body: {}", index + 1, e.detail);
    }
    e
}

fn event_pk(msg: &AdtMessage) -> String {
    event_record_key(&msg.sending_facility, &msg.control_id).0
}

/// The (partition, sort) key of a message's event record: one per sending facility + MSH-10.
/// Components are escaped ([`fleet_hl7::key`]), so values holding `#` cannot collide.
pub fn event_record_key(sending_facility: &str, control_id: &str) -> (String, &'static str) {
    (record_key("MSG", &[sending_facility, control_id]), SK_EVENT)
}

/// The primary identifier: the first medical record number, else the first identifier.
fn primary_id(msg: &AdtMessage) -> Option<&fleet_hl7::PatientId> {
    let ids = &msg.patient.identifiers;
    ids.iter()
        .find(|id| id.id_type.as_deref() == Some("MR"))
        .or_else(|| ids.first())
}

fn patient_pk(id: &fleet_hl7::PatientId) -> String {
    record_key(
        "PATIENT",
        &[id.authority.as_deref().unwrap_or(""), id.id.expose()],
    )
}

/// The records of one message, event record first; `newer` is the condition of the patient and
/// encounter records.
fn records_for(
    msg: &ParsedMessage,
    envelope: &EventEnvelope,
    newer: Condition,
) -> Vec<ConditionalPut> {
    let order = msg.message_time_ms;
    let full = msg.full();
    let mut puts = vec![ConditionalPut {
        record: Record {
            pk: event_pk(msg),
            sk: SK_EVENT.into(),
            order,
            expires_at: None,
            data: json!({
                "event_id": envelope.event_id,
                "event_type": envelope.event_type,
                "trigger": msg.trigger,
                "control_id": msg.control_id,
                "message_time": msg.message_time,
                "content_sha256": hex(msg.content_sha256()),
                "envelope": envelope,
            }),
        },
        condition: Condition::NotExists,
    }];
    if let Some(id) = primary_id(msg) {
        puts.push(ConditionalPut {
            record: Record {
                pk: patient_pk(id),
                sk: SK_PATIENT.into(),
                order,
                expires_at: None,
                data: json!({
                    "patient": full.get("patient").cloned().unwrap_or_default(),
                    "last_event_type": envelope.event_type,
                    "last_control_id": msg.control_id,
                    "last_message_time": msg.message_time,
                }),
            },
            condition: newer,
        });
    }
    if let Some(visit_number) = msg
        .visit
        .as_ref()
        .and_then(|v| v.visit_number.expose().as_deref())
        .filter(|v| !v.is_empty())
    {
        puts.push(ConditionalPut {
            record: Record {
                pk: record_key("ENCOUNTER", &[&msg.sending_facility, visit_number]),
                sk: SK_ENCOUNTER.into(),
                order,
                expires_at: None,
                data: json!({
                    "visit": full.get("visit").cloned().unwrap_or_default(),
                    "patient_key": primary_id(msg).map(patient_pk),
                    "last_event_type": envelope.event_type,
                    "last_control_id": msg.control_id,
                    "last_message_time": msg.message_time,
                }),
            },
            condition: newer,
        });
    }
    if let (Some(merge), Some(survivor)) = (&msg.merge, primary_id(msg)) {
        // The prior identity points at the survivor, so lookups by an old MRN still resolve.
        for prior in &merge.prior_identifiers {
            let pk = patient_pk(prior);
            if pk == patient_pk(survivor) || puts.iter().any(|p| p.record.pk == pk) {
                continue;
            }
            puts.push(ConditionalPut {
                record: Record {
                    pk,
                    sk: SK_PATIENT.into(),
                    order,
                    expires_at: None,
                    data: json!({ "merged_into": patient_pk(survivor), "last_control_id": msg.control_id }),
                },
                condition: newer,
            });
        }
    }
    puts
}

#[async_trait]
impl Handler for Hl7Handler {
    async fn handle(&self, delivery: &Delivery) -> Outcome {
        let body = match body_bytes(delivery) {
            Ok(body) => body,
            Err(failure) => return failure.into(),
        };
        let messages = match self.parse_body(&body) {
            Ok(m) => m,
            Err(e) => return Outcome::fail(e.code, e.detail),
        };
        let tie = TieBreak::of(delivery);
        for msg in &messages {
            if let Err(failure) = self.apply_with(msg, &delivery.correlation_id, tie).await {
                return failure.into();
            }
        }
        Outcome::Done
    }
}
