//! How fast all computed traits of a space run as Cohort's one fused aggregation, against one
//! query per trait and against DuckDB running the same traits as hand-written SQL over the same
//! Parquet files (`queries/bench/traits_duckdb.sql`).
//!
//! The goal: the fused plan takes at most half of DuckDB's time on 10 M events.
//!
//! It generates `--events` sample events of the `events` preset (fixed `--seed`, ending
//! 2026-11-01, the as-of time of every window), then times, each in a fresh session:
//!
//! * `fused`: the 20 traits below compiled by `computed_traits_plan` into one aggregation;
//! * `per_trait`: the same traits compiled one at a time, run one after another;
//! * `duckdb`: the hand-written SQL in DuckDB (from the bench venv, `bash .ci/venv`), 2 threads,
//!   like this machine's 2 cores, result kept in a temporary table.
//!
//! All read the same minimal event view: profile = `COALESCE(user_id, anonymous_id)`, the
//! text timestamp cast to a timestamp (bad rows become null), JSON properties and context as
//! text. No identity resolution or deduplication on either side: this is the trait
//! aggregation alone. Each result is summarized (rows, non-null counts, sums, distinct values)
//! and the fused and DuckDB summaries must agree, so the two did the same work.
//!
//! `fused` and `duckdb` run `--repeat` times (default 2) and the best time counts; `per_trait`
//! runs once. `--only k1,k2` times the fused plan of just those traits (and nothing else), to
//! see what each kind costs. Prints `key=value` lines: `generate`, `fused`, `per_trait`, `duckdb`, `check`,
//! `ratio`.
//!
//! `cargo bench --bench traits -- --events 10000000`

mod common;

use std::path::Path;
use std::time::Instant;

use cohort::generate::GenerateOptions;
use cohort::plan::traits::{TraitQuery, computed_traits_plan};
use cohort::run::session::{SessionOptions, new_session};
use cohort::spec::parse_trait_query;

/// The traits, in the order of the DuckDB file's columns.
const TRAITS: [(&str, &str); 20] = [
    ("orders", "event('Order Completed').count()"),
    (
        "orders_30d",
        "event('Order Completed').within(30 days).count()",
    ),
    (
        "big_orders_90d",
        "event('Order Completed').where(property('revenue') >= 100).within(90 days).count()",
    ),
    (
        "orders_prev_quarter",
        "event('Order Completed').between(90 days, 180 days).count()",
    ),
    (
        "app_views_30d",
        "event('Product Viewed').where(context('device.type') one_of ['ios', 'android']).within(30 days).count()",
    ),
    (
        "pricey_electronics_adds",
        "event('Product Added').where(property('category') = 'Electronics' AND property('price') > 50).count()",
    ),
    (
        "total_revenue",
        "event('Order Completed').sum(property('revenue'))",
    ),
    (
        "total_spent_365d",
        "event('Order Completed').within(365 days).sum(property('total'))",
    ),
    (
        "avg_order_value",
        "event('Order Completed').avg(property('revenue'))",
    ),
    (
        "avg_discount",
        "event('Coupon Applied').avg(property('discount'))",
    ),
    (
        "min_price_viewed_90d",
        "event('Product Viewed').within(90 days).min(property('price'))",
    ),
    (
        "max_price_added",
        "event('Product Added').max(property('price'))",
    ),
    (
        "favorite_category_90d",
        "event('Product Viewed').within(90 days).mode(property('category'), 2)",
    ),
    (
        "favorite_brand",
        "event('Product Added').mode(property('brand'))",
    ),
    (
        "signup_method",
        "event('Signed Up').first(property('method'))",
    ),
    (
        "last_search",
        "event('Products Searched').last(property('query'))",
    ),
    (
        "last_order_currency",
        "event('Order Completed').last(property('currency'))",
    ),
    ("last_os", "event('Signed In').last(context('os.name'))"),
    (
        "categories_added",
        "event('Product Added').unique(property('category'))",
    ),
    (
        "products_viewed_30d",
        "event('Product Viewed').within(30 days).unique(property('product_id')).count()",
    ),
];

const DUCKDB_SQL: &str = include_str!("../queries/bench/traits_duckdb.sql");

struct Args {
    events: u64,
    seed: u64,
    repeat: usize,
    per_trait: bool,
    /// Only these traits in the fused plan (no DuckDB comparison then).
    only: Vec<String>,
}

fn parse_args() -> Args {
    let mut args = Args {
        events: 10_000_000,
        seed: 42,
        repeat: 2,
        per_trait: true,
        only: Vec::new(),
    };
    let mut it = std::env::args().skip(1);
    while let Some(a) = it.next() {
        let mut value = || it.next().unwrap_or_else(|| panic!("{a} needs a value"));
        let number = |v: String| -> u64 {
            v.replace('_', "")
                .parse()
                .unwrap_or_else(|_| panic!("not a number: {v}"))
        };
        match a.as_str() {
            "--events" => args.events = number(value()),
            "--seed" => args.seed = number(value()),
            "--repeat" => args.repeat = number(value()).max(1) as usize,
            "--no-per-trait" => args.per_trait = false,
            "--only" => args.only = value().split(',').map(str::to_string).collect(),
            "--bench" => {}
            other => panic!("unknown argument {other}"),
        }
    }
    args
}

/// The summary query over a result table `r`: one row of numbers both engines print alike.
fn summary_sql() -> String {
    let mut parts = vec!["count(*)".to_string()];
    for (key, _) in TRAITS {
        let kind = if key.starts_with("categories") {
            "list"
        } else if matches!(
            key,
            "favorite_category_90d"
                | "favorite_brand"
                | "signup_method"
                | "last_search"
                | "last_order_currency"
                | "last_os"
        ) {
            "text"
        } else {
            "number"
        };
        match kind {
            "list" => parts.push(format!("sum(array_length({key}))")),
            "text" => {
                parts.push(format!("count({key})"));
                parts.push(format!("count(DISTINCT {key})"));
            }
            _ => {
                parts.push(format!("count({key})"));
                parts.push(format!("sum(CAST({key} AS DOUBLE))"));
            }
        }
    }
    format!("SELECT {} FROM r", parts.join(", "))
}

fn main() {
    let args = parse_args();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    let dir = tempfile::tempdir().expect("temp dir");
    let data = dir.path().join("data");
    rt.block_on(common::generate(&data, args.events, args.seed));
    let as_of = GenerateOptions::default().end.timestamp_micros();

    let parsed: Vec<(&str, cohort::spec::query::ast::Expr)> = TRAITS
        .iter()
        .map(|(k, q)| {
            (
                *k,
                parse_trait_query(q).unwrap_or_else(|e| panic!("{k}: {e}")),
            )
        })
        .collect();
    let queries: Vec<TraitQuery<'_>> = parsed
        .iter()
        .filter(|(k, _)| args.only.is_empty() || args.only.iter().any(|o| o == k))
        .map(|(k, q)| TraitQuery { key: k, query: q })
        .collect();

    // Fused: all traits in one aggregation.
    let mut best = f64::MAX;
    let mut fused_summary = Vec::new();
    let mut profiles = 0;
    for _ in 0..args.repeat {
        let (secs, rows, summary) = rt.block_on(run_fused(&data, &queries, as_of));
        best = best.min(secs);
        fused_summary = summary;
        profiles = rows;
    }
    let events = args.events as f64;
    println!(
        "fused secs={best:.2} traits={} profiles={profiles} events_per_sec={:.0}",
        queries.len(),
        events / best
    );

    if !args.only.is_empty() {
        return;
    }

    // One query per trait.
    if args.per_trait {
        let t = Instant::now();
        for q in &queries {
            rt.block_on(run_fused(&data, std::slice::from_ref(q), as_of));
        }
        let secs = t.elapsed().as_secs_f64();
        println!(
            "per_trait secs={secs:.2} queries={} ratio_to_fused={:.2}",
            TRAITS.len(),
            secs / best
        );
    }

    // DuckDB.
    let (duck_secs, version, duck_summary) = common::duckdb(
        DUCKDB_SQL,
        &[("@DATA@", &data)],
        &summary_sql(),
        args.repeat,
    );
    println!(
        "duckdb secs={duck_secs:.2} version={version} events_per_sec={:.0}",
        events / duck_secs
    );
    let mismatches = common::compare(&fused_summary, &duck_summary);
    println!(
        "check summary_values={} mismatches={}{}",
        fused_summary.len(),
        mismatches.len(),
        if mismatches.is_empty() {
            String::new()
        } else {
            format!(" first={}", mismatches[0])
        }
    );
    println!(
        "ratio fused_over_duckdb={:.2} goal<=0.50 events={}",
        best / duck_secs,
        args.events
    );
}

/// Runs `traits` as one plan in a fresh session; returns seconds, rows and the summary.
async fn run_fused(
    data: &Path,
    traits: &[TraitQuery<'_>],
    as_of: i64,
) -> (f64, usize, Vec<Option<String>>) {
    let ctx = new_session(&SessionOptions::default()).expect("session");
    let events = common::event_view(&ctx, data).await;
    let (plan, _) = computed_traits_plan(events, "profile_id", traits, as_of).expect("compile");
    let t = Instant::now();
    let batches = ctx
        .execute_logical_plan(plan)
        .await
        .expect("plan")
        .collect()
        .await
        .expect("run");
    let secs = t.elapsed().as_secs_f64();
    let rows = batches.iter().map(|b| b.num_rows()).sum();
    if traits.len() < TRAITS.len() {
        return (secs, rows, Vec::new());
    }
    let summary = common::summarize(&ctx, batches, &summary_sql()).await;
    (secs, rows, summary)
}
