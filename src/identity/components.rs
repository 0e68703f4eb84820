//! Connected components of an edge list by randomized contraction, as DataFusion queries driven
//! from Rust, each round materialized in memory.
//!
//! A round gives every node a representative (the node with the smallest reseeded hash among it
//! and its neighbours, one GROUP BY) and moves every edge onto representatives (two joins),
//! dropping edges that fall inside one representative. Components that have contracted to a
//! single node leave the edge list, so rounds shrink fast; the expected number of rounds is
//! logarithmic, not the graph's diameter. When no edge is left, labels flow back through the
//! rounds' representative tables, newest first.
//!
//! The big rounds are hash work over tens of millions of random 64-bit keys, where the cost is
//! cache misses, not arithmetic. So each round runs with about one partition per 400 000 edges
//! (up to 64, never fewer than the session's own): every partition's hash table is small enough
//! to stay near the cache, and partial aggregation, which cannot reduce groups that are almost
//! all distinct, is skipped at once. On the 25 M-edge benchmark this halves the first round.

use std::sync::{Arc, LazyLock};
use std::time::Instant;

use datafusion::arrow::array::{Array, AsArray, Int64Builder, RecordBatch};
use datafusion::arrow::datatypes::{DataType, Field, Int64Type, Schema, SchemaRef};
use datafusion::catalog::MemTable;
use datafusion::common::{Result, exec_err};
use datafusion::execution::SessionState;
use datafusion::logical_expr::{
    ColumnarValue, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, Volatility,
};
use datafusion::prelude::{DataFrame, SessionContext};

const ROUND_REPS: &str = include_str!("../../queries/identity/round_reps.sql");
const ROUND_EDGES: &str = include_str!("../../queries/identity/round_edges.sql");
const ROUND_LABELS: &str = include_str!("../../queries/identity/round_labels.sql");

/// Edges per partition of a round's queries.
const EDGES_PER_PARTITION: u64 = 400_000;
/// Most partitions a round uses.
const MAX_PARTITIONS: usize = 64;

/// Gives up after this many rounds (the expected count is logarithmic in the node count).
const MAX_ROUNDS: usize = 200;

/// What the contraction did.
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct RoundStats {
    pub rounds: usize,
    /// Edges at the start of each round.
    pub edges_per_round: Vec<u64>,
    pub seconds: f64,
}

/// `(a int64, b int64)`.
pub fn edge_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("a", DataType::Int64, false),
        Field::new("b", DataType::Int64, false),
    ]))
}

/// Collects `df` and keeps its partitions, as an in-memory table.
pub async fn materialize(df: DataFrame) -> Result<(Arc<MemTable>, u64)> {
    let schema = Arc::new(df.schema().as_arrow().clone());
    let parts = df.collect_partitioned().await?;
    let rows = parts.iter().flatten().map(|b| b.num_rows() as u64).sum();
    Ok((Arc::new(MemTable::try_new(schema, parts)?), rows))
}

fn replace_table(ctx: &SessionContext, name: &str, t: Arc<MemTable>) -> Result<()> {
    ctx.deregister_table(name)?;
    ctx.register_table(name, t)?;
    Ok(())
}

/// The components of the graph in `edges` (columns `a`, `b`, no self loops): a table
/// `(node, label)` for every node that has an edge; nodes of one component share a label
/// (one of them). `seed` makes the rounds' hashes reproducible.
pub async fn connected_components(
    ctx: &SessionContext,
    edges: Arc<MemTable>,
    seed: u64,
) -> Result<(Arc<MemTable>, RoundStats)> {
    register_functions(ctx);
    let started = Instant::now();
    let mut stats = RoundStats::default();
    replace_table(ctx, "cc_edges", edges)?;
    let mut reps_per_round: Vec<Arc<MemTable>> = Vec::new();
    let mut edge_count = count(ctx, "cc_edges").await?;
    let mut round_seed = seed;
    while edge_count > 0 {
        if reps_per_round.len() >= MAX_ROUNDS {
            return exec_err!("connected components did not converge in {MAX_ROUNDS} rounds");
        }
        stats.edges_per_round.push(edge_count);
        round_seed = splitmix(round_seed);
        // i64 literal of the seed's bits.
        let sql = ROUND_REPS.replace("{seed}", &(round_seed as i64).to_string());
        let state = round_state(ctx, edge_count);
        let t = Instant::now();
        let (reps, nodes) = materialize(query(&state, &sql).await?).await?;
        let reps_secs = t.elapsed().as_secs_f64();
        replace_table(ctx, "cc_reps", reps.clone())?;
        let t = Instant::now();
        let (next, n) = materialize(query(&state, ROUND_EDGES).await?).await?;
        tracing::debug!(
            round = reps_per_round.len() + 1,
            edges = edge_count,
            nodes,
            partitions = state.config().target_partitions(),
            reps_secs,
            edges_secs = t.elapsed().as_secs_f64(),
            "contraction round"
        );
        replace_table(ctx, "cc_edges", next)?;
        reps_per_round.push(reps);
        edge_count = n;
    }
    stats.rounds = reps_per_round.len();
    // Labels flow back from the last round to the first.
    let empty = Arc::new(MemTable::try_new(
        label_schema(),
        vec![vec![RecordBatch::new_empty(label_schema())]],
    )?);
    let mut labels = empty;
    for (reps, edges) in reps_per_round
        .into_iter()
        .zip(stats.edges_per_round.iter())
        .rev()
    {
        replace_table(ctx, "cc_reps", reps)?;
        replace_table(ctx, "cc_labels", labels)?;
        let state = round_state(ctx, *edges);
        labels = materialize(query(&state, ROUND_LABELS).await?).await?.0;
    }
    for t in ["cc_edges", "cc_reps", "cc_labels"] {
        ctx.deregister_table(t)?;
    }
    stats.seconds = started.elapsed().as_secs_f64();
    Ok((labels, stats))
}

/// The session's state, with partitions sized for a round of `edges` edges.
fn round_state(ctx: &SessionContext, edges: u64) -> SessionState {
    let mut state = ctx.state();
    let options = state.config_mut().options_mut();
    let own = options.execution.target_partitions;
    let wanted = (edges / EDGES_PER_PARTITION) as usize;
    options.execution.target_partitions = wanted.clamp(own, MAX_PARTITIONS.max(own));
    // Almost every node is its own group: probing whether partial aggregation pays is waste.
    options
        .execution
        .skip_partial_aggregation_probe_rows_threshold = 0;
    state
}

/// `sql` planned in `state` (whose catalog is the session's).
async fn query(state: &SessionState, sql: &str) -> Result<DataFrame> {
    let plan = state.create_logical_plan(sql).await?;
    Ok(DataFrame::new(state.clone(), plan))
}

/// `(node int64, label int64)`.
pub fn label_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("node", DataType::Int64, false),
        Field::new("label", DataType::Int64, true),
    ]))
}

async fn count(ctx: &SessionContext, table: &str) -> Result<u64> {
    Ok(ctx.table(table).await?.count().await? as u64)
}

fn splitmix(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

const M1: u64 = 0xbf58_476d_1ce4_e5b9;
const M2: u64 = 0x94d0_49bb_1331_11eb;

/// The inverse of an odd number modulo 2^64 (Newton's iteration).
const fn inverse(a: u64) -> u64 {
    let mut x = a;
    let mut i = 0;
    while i < 6 {
        x = x.wrapping_mul(2u64.wrapping_sub(a.wrapping_mul(x)));
        i += 1;
    }
    x
}
const M1_INV: u64 = inverse(M1);
const M2_INV: u64 = inverse(M2);

fn unxorshift(y: u64, s: u32) -> u64 {
    let mut x = y;
    let mut i = s;
    while i < 64 {
        x = y ^ (x >> s);
        i += s;
    }
    x
}

/// A bijection of 64-bit values, different for every seed.
pub fn mix(x: u64, seed: u64) -> u64 {
    let mut z = x ^ seed;
    z = (z ^ (z >> 30)).wrapping_mul(M1);
    z = (z ^ (z >> 27)).wrapping_mul(M2);
    z ^ (z >> 31)
}

/// The inverse of [`mix`].
pub fn unmix(h: u64, seed: u64) -> u64 {
    let mut z = unxorshift(h, 31);
    z = unxorshift(z.wrapping_mul(M2_INV), 27);
    z = unxorshift(z.wrapping_mul(M1_INV), 30);
    z ^ seed
}

static MIX: LazyLock<Arc<ScalarUDF>> =
    LazyLock::new(|| Arc::new(ScalarUDF::from(Mix::new("cohort_mix", false))));
static UNMIX: LazyLock<Arc<ScalarUDF>> =
    LazyLock::new(|| Arc::new(ScalarUDF::from(Mix::new("cohort_unmix", true))));

/// Registers `cohort_mix(x, seed)` and `cohort_unmix(h, seed)` on `ctx`.
pub fn register_functions(ctx: &SessionContext) {
    ctx.register_udf(MIX.as_ref().clone());
    ctx.register_udf(UNMIX.as_ref().clone());
}

#[derive(Debug, PartialEq, Eq, Hash)]
struct Mix {
    name: &'static str,
    inverse: bool,
    signature: Signature,
}

impl Mix {
    fn new(name: &'static str, inverse: bool) -> Self {
        Self {
            name,
            inverse,
            signature: Signature::exact(
                vec![DataType::Int64, DataType::Int64],
                Volatility::Immutable,
            ),
        }
    }
}

impl ScalarUDFImpl for Mix {
    fn name(&self) -> &str {
        self.name
    }
    fn signature(&self) -> &Signature {
        &self.signature
    }
    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(DataType::Int64)
    }
    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let n = args.number_rows;
        let seed = match &args.args[1] {
            ColumnarValue::Scalar(s) => match s {
                datafusion::common::ScalarValue::Int64(Some(v)) => *v as u64,
                _ => return exec_err!("{} needs a literal seed", self.name),
            },
            ColumnarValue::Array(_) => return exec_err!("{} needs a literal seed", self.name),
        };
        let arr = args.args[0].to_array(n)?;
        let xs = arr.as_primitive::<Int64Type>();
        let f = if self.inverse { unmix } else { mix };
        if xs.null_count() == 0 {
            let out: datafusion::arrow::array::Int64Array = xs
                .values()
                .iter()
                .map(|&x| f(x as u64, seed) as i64)
                .collect();
            return Ok(ColumnarValue::Array(Arc::new(out)));
        }
        let mut out = Int64Builder::with_capacity(n);
        for i in 0..n {
            if xs.is_null(i) {
                out.append_null();
            } else {
                out.append_value(f(xs.value(i) as u64, seed) as i64);
            }
        }
        Ok(ColumnarValue::Array(Arc::new(out.finish())))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mix_is_a_bijection() {
        for seed in [0u64, 1, 0xdead_beef, u64::MAX] {
            for x in [0u64, 1, 2, 42, u64::MAX, 1 << 63, 0x1234_5678_9abc_def0] {
                assert_eq!(unmix(mix(x, seed), seed), x);
            }
        }
        assert_ne!(mix(1, 1), mix(1, 2));
    }
}
