//! The private temporary directory of one document: `fleet-ocr-<pid>.<nonce>-XXXXXX` under the
//! configured root, created with mode 0700 (the mode is asked for at creation, so a permissive
//! umask cannot widen it), the document in it written 0600. The name says which process owns
//! it; at start, [`remove_stale`] removes those whose process is gone (a worker killed while
//! reading a document leaves its page images behind).

use std::io;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;
use std::sync::OnceLock;

use fleet_core::files::{DIR_MODE, FILE_MODE};
use rustix::process::{Pid, geteuid, test_kill_process};

/// Every document directory's name starts with this.
pub const PREFIX: &str = "fleet-ocr-";

/// This process's tag, `<pid>.<nonce>`: the nonce tells this process from an earlier one
/// that had the same pid (a restarted container's worker is often pid 1 again).
fn owner() -> &'static (u32, String) {
    static OWNER: OnceLock<(u32, String)> = OnceLock::new();
    OWNER.get_or_init(|| {
        let pid = std::process::id();
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64);
        (pid, format!("{pid}.{nanos:x}"))
    })
}

/// A new private directory for one document under `root`.
pub(super) fn create(root: &Path) -> io::Result<tempfile::TempDir> {
    tempfile::Builder::new()
        .prefix(&format!("{PREFIX}{}-", owner().1))
        .permissions(std::fs::Permissions::from_mode(DIR_MODE))
        .tempdir_in(root)
}

/// Writes the document into its directory, readable by the owner only.
pub(super) async fn write_private(path: &Path, bytes: &[u8]) -> io::Result<()> {
    use tokio::io::AsyncWriteExt;
    let mut file = tokio::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(FILE_MODE)
        .open(path)
        .await?;
    file.write_all(bytes).await?;
    file.flush().await
}

/// Whether a directory named `name` was left by a process that is gone: another pid that no
/// longer runs, or this pid with another nonce (an earlier process). Names of another form
/// are not ours to judge.
fn is_stale(name: &str) -> bool {
    let Some(rest) = name.strip_prefix(PREFIX) else {
        return false;
    };
    let Some((tag, _random)) = rest.rsplit_once('-') else {
        return false;
    };
    let Some((pid, _nonce)) = tag.split_once('.') else {
        return false;
    };
    let Ok(pid) = pid.parse::<u32>() else {
        return false;
    };
    let (own_pid, own_tag) = owner();
    if pid == *own_pid {
        return tag != own_tag;
    }
    match i32::try_from(pid).ok().and_then(Pid::from_raw) {
        // ESRCH: no such process. EPERM means it runs (as another user).
        Some(pid) => test_kill_process(pid) == Err(rustix::io::Errno::SRCH),
        None => false,
    }
}

/// Removes, under `root`, the document directories of processes that are gone (only
/// directories, not symlinks, owned by this user). Returns how many it removed.
///
/// Assumes `root` is not shared with workers in another pid namespace (their pids would look
/// dead from here): each container has its own temporary directory.
pub fn remove_stale(root: &Path) -> io::Result<usize> {
    let uid = geteuid().as_raw();
    let mut removed = 0;
    for entry in std::fs::read_dir(root)? {
        let Ok(entry) = entry else { continue };
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        if !is_stale(name) {
            continue;
        }
        let Ok(meta) = std::fs::symlink_metadata(entry.path()) else {
            continue;
        };
        if !meta.is_dir() || meta.uid() != uid {
            continue;
        }
        match std::fs::remove_dir_all(entry.path()) {
            Ok(()) => removed += 1,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => {
                tracing::warn!(error = %e.kind(), "a stale OCR directory could not be removed");
            }
        }
    }
    Ok(removed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_names_of_gone_processes_are_stale() {
        let (pid, tag) = owner();
        assert!(!is_stale(&format!("{PREFIX}{tag}-abc123")));
        assert!(is_stale(&format!("{PREFIX}{pid}.0-abc123")));
        // pid 1 always runs.
        assert!(!is_stale(&format!("{PREFIX}1.5-abc123")));
        // Names of another form: not ours.
        assert!(!is_stale(&format!("{PREFIX}abc123")));
        assert!(!is_stale("other-1.2-abc"));
        assert!(!is_stale(&format!("{PREFIX}x.2-abc")));
    }
}
