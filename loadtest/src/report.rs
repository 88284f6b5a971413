//! The report: JSON (the keys the issue fixes, and more), a human table, an SVG chart
//! (`chart`, drawn with plotters).

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde::Serialize;

use crate::chaos::{Disruption, DisruptionKind, RecordCheck};
use crate::mllp::SendSummary;
use crate::proxy::ProxySummary;
use crate::scenario::{FaultTarget, Faults};

mod chart;

#[derive(Debug, Clone, Copy, Default, Serialize, PartialEq)]
pub struct Percentiles {
    pub p50: f64,
    pub p90: f64,
    pub p99: f64,
    pub max: f64,
    pub mean: f64,
}

impl Percentiles {
    /// Nearest-rank percentiles of `values` (sorted here).
    pub fn of(values: &mut [f64]) -> Percentiles {
        if values.is_empty() {
            return Percentiles::default();
        }
        values.sort_by(f64::total_cmp);
        let rank = |p: f64| {
            let n = values.len();
            let i = ((p / 100.0) * n as f64).ceil() as usize;
            values[i.clamp(1, n) - 1]
        };
        Percentiles {
            p50: rank(50.0),
            p90: rank(90.0),
            p99: rank(99.0),
            max: values[values.len() - 1],
            mean: values.iter().sum::<f64>() / values.len() as f64,
        }
    }
}

/// One second of the run, for the chart.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Second {
    pub t_s: u64,
    pub events: u64,
    pub latency_p50_ms: f64,
    pub latency_p99_ms: f64,
    pub latency_max_ms: f64,
}

#[derive(Debug, Clone, Serialize)]
pub struct Machine {
    pub nproc: usize,
    pub uname: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct Target {
    pub what: &'static str,
    pub target: String,
    pub measured: String,
    /// `None` when this run does not measure it under the target's conditions.
    pub met: Option<bool>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub scenario: String,
    pub backend: String,
    pub mode: String,
    pub seed: u64,
    pub command: String,
    pub machine: Machine,
    pub git_commit: Option<String>,
    pub started_at_unix_ms: i64,
    pub rate_target_per_s: u32,
    pub worker_concurrency: usize,
    /// The worker's PutEvents / DeleteMessageBatch lingers when the scenario sets them.
    pub worker_publish_linger_ms: Option<u64>,
    pub worker_delete_linger_ms: Option<u64>,
    pub worker_drain_deadline_s: u64,
    pub visibility_timeout_s: u64,
    pub messages_sent: u64,
    pub well_formed_sent: u64,
    pub malformed_sent: u64,
    pub mean_body_bytes: u64,
    pub events_observed: u64,
    pub duplicate_events: u64,
    pub duplicate_dead_letters: u64,
    pub dead_lettered: u64,
    pub dead_letter_codes: BTreeMap<String, u64>,
    /// Well-formed messages dead-lettered, or malformed ones that produced an event, or a
    /// dead letter whose code is not the one the generator expects.
    pub unexpected_outcomes: u64,
    /// Sent − (distinct messages with an event) − (distinct messages dead-lettered).
    pub lost: u64,
    /// Visible + in flight on the source queue after the worker exited.
    pub left_on_source: u64,
    pub duration_s: f64,
    /// (events + dead letters) / (last outcome − start); start is the first send in rate mode
    /// and the worker's start in preload mode.
    pub throughput_per_s: f64,
    /// Enqueue (just before the SendMessageBatch call) → the event's arrival on the tap queue
    /// (its SentTimestamp, millisecond resolution).
    pub latency_ms: Percentiles,
    /// Enqueue → the load tool's receive from the tap queue (adds the tap poll's own delay).
    pub observed_latency_ms: Percentiles,
    pub worker_cpu_ms_total: f64,
    pub worker_cpu_us_per_message: f64,
    pub worker_exit: String,
    pub worker_received: u64,
    pub worker_succeeded: u64,
    pub worker_dead_lettered: u64,
    /// Backend requests the worker made, per message sent: `total` and one key per API.
    pub requests_per_message: BTreeMap<String, f64>,
    pub requests: BTreeMap<String, u64>,
    pub targets: Vec<Target>,
    pub timeline: Vec<Second>,
    /// Kills, SIGTERMs and proxy faults, when the scenario has any.
    pub faults: Option<FaultsReport>,
    /// The worker's event records checked against the messages and the published events.
    pub records: Option<RecordCheck>,
    /// Messages whose events carried more than one event id (a redelivery must reuse the id).
    pub event_ids_conflicting: u64,
    /// Every worker log of the run, scanned for synthetic patient data.
    pub log_scan: Option<LogScan>,
    /// An MLLP run: the senders, the gateway and the check that every AA'd message was queued.
    pub mllp: Option<MllpReport>,
}

/// What an MLLP run measured of the gateway and its senders.
#[derive(Debug, Clone, Serialize)]
pub struct MllpReport {
    /// The gateway's group-commit linger when the scenario sets it (default 5 ms otherwise).
    pub batch_linger_ms: Option<u64>,
    /// hl7-ingest ran on the queue (otherwise `queue_check` says what the queue held).
    pub ingest: bool,
    /// The senders: connections, AAs, ACK codes, resends, messages/s, ACK latency.
    pub send: SendSummary,
    /// Gateway processes started (1 + one per kill or SIGTERM of it).
    pub gateway_starts: u32,
    /// The last gateway's exit after its SIGTERM.
    pub gateway_exit: String,
    /// utime + stime of every gateway process (`/proc/<pid>/stat`, read just before each was
    /// stopped); of it, what the first process had used when it reported ready (start-up);
    /// and (total − start-up) over the accepted messages. A restarted gateway's start-up is in
    /// the per-message figure.
    pub gateway_cpu_ms_total: f64,
    pub gateway_cpu_ms_startup: f64,
    pub gateway_cpu_us_per_message: f64,
    /// The gateway's backend requests (its `run finished` lines; a killed one writes none),
    /// and per AA'd message: one key per API, `total`, and `sqs` (every SQS request).
    pub gateway_requests: BTreeMap<String, u64>,
    pub gateway_requests_per_message: BTreeMap<String, f64>,
    /// AA'd messages per SendMessageBatch call; `None` when a killed gateway's calls are not
    /// counted.
    pub entries_per_batch: Option<f64>,
    pub requests_partial: bool,
    /// Without hl7-ingest: the source queue read back after the sending.
    pub queue_check: Option<QueueCheck>,
    /// Messages that got AA but are not on the queue (without hl7-ingest) or have no event
    /// (with it). Must be 0: the gateway's promise.
    pub acked_but_lost: u64,
}

impl MllpReport {
    pub fn held(&self) -> bool {
        self.acked_but_lost == 0
            && self.send.given_up == 0
            && self.send.bad_acks == 0
            && self.queue_check.as_ref().is_none_or(|q| q.unknown == 0)
    }

    /// SQS requests of any kind per AA'd message.
    pub fn sqs_per_message(&self) -> f64 {
        self.gateway_requests_per_message
            .get("sqs")
            .copied()
            .unwrap_or(0.0)
    }

    pub fn send_batch_per_message(&self) -> f64 {
        self.gateway_requests_per_message
            .get("sqs.SendMessageBatch")
            .copied()
            .unwrap_or(0.0)
    }

    fn rows(&self) -> Vec<(&'static str, String)> {
        let s = &self.send;
        let mut rows = vec![
            (
                "MLLP senders",
                format!(
                    "{} connections, {} accepted (AA/CA), ACKs {:?}, {} resent, {} exchanges failed, {} given up",
                    s.connections,
                    s.acked,
                    s.ack_codes,
                    s.resent_messages,
                    s.exchange_failures,
                    s.given_up
                ),
            ),
            (
                "MLLP messages/s",
                format!("{:.0} ({:.2} s)", s.messages_per_s, s.duration_s),
            ),
            (
                "ACK latency p50/p90/p99/max",
                format!(
                    "{:.2} / {:.2} / {:.2} / {:.2} ms",
                    s.ack_latency_ms.p50,
                    s.ack_latency_ms.p90,
                    s.ack_latency_ms.p99,
                    s.ack_latency_ms.max
                ),
            ),
            (
                "gateway CPU",
                format!(
                    "{:.1} µs/message ({:.0} ms total, {:.0} ms of it start-up, {} processes, exit {})",
                    self.gateway_cpu_us_per_message,
                    self.gateway_cpu_ms_total,
                    self.gateway_cpu_ms_startup,
                    self.gateway_starts,
                    self.gateway_exit
                ),
            ),
            (
                "gateway SQS requests",
                format!(
                    "{:.3} SendMessageBatch / message ({} entries per batch), {:.3} SQS in all{}",
                    self.send_batch_per_message(),
                    self.entries_per_batch
                        .map_or_else(|| "?".to_string(), |e| format!("{e:.2}")),
                    self.sqs_per_message(),
                    if self.requests_partial {
                        " (partial: a killed gateway writes no counts)"
                    } else {
                        ""
                    }
                ),
            ),
            ("ACKed but lost", self.acked_but_lost.to_string()),
        ];
        if let Some(q) = &self.queue_check {
            rows.push((
                "queue check",
                format!(
                    "{} on the queue: {} ACKed found, {} ACKed missing, {} duplicate copies, {} never ACKed, {} unknown",
                    q.received, q.acked_found, q.acked_missing, q.duplicates, q.not_acked_found, q.unknown
                ),
            ));
        }
        rows
    }
}

/// The source queue read back after an MLLP run without hl7-ingest.
#[derive(Debug, Clone, Default, Serialize)]
pub struct QueueCheck {
    /// Messages received from the queue.
    pub received: u64,
    /// AA'd messages found on it / not found (must be 0).
    pub acked_found: u64,
    pub acked_missing: u64,
    /// Copies beyond the first of a message (a resend after a lost ACK): allowed, counted.
    pub duplicates: u64,
    /// Messages on the queue that never got AA (queued, then the ACK was lost): allowed.
    pub not_acked_found: u64,
    /// Bodies whose MSH-10 is no message of the run (must be 0).
    pub unknown: u64,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct LogScan {
    pub files: u64,
    pub lines: u64,
    pub lines_with_patient_data: u64,
}

/// What was done to the worker and what came of it.
#[derive(Debug, Clone, Serialize)]
pub struct FaultsReport {
    pub planned: Faults,
    /// Worker processes started (1 + one per disruption).
    pub worker_starts: u32,
    pub disruptions: Vec<Disruption>,
    /// Request counts come from each worker's final line; a killed worker writes none.
    pub requests_partial: bool,
    pub proxy: Option<ProxySummary>,
}

impl FaultsReport {
    /// Every planned disruption happened; every SIGTERM exited cleanly within the drain
    /// deadline (plus the margin for the final flush) and left nothing invisible; the SDK
    /// never went past its announced attempt limit.
    pub fn held(&self, drain_deadline_s: u64) -> bool {
        let planned = self.planned.disruptions() as usize;
        let terms_ok = self.disruptions.iter().all(|d| match d.kind {
            DisruptionKind::Kill => true,
            DisruptionKind::Term => {
                d.exit_ok == Some(true)
                    && d.exit_s
                        .is_some_and(|s| s <= drain_deadline_s as f64 + EXIT_MARGIN_S)
                    // The gateway holds no queue messages: nothing to leave invisible.
                    && (d.in_flight_after_exit == Some(0)
                        || self.planned.target == FaultTarget::Gateway)
            }
        });
        let retries_bounded = self
            .proxy
            .as_ref()
            .is_none_or(|p| p.max_attempt <= p.max_attempts_allowed);
        self.disruptions.len() == planned && terms_ok && retries_bounded
    }

    /// Seconds from each disruption to the first outcome after the restart.
    pub fn recovery(&self) -> Percentiles {
        let mut v: Vec<f64> = self
            .disruptions
            .iter()
            .filter_map(|d| d.recovery_s)
            .collect();
        Percentiles::of(&mut v)
    }

    /// The table's rows for the disruptions and the fault proxy.
    fn rows(&self, drain_deadline_s: u64) -> Vec<(&'static str, String)> {
        let mut rows = Vec::new();
        let kills = self
            .disruptions
            .iter()
            .filter(|d| d.kind == DisruptionKind::Kill)
            .count();
        let terms: Vec<&Disruption> = self
            .disruptions
            .iter()
            .filter(|d| d.kind == DisruptionKind::Term)
            .collect();
        let rec = self.recovery();
        rows.push((
            "disruptions",
            format!(
                "{kills} of {} kill -9, {} of {} SIGTERM; recovery p50 {:.2} s, max {:.2} s",
                self.planned.kills,
                terms.len(),
                self.planned.sigterms,
                rec.p50,
                rec.max
            ),
        ));
        if !terms.is_empty() {
            let slowest = terms.iter().filter_map(|d| d.exit_s).fold(0.0, f64::max);
            let clean = terms.iter().filter(|d| d.exit_ok == Some(true)).count();
            let invisible: u64 = terms.iter().filter_map(|d| d.in_flight_after_exit).sum();
            rows.push((
                "SIGTERM exits",
                format!(
                    "{clean} clean, slowest {slowest:.2} s (deadline {drain_deadline_s} s), {invisible} left invisible"
                ),
            ));
        }
        if let Some(p) = &self.proxy {
            rows.push((
                "fault proxy",
                format!(
                    "{} requests, injected {:?}, {} retries, highest attempt {} of {}",
                    p.requests, p.injected, p.retries, p.max_attempt, p.max_attempts_allowed
                ),
            ));
        }
        rows
    }
}

/// What a SIGTERM'd worker may take beyond its drain deadline: the last delete and visibility
/// flushes after the drain, and process exit.
pub const EXIT_MARGIN_S: f64 = 5.0;

impl Report {
    pub fn passed(&self) -> bool {
        self.lost == 0
            && self.unexpected_outcomes == 0
            && self.messages_sent > 0
            && self.event_ids_conflicting == 0
            && self
                .log_scan
                .as_ref()
                .is_none_or(|l| l.lines_with_patient_data == 0 && l.lines > 0)
            && self.records.as_ref().is_none_or(RecordCheck::ok)
            && self
                .faults
                .as_ref()
                .is_none_or(|f| f.held(self.worker_drain_deadline_s))
            && self.mllp.as_ref().is_none_or(MllpReport::held)
    }

    /// The human table printed on stdout.
    pub fn table(&self) -> String {
        let mut s = String::new();
        for (k, v) in self.rows() {
            let _ = writeln!(s, "{k:<26} {v}");
        }
        // Without a consumer there are no worker requests to list (the gateway's are a row).
        let no_worker = self.mllp.as_ref().is_some_and(|m| !m.ingest);
        let partial = self.faults.as_ref().is_some_and(|f| f.requests_partial);
        let _ = writeln!(
            s,
            "{}requests per message:{}",
            if self.mllp.is_some() { "worker " } else { "" },
            if partial {
                " (partial: a killed worker writes no counts)"
            } else {
                ""
            }
        );
        for (k, v) in self.requests_per_message.iter().filter(|_| !no_worker) {
            let n = self
                .requests
                .get(k)
                .copied()
                .unwrap_or_else(|| self.requests.values().sum());
            let _ = writeln!(s, "  {k:<34} {v:>7.3}  ({n})");
        }
        let _ = writeln!(s, "targets (design brief §10):");
        for t in &self.targets {
            let verdict = match t.met {
                Some(true) => "met",
                Some(false) => "NOT MET",
                None => "n/a here",
            };
            let _ = writeln!(
                s,
                "  {:<44} target {:<14} measured {:<14} {verdict}",
                t.what, t.target, t.measured
            );
        }
        let _ = writeln!(
            s,
            "{}",
            if self.passed() {
                "PASS: every message accounted for"
            } else {
                "FAIL: messages lost or misrouted"
            }
        );
        s
    }

    /// The table's rows above the requests and the targets.
    fn rows(&self) -> Vec<(&'static str, String)> {
        let mut rows = self.outcome_rows();
        // An MLLP run without a consumer has no events, dead letters or worker: its outcome
        // is the queue check (the MLLP rows).
        if self.mllp.as_ref().is_some_and(|m| !m.ingest) {
            const CONSUMER: [&str; 6] = [
                "events observed",
                "dead-lettered",
                "unexpected outcomes",
                "latency p50/p90/p99/max",
                "worker CPU",
                "event ids per message",
            ];
            rows.retain(|(k, _)| !CONSUMER.contains(k));
        }
        rows
    }

    fn outcome_rows(&self) -> Vec<(&'static str, String)> {
        let mut rows: Vec<(&'static str, String)> = vec![
            ("scenario", self.scenario.clone()),
            (
                "backend / mode",
                format!("{} / {}", self.backend, self.mode),
            ),
            (
                "messages sent",
                format!(
                    "{} ({} well-formed, {} malformed, mean {} B)",
                    self.messages_sent,
                    self.well_formed_sent,
                    self.malformed_sent,
                    self.mean_body_bytes
                ),
            ),
            (
                "events observed",
                format!(
                    "{} ({} duplicates)",
                    self.events_observed, self.duplicate_events
                ),
            ),
            (
                "dead-lettered",
                format!("{} {:?}", self.dead_lettered, self.dead_letter_codes),
            ),
            ("unexpected outcomes", self.unexpected_outcomes.to_string()),
            ("LOST", self.lost.to_string()),
            ("left on source", self.left_on_source.to_string()),
            ("duration", format!("{:.2} s", self.duration_s)),
            ("throughput", format!("{:.0} msg/s", self.throughput_per_s)),
            (
                "latency p50/p90/p99/max",
                format!(
                    "{:.1} / {:.1} / {:.1} / {:.1} ms",
                    self.latency_ms.p50,
                    self.latency_ms.p90,
                    self.latency_ms.p99,
                    self.latency_ms.max
                ),
            ),
            (
                "worker CPU",
                format!(
                    "{:.1} µs/message ({:.0} ms total)",
                    self.worker_cpu_us_per_message, self.worker_cpu_ms_total
                ),
            ),
        ];
        if let Some(r) = &self.records {
            rows.push((
                "event records",
                format!(
                    "{} checked, {} missing, {} conflicting, {} for poison messages",
                    r.checked, r.missing, r.conflicting, r.for_poison
                ),
            ));
        }
        if let Some(l) = &self.log_scan {
            rows.push((
                "log scan",
                format!(
                    "{} files, {} lines, {} with patient data",
                    l.files, l.lines, l.lines_with_patient_data
                ),
            ));
        }
        rows.push((
            "event ids per message",
            format!("{} messages with more than one", self.event_ids_conflicting),
        ));
        if let Some(f) = &self.faults {
            rows.extend(f.rows(self.worker_drain_deadline_s));
        }
        if let Some(m) = &self.mllp {
            rows.extend(m.rows());
        }
        rows
    }
}

/// Per-second buckets of (seconds since start, latency ms).
pub fn timeline(points: &[(f64, f64)]) -> Vec<Second> {
    let last = points.iter().map(|p| p.0).fold(0.0_f64, f64::max);
    let mut buckets: Vec<Vec<f64>> = vec![Vec::new(); last.floor() as usize + 1];
    for &(t, lat) in points {
        buckets[t.max(0.0).floor() as usize].push(lat);
    }
    buckets
        .into_iter()
        .enumerate()
        .map(|(i, mut v)| {
            let p = Percentiles::of(&mut v);
            Second {
                t_s: i as u64,
                events: v.len() as u64,
                latency_p50_ms: p.p50,
                latency_p99_ms: p.p99,
                latency_max_ms: p.max,
            }
        })
        .collect()
}

/// The README's reliability table: one markdown row per report (as written to report.json).
pub fn reliability_table(reports: &[serde_json::Value]) -> String {
    let mut out = String::from(
        "| scenario | messages | faults injected | lost | records missing / duplicate | duplicate events (same id / new id) | recovery time p50 / max | result |\n\
         | --- | --- | --- | --- | --- | --- | --- | --- |\n",
    );
    for r in reports {
        let n = |v: &serde_json::Value| v.as_u64().unwrap_or(0);
        let f = &r["faults"];
        let mut faults = Vec::new();
        let count = |kind: &str| {
            f["disruptions"]
                .as_array()
                .map_or(0, |d| d.iter().filter(|x| x["kind"] == kind).count())
        };
        let of_gateway = if f["planned"]["target"] == FaultTarget::Gateway.as_str() {
            " of mllp-gateway"
        } else {
            ""
        };
        if count("kill") > 0 {
            faults.push(format!("{} × kill -9{of_gateway}", count("kill")));
        }
        if count("term") > 0 {
            let slowest = f["disruptions"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|d| d["exit_s"].as_f64())
                .fold(0.0, f64::max);
            faults.push(format!(
                "{} × SIGTERM (slowest exit {slowest:.2} s, deadline {} s)",
                count("term"),
                n(&r["worker_drain_deadline_s"])
            ));
        }
        if let Some(p) = f["proxy"].as_object() {
            let injected: Vec<String> = p["injected"]
                .as_object()
                .into_iter()
                .flatten()
                .map(|(k, v)| format!("{} {k}", n(v)))
                .collect();
            faults.push(format!(
                "proxy: {} of {} requests ({}); {} SDK retries, highest attempt {} of {}",
                p["injected"]
                    .as_object()
                    .map_or(0, |m| m.values().map(n).sum::<u64>()),
                n(&p["requests"]),
                injected.join(", "),
                n(&p["retries"]),
                n(&p["max_attempt"]),
                n(&p["max_attempts_allowed"])
            ));
        }
        let m = &r["mllp"];
        if m.is_object() {
            faults.push(format!(
                "{} MLLP connections, {} messages resent (no accept ACK)",
                n(&m["send"]["connections"]),
                n(&m["send"]["resent_messages"])
            ));
        }
        if !m.is_object() || n(&r["malformed_sent"]) > 0 {
            faults.push(format!("{} poison", n(&r["malformed_sent"])));
        }
        let rec = &r["records"];
        let recovery: Vec<f64> = f["disruptions"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|d| d["recovery_s"].as_f64())
            .collect();
        let recovery = if recovery.is_empty() {
            "—".to_string()
        } else {
            let p = Percentiles::of(&mut recovery.clone());
            format!("{:.2} s / {:.2} s", p.p50, p.max)
        };
        let passed = r["lost"] == 0
            && r["unexpected_outcomes"] == 0
            && (!m.is_object() || m["acked_but_lost"] == 0);
        let lost = if m.is_object() {
            format!(
                "{} ({} ACKed but lost)",
                n(&r["lost"]),
                n(&m["acked_but_lost"])
            )
        } else {
            n(&r["lost"]).to_string()
        };
        let _ = writeln!(
            out,
            "| {} ({}) | {} | {} | {} | {} / {} | {} / {} | {} | {} |",
            r["scenario"].as_str().unwrap_or("?"),
            r["backend"].as_str().unwrap_or("?"),
            n(&r["messages_sent"]),
            faults.join("; "),
            lost,
            n(&rec["missing"]),
            n(&rec["conflicting"]) + n(&rec["for_poison"]),
            n(&r["duplicate_events"]),
            n(&r["event_ids_conflicting"]),
            recovery,
            if passed { "pass" } else { "FAIL" }
        );
    }
    out
}

/// The MLLP load table: one markdown row per report of an `[mllp]` run.
pub fn mllp_table(reports: &[serde_json::Value]) -> String {
    let mut out = String::from(
        "| scenario | backend | connections | messages ACKed | messages/s | ACK latency p50 / p99 | SendMessageBatch per message (entries per batch) | SQS requests per message, all | gateway CPU per message | ACKed but not queued |\n\
         | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |\n",
    );
    for r in reports {
        let m = &r["mllp"];
        let f = |v: &serde_json::Value| v.as_f64().unwrap_or(0.0);
        let rpm = &m["gateway_requests_per_message"];
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {:.0} | {:.2} / {:.2} ms | {:.3} ({:.1}) | {:.3} | {:.0} µs | {} |",
            r["scenario"].as_str().unwrap_or("?"),
            if r["backend"] == "aws" {
                "moto"
            } else {
                r["backend"].as_str().unwrap_or("?")
            },
            m["send"]["connections"],
            m["send"]["acked"],
            f(&m["send"]["messages_per_s"]),
            f(&m["send"]["ack_latency_ms"]["p50"]),
            f(&m["send"]["ack_latency_ms"]["p99"]),
            f(&rpm["sqs.SendMessageBatch"]),
            f(&m["entries_per_batch"]),
            f(&rpm["sqs"]),
            f(&m["gateway_cpu_us_per_message"]),
            m["acked_but_lost"],
        );
    }
    out
}

#[cfg(test)]
mod tests;
