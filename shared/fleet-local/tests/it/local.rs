//! The local backend against real SQLite files in a temporary directory.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use fleet_core::ports::{
    AttributeValue, Attributes, BusEvent, Condition, ConditionalPut, MessageQueue, OutgoingMessage,
    PutOutcome, Record, TransactOutcome,
};
use fleet_core::{Backend, ErrorKind};
use fleet_local::{LocalBackend, QueueSpec};
use serde_json::json;

const SECOND: Duration = Duration::from_secs(1);

struct Env {
    _dir: tempfile::TempDir,
    backend: LocalBackend,
    db: std::path::PathBuf,
    objects: std::path::PathBuf,
}

fn env() -> Env {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = dir.path().join("fleet.sqlite");
    let objects = dir.path().join("objects");
    let backend = LocalBackend::open(&db, &objects).expect("open");
    Env {
        _dir: dir,
        backend,
        db,
        objects,
    }
}

fn spec(visibility: Duration) -> QueueSpec {
    QueueSpec {
        visibility_timeout: visibility,
        ..QueueSpec::default()
    }
}

fn msg(body: &str) -> OutgoingMessage {
    OutgoingMessage {
        body: body.into(),
        ..OutgoingMessage::default()
    }
}

fn fifo_msg(body: &str, group: &str) -> OutgoingMessage {
    OutgoingMessage {
        body: body.into(),
        group_id: Some(group.into()),
        dedup_id: Some(body.into()),
        ..OutgoingMessage::default()
    }
}

async fn queue(e: &Env, name: &str) -> Arc<dyn MessageQueue> {
    e.backend.queue(name).await.expect("queue")
}

#[tokio::test]
async fn visibility_expiry_redelivers_with_a_new_receipt_and_higher_count() {
    let e = env();
    e.backend.create_queue("q", spec(SECOND)).unwrap();
    let q = queue(&e, "q").await;
    let id = q.send(msg("hello")).await.unwrap();

    let first = q.receive(10, Duration::ZERO, None).await.unwrap();
    assert_eq!(first.len(), 1);
    assert_eq!(
        (
            first[0].message_id.as_str(),
            first[0].receive_count,
            first[0].body.as_str()
        ),
        (id.as_str(), 1, "hello")
    );
    assert!(
        q.receive(10, Duration::ZERO, None)
            .await
            .unwrap()
            .is_empty(),
        "in flight, so invisible"
    );
    let a = q.attributes().await.unwrap();
    assert_eq!((a.approximate_visible, a.approximate_in_flight), (0, 1));

    // A long poll picks it up when the visibility timeout expires.
    let started = Instant::now();
    let second = q.receive(10, 3 * SECOND, None).await.unwrap();
    assert!(started.elapsed() < 3 * SECOND);
    assert_eq!(second.len(), 1);
    assert_eq!(second[0].message_id, id);
    assert_eq!(second[0].receive_count, 2);
    assert_ne!(second[0].receipt, first[0].receipt);

    // A per-receive visibility override.
    q.change_visibility_batch(&[(second[0].receipt.clone(), Duration::ZERO)])
        .await
        .unwrap();
    let third = q
        .receive(1, Duration::ZERO, Some(Duration::from_millis(100)))
        .await
        .unwrap();
    assert_eq!(third[0].receive_count, 3);
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(
        q.receive(1, Duration::ZERO, None).await.unwrap()[0].receive_count,
        4
    );
}

#[tokio::test]
async fn stale_receipts_fail_per_entry_and_current_ones_delete() {
    let e = env();
    e.backend.create_queue("q", spec(SECOND)).unwrap();
    let q = queue(&e, "q").await;
    q.send(msg("a")).await.unwrap();
    q.send(msg("b")).await.unwrap();
    let first = q.receive(10, Duration::ZERO, None).await.unwrap();
    assert_eq!(first.len(), 2);
    // Release both at once and receive them again: the first receipts are now stale.
    let release: Vec<_> = first
        .iter()
        .map(|m| (m.receipt.clone(), Duration::ZERO))
        .collect();
    assert!(q.change_visibility_batch(&release).await.unwrap().all_ok());
    let second = q.receive(10, Duration::ZERO, None).await.unwrap();
    assert_eq!(second.len(), 2);

    let r = q
        .delete_batch(&[
            first[0].receipt.clone(),
            second[0].receipt.clone(),
            "garbage".into(),
        ])
        .await
        .unwrap();
    let codes: Vec<_> = r
        .failed
        .iter()
        .map(|f| (f.index, f.code.as_str(), f.sender_fault))
        .collect();
    assert_eq!(
        codes,
        vec![
            (0, "ReceiptHandleIsInvalid", true),
            (2, "ReceiptHandleIsInvalid", true)
        ]
    );
    let a = q.attributes().await.unwrap();
    assert_eq!(
        a.approximate_visible + a.approximate_in_flight,
        1,
        "exactly one message deleted"
    );

    // Deleting again with the current receipt succeeds, as on SQS.
    assert!(
        q.delete_batch(&[second[0].receipt.clone()])
            .await
            .unwrap()
            .all_ok()
    );
    // Changing visibility with a stale receipt fails per entry; with a deleted message's, too.
    let r = q
        .change_visibility_batch(&[
            (first[1].receipt.clone(), SECOND),
            (second[1].receipt.clone(), SECOND),
            (second[0].receipt.clone(), SECOND),
        ])
        .await
        .unwrap();
    let codes: Vec<_> = r
        .failed
        .iter()
        .map(|f| (f.index, f.code.as_str()))
        .collect();
    assert_eq!(
        codes,
        vec![(0, "ReceiptHandleIsInvalid"), (2, "InvalidParameterValue")]
    );
}

#[tokio::test]
async fn redrive_moves_a_message_after_max_receives_keeping_id_body_and_attributes() {
    let e = env();
    e.backend.create_queue("dlq", spec(SECOND)).unwrap();
    e.backend
        .create_queue(
            "src",
            QueueSpec {
                redrive: Some(("dlq".into(), 2)),
                ..spec(SECOND)
            },
        )
        .unwrap();
    let src = queue(&e, "src").await;
    let mut attrs = Attributes::new();
    attrs.insert("trace".into(), AttributeValue::string("t-1"));
    let id = src
        .send(OutgoingMessage {
            body: "poison".into(),
            attributes: attrs.clone(),
            ..msg("")
        })
        .await
        .unwrap();

    for expected in 1..=2 {
        let got = src.receive(1, Duration::ZERO, None).await.unwrap();
        assert_eq!(got[0].receive_count, expected);
        src.change_visibility_batch(&[(got[0].receipt.clone(), Duration::ZERO)])
            .await
            .unwrap();
    }
    assert!(
        src.receive(10, Duration::ZERO, None)
            .await
            .unwrap()
            .is_empty(),
        "third receive moves it instead"
    );
    let a = src.attributes().await.unwrap();
    assert_eq!(
        a.approximate_visible + a.approximate_in_flight + a.approximate_delayed,
        0
    );

    let dlq_port = e
        .backend
        .queue_by_arn(&a.redrive_policy.as_ref().unwrap().dead_letter_target)
        .await
        .unwrap();
    assert_eq!(dlq_port.id(), "dlq");
    let dead = dlq_port.receive(10, Duration::ZERO, None).await.unwrap();
    assert_eq!(dead.len(), 1);
    assert_eq!(
        (dead[0].message_id.as_str(), dead[0].body.as_str()),
        (id.as_str(), "poison")
    );
    assert_eq!(dead[0].attributes, attrs);
    // The two receives on the source carry over (as on SQS and moto), plus this one.
    assert_eq!(dead[0].receive_count, 3);
}

/// Issue 15 item 5: SQS refuses a visibility that reaches past 12 hours after the receive
/// ("Total VisibilityTimeout for the message is beyond the limit"). Before the fix only the
/// timeout itself was checked, so 12 hours from a later moment was accepted.
#[tokio::test]
async fn item5_visibility_is_limited_to_12_hours_after_the_receive() {
    let e = env();
    e.backend.create_queue("q", spec(30 * SECOND)).unwrap();
    let q = queue(&e, "q").await;
    q.send(msg("m")).await.unwrap();
    let got = q.receive(1, Duration::ZERO, None).await.unwrap();
    let receipt = got[0].receipt.clone();
    tokio::time::sleep(Duration::from_millis(50)).await;
    let twelve_hours = 12 * 3600 * SECOND;
    let refused = q
        .change_visibility_batch(&[(receipt.clone(), twelve_hours)])
        .await
        .unwrap();
    assert_eq!(refused.failed.len(), 1);
    assert_eq!(refused.failed[0].code, "InvalidParameterValue");
    let accepted = q
        .change_visibility_batch(&[(receipt, twelve_hours - 5 * SECOND)])
        .await
        .unwrap();
    assert!(accepted.all_ok(), "{accepted:?}");
}

/// Issue 15 item 5: a visibility change for a message whose visibility has run out answers
/// `MessageNotInflight` (the lease is gone), on the same wall clock the receive uses. Before
/// the fix the lapsed message's visibility was quietly extended again.
#[tokio::test]
async fn item5_a_lapsed_message_is_not_in_flight() {
    let e = env();
    e.backend.create_queue("q", spec(30 * SECOND)).unwrap();
    let q = queue(&e, "q").await;
    q.send(msg("m")).await.unwrap();
    let got = q
        .receive(1, Duration::ZERO, Some(Duration::from_millis(200)))
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let lapsed = q
        .change_visibility_batch(&[(got[0].receipt.clone(), 10 * SECOND)])
        .await
        .unwrap();
    assert_eq!(lapsed.failed.len(), 1);
    assert_eq!(lapsed.failed[0].code, "MessageNotInflight");
    // Visible again, so the next receive has it (and the old receipt is no longer the latest).
    let again = q.receive(1, Duration::ZERO, None).await.unwrap();
    assert_eq!(again[0].receive_count, 2);
    let stale = q
        .change_visibility_batch(&[(got[0].receipt.clone(), 10 * SECOND)])
        .await
        .unwrap();
    assert_eq!(stale.failed[0].code, "ReceiptHandleIsInvalid");
}

#[tokio::test]
async fn attributes_round_trip_and_queue_attributes_report_settings() {
    let e = env();
    e.backend.create_queue("dlq", spec(SECOND)).unwrap();
    e.backend
        .create_queue(
            "q",
            QueueSpec {
                redrive: Some(("dlq".into(), 5)),
                kms_key_id: Some("alias/test".into()),
                ..spec(7 * SECOND)
            },
        )
        .unwrap();
    let q = e.backend.queue("local://queue/q").await.unwrap();
    let mut attrs = Attributes::new();
    attrs.insert("s".into(), AttributeValue::string("ünïcode ✓"));
    attrs.insert("n".into(), AttributeValue::number(-12.5));
    attrs.insert("b".into(), AttributeValue::binary(vec![0, 1, 2, 255]));
    attrs.insert(
        "j".into(),
        AttributeValue {
            data_type: "String.json".into(),
            string_value: Some("{}".into()),
            binary_value: None,
        },
    );
    q.send(OutgoingMessage {
        body: "x".into(),
        attributes: attrs.clone(),
        ..msg("")
    })
    .await
    .unwrap();
    q.send(OutgoingMessage {
        delay: Some(10 * SECOND),
        ..msg("later")
    })
    .await
    .unwrap();
    q.send(msg("y")).await.unwrap();
    let got = q.receive(1, Duration::ZERO, None).await.unwrap();
    assert_eq!(got[0].attributes, attrs);
    assert!(got[0].sent_timestamp_ms > 1_600_000_000_000);

    let a = q.attributes().await.unwrap();
    assert_eq!(
        (
            a.approximate_visible,
            a.approximate_in_flight,
            a.approximate_delayed
        ),
        (1, 1, 1)
    );
    assert_eq!(a.visibility_timeout, 7 * SECOND);
    assert_eq!(a.kms_key_id.as_deref(), Some("alias/test"));
    assert!(!a.sqs_managed_sse && !a.fifo);
    assert_eq!(
        a.redrive_policy
            .as_ref()
            .map(|r| (r.dead_letter_target.as_str(), r.max_receive_count)),
        Some(("dlq", 5))
    );
    assert_eq!(a.arn, "arn:local:sqs:q");
    assert_eq!(e.backend.queue_by_arn(&a.arn).await.unwrap().id(), "q");

    let err = e.backend.queue("nope").await.err().expect("unknown queue");
    assert_eq!(err.kind, ErrorKind::NotFound);
    // Too many attributes are refused like SQS does.
    let many: Attributes = (0..11)
        .map(|i| (format!("a{i}"), AttributeValue::string("v")))
        .collect();
    let err = q
        .send(OutgoingMessage {
            attributes: many,
            ..msg("z")
        })
        .await
        .unwrap_err();
    assert_eq!(err.kind, ErrorKind::Invalid);
    assert_eq!(
        e.backend.list_queues().unwrap(),
        vec!["dlq".to_string(), "q".to_string()]
    );
}

#[tokio::test]
async fn delayed_messages_wait_and_long_polls_return_when_they_appear() {
    let e = env();
    e.backend
        .create_queue(
            "q",
            QueueSpec {
                delay: SECOND,
                ..spec(SECOND)
            },
        )
        .unwrap();
    let q = queue(&e, "q").await;
    q.send(msg("queue delay")).await.unwrap();
    q.send(OutgoingMessage {
        delay: Some(Duration::ZERO),
        ..msg("no delay")
    })
    .await
    .unwrap();
    // Received messages stay invisible for the rest of the test (the queue's own 1 s would let
    // "no delay" reappear during the idle poll below on a slow machine).
    let hold = Some(30 * SECOND);
    let now = q.receive(10, Duration::ZERO, hold).await.unwrap();
    assert_eq!(
        now.iter().map(|m| m.body.as_str()).collect::<Vec<_>>(),
        vec!["no delay"]
    );
    let started = Instant::now();
    let later = q.receive(10, 5 * SECOND, hold).await.unwrap();
    assert_eq!(later[0].body, "queue delay");
    assert!(started.elapsed() >= Duration::from_millis(500) && started.elapsed() < 3 * SECOND);

    // An idle long poll waits out its time and returns nothing.
    let started = Instant::now();
    assert!(
        q.receive(10, Duration::from_millis(300), None)
            .await
            .unwrap()
            .is_empty()
    );
    assert!(started.elapsed() >= Duration::from_millis(300));
}

#[tokio::test]
async fn fifo_keeps_group_order_and_blocks_a_group_while_one_message_is_in_flight() {
    let e = env();
    e.backend
        .create_queue(
            "f.fifo",
            QueueSpec {
                fifo: true,
                ..spec(SECOND)
            },
        )
        .unwrap();
    let q = queue(&e, "f.fifo").await;
    for (body, group) in [
        ("a1", "A"),
        ("a2", "A"),
        ("b1", "B"),
        ("a3", "A"),
        ("b2", "B"),
    ] {
        q.send(fifo_msg(body, group)).await.unwrap();
    }
    let first = q.receive(1, Duration::ZERO, None).await.unwrap();
    assert_eq!(first[0].body, "a1");
    assert_eq!(first[0].group_id.as_deref(), Some("A"));
    assert!(first[0].sequence_number.is_some());
    // Group A is blocked by a1; B delivers in order.
    let next = q.receive(10, Duration::ZERO, None).await.unwrap();
    assert_eq!(
        next.iter().map(|m| m.body.as_str()).collect::<Vec<_>>(),
        vec!["b1", "b2"]
    );
    assert!(
        q.receive(10, Duration::ZERO, None)
            .await
            .unwrap()
            .is_empty()
    );
    // Retrying a1 (visibility 0) redelivers a1 before anything else of A.
    q.change_visibility_batch(&[(first[0].receipt.clone(), Duration::ZERO)])
        .await
        .unwrap();
    let again = q.receive(1, Duration::ZERO, None).await.unwrap();
    assert_eq!((again[0].body.as_str(), again[0].receive_count), ("a1", 2));
    assert!(
        q.delete_batch(&[again[0].receipt.clone()])
            .await
            .unwrap()
            .all_ok()
    );
    let rest = q.receive(10, Duration::ZERO, None).await.unwrap();
    assert_eq!(
        rest.iter().map(|m| m.body.as_str()).collect::<Vec<_>>(),
        vec!["a2", "a3"]
    );

    // A FIFO send needs a group id; per-entry in a batch.
    let err = q.send(msg("no group")).await.unwrap_err();
    assert_eq!(err.kind, ErrorKind::Invalid);
    let r = q
        .send_batch(&[fifo_msg("ok", "C"), msg("no group")])
        .await
        .unwrap();
    assert_eq!(
        r.failed
            .iter()
            .map(|f| (f.index, f.code.as_str()))
            .collect::<Vec<_>>(),
        vec![(1, "MissingParameter")]
    );
    // Names follow SQS: .fifo only for FIFO queues.
    assert_eq!(
        e.backend
            .create_queue(
                "g",
                QueueSpec {
                    fifo: true,
                    ..spec(SECOND)
                }
            )
            .unwrap_err()
            .kind,
        ErrorKind::Invalid
    );
}

#[tokio::test]
async fn fifo_deduplicates_within_the_window() {
    let e = env();
    e.backend
        .create_queue(
            "d.fifo",
            QueueSpec {
                fifo: true,
                ..spec(SECOND)
            },
        )
        .unwrap();
    e.backend
        .create_queue(
            "c.fifo",
            QueueSpec {
                fifo: true,
                content_based_dedup: true,
                ..spec(SECOND)
            },
        )
        .unwrap();
    let q = queue(&e, "d.fifo").await;
    let a = q.send(fifo_msg("same", "G")).await.unwrap();
    let b = q
        .send(OutgoingMessage {
            body: "different body".into(),
            ..fifo_msg("same", "G")
        })
        .await
        .unwrap();
    assert_eq!(a, b, "a duplicate send returns the first message's id");
    let got = q.receive(10, Duration::ZERO, None).await.unwrap();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].body, "same");
    // Without a dedup id and without content-based dedup, SQS refuses.
    let err = q
        .send(OutgoingMessage {
            dedup_id: None,
            ..fifo_msg("x", "G")
        })
        .await
        .unwrap_err();
    assert_eq!(err.kind, ErrorKind::Invalid);

    let c = queue(&e, "c.fifo").await;
    let body = |b: &str| OutgoingMessage {
        body: b.into(),
        group_id: Some("G".into()),
        ..OutgoingMessage::default()
    };
    let x = c.send(body("one")).await.unwrap();
    assert_eq!(c.send(body("one")).await.unwrap(), x);
    assert_ne!(c.send(body("two")).await.unwrap(), x);
    assert_eq!(
        e.backend.queue_messages_snapshot("c.fifo").unwrap().len(),
        2
    );
}

#[tokio::test]
async fn events_are_stored_and_routed_by_rule_patterns() {
    let e = env();
    e.backend.create_queue("tap", spec(SECOND)).unwrap();
    e.backend.create_queue("other", spec(SECOND)).unwrap();
    e.backend
        .put_rule(
            "fleet",
            "patients",
            r#"{"source":["fleet.hl7"],"detail-type":[{"prefix":"Patient"}]}"#,
            "tap",
        )
        .unwrap();
    e.backend
        .put_rule("fleet", "docs", r#"{"source":["fleet.docs"]}"#, "other")
        .unwrap();
    e.backend
        .put_rule(
            "elsewhere",
            "all",
            r#"{"source":[{"exists":true}]}"#,
            "other",
        )
        .unwrap();
    let bad = e
        .backend
        .put_rule("fleet", "bad", r#"{"source":"x"}"#, "tap")
        .unwrap_err();
    assert_eq!(bad.kind, ErrorKind::Invalid);
    assert!(bad.message.contains("array of alternatives"), "{bad}");

    let bus = e.backend.event_bus("fleet");
    let ev = |dt: &str, detail: &str| BusEvent {
        source: "fleet.hl7".into(),
        detail_type: dt.into(),
        detail: detail.into(),
        resources: vec!["r1".into()],
        time: None,
        trace_header: None,
    };
    let r = bus
        .put_events(&[
            ev("PatientAdmitted", r#"{"k":1}"#),
            ev("Other", "{}"),
            ev("PatientMoved", "not json"),
            ev("PatientMoved", "[1]"),
        ])
        .await
        .unwrap();
    assert_eq!(
        r.failed
            .iter()
            .map(|f| (f.index, f.code.as_str()))
            .collect::<Vec<_>>(),
        vec![(2, "MalformedDetail"), (3, "MalformedDetail")]
    );

    let events = e.backend.list_bus_events("fleet").unwrap();
    assert_eq!(events.len(), 2);
    assert_eq!(events[0]["detail-type"], "PatientAdmitted");
    assert_eq!(events[1]["detail-type"], "Other");
    let tap = queue(&e, "tap")
        .await
        .receive(10, Duration::ZERO, None)
        .await
        .unwrap();
    assert_eq!(tap.len(), 1);
    let body: serde_json::Value = serde_json::from_str(&tap[0].body).unwrap();
    assert_eq!(
        body, events[0],
        "the SQS body is exactly the stored envelope"
    );
    assert_eq!(body["detail"], json!({"k": 1}));
    assert_eq!(
        (
            body["version"].as_str(),
            body["account"].as_str(),
            body["region"].as_str()
        ),
        (Some("0"), Some("000000000000"), Some("local"))
    );
    assert_eq!(body["resources"], json!(["r1"]));
    assert!(uuid::Uuid::parse_str(body["id"].as_str().unwrap()).is_ok());
    assert!(
        time::OffsetDateTime::parse(
            body["time"].as_str().unwrap(),
            &time::format_description::well_known::Rfc3339
        )
        .is_ok()
    );
    assert!(
        e.backend
            .queue_messages_snapshot("other")
            .unwrap()
            .is_empty(),
        "no rule of this bus matched"
    );

    e.backend.delete_rule("fleet", "patients").unwrap();
    bus.put_events(&[ev("PatientAdmitted", "{}")])
        .await
        .unwrap();
    assert!(
        e.backend
            .queue_messages_snapshot("tap")
            .unwrap()
            .iter()
            .all(|m| m.in_flight),
        "nothing new routed"
    );
}

fn rec(pk: &str, sk: &str, order: i64, expires_at: Option<i64>) -> Record {
    Record {
        pk: pk.into(),
        sk: sk.into(),
        order,
        expires_at,
        data: json!({"v": order}),
    }
}

fn put(r: Record, condition: Condition) -> ConditionalPut {
    ConditionalPut {
        record: r,
        condition,
    }
}

#[tokio::test]
async fn conditional_writes_transactions_ttl_and_queries() {
    let e = env();
    let t = e.backend.records("t");
    assert_eq!(
        t.put(put(rec("p", "b", 5, None), Condition::NotExists))
            .await
            .unwrap(),
        PutOutcome::Written
    );
    assert_eq!(
        t.put(put(rec("p", "b", 9, None), Condition::NotExists))
            .await
            .unwrap(),
        PutOutcome::ConditionFailed
    );
    assert_eq!(
        t.put(put(rec("p", "b", 4, None), Condition::OrderBelow(5)))
            .await
            .unwrap(),
        PutOutcome::ConditionFailed
    );
    assert_eq!(t.get("p", "b").await.unwrap().unwrap().order, 5);
    assert_eq!(
        t.put(put(rec("p", "b", 6, None), Condition::OrderBelow(6)))
            .await
            .unwrap(),
        PutOutcome::Written
    );
    assert_eq!(
        t.get("p", "b").await.unwrap().unwrap(),
        rec("p", "b", 6, None)
    );
    assert_eq!(
        t.put(put(rec("p", "b", 1, None), Condition::None))
            .await
            .unwrap(),
        PutOutcome::Written
    );

    // All or nothing, reporting the failed indexes.
    let out = t
        .transact_put(&[
            put(rec("p", "a", 1, None), Condition::NotExists),
            put(rec("p", "b", 1, None), Condition::NotExists),
        ])
        .await
        .unwrap();
    assert_eq!(out, TransactOutcome::ConditionFailed(vec![1]));
    assert!(t.get("p", "a").await.unwrap().is_none(), "nothing written");
    let out = t
        .transact_put(&[
            put(rec("p", "a", 1, None), Condition::NotExists),
            put(rec("p", "c", 1, None), Condition::None),
        ])
        .await
        .unwrap();
    assert_eq!(out, TransactOutcome::Written);
    let dup = t
        .transact_put(&[
            put(rec("p", "x", 1, None), Condition::None),
            put(rec("p", "x", 2, None), Condition::None),
        ])
        .await;
    assert_eq!(dup.unwrap_err().kind, ErrorKind::Invalid);

    // Expired records are absent for get, query and conditions.
    let past = time::OffsetDateTime::now_utc().unix_timestamp() - 10;
    let future = past + 3600;
    t.put(put(rec("p", "old", 1, Some(past)), Condition::None))
        .await
        .unwrap();
    t.put(put(rec("p", "new", 1, Some(future)), Condition::None))
        .await
        .unwrap();
    assert!(t.get("p", "old").await.unwrap().is_none());
    assert!(t.get("p", "new").await.unwrap().is_some());
    let sks: Vec<_> = t
        .query("p")
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.sk)
        .collect();
    assert_eq!(sks, vec!["a", "b", "c", "new"]);
    assert_eq!(
        t.put(put(rec("p", "old", 2, None), Condition::NotExists))
            .await
            .unwrap(),
        PutOutcome::Written
    );
    // Tables are separate.
    assert!(
        e.backend
            .records("other")
            .get("p", "a")
            .await
            .unwrap()
            .is_none()
    );
    assert_eq!(
        e.backend.table_records("t").unwrap().len(),
        5,
        "a, b, c, new, old"
    );
}

#[tokio::test]
async fn object_store_writes_atomically_and_refuses_unsafe_keys() {
    let e = env();
    let b = e.backend.objects("docs");
    assert!(b.get("a/b.pdf").await.unwrap().is_none());
    assert!(b.head("a/b.pdf").await.unwrap().is_none());
    let meta = b
        .put("a/b.pdf", b"%PDF-1".to_vec(), "application/pdf")
        .await
        .unwrap();
    assert_eq!(meta.size, 6);
    assert_eq!(
        meta.etag.as_deref(),
        Some(hex::encode(<sha2::Sha256 as sha2::Digest>::digest(b"%PDF-1")).as_str())
    );
    assert_eq!(meta.content_type.as_deref(), Some("application/pdf"));
    let (bytes, got) = b.get("a/b.pdf").await.unwrap().unwrap();
    assert_eq!(bytes, b"%PDF-1");
    assert_eq!(got, meta);
    assert_eq!(b.head("a/b.pdf").await.unwrap().unwrap(), meta);
    let meta2 = b
        .put("a/b.pdf", b"%PDF-2".to_vec(), "application/pdf")
        .await
        .unwrap();
    assert_ne!(meta2.etag, meta.etag);
    assert_eq!(b.get("a/b.pdf").await.unwrap().unwrap().0, b"%PDF-2");
    assert!(e.objects.join("data/docs/a/b.pdf").is_file());

    for key in [
        "../x",
        "a/../../x",
        "/etc/passwd",
        "",
        "a//b",
        "./a",
        "a/.",
        "a\\b",
    ] {
        let err = b.put(key, b"x".to_vec(), "text/plain").await.unwrap_err();
        assert_eq!(err.kind, ErrorKind::Invalid, "key {key:?}");
        assert_eq!(
            b.get(key).await.unwrap_err().kind,
            ErrorKind::Invalid,
            "key {key:?}"
        );
    }
    assert_eq!(
        e.backend
            .objects("..")
            .put("k", vec![], "x")
            .await
            .unwrap_err()
            .kind,
        ErrorKind::Invalid
    );
    // No temp files are left behind.
    assert_eq!(std::fs::read_dir(e.objects.join("tmp")).unwrap().count(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_handles_on_one_file_never_deliver_a_message_twice() {
    let e = env();
    e.backend.create_queue("q", spec(30 * SECOND)).unwrap();
    // A second backend on the same file stands for another process.
    let other = LocalBackend::open(&e.db, &e.objects).unwrap();
    let q1 = queue(&e, "q").await;
    let q2 = other.queue("q").await.unwrap();
    const N: usize = 200;
    for chunk in (0..N).collect::<Vec<_>>().chunks(10) {
        let batch: Vec<_> = chunk.iter().map(|i| msg(&format!("m{i}"))).collect();
        assert!(q1.send_batch(&batch).await.unwrap().all_ok());
    }
    let drain = |q: Arc<dyn MessageQueue>| {
        tokio::spawn(async move {
            let mut seen = Vec::new();
            loop {
                let got = q
                    .receive(10, Duration::from_millis(100), None)
                    .await
                    .unwrap();
                if got.is_empty() {
                    return seen;
                }
                let receipts: Vec<_> = got.iter().map(|m| m.receipt.clone()).collect();
                assert!(q.delete_batch(&receipts).await.unwrap().all_ok());
                seen.extend(got.into_iter().map(|m| m.body));
            }
        })
    };
    let (a, b) = (drain(q1.clone()), drain(q2));
    let (a, b) = (a.await.unwrap(), b.await.unwrap());
    let all: HashSet<_> = a.iter().chain(&b).cloned().collect();
    assert_eq!(a.len() + b.len(), N, "no duplicates");
    assert_eq!(all.len(), N, "nothing lost");
}

#[tokio::test]
async fn operations_are_counted_under_aws_api_names() {
    let e = env();
    e.backend.create_queue("q", spec(SECOND)).unwrap();
    let q = queue(&e, "q").await;
    let before = fleet_core::requests::snapshot();
    q.send(msg("x")).await.unwrap();
    let got = q.receive(1, Duration::ZERO, None).await.unwrap();
    q.delete_batch(&[got[0].receipt.clone()]).await.unwrap();
    e.backend.records("t").get("a", "b").await.unwrap();
    e.backend.objects("b").head("k").await.unwrap();
    let after = fleet_core::requests::snapshot();
    for api in [
        "sqs.SendMessage",
        "sqs.ReceiveMessage",
        "sqs.DeleteMessageBatch",
        "dynamodb.GetItem",
        "s3.HeadObject",
    ] {
        let n = |m: &std::collections::BTreeMap<String, u64>| m.get(api).copied().unwrap_or(0);
        assert!(n(&after) > n(&before), "{api} counted");
    }
}

#[tokio::test(start_paused = true)]
async fn an_idle_long_poll_follows_tokio_time_so_paused_tests_do_not_wait_in_real_time() {
    let e = env();
    e.backend.create_queue("q", spec(SECOND)).unwrap();
    let q = queue(&e, "q").await;
    let real = Instant::now();
    let virtual_start = tokio::time::Instant::now();
    assert!(
        q.receive(10, Duration::from_secs(20), None)
            .await
            .unwrap()
            .is_empty()
    );
    assert!(
        virtual_start.elapsed() >= Duration::from_secs(20),
        "the full wait elapsed on tokio's clock"
    );
    assert!(
        real.elapsed() < Duration::from_secs(10),
        "but not in real time"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queue_tail_reads_in_send_order_from_a_sequence_without_receiving() {
    let e = env();
    e.backend.create_queue("q", spec(SECOND * 30)).unwrap();
    e.backend.create_queue("other", spec(SECOND * 30)).unwrap();
    let q = queue(&e, "q").await;
    let other = queue(&e, "other").await;
    for body in ["a", "b"] {
        q.send(msg(body)).await.unwrap();
    }
    other.send(msg("elsewhere")).await.unwrap();
    q.send(msg("c")).await.unwrap();

    let first = e.backend.queue_tail("q", 0, 2).await.unwrap();
    let bodies = |got: &[(i64, fleet_local::QueuedMessage)]| {
        got.iter().map(|(_, m)| m.body.clone()).collect::<Vec<_>>()
    };
    assert_eq!(bodies(&first), ["a", "b"]);
    assert!(first[0].0 < first[1].0, "sequence numbers rise");
    let rest = e.backend.queue_tail("q", first[1].0, 10).await.unwrap();
    assert_eq!(
        bodies(&rest),
        ["c"],
        "only this queue, only after the sequence"
    );
    assert!(
        e.backend
            .queue_tail("q", rest[0].0, 10)
            .await
            .unwrap()
            .is_empty()
    );

    // Reading the tail received nothing: a receive gets all three, each for the first time.
    let got = q.receive(10, Duration::ZERO, None).await.unwrap();
    assert_eq!(got.len(), 3);
    assert!(got.iter().all(|m| m.receive_count == 1));
    let after_receive = e.backend.queue_tail("q", 0, 10).await.unwrap();
    assert!(after_receive.iter().all(|(_, m)| m.in_flight));
    let receipts: Vec<String> = got.iter().map(|m| m.receipt.clone()).collect();
    q.delete_batch(&receipts).await.unwrap();
    assert!(e.backend.queue_tail("q", 0, 10).await.unwrap().is_empty());
    assert!(e.backend.queue_tail("missing", 0, 10).await.is_err());
}
