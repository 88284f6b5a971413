//! Sending: validation against SQS's limits, FIFO groups and deduplication, single and batch
//! sends, and sends from the bus inside its transaction.

use std::time::Duration;

use fleet_core::PortError;
use fleet_core::ports::{Attributes, BatchResult, EntryFailure, OutgoingMessage};
use fleet_core::requests::count;
use rusqlite::{OptionalExtension, Transaction, params};
use sha2::{Digest, Sha256};

use super::{
    LocalQueue, MAX_ATTRIBUTES, MAX_DELAY, MAX_MESSAGE_BYTES, QueueConfig, check_batch, invalid,
    load_config,
};
use crate::db::{Cached, json_err, sql_err};
use crate::{duration_ms, now_ms};

const DEDUP_WINDOW: Duration = Duration::from_secs(5 * 60);

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
    trace_header: Option<&str>,
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
        "INSERT INTO messages (queue, message_id, body, attributes, sent_ms, visible_at_ms, group_id, dedup_id, trace_header)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
        params![queue, message_id, m.body, attributes, now, now.saturating_add(delay_ms), group_id, dedup_id, trace_header],
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
    trace_header: Option<&str>,
) -> Result<Result<String, &'static str>, PortError> {
    let cfg = load_config(tx, queue, "sqs.SendMessage")?;
    Ok(insert_message(tx, queue, &cfg, m, trace_header, now_ms())?.map_err(|r| r.0))
}

pub(super) async fn send(q: &LocalQueue, message: OutgoingMessage) -> Result<String, PortError> {
    const OP: &str = "sqs.SendMessage";
    count(OP);
    let name = q.name.clone();
    q.db.run(OP, move |tx| {
        let cfg = load_config(tx, &name, OP)?;
        match insert_message(tx, &name, &cfg, &message, None, now_ms())? {
            Ok(id) => Ok(id),
            Err(Refused(code, why)) => Err(invalid(OP, format!("{code}: {why}"))),
        }
    })
    .await
}

pub(super) async fn send_batch(
    q: &LocalQueue,
    messages: &[OutgoingMessage],
) -> Result<BatchResult, PortError> {
    const OP: &str = "sqs.SendMessageBatch";
    count(OP);
    check_batch(OP, messages.len())?;
    let name = q.name.clone();
    let messages = messages.to_vec();
    q.db.run(OP, move |tx| {
        let cfg = load_config(tx, &name, OP)?;
        let now = now_ms();
        let mut result = BatchResult::default();
        for (index, m) in messages.iter().enumerate() {
            if let Err(Refused(code, _)) = insert_message(tx, &name, &cfg, m, None, now)? {
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
