//! Issue 16 items 1 and 2 on both backends: what a message may make a worker read.
//!
//! - Item 1: a claim-check pointer naming a bucket outside `FLEET_CLAIM_CHECK_BUCKETS`, or an
//!   allowed object above the body limit (its size attribute lying), is dead-lettered with its
//!   code and the pointer body, and the object store is never asked for its bytes (the request
//!   counters: HEAD only where allowed, GET only for the one good pointer).
//! - Item 2: an S3 event naming a bucket outside `FLEET_DOC_BUCKETS` is dead-lettered by the
//!   real doc-pipeline binary as `DOCUMENT_BUCKET_NOT_ALLOWED`, its object never read (the
//!   worker's own request counts) and nothing of it logged; on aws the worker refuses to start
//!   without `FLEET_DOC_BUCKETS`.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use fleet_core::{
    AttributeValue, Backend, ErrorCode, FailureMetadata, LimitedGet, MessageQueue, OutgoingMessage,
    ReceivedMessage,
};
use fleet_docs::s3event;
use fleet_local::QueueSpec;
use fleet_runtime::{Delivery, Handler, Outcome, RuntimeConfig};
use fleet_samples::docs;
use fleet_testkit::ProvisionExt as _;
use fleet_testkit::provision::QueueSetup;
use fleet_testkit::workers::{
    Worker, assert_no_phi, final_request_counts, receive_all, wait_drained,
};
use fleet_testkit::{aws_backend, local_backend, moto_env, unique};
use tokio_util::sync::CancellationToken;

/// A source queue with its DLQ and two buckets, on one backend.
struct Rig {
    backend: Arc<dyn Backend>,
    queue: String,
    dlq: String,
    /// On the allow-list.
    allowed: String,
    /// Not on it: another team's bucket, holding data this worker must never read.
    foreign: String,
    /// doc-pipeline's event bus and records table.
    bus: String,
    table: String,
    /// The binaries' environment for this backend (backend selection, local paths).
    env: Vec<(&'static str, String)>,
    dir: tempfile::TempDir,
}

/// Local queues report a KMS key when given one, so the guardrail passes without the
/// unencrypted override.
async fn local_rig(allowed: &str) -> Rig {
    let dir = tempfile::tempdir().unwrap();
    let local = local_backend(dir.path());
    let spec = |redrive| QueueSpec {
        visibility_timeout: Duration::from_secs(60),
        kms_key_id: Some("local-test-key".into()),
        redrive,
        ..QueueSpec::default()
    };
    local.create_queue("sources-dlq", spec(None)).unwrap();
    local
        .create_queue("sources", spec(Some(("sources-dlq".into(), 5))))
        .unwrap();
    let env = vec![
        ("FLEET_BACKEND", "local".to_string()),
        (
            "FLEET_LOCAL_DB",
            dir.path().join("fleet.sqlite").display().to_string(),
        ),
        (
            "FLEET_LOCAL_OBJECTS",
            dir.path().join("objects").display().to_string(),
        ),
    ];
    Rig {
        backend: Arc::new(local),
        queue: "sources".into(),
        dlq: "sources-dlq".into(),
        allowed: allowed.into(),
        foreign: "other-team".into(),
        bus: "fleet".into(),
        table: "docs".into(),
        env,
        dir,
    }
}

async fn moto_rig() -> Rig {
    let backend = aws_backend().await;
    let p = backend.provisioner();
    let key = p.create_kms_key("issue 16 sources").await.unwrap();
    let setup = |redrive| QueueSetup {
        visibility_timeout: Duration::from_secs(60),
        kms_key_id: Some(key.clone()),
        redrive,
        ..QueueSetup::default()
    };
    let dlq = p
        .create_queue(&unique("src-dlq"), setup(None))
        .await
        .unwrap();
    let dlq_arn = p.queue_arn(&dlq).await.unwrap();
    let queue = p
        .create_queue(&unique("src"), setup(Some((dlq_arn, 5))))
        .await
        .unwrap();
    let (allowed, foreign) = (unique("allowed"), unique("foreign"));
    for b in [&allowed, &foreign] {
        p.create_bucket(b, Some(&key)).await.unwrap();
    }
    let (bus, table) = (unique("bus"), unique("docs"));
    p.create_bus(&bus).await.unwrap();
    p.create_table(&table).await.unwrap();
    Rig {
        backend: Arc::new(backend),
        queue,
        dlq,
        allowed,
        foreign,
        bus,
        table,
        env: moto_env(),
        dir: tempfile::tempdir().unwrap(),
    }
}

fn s3_requests() -> (u64, u64) {
    let s = fleet_core::requests::snapshot();
    let n = |api: &str| s.get(api).copied().unwrap_or(0);
    (n("s3.HeadObject"), n("s3.GetObject"))
}

/// Every DLQ message's failure, by body.
async fn dead_letters(rig: &Rig) -> BTreeMap<String, FailureMetadata> {
    let dlq = rig.backend.queue(&rig.dlq).await.unwrap();
    receive_all(dlq.as_ref(), true)
        .await
        .into_iter()
        .map(|m: ReceivedMessage| {
            let meta = FailureMetadata::from_attributes(&m.attributes).expect("fleet.failure");
            (m.body, meta)
        })
        .collect()
}

// ---------------------------------------------------------------------------------------------
// Item 1: claim checks
// ---------------------------------------------------------------------------------------------

#[derive(Default)]
struct Recorder(Mutex<Vec<String>>);

#[async_trait]
impl Handler for Recorder {
    async fn handle(&self, delivery: &Delivery) -> Outcome {
        self.0.lock().unwrap().push(delivery.body.clone());
        Outcome::Done
    }
}

fn pointer(bucket: &str, key: &str) -> String {
    format!(
        r#"["software.amazon.payloadoffloading.PayloadS3Pointer",{{"s3BucketName":"{bucket}","s3Key":"{key}"}}]"#
    )
}

async fn send_pointer(queue: &dyn MessageQueue, body: &str, declared: usize) {
    queue
        .send(OutgoingMessage {
            body: body.to_string(),
            attributes: [(
                "ExtendedPayloadSize".to_string(),
                AttributeValue::number(declared.to_string()),
            )]
            .into(),
            ..OutgoingMessage::default()
        })
        .await
        .unwrap();
}

const LIMIT: usize = 1000;

async fn item1_attack(rig: Rig) {
    let b = &rig.backend;
    // What the attacker points at: another team's object, and an allowed object far above
    // the limit whose size attribute claims it is small.
    let foreign_payload = format!("MSH|^~\\&|{}", docs::LAB_NOTE.text);
    b.objects(&rig.foreign)
        .put(
            "feeds/all.hl7",
            foreign_payload.clone().into_bytes(),
            "text/plain",
        )
        .await
        .unwrap();
    b.objects(&rig.allowed)
        .put("big/1", vec![b'X'; 50 * LIMIT], "text/plain")
        .await
        .unwrap();
    let good_payload = "MSH|^~\\&|small enough".to_string();
    b.objects(&rig.allowed)
        .put("small/1", good_payload.clone().into_bytes(), "text/plain")
        .await
        .unwrap();
    let foreign = pointer(&rig.foreign, "feeds/all.hl7");
    let oversized = pointer(&rig.allowed, "big/1");
    let good = pointer(&rig.allowed, "small/1");
    let queue = b.queue(&rig.queue).await.unwrap();
    send_pointer(queue.as_ref(), &foreign, foreign_payload.len()).await;
    send_pointer(queue.as_ref(), &oversized, 10).await;
    send_pointer(queue.as_ref(), &good, good_payload.len()).await;

    let (head_before, get_before) = s3_requests();
    let mut cfg = RuntimeConfig::new("sources-test", rig.queue.clone());
    cfg.wait_time = Duration::from_secs(1);
    cfg.max_body_bytes = LIMIT;
    cfg.claim_check_buckets = vec![rig.allowed.clone()];
    let recorder = Arc::new(Recorder::default());
    let shutdown = CancellationToken::new();
    let run = tokio::spawn(fleet_runtime::run(
        cfg,
        b.clone(),
        recorder.clone(),
        shutdown.clone(),
    ));
    wait_drained(queue.as_ref(), Duration::from_secs(60)).await;
    shutdown.cancel();
    run.await.unwrap().expect("the runtime started and stopped");
    let (head_after, get_after) = s3_requests();

    // The good pointer still works: the handler saw its payload, and only it.
    assert_eq!(*recorder.0.lock().unwrap(), vec![good_payload]);
    // Both attacks are dead-lettered with their codes, the pointer body kept (nothing lost),
    // and a detail that names neither bucket nor key.
    let dead = dead_letters(&rig).await;
    assert_eq!(dead.len(), 2, "{:?}", dead.keys());
    assert_eq!(dead[&foreign].code, ErrorCode::ClaimCheckBucketNotAllowed);
    assert_eq!(dead[&oversized].code, ErrorCode::ClaimCheckTooLarge);
    for meta in dead.values() {
        for name in [rig.foreign.as_str(), &rig.allowed, "feeds/all.hl7", "big/1"] {
            assert!(!meta.detail.contains(name), "{name} in {:?}", meta.detail);
        }
    }
    // Nothing read: one HEAD each for the two allowed pointers (none for the foreign bucket),
    // and one GET, the good pointer's; the oversized object was refused on its HEAD.
    assert_eq!(
        (head_after - head_before, get_after - get_before),
        (2, 1),
        "(HeadObject, GetObject) requests during the run"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn item1_claim_checks_outside_the_allow_list_or_above_the_limit_are_refused_unread_local() {
    item1_attack(local_rig("offload").await).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn item1_claim_checks_outside_the_allow_list_or_above_the_limit_are_refused_unread_moto() {
    item1_attack(moto_rig().await).await;
}

/// The bounded read itself, on both adapters: an object one byte over the limit is
/// `TooLarge`, one at the limit is read whole, a missing key is `None`.
async fn item1_bounded_read(rig: Rig) {
    let store = rig.backend.objects(&rig.allowed);
    store
        .put("exact", vec![b'a'; 100], "text/plain")
        .await
        .unwrap();
    match store.get_limited("exact", 100).await.unwrap() {
        Some(LimitedGet::Read(bytes, meta)) => {
            assert_eq!((bytes.len(), meta.size), (100, 100));
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(
        store.get_limited("exact", 99).await.unwrap(),
        Some(LimitedGet::TooLarge)
    );
    assert_eq!(store.get_limited("missing", 99).await.unwrap(), None);
}

#[tokio::test(flavor = "multi_thread")]
async fn item1_bounded_reads_stop_at_the_limit_local() {
    item1_bounded_read(local_rig("offload").await).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn item1_bounded_reads_stop_at_the_limit_moto() {
    item1_bounded_read(moto_rig().await).await;
}

// ---------------------------------------------------------------------------------------------
// Item 2: S3 events naming buckets doc-pipeline does not read
// ---------------------------------------------------------------------------------------------

/// doc-pipeline's environment on `rig` (its upload queue, table, bus, results bucket), with
/// `FLEET_DOC_BUCKETS` when `buckets` is given.
fn doc_env(rig: &Rig, buckets: Option<&str>) -> Vec<(&'static str, String)> {
    let mut env = rig.env.clone();
    env.extend([
        ("FLEET_DOC_QUEUE", rig.queue.clone()),
        ("FLEET_EVENT_BUS", rig.bus.clone()),
        ("FLEET_DOC_TABLE", rig.table.clone()),
        ("FLEET_DOC_RESULTS_BUCKET", rig.allowed.clone()),
        ("FLEET_DOC_OCR", "tesseract".into()),
        ("FLEET_DOC_EXTRACTOR", "rules".into()),
        ("FLEET_WAIT_TIME_SECS", "1".into()),
        ("FLEET_MAX_ATTEMPTS", "2".into()),
        ("FLEET_DRAIN_DEADLINE_SECS", "10".into()),
        ("FLEET_LOG", "trace".into()),
    ]);
    if let Some(b) = buckets {
        env.push(("FLEET_DOC_BUCKETS", b.to_string()));
    }
    env
}

async fn item2_attack(rig: Rig, buckets: Option<&str>) {
    let b = &rig.backend;
    // Another team's document, and one in the upload bucket.
    let foreign = b
        .objects(&rig.foreign)
        .put(
            docs::REFERRAL.key,
            docs::REFERRAL.text.as_bytes().to_vec(),
            "text/plain",
        )
        .await
        .unwrap();
    let own = b
        .objects(&rig.allowed)
        .put(
            docs::LAB_NOTE.key,
            docs::LAB_NOTE.text.as_bytes().to_vec(),
            "text/plain",
        )
        .await
        .unwrap();
    let foreign_event = s3event::object_created_event(
        &rig.foreign,
        docs::REFERRAL.key,
        foreign.size,
        foreign.etag.as_deref().unwrap_or("etag"),
    );
    let own_event = s3event::object_created_event(
        &rig.allowed,
        docs::LAB_NOTE.key,
        own.size,
        own.etag.as_deref().unwrap_or("etag"),
    );
    let queue = b.queue(&rig.queue).await.unwrap();
    for body in [&foreign_event, &own_event] {
        queue
            .send(OutgoingMessage {
                body: body.clone(),
                ..OutgoingMessage::default()
            })
            .await
            .unwrap();
    }

    let mut worker = Worker::start(
        "doc-pipeline",
        &[],
        &doc_env(&rig, buckets),
        rig.dir.path().join("doc-pipeline.log"),
    );
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        // Both events settled (a dead-letter is sent before its source delete).
        let s = queue.attributes().await.unwrap();
        if s.approximate_visible + s.approximate_in_flight + s.approximate_delayed == 0 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "not done in time; log:\n{}",
            worker.log_text()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let (_, status) = worker.terminate(Duration::from_secs(30));
    let log = worker.log_text();
    assert!(status.success(), "exit {status}; log:\n{log}");

    // The foreign event is dead-lettered whole (nothing lost) with the code; the own one was
    // processed (its results object exists).
    let dead = dead_letters(&rig).await;
    assert_eq!(
        dead.len(),
        1,
        "{:?}",
        dead.values().map(|m| m.code).collect::<Vec<_>>()
    );
    let meta = &dead[&foreign_event];
    assert_eq!(meta.code, ErrorCode::DocumentBucketNotAllowed);
    assert!(!meta.detail.contains(&rig.foreign) && !meta.detail.contains("Quillfeather"));
    // Nothing read: the worker's requests are one HEAD and one GET, both the own document's.
    let counts = final_request_counts(&log).expect("run finished line with request counts");
    let n = |api: &str| counts.get(api).copied().unwrap_or(0);
    assert_eq!(
        (n("s3.HeadObject"), n("s3.GetObject")),
        (1, 1),
        "doc-pipeline's object reads: {counts:?}"
    );
    // Nothing logged: no patient name, no key of either document.
    let secrets: Vec<String> = docs::secrets().into_iter().map(String::from).collect();
    assert_no_phi(&log, &secrets);
    assert!(!log.contains(docs::REFERRAL.key) && !log.contains(&rig.foreign));
}

#[tokio::test(flavor = "multi_thread")]
async fn item2_s3_events_for_buckets_outside_the_upload_list_are_dead_lettered_unread_local() {
    // No FLEET_DOC_BUCKETS: the local default is the local stack's `uploads`.
    let rig = local_rig("uploads").await;
    item2_attack(rig, None).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn item2_s3_events_for_buckets_outside_the_upload_list_are_dead_lettered_unread_moto() {
    let rig = moto_rig().await;
    // Without FLEET_DOC_BUCKETS the worker refuses to start on aws, naming the variable, and
    // receives nothing.
    let mut refused = Worker::start(
        "doc-pipeline",
        &[],
        &doc_env(&rig, None),
        rig.dir.path().join("refused.log"),
    );
    let status = refused.wait_exit(Duration::from_secs(30));
    let log = refused.log_text();
    assert!(
        !status.success(),
        "started without FLEET_DOC_BUCKETS:\n{log}"
    );
    assert!(log.contains("FLEET_DOC_BUCKETS"), "{log}");
    let counts = final_request_counts(&log).unwrap_or_default();
    assert_eq!(counts.get("sqs.ReceiveMessage"), None, "{counts:?}");

    let allowed = rig.allowed.clone();
    item2_attack(rig, Some(&allowed)).await;
}
