//! Deleting from the DLQ what was sent (purge: what was selected), only after the send.

use std::collections::HashSet;

use backon::Retryable;
use fleet_core::{BatchResult, PortError};

use super::{Run, reason_of, retry_policy};
use crate::message::Dead;
use crate::progress::Progress;
use crate::scan::Scanner;

impl Run<'_> {
    /// Delete what was sent (purge: what was selected).
    pub(super) async fn delete(
        &mut self,
        scanner: &mut Scanner,
        sent: Vec<Dead>,
        dest: Option<&str>,
        fifo: bool,
        progress: &mut Progress,
    ) -> anyhow::Result<()> {
        if sent.is_empty() {
            return Ok(());
        }
        let receipts: Vec<String> = sent
            .iter()
            .map(|d| scanner.receipt(d.id()).unwrap_or_default().to_string())
            .collect();
        let queue = scanner.queue().clone();
        let result = (|| async { queue.delete_batch(&receipts).await })
            .retry(retry_policy())
            .when(PortError::is_retryable)
            .await;
        let failed: HashSet<usize> = match &result {
            Ok(BatchResult { failed }) => failed.iter().map(|f| f.index).collect(),
            Err(_) => (0..sent.len()).collect(),
        };
        for (i, d) in sent.into_iter().enumerate() {
            if failed.contains(&i) {
                if dest.is_some() {
                    self.report.sent_not_deleted.push(d.id().to_string());
                } else {
                    self.not_moved(&d, "DELETE_FAILED", fifo);
                }
                continue;
            }
            scanner.forget(d.id());
            self.report.moved += 1;
            self.report.moved_ids.push(d.id().to_string());
            if let Some(dest) = dest {
                *self
                    .report
                    .destinations
                    .entry(dest.to_string())
                    .or_default() += 1;
            }
            progress.inc(1);
        }
        if let Err(e) = result {
            self.report.aborted = Some(format!(
                "deleting from the DLQ failed ({}); the run stopped",
                reason_of(&e)
            ));
        }
        Ok(())
    }
}
