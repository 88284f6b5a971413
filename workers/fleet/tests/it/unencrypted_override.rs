//! Issue 16 item 10 through the real binary: `FLEET_ALLOW_UNENCRYPTED` on the aws backend
//! against AWS itself (no endpoint override, or one service's override not on loopback) stops
//! the worker at start with the reason, before it asks AWS for anything; against a loopback
//! endpoint (moto, LocalStack) the override is not what stops it.

use std::time::Duration;

use fleet_testkit::workers::Worker;

/// Start hl7-ingest on the aws backend with the override and `extra`; its exit code and log.
fn start_with_override(extra: &[(&str, String)]) -> (Option<i32>, String) {
    let dir = tempfile::tempdir().unwrap();
    let mut envs: Vec<(&str, String)> = vec![
        ("FLEET_BACKEND", "aws".into()),
        ("FLEET_ALLOW_UNENCRYPTED", "1".into()),
        ("FLEET_HL7_QUEUE", "hl7-ingest".into()),
        ("FLEET_HL7_TABLE", "hl7-records".into()),
        ("FLEET_EVENT_BUS", "fleet".into()),
        ("FLEET_LOG_FORMAT", "text".into()),
        ("AWS_REGION", "us-east-1".into()),
        ("AWS_ACCESS_KEY_ID", "testing".into()),
        ("AWS_SECRET_ACCESS_KEY", "testing".into()),
        // No profile can add an endpoint, no instance metadata is asked for.
        (
            "AWS_CONFIG_FILE",
            dir.path().join("none").display().to_string(),
        ),
        (
            "AWS_SHARED_CREDENTIALS_FILE",
            dir.path().join("none").display().to_string(),
        ),
        ("AWS_EC2_METADATA_DISABLED", "true".into()),
        ("AWS_MAX_ATTEMPTS", "1".into()),
    ];
    envs.extend(extra.iter().cloned());
    let mut worker = Worker::start("hl7-ingest", &[], &envs, dir.path().join("worker.log"));
    let status = worker.wait_exit(Duration::from_secs(120));
    (status.code(), worker.log_text())
}

#[test]
fn item10_allow_unencrypted_on_aws_is_refused_unless_every_endpoint_is_loopback() {
    // AWS itself: no endpoint override at all.
    let (code, log) = start_with_override(&[]);
    assert_eq!(code, Some(1), "{log}");
    assert!(
        log.contains("refusing to start")
            && log.contains("FLEET_ALLOW_UNENCRYPTED")
            && log.contains("goes to AWS itself"),
        "the worker names the refused override: {log}"
    );

    // moto on loopback for every service but SQS, which still goes to AWS.
    let (code, log) = start_with_override(&[
        ("AWS_ENDPOINT_URL", "http://127.0.0.1:9".into()),
        (
            "AWS_ENDPOINT_URL_SQS",
            "https://sqs.us-east-1.amazonaws.com".into(),
        ),
    ]);
    assert_eq!(code, Some(1), "{log}");
    assert!(
        log.contains("refusing to start")
            && log.contains("SQS goes to https://sqs.us-east-1.amazonaws.com, not a loopback"),
        "{log}"
    );

    // Every endpoint on loopback (nothing listens on the discard port): the override is
    // accepted, and the worker fails later, reaching for the queue.
    let (code, log) = start_with_override(&[("AWS_ENDPOINT_URL", "http://127.0.0.1:9".into())]);
    assert_eq!(code, Some(1), "{log}");
    assert!(!log.contains("refusing to start"), "{log}");
    assert!(log.contains("cannot open queue"), "{log}");
}
