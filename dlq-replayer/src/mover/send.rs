//! Sending: batches per destination (at most one message per FIFO group), pacing to the rate,
//! sending with retries, and the message as it goes back.

use std::collections::{HashMap, HashSet, VecDeque};
use std::time::{Duration, Instant};

use backon::Retryable;
use fleet_core::{OutgoingMessage, PortError};
use sha2::{Digest, Sha256};

use super::{Run, reason_of, retry_policy};
use crate::message::Dead;
use crate::progress::Progress;
use crate::scan::Scanner;

impl Run<'_> {
    pub(super) async fn move_selected(
        &mut self,
        scanner: &mut Scanner,
        selected: Vec<Dead>,
        fifo: bool,
        progress: &mut Progress,
    ) -> anyhow::Result<()> {
        // Resolve destinations; messages without one, or whose destination is refused, stay.
        let mut queued: Vec<(Option<String>, Dead)> = Vec::with_capacity(selected.len());
        for d in selected {
            match self.resolve(&d).await? {
                Ok(dest) => queued.push((dest, d)),
                Err(reason) => self.not_moved(&d, &reason, fifo),
            }
        }
        let mut pending: VecDeque<(Option<String>, Dead)> = queued.into();
        while !pending.is_empty() {
            if fifo {
                // A group that stopped (a message of it failed to send) moves no further.
                let (stay, go): (VecDeque<_>, VecDeque<_>) = std::mem::take(&mut pending)
                    .into_iter()
                    .partition(|(_, d)| {
                        d.msg
                            .group_id
                            .as_ref()
                            .is_some_and(|g| self.failed_groups.contains(g))
                    });
                for (_, d) in stay {
                    self.not_moved(&d, "HELD_BEHIND_GROUP", false);
                }
                pending = go;
                if pending.is_empty() {
                    break;
                }
            }
            if let Some(reason) = &self.report.aborted {
                let reason = reason.clone();
                for (_, d) in std::mem::take(&mut pending) {
                    self.not_moved(&d, &reason, fifo);
                }
                break;
            }
            scanner.keep_alive().await?;
            // Below 10 messages per second, smaller batches keep each second's burst under the rate.
            let max_batch = self
                .req
                .rate
                .map_or(10, |r| (r.floor() as usize).clamp(1, 10));
            let batch = take_batch(&mut pending, fifo, max_batch);
            self.pace(batch.len()).await;
            let dest = batch[0].0.clone();
            let sent = match &dest {
                None => batch.into_iter().map(|(_, d)| d).collect(),
                Some(name) => self.send(name, batch, fifo).await,
            };
            self.delete(scanner, sent, dest.as_deref(), fifo, progress)
                .await?;
        }
        Ok(())
    }

    pub(super) async fn pace(&mut self, n: usize) {
        let Some(rate) = self.req.rate.filter(|r| *r > 0.0) else {
            return;
        };
        let since = *self.moving_since.get_or_insert_with(Instant::now);
        let due = since + Duration::from_secs_f64(self.moved_total as f64 / rate);
        tokio::time::sleep_until(due.into()).await;
        self.moved_total += n;
    }

    /// Send a batch to one destination; returns the messages that were sent.
    pub(super) async fn send(
        &mut self,
        dest_name: &str,
        batch: Vec<(Option<String>, Dead)>,
        fifo: bool,
    ) -> Vec<Dead> {
        let dest = match self.destination(dest_name).await {
            Ok(d) => (d.queue.clone(), d.fifo),
            Err(reason) => {
                for (_, d) in &batch {
                    self.not_moved(d, &reason, fifo);
                }
                return Vec::new();
            }
        };
        let (queue, dest_fifo) = dest;
        let outgoing: Vec<OutgoingMessage> =
            batch.iter().map(|(_, d)| outgoing(d, dest_fifo)).collect();
        let result = (|| async { queue.send_batch(&outgoing).await })
            .retry(retry_policy())
            .when(PortError::is_retryable)
            .await;
        let failed = match result {
            Ok(r) => r,
            Err(e) => {
                let reason = reason_of(&e);
                self.report.aborted = Some(format!(
                    "sending to {dest_name} failed ({reason}); the run stopped and unsent messages stay in the DLQ"
                ));
                for (_, d) in &batch {
                    self.not_moved(d, &reason, fifo);
                }
                return Vec::new();
            }
        };
        let failed_at: HashMap<usize, String> = failed
            .failed
            .iter()
            .map(|f| (f.index, f.code.clone()))
            .collect();
        let mut sent = Vec::with_capacity(batch.len());
        for (i, (_, d)) in batch.into_iter().enumerate() {
            match failed_at.get(&i) {
                Some(code) => self.not_moved(&d, code, fifo),
                None => sent.push(d),
            }
        }
        sent
    }
}

/// Up to `max` (at most 10) messages for the destination of the first pending one. Standard queues: any of
/// the pending messages with that destination. FIFO: consecutive messages only, at most one per
/// group, so the order within each group holds whatever fails.
pub(super) fn take_batch(
    pending: &mut VecDeque<(Option<String>, Dead)>,
    fifo: bool,
    max: usize,
) -> Vec<(Option<String>, Dead)> {
    let Some(dest) = pending.front().map(|(d, _)| d.clone()) else {
        return Vec::new();
    };
    let mut batch = Vec::new();
    let mut groups = HashSet::new();
    let mut i = 0;
    while i < pending.len() && batch.len() < max.min(10) {
        let (d_dest, d) = &pending[i];
        if fifo {
            if *d_dest != dest || !groups.insert(d.msg.group_id.clone()) {
                break;
            }
        } else if *d_dest != dest {
            i += 1;
            continue;
        }
        if let Some(item) = pending.remove(i) {
            batch.push(item);
        }
    }
    batch
}

/// The message as it goes back: body and every attribute (the failure attribute included, so a
/// second failure keeps the time of the first); on a FIFO destination the group id and a new
/// deduplication id derived from the DLQ message id, so a retried send in this run is deduplicated.
pub fn outgoing(d: &Dead, dest_fifo: bool) -> OutgoingMessage {
    let (group_id, dedup_id) = if dest_fifo {
        let digest = hex::encode(Sha256::digest(d.id().as_bytes()));
        (
            Some(d.msg.group_id.clone().unwrap_or_else(|| d.id().to_string())),
            Some(format!("replay-{}", &digest[..40])),
        )
    } else {
        (None, None)
    };
    OutgoingMessage {
        body: d.msg.body.clone(),
        attributes: d.msg.attributes.clone(),
        delay: None,
        group_id,
        dedup_id,
    }
}
