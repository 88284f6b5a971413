//! The final accounting: every message's outcome, the latencies, the worker's CPU and request
//! counts, the brief's targets, and for disturbed runs the faults, the records check and the
//! log scan, all into the report.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::PathBuf;
use std::time::Duration;

use super::Options;
use super::collect::Seen;
use super::provision::Provisioned;
use crate::chaos::{Disruption, RecordCheck};
use crate::generate::Message;
use crate::proxy::FaultProxy;
use crate::report::{self, FaultsReport, LogScan, Machine, Percentiles, Report, Target};
use crate::scenario::{FaultTarget, Mode, Scenario};
use crate::worker::FinalLine;

/// The messages and what became of them.
pub(super) struct Outcome<'a> {
    pub messages: &'a [Message],
    pub by_control: &'a HashMap<&'a str, usize>,
    /// Each message's enqueue time (µs since the epoch).
    pub send_us: &'a [i64],
    pub seen: &'a Seen,
}

/// What the run measured besides the outcomes.
pub(super) struct Assembly {
    pub started_at_unix_ms: i64,
    pub start_us: i64,
    pub cpu: Duration,
    pub exit: String,
    pub left_on_source: u64,
    pub fin: FinalLine,
}

/// The outcomes matched to the messages.
struct Matched {
    /// Enqueue → tap SentTimestamp, ms, per event.
    latency: Vec<f64>,
    /// Enqueue → the load tool's receive, ms, per event.
    observed: Vec<f64>,
    /// (seconds since start, latency ms) per event, for the timeline.
    points: Vec<(f64, f64)>,
    /// The last outcome, ms since the epoch (the start when there is none).
    last_ms: i64,
    /// Messages with an event or a dead letter.
    done: HashSet<usize>,
    codes: BTreeMap<String, u64>,
    unexpected: u64,
}

fn match_outcomes(o: &Outcome<'_>, start_us: i64) -> Matched {
    let mut m = Matched {
        latency: Vec::new(),
        observed: Vec::new(),
        points: Vec::new(),
        last_ms: start_us / 1000,
        done: HashSet::new(),
        codes: BTreeMap::new(),
        unexpected: 0,
    };
    for (control, (tap_ms, recv_us, _)) in &o.seen.events {
        let Some(&i) = o.by_control.get(control.as_str()) else {
            m.unexpected += 1;
            continue;
        };
        m.done.insert(i);
        if o.messages[i].expected_failure.is_some() {
            m.unexpected += 1;
        }
        let l = ((*tap_ms as f64) - o.send_us[i] as f64 / 1000.0).max(0.0);
        m.latency.push(l);
        m.observed
            .push(((recv_us - o.send_us[i]) as f64 / 1000.0).max(0.0));
        m.points.push(((*tap_ms * 1000 - start_us) as f64 / 1e6, l));
        m.last_ms = m.last_ms.max(*tap_ms);
    }
    for (&i, (code, at_ms)) in &o.seen.dead {
        m.done.insert(i);
        *m.codes.entry(code.clone()).or_default() += 1;
        if o.messages[i].expected_failure.map(|c| c.as_str()) != Some(code.as_str()) {
            m.unexpected += 1;
        }
        m.last_ms = m.last_ms.max(*at_ms);
    }
    m.unexpected += o.seen.dead_unknown + o.seen.foreign;
    m
}

/// The report of a run, without the reliability parts (`add_reliability`).
pub(super) async fn assemble(
    scenario: &Scenario,
    opts: &Options,
    o: &Outcome<'_>,
    a: Assembly,
) -> Report {
    let (messages, seen) = (o.messages, o.seen);
    let mut m = match_outcomes(o, a.start_us);
    let sent = messages.len() as u64;
    let malformed = messages
        .iter()
        .filter(|m| m.expected_failure.is_some())
        .count() as u64;
    let duration_s = ((m.last_ms * 1000 - a.start_us) as f64 / 1e6).max(1e-3);
    let outcomes = seen.events.len() as u64 + seen.dead.len() as u64;
    let total_requests: u64 = a.fin.requests.values().sum();
    let mut rpm: BTreeMap<String, f64> = a
        .fin
        .requests
        .iter()
        .map(|(k, v)| (k.clone(), *v as f64 / sent as f64))
        .collect();
    rpm.insert("total".into(), total_requests as f64 / sent as f64);
    let mut report = Report {
        scenario: scenario.name.clone(),
        backend: opts.backend.as_str().into(),
        mode: match scenario.mode {
            Mode::Preload => "preload".into(),
            Mode::Rate => "rate".into(),
        },
        seed: scenario.seed,
        command: opts.command.clone(),
        machine: machine().await,
        git_commit: git_commit().await,
        started_at_unix_ms: a.started_at_unix_ms,
        rate_target_per_s: scenario.rate_per_s,
        worker_concurrency: scenario.worker_concurrency,
        worker_publish_linger_ms: scenario.worker_publish_linger_ms,
        worker_delete_linger_ms: scenario.worker_delete_linger_ms,
        worker_drain_deadline_s: scenario.worker_drain_deadline_s,
        visibility_timeout_s: scenario.visibility_timeout_s,
        messages_sent: sent,
        well_formed_sent: sent - malformed,
        malformed_sent: malformed,
        mean_body_bytes: messages.iter().map(|m| m.body.len() as u64).sum::<u64>() / sent.max(1),
        events_observed: seen.events.len() as u64,
        duplicate_events: seen.event_ids.values().map(|n| n.saturating_sub(1)).sum(),
        duplicate_dead_letters: seen.dead_duplicates,
        dead_lettered: seen.dead.len() as u64,
        dead_letter_codes: m.codes,
        unexpected_outcomes: m.unexpected,
        lost: sent - m.done.len() as u64,
        left_on_source: a.left_on_source,
        duration_s,
        throughput_per_s: outcomes as f64 / duration_s,
        latency_ms: Percentiles::of(&mut m.latency),
        observed_latency_ms: Percentiles::of(&mut m.observed),
        worker_cpu_ms_total: a.cpu.as_secs_f64() * 1e3,
        worker_cpu_us_per_message: a.cpu.as_secs_f64() * 1e6 / sent as f64,
        worker_exit: a.exit,
        worker_received: a.fin.received,
        worker_succeeded: a.fin.succeeded,
        worker_dead_lettered: a.fin.dead_lettered,
        requests_per_message: rpm,
        requests: a.fin.requests.clone(),
        targets: Vec::new(),
        timeline: report::timeline(&m.points),
        faults: None,
        records: None,
        event_ids_conflicting: 0,
        log_scan: None,
        mllp: None,
    };
    report.targets = targets(&report, scenario);
    report
}

/// The reliability parts: what was done to the worker (or the gateway), the records check, the
/// log scan and the messages published under more than one event id. `gateway_logs`: an MLLP
/// run's gateway logs, scanned too.
pub(super) async fn add_reliability(
    report: &mut Report,
    scenario: &Scenario,
    run: &Provisioned,
    disruptions: Vec<Disruption>,
    records: RecordCheck,
    seen: &Seen,
    gateway_logs: &[PathBuf],
) {
    let starts = match scenario.faults.target {
        FaultTarget::Worker => run.workers.logs.len(),
        FaultTarget::Gateway => gateway_logs.len(),
    };
    report.faults = Some(FaultsReport {
        planned: scenario.faults.clone(),
        worker_starts: u32::try_from(starts).unwrap_or(u32::MAX),
        disruptions,
        // A killed worker writes no counts; a killed gateway's are the gateway's (MllpReport).
        requests_partial: scenario.faults.kills > 0
            && scenario.faults.target == FaultTarget::Worker,
        proxy: run.proxy.as_ref().map(FaultProxy::summary),
    });
    report.records = Some(records);
    let logs: Vec<PathBuf> = run
        .workers
        .logs
        .iter()
        .chain(gateway_logs)
        .cloned()
        .collect();
    report.log_scan = Some(scan_logs(&logs).await);
    report.event_ids_conflicting = seen
        .ids_by_control
        .values()
        .filter(|ids| ids.len() > 1)
        .count() as u64;
}

/// Every worker log, scanned for synthetic patient data (names, MRNs, birth dates).
pub(super) async fn scan_logs(logs: &[PathBuf]) -> LogScan {
    let mut scan = LogScan::default();
    for log in logs {
        let text = tokio::fs::read_to_string(log).await.unwrap_or_default();
        scan.files += 1;
        scan.lines += text.lines().count() as u64;
        scan.lines_with_patient_data += fleet_samples::hl7::synthetic_phi_in(&text)
            .iter()
            .map(|(line, _)| *line)
            .collect::<HashSet<_>>()
            .len() as u64;
    }
    scan
}

/// The brief's §10 targets this run can speak to, each only under its own conditions.
pub(super) fn targets(r: &Report, s: &Scenario) -> Vec<Target> {
    // A disturbed run measures recovery, not the brief's performance targets; an MLLP run's
    // consumer figures are not the worker's targets' conditions (it has its own target).
    let clean = s.faults.disruptions() == 0 && s.faults.proxy_share == 0.0 && s.mllp.is_none();
    let local = r.backend == "local" && clean;
    let aws = r.backend == "aws" && clean;
    let saturated = s.mode == Mode::Preload || s.rate_per_s == 0;
    let total = r.requests_per_message.get("total").copied().unwrap_or(0.0);
    let queue_bus: f64 = r
        .requests_per_message
        .iter()
        .filter(|(k, _)| k.starts_with("sqs.") || k.starts_with("events."))
        .map(|(_, v)| v)
        .sum();
    vec![
        Target {
            what: "lost messages",
            target: "0".into(),
            measured: r.lost.to_string(),
            met: Some(r.lost == 0),
        },
        Target {
            what: "requests per message at saturation (aws)",
            target: "<= 1.35".into(),
            measured: format!("{total:.3}"),
            met: (aws && saturated).then_some(total <= 1.35),
        },
        Target {
            what: "queue + bus requests per message (aws)",
            target: "<= 0.35".into(),
            measured: format!("{queue_bus:.3}"),
            met: (aws && saturated).then_some(queue_bus <= 0.35),
        },
        Target {
            what: "worker CPU per message, local",
            target: "<= 50 µs".into(),
            measured: format!("{:.1} µs", r.worker_cpu_us_per_message),
            met: local.then_some(r.worker_cpu_us_per_message <= 50.0),
        },
        Target {
            what: "local throughput, 2 cores (issue 19)",
            target: ">= 10000/s".into(),
            measured: format!("{:.0}/s", r.throughput_per_s),
            met: (local && saturated).then_some(r.throughput_per_s >= 10_000.0),
        },
        Target {
            what: "local p99 latency at 1,000 msg/s",
            target: "<= 50 ms".into(),
            measured: format!("{:.1} ms", r.latency_ms.p99),
            met: (local && s.mode == Mode::Rate && s.rate_per_s == 1000)
                .then_some(r.latency_ms.p99 <= 50.0),
        },
        Target {
            what: "local p99 latency at 5,000 msg/s (issue 19)",
            target: "<= 50 ms".into(),
            measured: format!("{:.1} ms", r.latency_ms.p99),
            met: (local && s.mode == Mode::Rate && s.rate_per_s == 5000)
                .then_some(r.latency_ms.p99 <= 50.0),
        },
    ]
}

async fn machine() -> Machine {
    let uname = tokio::process::Command::new("uname")
        .arg("-a")
        .output()
        .await
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .map(|s| s.trim().to_string())
        .unwrap_or_default();
    Machine {
        nproc: std::thread::available_parallelism().map_or(0, |n| n.get()),
        uname,
    }
}

/// The commit of the working tree a run measured (`-dirty` when it had changes).
pub(crate) async fn git_commit() -> Option<String> {
    let o = tokio::process::Command::new("git")
        .args(["describe", "--always", "--dirty", "--abbrev=7"])
        .output()
        .await
        .ok()?;
    o.status
        .success()
        .then(|| String::from_utf8_lossy(&o.stdout).trim().to_string())
}
