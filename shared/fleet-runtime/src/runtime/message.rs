//! One message from receive to outcome: its span, the shutdown check, the claim check, the
//! handler in its own task (panics caught) and the heartbeat that keeps it invisible meanwhile.
//! What the outcome then does to the message is [`super::settle`].

use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;

use fleet_core::{Failure, ReceivedMessage, trace_context};
use opentelemetry::trace::SpanContext;
use tokio::sync::OwnedSemaphorePermit;
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tracing::Instrument;

use super::Ctx;
use super::lease::Lease;
use super::settle::{PANICKED, Settle, delete, release, settle_failure};
use crate::claim_check;
use crate::fifo::{self, Disposition};
use crate::handler::{CORRELATION_ATTRIBUTE, Delivery, Outcome, correlation_id};
use crate::otel;
use crate::telemetry::{self, ReleaseReason};

pub(super) async fn process_group(
    ctx: Arc<Ctx>,
    group: Vec<ReceivedMessage>,
    mut slots: Option<OwnedSemaphorePermit>,
    received_at: Instant,
    receive: SpanContext,
) {
    let lease = Lease::new(&ctx, &group, received_at);
    let ctx_ref = &ctx;
    let lease_ref = &lease;
    let receive_ref = &receive;
    let total = group.len();
    let mut position = 0usize;
    let rest = fifo::run_in_order(group, |msg| {
        let slot = slots.as_mut().and_then(|s| s.split(1));
        position += 1;
        // Only a FIFO group with messages behind this one retries it in place: releasing
        // them would spend a receive of each (see `handle_message`).
        let in_place = ctx_ref.fifo && position < total;
        async move {
            let d = process_one(ctx_ref, msg, lease_ref, in_place, receive_ref).await;
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

async fn process_one(
    ctx: &Ctx,
    msg: ReceivedMessage,
    lease: &Lease,
    in_place: bool,
    receive: &SpanContext,
) -> Disposition {
    // Producer text: kept only when plain and bounded, else hashed (`correlation_id`).
    let correlation_id = correlation_id(
        msg.attributes
            .get(CORRELATION_ATTRIBUTE)
            .and_then(|v| v.as_str()),
        &msg.message_id,
    );
    // The CONSUMER span `process <queue>` (crate::otel): a child of the producer's span when
    // the message names one, linked to the receive that brought it.
    let span = tracing::info_span!(
        "message",
        worker = %ctx.cfg.worker,
        queue = %ctx.telemetry.queue,
        message_id = %msg.message_id,
        receive_count = msg.receive_count,
        correlation_id = %correlation_id,
        otel.name = %format_args!("process {}", ctx.telemetry.queue),
        otel.kind = "consumer",
    );
    if otel::enabled() {
        use tracing_opentelemetry::OpenTelemetrySpanExt as _;
        if let Some(producer) = trace_context::extract(&msg.attributes, msg.trace_header.as_deref())
        {
            otel::set_remote_parent(&span, producer);
        }
        otel::link(&span, receive.clone());
        span.set_attribute("messaging.system", otel::SYSTEM_SQS);
        span.set_attribute("messaging.destination.name", ctx.telemetry.queue.clone());
        span.set_attribute("messaging.message.id", msg.message_id.clone());
        span.set_attribute("messaging.operation.type", "process");
        span.set_attribute("messaging.operation.name", "process");
    }
    let receipt = msg.receipt.clone();
    let disposition = tokio::select! {
        biased;
        d = handle_message(ctx, &msg, lease, correlation_id, in_place).instrument(span.clone()) => d,
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

/// Runs one message to its outcome. A message received is processed even once shutdown has
/// begun (the drain deadline bounds that): handing it back would spend one of its receives, and
/// enough of those move it to the DLQ untried. A retryable failure of a FIFO group's message
/// with more of the group behind it is retried in place, under the lease, for the same reason.
async fn handle_message(
    ctx: &Ctx,
    msg: &ReceivedMessage,
    lease: &Lease,
    correlation_id: String,
    in_place: bool,
) -> Disposition {
    let lag_ms = now_epoch_ms().saturating_sub(msg.sent_timestamp_ms).max(0);
    telemetry::MessageStarted {
        queue_lag: Duration::from_millis(lag_ms.unsigned_abs()),
    }
    .emit(&ctx.telemetry);

    let mut attempt = msg.receive_count.max(1);
    loop {
        let failure = match attempt_once(ctx, msg, lease, &correlation_id, attempt).await {
            Attempted::Done => {
                delete(ctx, msg);
                return Disposition::Settled;
            }
            Attempted::Failed(failure) => failure,
        };
        match settle_failure(ctx, msg, lease, failure, attempt, in_place).await {
            Settle::Now(d) => return d,
            Settle::RetryInPlace => attempt = attempt.saturating_add(1),
        }
    }
}

enum Attempted {
    Done,
    Failed(Failure),
}

/// One try: the claim check, then the handler in its own task, both under the lease.
async fn attempt_once(
    ctx: &Ctx,
    msg: &ReceivedMessage,
    lease: &Lease,
    correlation_id: &str,
    attempt: u32,
) -> Attempted {
    let resolved = lease
        .while_held(
            ctx,
            claim_check::resolve(
                &msg.body,
                &msg.attributes,
                ctx.backend.as_ref(),
                ctx.cfg.max_body_bytes,
            ),
        )
        .await;
    let body = match resolved {
        Ok(Some(resolved)) => {
            telemetry::ClaimCheckResolved {
                bytes: resolved.len(),
            }
            .emit(&ctx.telemetry);
            resolved
        }
        Ok(None) => msg.body.clone(),
        Err(failure) => return Attempted::Failed(failure),
    };
    let delivery = Arc::new(Delivery {
        message_id: msg.message_id.clone(),
        body,
        attributes: msg.attributes.clone(),
        receive_count: msg.receive_count,
        attempt,
        group_id: msg.group_id.clone(),
        correlation_id: correlation_id.to_string(),
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
            telemetry::Succeeded { elapsed }.emit(&ctx.telemetry);
            Attempted::Done
        }
        Finished::Outcome(Outcome::Failed(failure)) => Attempted::Failed(failure),
        Finished::Panicked => {
            telemetry::HandlerPanicked.emit(&ctx.telemetry);
            Attempted::Failed(Failure::Retryable {
                reason: PANICKED,
                detail: String::new(),
                retry_after: None,
            })
        }
    }
}

/// Waits for the handler while keeping the lease's messages invisible.
async fn supervise(ctx: &Ctx, mut task: AbortOnDrop<Outcome>, lease: &Lease) -> Finished {
    match lease.while_held(ctx, &mut task.0).await {
        Ok(outcome) => Finished::Outcome(outcome),
        Err(e) if e.is_panic() => Finished::Panicked,
        // Only AbortOnDrop cancels the task, and then nobody is waiting here.
        Err(_) => Finished::Outcome(Outcome::retry("handler task cancelled")),
    }
}

fn now_epoch_ms() -> i64 {
    i64::try_from(time::OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000)
        .unwrap_or(i64::MAX)
}
