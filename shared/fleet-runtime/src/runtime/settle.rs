//! What an outcome does to a message: delete it, put it back after a backoff, or dead-letter
//! it (send first, delete second). Every failure, the claim check's and the handler's, arrives
//! here as one [`Failure`].

use std::time::Duration;

use fleet_core::{ErrorCode, Failure, ReceivedMessage};

use super::Ctx;
use super::lease::Lease;
use crate::batcher::{DeleteRequest, VisibilityPurpose, VisibilityRequest};
use crate::dead_letter::{self, FailureContext};
use crate::fifo::Disposition;
use crate::telemetry;

/// The reason a panicked handler's attempt is retried with (and dead-lettered under
/// `HANDLER_PANICKED` once the attempts are spent).
pub(super) const PANICKED: &str = "handler panicked";

/// What a failed attempt leads to.
pub(super) enum Settle {
    /// The message is dealt with (dead-lettered, put back, or given up with the lease).
    Now(Disposition),
    /// Its backoff has been waited out under the lease: try again in place.
    RetryInPlace,
}

/// Retry or dead-letter, as the failure says. `attempt` counts this receive's in-place retries
/// on top of the receive count; `in_place` says the message may be retried without being handed
/// back (a FIFO group with messages behind it).
pub(super) async fn settle_failure(
    ctx: &Ctx,
    msg: &ReceivedMessage,
    lease: &Lease,
    failure: Failure,
    attempt: u32,
    in_place: bool,
) -> Settle {
    if lease.is_lost(&msg.receipt) {
        // The message's visibility lapsed: a later receive owns it, and acting on this failure
        // (a DLQ copy, a visibility change) would race that receive. It was counted as lost.
        telemetry::ResultDiscarded {
            reason: match &failure {
                Failure::Retryable { reason, .. } => reason,
                Failure::Permanent { code, .. } => code.as_str(),
            },
        }
        .emit(&ctx.telemetry);
        return Settle::Now(Disposition::Held);
    }
    let (reason, retry_after) = match failure {
        Failure::Permanent { code, detail } => {
            return Settle::Now(dead_letter(ctx, msg, lease, code, &detail).await);
        }
        Failure::Retryable {
            reason,
            detail,
            retry_after,
        } => {
            // The one warn line of a retried failure (handlers no longer log their own); the
            // detail is an adapter's words or a fixed string, never message data.
            if !detail.is_empty() {
                tracing::warn!(reason, detail = %detail, "failed; will retry");
            }
            (reason, retry_after)
        }
    };
    if attempt >= ctx.cfg.max_attempts {
        let code = if reason == PANICKED {
            ErrorCode::HandlerPanicked
        } else {
            ErrorCode::RetriesExhausted
        };
        return Settle::Now(dead_letter(ctx, msg, lease, code, reason).await);
    }
    let delay = retry_delay(ctx, lease, attempt, retry_after);
    // In place only while the wait and a next try fit in the lease, and not during a drain.
    let fits = delay + ctx.visibility < lease.remaining(ctx);
    if !(in_place && fits) || ctx.shutdown.is_cancelled() {
        return Settle::Now(retry(ctx, msg, delay, reason));
    }
    telemetry::Retried {
        reason,
        delay,
        in_place: true,
    }
    .emit(&ctx.telemetry);
    let until = tokio::time::Instant::now() + delay;
    let waited = lease
        .while_held(ctx, async {
            tokio::select! {
                biased;
                () = ctx.shutdown.cancelled() => false,
                () = tokio::time::sleep_until(until) => true,
            }
        })
        .await;
    if waited {
        return Settle::RetryInPlace;
    }
    // Shutdown during the wait: hand it back for the rest of its backoff.
    let left = until.saturating_duration_since(tokio::time::Instant::now());
    change_visibility(ctx, msg, left, VisibilityPurpose::Retry);
    Settle::Now(Disposition::Held)
}

pub(super) fn delete(ctx: &Ctx, msg: &ReceivedMessage) {
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

pub(super) fn release(ctx: &Ctx, msg: &ReceivedMessage) {
    change_visibility(ctx, msg, Duration::ZERO, VisibilityPurpose::Release);
}

/// The backoff for `attempt`, kept inside the lease (SQS refuses a visibility reaching past
/// 12 hours after the receive).
fn retry_delay(ctx: &Ctx, lease: &Lease, attempt: u32, retry_after: Option<Duration>) -> Duration {
    let delay = ctx
        .cfg
        .backoff
        .delay_with_hint(attempt, retry_after, &mut rand::rng());
    delay.min(lease.remaining(ctx))
}

/// Puts the message back with `delay` as its visibility.
fn retry(ctx: &Ctx, msg: &ReceivedMessage, delay: Duration, reason: &'static str) -> Disposition {
    change_visibility(ctx, msg, delay, VisibilityPurpose::Retry);
    telemetry::Retried {
        reason,
        delay,
        in_place: false,
    }
    .emit(&ctx.telemetry);
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
        let delay = ctx.cfg.backoff.effective_cap().min(lease.remaining(ctx));
        return retry(ctx, msg, delay, "no dead-letter queue");
    };
    let now = now_rfc3339();
    let failure = FailureContext {
        worker: &ctx.cfg.worker,
        source_queue: &ctx.telemetry.queue,
        now: &now,
        dlq_fifo: ctx.dlq_fifo,
    };
    let (out, dropped) = dead_letter::build(msg, code, detail, &failure);
    // The copy may be large and the DLQ slow: the source message stays invisible meanwhile.
    match lease.while_held(ctx, dlq.send(out)).await {
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
            let delay = match e.retry_after {
                Some(after) => after.min(lease.remaining(ctx)),
                None => retry_delay(ctx, lease, msg.receive_count, None),
            };
            retry(ctx, msg, delay, "dead-letter send failed")
        }
    }
}

fn now_rfc3339() -> String {
    time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_else(|_| "1970-01-01T00:00:00Z".to_string())
}
