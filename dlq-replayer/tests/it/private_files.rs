//! Issue 16 item 9: the audit log and the archives dlq-replay writes are the owner's alone
//! (files 0600, the directories it creates 0700) whatever the umask.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use dlq_replayer::archive::{self, ArchiveSpec};
use dlq_replayer::audit::Audit;
use rustix::fs::Mode;

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .permissions()
        .mode()
        & 0o777
}

#[test]
fn item9_audit_log_and_archives_are_private_under_a_permissive_umask() {
    // nextest runs each test in its own process, so the umask touches this test alone.
    rustix::process::umask(Mode::empty());
    let dir = tempfile::tempdir().unwrap();

    let log = dir.path().join("logs/audit/dlq-replay.jsonl");
    let audit = Audit::open(Some(&log), "local:tester".into(), "local", "run-1".into()).unwrap();
    audit
        .record(
            "replay",
            "started",
            "orders-dlq",
            serde_json::json!({"count": 1}),
        )
        .unwrap();
    drop(audit);

    let recipient = age::x25519::Identity::generate().to_public().to_string();
    let spec = ArchiveSpec::new(dir.path().join("archives/dlq"), &recipient).unwrap();
    let archive = archive::write(&spec, "run-1", 1, &[]).unwrap();

    let expected = [
        (log.clone(), 0o600),
        (dir.path().join("logs"), 0o700),
        (dir.path().join("logs/audit"), 0o700),
        (archive.clone(), 0o600),
        (dir.path().join("archives"), 0o700),
        (dir.path().join("archives/dlq"), 0o700),
    ];
    let wrong: Vec<String> = expected
        .iter()
        .filter(|(path, want)| mode(path) != *want)
        .map(|(path, want)| format!("{} is {:04o}, not {want:04o}", path.display(), mode(path)))
        .collect();
    assert!(wrong.is_empty(), "{wrong:#?}");
}
