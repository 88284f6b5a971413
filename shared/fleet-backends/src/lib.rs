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

/// Open the local backend (creating its directories, 0700), for commands that need its admin
/// API. A database file group or others can reach is refused unless `--allow-shared-db`.
pub fn open_local(args: &BackendArgs) -> anyhow::Result<fleet_local::LocalBackend> {
    let options = fleet_local::LocalOptions {
        allow_shared_db: args.allow_shared_db,
    };
    fleet_local::LocalBackend::open_with(&args.local_db, &args.local_objects, options)
        .with_context(|| format!("opening the local backend at {}", args.local_db.display()))
}
