//! The launcher's command line.

use std::path::{Path, PathBuf};

use clap::{Args, Parser, Subcommand};
use fleet_core::env;

use crate::FleetConfig;

#[derive(Debug, Parser)]
#[command(
    name = "fleet",
    version,
    about = "Runs the fleet's workers in one process"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

/// How `fleet status` prints.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum StatusOutput {
    Text,
    Json,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the whole fleet (hl7-ingest, doc-pipeline, notify) in this process until
    /// SIGTERM/SIGINT. Workers come from fleet.toml (a section each; a worker without one is not
    /// started) or, without a file, from the environment (a worker runs when its queue is set).
    Run {
        #[command(flatten)]
        source: ConfigSource,
        #[command(flatten)]
        page: crate::page::PageArgs,
    },
    /// For every queue the configured workers consume: visible, in flight, delayed, the oldest
    /// message's age, the last poll, its DLQ's depth, oldest age and messages by error code and
    /// worker (from the failure attribute, never a body) with the dlq-replay commands for each;
    /// each worker's liveness and last poll; dead-letters per minute. The data of `fleet run
    /// --health-addr`'s page. On AWS: counts from GetQueueAttributes, DLQ codes from
    /// dlq-replay's non-destructive scan (at most 1,000 messages a DLQ), ages from CloudWatch
    /// where it has them, no last poll.
    Status {
        #[command(flatten)]
        source: ConfigSource,
        /// `text` (lines a queue, then the workers and the dead-letter rate) or `json` (the
        /// object `/status.json` serves).
        #[arg(long, value_enum, default_value_t = StatusOutput::Text)]
        output: StatusOutput,
    },
    /// Preflight of the AWS resources the configuration names: queue and DLQ encryption (KMS),
    /// redrive and maxReceiveCount, visibility against the handler timeout, DLQ alarms on depth
    /// and age, table encryption, point-in-time recovery and TTL, bucket encryption, public
    /// access block and TLS-only policy, topic encryption. Read-only. Exits 1 on any failure.
    Doctor {
        #[command(flatten)]
        source: ConfigSource,
        /// `text` (a table: check, resource, result, detail or how to fix) or `json`.
        #[arg(long, value_enum, default_value_t = StatusOutput::Text)]
        output: StatusOutput,
    },
    /// Container health check: GET URL (plain HTTP, e.g. `http://127.0.0.1:9464/health/live`)
    /// and exit 0 on a 2xx answer within the timeout, 1 otherwise. Images have no curl.
    Probe {
        url: String,
        /// Seconds to wait for the answer.
        #[arg(long, default_value_t = 3)]
        timeout_secs: u64,
    },
    /// On a fresh local backend: create queues, a bus rule and a table, seed generated ADT
    /// messages (well-formed and malformed), process them and print what happened.
    Demo {
        /// Directory for the local backend (SQLite file + objects). Default: a new temporary one.
        #[arg(long)]
        dir: Option<PathBuf>,
        /// Messages to seed.
        #[arg(long, default_value_t = 24)]
        messages: usize,
        /// Of which malformed.
        #[arg(long, default_value_t = 5)]
        malformed: usize,
        /// Seed of the generator.
        #[arg(long, default_value_t = 2026)]
        seed: u64,
    },
}

/// Where `fleet run` and `fleet status` take the fleet's configuration from.
#[derive(Debug, Clone, Args)]
pub struct ConfigSource {
    /// The local backend in DIR (DIR/fleet.sqlite, DIR/objects) with DIR/fleet.toml. On first
    /// use the whole local stack (queues, DLQs, the notify rule, the outbox topics) is created
    /// and a fleet.toml written for it.
    #[arg(long, conflicts_with = "config")]
    pub dir: Option<PathBuf>,
    /// The fleet.toml to use. Default: none (the environment configures the workers).
    #[arg(long, env = env::FLEET_CONFIG)]
    pub config: Option<PathBuf>,
}

impl ConfigSource {
    /// Resolve the configuration (initialising DIR's local stack for `--dir`).
    pub fn resolve(&self) -> anyhow::Result<FleetConfig> {
        match (&self.dir, &self.config) {
            (Some(dir), _) => {
                std::fs::create_dir_all(dir)
                    .map_err(|e| anyhow::anyhow!("creating {}: {e}", dir.display()))?;
                let file = crate::local_stack::init(dir)?;
                let mut config = FleetConfig::load(&file)?;
                config.backend = fleet_runtime::BackendArgs::local_in(dir);
                Ok(config)
            }
            (None, Some(file)) => FleetConfig::load(file),
            (None, None) => FleetConfig::from_env(),
        }
    }

    /// The directory, when `--dir` was given.
    pub fn dir(&self) -> Option<&Path> {
        self.dir.as_deref()
    }
}
