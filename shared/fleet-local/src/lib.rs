//! Local backend: SQLite queues, bus, records and a directory object store.
//!
//! The embedded default when no AWS configuration is given. It implements the `fleet-core`
//! ports with the semantics the workers rely on (SQS visibility, receive counts, redrive,
//! FIFO groups and deduplication; EventBridge routing by pattern; DynamoDB conditional writes
//! and TTL; S3 get/put/head), so the same worker code runs on a laptop and on AWS.
//!
//! # Schema and why
//!
//! Several processes (workers, the fleet launcher, tests, `dlq-replay`) open the same file at
//! once, so *all* state lives in SQLite and every operation is one transaction; nothing is
//! cached in a process. The file is in WAL mode (readers never block the writer) with a busy
//! timeout, and every write transaction starts `IMMEDIATE` so two processes never deadlock on
//! a read-to-write upgrade.
//!
//! - `queues`: one row per queue with its settings (FIFO, visibility, delay, redrive, KMS id
//!   as given). Settings are read inside each operation's transaction, so a change made by
//!   provisioning is seen at once by running workers.
//! - `messages`: one row per live message, keyed by an `AUTOINCREMENT` sequence (never reused,
//!   so it doubles as the FIFO sequence number and the delivery order). `visible_at_ms` encodes
//!   delay and visibility in one column: a message is receivable when it is in the past.
//!   `receipt` is the handle of the latest receive; an older handle no longer matches, which is
//!   how stale receipts are detected. A receipt names its message's `seq` and when it was
//!   issued (`local-<seq>-<ms>-<uuid>`), so a delete or visibility change finds the row by its
//!   rowid and the 12-hour visibility limit needs no column.
//! - `deleted_receipts`: the latest receipt of each message deleted in the last hour, keyed by
//!   `seq`, so deleting twice with the current receipt succeeds (as on SQS) while a stale
//!   receipt fails with `ReceiptHandleIsInvalid`.
//! - `fifo_dedup`: deduplication ids with their expiry (5 minutes).
//! - `bus_events`: every event ever put, as its EventBridge envelope, in order; `bus_rules`:
//!   rule patterns and their target queue. Routing happens in the put's transaction, so an
//!   event is stored and delivered together or not at all.
//! - `records`: all tables in one SQLite table keyed by (table, pk, sk), with the ordering
//!   value and expiry as columns so conditions are evaluated in SQL inside the transaction.
//!
//! Objects are files under the objects directory (`data/BUCKET/KEY`), written to `tmp/` and
//! renamed into place, with a JSON sidecar (`meta/BUCKET/KEY.json`) for content type and etag.
//! Neither the database nor the objects are encrypted: attributes report what `create_queue`
//! was given, and workers need their explicit allow-unencrypted flag to run locally.
//!
//! SQLite calls run on one database thread per `LocalBackend` with group commit (`db.rs`,
//! DESIGN.md): SQLite serialises writers anyway. An earlier design (blocking pool, one
//! connection behind a mutex) measured well
//! above the fleet's rates (`examples/local_throughput.rs`, release, 2-core box shared with
//! other builds: 3-6k single sends/s, 20-40k batched sends/s, ~7k received+deleted/s, ~5k/s
//! from the front of a 55k-message backlog, 10-12k routed events/s, 7-9k conditional puts/s).
//! Idle long polls re-check the file every 20 ms with a read-only probe that takes no write
//! lock (10 idle pollers: ~5% of one core).

mod bus;
mod db;
mod notify;
mod objects;
mod queue;
mod records;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use fleet_core::error::PortError;
use fleet_core::ports::{
    Attributes, EventBus, MessageQueue, Notifier, ObjectStore, Record, RecordStore,
};
use fleet_core::{Backend, ErrorKind, env};

use crate::db::Db;
pub use crate::notify::{OutboxEntry, TOPIC_ARN_PREFIX};
pub use crate::queue::QueueSpec;

/// Prefix of local queue URLs.
pub const QUEUE_URL_PREFIX: &str = "local://queue/";
/// Prefix of local queue pseudo-ARNs.
pub const QUEUE_ARN_PREFIX: &str = "arn:local:sqs:";

/// A message as it sits on a queue, for demo output and tests (peeked, not received).
#[derive(Debug, Clone, PartialEq)]
pub struct QueuedMessage {
    pub message_id: String,
    pub body: String,
    pub attributes: Attributes,
    pub receive_count: u32,
    pub sent_timestamp_ms: i64,
    /// Milliseconds since the epoch after which it can be received.
    pub visible_at_ms: i64,
    /// Received at least once and currently invisible.
    pub in_flight: bool,
    pub group_id: Option<String>,
    pub dedup_id: Option<String>,
}

/// One queue as `fleet status` shows it (local backend: exact counts, not approximations).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueStatus {
    pub visible: u64,
    pub in_flight: u64,
    /// Sent with a delay, or released with a backoff, and not yet visible.
    pub delayed: u64,
    /// How long ago the oldest message still on the queue was sent.
    pub oldest_message_age: Option<Duration>,
    /// The queue's dead-letter queue (redrive target).
    pub dlq: Option<String>,
    /// How long ago a consumer last asked the queue for messages.
    pub since_last_poll: Option<Duration>,
}

/// The local backend: one SQLite file plus a directory. Cheap to clone.
#[derive(Clone)]
pub struct LocalBackend {
    db: Arc<Db>,
    objects_dir: PathBuf,
}

impl std::fmt::Debug for LocalBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalBackend")
            .field("db", &self.db.path())
            .field("objects_dir", &self.objects_dir)
            .finish()
    }
}

/// How [`LocalBackend::open_with`] treats the files it finds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LocalOptions {
    /// Open the database even though group or others have access to it or to its -wal, -shm
    /// or -journal file (`FLEET_ALLOW_SHARED_DB`); refused by default.
    pub allow_shared_db: bool,
}

impl LocalBackend {
    /// Open (or create) the database and the objects directory; creates the schema. Refuses a
    /// database file that group or others can reach ([`LocalOptions`]).
    pub fn open(db_path: &Path, objects_dir: &Path) -> Result<Self, PortError> {
        Self::open_with(db_path, objects_dir, LocalOptions::default())
    }

    /// [`open`](Self::open) with options. What it creates is private whatever the umask: the
    /// database's directory, the objects directory and everything under them 0700, the
    /// database (and the -wal/-shm files SQLite derives from it), objects and the outbox 0600.
    pub fn open_with(
        db_path: &Path,
        objects_dir: &Path,
        options: LocalOptions,
    ) -> Result<Self, PortError> {
        let create_dir = |dir: &Path, what: &str| {
            fleet_core::files::create_dir_all(dir).map_err(|e| {
                PortError::new(
                    ErrorKind::Other,
                    "local.open",
                    format!("creating the {what} directory {}: {e}", dir.display()),
                )
            })
        };
        if let Some(dir) = db_path.parent() {
            create_dir(dir, "database")?;
        }
        let db = Db::open(db_path, options.allow_shared_db)?;
        create_dir(objects_dir, "objects")?;
        Ok(Self {
            db: Arc::new(db),
            objects_dir: objects_dir.to_path_buf(),
        })
    }

    /// Create a queue, or update the settings of an existing one (its FIFO-ness cannot change).
    pub fn create_queue(&self, name: &str, spec: QueueSpec) -> Result<(), PortError> {
        queue::create_queue(&self.db, name, &spec)
    }

    /// Delete a queue and its messages.
    pub fn delete_queue(&self, name: &str) -> Result<(), PortError> {
        queue::delete_queue(&self.db, name)
    }

    /// Names of all queues, sorted.
    pub fn list_queues(&self) -> Result<Vec<String>, PortError> {
        queue::list_queues(&self.db)
    }

    /// Create or replace a rule on `bus` routing matching events to `target_queue`.
    pub fn put_rule(
        &self,
        bus: &str,
        rule_name: &str,
        pattern_json: &str,
        target_queue: &str,
    ) -> Result<(), PortError> {
        bus::put_rule(&self.db, bus, rule_name, pattern_json, target_queue)
    }

    pub fn delete_rule(&self, bus: &str, rule_name: &str) -> Result<(), PortError> {
        bus::delete_rule(&self.db, bus, rule_name)
    }

    /// Every event ever put on `bus`, in order, as EventBridge envelopes.
    pub fn list_bus_events(&self, bus: &str) -> Result<Vec<serde_json::Value>, PortError> {
        bus::list_events(&self.db, bus)
    }

    /// Every record of `table` (expired ones included), by (pk, sk).
    pub fn table_records(&self, table: &str) -> Result<Vec<Record>, PortError> {
        records::all(&self.db, table)
    }

    /// Create an outbox topic (idempotent, like SNS CreateTopic); returns its pseudo-ARN.
    /// Publishing to a topic that was never created fails with `NotFound`.
    pub fn create_topic(&self, name: &str) -> Result<String, PortError> {
        notify::create_topic(&self.db, name)
    }

    /// Every notification published, in order (the `notifications` table).
    pub fn outbox(&self) -> Result<Vec<OutboxEntry>, PortError> {
        notify::list(&self.db)
    }

    /// The JSON-lines outbox file: `outbox.jsonl` beside the SQLite file.
    pub fn outbox_path(&self) -> PathBuf {
        self.db
            .path()
            .parent()
            .unwrap_or_else(|| Path::new("."))
            .join("outbox.jsonl")
    }

    /// The messages on a queue in delivery order, without receiving them.
    /// Counts, oldest message, DLQ and last poll of one queue (for `fleet status`).
    pub fn queue_status(&self, name: &str) -> Result<QueueStatus, PortError> {
        queue::status(&self.db, Self::resolve_queue_name(name))
    }

    pub fn queue_messages_snapshot(&self, name: &str) -> Result<Vec<QueuedMessage>, PortError> {
        queue::snapshot(&self.db, name)
    }

    /// Up to `limit` messages on a queue sent after sequence number `after` (0: from the
    /// start), each with its sequence number, in send order, without receiving them: a read-only
    /// transaction, so the caller neither changes the queue nor takes the write lock. For an
    /// observer in another process (the load tool's tap) that must not perturb the workers.
    pub async fn queue_tail(
        &self,
        name: &str,
        after: i64,
        limit: usize,
    ) -> Result<Vec<(i64, QueuedMessage)>, PortError> {
        queue::tail(&self.db, Self::resolve_queue_name(name), after, limit).await
    }

    fn resolve_queue_name(name_or_url: &str) -> &str {
        name_or_url
            .strip_prefix(QUEUE_URL_PREFIX)
            .or_else(|| name_or_url.strip_prefix(QUEUE_ARN_PREFIX))
            .unwrap_or(name_or_url)
    }

    async fn open_queue(
        &self,
        name: &str,
        op: &'static str,
    ) -> Result<Arc<dyn MessageQueue>, PortError> {
        let name = name.to_string();
        let exists = {
            let name = name.clone();
            self.db
                .run(op, move |c| queue::queue_exists(c, &name))
                .await?
        };
        if !exists {
            return Err(PortError::not_found(
                op,
                format!("queue {name:?} does not exist"),
            ));
        }
        Ok(Arc::new(queue::LocalQueue::new(self.db.clone(), name)))
    }
}

#[async_trait]
impl Backend for LocalBackend {
    fn kind(&self) -> &'static str {
        "local"
    }

    async fn queue(&self, name_or_url: &str) -> Result<Arc<dyn MessageQueue>, PortError> {
        self.open_queue(Self::resolve_queue_name(name_or_url), "local.queue")
            .await
    }

    async fn queue_by_arn(&self, arn: &str) -> Result<Arc<dyn MessageQueue>, PortError> {
        self.open_queue(Self::resolve_queue_name(arn), "local.queue_by_arn")
            .await
    }

    fn event_bus(&self, name: &str) -> Arc<dyn EventBus> {
        Arc::new(bus::LocalBus::new(self.db.clone(), name.to_string()))
    }

    fn records(&self, table: &str) -> Arc<dyn RecordStore> {
        Arc::new(records::LocalTable::new(self.db.clone(), table.to_string()))
    }

    fn objects(&self, bucket: &str) -> Arc<dyn ObjectStore> {
        Arc::new(objects::LocalBucket::new(
            self.objects_dir.clone(),
            bucket.to_string(),
        ))
    }

    fn notifier(&self) -> Arc<dyn Notifier> {
        Arc::new(notify::LocalNotifier::new(
            self.db.clone(),
            self.outbox_path(),
        ))
    }

    async fn list_queues(&self, prefix: &str) -> Result<Vec<String>, PortError> {
        let mut names = LocalBackend::list_queues(self)?;
        names.retain(|n| n.starts_with(prefix));
        Ok(names)
    }

    async fn caller_identity(&self) -> Result<String, PortError> {
        Ok(format!("local:{}", local_user()))
    }

    /// Allowed: nothing local is encrypted (the file's protection is its mode and the disk's
    /// encryption), so a local worker cannot start without it.
    fn unencrypted_override(&self) -> Result<(), String> {
        Ok(())
    }
}

/// The local user, for audit records: `$USER`, `$LOGNAME`, else the name of the process's uid
/// in `/etc/passwd`, else `uid:<n>`.
fn local_user() -> String {
    use std::os::unix::fs::MetadataExt;
    if let Some(name) = [env::USER, env::LOGNAME].iter().find_map(|k| env::get(k)) {
        return name;
    }
    // The owner of /proc/self is the process's effective uid (no unsafe libc call needed).
    let Ok(uid) = std::fs::metadata("/proc/self").map(|m| m.uid()) else {
        return "unknown".to_string();
    };
    std::fs::read_to_string("/etc/passwd")
        .ok()
        .and_then(|passwd| {
            passwd.lines().find_map(|l| {
                let mut f = l.split(':');
                let name = f.next()?;
                (f.nth(1)? == uid.to_string()).then(|| name.to_string())
            })
        })
        .unwrap_or_else(|| format!("uid:{uid}"))
}

/// Milliseconds since the epoch.
pub(crate) fn now_ms() -> i64 {
    let d = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or(Duration::ZERO);
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

pub(crate) fn duration_ms(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}
