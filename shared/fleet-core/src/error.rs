//! Adapter errors, classified once at the adapter boundary.

use std::time::Duration;

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
}

impl PortError {
    pub fn new(kind: ErrorKind, op: &'static str, message: impl Into<String>) -> Self {
        Self {
            kind,
            op,
            message: message.into(),
            retry_after: None,
        }
    }
    pub fn transient(op: &'static str, message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Transient, op, message)
    }
    pub fn invalid(op: &'static str, message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Invalid, op, message)
    }
    pub fn not_found(op: &'static str, message: impl Into<String>) -> Self {
        Self::new(ErrorKind::NotFound, op, message)
    }
    pub fn is_retryable(&self) -> bool {
        self.kind.is_retryable()
    }
}
