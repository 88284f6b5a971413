//! Private files. What the fleet writes to disk (the local database, objects, the outbox,
//! dlq-replay's audit log and archives) can hold patient data, so every file it creates is
//! 0600 and every directory 0700, whatever the umask: created with that mode, then set to it
//! explicitly (a umask can only remove bits, and one that removes the owner's would leave a
//! file its own process cannot reopen). Files and directories that already exist keep their
//! mode; the local database refuses to open when group or others have access to it
//! ([`shared_mode`]).

use std::fs::{File, OpenOptions, Permissions};
use std::io;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::Path;

/// Mode of every file the fleet creates.
pub const FILE_MODE: u32 = 0o600;
/// Mode of every directory the fleet creates.
pub const DIR_MODE: u32 = 0o700;

/// Create `dir` and its missing ancestors, each 0700; existing ones are left as they are.
pub fn create_dir_all(dir: &Path) -> io::Result<()> {
    if dir.as_os_str().is_empty() || dir.is_dir() {
        return Ok(());
    }
    if let Some(parent) = dir.parent() {
        create_dir_all(parent)?;
    }
    match std::fs::DirBuilder::new().mode(DIR_MODE).create(dir) {
        Ok(()) => std::fs::set_permissions(dir, Permissions::from_mode(DIR_MODE)),
        // Created meanwhile by another process or thread: theirs, with this same rule.
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists && dir.is_dir() => Ok(()),
        Err(e) => Err(e),
    }
}

/// Create `path` (which must not exist) 0600, open for writing.
pub fn create_new(path: &Path) -> io::Result<File> {
    let file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(FILE_MODE)
        .open(path)?;
    file.set_permissions(Permissions::from_mode(FILE_MODE))?;
    Ok(file)
}

/// Create or truncate `path`, open for writing, and make it 0600 (a file left by an earlier
/// attempt, such as a temporary file, is narrowed too).
pub fn create(path: &Path) -> io::Result<File> {
    let file = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(FILE_MODE)
        .open(path)?;
    file.set_permissions(Permissions::from_mode(FILE_MODE))?;
    Ok(file)
}

/// Open `path` for appending, creating it 0600 when it does not exist (an existing file keeps
/// its mode: an operator may have chosen it for a log).
pub fn open_append(path: &Path) -> io::Result<File> {
    match OpenOptions::new()
        .append(true)
        .create_new(true)
        .mode(FILE_MODE)
        .open(path)
    {
        Ok(file) => {
            file.set_permissions(Permissions::from_mode(FILE_MODE))?;
            Ok(file)
        }
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
            OpenOptions::new().append(true).open(path)
        }
        Err(e) => Err(e),
    }
}

/// The permission bits of `path` when group or others have any access to it (read, write or
/// execute); `None` when it is the owner's alone or does not exist.
pub fn shared_mode(path: &Path) -> io::Result<Option<u32>> {
    match std::fs::metadata(path) {
        Ok(m) => {
            let mode = m.permissions().mode() & 0o777;
            Ok((mode & 0o077 != 0).then_some(mode))
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}
