//! The `loadtest` binary.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand};
use loadtest::run::Options;
use loadtest::scenario::{Mode, Scenario};
use loadtest::stack::BackendKind;

#[derive(Debug, Parser)]
#[command(
    name = "loadtest",
    version,
    about = "Reproducible load against the real hl7-ingest binary: throughput, latency, CPU, requests per message"
)]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Debug, Subcommand)]
enum Cmd {
    /// Run a scenario; exit 1 when a message was lost or misrouted.
    Run(RunArgs),
    /// Write seeded synthetic clinical notes (text-layer PDFs) and manifest.json, for loading
    /// the document pipeline; the manifest lists what each note contains.
    Documents {
        #[arg(long, default_value_t = 1)]
        seed: u64,
        #[arg(long, default_value_t = 100)]
        count: usize,
        #[arg(long)]
        out: PathBuf,
    },
    /// The document pipeline under load (issue 19): upload a document scenario's notes and
    /// poison to a fresh local stack, run the real doc-pipeline on them, then the same pages
    /// through pdftoppm + tesseract alone; write report.json and table.md into --out. Exit 1
    /// when a document was lost or a poison one misrouted.
    DocRun {
        /// Scenario file (loadtest/scenarios/documents/*.toml).
        scenario: PathBuf,
        /// The doc-pipeline binary (default: next to this executable).
        #[arg(long)]
        worker_bin: Option<PathBuf>,
        /// Where report.json and table.md go.
        #[arg(long)]
        out: PathBuf,
        /// The local stack, the worker's log and the floor's scratch files (default: a new
        /// directory under the system's temporary directory).
        #[arg(long)]
        work: Option<PathBuf>,
    },
    /// Print the document load table (markdown) of finished `doc-run` report.json files.
    DocTable { reports: Vec<PathBuf> },
    /// Print the reliability table (markdown) of finished runs' report.json files.
    Table { reports: Vec<PathBuf> },
    /// Print the MLLP load table (markdown) of finished `[mllp]` runs' report.json files.
    MllpTable { reports: Vec<PathBuf> },
    /// Print a scenario's stream summary (counts by trigger, sizes) without running anything.
    Describe {
        scenario: PathBuf,
        #[arg(long)]
        messages: Option<usize>,
    },
}

#[derive(Debug, clap::Args)]
struct RunArgs {
    /// Scenario file (loadtest/scenarios/*.toml).
    scenario: PathBuf,
    #[arg(long, value_enum, default_value = "local")]
    backend: BackendKind,
    /// aws backend: endpoint of a protocol server (moto); the worker gets test credentials.
    /// Without it both use the standard AWS configuration chain (AWS_ENDPOINT_URL honoured).
    #[arg(long)]
    endpoint: Option<String>,
    #[arg(long, default_value = "us-east-1")]
    region: String,
    /// The worker binary (default: hl7-ingest next to this executable).
    #[arg(long)]
    worker_bin: Option<PathBuf>,
    /// The gateway binary of `[mllp]` scenarios (default: mllp-gateway next to this
    /// executable).
    #[arg(long)]
    gateway_bin: Option<PathBuf>,
    /// Where report.json, chart.svg and worker.log go (and the local backend's files).
    #[arg(long, default_value = "loadtest-out")]
    out: PathBuf,
    /// Override the scenario's message count.
    #[arg(long)]
    messages: Option<usize>,
    /// Override the scenario's mode.
    #[arg(long, value_enum)]
    mode: Option<Mode>,
    /// Override the scenario's rate (messages per second, 0 = as fast as possible).
    #[arg(long)]
    rate: Option<u32>,
    /// Override the scenario's seed.
    #[arg(long)]
    seed: Option<u64>,
    /// Override the window of the scenario's kills and SIGTERMs: `FROM,TO` seconds after the
    /// worker first reports ready (a smaller run needs a shorter window).
    #[arg(long, value_parser = parse_window)]
    window: Option<[f64; 2]>,
    /// Override the worker's concurrency.
    #[arg(long)]
    concurrency: Option<usize>,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Cmd::Table { reports } => table(&reports, loadtest::report::reliability_table),
        Cmd::MllpTable { reports } => table(&reports, loadtest::report::mllp_table),
        Cmd::DocTable { reports } => table(&reports, loadtest::docload::table),
        Cmd::DocRun {
            scenario,
            worker_bin,
            out,
            work,
        } => doc_run(&scenario, worker_bin, &out, work),
        Cmd::Describe { scenario, messages } => match describe(&scenario, messages) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("loadtest: {e:#}");
                ExitCode::from(2)
            }
        },
        Cmd::Documents { seed, count, out } => {
            match loadtest::documents::write(&out, seed, count) {
                Ok(docs) => {
                    let bytes: usize = docs.iter().map(|d| d.bytes).sum();
                    let pages: usize = docs.iter().map(|d| d.pages).sum();
                    println!(
                        "{} documents, {pages} pages, {bytes} bytes in {} (manifest.json lists each)",
                        docs.len(),
                        out.display()
                    );
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("loadtest: {e:#}");
                    ExitCode::from(2)
                }
            }
        }
        Cmd::Run(args) => {
            // Everything before the run (scenario file, worker binary, output directory) is
            // read here; the runtime then does only async I/O.
            let (scenario, opts) = match prepare(args) {
                Ok(p) => p,
                Err(e) => {
                    eprintln!("loadtest: {e:#}");
                    return ExitCode::from(2);
                }
            };
            let rt = match runtime() {
                Ok(rt) => rt,
                Err(code) => return code,
            };
            match rt.block_on(run(&scenario, &opts)) {
                Ok(true) => ExitCode::SUCCESS,
                Ok(false) => ExitCode::from(1),
                Err(e) => {
                    eprintln!("loadtest: {e:#}");
                    ExitCode::from(2)
                }
            }
        }
    }
}

/// The multi-thread runtime a run needs; exit code 2 (with the reason printed) when it cannot
/// start.
fn runtime() -> Result<tokio::runtime::Runtime, ExitCode> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| {
            eprintln!("loadtest: cannot start the async runtime: {e}");
            ExitCode::from(2)
        })
}

/// `loadtest doc-run`.
fn doc_run(
    scenario: &Path,
    worker_bin: Option<PathBuf>,
    out: &Path,
    work: Option<PathBuf>,
) -> ExitCode {
    let prepared = (|| {
        let s = loadtest::docload::DocScenario::load(scenario)?;
        let worker_bin = match worker_bin {
            Some(p) => p,
            None => loadtest::worker::locate("doc-pipeline")?,
        };
        std::fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
        let (work_dir, _keep) = match work {
            Some(dir) => (dir, None),
            None => {
                let t = tempfile::Builder::new()
                    .prefix("loadtest-docs-")
                    .tempdir()?;
                (t.path().to_path_buf(), Some(t))
            }
        };
        std::fs::create_dir_all(&work_dir)
            .with_context(|| format!("creating {}", work_dir.display()))?;
        let opts = loadtest::docload::DocOptions {
            worker_bin,
            work_dir,
            command: std::env::args().collect::<Vec<_>>().join(" "),
        };
        anyhow::Ok((s, opts, _keep))
    })();
    let (s, opts, _keep) = match prepared {
        Ok(p) => p,
        Err(e) => {
            eprintln!("loadtest: {e:#}");
            return ExitCode::from(2);
        }
    };
    let rt = match runtime() {
        Ok(rt) => rt,
        Err(code) => return code,
    };
    let ran = rt.block_on(async {
        let report = loadtest::docload::run(&s, &opts).await?;
        let json = serde_json::to_string_pretty(&report)?;
        tokio::fs::write(out.join("report.json"), format!("{json}\n")).await?;
        let table = loadtest::docload::table(&[serde_json::to_value(&report)?]);
        tokio::fs::write(out.join("table.md"), &table).await?;
        print!("{table}");
        for t in &report.targets {
            println!(
                "{}: {} (target {}){}",
                t.what,
                t.measured,
                t.target,
                match t.met {
                    Some(true) => "",
                    Some(false) => " NOT MET",
                    None => "",
                }
            );
        }
        println!("report: {}", out.join("report.json").display());
        anyhow::Ok(report.passed())
    });
    match ran {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(1),
        Err(e) => {
            eprintln!("loadtest: {e:#}");
            ExitCode::from(2)
        }
    }
}

/// Print `make`'s markdown table of the reports.
fn table(reports: &[PathBuf], make: fn(&[serde_json::Value]) -> String) -> ExitCode {
    let read = |p: &PathBuf| -> anyhow::Result<serde_json::Value> {
        let text =
            std::fs::read_to_string(p).with_context(|| format!("reading {}", p.display()))?;
        serde_json::from_str(&text).with_context(|| format!("parsing {}", p.display()))
    };
    match reports.iter().map(read).collect::<anyhow::Result<Vec<_>>>() {
        Ok(r) => {
            print!("{}", make(&r));
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("loadtest: {e:#}");
            ExitCode::from(2)
        }
    }
}

fn parse_window(v: &str) -> Result<[f64; 2], String> {
    let (a, b) = v
        .split_once(',')
        .ok_or_else(|| format!("expected FROM,TO seconds, got {v:?}"))?;
    let n = |x: &str| {
        x.trim()
            .parse::<f64>()
            .map_err(|_| format!("{x:?} is not a number of seconds"))
    };
    Ok([n(a)?, n(b)?])
}

fn load(path: &Path, messages: Option<usize>) -> anyhow::Result<Scenario> {
    let mut s = Scenario::load(path)?;
    if let Some(n) = messages {
        s.messages = n;
    }
    s.validate()?;
    Ok(s)
}

fn describe(path: &Path, messages: Option<usize>) -> anyhow::Result<()> {
    let s = load(path, messages)?;
    let stream = loadtest::generate::stream(&s);
    let mut by: std::collections::BTreeMap<&str, usize> = Default::default();
    for m in &stream {
        *by.entry(if m.trigger.is_empty() {
            "malformed"
        } else {
            m.trigger
        })
        .or_default() += 1;
    }
    let mut sizes: Vec<f64> = stream.iter().map(|m| m.body.len() as f64).collect();
    let p = loadtest::report::Percentiles::of(&mut sizes);
    println!("{}: {} messages, seed {}", s.name, stream.len(), s.seed);
    for (k, v) in by {
        println!("  {k:<10} {v}");
    }
    println!(
        "  body bytes p50 {:.0}, p90 {:.0}, max {:.0}, mean {:.0}",
        p.p50, p.p90, p.max, p.mean
    );
    Ok(())
}

/// The scenario with the command line's overrides, and the run's options.
fn prepare(a: RunArgs) -> anyhow::Result<(Scenario, Options)> {
    let mut s = load(&a.scenario, a.messages)?;
    if let Some(m) = a.mode {
        s.mode = m;
    }
    if let Some(r) = a.rate {
        s.rate_per_s = r;
    }
    if let Some(seed) = a.seed {
        s.seed = seed;
    }
    if let Some(c) = a.concurrency {
        s.worker_concurrency = c;
    }
    if let Some(w) = a.window {
        s.faults.window_s = w;
    }
    s.validate()?;
    let needs_worker = s.mllp.as_ref().is_none_or(|m| m.ingest);
    let worker_bin = match a.worker_bin {
        Some(p) => p,
        None if needs_worker => loadtest::worker::locate("hl7-ingest")?,
        None => PathBuf::from("hl7-ingest"),
    };
    let gateway_bin = match a.gateway_bin {
        Some(p) => Some(p),
        None if s.mllp.is_some() => Some(loadtest::worker::locate("mllp-gateway")?),
        None => None,
    };
    std::fs::create_dir_all(&a.out).with_context(|| format!("creating {}", a.out.display()))?;
    let opts = Options {
        backend: a.backend,
        endpoint: a.endpoint,
        region: a.region,
        worker_bin,
        gateway_bin,
        work_dir: a.out,
        command: std::env::args().collect::<Vec<_>>().join(" "),
    };
    Ok((s, opts))
}

/// Run, write report.json and chart.svg into the output directory, print the table; whether
/// the run passed.
async fn run(s: &Scenario, opts: &Options) -> anyhow::Result<bool> {
    let out = &opts.work_dir;
    let report = loadtest::run::run(s, opts).await?;
    let json = serde_json::to_string_pretty(&report)?;
    tokio::fs::write(out.join("report.json"), format!("{json}\n")).await?;
    tokio::fs::write(out.join("chart.svg"), report.svg()?).await?;
    print!("{}", report.table());
    println!(
        "report: {}  chart: {}",
        out.join("report.json").display(),
        out.join("chart.svg").display()
    );
    Ok(report.passed())
}
