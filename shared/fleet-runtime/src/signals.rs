//! SIGTERM / SIGINT to a cancellation token, for worker binaries.

use tokio_util::sync::CancellationToken;

/// Cancel `shutdown` on the first SIGTERM or SIGINT (Ctrl-C).
pub async fn shutdown_on_signals(shutdown: CancellationToken) {
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(e) => {
                tracing::error!(error = %e, "cannot listen for SIGTERM; only SIGINT will stop the worker");
                std::future::pending::<()>().await;
            }
        }
    };
    tokio::select! {
        _ = term => tracing::info!(signal = "SIGTERM", "shutdown signal received"),
        _ = tokio::signal::ctrl_c() => tracing::info!(signal = "SIGINT", "shutdown signal received"),
        _ = shutdown.cancelled() => return,
    }
    shutdown.cancel();
}
