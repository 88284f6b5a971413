//! Deleting by receipt: the latest receipt of a deleted message still deletes (as on SQS), an
//! older one fails; the receipts of deleted messages are kept for an hour, then pruned.

use std::time::Duration;

use fleet_core::PortError;
use fleet_core::ports::{BatchResult, EntryFailure};
use fleet_core::requests::count;
use rusqlite::{Transaction, params};

use super::receipt::Receipt;
use super::{LocalQueue, check_batch, load_config};
use crate::db::{Cached, sql_err};
use crate::{duration_ms, now_ms};

/// Keep the last receipt of a deleted message this long, so a repeated delete succeeds.
const RECEIPT_RETENTION: Duration = Duration::from_secs(60 * 60);

/// Whether `receipt` is the last receipt of a message of `queue` deleted within the retention.
pub(super) fn receipt_of_deleted(
    tx: &Transaction<'_>,
    queue: &str,
    receipt: &str,
    op: &'static str,
) -> Result<bool, PortError> {
    let Some(parsed) = Receipt::parse(receipt) else {
        return Ok(false);
    };
    tx.row(
        "SELECT EXISTS(SELECT 1 FROM deleted_receipts WHERE seq = ?1 AND receipt = ?2 AND queue = ?3)",
        params![parsed.seq, receipt, queue],
        |r| r.get(0),
    )
    .map_err(sql_err(op))
}

/// Delete the message `receipt` is the latest receipt of, remembering the receipt; `false` when
/// it is not the latest receipt of a message on `queue`.
fn delete_one(
    tx: &Transaction<'_>,
    queue: &str,
    receipt: &str,
    now: i64,
    op: &'static str,
) -> Result<bool, PortError> {
    let Some(parsed) = Receipt::parse(receipt) else {
        return Ok(false);
    };
    let n = tx
        .exec(
            "DELETE FROM messages WHERE seq = ?1 AND queue = ?2 AND receipt = ?3",
            params![parsed.seq, queue, receipt],
        )
        .map_err(sql_err(op))?;
    if n == 0 {
        return Ok(false);
    }
    tx.exec(
        "INSERT OR REPLACE INTO deleted_receipts (seq, queue, receipt, deleted_ms) VALUES (?1, ?2, ?3, ?4)",
        params![parsed.seq, queue, receipt, now],
    )
    .map_err(sql_err(op))?;
    Ok(true)
}

pub(super) async fn delete_batch(
    q: &LocalQueue,
    receipts: &[String],
) -> Result<BatchResult, PortError> {
    const OP: &str = "sqs.DeleteMessageBatch";
    count(OP);
    check_batch(OP, receipts.len())?;
    let name = q.name.clone();
    let receipts = receipts.to_vec();
    q.db.run(OP, move |tx| {
        let now = now_ms();
        load_config(tx, &name, OP)?;
        let mut result = BatchResult::default();
        for (index, receipt) in receipts.iter().enumerate() {
            // Deleting again with the latest receipt succeeds on SQS; an older one does not.
            if !delete_one(tx, &name, receipt, now, OP)?
                && !receipt_of_deleted(tx, &name, receipt, OP)?
            {
                result.failed.push(EntryFailure {
                    index,
                    code: "ReceiptHandleIsInvalid".into(),
                    sender_fault: true,
                });
            }
        }
        tx.exec(
            "DELETE FROM deleted_receipts WHERE deleted_ms < ?1",
            [now.saturating_sub(duration_ms(RECEIPT_RETENTION))],
        )
        .map_err(sql_err(OP))?;
        Ok(result)
    })
    .await
}
