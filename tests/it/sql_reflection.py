# Run by tests/it/sql_clients.rs against `cohort serve` (argument: the SQL port).
import json, sys
import sqlalchemy as sa
import pandas as pd
import psycopg
port = int(sys.argv[1])
url = f"postgresql+psycopg://bi:tok-shop@127.0.0.1:{port}/shop"
out = {}
e = sa.create_engine(url)
i = sa.inspect(e)
out["schemas"] = i.get_schema_names()
out["columns"] = {c["name"]: str(c["type"]) for c in i.get_columns("identities")}
out["pk"] = i.get_pk_constraint("profiles")
out["indexes"] = i.get_indexes("profiles")
out["unique"] = i.get_unique_constraints("profiles")
t = sa.Table("identities", sa.MetaData(), autoload_with=e)
with e.connect() as c:
    rows = c.execute(sa.select(t.c.id_type).where(t.c.id_value == "ada@example.com")).all()
out["autoload"] = sorted(r[0] for r in rows)
out["read_sql_table"] = len(pd.read_sql_table("profiles", e))
# psycopg 3 named (server-side) cursors, with and without a parameter, in both loaders.
DSN = dict(host="127.0.0.1", port=port, dbname="shop", user="bi", password="tok-shop")
with psycopg.connect(**DSN) as c:
    with c.cursor(name="ids") as cur:
        cur.itersize = 1
        cur.execute("select id_type, id_value from identities where id_value = %s order by id_type",
                    ("ada@example.com",))
        out["named_description"] = [d.name for d in cur.description]
        out["named_first"] = list(cur.fetchone())
        out["named_rest"] = [list(r) for r in cur]
    with c.cursor(name="all") as cur:
        cur.execute("select count(*) from profiles")
        out["named_count"] = cur.fetchone()[0]
    out["information_schema"] = c.execute(
        "select column_name, data_type, udt_name from information_schema.columns "
        "where table_name = 'identities' order by ordinal_position").fetchall()
# COPY … TO STDOUT: connectorx (and polars through it) read with binary COPY by default.
import connectorx as cx
uri = f"postgresql://bi:tok-shop@127.0.0.1:{port}/shop"
table = cx.read_sql(uri, "select id_type, id_value from identities order by id_value, id_type",
                    return_type="arrow")
out["connectorx_rows"] = table.num_rows
with psycopg.connect(**DSN) as c:
    out["identities_rows"] = c.execute("select count(*) from identities").fetchone()[0]
import polars as pl
frame = pl.read_database_uri("select count(*) as n from profiles", uri)
out["polars"] = int(frame["n"][0])
with psycopg.connect(**DSN) as c:
    with c.cursor().copy("COPY (select id_type from identities where id_value = 'ada@example.com') "
                         "TO STDOUT (FORMAT csv, HEADER)") as copy:
        out["copy_csv"] = b"".join(bytes(b) for b in copy).decode()
# ADBC's PostgreSQL driver (its type lookup at connect, then a query read as Arrow).
import adbc_driver_postgresql.dbapi as adbc
with adbc.connect(uri) as c:
    with c.cursor() as cur:
        cur.execute("select count(*) as n from profiles")
        out["adbc"] = cur.fetch_arrow_table().to_pylist()[0]["n"]
print(json.dumps(out))
