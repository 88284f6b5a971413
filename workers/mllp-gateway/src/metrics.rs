//! The gateway's series, on the fleet's one Prometheus recorder (`/metrics` of the health
//! endpoint), every one labelled `worker="mllp-gateway"`. Label values are the gateway's own
//! words or HL7 codes checked against a shape (a message type is three capitals, else
//! `invalid`): nothing from a message body reaches a label.

use std::time::Duration;

use fleet_runtime::telemetry::metrics::with_recorder;

use crate::WORKER;

pub const CONNECTIONS: &str = "fleet_mllp_connections_total";
pub const CONNECTIONS_OPEN: &str = "fleet_mllp_connections_open";
pub const MESSAGES: &str = "fleet_mllp_messages_total";
pub const ACKS: &str = "fleet_mllp_acks_total";
pub const FRAME_ERRORS: &str = "fleet_mllp_frame_errors_total";
pub const DISCARDED_BYTES: &str = "fleet_mllp_discarded_bytes_total";
pub const ENQUEUE_SECONDS: &str = "fleet_mllp_enqueue_seconds";

/// Why a connection ended or was refused, for [`CONNECTIONS`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConnectionOutcome {
    Accepted,
    RefusedLimit,
    RefusedSource,
    TlsFailed,
}

impl ConnectionOutcome {
    fn as_str(self) -> &'static str {
        match self {
            Self::Accepted => "accepted",
            Self::RefusedLimit => "refused_limit",
            Self::RefusedSource => "refused_source",
            Self::TlsFailed => "tls_failed",
        }
    }
}

/// A framing problem, for [`FRAME_ERRORS`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FrameError {
    TooLarge,
    FrameTimeout,
    IdleTimeout,
    /// The peer closed mid-frame.
    Truncated,
    AckWriteFailed,
}

impl FrameError {
    fn as_str(self) -> &'static str {
        match self {
            Self::TooLarge => "too_large",
            Self::FrameTimeout => "frame_timeout",
            Self::IdleTimeout => "idle_timeout",
            Self::Truncated => "truncated",
            Self::AckWriteFailed => "ack_write_failed",
        }
    }
}

/// Describes the series (once per process is enough; repeating is harmless).
pub fn describe() {
    with_recorder(|| {
        metrics::describe_counter!(
            CONNECTIONS,
            "MLLP connections by outcome (accepted, refused_limit, refused_source, tls_failed)."
        );
        metrics::describe_gauge!(CONNECTIONS_OPEN, "MLLP connections open now.");
        metrics::describe_counter!(
            MESSAGES,
            "HL7 messages received, by MSH-9.1 type and the queue routed to (none when refused)."
        );
        metrics::describe_counter!(
            ACKS,
            "Acknowledgements sent, by MSA-1 code (none when MSH-15 asked for no ACK)."
        );
        metrics::describe_counter!(FRAME_ERRORS, "MLLP framing problems by kind.");
        metrics::describe_counter!(
            DISCARDED_BYTES,
            "Bytes received outside any MLLP frame, discarded."
        );
        metrics::describe_histogram!(
            ENQUEUE_SECONDS,
            metrics::Unit::Seconds,
            "Seconds from a message's end block until its queue accepted it."
        );
    });
}

pub fn connection(outcome: ConnectionOutcome) {
    with_recorder(|| {
        metrics::counter!(CONNECTIONS, "worker" => WORKER, "outcome" => outcome.as_str())
            .increment(1);
    });
}

pub fn connections_open(delta: f64) {
    with_recorder(|| metrics::gauge!(CONNECTIONS_OPEN, "worker" => WORKER).increment(delta));
}

/// A message type as a label: three capitals or digits, else `invalid`.
pub fn type_label(message_type: &str) -> String {
    if message_type.len() == 3
        && message_type
            .bytes()
            .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit())
    {
        message_type.to_string()
    } else {
        "invalid".to_string()
    }
}

pub fn message(message_type: &str, route: &str) {
    let ty = type_label(message_type);
    let route = route.to_string();
    with_recorder(|| {
        metrics::counter!(MESSAGES, "worker" => WORKER, "type" => ty, "route" => route)
            .increment(1);
    });
}

pub fn ack(code: &'static str) {
    with_recorder(|| metrics::counter!(ACKS, "worker" => WORKER, "code" => code).increment(1));
}

pub fn frame_error(kind: FrameError) {
    with_recorder(|| {
        metrics::counter!(FRAME_ERRORS, "worker" => WORKER, "kind" => kind.as_str()).increment(1);
    });
}

pub fn discarded(bytes: usize) {
    with_recorder(|| {
        metrics::counter!(DISCARDED_BYTES, "worker" => WORKER).increment(bytes as u64);
    });
}

pub fn enqueued(took: Duration) {
    with_recorder(|| {
        metrics::histogram!(ENQUEUE_SECONDS, "worker" => WORKER).record(took.as_secs_f64());
    });
}
