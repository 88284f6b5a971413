//! One trace from the MLLP gateway to the notification (issue 20), across three processes and
//! the local backend's queues and bus: the real `mllp-gateway`, `hl7-ingest` and `notify`
//! export their spans over OTLP/HTTP to a receiver that decodes them with the OpenTelemetry
//! protocol's own Python bindings (`scripts/otlp-receiver`: pinned `opentelemetry-proto` in
//! `.venv-otlp`; `FLEET_OTLP_PYTHON` names its interpreter). One ADT A01 sent over MLLP must
//! give one connected trace with the spans, kinds, parents and links below, and no span may
//! carry a patient's value.

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fleet_core::trace_context;
use fleet_local::{LocalBackend, QueueSpec};
use fleet_samples::hl7 as samples;
use fleet_testkit::workers::Worker;
use mllp_gateway::client::{Client, ConnectOptions};
use serde_json::Value;

const HL7_QUEUE: &str = "hl7-inbound";
const NOTIFY_QUEUE: &str = "notify-inbound";
const BUS: &str = "fleet";
const TOPIC: &str = "care-team-4east";
const RULES: &str = include_str!("../../../workers/notify/rules.example.toml");

/// The receiver, a child process killed when the test ends.
struct Receiver {
    child: Child,
    spans: PathBuf,
    url: String,
}

impl Drop for Receiver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

// A test helper polling a file a child process writes: blocking for 20 ms is what it is for.
#[allow(clippy::disallowed_methods)]
fn start_receiver(dir: &Path) -> Receiver {
    let python = fleet_core::env::get(fleet_core::env::OTLP_PYTHON).unwrap_or_else(|| {
        panic!(
            "{} is not set. The trace test sends spans to the pinned OTLP receiver: run it with \
             `scripts/test`, or `scripts/otlp-receiver install` and \
             `export {}=$(scripts/otlp-receiver python)`.",
            fleet_core::env::OTLP_PYTHON,
            fleet_core::env::OTLP_PYTHON
        )
    });
    let spans = dir.join("spans.jsonl");
    let port_file = dir.join("otlp.port");
    let child = Command::new(&python)
        .arg(repo().join("scripts/otlp_receiver.py"))
        .arg(&spans)
        .arg(&port_file)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(dir.join("otlp.log")).unwrap())
        .spawn()
        .unwrap_or_else(|e| panic!("starting the OTLP receiver with {python}: {e}"));
    let mut receiver = Receiver {
        child,
        spans,
        url: String::new(),
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Ok(port) = std::fs::read_to_string(&port_file)
            && let Ok(port) = port.trim().parse::<u16>()
        {
            receiver.url = format!("http://127.0.0.1:{port}");
            return receiver;
        }
        if let Some(status) = receiver.child.try_wait().unwrap() {
            panic!(
                "the OTLP receiver exited {status}: {}",
                std::fs::read_to_string(dir.join("otlp.log")).unwrap_or_default()
            );
        }
        assert!(
            Instant::now() < deadline,
            "the OTLP receiver did not listen"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn provision(dir: &Path) -> LocalBackend {
    let local = LocalBackend::open(&dir.join("fleet.sqlite"), &dir.join("objects")).unwrap();
    for (queue, dlq) in [
        (HL7_QUEUE, "hl7-inbound-dlq"),
        (NOTIFY_QUEUE, "notify-inbound-dlq"),
    ] {
        local.create_queue(dlq, QueueSpec::default()).unwrap();
        local
            .create_queue(
                queue,
                QueueSpec {
                    redrive: Some((dlq.to_string(), 5)),
                    ..QueueSpec::default()
                },
            )
            .unwrap();
    }
    local
        .put_rule(
            BUS,
            "events-to-notify",
            r#"{"source":["fleet.hl7-ingest"]}"#,
            NOTIFY_QUEUE,
        )
        .unwrap();
    local.create_topic(TOPIC).unwrap();
    std::fs::write(dir.join("rules.toml"), RULES).unwrap();
    local
}

async fn send_adt(addr: SocketAddr, message: &str) -> String {
    let mut client = Client::connect(&addr.to_string(), &ConnectOptions::default())
        .await
        .unwrap();
    let ack = client
        .exchange(message.as_bytes(), Duration::from_secs(30))
        .await
        .unwrap();
    client.close().await;
    String::from_utf8_lossy(&ack).into_owned()
}

fn read_spans(path: &Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn one<'a>(spans: &'a [Value], service: &str, name: &str) -> &'a Value {
    let found: Vec<&Value> = spans
        .iter()
        .filter(|s| s["service"] == service && s["name"] == name)
        .collect();
    assert_eq!(
        found.len(),
        1,
        "one {name:?} span from {service}; spans: {:#?}",
        spans
            .iter()
            .map(|s| format!("{} {} {}", s["service"], s["name"], s["kind"]))
            .collect::<Vec<_>>()
    );
    found[0]
}

fn links_to(span: &Value, other: &Value) -> bool {
    span["links"]
        .as_array()
        .unwrap()
        .iter()
        .any(|l| l["span_id"] == other["span_id"] && l["trace_id"] == other["trace_id"])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_adt_message_makes_one_connected_trace_from_the_gateway_to_the_notification() {
    let dir = tempfile::tempdir().unwrap();
    let receiver = start_receiver(dir.path());
    let local = provision(dir.path());
    let backend_env = |service: &str| {
        vec![
            ("FLEET_BACKEND", "local".to_string()),
            (
                "FLEET_LOCAL_DB",
                dir.path().join("fleet.sqlite").display().to_string(),
            ),
            (
                "FLEET_LOCAL_OBJECTS",
                dir.path().join("objects").display().to_string(),
            ),
            ("FLEET_ALLOW_UNENCRYPTED", "1".to_string()),
            ("FLEET_WAIT_TIME_SECS", "1".to_string()),
            ("FLEET_DRAIN_DEADLINE_SECS", "5".to_string()),
            ("OTEL_EXPORTER_OTLP_ENDPOINT", receiver.url.clone()),
            ("OTEL_SERVICE_NAME", service.to_string()),
        ]
    };
    let route = format!("ADT^*={HL7_QUEUE}");
    let mut gateway = Worker::start(
        "mllp-gateway",
        &["--listen", "127.0.0.1:0", "--route", &route],
        &backend_env("mllp-gateway"),
        dir.path().join("gateway.log"),
    );
    let mut ingest_env = backend_env("hl7-ingest");
    ingest_env.extend([
        ("FLEET_HL7_QUEUE", HL7_QUEUE.to_string()),
        ("FLEET_EVENT_BUS", BUS.to_string()),
        ("FLEET_HL7_TABLE", "hl7-records".to_string()),
    ]);
    let mut ingest = Worker::start(
        "hl7-ingest",
        &[],
        &ingest_env,
        dir.path().join("ingest.log"),
    );
    let mut notify_env = backend_env("notify");
    notify_env.extend([
        ("FLEET_NOTIFY_QUEUE", NOTIFY_QUEUE.to_string()),
        ("FLEET_NOTIFY_TABLE", "notify-records".to_string()),
        (
            "FLEET_NOTIFY_RULES",
            dir.path().join("rules.toml").display().to_string(),
        ),
    ]);
    let mut notify = Worker::start("notify", &[], &notify_env, dir.path().join("notify.log"));

    let sample = samples::generate(20, 1, 0).remove(0);
    let message = samples::adt("A01", "TRACE0001", &sample.patient, 5, 1);
    let addr = gateway.gateway_addr().await;
    let ack = send_adt(addr, &message).await;
    assert!(ack.contains("MSA|CA|TRACE0001"), "ACK: {ack:?}");

    // The notification arrives; its traceparent attribute names the notify's send span.
    let deadline = Instant::now() + Duration::from_secs(60);
    let entry = loop {
        if let Some(e) = local.outbox().unwrap().into_iter().next() {
            break e;
        }
        assert!(
            Instant::now() < deadline,
            "no notification within 60 s; notify log:\n{}",
            notify.log_text()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };

    // Stopping each worker flushes its exporter.
    for w in [&mut gateway, &mut ingest, &mut notify] {
        let (_, status) = w.terminate(Duration::from_secs(30));
        assert!(status.success(), "{status}; log:\n{}", w.log_text());
    }
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut spans = read_spans(&receiver.spans);
    while spans.len() < 9 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
        spans = read_spans(&receiver.spans);
    }

    let mllp = one(&spans, "mllp-gateway", "receive mllp");
    let send_hl7 = one(&spans, "mllp-gateway", &format!("send {HL7_QUEUE}"));
    let receive_hl7 = one(&spans, "hl7-ingest", &format!("receive {HL7_QUEUE}"));
    let process_hl7 = one(&spans, "hl7-ingest", &format!("process {HL7_QUEUE}"));
    let publish = one(&spans, "hl7-ingest", &format!("send {BUS}"));
    let receive_notify = one(&spans, "notify", &format!("receive {NOTIFY_QUEUE}"));
    let process_notify = one(&spans, "notify", &format!("process {NOTIFY_QUEUE}"));
    let send_topic = one(&spans, "notify", &format!("send {TOPIC}"));

    // Kinds.
    for (span, kind) in [
        (mllp, "SERVER"),
        (send_hl7, "PRODUCER"),
        (receive_hl7, "CLIENT"),
        (process_hl7, "CONSUMER"),
        (publish, "PRODUCER"),
        (receive_notify, "CLIENT"),
        (process_notify, "CONSUMER"),
        (send_topic, "PRODUCER"),
    ] {
        assert_eq!(span["kind"], kind, "{}", span["name"]);
    }

    // One trace, parent to child, from the MLLP message to the SNS publish.
    let trace = mllp["trace_id"].clone();
    assert_eq!(mllp["parent_span_id"], "", "the MLLP message is the root");
    for (child, parent) in [
        (send_hl7, mllp),
        (process_hl7, send_hl7),
        (publish, process_hl7),
        (process_notify, publish),
        (send_topic, process_notify),
    ] {
        assert_eq!(child["trace_id"], trace, "{}", child["name"]);
        assert_eq!(
            child["parent_span_id"], parent["span_id"],
            "{} is a child of {}",
            child["name"], parent["name"]
        );
    }
    // Receives link to the producers of what they brought; each process span links back.
    assert!(links_to(receive_hl7, send_hl7));
    assert!(links_to(receive_notify, publish));
    assert!(links_to(process_hl7, receive_hl7));
    assert!(links_to(process_notify, receive_notify));

    // Messaging attributes of the conventions.
    assert_eq!(process_hl7["attributes"]["messaging.system"], "aws_sqs");
    assert_eq!(
        process_hl7["attributes"]["messaging.destination.name"],
        HL7_QUEUE
    );
    assert_eq!(
        process_hl7["attributes"]["messaging.operation.type"],
        "process"
    );
    assert!(process_hl7["attributes"]["messaging.message.id"].is_string());
    assert_eq!(publish["attributes"]["messaging.system"], "aws_eventbridge");
    assert_eq!(send_topic["attributes"]["messaging.system"], "aws_sns");
    assert_eq!(send_hl7["attributes"]["messaging.operation.type"], "send");

    // The published notification carries the notify send span's context.
    let carried = entry
        .notification
        .attributes
        .get(trace_context::TRACEPARENT_ATTRIBUTE)
        .and_then(|h| trace_context::from_traceparent(h))
        .expect("the notification has a traceparent attribute");
    assert_eq!(
        carried.trace_id().to_string(),
        trace.as_str().unwrap(),
        "the notification's trace"
    );
    assert_eq!(
        carried.span_id().to_string(),
        send_topic["span_id"].as_str().unwrap()
    );

    // No span carries a value of the patient's (or anything of the body).
    let secrets = [
        sample.patient.mrn.clone(),
        sample.patient.family.clone(),
        sample.patient.given.clone(),
        sample.patient.birth_date.clone(),
        "TRACE0001".to_string(),
    ];
    let text = std::fs::read_to_string(&receiver.spans).unwrap();
    for s in &secrets {
        assert!(!text.contains(s.as_str()), "a span holds {s:?}");
    }
    fleet_testkit::workers::assert_no_synthetic_phi("exported spans", &text);

    // Every span of the message's path is in the one trace.
    let traces: BTreeSet<&str> = [
        mllp,
        send_hl7,
        process_hl7,
        publish,
        process_notify,
        send_topic,
    ]
    .iter()
    .map(|s| s["trace_id"].as_str().unwrap())
    .collect();
    assert_eq!(traces.len(), 1);
}
