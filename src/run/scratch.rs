//! A run's scratch folder on local disk (its materialized stage outputs and DataFusion's spill
//! files), and the sweep that removes the scratch folders of runs that died without cleaning up
//! (`kill -9`, out of memory, a lost machine), so they do not pile up in the temp folder.
//!
//! A scratch folder is `cohort-run-<pid>-<random>` in the spill folder (or the OS temp folder)
//! and holds a `.lock` file that its run keeps locked (`flock`) while it lives. The OS releases
//! that lock when the process ends, however it ends. Creating a scratch folder first removes
//! every `cohort-run-*` folder beside it whose lock is free and whose process is gone; a live
//! run's folder is never taken (its lock is held, and during the moment between creating its
//! folder and locking it, its pid is alive). Folders of older Cohort versions (named
//! `cohort-run-<random>`, no pid) are removed once nothing has changed in them for a day.
//! A run that ends, well or badly, removes its own folder when the [`Scratch`] is dropped.

use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use crate::store::lease::pid_alive;

/// What every scratch folder's name starts with.
pub const PREFIX: &str = "cohort-run-";
const LOCK: &str = ".lock";
/// How long a scratch folder of an older Cohort version (no pid in its name) must sit
/// unchanged before it is taken for dead.
const LEGACY_AGE: Duration = Duration::from_secs(24 * 3600);

/// A live run's scratch folder; removed (with everything in it) when its last clone is
/// dropped.
#[derive(Clone)]
pub struct Scratch(Arc<Held>);

struct Held {
    dir: tempfile::TempDir,
    _lock: File,
}

impl Scratch {
    pub fn path(&self) -> &Path {
        self.0.dir.path()
    }

    /// Where DataFusion's spill files go: inside the scratch folder, so they go with it.
    pub fn spill_dir(&self) -> PathBuf {
        self.0.dir.path().join("spill")
    }
}

/// The folder scratch folders go in: `spill_dir`, else the OS temp folder.
pub fn parent(spill_dir: Option<&Path>) -> PathBuf {
    spill_dir.map_or_else(std::env::temp_dir, Path::to_path_buf)
}

/// Removes the dead scratch folders in `parent` (see [`sweep`]), then creates and locks a new
/// one there.
pub fn create(parent: &Path) -> io::Result<Scratch> {
    std::fs::create_dir_all(parent)?;
    for (dir, freed) in sweep(parent) {
        tracing::info!(
            "removed the scratch folder of a run that died: {} ({:.1} MB)",
            dir.display(),
            freed as f64 / 1e6
        );
    }
    let dir = tempfile::Builder::new()
        .prefix(&format!("{PREFIX}{}-", std::process::id()))
        .tempdir_in(parent)?;
    let lock = File::create(dir.path().join(LOCK))?;
    lock.lock()?;
    Ok(Scratch(Arc::new(Held { dir, _lock: lock })))
}

/// Removes every scratch folder in `parent` whose run is gone; returns each removed folder
/// with the bytes it held.
pub fn sweep(parent: &Path) -> Vec<(PathBuf, u64)> {
    let Ok(entries) = std::fs::read_dir(parent) else {
        return Vec::new();
    };
    let mut removed = Vec::new();
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        let Some(rest) = name.strip_prefix(PREFIX) else {
            continue;
        };
        let path = e.path();
        if !e.file_type().is_ok_and(|t| t.is_dir()) {
            continue;
        }
        let dead = match rest
            .split_once('-')
            .and_then(|(p, _)| p.parse::<u32>().ok())
        {
            Some(pid) => pid != std::process::id() && owner_gone(&path, pid),
            None => legacy_abandoned(&path),
        };
        if dead {
            let bytes = size(&path);
            // Another run may be sweeping the same folder at once: whoever removes it wins.
            if std::fs::remove_dir_all(&path).is_ok() {
                removed.push((path, bytes));
            }
        }
    }
    removed
}

/// Whether the run that made `dir` (process `pid`) is gone: its lock is free (or was never
/// made) and no process `pid` runs here.
fn owner_gone(dir: &Path, pid: u32) -> bool {
    match File::open(dir.join(LOCK)) {
        Ok(f) => match f.try_lock() {
            // Free: the owner is gone, or has not locked it yet (then its pid is alive).
            Ok(()) => !pid_alive(pid),
            Err(_) => false,
        },
        Err(_) => !pid_alive(pid),
    }
}

/// A pid-less folder of an older Cohort: dead once nothing in it changed for [`LEGACY_AGE`].
fn legacy_abandoned(dir: &Path) -> bool {
    let newest = newest_change(dir);
    SystemTime::now()
        .duration_since(newest)
        .is_ok_and(|age| age > LEGACY_AGE)
}

fn newest_change(dir: &Path) -> SystemTime {
    let mut newest = std::fs::metadata(dir)
        .and_then(|m| m.modified())
        .unwrap_or(SystemTime::now());
    if let Ok(rd) = std::fs::read_dir(dir) {
        for e in rd.flatten() {
            let t = if e.file_type().is_ok_and(|t| t.is_dir()) {
                newest_change(&e.path())
            } else {
                e.metadata()
                    .and_then(|m| m.modified())
                    .unwrap_or(SystemTime::now())
            };
            newest = newest.max(t);
        }
    }
    newest
}

/// Bytes of the files under `dir`.
fn size(dir: &Path) -> u64 {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return 0;
    };
    rd.flatten()
        .map(|e| match e.file_type() {
            Ok(t) if t.is_dir() => size(&e.path()),
            _ => e.metadata().map_or(0, |m| m.len()),
        })
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A pid that no process has here: beyond the kernel's pid_max.
    const DEAD_PID: u32 = 4_194_304 + 17;

    #[test]
    fn dead_folders_go_and_live_ones_stay() {
        let parent = tempfile::tempdir().unwrap();
        // A live run of this process (made first: making a scratch sweeps).
        let live = create(parent.path()).unwrap();
        // A run that was killed: its pid is gone and its lock file is free.
        let dead = parent.path().join(format!("{PREFIX}{DEAD_PID}-abc123"));
        std::fs::create_dir_all(dead.join("classified")).unwrap();
        std::fs::write(dead.join("classified/part-0.parquet"), vec![0u8; 4096]).unwrap();
        File::create(dead.join(LOCK)).unwrap();
        // One killed before it made its lock file.
        let dead_unlocked = parent.path().join(format!("{PREFIX}{DEAD_PID}-def456"));
        std::fs::create_dir_all(&dead_unlocked).unwrap();
        // A folder whose lock is held by a live holder although its pid looks dead (a process
        // in another pid namespace).
        let held = parent.path().join(format!("{PREFIX}{DEAD_PID}-held00"));
        std::fs::create_dir_all(&held).unwrap();
        let holder = File::create(held.join(LOCK)).unwrap();
        holder.lock().unwrap();
        // A recent folder of an older version, and an unrelated folder.
        let legacy = parent.path().join(format!("{PREFIX}Xy12Zq"));
        std::fs::create_dir_all(&legacy).unwrap();
        let other = parent.path().join("something-else");
        std::fs::create_dir_all(&other).unwrap();

        let removed: Vec<PathBuf> = sweep(parent.path()).into_iter().map(|(p, _)| p).collect();
        assert!(!dead.exists() && !dead_unlocked.exists(), "{removed:?}");
        assert_eq!(removed.len(), 2, "{removed:?}");
        assert!(live.path().exists());
        assert!(held.exists());
        assert!(legacy.exists());
        assert!(other.exists());

        // A new scratch sweeps too; dropping a scratch removes its folder.
        drop(holder);
        let next = create(parent.path()).unwrap();
        assert!(!held.exists());
        let (live_path, next_path) = (live.path().to_path_buf(), next.path().to_path_buf());
        drop(live);
        drop(next);
        assert!(!live_path.exists() && !next_path.exists());
    }
}
