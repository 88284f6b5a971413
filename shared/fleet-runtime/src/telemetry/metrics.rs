//! The runtime's metrics on the `metrics` facade, recorded by one process-wide
//! `metrics-exporter-prometheus` recorder (installed once, on first use), and read back from its
//! rendering for the run report and EMF.
//!
//! One recorder per process because `fleet run` runs several workers in one process (and tests
//! start several runtimes in one): every series carries `worker` and `queue` labels instead. The
//! names and help texts live in [`Count`] and [`Hist`], so `/metrics`, EMF and the run report
//! cannot drift apart.

use std::collections::BTreeMap;
use std::sync::OnceLock;
use std::time::Duration;

use metrics::{Counter, Gauge, Histogram};
use metrics_exporter_prometheus::{
    Matcher, PrometheusBuilder, PrometheusHandle, PrometheusRecorder,
};

/// The labels of every per-run series.
pub const WORKER_LABEL: &str = "worker";
pub const QUEUE_LABEL: &str = "queue";

/// A runtime counter. Values only grow.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Count {
    Received,
    Succeeded,
    Retried,
    DeadLettered,
    Deleted,
    DeleteFailures,
    Panics,
    ReleasedOnShutdown,
    ReleasedFifoHold,
    Abandoned,
    HeartbeatExtensions,
    VisibilityFailures,
    ReceiveErrors,
    DeadLetterSendFailures,
    ClaimChecksResolved,
    LeasesLost,
}

impl Count {
    pub const ALL: [Self; 16] = [
        Self::Received,
        Self::Succeeded,
        Self::Retried,
        Self::DeadLettered,
        Self::Deleted,
        Self::DeleteFailures,
        Self::Panics,
        Self::ReleasedOnShutdown,
        Self::ReleasedFifoHold,
        Self::Abandoned,
        Self::HeartbeatExtensions,
        Self::VisibilityFailures,
        Self::ReceiveErrors,
        Self::DeadLetterSendFailures,
        Self::ClaimChecksResolved,
        Self::LeasesLost,
    ];

    /// Prometheus name, EMF name, help.
    pub const fn names(self) -> (&'static str, &'static str, &'static str) {
        match self {
            Self::Received => (
                "fleet_messages_received_total",
                "messages_received",
                "Messages received from the source queue.",
            ),
            Self::Succeeded => (
                "fleet_messages_succeeded_total",
                "messages_succeeded",
                "Messages whose handler succeeded.",
            ),
            Self::Retried => (
                "fleet_messages_retried_total",
                "messages_retried",
                "Retryable failures put back with a backoff.",
            ),
            Self::DeadLettered => (
                "fleet_messages_dead_lettered_total",
                "messages_dead_lettered",
                "Messages sent to the dead-letter queue with failure metadata.",
            ),
            Self::Deleted => (
                "fleet_messages_deleted_total",
                "messages_deleted",
                "Messages deleted from the source queue.",
            ),
            Self::DeleteFailures => (
                "fleet_delete_failures_total",
                "delete_failures",
                "Deletes that finally failed (stale receipts included).",
            ),
            Self::Panics => (
                "fleet_handler_panics_total",
                "handler_panics",
                "Handler panics (each one is a retryable failure).",
            ),
            Self::ReleasedOnShutdown => (
                "fleet_messages_released_on_shutdown_total",
                "messages_released_on_shutdown",
                "Received but unstarted messages released at shutdown.",
            ),
            Self::ReleasedFifoHold => (
                "fleet_messages_released_fifo_hold_total",
                "messages_released_fifo_hold",
                "FIFO messages released because an earlier one of their group failed.",
            ),
            Self::Abandoned => (
                "fleet_messages_abandoned_total",
                "messages_abandoned",
                "Handlers still running at the drain deadline.",
            ),
            Self::HeartbeatExtensions => (
                "fleet_heartbeat_extensions_total",
                "heartbeat_extensions",
                "Visibility extensions of long-running messages.",
            ),
            Self::VisibilityFailures => (
                "fleet_visibility_failures_total",
                "visibility_failures",
                "Visibility changes that failed.",
            ),
            Self::ReceiveErrors => (
                "fleet_receive_errors_total",
                "receive_errors",
                "ReceiveMessage calls that failed.",
            ),
            Self::DeadLetterSendFailures => (
                "fleet_dead_letter_send_failures_total",
                "dead_letter_send_failures",
                "Dead-letter sends that failed (message kept for retry).",
            ),
            Self::ClaimChecksResolved => (
                "fleet_claim_checks_resolved_total",
                "claim_checks_resolved",
                "Claim-check pointers resolved from the object store.",
            ),
            Self::LeasesLost => (
                "fleet_leases_lost_total",
                "leases_lost",
                "Held messages whose visibility lapsed or whose receipt stopped being valid (ReceiptHandleIsInvalid, MessageNotInflight, InvalidParameterValue).",
            ),
        }
    }

    pub const fn name(self) -> &'static str {
        self.names().0
    }
}

/// A runtime histogram of seconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Hist {
    HandlerSeconds,
    QueueLagSeconds,
}

impl Hist {
    pub const ALL: [Self; 2] = [Self::HandlerSeconds, Self::QueueLagSeconds];

    /// Prometheus name, EMF name (of the interval's mean), help.
    pub const fn names(self) -> (&'static str, &'static str, &'static str) {
        match self {
            Self::HandlerSeconds => (
                "fleet_handler_seconds",
                "handler_time_mean",
                "Handler run time.",
            ),
            Self::QueueLagSeconds => (
                "fleet_queue_lag_seconds",
                "queue_lag_mean",
                "Time from send to receive.",
            ),
        }
    }

    pub const fn name(self) -> &'static str {
        self.names().0
    }

    /// Bucket upper bounds, seconds.
    pub const fn buckets(self) -> &'static [f64] {
        match self {
            Self::HandlerSeconds => &[
                0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
                300.0, 900.0,
            ],
            Self::QueueLagSeconds => &[
                0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0, 3600.0, 21600.0,
                86400.0,
            ],
        }
    }
}

/// 1 while the run is live (polling not stalled), per worker and queue.
pub const UP: &str = "fleet_up";
/// Backend requests by API, process-wide (mirrored from `fleet_core::requests`).
pub const BACKEND_REQUESTS: &str = "fleet_backend_requests_total";

// ---------------------------------------------------------------------------------------------
// The process's recorder
// ---------------------------------------------------------------------------------------------

struct Installed {
    handle: PrometheusHandle,
    /// Set when another recorder was already the global one: ours then stays private and the
    /// runtime registers its series on it explicitly.
    private: Option<&'static PrometheusRecorder>,
}

static RECORDER: OnceLock<Installed> = OnceLock::new();

fn installed() -> &'static Installed {
    RECORDER.get_or_init(|| {
        let mut builder = PrometheusBuilder::new();
        for h in Hist::ALL {
            builder = builder
                .set_buckets_for_metric(Matcher::Full(h.name().into()), h.buckets())
                .expect("bucket lists are not empty");
        }
        let recorder = builder.build_recorder();
        let handle = recorder.handle();
        let private = match metrics::set_global_recorder(recorder) {
            Ok(()) => None,
            Err(taken) => {
                tracing::warn!(
                    "a metrics recorder was already installed; the runtime keeps its own for /metrics and EMF"
                );
                Some(&*Box::leak(Box::new(taken.0)))
            }
        };
        let installed = Installed { handle, private };
        installed.register(|| {
            for c in Count::ALL {
                let (name, _, help) = c.names();
                metrics::describe_counter!(name, help);
            }
            for h in Hist::ALL {
                let (name, _, help) = h.names();
                metrics::describe_histogram!(name, metrics::Unit::Seconds, help);
            }
            metrics::describe_gauge!(UP, "1 while the run is live (polling not stalled).");
            metrics::describe_counter!(
                BACKEND_REQUESTS,
                "Backend requests by API, process-wide."
            );
        });
        installed
    })
}

impl Installed {
    fn register<T>(&self, f: impl FnOnce() -> T) -> T {
        match self.private {
            Some(recorder) => metrics::with_local_recorder(recorder, f),
            None => f(),
        }
    }
}

/// The process's Prometheus text (format 0.0.4), every worker's series. Also drains recorded
/// histogram samples, so it doubles as upkeep.
pub fn render() -> String {
    installed().handle.render()
}

/// Bounds the recorder's memory when nothing scrapes `/metrics` (histogram samples are kept
/// until drained).
pub fn upkeep() {
    installed().handle.run_upkeep();
}

/// Runs `f` (which registers series with the `metrics` macros) against the process's recorder,
/// installing it first: for components outside the consumer runtime (the MLLP gateway) whose
/// series must land on the same `/metrics` page.
pub fn with_recorder<T>(f: impl FnOnce() -> T) -> T {
    installed().register(f)
}

/// Copies the process-wide backend request counts (`fleet_core::requests`) into
/// [`BACKEND_REQUESTS`].
pub fn mirror_backend_requests() {
    let recorder = installed();
    for (api, n) in fleet_core::requests::snapshot() {
        recorder.register(|| metrics::counter!(BACKEND_REQUESTS, "api" => api).absolute(n));
    }
}

// ---------------------------------------------------------------------------------------------
// One run's series
// ---------------------------------------------------------------------------------------------

/// The registered series of one worker and queue. Registering twice (a second run of the same
/// worker on the same queue in one process) returns the same series, so values are cumulative
/// per process, as Prometheus expects; the run report subtracts the values at the start.
#[derive(Debug)]
pub struct RunMetrics {
    /// By `Count as usize` (`Count::ALL` is in declaration order).
    counters: Vec<Counter>,
    /// By `Hist as usize`.
    histograms: Vec<Histogram>,
    up: Gauge,
}

impl RunMetrics {
    pub fn register(worker: &str, queue: &str) -> Self {
        let labels = [
            (WORKER_LABEL, worker.to_string()),
            (QUEUE_LABEL, queue.to_string()),
        ];
        installed().register(|| Self {
            counters: Count::ALL
                .iter()
                .map(|c| metrics::counter!(c.name(), &labels))
                .collect(),
            histograms: Hist::ALL
                .iter()
                .map(|h| metrics::histogram!(h.name(), &labels))
                .collect(),
            up: metrics::gauge!(UP, &labels),
        })
    }

    pub fn count(&self, c: Count, n: u64) {
        self.counters[c as usize].increment(n);
    }

    pub fn observe(&self, h: Hist, d: Duration) {
        self.histograms[h as usize].record(d.as_secs_f64());
    }

    pub fn set_up(&self, live: bool) {
        self.up.set(f64::from(u8::from(live)));
    }
}

// ---------------------------------------------------------------------------------------------
// Reading back
// ---------------------------------------------------------------------------------------------

/// One worker and queue's values as the recorder renders them: counters, and histogram `_sum`
/// and `_count`, by series name. Read back from the rendering rather than kept a second time, so
/// the run report and EMF say exactly what `/metrics` says.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Series(BTreeMap<String, f64>);

impl Series {
    /// The current values of `worker` on `queue`.
    pub fn read(worker: &str, queue: &str) -> Self {
        Self::parse(&render(), worker, queue)
    }

    /// The series of Prometheus `text` labelled exactly `worker` and `queue` (bucket lines, which
    /// also carry `le`, are left out).
    pub fn parse(text: &str, worker: &str, queue: &str) -> Self {
        let mut values = BTreeMap::new();
        for line in text.lines() {
            let Some((name, labels, value)) = parse_line(line) else {
                continue;
            };
            let ours = labels.len() == 2
                && labels.iter().all(|(k, v)| {
                    (k == WORKER_LABEL && v == worker) || (k == QUEUE_LABEL && v == queue)
                });
            if ours {
                values.insert(name.to_string(), value);
            }
        }
        Self(values)
    }

    pub fn get(&self, name: &str) -> f64 {
        self.0.get(name).copied().unwrap_or(0.0)
    }

    pub fn count(&self, c: Count) -> u64 {
        // Counters render as integers; f64 holds them exactly below 2^53.
        self.get(c.name()) as u64
    }

    /// Observations and their sum (seconds).
    pub fn hist(&self, h: Hist) -> (u64, f64) {
        let name = h.name();
        (
            self.get(&format!("{name}_count")) as u64,
            self.get(&format!("{name}_sum")),
        )
    }

    /// What was added since `earlier` (never negative).
    pub fn since(&self, earlier: &Series) -> Series {
        Series(
            self.0
                .iter()
                .map(|(k, v)| (k.clone(), (v - earlier.get(k)).max(0.0)))
                .collect(),
        )
    }
}

/// A sample line's labels, unescaped.
type Labels = Vec<(String, String)>;

/// `name{k="v",...} value` (labels optional), with the exposition format's escapes in values.
fn parse_line(line: &str) -> Option<(&str, Labels, f64)> {
    if line.starts_with('#') {
        return None;
    }
    let (name, mut rest) = line.split_at(line.find(['{', ' '])?);
    let mut labels = Vec::new();
    if let Some(mut s) = rest.strip_prefix('{') {
        loop {
            if let Some(after) = s.strip_prefix('}') {
                rest = after;
                break;
            }
            let eq = s.find('=')?;
            let key = s[..eq].to_string();
            s = s[eq + 1..].strip_prefix('"')?;
            let mut value = String::new();
            let mut chars = s.char_indices();
            let end = loop {
                match chars.next()? {
                    (_, '\\') => match chars.next()?.1 {
                        'n' => value.push('\n'),
                        c => value.push(c),
                    },
                    (i, '"') => break i,
                    (_, c) => value.push(c),
                }
            };
            labels.push((key, value));
            s = &s[end + 1..];
            s = s.strip_prefix(',').unwrap_or(s);
        }
    }
    let value = rest.split_whitespace().next()?.parse().ok()?;
    Some((name, labels, value))
}
