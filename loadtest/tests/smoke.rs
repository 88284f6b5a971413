//! The CI smoke run: the real `loadtest` binary drives the real `hl7-ingest` binary on the
//! local backend with the smoke scenario, and the report must account for every message.
//! Correctness only (nothing lost, outcomes as generated, the report's shape); no timing is
//! asserted.

use std::path::{Path, PathBuf};
use std::process::Command;

/// The worker binary in this profile's target directory, built first if it is missing
/// (`scripts/test` builds every binary anyway; `cargo nextest run -p loadtest` alone does not).
fn worker_bin() -> PathBuf {
    let loadtest = PathBuf::from(env!("CARGO_BIN_EXE_loadtest"));
    let bin = loadtest.parent().unwrap().join("hl7-ingest");
    if !bin.is_file() {
        let release = loadtest
            .parent()
            .and_then(Path::file_name)
            .is_some_and(|n| n == "release");
        let mut cmd = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
        cmd.args(["build", "-p", "hl7-ingest", "--bin", "hl7-ingest"]);
        if release {
            cmd.arg("--release");
        }
        assert!(cmd.status().unwrap().success(), "building hl7-ingest");
    }
    assert!(bin.is_file(), "{} missing", bin.display());
    bin
}

#[test]
fn smoke_scenario_on_the_local_backend_loses_nothing_and_reports_every_key() {
    let out = tempfile::tempdir().unwrap();
    let scenario = Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios/smoke.toml");
    let run = Command::new(env!("CARGO_BIN_EXE_loadtest"))
        .arg("run")
        .arg(&scenario)
        .args(["--backend", "local", "--out"])
        .arg(out.path())
        .arg("--worker-bin")
        .arg(worker_bin())
        .env_remove("AWS_ENDPOINT_URL")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&run.stdout);
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(
        run.status.success(),
        "loadtest failed ({}):\n{stdout}\n{stderr}",
        run.status
    );
    assert!(stdout.contains("PASS"), "{stdout}");

    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.path().join("report.json")).unwrap())
            .unwrap();
    for key in [
        "scenario",
        "backend",
        "messages_sent",
        "events_observed",
        "dead_lettered",
        "lost",
        "throughput_per_s",
        "latency_ms",
        "worker_cpu_us_per_message",
        "requests_per_message",
    ] {
        assert!(report.get(key).is_some(), "report lacks {key}");
    }
    for key in ["p50", "p90", "p99", "max"] {
        assert!(report["latency_ms"][key].is_number(), "latency_ms.{key}");
    }
    assert_eq!(report["scenario"], "smoke");
    assert_eq!(report["backend"], "local");
    assert_eq!(report["messages_sent"], 300);
    assert_eq!(report["lost"], 0);
    assert_eq!(report["unexpected_outcomes"], 0);
    assert_eq!(report["duplicate_events"], 0);
    assert_eq!(report["left_on_source"], 0);
    let sent = report["messages_sent"].as_u64().unwrap();
    let events = report["events_observed"].as_u64().unwrap();
    let dead = report["dead_lettered"].as_u64().unwrap();
    assert_eq!(events + dead, sent);
    assert_eq!(events, report["well_formed_sent"].as_u64().unwrap());
    assert!(dead > 0, "the smoke scenario has malformed messages");
    // The worker's own accounting agrees with what the tap queue and the DLQ saw.
    assert_eq!(report["worker_succeeded"].as_u64().unwrap(), events);
    assert_eq!(report["worker_dead_lettered"].as_u64().unwrap(), dead);
    // Request counts come from the worker: at least one conditional write per event.
    let rpm = &report["requests_per_message"];
    assert!(rpm["total"].as_f64().unwrap() > 0.0, "{rpm}");
    let writes = report["requests"]["dynamodb.TransactWriteItems"]
        .as_u64()
        .unwrap_or(0);
    assert!(writes >= events, "{writes} writes for {events} events");
    assert!(report["worker_cpu_us_per_message"].as_f64().unwrap() > 0.0);
    let svg = std::fs::read_to_string(out.path().join("chart.svg")).unwrap();
    assert!(svg.starts_with("<svg") && svg.trim_end().ends_with("</svg>"));

    // No patient data in the report or the table (names from the generator's lists).
    let text = std::fs::read_to_string(out.path().join("report.json")).unwrap();
    for name in hl7_ingest::samples::FAMILY {
        assert!(
            !text.contains(name) && !stdout.contains(name),
            "{name} leaked"
        );
    }
}
