//! doc-pipeline: consumes S3 event notifications (direct, via SNS, via EventBridge) from an
//! encrypted queue, reads each document with the configured OCR engine (Tesseract locally,
//! Textract on AWS, asynchronously for PDF and TIFF), finds medical entities (the rules
//! extractor locally, Comprehend Medical on AWS), writes the results JSON and a record, and
//! publishes `DocumentProcessed` without any document text.
//!
//! `main.rs` only wires; [`run`] and [`extract`] are what the `fleet` launcher and tests call.

pub mod config;
pub mod events;
pub mod extract;
pub mod handler;
pub mod ocr_jobs;

use std::sync::Arc;
use std::time::Duration;

use fleet_core::Backend;
use fleet_docs::{EntityExtractor, MediaType, Ocr};
use fleet_runtime::{EventPublisher, RunReport, RuntimeConfig};
use tokio_util::sync::CancellationToken;

pub use config::{RUNTIME_DEFAULTS, WorkerConfig};
pub use extract::extract;
pub use handler::{CompletionHandler, Pipeline, Processed, UploadHandler};
pub use ocr_jobs::{SweepReport, run_sweeper};

/// The worker's name in logs, metrics and failure metadata.
pub const WORKER: &str = "doc-pipeline";

/// What one run did, per queue.
#[derive(Debug, Clone)]
pub struct Report {
    pub uploads: RunReport,
    pub completions: Option<RunReport>,
}

impl fleet_runtime::FinishedRun for Report {
    fn log_finished(&self) {
        tracing::info!(
            received = self.uploads.received,
            succeeded = self.uploads.succeeded,
            dead_lettered = self.uploads.dead_lettered,
            completions = self.completions.as_ref().map(|c| c.received),
            requests = %fleet_runtime::requests_json(),
            "run finished"
        );
    }
}

/// Build the pipeline for a configuration.
pub fn pipeline(
    config: &WorkerConfig,
    backend: Arc<dyn Backend>,
    ocr: Arc<dyn Ocr>,
    extractor: Arc<dyn EntityExtractor>,
) -> anyhow::Result<Arc<Pipeline>> {
    let ids = config.identities()?;
    let upload_buckets = config.upload_buckets(backend.kind())?;
    Ok(Arc::new(Pipeline {
        upload_buckets,
        records: backend.records(&ids.table),
        results: backend.objects(&ids.results_bucket),
        results_bucket: ids.results_bucket,
        results_prefix: config.results_prefix.clone(),
        publisher: EventPublisher::new(
            backend.event_bus(&ids.event_bus),
            config.runtime.publish_linger(&RUNTIME_DEFAULTS),
        ),
        ocr,
        extractor,
        max_document_bytes: config.max_document_bytes,
        policy: config.phi.phi_policy,
        backend,
    }))
}

fn runtime_config(config: &WorkerConfig, queue: &str, serve_health: bool) -> RuntimeConfig {
    let mut rt = config
        .runtime
        .runtime_config(WORKER, queue, &RUNTIME_DEFAULTS);
    if !serve_health {
        rt.health_addr = None;
    }
    rt
}

/// Run the worker until `shutdown` is cancelled: the upload queue, and the completion queue
/// when one is configured, each with its own runtime (and its own guardrail checks); and,
/// when the OCR engine starts asynchronous jobs (Textract), the sweeper that finishes jobs
/// whose completion never arrived.
pub async fn run(
    config: WorkerConfig,
    backend: Arc<dyn Backend>,
    ocr: Arc<dyn Ocr>,
    extractor: Arc<dyn EntityExtractor>,
    shutdown: CancellationToken,
) -> anyhow::Result<Report> {
    let ids = config.identities()?;
    let pipeline = pipeline(&config, backend.clone(), ocr, extractor)?;
    // Its own token under the worker's: it ends with the shutdown, and with the queues when
    // one fails to start.
    let sweeper_stop = shutdown.child_token();
    let sweeper = starts_jobs(pipeline.ocr.as_ref()).then(|| {
        tokio::spawn(run_sweeper(
            pipeline.clone(),
            Duration::from_secs(config.ocr_sweep_interval_secs),
            Duration::from_secs(config.ocr_sweep_after_secs),
            runtime_config(&config, &ids.queue, false).drain_deadline,
            sweeper_stop.clone(),
        ))
    });
    let report = run_queues(config, ids, backend, pipeline, shutdown).await;
    sweeper_stop.cancel();
    if let Some(sweeper) = sweeper {
        let _ = sweeper.await;
    }
    report
}

/// Whether `ocr` answers some documents with an asynchronous job.
fn starts_jobs(ocr: &dyn Ocr) -> bool {
    [MediaType::Pdf, MediaType::Tiff]
        .into_iter()
        .any(|m| ocr.starts_job(m))
}

async fn run_queues(
    config: WorkerConfig,
    ids: config::Identities,
    backend: Arc<dyn Backend>,
    pipeline: Arc<Pipeline>,
    shutdown: CancellationToken,
) -> anyhow::Result<Report> {
    let uploads = fleet_runtime::run(
        runtime_config(&config, &ids.queue, true),
        backend.clone(),
        Arc::new(UploadHandler(pipeline.clone())),
        shutdown.clone(),
    );
    match ids.completion_queue {
        None => Ok(Report {
            uploads: uploads.await?,
            completions: None,
        }),
        Some(queue) => {
            let completions = fleet_runtime::run(
                runtime_config(&config, &queue, false),
                backend,
                Arc::new(CompletionHandler(pipeline)),
                shutdown.clone(),
            );
            // One failing (a guardrail refusing its queue) stops the other too.
            let stop_both = |r: Result<RunReport, _>| {
                if r.is_err() {
                    shutdown.cancel();
                }
                r
            };
            let (u, c) = tokio::join!(async { stop_both(uploads.await) }, async {
                stop_both(completions.await)
            });
            Ok(Report {
                uploads: u?,
                completions: Some(c?),
            })
        }
    }
}
