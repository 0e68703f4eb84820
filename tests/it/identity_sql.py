"""Runs Cohort's identity SQL (src/script/sql_identity.rs) in DuckDB or PostgreSQL.

Usage: identity_sql.py duckdb|postgres <occurrences.parquet> <statements.json> <out.json> [dsn]

Loads the occurrence rows into `id_occurrences`, runs every statement in order, then writes
the four output tables as JSON rows (timestamps as UTC microseconds), plus `node_mismatches`:
occurrences whose node differs from the script's own `cohort_id_node`.
"""

import json
import sys

import pyarrow.parquet as pq

QUERIES = {
    "id_components": "SELECT node, component FROM id_components",
    "id_identities": "SELECT profile_id, id_type, id_value, {us(first_seen)}, {us(last_seen)} FROM id_identities",
    "id_event_profiles": "SELECT message_id, profile_id FROM id_event_profiles",
    "id_violations": 'SELECT message_id, {us("timestamp")}, id_type, id_value, rule, detail, profile_id FROM id_violations',
    "node_mismatches": "SELECT id_type, id_value, node, cohort_id_node(id_type, id_value) FROM id_occurrences "
    "WHERE node <> cohort_id_node(id_type, id_value)",
    "profile_names": "SELECT node, cohort_id_profile(node) FROM (SELECT DISTINCT node FROM id_occurrences) AS t",
}


def render(q, us):
    out = q
    for col in ["first_seen", "last_seen", '"timestamp"']:
        out = out.replace("{us(%s)}" % col, us(col))
    return out


def main():
    mode, occ_path, stmts_path, out_path = sys.argv[1:5]
    stmts = json.load(open(stmts_path))
    table = pq.read_table(occ_path)
    results = {}
    if mode == "duckdb":
        import duckdb

        con = duckdb.connect()
        con.execute(
            "CREATE TABLE id_occurrences AS SELECT message_id::VARCHAR AS message_id, "
            '"timestamp"::TIMESTAMPTZ AS "timestamp", id_type::VARCHAR AS id_type, '
            "id_value::VARCHAR AS id_value, rank::INTEGER AS rank, node::BIGINT AS node, "
            "violation::VARCHAR AS violation, violation_detail::VARCHAR AS violation_detail "
            "FROM read_parquet(?)",
            [occ_path],
        )
        for s in stmts:
            try:
                con.execute(s)
            except Exception as e:
                sys.exit("statement failed: %s\n%s" % (e, s))
        for name, q in QUERIES.items():
            results[name] = [list(r) for r in con.execute(render(q, lambda c: "epoch_us(%s)" % c)).fetchall()]
    else:
        import psycopg

        dsn = sys.argv[5]
        with psycopg.connect(dsn, autocommit=True) as con:
            con.execute(
                "CREATE TABLE id_occurrences (message_id text, timestamp timestamptz, id_type text, "
                "id_value text, rank integer, node bigint, violation text, violation_detail text)"
            )
            cols = [
                "message_id",
                "timestamp",
                "id_type",
                "id_value",
                "rank",
                "node",
                "violation",
                "violation_detail",
            ]
            with con.cursor() as cur:
                with cur.copy("COPY id_occurrences (%s) FROM STDIN" % ", ".join(cols)) as cp:
                    for r in table.select(cols).to_pylist():
                        cp.write_row([r[c] for c in cols])
            for s in stmts:
                try:
                    con.execute(s)
                except Exception as e:
                    sys.exit("statement failed: %s\n%s" % (e, s))
            for name, q in QUERIES.items():
                rows = con.execute(
                    render(q, lambda c: "(extract(epoch FROM %s) * 1000000)::bigint" % c)
                ).fetchall()
                results[name] = [list(r) for r in rows]
    json.dump(results, open(out_path, "w"))


main()
