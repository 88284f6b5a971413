//! Issue 15, item 3: the local bus refuses a PutEvents request whose entries, sized as
//! EventBridge documents it (UTF-8 bytes of Source, DetailType, Detail and each Resources
//! entry, 14 bytes for a Time), do not add up to less than 256 KiB, as EventBridge does (one
//! ValidationException for the call), so the publisher's batching is checked locally too.

use fleet_core::Backend;
use fleet_core::ErrorKind;
use fleet_core::ports::BusEvent;
use fleet_local::LocalBackend;

const LIMIT: usize = 256 * 1024;

/// An event of exactly `size` entry bytes (a Time and one resource included).
fn event_of(size: usize) -> BusEvent {
    let (source, detail_type, resource) = ("fleet.test", "Sized", "arn:aws:s3:::b/k");
    let fixed = 14 + source.len() + detail_type.len() + resource.len() + "{\"p\":\"\"}".len();
    BusEvent {
        source: source.into(),
        detail_type: detail_type.into(),
        detail: format!("{{\"p\":\"{}\"}}", "p".repeat(size - fixed)),
        resources: vec![resource.into()],
        time: Some("2026-02-01T00:00:00Z".into()),
        trace_header: None,
    }
}

#[tokio::test]
async fn item3_local_bus_refuses_a_put_events_request_not_under_256kb() {
    let dir = tempfile::tempdir().expect("tempdir");
    let backend =
        LocalBackend::open(&dir.path().join("fleet.sqlite"), &dir.path().join("o")).expect("open");
    let bus = backend.event_bus("sizes");

    // Five entries of 60,000 bytes: each fine, together 300,000.
    let five: Vec<BusEvent> = (0..5).map(|_| event_of(60_000)).collect();
    let err = bus
        .put_events(&five)
        .await
        .expect_err("a request over 256 KiB in total is refused as a whole");
    assert_eq!(err.kind, ErrorKind::Invalid);
    assert!(err.message.contains("over the limit"), "{err}");
    assert!(backend.list_bus_events("sizes").unwrap().is_empty());

    // Exactly the limit is not below it; one byte less is accepted.
    let at = bus.put_events(&[event_of(LIMIT)]).await;
    assert_eq!(
        at.expect_err("not below the limit").kind,
        ErrorKind::Invalid
    );
    let below = bus.put_events(&[event_of(LIMIT - 1)]).await.expect("call");
    assert!(below.all_ok(), "{below:?}");

    let four: Vec<BusEvent> = (0..4).map(|_| event_of(60_000)).collect();
    assert!(bus.put_events(&four).await.expect("call").all_ok());
    assert_eq!(backend.list_bus_events("sizes").unwrap().len(), 5);
}
