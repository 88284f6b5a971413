//! The resources one run needs, created fresh for it: source queue with a redrive policy to its
//! DLQ, an event bus with a rule routing `fleet.hl7-ingest` events to a tap queue the load tool
//! reads, and the worker's table. On aws every queue is SSE-KMS encrypted with a new key
//! (`fleet_testkit::provision`), so the worker's encryption guardrail runs as in production.

use fleet_testkit::ProvisionExt as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use fleet_core::Backend;
use fleet_local::{LocalBackend, QueueSpec};
use fleet_testkit::provision::QueueSetup;

/// Which backend the worker and the load tool run on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum BackendKind {
    Local,
    Aws,
}

impl BackendKind {
    pub fn as_str(self) -> &'static str {
        match self {
            BackendKind::Local => "local",
            BackendKind::Aws => "aws",
        }
    }
}

/// The source queue's maxReceiveCount: above the worker's max_attempts (4), as in production.
const MAX_RECEIVE_COUNT: u32 = 5;
/// The rule the deploy template uses for hl7-ingest's events.
const PATTERN: &str = r#"{"source":["fleet.hl7-ingest"]}"#;

/// A provisioned stack.
pub struct Stack {
    pub backend: Arc<dyn Backend>,
    /// The same backend when it is the local one: the load tool reads the tap queue through
    /// it without receiving (`LocalBackend::queue_tail`).
    pub local: Option<LocalBackend>,
    /// Queue identities as the worker takes them (names locally, URLs on aws).
    pub source: String,
    pub dlq: String,
    pub tap: String,
    pub bus: String,
    pub table: String,
    /// Environment for the worker process (backend selection, local paths or endpoint).
    pub worker_env: Vec<(String, String)>,
}

/// A run-unique suffix: lowercase letters, digits and hyphens.
fn suffix() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    format!("{}-{:x}", std::process::id(), nanos % 0xffff_ffff)
}

/// A local stack in `dir` (queues with `visibility` as their timeout) (one SQLite file plus an objects directory).
pub fn local(dir: &Path, visibility: Duration) -> anyhow::Result<Stack> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let db: PathBuf = dir.join("fleet.sqlite");
    let objects = dir.join("objects");
    let local = LocalBackend::open(&db, &objects).context("opening the local backend")?;
    let s = suffix();
    let (source, dlq, tap) = (
        format!("lt-hl7-in-{s}"),
        format!("lt-hl7-dlq-{s}"),
        format!("lt-tap-{s}"),
    );
    let spec = |redrive| QueueSpec {
        visibility_timeout: visibility,
        redrive,
        ..QueueSpec::default()
    };
    local.create_queue(&dlq, spec(None))?;
    local.create_queue(&source, spec(Some((dlq.clone(), MAX_RECEIVE_COUNT))))?;
    local.create_queue(&tap, spec(None))?;
    let bus = format!("lt-bus-{s}");
    local.put_rule(&bus, "loadtest-tap", PATTERN, &tap)?;
    let worker_env = vec![
        (fleet_core::env::BACKEND.into(), "local".into()),
        (fleet_core::env::LOCAL_DB.into(), db.display().to_string()),
        (
            fleet_core::env::LOCAL_OBJECTS.into(),
            objects.display().to_string(),
        ),
        // The local backend is not encrypted and says so (ARCHITECTURE.md, "Local encryption").
        (fleet_core::env::ALLOW_UNENCRYPTED.into(), "1".into()),
    ];
    Ok(Stack {
        backend: Arc::new(local.clone()),
        local: Some(local),
        source,
        dlq,
        tap,
        bus,
        table: format!("lt-hl7-{s}"),
        worker_env,
    })
}

/// An aws stack. `endpoint`: a protocol server (moto) with test credentials; `None`: the
/// standard configuration chain, which the worker inherits from this process's environment.
pub async fn aws(
    endpoint: Option<&str>,
    region: &str,
    visibility: Duration,
) -> anyhow::Result<Stack> {
    let backend = match endpoint {
        Some(url) => fleet_aws::AwsBackend::with_endpoint(url, region).await,
        None => fleet_aws::AwsBackend::from_env().await,
    };
    let p = backend.provisioner();
    let key = p.create_kms_key("fleet loadtest").await?;
    let setup = |redrive| QueueSetup {
        visibility_timeout: visibility,
        kms_key_id: Some(key.clone()),
        redrive,
        ..QueueSetup::default()
    };
    let s = suffix();
    let dlq = p
        .create_queue(&format!("lt-hl7-dlq-{s}"), setup(None))
        .await?;
    let dlq_arn = p.queue_arn(&dlq).await?;
    let source = p
        .create_queue(
            &format!("lt-hl7-in-{s}"),
            setup(Some((dlq_arn, MAX_RECEIVE_COUNT))),
        )
        .await?;
    let tap = p.create_queue(&format!("lt-tap-{s}"), setup(None)).await?;
    let bus = format!("lt-bus-{s}");
    p.create_bus(&bus).await?;
    p.put_rule_to_queue(&bus, &format!("lt-tap-{s}"), PATTERN, &tap)
        .await?;
    let table = format!("lt-hl7-{s}");
    p.create_table(&table).await?;
    let mut worker_env = vec![(fleet_core::env::BACKEND.into(), "aws".into())];
    if let Some(url) = endpoint {
        worker_env.extend([
            (fleet_core::env::AWS_ENDPOINT_URL.into(), url.to_string()),
            (fleet_core::env::AWS_REGION.into(), region.to_string()),
            (fleet_core::env::AWS_ACCESS_KEY_ID.into(), "testing".into()),
            (
                fleet_core::env::AWS_SECRET_ACCESS_KEY.into(),
                "testing".into(),
            ),
        ]);
    }
    Ok(Stack {
        local: None,
        backend: Arc::new(backend),
        source,
        dlq,
        tap,
        bus,
        table,
        worker_env,
    })
}
