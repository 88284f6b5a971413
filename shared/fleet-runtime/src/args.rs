//! The one configuration group every binary shares: the runtime's knobs ([`RuntimeArgs`]) and
//! the backend choice ([`BackendArgs`]), as clap argument groups with environment fallbacks
//! (names from `fleet_core::env`). A worker's own config flattens [`RuntimeArgs`] and adds only
//! its identities and knobs; the binaries flatten [`BackendArgs`] once. Opening the chosen
//! backend needs the adapters, so it lives in `fleet-backends`, which only binaries link.
//!
//! The runtime fields are optional: each worker brings its own defaults
//! ([`RuntimeDefaults`]), so one flag means the same thing everywhere while an OCR worker and an
//! HL7 worker keep different concurrency.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use fleet_core::env;

use crate::{MetricsFormat, RuntimeConfig};

/// Runtime options shared by every worker. Unset fields take the worker's [`RuntimeDefaults`].
#[derive(Debug, Clone, Default, clap::Args)]
pub struct RuntimeArgs {
    /// Concurrent handlers. Default: the worker's own (hl7-ingest 32, doc-pipeline 2, notify 8).
    #[arg(long, env = env::CONCURRENCY)]
    pub concurrency: Option<usize>,
    /// Attempts before a retryable failure is dead-lettered; keep below the queue's
    /// maxReceiveCount. Default: the worker's own (4; notify 8, since rate-limit deferrals count).
    #[arg(long, env = env::MAX_ATTEMPTS)]
    pub max_attempts: Option<u32>,
    /// Seconds in-flight messages get to finish after SIGTERM. Default: the worker's own.
    #[arg(long, env = env::DRAIN_DEADLINE_SECS)]
    pub drain_deadline_secs: Option<u64>,
    /// Long-poll wait, seconds (0..=20; larger values are taken as 20). Default 20.
    #[arg(long, env = env::WAIT_TIME_SECS)]
    pub wait_time_secs: Option<u64>,
    /// Milliseconds a partial PutEvents batch waits to fill. Longer means fewer requests when
    /// messages arrive slowly, and that much more event latency. Default 10.
    #[arg(long, env = env::PUBLISH_LINGER_MS,
          value_parser = clap::value_parser!(u64).range(0..=5_000))]
    pub publish_linger_ms: Option<u64>,
    /// Milliseconds a partial DeleteMessageBatch waits to fill. It adds no event latency, only
    /// to the window in which a crash redelivers; keep it far below the visibility timeout.
    #[arg(long, env = env::DELETE_LINGER_MS,
          value_parser = clap::value_parser!(u64).range(0..=10_000))]
    pub delete_linger_ms: Option<u64>,
    /// Start even if the queue or its DLQ is unencrypted (local development only).
    #[arg(long, env = env::ALLOW_UNENCRYPTED, action = clap::ArgAction::SetTrue,
          value_parser = clap::builder::BoolishValueParser::new())]
    pub allow_unencrypted: bool,
    /// Buckets a claim-check (SQS Extended Client) pointer may name, comma-separated or
    /// repeated. A pointer to any other bucket is dead-lettered unread
    /// (CLAIM_CHECK_BUCKET_NOT_ALLOWED). Default: none, so claim checks are refused.
    #[arg(long, env = env::CLAIM_CHECK_BUCKETS, value_delimiter = ',')]
    pub claim_check_buckets: Vec<String>,
    /// Health and metrics endpoint address. Unset: no endpoint.
    #[arg(long, env = env::HEALTH_ADDR)]
    pub health_addr: Option<SocketAddr>,
    /// Metrics output: `prometheus` (text on the health endpoint's `/metrics`), `emf`
    /// (CloudWatch Embedded Metric Format lines on stdout every 60 s and at shutdown) or `both`.
    /// Default `prometheus`.
    #[arg(long, env = env::METRICS, value_enum)]
    pub metrics: Option<MetricsFormat>,
}

/// A worker's defaults for the options [`RuntimeArgs`] leaves unset.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RuntimeDefaults {
    pub concurrency: usize,
    pub max_attempts: u32,
    pub drain_deadline: Duration,
    pub publish_linger: Duration,
    pub delete_linger: Duration,
}

impl RuntimeDefaults {
    /// The defaults of a worker that does nothing special.
    pub const STANDARD: Self = Self {
        concurrency: 16,
        max_attempts: 4,
        drain_deadline: Duration::from_secs(20),
        publish_linger: Duration::from_millis(10),
        delete_linger: Duration::from_millis(20),
    };
}

impl RuntimeArgs {
    /// The runtime configuration for `worker` consuming `queue`.
    pub fn runtime_config(
        &self,
        worker: &str,
        queue: &str,
        defaults: &RuntimeDefaults,
    ) -> RuntimeConfig {
        let mut rt = RuntimeConfig::new(worker, queue);
        rt.concurrency = self.concurrency.unwrap_or(defaults.concurrency).max(1);
        rt.max_attempts = self.max_attempts.unwrap_or(defaults.max_attempts).max(1);
        rt.drain_deadline = self
            .drain_deadline_secs
            .map_or(defaults.drain_deadline, Duration::from_secs);
        rt.wait_time = Duration::from_secs(self.wait_time_secs.unwrap_or(20).min(20));
        rt.delete_linger = self
            .delete_linger_ms
            .map_or(defaults.delete_linger, Duration::from_millis);
        rt.allow_unencrypted = self.allow_unencrypted;
        rt.claim_check_buckets = self
            .claim_check_buckets
            .iter()
            .map(|b| b.trim().to_string())
            .filter(|b| !b.is_empty())
            .collect();
        rt.health_addr = self.health_addr;
        rt.metrics_format = self.metrics.unwrap_or_default();
        rt
    }

    /// How long a partial PutEvents batch waits.
    pub fn publish_linger(&self, defaults: &RuntimeDefaults) -> Duration {
        self.publish_linger_ms
            .map_or(defaults.publish_linger, Duration::from_millis)
    }
}

/// An identity (queue, bus, table, bucket, file) a worker cannot run without.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("no {what} configured: set {var} or pass --{flag}")]
pub struct MissingIdentity {
    pub what: &'static str,
    pub flag: &'static str,
    pub var: &'static str,
}

/// `value`, or the operator-facing error naming the flag and the variable that set it.
pub fn required<T: Clone>(
    value: &Option<T>,
    what: &'static str,
    flag: &'static str,
    var: &'static str,
) -> Result<T, MissingIdentity> {
    value.clone().ok_or(MissingIdentity { what, flag, var })
}

/// Which backend a binary runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum BackendKind {
    /// SQLite file + a directory: the embedded default.
    Local,
    /// SQS, EventBridge, DynamoDB, S3 through the standard AWS configuration chain.
    Aws,
}

/// Backend options shared by every binary. `fleet_backends::open` opens what they select.
#[derive(Debug, Clone, clap::Args)]
pub struct BackendArgs {
    /// `local` or `aws`. Default: `aws` when AWS_REGION, AWS_DEFAULT_REGION, AWS_PROFILE or
    /// AWS_ENDPOINT_URL is set, otherwise `local`.
    #[arg(long, env = env::BACKEND, value_enum)]
    pub backend: Option<BackendKind>,
    /// Local backend: SQLite file.
    #[arg(long, env = env::LOCAL_DB, default_value = ".fleet-local/fleet.sqlite")]
    pub local_db: PathBuf,
    /// Local backend: object-store directory.
    #[arg(long, env = env::LOCAL_OBJECTS, default_value = ".fleet-local/objects")]
    pub local_objects: PathBuf,
    /// Local backend: open the SQLite file even though group or others have access to it
    /// (refused otherwise: it holds patient data).
    #[arg(long, env = env::ALLOW_SHARED_DB, action = clap::ArgAction::SetTrue,
          value_parser = clap::builder::BoolishValueParser::new())]
    pub allow_shared_db: bool,
    /// AWS backend: KMS key for SSE-KMS on object puts (default: the bucket's aws/s3 key).
    #[arg(long, env = env::S3_KMS_KEY)]
    pub s3_kms_key_id: Option<String>,
}

impl BackendArgs {
    /// The local backend in `dir`: `dir/fleet.sqlite` and `dir/objects`.
    pub fn local_in(dir: &std::path::Path) -> Self {
        Self {
            backend: Some(BackendKind::Local),
            local_db: dir.join("fleet.sqlite"),
            local_objects: dir.join("objects"),
            allow_shared_db: false,
            s3_kms_key_id: None,
        }
    }

    /// The kind to use: explicit, else inferred from the AWS environment.
    pub fn kind(&self) -> BackendKind {
        self.backend.unwrap_or_else(|| {
            if env::aws_configured() {
                BackendKind::Aws
            } else {
                BackendKind::Local
            }
        })
    }
}

/// The PHI-policy option of workers whose events can carry patient data.
#[derive(Debug, Clone, Copy, clap::Args)]
pub struct PhiPolicyArgs {
    /// PHI carried by events: `minimal` (identifiers and event facts) or `full`.
    #[arg(long = "phi-policy", env = env::PHI_POLICY, default_value = "minimal")]
    pub phi_policy: fleet_core::PhiPolicy,
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Debug, Parser)]
    struct Cli {
        #[command(flatten)]
        runtime: RuntimeArgs,
    }

    const DEFAULTS: RuntimeDefaults = RuntimeDefaults {
        concurrency: 7,
        max_attempts: 3,
        drain_deadline: Duration::from_secs(9),
        publish_linger: Duration::from_millis(4),
        delete_linger: Duration::from_millis(5),
    };

    #[test]
    fn unset_options_take_the_workers_defaults_and_set_ones_win() {
        let unset = Cli::try_parse_from(["w"]).unwrap().runtime;
        let rt = unset.runtime_config("w", "q", &DEFAULTS);
        assert_eq!(
            (
                rt.concurrency,
                rt.max_attempts,
                rt.drain_deadline,
                rt.delete_linger
            ),
            (7, 3, Duration::from_secs(9), Duration::from_millis(5))
        );
        assert_eq!(unset.publish_linger(&DEFAULTS), Duration::from_millis(4));
        assert!(!rt.allow_unencrypted);
        assert_eq!(rt.metrics_format, MetricsFormat::Prometheus);

        let set = Cli::try_parse_from([
            "w",
            "--concurrency",
            "0",
            "--max-attempts",
            "6",
            "--wait-time-secs",
            "25",
            "--delete-linger-ms",
            "1",
            "--allow-unencrypted",
            "--metrics",
            "emf",
        ])
        .unwrap()
        .runtime;
        let rt = set.runtime_config("w", "q", &DEFAULTS);
        assert_eq!(rt.metrics_format, MetricsFormat::Emf);
        assert!(rt.metrics_format.emf() && !rt.metrics_format.prometheus());
        assert_eq!(rt.concurrency, 1, "at least one slot");
        assert_eq!(rt.max_attempts, 6);
        assert_eq!(rt.wait_time, Duration::from_secs(20), "SQS's maximum");
        assert_eq!(rt.delete_linger, Duration::from_millis(1));
        assert!(rt.allow_unencrypted);
    }

    #[test]
    fn claim_check_buckets_are_a_comma_separated_list_and_none_by_default() {
        let unset = Cli::try_parse_from(["w"]).unwrap().runtime;
        assert!(
            unset
                .runtime_config("w", "q", &DEFAULTS)
                .claim_check_buckets
                .is_empty()
        );
        let set = Cli::try_parse_from([
            "w",
            "--claim-check-buckets",
            "offload-a, offload-b,",
            "--claim-check-buckets=offload-c",
        ])
        .unwrap()
        .runtime;
        assert_eq!(
            set.runtime_config("w", "q", &DEFAULTS).claim_check_buckets,
            ["offload-a", "offload-b", "offload-c"]
        );
    }

    #[test]
    fn a_missing_identity_names_its_flag_and_variable() {
        let e = required::<String>(&None, "event bus", "event-bus", "FLEET_EVENT_BUS").unwrap_err();
        assert_eq!(
            e.to_string(),
            "no event bus configured: set FLEET_EVENT_BUS or pass --event-bus"
        );
        assert_eq!(required(&Some(3), "x", "x", "X"), Ok(3));
    }

    #[test]
    fn out_of_range_lingers_are_refused() {
        assert!(Cli::try_parse_from(["w", "--publish-linger-ms", "5001"]).is_err());
        assert!(Cli::try_parse_from(["w", "--delete-linger-ms", "10001"]).is_err());
    }

    #[test]
    fn metrics_outputs_are_named_and_others_refused() {
        for (value, format) in [
            ("prometheus", MetricsFormat::Prometheus),
            ("emf", MetricsFormat::Emf),
            ("both", MetricsFormat::Both),
        ] {
            let args = Cli::try_parse_from(["w", "--metrics", value])
                .unwrap()
                .runtime;
            assert_eq!(args.metrics, Some(format));
        }
        assert!(Cli::try_parse_from(["w", "--metrics", "statsd"]).is_err());
        // The flag reads FLEET_METRICS when it is not given.
        let arg = <Cli as clap::CommandFactory>::command()
            .get_arguments()
            .find(|a| a.get_id() == "metrics")
            .map(|a| a.get_env().map(|e| e.to_os_string()));
        assert_eq!(arg, Some(Some(env::METRICS.into())));
    }
}
