//! All of the runtime's telemetry: typed [`events`] that write the log line and update the
//! metric together; the [`metrics`] on the `metrics` facade (one process-wide Prometheus
//! recorder, series labelled by worker and queue); their [`emf`] rendering; the [`health`]
//! state behind `/health/live`; and the HTTP [`server`].
//!
//! Log lines carry identifiers (message id, error codes, queue, worker) and never a body or an
//! attribute value: events take exactly the fields that may be logged.

pub mod emf;
pub mod events;
pub mod health;
pub mod metrics;
pub mod server;
#[cfg(test)]
mod tests;

use std::io::Write;
use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

pub use emf::EmfState;
pub use events::*;
pub use health::Health;
pub use metrics::{Count, Hist, RunMetrics, Series};
pub use server::serve;

/// One run's metrics and health, shared by every task of the run.
#[derive(Debug)]
pub struct Telemetry {
    pub worker: String,
    pub queue: String,
    pub metrics: RunMetrics,
    pub health: Health,
    /// The run's series when it started: the process's recorder is cumulative, a run reports
    /// what it added.
    start: Series,
}

impl Telemetry {
    pub fn new(worker: &str, queue: &str, stall_threshold: Duration) -> Self {
        let metrics = RunMetrics::register(worker, queue);
        let health = Health::new(stall_threshold);
        metrics.set_up(health.is_live());
        Self {
            worker: worker.to_string(),
            queue: queue.to_string(),
            start: Series::read(worker, queue),
            metrics,
            health,
        }
    }

    /// Prometheus text exposition (format 0.0.4) of the whole process: every worker's series
    /// (this one's `fleet_up` refreshed) and the backend requests by API.
    pub fn render_prometheus(&self) -> String {
        self.refresh_up();
        metrics::mirror_backend_requests();
        metrics::render()
    }

    /// What this run has added to its series so far.
    pub fn run_totals(&self) -> Series {
        Series::read(&self.worker, &self.queue).since(&self.start)
    }

    fn refresh_up(&self) {
        self.metrics.set_up(self.health.is_live());
    }
}

/// How often the recorder's histogram samples are drained and `fleet_up` refreshed when nothing
/// scrapes `/metrics`.
const UPKEEP: Duration = Duration::from_secs(5);

/// Where and how often EMF lines go.
pub struct EmfOutput {
    pub interval: Duration,
    pub out: Box<dyn Write + Send>,
}

/// The run's periodic telemetry work until `stop` is cancelled: recorder upkeep and `fleet_up`
/// every few seconds, and with `emf` an EMF line every interval and a last one at the end.
pub fn spawn_periodic(
    telemetry: Arc<Telemetry>,
    emf: Option<EmfOutput>,
    stop: CancellationToken,
) -> tokio::task::JoinHandle<()> {
    enum Tick {
        Upkeep,
        Emf,
        Stop,
    }
    tokio::spawn(async move {
        let mut upkeep = tokio::time::interval(UPKEEP);
        let mut emf = emf.map(|o| {
            let every = tokio::time::interval(o.interval.max(Duration::from_secs(1)));
            (every, o.out, EmfState::default())
        });
        upkeep.tick().await;
        if let Some((every, _, _)) = &mut emf {
            every.tick().await;
        }
        loop {
            let emf_tick = async {
                match &mut emf {
                    Some((every, _, _)) => {
                        every.tick().await;
                    }
                    None => std::future::pending::<()>().await,
                }
            };
            let tick = tokio::select! {
                _ = upkeep.tick() => Tick::Upkeep,
                () = emf_tick => Tick::Emf,
                () = stop.cancelled() => Tick::Stop,
            };
            match tick {
                Tick::Upkeep => {
                    metrics::upkeep();
                    telemetry.refresh_up();
                }
                Tick::Emf | Tick::Stop => {
                    if let Some((_, out, state)) = &mut emf {
                        let line = telemetry.emf_line(state, emf::now_ms());
                        emf::write_line(out.as_mut(), &line);
                    }
                    if matches!(tick, Tick::Stop) {
                        break;
                    }
                }
            }
        }
    })
}
