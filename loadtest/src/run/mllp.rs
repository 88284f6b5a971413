//! An `[mllp]` run: the real `mllp-gateway` binary routes `ADT^*` to the run's source queue
//! and the load tool sends the stream to it over MLLP (`crate::mllp`), each connection one
//! message at a time, resending what got no AA. With `ingest`, hl7-ingest consumes the queue
//! alongside and the run is accounted as any other (events, records), plus "every AA'd
//! message has its event"; without it, the load tool reads the queue back and checks every
//! AA'd message is on it. Kills and SIGTERMs with `faults.target = "gateway"` hit the gateway,
//! which restarts on the same port; the senders reconnect and resend.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use fleet_core::ports::MessageQueue;

use super::collect::{self, Collectors, Seen};
use super::disrupt::Disruptions;
use super::provision::{self, Provisioned};
use super::workers::{Running, Workers};
use super::{Options, Tally, account, now_us, watch};
use crate::chaos;
use crate::generate::{self, Message};
use crate::mllp::{self as sender, Progress, SendPlan, SendSummary};
use crate::report::{self, MllpReport, QueueCheck, Report, Target};
use crate::scenario::{FaultTarget, Mllp, Scenario};
use crate::stack::Stack;
use crate::worker::{self, FinalLine};

/// The gateway's environment: the stack's backend, a listener on `listen`, `ADT^*` routed to
/// the source queue, JSON logs.
fn gateway_env(stack: &Stack, s: &Scenario, m: &Mllp, listen: SocketAddr) -> Vec<(String, String)> {
    let mut env = stack.worker_env.clone();
    env.extend([
        (fleet_core::env::MLLP_LISTEN.into(), listen.to_string()),
        (
            fleet_core::env::MLLP_ROUTES.into(),
            format!("ADT^*={}", stack.source),
        ),
        (
            fleet_core::env::DRAIN_DEADLINE_SECS.into(),
            s.worker_drain_deadline_s.to_string(),
        ),
        (fleet_core::env::LOG.into(), "info".into()),
        (fleet_core::env::LOG_FORMAT.into(), "json".into()),
    ]);
    if let Some(ms) = m.batch_linger_ms {
        env.push((fleet_core::env::MLLP_BATCH_LINGER_MS.into(), ms.to_string()));
    }
    env
}

async fn free_port() -> anyhow::Result<SocketAddr> {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .context("finding a free port for the gateway")?;
    Ok(l.local_addr()?)
}

/// What the gateway processes did.
struct GatewayEnd {
    cpu: Duration,
    /// The first process's CPU when it reported ready.
    startup_cpu: Duration,
    exit: String,
    fin: FinalLine,
    finals: usize,
    logs: Vec<std::path::PathBuf>,
    disruptions: Vec<chaos::Disruption>,
}

/// Start the gateway, send everything (disrupting the gateway as planned), stop it.
async fn send_through_gateway(
    scenario: &Scenario,
    m: &Mllp,
    opts: &Options,
    prov: &Provisioned,
    messages: &Arc<Vec<Message>>,
    progress: &Arc<Progress>,
) -> anyhow::Result<(i64, GatewayEnd)> {
    let listen = free_port().await?;
    let gateway_bin = opts
        .gateway_bin
        .clone()
        .context("an [mllp] scenario needs the mllp-gateway binary (--gateway-bin)")?;
    let mut gateways = Workers::named(
        "gateway",
        gateway_bin,
        gateway_env(&prov.stack, scenario, m, listen),
        opts.work_dir.clone(),
    );
    let mut first = gateways.start().await?;
    first.wait_ready(Duration::from_secs(60)).await?;
    // What the start-up cost (configuration, the SDK, the queue's attributes), so the CPU per
    // message can leave it out.
    let startup_cpu = first.cpu_time().await.unwrap_or_default();
    let mut gateway = Running::new(first, &mut gateways);
    let start_us = now_us();
    let plan = SendPlan {
        to: listen.to_string(),
        connections: m.connections,
        rate_per_s: scenario.rate_per_s,
        ack_timeout: Duration::from_secs(m.ack_timeout_s),
        give_up_after: Duration::from_secs(scenario.idle_timeout_s),
    };
    let sending = tokio::spawn(sender::send_all(plan, messages.clone(), progress.clone()));
    let mut disruptions = Disruptions::new(scenario, start_us, FaultTarget::Gateway);
    let acked = || progress.acked();
    loop {
        disruptions.progress(acked());
        if let Some(kind) = disruptions.due() {
            disruptions
                .disrupt(kind, acked(), &mut gateway, None, &acked)
                .await?;
            continue;
        }
        if sending.is_finished() && !disruptions.left() {
            break;
        }
        if let Some(status) = gateway.worker.exited() {
            sending.abort();
            anyhow::bail!(
                "the gateway exited on its own ({status}); its log: {}",
                gateway.worker.log.display()
            );
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    sending.await??;
    let disruptions = disruptions.finish();
    // CPU just before the SIGTERM, as for the worker; then its final line.
    gateway.cpu += gateway.worker.cpu_time().await.unwrap_or_default();
    let drain = Duration::from_secs(scenario.worker_drain_deadline_s + 15);
    let exit = gateway.worker.terminate(drain).await?;
    let log = gateway.worker.log_text().await;
    let last = worker::final_line(&log);
    if last.as_ref().is_none_or(|f| f.requests.is_empty()) {
        eprintln!(
            "loadtest: the gateway's log has no `run finished` line with request counts ({})",
            gateway.worker.log.display()
        );
    }
    gateway.finals.extend(last);
    let (cpu, fin, finals) = (
        gateway.cpu,
        FinalLine::sum(&gateway.finals),
        gateway.finals.len(),
    );
    drop(gateway);
    let end = GatewayEnd {
        cpu,
        startup_cpu,
        exit: exit.to_string(),
        fin,
        finals,
        logs: gateways.logs.clone(),
        disruptions,
    };
    Ok((start_us, end))
}

/// Run an `[mllp]` scenario.
pub(super) async fn run(scenario: &Scenario, m: &Mllp, opts: &Options) -> anyhow::Result<Report> {
    let messages = Arc::new(generate::stream(scenario));
    let started_at_unix_ms = now_us() / 1000;
    let mut prov = provision::provision(scenario, opts).await?;
    let by_control = collect::index_by_control(&messages);
    let progress = Arc::new(Progress::new(messages.len()));

    if !m.ingest {
        let (start_us, gw) =
            send_through_gateway(scenario, m, opts, &prov, &messages, &progress).await?;
        let summary = SendSummary::of(&progress, m.connections, start_us);
        let acked: Vec<bool> = fates_acked(&progress);
        let (check, left) = read_back(&prov.source, &messages, &by_control, &acked).await?;
        let send_us = first_sends(&progress);
        let seen = Seen::default();
        let outcome = account::Outcome {
            messages: &messages,
            by_control: &by_control,
            send_us: &send_us,
            seen: &seen,
        };
        let mut report = account::assemble(
            scenario,
            opts,
            &outcome,
            account::Assembly {
                started_at_unix_ms,
                start_us,
                cpu: Duration::ZERO,
                exit: "no worker (mllp.ingest = false)".into(),
                left_on_source: left,
                fin: FinalLine::default(),
            },
        )
        .await;
        // Without a consumer, a message's outcome is being on the queue after its AA.
        report.lost = messages.len() as u64 - check.acked_found;
        report.duration_s = summary.duration_s;
        report.throughput_per_s = summary.messages_per_s;
        report.timeline = report::timeline(&SendSummary::points(&progress, start_us));
        report.log_scan = Some(account::scan_logs(&gw.logs).await);
        let acked_but_lost = check.acked_missing;
        report.mllp = Some(mllp_report(m, summary, &gw, Some(check), acked_but_lost));
        finish_targets(&mut report, scenario);
        return Ok(report);
    }

    // hl7-ingest alongside: started and ready before the gateway takes the first message.
    let collectors = Collectors::spawn(
        &prov.tap,
        &prov.dlq,
        Arc::new(collect::index_by_body(&messages)),
    );
    let mut worker = prov.workers.start().await?;
    worker.wait_ready(Duration::from_secs(60)).await?;
    let (start_us, gw) =
        send_through_gateway(scenario, m, opts, &prov, &messages, &progress).await?;
    let summary = SendSummary::of(&progress, m.connections, start_us);
    let send_us = first_sends(&progress);
    let tally = Tally {
        seen: &collectors.seen,
        messages: &messages,
        by_control: &by_control,
    };
    let running = Running::new(worker, &mut prov.workers);
    let watched = watch::watch(scenario, &prov.source, &tally, running, start_us).await?;
    // Resent copies of messages already processed are on the queue too: wait until it is
    // empty, so their republished events are counted and nothing is left behind.
    let ended = watch::end(scenario, &prov.source, watched, None, true).await?;
    let seen = collectors.finish().await?;
    let records = chaos::check_records(
        prov.stack.backend.records(&prov.stack.table),
        &messages,
        &seen.ids_by_control,
    )
    .await?;
    let outcome = account::Outcome {
        messages: &messages,
        by_control: &by_control,
        send_us: &send_us,
        seen: &seen,
    };
    let mut report = account::assemble(
        scenario,
        opts,
        &outcome,
        account::Assembly {
            started_at_unix_ms,
            start_us,
            cpu: ended.cpu,
            exit: ended.exit,
            left_on_source: ended.left_on_source,
            fin: ended.fin,
        },
    )
    .await;
    let disruptions = match scenario.faults.target {
        FaultTarget::Gateway => gw.disruptions.clone(),
        FaultTarget::Worker => ended.disruptions,
    };
    account::add_reliability(
        &mut report,
        scenario,
        &prov,
        disruptions,
        records,
        &seen,
        &gw.logs,
    )
    .await;
    let acked = fates_acked(&progress);
    let acked_but_lost = messages
        .iter()
        .zip(&acked)
        .filter(|(msg, a)| **a && !seen.events.contains_key(&msg.control_id))
        .count() as u64;
    report.mllp = Some(mllp_report(m, summary, &gw, None, acked_but_lost));
    finish_targets(&mut report, scenario);
    Ok(report)
}

fn fates_acked(progress: &Progress) -> Vec<bool> {
    progress
        .fates
        .lock()
        .unwrap()
        .iter()
        .map(|f| f.acked_us > 0)
        .collect()
}

/// Each message's first write on an MLLP connection: the enqueue time of the end-to-end
/// latency (the gateway queues it a few ms later).
fn first_sends(progress: &Progress) -> Vec<i64> {
    progress
        .fates
        .lock()
        .unwrap()
        .iter()
        .map(|f| f.first_send_us)
        .collect()
}

fn mllp_report(
    m: &Mllp,
    send: SendSummary,
    gw: &GatewayEnd,
    queue_check: Option<QueueCheck>,
    acked_but_lost: u64,
) -> MllpReport {
    let per = send.acked.max(1) as f64;
    let mut rpm: std::collections::BTreeMap<String, f64> = gw
        .fin
        .requests
        .iter()
        .map(|(k, v)| (k.clone(), *v as f64 / per))
        .collect();
    let total: u64 = gw.fin.requests.values().sum();
    let sqs: u64 = gw
        .fin
        .requests
        .iter()
        .filter(|(k, _)| k.starts_with("sqs."))
        .map(|(_, v)| v)
        .sum();
    rpm.insert("total".into(), total as f64 / per);
    rpm.insert("sqs".into(), sqs as f64 / per);
    let partial = gw.finals < gw.logs.len();
    let batches = gw
        .fin
        .requests
        .get("sqs.SendMessageBatch")
        .copied()
        .unwrap_or(0);
    MllpReport {
        batch_linger_ms: m.batch_linger_ms,
        ingest: m.ingest,
        gateway_starts: u32::try_from(gw.logs.len()).unwrap_or(u32::MAX),
        gateway_exit: gw.exit.clone(),
        gateway_cpu_ms_total: gw.cpu.as_secs_f64() * 1e3,
        gateway_cpu_ms_startup: gw.startup_cpu.as_secs_f64() * 1e3,
        gateway_cpu_us_per_message: gw.cpu.saturating_sub(gw.startup_cpu).as_secs_f64() * 1e6 / per,
        gateway_requests: gw.fin.requests.clone(),
        gateway_requests_per_message: rpm,
        // Only when every gateway process reported its requests.
        entries_per_batch: (batches > 0 && !partial).then(|| send.acked as f64 / batches as f64),
        requests_partial: partial,
        queue_check,
        acked_but_lost,
        send,
    }
}

/// The targets once the MLLP figures are in: the worker's own (lost recomputed) and the
/// group-commit target, which a clean run of 50 connections or more speaks to.
fn finish_targets(report: &mut Report, scenario: &Scenario) {
    // The worker's performance targets are not measured under their conditions here (its
    // messages come through the gateway, one connection's pace at a time): lost only.
    report.targets = account::targets(report, scenario);
    report.targets.retain(|t| t.what == "lost messages");
    let Some(m) = &report.mllp else { return };
    let clean = scenario.faults.disruptions() == 0 && scenario.faults.proxy_share == 0.0;
    let sqs = m.sqs_per_message();
    report.targets.push(Target {
        what: "SQS requests per message, 50 MLLP connections",
        target: "<= 0.15".into(),
        measured: format!("{sqs:.3}"),
        met: (clean && m.send.connections >= 50).then_some(sqs <= 0.15),
    });
    report.targets.push(Target {
        what: "ACKed messages lost",
        target: "0".into(),
        measured: m.acked_but_lost.to_string(),
        met: Some(m.acked_but_lost == 0),
    });
}

/// Read the source queue back (nothing consumes it in this mode): every AA'd message must be
/// on it; copies of a message and messages that never got AA are counted. Returns the check
/// and what was left on the queue after it (visible + in flight is everything received, so
/// it is the visible count only).
async fn read_back(
    source: &Arc<dyn MessageQueue>,
    messages: &[Message],
    by_control: &HashMap<&str, usize>,
    acked: &[bool],
) -> anyhow::Result<(QueueCheck, u64)> {
    let mut copies: Vec<u64> = vec![0; messages.len()];
    let mut check = QueueCheck::default();
    let mut empty = 0;
    while empty < 2 {
        let got = source
            .receive(10, Duration::from_secs(1), Some(Duration::from_secs(3600)))
            .await?;
        if got.is_empty() {
            if source.attributes().await?.approximate_visible == 0 {
                empty += 1;
            }
            continue;
        }
        empty = 0;
        for msg in &got {
            check.received += 1;
            match sender::control_id(&msg.body).and_then(|id| by_control.get(id)) {
                Some(&i) => copies[i] += 1,
                None => check.unknown += 1,
            }
        }
    }
    for (i, n) in copies.iter().enumerate() {
        match (acked[i], *n) {
            (true, 0) => check.acked_missing += 1,
            (true, _) => check.acked_found += 1,
            (false, 0) => {}
            (false, _) => check.not_acked_found += 1,
        }
        check.duplicates += n.saturating_sub(1);
    }
    let left = source.attributes().await?.approximate_visible;
    Ok((check, left))
}
