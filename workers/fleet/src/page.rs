//! The fleet's health page, served by `fleet run` on the fleet health address
//! (`--health-addr` / `FLEET_HEALTH_ADDR`, or `health-addr` in fleet.toml's `[fleet]`):
//!
//! - `GET /`: server-rendered HTML (inline CSS, inline SVG sparklines, no script, no build
//!   step) of the latest [`Status`] ([`html`]);
//! - `GET /status.json`: the same [`Status`], serialised exactly as `fleet status --output json`;
//! - `GET /metrics`: the process's Prometheus text (every worker's series);
//! - `GET /health/live`: 200 while no worker of this process reports a stalled poller, 503
//!   otherwise.
//!
//! A background task samples the status every `--status-interval-secs` (default 10) and keeps
//! each queue's visible count for the last hour in a ring buffer (the sparklines); requests read
//! the latest sample and never touch the backend. GET (and HEAD) only. With
//! `FLEET_STATUS_TOKEN` set, every route but `/health/live` needs `Authorization: Bearer
//! <token>` (compared in constant time). A non-loopback address without a token is refused at
//! start. The page shows queue names, counts, ages, codes, worker names and commands: never a
//! body, and of a message's attributes only the failure attribute's code and worker.

pub mod html;

use std::collections::{BTreeMap, VecDeque};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use anyhow::Context;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use fleet_core::env;
use tokio_util::sync::CancellationToken;

use crate::FleetConfig;
use crate::status::{Status, StatusSource, apply_process_liveness, process_liveness};

/// Default seconds between samples.
pub const DEFAULT_INTERVAL_SECS: u64 = 10;

/// The fleet-level options of `fleet run` (flags, or the `[fleet]` section of fleet.toml).
#[derive(Debug, Clone, Default, clap::Args)]
pub struct PageArgs {
    /// Serve the fleet's health page (`/`, `/status.json`, `/metrics`, `/health/live`) here:
    /// `HOST:PORT`, or a bare `PORT` for 127.0.0.1. A non-loopback address needs
    /// FLEET_STATUS_TOKEN. Each worker's own health endpoint on the same address is not started
    /// (this one serves the whole process). Unset: no page.
    #[arg(long, env = env::HEALTH_ADDR, value_parser = parse_health_addr)]
    pub health_addr: Option<SocketAddr>,
    /// Seconds between the page's samples of the fleet's status (the sparklines keep an hour
    /// of them). Default 10.
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub status_interval_secs: Option<u64>,
}

impl PageArgs {
    /// These flags over `file`'s (`[fleet]`): a flag (or its variable) wins.
    pub fn over(&self, file: &PageArgs) -> PageArgs {
        PageArgs {
            health_addr: self.health_addr.or(file.health_addr),
            status_interval_secs: self.status_interval_secs.or(file.status_interval_secs),
        }
    }
}

/// `HOST:PORT`, or `PORT` alone for the loopback address.
pub fn parse_health_addr(s: &str) -> Result<SocketAddr, String> {
    if let Ok(port) = s.parse::<u16>() {
        return Ok(SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), port));
    }
    s.parse::<SocketAddr>()
        .map_err(|e| format!("{s:?} is neither HOST:PORT nor PORT: {e}"))
}

/// How the page is served.
#[derive(Debug, Clone)]
pub struct PageOptions {
    pub addr: SocketAddr,
    pub interval: Duration,
    /// Bearer token; `None`: no authentication (loopback only).
    pub token: Option<String>,
}

impl PageOptions {
    /// From the merged arguments and `FLEET_STATUS_TOKEN`; `None` when no address is set.
    /// Refuses a non-loopback address without a token.
    pub fn resolve(args: &PageArgs) -> anyhow::Result<Option<Self>> {
        let Some(addr) = args.health_addr else {
            return Ok(None);
        };
        let options = Self {
            addr,
            interval: Duration::from_secs(
                args.status_interval_secs.unwrap_or(DEFAULT_INTERVAL_SECS),
            ),
            token: env::get(env::STATUS_TOKEN),
        };
        options.check()?;
        Ok(Some(options))
    }

    /// A non-loopback address needs a token.
    pub fn check(&self) -> anyhow::Result<()> {
        anyhow::ensure!(
            self.addr.ip().is_loopback() || self.token.is_some(),
            "the fleet health page on {} would be reachable from other hosts without authentication: set {} (every route but /health/live then needs `Authorization: Bearer <token>`), or bind a loopback address (127.0.0.1:{})",
            self.addr,
            env::STATUS_TOKEN,
            self.addr.port()
        );
        Ok(())
    }
}

/// Under `fleet run` the page serves `/health/live` and `/metrics` for the whole process, so a
/// worker whose own endpoint is on the same address (`FLEET_HEALTH_ADDR` is read by every
/// worker's options too) does not start one.
pub fn detach_worker_endpoints(config: &mut FleetConfig, addr: SocketAddr) {
    let mut runtimes = Vec::new();
    if let Some(c) = &mut config.hl7 {
        runtimes.push(&mut c.runtime);
    }
    if let Some(c) = &mut config.docs {
        runtimes.push(&mut c.worker.runtime);
    }
    if let Some(c) = &mut config.notify {
        runtimes.push(&mut c.runtime);
    }
    if let Some(c) = &mut config.gateway {
        runtimes.push(&mut c.runtime);
    }
    for r in runtimes {
        if r.health_addr == Some(addr) {
            r.health_addr = None;
        }
    }
}

/// The samples of the last hour.
#[derive(Debug)]
struct History {
    capacity: usize,
    /// Visible messages by queue, oldest first.
    visible: BTreeMap<String, VecDeque<u64>>,
}

impl History {
    fn push(&mut self, status: &Status) {
        for q in &status.queues {
            let ring = self.visible.entry(q.queue.clone()).or_default();
            if ring.len() == self.capacity {
                ring.pop_front();
            }
            ring.push_back(q.visible);
        }
    }
}

/// What the handlers read.
struct Shared {
    latest: RwLock<Result<Arc<Status>, String>>,
    history: Mutex<History>,
    interval: Duration,
    token: Option<String>,
}

impl Shared {
    fn latest(&self) -> Result<Arc<Status>, String> {
        self.latest
            .read()
            .map_or_else(|p| p.into_inner().clone(), |g| g.clone())
    }

    fn history(&self) -> BTreeMap<String, Vec<u64>> {
        let h = self.history.lock().unwrap_or_else(|p| p.into_inner());
        h.visible
            .iter()
            .map(|(q, ring)| (q.clone(), ring.iter().copied().collect()))
            .collect()
    }

    fn record(&self, sample: anyhow::Result<Status>) {
        let latest = match sample {
            Ok(status) => {
                self.history
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .push(&status);
                Ok(Arc::new(status))
            }
            Err(e) => {
                tracing::warn!(error = %format!("{e:#}"), "fleet status sample failed");
                Err(format!("{e:#}"))
            }
        };
        *self.latest.write().unwrap_or_else(|p| p.into_inner()) = latest;
    }
}

/// One sample: the backend's status with this process's own liveness over it.
async fn sample(config: &FleetConfig, source: &mut StatusSource) -> anyhow::Result<Status> {
    let mut status = source.collect(config).await?;
    apply_process_liveness(
        &mut status,
        &process_liveness(&fleet_runtime::telemetry::metrics::render()),
    );
    Ok(status)
}

/// A running page.
pub struct Page {
    /// The bound address (the port resolved when 0 was asked for).
    pub addr: SocketAddr,
    pub task: tokio::task::JoinHandle<()>,
}

/// Take a first sample, bind `options.addr`, and serve until `stop` is cancelled, sampling in
/// the background.
pub async fn serve(
    options: PageOptions,
    config: FleetConfig,
    mut source: StatusSource,
    stop: CancellationToken,
) -> anyhow::Result<Page> {
    options.check()?;
    let capacity =
        usize::try_from((3600 / options.interval.as_secs().max(1)).max(2)).unwrap_or(360);
    let shared = Arc::new(Shared {
        latest: RwLock::new(Err("not sampled yet".into())),
        history: Mutex::new(History {
            capacity,
            visible: BTreeMap::new(),
        }),
        interval: options.interval,
        token: options.token.clone(),
    });
    shared.record(sample(&config, &mut source).await);
    let listener = tokio::net::TcpListener::bind(options.addr)
        .await
        .with_context(|| format!("cannot serve the fleet health page on {}", options.addr))?;
    let addr = listener.local_addr()?;

    let sampler = {
        let (shared, stop) = (shared.clone(), stop.clone());
        async move {
            let mut every = tokio::time::interval(shared.interval);
            every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            every.tick().await;
            loop {
                tokio::select! {
                    _ = every.tick() => {}
                    () = stop.cancelled() => break,
                }
                let s = sample(&config, &mut source).await;
                shared.record(s);
            }
        }
    };
    let app = router(shared);
    let task = tokio::spawn(async move {
        let sampler = tokio::spawn(sampler);
        let served = axum::serve(listener, app)
            .with_graceful_shutdown(stop.cancelled_owned())
            .await;
        if let Err(e) = served {
            tracing::error!(error = %e, "fleet health page stopped");
        }
        let _ = sampler.await;
    });
    tracing::info!(%addr, authenticated = options.token.is_some(), "fleet health page serving");
    Ok(Page { addr, task })
}

fn router(shared: Arc<Shared>) -> axum::Router {
    axum::Router::new()
        .route("/", get(index))
        .route("/status.json", get(status_json))
        .route("/metrics", get(metrics))
        .route("/health/live", get(live))
        .layer(axum::middleware::from_fn_with_state(
            shared.clone(),
            authorise,
        ))
        .layer(axum::middleware::from_fn(security_headers))
        .with_state(shared)
}

/// Equal bytes, in time that depends on the lengths only.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    let mut diff = a.len() ^ b.len();
    for i in 0..a.len().max(b.len()) {
        let x = a.get(i).copied().unwrap_or(0) ^ b.get(i).copied().unwrap_or(0);
        diff |= usize::from(std::hint::black_box(x));
    }
    diff == 0
}

async fn authorise(State(shared): State<Arc<Shared>>, req: Request, next: Next) -> Response {
    let Some(token) = shared.token.as_deref() else {
        return next.run(req).await;
    };
    if req.uri().path() == "/health/live" {
        return next.run(req).await;
    }
    let given = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim);
    if given.is_some_and(|g| constant_time_eq(g.as_bytes(), token.as_bytes())) {
        next.run(req).await
    } else {
        (
            StatusCode::UNAUTHORIZED,
            [(header::WWW_AUTHENTICATE, "Bearer")],
            "unauthorized: this page needs Authorization: Bearer <FLEET_STATUS_TOKEN>\n",
        )
            .into_response()
    }
}

async fn security_headers(req: Request, next: Next) -> Response {
    let mut res = next.run(req).await;
    let h = res.headers_mut();
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'",
        ),
    );
    res
}

fn unavailable(e: &str) -> Response {
    (
        StatusCode::SERVICE_UNAVAILABLE,
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        format!("fleet status unavailable: {e}\n"),
    )
        .into_response()
}

async fn index(State(shared): State<Arc<Shared>>) -> Response {
    match shared.latest() {
        Ok(status) => (
            [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
            html::render(&status, &shared.history(), shared.interval),
        )
            .into_response(),
        Err(e) => unavailable(&e),
    }
}

async fn status_json(State(shared): State<Arc<Shared>>) -> Response {
    match shared.latest() {
        Ok(status) => match serde_json::to_string_pretty(&*status) {
            Ok(body) => ([(header::CONTENT_TYPE, "application/json")], body).into_response(),
            Err(e) => unavailable(&e.to_string()),
        },
        Err(e) => unavailable(&e),
    }
}

async fn metrics() -> Response {
    fleet_runtime::telemetry::metrics::mirror_backend_requests();
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        fleet_runtime::telemetry::metrics::render(),
    )
        .into_response()
}

async fn live() -> (StatusCode, String) {
    let stalled: Vec<String> = process_liveness(&fleet_runtime::telemetry::metrics::render())
        .into_iter()
        .filter(|(_, up)| !up)
        .map(|(w, _)| w)
        .collect();
    if stalled.is_empty() {
        (StatusCode::OK, "live\n".into())
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("polling stalled: {}\n", stalled.join(", ")),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bare_port_binds_loopback() {
        assert_eq!(
            parse_health_addr("9464").unwrap(),
            "127.0.0.1:9464".parse().unwrap()
        );
        assert_eq!(
            parse_health_addr("0.0.0.0:9464").unwrap(),
            "0.0.0.0:9464".parse().unwrap()
        );
        assert!(parse_health_addr("localhost").is_err());
    }

    #[test]
    fn a_non_loopback_address_needs_a_token() {
        let mut o = PageOptions {
            addr: "0.0.0.0:9464".parse().unwrap(),
            interval: Duration::from_secs(10),
            token: None,
        };
        let e = o.check().unwrap_err().to_string();
        assert!(
            e.contains("FLEET_STATUS_TOKEN") && e.contains("127.0.0.1:9464"),
            "{e}"
        );
        o.token = Some("t".into());
        o.check().unwrap();
        o.token = None;
        o.addr = "[::1]:9464".parse().unwrap();
        o.check().unwrap();
    }

    #[test]
    fn tokens_compare_equal_only_when_identical() {
        assert!(constant_time_eq(b"secret-token", b"secret-token"));
        assert!(!constant_time_eq(b"secret-token", b"secret-tokeN"));
        assert!(!constant_time_eq(b"secret-token", b"secret-token2"));
        assert!(!constant_time_eq(b"", b"x"));
        assert!(constant_time_eq(b"", b""));
    }

    #[test]
    fn the_history_keeps_the_last_capacity_samples() {
        let mut h = History {
            capacity: 3,
            visible: BTreeMap::new(),
        };
        for v in 0..5u64 {
            h.push(&Status {
                backend: "local",
                generated_at_unix_ms: 0,
                queues: vec![crate::status::QueueReport {
                    worker: "w",
                    queue: "q".into(),
                    visible: v,
                    in_flight: 0,
                    delayed: 0,
                    oldest_message_age_secs: None,
                    last_poll_age_secs: None,
                    dlq: None,
                }],
                workers: vec![],
                dead_letters: crate::status::dead_letter_rate(&[], true, 0),
            });
        }
        assert_eq!(h.visible["q"], [2, 3, 4]);
    }
}
