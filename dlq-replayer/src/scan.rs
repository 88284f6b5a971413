//! Reading a queue without consuming it.
//!
//! SQS has no "peek": the only way to see a message is to receive it. A scan receives every
//! visible message with a visibility timeout (the *hold*), keeps each one invisible while the
//! command looks at the whole set (so a later receive cannot return it again and the scan
//! ends), extends the hold while the command runs, and at the end releases whatever it did
//! not delete by setting its visibility to 0. A crash of `dlq-replay` therefore loses nothing:
//! held messages reappear when the hold expires.
//!
//! Receiving a message bumps its receive count; on a DLQ (which normally has no redrive
//! policy of its own) that changes nothing. On a FIFO queue a held message blocks the rest of
//! its group, so a scan that deletes nothing sees only the first messages of each group.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use fleet_core::{MessageQueue, PortError};

use crate::message::Dead;

/// Long-poll wait of each receive. Long polling asks every SQS server, so an empty answer means
/// nothing is visible (a short poll can answer empty from a sample of servers).
const RECEIVE_WAIT: Duration = Duration::from_secs(1);
/// Consecutive empty long polls that end a scan.
const EMPTY_RECEIVES_TO_STOP: u32 = 1;

/// Receipts of the messages a command holds, by message id.
pub struct Scanner {
    queue: Arc<dyn MessageQueue>,
    hold: Duration,
    held: HashMap<String, String>,
    last_extended: Instant,
    empty_receives: u32,
}

impl Scanner {
    pub fn new(queue: Arc<dyn MessageQueue>, hold: Duration) -> Self {
        Self {
            queue,
            hold,
            held: HashMap::new(),
            last_extended: Instant::now(),
            empty_receives: 0,
        }
    }

    pub fn queue(&self) -> &Arc<dyn MessageQueue> {
        &self.queue
    }

    /// How many messages are held.
    pub fn held(&self) -> usize {
        self.held.len()
    }

    /// The next messages this scan has not seen yet, now held; `None` when nothing more is
    /// visible. Calling it again after `None` looks again (a FIFO group unblocks once its held
    /// messages are deleted).
    pub async fn next_batch(&mut self) -> Result<Option<Vec<Dead>>, PortError> {
        self.empty_receives = 0;
        loop {
            self.keep_alive().await?;
            let received = self
                .queue
                .receive(10, RECEIVE_WAIT, Some(self.hold))
                .await?;
            if received.is_empty() {
                self.empty_receives += 1;
                if self.empty_receives >= EMPTY_RECEIVES_TO_STOP {
                    return Ok(None);
                }
                continue;
            }
            let mut fresh = Vec::with_capacity(received.len());
            for m in received {
                // A standard queue can deliver a message twice; the newest receipt is the one
                // that deletes or releases it.
                let seen = self
                    .held
                    .insert(m.message_id.clone(), m.receipt.clone())
                    .is_some();
                if !seen {
                    fresh.push(Dead::new(m));
                }
            }
            // Only repeats (a standard queue's duplicate delivery): look again. They are held
            // again by this receive, so they cannot keep coming back.
            if !fresh.is_empty() {
                return Ok(Some(fresh));
            }
        }
    }

    /// The receipt of a held message.
    pub fn receipt(&self, message_id: &str) -> Option<&str> {
        self.held.get(message_id).map(String::as_str)
    }

    /// The message was deleted: nothing to release.
    pub fn forget(&mut self, message_id: &str) {
        self.held.remove(message_id);
    }

    /// Extend the hold of every held message once half of it has passed.
    pub async fn keep_alive(&mut self) -> Result<(), PortError> {
        if self.last_extended.elapsed() < self.hold / 2 {
            return Ok(());
        }
        self.extend_now().await.map(drop)
    }

    /// Extend the hold of every held message now (after a pause, such as a confirmation
    /// prompt, that may have outlasted the hold). Returns the ids whose hold could not be
    /// extended: it expired and someone else may hold them now, so they are no longer ours.
    pub async fn extend_now(&mut self) -> Result<Vec<String>, PortError> {
        let hold = self.hold;
        let lost = self.set_visibility(hold).await?;
        for id in &lost {
            self.held.remove(id);
        }
        self.last_extended = Instant::now();
        Ok(lost)
    }

    /// Make every held message visible again; returns how many could not be released (they
    /// reappear when their hold expires).
    pub async fn release_all(&mut self) -> Result<usize, PortError> {
        let failed = self.set_visibility(Duration::ZERO).await?.len();
        self.held.clear();
        Ok(failed)
    }

    /// Set the visibility of every held message; returns the ids whose change failed.
    async fn set_visibility(&self, visibility: Duration) -> Result<Vec<String>, PortError> {
        let held: Vec<(&String, &String)> = self.held.iter().collect();
        let mut failed = Vec::new();
        for chunk in held.chunks(10) {
            let entries: Vec<(String, Duration)> = chunk
                .iter()
                .map(|(_, receipt)| ((*receipt).clone(), visibility))
                .collect();
            let result = self.queue.change_visibility_batch(&entries).await?;
            failed.extend(
                result
                    .failed
                    .iter()
                    .filter_map(|f| chunk.get(f.index))
                    .map(|(id, _)| (*id).clone()),
            );
        }
        Ok(failed)
    }
}
