//! Building the message the runtime sends to a dead-letter queue: the original body and
//! attributes plus one failure-metadata attribute, within SQS's count and size limits.

use fleet_core::failure::FAILURE_ATTRIBUTE;
use fleet_core::{
    AttributeValue, Attributes, ErrorCode, FailureMetadata, OutgoingMessage, ReceivedMessage,
};

/// SQS accepts at most 10 message attributes per message.
pub const MAX_ATTRIBUTES: usize = 10;

/// SQS's message size limit (256 KiB), counting the body and every attribute's name, data
/// type and value, as the local backend enforces it.
pub const MAX_MESSAGE_BYTES: usize = 256 * 1024;

/// A message's size as SQS counts it against [`MAX_MESSAGE_BYTES`].
pub fn message_size(body: &str, attributes: &Attributes) -> usize {
    body.len()
        + attributes
            .iter()
            .map(|(name, v)| name.len() + attribute_value_size(v))
            .sum::<usize>()
}

fn attribute_value_size(v: &AttributeValue) -> usize {
    v.data_type.len()
        + v.string_value.as_ref().map_or(0, String::len)
        + v.binary_value.as_ref().map_or(0, Vec::len)
}

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
///
/// Size: the copy must fit [`MAX_MESSAGE_BYTES`] or the move would fail. The body is never
/// touched; the detail is truncated to what fits, and only when not even an empty detail fits
/// does an original attribute (the last in name order) give way, one at a time. A body so
/// large that nothing but itself fits is sent with the shortest failure attribute; only a DLQ
/// configured above 256 KiB takes it (otherwise the send fails and the message is retried,
/// never deleted).
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
    let full_detail = |dropped: &[String]| {
        if dropped.is_empty() {
            FailureMetadata::sanitise_detail(detail)
        } else {
            FailureMetadata::sanitise_detail(&format!(
                "{detail}; attributes dropped for room: {}",
                dropped.join(",")
            ))
        }
    };
    let mut metadata = FailureMetadata {
        code,
        detail: String::new(),
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
    let failure = loop {
        let others = message_size(&msg.body, &attributes) + FAILURE_ATTRIBUTE.len();
        if let Some(fitted) = fit_detail(&mut metadata, full_detail(&dropped), others) {
            break fitted;
        }
        match attributes.pop_last() {
            Some((name, _)) => dropped.insert(0, name),
            None => break metadata.to_attribute(),
        }
    };
    attributes.insert(FAILURE_ATTRIBUTE.to_string(), failure);
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

/// Cuts `detail` (on a char boundary) until the failure attribute plus `others` bytes fits
/// [`MAX_MESSAGE_BYTES`], and returns the attribute; `None` (detail left empty) when not even
/// an empty detail fits.
fn fit_detail(
    metadata: &mut FailureMetadata,
    mut detail: String,
    others: usize,
) -> Option<AttributeValue> {
    loop {
        metadata.detail = detail.clone();
        let value = metadata.to_attribute();
        let size = others + attribute_value_size(&value);
        if size <= MAX_MESSAGE_BYTES {
            return Some(value);
        }
        if detail.is_empty() {
            return None;
        }
        // Each byte cut from the detail shortens the JSON by at least one byte (escapes by
        // more), so this converges in a step or two.
        let mut end = detail.len().saturating_sub(size - MAX_MESSAGE_BYTES);
        while !detail.is_char_boundary(end) {
            end -= 1;
        }
        detail.truncate(end);
    }
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
            trace_header: None,
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

    fn with_body(body: String, attributes: Attributes) -> ReceivedMessage {
        ReceivedMessage {
            body,
            message_id: "0b7e4c8a-5f7d-4f4e-9a53-2f1d8c6b9e10".into(),
            ..received(attributes, None)
        }
    }

    /// What the copy would weigh with this detail and no other attribute than the failure's.
    fn failure_size(msg: &ReceivedMessage, detail: &str) -> usize {
        let (out, _) = build(msg, ErrorCode::Hl7ParseError, detail, &ctx(false));
        message_size("", &out.attributes)
    }

    #[test]
    fn a_copy_near_the_size_limit_keeps_its_body_and_truncates_the_detail() {
        let detail = "d".repeat(300);
        let probe = with_body("b".into(), Attributes::new());
        // Room for the failure attribute with a 100-byte detail, not with the full 256.
        let body_len = MAX_MESSAGE_BYTES - failure_size(&probe, &detail[..100]);
        let msg = with_body("b".repeat(body_len), Attributes::new());
        let (out, dropped) = build(&msg, ErrorCode::Hl7ParseError, &detail, &ctx(false));
        assert!(dropped.is_empty());
        assert_eq!(out.body, msg.body);
        assert_eq!(message_size(&out.body, &out.attributes), MAX_MESSAGE_BYTES);
        let m = FailureMetadata::from_attributes(&out.attributes).unwrap();
        assert_eq!(m.detail, "d".repeat(100));
    }

    #[test]
    fn an_original_attribute_gives_way_only_when_no_detail_fits() {
        let attrs: Attributes = [
            ("a".to_string(), AttributeValue::string("v".repeat(50))),
            ("z".to_string(), AttributeValue::string("v".repeat(500))),
        ]
        .into();
        let probe = with_body("b".into(), Attributes::new());
        let body_len = MAX_MESSAGE_BYTES - failure_size(&probe, "") - 100;
        let msg = with_body("b".repeat(body_len), attrs);
        let (out, dropped) = build(&msg, ErrorCode::Hl7ParseError, "why", &ctx(false));
        assert_eq!(dropped, vec!["z".to_string()]);
        assert_eq!(out.body, msg.body);
        assert!(out.attributes.contains_key("a"));
        assert!(message_size(&out.body, &out.attributes) <= MAX_MESSAGE_BYTES);
        let m = FailureMetadata::from_attributes(&out.attributes).unwrap();
        assert!("why; attributes dropped for room: z".starts_with(&m.detail));
    }

    #[test]
    fn a_body_that_leaves_no_room_still_gets_the_shortest_failure_attribute() {
        let msg = with_body(
            "b".repeat(MAX_MESSAGE_BYTES),
            [("a".to_string(), AttributeValue::string("v"))].into(),
        );
        let (out, dropped) = build(&msg, ErrorCode::Hl7ParseError, "why", &ctx(false));
        assert_eq!(dropped, vec!["a".to_string()]);
        assert_eq!(out.body, msg.body);
        let m = FailureMetadata::from_attributes(&out.attributes).unwrap();
        assert_eq!((m.code, m.detail.as_str()), (ErrorCode::Hl7ParseError, ""));
    }
}
