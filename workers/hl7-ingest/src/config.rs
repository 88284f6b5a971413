//! Configuration: the worker's identities and knobs, bound to flags and the environment
//! variables registered in `fleet_core::env`; the runtime options are the shared
//! [`RuntimeArgs`] group. Identities (queue, bus, table) have no defaults.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Subcommand};
use fleet_core::env;
use fleet_runtime::args::required;
use fleet_runtime::{PhiPolicyArgs, RuntimeArgs, RuntimeDefaults};

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

/// This worker's defaults for the shared runtime options.
pub const RUNTIME_DEFAULTS: RuntimeDefaults = RuntimeDefaults {
    concurrency: 32,
    max_attempts: 4,
    drain_deadline: Duration::from_secs(20),
    publish_linger: Duration::from_millis(10),
    delete_linger: Duration::from_millis(50),
};

/// The worker's settings. Units are in the names.
#[derive(Debug, Clone, Args)]
pub struct WorkerConfig {
    /// Source queue: name or URL.
    #[arg(long, env = env::HL7_QUEUE)]
    pub queue: Option<String>,
    /// Event bus for Patient* events.
    #[arg(long, env = env::EVENT_BUS)]
    pub event_bus: Option<String>,
    /// Records table (patients, encounters, events).
    #[arg(long, env = env::HL7_TABLE)]
    pub table: Option<String>,
    #[command(flatten)]
    pub phi: PhiPolicyArgs,
    /// IANA time zone for message times without an offset.
    #[arg(long, env = env::HL7_TIMEZONE, default_value = "UTC")]
    pub timezone: chrono_tz::Tz,
    /// Largest HL7 message accepted, in bytes; a larger one is dead-lettered as BODY_TOO_LARGE
    /// before any parsing.
    #[arg(long, env = env::HL7_MAX_MESSAGE_BYTES, default_value_t = 1024 * 1024,
          value_parser = clap::value_parser!(u64).range(64..=16 * 1024 * 1024))]
    pub max_message_bytes: u64,
    #[command(flatten)]
    pub runtime: RuntimeArgs,
}

/// The resolved identities.
#[derive(Debug, Clone)]
pub struct Identities {
    pub queue: String,
    pub event_bus: String,
    pub table: String,
}

impl WorkerConfig {
    /// The identities, or an operator-facing error naming what is missing.
    pub fn identities(&self) -> anyhow::Result<Identities> {
        Ok(Identities {
            queue: required(&self.queue, "queue", "queue", env::HL7_QUEUE)?,
            event_bus: required(&self.event_bus, "event bus", "event-bus", env::EVENT_BUS)?,
            table: required(&self.table, "table", "table", env::HL7_TABLE)?,
        })
    }
}
