//! The listener and the connections: accept (source allow-list, connection limit, TLS
//! handshake), then per connection read frames, decide each message's fate, and write its ACK
//! only after its queue accepted it. One message in flight per connection: the next frame is
//! not read until the previous one is answered (which is also the backpressure: a connection
//! whose message waits for the queue is not read).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;

use fleet_core::trace_context;
use fleet_runtime::otel;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::Instrument as _;

use crate::ack::{self, AckContext, ErrorCondition, InboundHeader, Verdict};
use crate::config::GatewayConfig;
use crate::enqueue::Enqueuer;
use crate::frame::{FrameDecoder, FrameEvent};
use crate::metrics::{self as m, ConnectionOutcome, FrameError};
use crate::payload::{self, ClaimCheckTarget, MessageKeys, PayloadError, QueueShape};
use crate::route::{NoRoute, Router};

/// A routed queue: its batcher and how it takes messages.
#[derive(Debug, Clone)]
pub struct QueueTarget {
    pub enqueuer: Enqueuer,
    pub shape: QueueShape,
}

/// What the gateway counted, for the run report.
#[derive(Debug, Default)]
pub struct Counters {
    pub connections: AtomicU64,
    pub refused_connections: AtomicU64,
    pub messages: AtomicU64,
    pub queued: AtomicU64,
    pub content_errors: AtomicU64,
    pub rejected: AtomicU64,
    pub frame_errors: AtomicU64,
}

/// Everything a connection needs, shared.
pub struct Gateway {
    pub config: GatewayConfig,
    pub router: Router,
    pub queues: HashMap<String, QueueTarget>,
    pub claim_check: Option<ClaimCheckTarget>,
    /// Client certificate common name → the sending facilities it may send as. Empty: no
    /// mapping (any facility).
    pub facilities: HashMap<String, Vec<String>>,
    pub tls: Option<tokio_rustls::TlsAcceptor>,
    pub counters: Counters,
    ack_ids: AtomicU64,
    /// Distinguishes this process's ACK control ids from another instance's.
    ack_prefix: String,
}

impl std::fmt::Debug for Gateway {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Gateway")
            .field("listen", &self.config.listen)
            .field("queues", &self.queues.keys().collect::<Vec<_>>())
            .finish()
    }
}

/// Who is on the other end of a connection (safe to log).
#[derive(Debug, Clone)]
pub struct Peer {
    pub addr: SocketAddr,
    /// The client certificate's subject common name, with TLS client authentication.
    pub common_name: Option<String>,
}

impl Gateway {
    pub fn new(
        config: GatewayConfig,
        queues: HashMap<String, QueueTarget>,
        claim_check: Option<ClaimCheckTarget>,
        tls: Option<tokio_rustls::TlsAcceptor>,
    ) -> Self {
        let facilities = config
            .client_facilities
            .iter()
            .map(|c| (c.common_name.clone(), c.facilities.clone()))
            .collect();
        let router = Router::new(config.routes.clone());
        let prefix = uuid::Uuid::new_v4().simple().to_string();
        Self {
            config,
            router,
            queues,
            claim_check,
            facilities,
            tls,
            counters: Counters::default(),
            ack_ids: AtomicU64::new(0),
            ack_prefix: prefix[..6].to_ascii_uppercase(),
        }
    }

    /// The ACK's own MSH-10: 6 characters of this process and a counter, within ST(20).
    fn next_ack_id(&self) -> String {
        let n = self.ack_ids.fetch_add(1, Relaxed);
        format!("GW{}{n:012}", self.ack_prefix)
    }

    /// Decide `bytes`' fate (queueing it when it is acceptable) and return the ACK to send.
    pub async fn handle(&self, bytes: &[u8], peer: &Peer) -> Option<Vec<u8>> {
        self.counters.messages.fetch_add(1, Relaxed);
        let (header, verdict) = match ack::parse_header(bytes) {
            Err(e) => {
                m::message("", "none");
                let condition = e.error_code();
                // Answered in kind when the MSH is readable at all (MSH-9 or MSH-10 missing).
                (
                    ack::parse_header_lenient(bytes).ok(),
                    Verdict::ContentError {
                        condition,
                        text: e.to_string(),
                    },
                )
            }
            Ok(h) => {
                let verdict = self.decide(bytes, &h, peer).await;
                (Some(h), verdict)
            }
        };
        self.answer(header.as_ref(), &verdict)
    }

    /// The answer to a frame over the size limit: AE, from its MSH when the prefix holds one.
    pub fn too_large(&self, prefix: &[u8], total: usize) -> Option<Vec<u8>> {
        self.counters.messages.fetch_add(1, Relaxed);
        m::frame_error(FrameError::TooLarge);
        let header = ack::parse_header_lenient(prefix).ok();
        m::message(
            &header
                .as_ref()
                .map(|h| h.message_type())
                .unwrap_or_default(),
            "none",
        );
        let verdict = Verdict::ContentError {
            condition: ErrorCondition::ApplicationInternalError,
            text: format!(
                "message of at least {total} bytes exceeds the gateway's limit of {} bytes",
                self.config.max_message_bytes
            ),
        };
        self.answer(header.as_ref(), &verdict)
    }

    fn answer(&self, header: Option<&InboundHeader>, verdict: &Verdict) -> Option<Vec<u8>> {
        match verdict {
            Verdict::Accepted => self.counters.queued.fetch_add(1, Relaxed),
            Verdict::ContentError { .. } => self.counters.content_errors.fetch_add(1, Relaxed),
            Verdict::Rejected { .. } => self.counters.rejected.fetch_add(1, Relaxed),
        };
        let id = self.next_ack_id();
        let stamp = timestamp();
        let ack = ack::build_ack(
            header,
            verdict,
            &AckContext {
                control_id: &id,
                timestamp: &stamp,
            },
        );
        let code = ack
            .as_deref()
            .and_then(ack::parse_ack)
            .map_or("none", |a| ack_code_label(&a.code));
        m::ack(code);
        ack
    }

    async fn decide(&self, bytes: &[u8], h: &InboundHeader, peer: &Peer) -> Verdict {
        let ty = h.message_type();
        let rejected = |condition, text: &str| Verdict::Rejected {
            condition,
            text: text.to_string(),
        };
        if !fleet_hl7::charset_supported(h.charset()) {
            m::message(&ty, "none");
            return Verdict::ContentError {
                condition: ErrorCondition::TableValueNotFound,
                text: "MSH-18 names a character set the fleet cannot read".into(),
            };
        }
        if !version_supported(&h.version()) {
            m::message(&ty, "none");
            return rejected(
                ErrorCondition::UnsupportedVersionId,
                "MSH-12 version is not supported (2.1 to 2.9)",
            );
        }
        let pid = h.processing_id();
        if !self
            .config
            .processing_ids
            .iter()
            .any(|p| p.eq_ignore_ascii_case(&pid))
        {
            m::message(&ty, "none");
            return rejected(
                ErrorCondition::UnsupportedProcessingId,
                "MSH-11 processing id is not accepted by this gateway",
            );
        }
        if !self.facilities.is_empty() {
            let allowed = peer
                .common_name
                .as_ref()
                .and_then(|cn| self.facilities.get(cn));
            let facility = h.sending_facility_id();
            if !allowed.is_some_and(|a| a.contains(&facility)) {
                m::message(&ty, "none");
                tracing::warn!(
                    peer = %peer.addr,
                    client = peer.common_name.as_deref().unwrap_or("-"),
                    "refused a message: its sending facility (MSH-4) is not one this client certificate may send as"
                );
                return rejected(
                    ErrorCondition::ApplicationInternalError,
                    "sending facility not permitted for this client certificate",
                );
            }
        }
        let queue = match self.router.route(&ty, &h.trigger_event()) {
            Ok(q) => q,
            Err(NoRoute::Type) => {
                m::message(&ty, "none");
                return rejected(
                    ErrorCondition::UnsupportedMessageType,
                    "no route for this message type",
                );
            }
            Err(NoRoute::Trigger) => {
                m::message(&ty, "none");
                return rejected(
                    ErrorCondition::UnsupportedEventCode,
                    "no route for this trigger event",
                );
            }
        };
        m::message(&ty, queue);
        let Some(target) = self.queues.get(queue) else {
            return rejected(
                ErrorCondition::ApplicationInternalError,
                "route names a queue the gateway did not open",
            );
        };
        let facility = h.sending_facility_id();
        let patient = match target.shape.fifo_group {
            crate::config::FifoGroup::FacilityPatient if target.shape.fifo => {
                InboundHeader::patient_id(bytes)
            }
            _ => None,
        };
        let keys = MessageKeys {
            facility: &facility,
            control_id: h.control_id(),
            patient: patient.as_deref(),
        };
        let started = Instant::now();
        let deadline = started + self.config.enqueue_timeout();
        let message = match payload::prepare(bytes, keys, &target.shape, self.claim_check.as_ref())
            .await
        {
            Ok(msg) => msg,
            Err(PayloadError::TooLarge { size, limit }) => {
                return Verdict::ContentError {
                    condition: ErrorCondition::ApplicationInternalError,
                    text: format!(
                        "message needs {size} bytes on the queue, above its limit of {limit}"
                    ),
                };
            }
            Err(PayloadError::Offload(e)) => {
                tracing::warn!(queue, error = %e.kind.as_str(), "claim-check store failed; answering AR");
                return rejected(
                    ErrorCondition::ApplicationInternalError,
                    "message not queued (claim-check store unavailable): resend later",
                );
            }
        };
        // The PRODUCER span `send <queue>`; its context goes with the message (`traceparent`,
        // and on AWS `AWSTraceHeader`), so the consumer's span is its child.
        let mut message = message;
        let send = otel::producer_span(otel::SYSTEM_SQS, queue);
        if otel::enabled() {
            trace_context::set_traceparent(&mut message.attributes, &otel::span_context(&send));
        }
        let size = payload::message_size(&message);
        match target
            .enqueuer
            .enqueue(message, size, deadline)
            .instrument(send)
            .await
        {
            Ok(()) => {
                m::enqueued(started.elapsed());
                Verdict::Accepted
            }
            Err(e) => {
                tracing::warn!(queue, peer = %peer.addr, error = %e, "message not queued; answering AR");
                rejected(
                    ErrorCondition::ApplicationInternalError,
                    "message not queued (queue unavailable): resend later",
                )
            }
        }
    }

    /// Serve one connection until it closes, times out or the gateway drains.
    pub async fn connection<S>(&self, mut stream: S, peer: Peer, shutdown: CancellationToken)
    where
        S: AsyncRead + AsyncWrite + Unpin,
    {
        let mut decoder =
            FrameDecoder::new(usize::try_from(self.config.max_message_bytes).unwrap_or(usize::MAX));
        let mut buf = vec![0u8; 16 * 1024];
        let mut frame_started: Option<Instant> = None;
        loop {
            while let Some(event) = decoder.next_event() {
                if !matches!(event, FrameEvent::Discarded(_)) {
                    // A frame ended: the next one (even if it started in the same read) is
                    // timed from its own start block. A restart inside a frame (a start block
                    // that drops it) keeps the clock: restarting must not extend a slow frame.
                    frame_started = None;
                }
                let ack = match event {
                    FrameEvent::Discarded(n) => {
                        m::discarded(n);
                        continue;
                    }
                    FrameEvent::Frame(bytes) => {
                        self.handle(&bytes, &peer).instrument(frame_span()).await
                    }
                    FrameEvent::TooLarge { prefix, total } => {
                        self.counters.frame_errors.fetch_add(1, Relaxed);
                        self.too_large(&prefix, total)
                    }
                };
                if let Some(ack) = ack {
                    let framed = crate::frame::encode(&ack);
                    let write = async {
                        stream.write_all(&framed).await?;
                        stream.flush().await
                    };
                    match tokio::time::timeout(self.config.ack_write_timeout(), write).await {
                        Ok(Ok(())) => {}
                        _ => {
                            m::frame_error(FrameError::AckWriteFailed);
                            tracing::info!(peer = %peer.addr, "could not write an ACK; closing the connection");
                            return;
                        }
                    }
                }
            }
            if decoder.in_frame() {
                frame_started.get_or_insert_with(Instant::now);
            } else {
                frame_started = None;
            }
            // Draining: a connection between messages closes now; one in the middle of a
            // message gets to finish it (bounded by the frame timeout and the drain deadline).
            if shutdown.is_cancelled() && !decoder.in_frame() {
                break;
            }
            let deadline = match frame_started {
                Some(t) => t + self.config.frame_timeout(),
                None => Instant::now() + self.config.idle_timeout(),
            };
            let in_frame = decoder.in_frame();
            let read = tokio::select! {
                r = tokio::time::timeout_at(deadline, stream.read(&mut buf)) => r,
                () = shutdown.cancelled(), if !in_frame => break,
            };
            match read {
                Err(_) => {
                    let kind = if in_frame {
                        FrameError::FrameTimeout
                    } else {
                        FrameError::IdleTimeout
                    };
                    if in_frame {
                        self.counters.frame_errors.fetch_add(1, Relaxed);
                    }
                    m::frame_error(kind);
                    tracing::info!(peer = %peer.addr, reason = if in_frame { "frame timeout" } else { "idle timeout" }, "closing the connection");
                    break;
                }
                Ok(Ok(0)) => {
                    if in_frame {
                        self.counters.frame_errors.fetch_add(1, Relaxed);
                        m::frame_error(FrameError::Truncated);
                    }
                    break;
                }
                Ok(Ok(n)) => decoder.push(&buf[..n]),
                Ok(Err(e)) => {
                    tracing::info!(peer = %peer.addr, error = %e.kind(), "connection read failed");
                    break;
                }
            }
        }
        // What the peer sent that never became a frame (junk at the end, an unfinished frame)
        // is counted as discarded like junk between frames.
        if let Some(FrameEvent::Discarded(n)) = decoder.finish() {
            m::discarded(n);
        }
        let _ = tokio::time::timeout(Duration::from_secs(1), stream.shutdown()).await;
    }
}

/// MSA-1 as a metric label (only the six codes; anything else is `other`).
fn ack_code_label(code: &str) -> &'static str {
    match code {
        "AA" => "AA",
        "AE" => "AE",
        "AR" => "AR",
        "CA" => "CA",
        "CE" => "CE",
        "CR" => "CR",
        _ => "other",
    }
}

/// Versions 2.1 to 2.9 (with any sub-version: 2.3.1, 2.5.1, 2.8.2).
pub fn version_supported(v: &str) -> bool {
    let mut parts = v.trim().split('.');
    let major = parts.next();
    let minor = parts.next().and_then(|m| m.parse::<u8>().ok());
    major == Some("2")
        && minor.is_some_and(|m| (1..=9).contains(&m))
        && parts.all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()))
}

/// Now as an HL7 DTM in UTC: YYYYMMDDHHMMSS+0000.
fn timestamp() -> String {
    let now = time::OffsetDateTime::now_utc();
    format!(
        "{:04}{:02}{:02}{:02}{:02}{:02}+0000",
        now.year(),
        u8::from(now.month()),
        now.day(),
        now.hour(),
        now.minute(),
        now.second()
    )
}

/// Accept connections until `shutdown`, then wait for the open ones (each finishing the
/// message it is in) until `drain_deadline`; what is still open then is dropped unanswered
/// (no ACK was sent, so the sender resends: nothing ACKed is lost).
pub async fn serve(
    gateway: Arc<Gateway>,
    listener: TcpListener,
    shutdown: CancellationToken,
    drain_deadline: Duration,
) {
    let slots = Arc::new(Semaphore::new(
        usize::try_from(gateway.config.max_connections).unwrap_or(usize::MAX),
    ));
    let mut connections = tokio::task::JoinSet::new();
    loop {
        let accepted = tokio::select! {
            a = listener.accept() => a,
            () = shutdown.cancelled() => break,
        };
        while connections.try_join_next().is_some() {}
        let (tcp, addr) = match accepted {
            Ok(a) => a,
            Err(e) => {
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        if !gateway.config.source_allowed(addr.ip()) {
            gateway.counters.refused_connections.fetch_add(1, Relaxed);
            m::connection(ConnectionOutcome::RefusedSource);
            tracing::warn!(peer = %addr, "refused a connection: source address not allowed");
            continue;
        }
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            gateway.counters.refused_connections.fetch_add(1, Relaxed);
            m::connection(ConnectionOutcome::RefusedLimit);
            tracing::warn!(peer = %addr, max = gateway.config.max_connections, "refused a connection: at the connection limit");
            continue;
        };
        let _ = tcp.set_nodelay(true);
        let gw = gateway.clone();
        let stop = shutdown.clone();
        connections.spawn(async move {
            let _slot = slot;
            match gw.tls.clone() {
                None => {
                    accepted_connection(&gw);
                    let peer = Peer {
                        addr,
                        common_name: None,
                    };
                    gw.connection(tcp, peer, stop).await;
                }
                Some(acceptor) => {
                    let handshake =
                        tokio::time::timeout(gw.config.frame_timeout(), acceptor.accept(tcp)).await;
                    let tls = match handshake {
                        Ok(Ok(tls)) => tls,
                        Ok(Err(e)) => {
                            m::connection(ConnectionOutcome::TlsFailed);
                            tracing::warn!(peer = %addr, error = %e, "TLS handshake failed");
                            return;
                        }
                        Err(_) => {
                            m::connection(ConnectionOutcome::TlsFailed);
                            tracing::warn!(peer = %addr, "TLS handshake timed out");
                            return;
                        }
                    };
                    let common_name = tls
                        .get_ref()
                        .1
                        .peer_certificates()
                        .and_then(|c| c.first())
                        .and_then(crate::tls::common_name);
                    accepted_connection(&gw);
                    tracing::info!(peer = %addr, client = common_name.as_deref().unwrap_or("-"), "TLS client connected");
                    let peer = Peer { addr, common_name };
                    gw.connection(tls, peer, stop).await;
                }
            }
            m::connections_open(-1.0);
        });
    }
    drop(listener);
    let open = connections.len();
    if open > 0 {
        tracing::info!(
            open,
            "draining: no new connections; finishing the messages in progress"
        );
    }
    let drained = tokio::time::timeout(drain_deadline, async {
        while connections.join_next().await.is_some() {}
    })
    .await;
    if drained.is_err() {
        tracing::warn!(
            open = connections.len(),
            "drain deadline reached: closing connections with unanswered messages (their senders resend)"
        );
        connections.shutdown().await;
    }
}

fn accepted_connection(gw: &Gateway) {
    gw.counters.connections.fetch_add(1, Relaxed);
    m::connection(ConnectionOutcome::Accepted);
    m::connections_open(1.0);
}

/// The SERVER span of one inbound HL7 message: the root of its trace. Identifiers only: the
/// message's type and control id are not recorded (they come from the body).
fn frame_span() -> tracing::Span {
    tracing::info_span!(
        "mllp message",
        otel.name = "receive mllp",
        otel.kind = "server",
        messaging.system = otel::SYSTEM_MLLP,
        messaging.operation.type = "receive",
        messaging.operation.name = "receive",
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_two_one_to_two_nine_are_supported() {
        for v in ["2.1", "2.3", "2.3.1", "2.5.1", "2.8", "2.8.2", "2.9"] {
            assert!(version_supported(v), "{v}");
        }
        for v in ["", "2", "2.10", "3.0", "2.x", "2.5.", "v2.5", "2.0"] {
            assert!(!version_supported(v), "{v}");
        }
    }

    #[test]
    fn timestamps_are_hl7_dtm_in_utc() {
        let t = timestamp();
        assert_eq!(t.len(), 19, "{t}");
        assert!(t[..14].bytes().all(|b| b.is_ascii_digit()) && t.ends_with("+0000"));
    }
}
