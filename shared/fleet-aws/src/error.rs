//! AWS errors classified once, at the adapter boundary, into [`ErrorKind`].
//!
//! Messages are built from the service error code, the HTTP status and our own words only:
//! service messages can echo request contents (moto's "receipt handle ... is not valid" quotes
//! the handle; validation errors can quote attribute values), so they never reach a `PortError`.

use aws_smithy_runtime_api::client::result::SdkError;
use aws_smithy_runtime_api::http::Response as HttpResponse;
use aws_smithy_types::error::metadata::ProvideErrorMetadata;
use fleet_core::{ErrorKind, PortError};

/// Classify an SDK error of operation `op` ("sqs.ReceiveMessage").
pub fn classify<E>(op: &'static str, err: &SdkError<E, HttpResponse>) -> PortError
where
    E: ProvideErrorMetadata,
{
    match err {
        SdkError::ConstructionFailure(_) => {
            PortError::new(ErrorKind::Invalid, op, "request could not be constructed")
        }
        SdkError::TimeoutError(_) => PortError::new(ErrorKind::Transient, op, "timeout"),
        SdkError::DispatchFailure(f) => {
            let what = if f.is_timeout() {
                "dispatch timeout"
            } else if f.is_io() {
                "dispatch failure (io)"
            } else {
                "dispatch failure"
            };
            PortError::new(ErrorKind::Transient, op, what)
        }
        SdkError::ResponseError(r) => {
            let status = r.raw().status().as_u16();
            let kind = classify_code(None, Some(status));
            let kind = if kind == ErrorKind::Other {
                ErrorKind::Transient
            } else {
                kind
            };
            PortError::new(kind, op, format!("unreadable response (HTTP {status})"))
        }
        SdkError::ServiceError(s) => {
            let status = s.raw().status().as_u16();
            let code = s.err().code();
            let kind = classify_code(code, Some(status));
            let message = match code {
                Some(c) => format!("{} (HTTP {status})", sanitize_code(c)),
                None => format!("HTTP {status}"),
            };
            PortError::new(kind, op, message)
        }
        // `SdkError` is non-exhaustive.
        _ => PortError::new(ErrorKind::Other, op, "unclassified SDK error"),
    }
}

/// Keeps a code to the characters service codes use, so nothing odd can ride along.
pub(crate) fn sanitize_code(code: &str) -> String {
    code.chars()
        .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | ':'))
        .take(100)
        .collect()
}

/// The classification table: service error code first, HTTP status second.
pub fn classify_code(code: Option<&str>, status: Option<u16>) -> ErrorKind {
    if let Some(kind) = code.and_then(kind_of_code) {
        return kind;
    }
    match status {
        Some(429) => ErrorKind::Throttled,
        Some(s) if s >= 500 => ErrorKind::Transient,
        Some(401 | 403) => ErrorKind::AccessDenied,
        Some(404) => ErrorKind::NotFound,
        _ => ErrorKind::Other,
    }
}

fn kind_of_code(code: &str) -> Option<ErrorKind> {
    // Query-protocol SQS codes arrive as "AWS.SimpleQueueService.X"; JSON-protocol ones as "X".
    let short = code.strip_prefix("AWS.SimpleQueueService.").unwrap_or(code);
    let kind = match short {
        "ThrottlingException"
        | "Throttling"
        | "ThrottledException"
        | "RequestThrottled"
        | "RequestThrottledException"
        | "TooManyRequestsException"
        | "ProvisionedThroughputExceededException"
        | "RequestLimitExceeded"
        | "SlowDown"
        | "OverLimit"
        | "KmsThrottled"
        | "KMS.ThrottlingException"
        | "LimitExceededException"
        | "ThrottlingError" => ErrorKind::Throttled,

        "InternalError"
        | "InternalFailure"
        | "InternalServerError"
        | "InternalServerException"
        | "ServiceUnavailable"
        | "ServiceUnavailableException"
        | "RequestTimeout"
        | "RequestTimeoutException"
        | "TransactionConflictException"
        | "TransactionInProgressException" => ErrorKind::Transient,

        "QueueDoesNotExist"
        | "NonExistentQueue"
        | "ResourceNotFoundException"
        | "NoSuchKey"
        | "NoSuchBucket"
        | "NotFound"
        | "TableNotFoundException" => ErrorKind::NotFound,

        "AccessDenied"
        | "AccessDeniedException"
        | "KmsAccessDenied"
        | "KMS.AccessDeniedException"
        | "KmsDisabled"
        | "KmsInvalidState"
        | "KmsNotFound"
        | "KmsOptInRequired"
        | "KmsInvalidKeyUsage"
        | "KMS.DisabledException"
        | "KMS.NotFoundException"
        | "KMS.KMSInvalidStateException"
        | "UnrecognizedClientException"
        | "InvalidClientTokenId"
        | "ExpiredToken"
        | "ExpiredTokenException"
        | "InvalidSignatureException"
        | "SignatureDoesNotMatch"
        | "MissingAuthenticationToken"
        | "IncompleteSignature"
        | "InvalidAccessKeyId"
        | "InvalidSecurity" => ErrorKind::AccessDenied,

        "ValidationException"
        | "ValidationError"
        | "MissingParameter"
        | "SerializationException"
        | "MalformedDetail"
        | "ReceiptHandleIsInvalid"
        | "MessageNotInflight"
        | "BatchEntryIdsNotDistinct"
        | "TooManyEntriesInBatchRequest"
        | "EmptyBatchRequest"
        | "BatchRequestTooLong"
        | "UnsupportedOperation"
        | "EntityTooLarge"
        | "MalformedXML"
        | "ItemCollectionSizeLimitExceededException" => ErrorKind::Invalid,
        s if s.starts_with("Invalid") => ErrorKind::Invalid,
        _ => return None,
    };
    Some(kind)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(code: Option<&str>, status: Option<u16>, expected: ErrorKind) {
        assert_eq!(
            classify_code(code, status),
            expected,
            "{code:?} / {status:?}"
        );
    }

    #[test]
    fn codes_are_classified_before_statuses() {
        check(Some("ThrottlingException"), Some(400), ErrorKind::Throttled);
        check(
            Some("ProvisionedThroughputExceededException"),
            Some(400),
            ErrorKind::Throttled,
        );
        check(Some("SlowDown"), Some(503), ErrorKind::Throttled);
        check(Some("RequestThrottled"), Some(403), ErrorKind::Throttled);
        check(Some("KmsThrottled"), Some(400), ErrorKind::Throttled);
        check(Some("InternalError"), Some(500), ErrorKind::Transient);
        check(Some("QueueDoesNotExist"), Some(400), ErrorKind::NotFound);
        check(
            Some("AWS.SimpleQueueService.NonExistentQueue"),
            Some(400),
            ErrorKind::NotFound,
        );
        check(
            Some("ResourceNotFoundException"),
            Some(400),
            ErrorKind::NotFound,
        );
        check(Some("NoSuchKey"), Some(404), ErrorKind::NotFound);
        check(Some("NoSuchBucket"), Some(404), ErrorKind::NotFound);
        check(Some("ValidationException"), Some(400), ErrorKind::Invalid);
        check(Some("InvalidParameterValue"), Some(400), ErrorKind::Invalid);
        check(Some("AccessDenied"), Some(403), ErrorKind::AccessDenied);
        check(Some("KmsAccessDenied"), Some(400), ErrorKind::AccessDenied);
        check(Some("SomethingNew"), Some(400), ErrorKind::Other);
    }

    #[test]
    fn statuses_decide_when_the_code_is_unknown() {
        check(None, Some(503), ErrorKind::Transient);
        check(Some("Weird"), Some(500), ErrorKind::Transient);
        check(None, Some(429), ErrorKind::Throttled);
        check(None, Some(403), ErrorKind::AccessDenied);
        check(None, Some(404), ErrorKind::NotFound);
        check(None, None, ErrorKind::Other);
    }

    #[test]
    fn codes_are_sanitized() {
        assert_eq!(sanitize_code("Bad \"value\" x<y>"), "Badvaluexy");
        assert_eq!(
            sanitize_code("AWS.SimpleQueueService.NonExistentQueue"),
            "AWS.SimpleQueueService.NonExistentQueue"
        );
    }
}
