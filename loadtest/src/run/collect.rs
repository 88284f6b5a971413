//! The collectors: readers of the tap queue (one event per well-formed message; two receivers
//! on aws, one read-only tail locally) and one of the DLQ (one dead letter per poison message),
//! recording what they saw until told to stop.

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
    /// Indices of messages with an outcome so far (`accounted`).
    done: HashSet<usize>,
    /// Control ids whose first event arrived since `accounted` last looked.
    fresh_controls: Vec<String>,
}

impl Seen {
    /// Messages with an outcome (an event or a dead letter), each counted once. Kept up to
    /// date as outcomes arrive (`fresh_controls`), not recounted over every outcome on each
    /// call: the watcher asks 20 times a second while the collectors wait on the lock.
    pub(super) fn accounted(
        &mut self,
        messages: &[Message],
        by_control: &HashMap<&str, usize>,
    ) -> usize {
        for c in std::mem::take(&mut self.fresh_controls) {
            if let Some(&i) = by_control.get(c.as_str()) {
                self.done.insert(i);
            }
        }
        self.done.len().min(messages.len())
    }

    /// Record the dead letter of message `i`.
    fn dead_letter(&mut self, i: usize, code: String, dlq_ms: i64) {
        self.dead.insert(i, (code, dlq_ms));
        self.done.insert(i);
    }

    /// Record one event seen on the tap (its first arrival keeps the times).
    fn event(&mut self, control: &str, id: &str, tap_ms: i64, at_us: i64) {
        *self.event_ids.entry(id.to_string()).or_default() += 1;
        self.ids_by_control
            .entry(control.to_string())
            .or_default()
            .insert(id.to_string());
        if !self.events.contains_key(control) {
            self.events
                .insert(control.to_string(), (tap_ms, at_us, id.to_string()));
            self.fresh_controls.push(control.to_string());
        }
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
        tap: &Tap,
        dlq: &Arc<dyn MessageQueue>,
        by_body: Arc<HashMap<u64, Vec<usize>>>,
    ) -> Self {
        let seen = Arc::new(Mutex::new(Seen::default()));
        let stop = Stop::default();
        let mut tasks = Vec::new();
        match tap {
            Tap::Queue(q) => {
                for _ in 0..2 {
                    tasks.push(tokio::spawn(collect_tap(
                        q.clone(),
                        seen.clone(),
                        stop.clone(),
                    )));
                }
            }
            Tap::LocalTail { backend, queue } => tasks.push(tokio::spawn(tail_tap(
                backend.clone(),
                queue.clone(),
                seen.clone(),
                stop.clone(),
            ))),
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

/// Where the load tool reads the events hl7-ingest published.
pub(super) enum Tap {
    /// Receive and delete, as any consumer (aws).
    Queue(Arc<dyn MessageQueue>),
    /// Read the local tap queue in send order without receiving (`LocalBackend::queue_tail`):
    /// a read-only transaction, so the load tool takes no write lock and does not invalidate
    /// the worker's SQLite page cache with writes of its own (each write by another process
    /// makes the worker reread every page it touches next). The routed messages stay on the
    /// tap queue, which nothing else consumes.
    LocalTail {
        backend: fleet_local::LocalBackend,
        queue: String,
    },
}

/// One tap message: its body and when it was sent to the tap (the publish).
fn note_tap_message(s: &mut Seen, body: &str, sent_ms: i64, at: i64) {
    let v: serde_json::Value = serde_json::from_str(body).unwrap_or_default();
    let control = v["detail"]["payload"]["control_id"].as_str();
    let id = v["detail"]["event_id"].as_str();
    match (control, id) {
        (Some(c), Some(id)) => s.event(c, id, sent_ms, at),
        _ => s.foreign += 1,
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
                note_tap_message(&mut s, &m.body, m.sent_timestamp_ms, at);
            }
        }
        let receipts: Vec<String> = got.iter().map(|m| m.receipt.clone()).collect();
        tap.delete_batch(&receipts).await?;
    }
    Ok(())
}

/// How often the local tail looks for new tap messages when it found none.
const TAIL_INTERVAL: Duration = Duration::from_millis(20);

async fn tail_tap(
    backend: fleet_local::LocalBackend,
    queue: String,
    seen: Arc<Mutex<Seen>>,
    stop: Stop,
) -> anyhow::Result<()> {
    let mut after = 0;
    while !stop.stopped() {
        let got = backend.queue_tail(&queue, after, 500).await?;
        let Some(&(last, _)) = got.last() else {
            tokio::time::sleep(TAIL_INTERVAL).await;
            continue;
        };
        after = last;
        let at = now_us();
        let mut s = seen.lock().unwrap();
        for (_, m) in &got {
            note_tap_message(&mut s, &m.body, m.sent_timestamp_ms, at);
        }
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
                        s.dead_letter(i, code, m.sent_timestamp_ms);
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

#[cfg(test)]
mod tests {
    use super::*;

    fn message(control_id: &str) -> Message {
        Message {
            body: format!("MSH|^~\\&|{control_id}"),
            control_id: control_id.into(),
            expected_failure: None,
            trigger: "A01",
        }
    }

    fn tap_body(control: &str, id: &str) -> String {
        serde_json::json!({"detail": {"event_id": id, "payload": {"control_id": control}}})
            .to_string()
    }

    #[test]
    fn accounted_counts_each_message_once_across_events_repeats_and_dead_letters() {
        let messages: Vec<Message> = ["c1", "c2", "c3", "c4"].map(message).into();
        let by_control = index_by_control(&messages);
        let mut s = Seen::default();
        assert_eq!(s.accounted(&messages, &by_control), 0);

        note_tap_message(&mut s, &tap_body("c1", "e1"), 10, 1);
        note_tap_message(&mut s, &tap_body("c2", "e2"), 11, 2);
        assert_eq!(s.accounted(&messages, &by_control), 2);

        // A republished event (same id) and one for a control id not in the run.
        note_tap_message(&mut s, &tap_body("c1", "e1"), 12, 3);
        note_tap_message(&mut s, &tap_body("elsewhere", "e9"), 13, 4);
        note_tap_message(&mut s, "not json", 14, 5);
        assert_eq!(s.accounted(&messages, &by_control), 2);
        assert_eq!(
            s.events["c1"],
            (10, 1, "e1".to_string()),
            "first arrival kept"
        );
        assert_eq!(s.event_ids["e1"], 2);
        assert_eq!(s.foreign, 1);

        s.dead_letter(3, "HL7_PARSE".into(), 20);
        assert_eq!(s.accounted(&messages, &by_control), 3);
        note_tap_message(&mut s, &tap_body("c3", "e3"), 15, 6);
        assert_eq!(s.accounted(&messages, &by_control), 4);
    }
}
