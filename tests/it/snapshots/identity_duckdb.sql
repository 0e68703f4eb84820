-- One FNV-1a step over a byte, modulo 2^64.
CREATE OR REPLACE MACRO cohort_id_fnv_step(h, byte) AS ((xor(h, byte::HUGEINT) * 1099511628211::HUGEINT) % 18446744073709551616::HUGEINT);

-- The 64-bit finalizer (h ^= h >> 33; h *= c1; h ^= h >> 33; h *= c2; h ^= h >> 33).
CREATE OR REPLACE MACRO cohort_id_mix1(h) AS (((xor(h, h // 8589934592::HUGEINT)) * 3981806797::HUGEINT + (((xor(h, h // 8589934592::HUGEINT)) * 4283543511::HUGEINT) % 4294967296::HUGEINT) * 4294967296::HUGEINT) % 18446744073709551616::HUGEINT);

CREATE OR REPLACE MACRO cohort_id_mix2(h) AS (((xor(h, h // 8589934592::HUGEINT)) * 444984403::HUGEINT + (((xor(h, h // 8589934592::HUGEINT)) * 3301882366::HUGEINT) % 4294967296::HUGEINT) * 4294967296::HUGEINT) % 18446744073709551616::HUGEINT);

CREATE OR REPLACE MACRO cohort_id_finish(h) AS xor((cohort_id_mix2(cohort_id_mix1(h))), (cohort_id_mix2(cohort_id_mix1(h))) // 8589934592::HUGEINT);

-- The bytes spelled by a hex string.
CREATE OR REPLACE MACRO cohort_id_hex_bytes(hx) AS
    list_transform(range(0, len(hx), 2),
        lambda i: (strpos('0123456789ABCDEF', hx[i + 1]) - 1) * 16 + strpos('0123456789ABCDEF', hx[i + 2]) - 1);

-- An unsigned 64-bit value (in a HUGEINT) as the BIGINT with the same bits.
CREATE OR REPLACE MACRO cohort_id_signed(f) AS
    CASE WHEN f >= 9223372036854775808::HUGEINT THEN (f - 18446744073709551616::HUGEINT)::BIGINT ELSE f::BIGINT END;

-- The node code of an identifier: FNV-1a over the UTF-8 bytes of `type NUL value`
-- (read from their hex spelling), then the finalizer, as a signed BIGINT; the same
-- bits as Cohort's node_code.
CREATE OR REPLACE MACRO cohort_id_node(id_type, id_value) AS
    cohort_id_signed(cohort_id_finish(list_reduce(
        cohort_id_hex_bytes(hex(encode(id_type)) || '00' || hex(encode(id_value))),
        lambda acc, byte: cohort_id_fnv_step(acc, byte),
        14695981039346656037::HUGEINT)));

-- A new profile's id: `use_` and the 16 hex digits of the node that names it.
CREATE OR REPLACE MACRO cohort_id_profile(node) AS
    'use_' || lpad(lower(hex(CASE WHEN node < 0 THEN (node::HUGEINT + 18446744073709551616::HUGEINT)::UBIGINT ELSE node::UBIGINT END)), 16, '0');

-- The distinct profiles an event's identifiers `io` match (STRUCT(n, t, p) each, p = the
-- profile the identifier already belongs to, or NULL).
CREATE OR REPLACE MACRO cohort_id_matched(io) AS
    list_distinct(list_filter(list_transform(io, lambda x: x.p), lambda p: p IS NOT NULL));

-- How many values of rank `ty` profile `q` has that count at time `at_us` (microseconds): all of
-- them (q.c) for a limit over all time, those added less than the window before it (q.a)
-- for a per-period one (`windows`: each rank's window in microseconds, or NULL).
CREATE OR REPLACE MACRO cohort_id_counted(q, ty, windows, at_us) AS
    CASE WHEN windows[ty + 1] IS NULL THEN q.c[ty + 1]
         ELSE len(list_filter(q.a, lambda x: x.t = ty AND x.us > at_us - windows[ty + 1])) END;

-- The first type (by rank) whose limit merging `io` at time `at_us` would break, or NULL: the
-- values per type of every profile `io` matches (from `profs`, STRUCT(p, age, c counts per
-- rank, a add times)) plus its identifiers that belong to no profile yet.
CREATE OR REPLACE MACRO cohort_id_broken(profs, io, limits, windows, at_us) AS
    list_filter(range(len(limits)), lambda ty:
        coalesce(list_sum(list_transform(
            list_filter(profs, lambda q: list_contains(list_transform(io, lambda x: x.p), q.p)),
            lambda q: cohort_id_counted(q, ty, windows, at_us))), 0)
        + len(list_filter(io, lambda x: x.p IS NULL AND x.t = ty))
        > limits[ty + 1])[1];

-- How many of the event's identifiers it keeps: the longest prefix that breaks no limit, at
-- least one (breaking is monotone in the prefix).
CREATE OR REPLACE MACRO cohort_id_kept(profs, io, limits, windows, at_us) AS
    coalesce(list_max(list_filter(range(1, len(io) + 1),
        lambda k: cohort_id_broken(profs, io[1:k], limits, windows, at_us) IS NULL)), 1);

-- The profile the kept identifiers merge into: the oldest one they match, else a new one
-- keyed by the first identifier and aged `step`.
CREATE OR REPLACE MACRO cohort_id_target(profs, io, step) AS
    coalesce(
        list_sort(list_transform(
            list_filter(profs, lambda q: list_contains(list_transform(io, lambda x: x.p), q.p)),
            lambda q: struct_pack(age := q.age, p := q.p)))[1],
        struct_pack(age := step::BIGINT, p := io[1].n));

DROP TABLE IF EXISTS "id_types";

DROP TABLE IF EXISTS "id_nodes";

DROP TABLE IF EXISTS "id_edges";

DROP TABLE IF EXISTS "id_adjacency";

DROP TABLE IF EXISTS "id_violating";

DROP TABLE IF EXISTS "id_replay_events";

DROP TABLE IF EXISTS "id_replayed";

DROP TABLE IF EXISTS "id_replay_dropped";

DROP TABLE IF EXISTS "id_dropped";

DROP TABLE IF EXISTS "id_node_keys";

DROP TABLE IF EXISTS "id_keyed";

DROP TABLE IF EXISTS "id_profile_ids";

DROP TABLE IF EXISTS "id_replay_state";

DROP TABLE IF EXISTS "id_components";

DROP TABLE IF EXISTS "id_identities";

DROP TABLE IF EXISTS "id_event_profiles";

DROP TABLE IF EXISTS "id_violations";

-- The identifier types: rank (0 = highest priority), limit per profile, and the detail
-- an identifier dropped for breaking the limit records.
-- A per-period limit counts the values added within its window (window_s seconds).
CREATE TABLE id_types (id_type text, rank integer, id_limit bigint, window_s bigint,
                       limit_detail text);

INSERT INTO id_types VALUES ('user_id', 0, 1, NULL, 'keeping it would put more than 1 user_id on one profile'), ('email', 1, 5, NULL, 'keeping it would put more than 5 email on one profile'), ('anonymous_id', 2, 5, NULL, 'keeping it would put more than 5 anonymous_id on one profile');

-- Every usable identifier once: its node code, type, value and rank. `spellings` counts the
-- distinct values behind one code (more than one is a 64-bit code collision, checked by the
-- engine).
CREATE TABLE "id_nodes" AS
SELECT
  node,
  id_type,
  MIN(id_value) AS id_value,
  COUNT(DISTINCT id_value) AS spellings,
  MIN(rank) AS rank
FROM
  id_occurrences
WHERE
  violation IS NULL
GROUP BY
  node, id_type;

-- The identity graph's edges: an event links every usable identifier it carries to one of
-- them (the smallest node code), so an event with k identifiers adds k - 1 edges (a star, not
-- a clique). Edges are deduplicated and always written with a < b. The per-event hubs are
-- the join's first side (a hash join holds it in memory): one row per event, against one per
-- identifier occurrence.
CREATE TABLE "id_edges" AS
WITH usable AS (
  SELECT
    message_id,
    node
  FROM
    id_occurrences
  WHERE
    violation IS NULL
), hubs AS (
  SELECT
    message_id,
    MIN(node) AS hub
  FROM
    usable
  GROUP BY
    message_id
)
SELECT DISTINCT
  h.hub AS a,
  u.node AS b
FROM
  hubs h
  JOIN usable u ON u.message_id = h.message_id
WHERE
  u.node <> h.hub;

-- Both directions of every edge, for the label propagation.
CREATE TABLE "id_adjacency" AS
SELECT
  a AS node,
  b AS nbr
FROM
  id_edges
UNION ALL
SELECT
  b AS node,
  a AS nbr
FROM
  id_edges;

-- Min-label propagation as a recursive CTE keyed by node: every identifier starts
-- with its own node as label; each iteration, the neighbours of the identifiers whose
-- label dropped in the previous iteration take the smaller label. Labels only
-- decrease. Loop condition: the recursion ends after an iteration in which no label
-- decreased; then both ends of every edge carry the same label, so each component
-- carries one label, its smallest node.
CREATE TABLE id_components AS
WITH RECURSIVE labels(node, component) USING KEY (node) AS (
    SELECT node, node FROM id_nodes
    UNION
    SELECT a.node, MIN(l.component) AS component
    FROM labels l
    JOIN id_adjacency a ON a.nbr = l.node
    JOIN recurring.labels cur ON cur.node = a.node
    GROUP BY a.node, cur.component
    HAVING MIN(l.component) < cur.component
)
SELECT node, component FROM labels;

-- Components that hold more values of some type than its limit allows. Only these need the
-- sequential replay: in any other component no event can ever break a limit, so the whole
-- component is one profile, exactly as the sequential algorithm would build it.
CREATE TABLE "id_violating" AS
SELECT DISTINCT
  component
FROM
  (
    SELECT
      c.component,
      n.id_type,
      t.id_limit,
      COUNT(*) AS n_values
    FROM
      id_components c
      JOIN id_nodes n ON c.node = n.node
      JOIN id_types t ON n.id_type = t.id_type
    GROUP BY
      c.component, n.id_type, t.id_limit
  ) AS per_type
WHERE
  n_values > id_limit;

-- The events of violating components, numbered in the order the sequential rule takes
-- them, (timestamp, message_id), each with its time in microseconds and its
-- identifiers by priority, then value.
CREATE TABLE id_replay_events AS
SELECT o.component, o.message_id, o.timestamp, epoch_us(o.timestamp) AS us,
       ROW_NUMBER() OVER (PARTITION BY o.component ORDER BY o.timestamp, o.message_id) AS seq,
       list(struct_pack(n := o.node, t := o.rank) ORDER BY o.rank, o.id_value) AS ids
FROM (
    SELECT
      c.component,
      o.message_id,
      o.timestamp,
      o.node,
      o.rank,
      o.id_type,
      o.id_value
    FROM
      id_violating v
      JOIN id_components c ON c.component = v.component
      JOIN id_occurrences o ON o.node = c.node
    WHERE
      o.violation IS NULL ORDER BY c.component, o.timestamp, o.message_id, o.rank, o.id_value
) AS o
GROUP BY o.component, o.message_id, o.timestamp;

-- Segment's sequential rule, one event per iteration for every violating component at
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
               [struct_pack(p := target.p, age := target.age, c := list_transform(range(len(([1, 5, 5]::BIGINT[]))), lambda ty:
                   coalesce(list_sum(list_transform(list_filter(profs, lambda q: list_contains(matched, q.p)), lambda q: q.c[ty + 1])), 0)
                   + len(list_filter(io[1:kept], lambda x: x.p IS NULL AND x.t = ty))),
                   a := list_filter(list_concat(
                       flatten(list_transform(list_filter(profs, lambda q: list_contains(matched, q.p)), lambda q: q.a)),
                       list_transform(list_filter(io[1:kept], lambda x: x.p IS NULL AND ([NULL, NULL, NULL]::BIGINT[])[x.t + 1] IS NOT NULL),
                           lambda x: struct_pack(t := x.t, us := us))),
                       lambda x: x.us > us - ([NULL, NULL, NULL]::BIGINT[])[x.t + 1]))]),
           list_concat(dropped, list_transform(range(kept + 1, len(io) + 1),
               lambda j: struct_pack(message_id := message_id, ts := "timestamp", n := io[j].n,
                                     broken := cohort_id_broken(profs, io[1:j], ([1, 5, 5]::BIGINT[]), ([NULL, NULL, NULL]::BIGINT[]), us))))
    FROM (
        SELECT *, cohort_id_matched(io[1:kept]) AS matched,
               cohort_id_target(profs, io[1:kept], seq) AS target
        FROM (
            SELECT *, cohort_id_kept(profs, io, ([1, 5, 5]::BIGINT[]), ([NULL, NULL, NULL]::BIGINT[]), us) AS kept
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
SELECT component, owner, dropped FROM rp;

CREATE TABLE id_replayed AS
SELECT o.n AS node, o.t AS rank, o.p AS profile_key
FROM (SELECT unnest(owner) AS o FROM id_replay_state) AS s;

CREATE TABLE id_replay_dropped AS
SELECT d.message_id, d.ts AS timestamp, d.n AS node, d.broken
FROM (SELECT unnest(dropped) AS d FROM id_replay_state) AS s;

-- The identifiers the replay dropped, as the run's replay leaves them: the identifier
-- as the event carried it, and the limit keeping it would have broken.
CREATE TABLE "id_dropped" AS
SELECT
  d.message_id,
  d.timestamp,
  d.node,
  o.id_type,
  o.id_value,
  t.limit_detail AS detail
FROM
  id_replay_dropped d
  JOIN id_occurrences o ON d.message_id = o.message_id AND d.node = o.node
  JOIN id_types t ON d.broken = t.rank
WHERE
  o.violation IS NULL;

-- Each identifier's profile, as a key: the component itself, or inside a violating component
-- the profile the replay put it in. Identifiers the replay dropped everywhere get none.
CREATE TABLE "id_node_keys" AS
SELECT
  c.node,
  CASE
    WHEN v.component IS NULL THEN
      c.component
    ELSE
      r.profile_key
  END AS profile_key
FROM
  id_components c
  LEFT JOIN id_violating v ON c.component = v.component
  LEFT JOIN id_replayed r ON c.node = r.node
WHERE
  v.component IS NULL OR r.node IS NOT NULL;

-- Identifiers with their profile key and when they were seen, counting only the events in
-- which the identifier was kept (not dropped by a limit). The tables with a row per
-- identifier (or per dropped one) come first: a hash join holds its first side in memory,
-- and the occurrences have a row per event. The dropped ones' columns are renamed: with the
-- same names on both sides, DataFusion 55 pushed `d.node IS NULL` below this outer join onto
-- the occurrences' `node`, and every row was lost.
CREATE TABLE "id_keyed" AS
SELECT
  x.profile_key,
  x.node,
  x.id_type,
  MIN(x.id_value) AS id_value,
  MIN(x.rank) AS rank,
  MIN(x.timestamp) AS first_seen,
  MAX(x.timestamp) AS last_seen
FROM
  (
    SELECT
      message_id AS dropped_message_id,
      node AS dropped_node
    FROM
      id_dropped
  ) AS d
  RIGHT JOIN (SELECT k.profile_key, o.message_id, o.node, o.id_type, o.id_value, o.rank, o.timestamp FROM id_node_keys k JOIN id_occurrences o ON o.node = k.node WHERE o.violation IS NULL) AS x ON x.message_id = d.dropped_message_id AND x.node = d.dropped_node
WHERE
  d.dropped_node IS NULL
GROUP BY
  x.profile_key, x.node, x.id_type;

-- On a full rebuild every profile is a new one, named after its earliest
-- identifier (first seen, then priority, type, value).
CREATE TABLE "id_profile_ids" AS
SELECT
  profile_key,
  cohort_id_profile(node) AS profile_id
FROM
  (
    SELECT
      profile_key,
      node,
      first_seen,
      rank,
      id_type,
      id_value
    FROM
      (
        SELECT
          profile_key,
          node,
          first_seen,
          rank,
          id_type,
          id_value,
          ROW_NUMBER() OVER (
            PARTITION BY profile_key
            ORDER BY first_seen, rank, id_type, id_value
          ) AS rn
        FROM
          id_keyed
      ) AS ranked
    WHERE
      rn = 1
  ) AS firsts;

-- The published `identities` table: one row per identifier that belongs to a profile.
CREATE TABLE "id_identities" AS
SELECT
  p.profile_id,
  k.id_type,
  k.id_value,
  k.first_seen,
  k.last_seen
FROM
  id_keyed k
  JOIN id_profile_ids p ON k.profile_key = p.profile_key;

-- Every event's profile: the profile of its highest-priority usable identifier (which the
-- limit rule never drops). The tables with a row per identifier come first (a hash join
-- holds its first side in memory; the events are many more).
CREATE TABLE "id_event_profiles" AS
SELECT
  t.message_id,
  p.profile_id
FROM
  id_profile_ids p
  JOIN id_node_keys k ON k.profile_key = p.profile_key
  JOIN (SELECT message_id, ((array_agg(node ORDER BY rank ASC, id_value ASC))[1]) AS node FROM id_occurrences WHERE violation IS NULL GROUP BY message_id) AS t ON t.node = k.node;

-- The published `identity_violations` table: every blocked or malformed identifier and every
-- identifier a limit dropped, with its event, the rule, and the profile the event went to.
CREATE TABLE "id_violations" AS
SELECT
  o.message_id,
  o.timestamp,
  o.id_type,
  LEFT(o.id_value, 1000) AS id_value,
  o.violation AS rule,
  o.violation_detail AS detail,
  e.profile_id
FROM
  id_occurrences o
  LEFT JOIN id_event_profiles e ON o.message_id = e.message_id
WHERE
  o.violation IS NOT NULL
UNION ALL
SELECT
  d.message_id,
  d.timestamp,
  d.id_type,
  d.id_value,
  'limit' AS rule,
  d.detail,
  e.profile_id
FROM
  id_dropped d
  LEFT JOIN id_event_profiles e ON d.message_id = e.message_id;

DROP TABLE IF EXISTS "id_types";

DROP TABLE IF EXISTS "id_nodes";

DROP TABLE IF EXISTS "id_edges";

DROP TABLE IF EXISTS "id_adjacency";

DROP TABLE IF EXISTS "id_violating";

DROP TABLE IF EXISTS "id_replay_events";

DROP TABLE IF EXISTS "id_replayed";

DROP TABLE IF EXISTS "id_replay_dropped";

DROP TABLE IF EXISTS "id_dropped";

DROP TABLE IF EXISTS "id_node_keys";

DROP TABLE IF EXISTS "id_keyed";

DROP TABLE IF EXISTS "id_profile_ids";

DROP TABLE IF EXISTS "id_replay_state";

