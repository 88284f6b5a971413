//! The runtime against the local backend: real SQLite in a temporary directory.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU32, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use fleet_core::{
    AttributeValue, Attributes, Backend, BatchResult, BusEvent, EntryFailure, ErrorCode, EventBus,
    FailureMetadata, MessageQueue, OutgoingMessage, PortError,
};
use fleet_local::{LocalBackend, QueueSpec};
use fleet_runtime::{
    BackoffPolicy, Begin, Delivery, EventPublisher, Failure, Handler, IdempotencyStore, Outcome,
    RunReport, RuntimeConfig, RuntimeError, Settled,
};
use tokio_util::sync::CancellationToken;

use crate::decorated::{Faults, decorated};

// ---------------------------------------------------------------------------------------------
// Harness
// ---------------------------------------------------------------------------------------------

pub(crate) struct Env {
    _dir: tempfile::TempDir,
    pub(crate) local: LocalBackend,
}

pub(crate) fn env() -> Env {
    let dir = tempfile::tempdir().unwrap();
    let local =
        LocalBackend::open(&dir.path().join("fleet.db"), &dir.path().join("objects")).unwrap();
    Env { _dir: dir, local }
}

pub(crate) struct QueueOpts {
    pub(crate) fifo: bool,
    pub(crate) visibility: Duration,
    pub(crate) max_receives: u32,
    pub(crate) encrypted: bool,
    pub(crate) dlq_encrypted: bool,
    pub(crate) redrive: bool,
}

impl Default for QueueOpts {
    fn default() -> Self {
        Self {
            fifo: false,
            visibility: Duration::from_secs(30),
            max_receives: 10,
            encrypted: true,
            dlq_encrypted: true,
            redrive: true,
        }
    }
}

impl Env {
    /// Creates `name` and `name-dlq` (with the `.fifo` suffix kept last for FIFO queues).
    pub(crate) fn queue(&self, name: &str, o: QueueOpts) -> String {
        let (src, dlq) = if o.fifo {
            (format!("{name}.fifo"), format!("{name}-dlq.fifo"))
        } else {
            (name.to_string(), format!("{name}-dlq"))
        };
        let kms = |on: bool| on.then(|| "alias/fleet-test".to_string());
        self.local
            .create_queue(
                &dlq,
                QueueSpec {
                    fifo: o.fifo,
                    kms_key_id: kms(o.dlq_encrypted),
                    content_based_dedup: false,
                    ..QueueSpec::default()
                },
            )
            .unwrap();
        self.local
            .create_queue(
                &src,
                QueueSpec {
                    fifo: o.fifo,
                    visibility_timeout: o.visibility,
                    redrive: o.redrive.then(|| (dlq.clone(), o.max_receives)),
                    kms_key_id: kms(o.encrypted),
                    ..QueueSpec::default()
                },
            )
            .unwrap();
        src
    }

    async fn q(&self, name: &str) -> Arc<dyn MessageQueue> {
        self.local.queue(name).await.unwrap()
    }

    pub(crate) async fn send(
        &self,
        queue: &str,
        body: &str,
        attrs: &[(&str, &str)],
        group: Option<&str>,
    ) -> String {
        let attributes: Attributes = attrs
            .iter()
            .map(|(k, v)| (k.to_string(), AttributeValue::string(*v)))
            .collect();
        let dedup = group.map(|_| uuid_like(body));
        self.q(queue)
            .await
            .send(OutgoingMessage {
                body: body.into(),
                attributes,
                delay: None,
                group_id: group.map(str::to_string),
                dedup_id: dedup,
            })
            .await
            .unwrap()
    }

    pub(crate) fn snapshot(&self, queue: &str) -> Vec<fleet_local::QueuedMessage> {
        self.local.queue_messages_snapshot(queue).unwrap()
    }
}

fn uuid_like(body: &str) -> String {
    format!("d-{body}-{}", COUNTER.fetch_add(1, Ordering::Relaxed))
}
static COUNTER: AtomicU32 = AtomicU32::new(0);

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

pub(crate) fn config(queue: &str) -> RuntimeConfig {
    let mut c = RuntimeConfig::new("test-worker", queue);
    c.wait_time = Duration::from_millis(200);
    c.backoff = BackoffPolicy::FAST_TESTS;
    c.delete_linger = Duration::from_millis(5);
    c.drain_deadline = Duration::from_secs(5);
    c
}

pub(crate) struct Running {
    stop: CancellationToken,
    task: tokio::task::JoinHandle<Result<RunReport, RuntimeError>>,
}

impl Running {
    pub(crate) async fn stop(self) -> RunReport {
        self.stop.cancel();
        self.task.await.unwrap().unwrap()
    }
}

pub(crate) fn start(
    cfg: RuntimeConfig,
    backend: Arc<dyn Backend>,
    handler: Arc<dyn Handler>,
) -> Running {
    let stop = CancellationToken::new();
    let task = tokio::spawn(fleet_runtime::run(cfg, backend, handler, stop.clone()));
    Running { stop, task }
}

pub(crate) async fn wait_until(what: &str, timeout: Duration, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for: {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A handler from a closure over the delivery, recording every call.
struct FnHandler<F> {
    f: F,
    calls: Mutex<Vec<(String, u32, Instant)>>,
}

impl<F> FnHandler<F> {
    fn calls(&self) -> Vec<(String, u32, Instant)> {
        self.calls.lock().unwrap().clone()
    }
    fn bodies(&self) -> Vec<String> {
        self.calls().into_iter().map(|(b, _, _)| b).collect()
    }
}

fn handler<F>(f: F) -> Arc<FnHandler<F>>
where
    F: Fn(&Delivery) -> Outcome + Send + Sync + 'static,
{
    Arc::new(FnHandler {
        f,
        calls: Mutex::new(Vec::new()),
    })
}

#[async_trait]
impl<F> Handler for FnHandler<F>
where
    F: Fn(&Delivery) -> Outcome + Send + Sync + 'static,
{
    async fn handle(&self, d: &Delivery) -> Outcome {
        self.calls
            .lock()
            .unwrap()
            .push((d.body.clone(), d.receive_count, Instant::now()));
        (self.f)(d)
    }
}

/// A handler that sleeps (asynchronously) before succeeding.
struct SlowHandler {
    delay: Duration,
    started: AtomicUsize,
    finished: AtomicUsize,
}

#[async_trait]
impl Handler for SlowHandler {
    async fn handle(&self, _d: &Delivery) -> Outcome {
        self.started.fetch_add(1, Ordering::SeqCst);
        tokio::time::sleep(self.delay).await;
        self.finished.fetch_add(1, Ordering::SeqCst);
        Outcome::Done
    }
}

fn slow(delay: Duration) -> Arc<SlowHandler> {
    Arc::new(SlowHandler {
        delay,
        started: AtomicUsize::new(0),
        finished: AtomicUsize::new(0),
    })
}

pub(crate) fn failure_of(m: &fleet_local::QueuedMessage) -> FailureMetadata {
    FailureMetadata::from_attributes(&m.attributes).expect("failure attribute present")
}

// ---------------------------------------------------------------------------------------------
// Tests
// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn successes_are_deleted_in_batches() {
    let env = env();
    let q = env.queue("ok", QueueOpts::default());
    for i in 0..25 {
        env.send(&q, &format!("m{i}"), &[], None).await;
    }
    let (backend, calls) = decorated(&env.local, Faults::default());
    let h = handler(|_| Outcome::Done);
    let mut cfg = config(&q);
    cfg.delete_linger = Duration::from_millis(50);
    let run = start(cfg, backend, h.clone());
    wait_until("queue empty", Duration::from_secs(10), || {
        env.snapshot(&q).is_empty()
    })
    .await;
    let report = run.stop().await;
    assert_eq!(report.received, 25);
    assert_eq!(report.succeeded, 25);
    assert_eq!(report.deleted, 25);
    assert_eq!(report.delete_failures, 0);
    let mut bodies = h.bodies();
    bodies.sort();
    let mut expected: Vec<String> = (0..25).map(|i| format!("m{i}")).collect();
    expected.sort();
    assert_eq!(bodies, expected, "each message handled exactly once");
    let sizes = calls.delete_batch_sizes.lock().unwrap().clone();
    assert_eq!(sizes.iter().sum::<usize>(), 25);
    assert!(sizes.iter().all(|n| (1..=10).contains(n)), "{sizes:?}");
    assert!(sizes.len() < 25, "deletes were not batched: {sizes:?}");
    assert!(env.snapshot(&format!("{q}-dlq")).is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retries_back_off_then_dead_letter_with_retries_exhausted() {
    let env = env();
    let q = env.queue(
        "retry",
        QueueOpts {
            max_receives: 5,
            ..QueueOpts::default()
        },
    );
    env.send(&q, "always-fails", &[("correlation_id", "corr-1")], None)
        .await;
    // The hint must win over the (tiny) FAST_TESTS backoff, up to the cap.
    let h = handler(|_| {
        Failure::retry("downstream unavailable")
            .after(Duration::from_millis(400))
            .into()
    });
    let mut cfg = config(&q);
    cfg.max_attempts = 3;
    cfg.backoff = BackoffPolicy {
        base: Duration::from_millis(10),
        cap: Duration::from_secs(1),
    };
    let run = start(cfg, Arc::new(env.local.clone()), h.clone());
    let dlq = format!("{q}-dlq");
    wait_until("dead-lettered", Duration::from_secs(10), || {
        env.snapshot(&dlq).len() == 1
    })
    .await;
    wait_until("source empty", Duration::from_secs(5), || {
        env.snapshot(&q).is_empty()
    })
    .await;
    let report = run.stop().await;

    let calls = h.calls();
    assert_eq!(calls.iter().map(|c| c.1).collect::<Vec<_>>(), vec![1, 2, 3]);
    for pair in calls.windows(2) {
        let gap = pair[1].2 - pair[0].2;
        assert!(
            gap >= Duration::from_millis(390),
            "retry came back after {gap:?}, before its 400 ms hint"
        );
        assert!(gap < Duration::from_secs(3), "retry took {gap:?}");
    }
    assert_eq!(
        (report.retried, report.dead_lettered, report.succeeded),
        (2, 1, 0)
    );
    let dead = &env.snapshot(&dlq)[0];
    assert_eq!(dead.body, "always-fails");
    assert_eq!(
        dead.attributes["correlation_id"],
        AttributeValue::string("corr-1")
    );
    let f = failure_of(dead);
    assert_eq!(f.code, ErrorCode::RetriesExhausted);
    assert_eq!(f.detail, "downstream unavailable");
    assert_eq!(f.receive_count, 3);
    assert_eq!(f.worker, "test-worker");
    assert!(f.source_queue.contains("retry"), "{}", f.source_queue);
    assert!(!f.message_id.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn permanent_failure_goes_to_the_dlq_with_code_and_original_attributes() {
    let env = env();
    let q = env.queue("perm", QueueOpts::default());
    let id = env
        .send(
            &q,
            "ORU not ADT",
            &[("correlation_id", "c-7"), ("feed", "lab")],
            None,
        )
        .await;
    let h = handler(|_| Outcome::fail(ErrorCode::Hl7NotAdt, "MSH-9 is ORU^R01"));
    let run = start(config(&q), Arc::new(env.local.clone()), h.clone());
    let dlq = format!("{q}-dlq");
    wait_until("dead-lettered", Duration::from_secs(10), || {
        env.snapshot(&dlq).len() == 1
    })
    .await;
    wait_until("source empty", Duration::from_secs(5), || {
        env.snapshot(&q).is_empty()
    })
    .await;
    let report = run.stop().await;
    assert_eq!(h.calls().len(), 1, "a permanent failure is not retried");
    assert_eq!((report.dead_lettered, report.retried), (1, 0));
    let dead = &env.snapshot(&dlq)[0];
    assert_eq!(dead.body, "ORU not ADT");
    assert_eq!(
        dead.attributes["correlation_id"],
        AttributeValue::string("c-7")
    );
    assert_eq!(dead.attributes["feed"], AttributeValue::string("lab"));
    assert_eq!(dead.attributes.len(), 3);
    let f = failure_of(dead);
    assert_eq!(f.code, ErrorCode::Hl7NotAdt);
    assert_eq!(f.detail, "MSH-9 is ORU^R01");
    assert_eq!(f.message_id, id);
    assert_eq!(f.receive_count, 1);
    assert_eq!(f.first_failure, f.last_failure);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panicking_handler_does_not_stop_the_worker() {
    let env = env();
    let q = env.queue("panic", QueueOpts::default());
    for i in 0..9 {
        env.send(&q, &format!("fine-{i}"), &[], None).await;
    }
    env.send(&q, "boom", &[], None).await;
    let h = handler(|d| {
        if d.body == "boom" {
            panic!("handler bug (test)");
        }
        Outcome::Done
    });
    let mut cfg = config(&q);
    cfg.max_attempts = 2;
    let run = start(cfg, Arc::new(env.local.clone()), h.clone());
    let dlq = format!("{q}-dlq");
    wait_until("panicker dead-lettered", Duration::from_secs(10), || {
        env.snapshot(&dlq).len() == 1
    })
    .await;
    wait_until("source empty", Duration::from_secs(5), || {
        env.snapshot(&q).is_empty()
    })
    .await;
    // Still alive after the panics: a new message is handled.
    env.send(&q, "after", &[], None).await;
    wait_until("later message handled", Duration::from_secs(5), || {
        env.snapshot(&q).is_empty()
    })
    .await;
    let report = run.stop().await;
    assert_eq!(report.panics, 2);
    assert_eq!(report.succeeded, 10);
    assert_eq!(report.dead_lettered, 1);
    let dead = &env.snapshot(&dlq)[0];
    assert_eq!(dead.body, "boom");
    let f = failure_of(dead);
    assert_eq!(f.code, ErrorCode::HandlerPanicked);
    assert!(
        !f.detail.contains("bug"),
        "the panic message must not travel: {}",
        f.detail
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_waits_for_standard_handlers_then_abandons_at_the_deadline() {
    let env = env();
    let q = env.queue("drain-std", QueueOpts::default());
    for i in 0..3 {
        env.send(&q, &format!("s-{i}"), &[], None).await;
    }
    let h = slow(Duration::from_millis(400));
    let run = start(config(&q), Arc::new(env.local.clone()), h.clone());
    wait_until("handlers started", Duration::from_secs(10), || {
        h.started.load(Ordering::SeqCst) == 3
    })
    .await;
    let report = run.stop().await;
    assert_eq!(h.finished.load(Ordering::SeqCst), 3);
    assert_eq!(
        (report.succeeded, report.deleted, report.abandoned),
        (3, 3, 0)
    );
    assert!(env.snapshot(&q).is_empty(), "pending deletes were flushed");

    // A handler longer than the drain deadline is abandoned; its message stays invisible
    // until its visibility expires.
    env.send(&q, "too-slow", &[], None).await;
    let h = slow(Duration::from_secs(30));
    let mut cfg = config(&q);
    cfg.drain_deadline = Duration::from_millis(300);
    let run = start(cfg, Arc::new(env.local.clone()), h.clone());
    wait_until("slow handler started", Duration::from_secs(10), || {
        h.started.load(Ordering::SeqCst) == 1
    })
    .await;
    let t0 = Instant::now();
    let report = run.stop().await;
    assert!(
        t0.elapsed() < Duration::from_secs(3),
        "run() outlived the drain deadline: {:?}",
        t0.elapsed()
    );
    assert_eq!(report.abandoned, 1);
    assert_eq!(h.finished.load(Ordering::SeqCst), 0);
    let left = env.snapshot(&q);
    assert_eq!(left.len(), 1);
    assert!(left[0].in_flight);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unsafe_queues_are_refused_unless_allowed() {
    let env = env();
    let plain = env.queue(
        "plain",
        QueueOpts {
            encrypted: false,
            ..QueueOpts::default()
        },
    );
    let h = handler(|_| Outcome::Done);
    let err = fleet_runtime::run(
        config(&plain),
        Arc::new(env.local.clone()),
        h.clone(),
        CancellationToken::new(),
    )
    .await
    .unwrap_err();
    let text = err.to_string();
    assert!(matches!(err, RuntimeError::Unencrypted { .. }), "{text}");
    assert!(
        text.contains("plain")
            && text.contains("not encrypted")
            && text.contains("FLEET_ALLOW_UNENCRYPTED=1"),
        "{text}"
    );

    let dlq_plain = env.queue(
        "dlqplain",
        QueueOpts {
            dlq_encrypted: false,
            ..QueueOpts::default()
        },
    );
    let err = fleet_runtime::run(
        config(&dlq_plain),
        Arc::new(env.local.clone()),
        h.clone(),
        CancellationToken::new(),
    )
    .await
    .unwrap_err();
    assert!(matches!(err, RuntimeError::DlqUnencrypted { .. }), "{err}");
    assert!(err.to_string().contains("dlqplain-dlq"), "{err}");

    let no_redrive = env.queue(
        "noredrive",
        QueueOpts {
            redrive: false,
            ..QueueOpts::default()
        },
    );
    let err = fleet_runtime::run(
        config(&no_redrive),
        Arc::new(env.local.clone()),
        h.clone(),
        CancellationToken::new(),
    )
    .await
    .unwrap_err();
    assert!(matches!(err, RuntimeError::NoRedrivePolicy { .. }), "{err}");
    assert!(err.to_string().contains("noredrive"), "{err}");

    // With the flag, the unencrypted queue is consumed.
    env.send(&plain, "hello", &[], None).await;
    let mut cfg = config(&plain);
    cfg.allow_unencrypted = true;
    let run = start(cfg, Arc::new(env.local.clone()), h.clone());
    wait_until("consumed", Duration::from_secs(10), || {
        env.snapshot(&plain).is_empty()
    })
    .await;
    assert_eq!(run.stop().await.succeeded, 1);
    assert_eq!(h.bodies(), vec!["hello".to_string()]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn heartbeat_keeps_a_long_handler_invisible() {
    let env = env();
    let q = env.queue(
        "hb",
        QueueOpts {
            visibility: Duration::from_secs(1),
            ..QueueOpts::default()
        },
    );
    env.send(&q, "long", &[], None).await;
    let h = slow(Duration::from_millis(2600));
    let mut cfg = config(&q);
    cfg.heartbeat.extend_by = Duration::from_secs(1);
    let run = start(cfg, Arc::new(env.local.clone()), h.clone());
    wait_until("started", Duration::from_secs(10), || {
        h.started.load(Ordering::SeqCst) == 1
    })
    .await;
    let t0 = Instant::now();
    // Past the original 1 s visibility, several times over: still invisible, never redelivered.
    while t0.elapsed() < Duration::from_millis(2300) {
        let snap = env.snapshot(&q);
        assert_eq!(snap.len(), 1);
        assert!(
            snap[0].in_flight && snap[0].visible_at_ms > now_ms(),
            "visibility lapsed after {:?}",
            t0.elapsed()
        );
        assert_eq!(snap[0].receive_count, 1);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    wait_until("deleted", Duration::from_secs(5), || {
        env.snapshot(&q).is_empty()
    })
    .await;
    let report = run.stop().await;
    assert_eq!(h.started.load(Ordering::SeqCst), 1);
    assert_eq!(report.received, 1);
    assert!(report.heartbeat_extensions >= 3, "{report:?}");
    assert_eq!(report.succeeded, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn claim_checks_are_resolved_or_dead_lettered() {
    let env = env();
    let q = env.queue("claim", QueueOpts::default());
    let payload = "MSH|^~\\&|".to_string() + &"X".repeat(300_000);
    env.local
        .objects("offload")
        .put("big/1", payload.clone().into_bytes(), "text/plain")
        .await
        .unwrap();
    let pointer = r#"["software.amazon.payloadoffloading.PayloadS3Pointer",{"s3BucketName":"offload","s3Key":"big/1"}]"#;
    let missing = r#"["software.amazon.payloadoffloading.PayloadS3Pointer",{"s3BucketName":"offload","s3Key":"nope"}]"#;
    let size = payload.len().to_string();
    env.send(&q, pointer, &[("ExtendedPayloadSize", &size)], None)
        .await;
    env.send(&q, missing, &[("ExtendedPayloadSize", "10")], None)
        .await;
    env.send(&q, "not a pointer", &[("SQSLargePayloadSize", "10")], None)
        .await;
    env.send(&q, &"Y".repeat(2000), &[], None).await;
    let h = handler(|_| Outcome::Done);
    let mut cfg = config(&q);
    cfg.max_body_bytes = 1000;
    cfg.claim_check_buckets = vec!["offload".into()];
    // First run: the limit refuses both the offloaded payload and the inline 2000-byte body.
    let run = start(cfg, Arc::new(env.local.clone()), h.clone());
    let dlq = format!("{q}-dlq");
    wait_until("all dead-lettered", Duration::from_secs(10), || {
        env.snapshot(&dlq).len() == 4
    })
    .await;
    run.stop().await;
    assert!(h.calls().is_empty());
    let codes: BTreeMap<String, ErrorCode> = env
        .snapshot(&dlq)
        .iter()
        .map(|m| (m.body.clone(), failure_of(m).code))
        .collect();
    // The DLQ copy keeps the pointer, not the payload.
    assert_eq!(codes[pointer], ErrorCode::BodyTooLarge);
    assert_eq!(codes[missing], ErrorCode::ClaimCheckInvalid);
    assert_eq!(codes["not a pointer"], ErrorCode::ClaimCheckInvalid);
    assert_eq!(codes[&"Y".repeat(2000)], ErrorCode::BodyTooLarge);

    // Second run with the default limit: the pointer resolves to the object's content.
    env.send(&q, pointer, &[("ExtendedPayloadSize", &size)], None)
        .await;
    let mut cfg = config(&q);
    cfg.claim_check_buckets = vec!["offload".into()];
    let run = start(cfg, Arc::new(env.local.clone()), h.clone());
    wait_until("handled", Duration::from_secs(10), || {
        env.snapshot(&q).is_empty()
    })
    .await;
    let report = run.stop().await;
    assert_eq!(report.claim_checks_resolved, 1);
    assert_eq!(h.bodies(), vec![payload]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn event_publisher_batches_concurrent_publishes() {
    let env = env();
    let bus = env.local.event_bus("fleet-test");
    let before = fleet_core::requests::snapshot()
        .get("events.PutEvents")
        .copied()
        .unwrap_or(0);
    let publisher = Arc::new(EventPublisher::new(bus, Duration::from_millis(10)));
    let mut tasks = Vec::new();
    for i in 0..35 {
        let p = publisher.clone();
        tasks.push(tokio::spawn(async move {
            p.publish(BusEvent {
                source: "fleet.test".into(),
                detail_type: "Tested".into(),
                detail: format!("{{\"n\":{i}}}"),
                resources: vec![],
                time: None,
                trace_header: None,
            })
            .await
        }));
    }
    for t in tasks {
        t.await.unwrap().unwrap();
    }
    let calls = fleet_core::requests::snapshot()
        .get("events.PutEvents")
        .copied()
        .unwrap_or(0)
        - before;
    assert_eq!(env.local.list_bus_events("fleet-test").unwrap().len(), 35);
    assert!(
        (4..35).contains(&calls),
        "{calls} PutEvents calls for 35 events"
    );
}

/// Forwards to the real bus but reports the first entry of the first `flaky_calls` calls as
/// failed (without forwarding it), the way EventBridge reports a throttled entry.
struct FlakyBus {
    inner: Arc<dyn EventBus>,
    flaky_calls: AtomicUsize,
    sender_fault: bool,
    calls: AtomicUsize,
}

#[async_trait]
impl EventBus for FlakyBus {
    fn id(&self) -> &str {
        self.inner.id()
    }
    async fn put_events(&self, events: &[BusEvent]) -> Result<BatchResult, PortError> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        let flaky = self.flaky_calls.load(Ordering::SeqCst) > 0;
        if !flaky {
            return self.inner.put_events(events).await;
        }
        self.flaky_calls.fetch_sub(1, Ordering::SeqCst);
        let mut result = if events.len() > 1 {
            self.inner.put_events(&events[1..]).await?
        } else {
            BatchResult::default()
        };
        for f in &mut result.failed {
            f.index += 1;
        }
        let code = if self.sender_fault {
            "MalformedDetail"
        } else {
            "ThrottlingException"
        };
        result.failed.insert(
            0,
            EntryFailure {
                index: 0,
                code: code.into(),
                sender_fault: self.sender_fault,
            },
        );
        Ok(result)
    }
}

fn event(n: u32) -> BusEvent {
    BusEvent {
        source: "fleet.test".into(),
        detail_type: "Tested".into(),
        detail: format!("{{\"n\":{n}}}"),
        resources: vec![],
        time: None,
        trace_header: None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn event_publisher_retries_failed_entries_and_reports_rejections() {
    let env = env();
    let bus = Arc::new(FlakyBus {
        inner: env.local.event_bus("flaky"),
        flaky_calls: AtomicUsize::new(2),
        sender_fault: false,
        calls: AtomicUsize::new(0),
    });
    let publisher = EventPublisher::new(bus.clone(), Duration::from_millis(10));
    let (a, b, c) = tokio::join!(
        publisher.publish(event(1)),
        publisher.publish(event(2)),
        publisher.publish(event(3))
    );
    a.unwrap();
    b.unwrap();
    c.unwrap();
    assert_eq!(env.local.list_bus_events("flaky").unwrap().len(), 3);
    assert_eq!(
        bus.calls.load(Ordering::SeqCst),
        3,
        "one batch, then the throttled entry twice"
    );

    let rejecting = Arc::new(FlakyBus {
        inner: env.local.event_bus("reject"),
        flaky_calls: AtomicUsize::new(1),
        sender_fault: true,
        calls: AtomicUsize::new(0),
    });
    let publisher = EventPublisher::new(rejecting.clone(), Duration::from_millis(10));
    let err = publisher.publish(event(9)).await.unwrap_err();
    assert_eq!(err.kind, fleet_core::ErrorKind::Invalid);
    assert!(err.message.contains("MalformedDetail"), "{err}");
    assert_eq!(
        rejecting.calls.load(Ordering::SeqCst),
        1,
        "a sender fault is not retried"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idempotency_store_tracks_claims_and_completions() {
    let env = env();
    let store = IdempotencyStore::new(env.local.records("idempotency"));
    let started = |b: Begin| match b {
        Begin::Started(claim) => claim,
        other => panic!("expected Started, got {other:?}"),
    };
    let k1 = started(store.begin("k1", Duration::from_secs(60)).await.unwrap());
    assert_eq!(
        store.begin("k1", Duration::from_secs(60)).await.unwrap(),
        Begin::InProgress
    );
    assert_eq!(
        store
            .complete(&k1, Duration::from_secs(3600))
            .await
            .unwrap(),
        Settled::Recorded
    );
    assert_eq!(
        store.begin("k1", Duration::from_secs(60)).await.unwrap(),
        Begin::Completed
    );
    // An expired claim (crashed worker) is taken over.
    started(store.begin("k2", Duration::from_millis(50)).await.unwrap());
    tokio::time::sleep(Duration::from_millis(80)).await;
    let k2 = started(store.begin("k2", Duration::from_secs(60)).await.unwrap());
    assert_eq!(
        store.begin("k2", Duration::from_secs(60)).await.unwrap(),
        Begin::InProgress
    );
    // An abandoned claim can be started at once.
    assert_eq!(store.abandon(&k2).await.unwrap(), Settled::Recorded);
    started(store.begin("k2", Duration::from_secs(60)).await.unwrap());
    // A completion with an elapsed TTL is forgotten.
    let k3 = started(store.begin("k3", Duration::from_secs(60)).await.unwrap());
    store.complete(&k3, Duration::ZERO).await.unwrap();
    tokio::time::sleep(Duration::from_millis(5)).await;
    started(store.begin("k3", Duration::from_secs(60)).await.unwrap());
}

/// Issue 15, item 4: the TTL attribute of every idempotency record is its real expiry (rounded
/// up to the second), so DynamoDB's TTL removes it when it lapses; never a placeholder such as
/// epoch second 1, which TTL skips (items more than five years past are not deleted).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn item4_ttl_attribute_holds_the_real_expiry() {
    let env = env();
    let store = IdempotencyStore::new(env.local.records("idempotency"));
    let epoch_secs = || {
        let since = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap();
        i64::try_from(since.as_secs()).unwrap()
    };
    let stored = |key: &str| {
        env.local
            .table_records("idempotency")
            .unwrap()
            .into_iter()
            .find(|r| r.pk == format!("idem#{key}"))
            .expect("idempotency record")
    };
    // The TTL attribute is `order` (the expiry in ms) rounded up to the second.
    let rounds_up = |r: &fleet_core::Record| {
        let ttl_ms = r.expires_at.expect("a TTL attribute") * 1000;
        ttl_ms >= r.order && ttl_ms - r.order < 1000
    };

    let Begin::Started(first) = store.begin("k", Duration::from_secs(60)).await.unwrap() else {
        panic!("not started");
    };
    let claim = stored("k");
    assert!(rounds_up(&claim), "claim: {claim:?}");

    let before = epoch_secs();
    store.abandon(&first).await.unwrap();
    let abandoned = stored("k");
    let ttl = abandoned.expires_at.expect("a TTL attribute");
    assert!(
        (before..=epoch_secs() + 1).contains(&ttl),
        "an abandoned claim expires now, not at {ttl}: {abandoned:?}"
    );

    let Begin::Started(second) = store.begin("k", Duration::from_secs(60)).await.unwrap() else {
        panic!("not started");
    };
    store
        .complete(&second, Duration::from_secs(3600))
        .await
        .unwrap();
    let done = stored("k");
    assert!(rounds_up(&done), "completion: {done:?}");
    assert!(done.expires_at.unwrap() >= epoch_secs() + 3599, "{done:?}");
}

async fn http_get(addr: std::net::SocketAddr, path: &str) -> (u16, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    s.write_all(format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").as_bytes())
        .await
        .unwrap();
    let mut buf = String::new();
    s.read_to_string(&mut buf).await.unwrap();
    let status = buf
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    (status, buf)
}

fn free_addr() -> std::net::SocketAddr {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap()
}

async fn get_when_up(addr: std::net::SocketAddr, path: &str) -> (u16, String) {
    for _ in 0..100 {
        if tokio::net::TcpStream::connect(addr).await.is_ok() {
            return http_get(addr, path).await;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("endpoint {addr} never came up");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_endpoint_reports_live_ready_metrics_and_stalls() {
    let env = env();
    let q = env.queue("health", QueueOpts::default());
    env.send(&q, "one", &[], None).await;

    // Healthy: receives complete every wait_time.
    let addr = free_addr();
    let mut cfg = config(&q);
    cfg.health_addr = Some(addr);
    cfg.wait_time = Duration::from_millis(100);
    cfg.liveness_grace = Duration::ZERO;
    let run = start(
        cfg.clone(),
        Arc::new(env.local.clone()),
        handler(|_| Outcome::Done),
    );
    wait_until("consumed", Duration::from_secs(10), || {
        env.snapshot(&q).is_empty()
    })
    .await;
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_eq!(get_when_up(addr, "/health/live").await.0, 200);
    assert_eq!(http_get(addr, "/health/ready").await.0, 200);
    let (status, metrics) = http_get(addr, "/metrics").await;
    assert_eq!(status, 200);
    assert!(
        metrics.contains("fleet_messages_succeeded_total{worker=\"test-worker\""),
        "{metrics}"
    );
    assert!(
        metrics.contains("fleet_backend_requests_total{api=\"sqs.ReceiveMessage\"}"),
        "{metrics}"
    );
    assert!(metrics.contains("fleet_handler_seconds_count"), "{metrics}");
    run.stop().await;

    // Stalled: the receive call hangs; liveness fails after 3 × wait_time (+ grace 0).
    let (backend, calls) = decorated(
        &env.local,
        Faults {
            stall_receive: true,
            ..Faults::default()
        },
    );
    let addr = free_addr();
    cfg.health_addr = Some(addr);
    let run = start(cfg, backend, handler(|_| Outcome::Done));
    assert_eq!(
        get_when_up(addr, "/health/live").await.0,
        200,
        "live at start"
    );
    tokio::time::sleep(Duration::from_millis(700)).await;
    let (status, body) = http_get(addr, "/health/live").await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(calls.receive_calls.load(Ordering::SeqCst), 1);
    // Shutdown gives the hung poll its wait time plus a 1 s grace, then drops it and returns.
    let t0 = Instant::now();
    run.stop().await;
    assert!(t0.elapsed() < Duration::from_secs(2));
}
