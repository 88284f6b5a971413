//! The MLLP gateway: the fleet's entry point for EHR feeds. Interface engines open a TCP (or
//! TLS) connection, send one HL7 v2 message in an MLLP frame and wait for its acknowledgement;
//! the gateway routes it by MSH-9 to a queue and answers only once the queue accepted it.
//! Messages from all connections are sent in batches (group commit). See DESIGN.md in this
//! crate.

pub mod ack;
pub mod client;
pub mod config;
pub mod enqueue;
pub mod frame;
pub mod metrics;
pub mod payload;
pub mod route;
pub mod server;
pub mod tls;

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;

use anyhow::Context;
use fleet_core::Backend;
use fleet_runtime::telemetry::Telemetry;
use tokio_util::sync::CancellationToken;

pub use config::{Command, GatewayConfig};

use crate::enqueue::{BatchOptions, Enqueuer};
use crate::payload::{ClaimCheckTarget, QueueShape};
use crate::server::{Gateway, QueueTarget};

pub const WORKER: &str = "mllp-gateway";

/// SQS's classic limit, used when a queue does not say its MaximumMessageSize.
pub const DEFAULT_MAX_QUEUE_MESSAGE_BYTES: u64 = 256 * 1024;

/// What one run of the gateway did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RunReport {
    pub connections: u64,
    pub refused_connections: u64,
    pub messages: u64,
    /// Answered AA/CA (queued).
    pub queued: u64,
    /// Answered AE/CE.
    pub content_errors: u64,
    /// Answered AR/CR.
    pub rejected: u64,
    pub frame_errors: u64,
}

impl fleet_runtime::FinishedRun for RunReport {
    fn log_finished(&self) {
        tracing::info!(
            connections = self.connections,
            refused_connections = self.refused_connections,
            messages = self.messages,
            queued = self.queued,
            content_errors = self.content_errors,
            rejected = self.rejected,
            frame_errors = self.frame_errors,
            requests = %fleet_runtime::requests_json(),
            "run finished"
        );
    }
}

/// Open the routed queues (refusing unencrypted ones unless allowed) and start their batchers.
async fn open_queues(
    config: &GatewayConfig,
    backend: &Arc<dyn Backend>,
) -> anyhow::Result<(
    HashMap<String, QueueTarget>,
    Vec<tokio::task::JoinHandle<()>>,
)> {
    let mut queues = HashMap::new();
    let mut tasks = Vec::new();
    for name in crate::route::Router::new(config.routes.clone()).queues() {
        let queue = backend
            .queue(name)
            .await
            .with_context(|| format!("opening queue {name}"))?;
        let attrs = queue
            .attributes()
            .await
            .with_context(|| format!("reading the attributes of queue {name}"))?;
        if !attrs.encrypted() {
            if !config.runtime.allow_unencrypted {
                anyhow::bail!(
                    "queue {} is not encrypted (no SSE-KMS or SSE-SQS); refusing to send patient data to it (--allow-unencrypted for local development)",
                    queue.id()
                );
            }
            tracing::warn!(queue = %queue.id(), "sending to an unencrypted queue (allow_unencrypted)");
        }
        let max = attrs
            .max_message_bytes
            .unwrap_or(DEFAULT_MAX_QUEUE_MESSAGE_BYTES);
        let max = usize::try_from(max).unwrap_or(usize::MAX);
        let (enqueuer, task) = Enqueuer::start(
            queue.clone(),
            BatchOptions {
                linger: config.batch_linger(),
                max_batch_bytes: max,
                max_in_flight: config.max_batches_in_flight,
                max_pending: config.max_pending,
            },
        );
        tasks.push(task);
        queues.insert(
            name.to_string(),
            QueueTarget {
                enqueuer,
                shape: QueueShape {
                    fifo: attrs.fifo,
                    max_message_bytes: max,
                    fifo_group: config.fifo_group,
                },
            },
        );
    }
    Ok((queues, tasks))
}

/// Run the gateway until `shutdown` is cancelled: stop accepting, finish and answer the
/// messages in progress (bounded by the drain deadline), send what is batched, and return
/// what it did. Fails before listening if the configuration or a queue is unsafe.
pub async fn run(
    config: GatewayConfig,
    backend: Arc<dyn Backend>,
    shutdown: CancellationToken,
) -> anyhow::Result<RunReport> {
    config.check()?;
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("listening on {}", config.listen))?;
    run_on(config, backend, listener, shutdown).await
}

/// [`run`] on a listener already bound (the demo binds port 0 and sends to what it got);
/// `config.listen` is then only checked, not bound.
pub async fn run_on(
    config: GatewayConfig,
    backend: Arc<dyn Backend>,
    listener: tokio::net::TcpListener,
    shutdown: CancellationToken,
) -> anyhow::Result<RunReport> {
    config.check()?;
    let unused = config.unused_runtime_options();
    if !unused.is_empty() {
        tracing::info!(options = %unused.join(" "), "consumer options set (flag or environment) are not used by the gateway");
    }
    if config.runtime.allow_unencrypted {
        backend
            .unencrypted_override()
            .map_err(|reason| anyhow::anyhow!("--allow-unencrypted refused: {reason}"))?;
    }
    let tls = match (&config.tls_cert, &config.tls_key) {
        (Some(cert), Some(key)) => {
            let server = tls::server_config(cert, key, config.tls_client_ca.as_deref())?;
            Some(tokio_rustls::TlsAcceptor::from(Arc::new(server)))
        }
        _ => None,
    };
    let (queues, batchers) = open_queues(&config, &backend).await?;
    let claim_check = config
        .claim_check_bucket
        .as_ref()
        .map(|bucket| ClaimCheckTarget {
            bucket: bucket.clone(),
            store: backend.objects(bucket),
        });
    let addr = listener.local_addr()?;
    metrics::describe();
    let telemetry = Arc::new(Telemetry::new(
        WORKER,
        &addr.to_string(),
        Duration::from_secs(30),
    ));
    let stop_telemetry = CancellationToken::new();
    let format = config.runtime.metrics.unwrap_or_default();
    if let Some(health) = config.runtime.health_addr {
        fleet_runtime::telemetry::serve(
            health,
            telemetry.clone(),
            format.prometheus(),
            stop_telemetry.clone(),
        )
        .await
        .with_context(|| format!("health endpoint on {health}"))?;
    }
    let periodic =
        fleet_runtime::telemetry::spawn_periodic(telemetry.clone(), None, stop_telemetry.clone());
    // Liveness: the accept loop ticks it; a gateway whose loop has stopped is not live.
    let ticker = {
        let t = telemetry.clone();
        let stop = stop_telemetry.clone();
        tokio::spawn(async move {
            let mut every = tokio::time::interval(Duration::from_secs(5));
            loop {
                tokio::select! {
                    _ = every.tick() => t.health.progress(),
                    () = stop.cancelled() => break,
                }
            }
        })
    };
    telemetry.health.set_ready(true);
    tracing::info!(
        addr = %addr,
        tls = tls.is_some(),
        client_auth = config.tls_client_ca.is_some(),
        routes = config.routes.len(),
        "mllp-gateway listening"
    );
    let drain = config.drain_deadline();
    let gateway = Arc::new(Gateway::new(config, queues, claim_check, tls));
    let serving = {
        let shutdown = shutdown.clone();
        let gw = gateway.clone();
        async move { server::serve(gw, listener, shutdown, drain).await }
    };
    serving.await;
    telemetry.health.set_shutting_down();
    let report = {
        let c = &gateway.counters;
        RunReport {
            connections: c.connections.load(Relaxed),
            refused_connections: c.refused_connections.load(Relaxed),
            messages: c.messages.load(Relaxed),
            queued: c.queued.load(Relaxed),
            content_errors: c.content_errors.load(Relaxed),
            rejected: c.rejected.load(Relaxed),
            frame_errors: c.frame_errors.load(Relaxed),
        }
    };
    // Every connection is gone, so every Enqueuer clone is too: the batchers end once their
    // batches in flight are answered.
    drop(gateway);
    for b in batchers {
        let _ = b.await;
    }
    stop_telemetry.cancel();
    let _ = periodic.await;
    let _ = ticker.await;
    Ok(report)
}
