//! End to end on the local backend: the real `hl7-ingest` binary against a SQLite file.

use std::collections::HashSet;
use std::path::Path;
use std::time::{Duration, Instant};

use fleet_core::Backend;
use fleet_core::FailureMetadata;
use fleet_local::{LocalBackend, QueueSpec};
use fleet_samples::hl7 as samples;
use fleet_testkit::workers::{Worker, assert_no_phi, sample_secrets, send_all, wait_drained};

const SOURCE: &str = "hl7-in";
const DLQ: &str = "hl7-in-dlq";
const TAP: &str = "tap";
const BUS: &str = "fleet";
const TABLE: &str = "hl7";

fn provision(dir: &Path) -> LocalBackend {
    let local = LocalBackend::open(&dir.join("db.sqlite"), &dir.join("objects"))
        .expect("open local backend");
    let vis = Duration::from_secs(30);
    local
        .create_queue(
            DLQ,
            QueueSpec {
                visibility_timeout: vis,
                ..QueueSpec::default()
            },
        )
        .unwrap();
    local
        .create_queue(
            SOURCE,
            QueueSpec {
                visibility_timeout: vis,
                redrive: Some((DLQ.into(), 5)),
                ..QueueSpec::default()
            },
        )
        .unwrap();
    local
        .create_queue(
            TAP,
            QueueSpec {
                visibility_timeout: vis,
                ..QueueSpec::default()
            },
        )
        .unwrap();
    local
        .put_rule(
            BUS,
            "all-patient-events",
            r#"{"source":["fleet.hl7-ingest"]}"#,
            TAP,
        )
        .unwrap();
    local
}

fn worker_env(dir: &Path) -> Vec<(&'static str, String)> {
    vec![
        ("FLEET_BACKEND", "local".into()),
        (
            "FLEET_LOCAL_DB",
            dir.join("db.sqlite").display().to_string(),
        ),
        (
            "FLEET_LOCAL_OBJECTS",
            dir.join("objects").display().to_string(),
        ),
        ("FLEET_HL7_QUEUE", SOURCE.into()),
        ("FLEET_EVENT_BUS", BUS.into()),
        ("FLEET_HL7_TABLE", TABLE.into()),
        ("FLEET_ALLOW_UNENCRYPTED", "1".into()),
        ("FLEET_WAIT_TIME_SECS", "1".into()),
        ("FLEET_DRAIN_DEADLINE_SECS", "5".into()),
        // Every level, our crates and the libraries: the PHI scan must cover debug output too.
        ("FLEET_LOG", "trace".into()),
    ]
}

fn control_id_of(event: &serde_json::Value) -> String {
    event["detail"]["payload"]["control_id"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

#[tokio::test(flavor = "multi_thread")]
async fn local_end_to_end_events_records_dlq_and_no_phi_in_logs() {
    let dir = tempfile::tempdir().unwrap();
    let local = provision(dir.path());
    let samples = samples::generate(11, 200, 10);
    let source = local.queue(SOURCE).await.unwrap();
    send_all(source.as_ref(), samples.iter().map(|s| s.body.clone())).await;

    let mut worker = Worker::start(
        "hl7-ingest",
        &[],
        &worker_env(dir.path()),
        dir.path().join("worker.log"),
    );
    wait_drained(source.as_ref(), Duration::from_secs(60)).await;
    let (_, status) = worker.terminate(Duration::from_secs(15));
    assert!(
        status.success(),
        "worker exit {status}; log:\n{}",
        worker.log_text()
    );

    // 190 events, one per well-formed message, each event id once.
    let events = local.list_bus_events(BUS).unwrap();
    let good: HashSet<String> = samples
        .iter()
        .filter(|s| s.expected_failure.is_none())
        .map(|s| s.control_id.clone())
        .collect();
    assert_eq!(events.len(), good.len());
    let ids: HashSet<&str> = events
        .iter()
        .map(|e| e["detail"]["event_id"].as_str().unwrap())
        .collect();
    assert_eq!(ids.len(), good.len(), "an event id repeats");
    let seen: HashSet<String> = events.iter().map(control_id_of).collect();
    assert_eq!(seen, good);
    assert_eq!(
        local.queue_messages_snapshot(TAP).unwrap().len(),
        good.len(),
        "rule did not route every event to the tap"
    );

    // One event record per well-formed message.
    let records = local.table_records(TABLE).unwrap();
    assert_eq!(
        records.iter().filter(|r| r.sk == "EVENT").count(),
        good.len()
    );

    // The malformed ones are in the DLQ with their codes.
    let dead = local.queue_messages_snapshot(DLQ).unwrap();
    assert_eq!(dead.len(), 10);
    for m in &dead {
        let meta = FailureMetadata::from_attributes(&m.attributes).expect("failure attribute");
        let sample = samples
            .iter()
            .find(|s| s.body == m.body)
            .expect("dead-lettered body is one of ours");
        assert_eq!(
            Some(meta.code),
            sample.expected_failure,
            "wrong code for {}",
            sample.control_id
        );
        assert_eq!(meta.worker, "hl7-ingest");
        assert_eq!(meta.source_queue, SOURCE);
    }

    // Minimal PHI policy: no names or birth dates in events.
    let events_text = serde_json::to_string(&events).unwrap();
    for s in &samples {
        assert!(
            !events_text.contains(&s.patient.family),
            "an event carries a name under the minimal policy"
        );
        assert!(!events_text.contains(&s.patient.birth_date));
    }
    assert_no_phi(&worker.log_text(), &sample_secrets(&samples));
}

#[tokio::test(flavor = "multi_thread")]
async fn local_sigterm_during_processing_loses_nothing_and_leaves_nothing_invisible() {
    let dir = tempfile::tempdir().unwrap();
    let local = provision(dir.path());
    let samples = samples::generate(12, 3000, 0);
    let source = local.queue(SOURCE).await.unwrap();
    send_all(source.as_ref(), samples.iter().map(|s| s.body.clone())).await;

    let mut worker = Worker::start(
        "hl7-ingest",
        &[],
        &worker_env(dir.path()),
        dir.path().join("worker.log"),
    );
    // Wait until processing is under way, then stop it mid-stream.
    let deadline = Instant::now() + Duration::from_secs(60);
    while local.list_bus_events(BUS).unwrap().len() < 50 {
        assert!(
            Instant::now() < deadline,
            "worker made no progress; log:\n{}",
            worker.log_text()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let (took, status) = worker.terminate(Duration::from_secs(15));
    assert!(
        status.success(),
        "exit {status}; log:\n{}",
        worker.log_text()
    );
    assert!(
        took < Duration::from_secs(5 + 2),
        "exit took {took:?}, past the 5 s drain deadline"
    );

    let attrs = source.attributes().await.unwrap();
    assert_eq!(
        attrs.approximate_in_flight, 0,
        "messages left invisible after shutdown"
    );
    let remaining: HashSet<String> = local
        .queue_messages_snapshot(SOURCE)
        .unwrap()
        .into_iter()
        .map(|m| m.body)
        .collect();
    let published: HashSet<String> = local
        .list_bus_events(BUS)
        .unwrap()
        .iter()
        .map(control_id_of)
        .collect();
    let lost: Vec<&str> = samples
        .iter()
        .filter(|s| !published.contains(&s.control_id) && !remaining.contains(&s.body))
        .map(|s| s.control_id.as_str())
        .collect();
    assert!(
        lost.is_empty(),
        "{} messages neither processed nor back in the queue",
        lost.len()
    );
    assert!(
        !remaining.is_empty(),
        "the worker finished everything before SIGTERM: the test proved nothing"
    );
    assert!(local.queue_messages_snapshot(DLQ).unwrap().is_empty());
}
