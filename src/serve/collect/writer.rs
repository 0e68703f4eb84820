//! One source's log writer and flusher. Requests hand their encoded rows to a writer thread,
//! which appends every request waiting, fsyncs once (group commit) and only then lets them
//! answer 200. A segment is sealed when it reaches the size or age threshold and goes to the
//! flusher, which writes its Parquet files and deletes it once they are visible. Segments a
//! previous process left are flushed first: that is the replay.

use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, Sender};
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, oneshot};

use super::wal::{self, Segment};
use super::{Fail, lake};
use crate::store::objects::Location;

/// When a segment is sealed and flushed to the lake.
#[derive(Clone, Copy, Debug)]
pub struct Thresholds {
    pub bytes: u64,
    pub age: Duration,
}

/// What the writer is asked.
enum Msg {
    Append {
        payload: Vec<u8>,
        events: u64,
        done: oneshot::Sender<io::Result<()>>,
    },
    /// Seal the current segment and answer once everything before it is in the lake.
    Flush(oneshot::Sender<()>),
}

/// A sealed segment on its way to the lake (or only a waiter, when nothing was open).
struct Sealed {
    segment: Option<(String, PathBuf)>,
    notify: Vec<oneshot::Sender<()>>,
}

/// Counters a source's log keeps, for logs and tests.
#[derive(Debug, Default)]
pub struct Counters {
    pub acknowledged: AtomicU64,
    pub flushed: AtomicU64,
}

/// A source's log: where requests send their rows.
pub struct SourceLog {
    pub space: String,
    pub source: String,
    tx: std::sync::Mutex<Sender<Msg>>,
    pub counters: Arc<Counters>,
    /// Held for the life of the log: one process collects into a folder at a time.
    _lock: File,
}

impl SourceLog {
    /// Opens (creating) `dir`, takes its lock, queues the segments a previous process left
    /// for flushing and starts the writer and the flusher.
    pub fn open(
        space: &str,
        source: &str,
        dir: &Path,
        lake: Location,
        partition_column: String,
        thresholds: Thresholds,
    ) -> Result<SourceLog, Fail> {
        std::fs::create_dir_all(dir)
            .map_err(|e| format!("cannot create the collector's log {}: {e}", dir.display()))?;
        let lock = lock(dir)?;
        let counters = Arc::new(Counters::default());
        let (sealed_tx, sealed_rx) = mpsc::unbounded_channel();
        let left = wal::segments(dir)?;
        if !left.is_empty() {
            eprintln!(
                "collector `{space}`/`{source}`: replaying {} log segment(s) from {}",
                left.len(),
                dir.display()
            );
        }
        for seg in left {
            let _ = sealed_tx.send(Sealed {
                segment: Some(seg),
                notify: Vec::new(),
            });
        }
        let label = format!("`{space}`/`{source}`");
        tokio::spawn(flusher(
            label.clone(),
            lake,
            partition_column,
            sealed_rx,
            counters.clone(),
        ));
        let (tx, rx) = std::sync::mpsc::channel();
        let wdir = dir.to_path_buf();
        std::thread::Builder::new()
            .name(format!("collect-{source}"))
            .spawn(move || writer(&wdir, rx, thresholds, sealed_tx))
            .map_err(|e| format!("cannot start the log writer: {e}"))?;
        Ok(SourceLog {
            space: space.to_string(),
            source: source.to_string(),
            tx: std::sync::Mutex::new(tx),
            counters,
            _lock: lock,
        })
    }

    /// Appends one request's rows; returns once they are on disk.
    pub async fn append(&self, payload: Vec<u8>, events: u64) -> io::Result<()> {
        let (done, wait) = oneshot::channel();
        let sent = self.tx.lock().unwrap().send(Msg::Append {
            payload,
            events,
            done,
        });
        if sent.is_err() {
            return Err(io::Error::other("the log writer stopped"));
        }
        let r = wait
            .await
            .unwrap_or_else(|_| Err(io::Error::other("the log writer stopped")));
        if r.is_ok() {
            self.counters
                .acknowledged
                .fetch_add(events, Ordering::Relaxed);
        }
        r
    }

    /// Seals what is open and waits until every event acknowledged so far is in the lake.
    pub async fn flush(&self) {
        let (done, wait) = oneshot::channel();
        if self.tx.lock().unwrap().send(Msg::Flush(done)).is_ok() {
            let _ = wait.await;
        }
    }
}

/// An exclusive `flock` on `<dir>/LOCK`.
fn lock(dir: &Path) -> Result<File, Fail> {
    let path = dir.join("LOCK");
    let f = File::create(&path)?;
    #[cfg(unix)]
    {
        use std::os::fd::AsRawFd;
        // SAFETY: flock on a descriptor this function owns.
        let r = unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
        if r != 0 {
            return Err(format!(
                "another process collects into {} (it holds {})",
                dir.display(),
                path.display()
            )
            .into());
        }
    }
    Ok(f)
}

/// The writer thread: group commit, sealing by size and age.
fn writer(
    dir: &Path,
    rx: Receiver<Msg>,
    limits: Thresholds,
    sealed: mpsc::UnboundedSender<Sealed>,
) {
    let mut open: Option<(Segment, Instant)> = None;
    loop {
        let wait = match &open {
            Some((_, first)) => limits.age.saturating_sub(first.elapsed()),
            None => Duration::from_secs(3600),
        };
        let mut msgs = Vec::new();
        match rx.recv_timeout(wait) {
            Ok(m) => msgs.push(m),
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => {
                seal(&mut open, Vec::new(), &sealed);
                return;
            }
        }
        while msgs.len() < 4096
            && let Ok(m) = rx.try_recv()
        {
            msgs.push(m);
        }
        let mut waiters = Vec::new();
        let mut flushes = Vec::new();
        let mut failed: Option<io::Error> = None;
        for m in msgs {
            match m {
                Msg::Flush(n) => flushes.push(n),
                Msg::Append {
                    payload,
                    events,
                    done,
                } => {
                    if failed.is_none() {
                        let r = match &mut open {
                            Some((s, _)) => s.append(&payload, events),
                            None => Segment::create(dir).and_then(|mut s| {
                                let r = s.append(&payload, events);
                                open = Some((s, Instant::now()));
                                r
                            }),
                        };
                        if let Err(e) = r {
                            failed = Some(e);
                        }
                    }
                    waiters.push(done);
                }
            }
        }
        if failed.is_none()
            && !waiters.is_empty()
            && let Some((s, _)) = &mut open
            && let Err(e) = s.sync()
        {
            failed = Some(e);
        }
        let poisoned = failed.is_some();
        for w in waiters {
            let r = match &failed {
                None => Ok(()),
                Some(e) => Err(io::Error::new(e.kind(), e.to_string())),
            };
            let _ = w.send(r);
        }
        if let Some(e) = failed {
            tracing::warn!("collector log {}: {e}", dir.display());
        }
        let due = open
            .as_ref()
            .is_some_and(|(s, first)| s.bytes >= limits.bytes || first.elapsed() >= limits.age);
        if due || poisoned || !flushes.is_empty() {
            // A segment a write failed in is sealed too: what was acknowledged before the
            // failure is whole in it, and nothing after it was.
            seal(&mut open, flushes, &sealed);
        }
    }
}

fn seal(
    open: &mut Option<(Segment, Instant)>,
    notify: Vec<oneshot::Sender<()>>,
    sealed: &mpsc::UnboundedSender<Sealed>,
) {
    let segment = open.take().map(|(s, _)| (s.id, s.path));
    if segment.is_some() || !notify.is_empty() {
        let _ = sealed.send(Sealed { segment, notify });
    }
}

/// The flusher: segments into the lake, in order, retrying while the lake is unreachable.
async fn flusher(
    label: String,
    lake: Location,
    partition_column: String,
    mut rx: mpsc::UnboundedReceiver<Sealed>,
    counters: Arc<Counters>,
) {
    while let Some(s) = rx.recv().await {
        if let Some((id, path)) = s.segment {
            let mut delay = Duration::from_millis(200);
            loop {
                match flush_segment(&lake, &partition_column, &id, &path).await {
                    Ok(f) => {
                        counters
                            .flushed
                            .fetch_add(f.events as u64, Ordering::Relaxed);
                        tracing::info!(
                            "collector {label}: segment {id}: {} event(s) into {} file(s){}",
                            f.events,
                            f.files,
                            if f.already_there > 0 {
                                format!(", {} file(s) already there", f.already_there)
                            } else {
                                String::new()
                            }
                        );
                        break;
                    }
                    Err(e) => {
                        eprintln!(
                            "collector {label}: cannot flush segment {id} (kept in the log, \
                             retrying in {:.1}s): {e}",
                            delay.as_secs_f64()
                        );
                        tokio::time::sleep(delay).await;
                        delay = (delay * 2).min(Duration::from_secs(30));
                    }
                }
            }
        }
        for n in s.notify {
            let _ = n.send(());
        }
    }
}

async fn flush_segment(
    lake: &Location,
    partition_column: &str,
    id: &str,
    path: &Path,
) -> Result<lake::Flushed, Fail> {
    let p = path.to_path_buf();
    let rows = tokio::task::spawn_blocking(move || wal::read(&p)).await??;
    // Encoding Parquet and local writes block: keep them off the threads serving requests.
    let flushed = tokio::task::block_in_place(|| {
        tokio::runtime::Handle::current().block_on(lake::flush(lake, partition_column, id, &rows))
    })?;
    std::fs::remove_file(path)?;
    if let Some(dir) = path.parent() {
        wal::sync_dir(dir)?;
    }
    Ok(flushed)
}
