//! The fleet's one failure type and the one mapping from a port error to it. Every handler,
//! the runtime's claim-check resolver and the document adapters answer a failure with a
//! [`Failure`]: retry (a fixed reason, maybe a delay the service asked for) or dead-letter now
//! (a code from the closed list and a sanitised, bounded detail). It lives here, beside
//! [`PortError`], rather than in the runtime, so that crates without the runtime (the document
//! domain, fuzzed on its own) speak it too; `fleet_runtime::Failure` is this type.
//!
//! [`Failure::from_port`] is the single rule for what a port error means. The table and the
//! reasons are in `shared/fleet-runtime/DESIGN.md` ("Port errors"); a call site that needs a
//! different answer for one kind overrides it there, in the open, with a comment saying why.

use std::time::Duration;

use crate::codes::ErrorCode;
use crate::error::{ErrorKind, PortError};
use crate::failure::FailureMetadata;

/// Why a message could not be finished this time.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Failure {
    /// It may pass: put the message back for another attempt (after the backoff, or after
    /// `retry_after` when the service said how long, up to the backoff cap).
    #[error("retryable ({reason}): {detail}")]
    Retryable {
        /// A short fixed word: it goes to logs, metrics and, when attempts run out, the
        /// failure metadata ("throttled", "transient", "ocr_in_progress", ...).
        reason: &'static str,
        /// For the warn line only; never a body, a record or a document's words.
        detail: String,
        retry_after: Option<Duration>,
    },
    /// Retrying cannot help: dead-letter it now with this code.
    #[error("{code}: {detail}")]
    Permanent {
        code: ErrorCode,
        /// No PHI; sanitised and bounded by the constructors (and again when dead-lettered).
        detail: String,
    },
}

impl Failure {
    /// Retry, with nothing more to say than the reason.
    pub fn retry(reason: &'static str) -> Self {
        Self::retryable(reason, "")
    }

    /// Retry, with a detail for the log line.
    pub fn retryable(reason: &'static str, detail: impl AsRef<str>) -> Self {
        Self::Retryable {
            reason,
            detail: FailureMetadata::sanitise_detail(detail.as_ref()),
            retry_after: None,
        }
    }

    /// Dead-letter with `code`; the detail is stripped of control characters and bounded.
    pub fn permanent(code: ErrorCode, detail: impl AsRef<str>) -> Self {
        Self::Permanent {
            code,
            detail: FailureMetadata::sanitise_detail(detail.as_ref()),
        }
    }

    /// The same failure, retried no sooner than `delay` (no effect on a permanent one).
    pub fn after(self, delay: impl Into<Option<Duration>>) -> Self {
        match self {
            Self::Retryable { reason, detail, .. } => Self::Retryable {
                reason,
                detail,
                retry_after: delay.into(),
            },
            permanent => permanent,
        }
    }

    pub fn is_retryable(&self) -> bool {
        matches!(self, Self::Retryable { .. })
    }

    /// The dead-letter code of a permanent failure.
    pub fn code(&self) -> Option<ErrorCode> {
        match self {
            Self::Permanent { code, .. } => Some(*code),
            Self::Retryable { .. } => None,
        }
    }

    pub fn detail(&self) -> &str {
        match self {
            Self::Retryable { detail, .. } | Self::Permanent { detail, .. } => detail,
        }
    }

    /// What a port error means for the message being handled: the fleet's one rule.
    ///
    /// Only a request the service refused as such (`Invalid`) is permanent: the same request
    /// would be refused again; its code is `DOWNSTREAM_REJECTED` unless the port named a more
    /// precise one ([`PortError::rejected`], e.g. `EVENT_TOO_LARGE`). Everything else retries, honouring the service's retry-after:
    /// throttling and outages pass, and a missing resource (`NotFound`: ports answer a missing
    /// item or object with `None`, so this is a table, bucket, bus or topic) or a refused
    /// permission (`AccessDenied`) is a deployment fault that every message would hit alike.
    /// Retried, the messages stay on the queue, the queue-age alarm fires, and once fixed the
    /// backlog drains; past `max_attempts` they reach the DLQ as `RETRIES_EXHAUSTED`, which
    /// replays cleanly. Dead-lettering each with a permanent code would blame the messages.
    pub fn from_port(e: &PortError) -> Self {
        let detail = format!("{}: {}", e.op, e.message);
        match e.kind {
            ErrorKind::Invalid => {
                Self::permanent(e.code.unwrap_or(ErrorCode::DownstreamRejected), detail)
            }
            ErrorKind::Throttled
            | ErrorKind::Transient
            | ErrorKind::Other
            | ErrorKind::NotFound
            | ErrorKind::AccessDenied => {
                Self::retryable(e.kind.as_str(), detail).after(e.retry_after)
            }
        }
    }
}

impl From<PortError> for Failure {
    fn from(e: PortError) -> Self {
        Self::from_port(&e)
    }
}

impl From<&PortError> for Failure {
    fn from(e: &PortError) -> Self {
        Self::from_port(e)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ALL_KINDS: [ErrorKind; 6] = [
        ErrorKind::Throttled,
        ErrorKind::Transient,
        ErrorKind::NotFound,
        ErrorKind::Invalid,
        ErrorKind::AccessDenied,
        ErrorKind::Other,
    ];

    fn port(kind: ErrorKind) -> PortError {
        PortError {
            retry_after: Some(Duration::from_secs(7)),
            ..PortError::new(kind, "records.put", "ProvisionedThroughputExceeded")
        }
    }

    #[test]
    fn only_an_invalid_request_is_permanent() {
        for kind in ALL_KINDS {
            let f = Failure::from_port(&port(kind));
            if kind == ErrorKind::Invalid {
                assert_eq!(
                    f,
                    Failure::Permanent {
                        code: ErrorCode::DownstreamRejected,
                        detail: "records.put: ProvisionedThroughputExceeded".into(),
                    }
                );
            } else {
                assert_eq!(
                    f,
                    Failure::Retryable {
                        reason: kind.as_str(),
                        detail: "records.put: ProvisionedThroughputExceeded".into(),
                        retry_after: Some(Duration::from_secs(7)),
                    },
                    "{kind:?}"
                );
            }
        }
    }

    #[test]
    fn a_rejection_with_a_code_dead_letters_with_that_code() {
        let e = PortError::rejected("events.PutEvents", ErrorCode::EventTooLarge, "too big");
        assert_eq!(e.kind, ErrorKind::Invalid);
        assert_eq!(
            Failure::from_port(&e),
            Failure::Permanent {
                code: ErrorCode::EventTooLarge,
                detail: "events.PutEvents: too big".into(),
            }
        );
        // A code on a retryable kind changes nothing: it is still retried.
        let t = PortError {
            code: Some(ErrorCode::EventTooLarge),
            ..PortError::transient("events.PutEvents", "timeout")
        };
        assert!(Failure::from_port(&t).is_retryable());
    }

    #[test]
    fn a_retry_without_a_hint_has_no_delay() {
        let e = PortError::transient("bus.PutEvents", "timeout");
        assert_eq!(
            Failure::from(e).after(None::<Duration>).detail(),
            "bus.PutEvents: timeout"
        );
        let f: Failure = PortError::transient("bus.PutEvents", "timeout").into();
        assert!(matches!(
            f,
            Failure::Retryable {
                retry_after: None,
                ..
            }
        ));
    }

    #[test]
    fn details_are_sanitised_and_bounded() {
        let f = Failure::permanent(
            ErrorCode::DocumentCorrupt,
            format!("a\r\n{}", "x".repeat(400)),
        );
        assert_eq!(f.code(), Some(ErrorCode::DocumentCorrupt));
        assert!(f.detail().len() <= crate::failure::MAX_DETAIL_BYTES);
        assert!(f.detail().starts_with("axx"), "{}", f.detail());
        let r = Failure::retryable("throttled", "ThrottlingException\n");
        assert_eq!(r.detail(), "ThrottlingException");
        assert_eq!(r.code(), None);
    }

    #[test]
    fn errors_say_whether_to_retry_and_render_without_the_variant_name() {
        let p = Failure::permanent(ErrorCode::DocumentCorrupt, "no pages");
        assert!(!p.is_retryable());
        assert_eq!(p.to_string(), "DOCUMENT_CORRUPT: no pages");
        let r = Failure::retry("in_progress").after(Duration::from_secs(15));
        assert!(r.is_retryable());
        assert_eq!(
            r,
            Failure::Retryable {
                reason: "in_progress",
                detail: String::new(),
                retry_after: Some(Duration::from_secs(15)),
            }
        );
        // A delay means nothing to a permanent failure.
        assert_eq!(p.clone().after(Duration::from_secs(1)), p);
    }
}
