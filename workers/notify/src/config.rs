//! Configuration: the worker's identities and knobs, bound to flags and the environment
//! variables registered in `fleet_core::env`; the runtime options are the shared
//! [`RuntimeArgs`] group. Identities (queue, table, rules file) have no defaults.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Subcommand};
use fleet_core::env;
use fleet_runtime::args::required;
use fleet_runtime::{RuntimeArgs, RuntimeDefaults};

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

/// This worker's defaults for the shared runtime options. Rate-limit deferrals count as
/// attempts, so it allows more than other workers.
pub const RUNTIME_DEFAULTS: RuntimeDefaults = RuntimeDefaults {
    concurrency: 8,
    max_attempts: 8,
    ..RuntimeDefaults::STANDARD
};

/// The worker's settings. Units are in the names.
#[derive(Debug, Clone, Args)]
pub struct WorkerConfig {
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
    #[command(flatten)]
    pub runtime: RuntimeArgs,
}

impl WorkerConfig {
    pub fn max_wait(&self) -> Duration {
        Duration::from_secs(self.max_wait_secs)
    }
    /// The identities, or an operator-facing error naming what is missing.
    pub fn identities(&self) -> anyhow::Result<(String, String, PathBuf)> {
        Ok((
            required(&self.queue, "queue", "queue", env::NOTIFY_QUEUE)?,
            required(&self.table, "table", "table", env::NOTIFY_TABLE)?,
            required(&self.rules, "rules file", "rules", env::NOTIFY_RULES)?,
        ))
    }
}
