//! Building the message the runtime sends to a dead-letter queue: the original body and
//! attributes plus one failure-metadata attribute.

use fleet_core::failure::FAILURE_ATTRIBUTE;
use fleet_core::{ErrorCode, FailureMetadata, OutgoingMessage, ReceivedMessage};

/// SQS accepts at most 10 message attributes per message.
pub const MAX_ATTRIBUTES: usize = 10;

/// Where and when a failure happened.
#[derive(Debug, Clone)]
pub struct FailureContext<'a> {
    pub worker: &'a str,
    pub source_queue: &'a str,
    /// RFC 3339, now.
    pub now: &'a str,
    pub dlq_fifo: bool,
}

/// The DLQ copy of `msg` and the names of original attributes dropped to make room.
///
/// Decision (documented in DESIGN.md): when the original already has 10 attributes, the
/// failure attribute wins over the last original attributes in name order, because without
/// it `dlq-replay` cannot tell why or where to replay. Dropped names (never values) are
/// appended to the detail so an operator can see what the copy lacks.
pub fn build(
    msg: &ReceivedMessage,
    code: ErrorCode,
    detail: &str,
    ctx: &FailureContext<'_>,
) -> (OutgoingMessage, Vec<String>) {
    let previous = FailureMetadata::from_attributes(&msg.attributes);
    let mut attributes = msg.attributes.clone();
    attributes.remove(FAILURE_ATTRIBUTE);
    let mut dropped = Vec::new();
    while attributes.len() >= MAX_ATTRIBUTES {
        match attributes.pop_last() {
            Some((name, _)) => dropped.push(name),
            None => break,
        }
    }
    dropped.reverse();
    let detail = if dropped.is_empty() {
        FailureMetadata::sanitise_detail(detail)
    } else {
        FailureMetadata::sanitise_detail(&format!(
            "{detail}; attributes dropped for room: {}",
            dropped.join(",")
        ))
    };
    let metadata = FailureMetadata {
        code,
        detail,
        worker: ctx.worker.to_string(),
        source_queue: ctx.source_queue.to_string(),
        // A replayed message that fails again keeps the time of its first failure.
        first_failure: previous
            .map(|p| p.first_failure)
            .unwrap_or_else(|| ctx.now.to_string()),
        last_failure: ctx.now.to_string(),
        receive_count: msg.receive_count,
        message_id: msg.message_id.clone(),
    };
    attributes.insert(FAILURE_ATTRIBUTE.to_string(), metadata.to_attribute());
    let (group_id, dedup_id) = if ctx.dlq_fifo {
        (
            // A standard source cannot have a FIFO DLQ on SQS; locally fall back to the id.
            Some(
                msg.group_id
                    .clone()
                    .unwrap_or_else(|| msg.message_id.clone()),
            ),
            Some(format!("{}-{}", msg.message_id, msg.receive_count)),
        )
    } else {
        (None, None)
    };
    let out = OutgoingMessage {
        body: msg.body.clone(),
        attributes,
        delay: None,
        group_id,
        dedup_id,
    };
    (out, dropped)
}

#[cfg(test)]
mod tests {
    use super::*;
    use fleet_core::{AttributeValue, Attributes};

    fn received(attributes: Attributes, group: Option<&str>) -> ReceivedMessage {
        ReceivedMessage {
            message_id: "m-1".into(),
            receipt: "r".into(),
            body: "MSH|^~\\&|secret".into(),
            attributes,
            receive_count: 3,
            sent_timestamp_ms: 0,
            group_id: group.map(str::to_string),
            dedup_id: None,
            sequence_number: None,
        }
    }

    fn ctx(fifo: bool) -> FailureContext<'static> {
        FailureContext {
            worker: "w",
            source_queue: "src",
            now: "2026-02-01T00:00:00Z",
            dlq_fifo: fifo,
        }
    }

    #[test]
    fn keeps_body_and_attributes_and_adds_metadata() {
        let attrs: Attributes =
            [("correlation_id".to_string(), AttributeValue::string("c-9"))].into();
        let msg = received(attrs, None);
        let (out, dropped) = build(&msg, ErrorCode::Hl7NotAdt, "MSH-9 is ORU\n", &ctx(false));
        assert!(dropped.is_empty());
        assert_eq!(out.body, msg.body);
        assert_eq!(
            out.attributes["correlation_id"],
            AttributeValue::string("c-9")
        );
        assert_eq!(out.group_id, None);
        assert_eq!(out.dedup_id, None);
        let m = FailureMetadata::from_attributes(&out.attributes).unwrap();
        assert_eq!(m.code, ErrorCode::Hl7NotAdt);
        assert_eq!(m.detail, "MSH-9 is ORU");
        assert_eq!((m.worker.as_str(), m.source_queue.as_str()), ("w", "src"));
        assert_eq!(m.first_failure, "2026-02-01T00:00:00Z");
        assert_eq!(m.last_failure, "2026-02-01T00:00:00Z");
        assert_eq!((m.receive_count, m.message_id.as_str()), (3, "m-1"));
    }

    #[test]
    fn a_replayed_message_keeps_its_first_failure_time() {
        let old = FailureMetadata {
            code: ErrorCode::RetriesExhausted,
            detail: "x".into(),
            worker: "w".into(),
            source_queue: "src".into(),
            first_failure: "2025-12-24T10:00:00Z".into(),
            last_failure: "2025-12-24T11:00:00Z".into(),
            receive_count: 5,
            message_id: "m-0".into(),
        };
        let attrs: Attributes = [(FAILURE_ATTRIBUTE.to_string(), old.to_attribute())].into();
        let (out, _) = build(
            &received(attrs, None),
            ErrorCode::DownstreamRejected,
            "no",
            &ctx(false),
        );
        let m = FailureMetadata::from_attributes(&out.attributes).unwrap();
        assert_eq!(m.first_failure, "2025-12-24T10:00:00Z");
        assert_eq!(m.last_failure, "2026-02-01T00:00:00Z");
        assert_eq!(m.code, ErrorCode::DownstreamRejected);
        assert_eq!(out.attributes.len(), 1);
    }

    #[test]
    fn fifo_copy_keeps_the_group_and_dedups_per_receive() {
        let (out, _) = build(
            &received(Attributes::new(), Some("patient-7")),
            ErrorCode::Hl7ParseError,
            "",
            &ctx(true),
        );
        assert_eq!(out.group_id.as_deref(), Some("patient-7"));
        assert_eq!(out.dedup_id.as_deref(), Some("m-1-3"));
    }

    #[test]
    fn ten_attributes_make_room_for_the_failure_attribute() {
        let attrs: Attributes = (0..10)
            .map(|i| (format!("a{i}"), AttributeValue::number(i)))
            .collect();
        let (out, dropped) = build(
            &received(attrs, None),
            ErrorCode::Hl7NotAdt,
            "bad",
            &ctx(false),
        );
        assert_eq!(dropped, vec!["a9".to_string()]);
        assert_eq!(out.attributes.len(), MAX_ATTRIBUTES);
        assert!(out.attributes.contains_key("a8"));
        let m = FailureMetadata::from_attributes(&out.attributes).unwrap();
        assert_eq!(m.detail, "bad; attributes dropped for room: a9");
    }
}
