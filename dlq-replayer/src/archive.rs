//! The encrypted archive of moved or purged messages.
//!
//! Each round of a replay or purge writes one file, `<dir>/dlq-replay-<run id>-<round>.jsonl.age`,
//! before any of its messages is deleted: JSON lines (one message each: ids, body, attributes,
//! group) encrypted with [age](https://age-encryption.org) to an X25519 recipient. The
//! operator's machine holds only the public key; whoever holds the identity decrypts with
//! `age -d -i key.txt FILE` (Debian package `age`) or [`read`]. The file is written to a
//! temporary name, synced and renamed, so a file that exists is complete.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use fleet_core::Attributes;
use serde::{Deserialize, Serialize};

use crate::message::{Dead, format_ms};

/// Where and to whom archives are written.
#[derive(Clone)]
pub struct ArchiveSpec {
    pub dir: PathBuf,
    pub recipient: age::x25519::Recipient,
}

impl std::fmt::Debug for ArchiveSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ArchiveSpec")
            .field("dir", &self.dir)
            .field("recipient", &self.recipient.to_string())
            .finish()
    }
}

impl ArchiveSpec {
    pub fn new(dir: PathBuf, recipient: &str) -> Result<Self, String> {
        let recipient = age::x25519::Recipient::from_str(recipient.trim()).map_err(|e| {
            format!("the archive recipient is not an age X25519 public key (age1...): {e}")
        })?;
        Ok(Self { dir, recipient })
    }
}

/// One archived message.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ArchivedMessage {
    pub queue: String,
    pub message_id: String,
    pub body: String,
    pub attributes: Attributes,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group_id: Option<String>,
    /// When it was sent to the DLQ (RFC 3339).
    pub sent: String,
    pub archived: String,
}

impl ArchivedMessage {
    pub fn of(queue: &str, d: &Dead, now: &str) -> Self {
        Self {
            queue: queue.to_string(),
            message_id: d.msg.message_id.clone(),
            body: d.msg.body.clone(),
            attributes: d.msg.attributes.clone(),
            group_id: d.msg.group_id.clone(),
            sent: format_ms(d.msg.sent_timestamp_ms),
            archived: now.to_string(),
        }
    }
}

/// Write `messages` to a new archive file; returns its path.
pub fn write(
    spec: &ArchiveSpec,
    run_id: &str,
    round: usize,
    messages: &[ArchivedMessage],
) -> std::io::Result<PathBuf> {
    // Directory 0700, file 0600: the archive is encrypted, but its names and sizes are the
    // operator's business alone too.
    fleet_core::files::create_dir_all(&spec.dir)?;
    let name = format!("dlq-replay-{run_id}-{round:03}.jsonl.age");
    let path = spec.dir.join(&name);
    let tmp = spec.dir.join(format!(".{name}.tmp"));
    {
        let file = fleet_core::files::create(&tmp)?;
        let encryptor = age::Encryptor::with_recipients(std::iter::once(
            &spec.recipient as &dyn age::Recipient,
        ))
        .map_err(std::io::Error::other)?;
        let mut writer = encryptor.wrap_output(std::io::BufWriter::new(file))?;
        for m in messages {
            serde_json::to_writer(&mut writer, m)?;
            writer.write_all(b"\n")?;
        }
        let file = writer.finish()?.into_inner().map_err(|e| e.into_error())?;
        file.sync_all()?;
    }
    std::fs::rename(&tmp, &path)?;
    if let Ok(dir) = std::fs::File::open(&spec.dir) {
        // Make the rename durable too; not every filesystem supports syncing a directory.
        let _ = dir.sync_all();
    }
    Ok(path)
}

/// Decrypt and read an archive file.
pub fn read(path: &Path, identity: &age::x25519::Identity) -> anyhow::Result<Vec<ArchivedMessage>> {
    use std::io::BufRead;
    let file = std::io::BufReader::new(std::fs::File::open(path)?);
    let decryptor = age::Decryptor::new_buffered(file)?;
    let reader = decryptor.decrypt(std::iter::once(identity as &dyn age::Identity))?;
    let mut out = Vec::new();
    for line in std::io::BufReader::new(reader).lines() {
        out.push(serde_json::from_str(&line?)?);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use fleet_core::AttributeValue;

    #[test]
    fn round_trips_and_is_not_plain_text() {
        let dir = tempfile::tempdir().unwrap();
        let identity = age::x25519::Identity::generate();
        let spec =
            ArchiveSpec::new(dir.path().to_path_buf(), &identity.to_public().to_string()).unwrap();
        let m = ArchivedMessage {
            queue: "dlq".into(),
            message_id: "m-1".into(),
            body: "MSH|^~\\&|SECRET-BODY".into(),
            attributes: [("a".to_string(), AttributeValue::string("v"))].into(),
            group_id: Some("g".into()),
            sent: "2026-01-01T00:00:00Z".into(),
            archived: "2026-01-02T00:00:00Z".into(),
        };
        let path = write(&spec, "run", 1, std::slice::from_ref(&m)).unwrap();
        assert_eq!(
            path.file_name().unwrap().to_str().unwrap(),
            "dlq-replay-run-001.jsonl.age"
        );
        let raw = std::fs::read(&path).unwrap();
        assert!(!String::from_utf8_lossy(&raw).contains("SECRET-BODY"));
        assert_eq!(read(&path, &identity).unwrap(), vec![m]);
        let other = age::x25519::Identity::generate();
        assert!(read(&path, &other).is_err());
        // Nothing but the finished file is left behind.
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[test]
    fn refuses_a_recipient_that_is_not_an_age_key() {
        let err = ArchiveSpec::new(PathBuf::from("x"), "not-a-key").unwrap_err();
        assert!(err.contains("age1"), "{err}");
    }
}
