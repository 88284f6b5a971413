//! Textract's errors classified once into [`DocError`] (API reference, the "Errors" section of
//! each operation). Details carry the operation and the service error code only.

use std::time::Duration;

use aws_sdk_textract::operation::detect_document_text::DetectDocumentTextError;
use aws_sdk_textract::operation::get_document_text_detection::GetDocumentTextDetectionError;
use aws_sdk_textract::operation::start_document_text_detection::StartDocumentTextDetectionError;
use aws_smithy_runtime_api::client::result::SdkError;
use aws_smithy_runtime_api::http::Response as HttpResponse;
use aws_smithy_types::error::metadata::ProvideErrorMetadata;
use fleet_core::ErrorCode;
use fleet_docs::DocError;

use crate::doc_service::{Failure, failure, service_detail};

/// What the concurrent-job limit (`LimitExceededException`) asks the queue to wait.
const JOB_LIMIT_RETRY_AFTER: Duration = Duration::from_secs(60);

// The modeled exception names, for errors built without metadata (the deserializer fills the
// code from the response; a hand-built error may not). The metadata's code wins when present.

pub(super) fn detect_code(e: &DetectDocumentTextError) -> Option<&'static str> {
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

pub(super) fn start_code(e: &StartDocumentTextDetectionError) -> Option<&'static str> {
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

pub(super) fn get_code(e: &GetDocumentTextDetectionError) -> Option<&'static str> {
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

pub(super) fn classify_sdk<E, F>(
    op: &'static str,
    err: &SdkError<E, HttpResponse>,
    modeled: F,
) -> DocError
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
pub(super) fn classify_textract(
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
        // A job id Textract does not know. For a job this fleet started and recorded, that
        // means its 7 days are over: the worker turns it into OCR_TIMED_OUT.
        "InvalidJobIdException" => permanent(ErrorCode::OcrJobUnknown),
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
}
