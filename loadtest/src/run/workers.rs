//! Worker processes: each start gets a log file and a health port of its own; readiness is
//! `/health/ready` answering 200, asked over a tokio socket.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::Context;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use crate::worker::{FinalLine, WorkerProcess};

/// Starts worker processes, each with a log and a health port of its own.
pub(super) struct Workers {
    bin: PathBuf,
    env: Vec<(String, String)>,
    dir: PathBuf,
    /// The log files' name: `<stem>.log`, then `<stem>-N.log` for each restart.
    stem: &'static str,
    /// One per process started, in start order.
    pub logs: Vec<PathBuf>,
}

impl Workers {
    pub(super) fn new(bin: PathBuf, env: Vec<(String, String)>, dir: PathBuf) -> Self {
        Self::named("worker", bin, env, dir)
    }

    /// Processes of another binary (the gateway), their logs named after `stem`.
    pub(super) fn named(
        stem: &'static str,
        bin: PathBuf,
        env: Vec<(String, String)>,
        dir: PathBuf,
    ) -> Self {
        Self {
            bin,
            env,
            dir,
            stem,
            logs: Vec::new(),
        }
    }

    pub(super) async fn start(&mut self) -> anyhow::Result<Started> {
        let health = free_addr().await?;
        let mut env = self.env.clone();
        env.push((fleet_core::env::HEALTH_ADDR.into(), health.to_string()));
        let log = match self.logs.len() {
            0 => self.dir.join(format!("{}.log", self.stem)),
            n => self.dir.join(format!("{}-{n}.log", self.stem)),
        };
        self.logs.push(log.clone());
        Ok(Started {
            process: WorkerProcess::start(&self.bin, &env, log).await?,
            health,
        })
    }
}

/// A started worker and its health address.
pub(super) struct Started {
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
    /// Poll `/health/ready` until it answers 200; fail when the worker exits or `limit` passes.
    pub(super) async fn wait_ready(&mut self, limit: Duration) -> anyhow::Result<()> {
        let t = Instant::now();
        loop {
            if http_get(self.health, "/health/ready")
                .await
                .is_some_and(|r| r.starts_with("HTTP/1.1 200"))
            {
                return Ok(());
            }
            if let Some(status) = self.process.exited() {
                anyhow::bail!(
                    "the worker exited at start ({status}); its log: {}",
                    self.process.log.display()
                );
            }
            anyhow::ensure!(
                t.elapsed() < limit,
                "the worker was not ready within {limit:?}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// The worker process now running, the starter of its successors, and what the stopped ones
/// left: their CPU time and their final `run finished` lines.
pub(super) struct Running<'a> {
    pub worker: Started,
    pub workers: &'a mut Workers,
    pub cpu: Duration,
    pub finals: Vec<FinalLine>,
}

impl<'a> Running<'a> {
    pub(super) fn new(worker: Started, workers: &'a mut Workers) -> Self {
        Self {
            worker,
            workers,
            cpu: Duration::ZERO,
            finals: Vec::new(),
        }
    }

    /// Start a new process in place of the stopped one and wait until it is ready.
    pub(super) async fn restart(&mut self) -> anyhow::Result<()> {
        self.worker = self.workers.start().await?;
        self.worker.wait_ready(Duration::from_secs(60)).await
    }
}

async fn free_addr() -> anyhow::Result<SocketAddr> {
    let l = TcpListener::bind("127.0.0.1:0")
        .await
        .context("finding a free port")?;
    Ok(l.local_addr()?)
}

/// A `GET` with `Connection: close`: the whole answer, or `None` when the connection is not
/// accepted within 200 ms or the answer does not end within 2 s.
async fn http_get(addr: SocketAddr, path: &str) -> Option<String> {
    let connect = TcpStream::connect(addr);
    let mut s = tokio::time::timeout(Duration::from_millis(200), connect)
        .await
        .ok()?
        .ok()?;
    let request = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    s.write_all(request.as_bytes()).await.ok()?;
    let mut out = String::new();
    tokio::time::timeout(Duration::from_secs(2), s.read_to_string(&mut out))
        .await
        .ok()?
        .ok()?;
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn http_get_returns_the_whole_answer_and_none_without_a_listener() {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        let server = tokio::spawn(async move {
            let (mut s, _) = l.accept().await.unwrap();
            let mut buf = vec![0; 1024];
            let n = s.read(&mut buf).await.unwrap();
            let request = String::from_utf8_lossy(&buf[..n]).into_owned();
            s.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
                .await
                .unwrap();
            request
        });
        let answer = http_get(addr, "/health/ready").await.unwrap();
        assert_eq!(answer, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok");
        let request = server.await.unwrap();
        assert!(
            request.starts_with("GET /health/ready HTTP/1.1\r\n"),
            "{request}"
        );
        // The port is free again: nothing listens, so there is no answer.
        assert_eq!(http_get(addr, "/health/ready").await, None);
        assert_ne!(free_addr().await.unwrap().port(), 0);
    }
}
