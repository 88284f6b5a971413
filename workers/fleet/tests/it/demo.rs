//! The README's first command: `fleet demo` runs to completion and exits 0, twice on the same
//! directory (the second run republishes the same event ids and writes no new records).

use std::process::Command;

fn demo(dir: &std::path::Path) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_fleet"))
        .args(["demo", "--dir"])
        .arg(dir)
        .env_remove("FLEET_BACKEND")
        .output()
        .unwrap();
    let stdout = String::from_utf8(out.stdout).unwrap();
    // The demo's log (stderr) and what it prints carry no synthetic patient data.
    for (what, text) in [
        ("stderr", String::from_utf8_lossy(&out.stderr).into_owned()),
        ("stdout", stdout.clone()),
    ] {
        let hits = fleet_samples::hl7::synthetic_phi_in(&text);
        assert!(
            hits.is_empty(),
            "demo {what} holds patient data at (line, kind) {hits:?}"
        );
    }
    assert!(
        out.status.success(),
        "demo exited {}: {stdout}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    // Nor do the failure details of what it dead-lettered, or its outbox.
    fleet_testkit::workers::assert_no_synthetic_phi_in_local_backend(&dir.join("fleet.sqlite"));
    stdout
}

fn event_ids(stdout: &str) -> Vec<String> {
    let mut ids: Vec<String> = stdout
        .lines()
        .filter_map(|l| l.split("event id ").nth(1))
        .map(|s| s.trim().to_string())
        .collect();
    ids.sort();
    ids
}

#[test]
fn the_demo_runs_to_completion_and_is_idempotent_on_a_reused_directory() {
    let dir = tempfile::tempdir().unwrap();
    let first = demo(dir.path());
    assert!(
        first.contains("demo ok: 19 events, 2 refused at the gateway and 3 dead-lettered with the expected codes, nothing lost; 3 documents processed, 1 refused with its code"),
        "{first}"
    );
    // The document half: entities printed per document, the Word file refused with its code.
    assert!(first.contains("DOCUMENT_UNSUPPORTED_TYPE"), "{first}");
    for med in ["metformin", "amoxicillin", "amlodipine"] {
        assert!(
            first
                .lines()
                .any(|l| l.trim_start().starts_with("MEDICATION") && l.contains(med)),
            "{med} not printed as a medication:\n{first}"
        );
    }
    assert!(
        first
            .lines()
            .any(|l| l.contains("chest pain") && l.contains("NEGATION")),
        "the negated condition is not shown negated:\n{first}"
    );
    // The gateway refuses what it can tell is wrong from the MSH (its ACK's ERR code, HL7
    // table 0357) and queues the rest; hl7-ingest dead-letters those with its own codes.
    for (ack, err) in [("CR", "ERR 200"), ("AE", "ERR 100")] {
        assert!(
            first
                .lines()
                .any(|l| l.trim_start().starts_with(ack) && l.contains(err)),
            "no {ack} with {err} in the demo output:\n{first}"
        );
    }
    for code in ["HL7_MISSING_FIELD", "HL7_MISSING_MRG", "HL7_BAD_SEGMENT"] {
        assert!(first.contains(code), "{code} missing from the demo output");
    }
    // The notify half: admissions and documents rendered into the outbox without PHI.
    assert!(
        first
            .lines()
            .any(|l| l.contains("[inpatient-admissions] care-team-4east | Admission to 4EAST |")),
        "no admission notification printed:\n{first}"
    );
    assert!(
        first
            .lines()
            .any(|l| l.contains("[documents-with-medications]")),
        "no document notification printed:\n{first}"
    );
    let outbox = std::fs::read_to_string(dir.path().join("outbox.jsonl")).unwrap();
    assert!(outbox.lines().count() > 0);
    let second = demo(dir.path());
    // Redelivered events (same event ids) notify nobody twice.
    assert!(second.contains("; 0 notifications"), "{second}");
    assert_eq!(
        std::fs::read_to_string(dir.path().join("outbox.jsonl")).unwrap(),
        outbox,
        "the second run added notifications"
    );
    assert_eq!(
        event_ids(&first),
        event_ids(&second),
        "a replayed feed must republish the same event ids"
    );
    let records = |s: &str| {
        s.lines()
            .find(|l| l.starts_with("records in table"))
            .map(str::to_string)
    };
    assert_eq!(
        records(&first),
        records(&second),
        "the second run wrote new records"
    );
    // The demo prints identifiers only as control ids: no generated name reaches the output.
    for name in fleet_samples::hl7::FAMILY
        .iter()
        .chain(fleet_samples::hl7::GIVEN)
    {
        assert!(!first.contains(name));
        assert!(!outbox.contains(name), "a name reached a notification");
    }
}
