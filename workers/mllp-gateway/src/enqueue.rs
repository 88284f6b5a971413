//! Group commit: messages from every connection bound for one queue are gathered for a short
//! linger into one `SendMessageBatch` (at most 10 entries and the queue's size limit in all),
//! and each sender is told about its own entry. Retryable failures (throttling, 5xx, a
//! retryable entry) are retried with backoff until the message's deadline; a refusal the
//! service blames on the request is final. A message whose sender stopped waiting (its
//! deadline passed and it was answered AR) is not sent at all.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use fleet_core::ports::{MessageQueue, OutgoingMessage};
use tokio::sync::{Semaphore, mpsc, oneshot};
use tokio::time::Instant;

/// SQS's most entries per batch.
pub const MAX_BATCH_ENTRIES: usize = 10;

/// Why a message was not queued. Texts are the gateway's own (they go into ERR-8 and logs).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EnqueueError {
    /// The service refused the entry or the call as the sender's fault (not retried).
    #[error("the queue refused the message ({code})")]
    Refused { code: String },
    /// Not queued before the deadline (the queue was unavailable or throttled throughout).
    #[error("the queue did not accept the message in time ({last})")]
    Deadline { last: String },
    /// The gateway is stopping and the batcher is gone.
    #[error("the gateway is shutting down")]
    Closed,
}

/// How batches are made.
#[derive(Debug, Clone)]
pub struct BatchOptions {
    pub linger: Duration,
    /// Sum of the entries' sizes per call (the queue's MaximumMessageSize: SQS limits a
    /// batch's total payload to it too).
    pub max_batch_bytes: usize,
    pub max_in_flight: usize,
    /// Messages waiting across connections before `enqueue` waits (backpressure).
    pub max_pending: usize,
}

struct Job {
    message: OutgoingMessage,
    size: usize,
    deadline: Instant,
    reply: oneshot::Sender<Result<(), EnqueueError>>,
}

/// The sending side of one queue's batcher.
#[derive(Clone)]
pub struct Enqueuer {
    tx: mpsc::Sender<Job>,
    queue_id: String,
}

impl std::fmt::Debug for Enqueuer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Enqueuer")
            .field("queue", &self.queue_id)
            .finish()
    }
}

impl Enqueuer {
    /// Start the batcher for `queue`. It runs until every `Enqueuer` clone is dropped and the
    /// batches in flight are answered.
    pub fn start(
        queue: Arc<dyn MessageQueue>,
        opts: BatchOptions,
    ) -> (Self, tokio::task::JoinHandle<()>) {
        let (tx, rx) = mpsc::channel(opts.max_pending.max(1));
        let queue_id = queue.id().to_string();
        let task = tokio::spawn(batcher(queue, opts, rx));
        (Self { tx, queue_id }, task)
    }

    /// Queue `message` (of `size` bytes as SQS counts them); returns once the queue accepted
    /// it. Waits at most until `deadline`.
    pub async fn enqueue(
        &self,
        message: OutgoingMessage,
        size: usize,
        deadline: Instant,
    ) -> Result<(), EnqueueError> {
        let (reply, answer) = oneshot::channel();
        let job = Job {
            message,
            size,
            deadline,
            reply,
        };
        let timed_out = || EnqueueError::Deadline {
            last: "waiting for a free slot (backpressure)".into(),
        };
        match tokio::time::timeout_at(deadline, self.tx.send(job)).await {
            Err(_) => return Err(timed_out()),
            Ok(Err(_)) => return Err(EnqueueError::Closed),
            Ok(Ok(())) => {}
        }
        match tokio::time::timeout_at(deadline, answer).await {
            Err(_) => Err(EnqueueError::Deadline {
                last: "no answer from the queue".into(),
            }),
            Ok(Err(_)) => Err(EnqueueError::Closed),
            Ok(Ok(r)) => r,
        }
    }

    pub fn queue_id(&self) -> &str {
        &self.queue_id
    }
}

async fn batcher(queue: Arc<dyn MessageQueue>, opts: BatchOptions, mut rx: mpsc::Receiver<Job>) {
    let permits = Arc::new(Semaphore::new(opts.max_in_flight.max(1)));
    let mut carry: Option<Job> = None;
    let mut sends = tokio::task::JoinSet::new();
    loop {
        let first = match carry.take() {
            Some(j) => j,
            None => match rx.recv().await {
                Some(j) => j,
                None => break,
            },
        };
        let mut bytes = first.size;
        let mut batch = vec![first];
        let linger_end = Instant::now() + opts.linger;
        while batch.len() < MAX_BATCH_ENTRIES {
            let next = match rx.try_recv() {
                Ok(j) => Some(j),
                Err(_) if opts.linger.is_zero() => None,
                Err(_) => tokio::select! {
                    j = rx.recv() => j,
                    () = tokio::time::sleep_until(linger_end) => None,
                },
            };
            let Some(job) = next else { break };
            if bytes + job.size > opts.max_batch_bytes {
                carry = Some(job);
                break;
            }
            bytes += job.size;
            batch.push(job);
        }
        let Ok(permit) = permits.clone().acquire_owned().await else {
            break;
        };
        let queue = queue.clone();
        sends.spawn(async move {
            send_with_retries(queue.as_ref(), batch).await;
            drop(permit);
        });
        while sends.try_join_next().is_some() {}
    }
    while sends.join_next().await.is_some() {}
}

/// Backoff between attempts: 50 ms doubling to 1 s.
fn backoff(attempt: u32) -> Duration {
    Duration::from_millis(50u64.saturating_mul(1 << attempt.min(5))).min(Duration::from_secs(1))
}

async fn send_with_retries(queue: &dyn MessageQueue, batch: Vec<Job>) {
    let mut pending: VecDeque<Job> = batch.into();
    let mut attempt = 0u32;
    let mut last = String::from("not sent");
    while !pending.is_empty() {
        // A sender that stopped waiting was answered AR: sending its message now would queue
        // what the sender will resend anyway.
        pending.retain(|j| !j.reply.is_closed());
        let now = Instant::now();
        let (alive, expired): (VecDeque<Job>, VecDeque<Job>) =
            pending.into_iter().partition(|j| j.deadline > now);
        for j in expired {
            let _ = j
                .reply
                .send(Err(EnqueueError::Deadline { last: last.clone() }));
        }
        pending = alive;
        if pending.is_empty() {
            break;
        }
        let messages: Vec<OutgoingMessage> = pending.iter().map(|j| j.message.clone()).collect();
        let mut retry = VecDeque::new();
        match queue.send_batch(&messages).await {
            Ok(result) => {
                let mut failed = result.failed;
                failed.sort_by_key(|f| f.index);
                let mut failed = failed.into_iter().peekable();
                for (i, job) in pending.into_iter().enumerate() {
                    match failed.next_if(|f| f.index == i) {
                        None => {
                            let _ = job.reply.send(Ok(()));
                        }
                        Some(f) if f.sender_fault => {
                            let _ = job.reply.send(Err(EnqueueError::Refused { code: f.code }));
                        }
                        Some(f) => {
                            last = f.code;
                            retry.push_back(job);
                        }
                    }
                }
            }
            Err(e) if e.is_retryable() => {
                last = e.kind.as_str().to_string();
                retry = pending;
            }
            Err(e) => {
                let code = e.kind.as_str().to_string();
                for job in pending {
                    let _ = job
                        .reply
                        .send(Err(EnqueueError::Refused { code: code.clone() }));
                }
            }
        }
        pending = retry;
        if !pending.is_empty() {
            tracing::warn!(entries = pending.len(), attempt, reason = %last, "SendMessageBatch: retrying entries");
            let wake = Instant::now() + backoff(attempt);
            let earliest = pending.iter().map(|j| j.deadline).min().unwrap_or(wake);
            tokio::time::sleep_until(wake.min(earliest)).await;
            attempt += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use async_trait::async_trait;
    use fleet_core::PortError;
    use fleet_core::ports::{BatchResult, EntryFailure, QueueAttributes, ReceivedMessage};
    use std::sync::Mutex;

    /// A queue that records each SendMessageBatch and fails as told.
    #[derive(Default)]
    struct Recorder {
        calls: Mutex<Vec<Vec<String>>>,
        /// Per call: entries (by body) to fail, and whether as the sender's fault.
        fail_bodies: Mutex<Vec<(String, bool)>>,
        throttle_first: Mutex<u32>,
    }

    #[async_trait]
    impl MessageQueue for Recorder {
        fn id(&self) -> &str {
            "recorder"
        }
        async fn receive(
            &self,
            _: u32,
            _: Duration,
            _: Option<Duration>,
        ) -> Result<Vec<ReceivedMessage>, PortError> {
            Ok(vec![])
        }
        async fn delete_batch(&self, _: &[String]) -> Result<BatchResult, PortError> {
            Ok(BatchResult::default())
        }
        async fn change_visibility_batch(
            &self,
            _: &[(String, Duration)],
        ) -> Result<BatchResult, PortError> {
            Ok(BatchResult::default())
        }
        async fn send(&self, _: OutgoingMessage) -> Result<String, PortError> {
            unreachable!("the gateway sends in batches")
        }
        async fn send_batch(&self, m: &[OutgoingMessage]) -> Result<BatchResult, PortError> {
            {
                let mut t = self.throttle_first.lock().unwrap();
                if *t > 0 {
                    *t -= 1;
                    return Err(PortError::new(
                        fleet_core::ErrorKind::Throttled,
                        "SendMessageBatch",
                        "slow down",
                    ));
                }
            }
            self.calls
                .lock()
                .unwrap()
                .push(m.iter().map(|m| m.body.clone()).collect());
            let mut fails = self.fail_bodies.lock().unwrap();
            let mut failed = Vec::new();
            for (i, msg) in m.iter().enumerate() {
                if let Some(pos) = fails.iter().position(|(b, _)| *b == msg.body) {
                    let (_, sender_fault) = fails.remove(pos);
                    failed.push(EntryFailure {
                        index: i,
                        code: if sender_fault {
                            "InvalidMessageContents"
                        } else {
                            "InternalError"
                        }
                        .into(),
                        sender_fault,
                    });
                }
            }
            Ok(BatchResult { failed })
        }
        async fn attributes(&self) -> Result<QueueAttributes, PortError> {
            Ok(QueueAttributes::default())
        }
    }

    fn opts(linger_ms: u64, max_batch_bytes: usize) -> BatchOptions {
        BatchOptions {
            linger: Duration::from_millis(linger_ms),
            max_batch_bytes,
            max_in_flight: 4,
            max_pending: 100,
        }
    }

    fn msg(body: &str) -> OutgoingMessage {
        OutgoingMessage {
            body: body.into(),
            ..OutgoingMessage::default()
        }
    }

    async fn send_all(e: &Enqueuer, bodies: &[String]) -> Vec<Result<(), EnqueueError>> {
        let deadline = Instant::now() + Duration::from_secs(30);
        futures::future::join_all(bodies.iter().map(|b| e.enqueue(msg(b), b.len(), deadline))).await
    }

    #[tokio::test(start_paused = true)]
    async fn messages_arriving_together_share_batches_of_at_most_ten() {
        let q = Arc::new(Recorder::default());
        let (e, _task) = Enqueuer::start(q.clone(), opts(5, 262_144));
        let bodies: Vec<String> = (0..25).map(|i| format!("m{i}")).collect();
        let results = send_all(&e, &bodies).await;
        assert!(results.iter().all(Result::is_ok), "{results:?}");
        let calls = q.calls.lock().unwrap().clone();
        assert_eq!(calls.iter().map(Vec::len).collect::<Vec<_>>(), [10, 10, 5]);
        let mut sent: Vec<String> = calls.concat();
        sent.sort();
        let mut want = bodies.clone();
        want.sort();
        assert_eq!(sent, want);
    }

    #[tokio::test(start_paused = true)]
    async fn a_batch_never_exceeds_the_size_limit() {
        let q = Arc::new(Recorder::default());
        let (e, _task) = Enqueuer::start(q.clone(), opts(5, 100));
        let bodies: Vec<String> = (0..6).map(|i| format!("{i}{}", "x".repeat(39))).collect();
        assert!(send_all(&e, &bodies).await.iter().all(Result::is_ok));
        let calls = q.calls.lock().unwrap().clone();
        assert!(calls.iter().all(|c| c.len() == 2), "{calls:?}");
    }

    #[tokio::test(start_paused = true)]
    async fn each_sender_hears_about_its_own_entry() {
        let q = Arc::new(Recorder::default());
        q.fail_bodies
            .lock()
            .unwrap()
            .extend([("bad".to_string(), true), ("flaky".to_string(), false)]);
        let (e, _task) = Enqueuer::start(q.clone(), opts(5, 262_144));
        let bodies: Vec<String> = ["ok1", "bad", "flaky", "ok2"].map(String::from).to_vec();
        let results = send_all(&e, &bodies).await;
        assert!(results[0].is_ok() && results[3].is_ok());
        assert_eq!(
            results[1],
            Err(EnqueueError::Refused {
                code: "InvalidMessageContents".into()
            })
        );
        assert!(
            results[2].is_ok(),
            "a retryable entry is retried: {:?}",
            results[2]
        );
        let calls = q.calls.lock().unwrap().clone();
        assert_eq!(calls.len(), 2);
        assert_eq!(calls[1], ["flaky"]);
    }

    #[tokio::test(start_paused = true)]
    async fn throttling_is_retried_and_a_deadline_ends_the_wait() {
        let q = Arc::new(Recorder::default());
        *q.throttle_first.lock().unwrap() = 3;
        let (e, _task) = Enqueuer::start(q.clone(), opts(0, 262_144));
        let ok = e
            .enqueue(msg("a"), 1, Instant::now() + Duration::from_secs(30))
            .await;
        assert!(ok.is_ok(), "{ok:?}");
        *q.throttle_first.lock().unwrap() = u32::MAX;
        let late = e
            .enqueue(msg("b"), 1, Instant::now() + Duration::from_secs(2))
            .await;
        assert!(
            matches!(late, Err(EnqueueError::Deadline { .. })),
            "{late:?}"
        );
        assert_eq!(q.calls.lock().unwrap().concat(), ["a"]);
    }
}
