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

/// A worker run's result, as its binary's last log line reports it.
pub trait FinishedRun {
    /// Log the one `run finished` line: counts and the process's backend requests by API (the
    /// load tool reads this line).
    fn log_finished(&self);
}

impl FinishedRun for crate::RunReport {
    fn log_finished(&self) {
        tracing::info!(
            received = self.received,
            succeeded = self.succeeded,
            dead_lettered = self.dead_lettered,
            requests = %requests_json(),
            "run finished"
        );
    }
}

/// The process's backend request counts by API, as JSON for the `run finished` line.
pub fn requests_json() -> String {
    serde_json::to_string(&fleet_core::requests::snapshot()).unwrap_or_default()
}

/// Logging as `FLEET_LOG_FORMAT` says: JSON unless it is `text`; traces as the OpenTelemetry
/// variables say. Hold the guard for the life of `main`.
pub fn init_logging_from_env() -> crate::otel::TracesGuard {
    crate::init_logging(
        fleet_core::env::get(fleet_core::env::LOG_FORMAT).is_none_or(|f| f != "text"),
    )
}

/// What a worker binary's `main` does once its flags are parsed and logging is set up: start a
/// multi-threaded runtime, turn SIGTERM / SIGINT into `shutdown`, run `work`, and end with the
/// `run finished` line (exit 0) or the error on the log and stderr (exit 1; 2 when the runtime
/// cannot start).
pub fn run_worker<R, E, F, Fut>(worker: &str, work: F) -> std::process::ExitCode
where
    R: FinishedRun,
    E: std::fmt::Display,
    F: FnOnce(CancellationToken) -> Fut,
    Fut: std::future::Future<Output = Result<R, E>>,
{
    use std::process::ExitCode;
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("{worker}: cannot start the async runtime: {e}");
            return ExitCode::from(2);
        }
    };
    rt.block_on(async move {
        let shutdown = CancellationToken::new();
        tokio::spawn(shutdown_on_signals(shutdown.clone()));
        match work(shutdown).await {
            Ok(report) => {
                report.log_finished();
                ExitCode::SUCCESS
            }
            Err(e) => {
                tracing::error!(error = %format!("{e:#}"), "{worker} stopped");
                eprintln!("{worker}: {e:#}");
                ExitCode::from(1)
            }
        }
    })
}
