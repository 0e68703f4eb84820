//! The membership rows of the audience stage: this run's members of each evaluated audience,
//! the previous run's (with merged-away profiles replaced by their survivors), which the stage
//! keeps for untouched profiles, and the two diffed into entered / exited rows.

use std::collections::BTreeSet;
use std::sync::Arc;

use datafusion::arrow::array::{RecordBatch, StringArray};
use datafusion::arrow::datatypes::{DataType, Field, Schema};
use datafusion::common::JoinType;
use datafusion::functions_aggregate::expr_fn as agg;
use datafusion::logical_expr::{Expr, LogicalPlan, LogicalPlanBuilder, col, lit};
use datafusion::prelude::{SessionContext, coalesce};

use super::audiences::{empty, membership_schema};
use crate::error::EngineResult;
use crate::functions::json_object;
use crate::plan::identity::ResolvedRules;
use crate::plan::kept::touched_only;
use crate::plan::profiles::column_name;
use crate::run::tables::published;
use crate::spec::{EntityType, Space};
use crate::store::{delta, manifest, objects};

/// This run's changes `(audience_key, entity_type, profile_id, change)`: the members `now`
/// who were not members `before` (`entered`), and the other way round (`exited`). With
/// `touched` (the touched profiles, and the audiences evaluated for every profile, in a run
/// where every other profile kept its memberships), only the rows that can differ are
/// compared: an untouched profile's rows `now` are its rows `before`.
pub(crate) fn changes(
    now: LogicalPlan,
    before: LogicalPlan,
    touched: Option<(LogicalPlan, &BTreeSet<String>)>,
) -> EngineResult<LogicalPlan> {
    let (now, before) = match touched {
        Some((t, whole)) => (
            may_differ(now, t.clone(), whole)?,
            may_differ(before, t, whole)?,
        ),
        None => (now, before),
    };
    let keys = || {
        (
            vec!["audience_key", "entity_type", "profile_id"],
            vec!["p_audience_key", "p_entity_type", "p_profile_id"],
        )
    };
    let side = |plan: &LogicalPlan| {
        LogicalPlanBuilder::from(plan.clone())
            .project(vec![
                col("audience_key").alias("p_audience_key"),
                col("entity_type").alias("p_entity_type"),
                col("profile_id").alias("p_profile_id"),
            ])?
            .build()
    };
    let only = |a: &LogicalPlan, b: &LogicalPlan, change: &str| {
        LogicalPlanBuilder::from(a.clone())
            .join(side(b)?, JoinType::LeftAnti, keys(), None)?
            .project(vec![
                col("audience_key"),
                col("entity_type"),
                col("profile_id"),
                lit(change).alias("change"),
            ])?
            .build()
    };
    let entered = only(&now, &before, "entered")?;
    let exited = only(&before, &now, "exited")?;
    Ok(LogicalPlanBuilder::from(entered).union(exited)?.build()?)
}

/// The members `now` with their `entered_at`: the one `before` gave them where they were
/// members already, else `entered` (this run's as-of).
pub(crate) fn with_entered_at(
    now: LogicalPlan,
    before: LogicalPlan,
    entered: Expr,
) -> EngineResult<LogicalPlan> {
    let before = LogicalPlanBuilder::from(before)
        .project(vec![
            col("audience_key").alias("p_audience_key"),
            col("entity_type").alias("p_entity_type"),
            col("profile_id").alias("p_profile_id"),
            col("entered_at").alias("p_entered_at"),
        ])?
        .build()?;
    Ok(LogicalPlanBuilder::from(now)
        .join(
            before,
            JoinType::Left,
            (
                vec!["audience_key", "entity_type", "profile_id"],
                vec!["p_audience_key", "p_entity_type", "p_profile_id"],
            ),
            None,
        )?
        .project(vec![
            col("audience_key"),
            col("entity_type"),
            col("profile_id"),
            coalesce(vec![col("p_entered_at"), entered]).alias("entered_at"),
        ])?
        .build()?)
}

/// The published rows of this run's `changed` rows (see [`changes`]): the run, its as-of, and
/// each profile's identifiers at this run as a JSON object of lists (from `profiles`, which has
/// a column per identifier type of `rules`); an account's are its `group_id`.
pub(crate) fn change_rows(
    changed: LogicalPlan,
    profiles: LogicalPlan,
    rules: &ResolvedRules,
    run_id: &str,
    as_of: Expr,
) -> EngineResult<LogicalPlan> {
    let id_pairs: Vec<(String, Expr)> = rules
        .types
        .iter()
        .map(|t| (t.id_type.clone(), col(column_name(&t.id_type))))
        .collect();
    let ids = LogicalPlanBuilder::from(profiles)
        .project(vec![
            col("profile_id").alias("i_profile_id"),
            json_object(id_pairs).alias("user_identifiers"),
        ])?
        .build()?;
    Ok(LogicalPlanBuilder::from(changed)
        .join(
            ids,
            JoinType::Left,
            (vec!["profile_id"], vec!["i_profile_id"]),
            None,
        )?
        .project(vec![
            lit(run_id).alias("run_id"),
            as_of.alias("as_of"),
            col("audience_key"),
            col("entity_type"),
            col("profile_id"),
            col("change"),
            datafusion::logical_expr::when(
                col("entity_type").eq(lit("accounts")),
                json_object(vec![("group_id".into(), col("profile_id"))]),
            )
            .otherwise(col("user_identifiers"))?
            .alias("identifiers"),
        ])?
        .sort(vec![
            col("audience_key").sort(true, false),
            col("change").sort(true, false),
            col("profile_id").sort(true, false),
        ])?
        .build()?)
}

/// The membership rows of `plan` that can differ between a run that kept the untouched
/// profiles' memberships and the previous run: the touched profiles', the accounts' (account
/// audiences are evaluated whole) and those of the audiences in `whole`.
fn may_differ(
    plan: LogicalPlan,
    touched: LogicalPlan,
    whole: &BTreeSet<String>,
) -> EngineResult<LogicalPlan> {
    let users = col("entity_type").eq(lit(EntityType::Users.as_str()));
    let accounts = col("entity_type").not_eq(lit(EntityType::Users.as_str()));
    let keys: Vec<Expr> = whole.iter().map(|k| lit(k.as_str())).collect();
    let (others, mine) = match keys.is_empty() {
        true => (accounts, users),
        false => {
            let of_whole = col("audience_key").in_list(keys.clone(), false);
            let not_whole = col("audience_key").in_list(keys, true);
            (accounts.or(of_whole), users.and(not_whole))
        }
    };
    let others = LogicalPlanBuilder::from(plan.clone())
        .filter(others)?
        .build()?;
    let mine = LogicalPlanBuilder::from(plan).filter(mine)?.build()?;
    let mine = touched_only(mine, "profile_id", touched)?;
    Ok(LogicalPlanBuilder::from(mine).union(others)?.build()?)
}

/// One row per (audience, member) of the evaluated plans: `audience_key, entity_type,
/// profile_id`.
pub(super) fn members(
    space: &Space,
    users: &LogicalPlan,
    accounts: Option<&LogicalPlan>,
) -> EngineResult<LogicalPlan> {
    let mut parts = Vec::new();
    for d in &space.audiences {
        let (plan, id) = match d.entity {
            EntityType::Users => (users, "profile_id"),
            EntityType::Accounts => match accounts {
                Some(a) => (a, "account_id"),
                None => continue,
            },
        };
        parts.push(
            LogicalPlanBuilder::from(plan.clone())
                .filter(col(d.key.as_str()))?
                .project(vec![
                    lit(d.key.as_str()).alias("audience_key"),
                    lit(d.entity.as_str()).alias("entity_type"),
                    col(id).alias("profile_id"),
                ])?
                .build()?,
        );
    }
    let mut it = parts.into_iter();
    let Some(first) = it.next() else {
        let s = membership_schema();
        return empty(Arc::new(Schema::new(s.fields()[..3].to_vec())));
    };
    let mut b = LogicalPlanBuilder::from(first);
    for p in it {
        b = b.union(p)?;
    }
    Ok(b.build()?)
}

/// The previous run's membership of today's audiences, with merged-away profiles replaced by
/// the profiles they merged into.
pub(crate) async fn previous_membership(
    ctx: &SessionContext,
    space: &Space,
    out: &objects::Location,
    previous: Option<&manifest::Manifest>,
    merges: &[(String, String)],
) -> EngineResult<LogicalPlan> {
    let Some(v) = previous.and_then(|m| m.tables.get(published::AUDIENCE_MEMBERSHIP)) else {
        return empty(membership_schema());
    };
    let provider = delta::provider(&out.child(published::AUDIENCE_MEMBERSHIP), *v).await?;
    let mut prev = ctx.read_table(provider)?;
    let keys: Vec<Expr> = space
        .audiences
        .iter()
        .map(|d| lit(format!("{}/{}", d.entity.as_str(), d.key)))
        .collect();
    if keys.is_empty() {
        return empty(membership_schema());
    }
    prev = prev.filter(
        datafusion::functions::string::expr_fn::concat(vec![
            col("entity_type"),
            lit("/"),
            col("audience_key"),
        ])
        .in_list(keys, false),
    )?;
    if !merges.is_empty() {
        let batch = RecordBatch::try_new(
            Arc::new(Schema::new(vec![
                Field::new("merged_from", DataType::Utf8, false),
                Field::new("merged_into", DataType::Utf8, false),
            ])),
            vec![
                Arc::new(StringArray::from_iter_values(
                    merges.iter().map(|m| m.0.as_str()),
                )),
                Arc::new(StringArray::from_iter_values(
                    merges.iter().map(|m| m.1.as_str()),
                )),
            ],
        )
        .map_err(datafusion::error::DataFusionError::from)?;
        prev = prev
            .join(
                ctx.read_batch(batch)?,
                JoinType::Left,
                &["profile_id"],
                &["merged_from"],
                None,
            )?
            .select(vec![
                col("audience_key"),
                col("entity_type"),
                datafusion::logical_expr::when(
                    col("entity_type").eq(lit("users")),
                    coalesce(vec![col("merged_into"), col("profile_id")]),
                )
                .otherwise(col("profile_id"))?
                .alias("profile_id"),
                col("entered_at"),
            ])?
            .aggregate(
                vec![col("audience_key"), col("entity_type"), col("profile_id")],
                vec![agg::min(col("entered_at")).alias("entered_at")],
            )?;
    }
    Ok(prev.into_unoptimized_plan())
}

/// The published changes so far (the previous run's `audience_changes`), or nothing.
pub(crate) async fn previous_changes(
    ctx: &SessionContext,
    out: &objects::Location,
    previous: Option<&manifest::Manifest>,
) -> EngineResult<Option<LogicalPlan>> {
    let Some(v) = previous.and_then(|m| m.tables.get(published::AUDIENCE_CHANGES)) else {
        return Ok(None);
    };
    let provider = delta::provider(&out.child(published::AUDIENCE_CHANGES), *v).await?;
    Ok(Some(ctx.read_table(provider)?.into_unoptimized_plan()))
}
