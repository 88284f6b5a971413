//! Running one tool: no stdin, output captured, `OMP_THREAD_LIMIT=1`, killed after a timeout;
//! a missing tool or a timeout is retryable. Its stderr, bounded and without temporary paths,
//! is what error details quote.

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use fleet_docs::DocError;

/// How a tool run ended when it ran at all.
pub(super) struct Ran {
    pub(super) success: bool,
    pub(super) stdout: Vec<u8>,
    pub(super) stderr: Vec<u8>,
}

/// Runs `program` with `args` in `dir`, no stdin, output captured, killed after `timeout`.
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
    match tokio::time::timeout(timeout, child.wait_with_output()).await {
        Err(_) => Err(DocError::retryable(
            "timeout",
            format!("{name} took longer than {}s", timeout.as_secs()),
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
