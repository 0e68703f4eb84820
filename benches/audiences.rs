//! How fast all audiences of a space run as Cohort's shared plans (one fused per-profile
//! aggregation, one plan per funnel, the boolean columns in dependency order), against DuckDB
//! running the same 30 audiences as hand-written SQL over the same Parquet files
//! (`queries/bench/audiences_duckdb.sql`).
//!
//! The goal: Cohort's plan takes at most half of DuckDB's time on 10 M events.
//!
//! It generates `--events` sample events of the `events` preset (fixed `--seed`, ending
//! 2026-11-01, the as-of time of every window), then writes a profiles file both engines read:
//! every profile of the events with two computed traits (`total_revenue`, `orders_90d`). Then
//! it times, each in a fresh session:
//!
//! * `cohort`: the 30 audiences below (events with filters, windows, negations, funnels, a
//!   dynamic property reference, traits and nested audiences) compiled by `audiences_plan`
//!   over the events they read, written once to a scratch folder as a run does
//!   (`compile_over_kept_events`); the time includes that write;
//! * `duckdb`: the hand-written SQL in DuckDB (from the bench venv, `bash .ci/venv`), 2 threads,
//!   like this machine's 2 cores, result kept in a temporary table.
//!
//! Both read the same minimal event view as the traits bench (profile =
//! `COALESCE(user_id, anonymous_id)`, no identity resolution or deduplication): this is the
//! audience evaluation alone. Each result is summarized (rows and members per audience) and the
//! summaries must agree. Both run `--repeat` times (default 2) and the best time counts.
//! `--only k1,k2` times just those audiences; `--in-memory` keeps the audiences' events in
//! memory instead of the scratch folder. Prints `key=value` lines: `generate`, `cohort`,
//! `duckdb`, `check`, `ratio`.
//!
//! `cargo bench --bench audiences -- --events 10000000`

mod common;

use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use cohort::generate::GenerateOptions;
use cohort::plan::audiences::{AudienceInputs, AudienceQuery, audiences_plan};
use cohort::run::audiences::compile_over_kept_events;
use cohort::run::session::{SessionOptions, new_session};
use cohort::spec::EntityType;
use cohort::spec::parse_audience_query;
use datafusion::arrow::datatypes::DataType;
use datafusion::catalog::MemTable;
use datafusion::prelude::ParquetReadOptions;

/// The 30 audiences: key and query (mirrored in queries/bench/audiences_duckdb.sql).
const AUDIENCES: [(&str, &str); 30] = [
    (
        "ordered_30d",
        "event('Order Completed').within(30 days).count() >= 1",
    ),
    (
        "ordered_3x_90d",
        "event('Order Completed').within(90 days).count() >= 3",
    ),
    (
        "big_order_90d",
        "event('Order Completed').where(property('revenue') >= 100).within(90 days).count() >= 1",
    ),
    (
        "usd_buyer",
        "event('Order Completed').where(property('currency') = 'USD').count() >= 1",
    ),
    ("no_orders", "event('Order Completed').count() = 0"),
    (
        "lapsed",
        "event('Order Completed').between(30 days, 90 days).count() >= 1 AND event('Order Completed').within(30 days).count() = 0",
    ),
    (
        "viewers_7d",
        "event('Product Viewed').within(7 days).count() >= 5",
    ),
    (
        "electronics_browsers",
        "event('Product Viewed').where(property('category') = 'Electronics').within(30 days).count() >= 2",
    ),
    ("searchers", "event('Products Searched').within(30 days)"),
    (
        "not_signed_in_30d",
        "NOT event('Signed In').within(30 days).count() >= 1",
    ),
    (
        "signed_in_72h",
        "event('Signed In').within(72 hours).count() >= 1",
    ),
    (
        "email_openers",
        "event('Email Opened').within(2 weeks).count() >= 1",
    ),
    (
        "clickers_no_order",
        "event('Email Link Clicked').within(30 days).count() >= 1 AND event('Order Completed').within(30 days).count() = 0",
    ),
    (
        "cart_abandoners",
        "event('Checkout Started').where(event('Order Completed').within(parent: 7 days).count() = 0).within(30 days).count() >= 1",
    ),
    (
        "checkout_converters",
        "event('Checkout Started').where(event('Order Completed').within(parent: 1 days).count() >= 1).within(90 days).count() >= 1",
    ),
    (
        "browse_no_add",
        "event('Product Viewed').where(event('Product Added').where(property('product_id') = property(parent: 'product_id')).within(parent: 1 days).count() = 0).within(7 days).count() >= 2",
    ),
    ("high_value", "trait('total_revenue') > 500"),
    ("frequent", "trait('orders_90d') >= 3"),
    (
        "refunders",
        "event('Order Refunded').within(90 days).count() >= 1",
    ),
    (
        "mobile_users",
        "event('Application Opened').within(30 days).count() >= 3",
    ),
    (
        "cart_viewers",
        "event('Cart Viewed').within(30 days).count() >= 2",
    ),
    (
        "avg_order_high",
        "event('Order Completed').within(180 days).avg(property('revenue')) >= 80",
    ),
    (
        "max_order_high",
        "event('Order Completed').max(property('revenue')) > 300",
    ),
    (
        "revenue_90d_high",
        "event('Order Completed').within(90 days).sum(property('revenue')) >= 200",
    ),
    (
        "coupon_users",
        "event('Order Completed').where(property('coupon') exists).within(180 days).count() >= 1",
    ),
    (
        "subscribers",
        "event('Subscription Started').count() >= 1 AND NOT event('Subscription Cancelled').count() >= 1",
    ),
    (
        "unhappy",
        "event('Review Submitted').where(property('rating') <= 2).within(180 days).count() >= 1 OR event('Order Refunded').within(30 days).count() >= 2",
    ),
    ("vip", "trait('high_value') AND trait('ordered_30d')"),
    (
        "at_risk",
        "trait('high_value') AND NOT trait('ordered_30d')",
    ),
    (
        "loyal",
        "trait('frequent') = true AND NOT trait('refunders') = true",
    ),
];

const DUCKDB_SQL: &str = include_str!("../queries/bench/audiences_duckdb.sql");

struct Args {
    events: u64,
    seed: u64,
    repeat: usize,
    /// Only these audiences (no DuckDB comparison then), to see what each kind costs.
    only: Vec<String>,
    /// Keep the audiences' events in memory instead of a scratch folder (a run writes them to
    /// its scratch folder, so that memory stays bounded).
    in_memory: bool,
}

fn parse_args() -> Args {
    let mut args = Args {
        events: 10_000_000,
        seed: 42,
        repeat: 2,
        only: Vec::new(),
        in_memory: false,
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
            "--only" => args.only = value().split(',').map(str::to_string).collect(),
            "--in-memory" => args.in_memory = true,
            "--bench" => {}
            other => panic!("unknown argument {other}"),
        }
    }
    args
}

/// The summary query over a result table `r`: rows, then members per audience.
fn summary_sql() -> String {
    let mut parts = vec!["count(*)".to_string()];
    for (key, _) in AUDIENCES {
        parts.push(format!("sum(CASE WHEN {key} THEN 1 ELSE 0 END)"));
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
    let profiles = dir.path().join("profiles.parquet");
    rt.block_on(write_profiles(&data, &profiles));

    let parsed: Vec<(&str, cohort::spec::query::ast::Expr)> = AUDIENCES
        .iter()
        .map(|(k, q)| {
            (
                *k,
                parse_audience_query(q, EntityType::Users).unwrap_or_else(|e| panic!("{k}: {e}")),
            )
        })
        .collect();
    let queries: Vec<AudienceQuery<'_>> = parsed
        .iter()
        .filter(|(k, _)| args.only.is_empty() || args.only.iter().any(|o| o == k))
        .map(|(k, q)| AudienceQuery {
            key: k,
            query: q,
            entity: EntityType::Users,
            include_anonymous: true,
        })
        .collect();

    let mut best = f64::MAX;
    let mut summary = Vec::new();
    let mut rows = 0;
    for _ in 0..args.repeat {
        let (secs, n, s) = rt.block_on(run_cohort(
            &data,
            &profiles,
            &queries,
            as_of,
            args.in_memory,
        ));
        best = best.min(secs);
        summary = s;
        rows = n;
    }
    let events = args.events as f64;
    println!(
        "cohort secs={best:.2} audiences={} profiles={rows} events_per_sec={:.0} keep={}",
        queries.len(),
        events / best,
        if args.in_memory { "memory" } else { "scratch" }
    );
    if !args.only.is_empty() {
        return;
    }
    let (duck_secs, version, duck_summary) = common::duckdb(
        DUCKDB_SQL,
        &[("@DATA@", &data), ("@PROFILES@", &profiles)],
        &summary_sql(),
        args.repeat,
    );
    println!(
        "duckdb secs={duck_secs:.2} version={version} events_per_sec={:.0}",
        events / duck_secs
    );
    let mismatches = common::compare(&summary, &duck_summary);
    println!(
        "check summary_values={} mismatches={}{}",
        summary.len(),
        mismatches.len(),
        if mismatches.is_empty() {
            String::new()
        } else {
            format!(" first={}", mismatches.join(" "))
        }
    );
    println!(
        "ratio cohort_over_duckdb={:.2} goal<=0.50 events={}",
        best / duck_secs,
        args.events
    );
}

/// Every profile of the events with `total_revenue` (sum of revenue) and `orders_90d`
/// (orders in the 90 days before as-of), written once to `out` for both engines.
async fn write_profiles(data: &Path, out: &Path) {
    let ctx = new_session(&SessionOptions::default()).expect("session");
    let events = common::event_view(&ctx, data).await;
    ctx.register_table(
        "ev",
        ctx.execute_logical_plan(events)
            .await
            .expect("view")
            .into_view(),
    )
    .expect("register");
    let df = ctx
        .sql(
            "SELECT profile_id, \
               sum(TRY_CAST(cohort_json_get(properties, 'revenue') AS DOUBLE)) \
                 FILTER (WHERE event = 'Order Completed') AS total_revenue, \
               count(*) FILTER (WHERE event = 'Order Completed' \
                 AND timestamp > TIMESTAMP '2026-08-03T00:00:00Z') AS orders_90d \
             FROM ev WHERE profile_id IS NOT NULL \
               AND timestamp <= TIMESTAMP '2026-11-01T00:00:00Z' GROUP BY profile_id",
        )
        .await
        .expect("profiles");
    let batches = df.collect().await.expect("profiles");
    let file = std::fs::File::create(out).expect("profiles file");
    let mut w = datafusion::parquet::arrow::ArrowWriter::try_new(file, batches[0].schema(), None)
        .expect("writer");
    for b in &batches {
        w.write(b).expect("write");
    }
    w.close().expect("close");
}

/// Runs the audiences in a fresh session; returns seconds, rows and the summary.
async fn run_cohort(
    data: &Path,
    profiles: &Path,
    audiences: &[AudienceQuery<'_>],
    as_of: i64,
    in_memory: bool,
) -> (f64, usize, Vec<Option<String>>) {
    let ctx = new_session(&SessionOptions::default()).expect("session");
    let events = common::event_view(&ctx, data).await;
    let profiles = ctx
        .read_parquet(
            profiles.to_str().expect("utf-8"),
            ParquetReadOptions::default(),
        )
        .await
        .expect("profiles")
        .into_unoptimized_plan();
    let empty = |cols: &[&str]| {
        let schema = Arc::new(datafusion::arrow::datatypes::Schema::new(
            cols.iter()
                .map(|c| datafusion::arrow::datatypes::Field::new(*c, DataType::Utf8, true))
                .collect::<Vec<_>>(),
        ));
        ctx.read_table(Arc::new(
            MemTable::try_new(schema, vec![vec![]]).expect("mem"),
        ))
        .expect("empty")
        .into_unoptimized_plan()
    };
    let inputs = AudienceInputs {
        profiles,
        events,
        accounts: empty(&["account_id"]),
        links: empty(&["account_id", "profile_id"]),
        data_typed: Default::default(),
        lenient: false,
    };
    let scratch = tempfile::tempdir().expect("scratch");
    let t = Instant::now();
    let (plans, _) = compile_over_kept_events(
        &ctx,
        &mut cohort::run::sink::StageSink::Materialize,
        inputs,
        |i| Ok(audiences_plan(i, audiences, as_of, false).expect("compile")),
        (!in_memory).then(|| scratch.path()),
    )
    .await
    .expect("keep events");
    let batches = ctx
        .execute_logical_plan(plans.users)
        .await
        .expect("plan")
        .collect()
        .await
        .expect("run");
    let secs = t.elapsed().as_secs_f64();
    let rows = batches.iter().map(|b| b.num_rows()).sum();
    if audiences.len() < AUDIENCES.len() {
        return (secs, rows, Vec::new());
    }
    let summary = common::summarize(&ctx, batches, &summary_sql()).await;
    (secs, rows, summary)
}
