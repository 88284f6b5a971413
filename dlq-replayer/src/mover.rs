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
//! # Where a message may go
//!
//! The source queue in a message's failure attribute is data a producer could forge, so it is a
//! destination only if that queue's redrive policy names this DLQ (else the message stays,
//! [`NOT_A_SOURCE`]); `--to` is the operator's explicit choice and needs no such policy. Every
//! destination, `--to` included, must be encrypted as the workers require of their queues
//! ([`fleet_core::QueueAttributes::encrypted`]; else [`DESTINATION_UNENCRYPTED`]) unless
//! `--allow-unencrypted` is given.
//!
//! A batch that cannot be sent at all (the destination was deleted, permission was revoked)
//! ends the run: everything not yet sent stays in the DLQ and the report lists it.
//!
//! # Code map
//!
//! - this file: the request and report types, the confirmation, the run's rounds, release at
//!   the end;
//! - `selection`: the scan of each round, what is selected and which FIFO groups stop;
//! - `destination`: where a message goes, and opening its destination queue;
//! - `send`: batching, pacing and sending, the outgoing message;
//! - `delete`: deleting from the DLQ what was sent (purge: what was selected).

mod delete;
mod destination;
mod selection;
mod send;
#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::io::{BufRead, Write};
use std::sync::Arc;
use std::time::{Duration, Instant};

use backon::ExponentialBuilder;
use fleet_core::{Backend, MessageQueue, PortError};
use serde::Serialize;

use crate::archive::{self, ArchiveSpec, ArchivedMessage};
use crate::message::{Dead, format_ms, now_ms};
use crate::progress::Progress;
use crate::scan::Scanner;
use crate::select::Filter;
use destination::Destination;

pub use send::outgoing;

/// Reason a message stays: its failure attribute names a queue whose redrive policy does not
/// name this DLQ.
pub const NOT_A_SOURCE: &str = "NOT_A_SOURCE_OF_THIS_DLQ";
/// Reason a message stays: its destination queue is not encrypted (and no override was given).
pub const DESTINATION_UNENCRYPTED: &str = "DESTINATION_UNENCRYPTED";

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
    /// Send to unencrypted destination queues too (the workers' override, local development).
    pub allow_unencrypted: bool,
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

/// Everything a run keeps between rounds.
struct Run<'a> {
    backend: &'a dyn Backend,
    req: &'a MoveRequest,
    dlq_id: String,
    /// The DLQ's ARN (aws) or pseudo-ARN (local): what a source's redrive policy names.
    dlq_arn: String,
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
        dlq_arn: attrs.arn.clone(),
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
                // What a replay would do: a message whose destination is refused stays.
                for d in &selected {
                    match self.resolve(d).await? {
                        Ok(dest) => {
                            self.report.moved += 1;
                            self.report.moved_ids.push(d.id().to_string());
                            if let Some(dest) = dest {
                                *self.report.destinations.entry(dest).or_default() += 1;
                            }
                        }
                        Err(reason) => self.not_moved(d, &reason, fifo),
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
            (Some(to), false) => format!(" to {}", crate::render::escape(to)),
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
            crate::render::escape(&self.dlq_id)
        )
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
