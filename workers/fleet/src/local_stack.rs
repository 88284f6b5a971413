//! The fleet's resources on the local backend: each worker's queue with its DLQ, the bus rule
//! that feeds notify, the outbox topics, and a `fleet.toml` naming them. `fleet run --dir` and
//! `fleet demo` both provision through here, so the one-box fleet and the demo are the same
//! stack. Creating is idempotent: a directory reused from an earlier run keeps its data.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context;
use fleet_local::{LocalBackend, QueueSpec};

pub const BUS: &str = "fleet";

pub const HL7_QUEUE: &str = "hl7-inbound";
pub const HL7_DLQ: &str = "hl7-inbound-dlq";
pub const HL7_TABLE: &str = "hl7-records";
/// Where the MLLP gateway offloads messages too large for the queue (hl7-ingest may read it).
pub const CLAIM_CHECK_BUCKET: &str = "mllp-claim-checks";
/// The MLLP gateway's listener on one box: loopback only, plain TCP.
pub const MLLP_LISTEN: &str = "127.0.0.1:2575";

pub const DOC_QUEUE: &str = "doc-uploads";
pub const DOC_DLQ: &str = "doc-uploads-dlq";
pub const DOC_TABLE: &str = "doc-records";
pub const UPLOADS_BUCKET: &str = "uploads";
pub const RESULTS_BUCKET: &str = "doc-results";

pub const NOTIFY_QUEUE: &str = "notify-inbound";
pub const NOTIFY_DLQ: &str = "notify-inbound-dlq";
pub const NOTIFY_TABLE: &str = "notify-records";
/// The rule on [`BUS`] that routes patient and document events to notify.
pub const NOTIFY_RULE: &str = "events-to-notify";
/// The example rules, shipped with the notify worker.
pub const RULES: &str = include_str!("../../notify/rules.example.toml");
/// The outbox topics the example rules name.
pub const TOPICS: &[&str] = &["care-team-4east", "document-review"];

/// The file `fleet run --dir` reads (and writes on first use).
pub const CONFIG_FILE: &str = "fleet.toml";
/// The notify rules file beside it.
pub const RULES_FILE: &str = "notify-rules.toml";

/// Receives before SQS-style redrive takes a message to its DLQ: above each worker's
/// `max_attempts`, so the runtime dead-letters first, with the failure attribute.
const HL7_MAX_RECEIVES: u32 = 5;
const DOC_MAX_RECEIVES: u32 = 5;
const NOTIFY_MAX_RECEIVES: u32 = 10;

fn queue_with_dlq(
    local: &LocalBackend,
    queue: &str,
    dlq: &str,
    visibility: Duration,
    max_receives: u32,
) -> anyhow::Result<()> {
    let spec = |redrive| QueueSpec {
        visibility_timeout: visibility,
        redrive,
        ..QueueSpec::default()
    };
    local.create_queue(dlq, spec(None))?;
    local.create_queue(queue, spec(Some((dlq.to_string(), max_receives))))?;
    Ok(())
}

/// hl7-ingest's queue and DLQ.
pub fn provision_hl7(local: &LocalBackend) -> anyhow::Result<()> {
    queue_with_dlq(
        local,
        HL7_QUEUE,
        HL7_DLQ,
        Duration::from_secs(30),
        HL7_MAX_RECEIVES,
    )
}

/// doc-pipeline's upload queue and DLQ (a long visibility: OCR takes seconds).
pub fn provision_docs(local: &LocalBackend) -> anyhow::Result<()> {
    queue_with_dlq(
        local,
        DOC_QUEUE,
        DOC_DLQ,
        Duration::from_secs(120),
        DOC_MAX_RECEIVES,
    )
}

/// notify's queue and DLQ, the rule feeding it, and the outbox topics.
pub fn provision_notify(local: &LocalBackend) -> anyhow::Result<()> {
    queue_with_dlq(
        local,
        NOTIFY_QUEUE,
        NOTIFY_DLQ,
        Duration::from_secs(30),
        NOTIFY_MAX_RECEIVES,
    )?;
    local.put_rule(
        BUS,
        NOTIFY_RULE,
        r#"{"source":["fleet.hl7-ingest","fleet.doc-pipeline"]}"#,
        NOTIFY_QUEUE,
    )?;
    for t in TOPICS {
        local.create_topic(t)?;
    }
    Ok(())
}

/// Open (creating) the local backend in `dir`: `dir/fleet.sqlite` and `dir/objects`.
pub fn open(dir: &Path) -> anyhow::Result<LocalBackend> {
    fleet_backends::open_local(&fleet_runtime::BackendArgs::local_in(dir))
}

/// The `fleet.toml` for the stack in `dir`.
pub fn default_config(dir: &Path) -> String {
    let rules = dir.join(RULES_FILE);
    format!(
        r#"# fleet.toml: the fleet on the local backend in this directory, written by `fleet run --dir`.
# One section per worker; a worker without a section is not started. Keys are the worker's
# flag names (see `hl7-ingest --help`, `doc-pipeline --help`, `notify --help`,
# `mllp-gateway --help`); unknown keys are refused. The SQLite file is not encrypted, so each
# worker is told to accept that (`allow-unencrypted`); on a real box, put this directory on an
# encrypted disk.

[hl7-ingest]
queue = "{HL7_QUEUE}"
event-bus = "{BUS}"
table = "{HL7_TABLE}"
claim-check-buckets = "{CLAIM_CHECK_BUCKET}"
allow-unencrypted = true

[doc-pipeline]
queue = "{DOC_QUEUE}"
event-bus = "{BUS}"
table = "{DOC_TABLE}"
results-bucket = "{RESULTS_BUCKET}"
allow-unencrypted = true

[notify]
queue = "{NOTIFY_QUEUE}"
table = "{NOTIFY_TABLE}"
rules = "{}"
allow-unencrypted = true

# EHR feeds push HL7 over MLLP here; each message is ACKed once it is on {HL7_QUEUE}. Loopback
# and plain TCP: for a feed on another host, give it tls-cert/tls-key (and tls-client-ca).
[mllp-gateway]
listen = "{MLLP_LISTEN}"
route = "ADT^*={HL7_QUEUE}"
claim-check-bucket = "{CLAIM_CHECK_BUCKET}"
allow-unencrypted = true
"#,
        rules.display()
    )
}

/// Provision the whole stack in `dir` and write its `fleet.toml` and rules file unless they
/// exist. Returns the config file's path.
pub fn init(dir: &Path) -> anyhow::Result<PathBuf> {
    let local = open(dir)?;
    provision_hl7(&local)?;
    provision_docs(&local)?;
    provision_notify(&local)?;
    let rules = dir.join(RULES_FILE);
    if !rules.exists() {
        std::fs::write(&rules, RULES).with_context(|| format!("writing {}", rules.display()))?;
    }
    let config = dir.join(CONFIG_FILE);
    if !config.exists() {
        std::fs::write(&config, default_config(dir))
            .with_context(|| format!("writing {}", config.display()))?;
    }
    Ok(config)
}
