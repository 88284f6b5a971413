//! End to end: the real `dlq-replay` binary on the local backend and on moto. Every check is
//! one async fn over a [`Stack`] and runs on both.
//!
//! Seeded DLQ messages look like the runtime's: a body carrying a patient marker, a
//! `fleet.failure` attribute naming the source queue, and a `seq` attribute the checks use to
//! follow each message.

use fleet_testkit::ProvisionExt as _;
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::Arc;
use std::time::Duration;

use fleet_core::failure::FAILURE_ATTRIBUTE;
use fleet_core::{
    AttributeValue, Attributes, Backend, ErrorCode, FailureMetadata, MessageQueue, OutgoingMessage,
    ReceivedMessage,
};
use fleet_local::QueueSpec;
use fleet_testkit::provision::QueueSetup;
use fleet_testkit::workers::{binary, receive_all};
use fleet_testkit::{aws_backend, local_backend, moto_env, unique};
use serde_json::Value;
use tempfile::TempDir;

const SECRET: &str = "PATIENT-SECRET";
/// The audit key every run gets (`FLEET_DLQ_AUDIT_KEY`): filters on values need one.
const AUDIT_KEY: &str = "test-audit-key-0123456789abcdef-0123456789";

enum Kind {
    Local(fleet_local::LocalBackend),
    Aws(fleet_aws::AwsBackend),
}

/// One backend, a scratch directory and the environment the binary needs for it.
struct Stack {
    kind: Kind,
    dir: TempDir,
    /// Unique name prefix of this check's queues.
    prefix: String,
}

struct Pair {
    source: String,
    dlq: String,
}

impl Stack {
    fn local() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let backend = local_backend(dir.path());
        Stack {
            kind: Kind::Local(backend),
            dir,
            prefix: unique("dr"),
        }
    }

    async fn aws() -> Self {
        Stack {
            kind: Kind::Aws(aws_backend().await),
            dir: tempfile::tempdir().unwrap(),
            prefix: unique("dr"),
        }
    }

    fn backend(&self) -> &dyn Backend {
        match &self.kind {
            Kind::Local(b) => b,
            Kind::Aws(b) => b,
        }
    }

    fn env(&self) -> Vec<(&'static str, String)> {
        match &self.kind {
            Kind::Local(_) => vec![
                ("FLEET_BACKEND", "local".into()),
                (
                    "FLEET_LOCAL_DB",
                    self.dir.path().join("fleet.sqlite").display().to_string(),
                ),
                (
                    "FLEET_LOCAL_OBJECTS",
                    self.dir.path().join("objects").display().to_string(),
                ),
                ("USER", "oncall-test".into()),
            ],
            Kind::Aws(_) => moto_env(),
        }
    }

    /// An encrypted queue named `<prefix>-<name>`; returns its id (URL on aws, name locally).
    async fn create(&self, name: &str, fifo: bool, redrive_to: Option<&str>) -> String {
        self.create_with(name, fifo, redrive_to, true).await
    }

    /// A queue named `<prefix>-<name>`, encrypted or not; returns its id.
    async fn create_with(
        &self,
        name: &str,
        fifo: bool,
        redrive_to: Option<&str>,
        encrypted: bool,
    ) -> String {
        let name = if fifo {
            format!("{}-{name}.fifo", self.prefix)
        } else {
            format!("{}-{name}", self.prefix)
        };
        match &self.kind {
            Kind::Local(b) => {
                b.create_queue(
                    &name,
                    QueueSpec {
                        fifo,
                        redrive: redrive_to.map(|d| (d.to_string(), 5)),
                        kms_key_id: encrypted.then(|| "alias/test".into()),
                        ..QueueSpec::default()
                    },
                )
                .unwrap();
                name
            }
            Kind::Aws(b) => {
                let p = b.provisioner();
                let redrive = match redrive_to {
                    Some(dlq) => Some((p.queue_arn(dlq).await.unwrap(), 5)),
                    None => None,
                };
                p.create_queue(
                    &name,
                    QueueSetup {
                        fifo,
                        redrive,
                        sqs_managed_sse: encrypted,
                        ..QueueSetup::default()
                    },
                )
                .await
                .unwrap()
            }
        }
    }

    async fn pair(&self, fifo: bool) -> Pair {
        let dlq = self.create("dlq", fifo, None).await;
        let source = self.create("in", fifo, Some(&dlq)).await;
        Pair { source, dlq }
    }

    async fn queue(&self, id: &str) -> Arc<dyn MessageQueue> {
        self.backend().queue(id).await.unwrap()
    }

    async fn delete_queue(&self, id: &str) {
        match &self.kind {
            Kind::Local(b) => b.delete_queue(id).unwrap(),
            Kind::Aws(b) => b.provisioner().delete_queue(id).await.unwrap(),
        }
    }

    fn audit_path(&self) -> PathBuf {
        self.dir.path().join("audit.jsonl")
    }

    /// The binary with `args`, this backend's environment only, the audit log in the scratch
    /// directory, output captured.
    fn command(&self, args: &[&str], stdin: Stdio) -> Command {
        let mut cmd = Command::new(binary("dlq-replay"));
        cmd.args(args)
            .current_dir(self.dir.path())
            .stdin(stdin)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        for (k, _) in std::env::vars() {
            if k.starts_with("FLEET_") || k.starts_with("AWS_") {
                cmd.env_remove(&k);
            }
        }
        cmd.envs(self.env())
            .env("FLEET_DLQ_AUDIT_LOG", self.audit_path())
            .env("FLEET_DLQ_AUDIT_KEY", AUDIT_KEY);
        cmd
    }

    /// Run the binary with `args`, `stdin` as its input.
    fn run(&self, args: &[&str], stdin: &str) -> Run {
        self.run_env(args, stdin, &[])
    }

    /// As [`Self::run`], with these variables set (`Some`) or removed (`None`).
    fn run_env(&self, args: &[&str], stdin: &str, env: &[(&str, Option<&str>)]) -> Run {
        let mut cmd = self.command(args, Stdio::piped());
        for (k, v) in env {
            match v {
                Some(v) => cmd.env(k, v),
                None => cmd.env_remove(k),
            };
        }
        let mut child = cmd.spawn().expect("start dlq-replay");
        {
            use std::io::Write;
            let mut input = child.stdin.take().unwrap();
            input.write_all(stdin.as_bytes()).unwrap();
        }
        let output = child.wait_with_output().unwrap();
        Run::of(output, &self.audit_path())
    }

    fn run_json(&self, args: &[&str]) -> (Run, Value) {
        let mut full = vec!["--output", "json"];
        full.extend_from_slice(args);
        let run = self.run(&full, "");
        let json = serde_json::from_str(&run.stdout).unwrap_or_else(|e| {
            panic!(
                "dlq-replay {args:?} printed no JSON ({e}); exit {:?}\nstdout:\n{}\nstderr:\n{}",
                run.code, run.stdout, run.stderr
            )
        });
        (run, json)
    }
}

struct Run {
    code: Option<i32>,
    stdout: String,
    stderr: String,
    audit: String,
}

impl Run {
    /// Every run's output and audit log are scanned for synthetic patient data.
    fn of(o: Output, audit: &Path) -> Self {
        let run = Run {
            code: o.status.code(),
            stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
            audit: std::fs::read_to_string(audit).unwrap_or_default(),
        };
        for (what, text) in [
            ("dlq-replay stdout", &run.stdout),
            ("dlq-replay stderr", &run.stderr),
            ("dlq-replay audit log", &run.audit),
        ] {
            fleet_testkit::workers::assert_no_synthetic_phi(what, text);
        }
        run
    }

    fn assert_code(&self, code: i32) {
        assert_eq!(
            self.code,
            Some(code),
            "stdout:\n{}\nstderr:\n{}",
            self.stdout,
            self.stderr
        );
    }

    /// Nothing the operator or the audit log sees carries a body.
    fn assert_no_bodies(&self) {
        for (what, text) in [
            ("stdout", &self.stdout),
            ("stderr", &self.stderr),
            ("audit", &self.audit),
        ] {
            assert!(
                !text.contains(SECRET),
                "{what} contains a message body:\n{text}"
            );
        }
    }

    fn audit_records(&self) -> Vec<Value> {
        self.audit
            .lines()
            .map(|l| serde_json::from_str(l).expect("audit lines are JSON"))
            .collect()
    }
}

fn failure(code: ErrorCode, source: &str, seq: usize) -> AttributeValue {
    FailureMetadata {
        code,
        detail: format!("detail {}", code.as_str()),
        worker: "hl7-ingest".into(),
        source_queue: source.into(),
        first_failure: "2026-11-30T10:00:00Z".into(),
        last_failure: "2026-11-30T11:00:00Z".into(),
        receive_count: 3,
        message_id: format!("src-{seq}"),
    }
    .to_attribute()
}

/// Seed `n` messages: seq i gets `code_of(i)`, attributes `seq` and `tenant`, FIFO group
/// `g<i % groups>`.
async fn seed(
    dlq: &dyn MessageQueue,
    source: &str,
    n: usize,
    groups: Option<usize>,
    code_of: impl Fn(usize) -> ErrorCode,
) {
    let messages: Vec<OutgoingMessage> = (0..n)
        .map(|i| {
            let attributes: Attributes = [
                ("seq".to_string(), AttributeValue::number(i)),
                (
                    "tenant".to_string(),
                    AttributeValue::string(if i.is_multiple_of(2) {
                        "north"
                    } else {
                        "south"
                    }),
                ),
                (
                    FAILURE_ATTRIBUTE.to_string(),
                    failure(code_of(i), source, i),
                ),
            ]
            .into();
            OutgoingMessage {
                body: format!("MSH|^~\\&|{SECRET}-{i}|"),
                attributes,
                delay: None,
                group_id: groups.map(|g| format!("g{}", i % g)),
                dedup_id: groups.map(|_| format!("seed-{i}")),
            }
        })
        .collect();
    for batch in messages.chunks(10) {
        assert!(dlq.send_batch(batch).await.unwrap().all_ok());
    }
}

/// Receive and delete everything on `queue`, in order.
async fn drain(queue: &dyn MessageQueue) -> Vec<ReceivedMessage> {
    receive_all(queue, true).await
}

fn seq(m: &ReceivedMessage) -> usize {
    m.attributes["seq"].as_str().unwrap().parse().unwrap()
}

async fn visible(queue: &dyn MessageQueue) -> u64 {
    let a = queue.attributes().await.unwrap();
    assert_eq!(a.approximate_in_flight, 0, "messages left invisible");
    a.approximate_visible
}

// ---------------------------------------------------------------------------------------------
// Checks
// ---------------------------------------------------------------------------------------------

async fn list_finds_dlqs_with_sources_depth_and_age(s: Stack) {
    let p = s.pair(false).await;
    let dlq = s.queue(&p.dlq).await;
    seed(dlq.as_ref(), &p.source, 12, None, |_| ErrorCode::Hl7NotAdt).await;
    let (run, json) = s.run_json(&["list", "--prefix", &s.prefix]);
    run.assert_code(0);
    let dlqs = json.as_array().unwrap();
    assert_eq!(dlqs.len(), 1, "{json}");
    assert_eq!(dlqs[0]["queue"], p.dlq.as_str());
    assert_eq!(dlqs[0]["sources"], serde_json::json!([p.source]));
    assert_eq!(dlqs[0]["visible"], 12);
    assert!(dlqs[0]["oldest_age_secs"].as_u64().is_some(), "{json}");
    assert_eq!(dlqs[0]["scan_complete"], true);
    // Reading consumed nothing.
    assert_eq!(visible(dlq.as_ref()).await, 12);
    let human = s.run(&["list", "--prefix", &s.prefix], "");
    human.assert_code(0);
    assert!(human.stdout.starts_with("DLQ "), "{}", human.stdout);
    assert!(human.stdout.contains(&p.source), "{}", human.stdout);
    run.assert_no_bodies();
}

async fn summary_groups_failures_and_shows_no_body(s: Stack) {
    let p = s.pair(false).await;
    let dlq = s.queue(&p.dlq).await;
    seed(dlq.as_ref(), &p.source, 30, None, |i| {
        if i.is_multiple_of(3) {
            ErrorCode::Hl7ParseError
        } else {
            ErrorCode::Hl7NotAdt
        }
    })
    .await;
    let (run, json) = s.run_json(&["summary", &p.dlq]);
    run.assert_code(0);
    run.assert_no_bodies();
    assert_eq!(json["total"], 30);
    let groups: BTreeMap<String, u64> = json["groups"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| {
            assert_eq!(g["source_queue"], p.source.as_str());
            assert_eq!(g["worker"], "hl7-ingest");
            (
                g["code"].as_str().unwrap().to_string(),
                g["count"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        groups,
        [
            ("HL7_NOT_ADT".to_string(), 20),
            ("HL7_PARSE_ERROR".to_string(), 10)
        ]
        .into()
    );
    assert_eq!(visible(dlq.as_ref()).await, 30);
    let human = s.run(&["summary", &p.dlq], "");
    human.assert_code(0);
    human.assert_no_bodies();
    assert!(human.stdout.contains("HL7_PARSE_ERROR"), "{}", human.stdout);
    let audit = human.audit_records();
    assert!(
        audit
            .iter()
            .any(|r| r["operation"] == "summary" && r["queue"] == p.dlq.as_str()),
        "{}",
        human.audit
    );
}

async fn show_prints_bodies_only_when_asked_and_audits_it(s: Stack) {
    let p = s.pair(false).await;
    let dlq = s.queue(&p.dlq).await;
    seed(dlq.as_ref(), &p.source, 5, None, |_| ErrorCode::Hl7NotAdt).await;
    let plain = s.run(&["show", &p.dlq], "");
    plain.assert_code(0);
    plain.assert_no_bodies();
    assert_eq!(
        plain.stdout.matches("\nmessage ").count(),
        5,
        "{}",
        plain.stdout
    );
    assert!(
        plain.stdout.contains("detail HL7_NOT_ADT"),
        "{}",
        plain.stdout
    );
    assert!(plain.stdout.contains("fleet.failure"), "{}", plain.stdout);

    let (filtered, json) = s.run_json(&["show", &p.dlq, "--attribute", "tenant=north"]);
    filtered.assert_code(0);
    assert_eq!(json["messages"].as_array().unwrap().len(), 3, "{json}");

    let with_body = s.run(&["show", &p.dlq, "--show-body"], "");
    with_body.assert_code(0);
    for i in 0..5 {
        assert!(
            with_body.stdout.contains(&format!("{SECRET}-{i}|")),
            "{}",
            with_body.stdout
        );
    }
    // The audit log says bodies were shown and which, but holds none of them.
    assert!(!with_body.audit.contains(SECRET), "{}", with_body.audit);
    let records = with_body.audit_records();
    let last = records.last().unwrap();
    assert_eq!(last["operation"], "show");
    assert_eq!(last["bodies_shown"], true);
    assert_eq!(last["message_ids"].as_array().unwrap().len(), 5);
    assert!(last["actor"].as_str().is_some_and(|a| !a.is_empty()));
    assert_eq!(visible(dlq.as_ref()).await, 5);
}

async fn replay_moves_exactly_the_selection(s: Stack) {
    let p = s.pair(false).await;
    let dlq = s.queue(&p.dlq).await;
    let source = s.queue(&p.source).await;
    let code_of = |i: usize| {
        if i.is_multiple_of(5) {
            ErrorCode::Hl7ParseError
        } else {
            ErrorCode::Hl7NotAdt
        }
    };
    seed(dlq.as_ref(), &p.source, 1000, None, code_of).await;
    let selected: BTreeSet<usize> = (0..1000)
        .filter(|i| code_of(*i) == ErrorCode::Hl7NotAdt && i % 2 == 1)
        .collect();

    let run = s.run(
        &[
            "replay",
            &p.dlq,
            "--code",
            "HL7_NOT_ADT",
            "--attribute",
            "tenant=south",
            "--yes",
        ],
        "",
    );
    run.assert_code(0);
    run.assert_no_bodies();
    assert!(
        run.stdout
            .contains(&format!("replayed {0} of {0} selected", selected.len())),
        "{}",
        run.stdout
    );

    let arrived = drain(source.as_ref()).await;
    let arrived_seqs: Vec<usize> = arrived.iter().map(seq).collect();
    let unique_seqs: BTreeSet<usize> = arrived_seqs.iter().copied().collect();
    assert_eq!(
        arrived_seqs.len(),
        unique_seqs.len(),
        "a message arrived twice"
    );
    assert_eq!(unique_seqs, selected);
    for m in &arrived {
        // Body and every attribute, the failure attribute included, came back.
        assert_eq!(m.body, format!("MSH|^~\\&|{SECRET}-{}|", seq(m)));
        assert_eq!(
            m.attributes["tenant"],
            AttributeValue::string("south"),
            "attributes preserved"
        );
        let f = FailureMetadata::from_attributes(&m.attributes).unwrap();
        assert_eq!(f.message_id, format!("src-{}", seq(m)));
    }
    let rest: BTreeSet<usize> = drain(dlq.as_ref()).await.iter().map(seq).collect();
    let expected_rest: BTreeSet<usize> = (0..1000).filter(|i| !selected.contains(i)).collect();
    assert_eq!(rest, expected_rest, "the unselected stay, nothing is lost");

    let records = run.audit_records();
    let finished = records
        .iter()
        .rev()
        .find(|r| r["operation"] == "replay" && r["phase"] == "finished")
        .unwrap();
    assert_eq!(finished["moved"], selected.len());
    assert_eq!(
        finished["message_ids"].as_array().unwrap().len(),
        selected.len()
    );
    assert!(
        records
            .iter()
            .any(|r| r["operation"] == "replay" && r["phase"] == "started")
    );
}

async fn fifo_replay_keeps_groups_and_their_order(s: Stack) {
    let p = s.pair(true).await;
    let dlq = s.queue(&p.dlq).await;
    let source = s.queue(&p.source).await;
    seed(dlq.as_ref(), &p.source, 60, Some(3), |_| {
        ErrorCode::Hl7NotAdt
    })
    .await;
    let run = s.run(&["replay", &p.dlq, "--yes"], "");
    run.assert_code(0);
    assert!(run.stdout.contains("replayed 60 of 60"), "{}", run.stdout);
    let arrived = drain(source.as_ref()).await;
    assert_eq!(arrived.len(), 60);
    let mut by_group: BTreeMap<String, Vec<usize>> = BTreeMap::new();
    for m in &arrived {
        let g = m.group_id.clone().expect("group id kept");
        assert_eq!(g, format!("g{}", seq(m) % 3));
        by_group.entry(g).or_default().push(seq(m));
    }
    for (g, seqs) in &by_group {
        let mut sorted = seqs.clone();
        sorted.sort();
        assert_eq!(seqs, &sorted, "group {g} out of order");
        assert_eq!(seqs.len(), 20);
    }
    assert_eq!(visible(dlq.as_ref()).await, 0);
}

async fn a_message_that_fails_again_is_not_replayed_twice(s: Stack) {
    // Replaying a DLQ into itself: every moved message arrives again during the run. Only
    // the messages present when the run began may move, each once.
    let p = s.pair(false).await;
    let dlq = s.queue(&p.dlq).await;
    seed(dlq.as_ref(), &p.source, 25, None, |_| ErrorCode::Hl7NotAdt).await;
    let (run, json) = s.run_json(&["replay", &p.dlq, "--to", &p.dlq, "--yes"]);
    run.assert_code(0);
    assert_eq!(json["moved"], 25, "{json}");
    let back: Vec<usize> = drain(dlq.as_ref()).await.iter().map(seq).collect();
    assert_eq!(back.len(), 25);
    assert_eq!(back.iter().copied().collect::<BTreeSet<_>>().len(), 25);
}

async fn a_destination_that_disappears_loses_nothing(s: Stack) {
    let p = s.pair(false).await;
    let dlq = s.queue(&p.dlq).await;
    let target = s.create("target", false, None).await;
    seed(dlq.as_ref(), &p.source, 200, None, |_| ErrorCode::Hl7NotAdt).await;
    let audit = s.dir.path().join("audit.jsonl");
    let mut cmd = Command::new(binary("dlq-replay"));
    cmd.args([
        "--output", "json", "replay", &p.dlq, "--to", &target, "--yes", "--rate", "40",
    ])
    .current_dir(s.dir.path())
    .stdin(Stdio::null())
    .stdout(Stdio::piped())
    .stderr(Stdio::piped());
    for (k, _) in std::env::vars() {
        if k.starts_with("FLEET_") || k.starts_with("AWS_") {
            cmd.env_remove(&k);
        }
    }
    cmd.envs(s.env()).env("FLEET_DLQ_AUDIT_LOG", &audit);
    let child = cmd.spawn().unwrap();
    // Wait for the moving to begin, let some messages go, then delete the destination.
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while !std::fs::read_to_string(&audit)
        .unwrap_or_default()
        .contains("\"started\"")
    {
        assert!(
            std::time::Instant::now() < deadline,
            "the replay never started"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(Duration::from_millis(1500)).await;
    s.delete_queue(&target).await;
    let run = Run::of(child.wait_with_output().unwrap(), &audit);
    run.assert_code(3);
    let json: Value = serde_json::from_str(&run.stdout).unwrap();
    assert!(json["aborted"].as_str().is_some(), "{json}");
    let moved: BTreeSet<String> = json["moved_ids"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_string())
        .collect();
    let not_moved: BTreeSet<String> = json["not_moved"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["message_id"].as_str().unwrap().to_string())
        .collect();
    assert!(!moved.is_empty() && !not_moved.is_empty(), "{json}");
    assert!(moved.is_disjoint(&not_moved));
    assert_eq!(moved.len() + not_moved.len(), 200, "{json}");
    let remaining: BTreeSet<String> = drain(dlq.as_ref())
        .await
        .into_iter()
        .map(|m| m.message_id)
        .collect();
    assert_eq!(
        remaining, not_moved,
        "what did not move is still in the DLQ"
    );
    run.assert_no_bodies();
}

async fn purge_archives_encrypted_before_deleting(s: Stack) {
    let p = s.pair(false).await;
    let dlq = s.queue(&p.dlq).await;
    seed(dlq.as_ref(), &p.source, 20, None, |i| {
        if i < 8 {
            ErrorCode::Hl7ParseError
        } else {
            ErrorCode::Hl7NotAdt
        }
    })
    .await;
    let identity = age::x25519::Identity::generate();
    let recipient = identity.to_public().to_string();
    // Purge archives by default: without a recipient it refuses and changes nothing.
    let refused = s.run(&["purge", &p.dlq, "--yes"], "");
    refused.assert_code(2);
    assert!(
        refused.stderr.contains("--archive-recipient"),
        "{}",
        refused.stderr
    );
    assert_eq!(visible(dlq.as_ref()).await, 20);

    let archive_dir: PathBuf = s.dir.path().join("archive");
    let run = s.run(
        &[
            "purge",
            &p.dlq,
            "--code",
            "HL7_PARSE_ERROR",
            "--yes",
            "--archive",
            archive_dir.to_str().unwrap(),
            "--archive-recipient",
            &recipient,
        ],
        "",
    );
    run.assert_code(0);
    run.assert_no_bodies();
    let files: Vec<PathBuf> = std::fs::read_dir(&archive_dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(files.len(), 1, "{files:?}");
    assert!(!String::from_utf8_lossy(&std::fs::read(&files[0]).unwrap()).contains(SECRET));
    let archived = dlq_replayer::archive::read(&files[0], &identity).unwrap();
    let archived_seqs: BTreeSet<usize> = archived
        .iter()
        .map(|m| {
            assert!(m.body.contains(SECRET));
            m.attributes["seq"].as_str().unwrap().parse().unwrap()
        })
        .collect();
    assert_eq!(archived_seqs, (0..8).collect());
    let rest: BTreeSet<usize> = drain(dlq.as_ref()).await.iter().map(seq).collect();
    assert_eq!(rest, (8..20).collect());
}

async fn dry_run_and_confirmation_change_nothing_until_the_count_is_typed(s: Stack) {
    let p = s.pair(false).await;
    let dlq = s.queue(&p.dlq).await;
    let source = s.queue(&p.source).await;
    seed(dlq.as_ref(), &p.source, 30, None, |_| ErrorCode::Hl7NotAdt).await;
    let filter = ["--attribute", "tenant=south"];
    let args = |extra: &[&'static str]| {
        let mut a = vec!["replay", p.dlq.as_str()];
        a.extend_from_slice(&filter);
        a.extend_from_slice(extra);
        a
    };
    let (dry, json) = s.run_json(&args(&["--dry-run"]));
    dry.assert_code(0);
    dry.assert_no_bodies();
    assert_eq!(json["moved"], 15, "{json}");
    assert_eq!(json["moved_ids"].as_array().unwrap().len(), 15);
    assert_eq!(json["destinations"][&p.source], 15, "{json}");
    assert_eq!(visible(dlq.as_ref()).await, 30);
    assert_eq!(visible(source.as_ref()).await, 0);

    for answer in ["", "no\n", "14\n"] {
        let declined = s.run(&args(&[]), answer);
        declined.assert_code(2);
        assert!(
            declined.stderr.contains("Type 15 to confirm"),
            "{}",
            declined.stderr
        );
        assert!(
            declined.stdout.contains("not confirmed"),
            "{}",
            declined.stdout
        );
        assert_eq!(visible(dlq.as_ref()).await, 30);
        assert_eq!(visible(source.as_ref()).await, 0);
    }
    let confirmed = s.run(&args(&[]), "15\n");
    confirmed.assert_code(0);
    assert_eq!(visible(dlq.as_ref()).await, 15);
    assert_eq!(visible(source.as_ref()).await, 15);
}

async fn a_fifo_group_stops_at_its_first_message_that_stays(s: Stack) {
    // Groups g0..g2 hold seqs i with i % 3 == g. Selecting even seqs: g0 = 0 (moves), 3 (stays:
    // the group stops), 6, 9, 12 (stay behind it); g1 = 1 (stays) ...; g2 = 2 (moves), 5 stops it.
    let p = s.pair(true).await;
    let dlq = s.queue(&p.dlq).await;
    let source = s.queue(&p.source).await;
    seed(dlq.as_ref(), &p.source, 15, Some(3), |_| {
        ErrorCode::Hl7NotAdt
    })
    .await;
    let (run, json) = s.run_json(&["replay", &p.dlq, "--attribute", "tenant=north", "--yes"]);
    run.assert_code(0);
    assert_eq!(json["moved"], 2, "{json}");
    let moved: BTreeSet<usize> = drain(source.as_ref()).await.iter().map(seq).collect();
    assert_eq!(moved, [0, 2].into());
    let rest: Vec<usize> = drain(dlq.as_ref()).await.iter().map(seq).collect();
    assert_eq!(rest.len(), 13);
}

async fn without_a_failure_attribute_the_redrive_source_is_the_destination(s: Stack) {
    // What SQS's own redrive leaves after a crash: the body and attributes, no failure record.
    let p = s.pair(false).await;
    let dlq = s.queue(&p.dlq).await;
    let source = s.queue(&p.source).await;
    let bare: Vec<OutgoingMessage> = (0..5)
        .map(|i| OutgoingMessage {
            body: format!("{SECRET}-{i}"),
            attributes: [("seq".to_string(), AttributeValue::number(i))].into(),
            ..OutgoingMessage::default()
        })
        .collect();
    assert!(dlq.send_batch(&bare).await.unwrap().all_ok());
    // And one that SQS's redrive really moved: received and handed back maxReceiveCount (5)
    // times, so the next receive moves it to the DLQ with its receive count.
    let redriven = OutgoingMessage {
        body: format!("{SECRET}-5"),
        attributes: [("seq".to_string(), AttributeValue::number(5))].into(),
        ..OutgoingMessage::default()
    };
    source.send(redriven).await.unwrap();
    let mut receives = 0;
    for _ in 0..20 {
        if receives == 5 {
            break;
        }
        for m in source
            .receive(1, Duration::from_secs(1), Some(Duration::from_secs(30)))
            .await
            .unwrap()
        {
            receives += 1;
            assert!(
                source
                    .change_visibility_batch(&[(m.receipt, Duration::ZERO)])
                    .await
                    .unwrap()
                    .all_ok()
            );
        }
    }
    assert_eq!(receives, 5);
    let moved = source
        .receive(1, Duration::from_secs(1), None)
        .await
        .unwrap();
    assert!(moved.is_empty(), "the sixth receive moves it instead");
    let (summary, json) = s.run_json(&["summary", &p.dlq]);
    summary.assert_code(0);
    let group = &json["groups"][0];
    assert_eq!(group["code"], "REDRIVEN_WITHOUT_FAILURE", "{json}");
    assert_eq!(group["count"], 6, "{json}");
    // Sent straight to the DLQ: received once, by the scan. Redriven: its five receives on the
    // source carry over (moto adds one more), plus the scan's.
    assert_eq!(group["min_receive_count"], 1, "{json}");
    let max = group["max_receive_count"].as_u64().unwrap();
    assert!((6..=7).contains(&max), "{json}");
    let text = s.run(&["summary", &p.dlq], "");
    assert!(
        text.stdout.contains("REDRIVEN_WITHOUT_FAILURE"),
        "{}",
        text.stdout
    );
    // Every read of a DLQ is a receive: this second scan sees each count one higher.
    assert!(text.stdout.contains("RECEIVES"), "{}", text.stdout);
    assert!(
        text.stdout.contains(&format!("2-{}", max + 1)),
        "{}",
        text.stdout
    );
    let (run, json) = s.run_json(&["replay", &p.dlq, "--yes"]);
    run.assert_code(0);
    assert_eq!(json["destinations"][&p.source], 6, "{json}");
    let arrived: BTreeSet<usize> = drain(source.as_ref()).await.iter().map(seq).collect();
    assert_eq!(arrived, (0..6).collect());
}

async fn unknown_queues_are_user_errors(s: Stack) {
    let missing = format!("{}-missing", s.prefix);
    let run = s.run(&["summary", &missing], "");
    run.assert_code(2);
    assert!(run.stderr.contains("does not exist"), "{}", run.stderr);
}

// ---------------------------------------------------------------------------------------------
// Issue 16 item 8: destinations, printed fields and the audit log hold against forged input
// ---------------------------------------------------------------------------------------------

/// Send one dead-lettered message: `seq`, this failure attribute (JSON text) and `extra`
/// attributes.
async fn send_dead(dlq: &dyn MessageQueue, seq: usize, failure: String, extra: &[(&str, &str)]) {
    let mut attributes: Attributes = [
        ("seq".to_string(), AttributeValue::number(seq)),
        (
            FAILURE_ATTRIBUTE.to_string(),
            AttributeValue::string(failure),
        ),
    ]
    .into();
    for (k, v) in extra {
        attributes.insert(k.to_string(), AttributeValue::string(*v));
    }
    let m = OutgoingMessage {
        body: format!("MSH|^~\\&|{SECRET}-{seq}|"),
        attributes,
        ..OutgoingMessage::default()
    };
    assert!(dlq.send_batch(&[m]).await.unwrap().all_ok());
}

/// A failure attribute as a producer could write it: any code, detail and source queue.
fn forged_failure(code: &str, detail: &str, worker: &str, source: &str) -> String {
    serde_json::json!({
        "code": code,
        "detail": detail,
        "worker": worker,
        "source_queue": source,
        "first_failure": "2026-11-30T10:00:00Z",
        "last_failure": "2026-11-30T11:00:00Z",
        "receive_count": 3,
        "message_id": "src-forged",
    })
    .to_string()
}

fn reasons(json: &Value) -> BTreeMap<String, usize> {
    let mut out = BTreeMap::new();
    for n in json["not_moved"].as_array().unwrap() {
        *out.entry(n["reason"].as_str().unwrap().to_string())
            .or_default() += 1;
    }
    out
}

async fn item8_a_forged_source_queue_is_not_replayed_there(s: Stack) {
    let p = s.pair(false).await;
    let dlq = s.queue(&p.dlq).await;
    // Where a producer would like its message to go: a queue whose redrive policy names another
    // DLQ, and one without any redrive policy. Both encrypted: only the policy refuses them.
    let other_dlq = s.create("other-dlq", false, None).await;
    let victim = s.create("victim", false, Some(&other_dlq)).await;
    let plain = s.create("plain", false, None).await;
    seed(dlq.as_ref(), &p.source, 2, None, |_| ErrorCode::Hl7NotAdt).await;
    send_dead(
        dlq.as_ref(),
        2,
        forged_failure("HL7_NOT_ADT", "d", "w", &victim),
        &[],
    )
    .await;
    send_dead(
        dlq.as_ref(),
        3,
        forged_failure("HL7_NOT_ADT", "d", "w", &plain),
        &[],
    )
    .await;

    let (dry, json) = s.run_json(&["replay", &p.dlq, "--dry-run"]);
    dry.assert_code(3);
    assert_eq!(json["moved"], 2, "{json}");
    assert_eq!(
        json["destinations"],
        serde_json::json!({ p.source.clone(): 2 }),
        "{json}"
    );
    assert_eq!(
        reasons(&json),
        [("NOT_A_SOURCE_OF_THIS_DLQ".to_string(), 2)].into(),
        "{json}"
    );

    let run = s.run(&["replay", &p.dlq, "--yes"], "");
    run.assert_code(3);
    run.assert_no_bodies();
    assert!(
        run.stdout.contains(
            "NOT_A_SOURCE_OF_THIS_DLQ: the queue the failure attribute names has no redrive \
             policy naming this DLQ"
        ) && run.stdout.contains("--to QUEUE"),
        "{}",
        run.stdout
    );
    for q in [&victim, &plain, &other_dlq] {
        assert!(
            drain(s.queue(q).await.as_ref()).await.is_empty(),
            "{q} got a message"
        );
    }
    let source = s.queue(&p.source).await;
    let moved: BTreeSet<usize> = drain(source.as_ref()).await.iter().map(seq).collect();
    assert_eq!(moved, [0, 1].into());
    let finished = run
        .audit_records()
        .into_iter()
        .rev()
        .find(|r| r["operation"] == "replay" && r["phase"] == "finished")
        .unwrap();
    assert_eq!(finished["not_moved"].as_array().unwrap().len(), 2);

    // The operator's explicit choice needs no redrive policy.
    let (to, json) = s.run_json(&["replay", &p.dlq, "--to", &plain, "--yes"]);
    to.assert_code(0);
    assert_eq!(json["moved"], 2, "{json}");
    let arrived: BTreeSet<usize> = drain(s.queue(&plain).await.as_ref())
        .await
        .iter()
        .map(seq)
        .collect();
    assert_eq!(arrived, [2, 3].into());
}

async fn item8_an_unencrypted_to_is_refused_without_the_override(s: Stack) {
    let p = s.pair(false).await;
    let dlq = s.queue(&p.dlq).await;
    let target = s.create_with("plain", false, None, false).await;
    let target_q = s.queue(&target).await;
    seed(dlq.as_ref(), &p.source, 4, None, |_| ErrorCode::Hl7NotAdt).await;
    for extra in [&["--yes"][..], &["--dry-run"][..]] {
        let mut args = vec!["replay", p.dlq.as_str(), "--to", target.as_str()];
        args.extend_from_slice(extra);
        let refused = s.run_env(&args, "", &[("FLEET_ALLOW_UNENCRYPTED", None)]);
        refused.assert_code(2);
        assert!(
            refused.stderr.contains("is not encrypted")
                && refused.stderr.contains("--allow-unencrypted")
                && refused.stderr.contains("FLEET_ALLOW_UNENCRYPTED"),
            "{}",
            refused.stderr
        );
        assert!(
            !refused.audit.contains("\"started\""),
            "nothing started: {}",
            refused.audit
        );
        assert_eq!(visible(dlq.as_ref()).await, 4);
        assert_eq!(visible(target_q.as_ref()).await, 0);
    }
    // The workers' override lets it through.
    let allowed = s.run_env(
        &["replay", &p.dlq, "--to", &target, "--yes"],
        "",
        &[("FLEET_ALLOW_UNENCRYPTED", Some("1"))],
    );
    allowed.assert_code(0);
    assert_eq!(visible(target_q.as_ref()).await, 4);
    assert_eq!(visible(dlq.as_ref()).await, 0);
}

async fn item8_an_unencrypted_source_queue_is_refused_without_the_override(s: Stack) {
    // The source's redrive policy names the DLQ, so only the encryption check refuses it.
    let dlq_id = s.create("dlq", false, None).await;
    let source_id = s.create_with("in", false, Some(&dlq_id), false).await;
    let dlq = s.queue(&dlq_id).await;
    let source = s.queue(&source_id).await;
    seed(dlq.as_ref(), &source_id, 3, None, |_| ErrorCode::Hl7NotAdt).await;
    let (refused, json) = s.run_json(&["replay", &dlq_id, "--yes"]);
    refused.assert_code(3);
    assert_eq!(json["moved"], 0, "{json}");
    assert_eq!(
        reasons(&json),
        [("DESTINATION_UNENCRYPTED".to_string(), 3)].into(),
        "{json}"
    );
    assert_eq!(visible(source.as_ref()).await, 0);
    assert_eq!(visible(dlq.as_ref()).await, 3);
    let text = s.run(&["replay", &dlq_id, "--yes"], "");
    text.assert_code(3);
    assert!(
        text.stdout
            .contains("DESTINATION_UNENCRYPTED: the destination queue is not encrypted")
            && text.stdout.contains("--allow-unencrypted"),
        "{}",
        text.stdout
    );
    let (allowed, json) = s.run_json(&["replay", &dlq_id, "--yes", "--allow-unencrypted"]);
    allowed.assert_code(0);
    assert_eq!(json["moved"], 3, "{json}");
    assert_eq!(visible(source.as_ref()).await, 3);
}

async fn item8_control_characters_in_failures_are_printed_escaped(s: Stack) {
    let p = s.pair(false).await;
    let dlq = s.queue(&p.dlq).await;
    // An ANSI sequence that clears the screen and colours, a newline that would forge a line of
    // the report, a carriage return and a bell.
    let evil = "\u{1b}[2J\u{1b}[31mFORGED\nmessage fake-id\r\u{7}";
    let escaped = "\\u{1b}[2J\\u{1b}[31mFORGED\\u{a}message fake-id\\u{d}\\u{7}";
    let failure = forged_failure(
        &format!("HL7_NOT_ADT{evil}"),
        evil,
        evil,
        &format!("{}{evil}", p.source),
    );
    // SQS allows newlines in attribute values and (locally) anything in attribute names.
    let evil_name = format!("x{evil}");
    let extra: Vec<(&str, &str)> = match s.kind {
        Kind::Local(_) => vec![(evil_name.as_str(), "v"), ("note", "a\nmessage forged")],
        Kind::Aws(_) => vec![("note", "a\nmessage forged")],
    };
    send_dead(dlq.as_ref(), 0, failure, &extra).await;
    let runs = [
        s.run(&["show", &p.dlq], ""),
        s.run(&["summary", &p.dlq], ""),
        s.run(&["replay", &p.dlq, "--dry-run"], ""),
        s.run(&["--output", "json", "show", &p.dlq], ""),
    ];
    for run in &runs {
        for text in [&run.stdout, &run.stderr] {
            assert!(
                !text.contains(['\u{1b}', '\u{7}', '\r']),
                "a control character reached the terminal: {text:?}"
            );
            assert!(
                !text
                    .lines()
                    .any(|l| l.trim_start().starts_with("message fake-id")),
                "a forged line: {text}"
            );
        }
    }
    let show = &runs[0].stdout;
    runs[0].assert_code(0);
    for field in ["code", "detail", "worker", "source queue"] {
        assert!(
            show.lines()
                .any(|l| l.trim_start().starts_with(field) && l.contains(escaped)),
            "{field} not shown escaped:\n{show}"
        );
    }
    if matches!(s.kind, Kind::Local(_)) {
        assert!(show.contains(&format!("x{escaped}")), "{show}");
    }
    runs[1].assert_code(0);
    assert!(runs[1].stdout.contains(escaped), "{}", runs[1].stdout);
    assert!(
        runs[3].stdout.contains("\\u001b[31mFORGED\\n"),
        "{}",
        runs[3].stdout
    );
}

/// SHA-256 of `s` in hex, by coreutils (an oracle independent of the code under test).
fn sha256_hex(s: &str) -> String {
    use std::io::Write;
    let mut child = Command::new("sha256sum")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("sha256sum");
    child.stdin.take().unwrap().write_all(s.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    String::from_utf8(out.stdout).unwrap()[..64].to_string()
}

async fn item8_filter_values_are_in_the_audit_log_as_a_keyed_hash_only(s: Stack) {
    let p = s.pair(false).await;
    let dlq = s.queue(&p.dlq).await;
    let mrn = "MRN-48151623";
    let pattern = r"48151623\|";
    seed(dlq.as_ref(), &p.source, 3, None, |_| ErrorCode::Hl7NotAdt).await;
    let f = FailureMetadata {
        code: ErrorCode::Hl7NotAdt,
        detail: String::new(),
        worker: "hl7-ingest".into(),
        source_queue: p.source.clone(),
        first_failure: "2026-11-30T10:00:00Z".into(),
        last_failure: "2026-11-30T11:00:00Z".into(),
        receive_count: 3,
        message_id: "src-3".into(),
    };
    let m = OutgoingMessage {
        body: format!("MSH|^~\\&|{SECRET}|{mrn}|"),
        attributes: [
            ("seq".to_string(), AttributeValue::number(3)),
            ("mrn".to_string(), AttributeValue::string(mrn)),
            (FAILURE_ATTRIBUTE.to_string(), f.to_attribute()),
        ]
        .into(),
        ..OutgoingMessage::default()
    };
    assert!(dlq.send_batch(&[m]).await.unwrap().all_ok());
    let attribute = format!("mrn={mrn}");
    let show = [
        "show",
        p.dlq.as_str(),
        "--attribute",
        &attribute,
        "--body-regex",
        pattern,
    ];
    let other_key = "another-audit-key-that-is-32-bytes-or-more";
    let runs = [
        s.run(&show, ""),
        s.run(&show, ""),
        s.run_env(&show, "", &[("FLEET_DLQ_AUDIT_KEY", Some(other_key))]),
        s.run(
            &[
                "--output",
                "json",
                "replay",
                &p.dlq,
                "--attribute",
                &attribute,
                "--dry-run",
            ],
            "",
        ),
    ];
    for r in &runs {
        r.assert_code(0);
    }
    assert_eq!(
        runs[0].stdout.matches("\nmessage ").count(),
        1,
        "{}",
        runs[0].stdout
    );
    let audit = &runs[3].audit;
    for clear in [mrn, pattern, attribute.as_str()] {
        assert!(
            !audit.contains(clear),
            "the audit log holds a filter in clear:\n{audit}"
        );
        let bare = sha256_hex(clear);
        assert!(
            !audit.contains(&bare),
            "the audit log holds a bare SHA-256:\n{audit}"
        );
    }
    let records = runs[3].audit_records();
    let show_records: Vec<&Value> = records
        .iter()
        .filter(|r| r["operation"] == "show")
        .collect();
    assert_eq!(show_records.len(), 3);
    let attr_hash = |r: &Value| r["filters"]["attributes"][0]["value_hmac"].clone();
    let body_hash = |r: &Value| r["filters"]["body_regex_hmac"].clone();
    assert_eq!(show_records[0]["filters"]["attributes"][0]["name"], "mrn");
    let h = attr_hash(show_records[0]);
    assert_eq!(h.as_str().map(str::len), Some(64), "{audit}");
    // One key: the same hash in every run, so an auditor can correlate them.
    assert_eq!(attr_hash(show_records[1]), h);
    assert_eq!(body_hash(show_records[1]), body_hash(show_records[0]));
    assert!(body_hash(show_records[0]).is_string(), "{audit}");
    assert_eq!(
        show_records[0]["filters"]["hmac_key_id"],
        show_records[1]["filters"]["hmac_key_id"]
    );
    // Another key: another hash.
    assert_ne!(attr_hash(show_records[2]), h);
    assert_ne!(body_hash(show_records[2]), body_hash(show_records[0]));
    let replay = records
        .iter()
        .rev()
        .find(|r| r["operation"] == "replay" && r["phase"] == "finished")
        .unwrap();
    assert_eq!(attr_hash(replay), h, "{audit}");

    // Without a key the filter cannot be recorded, so the command does not run.
    let before = audit.lines().count();
    let refused = s.run_env(&show, "", &[("FLEET_DLQ_AUDIT_KEY", None)]);
    refused.assert_code(2);
    assert!(
        refused.stderr.contains("FLEET_DLQ_AUDIT_KEY"),
        "{}",
        refused.stderr
    );
    assert!(!refused.stdout.contains("message "), "{}", refused.stdout);
    assert_eq!(refused.audit.lines().count(), before);
    assert!(!refused.audit.contains(mrn));
}

/// The override follows the workers' rule (item 10): on the aws backend against AWS itself it
/// is refused before any request, so an unencrypted destination stays refused.
#[test]
fn item8_the_override_is_refused_against_aws_itself() {
    let dir = tempfile::tempdir().unwrap();
    let none = dir.path().join("none").display().to_string();
    let mut cmd = Command::new(binary("dlq-replay"));
    cmd.args([
        "replay",
        "some-dlq",
        "--to",
        "plain",
        "--yes",
        "--allow-unencrypted",
    ])
    .current_dir(dir.path())
    .stdin(Stdio::null())
    .stdout(Stdio::piped())
    .stderr(Stdio::piped());
    for (k, _) in std::env::vars() {
        if k.starts_with("FLEET_") || k.starts_with("AWS_") {
            cmd.env_remove(&k);
        }
    }
    cmd.envs([
        ("FLEET_BACKEND", "aws"),
        ("FLEET_DLQ_AUDIT_LOG", "-"),
        ("AWS_REGION", "us-east-1"),
        ("AWS_ACCESS_KEY_ID", "testing"),
        ("AWS_SECRET_ACCESS_KEY", "testing"),
        ("AWS_CONFIG_FILE", none.as_str()),
        ("AWS_SHARED_CREDENTIALS_FILE", none.as_str()),
        ("AWS_EC2_METADATA_DISABLED", "true"),
        ("AWS_MAX_ATTEMPTS", "1"),
    ]);
    let out = cmd.output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("refusing --allow-unencrypted") && stderr.contains("goes to AWS itself"),
        "{stderr}"
    );
}

macro_rules! both {
    ($($check:ident),+ $(,)?) => {
        mod local {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $check() {
                    super::$check(super::Stack::local()).await;
                }
            )+
        }
        mod aws {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $check() {
                    super::$check(super::Stack::aws().await).await;
                }
            )+
        }
    };
}

both!(
    list_finds_dlqs_with_sources_depth_and_age,
    summary_groups_failures_and_shows_no_body,
    show_prints_bodies_only_when_asked_and_audits_it,
    replay_moves_exactly_the_selection,
    fifo_replay_keeps_groups_and_their_order,
    a_message_that_fails_again_is_not_replayed_twice,
    a_destination_that_disappears_loses_nothing,
    purge_archives_encrypted_before_deleting,
    dry_run_and_confirmation_change_nothing_until_the_count_is_typed,
    a_fifo_group_stops_at_its_first_message_that_stays,
    without_a_failure_attribute_the_redrive_source_is_the_destination,
    unknown_queues_are_user_errors,
    item8_a_forged_source_queue_is_not_replayed_there,
    item8_an_unencrypted_to_is_refused_without_the_override,
    item8_an_unencrypted_source_queue_is_refused_without_the_override,
    item8_control_characters_in_failures_are_printed_escaped,
    item8_filter_values_are_in_the_audit_log_as_a_keyed_hash_only,
);
