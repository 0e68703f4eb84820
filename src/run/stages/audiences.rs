//! Stages 5 and 6 of a run: audiences and changes. Compiles every audience of the space into
//! plans over this run's profiles, accounts and events, lists the members, keeps `entered_at`
//! of those who stay, and diffs against the previous published run into entered / exited
//! rows. Leaves `cohort_audience_membership` and `cohort_audience_changes` in the session for
//! the publish.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::Arc;

use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use datafusion::common::ScalarValue;
use datafusion::functions_aggregate::expr_fn as agg;
use datafusion::logical_expr::{
    EmptyRelation, Expr, ExprFunctionExt, LogicalPlan, LogicalPlanBuilder, col, lit,
};
use datafusion::prelude::SessionContext;

use super::identity::IdentityOut;
use super::memberships::{
    change_rows, changes, members, previous_changes, previous_membership, with_entered_at,
};
use super::profiles::ProfileStats;
use crate::error::{EngineError, EngineResult};
use crate::plan::audiences::{
    AudienceInputs, AudiencePlans, audiences_plan, error_diagnostic, space_queries,
};
use crate::plan::identity::ResolvedRules;
use crate::plan::kept::{touched_only, with_kept_members, with_members_of};
use crate::run::ctx::RunCtx;
use crate::run::sink::{StageSink, materialize};
use crate::run::tables::stage;
use crate::spec::query::ast;
use crate::spec::{Diagnostic, Space, query};

/// What the audience stage made, per audience, for the run record.
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct AudienceStats {
    /// key -> sizes and changes.
    pub audiences: BTreeMap<String, AudienceCounts>,
    /// Comparisons that did not fit a trait's type (from the data) and count as false.
    pub warnings: Vec<String>,
}

#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct AudienceCounts {
    pub entity: String,
    pub members: u64,
    pub entered: u64,
    pub exited: u64,
}

fn time_type() -> DataType {
    DataType::Timestamp(TimeUnit::Microsecond, Some(Arc::from("UTC")))
}

/// The schema of `audience_membership`.
pub fn membership_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("audience_key", DataType::Utf8, false),
        Field::new("entity_type", DataType::Utf8, false),
        Field::new("profile_id", DataType::Utf8, false),
        Field::new("entered_at", time_type(), false),
    ]))
}

pub(super) fn empty(schema: SchemaRef) -> EngineResult<LogicalPlan> {
    Ok(LogicalPlan::EmptyRelation(EmptyRelation {
        produce_one_row: false,
        schema: Arc::new(datafusion::common::DFSchema::try_from(schema)?),
    }))
}

/// Every audience of `space`, parsed (validate has reported parse errors already).
pub fn parsed_audiences(space: &Space) -> EngineResult<Vec<ast::Expr>> {
    space
        .audiences
        .iter()
        .map(|d| query::parsed_audience(d).map_err(|d| diagnostic_error(space, &d)))
        .collect()
}

fn diagnostic_error(space: &Space, d: &Diagnostic) -> EngineError {
    EngineError::Definition(d.render(&space.root))
}

/// The audience plans of `space` over `inputs`, with errors pointing into the audience files.
pub fn compile_audiences(
    space: &Space,
    parsed: &[ast::Expr],
    inputs: &AudienceInputs,
    as_of_micros: i64,
    top_level: bool,
) -> EngineResult<AudiencePlans> {
    let queries = space_queries(space, parsed);
    audiences_plan(inputs, &queries, as_of_micros, top_level)
        .map_err(|e| diagnostic_error(space, &error_diagnostic(space, &e)))
}

/// What audiences read in a run's session: `cohort_profiles`, `profile_events`,
/// `cohort_accounts` and `account_links`.
pub async fn session_inputs(
    ctx: &SessionContext,
    stats: Option<&ProfileStats>,
) -> EngineResult<AudienceInputs> {
    let plan = |df: datafusion::dataframe::DataFrame| df.into_unoptimized_plan();
    let mut data_typed = BTreeSet::new();
    if let Some(s) = stats {
        data_typed.extend(s.custom_traits.keys().cloned());
        data_typed.extend(s.account_traits.keys().cloned());
        data_typed.extend(s.sql_traits.keys().cloned());
    }
    Ok(AudienceInputs {
        profiles: plan(ctx.table(stage::PROFILES).await?),
        events: plan(ctx.table(stage::PROFILE_EVENTS).await?),
        accounts: plan(ctx.table(stage::ACCOUNTS).await?),
        links: plan(ctx.table(stage::ACCOUNT_LINKS).await?),
        data_typed,
        lenient: false,
    })
}

/// Compiles the audiences over the events they read, kept once: a first compile learns which
/// events any audience reads (names, window), those are written once (to `scratch`, else kept
/// in memory) with only the columns audiences use, and the second compile reads them from
/// there, so the fused aggregation and every funnel scan that subset instead of all events.
/// Also returns the kept events (None when no audience reads events). A recording `sink`
/// gets them as the table `audience_events`, which the audience plans then read by name.
pub async fn compile_over_kept_events(
    ctx: &SessionContext,
    sink: &mut StageSink,
    mut inputs: AudienceInputs,
    compile: impl Fn(&AudienceInputs) -> EngineResult<AudiencePlans>,
    scratch: Option<&Path>,
) -> EngineResult<(AudiencePlans, Option<LogicalPlan>)> {
    let first = compile(&inputs)?;
    let Some(filter) = first.events_filter.clone() else {
        return Ok((first, None));
    };
    let keep_cols: Vec<Expr> = inputs
        .events
        .schema()
        .columns()
        .into_iter()
        .filter(|c| {
            matches!(
                c.name.as_str(),
                "message_id" | "event" | "timestamp" | "profile_id" | "properties" | "context"
            )
        })
        .map(Expr::Column)
        .collect();
    let subset = LogicalPlanBuilder::from(inputs.events.clone())
        .filter(filter)?
        .project(keep_cols)?
        .build()?;
    let kept = match scratch {
        Some(dir) if sink.recording() => {
            sink.table(stage::AUDIENCE_EVENTS, &subset);
            let kept = materialize(ctx, subset, &dir.join(stage::AUDIENCE_EVENTS)).await?;
            let view = ctx.execute_logical_plan(kept).await?.into_view();
            ctx.register_table(stage::AUDIENCE_EVENTS, view)?;
            ctx.table(stage::AUDIENCE_EVENTS)
                .await?
                .into_unoptimized_plan()
        }
        Some(dir) => materialize(ctx, subset, &dir.join(stage::AUDIENCE_EVENTS)).await?,
        None => ctx
            .execute_logical_plan(subset)
            .await?
            .cache()
            .await?
            .into_unoptimized_plan(),
    };
    inputs.events = kept.clone();
    Ok((compile(&inputs)?, Some(kept)))
}

/// Warnings for event fields that conditions read and that no event of that name has in this
/// run (allowed: the data may arrive later), over the kept events of the audiences.
async fn missing_fields(
    ctx: &SessionContext,
    space: &Space,
    parsed: &[ast::Expr],
    events: &LogicalPlan,
) -> EngineResult<Vec<String>> {
    use crate::functions::json_get;
    let mut refs: Vec<(String, String, bool, String)> = Vec::new();
    for (d, q) in space.audiences.iter().zip(parsed) {
        let mut r = Vec::new();
        crate::analyze::audiences::field_refs(q, &mut r);
        for (name, path, context) in r {
            if !refs
                .iter()
                .any(|x| x.0 == name && x.1 == path && x.2 == context)
            {
                refs.push((name, path, context, d.key.clone()));
            }
        }
    }
    if refs.is_empty() {
        return Ok(Vec::new());
    }
    let aggs: Vec<Expr> = refs
        .iter()
        .enumerate()
        .map(|(i, (name, path, context, _))| {
            let column = if *context { "context" } else { "properties" };
            agg::count(lit(1))
                .filter(
                    col("event")
                        .eq(lit(name.as_str()))
                        .and(json_get(col(column), path).is_not_null()),
                )
                .build()
                .map(|e| e.alias(format!("f{i}")))
        })
        .collect::<Result<_, _>>()?;
    let plan = LogicalPlanBuilder::from(events.clone())
        .aggregate(Vec::<Expr>::new(), aggs)?
        .build()?;
    let batches = ctx.execute_logical_plan(plan).await?.collect().await?;
    let mut out = Vec::new();
    if let Some(b) = batches.first() {
        use datafusion::arrow::array::AsArray;
        for (i, (name, path, context, key)) in refs.iter().enumerate() {
            let n = b
                .column(i)
                .as_primitive::<datafusion::arrow::datatypes::Int64Type>();
            if n.value(0) == 0 {
                out.push(format!(
                    "audience `{key}` reads {}('{path}') of '{name}' events, and no such event has it in this run",
                    if *context { "context" } else { "property" }
                ));
            }
        }
    }
    Ok(out)
}

/// Runs stages 5 and 6 and registers `cohort_audience_membership` (every member now) and
/// `cohort_audience_changes` (the published history plus this run's entered / exited rows).
/// First refuses a key that belonged to a deleted audience.
pub async fn run(rc: &mut RunCtx<'_>, identity: &IdentityOut) -> EngineResult<AudienceStats> {
    let history = crate::run::runs_table::definitions_history(&rc.out, rc.previous.as_ref());
    check_deleted_keys(rc.space, &history.await?)?;
    let rules = &ResolvedRules::from_spec(&rc.space.identity);
    let scratch = rc.scratch.clone();
    let scratch = Some(scratch.path());
    let (ctx, sink, space) = (&rc.session, &mut rc.sink, rc.space);
    let (out, previous) = (&rc.out, rc.previous.as_ref());
    let (profile_stats, run_id) = (rc.rec.profiles.as_ref(), rc.rec.run_id.as_str());
    let merges = &identity.merges;
    let as_of = rc.as_of;
    let as_of_micros = as_of.timestamp_micros();
    let as_of_lit = lit(ScalarValue::TimestampMicrosecond(
        Some(as_of_micros),
        Some(Arc::from("UTC")),
    ));
    let mut stats = AudienceStats::default();
    let parsed = parsed_audiences(space)?;
    let mut inputs = session_inputs(ctx, profile_stats).await?;
    // Only the touched profiles are evaluated when the others keep their memberships.
    let touched = match rc.reuse {
        Some(_) => Some(ctx.table(stage::TOUCHED).await?.into_unoptimized_plan()),
        None => None,
    };
    let all_profiles = inputs.profiles.clone();
    if let Some(t) = &touched {
        inputs.profiles = touched_only(inputs.profiles, "profile_id", t.clone())?;
    }
    // Edited audiences (and those reading an edited trait or audience) are evaluated for
    // every profile, the others for the touched ones.
    let edited = rc
        .reuse
        .as_ref()
        .map(|r| r.edited.audiences.clone())
        .unwrap_or_default();
    // Kept audiences (a run asked for some definitions only) are not evaluated at all.
    let kept_keys = rc.kept.audiences.clone();
    let (rest, rest_parsed) = subset(space, &parsed, |k| {
        !edited.contains(k) && !kept_keys.contains(k)
    });
    let (users, accounts, warnings) = evaluate(
        ctx,
        sink,
        (&rest, &rest_parsed),
        inputs,
        as_of_micros,
        scratch,
        ("", touched.is_none()),
    )
    .await?;
    stats.warnings = warnings;
    let mut now = members(&rest, &users, accounts.as_ref())?;
    if !edited.is_empty() {
        // The edited ones, with every audience they read, over every profile and event.
        let needed = crate::run::edited::with_reads(space, &edited);
        let (whole, whole_parsed) = subset(space, &parsed, |k| needed.contains(k));
        let mut all_inputs = session_inputs(ctx, profile_stats).await?;
        all_inputs.events = ctx.table(stage::ALL_EVENTS).await?.into_unoptimized_plan();
        let dir = scratch.map(|d| d.join("edited"));
        let (users, accounts, warnings) = evaluate(
            ctx,
            sink,
            (&whole, &whole_parsed),
            all_inputs,
            as_of_micros,
            dir.as_deref(),
            ("edited_", true),
        )
        .await?;
        stats.warnings.extend(warnings);
        let (only, _) = subset(space, &parsed, |k| edited.contains(k));
        now = LogicalPlanBuilder::from(now)
            .union(members(&only, &users, accounts.as_ref())?)?
            .build()?;
    }
    let prev = previous_membership(ctx, space, out, previous, merges).await?;
    let now = match &touched {
        Some(t) => {
            // The edited audiences' members are all evaluated this run; the kept ones' are
            // all the previous ones.
            let mut kept = LogicalPlanBuilder::from(prev.clone());
            if !edited.is_empty() || !kept_keys.is_empty() {
                let keys = edited
                    .iter()
                    .chain(&kept_keys)
                    .map(|k| lit(k.as_str()))
                    .collect();
                kept = kept.filter(col("audience_key").in_list(keys, true))?;
            }
            let kept = kept.build()?;
            let now = with_kept_members(now, kept, t.clone(), all_profiles.clone())?;
            match kept_keys.is_empty() {
                true => now,
                false => {
                    let keys = kept_keys.iter().map(|k| lit(k.as_str())).collect();
                    let kept = LogicalPlanBuilder::from(prev.clone())
                        .filter(col("audience_key").in_list(keys, false))?
                        .build()?;
                    with_members_of(now, kept, all_profiles)?
                }
            }
        }
        None => now,
    };
    let membership = LogicalPlanBuilder::from(with_entered_at(
        now.clone(),
        prev.clone(),
        as_of_lit.clone(),
    )?)
    .sort(vec![
        col("audience_key").sort(true, false),
        col("profile_id").sort(true, false),
    ])?
    .build()?;
    sink.keep(ctx, membership, stage::AUDIENCE_MEMBERSHIP, scratch)
        .await?;

    // This run's changes: members now who were not before, and the other way round.
    let changed = changes(now, prev, touched.map(|t| (t, &edited)))?;
    let profiles = ctx.table(stage::PROFILES).await?.into_unoptimized_plan();
    let this_run = change_rows(changed, profiles, rules, run_id, as_of_lit.clone())?;
    sink.keep(ctx, this_run, stage::AUDIENCE_CHANGES_RUN, scratch)
        .await?;

    // Sizes and changes per audience.
    for d in &space.audiences {
        stats.audiences.insert(
            d.key.clone(),
            AudienceCounts {
                entity: d.entity.as_str().to_string(),
                ..Default::default()
            },
        );
    }
    let counts = ctx
        .sql(&format!(
            "SELECT audience_key, 'members' AS what, count(*) AS n FROM {} GROUP BY audience_key \
             UNION ALL SELECT audience_key, change, count(*) FROM {} GROUP BY audience_key, change",
            stage::AUDIENCE_MEMBERSHIP,
            stage::AUDIENCE_CHANGES_RUN
        ))
        .await?
        .collect()
        .await?;
    for b in &counts {
        use datafusion::arrow::array::AsArray;
        let k = datafusion::arrow::compute::cast(b.column(0), &DataType::Utf8)
            .map_err(datafusion::error::DataFusionError::from)?;
        let w = datafusion::arrow::compute::cast(b.column(1), &DataType::Utf8)
            .map_err(datafusion::error::DataFusionError::from)?;
        let n = b
            .column(2)
            .as_primitive::<datafusion::arrow::datatypes::Int64Type>();
        for i in 0..b.num_rows() {
            let Some(c) = stats.audiences.get_mut(k.as_string::<i32>().value(i)) else {
                continue;
            };
            let n = n.value(i) as u64;
            match w.as_string::<i32>().value(i) {
                "members" => c.members = n,
                "entered" => c.entered = n,
                _ => c.exited = n,
            }
        }
    }
    let run_rows = ctx
        .table(stage::AUDIENCE_CHANGES_RUN)
        .await?
        .into_unoptimized_plan();
    let all = match previous_changes(ctx, out, previous).await? {
        Some(p) => LogicalPlanBuilder::from(p).union(run_rows)?.build()?,
        None => run_rows,
    };
    sink.view(ctx, stage::AUDIENCE_CHANGES, all).await?;
    Ok(stats)
}

/// `space` with only the audiences whose key passes `keep`, and their parsed queries.
fn subset(
    space: &Space,
    parsed: &[ast::Expr],
    keep: impl Fn(&str) -> bool,
) -> (Space, Vec<ast::Expr>) {
    let mut sub = space.clone();
    let mut queries = Vec::new();
    sub.audiences = space
        .audiences
        .iter()
        .zip(parsed)
        .filter(|(d, _)| keep(&d.key))
        .map(|(d, q)| {
            queries.push(q.clone());
            d.clone()
        })
        .collect();
    (sub, queries)
}

/// Evaluates the audiences of `space` over `inputs`: the users plan (one boolean column per
/// audience), the accounts plan (with account audiences) and the warnings. `prefix` keeps its
/// session tables apart from another evaluation's in the same run; without `all_events` the
/// inputs hold only the touched profiles' events, and a field none of them has is looked for
/// in every event before it is reported.
async fn evaluate(
    ctx: &SessionContext,
    sink: &mut StageSink,
    (space, parsed): (&Space, &[ast::Expr]),
    inputs: AudienceInputs,
    as_of_micros: i64,
    scratch: Option<&Path>,
    (prefix, all_events): (&str, bool),
) -> EngineResult<(LogicalPlan, Option<LogicalPlan>, Vec<String>)> {
    if space.audiences.is_empty() {
        return Ok((inputs.profiles, None, Vec::new()));
    }
    let (plans, kept) = compile_over_kept_events(
        ctx,
        sink,
        inputs,
        |i| compile_audiences(space, parsed, i, as_of_micros, false),
        scratch,
    )
    .await?;
    let mut warnings = plans.warnings.clone();
    if let Some(events) = &kept {
        let mut missing = missing_fields(ctx, space, parsed, events).await?;
        if !all_events && !missing.is_empty() {
            // The kept events are only the touched profiles': ask every event before warning.
            let warned = |k: &str| {
                let head = format!("audience `{k}` ");
                missing.iter().any(|w| w.starts_with(&head))
            };
            let (sub, sub_parsed) = subset(space, parsed, warned);
            let every = ctx.table(stage::ALL_EVENTS).await?.into_unoptimized_plan();
            missing = missing_fields(ctx, &sub, &sub_parsed, &every).await?;
        }
        warnings.extend(missing);
    }
    for w in &warnings {
        tracing::warn!("{w}");
    }
    let users_name = format!("{prefix}{}", stage::AUDIENCE_USERS);
    sink.keep(ctx, plans.users, &users_name, scratch).await?;
    let users = ctx
        .table(users_name.as_str())
        .await?
        .into_unoptimized_plan();
    let accounts = match plans.accounts {
        Some(a) => {
            let name = format!("{prefix}{}", stage::AUDIENCE_ACCOUNTS);
            sink.keep(ctx, a, &name, scratch).await?;
            Some(ctx.table(name.as_str()).await?.into_unoptimized_plan())
        }
        None => None,
    };
    Ok((users, accounts, warnings))
}

/// Audience keys are unique for the life of a space: a key that an earlier run had and a
/// later run no longer had (the audience was deleted) cannot come back.
pub fn check_deleted_keys(space: &Space, history: &[BTreeMap<String, String>]) -> EngineResult<()> {
    let deleted = deleted_keys(history);
    for d in &space.audiences {
        if deleted.contains(&d.key) {
            let loc = crate::spec::Loc::file_start(d.file.clone());
            return Err(diagnostic_error(
                space,
                &Diagnostic::error(
                    Some(loc),
                    format!(
                        "audience key `{}` belonged to an audience that was deleted; keys are \
                         unique for the life of a space (destinations and changes refer to them)",
                        d.key
                    ),
                )
                .with_help("choose a new key: rename the file"),
            ));
        }
    }
    Ok(())
}

/// The audience keys the space published at `out` has retired (see [`deleted_keys`]).
pub async fn retired_keys(out: &crate::store::objects::Location) -> EngineResult<BTreeSet<String>> {
    let previous = crate::store::manifest::read(out).await?;
    let history = crate::run::runs_table::definitions_history(out, previous.as_ref()).await?;
    Ok(deleted_keys(&history))
}

/// The audience keys of a space's published history (`definitions` of each run, oldest
/// first) that a later run no longer had: deleted, never to come back.
pub fn deleted_keys(history: &[BTreeMap<String, String>]) -> BTreeSet<String> {
    let key_of = |f: &str| {
        f.strip_prefix("audiences/")
            .and_then(|f| f.strip_suffix(".yaml"))
            .map(str::to_string)
    };
    let mut seen: BTreeSet<String> = BTreeSet::new();
    let mut deleted: BTreeSet<String> = BTreeSet::new();
    for defs in history {
        let now: BTreeSet<String> = defs.keys().filter_map(|f| key_of(f)).collect();
        for k in &seen {
            if !now.contains(k) {
                deleted.insert(k.clone());
            }
        }
        seen.extend(now);
    }
    deleted
}
