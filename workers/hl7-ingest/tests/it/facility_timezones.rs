//! Issue 15, item 9: time zones per sending facility. A multi-facility feed sends local times
//! without an offset; each facility's times are read in its own zone (`--facility-timezone`),
//! the rest in the default zone (`--timezone`), and a bad zone map refuses the worker at start.

use std::sync::Arc;
use std::time::Duration;

use clap::Parser;
use fleet_core::Backend;
use fleet_local::LocalBackend;
use fleet_runtime::testing::delivery;
use fleet_runtime::{EventPublisher, Handler, Outcome};
use fleet_samples::hl7::{self as samples, SamplePatient};
use hl7_ingest::WorkerConfig;
use hl7_ingest::events::PhiPolicy;
use hl7_ingest::handler::Hl7Handler;
use tokio_util::sync::CancellationToken;

/// The worker's flags as a whole command line (what the binary and `fleet.toml` parse).
#[derive(Debug, Parser)]
#[command(no_binary_name = true)]
struct Flags {
    #[command(flatten)]
    worker: WorkerConfig,
}

fn parse(args: &[&str]) -> Result<WorkerConfig, clap::Error> {
    Flags::try_parse_from(args).map(|f| f.worker)
}

/// The same local time (no offset in MSH-7) sent by `facility`.
fn admit_from(facility: &str, control_id: &str, n: usize) -> String {
    let p = SamplePatient {
        mrn: format!("MRN55500{n:02}"),
        family: "Quillfeather".into(),
        given: "Rosalind".into(),
        birth_date: "19610412".into(),
    };
    let body = samples::adt_at("A01", control_id, &p, "20260315083000", n);
    let msh = "|GENHOSP|FLEET|FLEET|20260315083000-0500|";
    assert!(body.contains(msh), "the sample's MSH changed");
    body.replacen(msh, &format!("|{facility}|FLEET|FLEET|20260315083000|"), 1)
}

/// Runs one admit from each facility through the handler; returns, per facility, the event
/// record's `order` (epoch ms), its `message_time` and the published event's `occurred_at`.
async fn instants(config: &WorkerConfig, facilities: &[&str]) -> Vec<(i64, String, String)> {
    let dir = tempfile::tempdir().unwrap();
    let local =
        LocalBackend::open(&dir.path().join("db.sqlite"), &dir.path().join("objects")).unwrap();
    let backend: Arc<dyn Backend> = Arc::new(local.clone());
    let handler = Hl7Handler::new(
        backend.records("hl7"),
        EventPublisher::new(backend.event_bus("bus"), Duration::from_millis(1)),
        config.map_config().expect("a valid zone map"),
        PhiPolicy::Minimal,
    );
    let mut out = Vec::new();
    for (n, facility) in facilities.iter().enumerate() {
        let control_id = format!("C{n}");
        let outcome = handler
            .handle(&delivery(admit_from(facility, &control_id, n)))
            .await;
        assert_eq!(outcome, Outcome::Done, "{facility}");
        let records = local.table_records("hl7").unwrap();
        let event = records
            .iter()
            .find(|r| r.sk == "EVENT" && r.data["control_id"] == control_id.as_str())
            .expect("event record");
        let published = local.list_bus_events("bus").unwrap();
        let detail = &published.last().expect("an event")["detail"];
        assert_eq!(detail["payload"]["sending_facility"], *facility);
        out.push((
            event.order,
            event.data["message_time"].as_str().unwrap().to_string(),
            detail["occurred_at"].as_str().unwrap().to_string(),
        ));
    }
    out
}

#[tokio::test]
async fn item9_times_without_offset_are_read_in_the_sending_facilitys_zone() {
    let facilities = ["NORTH", "WEST", "ELSEWHERE"];
    let mapped = parse(&[
        "--timezone=America/New_York",
        "--facility-timezone=NORTH=Europe/Oslo",
        "--facility-timezone",
        "WEST = America/Los_Angeles",
    ])
    .unwrap();
    let got = instants(&mapped, &facilities).await;
    // 08:30 local on 15 March 2026: Oslo is on CET (+01:00), Los Angeles and New York are on
    // daylight time already (-07:00, -04:00); ELSEWHERE is unmapped and takes the default.
    let expected = [
        (1_773_559_800_000, "2026-03-15T08:30:00+01:00"), // 07:30Z
        (1_773_588_600_000, "2026-03-15T08:30:00-07:00"), // 15:30Z
        (1_773_577_800_000, "2026-03-15T08:30:00-04:00"), // 12:30Z
    ];
    for ((facility, (order, message_time, occurred_at)), (ms, text)) in
        facilities.iter().zip(&got).zip(expected)
    {
        assert_eq!(*order, ms, "{facility}: record order (epoch ms)");
        assert_eq!(message_time, text, "{facility}: record message_time");
        assert_eq!(occurred_at, text, "{facility}: event occurred_at");
    }

    // The same messages with only a default zone (the one setting there was before): every
    // facility's 08:30 is the same instant, which misorders a multi-facility feed.
    let default_only = parse(&["--timezone=America/New_York"]).unwrap();
    let single = instants(&default_only, &facilities).await;
    assert!(
        single.iter().all(|i| i.0 == 1_773_577_800_000),
        "{single:?}"
    );
}

#[tokio::test]
async fn item9_an_invalid_zone_or_malformed_pair_in_the_facility_map_is_refused_at_start() {
    // Refused by the flag parser (the binary and fleet.toml both parse with it), naming the
    // bad entry; several pairs in one value (the environment variable's form) are split first.
    for (value, named) in [
        (
            "NORTH=Europe/Olso",
            "\"Europe/Olso\" is not an IANA time zone",
        ),
        ("NORTH", "expected FACILITY=ZONE"),
        ("=Europe/Oslo", "no FACILITY before '='"),
        ("NORTH=", "\"\" is not an IANA time zone"),
        (
            "NORTH=Europe/Oslo,WEST=Nowhere/City",
            "\"Nowhere/City\" is not an IANA time zone",
        ),
    ] {
        let e = parse(&["--facility-timezone", value]).unwrap_err();
        let text = e.to_string();
        assert_eq!(e.kind(), clap::error::ErrorKind::ValueValidation, "{text}");
        assert!(text.contains(named), "{value}: {text}");
    }
    let bad_entry = parse(&["--facility-timezone=NORTH=Europe/Oslo,WEST=Nowhere/City"])
        .unwrap_err()
        .to_string();
    assert!(bad_entry.contains("'WEST=Nowhere/City'"), "{bad_entry}");

    // One facility given two zones: the worker refuses to start before reading its queue.
    let twice = parse(&[
        "--queue=hl7-inbound",
        "--event-bus=bus",
        "--table=hl7",
        "--facility-timezone=NORTH=Europe/Oslo",
        "--facility-timezone=NORTH=UTC",
    ])
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let local =
        LocalBackend::open(&dir.path().join("db.sqlite"), &dir.path().join("objects")).unwrap();
    let e = Box::pin(hl7_ingest::run(
        twice,
        Arc::new(local),
        CancellationToken::new(),
    ))
    .await
    .unwrap_err();
    assert!(format!("{e:#}").contains("\"NORTH\""), "{e:#}");
}
