//! The `doc-pipeline` binary: wiring only.

use std::process::ExitCode;

use clap::Parser;
use doc_pipeline::config::{Cli, Command};
use tokio_util::sync::CancellationToken;

fn main() -> ExitCode {
    let cli = Cli::parse();
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
            eprintln!("doc-pipeline: cannot start the async runtime: {e}");
            return ExitCode::from(2);
        }
    };
    let backend_kind = cli.worker.backend.kind();
    rt.block_on(async move {
        if let Some(Command::Extract { files }) = &cli.command {
            let engines = async {
                let ocr = cli.worker.engines.open_ocr(backend_kind).await?;
                let extractor = cli.worker.engines.open_extractor(backend_kind).await?;
                anyhow::Ok((ocr, extractor))
            };
            let (ocr, extractor) = match engines.await {
                Ok(e) => e,
                Err(e) => {
                    eprintln!("doc-pipeline extract: {e:#}");
                    return ExitCode::from(2);
                }
            };
            let mut stdout = std::io::stdout();
            return match doc_pipeline::extract(files, ocr.as_ref(), extractor.as_ref(), &mut stdout).await {
                Ok(true) => ExitCode::SUCCESS,
                Ok(false) => ExitCode::from(1),
                Err(e) => {
                    eprintln!("doc-pipeline extract: {e:#}");
                    ExitCode::from(2)
                }
            };
        }
        let shutdown = CancellationToken::new();
        tokio::spawn(fleet_runtime::shutdown_on_signals(shutdown.clone()));
        let result = async {
            let backend = cli.worker.backend.open().await?;
            let ocr = cli.worker.engines.open_ocr(backend_kind).await?;
            let extractor = cli.worker.engines.open_extractor(backend_kind).await?;
            doc_pipeline::run(cli.worker.clone(), backend, ocr, extractor, shutdown).await
        }
        .await;
        match result {
            Ok(report) => {
                tracing::info!(
                    received = report.uploads.received,
                    succeeded = report.uploads.succeeded,
                    dead_lettered = report.uploads.dead_lettered,
                    completions = report.completions.as_ref().map(|c| c.received),
                    requests = %serde_json::to_string(&fleet_core::requests::snapshot()).unwrap_or_default(),
                    "run finished"
                );
                ExitCode::SUCCESS
            }
            Err(e) => {
                tracing::error!(error = %format!("{e:#}"), "doc-pipeline stopped");
                eprintln!("doc-pipeline: {e:#}");
                ExitCode::from(1)
            }
        }
    })
}
