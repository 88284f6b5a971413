//! End to end on moto: the real `doc-pipeline` binary with the local OCR and extractor, an
//! upload bucket whose object-created notifications go to the worker's KMS-encrypted queue
//! (moto emits the real S3 events, and the `s3:TestEvent`), a results bucket, a DynamoDB
//! table and an EventBridge rule to a tap queue.

use fleet_testkit::ProvisionExt as _;
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use fleet_core::{Backend, FailureMetadata};
use fleet_samples::docs as samples;
use fleet_testkit::provision::QueueSetup;
use fleet_testkit::workers::{Worker, assert_no_phi, receive_all, wait_drained};
use fleet_testkit::{aws_backend, moto_env, unique};

struct Stack {
    source: String,
    dlq: String,
    tap: String,
    bus: String,
    table: String,
    uploads: String,
    results: String,
}

async fn provision() -> Stack {
    let backend = aws_backend().await;
    let p = backend.provisioner();
    let key = p.create_kms_key("doc-pipeline e2e").await.unwrap();
    let setup = |redrive| QueueSetup {
        visibility_timeout: Duration::from_secs(60),
        kms_key_id: Some(key.clone()),
        redrive,
        ..QueueSetup::default()
    };
    let dlq = p
        .create_queue(&unique("doc-dlq"), setup(None))
        .await
        .unwrap();
    let dlq_arn = p.queue_arn(&dlq).await.unwrap();
    let source = p
        .create_queue(&unique("doc-in"), setup(Some((dlq_arn, 5))))
        .await
        .unwrap();
    let tap = p
        .create_queue(&unique("doc-tap"), setup(None))
        .await
        .unwrap();
    let bus = unique("bus");
    p.create_bus(&bus).await.unwrap();
    p.put_rule_to_queue(
        &bus,
        &unique("rule"),
        r#"{"source":["fleet.doc-pipeline"],"detail-type":["DocumentProcessed"]}"#,
        &tap,
    )
    .await
    .unwrap();
    let table = unique("docs");
    p.create_table(&table).await.unwrap();
    let uploads = unique("uploads");
    let results = unique("results");
    p.create_bucket(&uploads, Some(&key)).await.unwrap();
    p.create_bucket(&results, Some(&key)).await.unwrap();
    let source_arn = p.queue_arn(&source).await.unwrap();
    p.notify_queue_on_create(&uploads, &source_arn)
        .await
        .unwrap();
    Stack {
        source,
        dlq,
        tap,
        bus,
        table,
        uploads,
        results,
    }
}

fn worker_env(s: &Stack) -> Vec<(&'static str, String)> {
    let mut env = moto_env();
    env.extend([
        ("FLEET_DOC_QUEUE", s.source.clone()),
        ("FLEET_EVENT_BUS", s.bus.clone()),
        ("FLEET_DOC_TABLE", s.table.clone()),
        ("FLEET_DOC_RESULTS_BUCKET", s.results.clone()),
        ("FLEET_DOC_BUCKETS", s.uploads.clone()),
        ("FLEET_DOC_OCR", "tesseract".into()),
        ("FLEET_DOC_EXTRACTOR", "rules".into()),
        ("FLEET_WAIT_TIME_SECS", "1".into()),
        ("FLEET_DRAIN_DEADLINE_SECS", "20".into()),
        ("FLEET_MAX_ATTEMPTS", "2".into()),
        // Every level: the document-text scan must cover debug and trace output too.
        ("FLEET_LOG", "trace".into()),
    ]);
    env
}

async fn png_of(text: &str) -> Vec<u8> {
    let pdf = fleet_docs_local::render::text_to_pdf(text);
    let mut pages = fleet_docs_local::render::pdf_to_png_pages(&pdf, 300)
        .await
        .unwrap();
    pages.remove(0)
}

#[tokio::test(flavor = "multi_thread")]
async fn aws_uploads_become_results_records_and_one_event_each_and_bad_ones_get_codes() {
    let stack = provision().await;
    let backend = aws_backend().await;
    let uploads = backend.objects(&stack.uploads);

    // Good: a PDF with a text layer and a PNG scan, under keys with spaces and '+'.
    let pdf_key = samples::REFERRAL.key;
    let png_key = samples::DISCHARGE.key;
    uploads
        .put(
            pdf_key,
            fleet_docs_local::render::text_to_pdf(samples::REFERRAL.text),
            "application/pdf",
        )
        .await
        .unwrap();
    uploads
        .put(png_key, png_of(samples::DISCHARGE.text).await, "image/png")
        .await
        .unwrap();
    // Bad: a Word file, a zero-byte object, a cut-off PDF, and one deleted before the worker
    // starts (its event is already queued).
    let mut corrupt = fleet_docs_local::render::text_to_pdf("cut short");
    corrupt.truncate(corrupt.len() / 3);
    let bad = [
        (
            "letters/a letter+draft.docx",
            b"PK\x03\x04\x14\0\x06\0".to_vec(),
            "DOCUMENT_UNSUPPORTED_TYPE",
        ),
        ("scans/empty scan.pdf", Vec::new(), "DOCUMENT_EMPTY"),
        ("scans/cut short.pdf", corrupt, "DOCUMENT_CORRUPT"),
        (
            "scans/Marchetti gone.pdf",
            b"%PDF-1.4\n".to_vec(),
            "DOCUMENT_NOT_FOUND",
        ),
    ];
    for (key, bytes, _) in &bad {
        uploads
            .put(key, bytes.clone(), "application/octet-stream")
            .await
            .unwrap();
    }
    backend
        .provisioner()
        .delete_object(&stack.uploads, "scans/Marchetti gone.pdf")
        .await
        .unwrap();

    let dir = tempfile::tempdir().unwrap();
    let mut worker = Worker::start(
        "doc-pipeline",
        &[],
        &worker_env(&stack),
        dir.path().join("worker.log"),
    );
    let source = backend.queue(&stack.source).await.unwrap();
    let dlq = backend.queue(&stack.dlq).await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(240);
    loop {
        let d = dlq.attributes().await.unwrap();
        let s = source.attributes().await.unwrap();
        if d.approximate_visible >= 4 && s.approximate_visible + s.approximate_in_flight == 0 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "not done in time: dlq {}, source {}+{}",
            d.approximate_visible,
            s.approximate_visible,
            s.approximate_in_flight
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    wait_drained(source.as_ref(), Duration::from_secs(30)).await;
    let (_, status) = worker.terminate(Duration::from_secs(30));
    let log = worker.log_text();
    assert!(
        status.success(),
        "worker exit {status}; log tail:\n{}",
        tail(&log)
    );

    // Events: exactly one DocumentProcessed per good document.
    let tap = backend.queue(&stack.tap).await.unwrap();
    let events = receive_all(tap.as_ref(), false).await;
    assert_eq!(events.len(), 2, "events on the tap queue");
    let mut ids = Vec::new();
    for m in &events {
        let e: serde_json::Value = serde_json::from_str(&m.body).unwrap();
        assert_eq!(e["detail-type"], "DocumentProcessed");
        let payload = &e["detail"]["payload"];
        assert_eq!(payload["source"]["bucket"], stack.uploads.as_str());
        assert_eq!(payload["results"]["bucket"], stack.results.as_str());
        for secret in samples::secrets() {
            assert!(!m.body.contains(secret), "the event carries document text");
        }
        ids.push((
            payload["document_id"].as_str().unwrap().to_string(),
            payload["source"]["media_type"]
                .as_str()
                .unwrap()
                .to_string(),
            payload["results"]["key"].as_str().unwrap().to_string(),
        ));
    }
    ids.sort_by(|a, b| a.1.cmp(&b.1));
    assert_eq!(
        ids.iter().map(|i| i.1.as_str()).collect::<Vec<_>>(),
        ["application/pdf", "image/png"]
    );
    assert_ne!(ids[0].0, ids[1].0);

    // Results objects (read back through S3) and records (DynamoDB).
    let results = backend.objects(&stack.results);
    let records = backend.records(&stack.table);
    for ((id, _, results_key), (doc, key)) in ids.iter().zip([
        (&samples::REFERRAL, pdf_key),
        (&samples::DISCHARGE, png_key),
    ]) {
        let (bytes, _) = results
            .get(results_key)
            .await
            .unwrap()
            .expect("results object");
        let r: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(
            r["source"]["key"], key,
            "the key with spaces and '+' decoded"
        );
        let meds: Vec<String> = r["entities"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|e| e["category"] == "MEDICATION")
            .map(|e| e["text"].as_str().unwrap().to_lowercase())
            .collect();
        for m in doc.medications {
            assert!(meds.contains(&m.to_string()), "{m} missing from {meds:?}");
        }
        let rec = records
            .get(&format!("DOC#{id}"), "DOCUMENT")
            .await
            .unwrap()
            .expect("document record");
        assert_eq!(rec.data["results"]["key"], results_key.as_str());
    }

    // DLQ: each bad upload once, with its code; details name no key.
    let dead = receive_all(dlq.as_ref(), false).await;
    let mut codes: BTreeMap<String, usize> = BTreeMap::new();
    for m in &dead {
        let meta = FailureMetadata::from_attributes(&m.attributes).expect("fleet.failure");
        assert!(!meta.detail.contains("Marchetti") && !meta.detail.contains("letter"));
        *codes.entry(meta.code.to_string()).or_default() += 1;
    }
    let want: BTreeMap<String, usize> = bad.iter().map(|b| (b.2.to_string(), 1)).collect();
    assert_eq!(codes, want);

    // The configuration's test event was acknowledged and ignored.
    assert!(
        log.contains("s3:TestEvent acknowledged"),
        "no test event seen"
    );
    // No document text, name or key in any log line, at any level.
    let secrets: Vec<String> = samples::secrets()
        .into_iter()
        .map(String::from)
        .chain(["Quillfeather referral", "a letter+draft", "Marchetti gone"].map(String::from))
        .collect();
    assert_no_phi(&log, &secrets);
}

fn tail(log: &str) -> String {
    let lines: Vec<&str> = log.lines().collect();
    lines[lines.len().saturating_sub(30)..].join("\n")
}
