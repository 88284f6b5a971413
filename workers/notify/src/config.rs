//! Configuration: one typed struct, bound to flags and the environment variables registered in
//! `fleet_core::env`. Identities (queue, table, rules file) have no defaults.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use fleet_backends::BackendArgs;
use fleet_core::env;

#[derive(Debug, Parser)]
#[command(
    name = "notify",
    version,
    about = "EventBridge events from an SQS queue to notifications (SNS) without patient data"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
    #[command(flatten)]
    pub worker: WorkerConfig,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the worker (the default).
    Run,
    /// Check a rules file: parse every rule, pattern and template; print the rule names.
    Check {
        #[arg(long, env = env::NOTIFY_RULES)]
        rules: PathBuf,
    },
}

/// The worker's settings. Units are in the names.
#[derive(Debug, Clone, Args)]
pub struct WorkerConfig {
    #[command(flatten)]
    pub backend: BackendArgs,
    /// Source queue (EventBridge rule → SQS, or SNS → SQS): name or URL.
    #[arg(long, env = env::NOTIFY_QUEUE)]
    pub queue: Option<String>,
    /// Records table for delivery records (event id + rule).
    #[arg(long, env = env::NOTIFY_TABLE)]
    pub table: Option<String>,
    /// The rules file (TOML).
    #[arg(long, env = env::NOTIFY_RULES)]
    pub rules: Option<PathBuf>,
    /// Notifications per second per destination.
    #[arg(long, env = env::NOTIFY_RATE_PER_SEC, default_value_t = 1.0)]
    pub rate_per_sec: f64,
    /// Notifications a destination may receive at once before the rate applies.
    #[arg(long, env = env::NOTIFY_BURST, default_value_t = 5)]
    pub burst: u32,
    /// Longest wait for a destination's rate limit inside the handler; beyond it the message
    /// is deferred (visibility) and retried later.
    #[arg(long, env = env::NOTIFY_MAX_WAIT_SECS, default_value_t = 5)]
    pub max_wait_secs: u64,
    /// Print each published notification as a JSON line on stdout (local development).
    #[arg(long, env = env::NOTIFY_STDOUT, action = clap::ArgAction::SetTrue,
          value_parser = clap::builder::BoolishValueParser::new())]
    pub print: bool,
    /// Concurrent handlers.
    #[arg(long, env = env::CONCURRENCY, default_value_t = 8)]
    pub concurrency: usize,
    /// Attempts before a retryable failure is dead-lettered; keep below the queue's
    /// maxReceiveCount. Rate-limit deferrals count, so it is higher than other workers'.
    #[arg(long, env = env::MAX_ATTEMPTS, default_value_t = 8)]
    pub max_attempts: u32,
    /// Seconds in-flight messages get to finish after SIGTERM.
    #[arg(long, env = env::DRAIN_DEADLINE_SECS, default_value_t = 20)]
    pub drain_deadline_secs: u64,
    /// Long-poll wait, seconds (0..=20).
    #[arg(long, env = env::WAIT_TIME_SECS, default_value_t = 20)]
    pub wait_time_secs: u64,
    /// Start even if the queue or its DLQ is unencrypted (local development only).
    #[arg(long, env = env::ALLOW_UNENCRYPTED, action = clap::ArgAction::SetTrue,
          value_parser = clap::builder::BoolishValueParser::new())]
    pub allow_unencrypted: bool,
    /// Health and metrics endpoint address.
    #[arg(long, env = env::HEALTH_ADDR)]
    pub health_addr: Option<SocketAddr>,
}

impl WorkerConfig {
    pub fn drain_deadline(&self) -> Duration {
        Duration::from_secs(self.drain_deadline_secs)
    }
    pub fn wait_time(&self) -> Duration {
        Duration::from_secs(self.wait_time_secs.min(20))
    }
    pub fn max_wait(&self) -> Duration {
        Duration::from_secs(self.max_wait_secs)
    }
    /// The identities, or an operator-facing error naming what is missing.
    pub fn identities(&self) -> anyhow::Result<(String, String, PathBuf)> {
        let missing = |what: &str, flag: &str, var: &str| {
            anyhow::anyhow!("no {what} configured: set {var} or pass --{flag}")
        };
        Ok((
            self.queue
                .clone()
                .ok_or_else(|| missing("queue", "queue", env::NOTIFY_QUEUE))?,
            self.table
                .clone()
                .ok_or_else(|| missing("table", "table", env::NOTIFY_TABLE))?,
            self.rules
                .clone()
                .ok_or_else(|| missing("rules file", "rules", env::NOTIFY_RULES))?,
        ))
    }
}
