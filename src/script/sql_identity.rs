//! The identity stage as portable SQL text, for `cohort compile --script` (issue 7).
//!
//! A script written for another engine (PostgreSQL, DuckDB) must resolve identities exactly as
//! [`crate::identity::resolve`] does on a full rebuild (no previous run), so the tables it
//! leaves are row for row the ones Cohort publishes. This module writes that stage as plain
//! statements; the rest of the script (events, traits, audiences) comes from `script::script`.
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
//!
//! The steps follow `queries/identity/*.sql`; the two iterative ones differ by dialect:
//! - components: min-label propagation. PostgreSQL runs it in a `DO` block that loops until a
//!   round changes no label (with pointer jumping between rounds); DuckDB has no procedural
//!   loop and uses a recursive CTE `USING KEY (node)` whose iterations end when no label
//!   decreased.
//! - replay of the components that break a limit ([`crate::identity::replay`]): PostgreSQL runs
//!   the sequential rule in a `DO` block over the events; DuckDB runs a recursive CTE `USING
//!   KEY (component)` that takes each violating component's events one per iteration, carrying
//!   the component's state (identifier -> profile) as a list of structs. The identifiers an
//!   event keeps are always a prefix of its identifiers sorted by (rank, value): the longest
//!   prefix that breaks no limit (at least one identifier), and every identifier after it is
//!   dropped with the limit its prefix broke.
//!
//! Strings are compared byte-wise like the engine: PostgreSQL comparisons carry
//! `COLLATE "C"`; DuckDB's default collation is binary already.

use datafusion::common::{Result, plan_err};

use super::unparse::SqlDialect;
use crate::plan::identity::IdType;

/// Scratch tables the statements create and drop again at the end.
const SCRATCH: [&str; 12] = [
    "id_types",
    "id_nodes",
    "id_edges",
    "id_adjacency",
    "id_violating",
    "id_replay_events",
    "id_replayed",
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

/// Builds the fixed node hash constants once, so the SQL and `node_code` cannot drift.
const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
const FNV_PRIME: u64 = 0x0000_0100_0000_01b3;
const MIX1: u64 = 0xff51_afd7_ed55_8ccd;
const MIX2: u64 = 0xc4ce_b9fe_1a85_ec53;

fn quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

fn supported(dialect: SqlDialect) -> Result<()> {
    match dialect {
        SqlDialect::Postgres | SqlDialect::DuckDb => Ok(()),
        d => plan_err!(
            "the identity stage has no SQL script for dialect {} (only postgres and duckdb)",
            d.as_str()
        ),
    }
}

/// Statements defining the functions the identity SQL (and the occurrence plan) uses:
/// `cohort_id_node(id_type text, id_value text) -> bigint`, bit-identical to
/// [`crate::functions::node_code`] (FNV-1a over `type NUL value` as UTF-8, then a
/// 64-bit finalizer), and `cohort_id_profile(node bigint) -> text`, the name of a profile
/// started by identifier `node` ([`crate::identity::new_profile_id`]). DuckDB gets macros
/// (and the helper macros of the replay); PostgreSQL gets SQL / plpgsql functions.
pub fn functions(dialect: SqlDialect) -> Result<Vec<String>> {
    supported(dialect)?;
    Ok(match dialect {
        SqlDialect::Postgres => postgres_functions(),
        _ => duckdb_functions(),
    })
}

fn postgres_functions() -> Vec<String> {
    let two64 = "18446744073709551616";
    vec![
        format!(
            "-- a * b modulo 2^64, on the two's complement bits of a (numeric arithmetic: bigint \
             would overflow).\n\
             CREATE OR REPLACE FUNCTION cohort_id_mul64(a bigint, b numeric) RETURNS bigint\n\
             LANGUAGE sql IMMUTABLE STRICT AS $$\n\
             SELECT CASE WHEN r >= 9223372036854775808 THEN (r - {two64})::bigint ELSE r::bigint END\n\
             FROM (SELECT mod((CASE WHEN a < 0 THEN a::numeric + {two64} ELSE a::numeric END) * b, {two64}) AS r) AS t\n\
             $$"
        ),
        format!(
            "-- The node code of an identifier: FNV-1a over the UTF-8 bytes of `type NUL value`,\n\
             -- then a 64-bit finalizer; the same bits as Cohort's node_code.\n\
             CREATE OR REPLACE FUNCTION cohort_id_node(id_type text, id_value text) RETURNS bigint\n\
             LANGUAGE plpgsql IMMUTABLE STRICT AS $$\n\
             DECLARE\n\
             \x20   b bytea := convert_to(id_type, 'UTF8') || decode('00', 'hex') || convert_to(id_value, 'UTF8');\n\
             \x20   h bigint := {offset};\n\
             BEGIN\n\
             \x20   FOR i IN 0 .. length(b) - 1 LOOP\n\
             \x20       h := cohort_id_mul64(h # get_byte(b, i), {prime});\n\
             \x20   END LOOP;\n\
             \x20   h := h # ((h >> 33) & 2147483647);\n\
             \x20   h := cohort_id_mul64(h, {mix1});\n\
             \x20   h := h # ((h >> 33) & 2147483647);\n\
             \x20   h := cohort_id_mul64(h, {mix2});\n\
             \x20   h := h # ((h >> 33) & 2147483647);\n\
             \x20   RETURN h;\n\
             END\n\
             $$",
            offset = FNV_OFFSET as i64,
            prime = FNV_PRIME,
            mix1 = MIX1,
            mix2 = MIX2,
        ),
        "-- A new profile's id: `use_` and the 16 hex digits of the node that names it.\n\
         CREATE OR REPLACE FUNCTION cohort_id_profile(node bigint) RETURNS text\n\
         LANGUAGE sql IMMUTABLE STRICT AS $$ SELECT 'use_' || lpad(to_hex(node), 16, '0') $$"
            .to_string(),
    ]
}

fn duckdb_functions() -> Vec<String> {
    let two64 = "18446744073709551616::HUGEINT";
    // h * c mod 2^64 for h < 2^64 held in a HUGEINT: split c in 32-bit halves so no product
    // leaves the 127 bits of HUGEINT.
    let mul = |c: u64| {
        let (hi, lo) = (c >> 32, c & 0xffff_ffff);
        format!(
            "((h * {lo}::HUGEINT + ((h * {hi}::HUGEINT) % 4294967296::HUGEINT) * 4294967296::HUGEINT) % {two64})"
        )
    };
    let shift = "xor(h, h // 8589934592::HUGEINT)";
    vec![
        format!(
            "-- One FNV-1a step over a byte, modulo 2^64.\n\
             CREATE OR REPLACE MACRO cohort_id_fnv_step(h, byte) AS ((xor(h, byte::HUGEINT) * {prime}::HUGEINT) % {two64})",
            prime = FNV_PRIME
        ),
        format!(
            "-- The 64-bit finalizer (h ^= h >> 33; h *= c1; h ^= h >> 33; h *= c2; h ^= h >> 33).\n\
             CREATE OR REPLACE MACRO cohort_id_mix1(h) AS {}",
            mul(MIX1).replace('h', &format!("({shift})"))
        ),
        format!(
            "CREATE OR REPLACE MACRO cohort_id_mix2(h) AS {}",
            mul(MIX2).replace('h', &format!("({shift})"))
        ),
        format!(
            "CREATE OR REPLACE MACRO cohort_id_finish(h) AS {}",
            shift.replace('h', "(cohort_id_mix2(cohort_id_mix1(h)))")
        ),
        "-- The bytes spelled by a hex string.\n\
         CREATE OR REPLACE MACRO cohort_id_hex_bytes(hx) AS\n\
         \x20   list_transform(range(0, len(hx), 2),\n\
         \x20       lambda i: (strpos('0123456789ABCDEF', hx[i + 1]) - 1) * 16 + strpos('0123456789ABCDEF', hx[i + 2]) - 1)"
            .to_string(),
        format!(
            "-- An unsigned 64-bit value (in a HUGEINT) as the BIGINT with the same bits.\n\
             CREATE OR REPLACE MACRO cohort_id_signed(f) AS\n\
             \x20   CASE WHEN f >= 9223372036854775808::HUGEINT THEN (f - {two64})::BIGINT ELSE f::BIGINT END"
        ),
        format!(
            "-- The node code of an identifier: FNV-1a over the UTF-8 bytes of `type NUL value`\n\
             -- (read from their hex spelling), then the finalizer, as a signed BIGINT; the same\n\
             -- bits as Cohort's node_code.\n\
             CREATE OR REPLACE MACRO cohort_id_node(id_type, id_value) AS\n\
             \x20   cohort_id_signed(cohort_id_finish(list_reduce(\n\
             \x20       cohort_id_hex_bytes(hex(encode(id_type)) || '00' || hex(encode(id_value))),\n\
             \x20       lambda acc, byte: cohort_id_fnv_step(acc, byte),\n\
             \x20       {offset}::HUGEINT)))",
            offset = FNV_OFFSET
        ),
        "-- A new profile's id: `use_` and the 16 hex digits of the node that names it.\n\
         CREATE OR REPLACE MACRO cohort_id_profile(node) AS\n\
         \x20   'use_' || lpad(lower(hex(CASE WHEN node < 0 THEN (node::HUGEINT + 18446744073709551616::HUGEINT)::UBIGINT ELSE node::UBIGINT END)), 16, '0')"
            .to_string(),
        // Replay helpers (see the replay statement in `statements`).
        r#"-- The distinct profiles an event's identifiers `io` match (STRUCT(n, t, p) each, p = the
-- profile the identifier already belongs to, or NULL).
CREATE OR REPLACE MACRO cohort_id_matched(io) AS
    list_distinct(list_filter(list_transform(io, lambda x: x.p), lambda p: p IS NOT NULL))"#
            .to_string(),
        r#"-- The first type (by rank) whose limit merging `io` would break, or NULL: the values per type
-- of every profile `io` matches (from `profs`, STRUCT(p, age, c counts per rank)) plus its
-- identifiers that belong to no profile yet.
CREATE OR REPLACE MACRO cohort_id_broken(profs, io, limits) AS
    list_filter(range(len(limits)), lambda ty:
        coalesce(list_sum(list_transform(
            list_filter(profs, lambda q: list_contains(list_transform(io, lambda x: x.p), q.p)),
            lambda q: q.c[ty + 1])), 0)
        + len(list_filter(io, lambda x: x.p IS NULL AND x.t = ty))
        > limits[ty + 1])[1]"#
            .to_string(),
        r#"-- How many of the event's identifiers it keeps: the longest prefix that breaks no limit, at
-- least one (breaking is monotone in the prefix).
CREATE OR REPLACE MACRO cohort_id_kept(profs, io, limits) AS
    coalesce(list_max(list_filter(range(1, len(io) + 1),
        lambda k: cohort_id_broken(profs, io[1:k], limits) IS NULL)), 1)"#
            .to_string(),
        r#"-- The profile the kept identifiers merge into: the oldest one they match, else a new one
-- keyed by the first identifier and aged `step`.
CREATE OR REPLACE MACRO cohort_id_target(profs, io, step) AS
    coalesce(
        list_sort(list_transform(
            list_filter(profs, lambda q: list_contains(list_transform(io, lambda x: x.p), q.p)),
            lambda q: struct_pack(age := q.age, p := q.p)))[1],
        struct_pack(age := step::BIGINT, p := io[1].n))"#
            .to_string(),
    ]
}

/// The statements, in order, that resolve `id_occurrences` into the output tables (see the
/// module docs) under `types` (rank = priority, limit per type). Each statement runs as is;
/// [`functions`] must have run first in the same database.
pub fn statements(dialect: SqlDialect, types: &[IdType]) -> Result<Vec<String>> {
    supported(dialect)?;
    let pg = dialect == SqlDialect::Postgres;
    // Byte-wise string order.
    let c = if pg { " COLLATE \"C\"" } else { "" };
    let mut out: Vec<String> = Vec::new();
    for t in SCRATCH.iter().chain(OUTPUTS.iter()) {
        out.push(format!("DROP TABLE IF EXISTS {t}"));
    }

    // Types, their limits and the detail text of a dropped identifier.
    out.push(
        "-- The identifier types: rank (0 = highest priority), limit per profile, and the detail\n\
         -- an identifier dropped for breaking the limit records.\n\
         CREATE TABLE id_types (id_type text, rank integer, id_limit bigint, limit_detail text)"
            .into(),
    );
    if !types.is_empty() {
        let rows: Vec<String> = types
            .iter()
            .map(|t| {
                format!(
                    "({}, {}, {}, {})",
                    quote(&t.id_type),
                    t.rank,
                    t.limit,
                    quote(&format!(
                        "keeping it would put more than {} {} on one profile",
                        t.limit, t.id_type
                    ))
                )
            })
            .collect();
        out.push(format!("INSERT INTO id_types VALUES {}", rows.join(", ")));
    }
    let ranks = types.iter().map(|t| t.rank as usize + 1).max().unwrap_or(0);
    let mut limits = vec![0u64; ranks];
    for t in types {
        limits[t.rank as usize] = t.limit;
    }

    // 1. Nodes and edges.
    out.push(format!(
        "-- Every usable identifier once.\n\
         CREATE TABLE id_nodes AS\n\
         SELECT node, id_type, MIN(id_value{c}) AS id_value, MIN(rank) AS rank\n\
         FROM id_occurrences\n\
         WHERE violation IS NULL\n\
         GROUP BY node, id_type"
    ));
    out.push(
        "-- The graph: an event links every usable identifier it carries to its smallest node.\n\
         CREATE TABLE id_edges AS\n\
         WITH usable AS (\n\
         \x20   SELECT message_id, node FROM id_occurrences WHERE violation IS NULL\n\
         ),\n\
         hubs AS (\n\
         \x20   SELECT message_id, MIN(node) AS hub FROM usable GROUP BY message_id\n\
         )\n\
         SELECT DISTINCT h.hub AS a, u.node AS b\n\
         FROM usable u\n\
         JOIN hubs h ON u.message_id = h.message_id\n\
         WHERE u.node <> h.hub"
            .into(),
    );
    out.push(
        "CREATE TABLE id_adjacency AS\n\
         SELECT a AS node, b AS nbr FROM id_edges\n\
         UNION ALL\n\
         SELECT b AS node, a AS nbr FROM id_edges"
            .into(),
    );

    // 2. Components, labelled by their smallest node.
    if pg {
        out.push(
            "CREATE TABLE id_components AS SELECT node, node AS component FROM id_nodes".into(),
        );
        out.push("CREATE UNIQUE INDEX ON id_components (node)".into());
        out.push("CREATE INDEX ON id_adjacency (node)".into());
        out.push(
            "-- Min-label propagation. Every round each identifier takes the smallest label among\n\
             -- itself and its neighbours, then labels jump to their label's label. Labels only\n\
             -- decrease and are always a node of the same component. Loop condition: stop after a\n\
             -- round in which no label changed; then both ends of every edge carry the same label,\n\
             -- so each component carries one label, its smallest node (which never changes).\n\
             DO $$\n\
             DECLARE\n\
             \x20   changed bigint;\n\
             BEGIN\n\
             \x20   LOOP\n\
             \x20       UPDATE id_components c\n\
             \x20       SET component = m.component\n\
             \x20       FROM (\n\
             \x20           SELECT a.node, MIN(l.component) AS component\n\
             \x20           FROM id_adjacency a\n\
             \x20           JOIN id_components l ON l.node = a.nbr\n\
             \x20           GROUP BY a.node\n\
             \x20       ) AS m\n\
             \x20       WHERE c.node = m.node AND m.component < c.component;\n\
             \x20       GET DIAGNOSTICS changed = ROW_COUNT;\n\
             \x20       EXIT WHEN changed = 0;\n\
             \x20       UPDATE id_components c\n\
             \x20       SET component = p.component\n\
             \x20       FROM id_components p\n\
             \x20       WHERE p.node = c.component AND p.component < c.component;\n\
             \x20   END LOOP;\n\
             END\n\
             $$"
            .into(),
        );
    } else {
        out.push(
            "-- Min-label propagation as a recursive CTE keyed by node: every identifier starts\n\
             -- with its own node as label; each iteration, the neighbours of the identifiers whose\n\
             -- label dropped in the previous iteration take the smaller label. Labels only\n\
             -- decrease. Loop condition: the recursion ends after an iteration in which no label\n\
             -- decreased; then both ends of every edge carry the same label, so each component\n\
             -- carries one label, its smallest node.\n\
             CREATE TABLE id_components AS\n\
             WITH RECURSIVE labels(node, component) USING KEY (node) AS (\n\
             \x20   SELECT node, node FROM id_nodes\n\
             \x20   UNION\n\
             \x20   SELECT a.node, MIN(l.component) AS component\n\
             \x20   FROM labels l\n\
             \x20   JOIN id_adjacency a ON a.nbr = l.node\n\
             \x20   JOIN recurring.labels cur ON cur.node = a.node\n\
             \x20   GROUP BY a.node, cur.component\n\
             \x20   HAVING MIN(l.component) < cur.component\n\
             )\n\
             SELECT node, component FROM labels"
                .into(),
        );
    }

    // 3. Replay of the components that break a limit.
    out.push(
        "-- Components holding more values of some type than its limit: only these are replayed.\n\
         CREATE TABLE id_violating AS\n\
         SELECT DISTINCT component\n\
         FROM (\n\
         \x20   SELECT c.component, n.id_type, t.id_limit, COUNT(*) AS n_values\n\
         \x20   FROM id_components c\n\
         \x20   JOIN id_nodes n ON c.node = n.node\n\
         \x20   JOIN id_types t ON n.id_type = t.id_type\n\
         \x20   GROUP BY c.component, n.id_type, t.id_limit\n\
         ) AS per_type\n\
         WHERE n_values > id_limit"
            .into(),
    );
    let ids_agg = if pg {
        format!(
            "array_agg(o.node ORDER BY o.rank, o.id_value{c}) AS nodes,\n\
             \x20      array_agg(o.rank ORDER BY o.rank, o.id_value{c}) AS ranks"
        )
    } else {
        "list(struct_pack(n := o.node, t := o.rank) ORDER BY o.rank, o.id_value) AS ids".to_string()
    };
    out.push(format!(
        "-- The events of violating components, numbered in the order the sequential rule takes\n\
         -- them, (timestamp, message_id), each with its identifiers by priority, then value.\n\
         CREATE TABLE id_replay_events AS\n\
         SELECT c.component, o.message_id, o.timestamp,\n\
         \x20      ROW_NUMBER() OVER (PARTITION BY c.component ORDER BY o.timestamp, o.message_id{c}) AS seq,\n\
         \x20      {ids_agg}\n\
         FROM id_occurrences o\n\
         JOIN id_components c ON o.node = c.node\n\
         JOIN id_violating v ON c.component = v.component\n\
         WHERE o.violation IS NULL\n\
         GROUP BY c.component, o.message_id, o.timestamp"
    ));
    if pg {
        out.push(
            "CREATE TABLE id_replayed (node bigint PRIMARY KEY, rank integer, profile_key bigint)"
                .into(),
        );
        out.push("CREATE INDEX ON id_replayed (profile_key)".into());
        out.push(
            "CREATE TABLE id_replay_state (profile_key bigint PRIMARY KEY, age bigint)".into(),
        );
        out.push(
            "CREATE TABLE id_dropped (message_id text, timestamp timestamptz, node bigint, broken integer)"
                .into(),
        );
        let limits_sql = limits
            .iter()
            .map(|l| l.to_string())
            .collect::<Vec<_>>()
            .join(", ");
        out.push(format!(
            "-- Segment's sequential rule over every violating component's events. id_replayed\n\
             -- holds identifier -> profile key (the node that started the profile),\n\
             -- id_replay_state each profile's age (its creation order). For each event: while\n\
             -- merging the kept identifiers with the profiles they match would put more than the\n\
             -- limit of some type on one profile, drop the last one (recording the first type\n\
             -- broken); then merge into the oldest matched profile or start a new one. The loop\n\
             -- runs once over the events; the inner one at most once per identifier.\n\
             DO $$\n\
             DECLARE\n\
             \x20   limits bigint[] := ARRAY[{limits_sql}]::bigint[];\n\
             \x20   ev record;\n\
             \x20   k integer;\n\
             \x20   matched bigint[];\n\
             \x20   broken integer;\n\
             \x20   cnt bigint;\n\
             \x20   target bigint;\n\
             \x20   age bigint := 0;\n\
             BEGIN\n\
             \x20   FOR ev IN SELECT * FROM id_replay_events ORDER BY component, seq LOOP\n\
             \x20       k := cardinality(ev.nodes);\n\
             \x20       LOOP\n\
             \x20           matched := ARRAY(SELECT DISTINCT r.profile_key FROM id_replayed r\n\
             \x20                            WHERE r.node = ANY (ev.nodes[1:k]));\n\
             \x20           broken := NULL;\n\
             \x20           FOR ty IN 0 .. cardinality(limits) - 1 LOOP\n\
             \x20               SELECT (SELECT COUNT(*) FROM id_replayed r\n\
             \x20                       WHERE r.profile_key = ANY (matched) AND r.rank = ty)\n\
             \x20                    + (SELECT COUNT(*) FROM unnest(ev.nodes[1:k], ev.ranks[1:k]) AS x(n, t)\n\
             \x20                       WHERE x.t = ty AND NOT EXISTS (SELECT 1 FROM id_replayed r WHERE r.node = x.n))\n\
             \x20               INTO cnt;\n\
             \x20               IF cnt > limits[ty + 1] THEN\n\
             \x20                   broken := ty;\n\
             \x20                   EXIT;\n\
             \x20               END IF;\n\
             \x20           END LOOP;\n\
             \x20           EXIT WHEN broken IS NULL OR k = 1;\n\
             \x20           INSERT INTO id_dropped VALUES (ev.message_id, ev.timestamp, ev.nodes[k], broken);\n\
             \x20           k := k - 1;\n\
             \x20       END LOOP;\n\
             \x20       age := age + 1;\n\
             \x20       SELECT s.profile_key INTO target FROM id_replay_state s\n\
             \x20       WHERE s.profile_key = ANY (matched) ORDER BY s.age LIMIT 1;\n\
             \x20       IF target IS NULL THEN\n\
             \x20           target := ev.nodes[1];\n\
             \x20           INSERT INTO id_replay_state VALUES (target, age);\n\
             \x20       END IF;\n\
             \x20       UPDATE id_replayed SET profile_key = target\n\
             \x20       WHERE profile_key = ANY (matched) AND profile_key <> target;\n\
             \x20       DELETE FROM id_replay_state WHERE profile_key = ANY (matched) AND profile_key <> target;\n\
             \x20       INSERT INTO id_replayed\n\
             \x20       SELECT x.n, x.t, target FROM unnest(ev.nodes[1:k], ev.ranks[1:k]) AS x(n, t)\n\
             \x20       ON CONFLICT (node) DO NOTHING;\n\
             \x20   END LOOP;\n\
             END\n\
             $$"
        ));
    } else {
        let limits_sql = format!(
            "[{}]::BIGINT[]",
            limits
                .iter()
                .map(|l| l.to_string())
                .collect::<Vec<_>>()
                .join(", ")
        );
        out.push(
            r#"-- Segment's sequential rule, one event per iteration for every violating component at
-- once, keyed by component. The state: `owner` (identifier -> profile key, the node that
-- started the profile), `profs` (each profile's key, age = the step that created it, and
-- values per rank) and `dropped` (the identifiers limits dropped so far). An event's
-- identifiers (sorted by rank, value) first learn their current profile (`io`); the event
-- keeps the longest prefix that breaks no limit (at least one), merges it into the oldest
-- profile it matches or starts a profile, and records each later identifier as dropped with
-- the limit its prefix broke. Loop condition: the recursion ends when no component has an
-- event numbered seq + 1, i.e. after each component's last event. Each step costs time in
-- proportion to the component's state, so a component of E events costs O(E^2).
CREATE TABLE id_replay_state AS
WITH RECURSIVE rp(component, seq, owner, profs, dropped) USING KEY (component) AS (
    SELECT component, 0::BIGINT,
           []::STRUCT(n BIGINT, t INTEGER, p BIGINT)[],
           []::STRUCT(p BIGINT, age BIGINT, c BIGINT[])[],
           []::STRUCT(message_id VARCHAR, ts TIMESTAMPTZ, n BIGINT, broken INTEGER)[]
    FROM id_violating
    UNION
    SELECT component, seq,
           list_concat(
               list_transform(owner, lambda o: CASE WHEN list_contains(matched, o.p)
                   THEN struct_pack(n := o.n, t := o.t, p := target.p) ELSE o END),
               list_transform(list_filter(io[1:kept], lambda x: x.p IS NULL),
                   lambda x: struct_pack(n := x.n, t := x.t, p := target.p))),
           list_concat(
               list_filter(profs, lambda q: NOT list_contains(matched, q.p)),
               [struct_pack(p := target.p, age := target.age, c := list_transform(range(len(LIMITS)), lambda ty:
                   coalesce(list_sum(list_transform(list_filter(profs, lambda q: list_contains(matched, q.p)), lambda q: q.c[ty + 1])), 0)
                   + len(list_filter(io[1:kept], lambda x: x.p IS NULL AND x.t = ty))))]),
           list_concat(dropped, list_transform(range(kept + 1, len(io) + 1),
               lambda j: struct_pack(message_id := message_id, ts := "timestamp", n := io[j].n,
                                     broken := cohort_id_broken(profs, io[1:j], LIMITS))))
    FROM (
        SELECT *, cohort_id_matched(io[1:kept]) AS matched,
               cohort_id_target(profs, io[1:kept], seq) AS target
        FROM (
            SELECT *, cohort_id_kept(profs, io, LIMITS) AS kept
            FROM (
                SELECT r.component, e.seq, r.owner, r.profs, r.dropped, e.message_id, e."timestamp",
                       list_transform(e.ids, lambda x: struct_pack(n := x.n, t := x.t,
                           p := list_filter(r.owner, lambda o: o.n = x.n)[1].p)) AS io
                FROM rp r
                JOIN id_replay_events e ON e.component = r.component AND e.seq = r.seq + 1
            ) AS step_owned
        ) AS step_kept
    ) AS step
)
SELECT component, owner, dropped FROM rp"#
                .replace("LIMITS", &limits_sql),
        );
        out.push(
            "CREATE TABLE id_replayed AS\n\
             SELECT o.n AS node, o.t AS rank, o.p AS profile_key\n\
             FROM (SELECT unnest(owner) AS o FROM id_replay_state) AS s"
                .into(),
        );
        out.push(
            "CREATE TABLE id_dropped AS\n\
             SELECT d.message_id, d.ts AS timestamp, d.n AS node, d.broken\n\
             FROM (SELECT unnest(dropped) AS d FROM id_replay_state) AS s"
                .into(),
        );
    }

    // Each identifier's profile key.
    out.push(
        "-- Each identifier's profile key: its component, or inside a violating component the\n\
         -- profile the replay put it in (identifiers dropped everywhere get none).\n\
         CREATE TABLE id_node_keys AS\n\
         SELECT c.node,\n\
         \x20      CASE WHEN v.component IS NULL THEN c.component ELSE r.profile_key END AS profile_key\n\
         FROM id_components c\n\
         LEFT JOIN id_violating v ON c.component = v.component\n\
         LEFT JOIN id_replayed r ON c.node = r.node\n\
         WHERE v.component IS NULL OR r.node IS NOT NULL"
            .into(),
    );
    out.push(format!(
        "-- Identifiers with their profile key and when they were seen, counting only the events\n\
         -- that kept them.\n\
         CREATE TABLE id_keyed AS\n\
         SELECT k.profile_key, o.node, o.id_type,\n\
         \x20      MIN(o.id_value{c}) AS id_value,\n\
         \x20      MIN(o.rank) AS rank,\n\
         \x20      MIN(o.timestamp) AS first_seen,\n\
         \x20      MAX(o.timestamp) AS last_seen\n\
         FROM id_occurrences o\n\
         JOIN id_node_keys k ON o.node = k.node\n\
         LEFT JOIN id_dropped d ON o.message_id = d.message_id AND o.node = d.node\n\
         WHERE o.violation IS NULL AND d.node IS NULL\n\
         GROUP BY k.profile_key, o.node, o.id_type"
    ));

    // 4. Names: on a full rebuild every profile is named after its earliest identifier.
    out.push(format!(
        "-- Every profile is named after its earliest identifier (first seen, then priority,\n\
         -- type, value), so a rebuild gives the same ids.\n\
         CREATE TABLE id_profile_ids AS\n\
         SELECT profile_key, cohort_id_profile(node) AS profile_id\n\
         FROM (\n\
         \x20   SELECT profile_key, node,\n\
         \x20          ROW_NUMBER() OVER (\n\
         \x20              PARTITION BY profile_key\n\
         \x20              ORDER BY first_seen, rank, id_type{c}, id_value{c}\n\
         \x20          ) AS rn\n\
         \x20   FROM id_keyed\n\
         ) AS ranked\n\
         WHERE rn = 1"
    ));
    out.push(
        "-- The published `identities`.\n\
         CREATE TABLE id_identities AS\n\
         SELECT p.profile_id, k.id_type, k.id_value, k.first_seen, k.last_seen\n\
         FROM id_keyed k\n\
         JOIN id_profile_ids p ON k.profile_key = p.profile_key"
            .into(),
    );
    out.push(format!(
        "-- Every event's profile: that of its highest-priority usable identifier.\n\
         CREATE TABLE id_event_profiles AS\n\
         SELECT t.message_id, p.profile_id\n\
         FROM (\n\
         \x20   SELECT message_id, node,\n\
         \x20          ROW_NUMBER() OVER (PARTITION BY message_id ORDER BY rank, id_value{c}) AS rn\n\
         \x20   FROM id_occurrences\n\
         \x20   WHERE violation IS NULL\n\
         ) AS t\n\
         JOIN id_node_keys k ON t.node = k.node\n\
         JOIN id_profile_ids p ON k.profile_key = p.profile_key\n\
         WHERE t.rn = 1"
    ));
    out.push(
        "-- The published `identity_violations`: blocked identifiers and limit drops.\n\
         CREATE TABLE id_violations AS\n\
         SELECT o.message_id, o.timestamp, o.id_type, LEFT(o.id_value, 1000) AS id_value,\n\
         \x20      o.violation AS rule, o.violation_detail AS detail, e.profile_id\n\
         FROM id_occurrences o\n\
         LEFT JOIN id_event_profiles e ON o.message_id = e.message_id\n\
         WHERE o.violation IS NOT NULL\n\
         UNION ALL\n\
         SELECT d.message_id, d.timestamp, n.id_type, n.id_value,\n\
         \x20      'limit' AS rule, t.limit_detail AS detail, e.profile_id\n\
         FROM id_dropped d\n\
         JOIN id_nodes n ON d.node = n.node\n\
         JOIN id_types t ON d.broken = t.rank\n\
         LEFT JOIN id_event_profiles e ON d.message_id = e.message_id"
            .into(),
    );
    for t in SCRATCH {
        out.push(format!("DROP TABLE IF EXISTS {t}"));
    }
    Ok(out)
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
        assert!(statements(SqlDialect::BigQuery, &[]).is_err());
        assert!(functions(SqlDialect::Snowflake).is_err());
    }
}
