//! Collecting an asynchronous job by its id: `GetDocumentTextDetection`, every result page
//! (`NextToken`) gathered before the blocks are mapped.

use aws_sdk_textract::types::{Block, JobStatus, Warning};
use fleet_core::ErrorCode;
use fleet_docs::{DocError, OcrJob};

use super::blocks::ocr_result;
use super::errors::{classify_sdk, get_code};
use super::{OP_GET, TextractOcr, no_sdk_retries};
use crate::error::sanitize_code;

/// Result pages fetched for one job before giving up (a 3,000-page document of dense text is
/// about 1,500 pages of 1,000 blocks).
const MAX_RESULT_PAGES: usize = 10_000;
/// Bound on a failed job's `StatusMessage` in an error detail.
const STATUS_MESSAGE_MAX_CHARS: usize = 200;

impl TextractOcr {
    /// The job's result when it has finished, [`OcrJob::InProgress`] while it runs.
    pub(super) async fn collect_job(&self, job_id: &str) -> Result<OcrJob, DocError> {
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

/// A service message cut to [`STATUS_MESSAGE_MAX_CHARS`], control characters made spaces.
fn bounded(message: &str) -> String {
    message
        .chars()
        .take(STATUS_MESSAGE_MAX_CHARS)
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect()
}
