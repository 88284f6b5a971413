//! The `mllp-gateway` binary: wiring only (the gateway is the `mllp-gateway` library; opening
//! the chosen backend links the adapters, which only binaries may).

use std::process::ExitCode;

use fleet::cli::WorkerCli;
use mllp_gateway::{Command, GatewayConfig};

type Cli = WorkerCli<Command, GatewayConfig>;

fn main() -> ExitCode {
    let cli = Cli::parse_as(
        "mllp-gateway",
        "HL7 v2 over MLLP (TCP or TLS) into queues, each message ACKed once queued",
    );
    if let Some(Command::Send(args)) = &cli.command {
        let rt = match tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
        {
            Ok(rt) => rt,
            Err(e) => {
                eprintln!("mllp-gateway send: cannot start the async runtime: {e}");
                return ExitCode::from(2);
            }
        };
        let stdout = std::io::stdout();
        return match rt.block_on(mllp_gateway::client::send_files(args, &mut stdout.lock())) {
            Ok(true) => ExitCode::SUCCESS,
            Ok(false) => ExitCode::from(1),
            Err(e) => {
                eprintln!("mllp-gateway send: {e:#}");
                ExitCode::from(2)
            }
        };
    }
    let _traces = fleet_runtime::init_logging_from_env();
    fleet_runtime::run_worker(mllp_gateway::WORKER, |shutdown| async move {
        let backend = fleet_backends::open(&cli.backend).await?;
        mllp_gateway::run(cli.worker.clone(), backend, shutdown).await
    })
}
