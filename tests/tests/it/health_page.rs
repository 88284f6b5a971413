//! The fleet's health page in a real browser (issue 20). `fleet demo` leaves a local backend
//! with dead letters (hl7-ingest's malformed ADT messages, doc-pipeline's refused document);
//! three more synthetic ADT messages wait on hl7-ingest's queue with a long delay, so the
//! queue table has numbers other than zero. The real `fleet run` then serves the page on its
//! health address, and Debian's Chromium (headless; path in `FLEET_CHROMIUM`, which
//! `scripts/test` sets from `scripts/browser path`) loads it: the DOM the browser built is read
//! back with `--dump-dom`, every number in its tables is compared with `fleet status --output
//! json` taken just before and just after (equal, so the fleet was still), no synthetic patient
//! value the run used appears in it, and `--screenshot` saves the picture the README shows
//! (`docs/health-page.png`, rewritten when `FLEET_UPDATE_SCREENSHOT=1`; otherwise it goes to
//! the target directory).

mod dom;

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use fleet_core::Backend;
use fleet_core::ports::OutgoingMessage;
use fleet_local::LocalBackend;
use fleet_samples::hl7 as samples;
use fleet_testkit::workers::{Worker, binary};
use serde_json::Value;

use dom::Element;

/// `fleet demo`'s defaults (the README's command), given explicitly: the test regenerates the
/// same messages to know the patient values the run used.
const DEMO_MESSAGES: usize = 24;
const DEMO_MALFORMED: usize = 5;
const DEMO_SEED: u64 = 2026;
/// hl7-ingest's queue and DLQ in the local stack (`workers/fleet/src/local_stack.rs`).
const HL7_QUEUE: &str = "hl7-inbound";
const HL7_DLQ: &str = "hl7-inbound-dlq";
const DOC_DLQ: &str = "doc-uploads-dlq";
/// Messages left waiting on hl7-ingest's queue (delayed for the longest SQS delay).
const DELAYED: usize = 3;
const DELAYED_SEED: u64 = 2027;
/// The screenshot's window, and where the README's copy lives.
const WINDOW: (u32, u32) = (1280, 1600);
const README_SCREENSHOT: &str = "docs/health-page.png";

fn chromium() -> PathBuf {
    match fleet_core::env::get(fleet_core::env::CHROMIUM) {
        Some(path) => PathBuf::from(path),
        None => panic!(
            "{} is not set. The health page's test loads the page in Debian's chromium: run it \
             with `scripts/test`, or `scripts/browser install` and `export {}=$(scripts/browser \
             path)`.",
            fleet_core::env::CHROMIUM,
            fleet_core::env::CHROMIUM
        ),
    }
}

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the tests crate is in the repository")
        .to_path_buf()
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free loopback port")
        .port()
}

/// Run headless Chromium on `url` with `args` (its own profile directory under `scratch`),
/// within 90 s; returns its stdout.
async fn browse(browser: &Path, scratch: &Path, args: &[String], url: &str) -> String {
    let profile = scratch.join(format!("chromium-profile-{}", free_port()));
    let mut cmd = tokio::process::Command::new(browser);
    cmd.args([
        "--headless",
        // The test runs as root on CI; Chromium's sandbox refuses root.
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--no-first-run",
        "--hide-scrollbars",
    ])
    .arg(format!("--user-data-dir={}", profile.display()))
    .args(args)
    .arg(url)
    .kill_on_drop(true);
    let out = tokio::time::timeout(Duration::from_secs(90), cmd.output())
        .await
        .expect("chromium did not finish within 90 s")
        .expect("run chromium");
    assert!(
        out.status.success(),
        "chromium exited {}: {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("the DOM is UTF-8")
}

/// The DOM the browser built from the page, serialised.
async fn dump_dom(browser: &Path, scratch: &Path, url: &str) -> String {
    let dom = browse(browser, scratch, &["--dump-dom".into()], url).await;
    assert!(dom.contains("<html"), "chromium dumped no document: {dom}");
    dom
}

/// The real `fleet` binary, with no FLEET_ or AWS_ variable of the test's environment.
fn fleet_command() -> Command {
    let mut cmd = Command::new(binary("fleet"));
    for (k, _) in std::env::vars() {
        if k.starts_with("FLEET_") || k.starts_with("AWS_") {
            cmd.env_remove(&k);
        }
    }
    cmd
}

/// `fleet status --dir DIR --output json`.
fn status_json(dir: &Path) -> Value {
    let out = fleet_command()
        .args(["status", "--dir"])
        .arg(dir)
        .args(["--output", "json"])
        .output()
        .expect("run fleet status");
    assert!(
        out.status.success(),
        "fleet status exited {}: {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("fleet status prints JSON")
}

/// The status without its clocks (ages and the sampling time grow by themselves; a last poll
/// resets with every poll): what must not change while the page is read.
fn without_clocks(v: &Value) -> Value {
    match v {
        Value::Object(map) => Value::Object(
            map.iter()
                .filter(|(k, _)| !k.ends_with("_secs") && !k.ends_with("_ms"))
                .map(|(k, v)| (k.clone(), without_clocks(v)))
                .collect(),
        ),
        Value::Array(items) => Value::Array(items.iter().map(without_clocks).collect()),
        other => other.clone(),
    }
}

/// The consumed queues' reports.
fn queue_reports(status: &Value) -> &Vec<Value> {
    status["queues"]
        .as_array()
        .unwrap_or_else(|| panic!("no queues in fleet status: {status:#}"))
}

/// When the status (or the page's sample) was read, ms since the epoch.
fn sampled_at(status: &Value) -> i64 {
    status["generated_at_unix_ms"]
        .as_i64()
        .unwrap_or_else(|| panic!("no generated_at_unix_ms in fleet status: {status:#}"))
}

/// When the page's status was sampled (`#generated-at`'s `data-unix-ms`).
fn page_sampled_at(doc: &Element) -> i64 {
    let at = doc
        .by_id("generated-at")
        .expect("the page has no #generated-at");
    at.attr("data-unix-ms")
        .and_then(|ms| ms.parse().ok())
        .unwrap_or_else(|| panic!("#generated-at has no data-unix-ms: {at:?}"))
}

/// A table cell's number (`1,234` and `1 234` read as 1234).
fn count(cell: &Element) -> u64 {
    let text: String = cell
        .text()
        .chars()
        .filter(|c| !matches!(c, ',' | ' ' | '\u{a0}'))
        .collect();
    text.parse()
        .unwrap_or_else(|_| panic!("not a count: {:?}", cell.text()))
}

/// An age cell in whole seconds; `n/a` is none.
fn age(cell: &Element) -> Option<f64> {
    let text = cell.text();
    if text == "n/a" {
        return None;
    }
    Some(
        text.parse()
            .unwrap_or_else(|_| panic!("not an age in seconds: {text:?}")),
    )
}

/// `page` (whole seconds) lies between the status read before the page's sample and the one
/// read after (an oldest message's age only grows while nothing moves), give or take the
/// page's rounding down.
fn age_between(what: &str, page: Option<f64>, before: Option<f64>, after: Option<f64>) {
    match (page, before, after) {
        (None, None, None) => {}
        (Some(p), Some(b), Some(a)) => assert!(
            b.floor() <= p && p <= a,
            "{what}: the page shows {p} s, fleet status {b} s before and {a} s after"
        ),
        _ => panic!("{what}: the page shows {page:?}, fleet status {before:?} and {after:?}"),
    }
}

/// A last poll: shown exactly when fleet status has one, and recent (polls come every second;
/// the age restarts with each, so it is not bracketed).
fn recent_poll(what: &str, page: Option<f64>, status: Option<f64>) {
    assert_eq!(
        page.is_some(),
        status.is_some(),
        "{what}: the page shows a last poll {page:?}, fleet status {status:?}"
    );
    if let Some(p) = page {
        assert!(p <= 30.0, "{what}: last poll {p} s ago");
    }
}

/// The rows of `<table id=ID>` keyed by their `key` attribute.
fn rows<'a>(doc: &'a Element, id: &str, key: &str) -> BTreeMap<String, &'a Element> {
    let table = doc
        .by_id(id)
        .unwrap_or_else(|| panic!("the page has no table#{id}"));
    assert_eq!(table.name, "table", "#{id} is a {}", table.name);
    table
        .find_all(&|e| e.name == "tr" && e.attr(key).is_some())
        .into_iter()
        .map(|tr| (tr.attr(key).expect("filtered").to_string(), tr))
        .collect()
}

fn cell<'a>(row: &'a Element, field: &str, what: &str) -> &'a Element {
    row.field(field)
        .unwrap_or_else(|| panic!("{what}: no data-field={field} cell"))
}

fn has_sparkline(e: &Element) -> bool {
    e.find(&|e| e.name == "svg" && e.has_class("spark"))
        .is_some()
}

/// The workers whose rows show them `live`.
fn live_workers(doc: &Element) -> BTreeSet<String> {
    rows(doc, "workers", "data-worker")
        .into_iter()
        .filter(|(_, row)| row.field("live").is_some_and(|c| c.text() == "live"))
        .map(|(w, _)| w)
        .collect()
}

/// Every value the page's tables show, checked against `fleet status` read before and after
/// the page's sample (equal but for the clocks).
fn check_page(doc: &Element, before: &Value, after: &Value) {
    let (reports, reports_after) = (queue_reports(before), queue_reports(after));

    // Queues.
    let queues = rows(doc, "queues", "data-queue");
    assert_eq!(
        queues.keys().cloned().collect::<BTreeSet<_>>(),
        reports
            .iter()
            .map(|r| r["queue"].as_str().expect("queue name").to_string())
            .collect::<BTreeSet<_>>(),
        "the page's queues are not fleet status's"
    );
    for (b, a) in reports.iter().zip(reports_after) {
        let name = b["queue"].as_str().expect("queue name");
        let (row, what) = (queues[name], format!("queue {name}"));
        assert_eq!(
            cell(row, "worker", &what).text(),
            b["worker"].as_str().expect("worker"),
            "{what}"
        );
        for field in ["visible", "in_flight", "delayed"] {
            assert_eq!(
                count(cell(row, field, &what)),
                b[field].as_u64().expect("a count"),
                "{what}: {field}"
            );
        }
        let key = "oldest_message_age_secs";
        age_between(
            &format!("{what}: oldest message"),
            age(cell(row, "oldest_age", &what)),
            b[key].as_f64(),
            a[key].as_f64(),
        );
        if let Some(poll) = row.field("last_poll") {
            recent_poll(&what, age(poll), b["last_poll_age_secs"].as_f64());
        }
        assert!(has_sparkline(row), "{what}: no sparkline");
    }

    // DLQs, each once.
    let mut dlq_reports: BTreeMap<String, (&Value, &Value)> = BTreeMap::new();
    for (b, a) in reports.iter().zip(reports_after) {
        if let Some(name) = b["dlq"]["queue"].as_str() {
            dlq_reports.insert(name.to_string(), (&b["dlq"], &a["dlq"]));
        }
    }
    let dlqs = rows(doc, "dlqs", "data-dlq");
    assert_eq!(
        dlqs.keys().collect::<BTreeSet<_>>(),
        dlq_reports.keys().collect::<BTreeSet<_>>(),
        "the page's DLQs are not fleet status's"
    );
    let mut expected_groups = BTreeSet::new();
    for (name, (b, a)) in &dlq_reports {
        let (row, what) = (dlqs[name.as_str()], format!("dlq {name}"));
        assert_eq!(
            count(cell(row, "depth", &what)),
            b["depth"].as_u64().expect("depth"),
            "{what}: depth"
        );
        let key = "oldest_message_age_secs";
        age_between(
            &format!("{what}: oldest"),
            age(cell(row, "oldest_age", &what)),
            b[key].as_f64(),
            a[key].as_f64(),
        );
        // The local backend reads every DLQ whole.
        assert_eq!(b["complete"], true, "{what}: {b}");
        if let Some(read) = row.field("complete") {
            assert_eq!(read.text(), "complete", "{what}");
        }
        let groups = b["groups"]
            .as_array()
            .unwrap_or_else(|| panic!("{what}: no groups in fleet status: {b}"));
        let mut per_code: BTreeMap<String, u64> = BTreeMap::new();
        for g in groups {
            let s = |k: &str| g[k].as_str().expect("a string").to_string();
            let n = g["count"].as_u64().expect("a count");
            *per_code.entry(s("code")).or_default() += n;
            expected_groups.insert((
                name.clone(),
                s("code"),
                s("worker"),
                n,
                s("inspect"),
                s("replay"),
            ));
        }
        // The groups add up to the codes and the codes to the depth.
        let codes: BTreeMap<String, u64> =
            serde_json::from_value(b["codes"].clone()).expect("codes by count");
        assert_eq!(per_code, codes, "{what}: groups and codes disagree");
        assert_eq!(
            codes.values().sum::<u64>(),
            b["depth"].as_u64().unwrap(),
            "{what}"
        );
    }

    // Codes: one row per (DLQ, code, worker), with its count and its exact commands.
    let table = doc.by_id("codes").expect("the page has no table#codes");
    let mut shown = BTreeSet::new();
    for row in table.find_all(&|e| e.name == "tr" && e.attr("data-code").is_some()) {
        let attr = |k: &str| {
            row.attr(k)
                .unwrap_or_else(|| panic!("a code row has no {k}: {row:?}"))
                .to_string()
        };
        let (dlq, code, worker) = (attr("data-dlq"), attr("data-code"), attr("data-worker"));
        let what = format!("code {code} of {worker} on {dlq}");
        let command = |action: &str| {
            row.find(&|e| {
                e.name == "code" && e.has_class("cmd") && e.attr("data-action") == Some(action)
            })
            .unwrap_or_else(|| panic!("{what}: no {action} command"))
            .text()
        };
        let n = count(cell(row, "count", &what));
        let (inspect, replay) = (command("inspect"), command("replay"));
        assert!(
            shown.insert((dlq, code, worker, n, inspect, replay)),
            "{what}: shown twice"
        );
    }
    assert_eq!(
        shown, expected_groups,
        "the page's codes are not fleet status's"
    );

    // Workers: each configured worker. Where fleet status judges liveness (from the last poll)
    // the page agrees; the page also knows what only the running process knows (the MLLP
    // gateway polls no queue: fleet status says unknown).
    let workers = rows(doc, "workers", "data-worker");
    let expected = before["workers"]
        .as_array()
        .unwrap_or_else(|| panic!("no workers in fleet status: {before:#}"));
    assert_eq!(
        workers.keys().cloned().collect::<BTreeSet<_>>(),
        expected
            .iter()
            .map(|w| w["worker"].as_str().expect("worker").to_string())
            .collect::<BTreeSet<_>>(),
        "the page's workers are not fleet status's"
    );
    for w in expected {
        let name = w["worker"].as_str().expect("worker");
        let (row, what) = (workers[name], format!("worker {name}"));
        let live = cell(row, "live", &what).text();
        match w["live"].as_str().expect("liveness") {
            "unknown" => assert!(
                ["live", "stalled", "unknown"].contains(&live.as_str()),
                "{what}: {live:?}"
            ),
            judged => assert_eq!(live, judged, "{what}"),
        }
        recent_poll(
            &what,
            age(cell(row, "last_poll", &what)),
            w["last_poll_age_secs"].as_f64(),
        );
    }

    // The dead-letter rate.
    let rate = doc
        .by_id("dead-letter-rate")
        .filter(|s| s.name == "section")
        .expect("the page has no section#dead-letter-rate");
    for field in ["last_minute", "last_15_minutes", "last_hour"] {
        assert_eq!(
            count(cell(rate, field, "the dead-letter rate")),
            before["dead_letters"][field].as_u64().expect("a count"),
            "the dead-letter rate: {field}"
        );
    }
    assert!(has_sparkline(rate), "the dead-letter rate has no sparkline");
}

/// The synthetic patient values this run put into the backend: the demo's ADT messages
/// (regenerated with its seed), the delayed ones, and the demo's letters.
fn patient_values() -> Vec<String> {
    let mut all = samples::generate(DEMO_SEED, DEMO_MESSAGES, DEMO_MALFORMED);
    all.extend(samples::generate(DELAYED_SEED, DELAYED, 0));
    let mut values = fleet_testkit::workers::sample_secrets(&all);
    // The HL7 birth date also as events and records write it.
    for s in &all {
        let d = &s.patient.birth_date;
        values.push(format!("{}-{}-{}", &d[..4], &d[4..6], &d[6..8]));
    }
    values.extend(fleet_samples::docs::secrets().into_iter().map(String::from));
    values.sort();
    values.dedup();
    values
}

/// A PNG's width and height (from its IHDR chunk).
fn png_size(bytes: &[u8]) -> (u32, u32) {
    assert!(
        bytes.starts_with(b"\x89PNG\r\n\x1a\n") && bytes.get(12..16) == Some(b"IHDR"),
        "not a PNG"
    );
    let be = |at: usize| u32::from_be_bytes(bytes[at..at + 4].try_into().expect("4 bytes"));
    (be(16), be(20))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_page_in_chromium_matches_fleet_status_and_shows_no_patient_data() {
    let browser = chromium();
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("fleet");
    std::fs::create_dir_all(&dir).unwrap();

    // The README's demo, as the real binary: it leaves dead letters behind.
    let demo = fleet_command()
        .args(["demo", "--dir"])
        .arg(&dir)
        .arg(format!("--messages={DEMO_MESSAGES}"))
        .arg(format!("--malformed={DEMO_MALFORMED}"))
        .arg(format!("--seed={DEMO_SEED}"))
        .output()
        .expect("run fleet demo");
    assert!(
        demo.status.success(),
        "fleet demo exited {}: {}\n{}",
        demo.status,
        String::from_utf8_lossy(&demo.stdout),
        String::from_utf8_lossy(&demo.stderr)
    );

    // Messages that wait: the queue table then has counts and an age that are not zero.
    {
        let local = LocalBackend::open(&dir.join("fleet.sqlite"), &dir.join("objects")).unwrap();
        let queue = local.queue(HL7_QUEUE).await.unwrap();
        for s in samples::generate(DELAYED_SEED, DELAYED, 0) {
            queue
                .send(OutgoingMessage {
                    body: s.body,
                    delay: Some(Duration::from_secs(900)),
                    ..OutgoingMessage::default()
                })
                .await
                .unwrap();
        }
    }

    // The stack's own fleet.toml, with the MLLP gateway on a free port (tests run in parallel).
    let mllp = format!("127.0.0.1:{}", free_port());
    let toml =
        fleet::local_stack::default_config(&dir).replace(fleet::local_stack::MLLP_LISTEN, &mllp);
    assert!(toml.contains(&mllp));
    std::fs::write(dir.join("fleet.toml"), toml).unwrap();
    let health: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let dir_arg = dir.display().to_string();
    let health_arg = health.to_string();
    let mut fleet = Worker::start(
        "fleet",
        &[
            "run",
            "--dir",
            &dir_arg,
            "--health-addr",
            &health_arg,
            // A sample a second, so the test need not wait for the default ten.
            "--status-interval-secs",
            "1",
        ],
        &[
            ("FLEET_WAIT_TIME_SECS", "1".to_string()),
            ("FLEET_LOG_FORMAT", "json".to_string()),
        ],
        tmp.path().join("fleet.log"),
    );
    let url = format!("http://{health}/");

    // The page answers, and shows every queue consumer live.
    let consumers: BTreeSet<String> = ["hl7-ingest", "doc-pipeline", "notify"]
        .map(String::from)
        .into();
    let started = Instant::now();
    loop {
        if let Some(status) = fleet.child.try_wait().unwrap() {
            panic!("fleet run exited {status}; log:\n{}", fleet.log_text());
        }
        if matches!(
            fleet::probe::get_status(&url, Duration::from_secs(5)).await,
            Ok(200)
        ) {
            let doc = dom::parse(&dump_dom(&browser, tmp.path(), &url).await);
            if doc.by_id("workers").is_some() && live_workers(&doc).is_superset(&consumers) {
                break;
            }
        }
        assert!(
            started.elapsed() < Duration::from_secs(90),
            "the page did not show {consumers:?} live within 90 s; log:\n{}",
            fleet.log_text()
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }

    // fleet status, the page, fleet status: the page's sample is taken between the two reads,
    // and when the two agree (nothing moved) the page's numbers must be theirs.
    let mut attempt = 0;
    let (html, before, after) = loop {
        attempt += 1;
        let before = status_json(&dir);
        let waited = Instant::now();
        let html = loop {
            let html = dump_dom(&browser, tmp.path(), &url).await;
            if page_sampled_at(&dom::parse(&html)) > sampled_at(&before) {
                break html;
            }
            assert!(
                waited.elapsed() < Duration::from_secs(30),
                "the page took no new sample within 30 s; log:\n{}",
                fleet.log_text()
            );
            tokio::time::sleep(Duration::from_millis(300)).await;
        };
        let after = status_json(&dir);
        if without_clocks(&before) == without_clocks(&after) {
            break (html, before, after);
        }
        assert!(
            attempt < 10,
            "fleet status kept changing while the page was read:\n{before:#}\n{after:#}"
        );
    };
    let doc = dom::parse(&html);
    check_page(&doc, &before, &after);

    // The run's dead letters are on the page with their codes: hl7-ingest's malformed
    // messages that the gateway queued, and doc-pipeline's refused document.
    let shown: BTreeSet<(String, String)> = doc
        .find_all(&|e| e.name == "tr" && e.attr("data-code").is_some())
        .into_iter()
        .map(|r| {
            (
                r.attr("data-dlq").unwrap_or_default().to_string(),
                r.attr("data-code").unwrap_or_default().to_string(),
            )
        })
        .collect();
    for (dlq, code) in [
        (HL7_DLQ, "HL7_MISSING_FIELD"),
        (HL7_DLQ, "HL7_MISSING_MRG"),
        (HL7_DLQ, "HL7_BAD_SEGMENT"),
        (DOC_DLQ, "DOCUMENT_UNSUPPORTED_TYPE"),
    ] {
        assert!(
            shown.contains(&(dlq.to_string(), code.to_string())),
            "the page shows no {code} on {dlq}: {shown:?}"
        );
    }
    let hl7_row = &doc
        .by_id("queues")
        .expect("queues")
        .find(&|e| e.attr("data-queue") == Some(HL7_QUEUE))
        .expect("hl7-ingest's queue on the page");
    assert_eq!(count(cell(hl7_row, "delayed", HL7_QUEUE)), DELAYED as u64);
    assert!(age(cell(hl7_row, "oldest_age", HL7_QUEUE)).is_some());

    // No synthetic patient value of this run, by value and by shape, in what the page shows
    // or in its markup.
    let text = doc.text();
    for value in patient_values() {
        assert!(
            !html.contains(&value),
            "the page holds a synthetic patient value ({} chars)",
            value.len()
        );
    }
    for (what, body) in [("the page's text", &text), ("the page's markup", &html)] {
        let hits = samples::synthetic_phi_in(body);
        assert!(
            hits.is_empty(),
            "{what} holds patient data at (line, kind) {hits:?}"
        );
    }

    // The picture the README shows.
    let shot = Path::new(env!("CARGO_TARGET_TMPDIR")).join("health-page.png");
    let _ = std::fs::remove_file(&shot);
    browse(
        &browser,
        tmp.path(),
        &[
            format!("--screenshot={}", shot.display()),
            format!("--window-size={},{}", WINDOW.0, WINDOW.1),
        ],
        &url,
    )
    .await;
    let png = std::fs::read(&shot).expect("chromium wrote the screenshot");
    assert_eq!(png_size(&png), WINDOW, "the screenshot's size");
    let readme_copy = repo_root().join(README_SCREENSHOT);
    if fleet_core::env::get(fleet_core::env::UPDATE_SCREENSHOT).as_deref() == Some("1") {
        std::fs::create_dir_all(readme_copy.parent().unwrap()).unwrap();
        std::fs::copy(&shot, &readme_copy).unwrap();
    }
    let committed = std::fs::read(&readme_copy).unwrap_or_else(|e| {
        panic!(
            "{}: {e}: the README shows it; write it with {}=1",
            readme_copy.display(),
            fleet_core::env::UPDATE_SCREENSHOT
        )
    });
    assert_eq!(png_size(&committed), WINDOW, "{README_SCREENSHOT}'s size");

    // SIGTERM: every worker drains and the process exits 0.
    let (_, status) = fleet.terminate(Duration::from_secs(90));
    assert!(
        status.success(),
        "exit {status}; log:\n{}",
        fleet.log_text()
    );

    // The values the page must not show are in the backend the page reports on: the check
    // above looked for the right ones.
    let local = LocalBackend::open(&dir.join("fleet.sqlite"), &dir.join("objects")).unwrap();
    let values = patient_values();
    let stored: Vec<String> = [HL7_DLQ, HL7_QUEUE]
        .iter()
        .flat_map(|q| local.queue_messages_snapshot(q).unwrap())
        .map(|m| m.body)
        .collect();
    assert!(
        stored
            .iter()
            .any(|body| values.iter().any(|v| body.contains(v.as_str()))),
        "no synthetic patient value in the DLQ or the delayed messages"
    );
}

/// The comparison itself: a page that agrees with the status passes; the same page with one
/// number, one command or one liveness changed fails.
#[test]
fn the_comparison_fails_on_any_number_the_page_gets_wrong() {
    let status = serde_json::json!({
        "backend": "local",
        "generated_at_unix_ms": 1000,
        "queues": [{
            "worker": "hl7-ingest", "queue": "q", "visible": 2, "in_flight": 1, "delayed": 3,
            "oldest_message_age_secs": 7.5, "last_poll_age_secs": 0.2,
            "dlq": {
                "queue": "q-dlq", "depth": 2, "oldest_message_age_secs": 40.2,
                "codes": {"HL7_BAD_SEGMENT": 2}, "complete": true,
                "groups": [{"code": "HL7_BAD_SEGMENT", "worker": "hl7-ingest", "count": 2,
                            "inspect": "dlq-replay show q-dlq", "replay": "dlq-replay replay q-dlq"}]
            }
        }],
        "workers": [{"worker": "hl7-ingest", "live": "live", "live_source": "last_poll",
                     "last_poll_age_secs": 0.2}],
        "dead_letters": {"per_minute": [0, 2], "last_minute": 2, "last_15_minutes": 2,
                         "last_hour": 2, "complete": true}
    });
    let page = r#"<html><body><span id="generated-at" data-unix-ms="1001">1001</span>
<table id="queues"><tr data-queue="q"><td data-field="worker">hl7-ingest</td>
<td data-field="visible">2</td><td data-field="in_flight">1</td><td data-field="delayed">3</td>
<td data-field="oldest_age">7</td><td data-field="last_poll">0</td>
<td><svg class="spark"></svg></td></tr></table>
<table id="dlqs"><tr data-dlq="q-dlq"><td data-field="depth">2</td>
<td data-field="oldest_age">40</td><td data-field="complete">complete</td></tr></table>
<table id="codes"><tr data-dlq="q-dlq" data-code="HL7_BAD_SEGMENT" data-worker="hl7-ingest">
<td data-field="count">2</td><td><code class="cmd" data-action="inspect">dlq-replay show q-dlq</code>
<code class="cmd" data-action="replay">dlq-replay replay q-dlq</code></td></tr></table>
<table id="workers"><tr data-worker="hl7-ingest"><td data-field="live">live</td>
<td data-field="last_poll">0</td></tr></table>
<section id="dead-letter-rate"><span data-field="last_minute">2</span>
<span data-field="last_15_minutes">2</span><span data-field="last_hour">2</span>
<svg class="spark"></svg></section></body></html>"#;
    check_page(&dom::parse(page), &status, &status);
    for (right, wrong) in [
        (r#""delayed">3"#, r#""delayed">4"#),
        (r#""oldest_age">7"#, r#""oldest_age">9"#),
        (r#""depth">2"#, r#""depth">3"#),
        (r#""count">2"#, r#""count">1"#),
        ("dlq-replay show q-dlq<", "dlq-replay show other-dlq<"),
        (r#""live">live"#, r#""live">stalled"#),
        (r#""last_hour">2"#, r#""last_hour">0"#),
        (
            r#"data-code="HL7_BAD_SEGMENT""#,
            r#"data-code="HL7_MISSING_FIELD""#,
        ),
    ] {
        let changed = page.replacen(right, wrong, 1);
        assert_ne!(changed, page, "{right} is not in the page");
        let caught = std::panic::catch_unwind(|| {
            check_page(&dom::parse(&changed), &status, &status);
        });
        assert!(
            caught.is_err(),
            "{wrong} instead of {right} passed the check"
        );
    }
}
