//! The demo's notification step: a bus rule routes patient and document events to the notify
//! queue while the other steps run; then the `notify` worker renders them with the example
//! rules (`workers/notify/rules.example.toml`) into the local outbox (`outbox.jsonl` beside
//! the SQLite file), and the demo prints what care teams would have received.

use std::io::Write;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use fleet_core::Backend;
use fleet_local::LocalBackend;
use tokio_util::sync::CancellationToken;

pub use crate::local_stack::{NOTIFY_DLQ, NOTIFY_QUEUE, NOTIFY_TABLE, RULES};

#[derive(Debug, Default)]
pub struct NotifySummary {
    /// Events the rule routed to the notify queue in this run.
    pub routed: usize,
    /// Notifications this run added to the outbox.
    pub notifications: usize,
    pub dead_lettered: usize,
}

fn open(dir: &Path) -> anyhow::Result<LocalBackend> {
    crate::local_stack::open(dir)
}

/// Before the other steps: the notify queue, its rule on the demo bus, the outbox topics.
pub fn provision(dir: &Path) -> anyhow::Result<()> {
    crate::local_stack::provision_notify(&open(dir)?)
}

pub async fn run(dir: &Path, out: &mut impl Write) -> anyhow::Result<NotifySummary> {
    let local = open(dir)?;
    let backend: Arc<dyn Backend> = Arc::new(local.clone());
    let rules_path = dir.join("notify-rules.toml");
    std::fs::write(&rules_path, RULES)
        .with_context(|| format!("writing {}", rules_path.display()))?;
    let outbox_before = local.outbox()?.len();
    let dead_before = local.queue_messages_snapshot(NOTIFY_DLQ)?.len();
    let routed = local.queue_messages_snapshot(NOTIFY_QUEUE)?.len();
    writeln!(
        out,
        "\nnotify: {routed} events routed to queue {NOTIFY_QUEUE:?} by rule events-to-notify; rules from {}",
        rules_path.display()
    )?;

    let shutdown = CancellationToken::new();
    let config = worker_config(&rules_path);
    let worker = tokio::spawn(notify::run(config, backend.clone(), shutdown.clone()));
    let queue = backend.queue(NOTIFY_QUEUE).await?;
    let started = Instant::now();
    crate::demo::wait_until_drained(queue.as_ref(), Duration::from_secs(120)).await?;
    shutdown.cancel();
    let report = worker.await.context("notify task")??;
    let outbox = local.outbox()?;
    let new = &outbox[outbox_before.min(outbox.len())..];
    writeln!(
        out,
        "notified in {:.2} s: received {}, succeeded {}; {} notifications in the outbox {} (a reused directory adds none: deduplicated by event id)",
        started.elapsed().as_secs_f64(),
        report.received,
        report.succeeded,
        new.len(),
        local.outbox_path().display()
    )?;
    for entry in new.iter().take(8) {
        writeln!(
            out,
            "  [{}] {} | {} | {}",
            entry
                .notification
                .attributes
                .get("fleet.rule")
                .map_or("", String::as_str),
            entry.destination.redacted(),
            entry.notification.subject.as_deref().unwrap_or("-"),
            entry.notification.body
        )?;
    }
    if new.len() > 8 {
        writeln!(out, "  ... and {} more", new.len() - 8)?;
    }
    let dead = local.queue_messages_snapshot(NOTIFY_DLQ)?.len() - dead_before;
    Ok(NotifySummary {
        routed,
        notifications: new.len(),
        dead_lettered: dead,
    })
}

fn worker_config(rules: &Path) -> notify::WorkerConfig {
    let args = [
        format!("--queue={NOTIFY_QUEUE}"),
        format!("--table={NOTIFY_TABLE}"),
        format!("--rules={}", rules.display()),
        "--wait-time-secs=1".into(),
        "--rate-per-sec=1000".into(),
        "--burst=100".into(),
        "--allow-unencrypted".into(),
    ];
    crate::sections::parse("the demo's notify", &args).expect("the demo's flags are valid")
}
