//! Background batchers for receipt operations: deletes (DeleteMessageBatch) and visibility
//! changes (ChangeMessageVisibilityBatch, used for retries, releases and heartbeats). Each
//! collects up to 10 requests, waits at most a linger for companions, and sends the batch on a
//! task of its own so one slow call does not hold the next batch. Closing the channel drains
//! what is queued before the task ends, which is how shutdown flushes pending deletes.

use std::sync::Arc;
use std::time::Duration;

use fleet_core::{BatchResult, MessageQueue};
use tokio::sync::{Semaphore, mpsc, oneshot};
use tokio::task::JoinHandle;
use tokio_util::task::TaskTracker;

use crate::telemetry::{self, DeleteFailure, Telemetry};

/// SQS batch calls take at most 10 entries.
pub const MAX_BATCH: usize = 10;
/// Batch calls in flight at once per batcher.
const MAX_FLIGHTS: usize = 8;
/// The per-entry code SQS returns for a receipt that is no longer valid. Classified here (and in
/// the heartbeat): telemetry is told what happened, not which SQS code it was.
pub const RECEIPT_INVALID: &str = "ReceiptHandleIsInvalid";

/// Whether a per-entry visibility error means the lease on that message is gone: SQS answers
/// `ReceiptHandleIsInvalid` for a receipt it does not know, `MessageNotInflight` for a message
/// whose visibility already lapsed, and `InvalidParameterValue` for an expired receipt or an
/// extension past the 12-hour limit. None of them gets better by trying again.
pub fn lease_lost(code: &str) -> bool {
    matches!(
        code,
        RECEIPT_INVALID | "MessageNotInflight" | "InvalidParameterValue"
    )
}

/// Waits for a first item, then gathers more until `max` or until `linger` has passed since the
/// first. `None` once the channel is closed and empty.
pub(crate) async fn next_batch<T>(
    rx: &mut mpsc::UnboundedReceiver<T>,
    linger: Duration,
    max: usize,
) -> Option<Vec<T>> {
    let first = rx.recv().await?;
    let mut batch = Vec::with_capacity(max);
    batch.push(first);
    let deadline = tokio::time::Instant::now() + linger;
    while batch.len() < max {
        // Take what is already queued without touching the timer.
        match rx.try_recv() {
            Ok(item) => {
                batch.push(item);
                continue;
            }
            Err(mpsc::error::TryRecvError::Disconnected) => break,
            Err(mpsc::error::TryRecvError::Empty) => {}
        }
        match tokio::time::timeout_at(deadline, rx.recv()).await {
            Ok(Some(item)) => batch.push(item),
            Ok(None) | Err(_) => break,
        }
    }
    Some(batch)
}

// ---------------------------------------------------------------------------------------------
// Deletes
// ---------------------------------------------------------------------------------------------

#[derive(Debug)]
pub(crate) struct DeleteRequest {
    pub receipt: String,
    pub message_id: String,
}

pub(crate) fn spawn_deleter(
    queue: Arc<dyn MessageQueue>,
    linger: Duration,
    telemetry: Arc<Telemetry>,
) -> (mpsc::UnboundedSender<DeleteRequest>, JoinHandle<()>) {
    let (tx, mut rx) = mpsc::unbounded_channel::<DeleteRequest>();
    let handle = tokio::spawn(async move {
        let flights = TaskTracker::new();
        let limit = Arc::new(Semaphore::new(MAX_FLIGHTS));
        while let Some(batch) = next_batch(&mut rx, linger, MAX_BATCH).await {
            let Ok(permit) = limit.clone().acquire_owned().await else {
                break;
            };
            let (queue, telemetry) = (queue.clone(), telemetry.clone());
            flights.spawn(async move {
                flush_deletes(queue.as_ref(), batch, &telemetry).await;
                drop(permit);
            });
        }
        flights.close();
        flights.wait().await;
    });
    (tx, handle)
}

async fn flush_deletes(queue: &dyn MessageQueue, batch: Vec<DeleteRequest>, telemetry: &Telemetry) {
    let mut pending = batch;
    // Two attempts: a failure other than a stale receipt is retried once, then reported.
    for attempt in 0..2 {
        let last_attempt = attempt == 1;
        let receipts: Vec<String> = pending.iter().map(|d| d.receipt.clone()).collect();
        let mut retry = Vec::new();
        match queue.delete_batch(&receipts).await {
            Ok(result) => {
                let failures = per_entry(&result, pending.len());
                let mut deleted = 0u64;
                for (req, failure) in pending.into_iter().zip(failures) {
                    match failure {
                        None => deleted += 1,
                        // Our visibility ran out and the message may be redelivered; the
                        // handler's idempotency key makes the repeat harmless.
                        Some((code, _)) if code == RECEIPT_INVALID => telemetry::DeleteFailed {
                            message_id: &req.message_id,
                            code: &code,
                            failure: DeleteFailure::StaleReceipt,
                        }
                        .emit(telemetry),
                        Some((code, sender_fault)) if sender_fault || last_attempt => {
                            telemetry::DeleteFailed {
                                message_id: &req.message_id,
                                code: &code,
                                failure: DeleteFailure::Failed,
                            }
                            .emit(telemetry)
                        }
                        Some((code, _)) => {
                            telemetry::DeleteFailed {
                                message_id: &req.message_id,
                                code: &code,
                                failure: DeleteFailure::Retrying,
                            }
                            .emit(telemetry);
                            retry.push(req);
                        }
                    }
                }
                telemetry::Deleted { count: deleted }.emit(telemetry);
            }
            Err(e) => {
                let last = last_attempt || !e.is_retryable();
                for req in &pending {
                    telemetry::DeleteFailed {
                        message_id: &req.message_id,
                        code: e.kind.as_str(),
                        failure: if last {
                            DeleteFailure::Failed
                        } else {
                            DeleteFailure::Retrying
                        },
                    }
                    .emit(telemetry);
                }
                if !last {
                    retry = pending;
                }
            }
        }
        if retry.is_empty() {
            return;
        }
        pending = retry;
    }
}

/// Per request index: the failure code and whether retrying is pointless.
fn per_entry(result: &BatchResult, len: usize) -> Vec<Option<(String, bool)>> {
    let mut failures: Vec<Option<(String, bool)>> = vec![None; len];
    for f in &result.failed {
        if let Some(slot) = failures.get_mut(f.index) {
            *slot = Some((f.code.clone(), f.sender_fault || lease_lost(&f.code)));
        }
    }
    failures
}

// ---------------------------------------------------------------------------------------------
// Visibility changes
// ---------------------------------------------------------------------------------------------

/// Why the visibility of a message is changed; bounded label for logs and metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum VisibilityPurpose {
    Retry,
    Release,
    Heartbeat,
}

impl VisibilityPurpose {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Retry => "retry",
            Self::Release => "release",
            Self::Heartbeat => "heartbeat",
        }
    }
}

/// The per-entry failure code, or the error kind when the whole call failed.
pub(crate) type VisibilityAck = Result<(), String>;

#[derive(Debug)]
pub(crate) struct VisibilityRequest {
    pub receipt: String,
    pub message_id: String,
    pub timeout: Duration,
    pub purpose: VisibilityPurpose,
    pub ack: Option<oneshot::Sender<VisibilityAck>>,
}

pub(crate) fn spawn_visibility(
    queue: Arc<dyn MessageQueue>,
    linger: Duration,
    telemetry: Arc<Telemetry>,
) -> (mpsc::UnboundedSender<VisibilityRequest>, JoinHandle<()>) {
    let (tx, mut rx) = mpsc::unbounded_channel::<VisibilityRequest>();
    let handle = tokio::spawn(async move {
        let flights = TaskTracker::new();
        let limit = Arc::new(Semaphore::new(MAX_FLIGHTS));
        while let Some(batch) = next_batch(&mut rx, linger, MAX_BATCH).await {
            let Ok(permit) = limit.clone().acquire_owned().await else {
                break;
            };
            let (queue, telemetry) = (queue.clone(), telemetry.clone());
            flights.spawn(async move {
                flush_visibility(queue.as_ref(), batch, &telemetry).await;
                drop(permit);
            });
        }
        flights.close();
        flights.wait().await;
    });
    (tx, handle)
}

async fn flush_visibility(
    queue: &dyn MessageQueue,
    batch: Vec<VisibilityRequest>,
    telemetry: &Telemetry,
) {
    let mut pending: Vec<VisibilityRequest> = batch;
    for attempt in 0..2 {
        let entries: Vec<(String, Duration)> = pending
            .iter()
            .map(|r| (r.receipt.clone(), r.timeout))
            .collect();
        let last_attempt = attempt == 1;
        let mut retry = Vec::new();
        match queue.change_visibility_batch(&entries).await {
            Ok(result) => {
                let failures = per_entry(&result, pending.len());
                for (req, failure) in pending.into_iter().zip(failures) {
                    match failure {
                        None => {
                            if let Some(ack) = req.ack {
                                let _ = ack.send(Ok(()));
                            }
                        }
                        Some((code, hopeless)) if hopeless || last_attempt => {
                            telemetry::VisibilityFailed {
                                message_id: &req.message_id,
                                purpose: req.purpose.as_str(),
                                code: &code,
                            }
                            .emit(telemetry);
                            if let Some(ack) = req.ack {
                                let _ = ack.send(Err(code));
                            }
                        }
                        Some(_) => retry.push(req),
                    }
                }
            }
            Err(e) if e.is_retryable() && !last_attempt => retry = pending,
            Err(e) => {
                for req in pending {
                    telemetry::VisibilityFailed {
                        message_id: &req.message_id,
                        purpose: req.purpose.as_str(),
                        code: e.kind.as_str(),
                    }
                    .emit(telemetry);
                    if let Some(ack) = req.ack {
                        let _ = ack.send(Err(e.kind.as_str().to_string()));
                    }
                }
            }
        }
        if retry.is_empty() {
            return;
        }
        pending = retry;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn batches_fill_to_ten_or_end_at_the_linger() {
        let (tx, mut rx) = mpsc::unbounded_channel();
        for i in 0..23 {
            tx.send(i).unwrap();
        }
        assert_eq!(
            next_batch(&mut rx, Duration::from_millis(20), 10)
                .await
                .unwrap()
                .len(),
            10
        );
        assert_eq!(
            next_batch(&mut rx, Duration::from_millis(20), 10)
                .await
                .unwrap()
                .len(),
            10
        );
        let start = tokio::time::Instant::now();
        let last = next_batch(&mut rx, Duration::from_millis(20), 10)
            .await
            .unwrap();
        assert_eq!(last, vec![20, 21, 22]);
        assert_eq!(start.elapsed(), Duration::from_millis(20));
        drop(tx);
        assert!(
            next_batch(&mut rx, Duration::from_millis(20), 10)
                .await
                .is_none()
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_late_item_joins_the_batch_within_the_linger() {
        let (tx, mut rx) = mpsc::unbounded_channel();
        tx.send(1).unwrap();
        let tx2 = tx.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(5)).await;
            tx2.send(2).unwrap();
            tokio::time::sleep(Duration::from_millis(50)).await;
            tx2.send(3).unwrap();
        });
        assert_eq!(
            next_batch(&mut rx, Duration::from_millis(20), 10)
                .await
                .unwrap(),
            vec![1, 2]
        );
        assert_eq!(
            next_batch(&mut rx, Duration::from_millis(20), 10)
                .await
                .unwrap(),
            vec![3]
        );
    }
}
