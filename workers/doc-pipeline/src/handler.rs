//! The two handlers: [`UploadHandler`] for S3 event notifications and [`CompletionHandler`]
//! for Textract completion notifications, sharing one [`Pipeline`].
//!
//! Per document: if its record exists, the stored event is published again (same id) and
//! nothing else happens. Otherwise head → size checks → get → type by content → OCR (or the
//! text itself) → entities → results JSON to the results bucket → the document record (one
//! conditional write, "not exists": the idempotency check) → `DocumentProcessed`.
//! Asynchronous OCR first writes a job record keyed by the document's token (which Textract
//! hands back as the job tag), then starts the job and acknowledges the upload; the completion
//! handler picks up from the job record. Nothing here logs a key or a word of the document.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use fleet_core::phi::Phi;
use fleet_core::ports::{
    Condition, ConditionalPut, LimitedGet, ObjectStore, PutOutcome, Record, RecordStore,
};
use fleet_core::{Backend, ErrorCode, EventEnvelope};
use fleet_docs::completion;
use fleet_docs::s3event::{self, Notification, ObjectRef};
use fleet_docs::schema::{Category, Entity, OcrResult, TraitName};
use fleet_docs::{Document, EntityExtractor, MediaType, ObjectLocation, Ocr, OcrStart};
// A step stops with the fleet's failure type: a port error becomes one through
// `Failure::from_port` (the `?`s below); an OCR or extraction error already is one.
use fleet_runtime::{Delivery, EventPublisher, Failure, Handler, Outcome};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::events::{self, PhiPolicy};
use crate::ocr_jobs::{JobOutcome, JobRecord, SK_JOB, Trigger, job_pk, pending_entry};

const SK_DOCUMENT: &str = "DOCUMENT";
/// When a completion arrives for a job that still reports IN_PROGRESS (results not yet
/// consistent), or that another delivery or the sweeper is finishing, look again after this
/// long.
const JOB_IN_PROGRESS_RETRY: Duration = Duration::from_secs(15);
/// Version of the results JSON layout.
pub const RESULTS_SCHEMA_VERSION: &str = "1";

/// What happened to one document (for tests, the demo and logs).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Processed {
    /// Results, record and event written.
    New { document_id: String },
    /// Already processed: the stored event was published again.
    Republished { document_id: String },
    /// An asynchronous OCR job was started; the completion handler (or the sweeper) finishes it.
    JobStarted { document_id: String },
    /// The job was finished before (by its completion or by the sweeper): nothing was done
    /// and nothing published again.
    AlreadyFinished { document_id: String },
}

/// The document as the records know it. The key is PHI-bearing: it is stored (encrypted),
/// never logged, and only in the event under the full policy.
#[derive(Clone, Serialize, Deserialize)]
pub(crate) struct Source {
    bucket: String,
    key: String,
    version_id: Option<String>,
    etag: Option<String>,
    size: u64,
    media_type: MediaType,
}

/// Everything both handlers need.
pub struct Pipeline {
    pub backend: Arc<dyn Backend>,
    /// The buckets an S3 event may name (`FLEET_DOC_BUCKETS`); any other is refused unread.
    pub upload_buckets: Vec<String>,
    pub records: Arc<dyn RecordStore>,
    pub results: Arc<dyn ObjectStore>,
    pub results_bucket: String,
    pub results_prefix: String,
    pub publisher: EventPublisher,
    pub ocr: Arc<dyn Ocr>,
    pub extractor: Arc<dyn EntityExtractor>,
    pub max_document_bytes: u64,
    pub policy: PhiPolicy,
}

fn document_pk(document_id: &str) -> String {
    format!("DOC#{document_id}")
}

/// The OCR token of a document: its id without dashes (32 of `[0-9a-f]`, within Textract's
/// 64-character `[A-Za-z0-9_-]` for ClientRequestToken and JobTag).
pub(crate) fn token(document_id: &str) -> String {
    document_id.replace('-', "")
}

/// An S3 event naming a bucket outside the allow-list. The bucket's name is producer data:
/// the detail does not repeat it.
fn bucket_not_allowed() -> Failure {
    Failure::permanent(
        ErrorCode::DocumentBucketNotAllowed,
        "the S3 event names a bucket that is not an upload bucket of this worker (FLEET_DOC_BUCKETS); nothing was read",
    )
}

impl Pipeline {
    /// Whether S3 events may name `bucket`.
    pub fn reads_bucket(&self, bucket: &str) -> bool {
        self.upload_buckets.iter().any(|b| b == bucket)
    }

    /// Process one created object from an upload notification.
    pub async fn process_object(
        &self,
        obj: &ObjectRef,
        correlation_id: &str,
    ) -> Result<Processed, Failure> {
        if !self.reads_bucket(&obj.bucket) {
            return Err(bucket_not_allowed());
        }
        let document_id = events::document_id(&obj.idempotency_key());
        if self.republish_if_done(&document_id).await? {
            return Ok(Processed::Republished { document_id });
        }
        let key = obj.key.expose();
        let store = self.backend.objects(&obj.bucket);
        let not_found = || {
            Failure::permanent(
                ErrorCode::DocumentNotFound,
                "the object no longer exists (deleted before it was processed)",
            )
        };
        let meta = store.head(key).await?.ok_or_else(not_found)?;
        self.check_size(meta.size)?;
        // Bounded: an object replaced by a larger one after the HEAD is never held whole.
        let (bytes, meta) = match store
            .get_limited(key, self.max_document_bytes)
            .await?
            .ok_or_else(not_found)?
        {
            LimitedGet::Read(bytes, meta) => (bytes, meta),
            LimitedGet::TooLarge => {
                return Err(Failure::permanent(
                    ErrorCode::DocumentTooLarge,
                    format!(
                        "grew above the configured maximum of {} bytes after its HEAD",
                        self.max_document_bytes
                    ),
                ));
            }
        };
        self.check_size(bytes.len() as u64)?;
        let media_type =
            MediaType::sniff(&bytes, key, meta.content_type.as_deref()).ok_or_else(|| {
                Failure::permanent(
                    ErrorCode::DocumentUnsupportedType,
                    // The Content-Type header is the uploader's text: its length only.
                    format!(
                        "content is not PDF, PNG, JPEG, TIFF or UTF-8 text (content type {})",
                        meta.content_type
                            .as_deref()
                            .map_or("unset".to_string(), |c| format!(
                                "of {} characters",
                                c.chars().count()
                            ))
                    ),
                )
            })?;
        let source = Source {
            bucket: obj.bucket.clone(),
            key: key.clone(),
            version_id: obj.version_id.clone().or(meta.version_id.clone()),
            etag: obj.etag.clone().or(meta.etag.clone()),
            size: bytes.len() as u64,
            media_type,
        };
        tracing::info!(
            document_id = %document_id,
            media_type = media_type.mime(),
            size = source.size,
            "document received"
        );
        if media_type == MediaType::Text {
            let text = std::str::from_utf8(&bytes)
                .map_err(|_| Failure::permanent(ErrorCode::DocumentCorrupt, "text is not UTF-8"))?;
            let ocr = OcrResult::from_plain_text(text);
            return self
                .finish(&document_id, &source, ocr, "none", correlation_id)
                .await;
        }
        let document = Document {
            media_type,
            bytes,
            location: Some(ObjectLocation {
                bucket: source.bucket.clone(),
                key: Phi(source.key.clone()),
                version_id: source.version_id.clone(),
            }),
        };
        let token = token(&document_id);
        let mut job = JobRecord::new(&document_id, source.clone(), correlation_id);
        if self.ocr.starts_job(media_type) {
            // Recorded before the job exists, so its completion always finds the record.
            self.put_job(&token, &job, None).await?;
        }
        match self.ocr.start(&document, &token).await? {
            OcrStart::Done(ocr) => {
                let engine = self.ocr.name();
                self.finish(&document_id, &source, ocr, engine, correlation_id)
                    .await
            }
            OcrStart::Started { job_id } => {
                job.job_id = Some(job_id.clone());
                // The job id, and the job among the started ones the sweeper looks at.
                self.put_job(&token, &job, Some(pending_entry(&token, &job)))
                    .await?;
                tracing::info!(document_id = %document_id, job_id = %job_id, "OCR job started");
                Ok(Processed::JobStarted { document_id })
            }
        }
    }

    /// Finish a document whose asynchronous OCR job has completed.
    pub async fn process_completion(&self, body: &str) -> Result<Processed, Failure> {
        let done = completion::parse(body)
            .map_err(|e| Failure::permanent(ErrorCode::OcrCompletionInvalid, e.to_string()))?;
        if done.api != "StartDocumentTextDetection" {
            return Err(Failure::permanent(
                ErrorCode::OcrCompletionInvalid,
                // The API name is the completion's text: shown only when Textract's own.
                format!(
                    "completion of {}, which this worker never starts",
                    match done.api.as_str() {
                        api @ ("StartDocumentAnalysis"
                        | "StartExpenseAnalysis"
                        | "StartLendingAnalysis") => api.to_string(),
                        other => format!("an API of {} characters", other.chars().count()),
                    }
                ),
            ));
        }
        let tag = done.job_tag.as_deref().ok_or_else(|| {
            Failure::permanent(
                ErrorCode::OcrCompletionInvalid,
                "the completion has no JobTag",
            )
        })?;
        let record = self.records.get(&job_pk(tag), SK_JOB).await?.ok_or_else(|| {
            Failure::permanent(
                ErrorCode::OcrJobUnknown,
                "no job record for this JobTag: not started by this deployment, or its record expired",
            )
        })?;
        let job = JobRecord::read(&record)?;
        // Accepted only for the job the store recorded, for the document it was started for.
        if token(&job.document_id) != tag {
            return Err(Failure::permanent(
                ErrorCode::OcrJobUnknown,
                "the job record under this JobTag belongs to another document",
            ));
        }
        match job.job_id.as_deref() {
            // The completion overtook the upload handler's second write: it is moments away.
            None => {
                return Err(Failure::retryable(
                    "ocr_in_progress",
                    "the job's id is not recorded yet",
                )
                .after(JOB_IN_PROGRESS_RETRY));
            }
            Some(recorded) if recorded != done.job_id => {
                return Err(Failure::permanent(
                    ErrorCode::OcrJobUnknown,
                    "the JobId is not the job recorded for this document's JobTag",
                ));
            }
            Some(_) => {}
        }
        let document_id = job.document_id.clone();
        match self
            .settle_job(tag, record, job, Trigger::Completion(done.status))
            .await?
        {
            JobOutcome::Finished(processed) => Ok(processed),
            JobOutcome::AlreadyFinished => Ok(Processed::AlreadyFinished { document_id }),
            JobOutcome::StillRunning | JobOutcome::Busy => {
                Err(Failure::retry("ocr_in_progress").after(JOB_IN_PROGRESS_RETRY))
            }
        }
    }

    fn check_size(&self, size: u64) -> Result<(), Failure> {
        if size == 0 {
            return Err(Failure::permanent(
                ErrorCode::DocumentEmpty,
                "the object has zero bytes",
            ));
        }
        if size > self.max_document_bytes {
            return Err(Failure::permanent(
                ErrorCode::DocumentTooLarge,
                format!(
                    "{size} bytes, above the configured maximum of {}",
                    self.max_document_bytes
                ),
            ));
        }
        Ok(())
    }

    /// Publish the stored event again when the document's record exists.
    pub(crate) async fn republish_if_done(&self, document_id: &str) -> Result<bool, Failure> {
        let Some(stored) = self
            .records
            .get(&document_pk(document_id), SK_DOCUMENT)
            .await?
        else {
            return Ok(false);
        };
        let envelope: EventEnvelope = serde_json::from_value(stored.data["envelope"].clone())
            .map_err(|_| {
                Failure::permanent(
                    ErrorCode::DownstreamRejected,
                    "stored document record has no readable envelope",
                )
            })?;
        self.publisher.publish(events::bus_event(&envelope)).await?;
        tracing::info!(document_id = %document_id, "already processed; event published again");
        Ok(true)
    }

    pub(crate) async fn finish(
        &self,
        document_id: &str,
        source: &Source,
        ocr: OcrResult,
        ocr_engine: &str,
        correlation_id: &str,
    ) -> Result<Processed, Failure> {
        let text = ocr.text();
        let entities = self.extractor.detect(&text).await?;
        let results_key = format!("{}{document_id}.json", self.results_prefix);
        let processed_at = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
        let results = json!({
            "schema_version": RESULTS_SCHEMA_VERSION,
            "document_id": document_id,
            "source": source,
            "processed_at": processed_at,
            "ocr_engine": ocr_engine,
            "extractor": self.extractor.name(),
            "text": text,
            "ocr": ocr,
            "entities": entities,
        });
        let body = serde_json::to_vec(&results).expect("results serialise");
        self.results
            .put(&results_key, body, "application/json")
            .await?;

        let payload = json!({
            "document_id": document_id,
            "source": {
                "bucket": source.bucket,
                "version_id": source.version_id,
                "etag": source.etag,
                "size": source.size,
                "media_type": source.media_type.mime(),
            },
            "results": {"bucket": self.results_bucket, "key": results_key},
            "ocr": ocr_summary(&ocr, ocr_engine),
            "entities": entity_summary(&entities, self.extractor.name()),
        });
        let envelope = events::build(
            document_id,
            payload,
            &source.key,
            self.policy,
            &processed_at,
            correlation_id,
        );
        let outcome = self
            .records
            .put(ConditionalPut {
                record: Record {
                    pk: document_pk(document_id),
                    sk: SK_DOCUMENT.into(),
                    order: chrono::Utc::now().timestamp_millis(),
                    expires_at: None,
                    data: json!({
                        "document_id": document_id,
                        "status": "processed",
                        "source": source,
                        "results": {"bucket": self.results_bucket, "key": results_key},
                        "entity_count": entities.len(),
                        "envelope": envelope,
                    }),
                },
                condition: Condition::NotExists,
            })
            .await?;
        if outcome == PutOutcome::ConditionFailed {
            // Another delivery finished first: its event is the one to (re)publish.
            self.republish_if_done(document_id).await?;
            return Ok(Processed::Republished {
                document_id: document_id.to_string(),
            });
        }
        self.publisher.publish(events::bus_event(&envelope)).await?;
        tracing::info!(
            document_id = %document_id,
            pages = ocr.pages.len(),
            entities = entities.len(),
            "document processed"
        );
        Ok(Processed::New {
            document_id: document_id.to_string(),
        })
    }
}

fn ocr_summary(ocr: &OcrResult, engine: &str) -> Value {
    let lines: Vec<_> = ocr.pages.iter().flat_map(|p| &p.lines).collect();
    let words: usize = lines.iter().map(|l| l.words.len()).sum();
    let mean_confidence = if lines.is_empty() {
        None
    } else {
        Some(lines.iter().map(|l| f64::from(l.confidence)).sum::<f64>() / lines.len() as f64)
    };
    json!({
        "engine": engine,
        "pages": ocr.pages.len(),
        "lines": lines.len(),
        "words": words,
        "mean_line_confidence": mean_confidence,
        "warnings": ocr.warnings,
    })
}

fn entity_summary(entities: &[Entity], extractor: &str) -> Value {
    let mut by_category = serde_json::Map::new();
    for e in entities {
        let name = serde_json::to_value(e.category)
            .ok()
            .and_then(|v| v.as_str().map(str::to_string))
            .unwrap_or_default();
        let n = by_category.get(&name).and_then(Value::as_u64).unwrap_or(0);
        by_category.insert(name, json!(n + 1));
    }
    let negated = entities
        .iter()
        .filter(|e| e.traits.iter().any(|t| t.name == TraitName::Negation))
        .count();
    let medications = entities
        .iter()
        .filter(|e| e.category == Category::Medication)
        .count();
    json!({
        "extractor": extractor,
        "total": entities.len(),
        "by_category": by_category,
        "medications": medications,
        "negated": negated,
    })
}

/// Consumes the upload queue.
pub struct UploadHandler(pub Arc<Pipeline>);

#[async_trait]
impl Handler for UploadHandler {
    async fn handle(&self, delivery: &Delivery) -> Outcome {
        let objects = match s3event::parse(&delivery.body) {
            Ok(Notification::TestEvent) => {
                tracing::info!("s3:TestEvent acknowledged and ignored");
                return Outcome::Done;
            }
            Ok(Notification::Ignored { event_names }) => {
                // The names are the notification's text: counted, not logged (issue 16 item 4).
                tracing::info!(
                    events = event_names.len(),
                    "not an object creation; ignored"
                );
                return Outcome::Done;
            }
            Ok(Notification::Objects(objects)) => objects,
            Err(e) => return Outcome::fail(e.code(), e.to_string()),
        };
        // Every record's bucket before any record is processed: one foreign bucket refuses the
        // whole notification, and nothing of it is read.
        if objects.iter().any(|obj| !self.0.reads_bucket(&obj.bucket)) {
            return bucket_not_allowed().into();
        }
        for obj in &objects {
            if let Err(failure) = self.0.process_object(obj, &delivery.correlation_id).await {
                return ocr_timeout_retried_once(failure, delivery.attempt).into();
            }
        }
        Outcome::Done
    }
}

/// An OCR tool killed on its timeout is retried once (another machine, a quieter moment may
/// finish it); on the next attempt it is the permanent `OCR_FAILED`, so a document that
/// always outlasts the timeout (a bomb) costs two runs, not every attempt.
pub(crate) fn ocr_timeout_retried_once(failure: Failure, attempt: u32) -> Failure {
    match failure {
        Failure::Retryable { reason, detail, .. }
            if reason == fleet_docs::OCR_TIMEOUT && attempt >= 2 =>
        {
            Failure::permanent(
                ErrorCode::OcrFailed,
                format!("{detail} (attempt {attempt}; an OCR timeout is retried once)"),
            )
        }
        other => other,
    }
}

/// Consumes the Textract completion queue.
pub struct CompletionHandler(pub Arc<Pipeline>);

#[async_trait]
impl Handler for CompletionHandler {
    async fn handle(&self, delivery: &Delivery) -> Outcome {
        self.0.process_completion(&delivery.body).await.into()
    }
}
