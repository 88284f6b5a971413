//! The failure-metadata attribute: one compact JSON message attribute that travels with a
//! dead-lettered message, beside its original attributes. `dlq-replay` reads it.

use serde::{Deserialize, Serialize};

use crate::codes::ErrorCode;
use crate::ports::{AttributeValue, Attributes};

/// The attribute's name. SQS allows 10 attributes per message; we use exactly one.
pub const FAILURE_ATTRIBUTE: &str = "fleet.failure";

/// The code a DLQ message without the failure attribute is shown under (`dlq-replay summary`,
/// `fleet status`): SQS's own redrive moved it once its receive count passed `maxReceiveCount`
/// (a crashed or stuck worker, a message received and handed back too often), not a worker.
pub const REDRIVEN_WITHOUT_FAILURE: &str = "REDRIVEN_WITHOUT_FAILURE";

/// Longest sanitised detail we keep, in bytes.
pub const MAX_DETAIL_BYTES: usize = 256;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FailureMetadata {
    /// Error code from the closed list.
    pub code: ErrorCode,
    /// Sanitised detail: no PHI, at most [`MAX_DETAIL_BYTES`].
    pub detail: String,
    pub worker: String,
    /// The queue the message was consumed from (URL or name); replay sends it back there.
    pub source_queue: String,
    /// RFC 3339.
    pub first_failure: String,
    /// RFC 3339.
    pub last_failure: String,
    pub receive_count: u32,
    /// The source message id.
    pub message_id: String,
}

impl FailureMetadata {
    /// Truncate the detail to the bound on a char boundary.
    pub fn sanitise_detail(detail: &str) -> String {
        let cleaned: String = detail.chars().filter(|c| !c.is_control()).collect();
        if cleaned.len() <= MAX_DETAIL_BYTES {
            return cleaned;
        }
        let mut end = MAX_DETAIL_BYTES;
        while !cleaned.is_char_boundary(end) {
            end -= 1;
        }
        cleaned[..end].to_string()
    }

    pub fn to_attribute(&self) -> AttributeValue {
        AttributeValue {
            data_type: "String.json".into(),
            string_value: Some(serde_json::to_string(self).expect("plain struct serialises")),
            binary_value: None,
        }
    }

    /// Read the attribute back; `None` when absent or not ours.
    pub fn from_attributes(attrs: &Attributes) -> Option<Self> {
        attrs
            .get(FAILURE_ATTRIBUTE)
            .and_then(|v| v.as_str())
            .and_then(|s| serde_json::from_str(s).ok())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_through_the_attribute() {
        let m = FailureMetadata {
            code: ErrorCode::Hl7NotAdt,
            detail: "MSH-9 is ORU^R01".into(),
            worker: "hl7-ingest".into(),
            source_queue: "q".into(),
            first_failure: "2026-01-01T00:00:00Z".into(),
            last_failure: "2026-01-01T00:00:01Z".into(),
            receive_count: 2,
            message_id: "m-1".into(),
        };
        let mut attrs = Attributes::new();
        attrs.insert(FAILURE_ATTRIBUTE.into(), m.to_attribute());
        assert_eq!(FailureMetadata::from_attributes(&attrs), Some(m));
        let json = attrs[FAILURE_ATTRIBUTE].as_str().unwrap();
        assert!(json.contains("\"code\":\"HL7_NOT_ADT\""), "{json}");
    }

    #[test]
    fn detail_is_bounded_on_a_char_boundary_and_loses_control_characters() {
        let long = "é".repeat(400);
        let s = FailureMetadata::sanitise_detail(&long);
        assert!(s.len() <= MAX_DETAIL_BYTES);
        assert!(s.chars().all(|c| c == 'é'));
        assert_eq!(FailureMetadata::sanitise_detail("a\r\nb"), "ab");
    }
}
