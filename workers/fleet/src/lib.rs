//! The `fleet` launcher and the home of every binary: `hl7-ingest`, `doc-pipeline`, `notify`
//! and `fleet` are built here (`src/bin/`), because opening a backend links the adapters and
//! the worker libraries must not (`tests/it/arch.rs`). `fleet run` runs the whole fleet in one
//! process on the chosen backend ([`run`], configured by `fleet.toml`: [`fleet_config`]);
//! `fleet status` shows every queue the fleet consumes ([`status`]), and `fleet run
//! --health-addr` serves the same data as a page ([`page`]); `fleet demo` seeds generated ADT messages
//! and documents on a fresh local backend, processes them, and prints what happened and what
//! the notifications would have said.

pub mod cli;
pub mod config;
pub mod demo;
pub mod demo_docs;
pub mod demo_notify;
pub mod doctor;
pub mod fleet_config;
pub mod local_stack;
pub mod page;
pub mod probe;
pub mod sections;
pub mod status;

use std::sync::Arc;

use anyhow::Context;
use fleet_core::Backend;
use fleet_runtime::BackendKind;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

pub use fleet_config::FleetConfig;

/// What one worker's run did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkerStopped {
    pub worker: &'static str,
    pub received: u64,
    pub dead_lettered: u64,
}

/// Run every configured worker as a task on one backend until `shutdown` is cancelled (one
/// token drains them all). A worker that fails to start (a guardrail refusing its queue, a
/// missing identity) stops the others too, and its error is returned.
pub async fn run(
    config: FleetConfig,
    backend: Arc<dyn Backend>,
    shutdown: CancellationToken,
) -> anyhow::Result<Vec<WorkerStopped>> {
    if config.workers().is_empty() {
        anyhow::bail!(
            "no worker is configured: give fleet.toml a [hl7-ingest], [doc-pipeline], [notify] or [mllp-gateway] section, or set a worker's queue (FLEET_HL7_QUEUE, FLEET_DOC_QUEUE, FLEET_NOTIFY_QUEUE) or the gateway's listener (FLEET_MLLP_LISTEN)"
        );
    }
    let kind: BackendKind = config.backend.kind();
    let mut tasks: JoinSet<(&'static str, anyhow::Result<(u64, u64)>)> = JoinSet::new();
    if let Some(c) = config.hl7 {
        let (b, s) = (backend.clone(), shutdown.clone());
        tasks.spawn(async move {
            let r = hl7_ingest::run(c, b, s).await;
            (hl7_ingest::WORKER, r.map(|r| (r.received, r.dead_lettered)))
        });
    }
    if let Some(c) = config.docs {
        // The engines are opened before the task, so a missing Tesseract fails the start.
        let ocr = c.engines.open_ocr(kind).await.context("doc-pipeline")?;
        let extractor = c
            .engines
            .open_extractor(kind)
            .await
            .context("doc-pipeline")?;
        let (b, s) = (backend.clone(), shutdown.clone());
        tasks.spawn(async move {
            let r = doc_pipeline::run(c.worker, b, ocr, extractor, s).await;
            let r = r.map(|r| {
                let c = r.completions.as_ref();
                (
                    r.uploads.received + c.map_or(0, |c| c.received),
                    r.uploads.dead_lettered + c.map_or(0, |c| c.dead_lettered),
                )
            });
            (doc_pipeline::WORKER, r)
        });
    }
    if let Some(c) = config.notify {
        let (b, s) = (backend.clone(), shutdown.clone());
        tasks.spawn(async move {
            let r = notify::run(c, b, s).await;
            (notify::WORKER, r.map(|r| (r.received, r.dead_lettered)))
        });
    }
    if let Some(c) = config.gateway {
        let (b, s) = (backend.clone(), shutdown.clone());
        tasks.spawn(async move {
            let r = mllp_gateway::run(c, b, s).await;
            (
                mllp_gateway::WORKER,
                r.map(|r| (r.messages, r.content_errors + r.rejected)),
            )
        });
    }
    let mut stopped = Vec::new();
    let mut first_error = None;
    while let Some(joined) = tasks.join_next().await {
        let (worker, result) = joined.context("a worker task panicked")?;
        match result {
            Ok((received, dead_lettered)) => {
                tracing::info!(worker, received, dead_lettered, "worker stopped");
                stopped.push(WorkerStopped {
                    worker,
                    received,
                    dead_lettered,
                });
            }
            Err(e) => {
                // One worker down means the fleet is not what was asked for: stop the rest.
                shutdown.cancel();
                first_error.get_or_insert(e.context(worker));
            }
        }
    }
    match first_error {
        Some(e) => Err(e),
        None => Ok(stopped),
    }
}
