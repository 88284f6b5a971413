//! The `hl7-ingest` binary: wiring only.

use std::process::ExitCode;

use clap::Parser;
use hl7_ingest::config::{Cli, Command};
use tokio_util::sync::CancellationToken;

fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Some(Command::Inspect { files, timezone }) = &cli.command {
        let stdout = std::io::stdout();
        return match hl7_ingest::inspect(files, *timezone, &mut stdout.lock()) {
            Ok(true) => ExitCode::SUCCESS,
            Ok(false) => ExitCode::from(1),
            Err(e) => {
                eprintln!("hl7-ingest inspect: {e:#}");
                ExitCode::from(2)
            }
        };
    }
    fleet_runtime::init_logging(
        std::env::var(fleet_core::env::LOG_FORMAT)
            .map(|f| f != "text")
            .unwrap_or(true),
    );
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("hl7-ingest: cannot start the async runtime: {e}");
            return ExitCode::from(2);
        }
    };
    rt.block_on(async move {
        let shutdown = CancellationToken::new();
        tokio::spawn(fleet_runtime::shutdown_on_signals(shutdown.clone()));
        let result = async {
            let backend = cli.worker.backend.open().await?;
            hl7_ingest::run(cli.worker.clone(), backend, shutdown).await
        }
        .await;
        match result {
            Ok(report) => {
                tracing::info!(
                    received = report.received,
                    succeeded = report.succeeded,
                    dead_lettered = report.dead_lettered,
                    requests = %serde_json::to_string(&fleet_core::requests::snapshot()).unwrap_or_default(),
                    "run finished"
                );
                ExitCode::SUCCESS
            }
            Err(e) => {
                tracing::error!(error = %format!("{e:#}"), "hl7-ingest stopped");
                eprintln!("hl7-ingest: {e:#}");
                ExitCode::from(1)
            }
        }
    })
}
