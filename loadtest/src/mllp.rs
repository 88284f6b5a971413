//! The MLLP senders of an `[mllp]` scenario: `connections` connections to the gateway, each
//! sending one message and waiting for its ACK before the next, as interface engines do
//! (`mllp_gateway::client::Client`). A message that gets no AA (the connection failed, no ACK
//! within the timeout, or an AR/CR: "resend later") is resent until it gets one, on a new
//! connection when the old one failed. What each message got is recorded: when it was first
//! written, when its AA came and how long that exchange took.
//!
//! "AA" here is the accept acknowledgment: AA in HL7's original mode, CA in enhanced mode.
//! The generated messages carry MSH-15 = AL (`fleet_samples::hl7`), so the gateway answers CA;
//! both mean "queued".

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use mllp_gateway::client::{Client, ConnectOptions};
use serde::Serialize;

use crate::generate::Message;
use crate::report::Percentiles;

/// How the senders send.
#[derive(Debug, Clone)]
pub struct SendPlan {
    /// The gateway's HOST:PORT (the same across its restarts).
    pub to: String,
    pub connections: usize,
    /// Messages per second over all connections; 0: as fast as the ACKs come.
    pub rate_per_s: u32,
    pub ack_timeout: Duration,
    /// A message still without an AA this long after its first send is given up (counted
    /// in `given_up`, which fails the run).
    pub give_up_after: Duration,
}

/// One message's fate.
#[derive(Debug, Clone, Copy, Default)]
pub struct Fate {
    /// The first write of it (µs since the epoch); 0: never sent.
    pub first_send_us: i64,
    /// When its AA arrived (µs since the epoch); 0: none.
    pub acked_us: i64,
    /// The exchange that got the AA: write → ACK, in ms.
    pub ack_ms: f64,
    /// Exchanges started for it (1 when the first got AA).
    pub attempts: u32,
}

/// Shared between the senders and the run: each message's fate and the counts so far.
#[derive(Debug, Default)]
pub struct Progress {
    pub fates: Mutex<Vec<Fate>>,
    /// Messages with an AA so far.
    pub acked: AtomicUsize,
    counts: Mutex<Counts>,
}

#[derive(Debug, Default, Clone)]
struct Counts {
    /// Every ACK received, by MSA-1.
    codes: BTreeMap<String, u64>,
    /// Connections opened (the first of each sender and every reconnect).
    connects: u64,
    /// Connection attempts refused (the gateway down between a kill and its restart).
    connect_failures: u64,
    /// Exchanges that ended without an ACK (reset, closed, timed out).
    exchange_failures: u64,
    /// Replies that were not an ACK, or an ACK for another control id.
    bad_acks: u64,
    given_up: u64,
}

impl Progress {
    pub fn new(messages: usize) -> Self {
        Self {
            fates: Mutex::new(vec![Fate::default(); messages]),
            ..Self::default()
        }
    }

    pub fn acked(&self) -> usize {
        self.acked.load(Ordering::SeqCst)
    }

    fn count(&self, f: impl FnOnce(&mut Counts)) {
        f(&mut self.counts.lock().unwrap());
    }
}

/// What the senders did, for the report.
#[derive(Debug, Clone, Default, Serialize)]
pub struct SendSummary {
    pub connections: usize,
    /// Messages that got AA.
    pub acked: u64,
    /// Every ACK received, by MSA-1 (an AR before a resend counts here too).
    pub ack_codes: BTreeMap<String, u64>,
    /// Exchanges started: messages + resends.
    pub attempts: u64,
    /// Messages sent more than once (no AA the first time).
    pub resent_messages: u64,
    pub connects: u64,
    pub connect_failures: u64,
    pub exchange_failures: u64,
    /// Replies that were not an ACK or named another control id in MSA-2 (must be 0).
    pub bad_acks: u64,
    /// Messages still without an AA when the senders gave up (must be 0).
    pub given_up: u64,
    /// AA'd messages / (last AA − the senders' start).
    pub messages_per_s: f64,
    /// Write → ACK of each exchange that got AA.
    pub ack_latency_ms: Percentiles,
    pub duration_s: f64,
}

impl SendSummary {
    /// The summary of `progress` for senders that started at `start_us`.
    pub fn of(progress: &Progress, connections: usize, start_us: i64) -> Self {
        let fates = progress.fates.lock().unwrap().clone();
        let counts = progress.counts.lock().unwrap().clone();
        let acked: Vec<&Fate> = fates.iter().filter(|f| f.acked_us > 0).collect();
        let last = acked.iter().map(|f| f.acked_us).max().unwrap_or(start_us);
        let duration_s = ((last - start_us) as f64 / 1e6).max(1e-3);
        let mut latency: Vec<f64> = acked.iter().map(|f| f.ack_ms).collect();
        SendSummary {
            connections,
            acked: acked.len() as u64,
            ack_codes: counts.codes,
            attempts: fates.iter().map(|f| u64::from(f.attempts)).sum(),
            resent_messages: fates.iter().filter(|f| f.attempts > 1).count() as u64,
            connects: counts.connects,
            connect_failures: counts.connect_failures,
            exchange_failures: counts.exchange_failures,
            bad_acks: counts.bad_acks,
            given_up: counts.given_up,
            messages_per_s: acked.len() as f64 / duration_s,
            ack_latency_ms: Percentiles::of(&mut latency),
            duration_s,
        }
    }

    /// (seconds since `start_us`, ACK latency ms) per AA, for the timeline.
    pub fn points(progress: &Progress, start_us: i64) -> Vec<(f64, f64)> {
        progress
            .fates
            .lock()
            .unwrap()
            .iter()
            .filter(|f| f.acked_us > 0)
            .map(|f| ((f.acked_us - start_us) as f64 / 1e6, f.ack_ms))
            .collect()
    }
}

fn now_us() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_micros() as i64)
        .unwrap_or(0)
}

/// Wait between attempts: 20 ms doubling to 200 ms (a restarted gateway is found quickly).
fn backoff(failures: u32) -> Duration {
    Duration::from_millis(20u64.saturating_mul(1 << failures.min(4)))
        .min(Duration::from_millis(200))
}

/// Send every message; returns when each has an AA or was given up.
pub async fn send_all(
    plan: SendPlan,
    messages: Arc<Vec<Message>>,
    progress: Arc<Progress>,
) -> anyhow::Result<()> {
    let next = Arc::new(AtomicUsize::new(0));
    let begin = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..plan.connections.max(1) {
        let (plan, messages, progress, next) = (
            plan.clone(),
            messages.clone(),
            progress.clone(),
            next.clone(),
        );
        tasks.spawn(async move { sender(&plan, &messages, &progress, &next, begin).await });
    }
    while let Some(r) = tasks.join_next().await {
        r?;
    }
    Ok(())
}

/// One connection's loop: take the next message, send it until it gets AA.
async fn sender(
    plan: &SendPlan,
    messages: &[Message],
    progress: &Progress,
    next: &AtomicUsize,
    begin: Instant,
) {
    let mut client: Option<Client> = None;
    let mut failures = 0u32;
    // Connect before taking a message: the first exchange's latency is not the handshake's.
    connect(plan, progress, &mut client, &mut failures).await;
    loop {
        let i = next.fetch_add(1, Ordering::SeqCst);
        let Some(m) = messages.get(i) else { break };
        if plan.rate_per_s > 0 {
            let due = begin + Duration::from_secs_f64(i as f64 / f64::from(plan.rate_per_s));
            tokio::time::sleep_until(due.into()).await;
        }
        let first = Instant::now();
        loop {
            if first.elapsed() > plan.give_up_after {
                progress.count(|c| c.given_up += 1);
                break;
            }
            let Some(c) = client.as_mut() else {
                connect(plan, progress, &mut client, &mut failures).await;
                continue;
            };
            let t = now_us();
            {
                let mut f = progress.fates.lock().unwrap();
                let fate = &mut f[i];
                if fate.first_send_us == 0 {
                    fate.first_send_us = t;
                }
                fate.attempts += 1;
            }
            let sent = Instant::now();
            match c.exchange(m.body.as_bytes(), plan.ack_timeout).await {
                Ok(reply) => {
                    let ack_ms = sent.elapsed().as_secs_f64() * 1e3;
                    match mllp_gateway::ack::parse_ack(&reply) {
                        Some(a) if a.control_id == m.control_id => {
                            progress.count(|c| *c.codes.entry(a.code.clone()).or_default() += 1);
                            if matches!(a.code.as_str(), "AA" | "CA") {
                                let at = now_us();
                                let mut f = progress.fates.lock().unwrap();
                                f[i].acked_us = at;
                                f[i].ack_ms = ack_ms;
                                progress.acked.fetch_add(1, Ordering::SeqCst);
                                failures = 0;
                                break;
                            }
                            // AR / CR: not queued, resend later. AE / CE would be resent too
                            // (and shows in ack_codes): the stream holds no malformed message.
                            failures += 1;
                            tokio::time::sleep(backoff(failures)).await;
                        }
                        _ => {
                            progress.count(|c| c.bad_acks += 1);
                            client = None;
                        }
                    }
                }
                Err(_) => {
                    // Reset, closed or timed out: the message may or may not be queued; it is
                    // resent on a new connection (a duplicate is absorbed downstream).
                    progress.count(|c| c.exchange_failures += 1);
                    client = None;
                    failures += 1;
                    tokio::time::sleep(backoff(failures)).await;
                }
            }
        }
    }
    if let Some(c) = client {
        c.close().await;
    }
}

async fn connect(
    plan: &SendPlan,
    progress: &Progress,
    client: &mut Option<Client>,
    failures: &mut u32,
) {
    match Client::connect(&plan.to, &ConnectOptions::default()).await {
        Ok(c) => {
            progress.count(|c| c.connects += 1);
            *client = Some(c);
        }
        Err(_) => {
            progress.count(|c| c.connect_failures += 1);
            *failures += 1;
            tokio::time::sleep(backoff(*failures)).await;
        }
    }
}

/// MSH-10 of an HL7 body (the field separator is MSH's fourth byte).
pub fn control_id(body: &str) -> Option<&str> {
    let msh = body.split(['\r', '\n']).next()?;
    let sep = msh.strip_prefix("MSH")?.chars().next()?;
    msh.split(sep).nth(9)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_control_id_is_msh_10() {
        assert_eq!(
            control_id(
                "MSH|^~\\&|EPIC|GEN|FLEET|FLEET|20260301||ADT^A01|LT00010000001|P|2.5\rPID|1"
            ),
            Some("LT00010000001")
        );
        assert_eq!(control_id("PID|1"), None);
        assert_eq!(control_id("MSH|^~\\&|A"), None);
    }

    #[test]
    fn backoff_doubles_to_a_fifth_of_a_second() {
        assert_eq!(backoff(1), Duration::from_millis(40));
        assert_eq!(backoff(2), Duration::from_millis(80));
        assert_eq!(backoff(30), Duration::from_millis(200));
    }
}
