//! hl7-ingest: consumes HL7 v2 ADT messages from an encrypted SQS queue, writes patient,
//! encounter and event records (keyed by sending facility + control id, so a redelivery writes
//! nothing twice), and publishes `Patient*` events with the minimal PHI policy by default.
//! Malformed and non-ADT bodies go to the DLQ with a precise code.
//!
//! `main.rs` only wires; [`run`] is what the `fleet` launcher and the tests call.

pub mod config;
pub mod events;
pub mod handler;
pub mod ordering;

use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;

use fleet_core::Backend;
use fleet_runtime::{EventPublisher, RunReport};
use tokio_util::sync::CancellationToken;

pub use config::{FacilityZone, RUNTIME_DEFAULTS, TimeZones, WorkerConfig};
pub use handler::Hl7Handler;

/// The worker's name in logs, metrics and failure metadata.
pub const WORKER: &str = "hl7-ingest";

/// Run the worker until `shutdown` is cancelled.
pub async fn run(
    config: WorkerConfig,
    backend: Arc<dyn Backend>,
    shutdown: CancellationToken,
) -> anyhow::Result<RunReport> {
    let ids = config.identities()?;
    let map = config.map_config()?;
    let id_types = config.identifier_types()?;
    let handler = Hl7Handler::new(
        backend.records(&ids.table),
        EventPublisher::new(
            backend.event_bus(&ids.event_bus),
            config.runtime.publish_linger(&RUNTIME_DEFAULTS),
        ),
        map,
        config.phi.phi_policy,
    )
    .with_identifier_types(id_types);
    let rt = config
        .runtime
        .runtime_config(WORKER, &ids.queue, &RUNTIME_DEFAULTS);
    let report = fleet_runtime::run(rt, backend, Arc::new(handler), shutdown).await?;
    Ok(report)
}

/// `hl7-ingest inspect`: one JSON line per message; an unreadable file is reported on stderr
/// and makes the exit code 1, every readable file is still inspected. Times without an offset
/// are read in the zones given (per sending facility, else the default); an invalid zone map
/// is an error before any file is read.
pub fn inspect(files: &[PathBuf], zones: &TimeZones, out: &mut impl Write) -> anyhow::Result<bool> {
    let cfg = zones.map_config()?;
    let mut all_read = true;
    for file in files {
        let bytes = match std::fs::read(file) {
            Ok(b) => b,
            Err(e) => {
                eprintln!("hl7-ingest inspect: cannot read {}: {e}", file.display());
                all_read = false;
                continue;
            }
        };
        for mut line in fleet_hl7::inspect(&bytes, &cfg) {
            if let Some(obj) = line.as_object_mut() {
                obj.insert("file".into(), file.display().to_string().into());
            }
            writeln!(out, "{line}")?;
        }
    }
    Ok(all_read)
}
