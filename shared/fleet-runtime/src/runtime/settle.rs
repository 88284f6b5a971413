//! What an outcome does to a message: delete it, put it back after a backoff, or dead-letter
//! it (send first, delete second). Every failure, the claim check's and the handler's, arrives
//! here as one [`Failure`].

use std::time::Duration;

use fleet_core::{ErrorCode, Failure, ReceivedMessage};

use super::Ctx;
use super::lease::Lease;
use crate::backoff::MAX_VISIBILITY;
use crate::batcher::{DeleteRequest, VisibilityPurpose, VisibilityRequest};
use crate::dead_letter::{self, FailureContext};
use crate::fifo::Disposition;
use crate::telemetry;

/// Retry or dead-letter, as the failure says.
pub(super) async fn fail(
    ctx: &Ctx,
    msg: &ReceivedMessage,
    lease: &Lease,
    failure: Failure,
) -> Disposition {
    match failure {
        Failure::Permanent { code, detail } => dead_letter(ctx, msg, lease, code, &detail).await,
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
            retry_or_exhaust(ctx, msg, lease, reason, retry_after, false).await
        }
    }
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

pub(super) async fn retry_or_exhaust(
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

fn now_rfc3339() -> String {
    time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_else(|_| "1970-01-01T00:00:00Z".to_string())
}
