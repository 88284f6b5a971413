//! `replay` and `purge`: move the selected messages out of a DLQ (to their source queue, or
//! nowhere), send first and delete only what was sent.
//!
//! # How a run decides what it moves
//!
//! A run first scans the DLQ, holding every message it receives (see [`crate::scan`]). Only
//! messages sent to the DLQ before the run began are candidates, and each is looked at once,
//! so a message that fails again during the run (and comes back as a new message) is never
//! moved twice. On a standard queue the first scan sees everything, and the confirmation
//! names the exact count. On a FIFO queue a held message blocks its group, so the run works in
//! rounds: move the first messages of each group, then look again. A group stops at its first
//! message that is not selected (or could not be sent): moving later ones would break the
//! group's order. Each batch sent holds at most one message per group, so a failed entry never
//! leaves a later message of its group sent ahead of it.
//!
//! A batch that cannot be sent at all (the destination was deleted, permission was revoked)
//! ends the run: everything not yet sent stays in the DLQ and the report lists it.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::io::{BufRead, Write};
use std::sync::Arc;
use std::time::{Duration, Instant};

use backon::{ExponentialBuilder, Retryable};
use fleet_core::{Backend, BatchResult, MessageQueue, OutgoingMessage, PortError};
use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::archive::{self, ArchiveSpec, ArchivedMessage};
use crate::inspect::Topology;
use crate::message::{Dead, format_ms, now_ms};
use crate::progress::Progress;
use crate::scan::Scanner;
use crate::select::Filter;

/// What to do.
#[derive(Debug, Clone)]
pub struct MoveRequest {
    /// `replay` or `purge`.
    pub purge: bool,
    /// Replay: send everything here instead of each message's source queue.
    pub to: Option<String>,
    pub filter: Filter,
    pub dry_run: bool,
    /// Skip the confirmation.
    pub yes: bool,
    /// Messages per second.
    pub rate: Option<f64>,
    pub archive: Option<ArchiveSpec>,
    pub hold: Duration,
    pub scan_limit: usize,
}

/// A selected message that stayed in the DLQ, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NotMoved {
    pub message_id: String,
    /// A short code: the service's entry error, `NO_SOURCE_QUEUE`, `RUN_ABORTED`, ...
    pub reason: String,
}

/// What a run did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct MoveReport {
    pub operation: String,
    pub queue: String,
    pub dry_run: bool,
    /// Messages the scan looked at.
    pub scanned: usize,
    pub selected: usize,
    pub moved: usize,
    /// Not selected by the filters (or beyond `--max`).
    pub not_selected: usize,
    /// Arrived in the DLQ after the run began; left alone.
    pub arrived_during_run: usize,
    /// FIFO: left in place behind an earlier message of their group that stays.
    pub held_behind_group: usize,
    /// Moved messages per destination queue (replay).
    pub destinations: BTreeMap<String, usize>,
    /// DLQ message ids moved (dry run: that would move).
    pub moved_ids: Vec<String>,
    pub not_moved: Vec<NotMoved>,
    /// Sent but still in the DLQ because the delete failed: they would be sent again by another
    /// replay.
    pub sent_not_deleted: Vec<String>,
    pub archives: Vec<String>,
    /// Why the run stopped early.
    pub aborted: Option<String>,
    /// The scan stopped at the scan limit; run again for the rest.
    pub scan_limit_reached: bool,
    /// The user did not confirm; nothing changed.
    pub declined: bool,
    /// Dry run on a FIFO queue: only the first messages of each group could be seen.
    pub partial_view: bool,
}

impl MoveReport {
    pub fn complete(&self) -> bool {
        self.not_moved.is_empty() && self.sent_not_deleted.is_empty() && self.aborted.is_none()
    }
}

/// Asks the operator.
pub trait Confirm {
    /// Show `prompt`, return the answer line.
    fn ask(&mut self, prompt: &str) -> std::io::Result<Option<String>>;
}

/// A confirmation from a reader (standard input) with the prompt on a writer (standard error).
pub struct LineConfirm<R, W> {
    pub input: R,
    pub prompt_to: W,
}

impl<R: BufRead, W: Write> Confirm for LineConfirm<R, W> {
    fn ask(&mut self, prompt: &str) -> std::io::Result<Option<String>> {
        write!(self.prompt_to, "{prompt}")?;
        self.prompt_to.flush()?;
        let mut line = String::new();
        if self.input.read_line(&mut line)? == 0 {
            return Ok(None);
        }
        Ok(Some(line.trim().to_string()))
    }
}

/// A destination queue, opened once.
struct Destination {
    queue: Arc<dyn MessageQueue>,
    fifo: bool,
}

/// Everything a run keeps between rounds.
struct Run<'a> {
    backend: &'a dyn Backend,
    req: &'a MoveRequest,
    dlq_id: String,
    started_ms: i64,
    run_id: String,
    report: MoveReport,
    /// FIFO groups that stop here (a message of theirs stays).
    stopped_groups: HashSet<String>,
    /// FIFO groups a message of which could not be sent: their later messages wait too.
    failed_groups: HashSet<String>,
    destinations: HashMap<String, Result<Destination, String>>,
    /// The source queues of this DLQ by redrive policy, for messages without a failure
    /// attribute; loaded on first need.
    redrive_sources: Option<Vec<String>>,
    moved_total: usize,
    moving_since: Option<Instant>,
}

/// Run a replay or purge. `confirm` is asked once, before anything changes.
pub async fn run(
    backend: &dyn Backend,
    dlq: Arc<dyn MessageQueue>,
    req: &MoveRequest,
    run_id: &str,
    confirm: &mut dyn Confirm,
    progress: &mut Progress,
    on_start: &mut dyn FnMut(&MoveReport, usize) -> std::io::Result<()>,
) -> anyhow::Result<MoveReport> {
    let attrs = dlq.attributes().await?;
    let mut run = Run {
        backend,
        req,
        dlq_id: dlq.id().to_string(),
        started_ms: now_ms(),
        run_id: run_id.to_string(),
        report: MoveReport {
            operation: if req.purge { "purge" } else { "replay" }.into(),
            queue: dlq.id().to_string(),
            dry_run: req.dry_run,
            ..MoveReport::default()
        },
        stopped_groups: HashSet::new(),
        failed_groups: HashSet::new(),
        destinations: HashMap::new(),
        redrive_sources: None,
        moved_total: 0,
        moving_since: None,
    };
    let mut scanner = Scanner::new(dlq, req.hold);
    let result = run
        .rounds(
            &mut scanner,
            attrs.fifo,
            attrs.approximate_visible,
            confirm,
            progress,
            on_start,
        )
        .await;
    // Whatever happened, give back what we hold.
    let released = scanner.release_all().await;
    progress.finish();
    if let Err(e) = result {
        // Once something has changed, the operator needs the report more than the error.
        if run.report.moved == 0 && run.report.not_moved.is_empty() {
            return Err(e);
        }
        run.report.aborted = Some(format!("{e:#}"));
    }
    released?;
    Ok(run.report)
}

impl Run<'_> {
    async fn rounds(
        &mut self,
        scanner: &mut Scanner,
        fifo: bool,
        approximate_depth: u64,
        confirm: &mut dyn Confirm,
        progress: &mut Progress,
        on_start: &mut dyn FnMut(&MoveReport, usize) -> std::io::Result<()>,
    ) -> anyhow::Result<()> {
        let mut confirmed = self.req.yes || self.req.dry_run;
        let mut round = 0usize;
        loop {
            round += 1;
            let mut selected = self.scan_round(scanner, fifo).await?;
            if selected.is_empty() {
                return Ok(());
            }
            if self.req.dry_run {
                self.report
                    .moved_ids
                    .extend(selected.iter().map(|d| d.id().to_string()));
                self.report.moved += selected.len();
                for d in &selected {
                    if let Some(dest) = self.destination_name(d).await? {
                        *self.report.destinations.entry(dest).or_default() += 1;
                    }
                }
                // Without moving the first messages of a group, the rest cannot be seen.
                self.report.partial_view = fifo;
                return Ok(());
            }
            if !confirmed {
                let prompt = self.prompt(selected.len(), fifo, approximate_depth);
                let answer = confirm.ask(&prompt)?;
                let count = selected.len().to_string();
                // Only the count itself confirms: "y" typed by reflex does not.
                let ok = answer.as_deref() == Some(count.as_str());
                if !ok {
                    self.report.declined = true;
                    return Ok(());
                }
                confirmed = true;
                // The operator may have taken longer than the hold to answer.
                let lost: HashSet<String> = scanner.extend_now().await?.into_iter().collect();
                if !lost.is_empty() {
                    let (gone, kept): (Vec<Dead>, Vec<Dead>) =
                        selected.into_iter().partition(|d| lost.contains(d.id()));
                    for d in &gone {
                        self.not_moved(d, "HOLD_EXPIRED", fifo);
                    }
                    selected = kept;
                }
            }
            if round == 1 {
                on_start(&self.report, selected.len())?;
                progress.start(if fifo {
                    approximate_depth.max(selected.len() as u64)
                } else {
                    selected.len() as u64
                });
            }
            if let Some(spec) = &self.req.archive {
                let now = format_ms(now_ms());
                let archived: Vec<ArchivedMessage> = selected
                    .iter()
                    .map(|d| ArchivedMessage::of(&self.dlq_id, d, &now))
                    .collect();
                let path = archive::write(spec, &self.run_id, round, &archived).map_err(|e| {
                    anyhow::anyhow!("writing the archive in {}: {e}", spec.dir.display())
                })?;
                self.report.archives.push(path.display().to_string());
            }
            self.move_selected(scanner, selected, fifo, progress)
                .await?;
            if !fifo || self.report.aborted.is_some() {
                return Ok(());
            }
        }
    }

    fn prompt(&self, count: usize, fifo: bool, depth: u64) -> String {
        let what = if self.req.purge {
            "Delete".to_string()
        } else {
            "Replay".to_string()
        };
        let whereto = match (&self.req.to, self.req.purge) {
            (_, true) => String::new(),
            (Some(to), false) => format!(" to {to}"),
            (None, false) => " to their source queues".to_string(),
        };
        let fifo_note = if fifo {
            format!(
                " (FIFO: these are the first messages of their groups; up to about {depth} in all \
                 follow in group order)"
            )
        } else {
            String::new()
        };
        format!(
            "{what} {count} messages from {}{whereto}{fifo_note}? Type {count} to confirm: ",
            self.dlq_id
        )
    }

    /// Receive until nothing new is visible; returns the selected messages of this round in
    /// receive order. Messages not selected stay held until the run ends.
    async fn scan_round(
        &mut self,
        scanner: &mut Scanner,
        fifo: bool,
    ) -> Result<Vec<Dead>, PortError> {
        let mut selected = Vec::new();
        while scanner.held() < self.req.scan_limit {
            let Some(batch) = scanner.next_batch().await? else {
                break;
            };
            for d in batch {
                self.report.scanned += 1;
                let group = d.msg.group_id.clone().filter(|_| fifo);
                if d.msg.sent_timestamp_ms > self.started_ms {
                    self.report.arrived_during_run += 1;
                    self.stop_group(group);
                    continue;
                }
                if let Some(g) = &group
                    && self.stopped_groups.contains(g)
                {
                    self.report.held_behind_group += 1;
                    continue;
                }
                let under_max = self
                    .req
                    .filter
                    .max
                    .is_none_or(|max| self.report.selected < max);
                if !under_max || !self.req.filter.matches(&d, self.started_ms) {
                    self.report.not_selected += 1;
                    self.stop_group(group);
                    continue;
                }
                self.report.selected += 1;
                selected.push(d);
            }
        }
        if scanner.held() >= self.req.scan_limit {
            self.report.scan_limit_reached = true;
        }
        Ok(selected)
    }

    fn stop_group(&mut self, group: Option<String>) {
        if let Some(g) = group {
            self.stopped_groups.insert(g);
        }
    }

    /// Where a message goes: `--to`, else its failure attribute's source queue, else the one
    /// queue whose redrive policy names this DLQ. `None` for purge.
    async fn destination_name(&mut self, d: &Dead) -> Result<Option<String>, PortError> {
        if self.req.purge {
            return Ok(None);
        }
        if let Some(to) = &self.req.to {
            return Ok(Some(to.clone()));
        }
        if let Some(src) = d.source_queue() {
            return Ok(Some(src.to_string()));
        }
        if self.redrive_sources.is_none() {
            let topology = Topology::load(self.backend, "").await?;
            let dlq = self.backend.queue(&self.dlq_id).await?;
            let attrs = dlq.attributes().await?;
            self.redrive_sources = Some(topology.sources_of(dlq.as_ref(), &attrs));
        }
        match self.redrive_sources.as_deref() {
            Some([only]) => Ok(Some(only.clone())),
            _ => Ok(None),
        }
    }

    async fn destination(&mut self, name: &str) -> Result<&Destination, String> {
        if !self.destinations.contains_key(name) {
            let opened = async {
                let queue = self.backend.queue(name).await?;
                let fifo = queue.attributes().await?.fifo;
                Ok::<_, PortError>(Destination { queue, fifo })
            }
            .await
            .map_err(|e| reason_of(&e));
            self.destinations.insert(name.to_string(), opened);
        }
        self.destinations[name].as_ref().map_err(Clone::clone)
    }

    fn not_moved(&mut self, d: &Dead, reason: &str, fifo: bool) {
        self.report.not_moved.push(NotMoved {
            message_id: d.id().to_string(),
            reason: reason.to_string(),
        });
        if fifo && let Some(g) = &d.msg.group_id {
            self.failed_groups.insert(g.clone());
            self.stopped_groups.insert(g.clone());
        }
    }

    async fn move_selected(
        &mut self,
        scanner: &mut Scanner,
        selected: Vec<Dead>,
        fifo: bool,
        progress: &mut Progress,
    ) -> anyhow::Result<()> {
        // Resolve destinations; messages without one stay.
        let mut queued: Vec<(Option<String>, Dead)> = Vec::with_capacity(selected.len());
        for d in selected {
            match self.destination_name(&d).await? {
                Some(dest) => queued.push((Some(dest), d)),
                None if self.req.purge => queued.push((None, d)),
                None => self.not_moved(&d, "NO_SOURCE_QUEUE", fifo),
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

    async fn pace(&mut self, n: usize) {
        let Some(rate) = self.req.rate.filter(|r| *r > 0.0) else {
            return;
        };
        let since = *self.moving_since.get_or_insert_with(Instant::now);
        let due = since + Duration::from_secs_f64(self.moved_total as f64 / rate);
        tokio::time::sleep_until(due.into()).await;
        self.moved_total += n;
    }

    /// Send a batch to one destination; returns the messages that were sent.
    async fn send(
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

    /// Delete what was sent (purge: what was selected).
    async fn delete(
        &mut self,
        scanner: &mut Scanner,
        sent: Vec<Dead>,
        dest: Option<&str>,
        fifo: bool,
        progress: &mut Progress,
    ) -> anyhow::Result<()> {
        if sent.is_empty() {
            return Ok(());
        }
        let receipts: Vec<String> = sent
            .iter()
            .map(|d| scanner.receipt(d.id()).unwrap_or_default().to_string())
            .collect();
        let queue = scanner.queue().clone();
        let result = (|| async { queue.delete_batch(&receipts).await })
            .retry(retry_policy())
            .when(PortError::is_retryable)
            .await;
        let failed: HashSet<usize> = match &result {
            Ok(BatchResult { failed }) => failed.iter().map(|f| f.index).collect(),
            Err(_) => (0..sent.len()).collect(),
        };
        for (i, d) in sent.into_iter().enumerate() {
            if failed.contains(&i) {
                if dest.is_some() {
                    self.report.sent_not_deleted.push(d.id().to_string());
                } else {
                    self.not_moved(&d, "DELETE_FAILED", fifo);
                }
                continue;
            }
            scanner.forget(d.id());
            self.report.moved += 1;
            self.report.moved_ids.push(d.id().to_string());
            if let Some(dest) = dest {
                *self
                    .report
                    .destinations
                    .entry(dest.to_string())
                    .or_default() += 1;
            }
            progress.inc(1);
        }
        if let Err(e) = result {
            self.report.aborted = Some(format!(
                "deleting from the DLQ failed ({}); the run stopped",
                reason_of(&e)
            ));
        }
        Ok(())
    }
}

/// Up to `max` (at most 10) messages for the destination of the first pending one. Standard queues: any of
/// the pending messages with that destination. FIFO: consecutive messages only, at most one per
/// group, so the order within each group holds whatever fails.
fn take_batch(
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

fn retry_policy() -> ExponentialBuilder {
    ExponentialBuilder::default()
        .with_min_delay(Duration::from_millis(200))
        .with_max_delay(Duration::from_secs(5))
        .with_max_times(3)
        .with_jitter()
}

/// A short, body-free reason from a port error.
fn reason_of(e: &PortError) -> String {
    format!("{} {}", e.op, e.kind.as_str())
}

#[cfg(test)]
mod tests {
    use super::*;
    use fleet_core::ReceivedMessage;

    fn dead(id: &str, group: Option<&str>) -> Dead {
        Dead::new(ReceivedMessage {
            message_id: id.into(),
            receipt: format!("r-{id}"),
            body: "b".into(),
            attributes: [("a".to_string(), fleet_core::AttributeValue::string("v"))].into(),
            receive_count: 1,
            sent_timestamp_ms: 0,
            group_id: group.map(str::to_string),
            dedup_id: None,
            sequence_number: None,
        })
    }

    fn ids(batch: &[(Option<String>, Dead)]) -> Vec<&str> {
        batch.iter().map(|(_, d)| d.id()).collect()
    }

    #[test]
    fn standard_batches_gather_one_destination_up_to_ten() {
        let mut pending: VecDeque<(Option<String>, Dead)> = (0..25)
            .map(|i| {
                let dest = if i % 3 == 0 { "b" } else { "a" };
                (Some(dest.to_string()), dead(&format!("m{i}"), None))
            })
            .collect();
        // The first pending message's destination: "b" has m0, m3, ..., m24.
        let first = take_batch(&mut pending, false, 10);
        assert_eq!(
            ids(&first),
            ["m0", "m3", "m6", "m9", "m12", "m15", "m18", "m21", "m24"]
        );
        let second = take_batch(&mut pending, false, 10);
        assert_eq!(second.len(), 10);
        assert!(second.iter().all(|(d, _)| d.as_deref() == Some("a")));
        assert_eq!(ids(&second)[..3], ["m1", "m2", "m4"]);
        assert_eq!(pending.len(), 25 - 9 - 10);
        // A rate below 10 per second caps the batch.
        assert_eq!(ids(&take_batch(&mut pending, false, 2)), ["m16", "m17"]);
    }

    #[test]
    fn fifo_batches_are_consecutive_with_one_message_per_group() {
        let groups = ["g1", "g2", "g1", "g3"];
        let mut pending: VecDeque<(Option<String>, Dead)> = groups
            .iter()
            .enumerate()
            .map(|(i, g)| (Some("q.fifo".to_string()), dead(&format!("m{i}"), Some(g))))
            .collect();
        assert_eq!(ids(&take_batch(&mut pending, true, 10)), ["m0", "m1"]);
        assert_eq!(ids(&take_batch(&mut pending, true, 10)), ["m2", "m3"]);
        assert!(take_batch(&mut pending, true, 10).is_empty());
    }

    #[test]
    fn outgoing_keeps_body_attributes_and_group_with_a_stable_new_dedup_id() {
        let d = dead("dlq-7", Some("patient-1"));
        let fifo = outgoing(&d, true);
        assert_eq!(fifo.body, "b");
        assert_eq!(fifo.attributes, d.msg.attributes);
        assert_eq!(fifo.group_id.as_deref(), Some("patient-1"));
        let dedup = fifo.dedup_id.clone().unwrap();
        assert!(
            dedup.starts_with("replay-") && dedup.len() <= 128,
            "{dedup}"
        );
        assert_eq!(outgoing(&d, true).dedup_id, Some(dedup.clone()));
        assert_ne!(
            outgoing(&dead("dlq-8", Some("patient-1")), true).dedup_id,
            Some(dedup)
        );
        let standard = outgoing(&d, false);
        assert_eq!((standard.group_id, standard.dedup_id), (None, None));
    }
}
