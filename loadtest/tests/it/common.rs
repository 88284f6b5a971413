//! Running the real `loadtest` binary against the real `hl7-ingest` (and `mllp-gateway`)
//! binaries from a test.

use std::path::{Path, PathBuf};
use std::process::Command;

/// The worker binary in this profile's target directory, built first if it is missing
/// (`scripts/test` builds every binary anyway; `cargo nextest run -p loadtest` alone does not).
pub fn worker_bin() -> PathBuf {
    fleet_bin("hl7-ingest")
}

/// The gateway binary, for `[mllp]` scenarios; built like the worker's.
pub fn gateway_bin() -> PathBuf {
    fleet_bin("mllp-gateway")
}

fn fleet_bin(name: &str) -> PathBuf {
    let loadtest = PathBuf::from(env!("CARGO_BIN_EXE_loadtest"));
    let bin = loadtest.parent().unwrap().join(name);
    if !bin.is_file() {
        let release = loadtest
            .parent()
            .and_then(Path::file_name)
            .is_some_and(|n| n == "release");
        let mut cmd = Command::new(
            fleet_core::env::get(fleet_core::env::CARGO).unwrap_or_else(|| "cargo".into()),
        );
        cmd.args(["build", "-p", "fleet", "--bin", name]);
        if release {
            cmd.arg("--release");
        }
        assert!(cmd.status().unwrap().success(), "building {name}");
    }
    assert!(bin.is_file(), "{} missing", bin.display());
    bin
}

/// What one run left: its stdout table and its report.
pub struct Run {
    pub stdout: String,
    pub report: serde_json::Value,
    pub report_text: String,
    _out: tempfile::TempDir,
}

impl Run {
    /// The run's output directory (report, chart, worker logs).
    pub fn dir(&self) -> &Path {
        self._out.path()
    }
}

/// `loadtest run scenarios/<scenario> <args>` with the worker next to it; asserts it exited 0
/// (every message accounted for, every check of the report held).
pub fn run(scenario: &str, args: &[&str]) -> Run {
    let out = tempfile::tempdir().unwrap();
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("scenarios")
        .join(scenario);
    let run = Command::new(env!("CARGO_BIN_EXE_loadtest"))
        .arg("run")
        .arg(&path)
        .args(args)
        .arg("--out")
        .arg(out.path())
        .arg("--worker-bin")
        .arg(worker_bin())
        .arg("--gateway-bin")
        .arg(gateway_bin())
        .env_remove("AWS_ENDPOINT_URL")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&run.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(
        run.status.success(),
        "loadtest {scenario} failed ({}):\n{stdout}\n{stderr}",
        run.status
    );
    let report_text = std::fs::read_to_string(out.path().join("report.json")).unwrap();
    Run {
        stdout,
        report: serde_json::from_str(&report_text).unwrap(),
        report_text,
        _out: out,
    }
}
