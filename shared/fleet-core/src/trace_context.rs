//! Trace context as it crosses a queue, the bus or a topic (issue 20).
//!
//! - The W3C `traceparent` travels as a message attribute ([`TRACEPARENT_ATTRIBUTE`]). It
//!   counts against SQS's 10 attributes: a producer adds it only to a message that has room
//!   ([`set_traceparent`]), never by dropping an attribute of the message's own.
//! - On AWS the same context also travels as X-Ray's header: SQS's `AWSTraceHeader` system
//!   attribute (which counts against nothing) and an EventBridge entry's `TraceHeader`, which
//!   EventBridge hands to an SQS target as that target message's `AWSTraceHeader`.
//!
//! A consumer's parent is the `traceparent` attribute when there is one, else the X-Ray header
//! ([`extract`]). Both formats are read and written by OpenTelemetry's own propagators (the
//! SDK's W3C one and opentelemetry-aws's X-Ray one); nothing here parses a header by hand.

use std::collections::HashMap;

use opentelemetry::Context;
use opentelemetry::propagation::TextMapPropagator;
use opentelemetry::trace::{SpanContext, TraceContextExt};
use opentelemetry_sdk::propagation::TraceContextPropagator;

use crate::ports::AttributeValue;
use crate::ports::Attributes;

/// The message attribute that carries the W3C trace context.
pub const TRACEPARENT_ATTRIBUTE: &str = "traceparent";

/// SQS accepts at most 10 message attributes per message.
pub const MAX_MESSAGE_ATTRIBUTES: usize = 10;

/// The W3C header of `cx` (`00-<trace id>-<span id>-<flags>`); `None` for an invalid context.
pub fn traceparent(cx: &SpanContext) -> Option<String> {
    if !cx.is_valid() {
        return None;
    }
    let mut carrier = HashMap::new();
    TraceContextPropagator::new().inject_context(
        &Context::new().with_remote_span_context(cx.clone()),
        &mut carrier,
    );
    carrier.remove(TRACEPARENT_ATTRIBUTE)
}

/// The context a W3C header names; `None` when the header is malformed.
pub fn from_traceparent(header: &str) -> Option<SpanContext> {
    let carrier = HashMap::from([(TRACEPARENT_ATTRIBUTE.to_string(), header.to_string())]);
    let cx = TraceContextPropagator::new().extract(&carrier);
    let span = cx.span().span_context().clone();
    span.is_valid().then_some(span)
}

/// X-Ray's form of `cx` (`Root=1-<8 hex>-<24 hex>;Parent=<16 hex>;Sampled=<0|1>`), for
/// `AWSTraceHeader` and EventBridge's `TraceHeader`.
pub fn xray_header(cx: &SpanContext) -> Option<String> {
    if !cx.is_valid() {
        return None;
    }
    opentelemetry_aws::trace::xray_propagator::span_context_to_string(cx)
}

/// The context an X-Ray header names; `None` when malformed.
pub fn from_xray_header(header: &str) -> Option<SpanContext> {
    opentelemetry_aws::trace::xray_propagator::span_context_from_str(header)
        .filter(SpanContext::is_valid)
}

/// The X-Ray header for a message that carries a valid `traceparent` attribute: what an AWS
/// adapter sends as the message's `AWSTraceHeader`.
pub fn xray_header_of(attributes: &Attributes) -> Option<String> {
    let header = attributes.get(TRACEPARENT_ATTRIBUTE)?.as_str()?;
    xray_header(&from_traceparent(header)?)
}

/// The producer's context of a received message: its `traceparent` attribute, else its X-Ray
/// system attribute (`trace_header`). `None` when neither names a valid context.
pub fn extract(attributes: &Attributes, trace_header: Option<&str>) -> Option<SpanContext> {
    attributes
        .get(TRACEPARENT_ATTRIBUTE)
        .and_then(AttributeValue::as_str)
        .and_then(from_traceparent)
        .or_else(|| trace_header.and_then(from_xray_header))
}

/// Puts `cx` in the message's `traceparent` attribute, replacing an older one. Returns false,
/// changing nothing, when `cx` is invalid or the message already has 10 other attributes:
/// trace context never displaces an attribute of the message's own (on AWS the
/// `AWSTraceHeader` system attribute still carries it).
pub fn set_traceparent(attributes: &mut Attributes, cx: &SpanContext) -> bool {
    let Some(header) = traceparent(cx) else {
        return false;
    };
    let others = attributes.len() - usize::from(attributes.contains_key(TRACEPARENT_ATTRIBUTE));
    if others >= MAX_MESSAGE_ATTRIBUTES {
        return false;
    }
    attributes.insert(
        TRACEPARENT_ATTRIBUTE.to_string(),
        AttributeValue::string(header),
    );
    true
}

#[cfg(test)]
mod tests {
    use opentelemetry::trace::{SpanId, TraceFlags, TraceId, TraceState};

    use super::*;

    fn cx(sampled: bool) -> SpanContext {
        SpanContext::new(
            TraceId::from_hex("5759e988bd862e3fe1be46a994272793").unwrap(),
            SpanId::from_hex("53995c3f42cd8ad8").unwrap(),
            if sampled {
                TraceFlags::SAMPLED
            } else {
                TraceFlags::default()
            },
            true,
            TraceState::default(),
        )
    }

    #[test]
    fn traceparent_is_the_w3c_header_and_reads_back() {
        let header = traceparent(&cx(true)).unwrap();
        assert_eq!(
            header,
            "00-5759e988bd862e3fe1be46a994272793-53995c3f42cd8ad8-01"
        );
        let back = from_traceparent(&header).unwrap();
        assert_eq!(back.trace_id(), cx(true).trace_id());
        assert_eq!(back.span_id(), cx(true).span_id());
        assert!(back.is_sampled());
        assert!(back.is_remote());
    }

    #[test]
    fn malformed_headers_name_no_context() {
        for h in [
            "",
            "00-5759e988bd862e3fe1be46a994272793-53995c3f42cd8ad8",
            "00-00000000000000000000000000000000-53995c3f42cd8ad8-01",
            "zz-5759e988bd862e3fe1be46a994272793-53995c3f42cd8ad8-01",
            "Root=1-5759e988-bd862e3fe1be46a994272793",
        ] {
            assert!(from_traceparent(h).is_none(), "{h:?}");
        }
        for h in [
            "",
            "Root=1-5759e988",
            "Parent=53995c3f42cd8ad8",
            "garbage;;;",
        ] {
            assert!(from_xray_header(h).is_none(), "{h:?}");
        }
    }

    #[test]
    fn the_xray_header_is_the_same_trace_and_parent() {
        let header = xray_header(&cx(true)).unwrap();
        assert_eq!(
            header,
            "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1"
        );
        let back = from_xray_header(&header).unwrap();
        assert_eq!(back.trace_id(), cx(true).trace_id());
        assert_eq!(back.span_id(), cx(true).span_id());
        assert!(xray_header(&cx(false)).unwrap().ends_with(";Sampled=0"));
    }

    #[test]
    fn extract_prefers_the_attribute_then_the_xray_header() {
        let other = SpanContext::new(
            TraceId::from_hex("0af7651916cd43dd8448eb211c80319c").unwrap(),
            SpanId::from_hex("b7ad6b7169203331").unwrap(),
            TraceFlags::SAMPLED,
            true,
            TraceState::default(),
        );
        let xray = xray_header(&other).unwrap();
        let mut attrs = Attributes::new();
        assert!(extract(&attrs, None).is_none());
        assert_eq!(
            extract(&attrs, Some(&xray)).unwrap().trace_id(),
            other.trace_id()
        );
        assert!(set_traceparent(&mut attrs, &cx(true)));
        assert_eq!(
            extract(&attrs, Some(&xray)).unwrap().trace_id(),
            cx(true).trace_id()
        );
        // A malformed attribute falls back to the header.
        attrs.insert(
            TRACEPARENT_ATTRIBUTE.into(),
            AttributeValue::string("not a header"),
        );
        assert_eq!(
            extract(&attrs, Some(&xray)).unwrap().trace_id(),
            other.trace_id()
        );
        assert_eq!(xray_header_of(&attrs), None);
    }

    #[test]
    fn set_traceparent_keeps_the_budget_of_ten_and_never_drops_an_attribute() {
        let mut attrs: Attributes = (0..9)
            .map(|i| (format!("a{i}"), AttributeValue::string("v")))
            .collect();
        assert!(set_traceparent(&mut attrs, &cx(true)));
        assert_eq!(attrs.len(), 10);
        // Replacing its own attribute needs no extra room.
        assert!(set_traceparent(&mut attrs, &cx(false)));
        assert_eq!(
            attrs[TRACEPARENT_ATTRIBUTE].as_str().unwrap(),
            traceparent(&cx(false)).unwrap()
        );
        let mut full: Attributes = (0..10)
            .map(|i| (format!("a{i}"), AttributeValue::string("v")))
            .collect();
        let before = full.clone();
        assert!(!set_traceparent(&mut full, &cx(true)));
        assert_eq!(full, before);
        assert!(!set_traceparent(
            &mut Attributes::new(),
            &SpanContext::empty_context()
        ));
        assert_eq!(
            xray_header_of(&attrs).unwrap(),
            xray_header(&cx(false)).unwrap()
        );
    }
}
