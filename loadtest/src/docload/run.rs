//! The pipeline run: a fresh local stack (upload queue and DLQ, bus, table, buckets), every
//! upload put in `uploads`, the real `doc-pipeline` started and ready, then every S3 event
//! queued at once and the outcomes watched until each upload has one; then the floor, and
//! the accounting.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::Context;
use fleet_core::ports::OutgoingMessage;
use fleet_core::{Backend, FailureMetadata};
use fleet_local::{LocalBackend, QueueSpec};
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::floor;
use super::{
    DocMachine, DocReport, DocScenario, FloorRun, KindCount, PipelineRun, Uploaded, WrongOutcome,
};
use crate::documents::{self, Upload};
use crate::worker::{WorkerProcess, final_line};

/// The bucket doc-pipeline reads on the local backend by default.
const UPLOADS: &str = "uploads";
const RESULTS: &str = "doc-results";
const QUEUE: &str = "lt-doc-uploads";
const DLQ: &str = "lt-doc-uploads-dlq";
const BUS: &str = "lt-doc-bus";
const TABLE: &str = "lt-doc-records";
/// Above doc-pipeline's max_attempts (4), as `fleet run` provisions it.
const MAX_RECEIVES: u32 = 5;
/// How often outcomes are looked for.
const POLL: Duration = Duration::from_millis(50);

/// Everything a document run needs besides the scenario.
#[derive(Debug, Clone)]
pub struct DocOptions {
    /// The `doc-pipeline` binary.
    pub worker_bin: PathBuf,
    /// The local stack, the worker's log and the floor's scratch files.
    pub work_dir: PathBuf,
    /// The command line, recorded in the report.
    pub command: String,
}

async fn loadavg() -> String {
    tokio::fs::read_to_string("/proc/loadavg")
        .await
        .map(|s| s.trim().to_string())
        .unwrap_or_default()
}

async fn first_line(program: &str, arg: &str) -> String {
    let Ok(o) = tokio::process::Command::new(program)
        .arg(arg)
        .output()
        .await
    else {
        return format!("{program}: not found");
    };
    let out = [o.stdout, o.stderr].concat();
    String::from_utf8_lossy(&out)
        .lines()
        .next()
        .unwrap_or("")
        .trim()
        .to_string()
}

async fn uname() -> String {
    first_line("uname", "-a").await
}

/// (own, reaped children's) CPU ticks of a `/proc/<pid>/stat` line: utime + stime (fields 14,
/// 15) and cutime + cstime (16, 17), counted after the parenthesised command name.
pub(super) fn cpu_ticks(stat: &str) -> Option<(u64, u64)> {
    let rest = &stat[stat.rfind(')')? + 1..];
    let f: Vec<u64> = rest
        .split_whitespace()
        .skip(11)
        .take(4)
        .map(|x| x.parse().ok())
        .collect::<Option<_>>()?;
    (f.len() == 4).then(|| (f[0] + f[1], f[2] + f[3]))
}

pub(super) async fn clock_ticks() -> f64 {
    first_line("getconf", "CLK_TCK")
        .await
        .parse::<f64>()
        .ok()
        .filter(|n| *n > 0.0)
        .unwrap_or(100.0)
}

/// (own, reaped children's) CPU seconds of process `pid` (`self` for this one).
pub(super) async fn cpu_of(pid: &str) -> anyhow::Result<(f64, f64)> {
    let stat = tokio::fs::read_to_string(format!("/proc/{pid}/stat"))
        .await
        .with_context(|| format!("reading /proc/{pid}/stat"))?;
    let (own, children) = cpu_ticks(&stat).context("parsing /proc stat")?;
    let hz = clock_ticks().await;
    Ok((own as f64 / hz, children as f64 / hz))
}

async fn free_addr() -> anyhow::Result<std::net::SocketAddr> {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    Ok(l.local_addr()?)
}

/// Whether `/health/ready` answers 200.
async fn ready(addr: std::net::SocketAddr) -> bool {
    let attempt = async {
        let mut s = tokio::net::TcpStream::connect(addr).await.ok()?;
        let req =
            format!("GET /health/ready HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
        s.write_all(req.as_bytes()).await.ok()?;
        let mut out = String::new();
        s.read_to_string(&mut out).await.ok()?;
        Some(out.starts_with("HTTP/1.1 200"))
    };
    tokio::time::timeout(Duration::from_secs(2), attempt)
        .await
        .ok()
        .flatten()
        .unwrap_or(false)
}

fn provision(dir: &Path, visibility: Duration) -> anyhow::Result<LocalBackend> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    anyhow::ensure!(
        !dir.join("fleet.sqlite").exists(),
        "{} already holds a stack: give a new --work directory",
        dir.display()
    );
    let local = LocalBackend::open(&dir.join("fleet.sqlite"), &dir.join("objects"))
        .context("opening the local backend")?;
    let spec = |redrive| QueueSpec {
        visibility_timeout: visibility,
        redrive,
        ..QueueSpec::default()
    };
    local.create_queue(DLQ, spec(None))?;
    local.create_queue(QUEUE, spec(Some((DLQ.to_string(), MAX_RECEIVES))))?;
    Ok(local)
}

fn worker_env(dir: &Path, s: &DocScenario, health: std::net::SocketAddr) -> Vec<(String, String)> {
    use fleet_core::env;
    [
        (env::BACKEND, "local".to_string()),
        (
            env::LOCAL_DB,
            dir.join("fleet.sqlite").display().to_string(),
        ),
        (
            env::LOCAL_OBJECTS,
            dir.join("objects").display().to_string(),
        ),
        // The local backend is not encrypted and says so (ARCHITECTURE.md, "Local encryption").
        (env::ALLOW_UNENCRYPTED, "1".into()),
        (env::DOC_QUEUE, QUEUE.into()),
        (env::EVENT_BUS, BUS.into()),
        (env::DOC_TABLE, TABLE.into()),
        (env::DOC_RESULTS_BUCKET, RESULTS.into()),
        (env::DOC_OCR, "tesseract".into()),
        (env::DOC_EXTRACTOR, "rules".into()),
        (env::CONCURRENCY, s.worker_concurrency.to_string()),
        (env::WAIT_TIME_SECS, "1".into()),
        (env::HEALTH_ADDR, health.to_string()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect()
}

/// What the stack holds now: DocumentProcessed events and dead letters.
async fn outcomes(
    local: &LocalBackend,
) -> anyhow::Result<(Vec<Value>, Vec<fleet_local::QueuedMessage>)> {
    let local = local.clone();
    tokio::task::spawn_blocking(move || {
        let events: Vec<Value> = local
            .list_bus_events(BUS)?
            .into_iter()
            .filter(|e| e["detail-type"] == "DocumentProcessed")
            .collect();
        let dead = local.queue_messages_snapshot(DLQ)?;
        anyhow::Ok((events, dead))
    })
    .await?
}

fn uploaded(uploads: &[Upload]) -> Uploaded {
    let mut u = Uploaded::default();
    for up in uploads {
        u.bytes += up.bytes.len();
        if up.kind.poison_code().is_some() {
            u.poison += 1;
        } else {
            u.good += 1;
            u.pages += up.pages;
            u.ocr_pages += up.kind.ocr_pages(up.pages);
        }
        let name = serde_json::to_value(up.kind)
            .ok()
            .and_then(|v| v.as_str().map(str::to_string))
            .unwrap_or_default();
        let k: &mut KindCount = u.by_kind.entry(name).or_default();
        k.documents += 1;
        k.pages += up.pages;
    }
    u
}

fn kind_name(up: &Upload) -> String {
    serde_json::to_value(up.kind)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_default()
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// One pipeline phase: what the stack and the worker left.
struct Phase {
    wall_s: f64,
    worker_cpu_s: f64,
    tools_cpu_s: f64,
    events: Vec<Value>,
    dead: Vec<fleet_local::QueuedMessage>,
    fin: crate::worker::FinalLine,
    worker_exit: String,
    backend: Arc<dyn Backend>,
    /// The S3 event sent for each upload, and its ETag.
    bodies: Vec<String>,
    etags: Vec<String>,
}

/// A fresh stack in `dir`, the uploads put, the worker started and ready, every S3 event
/// queued at once and the outcomes watched; the worker stopped.
async fn pipeline(
    s: &DocScenario,
    o: &DocOptions,
    uploads: &[Upload],
    dir: &Path,
) -> anyhow::Result<Phase> {
    let stack_dir = dir.join("stack");
    let local = {
        let dir = stack_dir.clone();
        let visibility = Duration::from_secs(s.visibility_timeout_s);
        tokio::task::spawn_blocking(move || provision(&dir, visibility)).await??
    };
    let backend: Arc<dyn Backend> = Arc::new(local.clone());

    // Every object in place before the worker starts; their events are queued once it runs.
    let bucket = backend.objects(UPLOADS);
    let mut bodies = Vec::with_capacity(uploads.len());
    let mut etags = Vec::with_capacity(uploads.len());
    for u in uploads {
        let meta = bucket.put(&u.key, u.bytes.clone(), u.content_type).await?;
        let etag = meta.etag.unwrap_or_default();
        bodies.push(fleet_docs::s3event::object_created_event(
            UPLOADS, &u.key, meta.size, &etag,
        ));
        etags.push(etag);
    }

    let health = free_addr().await?;
    let log = dir.join("doc-pipeline.log");
    let mut worker =
        WorkerProcess::start(&o.worker_bin, &worker_env(&stack_dir, s, health), log).await?;
    let t = Instant::now();
    while !ready(health).await {
        if let Some(status) = worker.exited() {
            anyhow::bail!(
                "doc-pipeline exited at start ({status}); its log: {}",
                worker.log.display()
            );
        }
        anyhow::ensure!(
            t.elapsed() < Duration::from_secs(120),
            "doc-pipeline was not ready within 120 s"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let pid = worker.pid().context("the worker has exited")?.to_string();

    // Every event at once, the outcomes watched.
    let queue = backend.queue(QUEUE).await?;
    let t0 = Instant::now();
    for body in &bodies {
        queue
            .send(OutgoingMessage {
                body: body.clone(),
                ..OutgoingMessage::default()
            })
            .await?;
    }
    let mut last_progress = (0, Instant::now());
    let (events, dead) = loop {
        let (events, dead) = outcomes(&local).await?;
        let n = events.len() + dead.len();
        if n >= uploads.len() {
            break (events, dead);
        }
        if n > last_progress.0 {
            last_progress = (n, Instant::now());
        }
        if let Some(status) = worker.exited() {
            eprintln!("loadtest: doc-pipeline exited during the run ({status})");
            break (events, dead);
        }
        if last_progress.1.elapsed() > Duration::from_secs(s.idle_timeout_s) {
            eprintln!(
                "loadtest: no outcome for {} s; {n} of {} accounted",
                s.idle_timeout_s,
                uploads.len()
            );
            break (events, dead);
        }
        tokio::time::sleep(POLL).await;
    };
    let wall_s = t0.elapsed().as_secs_f64();
    let (worker_cpu_s, tools_cpu_s) = cpu_of(&pid).await.unwrap_or((f64::NAN, f64::NAN));
    let worker_exit = match worker.exited() {
        Some(status) => format!("exited during the run: {status}"),
        None => match worker.terminate(Duration::from_secs(90)).await {
            Ok(status) => status.to_string(),
            Err(e) => format!("{e:#}"),
        },
    };
    let fin = final_line(&worker.log_text().await).unwrap_or_default();
    Ok(Phase {
        wall_s,
        worker_cpu_s,
        tools_cpu_s,
        events,
        dead,
        fin,
        worker_exit,
        backend,
        bodies,
        etags,
    })
}

/// Adds one phase's outcomes to `p`; returns (lost, wrong outcomes).
async fn account(
    uploads: &[Upload],
    phase: Phase,
    p: &mut PipelineRun,
) -> anyhow::Result<(usize, Vec<WrongOutcome>)> {
    let Phase {
        events,
        dead,
        fin,
        backend,
        bodies,
        etags,
        ..
    } = phase;
    p.processed += events.len();
    p.dead_lettered += dead.len();
    p.worker_received += fin.received;
    p.worker_succeeded += fin.succeeded;
    p.worker_dead_lettered += fin.dead_lettered;
    for (k, v) in fin.requests {
        *p.requests.entry(k).or_default() += v;
    }
    let mut by_etag: HashMap<&str, Vec<&Value>> = HashMap::new();
    for e in &events {
        if let Some(etag) = e["detail"]["payload"]["source"]["etag"].as_str() {
            by_etag.entry(etag).or_default().push(e);
        }
    }
    let dead_by_body: HashMap<&str, &fleet_local::QueuedMessage> =
        dead.iter().map(|m| (m.body.as_str(), m)).collect();
    let records = backend.records(TABLE);
    let results = backend.objects(RESULTS);
    let mut lost = 0;
    let mut wrong = Vec::new();
    for (i, u) in uploads.iter().enumerate() {
        let dead_code = dead_by_body
            .get(bodies[i].as_str())
            .map(|m| FailureMetadata::from_attributes(&m.attributes).map(|f| f.code));
        if let Some(expected) = u.kind.poison_code() {
            let got = match dead_code {
                Some(Some(code)) if code == expected => continue,
                Some(Some(code)) => code.as_str().to_string(),
                Some(None) => "dead-lettered without a code".into(),
                None if by_etag.contains_key(etags[i].as_str()) => "processed".into(),
                None => {
                    lost += 1;
                    "none".into()
                }
            };
            wrong.push(WrongOutcome {
                key: u.key.clone(),
                kind: kind_name(u),
                expected: expected.as_str().into(),
                got,
            });
            continue;
        }
        p.medications_planted += u.medications.len();
        let Some(found) = by_etag.get(etags[i].as_str()) else {
            lost += 1;
            if let Some(Some(code)) = dead_code {
                wrong.push(WrongOutcome {
                    key: u.key.clone(),
                    kind: kind_name(u),
                    expected: "processed".into(),
                    got: code.as_str().into(),
                });
            }
            continue;
        };
        p.duplicate_events += found.len() - 1;
        let payload = &found[0]["detail"]["payload"];
        if payload["ocr"]["pages"].as_u64() != Some(u.pages as u64) {
            p.page_count_mismatches += 1;
        }
        let id = payload["document_id"].as_str().unwrap_or_default();
        let record = records.get(&format!("DOC#{id}"), "DOCUMENT").await?;
        if record.is_none_or(|r| r.data["status"] != "processed") {
            lost += 1;
            continue;
        }
        if let Some(key) = payload["results"]["key"].as_str()
            && let Some((bytes, _)) = results.get(key).await?
        {
            let body: Value = serde_json::from_slice(&bytes).unwrap_or_default();
            let meds: Vec<String> = body["entities"]
                .as_array()
                .into_iter()
                .flatten()
                .filter(|e| e["category"] == "MEDICATION")
                .filter_map(|e| e["text"].as_str().map(str::to_lowercase))
                .collect();
            p.medications_found += u
                .medications
                .iter()
                .filter(|m| meds.iter().any(|x| x == *m))
                .count();
        }
    }
    Ok((lost, wrong))
}

/// Run the scenario: `rounds` rounds of the pipeline and the floor, in turn pipeline first
/// and floor first (so a load that drifts during the run weighs on both alike); the report
/// says whether every upload had its outcome and how far the pipeline is from the floor.
pub async fn run(s: &DocScenario, o: &DocOptions) -> anyhow::Result<DocReport> {
    let loadavg_before = loadavg().await;
    let started_at_unix_ms = now_ms();
    let uploads = documents::uploads(&s.mix).await?;
    let parallelism = fleet_docs_local::ocr::LocalOcrConfig::default().parallel_pages;
    let mut p = PipelineRun::default();
    let mut f = FloorRun::default();
    let mut rounds = Vec::new();
    let mut lost = 0;
    let mut wrong = Vec::new();
    let mut loadavg_after_pipeline = String::new();
    for round in 0..s.rounds.max(1) {
        let dir = o.work_dir.join(format!("round-{round}"));
        let floor_first = round % 2 == 1;
        let floor_dir =
            tempfile::tempdir_in(&o.work_dir).context("the floor's scratch directory")?;
        let early_floor = if floor_first {
            Some(floor::run(&uploads, floor_dir.path(), parallelism).await?)
        } else {
            None
        };
        let phase = pipeline(s, o, &uploads, &dir).await?;
        loadavg_after_pipeline = loadavg().await;
        let fl = match early_floor {
            Some(fl) => fl,
            None => floor::run(&uploads, floor_dir.path(), parallelism).await?,
        };
        rounds.push(super::Round {
            order: if floor_first {
                "floor, pipeline"
            } else {
                "pipeline, floor"
            },
            pipeline_wall_s: phase.wall_s,
            floor_wall_s: fl.wall_s,
        });
        p.wall_s += phase.wall_s;
        p.worker_cpu_s += phase.worker_cpu_s;
        p.tools_cpu_s += phase.tools_cpu_s;
        p.worker_exit = phase.worker_exit.clone();
        let (l, w) = account(&uploads, phase, &mut p).await?;
        lost += l;
        wrong.extend(w);
        f.wall_s += fl.wall_s;
        f.tools_cpu_s += fl.tools_cpu_s;
        f.parallelism = fl.parallelism;
        f.pdftotext_runs += fl.pdftotext_runs;
        f.pdftoppm_runs += fl.pdftoppm_runs;
        f.tesseract_runs += fl.tesseract_runs;
        f.failed_runs += fl.failed_runs;
    }
    let loadavg_after_floor = loadavg().await;

    let uploaded = uploaded(&uploads);
    let pages = (uploaded.pages * rounds.len()) as f64;
    p.pages_per_s = pages / p.wall_s;
    p.s_per_page = p.wall_s / pages;
    f.pages_per_s = pages / f.wall_s;
    f.s_per_page = f.wall_s / pages;
    let overhead_pct = (p.wall_s / f.wall_s - 1.0) * 100.0;
    let tools = format!(
        "{}; {}",
        first_line("tesseract", "--version").await,
        first_line("pdftoppm", "-v").await
    );
    let mut report = DocReport {
        scenario: s.name.clone(),
        command: o.command.clone(),
        machine: DocMachine {
            nproc: std::thread::available_parallelism().map_or(0, |n| n.get()),
            uname: uname().await,
            loadavg_before,
            loadavg_after_pipeline,
            loadavg_after_floor,
            tools,
        },
        git_commit: crate::run::git_commit().await,
        started_at_unix_ms,
        worker_concurrency: s.worker_concurrency,
        uploaded,
        rounds,
        pipeline: p,
        floor: f,
        overhead_pct,
        lost,
        wrong_outcomes: wrong,
        targets: Vec::new(),
    };
    report.targets = super::targets(&report, s.target_overhead_pct);
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn own_and_children_cpu_ticks_are_read_after_a_name_with_spaces() {
        let stat = "4242 (doc pipeline) S 1 4242 4242 0 -1 4194304 2571 0 0 0 731 129 5000 400 20 \
                    0 5 0 8812 1187840000 4350";
        assert_eq!(cpu_ticks(stat), Some((731 + 129, 5000 + 400)));
        assert_eq!(cpu_ticks("garbage"), None);
        let own = std::fs::read_to_string("/proc/self/stat").unwrap();
        assert!(cpu_ticks(&own).is_some());
    }

    #[test]
    fn uploads_are_counted_by_kind_with_only_good_pages() {
        use crate::documents::Kind;
        let up = |kind, pages| Upload {
            key: String::new(),
            kind,
            bytes: vec![0; 10],
            content_type: "x",
            pages,
            medications: Vec::new(),
        };
        let u = uploaded(&[
            up(Kind::TextPdf, 2),
            up(Kind::ScannedPdf, 3),
            up(Kind::Png, 1),
            up(Kind::Word, 0),
        ]);
        assert_eq!(
            (u.good, u.poison, u.pages, u.ocr_pages, u.bytes),
            (3, 1, 6, 4, 40)
        );
        assert_eq!(u.by_kind["scanned-pdf"].pages, 3);
        assert_eq!(u.by_kind["word"].documents, 1);
    }
}
