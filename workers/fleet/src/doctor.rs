//! `fleet doctor`: a preflight of the AWS resources a fleet configuration names. Every queue a
//! worker consumes or the gateway routes to, each one's dead-letter queue, the records tables,
//! the buckets (uploads, results, claim checks) and the SNS topics (notify's destinations,
//! Textract's completion channel) are described, read-only, and judged against what a
//! HIPAA-aligned deployment holds (the same settings `deploy/fleet.yaml` creates):
//!
//! | check | passes when |
//! | --- | --- |
//! | `queue.encryption` | the queue (and each DLQ) has SSE-KMS with a key (`KmsMasterKeyId`) |
//! | `queue.redrive` | a consumed queue has a redrive policy whose maxReceiveCount is above the worker's max attempts |
//! | `queue.visibility` | a consumed queue's visibility timeout is at least 6 x the worker's handler timeout (its drain deadline) |
//! | `dlq.alarm-depth` | an enabled alarm with an action watches the DLQ's `ApproximateNumberOfMessagesVisible` above 0 |
//! | `dlq.alarm-age` | an enabled alarm with an action watches the DLQ's `ApproximateAgeOfOldestMessage` |
//! | `table.encryption` | the table is encrypted with KMS (`SSEType` `KMS`) |
//! | `table.pitr` | point-in-time recovery is enabled |
//! | `table.ttl` | time to live is enabled on the attribute the stores write (`expires_at`) |
//! | `bucket.encryption` | default encryption is SSE-KMS |
//! | `bucket.public-access` | all four public access block settings are on |
//! | `bucket.tls-only` | the bucket policy denies every request without TLS (`aws:SecureTransport` false) |
//! | `topic.encryption` | the topic has a KMS key |
//!
//! A resource that cannot be described (missing, access denied) fails as `<kind>.readable`.
//! The judging functions are pure (facts in, findings out), so each rule is unit-tested; the
//! describing is [`fleet_aws::inspect`].

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use fleet_aws::inspect::{AlarmFacts, BucketFacts, Inspector, QueueFacts, TableFacts, TopicFacts};
use fleet_core::PortError;
use fleet_runtime::RuntimeDefaults;
use serde::Serialize;

use crate::FleetConfig;

/// A queue's visibility timeout must be at least this many handler timeouts (AWS's guidance
/// for queue consumers: a slow handler, a retry and the heartbeat's extension all fit).
pub const VISIBILITY_FACTOR: u64 = 6;
/// The attribute the DynamoDB stores write and DynamoDB's TTL must delete by.
pub const TTL_ATTRIBUTE: &str = fleet_aws::dynamo::TTL_ATTRIBUTE;

/// One judged setting of one resource.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Finding {
    /// The check's name (`queue.encryption`, ...).
    pub check: &'static str,
    /// What was checked: a queue, table or bucket name, or a topic ARN.
    pub resource: String,
    pub pass: bool,
    /// What was found.
    pub detail: String,
    /// How to fix a failure (empty when passing).
    pub fix: String,
}

impl Finding {
    fn pass(check: &'static str, resource: &str, detail: impl Into<String>) -> Self {
        Self {
            check,
            resource: resource.to_string(),
            pass: true,
            detail: detail.into(),
            fix: String::new(),
        }
    }

    fn fail(
        check: &'static str,
        resource: &str,
        detail: impl Into<String>,
        fix: impl Into<String>,
    ) -> Self {
        Self {
            check,
            resource: resource.to_string(),
            pass: false,
            detail: detail.into(),
            fix: fix.into(),
        }
    }

    fn unreadable(check: &'static str, resource: &str, e: &PortError) -> Self {
        Self::fail(
            check,
            resource,
            format!("cannot be described: {e}"),
            "check that it exists in this account and region and that the caller may describe it",
        )
    }
}

/// What the doctor knows about a queue's consumer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Consumer {
    pub worker: &'static str,
    pub max_attempts: u32,
    /// The longest one handler is expected to run: the worker's drain deadline.
    pub handler_timeout: Duration,
}

/// A queue to check: consumed by a worker, or only sent to (the gateway's routes).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueTarget {
    pub queue: String,
    pub consumer: Option<Consumer>,
}

/// The resources a configuration names.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Targets {
    pub queues: Vec<QueueTarget>,
    pub tables: BTreeSet<String>,
    pub buckets: BTreeSet<String>,
    pub topics: BTreeSet<String>,
}

fn consumer(
    worker: &'static str,
    runtime: &fleet_runtime::RuntimeArgs,
    defaults: &RuntimeDefaults,
) -> Consumer {
    let rt = runtime.runtime_config(worker, "", defaults);
    Consumer {
        worker,
        max_attempts: rt.max_attempts,
        handler_timeout: rt.drain_deadline,
    }
}

/// The queues, tables, buckets and topics `config` names (notify's rules file is read for its
/// topic destinations).
pub fn targets(config: &FleetConfig) -> anyhow::Result<Targets> {
    let mut t = Targets::default();
    let mut consumed = |queue: String, c: Consumer| {
        t.queues.push(QueueTarget {
            queue,
            consumer: Some(c),
        })
    };
    let mut claim_checks = Vec::new();
    if let Some(w) = &config.hl7 {
        let ids = w.identities()?;
        consumed(
            ids.queue,
            consumer(
                hl7_ingest::WORKER,
                &w.runtime,
                &hl7_ingest::RUNTIME_DEFAULTS,
            ),
        );
        t.tables.insert(ids.table);
        claim_checks.extend(w.runtime.claim_check_buckets.iter().cloned());
    }
    if let Some(d) = &config.docs {
        let ids = d.worker.identities()?;
        let c = consumer(
            doc_pipeline::WORKER,
            &d.worker.runtime,
            &doc_pipeline::RUNTIME_DEFAULTS,
        );
        t.queues.push(QueueTarget {
            queue: ids.queue,
            consumer: Some(c),
        });
        if let Some(q) = ids.completion_queue {
            t.queues.push(QueueTarget {
                queue: q,
                consumer: Some(c),
            });
        }
        t.tables.insert(ids.table);
        t.buckets.insert(ids.results_bucket);
        t.buckets.extend(d.worker.upload_buckets("aws")?);
        t.topics
            .extend(d.engines.textract_sns_topic_arn.iter().cloned());
        claim_checks.extend(d.worker.runtime.claim_check_buckets.iter().cloned());
    }
    if let Some(n) = &config.notify {
        let (queue, table, rules) = n.identities()?;
        t.queues.push(QueueTarget {
            queue,
            consumer: Some(consumer(
                notify::WORKER,
                &n.runtime,
                &notify::RUNTIME_DEFAULTS,
            )),
        });
        t.tables.insert(table);
        let rules = notify::Rules::load(&rules)
            .map_err(|e| anyhow::anyhow!("notify rules {}: {e}", rules.display()))?;
        for r in &rules.rules {
            if let fleet_core::ports::Destination::Topic(arn) = &r.destination {
                t.topics.insert(arn.clone());
            }
        }
        claim_checks.extend(n.runtime.claim_check_buckets.iter().cloned());
    }
    if let Some(g) = &config.gateway {
        for r in &g.routes {
            if !t.queues.iter().any(|q| q.queue == r.queue) {
                t.queues.push(QueueTarget {
                    queue: r.queue.clone(),
                    consumer: None,
                });
            }
        }
        claim_checks.extend(g.claim_check_bucket.iter().cloned());
    }
    t.buckets.extend(
        claim_checks
            .into_iter()
            .map(|b| b.trim().to_string())
            .filter(|b| !b.is_empty()),
    );
    Ok(t)
}

/// `queue.encryption` for a queue or DLQ.
pub fn judge_queue_encryption(q: &QueueFacts) -> Finding {
    const CHECK: &str = "queue.encryption";
    const FIX: &str = "set the queue's KmsMasterKeyId to the fleet's customer-managed KMS key (deploy/fleet.yaml does)";
    match (&q.kms_key, q.sqs_managed_sse) {
        (Some(key), _) => Finding::pass(CHECK, &q.name, format!("SSE-KMS with {key}")),
        (None, true) => Finding::fail(
            CHECK,
            &q.name,
            "SSE-SQS: encrypted with a key SQS owns, not a KMS key this account controls",
            FIX,
        ),
        (None, false) => Finding::fail(CHECK, &q.name, "not encrypted", FIX),
    }
}

/// `queue.redrive` for a consumed queue.
pub fn judge_redrive(q: &QueueFacts, c: &Consumer) -> Finding {
    const CHECK: &str = "queue.redrive";
    let want = c.max_attempts + 1;
    match &q.redrive {
        None => Finding::fail(
            CHECK,
            &q.name,
            "no redrive policy: a message that keeps failing is received forever",
            format!(
                "attach a dead-letter queue: RedrivePolicy with maxReceiveCount >= {want} (above {}'s {} attempts)",
                c.worker, c.max_attempts
            ),
        ),
        Some((dlq, max)) if *max < want => Finding::fail(
            CHECK,
            &q.name,
            format!(
                "maxReceiveCount {max} is not above {}'s {} attempts: SQS moves failing messages to {} without the failure attribute",
                c.worker,
                c.max_attempts,
                queue_name_of(dlq)
            ),
            format!("raise maxReceiveCount to at least {want}, or lower the worker's max attempts"),
        ),
        Some((dlq, max)) => Finding::pass(
            CHECK,
            &q.name,
            format!(
                "DLQ {}, maxReceiveCount {max} > {} attempts",
                queue_name_of(dlq),
                c.max_attempts
            ),
        ),
    }
}

/// `queue.visibility` for a consumed queue.
pub fn judge_visibility(q: &QueueFacts, c: &Consumer) -> Finding {
    const CHECK: &str = "queue.visibility";
    let want = VISIBILITY_FACTOR * c.handler_timeout.as_secs();
    if q.visibility_timeout_secs >= want {
        Finding::pass(
            CHECK,
            &q.name,
            format!(
                "{} s >= {VISIBILITY_FACTOR} x {} s ({}'s handler timeout)",
                q.visibility_timeout_secs,
                c.handler_timeout.as_secs(),
                c.worker
            ),
        )
    } else {
        Finding::fail(
            CHECK,
            &q.name,
            format!(
                "{} s is below {VISIBILITY_FACTOR} x {} s ({}'s handler timeout): a slow message can be delivered twice at once",
                q.visibility_timeout_secs,
                c.handler_timeout.as_secs(),
                c.worker
            ),
            format!("set VisibilityTimeout to at least {want}"),
        )
    }
}

/// The name at the end of a queue ARN.
fn queue_name_of(arn: &str) -> &str {
    arn.rsplit(':').next().unwrap_or(arn)
}

/// Whether `a` is an enabled alarm with an action on `metric` of the SQS queue `queue`.
fn watches(a: &AlarmFacts, queue: &str, metric: &str) -> bool {
    a.namespace.as_deref() == Some("AWS/SQS")
        && a.metric.as_deref() == Some(metric)
        && a.dimensions.get("QueueName").map(String::as_str) == Some(queue)
        && a.actions_enabled
        && !a.alarm_actions.is_empty()
}

/// `dlq.alarm-depth` and `dlq.alarm-age` for a DLQ.
pub fn judge_dlq_alarms(dlq: &str, alarms: &[AlarmFacts]) -> [Finding; 2] {
    let depth = alarms.iter().find(|a| {
        watches(a, dlq, "ApproximateNumberOfMessagesVisible")
            && match (a.comparison.as_deref(), a.threshold) {
                // Any message at all must fire it: > t with t < 1, or >= t with t <= 1.
                (Some("GreaterThanThreshold"), Some(t)) => t < 1.0,
                (Some("GreaterThanOrEqualToThreshold"), Some(t)) => t <= 1.0,
                _ => false,
            }
    });
    let age = alarms.iter().find(|a| {
        watches(a, dlq, "ApproximateAgeOfOldestMessage")
            && matches!(
                a.comparison.as_deref(),
                Some("GreaterThanThreshold" | "GreaterThanOrEqualToThreshold")
            )
    });
    let depth = match depth {
        Some(a) => Finding::pass("dlq.alarm-depth", dlq, format!("alarm {}", a.name)),
        None => Finding::fail(
            "dlq.alarm-depth",
            dlq,
            "no enabled alarm with an action fires on the first dead-lettered message",
            format!(
                "add an alarm: AWS/SQS ApproximateNumberOfMessagesVisible, QueueName={dlq}, Maximum over 60 s, GreaterThanThreshold 0, with an SNS action"
            ),
        ),
    };
    let age = match age {
        Some(a) => Finding::pass("dlq.alarm-age", dlq, format!("alarm {}", a.name)),
        None => Finding::fail(
            "dlq.alarm-age",
            dlq,
            "no enabled alarm with an action on the age of the oldest dead letter",
            format!(
                "add an alarm: AWS/SQS ApproximateAgeOfOldestMessage, QueueName={dlq}, GreaterThanThreshold (e.g. 3600 s), with an SNS action"
            ),
        ),
    };
    [depth, age]
}

/// `table.encryption`, `table.pitr` and `table.ttl`.
pub fn judge_table(t: &TableFacts) -> [Finding; 3] {
    let enc = match &t.sse {
        Some((status, Some(kind))) if status == "ENABLED" && kind == "KMS" => {
            Finding::pass("table.encryption", &t.name, "SSE-KMS")
        }
        other => Finding::fail(
            "table.encryption",
            &t.name,
            match other {
                Some((status, kind)) => format!(
                    "SSE {status} with type {}",
                    kind.as_deref().unwrap_or("none")
                ),
                None => "DynamoDB's default encryption with an AWS-owned key".to_string(),
            },
            "update the table's SSESpecification: Enabled true, SSEType KMS, with the fleet's key",
        ),
    };
    let pitr = if t.pitr.as_deref() == Some("ENABLED") {
        Finding::pass("table.pitr", &t.name, "point-in-time recovery enabled")
    } else {
        Finding::fail(
            "table.pitr",
            &t.name,
            format!(
                "point-in-time recovery {}",
                t.pitr.as_deref().unwrap_or("not reported")
            ),
            "enable it: UpdateContinuousBackups PointInTimeRecoveryEnabled=true",
        )
    };
    let ttl = match &t.ttl {
        Some((status, Some(attr))) if status == "ENABLED" && attr == TTL_ATTRIBUTE => {
            Finding::pass("table.ttl", &t.name, format!("TTL on {attr}"))
        }
        other => Finding::fail(
            "table.ttl",
            &t.name,
            match other {
                Some((status, attr)) => format!(
                    "TTL {status} on {}",
                    attr.as_deref().unwrap_or("no attribute")
                ),
                None => "no TTL".to_string(),
            },
            format!("enable TTL on attribute {TTL_ATTRIBUTE} (the stores write it)"),
        ),
    };
    [enc, pitr, ttl]
}

/// Whether a bucket policy denies every request made without TLS.
pub fn denies_plain_http(policy: &str) -> bool {
    let Ok(doc) = serde_json::from_str::<serde_json::Value>(policy) else {
        return false;
    };
    let statements = match &doc["Statement"] {
        serde_json::Value::Array(a) => a.clone(),
        s @ serde_json::Value::Object(_) => vec![s.clone()],
        _ => return false,
    };
    let one_or_many = |v: &serde_json::Value| -> Vec<String> {
        match v {
            serde_json::Value::String(s) => vec![s.clone()],
            serde_json::Value::Array(a) => a
                .iter()
                .filter_map(|x| x.as_str().map(str::to_string))
                .collect(),
            _ => Vec::new(),
        }
    };
    statements.iter().any(|s| {
        let everyone = s["Principal"] == "*" || one_or_many(&s["Principal"]["AWS"]) == ["*"];
        let all_actions = one_or_many(&s["Action"])
            .iter()
            .any(|a| a == "s3:*" || a == "*");
        let insecure = match &s["Condition"]["Bool"]["aws:SecureTransport"] {
            serde_json::Value::String(v) => v == "false",
            serde_json::Value::Bool(b) => !b,
            serde_json::Value::Array(a) => a.iter().any(|v| v == "false" || v == false),
            _ => false,
        };
        s["Effect"] == "Deny" && everyone && all_actions && insecure
    })
}

/// `bucket.encryption`, `bucket.public-access` and `bucket.tls-only`.
pub fn judge_bucket(b: &BucketFacts) -> [Finding; 3] {
    let enc = match b.default_encryption.as_deref() {
        Some(alg @ ("aws:kms" | "aws:kms:dsse")) => {
            Finding::pass("bucket.encryption", &b.name, format!("default {alg}"))
        }
        other => Finding::fail(
            "bucket.encryption",
            &b.name,
            match other {
                Some(alg) => format!("default encryption {alg}, not KMS"),
                None => "no default encryption".to_string(),
            },
            "set default encryption to aws:kms with the fleet's key and BucketKeyEnabled",
        ),
    };
    let public = match b.public_access_block {
        Some([true, true, true, true]) => Finding::pass(
            "bucket.public-access",
            &b.name,
            "all four public access blocks on",
        ),
        Some(flags) => {
            let names = [
                "BlockPublicAcls",
                "IgnorePublicAcls",
                "BlockPublicPolicy",
                "RestrictPublicBuckets",
            ];
            let off: Vec<&str> = names
                .iter()
                .zip(flags)
                .filter(|(_, on)| !on)
                .map(|(n, _)| *n)
                .collect();
            Finding::fail(
                "bucket.public-access",
                &b.name,
                format!("off: {}", off.join(", ")),
                "turn all four public access block settings on",
            )
        }
        None => Finding::fail(
            "bucket.public-access",
            &b.name,
            "no public access block",
            "PutPublicAccessBlock with all four settings true",
        ),
    };
    let tls = match &b.policy {
        Some(p) if denies_plain_http(p) => Finding::pass(
            "bucket.tls-only",
            &b.name,
            "policy denies requests without TLS",
        ),
        Some(_) => Finding::fail(
            "bucket.tls-only",
            &b.name,
            "the policy does not deny requests without TLS",
            r#"add a statement: Effect Deny, Principal "*", Action "s3:*", Condition Bool aws:SecureTransport "false""#,
        ),
        None => Finding::fail(
            "bucket.tls-only",
            &b.name,
            "no bucket policy",
            r#"add a policy denying "s3:*" to "*" when aws:SecureTransport is "false""#,
        ),
    };
    [enc, public, tls]
}

/// `topic.encryption`.
pub fn judge_topic(t: &TopicFacts) -> Finding {
    match &t.kms_key {
        Some(k) => Finding::pass("topic.encryption", &t.arn, format!("KMS key {k}")),
        None => Finding::fail(
            "topic.encryption",
            &t.arn,
            "not encrypted",
            "set the topic's KmsMasterKeyId to the fleet's key",
        ),
    }
}

/// Describe every target and judge it. A queue's DLQ is found through its redrive policy.
pub async fn examine(inspector: &Inspector, targets: &Targets) -> Vec<Finding> {
    let mut out = Vec::new();
    let alarms = inspector.metric_alarms().await;
    let mut dlqs: BTreeMap<String, ()> = BTreeMap::new();
    for t in &targets.queues {
        let q = match inspector.queue(&t.queue).await {
            Ok(q) => q,
            Err(e) => {
                out.push(Finding::unreadable("queue.readable", &t.queue, &e));
                continue;
            }
        };
        out.push(judge_queue_encryption(&q));
        if let Some(c) = &t.consumer {
            out.push(judge_redrive(&q, c));
            out.push(judge_visibility(&q, c));
        }
        if let Some((dlq_arn, _)) = &q.redrive
            && dlqs.insert(dlq_arn.clone(), ()).is_none()
        {
            match inspector.queue_by_arn(dlq_arn).await {
                Ok(dlq) => {
                    out.push(judge_queue_encryption(&dlq));
                    match &alarms {
                        Ok(alarms) => out.extend(judge_dlq_alarms(&dlq.name, alarms)),
                        Err(e) => {
                            out.push(Finding::unreadable("dlq.alarm-depth", &dlq.name, e));
                            out.push(Finding::unreadable("dlq.alarm-age", &dlq.name, e));
                        }
                    }
                }
                Err(e) => out.push(Finding::unreadable(
                    "queue.readable",
                    queue_name_of(dlq_arn),
                    &e,
                )),
            }
        }
    }
    for name in &targets.tables {
        match inspector.table(name).await {
            Ok(t) => out.extend(judge_table(&t)),
            Err(e) => out.push(Finding::unreadable("table.readable", name, &e)),
        }
    }
    for name in &targets.buckets {
        match inspector.bucket(name).await {
            Ok(b) => out.extend(judge_bucket(&b)),
            Err(e) => out.push(Finding::unreadable("bucket.readable", name, &e)),
        }
    }
    for arn in &targets.topics {
        match inspector.topic(arn).await {
            Ok(t) => out.push(judge_topic(&t)),
            Err(e) => out.push(Finding::unreadable("topic.readable", arn, &e)),
        }
    }
    out
}

/// The report `--output json` prints.
#[derive(Debug, Serialize)]
pub struct Report<'a> {
    pub ok: bool,
    pub failed: usize,
    pub checks: &'a [Finding],
}

/// The table: check, resource, result, and what was found or how to fix it.
pub fn render_table(findings: &[Finding], out: &mut impl std::io::Write) -> std::io::Result<()> {
    let w_check = findings.iter().map(|f| f.check.len()).max().unwrap_or(0);
    let w_res = findings.iter().map(|f| f.resource.len()).max().unwrap_or(0);
    writeln!(
        out,
        "{:w_check$}  {:w_res$}  RESULT  DETAIL / HOW TO FIX",
        "CHECK", "RESOURCE"
    )?;
    for f in findings {
        if f.pass {
            writeln!(
                out,
                "{:w_check$}  {:w_res$}  pass    {}",
                f.check, f.resource, f.detail
            )?;
        } else {
            writeln!(
                out,
                "{:w_check$}  {:w_res$}  FAIL    {}; fix: {}",
                f.check, f.resource, f.detail, f.fix
            )?;
        }
    }
    let failed = findings.iter().filter(|f| !f.pass).count();
    writeln!(
        out,
        "\n{} checks, {} passed, {failed} failed",
        findings.len(),
        findings.len() - failed
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn queue() -> QueueFacts {
        QueueFacts {
            url: "http://q".into(),
            name: "q".into(),
            arn: "arn:aws:sqs:eu-west-1:123456789012:q".into(),
            kms_key: Some("alias/fleet".into()),
            sqs_managed_sse: false,
            visibility_timeout_secs: 120,
            redrive: Some(("arn:aws:sqs:eu-west-1:123456789012:q-dlq".into(), 5)),
            fifo: false,
        }
    }

    const HL7: Consumer = Consumer {
        worker: "hl7-ingest",
        max_attempts: 4,
        handler_timeout: Duration::from_secs(20),
    };

    #[test]
    fn queue_rules() {
        let good = queue();
        assert!(judge_queue_encryption(&good).pass);
        assert!(judge_redrive(&good, &HL7).pass);
        assert!(judge_visibility(&good, &HL7).pass);

        let sse_sqs = QueueFacts {
            kms_key: None,
            sqs_managed_sse: true,
            ..queue()
        };
        let f = judge_queue_encryption(&sse_sqs);
        assert!(!f.pass && f.detail.contains("SSE-SQS"), "{f:?}");
        let none = QueueFacts {
            kms_key: None,
            ..queue()
        };
        assert_eq!(judge_queue_encryption(&none).detail, "not encrypted");

        // maxReceiveCount equal to the attempts lets SQS act first: a failure.
        let low = QueueFacts {
            redrive: Some(("arn:aws:sqs:eu-west-1:1:q-dlq".into(), 4)),
            ..queue()
        };
        let f = judge_redrive(&low, &HL7);
        assert!(!f.pass && f.fix.contains("at least 5"), "{f:?}");
        let f = judge_redrive(
            &QueueFacts {
                redrive: None,
                ..queue()
            },
            &HL7,
        );
        assert!(!f.pass && f.detail.contains("no redrive policy"), "{f:?}");

        let short = QueueFacts {
            visibility_timeout_secs: 119,
            ..queue()
        };
        let f = judge_visibility(&short, &HL7);
        assert!(!f.pass && f.fix.contains("at least 120"), "{f:?}");
    }

    fn alarm(metric: &str, queue: &str, cmp: &str, threshold: f64) -> AlarmFacts {
        AlarmFacts {
            name: format!("{queue}-{metric}"),
            namespace: Some("AWS/SQS".into()),
            metric: Some(metric.into()),
            dimensions: [("QueueName".to_string(), queue.to_string())].into(),
            comparison: Some(cmp.into()),
            threshold: Some(threshold),
            actions_enabled: true,
            alarm_actions: vec!["arn:aws:sns:eu-west-1:1:alarms".into()],
        }
    }

    #[test]
    fn dlq_alarm_rules() {
        let depth = alarm(
            "ApproximateNumberOfMessagesVisible",
            "d",
            "GreaterThanThreshold",
            0.0,
        );
        let age = alarm(
            "ApproximateAgeOfOldestMessage",
            "d",
            "GreaterThanThreshold",
            3600.0,
        );
        let [a, b] = judge_dlq_alarms("d", &[depth.clone(), age.clone()]);
        assert!(a.pass && b.pass, "{a:?} {b:?}");
        // Another queue's alarms, a threshold that lets five messages sit, no action, a
        // disabled alarm: none of them counts.
        let [a, b] = judge_dlq_alarms("other", &[depth.clone(), age.clone()]);
        assert!(!a.pass && !b.pass);
        let lax = alarm(
            "ApproximateNumberOfMessagesVisible",
            "d",
            "GreaterThanThreshold",
            5.0,
        );
        assert!(!judge_dlq_alarms("d", &[lax])[0].pass);
        let silent = AlarmFacts {
            alarm_actions: vec![],
            ..depth.clone()
        };
        assert!(!judge_dlq_alarms("d", &[silent])[0].pass);
        let disabled = AlarmFacts {
            actions_enabled: false,
            ..depth
        };
        assert!(!judge_dlq_alarms("d", &[disabled])[0].pass);
        let ge1 = alarm(
            "ApproximateNumberOfMessagesVisible",
            "d",
            "GreaterThanOrEqualToThreshold",
            1.0,
        );
        assert!(judge_dlq_alarms("d", &[ge1])[0].pass);
    }

    #[test]
    fn tls_only_policies() {
        let deny = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Deny","Principal":"*","Action":"s3:*","Resource":["arn:aws:s3:::b","arn:aws:s3:::b/*"],"Condition":{"Bool":{"aws:SecureTransport":"false"}}}]}"#;
        assert!(denies_plain_http(deny));
        assert!(denies_plain_http(&deny.replace(r#""*""#, r#"{"AWS":"*"}"#)));
        // An Allow, a partial action list, a condition on something else: not TLS-only.
        assert!(!denies_plain_http(&deny.replace("Deny", "Allow")));
        assert!(!denies_plain_http(&deny.replace("s3:*", "s3:GetObject")));
        assert!(!denies_plain_http(
            &deny.replace("aws:SecureTransport", "aws:ViaAWSService")
        ));
        assert!(!denies_plain_http("not json"));
    }

    #[test]
    fn table_bucket_and_topic_rules() {
        let t = TableFacts {
            name: "t".into(),
            sse: Some(("ENABLED".into(), Some("KMS".into()))),
            pitr: Some("ENABLED".into()),
            ttl: Some(("ENABLED".into(), Some("expires_at".into()))),
            deletion_protection: true,
        };
        assert!(judge_table(&t).iter().all(|f| f.pass));
        let bad = TableFacts {
            sse: None,
            pitr: Some("DISABLED".into()),
            ttl: Some(("ENABLED".into(), Some("ttl".into()))),
            ..t
        };
        assert!(judge_table(&bad).iter().all(|f| !f.pass));

        let b = BucketFacts {
            name: "b".into(),
            public_access_block: Some([true; 4]),
            policy: Some(r#"{"Statement":{"Effect":"Deny","Principal":"*","Action":["s3:*"],"Condition":{"Bool":{"aws:SecureTransport":false}}}}"#.into()),
            default_encryption: Some("aws:kms".into()),
        };
        assert!(
            judge_bucket(&b).iter().all(|f| f.pass),
            "{:?}",
            judge_bucket(&b)
        );
        let bad = BucketFacts {
            public_access_block: Some([true, false, true, true]),
            policy: None,
            default_encryption: Some("AES256".into()),
            ..b
        };
        let f = judge_bucket(&bad);
        assert!(f.iter().all(|f| !f.pass));
        assert!(f[1].detail.contains("IgnorePublicAcls"), "{:?}", f[1]);

        assert!(
            !judge_topic(&TopicFacts {
                arn: "t".into(),
                kms_key: None
            })
            .pass
        );
    }

    #[test]
    fn the_table_shows_each_failure_with_its_fix() {
        let findings = vec![
            Finding::pass("queue.encryption", "q", "SSE-KMS with k"),
            Finding::fail(
                "table.pitr",
                "t",
                "point-in-time recovery DISABLED",
                "enable it",
            ),
        ];
        let mut out = Vec::new();
        render_table(&findings, &mut out).unwrap();
        let text = String::from_utf8(out).unwrap();
        assert!(
            text.contains("queue.encryption  q  pass    SSE-KMS with k"),
            "{text}"
        );
        assert!(text.contains("FAIL    point-in-time recovery DISABLED; fix: enable it"));
        assert!(text.contains("2 checks, 1 passed, 1 failed"));
    }
}
