//! `loadtest-peer`: hl7-ingest and the peer HL7 worker (`../shared/peers/seed_hl7_worker.py`)
//! on the same moto with the same seeded messages, one report for both (issue 19).
//!
//! `run` does, in order:
//! 1. the peer: a plain queue with the scenario's well-formed messages, a table with a string
//!    hash key `patient_id`, then the peer process with its endpoint pointed at the loadtest
//!    fault proxy (share 0: it disturbs nothing and counts every request by API); its CPU is
//!    read from `/proc/<pid>/stat` (utime + stime) when its first request reaches the proxy and
//!    from its own `getrusage` line at exit; its table is scanned for items and their sizes;
//! 2. the fleet: `loadtest run SCENARIO --backend aws` (the same generator and seed, so the
//!    same bodies), whose report gives msg/s, CPU and requests per message from the worker's
//!    own counts; its table is scanned the same way.
//!
//! `table` prints the side-by-side and cost tables (markdown) from the report. Nothing here
//! reads or writes a message body beyond sending it; the report holds counts and timings.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{ExitCode, Stdio};
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::{Parser, Subcommand};
use fleet_core::Backend as _;
use fleet_core::ports::OutgoingMessage;
use fleet_testkit::ProvisionExt as _;
use fleet_testkit::provision::QueueSetup;
use loadtest::proxy::{FaultProxy, ProxyConfig};
use loadtest::scenario::Scenario;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use tokio::process::Command;

#[derive(Debug, Parser)]
#[command(
    name = "loadtest-peer",
    about = "hl7-ingest and the peer HL7 worker side by side on the same moto, same messages"
)]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Debug, Subcommand)]
enum Cmd {
    /// Run both on the endpoint; write OUT/report.json (and OUT/fleet/, OUT/peer.log).
    Run(RunArgs),
    /// Print the side-by-side table and the cost model (markdown) of a report.json.
    Table { report: PathBuf },
}

#[derive(Debug, clap::Args)]
struct RunArgs {
    /// Scenario file (loadtest/scenarios/peer-moto.toml).
    scenario: PathBuf,
    /// The moto endpoint both run against.
    #[arg(long)]
    endpoint: String,
    #[arg(long, default_value = "us-east-1")]
    region: String,
    /// The python of the peer's venv (`scripts/peer-venv python`).
    #[arg(long)]
    python: PathBuf,
    /// The peer worker script (`$FLEET_PEERS_DIR/seed_hl7_worker.py`).
    #[arg(long)]
    peer_script: PathBuf,
    /// The DynamoDB helper (`scripts/peer-ddb.py`).
    #[arg(long)]
    ddb_helper: PathBuf,
    /// The loadtest binary for the fleet's run (default: next to this executable).
    #[arg(long)]
    loadtest_bin: Option<PathBuf>,
    #[arg(long)]
    out: PathBuf,
    /// Override the scenario's message count.
    #[arg(long)]
    messages: Option<usize>,
    /// Run only the peer (the fleet's part is left out of the report).
    #[arg(long)]
    peer_only: bool,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Cmd::Table { report } => table(&report),
        Cmd::Run(args) => tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .context("starting the async runtime")
            .and_then(|rt| rt.block_on(run(args))),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("loadtest-peer: {e:#}");
            ExitCode::from(2)
        }
    }
}

/// The side-by-side report.
#[derive(Debug, Serialize, Deserialize)]
struct PeerReport {
    command: String,
    machine: Machine,
    git_commit: Option<String>,
    /// `uptime` before and after the run: other jobs' load on the shared machine.
    load_before: String,
    load_after: String,
    scenario: String,
    seed: u64,
    messages: usize,
    mean_body_bytes: f64,
    versions: BTreeMap<String, String>,
    peer: PeerSide,
    fleet: Option<Value>,
}

#[derive(Debug, Serialize, Deserialize)]
struct Machine {
    nproc: usize,
    uname: String,
}

#[derive(Debug, Serialize, Deserialize)]
struct PeerSide {
    /// What the peer printed: messages it counted, its own elapsed time and rate.
    done: u64,
    elapsed_s: f64,
    throughput_per_s: f64,
    /// utime + stime of the whole process (its own getrusage at exit), and the part spent
    /// before its first request (interpreter start, imports, client set-up).
    cpu_ms_total: f64,
    cpu_ms_before_first_request: f64,
    cpu_us_per_message_total: f64,
    /// (total − before first request) / messages: the busy time of the message loop.
    cpu_us_per_message_busy: f64,
    requests: BTreeMap<String, u64>,
    requests_per_message: BTreeMap<String, f64>,
    requests_total_per_message: f64,
    sdk_retries: u64,
    left_on_queue: Option<u64>,
    exit: String,
    table: Value,
}

async fn run(a: RunArgs) -> anyhow::Result<()> {
    let mut s = Scenario::load(&a.scenario)?;
    if let Some(n) = a.messages {
        s.messages = n;
    }
    s.validate()?;
    tokio::fs::create_dir_all(&a.out).await?;
    let load_before = sh("uptime", &[]).await;
    let messages = loadtest::generate::stream(&s);
    let bodies: Vec<String> = messages
        .iter()
        .filter(|m| m.expected_failure.is_none())
        .map(|m| m.body.clone())
        .collect();
    anyhow::ensure!(
        bodies.len() == messages.len(),
        "the side-by-side scenario must have no malformed messages (the peer leaves them on the queue): set malformed_fraction = 0"
    );
    let mean_body_bytes =
        bodies.iter().map(String::len).sum::<usize>() as f64 / bodies.len().max(1) as f64;

    eprintln!("loadtest-peer: peer, {} messages", bodies.len());
    let peer = run_peer(&a, &s, &bodies).await?;
    eprintln!(
        "loadtest-peer: peer done: {:.1} msg/s, {:.0} us/msg busy",
        peer.throughput_per_s, peer.cpu_us_per_message_busy
    );
    let fleet = if a.peer_only {
        None
    } else {
        eprintln!("loadtest-peer: fleet (loadtest run)");
        Some(run_fleet(&a, bodies.len()).await?)
    };

    let mut versions = BTreeMap::new();
    let py = a.python.display().to_string();
    for pkg in ["boto3", "botocore", "hl7apy", "moto"] {
        let v = sh(
            &py,
            &[
                "-c",
                &format!("import importlib.metadata as m; print(m.version('{pkg}'))"),
            ],
        )
        .await;
        if !v.is_empty() {
            versions.insert(pkg.to_string(), v);
        }
    }
    versions.insert("python".into(), sh(&py, &["--version"]).await);
    let report = PeerReport {
        command: std::env::args().collect::<Vec<_>>().join(" "),
        machine: Machine {
            nproc: std::thread::available_parallelism().map_or(0, |n| n.get()),
            uname: sh("uname", &["-a"]).await,
        },
        git_commit: Some(sh("git", &["rev-parse", "--short", "HEAD"]).await)
            .filter(|c| !c.is_empty()),
        load_before,
        load_after: sh("uptime", &[]).await,
        scenario: s.name.clone(),
        seed: s.seed,
        messages: bodies.len(),
        mean_body_bytes,
        versions,
        peer,
        fleet,
    };
    let path = a.out.join("report.json");
    tokio::fs::write(&path, serde_json::to_string_pretty(&report)? + "\n").await?;
    print!("{}", render(&report));
    println!("report: {}", path.display());
    Ok(())
}

/// The peer on its own queue and table, through the counting proxy.
async fn run_peer(a: &RunArgs, s: &Scenario, bodies: &[String]) -> anyhow::Result<PeerSide> {
    let backend = fleet_aws::AwsBackend::with_endpoint(&a.endpoint, &a.region).await;
    let tag = format!("{}-{}", std::process::id(), s.seed);
    let queue_url = backend
        .provisioner()
        .create_queue(&format!("lt-peer-in-{tag}"), QueueSetup::default())
        .await?;
    let queue = backend.queue(&queue_url).await?;
    for chunk in bodies.chunks(10) {
        let batch: Vec<OutgoingMessage> = chunk
            .iter()
            .map(|b| OutgoingMessage {
                body: b.clone(),
                ..OutgoingMessage::default()
            })
            .collect();
        let r = queue.send_batch(&batch).await?;
        anyhow::ensure!(
            r.all_ok(),
            "a send batch had failed entries: {:?}",
            r.failed
        );
    }
    let table = format!("lt-peer-{tag}");
    ddb_helper(a, &["create", &table]).await?;

    let proxy = FaultProxy::start(
        &a.endpoint,
        ProxyConfig {
            share: 0.0,
            kinds: Vec::new(),
            slow_ms: [0, 0],
            seed: s.seed,
        },
    )
    .await?;
    let log_path = a.out.join("peer.log");
    let log = std::fs::File::create(&log_path)
        .with_context(|| format!("creating {}", log_path.display()))?;
    let mut child = Command::new(&a.python)
        .arg(&a.peer_script)
        .arg(&queue_url)
        .arg(&table)
        .arg(bodies.len().to_string())
        .envs(aws_env(&proxy.url, &a.region))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(log)
        .kill_on_drop(true)
        .spawn()
        .with_context(|| format!("starting {}", a.python.display()))?;
    let pid = child.id().context("the peer exited at once")?;
    let tck = clock_ticks_per_sec().await;
    let mut stdout = child.stdout.take().context("the peer's stdout")?;
    let reader = tokio::spawn(async move {
        let mut out = String::new();
        tokio::io::AsyncReadExt::read_to_string(&mut stdout, &mut out)
            .await
            .map(|_| out)
    });
    // CPU when the first request reaches the proxy: what the interpreter, the imports and the
    // client set-up cost before any message.
    let mut before_first: Option<f64> = None;
    let deadline = Instant::now() + Duration::from_secs(900);
    let status = loop {
        if let Some(st) = child.try_wait()? {
            break st;
        }
        if before_first.is_none() && proxy.summary().requests > 0 {
            before_first = cpu_ms(pid, tck).await;
        }
        anyhow::ensure!(Instant::now() < deadline, "the peer ran for 900 s");
        tokio::time::sleep(Duration::from_millis(5)).await;
    };
    let out = reader.await??;
    tokio::fs::write(a.out.join("peer.stdout"), &out).await?;
    let line = out
        .lines()
        .find(|l| l.starts_with("seed-worker:"))
        .with_context(|| format!("the peer printed no result line ({status}); see peer.log"))?;
    let p = parse_peer_line(line).with_context(|| format!("parsing {line:?}"))?;
    let sum = proxy.summary();
    let n = bodies.len() as f64;
    let requests: BTreeMap<String, u64> =
        sum.by_api.iter().map(|(k, v)| (api_name(k), *v)).collect();
    let requests_per_message = requests
        .iter()
        .map(|(k, v)| (k.clone(), *v as f64 / n))
        .collect();
    let cpu_total = p.cpu_us_per_msg * p.done.max(1) as f64 / 1000.0;
    let before = before_first.unwrap_or(0.0);
    let left = queue
        .attributes()
        .await
        .ok()
        .map(|at| at.approximate_visible + at.approximate_in_flight + at.approximate_delayed);
    let table_stats = ddb_helper(a, &["stats", &table]).await?;
    Ok(PeerSide {
        done: p.done,
        elapsed_s: p.elapsed_s,
        throughput_per_s: p.done as f64 / p.elapsed_s.max(1e-9),
        cpu_ms_total: cpu_total,
        cpu_ms_before_first_request: before,
        cpu_us_per_message_total: cpu_total * 1000.0 / n,
        cpu_us_per_message_busy: (cpu_total - before) * 1000.0 / n,
        requests_total_per_message: requests.values().sum::<u64>() as f64 / n,
        requests,
        requests_per_message,
        sdk_retries: sum.retries,
        left_on_queue: left,
        exit: status.to_string(),
        table: table_stats,
    })
}

/// `loadtest run` on the same scenario; its report, with its table's item sizes added.
async fn run_fleet(a: &RunArgs, messages: usize) -> anyhow::Result<Value> {
    let bin = match &a.loadtest_bin {
        Some(b) => b.clone(),
        None => loadtest::worker::locate("loadtest")?,
    };
    let out = a.out.join("fleet");
    let mut child = Command::new(&bin)
        .arg("run")
        .arg(&a.scenario)
        .args([
            "--backend",
            "aws",
            "--endpoint",
            &a.endpoint,
            "--region",
            &a.region,
        ])
        .arg("--messages")
        .arg(messages.to_string())
        .arg("--out")
        .arg(&out)
        .stdin(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .with_context(|| format!("starting {}", bin.display()))?;
    let pid = child.id().context("loadtest exited at once")?;
    let status = child.wait().await?;
    let text = tokio::fs::read_to_string(out.join("report.json"))
        .await
        .with_context(|| format!("the fleet's run ({status}) wrote no report"))?;
    let mut report: Value = serde_json::from_str(&text)?;
    report["exit"] = Value::String(status.to_string());
    // The run's table is named lt-hl7-<its pid>-<hex> (loadtest::stack).
    report["table"] = ddb_helper(a, &["stats", &format!("lt-hl7-{pid}-")]).await?;
    Ok(report)
}

/// The peer's and the helper's AWS environment (test credentials for moto).
fn aws_env(endpoint: &str, region: &str) -> Vec<(&'static str, String)> {
    vec![
        ("AWS_ENDPOINT_URL", endpoint.to_string()),
        ("AWS_DEFAULT_REGION", region.to_string()),
        ("AWS_REGION", region.to_string()),
        ("AWS_ACCESS_KEY_ID", "testing".into()),
        ("AWS_SECRET_ACCESS_KEY", "testing".into()),
    ]
}

async fn ddb_helper(a: &RunArgs, args: &[&str]) -> anyhow::Result<Value> {
    let out = Command::new(&a.python)
        .arg(&a.ddb_helper)
        .args(args)
        .envs(aws_env(&a.endpoint, &a.region))
        .output()
        .await
        .with_context(|| format!("running {}", a.ddb_helper.display()))?;
    anyhow::ensure!(
        out.status.success(),
        "{} {args:?}: {}",
        a.ddb_helper.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout)?;
    Ok(if text.trim().is_empty() {
        Value::Null
    } else {
        serde_json::from_str(text.trim())?
    })
}

/// `AmazonSQS.ReceiveMessage` → `sqs.ReceiveMessage`, `DynamoDB_20120810.PutItem` →
/// `dynamodb.PutItem` (the names the fleet's own counts use).
fn api_name(target: &str) -> String {
    match target.split_once('.') {
        Some(("AmazonSQS", op)) => format!("sqs.{op}"),
        Some((svc, op)) if svc.starts_with("DynamoDB") => format!("dynamodb.{op}"),
        Some((svc, op)) if svc.starts_with("AWSEvents") => format!("events.{op}"),
        _ => target.to_string(),
    }
}

#[derive(Debug, PartialEq)]
struct PeerLine {
    done: u64,
    elapsed_s: f64,
    cpu_us_per_msg: f64,
}

/// `seed-worker: N msgs in S s = R msg/s, cpu C us/msg`.
fn parse_peer_line(line: &str) -> Option<PeerLine> {
    let rest = line.strip_prefix("seed-worker:")?.trim();
    let (done, rest) = rest.split_once(" msgs in ")?;
    let (elapsed, rest) = rest.split_once("s =")?;
    let (_, cpu) = rest.split_once("cpu ")?;
    Some(PeerLine {
        done: done.trim().parse().ok()?,
        elapsed_s: elapsed.trim().parse().ok()?,
        cpu_us_per_msg: cpu.trim().strip_suffix("us/msg")?.trim().parse().ok()?,
    })
}

async fn cpu_ms(pid: u32, ticks_per_s: f64) -> Option<f64> {
    let stat = tokio::fs::read_to_string(format!("/proc/{pid}/stat"))
        .await
        .ok()?;
    Some(loadtest::worker::parse_cpu_ticks(&stat)? as f64 * 1000.0 / ticks_per_s)
}

async fn clock_ticks_per_sec() -> f64 {
    sh("getconf", &["CLK_TCK"])
        .await
        .parse::<f64>()
        .ok()
        .filter(|n| *n > 0.0)
        .unwrap_or(100.0)
}

/// A command's trimmed stdout; empty when it fails.
async fn sh(cmd: &str, args: &[&str]) -> String {
    Command::new(cmd)
        .args(args)
        .output()
        .await
        .ok()
        .filter(|o| o.status.success())
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .map(|s| s.trim().to_string())
        .unwrap_or_default()
}

fn table(path: &Path) -> anyhow::Result<()> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let report: PeerReport =
        serde_json::from_str(&text).with_context(|| format!("parsing {}", path.display()))?;
    print!("{}", render(&report));
    Ok(())
}

/// List prices, us-east-1, USD per million (see loadtest/README.md "Cost model" for the sources
/// and their dates).
const SQS_STANDARD_PER_M: f64 = 0.40;
const SQS_FIFO_PER_M: f64 = 0.50;
const EVENTBRIDGE_CUSTOM_EVENT_PER_M: f64 = 1.00;
const DYNAMODB_WRU_PER_M: f64 = 0.625;

/// What one side costs per million messages, by line.
#[derive(Debug, Default, PartialEq)]
struct Cost {
    sqs_requests: f64,
    events: f64,
    wru: f64,
}

impl Cost {
    fn sqs(&self, fifo: bool) -> f64 {
        self.sqs_requests
            * if fifo {
                SQS_FIFO_PER_M
            } else {
                SQS_STANDARD_PER_M
            }
    }
    fn eventbridge(&self) -> f64 {
        self.events * EVENTBRIDGE_CUSTOM_EVENT_PER_M
    }
    fn dynamodb(&self) -> f64 {
        self.wru * DYNAMODB_WRU_PER_M
    }
}

fn f(v: &Value, path: &[&str]) -> f64 {
    path.iter()
        .try_fold(v, |v, k| v.get(k))
        .and_then(Value::as_f64)
        .unwrap_or(0.0)
}

/// Per message: SQS requests (every `sqs.*` request is billed; bodies are under 64 KB, so a
/// batch of ten is one request), EventBridge events (entries, not PutEvents calls: one per
/// message with an event), DynamoDB WRUs from the scanned items: a standard write costs one
/// WRU per started KB, a TransactWriteItems item two.
fn peer_cost(p: &PeerSide, messages: usize) -> Cost {
    let n = messages.max(1) as f64;
    Cost {
        sqs_requests: sqs_per_message(&p.requests_per_message),
        events: 0.0,
        wru: f(&p.table, &["kb_units_total"]) / n,
    }
}

fn fleet_cost(fleet: &Value) -> Cost {
    let per: BTreeMap<String, f64> = fleet
        .get("requests_per_message")
        .and_then(Value::as_object)
        .map(|o| {
            o.iter()
                .filter_map(|(k, v)| Some((k.clone(), v.as_f64()?)))
                .collect()
        })
        .unwrap_or_default();
    let sent = f(fleet, &["messages_sent"]).max(1.0);
    // Each message writes its MSG# event item and overwrites one PATIENT# and one ENCOUNTER#
    // item; the table keeps only the last version of those, so the estimate is one write of
    // each kind per message at the kind's mean billed size (an A40 writes one more PATIENT#).
    let kb_per_message: f64 = fleet
        .get("table")
        .and_then(|t| t.get("by_key_kind"))
        .and_then(Value::as_object)
        .map(|kinds| kinds.values().map(|k| f(k, &["kb_units_mean"])).sum())
        .unwrap_or(0.0);
    Cost {
        sqs_requests: sqs_per_message(&per),
        events: f(fleet, &["events_observed"]) / sent,
        wru: 2.0 * kb_per_message,
    }
}

fn sqs_per_message(per: &BTreeMap<String, f64>) -> f64 {
    per.iter()
        .filter(|(k, _)| k.starts_with("sqs."))
        .map(|(_, v)| v)
        .sum()
}

fn render(r: &PeerReport) -> String {
    let mut o = String::new();
    let p = &r.peer;
    let fl = r.fleet.as_ref();
    let na = || "—".to_string();
    let fleet_s =
        |path: &[&str], fmt: &dyn Fn(f64) -> String| fl.map_or_else(na, |v| fmt(f(v, path)));
    let fleet_n = fl.map_or(0.0, |v| f(v, &["messages_sent"]));
    let fleet_cpu_total = fl.map_or(0.0, |v| f(v, &["worker_cpu_ms_total"]));
    let fleet_req = fl.map_or(0.0, |v| f(v, &["requests_per_message", "total"]));
    let peer_cpu_per_request =
        p.cpu_ms_total * 1000.0 / (p.requests_total_per_message * r.messages as f64).max(1.0);
    let fleet_cpu_per_request = fleet_cpu_total * 1000.0 / (fleet_req * fleet_n).max(1.0);
    o.push_str(&format!(
        "{} messages (seed {}, mean body {:.0} B), `{}` at {}; load before / after: {} / {}\n\n",
        r.messages,
        r.seed,
        r.mean_body_bytes,
        r.scenario,
        r.git_commit.as_deref().unwrap_or("?"),
        load_avg(&r.load_before),
        load_avg(&r.load_after)
    ));
    o.push_str(
        "| measure | hl7-ingest (fleet) | seed_hl7_worker.py (peer) |\n| --- | --- | --- |\n",
    );
    let mut row = |k: &str, a: String, b: String| o.push_str(&format!("| {k} | {a} | {b} |\n"));
    row(
        "messages processed",
        fleet_s(&["events_observed"], &|x| format!("{x:.0}")),
        format!("{}", p.done),
    );
    row(
        "msg/s",
        fleet_s(&["throughput_per_s"], &|x| format!("{x:.1}")),
        format!("{:.1}", p.throughput_per_s),
    );
    row(
        "worker CPU per message, whole process (utime + stime)",
        fleet_s(&["worker_cpu_us_per_message"], &|x| format!("{x:.0} µs")),
        format!("{:.0} µs", p.cpu_us_per_message_total),
    );
    row(
        "worker CPU per message, after start-up",
        na(),
        format!(
            "{:.0} µs (start-up {:.0} ms)",
            p.cpu_us_per_message_busy, p.cpu_ms_before_first_request
        ),
    );
    row(
        "worker CPU per AWS request",
        fl.map_or_else(na, |_| format!("{fleet_cpu_per_request:.0} µs")),
        format!("{peer_cpu_per_request:.0} µs"),
    );
    row(
        "AWS requests per message",
        fleet_s(&["requests_per_message", "total"], &|x| format!("{x:.3}")),
        format!("{:.3}", p.requests_total_per_message),
    );
    let by_api = |per: &BTreeMap<String, f64>| {
        per.iter()
            .filter(|(k, _)| k.as_str() != "total")
            .map(|(k, v)| format!("{k} {v:.3}"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let fleet_per: BTreeMap<String, f64> = fl
        .and_then(|v| v.get("requests_per_message"))
        .and_then(Value::as_object)
        .map(|o| {
            o.iter()
                .filter_map(|(k, v)| Some((k.clone(), v.as_f64()?)))
                .collect()
        })
        .unwrap_or_default();
    row(
        "requests per message by API",
        fl.map_or_else(na, |_| by_api(&fleet_per)),
        by_api(&p.requests_per_message),
    );
    row(
        "records written (items)",
        fleet_s(&["table", "items"], &|x| {
            format!("{x:.0} in one TransactWriteItems per message")
        }),
        format!("{:.0}, one put_item each", f(&p.table, &["items"])),
    );
    row(
        "item size mean / max",
        fl.map_or_else(na, |v| {
            format!(
                "{:.0} / {:.0} B",
                f(v, &["table", "bytes_mean"]),
                f(v, &["table", "bytes_max"])
            )
        }),
        format!(
            "{:.0} / {:.0} B",
            f(&p.table, &["bytes_mean"]),
            f(&p.table, &["bytes_max"])
        ),
    );
    row(
        "events published",
        fleet_s(&["events_observed"], &|x| {
            format!("{x:.0} (one per message)")
        }),
        "0 (publishes none)".into(),
    );
    row(
        "idempotency",
        "event record per MSH-10 written under a not-exists condition in the same transaction; a redelivery republishes the same event id".into(),
        "none: a redelivery overwrites the item (key PID-3#MSH-10)".into(),
    );
    row(
        "lost / left on queue",
        fleet_s(&["lost"], &|x| format!("{x:.0} lost")),
        p.left_on_queue
            .map_or_else(na, |n| format!("{n} left on the queue")),
    );
    o.push('\n');

    // The cost model.
    o.push_str("AWS request cost per million HL7 messages (USD, us-east-1 list prices; see the sources below):\n\n");
    o.push_str("| line | unit price | hl7-ingest (fleet): units per message → $ per million | seed_hl7_worker.py (peer) |\n| --- | --- | --- | --- |\n");
    let pc = peer_cost(p, r.messages);
    let fc = fl.map(fleet_cost);
    let cell = |units: f64, dollars: f64| format!("{units:.3} → ${dollars:.2}");
    let fcell = |g: &dyn Fn(&Cost) -> (f64, f64)| {
        fc.as_ref().map_or_else(na, |c| {
            let (u, d) = g(c);
            cell(u, d)
        })
    };
    let mut line = |k: &str, price: &str, a: String, b: String| {
        o.push_str(&format!("| {k} | {price} | {a} | {b} |\n"))
    };
    line(
        "SQS requests, standard queue",
        "$0.40 / M requests",
        fcell(&|c| (c.sqs_requests, c.sqs(false))),
        cell(pc.sqs_requests, pc.sqs(false)),
    );
    line(
        "SQS requests, FIFO queue (instead)",
        "$0.50 / M requests",
        fcell(&|c| (c.sqs_requests, c.sqs(true))),
        cell(pc.sqs_requests, pc.sqs(true)),
    );
    line(
        "EventBridge custom events",
        "$1.00 / M events",
        fcell(&|c| (c.events, c.eventbridge())),
        cell(pc.events, pc.eventbridge()),
    );
    line(
        "DynamoDB on-demand writes (WRU)",
        "$0.625 / M WRU",
        fcell(&|c| (c.wru, c.dynamodb())),
        cell(pc.wru, pc.dynamodb()),
    );
    let total = |c: &Cost| c.sqs(false) + c.eventbridge() + c.dynamodb();
    line(
        "total (standard queue)",
        "",
        fc.as_ref().map_or_else(na, |c| format!("${:.2}", total(c))),
        format!("${:.2}", total(&pc)),
    );
    o
}

/// `load average: 1.97, 1.56, 1.45` out of an `uptime` line.
fn load_avg(uptime: &str) -> String {
    uptime
        .split_once("load average:")
        .map_or_else(|| "?".into(), |(_, l)| l.trim().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_peer_result_line_is_parsed_as_the_peer_prints_it() {
        let l = parse_peer_line("seed-worker: 500 msgs in 41.3s = 12.1 msg/s, cpu 5231 us/msg")
            .unwrap();
        assert_eq!(
            l,
            PeerLine {
                done: 500,
                elapsed_s: 41.3,
                cpu_us_per_msg: 5231.0
            }
        );
        assert!(parse_peer_line("seed-worker: oops").is_none());
    }

    #[test]
    fn proxy_targets_get_the_fleets_api_names() {
        assert_eq!(api_name("AmazonSQS.ReceiveMessage"), "sqs.ReceiveMessage");
        assert_eq!(api_name("DynamoDB_20120810.PutItem"), "dynamodb.PutItem");
        assert_eq!(api_name("AWSEvents.PutEvents"), "events.PutEvents");
        assert_eq!(api_name("POST (rest)"), "POST (rest)");
    }

    #[test]
    fn the_fleet_pays_two_wru_per_started_kb_of_each_transaction_item_and_one_event_per_message() {
        let fleet = serde_json::json!({
            "messages_sent": 100,
            "events_observed": 100,
            "requests_per_message": {"sqs.ReceiveMessage": 0.1, "sqs.DeleteMessageBatch": 0.1,
                                     "events.PutEvents": 0.1, "dynamodb.TransactWriteItems": 1.0,
                                     "total": 1.3},
            "table": {"by_key_kind": {"MSG": {"kb_units_mean": 1.0},
                                      "PATIENT": {"kb_units_mean": 1.5},
                                      "ENCOUNTER": {"kb_units_mean": 0.5}}}
        });
        let c = fleet_cost(&fleet);
        assert!((c.sqs_requests - 0.2).abs() < 1e-9);
        assert!((c.events - 1.0).abs() < 1e-9);
        assert!((c.wru - 6.0).abs() < 1e-9);
        assert!((c.dynamodb() - 3.75).abs() < 1e-9);
        assert!((c.sqs(true) - 0.1).abs() < 1e-9);
    }
}
