//! How fast `cohort generate` writes sample data: N events (default 10 M, or
//! `COHORT_BENCH_EVENTS`) of each preset named on the command line (default `events`) into a
//! temporary folder. `cargo bench --bench generate -- events segment rudderstack`

use std::path::Path;

use cohort::generate::{GenerateOptions, generate};
use cohort::spec::Preset;
use cohort::store::objects::{open, resolve_url};

fn main() {
    let events: u64 = std::env::var("COHORT_BENCH_EVENTS")
        .ok()
        .and_then(|v| v.replace('_', "").parse().ok())
        .unwrap_or(10_000_000);
    let mut presets: Vec<Preset> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with('-'))
        .filter_map(|a| Preset::parse(&a))
        .collect();
    if presets.is_empty() {
        presets.push(Preset::Events);
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    for preset in presets {
        let dir = tempfile::tempdir().expect("temp dir");
        let url = resolve_url(
            Path::new("/"),
            dir.path().to_str().expect("utf-8 temp path"),
        )
        .expect("url");
        let out = open(&url).expect("open temp dir");
        let opts = GenerateOptions {
            preset,
            events,
            ..GenerateOptions::default()
        };
        let report = rt
            .block_on(generate(&opts, &out, &|_| {}))
            .expect("generate");
        let secs = report.elapsed.as_secs_f64();
        println!(
            "generate preset={preset} events={} secs={secs:.2} events_per_sec={:.0} bytes={} files={} duplicates={} late={} bad_rows={}",
            report.events,
            report.events as f64 / secs,
            report.bytes,
            report.files,
            report.duplicates,
            report.late,
            report.bad_rows,
        );
    }
}
