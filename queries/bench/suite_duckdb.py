"""The DuckDB peer of benches/suite.rs: the whole workload of benches/space as hand-written SQL.

argv: data folder, repo root. Runs, in one DuckDB connection with 2 threads, each stage and
times it: events (suite/events.sql), identity (suite/identity_*.sql, the propagation rounds
driven from here until no label changes), traits (traits_duckdb.sql over the resolved events),
sql_traits (suite/sql_traits.sql), audiences (suite/profiles.sql + audiences_duckdb.sql over
the resolved events and those profiles). Prints one JSON object: seconds per stage, rounds,
row counts, DuckDB's version.
"""
import json
import os
import sys
import time

import duckdb

data, root = sys.argv[1], sys.argv[2]
bench = os.path.join(root, "queries", "bench")


def sql(name):
    return open(os.path.join(bench, name)).read().replace("@DATA@", data)


# The traits and audiences files read the raw Parquet with profile = COALESCE(user_id,
# anonymous_id); here they read the deduplicated events with the identity stage's profile.
RAW = "read_parquet('@DATA@/*/*.parquet', hive_partitioning = true)".replace("@DATA@", data)


def over_resolved(text):
    text = text.replace(RAW, "resolved")
    return text.replace("COALESCE(user_id, anonymous_id) AS profile_id", "profile_id")


con = duckdb.connect()
con.execute("SET threads = 2")
secs = {}
out = {"version": duckdb.__version__}


def stage(name, fn):
    t = time.perf_counter()
    fn()
    secs[name] = secs.get(name, 0.0) + time.perf_counter() - t


stage("events", lambda: con.execute(sql("suite/events.sql")))


def identity():
    con.execute(sql("suite/identity_prepare.sql"))
    rounds = 0
    while True:
        rounds += 1
        con.execute(sql("suite/identity_round.sql"))
        changed = con.execute(
            "SELECT count(*) FROM labels2 JOIN labels USING (node) WHERE labels2.label <> labels.label"
        ).fetchone()[0]
        con.execute("DROP TABLE labels; ALTER TABLE labels2 RENAME TO labels")
        if changed == 0:
            break
    out["rounds"] = rounds
    con.execute(sql("suite/identity_finish.sql"))


stage("identity", identity)
stage("traits", lambda: con.execute("CREATE TABLE traits AS " + over_resolved(sql("traits_duckdb.sql"))))
stage("sql_traits", lambda: con.execute(sql("suite/sql_traits.sql")))


def audiences():
    con.execute(sql("suite/profiles.sql"))
    text = over_resolved(sql("audiences_duckdb.sql")).replace("read_parquet('@PROFILES@')", "bench_profiles")
    con.execute("CREATE TABLE audiences AS " + text)


stage("audiences", audiences)
out["secs"] = secs
for t in ["events", "occ", "resolved", "traits", "sql_traits", "bench_profiles", "audiences"]:
    out["rows_" + t] = con.execute(f"SELECT count(*) FROM {t}").fetchone()[0]
out["profiles"] = con.execute("SELECT count(DISTINCT profile_id) FROM resolved").fetchone()[0]
out["members"] = con.execute(
    "SELECT sum(ordered_30d::INT), sum(no_orders::INT), sum(cart_abandoners::INT), sum(vip::INT) FROM audiences"
).fetchone()
print(json.dumps(out))
