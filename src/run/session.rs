//! The DataFusion session of a run: memory limit with spilling, Delta's planner, Cohort's
//! functions, and the object stores of the space's sources and output.

use std::path::PathBuf;
use std::sync::Arc;

use datafusion::config::SpillCompression;
use datafusion::execution::runtime_env::RuntimeEnvBuilder;
use datafusion::prelude::SessionContext;
use deltalake::delta_datafusion::DeltaSessionContext;

use crate::error::EngineResult;
use crate::functions;
use crate::store::objects::Location;

/// How a session may use the machine.
#[derive(Clone, Debug, Default)]
pub struct SessionOptions {
    /// Bytes the run may hold (`--memory-limit`); DataFusion's pool gets [`pool_size`] of
    /// them, beyond which operators spill to disk. None is unbounded.
    pub memory_limit: Option<usize>,
    /// Where spill files go; None is the OS temp dir.
    pub spill_dir: Option<PathBuf>,
}

/// The share of a memory limit that DataFusion's pool gets, in quarters. The pool counts what
/// sorts, aggregates and joins reserve; a run also holds memory the pool does not see: the
/// identity stage's in-memory tables, SQL traits' rows, Parquet and Delta writers, batches in
/// flight between operators, the allocator's free pages. At 100 M events under 6 GB that
/// was 2.5 to 3.3 GB beside a full pool (docs/BENCHMARKS.md), so the pool gets three
/// quarters of the limit and the rest is left for it (Spark gives its execution and storage
/// pool 60 % of the heap for the same reason).
const POOL_QUARTERS: usize = 3;

/// DataFusion's pool under a memory limit of `limit` bytes.
pub fn pool_size(limit: usize) -> usize {
    limit / 4 * POOL_QUARTERS
}

/// A session for one run.
pub fn new_session(opts: &SessionOptions) -> EngineResult<SessionContext> {
    let mut rt = RuntimeEnvBuilder::new();
    if let Some(limit) = opts.memory_limit {
        let pool = super::memory::PeakPool::new(pool_size(limit));
        rt = rt.with_memory_pool(Arc::new(pool));
    }
    if let Some(dir) = &opts.spill_dir {
        std::fs::create_dir_all(dir).map_err(|cause| crate::error::EngineError::Io {
            what: format!("cannot create the spill folder {}", dir.display()),
            cause,
        })?;
        rt = rt.with_temp_file_path(dir.clone());
    }
    let runtime = rt.build_arc()?;
    let ctx = DeltaSessionContext::with_runtime_env(runtime).into_inner();
    {
        let state = ctx.state_ref();
        let mut state = state.write();
        let options = state.config_mut().options_mut();
        // Plain Utf8 strings: Cohort's functions and the Delta writer expect them.
        options.execution.parquet.schema_force_view_types = false;
        // Warehouse layouts have thousands of small files (a folder per table and day);
        // reading every footer for statistics at each plan costs more than it saves.
        options.execution.collect_statistics = false;
        // Each sort sets aside this much to merge its spill files; DataFusion's 10 MB is too
        // much for every sort of a plan under a small limit ("Not enough memory to continue
        // external sort").
        if let Some(limit) = opts.memory_limit {
            let share = (pool_size(limit) / 64).clamp(256 << 10, 10 << 20);
            options.execution.sort_spill_reservation_bytes = share;
            // Spill files are Arrow IPC, uncompressed by default; at 100 M events the sorts
            // and aggregations of a run spill GBs.
            options.execution.spill_compression = SpillCompression::Lz4Frame;
        }
    }
    for f in functions::all() {
        ctx.register_udf(f.as_ref().clone());
    }
    for f in crate::functions::aggregates::all() {
        ctx.register_udaf(f.as_ref().clone());
    }
    Ok(ctx)
}

/// Makes `loc`'s object store reachable from plans that read its URLs.
pub fn register_store(ctx: &SessionContext, loc: &Location) -> EngineResult<()> {
    if loc.url.scheme() == "file" {
        return Ok(()); // DataFusion reads local files already
    }
    ctx.register_object_store(&loc.store_url(), loc.store.clone());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::execution::memory_pool::MemoryLimit;

    #[test]
    fn the_pool_gets_three_quarters_of_the_limit_and_keeps_its_peak() {
        let opts = SessionOptions {
            memory_limit: Some(400 << 20),
            spill_dir: None,
        };
        let ctx = new_session(&opts).unwrap();
        let pool = ctx.runtime_env().memory_pool.clone();
        assert!(matches!(pool.memory_limit(), MemoryLimit::Finite(n) if n == 300 << 20));
        assert!(
            pool.downcast_ref::<super::super::memory::PeakPool>()
                .is_some()
        );
        let unlimited = new_session(&SessionOptions::default()).unwrap();
        let pool = unlimited.runtime_env().memory_pool.clone();
        assert!(
            pool.downcast_ref::<super::super::memory::PeakPool>()
                .is_none()
        );
    }
}
