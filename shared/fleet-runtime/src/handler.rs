//! The contract between the runtime and a worker: the [`Delivery`] a handler is given and the
//! [`Outcome`] it answers with. A failed outcome is the fleet's one [`Failure`] type (defined in
//! `fleet-core` so crates without the runtime share it); DESIGN.md has the port-error table.

use async_trait::async_trait;
use fleet_core::{Attributes, ErrorCode};

pub use fleet_core::Failure;

/// The message attribute a producer may set to carry a correlation id across services.
pub const CORRELATION_ATTRIBUTE: &str = "correlation_id";

/// Longest producer correlation id kept as sent, in bytes.
pub const MAX_CORRELATION_ID_BYTES: usize = 128;

/// The correlation id of a message, as its span, its [`Delivery`] and the events published for
/// it carry it. A producer's `correlation_id` attribute is kept as sent only when it is 1 to
/// [`MAX_CORRELATION_ID_BYTES`] bytes of `A-Z a-z 0-9 . _ : ; = / + -` (UUIDs, ULIDs, X-Ray
/// trace headers); anything else (spaces, control characters, non-ASCII, too long: free text
/// that may quote a patient) is replaced by `sha256:` and the first 32 hex digits of its
/// SHA-256, which still correlates the messages that carry the same value. Without the
/// attribute (or with an empty one) it is the message id.
pub fn correlation_id(attribute: Option<&str>, message_id: &str) -> String {
    match attribute {
        None | Some("") => message_id.to_string(),
        Some(v) if is_plain_correlation_id(v) => v.to_string(),
        Some(v) => {
            use sha2::{Digest, Sha256};
            let digest = Sha256::digest(v.as_bytes());
            let hex: String = digest[..16].iter().map(|b| format!("{b:02x}")).collect();
            format!("sha256:{hex}")
        }
    }
}

fn is_plain_correlation_id(v: &str) -> bool {
    (1..=MAX_CORRELATION_ID_BYTES).contains(&v.len())
        && v.bytes().all(|b| {
            b.is_ascii_alphanumeric()
                || matches!(b, b'.' | b'_' | b':' | b';' | b'=' | b'/' | b'+' | b'-')
        })
}

/// One message as a handler sees it.
#[derive(Debug, Clone)]
pub struct Delivery {
    pub message_id: String,
    /// The body, with any claim-check pointer already resolved.
    pub body: String,
    pub attributes: Attributes,
    /// ApproximateReceiveCount, this receive included.
    pub receive_count: u32,
    /// Which attempt this is: the receive count, plus the retries this receive already made in
    /// place (a FIFO group retries its head without releasing the messages behind it).
    pub attempt: u32,
    pub group_id: Option<String>,
    /// The `correlation_id` attribute when present and plain, its hash when not, else the
    /// message id ([`correlation_id`]).
    pub correlation_id: String,
    pub sent_timestamp_ms: i64,
}

/// What a handler decided.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Delete the message.
    Done,
    /// Retry it (backoff, or the failure's `retry_after` up to the cap) or dead-letter it now.
    Failed(Failure),
}

impl Outcome {
    /// Retry with a fixed reason (it ends up in logs and failure metadata).
    pub fn retry(reason: &'static str) -> Self {
        Self::Failed(Failure::retry(reason))
    }

    /// Dead-letter now. `detail` must not contain PHI; it is sanitised and bounded.
    pub fn fail(code: ErrorCode, detail: impl AsRef<str>) -> Self {
        Self::Failed(Failure::permanent(code, detail))
    }
}

impl From<Failure> for Outcome {
    fn from(f: Failure) -> Self {
        Self::Failed(f)
    }
}

impl<T> From<Result<T, Failure>> for Outcome {
    /// `Ok` of any value is done: handlers can end in `step().await.into()`.
    fn from(r: Result<T, Failure>) -> Self {
        match r {
            Ok(_) => Self::Done,
            Err(f) => Self::Failed(f),
        }
    }
}

/// A worker's message logic.
#[async_trait]
pub trait Handler: Send + Sync + 'static {
    async fn handle(&self, delivery: &Delivery) -> Outcome;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_correlation_ids_are_kept_and_others_hashed() {
        for plain in [
            "c-7",
            "0f8fad5b-d9cb-469f-a165-70867728950e",
            "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1",
        ] {
            assert_eq!(correlation_id(Some(plain), "m-1"), plain);
        }
        assert_eq!(correlation_id(None, "m-1"), "m-1");
        assert_eq!(correlation_id(Some(""), "m-1"), "m-1");
        let long = "a".repeat(MAX_CORRELATION_ID_BYTES + 1);
        for bad in ["Zbigniew Brzezinski", "a\nb", "m\u{e9}decin", long.as_str()] {
            let c = correlation_id(Some(bad), "m-1");
            assert!(c.starts_with("sha256:") && c.len() == 7 + 32, "{c}");
            assert_eq!(c, correlation_id(Some(bad), "m-2"), "the hash correlates");
        }
        assert_eq!(
            correlation_id(Some(&"a".repeat(MAX_CORRELATION_ID_BYTES)), "m").len(),
            MAX_CORRELATION_ID_BYTES
        );
    }

    #[test]
    fn results_become_outcomes() {
        assert_eq!(Outcome::from(Ok::<u8, Failure>(1)), Outcome::Done);
        let f = Failure::permanent(ErrorCode::Hl7NotAdt, "MSH-9 is ORU^R01");
        assert_eq!(Outcome::from(Err::<(), _>(f.clone())), Outcome::Failed(f));
        assert_eq!(
            Outcome::retry("transient"),
            Outcome::Failed(Failure::retry("transient"))
        );
    }
}
