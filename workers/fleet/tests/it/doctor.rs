//! `fleet doctor` against moto: a fleet whose every resource is set up as the deployment
//! template sets it passes every check; a deliberately wrong one fails each check by name.
//! (The template's own stack is checked by `tests/it/deploy_stack.rs`.)

use std::collections::BTreeSet;
use std::path::Path;
use std::process::{Command, Output};

use fleet_testkit::provision::{Provisioner, QueueSetup};
use fleet_testkit::workers::binary;
use fleet_testkit::{aws_backend, moto_env, unique};

/// Every check the doctor has; a correct fleet with a topic passes each at least once.
const ALL_CHECKS: [&str; 12] = [
    "queue.encryption",
    "queue.redrive",
    "queue.visibility",
    "dlq.alarm-depth",
    "dlq.alarm-age",
    "table.encryption",
    "table.pitr",
    "table.ttl",
    "bucket.encryption",
    "bucket.public-access",
    "bucket.tls-only",
    "topic.encryption",
];

fn doctor(config: &Path, output: &str) -> Output {
    Command::new(binary("fleet"))
        .args(["doctor", "--config"])
        .arg(config)
        .args(["--output", output])
        .envs(moto_env())
        .output()
        .unwrap()
}

/// The fleet.toml naming hl7-ingest's queue and table, doc-pipeline's upload queue, table and
/// buckets, and notify (whose rules send to `topic`).
struct Fleet {
    dir: tempfile::TempDir,
}

impl Fleet {
    fn write(hl7_queue: &str, doc_queue: &str, notify_queue: &str, n: &Names, topic: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let rules = dir.path().join("rules.toml");
        std::fs::write(
            &rules,
            format!(
                "[[rule]]\nname = \"admissions\"\ndestination = \"{topic}\"\npattern = {{ source = [\"fleet.hl7-ingest\"] }}\nfields = []\nbody = \"A patient was admitted.\"\n"
            ),
        )
        .unwrap();
        std::fs::write(
            dir.path().join("fleet.toml"),
            format!(
                r#"[backend]
backend = "aws"

[hl7-ingest]
queue = "{hl7_queue}"
event-bus = "default"
table = "{table}"
claim-check-buckets = "{claims}"

[doc-pipeline]
queue = "{doc_queue}"
event-bus = "default"
table = "{table}"
results-bucket = "{results}"
upload-buckets = "{uploads}"

[notify]
queue = "{notify_queue}"
table = "{table}"
rules = "{rules}"
"#,
                table = n.table,
                claims = n.claims,
                results = n.results,
                uploads = n.uploads,
                rules = rules.display(),
            ),
        )
        .unwrap();
        Self { dir }
    }

    fn config(&self) -> std::path::PathBuf {
        self.dir.path().join("fleet.toml")
    }
}

struct Names {
    table: String,
    uploads: String,
    results: String,
    claims: String,
}

impl Names {
    fn new(prefix: &str) -> Self {
        Self {
            table: unique(&format!("{prefix}-records")),
            uploads: unique(&format!("{prefix}-uploads")),
            results: unique(&format!("{prefix}-results")),
            claims: unique(&format!("{prefix}-claims")),
        }
    }

    fn buckets(&self) -> [&str; 3] {
        [&self.uploads, &self.results, &self.claims]
    }
}

/// The (check, resource) pairs that failed, from the JSON report.
fn failures(report: &serde_json::Value) -> BTreeSet<(String, String)> {
    report["checks"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["pass"] == false)
        .map(|c| {
            (
                c["check"].as_str().unwrap().to_string(),
                c["resource"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

#[tokio::test]
async fn doctor_passes_a_fleet_set_up_as_the_template_sets_it() {
    let b = aws_backend().await;
    let p = Provisioner::new(&b);
    let key = p.create_kms_key("doctor good").await.unwrap();
    let alarms_topic = p.create_topic(&unique("doctor-alarms")).await.unwrap();
    // Each consumed queue: SSE-KMS, a KMS-encrypted DLQ with its two alarms, visibility
    // 6 x the worker's drain deadline, maxReceiveCount above its attempts.
    let queue = |name: &'static str, visibility: u64, max_receives: u32| {
        let (p, key, alarms_topic) = (p.clone(), key.clone(), alarms_topic.clone());
        async move {
            let kms = QueueSetup {
                kms_key_id: Some(key.clone()),
                ..QueueSetup::default()
            };
            let dlq_name = unique(&format!("{name}-dlq"));
            let dlq = p.create_queue(&dlq_name, kms.clone()).await.unwrap();
            let dlq_arn = p.queue_arn(&dlq).await.unwrap();
            for (metric, threshold) in [
                ("ApproximateNumberOfMessagesVisible", 0.0),
                ("ApproximateAgeOfOldestMessage", 3600.0),
            ] {
                p.put_queue_alarm(
                    &format!("{dlq_name}-{metric}"),
                    &dlq_name,
                    metric,
                    threshold,
                    &alarms_topic,
                )
                .await
                .unwrap();
            }
            p.create_queue(
                &unique(name),
                QueueSetup {
                    visibility_timeout: std::time::Duration::from_secs(visibility),
                    redrive: Some((dlq_arn, max_receives)),
                    ..kms
                },
            )
            .await
            .unwrap()
        }
    };
    let hl7 = queue("doctor-hl7", 120, 5).await;
    let docs = queue("doctor-docs", 360, 5).await;
    let notify = queue("doctor-notify", 120, 10).await;
    let n = Names::new("doctor-good");
    p.create_table(&n.table).await.unwrap();
    p.enable_pitr(&n.table).await.unwrap();
    for bucket in n.buckets() {
        p.create_bucket(bucket, Some(&key)).await.unwrap();
        p.harden_bucket(bucket).await.unwrap();
    }
    let topic = p.create_topic(&unique("doctor-notes")).await.unwrap();
    p.encrypt_topic(&topic, &key).await.unwrap();

    let fleet = Fleet::write(&hl7, &docs, &notify, &n, &topic);
    let out = doctor(&fleet.config(), "json");
    let report: serde_json::Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stderr)));
    assert!(out.status.success(), "{report:#}");
    assert_eq!(report["ok"], true, "{report:#}");
    assert!(failures(&report).is_empty(), "{report:#}");
    let checks = report["checks"].as_array().unwrap();
    let seen: BTreeSet<&str> = checks
        .iter()
        .map(|c| c["check"].as_str().unwrap())
        .collect();
    assert_eq!(seen, ALL_CHECKS.into_iter().collect(), "{report:#}");
    // 3 queues x 3 + 3 DLQs x 3 + 1 table x 3 + 3 buckets x 3 + 1 topic.
    assert_eq!(checks.len(), 9 + 9 + 3 + 9 + 1, "{report:#}");

    let text = doctor(&fleet.config(), "text");
    assert!(text.status.success());
    let text = String::from_utf8(text.stdout).unwrap();
    assert!(text.starts_with("CHECK"), "{text}");
    assert!(text.contains("31 checks, 31 passed, 0 failed"), "{text}");
}

#[tokio::test]
async fn doctor_fails_each_check_of_a_wrong_setup_by_name() {
    let b = aws_backend().await;
    let p = Provisioner::new(&b);
    // hl7-ingest's queue: SSE-SQS, maxReceiveCount equal to its 4 attempts, the default 30 s
    // visibility; its DLQ unencrypted and without alarms.
    let dlq_name = unique("doctor-bad-dlq");
    let dlq = p
        .create_queue(
            &dlq_name,
            QueueSetup {
                sqs_managed_sse: false,
                ..QueueSetup::default()
            },
        )
        .await
        .unwrap();
    let dlq_arn = p.queue_arn(&dlq).await.unwrap();
    let hl7_name = unique("doctor-bad-hl7");
    let hl7 = p
        .create_queue(
            &hl7_name,
            QueueSetup {
                redrive: Some((dlq_arn, 4)),
                ..QueueSetup::default()
            },
        )
        .await
        .unwrap();
    // doc-pipeline's queue: unencrypted, no redrive at all.
    let docs_name = unique("doctor-bad-docs");
    let docs = p
        .create_queue(
            &docs_name,
            QueueSetup {
                sqs_managed_sse: false,
                visibility_timeout: std::time::Duration::from_secs(360),
                ..QueueSetup::default()
            },
        )
        .await
        .unwrap();
    // notify's queue does not exist.
    let missing = unique("doctor-bad-missing");
    let n = Names::new("doctor-bad");
    p.create_plain_table(&n.table).await.unwrap();
    for bucket in n.buckets() {
        p.create_bucket(bucket, None).await.unwrap();
    }
    let topic = p.create_topic(&unique("doctor-bad-notes")).await.unwrap();

    let fleet = Fleet::write(&hl7, &docs, &missing, &n, &topic);
    let out = doctor(&fleet.config(), "json");
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["ok"], false);
    let mut expected: BTreeSet<(String, String)> = [
        ("queue.encryption", hl7_name.as_str()),
        ("queue.redrive", &hl7_name),
        ("queue.visibility", &hl7_name),
        ("queue.encryption", &dlq_name),
        ("dlq.alarm-depth", &dlq_name),
        ("dlq.alarm-age", &dlq_name),
        ("queue.encryption", &docs_name),
        ("queue.redrive", &docs_name),
        ("queue.readable", &missing),
        ("table.encryption", &n.table),
        ("table.pitr", &n.table),
        ("table.ttl", &n.table),
        ("topic.encryption", &topic),
    ]
    .into_iter()
    .map(|(c, r)| (c.to_string(), r.to_string()))
    .collect();
    for bucket in n.buckets() {
        // Encrypted with the aws/s3 key (SSE-KMS) passes encryption; the rest fails.
        expected.insert(("bucket.public-access".into(), bucket.to_string()));
        expected.insert(("bucket.tls-only".into(), bucket.to_string()));
    }
    assert_eq!(failures(&report), expected, "{report:#}");
    assert_eq!(report["failed"], expected.len());
    // doc-pipeline's 360 s visibility is enough: that one passes, so a pass is not a fluke.
    assert!(
        report["checks"]
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c["check"] == "queue.visibility"
                && c["resource"] == docs_name.as_str()
                && c["pass"] == true),
        "{report:#}"
    );
    // Every failure says how to fix it, and each is a judgement of what was read: only the
    // missing queue could not be described (the alarms were listed, and none fits).
    for c in report["checks"].as_array().unwrap() {
        if c["pass"] == false {
            assert!(!c["fix"].as_str().unwrap().is_empty(), "{c}");
            let unreadable = c["detail"]
                .as_str()
                .unwrap()
                .contains("cannot be described");
            assert_eq!(unreadable, c["resource"] == missing.as_str(), "{c}");
        }
    }

    let text = doctor(&fleet.config(), "text");
    assert_eq!(text.status.code(), Some(1));
    let text = String::from_utf8(text.stdout).unwrap();
    assert!(
        text.lines().any(|l| l.starts_with("table.pitr")
            && l.contains(&n.table)
            && l.contains("FAIL")
            && l.contains("fix: enable it")),
        "{text}"
    );
}
