//! The `doc-pipeline` binary: wiring only.

use std::process::ExitCode;

use clap::Parser;
use doc_pipeline::config::{Cli, Command};

fn main() -> ExitCode {
    let cli = Cli::parse();
    fleet_runtime::init_logging_from_env();
    let backend_kind = cli.worker.backend.kind();
    if let Some(Command::Extract { files }) = &cli.command {
        return extract(&cli, files, backend_kind);
    }
    fleet_runtime::run_worker(doc_pipeline::WORKER, |shutdown| async move {
        let backend = cli.worker.backend.open().await?;
        let ocr = cli.worker.engines.open_ocr(backend_kind).await?;
        let extractor = cli.worker.engines.open_extractor(backend_kind).await?;
        doc_pipeline::run(cli.worker.clone(), backend, ocr, extractor, shutdown).await
    })
}

/// `doc-pipeline extract`: OCR and entities for local files, one JSON line each.
fn extract(
    cli: &Cli,
    files: &[std::path::PathBuf],
    backend_kind: fleet_backends::BackendKind,
) -> ExitCode {
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
    rt.block_on(async move {
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
        match doc_pipeline::extract(files, ocr.as_ref(), extractor.as_ref(), &mut stdout).await {
            Ok(true) => ExitCode::SUCCESS,
            Ok(false) => ExitCode::from(1),
            Err(e) => {
                eprintln!("doc-pipeline extract: {e:#}");
                ExitCode::from(2)
            }
        }
    })
}
