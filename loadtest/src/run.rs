//! One run: provision, send, watch the tap queue and the DLQ, stop the worker, account for
//! every message. Each phase is a submodule:
//!
//! - `provision`: the stack, its queues, the fault proxy and the worker's environment;
//! - `workers`: starting worker processes, each with its own log and health port, and waiting
//!   for `/health/ready`;
//! - `send`: the stream onto the source queue, all before the worker starts or at a rate;
//! - `collect`: the tap and DLQ readers and what they saw;
//! - `disrupt`: the planned kill -9s and SIGTERMs, restarts and recovery times;
//! - `watch`: waiting until every message has an outcome, then stopping the worker;
//! - `account`: the final accounting into the report;
//! - `mllp`: an `[mllp]` scenario's run, which sends through the real gateway instead and
//!   uses the phases above around it.
//!
//! Everything here runs on the tokio runtime: processes, files, sockets and sleeps are
//! tokio's; blocking work (opening the local SQLite stack) goes to the blocking pool.

mod account;
pub(crate) use account::git_commit;
mod collect;
mod disrupt;
mod mllp;
mod provision;
mod send;
mod watch;
mod workers;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use crate::generate::{self, Message};
use crate::report::Report;
use crate::scenario::Scenario;
use crate::stack::BackendKind;

use collect::{Collectors, Seen};

/// Everything a run needs besides the scenario.
#[derive(Debug, Clone)]
pub struct Options {
    pub backend: BackendKind,
    /// aws: a protocol server (moto) URL; the worker gets test credentials for it.
    pub endpoint: Option<String>,
    pub region: String,
    pub worker_bin: PathBuf,
    /// The `mllp-gateway` binary, for `[mllp]` scenarios.
    pub gateway_bin: Option<PathBuf>,
    /// Local backend files, the worker log.
    pub work_dir: PathBuf,
    /// The command line, recorded in the report.
    pub command: String,
}

fn now_us() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_micros() as i64)
        .unwrap_or(0)
}

/// The messages of the run and what the collectors have seen of them.
struct Tally<'a> {
    seen: &'a Mutex<Seen>,
    messages: &'a [Message],
    by_control: &'a HashMap<&'a str, usize>,
}

impl Tally<'_> {
    /// Messages with an outcome so far (an event or a dead letter), each counted once.
    fn accounted(&self) -> usize {
        let mut s = self.seen.lock().unwrap();
        s.accounted(self.messages, self.by_control)
    }
}

/// Run the scenario; the report says whether every message was accounted for.
pub async fn run(scenario: &Scenario, opts: &Options) -> anyhow::Result<Report> {
    if let Some(m) = &scenario.mllp {
        // Boxed: its future is large, and only this branch needs it.
        return Box::pin(mllp::run(scenario, m, opts)).await;
    }
    let messages = Arc::new(generate::stream(scenario));
    let started_at_unix_ms = now_us() / 1000;
    let mut prov = provision::provision(scenario, opts).await?;
    let by_control = collect::index_by_control(&messages);
    let send_us: Arc<Mutex<Vec<i64>>> = Arc::new(Mutex::new(vec![0; messages.len()]));
    let collectors = Collectors::spawn(
        &prov.tap,
        &prov.dlq,
        Arc::new(collect::index_by_body(&messages)),
    );
    let tally = Tally {
        seen: &collectors.seen,
        messages: &messages,
        by_control: &by_control,
    };

    let begun = send::begin(
        scenario,
        &prov.source,
        &mut prov.workers,
        &messages,
        &send_us,
    )
    .await?;
    let start_us = begun.start_us;
    let running = workers::Running::new(begun.worker, &mut prov.workers);
    let watched = watch::watch(scenario, &prov.source, &tally, running, start_us).await?;
    let ended = watch::end(scenario, &prov.source, watched, begun.sender, false).await?;
    let seen = collectors.finish().await?;

    let records = crate::chaos::check_records(
        prov.stack.backend.records(&prov.stack.table),
        &messages,
        &seen.ids_by_control,
    )
    .await?;
    let send_us = send_us.lock().unwrap().clone();
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
    account::add_reliability(
        &mut report,
        scenario,
        &prov,
        ended.disruptions,
        records,
        &seen,
        &[],
    )
    .await;
    Ok(report)
}
