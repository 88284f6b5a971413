//! An MLLP sender: what `mllp-gateway send` runs for engineers debugging a feed, and what the
//! demo and the load tool use. One message at a time, as interface engines send: frame it,
//! wait for the ACK frame, read MSA-1, MSA-2 and ERR.

use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use crate::ack::{self, ParsedAck};
use crate::frame::{FrameDecoder, FrameEvent};

#[derive(Debug, Clone, clap::Args)]
pub struct SendArgs {
    /// The listener: HOST:PORT.
    #[arg(long, value_name = "HOST:PORT")]
    pub to: String,
    /// PEM CA bundle to verify the gateway's certificate: connect with TLS.
    #[arg(long)]
    pub tls_ca: Option<PathBuf>,
    /// PEM client certificate to present (with --tls-key).
    #[arg(long, requires_all = ["tls_key", "tls_ca"])]
    pub tls_cert: Option<PathBuf>,
    /// PEM private key of --tls-cert.
    #[arg(long, requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// The name the gateway's certificate must carry. Default: the host of --to.
    #[arg(long)]
    pub server_name: Option<String>,
    /// Seconds to wait for each ACK.
    #[arg(long, default_value_t = 30)]
    pub timeout_secs: u64,
    /// Send each file's bytes as they are, as one message (no splitting, no line-ending
    /// normalisation): for reproducing what a feed sent byte for byte.
    #[arg(long)]
    pub raw: bool,
    /// Files of HL7 messages (any line endings, MLLP framing, batch envelopes).
    #[arg(required = true)]
    pub files: Vec<PathBuf>,
}

/// A stream an MLLP client can talk over (TCP or TLS).
pub trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

/// One MLLP connection from the sender's side.
pub struct Client {
    stream: Box<dyn Io>,
    decoder: FrameDecoder,
    buf: Vec<u8>,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client").finish_non_exhaustive()
    }
}

/// How to connect.
#[derive(Debug, Clone, Default)]
pub struct ConnectOptions {
    pub tls_ca: Option<PathBuf>,
    pub identity: Option<(PathBuf, PathBuf)>,
    pub server_name: Option<String>,
}

impl Client {
    /// Connect to `to` (HOST:PORT), with TLS when `opts.tls_ca` is set.
    pub async fn connect(to: &str, opts: &ConnectOptions) -> anyhow::Result<Self> {
        let tcp = tokio::net::TcpStream::connect(to)
            .await
            .with_context(|| format!("connecting to {to}"))?;
        let _ = tcp.set_nodelay(true);
        let stream: Box<dyn Io> = match &opts.tls_ca {
            None => Box::new(tcp),
            Some(ca) => {
                let identity = opts
                    .identity
                    .as_ref()
                    .map(|(c, k)| (c.as_path(), k.as_path()));
                let config = crate::tls::client_config(ca, identity)?;
                let host = opts.server_name.clone().unwrap_or_else(|| {
                    to.rsplit_once(':')
                        .map_or(to, |(h, _)| h)
                        .trim_matches(['[', ']'])
                        .to_string()
                });
                let name = rustls_pki_types::ServerName::try_from(host.clone())
                    .with_context(|| format!("{host:?} is not a server name"))?;
                let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
                Box::new(
                    connector
                        .connect(name, tcp)
                        .await
                        .with_context(|| format!("TLS handshake with {to}"))?,
                )
            }
        };
        Ok(Self::over(stream))
    }

    /// A client over an established stream.
    pub fn over(stream: Box<dyn Io>) -> Self {
        Self {
            stream,
            decoder: FrameDecoder::new(1024 * 1024),
            buf: vec![0; 16 * 1024],
        }
    }

    /// Send one message and wait up to `timeout` for its ACK (the ACK's bytes).
    pub async fn exchange(&mut self, message: &[u8], timeout: Duration) -> anyhow::Result<Vec<u8>> {
        self.stream
            .write_all(&crate::frame::encode(message))
            .await
            .context("sending the message")?;
        self.stream.flush().await.context("sending the message")?;
        tokio::time::timeout(timeout, self.read_frame())
            .await
            .map_err(|_| anyhow::anyhow!("no ACK within {} s", timeout.as_secs()))?
    }

    async fn read_frame(&mut self) -> anyhow::Result<Vec<u8>> {
        loop {
            while let Some(event) = self.decoder.next_event() {
                match event {
                    FrameEvent::Frame(bytes) => return Ok(bytes),
                    FrameEvent::Discarded(_) => {}
                    FrameEvent::TooLarge { .. } => anyhow::bail!("the ACK frame is over 1 MiB"),
                }
            }
            let n = self
                .stream
                .read(&mut self.buf)
                .await
                .context("reading the ACK")?;
            if n == 0 {
                anyhow::bail!("the connection closed before an ACK arrived");
            }
            self.decoder.push(&self.buf[..n]);
        }
    }

    /// Close the connection (TLS close_notify included).
    pub async fn close(mut self) {
        let _ = self.stream.shutdown().await;
    }
}

/// One line of `send`'s output for a received ACK.
pub fn describe(ack: &ParsedAck) -> String {
    let mut line = format!("{} {}", ack.code, ack.control_id);
    if let Some(code) = &ack.error_code {
        line.push_str(&format!(" ERR {code}"));
    }
    if let Some(text) = &ack.error_text {
        line.push_str(&format!(" {text}"));
    }
    line
}

/// `mllp-gateway send`: every message of every file, one line each
/// (`FILE#N MSA-1 MSA-2 [ERR code text]`). Ok(true) when all got AA or CA.
pub async fn send_files(args: &SendArgs, out: &mut impl Write) -> anyhow::Result<bool> {
    let opts = ConnectOptions {
        tls_ca: args.tls_ca.clone(),
        identity: args.tls_cert.clone().zip(args.tls_key.clone()),
        server_name: args.server_name.clone(),
    };
    let timeout = Duration::from_secs(args.timeout_secs.max(1));
    let mut client = Client::connect(&args.to, &opts).await?;
    let mut all_accepted = true;
    for file in &args.files {
        let bytes = std::fs::read(file).with_context(|| format!("reading {}", file.display()))?;
        let parts = if args.raw {
            vec![Ok(bytes)]
        } else {
            fleet_hl7::split_messages(&bytes)
        };
        for (i, part) in parts.into_iter().enumerate() {
            let label = format!("{}#{}", file.display(), i + 1);
            let message = match part {
                Ok(m) => m,
                Err(e) => {
                    writeln!(out, "{label} not sent: {}", e.code)?;
                    all_accepted = false;
                    continue;
                }
            };
            let reply = client.exchange(&message, timeout).await?;
            match ack::parse_ack(&reply) {
                Some(a) => {
                    all_accepted &= matches!(a.code.as_str(), "AA" | "CA");
                    writeln!(out, "{label} {}", describe(&a))?;
                }
                None => {
                    all_accepted = false;
                    writeln!(out, "{label} reply is not an ACK ({} bytes)", reply.len())?;
                }
            }
        }
    }
    client.close().await;
    Ok(all_accepted)
}
