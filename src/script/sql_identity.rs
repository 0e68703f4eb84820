//! The identity stage as SQL statements for another engine (PostgreSQL, DuckDB, Spark,
//! Snowflake, BigQuery), for `cohort compile --script`.
//!
//! A script must resolve identities exactly as [`crate::identity::resolve`] does on a full
//! rebuild (no previous run), so the tables it leaves are row for row the ones Cohort
//! publishes. The steps that are plain SQL are the run's own: the files of
//! `queries/identity/` (which `crate::identity` runs in DataFusion) are parsed and written in
//! the target dialect ([`query_sql`]: text ordered byte-wise, DataFusion's functions
//! rewritten). Only what the run does in Rust has a SQL rendition of its own, per dialect
//! ([`ScriptDialect::components`], [`ScriptDialect::replay`]):
//! - components: the run contracts the graph in rounds (`crate::identity::components`); the
//!   script propagates the smallest label until nothing changes. Both label a component by its
//!   smallest node, so `id_components` is the same table.
//! - the replay of the components that break a limit (`crate::identity::replay`): the
//!   sequential rule in a PostgreSQL `DO` block, or a DuckDB recursive CTE that takes each
//!   violating component's events one per iteration. The identifiers an event keeps are always
//!   a prefix of its identifiers sorted by (rank, value): the longest prefix that breaks no
//!   limit (at least one); every identifier after it is dropped with the limit its prefix
//!   broke.
//! - names: on a full rebuild every profile is named after its earliest identifier
//!   (`profile_firsts.sql`), which the run does in Rust together with the merges of an
//!   incremental run.
//!
//! Input: a table `id_occurrences (message_id text, timestamp timestamptz, id_type text,
//! id_value text, rank integer, node bigint, violation text, violation_detail text)` exactly as
//! the occurrence plan ([`crate::plan::identity::occurrences`]) produces it (`node` is
//! `cohort_id_node(id_type, id_value)`, see [`functions`]).
//!
//! Output tables (the engine's names and columns):
//! - `id_components (node bigint, component bigint)`: every usable identifier, labelled by the
//!   smallest node of its connected component (the published `identity_graph`);
//! - `id_identities (profile_id, id_type, id_value, first_seen, last_seen)`;
//! - `id_event_profiles (message_id, profile_id)`;
//! - `id_violations (message_id, timestamp, id_type, id_value, rule, detail, profile_id)`.

use datafusion::common::Result;

use super::dialect::{ScriptDialect, query_sql};
use super::unparse::SqlDialect;
use crate::identity::TypeLimit;
use crate::identity::replay::Limit;
use crate::plan::identity::IdType;

/// The steps the script shares with the run: the very files `crate::identity` runs.
mod shared {
    pub const NODES: &str = include_str!("../../queries/identity/nodes.sql");
    pub const EDGES: &str = include_str!("../../queries/identity/edges.sql");
    pub const VIOLATING: &str = include_str!("../../queries/identity/violating.sql");
    pub const VIOLATING_WINDOWED: &str =
        include_str!("../../queries/identity/violating_windowed.sql");
    pub const REPLAY_INPUT: &str = include_str!("../../queries/identity/replay_input.sql");
    pub const NODE_KEYS: &str = include_str!("../../queries/identity/node_keys.sql");
    pub const KEYED: &str = include_str!("../../queries/identity/keyed_identities.sql");
    pub const PROFILE_FIRSTS: &str = include_str!("../../queries/identity/profile_firsts.sql");
    pub const IDENTITIES: &str = include_str!("../../queries/identity/identities.sql");
    pub const EVENT_PROFILES: &str = include_str!("../../queries/identity/event_profiles.sql");
    pub const VIOLATIONS: &str = include_str!("../../queries/identity/violations.sql");
}

/// Scratch tables the statements create and drop again at the end.
const SCRATCH: [&str; 13] = [
    "id_types",
    "id_nodes",
    "id_edges",
    "id_adjacency",
    "id_violating",
    "id_replay_events",
    "id_replayed",
    "id_replay_dropped",
    "id_dropped",
    "id_node_keys",
    "id_keyed",
    "id_profile_ids",
    "id_replay_state",
];

/// Output tables.
pub const OUTPUTS: [&str; 4] = [
    "id_components",
    "id_identities",
    "id_event_profiles",
    "id_violations",
];

/// The node hash's constants (see [`crate::functions::node_code`]), for the dialects'
/// `cohort_id_node`.
pub(crate) const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
pub(crate) const FNV_PRIME: u64 = 0x0000_0100_0000_01b3;
pub(crate) const MIX1: u64 = 0xff51_afd7_ed55_8ccd;
pub(crate) const MIX2: u64 = 0xc4ce_b9fe_1a85_ec53;

/// Statements defining the functions the identity SQL (and the occurrence plan) uses:
/// `cohort_id_node(id_type text, id_value text) -> bigint`, bit-identical to
/// [`crate::functions::node_code`] (FNV-1a over `type NUL value` as UTF-8, then a
/// 64-bit finalizer), and `cohort_id_profile(node bigint) -> text`, the name of a profile
/// started by identifier `node` ([`crate::identity::new_profile_id`]). DuckDB gets macros
/// (and the helper macros of the replay); PostgreSQL gets SQL / plpgsql functions.
pub fn functions(dialect: SqlDialect) -> Result<Vec<String>> {
    Ok(dialect.script_or_err()?.identity_functions())
}

/// The statements, in order, that resolve `id_occurrences` into the output tables (see the
/// module docs) under `types` (rank = priority, limit per type). Each statement runs as is;
/// [`functions`] must have run first in the same database.
pub fn statements(dialect: SqlDialect, types: &[IdType]) -> Result<Vec<String>> {
    steps(dialect.script_or_err()?, types)
}

/// A type's limit as the replay counts it.
fn limit_of(t: &IdType) -> Limit {
    Limit {
        max: t.limit,
        window: t.window_micros(),
    }
}

/// [`statements`] in `d`.
pub fn steps(d: &dyn ScriptDialect, types: &[IdType]) -> Result<Vec<String>> {
    let mut out: Vec<String> = SCRATCH
        .iter()
        .chain(OUTPUTS.iter())
        .map(|t| d.drop_table(t))
        .collect();

    // Types, their limits and the detail text of a dropped identifier.
    out.push(
        "-- The identifier types: rank (0 = highest priority), limit per profile, and the detail\n\
         -- an identifier dropped for breaking the limit records.\n\
         -- A per-period limit counts the values added within its window (window_s seconds).\n\
         CREATE TABLE id_types (id_type TEXT, rank integer, id_limit bigint, window_s bigint,\n\
         \x20                      limit_detail TEXT)"
            .replace("TEXT", d.text_type()),
    );
    if !types.is_empty() {
        let rows: Vec<String> = types
            .iter()
            .map(|t| {
                let limit = TypeLimit {
                    id_type: t.id_type.clone(),
                    limit: limit_of(t),
                };
                format!(
                    "({}, {}, {}, {}, {})",
                    d.quote_str(&t.id_type),
                    t.rank,
                    t.limit,
                    t.window_micros()
                        .map_or("NULL".into(), |w| (w / 1_000_000).to_string()),
                    d.quote_str(&limit.broken_detail())
                )
            })
            .collect();
        out.push(format!("INSERT INTO id_types VALUES {}", rows.join(", ")));
    }
    let ranks = types.iter().map(|t| t.rank as usize + 1).max().unwrap_or(0);
    let mut limits = vec![Limit::ever(0); ranks];
    for t in types {
        limits[t.rank as usize] = limit_of(t);
    }

    // 1. Nodes and edges.
    out.push(step(d, "id_nodes", shared::NODES)?);
    out.push(step(d, "id_edges", shared::EDGES)?);
    out.push(step(
        d,
        "id_adjacency",
        "-- Both directions of every edge, for the label propagation.\n\
         SELECT a AS node, b AS nbr FROM id_edges\n\
         UNION ALL\n\
         SELECT b AS node, a AS nbr FROM id_edges",
    )?);

    // 2. Components, labelled by their smallest node.
    out.extend(d.components());

    // 3. Replay of the components that break a limit.
    // With per-period limits, a component is checked window by window, as in a run.
    let violating = if limits.iter().any(|l| l.window.is_some()) {
        shared::VIOLATING_WINDOWED
    } else {
        shared::VIOLATING
    };
    out.push(step(d, "id_violating", violating)?);
    let input: Vec<String> = query_sql(shared::REPLAY_INPUT, d)?
        .lines()
        .map(|l| format!("    {l}"))
        .collect();
    out.extend(d.replay(&input.join("\n"), &limits));
    out.push(step(
        d,
        "id_dropped",
        "-- The identifiers the replay dropped, as the run's replay leaves them: the identifier\n\
         -- as the event carried it, and the limit keeping it would have broken.\n\
         SELECT d.message_id, d.timestamp, d.node, o.id_type, o.id_value,\n\
         \x20      t.limit_detail AS detail\n\
         FROM id_replay_dropped d\n\
         JOIN id_occurrences o ON d.message_id = o.message_id AND d.node = o.node\n\
         JOIN id_types t ON d.broken = t.rank\n\
         WHERE o.violation IS NULL",
    )?);
    out.push(step(d, "id_node_keys", shared::NODE_KEYS)?);
    out.push(step(d, "id_keyed", shared::KEYED)?);

    // 4. Names: on a full rebuild every profile is named after its earliest identifier.
    out.push(step(
        d,
        "id_profile_ids",
        &format!(
            "-- On a full rebuild every profile is a new one, named after its earliest\n\
             -- identifier (first seen, then priority, type, value).\n\
             SELECT profile_key, cohort_id_profile(node) AS profile_id\n\
             FROM (\n{}\n) AS firsts",
            shared::PROFILE_FIRSTS
        ),
    )?);
    out.push(step(d, "id_identities", shared::IDENTITIES)?);
    out.push(step(d, "id_event_profiles", shared::EVENT_PROFILES)?);
    out.push(step(d, "id_violations", shared::VIOLATIONS)?);
    out.extend(SCRATCH.iter().map(|t| d.drop_table(t)));
    Ok(out)
}

/// `CREATE TABLE table AS` the DataFusion SQL `sql` in `d`, after the comment lines `sql`
/// starts with.
fn step(d: &dyn ScriptDialect, table: &str, sql: &str) -> Result<String> {
    let comments: String = sql
        .lines()
        .take_while(|l| l.trim_start().starts_with("--"))
        .map(|l| format!("{l}\n"))
        .collect();
    Ok(format!(
        "{comments}{}",
        d.create_table_as(table, &query_sql(sql, d)?)
    ))
}

/// [`functions`] then [`statements`] as one script text, each statement ended by `;`.
pub fn script(dialect: SqlDialect, types: &[IdType]) -> Result<String> {
    let mut s = String::new();
    for stmt in functions(dialect)?
        .into_iter()
        .chain(statements(dialect, types)?)
    {
        s.push_str(&stmt);
        s.push_str(";\n\n");
    }
    Ok(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn other_dialects_are_refused() {
        assert!(statements(SqlDialect::DataFusion, &[]).is_err());
        assert!(functions(SqlDialect::DataFusion).is_err());
    }
}
