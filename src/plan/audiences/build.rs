//! The audiences plan: the wide users row (profiles, the fused aggregation, the funnels), the
//! accounts row, and each audience's membership column added in dependency order.
use std::collections::BTreeMap;

use datafusion::arrow::datatypes::DataType;
use datafusion::common::JoinType;
use datafusion::functions_aggregate::expr_fn as agg;
use datafusion::logical_expr::{Expr, LogicalPlan, LogicalPlanBuilder, col, lit};
use datafusion::prelude::coalesce;

use crate::analyze::audiences::audience_order;

use crate::plan::traits::{QueryCompileError, ts};
use crate::spec::EntityType;
use crate::spec::query::ast::{self, Span};

use super::conditions::present;
use super::events::events_filter;
use super::top_level_conditions;
use super::{
    AudienceInputs, AudiencePlans, AudienceQuery, CResult, Compiler, Level, audience_column,
    plan_err,
};

/// Compiles every audience into the users plan and (with account audiences) the accounts
/// plan. With `top_level`, each audience's top-level conditions become columns too (for
/// previews).
pub fn audiences_plan(
    inputs: &AudienceInputs,
    audiences: &[AudienceQuery<'_>],
    as_of_micros: i64,
    top_level: bool,
) -> CResult<AudiencePlans> {
    let list: Vec<(&str, &ast::Expr)> = audiences.iter().map(|a| (a.key, a.query)).collect();
    let order = audience_order(&list).map_err(|c| QueryCompileError {
        key: Some(audiences[c.audience].key.to_string()),
        span: c.span,
        message: c.message,
    })?;
    let mut c = Compiler::new(inputs, audiences, as_of_micros);
    let with_key = |key: &str| {
        let key = key.to_string();
        move |mut e: QueryCompileError| {
            if e.key.is_none() {
                e.key = Some(key.clone());
            }
            e
        }
    };
    // Each audience's condition over the wide row, in order.
    let mut users_cols: Vec<(String, Expr)> = Vec::new();
    let mut account_cols: Vec<(String, Expr)> = Vec::new();
    let mut tops: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut users_tops: Vec<(String, Expr)> = Vec::new();
    let mut account_tops: Vec<(String, Expr)> = Vec::new();
    for i in &order {
        let a = &audiences[*i];
        let level = match a.entity {
            EntityType::Users => Level::Users,
            EntityType::Accounts => Level::Accounts,
        };
        let mut e = c.cond(a.query, level).map_err(with_key(a.key))?;
        if !a.include_anonymous && a.entity == EntityType::Users {
            let Some(has) = has_user_id(&c.profile_types) else {
                return Err(QueryCompileError {
                    key: Some(a.key.to_string()),
                    span: Span::default(),
                    message: "`include_anonymous: false` keeps profiles with a user_id, and \
                              this space has no `user_id` identifier type"
                        .into(),
                });
            };
            e = e.and(coalesce(vec![has, lit(false)]));
        }
        if top_level {
            let mut names = Vec::new();
            for (n, t) in top_level_conditions(a.query).into_iter().enumerate() {
                let name = format!("__top_{}_{n}", a.key);
                let te = c.cond(t, level).map_err(with_key(a.key))?;
                match a.entity {
                    EntityType::Users => users_tops.push((name.clone(), te)),
                    EntityType::Accounts => account_tops.push((name.clone(), te)),
                }
                names.push(name);
            }
            tops.insert(a.key.to_string(), names);
        }
        match a.entity {
            EntityType::Users => users_cols.push((a.key.to_string(), e)),
            EntityType::Accounts => account_cols.push((a.key.to_string(), e)),
        }
    }

    // The wide users row: profiles, the fused aggregation, the funnels.
    let mut wide = inputs.profiles.clone();
    if !c.aggs.is_empty() {
        let mut pre = col("event").in_list(
            c.event_names.iter().map(|n| lit(n.as_str())).collect(),
            false,
        );
        pre = pre.and(col("timestamp").lt_eq(ts(as_of_micros)));
        if let Some(lower) = c.widest.filter(|w| *w != i64::MAX) {
            pre = pre.and(col("timestamp").gt(ts(lower)));
        }
        let events = LogicalPlanBuilder::from(inputs.events.clone())
            .filter(pre)
            .and_then(|b| b.build())
            .map_err(plan_err)?;
        let events = c.with_event_traits(events)?;
        let aggs: Vec<Expr> = c
            .aggs
            .iter()
            .map(|(a, e)| e.clone().alias(a.as_str()))
            .collect();
        // Each JSON column is parsed once per row for every path the conditions read.
        let (parsed, aggs) = crate::plan::traits::share_json_parsing(aggs).map_err(plan_err)?;
        let events = if parsed.is_empty() {
            events
        } else {
            let mut cols: Vec<Expr> = events
                .schema()
                .columns()
                .into_iter()
                .map(Expr::Column)
                .collect();
            cols.extend(parsed);
            LogicalPlanBuilder::from(events)
                .project(cols)
                .and_then(|b| b.build())
                .map_err(plan_err)?
        };
        let mut select = vec![col("profile_id").alias("__e_profile_id")];
        select.extend(c.aggs.iter().map(|(a, _)| col(a.as_str())));
        let fused = LogicalPlanBuilder::from(events)
            .aggregate(vec![col("profile_id")], aggs)
            .and_then(|b| b.project(select))
            .and_then(|b| b.build())
            .map_err(plan_err)?;
        wide = LogicalPlanBuilder::from(wide)
            .join(
                fused,
                JoinType::Left,
                (vec!["profile_id"], vec!["__e_profile_id"]),
                None,
            )
            .and_then(|b| b.build())
            .map_err(plan_err)?;
    }
    for (alias, plan) in &c.funnels {
        wide = LogicalPlanBuilder::from(wide)
            .join(
                plan.clone(),
                JoinType::Left,
                (
                    vec!["profile_id".to_string()],
                    vec![format!("{alias}_profile_id")],
                ),
                None,
            )
            .and_then(|b| b.build())
            .map_err(plan_err)?;
    }
    // Audiences one after the other, each reading those before it.
    let add = |plan: LogicalPlan, name: String, e: Expr| -> CResult<LogicalPlan> {
        let mut exprs: Vec<Expr> = plan
            .schema()
            .columns()
            .into_iter()
            .map(Expr::Column)
            .collect();
        exprs.push(e.alias(name));
        LogicalPlanBuilder::from(plan)
            .project(exprs)
            .and_then(|b| b.build())
            .map_err(plan_err)
    };
    for (key, e) in &users_cols {
        wide = add(wide, audience_column(key), e.clone())?;
    }
    for (name, e) in &users_tops {
        wide = add(wide, name.clone(), e.clone())?;
    }
    for (alias, e) in &c.quantified {
        wide = add(wide, alias.clone(), e.clone())?;
    }
    let mut users_out = vec![col("profile_id")];
    users_out.extend(
        users_cols
            .iter()
            .map(|(k, _)| col(audience_column(k)).alias(k.as_str())),
    );
    users_out.extend(users_tops.iter().map(|(n, _)| col(n.as_str())));

    let accounts = if account_cols.is_empty() {
        None
    } else {
        let mut acc = inputs.accounts.clone();
        if !c.quantified.is_empty() {
            let mut q_select = vec![col("profile_id").alias("__q_profile_id")];
            q_select.extend(c.quantified.iter().map(|(a, _)| col(a.as_str())));
            let users = LogicalPlanBuilder::from(wide.clone())
                .project(q_select)
                .and_then(|b| b.build())
                .map_err(plan_err)?;
            let mut aggs = Vec::new();
            for (a, _) in &c.quantified {
                aggs.push(agg::bool_or(col(a.as_str())).alias(format!("{a}_any")));
                aggs.push(agg::bool_and(col(a.as_str())).alias(format!("{a}_all")));
            }
            let links = LogicalPlanBuilder::from(inputs.links.clone())
                .project(vec![
                    col("account_id").alias("__q_account_id"),
                    col("profile_id").alias("__l_profile_id"),
                ])
                .and_then(|b| b.build())
                .map_err(plan_err)?;
            let per_account = LogicalPlanBuilder::from(links)
                .join(
                    users,
                    JoinType::Inner,
                    (vec!["__l_profile_id"], vec!["__q_profile_id"]),
                    None,
                )
                .and_then(|b| b.aggregate(vec![col("__q_account_id")], aggs))
                .and_then(|b| b.build())
                .map_err(plan_err)?;
            acc = LogicalPlanBuilder::from(acc)
                .join(
                    per_account,
                    JoinType::Left,
                    (vec!["account_id"], vec!["__q_account_id"]),
                    None,
                )
                .and_then(|b| b.build())
                .map_err(plan_err)?;
        }
        for (key, e) in &account_cols {
            acc = add(acc, audience_column(key), e.clone())?;
        }
        for (name, e) in &account_tops {
            acc = add(acc, name.clone(), e.clone())?;
        }
        let mut out = vec![col("account_id")];
        out.extend(
            account_cols
                .iter()
                .map(|(k, _)| col(audience_column(k)).alias(k.as_str())),
        );
        out.extend(account_tops.iter().map(|(n, _)| col(n.as_str())));
        Some(
            LogicalPlanBuilder::from(acc)
                .project(out)
                .and_then(|b| b.build())
                .map_err(plan_err)?,
        )
    };
    let users = LogicalPlanBuilder::from(wide)
        .project(users_out)
        .and_then(|b| b.build())
        .map_err(plan_err)?;
    Ok(AudiencePlans {
        users,
        accounts,
        order: order
            .iter()
            .map(|i| audiences[*i].key.to_string())
            .collect(),
        top_level: tops,
        warnings: std::mem::take(&mut c.warnings),
        events_filter: events_filter(&c.all_names, c.all_widest, as_of_micros),
    })
}

/// Whether a profile has a user id: its `user_id` column is set (and, as a list, not empty).
fn has_user_id(profiles: &BTreeMap<String, DataType>) -> Option<Expr> {
    match profiles.get("user_id")? {
        DataType::List(_) | DataType::LargeList(_) => Some(present(col("user_id"), true)),
        _ => Some(col("user_id").is_not_null()),
    }
}
