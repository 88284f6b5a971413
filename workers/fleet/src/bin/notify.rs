//! The `notify` binary: wiring only. It lives in the launcher crate so the worker library links no
//! adapter: this is where the chosen backend is opened (`fleet_backends`).

use std::process::ExitCode;

use fleet::cli::WorkerCli;
use notify::config::{Command, WorkerConfig};

type Cli = WorkerCli<Command, WorkerConfig>;

fn main() -> ExitCode {
    let cli = Cli::parse_as(
        "notify",
        "EventBridge events from an SQS queue to notifications (SNS) without patient data",
    );
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
    let _traces = fleet_runtime::init_logging_from_env();
    fleet_runtime::run_worker(notify::WORKER, |shutdown| async move {
        let backend = fleet_backends::open(&cli.backend).await?;
        notify::run(cli.worker.clone(), backend, shutdown).await
    })
}
