//! The collectors: two readers of the tap queue (one event per well-formed message) and one of
//! the DLQ (one dead letter per poison message), recording what they saw until told to stop.

use std::collections::hash_map::DefaultHasher;
use std::collections::{HashMap, HashSet};
use std::hash::{Hash, Hasher};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use fleet_core::FailureMetadata;
use fleet_core::ports::MessageQueue;
use tokio::task::JoinHandle;

use super::now_us;
use crate::generate::Message;

/// Tells the collectors to finish.
#[derive(Clone, Default)]
struct Stop(Arc<AtomicBool>);

impl Stop {
    fn stop(&self) {
        self.0.store(true, Ordering::SeqCst);
    }
    fn stopped(&self) -> bool {
        self.0.load(Ordering::SeqCst)
    }
}

fn body_key(body: &str) -> u64 {
    let mut h = DefaultHasher::new();
    body.hash(&mut h);
    h.finish()
}

/// Several messages can have the same body (a malformed one without MSH-10, for the same
/// patient): a dead letter is matched to the first of them not matched yet.
pub(super) fn index_by_body(messages: &[Message]) -> HashMap<u64, Vec<usize>> {
    let mut index: HashMap<u64, Vec<usize>> = HashMap::new();
    for (i, m) in messages.iter().enumerate() {
        index.entry(body_key(&m.body)).or_default().push(i);
    }
    index
}

/// An event is matched to its message by the control id (MSH-10) in its payload.
pub(super) fn index_by_control(messages: &[Message]) -> HashMap<&str, usize> {
    messages
        .iter()
        .enumerate()
        .map(|(i, m)| (m.control_id.as_str(), i))
        .collect()
}

/// What the collectors saw.
#[derive(Default)]
pub(super) struct Seen {
    /// control id → (tap SentTimestamp ms, load tool receive µs, event id); first arrival.
    pub events: HashMap<String, (i64, i64, String)>,
    pub event_ids: HashMap<String, u64>,
    /// control id → every event id published for it (a redelivery must reuse the first).
    pub ids_by_control: HashMap<String, HashSet<String>>,
    /// Non-loadtest or unreadable tap messages.
    pub foreign: u64,
    /// message index → (code, DLQ SentTimestamp ms).
    pub dead: HashMap<usize, (String, i64)>,
    pub dead_unknown: u64,
    /// A dead letter for a message already dead-lettered (a redelivery after a lost delete).
    pub dead_duplicates: u64,
}

impl Seen {
    /// Messages with an outcome (an event or a dead letter), each counted once.
    pub(super) fn accounted(
        &self,
        messages: &[Message],
        by_control: &HashMap<&str, usize>,
    ) -> usize {
        let mut done: HashSet<usize> = self.dead.keys().copied().collect();
        for c in self.events.keys() {
            if let Some(&i) = by_control.get(c.as_str()) {
                done.insert(i);
            }
        }
        done.len().min(messages.len())
    }
}

/// The running collectors and what they have seen so far.
pub(super) struct Collectors {
    pub seen: Arc<Mutex<Seen>>,
    stop: Stop,
    tasks: Vec<JoinHandle<anyhow::Result<()>>>,
}

impl Collectors {
    /// Two tap readers and one DLQ reader; `by_body` matches a dead letter to its message.
    pub(super) fn spawn(
        tap: &Arc<dyn MessageQueue>,
        dlq: &Arc<dyn MessageQueue>,
        by_body: Arc<HashMap<u64, Vec<usize>>>,
    ) -> Self {
        let seen = Arc::new(Mutex::new(Seen::default()));
        let stop = Stop::default();
        let mut tasks = Vec::new();
        for _ in 0..2 {
            tasks.push(tokio::spawn(collect_tap(
                tap.clone(),
                seen.clone(),
                stop.clone(),
            )));
        }
        tasks.push(tokio::spawn(collect_dlq(
            dlq.clone(),
            seen.clone(),
            by_body,
            stop.clone(),
        )));
        Self { seen, stop, tasks }
    }

    /// A last look for stragglers (a duplicate event, a late dead letter), then stop and hand
    /// over what was seen.
    pub(super) async fn finish(self) -> anyhow::Result<Seen> {
        tokio::time::sleep(Duration::from_millis(1500)).await;
        self.stop.stop();
        for t in self.tasks {
            t.await??;
        }
        let seen = std::mem::take(&mut *self.seen.lock().unwrap());
        Ok(seen)
    }
}

async fn collect_tap(
    tap: Arc<dyn MessageQueue>,
    seen: Arc<Mutex<Seen>>,
    stop: Stop,
) -> anyhow::Result<()> {
    while !stop.stopped() {
        let got = tap
            .receive(10, Duration::from_secs(1), Some(Duration::from_secs(300)))
            .await?;
        if got.is_empty() {
            continue;
        }
        let at = now_us();
        {
            let mut s = seen.lock().unwrap();
            for m in &got {
                let v: serde_json::Value = serde_json::from_str(&m.body).unwrap_or_default();
                let control = v["detail"]["payload"]["control_id"].as_str();
                let id = v["detail"]["event_id"].as_str();
                match (control, id) {
                    (Some(c), Some(id)) => {
                        *s.event_ids.entry(id.to_string()).or_default() += 1;
                        s.ids_by_control
                            .entry(c.to_string())
                            .or_default()
                            .insert(id.to_string());
                        s.events.entry(c.to_string()).or_insert((
                            m.sent_timestamp_ms,
                            at,
                            id.to_string(),
                        ));
                    }
                    _ => s.foreign += 1,
                }
            }
        }
        let receipts: Vec<String> = got.iter().map(|m| m.receipt.clone()).collect();
        tap.delete_batch(&receipts).await?;
    }
    Ok(())
}

async fn collect_dlq(
    dlq: Arc<dyn MessageQueue>,
    seen: Arc<Mutex<Seen>>,
    by_body: Arc<HashMap<u64, Vec<usize>>>,
    stop: Stop,
) -> anyhow::Result<()> {
    while !stop.stopped() {
        let got = dlq
            .receive(10, Duration::from_secs(1), Some(Duration::from_secs(300)))
            .await?;
        if got.is_empty() {
            continue;
        }
        {
            let mut s = seen.lock().unwrap();
            for m in &got {
                let code = FailureMetadata::from_attributes(&m.attributes)
                    .map(|f| f.code.as_str().to_string())
                    .unwrap_or_else(|| fleet_core::failure::REDRIVEN_WITHOUT_FAILURE.into());
                let candidates = by_body.get(&body_key(&m.body));
                match candidates.and_then(|c| c.iter().find(|i| !s.dead.contains_key(i))) {
                    Some(&i) => {
                        s.dead.insert(i, (code, m.sent_timestamp_ms));
                    }
                    // Every message with this body is already dead-lettered: a duplicate.
                    None if candidates.is_some() => s.dead_duplicates += 1,
                    None => s.dead_unknown += 1,
                }
            }
        }
        let receipts: Vec<String> = got.iter().map(|m| m.receipt.clone()).collect();
        dlq.delete_batch(&receipts).await?;
    }
    Ok(())
}
