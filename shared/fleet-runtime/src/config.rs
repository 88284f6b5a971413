//! Runtime configuration and the errors that stop a run from starting.

use std::net::SocketAddr;
use std::time::Duration;

use fleet_core::PortError;

use crate::backoff::BackoffPolicy;

/// Which metrics outputs the runtime produces (`--metrics` / `FLEET_METRICS`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum MetricsFormat {
    /// Prometheus text on `GET /metrics` of the health endpoint (needs `health_addr`).
    #[default]
    Prometheus,
    /// CloudWatch Embedded Metric Format JSON lines on stdout every `emf_interval` and at
    /// shutdown; no `/metrics`.
    Emf,
    /// Both of the above.
    Both,
}

impl MetricsFormat {
    pub fn prometheus(self) -> bool {
        matches!(self, Self::Prometheus | Self::Both)
    }
    pub fn emf(self) -> bool {
        matches!(self, Self::Emf | Self::Both)
    }
}

/// Visibility heartbeat for long-running handlers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HeartbeatConfig {
    pub enabled: bool,
    /// Each extension sets the message's visibility to this much from now.
    pub extend_by: Duration,
    /// No extension past this age of the receive (SQS's own ceiling is 12 h).
    pub max_lifetime: Duration,
}

impl Default for HeartbeatConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            extend_by: Duration::from_secs(60),
            max_lifetime: Duration::from_secs(12 * 3600),
        }
    }
}

/// Everything [`crate::run`] needs besides the backend, the handler and the shutdown token.
#[derive(Debug, Clone)]
pub struct RuntimeConfig {
    /// Worker name, used in logs, metrics and failure metadata.
    pub worker: String,
    /// Source queue, by name or URL.
    pub queue: String,
    /// Handler slots: messages processed at once.
    pub concurrency: usize,
    /// Receive loops; 0 picks one per 10 slots.
    pub pollers: usize,
    /// Long-poll wait per ReceiveMessage (SQS maximum 20 s).
    pub wait_time: Duration,
    /// Visibility for received messages; `None` keeps the queue's setting.
    pub visibility_timeout: Option<Duration>,
    /// Receives after which a retryable failure is dead-lettered by the runtime. Must be below
    /// the queue's maxReceiveCount so the runtime (with metadata) acts before the redrive policy.
    pub max_attempts: u32,
    pub backoff: BackoffPolicy,
    /// How long a delete waits for companions before its batch is sent.
    pub delete_linger: Duration,
    /// While the queue has a backlog (the last receive came back full), how long a poller
    /// waits for more free slots before a receive of fewer than 10.
    pub receive_linger: Duration,
    pub heartbeat: HeartbeatConfig,
    /// Time in-flight handlers get to finish after shutdown is requested.
    pub drain_deadline: Duration,
    /// Start even if the queue or its DLQ is unencrypted or has no redrive policy (local only).
    pub allow_unencrypted: bool,
    /// Largest body a handler is given (inline or resolved from a claim check).
    pub max_body_bytes: usize,
    /// Buckets a claim-check pointer may name (`FLEET_CLAIM_CHECK_BUCKETS`). Empty (the
    /// default): no worker has a claim-check bucket of its own, so every pointer is refused
    /// with `CLAIM_CHECK_BUCKET_NOT_ALLOWED` and nothing is read.
    pub claim_check_buckets: Vec<String>,
    /// Where `/health/live`, `/health/ready` and `/metrics` are served; `None` serves nothing.
    pub health_addr: Option<SocketAddr>,
    pub metrics_format: MetricsFormat,
    /// Interval between EMF lines.
    pub emf_interval: Duration,
    /// Slack added to `3 × wait_time` before liveness reports a stalled poller.
    pub liveness_grace: Duration,
}

/// Default claim-check ceiling: 16 MiB (inline SQS bodies are far smaller; offloaded ones are
/// what this bounds).
pub const DEFAULT_MAX_BODY_BYTES: usize = 16 * 1024 * 1024;

impl RuntimeConfig {
    /// A configuration with the documented defaults.
    pub fn new(worker: impl Into<String>, queue: impl Into<String>) -> Self {
        Self {
            worker: worker.into(),
            queue: queue.into(),
            concurrency: 16,
            pollers: 1,
            wait_time: Duration::from_secs(20),
            visibility_timeout: None,
            max_attempts: 5,
            backoff: BackoffPolicy::DEFAULT,
            delete_linger: Duration::from_millis(20),
            receive_linger: Duration::from_millis(10),
            heartbeat: HeartbeatConfig::default(),
            drain_deadline: Duration::from_secs(25),
            allow_unencrypted: false,
            max_body_bytes: DEFAULT_MAX_BODY_BYTES,
            claim_check_buckets: Vec::new(),
            health_addr: None,
            metrics_format: MetricsFormat::Prometheus,
            emf_interval: Duration::from_secs(60),
            liveness_grace: Duration::from_secs(30),
        }
    }

    /// The number of receive loops actually run.
    pub fn effective_pollers(&self) -> usize {
        match self.pollers {
            0 => self.concurrency.div_ceil(10).max(1),
            n => n,
        }
    }

    pub(crate) fn validate(&self) -> Result<(), RuntimeError> {
        if self.worker.is_empty() {
            return Err(RuntimeError::Config("worker name is empty".into()));
        }
        if self.queue.is_empty() {
            return Err(RuntimeError::Config(
                "queue is empty: set the worker's queue name or URL".into(),
            ));
        }
        if self.concurrency == 0 {
            return Err(RuntimeError::Config(
                "concurrency must be at least 1".into(),
            ));
        }
        if self.max_attempts == 0 {
            return Err(RuntimeError::Config(
                "max_attempts must be at least 1".into(),
            ));
        }
        if self.wait_time > Duration::from_secs(20) {
            return Err(RuntimeError::Config(
                "wait_time above 20 s: SQS long polls wait at most 20 s".into(),
            ));
        }
        if self.heartbeat.enabled && self.heartbeat.extend_by < Duration::from_secs(1) {
            // SQS counts visibility in whole seconds: a shorter extension would release the message.
            return Err(RuntimeError::Config(
                "heartbeat.extend_by must be at least 1 s (or disable the heartbeat)".into(),
            ));
        }
        Ok(())
    }
}

/// Why a run did not start (or could not continue). Messages name the resource and the fix;
/// they never contain message contents.
#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    #[error("invalid runtime configuration: {0}")]
    Config(String),
    #[error(
        "queue {queue} is not encrypted: enable SSE-KMS or SSE-SQS on it, or set FLEET_ALLOW_UNENCRYPTED=1 for local development"
    )]
    Unencrypted { queue: String },
    #[error(
        "dead-letter queue {dlq} (of queue {queue}) is not encrypted: enable SSE-KMS or SSE-SQS on it, or set FLEET_ALLOW_UNENCRYPTED=1 for local development"
    )]
    DlqUnencrypted { queue: String, dlq: String },
    #[error(
        "queue {queue} has no redrive policy: attach a dead-letter queue (RedrivePolicy with maxReceiveCount above the worker's max attempts), or set FLEET_ALLOW_UNENCRYPTED=1 for local development"
    )]
    NoRedrivePolicy { queue: String },
    /// The unencrypted override was given where it is not allowed (aws against AWS itself).
    #[error("refusing to start: {reason}")]
    OverrideRefused { reason: String },
    #[error(
        "queue {queue} is FIFO but its dead-letter queue {dlq} is not: use a FIFO dead-letter queue"
    )]
    DlqNotFifo { queue: String, dlq: String },
    #[error("cannot open queue {queue}: {source}")]
    Queue { queue: String, source: PortError },
    #[error("cannot serve health/metrics on {addr}: {source}")]
    HealthBind {
        addr: SocketAddr,
        source: std::io::Error,
    },
}
