//! The published `identity_repairs` table: each entry of repairs.yaml, with what it did in
//! the run (how many identifier occurrences it set aside, the profiles its identifiers belong
//! to now, and whether it named anything known), so that a repair is reviewed after a run as
//! it was before it.
//!
//! The previous run's rows are also what the next run compares repairs.yaml with: the
//! identifiers of a repair added, removed or changed since are resolved again, and nothing
//! else is (see [`crate::run::stages::identity_affected`]).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use datafusion::arrow::array::{
    Array, ArrayRef, AsArray, Int64Array, RecordBatch, StringArray, StringBuilder,
};
use datafusion::arrow::datatypes::{DataType, Field, Int64Type, Schema, SchemaRef};
use datafusion::prelude::{DataFrame, SessionContext, col, lit};

use super::tables::{published, stage};
use crate::error::EngineResult;
use crate::functions::node_code;
use crate::identity::text_column;
use crate::plan::repairs::{RULE_BLOCK, RULE_SPLIT, RULE_UNLINK, Repair};
use crate::spec::{RepairKind, split_identifier};
use crate::store::{delta, manifest, objects};

/// What a repair did, in the `status` column.
pub const APPLIED: &str = "applied";
/// A block, unlink or split that set nothing aside: its identifier shares no event.
pub const NOTHING_TO_DO: &str = "nothing_to_do";
/// A merge whose identifiers are on two profiles after the run (a limit kept them apart).
pub const REFUSED: &str = "refused";
/// An identifier the repair names is in no event of the run.
pub const UNKNOWN: &str = "unknown_identifier";

pub fn schema() -> SchemaRef {
    let text = |n: &str, null: bool| Field::new(n, DataType::Utf8, null);
    Arc::new(Schema::new(vec![
        text("run_id", false),
        text("kind", false),
        text("identifier", false),
        text("other_identifier", true),
        text("reason", false),
        text("location", false),
        text("status", false),
        Field::new("set_aside", DataType::Int64, false),
        text("profile_id", true),
        text("other_profile_id", true),
    ]))
}

/// What makes a repair the same from one run to the next.
type Key = (String, String, Option<String>, String);

fn key(r: &Repair) -> Key {
    (
        r.kind.word().to_string(),
        r.ids[0].text(),
        r.ids.get(1).map(|i| i.text()),
        r.reason.clone(),
    )
}

/// The repairs the previous run applied (none when it published no `identity_repairs`).
pub async fn previous(
    ctx: &SessionContext,
    out: &objects::Location,
    m: &manifest::Manifest,
) -> EngineResult<Vec<Key>> {
    let Some(v) = m.tables.get(published::IDENTITY_REPAIRS) else {
        return Ok(Vec::new());
    };
    let provider = delta::provider(&out.child(published::IDENTITY_REPAIRS), *v).await?;
    let batches = ctx
        .read_table(provider)?
        .select_columns(&["kind", "identifier", "other_identifier", "reason"])?
        .collect()
        .await?;
    let mut out = Vec::new();
    for b in &batches {
        let cols: Vec<StringArray> = (0..4)
            .map(|i| text_column(b.column(i)))
            .collect::<Result<_, _>>()?;
        for i in 0..b.num_rows() {
            let other = (!cols[2].is_null(i)).then(|| cols[2].value(i).to_string());
            out.push((
                cols[0].value(i).to_string(),
                cols[1].value(i).to_string(),
                other,
                cols[3].value(i).to_string(),
            ));
        }
    }
    Ok(out)
}

/// The identifiers of the repairs in one list and not the other.
pub fn changed_nodes(previous: &[Key], now: &[Repair]) -> Vec<i64> {
    let before: BTreeSet<&Key> = previous.iter().collect();
    let now_keys: Vec<Key> = now.iter().map(key).collect();
    let after: BTreeSet<&Key> = now_keys.iter().collect();
    let mut nodes = BTreeSet::new();
    for k in before.symmetric_difference(&after) {
        for id in std::iter::once(&k.1).chain(k.2.as_ref()) {
            if let Some((t, v)) = split_identifier(id) {
                nodes.insert(node_code(&t, &v));
            }
        }
    }
    nodes.into_iter().collect()
}

/// The identifiers `repairs` name (`type:value`) as a run left them: each one's profile in
/// `identities` (`id_type, id_value, profile_id`), and every one that any event carried, kept
/// there or set aside in `violations` (`id_type, id_value`).
#[derive(Debug, Default)]
pub struct NamedIdentifiers {
    pub profile: BTreeMap<String, String>,
    pub seen: BTreeSet<String>,
}

/// [`NamedIdentifiers`] of `repairs`, read from a run's identities and violations (either
/// may be missing, as a published table may).
pub async fn named_identifiers(
    repairs: &[Repair],
    identities: Option<DataFrame>,
    violations: Option<DataFrame>,
) -> EngineResult<NamedIdentifiers> {
    let mut out = NamedIdentifiers::default();
    let named: Vec<_> = repairs
        .iter()
        .flat_map(|r| r.ids.iter().map(|i| lit(i.text())))
        .collect();
    if named.is_empty() {
        return Ok(out);
    }
    let id =
        || datafusion::functions::expr_fn::concat(vec![col("id_type"), lit(":"), col("id_value")]);
    if let Some(df) = identities {
        let batches = df
            .select(vec![id().alias("id"), col("profile_id")])?
            .filter(col("id").in_list(named.clone(), false))?
            .collect()
            .await?;
        for b in &batches {
            let (i, p) = (text_column(b.column(0))?, text_column(b.column(1))?);
            for r in 0..b.num_rows() {
                out.seen.insert(i.value(r).to_string());
                out.profile
                    .insert(i.value(r).to_string(), p.value(r).to_string());
            }
        }
    }
    if let Some(df) = violations {
        let batches = df
            .select(vec![id().alias("id")])?
            .filter(col("id").in_list(named, false))?
            .distinct()?
            .collect()
            .await?;
        for b in &batches {
            let i = text_column(b.column(0))?;
            out.seen
                .extend((0..b.num_rows()).map(|r| i.value(r).to_string()));
        }
    }
    Ok(out)
}

/// The two tables of a run that [`rows`] reads: its identities (`id_type, id_value,
/// profile_id`) and its violations (`id_type, id_value, rule, detail`), as the resolver left
/// them or as another engine staged them.
pub struct RunIdentities {
    pub identities: DataFrame,
    pub violations: DataFrame,
}

impl RunIdentities {
    /// The resolver's `id_identities` and `id_violations` in `ctx`.
    pub async fn resolved(ctx: &SessionContext) -> EngineResult<RunIdentities> {
        Ok(RunIdentities {
            identities: ctx.table(stage::ID_IDENTITIES).await?,
            violations: ctx.table(stage::ID_VIOLATIONS).await?,
        })
    }
}

/// This run's rows.
pub async fn rows(
    run: RunIdentities,
    repairs: &[Repair],
    run_id: &str,
) -> EngineResult<RecordBatch> {
    let NamedIdentifiers { profile, seen } =
        named_identifiers(repairs, Some(run.identities), Some(run.violations.clone())).await?;
    // Occurrences each repair set aside, by the detail they record.
    let mut set_aside: BTreeMap<String, i64> = BTreeMap::new();
    let rules: Vec<_> = [RULE_BLOCK, RULE_UNLINK, RULE_SPLIT]
        .iter()
        .map(|r| lit(*r))
        .collect();
    let counts = run
        .violations
        .filter(col("rule").in_list(rules, false))?
        .aggregate(
            vec![col("detail")],
            vec![datafusion::functions_aggregate::expr_fn::count(lit(1)).alias("n")],
        )?
        .collect()
        .await?;
    for b in &counts {
        let d = text_column(b.column(0))?;
        let n = b.column(1).as_primitive::<Int64Type>();
        for i in 0..b.num_rows() {
            set_aside.insert(d.value(i).to_string(), n.value(i));
        }
    }
    let mut cols: Vec<StringBuilder> = (0..9).map(|_| StringBuilder::new()).collect();
    let mut aside = Vec::new();
    for r in repairs {
        let ids: Vec<String> = r.ids.iter().map(|i| i.text()).collect();
        let n = set_aside.get(&r.detail()).copied().unwrap_or(0);
        let p0 = profile.get(&ids[0]);
        let p1 = ids.get(1).and_then(|i| profile.get(i));
        let status = if ids.iter().any(|i| !seen.contains(i)) {
            UNKNOWN
        } else if r.kind == RepairKind::Merge {
            if p0.is_some() && p0 == p1 {
                APPLIED
            } else {
                REFUSED
            }
        } else if n > 0 {
            APPLIED
        } else {
            NOTHING_TO_DO
        };
        let values: [Option<&str>; 9] = [
            Some(run_id),
            Some(r.kind.word()),
            Some(&ids[0]),
            ids.get(1).map(String::as_str),
            Some(&r.reason),
            Some(&r.at),
            Some(status),
            p0.map(String::as_str),
            p1.map(String::as_str),
        ];
        for (c, v) in cols.iter_mut().zip(values) {
            c.append_option(v);
        }
        aside.push(n);
    }
    let mut arrays: Vec<ArrayRef> = cols
        .into_iter()
        .map(|mut c| Arc::new(c.finish()) as ArrayRef)
        .collect();
    let profiles = arrays.split_off(7);
    arrays.push(Arc::new(Int64Array::from(aside)));
    arrays.extend(profiles);
    Ok(RecordBatch::try_new(schema(), arrays)?)
}

/// Writes `identity_repairs` when the space has repairs or the previous run published the
/// table (so that it says the repairs are gone); returns its version.
pub async fn write(
    run: RunIdentities,
    out: &objects::Location,
    previous: Option<&manifest::Manifest>,
    repairs: &[Repair],
    run_id: &str,
) -> EngineResult<Option<u64>> {
    let had = previous.is_some_and(|m| m.tables.contains_key(published::IDENTITY_REPAIRS));
    if repairs.is_empty() && !had {
        return Ok(None);
    }
    let batch = rows(run, repairs, run_id).await?;
    let loc = out.child(published::IDENTITY_REPAIRS);
    Ok(Some(delta::overwrite_batches(&loc, vec![batch]).await?))
}
