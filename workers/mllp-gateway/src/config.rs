//! The gateway's settings: its own flags (listener, routes, TLS, limits) and the shared
//! [`RuntimeArgs`] group, of which a producer uses the drain deadline, `--allow-unencrypted`,
//! the health address and the metrics format; the consumer-only options set are named in a
//! start-up log line ([`GatewayConfig::unused_runtime_options`]) rather than silently ignored
//! (they cannot be refused: in `fleet run` one environment configures every worker).

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use clap::{Args, Subcommand};
use fleet_core::env;
use fleet_runtime::{RuntimeArgs, RuntimeDefaults};

use crate::route::Route;

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the gateway (the default).
    Run,
    /// Send the HL7 messages in FILEs to an MLLP listener, one at a time as an interface
    /// engine does, and print each acknowledgement: MSA-1, MSA-2 and, when present, the ERR
    /// code and text. Exits 0 when every message got AA or CA.
    Send(crate::client::SendArgs),
}

/// The runtime defaults a producer has (only the drain deadline is used).
pub const RUNTIME_DEFAULTS: RuntimeDefaults = RuntimeDefaults {
    drain_deadline: Duration::from_secs(20),
    ..RuntimeDefaults::STANDARD
};

/// The FIFO MessageGroupId of a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum FifoGroup {
    /// The sending facility (MSH-4.1): the feed's order is kept.
    #[default]
    Facility,
    /// The sending facility and a hash of the patient identifier (PID-3.1): one patient's
    /// messages stay in order, different patients go in parallel.
    FacilityPatient,
}

/// `CN=FACILITY|FACILITY...`: a client certificate whose subject common name is CN may send as
/// these sending facilities (MSH-4.1) only.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientFacilities {
    pub common_name: String,
    pub facilities: Vec<String>,
}

impl FromStr for ClientFacilities {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let (cn, facilities) = s
            .rsplit_once('=')
            .ok_or("expected CN=FACILITY|FACILITY...")?;
        let common_name = cn.trim().to_string();
        let facilities: Vec<String> = facilities
            .split('|')
            .map(|f| f.trim().to_string())
            .filter(|f| !f.is_empty())
            .collect();
        if common_name.is_empty() || facilities.is_empty() {
            return Err("expected CN=FACILITY|FACILITY... with a name and a facility".into());
        }
        Ok(Self {
            common_name,
            facilities,
        })
    }
}

/// A source address or CIDR block allowed to connect.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SourceNet(pub ipnet::IpNet);

impl FromStr for SourceNet {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let s = s.trim();
        if let Ok(net) = s.parse::<ipnet::IpNet>() {
            return Ok(Self(net.trunc()));
        }
        s.parse::<IpAddr>()
            .map(|ip| Self(ipnet::IpNet::from(ip)))
            .map_err(|_| format!("{s:?} is not an IP address or CIDR block"))
    }
}

impl SourceNet {
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
            v4 => v4,
        };
        self.0.contains(&ip)
    }
}

/// The gateway's settings. Units are in the names.
#[derive(Debug, Clone, Args)]
pub struct GatewayConfig {
    /// Address to listen on. A non-loopback address needs TLS (--tls-cert) or --plain-tcp.
    #[arg(long, env = env::MLLP_LISTEN, default_value = "127.0.0.1:2575")]
    pub listen: SocketAddr,
    /// TYPE^TRIGGER=QUEUE (queue name or URL): where messages of that MSH-9 go; `*` matches any
    /// type or trigger, `ADT=q` means `ADT^*=q`. Repeatable; the first match wins. A message
    /// no route matches is refused (AR) and not queued.
    #[arg(long = "route", env = env::MLLP_ROUTES, value_delimiter = ',',
          default_value = "ADT^*=hl7-inbound", value_name = "TYPE^TRIGGER=QUEUE")]
    pub routes: Vec<Route>,
    /// PEM certificate chain: serve TLS (rustls) instead of plain TCP. A file, or the PEM text
    /// itself (a value starting with `-----BEGIN`, as ECS injects a secret); the same for the
    /// key and the client CA.
    #[arg(long, env = env::MLLP_TLS_CERT, requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// PEM private key of --tls-cert.
    #[arg(long, env = env::MLLP_TLS_KEY, requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// PEM CA bundle: clients must present a certificate that chains to it (refused at the
    /// handshake otherwise).
    #[arg(long, env = env::MLLP_TLS_CLIENT_CA, requires = "tls_cert")]
    pub tls_client_ca: Option<PathBuf>,
    /// CN=FACILITY|FACILITY...: a client certificate with that subject common name may send only
    /// as those sending facilities (MSH-4.1); others are refused with AR. With any mapping, a
    /// client whose name is not mapped may send nothing. Repeatable.
    #[arg(long = "client-facilities", env = env::MLLP_CLIENT_FACILITIES, value_delimiter = ',',
          requires = "tls_client_ca", value_name = "CN=FACILITY|...")]
    pub client_facilities: Vec<ClientFacilities>,
    /// Source addresses or CIDR blocks allowed to connect. Repeatable; unset: any.
    #[arg(long = "allow-source", env = env::MLLP_ALLOW_SOURCES, value_delimiter = ',',
          value_name = "ADDR|CIDR")]
    pub allow_sources: Vec<SourceNet>,
    /// Serve plain TCP on a non-loopback address (a network that encrypts below TCP, e.g. a
    /// VPN or a TLS-terminating load balancer).
    #[arg(long, env = env::MLLP_PLAIN_TCP, action = clap::ArgAction::SetTrue,
          value_parser = clap::builder::BoolishValueParser::new())]
    pub plain_tcp: bool,
    /// Most connections open at once; more are closed at accept and counted.
    #[arg(long, env = env::MLLP_MAX_CONNECTIONS, default_value_t = 256,
          value_parser = clap::value_parser!(u64).range(1..=100_000))]
    pub max_connections: u64,
    /// Largest HL7 message accepted, in bytes; a larger frame is answered AE without being
    /// held whole.
    #[arg(long, env = env::MLLP_MAX_MESSAGE_BYTES, default_value_t = 1024 * 1024,
          value_parser = clap::value_parser!(u64).range(64..=16 * 1024 * 1024))]
    pub max_message_bytes: u64,
    /// Seconds a message may take from its start block to its end block (slow senders are
    /// disconnected).
    #[arg(long, default_value_t = 30)]
    pub frame_timeout_secs: u64,
    /// Seconds a connection may stay idle between messages.
    #[arg(long, default_value_t = 300)]
    pub idle_timeout_secs: u64,
    /// Seconds to write an ACK before the connection is dropped.
    #[arg(long, default_value_t = 10)]
    pub ack_write_timeout_secs: u64,
    /// Seconds a message may wait to be queued (retries included) before it is answered AR
    /// (the sender resends).
    #[arg(long, default_value_t = 15)]
    pub enqueue_timeout_secs: u64,
    /// Milliseconds a partial SendMessageBatch waits for messages from other connections.
    #[arg(long, env = env::MLLP_BATCH_LINGER_MS, default_value_t = 5,
          value_parser = clap::value_parser!(u64).range(0..=1_000))]
    pub batch_linger_ms: u64,
    /// Messages waiting to be queued, across connections, before connections stop being read
    /// (backpressure).
    #[arg(long, default_value_t = 1_000)]
    pub max_pending: usize,
    /// SendMessageBatch calls in flight at once per queue.
    #[arg(long, default_value_t = 16)]
    pub max_batches_in_flight: usize,
    /// Bucket for messages too large for their queue (SQS Extended Client claim check, SSE-KMS
    /// on aws). Unset: such messages are refused (AE). hl7-ingest must list it in
    /// --claim-check-buckets.
    #[arg(long, env = env::MLLP_CLAIM_CHECK_BUCKET)]
    pub claim_check_bucket: Option<String>,
    /// FIFO queues: what the MessageGroupId is.
    #[arg(long, env = env::MLLP_FIFO_GROUP, value_enum, default_value_t = FifoGroup::Facility)]
    pub fifo_group: FifoGroup,
    /// Processing ids (MSH-11.1, HL7 table 0103) accepted; others are refused with AR.
    #[arg(long, value_delimiter = ',', default_value = "P,D,T")]
    pub processing_ids: Vec<String>,
    #[command(flatten)]
    pub runtime: RuntimeArgs,
}

impl GatewayConfig {
    pub fn frame_timeout(&self) -> Duration {
        Duration::from_secs(self.frame_timeout_secs.max(1))
    }
    pub fn idle_timeout(&self) -> Duration {
        Duration::from_secs(self.idle_timeout_secs.max(1))
    }
    pub fn ack_write_timeout(&self) -> Duration {
        Duration::from_secs(self.ack_write_timeout_secs.max(1))
    }
    pub fn enqueue_timeout(&self) -> Duration {
        Duration::from_secs(self.enqueue_timeout_secs.max(1))
    }
    pub fn batch_linger(&self) -> Duration {
        Duration::from_millis(self.batch_linger_ms)
    }
    pub fn drain_deadline(&self) -> Duration {
        self.runtime
            .drain_deadline_secs
            .map_or(RUNTIME_DEFAULTS.drain_deadline, Duration::from_secs)
    }

    /// The consumer-only runtime options that are set (by flag or environment): the gateway
    /// does not use them, and says so at start.
    pub fn unused_runtime_options(&self) -> Vec<&'static str> {
        let r = &self.runtime;
        [
            ("--concurrency", r.concurrency.is_some()),
            ("--max-attempts", r.max_attempts.is_some()),
            ("--wait-time-secs", r.wait_time_secs.is_some()),
            ("--publish-linger-ms", r.publish_linger_ms.is_some()),
            ("--delete-linger-ms", r.delete_linger_ms.is_some()),
            ("--claim-check-buckets", !r.claim_check_buckets.is_empty()),
        ]
        .into_iter()
        .filter_map(|(flag, set)| set.then_some(flag))
        .collect()
    }

    /// A non-loopback listener without TLS needs --plain-tcp; a route is needed.
    pub fn check(&self) -> anyhow::Result<()> {
        if self.tls_cert.is_none() && !self.listen.ip().is_loopback() && !self.plain_tcp {
            anyhow::bail!(
                "refusing to serve plain TCP on {}: give --tls-cert/--tls-key ({}/{}) or, where the network encrypts below MLLP, --plain-tcp ({})",
                self.listen,
                env::MLLP_TLS_CERT,
                env::MLLP_TLS_KEY,
                env::MLLP_PLAIN_TCP
            );
        }
        if self.routes.is_empty() {
            anyhow::bail!("no route configured (--route TYPE^TRIGGER=QUEUE)");
        }
        Ok(())
    }

    /// Whether `ip` may connect.
    pub fn source_allowed(&self, ip: IpAddr) -> bool {
        self.allow_sources.is_empty() || self.allow_sources.iter().any(|n| n.contains(ip))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Debug, Parser)]
    struct Cli {
        #[command(flatten)]
        c: GatewayConfig,
    }

    fn parse(args: &[&str]) -> Result<GatewayConfig, clap::Error> {
        Cli::try_parse_from(std::iter::once("gw").chain(args.iter().copied())).map(|c| c.c)
    }

    #[test]
    fn defaults_listen_on_loopback_and_route_adt_to_hl7_inbound() {
        let c = parse(&[]).unwrap();
        assert_eq!(c.listen, "127.0.0.1:2575".parse().unwrap());
        assert_eq!(c.routes.len(), 1);
        assert_eq!(c.routes[0].queue, "hl7-inbound");
        c.check().unwrap();
    }

    #[test]
    fn plain_tcp_on_a_public_address_is_refused_unless_asked_for() {
        let c = parse(&["--listen", "0.0.0.0:2575"]).unwrap();
        let e = c.check().unwrap_err().to_string();
        assert!(e.contains("--tls-cert") && e.contains("--plain-tcp"), "{e}");
        parse(&["--listen", "0.0.0.0:2575", "--plain-tcp"])
            .unwrap()
            .check()
            .unwrap();
    }

    #[test]
    fn consumer_only_runtime_flags_are_named_as_unused() {
        let c = parse(&["--concurrency", "4", "--wait-time-secs", "1"]).unwrap();
        assert_eq!(
            c.unused_runtime_options(),
            ["--concurrency", "--wait-time-secs"]
        );
        let c = parse(&["--drain-deadline-secs", "5", "--allow-unencrypted"]).unwrap();
        assert!(c.unused_runtime_options().is_empty());
        assert_eq!(c.drain_deadline(), Duration::from_secs(5));
    }

    #[test]
    fn client_facilities_and_sources_parse_and_match() {
        let c = parse(&[
            "--tls-cert",
            "c.pem",
            "--tls-key",
            "k.pem",
            "--tls-client-ca",
            "ca.pem",
            "--client-facilities",
            "north-feed=NORTH|NORTH-ER",
            "--allow-source",
            "10.1.0.0/16,192.168.4.7",
        ])
        .unwrap();
        assert_eq!(
            c.client_facilities,
            [ClientFacilities {
                common_name: "north-feed".into(),
                facilities: vec!["NORTH".into(), "NORTH-ER".into()]
            }]
        );
        assert!(c.source_allowed("10.1.200.3".parse().unwrap()));
        assert!(c.source_allowed("::ffff:192.168.4.7".parse().unwrap()));
        assert!(!c.source_allowed("192.168.4.8".parse().unwrap()));
        assert!(parse(&["--allow-source", "not-an-ip"]).is_err());
        assert!(
            "=NORTH".parse::<ClientFacilities>().is_err()
                && "cn=".parse::<ClientFacilities>().is_err()
        );
    }
}
