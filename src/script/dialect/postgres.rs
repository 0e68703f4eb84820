//! PostgreSQL as a [`ScriptDialect`]: JSON through `jsonb`, byte-wise text order through
//! `COLLATE "C"`, the identity functions as SQL / plpgsql functions, and the identity stage's
//! iterative steps as `DO` blocks that loop.

use datafusion::sql::sqlparser::ast;

use super::ScriptDialect;
use super::calls::sql_string;
use crate::identity::replay::Limit;
use crate::script::sql_identity::{FNV_OFFSET, FNV_PRIME, MIX1, MIX2};
use crate::script::unparse::SqlDialect;

/// PostgreSQL (`--dialect postgres`).
pub struct Postgres;

impl ScriptDialect for Postgres {
    fn selector(&self) -> SqlDialect {
        SqlDialect::Postgres
    }

    fn prelude_text(&self) -> &'static str {
        include_str!("../../../queries/script/prelude_postgres.sql")
    }

    /// PostgreSQL orders text by the database's collation unless told otherwise.
    fn byte_order(&self, text: ast::Expr) -> ast::Expr {
        ast::Expr::Collate {
            expr: Box::new(text),
            collation: ast::ObjectName::from(vec![ast::Ident::with_quote('"', "C")]),
        }
    }

    fn json_text_at(&self, json: &str, keys: &[String]) -> String {
        let p = keys
            .iter()
            .map(|k| format!("\"{}\"", k.replace('\\', "\\\\").replace('"', "\\\"")))
            .collect::<Vec<_>>()
            .join(",");
        format!("(({json})::jsonb #>> {})", sql_string(&format!("{{{p}}}")))
    }

    /// PostgreSQL has no TRY_CAST: the prelude's cohort_try_cast does it.
    fn try_cast(&self, expr: &ast::Expr, data_type: &ast::DataType) -> Option<String> {
        Some(format!(
            "cohort_try_cast(({expr})::text, NULL::{data_type})"
        ))
    }

    /// The prelude defines `cohort_json_valid`.
    fn json_valid(&self, _args: &[String]) -> Option<String> {
        None
    }

    fn json_object(&self, args: &[String]) -> String {
        format!(
            "json_strip_nulls(json_build_object({}))::text",
            args.join(", ")
        )
    }

    fn regexp_like(&self, text: &str, pattern: &str) -> String {
        format!("{text} ~ {pattern}")
    }

    /// PostgreSQL text cannot hold a NUL at all, so no message id there has one.
    fn nul_position(&self, _text: &str) -> String {
        "0".to_string()
    }

    fn array_sort(&self, args: &[String]) -> String {
        format!("cohort_sorted_distinct({})", args[0])
    }

    fn identity_functions(&self) -> Vec<String> {
        functions()
    }

    fn components(&self) -> Vec<String> {
        components()
    }

    fn replay(&self, input: &str, limits: &[Limit]) -> Vec<String> {
        replay(input, limits)
    }

    fn epoch_micros(&self, ts: &str) -> String {
        format!("(extract(epoch FROM {ts}) * 1000000)::bigint")
    }
}

fn functions() -> Vec<String> {
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

fn components() -> Vec<String> {
    vec![
        "CREATE TABLE id_components AS SELECT node, node AS component FROM id_nodes".into(),
        "CREATE UNIQUE INDEX ON id_components (node)".into(),
        "CREATE INDEX ON id_adjacency (node)".into(),
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
    ]
}

fn replay(input: &str, limits: &[Limit]) -> Vec<String> {
    let us = Postgres.epoch_micros("o.timestamp");
    let mut out: Vec<String> = Vec::new();
    out.push(format!(
        "-- The events of violating components, numbered in the order the sequential rule takes\n\
         -- them, (timestamp, message_id), each with its time in microseconds and its\n\
         -- identifiers by priority, then value.\n\
         CREATE TABLE id_replay_events AS\n\
         SELECT o.component, o.message_id, o.timestamp,\n\
         \x20      {us} AS us,\n\
         \x20      ROW_NUMBER() OVER (PARTITION BY o.component ORDER BY o.timestamp, o.message_id COLLATE \"C\") AS seq,\n\
         \x20      array_agg(o.node ORDER BY o.rank, o.id_value COLLATE \"C\") AS nodes,\n\
         \x20      array_agg(o.rank ORDER BY o.rank, o.id_value COLLATE \"C\") AS ranks\n\
         FROM (\n{input}\n) AS o\n\
         GROUP BY o.component, o.message_id, o.timestamp"
    ));
    out.push(
        "CREATE TABLE id_replayed (node bigint PRIMARY KEY, rank integer, profile_key bigint, added bigint)"
            .into(),
    );
    out.push("CREATE INDEX ON id_replayed (profile_key)".into());
    out.push("CREATE TABLE id_replay_state (profile_key bigint PRIMARY KEY, age bigint)".into());
    out.push(
        "CREATE TABLE id_replay_dropped (message_id text, timestamp timestamptz, node bigint, broken integer)"
            .into(),
    );
    let (limits_sql, windows_sql) = super::limit_lists(limits, "", "NULL");
    out.push(format!(
        "-- Segment's sequential rule over every violating component's events. id_replayed\n\
         -- holds identifier -> profile key (the node that started the profile) and when it\n\
         -- was added (microseconds), id_replay_state each profile's age (its creation\n\
         -- order). For each event: while merging the kept identifiers with the profiles they\n\
         -- match would put more than the limit of some type on one profile, drop the last one\n\
         -- (recording the first type broken); then merge into the oldest matched profile or\n\
         -- start a new one. A per-period limit (`windows`, microseconds) counts the values\n\
         -- added less than the window before the event. The loop runs once over the events;\n\
         -- the inner one at most once per identifier.\n\
         DO $$\n\
         DECLARE\n\
         \x20   limits bigint[] := ARRAY[{limits_sql}]::bigint[];\n\
         \x20   windows bigint[] := ARRAY[{windows_sql}]::bigint[];\n\
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
         \x20                       WHERE r.profile_key = ANY (matched) AND r.rank = ty\n\
         \x20                         AND (windows[ty + 1] IS NULL OR r.added > ev.us - windows[ty + 1]))\n\
         \x20                    + (SELECT COUNT(*) FROM unnest(ev.nodes[1:k], ev.ranks[1:k]) AS x(n, t)\n\
         \x20                       WHERE x.t = ty AND NOT EXISTS (SELECT 1 FROM id_replayed r WHERE r.node = x.n))\n\
         \x20               INTO cnt;\n\
         \x20               IF cnt > limits[ty + 1] THEN\n\
         \x20                   broken := ty;\n\
         \x20                   EXIT;\n\
         \x20               END IF;\n\
         \x20           END LOOP;\n\
         \x20           EXIT WHEN broken IS NULL OR k = 1;\n\
         \x20           INSERT INTO id_replay_dropped VALUES (ev.message_id, ev.timestamp, ev.nodes[k], broken);\n\
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
         \x20       SELECT x.n, x.t, target, ev.us FROM unnest(ev.nodes[1:k], ev.ranks[1:k]) AS x(n, t)\n\
         \x20       ON CONFLICT (node) DO NOTHING;\n\
         \x20   END LOOP;\n\
         END\n\
         $$"
    ));
    out
}
