//! The end-to-end benchmark: a whole run of `benches/space` (identity, 21 computed traits,
//! 2 SQL traits, 30 audiences, publish) on generated events, against the same workload written
//! by hand for DuckDB (`queries/bench/suite_duckdb.py` and the SQL it reads), then an
//! incremental run after 1 % more events.
//!
//! Goals (issue 7): a full recompute in at most half of DuckDB's time; an incremental
//! recompute after 1 % more events in at most 5 % of the full one; 100 M events under an 8 GB
//! memory limit to completion.
//!
//! For each `--events` count (default `1000000,10000000`) it generates the events (fixed
//! `--seed`, 365 days ending 2026-11-01), copies `benches/space` next to them with the source
//! pointing at the Parquet, runs `cohort::run::run` with `full_rebuild` as of 2026-11-01
//! and prints each stage's time and peak RSS (VmHWM, reset before each stage), then runs the
//! DuckDB peer (2 threads, unless `--skip-duckdb`) and prints the ratio per stage and in
//! total. Then (unless `--skip-incremental`) it appends 1 % more events dated 2026-11-01 (a new
//! seed, so new message ids) into the same source folder and runs again without
//! `full_rebuild`, as of 2026-11-02. `benches/incremental.rs` measures every incremental case
//! of issue 19 (new day, no new data, late files, an edited trait) against a full run.
//!
//! `cargo bench --bench suite -- --events 1000000,10000000`
//! `cargo bench --bench suite -- --events 100000000 --memory-limit 8GB --skip-duckdb --skip-incremental`
//! `--keep DIR` keeps the data and the published tables in DIR.

mod common;

use std::path::PathBuf;

use chrono::{TimeZone, Utc};
use cohort::generate::GenerateOptions;
use cohort::run::RunOptions;
use common::space::{duckdb_suite, print_vs_duckdb, run_options, run_space, write_space};

struct Args {
    events: Vec<u64>,
    seed: u64,
    memory_limit: Option<String>,
    skip_duckdb: bool,
    skip_incremental: bool,
    keep: Option<PathBuf>,
}

fn parse_args() -> Args {
    let mut args = Args {
        events: vec![1_000_000, 10_000_000],
        seed: 42,
        memory_limit: None,
        skip_duckdb: false,
        skip_incremental: false,
        keep: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(a) = it.next() {
        let mut value = || it.next().unwrap_or_else(|| panic!("{a} needs a value"));
        let number = |v: &str| -> u64 {
            v.replace('_', "")
                .parse()
                .unwrap_or_else(|_| panic!("not a number: {v}"))
        };
        match a.as_str() {
            "--events" => args.events = value().split(',').map(number).collect(),
            "--seed" => args.seed = number(&value()),
            "--memory-limit" => args.memory_limit = Some(value()),
            "--skip-duckdb" => args.skip_duckdb = true,
            "--skip-incremental" => args.skip_incremental = true,
            "--keep" => args.keep = Some(PathBuf::from(value())),
            "--bench" => {}
            other => panic!("unknown argument {other}"),
        }
    }
    args
}

fn main() {
    let args = parse_args();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    let tmp = tempfile::tempdir().expect("temp dir");
    let base = args
        .keep
        .clone()
        .unwrap_or_else(|| tmp.path().to_path_buf());
    let as_of = GenerateOptions::default().end;
    for &n in &args.events {
        let dir = base.join(format!("events_{n}"));
        let data = dir.join("data/events");
        std::fs::create_dir_all(&data).expect("data folder");
        rt.block_on(common::generate(&data, n, args.seed));
        let space = dir.join("space");
        write_space(&space, &data);
        let opts = run_options(as_of, true, args.memory_limit.as_deref(), dir.join("spill"));
        let full = rt.block_on(run_space(&space, &opts));

        let duck = (!args.skip_duckdb).then(|| duckdb_suite(&data));
        print_vs_duckdb(n, &full, duck.as_ref());
        println!(
            "full events={n} secs={:.2} peak_rss_mb={} memory_limit={}",
            full.secs,
            full.peak,
            args.memory_limit.as_deref().unwrap_or("none")
        );

        if args.skip_incremental {
            continue;
        }
        // 1 % more events, all on 2026-11-01, new message ids (another seed).
        let more = GenerateOptions {
            events: (n / 100).max(1),
            seed: args.seed + 1,
            days: 1,
            end: Utc.with_ymd_and_hms(2026, 11, 2, 0, 0, 0).unwrap(),
            ..Default::default()
        };
        rt.block_on(common::add_events(
            &data,
            &dir.join("staging"),
            &more,
            "",
            false,
        ));
        let inc_opts = RunOptions {
            as_of: Some(more.end),
            full_rebuild: false,
            ..opts.clone()
        };
        let inc = rt.block_on(run_space(&space, &inc_opts));
        println!(
            "incremental events={n} appended={} secs={:.2} stages={} fraction_of_full={:.3} goal<=0.05",
            more.events,
            inc.secs,
            inc.stage_list(),
            inc.secs / full.secs
        );
    }
}
