//! Stage 2, identity: identifier occurrences -> profiles, with Segment's merge protection.
//!
//! The reference semantics are Segment's sequential ones ([`replay`]). At scale the stage
//! reaches the same answer in three steps:
//!
//! 1. the graph: identifiers are nodes (a stable 64-bit code of type and value), an event links
//!    the identifiers it carries; connected components by randomized contraction
//!    ([`components`]), starting from the previous run's components when the run is
//!    incremental;
//! 2. a component holding no more values of any type than its limit is one profile: no event
//!    in it can break a limit, so the sequential rule would merge exactly the same way;
//! 3. only the components that break a limit are replayed event by event.
//!
//! Profiles are then named: a profile that contains identifiers of previous profiles keeps
//! the id of the oldest of them (the others are recorded as merged into it); a new profile is
//! named after its earliest identifier, so a rebuild gives the same ids.
//!
//! The stage's fixed SQL is in `queries/identity/*.sql`. Its inputs are the session tables
//! `id_occurrences` (see `plan::identity`), `prev_graph (node, component)` and
//! `prev_identities (profile_id, id_type, id_value)`; the outputs are left registered as
//! `id_identities`, `id_violations`, `id_event_profiles` and `id_components`.

pub mod buckets;
pub mod components;
pub mod replay;
mod violating;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::time::Instant;

use datafusion::arrow::array::{
    Array, AsArray, Int64Array, RecordBatch, StringArray, StringBuilder,
};
use datafusion::arrow::datatypes::{
    DataType, Field, Int32Type, Int64Type, Schema, SchemaRef, TimestampMicrosecondType,
};
use datafusion::catalog::{MemTable, TableProvider};
use datafusion::common::{DataFusionError, Result};
use datafusion::prelude::SessionContext;

use components::materialize;

const EDGES: &str = include_str!("../../queries/identity/edges.sql");
const NODES: &str = include_str!("../../queries/identity/nodes.sql");
const SEED_EDGES: &str = include_str!("../../queries/identity/seed_edges.sql");
const COMPONENTS: &str = include_str!("../../queries/identity/components.sql");
const VIOLATING: &str = include_str!("../../queries/identity/violating.sql");
const VIOLATING_WINDOWED: &str = include_str!("../../queries/identity/violating_windowed.sql");
const COMPONENT_SIZES: &str = include_str!("../../queries/identity/component_sizes.sql");
const NODE_KEYS: &str = include_str!("../../queries/identity/node_keys.sql");
const KEYED: &str = include_str!("../../queries/identity/keyed_identities.sql");
const PROFILE_FIRSTS: &str = include_str!("../../queries/identity/profile_firsts.sql");
const PROFILE_CANDIDATES: &str = include_str!("../../queries/identity/profile_candidates.sql");
const IDENTITIES: &str = include_str!("../../queries/identity/identities.sql");
const EVENT_PROFILES: &str = include_str!("../../queries/identity/event_profiles.sql");
const VIOLATIONS: &str = include_str!("../../queries/identity/violations.sql");

/// One identifier type: its name and its limit, in priority order (index = rank).
#[derive(Clone, Debug)]
pub struct TypeLimit {
    pub id_type: String,
    pub limit: replay::Limit,
}

impl TypeLimit {
    /// What an identifier dropped for this limit records.
    pub fn broken_detail(&self) -> String {
        match self.limit.window {
            None => format!(
                "keeping it would put more than {} {} on one profile",
                self.limit.max, self.id_type
            ),
            Some(w) => format!(
                "keeping it would put more than {} {} added within {} on one profile",
                self.limit.max,
                self.id_type,
                window_text(w)
            ),
        }
    }
}

/// A window in words: `7 days`, `1 day`.
fn window_text(micros: i64) -> String {
    const DAY: i64 = 86_400_000_000;
    match micros / DAY {
        1 if micros % DAY == 0 => "1 day".into(),
        d if micros % DAY == 0 => format!("{d} days"),
        _ => format!("{} seconds", micros / 1_000_000),
    }
}

/// How the stage runs.
#[derive(Clone, Debug, Default)]
pub struct Options {
    /// Start from `prev_graph` (only its components that new edges reach are contracted).
    pub incremental: bool,
    /// Seeds the contraction's hashes.
    pub seed: u64,
    /// The occurrences in buckets of events, when the per-event queries must run one bucket
    /// at a time (see [`buckets`]).
    pub event_buckets: Option<buckets::EventBuckets>,
}

/// One of the largest components.
#[derive(Clone, Debug, serde::Serialize)]
pub struct ComponentSize {
    pub identifiers: i64,
    pub example: String,
}

/// What the stage did, for the run record.
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct IdentityStats {
    /// `full` or `incremental`.
    pub mode: String,
    /// Why a full rebuild, when it is one.
    pub reason: Option<String>,
    pub identifiers: u64,
    pub edges: u64,
    /// Edges left after mapping onto the previous components (= `edges` on a full rebuild).
    pub contracted_edges: u64,
    pub rounds: usize,
    pub edges_per_round: Vec<u64>,
    pub components: u64,
    pub violating_components: u64,
    pub replayed_events: u64,
    pub profiles: u64,
    pub merges: u64,
    pub violations: u64,
    pub largest_components: Vec<ComponentSize>,
    /// Events this run read or made visible (a run that resolved only what they reach).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub changed_events: Option<u64>,
    /// Identifiers resolved again (the same); `identifiers` counts them all.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub affected_identifiers: Option<u64>,
    /// Seconds per step.
    pub timings: BTreeMap<String, f64>,
}

/// Schema of `prev_graph` and of the published `identity_graph`.
pub fn graph_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("node", DataType::Int64, false),
        Field::new("component", DataType::Int64, true),
    ]))
}

/// Schema of `prev_identities`.
pub fn prev_identities_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("profile_id", DataType::Utf8, true),
        Field::new("id_type", DataType::Utf8, true),
        Field::new("id_value", DataType::Utf8, true),
    ]))
}

/// Schema of the merges a run records.
pub fn merges_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("merged_profile_id", DataType::Utf8, false),
        Field::new("profile_id", DataType::Utf8, false),
    ]))
}

fn empty_table(schema: SchemaRef) -> Result<Arc<MemTable>> {
    Ok(Arc::new(MemTable::try_new(
        schema.clone(),
        vec![vec![RecordBatch::new_empty(schema)]],
    )?))
}

fn set(ctx: &SessionContext, name: &str, t: Arc<dyn TableProvider>) -> Result<()> {
    ctx.deregister_table(name)?;
    ctx.register_table(name, t)?;
    Ok(())
}

/// Registers empty `prev_graph` / `prev_identities` unless the caller registered them.
pub fn ensure_previous(ctx: &SessionContext) -> Result<()> {
    if !ctx.table_exist("prev_graph")? {
        ctx.register_table("prev_graph", empty_table(graph_schema())?)?;
    }
    if !ctx.table_exist("prev_identities")? {
        ctx.register_table("prev_identities", empty_table(prev_identities_schema())?)?;
    }
    Ok(())
}

/// A text column as `StringArray`, whatever string type the table stored (Delta tables read
/// back as views).
pub fn text_column(a: &datafusion::arrow::array::ArrayRef) -> Result<StringArray> {
    let c = datafusion::arrow::compute::cast(a, &DataType::Utf8)?;
    Ok(c.as_string::<i32>().clone())
}

/// The profile id of a new profile named after identifier `node`.
pub fn new_profile_id(node: i64) -> String {
    format!("use_{:016x}", node as u64)
}

/// Runs the stage. `id_occurrences` must be registered; `prev_graph` and `prev_identities`
/// may be. Returns the stats and the merges `(merged_profile_id, profile_id)` of this run.
pub async fn resolve(
    ctx: &SessionContext,
    types: &[TypeLimit],
    opts: &Options,
) -> Result<(IdentityStats, Vec<(String, String)>)> {
    ensure_previous(ctx)?;
    let mut stats = IdentityStats {
        mode: if opts.incremental {
            "incremental"
        } else {
            "full"
        }
        .into(),
        ..Default::default()
    };
    let mut step = Instant::now();
    let mut lap = |stats: &mut IdentityStats, name: &str| {
        stats
            .timings
            .insert(name.to_string(), step.elapsed().as_secs_f64());
        step = Instant::now();
    };

    // Limits table.
    let type_schema = Arc::new(Schema::new(vec![
        Field::new("id_type", DataType::Utf8, false),
        Field::new("id_limit", DataType::Int64, false),
        Field::new("window_s", DataType::Int64, true),
    ]));
    let limits = RecordBatch::try_new(
        type_schema.clone(),
        vec![
            Arc::new(StringArray::from_iter_values(
                types.iter().map(|t| t.id_type.as_str()),
            )),
            Arc::new(Int64Array::from_iter_values(
                types.iter().map(|t| t.limit.max as i64),
            )),
            Arc::new(Int64Array::from_iter(
                types.iter().map(|t| t.limit.window.map(|w| w / 1_000_000)),
            )),
        ],
    )?;
    set(
        ctx,
        "id_types",
        Arc::new(MemTable::try_new(type_schema, vec![vec![limits]])?),
    )?;

    // 1. Nodes and edges.
    let (nodes, n) = materialize(ctx.sql(NODES).await?).await?;
    stats.identifiers = n;
    set(ctx, "id_nodes", nodes)?;
    check_collisions(ctx).await?;
    let (edges, n) = match &opts.event_buckets {
        Some(b) => buckets::edges(ctx, b, EDGES).await?,
        None => materialize(ctx.sql(EDGES).await?).await?,
    };
    stats.edges = n;
    set(ctx, "id_edges", edges)?;
    if !opts.incremental {
        set(ctx, "prev_graph", empty_table(graph_schema())?)?;
    }
    let (seed_edges, n) = materialize(ctx.sql(SEED_EDGES).await?).await?;
    stats.contracted_edges = n;
    lap(&mut stats, "graph");

    // 2. Components.
    let (labels, rounds) = components::connected_components(ctx, seed_edges, opts.seed).await?;
    stats.rounds = rounds.rounds;
    stats.edges_per_round = rounds.edges_per_round;
    set(ctx, "cc_labels", labels)?;
    let comps: Arc<dyn TableProvider> = match &opts.event_buckets {
        Some(b) => buckets::on_disk(ctx, b, "id_components", COMPONENTS).await?,
        None => materialize(ctx.sql(COMPONENTS).await?).await?.0,
    };
    set(ctx, "id_components", comps)?;
    ctx.deregister_table("cc_labels")?;
    stats.components = ctx
        .sql("SELECT COUNT(DISTINCT component) FROM id_components")
        .await?
        .collect()
        .await?
        .first()
        .map(|b| b.column(0).as_primitive::<Int64Type>().value(0) as u64)
        .unwrap_or(0);
    for b in ctx.sql(COMPONENT_SIZES).await?.collect().await? {
        let sizes = b.column(1).as_primitive::<Int64Type>();
        let ex = text_column(b.column(2))?;
        for i in 0..b.num_rows() {
            stats.largest_components.push(ComponentSize {
                identifiers: sizes.value(i),
                example: ex.value(i).to_string(),
            });
        }
    }
    lap(&mut stats, "components");

    // 3. Replay of the components that break a limit.
    // With per-period limits, a component is checked window by window (the plain check is
    // the one `cohort compile --script` shares).
    let violating_sql = if types.iter().any(|t| t.limit.window.is_some()) {
        VIOLATING_WINDOWED
    } else {
        VIOLATING
    };
    let (violating, n) = materialize(ctx.sql(violating_sql).await?).await?;
    stats.violating_components = n;
    set(ctx, "id_violating", violating)?;
    let (replayed, dropped, events) = violating::replay_violating(ctx, types).await?;
    stats.replayed_events = events;
    set(ctx, "id_replayed", replayed)?;
    set(ctx, "id_dropped", dropped)?;
    let (keys, _) = materialize(ctx.sql(NODE_KEYS).await?).await?;
    set(ctx, "id_node_keys", keys)?;
    lap(&mut stats, "replay");

    // 4. Names.
    let (keyed, _) = materialize(ctx.sql(KEYED).await?).await?;
    set(ctx, "id_keyed", keyed)?;
    let (ids, merges) = name_profiles(ctx).await?;
    stats.profiles = ids.num_rows() as u64;
    stats.merges = merges.len() as u64;
    set(
        ctx,
        "id_profile_ids",
        Arc::new(MemTable::try_new(ids.schema(), vec![vec![ids]])?),
    )?;
    let identities: Arc<dyn TableProvider> = match &opts.event_buckets {
        Some(b) => buckets::on_disk(ctx, b, "id_identities", IDENTITIES).await?,
        None => materialize(ctx.sql(IDENTITIES).await?).await?.0,
    };
    set(ctx, "id_identities", identities)?;
    let event_profiles: Arc<dyn TableProvider> = match &opts.event_buckets {
        Some(b) => buckets::event_profiles(ctx, b, EVENT_PROFILES).await?,
        None => materialize(ctx.sql(EVENT_PROFILES).await?).await?.0,
    };
    set(ctx, "id_event_profiles", event_profiles)?;
    let (violations, n) = materialize(ctx.sql(VIOLATIONS).await?).await?;
    stats.violations = n;
    set(ctx, "id_violations", violations)?;
    release_intermediates(ctx).await?;
    lap(&mut stats, "names");
    Ok((stats, merges))
}

/// The in-memory tables only the resolver reads. At 100 M events they hold some 7 M
/// identifiers several times over; the rest of the run reads the tables built from them
/// (`id_identities`, `id_components`, `id_event_profiles`, `id_violations`), so they are
/// deregistered (and freed) before the traits stage.
const INTERMEDIATES: [&str; 9] = [
    "id_types",
    "id_nodes",
    "id_edges",
    "id_violating",
    "id_replayed",
    "id_dropped",
    "id_node_keys",
    "id_keyed",
    "id_profile_ids",
];

async fn release_intermediates(ctx: &SessionContext) -> Result<()> {
    for name in INTERMEDIATES {
        if let Some(t) = ctx.deregister_table(name)? {
            tracing::debug!(table = name, bytes = memory_size(t.as_ref()), "released");
        }
    }
    for name in ["id_identities", "id_components", "id_violations"] {
        if let Ok(t) = ctx.table_provider(name).await
            && t.is::<MemTable>()
        {
            tracing::debug!(
                table = name,
                bytes = memory_size(t.as_ref()),
                "kept in memory"
            );
        }
    }
    Ok(())
}

/// The bytes an in-memory table's batches hold (0 for any other provider).
fn memory_size(t: &dyn TableProvider) -> usize {
    t.downcast_ref::<MemTable>().map_or(0, |m| {
        m.batches
            .iter()
            .filter_map(|p| p.try_read().ok())
            .map(|p| p.iter().map(|b| b.get_array_memory_size()).sum::<usize>())
            .sum()
    })
}

async fn check_collisions(ctx: &SessionContext) -> Result<()> {
    let rows = ctx
        .sql("SELECT id_type, id_value FROM id_nodes WHERE spellings > 1 LIMIT 3")
        .await?
        .collect()
        .await?;
    if let Some(b) = rows.iter().find(|b| b.num_rows() > 0) {
        let t = text_column(b.column(0))?;
        let v = text_column(b.column(1))?;
        return Err(DataFusionError::Execution(format!(
            "two identifiers share one 64-bit node code (first: {}:{}); rename one or \
             report this collision",
            t.value(0),
            v.value(0)
        )));
    }
    Ok(())
}

/// A sortable key of an identifier: first seen, rank, type, value.
type FirstKey = (i64, i32, String, String);

fn first_keys(b: &RecordBatch, key_col: usize) -> Result<Vec<FirstKey>> {
    let ts = b.column(key_col).as_primitive::<TimestampMicrosecondType>();
    let rank = b.column(key_col + 1).as_primitive::<Int32Type>();
    let t = text_column(b.column(key_col + 2))?;
    let v = text_column(b.column(key_col + 3))?;
    Ok((0..b.num_rows())
        .map(|i| {
            (
                ts.value(i),
                rank.value(i),
                t.value(i).to_string(),
                v.value(i).to_string(),
            )
        })
        .collect())
}

/// Names every profile key: `(id_profile_ids batch, merges)`.
async fn name_profiles(ctx: &SessionContext) -> Result<(RecordBatch, Vec<(String, String)>)> {
    // Each profile's earliest identifier.
    let mut profiles: Vec<(FirstKey, i64, i64)> = Vec::new(); // (key, profile_key, node)
    for b in ctx.sql(PROFILE_FIRSTS).await?.collect().await? {
        let pk = b.column(0).as_primitive::<Int64Type>();
        let node = b.column(1).as_primitive::<Int64Type>();
        for (i, k) in first_keys(&b, 2)?.into_iter().enumerate() {
            profiles.push((k, pk.value(i), node.value(i)));
        }
    }
    // Previous profiles each one contains.
    let mut candidates: HashMap<i64, Vec<(FirstKey, String)>> = HashMap::new();
    for b in ctx.sql(PROFILE_CANDIDATES).await?.collect().await? {
        let pk = b.column(0).as_primitive::<Int64Type>();
        let id = text_column(b.column(1))?;
        for (i, k) in first_keys(&b, 2)?.into_iter().enumerate() {
            if id.is_null(i) {
                continue;
            }
            candidates
                .entry(pk.value(i))
                .or_default()
                .push((k, id.value(i).to_string()));
        }
    }
    // Older profiles choose first, so a previous id split across two profiles stays with the
    // one that holds its earliest identifier.
    profiles.sort();
    let mut taken: HashSet<String> = HashSet::new();
    let mut keys = Int64Array::builder(profiles.len());
    let mut names = StringBuilder::new();
    let mut merges = Vec::new();
    for (_, pk, node) in &profiles {
        let mut cands = candidates.remove(pk).unwrap_or_default();
        cands.sort();
        let survivor = cands
            .iter()
            .map(|(_, id)| id.clone())
            .find(|id| !taken.contains(id));
        let name = survivor.unwrap_or_else(|| new_profile_id(*node));
        for (_, id) in &cands {
            if *id != name && taken.insert(id.clone()) {
                merges.push((id.clone(), name.clone()));
            }
        }
        taken.insert(name.clone());
        keys.append_value(*pk);
        names.append_value(&name);
    }
    let schema = Arc::new(Schema::new(vec![
        Field::new("profile_key", DataType::Int64, false),
        Field::new("profile_id", DataType::Utf8, false),
    ]));
    let batch = RecordBatch::try_new(
        schema,
        vec![Arc::new(keys.finish()), Arc::new(names.finish())],
    )?;
    merges.sort();
    Ok((batch, merges))
}
