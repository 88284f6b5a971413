//! Sending: the stream onto the source queue, in batches of ten. Preload mode queues it all
//! and then starts the worker (saturation); rate mode starts the worker, waits for it to be
//! ready and sends at the scenario's rate while the run is watched.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use fleet_core::ports::{MessageQueue, OutgoingMessage};
use tokio::task::JoinHandle;

use super::now_us;
use super::workers::{Started, Workers};
use crate::generate::Message;
use crate::scenario::{Mode, Scenario};

/// The run under way: the first worker, the start the measures count from, and the sender
/// still running in rate mode.
pub(super) struct Begun {
    pub worker: Started,
    pub start_us: i64,
    pub sender: Option<JoinHandle<anyhow::Result<()>>>,
}

/// Start the worker and the sending in the scenario's mode; `send_us` gets each message's
/// enqueue time.
pub(super) async fn begin(
    scenario: &Scenario,
    source: &Arc<dyn MessageQueue>,
    workers: &mut Workers,
    messages: &Arc<Vec<Message>>,
    send_us: &Arc<Mutex<Vec<i64>>>,
) -> anyhow::Result<Begun> {
    match scenario.mode {
        Mode::Preload => {
            send_all(source.clone(), messages.clone(), send_us.clone(), 0, 8).await?;
            let worker = workers.start().await?;
            Ok(Begun {
                worker,
                start_us: now_us(),
                sender: None,
            })
        }
        Mode::Rate => {
            let mut worker = workers.start().await?;
            worker.wait_ready(Duration::from_secs(60)).await?;
            let start_us = now_us();
            let sender = tokio::spawn(send_all(
                source.clone(),
                messages.clone(),
                send_us.clone(),
                scenario.rate_per_s,
                4,
            ));
            Ok(Begun {
                worker,
                start_us,
                sender: Some(sender),
            })
        }
    }
}

/// Send every message in batches of 10 from `senders` tasks; at `rate` messages per second
/// when non-zero (a batch every 10/rate s, catching up after a slow call).
async fn send_all(
    queue: Arc<dyn MessageQueue>,
    messages: Arc<Vec<Message>>,
    send_us: Arc<Mutex<Vec<i64>>>,
    rate: u32,
    senders: usize,
) -> anyhow::Result<()> {
    let batches: Vec<(usize, Vec<OutgoingMessage>)> = messages
        .chunks(10)
        .enumerate()
        .map(|(b, chunk)| {
            (
                b * 10,
                chunk
                    .iter()
                    .map(|m| OutgoingMessage {
                        body: m.body.clone(),
                        ..OutgoingMessage::default()
                    })
                    .collect(),
            )
        })
        .collect();
    let batches = Arc::new(batches);
    let next = Arc::new(AtomicUsize::new(0));
    let begin = Instant::now();
    let per_batch = (rate > 0).then(|| Duration::from_secs_f64(10.0 / f64::from(rate)));
    let mut tasks = Vec::new();
    for _ in 0..senders.max(1) {
        let (queue, batches, next, send_us) = (
            queue.clone(),
            batches.clone(),
            next.clone(),
            send_us.clone(),
        );
        tasks.push(tokio::spawn(async move {
            loop {
                let b = next.fetch_add(1, Ordering::SeqCst);
                let Some((first, batch)) = batches.get(b) else {
                    return Ok::<(), anyhow::Error>(());
                };
                if let Some(every) = per_batch {
                    let due = begin + every * u32::try_from(b).unwrap_or(u32::MAX);
                    tokio::time::sleep_until(due.into()).await;
                }
                let t = now_us();
                let r = queue.send_batch(batch).await?;
                anyhow::ensure!(
                    r.all_ok(),
                    "a send batch had failed entries: {:?}",
                    r.failed
                );
                let mut s = send_us.lock().unwrap();
                for i in 0..batch.len() {
                    s[first + i] = t;
                }
            }
        }));
    }
    for t in tasks {
        t.await??;
    }
    Ok(())
}
