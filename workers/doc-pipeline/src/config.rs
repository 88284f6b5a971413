//! Configuration: the worker's identities and knobs, bound to flags and the environment
//! variables registered in `fleet_core::env`; the runtime options are the shared
//! [`RuntimeArgs`] group. The binary (in the launcher crate) adds the backend and the OCR and
//! extractor choice (`fleet_backends::DocEngineArgs`), since opening those needs the adapters. Identities (queues, bus, table, results bucket) have no defaults.

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
    /// Run the configured OCR and extractor on local files (PDF, PNG, JPEG, TIFF, plain
    /// text) and print one JSON result per file on its own line. Writes to no store; exits 0
    /// when every file was processed, 1 when any ended in an error.
    Extract {
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
}

/// This worker's defaults for the shared runtime options: few slots (each OCR already runs
/// pages in parallel) and a long drain (an OCR job takes seconds).
pub const RUNTIME_DEFAULTS: RuntimeDefaults = RuntimeDefaults {
    concurrency: 2,
    max_attempts: 4,
    drain_deadline: Duration::from_secs(60),
    publish_linger: Duration::from_millis(10),
    delete_linger: Duration::from_millis(50),
};

/// The worker's settings. Units are in the names.
#[derive(Debug, Clone, Args)]
pub struct WorkerConfig {
    /// Upload queue (S3 event notifications, direct, via SNS or via EventBridge): name or URL.
    #[arg(long, env = env::DOC_QUEUE)]
    pub queue: Option<String>,
    /// Textract completion queue (SNS → SQS). Needed for asynchronous OCR (PDF, TIFF on
    /// Textract); unset, the worker runs the upload queue only.
    #[arg(long, env = env::DOC_COMPLETION_QUEUE)]
    pub completion_queue: Option<String>,
    /// Event bus for DocumentProcessed events.
    #[arg(long, env = env::EVENT_BUS)]
    pub event_bus: Option<String>,
    /// Records table (documents, OCR jobs).
    #[arg(long, env = env::DOC_TABLE)]
    pub table: Option<String>,
    /// Bucket the results JSON goes to (SSE-KMS on AWS).
    #[arg(long, env = env::DOC_RESULTS_BUCKET)]
    pub results_bucket: Option<String>,
    /// Upload buckets whose S3 events this worker reads, comma-separated or repeated. An event
    /// naming any other bucket is dead-lettered unread (DOCUMENT_BUCKET_NOT_ALLOWED). Required
    /// on the aws backend; on the local backend the default is the local stack's `uploads`.
    #[arg(long, env = env::DOC_BUCKETS, value_delimiter = ',')]
    pub upload_buckets: Vec<String>,
    /// Key prefix of results objects.
    #[arg(long, env = env::DOC_RESULTS_PREFIX, default_value = "results/")]
    pub results_prefix: String,
    /// Largest document read, bytes (Textract's asynchronous limit is 500 MB).
    #[arg(long, env = env::DOC_MAX_BYTES, default_value_t = 100 * 1024 * 1024)]
    pub max_document_bytes: u64,
    /// Age of a started OCR job (Textract, asynchronous) whose completion notification has
    /// not arrived, after which the sweeper looks it up (GetDocumentTextDetection) and
    /// finishes or fails it, seconds. Engines that start no jobs (Tesseract) run no sweeper.
    #[arg(long, env = env::DOC_OCR_SWEEP_AFTER, default_value_t = 900)]
    pub ocr_sweep_after_secs: u64,
    /// Seconds between two sweeps of started OCR jobs (the first runs at start).
    #[arg(long, env = env::DOC_OCR_SWEEP_INTERVAL, default_value_t = 60,
          value_parser = clap::value_parser!(u64).range(1..))]
    pub ocr_sweep_interval_secs: u64,
    /// `minimal` leaves the object key (keys can hold names) out of events.
    #[command(flatten)]
    pub phi: PhiPolicyArgs,
    /// Runtime options; the health endpoint is served by the upload queue's runtime.
    #[command(flatten)]
    pub runtime: RuntimeArgs,
}

/// The upload buckets on the local backend when none are configured: the bucket the local
/// stack (`fleet run --dir`, `fleet demo`) uploads to.
pub const LOCAL_UPLOAD_BUCKETS: &[&str] = &["uploads"];

/// The resolved identities.
#[derive(Debug, Clone)]
pub struct Identities {
    pub queue: String,
    pub completion_queue: Option<String>,
    pub event_bus: String,
    pub table: String,
    pub results_bucket: String,
}

impl WorkerConfig {
    /// The upload buckets S3 events may name, for a backend of kind `backend` (`aws` or
    /// `local`): the configured ones; unset, an error on aws (it is an identity there) and
    /// [`LOCAL_UPLOAD_BUCKETS`] on the local backend.
    pub fn upload_buckets(&self, backend: &str) -> anyhow::Result<Vec<String>> {
        let configured: Vec<String> = self
            .upload_buckets
            .iter()
            .map(|b| b.trim().to_string())
            .filter(|b| !b.is_empty())
            .collect();
        if !configured.is_empty() {
            return Ok(configured);
        }
        if backend == "local" {
            return Ok(LOCAL_UPLOAD_BUCKETS.iter().map(|b| b.to_string()).collect());
        }
        anyhow::bail!(
            "no upload buckets configured: set {} or pass --upload-buckets (the buckets whose S3 events doc-pipeline may read; required on the {backend} backend)",
            env::DOC_BUCKETS
        )
    }

    /// The identities, or an operator-facing error naming what is missing.
    pub fn identities(&self) -> anyhow::Result<Identities> {
        Ok(Identities {
            queue: required(&self.queue, "queue", "queue", env::DOC_QUEUE)?,
            completion_queue: self.completion_queue.clone(),
            event_bus: required(&self.event_bus, "event-bus", "event-bus", env::EVENT_BUS)?,
            table: required(&self.table, "table", "table", env::DOC_TABLE)?,
            results_bucket: required(
                &self.results_bucket,
                "results-bucket",
                "results-bucket",
                env::DOC_RESULTS_BUCKET,
            )?,
        })
    }
}
