//! What both document adapters ([`crate::textract`], [`crate::comprehend_medical`]) share: the
//! bounded retries one call makes before it returns [`DocError::Retryable`], and the first step
//! of classifying a failed SDK call, before each service's own error table.

use std::future::Future;
use std::time::Duration;

use aws_smithy_runtime_api::client::result::SdkError;
use aws_smithy_runtime_api::http::Response as HttpResponse;
use aws_smithy_types::error::metadata::ProvideErrorMetadata;
use backon::{ExponentialBuilder, Retryable};
use fleet_core::ErrorCode;
use fleet_docs::DocError;

use crate::error::sanitize_code;

/// Bounds of the retries an adapter makes inside one call (throttling, 5xx, timeouts) before
/// it returns [`DocError::Retryable`] and leaves the rest to the queue's backoff. The SDK's own
/// retries are switched off for these calls, so `max_attempts` is the number of requests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InCallRetry {
    /// Requests per call, the first one included (at least 1).
    pub max_attempts: usize,
    /// The first delay; each next one doubles, with full jitter, up to `max_delay`.
    pub base_delay: Duration,
    pub max_delay: Duration,
}

impl Default for InCallRetry {
    /// 4 attempts, 200 ms base, 5 s cap.
    fn default() -> Self {
        Self {
            max_attempts: 4,
            base_delay: Duration::from_millis(200),
            max_delay: Duration::from_secs(5),
        }
    }
}

impl InCallRetry {
    /// Runs `attempt` until it succeeds, fails permanently, or the attempts are spent.
    /// Retryable errors that carry a `retry_after` hint (a concurrency limit that will not
    /// clear in milliseconds) are returned at once, for the queue to wait on.
    pub(crate) async fn run<T, F, Fut>(self, attempt: F) -> Result<T, DocError>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, DocError>>,
    {
        let backoff = ExponentialBuilder::default()
            .with_min_delay(self.base_delay)
            .with_max_delay(self.max_delay)
            .with_jitter()
            .with_max_times(self.max_attempts.max(1) - 1);
        attempt
            .retry(backoff)
            .when(|e| {
                matches!(
                    e,
                    DocError::Retryable {
                        retry_after: None,
                        ..
                    }
                )
            })
            .notify(|e, delay| {
                // The detail is built from the operation and the service error code only.
                tracing::debug!(error = %e, ?delay, "retrying document service call");
            })
            .await
    }
}

/// What a failed SDK call means for the pipeline, before the service's own codes: the parts
/// shared by both document adapters.
pub(crate) enum Failure<'a> {
    /// The service answered with an error: its code (when any), message (read for
    /// classification only, never copied) and HTTP status.
    Service {
        code: Option<&'a str>,
        message: Option<&'a str>,
        status: u16,
    },
    /// Settled already (timeouts, dispatch failures, unreadable responses, construction).
    Settled(DocError),
}

pub(crate) fn failure<'a, E, F>(
    op: &'static str,
    err: &'a SdkError<E, HttpResponse>,
    modeled: F,
) -> Failure<'a>
where
    E: ProvideErrorMetadata,
    F: Fn(&E) -> Option<&'static str>,
{
    let transient =
        |what: &str| Failure::Settled(DocError::retryable("transient", format!("{op}: {what}")));
    match err {
        SdkError::ConstructionFailure(_) => Failure::Settled(DocError::permanent(
            ErrorCode::DownstreamRejected,
            format!("{op}: request could not be constructed"),
        )),
        SdkError::TimeoutError(_) => transient("timeout"),
        SdkError::DispatchFailure(f) => transient(if f.is_timeout() {
            "dispatch timeout"
        } else if f.is_io() {
            "dispatch failure (io)"
        } else {
            "dispatch failure"
        }),
        SdkError::ResponseError(r) => {
            let status = r.raw().status().as_u16();
            transient(&format!("unreadable response (HTTP {status})"))
        }
        SdkError::ServiceError(s) => Failure::Service {
            code: s.err().code().or_else(|| modeled(s.err())),
            message: s.err().message(),
            status: s.raw().status().as_u16(),
        },
        // `SdkError` is non-exhaustive.
        _ => transient("unclassified SDK error"),
    }
}

/// "op: Code (HTTP 400)", the detail of a classified service error.
pub(crate) fn service_detail(op: &str, code: Option<&str>, status: u16) -> String {
    match code {
        Some(c) => format!("{op}: {} (HTTP {status})", sanitize_code(c)),
        None => format!("{op}: HTTP {status}"),
    }
}
