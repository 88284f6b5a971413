//! The fleet's test kit, a dev-dependency of every crate's tests (and of the load tool): where
//! moto is, unique resource names, both backends ready to use, provisioning of AWS resources
//! ([`provision`]), running the real binaries and scanning their logs ([`workers`]), and the
//! synthetic samples ([`samples`], re-exported from `fleet-samples`). No deployable crate
//! depends on it (`tests/it/arch.rs` checks the manifests). The AWS side always runs against a real
//! `moto_server` (started by `scripts/test` / `scripts/moto start`); when its endpoint is not
//! given the tests fail, never skip.

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};

use fleet_aws::AwsBackend;
use fleet_core::env;
use fleet_local::LocalBackend;

/// Environment variable with the moto_server endpoint ("http://127.0.0.1:PORT").
pub const MOTO_ENDPOINT_ENV: &str = fleet_core::env::MOTO_ENDPOINT;

/// The region every moto-backed test uses.
pub const MOTO_REGION: &str = "us-east-1";

/// The moto endpoint. Panics (failing the test) when it is not set.
pub fn moto_endpoint() -> String {
    match fleet_core::env::get(MOTO_ENDPOINT_ENV) {
        Some(url) => url,
        None => panic!(
            "{MOTO_ENDPOINT_ENV} is not set. The AWS tests run against a real moto_server: run \
             them with `scripts/test`, or `scripts/moto install && scripts/moto start` and \
             `export {MOTO_ENDPOINT_ENV}=$(scripts/moto url)`."
        ),
    }
}

/// A resource name unique within this run and across runs against the same moto server:
/// lowercase letters, digits and hyphens (valid for queues, buses, tables and buckets).
pub fn unique(prefix: &str) -> String {
    static SEQ: AtomicU64 = AtomicU64::new(0);
    let n = SEQ.fetch_add(1, Ordering::Relaxed);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    format!("{prefix}-{}-{n}-{nanos:x}", std::process::id())
}

/// The environment that points a real binary at moto with the aws backend.
pub fn moto_env() -> Vec<(&'static str, String)> {
    vec![
        (env::BACKEND, "aws".into()),
        (env::AWS_ENDPOINT_URL, moto_endpoint()),
        (env::AWS_REGION, MOTO_REGION.into()),
        (env::AWS_ACCESS_KEY_ID, "testing".into()),
        (env::AWS_SECRET_ACCESS_KEY, "testing".into()),
    ]
}

/// An AWS backend pointed at moto.
pub async fn aws_backend() -> AwsBackend {
    AwsBackend::with_endpoint(&moto_endpoint(), MOTO_REGION).await
}

/// A local backend in `dir` (a SQLite file plus an objects directory).
pub fn local_backend(dir: &Path) -> LocalBackend {
    LocalBackend::open(&dir.join("fleet.sqlite"), &dir.join("objects"))
        .expect("opening a local backend in a fresh temporary directory")
}

/// Every `.hl7` file below `dir` (the corpus), recursively, in path order.
pub fn hl7_files(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            out.extend(hl7_files(&path));
        } else if path.extension().is_some_and(|e| e == "hl7") {
            out.push(path);
        }
    }
    out.sort();
    out
}

pub mod provision;
pub mod workers;

pub use fleet_samples as samples;
pub use provision::{ProvisionExt, Provisioner, QueueSetup};
