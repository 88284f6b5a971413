//! Issue 16 item 9 through the real binary: a worker refuses to start on a local database file
//! that group or others can read, unless the operator sets `FLEET_ALLOW_SHARED_DB`.

use std::os::unix::fs::PermissionsExt;
use std::time::Duration;

use fleet_testkit::workers::Worker;

fn start(dir: &std::path::Path, extra: &[(&str, String)]) -> (Option<i32>, String) {
    let mut envs: Vec<(&str, String)> = vec![
        ("FLEET_BACKEND", "local".into()),
        (
            "FLEET_LOCAL_DB",
            dir.join("fleet.sqlite").display().to_string(),
        ),
        (
            "FLEET_LOCAL_OBJECTS",
            dir.join("objects").display().to_string(),
        ),
        ("FLEET_ALLOW_UNENCRYPTED", "1".into()),
        ("FLEET_HL7_QUEUE", "no-such-queue".into()),
        ("FLEET_HL7_TABLE", "hl7-records".into()),
        ("FLEET_EVENT_BUS", "fleet".into()),
        ("FLEET_LOG_FORMAT", "text".into()),
    ];
    envs.extend(extra.iter().cloned());
    let log = dir.join(format!("worker-{}.log", extra.len()));
    let mut worker = Worker::start("hl7-ingest", &[], &envs, log);
    let status = worker.wait_exit(Duration::from_secs(60));
    let log = worker.log_text();
    // The test kit reads the worker's stores when it drops the worker: private again first.
    let db = dir.join("fleet.sqlite");
    let before = std::fs::metadata(&db).unwrap().permissions();
    std::fs::set_permissions(&db, std::fs::Permissions::from_mode(0o600)).unwrap();
    drop(worker);
    std::fs::set_permissions(&db, before).unwrap();
    (status.code(), log)
}

#[test]
fn item9_a_worker_refuses_a_database_others_can_read_unless_allowed() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("fleet.sqlite");
    drop(fleet_testkit::local_backend(dir.path()));
    std::fs::set_permissions(&db, std::fs::Permissions::from_mode(0o644)).unwrap();

    let (code, log) = start(dir.path(), &[]);
    assert_eq!(code, Some(1), "{log}");
    assert!(
        log.contains("refusing to open the local database")
            && log.contains("0644")
            && log.contains("FLEET_ALLOW_SHARED_DB"),
        "{log}"
    );

    // Allowed: the database opens (the worker then stops on its missing queue instead).
    let (code, log) = start(dir.path(), &[("FLEET_ALLOW_SHARED_DB", "1".into())]);
    assert_eq!(code, Some(1), "{log}");
    assert!(!log.contains("refusing to open"), "{log}");
    assert!(log.contains("cannot open queue"), "{log}");
}
