//! One run: provision, send, watch the tap queue and the DLQ, stop the worker, account for
//! every message.

use std::collections::hash_map::DefaultHasher;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::hash::{Hash, Hasher};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::Context;
use fleet_core::FailureMetadata;
use fleet_core::ports::{MessageQueue, OutgoingMessage};
use std::sync::atomic::{AtomicBool, Ordering};

use crate::chaos::{self, Disruption, DisruptionKind};
use crate::generate::{self, Message};
use crate::proxy::{FaultProxy, ProxyConfig};
use crate::report::{self, FaultsReport, LogScan, Machine, Percentiles, Report, Target};
use crate::scenario::{Mode, Scenario};
use crate::stack::{self, BackendKind, Stack};
use crate::worker::{self, WorkerProcess};

/// Everything a run needs besides the scenario.
#[derive(Debug, Clone)]
pub struct Options {
    pub backend: BackendKind,
    /// aws: a protocol server (moto) URL; the worker gets test credentials for it.
    pub endpoint: Option<String>,
    pub region: String,
    pub worker_bin: PathBuf,
    /// Local backend files, the worker log.
    pub work_dir: PathBuf,
    /// The command line, recorded in the report.
    pub command: String,
}

/// Tells the collectors to finish.
#[derive(Clone, Default)]
struct Stop(Arc<AtomicBool>);

impl Stop {
    fn stop(&self) {
        self.0.store(true, Ordering::SeqCst);
    }
    fn stopped(&self) -> bool {
        self.0.load(Ordering::SeqCst)
    }
}

fn now_us() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_micros() as i64)
        .unwrap_or(0)
}

fn body_key(body: &str) -> u64 {
    let mut h = DefaultHasher::new();
    body.hash(&mut h);
    h.finish()
}

/// What the collectors saw.
#[derive(Default)]
struct Seen {
    /// control id → (tap SentTimestamp ms, load tool receive µs, event id); first arrival.
    events: HashMap<String, (i64, i64, String)>,
    event_ids: HashMap<String, u64>,
    /// control id → every event id published for it (a redelivery must reuse the first).
    ids_by_control: HashMap<String, HashSet<String>>,
    /// Non-loadtest or unreadable tap messages.
    foreign: u64,
    /// message index → (code, DLQ SentTimestamp ms).
    dead: HashMap<usize, (String, i64)>,
    dead_unknown: u64,
    /// A dead letter for a message already dead-lettered (a redelivery after a lost delete).
    dead_duplicates: u64,
}

/// Run the scenario; the report says whether every message was accounted for.
pub async fn run(scenario: &Scenario, opts: &Options) -> anyhow::Result<Report> {
    let messages = Arc::new(generate::stream(scenario));
    let started_at_unix_ms = now_us() / 1000;
    let visibility = Duration::from_secs(scenario.visibility_timeout_s);
    let stack = match opts.backend {
        BackendKind::Local => stack::local(&opts.work_dir, visibility)?,
        BackendKind::Aws => stack::aws(opts.endpoint.as_deref(), &opts.region, visibility).await?,
    };
    let source = stack.backend.queue(&stack.source).await?;
    let tap = stack.backend.queue(&stack.tap).await?;
    let dlq = stack.backend.queue(&stack.dlq).await?;

    // Several messages can have the same body (a malformed one without MSH-10, for the same
    // patient): a dead letter is matched to the first of them not matched yet.
    let mut index_by_body: HashMap<u64, Vec<usize>> = HashMap::new();
    for (i, m) in messages.iter().enumerate() {
        index_by_body.entry(body_key(&m.body)).or_default().push(i);
    }
    let index_by_control: HashMap<&str, usize> = messages
        .iter()
        .enumerate()
        .map(|(i, m)| (m.control_id.as_str(), i))
        .collect();
    let send_us: Arc<Mutex<Vec<i64>>> = Arc::new(Mutex::new(vec![0; messages.len()]));
    let proxy = start_proxy(scenario, opts).await?;
    let mut workers = Workers {
        bin: opts.worker_bin.clone(),
        env: worker_env(&stack, scenario, proxy.as_ref().map(|p| p.url.as_str())),
        dir: opts.work_dir.clone(),
        logs: Vec::new(),
    };
    std::fs::create_dir_all(&opts.work_dir)?;

    let seen = Arc::new(Mutex::new(Seen::default()));
    let stop = Stop::default();
    let index_by_body = Arc::new(index_by_body);
    let mut collectors = Vec::new();
    for _ in 0..2 {
        collectors.push(tokio::spawn(collect_tap(
            tap.clone(),
            seen.clone(),
            stop.clone(),
        )));
    }
    collectors.push(tokio::spawn(collect_dlq(
        dlq.clone(),
        seen.clone(),
        index_by_body.clone(),
        stop.clone(),
    )));

    let mut worker;
    let start;
    let mut sender = None;
    match scenario.mode {
        Mode::Preload => {
            send_all(source.clone(), messages.clone(), send_us.clone(), 0, 8).await?;
            worker = workers.start()?;
            start = now_us();
        }
        Mode::Rate => {
            worker = workers.start()?;
            worker.wait_ready(Duration::from_secs(60)).await?;
            start = now_us();
            sender = Some(tokio::spawn(send_all(
                source.clone(),
                messages.clone(),
                send_us.clone(),
                scenario.rate_per_s,
                4,
            )));
        }
    }
    let first_ready = Instant::now();
    let plan = chaos::plan(&scenario.faults, scenario.seed);
    let mut next_disruption = 0usize;
    let mut disruptions: Vec<Disruption> = Vec::new();
    // (index into disruptions, when it happened, outcomes when the new worker was ready). A
    // disruption that comes before the last one recovered leaves both pending: each recovers
    // at the first outcome after its own restart.
    let mut recovering: Vec<(usize, Instant, usize)> = Vec::new();
    let mut cpu = Duration::ZERO;
    let mut finals: Vec<worker::FinalLine> = Vec::new();
    let drain = Duration::from_secs(scenario.worker_drain_deadline_s);

    // Wait until every message has an outcome (and every disruption has happened), or nothing
    // moves for idle_timeout_s.
    let total = messages.len();
    let idle = Duration::from_secs(scenario.idle_timeout_s);
    let mut last_progress = (0usize, Instant::now());
    let mut worker_died = None;
    loop {
        let accounted = {
            let s = seen.lock().unwrap();
            count_accounted(&s, &messages, &index_by_control)
        };
        recovering.retain(|&(i, at, base)| {
            let recovered = accounted > base;
            if recovered {
                disruptions[i].recovery_s = Some(at.elapsed().as_secs_f64());
            }
            !recovered
        });
        if let Some(&(due, kind)) = plan.get(next_disruption)
            && first_ready.elapsed().as_secs_f64() >= due
        {
            next_disruption += 1;
            let at = Instant::now();
            let mut d = Disruption {
                kind,
                at_s: (now_us() - start) as f64 / 1e6,
                accounted_before: accounted,
                exit_s: None,
                exit_ok: None,
                in_flight_after_exit: None,
                ready_s: None,
                recovery_s: None,
            };
            cpu += worker.cpu_time().unwrap_or_default();
            match kind {
                DisruptionKind::Kill => {
                    worker.kill9()?;
                }
                DisruptionKind::Term => {
                    let exit = worker.terminate(drain + Duration::from_secs(15)).await;
                    d.exit_s = Some(at.elapsed().as_secs_f64());
                    d.exit_ok = Some(exit.as_ref().is_ok_and(|s| s.success()));
                    d.in_flight_after_exit = Some(source.attributes().await?.approximate_in_flight);
                    finals.extend(worker::final_line(&worker.log_text()));
                }
            }
            worker = workers.start()?;
            worker.wait_ready(Duration::from_secs(60)).await?;
            d.ready_s = Some(at.elapsed().as_secs_f64());
            let now_accounted = {
                let s = seen.lock().unwrap();
                count_accounted(&s, &messages, &index_by_control)
            };
            disruptions.push(d);
            recovering.push((disruptions.len() - 1, at, now_accounted));
            last_progress = (now_accounted, Instant::now());
            continue;
        }
        let disruptions_left = next_disruption < plan.len();
        if accounted >= total && !disruptions_left {
            break;
        }
        if accounted != last_progress.0 {
            last_progress = (accounted, Instant::now());
        } else if last_progress.1.elapsed() > idle && !disruptions_left {
            eprintln!(
                "loadtest: no progress for {idle:?} with {accounted} of {total} accounted for; stopping"
            );
            break;
        }
        if let Some(status) = worker.exited() {
            worker_died = Some(status);
            eprintln!("loadtest: the worker exited early ({status})");
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    for (i, at, _) in recovering {
        // Nothing was left to do after the restart: recovered once ready.
        disruptions[i].recovery_s = disruptions[i].ready_s.or(Some(at.elapsed().as_secs_f64()));
    }
    if let Some(sender) = sender {
        sender.await??;
    }
    // After a kill, messages the dead worker held (processed but not deleted) come back when
    // their visibility timeout ends and are processed again: wait for the source to empty.
    if !disruptions.is_empty() && worker_died.is_none() {
        let limit = Instant::now() + visibility + idle;
        loop {
            let a = source.attributes().await?;
            if a.approximate_visible + a.approximate_in_flight == 0 || Instant::now() > limit {
                break;
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }
    cpu += worker.cpu_time().unwrap_or_default();
    let exit = match worker_died {
        Some(s) => s,
        None => worker.terminate(Duration::from_secs(60)).await?,
    };
    // The worker flushed its deletes on exit: what is left on the source is final.
    let left = source.attributes().await?;
    let left_on_source = left.approximate_visible + left.approximate_in_flight;
    // A last look for stragglers (a duplicate event, a late dead letter), then stop.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    stop.stop();
    for c in collectors {
        c.await??;
    }
    let log_text = worker.log_text();
    let last = worker::final_line(&log_text);
    if last.as_ref().is_none_or(|f| f.requests.is_empty()) {
        eprintln!(
            "loadtest: the worker's log has no `run finished` line with request counts ({})",
            worker.log.display()
        );
    }
    finals.extend(last);
    let fin = worker::FinalLine::sum(&finals);

    let records = {
        let ids = seen.lock().unwrap().ids_by_control.clone();
        chaos::check_records(stack.backend.records(&stack.table), &messages, &ids).await?
    };
    let send_us = send_us.lock().unwrap().clone();
    let seen = seen.lock().unwrap();
    let mut report = assemble(
        scenario,
        opts,
        &stack,
        &messages,
        &index_by_control,
        &send_us,
        &seen,
        Assembly {
            started_at_unix_ms,
            start_us: start,
            cpu,
            exit: exit.to_string(),
            left_on_source,
            fin,
        },
    );
    report.faults = Some(FaultsReport {
        planned: scenario.faults.clone(),
        worker_starts: u32::try_from(workers.logs.len()).unwrap_or(u32::MAX),
        disruptions,
        requests_partial: scenario.faults.kills > 0,
        proxy: proxy.as_ref().map(FaultProxy::summary),
    });
    report.records = Some(records);
    report.log_scan = Some(scan_logs(&workers.logs));
    report.event_ids_conflicting = seen
        .ids_by_control
        .values()
        .filter(|ids| ids.len() > 1)
        .count() as u64;
    Ok(report)
}

/// Every worker log, scanned for synthetic patient data (names, MRNs, birth dates).
fn scan_logs(logs: &[PathBuf]) -> LogScan {
    let mut scan = LogScan::default();
    for log in logs {
        let text = std::fs::read_to_string(log).unwrap_or_default();
        scan.files += 1;
        scan.lines += text.lines().count() as u64;
        scan.lines_with_patient_data += fleet_samples::hl7::synthetic_phi_in(&text)
            .iter()
            .map(|(line, _)| *line)
            .collect::<HashSet<_>>()
            .len() as u64;
    }
    scan
}

/// Starts worker processes, each with a log and a health port of its own.
struct Workers {
    bin: PathBuf,
    env: Vec<(String, String)>,
    dir: PathBuf,
    /// One per process started, in start order.
    logs: Vec<PathBuf>,
}

impl Workers {
    fn start(&mut self) -> anyhow::Result<Started> {
        let health = free_addr()?;
        let mut env = self.env.clone();
        env.push(("FLEET_HEALTH_ADDR".into(), health.to_string()));
        let log = match self.logs.len() {
            0 => self.dir.join("worker.log"),
            n => self.dir.join(format!("worker-{n}.log")),
        };
        self.logs.push(log.clone());
        Ok(Started {
            process: WorkerProcess::start(&self.bin, &env, log)?,
            health,
        })
    }
}

/// A started worker and its health address.
struct Started {
    process: WorkerProcess,
    health: SocketAddr,
}

impl std::ops::Deref for Started {
    type Target = WorkerProcess;
    fn deref(&self) -> &WorkerProcess {
        &self.process
    }
}

impl std::ops::DerefMut for Started {
    fn deref_mut(&mut self) -> &mut WorkerProcess {
        &mut self.process
    }
}

impl Started {
    async fn wait_ready(&mut self, limit: Duration) -> anyhow::Result<()> {
        let addr = self.health;
        wait_ready(&mut self.process, addr, limit).await
    }
}

async fn start_proxy(scenario: &Scenario, opts: &Options) -> anyhow::Result<Option<FaultProxy>> {
    let f = &scenario.faults;
    if f.proxy_share <= 0.0 {
        return Ok(None);
    }
    anyhow::ensure!(
        opts.backend == BackendKind::Aws,
        "faults.proxy_share needs the aws backend (the proxy sits between the worker and the endpoint)"
    );
    let upstream = opts
        .endpoint
        .as_deref()
        .context("faults.proxy_share needs --endpoint (the proxy forwards to that endpoint)")?;
    let proxy = FaultProxy::start(
        upstream,
        ProxyConfig {
            share: f.proxy_share,
            kinds: f.kinds(),
            slow_ms: f.proxy_slow_ms,
            seed: scenario.seed,
        },
    )
    .await?;
    Ok(Some(proxy))
}

struct Assembly {
    started_at_unix_ms: i64,
    start_us: i64,
    cpu: Duration,
    exit: String,
    left_on_source: u64,
    fin: worker::FinalLine,
}

fn count_accounted(s: &Seen, messages: &[Message], by_control: &HashMap<&str, usize>) -> usize {
    let mut done: HashSet<usize> = s.dead.keys().copied().collect();
    for c in s.events.keys() {
        if let Some(&i) = by_control.get(c.as_str()) {
            done.insert(i);
        }
    }
    done.len().min(messages.len())
}

/// The worker's environment; `endpoint`: the fault proxy, which then replaces the stack's.
fn worker_env(stack: &Stack, s: &Scenario, endpoint: Option<&str>) -> Vec<(String, String)> {
    let mut env = stack.worker_env.clone();
    if let Some(url) = endpoint {
        env.retain(|(k, _)| k != "AWS_ENDPOINT_URL");
        env.push(("AWS_ENDPOINT_URL".into(), url.to_string()));
    }
    env.extend([
        ("FLEET_HL7_QUEUE".into(), stack.source.clone()),
        ("FLEET_EVENT_BUS".into(), stack.bus.clone()),
        ("FLEET_HL7_TABLE".into(), stack.table.clone()),
        ("FLEET_CONCURRENCY".into(), s.worker_concurrency.to_string()),
        (
            "FLEET_WAIT_TIME_SECS".into(),
            s.worker_wait_time_s.to_string(),
        ),
        (
            "FLEET_DRAIN_DEADLINE_SECS".into(),
            s.worker_drain_deadline_s.to_string(),
        ),
        ("FLEET_LOG".into(), "info".into()),
        ("FLEET_LOG_FORMAT".into(), "json".into()),
    ]);
    if let Some(ms) = s.worker_publish_linger_ms {
        env.push(("FLEET_PUBLISH_LINGER_MS".into(), ms.to_string()));
    }
    if let Some(ms) = s.worker_delete_linger_ms {
        env.push(("FLEET_DELETE_LINGER_MS".into(), ms.to_string()));
    }
    if let Some(n) = s.worker_max_message_bytes {
        env.push(("FLEET_HL7_MAX_MESSAGE_BYTES".into(), n.to_string()));
    }
    env
}

fn free_addr() -> anyhow::Result<SocketAddr> {
    let l = TcpListener::bind("127.0.0.1:0").context("finding a free port")?;
    Ok(l.local_addr()?)
}

/// Poll `/health/ready` until it answers 200.
async fn wait_ready(
    w: &mut WorkerProcess,
    addr: SocketAddr,
    limit: Duration,
) -> anyhow::Result<()> {
    let t = Instant::now();
    loop {
        if http_get(addr, "/health/ready").is_some_and(|r| r.starts_with("HTTP/1.1 200")) {
            return Ok(());
        }
        if let Some(status) = w.exited() {
            anyhow::bail!(
                "the worker exited at start ({status}); its log: {}",
                w.log.display()
            );
        }
        anyhow::ensure!(
            t.elapsed() < limit,
            "the worker was not ready within {limit:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn http_get(addr: SocketAddr, path: &str) -> Option<String> {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_millis(200)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut out = String::new();
    s.read_to_string(&mut out).ok()?;
    Some(out)
}

/// Send every message in batches of 10 from `senders` tasks; at `rate` messages per second
/// when non-zero (a batch every 10/rate s, catching up after a slow call).
async fn send_all(
    queue: Arc<dyn MessageQueue>,
    messages: Arc<Vec<Message>>,
    send_us: Arc<Mutex<Vec<i64>>>,
    rate: u32,
    senders: usize,
) -> anyhow::Result<()> {
    let batches: Vec<(usize, Vec<OutgoingMessage>)> = messages
        .chunks(10)
        .enumerate()
        .map(|(b, chunk)| {
            (
                b * 10,
                chunk
                    .iter()
                    .map(|m| OutgoingMessage {
                        body: m.body.clone(),
                        ..OutgoingMessage::default()
                    })
                    .collect(),
            )
        })
        .collect();
    let batches = Arc::new(batches);
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let begin = Instant::now();
    let per_batch = (rate > 0).then(|| Duration::from_secs_f64(10.0 / f64::from(rate)));
    let mut tasks = Vec::new();
    for _ in 0..senders.max(1) {
        let (queue, batches, next, send_us) = (
            queue.clone(),
            batches.clone(),
            next.clone(),
            send_us.clone(),
        );
        tasks.push(tokio::spawn(async move {
            loop {
                let b = next.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                let Some((first, batch)) = batches.get(b) else {
                    return Ok::<(), anyhow::Error>(());
                };
                if let Some(every) = per_batch {
                    let due = begin + every * u32::try_from(b).unwrap_or(u32::MAX);
                    tokio::time::sleep_until(due.into()).await;
                }
                let t = now_us();
                let r = queue.send_batch(batch).await?;
                anyhow::ensure!(
                    r.all_ok(),
                    "a send batch had failed entries: {:?}",
                    r.failed
                );
                let mut s = send_us.lock().unwrap();
                for i in 0..batch.len() {
                    s[first + i] = t;
                }
            }
        }));
    }
    for t in tasks {
        t.await??;
    }
    Ok(())
}

async fn collect_tap(
    tap: Arc<dyn MessageQueue>,
    seen: Arc<Mutex<Seen>>,
    stop: Stop,
) -> anyhow::Result<()> {
    while !stop.stopped() {
        let got = tap
            .receive(10, Duration::from_secs(1), Some(Duration::from_secs(300)))
            .await?;
        if got.is_empty() {
            continue;
        }
        let at = now_us();
        {
            let mut s = seen.lock().unwrap();
            for m in &got {
                let v: serde_json::Value = serde_json::from_str(&m.body).unwrap_or_default();
                let control = v["detail"]["payload"]["control_id"].as_str();
                let id = v["detail"]["event_id"].as_str();
                match (control, id) {
                    (Some(c), Some(id)) => {
                        *s.event_ids.entry(id.to_string()).or_default() += 1;
                        s.ids_by_control
                            .entry(c.to_string())
                            .or_default()
                            .insert(id.to_string());
                        s.events.entry(c.to_string()).or_insert((
                            m.sent_timestamp_ms,
                            at,
                            id.to_string(),
                        ));
                    }
                    _ => s.foreign += 1,
                }
            }
        }
        let receipts: Vec<String> = got.iter().map(|m| m.receipt.clone()).collect();
        tap.delete_batch(&receipts).await?;
    }
    Ok(())
}

async fn collect_dlq(
    dlq: Arc<dyn MessageQueue>,
    seen: Arc<Mutex<Seen>>,
    by_body: Arc<HashMap<u64, Vec<usize>>>,
    stop: Stop,
) -> anyhow::Result<()> {
    while !stop.stopped() {
        let got = dlq
            .receive(10, Duration::from_secs(1), Some(Duration::from_secs(300)))
            .await?;
        if got.is_empty() {
            continue;
        }
        {
            let mut s = seen.lock().unwrap();
            for m in &got {
                let code = FailureMetadata::from_attributes(&m.attributes)
                    .map(|f| f.code.as_str().to_string())
                    .unwrap_or_else(|| "NO_FAILURE_ATTRIBUTE".into());
                let candidates = by_body.get(&body_key(&m.body));
                match candidates.and_then(|c| c.iter().find(|i| !s.dead.contains_key(i))) {
                    Some(&i) => {
                        s.dead.insert(i, (code, m.sent_timestamp_ms));
                    }
                    // Every message with this body is already dead-lettered: a duplicate.
                    None if candidates.is_some() => s.dead_duplicates += 1,
                    None => s.dead_unknown += 1,
                }
            }
        }
        let receipts: Vec<String> = got.iter().map(|m| m.receipt.clone()).collect();
        dlq.delete_batch(&receipts).await?;
    }
    Ok(())
}

#[allow(clippy::too_many_arguments)]
fn assemble(
    scenario: &Scenario,
    opts: &Options,
    _stack: &Stack,
    messages: &[Message],
    by_control: &HashMap<&str, usize>,
    send_us: &[i64],
    seen: &Seen,
    a: Assembly,
) -> Report {
    let sent = messages.len() as u64;
    let malformed = messages
        .iter()
        .filter(|m| m.expected_failure.is_some())
        .count() as u64;
    let mut unexpected = 0u64;
    let mut lat = Vec::new();
    let mut observed = Vec::new();
    let mut points = Vec::new();
    let mut last_ms = a.start_us / 1000;
    let mut done: HashSet<usize> = HashSet::new();
    for (control, (tap_ms, recv_us, _)) in &seen.events {
        let Some(&i) = by_control.get(control.as_str()) else {
            unexpected += 1;
            continue;
        };
        done.insert(i);
        if messages[i].expected_failure.is_some() {
            unexpected += 1;
        }
        let l = ((*tap_ms as f64) - send_us[i] as f64 / 1000.0).max(0.0);
        lat.push(l);
        observed.push(((recv_us - send_us[i]) as f64 / 1000.0).max(0.0));
        points.push(((*tap_ms * 1000 - a.start_us) as f64 / 1e6, l));
        last_ms = last_ms.max(*tap_ms);
    }
    let mut codes: BTreeMap<String, u64> = BTreeMap::new();
    for (&i, (code, at_ms)) in &seen.dead {
        done.insert(i);
        *codes.entry(code.clone()).or_default() += 1;
        if messages[i].expected_failure.map(|c| c.as_str()) != Some(code.as_str()) {
            unexpected += 1;
        }
        last_ms = last_ms.max(*at_ms);
    }
    unexpected += seen.dead_unknown + seen.foreign;
    let lost = sent - done.len() as u64;
    let duration_s = ((last_ms * 1000 - a.start_us) as f64 / 1e6).max(1e-3);
    let outcomes = seen.events.len() as u64 + seen.dead.len() as u64;
    let total_requests: u64 = a.fin.requests.values().sum();
    let mut rpm: BTreeMap<String, f64> = a
        .fin
        .requests
        .iter()
        .map(|(k, v)| (k.clone(), *v as f64 / sent as f64))
        .collect();
    rpm.insert("total".into(), total_requests as f64 / sent as f64);
    let cpu_us = a.cpu.as_secs_f64() * 1e6 / sent as f64;
    let latency_ms = Percentiles::of(&mut lat);
    let throughput = outcomes as f64 / duration_s;
    let duplicates = seen.event_ids.values().map(|n| n.saturating_sub(1)).sum();
    let mut report = Report {
        scenario: scenario.name.clone(),
        backend: opts.backend.as_str().into(),
        mode: match scenario.mode {
            Mode::Preload => "preload".into(),
            Mode::Rate => "rate".into(),
        },
        seed: scenario.seed,
        command: opts.command.clone(),
        machine: machine(),
        git_commit: git_commit(),
        started_at_unix_ms: a.started_at_unix_ms,
        rate_target_per_s: scenario.rate_per_s,
        worker_concurrency: scenario.worker_concurrency,
        worker_publish_linger_ms: scenario.worker_publish_linger_ms,
        worker_delete_linger_ms: scenario.worker_delete_linger_ms,
        worker_drain_deadline_s: scenario.worker_drain_deadline_s,
        visibility_timeout_s: scenario.visibility_timeout_s,
        messages_sent: sent,
        well_formed_sent: sent - malformed,
        malformed_sent: malformed,
        mean_body_bytes: messages.iter().map(|m| m.body.len() as u64).sum::<u64>() / sent.max(1),
        events_observed: seen.events.len() as u64,
        duplicate_events: duplicates,
        duplicate_dead_letters: seen.dead_duplicates,
        dead_lettered: seen.dead.len() as u64,
        dead_letter_codes: codes,
        unexpected_outcomes: unexpected,
        lost,
        left_on_source: a.left_on_source,
        duration_s,
        throughput_per_s: throughput,
        latency_ms,
        observed_latency_ms: Percentiles::of(&mut observed),
        worker_cpu_ms_total: a.cpu.as_secs_f64() * 1e3,
        worker_cpu_us_per_message: cpu_us,
        worker_exit: a.exit,
        worker_received: a.fin.received,
        worker_succeeded: a.fin.succeeded,
        worker_dead_lettered: a.fin.dead_lettered,
        requests_per_message: rpm,
        requests: a.fin.requests.clone(),
        targets: Vec::new(),
        timeline: report::timeline(&points),
        faults: None,
        records: None,
        event_ids_conflicting: 0,
        log_scan: None,
    };
    report.targets = targets(&report, scenario);
    report
}

/// The brief's §10 targets this run can speak to, each only under its own conditions.
fn targets(r: &Report, s: &Scenario) -> Vec<Target> {
    // A disturbed run measures recovery, not the brief's performance targets.
    let clean = s.faults.disruptions() == 0 && s.faults.proxy_share == 0.0;
    let local = r.backend == "local" && clean;
    let aws = r.backend == "aws" && clean;
    let saturated = s.mode == Mode::Preload || s.rate_per_s == 0;
    let total = r.requests_per_message.get("total").copied().unwrap_or(0.0);
    let queue_bus: f64 = r
        .requests_per_message
        .iter()
        .filter(|(k, _)| k.starts_with("sqs.") || k.starts_with("events."))
        .map(|(_, v)| v)
        .sum();
    vec![
        Target {
            what: "lost messages",
            target: "0".into(),
            measured: r.lost.to_string(),
            met: Some(r.lost == 0),
        },
        Target {
            what: "requests per message at saturation (aws)",
            target: "<= 1.35".into(),
            measured: format!("{total:.3}"),
            met: (aws && saturated).then_some(total <= 1.35),
        },
        Target {
            what: "queue + bus requests per message (aws)",
            target: "<= 0.35".into(),
            measured: format!("{queue_bus:.3}"),
            met: (aws && saturated).then_some(queue_bus <= 0.35),
        },
        Target {
            what: "worker CPU per message, local",
            target: "<= 50 µs".into(),
            measured: format!("{:.1} µs", r.worker_cpu_us_per_message),
            met: local.then_some(r.worker_cpu_us_per_message <= 50.0),
        },
        Target {
            what: "local throughput, 2 cores",
            target: ">= 5000/s".into(),
            measured: format!("{:.0}/s", r.throughput_per_s),
            met: (local && saturated).then_some(r.throughput_per_s >= 5000.0),
        },
        Target {
            what: "local p99 latency at 1,000 msg/s",
            target: "<= 50 ms".into(),
            measured: format!("{:.1} ms", r.latency_ms.p99),
            met: (local && s.mode == Mode::Rate && s.rate_per_s == 1000)
                .then_some(r.latency_ms.p99 <= 50.0),
        },
    ]
}

fn machine() -> Machine {
    let uname = std::process::Command::new("uname")
        .arg("-a")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .map(|s| s.trim().to_string())
        .unwrap_or_default();
    Machine {
        nproc: std::thread::available_parallelism().map_or(0, |n| n.get()),
        uname,
    }
}

fn git_commit() -> Option<String> {
    let o = std::process::Command::new("git")
        .args(["describe", "--always", "--dirty", "--abbrev=7"])
        .output()
        .ok()?;
    o.status
        .success()
        .then(|| String::from_utf8_lossy(&o.stdout).trim().to_string())
}
