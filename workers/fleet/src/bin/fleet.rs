//! The `fleet` binary: wiring only.

use std::process::ExitCode;

use clap::Parser;
use fleet::config::{Cli, Command};
use tokio_util::sync::CancellationToken;

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Demo {
            dir,
            messages,
            malformed,
            seed,
        } => {
            let _traces = fleet_runtime::init_logging_with_default(
                fleet_core::env::get(fleet_core::env::LOG_FORMAT).is_some_and(|f| f == "json"),
                "warn",
            );
            let temp;
            let dir = match dir {
                Some(d) => d,
                None => match tempfile::Builder::new().prefix("fleet-demo-").tempdir() {
                    Ok(t) => {
                        temp = t;
                        temp.path().to_path_buf()
                    }
                    Err(e) => {
                        eprintln!("fleet demo: cannot create a temporary directory: {e}");
                        return ExitCode::from(2);
                    }
                },
            };
            let mut stdout = std::io::stdout();
            let result = async {
                fleet::demo_notify::provision(&dir)?;
                let s =
                    fleet::demo::run(&dir, messages, malformed.min(messages), seed, &mut stdout)
                        .await?;
                let d = fleet::demo_docs::run(&dir, &mut stdout).await?;
                let n = fleet::demo_notify::run(&dir, &mut stdout).await?;
                anyhow::Ok((s, d, n))
            }
            .await;
            match result {
                Ok((s, d, n))
                    if s.events == s.expected_events
                        && s.dead_lettered + s.refused == s.seeded - s.expected_events
                        && s.codes_as_expected
                        && s.acks_as_expected
                        && d.processed + d.dead_lettered == d.uploaded
                        && d.dead_lettered == 1
                        && d.entities_as_expected
                        && n.dead_lettered == 0
                        && n.routed > 0 =>
                {
                    println!(
                        "\ndemo ok: {} events, {} refused at the gateway and {} dead-lettered with the expected codes, nothing lost; {} documents processed, {} refused with its code; {} notifications",
                        s.events,
                        s.refused,
                        s.dead_lettered,
                        d.processed,
                        d.dead_lettered,
                        n.notifications
                    );
                    ExitCode::SUCCESS
                }
                Ok((s, d, n)) => {
                    eprintln!(
                        "fleet demo: unexpected result: {} events (expected {}), {} refused at the gateway + {} dead-lettered (expected {}), codes as expected: {}, ACKs as expected: {}; documents: {} uploaded, {} processed, {} dead-lettered, entities as expected: {}; notify: {} routed, {} dead-lettered",
                        s.events,
                        s.expected_events,
                        s.refused,
                        s.dead_lettered,
                        s.seeded - s.expected_events,
                        s.codes_as_expected,
                        s.acks_as_expected,
                        d.uploaded,
                        d.processed,
                        d.dead_lettered,
                        d.entities_as_expected,
                        n.routed,
                        n.dead_lettered
                    );
                    ExitCode::from(1)
                }
                Err(e) => {
                    eprintln!("fleet demo: {e:#}");
                    ExitCode::from(1)
                }
            }
        }
        Command::Status { source, output } => match status(&source, output).await {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("fleet status: {e:#}");
                ExitCode::from(1)
            }
        },
        Command::Doctor { source, output } => match doctor(&source, output).await {
            Ok(true) => ExitCode::SUCCESS,
            Ok(false) => ExitCode::from(1),
            Err(e) => {
                eprintln!("fleet doctor: {e:#}");
                ExitCode::from(2)
            }
        },
        Command::Probe { url, timeout_secs } => {
            match fleet::probe::get_status(&url, std::time::Duration::from_secs(timeout_secs)).await
            {
                Ok(status) if (200..300).contains(&status) => ExitCode::SUCCESS,
                Ok(status) => {
                    eprintln!("fleet probe: {url} answered {status}");
                    ExitCode::from(1)
                }
                Err(e) => {
                    eprintln!("fleet probe: {e:#}");
                    ExitCode::from(1)
                }
            }
        }
        Command::Run { source, page } => {
            let _traces = fleet_runtime::init_logging(
                fleet_core::env::get(fleet_core::env::LOG_FORMAT).is_none_or(|f| f != "text"),
            );
            let shutdown = CancellationToken::new();
            tokio::spawn(fleet_runtime::shutdown_on_signals(shutdown.clone()));
            let result = async {
                let mut config = source.resolve()?;
                let page = fleet::page::PageOptions::resolve(&page.over(&config.page))?;
                if let Some(p) = &page {
                    fleet::page::detach_worker_endpoints(&mut config, p.addr);
                }
                let backend = fleet_backends::open(&config.backend).await?;
                let page = match page {
                    Some(options) => {
                        let status = fleet::status::StatusSource::open(&config).await?;
                        let served =
                            fleet::page::serve(options, config.clone(), status, shutdown.clone())
                                .await?;
                        Some(served)
                    }
                    None => None,
                };
                // Operators read these lines to know what is running (stdout, not the log).
                println!(
                    "fleet: running {} on the {} backend",
                    config.workers().join(", "),
                    match config.backend.kind() {
                        fleet_runtime::BackendKind::Local => "local",
                        fleet_runtime::BackendKind::Aws => "aws",
                    }
                );
                if let Some(p) = &page {
                    println!("fleet: health page on http://{}/", p.addr);
                }
                let stopped = fleet::run(config, backend, shutdown.clone()).await;
                shutdown.cancel();
                if let Some(p) = page {
                    let _ = p.task.await;
                }
                stopped
            }
            .await;
            match result {
                Ok(_) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("fleet: {e:#}");
                    ExitCode::from(1)
                }
            }
        }
    }
}

/// `fleet doctor`: describes (never changes) the configuration's AWS resources and prints the
/// findings. `Ok(false)` when any check failed.
async fn doctor(
    source: &fleet::config::ConfigSource,
    output: fleet::config::StatusOutput,
) -> anyhow::Result<bool> {
    let config = source.resolve()?;
    anyhow::ensure!(
        config.backend.kind() == fleet_runtime::BackendKind::Aws,
        "fleet doctor checks AWS resources (encryption, redrive, alarms, backups, bucket policies); this configuration uses the local backend: set [backend] backend = \"aws\" (or FLEET_BACKEND=aws)"
    );
    let targets = fleet::doctor::targets(&config)?;
    let aws = fleet_aws::AwsBackend::from_env().await;
    let findings = fleet::doctor::examine(&aws.inspector(), &targets).await;
    let failed = findings.iter().filter(|f| !f.pass).count();
    let mut stdout = std::io::stdout().lock();
    match output {
        fleet::config::StatusOutput::Json => {
            let report = fleet::doctor::Report {
                ok: failed == 0,
                failed,
                checks: &findings,
            };
            serde_json::to_writer_pretty(&mut stdout, &report)?;
            std::io::Write::write_all(&mut stdout, b"\n")?;
        }
        fleet::config::StatusOutput::Text => fleet::doctor::render_table(&findings, &mut stdout)?,
    }
    Ok(failed == 0)
}

/// `fleet status`: reads only (no receive, no provisioning).
async fn status(
    source: &fleet::config::ConfigSource,
    output: fleet::config::StatusOutput,
) -> anyhow::Result<()> {
    if let Some(dir) = source.dir() {
        anyhow::ensure!(
            dir.join("fleet.toml").is_file(),
            "no fleet in {} (no fleet.toml): `fleet run --dir {}` creates one",
            dir.display(),
            dir.display()
        );
    }
    let config = source.resolve()?;
    let status = fleet::status::StatusSource::open(&config)
        .await?
        .collect(&config)
        .await?;
    let mut stdout = std::io::stdout().lock();
    match output {
        fleet::config::StatusOutput::Json => {
            serde_json::to_writer_pretty(&mut stdout, &status)?;
            std::io::Write::write_all(&mut stdout, b"\n")?;
        }
        fleet::config::StatusOutput::Text => fleet::status::render_text(&status, &mut stdout)?,
    }
    Ok(())
}
