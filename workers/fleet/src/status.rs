//! `fleet status` and the data of the fleet's health page ([`crate::page`]): one model,
//! [`Status`], serialised identically by `fleet status --output json` and `GET /status.json`.
//!
//! For every queue the configured workers consume: its counts, the age of its oldest message,
//! when a consumer last polled it, and its dead-letter queue's depth, oldest age and messages
//! counted by error code and worker (read from the `fleet.failure` attribute, never a body),
//! each (code, worker) with the exact `dlq-replay` commands to inspect and replay it. For the
//! fleet: each worker's liveness and last poll, and the recent dead-letters per minute.
//!
//! The local backend answers all of it exactly, from one SQLite read per queue. On AWS,
//! `GetQueueAttributes` gives the counts and the DLQ depth; a DLQ's codes, oldest age and
//! dead-letter times come from the non-destructive scan `dlq-replay` uses
//! ([`dlq_replayer::inspect::read_all`]: receive with a short hold, then release every message,
//! nothing deleted), bounded in messages; a source queue's oldest age is CloudWatch's
//! `ApproximateAgeOfOldestMessage` where it has a datapoint (null otherwise). SQS has no "last
//! poll": null on AWS.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use dlq_replayer::message::Dead;
use fleet_core::Backend;
use fleet_local::LocalBackend;
use fleet_runtime::{BackendArgs, BackendKind};
use serde::Serialize;

use crate::FleetConfig;

pub use fleet_core::failure::REDRIVEN_WITHOUT_FAILURE;

/// Minutes of dead-letter history [`DeadLetterRate`] reports.
pub const RATE_WINDOW_MINUTES: usize = 60;

/// The whole fleet's status: what `fleet status --output json` prints and `/status.json` serves.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Status {
    /// `local` or `aws`.
    pub backend: &'static str,
    /// When this was read, ms since the epoch (every age is relative to it).
    pub generated_at_unix_ms: i64,
    pub queues: Vec<QueueReport>,
    pub workers: Vec<WorkerReport>,
    pub dead_letters: DeadLetterRate,
}

/// One consumed queue.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct QueueReport {
    pub worker: &'static str,
    pub queue: String,
    pub visible: u64,
    pub in_flight: u64,
    pub delayed: u64,
    /// Seconds since the oldest message on the queue was sent (local: exact; AWS: CloudWatch's
    /// `ApproximateAgeOfOldestMessage` when it has a datapoint; otherwise null).
    pub oldest_message_age_secs: Option<f64>,
    /// Seconds since a consumer last polled the queue (local backend only).
    pub last_poll_age_secs: Option<f64>,
    pub dlq: Option<DlqReport>,
}

/// A consumed queue's dead-letter queue.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct DlqReport {
    pub queue: String,
    pub depth: u64,
    /// Seconds since the oldest message on the DLQ was sent to it (local: exact; AWS: from the
    /// scan, else CloudWatch; null when neither knows or the DLQ is empty).
    pub oldest_message_age_secs: Option<f64>,
    /// Messages by error code (null when the DLQ could not be read).
    pub codes: Option<BTreeMap<String, u64>>,
    /// Messages by (error code, worker), largest first, each with its `dlq-replay` commands
    /// (null when the DLQ could not be read).
    pub groups: Option<Vec<CodeGroup>>,
    /// Whether every message was read (false: an AWS scan stopped at its bound, or a FIFO
    /// DLQ, whose held groups hide their later messages; the counts are then lower bounds).
    pub complete: bool,
}

/// A DLQ's messages with one error code from one worker.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct CodeGroup {
    pub code: String,
    /// The failure attribute's worker (empty for [`REDRIVEN_WITHOUT_FAILURE`]).
    pub worker: String,
    pub count: u64,
    /// `dlq-replay … show DLQ --code CODE`: the messages' metadata, no bodies.
    pub inspect: String,
    /// `dlq-replay … replay DLQ --code CODE`: back to their source queue (asks for confirmation,
    /// naming the count).
    pub replay: String,
}

/// Whether a worker is polling.
#[derive(Debug, Clone, Copy, Serialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Liveness {
    Live,
    Stalled,
    Unknown,
}

impl Liveness {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Live => "live",
            Self::Stalled => "stalled",
            Self::Unknown => "unknown",
        }
    }
}

/// One configured worker.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct WorkerReport {
    pub worker: &'static str,
    pub live: Liveness,
    /// What `live` was judged from: `process` (the worker's own liveness, inside `fleet run`),
    /// `last_poll` (the local backend's last poll against the worker's stall threshold), or null.
    pub live_source: Option<&'static str>,
    /// Seconds since the worker last polled any of its queues (local backend only).
    pub last_poll_age_secs: Option<f64>,
}

/// Dead-letters per minute, from the failure time of the messages on the DLQs (messages
/// already replayed or purged are not counted).
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct DeadLetterRate {
    /// [`RATE_WINDOW_MINUTES`] counts, oldest minute first; the last is the minute ending now.
    pub per_minute: Vec<u64>,
    pub last_minute: u64,
    pub last_15_minutes: u64,
    pub last_hour: u64,
    /// False when some DLQ was not read completely (the counts are lower bounds).
    pub complete: bool,
}

/// What the status needs of one dead-lettered message: never its body or other attributes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeadLite {
    pub code: String,
    pub worker: String,
    /// When it last failed (the failure attribute, else its DLQ send time), ms.
    pub failed_at_ms: i64,
    /// When it was sent to the DLQ, ms.
    pub sent_ms: i64,
}

impl DeadLite {
    /// As `dlq-replay` reads it (a lenient failure attribute: a code this build does not know
    /// is still its own group, and `--code` selects it).
    pub fn of(d: &Dead) -> Self {
        Self {
            code: d.code().to_string(),
            worker: d.worker().to_string(),
            failed_at_ms: d.failed_at_ms(),
            sent_ms: d.msg.sent_timestamp_ms,
        }
    }

    /// From a message's attributes and send time, read exactly as [`Dead`] reads them (the
    /// local backend's snapshot is not a received message).
    pub fn from_attributes(attributes: &fleet_core::Attributes, sent_ms: i64) -> Self {
        let failure = attributes
            .get(fleet_core::failure::FAILURE_ATTRIBUTE)
            .and_then(|v| v.as_str())
            .and_then(|s| serde_json::from_str::<dlq_replayer::message::Failure>(s).ok())
            .filter(|f| !f.code.is_empty());
        match failure {
            Some(f) => Self {
                failed_at_ms: dlq_replayer::message::parse_ms(&f.last_failure).unwrap_or(sent_ms),
                code: f.code,
                worker: f.worker,
                sent_ms,
            },
            None => Self {
                code: REDRIVEN_WITHOUT_FAILURE.to_string(),
                worker: String::new(),
                failed_at_ms: sent_ms,
                sent_ms,
            },
        }
    }
}

/// The queues the configuration's workers consume, with the worker that consumes each.
pub fn consumed_queues(config: &FleetConfig) -> Vec<(&'static str, String)> {
    let mut out = Vec::new();
    if let Some(queue) = config.hl7.as_ref().and_then(|w| w.queue.clone()) {
        out.push((hl7_ingest::WORKER, queue));
    }
    if let Some(docs) = &config.docs {
        for queue in [&docs.worker.queue, &docs.worker.completion_queue]
            .into_iter()
            .flatten()
        {
            out.push((doc_pipeline::WORKER, queue.clone()));
        }
    }
    if let Some(queue) = config.notify.as_ref().and_then(|w| w.queue.clone()) {
        out.push((notify::WORKER, queue));
    }
    out
}

pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

fn secs_since(now_ms: i64, then_ms: i64) -> f64 {
    // Milliseconds as f64 are exact far beyond any queue's age.
    (now_ms.saturating_sub(then_ms).max(0) as f64) / 1000.0
}

// ---------------------------------------------------------------------------------------------
// dlq-replay commands
// ---------------------------------------------------------------------------------------------

/// `s` as one POSIX shell word: unchanged when it is made of safe characters only, otherwise
/// in single quotes (a quote inside as `'\''`).
pub fn shell_word(s: &str) -> String {
    let safe = !s.is_empty()
        && s.chars().all(|c| {
            c.is_ascii_alphanumeric()
                || matches!(c, '_' | '-' | '.' | '/' | ':' | '=' | '@' | '+' | ',' | '%')
        });
    if safe {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', r"'\''"))
    }
}

/// The `dlq-replay` options that reach the same backend as the fleet.
pub fn dlq_replay_backend_args(backend: &BackendArgs) -> Vec<String> {
    match backend.kind() {
        BackendKind::Aws => vec!["--backend".into(), "aws".into()],
        BackendKind::Local => {
            let abs = |p: &Path| {
                std::path::absolute(p)
                    .unwrap_or_else(|_| p.to_path_buf())
                    .display()
                    .to_string()
            };
            let mut args = vec![
                "--backend".into(),
                "local".into(),
                "--local-db".into(),
                abs(&backend.local_db),
                "--local-objects".into(),
                abs(&backend.local_objects),
            ];
            if backend.allow_shared_db {
                args.push("--allow-shared-db".into());
            }
            args
        }
    }
}

/// The argument vectors (program name first) of the inspect and replay commands for `code` on
/// `dlq`. A local replay carries `--allow-unencrypted` (the SQLite file is never encrypted, the
/// workers are told to accept that, and dlq-replay refuses unencrypted destinations otherwise).
pub fn dlq_replay_argv(backend: &BackendArgs, dlq: &str, code: &str) -> (Vec<String>, Vec<String>) {
    let base = dlq_replay_backend_args(backend);
    let mut inspect = vec!["dlq-replay".to_string()];
    inspect.extend(base.iter().cloned());
    inspect.extend(["show".into(), dlq.into(), "--code".into(), code.into()]);
    let mut replay = vec!["dlq-replay".to_string()];
    replay.extend(base);
    if backend.kind() == BackendKind::Local {
        replay.push("--allow-unencrypted".into());
    }
    replay.extend(["replay".into(), dlq.into(), "--code".into(), code.into()]);
    (inspect, replay)
}

fn command_line(argv: &[String]) -> String {
    argv.iter()
        .map(|a| shell_word(a))
        .collect::<Vec<_>>()
        .join(" ")
}

// ---------------------------------------------------------------------------------------------
// Building the model
// ---------------------------------------------------------------------------------------------

/// A DLQ's report from its messages.
fn dlq_report(
    backend: &BackendArgs,
    dlq: &str,
    depth: u64,
    dead: &[DeadLite],
    complete: bool,
    now_ms: i64,
) -> DlqReport {
    let mut codes = BTreeMap::new();
    let mut groups: BTreeMap<(String, String), u64> = BTreeMap::new();
    for d in dead {
        *codes.entry(d.code.clone()).or_insert(0) += 1;
        *groups
            .entry((d.code.clone(), d.worker.clone()))
            .or_insert(0) += 1;
    }
    let mut groups: Vec<CodeGroup> = groups
        .into_iter()
        .map(|((code, worker), count)| {
            let (inspect, replay) = dlq_replay_argv(backend, dlq, &code);
            CodeGroup {
                inspect: command_line(&inspect),
                replay: command_line(&replay),
                code,
                worker,
                count,
            }
        })
        .collect();
    groups.sort_by(|a, b| {
        b.count
            .cmp(&a.count)
            .then_with(|| (&a.code, &a.worker).cmp(&(&b.code, &b.worker)))
    });
    DlqReport {
        queue: dlq.to_string(),
        depth,
        oldest_message_age_secs: dead
            .iter()
            .map(|d| d.sent_ms)
            .min()
            .map(|o| secs_since(now_ms, o)),
        codes: Some(codes),
        groups: Some(groups),
        complete,
    }
}

/// Dead-letters per minute over the last hour, from the DLQs' messages.
pub fn dead_letter_rate<'a>(
    dead: impl IntoIterator<Item = &'a DeadLite>,
    complete: bool,
    now_ms: i64,
) -> DeadLetterRate {
    let mut per_minute = vec![0u64; RATE_WINDOW_MINUTES];
    for d in dead {
        let ago = now_ms.saturating_sub(d.failed_at_ms);
        if !(0..60_000 * RATE_WINDOW_MINUTES as i64).contains(&ago) {
            continue;
        }
        let minutes_ago = usize::try_from(ago / 60_000).unwrap_or(usize::MAX);
        per_minute[RATE_WINDOW_MINUTES - 1 - minutes_ago] += 1;
    }
    let last = |n: usize| per_minute[RATE_WINDOW_MINUTES - n..].iter().sum();
    DeadLetterRate {
        last_minute: last(1),
        last_15_minutes: last(15),
        last_hour: last(RATE_WINDOW_MINUTES),
        per_minute,
        complete,
    }
}

/// A worker's stall threshold as its runtime computes it: 3 × the long-poll wait + 30 s.
fn stall_threshold(config: &FleetConfig, worker: &str) -> Duration {
    let wait = if worker == hl7_ingest::WORKER {
        config.hl7.as_ref().and_then(|c| c.runtime.wait_time_secs)
    } else if worker == doc_pipeline::WORKER {
        config
            .docs
            .as_ref()
            .and_then(|c| c.worker.runtime.wait_time_secs)
    } else if worker == notify::WORKER {
        config
            .notify
            .as_ref()
            .and_then(|c| c.runtime.wait_time_secs)
    } else {
        None
    };
    Duration::from_secs(3 * wait.unwrap_or(20).min(20) + 30)
}

/// Each configured worker's last poll (the most recent over its queues) and the liveness that
/// follows from it against the worker's stall threshold.
fn workers_from_polls(config: &FleetConfig, queues: &[QueueReport]) -> Vec<WorkerReport> {
    config
        .workers()
        .into_iter()
        .map(|worker| {
            let last_poll = queues
                .iter()
                .filter(|q| q.worker == worker)
                .filter_map(|q| q.last_poll_age_secs)
                .reduce(f64::min);
            let (live, live_source) = match last_poll {
                Some(age) if age <= stall_threshold(config, worker).as_secs_f64() => {
                    (Liveness::Live, Some("last_poll"))
                }
                Some(_) => (Liveness::Stalled, Some("last_poll")),
                None => (Liveness::Unknown, None),
            };
            WorkerReport {
                worker,
                live,
                live_source,
                last_poll_age_secs: last_poll,
            }
        })
        .collect()
}

/// A local DLQ's messages, without their bodies.
fn local_dead(local: &LocalBackend, dlq: &str) -> anyhow::Result<Vec<DeadLite>> {
    let messages = local
        .queue_messages_snapshot(dlq)
        .with_context(|| format!("dead-letter queue {dlq}"))?;
    Ok(messages
        .into_iter()
        .map(|m| DeadLite::from_attributes(&m.attributes, m.sent_timestamp_ms))
        .collect())
}

/// The fleet's status on the local backend (exact).
pub fn local_status(config: &FleetConfig, local: &LocalBackend) -> anyhow::Result<Status> {
    let now = now_ms();
    let mut all_dead: Vec<DeadLite> = Vec::new();
    let mut seen_dlqs: Vec<String> = Vec::new();
    let mut queues = Vec::new();
    for (worker, queue) in consumed_queues(config) {
        let s = local
            .queue_status(&queue)
            .with_context(|| format!("queue {queue}"))?;
        let dlq = match s.dlq.as_deref() {
            Some(d) => {
                let dead = local_dead(local, d)?;
                let depth = u64::try_from(dead.len()).unwrap_or(u64::MAX);
                let report = dlq_report(&config.backend, d, depth, &dead, true, now);
                if !seen_dlqs.iter().any(|s| s == d) {
                    seen_dlqs.push(d.to_string());
                    all_dead.extend(dead);
                }
                Some(report)
            }
            None => None,
        };
        queues.push(QueueReport {
            worker,
            queue,
            visible: s.visible,
            in_flight: s.in_flight,
            delayed: s.delayed,
            oldest_message_age_secs: s.oldest_message_age.map(|d| d.as_secs_f64()),
            last_poll_age_secs: s.since_last_poll.map(|d| d.as_secs_f64()),
            dlq,
        });
    }
    Ok(Status {
        backend: "local",
        generated_at_unix_ms: now,
        workers: workers_from_polls(config, &queues),
        dead_letters: dead_letter_rate(&all_dead, true, now),
        queues,
    })
}

// ---------------------------------------------------------------------------------------------
// AWS
// ---------------------------------------------------------------------------------------------

/// How the AWS status reads DLQs.
#[derive(Debug, Clone)]
pub struct ScanOptions {
    /// How long a scanned message stays invisible before the scan releases it (it releases
    /// every message at its end; the hold only matters if the process dies mid-scan).
    pub hold: Duration,
    /// Most messages read from one DLQ.
    pub limit: usize,
    /// A DLQ whose depth has not changed is scanned again only after this long (the page
    /// samples every few seconds; a scan hides the messages it holds from other readers for
    /// its duration).
    pub rescan_after: Duration,
}

impl Default for ScanOptions {
    fn default() -> Self {
        Self {
            hold: Duration::from_secs(30),
            limit: 1000,
            rescan_after: Duration::from_secs(300),
        }
    }
}

struct CachedScan {
    depth: u64,
    at: Instant,
    dead: Vec<DeadLite>,
    complete: bool,
}

/// The last scan of each DLQ, so the page's sampler does not receive from DLQs every tick.
#[derive(Default)]
pub struct ScanCache(HashMap<String, CachedScan>);

/// The AWS status's inputs: the backend's ports, the CloudWatch reader (None: no ages), the
/// scan bounds and the cache of scans.
pub struct AwsSource {
    pub backend: Arc<dyn Backend>,
    pub cloudwatch: Option<fleet_aws::inspect::Inspector>,
    pub scan: ScanOptions,
    pub cache: ScanCache,
}

async fn cloudwatch_age(source: &AwsSource, name: &str, now: i64) -> Option<f64> {
    let inspector = source.cloudwatch.as_ref()?;
    match inspector.oldest_message_age_secs(name, now / 1000).await {
        Ok(age) => age,
        Err(e) => {
            tracing::warn!(queue = name, error = %e, "CloudWatch ApproximateAgeOfOldestMessage unavailable");
            None
        }
    }
}

/// The last part of a queue URL or ARN: its name.
fn queue_name(id: &str) -> &str {
    id.rsplit([':', '/']).next().unwrap_or(id)
}

/// The fleet's status through the backend's ports (AWS): counts from `GetQueueAttributes`,
/// DLQ codes from dlq-replay's non-destructive scan, ages from the scan and CloudWatch.
pub async fn aws_status(config: &FleetConfig, source: &mut AwsSource) -> anyhow::Result<Status> {
    let now = now_ms();
    let mut queues = Vec::new();
    let mut all_dead: Vec<DeadLite> = Vec::new();
    let mut rate_complete = true;
    let mut seen_dlqs: Vec<String> = Vec::new();
    for (worker, queue) in consumed_queues(config) {
        let q = source
            .backend
            .queue(&queue)
            .await
            .with_context(|| format!("queue {queue}"))?;
        let a = q
            .attributes()
            .await
            .with_context(|| format!("queue {queue}"))?;
        let oldest = cloudwatch_age(source, queue_name(&queue), now).await;
        let dlq = match a.redrive_policy {
            Some(policy) => {
                let name = queue_name(&policy.dead_letter_target).to_string();
                let dq = source
                    .backend
                    .queue(&name)
                    .await
                    .with_context(|| format!("dead-letter queue {name}"))?;
                let d = dq
                    .attributes()
                    .await
                    .with_context(|| format!("dead-letter queue {name}"))?;
                let depth = d.approximate_visible + d.approximate_in_flight + d.approximate_delayed;
                let fresh =
                    source.cache.0.get(&name).is_some_and(|c| {
                        c.depth == depth && c.at.elapsed() < source.scan.rescan_after
                    });
                if !fresh {
                    match dlq_replayer::inspect::read_all(
                        dq.clone(),
                        d.fifo,
                        source.scan.hold,
                        source.scan.limit,
                    )
                    .await
                    {
                        Ok((messages, complete)) => {
                            // Bodies are dropped here: only code, worker and times are kept.
                            let dead = messages.iter().map(DeadLite::of).collect();
                            source.cache.0.insert(
                                name.clone(),
                                CachedScan {
                                    depth,
                                    at: Instant::now(),
                                    dead,
                                    complete,
                                },
                            );
                        }
                        Err(e) => {
                            tracing::warn!(queue = %name, error = %e, "dead-letter queue scan failed");
                            source.cache.0.remove(&name);
                        }
                    }
                }
                let report = match source.cache.0.get(&name) {
                    Some(scan) => {
                        let mut r = dlq_report(
                            &config.backend,
                            &name,
                            depth,
                            &scan.dead,
                            scan.complete,
                            now,
                        );
                        if r.oldest_message_age_secs.is_none() && depth > 0 {
                            r.oldest_message_age_secs = cloudwatch_age(source, &name, now).await;
                        }
                        if !seen_dlqs.contains(&name) {
                            seen_dlqs.push(name.clone());
                            all_dead.extend(scan.dead.iter().cloned());
                            rate_complete &= scan.complete;
                        }
                        r
                    }
                    None => {
                        rate_complete = false;
                        DlqReport {
                            queue: name.clone(),
                            depth,
                            oldest_message_age_secs: cloudwatch_age(source, &name, now).await,
                            codes: None,
                            groups: None,
                            complete: false,
                        }
                    }
                };
                Some(report)
            }
            None => None,
        };
        queues.push(QueueReport {
            worker,
            queue,
            visible: a.approximate_visible,
            in_flight: a.approximate_in_flight,
            delayed: a.approximate_delayed,
            oldest_message_age_secs: oldest,
            last_poll_age_secs: None,
            dlq,
        });
    }
    Ok(Status {
        backend: "aws",
        generated_at_unix_ms: now,
        workers: workers_from_polls(config, &queues),
        dead_letters: dead_letter_rate(&all_dead, rate_complete, now),
        queues,
    })
}

/// Where a status is read from: the local backend's admin API, or AWS through the ports, the
/// scan and CloudWatch.
pub enum StatusSource {
    Local(LocalBackend),
    Aws(AwsSource),
}

impl StatusSource {
    /// Open the configuration's backend for reading status (no queue is created or changed).
    pub async fn open(config: &FleetConfig) -> anyhow::Result<Self> {
        Ok(match config.backend.kind() {
            BackendKind::Local => Self::Local(fleet_backends::open_local(&config.backend)?),
            BackendKind::Aws => Self::Aws(AwsSource {
                backend: fleet_backends::open(&config.backend).await?,
                cloudwatch: Some(fleet_aws::AwsBackend::from_env().await.inspector()),
                scan: ScanOptions::default(),
                cache: ScanCache::default(),
            }),
        })
    }

    /// The fleet's status now.
    pub async fn collect(&mut self, config: &FleetConfig) -> anyhow::Result<Status> {
        match self {
            Self::Local(local) => {
                let (config, local) = (config.clone(), local.clone());
                tokio::task::spawn_blocking(move || local_status(&config, &local))
                    .await
                    .context("the status reader panicked")?
            }
            Self::Aws(source) => aws_status(config, source).await,
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Liveness inside `fleet run`
// ---------------------------------------------------------------------------------------------

/// Each worker's liveness as the runtime itself reports it in this process: the `fleet_up`
/// gauges of the Prometheus text, by `worker` label (true only if every series is 1).
pub fn process_liveness(prometheus: &str) -> BTreeMap<String, bool> {
    let mut out: BTreeMap<String, bool> = BTreeMap::new();
    for line in prometheus.lines() {
        let Some(rest) = line.strip_prefix(fleet_runtime::telemetry::metrics::UP) else {
            continue;
        };
        let Some(rest) = rest.strip_prefix('{') else {
            continue;
        };
        let Some((labels, value)) = rest.rsplit_once('}') else {
            continue;
        };
        let Some(worker) = labels.split(',').find_map(|l| {
            l.strip_prefix("worker=\"")
                .and_then(|v| v.strip_suffix('"'))
        }) else {
            continue;
        };
        let up = value.trim().parse::<f64>().is_ok_and(|v| v >= 1.0);
        out.entry(worker.to_string())
            .and_modify(|all| *all &= up)
            .or_insert(up);
    }
    out
}

/// Overrides each worker's liveness with the process's own, where the process runs it.
pub fn apply_process_liveness(status: &mut Status, live: &BTreeMap<String, bool>) {
    for w in &mut status.workers {
        if let Some(&up) = live.get(w.worker) {
            w.live = if up {
                Liveness::Live
            } else {
                Liveness::Stalled
            };
            w.live_source = Some("process");
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Text
// ---------------------------------------------------------------------------------------------

/// The human table.
pub fn render_text(status: &Status, out: &mut impl std::io::Write) -> std::io::Result<()> {
    let secs = |v: Option<f64>| v.map_or_else(|| "-".to_string(), |s| format!("{s:.1}s"));
    for r in &status.queues {
        writeln!(
            out,
            "{} {}: {} visible, {} in flight, {} delayed; oldest {}; last poll {} ago",
            r.worker,
            r.queue,
            r.visible,
            r.in_flight,
            r.delayed,
            secs(r.oldest_message_age_secs),
            secs(r.last_poll_age_secs)
        )?;
        match &r.dlq {
            Some(d) => {
                let codes = d.codes.as_ref().map_or_else(
                    || "codes: unreadable, see dlq-replay summary".to_string(),
                    |c| {
                        c.iter()
                            .map(|(code, n)| format!("{code} {n}"))
                            .collect::<Vec<_>>()
                            .join(", ")
                    },
                );
                let codes = if codes.is_empty() {
                    String::new()
                } else {
                    format!("; {codes}")
                };
                let partial = if d.complete { "" } else { " (partial read)" };
                writeln!(
                    out,
                    "  dlq {}: {} messages, oldest {}{codes}{partial}",
                    d.queue,
                    d.depth,
                    secs(d.oldest_message_age_secs)
                )?;
                for g in d.groups.iter().flatten() {
                    writeln!(out, "    {} ({}): {}", g.code, g.worker, g.count)?;
                    writeln!(out, "      inspect: {}", g.inspect)?;
                    writeln!(out, "      replay:  {}", g.replay)?;
                }
            }
            None => writeln!(out, "  no dead-letter queue (no redrive policy)")?,
        }
    }
    for w in &status.workers {
        writeln!(
            out,
            "worker {}: {}; last poll {} ago",
            w.worker,
            w.live.as_str(),
            secs(w.last_poll_age_secs)
        )?;
    }
    let r = &status.dead_letters;
    writeln!(
        out,
        "dead-lettered: {} in the last minute, {} in the last 15 minutes, {} in the last hour{}",
        r.last_minute,
        r.last_15_minutes,
        r.last_hour,
        if r.complete { "" } else { " (partial read)" }
    )?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shell_words_quote_only_what_needs_it() {
        assert_eq!(shell_word("hl7-inbound-dlq"), "hl7-inbound-dlq");
        assert_eq!(
            shell_word("/tmp/a b/fleet.sqlite"),
            "'/tmp/a b/fleet.sqlite'"
        );
        assert_eq!(shell_word("it's"), r"'it'\''s'");
        assert_eq!(shell_word("$(rm -rf /)"), "'$(rm -rf /)'");
        assert_eq!(shell_word(""), "''");
    }

    #[test]
    fn the_rate_counts_failures_by_minute_within_the_hour() {
        let now = 10_000_000_000;
        let at = |ms_ago: i64| DeadLite {
            code: "C".into(),
            worker: "w".into(),
            failed_at_ms: now - ms_ago,
            sent_ms: now - ms_ago,
        };
        let dead = [
            at(0),
            at(59_999),
            at(60_000),
            at(14 * 60_000 + 1),
            at(3_600_000),
            at(-5),
        ];
        let r = dead_letter_rate(&dead, true, now);
        assert_eq!(r.per_minute.len(), RATE_WINDOW_MINUTES);
        assert_eq!(r.per_minute[59], 2);
        assert_eq!(r.per_minute[58], 1);
        assert_eq!(r.per_minute[45], 1);
        assert_eq!((r.last_minute, r.last_15_minutes, r.last_hour), (2, 4, 4));
    }

    #[test]
    fn process_liveness_reads_every_fleet_up_series_of_a_worker() {
        let text = "# TYPE fleet_up gauge\n\
            fleet_up{worker=\"hl7-ingest\",queue=\"hl7-inbound\"} 1\n\
            fleet_up{worker=\"doc-pipeline\",queue=\"doc-uploads\"} 1\n\
            fleet_up{worker=\"doc-pipeline\",queue=\"doc-completions\"} 0\n\
            fleet_upkeep{worker=\"notify\"} 1\n";
        let live = process_liveness(text);
        assert_eq!(
            live,
            BTreeMap::from([("doc-pipeline".into(), false), ("hl7-ingest".into(), true)])
        );
    }

    /// The words of a command line [`shell_word`] wrote (plain words and single quotes).
    fn split_shell(line: &str) -> Vec<String> {
        let mut words = Vec::new();
        let mut word = String::new();
        let mut in_word = false;
        let mut chars = line.chars();
        while let Some(c) = chars.next() {
            match c {
                '\'' => {
                    in_word = true;
                    for q in chars.by_ref() {
                        if q == '\'' {
                            break;
                        }
                        word.push(q);
                    }
                }
                '\\' => {
                    in_word = true;
                    word.extend(chars.next());
                }
                ' ' => {
                    if in_word {
                        words.push(std::mem::take(&mut word));
                        in_word = false;
                    }
                }
                c => {
                    in_word = true;
                    word.push(c);
                }
            }
        }
        if in_word {
            words.push(word);
        }
        words
    }

    /// The page's commands are real `dlq-replay` command lines: dlq-replay's own parser takes
    /// them (after the shell's unquoting) as `show`/`replay` of that DLQ filtered to that code,
    /// on the fleet's backend.
    #[test]
    fn the_dlq_replay_commands_parse_with_dlq_replays_own_cli() {
        use clap::Parser;
        use dlq_replayer::cli::{Cli, Command};
        let local = BackendArgs::local_in(Path::new("/srv/my fleet"));
        let mut aws = BackendArgs::local_in(Path::new("/x"));
        aws.backend = Some(BackendKind::Aws);
        for (backend, dlq, code) in [
            (&local, "hl7-inbound-dlq", "HL7_NOT_ADT"),
            (&local, "odd 'dlq' $(x)", "REDRIVEN_WITHOUT_FAILURE"),
            (
                &aws,
                "https://sqs.eu-west-1.amazonaws.com/123/prod-dlq",
                "DOC_TOO_LARGE",
            ),
        ] {
            let dead = [DeadLite {
                code: code.into(),
                worker: "w".into(),
                failed_at_ms: 0,
                sent_ms: 0,
            }];
            let report = dlq_report(backend, dlq, 1, &dead, true, 0);
            let group = &report.groups.as_ref().unwrap()[0];
            let (inspect_argv, replay_argv) = dlq_replay_argv(backend, dlq, code);
            assert_eq!(
                split_shell(&group.inspect),
                inspect_argv,
                "{}",
                group.inspect
            );
            assert_eq!(split_shell(&group.replay), replay_argv, "{}", group.replay);

            let inspect = Cli::try_parse_from(split_shell(&group.inspect)).unwrap();
            let Command::Show {
                queue,
                filter,
                show_body,
            } = inspect.command
            else {
                panic!("not show: {}", group.inspect)
            };
            assert_eq!(
                (queue.as_str(), filter.codes, show_body),
                (dlq, vec![code.to_string()], false)
            );
            assert_eq!(inspect.backend.kind(), backend.kind());

            let replay = Cli::try_parse_from(split_shell(&group.replay)).unwrap();
            let Command::Replay {
                queue,
                filter,
                to,
                change,
            } = replay.command
            else {
                panic!("not replay: {}", group.replay)
            };
            assert_eq!(
                (queue.as_str(), filter.codes),
                (dlq, vec![code.to_string()])
            );
            assert!(to.is_none() && !change.dry_run && !change.yes);
            assert_eq!(replay.backend.kind(), backend.kind());
            if backend.kind() == BackendKind::Local {
                assert_eq!(
                    replay.backend.local_db,
                    Path::new("/srv/my fleet/fleet.sqlite")
                );
                assert_eq!(
                    replay.backend.local_objects,
                    Path::new("/srv/my fleet/objects")
                );
                assert!(replay.allow_unencrypted);
            }
        }
    }
}
