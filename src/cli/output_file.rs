//! Files the CLI writes at a path the user named (`export --out`, the starter files of `init`
//! and `demo`). Each is written to a temporary file beside its target (`.<name>.tmp-<pid>-...`,
//! same folder, so the final step is a rename within one file system) and renamed over the
//! target only once complete and synced. A write that fails part way (a full disk, a file-size
//! limit, an export that fails mid-stream) removes the temporary file and leaves whatever was
//! at the target before byte for byte as it was; the error names the target.
//!
//! A target that exists and is not a regular file (`/dev/stdout`, a named pipe) cannot be
//! replaced by a rename; it is written in place. A symbolic link is followed: the file it
//! points to is replaced and the link stays.

use std::fs::File;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use tempfile::NamedTempFile;

/// A file being written for a user: [`OutputFile::commit`] puts it in place; dropping it
/// without committing removes the temporary file and leaves the target untouched.
pub struct OutputFile {
    /// Where the finished file goes (a symbolic link resolved).
    target: PathBuf,
    /// What the user named, for messages.
    named: PathBuf,
    /// Whether something was already there (messages say it was left alone).
    existed: bool,
    sink: Sink,
}

enum Sink {
    Staged(NamedTempFile),
    /// The target is not a regular file: written as it is.
    Direct(File),
}

impl OutputFile {
    /// Starts writing `path`: creates the temporary file beside it.
    pub fn create(path: &Path) -> Result<OutputFile> {
        let named = path.to_path_buf();
        let existing = std::fs::metadata(path).ok();
        if let Some(m) = &existing {
            if m.is_dir() {
                anyhow::bail!("cannot write {}: it is a folder", path.display());
            }
            if !m.is_file() {
                let f = std::fs::OpenOptions::new()
                    .write(true)
                    .open(path)
                    .with_context(|| format!("opening {}", path.display()))?;
                return Ok(OutputFile {
                    target: named.clone(),
                    named,
                    existed: true,
                    sink: Sink::Direct(f),
                });
            }
        }
        let is_link = std::fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_symlink());
        let target = if is_link && existing.is_some() {
            std::fs::canonicalize(path)
                .with_context(|| format!("resolving the link {}", path.display()))?
        } else {
            named.clone()
        };
        let dir = match target.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => PathBuf::from("."),
        };
        let name = target
            .file_name()
            .with_context(|| format!("cannot write {}: it names no file", path.display()))?;
        let prefix = format!(".{}.tmp-{}-", name.to_string_lossy(), std::process::id());
        let mut b = tempfile::Builder::new();
        b.prefix(&prefix).rand_bytes(6);
        // A new file gets the usual 0666 less the umask (not a temporary file's 0600).
        #[cfg(unix)]
        b.permissions(std::os::unix::fs::PermissionsExt::from_mode(0o666));
        let temp = b.tempfile_in(&dir).with_context(|| {
            format!(
                "cannot create a temporary file in {} to write {}",
                dir.display(),
                path.display()
            )
        })?;
        // A replaced file keeps its mode.
        if let Some(m) = &existing {
            temp.as_file()
                .set_permissions(m.permissions())
                .with_context(|| format!("copying the mode of {}", path.display()))?;
        }
        Ok(OutputFile {
            target,
            named,
            existed: existing.is_some(),
            sink: Sink::Staged(temp),
        })
    }

    /// Flushes, syncs and renames the finished file over the target.
    pub fn commit(self) -> Result<()> {
        let what = self.describe();
        match self.sink {
            Sink::Direct(mut f) => f.flush().with_context(|| format!("writing {what}")),
            Sink::Staged(mut t) => {
                t.flush()
                    .and_then(|()| t.as_file().sync_all())
                    .with_context(|| format!("writing {what}"))?;
                t.persist(&self.target)
                    .map_err(|e| e.error)
                    .with_context(|| format!("replacing {what}"))?;
                Ok(())
            }
        }
    }

    /// Wraps an error met while writing, naming the file (and saying an old one is intact).
    pub fn error(&self, e: impl Into<anyhow::Error>) -> anyhow::Error {
        e.into().context(format!("writing {}", self.describe()))
    }

    fn describe(&self) -> String {
        match (&self.sink, self.existed) {
            (Sink::Staged(_), true) => format!(
                "{} (the file already there was left unchanged)",
                self.named.display()
            ),
            _ => self.named.display().to_string(),
        }
    }
}

impl Write for OutputFile {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match &mut self.sink {
            Sink::Staged(t) => t.write(buf),
            Sink::Direct(f) => f.write(buf),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match &mut self.sink {
            Sink::Staged(t) => t.flush(),
            Sink::Direct(f) => f.flush(),
        }
    }
}

/// Writes `bytes` to `path` through an [`OutputFile`].
pub fn write_file(path: &Path, bytes: &[u8]) -> Result<()> {
    let mut f = OutputFile::create(path)?;
    if let Err(e) = f.write_all(bytes) {
        return Err(f.error(e));
    }
    f.commit()
}

/// Makes a write past the file-size limit (`ulimit -f`) fail with an error (EFBIG) instead of
/// killing the process with SIGXFSZ, so the temporary file is removed and the message says
/// which file. Needs a Tokio runtime; the handler stays for the life of the process.
pub fn catch_file_size_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        if let Err(e) = signal(SignalKind::from_raw(libc::SIGXFSZ)) {
            tracing::debug!("cannot catch SIGXFSZ: {e}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn leftovers(dir: &Path) -> Vec<String> {
        std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.contains(".tmp-"))
            .collect()
    }

    #[test]
    fn an_unfinished_file_leaves_the_old_one_and_no_temporary_file() {
        let tmp = tempfile::tempdir().unwrap();
        let p = tmp.path().join("f.csv");
        std::fs::write(&p, "old\n").unwrap();
        let mut f = OutputFile::create(&p).unwrap();
        f.write_all(b"half of the new").unwrap();
        let e = f.error(io::Error::other("disk full")).to_string();
        assert!(e.contains("f.csv") && e.contains("left unchanged"), "{e}");
        drop(f);
        assert_eq!(std::fs::read_to_string(&p).unwrap(), "old\n");
        assert!(leftovers(tmp.path()).is_empty());

        write_file(&p, b"new\n").unwrap();
        assert_eq!(std::fs::read_to_string(&p).unwrap(), "new\n");
        assert!(leftovers(tmp.path()).is_empty());
    }

    #[cfg(unix)]
    #[test]
    fn a_replaced_file_keeps_its_mode_and_a_link_stays_a_link() {
        use std::os::unix::fs::PermissionsExt;
        let tmp = tempfile::tempdir().unwrap();
        let real = tmp.path().join("real.csv");
        std::fs::write(&real, "old").unwrap();
        std::fs::set_permissions(&real, std::fs::Permissions::from_mode(0o640)).unwrap();
        let link = tmp.path().join("link.csv");
        std::os::unix::fs::symlink(&real, &link).unwrap();
        write_file(&link, b"new").unwrap();
        assert!(
            std::fs::symlink_metadata(&link)
                .unwrap()
                .file_type()
                .is_symlink()
        );
        assert_eq!(std::fs::read_to_string(&real).unwrap(), "new");
        let mode = std::fs::metadata(&real).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o640);
    }

    #[test]
    fn a_folder_is_refused_by_name() {
        let tmp = tempfile::tempdir().unwrap();
        let e = write_file(tmp.path(), b"x").unwrap_err().to_string();
        assert!(e.contains("it is a folder"), "{e}");
    }
}
