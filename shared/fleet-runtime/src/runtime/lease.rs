//! The visibility heartbeat: a receive group's lease on its messages, extended through the
//! visibility batcher until the handler finishes or the maximum lifetime is reached.

use std::sync::Mutex;
use std::time::Duration;

use fleet_core::ReceivedMessage;
use tokio::sync::oneshot;
use tokio::time::Instant;

use super::Ctx;
use crate::backoff::MAX_VISIBILITY;
use crate::batcher::{RECEIPT_INVALID, VisibilityPurpose, VisibilityRequest};
use crate::telemetry;

/// The messages of one receive group that this worker still holds, and when their visibility
/// must next be extended. Extending all of them together keeps a FIFO group's waiting messages
/// invisible while an earlier one runs long.
pub(super) struct Lease {
    pub(super) received_at: Instant,
    state: Mutex<LeaseState>,
}

struct LeaseState {
    /// (receipt, message id) of messages not yet finished.
    held: Vec<(String, String)>,
    next_due: Option<Instant>,
}

impl Lease {
    pub(super) fn new(ctx: &Ctx, group: &[ReceivedMessage], received_at: Instant) -> Self {
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

    pub(super) fn next_due(&self) -> Option<Instant> {
        self.lock().next_due
    }

    pub(super) fn remove(&self, receipt: &str) {
        self.lock().held.retain(|(r, _)| r != receipt);
    }

    /// One heartbeat: extends every held message by `extend_by` (clamped to the lifetime),
    /// awaiting the batched calls so no extension can land after the outcome's own change.
    pub(super) async fn extend(&self, ctx: &Ctx) {
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
