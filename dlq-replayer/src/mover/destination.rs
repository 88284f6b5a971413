//! Destinations: where a message goes, and each destination queue, opened once per run.

use std::sync::Arc;

use fleet_core::{MessageQueue, PortError};

use super::{Run, reason_of};
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

    pub(super) async fn destination(&mut self, name: &str) -> Result<&Destination, String> {
        if !self.destinations.contains_key(name) {
            let opened = async {
                let queue = self.backend.queue(name).await?;
                let fifo = queue.attributes().await?.fifo;
                Ok::<_, PortError>(Destination { queue, fifo })
            }
            .await
            .map_err(|e| reason_of(&e));
            self.destinations.insert(name.to_string(), opened);
        }
        self.destinations[name].as_ref().map_err(Clone::clone)
    }
}
