//! SQL traits evaluated for the identifiers the changed events carry (issue 19, item 3).
//!
//! Most SQL traits are one aggregate over the events grouped by an identifier column:
//! `SELECT user_id, count(*) AS n FROM web WHERE ... GROUP BY user_id`. Such a query's row for
//! an identifier `k` depends only on the events whose column holds `k`. So the row of every
//! identifier no changed event carries, now or in its previous version (a copy of a message
//! id that wins replaces the event, and the identifier the old copy carried loses it), is the
//! previous run's: the run evaluates the query over the events of the identifiers the changed
//! events carry, and takes every other row from the rows the previous run kept
//! (`sql_trait_rows/<key>`, the query's rows before the merge into profiles). The merge into
//! profiles then runs over all rows as for a whole evaluation, so merged and split profiles
//! get their values as a full run would give them.
//!
//! The shape, checked on the query's plan: projections, filters, sorts and aliases over one
//! aggregate whose only grouping column is the identifier column the query returns, over
//! filters, projections and aliases of one scan of `events` or of a source's view; immutable
//! functions only; no join, window, limit, union, distinct or subquery. A changed event whose
//! column is null is read as well, so that a null identifier fails the run as a whole
//! evaluation would.
//!
//! Evaluated whole as before: a trait of another shape, one whose files changed, that the
//! previous run did not evaluate or did not keep the rows of, one whose rows' columns changed;
//! and every trait when the identity stage resolved the whole graph (no list of changed
//! events).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use datafusion::arrow::array::{Array, AsArray, RecordBatch};
use datafusion::arrow::compute::cast as cast_array;
use datafusion::arrow::datatypes::{DataType, SchemaRef};
use datafusion::catalog::MemTable;
use datafusion::common::tree_node::{TreeNode, TreeNodeRecursion};
use datafusion::common::{Column, JoinType};
use datafusion::logical_expr::{Expr, LogicalPlan, cast};
use datafusion::prelude::{DataFrame, SessionContext, col, lit};

use super::ctx::RunCtx;
use super::sql_unchanged::{as_evaluated_before, event_tables, immutable, probe};
use super::stages::identity_affected::Changed;
use super::tables::stage;
use crate::analyze::sql_trait::read_only;
use crate::error::EngineResult;
use crate::plan::traits::ts;
use crate::spec::{Space, SqlTraitDef};
use crate::store::manifest::{self, SqlTraitState};
use crate::store::{delta, objects};

/// A SQL trait's identifier column as the events hold it: the query's rows are keyed by the
/// values of `column` of the scanned `table`.
#[derive(Clone, Debug, PartialEq)]
pub struct Key {
    pub table: String,
    pub column: String,
}

/// What evaluating one SQL trait for the changed identifiers needs.
#[derive(Clone, Debug)]
pub struct KeyedTrait {
    key: Key,
    /// Where the previous run kept the trait's rows, and their version.
    rows: (objects::Location, u64),
    changed: Changed,
    /// The previous run's `events`, where the previous versions of replaced events are.
    history: (objects::Location, u64),
}

/// The SQL traits of `rc`'s space, of those not in `skip`, that this run evaluates for the
/// changed identifiers only (see the module docs). Call after the identity stage.
pub async fn find(
    rc: &RunCtx<'_>,
    skip: &BTreeSet<String>,
) -> EngineResult<BTreeMap<String, KeyedTrait>> {
    let mut out = BTreeMap::new();
    let (Some(m), Some(changed)) = (rc.previous.as_ref(), rc.changed) else {
        return Ok(out);
    };
    if !rc.keep_unchanged || rc.sink.recording() {
        return Ok(out);
    }
    let (Some(before), Some(states), Some(history)) = (
        &m.definitions,
        &m.sql_traits,
        m.tables.get(crate::run::tables::published::EVENTS),
    ) else {
        return Ok(out);
    };
    let history = (
        rc.out.child(crate::run::tables::published::EVENTS),
        *history,
    );
    let tables = event_tables(rc);
    let mut session: Option<SessionContext> = None;
    for def in rc
        .space
        .sql_traits
        .iter()
        .filter(|d| !skip.contains(&d.key))
    {
        let Some(SqlTraitState {
            rows: Some(version),
            id_type,
            ..
        }) = states.get(&def.key)
        else {
            continue;
        };
        if !as_evaluated_before(rc, m, before, def) {
            continue;
        }
        if session.is_none() {
            session = Some(probe(&rc.session, &tables).await?);
        }
        let probe = session.as_ref().expect("made above");
        let Ok(df) = probe.sql_with_options(&def.sql, read_only()).await else {
            continue;
        };
        let key = key_of(df.logical_plan(), id_type, &tables);
        tracing::debug!(
            key = def.key,
            ?key,
            "SQL trait: keyed by an identifier column?"
        );
        if let Some(key) = key {
            let loc = manifest::sql_trait_rows(&rc.out, &def.key);
            let rows = (loc, *version);
            let history = history.clone();
            let k = KeyedTrait {
                key,
                rows,
                changed,
                history,
            };
            out.insert(def.key.clone(), k);
        }
    }
    Ok(out)
}

/// The column `plan`'s rows are keyed by, when the plan has the shape of the module docs and
/// returns that column as `id_column`.
pub fn key_of(plan: &LogicalPlan, id_column: &str, tables: &BTreeSet<String>) -> Option<Key> {
    let (mut aggregates, mut scans, mut fits) = (0, 0, true);
    let walked = plan.apply_with_subqueries(|p| {
        match p {
            LogicalPlan::Projection(_)
            | LogicalPlan::Filter(_)
            | LogicalPlan::Sort(_)
            | LogicalPlan::SubqueryAlias(_) => {}
            LogicalPlan::Aggregate(_) => aggregates += 1,
            LogicalPlan::TableScan(_) => scans += 1,
            _ => fits = false,
        }
        p.apply_expressions(|e| {
            e.apply(|e| {
                let subquery = matches!(
                    e,
                    Expr::ScalarSubquery(_)
                        | Expr::Exists(_)
                        | Expr::InSubquery(_)
                        | Expr::OuterReferenceColumn(..)
                );
                if subquery || !immutable(e) {
                    fits = false;
                }
                Ok(TreeNodeRecursion::Continue)
            })
        })?;
        Ok(match fits {
            true => TreeNodeRecursion::Continue,
            false => TreeNodeRecursion::Stop,
        })
    });
    if walked.is_err() || !fits || aggregates != 1 || scans != 1 {
        return None;
    }
    key_column(plan, id_column, tables)
}

/// The column named `name` in `p`'s output, when `p` passes a column of its input through
/// under that name.
fn passed_through(p: &datafusion::logical_expr::Projection, name: &str) -> Option<String> {
    let mut found = p
        .schema
        .fields()
        .iter()
        .enumerate()
        .filter(|(_, f)| f.name() == name);
    let (i, _) = found.next()?;
    if found.next().is_some() {
        return None;
    }
    match p.expr[i].clone().unalias_nested().data {
        Expr::Column(c) => Some(c.name),
        _ => None,
    }
}

/// The scanned column `name` stands for, through projections, filters, sorts and aliases,
/// the one aggregate (whose only grouping column `name` must be) and the one scan (`key_of`
/// checked there is one of each, in one line: no node has two inputs).
fn key_column(plan: &LogicalPlan, name: &str, tables: &BTreeSet<String>) -> Option<Key> {
    match plan {
        LogicalPlan::Projection(p) => key_column(&p.input, &passed_through(p, name)?, tables),
        LogicalPlan::Filter(f) => key_column(&f.input, name, tables),
        LogicalPlan::Sort(s) => key_column(&s.input, name, tables),
        LogicalPlan::SubqueryAlias(a) => key_column(&a.input, name, tables),
        LogicalPlan::Aggregate(a) => {
            let [group] = a.group_expr.as_slice() else {
                return None;
            };
            let Expr::Column(c) = group.clone().unalias_nested().data else {
                return None;
            };
            (a.schema.field(0).name() == name).then_some(())?;
            key_column(&a.input, &c.name, tables)
        }
        LogicalPlan::TableScan(s) => {
            let table = s.table_name.table();
            let named = s.table_name.schema().is_none() && tables.contains(table);
            let has = s.source.schema().field_with_name(name).is_ok();
            (named && has).then(|| Key {
                table: table.to_string(),
                column: name.to_string(),
            })
        }
        _ => None,
    }
}

/// The trait's rows after this run (see the module docs), with how many identifiers were
/// evaluated again; `None` when the kept rows do not have the query's columns (the caller
/// evaluates it whole). `schema` is the query's as planned in the run's session, `id_column`
/// the identifier column it returns.
pub async fn evaluate(
    ctx: &SessionContext,
    space: &Space,
    def: &SqlTraitDef,
    k: &KeyedTrait,
    (schema, id_column): (&SchemaRef, &str),
) -> EngineResult<Option<(Vec<RecordBatch>, u64)>> {
    // The previous rows first: nothing is read when their columns are not the query's.
    let prev = ctx.read_table(delta::provider(&k.rows.0, k.rows.1).await?)?;
    let prev_fields = prev.schema().fields();
    let same = prev_fields.len() == schema.fields().len()
        && prev_fields
            .iter()
            .zip(schema.fields())
            .all(|(a, b)| a.name() == b.name() && delta::same_type(a.data_type(), b.data_type()));
    if !same || schema.field_with_name(id_column).is_err() {
        tracing::debug!(key = def.key, "SQL trait: the kept rows have other columns");
        return Ok(None);
    }

    // The identifiers the changed events carry.
    let column = col_of(&k.key.column);
    let key = || col(CHANGED_KEY);
    let mut keys = changed_events(ctx, &k.key.table, k.changed.from)
        .await?
        .select(vec![column.clone().alias(CHANGED_KEY)])?;
    if k.changed.replaced > 0 {
        let ty = keys.schema().field(0).data_type().clone();
        let Some(replaced) = replaced_keys(ctx, k, &ty).await? else {
            tracing::debug!(key = def.key, "SQL trait: the history has no key column");
            return Ok(None);
        };
        keys = keys.union(replaced)?;
    }
    let keys = keys.distinct()?;
    let keys_schema = Arc::new(keys.schema().as_arrow().clone());
    let keys = keys.collect().await?;
    let n_keys: usize = keys.iter().map(|b| b.num_rows()).sum();
    let null_key = keys.iter().any(|b| b.column(0).null_count() > 0);
    let keys = ctx.read_table(Arc::new(MemTable::try_new(keys_schema, vec![keys])?))?;

    // The events of those identifiers (and the changed events without one), as `events` and
    // the sources' views of a session of their own, where the query runs as written.
    let mut subset = ctx.table(stage::EVENTS).await?.join_on(
        keys.clone(),
        JoinType::LeftSemi,
        [column.clone().eq(key())],
    )?;
    if null_key {
        let unkeyed = changed_events(ctx, stage::EVENTS, k.changed.from)
            .await?
            .filter(column.is_null())?;
        subset = subset.union(unkeyed)?;
    }
    let sub = probe(ctx, &BTreeSet::new()).await?;
    sub.register_table(stage::EVENTS, subset.into_view())?;
    for s in &space.sources {
        let view = sub
            .table(stage::EVENTS)
            .await?
            .filter(col("source").eq(lit(s.name.as_str())))?;
        sub.register_table(s.name.as_str(), view.into_view())?;
    }
    let fresh = sub
        .sql_with_options(&def.sql, read_only())
        .await?
        .collect()
        .await?;

    // Every other identifier's previous row, in the query's types.
    let casts: Vec<Expr> = schema
        .fields()
        .iter()
        .map(|f| cast(col_of(f.name()), f.data_type().clone()).alias(f.name()))
        .collect();
    let kept = prev
        .select(casts)?
        .join_on(keys, JoinType::LeftAnti, [col_of(id_column).eq(key())])?
        .collect()
        .await?;
    let mut out = Vec::with_capacity(kept.len() + fresh.len());
    for b in kept.into_iter().chain(fresh) {
        out.push(RecordBatch::try_new(schema.clone(), b.columns().to_vec())?);
    }
    tracing::debug!(
        key = def.key,
        identifiers = n_keys,
        "SQL trait evaluated for the changed identifiers"
    );
    Ok(Some((out, n_keys as u64)))
}

/// The key column's values in the previous versions of the changed events (those the
/// previous history holds), read from the days those versions are in, as `ty`; `None` when
/// the history has no such column.
async fn replaced_keys(
    ctx: &SessionContext,
    k: &KeyedTrait,
    ty: &DataType,
) -> EngineResult<Option<DataFrame>> {
    let history = ctx.read_table(delta::provider(&k.history.0, k.history.1).await?)?;
    if history
        .schema()
        .field_with_unqualified_name(&k.key.column)
        .is_err()
    {
        return Ok(None);
    }
    let days = ctx
        .table(stage::ID_OCC_REPLACED)
        .await?
        .select(vec![col("dt")])?
        .distinct()?
        .collect()
        .await?;
    let mut in_days = Vec::new();
    for b in &days {
        let dt = cast_array(b.column(0), &DataType::Utf8)?;
        let dt = dt.as_string::<i32>();
        in_days.extend(dt.iter().flatten().map(|d| lit(d.to_string())));
    }
    let changed = ctx
        .table(stage::ID_CHANGED)
        .await?
        .select(vec![col("message_id").alias("c_message_id")])?;
    Ok(Some(
        history
            .filter(cast(col("dt"), DataType::Utf8).in_list(in_days, false))?
            .join_on(
                changed,
                JoinType::LeftSemi,
                [cast(col("message_id"), DataType::Utf8).eq(col("c_message_id"))],
            )?
            .select(vec![
                cast(col_of(&k.key.column), ty.clone()).alias(CHANGED_KEY),
            ])?,
    ))
}

/// The column of the changed identifiers.
const CHANGED_KEY: &str = "cohort_changed_key";

/// The rows of `table` (`events` or a source's view) of the run's changed events, which are
/// none older than `from`.
async fn changed_events(ctx: &SessionContext, table: &str, from: i64) -> EngineResult<DataFrame> {
    let changed = ctx
        .table(stage::ID_CHANGED)
        .await?
        .select(vec![col("message_id").alias("c_message_id")])?;
    Ok(ctx
        .table(table)
        .await?
        .filter(col("timestamp").gt_eq(ts(from)))?
        .join_on(
            changed,
            JoinType::LeftSemi,
            [cast(col("message_id"), DataType::Utf8).eq(col("c_message_id"))],
        )?)
}

/// A column by its name as it stands (no parsing of dots or case).
fn col_of(name: &str) -> Expr {
    Expr::Column(Column::new_unqualified(name))
}

/// Writes each evaluated SQL trait's rows for the next run and records their versions in
/// `states` (a kept trait's state names its previous rows already).
pub async fn publish_rows(
    ctx: &SessionContext,
    out: &objects::Location,
    rows: Vec<(String, RecordBatch)>,
    states: &mut BTreeMap<String, SqlTraitState>,
) -> EngineResult<()> {
    for (key, batch) in rows {
        let Some(state) = states.get_mut(&key) else {
            continue;
        };
        let plan = ctx.read_batch(batch)?.into_unoptimized_plan();
        let loc = manifest::sql_trait_rows(out, &key);
        state.rows = Some(delta::overwrite_from_plan(&loc, plan, &ctx.state()).await?);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn only_one_aggregate_grouped_by_a_column_of_the_events_is_keyed() {
        let ctx = crate::run::sql_unchanged::tests::session().await;
        let tables: BTreeSet<String> = ["web", "events"].map(String::from).into();
        let p = probe(&ctx, &tables).await.unwrap();
        let key = |table: &str, column: &str| {
            Some(Key {
                table: table.into(),
                column: column.into(),
            })
        };
        let cases = [
            (
                "SELECT user_id, count(*) AS c FROM web GROUP BY user_id",
                key("web", "user_id"),
            ),
            (
                "SELECT w.user_id AS user_id, count(*) AS c FROM web AS w WHERE w.n > 1 \
                 GROUP BY w.user_id HAVING count(*) > 1 ORDER BY c",
                key("web", "user_id"),
            ),
            (
                "SELECT user_id, sum(m) AS s FROM (SELECT user_id, n * 2 AS m FROM events \
                 WHERE n > 0) t GROUP BY 1",
                key("events", "user_id"),
            ),
            // The rows are keyed by `n`, returned as the identifier.
            (
                "SELECT n AS user_id, count(*) AS c FROM web GROUP BY n",
                key("web", "n"),
            ),
            (
                "SELECT lower(user_id) AS user_id, count(*) AS c FROM web \
                 GROUP BY lower(user_id)",
                None,
            ),
            (
                "SELECT user_id, max(n) AS m FROM web GROUP BY user_id, n",
                None,
            ),
            (
                "SELECT user_id, count(*) AS c FROM web GROUP BY user_id LIMIT 1",
                None,
            ),
            ("SELECT DISTINCT user_id, n FROM web", None),
            ("SELECT user_id, n FROM web", None),
            (
                "SELECT w.user_id, count(*) AS c FROM web w JOIN events e \
                 ON w.user_id = e.user_id GROUP BY w.user_id",
                None,
            ),
            (
                "SELECT user_id, count(*) AS c FROM web GROUP BY user_id \
                 HAVING count(*) > (SELECT avg(n) FROM events)",
                None,
            ),
            (
                "SELECT user_id, max(r) AS m FROM (SELECT user_id, \
                 row_number() OVER (ORDER BY n) AS r FROM web) t GROUP BY user_id",
                None,
            ),
            (
                "SELECT user_id, max(n) AS m FROM web WHERE random() < 0.5 GROUP BY user_id",
                None,
            ),
            (
                "SELECT user_id, count(*) AS c FROM profiles GROUP BY user_id",
                None,
            ),
            (
                "SELECT user_id, count(*) AS c FROM (SELECT user_id FROM web UNION ALL \
                 SELECT user_id FROM events) t GROUP BY user_id",
                None,
            ),
        ];
        for (sql, want) in cases {
            let got = match p.sql_with_options(sql, read_only()).await {
                Ok(df) => key_of(df.logical_plan(), "user_id", &tables),
                Err(_) => None,
            };
            assert_eq!(got, want, "{sql}");
        }
    }
}
