//! What a run costs after a change, as a fraction of a full run (issue 19): teams recompute
//! hourly over a year of events, so a run should cost what changed, not the whole year.
//!
//! One invocation generates `--events` events (default 10 M, fixed `--seed`, 365 days ending
//! 2026-11-01), copies `benches/space` next to them and measures, on that one space and output:
//! 1. (unless `--skip-duckdb`) the DuckDB peer of `benches/suite.rs`, then the full run
//!    (`full_rebuild`, what `cohort run --full` does) as of 2026-11-01 on the same data;
//! 2. `new_day`: 1 % more events (another seed) in a new partition `dt=2026-11-01`, run as of
//!    2026-11-02;
//! 3. `no_new_data`: nothing new, run as of 2026-11-02T01:00Z;
//! 4. `late_events`: 0.1 % more events (another seed) over the 30 days before 2026-09-01, each
//!    file moved into the existing `dt=` partition under a new name (`late-part-NNNNN.parquet`,
//!    no existing file is changed), run as of 2026-11-02T02:00Z;
//! 5. `trait_edited`: `traits/orders_90d.yaml` (read by the `frequent` audience) edited from
//!    `within(90 days)` to `within(60 days)`, run at the same as-of;
//! 6. `scheduled_hourly`: nothing new, one hour later, run as the scheduler runs an hourly slot
//!    with the default schedules (every computed trait and audience due, the SQL traits not:
//!    they keep their values, see `cohort run --select`).
//!
//! Runs 2-6 are incremental (no `full_rebuild`), each timed as a fraction of the full run's wall
//! time. Goals: new_day <= 5 %, no_new_data <= 2 %, late_events <= 10 %, trait_edited <= 15 %,
//! scheduled_hourly <= 2 % (as no_new_data), and the full run <= 0.5x the DuckDB peer (stage
//! totals, as `benches/suite.rs` compares them).
//!
//! It prints each run's stage times, peak RSS and run record (identity mode, events, ...), a
//! markdown table (`| case | Cohort s | fraction of full | goal | met |`) and one
//! `case=... secs=... fraction=... goal=...` line per case for scripts.
//!
//! `cargo bench --bench incremental` (10 M events, with DuckDB: the bench venv's python,
//! `COHORT_PYTHON` or `bash .ci/venv`)
//! `cargo bench --bench incremental -- --events 1000000 --skip-duckdb` (a quick run)
//! Flags: `--events N`, `--seed S`, `--memory-limit 6GB`, `--skip-duckdb`, `--keep DIR` (keeps
//! the data, the space and the published tables in `DIR/incremental_N`, which must not exist).

mod common;

use std::path::PathBuf;

use chrono::{DateTime, TimeZone, Utc};
use cohort::generate::GenerateOptions;
use common::space::{Measured, duckdb_suite, print_vs_duckdb, run_options, run_space, write_space};

struct Args {
    events: u64,
    seed: u64,
    memory_limit: Option<String>,
    skip_duckdb: bool,
    keep: Option<PathBuf>,
}

fn parse_args() -> Args {
    let mut args = Args {
        events: 10_000_000,
        seed: 42,
        memory_limit: None,
        skip_duckdb: false,
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
            "--events" => args.events = number(&value()),
            "--seed" => args.seed = number(&value()),
            "--memory-limit" => args.memory_limit = Some(value()),
            "--skip-duckdb" => args.skip_duckdb = true,
            "--keep" => args.keep = Some(PathBuf::from(value())),
            "--bench" => {}
            other => panic!("unknown argument {other}"),
        }
    }
    args
}

/// An incremental case: its key for scripts, its row in the table and its goal (a fraction
/// of the full run).
struct Case {
    key: &'static str,
    label: &'static str,
    goal: f64,
}

const NEW_DAY: Case = Case {
    key: "new_day",
    label: "+1 % events in a new day partition, as-of +1 day",
    goal: 0.05,
};
const NO_NEW_DATA: Case = Case {
    key: "no_new_data",
    label: "no new data, as-of +1 hour",
    goal: 0.02,
};
const LATE_EVENTS: Case = Case {
    key: "late_events",
    label: "+0.1 % late events into 30 old partitions",
    goal: 0.10,
};
const TRAIT_EDITED: Case = Case {
    key: "trait_edited",
    label: "one computed trait edited",
    goal: 0.15,
};

const SCHEDULED_HOURLY: Case = Case {
    key: "scheduled_hourly",
    label: "no new data, as-of +1 hour, as the scheduler runs it (traits and audiences due, SQL traits not)",
    goal: 0.02,
};

/// The goal of the full run against the DuckDB peer (Cohort / DuckDB).
const DUCKDB_GOAL: f64 = 0.5;

/// The trait file case `trait_edited` edits, and the edit.
const EDITED_TRAIT: (&str, &str, &str) = (
    "traits/orders_90d.yaml",
    "within(90 days)",
    "within(60 days)",
);

fn utc(y: i32, m: u32, d: u32, h: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(y, m, d, h, 0, 0).unwrap()
}

/// The machine and the build, for the record in docs/BENCHMARKS.md.
fn print_machine(args: &Args) {
    let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    let mem_gb = meminfo
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map_or(0.0, |kb| kb as f64 / 1024.0 / 1024.0);
    let commit = std::process::Command::new("git")
        .args(["rev-parse", "--short", "HEAD"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_else(|| "?".into());
    println!(
        "incremental bench events={} seed={} memory_limit={} cores={} mem_gb={mem_gb:.1} commit={commit} date={}",
        args.events,
        args.seed,
        args.memory_limit.as_deref().unwrap_or("none"),
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        Utc::now().format("%Y-%m-%dT%H:%M:%SZ"),
    );
}

/// How the run evaluated traits and audiences: `incremental:<profiles evaluated>` or
/// `full:<reason>`.
fn traits_mode(record: &serde_json::Value) -> String {
    let r = &record["profiles"]["recompute"];
    match r["reason"].as_str() {
        Some(why) => format!("full:{why:?}"),
        None => format!(
            "{}:{}",
            r["mode"].as_str().unwrap_or("-"),
            r["profiles"].as_u64().unwrap_or(0)
        ),
    }
}

/// Prints a run's stage times and peak RSS (the record was printed by `run_space`).
fn print_run(key: &str, m: &Measured, full: Option<&Measured>) {
    let stages = m
        .stages
        .iter()
        .map(|(s, secs, peak)| format!("{s}:{secs:.2}s/{peak}MB"))
        .collect::<Vec<_>>()
        .join(",");
    let fraction = full.map_or(String::new(), |f| {
        format!(" fraction={:.4}", m.secs / f.secs)
    });
    println!(
        "stages case={key} secs={:.2}{fraction} peak_rss_mb={} identity_mode={} traits={} stages={stages}",
        m.secs,
        m.peak,
        m.record["identity"]["mode"].as_str().unwrap_or("-"),
        traits_mode(&m.record),
    );
}

fn main() {
    let args = parse_args();
    let n = args.events;
    print_machine(&args);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    let tmp = tempfile::tempdir().expect("temp dir");
    let dir = match &args.keep {
        Some(keep) => {
            let dir = keep.join(format!("incremental_{n}"));
            assert!(
                !dir.exists(),
                "{} exists already: remove it or choose another --keep",
                dir.display()
            );
            dir
        }
        None => tmp.path().join(format!("incremental_{n}")),
    };
    let data = dir.join("data/events");
    std::fs::create_dir_all(&data).expect("data folder");
    rt.block_on(common::generate(&data, n, args.seed));
    let space = dir.join("space");
    write_space(&space, &data);
    let memory_limit = args.memory_limit.as_deref();
    let spill = dir.join("spill");
    let run_selected = |as_of: DateTime<Utc>, full_rebuild: bool, select: Option<_>| {
        let mut opts = run_options(as_of, full_rebuild, memory_limit, spill.clone());
        opts.select = select;
        rt.block_on(run_space(&space, &opts))
    };
    let run = |as_of: DateTime<Utc>, full_rebuild: bool| run_selected(as_of, full_rebuild, None);

    // The peer first, on the files the full run reads: DuckDB takes up to 80 % of the
    // machine's memory, which it would not find free beside this process after a run.
    let duck = (!args.skip_duckdb).then(|| duckdb_suite(&data));
    println!("## full run as of 2026-11-01");
    let full = run(GenerateOptions::default().end, true);
    print_run("full", &full, None);
    let vs_duck = print_vs_duckdb(n, &full, duck.as_ref());

    let mut cases: Vec<(&Case, Measured)> = Vec::new();

    println!("## {}: {}", NEW_DAY.key, NEW_DAY.label);
    let new_day = GenerateOptions {
        events: (n / 100).max(1),
        seed: args.seed + 1,
        days: 1,
        end: utc(2026, 11, 2, 0),
        ..Default::default()
    };
    rt.block_on(common::add_events(
        &data,
        &dir.join("staging"),
        &new_day,
        "",
        false,
    ));
    let m = run(utc(2026, 11, 2, 0), false);
    print_run(NEW_DAY.key, &m, Some(&full));
    cases.push((&NEW_DAY, m));

    println!("## {}: {}", NO_NEW_DATA.key, NO_NEW_DATA.label);
    let m = run(utc(2026, 11, 2, 1), false);
    print_run(NO_NEW_DATA.key, &m, Some(&full));
    cases.push((&NO_NEW_DATA, m));

    println!("## {}: {}", LATE_EVENTS.key, LATE_EVENTS.label);
    let late = GenerateOptions {
        events: (n / 1000).max(1),
        seed: args.seed + 2,
        days: 30,
        end: utc(2026, 9, 1, 0),
        ..Default::default()
    };
    rt.block_on(common::add_events(
        &data,
        &dir.join("staging"),
        &late,
        "late-",
        true,
    ));
    let late_as_of = utc(2026, 11, 2, 2);
    let m = run(late_as_of, false);
    print_run(LATE_EVENTS.key, &m, Some(&full));
    cases.push((&LATE_EVENTS, m));

    println!("## {}: {}", TRAIT_EDITED.key, TRAIT_EDITED.label);
    let (file, from, to) = EDITED_TRAIT;
    let path = space.join(file);
    let text = std::fs::read_to_string(&path).expect("trait file");
    assert!(text.contains(from), "{file} has no {from}");
    std::fs::write(&path, text.replace(from, to)).expect("edit the trait");
    println!("edited {file}: {from} -> {to}");
    let m = run(late_as_of, false);
    print_run(TRAIT_EDITED.key, &m, Some(&full));
    cases.push((&TRAIT_EDITED, m));

    println!("## {}: {}", SCHEDULED_HOURLY.key, SCHEDULED_HOURLY.label);
    // What an hourly slot makes due with the default schedules: every computed trait and
    // audience; the SQL traits (every 12 hours) keep their values.
    let mut due = std::collections::BTreeSet::new();
    for (folder, kind) in [("traits", "trait"), ("audiences", "audience")] {
        for f in std::fs::read_dir(space.join(folder)).expect("definitions") {
            let name = f.expect("a file").file_name().to_string_lossy().to_string();
            if let Some(key) = name.strip_suffix(".yaml") {
                due.insert(format!("{kind}:{key}"));
            }
        }
    }
    let m = run_selected(late_as_of + chrono::Duration::hours(1), false, Some(due));
    print_run(SCHEDULED_HOURLY.key, &m, Some(&full));
    cases.push((&SCHEDULED_HOURLY, m));

    print_summary(n, &full, &cases, vs_duck);
}

/// The table and the machine-readable lines.
fn print_summary(
    n: u64,
    full: &Measured,
    cases: &[(&Case, Measured)],
    vs_duck: Option<(f64, f64, f64)>,
) {
    let yes = |met: bool| if met { "yes" } else { "no" };
    println!();
    println!("| case | Cohort s | fraction of full | goal | met |");
    println!("|---|---|---|---|---|");
    println!(
        "| full run, {n} events (peak RSS {} MB) | {:.2} | 100 % | - | - |",
        full.peak, full.secs
    );
    for (case, m) in cases {
        let fraction = m.secs / full.secs;
        println!(
            "| {} | {:.2} | {:.1} % | ≤ {:.0} % | {} |",
            case.label,
            m.secs,
            fraction * 100.0,
            case.goal * 100.0,
            yes(fraction <= case.goal)
        );
    }
    if let Some((cohort, duck, ratio)) = vs_duck {
        println!(
            "| full run / DuckDB peer (stage totals {cohort:.2} s / {duck:.2} s) | {:.2} | {ratio:.2}× | ≤ {DUCKDB_GOAL}× | {} |",
            full.secs,
            yes(ratio <= DUCKDB_GOAL)
        );
    }
    println!();
    println!(
        "case=full events={n} secs={:.3} peak_rss_mb={} identity_mode={}",
        full.secs,
        full.peak,
        full.record["identity"]["mode"].as_str().unwrap_or("-")
    );
    for (case, m) in cases {
        let fraction = m.secs / full.secs;
        println!(
            "case={} secs={:.3} fraction={fraction:.4} goal={} met={} peak_rss_mb={} identity_mode={}",
            case.key,
            m.secs,
            case.goal,
            fraction <= case.goal,
            m.peak,
            m.record["identity"]["mode"].as_str().unwrap_or("-")
        );
    }
    if let Some((cohort, duck, ratio)) = vs_duck {
        println!(
            "case=duckdb cohort_secs={cohort:.3} duckdb_secs={duck:.3} ratio={ratio:.4} goal={DUCKDB_GOAL} met={}",
            ratio <= DUCKDB_GOAL
        );
    }
}
