//! From the bytes of one HL7 message to the SQS message that carries them, unchanged: the text
//! itself when SQS can carry it, else its base64 with [`BODY_ENCODING_ATTRIBUTE`]; offloaded to
//! the claim-check bucket in the SQS Extended Client format when too large for the queue; with
//! a MessageGroupId and a deduplication id on FIFO queues.

use std::sync::Arc;

use base64::Engine as _;
use fleet_core::PortError;
use fleet_core::ports::{
    AttributeValue, BODY_ENCODING_ATTRIBUTE, BODY_ENCODING_BASE64, ObjectStore, OutgoingMessage,
    sqs_safe_text,
};
use fleet_runtime::claim_check::{POINTER_CLASS, SIZE_ATTRIBUTES};
use sha2::{Digest, Sha256};

use crate::config::FifoGroup;

/// What identifies a message for FIFO grouping and deduplication. Never logged.
#[derive(Debug, Clone, Copy)]
pub struct MessageKeys<'a> {
    /// MSH-4.1.
    pub facility: &'a str,
    /// MSH-10, raw.
    pub control_id: &'a [u8],
    /// PID-3.1 (only with [`FifoGroup::FacilityPatient`]).
    pub patient: Option<&'a str>,
}

/// Where an offloaded body goes.
#[derive(Clone)]
pub struct ClaimCheckTarget {
    pub bucket: String,
    pub store: Arc<dyn ObjectStore>,
}

impl std::fmt::Debug for ClaimCheckTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClaimCheckTarget")
            .field("bucket", &self.bucket)
            .finish()
    }
}

/// Why a message cannot be carried.
#[derive(Debug, thiserror::Error)]
pub enum PayloadError {
    #[error(
        "the message needs {size} bytes on the queue, above its limit of {limit}, and no claim-check bucket is configured"
    )]
    TooLarge { size: usize, limit: usize },
    #[error("the claim-check object could not be stored: {0}")]
    Offload(PortError),
}

/// How a queue takes messages.
#[derive(Debug, Clone)]
pub struct QueueShape {
    pub fifo: bool,
    /// Body plus attributes, bytes.
    pub max_message_bytes: usize,
    pub fifo_group: FifoGroup,
}

/// The attribute size SQS counts: name, type and value.
pub fn message_size(m: &OutgoingMessage) -> usize {
    m.body.len()
        + m.attributes
            .iter()
            .map(|(k, v)| {
                k.len()
                    + v.data_type.len()
                    + v.string_value.as_ref().map_or(0, String::len)
                    + v.binary_value.as_ref().map_or(0, Vec::len)
            })
            .sum::<usize>()
}

/// The SQS message for `bytes`.
pub async fn prepare(
    bytes: &[u8],
    keys: MessageKeys<'_>,
    shape: &QueueShape,
    claim_check: Option<&ClaimCheckTarget>,
) -> Result<OutgoingMessage, PayloadError> {
    let mut message = OutgoingMessage::default();
    match sqs_safe_text(bytes) {
        Some(text) => message.body = text.to_string(),
        None => {
            message.body = base64::engine::general_purpose::STANDARD.encode(bytes);
            message.attributes.insert(
                BODY_ENCODING_ATTRIBUTE.into(),
                AttributeValue::string(BODY_ENCODING_BASE64),
            );
        }
    }
    if shape.fifo {
        message.group_id = Some(group_id(keys, shape.fifo_group));
        message.dedup_id = Some(dedup_id(keys, bytes));
    }
    let size = message_size(&message);
    if size > shape.max_message_bytes {
        let Some(target) = claim_check else {
            return Err(PayloadError::TooLarge {
                size,
                limit: shape.max_message_bytes,
            });
        };
        let key = format!("mllp-gateway/{}", uuid::Uuid::new_v4());
        let payload = std::mem::take(&mut message.body).into_bytes();
        let payload_len = payload.len();
        target
            .store
            .put(&key, payload, "text/plain")
            .await
            .map_err(PayloadError::Offload)?;
        message.body = serde_json::json!([
            POINTER_CLASS,
            {"s3BucketName": target.bucket, "s3Key": key}
        ])
        .to_string();
        message.attributes.insert(
            SIZE_ATTRIBUTES[0].into(),
            AttributeValue::number(payload_len),
        );
    }
    Ok(message)
}

/// Characters SQS allows in a MessageGroupId / MessageDeduplicationId: alphanumerics and
/// ASCII punctuation, at most 128.
fn id_safe(s: &str) -> bool {
    !s.is_empty() && s.len() <= 64 && s.bytes().all(|b| b.is_ascii_graphic())
}

fn short_hash(parts: &[&[u8]]) -> String {
    let mut h = Sha256::new();
    for p in parts {
        h.update((p.len() as u64).to_be_bytes());
        h.update(p);
    }
    hex::encode(&h.finalize()[..12])
}

/// The MessageGroupId: the facility as it is when SQS can carry it (else its hash), and with
/// [`FifoGroup::FacilityPatient`] a hash of the patient identifier after it (a hash: a group
/// id is visible to anyone who can read queue metadata; the identifier is PHI).
pub fn group_id(keys: MessageKeys<'_>, group: FifoGroup) -> String {
    let facility = if id_safe(keys.facility) {
        keys.facility.to_string()
    } else if keys.facility.is_empty() {
        "no-facility".to_string()
    } else {
        format!("f-{}", short_hash(&[keys.facility.as_bytes()]))
    };
    match (group, keys.patient.filter(|p| !p.is_empty())) {
        (FifoGroup::FacilityPatient, Some(p)) => {
            format!(
                "{facility}:p-{}",
                short_hash(&[keys.facility.as_bytes(), p.as_bytes()])
            )
        }
        _ => facility,
    }
}

/// The deduplication id: SHA-256 of facility, control id and content, so a resend of the same
/// message within SQS's five-minute window is absorbed and a reused control id with other
/// content is not.
pub fn dedup_id(keys: MessageKeys<'_>, bytes: &[u8]) -> String {
    let mut h = Sha256::new();
    for p in [keys.facility.as_bytes(), keys.control_id, bytes] {
        h.update((p.len() as u64).to_be_bytes());
        h.update(p);
    }
    hex::encode(h.finalize())
}

#[cfg(test)]
mod tests {
    use super::*;

    const ADT: &[u8] = b"MSH|^~\\&|EPIC|NORTH|GW|FLEET|202601011200||ADT^A01|C1|P|2.5.1\rPID|1||123^^^NORTH^MR||DOE^JANE\r";

    fn keys(control: &'static [u8]) -> MessageKeys<'static> {
        MessageKeys {
            facility: "NORTH",
            control_id: control,
            patient: Some("123"),
        }
    }

    fn shape(fifo: bool, max: usize) -> QueueShape {
        QueueShape {
            fifo,
            max_message_bytes: max,
            fifo_group: FifoGroup::Facility,
        }
    }

    #[tokio::test]
    async fn text_sqs_can_carry_goes_as_it_is() {
        let m = prepare(ADT, keys(b"C1"), &shape(false, 262_144), None)
            .await
            .unwrap();
        assert_eq!(m.body.as_bytes(), ADT);
        assert!(m.attributes.is_empty());
        assert!(m.group_id.is_none() && m.dedup_id.is_none());
    }

    #[tokio::test]
    async fn latin1_and_control_characters_go_base64_and_decode_to_the_same_bytes() {
        let mut latin1 = ADT.to_vec();
        latin1.extend_from_slice(b"NTE|1||Ren\xE9e\r");
        let mut vt = ADT.to_vec();
        vt.extend_from_slice(b"NTE|1||a\x0Bb\r");
        for bytes in [latin1, vt] {
            let m = prepare(&bytes, keys(b"C1"), &shape(false, 262_144), None)
                .await
                .unwrap();
            assert_eq!(
                m.attributes[BODY_ENCODING_ATTRIBUTE].as_str(),
                Some(BODY_ENCODING_BASE64)
            );
            let back = base64::engine::general_purpose::STANDARD
                .decode(&m.body)
                .unwrap();
            assert_eq!(back, bytes);
        }
    }

    #[tokio::test]
    async fn too_large_without_a_bucket_is_refused_with_both_sizes() {
        let e = prepare(ADT, keys(b"C1"), &shape(false, 64), None)
            .await
            .unwrap_err();
        let text = e.to_string();
        assert!(
            text.contains(&ADT.len().to_string()) && text.contains("64"),
            "{text}"
        );
    }

    #[test]
    fn fifo_ids_are_stable_bounded_and_carry_no_patient_identifier() {
        let a = keys(b"C1");
        assert_eq!(group_id(a, FifoGroup::Facility), "NORTH");
        let per_patient = group_id(a, FifoGroup::FacilityPatient);
        assert!(per_patient.starts_with("NORTH:p-") && !per_patient.contains("123"));
        let other = MessageKeys {
            patient: Some("456"),
            ..a
        };
        assert_ne!(per_patient, group_id(other, FifoGroup::FacilityPatient));
        let odd = MessageKeys {
            facility: "St Mary's Ünit",
            ..a
        };
        let g = group_id(odd, FifoGroup::Facility);
        assert!(
            g.starts_with("f-") && g.bytes().all(|b| b.is_ascii_graphic()),
            "{g}"
        );
        assert_eq!(dedup_id(a, ADT), dedup_id(a, ADT));
        assert_ne!(dedup_id(a, ADT), dedup_id(keys(b"C2"), ADT));
        assert_ne!(dedup_id(a, ADT), dedup_id(a, b"MSH|other"));
        assert_eq!(dedup_id(a, ADT).len(), 64);
    }
}
