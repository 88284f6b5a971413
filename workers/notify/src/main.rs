//! The `notify` binary: wiring only.

use std::process::ExitCode;

use clap::Parser;
use notify::config::{Cli, Command};
use tokio_util::sync::CancellationToken;

fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Some(Command::Check { rules }) = &cli.command {
        return match notify::Rules::load(rules) {
            Ok(r) => {
                for rule in &r.rules {
                    println!("{}\t{}", rule.name, rule.destination.redacted());
                }
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("notify check: {e}");
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
            eprintln!("notify: cannot start the async runtime: {e}");
            return ExitCode::from(2);
        }
    };
    rt.block_on(async move {
        let shutdown = CancellationToken::new();
        tokio::spawn(fleet_runtime::shutdown_on_signals(shutdown.clone()));
        let result = async {
            let backend = cli.worker.backend.open().await?;
            notify::run(cli.worker.clone(), backend, shutdown).await
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
                tracing::error!(error = %format!("{e:#}"), "notify stopped");
                eprintln!("notify: {e:#}");
                ExitCode::from(1)
            }
        }
    })
}
