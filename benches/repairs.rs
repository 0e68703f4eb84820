//! What an identity repair costs (issue 24): a repair is a file edit that the next run
//! applies incrementally, resolving again only the components its identifiers reach. The peer
//! is what the repair would cost without that, a full rebuild (`cohort run --full`), measured
//! in the same invocation on the same space.
//!
//! One invocation generates `--events` events (default 10 M, fixed `--seed`), copies
//! `benches/space` next to them, runs it in full as of 2026-11-01 (`full`), then, at the same
//! as-of, each case below as an incremental run after writing repairs.yaml:
//! 1. `no_repair`: nothing changed (what any incremental run costs at least);
//! 2. `unlink`: the anonymous id that the most events carry is unlinked;
//! 3. `merge`: a customer's email is merged with an anonymous visitor's id (two profiles);
//! 4. `split`: the space splits at the user id that the most events carry (before it runs,
//!    `validate` and `identity_diff` time `cohort validate` with its check of repairs.yaml
//!    against the last run, and `cohort identity diff`, on the space with the split written);
//! 5. `full_with_repairs`: a full rebuild with those repairs (the peer again, now with them).
//!
//! It prints each run's record, then one `case=... secs=... fraction=... affected=...` line per
//! case (fraction = of the `full` run's wall time; affected = identifiers resolved again).
//!
//! `cargo bench --bench repairs` (10 M events)
//! `cargo bench --bench repairs -- --events 1000000` (a quick run)
//! Flags: `--events N`, `--seed S`, `--memory-limit 6GB`.

mod common;

use std::path::Path;
use std::time::Instant;

use chrono::Utc;
use cohort::generate::GenerateOptions;
use common::space::{Measured, run_options, run_space, write_space};

struct Args {
    events: u64,
    seed: u64,
    memory_limit: Option<String>,
}

fn parse_args() -> Args {
    let mut args = Args {
        events: 10_000_000,
        seed: 42,
        memory_limit: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(a) = it.next() {
        let mut value = || it.next().unwrap_or_else(|| panic!("{a} needs a value"));
        match a.as_str() {
            "--events" => args.events = value().replace('_', "").parse().expect("a number"),
            "--seed" => args.seed = value().parse().expect("a number"),
            "--memory-limit" => args.memory_limit = Some(value()),
            "--bench" => {}
            other => panic!("unknown argument {other}"),
        }
    }
    args
}

/// The first row of `sql` over the space's published `table` (registered as `t`), as text.
async fn first_row(space_dir: &Path, table: &str, sql: &str) -> Vec<String> {
    println!("target query: {sql}");
    let rows = all_rows(space_dir, table, sql).await;
    rows.first()
        .expect("a row")
        .split('|')
        .map(str::to_string)
        .collect()
}

/// Every row of `sql` over the space's published `table` (registered as `t`), each as its
/// text cells joined by `|`.
async fn all_rows(space_dir: &Path, table: &str, sql: &str) -> Vec<String> {
    let v = cohort::analyze::validate_space(space_dir).await;
    let space = v.space.expect("the bench space");
    let ctx = datafusion::prelude::SessionContext::new();
    let t = cohort::read::published_table(&space, table)
        .await
        .expect("published table")
        .expect("the table");
    ctx.register_table("t", t).expect("register");
    let batches = ctx
        .sql(sql)
        .await
        .expect("query")
        .collect()
        .await
        .expect("rows");
    use datafusion::arrow::array::{Array, AsArray};
    let mut out = Vec::new();
    for b in &batches {
        let cols: Vec<_> = b
            .columns()
            .iter()
            .map(|c| {
                datafusion::arrow::compute::cast(c, &datafusion::arrow::datatypes::DataType::Utf8)
                    .expect("text")
            })
            .collect();
        for i in 0..b.num_rows() {
            let cells: Vec<String> = cols
                .iter()
                .map(|c| match c.is_null(i) {
                    true => "NULL".to_string(),
                    false => c.as_string::<i32>().value(i).to_string(),
                })
                .collect();
            out.push(cells.join("|"));
        }
    }
    out
}

fn line(case: &str, m: &Measured, full: &Measured) {
    let id = &m.record["identity"];
    println!(
        "case={case} secs={:.2} fraction={:.4} identity_mode={} affected={} changed_events={} identity_secs={:.2} peak_rss_mb={}",
        m.secs,
        m.secs / full.secs,
        id["mode"].as_str().unwrap_or("-"),
        id["affected_identifiers"]
            .as_u64()
            .map_or("-".into(), |n| n.to_string()),
        id["changed_events"]
            .as_u64()
            .map_or("-".into(), |n| n.to_string()),
        m.stages
            .iter()
            .find(|s| s.0 == "identity")
            .map_or(0.0, |s| s.1),
        m.peak,
    );
}

fn main() {
    let args = parse_args();
    let n = args.events;
    println!(
        "repairs bench events={n} seed={} memory_limit={} cores={} date={}",
        args.seed,
        args.memory_limit.as_deref().unwrap_or("none"),
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        Utc::now().format("%Y-%m-%dT%H:%M:%SZ"),
    );
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    let tmp = tempfile::tempdir().expect("temp dir");
    let dir = tmp.path().join(format!("repairs_{n}"));
    let data = dir.join("data/events");
    std::fs::create_dir_all(&data).expect("data folder");
    rt.block_on(common::generate(&data, n, args.seed));
    let space = dir.join("space");
    write_space(&space, &data);
    let as_of = GenerateOptions::default().end;
    let spill = dir.join("spill");
    let run = |full_rebuild: bool| {
        let opts = run_options(
            as_of,
            full_rebuild,
            args.memory_limit.as_deref(),
            spill.clone(),
        );
        rt.block_on(run_space(&space, &opts))
    };
    let repairs = |text: &str| std::fs::write(space.join("repairs.yaml"), text).expect("repairs");

    println!("## full");
    let full = run(true);
    let mut lines: Vec<(String, Measured)> = Vec::new();

    println!("## no_repair");
    lines.push(("no_repair".into(), run(false)));

    // Values Cohort blocks anyway (the generator writes `null`, `0`, ...) would repair
    // nothing: the targets are usable identifiers.
    let blocked = cohort::spec::DEFAULT_BLOCKED_VALUES
        .iter()
        .map(|v| format!("'{v}'"))
        .collect::<Vec<_>>()
        .join(", ");
    let usable = |c: &str| {
        format!(
            "{c} IS NOT NULL AND lower({c}) NOT IN ({blocked}) AND NOT regexp_like({c}, '^[0-]*$')"
        )
    };
    let anon = rt.block_on(first_row(
        &space,
        "events",
        &format!(
            "SELECT anonymous_id, count(*) AS n FROM t WHERE {} \
             GROUP BY anonymous_id ORDER BY n DESC, anonymous_id LIMIT 1",
            usable("anonymous_id")
        ),
    ));
    // A customer's email and an anonymous visitor's id (two profiles a merge may join: two
    // customers' would be refused, one user id each).
    let customer = rt.block_on(first_row(
        &space,
        "profiles",
        "SELECT email[1] FROM t WHERE user_id IS NOT NULL AND array_length(email) = 1 \
         ORDER BY profile_id LIMIT 1",
    ));
    let visitor = rt.block_on(first_row(
        &space,
        "profiles",
        "SELECT anonymous_id[1] FROM t WHERE user_id IS NULL AND coalesce(array_length(email), 0) = 0 \
         AND array_length(anonymous_id) = 1 ORDER BY profile_id LIMIT 1",
    ));
    let user = rt.block_on(first_row(
        &space,
        "events",
        &format!(
            "SELECT user_id, count(*) AS n FROM t WHERE {} \
             GROUP BY user_id ORDER BY n DESC, user_id LIMIT 1",
            usable("user_id")
        ),
    ));
    println!(
        "targets anonymous_id={} ({} events) merge=email:{},anonymous_id:{} user_id={} ({} events)",
        anon[0], anon[1], customer[0], visitor[0], user[0], user[1]
    );
    let mut text = format!("- unlink: \"anonymous_id:{}\"\n  reason: bench\n", anon[0]);
    let statuses = || {
        let rows = rt.block_on(all_rows(
            &space,
            "identity_repairs",
            "SELECT kind || ' ' || identifier || ' ' || status || ' set_aside=' || \
             CAST(set_aside AS VARCHAR) FROM t ORDER BY location",
        ));
        for r in rows {
            println!("repair {r}");
        }
    };
    println!("## unlink");
    repairs(&text);
    lines.push(("unlink".into(), run(false)));
    statuses();
    text += &format!(
        "- merge: [\"email:{}\", \"anonymous_id:{}\"]\n  reason: bench\n",
        customer[0], visitor[0]
    );
    println!("## merge");
    repairs(&text);
    lines.push(("merge".into(), run(false)));
    statuses();
    text += &format!("- split: \"user_id:{}\"\n  reason: bench\n", user[0]);
    repairs(&text);
    // Before the split runs: what `cohort validate` (with its check of the repairs against the
    // last run) and `cohort identity diff` cost on this space.
    println!("## validate");
    let t = Instant::now();
    let checked = rt.block_on(async {
        let v = cohort::analyze::validate_space(&space).await;
        let s = v.space.expect("the bench space");
        cohort::read::repairs::unknown_identifiers(&s).await
    });
    let validate_secs = t.elapsed().as_secs_f64();
    let unknown = checked.expect("validate").len();
    println!("## identity_diff");
    let t = Instant::now();
    let diff = rt
        .block_on(async {
            let s = cohort::analyze::validate_space(&space)
                .await
                .space
                .expect("the bench space");
            let opts = run_options(as_of, false, args.memory_limit.as_deref(), spill.clone());
            cohort::read::identity_diff::identity_diff(&s, &opts).await
        })
        .expect("identity diff");
    let diff_secs = t.elapsed().as_secs_f64();
    println!("## split");
    lines.push(("split".into(), run(false)));
    statuses();
    println!("## full_with_repairs");
    lines.push(("full_with_repairs".into(), run(true)));

    println!();
    println!(
        "case=full secs={:.2} fraction=1.0000 identity_mode={} peak_rss_mb={}",
        full.secs,
        full.record["identity"]["mode"].as_str().unwrap_or("-"),
        full.peak
    );
    for (case, m) in &lines {
        line(case, m, &full);
    }
    println!(
        "case=validate secs={validate_secs:.2} fraction={:.4} unknown_identifiers={unknown}",
        validate_secs / full.secs
    );
    println!(
        "case=identity_diff secs={diff_secs:.2} fraction={:.4} moved={} arrived={} left={} \
         merged={} split={}",
        diff_secs / full.secs,
        diff.moved,
        diff.arrived,
        diff.left,
        diff.merged,
        diff.split
    );
}
