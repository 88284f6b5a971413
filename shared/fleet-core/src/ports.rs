//! The ports. Each is bound to one resource (a queue, a bus, a table, a bucket); a
//! [`crate::Backend`] hands them out by name.

use std::collections::BTreeMap;
use std::time::Duration;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use crate::error::PortError;

// ---------------------------------------------------------------------------------------------
// Message queue
// ---------------------------------------------------------------------------------------------

/// An SQS message attribute value. `data_type` is "String", "Number" or "Binary", optionally
/// with a custom suffix ("String.json").
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AttributeValue {
    pub data_type: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub string_value: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub binary_value: Option<Vec<u8>>,
}

impl AttributeValue {
    pub fn string(v: impl Into<String>) -> Self {
        Self {
            data_type: "String".into(),
            string_value: Some(v.into()),
            binary_value: None,
        }
    }
    pub fn number(v: impl ToString) -> Self {
        Self {
            data_type: "Number".into(),
            string_value: Some(v.to_string()),
            binary_value: None,
        }
    }
    pub fn binary(v: Vec<u8>) -> Self {
        Self {
            data_type: "Binary".into(),
            string_value: None,
            binary_value: Some(v),
        }
    }
    pub fn as_str(&self) -> Option<&str> {
        self.string_value.as_deref()
    }
}

pub type Attributes = BTreeMap<String, AttributeValue>;

/// A message attribute saying how the body is encoded. Its one value, [`BODY_ENCODING_BASE64`],
/// marks a body that is the base64 (standard alphabet, padded) of the original bytes: bytes
/// that are not UTF-8 (an HL7 message in ISO 8859-1) or hold characters SQS does not carry.
/// Absent: the body is the original text.
pub const BODY_ENCODING_ATTRIBUTE: &str = "fleet.body-encoding";
/// The value of [`BODY_ENCODING_ATTRIBUTE`] for a base64 body.
pub const BODY_ENCODING_BASE64: &str = "base64";

/// `bytes` as text SQS carries unchanged, or `None` when they must be sent base64 (with
/// [`BODY_ENCODING_ATTRIBUTE`]): `Some` when they are UTF-8 and every character is one SQS
/// accepts in a body (`#x9 | #xA | #xD | #x20-#xD7FF | #xE000-#xFFFD | #x10000-#x10FFFF`).
/// So NUL, the MLLP start block 0x0B and other C0 controls, U+FFFE and U+FFFF, and any byte
/// sequence that is not UTF-8 (an ISO 8859-1 `é`, 0xE9) give `None`. (Surrogates cannot occur
/// in a `str`.)
pub fn sqs_safe_text(bytes: &[u8]) -> Option<&str> {
    let text = std::str::from_utf8(bytes).ok()?;
    text.chars().all(sqs_accepts).then_some(text)
}

/// Whether SQS accepts `c` in a message body.
fn sqs_accepts(c: char) -> bool {
    matches!(c, '\t' | '\n' | '\r' | '\u{20}'..='\u{D7FF}' | '\u{E000}'..='\u{FFFD}')
        || c >= '\u{10000}'
}

/// A message as received. `receipt` is only valid for this receive.
#[derive(Debug, Clone)]
pub struct ReceivedMessage {
    pub message_id: String,
    pub receipt: String,
    pub body: String,
    pub attributes: Attributes,
    /// ApproximateReceiveCount, counting this receive (so >= 1).
    pub receive_count: u32,
    /// SentTimestamp, milliseconds since the epoch.
    pub sent_timestamp_ms: i64,
    /// FIFO only.
    pub group_id: Option<String>,
    /// FIFO only.
    pub dedup_id: Option<String>,
    /// FIFO only.
    pub sequence_number: Option<String>,
    /// The `AWSTraceHeader` system attribute (X-Ray format), set by an X-Ray-aware producer or
    /// by EventBridge delivering to this queue (`crate::trace_context`).
    pub trace_header: Option<String>,
}

/// A message to send.
#[derive(Debug, Clone, Default)]
pub struct OutgoingMessage {
    pub body: String,
    pub attributes: Attributes,
    pub delay: Option<Duration>,
    /// Required on FIFO queues.
    pub group_id: Option<String>,
    /// FIFO without content-based deduplication needs one.
    pub dedup_id: Option<String>,
}

/// One entry of a batch call that failed; the others succeeded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EntryFailure {
    /// Index into the request slice.
    pub index: usize,
    /// The service's code ("ReceiptHandleIsInvalid", "InternalError", ...).
    pub code: String,
    /// Whether the service says it was the sender's fault (then retrying will not help).
    pub sender_fault: bool,
}

/// Per-entry result of a batch call: the entries that failed; all others succeeded.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BatchResult {
    pub failed: Vec<EntryFailure>,
}

impl BatchResult {
    pub fn all_ok(&self) -> bool {
        self.failed.is_empty()
    }
}

/// Redrive policy of a source queue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RedrivePolicy {
    /// The DLQ's ARN (aws) or name (local).
    pub dead_letter_target: String,
    pub max_receive_count: u32,
}

/// Queue attributes the runtime and operators need.
#[derive(Debug, Clone, Default)]
pub struct QueueAttributes {
    pub fifo: bool,
    /// SSE-KMS key id when KMS-encrypted.
    pub kms_key_id: Option<String>,
    /// SSE-SQS (SQS-managed keys).
    pub sqs_managed_sse: bool,
    pub redrive_policy: Option<RedrivePolicy>,
    pub visibility_timeout: Duration,
    pub approximate_visible: u64,
    pub approximate_in_flight: u64,
    pub approximate_delayed: u64,
    /// The queue's ARN (aws) or a `local:` pseudo-ARN.
    pub arn: String,
    /// The largest body (plus attributes) the queue accepts, in bytes (`MaximumMessageSize`),
    /// when the backend says.
    pub max_message_bytes: Option<u64>,
}

impl QueueAttributes {
    pub fn encrypted(&self) -> bool {
        self.kms_key_id.is_some() || self.sqs_managed_sse
    }
}

/// An SQS-like queue.
#[async_trait]
pub trait MessageQueue: Send + Sync {
    /// The queue's URL (aws) or name (local); safe to log.
    fn id(&self) -> &str;

    /// Receive up to `max` (1..=10) messages, waiting up to `wait` for the first one.
    /// `visibility` overrides the queue's visibility timeout for these messages.
    async fn receive(
        &self,
        max: u32,
        wait: Duration,
        visibility: Option<Duration>,
    ) -> Result<Vec<ReceivedMessage>, PortError>;

    /// Delete up to 10 messages by receipt handle. A stale or unknown receipt is reported per
    /// entry, not as an error of the call.
    async fn delete_batch(&self, receipts: &[String]) -> Result<BatchResult, PortError>;

    /// Change the visibility of up to 10 messages (0 releases them).
    async fn change_visibility_batch(
        &self,
        entries: &[(String, Duration)],
    ) -> Result<BatchResult, PortError>;

    /// Send one message; returns the message id.
    async fn send(&self, message: OutgoingMessage) -> Result<String, PortError>;

    /// Send up to 10 messages; per-entry failures are reported in the result.
    async fn send_batch(&self, messages: &[OutgoingMessage]) -> Result<BatchResult, PortError>;

    async fn attributes(&self) -> Result<QueueAttributes, PortError>;
}

// ---------------------------------------------------------------------------------------------
// Event bus
// ---------------------------------------------------------------------------------------------

/// One event to put on a bus.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BusEvent {
    pub source: String,
    pub detail_type: String,
    /// JSON object, serialised.
    pub detail: String,
    #[serde(default)]
    pub resources: Vec<String>,
    /// RFC 3339; the adapter uses now when absent.
    #[serde(default)]
    pub time: Option<String>,
    /// The producer's trace context in X-Ray form (PutEvents' `TraceHeader`), which the bus
    /// hands to each SQS target as its message's `AWSTraceHeader`. Not part of the entry's
    /// size.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trace_header: Option<String>,
}

/// EventBridge's PutEvents limit: the entry sizes of one request ([`BusEvent::entry_size`])
/// must add up to less than this ("The total entry size must be less than 256KB").
pub const MAX_PUT_EVENTS_BYTES: usize = 256 * 1024;

impl BusEvent {
    /// The entry's size as EventBridge computes it ("Calculating PutEvents event entry
    /// size"): 14 bytes for a Time when one is set, the UTF-8 bytes of Source and DetailType,
    /// of Detail and of each Resources entry. The bus name and the JSON framing do not count.
    pub fn entry_size(&self) -> usize {
        self.time.as_ref().map_or(0, |_| 14)
            + self.source.len()
            + self.detail_type.len()
            + self.detail.len()
            + self.resources.iter().map(String::len).sum::<usize>()
    }
}

/// An EventBridge-like bus.
#[async_trait]
pub trait EventBus: Send + Sync {
    fn id(&self) -> &str;
    /// Put up to 10 events. Per-entry failures are reported in the result.
    async fn put_events(&self, events: &[BusEvent]) -> Result<BatchResult, PortError>;
}

// ---------------------------------------------------------------------------------------------
// Records
// ---------------------------------------------------------------------------------------------

/// A record: partition key, sort key, an ordering number used by [`Condition::OrderBelow`],
/// an optional expiry, and a JSON object of data.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Record {
    pub pk: String,
    pub sk: String,
    /// A monotonic ordering value (e.g. message time in ms) for no-regression updates.
    pub order: i64,
    /// Epoch seconds after which the record may be removed (DynamoDB TTL).
    pub expires_at: Option<i64>,
    pub data: serde_json::Value,
}

/// A condition on a write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Condition {
    /// Unconditional.
    None,
    /// Only if no record with this key exists.
    NotExists,
    /// Only if no record exists or the existing record's `order` is below this value.
    OrderBelow(i64),
    /// Only if a record exists and its `order` equals this value (an owner token: the
    /// idempotency store settles a claim only while the record still holds its token).
    OrderEquals(i64),
}

#[derive(Debug, Clone, PartialEq)]
pub struct ConditionalPut {
    pub record: Record,
    pub condition: Condition,
}

/// Outcome of a conditional write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PutOutcome {
    Written,
    ConditionFailed,
}

/// Outcome of an all-or-nothing write of several records.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TransactOutcome {
    Written,
    /// Nothing was written; these indexes failed their condition.
    ConditionFailed(Vec<usize>),
}

/// A DynamoDB-like table, bound to one table.
#[async_trait]
pub trait RecordStore: Send + Sync {
    fn id(&self) -> &str;
    async fn put(&self, put: ConditionalPut) -> Result<PutOutcome, PortError>;
    async fn get(&self, pk: &str, sk: &str) -> Result<Option<Record>, PortError>;
    /// Write all or none (at most 100 items). One request on DynamoDB (TransactWriteItems).
    async fn transact_put(&self, puts: &[ConditionalPut]) -> Result<TransactOutcome, PortError>;
    /// All records of a partition, in sort-key order.
    async fn query(&self, pk: &str) -> Result<Vec<Record>, PortError>;
    /// Remove a record; removing one that does not exist is not an error (DynamoDB
    /// DeleteItem without a condition).
    async fn delete(&self, pk: &str, sk: &str) -> Result<(), PortError>;
}

// ---------------------------------------------------------------------------------------------
// Object store
// ---------------------------------------------------------------------------------------------

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ObjectMeta {
    pub size: u64,
    pub content_type: Option<String>,
    pub etag: Option<String>,
    pub version_id: Option<String>,
}

/// What a bounded read ([`ObjectStore::get_limited`]) found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LimitedGet {
    /// The whole object: at most the limit.
    Read(Vec<u8>, ObjectMeta),
    /// The object holds more than the limit. Nothing was kept: no more than `limit + 1`
    /// bytes were read, none when the stored size already said so.
    TooLarge,
}

/// An S3-like bucket.
#[async_trait]
pub trait ObjectStore: Send + Sync {
    fn id(&self) -> &str;
    /// `Ok(None)` when the key does not exist.
    async fn get(&self, key: &str) -> Result<Option<(Vec<u8>, ObjectMeta)>, PortError>;
    /// Like [`get`](Self::get), but never holds more than `max_bytes + 1` bytes of the object:
    /// the body is read incrementally and the read stops at the limit ([`LimitedGet::TooLarge`]).
    /// Every implementation must bound its read; there is no default that reads it whole.
    async fn get_limited(&self, key: &str, max_bytes: u64)
    -> Result<Option<LimitedGet>, PortError>;
    async fn head(&self, key: &str) -> Result<Option<ObjectMeta>, PortError>;
    /// Stores encrypted (SSE-KMS on AWS).
    async fn put(
        &self,
        key: &str,
        bytes: Vec<u8>,
        content_type: &str,
    ) -> Result<ObjectMeta, PortError>;
}

// ---------------------------------------------------------------------------------------------
// Notifications
// ---------------------------------------------------------------------------------------------

/// Where a notification goes: an SNS topic (by ARN; a local name on the local backend) or an
/// SMS number in E.164 form (`+15555550123`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Destination {
    Topic(String),
    Sms(String),
}

impl Destination {
    /// Parse `arn:aws:sns:...` / `local:NAME` / `topic:NAME` as a topic and `sms:+NNN` or a bare
    /// `+NNN` as an SMS number. `None` when it is neither.
    pub fn parse(s: &str) -> Option<Destination> {
        let s = s.trim();
        let sms = s.strip_prefix("sms:").unwrap_or(s);
        if let Some(digits) = sms.strip_prefix('+') {
            let ok = (8..=15).contains(&digits.len()) && digits.bytes().all(|b| b.is_ascii_digit());
            return ok.then(|| Destination::Sms(sms.to_string()));
        }
        if s.starts_with("sms:") {
            return None;
        }
        let topic = s.strip_prefix("topic:").unwrap_or(s);
        let valid_name = |n: &str| {
            !n.is_empty()
                && n.len() <= 256
                && n.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
        };
        if let Some(rest) = topic.strip_prefix("arn:") {
            // arn:PARTITION:sns:REGION:ACCOUNT:NAME
            let parts: Vec<&str> = rest.split(':').collect();
            let ok = parts.len() == 5 && parts[1] == "sns" && valid_name(parts[4]);
            return ok.then(|| Destination::Topic(topic.to_string()));
        }
        valid_name(topic).then(|| Destination::Topic(topic.to_string()))
    }

    /// Safe to log for topics; an SMS number is a personal contact detail, so only its last
    /// two digits are shown.
    pub fn redacted(&self) -> String {
        match self {
            Destination::Topic(t) => t.clone(),
            Destination::Sms(n) => {
                let tail: String = n
                    .chars()
                    .rev()
                    .take(2)
                    .collect::<Vec<_>>()
                    .into_iter()
                    .rev()
                    .collect();
                format!("sms:+…{tail}")
            }
        }
    }
}

/// One notification: subject (e-mail endpoints show it; SMS ignores it), body, and string
/// message attributes (SNS subscription filter policies match on them).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Notification {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject: Option<String>,
    pub body: String,
    #[serde(default)]
    pub attributes: BTreeMap<String, String>,
    /// FIFO topics: the deduplication id (the fleet uses event id + rule).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dedup_id: Option<String>,
    /// FIFO topics: the message group.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group_id: Option<String>,
}

/// An SNS-like publisher.
#[async_trait]
pub trait Notifier: Send + Sync {
    /// Publish one notification; returns the service's message id. A topic that does not
    /// exist is `NotFound`, a refused request `Invalid`, throttling `Throttled`.
    async fn publish(
        &self,
        destination: &Destination,
        notification: &Notification,
    ) -> Result<String, PortError>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entry_size_counts_utf8_fields_each_resource_and_14_bytes_for_a_time() {
        let mut e = BusEvent {
            source: "fleet.é".into(),
            detail_type: "Admitted".into(),
            detail: "{\"n\":1}".into(),
            resources: vec![],
            time: None,
            trace_header: None,
        };
        assert_eq!(e.entry_size(), 8 + 8 + 7);
        e.resources = vec!["arn:a".into(), "ü".into()];
        e.time = Some("2026-01-01T00:00:00.123456Z".into());
        assert_eq!(e.entry_size(), 8 + 8 + 7 + 5 + 2 + 14);
    }

    #[test]
    fn sqs_safe_text_takes_utf8_sqs_accepts_and_refuses_the_rest() {
        // Tab, CR, LF and printable ASCII, accented UTF-8, the last BMP character SQS takes and
        // one beyond the BMP: carried as text.
        for ok in [
            "MSH|^~\\&|A\rPID|1\t|\n".as_bytes(),
            "Ren\u{e9}e M\u{fc}ller \u{4e2d}".as_bytes(),
            "\u{FFFD}\u{E000}\u{D7FF}\u{10000}\u{10FFFF}".as_bytes(),
            b"",
        ] {
            assert_eq!(
                sqs_safe_text(ok),
                Some(std::str::from_utf8(ok).unwrap()),
                "{ok:?}"
            );
        }
        // NUL, the MLLP start block, another C0 control, U+FFFE, U+FFFF, and a lone ISO 8859-1
        // 0xE9 (`é`, not UTF-8): base64.
        for bad in [
            b"MSH|\0|".as_slice(),
            b"\x0bMSH|^~\\&|",
            b"a\x1fb",
            "x\u{FFFE}".as_bytes(),
            "x\u{FFFF}".as_bytes(),
            b"PID|||Ren\xe9e",
        ] {
            assert_eq!(sqs_safe_text(bad), None, "{bad:?}");
        }
    }
}
