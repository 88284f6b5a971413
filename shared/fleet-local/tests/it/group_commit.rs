//! The database thread's transactions (issue 19): read-only groups take no write lock, and async
//! callers on a multi-thread runtime are answered through a oneshot.

use fleet_core::Backend;
use fleet_core::ports::{Condition, ConditionalPut, PutOutcome, Record};
use fleet_local::LocalBackend;
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reads_answer_while_another_process_holds_the_write_lock() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("fleet.db");
    let backend = LocalBackend::open(&db, &dir.path().join("objects")).unwrap();
    let table = backend.records("t");
    let record = Record {
        pk: "p".into(),
        sk: "s".into(),
        order: 7,
        expires_at: None,
        data: json!({"k": "v"}),
    };
    let put = ConditionalPut {
        record,
        condition: Condition::NotExists,
    };
    assert_eq!(table.put(put).await.unwrap(), PutOutcome::Written);

    // Another process takes the write lock and keeps it while we read.
    let other = rusqlite::Connection::open(&db).unwrap();
    other
        .execute_batch("BEGIN IMMEDIATE; INSERT INTO topics (name) VALUES ('held');")
        .unwrap();
    // A read-only group runs in a DEFERRED transaction: it reads the last commit at once. (In
    // an IMMEDIATE one it would wait out the busy timeout and fail with Throttled.)
    let got = table.get("p", "s").await.unwrap().expect("stored record");
    assert_eq!(got.order, 7);
    assert_eq!(table.query("p").await.unwrap().len(), 1);
    other.execute_batch("ROLLBACK").unwrap();

    // Writes go on once the lock is free, answered on this multi-thread runtime.
    let again = ConditionalPut {
        record: Record { order: 8, ..got },
        condition: Condition::OrderBelow(8),
    };
    assert_eq!(table.put(again).await.unwrap(), PutOutcome::Written);
    assert_eq!(table.get("p", "s").await.unwrap().unwrap().order, 8);
}
