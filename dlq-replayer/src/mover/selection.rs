//! Selection: each round's scan, what it selects, and which FIFO groups stop moving.

use fleet_core::PortError;

use super::{NotMoved, Run};
use crate::message::Dead;
use crate::scan::Scanner;

impl Run<'_> {
    /// Receive until nothing new is visible; returns the selected messages of this round in
    /// receive order. Messages not selected stay held until the run ends.
    pub(super) async fn scan_round(
        &mut self,
        scanner: &mut Scanner,
        fifo: bool,
    ) -> Result<Vec<Dead>, PortError> {
        let mut selected = Vec::new();
        while scanner.held() < self.req.scan_limit {
            let Some(batch) = scanner.next_batch().await? else {
                break;
            };
            for d in batch {
                self.report.scanned += 1;
                let group = d.msg.group_id.clone().filter(|_| fifo);
                if d.msg.sent_timestamp_ms > self.started_ms {
                    self.report.arrived_during_run += 1;
                    self.stop_group(group);
                    continue;
                }
                if let Some(g) = &group
                    && self.stopped_groups.contains(g)
                {
                    self.report.held_behind_group += 1;
                    continue;
                }
                let under_max = self
                    .req
                    .filter
                    .max
                    .is_none_or(|max| self.report.selected < max);
                if !under_max || !self.req.filter.matches(&d, self.started_ms) {
                    self.report.not_selected += 1;
                    self.stop_group(group);
                    continue;
                }
                self.report.selected += 1;
                selected.push(d);
            }
        }
        if scanner.held() >= self.req.scan_limit {
            self.report.scan_limit_reached = true;
        }
        Ok(selected)
    }

    pub(super) fn stop_group(&mut self, group: Option<String>) {
        if let Some(g) = group {
            self.stopped_groups.insert(g);
        }
    }

    pub(super) fn not_moved(&mut self, d: &Dead, reason: &str, fifo: bool) {
        self.report.not_moved.push(NotMoved {
            message_id: d.id().to_string(),
            reason: reason.to_string(),
        });
        if fifo && let Some(g) = &d.msg.group_id {
            self.failed_groups.insert(g.clone());
            self.stopped_groups.insert(g.clone());
        }
    }
}
