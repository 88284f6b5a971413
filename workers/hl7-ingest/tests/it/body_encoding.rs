//! Issue 17: bodies from the MLLP gateway. The gateway forwards HL7 bytes unchanged; bytes SQS
//! cannot carry as text (ISO 8859-1, control characters) arrive base64-encoded with the
//! `fleet.body-encoding` attribute, which hl7-ingest decodes before parsing. A message must give
//! the same records and event whether it came plain or base64 (a resend after a lost ACK may
//! come either way), and a body the attribute does not describe is dead-lettered as
//! `BODY_ENCODING` without quoting it.

use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine as _;
use base64::prelude::BASE64_STANDARD;
use clap::Parser;
use fleet_core::ports::{BODY_ENCODING_ATTRIBUTE, BODY_ENCODING_BASE64};
use fleet_core::{AttributeValue, Backend, ErrorCode, FailureMetadata, OutgoingMessage};
use fleet_hl7::MapConfig;
use fleet_local::{LocalBackend, QueueSpec};
use fleet_runtime::testing::delivery;
use fleet_runtime::{Delivery, EventPublisher, Failure, Handler, Outcome};
use fleet_samples::hl7::{self as samples, SamplePatient};
use hl7_ingest::WorkerConfig;
use hl7_ingest::events::PhiPolicy;
use hl7_ingest::handler::Hl7Handler;
use sha2::{Digest, Sha256};
use tokio_util::sync::CancellationToken;

fn setup(dir: &std::path::Path, map: MapConfig) -> (LocalBackend, Hl7Handler) {
    let local = LocalBackend::open(&dir.join("db.sqlite"), &dir.join("objects")).unwrap();
    let backend: Arc<dyn Backend> = Arc::new(local.clone());
    let handler = Hl7Handler::new(
        backend.records("hl7"),
        EventPublisher::new(backend.event_bus("bus"), Duration::from_millis(1)),
        map,
        PhiPolicy::Full,
    );
    (local, handler)
}

fn patient() -> SamplePatient {
    SamplePatient {
        mrn: "MRN5550001".into(),
        family: "Quillfeather".into(),
        given: "Rosalind".into(),
        birth_date: "19610412".into(),
    }
}

/// An A01 in ISO 8859-1 (MSH-18 `8859/1`) for a patient named Renée Blériot: each `é` is the
/// single byte 0xE9, so the bytes are not UTF-8 and the gateway must send them base64.
fn latin1_admit() -> Vec<u8> {
    let p = SamplePatient {
        mrn: "MRN5550002".into(),
        family: "Bl\u{e9}riot".into(),
        given: "Ren\u{e9}e".into(),
        birth_date: "19720203".into(),
    };
    let text = samples::adt("A01", "L1", &p, 5, 1);
    let msh_end = "|AL|NE\r";
    assert!(text.contains(msh_end), "the sample's MSH changed");
    let text = text.replacen(msh_end, "|AL|NE||8859/1\r", 1);
    let bytes: Vec<u8> = text
        .chars()
        .map(|c| u8::try_from(u32::from(c)).expect("a Latin-1 character"))
        .collect();
    assert!(bytes.contains(&0xE9));
    assert!(std::str::from_utf8(&bytes).is_err());
    assert_eq!(fleet_core::sqs_safe_text(&bytes), None);
    bytes
}

/// A delivery of `bytes` as the gateway sends what SQS cannot take as text.
fn base64_delivery(bytes: &[u8]) -> Delivery {
    with_encoding(
        delivery(BASE64_STANDARD.encode(bytes)),
        AttributeValue::string(BODY_ENCODING_BASE64),
    )
}

fn with_encoding(mut d: Delivery, value: AttributeValue) -> Delivery {
    d.attributes.insert(BODY_ENCODING_ATTRIBUTE.into(), value);
    d
}

fn hex_sha256(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .fold(String::new(), |mut hex, b| {
            use std::fmt::Write as _;
            let _ = write!(hex, "{b:02x}");
            hex
        })
}

/// PHI of the samples; no failure detail may quote any of it.
const PHI: &[&str] = &[
    "Quillfeather",
    "Rosalind",
    "MRN5550001",
    "19610412",
    "Bl\u{e9}riot",
    "MRN5550002",
];

fn assert_body_encoding(outcome: Outcome, body: &str, case: &str) {
    let Outcome::Failed(Failure::Permanent { code, detail }) = outcome else {
        panic!("{case}: not dead-lettered: {outcome:?}");
    };
    assert_eq!(code, ErrorCode::BodyEncoding, "{case}: {detail}");
    for phi in PHI {
        assert!(
            !detail.contains(phi),
            "{case}: the detail quotes PHI: {detail}"
        );
    }
    // No run of the body (10 bytes or more) appears in the detail.
    let body = body.as_bytes();
    for window in body.windows(10.min(body.len())) {
        assert!(
            !detail.as_bytes().windows(window.len()).any(|w| w == window),
            "{case}: the detail quotes the body: {detail}"
        );
    }
}

#[tokio::test]
async fn a_latin1_message_sent_base64_is_stored_with_its_name_decoded() {
    let dir = tempfile::tempdir().unwrap();
    let (local, handler) = setup(dir.path(), MapConfig::default());
    let bytes = latin1_admit();
    assert_eq!(
        handler.handle(&base64_delivery(&bytes)).await,
        Outcome::Done
    );
    let records = local.table_records("hl7").unwrap();
    let patient = records
        .iter()
        .find(|r| r.sk == "PATIENT")
        .expect("patient record");
    let name = &patient.data["patient"]["name"];
    assert_eq!(name["family"], "Bl\u{e9}riot", "{name}");
    assert_eq!(name["given"], "Ren\u{e9}e", "{name}");
    // The content hash is over the message's own bytes, not over their base64 form.
    let event = records.iter().find(|r| r.sk == "EVENT").expect("event");
    assert_eq!(event.data["content_sha256"], hex_sha256(&bytes));
    let published = local.list_bus_events("bus").unwrap();
    assert_eq!(published.len(), 1);
    assert_eq!(
        published[0]["detail"]["payload"]["patient"]["name"]["family"],
        "Bl\u{e9}riot"
    );
}

/// What `deliveries` leave behind: every record, and each published event's detail.
async fn after(deliveries: Vec<Delivery>) -> (Vec<fleet_core::Record>, Vec<serde_json::Value>) {
    let dir = tempfile::tempdir().unwrap();
    let (local, handler) = setup(dir.path(), MapConfig::default());
    for d in &deliveries {
        assert_eq!(handler.handle(d).await, Outcome::Done);
    }
    let events = local
        .list_bus_events("bus")
        .unwrap()
        .into_iter()
        .map(|e| e["detail"].clone())
        .collect();
    (local.table_records("hl7").unwrap(), events)
}

/// The issue's "hl7-ingest must give the same result either way": a message sent twice (a
/// resend after a lost ACK) plain both times, base64 both times, or once each in either order
/// leaves the same records (one event record, one patient, one encounter) and publishes the
/// same event with one event id both times.
#[tokio::test]
async fn a_message_sent_twice_plain_or_base64_in_any_mix_gives_one_record_set_and_one_event() {
    let body = samples::adt("A01", "C1", &patient(), 5, 1);
    let plain = || delivery(body.clone());
    let encoded = || base64_delivery(body.as_bytes());
    let (records, events) = after(vec![plain(), plain()]).await;
    assert_eq!(
        records.iter().map(|r| r.sk.as_str()).collect::<Vec<_>>(),
        ["ENCOUNTER", "EVENT", "PATIENT"],
        "one record set"
    );
    assert_eq!(events.len(), 2, "the redelivery republishes");
    assert_eq!(events[0], events[1], "one event, one event id");
    for (mix, deliveries) in [
        ("plain then base64", vec![plain(), encoded()]),
        ("base64 then plain", vec![encoded(), plain()]),
        ("base64 twice", vec![encoded(), encoded()]),
    ] {
        let (r, e) = after(deliveries).await;
        assert_eq!(r, records, "{mix}: the records differ from plain twice");
        assert_eq!(e, events, "{mix}: the events differ from plain twice");
    }
}

/// The message size limit (`max_message_bytes`) applies to each decoded message: a base64 body
/// is a third larger than the message it carries, and that must not change the answer.
#[tokio::test]
async fn the_message_size_limit_counts_the_decoded_bytes() {
    let body = samples::adt("A01", "C1", &patient(), 5, 1);
    for (limit, fits) in [(body.len(), true), (body.len() - 1, false)] {
        let map = MapConfig {
            max_message_bytes: limit,
            ..MapConfig::default()
        };
        let dir = tempfile::tempdir().unwrap();
        let (_local, handler) = setup(dir.path(), map);
        let encoded = base64_delivery(body.as_bytes());
        assert!(encoded.body.len() > limit);
        for d in [delivery(body.clone()), encoded] {
            let outcome = handler.handle(&d).await;
            if fits {
                assert_eq!(outcome, Outcome::Done, "limit {limit}");
            } else {
                let Outcome::Failed(Failure::Permanent { code, .. }) = outcome else {
                    panic!("limit {limit}: {outcome:?}");
                };
                assert_eq!(code, ErrorCode::BodyTooLarge, "limit {limit}");
            }
        }
    }
}

#[tokio::test]
async fn a_body_that_is_not_padded_standard_base64_is_dead_lettered_as_body_encoding() {
    let dir = tempfile::tempdir().unwrap();
    let (local, handler) = setup(dir.path(), MapConfig::default());
    let plain = samples::adt("A01", "C1", &patient(), 5, 1);
    let encoded = BASE64_STANDARD.encode(plain.as_bytes());
    // Padding appears when the length is not a multiple of 3; a trailing CR (a valid segment
    // end) makes it so when the sample's is.
    let padded = BASE64_STANDARD.encode(match plain.len() % 3 {
        0 => format!("{plain}\r"),
        _ => plain.clone(),
    });
    let unpadded = padded.trim_end_matches('=').to_string();
    assert_ne!(unpadded, padded);
    let url_safe = encoded.replace('+', "-").replace('/', "_");
    let mut cases = vec![
        ("plain HL7 marked base64", plain.clone()),
        ("base64 without its padding", unpadded),
        (
            "base64 with a line break",
            format!("{}\n{}", &encoded[..76], &encoded[76..]),
        ),
    ];
    if url_safe != encoded {
        cases.push(("the URL-safe alphabet", url_safe));
    }
    for (case, body) in cases {
        let d = with_encoding(
            delivery(body.clone()),
            AttributeValue::string(BODY_ENCODING_BASE64),
        );
        assert_body_encoding(handler.handle(&d).await, &body, case);
    }
    assert!(local.table_records("hl7").unwrap().is_empty());
    assert!(local.list_bus_events("bus").unwrap().is_empty());
}

#[tokio::test]
async fn an_unknown_body_encoding_is_dead_lettered_as_body_encoding() {
    let dir = tempfile::tempdir().unwrap();
    let (local, handler) = setup(dir.path(), MapConfig::default());
    let plain = samples::adt("A01", "C1", &patient(), 5, 1);
    let encoded = BASE64_STANDARD.encode(plain.as_bytes());
    for (case, body, value) in [
        ("gzip", plain.clone(), AttributeValue::string("gzip")),
        ("Base64", encoded.clone(), AttributeValue::string("Base64")),
        ("empty", plain.clone(), AttributeValue::string("")),
        (
            "a Binary attribute",
            encoded.clone(),
            AttributeValue::binary(b"base64".to_vec()),
        ),
        (
            "a value quoting PHI",
            plain.clone(),
            AttributeValue::string("Quillfeather MRN5550001"),
        ),
    ] {
        let d = with_encoding(delivery(body.clone()), value);
        assert_body_encoding(handler.handle(&d).await, &body, case);
    }
    assert!(local.table_records("hl7").unwrap().is_empty());
    assert!(local.list_bus_events("bus").unwrap().is_empty());
}

#[derive(Debug, Parser)]
#[command(no_binary_name = true)]
struct Flags {
    #[command(flatten)]
    worker: WorkerConfig,
}

/// The whole worker on the local backend: the runtime resolves a claim check before the
/// handler decodes, so a base64 body the gateway offloaded to S3 (the object holds the base64
/// text, the pointer message carries the attribute) is handled like an inline one; a body the
/// attribute does not describe is dead-lettered as `BODY_ENCODING`, its attribute kept for a
/// replay.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn through_the_worker_inline_and_offloaded_base64_bodies_are_decoded() {
    let dir = tempfile::tempdir().unwrap();
    let local =
        LocalBackend::open(&dir.path().join("db.sqlite"), &dir.path().join("objects")).unwrap();
    let kms = Some("alias/fleet-test".to_string());
    local
        .create_queue(
            "hl7-dlq",
            QueueSpec {
                kms_key_id: kms.clone(),
                ..QueueSpec::default()
            },
        )
        .unwrap();
    local
        .create_queue(
            "hl7",
            QueueSpec {
                kms_key_id: kms,
                redrive: Some(("hl7-dlq".into(), 5)),
                ..QueueSpec::default()
            },
        )
        .unwrap();
    let encoding = |v: &str| {
        (
            BODY_ENCODING_ATTRIBUTE.to_string(),
            AttributeValue::string(v),
        )
    };

    // Inline: the ISO 8859-1 admission.
    let latin1 = BASE64_STANDARD.encode(latin1_admit());
    // Offloaded: another admission's base64 text in S3, the pointer marked base64.
    let offloaded = BASE64_STANDARD.encode(samples::adt("A01", "C7", &patient(), 7, 2));
    local
        .objects("offload")
        .put("mllp/1", offloaded.clone().into_bytes(), "text/plain")
        .await
        .unwrap();
    let pointer = r#"["software.amazon.payloadoffloading.PayloadS3Pointer",{"s3BucketName":"offload","s3Key":"mllp/1"}]"#;
    // Refused: an encoding nobody defined.
    let refused = samples::adt("A01", "C8", &patient(), 8, 3);
    let queue = local.queue("hl7").await.unwrap();
    for (body, attributes) in [
        (latin1, vec![encoding(BODY_ENCODING_BASE64)]),
        (
            pointer.to_string(),
            vec![
                encoding(BODY_ENCODING_BASE64),
                (
                    "ExtendedPayloadSize".into(),
                    AttributeValue::number(offloaded.len()),
                ),
            ],
        ),
        (refused.clone(), vec![encoding("gzip")]),
    ] {
        queue
            .send(OutgoingMessage {
                body,
                attributes: attributes.into_iter().collect(),
                ..OutgoingMessage::default()
            })
            .await
            .unwrap();
    }

    let config = Flags::try_parse_from([
        "--queue=hl7",
        "--event-bus=bus",
        "--table=hl7",
        "--wait-time-secs=1",
        "--claim-check-buckets=offload",
    ])
    .unwrap()
    .worker;
    let shutdown = CancellationToken::new();
    let worker = tokio::spawn(hl7_ingest::run(
        config,
        Arc::new(local.clone()),
        shutdown.clone(),
    ));
    let deadline = Instant::now() + Duration::from_secs(30);
    while !local.queue_messages_snapshot("hl7").unwrap().is_empty() {
        assert!(Instant::now() < deadline, "the queue did not drain");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    shutdown.cancel();
    let report = worker.await.unwrap().unwrap();
    assert_eq!(report.claim_checks_resolved, 1, "{report:?}");

    let records = local.table_records("hl7").unwrap();
    let control_ids: Vec<&str> = records
        .iter()
        .filter(|r| r.sk == "EVENT")
        .filter_map(|r| r.data["control_id"].as_str())
        .collect();
    assert_eq!(control_ids.len(), 2, "{control_ids:?}");
    assert!(control_ids.contains(&"L1") && control_ids.contains(&"C7"));
    let latin1_patient = records
        .iter()
        .find(|r| r.sk == "PATIENT" && r.data["last_control_id"] == "L1")
        .expect("the ISO 8859-1 patient");
    assert_eq!(
        latin1_patient.data["patient"]["name"]["family"],
        "Bl\u{e9}riot"
    );

    let dead = local.queue_messages_snapshot("hl7-dlq").unwrap();
    assert_eq!(dead.len(), 1, "dead-lettered: {dead:?}");
    assert_eq!(dead[0].body, refused);
    assert_eq!(
        dead[0].attributes[BODY_ENCODING_ATTRIBUTE].as_str(),
        Some("gzip"),
        "the DLQ copy lost the attribute a replay needs"
    );
    let failure = FailureMetadata::from_attributes(&dead[0].attributes).expect("failure");
    assert_eq!(failure.code, ErrorCode::BodyEncoding);
}
