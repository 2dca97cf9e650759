//! Files replaced whole or not at all.
//!
//! [`write_atomically`] writes the new contents to a file in the target's
//! directory, flushes it to disk, and only then gives it the target's name in
//! one `rename`, so a reader sees the old file or the new one, never a part.
//!
//! On Linux the new contents go to an *unnamed* file (`O_TMPFILE`): while it is
//! written and synced it has no name, so a process killed at that moment (even
//! by SIGKILL, which runs no clean-up) leaves nothing behind; the kernel frees
//! the file. It is named (`linkat`) just before the rename, so the window in
//! which a kill leaves a `.feedforward-*.tmp` is two system calls wide. Where
//! unnamed files are not available (other systems, or file systems without
//! `O_TMPFILE`) the contents go to a named temporary file, removed on every
//! error, but left by a kill during the write.

use std::fs::File;
use std::io::Write;
use std::path::Path;

use crate::error::{Error, Result};

/// Writes `bytes` to `path` atomically: `path` then holds either its old
/// contents or all of `bytes`, whatever happens (an error, a full disk, the
/// process killed). The file gets the permissions `std::fs::write` would give
/// a new one.
///
/// ```
/// use feedforward::io::write_atomically;
/// let dir = tempfile::tempdir()?;
/// let path = dir.path().join("notes.txt");
/// write_atomically(&path, b"old")?;
/// write_atomically(&path, b"new")?;
/// assert_eq!(std::fs::read(&path)?, b"new");
/// assert_eq!(std::fs::read_dir(dir.path())?.count(), 1);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
///
/// # Errors
/// [`Error::Io`] naming `path` (not a temporary name), e.g. "No space left on
/// device"; then `path` is untouched and no temporary file is left.
pub fn write_atomically(path: &Path, bytes: &[u8]) -> Result<()> {
    let io = |e: std::io::Error| Error::io(path, &e);
    let dir = directory_of(path);
    #[cfg(target_os = "linux")]
    if let Some(mut file) = unnamed::create(dir) {
        file.write_all(bytes).map_err(io)?;
        file.sync_all().map_err(io)?;
        if let Some(named) =
            unnamed::name(&file, dir).map_err(|e| temporary_error(path, dir, &e))?
        {
            named.persist(path).map_err(|e| io(e.error))?;
            sync_directory(dir);
            return Ok(());
        }
        // No way to name it (no /proc): write again through a named file.
    }
    let mut tmp = named_temporary(dir).map_err(|e| temporary_error(path, dir, &e))?;
    // Through the file itself: its errors do not name the temporary path.
    tmp.as_file_mut().write_all(bytes).map_err(io)?;
    tmp.as_file().sync_all().map_err(io)?;
    tmp.persist(path).map_err(|e| io(e.error))?;
    sync_directory(dir);
    Ok(())
}

/// Checks, before any work is spent on it, that [`write_atomically`] could
/// write `path`: that it is not a directory, and that a file can be made beside
/// it (the directory exists and is writable). Nothing is left behind.
///
/// ```
/// use feedforward::io::check_writable;
/// let dir = tempfile::tempdir()?;
/// assert!(check_writable(&dir.path().join("model.safetensors")).is_ok());
/// assert!(check_writable(dir.path()).is_err());
/// assert!(check_writable(&dir.path().join("missing/model.safetensors")).is_err());
/// assert_eq!(std::fs::read_dir(dir.path())?.count(), 0);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
///
/// # Errors
/// [`Error::Io`] naming `path`: "is a directory", or why no file could be made
/// in its directory.
pub fn check_writable(path: &Path) -> Result<()> {
    if path.is_dir() {
        let e = std::io::Error::new(std::io::ErrorKind::IsADirectory, "is a directory");
        return Err(Error::io(path, &e));
    }
    let dir = directory_of(path);
    #[cfg(target_os = "linux")]
    if unnamed::create(dir).is_some() {
        return Ok(());
    }
    named_temporary(dir)
        .map(drop)
        .map_err(|e| temporary_error(path, dir, &e))
}

/// The directory `path` is in (`.` for a bare file name).
fn directory_of(path: &Path) -> &Path {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    }
}

/// The builder of the temporary names: `.feedforward-XXXXXX.tmp`.
fn temporary_names() -> tempfile::Builder<'static, 'static> {
    let mut builder = tempfile::Builder::new();
    builder.prefix(".feedforward-").suffix(".tmp");
    builder
}

/// An empty named temporary file in `dir`, removed when dropped unless
/// persisted.
fn named_temporary(dir: &Path) -> std::io::Result<tempfile::NamedTempFile> {
    let mut builder = temporary_names();
    // A temporary file is private (0600); the file it becomes gets the
    // permissions of any new file, 0666 less the umask, as `fs::write` gives.
    #[cfg(unix)]
    builder.permissions(std::os::unix::fs::PermissionsExt::from_mode(0o666));
    builder.tempfile_in(dir)
}

/// An error making a file in `dir`, named by `path` and the directory rather
/// than by a temporary name (which tempfile appends as " at path …").
fn temporary_error(path: &Path, dir: &Path, e: &std::io::Error) -> Error {
    let text = e.to_string();
    let cause = text.split(" at path ").next().unwrap_or(&text);
    let why = format!("cannot make a file in {}: {cause}", dir.display());
    Error::io(path, &std::io::Error::new(e.kind(), why))
}

/// Flushes `dir`'s entries, so that the rename survives a power loss too.
/// Best effort: some file systems refuse to sync a directory, and the file's
/// contents are already safe.
fn sync_directory(dir: &Path) {
    if let Ok(d) = File::open(dir) {
        let _ = d.sync_all();
    }
}

/// Unnamed files (`O_TMPFILE`, Linux 3.11 and later).
#[cfg(target_os = "linux")]
mod unnamed {
    use std::ffi::CString;
    use std::fs::{File, OpenOptions};
    use std::os::unix::ffi::OsStrExt;
    use std::os::unix::fs::OpenOptionsExt;
    use std::os::unix::io::AsRawFd;
    use std::path::Path;

    /// An unnamed file in `dir`, or `None` where the file system cannot make
    /// one (then a named file is the way; a real error shows up there too).
    pub(super) fn create(dir: &Path) -> Option<File> {
        OpenOptions::new()
            .write(true)
            .custom_flags(libc::O_TMPFILE)
            .mode(0o666)
            .open(dir)
            .ok()
    }

    /// Gives `file` a temporary name in `dir`, returned as a temporary file
    /// that is removed on drop unless persisted; `None` when the system offers
    /// no way to name an unnamed file.
    pub(super) fn name(
        file: &File,
        dir: &Path,
    ) -> std::io::Result<Option<tempfile::NamedTempFile<()>>> {
        let proc_path =
            CString::new(format!("/proc/self/fd/{}", file.as_raw_fd())).expect("no interior NUL");
        let mut unavailable = false;
        let named = super::temporary_names().make_in(dir, |name| {
            let target = CString::new(name.as_os_str().as_bytes())
                .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))?;
            // SAFETY: both paths are NUL-terminated strings that outlive the call.
            let rc = unsafe {
                libc::linkat(
                    libc::AT_FDCWD,
                    proc_path.as_ptr(),
                    libc::AT_FDCWD,
                    target.as_ptr(),
                    libc::AT_SYMLINK_FOLLOW,
                )
            };
            if rc == 0 {
                return Ok(());
            }
            let e = std::io::Error::last_os_error();
            // No /proc (a bare container): there is no other unprivileged way.
            unavailable = e.kind() == std::io::ErrorKind::NotFound;
            Err(e)
        });
        match named {
            Ok(named) => Ok(Some(named)),
            Err(_) if unavailable => Ok(None),
            Err(e) => Err(e),
        }
    }
}
