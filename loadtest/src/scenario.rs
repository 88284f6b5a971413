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
    /// Send through the real `mllp-gateway` over MLLP instead of onto the queue directly.
    #[serde(default)]
    pub mllp: Option<Mllp>,
}

/// An MLLP run: the load tool starts the `mllp-gateway` binary routing `ADT^*` to the run's
/// source queue and sends every message over `connections` MLLP connections, each one message
/// at a time and waiting for its ACK, as interface engines do. A message without an AA is
/// resent (on a new connection when the old one failed) until it gets one.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Mllp {
    /// Sender connections open at once.
    pub connections: usize,
    /// The gateway's group-commit linger (`FLEET_MLLP_BATCH_LINGER_MS`); unset keeps its
    /// default (5 ms).
    #[serde(default)]
    pub batch_linger_ms: Option<u64>,
    /// `true`: hl7-ingest runs on the source queue alongside the gateway and the run is
    /// accounted as any other (events, dead letters, records). `false`: no consumer; after the
    /// sending the load tool reads the source queue itself and checks every AA'd message is
    /// on it (the gateway measured alone).
    #[serde(default)]
    pub ingest: bool,
    /// Seconds a sender waits for an ACK before it drops the connection and resends.
    #[serde(default = "default_ack_timeout")]
    pub ack_timeout_s: u64,
}

/// Which process a scenario's kills and SIGTERMs hit.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum FaultTarget {
    /// The consumer (`hl7-ingest`).
    #[default]
    Worker,
    /// The `mllp-gateway` (an MLLP scenario); it restarts on the same port.
    Gateway,
}

impl FaultTarget {
    pub fn as_str(self) -> &'static str {
        match self {
            FaultTarget::Worker => "worker",
            FaultTarget::Gateway => "gateway",
        }
    }
}

/// Disruptions during a run: process kills and restarts, and a fault-injecting proxy between
/// the worker and the AWS endpoint.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Faults {
    /// The process the kills and SIGTERMs hit.
    #[serde(default)]
    pub target: FaultTarget,
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
fn default_ack_timeout() -> u64 {
    30
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
        anyhow::ensure!(
            f.target == FaultTarget::Worker || self.mllp.is_some(),
            "faults.target = \"gateway\" needs an [mllp] table"
        );
        if let Some(m) = &self.mllp {
            anyhow::ensure!(m.connections > 0, "mllp.connections must be > 0");
            anyhow::ensure!(m.ack_timeout_s > 0, "mllp.ack_timeout_s must be > 0");
            anyhow::ensure!(
                self.mode == Mode::Rate,
                "an [mllp] scenario sends while the gateway runs: mode must be \"rate\""
            );
            // Every message is resent until it gets AA, so every one must be one the gateway
            // queues; what it answers to malformed ones is the end-to-end tests' subject.
            anyhow::ensure!(
                self.malformed_fraction == 0.0,
                "an [mllp] scenario resends until AA: malformed_fraction must be 0"
            );
            anyhow::ensure!(
                m.ingest || f.target == FaultTarget::Gateway || f.disruptions() == 0,
                "kills or SIGTERMs of the worker need mllp.ingest = true"
            );
            anyhow::ensure!(
                m.ingest || f.proxy_share == 0.0,
                "the fault proxy sits before the worker: it needs mllp.ingest = true"
            );
        }
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
    fn mllp_scenarios_are_checked_for_what_the_senders_and_the_faults_need() {
        let base = "name='x'\nseed=1\nmessages=10\nmode='rate'\n";
        let parse = |extra: &str| {
            toml::from_str::<Scenario>(&format!("{base}{extra}"))
                .map_err(|e| e.to_string())
                .and_then(|s| s.validate().map(|()| s).map_err(|e| e.to_string()))
        };
        let s = parse("[mllp]\nconnections=10\n[faults]\ntarget='gateway'\nkills=3\n").unwrap();
        let m = s.mllp.unwrap();
        assert_eq!((m.connections, m.ingest, m.ack_timeout_s), (10, false, 30));
        assert_eq!(s.faults.target, FaultTarget::Gateway);
        let err = |extra: &str| parse(extra).unwrap_err();
        assert!(err("[faults]\ntarget='gateway'\n").contains("[mllp]"));
        assert!(err("malformed_fraction=0.1\n[mllp]\nconnections=1\n").contains("malformed"));
        assert!(err("[mllp]\nconnections=0\n").contains("connections"));
        assert!(err("[mllp]\nconnections=1\n[faults]\nkills=1\n").contains("ingest"));
        let preload = toml::from_str::<Scenario>(
            "name='x'\nseed=1\nmessages=10\nmode='preload'\n[mllp]\nconnections=1\n",
        )
        .unwrap();
        assert!(preload.validate().unwrap_err().to_string().contains("rate"));
        // Without [mllp] the faults hit the worker, as before.
        assert_eq!(parse("").unwrap().faults.target, FaultTarget::Worker);
    }

    #[test]
    fn unknown_keys_are_refused() {
        let err =
            toml::from_str::<Scenario>("name='x'\nseed=1\nmessages=1\nmode='preload'\nmesages=2\n")
                .unwrap_err();
        assert!(err.to_string().contains("mesages"), "{err}");
    }
}
