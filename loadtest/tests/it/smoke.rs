//! The CI smoke run: the real `loadtest` binary drives the real `hl7-ingest` binary on the
//! local backend with the smoke scenario, and the report must account for every message.
//! Correctness only (nothing lost, outcomes as generated, the report's shape); no timing is
//! asserted.

use crate::common;

#[test]
fn smoke_scenario_on_the_local_backend_loses_nothing_and_reports_every_key() {
    let run = common::run("smoke.toml", &["--backend", "local"]);
    let stdout = &run.stdout;
    assert!(stdout.contains("PASS"), "{stdout}");
    let report = &run.report;
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
    let svg = std::fs::read_to_string(run.dir().join("chart.svg")).unwrap();
    assert!(svg.starts_with("<svg") && svg.trim_end().ends_with("</svg>"));

    // No patient data in the report or the table (names from the generator's lists).
    let text = &run.report_text;
    for name in fleet_samples::hl7::FAMILY {
        assert!(
            !text.contains(name) && !stdout.contains(name),
            "{name} leaked"
        );
    }
}
