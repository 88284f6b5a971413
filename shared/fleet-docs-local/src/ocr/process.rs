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

/// Messages of poppler and Tesseract a detail may name. Their stderr also quotes the
/// document (poppler's `Unknown operator '...'`, font and object names, Tesseract's file
/// names), so nothing else of it is kept.
const KNOWN_MESSAGES: &[&str] = &[
    "Incorrect password",
    "May not be a PDF file",
    "Couldn't find trailer dictionary",
    "Couldn't read xref table",
    "Syntax Error",
    "Syntax Warning",
    "Command Line Error",
    "Permission Error",
    "Internal Error",
    "I/O Error",
    "Error opening",
    "Wrong page range",
    "Unsupported image type",
    "Image too large",
    "Error in pixRead",
    "Failed loading language",
    "Could not initialize tesseract",
];

/// A tool's stderr for an error detail or a log line (issue 16 item 4): the known messages it
/// holds (at most three) and its length, never its text.
pub(super) fn summarise(stderr: &[u8], _dir: &Path) -> String {
    if stderr.iter().all(u8::is_ascii_whitespace) {
        return "no message".into();
    }
    let text = String::from_utf8_lossy(stderr);
    let known: Vec<&str> = KNOWN_MESSAGES
        .iter()
        .copied()
        .filter(|m| text.contains(m))
        .take(3)
        .collect();
    let what = if known.is_empty() {
        "an unrecognised message".to_string()
    } else {
        known.join("; ")
    };
    format!("{what} ({} bytes of output)", stderr.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn item4_tool_output_is_reduced_to_known_messages_and_a_length() {
        let dir = Path::new("/tmp/fleet-ocr-abc");
        let poppler = "Syntax Error (1234): Unknown operator 'Brzezinski'\n\
                       Syntax Error: Couldn't find trailer dictionary\n\
                       Error opening /tmp/fleet-ocr-abc/Zbigniew 1961-03-04.pdf\n";
        let s = summarise(poppler.as_bytes(), dir);
        for token in ["Brzezinski", "Zbigniew", "1961", "fleet-ocr", "operator"] {
            assert!(
                !s.contains(token),
                "the detail quotes the tool's output ({token})"
            );
        }
        assert_eq!(
            s,
            format!(
                "Couldn't find trailer dictionary; Syntax Error; Error opening ({} bytes of output)",
                poppler.len()
            )
        );
        assert_eq!(
            summarise(b"Kowalski was here", dir),
            "an unrecognised message (17 bytes of output)"
        );
        assert_eq!(summarise(b"", dir), "no message");
        assert_eq!(summarise(b" \n", dir), "no message");
    }
}
