//! The notify handler on the real local backend (SQLite records, the outbox): templates see
//! only allow-listed fields, PHI in rendered text is refused, redeliveries are deduplicated,
//! and the per-destination rate limit defers and later delivers (paused time).

use std::sync::Arc;
use std::time::Duration;

use fleet_core::{Backend, Destination, ErrorCode};
use fleet_local::LocalBackend;
use fleet_runtime::Failure;
use notify::{NotifyHandler, RateLimiter, Rules};
use serde_json::{Value, json};

const RULES: &str = r#"
[[rule]]
name = "admissions"
destination = "ward-3"
pattern = { source = ["fleet.hl7-ingest"], "detail-type" = ["PatientAdmitted"], detail = { payload = { visit = { class = ["I"] } } } }
fields = ["detail-type", "detail.payload.visit.location.point_of_care", "detail.payload.control_id"]
subject = "Admission to {{ event.detail.payload.visit.location.point_of_care }}"
body = "A patient was admitted to {{ event.detail.payload.visit.location.point_of_care }} ({{ event['detail-type'] }}, message {{ event.detail.payload.control_id }})."
attributes = { team = "ward-3" }

[[rule]]
name = "leaky"
destination = "ward-3"
pattern = '{"source":["fleet.hl7-ingest"],"detail-type":["PatientDischarged"]}'
fields = ["detail.payload.patient.name.family", "detail.payload.visit.location.point_of_care"]
body = "{{ event.detail.payload.patient.name.family }} left {{ event.detail.payload.visit.location.point_of_care }}"

[[rule]]
name = "sneaky"
destination = "ward-3"
pattern = { "detail-type" = ["PatientTransferred"] }
fields = ["detail.payload.visit.location.point_of_care"]
body = "Moved to {{ event.detail.payload.patient.name.family }}"
"#;

fn event(detail_type: &str, event_id: &str, eb_id: &str) -> Value {
    json!({
        "version": "0", "id": eb_id, "source": "fleet.hl7-ingest", "detail-type": detail_type,
        "account": "000000000000", "time": "2026-01-02T03:04:05Z", "region": "local", "resources": [],
        "detail": {"event_id": event_id, "event_type": detail_type, "payload": {
            "control_id": "CTRL42",
            "patient": {"identifiers": [{"id": "MRN900111", "authority": "GEN", "id_type": "MR"}],
                "name": {"family": "Quintanilla", "given": "Rosalind"}, "birth_date": "1961-07-30"},
            "visit": {"class": "I", "location": {"point_of_care": "WARD3", "room": "12"}, "visit_number": "V5550001"}}}
    })
}

struct Env {
    _dir: tempfile::TempDir,
    backend: LocalBackend,
}

fn env() -> Env {
    let dir = tempfile::tempdir().unwrap();
    let backend = LocalBackend::open(
        &dir.path().join("fleet.sqlite"),
        &dir.path().join("objects"),
    )
    .unwrap();
    backend.create_topic("ward-3").unwrap();
    Env { _dir: dir, backend }
}

fn handler(e: &Env, rules: &str, limiter: RateLimiter) -> NotifyHandler {
    NotifyHandler::new(
        Arc::new(Rules::parse(rules).unwrap()),
        e.backend.notifier(),
        e.backend.records("notify"),
        Arc::new(limiter),
    )
}

fn generous() -> RateLimiter {
    RateLimiter::new(1000.0, 1000, Duration::from_secs(5))
}

#[tokio::test]
async fn an_allow_listed_field_is_rendered_and_published_to_the_outbox() {
    let e = env();
    let h = handler(&e, RULES, generous());
    let out = h
        .handle_body(&event("PatientAdmitted", "ev-1", "eb-1").to_string())
        .await
        .unwrap();
    assert_eq!(out.sent.len(), 1);
    let outbox = e.backend.outbox().unwrap();
    assert_eq!(outbox.len(), 1);
    let n = &outbox[0].notification;
    assert_eq!(outbox[0].destination, Destination::Topic("ward-3".into()));
    assert_eq!(n.subject.as_deref(), Some("Admission to WARD3"));
    assert_eq!(
        n.body,
        "A patient was admitted to WARD3 (PatientAdmitted, message CTRL42)."
    );
    assert_eq!(n.attributes["team"], "ward-3");
    assert_eq!(n.attributes["fleet.rule"], "admissions");
    assert_eq!(n.attributes["fleet.event_id"], "ev-1");
    // The JSON-lines file holds the same notification.
    let file = std::fs::read_to_string(e.backend.outbox_path()).unwrap();
    assert_eq!(file.lines().count(), 1);
    assert!(file.contains("Admission to WARD3"));
}

#[tokio::test]
async fn a_pattern_on_a_detail_field_selects_events() {
    let e = env();
    let h = handler(&e, RULES, generous());
    let mut outpatient = event("PatientAdmitted", "ev-2", "eb-2");
    outpatient["detail"]["payload"]["visit"]["class"] = json!("O");
    let out = h.handle_body(&outpatient.to_string()).await.unwrap();
    assert!(out.sent.is_empty());
    assert!(e.backend.outbox().unwrap().is_empty());
}

#[tokio::test]
async fn a_phi_field_in_the_rendered_text_is_refused_and_nothing_is_sent() {
    let e = env();
    let h = handler(&e, RULES, generous());
    let err = h
        .handle_body(&event("PatientDischarged", "ev-3", "eb-3").to_string())
        .await
        .unwrap_err();
    match err {
        Failure::Permanent { code, detail } => {
            assert_eq!(code, ErrorCode::NotifyPhiInText);
            assert!(detail.contains("leaky"), "{detail}");
            assert!(
                !detail.contains("Quintanilla"),
                "the detail must not quote the value"
            );
        }
        other => panic!("expected a permanent failure, got {other:?}"),
    }
    assert!(e.backend.outbox().unwrap().is_empty());
}

#[tokio::test]
async fn a_field_outside_the_allow_list_is_not_visible_to_the_template() {
    let e = env();
    let h = handler(&e, RULES, generous());
    let err = h
        .handle_body(&event("PatientTransferred", "ev-4", "eb-4").to_string())
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            Failure::Permanent {
                code: ErrorCode::NotifyTemplateInvalid,
                ..
            }
        ),
        "{err:?}"
    );
    assert!(e.backend.outbox().unwrap().is_empty());
}

#[tokio::test]
async fn the_same_event_delivered_twice_or_republished_is_notified_once() {
    let e = env();
    let h = handler(&e, RULES, generous());
    let body = event("PatientAdmitted", "ev-5", "eb-5").to_string();
    assert_eq!(h.handle_body(&body).await.unwrap().sent.len(), 1);
    let again = h.handle_body(&body).await.unwrap();
    assert!(again.sent.is_empty());
    assert_eq!(again.duplicates, vec!["admissions".to_string()]);
    // A republish by hl7-ingest: a new EventBridge id, the same fleet event id.
    let republished = event("PatientAdmitted", "ev-5", "eb-5-again").to_string();
    assert!(h.handle_body(&republished).await.unwrap().sent.is_empty());
    // Inside an SNS envelope, still the same event.
    let wrapped = json!({"Type": "Notification", "Message": body}).to_string();
    assert!(h.handle_body(&wrapped).await.unwrap().sent.is_empty());
    assert_eq!(e.backend.outbox().unwrap().len(), 1);
    // A different event is notified.
    let other = event("PatientAdmitted", "ev-6", "eb-6").to_string();
    assert_eq!(h.handle_body(&other).await.unwrap().sent.len(), 1);
    assert_eq!(e.backend.outbox().unwrap().len(), 2);
}

#[tokio::test]
async fn bodies_that_are_not_events_and_missing_topics_are_permanent_failures() {
    let e = env();
    let h = handler(&e, RULES, generous());
    let err = h.handle_body("MSH|^~\\&|not json").await.unwrap_err();
    assert!(
        matches!(
            err,
            Failure::Permanent {
                code: ErrorCode::NotifyEventInvalid,
                ..
            }
        ),
        "{err:?}"
    );

    let rules = RULES.replace(
        "destination = \"ward-3\"",
        "destination = \"no-such-topic\"",
    );
    let h = handler(&e, &rules, generous());
    let err = h
        .handle_body(&event("PatientAdmitted", "ev-7", "eb-7").to_string())
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            Failure::Permanent {
                code: ErrorCode::NotifyDestinationInvalid,
                ..
            }
        ),
        "{err:?}"
    );
    // The claim was abandoned: once the topic exists, the retry goes out.
    e.backend.create_topic("no-such-topic").unwrap();
    let out = h
        .handle_body(&event("PatientAdmitted", "ev-7", "eb-7").to_string())
        .await
        .unwrap();
    assert_eq!(out.sent.len(), 1);
}

#[test]
fn rules_files_with_mistakes_are_refused_with_the_rule_named() {
    let cases = [
        (
            RULES.replace("destination = \"ward-3\"", "destination = \"sms:12\""),
            "destination",
        ),
        (
            RULES.replace("{{ event['detail-type'] }}", "{{ event[ }}"),
            "body template",
        ),
        (
            RULES.replace(
                "visit = { class = [\"I\"] }",
                "visit = { class = [{ wildcard = \"I*\" }] }",
            ),
            "pattern",
        ),
        ("[[rule]]\nname = \"x\"\n".to_string(), "TOML"),
        (String::new(), "no [[rule]]"),
    ];
    for (text, needle) in cases {
        let err = Rules::parse(&text).unwrap_err().to_string();
        assert!(err.contains(needle), "{err:?} should mention {needle:?}");
    }
}

#[tokio::test(start_paused = true)]
async fn the_rate_limit_defers_the_excess_and_later_delivers_it() {
    let e = env();
    // 4 per second, a burst of 2, at most 300 ms of waiting inside the handler.
    let h = handler(
        &e,
        RULES,
        RateLimiter::new(4.0, 2, Duration::from_millis(300)),
    );
    let start = tokio::time::Instant::now();
    let bodies: Vec<String> = (0..5)
        .map(|i| event("PatientAdmitted", &format!("rl-{i}"), &format!("eb-rl-{i}")).to_string())
        .collect();
    // The burst goes at once; the third waits for its slot inside the handler (250 ms).
    for b in &bodies[..3] {
        assert_eq!(h.handle_body(b).await.unwrap().sent.len(), 1);
    }
    assert_eq!(start.elapsed(), Duration::from_millis(250));
    // Concurrently, one of the next two gets the next slot (250 ms on); the other, whose slot
    // is 500 ms away, is deferred rather than dropped. Which is which is a race.
    let (fourth, fifth) = tokio::join!(h.handle_body(&bodies[3]), h.handle_body(&bodies[4]));
    let (sent, deferred, deferred_body) = match (fourth, fifth) {
        (Ok(s), Err(d)) => (s, d, &bodies[4]),
        (Err(d), Ok(s)) => (s, d, &bodies[3]),
        other => panic!("expected one sent and one deferred, got {other:?}"),
    };
    assert_eq!(sent.sent.len(), 1);
    let Failure::Retryable {
        retry_after: Some(after),
        reason,
        ..
    } = deferred
    else {
        panic!("expected a deferral, got {deferred:?}");
    };
    assert_eq!(reason, "destination rate limit");
    assert_eq!(after, Duration::from_millis(500));
    assert_eq!(
        e.backend.outbox().unwrap().len(),
        4,
        "the deferred one is not sent yet"
    );
    // When the deferral is over (the queue redelivers it), it is delivered, once.
    tokio::time::sleep(after).await;
    assert_eq!(h.handle_body(deferred_body).await.unwrap().sent.len(), 1);
    assert!(h.handle_body(deferred_body).await.unwrap().sent.is_empty());
    let outbox = e.backend.outbox().unwrap();
    let ids: Vec<&str> = outbox
        .iter()
        .map(|o| o.notification.attributes["fleet.event_id"].as_str())
        .collect();
    let mut sorted = ids.clone();
    sorted.sort();
    assert_eq!(sorted, ["rl-0", "rl-1", "rl-2", "rl-3", "rl-4"]);
    assert_eq!(ids[..3], ["rl-0", "rl-1", "rl-2"]);
}

/// One test per port-error kind: this worker's handler, given a valid message and a record
/// store that fails with that kind, answers exactly what the fleet's one mapping
/// (`Failure::from_port`) says. hl7-ingest, doc-pipeline and notify each carry this module,
/// so all three give the same answer for the same port error.
mod port_errors {
    use super::*;
    use fleet_core::RecordStore;
    use fleet_runtime::testing::delivery;
    use fleet_runtime::{Handler, Outcome};

    fleet_runtime::port_error_tests!(outcome_with_failing_records);

    async fn outcome_with_failing_records(records: Arc<dyn RecordStore>) -> Outcome {
        let e = env();
        let h = NotifyHandler::new(
            Arc::new(Rules::parse(RULES).unwrap()),
            e.backend.notifier(),
            records,
            Arc::new(generous()),
        );
        h.handle(&delivery(
            event("PatientAdmitted", "ev-port", "eb-port").to_string(),
        ))
        .await
    }
}
