//! The pipeline against the real local backend (SQLite + a directory), real Tesseract and
//! poppler, and the rules extractor: documents the project renders itself, uploaded under
//! keys with spaces and `+`, announced by the S3 event S3 would send.

use std::sync::Arc;
use std::time::Duration;

use doc_pipeline::events::PhiPolicy;
use doc_pipeline::{Pipeline, Processed, UploadHandler};
use fleet_core::{Backend, ErrorCode, FailureMetadata};
use fleet_docs::s3event::{self, Notification, ObjectRef};
use fleet_docs_local::ocr::{LocalOcrConfig, TesseractOcr};
use fleet_docs_local::render;
use fleet_docs_local::rules::RulesExtractor;
use fleet_local::{LocalBackend, QueueSpec};
use fleet_runtime::Failure;
use fleet_runtime::{EventPublisher, RuntimeConfig};
use fleet_samples::docs::{self as samples, SampleDoc};
use serde_json::Value;
use tokio_util::sync::CancellationToken;

const UPLOADS: &str = "uploads";
const RESULTS: &str = "results";
const TABLE: &str = "documents";
const BUS: &str = "fleet";

fn setup(dir: &std::path::Path) -> (LocalBackend, Arc<Pipeline>) {
    let local = LocalBackend::open(&dir.join("db.sqlite"), &dir.join("objects")).unwrap();
    let backend: Arc<dyn Backend> = Arc::new(local.clone());
    let pipeline = Arc::new(Pipeline {
        upload_buckets: vec![UPLOADS.into()],
        records: backend.records(TABLE),
        results: backend.objects(RESULTS),
        results_bucket: RESULTS.into(),
        results_prefix: "results/".into(),
        publisher: EventPublisher::new(backend.event_bus(BUS), Duration::from_millis(1)),
        ocr: Arc::new(TesseractOcr::new(LocalOcrConfig::default())),
        extractor: Arc::new(RulesExtractor::new()),
        max_document_bytes: 20 * 1024 * 1024,
        policy: PhiPolicy::Minimal,
        backend,
    });
    (local, pipeline)
}

/// Upload `bytes` and return the object as the S3 event names it.
async fn upload(local: &LocalBackend, key: &str, bytes: Vec<u8>, content_type: &str) -> ObjectRef {
    let meta = local
        .objects(UPLOADS)
        .put(key, bytes, content_type)
        .await
        .unwrap();
    let body = s3event::object_created_event(
        UPLOADS,
        key,
        meta.size,
        meta.etag.as_deref().unwrap_or("etag"),
    );
    match s3event::parse(&body).unwrap() {
        Notification::Objects(mut objs) => objs.remove(0),
        other => panic!("{other:?}"),
    }
}

async fn pdf_of(doc: &SampleDoc) -> Vec<u8> {
    render::text_to_pdf(doc.text)
}

async fn png_of(doc: &SampleDoc) -> Vec<u8> {
    let pdf = render::text_to_pdf(doc.text);
    let mut pages = render::pdf_to_png_pages(&pdf, 300).await.unwrap();
    assert_eq!(pages.len(), 1, "the sample fits one page");
    pages.remove(0)
}

async fn results_of(local: &LocalBackend, document_id: &str) -> Value {
    let (bytes, meta) = local
        .objects(RESULTS)
        .get(&format!("results/{document_id}.json"))
        .await
        .unwrap()
        .expect("results object written");
    assert_eq!(meta.content_type.as_deref(), Some("application/json"));
    serde_json::from_slice(&bytes).unwrap()
}

fn medication_names(results: &Value) -> Vec<String> {
    results["entities"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["category"] == "MEDICATION")
        .map(|e| e["text"].as_str().unwrap().to_lowercase())
        .collect()
}

fn check_entities(results: &Value, doc: &SampleDoc) {
    let text = results["text"].as_str().unwrap();
    let meds = medication_names(results);
    for m in doc.medications {
        assert!(meds.iter().any(|x| x == m), "{m} not found in {meds:?}");
    }
    // Offsets are characters of the stored text.
    for e in results["entities"].as_array().unwrap() {
        let (b, en) = (
            e["begin_offset"].as_u64().unwrap() as usize,
            e["end_offset"].as_u64().unwrap() as usize,
        );
        let slice: String = text.chars().skip(b).take(en - b).collect();
        assert_eq!(slice, e["text"].as_str().unwrap());
    }
    let negated: Vec<&str> = results["entities"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| {
            e["traits"]
                .as_array()
                .unwrap()
                .iter()
                .any(|t| t["name"] == "NEGATION")
        })
        .map(|e| e["text"].as_str().unwrap())
        .collect();
    assert!(
        negated.iter().any(|n| n.eq_ignore_ascii_case(doc.negated)),
        "{} not negated: {negated:?}",
        doc.negated
    );
}

fn new_id(p: Processed) -> String {
    match p {
        Processed::New { document_id } => document_id,
        other => panic!("expected a new document, got {other:?}"),
    }
}

fn events(local: &LocalBackend) -> Vec<Value> {
    local.list_bus_events(BUS).unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_pdf_and_a_png_give_results_a_record_and_one_event_each() {
    let dir = tempfile::tempdir().unwrap();
    let (local, pipeline) = setup(dir.path());
    let pdf = upload(
        &local,
        samples::REFERRAL.key,
        pdf_of(&samples::REFERRAL).await,
        "application/pdf",
    )
    .await;
    let png = upload(
        &local,
        samples::DISCHARGE.key,
        png_of(&samples::DISCHARGE).await,
        "image/png",
    )
    .await;
    assert!(pdf.key.expose().contains(' ') && pdf.key.expose().contains('+'));

    let pdf_id = new_id(pipeline.process_object(&pdf, "m-1").await.unwrap());
    let png_id = new_id(pipeline.process_object(&png, "m-2").await.unwrap());
    assert_ne!(pdf_id, png_id);

    for (id, doc, media, engine_reads_pixels) in [
        (&pdf_id, &samples::REFERRAL, "application/pdf", false),
        (&png_id, &samples::DISCHARGE, "image/png", true),
    ] {
        let results = results_of(&local, id).await;
        assert_eq!(results["document_id"], id.as_str());
        assert_eq!(results["source"]["key"], doc.key);
        assert_eq!(
            results["source"]["media_type"],
            media.split('/').nth(1).unwrap()
        );
        assert_eq!(results["ocr_engine"], "tesseract");
        assert_eq!(results["extractor"], "rules");
        let pages = results["ocr"]["pages"].as_array().unwrap();
        assert_eq!(pages.len(), 1);
        if engine_reads_pixels {
            // Tesseract read the image: word geometry inside the page, real confidences.
            let words = pages[0]["lines"][0]["words"].as_array().unwrap();
            assert!(!words.is_empty());
            let c = words[0]["confidence"].as_f64().unwrap();
            assert!(c > 50.0 && c <= 100.0, "confidence {c}");
        }
        check_entities(&results, doc);
    }

    // One record per document, one event per document, in order.
    let records = local.table_records(TABLE).unwrap();
    let docs: Vec<_> = records.iter().filter(|r| r.sk == "DOCUMENT").collect();
    assert_eq!(docs.len(), 2);
    let evs = events(&local);
    assert_eq!(evs.len(), 2);
    for (ev, id) in evs.iter().zip([&pdf_id, &png_id]) {
        assert_eq!(ev["detail-type"], "DocumentProcessed");
        assert_eq!(ev["source"], "fleet.doc-pipeline");
        let detail = &ev["detail"];
        assert_eq!(detail["payload"]["document_id"], id.as_str());
        assert_eq!(
            detail["payload"]["results"]["key"],
            format!("results/{id}.json")
        );
        assert!(
            detail["payload"]["entities"]["medications"]
                .as_u64()
                .unwrap()
                >= 2
        );
        // No document text and, under the minimal policy, no key in the event.
        let s = ev.to_string();
        for secret in samples::secrets() {
            assert!(!s.contains(secret), "event carries {secret}");
        }
        assert!(!s.contains("referral 2026"), "event carries the key");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_redelivery_writes_nothing_and_republishes_the_same_event_id() {
    let dir = tempfile::tempdir().unwrap();
    let (local, pipeline) = setup(dir.path());
    let obj = upload(
        &local,
        samples::LAB_NOTE.key,
        samples::LAB_NOTE.text.as_bytes().to_vec(),
        "text/plain",
    )
    .await;
    let id = new_id(pipeline.process_object(&obj, "m-1").await.unwrap());
    let records = local.table_records(TABLE).unwrap();
    let again = pipeline.process_object(&obj, "m-1").await.unwrap();
    assert_eq!(
        again,
        Processed::Republished {
            document_id: id.clone()
        }
    );
    assert_eq!(local.table_records(TABLE).unwrap(), records);
    let evs = events(&local);
    assert_eq!(evs.len(), 2);
    assert_eq!(evs[0]["detail"]["event_id"], evs[1]["detail"]["event_id"]);
    let results = results_of(&local, &id).await;
    assert_eq!(results["ocr_engine"], "none");
    assert_eq!(results["text"], samples::LAB_NOTE.text);
    check_entities(&results, &samples::LAB_NOTE);
}

fn code(stop: Failure) -> ErrorCode {
    match stop {
        Failure::Permanent { code, .. } => code,
        other => panic!("expected a permanent failure, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_documents_stop_with_their_codes_and_write_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let (local, pipeline) = setup(dir.path());
    let docx = upload(
        &local,
        "letters/a letter.docx",
        b"PK\x03\x04\x14\0\x06\0".to_vec(),
        "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
    )
    .await;
    let empty = upload(
        &local,
        "scans/empty scan.pdf",
        Vec::new(),
        "application/pdf",
    )
    .await;
    let mut corrupt_bytes = render::text_to_pdf("a page that will be cut short");
    corrupt_bytes.truncate(corrupt_bytes.len() / 3);
    let corrupt = upload(
        &local,
        "scans/cut+short.pdf",
        corrupt_bytes,
        "application/pdf",
    )
    .await;
    let garbage = upload(
        &local,
        "scans/garbage.png",
        b"\x89PNG\r\n\x1a\nnot really an image".to_vec(),
        "image/png",
    )
    .await;
    let mut gone = upload(
        &local,
        "scans/gone.pdf",
        b"%PDF-1.4".to_vec(),
        "application/pdf",
    )
    .await;
    gone.key = fleet_core::phi::Phi("scans/never uploaded.pdf".into());

    for (obj, want) in [
        (&docx, ErrorCode::DocumentUnsupportedType),
        (&empty, ErrorCode::DocumentEmpty),
        (&corrupt, ErrorCode::DocumentCorrupt),
        (&garbage, ErrorCode::DocumentCorrupt),
        (&gone, ErrorCode::DocumentNotFound),
    ] {
        let got = code(pipeline.process_object(obj, "m").await.unwrap_err());
        assert_eq!(got, want);
    }
    let too_big = Pipeline {
        max_document_bytes: 4,
        upload_buckets: pipeline.upload_buckets.clone(),
        records: pipeline.records.clone(),
        results: pipeline.results.clone(),
        results_bucket: RESULTS.into(),
        results_prefix: "results/".into(),
        publisher: EventPublisher::new(local.event_bus(BUS), Duration::from_millis(1)),
        ocr: pipeline.ocr.clone(),
        extractor: pipeline.extractor.clone(),
        policy: PhiPolicy::Minimal,
        backend: pipeline.backend.clone(),
    };
    let note = upload(
        &local,
        "notes/long.txt",
        b"twelve bytes".to_vec(),
        "text/plain",
    )
    .await;
    assert_eq!(
        code(too_big.process_object(&note, "m").await.unwrap_err()),
        ErrorCode::DocumentTooLarge
    );
    assert!(local.table_records(TABLE).unwrap().is_empty());
    assert!(events(&local).is_empty());
}

/// Through the runtime: a queue holding the test event, good uploads and bad ones. Good ones
/// are processed, the test event is acknowledged, each bad one is dead-lettered with its code,
/// and nothing is left on the source queue.
#[tokio::test(flavor = "multi_thread")]
async fn the_runtime_dead_letters_bad_uploads_with_codes_and_ignores_the_test_event() {
    let dir = tempfile::tempdir().unwrap();
    let (local, pipeline) = setup(dir.path());
    let spec = |redrive| QueueSpec {
        visibility_timeout: Duration::from_secs(30),
        redrive,
        ..QueueSpec::default()
    };
    local.create_queue("uploads-dlq", spec(None)).unwrap();
    local
        .create_queue("uploads-q", spec(Some(("uploads-dlq".into(), 5))))
        .unwrap();
    let queue = local.queue("uploads-q").await.unwrap();
    let send = |body: String| {
        let queue = queue.clone();
        async move {
            queue
                .send(fleet_core::ports::OutgoingMessage {
                    body,
                    ..Default::default()
                })
                .await
                .unwrap();
        }
    };
    let test_event = r#"{"Service":"Amazon S3","Event":"s3:TestEvent","Time":"2026-12-01T10:00:00.000Z","Bucket":"uploads","RequestId":"R","HostId":"H"}"#;
    send(test_event.to_string()).await;
    let note = local
        .objects(UPLOADS)
        .put(
            samples::LAB_NOTE.key,
            samples::LAB_NOTE.text.as_bytes().to_vec(),
            "text/plain",
        )
        .await
        .unwrap();
    send(s3event::object_created_event(
        UPLOADS,
        samples::LAB_NOTE.key,
        note.size,
        "e1",
    ))
    .await;
    local
        .objects(UPLOADS)
        .put("empty.pdf", Vec::new(), "application/pdf")
        .await
        .unwrap();
    send(s3event::object_created_event(UPLOADS, "empty.pdf", 0, "e2")).await;
    send(s3event::object_created_event(
        UPLOADS,
        "scans/Ashbourne gone.pdf",
        10,
        "e3",
    ))
    .await;
    send("this is not an S3 event".to_string()).await;

    let mut rt = RuntimeConfig::new("doc-pipeline", "uploads-q");
    rt.allow_unencrypted = true;
    rt.wait_time = Duration::from_millis(200);
    rt.concurrency = 2;
    let shutdown = CancellationToken::new();
    let run = tokio::spawn(fleet_runtime::run(
        rt,
        pipeline.backend.clone(),
        Arc::new(UploadHandler(pipeline.clone())),
        shutdown.clone(),
    ));
    let dlq = local.queue("uploads-dlq").await.unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        let attrs = dlq.attributes().await.unwrap();
        if attrs.approximate_visible >= 3 || std::time::Instant::now() > deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    shutdown.cancel();
    let report = run.await.unwrap().unwrap();
    assert_eq!(report.received, 5);

    let mut codes: Vec<String> = Vec::new();
    for m in local.queue_messages_snapshot("uploads-dlq").unwrap() {
        let failure = FailureMetadata::from_attributes(&m.attributes).expect("failure metadata");
        codes.push(failure.code.to_string());
        assert!(
            !failure.detail.contains("Ashbourne"),
            "detail names the key"
        );
    }
    codes.sort();
    assert_eq!(
        codes,
        ["DOCUMENT_EMPTY", "DOCUMENT_NOT_FOUND", "S3_EVENT_INVALID"]
    );
    assert!(
        local
            .queue_messages_snapshot("uploads-q")
            .unwrap()
            .is_empty()
    );
    assert_eq!(events(&local).len(), 1, "only the note was processed");
}

/// One test per port-error kind: this worker's handler, given a valid message and a record
/// store that fails with that kind, answers exactly what the fleet's one mapping
/// (`Failure::from_port`) says. hl7-ingest, doc-pipeline and notify each carry this module,
/// so all three give the same answer for the same port error.
mod port_errors {
    use super::*;
    use fleet_core::RecordStore;
    use fleet_runtime::testing::delivery;
    use fleet_runtime::{Handler, Outcome};

    fleet_runtime::port_error_tests!(outcome_with_failing_records);

    async fn outcome_with_failing_records(records: Arc<dyn RecordStore>) -> Outcome {
        let dir = tempfile::tempdir().unwrap();
        let (_local, ok) = setup(dir.path());
        let pipeline = Pipeline {
            backend: ok.backend.clone(),
            upload_buckets: ok.upload_buckets.clone(),
            records,
            results: ok.results.clone(),
            results_bucket: ok.results_bucket.clone(),
            results_prefix: ok.results_prefix.clone(),
            publisher: EventPublisher::new(ok.backend.event_bus(BUS), Duration::from_millis(1)),
            ocr: ok.ocr.clone(),
            extractor: ok.extractor.clone(),
            max_document_bytes: ok.max_document_bytes,
            policy: ok.policy,
        };
        let body = s3event::object_created_event(UPLOADS, "scans/a.pdf", 100, "etag");
        UploadHandler(Arc::new(pipeline))
            .handle(&delivery(body))
            .await
    }
}
