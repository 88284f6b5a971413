//! Queue administration: create, delete, list, snapshot, and the queue's attributes.

use std::time::Duration;

use fleet_core::PortError;
use fleet_core::ports::{Attributes, QueueAttributes, RedrivePolicy};
use fleet_core::requests::count;
use rusqlite::{OptionalExtension, Transaction, params};

use super::{LocalQueue, MAX_DELAY, MAX_VISIBILITY, QueueSpec, invalid, load_config};
use crate::db::{Cached, Db, json_err, sql_err};
use crate::{QUEUE_ARN_PREFIX, QueuedMessage, duration_ms, now_ms};

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
            "DELETE FROM deleted_receipts WHERE queue = ?1",
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

/// Up to `limit` (negative: every) messages of queue `name` sent after sequence number
/// `after`, in send order, each with its sequence number, without receiving them.
fn peek(
    tx: &Transaction<'_>,
    name: &str,
    after: i64,
    limit: i64,
    op: &'static str,
) -> Result<Vec<(i64, QueuedMessage)>, PortError> {
    load_config(tx, name, op)?;
    let now = now_ms();
    let mut st = tx
        .prepare_cached(
            "SELECT seq, message_id, body, attributes, receive_count, sent_ms, visible_at_ms, receipt, group_id, dedup_id
             FROM messages WHERE queue = ?1 AND seq > ?2 ORDER BY seq LIMIT ?3",
        )
        .map_err(sql_err(op))?;
    let rows = st
        .query_map(params![name, after, limit], |r| {
            let receipt: Option<String> = r.get(7)?;
            let visible_at_ms: i64 = r.get(6)?;
            Ok((
                r.get::<_, i64>(0)?,
                QueuedMessage {
                    message_id: r.get(1)?,
                    body: r.get(2)?,
                    attributes: Attributes::new(),
                    receive_count: r.get(4)?,
                    sent_timestamp_ms: r.get(5)?,
                    visible_at_ms,
                    in_flight: receipt.is_some() && visible_at_ms > now,
                    group_id: r.get(8)?,
                    dedup_id: r.get(9)?,
                },
                r.get::<_, String>(3)?,
            ))
        })
        .map_err(sql_err(op))?;
    let mut out = Vec::new();
    for row in rows {
        let (seq, mut m, attrs) = row.map_err(sql_err(op))?;
        m.attributes = serde_json::from_str(&attrs).map_err(json_err(op))?;
        out.push((seq, m));
    }
    Ok(out)
}

/// Up to `limit` messages of queue `name` sent after sequence number `after`, in send order,
/// each with its sequence number: a read-only look (no receive, no write lock), so an observer
/// in another process does not change the queue or invalidate the writers' page caches.
pub(crate) async fn tail(
    db: &Db,
    name: &str,
    after: i64,
    limit: usize,
) -> Result<Vec<(i64, QueuedMessage)>, PortError> {
    const OP: &str = "local.queue_tail";
    let name = name.to_owned();
    let limit = i64::try_from(limit).unwrap_or(i64::MAX);
    db.read(OP, move |tx| peek(tx, &name, after, limit, OP))
        .await
}

pub(crate) fn snapshot(db: &Db, name: &str) -> Result<Vec<QueuedMessage>, PortError> {
    const OP: &str = "local.queue_snapshot";
    let name = name.to_owned();
    let all = db.run_sync(OP, move |tx| peek(tx, &name, i64::MIN, -1, OP))?;
    Ok(all.into_iter().map(|(_, m)| m).collect())
}

pub(super) async fn attributes(q: &LocalQueue) -> Result<QueueAttributes, PortError> {
    const OP: &str = "sqs.GetQueueAttributes";
    count(OP);
    let name = q.name.clone();
    q.db.read(OP, move |tx| {
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
            max_message_bytes: Some(super::MAX_MESSAGE_BYTES as u64),
        })
    })
    .await
}

/// What `fleet status` shows of one queue: counts, the oldest message, the DLQ, the last poll.
pub(crate) fn status(db: &Db, name: &str) -> Result<crate::QueueStatus, PortError> {
    const OP: &str = "local.queue_status";
    let name = name.to_owned();
    db.run_sync(OP, move |tx| {
        let cfg = load_config(tx, &name, OP)?;
        let now = now_ms();
        let (visible, in_flight, delayed, oldest_sent_ms) = tx
            .query_row(
                "SELECT COALESCE(SUM(visible_at_ms <= ?2), 0),
                        COALESCE(SUM(visible_at_ms > ?2 AND receipt IS NOT NULL), 0),
                        COALESCE(SUM(visible_at_ms > ?2 AND receipt IS NULL), 0),
                        MIN(sent_ms)
                 FROM messages WHERE queue = ?1",
                params![name, now],
                |r| {
                    Ok((
                        r.get::<_, i64>(0)?,
                        r.get::<_, i64>(1)?,
                        r.get::<_, i64>(2)?,
                        r.get::<_, Option<i64>>(3)?,
                    ))
                },
            )
            .map_err(sql_err(OP))?;
        let last_poll_ms = tx
            .query_row(
                "SELECT last_poll_ms FROM queue_polls WHERE queue = ?1",
                [&name],
                |r| r.get::<_, i64>(0),
            )
            .optional()
            .map_err(sql_err(OP))?;
        let count = |n: i64| u64::try_from(n).unwrap_or(0);
        let age = |then: i64| Duration::from_millis(count(now - then));
        Ok(crate::QueueStatus {
            visible: count(visible),
            in_flight: count(in_flight),
            delayed: count(delayed),
            oldest_message_age: oldest_sent_ms.map(age),
            dlq: cfg.redrive.map(|(dlq, _)| dlq),
            since_last_poll: last_poll_ms.map(age),
        })
    })
}
