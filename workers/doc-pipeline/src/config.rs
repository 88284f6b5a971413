//! Configuration: one typed struct, bound to flags and the environment variables registered in
//! `fleet_core::env`. Identities (queues, bus, table, results bucket) have no defaults.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use fleet_backends::{BackendArgs, DocEngineArgs};
use fleet_core::env;

use crate::events::PhiPolicy;

#[derive(Debug, Parser)]
#[command(
    name = "doc-pipeline",
    version,
    about = "S3 document uploads to OCR text, medical entities, results and DocumentProcessed events"
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
    /// Run the configured OCR and extractor on local files (PDF, PNG, JPEG, TIFF, plain
    /// text) and print one JSON result per file on its own line. Writes to no store; exits 0
    /// when every file was processed, 1 when any ended in an error.
    Extract {
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
}

/// The worker's settings. Units are in the names.
#[derive(Debug, Clone, Args)]
pub struct WorkerConfig {
    #[command(flatten)]
    pub backend: BackendArgs,
    #[command(flatten)]
    pub engines: DocEngineArgs,
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
    /// Key prefix of results objects.
    #[arg(long, env = env::DOC_RESULTS_PREFIX, default_value = "results/")]
    pub results_prefix: String,
    /// Largest document read, bytes (Textract's asynchronous limit is 500 MB).
    #[arg(long, env = env::DOC_MAX_BYTES, default_value_t = 100 * 1024 * 1024)]
    pub max_document_bytes: u64,
    /// Whether the event carries the object key (keys can hold names): `minimal` leaves it out.
    #[arg(long, env = env::PHI_POLICY, value_enum, default_value = "minimal")]
    pub phi_policy: PhiPolicy,
    /// Concurrent handlers (each OCR already runs pages in parallel).
    #[arg(long, env = env::CONCURRENCY, default_value_t = 2)]
    pub concurrency: usize,
    /// Attempts before a retryable failure is dead-lettered; keep below the queue's maxReceiveCount.
    #[arg(long, env = env::MAX_ATTEMPTS, default_value_t = 4)]
    pub max_attempts: u32,
    /// Seconds in-flight messages get to finish after SIGTERM.
    #[arg(long, env = env::DRAIN_DEADLINE_SECS, default_value_t = 60)]
    pub drain_deadline_secs: u64,
    /// Long-poll wait, seconds (0..=20).
    #[arg(long, env = env::WAIT_TIME_SECS, default_value_t = 20)]
    pub wait_time_secs: u64,
    /// Start even if a queue or its DLQ is unencrypted (local development only).
    #[arg(long, env = env::ALLOW_UNENCRYPTED, action = clap::ArgAction::SetTrue,
          value_parser = clap::builder::BoolishValueParser::new())]
    pub allow_unencrypted: bool,
    /// Health and metrics endpoint address (the upload queue's runtime serves it).
    #[arg(long, env = env::HEALTH_ADDR)]
    pub health_addr: Option<SocketAddr>,
}

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
    pub fn drain_deadline(&self) -> Duration {
        Duration::from_secs(self.drain_deadline_secs)
    }
    pub fn wait_time(&self) -> Duration {
        Duration::from_secs(self.wait_time_secs.min(20))
    }
    /// The identities, or an operator-facing error naming what is missing.
    pub fn identities(&self) -> anyhow::Result<Identities> {
        fn need(v: &Option<String>, flag: &str, var: &str) -> anyhow::Result<String> {
            v.clone()
                .ok_or_else(|| anyhow::anyhow!("no {flag} configured: set {var} or pass --{flag}"))
        }
        Ok(Identities {
            queue: need(&self.queue, "queue", env::DOC_QUEUE)?,
            completion_queue: self.completion_queue.clone(),
            event_bus: need(&self.event_bus, "event-bus", env::EVENT_BUS)?,
            table: need(&self.table, "table", env::DOC_TABLE)?,
            results_bucket: need(
                &self.results_bucket,
                "results-bucket",
                env::DOC_RESULTS_BUCKET,
            )?,
        })
    }
}
