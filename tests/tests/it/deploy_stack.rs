//! The deployment template on moto: `deploy/moto/stack.py` creates `deploy/fleet.yaml` through
//! CloudFormation `CreateStack` (then applies, by resource type, what moto's CloudFormation
//! skips or ignores, and lists what it cannot apply). From the stack's outputs alone:
//!
//! - `fleet doctor` passes every check on the stack's queues, DLQs and their alarms, tables,
//!   buckets and topics;
//! - the real binaries (mllp-gateway, hl7-ingest, doc-pipeline, notify) run against it as the
//!   ECS services would: an ADT message sent over MLLP becomes an SNS notification (FIFO queue
//!   -> hl7-ingest -> bus -> the template's rule -> notify's queue -> notify -> the
//!   notifications topic); a document put in the uploads bucket reaches doc-pipeline through the
//!   bucket's notification and ends as a `DocumentProcessed` event on the bus; a poison message
//!   lands in its queue's DLQ with its code.
//!
//! moto serves plain HTTP, so a TLS-only bucket policy (correctly) refuses every object request
//! there: the worker test's stack leaves those statements off (`--skip-conditional-bucket-
//! policies`, listed by the script), and the doctor test's stack has them.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use fleet_core::Backend;
use fleet_core::failure::FailureMetadata;
use fleet_core::ports::OutgoingMessage;
use fleet_samples::hl7::{SamplePatient, adt};
use fleet_testkit::provision::{Provisioner, QueueSetup};
use fleet_testkit::workers::{Worker, assert_no_phi, binary, receive_all};
use fleet_testkit::{MOTO_REGION, aws_backend, moto_endpoint, moto_env, unique};
use mllp_gateway::ack::parse_ack;
use mllp_gateway::client::{Client, ConnectOptions};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// What stack.py printed.
struct Stack {
    outputs: BTreeMap<String, String>,
    not_applied: Vec<serde_json::Value>,
}

impl Stack {
    fn out(&self, key: &str) -> String {
        self.outputs
            .get(key)
            .unwrap_or_else(|| panic!("stack output {key} missing: {:?}", self.outputs))
            .clone()
    }
}

/// A fresh stack of the template on moto. EnvironmentName allows 20 characters.
fn create_stack(extra: &[&str]) -> Stack {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    let name = format!(
        "t{:x}{:x}",
        std::process::id() & 0xfff,
        (nanos / 1000) & 0xff_ffff
    );
    let python = repo().join(".venv-moto/bin/python");
    let out = Command::new(&python)
        .arg(repo().join("deploy/moto/stack.py"))
        .args(["--endpoint", &moto_endpoint(), "--region", MOTO_REGION])
        .args(["--stack", &name, "--template"])
        .arg(repo().join("deploy/fleet.yaml"))
        .args(extra)
        .output()
        .unwrap_or_else(|e| {
            panic!(
                "{}: {e} (scripts/moto install creates it)",
                python.display()
            )
        });
    assert!(
        out.status.success(),
        "stack.py failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let outputs = v["outputs"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(k, v)| (k.clone(), v.as_str().unwrap().to_string()))
        .collect();
    let not_applied = v["not_applied"].as_array().unwrap().clone();
    // What moto cannot take is known and named; anything new (a moto upgrade, a template
    // change) fails here rather than passing unnoticed.
    for n in &not_applied {
        let ty = n["type"].as_str().unwrap();
        let reason = n["reason"].as_str().unwrap();
        let known = ty.starts_with("AWS::ApplicationAutoScaling::")
            || (ty == "AWS::SQS::Queue" && reason.starts_with("RedriveAllowPolicy"))
            || (ty == "AWS::S3::BucketPolicy"
                && extra.contains(&"--skip-conditional-bucket-policies"));
        assert!(known, "not applied on moto, and not a known gap: {n}");
    }
    Stack {
        outputs,
        not_applied,
    }
}

/// The fleet.toml the stack's outputs make (on ECS each task gets the same values as
/// environment variables from its task definition).
fn fleet_toml(s: &Stack, rules: &Path) -> String {
    format!(
        r#"[backend]
backend = "aws"
s3-kms-key-id = "{key}"

[hl7-ingest]
queue = "{hl7}"
event-bus = "{bus}"
table = "{hl7_table}"
claim-check-buckets = "{claims}"

[doc-pipeline]
queue = "{docs}"
completion-queue = "{completions}"
event-bus = "{bus}"
table = "{doc_table}"
results-bucket = "{results}"
upload-buckets = "{uploads}"
textract-sns-topic-arn = "{textract}"
textract-role-arn = "{textract_role}"

[notify]
queue = "{notify}"
table = "{notify_table}"
rules = "{rules}"

[mllp-gateway]
listen = "127.0.0.1:0"
route = "ADT^*={hl7}"
claim-check-bucket = "{claims}"
"#,
        key = s.out("KmsKeyArn"),
        hl7 = s.out("Hl7QueueUrl"),
        bus = s.out("EventBusName"),
        hl7_table = s.out("Hl7TableName"),
        claims = s.out("ClaimCheckBucketName"),
        docs = s.out("DocQueueUrl"),
        completions = s.out("OcrCompletionQueueUrl"),
        doc_table = s.out("DocTableName"),
        results = s.out("ResultsBucketName"),
        uploads = s.out("UploadsBucketName"),
        textract = s.out("TextractTopicArn"),
        textract_role = s.out("TextractRoleArn"),
        notify = s.out("NotifyQueueUrl"),
        notify_table = s.out("NotifyTableName"),
        rules = rules.display(),
    )
}

/// notify's rules: admissions to the stack's notifications topic, with no patient data.
fn write_rules(dir: &Path, s: &Stack) -> PathBuf {
    let rules = dir.join("rules.toml");
    std::fs::write(
        &rules,
        format!(
            r#"[[rule]]
name = "admissions"
destination = "{}"
pattern = {{ source = ["fleet.hl7-ingest"], "detail-type" = ["PatientAdmitted"] }}
fields = ["detail.payload.sending_facility"]
body = "A patient was admitted at {{{{ event.detail.payload.sending_facility }}}}."
"#,
            s.out("NotificationsTopicArn")
        ),
    )
    .unwrap();
    rules
}

#[tokio::test(flavor = "multi_thread")]
async fn deploy_stack_on_moto_passes_every_fleet_doctor_check() {
    let stack = create_stack(&[]);
    let dir = tempfile::tempdir().unwrap();
    let rules = write_rules(dir.path(), &stack);
    let config = dir.path().join("fleet.toml");
    std::fs::write(&config, fleet_toml(&stack, &rules)).unwrap();
    let out = Command::new(binary("fleet"))
        .args(["doctor", "--config"])
        .arg(&config)
        .args(["--output", "json"])
        .envs(moto_env())
        .output()
        .unwrap();
    let report: serde_json::Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stderr)));
    let failed: Vec<&serde_json::Value> = report["checks"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["pass"] == false)
        .collect();
    assert!(failed.is_empty(), "failed on the stack: {failed:#?}");
    assert!(out.status.success() && report["ok"] == true, "{report:#}");
    let checks = report["checks"].as_array().unwrap();
    let kinds: BTreeSet<&str> = checks
        .iter()
        .map(|c| c["check"].as_str().unwrap())
        .collect();
    assert_eq!(kinds.len(), 12, "every kind of check ran: {kinds:?}");
    // Four consumed queues (hl7, uploads, OCR completions, notify), each with its DLQ and the
    // DLQ's two alarms: the template's alarms, created from the template by stack.py.
    let alarm_checks = checks
        .iter()
        .filter(|c| c["check"] == "dlq.alarm-depth" || c["check"] == "dlq.alarm-age")
        .count();
    assert_eq!(alarm_checks, 8, "{report:#}");
    let resources: BTreeSet<&str> = checks
        .iter()
        .map(|c| c["resource"].as_str().unwrap())
        .collect();
    for key in [
        "UploadsBucketName",
        "ResultsBucketName",
        "ClaimCheckBucketName",
        "Hl7TableName",
        "DocTableName",
        "NotifyTableName",
        "NotificationsTopicArn",
        "TextractTopicArn",
    ] {
        assert!(
            resources.contains(stack.out(key).as_str()),
            "{key} was not checked: {resources:?}"
        );
    }
}

fn patient() -> SamplePatient {
    SamplePatient {
        mrn: "MRN77120954".into(),
        family: "Quillfeather".into(),
        given: "Ottoline".into(),
        birth_date: "19640902".into(),
    }
}

/// Poll `queue` until `want` messages have arrived (they are deleted as they are read).
async fn wait_for(
    backend: &dyn Backend,
    queue: &str,
    want: usize,
    what: &str,
    logs: &[&Worker],
) -> Vec<fleet_core::ports::ReceivedMessage> {
    let q = backend.queue(queue).await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(90);
    let mut got = Vec::new();
    while got.len() < want {
        got.extend(receive_all(q.as_ref(), true).await);
        if got.len() >= want {
            break;
        }
        if Instant::now() > deadline {
            let logs: Vec<String> = logs.iter().map(|w| w.log_text()).collect();
            panic!(
                "{what}: {} of {want} after 90 s; logs:\n{}",
                got.len(),
                logs.join("\n----\n")
            );
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    got
}

#[tokio::test(flavor = "multi_thread")]
async fn deploy_stack_on_moto_carries_an_admission_an_upload_and_a_poison_message() {
    let stack = create_stack(&["--skip-conditional-bucket-policies"]);
    assert!(
        stack
            .not_applied
            .iter()
            .any(|n| n["type"] == "AWS::S3::BucketPolicy"),
        "the TLS-only statements are named as left off"
    );
    let backend = aws_backend().await;
    let p = Provisioner::new(&backend);
    // Observers outside the stack: a queue subscribed to the notifications topic, and a rule
    // on the stack's bus copying DocumentProcessed events to another queue.
    let inbox = p
        .create_queue(&unique("stack-inbox"), QueueSetup::default())
        .await
        .unwrap();
    p.subscribe_queue(&stack.out("NotificationsTopicArn"), &inbox, true)
        .await
        .unwrap();
    let tap = p
        .create_queue(&unique("stack-tap"), QueueSetup::default())
        .await
        .unwrap();
    p.put_rule_to_queue(
        &stack.out("EventBusName"),
        &unique("documents-tap"),
        r#"{"source":["fleet.doc-pipeline"],"detail-type":["DocumentProcessed"]}"#,
        &tap,
    )
    .await
    .unwrap();

    let dir = tempfile::tempdir().unwrap();
    let rules = write_rules(dir.path(), &stack);
    let mut env = moto_env();
    env.extend([
        ("FLEET_WAIT_TIME_SECS", "1".into()),
        ("FLEET_DRAIN_DEADLINE_SECS", "5".into()),
        ("FLEET_LOG", "debug".into()),
        ("FLEET_S3_KMS_KEY_ID", stack.out("KmsKeyArn")),
        ("FLEET_EVENT_BUS", stack.out("EventBusName")),
        (
            "FLEET_CLAIM_CHECK_BUCKETS",
            stack.out("ClaimCheckBucketName"),
        ),
    ]);
    let start = |name: &str, args: &[&str], extra: Vec<(&'static str, String)>| {
        let mut env = env.clone();
        env.extend(extra);
        Worker::start(name, args, &env, dir.path().join(format!("{name}.log")))
    };
    let route = format!("ADT^*={}", stack.out("Hl7QueueUrl"));
    let mut gateway = start(
        "mllp-gateway",
        &["--listen", "127.0.0.1:0", "--route", &route],
        vec![(
            "FLEET_MLLP_CLAIM_CHECK_BUCKET",
            stack.out("ClaimCheckBucketName"),
        )],
    );
    let mut hl7 = start(
        "hl7-ingest",
        &[],
        vec![
            ("FLEET_HL7_QUEUE", stack.out("Hl7QueueUrl")),
            ("FLEET_HL7_TABLE", stack.out("Hl7TableName")),
        ],
    );
    let mut docs = start(
        "doc-pipeline",
        &[],
        vec![
            ("FLEET_DOC_QUEUE", stack.out("DocQueueUrl")),
            ("FLEET_DOC_TABLE", stack.out("DocTableName")),
            ("FLEET_DOC_RESULTS_BUCKET", stack.out("ResultsBucketName")),
            ("FLEET_DOC_BUCKETS", stack.out("UploadsBucketName")),
            ("FLEET_DOC_OCR", "tesseract".into()),
            ("FLEET_DOC_EXTRACTOR", "rules".into()),
        ],
    );
    let mut notify = start(
        "notify",
        &[],
        vec![
            ("FLEET_NOTIFY_QUEUE", stack.out("NotifyQueueUrl")),
            ("FLEET_NOTIFY_TABLE", stack.out("NotifyTableName")),
            ("FLEET_NOTIFY_RULES", rules.display().to_string()),
        ],
    );

    // 1. An admission over MLLP: ACKed once on the FIFO queue, then a notification.
    let addr = gateway.gateway_addr().await;
    let pt = patient();
    let message = adt("A01", "STACK0001", &pt, 3, 515151);
    let mut client = Client::connect(&addr.to_string(), &ConnectOptions::default())
        .await
        .unwrap();
    let ack = parse_ack(
        &client
            .exchange(message.as_bytes(), Duration::from_secs(60))
            .await
            .unwrap(),
    )
    .unwrap();
    // The sample asks for enhanced acknowledgements (MSH-15 AL): commit accept.
    assert_eq!(
        (ack.code.as_str(), ack.control_id.as_str()),
        ("CA", "STACK0001")
    );
    client.close().await;
    let workers = [&gateway, &hl7, &docs, &notify];
    let notes = wait_for(&backend, &inbox, 1, "notification", &workers).await;
    assert_eq!(notes.len(), 1);
    assert!(
        notes[0].body.starts_with("A patient was admitted at "),
        "{}",
        notes[0].body
    );

    // 2. An upload: the bucket's notification -> doc-pipeline -> DocumentProcessed.
    let key = "referrals/stack note.txt";
    backend
        .objects(&stack.out("UploadsBucketName"))
        .put(
            key,
            b"Referral: chest pain on exertion, start aspirin 81 mg daily.".to_vec(),
            "text/plain",
        )
        .await
        .unwrap();
    let events = wait_for(&backend, &tap, 1, "DocumentProcessed event", &workers).await;
    let event: serde_json::Value = serde_json::from_str(&events[0].body).unwrap();
    assert_eq!(event["detail-type"], "DocumentProcessed", "{event:#}");
    assert_eq!(event["source"], "fleet.doc-pipeline");

    // 3. A poison message on the uploads queue: dead-lettered by the runtime, with its code,
    // into the DLQ the template's redrive policy names.
    backend
        .queue(&stack.out("DocQueueUrl"))
        .await
        .unwrap()
        .send(OutgoingMessage {
            body: "this is not an S3 event".into(),
            ..OutgoingMessage::default()
        })
        .await
        .unwrap();
    let dead = wait_for(
        &backend,
        &stack.out("DocDlqUrl"),
        1,
        "dead letter",
        &workers,
    )
    .await;
    let failure = FailureMetadata::from_attributes(&dead[0].attributes).expect("fleet.failure");
    assert_eq!(failure.worker, "doc-pipeline", "{failure:?}");
    assert!(!failure.code.as_str().is_empty());

    for w in [&mut gateway, &mut hl7, &mut docs, &mut notify] {
        let (_, status) = w.terminate(Duration::from_secs(20));
        assert!(status.success(), "{status}: {}", w.log_text());
        assert_no_phi(
            &w.log_text(),
            &[pt.mrn.clone(), pt.family.clone(), pt.given.clone()],
        );
    }
}
