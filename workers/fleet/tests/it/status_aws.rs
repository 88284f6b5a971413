//! `fleet status` on the aws backend (moto): the counts come from GetQueueAttributes and the
//! DLQ is found through the queue's redrive policy; the fields only the local backend can
//! answer without receiving (DLQ codes, oldest message age, last poll) are null, not guessed.

use std::process::Command;

use fleet_core::Backend;
use fleet_core::ports::OutgoingMessage;
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
    for (url, n) in [(&source, 2), (&dlq, 1)] {
        let q = b.queue(url).await.unwrap();
        for i in 0..n {
            q.send(OutgoingMessage {
                body: format!("status {i}"),
                ..OutgoingMessage::default()
            })
            .await
            .unwrap();
        }
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
    let status: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let queues = status.as_array().unwrap();
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
    assert_eq!(q["dlq"]["depth"], 1, "{q}");
    assert!(q["dlq"]["codes"].is_null(), "{q}");
    assert!(q["oldest_message_age_secs"].is_null() && q["last_poll_age_secs"].is_null());
}
