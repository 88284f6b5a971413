//! Disruptions: the planned kill -9s and SIGTERMs at their seeded moments (seconds after the
//! worker first reported ready), a new worker process after each, and each one's recovery
//! time: from the disruption to the first outcome after the restarted worker was ready.

use std::sync::Arc;
use std::time::{Duration, Instant};

use fleet_core::ports::MessageQueue;

use super::now_us;
use super::workers::Running;
use crate::chaos::{self, Disruption, DisruptionKind};
use crate::scenario::{FaultTarget, Scenario};
use crate::worker;

/// The plan and what has been done of it.
pub(super) struct Disruptions {
    plan: Vec<(f64, DisruptionKind)>,
    next: usize,
    first_ready: Instant,
    start_us: i64,
    drain: Duration,
    done: Vec<Disruption>,
    /// (index into `done`, when it happened, outcomes when the new worker was ready). A
    /// disruption that comes before the last one recovered leaves both pending: each recovers
    /// at the first outcome after its own restart.
    recovering: Vec<(usize, Instant, usize)>,
}

impl Disruptions {
    /// The scenario's plan for `target` (empty when its faults hit the other process), its
    /// moments counted from now (the process first reported ready); `start_us`: the run's
    /// start, which each disruption's `at_s` is counted from.
    pub(super) fn new(scenario: &Scenario, start_us: i64, target: FaultTarget) -> Self {
        let plan = if scenario.faults.target == target {
            chaos::plan(&scenario.faults, scenario.seed)
        } else {
            Vec::new()
        };
        Self {
            plan,
            next: 0,
            first_ready: Instant::now(),
            start_us,
            drain: Duration::from_secs(scenario.worker_drain_deadline_s),
            done: Vec::new(),
            recovering: Vec::new(),
        }
    }

    /// Whether planned disruptions are still to come.
    pub(super) fn left(&self) -> bool {
        self.next < self.plan.len()
    }

    /// With `accounted` outcomes so far, every pending disruption that an outcome came after
    /// has recovered.
    pub(super) fn progress(&mut self, accounted: usize) {
        let done = &mut self.done;
        self.recovering.retain(|&(i, at, base)| {
            let recovered = accounted > base;
            if recovered {
                done[i].recovery_s = Some(at.elapsed().as_secs_f64());
            }
            !recovered
        });
    }

    /// The next planned disruption, once its moment has come.
    pub(super) fn due(&mut self) -> Option<DisruptionKind> {
        let &(due, kind) = self.plan.get(self.next)?;
        if self.first_ready.elapsed().as_secs_f64() < due {
            return None;
        }
        self.next += 1;
        Some(kind)
    }

    /// Do `kind` to the running process, start a new one and wait until it is ready; returns
    /// the progress (`accounted()`: outcomes, or AAs for the gateway) by then. `source`: the
    /// queue whose in-flight count a SIGTERM'd consumer must leave at 0 (`None` for the
    /// gateway, which holds no messages).
    pub(super) async fn disrupt(
        &mut self,
        kind: DisruptionKind,
        accounted: usize,
        running: &mut Running<'_>,
        source: Option<&Arc<dyn MessageQueue>>,
        progress: &(dyn Fn() -> usize + Sync),
    ) -> anyhow::Result<usize> {
        let at = Instant::now();
        let mut d = Disruption {
            kind,
            at_s: (now_us() - self.start_us) as f64 / 1e6,
            accounted_before: accounted,
            exit_s: None,
            exit_ok: None,
            in_flight_after_exit: None,
            ready_s: None,
            recovery_s: None,
        };
        running.cpu += running.worker.cpu_time().await.unwrap_or_default();
        match kind {
            DisruptionKind::Kill => {
                running.worker.kill9().await?;
            }
            DisruptionKind::Term => {
                let exit = running
                    .worker
                    .terminate(self.drain + Duration::from_secs(15))
                    .await;
                d.exit_s = Some(at.elapsed().as_secs_f64());
                d.exit_ok = Some(exit.as_ref().is_ok_and(|s| s.success()));
                if let Some(source) = source {
                    d.in_flight_after_exit = Some(source.attributes().await?.approximate_in_flight);
                }
                let log = running.worker.log_text().await;
                running.finals.extend(worker::final_line(&log));
            }
        }
        running.restart().await?;
        d.ready_s = Some(at.elapsed().as_secs_f64());
        let now_accounted = progress();
        self.done.push(d);
        self.recovering
            .push((self.done.len() - 1, at, now_accounted));
        Ok(now_accounted)
    }

    /// Every disruption as it happened. One still pending had nothing left to do after its
    /// restart: it recovered once its worker was ready.
    pub(super) fn finish(mut self) -> Vec<Disruption> {
        for (i, at, _) in self.recovering {
            let d = &mut self.done[i];
            d.recovery_s = d.ready_s.or(Some(at.elapsed().as_secs_f64()));
        }
        self.done
    }
}
