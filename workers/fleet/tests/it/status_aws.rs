//! `fleet status` on the aws backend (moto): the counts come from GetQueueAttributes, the DLQ
//! is found through the queue's redrive policy, and its codes, workers and oldest age come from
//! dlq-replay's non-destructive scan: every message is still on the DLQ afterwards. What AWS
//! cannot say (the last poll; the source queue's oldest age, which moto's CloudWatch has no
//! datapoint for) is null, not guessed.

use std::process::Command;

use fleet_core::failure::FAILURE_ATTRIBUTE;
use fleet_core::ports::OutgoingMessage;
use fleet_core::{Backend, ErrorCode, FailureMetadata};
use fleet_testkit::provision::{Provisioner, QueueSetup};
use fleet_testkit::workers::binary;
use fleet_testkit::{aws_backend, moto_env, unique};

#[tokio::test]
async fn fleet_status_on_aws_shows_the_counts_and_the_dlq_depth() {
    let b = aws_backend().await;
    let p = Provisioner::new(&b);
    let dlq = p
        .create_queue(&unique("status-dlq"), QueueSetup::default())
        .await
        .unwrap();
    let dlq_arn = p.queue_arn(&dlq).await.unwrap();
    let source = p
        .create_queue(
            &unique("status-in"),
            QueueSetup {
                redrive: Some((dlq_arn, 5)),
                ..QueueSetup::default()
            },
        )
        .await
        .unwrap();
    let source_q = b.queue(&source).await.unwrap();
    for i in 0..2 {
        source_q
            .send(OutgoingMessage {
                body: format!("status {i}"),
                ..OutgoingMessage::default()
            })
            .await
            .unwrap();
    }
    // On the DLQ: one redriven by SQS (no failure attribute), two dead-lettered by hl7-ingest.
    let dlq_q = b.queue(&dlq).await.unwrap();
    dlq_q
        .send(OutgoingMessage {
            body: "redriven BODY-SECRET".into(),
            ..OutgoingMessage::default()
        })
        .await
        .unwrap();
    let failure = FailureMetadata {
        code: ErrorCode::Hl7NotAdt,
        detail: "DETAIL-SECRET".into(),
        worker: "hl7-ingest".into(),
        source_queue: source.clone(),
        first_failure: "2020-01-01T00:00:00Z".into(),
        last_failure: "2020-01-01T00:00:00Z".into(),
        receive_count: 1,
        message_id: "m".into(),
    };
    for _ in 0..2 {
        dlq_q
            .send(OutgoingMessage {
                body: "dead BODY-SECRET".into(),
                attributes: [(FAILURE_ATTRIBUTE.to_string(), failure.to_attribute())].into(),
                ..OutgoingMessage::default()
            })
            .await
            .unwrap();
    }
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("fleet.toml");
    std::fs::write(
        &file,
        format!("[backend]\nbackend = \"aws\"\n\n[hl7-ingest]\nqueue = \"{source}\"\n"),
    )
    .unwrap();

    let out = Command::new(binary("fleet"))
        .args(["status", "--config"])
        .arg(&file)
        .args(["--output", "json"])
        .envs(moto_env())
        .output()
        .unwrap();
    assert!(out.status.success(), "fleet status: {out:?}");
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(!text.contains("SECRET"), "{text}");
    let status: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(status["backend"], "aws");
    let queues = status["queues"].as_array().unwrap();
    assert_eq!(queues.len(), 1, "{status:#}");
    let q = &queues[0];
    assert_eq!(q["worker"], "hl7-ingest");
    assert_eq!(q["queue"], source.as_str());
    assert_eq!(
        (&q["visible"], &q["in_flight"]),
        (&2.into(), &0.into()),
        "{q}"
    );
    let dlq_name = dlq.rsplit('/').next().unwrap();
    assert_eq!(q["dlq"]["queue"], dlq_name, "{q}");
    assert_eq!(q["dlq"]["depth"], 3, "{q}");
    assert_eq!(
        q["dlq"]["codes"],
        serde_json::json!({ "HL7_NOT_ADT": 2, "REDRIVEN_WITHOUT_FAILURE": 1 }),
        "{q}"
    );
    assert_eq!(q["dlq"]["complete"], true, "{q}");
    let group = &q["dlq"]["groups"][0];
    assert_eq!(
        (&group["code"], &group["worker"], &group["count"]),
        (&"HL7_NOT_ADT".into(), &"hl7-ingest".into(), &2.into()),
        "{q}"
    );
    assert_eq!(
        group["inspect"],
        format!("dlq-replay --backend aws show {dlq_name} --code HL7_NOT_ADT"),
        "{q}"
    );
    assert!(q["dlq"]["oldest_message_age_secs"].is_number(), "{q}");
    assert!(q["oldest_message_age_secs"].is_null() && q["last_poll_age_secs"].is_null());
    assert_eq!(status["workers"][0]["live"], "unknown", "{status:#}");

    // Nothing was consumed: every message is back on the DLQ, visible.
    let after = dlq_q.attributes().await.unwrap();
    assert_eq!(
        (after.approximate_visible, after.approximate_in_flight),
        (3, 0),
        "the scan released what it held"
    );
}
