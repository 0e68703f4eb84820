//! Stage 2 inside a run: compiles identity.yaml into the occurrence plan, hands the previous
//! run's graph to the identity stage when the run may be incremental, and says why not.

use std::path::Path;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use datafusion::logical_expr::{LogicalPlan, LogicalPlanBuilder};
use datafusion::prelude::SessionContext;

use super::events::EventsOut;
use super::identity_affected;
use crate::error::EngineResult;
use crate::identity::replay::Limit;
use crate::identity::{self, IdentityStats, TypeLimit};
use crate::plan::identity::{ResolvedRules, occurrences_from_raw, raw_identifiers};
use crate::plan::repairs;
use crate::run::bucketed;
use crate::run::ctx::RunCtx;
use crate::run::sink::{StageSink, materialize};
use crate::run::tables::{published, stage};
use crate::spec::Space;
use crate::store::{delta, manifest, objects};

/// What the identity stage hands on (besides the `id_*` tables and `event_profiles`).
pub struct IdentityOut {
    /// This run's merges: (merged-away profile, surviving profile).
    pub merges: Vec<(String, String)>,
    /// The oldest event time the run read (a windowed run), for the manifest.
    pub scope_from: Option<DateTime<Utc>>,
    /// The repairs the stage applied, for `identity_repairs`.
    pub repairs: Vec<repairs::Repair>,
}

/// Stage 2: resolves the identity graph over `events` (from the previous run's graph, which
/// the events stage read the manifest of, when it may: only where this run's events reach,
/// when it extended the previous history), and records the stats.
pub async fn run(ctx: &mut RunCtx<'_>, events: &EventsOut) -> EngineResult<IdentityOut> {
    let scope_from = ctx
        .opts
        .window_days
        .map(|d| ctx.as_of - chrono::Duration::days(i64::from(d)));
    let rules = ResolvedRules::from_spec(&ctx.space.identity);
    let fingerprint = rules.fingerprint();
    let reason = match &ctx.history_break {
        Some(why) => Err(why.clone()),
        None => incremental_reason(
            ctx.previous.as_ref(),
            &fingerprint,
            scope_from,
            ctx.opts.full_rebuild,
        ),
    };
    let session = &ctx.session;
    if let Some(m) = &ctx.previous {
        if let Some(v) = m.tables.get(published::IDENTITIES) {
            let prev = delta::provider(&ctx.out.child(published::IDENTITIES), *v).await?;
            let view = session
                .read_table(prev)?
                .select_columns(&["profile_id", "id_type", "id_value"])?
                .into_view();
            session.register_table(stage::PREV_IDENTITIES, view)?;
        }
        if reason.is_ok()
            && let Some(v) = m.tables.get(published::IDENTITY_GRAPH)
        {
            session.register_table(
                stage::PREV_GRAPH,
                delta::provider(&ctx.out.child(published::IDENTITY_GRAPH), *v).await?,
            )?;
        }
    }
    let scratch = ctx.scratch.clone();
    let prev_as_of = ctx
        .previous
        .as_ref()
        .and_then(|m| DateTime::parse_from_rfc3339(&m.as_of).ok())
        .map(|t| t.with_timezone(&Utc));
    if let (Ok(()), Some(extended), Some(m), Some(prev_as_of)) =
        (&reason, &events.extended, ctx.previous.as_ref(), prev_as_of)
        && !ctx.sink.recording()
        && identity_affected::possible(m)
    {
        let before = crate::run::repairs_table::previous(session, &ctx.out, m).await?;
        let repair_seeds = crate::run::repairs_table::changed_nodes(&before, &rules.repairs);
        let (stats, merges, changed) = identity_affected::resolve(
            session,
            &ctx.out,
            m,
            &rules,
            &type_limits(&rules),
            extended.rows.clone(),
            &repair_seeds,
            (prev_as_of, ctx.as_of),
            scratch.path(),
        )
        .await?;
        let event_profiles = session.table(stage::ID_EVENT_PROFILES).await?;
        ctx.sink
            .view(
                session,
                stage::EVENT_PROFILES,
                event_profiles.into_unoptimized_plan(),
            )
            .await?;
        ctx.rec.identity = Some(stats);
        ctx.changed = Some(changed);
        return Ok(IdentityOut {
            merges,
            scope_from,
            repairs: rules.repairs,
        });
    }
    let (mut stats, merges) = resolve_into(
        session,
        &mut ctx.sink,
        &rules,
        reason.is_ok(),
        (Some(scratch.path()), ctx.join_buckets),
    )
    .await?;
    stats.reason = reason.err();
    ctx.rec.identity = Some(stats);
    Ok(IdentityOut {
        merges,
        scope_from,
        repairs: rules.repairs,
    })
}

/// Whether this run can start from the previous graph: `Err(reason)` when it must rebuild.
pub fn incremental_reason(
    previous: Option<&manifest::Manifest>,
    rules_fingerprint: &str,
    scope_from: Option<DateTime<Utc>>,
    full_requested: bool,
) -> Result<(), String> {
    let Some(m) = previous else {
        return Err("no previous run".into());
    };
    if full_requested {
        return Err("a full rebuild was asked for".into());
    }
    if !m.tables.contains_key(published::IDENTITY_GRAPH)
        || !m.tables.contains_key(published::IDENTITIES)
    {
        return Err("the previous run published no identity graph".into());
    }
    if m.identity_rules.as_deref() != Some(rules_fingerprint) {
        return Err("the identity rules changed".into());
    }
    // Old events must still be in scope, or components could need to split.
    let prev_from = m
        .scope_from
        .as_deref()
        .and_then(|s| DateTime::parse_from_rfc3339(s).ok())
        .map(|t| t.with_timezone(&Utc));
    match (prev_from, scope_from) {
        (_, None) => Ok(()),
        (Some(p), Some(c)) if c <= p => Ok(()),
        _ => Err(
            "the window moved: events the previous graph was built from are out of scope".into(),
        ),
    }
}

/// The identity stage over the session's `events` view under `rules` (with `prev_graph` and
/// `prev_identities` when registered). Leaves the `id_*` tables and an `event_profiles` view.
pub async fn resolve_events(
    ctx: &SessionContext,
    rules: &ResolvedRules,
    incremental: bool,
    materialize_dir: Option<&Path>,
) -> EngineResult<(IdentityStats, Vec<(String, String)>)> {
    let sink = &mut StageSink::Materialize;
    resolve_into(ctx, sink, rules, incremental, (materialize_dir, 1)).await
}

/// [`resolve_events`], recording into `sink`. Without a folder to materialize into, the
/// identifiers are kept in memory; with one and more than one bucket, the occurrences are
/// written in that many buckets of events and the stage's per-event queries run one bucket at
/// a time (see [`identity::buckets`]).
async fn resolve_into(
    ctx: &SessionContext,
    sink: &mut StageSink,
    rules: &ResolvedRules,
    incremental: bool,
    (materialize_dir, buckets): (Option<&Path>, u32),
) -> EngineResult<(IdentityStats, Vec<(String, String)>)> {
    let started = std::time::Instant::now();
    let events = ctx.table(stage::EVENTS).await?.into_unoptimized_plan();
    // One pass over the events for every identifier path, then one cheap pass per path.
    let mut raw = raw_identifiers(events, rules)?;
    sink.table(stage::ID_RAW, &raw);
    if let Some(dir) = materialize_dir {
        let kept = materialize(ctx, raw.clone(), &dir.join(stage::ID_RAW)).await?;
        raw = if sink.recording() {
            // A script's occurrences read `id_raw` by name.
            ctx.register_table(
                stage::ID_RAW,
                ctx.execute_logical_plan(kept).await?.into_view(),
            )?;
            ctx.table(stage::ID_RAW).await?.into_unoptimized_plan()
        } else {
            kept
        };
    } else {
        raw = LogicalPlanBuilder::scan(
            stage::ID_RAW,
            datafusion::datasource::provider_as_source(
                crate::identity::components::materialize(ctx.execute_logical_plan(raw).await?)
                    .await?
                    .0,
            ),
            None,
        )?
        .build()?;
    }
    let mut occ = occurrences_from_raw(ctx, raw, rules)?.ok_or_else(|| {
        crate::error::EngineError::Definition("identity.yaml has no identifier types".into())
    })?;
    let raw_secs = started.elapsed().as_secs_f64();
    let occ_plan = occ.clone();
    let mut event_buckets = None;
    if let Some(dir) = materialize_dir {
        let to = dir.join(stage::ID_OCCURRENCES);
        if buckets > 1 && !sink.recording() {
            let (whole, parts) =
                bucketed::materialize_partitioned(ctx, occ, "message_id", buckets, &to).await?;
            occ = whole;
            event_buckets = Some(identity::buckets::EventBuckets {
                parts,
                dir: dir.join("id_buckets"),
            });
        } else {
            occ = materialize(ctx, occ, &to).await?;
        }
        if !sink.recording() {
            // Nothing reads the raw identifiers again (a script's occurrences do, by name).
            if let Err(e) = std::fs::remove_dir_all(dir.join(stage::ID_RAW)) {
                tracing::debug!("the raw identifiers stay in scratch until the run ends: {e}");
            }
        }
    }
    let occurrences_secs = started.elapsed().as_secs_f64() - raw_secs;
    let script_occ = match sink.recording() {
        true => repairs::repaired(ctx, occ_plan, &rules.repairs).await?,
        false => occ_plan,
    };
    sink.step(crate::script::steps::Step::Identity {
        occurrences: script_occ,
        types: rules.types.clone(),
    });
    ctx.register_table(
        stage::ID_OCC_READ,
        ctx.execute_logical_plan(occ).await?.into_view(),
    )?;
    if !rules.repairs.is_empty() {
        tracing::debug!(repairs = rules.repairs.len(), "identity: repairs");
    }
    let read = ctx.table(stage::ID_OCC_READ).await?.into_unoptimized_plan();
    let mut occ = repairs::repaired(ctx, read, &rules.repairs).await?;
    if let (false, Some(dir)) = (rules.repairs.is_empty(), materialize_dir) {
        // The resolver reads the occurrences several times: repaired once, not per query.
        occ = materialize(ctx, occ, &dir.join("id_occ_repaired")).await?;
    }
    let event_buckets = match event_buckets {
        Some(b) => {
            let whole = ctx.table(stage::ID_OCC_READ).await?.into_unoptimized_plan();
            let parts = repairs::repaired_parts(ctx, whole, b.parts, &rules.repairs).await?;
            Some(identity::buckets::EventBuckets { parts, dir: b.dir })
        }
        None => None,
    };
    ctx.register_table(
        stage::ID_OCCURRENCES,
        ctx.execute_logical_plan(occ).await?.into_view(),
    )?;
    let opts = identity::Options {
        incremental,
        seed: 0x00c0_4f27,
        event_buckets,
    };
    let (mut stats, merges) = identity::resolve(ctx, &type_limits(rules), &opts).await?;
    // Reading the identifiers out of the events comes before the resolver's own laps.
    stats.timings.insert("raw_identifiers".into(), raw_secs);
    stats.timings.insert("occurrences".into(), occurrences_secs);
    let event_profiles = ctx.table(stage::ID_EVENT_PROFILES).await?;
    sink.view(
        ctx,
        stage::EVENT_PROFILES,
        event_profiles.into_unoptimized_plan(),
    )
    .await?;
    Ok((stats, merges))
}

/// Each identifier type's limit, in priority order.
fn type_limits(rules: &ResolvedRules) -> Vec<TypeLimit> {
    rules
        .types
        .iter()
        .map(|t| TypeLimit {
            id_type: t.id_type.clone(),
            limit: Limit {
                max: t.limit,
                window: t.window_micros(),
            },
        })
        .collect()
}

/// The rules' fingerprint, as the manifest records it.
pub fn rules_fingerprint(space: &Space) -> String {
    ResolvedRules::from_spec(&space.identity).fingerprint()
}

/// `profile_merges` as published: the previous rows plus this run's.
pub async fn merges_plan(
    ctx: &SessionContext,
    out: &objects::Location,
    previous: Option<&manifest::Manifest>,
    merges: &[(String, String)],
    run_id: &str,
    as_of: DateTime<Utc>,
) -> EngineResult<LogicalPlan> {
    use datafusion::arrow::array::{RecordBatch, StringArray, TimestampMicrosecondArray};
    use datafusion::arrow::datatypes::{DataType, Field, Schema, TimeUnit};
    let schema = Arc::new(Schema::new(vec![
        Field::new("merged_profile_id", DataType::Utf8, false),
        Field::new("profile_id", DataType::Utf8, false),
        Field::new("run_id", DataType::Utf8, false),
        Field::new(
            "merged_at",
            DataType::Timestamp(TimeUnit::Microsecond, Some(Arc::from("UTC"))),
            false,
        ),
    ]));
    let n = merges.len();
    let batch = RecordBatch::try_new(
        schema.clone(),
        vec![
            Arc::new(StringArray::from_iter_values(
                merges.iter().map(|m| m.0.as_str()),
            )),
            Arc::new(StringArray::from_iter_values(
                merges.iter().map(|m| m.1.as_str()),
            )),
            Arc::new(StringArray::from_iter_values(std::iter::repeat_n(
                run_id, n,
            ))),
            Arc::new(
                TimestampMicrosecondArray::from(vec![as_of.timestamp_micros(); n])
                    .with_timezone("UTC"),
            ),
        ],
    )
    .map_err(datafusion::error::DataFusionError::from)?;
    let mut df = ctx.read_batch(batch)?;
    if let Some(v) = previous.and_then(|m| m.tables.get(published::PROFILE_MERGES)) {
        let prev =
            ctx.read_table(delta::provider(&out.child(published::PROFILE_MERGES), *v).await?)?;
        df = prev
            .select_columns(&["merged_profile_id", "profile_id", "run_id", "merged_at"])?
            .union(df)?;
    }
    Ok(df.into_unoptimized_plan())
}
