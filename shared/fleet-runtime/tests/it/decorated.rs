//! Decorators over the real local backend for the runtime's tests: they count calls and add
//! latency (a slow network, a slow DLQ, a hung poll); every answer still comes from the local
//! queue, store or object directory.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use fleet_core::{
    Backend, BatchResult, EventBus, LimitedGet, MessageQueue, ObjectMeta, ObjectStore,
    OutgoingMessage, PortError, QueueAttributes, ReceivedMessage, RecordStore,
};
use fleet_local::LocalBackend;

/// What the decorators add to the real calls.
#[derive(Default)]
pub(crate) struct Faults {
    /// Every receive hangs, as on a dead connection.
    pub(crate) stall_receive: bool,
    /// Added before the first ChangeMessageVisibilityBatch of the source queue.
    pub(crate) first_visibility_change: Option<Duration>,
    /// Added before every send to the dead-letter queue.
    pub(crate) dlq_send: Option<Duration>,
    /// Added before every object get, bounded or not (the claim-check fetch).
    pub(crate) object_get: Option<Duration>,
}

/// What the decorators saw.
#[derive(Default)]
pub(crate) struct Calls {
    pub(crate) receive_calls: AtomicUsize,
    pub(crate) delete_batch_sizes: Mutex<Vec<usize>>,
    visibility_delayed: AtomicBool,
}

struct DecoratedQueue {
    inner: Arc<dyn MessageQueue>,
    slow: Arc<Faults>,
    calls: Arc<Calls>,
    dlq: bool,
}

#[async_trait]
impl MessageQueue for DecoratedQueue {
    fn id(&self) -> &str {
        self.inner.id()
    }
    async fn receive(
        &self,
        max: u32,
        wait: Duration,
        vis: Option<Duration>,
    ) -> Result<Vec<ReceivedMessage>, PortError> {
        self.calls.receive_calls.fetch_add(1, Ordering::SeqCst);
        if self.slow.stall_receive && !self.dlq {
            // A hung connection: the call never completes.
            std::future::pending::<()>().await;
        }
        self.inner.receive(max, wait, vis).await
    }
    async fn delete_batch(&self, receipts: &[String]) -> Result<BatchResult, PortError> {
        if !self.dlq {
            self.calls
                .delete_batch_sizes
                .lock()
                .unwrap()
                .push(receipts.len());
        }
        self.inner.delete_batch(receipts).await
    }
    async fn change_visibility_batch(
        &self,
        entries: &[(String, Duration)],
    ) -> Result<BatchResult, PortError> {
        if let Some(d) = self.slow.first_visibility_change
            && !self.dlq
            && !self.calls.visibility_delayed.swap(true, Ordering::SeqCst)
        {
            tokio::time::sleep(d).await;
        }
        self.inner.change_visibility_batch(entries).await
    }
    async fn send(&self, m: OutgoingMessage) -> Result<String, PortError> {
        if let Some(d) = self.slow.dlq_send
            && self.dlq
        {
            tokio::time::sleep(d).await;
        }
        self.inner.send(m).await
    }
    async fn send_batch(&self, m: &[OutgoingMessage]) -> Result<BatchResult, PortError> {
        self.inner.send_batch(m).await
    }
    async fn attributes(&self) -> Result<QueueAttributes, PortError> {
        self.inner.attributes().await
    }
}

struct DelayedObjects {
    inner: Arc<dyn ObjectStore>,
    slow: Arc<Faults>,
}

#[async_trait]
impl ObjectStore for DelayedObjects {
    fn id(&self) -> &str {
        self.inner.id()
    }
    async fn get(&self, key: &str) -> Result<Option<(Vec<u8>, ObjectMeta)>, PortError> {
        if let Some(d) = self.slow.object_get {
            tokio::time::sleep(d).await;
        }
        self.inner.get(key).await
    }
    async fn get_limited(
        &self,
        key: &str,
        max_bytes: u64,
    ) -> Result<Option<LimitedGet>, PortError> {
        if let Some(d) = self.slow.object_get {
            tokio::time::sleep(d).await;
        }
        self.inner.get_limited(key, max_bytes).await
    }
    async fn head(&self, key: &str) -> Result<Option<ObjectMeta>, PortError> {
        self.inner.head(key).await
    }
    async fn put(
        &self,
        key: &str,
        bytes: Vec<u8>,
        content_type: &str,
    ) -> Result<ObjectMeta, PortError> {
        self.inner.put(key, bytes, content_type).await
    }
}

pub(crate) struct DecoratedBackend {
    inner: LocalBackend,
    slow: Arc<Faults>,
    calls: Arc<Calls>,
}

pub(crate) fn decorated(local: &LocalBackend, slow: Faults) -> (Arc<DecoratedBackend>, Arc<Calls>) {
    let calls = Arc::new(Calls::default());
    let backend = Arc::new(DecoratedBackend {
        inner: local.clone(),
        slow: Arc::new(slow),
        calls: calls.clone(),
    });
    (backend, calls)
}

impl DecoratedBackend {
    fn wrap(&self, inner: Arc<dyn MessageQueue>, dlq: bool) -> Arc<dyn MessageQueue> {
        Arc::new(DecoratedQueue {
            inner,
            slow: self.slow.clone(),
            calls: self.calls.clone(),
            dlq,
        })
    }
}

#[async_trait]
impl Backend for DecoratedBackend {
    fn kind(&self) -> &'static str {
        "local"
    }
    fn unencrypted_override(&self) -> Result<(), String> {
        self.inner.unencrypted_override()
    }
    async fn queue(&self, name: &str) -> Result<Arc<dyn MessageQueue>, PortError> {
        Ok(self.wrap(self.inner.queue(name).await?, false))
    }
    async fn queue_by_arn(&self, arn: &str) -> Result<Arc<dyn MessageQueue>, PortError> {
        Ok(self.wrap(self.inner.queue_by_arn(arn).await?, true))
    }
    fn event_bus(&self, name: &str) -> Arc<dyn EventBus> {
        self.inner.event_bus(name)
    }
    fn records(&self, table: &str) -> Arc<dyn RecordStore> {
        self.inner.records(table)
    }
    fn objects(&self, bucket: &str) -> Arc<dyn ObjectStore> {
        Arc::new(DelayedObjects {
            inner: self.inner.objects(bucket),
            slow: self.slow.clone(),
        })
    }
    fn notifier(&self) -> Arc<dyn fleet_core::Notifier> {
        self.inner.notifier()
    }
    async fn list_queues(&self, prefix: &str) -> Result<Vec<String>, PortError> {
        Backend::list_queues(&self.inner, prefix).await
    }
    async fn caller_identity(&self) -> Result<String, PortError> {
        self.inner.caller_identity().await
    }
}
