//! The run loop: start-up checks, pollers, the per-message life cycle, heartbeats and the
//! shutdown sequence. DESIGN.md next to this crate describes the life cycle and its ordering.

use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;

use async_trait::async_trait;
use fleet_core::{Attributes, Backend, ErrorCode, MessageQueue, QueueAttributes, ReceivedMessage};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc, oneshot};
use tokio::task::{JoinHandle, JoinSet};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::Instrument;

use crate::backoff::MAX_VISIBILITY;
use crate::batcher::{self, DeleteRequest, RECEIPT_INVALID, VisibilityPurpose, VisibilityRequest};
use crate::claim_check::{self, ResolveError};
use crate::config::{RuntimeConfig, RuntimeError};
use crate::dead_letter::{self, FailureContext};
use crate::fifo::{self, Disposition};
use crate::telemetry::{self, ReleaseReason, Telemetry};

/// The message attribute a producer may set to carry a correlation id across services.
pub const CORRELATION_ATTRIBUTE: &str = "correlation_id";

/// One message as a handler sees it.
#[derive(Debug, Clone)]
pub struct Delivery {
    pub message_id: String,
    /// The body, with any claim-check pointer already resolved.
    pub body: String,
    pub attributes: Attributes,
    /// ApproximateReceiveCount, this receive included.
    pub receive_count: u32,
    pub group_id: Option<String>,
    /// The `correlation_id` attribute when present, else the message id.
    pub correlation_id: String,
    pub sent_timestamp_ms: i64,
}

/// What a handler decided.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Delete the message.
    Done,
    /// Put it back for another attempt after a backoff (or after `retry_after`, up to the cap).
    /// `reason` is a fixed string: it ends up in logs and failure metadata.
    Retry {
        reason: &'static str,
        retry_after: Option<Duration>,
    },
    /// Dead-letter it now. `detail` must not contain PHI; it is sanitised and bounded.
    Fail { code: ErrorCode, detail: String },
}

impl Outcome {
    pub fn retry(reason: &'static str) -> Self {
        Self::Retry {
            reason,
            retry_after: None,
        }
    }
    pub fn fail(code: ErrorCode, detail: impl Into<String>) -> Self {
        Self::Fail {
            code,
            detail: detail.into(),
        }
    }
}

/// A worker's message logic.
#[async_trait]
pub trait Handler: Send + Sync + 'static {
    async fn handle(&self, delivery: &Delivery) -> Outcome;
}

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
}

impl RunReport {
    fn from_telemetry(t: &Telemetry) -> Self {
        let c = &t.counters;
        Self {
            received: c.received.load(Relaxed),
            succeeded: c.succeeded.load(Relaxed),
            retried: c.retried.load(Relaxed),
            dead_lettered: c.dead_lettered.load(Relaxed),
            released_on_shutdown: c.released_on_shutdown.load(Relaxed),
            released_fifo_hold: c.released_fifo_hold.load(Relaxed),
            abandoned: c.abandoned.load(Relaxed),
            deleted: c.deleted.load(Relaxed),
            delete_failures: c.delete_failures.load(Relaxed),
            panics: c.panics.load(Relaxed),
            heartbeat_extensions: c.heartbeat_extensions.load(Relaxed),
            visibility_failures: c.visibility_failures.load(Relaxed),
            receive_errors: c.receive_errors.load(Relaxed),
            dead_letter_send_failures: c.dead_letter_send_failures.load(Relaxed),
            claim_checks_resolved: c.claim_checks_resolved.load(Relaxed),
        }
    }
}

/// Shared by every task of one run.
struct Ctx {
    cfg: RuntimeConfig,
    backend: Arc<dyn Backend>,
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
    let emf = cfg
        .metrics_format
        .emf()
        .then(|| telemetry::spawn_emf(telemetry.clone(), cfg.emf_interval, side_stop.clone()));

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
        backend,
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
        pollers.spawn(poll_loop(ctx.clone(), slots.clone(), tracker.clone()));
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
    if let Some(task) = emf {
        finish("metrics", task, Duration::from_secs(5)).await;
    }
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

// ---------------------------------------------------------------------------------------------
// Polling
// ---------------------------------------------------------------------------------------------

/// How long past its wait time an in-flight long poll may run once shutdown has begun.
const POLL_GRACE_AT_SHUTDOWN: Duration = Duration::from_secs(1);

async fn poll_loop(ctx: Arc<Ctx>, slots: Arc<Semaphore>, tracker: TaskTracker) {
    let health = &ctx.telemetry.health;
    let mut error_backoff = Duration::from_millis(200);
    // The last receive came back full: the queue has a backlog.
    let mut backlog = false;
    let full_batch = batcher::MAX_BATCH.min(ctx.cfg.concurrency);
    loop {
        // Slots first: never receive a message no handler is free to take.
        health.waiting_for_slots(true);
        let acquired = tokio::select! {
            biased;
            _ = ctx.shutdown.cancelled() => None,
            p = slots.clone().acquire_owned() => p.ok(),
        };
        health.waiting_for_slots(false);
        let Some(mut permits) = acquired else { break };
        while permits.num_permits() < batcher::MAX_BATCH {
            match slots.clone().try_acquire_owned() {
                Ok(p) => permits.merge(p),
                Err(_) => break,
            }
        }
        // With a backlog, handlers tend to finish in bursts (a PutEvents batch answers ten at
        // once): a short wait for the rest of the burst turns several small receives into one
        // of ten. Without a backlog nothing waits, so a quiet queue keeps its latency.
        if backlog && permits.num_permits() < full_batch {
            let until = tokio::time::Instant::now() + ctx.cfg.receive_linger;
            while permits.num_permits() < full_batch {
                tokio::select! {
                    biased;
                    _ = ctx.shutdown.cancelled() => break,
                    p = slots.clone().acquire_owned() => match p {
                        Ok(p) => permits.merge(p),
                        Err(_) => break,
                    },
                    _ = tokio::time::sleep_until(until) => break,
                }
            }
        }
        let max = u32::try_from(permits.num_permits()).unwrap_or(1);
        // An in-flight long poll is not dropped at shutdown: SQS may already have handed its
        // messages to the abandoned connection, leaving them invisible. The poll ends within
        // wait_time (at most 20 s); whatever it returns is released by handle_message, which
        // sees the shutdown before starting any handler.
        // A poll that outlives its own wait by a wide margin after shutdown (a hung connection)
        // is dropped after all, so shutdown stays bounded.
        let overdue = async {
            ctx.shutdown.cancelled().await;
            tokio::time::sleep(ctx.cfg.wait_time + POLL_GRACE_AT_SHUTDOWN).await;
        };
        let received = tokio::select! {
            r = ctx.queue.receive(max, ctx.cfg.wait_time, ctx.cfg.visibility_timeout) => r,
            _ = overdue => break,
        };
        match received {
            Ok(messages) => {
                error_backoff = Duration::from_millis(200);
                backlog = messages.len() >= max as usize;
                telemetry::ReceiveCompleted {
                    count: messages.len(),
                }
                .emit(&ctx.telemetry);
                if !messages.is_empty() {
                    dispatch(&ctx, messages, permits, &tracker);
                }
            }
            Err(e) => {
                drop(permits);
                backlog = false;
                let wait = e
                    .retry_after
                    .unwrap_or(error_backoff)
                    .min(Duration::from_secs(20));
                telemetry::ReceiveFailed {
                    error: &e,
                    backoff: wait,
                }
                .emit(&ctx.telemetry);
                error_backoff = (error_backoff * 2).min(Duration::from_secs(20));
                tokio::select! {
                    _ = ctx.shutdown.cancelled() => break,
                    _ = tokio::time::sleep(wait) => {}
                }
            }
        }
    }
}

fn dispatch(
    ctx: &Arc<Ctx>,
    messages: Vec<ReceivedMessage>,
    mut permits: OwnedSemaphorePermit,
    tracker: &TaskTracker,
) {
    let received_at = Instant::now();
    let groups = if ctx.fifo {
        fifo::group_in_order(messages, |m| m.group_id.as_deref())
    } else {
        messages.into_iter().map(|m| vec![m]).collect()
    };
    for group in groups {
        // An adapter returning more than asked would leave some without a slot; they still run.
        let slots = permits.split(group.len());
        tracker.spawn(process_group(ctx.clone(), group, slots, received_at));
    }
}

// ---------------------------------------------------------------------------------------------
// Per message
// ---------------------------------------------------------------------------------------------

async fn process_group(
    ctx: Arc<Ctx>,
    group: Vec<ReceivedMessage>,
    mut slots: Option<OwnedSemaphorePermit>,
    received_at: Instant,
) {
    let lease = Lease::new(&ctx, &group, received_at);
    let ctx_ref = &ctx;
    let lease_ref = &lease;
    let rest = fifo::run_in_order(group, |msg| {
        let slot = slots.as_mut().and_then(|s| s.split(1));
        async move {
            let d = process_one(ctx_ref, msg, lease_ref).await;
            drop(slot);
            d
        }
    })
    .await;
    if rest.is_empty() {
        return;
    }
    let reason = if ctx.shutdown.is_cancelled() {
        ReleaseReason::Shutdown
    } else {
        ReleaseReason::FifoHold
    };
    for msg in &rest {
        release(&ctx, msg);
    }
    telemetry::Released {
        count: rest.len() as u64,
        reason,
    }
    .emit(&ctx.telemetry);
}

async fn process_one(ctx: &Ctx, msg: ReceivedMessage, lease: &Lease) -> Disposition {
    let correlation_id = msg
        .attributes
        .get(CORRELATION_ATTRIBUTE)
        .and_then(|v| v.as_str())
        .unwrap_or(&msg.message_id)
        .to_string();
    let span = tracing::info_span!(
        "message",
        worker = %ctx.cfg.worker,
        queue = %ctx.telemetry.queue,
        message_id = %msg.message_id,
        receive_count = msg.receive_count,
        correlation_id = %correlation_id,
    );
    let receipt = msg.receipt.clone();
    let disposition = tokio::select! {
        biased;
        d = handle_message(ctx, &msg, lease, correlation_id).instrument(span.clone()) => d,
        // Dropping handle_message aborts the handler task (AbortOnDrop).
        _ = ctx.abandon.cancelled() => Disposition::Abandoned,
    };
    if disposition == Disposition::Abandoned {
        ctx.abandoned.fetch_add(1, Relaxed);
    }
    lease.remove(&receipt);
    disposition
}

/// Aborts the handler task if its supervisor is dropped (drain deadline).
struct AbortOnDrop<T>(JoinHandle<T>);

impl<T> Drop for AbortOnDrop<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}

enum Finished {
    Outcome(Outcome),
    Panicked,
}

async fn handle_message(
    ctx: &Ctx,
    msg: &ReceivedMessage,
    lease: &Lease,
    correlation_id: String,
) -> Disposition {
    if ctx.shutdown.is_cancelled() {
        // Received but not started: hand it back at once rather than run it during a drain.
        release(ctx, msg);
        telemetry::Released {
            count: 1,
            reason: ReleaseReason::Shutdown,
        }
        .emit(&ctx.telemetry);
        return Disposition::Released;
    }
    let lag_ms = now_epoch_ms().saturating_sub(msg.sent_timestamp_ms).max(0);
    telemetry::MessageStarted {
        queue_lag: Duration::from_millis(lag_ms.unsigned_abs()),
    }
    .emit(&ctx.telemetry);

    let body = match claim_check::resolve(
        &msg.body,
        &msg.attributes,
        ctx.backend.as_ref(),
        ctx.cfg.max_body_bytes,
    )
    .await
    {
        Ok(Some(resolved)) => {
            telemetry::ClaimCheckResolved {
                bytes: resolved.len(),
            }
            .emit(&ctx.telemetry);
            resolved
        }
        Ok(None) => msg.body.clone(),
        Err(ResolveError::Permanent { code, detail }) => {
            return dead_letter(ctx, msg, lease, code, detail).await;
        }
        Err(ResolveError::Retryable {
            reason,
            retry_after,
        }) => {
            return retry_or_exhaust(ctx, msg, lease, reason, retry_after, false).await;
        }
    };
    let delivery = Arc::new(Delivery {
        message_id: msg.message_id.clone(),
        body,
        attributes: msg.attributes.clone(),
        receive_count: msg.receive_count,
        group_id: msg.group_id.clone(),
        correlation_id,
        sent_timestamp_ms: msg.sent_timestamp_ms,
    });

    let started = Instant::now();
    let handler = ctx.handler.clone();
    let task = AbortOnDrop(tokio::spawn(
        async move { handler.handle(&delivery).await }.instrument(tracing::Span::current()),
    ));
    let finished = supervise(ctx, task, lease).await;
    let elapsed = started.elapsed();
    telemetry::HandlerFinished { elapsed }.emit(&ctx.telemetry);

    match finished {
        Finished::Outcome(Outcome::Done) => {
            delete(ctx, msg);
            telemetry::Succeeded { elapsed }.emit(&ctx.telemetry);
            Disposition::Settled
        }
        Finished::Outcome(Outcome::Retry {
            reason,
            retry_after,
        }) => retry_or_exhaust(ctx, msg, lease, reason, retry_after, false).await,
        Finished::Outcome(Outcome::Fail { code, detail }) => {
            dead_letter(ctx, msg, lease, code, &detail).await
        }
        Finished::Panicked => {
            telemetry::HandlerPanicked.emit(&ctx.telemetry);
            retry_or_exhaust(ctx, msg, lease, "handler panicked", None, true).await
        }
    }
}

/// Waits for the handler while keeping the lease's messages invisible.
async fn supervise(ctx: &Ctx, mut task: AbortOnDrop<Outcome>, lease: &Lease) -> Finished {
    loop {
        let due = lease.next_due();
        let heartbeat = async {
            match due {
                Some(at) => tokio::time::sleep_until(at).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            biased;
            joined = &mut task.0 => {
                return match joined {
                    Ok(outcome) => Finished::Outcome(outcome),
                    Err(e) if e.is_panic() => Finished::Panicked,
                    // Only AbortOnDrop cancels the task, and then nobody is waiting here.
                    Err(_) => Finished::Outcome(Outcome::retry("handler task cancelled")),
                };
            }
            _ = heartbeat => lease.extend(ctx).await,
        }
    }
}

fn now_epoch_ms() -> i64 {
    i64::try_from(time::OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000)
        .unwrap_or(i64::MAX)
}

fn now_rfc3339() -> String {
    time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_else(|_| "1970-01-01T00:00:00Z".to_string())
}

fn delete(ctx: &Ctx, msg: &ReceivedMessage) {
    let req = DeleteRequest {
        receipt: msg.receipt.clone(),
        message_id: msg.message_id.clone(),
    };
    if ctx.deletes.send(req).is_err() {
        tracing::error!("delete queue closed; the message will be redelivered");
    }
}

fn change_visibility(
    ctx: &Ctx,
    msg: &ReceivedMessage,
    timeout: Duration,
    purpose: VisibilityPurpose,
) {
    let req = VisibilityRequest {
        receipt: msg.receipt.clone(),
        message_id: msg.message_id.clone(),
        timeout,
        purpose,
        ack: None,
    };
    if ctx.visibility_tx.send(req).is_err() {
        tracing::error!(
            purpose = purpose.as_str(),
            "visibility queue closed; the message reappears when its visibility expires"
        );
    }
}

fn release(ctx: &Ctx, msg: &ReceivedMessage) {
    change_visibility(ctx, msg, Duration::ZERO, VisibilityPurpose::Release);
}

async fn retry_or_exhaust(
    ctx: &Ctx,
    msg: &ReceivedMessage,
    lease: &Lease,
    reason: &'static str,
    retry_after: Option<Duration>,
    panicked: bool,
) -> Disposition {
    if msg.receive_count >= ctx.cfg.max_attempts {
        let code = if panicked {
            ErrorCode::HandlerPanicked
        } else {
            ErrorCode::RetriesExhausted
        };
        return dead_letter(ctx, msg, lease, code, reason).await;
    }
    retry(ctx, msg, lease, reason, retry_after)
}

fn retry(
    ctx: &Ctx,
    msg: &ReceivedMessage,
    lease: &Lease,
    reason: &'static str,
    retry_after: Option<Duration>,
) -> Disposition {
    let delay = ctx
        .cfg
        .backoff
        .delay_with_hint(msg.receive_count, retry_after, &mut rand::rng());
    // SQS refuses a visibility reaching past 12 h after the receive.
    let delay = delay
        .min(MAX_VISIBILITY.saturating_sub(lease.received_at.elapsed() + Duration::from_secs(1)));
    change_visibility(ctx, msg, delay, VisibilityPurpose::Retry);
    telemetry::Retried { reason, delay }.emit(&ctx.telemetry);
    Disposition::Held
}

/// Send first, delete second: a crash in between leaves a copy in both queues (the handler's
/// idempotency absorbs the redelivery), never in neither.
async fn dead_letter(
    ctx: &Ctx,
    msg: &ReceivedMessage,
    lease: &Lease,
    code: ErrorCode,
    detail: &str,
) -> Disposition {
    let Some(dlq) = &ctx.dlq else {
        telemetry::DeadLetterFailed { code, error: None }.emit(&ctx.telemetry);
        return retry(
            ctx,
            msg,
            lease,
            "no dead-letter queue",
            Some(ctx.cfg.backoff.effective_cap()),
        );
    };
    let now = now_rfc3339();
    let failure = FailureContext {
        worker: &ctx.cfg.worker,
        source_queue: &ctx.telemetry.queue,
        now: &now,
        dlq_fifo: ctx.dlq_fifo,
    };
    let (out, dropped) = dead_letter::build(msg, code, detail, &failure);
    match dlq.send(out).await {
        Ok(_) => {
            delete(ctx, msg);
            telemetry::DeadLettered {
                code,
                dropped_attributes: dropped.len(),
            }
            .emit(&ctx.telemetry);
            Disposition::Settled
        }
        Err(e) => {
            telemetry::DeadLetterFailed {
                code,
                error: Some(&e),
            }
            .emit(&ctx.telemetry);
            retry(ctx, msg, lease, "dead-letter send failed", e.retry_after)
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Heartbeat
// ---------------------------------------------------------------------------------------------

/// The messages of one receive group that this worker still holds, and when their visibility
/// must next be extended. Extending all of them together keeps a FIFO group's waiting messages
/// invisible while an earlier one runs long.
struct Lease {
    received_at: Instant,
    state: Mutex<LeaseState>,
}

struct LeaseState {
    /// (receipt, message id) of messages not yet finished.
    held: Vec<(String, String)>,
    next_due: Option<Instant>,
}

impl Lease {
    fn new(ctx: &Ctx, group: &[ReceivedMessage], received_at: Instant) -> Self {
        let next_due = ctx
            .cfg
            .heartbeat
            .enabled
            .then(|| received_at + ctx.visibility * 2 / 3);
        let held = group
            .iter()
            .map(|m| (m.receipt.clone(), m.message_id.clone()))
            .collect();
        Self {
            received_at,
            state: Mutex::new(LeaseState { held, next_due }),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, LeaseState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn next_due(&self) -> Option<Instant> {
        self.lock().next_due
    }

    fn remove(&self, receipt: &str) {
        self.lock().held.retain(|(r, _)| r != receipt);
    }

    /// One heartbeat: extends every held message by `extend_by` (clamped to the lifetime),
    /// awaiting the batched calls so no extension can land after the outcome's own change.
    async fn extend(&self, ctx: &Ctx) {
        let hb = ctx.cfg.heartbeat;
        let lifetime = hb.max_lifetime.min(MAX_VISIBILITY);
        let remaining = lifetime.saturating_sub(self.received_at.elapsed());
        let by = hb.extend_by.min(remaining);
        let held = {
            let mut state = self.lock();
            if by < Duration::from_secs(1) {
                state.next_due = None;
                drop(state);
                telemetry::HeartbeatStopped {
                    why: "max lifetime reached",
                }
                .emit(&ctx.telemetry);
                return;
            }
            state.held.clone()
        };
        let mut acks = Vec::with_capacity(held.len());
        for (receipt, message_id) in &held {
            let (tx, rx) = oneshot::channel();
            let req = VisibilityRequest {
                receipt: receipt.clone(),
                message_id: message_id.clone(),
                timeout: by,
                purpose: VisibilityPurpose::Heartbeat,
                ack: Some(tx),
            };
            if ctx.visibility_tx.send(req).is_ok() {
                acks.push((receipt.clone(), rx));
            }
        }
        let mut extended = 0usize;
        let mut lost = Vec::new();
        let mut transient = false;
        for (receipt, rx) in acks {
            match rx.await {
                Ok(Ok(())) => extended += 1,
                Ok(Err(code)) if code == RECEIPT_INVALID => lost.push(receipt),
                Ok(Err(_)) | Err(_) => transient = true,
            }
        }
        let mut state = self.lock();
        state.held.retain(|(r, _)| !lost.contains(r));
        // After a transient failure try again soon, well before the current visibility ends.
        let next = if transient && extended == 0 {
            Duration::from_secs(1)
        } else {
            by * 2 / 3
        };
        state.next_due = Some(Instant::now() + next);
        drop(state);
        if !lost.is_empty() {
            telemetry::HeartbeatStopped {
                why: "receipt no longer valid",
            }
            .emit(&ctx.telemetry);
        }
        if extended > 0 {
            telemetry::HeartbeatExtended {
                messages: extended,
                by,
            }
            .emit(&ctx.telemetry);
        }
    }
}
