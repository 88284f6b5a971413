use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::*;

// Every test uses worker names of its own: the recorder is process-wide, and `cargo test` runs
// tests as threads of one process.

#[tokio::test(start_paused = true)]
async fn liveness_fails_only_after_the_threshold_without_progress() {
    let h = Health::new(Duration::from_secs(90));
    assert!(h.is_live());
    tokio::time::advance(Duration::from_secs(89)).await;
    assert!(h.is_live());
    tokio::time::advance(Duration::from_secs(2)).await;
    assert!(!h.is_live(), "91 s without a completed receive is a stall");
    h.progress();
    assert!(h.is_live());
    tokio::time::advance(Duration::from_secs(100)).await;
    assert!(!h.is_live());
    // Waiting for a free handler slot is not a stall.
    h.waiting_for_slots(true);
    assert!(h.is_live());
    tokio::time::advance(Duration::from_secs(100)).await;
    assert!(h.is_live());
    h.waiting_for_slots(false);
    assert!(h.is_live());
    tokio::time::advance(Duration::from_secs(91)).await;
    assert!(!h.is_live());
    // Nor is a shutdown in progress.
    h.set_shutting_down();
    assert!(h.is_live());
    assert!(!h.is_ready());
}

#[test]
fn prometheus_text_has_counters_histograms_and_escaped_labels() {
    let t = Telemetry::new("w\"1", "q", Duration::from_secs(90));
    ReceiveCompleted { count: 3 }.emit(&t);
    HandlerFinished {
        elapsed: Duration::from_millis(7),
    }
    .emit(&t);
    HandlerFinished {
        elapsed: Duration::from_secs(2000),
    }
    .emit(&t);
    fleet_core::requests::count("test.Prometheus");
    let text = t.render_prometheus();
    assert!(
        text.contains("fleet_messages_received_total{worker=\"w\\\"1\",queue=\"q\"} 3"),
        "{text}"
    );
    assert!(
        text.contains("fleet_handler_seconds_bucket{worker=\"w\\\"1\",queue=\"q\",le=\"0.005\"} 0"),
        "{text}"
    );
    assert!(
        text.contains("fleet_handler_seconds_bucket{worker=\"w\\\"1\",queue=\"q\",le=\"0.01\"} 1"),
        "{text}"
    );
    assert!(
        text.contains("fleet_handler_seconds_bucket{worker=\"w\\\"1\",queue=\"q\",le=\"900\"} 1"),
        "{text}"
    );
    assert!(
        text.contains("fleet_handler_seconds_bucket{worker=\"w\\\"1\",queue=\"q\",le=\"+Inf\"} 2"),
        "{text}"
    );
    assert!(
        text.contains("fleet_handler_seconds_count{worker=\"w\\\"1\",queue=\"q\"} 2"),
        "{text}"
    );
    assert!(
        text.contains("fleet_backend_requests_total{api=\"test.Prometheus\"}"),
        "{text}"
    );
    assert!(
        text.contains("fleet_up{worker=\"w\\\"1\",queue=\"q\"} 1"),
        "{text}"
    );
    // The queue-lag histogram keeps its own buckets.
    assert!(
        text.contains(
            "fleet_queue_lag_seconds_bucket{worker=\"w\\\"1\",queue=\"q\",le=\"86400\"} 0"
        ),
        "{text}"
    );
    // Read back, the escaped label is the worker's name again.
    assert_eq!(t.run_totals().count(Count::Received), 3);
}

#[test]
fn metric_tables_are_in_declaration_order() {
    // RunMetrics indexes its handles by discriminant.
    assert!(Count::ALL.iter().enumerate().all(|(i, c)| *c as usize == i));
    assert!(Hist::ALL.iter().enumerate().all(|(i, h)| *h as usize == i));
}

#[test]
fn series_are_read_back_for_one_worker_and_queue_only() {
    let text = "\
# HELP fleet_messages_received_total Messages received.
# TYPE fleet_messages_received_total counter
fleet_messages_received_total{worker=\"a\",queue=\"q\"} 5
fleet_messages_received_total{worker=\"a\",queue=\"other\"} 7
fleet_messages_received_total{worker=\"a \\\"b\\\" \\\\ c\",queue=\"q\"} 9
fleet_handler_seconds_bucket{worker=\"a\",queue=\"q\",le=\"0.1\"} 1
fleet_handler_seconds_sum{worker=\"a\",queue=\"q\"} 0.25
fleet_handler_seconds_count{worker=\"a\",queue=\"q\"} 2
fleet_backend_requests_total{api=\"sqs.ReceiveMessage\"} 4
";
    let a = Series::parse(text, "a", "q");
    assert_eq!(a.count(Count::Received), 5);
    assert_eq!(a.hist(Hist::HandlerSeconds), (2, 0.25));
    assert_eq!(
        a.get("fleet_handler_seconds_bucket"),
        0.0,
        "bucket lines are not series"
    );
    assert_eq!(a.get("fleet_backend_requests_total"), 0.0);
    let escaped = Series::parse(text, "a \"b\" \\ c", "q");
    assert_eq!(escaped.count(Count::Received), 9);
    assert_eq!(Series::parse(text, "a", "other").count(Count::Received), 7);
}

#[test]
fn a_run_reports_what_it_added_to_a_series_an_earlier_run_used() {
    let first = Telemetry::new("report-w", "q", Duration::from_secs(90));
    Succeeded {
        elapsed: Duration::ZERO,
    }
    .emit(&first);
    assert_eq!(first.run_totals().count(Count::Succeeded), 1);
    let second = Telemetry::new("report-w", "q", Duration::from_secs(90));
    for _ in 0..2 {
        Succeeded {
            elapsed: Duration::ZERO,
        }
        .emit(&second);
    }
    assert_eq!(second.run_totals().count(Count::Succeeded), 2);
    // The Prometheus series itself is cumulative, as a scraper expects.
    let all = Series::read("report-w", "q");
    assert_eq!(all.count(Count::Succeeded), 3);
}

#[test]
fn emf_lines_carry_deltas() {
    let t = Telemetry::new("emf-w", "q", Duration::from_secs(90));
    let mut state = EmfState::default();
    for _ in 0..4 {
        Succeeded {
            elapsed: Duration::ZERO,
        }
        .emit(&t);
    }
    for ms in [10, 30] {
        HandlerFinished {
            elapsed: Duration::from_millis(ms),
        }
        .emit(&t);
    }
    let first: serde_json::Value = serde_json::from_str(&t.emf_line(&mut state, 1000)).unwrap();
    assert_eq!(first["messages_succeeded"], 4);
    assert_eq!(first["handler_time_mean"], 20.0);
    assert_eq!(
        first["_aws"]["CloudWatchMetrics"][0]["Dimensions"][0][0],
        "worker"
    );
    Succeeded {
        elapsed: Duration::ZERO,
    }
    .emit(&t);
    let second: serde_json::Value = serde_json::from_str(&t.emf_line(&mut state, 2000)).unwrap();
    assert_eq!(second["messages_succeeded"], 1);
    assert!(second.get("handler_time_mean").is_none());
    assert_eq!(second["_aws"]["Timestamp"], 2000);
}

/// A `Write` the test can read back.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Captured {
    fn lines(&self) -> Vec<serde_json::Value> {
        let bytes = self.0.lock().unwrap().clone();
        String::from_utf8(bytes)
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
            .collect()
    }
}

/// What CloudWatch needs of an EMF line: the namespace, dimensions whose names are top-level
/// strings, and every declared metric a top-level number.
fn assert_valid_emf(line: &serde_json::Value) {
    let directive = &line["_aws"]["CloudWatchMetrics"][0];
    assert_eq!(directive["Namespace"], "Fleet", "{line}");
    assert!(line["_aws"]["Timestamp"].is_i64(), "{line}");
    for set in directive["Dimensions"].as_array().unwrap() {
        for dim in set.as_array().unwrap() {
            assert!(line[dim.as_str().unwrap()].is_string(), "{line}");
        }
    }
    let metrics = directive["Metrics"].as_array().unwrap();
    assert!(!metrics.is_empty(), "{line}");
    for m in metrics {
        let name = m["Name"].as_str().unwrap();
        assert!(
            ["Count", "Milliseconds"].contains(&m["Unit"].as_str().unwrap()),
            "{line}"
        );
        assert!(line[name].is_number(), "{name} missing: {line}");
    }
}

#[tokio::test(start_paused = true)]
async fn emf_lines_are_written_every_interval_and_at_shutdown() {
    let t = Arc::new(Telemetry::new(
        "emf-task-w",
        "q-emf",
        Duration::from_secs(90),
    ));
    let out = Captured::default();
    let stop = CancellationToken::new();
    let task = spawn_periodic(
        t.clone(),
        Some(EmfOutput {
            interval: Duration::from_secs(60),
            out: Box::new(out.clone()),
        }),
        stop.clone(),
    );
    ReceiveCompleted { count: 2 }.emit(&t);
    MessageStarted {
        queue_lag: Duration::from_millis(250),
    }
    .emit(&t);
    tokio::time::sleep(Duration::from_secs(61)).await;
    assert_eq!(out.lines().len(), 1, "one line per interval");
    Retried {
        reason: "transient",
        delay: Duration::from_secs(1),
        in_place: false,
    }
    .emit(&t);
    stop.cancel();
    task.await.unwrap();

    let lines = out.lines();
    assert_eq!(lines.len(), 2, "and a last one at shutdown");
    for line in &lines {
        assert_valid_emf(line);
        assert_eq!(line["worker"], "emf-task-w");
        assert_eq!(line["queue"], "q-emf");
    }
    assert_eq!(lines[0]["messages_received"], 2);
    assert_eq!(lines[0]["queue_lag_mean"], 250.0);
    assert_eq!(lines[1]["messages_received"], 0);
    assert_eq!(lines[1]["messages_retried"], 1);
}

#[tokio::test(start_paused = true)]
async fn without_a_scrape_fleet_up_still_follows_liveness() {
    let t = Arc::new(Telemetry::new("up-w", "q", Duration::from_secs(90)));
    let stop = CancellationToken::new();
    let task = spawn_periodic(t.clone(), None, stop.clone());
    tokio::time::sleep(Duration::from_secs(10)).await;
    assert_eq!(Series::read("up-w", "q").get("fleet_up"), 1.0);
    tokio::time::sleep(Duration::from_secs(100)).await;
    assert_eq!(Series::read("up-w", "q").get("fleet_up"), 0.0, "stalled");
    stop.cancel();
    task.await.unwrap();
}
