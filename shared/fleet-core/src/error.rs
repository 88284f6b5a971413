//! Adapter errors, classified once at the adapter boundary.

use std::time::Duration;

use crate::codes::ErrorCode;

/// What went wrong, in terms the runtime can act on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// The service asked us to slow down (throttling, provisioned throughput).
    Throttled,
    /// Timeouts, dispatch failures, 5xx: try again.
    Transient,
    /// The queue, table, bus or object does not exist.
    NotFound,
    /// The request was rejected as invalid (bad parameters, too large, wrong type).
    Invalid,
    /// Credentials are missing or lack permission.
    AccessDenied,
    /// Anything else; treated as retryable by the runtime.
    Other,
}

impl ErrorKind {
    pub fn is_retryable(self) -> bool {
        matches!(self, Self::Throttled | Self::Transient | Self::Other)
    }
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Throttled => "throttled",
            Self::Transient => "transient",
            Self::NotFound => "not_found",
            Self::Invalid => "invalid",
            Self::AccessDenied => "access_denied",
            Self::Other => "other",
        }
    }
}

/// An error from a port. `message` must never contain message bodies or record contents:
/// adapters build it from service error codes and their own words only.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{op}: {kind:?}: {message}")]
pub struct PortError {
    pub kind: ErrorKind,
    /// The operation, e.g. "sqs.ReceiveMessage" or "local.queue.receive".
    pub op: &'static str,
    pub message: String,
    pub retry_after: Option<Duration>,
    /// The dead-letter code of an `Invalid` error whose cause is known precisely (an event
    /// over the PutEvents size limit: `EVENT_TOO_LARGE`); `None` means `DOWNSTREAM_REJECTED`.
    /// Ignored for the other kinds, which are retried.
    pub code: Option<ErrorCode>,
}

impl PortError {
    pub fn new(kind: ErrorKind, op: &'static str, message: impl Into<String>) -> Self {
        Self {
            kind,
            op,
            message: message.into(),
            retry_after: None,
            code: None,
        }
    }
    pub fn transient(op: &'static str, message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Transient, op, message)
    }
    pub fn invalid(op: &'static str, message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Invalid, op, message)
    }
    /// An `Invalid` error that dead-letters with `code` rather than `DOWNSTREAM_REJECTED`.
    pub fn rejected(op: &'static str, code: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            code: Some(code),
            ..Self::invalid(op, message)
        }
    }
    pub fn not_found(op: &'static str, message: impl Into<String>) -> Self {
        Self::new(ErrorKind::NotFound, op, message)
    }
    pub fn is_retryable(&self) -> bool {
        self.kind.is_retryable()
    }
}
