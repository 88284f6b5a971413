//! The `notify` binary: wiring only.

use std::process::ExitCode;

use clap::Parser;
use notify::config::{Cli, Command};

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
    fleet_runtime::init_logging_from_env();
    fleet_runtime::run_worker(notify::WORKER, |shutdown| async move {
        let backend = cli.worker.backend.open().await?;
        notify::run(cli.worker.clone(), backend, shutdown).await
    })
}
