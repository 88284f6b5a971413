//! Configuration: the worker's identities and knobs, bound to flags and the environment
//! variables registered in `fleet_core::env`; the runtime options are the shared
//! [`RuntimeArgs`] group. Identities (queue, bus, table) have no defaults.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use clap::{Args, Subcommand};
use fleet_core::env;
use fleet_hl7::{IdentifierTypes, MapConfig};
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
        #[command(flatten)]
        zones: TimeZones,
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
    /// Identifier types (HL7 table 0203, PID-3.5) that `minimal` events carry; identifiers of
    /// other types, or none, are left out. Comma-separated in the environment. Personal numbers
    /// (SS, DL, PPN, NI, MC, MA, JHN, HC, ...) are refused at start.
    #[arg(long = "phi-identifier-types", env = env::PHI_IDENTIFIER_TYPES, value_delimiter = ',',
          default_value = "MR,PI,PN", value_name = "TYPE,...")]
    pub phi_identifier_types: Vec<String>,
    #[command(flatten)]
    pub zones: TimeZones,
    /// Largest HL7 message accepted, in bytes; a larger one is dead-lettered as BODY_TOO_LARGE
    /// before any parsing.
    #[arg(long, env = env::HL7_MAX_MESSAGE_BYTES, default_value_t = 1024 * 1024,
          value_parser = clap::value_parser!(u64).range(64..=16 * 1024 * 1024))]
    pub max_message_bytes: u64,
    #[command(flatten)]
    pub runtime: RuntimeArgs,
}

/// The zones message times without an offset are read in: one per sending facility where the
/// feed mixes facilities, a default for the rest. Shared by the worker and `inspect`.
#[derive(Debug, Clone, Args)]
pub struct TimeZones {
    /// IANA time zone for message times without an offset, for every sending facility not
    /// given its own zone by --facility-timezone.
    #[arg(long, env = env::HL7_TIMEZONE, default_value = "UTC")]
    pub timezone: chrono_tz::Tz,
    /// FACILITY=ZONE: times without an offset in messages whose sending facility (MSH-4.1,
    /// exact match) is FACILITY are read in the IANA zone ZONE. Repeatable; the environment
    /// variable takes comma-separated pairs. A malformed pair or unknown zone is refused.
    #[arg(long, env = env::HL7_FACILITY_TIMEZONES, value_name = "FACILITY=ZONE",
          value_delimiter = ',')]
    pub facility_timezone: Vec<FacilityZone>,
}

/// One `FACILITY=ZONE` entry of `--facility-timezone` / `FLEET_HL7_FACILITY_TIMEZONES`. Parse
/// errors do not repeat the entry: clap's message names it (`invalid value 'X=Y' for ...`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FacilityZone {
    /// The sending facility: MSH-4.1 (namespace id) as it appears in the messages.
    pub facility: String,
    pub zone: chrono_tz::Tz,
}

impl FromStr for FacilityZone {
    type Err = String;

    fn from_str(entry: &str) -> Result<Self, String> {
        let Some((facility, zone)) = entry.split_once('=') else {
            return Err("expected FACILITY=ZONE".into());
        };
        let (facility, zone) = (facility.trim(), zone.trim());
        if facility.is_empty() {
            return Err("no FACILITY before '=' (expected FACILITY=ZONE)".into());
        }
        let zone = zone
            .parse()
            .map_err(|_| format!("{zone:?} is not an IANA time zone"))?;
        Ok(Self {
            facility: facility.to_string(),
            zone,
        })
    }
}

impl TimeZones {
    /// The mapping settings for these zones (default message size limit), or an
    /// operator-facing error naming a facility given more than one zone.
    pub fn map_config(&self) -> anyhow::Result<MapConfig> {
        let mut facility_timezones = BTreeMap::new();
        for FacilityZone { facility, zone } in &self.facility_timezone {
            if facility_timezones.insert(facility.clone(), *zone).is_some() {
                anyhow::bail!(
                    "facility {facility:?} is given more than one time zone \
                     (--facility-timezone / {})",
                    env::HL7_FACILITY_TIMEZONES
                );
            }
        }
        Ok(MapConfig {
            timezone: self.timezone,
            facility_timezones,
            ..MapConfig::default()
        })
    }
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

    /// The identifier allow-list of `minimal` events, or an operator-facing error naming the
    /// refused code and the flag: checked at start.
    pub fn identifier_types(&self) -> anyhow::Result<IdentifierTypes> {
        IdentifierTypes::new(&self.phi_identifier_types).map_err(|why| {
            anyhow::anyhow!(
                "--phi-identifier-types / {}: {why}",
                env::PHI_IDENTIFIER_TYPES
            )
        })
    }

    /// The mapping settings (zones and message size limit), validated: checked at start.
    pub fn map_config(&self) -> anyhow::Result<MapConfig> {
        Ok(MapConfig {
            max_message_bytes: usize::try_from(self.max_message_bytes).unwrap_or(usize::MAX),
            ..self.zones.map_config()?
        })
    }
}
