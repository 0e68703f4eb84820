//! `cohort init` and `cohort demo`: a starter space, sample data, and (for the demo) a run of
//! it with its summary.

use std::path::Path;

use anyhow::{Context, Result, bail};

use super::super::{output_file, progress, render};
use super::{invalid, validate};
use crate::generate::{self, GenerateOptions};
use crate::run::RunOptions;
use crate::spec;
use crate::store::objects;

pub(in crate::cli) async fn init(dir: &Path, no_data: bool, events: u64) -> Result<()> {
    if dir.join("space.yaml").exists() {
        return Err(invalid(format!(
            "{} already holds a space (space.yaml exists); pick an empty folder",
            dir.display()
        )));
    }
    write_starter(dir)?;
    println!("Created a space in {}", dir.display());
    if !no_data {
        let out = objects::open_raw(dir, "data/events")?;
        let opts = GenerateOptions {
            events,
            ..Default::default()
        };
        let bar = progress::Bar::new(events, "generating sample events");
        let report = generate::generate(&opts, &out, &|n| bar.set(n)).await?;
        bar.finish();
        println!(
            "Wrote {} sample events to {}/data/events (ending {}).",
            report.events,
            dir.display(),
            opts.end.format("%Y-%m-%d")
        );
    }
    println!("\nNext:");
    render::print_path_hint();
    println!("  cohort validate {}", dir.display());
    println!(
        "  cohort run {} --as-of {}",
        dir.display(),
        GenerateOptions::default().end.format("%Y-%m-%d")
    );
    Ok(())
}

fn write_starter(dir: &Path) -> Result<()> {
    for (rel, contents) in spec::init_files() {
        let p = dir.join(rel);
        if let Some(parent) = p.parent() {
            std::fs::create_dir_all(parent)
                .with_context(|| format!("creating {}", parent.display()))?;
        }
        output_file::write_file(&p, contents.as_bytes())?;
    }
    Ok(())
}

pub(in crate::cli) async fn demo(dir: &Path, events: u64, seed: u64) -> Result<()> {
    if !dir.join("space.yaml").exists() {
        write_starter(dir)?;
    }
    let data = dir.join("data").join("events");
    let opts = GenerateOptions {
        events,
        seed,
        ..Default::default()
    };
    if data.exists() {
        std::fs::remove_dir_all(&data).with_context(|| format!("clearing {}", data.display()))?;
    }
    let out = objects::open_raw(dir, "data/events")?;
    let bar = progress::Bar::new(events, "generating events");
    let g = generate::generate(&opts, &out, &|n| bar.set(n)).await?;
    bar.finish();
    println!(
        "Generated {} events of an online store ({} users) in {:.1}s into {}",
        g.events,
        g.users,
        g.elapsed.as_secs_f64(),
        data.display()
    );
    let space = validate(dir).await?;
    let run_opts = RunOptions {
        as_of: Some(opts.end),
        ..Default::default()
    };
    let report = super::run::run_space(&space, &run_opts).await?;
    render::print_summary(&report);
    let d = dir.display();
    println!("\nTry next:");
    render::print_path_hint();
    println!("  cohort validate {d}");
    println!("  cohort run {d} --as-of {}", opts.end.format("%Y-%m-%d"));
    println!("  cohort generate --preset segment --events 100000 --out {d}/data/segment");
    println!(
        "  python3 -c \"import deltalake; print(deltalake.DeltaTable('{}/runs').to_pandas())\"",
        report.output.trim_start_matches("file://")
    );
    println!("\nOpen the web app (sign in with the token `cohort serve` prints):");
    println!("  cohort serve {d}");
    println!("  then browse to http://127.0.0.1:8088/");
    if !std::path::Path::new(&report.output.replace("file://", "")).exists() {
        bail!("the demo published nothing");
    }
    Ok(())
}
