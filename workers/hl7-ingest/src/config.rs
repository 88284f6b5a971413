//! Configuration: one typed struct, bound to flags and the environment variables registered in
//! `fleet_core::env`. Identities (queue, bus, table) have no defaults.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use fleet_backends::BackendArgs;
use fleet_core::env;

use crate::events::PhiPolicy;

#[derive(Debug, Parser)]
#[command(
    name = "hl7-ingest",
    version,
    about = "HL7 v2 ADT messages from an SQS queue to records and Patient* events"
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
    /// Print one JSON line per message found in FILEs (any line endings, BOM, MLLP, batches).
    /// Writes to no store; exits 0 when every file could be read.
    Inspect {
        #[arg(required = true)]
        files: Vec<PathBuf>,
        /// IANA time zone for message times without an offset.
        #[arg(long, env = env::HL7_TIMEZONE, default_value = "UTC")]
        timezone: chrono_tz::Tz,
    },
}

/// The worker's settings. Units are in the names.
#[derive(Debug, Clone, Args)]
pub struct WorkerConfig {
    #[command(flatten)]
    pub backend: BackendArgs,
    /// Source queue: name or URL.
    #[arg(long, env = env::HL7_QUEUE)]
    pub queue: Option<String>,
    /// Event bus for Patient* events.
    #[arg(long, env = env::EVENT_BUS)]
    pub event_bus: Option<String>,
    /// Records table (patients, encounters, events).
    #[arg(long, env = env::HL7_TABLE)]
    pub table: Option<String>,
    /// PHI carried by events.
    #[arg(long, env = env::PHI_POLICY, value_enum, default_value = "minimal")]
    pub phi_policy: PhiPolicy,
    /// IANA time zone for message times without an offset.
    #[arg(long, env = env::HL7_TIMEZONE, default_value = "UTC")]
    pub timezone: chrono_tz::Tz,
    /// Largest HL7 message accepted, in bytes; a larger one is dead-lettered as BODY_TOO_LARGE
    /// before any parsing.
    #[arg(long, env = env::HL7_MAX_MESSAGE_BYTES, default_value_t = 1024 * 1024,
          value_parser = clap::value_parser!(u64).range(64..=16 * 1024 * 1024))]
    pub max_message_bytes: u64,
    /// Concurrent handlers.
    #[arg(long, env = env::CONCURRENCY, default_value_t = 32)]
    pub concurrency: usize,
    /// Attempts before a retryable failure is dead-lettered; keep below the queue's maxReceiveCount.
    #[arg(long, env = env::MAX_ATTEMPTS, default_value_t = 4)]
    pub max_attempts: u32,
    /// Seconds in-flight messages get to finish after SIGTERM.
    #[arg(long, env = env::DRAIN_DEADLINE_SECS, default_value_t = 20)]
    pub drain_deadline_secs: u64,
    /// Long-poll wait, seconds (0..=20).
    #[arg(long, env = env::WAIT_TIME_SECS, default_value_t = 20)]
    pub wait_time_secs: u64,
    /// Milliseconds a partial PutEvents batch waits to fill. Longer means fewer requests when
    /// messages arrive slowly, and that much more event latency.
    #[arg(long, env = env::PUBLISH_LINGER_MS, default_value_t = 10,
          value_parser = clap::value_parser!(u64).range(0..=5_000))]
    pub publish_linger_ms: u64,
    /// Milliseconds a partial DeleteMessageBatch waits to fill. It adds no event latency, only
    /// to the window in which a crash redelivers; keep it far below the visibility timeout.
    #[arg(long, env = env::DELETE_LINGER_MS, default_value_t = 50,
          value_parser = clap::value_parser!(u64).range(0..=10_000))]
    pub delete_linger_ms: u64,
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
    pub fn publish_linger(&self) -> Duration {
        Duration::from_millis(self.publish_linger_ms)
    }
    pub fn delete_linger(&self) -> Duration {
        Duration::from_millis(self.delete_linger_ms)
    }
    pub fn wait_time(&self) -> Duration {
        Duration::from_secs(self.wait_time_secs.min(20))
    }
    /// The identities, or an operator-facing error naming what is missing.
    pub fn identities(&self) -> anyhow::Result<(String, String, String)> {
        let missing = |what: &str, var: &str| {
            anyhow::anyhow!(
                "no {what} configured: set {var} or pass --{}",
                what.replace(' ', "-")
            )
        };
        Ok((
            self.queue
                .clone()
                .ok_or_else(|| missing("queue", env::HL7_QUEUE))?,
            self.event_bus
                .clone()
                .ok_or_else(|| missing("event bus", env::EVENT_BUS))?,
            self.table
                .clone()
                .ok_or_else(|| missing("table", env::HL7_TABLE))?,
        ))
    }
}
