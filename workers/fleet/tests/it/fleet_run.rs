//! `fleet run --dir DIR`: one process runs the whole fleet on the local backend. An ADT
//! admission (over MLLP, through the gateway `fleet run` hosts), a malformed message and a
//! document upload go in; the admission is ACKed, and it and the document come out as
//! notifications in the outbox, the malformed message in hl7-ingest's DLQ with its code;
//! SIGTERM drains every worker and the process exits 0.

use std::path::Path;
use std::time::{Duration, Instant};

use fleet_core::FailureMetadata;
use fleet_core::ports::OutgoingMessage;
use fleet_local::LocalBackend;
use fleet_samples::{docs, hl7};
use fleet_testkit::workers::Worker;

/// Poll `f` until it returns `Some` or `limit` passes (then fail with `what` and the log).
async fn wait_for<T>(
    worker: &Worker,
    what: &str,
    limit: Duration,
    mut f: impl FnMut() -> Option<T>,
) -> T {
    let started = Instant::now();
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(
            started.elapsed() < limit,
            "{what} did not happen within {limit:?}; log:\n{}",
            worker.log_text()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// The body of a 200 answer to `GET path` on `addr`, `None` otherwise.
fn http_get(addr: &str, path: &str) -> Option<String> {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(addr).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(10))).ok()?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut text = String::new();
    s.read_to_string(&mut text).ok()?;
    let (head, body) = text.split_once("\r\n\r\n")?;
    head.starts_with("HTTP/1.1 200").then(|| body.to_string())
}

fn local(dir: &Path) -> LocalBackend {
    LocalBackend::open(&dir.join("fleet.sqlite"), &dir.join("objects")).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fleet_run_dir_runs_all_three_workers_in_one_process() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("fleet");
    let dir_arg = dir.display().to_string();
    // The stack's own fleet.toml, with the gateway on a free port instead of 2575 (tests run in
    // parallel); `fleet run` keeps a fleet.toml it finds.
    std::fs::create_dir_all(&dir).unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mllp = format!("127.0.0.1:{port}");
    let page_port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let page = format!("127.0.0.1:{page_port}");
    let toml =
        fleet::local_stack::default_config(&dir).replace(fleet::local_stack::MLLP_LISTEN, &mllp);
    assert!(toml.contains(&mllp));
    std::fs::write(dir.join("fleet.toml"), toml).unwrap();
    let mut fleet = Worker::start(
        "fleet",
        &["run", "--dir", &dir_arg],
        &[
            ("FLEET_WAIT_TIME_SECS", "1".to_string()),
            ("FLEET_LOG_FORMAT", "json".to_string()),
            // Read by every worker's options too: the fleet's page takes the address and the
            // workers start no endpoint of their own there (else the second bind would fail).
            ("FLEET_HEALTH_ADDR", page.clone()),
        ],
        tmp.path().join("fleet.log"),
    );
    let running =
        "fleet: running hl7-ingest, doc-pipeline, notify, mllp-gateway on the local backend";
    wait_for(&fleet, "the start line", Duration::from_secs(60), || {
        fleet.log_text().contains(running).then_some(())
    })
    .await;
    assert!(dir.join("fleet.toml").is_file(), "fleet.toml written");
    // The start line comes before the workers open their queues: wait for the gateway's.
    wait_for(
        &fleet,
        "the gateway listening",
        Duration::from_secs(60),
        || {
            fleet
                .log_text()
                .contains("mllp-gateway listening")
                .then_some(())
        },
    )
    .await;

    let backend = local(&dir);
    use fleet_core::Backend;
    let patient = hl7::SamplePatient {
        mrn: "MRN5550001".into(),
        family: hl7::FAMILY[0].into(),
        given: hl7::GIVEN[0].into(),
        birth_date: "19700101".into(),
    };
    // The admission as a feed sends it: over MLLP, ACKed once queued.
    let mut client = mllp_gateway::client::Client::connect(
        &mllp,
        &mllp_gateway::client::ConnectOptions::default(),
    )
    .await
    .unwrap();
    let reply = client
        .exchange(
            hl7::adt("A01", "RUN1", &patient, 1, 1).as_bytes(),
            Duration::from_secs(30),
        )
        .await
        .unwrap();
    let ack = mllp_gateway::ack::parse_ack(&reply).unwrap();
    assert!(
        matches!(ack.code.as_str(), "AA" | "CA") && ack.control_id == "RUN1",
        "{ack:?}"
    );
    client.close().await;
    // The malformed message straight onto the queue (the gateway would refuse it: ORU).
    backend
        .queue("hl7-inbound")
        .await
        .unwrap()
        .send(OutgoingMessage {
            body: hl7::malformed(0, "RUN2", &patient, 2).0,
            ..OutgoingMessage::default()
        })
        .await
        .unwrap();
    let (_, expected_code) = hl7::malformed(0, "RUN2", &patient, 2);
    let uploads = backend.objects("uploads");
    let key = "letters/lab note.txt";
    let meta = uploads
        .put(key, docs::LAB_NOTE.text.as_bytes().to_vec(), "text/plain")
        .await
        .unwrap();
    backend
        .queue("doc-uploads")
        .await
        .unwrap()
        .send(OutgoingMessage {
            body: fleet_docs::s3event::object_created_event(
                "uploads",
                key,
                meta.size,
                &meta.etag.unwrap_or_default(),
            ),
            ..OutgoingMessage::default()
        })
        .await
        .unwrap();

    // Both notifications: the admission (hl7-ingest → bus → notify) and the document
    // (doc-pipeline → bus → notify), rendered by the example rules.
    let rules = wait_for(
        &fleet,
        "two notifications",
        Duration::from_secs(120),
        || {
            let outbox = backend.outbox().ok()?;
            let mut rules: Vec<String> = outbox
                .iter()
                .filter_map(|o| o.notification.attributes.get("fleet.rule").cloned())
                .collect();
            rules.sort();
            (rules.len() >= 2).then_some(rules)
        },
    )
    .await;
    assert_eq!(
        rules,
        ["documents-with-medications", "inpatient-admissions"]
    );
    let dead = wait_for(
        &fleet,
        "the malformed message dead-lettered",
        Duration::from_secs(60),
        || {
            let dead = backend.queue_messages_snapshot("hl7-inbound-dlq").ok()?;
            (!dead.is_empty()).then_some(dead)
        },
    )
    .await;
    assert_eq!(dead.len(), 1);
    let failure = FailureMetadata::from_attributes(&dead[0].attributes).expect("failure attribute");
    assert_eq!(failure.code, expected_code);
    assert_eq!(failure.worker, "hl7-ingest");
    assert!(
        backend
            .queue_messages_snapshot("doc-uploads-dlq")
            .unwrap()
            .is_empty()
            && backend
                .queue_messages_snapshot("notify-inbound-dlq")
                .unwrap()
                .is_empty(),
        "nothing else dead-lettered"
    );

    // `fleet status` on the running fleet: every consumed queue, with the DLQ's codes.
    let out = std::process::Command::new(fleet_testkit::workers::binary("fleet"))
        .args(["status", "--dir", &dir_arg, "--output", "json"])
        .output()
        .unwrap();
    assert!(out.status.success(), "fleet status: {out:?}");
    let status: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let queue = |name: &str| {
        status["queues"]
            .as_array()
            .unwrap()
            .iter()
            .find(|q| q["queue"] == name)
            .unwrap_or_else(|| panic!("{name} missing from fleet status: {status:#}"))
            .clone()
    };
    let hl7 = queue("hl7-inbound");
    assert_eq!(hl7["worker"], "hl7-ingest");
    assert_eq!(hl7["dlq"]["queue"], "hl7-inbound-dlq");
    assert_eq!(hl7["dlq"]["depth"], 1);
    assert_eq!(
        hl7["dlq"]["codes"],
        serde_json::json!({ expected_code.as_str(): 1 }),
        "{status:#}"
    );
    assert!(
        hl7["last_poll_age_secs"].as_f64().is_some_and(|s| s < 30.0),
        "hl7-ingest polls: {hl7}"
    );
    for (name, worker) in [
        ("doc-uploads", "doc-pipeline"),
        ("notify-inbound", "notify"),
    ] {
        let q = queue(name);
        assert_eq!(q["worker"], worker);
        assert_eq!(q["dlq"]["depth"], 0, "{q}");
        assert_eq!(q["dlq"]["codes"], serde_json::json!({}), "{q}");
        assert!(q["last_poll_age_secs"].is_number(), "{q}");
    }
    // The page `fleet run` serves on FLEET_HEALTH_ADDR: the same status, with the workers'
    // liveness read from the process itself.
    let (served, live) = wait_for(&fleet, "the health page", Duration::from_secs(60), || {
        let json = http_get(&page, "/status.json")?;
        let v: serde_json::Value = serde_json::from_str(&json).ok()?;
        let all_process = v["workers"]
            .as_array()?
            .iter()
            .all(|w| w["live_source"] == "process");
        all_process.then(|| (v, http_get(&page, "/health/live")))
    })
    .await;
    assert_eq!(live.as_deref(), Some("live\n"));
    for w in served["workers"].as_array().unwrap() {
        assert_eq!(w["live"], "live", "{served:#}");
    }
    assert_eq!(
        served["queues"][0]["dlq"]["codes"],
        serde_json::json!({ expected_code.as_str(): 1 }),
        "{served:#}"
    );
    // No body reaches the status output.
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(
        !text.contains("MRN5550001") && !text.contains(hl7::FAMILY[0]),
        "{text}"
    );

    let (took, status) = fleet.terminate(Duration::from_secs(90));
    assert!(
        status.success(),
        "exit {status:?}; log:\n{}",
        fleet.log_text()
    );
    assert!(took < Duration::from_secs(60), "drained in {took:?}");
    let log = fleet.log_text();
    for worker in ["hl7-ingest", "doc-pipeline", "notify"] {
        assert!(
            log.lines()
                .any(|l| l.contains("worker stopped") && l.contains(&format!("\"{worker}\""))),
            "{worker} stopped cleanly; log:\n{log}"
        );
    }
    // Nothing of the letter reaches the log (the synthetic patients are scanned on drop).
    for secret in docs::secrets() {
        let line = log.lines().find(|l| l.contains(secret));
        assert!(
            line.is_none(),
            "document text {secret:?} in the fleet log: {line:?}"
        );
    }
}
