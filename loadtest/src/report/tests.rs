//! The report's unit tests: percentiles, the timeline, the reliability table, the chart.

use std::collections::{BTreeMap, HashSet};

use super::chart::{EVENTS_AXIS, LATENCY_AXIS, TIME_AXIS};
use super::*;

#[test]
fn nearest_rank_percentiles() {
    let mut v: Vec<f64> = (1..=100).map(f64::from).collect();
    v.reverse();
    let p = Percentiles::of(&mut v);
    assert_eq!((p.p50, p.p90, p.p99, p.max), (50.0, 90.0, 99.0, 100.0));
    assert_eq!(p.mean, 50.5);
    assert_eq!(Percentiles::of(&mut []), Percentiles::default());
    let p = Percentiles::of(&mut [7.0]);
    assert_eq!((p.p50, p.p99, p.max), (7.0, 7.0, 7.0));
}

#[test]
fn timeline_buckets_by_second() {
    let t = timeline(&[(0.1, 5.0), (0.9, 7.0), (2.5, 1.0)]);
    assert_eq!(t.len(), 3);
    assert_eq!(t.iter().map(|s| s.events).collect::<Vec<_>>(), [2, 0, 1]);
    assert_eq!(t[0].latency_max_ms, 7.0);
}

#[test]
fn the_reliability_table_has_one_row_per_report_with_its_faults() {
    let kill =
        |recovery: f64| serde_json::json!({"kind": "kill", "recovery_s": recovery, "exit_s": null});
    let r = serde_json::json!({
        "scenario": "crash-local", "backend": "local", "messages_sent": 5000,
        "malformed_sent": 200, "lost": 0, "unexpected_outcomes": 0,
        "duplicate_events": 31, "event_ids_conflicting": 0, "worker_drain_deadline_s": 10,
        "records": {"missing": 0, "conflicting": 0, "for_poison": 0},
        "faults": {"disruptions": [kill(0.4), kill(1.5), kill(0.2)], "proxy": null}
    });
    let t = reliability_table(&[r.clone(), r]);
    let rows: Vec<&str> = t.lines().collect();
    assert_eq!(rows.len(), 4, "{t}");
    assert_eq!(
        rows[2],
        "| crash-local (local) | 5000 | 3 × kill -9; 200 poison | 0 | 0 / 0 | 31 / 0 | 0.40 s / 1.50 s | pass |"
    );
}
/// A clean local run of `seconds` seconds whose second 2 had no events.
fn report_with_timeline(seconds: usize) -> Report {
    let points: Vec<(f64, f64)> = (0..seconds)
        .filter(|s| *s != 2)
        .flat_map(|s| {
            (0..=s).map(move |k| (s as f64 + 0.1 * k as f64 / 2.0, 0.5 + 3.0 * (s * k) as f64))
        })
        .collect();
    let mut latencies: Vec<f64> = points.iter().map(|p| p.1).collect();
    Report {
        scenario: "smoke & <co>".into(),
        backend: "local".into(),
        mode: "rate".into(),
        seed: 1,
        command: "loadtest run smoke.toml".into(),
        machine: Machine {
            nproc: 2,
            uname: "Linux".into(),
        },
        git_commit: None,
        started_at_unix_ms: 0,
        rate_target_per_s: 100,
        worker_concurrency: 8,
        worker_publish_linger_ms: None,
        worker_delete_linger_ms: None,
        worker_drain_deadline_s: 10,
        visibility_timeout_s: 30,
        messages_sent: points.len() as u64,
        well_formed_sent: points.len() as u64,
        malformed_sent: 0,
        mean_body_bytes: 3000,
        events_observed: points.len() as u64,
        duplicate_events: 0,
        duplicate_dead_letters: 0,
        dead_lettered: 0,
        dead_letter_codes: BTreeMap::new(),
        unexpected_outcomes: 0,
        lost: 0,
        left_on_source: 0,
        duration_s: seconds as f64,
        throughput_per_s: points.len() as f64 / seconds as f64,
        latency_ms: Percentiles::of(&mut latencies),
        observed_latency_ms: Percentiles::default(),
        worker_cpu_ms_total: 1.0,
        worker_cpu_us_per_message: 10.0,
        worker_exit: "exit status: 0".into(),
        worker_received: points.len() as u64,
        worker_succeeded: points.len() as u64,
        worker_dead_lettered: 0,
        requests_per_message: BTreeMap::new(),
        requests: BTreeMap::new(),
        targets: Vec::new(),
        timeline: timeline(&points),
        faults: None,
        records: None,
        event_ids_conflicting: 0,
        log_scan: None,
        mllp: None,
    }
}

fn texts<'a>(doc: &'a roxmltree::Document<'_>) -> Vec<&'a str> {
    doc.descendants()
        .filter(|n| n.has_tag_name("text"))
        .filter_map(|n| n.text())
        .map(str::trim)
        .collect()
}

#[test]
fn the_chart_has_one_line_per_latency_series_a_bar_per_second_and_its_axes() {
    let r = report_with_timeline(6);
    assert_eq!(r.timeline.len(), 6);
    let svg = r.svg().unwrap();
    assert!(svg.starts_with("<svg") && svg.trim_end().ends_with("</svg>"));
    let doc = roxmltree::Document::parse(&svg).unwrap();
    assert_eq!(doc.root_element().attribute("width"), Some("900"));

    // p50, p99 and max: one line each, over the five seconds that had events (the axes and
    // their ticks are black polylines).
    let lines: Vec<roxmltree::Node> = doc
        .descendants()
        .filter(|n| n.has_tag_name("polyline") && n.attribute("stroke") != Some("#000000"))
        .collect();
    assert_eq!(lines.len(), 3, "{svg}");
    let strokes: HashSet<&str> = lines.iter().filter_map(|n| n.attribute("stroke")).collect();
    assert_eq!(strokes, HashSet::from(["#2B6CB0", "#E8871E", "#999999"]));
    for line in &lines {
        let points = line.attribute("points").unwrap().split_whitespace().count();
        assert_eq!(points, 5, "{:?}", line.attribute("points"));
    }
    // The max line is never below the p50 line (smaller y is higher on the page).
    let ys = |color: &str| -> Vec<i64> {
        lines
            .iter()
            .find(|n| n.attribute("stroke") == Some(color))
            .unwrap()
            .attribute("points")
            .unwrap()
            .split_whitespace()
            .map(|p| p.split_once(',').unwrap().1.parse().unwrap())
            .collect()
    };
    assert!(
        ys("#999999")
            .iter()
            .zip(ys("#2B6CB0"))
            .all(|(max, p50)| *max <= p50)
    );
    assert!(ys("#999999") != ys("#2B6CB0"), "the series differ");

    // One bar per second, the empty second's of height 0.
    let bars: Vec<f64> = doc
        .descendants()
        .filter(|n| n.has_tag_name("rect") && n.attribute("fill") == Some("#4C9A5B"))
        .map(|n| n.attribute("height").unwrap().parse().unwrap())
        .collect();
    assert_eq!(bars.len(), 6);
    assert_eq!(bars[2], 0.0);
    assert!(bars[5] > bars[1], "{bars:?}");

    // The title (escaped in the document, read back as written), the panels, the axes.
    let texts = texts(&doc);
    assert!(
        texts
            .iter()
            .any(|t| t.starts_with("smoke & <co> — local backend, rate mode")),
        "{texts:?}"
    );
    for label in [
        LATENCY_AXIS,
        EVENTS_AXIS,
        TIME_AXIS,
        "events observed per second (max 6)",
    ] {
        assert!(texts.contains(&label), "no {label:?} in {texts:?}");
    }
    // Log-scale ticks at decades of milliseconds, time ticks in seconds.
    for tick in ["1", "10", "100", "0s", "6s"] {
        assert!(texts.contains(&tick), "no tick {tick:?} in {texts:?}");
    }
}

#[test]
fn a_run_without_events_still_draws_a_valid_chart() {
    let mut r = report_with_timeline(1);
    r.timeline.clear();
    let svg = r.svg().unwrap();
    let doc = roxmltree::Document::parse(&svg).unwrap();
    assert!(texts(&doc).contains(&LATENCY_AXIS));
}

#[test]
fn the_table_has_a_row_per_measure_and_the_faults_rows_when_there_were_faults() {
    let mut r = report_with_timeline(3);
    let disruption = |kind, exit_s| Disruption {
        kind,
        at_s: 1.0,
        accounted_before: 3,
        exit_s,
        exit_ok: exit_s.map(|_| true),
        in_flight_after_exit: exit_s.map(|_| 0),
        ready_s: Some(0.5),
        recovery_s: Some(0.75),
    };
    let clean = r.table();
    assert!(clean.contains("LOST                       0\n"), "{clean}");
    assert!(!clean.contains("disruptions"), "{clean}");
    assert!(
        clean.ends_with("PASS: every message accounted for\n"),
        "{clean}"
    );
    r.faults = Some(FaultsReport {
        planned: Faults {
            kills: 1,
            sigterms: 1,
            ..Faults::default()
        },
        worker_starts: 3,
        disruptions: vec![
            disruption(DisruptionKind::Kill, None),
            disruption(DisruptionKind::Term, Some(2.5)),
        ],
        requests_partial: true,
        proxy: None,
    });
    let t = r.table();
    assert!(
        t.contains("disruptions                1 of 1 kill -9, 1 of 1 SIGTERM; recovery p50 0.75 s, max 0.75 s\n"),
        "{t}"
    );
    assert!(
        t.contains(
            "SIGTERM exits              1 clean, slowest 2.50 s (deadline 10 s), 0 left invisible\n"
        ),
        "{t}"
    );
    assert!(t.contains("requests per message: (partial"), "{t}");
    assert!(!t.contains("fault proxy"), "{t}");
}

/// An MLLP report as `run/mllp.rs` writes it (the keys the tables read).
fn mllp_json(ingest: bool, acked_but_lost: u64) -> serde_json::Value {
    serde_json::json!({
        "batch_linger_ms": null, "ingest": ingest,
        "send": {"connections": 10, "acked": 5000, "resent_messages": 37,
                 "messages_per_s": 1234.4,
                 "ack_latency_ms": {"p50": 4.123, "p90": 6.0, "p99": 9.876, "max": 20.0, "mean": 4.5}},
        "gateway_cpu_us_per_message": 81.6,
        "gateway_requests_per_message": {"sqs.SendMessageBatch": 0.1234, "sqs": 0.1238, "total": 0.1238},
        "entries_per_batch": 8.1,
        "acked_but_lost": acked_but_lost
    })
}

#[test]
fn the_mllp_table_has_one_row_per_report_with_the_gateways_figures() {
    let r = serde_json::json!({
        "scenario": "mllp-moto-10", "backend": "aws", "mllp": mllp_json(false, 0)
    });
    let t = mllp_table(&[r]);
    let rows: Vec<&str> = t.lines().collect();
    assert_eq!(rows.len(), 3, "{t}");
    assert_eq!(
        rows[2],
        "| mllp-moto-10 | moto | 10 | 5000 | 1234 | 4.12 / 9.88 ms | 0.123 (8.1) | 0.124 | 82 µs | 0 |"
    );
}

#[test]
fn a_gateway_crash_row_names_the_gateway_the_resends_and_the_aad_messages_lost() {
    let kill = serde_json::json!({"kind": "kill", "recovery_s": 0.3, "exit_s": null});
    let row = |acked_but_lost: u64| {
        let r = serde_json::json!({
            "scenario": "crash-mllp-local", "backend": "local", "messages_sent": 5000,
            "malformed_sent": 0, "lost": 0, "unexpected_outcomes": 0,
            "duplicate_events": 12, "event_ids_conflicting": 0, "worker_drain_deadline_s": 10,
            "records": {"missing": 0, "conflicting": 0, "for_poison": 0},
            "faults": {"planned": {"target": "gateway"}, "disruptions": [kill.clone(), kill.clone()], "proxy": null},
            "mllp": mllp_json(true, acked_but_lost)
        });
        reliability_table(&[r]).lines().nth(2).unwrap().to_string()
    };
    assert_eq!(
        row(0),
        "| crash-mllp-local (local) | 5000 | 2 × kill -9 of mllp-gateway; 10 MLLP connections, 37 messages resent (no accept ACK) | 0 (0 ACKed but lost) | 0 / 0 | 12 / 0 | 0.30 s / 0.30 s | pass |"
    );
    assert!(row(1).ends_with("| FAIL |"), "{}", row(1));
}

#[test]
fn an_mllp_run_without_a_consumer_charts_its_acks() {
    let mut r = report_with_timeline(3);
    let send: crate::mllp::SendSummary = Default::default();
    r.mllp = Some(MllpReport {
        batch_linger_ms: None,
        ingest: false,
        send,
        gateway_starts: 1,
        gateway_exit: "exit status: 0".into(),
        gateway_cpu_ms_total: 1.0,
        gateway_cpu_ms_startup: 0.5,
        gateway_cpu_us_per_message: 1.0,
        gateway_requests: BTreeMap::new(),
        gateway_requests_per_message: BTreeMap::new(),
        entries_per_batch: None,
        requests_partial: false,
        queue_check: Some(QueueCheck::default()),
        acked_but_lost: 0,
    });
    let svg = r.svg().unwrap();
    let doc = roxmltree::Document::parse(&svg).unwrap();
    let texts = texts(&doc);
    assert!(texts.contains(&super::chart::ACKS_AXIS), "{texts:?}");
    assert!(!texts.contains(&EVENTS_AXIS), "{texts:?}");
    assert!(
        texts
            .iter()
            .any(|t| t.starts_with("MLLP ACK latency per second")),
        "{texts:?}"
    );
    // With a consumer the events are charted, as in any run.
    r.mllp.as_mut().unwrap().ingest = true;
    let svg = r.svg().unwrap();
    let doc = roxmltree::Document::parse(&svg).unwrap();
    assert!(texts_of(&doc).contains(&EVENTS_AXIS.to_string()));
    // An AA'd message that is lost fails the run.
    assert!(r.passed());
    r.mllp.as_mut().unwrap().acked_but_lost = 1;
    assert!(!r.passed());
}

fn texts_of(doc: &roxmltree::Document<'_>) -> Vec<String> {
    texts(doc).into_iter().map(String::from).collect()
}
