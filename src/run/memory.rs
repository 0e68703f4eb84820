//! How much memory each stage of a run held, so a limit that is not kept can be traced to what
//! broke it: DataFusion's pool with its high-water mark ([`PeakPool`]), and the process's peak
//! resident memory (read every 50 ms by a sampling thread; Linux's own high-water mark is
//! left alone, as `time -v` and benchmarks read it). The pool counts what operators
//! reserve; the difference to the resident peak is memory the pool does not see (in-memory
//! tables, writers, the allocator's free pages). Logged per stage under the target
//! `cohort::memory` (`COHORT_LOG=warn,cohort::memory=info`).

use std::fmt;
use std::sync::LazyLock;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use datafusion::common::Result;
use datafusion::execution::memory_pool::{
    FairSpillPool, MemoryConsumer, MemoryLimit, MemoryPool, MemoryReservation,
};
use datafusion::prelude::SessionContext;

/// DataFusion's fair spill pool, remembering the most it had reserved at once.
#[derive(Debug)]
pub struct PeakPool {
    inner: FairSpillPool,
    peak: AtomicUsize,
}

impl PeakPool {
    pub fn new(limit: usize) -> Self {
        PeakPool {
            inner: FairSpillPool::new(limit),
            peak: AtomicUsize::new(0),
        }
    }

    /// The most reserved at once since the last call; starts the next period at what is
    /// reserved now.
    pub fn take_peak(&self) -> usize {
        self.peak.swap(self.inner.reserved(), Ordering::Relaxed)
    }

    fn note(&self) {
        self.peak
            .fetch_max(self.inner.reserved(), Ordering::Relaxed);
    }
}

impl fmt::Display for PeakPool {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} (peak {} bytes)",
            self.inner,
            self.peak.load(Ordering::Relaxed)
        )
    }
}

impl MemoryPool for PeakPool {
    fn name(&self) -> &str {
        self.inner.name()
    }
    fn register(&self, consumer: &MemoryConsumer) {
        self.inner.register(consumer)
    }
    fn unregister(&self, consumer: &MemoryConsumer) {
        self.inner.unregister(consumer)
    }
    fn grow(&self, reservation: &MemoryReservation, additional: usize) {
        self.inner.grow(reservation, additional);
        self.note();
    }
    fn shrink(&self, reservation: &MemoryReservation, shrink: usize) {
        self.inner.shrink(reservation, shrink)
    }
    fn try_grow(&self, reservation: &MemoryReservation, additional: usize) -> Result<()> {
        self.inner.try_grow(reservation, additional)?;
        self.note();
        Ok(())
    }
    fn reserved(&self) -> usize {
        self.inner.reserved()
    }
    fn memory_limit(&self) -> MemoryLimit {
        self.inner.memory_limit()
    }
}

/// What a stage held at most: the pool's reservations (None without a limit) and the
/// process's resident memory (None where the OS does not say).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct StagePeak {
    pub pool: Option<usize>,
    pub resident: Option<usize>,
}

/// The peaks since the last call, and starts the next period.
pub fn take_peaks(ctx: &SessionContext) -> StagePeak {
    let pool = ctx.runtime_env().memory_pool.clone();
    StagePeak {
        pool: pool.downcast_ref::<PeakPool>().map(PeakPool::take_peak),
        resident: take_resident_peak(),
    }
}

/// The most resident memory the sampler saw since the last call (None where the OS does not
/// say); the next period starts at what is resident now.
fn take_resident_peak() -> Option<usize> {
    let now = resident()?;
    Some(SAMPLED_PEAK.swap(now, Ordering::Relaxed).max(now))
}

/// The highest resident size sampled in the current period; the sampling thread starts on
/// first use and lives as long as the process (one `/proc` read every 50 ms).
static SAMPLED_PEAK: LazyLock<AtomicUsize> = LazyLock::new(|| {
    let started = std::thread::Builder::new()
        .name("cohort-memory".into())
        .spawn(|| {
            while let Some(bytes) = resident() {
                SAMPLED_PEAK.fetch_max(bytes, Ordering::Relaxed);
                std::thread::sleep(Duration::from_millis(50));
            }
        });
    if let Err(e) = started {
        tracing::debug!("no resident memory sampling: {e}");
    }
    AtomicUsize::new(resident().unwrap_or(0))
});

#[cfg(unix)]
fn page_size() -> usize {
    // SAFETY: sysconf reads a constant of the system and has no preconditions.
    let size = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    usize::try_from(size).unwrap_or(4096)
}

#[cfg(not(unix))]
fn page_size() -> usize {
    4096
}

/// The process's resident memory now, from `/proc/self/statm` (None elsewhere).
fn resident() -> Option<usize> {
    let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: usize = statm.split_whitespace().nth(1)?.parse().ok()?;
    Some(pages * page_size())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn the_peak_is_the_most_reserved_at_once_and_restarts_at_what_is_held() {
        let pool: Arc<dyn MemoryPool> = Arc::new(PeakPool::new(1 << 20));
        let a = MemoryConsumer::new("a").register(&pool);
        let b = MemoryConsumer::new("b")
            .with_can_spill(true)
            .register(&pool);
        a.grow(1000);
        b.try_grow(500).unwrap();
        b.shrink(500);
        a.shrink(400);
        let peak = pool.downcast_ref::<PeakPool>().unwrap();
        assert_eq!(peak.take_peak(), 1500);
        assert_eq!(
            peak.take_peak(),
            600,
            "the next period starts at what is held"
        );
        assert!(b.try_grow(2 << 20).is_err(), "the limit still holds");
        assert_eq!(peak.take_peak(), 600);
    }

    #[test]
    fn the_resident_peak_covers_memory_held_between_readings() {
        if !cfg!(target_os = "linux") {
            return;
        }
        take_resident_peak().expect("statm");
        let before = resident().unwrap();
        // 256 MiB touched, held well past a sampling interval, then freed.
        let block = vec![1u8; 256 << 20];
        std::thread::sleep(Duration::from_millis(300));
        assert_eq!(block.iter().map(|b| *b as usize).sum::<usize>(), 256 << 20);
        drop(block);
        let peak = take_resident_peak().unwrap();
        assert!(peak >= before + (200 << 20), "{peak} after {before}");
    }
}
