//! Provisioning: the run's own stack (source queue + DLQ, bus rule → tap queue, table), the
//! fault proxy when the scenario asks for one, and the environment every worker process gets.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use fleet_core::ports::MessageQueue;

use super::Options;
use super::collect::Tap;
use super::workers::Workers;
use crate::proxy::{FaultProxy, ProxyConfig};
use crate::scenario::Scenario;
use crate::stack::{self, BackendKind, Stack};

/// A provisioned run: the stack, its queues as the load tool uses them, the proxy, and the
/// starter of worker processes.
pub(super) struct Provisioned {
    pub stack: Stack,
    pub source: Arc<dyn MessageQueue>,
    pub tap: Tap,
    pub dlq: Arc<dyn MessageQueue>,
    pub proxy: Option<FaultProxy>,
    pub workers: Workers,
}

pub(super) async fn provision(scenario: &Scenario, opts: &Options) -> anyhow::Result<Provisioned> {
    let visibility = Duration::from_secs(scenario.visibility_timeout_s);
    let stack = match opts.backend {
        BackendKind::Local => {
            // Opening the SQLite file and creating queues block: the blocking pool does it.
            let dir = opts.work_dir.clone();
            tokio::task::spawn_blocking(move || stack::local(&dir, visibility)).await??
        }
        BackendKind::Aws => stack::aws(opts.endpoint.as_deref(), &opts.region, visibility).await?,
    };
    let source = stack.backend.queue(&stack.source).await?;
    let tap = match &stack.local {
        Some(local) => Tap::LocalTail {
            backend: local.clone(),
            queue: stack.tap.clone(),
        },
        None => Tap::Queue(stack.backend.queue(&stack.tap).await?),
    };
    let dlq = stack.backend.queue(&stack.dlq).await?;
    let proxy = start_proxy(scenario, opts).await?;
    let workers = Workers::new(
        opts.worker_bin.clone(),
        worker_env(&stack, scenario, proxy.as_ref().map(|p| p.url.as_str())),
        opts.work_dir.clone(),
    );
    tokio::fs::create_dir_all(&opts.work_dir).await?;
    Ok(Provisioned {
        stack,
        source,
        tap,
        dlq,
        proxy,
        workers,
    })
}

async fn start_proxy(scenario: &Scenario, opts: &Options) -> anyhow::Result<Option<FaultProxy>> {
    let f = &scenario.faults;
    if f.proxy_share <= 0.0 {
        return Ok(None);
    }
    anyhow::ensure!(
        opts.backend == BackendKind::Aws,
        "faults.proxy_share needs the aws backend (the proxy sits between the worker and the endpoint)"
    );
    let upstream = opts
        .endpoint
        .as_deref()
        .context("faults.proxy_share needs --endpoint (the proxy forwards to that endpoint)")?;
    let proxy = FaultProxy::start(
        upstream,
        ProxyConfig {
            share: f.proxy_share,
            kinds: f.kinds(),
            slow_ms: f.proxy_slow_ms,
            seed: scenario.seed,
        },
    )
    .await?;
    Ok(Some(proxy))
}

/// The worker's environment; `endpoint`: the fault proxy, which then replaces the stack's.
fn worker_env(stack: &Stack, s: &Scenario, endpoint: Option<&str>) -> Vec<(String, String)> {
    let mut env = stack.worker_env.clone();
    if let Some(url) = endpoint {
        env.retain(|(k, _)| k != fleet_core::env::AWS_ENDPOINT_URL);
        env.push((fleet_core::env::AWS_ENDPOINT_URL.into(), url.to_string()));
    }
    env.extend([
        (fleet_core::env::HL7_QUEUE.into(), stack.source.clone()),
        (fleet_core::env::EVENT_BUS.into(), stack.bus.clone()),
        (fleet_core::env::HL7_TABLE.into(), stack.table.clone()),
        (
            fleet_core::env::CONCURRENCY.into(),
            s.worker_concurrency.to_string(),
        ),
        (
            fleet_core::env::WAIT_TIME_SECS.into(),
            s.worker_wait_time_s.to_string(),
        ),
        (
            fleet_core::env::DRAIN_DEADLINE_SECS.into(),
            s.worker_drain_deadline_s.to_string(),
        ),
        (fleet_core::env::LOG.into(), "info".into()),
        (fleet_core::env::LOG_FORMAT.into(), "json".into()),
    ]);
    if let Some(ms) = s.worker_publish_linger_ms {
        env.push((fleet_core::env::PUBLISH_LINGER_MS.into(), ms.to_string()));
    }
    if let Some(ms) = s.worker_delete_linger_ms {
        env.push((fleet_core::env::DELETE_LINGER_MS.into(), ms.to_string()));
    }
    if let Some(n) = s.worker_max_message_bytes {
        env.push((fleet_core::env::HL7_MAX_MESSAGE_BYTES.into(), n.to_string()));
    }
    env
}
