//! The `AWSTraceHeader` of the local backend (issue 20): the bus gives the messages its rules
//! route the entry's trace header, as EventBridge does for an SQS target; a plain send has none;
//! a database file made before the column existed gets it when opened.

use std::time::Duration;

use fleet_core::Backend;
use fleet_core::ports::{BusEvent, OutgoingMessage};
use fleet_local::{LocalBackend, QueueSpec};

const HEADER: &str = "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1";

fn event(trace_header: Option<&str>) -> BusEvent {
    BusEvent {
        source: "fleet.test".into(),
        detail_type: "Traced".into(),
        detail: r#"{"n":1}"#.into(),
        resources: vec![],
        time: None,
        trace_header: trace_header.map(str::to_string),
    }
}

fn provision(local: &LocalBackend) {
    local.create_queue("routed", QueueSpec::default()).unwrap();
    local
        .put_rule("bus", "all", r#"{"source":["fleet.test"]}"#, "routed")
        .unwrap();
}

#[tokio::test]
async fn routed_messages_carry_the_entry_s_trace_header_and_plain_sends_none() {
    let dir = tempfile::tempdir().unwrap();
    let local = LocalBackend::open(&dir.path().join("f.sqlite"), &dir.path().join("o")).unwrap();
    provision(&local);
    let bus = local.event_bus("bus");
    assert!(
        bus.put_events(&[event(Some(HEADER)), event(None)])
            .await
            .unwrap()
            .all_ok()
    );
    let queue = local.queue("routed").await.unwrap();
    queue
        .send(OutgoingMessage {
            body: "plain".into(),
            ..OutgoingMessage::default()
        })
        .await
        .unwrap();
    let got = queue.receive(10, Duration::ZERO, None).await.unwrap();
    let headers: Vec<Option<&str>> = got.iter().map(|m| m.trace_header.as_deref()).collect();
    assert_eq!(headers, vec![Some(HEADER), None, None]);
}

#[tokio::test]
async fn a_file_from_before_the_trace_header_column_is_upgraded_on_open() {
    let dir = tempfile::tempdir().unwrap();
    let (db, objects) = (dir.path().join("f.sqlite"), dir.path().join("o"));
    {
        let local = LocalBackend::open(&db, &objects).unwrap();
        provision(&local);
        local
            .queue("routed")
            .await
            .unwrap()
            .send(OutgoingMessage {
                body: "from before".into(),
                ..OutgoingMessage::default()
            })
            .await
            .unwrap();
    }
    // The schema as it was: no trace_header column.
    let conn = rusqlite::Connection::open(&db).unwrap();
    conn.execute_batch("ALTER TABLE messages DROP COLUMN trace_header")
        .unwrap();
    drop(conn);

    let local = LocalBackend::open(&db, &objects).unwrap();
    let bus = local.event_bus("bus");
    assert!(
        bus.put_events(&[event(Some(HEADER))])
            .await
            .unwrap()
            .all_ok()
    );
    let got = local
        .queue("routed")
        .await
        .unwrap()
        .receive(10, Duration::ZERO, None)
        .await
        .unwrap();
    let seen: Vec<(&str, Option<&str>)> = got
        .iter()
        .map(|m| (m.body.as_str(), m.trace_header.as_deref()))
        .collect();
    assert_eq!(seen[0], ("from before", None));
    assert_eq!(seen[1].1, Some(HEADER));
}
