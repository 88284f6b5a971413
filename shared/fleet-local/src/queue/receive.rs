//! Receiving: the long poll, FIFO group order, redrive to the dead-letter queue, and changing
//! the visibility of received messages.

use std::time::Duration;

use fleet_core::PortError;
use fleet_core::ports::{Attributes, BatchResult, EntryFailure, ReceivedMessage};
use fleet_core::requests::count;
use rusqlite::{OptionalExtension, Transaction, params};

use super::delete::receipt_of_deleted;
use super::receipt::Receipt;
use super::{
    LocalQueue, MAX_BATCH, MAX_VISIBILITY, MAX_WAIT, check_batch, invalid, load_config,
    queue_exists,
};
use crate::db::{Cached, json_err, sql_err};
use crate::{duration_ms, now_ms};

/// How often an idle long poll looks at the database again.
const POLL_INTERVAL: Duration = Duration::from_millis(20);

struct Candidate {
    seq: i64,
    message_id: String,
    body: String,
    attributes: String,
    sent_ms: i64,
    receive_count: u32,
    group_id: Option<String>,
    dedup_id: Option<String>,
    trace_header: Option<String>,
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
        "SELECT seq, message_id, body, attributes, sent_ms, receive_count, group_id, dedup_id, trace_header FROM messages m
         WHERE queue = ?1 AND +visible_at_ms <= ?2
           AND NOT EXISTS (SELECT 1 FROM messages e WHERE e.queue = m.queue AND e.group_id = m.group_id
                           AND e.seq < m.seq AND e.visible_at_ms > ?2)
         ORDER BY seq LIMIT ?3"
    } else {
        "SELECT seq, message_id, body, attributes, sent_ms, receive_count, group_id, dedup_id, trace_header FROM messages
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
                trace_header: r.get(8)?,
            })
        })
        .map_err(sql_err(OP))?;
    rows.collect::<Result<Vec<_>, _>>().map_err(sql_err(OP))
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
    note_poll(tx, queue, now)?;
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
                // its id, body, attributes and receive count (what `dlq-replay` shows for a
                // message redriven without a failure attribute).
                tx.exec(
                    "INSERT INTO messages (queue, message_id, body, attributes, sent_ms, visible_at_ms, group_id, dedup_id, receive_count, trace_header)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
                    params![dlq, c.message_id, c.body, c.attributes, c.sent_ms, now, c.group_id, c.dedup_id, c.receive_count, c.trace_header],
                )
                .map_err(sql_err(OP))?;
                tx.exec("DELETE FROM messages WHERE seq = ?1", [c.seq])
                    .map_err(sql_err(OP))?;
                moved = true;
                continue;
            }
            let receipt = Receipt::issue(c.seq, now);
            let receive_count = c.receive_count.saturating_add(1);
            tx.exec(
                "UPDATE messages SET receipt = ?1, receive_count = ?2, visible_at_ms = ?3 WHERE seq = ?4",
                params![receipt, receive_count, now.saturating_add(visibility_ms), c.seq],
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
                trace_header: c.trace_header,
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
/// Record that a consumer polled `queue` at `now` (what `fleet status` shows as its last poll).
fn note_poll(tx: &Transaction<'_>, queue: &str, now: i64) -> Result<(), PortError> {
    tx.execute(
        "INSERT INTO queue_polls (queue, last_poll_ms) VALUES (?1, ?2)
         ON CONFLICT (queue) DO UPDATE SET last_poll_ms = MAX(last_poll_ms, excluded.last_poll_ms)",
        params![queue, now],
    )
    .map_err(sql_err("sqs.ReceiveMessage"))?;
    Ok(())
}

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

pub(super) async fn receive(
    q: &LocalQueue,
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
    // The first attempt receives at once: at saturation a receive finds messages, and a probe
    // first would cost a second database call per receive. Later attempts of a long poll probe
    // with a read-only call (no write lock) and receive only when something is visible.
    let mut first = true;
    loop {
        let name = q.name.clone();
        let worth_trying = first || q.db.read(OP, move |tx| anything_visible(tx, &name)).await?;
        first = false;
        if worth_trying {
            let name = q.name.clone();
            let got =
                q.db.run(OP, move |tx| receive_once(tx, &name, max, visibility))
                    .await?;
            if !got.is_empty() {
                return Ok(got);
            }
        }
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        if left.is_zero() {
            // An empty long poll is a poll too (one write per wait, not per check).
            let name = q.name.clone();
            q.db.run(OP, move |tx| note_poll(tx, &name, now_ms()))
                .await?;
            return Ok(Vec::new());
        }
        tokio::time::sleep(left.min(POLL_INTERVAL)).await;
    }
}

/// Where a receipt stands for a visibility change, on the same wall clock every operation uses.
enum Lease {
    /// The receipt is the message's latest and the message is invisible: its visibility may be
    /// set up to `limit_ms`, 12 hours after that receive.
    Held { seq: i64, limit_ms: i64 },
    /// The receipt is the latest, but the message's visibility has run out.
    Lapsed,
    /// Not the latest receipt of any message on the queue.
    Gone,
}

fn lease_of(
    tx: &Transaction<'_>,
    queue: &str,
    receipt: &str,
    now: i64,
) -> Result<Lease, PortError> {
    const OP: &str = "sqs.ChangeMessageVisibilityBatch";
    let Some(parsed) = Receipt::parse(receipt) else {
        return Ok(Lease::Gone);
    };
    let visible_at_ms: Option<i64> = tx
        .row(
            "SELECT visible_at_ms FROM messages WHERE seq = ?1 AND queue = ?2 AND receipt = ?3",
            params![parsed.seq, queue, receipt],
            |r| r.get(0),
        )
        .optional()
        .map_err(sql_err(OP))?;
    Ok(match visible_at_ms {
        None => Lease::Gone,
        Some(visible_at_ms) if visible_at_ms <= now => Lease::Lapsed,
        Some(_) => Lease::Held {
            seq: parsed.seq,
            limit_ms: parsed.issued_ms.saturating_add(duration_ms(MAX_VISIBILITY)),
        },
    })
}

pub(super) async fn change_visibility_batch(
    q: &LocalQueue,
    entries: &[(String, Duration)],
) -> Result<BatchResult, PortError> {
    const OP: &str = "sqs.ChangeMessageVisibilityBatch";
    count(OP);
    check_batch(OP, entries.len())?;
    let name = q.name.clone();
    let entries = entries.to_vec();
    q.db.run(OP, move |tx| {
        load_config(tx, &name, OP)?;
        let now = now_ms();
        let mut result = BatchResult::default();
        for (index, (receipt, timeout)) in entries.iter().enumerate() {
            if *timeout > MAX_VISIBILITY {
                result.failed.push(EntryFailure {
                    index,
                    code: "InvalidParameterValue".into(),
                    sender_fault: true,
                });
                continue;
            }
            match lease_of(tx, &name, receipt, now)? {
                Lease::Held { seq, limit_ms } => {
                    let until = now.saturating_add(duration_ms(*timeout));
                    let code = if until > limit_ms {
                        // SQS: "Total VisibilityTimeout for the message is beyond the limit".
                        Some("InvalidParameterValue")
                    } else {
                        tx.exec(
                            "UPDATE messages SET visible_at_ms = ?1 WHERE seq = ?2",
                            params![until, seq],
                        )
                        .map_err(sql_err(OP))?;
                        None
                    };
                    if let Some(code) = code {
                        result.failed.push(EntryFailure {
                            index,
                            code: code.into(),
                            sender_fault: true,
                        });
                    }
                }
                Lease::Lapsed => result.failed.push(EntryFailure {
                    index,
                    code: "MessageNotInflight".into(),
                    sender_fault: true,
                }),
                Lease::Gone => {
                    let code = if receipt_of_deleted(tx, &name, receipt, OP)? {
                        "InvalidParameterValue"
                    } else {
                        "ReceiptHandleIsInvalid"
                    };
                    result.failed.push(EntryFailure {
                        index,
                        code: code.into(),
                        sender_fault: true,
                    });
                }
            }
        }
        Ok(result)
    })
    .await
}
