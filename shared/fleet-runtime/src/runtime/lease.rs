//! The visibility heartbeat: a receive group's lease on its messages, extended through the
//! visibility batcher while the worker still holds them — during the handler, the claim-check
//! fetch, an in-place retry's wait and a dead-letter send — and never past SQS's 12-hour limit,
//! which counts from the moment the receive was sent.

use std::future::Future;
use std::sync::Mutex;
use std::time::Duration;

use fleet_core::ReceivedMessage;
use tokio::sync::oneshot;
use tokio::time::Instant;

use super::Ctx;
use crate::backoff::MAX_VISIBILITY;
use crate::batcher::{VisibilityPurpose, VisibilityRequest, lease_lost};
use crate::telemetry;

/// Kept between the lease's end as computed here and the limit SQS enforces: the batcher may
/// hold a request for its linger, and the request still has to travel.
const LEASE_MARGIN: Duration = Duration::from_secs(1);
/// First wait after a heartbeat round that extended nothing; doubles per failed round.
const HEARTBEAT_RETRY_FIRST: Duration = Duration::from_secs(1);

/// The messages of one receive group that this worker still holds, and when their visibility
/// must next be extended. Extending all of them together keeps a FIFO group's waiting messages
/// invisible while an earlier one runs long.
pub(super) struct Lease {
    /// When the receive that returned these messages was sent (not when it answered): SQS's
    /// 12-hour limit on a message's visibility counts from its receipt of the request.
    received_at: Instant,
    state: Mutex<LeaseState>,
}

struct LeaseState {
    /// (receipt, message id) of messages not yet finished.
    held: Vec<(String, String)>,
    /// Receipts whose lease was lost (see [`lease_lost`]).
    lost: Vec<String>,
    next_due: Option<Instant>,
    /// Heartbeat rounds in a row that extended nothing (transient errors).
    failed_rounds: u32,
}

impl Lease {
    pub(super) fn new(ctx: &Ctx, group: &[ReceivedMessage], received_at: Instant) -> Self {
        let next_due = ctx
            .cfg
            .heartbeat
            .enabled
            .then(|| Instant::now() + ctx.visibility * 2 / 3);
        let held = group
            .iter()
            .map(|m| (m.receipt.clone(), m.message_id.clone()))
            .collect();
        Self {
            received_at,
            state: Mutex::new(LeaseState {
                held,
                lost: Vec::new(),
                next_due,
                failed_rounds: 0,
            }),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, LeaseState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The last instant any visibility of this receive may reach: the configured lifetime
    /// (never above SQS's 12 hours) from the receive's request, less a margin for the batcher's
    /// linger and the request's travel.
    fn end(&self, ctx: &Ctx) -> Instant {
        let lifetime = ctx.cfg.heartbeat.max_lifetime.min(MAX_VISIBILITY);
        let margin = LEASE_MARGIN + ctx.cfg.delete_linger;
        self.received_at + lifetime.saturating_sub(margin)
    }

    /// How much longer any visibility change of this receive may reach.
    pub(super) fn remaining(&self, ctx: &Ctx) -> Duration {
        self.end(ctx).saturating_duration_since(Instant::now())
    }

    pub(super) fn next_due(&self) -> Option<Instant> {
        self.lock().next_due
    }

    pub(super) fn remove(&self, receipt: &str) {
        self.lock().held.retain(|(r, _)| r != receipt);
    }

    /// Whether SQS told a heartbeat that this receipt's lease is gone.
    pub(super) fn is_lost(&self, receipt: &str) -> bool {
        self.lock().lost.iter().any(|r| r == receipt)
    }

    /// Runs `work` while keeping the held messages invisible: every heartbeat that falls due
    /// before `work` ends is sent (and awaited) in between.
    pub(super) async fn while_held<F: Future>(&self, ctx: &Ctx, work: F) -> F::Output {
        tokio::pin!(work);
        loop {
            let due = self.next_due();
            let heartbeat = async {
                match due {
                    Some(at) => tokio::time::sleep_until(at).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                biased;
                out = &mut work => return out,
                () = heartbeat => self.extend(ctx).await,
            }
        }
    }

    /// One heartbeat: extends every held message by `extend_by` (clamped to the lease's end),
    /// awaiting the batched calls so no extension can land after the outcome's own change.
    pub(super) async fn extend(&self, ctx: &Ctx) {
        let by = ctx.cfg.heartbeat.extend_by.min(self.remaining(ctx));
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
        let mut lost_code = String::new();
        let mut transient = false;
        for (receipt, rx) in acks {
            match rx.await {
                Ok(Ok(())) => extended += 1,
                Ok(Err(code)) if lease_lost(&code) => {
                    lost.push(receipt);
                    lost_code = code;
                }
                Ok(Err(_)) | Err(_) => transient = true,
            }
        }
        let mut state = self.lock();
        state.held.retain(|(r, _)| !lost.contains(r));
        state.lost.extend(lost.iter().cloned());
        state.failed_rounds = if transient && extended == 0 {
            state.failed_rounds.saturating_add(1)
        } else {
            0
        };
        let next = match state.failed_rounds {
            0 => by * 2 / 3,
            n => heartbeat_retry_delay(n, ctx.cfg.heartbeat.extend_by),
        };
        state.next_due = (!state.held.is_empty()).then(|| Instant::now() + next);
        drop(state);
        if !lost.is_empty() {
            telemetry::LeaseLost {
                messages: lost.len(),
                code: &lost_code,
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

/// The wait before the next heartbeat after `failed_rounds` rounds in a row extended nothing:
/// 1 s, doubling, at most a third of an extension (so a retry still lands before the visibility
/// the last successful extension set runs out), never below 1 s.
pub(super) fn heartbeat_retry_delay(failed_rounds: u32, extend_by: Duration) -> Duration {
    let doubled =
        HEARTBEAT_RETRY_FIRST.saturating_mul(1u32 << failed_rounds.clamp(1, 16).saturating_sub(1));
    doubled.min(extend_by / 3).max(HEARTBEAT_RETRY_FIRST)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn item2_heartbeat_errors_back_off_instead_of_retrying_every_second() {
        let by = Duration::from_secs(60);
        let delays: Vec<u64> = (1..=7)
            .map(|n| heartbeat_retry_delay(n, by).as_secs())
            .collect();
        assert_eq!(delays, vec![1, 2, 4, 8, 16, 20, 20]);
        // A short extension still retries at least once a second, never faster.
        assert_eq!(
            heartbeat_retry_delay(5, Duration::from_secs(2)),
            Duration::from_secs(1)
        );
        assert_eq!(heartbeat_retry_delay(u32::MAX, by), Duration::from_secs(20));
    }
}
