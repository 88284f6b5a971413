//! Queues with SQS semantics on the `messages` table.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use fleet_core::ports::{
    Attributes, BatchResult, EntryFailure, MessageQueue, OutgoingMessage, QueueAttributes,
    ReceivedMessage, RedrivePolicy,
};
use fleet_core::requests::count;
use fleet_core::{ErrorKind, PortError};
use rusqlite::{OptionalExtension, Transaction, params};
use sha2::{Digest, Sha256};

use crate::db::{Cached, Db, json_err, sql_err};
use crate::{QUEUE_ARN_PREFIX, QueuedMessage, duration_ms, now_ms};

/// SQS limits the local queue enforces too, so nothing works locally that AWS would reject.
const MAX_BATCH: usize = 10;
const MAX_WAIT: Duration = Duration::from_secs(20);
const MAX_VISIBILITY: Duration = Duration::from_secs(12 * 60 * 60);
const MAX_DELAY: Duration = Duration::from_secs(15 * 60);
const MAX_MESSAGE_BYTES: usize = 256 * 1024;
const MAX_ATTRIBUTES: usize = 10;
const DEDUP_WINDOW: Duration = Duration::from_secs(5 * 60);
/// Keep the last receipt of a deleted message this long, so a repeated delete succeeds.
const RECEIPT_RETENTION: Duration = Duration::from_secs(60 * 60);
/// How often an idle long poll looks at the database again.
const POLL_INTERVAL: Duration = Duration::from_millis(20);

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

fn validate_name(name: &str, fifo: bool) -> Result<(), PortError> {
    const OP: &str = "local.create_queue";
    let base = name.strip_suffix(".fifo");
    if fifo != base.is_some() {
        return Err(invalid(
            OP,
            "a FIFO queue's name must end in \".fifo\", and only a FIFO queue's",
        ));
    }
    let base = base.unwrap_or(name);
    let ok_chars = base
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
    if name.is_empty() || name.len() > 80 || base.is_empty() || !ok_chars {
        return Err(invalid(
            OP,
            "queue names are 1-80 characters: letters, digits, '-' and '_'",
        ));
    }
    Ok(())
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

pub(crate) fn create_queue(db: &Db, name: &str, spec: &QueueSpec) -> Result<(), PortError> {
    const OP: &str = "local.create_queue";
    validate_name(name, spec.fifo)?;
    if spec.visibility_timeout > MAX_VISIBILITY {
        return Err(invalid(OP, "visibility timeout above 12 hours"));
    }
    if spec.delay > MAX_DELAY {
        return Err(invalid(OP, "delay above 15 minutes"));
    }
    if spec.content_based_dedup && !spec.fifo {
        return Err(invalid(
            OP,
            "content-based deduplication applies to FIFO queues only",
        ));
    }
    let name = name.to_string();
    let spec = spec.clone();
    db.run_sync(OP, move |tx| {
        if let Some((dlq, max)) = &spec.redrive {
            if !(1..=1000).contains(max) {
                return Err(invalid(OP, "maxReceiveCount must be 1..=1000"));
            }
            let dlq_fifo: Option<bool> = tx
                .row("SELECT fifo FROM queues WHERE name = ?1", [dlq], |r| r.get(0))
                .optional()
                .map_err(sql_err(OP))?;
            match dlq_fifo {
                None => return Err(PortError::not_found(OP, format!("dead-letter queue {dlq:?} does not exist"))),
                Some(f) if f != spec.fifo => {
                    return Err(invalid(OP, "a FIFO queue needs a FIFO dead-letter queue, a standard one a standard one"));
                }
                Some(_) => {}
            }
        }
        let existing: Option<bool> = tx
            .row("SELECT fifo FROM queues WHERE name = ?1", [&name], |r| r.get(0))
            .optional()
            .map_err(sql_err(OP))?;
        if existing.is_some_and(|f| f != spec.fifo) {
            return Err(invalid(OP, format!("queue {name:?} exists with a different FIFO setting")));
        }
        let (dlq, max) = spec.redrive.clone().unzip();
        tx.exec(
            "INSERT INTO queues (name, fifo, visibility_ms, delay_ms, dlq, max_receives, content_dedup, kms_key_id)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)
             ON CONFLICT (name) DO UPDATE SET visibility_ms = excluded.visibility_ms, delay_ms = excluded.delay_ms,
                dlq = excluded.dlq, max_receives = excluded.max_receives,
                content_dedup = excluded.content_dedup, kms_key_id = excluded.kms_key_id",
            params![
                name,
                spec.fifo,
                duration_ms(spec.visibility_timeout),
                duration_ms(spec.delay),
                dlq,
                max,
                spec.content_based_dedup,
                spec.kms_key_id
            ],
        )
        .map_err(sql_err(OP))?;
        Ok(())
    })
}

pub(crate) fn delete_queue(db: &Db, name: &str) -> Result<(), PortError> {
    const OP: &str = "local.delete_queue";
    let name = name.to_owned();
    db.run_sync(OP, move |tx| {
        let n = tx
            .exec("DELETE FROM queues WHERE name = ?1", [&name])
            .map_err(sql_err(OP))?;
        if n == 0 {
            return Err(PortError::not_found(
                OP,
                format!("queue {name:?} does not exist"),
            ));
        }
        for sql in [
            "DELETE FROM messages WHERE queue = ?1",
            "DELETE FROM receipts WHERE queue = ?1",
            "DELETE FROM fifo_dedup WHERE queue = ?1",
        ] {
            tx.exec(sql, [&name]).map_err(sql_err(OP))?;
        }
        Ok(())
    })
}

pub(crate) fn list_queues(db: &Db) -> Result<Vec<String>, PortError> {
    const OP: &str = "local.list_queues";
    db.run_sync(OP, |tx| {
        let mut st = tx
            .prepare("SELECT name FROM queues ORDER BY name")
            .map_err(sql_err(OP))?;
        let rows = st.query_map([], |r| r.get(0)).map_err(sql_err(OP))?;
        rows.collect::<Result<Vec<String>, _>>()
            .map_err(sql_err(OP))
    })
}

pub(crate) fn snapshot(db: &Db, name: &str) -> Result<Vec<QueuedMessage>, PortError> {
    const OP: &str = "local.queue_snapshot";
    let name = name.to_owned();
    db.run_sync(OP, move |tx| {
        load_config(tx, &name, OP)?;
        let now = now_ms();
        let mut st = tx
            .prepare(
                "SELECT message_id, body, attributes, receive_count, sent_ms, visible_at_ms, receipt, group_id, dedup_id
                 FROM messages WHERE queue = ?1 ORDER BY seq",
            )
            .map_err(sql_err(OP))?;
        let rows = st
            .query_map([name], |r| {
                let receipt: Option<String> = r.get(6)?;
                let visible_at_ms: i64 = r.get(5)?;
                Ok((
                    QueuedMessage {
                        message_id: r.get(0)?,
                        body: r.get(1)?,
                        attributes: Attributes::new(),
                        receive_count: r.get(3)?,
                        sent_timestamp_ms: r.get(4)?,
                        visible_at_ms,
                        in_flight: receipt.is_some() && visible_at_ms > now,
                        group_id: r.get(7)?,
                        dedup_id: r.get(8)?,
                    },
                    r.get::<_, String>(2)?,
                ))
            })
            .map_err(sql_err(OP))?;
        let mut out = Vec::new();
        for row in rows {
            let (mut m, attrs) = row.map_err(sql_err(OP))?;
            m.attributes = serde_json::from_str(&attrs).map_err(json_err(OP))?;
            out.push(m);
        }
        Ok(out)
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

struct Candidate {
    seq: i64,
    message_id: String,
    body: String,
    attributes: String,
    sent_ms: i64,
    receive_count: u32,
    group_id: Option<String>,
    dedup_id: Option<String>,
}

fn select_candidates(
    tx: &Transaction<'_>,
    queue: &str,
    fifo: bool,
    now: i64,
    limit: usize,
) -> Result<Vec<Candidate>, PortError> {
    const OP: &str = "sqs.ReceiveMessage";
    // FIFO: a message is deliverable only when nothing earlier in its group is invisible
    // (in flight or delayed), which keeps each group in order and blocks it while one of its
    // messages is being processed.
    // `+visible_at_ms` keeps SQLite from using the visibility index here: walking
    // `messages_order` in sequence order stops after `limit` hits, where a range on visibility
    // would sort the whole visible backlog on every receive.
    let sql = if fifo {
        "SELECT seq, message_id, body, attributes, sent_ms, receive_count, group_id, dedup_id FROM messages m
         WHERE queue = ?1 AND +visible_at_ms <= ?2
           AND NOT EXISTS (SELECT 1 FROM messages e WHERE e.queue = m.queue AND e.group_id = m.group_id
                           AND e.seq < m.seq AND e.visible_at_ms > ?2)
         ORDER BY seq LIMIT ?3"
    } else {
        "SELECT seq, message_id, body, attributes, sent_ms, receive_count, group_id, dedup_id FROM messages
         WHERE queue = ?1 AND +visible_at_ms <= ?2 ORDER BY seq LIMIT ?3"
    };
    let mut st = tx.prepare_cached(sql).map_err(sql_err(OP))?;
    let limit = i64::try_from(limit).unwrap_or(i64::MAX);
    let rows = st
        .query_map(params![queue, now, limit], |r| {
            Ok(Candidate {
                seq: r.get(0)?,
                message_id: r.get(1)?,
                body: r.get(2)?,
                attributes: r.get(3)?,
                sent_ms: r.get(4)?,
                receive_count: r.get(5)?,
                group_id: r.get(6)?,
                dedup_id: r.get(7)?,
            })
        })
        .map_err(sql_err(OP))?;
    rows.collect::<Result<Vec<_>, _>>().map_err(sql_err(OP))
}

fn new_receipt() -> String {
    format!("local-{}", uuid::Uuid::new_v4().simple())
}

fn receive_once(
    tx: &Transaction<'_>,
    queue: &str,
    max: usize,
    visibility: Option<Duration>,
) -> Result<Vec<ReceivedMessage>, PortError> {
    const OP: &str = "sqs.ReceiveMessage";
    let cfg = load_config(tx, queue, OP)?;
    let visibility_ms = visibility.map(duration_ms).unwrap_or(cfg.visibility_ms);
    let now = now_ms();
    let dlq = match &cfg.redrive {
        Some((dlq, max_receives)) if queue_exists(tx, dlq)? => Some((dlq.as_str(), *max_receives)),
        _ => None,
    };
    let mut out = Vec::new();
    loop {
        let candidates = select_candidates(tx, queue, cfg.fifo, now, max - out.len())?;
        if candidates.is_empty() {
            break;
        }
        let mut moved = false;
        for c in candidates {
            if let Some((dlq, max_receives)) = dlq
                && c.receive_count >= max_receives
            {
                // SQS moves the message when a receive would exceed maxReceiveCount, keeping
                // its id, body and attributes.
                tx.exec(
                    "INSERT INTO messages (queue, message_id, body, attributes, sent_ms, visible_at_ms, group_id, dedup_id)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
                    params![dlq, c.message_id, c.body, c.attributes, c.sent_ms, now, c.group_id, c.dedup_id],
                )
                .map_err(sql_err(OP))?;
                tx.exec("DELETE FROM messages WHERE seq = ?1", [c.seq])
                    .map_err(sql_err(OP))?;
                moved = true;
                continue;
            }
            let receipt = new_receipt();
            let receive_count = c.receive_count.saturating_add(1);
            tx.exec(
                "UPDATE messages SET receipt = ?1, receive_count = ?2, visible_at_ms = ?3 WHERE seq = ?4",
                params![receipt, receive_count, now.saturating_add(visibility_ms), c.seq],
            )
            .map_err(sql_err(OP))?;
            tx.exec(
                "INSERT OR REPLACE INTO receipts (receipt, queue, seq, issued_ms) VALUES (?1, ?2, ?3, ?4)",
                params![receipt, queue, c.seq, now],
            )
            .map_err(sql_err(OP))?;
            let attributes: Attributes =
                serde_json::from_str(&c.attributes).map_err(json_err(OP))?;
            out.push(ReceivedMessage {
                message_id: c.message_id,
                receipt,
                body: c.body,
                attributes,
                receive_count,
                sent_timestamp_ms: c.sent_ms,
                sequence_number: cfg.fifo.then(|| format!("{:020}", c.seq)),
                group_id: c.group_id,
                dedup_id: c.dedup_id,
            });
        }
        if !moved || out.len() >= max {
            break;
        }
    }
    Ok(out)
}

/// Whether anything is receivable at all: a read-only probe so idle long polls take no write
/// lock.
fn anything_visible(tx: &Transaction<'_>, queue: &str) -> Result<bool, PortError> {
    const OP: &str = "sqs.ReceiveMessage";
    load_config(tx, queue, OP)?;
    tx.row(
        "SELECT EXISTS(SELECT 1 FROM messages WHERE queue = ?1 AND visible_at_ms <= ?2)",
        params![queue, now_ms()],
        |r| r.get(0),
    )
    .map_err(sql_err(OP))
}

/// Why one outgoing message was refused: an SQS error code.
struct Refused(&'static str, &'static str);

fn valid_sqs_chars(s: &str) -> bool {
    s.chars().all(|c| matches!(c, '\u{9}' | '\u{A}' | '\u{D}' | '\u{20}'..='\u{D7FF}' | '\u{E000}'..='\u{FFFD}' | '\u{10000}'..='\u{10FFFF}'))
}

fn validate_attributes(attrs: &Attributes) -> Result<usize, Refused> {
    if attrs.len() > MAX_ATTRIBUTES {
        return Err(Refused(
            "InvalidParameterValue",
            "more than 10 message attributes",
        ));
    }
    let mut size = 0;
    for (name, v) in attrs {
        let base = v.data_type.split('.').next().unwrap_or("");
        let value_ok = match base {
            "String" | "Number" => v.string_value.as_deref().is_some_and(valid_sqs_chars),
            "Binary" => v.binary_value.is_some(),
            _ => false,
        };
        if name.is_empty() || name.len() > 256 || !value_ok {
            return Err(Refused(
                "InvalidParameterValue",
                "malformed message attribute",
            ));
        }
        size += name.len()
            + v.data_type.len()
            + v.string_value.as_ref().map_or(0, String::len)
            + v.binary_value.as_ref().map_or(0, Vec::len);
    }
    Ok(size)
}

/// Insert one message (or find its duplicate); returns the message id.
fn insert_message(
    tx: &Transaction<'_>,
    queue: &str,
    cfg: &QueueConfig,
    m: &OutgoingMessage,
    now: i64,
) -> Result<Result<String, Refused>, PortError> {
    const OP: &str = "sqs.SendMessage";
    let attrs_size = match validate_attributes(&m.attributes) {
        Ok(n) => n,
        Err(r) => return Ok(Err(r)),
    };
    if m.body.is_empty() || !valid_sqs_chars(&m.body) {
        return Ok(Err(Refused(
            "InvalidMessageContents",
            "the body is empty or has characters SQS does not allow",
        )));
    }
    if m.body.len() + attrs_size > MAX_MESSAGE_BYTES {
        return Ok(Err(Refused(
            "InvalidParameterValue",
            "message larger than 256 KiB",
        )));
    }
    if m.delay.is_some_and(|d| d > MAX_DELAY) {
        return Ok(Err(Refused(
            "InvalidParameterValue",
            "delay above 15 minutes",
        )));
    }
    let (group_id, dedup_id) = if cfg.fifo {
        let Some(group) = m.group_id.clone() else {
            return Ok(Err(Refused(
                "MissingParameter",
                "MessageGroupId is required on a FIFO queue",
            )));
        };
        if m.delay.is_some_and(|d| !d.is_zero()) {
            return Ok(Err(Refused(
                "InvalidParameterValue",
                "per-message delay is not allowed on a FIFO queue",
            )));
        }
        let dedup = match (&m.dedup_id, cfg.content_dedup) {
            (Some(d), _) => d.clone(),
            (None, true) => hex::encode(Sha256::digest(m.body.as_bytes())),
            (None, false) => {
                return Ok(Err(Refused(
                    "InvalidParameterValue",
                    "MessageDeduplicationId is required without content-based deduplication",
                )));
            }
        };
        (Some(group), Some(dedup))
    } else {
        (None, None)
    };
    if let Some(dedup) = &dedup_id {
        tx.exec(
            "DELETE FROM fifo_dedup WHERE queue = ?1 AND expires_ms <= ?2",
            params![queue, now],
        )
        .map_err(sql_err(OP))?;
        let existing: Option<String> = tx
            .row(
                "SELECT message_id FROM fifo_dedup WHERE queue = ?1 AND dedup_id = ?2",
                params![queue, dedup],
                |r| r.get(0),
            )
            .optional()
            .map_err(sql_err(OP))?;
        if let Some(id) = existing {
            // Accepted but not delivered again, like SQS.
            return Ok(Ok(id));
        }
    }
    let message_id = uuid::Uuid::new_v4().to_string();
    let delay_ms = m.delay.map(duration_ms).unwrap_or(cfg.delay_ms);
    let attributes = serde_json::to_string(&m.attributes).map_err(json_err(OP))?;
    tx.exec(
        "INSERT INTO messages (queue, message_id, body, attributes, sent_ms, visible_at_ms, group_id, dedup_id)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
        params![queue, message_id, m.body, attributes, now, now.saturating_add(delay_ms), group_id, dedup_id],
    )
    .map_err(sql_err(OP))?;
    if let Some(dedup) = &dedup_id {
        tx.exec(
            "INSERT INTO fifo_dedup (queue, dedup_id, message_id, expires_ms) VALUES (?1, ?2, ?3, ?4)",
            params![queue, dedup, message_id, now.saturating_add(duration_ms(DEDUP_WINDOW))],
        )
        .map_err(sql_err(OP))?;
    }
    Ok(Ok(message_id))
}

/// Send into `queue` inside an existing transaction (used by the bus for rule targets).
pub(crate) fn send_in_tx(
    tx: &Transaction<'_>,
    queue: &str,
    m: &OutgoingMessage,
) -> Result<Result<String, &'static str>, PortError> {
    let cfg = load_config(tx, queue, "sqs.SendMessage")?;
    Ok(insert_message(tx, queue, &cfg, m, now_ms())?.map_err(|r| r.0))
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

/// Whether `receipt` is the last receipt of a message that has since been deleted.
fn receipt_of_deleted(
    tx: &Transaction<'_>,
    queue: &str,
    receipt: &str,
    op: &'static str,
) -> Result<bool, PortError> {
    tx.row(
        "SELECT EXISTS(SELECT 1 FROM receipts r WHERE r.receipt = ?1 AND r.queue = ?2
                       AND NOT EXISTS (SELECT 1 FROM messages m WHERE m.seq = r.seq))",
        params![receipt, queue],
        |r| r.get(0),
    )
    .map_err(sql_err(op))
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
        const OP: &str = "sqs.ReceiveMessage";
        count(OP);
        if !(1..=10).contains(&max) {
            return Err(invalid(OP, "MaxNumberOfMessages must be 1..=10"));
        }
        if wait > MAX_WAIT {
            return Err(invalid(OP, "WaitTimeSeconds must be at most 20"));
        }
        if visibility.is_some_and(|v| v > MAX_VISIBILITY) {
            return Err(invalid(OP, "VisibilityTimeout must be at most 12 hours"));
        }
        let max = usize::try_from(max).unwrap_or(MAX_BATCH);
        // tokio's clock, so a test with paused time does not spin through a real-time wait.
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            let name = self.name.clone();
            if self
                .db
                .read(OP, move |tx| anything_visible(tx, &name))
                .await?
            {
                let name = self.name.clone();
                let got = self
                    .db
                    .run(OP, move |tx| receive_once(tx, &name, max, visibility))
                    .await?;
                if !got.is_empty() {
                    return Ok(got);
                }
            }
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            if left.is_zero() {
                return Ok(Vec::new());
            }
            tokio::time::sleep(left.min(POLL_INTERVAL)).await;
        }
    }

    async fn delete_batch(&self, receipts: &[String]) -> Result<BatchResult, PortError> {
        const OP: &str = "sqs.DeleteMessageBatch";
        count(OP);
        check_batch(OP, receipts.len())?;
        let name = self.name.clone();
        let receipts = receipts.to_vec();
        self.db
            .run(OP, move |tx| {
                let now = now_ms();
                load_config(tx, &name, OP)?;
                let mut result = BatchResult::default();
                for (index, receipt) in receipts.iter().enumerate() {
                    let n = tx
                        .exec("DELETE FROM messages WHERE queue = ?1 AND receipt = ?2", params![&*name, receipt])
                        .map_err(sql_err(OP))?;
                    // Deleting again with the latest receipt succeeds on SQS; an older one does not.
                    if n == 0 && !receipt_of_deleted(tx, &name, receipt, OP)? {
                        result.failed.push(EntryFailure { index, code: "ReceiptHandleIsInvalid".into(), sender_fault: true });
                    }
                }
                tx.exec(
                    "DELETE FROM receipts WHERE issued_ms < ?1 AND NOT EXISTS (SELECT 1 FROM messages m WHERE m.seq = receipts.seq)",
                    [now.saturating_sub(duration_ms(RECEIPT_RETENTION))],
                )
                .map_err(sql_err(OP))?;
                Ok(result)
            })
            .await
    }

    async fn change_visibility_batch(
        &self,
        entries: &[(String, Duration)],
    ) -> Result<BatchResult, PortError> {
        const OP: &str = "sqs.ChangeMessageVisibilityBatch";
        count(OP);
        check_batch(OP, entries.len())?;
        let name = self.name.clone();
        let entries = entries.to_vec();
        self.db
            .run(OP, move |tx| {
                load_config(tx, &name, OP)?;
                let now = now_ms();
                let mut result = BatchResult::default();
                for (index, (receipt, timeout)) in entries.iter().enumerate() {
                    if *timeout > MAX_VISIBILITY {
                        result.failed.push(EntryFailure { index, code: "InvalidParameterValue".into(), sender_fault: true });
                        continue;
                    }
                    let n = tx
                        .exec(
                            "UPDATE messages SET visible_at_ms = ?1 WHERE queue = ?2 AND receipt = ?3",
                            params![now.saturating_add(duration_ms(*timeout)), &*name, receipt],
                        )
                        .map_err(sql_err(OP))?;
                    if n == 0 {
                        let code = if receipt_of_deleted(tx, &name, receipt, OP)? {
                            "InvalidParameterValue"
                        } else {
                            "ReceiptHandleIsInvalid"
                        };
                        result.failed.push(EntryFailure { index, code: code.into(), sender_fault: true });
                    }
                }
                Ok(result)
            })
            .await
    }

    async fn send(&self, message: OutgoingMessage) -> Result<String, PortError> {
        const OP: &str = "sqs.SendMessage";
        count(OP);
        let name = self.name.clone();
        self.db
            .run(OP, move |tx| {
                let cfg = load_config(tx, &name, OP)?;
                match insert_message(tx, &name, &cfg, &message, now_ms())? {
                    Ok(id) => Ok(id),
                    Err(Refused(code, why)) => Err(invalid(OP, format!("{code}: {why}"))),
                }
            })
            .await
    }

    async fn send_batch(&self, messages: &[OutgoingMessage]) -> Result<BatchResult, PortError> {
        const OP: &str = "sqs.SendMessageBatch";
        count(OP);
        check_batch(OP, messages.len())?;
        let name = self.name.clone();
        let messages = messages.to_vec();
        self.db
            .run(OP, move |tx| {
                let cfg = load_config(tx, &name, OP)?;
                let now = now_ms();
                let mut result = BatchResult::default();
                for (index, m) in messages.iter().enumerate() {
                    if let Err(Refused(code, _)) = insert_message(tx, &name, &cfg, m, now)? {
                        result.failed.push(EntryFailure {
                            index,
                            code: code.into(),
                            sender_fault: true,
                        });
                    }
                }
                Ok(result)
            })
            .await
    }

    async fn attributes(&self) -> Result<QueueAttributes, PortError> {
        const OP: &str = "sqs.GetQueueAttributes";
        count(OP);
        let name = self.name.clone();
        self.db
            .read(OP, move |tx| {
                let cfg = load_config(tx, &name, OP)?;
                let now = now_ms();
                let (visible, in_flight, delayed): (i64, i64, i64) = tx
                    .row(
                        "SELECT COALESCE(SUM(visible_at_ms <= ?2), 0),
                                COALESCE(SUM(visible_at_ms > ?2 AND receipt IS NOT NULL), 0),
                                COALESCE(SUM(visible_at_ms > ?2 AND receipt IS NULL), 0)
                         FROM messages WHERE queue = ?1",
                        params![&*name, now],
                        |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
                    )
                    .map_err(sql_err(OP))?;
                let to_u64 = |n: i64| u64::try_from(n).unwrap_or(0);
                Ok(QueueAttributes {
                    fifo: cfg.fifo,
                    kms_key_id: cfg.kms_key_id,
                    sqs_managed_sse: false,
                    redrive_policy: cfg.redrive.map(|(dlq, max)| RedrivePolicy {
                        dead_letter_target: dlq,
                        max_receive_count: max,
                    }),
                    visibility_timeout: Duration::from_millis(
                        u64::try_from(cfg.visibility_ms).unwrap_or(0),
                    ),
                    approximate_visible: to_u64(visible),
                    approximate_in_flight: to_u64(in_flight),
                    approximate_delayed: to_u64(delayed),
                    arn: format!("{QUEUE_ARN_PREFIX}{name}"),
                })
            })
            .await
    }
}
