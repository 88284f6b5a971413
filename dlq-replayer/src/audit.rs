//! The audit log: one JSON line per operation and phase, saying who did what to which queue and
//! which message ids; never a body, never an attribute value other than the operator's own
//! filter arguments (and the body pattern only as a hash).

use std::io::Write;
use std::path::PathBuf;
use std::sync::Mutex;

use serde::Serialize;
use serde_json::Value;

use crate::message::{format_ms, now_ms};

/// Where records go.
pub struct Audit {
    sink: Mutex<Box<dyn Write + Send>>,
    pub actor: String,
    pub backend: &'static str,
    pub run_id: String,
}

impl std::fmt::Debug for Audit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Audit")
            .field("actor", &self.actor)
            .field("run_id", &self.run_id)
            .finish_non_exhaustive()
    }
}

/// One record.
#[derive(Debug, Serialize)]
pub struct Record<'a> {
    pub time: String,
    pub run_id: &'a str,
    pub actor: &'a str,
    pub backend: &'a str,
    pub operation: &'a str,
    /// "started" (before anything changes) or "finished".
    pub phase: &'a str,
    pub queue: &'a str,
    /// Operation-specific: counts, destinations, filters, message ids.
    #[serde(flatten)]
    pub details: Value,
}

impl Audit {
    /// Append to `path`, or write to standard error when it is `None` or `-`.
    pub fn open(
        path: Option<&PathBuf>,
        actor: String,
        backend: &'static str,
        run_id: String,
    ) -> std::io::Result<Self> {
        let sink: Box<dyn Write + Send> = match path {
            Some(p) if p.as_os_str() != "-" => {
                if let Some(dir) = p.parent().filter(|d| !d.as_os_str().is_empty()) {
                    std::fs::create_dir_all(dir)?;
                }
                Box::new(
                    std::fs::OpenOptions::new()
                        .create(true)
                        .append(true)
                        .open(p)?,
                )
            }
            _ => Box::new(std::io::stderr()),
        };
        Ok(Self {
            sink: Mutex::new(sink),
            actor,
            backend,
            run_id,
        })
    }

    /// Write one record; an audit record that cannot be written fails the command.
    pub fn record(
        &self,
        operation: &str,
        phase: &str,
        queue: &str,
        details: Value,
    ) -> std::io::Result<()> {
        let record = Record {
            time: format_ms(now_ms()),
            run_id: &self.run_id,
            actor: &self.actor,
            backend: self.backend,
            operation,
            phase,
            queue,
            details,
        };
        let mut line = serde_json::to_vec(&record)?;
        line.push(b'\n');
        let mut sink = self.sink.lock().unwrap_or_else(|e| e.into_inner());
        sink.write_all(&line)?;
        sink.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn appends_one_json_line_per_record() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/audit.jsonl");
        for n in 0..2 {
            let audit =
                Audit::open(Some(&path), "local:alice".into(), "local", format!("r{n}")).unwrap();
            audit
                .record("replay", "finished", "dlq", serde_json::json!({"moved": n}))
                .unwrap();
        }
        let text = std::fs::read_to_string(&path).unwrap();
        let lines: Vec<Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(lines.len(), 2);
        assert_eq!(lines[1]["run_id"], "r1");
        assert_eq!(lines[1]["actor"], "local:alice");
        assert_eq!(lines[1]["operation"], "replay");
        assert_eq!(lines[1]["moved"], 1);
        assert!(lines[0]["time"].as_str().unwrap().ends_with('Z'));
    }
}
