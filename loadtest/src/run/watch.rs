//! Watching the run: until every message has an outcome and every planned disruption has
//! happened (or nothing moves for the scenario's idle timeout, or the worker dies), then the
//! end: the sender finishes, redeliveries after a kill are waited for, the worker is stopped
//! and what it left on the source queue and in its log is read.

use std::process::ExitStatus;
use std::sync::Arc;
use std::time::{Duration, Instant};

use fleet_core::ports::MessageQueue;
use tokio::task::JoinHandle;

use super::Tally;
use super::disrupt::Disruptions;
use super::workers::Running;
use crate::chaos::Disruption;
use crate::scenario::{FaultTarget, Scenario};
use crate::worker::{self, FinalLine};

/// What the watch leaves for the end.
pub(super) struct Watched<'a> {
    running: Running<'a>,
    disruptions: Vec<Disruption>,
    /// The worker exited on its own.
    worker_died: Option<ExitStatus>,
}

/// Wait until every message has an outcome (and every disruption has happened), or nothing
/// moves for `idle_timeout_s`, or the worker exits. `start_us`: the run's start.
pub(super) async fn watch<'a>(
    scenario: &Scenario,
    source: &Arc<dyn MessageQueue>,
    tally: &Tally<'_>,
    mut running: Running<'a>,
    start_us: i64,
) -> anyhow::Result<Watched<'a>> {
    let mut disruptions = Disruptions::new(scenario, start_us, FaultTarget::Worker);
    let total = tally.messages.len();
    let idle = Duration::from_secs(scenario.idle_timeout_s);
    let mut last_progress = (0usize, Instant::now());
    let mut worker_died = None;
    loop {
        let accounted = tally.accounted();
        disruptions.progress(accounted);
        if let Some(kind) = disruptions.due() {
            let now_accounted = disruptions
                .disrupt(kind, accounted, &mut running, Some(source), &|| {
                    tally.accounted()
                })
                .await?;
            last_progress = (now_accounted, Instant::now());
            continue;
        }
        let disruptions_left = disruptions.left();
        if accounted >= total && !disruptions_left {
            break;
        }
        if accounted != last_progress.0 {
            last_progress = (accounted, Instant::now());
        } else if last_progress.1.elapsed() > idle && !disruptions_left {
            eprintln!(
                "loadtest: no progress for {idle:?} with {accounted} of {total} accounted for; stopping"
            );
            break;
        }
        if let Some(status) = running.worker.exited() {
            worker_died = Some(status);
            eprintln!("loadtest: the worker exited early ({status})");
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Ok(Watched {
        running,
        disruptions: disruptions.finish(),
        worker_died,
    })
}

/// How the run ended.
pub(super) struct Ended {
    /// CPU time of every worker process.
    pub cpu: Duration,
    pub exit: String,
    /// Visible + in flight on the source after the last worker exited.
    pub left_on_source: u64,
    /// The final lines of the workers that wrote one, added up.
    pub fin: FinalLine,
    pub disruptions: Vec<Disruption>,
}

/// Let the sender finish, wait for redeliveries after a disruption (or, with `drain_source`,
/// always: an MLLP run's resent copies), stop the worker and read what it left.
pub(super) async fn end(
    scenario: &Scenario,
    source: &Arc<dyn MessageQueue>,
    watched: Watched<'_>,
    sender: Option<JoinHandle<anyhow::Result<()>>>,
    drain_source: bool,
) -> anyhow::Result<Ended> {
    let Watched {
        mut running,
        disruptions,
        worker_died,
    } = watched;
    if let Some(sender) = sender {
        sender.await??;
    }
    // After a kill, messages the dead worker held (processed but not deleted) come back when
    // their visibility timeout ends and are processed again: wait for the source to empty.
    if (drain_source || !disruptions.is_empty()) && worker_died.is_none() {
        let visibility = Duration::from_secs(scenario.visibility_timeout_s);
        let idle = Duration::from_secs(scenario.idle_timeout_s);
        let limit = Instant::now() + visibility + idle;
        loop {
            let a = source.attributes().await?;
            if a.approximate_visible + a.approximate_in_flight == 0 || Instant::now() > limit {
                break;
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }
    running.cpu += running.worker.cpu_time().await.unwrap_or_default();
    let exit = match worker_died {
        Some(s) => s,
        None => running.worker.terminate(Duration::from_secs(60)).await?,
    };
    // The worker flushed its deletes on exit: what is left on the source is final.
    let left = source.attributes().await?;
    let log_text = running.worker.log_text().await;
    let last = worker::final_line(&log_text);
    if last.as_ref().is_none_or(|f| f.requests.is_empty()) {
        eprintln!(
            "loadtest: the worker's log has no `run finished` line with request counts ({})",
            running.worker.log.display()
        );
    }
    running.finals.extend(last);
    Ok(Ended {
        cpu: running.cpu,
        exit: exit.to_string(),
        left_on_source: left.approximate_visible + left.approximate_in_flight,
        fin: FinalLine::sum(&running.finals),
        disruptions,
    })
}
