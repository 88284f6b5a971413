//! `notify check`: the real binary lists the example rules and refuses a broken file.

#[test]
fn notify_check_lists_the_example_rules_and_refuses_a_broken_file() {
    let example = concat!(env!("CARGO_MANIFEST_DIR"), "/../notify/rules.example.toml");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_notify"))
        .args(["check", "--rules", example])
        .env_remove("FLEET_NOTIFY_RULES")
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let listed = String::from_utf8(out.stdout).unwrap();
    for name in [
        "inpatient-admissions",
        "discharges",
        "documents-with-medications",
    ] {
        assert!(listed.contains(name), "{listed}");
    }
    let dir = tempfile::tempdir().unwrap();
    let broken = dir.path().join("rules.toml");
    std::fs::write(
        &broken,
        "[[rule]]\nname = \"x\"\ndestination = \"t\"\npattern = { source = [{ wildcard = \"a*\" }] }\nbody = \"b\"\n",
    )
    .unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_notify"))
        .args(["check", "--rules"])
        .arg(&broken)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(
        err.contains("rule \"x\"") && err.contains("wildcard"),
        "{err}"
    );
}

/// On AWS, rules naming a topic by a bare name (the local example rules) are refused at start,
/// before any queue is touched, with the rule and what to write instead.
#[test]
fn notify_on_aws_refuses_rules_whose_topics_are_not_arns() {
    let example = concat!(env!("CARGO_MANIFEST_DIR"), "/../notify/rules.example.toml");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_notify"))
        .env_clear()
        .envs([
            ("FLEET_BACKEND", "aws"),
            ("AWS_REGION", "eu-west-1"),
            // Nothing listens here: the refusal must come before any request.
            ("AWS_ENDPOINT_URL", "http://127.0.0.1:9"),
            ("FLEET_NOTIFY_QUEUE", "notify-inbound"),
            ("FLEET_NOTIFY_TABLE", "notify-records"),
            ("FLEET_NOTIFY_RULES", example),
        ])
        .output()
        .unwrap();
    assert!(!out.status.success(), "{out:?}");
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(
        err.contains("rule \"inpatient-admissions\" sends to topic \"care-team-4east\"")
            && err.contains("named by its ARN"),
        "{err}"
    );
}
