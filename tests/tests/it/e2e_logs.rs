//! What the logs of a real worker may hold, whatever the operator asks of them (issue 16
//! item 5): a `FLEET_LOG` directive naming an SDK or HTTP module more precisely than the
//! library caps (`aws_smithy_runtime::client::orchestrator=trace`) must not bring request and
//! response bodies, and with them patients, into the log.

use std::time::Duration;

use fleet_core::Backend;
use fleet_samples::hl7 as samples;
use fleet_testkit::ProvisionExt as _;
use fleet_testkit::provision::QueueSetup;
use fleet_testkit::workers::{Worker, assert_no_phi, sample_secrets, send_all, wait_drained};
use fleet_testkit::{aws_backend, moto_env, unique};

/// Directives that name the SDK's orchestrator (which traces every request and response it
/// sends and receives), the runtime API, the HTTP client and hyper, each above `info`.
const BODY_CARRYING_DIRECTIVES: &str = "trace,aws_smithy_runtime=trace,\
     aws_smithy_runtime::client::orchestrator=trace,aws_smithy_runtime_api=trace,\
     aws_smithy_http_client=trace,aws_sdk_sqs=trace,hyper=trace,hyper_util=trace";

#[tokio::test(flavor = "multi_thread")]
async fn item5_sdk_trace_directives_never_put_a_patient_into_the_log() {
    let backend = aws_backend().await;
    let p = backend.provisioner();
    let key = p.create_kms_key("item5 log caps").await.unwrap();
    let setup = |redrive| QueueSetup {
        visibility_timeout: Duration::from_secs(30),
        kms_key_id: Some(key.clone()),
        redrive,
        ..QueueSetup::default()
    };
    let dlq = p
        .create_queue(&unique("item5-dlq"), setup(None))
        .await
        .unwrap();
    let dlq_arn = p.queue_arn(&dlq).await.unwrap();
    let source = p
        .create_queue(&unique("item5-in"), setup(Some((dlq_arn, 5))))
        .await
        .unwrap();
    let bus = unique("item5-bus");
    p.create_bus(&bus).await.unwrap();
    let table = unique("item5");
    p.create_table(&table).await.unwrap();

    // Well-formed ADT messages, each naming a synthetic patient: the worker receives them
    // (the SQS response carries the bodies) and writes records and events of them.
    let set = samples::generate(51, 3, 0);
    let queue = backend.queue(&source).await.unwrap();
    send_all(queue.as_ref(), set.iter().map(|s| s.body.clone())).await;

    let dir = tempfile::tempdir().unwrap();
    let mut env = moto_env();
    env.extend([
        ("FLEET_HL7_QUEUE", source.clone()),
        ("FLEET_EVENT_BUS", bus.clone()),
        ("FLEET_HL7_TABLE", table.clone()),
        ("FLEET_PHI_POLICY", "full".into()),
        ("FLEET_WAIT_TIME_SECS", "1".into()),
        ("FLEET_DRAIN_DEADLINE_SECS", "10".into()),
        ("FLEET_LOG", BODY_CARRYING_DIRECTIVES.into()),
    ]);
    let mut worker = Worker::start("hl7-ingest", &[], &env, dir.path().join("worker.log"));
    wait_drained(queue.as_ref(), Duration::from_secs(60)).await;
    let (_, status) = worker.terminate(Duration::from_secs(20));
    let log = worker.log_text();
    assert!(status.success(), "worker exit {status}");
    // The directives were honoured where they may be: the worker's own trace output is there,
    // and so is the libraries' output up to info.
    assert!(
        log.contains("run finished"),
        "the worker did not finish its run normally"
    );
    assert!(
        log.lines().any(|l| l.contains("\"level\":\"TRACE\"")),
        "no trace line at all: the directive was not applied, the scan proves nothing"
    );
    // The patients the SQS responses carried (the scan a log line at a time).
    assert_no_phi(&log, &sample_secrets(&set));
    assert!(
        !log.contains("transmitting request") && !log.contains("received response from service"),
        "the SDK orchestrator's request/response trace reached the log"
    );
    // `worker` is dropped here: its log gets the synthetic-patient scan as well.
}

/// A worker's state on the local backend as the drop scan reads it: every failure attribute
/// on every queue and the outbox. Shown by planting a patient in each and dropping a worker
/// pointed at the database: the drop must fail the test, naming where.
#[tokio::test(flavor = "multi_thread")]
async fn the_drop_scan_reads_every_failure_detail_and_the_outbox() {
    use fleet_core::{AttributeValue, Destination, FailureMetadata, Notification, OutgoingMessage};

    let name = samples::FAMILY[0];
    for planted in ["failure", "outbox"] {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("fleet.sqlite");
        let local = fleet_local::LocalBackend::open(&db, &dir.path().join("objects")).unwrap();
        local
            .create_queue("some-dlq", fleet_local::QueueSpec::default())
            .unwrap();
        if planted == "failure" {
            let meta = FailureMetadata {
                code: fleet_core::ErrorCode::DocumentUnsupportedType,
                detail: format!("content type application/x-{name}"),
                worker: "doc-pipeline".into(),
                source_queue: "doc-in".into(),
                first_failure: "2026-01-01T00:00:00Z".into(),
                last_failure: "2026-01-01T00:00:00Z".into(),
                receive_count: 1,
                message_id: "m-1".into(),
            };
            let mut attributes = fleet_core::Attributes::new();
            attributes.insert(
                fleet_core::failure::FAILURE_ATTRIBUTE.into(),
                meta.to_attribute(),
            );
            attributes.insert("feed".into(), AttributeValue::string("lab"));
            local
                .queue("some-dlq")
                .await
                .unwrap()
                .send(OutgoingMessage {
                    body: "{}".into(),
                    attributes,
                    ..OutgoingMessage::default()
                })
                .await
                .unwrap();
        } else {
            let topic = local.create_topic("care-team").unwrap();
            local
                .notifier()
                .publish(
                    &Destination::Topic(topic),
                    &Notification {
                        subject: Some("Admission".into()),
                        body: format!("{name} was admitted"),
                        ..Notification::default()
                    },
                )
                .await
                .unwrap();
        }
        // Any binary will do: `--help` writes no patient and exits.
        let mut worker = Worker::start(
            "hl7-ingest",
            &["--help"],
            &[
                ("FLEET_BACKEND", "local".into()),
                ("FLEET_LOCAL_DB", db.display().to_string()),
            ],
            dir.path().join("worker.log"),
        );
        worker.wait_exit(Duration::from_secs(30));
        let dropped = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| drop(worker)));
        let message = match dropped {
            Ok(()) => panic!("{planted}: the drop scan did not see the planted patient"),
            Err(e) => e.downcast_ref::<String>().cloned().unwrap_or_default(),
        };
        let expected = if planted == "failure" {
            "failure attributes on local queue some-dlq"
        } else {
            "outbox"
        };
        assert!(
            message.contains(expected) && message.contains("name"),
            "{planted}: {message}"
        );
        assert!(
            !message.contains(name),
            "the scan must not print what it found"
        );
    }
}

/// doc-pipeline on the local backend refuses an upload that is no document it reads; the
/// Content-Type the uploader set is theirs (a patient's name here), and the failure detail
/// gives only its length (issue 16 item 4). The drop scan reads that detail as well.
#[tokio::test(flavor = "multi_thread")]
async fn item4_an_uploads_content_type_never_reaches_the_failure_detail() {
    use fleet_core::FailureMetadata;

    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("fleet.sqlite");
    let local = fleet_local::LocalBackend::open(&db, &dir.path().join("objects")).unwrap();
    let spec = |redrive| fleet_local::QueueSpec {
        visibility_timeout: Duration::from_secs(30),
        redrive,
        ..fleet_local::QueueSpec::default()
    };
    local.create_queue("doc-dlq", spec(None)).unwrap();
    local
        .create_queue("doc-in", spec(Some(("doc-dlq".into(), 5))))
        .unwrap();
    let name = samples::FAMILY[1];
    let content_type = format!("application/x-{name}");
    let meta = local
        .objects("uploads")
        .put(
            "note.bin",
            b"\x00\x01 not a document".to_vec(),
            &content_type,
        )
        .await
        .unwrap();
    let event = fleet_docs::s3event::object_created_event(
        "uploads",
        "note.bin",
        meta.size,
        meta.etag.as_deref().unwrap_or("etag"),
    );
    let queue = local.queue("doc-in").await.unwrap();
    send_all(queue.as_ref(), std::iter::once(event)).await;

    let env = vec![
        ("FLEET_BACKEND", "local".to_string()),
        ("FLEET_LOCAL_DB", db.display().to_string()),
        (
            "FLEET_LOCAL_OBJECTS",
            dir.path().join("objects").display().to_string(),
        ),
        ("FLEET_DOC_QUEUE", "doc-in".into()),
        ("FLEET_EVENT_BUS", "fleet".into()),
        ("FLEET_DOC_TABLE", "docs".into()),
        ("FLEET_DOC_RESULTS_BUCKET", "results".into()),
        ("FLEET_DOC_BUCKETS", "uploads".into()),
        ("FLEET_ALLOW_UNENCRYPTED", "1".into()),
        ("FLEET_WAIT_TIME_SECS", "1".into()),
        ("FLEET_DRAIN_DEADLINE_SECS", "5".into()),
        ("FLEET_LOG", "trace".into()),
    ];
    let mut worker = Worker::start("doc-pipeline", &[], &env, dir.path().join("w.log"));
    wait_drained(queue.as_ref(), Duration::from_secs(60)).await;
    let (_, status) = worker.terminate(Duration::from_secs(20));
    assert!(status.success(), "worker exit {status}");
    let dead = local.queue_messages_snapshot("doc-dlq").unwrap();
    assert_eq!(dead.len(), 1, "the upload is dead-lettered");
    let failure = FailureMetadata::from_attributes(&dead[0].attributes).unwrap();
    assert_eq!(failure.code, fleet_core::ErrorCode::DocumentUnsupportedType);
    assert!(
        !failure.detail.contains(name),
        "the failure detail quotes the uploader's Content-Type"
    );
    assert!(
        failure
            .detail
            .contains(&format!("of {} characters", content_type.chars().count())),
        "{}",
        failure.detail
    );
}

/// The same on the aws backend: the drop scan finds the DLQ through the redrive policy of the
/// queue the worker consumed and reads the failure attributes there (releasing the messages).
#[tokio::test(flavor = "multi_thread")]
async fn the_drop_scan_reads_the_dlq_failure_details_on_moto() {
    use fleet_core::{FailureMetadata, OutgoingMessage};

    let backend = aws_backend().await;
    let p = backend.provisioner();
    let dlq = p
        .create_queue(&unique("scan-dlq"), QueueSetup::default())
        .await
        .unwrap();
    let dlq_arn = p.queue_arn(&dlq).await.unwrap();
    let source = p
        .create_queue(
            &unique("scan-in"),
            QueueSetup {
                redrive: Some((dlq_arn, 5)),
                ..QueueSetup::default()
            },
        )
        .await
        .unwrap();
    let name = samples::GIVEN[0];
    let meta = FailureMetadata {
        code: fleet_core::ErrorCode::Hl7NotAdt,
        detail: format!("MSH-9 is {name}"),
        worker: "hl7-ingest".into(),
        source_queue: source.clone(),
        first_failure: "2026-01-01T00:00:00Z".into(),
        last_failure: "2026-01-01T00:00:00Z".into(),
        receive_count: 1,
        message_id: "m-1".into(),
    };
    let mut attributes = fleet_core::Attributes::new();
    attributes.insert(
        fleet_core::failure::FAILURE_ATTRIBUTE.into(),
        meta.to_attribute(),
    );
    let dlq_queue = backend.queue(&dlq).await.unwrap();
    dlq_queue
        .send(OutgoingMessage {
            body: "MSH|...".into(),
            attributes,
            ..OutgoingMessage::default()
        })
        .await
        .unwrap();

    let dir = tempfile::tempdir().unwrap();
    let mut env = moto_env();
    env.push(("FLEET_HL7_QUEUE", source.clone()));
    let mut worker = Worker::start("hl7-ingest", &["--help"], &env, dir.path().join("w.log"));
    worker.wait_exit(Duration::from_secs(30));
    let dropped = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| drop(worker)));
    let message = match dropped {
        Ok(()) => panic!("the drop scan did not see the DLQ's failure detail"),
        Err(e) => e.downcast_ref::<String>().cloned().unwrap_or_default(),
    };
    assert!(
        message.contains("failure attributes on DLQ") && message.contains("name"),
        "{message}"
    );
    // Released, not consumed: the message is still there, and `receive_all`, which takes it
    // (as the end-to-end tests read their DLQs), scans it too.
    let q = dlq_queue.clone();
    let taken = tokio::spawn(async move {
        fleet_testkit::workers::receive_all(q.as_ref(), true)
            .await
            .len()
    })
    .await;
    assert!(
        taken.is_err_and(|e| e.is_panic()),
        "receive_all did not find the planted detail (consumed by the drop scan, or not scanned)"
    );
}

/// hl7-ingest on the local backend, fed a message whose MSH-9 holds a patient's name (a field
/// typed into the wrong place) and whose `correlation_id` attribute is free text naming the
/// patient (issue 16 item 4). The failure detail gives a length, the span a hash; the drop
/// scan reads the log and the DLQ's failure attributes for every synthetic patient.
#[tokio::test(flavor = "multi_thread")]
async fn item4_an_hl7_field_and_a_correlation_id_naming_a_patient_stay_out_of_log_and_dlq() {
    use fleet_core::{AttributeValue, FailureMetadata, OutgoingMessage};

    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("fleet.sqlite");
    let local = fleet_local::LocalBackend::open(&db, &dir.path().join("objects")).unwrap();
    let spec = |redrive| fleet_local::QueueSpec {
        visibility_timeout: Duration::from_secs(30),
        redrive,
        ..fleet_local::QueueSpec::default()
    };
    local.create_queue("hl7-dlq", spec(None)).unwrap();
    local
        .create_queue("hl7-in", spec(Some(("hl7-dlq".into(), 5))))
        .unwrap();
    let sample = samples::generate(61, 1, 0).remove(0);
    let family = sample.patient.family.to_ascii_uppercase();
    let body = sample.body.replacen("|ADT^", &format!("|{family}^"), 1);
    assert_ne!(body, sample.body, "the sample's MSH-9 was not found");
    let queue = local.queue("hl7-in").await.unwrap();
    queue
        .send(OutgoingMessage {
            body,
            attributes: [(
                "correlation_id".to_string(),
                AttributeValue::string(format!(
                    "{} {} {}",
                    sample.patient.given, sample.patient.family, sample.patient.mrn
                )),
            )]
            .into(),
            ..OutgoingMessage::default()
        })
        .await
        .unwrap();

    let env = vec![
        ("FLEET_BACKEND", "local".to_string()),
        ("FLEET_LOCAL_DB", db.display().to_string()),
        (
            "FLEET_LOCAL_OBJECTS",
            dir.path().join("objects").display().to_string(),
        ),
        ("FLEET_HL7_QUEUE", "hl7-in".into()),
        ("FLEET_EVENT_BUS", "fleet".into()),
        ("FLEET_HL7_TABLE", "hl7".into()),
        ("FLEET_ALLOW_UNENCRYPTED", "1".into()),
        ("FLEET_WAIT_TIME_SECS", "1".into()),
        ("FLEET_DRAIN_DEADLINE_SECS", "5".into()),
        ("FLEET_LOG", "trace".into()),
    ];
    let mut worker = Worker::start("hl7-ingest", &[], &env, dir.path().join("w.log"));
    wait_drained(queue.as_ref(), Duration::from_secs(60)).await;
    let (_, status) = worker.terminate(Duration::from_secs(20));
    assert!(status.success(), "worker exit {status}");
    let dead = local.queue_messages_snapshot("hl7-dlq").unwrap();
    assert_eq!(dead.len(), 1, "the message is dead-lettered");
    let failure = FailureMetadata::from_attributes(&dead[0].attributes).unwrap();
    assert_eq!(failure.code, fleet_core::ErrorCode::Hl7NotAdt);
    assert!(
        !failure.detail.contains(&family),
        "the failure detail quotes MSH-9"
    );
    let log = worker.log_text();
    assert!(
        log.contains("sha256:"),
        "the span carries the hashed correlation id"
    );
    assert_no_phi(&log, &sample_secrets(std::slice::from_ref(&sample)));
}
