//! Backend selection for every binary: one clap argument group (`--backend`, `--local-db`,
//! `--local-objects`, ...) and one function that opens the chosen backend. Keeping it here means
//! workers never name an adapter crate and the choice rule is written once.

mod engines;

pub use engines::{DocEngineArgs, ExtractorKind, OcrKind};

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use fleet_core::{Backend, env};

/// Which backend a binary runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum BackendKind {
    /// SQLite file + a directory: the embedded default.
    Local,
    /// SQS, EventBridge, DynamoDB, S3 through the standard AWS configuration chain.
    Aws,
}

/// Backend options shared by every binary.
#[derive(Debug, Clone, clap::Args)]
pub struct BackendArgs {
    /// `local` or `aws`. Default: `aws` when AWS_REGION, AWS_DEFAULT_REGION, AWS_PROFILE or
    /// AWS_ENDPOINT_URL is set, otherwise `local`.
    #[arg(long, env = env::BACKEND, value_enum)]
    pub backend: Option<BackendKind>,
    /// Local backend: SQLite file.
    #[arg(long, env = env::LOCAL_DB, default_value = ".fleet-local/fleet.sqlite")]
    pub local_db: PathBuf,
    /// Local backend: object-store directory.
    #[arg(long, env = env::LOCAL_OBJECTS, default_value = ".fleet-local/objects")]
    pub local_objects: PathBuf,
    /// AWS backend: KMS key for SSE-KMS on object puts (default: the bucket's aws/s3 key).
    #[arg(long, env = env::S3_KMS_KEY)]
    pub s3_kms_key_id: Option<String>,
}

impl BackendArgs {
    /// The kind to use: explicit, else inferred from the AWS environment.
    pub fn kind(&self) -> BackendKind {
        self.backend.unwrap_or_else(|| {
            let aws_configured = [
                "AWS_REGION",
                "AWS_DEFAULT_REGION",
                "AWS_PROFILE",
                "AWS_ENDPOINT_URL",
            ]
            .iter()
            .any(|k| std::env::var_os(k).is_some_and(|v| !v.is_empty()));
            if aws_configured {
                BackendKind::Aws
            } else {
                BackendKind::Local
            }
        })
    }

    /// Open the backend.
    pub async fn open(&self) -> anyhow::Result<Arc<dyn Backend>> {
        match self.kind() {
            BackendKind::Local => Ok(Arc::new(self.open_local()?)),
            BackendKind::Aws => {
                let backend = fleet_aws::AwsBackend::from_env()
                    .await
                    .with_kms_key(self.s3_kms_key_id.clone());
                Ok(Arc::new(backend))
            }
        }
    }

    /// Open the local backend (creating its directory), for commands that need its admin API.
    pub fn open_local(&self) -> anyhow::Result<fleet_local::LocalBackend> {
        if let Some(dir) = self.local_db.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        }
        std::fs::create_dir_all(&self.local_objects)
            .with_context(|| format!("creating {}", self.local_objects.display()))?;
        fleet_local::LocalBackend::open(&self.local_db, &self.local_objects)
            .with_context(|| format!("opening the local backend at {}", self.local_db.display()))
    }
}
