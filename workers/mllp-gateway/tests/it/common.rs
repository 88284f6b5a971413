//! What the tests share: a local backend with a queue, the gateway run in-process on it, a raw
//! MLLP connection, and the test's HL7 messages (synthetic patients only: the PHI scans know
//! their names).

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use clap::Parser;
use fleet_core::ports::{
    BatchResult, EventBus, MessageQueue, Notifier, ObjectStore, OutgoingMessage, QueueAttributes,
    ReceivedMessage, RecordStore,
};
use fleet_core::{Backend, ErrorKind, PortError};
use fleet_local::{LocalBackend, QueueSpec, QueuedMessage};
use mllp_gateway::ack::{ParsedAck, parse_ack};
use mllp_gateway::frame::{FrameDecoder, FrameEvent, encode};
use mllp_gateway::{GatewayConfig, RunReport};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// The queue every test routes ADT to.
pub const QUEUE: &str = "hl7-inbound";

/// How long a test waits for an answer that must come (the gateway answers in milliseconds).
pub const ANSWER: Duration = Duration::from_secs(5);

#[derive(Debug, Parser)]
struct Cli {
    #[command(flatten)]
    c: GatewayConfig,
}

/// The gateway's configuration from flags, with unencrypted queues allowed and, unless the
/// flags give routes, ADT routed to [`QUEUE`].
pub fn config(flags: &[&str]) -> GatewayConfig {
    let route = format!("ADT^*={QUEUE}");
    let mut args = vec!["gw", "--allow-unencrypted"];
    if !flags.contains(&"--route") {
        args.extend(["--route", &route]);
    }
    args.extend(flags);
    Cli::try_parse_from(args).expect("test flags parse").c
}

/// A local backend in a temporary directory, with [`QUEUE`].
pub struct Local {
    pub dir: tempfile::TempDir,
    pub backend: LocalBackend,
}

impl Local {
    pub fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let backend = LocalBackend::open(
            &dir.path().join("fleet.sqlite"),
            &dir.path().join("objects"),
        )
        .unwrap();
        backend.create_queue(QUEUE, QueueSpec::default()).unwrap();
        Self { dir, backend }
    }

    /// What is on [`QUEUE`] now.
    pub fn queued(&self) -> Vec<QueuedMessage> {
        self.backend.queue_messages_snapshot(QUEUE).unwrap()
    }
}

/// A gateway running in-process on port 0.
pub struct Running {
    pub addr: SocketAddr,
    pub shutdown: CancellationToken,
    pub task: JoinHandle<anyhow::Result<RunReport>>,
}

impl Running {
    pub async fn start(config: GatewayConfig, backend: Arc<dyn Backend>) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let shutdown = CancellationToken::new();
        let task = tokio::spawn(mllp_gateway::run_on(
            config,
            backend,
            listener,
            shutdown.clone(),
        ));
        Self {
            addr,
            shutdown,
            task,
        }
    }

    pub async fn connect(&self) -> Conn {
        Conn::connect(self.addr).await
    }

    /// Drain (as SIGTERM does) and return the run's report.
    pub async fn stop(self) -> RunReport {
        self.shutdown.cancel();
        tokio::time::timeout(Duration::from_secs(10), self.task)
            .await
            .expect("the gateway stops")
            .expect("the gateway task")
            .expect("the gateway run")
    }
}

/// A raw MLLP connection: bytes out exactly as the test writes them, ACK frames in.
pub struct Conn {
    pub stream: TcpStream,
    decoder: FrameDecoder,
}

impl Conn {
    pub async fn connect(addr: SocketAddr) -> Self {
        let stream = TcpStream::connect(addr).await.unwrap();
        stream.set_nodelay(true).unwrap();
        Self {
            stream,
            decoder: FrameDecoder::new(1024 * 1024),
        }
    }

    pub async fn write(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).await.unwrap();
        self.stream.flush().await.unwrap();
    }

    /// The next frame within `wait`: Ok(Some(bytes)), Ok(None) when the connection closed,
    /// Err when nothing came in time.
    pub async fn frame(&mut self, wait: Duration) -> Result<Option<Vec<u8>>, ()> {
        let mut buf = [0u8; 4096];
        let read = async {
            loop {
                while let Some(event) = self.decoder.next_event() {
                    if let FrameEvent::Frame(bytes) = event {
                        return Some(bytes);
                    }
                }
                match self.stream.read(&mut buf).await {
                    Ok(0) | Err(_) => return None,
                    Ok(n) => self.decoder.push(&buf[..n]),
                }
            }
        };
        tokio::time::timeout(wait, read).await.map_err(|_| ())
    }

    /// The next ACK (fails the test when none comes).
    pub async fn ack(&mut self) -> ParsedAck {
        let frame = self
            .frame(ANSWER)
            .await
            .expect("an ACK in time")
            .expect("an ACK before the connection closed");
        parse_ack(&frame).unwrap_or_else(|| {
            panic!(
                "not an ACK: {:?}",
                String::from_utf8_lossy(&frame).replace('\r', "\n")
            )
        })
    }

    /// Send one framed message and read its ACK.
    pub async fn exchange(&mut self, message: &[u8]) -> ParsedAck {
        self.write(&encode(message)).await;
        self.ack().await
    }

    /// Whether the gateway closed the connection within `wait` (EOF or reset, no frame).
    pub async fn closed_within(&mut self, wait: Duration) -> bool {
        matches!(self.frame(wait).await, Ok(None))
    }
}

/// An original-mode ADT^A01 from `facility` with control id `control` and a synthetic patient
/// (whose name and MRN the PHI scans look for).
pub fn adt(control: &str, facility: &str) -> String {
    format!(
        "MSH|^~\\&|EPICADT|{facility}|FLEET|FLEET|20260315101500-0500||ADT^A01^ADT_A01|{control}|P|2.5.1\r\
         EVN|A01|20260315101500\r\
         PID|1||MRN4821736^^^{facility}^MR||Quillfeather^Rosalind^Q||19530714|F\r\
         PV1|1|I|4EAST^412^B^{facility}"
    )
}

/// The Prometheus value of `name` with every label in `labels` (summed over other labels), 0
/// when absent.
pub fn metric(text: &str, name: &str, labels: &[(&str, &str)]) -> f64 {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter(|l| l.starts_with(name) && l[name.len()..].starts_with(['{', ' ']))
        .filter(|l| {
            labels
                .iter()
                .all(|(k, v)| l.contains(&format!("{k}=\"{v}\"")))
        })
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// A backend over a [`LocalBackend`] whose queues record each SendMessageBatch (its entry
/// count) and fail every send while `failing` is set (a retryable outage, as SQS's 5xx).
#[derive(Clone)]
pub struct Recording {
    pub inner: LocalBackend,
    pub failing: Arc<AtomicBool>,
    pub batches: Arc<Mutex<Vec<usize>>>,
}

impl Recording {
    pub fn new(inner: LocalBackend) -> Self {
        Self {
            inner,
            failing: Arc::default(),
            batches: Arc::default(),
        }
    }

    pub fn batches(&self) -> Vec<usize> {
        self.batches.lock().unwrap().clone()
    }
}

struct RecordingQueue {
    inner: Arc<dyn MessageQueue>,
    failing: Arc<AtomicBool>,
    batches: Arc<Mutex<Vec<usize>>>,
}

#[async_trait]
impl MessageQueue for RecordingQueue {
    fn id(&self) -> &str {
        self.inner.id()
    }
    async fn receive(
        &self,
        max: u32,
        wait: Duration,
        visibility: Option<Duration>,
    ) -> Result<Vec<ReceivedMessage>, PortError> {
        self.inner.receive(max, wait, visibility).await
    }
    async fn delete_batch(&self, receipts: &[String]) -> Result<BatchResult, PortError> {
        self.inner.delete_batch(receipts).await
    }
    async fn change_visibility_batch(
        &self,
        entries: &[(String, Duration)],
    ) -> Result<BatchResult, PortError> {
        self.inner.change_visibility_batch(entries).await
    }
    async fn send(&self, message: OutgoingMessage) -> Result<String, PortError> {
        self.inner.send(message).await
    }
    async fn send_batch(&self, messages: &[OutgoingMessage]) -> Result<BatchResult, PortError> {
        if self.failing.load(Ordering::SeqCst) {
            return Err(PortError::new(
                ErrorKind::Transient,
                "SendMessageBatch",
                "injected outage",
            ));
        }
        self.batches.lock().unwrap().push(messages.len());
        self.inner.send_batch(messages).await
    }
    async fn attributes(&self) -> Result<QueueAttributes, PortError> {
        self.inner.attributes().await
    }
}

#[async_trait]
impl Backend for Recording {
    fn kind(&self) -> &'static str {
        "local"
    }
    async fn queue(&self, name_or_url: &str) -> Result<Arc<dyn MessageQueue>, PortError> {
        Ok(Arc::new(RecordingQueue {
            inner: self.inner.queue(name_or_url).await?,
            failing: self.failing.clone(),
            batches: self.batches.clone(),
        }))
    }
    async fn queue_by_arn(&self, arn: &str) -> Result<Arc<dyn MessageQueue>, PortError> {
        self.inner.queue_by_arn(arn).await
    }
    fn event_bus(&self, name: &str) -> Arc<dyn EventBus> {
        self.inner.event_bus(name)
    }
    fn records(&self, table: &str) -> Arc<dyn RecordStore> {
        self.inner.records(table)
    }
    fn objects(&self, bucket: &str) -> Arc<dyn ObjectStore> {
        self.inner.objects(bucket)
    }
    fn notifier(&self) -> Arc<dyn Notifier> {
        self.inner.notifier()
    }
    async fn list_queues(&self, prefix: &str) -> Result<Vec<String>, PortError> {
        Backend::list_queues(&self.inner, prefix).await
    }
    async fn caller_identity(&self) -> Result<String, PortError> {
        self.inner.caller_identity().await
    }
    fn unencrypted_override(&self) -> Result<(), String> {
        self.inner.unencrypted_override()
    }
}
