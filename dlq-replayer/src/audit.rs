//! The audit log: one JSON line per operation and phase, saying who did what to which queue and
//! which message ids; never a body, never an attribute value. The operator's `--attribute`
//! values and `--body-regex` can be patient data (an MRN, a name), so they are recorded only as
//! a keyed hash ([`AuditKey`]): the same value under the same key gives the same hash in every
//! run, and without the key nobody can test guesses against the log (a bare SHA-256 of an MRN
//! falls to a dictionary of all MRNs in seconds).

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use hmac::{Hmac, Mac};
use serde::Serialize;
use serde_json::Value;
use sha2::Sha256;

use crate::message::{format_ms, now_ms};

/// Fewest bytes an audit key may have.
pub const MIN_KEY_BYTES: usize = 32;

/// The key of the keyed hash (HMAC-SHA256) under which filter values are recorded, from
/// `FLEET_DLQ_AUDIT_KEY` or the file `FLEET_DLQ_AUDIT_KEY_FILE` names.
#[derive(Clone)]
pub struct AuditKey(Vec<u8>);

impl std::fmt::Debug for AuditKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "AuditKey({})", self.id())
    }
}

impl AuditKey {
    /// A key of at least [`MIN_KEY_BYTES`] bytes.
    pub fn new(key: impl Into<Vec<u8>>) -> Result<Self, String> {
        let key = key.into();
        if key.len() < MIN_KEY_BYTES {
            return Err(format!(
                "the audit key has {} bytes; it needs at least {MIN_KEY_BYTES} (e.g. `openssl rand \
                 -hex 32`)",
                key.len()
            ));
        }
        Ok(Self(key))
    }

    /// The key the configuration names: `value` (the variable) or the file at `file`, not both;
    /// `None` when neither is set. The file must be readable by its owner only.
    pub fn from_config(value: Option<String>, file: Option<&Path>) -> Result<Option<Self>, String> {
        use fleet_core::env::{DLQ_AUDIT_KEY, DLQ_AUDIT_KEY_FILE};
        match (value, file) {
            (Some(_), Some(_)) => Err(format!(
                "both {DLQ_AUDIT_KEY} and {DLQ_AUDIT_KEY_FILE} are set; set one"
            )),
            (Some(v), None) => Self::new(v.into_bytes())
                .map(Some)
                .map_err(|e| format!("{DLQ_AUDIT_KEY}: {e}")),
            (None, Some(path)) => {
                let shared = fleet_core::files::shared_mode(path)
                    .map_err(|e| format!("audit key file {}: {e}", path.display()))?;
                if let Some(mode) = shared {
                    return Err(format!(
                        "audit key file {} is readable by others (mode {mode:03o}); chmod 600 it",
                        path.display()
                    ));
                }
                let text = std::fs::read(path)
                    .map_err(|e| format!("audit key file {}: {e}", path.display()))?;
                let trimmed = text.trim_ascii();
                Self::new(trimmed.to_vec())
                    .map(Some)
                    .map_err(|e| format!("audit key file {}: {e}", path.display()))
            }
            (None, None) => Ok(None),
        }
    }

    /// HMAC-SHA256 of `value` under this key, separated by `domain` (what the value is), hex.
    pub fn hash(&self, domain: &str, value: &str) -> String {
        let mut mac =
            <Hmac<Sha256> as Mac>::new_from_slice(&self.0).expect("HMAC takes any key length");
        mac.update(b"dlq-replay/");
        mac.update(domain.as_bytes());
        mac.update(&[0]);
        mac.update(value.as_bytes());
        hex::encode(mac.finalize().into_bytes())
    }

    /// A short name of the key for the audit record (which key the hashes are under), itself a
    /// keyed hash, so it reveals nothing of the key.
    pub fn id(&self) -> String {
        self.hash("key-id", "")[..16].to_string()
    }
}

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
                // A new log and its directories are the owner's alone (0600/0700).
                if let Some(dir) = p.parent().filter(|d| !d.as_os_str().is_empty()) {
                    fleet_core::files::create_dir_all(dir)?;
                }
                Box::new(fleet_core::files::open_append(p)?)
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

    #[test]
    fn the_key_is_long_enough_and_its_file_private() {
        assert!(AuditKey::new(vec![7; 31]).is_err());
        let key = AuditKey::new(vec![7; 32]).unwrap();
        assert_eq!(
            key.hash("attribute", "mrn=1"),
            key.hash("attribute", "mrn=1")
        );
        assert_ne!(
            key.hash("attribute", "mrn=1"),
            key.hash("body-regex", "mrn=1")
        );
        assert_ne!(
            key.hash("attribute", "mrn=1"),
            AuditKey::new(vec![8; 32])
                .unwrap()
                .hash("attribute", "mrn=1")
        );
        assert!(!format!("{key:?}").contains("0707"));
        assert!(AuditKey::from_config(None, None).unwrap().is_none());
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("key");
        std::fs::write(&file, format!("{}\n", "k".repeat(40))).unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o640)).unwrap();
            let e = AuditKey::from_config(None, Some(&file)).unwrap_err();
            assert!(e.contains("chmod 600"), "{e}");
            std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600)).unwrap();
        }
        let from_file = AuditKey::from_config(None, Some(&file)).unwrap().unwrap();
        let from_var = AuditKey::from_config(Some("k".repeat(40)), None)
            .unwrap()
            .unwrap();
        assert_eq!(from_file.hash("a", "v"), from_var.hash("a", "v"));
        assert!(AuditKey::from_config(Some("k".repeat(40)), Some(&file)).is_err());
        assert!(AuditKey::from_config(Some("short".into()), None).is_err());
    }
}
