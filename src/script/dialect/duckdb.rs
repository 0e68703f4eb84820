//! DuckDB as a [`ScriptDialect`]: JSON through `json_extract_string`, the identity functions
//! as macros (HUGEINT arithmetic for the 64-bit hash), and the identity stage's iterative
//! steps as recursive CTEs `USING KEY` (DuckDB has no procedural loop). DuckDB's default
//! collation is binary already, so text needs nothing to order byte-wise.

use super::ScriptDialect;
use super::calls::sql_string;
use crate::identity::replay::Limit;
use crate::script::sql_identity::{FNV_OFFSET, FNV_PRIME, MIX1, MIX2};
use crate::script::unparse::SqlDialect;

/// DuckDB (`--dialect duckdb`).
pub struct DuckDb;

impl ScriptDialect for DuckDb {
    fn selector(&self) -> SqlDialect {
        SqlDialect::DuckDb
    }

    fn prelude_text(&self) -> &'static str {
        include_str!("../../../queries/script/prelude_duckdb.sql")
    }

    fn json_text_at(&self, json: &str, keys: &[String]) -> String {
        let p = keys
            .iter()
            .map(|k| format!(".\"{}\"", k.replace('"', "\\\"")))
            .collect::<String>();
        format!(
            "json_extract_string({json}, {})",
            sql_string(&format!("${p}"))
        )
    }

    fn json_valid(&self, args: &[String]) -> Option<String> {
        Some(format!(
            "CASE WHEN {0} IS NULL THEN true WHEN json_valid({0}) THEN json_type({0}) = \
             'OBJECT' ELSE false END",
            args[0]
        ))
    }

    /// A merge patch drops the members whose value is null.
    fn json_object(&self, args: &[String]) -> String {
        format!(
            "json_merge_patch('{{}}', json_object({}))::VARCHAR",
            args.join(", ")
        )
    }

    fn regexp_like(&self, text: &str, pattern: &str) -> String {
        format!("regexp_matches({text}, {pattern})")
    }

    fn nul_position(&self, text: &str) -> String {
        format!("strpos({text}, chr(0))")
    }

    fn btrim(&self, args: &[String]) -> Option<String> {
        Some(format!("trim({})", args.join(", ")))
    }

    fn array_sort(&self, args: &[String]) -> String {
        format!("list_sort({})", args.join(", "))
    }

    fn identity_functions(&self) -> Vec<String> {
        functions()
    }

    fn components(&self) -> Vec<String> {
        vec![components()]
    }

    fn replay(&self, input: &str, limits: &[Limit]) -> Vec<String> {
        replay(input, limits)
    }

    fn epoch_micros(&self, ts: &str) -> String {
        format!("epoch_us({ts})")
    }
}

fn functions() -> Vec<String> {
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
        r#"-- How many values of rank `ty` profile `q` has that count at time `at_us` (microseconds): all of
-- them (q.c) for a limit over all time, those added less than the window before it (q.a)
-- for a per-period one (`windows`: each rank's window in microseconds, or NULL).
CREATE OR REPLACE MACRO cohort_id_counted(q, ty, windows, at_us) AS
    CASE WHEN windows[ty + 1] IS NULL THEN q.c[ty + 1]
         ELSE len(list_filter(q.a, lambda x: x.t = ty AND x.us > at_us - windows[ty + 1])) END"#
            .to_string(),
        r#"-- The first type (by rank) whose limit merging `io` at time `at_us` would break, or NULL: the
-- values per type of every profile `io` matches (from `profs`, STRUCT(p, age, c counts per
-- rank, a add times)) plus its identifiers that belong to no profile yet.
CREATE OR REPLACE MACRO cohort_id_broken(profs, io, limits, windows, at_us) AS
    list_filter(range(len(limits)), lambda ty:
        coalesce(list_sum(list_transform(
            list_filter(profs, lambda q: list_contains(list_transform(io, lambda x: x.p), q.p)),
            lambda q: cohort_id_counted(q, ty, windows, at_us))), 0)
        + len(list_filter(io, lambda x: x.p IS NULL AND x.t = ty))
        > limits[ty + 1])[1]"#
            .to_string(),
        r#"-- How many of the event's identifiers it keeps: the longest prefix that breaks no limit, at
-- least one (breaking is monotone in the prefix).
CREATE OR REPLACE MACRO cohort_id_kept(profs, io, limits, windows, at_us) AS
    coalesce(list_max(list_filter(range(1, len(io) + 1),
        lambda k: cohort_id_broken(profs, io[1:k], limits, windows, at_us) IS NULL)), 1)"#
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

fn components() -> String {
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
        .into()
}

fn replay(input: &str, limits: &[Limit]) -> Vec<String> {
    let us = DuckDb.epoch_micros("o.timestamp");
    let mut out: Vec<String> = Vec::new();
    out.push(format!(
        "-- The events of violating components, numbered in the order the sequential rule takes\n\
         -- them, (timestamp, message_id), each with its time in microseconds and its\n\
         -- identifiers by priority, then value.\n\
         CREATE TABLE id_replay_events AS\n\
         SELECT o.component, o.message_id, o.timestamp, {us} AS us,\n\
         \x20      ROW_NUMBER() OVER (PARTITION BY o.component ORDER BY o.timestamp, o.message_id) AS seq,\n\
         \x20      list(struct_pack(n := o.node, t := o.rank) ORDER BY o.rank, o.id_value) AS ids\n\
         FROM (\n{input}\n) AS o\n\
         GROUP BY o.component, o.message_id, o.timestamp"
    ));
    // In parentheses: `[..]::BIGINT[][i]` would read as a fixed-size array type.
    let (max, windows) = super::limit_lists(limits, "", "NULL");
    let limits_sql = format!("([{max}]::BIGINT[])");
    let windows_sql = format!("([{windows}]::BIGINT[])");
    out.push(
        r#"-- Segment's sequential rule, one event per iteration for every violating component at
-- once, keyed by component. The state: `owner` (identifier -> profile key, the node that
-- started the profile), `profs` (each profile's key, age = the step that created it, values
-- per rank, and the add times of its values whose limit has a window, those still inside
-- it) and `dropped` (the identifiers limits dropped so far). An event's identifiers (sorted
-- by rank, value) first learn their current profile (`io`); the event keeps the longest
-- prefix that breaks no limit (at least one), merges it into the oldest profile it matches
-- or starts a profile, and records each later identifier as dropped with the limit its
-- prefix broke. Loop condition: the recursion ends when no component has an event numbered
-- seq + 1, i.e. after each component's last event. Each step costs time in proportion to
-- the component's state, so a component of E events costs O(E^2).
CREATE TABLE id_replay_state AS
WITH RECURSIVE rp(component, seq, owner, profs, dropped) USING KEY (component) AS (
    SELECT component, 0::BIGINT,
           []::STRUCT(n BIGINT, t INTEGER, p BIGINT)[],
           []::STRUCT(p BIGINT, age BIGINT, c BIGINT[], a STRUCT(t INTEGER, us BIGINT)[])[],
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
                   + len(list_filter(io[1:kept], lambda x: x.p IS NULL AND x.t = ty))),
                   a := list_filter(list_concat(
                       flatten(list_transform(list_filter(profs, lambda q: list_contains(matched, q.p)), lambda q: q.a)),
                       list_transform(list_filter(io[1:kept], lambda x: x.p IS NULL AND WINDOWS[x.t + 1] IS NOT NULL),
                           lambda x: struct_pack(t := x.t, us := us))),
                       lambda x: x.us > us - WINDOWS[x.t + 1]))]),
           list_concat(dropped, list_transform(range(kept + 1, len(io) + 1),
               lambda j: struct_pack(message_id := message_id, ts := "timestamp", n := io[j].n,
                                     broken := cohort_id_broken(profs, io[1:j], LIMITS, WINDOWS, us))))
    FROM (
        SELECT *, cohort_id_matched(io[1:kept]) AS matched,
               cohort_id_target(profs, io[1:kept], seq) AS target
        FROM (
            SELECT *, cohort_id_kept(profs, io, LIMITS, WINDOWS, us) AS kept
            FROM (
                SELECT r.component, e.seq, r.owner, r.profs, r.dropped, e.message_id, e."timestamp",
                       e.us,
                       list_transform(e.ids, lambda x: struct_pack(n := x.n, t := x.t,
                           p := list_filter(r.owner, lambda o: o.n = x.n)[1].p)) AS io
                FROM rp r
                JOIN id_replay_events e ON e.component = r.component AND e.seq = r.seq + 1
            ) AS step_owned
        ) AS step_kept
    ) AS step
)
SELECT component, owner, dropped FROM rp"#
            .replace("LIMITS", &limits_sql)
            .replace("WINDOWS", &windows_sql),
    );
    out.push(
        "CREATE TABLE id_replayed AS\n\
         SELECT o.n AS node, o.t AS rank, o.p AS profile_key\n\
         FROM (SELECT unnest(owner) AS o FROM id_replay_state) AS s"
            .into(),
    );
    out.push(
        "CREATE TABLE id_replay_dropped AS\n\
         SELECT d.message_id, d.ts AS timestamp, d.n AS node, d.broken\n\
         FROM (SELECT unnest(dropped) AS d FROM id_replay_state) AS s"
            .into(),
    );
    out
}
