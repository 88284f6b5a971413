//! The read-only commands: `list`, `summary` and `show`. Each reads through a [`Scanner`]
//! and releases everything it held before returning.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use fleet_core::{Backend, MessageQueue, PortError, QueueAttributes};
use serde::Serialize;

use crate::message::{Dead, format_ms};
use crate::scan::Scanner;
use crate::select::Filter;

/// A DLQ as `list` shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DlqInfo {
    pub queue: String,
    pub fifo: bool,
    pub encrypted: bool,
    pub visible: u64,
    pub in_flight: u64,
    /// SentTimestamp of the oldest message seen (RFC 3339).
    pub oldest_sent: Option<String>,
    /// Its age in seconds at the time of the scan.
    pub oldest_age_secs: Option<u64>,
    /// Whether the scan saw every message (false: it stopped at the scan limit, or the queue is
    /// FIFO, where only the first messages of each group can be read without moving them).
    pub scan_complete: bool,
    pub sources: Vec<String>,
}

/// The queues and the DLQs their redrive policies name.
pub struct Topology {
    pub queues: Vec<(Arc<dyn MessageQueue>, QueueAttributes)>,
}

impl Topology {
    pub async fn load(backend: &dyn Backend, prefix: &str) -> Result<Self, PortError> {
        let mut queues = Vec::new();
        for id in backend.list_queues(prefix).await? {
            let q = match backend.queue(&id).await {
                Ok(q) => q,
                // Deleted between the listing and now.
                Err(e) if e.kind == fleet_core::ErrorKind::NotFound => continue,
                Err(e) => return Err(e),
            };
            let attrs = match q.attributes().await {
                Ok(a) => a,
                Err(e) if e.kind == fleet_core::ErrorKind::NotFound => continue,
                Err(e) => return Err(e),
            };
            queues.push((q, attrs));
        }
        Ok(Self { queues })
    }

    /// Whether a redrive policy's target names this queue (an ARN on aws, a name locally).
    fn targets(target: &str, q: &dyn MessageQueue, attrs: &QueueAttributes) -> bool {
        Self::names(target, q.id(), &attrs.arn)
    }

    /// Whether a redrive policy's target names the queue with this id and ARN.
    pub fn names(target: &str, id: &str, arn: &str) -> bool {
        target == arn || target == id
    }

    /// The source queues whose redrive policy names `dlq`.
    pub fn sources_of(&self, dlq: &dyn MessageQueue, dlq_attrs: &QueueAttributes) -> Vec<String> {
        let mut sources: Vec<String> = self
            .queues
            .iter()
            .filter(|(_, a)| {
                a.redrive_policy
                    .as_ref()
                    .is_some_and(|p| Self::targets(&p.dead_letter_target, dlq, dlq_attrs))
            })
            .map(|(q, _)| q.id().to_string())
            .collect();
        sources.sort();
        sources
    }

    /// Every queue some redrive policy names, with its sources.
    pub fn dlqs(&self) -> Vec<(&Arc<dyn MessageQueue>, &QueueAttributes, Vec<String>)> {
        self.queues
            .iter()
            .filter_map(|(q, a)| {
                let sources = self.sources_of(q.as_ref(), a);
                (!sources.is_empty()).then_some((q, a, sources))
            })
            .collect()
    }
}

/// Read every message of `queue` the scan can see (at most `limit`), then release them all.
/// Returns the messages and whether the scan was complete.
pub async fn read_all(
    queue: Arc<dyn MessageQueue>,
    fifo: bool,
    hold: Duration,
    limit: usize,
) -> Result<(Vec<Dead>, bool), PortError> {
    let mut scanner = Scanner::new(queue, hold);
    let mut out = Vec::new();
    let mut complete = !fifo;
    let result = async {
        loop {
            if out.len() >= limit {
                complete = false;
                break;
            }
            match scanner.next_batch().await? {
                Some(batch) => out.extend(batch),
                None => break,
            }
        }
        Ok::<_, PortError>(())
    }
    .await;
    let released = scanner.release_all().await;
    result?;
    released?;
    out.truncate(limit);
    Ok((out, complete))
}

pub async fn list(
    backend: &dyn Backend,
    prefix: &str,
    hold: Duration,
    limit: usize,
    now_ms: i64,
) -> Result<Vec<DlqInfo>, PortError> {
    let topology = Topology::load(backend, prefix).await?;
    let mut out = Vec::new();
    for (q, attrs, sources) in topology.dlqs() {
        let (messages, complete) = read_all(q.clone(), attrs.fifo, hold, limit).await?;
        let oldest = messages.iter().map(|m| m.msg.sent_timestamp_ms).min();
        out.push(DlqInfo {
            queue: q.id().to_string(),
            fifo: attrs.fifo,
            encrypted: attrs.encrypted(),
            visible: attrs.approximate_visible,
            in_flight: attrs.approximate_in_flight,
            oldest_sent: oldest.map(format_ms),
            oldest_age_secs: oldest
                .map(|o| u64::try_from(now_ms.saturating_sub(o) / 1000).unwrap_or(0)),
            scan_complete: complete,
            sources,
        });
    }
    Ok(out)
}

/// One group of `summary`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FailureGroup {
    pub code: String,
    pub worker: String,
    pub source_queue: String,
    pub count: usize,
    pub first_failure: String,
    pub last_failure: String,
    /// Lowest and highest receive count in the group ([`Dead::receive_count`]).
    pub min_receive_count: u32,
    pub max_receive_count: u32,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Summary {
    pub queue: String,
    pub total: usize,
    pub scan_complete: bool,
    pub groups: Vec<FailureGroup>,
}

/// Group by (code, worker, source queue); largest groups first.
pub fn summarise(queue: &str, messages: &[Dead], scan_complete: bool) -> Summary {
    #[derive(Default)]
    struct Acc {
        count: usize,
        first: Option<i64>,
        last: Option<i64>,
        receives: Option<(u32, u32)>,
    }
    let mut groups: BTreeMap<(String, String, String), Acc> = BTreeMap::new();
    for m in messages {
        let key = (
            m.code().to_string(),
            m.worker().to_string(),
            m.source_queue().unwrap_or("").to_string(),
        );
        let e = groups.entry(key).or_default();
        e.count += 1;
        e.first = Some(
            e.first
                .map_or(m.first_failed_at_ms(), |f| f.min(m.first_failed_at_ms())),
        );
        e.last = Some(e.last.map_or(m.failed_at_ms(), |l| l.max(m.failed_at_ms())));
        let n = m.receive_count();
        e.receives = Some(e.receives.map_or((n, n), |(lo, hi)| (lo.min(n), hi.max(n))));
    }
    let mut groups: Vec<FailureGroup> = groups
        .into_iter()
        .map(|((code, worker, source_queue), acc)| {
            let (min_receive_count, max_receive_count) = acc.receives.unwrap_or_default();
            FailureGroup {
                code,
                worker,
                source_queue,
                count: acc.count,
                first_failure: format_ms(acc.first.unwrap_or_default()),
                last_failure: format_ms(acc.last.unwrap_or_default()),
                min_receive_count,
                max_receive_count,
            }
        })
        .collect();
    groups.sort_by(|a, b| b.count.cmp(&a.count).then_with(|| a.code.cmp(&b.code)));
    Summary {
        queue: queue.to_string(),
        total: messages.len(),
        scan_complete,
        groups,
    }
}

/// One message of `show`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Shown {
    pub message_id: String,
    pub code: String,
    pub detail: String,
    pub worker: String,
    pub source_queue: String,
    pub source_message_id: String,
    pub receive_count: u32,
    pub first_failure: String,
    pub last_failure: String,
    pub sent: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub group_id: Option<String>,
    pub attribute_names: Vec<String>,
    /// Only with `--show-body`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub body: Option<String>,
}

impl Shown {
    pub fn of(m: &Dead, show_body: bool) -> Self {
        let f = m.failure.clone().unwrap_or_default();
        Self {
            message_id: m.id().to_string(),
            code: m.code().to_string(),
            detail: f.detail,
            worker: f.worker,
            source_queue: f.source_queue,
            source_message_id: f.message_id,
            receive_count: f.receive_count,
            first_failure: format_ms(m.first_failed_at_ms()),
            last_failure: format_ms(m.failed_at_ms()),
            sent: format_ms(m.msg.sent_timestamp_ms),
            group_id: m.msg.group_id.clone(),
            attribute_names: m.attribute_names(),
            body: show_body.then(|| m.msg.body.clone()),
        }
    }
}

/// The messages `filter` selects, in scan order, at most `filter.max`.
pub fn select<'a>(messages: &'a [Dead], filter: &Filter, now_ms: i64) -> Vec<&'a Dead> {
    messages
        .iter()
        .filter(|m| filter.matches(m, now_ms))
        .take(filter.max.unwrap_or(usize::MAX))
        .collect()
}
