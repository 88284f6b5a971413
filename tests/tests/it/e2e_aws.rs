//! End to end on moto: the real `hl7-ingest` binary against KMS-encrypted SQS queues with a
//! redrive policy, an EventBridge rule routing to a tap queue, and a DynamoDB table.

use fleet_testkit::ProvisionExt as _;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::{Duration, Instant};

use fleet_core::ports::MessageQueue;
use fleet_core::{Backend, FailureMetadata};
use fleet_samples::hl7 as samples;
use fleet_testkit::provision::QueueSetup;
use fleet_testkit::workers::{
    Worker, assert_no_phi, final_request_counts, receive_all, sample_secrets, send_all,
    wait_drained,
};
use fleet_testkit::{aws_backend, moto_env, unique};

struct Stack {
    source: String,
    dlq: String,
    tap: String,
    bus: String,
    table: String,
}

async fn provision(encrypted: bool) -> Stack {
    let backend = aws_backend().await;
    let p = backend.provisioner();
    let key = if encrypted {
        Some(p.create_kms_key("hl7-ingest e2e").await.unwrap())
    } else {
        None
    };
    let setup = |redrive| QueueSetup {
        visibility_timeout: Duration::from_secs(30),
        kms_key_id: key.clone(),
        sqs_managed_sse: encrypted,
        redrive,
        ..QueueSetup::default()
    };
    let dlq = p
        .create_queue(&unique("hl7-dlq"), setup(None))
        .await
        .unwrap();
    let dlq_arn = p.queue_arn(&dlq).await.unwrap();
    let source = p
        .create_queue(&unique("hl7-in"), setup(Some((dlq_arn, 5))))
        .await
        .unwrap();
    let tap = p.create_queue(&unique("tap"), setup(None)).await.unwrap();
    let bus = unique("bus");
    p.create_bus(&bus).await.unwrap();
    p.put_rule_to_queue(
        &bus,
        &unique("rule"),
        r#"{"source":["fleet.hl7-ingest"]}"#,
        &tap,
    )
    .await
    .unwrap();
    let table = unique("hl7");
    p.create_table(&table).await.unwrap();
    Stack {
        source,
        dlq,
        tap,
        bus,
        table,
    }
}

fn worker_env(s: &Stack) -> Vec<(&'static str, String)> {
    let mut env = moto_env();
    env.extend([
        ("FLEET_HL7_QUEUE", s.source.clone()),
        ("FLEET_EVENT_BUS", s.bus.clone()),
        ("FLEET_HL7_TABLE", s.table.clone()),
        ("FLEET_WAIT_TIME_SECS", "1".into()),
        ("FLEET_DRAIN_DEADLINE_SECS", "10".into()),
        // Every level: the PHI scan must cover debug and trace output too.
        ("FLEET_LOG", "trace".into()),
    ]);
    env
}

/// A provisioned encrypted stack, `total` generated messages (`malformed` of them bad) on its
/// source queue, and the worker started on it.
struct Run {
    stack: Stack,
    backend: fleet_aws::AwsBackend,
    source: std::sync::Arc<dyn MessageQueue>,
    set: Vec<samples::Sample>,
    dir: tempfile::TempDir,
    worker: Worker,
}

async fn seed_and_start(seed: u64, total: usize, malformed: usize) -> Run {
    let stack = provision(true).await;
    let backend = aws_backend().await;
    let source = backend.queue(&stack.source).await.unwrap();
    let set = samples::generate(seed, total, malformed);
    send_all(source.as_ref(), set.iter().map(|s| s.body.clone())).await;
    let dir = tempfile::tempdir().unwrap();
    let worker = Worker::start(
        "hl7-ingest",
        &[],
        &worker_env(&stack),
        dir.path().join("worker.log"),
    );
    Run {
        stack,
        backend,
        source,
        set,
        dir,
        worker,
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn aws_200_messages_give_190_events_10_dead_letters_and_an_empty_source() {
    let Run {
        stack,
        backend,
        source,
        set,
        dir: _dir,
        mut worker,
    } = seed_and_start(21, 200, 10).await;
    wait_drained(source.as_ref(), Duration::from_secs(120)).await;
    let (_, status) = worker.terminate(Duration::from_secs(30));
    let log = worker.log_text();
    assert!(
        status.success(),
        "worker exit {status}; log tail:\n{}",
        tail(&log)
    );

    // Events: one per well-formed message, each event id exactly once.
    let tap = backend.queue(&stack.tap).await.unwrap();
    let events = receive_all(tap.as_ref(), false).await;
    let mut ids: HashMap<String, usize> = HashMap::new();
    let mut controls = HashSet::new();
    for m in &events {
        let e: serde_json::Value =
            serde_json::from_str(&m.body).expect("EventBridge envelope JSON");
        assert_eq!(e["source"], "fleet.hl7-ingest");
        *ids.entry(e["detail"]["event_id"].as_str().unwrap().to_string())
            .or_default() += 1;
        controls.insert(
            e["detail"]["payload"]["control_id"]
                .as_str()
                .unwrap()
                .to_string(),
        );
    }
    let good: HashSet<String> = set
        .iter()
        .filter(|s| s.expected_failure.is_none())
        .map(|s| s.control_id.clone())
        .collect();
    assert_eq!(good.len(), 190);
    assert_eq!(events.len(), 190, "events on the tap queue");
    assert!(ids.values().all(|n| *n == 1), "an event id arrived twice");
    assert_eq!(controls, good);

    // Records: the event record of every well-formed message.
    let records = backend.records(&stack.table);
    for s in set.iter().filter(|s| s.expected_failure.is_none()) {
        let r = records
            .get(&format!("MSG#GENHOSP#{}", s.control_id), "EVENT")
            .await
            .unwrap();
        assert!(r.is_some(), "no event record for {}", s.control_id);
    }

    // DLQ: the 10 malformed, each with its code in the failure attribute.
    let dlq = backend.queue(&stack.dlq).await.unwrap();
    let dead = receive_all(dlq.as_ref(), false).await;
    assert_eq!(dead.len(), 10);
    for m in &dead {
        let meta =
            FailureMetadata::from_attributes(&m.attributes).expect("fleet.failure attribute");
        let sample = set
            .iter()
            .find(|s| s.body == m.body)
            .expect("a body of ours");
        assert_eq!(Some(meta.code), sample.expected_failure);
        assert_eq!(meta.source_queue, stack.source);
    }

    // Nothing left in the source, nothing in flight.
    let a = source.attributes().await.unwrap();
    assert_eq!((a.approximate_visible, a.approximate_in_flight), (0, 0));

    assert_no_phi(&log, &sample_secrets(&set));
    if fleet_core::env::is_set(fleet_core::env::E2E_DUMP_LOG) {
        std::fs::write("/tmp/e2e-aws-worker.log", &log).unwrap();
    }

    let counts: BTreeMap<String, u64> =
        final_request_counts(&log).expect("the worker's final line reports request counts");
    let total: u64 = counts.values().sum();
    eprintln!(
        "AWS requests in the e2e run: {total} for 200 messages = {:.3} per message; by API: {counts:?}",
        total as f64 / 200.0
    );
    assert!(
        counts
            .get("dynamodb.TransactWriteItems")
            .copied()
            .unwrap_or(0)
            >= 190,
        "{counts:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn aws_an_unencrypted_queue_is_refused_with_a_clear_message() {
    let stack = provision(false).await;
    let dir = tempfile::tempdir().unwrap();
    let mut worker = Worker::start(
        "hl7-ingest",
        &[],
        &worker_env(&stack),
        dir.path().join("worker.log"),
    );
    let status = worker.wait_exit(Duration::from_secs(60));
    let log = worker.log_text();
    assert!(
        !status.success(),
        "the worker started on an unencrypted queue"
    );
    assert!(
        log.contains("not encrypted"),
        "no clear message; log tail:\n{}",
        tail(&log)
    );
    assert!(
        log.contains(&stack.source),
        "the message should name the queue"
    );
}

fn tail(log: &str) -> String {
    let lines: Vec<&str> = log.lines().collect();
    lines[lines.len().saturating_sub(30)..].join("\n")
}

#[tokio::test(flavor = "multi_thread")]
async fn aws_sigterm_during_processing_loses_nothing_and_leaves_nothing_invisible() {
    let Run {
        stack,
        backend,
        source,
        set,
        dir: _dir,
        mut worker,
    } = seed_and_start(22, 400, 0).await;
    // Stop it once processing is under way: some messages gone from the source, most not.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let a = source.attributes().await.unwrap();
        if a.approximate_visible + a.approximate_in_flight < 360 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no progress; log tail:\n{}",
            tail(&worker.log_text())
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (took, status) = worker.terminate(Duration::from_secs(30));
    assert!(
        status.success(),
        "exit {status}; log tail:\n{}",
        tail(&worker.log_text())
    );
    // Drain deadline 10 s, plus the in-flight long poll's 1 s wait and its 1 s grace.
    assert!(took < Duration::from_secs(13), "exit took {took:?}");

    let a = source.attributes().await.unwrap();
    assert_eq!(
        a.approximate_in_flight, 0,
        "messages left invisible after shutdown"
    );
    let remaining: HashSet<String> = receive_all(source.as_ref(), false)
        .await
        .into_iter()
        .map(|m| m.body)
        .collect();
    assert!(
        !remaining.is_empty(),
        "the worker finished before SIGTERM: the test proved nothing"
    );
    let records = backend.records(&stack.table);
    let mut lost = 0;
    for s in &set {
        let done = records
            .get(&format!("MSG#GENHOSP#{}", s.control_id), "EVENT")
            .await
            .unwrap()
            .is_some();
        if !done && !remaining.contains(&s.body) {
            lost += 1;
        }
    }
    assert_eq!(lost, 0, "messages neither processed nor back on the queue");
}
