//! The document half of `fleet demo`: sample letters the project writes itself, rendered to a
//! PDF with a text layer, a PNG scan (rasterised, so Tesseract really reads pixels) and a
//! plain-text note, plus one Word file the pipeline must refuse. They are uploaded to the
//! local object store, announced with the S3 event S3 would send, processed by `doc-pipeline`
//! with Tesseract and the rules extractor, and the extracted entities printed.
//!
//! The printed entity texts come from the demo's own invented letters, on the operator's
//! terminal; the worker's log never carries them.

use std::io::Write;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use fleet_backends::BackendKind;
use fleet_core::ports::OutgoingMessage;
use fleet_core::{Backend, FailureMetadata};
use fleet_docs::s3event;
use fleet_local::LocalBackend;
use fleet_samples::docs::{self as samples, SampleDoc};
use serde_json::Value;
use tokio_util::sync::CancellationToken;

pub use crate::local_stack::{DOC_DLQ, DOC_QUEUE, DOC_TABLE, RESULTS_BUCKET, UPLOADS_BUCKET};
const UNSUPPORTED_KEY: &str = "letters/unsupported letter.docx";

/// What the document demo saw.
#[derive(Debug, Default)]
pub struct DocsSummary {
    pub uploaded: usize,
    pub processed: usize,
    pub dead_lettered: usize,
    /// Every sample's medications found, and its negated condition negated.
    pub entities_as_expected: bool,
}

async fn render(doc: &SampleDoc) -> anyhow::Result<(Vec<u8>, &'static str)> {
    let ext = doc.key.rsplit('.').next().unwrap_or("");
    Ok(match ext {
        "pdf" => (
            fleet_docs_local::render::text_to_pdf(doc.text),
            "application/pdf",
        ),
        "png" => {
            let pdf = fleet_docs_local::render::text_to_pdf(doc.text);
            let pages = fleet_docs_local::render::pdf_to_png_pages(&pdf, 300)
                .await
                .context("rasterising the sample scan with pdftoppm")?;
            (
                pages.into_iter().next().context("no page rendered")?,
                "image/png",
            )
        }
        _ => (doc.text.as_bytes().to_vec(), "text/plain"),
    })
}

pub async fn run(dir: &Path, out: &mut impl Write) -> anyhow::Result<DocsSummary> {
    let local = LocalBackend::open(&dir.join("fleet.sqlite"), &dir.join("objects"))
        .context("opening the local backend")?;
    crate::local_stack::provision_docs(&local)?;
    let backend: Arc<dyn Backend> = Arc::new(local.clone());
    let engines = fleet_backends::DocEngineArgs {
        ocr: None,
        extractor: None,
        textract_sns_topic_arn: None,
        textract_role_arn: None,
        local: Default::default(),
    };
    let ocr = engines
        .open_ocr(BackendKind::Local)
        .await
        .context("the document demo needs Tesseract and poppler: run scripts/ocr-tools")?;
    let extractor = engines.open_extractor(BackendKind::Local).await?;

    let events_before = local.list_bus_events(crate::demo::BUS)?.len();
    let dead_before = local.queue_messages_snapshot(DOC_DLQ)?.len();
    let queue = backend.queue(DOC_QUEUE).await?;
    let uploads = backend.objects(UPLOADS_BUCKET);
    let mut uploaded = 0;
    for doc in samples::ALL {
        let (bytes, content_type) = render(doc).await?;
        let meta = uploads.put(doc.key, bytes, content_type).await?;
        let etag = meta.etag.unwrap_or_default();
        queue
            .send(OutgoingMessage {
                body: s3event::object_created_event(UPLOADS_BUCKET, doc.key, meta.size, &etag),
                ..OutgoingMessage::default()
            })
            .await?;
        uploaded += 1;
    }
    let meta = uploads
        .put(
            UNSUPPORTED_KEY,
            b"PK\x03\x04 not a document we read".to_vec(),
            "application/octet-stream",
        )
        .await?;
    queue
        .send(OutgoingMessage {
            body: s3event::object_created_event(UPLOADS_BUCKET, UNSUPPORTED_KEY, meta.size, "x"),
            ..OutgoingMessage::default()
        })
        .await?;
    uploaded += 1;
    writeln!(
        out,
        "\nuploaded {uploaded} documents to bucket {UPLOADS_BUCKET:?} (a PDF with a text layer, a PNG scan, a text note, a Word file) and queued their S3 events on {DOC_QUEUE:?}"
    )?;

    let config = worker_config();
    let shutdown = CancellationToken::new();
    let worker = tokio::spawn(doc_pipeline::run(
        config,
        backend.clone(),
        ocr,
        extractor,
        shutdown.clone(),
    ));
    let started = Instant::now();
    crate::demo::wait_until_drained(queue.as_ref(), Duration::from_secs(180)).await?;
    shutdown.cancel();
    let report = worker.await.context("doc-pipeline task")??;
    writeln!(
        out,
        "doc-pipeline (tesseract + rules) in {:.2} s: received {}, succeeded {}, dead-lettered {}",
        started.elapsed().as_secs_f64(),
        report.uploads.received,
        report.uploads.succeeded,
        report.uploads.dead_lettered
    )?;

    let events: Vec<Value> = local
        .list_bus_events(crate::demo::BUS)?
        .into_iter()
        .skip(events_before)
        .filter(|e| e["detail-type"] == "DocumentProcessed")
        .collect();
    let mut entities_as_expected = events.len() == samples::ALL.len();
    for e in &events {
        let payload = &e["detail"]["payload"];
        let results_key = payload["results"]["key"].as_str().unwrap_or("");
        let (bytes, _) = backend
            .objects(RESULTS_BUCKET)
            .get(results_key)
            .await?
            .context("results object missing")?;
        let results: Value = serde_json::from_slice(&bytes)?;
        // The key names the (invented) patient: the demo shows the sample's title instead,
        // as an operator's output would show the document id.
        let key = results["source"]["key"].as_str().unwrap_or("?");
        let sample = samples::ALL.iter().find(|d| d.key == key);
        writeln!(
            out,
            "\nDocumentProcessed {} ({}, {}, {} pages, OCR {}): event id {}",
            payload["document_id"].as_str().unwrap_or("?"),
            sample.map_or("unknown upload", |d| d.title),
            payload["source"]["media_type"].as_str().unwrap_or("?"),
            payload["ocr"]["pages"],
            payload["ocr"]["engine"].as_str().unwrap_or("?"),
            e["detail"]["event_id"].as_str().unwrap_or("?"),
        )?;
        writeln!(out, "  results: {RESULTS_BUCKET}/{results_key}")?;
        let entities = results["entities"].as_array().cloned().unwrap_or_default();
        for ent in &entities {
            let traits: Vec<&str> = ent["traits"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|t| t["name"].as_str())
                .collect();
            let attrs: Vec<String> = ent["attributes"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|a| {
                    format!(
                        "{}={}",
                        a["attribute_type"].as_str().unwrap_or("?"),
                        one_line(a["text"].as_str().unwrap_or(""))
                    )
                })
                .collect();
            writeln!(
                out,
                "  {:<26} {:<16} {:<28}{}{}",
                ent["category"].as_str().unwrap_or("?"),
                ent["entity_type"].as_str().unwrap_or("?"),
                one_line(ent["text"].as_str().unwrap_or("")),
                if traits.is_empty() {
                    String::new()
                } else {
                    format!(" [{}]", traits.join(", "))
                },
                if attrs.is_empty() {
                    String::new()
                } else {
                    format!(" {}", attrs.join(" "))
                },
            )?;
        }
        if let Some(doc) = sample {
            entities_as_expected &= expected_entities(doc, &entities);
        } else {
            entities_as_expected = false;
        }
    }

    let dead: Vec<_> = local
        .queue_messages_snapshot(DOC_DLQ)?
        .into_iter()
        .skip(dead_before)
        .collect();
    writeln!(out, "\ndead-letter queue {DOC_DLQ:?} ({}):", dead.len())?;
    for m in &dead {
        if let Some(f) = FailureMetadata::from_attributes(&m.attributes) {
            writeln!(out, "  {:<26} {}", f.code.as_str(), f.detail)?;
        }
    }
    Ok(DocsSummary {
        uploaded,
        processed: events.len(),
        dead_lettered: dead.len(),
        entities_as_expected,
    })
}

/// OCR keeps line breaks inside entities that span lines; a table row shows them as spaces.
fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

fn expected_entities(doc: &SampleDoc, entities: &[Value]) -> bool {
    let has = |pred: &dyn Fn(&Value) -> bool| entities.iter().any(pred);
    doc.medications.iter().all(|m| {
        has(&|e| {
            e["category"] == "MEDICATION"
                && e["text"]
                    .as_str()
                    .is_some_and(|t| t.eq_ignore_ascii_case(m))
        })
    }) && has(&|e| {
        e["text"]
            .as_str()
            .is_some_and(|t| t.eq_ignore_ascii_case(doc.negated))
            && e["traits"]
                .as_array()
                .is_some_and(|ts| ts.iter().any(|t| t["name"] == "NEGATION"))
    })
}

fn worker_config() -> doc_pipeline::WorkerConfig {
    let args = [
        format!("--queue={DOC_QUEUE}"),
        format!("--event-bus={}", crate::demo::BUS),
        format!("--table={DOC_TABLE}"),
        format!("--results-bucket={RESULTS_BUCKET}"),
        "--wait-time-secs=1".into(),
        "--allow-unencrypted".into(),
    ];
    crate::sections::parse("the demo's doc-pipeline", &args).expect("the demo's flags are valid")
}
