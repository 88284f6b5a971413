//! Running one tool: no stdin, output captured, `OMP_THREAD_LIMIT=1`, in a process group of
//! its own that is killed (SIGKILL, every process in it) when its wall-clock timeout expires
//! or the run is abandoned; a missing tool or a timeout is retryable. Its stderr, bounded and
//! without temporary paths, is what error details quote.

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use fleet_docs::{DocError, OCR_TIMEOUT};
use rustix::process::{Pid, Signal, kill_process_group};

/// How a tool run ended when it ran at all.
pub(super) struct Ran {
    pub(super) success: bool,
    pub(super) stdout: Vec<u8>,
    pub(super) stderr: Vec<u8>,
}

/// Kills a tool's process group when dropped: on its timeout, when the document's other
/// pages fail and the run is abandoned, and after a normal exit (so nothing it left running
/// in the background outlives it). The group is the tool's own (`process_group(0)`), so only
/// the tool and what it started are signalled.
struct GroupKiller(Option<Pid>);

impl Drop for GroupKiller {
    fn drop(&mut self) {
        if let Some(pgid) = self.0 {
            // ESRCH: the group is already gone.
            let _ = kill_process_group(pgid, Signal::KILL);
        }
    }
}

/// Runs `program` with `args` in `dir`, no stdin, output captured, its process group killed
/// after `timeout`.
pub(super) async fn run<I, S>(
    program: &Path,
    args: I,
    timeout: Duration,
    dir: &Path,
) -> Result<Ran, DocError>
where
    I: IntoIterator<Item = S>,
    S: AsRef<std::ffi::OsStr>,
{
    let name = program
        .file_name()
        .map_or_else(|| "tool".into(), |n| n.to_string_lossy().into_owned());
    let child = tokio::process::Command::new(program)
        .args(args)
        .current_dir(dir)
        .env("OMP_THREAD_LIMIT", "1")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| {
            let package = if name.contains("tesseract") {
                "tesseract-ocr"
            } else {
                "poppler-utils"
            };
            DocError::retryable(
                "ocr_unavailable",
                format!(
                    "cannot run {name} ({:?}); is {package} installed?",
                    e.kind()
                ),
            )
        })?;
    let _group = GroupKiller(
        child
            .id()
            .and_then(|id| i32::try_from(id).ok())
            .and_then(Pid::from_raw),
    );
    match tokio::time::timeout(timeout, child.wait_with_output()).await {
        // Dropping the wait kills the child (kill_on_drop) and `_group` its whole group.
        Err(_) => Err(DocError::retryable(
            OCR_TIMEOUT,
            format!(
                "{name} ran longer than its {}s timeout and was killed",
                timeout.as_secs_f32()
            ),
        )),
        Ok(Err(e)) => Err(DocError::retryable(
            "ocr_unavailable",
            format!("waiting for {name}: {:?}", e.kind()),
        )),
        Ok(Ok(out)) => Ok(Ran {
            success: out.status.success(),
            stdout: out.stdout,
            stderr: out.stderr,
        }),
    }
}

pub(super) fn detail_of(e: &DocError) -> String {
    match e {
        DocError::Permanent { detail, .. } | DocError::Retryable { detail, .. } => detail.clone(),
    }
}

pub(super) fn io_error(what: &str, e: &std::io::Error) -> DocError {
    DocError::retryable("transient", format!("{what}: {:?}", e.kind()))
}

/// A tool's stderr for an error detail: temporary paths removed, whitespace collapsed, at
/// most 200 characters.
pub(super) fn summarise(stderr: &[u8], dir: &Path) -> String {
    let text = String::from_utf8_lossy(stderr).replace(&*dir.to_string_lossy(), "<tmp>");
    let text = text.split_whitespace().collect::<Vec<_>>().join(" ");
    let mut out: String = text.chars().take(200).collect();
    if out.is_empty() {
        out.push_str("no message");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stderr_is_bounded_and_loses_temporary_paths() {
        let dir = Path::new("/tmp/fleet-ocr-abc");
        let long = format!(
            "Error in /tmp/fleet-ocr-abc/page-1.png:\n {}",
            "x".repeat(500)
        );
        let s = summarise(long.as_bytes(), dir);
        assert!(s.starts_with("Error in <tmp>/page-1.png: xxx"), "{s}");
        assert_eq!(s.chars().count(), 200);
        assert_eq!(summarise(b"", dir), "no message");
    }
}
