//! Queues with SQS semantics on the `messages` table.
//!
//! - [`admin`]: creating, deleting and listing queues, snapshots, queue attributes.
//! - [`receive`]: receiving (long poll, FIFO group order, redrive to the DLQ) and visibility.
//! - [`send`]: sending one or a batch, validation against SQS's limits, FIFO deduplication.
//! - [`delete`]: deleting by receipt, stale receipts and receipt retention.

mod admin;
mod delete;
mod receipt;
mod receive;
mod send;

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use fleet_core::ports::{
    BatchResult, MessageQueue, OutgoingMessage, QueueAttributes, ReceivedMessage,
};
use fleet_core::{ErrorKind, PortError};
use rusqlite::{OptionalExtension, Transaction};

use crate::db::{Cached, Db, sql_err};

pub(crate) use admin::{create_queue, delete_queue, list_queues, snapshot, status, tail};
pub(crate) use send::send_in_tx;

/// SQS limits the local queue enforces too, so nothing works locally that AWS would reject.
const MAX_BATCH: usize = 10;
const MAX_WAIT: Duration = Duration::from_secs(20);
const MAX_VISIBILITY: Duration = Duration::from_secs(12 * 60 * 60);
const MAX_DELAY: Duration = Duration::from_secs(15 * 60);
const MAX_MESSAGE_BYTES: usize = 256 * 1024;
const MAX_ATTRIBUTES: usize = 10;

/// Settings of a queue, as given to [`crate::LocalBackend::create_queue`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueSpec {
    pub fifo: bool,
    pub visibility_timeout: Duration,
    pub delay: Duration,
    /// (DLQ name, max receives).
    pub redrive: Option<(String, u32)>,
    pub content_based_dedup: bool,
    /// Reported by `attributes()`; nothing is encrypted locally.
    pub kms_key_id: Option<String>,
}

impl Default for QueueSpec {
    /// SQS's defaults: standard queue, 30 s visibility, no delay, no redrive.
    fn default() -> Self {
        Self {
            fifo: false,
            visibility_timeout: Duration::from_secs(30),
            delay: Duration::ZERO,
            redrive: None,
            content_based_dedup: false,
            kms_key_id: None,
        }
    }
}

#[derive(Debug, Clone)]
struct QueueConfig {
    fifo: bool,
    visibility_ms: i64,
    delay_ms: i64,
    redrive: Option<(String, u32)>,
    content_dedup: bool,
    kms_key_id: Option<String>,
}

fn invalid(op: &'static str, msg: impl Into<String>) -> PortError {
    PortError::invalid(op, msg)
}

pub(crate) fn queue_exists(tx: &Transaction<'_>, name: &str) -> Result<bool, PortError> {
    tx.row(
        "SELECT EXISTS(SELECT 1 FROM queues WHERE name = ?1)",
        [name],
        |r| r.get(0),
    )
    .map_err(sql_err("local.queue"))
}

fn load_config(
    tx: &Transaction<'_>,
    name: &str,
    op: &'static str,
) -> Result<QueueConfig, PortError> {
    let row = tx
        .row(
            "SELECT fifo, visibility_ms, delay_ms, dlq, max_receives, content_dedup, kms_key_id FROM queues WHERE name = ?1",
            [name],
            |r| {
                let dlq: Option<String> = r.get(3)?;
                let max: Option<u32> = r.get(4)?;
                Ok(QueueConfig {
                    fifo: r.get(0)?,
                    visibility_ms: r.get(1)?,
                    delay_ms: r.get(2)?,
                    redrive: dlq.zip(max),
                    content_dedup: r.get(5)?,
                    kms_key_id: r.get(6)?,
                })
            },
        )
        .optional()
        .map_err(sql_err(op))?;
    row.ok_or_else(|| {
        PortError::new(
            ErrorKind::NotFound,
            op,
            format!("AWS.SimpleQueueService.NonExistentQueue: queue {name:?} does not exist"),
        )
    })
}

/// A queue port bound to one queue name.
pub(crate) struct LocalQueue {
    db: Arc<Db>,
    name: Arc<str>,
}

impl LocalQueue {
    pub(crate) fn new(db: Arc<Db>, name: String) -> Self {
        Self {
            db,
            name: name.into(),
        }
    }
}

fn check_batch(op: &'static str, n: usize) -> Result<(), PortError> {
    if n > MAX_BATCH {
        return Err(PortError::invalid(
            op,
            format!("AWS.SimpleQueueService.TooManyEntriesInBatchRequest: {n} entries"),
        ));
    }
    Ok(())
}

#[async_trait]
impl MessageQueue for LocalQueue {
    fn id(&self) -> &str {
        &self.name
    }

    async fn receive(
        &self,
        max: u32,
        wait: Duration,
        visibility: Option<Duration>,
    ) -> Result<Vec<ReceivedMessage>, PortError> {
        receive::receive(self, max, wait, visibility).await
    }

    async fn delete_batch(&self, receipts: &[String]) -> Result<BatchResult, PortError> {
        delete::delete_batch(self, receipts).await
    }

    async fn change_visibility_batch(
        &self,
        entries: &[(String, Duration)],
    ) -> Result<BatchResult, PortError> {
        receive::change_visibility_batch(self, entries).await
    }

    async fn send(&self, message: OutgoingMessage) -> Result<String, PortError> {
        send::send(self, message).await
    }

    async fn send_batch(&self, messages: &[OutgoingMessage]) -> Result<BatchResult, PortError> {
        send::send_batch(self, messages).await
    }

    async fn attributes(&self) -> Result<QueueAttributes, PortError> {
        admin::attributes(self).await
    }
}
