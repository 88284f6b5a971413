//! The worker under load: a separate process of the real binary, its log in a file, its CPU
//! time read from `/proc/<pid>/stat`, its request counts from its final `run finished` line.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::Context;
use tokio::process::{Child, Command};

/// `name` next to this executable (`target/<profile>/loadtest` → `target/<profile>/hl7-ingest`),
/// or one directory up when this is a test binary in `target/<profile>/deps`.
pub fn locate(name: &str) -> anyhow::Result<PathBuf> {
    let exe = std::env::current_exe().context("locating the loadtest executable")?;
    let mut dir = exe.parent();
    while let Some(d) = dir {
        let candidate = d.join(name);
        if candidate.is_file() {
            return Ok(candidate);
        }
        if d.file_name().is_some_and(|n| n == "target") {
            break;
        }
        dir = d.parent();
    }
    anyhow::bail!(
        "no {name} binary next to {} (build it: `cargo build --release -p fleet --bin {name}`), or pass --worker-bin",
        exe.display()
    )
}

/// A running worker process (a tokio child: waiting for it never blocks the runtime). Dropping
/// it kills the process if it is still running.
pub struct WorkerProcess {
    child: Child,
    pub log: PathBuf,
    pub started: Instant,
}

impl WorkerProcess {
    /// Start `bin` with `env` on top of a copy of this process's environment without its
    /// `FLEET_*` variables (an AWS configuration chain is inherited on purpose).
    pub async fn start(bin: &Path, env: &[(String, String)], log: PathBuf) -> anyhow::Result<Self> {
        let file = tokio::fs::File::create(&log)
            .await
            .with_context(|| format!("creating the worker log {}", log.display()))?
            .into_std()
            .await;
        let mut cmd = Command::new(bin);
        cmd.stdin(Stdio::null())
            .stdout(file.try_clone()?)
            .stderr(file)
            .kill_on_drop(true);
        for (k, _) in std::env::vars() {
            if k.starts_with("FLEET_") {
                cmd.env_remove(&k);
            }
        }
        for (k, v) in env {
            cmd.env(k, v);
        }
        let child = cmd
            .spawn()
            .with_context(|| format!("starting {}", bin.display()))?;
        Ok(Self {
            child,
            log,
            started: Instant::now(),
        })
    }

    /// The process id; `None` once the exit has been collected.
    pub fn pid(&self) -> Option<u32> {
        self.child.id()
    }

    /// Whether the process has exited (and with what).
    pub fn exited(&mut self) -> Option<std::process::ExitStatus> {
        self.child.try_wait().ok().flatten()
    }

    /// User + system CPU time the process has used so far.
    pub async fn cpu_time(&self) -> anyhow::Result<Duration> {
        let pid = self.pid().context("the worker has exited")?;
        let stat = tokio::fs::read_to_string(format!("/proc/{pid}/stat"))
            .await
            .context("reading the worker's /proc stat")?;
        let ticks = parse_cpu_ticks(&stat).context("parsing the worker's /proc stat")?;
        Ok(Duration::from_secs_f64(
            ticks as f64 / clock_ticks_per_sec().await,
        ))
    }

    /// `kill -9`: no drain, no flush, exactly like a crashed host or an OOM kill.
    pub async fn kill9(&mut self) -> anyhow::Result<std::process::ExitStatus> {
        self.child
            .start_kill()
            .context("sending SIGKILL to the worker")?;
        Ok(self.child.wait().await?)
    }

    /// SIGTERM, then wait up to `limit` for the exit (killed after it).
    pub async fn terminate(&mut self, limit: Duration) -> anyhow::Result<std::process::ExitStatus> {
        let pid = self.pid().context("the worker has already exited")?;
        let ok = Command::new("kill")
            .arg("-TERM")
            .arg(pid.to_string())
            .status()
            .await
            .context("running kill")?
            .success();
        anyhow::ensure!(ok, "kill -TERM {pid} failed");
        match tokio::time::timeout(limit, self.child.wait()).await {
            Ok(status) => Ok(status?),
            Err(_) => {
                let _ = self.child.kill().await;
                anyhow::bail!("the worker did not exit within {limit:?} of SIGTERM")
            }
        }
    }

    pub async fn log_text(&self) -> String {
        tokio::fs::read_to_string(&self.log)
            .await
            .unwrap_or_default()
    }
}

/// utime + stime (fields 14 and 15) of a `/proc/<pid>/stat` line. The command name (field 2)
/// is parenthesised and may hold spaces, so fields are counted after its closing parenthesis.
pub fn parse_cpu_ticks(stat: &str) -> Option<u64> {
    let rest = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // rest starts at field 3 (state): utime is field 14 → index 11, stime → index 12.
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some(utime + stime)
}

/// `sysconf(_SC_CLK_TCK)` without unsafe code: `getconf CLK_TCK`, else Linux's usual 100.
async fn clock_ticks_per_sec() -> f64 {
    Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .await
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse::<f64>().ok())
        .filter(|n| *n > 0.0)
        .unwrap_or(100.0)
}

/// What the worker's final `run finished` JSON line says: counts and requests by API.
#[derive(Debug, Clone, Default)]
pub struct FinalLine {
    pub received: u64,
    pub succeeded: u64,
    pub dead_lettered: u64,
    pub requests: BTreeMap<String, u64>,
}

impl FinalLine {
    /// The counts of several worker processes (restarts) added up.
    pub fn sum(lines: &[FinalLine]) -> FinalLine {
        let mut out = FinalLine::default();
        for l in lines {
            out.received += l.received;
            out.succeeded += l.succeeded;
            out.dead_lettered += l.dead_lettered;
            for (k, v) in &l.requests {
                *out.requests.entry(k.clone()).or_default() += v;
            }
        }
        out
    }
}

pub fn final_line(log: &str) -> Option<FinalLine> {
    let line = log.lines().rev().find(|l| l.contains("run finished"))?;
    let v: serde_json::Value = serde_json::from_str(line).ok()?;
    let fields = v.get("fields").unwrap_or(&v);
    let num = |k: &str| {
        fields
            .get(k)
            .and_then(serde_json::Value::as_u64)
            .unwrap_or(0)
    };
    let requests = serde_json::from_str(fields.get("requests")?.as_str()?).ok()?;
    Some(FinalLine {
        received: num("received"),
        succeeded: num("succeeded"),
        dead_lettered: num("dead_lettered"),
        requests,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_ticks_are_read_after_a_command_name_with_spaces() {
        let stat = "4242 (hl7 ingest) S 1 4242 4242 0 -1 4194304 2571 0 0 0 731 129 0 0 20 0 5 0 \
                    8812 1187840000 4350 18446744073709551615";
        assert_eq!(parse_cpu_ticks(stat), Some(731 + 129));
        assert_eq!(parse_cpu_ticks("garbage"), None);
    }

    #[test]
    fn this_process_has_a_readable_stat() {
        let stat = std::fs::read_to_string("/proc/self/stat").unwrap();
        assert!(parse_cpu_ticks(&stat).is_some());
    }

    #[test]
    fn the_final_line_is_parsed_as_the_worker_writes_it() {
        let log = concat!(
            r#"{"level":"INFO","fields":{"message":"started"}}"#,
            "\n",
            r#"{"timestamp":"t","level":"INFO","fields":{"message":"run finished","received":12,"succeeded":10,"dead_lettered":2,"requests":"{\"sqs.ReceiveMessage\":3,\"dynamodb.TransactWriteItems\":10}"},"target":"hl7_ingest"}"#,
            "\n"
        );
        let f = final_line(log).unwrap();
        assert_eq!((f.received, f.succeeded, f.dead_lettered), (12, 10, 2));
        assert_eq!(f.requests["sqs.ReceiveMessage"], 3);
        assert_eq!(f.requests.values().sum::<u64>(), 13);
        assert!(final_line("no such line").is_none());
    }
}
