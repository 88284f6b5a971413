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
        Worker { child, log }
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
    /// Stops the process, then scans its whole log for synthetic patient data: every
    /// end-to-end test that runs a worker gets the scan, whatever else it checks.
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if !std::thread::panicking() {
            assert_no_synthetic_phi(&self.log.display().to_string(), &self.log_text());
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
        if delete {
            let receipts: Vec<String> = got.iter().map(|m| m.receipt.clone()).collect();
            assert!(queue.delete_batch(&receipts).await.unwrap().all_ok());
        }
        out.extend(got);
    }
    out
}
