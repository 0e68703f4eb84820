//! Joins whose build side does not fit the memory limit, run one bucket of keys at a time.
//!
//! DataFusion's hash join holds its whole build side in memory and cannot spill (see
//! ../shared/NOTES.md). The run's largest joins put each event next to its profile: the build
//! side is every (message id, profile id) pair, some 5 GB at 100 M events. Under a memory
//! limit such a join is split by a hash of its key into `k` buckets; bucket `b` joins only the
//! rows of both sides whose key hashes to `b`, and is written to the scratch folder before the
//! next bucket starts, so only one bucket's build side is in memory at a time. Parquet filter
//! pushdown is on while the buckets run, so that a scan the bucket filter reaches decodes the
//! key column and only its own rows of the other (wide) columns; how many scans it reaches
//! was not measured.
//!
//! [`materialize_partitioned`] writes a table once into `k` folders by the same buckets, for
//! queries that then run one bucket at a time (the identity stage's per-event ones), or for a
//! Delta write in parts of days (see [`write_parts`]).
//!
//! Without a memory limit, or when the build side fits, `k` is 1 and the join runs as is.

use std::path::Path;
use std::sync::Arc;

use datafusion::common::{DFSchemaRef, Result};
use datafusion::logical_expr::when;
use datafusion::logical_expr::{LogicalPlan, LogicalPlanBuilder};
use datafusion::prelude::{Expr, SessionContext, col, lit};

use super::sink;
use crate::error::EngineResult;
use crate::functions::id_node;

/// How a run under a memory limit splits its largest work, for the publish.
#[derive(Clone, Copy)]
pub struct Layout<'a> {
    /// The run's scratch folder.
    pub scratch: &'a Path,
    /// Buckets of message ids for event-to-profile joins ([`buckets`]).
    pub join_buckets: u32,
    /// Parts of days for Delta writes partitioned by day ([`write_parts`]).
    pub write_parts: u32,
}

/// Bytes a build-side row of an event-to-profile join takes in a hash join (two ids of some
/// 36 bytes, their offsets and the hash table's entry), with room to spare.
const BUILD_ROW_BYTES: u64 = 160;

/// The share of the memory limit one bucket's build side may use: the rest is for the
/// probe side's scan, the writer and whatever else the session holds.
const BUILD_SHARE: u64 = 4;

/// At most this many buckets (each one scans the key column of both sides once).
const MAX_BUCKETS: u64 = 64;

/// Bytes a row of a table partitioned by day takes in delta-rs's writer while its day's file
/// is open (its share of the row group in progress and of the upload buffer): 21 GB over 365
/// days of 274k events each, measured at 100 M events, is some 210; with room to spare.
const WRITE_ROW_BYTES: u64 = 256;

/// How many buckets a join with `build_rows` build-side rows needs under `memory_limit`
/// bytes (1 without a limit).
pub fn buckets(memory_limit: Option<usize>, build_rows: u64) -> u32 {
    parts(memory_limit, build_rows, BUILD_ROW_BYTES)
}

/// In how many parts of days a table of `rows` rows partitioned by day is written under
/// `memory_limit` (1 without a limit). delta-rs keeps a Parquet writer open for every day of
/// a write until the write ends, each holding its day's row group and an upload buffer: at
/// 100 M events, the 365 days of one write took more than 20 GB. Written a part of the days
/// at a time, only that part's writers are open.
pub fn write_parts(memory_limit: Option<usize>, rows: u64) -> u32 {
    parts(memory_limit, rows, WRITE_ROW_BYTES)
}

fn parts(memory_limit: Option<usize>, rows: u64, row_bytes: u64) -> u32 {
    let Some(limit) = memory_limit else {
        return 1;
    };
    let budget = (limit as u64 / BUILD_SHARE).max(1);
    let need = rows.saturating_mul(row_bytes);
    need.div_ceil(budget).clamp(1, MAX_BUCKETS) as u32
}

/// Whether `key`'s row belongs to bucket `b` of `k` (rows without a key go to bucket 0).
pub fn in_bucket(key: Expr, b: u32, k: u32) -> Expr {
    let mine = code_bucket(key.clone(), k).eq(lit(i64::from(b)));
    match b {
        0 => mine.or(key.is_null()),
        _ => mine,
    }
}

/// `key`'s bucket of `k` (null for a null key).
fn code_bucket(key: Expr, k: u32) -> Expr {
    // A stable 64-bit code of the key (the identity stage's); `%` keeps its sign.
    let k64 = lit(i64::from(k));
    let code = id_node(lit("bucket"), key);
    ((code % k64.clone()) + k64.clone()) % k64
}

/// The bucket column of [`materialize_partitioned`].
const BUCKET: &str = "bucket";

/// `plan` with the [`BUCKET`] column: the bucket of `key` of `k` (0 for a null key).
fn with_bucket(plan: LogicalPlan, key: &str, k: u32) -> Result<LogicalPlan> {
    let bucket = when(col(key).is_null(), lit(0i64)).otherwise(code_bucket(col(key), k))?;
    let mut columns: Vec<Expr> = plan
        .schema()
        .columns()
        .into_iter()
        .map(Expr::Column)
        .collect();
    columns.push(bucket.alias(BUCKET));
    LogicalPlanBuilder::from(plan).project(columns)?.build()
}

/// A scan of all of `dir` (`rows` rows of `schema`) and one of each of its `k` bucket folders.
async fn read_buckets(
    ctx: &SessionContext,
    dir: &Path,
    rows: u64,
    schema: DFSchemaRef,
    k: u32,
) -> EngineResult<(LogicalPlan, Vec<LogicalPlan>)> {
    let whole = sink::read_back(ctx, dir, rows, Arc::clone(&schema)).await?;
    let mut parts = Vec::with_capacity(k as usize);
    for b in 0..k {
        let part = dir.join(format!("{BUCKET}={b}"));
        // A bucket no row fell in has no folder (and a folder has rows).
        let rows = u64::from(part.is_dir());
        parts.push(sink::read_back(ctx, &part, rows, Arc::clone(&schema)).await?);
    }
    Ok((whole, parts))
}

/// Writes `plan` to `dir` once, split into `k` subfolders by the bucket of `key` (as
/// [`in_bucket`] assigns them), and returns a scan of all of it and one of each bucket.
pub async fn materialize_partitioned(
    ctx: &SessionContext,
    plan: LogicalPlan,
    key: &str,
    k: u32,
    dir: &Path,
) -> EngineResult<(LogicalPlan, Vec<LogicalPlan>)> {
    let schema = Arc::clone(plan.schema());
    let rows = sink::write_partitioned(ctx, with_bucket(plan, key, k)?, dir, BUCKET).await?;
    read_buckets(ctx, dir, rows, schema, k).await
}

/// `join(build, probe)` written to `dir` one bucket at a time and read back; `build_key` and
/// `probe_key` are the columns (of `build` and `probe`) the join matches. With `k` = 1 the
/// join is written whole.
pub async fn materialize_join(
    ctx: &SessionContext,
    build: (LogicalPlan, &str),
    probe: (LogicalPlan, &str),
    join: impl Fn(LogicalPlan, LogicalPlan) -> Result<LogicalPlan>,
    k: u32,
    dir: &Path,
) -> EngineResult<LogicalPlan> {
    let split = materialize_join_split(ctx, build, probe, join, k, dir, None);
    Ok(split.await?.0)
}

/// [`materialize_join`], its rows also split by the bucket of their `split.0` of `split.1`
/// (as [`materialize_partitioned`] splits them) as they are written: returns a scan of all of
/// it and one of each of those buckets (the whole scan alone without `split`).
pub async fn materialize_join_split(
    ctx: &SessionContext,
    (build, build_key): (LogicalPlan, &str),
    (probe, probe_key): (LogicalPlan, &str),
    join: impl Fn(LogicalPlan, LogicalPlan) -> Result<LogicalPlan>,
    k: u32,
    dir: &Path,
    split: Option<(&str, u32)>,
) -> EngineResult<(LogicalPlan, Vec<LogicalPlan>)> {
    let mut schema = None;
    let mut rows = 0;
    let pushdown = set_pushdown(ctx, k > 1);
    let written = async {
        for b in 0..k.max(1) {
            let part = |p: &LogicalPlan, key: &str| -> Result<LogicalPlan> {
                match k > 1 {
                    true => LogicalPlanBuilder::from(p.clone())
                        .filter(in_bucket(col(key), b, k))?
                        .build(),
                    false => Ok(p.clone()),
                }
            };
            let plan = join(part(&build, build_key)?, part(&probe, probe_key)?)?;
            schema.get_or_insert_with(|| plan.schema().clone());
            rows += match split {
                Some((key, g)) => {
                    let plan = with_bucket(plan, key, g)?;
                    sink::write_partitioned(ctx, plan, dir, BUCKET).await?
                }
                None => sink::write_parquet(ctx, plan, dir).await?,
            };
        }
        EngineResult::Ok(())
    }
    .await;
    set_pushdown(ctx, pushdown);
    written?;
    let schema = schema.unwrap_or_else(|| unreachable!("at least one bucket was planned"));
    match split {
        Some((_, g)) => read_buckets(ctx, dir, rows, schema, g).await,
        None => {
            let whole = sink::read_back(ctx, dir, rows, schema).await?;
            Ok((whole.clone(), vec![whole]))
        }
    }
}

/// Sets Parquet filter pushdown (late materialization) in `ctx`; returns what it was.
fn set_pushdown(ctx: &SessionContext, on: bool) -> bool {
    let state = ctx.state_ref();
    let mut state = state.write();
    let parquet = &mut state.config_mut().options_mut().execution.parquet;
    std::mem::replace(&mut parquet.pushdown_filters, on)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use datafusion::arrow::array::{RecordBatch, StringArray};
    use datafusion::arrow::datatypes::{DataType, Field, Schema};
    use datafusion::common::JoinType;

    use super::*;

    #[test]
    fn bucket_counts() {
        assert_eq!(buckets(None, 1 << 40), 1);
        // 10 M pairs under 1 GB: 1.6 GB of build side in quarters of 250 MB.
        assert_eq!(buckets(Some(1_000_000_000), 10_000_000), 7);
        assert_eq!(buckets(Some(6_000_000_000), 100_000_000), 11);
        assert_eq!(buckets(Some(6_000_000_000), 1_000), 1);
        assert_eq!(buckets(Some(1), u64::MAX), 64);
        // 100 M events' days under 6 GB: parts of some 21 days.
        assert_eq!(write_parts(Some(6_000_000_000), 100_000_000), 18);
        assert_eq!(write_parts(None, 100_000_000), 1);
        assert_eq!(write_parts(Some(6_000_000_000), 1_000_000), 1);
    }

    fn table(
        ctx: &SessionContext,
        cols: [&str; 2],
        rows: &[(Option<String>, String)],
    ) -> LogicalPlan {
        let schema = Arc::new(Schema::new(vec![
            Field::new(cols[0], DataType::Utf8, true),
            Field::new(cols[1], DataType::Utf8, false),
        ]));
        let a: StringArray = rows.iter().map(|r| r.0.clone()).collect();
        let b: StringArray = rows.iter().map(|r| Some(r.1.clone())).collect();
        let batch = RecordBatch::try_new(schema, vec![Arc::new(a), Arc::new(b)]).unwrap();
        ctx.read_batch(batch).unwrap().into_unoptimized_plan()
    }

    async fn sorted_rows(ctx: &SessionContext, plan: LogicalPlan) -> Vec<String> {
        let batches = ctx
            .execute_logical_plan(plan)
            .await
            .unwrap()
            .collect()
            .await
            .unwrap();
        let text = datafusion::arrow::util::pretty::pretty_format_batches(&batches).unwrap();
        let mut rows: Vec<String> = text.to_string().lines().map(str::to_string).collect();
        rows.sort();
        rows
    }

    /// Every bucket count gives the rows of the join run whole, for inner and outer joins,
    /// keys that match nothing and rows without a key included.
    #[tokio::test]
    async fn buckets_give_the_whole_join() {
        let ctx = crate::run::session::new_session(&Default::default()).unwrap();
        let key = |i: usize| (i % 7 != 3).then(|| format!("m{}", i % 500));
        let build: Vec<_> = (0..400).map(|i| (key(i), format!("p{}", i % 40))).collect();
        let probe: Vec<_> = (0..900)
            .map(|i| (key(i * 3 + 1), format!("e{i}")))
            .collect();
        let build = table(&ctx, ["message_id", "profile_id"], &build);
        let probe = table(&ctx, ["ev_message_id", "payload"], &probe);
        for join_type in [JoinType::Inner, JoinType::Right, JoinType::Full] {
            let join = |b: LogicalPlan, p: LogicalPlan| {
                LogicalPlanBuilder::from(b)
                    .join(
                        p,
                        join_type,
                        (vec!["message_id"], vec!["ev_message_id"]),
                        None,
                    )?
                    .build()
            };
            let whole = sorted_rows(&ctx, join(build.clone(), probe.clone()).unwrap()).await;
            assert!(whole.len() > 500, "the join matched rows");
            for k in [1, 2, 5] {
                let dir = tempfile::tempdir().unwrap();
                let plan = materialize_join(
                    &ctx,
                    (build.clone(), "message_id"),
                    (probe.clone(), "ev_message_id"),
                    join,
                    k,
                    dir.path(),
                )
                .await
                .unwrap();
                let got = sorted_rows(&ctx, plan).await;
                assert_eq!(got, whole, "{join_type} in {k} buckets");
            }
        }
        // Pushdown is back to what it was.
        assert!(
            !ctx.state()
                .config()
                .options()
                .execution
                .parquet
                .pushdown_filters
        );
    }
}
