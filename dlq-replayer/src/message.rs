//! A dead-lettered message as `dlq-replay` sees it: the received message and its failure
//! attribute, read leniently.

use fleet_core::ReceivedMessage;
use fleet_core::failure::FAILURE_ATTRIBUTE;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

/// The code shown for a message without a readable failure attribute: SQS's own redrive after
/// `maxReceiveCount` (a crashed worker, a message handed back too often) or a producer outside
/// the fleet.
pub use fleet_core::failure::REDRIVEN_WITHOUT_FAILURE;

/// The failure attribute, every field optional and the code a plain string, so a message
/// written by a newer worker (a code this build does not know) is still grouped and replayed.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Failure {
    pub code: String,
    pub detail: String,
    pub worker: String,
    pub source_queue: String,
    pub first_failure: String,
    pub last_failure: String,
    pub receive_count: u32,
    pub message_id: String,
}

/// One message held by a scan.
#[derive(Debug, Clone)]
pub struct Dead {
    pub msg: ReceivedMessage,
    pub failure: Option<Failure>,
}

impl Dead {
    pub fn new(msg: ReceivedMessage) -> Self {
        let failure = msg
            .attributes
            .get(FAILURE_ATTRIBUTE)
            .and_then(|v| v.as_str())
            .and_then(|s| serde_json::from_str::<Failure>(s).ok())
            .filter(|f| !f.code.is_empty());
        Self { msg, failure }
    }

    pub fn id(&self) -> &str {
        &self.msg.message_id
    }

    pub fn code(&self) -> &str {
        self.failure
            .as_ref()
            .map_or(REDRIVEN_WITHOUT_FAILURE, |f| f.code.as_str())
    }

    /// How often the message was received: the failure attribute's count when a worker wrote
    /// one, else the DLQ's own ApproximateReceiveCount as this scan read it (SQS carries the
    /// source queue's receives over on a redrive; the scan's receive is included).
    pub fn receive_count(&self) -> u32 {
        self.failure
            .as_ref()
            .map_or(self.msg.receive_count, |f| f.receive_count)
    }

    pub fn worker(&self) -> &str {
        self.failure.as_ref().map_or("", |f| f.worker.as_str())
    }

    /// The queue the failure attribute says the message came from.
    pub fn source_queue(&self) -> Option<&str> {
        self.failure
            .as_ref()
            .map(|f| f.source_queue.as_str())
            .filter(|s| !s.is_empty())
    }

    /// When the message last failed, in ms since the epoch: the failure attribute's
    /// `last_failure`, else the time it was sent to the DLQ (SQS's own redrive keeps the
    /// original SentTimestamp, which is then the best we know).
    pub fn failed_at_ms(&self) -> i64 {
        self.failure
            .as_ref()
            .and_then(|f| parse_ms(&f.last_failure))
            .unwrap_or(self.msg.sent_timestamp_ms)
    }

    /// When the message first failed (ms): `first_failure`, else as [`Self::failed_at_ms`].
    pub fn first_failed_at_ms(&self) -> i64 {
        self.failure
            .as_ref()
            .and_then(|f| parse_ms(&f.first_failure))
            .unwrap_or_else(|| self.failed_at_ms())
    }

    /// Names of the message attributes, sorted (values are never shown: they can be PHI).
    pub fn attribute_names(&self) -> Vec<String> {
        self.msg.attributes.keys().cloned().collect()
    }
}

/// RFC 3339 to ms since the epoch.
pub fn parse_ms(s: &str) -> Option<i64> {
    let t = OffsetDateTime::parse(s, &Rfc3339).ok()?;
    i64::try_from(t.unix_timestamp_nanos() / 1_000_000).ok()
}

/// ms since the epoch to RFC 3339 (UTC, second precision).
pub fn format_ms(ms: i64) -> String {
    OffsetDateTime::from_unix_timestamp(ms.div_euclid(1000))
        .ok()
        .and_then(|t| t.format(&Rfc3339).ok())
        .unwrap_or_else(|| ms.to_string())
}

/// Now, in ms since the epoch.
pub fn now_ms() -> i64 {
    i64::try_from(OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use fleet_core::{AttributeValue, Attributes};

    fn received(attributes: Attributes) -> ReceivedMessage {
        ReceivedMessage {
            message_id: "d-1".into(),
            receipt: "r".into(),
            body: "b".into(),
            attributes,
            receive_count: 1,
            sent_timestamp_ms: 1_700_000_000_000,
            group_id: None,
            dedup_id: None,
            sequence_number: None,
            trace_header: None,
        }
    }

    #[test]
    fn reads_a_code_this_build_does_not_know() {
        let json = r#"{"code":"SOME_FUTURE_CODE","source_queue":"q","last_failure":"2026-01-02T03:04:05Z"}"#;
        let attrs: Attributes =
            [(FAILURE_ATTRIBUTE.to_string(), AttributeValue::string(json))].into();
        let d = Dead::new(received(attrs));
        assert_eq!(d.code(), "SOME_FUTURE_CODE");
        assert_eq!(d.source_queue(), Some("q"));
        assert_eq!(d.failed_at_ms(), 1_767_323_045_000);
        assert_eq!(format_ms(d.failed_at_ms()), "2026-01-02T03:04:05Z");
    }

    #[test]
    fn without_the_attribute_the_sent_time_stands_in() {
        let attrs: Attributes = [
            (
                FAILURE_ATTRIBUTE.to_string(),
                AttributeValue::string("not json"),
            ),
            ("b".to_string(), AttributeValue::string("x")),
        ]
        .into();
        let d = Dead::new(received(attrs));
        assert_eq!(d.code(), REDRIVEN_WITHOUT_FAILURE);
        assert_eq!(d.source_queue(), None);
        assert_eq!(d.failed_at_ms(), 1_700_000_000_000);
        assert_eq!(
            d.attribute_names(),
            vec!["b".to_string(), FAILURE_ATTRIBUTE.into()]
        );
    }
}
