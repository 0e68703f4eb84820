//! SQL traits a run need not evaluate because nothing they read changed (issue 19, item 3).
//!
//! A SQL trait is a query over the run's session. When it reads only the space's events (the
//! `events` view and one view per source) and calls only immutable functions, its rows are a
//! function of those events and of its own files. The events are the previous run's exactly
//! when the run extended the previous history, read no new row, and no event crossed the
//! as-of (the identity stage counts both as its changed events). When, besides, no repair of
//! repairs.yaml changed (the identity stage resolved no identifier again), the identity graph
//! is the previous one too, so the trait's values after the merge into profiles are the ones the
//! previous run published: the run takes them from the previous `profiles`, as it does for a
//! SQL trait that is not due (see [`super::due`]).
//!
//! Evaluated as before: a trait whose `.sql` or sidecar changed, one reading any other table
//! (the previous run's published tables change every run), one calling `now()`, `random()`
//! or any function that is not immutable, one that started profiles in the previous run (they
//! exist only through its rows), and one the previous run kept without evaluating it (its
//! values may be stale).

use std::collections::BTreeSet;
use std::sync::Arc;

use datafusion::catalog::MemoryCatalogProviderList;
use datafusion::common::tree_node::{TreeNode, TreeNodeRecursion};
use datafusion::datasource::empty::EmptyTable;
use datafusion::execution::session_state::SessionStateBuilder;
use datafusion::logical_expr::{Expr, LogicalPlan, Volatility};
use datafusion::prelude::SessionContext;

use super::ctx::RunCtx;
use super::edited::relative;
use super::tables::stage;
use crate::analyze::sql_trait::read_only;
use crate::error::EngineResult;

/// The keys of the SQL traits of `rc`'s space whose values cannot differ from the previous
/// run's (see the module docs). Call after the identity stage.
pub async fn find(rc: &RunCtx<'_>) -> EngineResult<BTreeSet<String>> {
    let mut out = BTreeSet::new();
    let Some(m) = rc.previous.as_ref() else {
        return Ok(out);
    };
    if !rc.keep_unchanged || rc.sink.recording() {
        return Ok(out);
    }
    // The same events and the same graph: a repair changed since the previous run resolves
    // identifiers again with no changed event, and can leave an identifier a SQL trait
    // returns in no profile (its rows then start one).
    let same_events = rc.rec.identity.as_ref().is_some_and(|i| {
        i.mode == "incremental" && i.changed_events == Some(0) && i.affected_identifiers == Some(0)
    });
    let (Some(before), Some(states)) = (&m.definitions, &m.sql_traits) else {
        return Ok(out);
    };
    if !same_events {
        tracing::debug!("SQL traits: this run's events are not the previous run's");
        return Ok(out);
    }
    let tables = event_tables(rc);
    // One session to plan them all in, made when the first trait needs it.
    let mut probe_session: Option<Option<SessionContext>> = None;
    for def in &rc.space.sql_traits {
        if !as_evaluated_before(rc, m, before, def) {
            continue;
        }
        if states.get(&def.key).is_none_or(|s| s.started > 0) {
            continue;
        }
        if probe_session.is_none() {
            probe_session = Some(match probe(&rc.session, &tables).await {
                Ok(p) => Some(p),
                Err(e) => {
                    tracing::debug!("no session to plan SQL traits in: {e}");
                    None
                }
            });
        }
        let Some(Some(session)) = &probe_session else {
            return Ok(out);
        };
        let pure = reads_only(session, &def.sql, &tables).await;
        tracing::debug!(key = def.key, pure, "SQL trait: reads only the events?");
        if pure {
            out.insert(def.key.clone());
        }
    }
    Ok(out)
}

/// The tables a SQL trait may read for its rows to depend on the events alone: `events` and
/// each source's view.
pub(super) fn event_tables(rc: &RunCtx<'_>) -> BTreeSet<String> {
    let mut tables: BTreeSet<String> = rc.space.sources.iter().map(|s| s.name.clone()).collect();
    tables.insert(stage::EVENTS.to_string());
    tables
}

/// Whether `def` is what the previous run (`m`, whose definition files are `before`)
/// evaluated: this run evaluates it, its `.sql` and sidecar are unchanged, and the previous
/// run did not keep it without evaluating it (its values may be stale).
pub(super) fn as_evaluated_before(
    rc: &RunCtx<'_>,
    m: &crate::store::manifest::Manifest,
    before: &std::collections::BTreeMap<String, String>,
    def: &crate::spec::SqlTraitDef,
) -> bool {
    let stale = m
        .kept
        .as_ref()
        .is_some_and(|k| k.sql_traits.contains(&def.key));
    if rc.kept.sql_traits.contains(&def.key) || stale {
        return false;
    }
    let now = &rc.rec.definitions;
    let files = [def.file.clone(), def.file.with_extension("yaml")];
    let same_files = files.iter().all(|f| {
        let rel = relative(&rc.space.root, f);
        now.get(&rel) == before.get(&rel)
    });
    if !same_files {
        tracing::debug!(key = def.key, "SQL trait: its files changed");
    }
    same_files
}

/// Whether `sql` plans as a read-only query that scans only `tables` and calls only immutable
/// functions (so its rows depend on nothing else). `probe` is a [`probe`] session over
/// `tables`: the run's own session plans a view as the plan it stands for, which would hide
/// the name.
pub async fn reads_only(probe: &SessionContext, sql: &str, tables: &BTreeSet<String>) -> bool {
    let df = match probe.sql_with_options(sql, read_only()).await {
        Ok(df) => df,
        Err(e) => {
            tracing::debug!("SQL trait does not plan over the events alone: {e}");
            return false;
        }
    };
    pure_over(df.logical_plan(), tables)
}

/// A session with `ctx`'s functions and settings whose only tables are `tables`, empty.
pub(super) async fn probe(
    ctx: &SessionContext,
    tables: &BTreeSet<String>,
) -> EngineResult<SessionContext> {
    let state = ctx.state();
    let config = state
        .config()
        .clone()
        .with_create_default_catalog_and_schema(true);
    let state = SessionStateBuilder::new_from_existing(state)
        .with_config(config)
        .with_catalog_list(Arc::new(MemoryCatalogProviderList::new()))
        .build();
    let probe = SessionContext::new_with_state(state);
    for t in tables {
        if let Ok(df) = ctx.table(t.as_str()).await {
            let schema = Arc::new(df.schema().as_arrow().clone());
            probe.register_table(t.as_str(), Arc::new(EmptyTable::new(schema)))?;
        }
    }
    Ok(probe)
}

/// Whether `plan` (with its subqueries) scans only `tables` and calls only immutable
/// functions.
fn pure_over(plan: &LogicalPlan, tables: &BTreeSet<String>) -> bool {
    let mut pure = true;
    let walked = plan.apply_with_subqueries(|p| {
        if let LogicalPlan::TableScan(scan) = p
            && (scan.table_name.schema().is_some() || !tables.contains(scan.table_name.table()))
        {
            tracing::debug!(table = %scan.table_name, "SQL trait reads another table");
            pure = false;
        }
        p.apply_expressions(|e| {
            e.apply(|e| {
                if !immutable(e) {
                    tracing::debug!(expr = %e, "SQL trait calls a function that is not immutable");
                    pure = false;
                }
                Ok(TreeNodeRecursion::Continue)
            })
        })?;
        Ok(match pure {
            true => TreeNodeRecursion::Continue,
            false => TreeNodeRecursion::Stop,
        })
    });
    walked.is_ok() && pure
}

/// Whether `e` itself (not its children) gives the same value for the same inputs in every
/// run.
pub(super) fn immutable(e: &Expr) -> bool {
    match e {
        Expr::ScalarFunction(f) => f.func.signature().volatility == Volatility::Immutable,
        Expr::AggregateFunction(f) => f.func.signature().volatility == Volatility::Immutable,
        Expr::WindowFunction(w) => match &w.fun {
            datafusion::logical_expr::expr::WindowFunctionDefinition::AggregateUDF(f) => {
                f.signature().volatility == Volatility::Immutable
            }
            datafusion::logical_expr::expr::WindowFunctionDefinition::WindowUDF(f) => {
                f.signature().volatility == Volatility::Immutable
            }
        },
        _ => true,
    }
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;
    use datafusion::arrow::array::{Int64Array, RecordBatch, StringArray};
    use datafusion::arrow::datatypes::{DataType, Field, Schema};

    /// A session with tables `web`, `events` and `profiles` of `(user_id, n)`, and a view
    /// `app` over `profiles`.
    pub(in crate::run) async fn session() -> SessionContext {
        let ctx = SessionContext::new();
        let schema = Arc::new(Schema::new(vec![
            Field::new("user_id", DataType::Utf8, true),
            Field::new("n", DataType::Int64, true),
        ]));
        let batch = RecordBatch::try_new(
            schema,
            vec![
                Arc::new(StringArray::from(vec!["a", "b"])),
                Arc::new(Int64Array::from(vec![1, 2])),
            ],
        )
        .unwrap();
        for t in ["web", "events", "profiles"] {
            ctx.register_batch(t, batch.clone()).unwrap();
        }
        // A view is judged by its name, not by what it reads.
        let view = ctx.table("profiles").await.unwrap().into_view();
        ctx.register_table("app", view).unwrap();
        ctx
    }

    #[tokio::test]
    async fn only_queries_over_the_events_with_immutable_functions_are_pure() {
        let ctx = session().await;
        let tables: BTreeSet<String> = ["web", "app", "events"].map(String::from).into();
        let cases = [
            (
                "SELECT user_id, count(*) AS c FROM web GROUP BY user_id",
                true,
            ),
            (
                "SELECT w.user_id, max(a.n) AS m FROM web w JOIN app a USING (user_id) \
                 WHERE lower(w.user_id) <> 'x' GROUP BY w.user_id",
                true,
            ),
            (
                "SELECT user_id, row_number() OVER (ORDER BY n) AS r FROM events",
                true,
            ),
            (
                "SELECT user_id, count(*) AS c FROM profiles GROUP BY user_id",
                false,
            ),
            (
                "SELECT user_id FROM web WHERE user_id IN (SELECT user_id FROM profiles)",
                false,
            ),
            ("SELECT user_id, now() AS t FROM web", false),
            ("SELECT user_id FROM web WHERE random() < 0.5", false),
            (
                "SELECT user_id FROM web WHERE n < extract(day FROM current_date)",
                false,
            ),
            ("SELECT user_id FROM nowhere", false),
            ("SELECT user_id FROM datafusion.public.web", false),
        ];
        let p = probe(&ctx, &tables).await.unwrap();
        for (sql, pure) in cases {
            assert_eq!(reads_only(&p, sql, &tables).await, pure, "{sql}");
        }
        // The run's session keeps its tables.
        assert_eq!(ctx.table("web").await.unwrap().count().await.unwrap(), 2);
    }
}
