//! Asynchronous Textract end to end, with the real `doc-pipeline` binary on the local backend
//! and a replay server on loopback standing in for Textract (moto's Textract returns canned
//! blocks and has no completion channel). The server speaks Textract's JSON protocol
//! (`X-Amz-Target: Textract.<Operation>`, `application/x-amz-json-1.1`) and answers with
//! responses shaped like the service model; the test plays SNS by putting the completion
//! notification on the completion queue.
//!
//! The worker that starts the job is stopped before the job completes; a second, fresh worker
//! process collects the finished job (two result pages) and writes results, record and
//! exactly one event.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use fleet_core::Backend;
use fleet_core::ports::OutgoingMessage;
use fleet_docs::s3event;
use fleet_local::{LocalBackend, QueueSpec};
use fleet_testkit::workers::{Worker, assert_no_phi, wait_drained};
use serde_json::{Value, json};

const UPLOADS: &str = "uploads";
const QUEUE: &str = "doc-in";
const DLQ: &str = "doc-in-dlq";
const COMPLETIONS: &str = "textract-done";
const TAP: &str = "tap";
const BUS: &str = "fleet";
const KEY: &str = "scans/Quillfeather discharge 2+pages.pdf";

/// What the replay server saw: (operation, request JSON).
type Seen = Arc<Mutex<Vec<(String, Value)>>>;

fn line(id: &str, page: i64, text: &str, top: f64) -> Value {
    json!({
        "BlockType": "LINE", "Id": id, "Page": page, "Text": text, "Confidence": 99.2,
        "Geometry": {"BoundingBox": {"Width": 0.6, "Height": 0.02, "Left": 0.1, "Top": top},
                     "Polygon": [{"X": 0.1, "Y": top}, {"X": 0.7, "Y": top},
                                 {"X": 0.7, "Y": top + 0.02}, {"X": 0.1, "Y": top + 0.02}]}
    })
}

fn page_block(id: &str, page: i64, children: &[&str]) -> Value {
    json!({
        "BlockType": "PAGE", "Id": id, "Page": page,
        "Geometry": {"BoundingBox": {"Width": 1.0, "Height": 1.0, "Left": 0.0, "Top": 0.0}},
        "Relationships": [{"Type": "CHILD", "Ids": children}]
    })
}

/// GetDocumentTextDetection: page 1 with a NextToken, then page 2.
fn result_page(next_token: Option<&str>) -> Value {
    match next_token {
        None => json!({
            "JobStatus": "SUCCEEDED",
            "DocumentMetadata": {"Pages": 2},
            "DetectDocumentTextModelVersion": "1.0",
            "NextToken": "page-2-token",
            "Blocks": [
                page_block("p1", 1, &["l1", "l2"]),
                line("l1", 1, "Discharge summary for Rosalind Quillfeather", 0.1),
                line("l2", 1, "She denies chest pain.", 0.15),
            ]
        }),
        Some(_) => json!({
            "JobStatus": "SUCCEEDED",
            "DocumentMetadata": {"Pages": 2},
            "DetectDocumentTextModelVersion": "1.0",
            "Blocks": [
                page_block("p2", 2, &["l3"]),
                line("l3", 2, "metformin 500 mg oral tablet twice daily", 0.1),
            ]
        }),
    }
}

async fn textract(
    axum::extract::State(seen): axum::extract::State<Seen>,
    headers: HeaderMap,
    body: String,
) -> impl IntoResponse {
    let target = headers
        .get("x-amz-target")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    let op = target
        .strip_prefix("Textract.")
        .unwrap_or(&target)
        .to_string();
    let request: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
    seen.lock().unwrap().push((op.clone(), request.clone()));
    let answer = match op.as_str() {
        "StartDocumentTextDetection" => json!({"JobId": "job-0001"}),
        "GetDocumentTextDetection" => result_page(request["NextToken"].as_str()),
        _ => {
            return (
                StatusCode::BAD_REQUEST,
                [("content-type", "application/x-amz-json-1.1")],
                json!({"__type": "InvalidParameterException", "message": "unexpected"}).to_string(),
            );
        }
    };
    (
        StatusCode::OK,
        [("content-type", "application/x-amz-json-1.1")],
        answer.to_string(),
    )
}

async fn start_replay_server() -> (String, Seen) {
    let seen: Seen = Arc::default();
    let app = axum::Router::new()
        .route("/", axum::routing::post(textract))
        .with_state(seen.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (url, seen)
}

fn provision(local: &LocalBackend) {
    let spec = |redrive| QueueSpec {
        visibility_timeout: Duration::from_secs(60),
        redrive,
        ..QueueSpec::default()
    };
    local.create_queue(DLQ, spec(None)).unwrap();
    local
        .create_queue(QUEUE, spec(Some((DLQ.into(), 5))))
        .unwrap();
    local
        .create_queue(COMPLETIONS, spec(Some((DLQ.into(), 5))))
        .unwrap();
    local.create_queue(TAP, spec(None)).unwrap();
    local
        .put_rule(BUS, "docs", r#"{"source":["fleet.doc-pipeline"]}"#, TAP)
        .unwrap();
}

fn env(dir: &std::path::Path, textract_url: &str) -> Vec<(&'static str, String)> {
    vec![
        ("FLEET_BACKEND", "local".into()),
        (
            "FLEET_LOCAL_DB",
            dir.join("fleet.sqlite").display().to_string(),
        ),
        (
            "FLEET_LOCAL_OBJECTS",
            dir.join("objects").display().to_string(),
        ),
        ("FLEET_DOC_QUEUE", QUEUE.into()),
        ("FLEET_DOC_COMPLETION_QUEUE", COMPLETIONS.into()),
        ("FLEET_EVENT_BUS", BUS.into()),
        ("FLEET_DOC_TABLE", "docs".into()),
        ("FLEET_DOC_RESULTS_BUCKET", "results".into()),
        ("FLEET_DOC_OCR", "textract".into()),
        ("FLEET_DOC_EXTRACTOR", "rules".into()),
        (
            "FLEET_TEXTRACT_SNS_TOPIC_ARN",
            "arn:aws:sns:us-east-1:123456789012:textract-done".into(),
        ),
        (
            "FLEET_TEXTRACT_ROLE_ARN",
            "arn:aws:iam::123456789012:role/textract-publish".into(),
        ),
        ("FLEET_ALLOW_UNENCRYPTED", "1".into()),
        ("FLEET_WAIT_TIME_SECS", "1".into()),
        ("FLEET_DRAIN_DEADLINE_SECS", "5".into()),
        ("FLEET_LOG", "trace".into()),
        ("AWS_ENDPOINT_URL_TEXTRACT", textract_url.into()),
        ("AWS_REGION", "us-east-1".into()),
        ("AWS_ACCESS_KEY_ID", "testing".into()),
        ("AWS_SECRET_ACCESS_KEY", "testing".into()),
    ]
}

#[tokio::test(flavor = "multi_thread")]
async fn local_async_textract_job_started_by_one_worker_is_collected_by_a_restarted_one() {
    let dir = tempfile::tempdir().unwrap();
    let local = fleet_testkit::local_backend(dir.path());
    provision(&local);
    let (url, seen) = start_replay_server().await;

    let pdf = fleet_docs_local::render::text_to_pdf("two pages, read by Textract");
    let meta = local
        .objects(UPLOADS)
        .put(KEY, pdf, "application/pdf")
        .await
        .unwrap();
    let queue = local.queue(QUEUE).await.unwrap();
    queue
        .send(OutgoingMessage {
            body: s3event::object_created_event(UPLOADS, KEY, meta.size, "etag-1"),
            ..OutgoingMessage::default()
        })
        .await
        .unwrap();

    // Worker 1 starts the job and acknowledges the upload.
    let mut first = Worker::start(
        "doc-pipeline",
        &[],
        &env(dir.path(), &url),
        dir.path().join("w1.log"),
    );
    wait_drained(queue.as_ref(), Duration::from_secs(60)).await;
    let start = {
        let seen = seen.lock().unwrap();
        let starts: Vec<_> = seen
            .iter()
            .filter(|(op, _)| op == "StartDocumentTextDetection")
            .collect();
        assert_eq!(starts.len(), 1, "one job started: {seen:?}");
        starts[0].1.clone()
    };
    let (_, status) = first.terminate(Duration::from_secs(30));
    assert!(status.success());
    let token = start["ClientRequestToken"].as_str().unwrap().to_string();
    assert_eq!(
        start["JobTag"],
        token.as_str(),
        "the job tag carries the token back"
    );
    assert_eq!(start["DocumentLocation"]["S3Object"]["Bucket"], UPLOADS);
    assert_eq!(start["DocumentLocation"]["S3Object"]["Name"], KEY);
    assert_eq!(
        start["NotificationChannel"]["SNSTopicArn"],
        "arn:aws:sns:us-east-1:123456789012:textract-done"
    );
    assert!(
        !seen
            .lock()
            .unwrap()
            .iter()
            .any(|(op, _)| op == "GetDocumentTextDetection"),
        "nothing collected before the completion"
    );
    assert!(local.list_bus_events(BUS).unwrap().is_empty());

    // Textract finishes; SNS delivers the completion to the completion queue.
    let note =
        fleet_docs::completion::notification_json("job-0001", "SUCCEEDED", &token, UPLOADS, KEY);
    let sns = json!({
        "Type": "Notification",
        "MessageId": "11111111-2222-3333-4444-555555555555",
        "TopicArn": "arn:aws:sns:us-east-1:123456789012:textract-done",
        "Message": note,
        "Timestamp": "2026-12-01T10:00:00.000Z",
    })
    .to_string();
    let completions = local.queue(COMPLETIONS).await.unwrap();
    for _ in 0..2 {
        // Delivered twice (SNS and SQS are at-least-once): still one record, one event id.
        completions
            .send(OutgoingMessage {
                body: sns.clone(),
                ..OutgoingMessage::default()
            })
            .await
            .unwrap();
    }

    // Worker 2, a fresh process, collects the job.
    let mut second = Worker::start(
        "doc-pipeline",
        &[],
        &env(dir.path(), &url),
        dir.path().join("w2.log"),
    );
    wait_drained(completions.as_ref(), Duration::from_secs(60)).await;
    let deadline = Instant::now() + Duration::from_secs(30);
    while local.list_bus_events(BUS).unwrap().is_empty() && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (_, status) = second.terminate(Duration::from_secs(30));
    let log = format!("{}{}", first.log_text(), second.log_text());
    assert!(status.success(), "{log}");

    let gets: Vec<Value> = seen
        .lock()
        .unwrap()
        .iter()
        .filter(|(op, _)| op == "GetDocumentTextDetection")
        .map(|(_, r)| r.clone())
        .collect();
    // Both result pages fetched (the two deliveries may have been handled at once, so the
    // calls can interleave).
    assert!(gets.len() >= 2, "both result pages fetched: {gets:?}");
    assert!(gets.iter().all(|g| g["JobId"] == "job-0001"));
    assert!(gets.iter().any(|g| g.get("NextToken").is_none()));
    assert!(gets.iter().any(|g| g["NextToken"] == "page-2-token"));

    let events = local.list_bus_events(BUS).unwrap();
    // Issue 15 item 10: the job is settled once; whichever delivery comes second publishes
    // nothing more.
    assert_eq!(
        events.len(),
        1,
        "the redelivered completion publishes nothing more"
    );
    let payload = &events[0]["detail"]["payload"];
    assert_eq!(payload["ocr"]["engine"], "textract");
    assert_eq!(payload["ocr"]["pages"], 2);
    let docs: Vec<_> = local
        .table_records("docs")
        .unwrap()
        .into_iter()
        .filter(|r| r.sk == "DOCUMENT")
        .collect();
    assert_eq!(docs.len(), 1);

    let (bytes, _) = local
        .objects("results")
        .get(payload["results"]["key"].as_str().unwrap())
        .await
        .unwrap()
        .expect("results object");
    let results: Value = serde_json::from_slice(&bytes).unwrap();
    assert_eq!(
        results["text"],
        "Discharge summary for Rosalind Quillfeather\nShe denies chest pain.\n\nmetformin 500 mg oral tablet twice daily"
    );
    let entities = results["entities"].as_array().unwrap();
    assert!(
        entities
            .iter()
            .any(|e| e["category"] == "MEDICATION" && e["text"] == "metformin")
    );
    assert!(entities.iter().any(|e| {
        e["text"] == "chest pain"
            && e["traits"]
                .as_array()
                .unwrap()
                .iter()
                .any(|t| t["name"] == "NEGATION")
    }));
    assert!(local.queue_messages_snapshot(DLQ).unwrap().is_empty());
    assert_no_phi(
        &log,
        &[
            "Quillfeather".into(),
            "Rosalind".into(),
            "metformin".into(),
            "denies chest".into(),
        ],
    );
}

/// Issue 15 item 10 with the real binary: the completion of a started job never arrives; the
/// worker's own sweeper (here looking at jobs of any age, every second) collects the job by
/// its recorded id and finishes the document: one record, one event.
#[tokio::test(flavor = "multi_thread")]
async fn item10_lost_textract_completion_is_swept_by_the_running_worker() {
    let dir = tempfile::tempdir().unwrap();
    let local = fleet_testkit::local_backend(dir.path());
    provision(&local);
    let (url, seen) = start_replay_server().await;
    let pdf = fleet_docs_local::render::text_to_pdf("two pages, read by Textract");
    let meta = local
        .objects(UPLOADS)
        .put(KEY, pdf, "application/pdf")
        .await
        .unwrap();
    local
        .queue(QUEUE)
        .await
        .unwrap()
        .send(OutgoingMessage {
            body: s3event::object_created_event(UPLOADS, KEY, meta.size, "etag-1"),
            ..OutgoingMessage::default()
        })
        .await
        .unwrap();

    let mut env = env(dir.path(), &url);
    env.push(("FLEET_DOC_OCR_SWEEP_AFTER_SECS", "0".into()));
    env.push(("FLEET_DOC_OCR_SWEEP_INTERVAL_SECS", "1".into()));
    let mut worker = Worker::start("doc-pipeline", &[], &env, dir.path().join("w.log"));
    let deadline = Instant::now() + Duration::from_secs(60);
    while local.list_bus_events(BUS).unwrap().is_empty() && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (_, status) = worker.terminate(Duration::from_secs(30));
    let log = worker.log_text();
    assert!(status.success(), "{log}");

    let events = local.list_bus_events(BUS).unwrap();
    assert_eq!(events.len(), 1, "swept once: {log}");
    assert_eq!(events[0]["detail"]["payload"]["ocr"]["pages"], 2);
    let seen = seen.lock().unwrap();
    assert!(
        seen.iter()
            .any(|(op, r)| op == "GetDocumentTextDetection" && r["JobId"] == "job-0001"),
        "collected by the recorded job id: {seen:?}"
    );
    assert!(log.contains("OCR job finished by the sweeper"), "{log}");
    assert!(local.queue_messages_snapshot(DLQ).unwrap().is_empty());
    assert_no_phi(&log, &[KEY.to_string(), "Quillfeather".to_string()]);
}
