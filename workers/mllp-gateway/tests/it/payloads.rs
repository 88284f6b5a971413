//! What reaches the queue: a body SQS cannot carry as text goes base64 with the attribute that
//! says so; a body too large for the queue goes to the claim-check bucket in the SQS Extended
//! Client format, or is refused (AE) when no bucket is configured.

use std::sync::Arc;

use base64::Engine as _;
use fleet_core::ports::{BODY_ENCODING_ATTRIBUTE, BODY_ENCODING_BASE64};
use fleet_runtime::claim_check::{POINTER_CLASS, SIZE_ATTRIBUTES};

use crate::common::{Local, Running, config};

/// An ISO 8859-1 message (MSH-18 8859/1) with bytes that are not UTF-8.
fn latin1(control: &str) -> Vec<u8> {
    let mut m = format!(
        "MSH|^~\\&|EPICADT|NORTH|FLEET|FLEET|20260315101500-0500||ADT^A01^ADT_A01|{control}|P|2.5.1||||||8859/1\r\
         EVN|A01|20260315101500\r\
         PID|1||MRN4821736^^^NORTH^MR||Quillfeather^"
    )
    .into_bytes();
    m.extend_from_slice(b"Ren\xE9e^Q||19530714|F\rNTE|1||caf\xE9 \xB1 \xBD");
    m
}

/// An ADT message of at least `size` bytes (a long NTE).
fn large(control: &str, size: usize) -> String {
    let mut m = format!("{}\rNTE|1||", crate::common::adt(control, "NORTH"));
    let filler = size.saturating_sub(m.len());
    m.extend(std::iter::repeat_n('z', filler));
    m
}

/// A non-UTF-8 body is queued base64 with `fleet.body-encoding=base64`; it decodes to the
/// bytes sent, every one.
#[tokio::test]
async fn a_latin1_message_is_queued_base64_and_its_bytes_round_trip() {
    let local = Local::new();
    let gw = Running::start(config(&[]), Arc::new(local.backend.clone())).await;
    let mut conn = gw.connect().await;
    let message = latin1("LAT1");
    assert!(std::str::from_utf8(&message).is_err());
    let ack = conn.exchange(&message).await;
    assert_eq!((ack.code.as_str(), ack.control_id.as_str()), ("AA", "LAT1"));
    let queued = local.queued();
    assert_eq!(queued.len(), 1);
    assert_eq!(
        queued[0].attributes[BODY_ENCODING_ATTRIBUTE].as_str(),
        Some(BODY_ENCODING_BASE64)
    );
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(&queued[0].body)
        .expect("the body is base64");
    assert_eq!(decoded, message);
    gw.stop().await;
}

/// A message above the queue's MaximumMessageSize (256 KiB locally) with a claim-check bucket:
/// the queue holds an SQS Extended Client pointer and its size attribute, the object holds the
/// message.
#[tokio::test]
async fn a_message_too_large_for_the_queue_goes_to_the_claim_check_bucket() {
    let local = Local::new();
    let gw = Running::start(
        config(&["--claim-check-bucket", "hl7-claims"]),
        Arc::new(local.backend.clone()),
    )
    .await;
    let mut conn = gw.connect().await;
    let message = large("BIG1", 300 * 1024);
    let ack = conn.exchange(message.as_bytes()).await;
    assert_eq!((ack.code.as_str(), ack.control_id.as_str()), ("AA", "BIG1"));
    let queued = local.queued();
    assert_eq!(queued.len(), 1);
    let pointer: serde_json::Value =
        serde_json::from_str(&queued[0].body).expect("the body is a JSON pointer");
    assert_eq!(pointer[0], POINTER_CLASS, "{pointer}");
    assert_eq!(pointer[1]["s3BucketName"], "hl7-claims", "{pointer}");
    let key = pointer[1]["s3Key"].as_str().expect("s3Key");
    assert_eq!(
        queued[0].attributes[SIZE_ATTRIBUTES[0]].as_str(),
        Some(message.len().to_string().as_str())
    );
    let (object, _) = fleet_core::Backend::objects(&local.backend, "hl7-claims")
        .get(key)
        .await
        .unwrap()
        .expect("the claim-check object exists");
    assert_eq!(object, message.as_bytes());
    gw.stop().await;
}

/// The same message without a bucket: AE with ERR 207, nothing queued.
#[tokio::test]
async fn a_message_too_large_for_the_queue_without_a_bucket_is_answered_ae() {
    let local = Local::new();
    let gw = Running::start(config(&[]), Arc::new(local.backend.clone())).await;
    let mut conn = gw.connect().await;
    let ack = conn.exchange(large("BIG2", 300 * 1024).as_bytes()).await;
    assert_eq!(
        (
            ack.code.as_str(),
            ack.control_id.as_str(),
            ack.error_code.as_deref()
        ),
        ("AE", "BIG2", Some("207")),
        "{ack:?}"
    );
    assert!(local.queued().is_empty());
    gw.stop().await;
}

/// A FIFO queue: MessageGroupId is the sending facility, and a resend of the same message
/// (its ACK lost) is ACKed again while the deduplication id keeps it to one copy; the same
/// control id with other content is a new message.
#[tokio::test]
async fn a_resend_to_a_fifo_queue_is_acked_again_and_queued_once() {
    let local = Local::new();
    let fifo = "hl7-inbound.fifo";
    local
        .backend
        .create_queue(
            fifo,
            fleet_local::QueueSpec {
                fifo: true,
                ..fleet_local::QueueSpec::default()
            },
        )
        .unwrap();
    let route = format!("ADT^*={fifo}");
    let gw = Running::start(
        config(&["--route", &route]),
        Arc::new(local.backend.clone()),
    )
    .await;
    let mut conn = gw.connect().await;
    let message = crate::common::adt("FIFO1", "NORTH");
    for _ in 0..2 {
        let ack = conn.exchange(message.as_bytes()).await;
        assert_eq!(
            (ack.code.as_str(), ack.control_id.as_str()),
            ("AA", "FIFO1")
        );
    }
    let corrected = message.replace("Rosalind", "Wilhelmina");
    assert_eq!(conn.exchange(corrected.as_bytes()).await.code, "AA");
    let queued = local.backend.queue_messages_snapshot(fifo).unwrap();
    let bodies: Vec<&str> = queued.iter().map(|m| m.body.as_str()).collect();
    assert_eq!(bodies, [message.as_str(), corrected.as_str()]);
    assert!(
        queued
            .iter()
            .all(|m| m.group_id.as_deref() == Some("NORTH")),
        "{queued:?}"
    );
    gw.stop().await;
}
