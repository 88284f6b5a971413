//! The MLLP scenarios at CI size: the real `loadtest` binary starts the real `mllp-gateway`
//! (and, for the crash test, `hl7-ingest`) and sends over MLLP. Correctness only: every
//! message got AA and is on the queue (or has its event and record), the gateway's request
//! counts and CPU are in the report, and killed gateways lose nothing that was ACKed. No
//! timing is asserted.

use serde_json::Value;

use crate::common;

fn n(v: &Value) -> u64 {
    v.as_u64().unwrap_or_else(|| panic!("{v} is not a count"))
}

#[test]
fn local_mllp_load_queues_every_aad_message_in_group_committed_batches() {
    let run = common::run(
        "mllp-local-10.toml",
        &["--backend", "local", "--messages", "400"],
    );
    let r = &run.report;
    let m = &r["mllp"];
    assert_eq!(r["lost"], 0, "{m}");
    assert_eq!(n(&m["send"]["acked"]), 400, "{m}");
    // Enhanced mode: the generated messages carry MSH-15 = AL, so the accept ACK is CA.
    assert_eq!(m["send"]["ack_codes"]["CA"], 400, "{m}");
    assert_eq!(m["acked_but_lost"], 0);
    assert_eq!(m["send"]["bad_acks"], 0);
    let q = &m["queue_check"];
    assert_eq!(
        (n(&q["acked_found"]), n(&q["acked_missing"])),
        (400, 0),
        "{q}"
    );
    assert_eq!((n(&q["unknown"]), n(&q["received"])), (0, 400), "{q}");
    // The gateway's own counts: batches of several entries from ten connections, never more
    // calls than messages.
    let batches = n(&m["gateway_requests"]["sqs.SendMessageBatch"]);
    assert!(batches > 0 && batches < 400, "{m}");
    assert!(m["entries_per_batch"].as_f64().unwrap() > 1.0, "{m}");
    assert!(
        m["gateway_cpu_us_per_message"].as_f64().unwrap() > 0.0,
        "{m}"
    );
    assert_eq!(m["gateway_exit"], "exit status: 0");
    for key in ["p50", "p99"] {
        assert!(m["send"]["ack_latency_ms"][key].as_f64().unwrap() > 0.0);
    }
    assert_eq!(r["log_scan"]["lines_with_patient_data"], 0);
    assert!(run.stdout.contains("PASS"), "{}", run.stdout);
}

#[test]
fn local_gateway_kills_lose_no_aad_message_and_duplicate_no_record() {
    let run = common::run(
        "reliability/crash-mllp-local.toml",
        &[
            "--backend",
            "local",
            "--messages",
            "1200",
            "--window",
            "0.2,1.1",
        ],
    );
    assert_gateway_kills_lost_nothing(&run.report, 1200);
}

#[test]
fn aws_gateway_kills_lose_no_aad_message_and_duplicate_no_record() {
    let endpoint = fleet_testkit::moto_endpoint();
    let run = common::run(
        "reliability/crash-mllp-moto.toml",
        &[
            "--backend",
            "aws",
            "--endpoint",
            &endpoint,
            "--messages",
            "300",
            "--rate",
            "20",
            "--window",
            "1,13",
        ],
    );
    assert_gateway_kills_lost_nothing(&run.report, 300);
}

/// Ten kills of the gateway while `sent` messages went through it, and nothing ACKed lost.
fn assert_gateway_kills_lost_nothing(r: &Value, sent: u64) {
    let m = &r["mllp"];
    assert_eq!(m["acked_but_lost"], 0, "{m}");
    assert_eq!(n(&m["send"]["acked"]), sent, "{m}");
    assert_eq!(r["lost"], 0);
    assert_eq!(r["unexpected_outcomes"], 0);
    assert_eq!(r["left_on_source"], 0);
    assert_eq!(r["event_ids_conflicting"], 0);
    assert_eq!(n(&r["events_observed"]), sent);
    let rec = &r["records"];
    assert_eq!(
        (
            n(&rec["checked"]),
            n(&rec["missing"]),
            n(&rec["conflicting"])
        ),
        (sent, 0, 0),
        "{rec}"
    );
    // Ten kills of the gateway, eleven gateway processes, every kill followed by AAs again;
    // the senders reconnected.
    let f = &r["faults"];
    assert_eq!(f["planned"]["target"], "gateway");
    let kills = f["disruptions"].as_array().unwrap();
    assert_eq!(kills.len(), 10);
    assert_eq!(n(&f["worker_starts"]), 11);
    assert_eq!(n(&m["gateway_starts"]), 11);
    assert!(kills.iter().all(|k| k["recovery_s"].is_number()), "{f}");
    assert!(n(&m["send"]["connects"]) > 10, "{m}");
    // The worker was not killed: its request counts are whole; the killed gateways' are not.
    assert_eq!(f["requests_partial"], false);
    assert_eq!(m["requests_partial"], true);
    // The gateway's logs were scanned too (one worker log, eleven gateway logs).
    assert_eq!(n(&r["log_scan"]["files"]), 12);
    assert_eq!(r["log_scan"]["lines_with_patient_data"], 0);
}
