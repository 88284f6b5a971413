//! `hl7-ingest inspect` over the third-party corpus, through the real binary: every ADT message
//! maps to the trigger, control id and first PID-3 identifier that a naive reading of the file
//! gives; every other message type is refused with HL7_NOT_ADT; no file makes it fail.

use std::path::PathBuf;
use std::process::Command;

fn corpus_dir() -> PathBuf {
    let dir = fleet_core::env::corpus_dir();
    let hl7 = dir.join("hl7");
    assert!(
        hl7.is_dir(),
        "HL7 corpus not found at {}: set FLEET_CORPUS_DIR",
        hl7.display()
    );
    hl7
}

/// What a person reading the file would expect, per message.
#[derive(Debug)]
struct Naive {
    message_type: String,
    trigger: String,
    control_id: String,
    first_pid3: Option<String>,
}

fn naive(bytes: &[u8]) -> Vec<Naive> {
    let text = String::from_utf8_lossy(bytes)
        .replace('\u{feff}', "")
        .replace("\r\n", "\n")
        .replace('\r', "\n");
    let mut out: Vec<Naive> = Vec::new();
    let mut evn_trigger = None;
    for line in text.lines() {
        let sep = line.chars().nth(3).unwrap_or('|');
        let fields: Vec<&str> = line.split(sep).collect();
        if line.starts_with("MSH") {
            let msh9 = fields.get(8).copied().unwrap_or("");
            let mut parts = msh9.split('^');
            let ty = parts.next().unwrap_or("");
            let trig = parts.next().unwrap_or("");
            out.push(Naive {
                message_type: if trig.is_empty() {
                    ty.to_string()
                } else {
                    format!("{ty}^{trig}")
                },
                trigger: trig.to_string(),
                control_id: fields.get(9).copied().unwrap_or("").to_string(),
                first_pid3: None,
            });
            evn_trigger = None;
        } else if line.starts_with("EVN") {
            evn_trigger = fields.get(1).map(|s| s.to_string());
            if let Some(m) = out.last_mut().filter(|m| m.trigger.is_empty()) {
                m.trigger = evn_trigger.clone().unwrap_or_default();
            }
        } else if line.starts_with("PID")
            && let Some(m) = out.last_mut().filter(|m| m.first_pid3.is_none())
        {
            let pid3 = fields.get(3).copied().unwrap_or("");
            let id = pid3
                .split('~')
                .next()
                .unwrap_or("")
                .split('^')
                .next()
                .unwrap_or("");
            m.first_pid3 = Some(id.to_string());
        }
    }
    let _ = evn_trigger;
    out
}

#[test]
fn every_corpus_adt_message_maps_and_every_other_type_is_refused() {
    let files = fleet_testkit::hl7_files(&corpus_dir());
    assert!(
        files.len() >= 40,
        "corpus looks incomplete: {} files",
        files.len()
    );
    let output = Command::new(env!("CARGO_BIN_EXE_hl7-ingest"))
        .arg("inspect")
        .args(&files)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "inspect exited {}: {}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    let lines: Vec<serde_json::Value> = String::from_utf8(output.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).expect("one JSON object per line"))
        .collect();

    let (mut adt, mut refused) = (0, 0);
    for file in &files {
        let name = file.display().to_string();
        let expected = naive(&std::fs::read(file).unwrap());
        let got: Vec<&serde_json::Value> = lines
            .iter()
            .filter(|l| l["file"] == name.as_str())
            .collect();
        assert_eq!(got.len(), expected.len(), "{name}: message count");
        for (e, g) in expected.iter().zip(&got) {
            if e.message_type.starts_with("ADT") && e.first_pid3.is_none() {
                // An ADT message without a PID segment names no patient: refused, not mapped.
                refused += 1;
                assert_eq!(g["status"], "error", "{name}: {g}");
                assert_eq!(g["code"], "HL7_MISSING_FIELD", "{name}: {g}");
                assert_eq!(
                    g["control_id"],
                    e.control_id.trim(),
                    "{name}: the header should still be shown"
                );
            } else if e.message_type.starts_with("ADT") {
                adt += 1;
                assert_eq!(g["status"], "ok", "{name}: {g}");
                assert_eq!(g["trigger"], e.trigger.as_str(), "{name}");
                assert_eq!(g["control_id"], e.control_id.trim(), "{name}");
                assert!(
                    g["message_type"]
                        .as_str()
                        .unwrap()
                        .starts_with(&format!("ADT^{}", e.trigger)),
                    "{name}: {g}"
                );
                let first = &g["patient_ids"][0]["id"];
                assert_eq!(
                    first.as_str(),
                    e.first_pid3.as_deref(),
                    "{name}: first PID-3 identifier"
                );
            } else {
                refused += 1;
                assert_eq!(g["status"], "error", "{name}: {g}");
                assert_eq!(g["code"], "HL7_NOT_ADT", "{name}: {g}");
            }
        }
    }
    assert!(
        adt >= 30 && refused >= 30,
        "only {adt} ADT and {refused} other messages seen"
    );
}

#[test]
fn inspect_reads_batches_mllp_and_any_line_endings_and_reports_unreadable_files() {
    let dir = tempfile::tempdir().unwrap();
    let p = fleet_samples::hl7::SamplePatient {
        mrn: "MRN1".into(),
        family: "A".into(),
        given: "B".into(),
        birth_date: "19700101".into(),
    };
    let a = fleet_samples::hl7::adt("A01", "X1", &p, 1, 1);
    let b = fleet_samples::hl7::adt("A03", "X2", &p, 2, 1);
    let batch = format!(
        "\u{feff}FHS|^~\\&\nBHS|^~\\&\n{}\n{}\nBTS|2\nFTS|1\n",
        a.replace('\r', "\n"),
        b.replace('\r', "\r\n")
    );
    let file = dir.path().join("batch.hl7");
    std::fs::write(&file, batch).unwrap();
    let mllp = dir.path().join("mllp.hl7");
    std::fs::write(&mllp, format!("\x0b{a}\x1c\r")).unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_hl7-ingest"))
        .arg("inspect")
        .arg(&file)
        .arg(&mllp)
        .output()
        .unwrap();
    assert!(output.status.success());
    let lines: Vec<serde_json::Value> = String::from_utf8(output.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let triggers: Vec<&str> = lines
        .iter()
        .map(|l| l["trigger"].as_str().unwrap())
        .collect();
    assert_eq!(triggers, ["A01", "A03", "A01"]);

    let missing = Command::new(env!("CARGO_BIN_EXE_hl7-ingest"))
        .arg("inspect")
        .arg(dir.path().join("nope.hl7"))
        .output()
        .unwrap();
    assert_eq!(missing.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&missing.stderr).contains("cannot read"));
}
