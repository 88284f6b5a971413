//! The `doc-pipeline` binary: wiring only. It lives in the launcher crate so the worker library
//! links no adapter: this is where the backend, the OCR engine and the extractor are opened.

use std::process::ExitCode;

use doc_pipeline::config::{Command, WorkerConfig};
use fleet::cli::WorkerCli;
use fleet_backends::DocEngineArgs;

type Cli = WorkerCli<Command, WorkerConfig, DocEngineArgs>;

fn main() -> ExitCode {
    let cli = Cli::parse_as(
        "doc-pipeline",
        "S3 document uploads to OCR text, medical entities, results and DocumentProcessed events",
    );
    let _traces = fleet_runtime::init_logging_from_env();
    let backend_kind = cli.backend.kind();
    if let Some(Command::Extract { files }) = &cli.command {
        return extract(&cli, files, backend_kind);
    }
    fleet_runtime::run_worker(doc_pipeline::WORKER, |shutdown| async move {
        let backend = fleet_backends::open(&cli.backend).await?;
        let ocr = cli.engines.open_ocr(backend_kind).await?;
        let extractor = cli.engines.open_extractor(backend_kind).await?;
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
            let ocr = cli.engines.open_ocr(backend_kind).await?;
            let extractor = cli.engines.open_extractor(backend_kind).await?;
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
