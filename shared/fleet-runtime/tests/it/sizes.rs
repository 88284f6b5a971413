//! Issue 15, item 3 ("Sizes"): PutEvents requests stay under EventBridge's 256 KiB limit, an
//! event that alone exceeds it dead-letters its message with `EVENT_TOO_LARGE`, and a
//! dead-letter copy always fits SQS's 256 KiB (body intact, detail truncated). Against the
//! local backend, which enforces the same limits as AWS. (moto 5.2.5 enforces neither the
//! PutEvents size nor attributes in the SQS size, so these cannot be created there.)
//!
//! The tests spell the limits and the entry-size rule out themselves rather than using the
//! crate's constants: they are the documented service rules the code must meet.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use fleet_core::{
    Attributes, Backend, BatchResult, BusEvent, ErrorCode, EventBus, FailureMetadata, PortError,
};
use fleet_runtime::{Delivery, EventPublisher, Failure, Handler, Outcome};

use super::runtime::{Env, QueueOpts, config, env, failure_of, start, wait_until};

/// EventBridge: the entry sizes of one PutEvents request must add up to less than 256 KiB.
const PUT_EVENTS_LIMIT: usize = 256 * 1024;
/// SQS: body plus attribute names, types and values, at most 256 KiB.
const SQS_LIMIT: usize = 256 * 1024;

/// "Calculating PutEvents event entry size": Time 14 bytes if set; Source, DetailType, Detail
/// and each Resources entry in UTF-8 bytes.
fn documented_entry_size(e: &BusEvent) -> usize {
    e.time.as_ref().map_or(0, |_| 14)
        + e.source.len()
        + e.detail_type.len()
        + e.detail.len()
        + e.resources.iter().map(String::len).sum::<usize>()
}

fn sqs_size(body: &str, attributes: &Attributes) -> usize {
    body.len()
        + attributes
            .iter()
            .map(|(n, v)| {
                n.len()
                    + v.data_type.len()
                    + v.string_value.as_ref().map_or(0, String::len)
                    + v.binary_value.as_ref().map_or(0, Vec::len)
            })
            .sum::<usize>()
}

/// `name` and `name-dlq`, with a redrive count far above the runtime's attempts, so only the
/// runtime's own dead-letter send can put a copy there.
fn queues(env: &Env, name: &str) -> (String, String) {
    let q = env.queue(
        name,
        QueueOpts {
            max_receives: 1000,
            ..QueueOpts::default()
        },
    );
    let dlq = format!("{q}-dlq");
    (q, dlq)
}

/// Forwards to the real bus and records each request's events.
struct RecordingBus {
    inner: Arc<dyn EventBus>,
    requests: Mutex<Vec<Vec<BusEvent>>>,
}

#[async_trait]
impl EventBus for RecordingBus {
    fn id(&self) -> &str {
        self.inner.id()
    }
    async fn put_events(&self, events: &[BusEvent]) -> Result<BatchResult, PortError> {
        self.requests.lock().unwrap().push(events.to_vec());
        self.inner.put_events(events).await
    }
}

fn padded_event(n: usize, detail_bytes: usize) -> BusEvent {
    let head = format!("{{\"n\":{n},\"pad\":\"");
    let pad = "p".repeat(detail_bytes - head.len() - 2);
    BusEvent {
        source: "fleet.test".into(),
        detail_type: "Sized".into(),
        detail: format!("{head}{pad}\"}}"),
        resources: vec![format!("arn:aws:s3:::bucket/key-{n}")],
        time: Some("2026-02-01T00:00:00Z".into()),
        trace_header: None,
    }
}

// ---------------------------------------------------------------------------------------------
// Tests
// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn item3_events_over_256kb_in_total_go_out_in_several_requests_each_under_the_limit() {
    let env = env();
    let bus = Arc::new(RecordingBus {
        inner: env.local.event_bus("sizes"),
        requests: Mutex::new(Vec::new()),
    });
    // 25 events of about 60 KB: 10 of them (one count-full request) would be about 600 KB.
    let events: Vec<BusEvent> = (0..25).map(|n| padded_event(n, 60_000)).collect();
    assert!(
        events
            .iter()
            .all(|e| documented_entry_size(e) < PUT_EVENTS_LIMIT)
    );
    let total: usize = events.iter().map(documented_entry_size).sum();
    assert!(total > PUT_EVENTS_LIMIT * 5, "{total}");

    let publisher = Arc::new(EventPublisher::new(bus.clone(), Duration::from_millis(100)));
    let tasks: Vec<_> = events
        .into_iter()
        .map(|e| {
            let p = publisher.clone();
            tokio::spawn(async move { p.publish(e).await })
        })
        .collect();
    for t in tasks {
        t.await.unwrap().expect("every event is accepted");
    }

    let requests = bus.requests.lock().unwrap().clone();
    let sizes: Vec<usize> = requests
        .iter()
        .map(|r| r.iter().map(documented_entry_size).sum())
        .collect();
    for (i, size) in sizes.iter().enumerate() {
        assert!(
            *size < PUT_EVENTS_LIMIT,
            "request {i} of {} events has entry size {size}, not below {PUT_EVENTS_LIMIT} (all: {sizes:?})",
            requests[i].len()
        );
    }
    assert_eq!(requests.iter().map(Vec::len).sum::<usize>(), 25);
    assert!(
        requests.iter().any(|r| r.len() > 1),
        "still batched: {sizes:?}"
    );
    assert_eq!(env.local.list_bus_events("sizes").unwrap().len(), 25);
}

/// Publishes one event per message: a 300 KB one for the body "big", a small one otherwise;
/// a publish error becomes the failure the way the workers' `?` makes it.
struct PublishingHandler {
    publisher: EventPublisher,
}

#[async_trait]
impl Handler for PublishingHandler {
    async fn handle(&self, d: &Delivery) -> Outcome {
        let bytes = if d.body == "big" { 300 * 1024 } else { 100 };
        match self.publisher.publish(padded_event(1, bytes)).await {
            Ok(()) => Outcome::Done,
            Err(e) => Outcome::Failed(Failure::from(e)),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn item3_an_event_over_the_put_events_limit_dead_letters_its_message_with_event_too_large() {
    let env = env();
    let (q, dlq) = queues(&env, "big-event");
    env.send(&q, "big", &[], None).await;
    env.send(&q, "small", &[], None).await;
    let handler = Arc::new(PublishingHandler {
        publisher: EventPublisher::new(env.local.event_bus("sizes"), Duration::from_millis(10)),
    });
    let run = start(config(&q), Arc::new(env.local.clone()), handler);
    wait_until("both messages settled", Duration::from_secs(10), || {
        env.snapshot(&q).is_empty()
    })
    .await;
    let report = run.stop().await;
    assert_eq!((report.succeeded, report.dead_lettered), (1, 1));
    let dead = env.snapshot(&dlq);
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0].body, "big");
    let f = failure_of(&dead[0]);
    assert_eq!(f.code.as_str(), "EVENT_TOO_LARGE", "detail: {}", f.detail);
    assert_eq!(
        env.local.list_bus_events("sizes").unwrap().len(),
        1,
        "the small event is delivered"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn item3_a_dead_letter_copy_near_the_sqs_max_keeps_its_body_and_truncates_the_detail() {
    let env = env();
    let (q, dlq) = queues(&env, "near-max");
    // The failure attribute this copy will carry, with a 128-byte detail: worker, queue and
    // a uuid message id as the runtime writes them, times with nanoseconds.
    let probe = FailureMetadata {
        code: ErrorCode::Hl7ParseError,
        detail: "x".repeat(128),
        worker: "test-worker".into(),
        source_queue: q.clone(),
        first_failure: "2026-02-01T00:00:00.123456789Z".into(),
        last_failure: "2026-02-01T00:00:00.123456789Z".into(),
        receive_count: 1,
        message_id: "0b7e4c8a-5f7d-4f4e-9a53-2f1d8c6b9e10".into(),
    };
    let probe_attrs: Attributes = [("fleet.failure".to_string(), probe.to_attribute())].into();
    let probe_size = sqs_size("", &probe_attrs);
    // So the full 256-byte detail is about 128 bytes too many, an empty one 128 too few.
    let body = "b".repeat(SQS_LIMIT - probe_size);
    env.send(&q, &body, &[], None).await;
    let long_detail = "x".repeat(1000);
    let detail = long_detail.clone();
    let handler: Arc<dyn Handler> = Arc::new(FixedFailure(detail));
    let run = start(config(&q), Arc::new(env.local.clone()), handler);
    wait_until("dead-lettered", Duration::from_secs(8), || {
        env.snapshot(&dlq).len() == 1
    })
    .await;
    wait_until("source empty", Duration::from_secs(5), || {
        env.snapshot(&q).is_empty()
    })
    .await;
    let report = run.stop().await;
    assert_eq!(report.dead_lettered, 1);
    let dead = &env.snapshot(&dlq)[0];
    assert_eq!(dead.body.len(), body.len());
    assert!(dead.body == body, "the body is byte-identical");
    assert!(sqs_size(&dead.body, &dead.attributes) <= SQS_LIMIT);
    let f = failure_of(dead);
    assert_eq!(f.code, ErrorCode::Hl7ParseError);
    assert!(
        f.detail.len() < 256 && long_detail.starts_with(&f.detail),
        "detail truncated, not replaced: {} bytes",
        f.detail.len()
    );
    assert_eq!(
        dead.attributes.keys().collect::<Vec<_>>(),
        vec!["fleet.failure"]
    );
}

/// Fails every message permanently with a long detail.
struct FixedFailure(String);

#[async_trait]
impl Handler for FixedFailure {
    async fn handle(&self, _d: &Delivery) -> Outcome {
        Outcome::Failed(Failure::permanent(ErrorCode::Hl7ParseError, &self.0))
    }
}
