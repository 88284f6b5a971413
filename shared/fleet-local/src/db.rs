//! The SQLite file: schema, pragmas, and running work off the async runtime.

use std::any::Any;
use std::path::{Path, PathBuf};
use std::time::Duration;

use fleet_core::{ErrorKind, PortError};
use rusqlite::{Connection, ErrorCode, OpenFlags, Transaction, TransactionBehavior};

/// How long a statement waits for another process's write lock before giving up.
const BUSY_TIMEOUT: Duration = Duration::from_secs(10);
/// How long the database thread sleeps between attempts at a lock another process holds.
/// SQLite's own busy timeout sleeps 1, 2, 5, 10, ... up to 100 ms between attempts, so two
/// processes trading the write lock (a worker and the load tool's readers of the same file)
/// each lost milliseconds per conflict; a writer holds the lock for well under a millisecond.
const BUSY_STEP: Duration = Duration::from_micros(100);

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
    dedup_id        TEXT,
    -- AWSTraceHeader (X-Ray form): set by the bus on the messages its rules route.
    trace_header    TEXT
);
CREATE INDEX IF NOT EXISTS messages_visible ON messages (queue, visible_at_ms, seq);
CREATE INDEX IF NOT EXISTS messages_order ON messages (queue, seq, visible_at_ms);
CREATE INDEX IF NOT EXISTS messages_group ON messages (queue, group_id, seq);
-- A receipt names its message's seq (`local-<seq>-<issued ms>-<uuid>`), so deletes and
-- visibility changes find the row by its rowid: no index on the receipt, and no row per
-- receive. Before: a unique index on `receipt` and a `receipts` row (four b-trees) per receive.
DROP INDEX IF EXISTS messages_receipt;
DROP TABLE IF EXISTS receipts;
-- The latest receipt of each message deleted in the last hour, written by the delete, so a
-- repeated delete with it succeeds (as on SQS) and a visibility change with it is told why.
CREATE TABLE IF NOT EXISTS deleted_receipts (
    seq             INTEGER PRIMARY KEY,
    queue           TEXT NOT NULL,
    receipt         TEXT NOT NULL,
    deleted_ms      INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS deleted_receipts_at ON deleted_receipts (deleted_ms);
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
-- When a consumer last asked each queue for messages (one row a queue; `fleet status`).
CREATE TABLE IF NOT EXISTS queue_polls (
    queue           TEXT PRIMARY KEY,
    last_poll_ms    INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS bus_rules (
    bus             TEXT NOT NULL,
    name            TEXT NOT NULL,
    pattern         TEXT NOT NULL,
    target_queue    TEXT NOT NULL,
    PRIMARY KEY (bus, name)
);
-- A rowid table, not WITHOUT ROWID: a record is 0.5-1.5 KB, and a WITHOUT ROWID b-tree keeps
-- at most ~1 KB of a row on its page (SQLite advises rows under 1/20 of a page there), so the
-- event records would spill to overflow pages.
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

/// One connection, owned by one thread that runs every operation of this process in turn.
///
/// Operations queued while the thread is busy are run together in one IMMEDIATE transaction
/// (group commit), each inside its own savepoint: an operation that fails is rolled back alone,
/// the others commit, and no caller hears success before the COMMIT that makes its work
/// durable. One thread instead of a blocking-pool thread per call removes the lock convoy of
/// many handlers waiting on one connection, and one commit per group instead of per call
/// removes most WAL writes; nothing waits to form a group, so an idle process pays no latency.
pub(crate) struct Db {
    jobs: std::sync::mpsc::Sender<Job>,
    path: PathBuf,
}

/// Operations one transaction takes at most.
const MAX_GROUP: usize = 64;

type Outcome = Result<Box<dyn Any + Send>, PortError>;

struct Job {
    op: &'static str,
    /// The job may write: its group runs in an IMMEDIATE transaction (the write lock).
    /// A group of read-only jobs runs in a DEFERRED one, which takes no write lock, so it
    /// never waits for another process's writer or holds one up.
    write: bool,
    work: Box<dyn FnOnce(&Transaction<'_>) -> Outcome + Send>,
    reply: Reply,
}

/// Where the outcome goes: a caller blocked on a std channel (the admin API, and async callers
/// on a current-thread runtime, waiting on the blocking pool), or an async caller on a
/// multi-thread runtime awaiting a oneshot.
enum Reply {
    Blocking(std::sync::mpsc::SyncSender<Outcome>),
    Async(tokio::sync::oneshot::Sender<Outcome>),
}

impl Reply {
    fn send(self, outcome: Outcome) {
        // The caller may have gone away (a cancelled future): its work stands, as a committed
        // SQLite transaction whose caller vanished would.
        match self {
            Reply::Blocking(tx) => drop(tx.send(outcome)),
            Reply::Async(tx) => drop(tx.send(outcome)),
        }
    }
}

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

/// The files SQLite keeps beside the database (`<db>-wal` and so on), whose mode SQLite copies
/// from the database file when it creates them.
const SIDECARS: [&str; 3] = ["-wal", "-shm", "-journal"];

/// Create the database file 0600 when it does not exist (SQLite would create it 0644 whatever
/// the umask, and its -wal, -shm and -journal files with the same mode as the database), and
/// refuse to open one that group or others can reach unless `allow_shared`.
/// Columns added after a database file was first made: `CREATE TABLE IF NOT EXISTS` leaves an
/// older file's tables as they were, so each is added here when missing.
fn add_missing_columns(tx: &rusqlite::Transaction<'_>) -> rusqlite::Result<()> {
    let has_trace_header: bool = tx.query_row(
        "SELECT EXISTS(SELECT 1 FROM pragma_table_info('messages') WHERE name = 'trace_header')",
        [],
        |r| r.get(0),
    )?;
    if !has_trace_header {
        tx.execute_batch("ALTER TABLE messages ADD COLUMN trace_header TEXT")?;
    }
    Ok(())
}

fn prepare_file(path: &Path, allow_shared: bool) -> Result<(), PortError> {
    const OP: &str = "local.open";
    match fleet_core::files::create_new(path) {
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
        Err(e) => {
            return Err(PortError::new(
                ErrorKind::Other,
                OP,
                format!("creating the database file {}: {e}", path.display()),
            ));
        }
    }
    let files = std::iter::once(path.to_path_buf()).chain(SIDECARS.iter().map(|suffix| {
        let mut name = path.as_os_str().to_owned();
        name.push(suffix);
        PathBuf::from(name)
    }));
    for file in files {
        let mode = fleet_core::files::shared_mode(&file).map_err(|e| {
            PortError::new(
                ErrorKind::Other,
                OP,
                format!("reading the mode of {}: {e}", file.display()),
            )
        })?;
        let Some(mode) = mode else { continue };
        if allow_shared {
            tracing::warn!(
                file = %file.display(),
                mode = %format!("{mode:04o}"),
                "opening anyway ({}): the local database is accessible to group or others",
                fleet_core::env::ALLOW_SHARED_DB
            );
            continue;
        }
        return Err(PortError::new(
            ErrorKind::AccessDenied,
            OP,
            format!(
                "refusing to open the local database: {} is accessible to group or others \
                 (mode {mode:04o}) and holds patient data. Make it the owner's alone \
                 (chmod 600 {}*), or set {}=1 to open it anyway",
                file.display(),
                path.display(),
                fleet_core::env::ALLOW_SHARED_DB
            ),
        ));
    }
    Ok(())
}

impl Db {
    /// Open (or create, 0600) the database at `path`; refuses a file group or others can reach
    /// unless `allow_shared`.
    pub(crate) fn open(path: &Path, allow_shared: bool) -> Result<Self, PortError> {
        const OP: &str = "local.open";
        prepare_file(path, allow_shared)?;
        let conn = Connection::open_with_flags(
            path,
            OpenFlags::SQLITE_OPEN_READ_WRITE
                | OpenFlags::SQLITE_OPEN_CREATE
                | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .map_err(sql_err(OP))?;
        conn.busy_handler(Some(busy_wait)).map_err(sql_err(OP))?;
        // WAL lets readers in other processes proceed while one writes; NORMAL sync is durable
        // across process crashes (the failure mode that matters for a local queue).
        conn.pragma_update(None, "journal_mode", "WAL")
            .map_err(sql_err(OP))?;
        conn.pragma_update(None, "synchronous", "NORMAL")
            .map_err(sql_err(OP))?;
        // Checkpoint every ~16 MiB of WAL instead of ~4 MiB: a checkpoint copies each page
        // once however often it was rewritten since the last one (the hot index pages of
        // queues and records are rewritten by nearly every group), and fsyncs the file.
        conn.pragma_update(None, "wal_autocheckpoint", 4000)
            .map_err(sql_err(OP))?;
        // 32 MiB of page cache (the default is 2 MiB): the working set of a busy queue and its
        // records stays in memory instead of being read back from the OS cache.
        conn.pragma_update(None, "cache_size", -32768)
            .map_err(sql_err(OP))?;
        // Savepoint sub-journals and statement journals in memory: every job runs in a
        // savepoint, and SQLite copies each page a job first touches into the savepoint's
        // sub-journal; with the default they were temporary files, created, written and
        // unlinked per transaction (a third of the database thread's pwrite calls).
        conn.pragma_update(None, "temp_store", "MEMORY")
            .map_err(sql_err(OP))?;
        conn.set_prepared_statement_cache_capacity(128);
        let mut conn = conn;
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(sql_err(OP))?;
        tx.execute_batch(SCHEMA).map_err(sql_err(OP))?;
        add_missing_columns(&tx).map_err(sql_err(OP))?;
        tx.commit().map_err(sql_err(OP))?;
        let (jobs, queue) = std::sync::mpsc::channel::<Job>();
        std::thread::Builder::new()
            .name("fleet-local-db".into())
            .spawn(move || serve(conn, queue))
            .map_err(|e| {
                PortError::new(
                    ErrorKind::Other,
                    OP,
                    format!("cannot start the database thread: {e}"),
                )
            })?;
        Ok(Self {
            jobs,
            path: path.to_path_buf(),
        })
    }

    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// Run `f` on the database thread, in a savepoint of a write transaction; the result comes
    /// back once that transaction has committed.
    pub(crate) async fn run<T, F>(&self, op: &'static str, f: F) -> Result<T, PortError>
    where
        T: Send + 'static,
        F: FnOnce(&Transaction<'_>) -> Result<T, PortError> + Send + 'static,
    {
        self.call(op, true, f).await
    }

    async fn call<T, F>(&self, op: &'static str, write: bool, f: F) -> Result<T, PortError>
    where
        T: Send + 'static,
        F: FnOnce(&Transaction<'_>) -> Result<T, PortError> + Send + 'static,
    {
        // On a multi-thread runtime (the workers) the caller awaits a oneshot the database
        // thread answers: one thread wake per call. A current-thread runtime, the only kind
        // whose clock can be paused (tests), waits on the blocking pool instead: tokio counts
        // blocking tasks as work in progress, so a paused clock does not jump while the
        // database answers (an awaited oneshot would let it auto-advance). The blocking-pool
        // wait costs two more thread wakes per call (~70 µs of CPU per message at saturation).
        let multi_thread = tokio::runtime::Handle::try_current()
            .is_ok_and(|h| h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread);
        let outcome = if multi_thread {
            let (tx, rx) = tokio::sync::oneshot::channel();
            self.submit(op, write, f, Reply::Async(tx))?;
            rx.await.map_err(|_| gone(op))?
        } else {
            let (tx, rx) = std::sync::mpsc::sync_channel(1);
            self.submit(op, write, f, Reply::Blocking(tx))?;
            tokio::task::spawn_blocking(move || rx.recv())
                .await
                .map_err(|e| {
                    PortError::new(ErrorKind::Other, op, format!("database wait failed: {e}"))
                })?
                .map_err(|_| gone(op))?
        };
        unbox(op, outcome)
    }

    /// A read-only `f`. When every job of its group is a read, the group runs in a DEFERRED
    /// transaction that takes no write lock (WAL readers neither wait for nor block a writer
    /// in another process); grouped with writes, it runs in their IMMEDIATE transaction. `f`
    /// must not write: a write in a read-only group would take the lock mid-transaction.
    pub(crate) async fn read<T, F>(&self, op: &'static str, f: F) -> Result<T, PortError>
    where
        T: Send + 'static,
        F: FnOnce(&Transaction<'_>) -> Result<T, PortError> + Send + 'static,
    {
        self.call(op, false, f).await
    }

    /// The same, blocking the caller (admin API).
    pub(crate) fn run_sync<T, F>(&self, op: &'static str, f: F) -> Result<T, PortError>
    where
        T: Send + 'static,
        F: FnOnce(&Transaction<'_>) -> Result<T, PortError> + Send + 'static,
    {
        let (tx, rx) = std::sync::mpsc::sync_channel(1);
        self.submit(op, true, f, Reply::Blocking(tx))?;
        let outcome = rx.recv().map_err(|_| gone(op))?;
        unbox(op, outcome)
    }

    fn submit<T, F>(
        &self,
        op: &'static str,
        write: bool,
        f: F,
        reply: Reply,
    ) -> Result<(), PortError>
    where
        T: Send + 'static,
        F: FnOnce(&Transaction<'_>) -> Result<T, PortError> + Send + 'static,
    {
        let work = Box::new(move |tx: &Transaction<'_>| -> Outcome {
            f(tx).map(|v| Box::new(v) as Box<dyn Any + Send>)
        });
        self.jobs
            .send(Job {
                op,
                write,
                work,
                reply,
            })
            .map_err(|_| gone(op))
    }
}

/// `execute` and `query_row` through the connection's statement cache: the hot paths run the
/// same few statements thousands of times, and compiling SQL was a visible share of their CPU.
pub(crate) trait Cached {
    fn exec<P: rusqlite::Params>(&self, sql: &str, params: P) -> rusqlite::Result<usize>;
    fn row<T, P, F>(&self, sql: &str, params: P, f: F) -> rusqlite::Result<T>
    where
        P: rusqlite::Params,
        F: FnOnce(&rusqlite::Row<'_>) -> rusqlite::Result<T>;
}

impl Cached for Connection {
    fn exec<P: rusqlite::Params>(&self, sql: &str, params: P) -> rusqlite::Result<usize> {
        self.prepare_cached(sql)?.execute(params)
    }
    fn row<T, P, F>(&self, sql: &str, params: P, f: F) -> rusqlite::Result<T>
    where
        P: rusqlite::Params,
        F: FnOnce(&rusqlite::Row<'_>) -> rusqlite::Result<T>,
    {
        self.prepare_cached(sql)?.query_row(params, f)
    }
}

/// SQLite's busy handler: called with the number of earlier calls for the same lock; `true`
/// tries again. Short sleeps for [`BUSY_TIMEOUT`] in all. It runs on the thread that holds the
/// connection: the database thread, or the caller of [`Db::open`] while the schema is made.
fn busy_wait(attempts: i32) -> bool {
    let limit = BUSY_TIMEOUT.as_micros() / BUSY_STEP.as_micros();
    if u128::try_from(attempts).unwrap_or(u128::MAX) >= limit {
        return false;
    }
    if attempts < 8 {
        // The holder usually finishes within microseconds: give it the core first.
        std::thread::yield_now();
    } else {
        // Not a tokio worker thread: the database thread exists to block on SQLite.
        #[allow(clippy::disallowed_methods)]
        std::thread::sleep(BUSY_STEP);
    }
    true
}

/// The same error, named for another operation of the group.
fn for_op(err: &PortError, op: &'static str) -> PortError {
    PortError { op, ..err.clone() }
}

fn gone(op: &'static str) -> PortError {
    PortError::new(ErrorKind::Other, op, "the database thread has stopped")
}

fn unbox<T: 'static>(op: &'static str, outcome: Outcome) -> Result<T, PortError> {
    let value = outcome?;
    value
        .downcast::<T>()
        .map(|b| *b)
        .map_err(|_| PortError::new(ErrorKind::Other, op, "database reply of the wrong type"))
}

/// The database thread: take a job, then every job already queued (up to [`MAX_GROUP`]), run
/// them in one transaction, answer each. Ends when every [`Db`] handle is dropped.
fn serve(mut conn: Connection, queue: std::sync::mpsc::Receiver<Job>) {
    while let Ok(first) = queue.recv() {
        let mut group = vec![first];
        while group.len() < MAX_GROUP {
            match queue.try_recv() {
                Ok(job) => group.push(job),
                Err(_) => break,
            }
        }
        run_group(&mut conn, group);
    }
}

fn run_group(conn: &mut Connection, group: Vec<Job>) {
    let behavior = if group.iter().any(|job| job.write) {
        TransactionBehavior::Immediate
    } else {
        TransactionBehavior::Deferred
    };
    let tx = match conn.transaction_with_behavior(behavior) {
        Ok(tx) => tx,
        Err(e) => {
            let err = sql_err(group[0].op)(e);
            for job in group {
                job.reply.send(Err(for_op(&err, job.op)));
            }
            return;
        }
    };
    let mut done: Vec<(Reply, &'static str, Outcome)> = Vec::with_capacity(group.len());
    for job in group {
        let outcome = run_in_savepoint(&tx, job.op, job.work);
        done.push((job.reply, job.op, outcome));
    }
    match tx.commit() {
        Ok(()) => {
            for (reply, _, outcome) in done {
                reply.send(outcome);
            }
        }
        Err(e) => {
            // Nothing of the group is durable: every caller hears the commit's error, also
            // those whose own work had failed (their error is the less useful one now).
            let err = sql_err("local.commit")(e);
            for (reply, op, _) in done {
                reply.send(Err(for_op(&err, op)));
            }
        }
    }
}

fn run_in_savepoint(
    tx: &Transaction<'_>,
    op: &'static str,
    work: Box<dyn FnOnce(&Transaction<'_>) -> Outcome + Send>,
) -> Outcome {
    tx.exec("SAVEPOINT job", []).map_err(sql_err(op))?;
    // A panicking operation must not take the thread (and every later caller) with it.
    let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| work(tx)))
        .unwrap_or_else(|_| {
            Err(PortError::new(
                ErrorKind::Other,
                op,
                "a database operation panicked; it was rolled back",
            ))
        });
    let end = if outcome.is_ok() {
        tx.exec("RELEASE job", [])
    } else {
        tx.exec("ROLLBACK TO job", [])
            .and_then(|_| tx.exec("RELEASE job", []))
    };
    match end {
        Ok(_) => outcome,
        Err(e) => Err(sql_err(op)(e)),
    }
}
