//! A backend hands out ports by resource name.

use std::sync::Arc;

use async_trait::async_trait;

use crate::error::PortError;
use crate::ports::{EventBus, MessageQueue, Notifier, ObjectStore, RecordStore};

/// The set of adapters of one backend (`aws` or `local`).
#[async_trait]
pub trait Backend: Send + Sync {
    /// "aws" or "local".
    fn kind(&self) -> &'static str;
    /// A queue by URL or name (aws resolves names with GetQueueUrl).
    async fn queue(&self, name_or_url: &str) -> Result<Arc<dyn MessageQueue>, PortError>;
    /// The queue a redrive policy's `dead_letter_target` names (an ARN on aws, a name locally).
    async fn queue_by_arn(&self, arn: &str) -> Result<Arc<dyn MessageQueue>, PortError>;
    fn event_bus(&self, name: &str) -> Arc<dyn EventBus>;
    fn records(&self, table: &str) -> Arc<dyn RecordStore>;
    fn objects(&self, bucket: &str) -> Arc<dyn ObjectStore>;
    /// The notification publisher (SNS on aws, the outbox on local).
    fn notifier(&self) -> Arc<dyn Notifier>;
    /// The queues whose name starts with `prefix` (empty: all): URLs on aws, names locally;
    /// sorted.
    async fn list_queues(&self, prefix: &str) -> Result<Vec<String>, PortError>;
    /// Who is acting, for audit records: the caller's ARN on aws (STS GetCallerIdentity),
    /// `local:<user>` on the local backend.
    async fn caller_identity(&self) -> Result<String, PortError>;
    /// Whether the unencrypted override (`FLEET_ALLOW_UNENCRYPTED`, `--allow-unencrypted`) may
    /// be honoured on this backend; `Err` is the operator-facing reason it may not. The local
    /// backend allows it (nothing there is encrypted); aws only when every endpoint is
    /// overridden to a loopback address (moto, LocalStack). A backend that does not say refuses.
    fn unencrypted_override(&self) -> Result<(), String> {
        Err(format!(
            "the {} backend does not allow the unencrypted override",
            self.kind()
        ))
    }
}
