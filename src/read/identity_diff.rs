//! `cohort identity diff`: what the next run would change in the identity graph, before it
//! runs. The events and identity stages run as the next run would (new source files,
//! identity.yaml and repairs.yaml as they are now), nothing is published, and their
//! `identities` are compared with the last published run's: identifiers that move to another
//! profile, arrive, or leave every profile, and the profiles that merge or split.

use std::collections::{BTreeMap, BTreeSet};

use chrono::Utc;
use datafusion::arrow::array::Array;
use datafusion::common::JoinType;
use datafusion::functions::expr_fn::concat;
use datafusion::logical_expr::{Operator, binary_expr};
use datafusion::prelude::{DataFrame, Expr, col, lit};

use crate::error::{EngineError, EngineResult};
use crate::identity::text_column;
use crate::run::tables::{published, stage};
use crate::run::{RunOptions, evaluate_identity, new_record, output_location};
use crate::spec::Space;

/// How many examples of each kind of change a diff keeps.
pub const EXAMPLES: usize = 10;

/// One identifier whose profile changes: `None` is no profile.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Moved {
    pub identifier: String,
    pub from: Option<String>,
    pub to: Option<String>,
}

/// A profile of one run whose identifiers are spread over several of the other.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Spread {
    pub profile_id: String,
    /// The other run's profiles (`None`: no profile) and how many of its identifiers each has.
    pub parts: Vec<(Option<String>, u64)>,
}

/// What `cohort identity diff` prints.
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct IdentityDiff {
    /// The published run compared with.
    pub run_id: String,
    pub identifiers_before: u64,
    pub identifiers_after: u64,
    /// Identifiers whose profile changes (counts; examples below).
    pub moved: u64,
    pub arrived: u64,
    pub left: u64,
    pub examples: Vec<Moved>,
    /// Profiles of the next run that gather identifiers of several published ones.
    pub merged: u64,
    pub merged_examples: Vec<Spread>,
    /// Published profiles whose identifiers the next run spreads over several (or none).
    pub split: u64,
    pub split_examples: Vec<Spread>,
}

impl IdentityDiff {
    pub fn is_empty(&self) -> bool {
        self.moved == 0 && self.arrived == 0 && self.left == 0
    }
}

/// `(id, profile_id)` of a table with `id_type`, `id_value` and `profile_id`.
fn keyed(df: DataFrame, p: &str) -> EngineResult<DataFrame> {
    Ok(df.select(vec![
        concat(vec![text("id_type"), lit(":"), text("id_value")]).alias(format!("{p}_id")),
        text("profile_id").alias(format!("{p}_profile")),
    ])?)
}

fn text(c: &str) -> Expr {
    datafusion::logical_expr::cast(col(c), datafusion::arrow::datatypes::DataType::Utf8)
}

/// Runs the events and identity stages of `space` as its next run would and compares them with
/// its last published run.
pub async fn identity_diff(space: &Space, opts: &RunOptions) -> EngineResult<IdentityDiff> {
    let out = output_location(space)?;
    let Some(m) = crate::store::manifest::read(&out).await? else {
        return Err(EngineError::NotFound(format!(
            "`{}` has no published run to compare with: `cohort run` publishes one",
            space.name
        )));
    };
    let mut rec = new_record(space, opts, "identity diff", Utc::now());
    let ev = evaluate_identity(space, opts, &out, &mut rec).await?;
    let ctx = &ev.ctx;
    let before = match super::published_table(space, published::IDENTITIES).await? {
        Some(t) => ctx.read_table(t)?,
        None => {
            return Err(EngineError::NotFound(
                "the last run published no identities".into(),
            ));
        }
    };
    let before = keyed(before, "b")?;
    let after = keyed(ctx.table(stage::ID_IDENTITIES).await?, "a")?;
    let mut diff = IdentityDiff {
        run_id: m.run_id.clone(),
        identifiers_before: before.clone().count().await? as u64,
        identifiers_after: after.clone().count().await? as u64,
        ..Default::default()
    };
    // Every identifier with its profile before and after (either may be missing).
    let both = before.join(after, JoinType::Full, &["b_id"], &["a_id"], None)?;
    let differ = |a: &str, b: &str| binary_expr(col(a), Operator::IsDistinctFrom, col(b));
    let changed = both.filter(differ("b_profile", "a_profile").or(differ("b_id", "a_id")))?;
    let id = datafusion::prelude::coalesce(vec![col("a_id"), col("b_id")]);
    let rows = changed
        .select(vec![id.alias("id"), col("b_profile"), col("a_profile")])?
        .sort(vec![col("id").sort(true, true)])?
        .collect()
        .await?;
    // How many identifiers go from each published profile (none: they arrive) to each next
    // profile (none: they leave every profile).
    let mut flows: BTreeMap<(Option<String>, Option<String>), u64> = BTreeMap::new();
    for b in &rows {
        let (ids, from, to) = (
            text_column(b.column(0))?,
            text_column(b.column(1))?,
            text_column(b.column(2))?,
        );
        for i in 0..b.num_rows() {
            let from = (!from.is_null(i)).then(|| from.value(i).to_string());
            let to = (!to.is_null(i)).then(|| to.value(i).to_string());
            match (&from, &to) {
                (Some(_), Some(_)) => diff.moved += 1,
                (None, Some(_)) => diff.arrived += 1,
                (Some(_), None) => diff.left += 1,
                (None, None) => continue,
            }
            *flows.entry((from.clone(), to.clone())).or_default() += 1;
            if diff.examples.len() < EXAMPLES {
                diff.examples.push(Moved {
                    identifier: ids.value(i).to_string(),
                    from,
                    to,
                });
            }
        }
    }
    // The identifiers that stay where they were, in the profiles some identifiers leave or
    // join.
    let touched: BTreeSet<String> = flows
        .keys()
        .flat_map(|(f, t)| f.iter().chain(t.iter()).cloned())
        .collect();
    for (p, n) in staying_counts(ctx, &touched).await? {
        if n > 0 {
            flows.insert((Some(p.clone()), Some(p)), n);
        }
    }
    // A published profile whose identifiers go to two or more places splits; a next profile
    // whose identifiers come from two or more published profiles merges them.
    let mut outgoing: BTreeMap<&String, Vec<(Option<String>, u64)>> = BTreeMap::new();
    let mut incoming: BTreeMap<&String, Vec<(Option<String>, u64)>> = BTreeMap::new();
    for ((from, to), n) in &flows {
        if let Some(f) = from {
            outgoing.entry(f).or_default().push((to.clone(), *n));
        }
        if let (Some(t), Some(_)) = (to, from) {
            incoming.entry(t).or_default().push((from.clone(), *n));
        }
    }
    let spreads = |m: BTreeMap<&String, Vec<(Option<String>, u64)>>, count: &mut u64| {
        let mut examples = Vec::new();
        for (p, parts) in m.into_iter().filter(|(_, parts)| parts.len() > 1) {
            *count += 1;
            if examples.len() < EXAMPLES {
                examples.push(Spread {
                    profile_id: p.clone(),
                    parts,
                });
            }
        }
        examples
    };
    diff.split_examples = spreads(outgoing, &mut diff.split);
    diff.merged_examples = spreads(incoming, &mut diff.merged);
    Ok(diff)
}

/// For each of the profiles `names`: how many identifiers it has both in the published run
/// and after.
async fn staying_counts(
    ctx: &datafusion::prelude::SessionContext,
    names: &BTreeSet<String>,
) -> EngineResult<BTreeMap<String, u64>> {
    let mut out = BTreeMap::new();
    if names.is_empty() {
        return Ok(out);
    }
    let list: Vec<Expr> = names.iter().map(|p| lit(p.as_str())).collect();
    // Identifiers each of these profiles has both in the published run and after.
    let before = ctx
        .table(stage::PREV_IDENTITIES)
        .await?
        .select(vec![
            text("profile_id").alias("profile_id"),
            text("id_type").alias("id_type"),
            text("id_value").alias("id_value"),
        ])?
        .filter(col("profile_id").in_list(list.clone(), false))?;
    let after = ctx
        .table(stage::ID_IDENTITIES)
        .await?
        .select(vec![
            text("profile_id").alias("n_profile"),
            text("id_type").alias("n_type"),
            text("id_value").alias("n_value"),
        ])?
        .filter(col("n_profile").in_list(list, false))?;
    let rows = before
        .join(
            after,
            JoinType::Inner,
            &["profile_id", "id_type", "id_value"],
            &["n_profile", "n_type", "n_value"],
            None,
        )?
        .aggregate(
            vec![col("profile_id")],
            vec![datafusion::functions_aggregate::expr_fn::count(lit(1)).alias("n")],
        )?
        .collect()
        .await?;
    for b in &rows {
        let p = text_column(b.column(0))?;
        let n = b
            .column(1)
            .as_any()
            .downcast_ref::<datafusion::arrow::array::Int64Array>()
            .expect("a count");
        for i in 0..b.num_rows() {
            out.insert(p.value(i).to_string(), n.value(i) as u64);
        }
    }
    Ok(out)
}
