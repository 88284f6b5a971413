//! Issue 16 item 3 through the worker: an OCR tool that never finishes (a real process, a
//! script standing in for Tesseract that starts a child and waits) is killed on its timeout
//! with everything it started, retried once, then dead-lettered as `OCR_FAILED` with the
//! original body: nothing lost, nothing left running, nothing written, nothing published.

use std::os::unix::fs::PermissionsExt;
use std::sync::Arc;
use std::time::Duration;

use doc_pipeline::events::PhiPolicy;
use doc_pipeline::{Pipeline, UploadHandler};
use fleet_core::ports::OutgoingMessage;
use fleet_core::{Backend, ErrorCode, FailureMetadata};
use fleet_docs::s3event;
use fleet_docs_local::ocr::{LocalOcrConfig, TesseractOcr};
use fleet_docs_local::render;
use fleet_docs_local::rules::RulesExtractor;
use fleet_local::{LocalBackend, QueueSpec};
use fleet_runtime::{BackoffPolicy, EventPublisher, RuntimeConfig};
use tokio_util::sync::CancellationToken;

/// Made up; it is in the scanned page and in the object key, and must appear in no detail.
const PATIENT: &str = "Marbeck";

/// Whether process `pid` is gone: no such process, or a zombie waiting to be reaped.
fn gone(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => true,
        Ok(stat) => stat
            .rsplit_once(") ")
            .is_some_and(|(_, rest)| rest.starts_with('Z')),
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn item3_an_ocr_timeout_is_retried_once_then_dead_lettered_as_ocr_failed() {
    let dir = tempfile::tempdir().unwrap();
    let temp_root = dir.path().join("tmp");
    std::fs::create_dir(&temp_root).unwrap();
    let pids = dir.path().join("pids");
    // Stands in for Tesseract: starts a child, records both pids (one line per run), waits.
    let stuck = dir.path().join("stuck-tesseract");
    std::fs::write(
        &stuck,
        format!(
            "#!/bin/sh\nsleep 300 &\necho $$ $! >> '{}'\nwait\n",
            pids.display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&stuck, std::fs::Permissions::from_mode(0o755)).unwrap();

    let local =
        LocalBackend::open(&dir.path().join("db.sqlite"), &dir.path().join("objects")).unwrap();
    let backend: Arc<dyn Backend> = Arc::new(local.clone());
    let pipeline = Arc::new(Pipeline {
        upload_buckets: vec!["uploads".into()],
        records: backend.records("documents"),
        results: backend.objects("results"),
        results_bucket: "results".into(),
        results_prefix: "results/".into(),
        publisher: EventPublisher::new(backend.event_bus("fleet"), Duration::from_millis(1)),
        ocr: Arc::new(TesseractOcr::new(LocalOcrConfig {
            tesseract: stuck,
            page_timeout: Duration::from_secs(1),
            temp_root: temp_root.clone(),
            ..LocalOcrConfig::default()
        })),
        extractor: Arc::new(RulesExtractor::new()),
        max_document_bytes: 20 * 1024 * 1024,
        policy: PhiPolicy::Minimal,
        backend: backend.clone(),
    });

    let spec = |redrive| QueueSpec {
        visibility_timeout: Duration::from_secs(30),
        redrive,
        ..QueueSpec::default()
    };
    local.create_queue("uploads-dlq", spec(None)).unwrap();
    local
        .create_queue("uploads-q", spec(Some(("uploads-dlq".into(), 10))))
        .unwrap();
    let png = render::pdf_to_png_pages(&render::text_to_pdf(&format!("{PATIENT} 1961")), 100)
        .await
        .unwrap()
        .remove(0);
    let key = format!("scans/{PATIENT}.png");
    let meta = local
        .objects("uploads")
        .put(&key, png, "image/png")
        .await
        .unwrap();
    let body = s3event::object_created_event("uploads", &key, meta.size, "e1");
    local
        .queue("uploads-q")
        .await
        .unwrap()
        .send(OutgoingMessage {
            body: body.clone(),
            ..Default::default()
        })
        .await
        .unwrap();

    let mut rt = RuntimeConfig::new("doc-pipeline", "uploads-q");
    rt.allow_unencrypted = true;
    rt.wait_time = Duration::from_millis(200);
    rt.max_attempts = 4;
    rt.backoff = BackoffPolicy {
        base: Duration::from_millis(200),
        cap: Duration::from_secs(1),
    };
    let shutdown = CancellationToken::new();
    let run = tokio::spawn(fleet_runtime::run(
        rt,
        backend.clone(),
        Arc::new(UploadHandler(pipeline)),
        shutdown.clone(),
    ));
    let dlq = local.queue("uploads-dlq").await.unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while dlq.attributes().await.unwrap().approximate_visible < 1
        && std::time::Instant::now() < deadline
    {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    shutdown.cancel();
    let report = run.await.unwrap().unwrap();

    // Dead-lettered with its body, as OCR_FAILED, on the second attempt (not the fourth).
    let dead = local.queue_messages_snapshot("uploads-dlq").unwrap();
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0].body, body, "the original body is kept");
    let failure = FailureMetadata::from_attributes(&dead[0].attributes).unwrap();
    assert_eq!(failure.code, ErrorCode::OcrFailed, "{failure:?}");
    assert_eq!(failure.receive_count, 2, "retried once");
    assert!(
        failure
            .detail
            .contains("stuck-tesseract ran longer than its 1s timeout and was killed"),
        "{}",
        failure.detail
    );
    assert!(!failure.detail.contains(PATIENT), "{}", failure.detail);
    assert_eq!(report.received, 2);
    assert!(
        local
            .queue_messages_snapshot("uploads-q")
            .unwrap()
            .is_empty()
    );

    // Two runs of the tool, and nothing of either left running or on disk.
    let runs: Vec<Vec<u32>> = std::fs::read_to_string(&pids)
        .unwrap()
        .lines()
        .map(|l| l.split_whitespace().map(|p| p.parse().unwrap()).collect())
        .collect();
    assert_eq!(runs.len(), 2, "the tool ran once per attempt");
    let all: Vec<u32> = runs.into_iter().flatten().collect();
    for _ in 0..100 {
        if all.iter().all(|&p| gone(p)) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    for pid in all {
        assert!(gone(pid), "process {pid} outlived the timeout");
    }
    assert_eq!(std::fs::read_dir(&temp_root).unwrap().count(), 0);
    // Nothing written or published for the document.
    assert!(local.list_bus_events("fleet").unwrap().is_empty());
}
