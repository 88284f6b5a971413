//! The SQLite file: schema, pragmas, and running work off the async runtime.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use fleet_core::{ErrorKind, PortError};
use rusqlite::{Connection, ErrorCode, OpenFlags, Transaction, TransactionBehavior};

/// How long a statement waits for another process's write lock before giving up.
const BUSY_TIMEOUT: Duration = Duration::from_secs(10);

const SCHEMA: &str = r#"
CREATE TABLE IF NOT EXISTS queues (
    name            TEXT PRIMARY KEY,
    fifo            INTEGER NOT NULL,
    visibility_ms   INTEGER NOT NULL,
    delay_ms        INTEGER NOT NULL,
    dlq             TEXT,
    max_receives    INTEGER,
    content_dedup   INTEGER NOT NULL,
    kms_key_id      TEXT
);
CREATE TABLE IF NOT EXISTS messages (
    seq             INTEGER PRIMARY KEY AUTOINCREMENT,
    queue           TEXT NOT NULL,
    message_id      TEXT NOT NULL,
    body            TEXT NOT NULL,
    attributes      TEXT NOT NULL,
    sent_ms         INTEGER NOT NULL,
    visible_at_ms   INTEGER NOT NULL,
    receive_count   INTEGER NOT NULL DEFAULT 0,
    receipt         TEXT,
    group_id        TEXT,
    dedup_id        TEXT
);
CREATE INDEX IF NOT EXISTS messages_visible ON messages (queue, visible_at_ms, seq);
CREATE INDEX IF NOT EXISTS messages_order ON messages (queue, seq, visible_at_ms);
CREATE INDEX IF NOT EXISTS messages_group ON messages (queue, group_id, seq);
CREATE UNIQUE INDEX IF NOT EXISTS messages_receipt ON messages (receipt);
CREATE TABLE IF NOT EXISTS receipts (
    receipt         TEXT PRIMARY KEY,
    queue           TEXT NOT NULL,
    seq             INTEGER NOT NULL UNIQUE,
    issued_ms       INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS receipts_issued ON receipts (issued_ms);
CREATE TABLE IF NOT EXISTS fifo_dedup (
    queue           TEXT NOT NULL,
    dedup_id        TEXT NOT NULL,
    message_id      TEXT NOT NULL,
    expires_ms      INTEGER NOT NULL,
    PRIMARY KEY (queue, dedup_id)
);
CREATE TABLE IF NOT EXISTS bus_events (
    seq             INTEGER PRIMARY KEY AUTOINCREMENT,
    bus             TEXT NOT NULL,
    event_id        TEXT NOT NULL,
    envelope        TEXT NOT NULL,
    put_ms          INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS bus_events_bus ON bus_events (bus, seq);
CREATE TABLE IF NOT EXISTS bus_rules (
    bus             TEXT NOT NULL,
    name            TEXT NOT NULL,
    pattern         TEXT NOT NULL,
    target_queue    TEXT NOT NULL,
    PRIMARY KEY (bus, name)
);
CREATE TABLE IF NOT EXISTS records (
    tbl             TEXT NOT NULL,
    pk              TEXT NOT NULL,
    sk              TEXT NOT NULL,
    ord             INTEGER NOT NULL,
    expires_at      INTEGER,
    data            TEXT NOT NULL,
    PRIMARY KEY (tbl, pk, sk)
);
CREATE TABLE IF NOT EXISTS topics (
    name            TEXT PRIMARY KEY
);
CREATE TABLE IF NOT EXISTS notifications (
    seq             INTEGER PRIMARY KEY AUTOINCREMENT,
    message_id      TEXT NOT NULL,
    destination     TEXT NOT NULL,
    notification    TEXT NOT NULL,
    published_ms    INTEGER NOT NULL
);
"#;

pub(crate) struct Db {
    conn: Arc<Mutex<Connection>>,
    path: PathBuf,
}

/// Classify a SQLite error once: lock contention is retryable, the rest is not ours to fix.
/// rusqlite's messages carry SQL text and codes, never bound parameter values.
pub(crate) fn sql_err(op: &'static str) -> impl Fn(rusqlite::Error) -> PortError {
    move |e| {
        let kind = match e.sqlite_error_code() {
            Some(ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked) => ErrorKind::Throttled,
            Some(ErrorCode::DiskFull | ErrorCode::SystemIoFailure) => ErrorKind::Transient,
            _ => ErrorKind::Other,
        };
        PortError::new(kind, op, format!("sqlite: {e}"))
    }
}

pub(crate) fn json_err(op: &'static str) -> impl Fn(serde_json::Error) -> PortError {
    move |e| {
        PortError::new(
            ErrorKind::Other,
            op,
            format!(
                "stored JSON is unreadable at line {} column {}",
                e.line(),
                e.column()
            ),
        )
    }
}

impl Db {
    pub(crate) fn open(path: &Path) -> Result<Self, PortError> {
        const OP: &str = "local.open";
        let conn = Connection::open_with_flags(
            path,
            OpenFlags::SQLITE_OPEN_READ_WRITE
                | OpenFlags::SQLITE_OPEN_CREATE
                | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .map_err(sql_err(OP))?;
        conn.busy_timeout(BUSY_TIMEOUT).map_err(sql_err(OP))?;
        // WAL lets readers in other processes proceed while one writes; NORMAL sync is durable
        // across process crashes (the failure mode that matters for a local queue).
        conn.pragma_update(None, "journal_mode", "WAL")
            .map_err(sql_err(OP))?;
        conn.pragma_update(None, "synchronous", "NORMAL")
            .map_err(sql_err(OP))?;
        let mut conn = conn;
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(sql_err(OP))?;
        tx.execute_batch(SCHEMA).map_err(sql_err(OP))?;
        tx.commit().map_err(sql_err(OP))?;
        Ok(Self {
            conn: Arc::new(Mutex::new(conn)),
            path: path.to_path_buf(),
        })
    }

    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// Run `f` in an IMMEDIATE transaction on the blocking pool; commit when it returns Ok.
    pub(crate) async fn run<T, F>(&self, op: &'static str, f: F) -> Result<T, PortError>
    where
        T: Send + 'static,
        F: FnOnce(&Transaction<'_>) -> Result<T, PortError> + Send + 'static,
    {
        self.spawn(op, TransactionBehavior::Immediate, f).await
    }

    /// Run a read-only `f` in a deferred transaction (takes no write lock) on the blocking pool.
    pub(crate) async fn read<T, F>(&self, op: &'static str, f: F) -> Result<T, PortError>
    where
        T: Send + 'static,
        F: FnOnce(&Transaction<'_>) -> Result<T, PortError> + Send + 'static,
    {
        self.spawn(op, TransactionBehavior::Deferred, f).await
    }

    async fn spawn<T, F>(
        &self,
        op: &'static str,
        behavior: TransactionBehavior,
        f: F,
    ) -> Result<T, PortError>
    where
        T: Send + 'static,
        F: FnOnce(&Transaction<'_>) -> Result<T, PortError> + Send + 'static,
    {
        let conn = self.conn.clone();
        tokio::task::spawn_blocking(move || Self::run_on(&conn, op, behavior, f))
            .await
            .map_err(|e| {
                PortError::new(ErrorKind::Other, op, format!("database task failed: {e}"))
            })?
    }

    /// The same, blocking the caller (admin API).
    pub(crate) fn run_sync<T, F>(&self, op: &'static str, f: F) -> Result<T, PortError>
    where
        F: FnOnce(&Transaction<'_>) -> Result<T, PortError>,
    {
        Self::run_on(&self.conn, op, TransactionBehavior::Immediate, f)
    }

    fn run_on<T, F>(
        conn: &Mutex<Connection>,
        op: &'static str,
        behavior: TransactionBehavior,
        f: F,
    ) -> Result<T, PortError>
    where
        F: FnOnce(&Transaction<'_>) -> Result<T, PortError>,
    {
        // A panic while holding the lock cannot leave a half-applied transaction (it rolls back
        // on drop), so a poisoned mutex is safe to reuse.
        let mut guard = conn.lock().unwrap_or_else(|e| e.into_inner());
        let tx = guard
            .transaction_with_behavior(behavior)
            .map_err(sql_err(op))?;
        let out = f(&tx)?;
        tx.commit().map_err(sql_err(op))?;
        Ok(out)
    }
}
