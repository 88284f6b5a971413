//! An S3-like bucket in a directory.
//!
//! Layout under the objects directory: `data/BUCKET/KEY` holds the bytes, `meta/BUCKET/KEY.json`
//! the content type and etag, `tmp/` the files being written (renamed into place, so a reader
//! never sees half an object). Keys whose `/`-separated parts are empty, `.` or `..`, or that
//! contain a backslash or NUL, are refused: they could escape the directory or alias another
//! key on disk. A key that is a "directory" of another key (`a` and `a/b`) cannot coexist
//! here though S3 allows it; such a put fails.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use async_trait::async_trait;
use fleet_core::ports::{LimitedGet, ObjectMeta, ObjectStore};
use fleet_core::requests::count;
use fleet_core::{ErrorKind, PortError};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

#[derive(Debug, Serialize, Deserialize)]
struct Sidecar {
    content_type: Option<String>,
    etag: String,
}

/// A bucket port bound to one bucket name.
pub(crate) struct LocalBucket {
    root: PathBuf,
    bucket: String,
}

fn check_part(part: &str) -> bool {
    !part.is_empty() && part != "." && part != ".." && !part.contains(['\\', '\0'])
}

fn io_err(op: &'static str, what: &str, e: &std::io::Error) -> PortError {
    let kind = match e.kind() {
        std::io::ErrorKind::PermissionDenied => ErrorKind::AccessDenied,
        std::io::ErrorKind::NotADirectory | std::io::ErrorKind::IsADirectory => ErrorKind::Invalid,
        _ => ErrorKind::Other,
    };
    // The io error names the kind only; paths (which contain keys) stay out of the message.
    PortError::new(kind, op, format!("{what}: {}", e.kind()))
}

fn etag_of(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

impl LocalBucket {
    pub(crate) fn new(root: PathBuf, bucket: String) -> Self {
        Self { root, bucket }
    }

    /// (data path, sidecar path) for a key, or Invalid for an unsafe key.
    fn paths(&self, key: &str, op: &'static str) -> Result<(PathBuf, PathBuf), PortError> {
        if !check_part(&self.bucket) || self.bucket.contains('/') {
            return Err(PortError::invalid(
                op,
                "bucket name is not usable as a directory name",
            ));
        }
        if key.is_empty()
            || key.len() > 1024
            || key.starts_with('/')
            || !key.split('/').all(check_part)
        {
            return Err(PortError::invalid(
                op,
                "object key must be relative, without empty, '.' or '..' parts, backslashes or NUL",
            ));
        }
        let data = self.root.join("data").join(&self.bucket).join(key);
        let meta = self
            .root
            .join("meta")
            .join(&self.bucket)
            .join(format!("{key}.json"));
        Ok((data, meta))
    }

    fn read_meta(
        meta_path: &Path,
        data_len: u64,
        bytes: Option<&[u8]>,
        op: &'static str,
    ) -> Result<ObjectMeta, PortError> {
        let sidecar: Option<Sidecar> = match std::fs::read(meta_path) {
            Ok(b) => serde_json::from_slice(&b).ok(),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(e) => return Err(io_err(op, "reading object metadata", &e)),
        };
        let (content_type, stored_etag) = match sidecar {
            Some(s) => (s.content_type, Some(s.etag)),
            None => (None, None),
        };
        // With the bytes at hand the etag is computed, so it always matches what was read even
        // while another process is replacing the object.
        let etag = bytes.map(etag_of).or(stored_etag);
        Ok(ObjectMeta {
            size: data_len,
            content_type,
            etag,
            version_id: None,
        })
    }

    fn get_blocking(&self, key: &str) -> Result<Option<(Vec<u8>, ObjectMeta)>, PortError> {
        const OP: &str = "s3.GetObject";
        let (data, meta) = self.paths(key, OP)?;
        let bytes = match std::fs::read(&data) {
            Ok(b) => b,
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::NotFound | std::io::ErrorKind::NotADirectory
                ) =>
            {
                return Ok(None);
            }
            Err(e) if e.kind() == std::io::ErrorKind::IsADirectory => return Ok(None),
            Err(e) => return Err(io_err(OP, "reading object", &e)),
        };
        let m = Self::read_meta(&meta, bytes.len() as u64, Some(&bytes), OP)?;
        Ok(Some((bytes, m)))
    }

    /// At most `max_bytes + 1` bytes are read: the file's length is checked first, and the
    /// read is bounded in case the object is replaced meanwhile.
    fn get_limited_blocking(
        &self,
        key: &str,
        max_bytes: u64,
    ) -> Result<Option<LimitedGet>, PortError> {
        const OP: &str = "s3.GetObject";
        let (data, meta) = self.paths(key, OP)?;
        let file = match std::fs::File::open(&data) {
            Ok(f) => f,
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::NotFound | std::io::ErrorKind::NotADirectory
                ) =>
            {
                return Ok(None);
            }
            Err(e) => return Err(io_err(OP, "reading object", &e)),
        };
        let md = file
            .metadata()
            .map_err(|e| io_err(OP, "reading object", &e))?;
        if !md.is_file() {
            return Ok(None);
        }
        if md.len() > max_bytes {
            return Ok(Some(LimitedGet::TooLarge));
        }
        let mut bytes = Vec::new();
        file.take(max_bytes.saturating_add(1))
            .read_to_end(&mut bytes)
            .map_err(|e| io_err(OP, "reading object", &e))?;
        if bytes.len() as u64 > max_bytes {
            return Ok(Some(LimitedGet::TooLarge));
        }
        let m = Self::read_meta(&meta, bytes.len() as u64, Some(&bytes), OP)?;
        Ok(Some(LimitedGet::Read(bytes, m)))
    }

    fn head_blocking(&self, key: &str) -> Result<Option<ObjectMeta>, PortError> {
        const OP: &str = "s3.HeadObject";
        let (data, meta) = self.paths(key, OP)?;
        let md = match std::fs::metadata(&data) {
            Ok(md) if md.is_file() => md,
            Ok(_) => return Ok(None),
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::NotFound | std::io::ErrorKind::NotADirectory
                ) =>
            {
                return Ok(None);
            }
            Err(e) => return Err(io_err(OP, "reading object metadata", &e)),
        };
        let mut m = Self::read_meta(&meta, md.len(), None, OP)?;
        if m.etag.is_none() {
            let bytes = std::fs::read(&data).map_err(|e| io_err(OP, "reading object", &e))?;
            m.etag = Some(etag_of(&bytes));
        }
        Ok(Some(m))
    }

    fn put_blocking(
        &self,
        key: &str,
        bytes: &[u8],
        content_type: &str,
    ) -> Result<ObjectMeta, PortError> {
        const OP: &str = "s3.PutObject";
        let (data, meta) = self.paths(key, OP)?;
        let tmp_dir = self.root.join("tmp");
        let etag = etag_of(bytes);
        let sidecar = Sidecar {
            content_type: Some(content_type.to_string()),
            etag: etag.clone(),
        };
        let sidecar = serde_json::to_vec(&sidecar)
            .map_err(|e| PortError::new(ErrorKind::Other, OP, e.to_string()))?;
        // Sidecar first: a reader that sees the new bytes also sees their metadata. A crash
        // between the two renames leaves the old bytes with the new sidecar, which a rewrite fixes.
        write_atomically(&tmp_dir, &meta, &sidecar)
            .map_err(|e| io_err(OP, "writing object metadata", &e))?;
        write_atomically(&tmp_dir, &data, bytes).map_err(|e| io_err(OP, "writing object", &e))?;
        Ok(ObjectMeta {
            size: bytes.len() as u64,
            content_type: Some(content_type.to_string()),
            etag: Some(etag),
            version_id: None,
        })
    }
}

/// Directories 0700 and the file 0600, whatever the umask (objects can hold patient data).
fn write_atomically(tmp_dir: &Path, dest: &Path, bytes: &[u8]) -> std::io::Result<()> {
    fleet_core::files::create_dir_all(tmp_dir)?;
    if let Some(parent) = dest.parent() {
        fleet_core::files::create_dir_all(parent)?;
    }
    let tmp = tmp_dir.join(uuid::Uuid::new_v4().simple().to_string());
    let result = (|| {
        let mut f = fleet_core::files::create_new(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        std::fs::rename(&tmp, dest)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

async fn blocking<T: Send + 'static>(
    op: &'static str,
    f: impl FnOnce() -> Result<T, PortError> + Send + 'static,
) -> Result<T, PortError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| PortError::new(ErrorKind::Other, op, format!("file task failed: {e}")))?
}

impl LocalBucket {
    fn clone_parts(&self) -> Self {
        Self {
            root: self.root.clone(),
            bucket: self.bucket.clone(),
        }
    }
}

#[async_trait]
impl ObjectStore for LocalBucket {
    fn id(&self) -> &str {
        &self.bucket
    }

    async fn get(&self, key: &str) -> Result<Option<(Vec<u8>, ObjectMeta)>, PortError> {
        const OP: &str = "s3.GetObject";
        count(OP);
        let (me, key) = (self.clone_parts(), key.to_string());
        blocking(OP, move || me.get_blocking(&key)).await
    }

    async fn get_limited(
        &self,
        key: &str,
        max_bytes: u64,
    ) -> Result<Option<LimitedGet>, PortError> {
        const OP: &str = "s3.GetObject";
        count(OP);
        let (me, key) = (self.clone_parts(), key.to_string());
        blocking(OP, move || me.get_limited_blocking(&key, max_bytes)).await
    }

    async fn head(&self, key: &str) -> Result<Option<ObjectMeta>, PortError> {
        const OP: &str = "s3.HeadObject";
        count(OP);
        let (me, key) = (self.clone_parts(), key.to_string());
        blocking(OP, move || me.head_blocking(&key)).await
    }

    async fn put(
        &self,
        key: &str,
        bytes: Vec<u8>,
        content_type: &str,
    ) -> Result<ObjectMeta, PortError> {
        const OP: &str = "s3.PutObject";
        count(OP);
        let (me, key, content_type) = (
            self.clone_parts(),
            key.to_string(),
            content_type.to_string(),
        );
        blocking(OP, move || me.put_blocking(&key, &bytes, &content_type)).await
    }
}
