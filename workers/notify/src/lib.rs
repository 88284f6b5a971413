//! notify: consumes EventBridge events (delivered to its queue by a rule, directly or through
//! SNS), routes them through the rules file (EventBridge patterns, the matcher the local bus
//! uses), renders subject and body from allow-listed fields, refuses any text that contains
//! one of the event's PHI values, deduplicates by event id + rule, rate-limits per destination
//! and publishes to SNS (or the local outbox).
//!
//! `main.rs` only wires; [`run`] is what the tests call.

pub mod config;
pub mod handler;
pub mod ratelimit;

pub use fleet_notify_rules::{event, rules};

use std::sync::Arc;

use anyhow::Context;
use fleet_core::Backend;
use fleet_runtime::RunReport;
use tokio_util::sync::CancellationToken;

pub use config::{RUNTIME_DEFAULTS, WorkerConfig};
pub use handler::{NotifyHandler, Sent};
pub use ratelimit::RateLimiter;
pub use rules::Rules;

/// The worker's name in logs, metrics and failure metadata.
pub const WORKER: &str = "notify";

/// Build the handler from a configuration (rules loaded and checked).
pub fn handler(config: &WorkerConfig, backend: &dyn Backend) -> anyhow::Result<NotifyHandler> {
    let (_, table, rules_path) = config.identities()?;
    let rules = Rules::load(&rules_path)
        .with_context(|| format!("loading rules from {}", rules_path.display()))?;
    if backend.kind() == "aws" {
        // SNS names a topic by its ARN: a bare name (the local example rules) would dead-letter
        // every notification of that rule one by one; refuse at start instead.
        for r in &rules.rules {
            if let fleet_core::ports::Destination::Topic(t) = &r.destination
                && !t.starts_with("arn:")
            {
                anyhow::bail!(
                    "{}: rule {:?} sends to topic {t:?}, but on AWS a topic is named by its ARN (arn:aws:sns:REGION:ACCOUNT:NAME; the deployment stack's NotificationsTopicArn output)",
                    rules_path.display(),
                    r.name
                );
            }
        }
    }
    let limiter = RateLimiter::new(config.rate_per_sec, config.burst, config.max_wait());
    Ok(NotifyHandler::new(
        Arc::new(rules),
        backend.notifier(),
        backend.records(&table),
        Arc::new(limiter),
    )
    .print_to_stdout(config.print))
}

/// Run the worker until `shutdown` is cancelled.
pub async fn run(
    config: WorkerConfig,
    backend: Arc<dyn Backend>,
    shutdown: CancellationToken,
) -> anyhow::Result<RunReport> {
    let (queue, _, _) = config.identities()?;
    let handler = handler(&config, backend.as_ref())?;
    let rt = config
        .runtime
        .runtime_config(WORKER, &queue, &RUNTIME_DEFAULTS);
    let report = fleet_runtime::run(rt, backend, Arc::new(handler), shutdown).await?;
    Ok(report)
}
