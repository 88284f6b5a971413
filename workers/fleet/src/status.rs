//! `fleet status`: for every queue the configured workers consume, its counts, the age of its
//! oldest message, its dead-letter queue's depth and that DLQ's messages counted by error code
//! (read from the `fleet.failure` attribute, never a body), and when a consumer last polled it.
//!
//! The local backend answers all of it exactly. On AWS, `GetQueueAttributes` gives the counts
//! and the DLQ depth; the oldest message's age is a CloudWatch metric
//! (`ApproximateAgeOfOldestMessage`) and counting a DLQ's codes means receiving its messages,
//! which a status command must not do: those fields are absent there (use `dlq-replay summary`).

use std::collections::BTreeMap;
use std::sync::Arc;

use anyhow::Context;
use fleet_core::Backend;
use fleet_core::failure::FailureMetadata;
use fleet_local::LocalBackend;
use serde::Serialize;

use crate::FleetConfig;

pub use fleet_core::failure::REDRIVEN_WITHOUT_FAILURE;

/// One consumed queue.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct QueueReport {
    pub worker: &'static str,
    pub queue: String,
    pub visible: u64,
    pub in_flight: u64,
    pub delayed: u64,
    /// Seconds since the oldest message on the queue was sent (local backend only).
    pub oldest_message_age_secs: Option<f64>,
    /// Seconds since a consumer last polled the queue (local backend only).
    pub last_poll_age_secs: Option<f64>,
    pub dlq: Option<DlqReport>,
}

/// A consumed queue's dead-letter queue.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct DlqReport {
    pub queue: String,
    pub depth: u64,
    /// Messages by error code (local backend only).
    pub codes: Option<BTreeMap<String, u64>>,
}

/// The queues the configuration's workers consume, with the worker that consumes each.
pub fn consumed_queues(config: &FleetConfig) -> Vec<(&'static str, String)> {
    let mut out = Vec::new();
    if let Some(queue) = config.hl7.as_ref().and_then(|w| w.queue.clone()) {
        out.push((hl7_ingest::WORKER, queue));
    }
    if let Some(docs) = &config.docs {
        for queue in [&docs.worker.queue, &docs.worker.completion_queue]
            .into_iter()
            .flatten()
        {
            out.push((doc_pipeline::WORKER, queue.clone()));
        }
    }
    if let Some(queue) = config.notify.as_ref().and_then(|w| w.queue.clone()) {
        out.push((notify::WORKER, queue));
    }
    out
}

/// The DLQ's depth and its messages counted by the code in their failure attribute, from one
/// read of the queue.
fn local_dlq(local: &LocalBackend, dlq: &str) -> anyhow::Result<DlqReport> {
    let messages = local
        .queue_messages_snapshot(dlq)
        .with_context(|| format!("dead-letter queue {dlq}"))?;
    let mut codes = BTreeMap::new();
    for m in &messages {
        let code = FailureMetadata::from_attributes(&m.attributes)
            .map(|f| f.code.as_str().to_string())
            .unwrap_or_else(|| REDRIVEN_WITHOUT_FAILURE.to_string());
        *codes.entry(code).or_insert(0) += 1;
    }
    Ok(DlqReport {
        queue: dlq.to_string(),
        depth: u64::try_from(messages.len()).unwrap_or(u64::MAX),
        codes: Some(codes),
    })
}

/// Status of every consumed queue on the local backend.
pub fn local_status(
    config: &FleetConfig,
    local: &LocalBackend,
) -> anyhow::Result<Vec<QueueReport>> {
    consumed_queues(config)
        .into_iter()
        .map(|(worker, queue)| {
            let s = local
                .queue_status(&queue)
                .with_context(|| format!("queue {queue}"))?;
            let dlq = s.dlq.as_deref().map(|d| local_dlq(local, d)).transpose()?;
            Ok(QueueReport {
                worker,
                queue,
                visible: s.visible,
                in_flight: s.in_flight,
                delayed: s.delayed,
                oldest_message_age_secs: s.oldest_message_age.map(|d| d.as_secs_f64()),
                last_poll_age_secs: s.since_last_poll.map(|d| d.as_secs_f64()),
                dlq,
            })
        })
        .collect()
}

/// Status of every consumed queue through the backend's ports (AWS): counts and DLQ depth.
pub async fn port_status(
    config: &FleetConfig,
    backend: Arc<dyn Backend>,
) -> anyhow::Result<Vec<QueueReport>> {
    let mut out = Vec::new();
    for (worker, queue) in consumed_queues(config) {
        let a = backend
            .queue(&queue)
            .await
            .with_context(|| format!("queue {queue}"))?
            .attributes()
            .await
            .with_context(|| format!("queue {queue}"))?;
        let dlq = match a.redrive_policy {
            Some(policy) => {
                // An ARN's last part is the queue's name.
                let name = policy
                    .dead_letter_target
                    .rsplit(':')
                    .next()
                    .unwrap_or_default()
                    .to_string();
                let d = backend
                    .queue(&name)
                    .await
                    .with_context(|| format!("dead-letter queue {name}"))?
                    .attributes()
                    .await
                    .with_context(|| format!("dead-letter queue {name}"))?;
                Some(DlqReport {
                    queue: name,
                    depth: d.approximate_visible + d.approximate_in_flight + d.approximate_delayed,
                    codes: None,
                })
            }
            None => None,
        };
        out.push(QueueReport {
            worker,
            queue,
            visible: a.approximate_visible,
            in_flight: a.approximate_in_flight,
            delayed: a.approximate_delayed,
            oldest_message_age_secs: None,
            last_poll_age_secs: None,
            dlq,
        });
    }
    Ok(out)
}

/// The human table.
pub fn render_text(reports: &[QueueReport], out: &mut impl std::io::Write) -> std::io::Result<()> {
    let secs = |v: Option<f64>| v.map_or_else(|| "-".to_string(), |s| format!("{s:.1}s"));
    for r in reports {
        writeln!(
            out,
            "{} {}: {} visible, {} in flight, {} delayed; oldest {}; last poll {} ago",
            r.worker,
            r.queue,
            r.visible,
            r.in_flight,
            r.delayed,
            secs(r.oldest_message_age_secs),
            secs(r.last_poll_age_secs)
        )?;
        match &r.dlq {
            Some(d) => {
                let codes = d.codes.as_ref().map_or_else(
                    || "codes: see dlq-replay summary".to_string(),
                    |c| {
                        c.iter()
                            .map(|(code, n)| format!("{code} {n}"))
                            .collect::<Vec<_>>()
                            .join(", ")
                    },
                );
                let codes = if codes.is_empty() {
                    String::new()
                } else {
                    format!("; {codes}")
                };
                writeln!(out, "  dlq {}: {} messages{codes}", d.queue, d.depth)?;
            }
            None => writeln!(out, "  no dead-letter queue (no redrive policy)")?,
        }
    }
    Ok(())
}
