//! The `hl7-ingest` binary: wiring only.

use std::process::ExitCode;

use clap::Parser;
use hl7_ingest::config::{Cli, Command};

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
    fleet_runtime::init_logging_from_env();
    fleet_runtime::run_worker(hl7_ingest::WORKER, |shutdown| async move {
        let backend = cli.worker.backend.open().await?;
        hl7_ingest::run(cli.worker.clone(), backend, shutdown).await
    })
}
