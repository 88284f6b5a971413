//! Running the real worker binaries: locating them, starting them with a captured log,
//! stopping them with a signal, and scanning their logs for PHI.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fleet_core::ports::{MessageQueue, OutgoingMessage, ReceivedMessage};

/// The target directory's binary `name` (built by `cargo build --workspace --bins`, which
/// `scripts/test` runs first).
pub fn binary(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("test binary path");
    // target/<profile>/deps/it-<hash> → target/<profile>/<name>
    let dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("target profile directory");
    let path = dir.join(name);
    assert!(
        path.exists(),
        "{} not found: build the workers first (`cargo build --workspace --bins`, which scripts/test does)",
        path.display()
    );
    path
}

/// A worker process whose stdout and stderr go to a log file.
pub struct Worker {
    pub child: Child,
    pub log: PathBuf,
    /// Where the worker keeps what it writes besides its log (scanned on drop).
    stores: Stores,
}

/// What a worker writes besides its log, read back from its arguments and environment: the
/// local backend's SQLite file (every queue's failure attributes, the outbox), or on the aws
/// backend the endpoint and the queues it consumes (their DLQs' failure attributes).
#[derive(Debug, Default, Clone)]
struct Stores {
    local_db: Option<PathBuf>,
    aws_endpoint: Option<String>,
    aws_queues: Vec<String>,
}

impl Stores {
    fn of(args: &[&str], envs: &[(&str, String)]) -> Self {
        let var = |name: &str| {
            envs.iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| v.clone())
        };
        let arg = |flag: &str| {
            args.iter()
                .position(|a| *a == flag)
                .and_then(|i| args.get(i + 1))
                .map(|v| v.to_string())
        };
        let aws_endpoint = var("AWS_ENDPOINT_URL");
        let aws = match var("FLEET_BACKEND").as_deref() {
            Some(kind) => kind == "aws",
            None => aws_endpoint.is_some(),
        };
        if aws {
            return Stores {
                local_db: None,
                aws_endpoint,
                aws_queues: envs
                    .iter()
                    .filter(|(k, _)| k.starts_with("FLEET_") && k.ends_with("_QUEUE"))
                    .map(|(_, v)| v.clone())
                    .collect(),
            };
        }
        let local_db = arg("--local-db")
            .or_else(|| var("FLEET_LOCAL_DB"))
            .map(PathBuf::from)
            .or_else(|| arg("--dir").map(|d| Path::new(&d).join("fleet.sqlite")));
        Stores {
            local_db,
            ..Stores::default()
        }
    }

    /// Every store's text that must hold no synthetic patient, as (what, text).
    fn texts(&self) -> Vec<(String, String)> {
        let mut out = Vec::new();
        if let Some(db) = self.local_db.as_ref().filter(|db| db.is_file()) {
            out.extend(local_texts(db));
        }
        if let Some(endpoint) = &self.aws_endpoint
            && !self.aws_queues.is_empty()
        {
            let (endpoint, queues) = (endpoint.clone(), self.aws_queues.clone());
            // Drop runs inside the test's runtime: the AWS calls get a runtime of their own.
            let texts = std::thread::spawn(move || {
                tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .expect("a runtime for the DLQ scan")
                    .block_on(aws_dlq_texts(&endpoint, &queues))
            })
            .join()
            .expect("the DLQ scan");
            out.extend(texts);
        }
        out
    }
}

/// Every failure attribute on every queue of the local database (DLQs, and anything else that
/// carries one), and the outbox: its table and its JSON-lines file.
fn local_texts(db: &Path) -> Vec<(String, String)> {
    let scratch = tempfile_dir(db);
    // A test may have made the database shared on purpose (issue 16 item 9): the scan reads it
    // anyway.
    let options = fleet_local::LocalOptions {
        allow_shared_db: true,
    };
    let local = fleet_local::LocalBackend::open_with(db, &scratch, options)
        .expect("open the worker's database");
    let mut out = Vec::new();
    for queue in local.list_queues().expect("list queues") {
        let messages = local
            .queue_messages_snapshot(&queue)
            .expect("queue snapshot");
        out.push((
            format!("failure attributes on local queue {queue}"),
            failure_text(messages.iter().map(|m| &m.attributes)),
        ));
    }
    let outbox: Vec<String> = local
        .outbox()
        .expect("outbox")
        .iter()
        .map(|e| serde_json::to_string(&e.notification).expect("notification serialises"))
        .collect();
    out.push(("the outbox table".into(), outbox.join("\n")));
    if let Ok(text) = std::fs::read_to_string(local.outbox_path()) {
        out.push((local.outbox_path().display().to_string(), text));
    }
    let _ = std::fs::remove_dir(&scratch);
    out
}

/// Fail on synthetic patient data in what a local backend's database holds besides bodies:
/// every failure attribute on every queue, and the outbox (table and file). For runs that do
/// not go through [`Worker`] (`fleet demo`); a `Worker`'s drop does this itself.
pub fn assert_no_synthetic_phi_in_local_backend(db: &Path) {
    assert!(db.is_file(), "{} is not a database", db.display());
    for (what, text) in local_texts(db) {
        assert_no_synthetic_phi(&what, &text);
    }
}

/// An objects directory for opening the database read-mostly: beside it, removed after (an
/// existing, non-empty one is left alone by `remove_dir`).
fn tempfile_dir(db: &Path) -> PathBuf {
    db.parent()
        .unwrap_or_else(|| Path::new("."))
        .join(".phi-scan-objects")
}

/// The failure attributes of the DLQs of `queues` on moto. Messages are received, read and
/// released at once (visibility 0): a DLQ a test reads later still holds them. Those a test
/// already holds invisible were scanned when it received them ([`receive_all`]).
async fn aws_dlq_texts(endpoint: &str, queues: &[String]) -> Vec<(String, String)> {
    use fleet_core::Backend as _;
    let backend = fleet_aws::AwsBackend::with_endpoint(endpoint, crate::MOTO_REGION).await;
    let mut out = Vec::new();
    for name in queues {
        let Ok(queue) = backend.queue(name).await else {
            continue;
        };
        let Ok(attrs) = queue.attributes().await else {
            continue;
        };
        let Some(redrive) = attrs.redrive_policy else {
            continue;
        };
        let dlq_name = redrive.dead_letter_target;
        let Ok(dlq) = backend.queue_by_arn(&dlq_name).await else {
            continue;
        };
        let mut seen = std::collections::HashSet::new();
        let mut texts = Vec::new();
        let mut receipts = Vec::new();
        loop {
            let got = dlq
                .receive(10, Duration::ZERO, Some(Duration::from_secs(30)))
                .await
                .expect("receive from the DLQ");
            if got.is_empty() {
                break;
            }
            for m in got {
                receipts.push(m.receipt.clone());
                if seen.insert(m.message_id.clone()) {
                    texts.push(failure_text(std::iter::once(&m.attributes)));
                }
            }
        }
        for batch in receipts.chunks(10) {
            let entries: Vec<(String, Duration)> =
                batch.iter().map(|r| (r.clone(), Duration::ZERO)).collect();
            let _ = dlq.change_visibility_batch(&entries).await;
        }
        out.push((
            format!("failure attributes on DLQ {dlq_name}"),
            texts.join("\n"),
        ));
    }
    out
}

/// The failure attributes among `attributes`, one JSON object a line.
fn failure_text<'a>(attributes: impl Iterator<Item = &'a fleet_core::Attributes>) -> String {
    attributes
        .filter_map(|a| a.get(fleet_core::failure::FAILURE_ATTRIBUTE))
        .filter_map(|v| v.as_str())
        .collect::<Vec<_>>()
        .join("\n")
}

/// Fail on synthetic patient data in any failure attribute among `messages` (what a DLQ
/// holds besides the original body, which is the producer's and kept as it was).
pub fn assert_no_synthetic_phi_in_failures(what: &str, messages: &[ReceivedMessage]) {
    assert_no_synthetic_phi(what, &failure_text(messages.iter().map(|m| &m.attributes)));
}

impl Worker {
    /// Start `name` with `envs` (and a clean FLEET_/AWS_ environment otherwise).
    pub fn start(name: &str, args: &[&str], envs: &[(&str, String)], log: PathBuf) -> Worker {
        let file = std::fs::File::create(&log).expect("log file");
        let mut cmd = Command::new(binary(name));
        cmd.args(args)
            .stdin(Stdio::null())
            .stdout(file.try_clone().expect("log file"))
            .stderr(file);
        for (k, _) in std::env::vars() {
            if k.starts_with("FLEET_") || k.starts_with("AWS_") {
                cmd.env_remove(&k);
            }
        }
        for (k, v) in envs {
            cmd.env(k, v);
        }
        let child = cmd.spawn().expect("start worker");
        Worker {
            child,
            log,
            stores: Stores::of(args, envs),
        }
    }

    /// Send SIGTERM and wait for the exit; returns how long the worker took and its status.
    // A test helper polling a child process: blocking for 20 ms is what it is for.
    #[allow(clippy::disallowed_methods)]
    pub fn terminate(&mut self, limit: Duration) -> (Duration, std::process::ExitStatus) {
        let started = Instant::now();
        let status = Command::new("kill")
            .arg("-TERM")
            .arg(self.child.id().to_string())
            .status()
            .expect("kill");
        assert!(status.success(), "kill -TERM failed");
        loop {
            if let Some(status) = self.child.try_wait().expect("wait") {
                return (started.elapsed(), status);
            }
            if started.elapsed() > limit {
                let _ = self.child.kill();
                panic!(
                    "worker did not exit within {limit:?} of SIGTERM; log:\n{}",
                    self.log_text()
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The address the gateway listens on, read from its JSON `mllp-gateway listening` log line
    /// (started with `--listen 127.0.0.1:0`, the system picks the port). Fails the test when
    /// the gateway exits first or does not listen within 60 s.
    pub async fn gateway_addr(&mut self) -> std::net::SocketAddr {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let text = self.log_text();
            let addr = text
                .lines()
                .filter(|l| l.contains("mllp-gateway listening"))
                .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
                .find_map(|v| {
                    let addr = v.get("addr").or_else(|| v["fields"].get("addr"))?;
                    addr.as_str()?.parse::<std::net::SocketAddr>().ok()
                });
            if let Some(addr) = addr {
                return addr;
            }
            if let Some(status) = self.child.try_wait().expect("wait") {
                panic!("the gateway exited {status} before listening; log:\n{text}");
            }
            assert!(
                Instant::now() < deadline,
                "the gateway did not listen within 60 s; log:\n{text}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Wait for the process to exit on its own.
    // A test helper polling a child process: blocking for 20 ms is what it is for.
    #[allow(clippy::disallowed_methods)]
    pub fn wait_exit(&mut self, limit: Duration) -> std::process::ExitStatus {
        let started = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().expect("wait") {
                return status;
            }
            if started.elapsed() > limit {
                let _ = self.child.kill();
                panic!(
                    "worker did not exit within {limit:?}; log:\n{}",
                    self.log_text()
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Worker {
    /// Stops the process, then scans its whole log for synthetic patient data, and what it
    /// wrote besides: every failure attribute on the local backend's queues or on the DLQs of
    /// the aws queues it consumed, and the local outbox. Every end-to-end test that runs a
    /// worker gets the scan, whatever else it checks.
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if !std::thread::panicking() {
            assert_no_synthetic_phi(&self.log.display().to_string(), &self.log_text());
            for (what, text) in self.stores.texts() {
                assert_no_synthetic_phi(&what, &text);
            }
        }
    }
}

/// Fail on any synthetic patient name, MRN or birth date in `text` (a worker log, a CLI's
/// output). Reports line numbers and kinds only, never the matched text.
pub fn assert_no_synthetic_phi(what: &str, text: &str) {
    let hits = fleet_samples::hl7::synthetic_phi_in(text);
    assert!(
        hits.is_empty(),
        "{what} holds synthetic patient data at (line, kind) {:?}",
        &hits[..hits.len().min(20)]
    );
}

/// Assert that no log line contains any of `secrets` (names, MRNs, birth dates).
pub fn assert_no_phi(log: &str, secrets: &[String]) {
    assert!(
        !log.is_empty(),
        "the worker wrote no log at all: the PHI scan would prove nothing"
    );
    for (n, line) in log.lines().enumerate() {
        for s in secrets {
            assert!(
                !line.contains(s.as_str()),
                "log line {} contains patient data ({} chars matched)",
                n + 1,
                s.len()
            );
        }
    }
}

/// The PHI of generated samples: names, MRNs, birth dates.
pub fn sample_secrets(samples: &[fleet_samples::hl7::Sample]) -> Vec<String> {
    let mut s: Vec<String> = samples
        .iter()
        .flat_map(|x| {
            [
                x.patient.family.clone(),
                x.patient.given.clone(),
                x.patient.mrn.clone(),
                x.patient.birth_date.clone(),
            ]
        })
        .collect();
    s.sort();
    s.dedup();
    s
}

/// The `requests` field of the worker's final `run finished` log line.
pub fn final_request_counts(log: &str) -> Option<std::collections::BTreeMap<String, u64>> {
    log.lines()
        .rev()
        .find(|l| l.contains("run finished"))
        .and_then(|l| {
            let v: serde_json::Value = serde_json::from_str(l).ok()?;
            let req = v
                .get("fields")
                .and_then(|f| f.get("requests"))
                .or_else(|| v.get("requests"))?;
            serde_json::from_str(req.as_str()?).ok()
        })
}

/// Send every body, in batches of 10, asserting each batch is accepted whole.
pub async fn send_all(queue: &dyn MessageQueue, bodies: impl Iterator<Item = String>) {
    let bodies: Vec<OutgoingMessage> = bodies
        .map(|body| OutgoingMessage {
            body,
            ..OutgoingMessage::default()
        })
        .collect();
    for batch in bodies.chunks(10) {
        assert!(
            queue.send_batch(batch).await.unwrap().all_ok(),
            "a send batch had failed entries"
        );
    }
}

/// Wait until the queue has nothing visible, in flight or delayed.
pub async fn wait_drained(queue: &dyn MessageQueue, limit: Duration) {
    let deadline = Instant::now() + limit;
    loop {
        let a = queue.attributes().await.unwrap();
        if a.approximate_visible + a.approximate_in_flight + a.approximate_delayed == 0 {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "queue not drained within {limit:?}: {} visible, {} in flight",
            a.approximate_visible,
            a.approximate_in_flight
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Everything on a queue, in receive order, until three long polls in a row come back empty.
/// With `delete` each batch is deleted; otherwise it stays invisible for five minutes (long
/// enough not to be received twice).
pub async fn receive_all(queue: &dyn MessageQueue, delete: bool) -> Vec<ReceivedMessage> {
    let mut out = Vec::new();
    let mut empty = 0;
    while empty < 3 {
        let got = queue
            .receive(10, Duration::from_secs(1), Some(Duration::from_secs(300)))
            .await
            .unwrap();
        if got.is_empty() {
            empty += 1;
            continue;
        }
        empty = 0;
        // A DLQ a test reads is scanned here: the drop scan no longer sees what it holds.
        assert_no_synthetic_phi_in_failures(&format!("failure attributes on {}", queue.id()), &got);
        if delete {
            let receipts: Vec<String> = got.iter().map(|m| m.receipt.clone()).collect();
            assert!(queue.delete_batch(&receipts).await.unwrap().all_ok());
        }
        out.extend(got);
    }
    out
}
