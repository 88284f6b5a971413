//! The `hl7-ingest` binary: wiring only. It lives in the launcher crate so the worker library links no
//! adapter: this is where the chosen backend is opened (`fleet_backends`).

use std::process::ExitCode;

use fleet::cli::WorkerCli;
use hl7_ingest::config::{Command, WorkerConfig};

type Cli = WorkerCli<Command, WorkerConfig>;

fn main() -> ExitCode {
    let cli = Cli::parse_as(
        "hl7-ingest",
        "HL7 v2 ADT messages from an SQS queue to records and Patient* events",
    );
    if let Some(Command::Inspect { files, zones }) = &cli.command {
        let stdout = std::io::stdout();
        return match hl7_ingest::inspect(files, zones, &mut stdout.lock()) {
            Ok(true) => ExitCode::SUCCESS,
            Ok(false) => ExitCode::from(1),
            Err(e) => {
                eprintln!("hl7-ingest inspect: {e:#}");
                ExitCode::from(2)
            }
        };
    }
    let _traces = fleet_runtime::init_logging_from_env();
    fleet_runtime::run_worker(hl7_ingest::WORKER, |shutdown| async move {
        let backend = fleet_backends::open(&cli.backend).await?;
        hl7_ingest::run(cli.worker.clone(), backend, shutdown).await
    })
}
