//! Batched event publishing. Concurrent handlers each publish one or two events per message;
//! sending each in its own PutEvents call would cost a request per event. The publisher queues
//! entries, sends up to 10 per call after a short linger, retries failed entries with `backon`
//! (exponential with jitter, bounded), and resolves each caller's future with its own entry's
//! fate.
//!
//! A request is also bounded by size: its entries' sizes, computed as EventBridge documents
//! ([`BusEvent::entry_size`]), add up to less than [`MAX_PUT_EVENTS_BYTES`]; a gathered batch
//! that would not is split in order. An event that alone reaches the limit is never sent: its
//! caller gets [`PortError::rejected`] with `EVENT_TOO_LARGE`, and the other events of its
//! batch go on.

use std::sync::Arc;
use std::time::Duration;

use backon::{BackoffBuilder, ExponentialBuilder};
use fleet_core::{
    BusEvent, ErrorCode, ErrorKind, EventBus, MAX_PUT_EVENTS_BYTES, PortError, trace_context,
};
use tokio::sync::{Semaphore, mpsc, oneshot};
use tokio_util::task::TaskTracker;
use tracing::Instrument as _;

use crate::batcher::{MAX_BATCH, next_batch};
use crate::otel;

/// Default linger before a partial batch is sent.
pub const DEFAULT_LINGER: Duration = Duration::from_millis(10);
const MAX_FLIGHTS: usize = 8;

type Reply = oneshot::Sender<Result<(), PortError>>;

/// Batches PutEvents across concurrent handlers. Cheap to share behind an `Arc`.
pub struct EventPublisher {
    tx: mpsc::UnboundedSender<(BusEvent, Reply)>,
    /// The bus's id, for the producer spans.
    bus: String,
}

impl std::fmt::Debug for EventPublisher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EventPublisher").finish_non_exhaustive()
    }
}

impl EventPublisher {
    /// Starts the batching task on the current Tokio runtime. It ends when the publisher is
    /// dropped and the queued entries are sent.
    pub fn new(bus: Arc<dyn EventBus>, linger: Duration) -> Self {
        Self::with_retry(bus, linger, default_retry())
    }

    /// As [`Self::new`] with an explicit retry schedule for failed entries.
    pub fn with_retry(bus: Arc<dyn EventBus>, linger: Duration, retry: ExponentialBuilder) -> Self {
        let (tx, mut rx) = mpsc::unbounded_channel::<(BusEvent, Reply)>();
        let id = bus.id().to_string();
        tokio::spawn(async move {
            let flights = TaskTracker::new();
            let limit = Arc::new(Semaphore::new(MAX_FLIGHTS));
            'gather: while let Some(batch) = next_batch(&mut rx, linger, MAX_BATCH).await {
                for request in split_by_size(batch) {
                    let Ok(permit) = limit.clone().acquire_owned().await else {
                        break 'gather;
                    };
                    let bus = bus.clone();
                    flights.spawn(async move {
                        send_with_retry(bus.as_ref(), request, retry).await;
                        drop(permit);
                    });
                }
            }
            flights.close();
            flights.wait().await;
        });
        Self { tx, bus: id }
    }

    /// Resolves when this event is accepted by the bus, or with the error that finally failed it.
    /// The wait is a PRODUCER span `send <bus>`, whose context the event carries as its
    /// `TraceHeader` (unless the caller set one).
    pub async fn publish(&self, mut event: BusEvent) -> Result<(), PortError> {
        if !otel::enabled() {
            return self.enqueue(event).await;
        }
        let span = otel::producer_span(otel::SYSTEM_EVENTBRIDGE, &self.bus);
        if event.trace_header.is_none() {
            event.trace_header = trace_context::xray_header(&otel::span_context(&span));
        }
        self.enqueue(event).instrument(span).await
    }

    async fn enqueue(&self, event: BusEvent) -> Result<(), PortError> {
        let (reply, rx) = oneshot::channel();
        self.tx.send((event, reply)).map_err(|_| {
            PortError::new(
                ErrorKind::Other,
                "publisher.publish",
                "event publisher has stopped",
            )
        })?;
        rx.await.unwrap_or_else(|_| {
            Err(PortError::new(
                ErrorKind::Other,
                "publisher.publish",
                "event publisher dropped the entry",
            ))
        })
    }
}

/// 50 ms doubling to 2 s, jittered, at most 6 retries: about 5 s in the worst case, short
/// enough that a handler's message visibility is not at risk.
pub fn default_retry() -> ExponentialBuilder {
    ExponentialBuilder::default()
        .with_min_delay(Duration::from_millis(50))
        .with_max_delay(Duration::from_secs(2))
        .with_max_times(6)
        .with_jitter()
}

/// Splits a batch, in order, into requests whose entry sizes add up to less than
/// [`MAX_PUT_EVENTS_BYTES`]; an event that alone does not fit is answered `EVENT_TOO_LARGE`
/// here and sent nowhere.
fn split_by_size(batch: Vec<(BusEvent, Reply)>) -> Vec<Vec<(BusEvent, Reply)>> {
    let mut requests = Vec::new();
    let mut current = Vec::new();
    let mut current_size = 0;
    for (event, reply) in batch {
        let size = event.entry_size();
        if size >= MAX_PUT_EVENTS_BYTES {
            tracing::error!(
                detail_type = %event.detail_type,
                size,
                "event too large for PutEvents; not sent"
            );
            let _ = reply.send(Err(PortError::rejected(
                "events.PutEvents",
                ErrorCode::EventTooLarge,
                format!("entry of {size} bytes is not below the {MAX_PUT_EVENTS_BYTES}-byte limit"),
            )));
            continue;
        }
        if !current.is_empty() && current_size + size >= MAX_PUT_EVENTS_BYTES {
            requests.push(std::mem::take(&mut current));
            current_size = 0;
        }
        current_size += size;
        current.push((event, reply));
    }
    if !current.is_empty() {
        requests.push(current);
    }
    requests
}

async fn send_with_retry(
    bus: &dyn EventBus,
    batch: Vec<(BusEvent, Reply)>,
    retry: ExponentialBuilder,
) {
    let mut delays = retry.build();
    let mut pending = batch;
    loop {
        let events: Vec<BusEvent> = pending.iter().map(|(e, _)| e.clone()).collect();
        let mut again = Vec::new();
        let mut last_error: Option<PortError> = None;
        match bus.put_events(&events).await {
            Ok(result) => {
                let mut failures: Vec<Option<(String, bool)>> = vec![None; pending.len()];
                for f in &result.failed {
                    if let Some(slot) = failures.get_mut(f.index) {
                        *slot = Some((f.code.clone(), f.sender_fault));
                    }
                }
                for ((event, reply), failure) in pending.into_iter().zip(failures) {
                    match failure {
                        None => {
                            let _ = reply.send(Ok(()));
                        }
                        Some((code, true)) => {
                            tracing::error!(code = %code, detail_type = %event.detail_type, "event rejected by the bus");
                            let _ = reply.send(Err(PortError::invalid(
                                "events.PutEvents",
                                format!("entry rejected: {code}"),
                            )));
                        }
                        Some((code, false)) => {
                            last_error = Some(PortError::transient(
                                "events.PutEvents",
                                format!("entry failed: {code}"),
                            ));
                            again.push((event, reply));
                        }
                    }
                }
            }
            Err(e) if e.is_retryable() => {
                last_error = Some(e);
                again = pending;
            }
            Err(e) => {
                for (_, reply) in pending {
                    let _ = reply.send(Err(e.clone()));
                }
                return;
            }
        }
        if again.is_empty() {
            return;
        }
        let Some(delay) = delays.next() else {
            let e = last_error
                .unwrap_or_else(|| PortError::transient("events.PutEvents", "retries exhausted"));
            tracing::error!(entries = again.len(), error = %e, "events not accepted after retries");
            for (_, reply) in again {
                let _ = reply.send(Err(e.clone()));
            }
            return;
        };
        tracing::debug!(
            entries = again.len(),
            delay_ms = delay.as_millis() as u64,
            "retrying event entries"
        );
        tokio::time::sleep(delay).await;
        pending = again;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sized(bytes: usize) -> BusEvent {
        // Source "s" and DetailType "t" count 2 bytes; the detail makes up the rest.
        BusEvent {
            source: "s".into(),
            detail_type: "t".into(),
            detail: "x".repeat(bytes - 2),
            resources: vec![],
            time: None,
            trace_header: None,
        }
    }

    #[test]
    fn batches_split_in_order_below_the_request_limit_and_lone_giants_are_refused() {
        let sizes = [
            100 * 1024,
            100 * 1024,
            100 * 1024,
            MAX_PUT_EVENTS_BYTES,
            MAX_PUT_EVENTS_BYTES - 1,
            10,
        ];
        let mut replies = Vec::new();
        let batch = sizes
            .iter()
            .map(|&n| {
                let (tx, rx) = oneshot::channel();
                replies.push(rx);
                (sized(n), tx)
            })
            .collect();
        let requests = split_by_size(batch);
        let shape: Vec<Vec<usize>> = requests
            .iter()
            .map(|r| r.iter().map(|(e, _)| e.entry_size()).collect())
            .collect();
        assert_eq!(
            shape,
            vec![
                vec![100 * 1024, 100 * 1024],
                vec![100 * 1024],
                vec![MAX_PUT_EVENTS_BYTES - 1],
                vec![10],
            ]
        );
        let refused = replies[3]
            .try_recv()
            .expect("answered at once")
            .unwrap_err();
        assert_eq!(refused.code, Some(ErrorCode::EventTooLarge));
        assert_eq!(refused.kind, ErrorKind::Invalid);
    }
}
