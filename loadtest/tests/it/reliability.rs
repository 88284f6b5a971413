//! The reliability scenarios at CI size: the same scenario files `scripts/reliability` runs at
//! full size, with fewer messages and a shorter disruption window. Each run drives the real
//! `hl7-ingest` binary through kill -9s, SIGTERMs or a fault-injecting proxy, with poison
//! messages mixed in; `loadtest` exits 0 only when nothing was lost, every outcome is the
//! expected one, every event record matches its event, and every worker log is free of
//! patient data. The assertions below check the report says so, field by field.

use crate::common;

use serde_json::Value;

/// The poison kinds the generator mixes in; each must reach the DLQ with its own code.
const POISON_CODES: &[&str] = &[
    "BODY_TOO_LARGE",
    "HL7_BAD_CHARSET",
    "HL7_BAD_ENCODING_CHARS",
    "HL7_BAD_SEGMENT",
    "HL7_MISSING_FIELD",
    "HL7_MISSING_MRG",
    "HL7_NOT_ADT",
    "HL7_NO_MSH",
    "HL7_UNSUPPORTED_TRIGGER",
];

fn n(v: &Value) -> u64 {
    v.as_u64().unwrap_or_else(|| panic!("{v} is not a count"))
}

/// What every reliability run must show, whatever was done to it.
fn assert_nothing_lost(r: &Value, all_poison_kinds: bool) {
    assert_eq!(r["lost"], 0, "lost");
    assert_eq!(r["unexpected_outcomes"], 0, "unexpected outcomes");
    assert_eq!(r["left_on_source"], 0, "left on the source queue");
    assert_eq!(
        r["event_ids_conflicting"], 0,
        "a message with two event ids"
    );
    let sent = n(&r["messages_sent"]);
    assert_eq!(n(&r["events_observed"]) + n(&r["dead_lettered"]), sent);
    assert_eq!(n(&r["events_observed"]), n(&r["well_formed_sent"]));
    let rec = &r["records"];
    assert_eq!(rec["checked"], r["well_formed_sent"]);
    assert_eq!(
        (
            n(&rec["missing"]),
            n(&rec["conflicting"]),
            n(&rec["for_poison"])
        ),
        (0, 0, 0),
        "records: {rec}"
    );
    let scan = &r["log_scan"];
    assert!(n(&scan["lines"]) > 0, "the worker logs are empty: {scan}");
    assert_eq!(scan["lines_with_patient_data"], 0, "{scan}");
    let codes = r["dead_letter_codes"].as_object().unwrap();
    if all_poison_kinds {
        for code in POISON_CODES {
            assert!(codes.contains_key(*code), "no {code} in the DLQ: {codes:?}");
        }
    }
    assert_eq!(
        codes.values().map(n).sum::<u64>(),
        n(&r["malformed_sent"]),
        "every poison message dead-lettered once with a code"
    );
}

fn disruptions<'a>(r: &'a Value, kind: &str) -> Vec<&'a Value> {
    r["faults"]["disruptions"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|d| d["kind"] == kind)
        .collect()
}

fn assert_kills(r: &Value, planned: usize) {
    let kills = disruptions(r, "kill");
    assert_eq!(kills.len(), planned, "kills done");
    assert_eq!(n(&r["faults"]["worker_starts"]), planned as u64 + 1);
    for k in kills {
        assert!(k["recovery_s"].is_number(), "a kill without recovery: {k}");
    }
}

fn assert_sigterms(r: &Value, planned: usize) {
    let terms = disruptions(r, "term");
    assert_eq!(terms.len(), planned, "SIGTERMs done");
    let deadline = r["worker_drain_deadline_s"].as_f64().unwrap();
    for t in terms {
        assert_eq!(t["exit_ok"], true, "a SIGTERM'd worker did not exit 0: {t}");
        assert!(
            t["exit_s"].as_f64().unwrap() <= deadline + 5.0,
            "slow exit: {t}"
        );
        assert_eq!(t["in_flight_after_exit"], 0, "left invisible: {t}");
    }
}

/// A reliability scenario at CI size: `messages`, and `rate` and `window` when given, on the
/// local backend or on moto.
fn run_small(
    scenario: &str,
    aws: bool,
    messages: u32,
    rate: Option<u32>,
    window: Option<&str>,
) -> common::Run {
    let endpoint = aws.then(fleet_testkit::moto_endpoint);
    let mut args: Vec<String> = match &endpoint {
        Some(url) => vec![
            "--backend".into(),
            "aws".into(),
            "--endpoint".into(),
            url.clone(),
        ],
        None => vec!["--backend".into(), "local".into()],
    };
    args.extend(["--messages".into(), messages.to_string()]);
    if let Some(r) = rate {
        args.extend(["--rate".into(), r.to_string()]);
    }
    if let Some(w) = window {
        args.extend(["--window".into(), w.to_string()]);
    }
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    common::run(&format!("reliability/{scenario}.toml"), &args)
}

#[test]
fn local_ten_kills_lose_nothing_and_duplicate_no_record() {
    let run = run_small("crash-local", false, 1500, None, Some("0.2,2.5"));
    assert_nothing_lost(&run.report, true);
    assert_kills(&run.report, 10);
}

#[test]
fn local_sigterm_under_load_exits_in_time_and_leaves_nothing_invisible() {
    let run = run_small("shutdown-local", false, 1500, None, Some("0.2,2.0"));
    assert_nothing_lost(&run.report, true);
    assert_sigterms(&run.report, 5);
}

#[test]
fn aws_ten_kills_lose_nothing_and_duplicate_no_record() {
    let run = run_small("crash-moto", true, 300, Some(20), Some("1,13"));
    assert_nothing_lost(&run.report, false);
    assert_kills(&run.report, 10);
}

#[test]
fn aws_sigterm_under_load_exits_in_time_and_leaves_nothing_invisible() {
    let run = run_small("shutdown-moto", true, 300, Some(20), Some("1,12"));
    assert_nothing_lost(&run.report, false);
    assert_sigterms(&run.report, 5);
}

#[test]
fn aws_throttling_errors_and_dropped_answers_lose_nothing_and_retries_stay_bounded() {
    let run = run_small("faults-moto", true, 300, Some(20), None);
    let r = &run.report;
    assert_nothing_lost(r, false);
    let p = &r["faults"]["proxy"];
    let requests = n(&p["requests"]);
    let injected: u64 = p["injected"].as_object().unwrap().values().map(n).sum();
    // A tenth of the requests were disturbed, every kind of disturbance among them.
    assert!(requests > 300, "{p}");
    assert!(injected * 20 > requests && injected * 5 < requests, "{p}");
    for kind in ["throttle", "server-error", "slow", "drop"] {
        assert!(n(&p["injected"][kind]) > 0, "no {kind} injected: {p}");
    }
    // The SDK retried, and never beyond the attempt limit it announced.
    assert!(n(&p["retries"]) > 0, "{p}");
    assert!(n(&p["max_attempt"]) <= n(&p["max_attempts_allowed"]), "{p}");
    assert_eq!(p["upstream_errors"], 0, "{p}");
}
