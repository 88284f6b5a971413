//! `fleet demo`: the README's first command. Everything runs on the embedded local backend in a
//! directory of its own; the output shows events, records and dead-lettered messages with their
//! codes, and identifiers only as control ids (no names, birth dates or MRNs).

use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use fleet_core::ports::{MessageQueue, OutgoingMessage};
use fleet_core::{Backend, FailureMetadata};
use fleet_local::{LocalBackend, QueueSpec};
use tokio_util::sync::CancellationToken;

pub use crate::local_stack::{BUS, HL7_DLQ as DLQ, HL7_QUEUE as SOURCE_QUEUE, HL7_TABLE as TABLE};
/// Where the demo taps the bus to show what was published.
pub const TAP_QUEUE: &str = "patient-events-tap";

/// What the demo saw, for its own check and for tests.
#[derive(Debug, Default)]
pub struct DemoSummary {
    pub seeded: usize,
    pub expected_events: usize,
    pub events: usize,
    pub dead_lettered: usize,
    pub codes_as_expected: bool,
}

/// Provision the local resources the demo uses: hl7-ingest's part of the stack and a tap.
pub fn provision(local: &LocalBackend) -> anyhow::Result<()> {
    let visibility = Duration::from_secs(30);
    crate::local_stack::provision_hl7(local)?;
    local.create_queue(
        TAP_QUEUE,
        QueueSpec {
            visibility_timeout: visibility,
            ..QueueSpec::default()
        },
    )?;
    local.put_rule(
        BUS,
        "patient-events-to-tap",
        r#"{"source":["fleet.hl7-ingest"],"detail-type":[{"prefix":"Patient"}]}"#,
        TAP_QUEUE,
    )?;
    Ok(())
}

pub async fn run(
    dir: &Path,
    total: usize,
    malformed: usize,
    seed: u64,
    out: &mut impl Write,
) -> anyhow::Result<DemoSummary> {
    let db = dir.join("fleet.sqlite");
    let objects = dir.join("objects");
    std::fs::create_dir_all(&objects).with_context(|| format!("creating {}", objects.display()))?;
    let local = LocalBackend::open(&db, &objects).context("opening the local backend")?;
    provision(&local)?;
    let backend: Arc<dyn Backend> = Arc::new(local.clone());
    writeln!(
        out,
        "fleet demo: local backend in {} (SQLite file + object directory)",
        dir.display()
    )?;

    // A directory reused from an earlier run keeps its events and dead letters: report only
    // what this run adds.
    let events_before = local.list_bus_events(BUS)?.len();
    let tap_before = local.queue_messages_snapshot(TAP_QUEUE)?.len();
    let dead_before: std::collections::HashSet<String> = local
        .queue_messages_snapshot(DLQ)?
        .into_iter()
        .map(|m| m.message_id)
        .collect();
    let samples = fleet_samples::hl7::generate(seed, total, malformed);
    let source = backend.queue(SOURCE_QUEUE).await?;
    for s in &samples {
        source
            .send(OutgoingMessage {
                body: s.body.clone(),
                ..OutgoingMessage::default()
            })
            .await?;
    }
    let expected_events = samples
        .iter()
        .filter(|s| s.expected_failure.is_none())
        .count();
    writeln!(
        out,
        "seeded {} HL7 ADT messages on queue {SOURCE_QUEUE}: {expected_events} well-formed, {} malformed",
        samples.len(),
        samples.len() - expected_events
    )?;
    writeln!(
        out,
        "note: the local backend's SQLite file is not encrypted; the demo runs with the explicit allow-unencrypted flag (use disk encryption on a real box)"
    )?;

    let shutdown = CancellationToken::new();
    let mut config = demo_worker_config();
    config.runtime.allow_unencrypted = true;
    let worker = tokio::spawn(hl7_ingest::run(config, backend.clone(), shutdown.clone()));
    let started = Instant::now();
    wait_until_drained(source.as_ref(), Duration::from_secs(60)).await?;
    shutdown.cancel();
    let report = worker.await.context("worker task")??;
    writeln!(
        out,
        "processed in {:.2} s: received {}, succeeded {}, dead-lettered {}",
        started.elapsed().as_secs_f64(),
        report.received,
        report.succeeded,
        report.dead_lettered
    )?;

    let events: Vec<_> = local
        .list_bus_events(BUS)?
        .into_iter()
        .skip(events_before)
        .collect();
    writeln!(out, "\nevents on bus {BUS:?} ({}):", events.len())?;
    for e in &events {
        let detail = &e["detail"];
        let control = detail["payload"]["control_id"].as_str().unwrap_or("?");
        writeln!(
            out,
            "  {:<28} control id {:<16} event id {}",
            e["detail-type"].as_str().unwrap_or("?"),
            control,
            detail["event_id"].as_str().unwrap_or("?")
        )?;
    }

    let records = local.table_records(TABLE)?;
    let mut kinds: BTreeMap<&str, usize> = BTreeMap::new();
    for r in &records {
        *kinds.entry(r.sk.as_str()).or_default() += 1;
    }
    writeln!(
        out,
        "\nrecords in table {TABLE:?}: {}",
        kinds
            .iter()
            .map(|(k, n)| format!("{n} {}", k.to_lowercase()))
            .collect::<Vec<_>>()
            .join(", ")
    )?;

    let tap: Vec<_> = local
        .queue_messages_snapshot(TAP_QUEUE)?
        .into_iter()
        .skip(tap_before)
        .collect();
    writeln!(
        out,
        "tap queue {TAP_QUEUE:?}: {} events routed by rule patient-events-to-tap",
        tap.len()
    )?;

    let dead: Vec<_> = local
        .queue_messages_snapshot(DLQ)?
        .into_iter()
        .filter(|m| !dead_before.contains(&m.message_id))
        .collect();
    writeln!(out, "\ndead-letter queue {DLQ:?} ({}):", dead.len())?;
    let mut codes_as_expected = true;
    for m in &dead {
        match FailureMetadata::from_attributes(&m.attributes) {
            Some(f) => {
                let expected = samples
                    .iter()
                    .find(|s| s.body == m.body)
                    .and_then(|s| s.expected_failure);
                codes_as_expected &= expected == Some(f.code);
                writeln!(
                    out,
                    "  {:<24} {} (attempts {}, message {})",
                    f.code.as_str(),
                    f.detail,
                    f.receive_count,
                    f.message_id
                )?;
            }
            None => {
                codes_as_expected = false;
                writeln!(out, "  (no failure metadata) message {}", m.message_id)?;
            }
        }
    }
    Ok(DemoSummary {
        seeded: samples.len(),
        expected_events,
        events: events.len(),
        dead_lettered: dead.len(),
        codes_as_expected,
    })
}

fn demo_worker_config() -> hl7_ingest::WorkerConfig {
    let args = [
        format!("--queue={SOURCE_QUEUE}"),
        format!("--event-bus={BUS}"),
        format!("--table={TABLE}"),
        "--wait-time-secs=1".into(),
    ];
    crate::sections::parse("the demo's hl7-ingest", &args).expect("the demo's flags are valid")
}

pub(crate) async fn wait_until_drained(
    queue: &dyn MessageQueue,
    limit: Duration,
) -> anyhow::Result<()> {
    let deadline = Instant::now() + limit;
    loop {
        let a = queue.attributes().await?;
        if a.approximate_visible + a.approximate_in_flight + a.approximate_delayed == 0 {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!(
                "the demo queue did not drain within {limit:?}: {} visible, {} in flight",
                a.approximate_visible,
                a.approximate_in_flight
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
