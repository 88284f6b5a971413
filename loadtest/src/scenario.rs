//! Scenarios: data files (`loadtest/scenarios/*.toml`) saying what stream to generate and how to
//! drive the worker with it. Command-line flags override single fields.

use std::path::Path;

use anyhow::Context;
use serde::{Deserialize, Serialize};

/// How messages reach the queue.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum Mode {
    /// Every message is on the queue before the worker starts: saturation (throughput, request
    /// cost at full batches). Latency then mostly measures queueing.
    Preload,
    /// The worker runs first; messages are sent at `rate_per_s` (0: as fast as the sender goes).
    Rate,
}

/// One scenario file.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Scenario {
    pub name: String,
    /// Seed of the generator: the same seed gives the same bodies, byte for byte.
    pub seed: u64,
    pub messages: usize,
    pub mode: Mode,
    /// Messages per second in `rate` mode; 0 = as fast as possible.
    #[serde(default)]
    pub rate_per_s: u32,
    /// Share of bodies that are malformed (each must be dead-lettered with its code).
    #[serde(default)]
    pub malformed_fraction: f64,
    /// Share of well-formed messages that are merges (A40 with MRG).
    #[serde(default = "default_merge")]
    pub merge_fraction: f64,
    /// Patients with an open episode at any time; more means fewer same-patient messages in
    /// flight together.
    #[serde(default = "default_active")]
    pub active_patients: usize,
    /// Optional segments (NK1, OBX, AL1, DG1, IN1, ...) added per message, drawn uniformly from
    /// this inclusive range: real feeds carry 1-6 KB ADT messages.
    #[serde(default = "default_extra")]
    pub extra_segments: [usize; 2],
    /// The worker's handler concurrency (`FLEET_CONCURRENCY`).
    #[serde(default = "default_concurrency")]
    pub worker_concurrency: usize,
    /// The worker's long-poll wait (`FLEET_WAIT_TIME_SECS`). 20 s as in production; a short
    /// one makes a small run stop sooner (a poller finishes its long poll before exiting).
    #[serde(default = "default_wait")]
    pub worker_wait_time_s: u64,
    /// The worker's PutEvents linger (`FLEET_PUBLISH_LINGER_MS`); unset keeps its default.
    #[serde(default)]
    pub worker_publish_linger_ms: Option<u64>,
    /// The worker's DeleteMessageBatch linger (`FLEET_DELETE_LINGER_MS`); unset keeps its default.
    #[serde(default)]
    pub worker_delete_linger_ms: Option<u64>,
    /// Give up waiting for outstanding messages after this long without progress.
    #[serde(default = "default_idle")]
    pub idle_timeout_s: u64,
}

fn default_merge() -> f64 {
    0.03
}
fn default_active() -> usize {
    500
}
fn default_extra() -> [usize; 2] {
    [8, 44]
}
fn default_concurrency() -> usize {
    32
}
fn default_wait() -> u64 {
    20
}
fn default_idle() -> u64 {
    60
}

impl Scenario {
    pub fn load(path: &Path) -> anyhow::Result<Scenario> {
        let text =
            std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        let s: Scenario =
            toml::from_str(&text).with_context(|| format!("parsing {}", path.display()))?;
        s.validate()?;
        Ok(s)
    }

    pub fn validate(&self) -> anyhow::Result<()> {
        anyhow::ensure!(self.messages > 0, "messages must be > 0");
        anyhow::ensure!(
            (0.0..=1.0).contains(&self.malformed_fraction),
            "malformed_fraction must be within 0..=1"
        );
        anyhow::ensure!(
            (0.0..=1.0).contains(&self.merge_fraction),
            "merge_fraction must be within 0..=1"
        );
        anyhow::ensure!(self.active_patients > 0, "active_patients must be > 0");
        anyhow::ensure!(
            self.extra_segments[0] <= self.extra_segments[1],
            "extra_segments must be [min, max]"
        );
        anyhow::ensure!(
            self.worker_wait_time_s <= 20,
            "worker_wait_time_s must be <= 20"
        );
        anyhow::ensure!(
            self.worker_concurrency > 0,
            "worker_concurrency must be > 0"
        );
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_shipped_scenario_parses() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios");
        let mut n = 0;
        for e in std::fs::read_dir(&dir).unwrap() {
            let p = e.unwrap().path();
            if p.extension().is_some_and(|x| x == "toml") {
                Scenario::load(&p).unwrap();
                n += 1;
            }
        }
        assert!(n >= 3, "found {n} scenarios");
    }

    #[test]
    fn unknown_keys_are_refused() {
        let err =
            toml::from_str::<Scenario>("name='x'\nseed=1\nmessages=1\nmode='preload'\nmesages=2\n")
                .unwrap_err();
        assert!(err.to_string().contains("mesages"), "{err}");
    }
}
