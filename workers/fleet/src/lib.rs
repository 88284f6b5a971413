//! The `fleet` launcher: runs the fleet's workers in one process on the chosen backend
//! (`fleet run`), and the local demo (`fleet demo`) that seeds generated ADT messages, processes
//! them and prints events, records and dead-lettered messages with their codes, then uploads
//! sample documents and prints what the document pipeline extracted, then renders the
//! notifications those events produce into the local outbox.

pub mod config;
pub mod demo;
pub mod demo_docs;
pub mod demo_notify;

use std::sync::Arc;

use fleet_core::Backend;
use tokio_util::sync::CancellationToken;

/// Run every worker until `shutdown`. Today the fleet has one worker, hl7-ingest.
pub async fn run(
    hl7: hl7_ingest::WorkerConfig,
    backend: Arc<dyn Backend>,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let report = hl7_ingest::run(hl7, backend, shutdown).await?;
    tracing::info!(
        worker = hl7_ingest::WORKER,
        received = report.received,
        dead_lettered = report.dead_lettered,
        "worker stopped"
    );
    Ok(())
}
