//! All of the runtime's telemetry in one place: typed events that write the log line and update
//! the metric together, the metric registry (counters and histograms with bounded labels), the
//! Prometheus text and CloudWatch EMF renderings, and the health state behind `/health/live`.
//!
//! Log lines carry identifiers (message id, error codes, queue, worker) and never a body or an
//! attribute value: events take exactly the fields that may be logged.

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::time::Duration;

use fleet_core::{ErrorCode, PortError};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

// ---------------------------------------------------------------------------------------------
// Metrics
// ---------------------------------------------------------------------------------------------

/// A fixed-bucket histogram of seconds.
#[derive(Debug)]
pub struct Histogram {
    bounds: &'static [f64],
    buckets: Vec<AtomicU64>,
    count: AtomicU64,
    sum_micros: AtomicU64,
}

const HANDLER_BOUNDS: &[f64] = &[
    0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0,
];
const LAG_BOUNDS: &[f64] = &[
    0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0, 3600.0, 21600.0, 86400.0,
];

impl Histogram {
    fn new(bounds: &'static [f64]) -> Self {
        Self {
            bounds,
            buckets: bounds.iter().map(|_| AtomicU64::new(0)).collect(),
            count: AtomicU64::new(0),
            sum_micros: AtomicU64::new(0),
        }
    }

    pub fn observe(&self, d: Duration) {
        let secs = d.as_secs_f64();
        if let Some(i) = self.bounds.iter().position(|b| secs <= *b) {
            self.buckets[i].fetch_add(1, Relaxed);
        }
        self.count.fetch_add(1, Relaxed);
        self.sum_micros
            .fetch_add(u64::try_from(d.as_micros()).unwrap_or(u64::MAX), Relaxed);
    }

    pub fn count(&self) -> u64 {
        self.count.load(Relaxed)
    }

    fn sum_micros(&self) -> u64 {
        self.sum_micros.load(Relaxed)
    }
}

/// The runtime's counters. Values only grow.
#[derive(Debug, Default)]
pub struct Counters {
    pub received: AtomicU64,
    pub succeeded: AtomicU64,
    pub retried: AtomicU64,
    pub dead_lettered: AtomicU64,
    pub deleted: AtomicU64,
    pub delete_failures: AtomicU64,
    pub panics: AtomicU64,
    pub released_on_shutdown: AtomicU64,
    pub released_fifo_hold: AtomicU64,
    pub abandoned: AtomicU64,
    pub heartbeat_extensions: AtomicU64,
    pub visibility_failures: AtomicU64,
    pub receive_errors: AtomicU64,
    pub dead_letter_send_failures: AtomicU64,
    pub claim_checks_resolved: AtomicU64,
}

/// Counter name (Prometheus, without prefix and suffix), help, and accessor. One table so the
/// renderings cannot drift apart.
type CounterDef = (&'static str, &'static str, fn(&Counters) -> &AtomicU64);
const COUNTERS: &[CounterDef] = &[
    (
        "messages_received",
        "Messages received from the source queue.",
        |c| &c.received,
    ),
    (
        "messages_succeeded",
        "Messages whose handler succeeded.",
        |c| &c.succeeded,
    ),
    (
        "messages_retried",
        "Retryable failures put back with a backoff.",
        |c| &c.retried,
    ),
    (
        "messages_dead_lettered",
        "Messages sent to the dead-letter queue with failure metadata.",
        |c| &c.dead_lettered,
    ),
    (
        "messages_deleted",
        "Messages deleted from the source queue.",
        |c| &c.deleted,
    ),
    (
        "delete_failures",
        "Deletes that finally failed (stale receipts included).",
        |c| &c.delete_failures,
    ),
    (
        "handler_panics",
        "Handler panics (each one is a retryable failure).",
        |c| &c.panics,
    ),
    (
        "messages_released_on_shutdown",
        "Received but unstarted messages released at shutdown.",
        |c| &c.released_on_shutdown,
    ),
    (
        "messages_released_fifo_hold",
        "FIFO messages released because an earlier one of their group failed.",
        |c| &c.released_fifo_hold,
    ),
    (
        "messages_abandoned",
        "Handlers still running at the drain deadline.",
        |c| &c.abandoned,
    ),
    (
        "heartbeat_extensions",
        "Visibility extensions of long-running messages.",
        |c| &c.heartbeat_extensions,
    ),
    (
        "visibility_failures",
        "Visibility changes that failed.",
        |c| &c.visibility_failures,
    ),
    ("receive_errors", "ReceiveMessage calls that failed.", |c| {
        &c.receive_errors
    }),
    (
        "dead_letter_send_failures",
        "Dead-letter sends that failed (message kept for retry).",
        |c| &c.dead_letter_send_failures,
    ),
    (
        "claim_checks_resolved",
        "Claim-check pointers resolved from the object store.",
        |c| &c.claim_checks_resolved,
    ),
];

// ---------------------------------------------------------------------------------------------
// Health
// ---------------------------------------------------------------------------------------------

/// Liveness and readiness. Liveness fails when no receive call has completed for longer than
/// the stall threshold while a poller was free to receive (waiting for a free handler slot is
/// not a stall: long handlers are normal) and the runtime is not shutting down.
#[derive(Debug)]
pub struct Health {
    start: Instant,
    /// Milliseconds since `start` of the last completed receive (or of the end of a wait for
    /// handler slots).
    last_progress_ms: AtomicU64,
    waiting_for_slots: AtomicUsize,
    shutting_down: AtomicBool,
    ready: AtomicBool,
    threshold: Duration,
}

impl Health {
    /// `threshold` is `3 × wait_time + grace`.
    pub fn new(threshold: Duration) -> Self {
        Self {
            start: Instant::now(),
            last_progress_ms: AtomicU64::new(0),
            waiting_for_slots: AtomicUsize::new(0),
            shutting_down: AtomicBool::new(false),
            ready: AtomicBool::new(false),
            threshold,
        }
    }

    pub fn progress(&self) {
        let ms = u64::try_from(self.start.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.last_progress_ms.fetch_max(ms, Relaxed);
    }

    pub fn waiting_for_slots(&self, waiting: bool) {
        if waiting {
            self.waiting_for_slots.fetch_add(1, Relaxed);
        } else {
            self.waiting_for_slots.fetch_sub(1, Relaxed);
            self.progress();
        }
    }

    pub fn set_ready(&self, ready: bool) {
        self.ready.store(ready, Relaxed);
    }

    pub fn set_shutting_down(&self) {
        self.shutting_down.store(true, Relaxed);
        self.ready.store(false, Relaxed);
    }

    pub fn is_ready(&self) -> bool {
        self.ready.load(Relaxed)
    }

    pub fn is_live(&self) -> bool {
        if self.shutting_down.load(Relaxed) || self.waiting_for_slots.load(Relaxed) > 0 {
            return true;
        }
        let since = Duration::from_millis(self.last_progress_ms.load(Relaxed));
        self.start.elapsed().saturating_sub(since) <= self.threshold
    }
}

// ---------------------------------------------------------------------------------------------
// Telemetry
// ---------------------------------------------------------------------------------------------

/// One run's metrics and health, shared by every task of the run.
#[derive(Debug)]
pub struct Telemetry {
    pub worker: String,
    pub queue: String,
    pub counters: Counters,
    pub handler_time: Histogram,
    pub queue_lag: Histogram,
    pub health: Health,
}

impl Telemetry {
    pub fn new(worker: &str, queue: &str, stall_threshold: Duration) -> Self {
        Self {
            worker: worker.to_string(),
            queue: queue.to_string(),
            counters: Counters::default(),
            handler_time: Histogram::new(HANDLER_BOUNDS),
            queue_lag: Histogram::new(LAG_BOUNDS),
            health: Health::new(stall_threshold),
        }
    }

    /// Prometheus text exposition (format 0.0.4).
    pub fn render_prometheus(&self) -> String {
        let labels = format!(
            "worker=\"{}\",queue=\"{}\"",
            escape(&self.worker),
            escape(&self.queue)
        );
        let mut out = String::with_capacity(4096);
        for (name, help, get) in COUNTERS {
            let _ = writeln!(out, "# HELP fleet_{name}_total {help}");
            let _ = writeln!(out, "# TYPE fleet_{name}_total counter");
            let _ = writeln!(
                out,
                "fleet_{name}_total{{{labels}}} {}",
                get(&self.counters).load(Relaxed)
            );
        }
        for (name, help, h) in [
            (
                "fleet_handler_seconds",
                "Handler run time.",
                &self.handler_time,
            ),
            (
                "fleet_queue_lag_seconds",
                "Time from send to receive.",
                &self.queue_lag,
            ),
        ] {
            let _ = writeln!(out, "# HELP {name} {help}");
            let _ = writeln!(out, "# TYPE {name} histogram");
            let mut cumulative = 0u64;
            for (bound, bucket) in h.bounds.iter().zip(&h.buckets) {
                cumulative += bucket.load(Relaxed);
                let _ = writeln!(out, "{name}_bucket{{{labels},le=\"{bound}\"}} {cumulative}");
            }
            let _ = writeln!(out, "{name}_bucket{{{labels},le=\"+Inf\"}} {}", h.count());
            let _ = writeln!(
                out,
                "{name}_sum{{{labels}}} {}",
                h.sum_micros() as f64 / 1e6
            );
            let _ = writeln!(out, "{name}_count{{{labels}}} {}", h.count());
        }
        out.push_str(
            "# HELP fleet_backend_requests_total Backend requests by API, process-wide.\n",
        );
        out.push_str("# TYPE fleet_backend_requests_total counter\n");
        for (api, n) in fleet_core::requests::snapshot() {
            let _ = writeln!(
                out,
                "fleet_backend_requests_total{{api=\"{}\"}} {n}",
                escape(&api)
            );
        }
        let _ = writeln!(
            out,
            "# TYPE fleet_up gauge\nfleet_up{{{labels}}} {}",
            u8::from(self.health.is_live())
        );
        out
    }

    /// One CloudWatch Embedded Metric Format line with the counter deltas since `prev` and the
    /// mean handler time and queue lag over the interval (EMF has no histogram type).
    pub fn emf_line(&self, prev: &mut EmfState, timestamp_ms: i64) -> String {
        let mut root = serde_json::Map::new();
        let mut metrics = Vec::new();
        root.insert("worker".into(), self.worker.clone().into());
        root.insert("queue".into(), self.queue.clone().into());
        for (i, (name, _, get)) in COUNTERS.iter().enumerate() {
            let now = get(&self.counters).load(Relaxed);
            let delta = now.saturating_sub(prev.counters.get(i).copied().unwrap_or(0));
            if let Some(slot) = prev.counters.get_mut(i) {
                *slot = now;
            }
            root.insert((*name).into(), delta.into());
            metrics.push(serde_json::json!({"Name": name, "Unit": "Count"}));
        }
        for (name, h, last) in [
            ("handler_time_mean", &self.handler_time, &mut prev.handler),
            ("queue_lag_mean", &self.queue_lag, &mut prev.lag),
        ] {
            let (count, sum) = (h.count(), h.sum_micros());
            let dc = count.saturating_sub(last.0);
            let ds = sum.saturating_sub(last.1);
            *last = (count, sum);
            if dc > 0 {
                root.insert(name.into(), (ds as f64 / dc as f64 / 1000.0).into());
                metrics.push(serde_json::json!({"Name": name, "Unit": "Milliseconds"}));
            }
        }
        root.insert(
            "_aws".into(),
            serde_json::json!({
                "Timestamp": timestamp_ms,
                "CloudWatchMetrics": [{
                    "Namespace": "Fleet",
                    "Dimensions": [["worker", "queue"]],
                    "Metrics": metrics,
                }],
            }),
        );
        serde_json::Value::Object(root).to_string()
    }
}

/// What the previous EMF line reported, for deltas.
#[derive(Debug, Clone)]
pub struct EmfState {
    counters: Vec<u64>,
    handler: (u64, u64),
    lag: (u64, u64),
}

impl Default for EmfState {
    fn default() -> Self {
        Self {
            counters: vec![0; COUNTERS.len()],
            handler: (0, 0),
            lag: (0, 0),
        }
    }
}

fn escape(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

// ---------------------------------------------------------------------------------------------
// Typed events: each writes its log line and updates its metric.
// ---------------------------------------------------------------------------------------------

pub struct ReceiveCompleted {
    pub count: usize,
}
impl ReceiveCompleted {
    pub fn emit(self, t: &Telemetry) {
        t.health.progress();
        t.counters.received.fetch_add(self.count as u64, Relaxed);
        tracing::trace!(count = self.count, "receive completed");
    }
}

pub struct ReceiveFailed<'a> {
    pub error: &'a PortError,
    pub backoff: Duration,
}
impl ReceiveFailed<'_> {
    pub fn emit(self, t: &Telemetry) {
        t.counters.receive_errors.fetch_add(1, Relaxed);
        tracing::warn!(queue = %t.queue, error = %self.error, backoff_ms = self.backoff.as_millis() as u64, "receive failed");
    }
}

pub struct MessageStarted {
    pub queue_lag: Duration,
}
impl MessageStarted {
    pub fn emit(self, t: &Telemetry) {
        t.queue_lag.observe(self.queue_lag);
        tracing::debug!(
            queue_lag_ms = self.queue_lag.as_millis() as u64,
            "message started"
        );
    }
}

pub struct HandlerFinished {
    pub elapsed: Duration,
}
impl HandlerFinished {
    pub fn emit(self, t: &Telemetry) {
        t.handler_time.observe(self.elapsed);
    }
}

pub struct Succeeded {
    pub elapsed: Duration,
}
impl Succeeded {
    pub fn emit(self, t: &Telemetry) {
        t.counters.succeeded.fetch_add(1, Relaxed);
        tracing::debug!(
            elapsed_ms = self.elapsed.as_millis() as u64,
            "message handled"
        );
    }
}

pub struct Retried {
    pub reason: &'static str,
    pub delay: Duration,
}
impl Retried {
    pub fn emit(self, t: &Telemetry) {
        t.counters.retried.fetch_add(1, Relaxed);
        tracing::info!(
            reason = self.reason,
            delay_ms = self.delay.as_millis() as u64,
            "message will be retried"
        );
    }
}

pub struct HandlerPanicked;
impl HandlerPanicked {
    pub fn emit(self, t: &Telemetry) {
        t.counters.panics.fetch_add(1, Relaxed);
        // The panic payload is deliberately not logged: it may quote message data.
        tracing::error!("handler panicked; treated as a retryable failure");
    }
}

pub struct DeadLettered {
    pub code: ErrorCode,
    pub dropped_attributes: usize,
}
impl DeadLettered {
    pub fn emit(self, t: &Telemetry) {
        t.counters.dead_lettered.fetch_add(1, Relaxed);
        tracing::warn!(code = %self.code, dropped_attributes = self.dropped_attributes, "message dead-lettered");
    }
}

pub struct DeadLetterFailed<'a> {
    pub code: ErrorCode,
    pub error: Option<&'a PortError>,
}
impl DeadLetterFailed<'_> {
    pub fn emit(self, t: &Telemetry) {
        t.counters.dead_letter_send_failures.fetch_add(1, Relaxed);
        match self.error {
            Some(e) => {
                tracing::error!(code = %self.code, error = %e, "dead-letter send failed; message kept on the source queue for retry")
            }
            None => {
                tracing::error!(code = %self.code, "no dead-letter queue configured; message kept on the source queue")
            }
        }
    }
}

pub struct Deleted {
    pub count: u64,
}
impl Deleted {
    pub fn emit(self, t: &Telemetry) {
        t.counters.deleted.fetch_add(self.count, Relaxed);
    }
}

pub struct DeleteFailed<'a> {
    pub message_id: &'a str,
    pub code: &'a str,
    pub last_attempt: bool,
}
impl DeleteFailed<'_> {
    pub fn emit(self, t: &Telemetry) {
        if !self.last_attempt {
            tracing::warn!(
                message_id = self.message_id,
                code = self.code,
                "delete failed; retrying once"
            );
            return;
        }
        t.counters.delete_failures.fetch_add(1, Relaxed);
        if self.code == crate::batcher::RECEIPT_INVALID {
            tracing::warn!(
                message_id = self.message_id,
                code = self.code,
                "delete refused: receipt no longer valid; the message will be redelivered and its idempotency key absorbs the repeat"
            );
        } else {
            tracing::error!(
                message_id = self.message_id,
                code = self.code,
                "delete failed; the message will be redelivered"
            );
        }
    }
}

pub struct VisibilityFailed<'a> {
    pub message_id: &'a str,
    pub purpose: &'static str,
    pub code: &'a str,
}
impl VisibilityFailed<'_> {
    pub fn emit(self, t: &Telemetry) {
        t.counters.visibility_failures.fetch_add(1, Relaxed);
        tracing::warn!(
            message_id = self.message_id,
            purpose = self.purpose,
            code = self.code,
            "visibility change failed"
        );
    }
}

/// Why messages were released (visibility 0) without being processed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReleaseReason {
    Shutdown,
    FifoHold,
}

pub struct Released {
    pub count: u64,
    pub reason: ReleaseReason,
}
impl Released {
    pub fn emit(self, t: &Telemetry) {
        match self.reason {
            ReleaseReason::Shutdown => {
                t.counters
                    .released_on_shutdown
                    .fetch_add(self.count, Relaxed);
                tracing::info!(count = self.count, "released unstarted message at shutdown");
            }
            ReleaseReason::FifoHold => {
                t.counters.released_fifo_hold.fetch_add(self.count, Relaxed);
                tracing::info!(
                    count = self.count,
                    "released later messages of the group to keep FIFO order"
                );
            }
        }
    }
}

pub struct Abandoned {
    pub count: u64,
}
impl Abandoned {
    pub fn emit(self, t: &Telemetry) {
        t.counters.abandoned.fetch_add(self.count, Relaxed);
        tracing::warn!(
            count = self.count,
            "drain deadline reached: handlers abandoned; their messages become visible when their visibility expires"
        );
    }
}

pub struct HeartbeatExtended {
    pub messages: usize,
    pub by: Duration,
}
impl HeartbeatExtended {
    pub fn emit(self, t: &Telemetry) {
        t.counters
            .heartbeat_extensions
            .fetch_add(self.messages as u64, Relaxed);
        tracing::debug!(
            messages = self.messages,
            by_s = self.by.as_secs(),
            "visibility extended"
        );
    }
}

pub struct HeartbeatStopped {
    pub why: &'static str,
}
impl HeartbeatStopped {
    pub fn emit(self, _t: &Telemetry) {
        tracing::warn!(why = self.why, "visibility heartbeat stopped");
    }
}

pub struct ClaimCheckResolved {
    pub bytes: usize,
}
impl ClaimCheckResolved {
    pub fn emit(self, t: &Telemetry) {
        t.counters.claim_checks_resolved.fetch_add(1, Relaxed);
        tracing::debug!(bytes = self.bytes, "claim check resolved");
    }
}

// ---------------------------------------------------------------------------------------------
// HTTP endpoint and EMF emitter
// ---------------------------------------------------------------------------------------------

/// Binds `addr` and serves `/health/live`, `/health/ready` and (when enabled) `/metrics` until
/// `stop` is cancelled.
pub async fn serve(
    addr: SocketAddr,
    telemetry: Arc<Telemetry>,
    prometheus: bool,
    stop: CancellationToken,
) -> std::io::Result<tokio::task::JoinHandle<()>> {
    use axum::extract::State;
    use axum::http::{StatusCode, header};
    use axum::routing::get;

    async fn live(State(t): State<Arc<Telemetry>>) -> (StatusCode, &'static str) {
        if t.health.is_live() {
            (StatusCode::OK, "live\n")
        } else {
            (StatusCode::SERVICE_UNAVAILABLE, "polling stalled\n")
        }
    }
    async fn ready(State(t): State<Arc<Telemetry>>) -> (StatusCode, &'static str) {
        if t.health.is_ready() {
            (StatusCode::OK, "ready\n")
        } else {
            (StatusCode::SERVICE_UNAVAILABLE, "not ready\n")
        }
    }
    async fn metrics(State(t): State<Arc<Telemetry>>) -> impl axum::response::IntoResponse {
        (
            [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
            t.render_prometheus(),
        )
    }

    let mut router = axum::Router::new()
        .route("/health/live", get(live))
        .route("/health/ready", get(ready));
    if prometheus {
        router = router.route("/metrics", get(metrics));
    }
    let router = router.with_state(telemetry);
    let listener = tokio::net::TcpListener::bind(addr).await?;
    Ok(tokio::spawn(async move {
        let served = axum::serve(listener, router)
            .with_graceful_shutdown(stop.cancelled_owned())
            .await;
        if let Err(e) = served {
            tracing::error!(error = %e, "health endpoint stopped");
        }
    }))
}

/// Prints an EMF line every `interval` and a last one when `stop` is cancelled.
pub fn spawn_emf(
    telemetry: Arc<Telemetry>,
    interval: Duration,
    stop: CancellationToken,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut state = EmfState::default();
        let mut tick = tokio::time::interval(interval.max(Duration::from_secs(1)));
        tick.tick().await;
        loop {
            let stopping = tokio::select! {
                _ = tick.tick() => false,
                _ = stop.cancelled() => true,
            };
            let now_ms =
                i64::try_from(time::OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000)
                    .unwrap_or(0);
            println!("{}", telemetry.emf_line(&mut state, now_ms));
            if stopping {
                break;
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn liveness_fails_only_after_the_threshold_without_progress() {
        let h = Health::new(Duration::from_secs(90));
        assert!(h.is_live());
        tokio::time::advance(Duration::from_secs(89)).await;
        assert!(h.is_live());
        tokio::time::advance(Duration::from_secs(2)).await;
        assert!(!h.is_live(), "91 s without a completed receive is a stall");
        h.progress();
        assert!(h.is_live());
        tokio::time::advance(Duration::from_secs(100)).await;
        assert!(!h.is_live());
        // Waiting for a free handler slot is not a stall.
        h.waiting_for_slots(true);
        assert!(h.is_live());
        tokio::time::advance(Duration::from_secs(100)).await;
        assert!(h.is_live());
        h.waiting_for_slots(false);
        assert!(h.is_live());
        tokio::time::advance(Duration::from_secs(91)).await;
        assert!(!h.is_live());
        // Nor is a shutdown in progress.
        h.set_shutting_down();
        assert!(h.is_live());
        assert!(!h.is_ready());
    }

    #[test]
    fn prometheus_text_has_counters_histograms_and_escaped_labels() {
        let t = Telemetry::new("w\"1", "q", Duration::from_secs(90));
        t.counters.received.fetch_add(3, Relaxed);
        t.handler_time.observe(Duration::from_millis(7));
        t.handler_time.observe(Duration::from_secs(2000));
        fleet_core::requests::count("test.Prometheus");
        let text = t.render_prometheus();
        assert!(
            text.contains("fleet_messages_received_total{worker=\"w\\\"1\",queue=\"q\"} 3"),
            "{text}"
        );
        assert!(
            text.contains(
                "fleet_handler_seconds_bucket{worker=\"w\\\"1\",queue=\"q\",le=\"0.005\"} 0"
            ),
            "{text}"
        );
        assert!(
            text.contains(
                "fleet_handler_seconds_bucket{worker=\"w\\\"1\",queue=\"q\",le=\"0.01\"} 1"
            ),
            "{text}"
        );
        assert!(
            text.contains(
                "fleet_handler_seconds_bucket{worker=\"w\\\"1\",queue=\"q\",le=\"900\"} 1"
            ),
            "{text}"
        );
        assert!(
            text.contains(
                "fleet_handler_seconds_bucket{worker=\"w\\\"1\",queue=\"q\",le=\"+Inf\"} 2"
            ),
            "{text}"
        );
        assert!(
            text.contains("fleet_handler_seconds_count{worker=\"w\\\"1\",queue=\"q\"} 2"),
            "{text}"
        );
        assert!(
            text.contains("fleet_backend_requests_total{api=\"test.Prometheus\"}"),
            "{text}"
        );
    }

    #[test]
    fn emf_lines_carry_deltas() {
        let t = Telemetry::new("w", "q", Duration::from_secs(90));
        let mut state = EmfState::default();
        t.counters.succeeded.fetch_add(4, Relaxed);
        t.handler_time.observe(Duration::from_millis(10));
        t.handler_time.observe(Duration::from_millis(30));
        let first: serde_json::Value = serde_json::from_str(&t.emf_line(&mut state, 1000)).unwrap();
        assert_eq!(first["messages_succeeded"], 4);
        assert_eq!(first["handler_time_mean"], 20.0);
        assert_eq!(
            first["_aws"]["CloudWatchMetrics"][0]["Dimensions"][0][0],
            "worker"
        );
        t.counters.succeeded.fetch_add(1, Relaxed);
        let second: serde_json::Value =
            serde_json::from_str(&t.emf_line(&mut state, 2000)).unwrap();
        assert_eq!(second["messages_succeeded"], 1);
        assert!(second.get("handler_time_mean").is_none());
        assert_eq!(second["_aws"]["Timestamp"], 2000);
    }
}
