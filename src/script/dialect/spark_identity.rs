//! The identity stage's own statements in Spark SQL (Spark 4): the node hash and profile name
//! as temporary SQL functions, the components as a SQL-scripting `WHILE` loop, and Segment's
//! sequential replay as one fold (`aggregate`) per violating component over its events.
//!
//! Spark refuses a SQL function inside a lambda, and a lambda cannot name an intermediate
//! value, so the replay's step is one expression written out here, with [`let_in`] binding a
//! value once (`transform(array(value), name -> body)[0]`). 64-bit arithmetic wraps around:
//! the prelude turns ANSI mode off.

use crate::identity::replay::Limit;
use crate::script::sql_identity::{FNV_OFFSET, FNV_PRIME, MIX1, MIX2};

/// `body` with `name` bound to `value`, evaluated once.
fn let_in(name: &str, value: &str, body: &str) -> String {
    format!("transform(array({value}), {name} -> {body})[0]")
}

/// A 64-bit constant as the BIGINT literal with the same bits.
fn bits(c: u64) -> String {
    format!("{}L", c as i64)
}

pub(super) fn functions() -> Vec<String> {
    // One finalizer step: h ^= h >>> 33, then h *= c (wrapping).
    let mix = |h: &str, c: u64| format!("(({h} ^ shiftrightunsigned({h}, 33)) * {})", bits(c));
    let fnv = format!(
        "aggregate(\n\
         \x20       transform(sequence(0, length(hx) div 2 - 1),\n\
         \x20           i -> CAST(conv(substr(hx, 2 * i + 1, 2), 16, 10) AS BIGINT)),\n\
         \x20       {offset}, (acc, byte) -> (acc ^ byte) * {prime})",
        offset = bits(FNV_OFFSET),
        prime = bits(FNV_PRIME),
    );
    let finish = let_in(
        "h",
        &fnv,
        &let_in(
            "g",
            &mix("h", MIX1),
            &let_in("f", &mix("g", MIX2), "f ^ shiftrightunsigned(f, 33)"),
        ),
    );
    let body = let_in(
        "hx",
        "hex(encode(concat(id_type, chr(0), id_value), 'UTF-8'))",
        &finish,
    );
    vec![
        format!(
            "-- The node code of an identifier: FNV-1a over the UTF-8 bytes of `type NUL value`\n\
             -- (read from their hex spelling), then the 64-bit finalizer, as a BIGINT (wrapping\n\
             -- arithmetic); the same bits as Cohort's node_code.\n\
             CREATE OR REPLACE TEMPORARY FUNCTION cohort_id_node(id_type STRING, id_value STRING)\n\
             RETURNS BIGINT\n\
             RETURN {body}"
        ),
        "-- A new profile's id: `use_` and the 16 hex digits of the node that names it.\n\
         CREATE OR REPLACE TEMPORARY FUNCTION cohort_id_profile(node BIGINT)\n\
         RETURNS STRING\n\
         RETURN concat('use_', lpad(lower(hex(node)), 16, '0'))"
            .to_string(),
    ]
}

pub(super) fn components() -> String {
    "-- Min-label propagation with pointer jumping, in SQL scripting. Every round each\n\
     -- identifier takes the smallest label among itself and its neighbours, then each label\n\
     -- jumps to its label's label. Labels only decrease and are always a node of the same\n\
     -- component. Loop condition: stop after a round in which no label changed; then both ends\n\
     -- of every edge carry the same label, so each component carries one label, its smallest\n\
     -- node (which never changes).\n\
     BEGIN\n\
     \x20 DECLARE changed BIGINT DEFAULT 1;\n\
     \x20 DROP TABLE IF EXISTS id_components;\n\
     \x20 CREATE TABLE id_components AS SELECT node, node AS component FROM id_nodes;\n\
     \x20 WHILE changed > 0 DO\n\
     \x20   DROP TABLE IF EXISTS id_components_next;\n\
     \x20   CREATE TABLE id_components_next AS\n\
     \x20   SELECT c.node, least(c.component, coalesce(m.component, c.component)) AS component\n\
     \x20   FROM id_components c\n\
     \x20   LEFT JOIN (\n\
     \x20     SELECT a.node, MIN(l.component) AS component\n\
     \x20     FROM id_adjacency a\n\
     \x20     JOIN id_components l ON l.node = a.nbr\n\
     \x20     GROUP BY a.node\n\
     \x20   ) AS m ON m.node = c.node;\n\
     \x20   DROP TABLE IF EXISTS id_components_jumped;\n\
     \x20   CREATE TABLE id_components_jumped AS\n\
     \x20   SELECT n.node, least(n.component, coalesce(p.component, n.component)) AS component\n\
     \x20   FROM id_components_next n\n\
     \x20   LEFT JOIN id_components_next p ON p.node = n.component;\n\
     \x20   SET changed = (\n\
     \x20     SELECT count(*) FROM id_components_jumped j\n\
     \x20     JOIN id_components c ON c.node = j.node\n\
     \x20     WHERE j.component < c.component);\n\
     \x20   DROP TABLE id_components;\n\
     \x20   DROP TABLE id_components_next;\n\
     \x20   ALTER TABLE id_components_jumped RENAME TO id_components;\n\
     \x20 END WHILE;\n\
     END"
    .into()
}

/// The state the replay folds over a component's events.
const OWNER: &str = "ARRAY<STRUCT<n: BIGINT, t: INT, p: BIGINT>>";
const PROFS: &str =
    "ARRAY<STRUCT<p: BIGINT, age: BIGINT, c: ARRAY<BIGINT>, a: ARRAY<STRUCT<t: INT, us: BIGINT>>>>";
const DROPPED: &str = "ARRAY<STRUCT<message_id: STRING, ts: TIMESTAMP, n: BIGINT, broken: INT>>";

/// Each rank's limit and window (microseconds, null for ever) as Spark arrays.
struct Limits {
    max: String,
    windows: String,
    ranks: usize,
}

/// How many values of rank `ty` profile `q` has that count at the event `ev`: all of them
/// (`q.c`) for a limit over all time, those added less than the window before the event
/// (`q.a`) for a per-period one.
fn counted(l: &Limits) -> String {
    format!(
        "IF({w}[ty] IS NULL, q.c[ty], CAST(size(filter(q.a, x -> x.t = ty AND x.us > ev.us - {w}[ty])) AS BIGINT))",
        w = l.windows
    )
}

/// The first type (rank) whose limit merging the identifiers `io` (`n`, `t`, `p` = the profile
/// the identifier belongs to, or null) into the profiles they match would break, or null.
fn broken(profs: &str, io: &str, l: &Limits) -> String {
    format!(
        "filter(sequence(0, {last}), ty ->\n\
         \x20   aggregate(filter({profs}, q -> array_contains(transform({io}, x -> x.p), q.p)), 0L,\n\
         \x20             (acc, q) -> acc + {counted})\n\
         \x20   + size(filter({io}, x -> x.p IS NULL AND x.t = ty)) > {limits}[ty])[0]",
        last = l.ranks.saturating_sub(1),
        counted = counted(l),
        limits = l.max
    )
}

/// One event of the sequential rule: `st` (owner, profs, dropped) after the event `ev`
/// (seq, message_id, ts, us, ids).
fn step(l: &Limits) -> String {
    let ranks = l.ranks;
    let io = "transform(ev.ids, x -> named_struct('n', x.n, 't', x.t, \
              'p', filter(st.owner, o -> o.n = x.n)[0].p))";
    let kept = format!(
        "coalesce(array_max(filter(sequence(1, size(io)), kk ->\n{} IS NULL)), 1)",
        broken("st.profs", "slice(io, 1, kk)", l)
    );
    let counts = format!(
        "transform(sequence(0, {}), ty ->\n\
         \x20   aggregate(mp, 0L, (acc, q) -> acc + q.c[ty])\n\
         \x20   + size(filter(pre, x -> x.p IS NULL AND x.t = ty)))",
        ranks.saturating_sub(1)
    );
    let next = format!(
        "named_struct(\n\
         'owner', concat(\n\
         \x20   transform(st.owner, o -> IF(array_contains(matched, o.p),\n\
         \x20       named_struct('n', o.n, 't', o.t, 'p', target.p), o)),\n\
         \x20   transform(filter(pre, x -> x.p IS NULL),\n\
         \x20       x -> named_struct('n', x.n, 't', x.t, 'p', target.p))),\n\
         'profs', concat(\n\
         \x20   filter(st.profs, q -> NOT array_contains(matched, q.p)),\n\
         \x20   array(named_struct('p', target.p, 'age', target.age, 'c', {counts}, 'a', {adds}))),\n\
         'dropped', concat(st.dropped,\n\
         \x20   transform(filter(sequence(1, size(io)), j -> j > k), j ->\n\
         \x20       named_struct('message_id', ev.message_id, 'ts', ev.ts, 'n', io[j - 1].n,\n\
         \x20           'broken', {}))))",
        broken("st.profs", "slice(io, 1, j)", l),
        adds = adds(l)
    );
    let target = "coalesce(\n\
                  \x20   array_sort(transform(mp, q -> named_struct('age', q.age, 'p', q.p)))[0],\n\
                  \x20   named_struct('age', ev.seq, 'p', io[0].n))";
    let_in(
        "io",
        io,
        &let_in(
            "k",
            &kept,
            &let_in(
                "pre",
                "slice(io, 1, k)",
                &let_in(
                    "matched",
                    "array_distinct(filter(transform(pre, x -> x.p), p -> p IS NOT NULL))",
                    &let_in(
                        "mp",
                        "filter(st.profs, q -> array_contains(matched, q.p))",
                        &let_in("target", target, &next),
                    ),
                ),
            ),
        ),
    )
}

/// The add times the merged profile keeps: those of the profiles it merges and of its new
/// values whose limit has a window, still inside their window at the event.
fn adds(l: &Limits) -> String {
    format!(
        "filter(concat(flatten(transform(mp, q -> q.a)),\n\
         \x20       transform(filter(pre, x -> x.p IS NULL AND {w}[x.t] IS NOT NULL),\n\
         \x20           x -> named_struct('t', x.t, 'us', ev.us))),\n\
         \x20   x -> x.us > ev.us - {w}[x.t])",
        w = l.windows
    )
}

/// The replay's statements; `us` is an event's time in microseconds (of `o.timestamp`).
pub(super) fn replay(input: &str, limits: &[Limit], us: &str) -> Vec<String> {
    let (max, windows) = super::limit_lists(limits, "L", "NULL");
    let l = Limits {
        max: format!("CAST(array({max}) AS ARRAY<BIGINT>)"),
        windows: format!("CAST(array({windows}) AS ARRAY<BIGINT>)"),
        ranks: limits.len(),
    };
    vec![
        format!(
            "-- The events of violating components, numbered in the order the sequential rule takes\n\
             -- them, (timestamp, message_id), each with its identifiers by priority, then value.\n\
             CREATE TABLE id_replay_events AS\n\
             SELECT o.component, o.message_id, o.`timestamp`, {us} AS us,\n\
             \x20      CAST(ROW_NUMBER() OVER (PARTITION BY o.component ORDER BY o.`timestamp`, o.message_id) AS BIGINT) AS seq,\n\
             \x20      transform(array_sort(collect_list(named_struct('t', CAST(o.rank AS INT), 'v', o.id_value, 'n', o.node))),\n\
             \x20          x -> named_struct('n', x.n, 't', x.t)) AS ids\n\
             FROM (\n{input}\n) AS o\n\
             GROUP BY o.component, o.message_id, o.`timestamp`"
        ),
        format!(
            "-- Segment's sequential rule, as one fold per violating component over its events in\n\
             -- order. The state: `owner` (identifier -> profile key, the node that started the\n\
             -- profile), `profs` (each profile's key, age = the event that created it, values per\n\
             -- rank, and the add times of its values whose limit has a window, those still inside\n\
             -- it) and `dropped` (the identifiers limits dropped so far). An event's\n\
             -- identifiers (sorted by rank, value) first learn their current profile (`io`); the\n\
             -- event keeps the longest prefix that breaks no limit (at least one, `k`), merges it\n\
             -- into the oldest profile it matches or starts a profile, and records each later\n\
             -- identifier as dropped with the limit its prefix broke. The fold ends after the\n\
             -- component's last event; a component of E events costs O(E^2).\n\
             CREATE TABLE id_replay_state AS\n\
             SELECT component, aggregate(\n\
             \x20   array_sort(collect_list(named_struct('seq', seq, 'message_id', message_id, 'ts', `timestamp`, 'us', us, 'ids', ids))),\n\
             \x20   named_struct('owner', CAST(array() AS {OWNER}), 'profs', CAST(array() AS {PROFS}),\n\
             \x20                'dropped', CAST(array() AS {DROPPED})),\n\
             \x20   (st, ev) -> {}) AS st\n\
             FROM id_replay_events\n\
             GROUP BY component",
            step(&l)
        ),
        "CREATE TABLE id_replayed AS\n\
         SELECT o.n AS node, o.t AS rank, o.p AS profile_key\n\
         FROM (SELECT explode(st.owner) AS o FROM id_replay_state) AS s"
            .into(),
        "CREATE TABLE id_replay_dropped AS\n\
         SELECT d.message_id, d.ts AS `timestamp`, d.n AS node, d.broken\n\
         FROM (SELECT explode(st.dropped) AS d FROM id_replay_state) AS s"
            .into(),
    ]
}
