//! Test support for the worker crates' own tests (feature `testing`, enabled only from their
//! `[dev-dependencies]`, so no production build carries it).
//!
//! The fleet's one port-error mapping is [`Failure::from_port`]; every worker must answer a
//! failing record store exactly as it says. [`port_error_tests!`](crate::port_error_tests)
//! writes one test per [`ErrorKind`] around a worker's own "handle a valid message with these
//! records" function, so hl7-ingest, doc-pipeline and notify share the check instead of each
//! carrying a copy.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
pub use fleet_core::ErrorKind;
use fleet_core::ports::{ConditionalPut, PutOutcome, Record, TransactOutcome};
use fleet_core::{PortError, RecordStore};

use crate::{Delivery, Failure, Outcome};

/// A record store whose every call fails with the injected error.
#[derive(Debug)]
pub struct FailingRecords(pub PortError);

#[async_trait]
impl RecordStore for FailingRecords {
    fn id(&self) -> &str {
        "failing"
    }
    async fn put(&self, _put: ConditionalPut) -> Result<PutOutcome, PortError> {
        Err(self.0.clone())
    }
    async fn get(&self, _pk: &str, _sk: &str) -> Result<Option<Record>, PortError> {
        Err(self.0.clone())
    }
    async fn transact_put(&self, _p: &[ConditionalPut]) -> Result<TransactOutcome, PortError> {
        Err(self.0.clone())
    }
    async fn query(&self, _pk: &str) -> Result<Vec<Record>, PortError> {
        Err(self.0.clone())
    }
    async fn delete(&self, _pk: &str, _sk: &str) -> Result<(), PortError> {
        Err(self.0.clone())
    }
}

/// A first delivery of `body` with fixed ids.
pub fn delivery(body: String) -> Delivery {
    Delivery {
        message_id: "m-port".into(),
        body,
        attributes: Default::default(),
        receive_count: 1,
        attempt: 1,
        group_id: None,
        correlation_id: "c-port".into(),
        sent_timestamp_ms: 0,
    }
}

/// Runs `outcome_with` (a worker handling one valid message against the given record store)
/// with a store failing with `kind` and asserts the answer is `Failure::from_port` of it.
pub async fn check_port_error<F, Fut>(kind: ErrorKind, outcome_with: F)
where
    F: FnOnce(Arc<dyn RecordStore>) -> Fut,
    Fut: Future<Output = Outcome>,
{
    let err = PortError {
        retry_after: Some(Duration::from_secs(3)),
        ..PortError::new(kind, "records.injected", "injected failure")
    };
    let got = outcome_with(Arc::new(FailingRecords(err.clone()))).await;
    assert_eq!(got, Outcome::Failed(Failure::from_port(&err)), "{kind:?}");
}

/// One `#[tokio::test]` per [`ErrorKind`], each calling
/// [`check_port_error`] with the given `async fn(Arc<dyn RecordStore>) -> Outcome`.
#[macro_export]
macro_rules! port_error_tests {
    ($outcome_with:path) => {
        $crate::port_error_tests!(@each $outcome_with;
            throttled => Throttled,
            transient => Transient,
            not_found => NotFound,
            invalid => Invalid,
            access_denied => AccessDenied,
            other => Other,
        );
    };
    (@each $outcome_with:path; $($name:ident => $kind:ident),* $(,)?) => {$(
        #[::tokio::test]
        async fn $name() {
            $crate::testing::check_port_error($crate::testing::ErrorKind::$kind, $outcome_with)
                .await;
        }
    )*};
}

/// The kinds [`port_error_tests!`](crate::port_error_tests) covers: a new [`ErrorKind`] stops
/// this from compiling until the macro tests it too.
const _: fn(ErrorKind) = |kind| match kind {
    ErrorKind::Throttled
    | ErrorKind::Transient
    | ErrorKind::NotFound
    | ErrorKind::Invalid
    | ErrorKind::AccessDenied
    | ErrorKind::Other => {}
};
