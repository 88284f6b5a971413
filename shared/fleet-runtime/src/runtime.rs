//! The run loop: start-up checks, the tasks of one run and the shutdown sequence. The
//! per-message life cycle is in [`message`] (claim check, handler, supervision) and [`settle`]
//! (delete, retry, dead-letter); polling in [`poll`]; the visibility heartbeat in [`lease`].
//! DESIGN.md next to this crate describes the life cycle and its ordering.

mod lease;
mod message;
mod poll;
mod settle;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;

use fleet_core::{Backend, MessageQueue, QueueAttributes};
use tokio::sync::{Semaphore, mpsc};
use tokio::task::{JoinHandle, JoinSet};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::batcher::{self, DeleteRequest, VisibilityRequest};
use crate::claim_check::ClaimCheckSource;
use crate::config::{RuntimeConfig, RuntimeError};
use crate::handler::Handler;
use crate::telemetry::{self, Count, EmfOutput, Telemetry};

/// What a run did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RunReport {
    pub received: u64,
    pub succeeded: u64,
    pub retried: u64,
    pub dead_lettered: u64,
    pub released_on_shutdown: u64,
    pub released_fifo_hold: u64,
    pub abandoned: u64,
    pub deleted: u64,
    pub delete_failures: u64,
    pub panics: u64,
    pub heartbeat_extensions: u64,
    pub visibility_failures: u64,
    pub receive_errors: u64,
    pub dead_letter_send_failures: u64,
    pub claim_checks_resolved: u64,
    pub leases_lost: u64,
}

impl RunReport {
    /// What the run added to its metric series (read back from the process's recorder).
    fn from_telemetry(t: &Telemetry) -> Self {
        let run = t.run_totals();
        Self {
            received: run.count(Count::Received),
            succeeded: run.count(Count::Succeeded),
            retried: run.count(Count::Retried),
            dead_lettered: run.count(Count::DeadLettered),
            released_on_shutdown: run.count(Count::ReleasedOnShutdown),
            released_fifo_hold: run.count(Count::ReleasedFifoHold),
            abandoned: run.count(Count::Abandoned),
            deleted: run.count(Count::Deleted),
            delete_failures: run.count(Count::DeleteFailures),
            panics: run.count(Count::Panics),
            heartbeat_extensions: run.count(Count::HeartbeatExtensions),
            visibility_failures: run.count(Count::VisibilityFailures),
            receive_errors: run.count(Count::ReceiveErrors),
            dead_letter_send_failures: run.count(Count::DeadLetterSendFailures),
            claim_checks_resolved: run.count(Count::ClaimChecksResolved),
            leases_lost: run.count(Count::LeasesLost),
        }
    }
}

/// Shared by every task of one run.
struct Ctx {
    cfg: RuntimeConfig,
    /// The backend as the message path uses it: only to fetch claim checks, and only from
    /// the buckets `cfg.claim_check_buckets` allows.
    backend: Arc<ClaimCheckSource>,
    handler: Arc<dyn Handler>,
    queue: Arc<dyn MessageQueue>,
    dlq: Option<Arc<dyn MessageQueue>>,
    dlq_fifo: bool,
    fifo: bool,
    /// Visibility the messages have when received.
    visibility: Duration,
    telemetry: Arc<Telemetry>,
    deletes: mpsc::UnboundedSender<DeleteRequest>,
    visibility_tx: mpsc::UnboundedSender<VisibilityRequest>,
    shutdown: CancellationToken,
    /// Cancelled at the drain deadline: running handlers are given up.
    abandon: CancellationToken,
    abandoned: AtomicU64,
}

/// Runs the consumer until `shutdown` is cancelled, then drains and returns what it did.
/// Fails before receiving anything if the configuration or the queue set-up is unsafe.
pub async fn run(
    cfg: RuntimeConfig,
    backend: Arc<dyn Backend>,
    handler: Arc<dyn Handler>,
    shutdown: CancellationToken,
) -> Result<RunReport, RuntimeError> {
    cfg.validate()?;
    if cfg.allow_unencrypted {
        backend
            .unencrypted_override()
            .map_err(|reason| RuntimeError::OverrideRefused { reason })?;
    }
    let queue = backend
        .queue(&cfg.queue)
        .await
        .map_err(|source| RuntimeError::Queue {
            queue: cfg.queue.clone(),
            source,
        })?;
    let attrs = queue
        .attributes()
        .await
        .map_err(|source| RuntimeError::Queue {
            queue: queue.id().to_string(),
            source,
        })?;
    let (dlq, dlq_fifo) = check_queues(&cfg, backend.as_ref(), queue.as_ref(), &attrs).await?;

    let visibility = match cfg.visibility_timeout.unwrap_or(attrs.visibility_timeout) {
        d if d.is_zero() => Duration::from_secs(30),
        d => d,
    };
    let threshold = cfg.wait_time * 3 + cfg.liveness_grace;
    let telemetry = Arc::new(Telemetry::new(&cfg.worker, queue.id(), threshold));

    let side_stop = CancellationToken::new();
    let server = match cfg.health_addr {
        Some(addr) => Some(
            telemetry::serve(
                addr,
                telemetry.clone(),
                cfg.metrics_format.prometheus(),
                side_stop.clone(),
            )
            .await
            .map_err(|source| RuntimeError::HealthBind { addr, source })?,
        ),
        None => None,
    };
    let emf = cfg.metrics_format.emf().then(|| EmfOutput {
        interval: cfg.emf_interval,
        out: Box::new(std::io::stdout()),
    });
    let periodic = telemetry::spawn_periodic(telemetry.clone(), emf, side_stop.clone());

    let (deletes, deleter) =
        batcher::spawn_deleter(queue.clone(), cfg.delete_linger, telemetry.clone());
    let (visibility_tx, visibility_task) =
        batcher::spawn_visibility(queue.clone(), cfg.delete_linger, telemetry.clone());

    tracing::info!(
        worker = %cfg.worker,
        queue = %queue.id(),
        fifo = attrs.fifo,
        concurrency = cfg.concurrency,
        pollers = cfg.effective_pollers(),
        visibility_s = visibility.as_secs(),
        max_attempts = cfg.max_attempts,
        "consumer starting"
    );

    let ctx = Arc::new(Ctx {
        backend: Arc::new(ClaimCheckSource::new(backend, &cfg.claim_check_buckets)),
        handler,
        queue,
        dlq,
        dlq_fifo,
        fifo: attrs.fifo,
        visibility,
        telemetry: telemetry.clone(),
        deletes,
        visibility_tx,
        shutdown: shutdown.clone(),
        abandon: CancellationToken::new(),
        abandoned: AtomicU64::new(0),
        cfg,
    });

    let slots = Arc::new(Semaphore::new(ctx.cfg.concurrency));
    let tracker = TaskTracker::new();
    let mut pollers = JoinSet::new();
    for _ in 0..ctx.cfg.effective_pollers() {
        pollers.spawn(poll::poll_loop(ctx.clone(), slots.clone(), tracker.clone()));
    }
    telemetry.health.progress();
    telemetry.health.set_ready(true);

    shutdown.cancelled().await;
    telemetry.health.set_shutting_down();
    let drain_started = Instant::now();
    tracing::info!(
        in_flight = tracker.len(),
        "shutdown requested: receiving stopped, draining"
    );
    while pollers.join_next().await.is_some() {}
    tracker.close();
    let remaining = ctx
        .cfg
        .drain_deadline
        .saturating_sub(drain_started.elapsed());
    if tokio::time::timeout(remaining, tracker.wait())
        .await
        .is_err()
    {
        ctx.abandon.cancel();
        // Abandoned tasks return at once; the bound only guards against a stuck adapter call.
        let _ = tokio::time::timeout(Duration::from_secs(5), tracker.wait()).await;
        telemetry::Abandoned {
            count: ctx.abandoned.load(Relaxed),
        }
        .emit(&telemetry);
    }

    // Dropping the last context closes the batchers' channels: they flush what is queued
    // (deletes, releases, retry visibilities) and end.
    drop(ctx);
    for (name, task) in [
        ("deletes", deleter),
        ("visibility changes", visibility_task),
    ] {
        finish(name, task, Duration::from_secs(10)).await;
    }
    side_stop.cancel();
    if let Some(task) = server {
        finish("health endpoint", task, Duration::from_secs(5)).await;
    }
    finish("metrics", periodic, Duration::from_secs(5)).await;
    telemetry.metrics.set_up(false);
    let report = RunReport::from_telemetry(&telemetry);
    tracing::info!(
        received = report.received,
        succeeded = report.succeeded,
        retried = report.retried,
        dead_lettered = report.dead_lettered,
        released_on_shutdown = report.released_on_shutdown,
        abandoned = report.abandoned,
        "consumer stopped"
    );
    Ok(report)
}

async fn finish(name: &'static str, task: JoinHandle<()>, bound: Duration) {
    let abort = task.abort_handle();
    if tokio::time::timeout(bound, task).await.is_err() {
        abort.abort();
        tracing::error!(task = name, "did not finish in time at shutdown");
    }
}

/// The encryption and redrive guardrail. Returns the DLQ and whether it is FIFO.
async fn check_queues(
    cfg: &RuntimeConfig,
    backend: &dyn Backend,
    queue: &dyn MessageQueue,
    attrs: &QueueAttributes,
) -> Result<(Option<Arc<dyn MessageQueue>>, bool), RuntimeError> {
    let qid = queue.id().to_string();
    if !attrs.encrypted() {
        let e = RuntimeError::Unencrypted { queue: qid.clone() };
        if !cfg.allow_unencrypted {
            return Err(e);
        }
        tracing::warn!(queue = %qid, "starting anyway (allow_unencrypted): {e}");
    }
    let Some(policy) = &attrs.redrive_policy else {
        let e = RuntimeError::NoRedrivePolicy { queue: qid.clone() };
        if !cfg.allow_unencrypted {
            return Err(e);
        }
        tracing::warn!(queue = %qid, "starting anyway (allow_unencrypted): {e}; permanent failures will stay on the queue");
        return Ok((None, false));
    };
    let dlq = backend
        .queue_by_arn(&policy.dead_letter_target)
        .await
        .map_err(|source| RuntimeError::Queue {
            queue: policy.dead_letter_target.clone(),
            source,
        })?;
    let dlq_attrs = dlq
        .attributes()
        .await
        .map_err(|source| RuntimeError::Queue {
            queue: dlq.id().to_string(),
            source,
        })?;
    if !dlq_attrs.encrypted() {
        let e = RuntimeError::DlqUnencrypted {
            queue: qid.clone(),
            dlq: dlq.id().to_string(),
        };
        if !cfg.allow_unencrypted {
            return Err(e);
        }
        tracing::warn!(queue = %qid, "starting anyway (allow_unencrypted): {e}");
    }
    if attrs.fifo && !dlq_attrs.fifo {
        return Err(RuntimeError::DlqNotFifo {
            queue: qid,
            dlq: dlq.id().to_string(),
        });
    }
    if cfg.max_attempts >= policy.max_receive_count {
        tracing::warn!(
            queue = %qid,
            max_attempts = cfg.max_attempts,
            max_receive_count = policy.max_receive_count,
            "max_attempts is not below the queue's maxReceiveCount: the redrive policy will move failing messages without failure metadata; lower max_attempts or raise maxReceiveCount"
        );
    }
    Ok((Some(dlq), dlq_attrs.fifo))
}
