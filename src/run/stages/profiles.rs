//! Stages 3 and 4 of a run: profiles and traits. Attaches every event to its profile, finds the
//! custom traits in identify calls, runs all computed traits of users as one aggregation,
//! joins SQL traits, and leaves the `cohort_profiles` table in the session for audiences and
//! for publishing; then [`super::accounts`] does the same for accounts. A run that keeps the
//! untouched profiles' values assembles the touched profiles' rows only and takes every other
//! row from the previous `profiles`.

use std::collections::{BTreeMap, BTreeSet};

use datafusion::arrow::array::{Array, AsArray};
use datafusion::arrow::datatypes::DataType;
use datafusion::logical_expr::{LogicalPlan, LogicalPlanBuilder, col, lit};
use datafusion::prelude::{DataFrame, SessionContext};

use super::profile_events::{self, with_profiles};
use super::sql_traits::SqlTraitResult;
use super::started::{started_plan, started_profiles};
use crate::error::{EngineError, EngineResult};
use crate::plan::identity::ResolvedRules;
use crate::plan::kept::{previous_columns, touched_only, with_kept};
use crate::plan::profiles::{
    CustomTrait, IdColumn, TraitTable, column_name, custom_trait_type, custom_traits_plan,
    join_traits, profile_base_plan,
};
use crate::plan::traits::{TraitColumn, TraitQuery, computed_traits_plan, empty_value};
use crate::run::bucketed;
use crate::run::ctx::RunCtx;
use crate::run::sink::keep;
use crate::run::tables::stage;
use crate::spec::{ComputedTraitDef, Diagnostic, EntityType, Space, query};

const TRAIT_KEYS: &str = include_str!("../../../queries/profiles/trait_keys.sql");

/// Columns of `profiles` that are not traits; a trait with one of these names is left out.
const PROFILE_COLUMNS: [&str; 3] = ["profile_id", "first_seen", "last_seen"];

/// What the stage made, for the run record.
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct ProfileStats {
    pub profiles: u64,
    pub accounts: u64,
    /// Custom trait columns of profiles, with their types.
    pub custom_traits: BTreeMap<String, String>,
    pub account_traits: BTreeMap<String, String>,
    pub computed_traits: BTreeMap<String, String>,
    pub sql_traits: BTreeMap<String, String>,
    /// Profiles started by SQL traits (identifiers no event has carried yet).
    pub sql_trait_profiles: u64,
    /// Keys found in the data but left out (a name taken by another column or trait).
    pub skipped_traits: Vec<String>,
    /// Whether every profile was evaluated, or only the touched ones (and why).
    pub recompute: crate::run::touched::Recompute,
    /// The kinds of values of every custom trait key (for the next run's manifest).
    #[serde(skip)]
    pub custom_kinds: BTreeMap<String, BTreeSet<String>>,
    /// Each SQL trait's columns and profiles started (for the next run's manifest).
    #[serde(skip)]
    pub sql_states: BTreeMap<String, crate::store::manifest::SqlTraitState>,
}

/// A computed trait's query, parsed, for the run (validate has reported parse errors already).
pub fn parsed_traits(
    space: &Space,
    entity: EntityType,
) -> EngineResult<Vec<(&ComputedTraitDef, crate::spec::query::ast::Expr)>> {
    let mut out = Vec::new();
    for def in space.traits.iter().filter(|t| t.entity == entity) {
        match query::parsed_trait(def) {
            Ok(q) => out.push((def, q)),
            Err(d) => return Err(diagnostic_error(space, &d)),
        }
    }
    Ok(out)
}

fn diagnostic_error(space: &Space, d: &Diagnostic) -> EngineError {
    EngineError::Definition(d.render(&space.root))
}

/// Compiles the computed traits of `entity` over `events` grouped by `key`.
pub fn traits_table(
    space: &Space,
    entity: EntityType,
    events: LogicalPlan,
    key: &str,
    as_of_micros: i64,
    keep: &dyn Fn(&str) -> bool,
) -> EngineResult<Option<(LogicalPlan, Vec<TraitColumn>)>> {
    let mut parsed = parsed_traits(space, entity)?;
    parsed.retain(|(d, _)| keep(&d.key));
    if parsed.is_empty() {
        return Ok(None);
    }
    let queries: Vec<TraitQuery<'_>> = parsed
        .iter()
        .map(|(d, q)| TraitQuery {
            key: &d.key,
            query: q,
        })
        .collect();
    match computed_traits_plan(events, key, &queries, as_of_micros) {
        Ok(p) => Ok(Some(p)),
        Err(e) => {
            let def = parsed
                .iter()
                .map(|(d, _)| *d)
                .find(|d| e.key.as_deref() == Some(d.key.as_str()));
            let loc = def.map(|d| query::span_loc(&d.query_loc, &d.query, e.span));
            Err(diagnostic_error(space, &Diagnostic::error(loc, e.message)))
        }
    }
}

/// The JSON kinds of the values of every custom trait key of `call` calls in `table`.
pub async fn trait_kinds(
    ctx: &SessionContext,
    table: &str,
    call: &str,
) -> EngineResult<BTreeMap<String, BTreeSet<String>>> {
    let sql = TRAIT_KEYS.replace("{table}", table).replace("{call}", call);
    let mut kinds: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for b in ctx.sql(&sql).await?.collect().await? {
        let cast = |i: usize| {
            datafusion::arrow::compute::cast(b.column(i), &DataType::Utf8)
                .map_err(datafusion::error::DataFusionError::from)
        };
        let (keys, ks) = (cast(0)?, cast(1)?);
        for i in 0..b.num_rows() {
            let k = keys.as_string::<i32>().value(i).to_string();
            let kind = ks.as_string::<i32>();
            let entry = kinds.entry(k).or_default();
            if !kind.is_null(i) {
                entry.insert(kind.value(i).to_string());
            }
        }
    }
    Ok(kinds)
}

/// The custom traits of `call` calls with these keys and kinds: each key with the type of its
/// kinds, unless its name is taken or dotted (then it goes into `skipped`).
pub fn choose_traits(
    kinds: &BTreeMap<String, BTreeSet<String>>,
    call: &str,
    taken: &BTreeSet<String>,
    skipped: &mut Vec<String>,
) -> Vec<CustomTrait> {
    let mut out = Vec::new();
    let mut used = taken.clone();
    for (key, ks) in kinds {
        let column = column_name(key);
        // A dotted key cannot be told from a nested path; a name can be used only once.
        if key.contains('.') || !used.insert(column.clone()) {
            skipped.push(format!("{call}:{key}"));
            continue;
        }
        out.push(CustomTrait {
            data_type: custom_trait_type(ks.iter().map(String::as_str)),
            key: key.clone(),
            column,
        });
    }
    out
}

/// The custom traits of `call` calls in `table` (see [`choose_traits`]).
pub(super) async fn discover_traits(
    ctx: &SessionContext,
    table: &str,
    call: &str,
    taken: &BTreeSet<String>,
    skipped: &mut Vec<String>,
) -> EngineResult<Vec<CustomTrait>> {
    let kinds = trait_kinds(ctx, table, call).await?;
    Ok(choose_traits(&kinds, call, taken, skipped))
}

pub(super) fn type_names(
    cols: impl IntoIterator<Item = (String, DataType)>,
) -> BTreeMap<String, String> {
    cols.into_iter().map(|(k, t)| (k, t.to_string())).collect()
}

/// Runs stages 3 and 4: registers `profile_events`, `cohort_profiles`, `account_links` and
/// `cohort_accounts`. `sql_traits` have run already: their tables `(profile_id, trait
/// columns...)` are merged through the identity graph, and the profiles they started join
/// the profiles of the graph.
pub async fn run(rc: &mut RunCtx<'_>, sql_traits: &[SqlTraitResult]) -> EngineResult<ProfileStats> {
    let rules = &ResolvedRules::from_spec(&rc.space.identity);
    let step = std::time::Instant::now();
    let as_of_micros = rc.as_of.timestamp_micros();
    let scratch = rc.scratch.clone();
    let scratch = Some(scratch.path());
    let (ctx, sink, space) = (&rc.session, &mut rc.sink, rc.space);
    let k = rc.join_buckets;
    let reuse = rc.reuse.as_ref();
    let mut stats = ProfileStats {
        recompute: rc.recompute.clone(),
        ..Default::default()
    };
    let touched = match reuse {
        Some(_) => Some(ctx.table(stage::TOUCHED).await?.into_unoptimized_plan()),
        None => None,
    };
    // With the untouched profiles keeping their values, only the touched ones' events, each
    // with its profile, kept for every later pass (`profile_events`).
    let events = ctx.table(stage::EVENTS).await?.select(vec![
        col("message_id").alias("ev_message_id"),
        col("type"),
        col("event"),
        col("timestamp"),
        col("group_id"),
        col("properties"),
        col("traits"),
        col("context"),
    ])?;
    let event_profiles = ctx
        .table(stage::EVENT_PROFILES)
        .await?
        .select_columns(&["message_id", "profile_id"])?;
    // Every event with its profile, not kept: what edited definitions and `recent_events`
    // read when `profile_events` holds the touched profiles' only (their own filters narrow
    // it before the join).
    let events = events.into_unoptimized_plan();
    let all_events = with_profiles(
        event_profiles.clone().into_unoptimized_plan(),
        events.clone(),
    )?;
    if reuse.is_some() {
        ctx.deregister_table(stage::ALL_EVENTS)?;
        ctx.register_table(
            stage::ALL_EVENTS,
            DataFrame::new(ctx.state(), all_events.clone()).into_view(),
        )?;
    }
    let event_profiles = match &touched {
        Some(t) => DataFrame::new(
            ctx.state(),
            touched_only(
                event_profiles.into_unoptimized_plan(),
                "profile_id",
                t.clone(),
            )?,
        ),
        None => event_profiles,
    };
    // A full run's `events` are its history up to the as-of (a script's are read from the
    // sources, and it records the plain join).
    let shared = touched.is_none() && k > 1 && !sink.recording();
    match scratch.filter(|_| shared) {
        Some(dir) => {
            let layout = bucketed::Layout {
                scratch: dir,
                join_buckets: k,
                write_parts: rc.write_parts,
            };
            let rows = profile_events::keep_published(ctx, layout, as_of_micros).await?;
            rc.published_events = Some(rows);
        }
        None => profile_events::keep(ctx, sink, event_profiles, events, (k, scratch)).await?,
    }
    tracing::debug!(
        secs = step.elapsed().as_secs_f64(),
        "profile events written"
    );
    let step = std::time::Instant::now();
    // Later passes read it by name (a script, too, makes `profile_events` once).
    let pe = ctx
        .table(stage::PROFILE_EVENTS)
        .await?
        .into_unoptimized_plan();

    // Names already taken: fixed columns, identifier columns, computed and SQL traits.
    let ids = IdColumn::of_rules(rules);
    let mut taken: BTreeSet<String> = PROFILE_COLUMNS.iter().map(|s| s.to_string()).collect();
    taken.extend(ids.iter().map(|i| column_name(&i.id_type)));
    taken.extend(
        space
            .traits
            .iter()
            .filter(|t| t.entity == EntityType::Users)
            .map(|t| t.key.clone()),
    );
    for t in sql_traits {
        taken.extend(t.columns.iter().map(|(c, _)| c.clone()));
    }

    // Profiles.
    let identities = ctx.table(stage::ID_IDENTITIES).await?.select_columns(&[
        "profile_id",
        "id_type",
        "id_value",
        "first_seen",
        "last_seen",
    ])?;
    let started = started_profiles(sql_traits)?;
    stats.sql_trait_profiles = started.num_rows() as u64;
    // A script gets the started profiles as a plan over each trait's recorded table.
    let recorded = match sink.recording() && !sql_traits.is_empty() {
        true => Some(started_plan(ctx, identities.clone(), sql_traits).await?),
        false => None,
    };
    let identities = if started.num_rows() > 0 {
        identities.union(ctx.read_batch(started)?)?
    } else {
        identities
    };
    let identities = identities.into_unoptimized_plan();
    let base = profile_base_plan(identities.clone(), &ids)?;
    let recorded = recorded
        .map(|i| profile_base_plan(i.into_unoptimized_plan(), &ids))
        .transpose()?;
    let mut tables = Vec::new();
    // Traits evaluated for every profile in a run that keeps the untouched profiles' values.
    let mut whole_tables = Vec::new();
    stats.custom_kinds = match reuse {
        Some(r) => r.kinds.clone(),
        None => trait_kinds(ctx, stage::PROFILE_EVENTS, "identify").await?,
    };
    let custom = choose_traits(
        &stats.custom_kinds,
        "identify",
        &taken,
        &mut stats.skipped_traits,
    );
    tracing::debug!(custom = custom.len(), "custom traits found");
    if !custom.is_empty() {
        let calls = LogicalPlanBuilder::from(pe.clone())
            .filter(col("type").eq(lit("identify")))?
            .build()?;
        tables.push(TraitTable {
            plan: custom_traits_plan(calls, "profile_id", &custom)?,
            key: "profile_id".into(),
            columns: custom.iter().map(|c| (c.column.clone(), None)).collect(),
        });
        stats.custom_traits = type_names(
            custom
                .iter()
                .map(|c| (c.column.clone(), c.data_type.clone())),
        );
    }
    // Edited traits are evaluated for every profile, the others for the touched ones; the
    // kept ones (a run asked for some definitions only) not at all.
    let edited = reuse.map(|r| &r.edited.traits);
    let whole = |k: &str| edited.is_some_and(|e| e.contains(k));
    let kept_traits = &rc.kept.traits;
    let is_kept = |k: &str| kept_traits.contains(k);
    if let Some((plan, cols)) = traits_table(
        space,
        EntityType::Users,
        pe.clone(),
        "profile_id",
        as_of_micros,
        &|k| !whole(k) && !is_kept(k),
    )? {
        stats.computed_traits.extend(type_names(
            cols.iter().map(|c| (c.key.clone(), c.data_type.clone())),
        ));
        tables.push(TraitTable {
            plan,
            key: "profile_id".into(),
            columns: cols
                .iter()
                .map(|c| (c.key.clone(), empty_value(c.reducer)))
                .collect(),
        });
    }
    if let Some((plan, cols)) = match edited.is_some_and(|e| !e.is_empty()) {
        true => traits_table(
            space,
            EntityType::Users,
            all_events,
            "profile_id",
            as_of_micros,
            &whole,
        )?,
        false => None,
    } {
        stats.computed_traits.extend(type_names(
            cols.iter().map(|c| (c.key.clone(), c.data_type.clone())),
        ));
        whole_tables.push(TraitTable {
            plan,
            key: "profile_id".into(),
            columns: cols
                .iter()
                .map(|c| (c.key.clone(), empty_value(c.reducer)))
                .collect(),
        });
    }
    if let (Some(r), Some((_, cols))) = (
        reuse,
        traits_table(
            space,
            EntityType::Users,
            pe.clone(),
            "profile_id",
            as_of_micros,
            &is_kept,
        )?,
    ) {
        // Their plan is not run: the column types and empty values are what a run gives.
        stats.computed_traits.extend(type_names(
            cols.iter().map(|c| (c.key.clone(), c.data_type.clone())),
        ));
        tables.push(TraitTable {
            plan: previous_columns(
                r.prev_profiles.logical_plan().clone(),
                "profile_id",
                &cols
                    .iter()
                    .map(|c| (c.key.clone(), c.data_type.clone()))
                    .collect::<Vec<_>>(),
            )?,
            key: "profile_id".into(),
            columns: cols
                .iter()
                .map(|c| (c.key.clone(), empty_value(c.reducer)))
                .collect(),
        });
    }
    // The columns in the order a run evaluating every profile gives them.
    let order: Vec<String> = base
        .schema()
        .fields()
        .iter()
        .map(|f| f.name().clone())
        .chain(custom.iter().map(|c| c.column.clone()))
        .chain(
            parsed_traits(space, EntityType::Users)?
                .iter()
                .map(|(d, _)| d.key.clone()),
        )
        .chain(
            sql_traits
                .iter()
                .flat_map(|t| t.columns.iter().map(|(c, _)| c.clone())),
        )
        .collect();
    for t in sql_traits {
        tables.push(TraitTable {
            plan: ctx.table(t.table.as_str()).await?.into_unoptimized_plan(),
            key: "profile_id".into(),
            columns: t.columns.iter().map(|(c, _)| (c.clone(), None)).collect(),
        });
        for (c, ty) in &t.columns {
            stats.sql_traits.insert(c.clone(), ty.to_string());
        }
    }
    // In the order of `order` (a run that kept the untouched profiles' values joins its
    // traits in another order), by profile.
    let sorted = |rows: LogicalPlan, reorder: bool| -> EngineResult<LogicalPlan> {
        let mut b = LogicalPlanBuilder::from(rows);
        if reorder {
            let cols = order.iter().map(|c| {
                datafusion::logical_expr::Expr::Column(datafusion::common::Column::new_unqualified(
                    c.as_str(),
                ))
            });
            b = b.project(cols.collect::<Vec<_>>())?;
        }
        Ok(b.sort(vec![col("profile_id").sort(true, false)])?.build()?)
    };
    let rows = match (reuse, &touched) {
        // Only the touched profiles are assembled; every other profile's row is the one the
        // previous run published (its identifiers and traits cannot have changed), then the
        // traits evaluated for every profile are joined onto all of them.
        (Some(r), Some(t)) => {
            let identities = touched_only(identities, "profile_id", t.clone())?;
            let now = join_traits(profile_base_plan(identities, &ids)?, "profile_id", tables)?;
            let prev = r.prev_profiles.logical_plan().clone();
            let all = with_kept(now, prev, t.clone(), "profile_id")?;
            sorted(join_traits(all, "profile_id", whole_tables)?, true)?
        }
        _ => {
            let base_rows = recorded.unwrap_or(base.clone());
            let rows = join_traits(base_rows, "profile_id", copies(&tables))?;
            sink.table(stage::PROFILES, &sorted(rows, false)?);
            sorted(join_traits(base, "profile_id", tables)?, false)?
        }
    };
    keep(ctx, rows, stage::PROFILES, scratch).await?;
    stats.profiles = ctx.table(stage::PROFILES).await?.count().await? as u64;
    if reuse.is_none() {
        stats.recompute.profiles = stats.profiles;
    }
    let secs = step.elapsed().as_secs_f64();
    tracing::debug!(profiles = stats.profiles, secs, "profiles written");
    let step = std::time::Instant::now();
    super::accounts::run(rc, &mut stats).await?;
    tracing::debug!(secs = step.elapsed().as_secs_f64(), "accounts written");
    Ok(stats)
}

/// Copies of trait tables (a script's plan and the run's are built from the same ones).
fn copies(tables: &[TraitTable]) -> Vec<TraitTable> {
    tables
        .iter()
        .map(|t| TraitTable {
            plan: t.plan.clone(),
            key: t.key.clone(),
            columns: t.columns.clone(),
        })
        .collect()
}
