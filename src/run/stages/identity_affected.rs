//! Stage 2 for a run that extends the previous run's history: the identity graph resolved
//! again only where this run's events reach, every other identifier keeping its profile.
//!
//! Connected components are independent: a component's profiles, its limit replay, its
//! identifiers' first/last seen and its events' profiles depend only on the events in it, and
//! a profile's name only on the previous profiles whose identifiers it holds, which all lie in
//! one previous component. So a run that adds events needs to resolve only the previous
//! components those events reach:
//!
//! 1. the **changed events**: every message id this run read (new, or a copy that replaces an
//!    event) and every event as-of moved past;
//! 2. their identifier occurrences, computed now (from the events since the earliest copy of
//!    any of them), and the identifiers their previous versions carried (from the published
//!    `identity_occurrences`);
//! 3. the **affected identifiers**: every identifier of a previous component that holds one of
//!    those, and the new identifiers; also those of every event that carries an identifier a
//!    repair added, removed or changed since the previous run names (repairs.yaml, see
//!    [`crate::plan::repairs`]), so a repair costs what it reaches;
//! 4. the **affected events**: the changed ones and every event carrying an affected
//!    identifier, with their occurrences (previous ones from `identity_occurrences`, the
//!    changed ones as computed now).
//!
//! The resolver runs over the affected events, with the repairs applied to their occurrences,
//! as over a whole space (it even splits a component whose replaced event no longer links
//! it); `identities`, `identity_graph`, `identity_violations` and each event's profile are
//! its answer for the affected identifiers and events, and the previous run's rows for all
//! others.

use std::path::Path;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use datafusion::arrow::array::{Array, AsArray};
use datafusion::arrow::datatypes::{DataType, Schema, TimestampMicrosecondType};
use datafusion::common::JoinType;
use datafusion::functions_aggregate::expr_fn::min;
use datafusion::logical_expr::{LogicalPlan, cast};
use datafusion::prelude::{DataFrame, SessionContext, col};

use crate::error::EngineResult;
use crate::functions::id_node;
use crate::identity::components::materialize;
use crate::identity::{self, IdentityStats, TypeLimit};
use crate::plan::identity::{ResolvedRules, occurrences_from_raw, raw_identifiers};
use crate::plan::traits::ts;
use crate::run::tables::{published, stage};
use crate::store::{delta, manifest, objects};

/// The published tables this path starts from, besides `identity_graph`.
const NEEDS: [&str; 4] = [
    published::IDENTITY_OCCURRENCES,
    published::IDENTITIES,
    published::IDENTITY_VIOLATIONS,
    published::EVENTS,
];

/// The changed events of a run resolved this way (`id_changed` holds their message ids).
#[derive(Clone, Copy, Debug)]
pub struct Changed {
    /// No changed event is older than this (microseconds since the epoch): the earliest
    /// copy of any of them.
    pub from: i64,
    /// Identifier occurrences the previous versions of changed events carried: 0 when every
    /// changed event is new to the history or only became visible.
    pub replaced: u64,
    /// Occurrences of previous events in the components the changed events reach: 0 when
    /// every identifier they carry is new.
    pub reached: u64,
}

/// Whether the previous run published everything this path reads.
pub fn possible(m: &manifest::Manifest) -> bool {
    NEEDS
        .iter()
        .chain([&published::IDENTITY_GRAPH])
        .all(|t| m.tables.contains_key(*t))
}

/// `df` with the columns of `schema` (by name), cast to its types.
fn conform(df: DataFrame, schema: &Schema) -> EngineResult<DataFrame> {
    Ok(df.select(
        schema
            .fields()
            .iter()
            .map(|f| cast(col(f.name()), f.data_type().clone()).alias(f.name()))
            .collect::<Vec<_>>(),
    )?)
}

fn micros() -> DataType {
    DataType::Timestamp(
        datafusion::arrow::datatypes::TimeUnit::Microsecond,
        Some(Arc::from("UTC")),
    )
}

fn text(c: &str) -> datafusion::prelude::Expr {
    cast(col(c), DataType::Utf8)
}

async fn keep(ctx: &SessionContext, name: &str, df: DataFrame) -> EngineResult<u64> {
    let (t, n) = materialize(df).await?;
    ctx.deregister_table(name)?;
    ctx.register_table(name, t)?;
    Ok(n)
}

async fn previous(
    ctx: &SessionContext,
    out: &objects::Location,
    m: &manifest::Manifest,
    table: &str,
) -> EngineResult<DataFrame> {
    let provider = delta::provider(&out.child(table), m.tables[table]).await?;
    Ok(ctx.read_table(provider)?)
}

/// Resolves the components this run's events reach (see the module docs) and leaves the
/// resolver's tables registered for the whole space. `new_rows` are the rows this run read;
/// `repair_seeds` the identifiers of repairs that changed since the previous run (resolved
/// again too); `prev_graph` and `prev_identities` must be registered.
#[allow(clippy::too_many_arguments)]
pub async fn resolve(
    ctx: &SessionContext,
    out: &objects::Location,
    m: &manifest::Manifest,
    rules: &ResolvedRules,
    types: &[TypeLimit],
    new_rows: Option<LogicalPlan>,
    repair_seeds: &[i64],
    (prev_as_of, as_of): (DateTime<Utc>, DateTime<Utc>),
    dir: &Path,
) -> EngineResult<(IdentityStats, Vec<(String, String)>, Changed)> {
    let started = std::time::Instant::now();
    // 1. The changed events.
    let mut changed = ctx
        .table(stage::EVENTS)
        .await?
        .filter(col("timestamp").gt(ts(prev_as_of.timestamp_micros())))?
        .select(vec![text("message_id").alias("message_id")])?;
    if let Some(rows) = &new_rows {
        changed = changed.union(
            DataFrame::new(ctx.state(), rows.clone())
                .select(vec![text("message_id").alias("message_id")])?,
        )?;
    }
    let n_changed = keep(ctx, stage::ID_CHANGED, changed.distinct()?).await?;
    let changed = || async {
        Ok::<_, crate::error::EngineError>(
            ctx.table(stage::ID_CHANGED)
                .await?
                .select(vec![col("message_id").alias("c_message_id")])?,
        )
    };

    // 2. The identifiers their previous versions carried (the published rows, with their day
    // `dt`, as read).
    let published_occ = previous(ctx, out, m, published::IDENTITY_OCCURRENCES).await?;
    ctx.deregister_table(stage::ID_OCC_PREV)?;
    ctx.register_table(stage::ID_OCC_PREV, published_occ.clone().into_view())?;
    let replaced = published_occ
        .clone()
        .join_on(
            changed().await?,
            JoinType::LeftSemi,
            [text("message_id").eq(col("c_message_id"))],
        )?
        .select(vec![
            cast(col("node"), DataType::Int64).alias("node"),
            col("violation").is_null().alias("usable"),
            text("dt").alias("dt"),
            col("timestamp"),
        ])?;
    let n_replaced = keep(ctx, stage::ID_OCC_REPLACED, replaced).await?;
    tracing::debug!(
        secs = started.elapsed().as_secs_f64(),
        "identity: replaced occurrences"
    );

    // Their occurrences now. A changed event is as old as the earliest of its copies: a copy
    // read now, or the previous version, whose occurrences were just read (one without any
    // has none to replace, whichever copy wins). So only events from that time on are read.
    let earliest = |df: DataFrame| async move {
        let b = df
            .aggregate(vec![], vec![min(col("timestamp")).alias("t")])?
            .select(vec![cast(col("t"), micros()).alias("t")])?
            .collect()
            .await?;
        let t = b
            .first()
            .map(|b| b.column(0).as_primitive::<TimestampMicrosecondType>());
        Ok::<_, crate::error::EngineError>(t.filter(|t| t.is_valid(0)).map(|t| t.value(0)))
    };
    let mut from = prev_as_of.timestamp_micros() + 1;
    if let Some(t) = earliest(ctx.table(stage::ID_OCC_REPLACED).await?).await? {
        from = from.min(t);
    }
    if let Some(rows) = &new_rows {
        let visible = DataFrame::new(ctx.state(), rows.clone())
            .filter(col("timestamp").lt_eq(ts(as_of.timestamp_micros())))?;
        if let Some(t) = earliest(visible).await? {
            from = from.min(t);
        }
    }
    let events = ctx
        .table(stage::EVENTS)
        .await?
        .filter(col("timestamp").gt_eq(ts(from)))?
        .join_on(
            changed().await?,
            JoinType::LeftSemi,
            [text("message_id").eq(col("c_message_id"))],
        )?;
    let raw = raw_identifiers(events.into_unoptimized_plan(), rules)?;
    let (raw, _) = materialize(DataFrame::new(ctx.state(), raw)).await?;
    ctx.deregister_table(stage::ID_RAW)?;
    ctx.register_table(stage::ID_RAW, raw)?;
    let raw = ctx.table(stage::ID_RAW).await?.into_unoptimized_plan();
    let occ = occurrences_from_raw(ctx, raw, rules)?.ok_or_else(|| {
        crate::error::EngineError::Definition("identity.yaml has no identifier types".into())
    })?;
    keep(ctx, stage::ID_OCC_NEW, DataFrame::new(ctx.state(), occ)).await?;
    tracing::debug!(
        secs = started.elapsed().as_secs_f64(),
        "identity: changed occurrences"
    );
    let new_occ = ctx.table(stage::ID_OCC_NEW).await?;
    let schema = new_occ.schema().as_arrow().clone();
    let prev_occ = conform(published_occ, &schema)?;
    let usable = |df: DataFrame| df.filter(col("violation").is_null());
    let old_nodes = ctx
        .table(stage::ID_OCC_REPLACED)
        .await?
        .filter(col("usable"))?
        .select_columns(&["node"])?;
    let mut seeds = usable(new_occ.clone())?
        .select_columns(&["node"])?
        .union(old_nodes)?;
    if !repair_seeds.is_empty() {
        // Repairs added, removed or changed since the previous run: the identifiers of every
        // event that carries one they name (as read, before any repair) are seeds too.
        let named: Vec<datafusion::prelude::Expr> = repair_seeds
            .iter()
            .map(|n| datafusion::prelude::lit(*n))
            .collect();
        let events = usable(prev_occ.clone())?
            .filter(col("node").in_list(named, false))?
            .select(vec![col("message_id").alias("r_message_id")])?
            .distinct()?;
        let nodes = events
            .join(
                usable(prev_occ.clone())?,
                JoinType::RightSemi,
                &["r_message_id"],
                &["message_id"],
                None,
            )?
            .select_columns(&["node"])?;
        seeds = seeds.union(nodes)?;
    }
    let seeds = seeds.distinct()?;
    keep(ctx, stage::ID_SEEDS, seeds).await?;
    let raw_secs = started.elapsed().as_secs_f64();

    // 3. The affected identifiers: the previous components of the seeds, and the seeds.
    let graph = ctx.table(stage::PREV_GRAPH).await?;
    let seeds = ctx
        .table(stage::ID_SEEDS)
        .await?
        .select(vec![col("node").alias("s_node")])?;
    let comps = graph
        .clone()
        .join(
            seeds.clone(),
            JoinType::LeftSemi,
            &["node"],
            &["s_node"],
            None,
        )?
        .select(vec![col("component").alias("a_component")])?
        .distinct()?;
    let nodes = graph
        .clone()
        .join(
            comps,
            JoinType::LeftSemi,
            &["component"],
            &["a_component"],
            None,
        )?
        .select_columns(&["node"])?
        .union(seeds.select(vec![col("s_node").alias("node")])?)?
        .distinct()?;
    let n_nodes = keep(ctx, stage::ID_AFFECTED_NODES, nodes).await?;
    tracing::debug!(
        secs = started.elapsed().as_secs_f64(),
        n_nodes,
        "identity: affected"
    );
    let affected_nodes = || async {
        Ok::<_, crate::error::EngineError>(
            ctx.table(stage::ID_AFFECTED_NODES)
                .await?
                .select(vec![col("node").alias("a_node")])?,
        )
    };

    // 4. The affected events and their occurrences.
    let reached = usable(prev_occ.clone())?
        .join(
            affected_nodes().await?,
            JoinType::LeftSemi,
            &["node"],
            &["a_node"],
            None,
        )?
        .select_columns(&["message_id"])?;
    let n_reached = keep(ctx, stage::ID_AFFECTED_REACHED, reached).await?;
    let messages = ctx
        .table(stage::ID_AFFECTED_REACHED)
        .await?
        .union(ctx.table(stage::ID_CHANGED).await?)?
        .distinct()?;
    keep(ctx, stage::ID_AFFECTED_MESSAGES, messages).await?;
    // Only its count is needed later.
    ctx.deregister_table(stage::ID_AFFECTED_REACHED)?;
    let affected_messages = || async {
        Ok::<_, crate::error::EngineError>(
            ctx.table(stage::ID_AFFECTED_MESSAGES)
                .await?
                .select(vec![col("message_id").alias("a_message_id")])?,
        )
    };
    let subset = prev_occ
        .join(
            affected_messages().await?,
            JoinType::LeftSemi,
            &["message_id"],
            &["a_message_id"],
            None,
        )?
        .join(
            changed().await?,
            JoinType::LeftAnti,
            &["message_id"],
            &["c_message_id"],
            None,
        )?
        .union(new_occ)?;
    let subset = crate::run::sink::materialize(
        ctx,
        subset.into_unoptimized_plan(),
        &dir.join(stage::ID_OCCURRENCES),
    )
    .await?;
    let subset = crate::plan::repairs::repaired(ctx, subset, &rules.repairs).await?;
    ctx.deregister_table(stage::ID_OCCURRENCES)?;
    ctx.register_table(
        stage::ID_OCCURRENCES,
        ctx.execute_logical_plan(subset).await?.into_view(),
    )?;
    let occurrences_secs = started.elapsed().as_secs_f64() - raw_secs;
    tracing::debug!(
        secs = started.elapsed().as_secs_f64(),
        "identity: affected events"
    );

    // The resolver over the affected events alone (its own rounds from scratch).
    let opts = identity::Options {
        incremental: false,
        seed: 0x00c0_4f27,
        event_buckets: None,
    };
    let (mut stats, merges) = identity::resolve(ctx, types, &opts).await?;
    let step = std::time::Instant::now();
    widen(ctx, out, m, graph, &mut stats).await?;
    stats.mode = "incremental".into();
    stats.changed_events = Some(n_changed);
    stats.affected_identifiers = Some(n_nodes);
    // The resolver saw the affected components only: its largest ones are not the space's.
    stats.largest_components.clear();
    stats.timings.insert("changed".into(), raw_secs);
    stats.timings.insert("affected".into(), occurrences_secs);
    stats
        .timings
        .insert("kept".into(), step.elapsed().as_secs_f64());
    let changed = Changed {
        from,
        replaced: n_replaced,
        reached: n_reached,
    };
    Ok((stats, merges, changed))
}

/// Adds the previous run's rows of everything not affected to the resolver's tables, and
/// counts the whole space into `stats`.
async fn widen(
    ctx: &SessionContext,
    out: &objects::Location,
    m: &manifest::Manifest,
    prev_graph: DataFrame,
    stats: &mut IdentityStats,
) -> EngineResult<()> {
    let nodes = ctx
        .table(stage::ID_AFFECTED_NODES)
        .await?
        .select(vec![col("node").alias("a_node")])?;
    let messages = ctx
        .table(stage::ID_AFFECTED_MESSAGES)
        .await?
        .select(vec![col("message_id").alias("a_message_id")])?;
    let now = |name: &'static str| async move { ctx.table(name).await };

    // The graph: unaffected identifiers keep their component.
    let comps = now(stage::ID_COMPONENTS).await?;
    let schema = comps.schema().as_arrow().clone();
    let kept = prev_graph.join(
        nodes.clone(),
        JoinType::LeftAnti,
        &["node"],
        &["a_node"],
        None,
    )?;
    stats.identifiers = keep(
        ctx,
        stage::ID_COMPONENTS,
        comps.union(conform(kept, &schema)?)?,
    )
    .await?;

    // Identities: every unaffected identifier's row.
    let ids = now(stage::ID_IDENTITIES).await?;
    let schema = ids.schema().as_arrow().clone();
    let kept = previous(ctx, out, m, published::IDENTITIES)
        .await?
        .with_column("node", id_node(text("id_type"), text("id_value")))?
        .join(nodes, JoinType::LeftAnti, &["node"], &["a_node"], None)?;
    keep(
        ctx,
        stage::ID_IDENTITIES,
        ids.union(conform(kept, &schema)?)?,
    )
    .await?;
    stats.profiles = ctx
        .table(stage::ID_IDENTITIES)
        .await?
        .select_columns(&["profile_id"])?
        .distinct()?
        .count()
        .await? as u64;

    // Violations and events' profiles: every unaffected event's rows.
    for (name, table, filter) in [
        (stage::ID_VIOLATIONS, published::IDENTITY_VIOLATIONS, false),
        (stage::ID_EVENT_PROFILES, published::EVENTS, true),
    ] {
        let current = now(name).await?;
        let schema = current.schema().as_arrow().clone();
        let mut before = previous(ctx, out, m, table).await?;
        if filter {
            before = before.filter(col("profile_id").is_not_null())?;
        }
        let kept = conform(before, &schema)?.join_on(
            messages.clone(),
            JoinType::LeftAnti,
            [text("message_id").eq(col("a_message_id"))],
        )?;
        let n = keep(ctx, name, current.union(kept)?).await?;
        if !filter {
            stats.violations = n;
        }
    }
    Ok(())
}
