//! The live engine's starting point: a space's latest published run read into memory (its
//! identifiers, its profiles' rows, its audience members and its event history), so that live
//! values start where the batch left off.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::sync::Arc;

use datafusion::arrow::array::{Array, AsArray, RecordBatch};
use datafusion::arrow::compute::concat_batches;
use datafusion::arrow::datatypes::TimestampMicrosecondType;
use datafusion::logical_expr::{LogicalPlan, LogicalPlanBuilder, col};
use datafusion::prelude::SessionContext;

use super::history::{History, text, values};
use super::identity::{Graph, Seen};
use crate::error::EngineResult;
use crate::plan::identity::ResolvedRules;
use crate::plan::profiles::{CustomTrait, column_name};
use crate::run::stages::profiles::choose_traits;
use crate::run::tables::EVENT_COLUMNS;
use crate::spec::{EntityType, Space};
use crate::store::manifest;

/// A published run in memory.
pub struct Published {
    pub run_id: String,
    /// The definitions evaluated live (see [`super::defs`]), each computed trait and audience
    /// with its first appearance as the run's manifest records it (what `backfill: false`
    /// counts from; see [`crate::run::backfill`]).
    pub space: Space,
    /// Computed trait columns and audiences that keep their published values, and why nothing
    /// is evaluated live, if so (see [`super::defs`]).
    pub kept_traits: Vec<String>,
    pub kept_audiences: BTreeSet<String>,
    pub paused: Option<String>,
    /// Definitions that wait for the next run, as [`super::defs::LiveDefs::waiting`].
    pub waiting: Vec<String>,
    /// The window edges of the live definitions, swept from the run's as-of on.
    pub clock: super::clock::Clock,
    pub graph: Graph,
    pub history: History,
    /// Every published profile row, and each profile's row in it.
    pub profiles: RecordBatch,
    pub profile_rows: HashMap<String, usize>,
    /// Published members: audience key -> profile ids.
    pub members: HashMap<String, HashSet<String>>,
    /// Custom trait columns (identify calls), typed by the kinds of their values.
    pub custom: Vec<CustomTrait>,
    /// The kinds of values of every custom trait key, published and received since.
    pub kinds: BTreeMap<String, BTreeSet<String>>,
    /// Column names custom traits cannot take (fixed columns, identifiers, computed and SQL
    /// traits).
    pub taken: BTreeSet<String>,
    /// SQL trait columns of `profiles` (kept as published: SQL traits are batch).
    pub sql_columns: Vec<String>,
    /// `accounts` and `account_links` as published (audience inputs).
    pub accounts: LogicalPlan,
    pub links: LogicalPlan,
}

async fn scan(ctx: &SessionContext, space: &Space, table: &str) -> EngineResult<LogicalPlan> {
    let provider = crate::read::published_table(space, table)
        .await?
        .ok_or_else(|| {
            crate::error::EngineError::NotFound(format!(
                "space `{}` has no published `{table}` table: run it once first",
                space.name
            ))
        })?;
    let _ = ctx;
    Ok(LogicalPlanBuilder::scan(
        table,
        datafusion::datasource::provider_as_source(provider),
        None,
    )?
    .build()?)
}

async fn collect(ctx: &SessionContext, plan: LogicalPlan) -> EngineResult<Vec<RecordBatch>> {
    Ok(ctx.execute_logical_plan(plan).await?.collect().await?)
}

/// Reads the latest published run of `space`; None before its first run.
pub async fn published(ctx: &SessionContext, space: &Space) -> EngineResult<Option<Published>> {
    let out = crate::read::output_location(space)?;
    let Some(m) = manifest::read(&out).await? else {
        return Ok(None);
    };
    let rules = ResolvedRules::from_spec(&space.identity);
    let mut graph = Graph::new(
        &rules
            .types
            .iter()
            .map(|t| {
                (
                    t.id_type.clone(),
                    crate::identity::replay::Limit {
                        max: t.limit,
                        window: t.window_micros(),
                    },
                )
            })
            .collect::<Vec<_>>(),
    );
    // Identifiers.
    let ids = LogicalPlanBuilder::from(scan(ctx, space, "identities").await?)
        .project(
            [
                "profile_id",
                "id_type",
                "id_value",
                "first_seen",
                "last_seen",
            ]
            .into_iter()
            .map(col)
            .collect::<Vec<_>>(),
        )?
        .build()?;
    for b in collect(ctx, ids).await? {
        let (p, t, v) = (text(b.column(0))?, text(b.column(1))?, text(b.column(2))?);
        let cast = |i: usize| {
            datafusion::arrow::compute::cast(
                b.column(i),
                &datafusion::arrow::datatypes::DataType::Timestamp(
                    datafusion::arrow::datatypes::TimeUnit::Microsecond,
                    None,
                ),
            )
        };
        let (f, l) = (cast(3)?, cast(4)?);
        let (f, l) = (
            f.as_primitive::<TimestampMicrosecondType>(),
            l.as_primitive::<TimestampMicrosecondType>(),
        );
        for i in 0..b.num_rows() {
            graph.load(
                p.value(i),
                t.value(i),
                v.value(i),
                Seen {
                    first: f.value(i),
                    last: l.value(i),
                },
            );
        }
    }
    // Events: every published event with a profile, sorted by profile; every message id.
    let events = scan(ctx, space, "events").await?;
    let mut seen = HashSet::new();
    let mids = LogicalPlanBuilder::from(events.clone())
        .project(vec![col("message_id")])?
        .build()?;
    for b in collect(ctx, mids).await? {
        seen.extend(values(b.column(0))?.into_iter().flatten());
    }
    // Plain strings: a slice of a string view keeps the whole batch's buffers, so the
    // per-profile slices the live engine concatenates would copy them again and again.
    let plain = |c: &str| match c {
        "timestamp" => col(c),
        _ => datafusion::logical_expr::cast(col(c), datafusion::arrow::datatypes::DataType::Utf8)
            .alias(c),
    };
    let mut cols: Vec<_> = EVENT_COLUMNS.into_iter().map(plain).collect();
    cols.push(plain("profile_id"));
    let with_profile = LogicalPlanBuilder::from(events)
        .filter(col("profile_id").is_not_null())?
        .project(cols)?
        .sort(vec![col("profile_id").sort(true, false)])?
        .build()?;
    let df = ctx.execute_logical_plan(with_profile).await?;
    let schema = Arc::new(df.schema().as_arrow().clone());
    let batches = df.collect().await?;
    let history = History::new(schema, &batches, seen)?;
    // Profiles.
    let df = ctx
        .execute_logical_plan(scan(ctx, space, "profiles").await?)
        .await?;
    let pschema = Arc::new(df.schema().as_arrow().clone());
    let profiles = concat_batches(&pschema, &df.collect().await?)?;
    let pid = text(profiles.column(pschema.index_of("profile_id")?))?;
    let profile_rows = (0..pid.len())
        .map(|i| (pid.value(i).to_string(), i))
        .collect();
    // Members.
    let mut members: HashMap<String, HashSet<String>> = HashMap::new();
    let mem = LogicalPlanBuilder::from(scan(ctx, space, "audience_membership").await?)
        .filter(col("entity_type").eq(datafusion::logical_expr::lit("users")))?
        .project(vec![col("audience_key"), col("profile_id")])?
        .build()?;
    for b in collect(ctx, mem).await? {
        let (a, p) = (text(b.column(0))?, text(b.column(1))?);
        for i in 0..b.num_rows() {
            if !p.is_null(i) {
                members
                    .entry(a.value(i).to_string())
                    .or_default()
                    .insert(p.value(i).to_string());
            }
        }
    }
    // Which profile columns are custom and SQL traits.
    let computed: BTreeSet<String> = space
        .traits
        .iter()
        .filter(|t| t.entity == EntityType::Users)
        .map(|t| t.key.clone())
        .collect();
    let mut fixed: BTreeSet<String> = ["profile_id", "first_seen", "last_seen"]
        .into_iter()
        .map(String::from)
        .collect();
    fixed.extend(rules.types.iter().map(|t| column_name(&t.id_type)));
    let sql_columns: Vec<String> = m
        .sql_traits
        .iter()
        .flatten()
        .flat_map(|(_, s)| s.columns.clone())
        .filter(|c| pschema.index_of(c).is_ok())
        .collect();
    let kinds: BTreeMap<String, BTreeSet<String>> =
        m.custom_trait_kinds.clone().unwrap_or_default();
    let mut taken = fixed;
    taken.extend(computed);
    taken.extend(sql_columns.iter().cloned());
    let custom = custom_traits(&kinds, &taken);
    let as_of = chrono::DateTime::parse_from_rfc3339(&m.as_of)
        .map(|t| t.with_timezone(&chrono::Utc))
        .unwrap_or_else(|_| chrono::Utc::now());
    let defs = super::defs::live_defs(space, &m);
    let kept_traits = defs
        .kept_traits
        .into_iter()
        .filter(|k| profiles.schema().index_of(k).is_ok())
        .collect();
    let live_space = crate::run::backfill::resolve(&defs.space, Some(&m), as_of);
    Ok(Some(Published {
        run_id: m.run_id.clone(),
        clock: super::clock::Clock::new(&live_space, as_of.timestamp_micros()),
        space: live_space,
        kept_traits,
        kept_audiences: defs.kept_audiences,
        paused: defs.paused,
        waiting: defs.waiting,
        graph,
        history,
        profiles,
        profile_rows,
        members,
        custom,
        kinds,
        taken,
        sql_columns,
        accounts: scan(ctx, space, "accounts").await?,
        links: scan(ctx, space, "account_links").await?,
    }))
}

/// The custom traits of identify calls with these kinds, as a batch run chooses them.
pub fn custom_traits(
    kinds: &BTreeMap<String, BTreeSet<String>>,
    taken: &BTreeSet<String>,
) -> Vec<CustomTrait> {
    choose_traits(kinds, "identify", taken, &mut Vec::new())
}
