//! [`fleet_docs::Ocr`] on Amazon Textract: synchronous `DetectDocumentText` for single-page
//! images, asynchronous `StartDocumentTextDetection` / `GetDocumentTextDetection` for PDF and
//! TIFF, with an SNS completion channel and `ClientRequestToken` idempotency.
//!
//! The adapter keeps no state between calls: a job is collected by its id alone, so a worker
//! restarted after starting a job (or a different replica) collects it.
//!
//! Errors are classified once, in `errors` (Textract API reference, the "Errors" section of
//! each operation), into [`DocError`]; throttling and transient failures are retried in the call
//! (bounded, see [`InCallRetry`]) before they are returned as retryable. Details carry the
//! operation and the service error code, never document text or object keys.
//!
//! Layout: `detect` (the synchronous call), `start` (starting a job: the SNS completion channel
//! and the token), `collect` (result pages of a job), `blocks` (Textract blocks onto the OCR
//! result schema), `errors` (the error table); the in-call retry is shared with Comprehend
//! Medical in `crate::doc_service`.

mod blocks;
mod collect;
mod detect;
mod errors;
mod start;

use async_trait::async_trait;
use aws_config::BehaviorVersion;
use aws_sdk_textract::Client;
use aws_sdk_textract::config::retry::RetryConfig;
use aws_sdk_textract::types::S3Object;
use fleet_core::ErrorCode;
use fleet_docs::{DocError, Document, MediaType, ObjectLocation, Ocr, OcrJob, OcrStart};

use crate::count::CountRequests;
pub use crate::doc_service::InCallRetry;

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
        self.collect_job(job_id).await
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
