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
    /// The source queue's visibility timeout. Messages a killed worker held come back after it.
    #[serde(default = "default_visibility")]
    pub visibility_timeout_s: u64,
    /// The worker's drain deadline (`FLEET_DRAIN_DEADLINE_SECS`); a SIGTERM'd worker must exit
    /// within it.
    #[serde(default = "default_drain")]
    pub worker_drain_deadline_s: u64,
    /// The worker's largest accepted HL7 message (`FLEET_HL7_MAX_MESSAGE_BYTES`); unset keeps its
    /// default. The generator's oversized poison messages are sized above this.
    #[serde(default)]
    pub worker_max_message_bytes: Option<usize>,
    /// What is done to the worker and its requests during the run.
    #[serde(default)]
    pub faults: Faults,
}

/// Disruptions during a run: process kills and restarts, and a fault-injecting proxy between
/// the worker and the AWS endpoint.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Faults {
    /// `kill -9` the worker this many times, restarting it each time.
    #[serde(default)]
    pub kills: u32,
    /// SIGTERM the worker this many times (each must exit within the drain deadline and leave
    /// nothing invisible), restarting it each time.
    #[serde(default)]
    pub sigterms: u32,
    /// The disruptions happen at moments drawn (seeded) uniformly from this window, in seconds
    /// after the worker first reports ready, in random order of kind.
    #[serde(default = "default_window")]
    pub window_s: [f64; 2],
    /// aws only: the share of the worker's requests the fault proxy disturbs (0 = no proxy).
    #[serde(default)]
    pub proxy_share: f64,
    /// What the proxy does to a disturbed request, chosen uniformly; empty = all kinds.
    #[serde(default)]
    pub proxy_kinds: Vec<FaultKind>,
    /// How long a `slow` response is held, drawn uniformly from this range (milliseconds).
    #[serde(default = "default_slow")]
    pub proxy_slow_ms: [u64; 2],
}

/// One way the fault proxy disturbs a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum FaultKind {
    /// HTTP 400 `ThrottlingException`, without forwarding the request.
    Throttle,
    /// HTTP 500 `InternalFailure`, without forwarding the request.
    ServerError,
    /// Forwarded, the answer held back for `proxy_slow_ms`.
    Slow,
    /// Forwarded (the service acts on it), then the connection is closed without the answer.
    Drop,
}

impl FaultKind {
    pub const ALL: [FaultKind; 4] = [
        FaultKind::Throttle,
        FaultKind::ServerError,
        FaultKind::Slow,
        FaultKind::Drop,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            FaultKind::Throttle => "throttle",
            FaultKind::ServerError => "server-error",
            FaultKind::Slow => "slow",
            FaultKind::Drop => "drop",
        }
    }
}

impl Faults {
    pub fn disruptions(&self) -> u32 {
        self.kills + self.sigterms
    }

    pub fn kinds(&self) -> Vec<FaultKind> {
        if self.proxy_kinds.is_empty() {
            FaultKind::ALL.to_vec()
        } else {
            self.proxy_kinds.clone()
        }
    }
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
fn default_visibility() -> u64 {
    60
}
fn default_drain() -> u64 {
    10
}
fn default_window() -> [f64; 2] {
    [1.0, 10.0]
}
fn default_slow() -> [u64; 2] {
    [200, 2000]
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
        anyhow::ensure!(
            self.visibility_timeout_s >= 2,
            "visibility_timeout_s must be >= 2"
        );
        anyhow::ensure!(
            self.faults.sigterms == 0 || self.worker_drain_deadline_s >= self.worker_wait_time_s,
            "with SIGTERMs, worker_drain_deadline_s must be >= worker_wait_time_s (a poll in progress ends within its wait)"
        );
        let f = &self.faults;
        anyhow::ensure!(
            (0.0..=1.0).contains(&f.proxy_share),
            "faults.proxy_share must be within 0..=1"
        );
        anyhow::ensure!(
            0.0 <= f.window_s[0] && f.window_s[0] <= f.window_s[1],
            "faults.window_s must be [from, to] with 0 <= from <= to"
        );
        anyhow::ensure!(
            f.proxy_slow_ms[0] <= f.proxy_slow_ms[1],
            "faults.proxy_slow_ms must be [min, max]"
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
        let mut faulted = 0;
        for d in [dir.clone(), dir.join("reliability")] {
            for e in std::fs::read_dir(&d).unwrap() {
                let p = e.unwrap().path();
                if p.extension().is_some_and(|x| x == "toml") {
                    let s = Scenario::load(&p).unwrap();
                    n += 1;
                    if s.faults.disruptions() > 0 || s.faults.proxy_share > 0.0 {
                        faulted += 1;
                    }
                }
            }
        }
        assert!(n >= 8, "found {n} scenarios");
        assert!(faulted >= 5, "found {faulted} scenarios with faults");
    }

    #[test]
    fn unknown_keys_are_refused() {
        let err =
            toml::from_str::<Scenario>("name='x'\nseed=1\nmessages=1\nmode='preload'\nmesages=2\n")
                .unwrap_err();
        assert!(err.to_string().contains("mesages"), "{err}");
    }
}
