//! Deleting by receipt: the latest receipt of a deleted message still deletes (as on SQS), an
//! older one fails; receipts of deleted messages are kept for a while, then pruned.

use std::time::Duration;

use fleet_core::PortError;
use fleet_core::ports::{BatchResult, EntryFailure};
use fleet_core::requests::count;
use rusqlite::{Transaction, params};

use super::{LocalQueue, check_batch, load_config};
use crate::db::{Cached, sql_err};
use crate::{duration_ms, now_ms};

/// Keep the last receipt of a deleted message this long, so a repeated delete succeeds.
const RECEIPT_RETENTION: Duration = Duration::from_secs(60 * 60);

/// Whether `receipt` is the last receipt of a message that has since been deleted.
pub(super) fn receipt_of_deleted(
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

pub(super) async fn delete_batch(
    q: &LocalQueue,
    receipts: &[String],
) -> Result<BatchResult, PortError> {
    const OP: &str = "sqs.DeleteMessageBatch";
    count(OP);
    check_batch(OP, receipts.len())?;
    let name = q.name.clone();
    let receipts = receipts.to_vec();
    q.db
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
