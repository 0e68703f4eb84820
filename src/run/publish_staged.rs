//! Publishing tables another engine computed (`cohort run --on spark`): the staged Parquet
//! folders of the published tables become this run's Delta versions, then `runs` and the
//! manifest, as a local run publishes them (see [`super::publish`]).
//!
//! The engine ran the space as a first run (every member `entered` as of this run). Against a
//! previous run, the membership and its changes are rebased here: a member keeps the
//! `entered_at` the previous run published, and this run's changes are the members who
//! entered or exited since then, appended to the previous changes. The run keeps no event
//! history and no identity state of its own, so the next local run reads every source again.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use chrono::Utc;
use datafusion::arrow::datatypes::DataType;
use datafusion::common::ScalarValue;
use datafusion::logical_expr::{Expr, LogicalPlan, LogicalPlanBuilder, cast, col, lit};
use datafusion::prelude::{DataFrame, ParquetReadOptions, SessionContext};

use super::record::{RunRecord, RunStatus};
use super::runs_table::write_runs;
use super::stages::memberships::{change_rows, changes, previous_membership, with_entered_at};
use super::tables::{PUBLISHED_TABLES, published};
use crate::error::EngineResult;
use crate::plan::identity::ResolvedRules;
use crate::spec::Space;
use crate::store::{delta, manifest, objects};

/// The published tables the engine computes: every one but the run's own `runs`, and
/// `profile_merges`, which a first run does not make.
pub fn staged_tables() -> Vec<&'static str> {
    PUBLISHED_TABLES
        .into_iter()
        .filter(|t| !matches!(*t, published::RUNS | published::PROFILE_MERGES))
        .collect()
}

/// The staged table `name` under `staged`, with Spark's 32-bit integers widened to Cohort's
/// 64-bit ones.
async fn read_staged(ctx: &SessionContext, staged: &Path, name: &str) -> EngineResult<LogicalPlan> {
    let dir = staged.join(name);
    let df = ctx
        .read_parquet(format!("{}/", dir.display()), ParquetReadOptions::default())
        .await?;
    let columns: Vec<Expr> = df
        .schema()
        .fields()
        .iter()
        .map(|f| match f.data_type() {
            DataType::Int8 | DataType::Int16 | DataType::Int32 => {
                cast(col(f.name()), DataType::Int64).alias(f.name())
            }
            _ => col(f.name()),
        })
        .collect();
    Ok(df.select(columns)?.into_unoptimized_plan())
}

/// Publishes the tables staged under `staged` as the run `rec`, then `runs` and the manifest.
pub(super) async fn publish(
    space: &Space,
    out: &objects::Location,
    staged: &Path,
    rec: &mut RunRecord,
) -> EngineResult<manifest::Manifest> {
    let t = Instant::now();
    let previous = manifest::read(out).await?;
    let ctx = super::session::new_session(&Default::default())?;
    let as_of = lit(ScalarValue::TimestampMicrosecond(
        Some(rec.as_of.timestamp_micros()),
        Some(Arc::from("UTC")),
    ));
    let mut versions = BTreeMap::new();
    let rebase = previous
        .as_ref()
        .is_some_and(|m| m.tables.contains_key(published::AUDIENCE_MEMBERSHIP));
    // The previous run's members (read once), against which Spark's first-run membership is
    // rebased.
    let before = match rebase {
        true => Some(previous_membership(&ctx, space, out, previous.as_ref(), &[]).await?),
        false => None,
    };
    for table in staged_tables() {
        let mut plan = read_staged(&ctx, staged, table).await?;
        let loc = out.child(table);
        let v = match table {
            published::AUDIENCE_MEMBERSHIP if let Some(before) = &before => {
                plan = with_entered_at(plan, before.clone(), as_of.clone())?;
                delta::overwrite_from_plan(&loc, plan, &ctx.state()).await?
            }
            published::AUDIENCE_CHANGES if let Some(before) = &before => {
                let now = read_staged(&ctx, staged, published::AUDIENCE_MEMBERSHIP).await?;
                let profiles = read_staged(&ctx, staged, published::PROFILES).await?;
                let rules = ResolvedRules::from_spec(&space.identity);
                let changed = changes(now, before.clone(), None)?;
                let rows = change_rows(changed, profiles, &rules, &rec.run_id, as_of.clone())?;
                let at = previous
                    .as_ref()
                    .and_then(|m| m.tables.get(published::AUDIENCE_CHANGES));
                match at {
                    Some(at) => {
                        match delta::append_at(&loc, rows.clone(), &ctx.state(), *at).await? {
                            Some(v) => v,
                            None => {
                                let before = super::stages::memberships::previous_changes(
                                    &ctx,
                                    out,
                                    previous.as_ref(),
                                )
                                .await?;
                                let all = match before {
                                    Some(b) => LogicalPlanBuilder::from(b).union(rows)?.build()?,
                                    None => rows,
                                };
                                delta::overwrite_from_plan(&loc, all, &ctx.state()).await?
                            }
                        }
                    }
                    None => delta::overwrite_from_plan(&loc, rows, &ctx.state()).await?,
                }
            }
            _ => {
                plan = with_run_id(plan, &rec.run_id)?;
                delta::overwrite_from_plan(&loc, plan, &ctx.state()).await?
            }
        };
        versions.insert(table.to_string(), v);
    }
    let merges = super::stages::identity::merges_plan(
        &ctx,
        out,
        previous.as_ref(),
        &[],
        &rec.run_id,
        rec.as_of,
    )
    .await?;
    let loc = out.child(published::PROFILE_MERGES);
    let v = delta::overwrite_from_plan(&loc, merges, &ctx.state()).await?;
    versions.insert(published::PROFILE_MERGES.to_string(), v);
    // What each repair did, from the identities the engine resolved with them.
    let run = super::repairs_table::RunIdentities {
        identities: DataFrame::new(
            ctx.state(),
            read_staged(&ctx, staged, published::IDENTITIES).await?,
        ),
        violations: DataFrame::new(
            ctx.state(),
            read_staged(&ctx, staged, published::IDENTITY_VIOLATIONS).await?,
        ),
    };
    let repairs = ResolvedRules::from_spec(&space.identity).repairs;
    let written =
        super::repairs_table::write(run, out, previous.as_ref(), &repairs, &rec.run_id).await?;
    if let Some(v) = written {
        versions.insert(published::IDENTITY_REPAIRS.to_string(), v);
    }

    rec.status = RunStatus::Succeeded;
    rec.finished_at = Utc::now();
    rec.stage_timings
        .push(("publish".into(), t.elapsed().as_millis() as u64));
    let v = write_runs(out, previous.as_ref(), &[], rec).await?;
    versions.insert(published::RUNS.to_string(), v);
    let m = manifest::Manifest {
        format: manifest::MANIFEST_FORMAT,
        space: space.name.clone(),
        run_id: rec.run_id.clone(),
        as_of: rec.as_of.to_rfc3339(),
        published_at: Utc::now().to_rfc3339(),
        tables: versions,
        // No identity state, event history or definition fingerprints: the next local run
        // starts from the sources.
        identity_rules: None,
        scope_from: None,
        sources: None,
        definitions: None,
        custom_trait_kinds: None,
        kept: None,
        sql_traits: None,
        first_seen: Some(super::backfill::first_seen(space)),
    };
    manifest::write(out, &m).await?;
    Ok(m)
}

/// The script names its run `script`; the published rows carry this run's id.
fn with_run_id(plan: LogicalPlan, run_id: &str) -> EngineResult<LogicalPlan> {
    if plan.schema().field_with_unqualified_name("run_id").is_err() {
        return Ok(plan);
    }
    let columns: Vec<Expr> = plan
        .schema()
        .fields()
        .iter()
        .map(|f| match f.name().as_str() {
            "run_id" => lit(run_id).alias("run_id"),
            n => col(n),
        })
        .collect();
    Ok(LogicalPlanBuilder::from(plan).project(columns)?.build()?)
}
