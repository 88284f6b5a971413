//! End to end on moto: the real `hl7-ingest` publishes an admission; an EventBridge rule
//! routes it to the notify queue; the real `notify` renders it and publishes to an SNS topic
//! with an SQS subscription, where the notification arrives exactly once although the same
//! admission was sent twice (hl7-ingest republishes it with the same event id) and the same
//! EventBridge event is also delivered to the notify queue a second time.

use fleet_testkit::ProvisionExt as _;
use std::time::Duration;

use fleet_core::Backend;
use fleet_core::ports::OutgoingMessage;
use fleet_samples::hl7::{SamplePatient, adt};
use fleet_testkit::provision::QueueSetup;
use fleet_testkit::workers::{Worker, assert_no_phi, receive_all, send_all, wait_drained};
use fleet_testkit::{aws_backend, moto_env, unique};

fn patient() -> SamplePatient {
    SamplePatient {
        mrn: "MRN40417733".into(),
        family: "Vandersloot".into(),
        given: "Perpetua".into(),
        birth_date: "19570214".into(),
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn aws_an_admission_becomes_one_sns_notification_even_when_delivered_twice() {
    let backend = aws_backend().await;
    let p = backend.provisioner();
    let key = p.create_kms_key("notify e2e").await.unwrap();
    let setup = |redrive| QueueSetup {
        kms_key_id: Some(key.clone()),
        sqs_managed_sse: false,
        redrive,
        ..QueueSetup::default()
    };
    let with_dlq = |prefix: &'static str| {
        let setup = &setup;
        let p = &p;
        async move {
            let dlq = p
                .create_queue(&unique(&format!("{prefix}-dlq")), setup(None))
                .await
                .unwrap();
            let arn = p.queue_arn(&dlq).await.unwrap();
            let q = p
                .create_queue(&unique(prefix), setup(Some((arn, 10))))
                .await
                .unwrap();
            (q, dlq)
        }
    };
    let (hl7_queue, _hl7_dlq) = with_dlq("hl7-in").await;
    let (notify_queue, notify_dlq) = with_dlq("notify-in").await;
    let bus = unique("bus");
    p.create_bus(&bus).await.unwrap();
    p.put_rule_to_queue(
        &bus,
        &unique("admissions"),
        r#"{"source":["fleet.hl7-ingest"],"detail-type":["PatientAdmitted"]}"#,
        &notify_queue,
    )
    .await
    .unwrap();
    // A second rule copies every event to a tap, so the test can redeliver one verbatim.
    let events_tap = p
        .create_queue(&unique("events-tap"), setup(None))
        .await
        .unwrap();
    p.put_rule_to_queue(
        &bus,
        &unique("tap"),
        r#"{"source":["fleet.hl7-ingest"]}"#,
        &events_tap,
    )
    .await
    .unwrap();
    let hl7_table = unique("hl7");
    p.create_table(&hl7_table).await.unwrap();
    let notify_table = unique("notify");
    p.create_table(&notify_table).await.unwrap();
    let topic = p.create_topic(&unique("care-team")).await.unwrap();
    let inbox = p
        .create_queue(&unique("care-inbox"), setup(None))
        .await
        .unwrap();
    p.subscribe_queue(&topic, &inbox, false).await.unwrap();

    let dir = tempfile::tempdir().unwrap();
    let rules = dir.path().join("rules.toml");
    std::fs::write(
        &rules,
        format!(
            r#"
[[rule]]
name = "admissions"
destination = "{topic}"
pattern = {{ source = ["fleet.hl7-ingest"], "detail-type" = ["PatientAdmitted"] }}
fields = ["detail-type", "detail.payload.visit.location.point_of_care", "detail.payload.sending_facility"]
subject = "Admission to {{{{ event.detail.payload.visit.location.point_of_care }}}}"
body = "A patient was admitted to {{{{ event.detail.payload.visit.location.point_of_care }}}} at {{{{ event.detail.payload.sending_facility }}}}."
attributes = {{ team = "4east" }}
"#
        ),
    )
    .unwrap();

    let common = |extra: Vec<(&'static str, String)>| {
        let mut env = moto_env();
        env.extend([
            ("FLEET_EVENT_BUS", bus.clone()),
            ("FLEET_WAIT_TIME_SECS", "1".into()),
            ("FLEET_DRAIN_DEADLINE_SECS", "10".into()),
            ("FLEET_LOG", "trace".into()),
        ]);
        env.extend(extra);
        env
    };
    let mut hl7 = Worker::start(
        "hl7-ingest",
        &[],
        &common(vec![
            ("FLEET_HL7_QUEUE", hl7_queue.clone()),
            ("FLEET_HL7_TABLE", hl7_table.clone()),
        ]),
        dir.path().join("hl7.log"),
    );
    let mut notify = Worker::start(
        "notify",
        &[],
        &common(vec![
            ("FLEET_NOTIFY_QUEUE", notify_queue.clone()),
            ("FLEET_NOTIFY_TABLE", notify_table.clone()),
            ("FLEET_NOTIFY_RULES", rules.display().to_string()),
        ]),
        dir.path().join("notify.log"),
    );

    // The same admission twice: hl7-ingest republishes it with the same event id.
    let pt = patient();
    let body = adt("A01", "ADM0001", &pt, 5, 424242);
    let hl7_in = backend.queue(&hl7_queue).await.unwrap();
    send_all(hl7_in.as_ref(), [body.clone(), body].into_iter()).await;
    wait_drained(hl7_in.as_ref(), Duration::from_secs(60)).await;

    // Redeliver one of the EventBridge events verbatim, as SQS would after a lost delete.
    let tap = backend.queue(&events_tap).await.unwrap();
    let copies = receive_all(tap.as_ref(), true).await;
    assert_eq!(
        copies.len(),
        2,
        "hl7-ingest published the admission twice (a republish)"
    );
    let ids: Vec<serde_json::Value> = copies
        .iter()
        .map(|m| {
            serde_json::from_str::<serde_json::Value>(&m.body).unwrap()["detail"]["event_id"]
                .clone()
        })
        .collect();
    assert_eq!(ids[0], ids[1], "a republish keeps the event id");
    let notify_in = backend.queue(&notify_queue).await.unwrap();
    notify_in
        .send(OutgoingMessage {
            body: copies[0].body.clone(),
            ..OutgoingMessage::default()
        })
        .await
        .unwrap();
    wait_drained(notify_in.as_ref(), Duration::from_secs(60)).await;

    // Exactly one notification on the subscribed queue, rendered from allow-listed fields.
    let inbox_q = backend.queue(&inbox).await.unwrap();
    let got = receive_all(inbox_q.as_ref(), false).await;
    let (_, status) = notify.terminate(Duration::from_secs(30));
    let notify_log = notify.log_text();
    let (_, hl7_status) = hl7.terminate(Duration::from_secs(30));
    assert!(
        status.success() && hl7_status.success(),
        "notify log:\n{notify_log}"
    );
    assert_eq!(
        got.len(),
        1,
        "notifications received: {:?}",
        got.iter().map(|m| &m.body).collect::<Vec<_>>()
    );
    let env: serde_json::Value = serde_json::from_str(&got[0].body).unwrap();
    assert_eq!(env["Type"], "Notification");
    assert_eq!(env["TopicArn"], topic.as_str());
    assert_eq!(env["Subject"], "Admission to 4EAST");
    assert_eq!(
        env["Message"],
        "A patient was admitted to 4EAST at GENHOSP."
    );
    assert_eq!(env["MessageAttributes"]["team"]["Value"], "4east");
    assert_eq!(
        env["MessageAttributes"]["fleet.rule"]["Value"],
        "admissions"
    );
    assert_eq!(env["MessageAttributes"]["fleet.event_id"]["Value"], ids[0]);

    // Three deliveries, one notification: the other two were recognised as repeats.
    assert_eq!(
        notify_log.matches("already notified").count(),
        2,
        "notify log:\n{notify_log}"
    );
    let dlq = backend.queue(&notify_dlq).await.unwrap();
    assert!(
        receive_all(dlq.as_ref(), false).await.is_empty(),
        "nothing dead-lettered"
    );

    // No PHI in either worker's log, and no rendered text in notify's.
    let mut secrets = vec![
        pt.family.clone(),
        pt.given.clone(),
        pt.mrn.clone(),
        pt.birth_date.clone(),
        "1957-02-14".into(),
    ];
    assert_no_phi(&notify_log, &secrets);
    assert_no_phi(&hl7.log_text(), &secrets);
    secrets.push("A patient was admitted".into());
    assert_no_phi(&notify_log, &secrets);
}
