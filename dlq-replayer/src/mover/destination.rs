//! Destinations: where a message goes, and each destination queue, opened and checked once per
//! run.

use std::sync::Arc;

use fleet_core::{MessageQueue, PortError};

use super::{DESTINATION_UNENCRYPTED, NOT_A_SOURCE, Run, reason_of};
use crate::inspect::Topology;
use crate::message::Dead;

/// A destination queue, opened once.
pub(super) struct Destination {
    pub(super) queue: Arc<dyn MessageQueue>,
    pub(super) fifo: bool,
}

impl Run<'_> {
    /// Where a message goes: `--to`, else its failure attribute's source queue, else the one
    /// queue whose redrive policy names this DLQ. `None` for purge.
    pub(super) async fn destination_name(&mut self, d: &Dead) -> Result<Option<String>, PortError> {
        if self.req.purge {
            return Ok(None);
        }
        if let Some(to) = &self.req.to {
            return Ok(Some(to.clone()));
        }
        if let Some(src) = d.source_queue() {
            return Ok(Some(src.to_string()));
        }
        if self.redrive_sources.is_none() {
            let topology = Topology::load(self.backend, "").await?;
            let dlq = self.backend.queue(&self.dlq_id).await?;
            let attrs = dlq.attributes().await?;
            self.redrive_sources = Some(topology.sources_of(dlq.as_ref(), &attrs));
        }
        match self.redrive_sources.as_deref() {
            Some([only]) => Ok(Some(only.clone())),
            _ => Ok(None),
        }
    }

    /// The destination of `d` once it passed every check: `Ok(Ok(None))` for purge,
    /// `Ok(Err(reason))` when the message must stay (no source queue, a destination that cannot
    /// be opened or is refused).
    pub(super) async fn resolve(
        &mut self,
        d: &Dead,
    ) -> Result<Result<Option<String>, String>, PortError> {
        match self.destination_name(d).await? {
            None if self.req.purge => Ok(Ok(None)),
            None => Ok(Err("NO_SOURCE_QUEUE".to_string())),
            Some(name) => Ok(self.destination(&name).await.map(|_| Some(name))),
        }
    }

    /// The destination queue `name`, opened and checked once: a queue named by a failure
    /// attribute must have a redrive policy naming this DLQ (`--to` is explicit and need not),
    /// and every destination must be encrypted unless the override is given.
    pub(super) async fn destination(&mut self, name: &str) -> Result<&Destination, String> {
        if !self.destinations.contains_key(name) {
            let explicit = self.req.to.as_deref() == Some(name);
            let opened = async {
                let queue = self.backend.queue(name).await?;
                let attrs = queue.attributes().await?;
                Ok::<_, PortError>((queue, attrs))
            }
            .await
            .map_err(|e| reason_of(&e))
            .and_then(|(queue, attrs)| {
                let names_this_dlq = attrs.redrive_policy.as_ref().is_some_and(|p| {
                    Topology::names(&p.dead_letter_target, &self.dlq_id, &self.dlq_arn)
                });
                if !explicit && !names_this_dlq {
                    return Err(NOT_A_SOURCE.to_string());
                }
                if !attrs.encrypted() && !self.req.allow_unencrypted {
                    return Err(DESTINATION_UNENCRYPTED.to_string());
                }
                Ok(Destination {
                    queue,
                    fifo: attrs.fifo,
                })
            });
            self.destinations.insert(name.to_string(), opened);
        }
        self.destinations[name].as_ref().map_err(Clone::clone)
    }
}
