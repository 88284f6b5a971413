//! The `dlq-replay` binary: wiring only. It installs no log subscriber: nothing it does is
//! logged, so nothing it reads can reach a log line.

use std::io::IsTerminal;
use std::process::ExitCode;

use clap::Parser;
use dlq_replayer::cli::Cli;
use dlq_replayer::{Exit, Io};

fn main() -> ExitCode {
    let cli = Cli::parse();
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("dlq-replay: cannot start the async runtime: {e}");
            return Exit::Failure.into();
        }
    };
    rt.block_on(async {
        let backend = match fleet_backends::open(&cli.backend).await {
            Ok(b) => b,
            Err(e) => {
                eprintln!(
                    "dlq-replay: {}",
                    dlq_replayer::render::escape(&format!("{e:#}"))
                );
                return Exit::Failure.into();
            }
        };
        let stdout = std::io::stdout();
        let stdin = std::io::stdin();
        let io = Io {
            out: &mut stdout.lock(),
            input: &mut stdin.lock(),
            err: Box::new(std::io::stderr()),
            terminal: std::io::stderr().is_terminal(),
        };
        match dlq_replayer::run(&cli, backend, io).await {
            Ok(exit) => exit.into(),
            Err(e) => {
                // Error text can carry a queue name or a service's message: escaped like output.
                eprintln!("dlq-replay: {}", dlq_replayer::render::escape(&e.message));
                e.exit.into()
            }
        }
    })
}
