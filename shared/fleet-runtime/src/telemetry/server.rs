//! The health endpoint: `/health/live`, `/health/ready` and, when Prometheus output is on,
//! `/metrics` (the process's recorder rendered; see [`super::metrics`]).

use std::net::SocketAddr;
use std::sync::Arc;

use tokio_util::sync::CancellationToken;

use super::Telemetry;

/// Binds `addr` and serves `/health/live`, `/health/ready` and (when enabled) `/metrics` until
/// `stop` is cancelled.
pub async fn serve(
    addr: SocketAddr,
    telemetry: Arc<Telemetry>,
    prometheus: bool,
    stop: CancellationToken,
) -> std::io::Result<tokio::task::JoinHandle<()>> {
    use axum::extract::State;
    use axum::http::{StatusCode, header};
    use axum::routing::get;

    async fn live(State(t): State<Arc<Telemetry>>) -> (StatusCode, &'static str) {
        if t.health.is_live() {
            (StatusCode::OK, "live\n")
        } else {
            (StatusCode::SERVICE_UNAVAILABLE, "polling stalled\n")
        }
    }
    async fn ready(State(t): State<Arc<Telemetry>>) -> (StatusCode, &'static str) {
        if t.health.is_ready() {
            (StatusCode::OK, "ready\n")
        } else {
            (StatusCode::SERVICE_UNAVAILABLE, "not ready\n")
        }
    }
    async fn metrics(State(t): State<Arc<Telemetry>>) -> impl axum::response::IntoResponse {
        (
            [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
            t.render_prometheus(),
        )
    }

    let mut router = axum::Router::new()
        .route("/health/live", get(live))
        .route("/health/ready", get(ready));
    if prometheus {
        router = router.route("/metrics", get(metrics));
    }
    let router = router.with_state(telemetry);
    let listener = tokio::net::TcpListener::bind(addr).await?;
    Ok(tokio::spawn(async move {
        let served = axum::serve(listener, router)
            .with_graceful_shutdown(stop.cancelled_owned())
            .await;
        if let Err(e) = served {
            tracing::error!(error = %e, "health endpoint stopped");
        }
    }))
}
