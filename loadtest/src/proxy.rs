//! The fault proxy: a loopback HTTP/1.1 proxy between the worker and the AWS endpoint (moto).
//! A seeded share of requests is disturbed the ways a real service and network disturb them:
//! throttled (HTTP 400 `ThrottlingException`), failed (HTTP 500 `InternalFailure`), answered
//! slowly, or acted on and then left unanswered (the connection closes: the client cannot know
//! whether its write happened). The rest pass through untouched.
//!
//! The proxy also reads the SDK's `amz-sdk-request: attempt=N; max=M` header on every request,
//! so a run can show that retries stayed within the SDK's bound.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::Serialize;
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

use crate::scenario::FaultKind;

/// What to disturb.
#[derive(Debug, Clone)]
pub struct ProxyConfig {
    pub share: f64,
    pub kinds: Vec<FaultKind>,
    pub slow_ms: [u64; 2],
    pub seed: u64,
}

/// What the proxy saw and did, for the report.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ProxySummary {
    pub requests: u64,
    /// Disturbed requests by kind.
    pub injected: BTreeMap<String, u64>,
    /// Requests by API (`X-Amz-Target`, e.g. `DynamoDB_20120810.TransactWriteItems`).
    pub by_api: BTreeMap<String, u64>,
    /// Requests whose SDK attempt number was above 1 (retries).
    pub retries: u64,
    /// The highest `attempt=` seen, and the highest `max=` the SDK announced.
    pub max_attempt: u64,
    pub max_attempts_allowed: u64,
    /// Requests the upstream did not answer (not injected: moto itself failed).
    pub upstream_errors: u64,
}

#[derive(Default)]
struct Stats {
    requests: AtomicU64,
    retries: AtomicU64,
    max_attempt: AtomicU64,
    max_allowed: AtomicU64,
    upstream_errors: AtomicU64,
    injected: Mutex<BTreeMap<FaultKind, u64>>,
    by_api: Mutex<BTreeMap<String, u64>>,
}

struct Shared {
    upstream: SocketAddr,
    cfg: ProxyConfig,
    rng: Mutex<StdRng>,
    stats: Stats,
}

/// A running proxy; stops when dropped.
pub struct FaultProxy {
    pub url: String,
    shared: Arc<Shared>,
    task: JoinHandle<()>,
}

impl FaultProxy {
    /// Listen on a free loopback port and forward to `upstream` (an `http://host:port` URL).
    pub async fn start(upstream: &str, cfg: ProxyConfig) -> anyhow::Result<Self> {
        let upstream = upstream_addr(upstream)?;
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .context("binding the fault proxy")?;
        let url = format!("http://{}", listener.local_addr()?);
        let shared = Arc::new(Shared {
            upstream,
            rng: Mutex::new(StdRng::seed_from_u64(cfg.seed)),
            cfg,
            stats: Stats::default(),
        });
        let s = shared.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let s = s.clone();
                tokio::spawn(async move {
                    let service = hyper::service::service_fn(move |req| handle(req, s.clone()));
                    // A dropped answer ends the connection with an error: that is the point.
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        Ok(Self { url, shared, task })
    }

    pub fn summary(&self) -> ProxySummary {
        let st = &self.shared.stats;
        ProxySummary {
            requests: st.requests.load(Ordering::Relaxed),
            injected: st
                .injected
                .lock()
                .unwrap()
                .iter()
                .map(|(k, v)| (k.as_str().to_string(), *v))
                .collect(),
            by_api: st.by_api.lock().unwrap().clone(),
            retries: st.retries.load(Ordering::Relaxed),
            max_attempt: st.max_attempt.load(Ordering::Relaxed),
            max_attempts_allowed: st.max_allowed.load(Ordering::Relaxed),
            upstream_errors: st.upstream_errors.load(Ordering::Relaxed),
        }
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn upstream_addr(url: &str) -> anyhow::Result<SocketAddr> {
    let hostport = url
        .strip_prefix("http://")
        .with_context(|| format!("the fault proxy forwards to http:// endpoints only, not {url}"))?
        .trim_end_matches('/');
    let hostport = hostport.replace("localhost", "127.0.0.1");
    hostport
        .parse()
        .with_context(|| format!("the fault proxy needs an IP:port endpoint, not {url}"))
}

/// `attempt=2; max=3` → (2, 3).
pub fn parse_sdk_request(v: &str) -> Option<(u64, u64)> {
    let mut attempt = None;
    let mut max = None;
    for part in v.split(';') {
        let (k, val) = part.trim().split_once('=')?;
        match k.trim() {
            "attempt" => attempt = val.trim().parse().ok(),
            "max" => max = val.trim().parse().ok(),
            _ => {}
        }
    }
    Some((attempt?, max?))
}

/// An AWS JSON-protocol error answer (the SDK classifies it by `__type`).
fn aws_error(status: StatusCode, kind: &str, message: &str) -> Response<Full<Bytes>> {
    let body = serde_json::json!({ "__type": kind, "message": message }).to_string();
    let mut r = Response::new(Full::new(Bytes::from(body)));
    *r.status_mut() = status;
    r.headers_mut().insert(
        "content-type",
        hyper::header::HeaderValue::from_static("application/x-amz-json-1.0"),
    );
    // SQS speaks JSON with a query-compatible error code in this header.
    if let Ok(v) = hyper::header::HeaderValue::from_str(&format!("{kind};Sender")) {
        r.headers_mut().insert("x-amzn-query-error", v);
    }
    r
}

/// The proxy refused the request on purpose.
#[derive(Debug)]
struct Dropped;

impl std::fmt::Display for Dropped {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("answer dropped by the fault proxy")
    }
}

impl std::error::Error for Dropped {}

async fn handle(req: Request<Incoming>, s: Arc<Shared>) -> Result<Response<Full<Bytes>>, Dropped> {
    let st = &s.stats;
    st.requests.fetch_add(1, Ordering::Relaxed);
    let header = |name: &str| {
        req.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    };
    if let Some((attempt, max)) = header("amz-sdk-request")
        .as_deref()
        .and_then(parse_sdk_request)
    {
        if attempt > 1 {
            st.retries.fetch_add(1, Ordering::Relaxed);
        }
        st.max_attempt.fetch_max(attempt, Ordering::Relaxed);
        st.max_allowed.fetch_max(max, Ordering::Relaxed);
    }
    let api = header("x-amz-target").unwrap_or_else(|| format!("{} {}", req.method(), "(rest)"));
    *st.by_api.lock().unwrap().entry(api).or_default() += 1;

    let fault = {
        let mut rng = s.rng.lock().unwrap();
        let kinds = &s.cfg.kinds;
        (!kinds.is_empty() && rng.random_bool(s.cfg.share)).then(|| {
            (
                kinds[rng.random_range(0..kinds.len())],
                rng.random_range(s.cfg.slow_ms[0]..=s.cfg.slow_ms[1]),
            )
        })
    };
    if let Some((kind, _)) = fault {
        *st.injected.lock().unwrap().entry(kind).or_default() += 1;
    }
    match fault {
        Some((FaultKind::Throttle, _)) => {
            return Ok(aws_error(
                StatusCode::BAD_REQUEST,
                "ThrottlingException",
                "Rate exceeded (injected by the loadtest fault proxy)",
            ));
        }
        Some((FaultKind::ServerError, _)) => {
            return Ok(aws_error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "InternalFailure",
                "injected by the loadtest fault proxy",
            ));
        }
        _ => {}
    }
    let answer = match forward(req, s.upstream).await {
        Ok(r) => r,
        Err(_) => {
            st.upstream_errors.fetch_add(1, Ordering::Relaxed);
            return Ok(aws_error(
                StatusCode::BAD_GATEWAY,
                "InternalFailure",
                "the fault proxy could not reach the endpoint",
            ));
        }
    };
    match fault {
        Some((FaultKind::Slow, ms)) => {
            tokio::time::sleep(Duration::from_millis(ms)).await;
            Ok(answer)
        }
        Some((FaultKind::Drop, _)) => Err(Dropped),
        _ => Ok(answer),
    }
}

/// Send the request to the upstream on a connection of its own and read the whole answer.
async fn forward(
    req: Request<Incoming>,
    upstream: SocketAddr,
) -> anyhow::Result<Response<Full<Bytes>>> {
    let (parts, body) = req.into_parts();
    let body = body.collect().await?.to_bytes();
    let stream = TcpStream::connect(upstream).await?;
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
    tokio::spawn(async move {
        let _ = conn.await;
    });
    let answer = sender
        .send_request(Request::from_parts(parts, Full::new(body)))
        .await?;
    let (parts, body) = answer.into_parts();
    let body = body.collect().await?.to_bytes();
    Ok(Response::from_parts(parts, Full::new(body)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// An upstream that answers every request `200 ok` and counts them.
    async fn upstream() -> (String, Arc<AtomicU64>) {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", l.local_addr().unwrap());
        let hits = Arc::new(AtomicU64::new(0));
        let h = hits.clone();
        tokio::spawn(async move {
            loop {
                let (mut s, _) = l.accept().await.unwrap();
                let h = h.clone();
                tokio::spawn(async move {
                    let mut buf = Vec::new();
                    let mut chunk = [0u8; 1024];
                    while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
                        let n = s.read(&mut chunk).await.unwrap();
                        if n == 0 {
                            return;
                        }
                        buf.extend_from_slice(&chunk[..n]);
                    }
                    h.fetch_add(1, Ordering::SeqCst);
                    let _ = s
                        .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok")
                        .await;
                });
            }
        });
        (url, hits)
    }

    /// One request through the proxy; what came back before the connection closed.
    async fn request(proxy: &FaultProxy) -> String {
        let addr = proxy.url.trim_start_matches("http://");
        let mut s = TcpStream::connect(addr).await.unwrap();
        s.write_all(
            b"POST / HTTP/1.1\r\nhost: x\r\nx-amz-target: AmazonSQS.ReceiveMessage\r\n\
              amz-sdk-request: attempt=2; max=3\r\ncontent-length: 2\r\nconnection: close\r\n\r\n{}",
        )
        .await
        .unwrap();
        let mut out = Vec::new();
        let _ = s.read_to_end(&mut out).await;
        String::from_utf8_lossy(&out).into_owned()
    }

    async fn proxy(upstream: &str, share: f64, kind: FaultKind) -> FaultProxy {
        let cfg = ProxyConfig {
            share,
            kinds: vec![kind],
            slow_ms: [50, 50],
            seed: 1,
        };
        FaultProxy::start(upstream, cfg).await.unwrap()
    }

    #[tokio::test]
    async fn each_fault_does_what_it_says_to_the_client_and_the_service() {
        let (url, hits) = upstream().await;

        let clean = proxy(&url, 0.0, FaultKind::Throttle).await;
        assert!(request(&clean).await.ends_with("ok"));
        assert_eq!(hits.load(Ordering::SeqCst), 1);
        let sum = clean.summary();
        assert_eq!((sum.requests, sum.retries, sum.max_attempt), (1, 1, 2));
        assert_eq!(sum.max_attempts_allowed, 3);
        assert_eq!(sum.by_api["AmazonSQS.ReceiveMessage"], 1);
        assert!(sum.injected.is_empty());

        // Throttled and failed requests never reach the service.
        let throttle = proxy(&url, 1.0, FaultKind::Throttle).await;
        let answer = request(&throttle).await;
        assert!(answer.starts_with("HTTP/1.1 400"), "{answer}");
        assert!(answer.contains("ThrottlingException"), "{answer}");
        let failed = proxy(&url, 1.0, FaultKind::ServerError).await;
        assert!(request(&failed).await.starts_with("HTTP/1.1 500"));
        assert_eq!(hits.load(Ordering::SeqCst), 1);

        // A slow answer arrives; a dropped one reaches the service and never comes back.
        let slow = proxy(&url, 1.0, FaultKind::Slow).await;
        assert!(request(&slow).await.ends_with("ok"));
        assert_eq!(hits.load(Ordering::SeqCst), 2);
        let dropped = proxy(&url, 1.0, FaultKind::Drop).await;
        assert_eq!(request(&dropped).await, "");
        assert_eq!(hits.load(Ordering::SeqCst), 3);
        assert_eq!(dropped.summary().injected["drop"], 1);
    }

    #[test]
    fn the_sdk_attempt_header_is_read() {
        assert_eq!(parse_sdk_request("attempt=2; max=3"), Some((2, 3)));
        assert_eq!(parse_sdk_request("max=5;attempt=1"), Some((1, 5)));
        assert_eq!(
            parse_sdk_request("ttl=20250101T000000Z; attempt=3; max=3"),
            Some((3, 3))
        );
        assert_eq!(parse_sdk_request("attempt=1"), None);
        assert_eq!(parse_sdk_request("garbage"), None);
    }

    #[test]
    fn only_loopback_http_endpoints_are_forwarded_to() {
        assert_eq!(
            upstream_addr("http://127.0.0.1:5000/").unwrap(),
            "127.0.0.1:5000".parse().unwrap()
        );
        assert!(upstream_addr("https://sqs.us-east-1.amazonaws.com").is_err());
    }
}
