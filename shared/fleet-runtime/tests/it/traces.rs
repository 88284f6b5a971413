//! Trace context across a queue and the bus (issue 20), on the local backend, with the spans
//! collected by OpenTelemetry's in-memory exporter: a producer sends with `traceparent`; the
//! runtime's receive span links to it and its process span is its child; the handler's publish
//! is a child of the process span, and the event reaches the rule's target queue carrying that
//! publish span's context as the message's `AWSTraceHeader`.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use fleet_core::trace_context;
use fleet_core::{Backend, BusEvent, OutgoingMessage};
use fleet_runtime::otel;
use fleet_runtime::{Delivery, EventPublisher, Handler, Outcome};
use opentelemetry::trace::{SpanId, SpanKind, TraceId};
use opentelemetry_sdk::trace::{InMemorySpanExporter, SdkTracerProvider, SpanData};
use tracing_subscriber::layer::SubscriberExt as _;

use crate::runtime::{QueueOpts, config, env, start, wait_until};

struct Publishes(EventPublisher);

#[async_trait]
impl Handler for Publishes {
    async fn handle(&self, d: &Delivery) -> Outcome {
        let event = BusEvent {
            source: "fleet.test".into(),
            detail_type: "Traced".into(),
            detail: format!("{{\"n\":{}}}", d.body.len()),
            resources: vec![],
            time: None,
            trace_header: None,
        };
        match self.0.publish(event).await {
            Ok(()) => Outcome::Done,
            Err(_) => Outcome::retry("publish failed"),
        }
    }
}

fn attr(span: &SpanData, key: &str) -> Option<String> {
    span.attributes
        .iter()
        .find(|kv| kv.key.as_str() == key)
        .map(|kv| kv.value.to_string())
}

fn named<'a>(spans: &'a [SpanData], name: &str) -> &'a SpanData {
    let found: Vec<&SpanData> = spans.iter().filter(|s| s.name == name).collect();
    assert_eq!(
        found.len(),
        1,
        "one span named {name:?} in {:?}",
        spans.iter().map(|s| &s.name).collect::<Vec<_>>()
    );
    found[0]
}

#[tokio::test]
async fn a_message_s_trace_crosses_the_queue_and_the_bus() {
    let exporter = InMemorySpanExporter::default();
    let provider = SdkTracerProvider::builder()
        .with_simple_exporter(exporter.clone())
        .build();
    let subscriber = tracing_subscriber::registry().with(otel::layer_for(&provider));
    let _default = tracing::subscriber::set_default(subscriber);

    let env = env();
    let source = env.queue("traced", QueueOpts::default());
    let target = env.queue("routed", QueueOpts::default());
    env.local
        .put_rule(
            "fleet-test",
            "to-routed",
            r#"{"source":["fleet.test"]}"#,
            &target,
        )
        .unwrap();

    // The producer: its span's context goes in the message's attributes.
    let producer = otel::producer_span(otel::SYSTEM_SQS, &source);
    let producer_cx = otel::span_context(&producer);
    assert!(
        producer_cx.is_valid(),
        "the layer gives producer spans a context"
    );
    let mut message = OutgoingMessage {
        body: "hello".into(),
        ..OutgoingMessage::default()
    };
    assert!(trace_context::set_traceparent(
        &mut message.attributes,
        &producer_cx
    ));
    env.local
        .queue(&source)
        .await
        .unwrap()
        .send(message)
        .await
        .unwrap();
    drop(producer);

    let backend: Arc<dyn Backend> = Arc::new(env.local.clone());
    let publisher = EventPublisher::new(backend.event_bus("fleet-test"), Duration::from_millis(5));
    let running = start(config(&source), backend, Arc::new(Publishes(publisher)));
    wait_until("the event is routed", Duration::from_secs(10), || {
        env.snapshot(&target).len() == 1
    })
    .await;
    let report = running.stop().await;
    assert_eq!(report.succeeded, 1);

    let spans = exporter.get_finished_spans().unwrap();
    let send = named(&spans, &format!("send {source}"));
    let receive = named(&spans, &format!("receive {source}"));
    let process = named(&spans, &format!("process {source}"));
    let publish = named(&spans, "send fleet-test");

    let trace: TraceId = producer_cx.trace_id();
    assert_eq!(send.span_context.span_id(), producer_cx.span_id());
    assert_eq!(send.span_kind, SpanKind::Producer);
    assert_eq!(attr(send, "messaging.system").as_deref(), Some("aws_sqs"));
    assert_eq!(
        attr(send, "messaging.destination.name").as_deref(),
        Some(source.as_str())
    );

    // The receive links to the producer; its own trace is a new one.
    assert_eq!(receive.span_kind, SpanKind::Client);
    assert!(
        receive
            .links
            .iter()
            .any(|l| l.span_context.span_id() == producer_cx.span_id()
                && l.span_context.trace_id() == trace),
        "receive links to the producer: {:?}",
        receive.links
    );
    assert_eq!(
        attr(receive, "messaging.batch.message_count").as_deref(),
        Some("1")
    );

    // The process span is the producer's child, linked to the receive.
    assert_eq!(process.span_kind, SpanKind::Consumer);
    assert_eq!(process.span_context.trace_id(), trace);
    assert_eq!(process.parent_span_id, producer_cx.span_id());
    assert!(
        process
            .links
            .iter()
            .any(|l| l.span_context.span_id() == receive.span_context.span_id())
    );
    assert_eq!(
        attr(process, "messaging.operation.type").as_deref(),
        Some("process")
    );
    assert!(attr(process, "messaging.message.id").is_some());

    // The publish is the process span's child, and the routed message carries its context.
    assert_eq!(publish.span_kind, SpanKind::Producer);
    assert_eq!(publish.span_context.trace_id(), trace);
    assert_eq!(publish.parent_span_id, process.span_context.span_id());
    let routed = env
        .local
        .queue(&target)
        .await
        .unwrap()
        .receive(1, Duration::ZERO, None)
        .await
        .unwrap();
    let header = routed[0]
        .trace_header
        .as_deref()
        .expect("the routed message has an AWSTraceHeader");
    let carried = trace_context::from_xray_header(header).unwrap();
    assert_eq!(carried.trace_id(), trace);
    assert_eq!(carried.span_id(), publish.span_context.span_id());
    assert_ne!(carried.span_id(), SpanId::INVALID);

    // No span attribute holds the body.
    for s in &spans {
        for kv in &s.attributes {
            assert!(
                !kv.value.to_string().contains("hello"),
                "{}: {}",
                s.name,
                kv.key
            );
        }
    }
}
