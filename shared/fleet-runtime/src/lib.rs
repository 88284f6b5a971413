//! The consumer runtime every fleet worker plugs its handler into: long polling bounded by free
//! handler slots, one tracing span per message, retries by visibility backoff, dead-lettering
//! with failure metadata (send first, delete second), batched deletes and visibility changes,
//! a visibility heartbeat for long handlers, FIFO group ordering, SQS Extended Client claim
//! checks, an encryption guardrail at start, graceful shutdown, and telemetry (JSON logs,
//! Prometheus text, CloudWatch EMF, liveness that fails when polling stalls).
//!
//! It also offers the pieces handlers share: [`EventPublisher`] (batched PutEvents) and
//! [`IdempotencyStore`]. See DESIGN.md in this crate for the message life cycle.

pub mod args;
pub mod backoff;
mod batcher;
pub mod claim_check;
pub mod config;
pub mod dead_letter;
pub mod fifo;
mod handler;
pub mod idempotency;
mod logging;
pub mod otel;
pub mod publisher;
mod runtime;
mod signals;
pub mod telemetry;
#[cfg(feature = "testing")]
pub mod testing;

pub use args::{BackendArgs, BackendKind, PhiPolicyArgs, RuntimeArgs, RuntimeDefaults};
pub use backoff::BackoffPolicy;
pub use config::{HeartbeatConfig, MetricsFormat, RuntimeConfig, RuntimeError};
pub use handler::{
    CORRELATION_ATTRIBUTE, Delivery, Failure, Handler, MAX_CORRELATION_ID_BYTES, Outcome,
    correlation_id,
};
pub use idempotency::{Begin, Claim, IdempotencyStore, Settled};
pub use logging::{init_logging, init_logging_with_default};
pub use publisher::EventPublisher;
pub use runtime::{RunReport, run};
pub use signals::{
    FinishedRun, init_logging_from_env, requests_json, run_worker, shutdown_on_signals,
};
