"""Runs a Cohort space's Spark SQL script (`cohort compile <space> --dialect spark --script`) in
Spark, statement by statement through `spark.sql(...)`, and writes the tables it names as
Parquet. `cohort run <space> --on spark` writes this file out and starts it with spark-submit
(or with a Python that has PySpark); you can start it yourself the same way.

Usage:
  spark_run.py SCRIPT --source NAME=DIR [--source ...] [--out DIR --tables T1,T2,...]
               [--master MASTER] [--warehouse DIR] [--shuffle-partitions N]

Each `--source NAME=DIR` reads the Parquet files under DIR (hive partitions such as `dt=...`
included, as text) as the temporary view `NAME_raw` the script reads. With `--out`, each table
of `--tables` is written to `DIR/<table>` as Parquet once the script has run. The script's own
tables are created in the session's catalog (`--warehouse`, or the cluster's).

Prints one line per statement (`statement N/M: <first line> <seconds>s`), `events N` (the
script's events), `wrote <table>` and `done <seconds>s`; on a failed statement prints it and
exits 1.
"""

import argparse
import os
import sys
import time


def statements(script):
    """The script's statements: each ends with `;` at the end of a line; a block from a line
    `BEGIN` to its line `END` (SQL scripting) is one statement. Comment-only chunks are left
    out, and the final `;` of each statement is removed."""
    out, cur, depth = [], [], 0
    for line in script.splitlines():
        word = line.strip().rstrip(";").strip()
        if word == "BEGIN":
            depth += 1
        elif word == "END" and depth > 0:
            depth -= 1
        cur.append(line)
        if depth == 0 and line.rstrip().endswith(";"):
            text = "\n".join(cur).strip()
            if any(l.strip() and not l.strip().startswith("--") for l in cur):
                out.append(text[:-1].rstrip())
            cur = []
    if any(l.strip() and not l.strip().startswith("--") for l in cur):
        out.append("\n".join(cur).strip())
    return out


def session(master=None, warehouse=None, shuffle_partitions=None):
    """A Spark session for the script: UTC, microsecond Parquet timestamps, partition
    columns read as text, quiet logs."""
    from pyspark.sql import SparkSession

    b = SparkSession.builder.appName("cohort")
    if master:
        b = b.master(master)
    if warehouse:
        b = b.config("spark.sql.warehouse.dir", os.path.abspath(warehouse))
    if shuffle_partitions:
        b = b.config("spark.sql.shuffle.partitions", str(shuffle_partitions))
    b = (
        b.config("spark.ui.enabled", "false")
        .config("spark.ui.showConsoleProgress", "false")
        .config("spark.sql.session.timeZone", "UTC")
        .config("spark.sql.parquet.outputTimestampType", "TIMESTAMP_MICROS")
        .config("spark.sql.sources.partitionColumnTypeInference.enabled", "false")
    )
    spark = b.getOrCreate()
    spark.sparkContext.setLogLevel("ERROR")
    return spark


def register(spark, name, path):
    """The Parquet files under `path` as the temporary view `<name>_raw`."""
    df = spark.read.option("mergeSchema", "true").option("recursiveFileLookup", "false").parquet(path)
    df.createOrReplaceTempView(name + "_raw")


def run(spark, script, log=sys.stdout):
    """Runs every statement of `script`; raises on the first that fails, naming it."""
    stmts = statements(script)
    for i, s in enumerate(stmts, 1):
        first = next(l for l in s.splitlines() if l.strip() and not l.strip().startswith("--"))
        t = time.time()
        try:
            spark.sql(s).collect()
        except Exception as e:
            raise RuntimeError(
                "statement %d/%d failed: %s\n%s" % (i, len(stmts), str(e).split("\n")[0], s[:4000])
            ) from None
        print("statement %d/%d: %s %.2fs" % (i, len(stmts), first.strip()[:70], time.time() - t), file=log)
        log.flush()


def main():
    p = argparse.ArgumentParser(description="Runs a Cohort Spark SQL script.")
    p.add_argument("script")
    p.add_argument("--source", action="append", default=[], help="NAME=DIR of Parquet files")
    p.add_argument("--out", help="folder to write the --tables to, as Parquet")
    p.add_argument("--tables", default="", help="comma-separated tables to write")
    p.add_argument("--master", help="Spark master (spark-submit's --master otherwise)")
    p.add_argument("--warehouse", help="spark.sql.warehouse.dir")
    p.add_argument("--shuffle-partitions", type=int)
    a = p.parse_args()
    started = time.time()
    spark = session(a.master, a.warehouse, a.shuffle_partitions)
    for src in a.source:
        name, path = src.split("=", 1)
        register(spark, name, path)
    try:
        run(spark, open(a.script, encoding="utf-8").read())
    except RuntimeError as e:
        print(e, file=sys.stderr)
        sys.exit(1)
    # What the run record counts: the events the script kept.
    print("events %d" % spark.table("events").count())
    if a.out:
        for t in [t for t in a.tables.split(",") if t]:
            spark.table("`%s`" % t).write.mode("overwrite").parquet(os.path.join(a.out, t))
            print("wrote %s" % t)
    print("done %.2fs" % (time.time() - started))
    spark.stop()


if __name__ == "__main__":
    main()
