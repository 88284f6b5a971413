//! Typed events: each writes its log line and updates its metric together. Events take exactly
//! the fields that may be logged: identifiers (message id, error codes, queue, worker), never a
//! body or an attribute value.

use std::time::Duration;

use fleet_core::{ErrorCode, PortError};

use super::Telemetry;
use super::metrics::{Count, Hist};

pub struct ReceiveCompleted {
    pub count: usize,
}
impl ReceiveCompleted {
    pub fn emit(self, t: &Telemetry) {
        t.health.progress();
        t.metrics.count(Count::Received, self.count as u64);
        tracing::trace!(count = self.count, "receive completed");
    }
}

pub struct ReceiveFailed<'a> {
    pub error: &'a PortError,
    pub backoff: Duration,
}
impl ReceiveFailed<'_> {
    pub fn emit(self, t: &Telemetry) {
        t.metrics.count(Count::ReceiveErrors, 1);
        tracing::warn!(queue = %t.queue, error = %self.error, backoff_ms = self.backoff.as_millis() as u64, "receive failed");
    }
}

pub struct MessageStarted {
    pub queue_lag: Duration,
}
impl MessageStarted {
    pub fn emit(self, t: &Telemetry) {
        t.metrics.observe(Hist::QueueLagSeconds, self.queue_lag);
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
        t.metrics.observe(Hist::HandlerSeconds, self.elapsed);
    }
}

pub struct Succeeded {
    pub elapsed: Duration,
}
impl Succeeded {
    pub fn emit(self, t: &Telemetry) {
        t.metrics.count(Count::Succeeded, 1);
        tracing::debug!(
            elapsed_ms = self.elapsed.as_millis() as u64,
            "message handled"
        );
    }
}

pub struct Retried {
    pub reason: &'static str,
    pub delay: Duration,
    /// Retried without handing the message back (a FIFO group with messages behind it).
    pub in_place: bool,
}
impl Retried {
    pub fn emit(self, t: &Telemetry) {
        t.metrics.count(Count::Retried, 1);
        tracing::info!(
            reason = self.reason,
            delay_ms = self.delay.as_millis() as u64,
            in_place = self.in_place,
            "message will be retried"
        );
    }
}

pub struct HandlerPanicked;
impl HandlerPanicked {
    pub fn emit(self, t: &Telemetry) {
        t.metrics.count(Count::Panics, 1);
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
        t.metrics.count(Count::DeadLettered, 1);
        tracing::warn!(code = %self.code, dropped_attributes = self.dropped_attributes, "message dead-lettered");
    }
}

pub struct DeadLetterFailed<'a> {
    pub code: ErrorCode,
    pub error: Option<&'a PortError>,
}
impl DeadLetterFailed<'_> {
    pub fn emit(self, t: &Telemetry) {
        t.metrics.count(Count::DeadLetterSendFailures, 1);
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
        t.metrics.count(Count::Deleted, self.count);
    }
}

/// How a delete of one message ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeleteFailure {
    /// The first attempt failed; the delete is tried once more.
    Retrying,
    /// The receipt is no longer valid (the visibility ran out): the message will be redelivered
    /// and its idempotency key absorbs the repeat.
    StaleReceipt,
    /// The last attempt failed.
    Failed,
}

pub struct DeleteFailed<'a> {
    pub message_id: &'a str,
    pub code: &'a str,
    pub failure: DeleteFailure,
}
impl DeleteFailed<'_> {
    pub fn emit(self, t: &Telemetry) {
        let (message_id, code) = (self.message_id, self.code);
        match self.failure {
            DeleteFailure::Retrying => {
                tracing::warn!(message_id, code, "delete failed; retrying once");
            }
            DeleteFailure::StaleReceipt => {
                t.metrics.count(Count::DeleteFailures, 1);
                tracing::warn!(
                    message_id,
                    code,
                    "delete refused: receipt no longer valid; the message will be redelivered and its idempotency key absorbs the repeat"
                );
            }
            DeleteFailure::Failed => {
                t.metrics.count(Count::DeleteFailures, 1);
                tracing::error!(
                    message_id,
                    code,
                    "delete failed; the message will be redelivered"
                );
            }
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
        t.metrics.count(Count::VisibilityFailures, 1);
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
                t.metrics.count(Count::ReleasedOnShutdown, self.count);
                tracing::info!(count = self.count, "released unstarted message at shutdown");
            }
            ReleaseReason::FifoHold => {
                t.metrics.count(Count::ReleasedFifoHold, self.count);
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
        t.metrics.count(Count::Abandoned, self.count);
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
        t.metrics
            .count(Count::HeartbeatExtensions, self.messages as u64);
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

/// Messages of a lease that SQS no longer lets this worker extend: their visibility lapsed or
/// their receipt is no longer valid. The heartbeat stops for them; a failure their handler then
/// reports is not retried or dead-lettered from here (another receive owns the message).
pub struct LeaseLost<'a> {
    pub messages: usize,
    pub code: &'a str,
}
impl LeaseLost<'_> {
    pub fn emit(self, t: &Telemetry) {
        t.metrics.count(Count::LeasesLost, self.messages as u64);
        tracing::warn!(
            messages = self.messages,
            code = self.code,
            "lease lost: the visibility heartbeat stopped for these messages; the queue may deliver them again"
        );
    }
}

/// A failure of a message whose lease was lost: neither retried nor dead-lettered here.
pub struct ResultDiscarded {
    pub reason: &'static str,
}
impl ResultDiscarded {
    pub fn emit(self, _t: &Telemetry) {
        tracing::warn!(
            reason = self.reason,
            "failure not acted on: the lease was lost and the message belongs to its next receive"
        );
    }
}

pub struct ClaimCheckResolved {
    pub bytes: usize,
}
impl ClaimCheckResolved {
    pub fn emit(self, t: &Telemetry) {
        t.metrics.count(Count::ClaimChecksResolved, 1);
        tracing::debug!(bytes = self.bytes, "claim check resolved");
    }
}
