//! `fleet demo`: the README's first command. Everything runs on the embedded local backend in a
//! directory of its own. The generated ADT messages go in as an EHR feed sends them: over MLLP
//! to the gateway, one at a time, each ACK printed; the output then shows events, records and
//! dead-lettered messages with their codes, and identifiers only as control ids (no names,
//! birth dates or MRNs).

use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use fleet_core::ports::MessageQueue;
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
    /// Answered AE or AR by the gateway (never queued).
    pub refused: usize,
    pub codes_as_expected: bool,
    /// Every ACK is the one the gateway's table gives for the sample.
    pub acks_as_expected: bool,
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
    let expected_events = samples
        .iter()
        .filter(|s| s.expected_failure.is_none())
        .count();
    writeln!(
        out,
        "sending {} HL7 ADT messages over MLLP to the gateway ({expected_events} well-formed, {} malformed); each is ACKed once it is on queue {SOURCE_QUEUE}:",
        samples.len(),
        samples.len() - expected_events
    )?;
    let (refused, acks_as_expected) = send_through_gateway(&backend, &samples, out).await?;
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
                    .find(|s| s.body.as_bytes() == m.body.as_bytes())
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
        refused,
        codes_as_expected,
        acks_as_expected,
    })
}

/// The gateway's answer for a sample, from its table (`workers/mllp-gateway/DESIGN.md`), as
/// MSA-1's second letter (original mode AA/AE/AR, enhanced CA/CE/CR): a body without an MSH is
/// a content error (E); a message type with no route (the demo routes ADT only) is refused
/// (R); everything else is queued (A), and hl7-ingest judges it.
fn expected_ack(sample: &fleet_samples::hl7::Sample) -> char {
    match sample.expected_failure {
        Some(fleet_core::ErrorCode::Hl7NoMsh) => 'E',
        Some(fleet_core::ErrorCode::Hl7NotAdt) => 'R',
        _ => 'A',
    }
}

/// Run the gateway on a loopback port of its own, send every sample through it one at a time
/// as an interface engine does, print each ACK, and stop it. Returns how many were refused
/// (AE/AR) and whether every ACK was the expected one.
async fn send_through_gateway(
    backend: &Arc<dyn Backend>,
    samples: &[fleet_samples::hl7::Sample],
    out: &mut impl Write,
) -> anyhow::Result<(usize, bool)> {
    let args = [
        "--listen=127.0.0.1:0".to_string(),
        format!("--route=ADT^*={SOURCE_QUEUE}"),
        format!(
            "--claim-check-bucket={}",
            crate::local_stack::CLAIM_CHECK_BUCKET
        ),
        "--allow-unencrypted".into(),
    ];
    let config: mllp_gateway::GatewayConfig =
        crate::sections::parse("the demo's mllp-gateway", &args)?;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let stop = CancellationToken::new();
    let gateway = tokio::spawn(mllp_gateway::run_on(
        config,
        backend.clone(),
        listener,
        stop.clone(),
    ));
    let sent = async {
        let mut client = mllp_gateway::client::Client::connect(
            &addr.to_string(),
            &mllp_gateway::client::ConnectOptions::default(),
        )
        .await?;
        let (mut refused, mut as_expected) = (0, true);
        for s in samples {
            let reply = client
                .exchange(s.body.as_bytes(), Duration::from_secs(30))
                .await?;
            let ack = mllp_gateway::ack::parse_ack(&reply)
                .context("the gateway's reply is not an ACK")?;
            let outcome = ack.code.chars().nth(1);
            if outcome != Some('A') {
                refused += 1;
            }
            as_expected &= outcome == Some(expected_ack(s));
            writeln!(out, "  {}", mllp_gateway::client::describe(&ack))?;
        }
        client.close().await;
        anyhow::Ok((refused, as_expected))
    }
    .await;
    stop.cancel();
    gateway.await.context("gateway task")??;
    sent
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
