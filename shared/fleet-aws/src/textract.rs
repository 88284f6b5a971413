//! [`fleet_docs::Ocr`] on Amazon Textract: synchronous `DetectDocumentText` for single-page
//! images, asynchronous `StartDocumentTextDetection` / `GetDocumentTextDetection` for PDF and
//! TIFF, with an SNS completion channel and `ClientRequestToken` idempotency.
//!
//! The adapter keeps no state between calls: a job is collected by its id alone, so a worker
//! restarted after starting a job (or a different replica) collects it.
//!
//! Errors are classified once here (Textract API reference, the "Errors" section of each
//! operation) into [`DocError`]; throttling and transient failures are retried in the call
//! (bounded, see [`InCallRetry`]) before they are returned as retryable. Details carry the
//! operation and the service error code, never document text or object keys.

use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::time::Duration;

use async_trait::async_trait;
use aws_config::BehaviorVersion;
use aws_sdk_textract::Client;
use aws_sdk_textract::config::retry::RetryConfig;
use aws_sdk_textract::operation::detect_document_text::DetectDocumentTextError;
use aws_sdk_textract::operation::get_document_text_detection::GetDocumentTextDetectionError;
use aws_sdk_textract::operation::start_document_text_detection::StartDocumentTextDetectionError;
use aws_sdk_textract::primitives::Blob;
use aws_sdk_textract::types::{
    Block, BlockType, Document as TextractDocument, DocumentLocation, JobStatus,
    NotificationChannel, RelationshipType, S3Object, Warning,
};
use aws_smithy_runtime_api::client::result::SdkError;
use aws_smithy_runtime_api::http::Response as HttpResponse;
use aws_smithy_types::error::metadata::ProvideErrorMetadata;
use backon::{ExponentialBuilder, Retryable};
use fleet_core::ErrorCode;
use fleet_core::phi::Phi;
use fleet_docs::schema::{BoundingBox, Line, OcrResult, OcrWarning, Page, Word};
use fleet_docs::{DocError, Document, MediaType, ObjectLocation, Ocr, OcrJob, OcrStart};

use crate::count::CountRequests;
use crate::error::sanitize_code;

/// Bounds of the retries an adapter makes inside one call (throttling, 5xx, timeouts) before
/// it returns [`DocError::Retryable`] and leaves the rest to the queue's backoff. The SDK's own
/// retries are switched off for these calls, so `max_attempts` is the number of requests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InCallRetry {
    /// Requests per call, the first one included (at least 1).
    pub max_attempts: usize,
    /// The first delay; each next one doubles, with full jitter, up to `max_delay`.
    pub base_delay: Duration,
    pub max_delay: Duration,
}

impl Default for InCallRetry {
    /// 4 attempts, 200 ms base, 5 s cap.
    fn default() -> Self {
        Self {
            max_attempts: 4,
            base_delay: Duration::from_millis(200),
            max_delay: Duration::from_secs(5),
        }
    }
}

impl InCallRetry {
    /// Runs `attempt` until it succeeds, fails permanently, or the attempts are spent.
    /// Retryable errors that carry a `retry_after` hint (a concurrency limit that will not
    /// clear in milliseconds) are returned at once, for the queue to wait on.
    pub(crate) async fn run<T, F, Fut>(self, attempt: F) -> Result<T, DocError>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, DocError>>,
    {
        let backoff = ExponentialBuilder::default()
            .with_min_delay(self.base_delay)
            .with_max_delay(self.max_delay)
            .with_jitter()
            .with_max_times(self.max_attempts.max(1) - 1);
        attempt
            .retry(backoff)
            .when(|e| {
                matches!(
                    e,
                    DocError::Retryable {
                        retry_after: None,
                        ..
                    }
                )
            })
            .notify(|e, delay| {
                // The detail is built from the operation and the service error code only.
                tracing::debug!(error = %e, ?delay, "retrying document service call");
            })
            .await
    }
}

/// Where Textract reports the end of asynchronous jobs.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TextractConfig {
    /// The SNS topic Textract publishes job completion to (`NotificationChannel.SNSTopicArn`).
    pub sns_topic_arn: Option<String>,
    /// The IAM role Textract assumes to publish to it (`NotificationChannel.RoleArn`).
    pub role_arn: Option<String>,
}

/// The Textract OCR adapter.
#[derive(Debug, Clone)]
pub struct TextractOcr {
    client: Client,
    cfg: TextractConfig,
    retry: InCallRetry,
}

/// Textract's page limit for asynchronous PDF/TIFF jobs: gaps between page numbers are filled
/// with empty pages up to this number, never beyond (a bogus `Page` cannot allocate millions).
const MAX_PAGES: u32 = 3000;
/// Result pages fetched for one job before giving up (a 3,000-page document of dense text is
/// about 1,500 pages of 1,000 blocks).
const MAX_RESULT_PAGES: usize = 10_000;
/// What the concurrent-job limit (`LimitExceededException`) asks the queue to wait.
const JOB_LIMIT_RETRY_AFTER: Duration = Duration::from_secs(60);
/// Bound on a failed job's `StatusMessage` in an error detail.
const STATUS_MESSAGE_MAX_CHARS: usize = 200;

const OP_DETECT: &str = "textract.DetectDocumentText";
const OP_START: &str = "textract.StartDocumentTextDetection";
const OP_GET: &str = "textract.GetDocumentTextDetection";

impl TextractOcr {
    /// A client from the standard configuration chain (environment, profiles, SSO, container
    /// roles; `AWS_ENDPOINT_URL` / `AWS_ENDPOINT_URL_TEXTRACT`), counting requests as
    /// "textract.<Operation>".
    pub async fn from_env(cfg: TextractConfig) -> Self {
        let sdk = aws_config::defaults(BehaviorVersion::latest()).load().await;
        let conf = aws_sdk_textract::config::Builder::from(&sdk)
            .interceptor(CountRequests {
                service: "textract",
            })
            .build();
        Self::from_client(Client::from_conf(conf), cfg)
    }

    /// Around an existing client (tests use a mocked one).
    pub fn from_client(client: Client, cfg: TextractConfig) -> Self {
        Self {
            client,
            cfg,
            retry: InCallRetry::default(),
        }
    }

    /// Replaces the in-call retry bounds.
    pub fn with_retry(mut self, retry: InCallRetry) -> Self {
        self.retry = retry;
        self
    }

    async fn detect(&self, document: &Document) -> Result<OcrResult, DocError> {
        let doc = match &document.location {
            Some(loc) => TextractDocument::builder()
                .s3_object(s3_object(loc))
                .build(),
            None => TextractDocument::builder()
                .bytes(Blob::new(document.bytes.clone()))
                .build(),
        };
        let out = self
            .retry
            .run(|| async {
                self.client
                    .detect_document_text()
                    .document(doc.clone())
                    .customize()
                    .config_override(no_sdk_retries())
                    .send()
                    .await
                    .map_err(|e| classify_sdk(OP_DETECT, &e, detect_code))
            })
            .await?;
        let pages = out.document_metadata().and_then(|m| m.pages());
        Ok(ocr_result(out.blocks(), pages, &[]))
    }

    async fn start_job(&self, document: &Document, token: &str) -> Result<String, DocError> {
        let Some(loc) = &document.location else {
            return Err(DocError::permanent(
                ErrorCode::OcrFailed,
                format!("{OP_START}: a multi-page document needs an S3 location"),
            ));
        };
        let channel = self.notification_channel()?;
        if !valid_token(token) {
            return Err(DocError::permanent(
                ErrorCode::OcrFailed,
                format!("{OP_START}: the token must be 1 to 64 characters of [A-Za-z0-9_-]"),
            ));
        }
        let location = DocumentLocation::builder()
            .s3_object(s3_object(loc))
            .build();
        let out = self
            .retry
            .run(|| async {
                self.client
                    .start_document_text_detection()
                    .document_location(location.clone())
                    .client_request_token(token)
                    .job_tag(token)
                    .notification_channel(channel.clone())
                    .customize()
                    .config_override(no_sdk_retries())
                    .send()
                    .await
                    .map_err(|e| classify_sdk(OP_START, &e, start_code))
            })
            .await?;
        match out.job_id() {
            Some(id) if !id.is_empty() => Ok(id.to_string()),
            // The token makes a second start return the same job.
            _ => Err(DocError::retryable(
                "transient",
                format!("{OP_START}: response without a JobId"),
            )),
        }
    }

    fn notification_channel(&self) -> Result<NotificationChannel, DocError> {
        let missing: Vec<&str> = [
            ("sns_topic_arn", self.cfg.sns_topic_arn.as_deref()),
            ("role_arn", self.cfg.role_arn.as_deref()),
        ]
        .into_iter()
        .filter(|(_, v)| v.is_none_or(|v| v.trim().is_empty()))
        .map(|(name, _)| name)
        .collect();
        if !missing.is_empty() {
            return Err(DocError::permanent(
                ErrorCode::OcrFailed,
                format!(
                    "{OP_START}: configuration error: TextractConfig.{} not set; asynchronous \
                     Textract needs an SNS topic and a role Textract may publish to it with",
                    missing.join(" and TextractConfig.")
                ),
            ));
        }
        NotificationChannel::builder()
            .set_sns_topic_arn(self.cfg.sns_topic_arn.clone())
            .set_role_arn(self.cfg.role_arn.clone())
            .build()
            .map_err(|_| {
                DocError::permanent(
                    ErrorCode::OcrFailed,
                    format!("{OP_START}: configuration error: notification channel incomplete"),
                )
            })
    }
}

#[async_trait]
impl Ocr for TextractOcr {
    fn name(&self) -> &'static str {
        "textract"
    }

    /// PDF and TIFF go to the asynchronous API (they may have several pages); PNG and JPEG
    /// are read synchronously.
    fn starts_job(&self, media_type: MediaType) -> bool {
        media_type.multi_page()
    }

    async fn start(&self, document: &Document, token: &str) -> Result<OcrStart, DocError> {
        match document.media_type {
            MediaType::Text => Err(DocError::permanent(
                ErrorCode::DocumentUnsupportedType,
                "textract: plain text is not sent to OCR",
            )),
            m if m.multi_page() => Ok(OcrStart::Started {
                job_id: self.start_job(document, token).await?,
            }),
            _ => Ok(OcrStart::Done(self.detect(document).await?)),
        }
    }

    async fn collect(&self, job_id: &str) -> Result<OcrJob, DocError> {
        let mut blocks: Vec<Block> = Vec::new();
        let mut warnings: Vec<Warning> = Vec::new();
        let mut metadata_pages = None;
        let mut next_token: Option<String> = None;
        for _ in 0..MAX_RESULT_PAGES {
            let token = next_token.take();
            let out = self
                .retry
                .run(|| async {
                    self.client
                        .get_document_text_detection()
                        .job_id(job_id)
                        .max_results(1000)
                        .set_next_token(token.clone())
                        .customize()
                        .config_override(no_sdk_retries())
                        .send()
                        .await
                        .map_err(|e| classify_sdk(OP_GET, &e, get_code))
                })
                .await?;
            match out.job_status() {
                Some(JobStatus::InProgress) => return Ok(OcrJob::InProgress),
                Some(JobStatus::Failed) => {
                    let message = bounded(out.status_message().unwrap_or("no status message"));
                    return Err(DocError::permanent(
                        ErrorCode::OcrFailed,
                        format!("{OP_GET}: job FAILED: {message}"),
                    ));
                }
                Some(JobStatus::Succeeded | JobStatus::PartialSuccess) => {}
                other => {
                    let status = other.map_or("none", JobStatus::as_str);
                    return Err(DocError::retryable(
                        "transient",
                        format!("{OP_GET}: unexpected JobStatus {}", sanitize_code(status)),
                    ));
                }
            }
            if metadata_pages.is_none() {
                metadata_pages = out.document_metadata().and_then(|m| m.pages());
            }
            blocks.extend(out.blocks().iter().cloned());
            for w in out.warnings() {
                if !warnings.contains(w) {
                    warnings.push(w.clone());
                }
            }
            match out.next_token() {
                Some(t) if !t.is_empty() => next_token = Some(t.to_string()),
                _ => return Ok(OcrJob::Done(ocr_result(&blocks, metadata_pages, &warnings))),
            }
        }
        Err(DocError::permanent(
            ErrorCode::OcrFailed,
            format!("{OP_GET}: more than {MAX_RESULT_PAGES} result pages"),
        ))
    }
}

fn s3_object(loc: &ObjectLocation) -> S3Object {
    S3Object::builder()
        .bucket(&loc.bucket)
        .name(loc.key.expose())
        .set_version(loc.version_id.clone())
        .build()
}

/// A per-operation override: the adapter's [`InCallRetry`] is the only retry layer, so the
/// number of requests stays bounded whatever client it was given.
fn no_sdk_retries() -> aws_sdk_textract::config::Builder {
    aws_sdk_textract::config::Config::builder().retry_config(RetryConfig::disabled())
}

/// `ClientRequestToken`'s pattern in the API reference (`^[a-zA-Z0-9-_]+$`, 1 to 64), which
/// also satisfies `JobTag`'s.
fn valid_token(token: &str) -> bool {
    (1..=64).contains(&token.len())
        && token
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// A service message cut to [`STATUS_MESSAGE_MAX_CHARS`], control characters made spaces.
fn bounded(message: &str) -> String {
    message
        .chars()
        .take(STATUS_MESSAGE_MAX_CHARS)
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect()
}

/// Pages of lines and words from Textract blocks (sync or all result pages of a job).
///
/// PAGE blocks and the `Page` field of each block give the page numbers (a synchronous result
/// has no `Page` field: page 1); LINE blocks keep the order Textract returns them in, which is
/// reading order; each line's words are its CHILD relationships, in order. Pages between the
/// first and the last (or `DocumentMetadata.Pages`) that have no block still appear, empty.
fn ocr_result(blocks: &[Block], metadata_pages: Option<i32>, warnings: &[Warning]) -> OcrResult {
    let page_of = |b: &Block| -> u32 {
        b.page()
            .and_then(|p| u32::try_from(p).ok())
            .filter(|&p| p >= 1)
            .unwrap_or(1)
    };
    let words: HashMap<&str, &Block> = blocks
        .iter()
        .filter(|b| b.block_type() == Some(&BlockType::Word))
        .filter_map(|b| b.id().map(|id| (id, b)))
        .collect();
    let mut pages: BTreeMap<u32, Page> = BTreeMap::new();
    for block in blocks {
        match block.block_type() {
            Some(BlockType::Page) => {
                page(&mut pages, page_of(block));
            }
            Some(BlockType::Line) => {
                let line_words = block
                    .relationships()
                    .iter()
                    .filter(|r| r.r#type() == Some(&RelationshipType::Child))
                    .flat_map(|r| r.ids())
                    .filter_map(|id| words.get(id.as_str()))
                    .map(|w| Word {
                        text: Phi(w.text().unwrap_or_default().to_string()),
                        confidence: w.confidence().unwrap_or(0.0),
                        bbox: bbox(w),
                    })
                    .collect();
                page(&mut pages, page_of(block)).lines.push(Line {
                    text: Phi(block.text().unwrap_or_default().to_string()),
                    confidence: block.confidence().unwrap_or(0.0),
                    bbox: bbox(block),
                    words: line_words,
                });
            }
            _ => {}
        }
    }
    let last = pages
        .keys()
        .next_back()
        .copied()
        .unwrap_or(0)
        .max(
            metadata_pages
                .and_then(|p| u32::try_from(p).ok())
                .unwrap_or(0),
        )
        .min(MAX_PAGES);
    for n in 1..=last {
        page(&mut pages, n);
    }
    OcrResult {
        pages: pages.into_values().collect(),
        warnings: warnings
            .iter()
            .map(|w| OcrWarning {
                code: sanitize_code(w.error_code().unwrap_or("UNKNOWN")),
                pages: w
                    .pages()
                    .iter()
                    .filter_map(|&p| u32::try_from(p).ok())
                    .collect(),
            })
            .collect(),
    }
}

fn page(pages: &mut BTreeMap<u32, Page>, n: u32) -> &mut Page {
    pages.entry(n).or_insert_with(|| Page {
        number: n,
        width: None,
        height: None,
        lines: Vec::new(),
    })
}

fn bbox(block: &Block) -> BoundingBox {
    block
        .geometry()
        .and_then(|g| g.bounding_box())
        .map(|b| BoundingBox {
            left: b.left(),
            top: b.top(),
            width: b.width(),
            height: b.height(),
        })
        .unwrap_or_default()
}

// The modeled exception names, for errors built without metadata (the deserializer fills the
// code from the response; a hand-built error may not). The metadata's code wins when present.

fn detect_code(e: &DetectDocumentTextError) -> Option<&'static str> {
    use DetectDocumentTextError as E;
    Some(match e {
        E::AccessDeniedException(_) => "AccessDeniedException",
        E::BadDocumentException(_) => "BadDocumentException",
        E::DocumentTooLargeException(_) => "DocumentTooLargeException",
        E::InternalServerError(_) => "InternalServerError",
        E::InvalidParameterException(_) => "InvalidParameterException",
        E::InvalidS3ObjectException(_) => "InvalidS3ObjectException",
        E::ProvisionedThroughputExceededException(_) => "ProvisionedThroughputExceededException",
        E::ThrottlingException(_) => "ThrottlingException",
        E::UnsupportedDocumentException(_) => "UnsupportedDocumentException",
        _ => return None,
    })
}

fn start_code(e: &StartDocumentTextDetectionError) -> Option<&'static str> {
    use StartDocumentTextDetectionError as E;
    Some(match e {
        E::AccessDeniedException(_) => "AccessDeniedException",
        E::BadDocumentException(_) => "BadDocumentException",
        E::DocumentTooLargeException(_) => "DocumentTooLargeException",
        E::IdempotentParameterMismatchException(_) => "IdempotentParameterMismatchException",
        E::InternalServerError(_) => "InternalServerError",
        E::InvalidKmsKeyException(_) => "InvalidKMSKeyException",
        E::InvalidParameterException(_) => "InvalidParameterException",
        E::InvalidS3ObjectException(_) => "InvalidS3ObjectException",
        E::LimitExceededException(_) => "LimitExceededException",
        E::ProvisionedThroughputExceededException(_) => "ProvisionedThroughputExceededException",
        E::ThrottlingException(_) => "ThrottlingException",
        E::UnsupportedDocumentException(_) => "UnsupportedDocumentException",
        _ => return None,
    })
}

fn get_code(e: &GetDocumentTextDetectionError) -> Option<&'static str> {
    use GetDocumentTextDetectionError as E;
    Some(match e {
        E::AccessDeniedException(_) => "AccessDeniedException",
        E::InternalServerError(_) => "InternalServerError",
        E::InvalidJobIdException(_) => "InvalidJobIdException",
        E::InvalidKmsKeyException(_) => "InvalidKMSKeyException",
        E::InvalidParameterException(_) => "InvalidParameterException",
        E::InvalidS3ObjectException(_) => "InvalidS3ObjectException",
        E::ProvisionedThroughputExceededException(_) => "ProvisionedThroughputExceededException",
        E::ThrottlingException(_) => "ThrottlingException",
        _ => return None,
    })
}

/// What a failed SDK call means for the pipeline, before the service's own codes: the parts
/// shared by both document adapters.
pub(crate) enum Failure<'a> {
    /// The service answered with an error: its code (when any), message (read for
    /// classification only, never copied) and HTTP status.
    Service {
        code: Option<&'a str>,
        message: Option<&'a str>,
        status: u16,
    },
    /// Settled already (timeouts, dispatch failures, unreadable responses, construction).
    Settled(DocError),
}

pub(crate) fn failure<'a, E, F>(
    op: &'static str,
    err: &'a SdkError<E, HttpResponse>,
    modeled: F,
) -> Failure<'a>
where
    E: ProvideErrorMetadata,
    F: Fn(&E) -> Option<&'static str>,
{
    let transient =
        |what: &str| Failure::Settled(DocError::retryable("transient", format!("{op}: {what}")));
    match err {
        SdkError::ConstructionFailure(_) => Failure::Settled(DocError::permanent(
            ErrorCode::DownstreamRejected,
            format!("{op}: request could not be constructed"),
        )),
        SdkError::TimeoutError(_) => transient("timeout"),
        SdkError::DispatchFailure(f) => transient(if f.is_timeout() {
            "dispatch timeout"
        } else if f.is_io() {
            "dispatch failure (io)"
        } else {
            "dispatch failure"
        }),
        SdkError::ResponseError(r) => {
            let status = r.raw().status().as_u16();
            transient(&format!("unreadable response (HTTP {status})"))
        }
        SdkError::ServiceError(s) => Failure::Service {
            code: s.err().code().or_else(|| modeled(s.err())),
            message: s.err().message(),
            status: s.raw().status().as_u16(),
        },
        // `SdkError` is non-exhaustive.
        _ => transient("unclassified SDK error"),
    }
}

/// "op: Code (HTTP 400)", the detail of a classified service error.
pub(crate) fn service_detail(op: &str, code: Option<&str>, status: u16) -> String {
    match code {
        Some(c) => format!("{op}: {} (HTTP {status})", sanitize_code(c)),
        None => format!("{op}: HTTP {status}"),
    }
}

fn classify_sdk<E, F>(op: &'static str, err: &SdkError<E, HttpResponse>, modeled: F) -> DocError
where
    E: ProvideErrorMetadata,
    F: Fn(&E) -> Option<&'static str>,
{
    match failure(op, err, modeled) {
        Failure::Settled(e) => e,
        Failure::Service {
            code,
            message,
            status,
        } => classify_textract(op, code, message, status),
    }
}

/// Textract's error table (API reference, each operation's "Errors").
pub(crate) fn classify_textract(
    op: &str,
    code: Option<&str>,
    message: Option<&str>,
    status: u16,
) -> DocError {
    let detail = service_detail(op, code, status);
    let permanent = |c: ErrorCode| DocError::permanent(c, detail.clone());
    match code.unwrap_or("") {
        "ThrottlingException" | "ProvisionedThroughputExceededException" => {
            DocError::retryable("throttled", detail)
        }
        // The account's concurrent-job limit: clears as running jobs finish, so the message
        // waits in the queue rather than in this call.
        "LimitExceededException" => DocError::Retryable {
            reason: "throttled",
            detail,
            retry_after: Some(JOB_LIMIT_RETRY_AFTER),
        },
        "InternalServerError" | "InternalServerException" | "ServiceUnavailableException" => {
            DocError::retryable("transient", detail)
        }
        "DocumentTooLargeException" => permanent(ErrorCode::DocumentTooLarge),
        "BadDocumentException" => permanent(ErrorCode::DocumentCorrupt),
        "UnsupportedDocumentException" => permanent(ErrorCode::DocumentUnsupportedType),
        // Usually "Unable to get object metadata from S3. Check object key, region and/or
        // access permissions.", which does not say the object is gone.
        "InvalidS3ObjectException" if message.is_some_and(says_missing) => {
            permanent(ErrorCode::DocumentNotFound)
        }
        "InvalidS3ObjectException" => permanent(ErrorCode::OcrFailed),
        "InvalidJobIdException" => permanent(ErrorCode::OcrCompletionInvalid),
        "AccessDeniedException"
        | "InvalidKMSKeyException"
        | "IdempotentParameterMismatchException"
        | "UnrecognizedClientException"
        | "ExpiredTokenException"
        | "InvalidSignatureException" => permanent(ErrorCode::DownstreamRejected),
        "InvalidParameterException" => permanent(ErrorCode::OcrFailed),
        _ => match status {
            429 => DocError::retryable("throttled", detail),
            s if s >= 500 => DocError::retryable("transient", detail),
            401 | 403 => permanent(ErrorCode::DownstreamRejected),
            _ => permanent(ErrorCode::OcrFailed),
        },
    }
}

fn says_missing(message: &str) -> bool {
    let m = message.to_ascii_lowercase();
    [
        "does not exist",
        "not exist",
        "nosuchkey",
        "no such key",
        "not found",
    ]
    .iter()
    .any(|p| m.contains(p))
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_sdk_textract::types::{BoundingBox as TBox, Geometry, Relationship};

    fn block(kind: BlockType, id: &str, page: Option<i32>, text: Option<&str>) -> Block {
        Block::builder()
            .block_type(kind)
            .id(id)
            .set_page(page)
            .set_text(text.map(str::to_string))
            .confidence(90.0)
            .geometry(
                Geometry::builder()
                    .bounding_box(
                        TBox::builder()
                            .left(0.1)
                            .top(0.2)
                            .width(0.3)
                            .height(0.05)
                            .build(),
                    )
                    .build(),
            )
            .build()
    }

    #[test]
    fn gaps_are_filled_and_words_found_across_result_pages() {
        let line = Block::builder()
            .block_type(BlockType::Line)
            .id("l1")
            .page(3)
            .text("Zz Yy")
            .relationships(
                Relationship::builder()
                    .r#type(RelationshipType::Child)
                    .ids("w2")
                    .ids("w1")
                    .build(),
            )
            .build();
        let blocks = vec![
            block(BlockType::Page, "p1", Some(1), None),
            line,
            block(BlockType::Word, "w1", Some(3), Some("Yy")),
            block(BlockType::Word, "w2", Some(3), Some("Zz")),
        ];
        let r = ocr_result(&blocks, Some(4), &[]);
        let numbers: Vec<u32> = r.pages.iter().map(|p| p.number).collect();
        assert_eq!(numbers, vec![1, 2, 3, 4]);
        let words: Vec<&str> = r.pages[2].lines[0]
            .words
            .iter()
            .map(|w| w.text.expose().as_str())
            .collect();
        assert_eq!(words, vec!["Zz", "Yy"]);
        assert_eq!(r.text(), "\n\n\n\nZz Yy\n\n");
    }

    #[test]
    fn a_bogus_page_number_does_not_allocate_millions() {
        let blocks = vec![block(BlockType::Line, "l", Some(2_000_000), Some("x"))];
        let r = ocr_result(&blocks, None, &[]);
        assert_eq!(r.pages.len(), MAX_PAGES as usize + 1);
    }

    #[test]
    fn invalid_s3_object_is_not_found_only_when_it_says_so() {
        let c = |m| match classify_textract("op", Some("InvalidS3ObjectException"), Some(m), 400) {
            DocError::Permanent { code, .. } => code,
            e => panic!("{e:?}"),
        };
        assert_eq!(
            c("The specified key does not exist."),
            ErrorCode::DocumentNotFound
        );
        assert_eq!(
            c(
                "Unable to get object metadata from S3. Check object key, region and/or access permissions."
            ),
            ErrorCode::OcrFailed
        );
    }

    #[test]
    fn tokens_follow_the_client_request_token_pattern() {
        assert!(valid_token("doc-v1_abc"));
        assert!(!valid_token(""));
        assert!(!valid_token("a b"));
        assert!(!valid_token(&"a".repeat(65)));
    }
}
