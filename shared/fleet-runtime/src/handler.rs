//! The contract between the runtime and a worker: the [`Delivery`] a handler is given and the
//! [`Outcome`] it answers with. A failed outcome is the fleet's one [`Failure`] type (defined in
//! `fleet-core` so crates without the runtime share it); DESIGN.md has the port-error table.

use async_trait::async_trait;
use fleet_core::{Attributes, ErrorCode};

pub use fleet_core::Failure;

/// The message attribute a producer may set to carry a correlation id across services.
pub const CORRELATION_ATTRIBUTE: &str = "correlation_id";

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
    /// The `correlation_id` attribute when present, else the message id.
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
