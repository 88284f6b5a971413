//! Issue 15 item 10, lost Textract completions, on both record stores (SQLite and DynamoDB on
//! moto): the doc-pipeline's `Pipeline` with a scripted asynchronous OCR engine standing in
//! for Textract at the port (the adapter's own answers, `InvalidJobIdException` included, are
//! tested with aws-smithy-mocks in `shared/fleet-aws/tests/it/textract.rs`) and a bus that
//! records every event put, so a second publish cannot hide.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use doc_pipeline::events::PhiPolicy;
use doc_pipeline::{Pipeline, Processed};
use fleet_core::ports::{BatchResult, BusEvent, EventBus};
use fleet_core::{Backend, ErrorCode, PortError};
use fleet_docs::completion::notification_json;
use fleet_docs::s3event::{self, Notification, ObjectRef};
use fleet_docs::schema::OcrResult;
use fleet_docs::{DocError, Document, MediaType, Ocr, OcrJob, OcrStart};
use fleet_docs_local::rules::RulesExtractor;
use fleet_runtime::{EventPublisher, Failure};
use fleet_testkit::ProvisionExt as _;
use fleet_testkit::{aws_backend, local_backend, unique};
use tokio_util::sync::CancellationToken;

const JOB_ID: &str = "8d4f1b2a6c0e4a9b8f7e6d5c4b3a29180f1e2d3c4b5a69788796a5b4c3d2e1f0";
const KEY: &str = "scans/Thistlewood referral.pdf";
const NEVER: Duration = Duration::from_secs(3600);

/// Every event put, in order.
#[derive(Default)]
struct RecordingBus(Mutex<Vec<BusEvent>>);

#[async_trait]
impl EventBus for RecordingBus {
    fn id(&self) -> &str {
        "recording"
    }
    async fn put_events(&self, events: &[BusEvent]) -> Result<BatchResult, PortError> {
        self.0.lock().unwrap().extend_from_slice(events);
        Ok(BatchResult::default())
    }
}

/// Textract at the port: every PDF starts job `JOB_ID`; `collect` answers what the test set.
struct ScriptedOcr {
    answer: Mutex<Result<OcrJob, DocError>>,
    collected: Mutex<Vec<String>>,
}

impl ScriptedOcr {
    fn answer(&self, a: Result<OcrJob, DocError>) {
        *self.answer.lock().unwrap() = a;
    }
    fn collected(&self) -> usize {
        self.collected.lock().unwrap().len()
    }
}

#[async_trait]
impl Ocr for ScriptedOcr {
    fn name(&self) -> &'static str {
        "textract"
    }
    fn starts_job(&self, media_type: MediaType) -> bool {
        media_type.multi_page()
    }
    async fn start(&self, _document: &Document, _token: &str) -> Result<OcrStart, DocError> {
        Ok(OcrStart::Started {
            job_id: JOB_ID.into(),
        })
    }
    async fn collect(&self, job_id: &str) -> Result<OcrJob, DocError> {
        self.collected.lock().unwrap().push(job_id.to_string());
        self.answer.lock().unwrap().clone()
    }
}

struct Rig {
    pipeline: Arc<Pipeline>,
    ocr: Arc<ScriptedOcr>,
    bus: Arc<RecordingBus>,
    backend: Arc<dyn Backend>,
    table: String,
    uploads: String,
    _dir: Option<tempfile::TempDir>,
}

impl Rig {
    fn new(backend: Arc<dyn Backend>, table: &str, uploads: &str, results: &str) -> Self {
        let ocr = Arc::new(ScriptedOcr {
            answer: Mutex::new(Ok(OcrJob::InProgress)),
            collected: Mutex::default(),
        });
        let bus = Arc::new(RecordingBus::default());
        let pipeline = Arc::new(Pipeline {
            upload_buckets: vec![uploads.into()],
            records: backend.records(table),
            results: backend.objects(results),
            results_bucket: results.into(),
            results_prefix: "results/".into(),
            publisher: EventPublisher::new(bus.clone(), Duration::from_millis(1)),
            ocr: ocr.clone(),
            extractor: Arc::new(RulesExtractor::new()),
            max_document_bytes: 10 * 1024 * 1024,
            policy: PhiPolicy::Minimal,
            backend: backend.clone(),
        });
        Self {
            pipeline,
            ocr,
            bus,
            backend,
            table: table.into(),
            uploads: uploads.into(),
            _dir: None,
        }
    }

    fn local() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let backend: Arc<dyn Backend> = Arc::new(local_backend(dir.path()));
        let mut rig = Self::new(backend, "docs", "uploads", "results");
        rig._dir = Some(dir);
        rig
    }

    async fn moto() -> Self {
        let backend = aws_backend().await;
        let p = backend.provisioner();
        let (table, uploads, results) = (unique("docs"), unique("uploads"), unique("results"));
        p.create_table(&table).await.unwrap();
        p.create_bucket(&uploads, None).await.unwrap();
        p.create_bucket(&results, None).await.unwrap();
        Self::new(Arc::new(backend), &table, &uploads, &results)
    }

    /// Upload a PDF and handle its S3 event: the job is started and recorded.
    async fn start_job(&self) -> (ObjectRef, String) {
        let pdf = fleet_docs_local::render::text_to_pdf("Referral: metformin 500 mg daily.");
        let meta = self
            .backend
            .objects(&self.uploads)
            .put(KEY, pdf, "application/pdf")
            .await
            .unwrap();
        let body = s3event::object_created_event(
            &self.uploads,
            KEY,
            meta.size,
            meta.etag.as_deref().unwrap_or("etag"),
        );
        let Notification::Objects(mut objs) = s3event::parse(&body).unwrap() else {
            panic!("not an object event")
        };
        let obj = objs.remove(0);
        let processed = self.pipeline.process_object(&obj, "corr-1").await.unwrap();
        let Processed::JobStarted { document_id } = processed else {
            panic!("expected a started job, got {processed:?}")
        };
        (obj, document_id)
    }

    async fn sweep(&self, older_than: Duration) -> doc_pipeline::SweepReport {
        self.pipeline
            .sweep_ocr_jobs(older_than, &CancellationToken::new())
            .await
            .unwrap()
    }

    fn events(&self) -> usize {
        self.bus.0.lock().unwrap().len()
    }

    async fn document_record(&self, document_id: &str) -> Option<fleet_core::ports::Record> {
        self.backend
            .records(&self.table)
            .get(&format!("DOC#{document_id}"), "DOCUMENT")
            .await
            .unwrap()
    }

    /// The completion Textract would send for `job_id` of this document.
    async fn complete(
        &self,
        document_id: &str,
        job_id: &str,
        status: &str,
    ) -> Result<Processed, Failure> {
        let tag = document_id.replace('-', "");
        let body = notification_json(job_id, status, &tag, &self.uploads, KEY);
        self.pipeline.process_completion(&body).await
    }
}

fn done() -> Result<OcrJob, DocError> {
    Ok(OcrJob::Done(OcrResult::from_plain_text(
        "Referral: metformin 500 mg daily.",
    )))
}

fn code(r: Result<Processed, Failure>) -> ErrorCode {
    match r {
        Err(f) => f.code().unwrap_or_else(|| panic!("retryable: {f:?}")),
        Ok(p) => panic!("expected a failure, got {p:?}"),
    }
}

/// The completion never arrives: the sweeper finishes the document exactly once, and the late
/// completion that does arrive afterwards publishes nothing more.
async fn lost_completion_is_swept(rig: Rig) {
    let (_, document_id) = rig.start_job().await;

    // Younger than the sweep age: not even looked at.
    assert_eq!(rig.sweep(NEVER).await.looked_at, 0);
    assert_eq!(rig.ocr.collected(), 0);

    // Old enough, but Textract still runs it: left open.
    let report = rig.sweep(Duration::ZERO).await;
    assert_eq!((report.looked_at, report.open), (1, 1), "{report:?}");
    assert_eq!(rig.events(), 0);

    // Finished at Textract, notification lost: the sweeper collects it by its recorded id.
    rig.ocr.answer(done());
    let report = rig.sweep(Duration::ZERO).await;
    assert_eq!((report.looked_at, report.finished), (1, 1), "{report:?}");
    assert_eq!(rig.ocr.collected.lock().unwrap().last().unwrap(), JOB_ID);
    assert_eq!(rig.events(), 1);
    assert!(rig.document_record(&document_id).await.is_some());

    // Settled: the next sweep has nothing to look at.
    let collected = rig.ocr.collected();
    assert_eq!(rig.sweep(Duration::ZERO).await.looked_at, 0);

    // The notification arrives after all: accepted, nothing collected or published again.
    let late = rig
        .complete(&document_id, JOB_ID, "SUCCEEDED")
        .await
        .unwrap();
    assert_eq!(late, Processed::AlreadyFinished { document_id });
    assert_eq!(rig.events(), 1);
    assert_eq!(rig.ocr.collected(), collected);
}

/// A completion for another job id under a known JobTag, or for a JobTag the store does not
/// know, is refused with OCR_JOB_UNKNOWN and reads or writes nothing; the real one then
/// finishes the document.
async fn completion_for_unknown_job_is_refused(rig: Rig) {
    let (_, document_id) = rig.start_job().await;
    rig.ocr.answer(done());

    let other = "0000000000000000000000000000000000000000000000000000000000000000";
    let refused = rig.complete(&document_id, other, "SUCCEEDED").await;
    assert_eq!(code(refused), ErrorCode::OcrJobUnknown);
    let unknown_doc = "00000000-0000-5000-8000-000000000000";
    let refused = rig.complete(unknown_doc, JOB_ID, "SUCCEEDED").await;
    assert_eq!(code(refused), ErrorCode::OcrJobUnknown);
    assert_eq!(rig.ocr.collected(), 0, "no job was looked up for them");
    assert_eq!(rig.events(), 0);
    assert!(rig.document_record(&document_id).await.is_none());

    let accepted = rig
        .complete(&document_id, JOB_ID, "SUCCEEDED")
        .await
        .unwrap();
    assert_eq!(accepted, Processed::New { document_id });
    assert_eq!(rig.events(), 1);
}

/// Textract no longer knows the job (its 7 days are over): the sweeper fails the document
/// with OCR_TIMED_OUT, once; a completion replayed later gets the same verdict.
async fn expired_job_is_timed_out(rig: Rig) {
    let (_, document_id) = rig.start_job().await;
    rig.ocr.answer(Err(DocError::permanent(
        ErrorCode::OcrJobUnknown,
        "textract.GetDocumentTextDetection: InvalidJobIdException (HTTP 400)",
    )));
    let report = rig.sweep(Duration::ZERO).await;
    assert_eq!(report.failed, vec![ErrorCode::OcrTimedOut], "{report:?}");
    assert_eq!(rig.sweep(Duration::ZERO).await.looked_at, 0, "settled");
    assert_eq!(rig.events(), 0);
    let replayed = rig.complete(&document_id, JOB_ID, "SUCCEEDED").await;
    assert_eq!(code(replayed), ErrorCode::OcrTimedOut);
    assert_eq!(rig.ocr.collected(), 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn item10_lost_textract_completion_is_swept_local() {
    lost_completion_is_swept(Rig::local()).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn item10_lost_textract_completion_is_swept_moto() {
    lost_completion_is_swept(Rig::moto().await).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn item10_completion_for_unknown_job_is_refused_local() {
    completion_for_unknown_job_is_refused(Rig::local()).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn item10_completion_for_unknown_job_is_refused_moto() {
    completion_for_unknown_job_is_refused(Rig::moto().await).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn item10_expired_textract_job_is_ocr_timed_out_local() {
    expired_job_is_timed_out(Rig::local()).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn item10_expired_textract_job_is_ocr_timed_out_moto() {
    expired_job_is_timed_out(Rig::moto().await).await;
}
