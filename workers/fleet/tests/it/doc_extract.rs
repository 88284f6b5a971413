//! `doc-pipeline extract FILE...`: the real binary with Tesseract and the rules extractor on
//! files the test renders itself; one JSON line per file, errors with their codes, no store.

use std::process::Command;

use fleet_samples::docs as samples;
use serde_json::Value;

fn extract(
    dir: &std::path::Path,
    files: &[&str],
) -> (std::process::ExitStatus, Vec<Value>, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_doc-pipeline"))
        .arg("extract")
        .args(files.iter().map(|f| dir.join(f)))
        .env_remove("FLEET_BACKEND")
        .env_remove("AWS_REGION")
        .env_remove("AWS_ENDPOINT_URL")
        .env("FLEET_LOCAL_DB", dir.join("must-not-exist/db.sqlite"))
        .env("FLEET_LOG", "trace")
        .output()
        .unwrap();
    let stdout = String::from_utf8(out.stdout).unwrap();
    let lines = stdout
        .lines()
        .map(|l| serde_json::from_str(l).expect("each line is JSON"))
        .collect();
    (out.status, lines, String::from_utf8(out.stderr).unwrap())
}

#[tokio::test(flavor = "multi_thread")]
async fn one_json_line_per_file_with_text_entities_and_codes() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::write(
        d.join("referral.pdf"),
        fleet_docs_local::render::text_to_pdf(samples::REFERRAL.text),
    )
    .unwrap();
    let pdf = fleet_docs_local::render::text_to_pdf(samples::DISCHARGE.text);
    let png = fleet_docs_local::render::pdf_to_png_pages(&pdf, 300)
        .await
        .unwrap();
    std::fs::write(d.join("discharge scan.png"), &png[0]).unwrap();
    std::fs::write(d.join("note.txt"), samples::LAB_NOTE.text).unwrap();
    std::fs::write(d.join("letter.docx"), b"PK\x03\x04\x14\0").unwrap();
    std::fs::write(d.join("empty.pdf"), b"").unwrap();

    let files = [
        "referral.pdf",
        "discharge scan.png",
        "note.txt",
        "letter.docx",
        "empty.pdf",
        "missing.pdf",
    ];
    let (status, lines, stderr) = extract(d, &files);
    assert_eq!(
        status.code(),
        Some(1),
        "some files failed: exit 1; stderr {stderr}"
    );
    assert_eq!(lines.len(), files.len());
    for (line, file) in lines.iter().zip(files) {
        assert!(line["file"].as_str().unwrap().ends_with(file));
    }
    for (line, doc) in
        lines[..3]
            .iter()
            .zip([&samples::REFERRAL, &samples::DISCHARGE, &samples::LAB_NOTE])
    {
        assert_eq!(line["status"], "ok", "{line}");
        let text = line["text"].as_str().unwrap();
        assert!(text.contains("mg"), "text read");
        let entities = line["entities"].as_array().unwrap();
        for m in doc.medications {
            let e = entities
                .iter()
                .find(|e| {
                    e["category"] == "MEDICATION"
                        && e["text"].as_str().unwrap().eq_ignore_ascii_case(m)
                })
                .unwrap_or_else(|| panic!("{m} missing: {line}"));
            assert_eq!(e["type"], "GENERIC_NAME");
            let (b, en) = (
                e["begin_offset"].as_u64().unwrap() as usize,
                e["end_offset"].as_u64().unwrap() as usize,
            );
            assert_eq!(
                text.chars().skip(b).take(en - b).collect::<String>(),
                e["text"].as_str().unwrap()
            );
            assert!(e["traits"].is_array() && e["attributes"].is_array());
        }
    }
    assert_eq!(lines[0]["media_type"], "application/pdf");
    assert_eq!(lines[1]["media_type"], "image/png");
    assert_eq!(lines[1]["ocr_engine"], "tesseract");
    // The referral's strength and frequency are attributes of metformin.
    let metformin = lines[0]["entities"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["text"] == "metformin")
        .unwrap();
    let attrs: Vec<&str> = metformin["attributes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["type"].as_str().unwrap())
        .collect();
    assert!(attrs.contains(&"FREQUENCY"), "{attrs:?}");
    for (line, code) in lines[3..].iter().zip([
        "DOCUMENT_UNSUPPORTED_TYPE",
        "DOCUMENT_EMPTY",
        "DOCUMENT_NOT_FOUND",
    ]) {
        assert_eq!(line["status"], "error");
        assert_eq!(line["code"], code);
    }
    // It touched no store, and its log (stderr, at trace) carries no document text.
    assert!(!d.join("must-not-exist").exists());
    for secret in samples::secrets() {
        assert!(!stderr.contains(secret), "stderr carries document text");
    }
}

#[test]
fn all_files_fine_exits_zero() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("a.txt"), "Aspirin 81 mg daily.").unwrap();
    let (status, lines, _) = extract(dir.path(), &["a.txt"]);
    assert!(status.success());
    assert_eq!(lines[0]["status"], "ok");
    assert_eq!(lines[0]["entities"][0]["text"], "Aspirin");
}
