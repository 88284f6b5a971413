use fleet_core::ErrorCode;

/// Why a message was refused. `detail` names segments, fields and positions only — never a
/// field value that could hold PHI — so it can go to logs and DLQ metadata as is.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}: {detail}", code.as_str())]
pub struct Hl7Error {
    pub code: ErrorCode,
    pub detail: String,
}

impl Hl7Error {
    pub fn new(code: ErrorCode, detail: impl Into<String>) -> Self {
        Self {
            code,
            detail: detail.into(),
        }
    }
}

pub(crate) fn err<T>(code: ErrorCode, detail: impl Into<String>) -> Result<T, Hl7Error> {
    Err(Hl7Error::new(code, detail))
}

/// A code-like token (message type, trigger, charset name) is safe to echo in a detail only
/// when it looks like one; anything else could be misplaced patient text.
pub(crate) fn safe_token(s: &str) -> Option<&str> {
    let ok = !s.is_empty()
        && s.len() <= 16
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'/' | b' ' | b'.'));
    ok.then_some(s)
}
