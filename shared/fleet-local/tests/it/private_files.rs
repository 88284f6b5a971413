//! Issue 16 item 9: the local backend's files are the owner's alone whatever the umask (the
//! database and the -wal/-shm files SQLite derives from it, every directory and file of the
//! object store, the outbox), and a database file group or others can reach is refused unless
//! the operator allows it.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use fleet_core::ports::{Destination, Notification, OutgoingMessage};
use fleet_core::{Backend, ErrorKind};
use fleet_local::{LocalBackend, LocalOptions, QueueSpec};
use rustix::fs::Mode;

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .permissions()
        .mode()
        & 0o777
}

fn with_suffix(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(suffix);
    PathBuf::from(name)
}

/// Every directory and file under `root`, `root` included.
fn walk(root: &Path, out: &mut Vec<PathBuf>) {
    out.push(root.to_path_buf());
    if root.is_dir() {
        for entry in std::fs::read_dir(root).unwrap() {
            walk(&entry.unwrap().path(), out);
        }
    }
}

#[tokio::test]
async fn item9_local_files_are_private_under_a_permissive_umask() {
    // nextest runs each test in its own process, so the umask touches this test alone.
    rustix::process::umask(Mode::empty());
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("state/fleet.sqlite");
    let objects = dir.path().join("store/objects");
    let backend = LocalBackend::open(&db, &objects).unwrap();

    backend.create_queue("q", QueueSpec::default()).unwrap();
    let queue = backend.queue("q").await.unwrap();
    queue
        .send(OutgoingMessage {
            body: "a synthetic message".into(),
            ..OutgoingMessage::default()
        })
        .await
        .unwrap();
    backend
        .objects("uploads")
        .put("a/b/letter.pdf", b"%PDF letter".to_vec(), "application/pdf")
        .await
        .unwrap();
    let topic = backend.create_topic("alerts").unwrap();
    backend
        .notifier()
        .publish(
            &Destination::Topic(topic),
            &Notification {
                subject: Some("admitted".into()),
                body: "a patient was admitted".into(),
                ..Notification::default()
            },
        )
        .await
        .unwrap();

    // The database is open, so its WAL and shared-memory files exist now.
    let mut expected = vec![
        (db.clone(), 0o600),
        (with_suffix(&db, "-wal"), 0o600),
        (with_suffix(&db, "-shm"), 0o600),
        (db.parent().unwrap().to_path_buf(), 0o700),
        (backend.outbox_path(), 0o600),
    ];
    let mut store = Vec::new();
    walk(dir.path().join("store").as_path(), &mut store);
    assert!(store.len() > 6, "{store:?}");
    expected.extend(
        store
            .into_iter()
            .map(|p| if p.is_dir() { (p, 0o700) } else { (p, 0o600) }),
    );
    let wrong: Vec<String> = expected
        .iter()
        .filter(|(path, want)| mode(path) != *want)
        .map(|(path, want)| format!("{} is {:04o}, not {want:04o}", path.display(), mode(path)))
        .collect();
    assert!(wrong.is_empty(), "{wrong:#?}");
}

#[test]
fn item9_a_database_group_or_others_can_reach_is_refused_unless_allowed() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("fleet.sqlite");
    let objects = dir.path().join("objects");
    drop(LocalBackend::open(&db, &objects).unwrap());

    let set = |path: &Path, m: u32| {
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(m)).unwrap()
    };
    for (file, m) in [(db.clone(), 0o644), (db.clone(), 0o620)] {
        set(&file, m);
        let err = LocalBackend::open(&db, &objects).expect_err("a shared database file");
        assert_eq!(err.kind, ErrorKind::AccessDenied, "{err}");
        let text = err.to_string();
        assert!(
            text.contains(&format!("{m:04o}")) && text.contains("FLEET_ALLOW_SHARED_DB"),
            "{text}"
        );
        set(&file, 0o600);
    }

    // A -wal file left readable by others counts as the database.
    let wal = with_suffix(&db, "-wal");
    std::fs::write(&wal, b"").unwrap();
    set(&wal, 0o604);
    assert!(LocalBackend::open(&db, &objects).is_err());

    // The operator's override opens it, modes untouched.
    set(&db, 0o640);
    let allowed = LocalOptions {
        allow_shared_db: true,
    };
    drop(LocalBackend::open_with(&db, &objects, allowed).expect("allowed"));
    assert_eq!(mode(&db), 0o640);
}
