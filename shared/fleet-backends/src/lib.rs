//! Opening the backend a binary's [`BackendArgs`] select, and the document worker's OCR and
//! extractor. This is the one crate that names the adapter crates (`fleet-aws`, `fleet-local`,
//! `fleet-docs-local`), so worker libraries depend on ports only and the AWS SDKs are linked
//! by the binaries alone. The options themselves are defined SDK-free in
//! `fleet_runtime::args`, so a worker's config can name them.

mod engines;

pub use engines::{DocEngineArgs, ExtractorKind, OcrKind};
pub use fleet_runtime::{BackendArgs, BackendKind};

use std::sync::Arc;

use anyhow::Context;
use fleet_core::Backend;

/// Open the backend `args` select.
pub async fn open(args: &BackendArgs) -> anyhow::Result<Arc<dyn Backend>> {
    match args.kind() {
        BackendKind::Local => Ok(Arc::new(open_local(args)?)),
        BackendKind::Aws => {
            let backend = fleet_aws::AwsBackend::from_env()
                .await
                .with_kms_key(args.s3_kms_key_id.clone());
            Ok(Arc::new(backend))
        }
    }
}

/// Open the local backend (creating its directory), for commands that need its admin API.
pub fn open_local(args: &BackendArgs) -> anyhow::Result<fleet_local::LocalBackend> {
    if let Some(dir) = args.local_db.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    std::fs::create_dir_all(&args.local_objects)
        .with_context(|| format!("creating {}", args.local_objects.display()))?;
    fleet_local::LocalBackend::open(&args.local_db, &args.local_objects)
        .with_context(|| format!("opening the local backend at {}", args.local_db.display()))
}
