//! Stage 4b of a run: accounts. Keeps the group calls (read from the events once), links
//! every profile to the accounts its events name in `group_id`, finds the custom traits of
//! group calls, and runs the computed traits of accounts over the events of every profile of
//! each account. Accounts are evaluated whole every run; the `cohort_accounts` table is left
//! in the session for audiences and publishing.

use std::collections::BTreeSet;

use datafusion::common::JoinType;
use datafusion::logical_expr::{LogicalPlanBuilder, col, lit};

use super::profiles::{ProfileStats, discover_traits, traits_table, type_names};
use crate::error::EngineResult;
use crate::plan::profiles::{TraitTable, custom_traits_plan, join_traits};
use crate::plan::traits::empty_value;
use crate::run::ctx::RunCtx;
use crate::run::tables::{EVENT_COLUMNS, stage};
use crate::spec::EntityType;

const ACCOUNT_LINKS: &str = include_str!("../../../queries/profiles/account_links.sql");
const ACCOUNT_BASE: &str = include_str!("../../../queries/profiles/account_base.sql");

/// Columns of `accounts` that are not traits.
const ACCOUNT_COLUMNS: [&str; 4] = ["account_id", "first_seen", "last_seen", "users"];

/// Registers `account_calls`, `account_links` and `cohort_accounts`; after the profiles (it
/// reads `profile_events`, or every event when the run kept the untouched profiles' values).
pub async fn run(rc: &mut RunCtx<'_>, stats: &mut ProfileStats) -> EngineResult<()> {
    let as_of_micros = rc.as_of.timestamp_micros();
    let scratch = rc.scratch.clone();
    let scratch = Some(scratch.path());
    let (ctx, sink, space) = (&rc.session, &mut rc.sink, rc.space);
    let reuse = rc.reuse.as_ref();
    // The last run's published `account_links` may be registered (for SQL traits): this run's
    // own links replace it.
    ctx.deregister_table(stage::ACCOUNT_LINKS)?;
    // The group calls, read from the events once and kept: the account base, the custom
    // traits of accounts and (when `profile_events` holds the touched profiles' events only)
    // the links read them.
    let calls = ctx
        .table(stage::EVENTS)
        .await?
        .filter(col("type").eq(lit("group")))?
        .select(vec![
            col("group_id").alias("account_id"),
            col("type"),
            col("timestamp"),
            col("message_id"),
            col("traits"),
        ])?;
    let calls = calls.into_unoptimized_plan();
    sink.keep(ctx, calls, stage::ACCOUNT_CALLS, scratch).await?;
    // Links from every group call: `profile_events` may hold the touched profiles' only, and
    // then the few group calls are joined with their profiles (the calls are the build side).
    let events = match reuse {
        Some(_) => {
            let calls = ctx.table(stage::ACCOUNT_CALLS).await?.select(vec![
                col("message_id"),
                col("type"),
                col("account_id").alias("group_id"),
            ])?;
            let profiles = ctx.table(stage::EVENT_PROFILES).await?.select(vec![
                col("message_id").alias("p_message_id"),
                col("profile_id"),
            ])?;
            let rows = calls.join(
                profiles,
                JoinType::Inner,
                &["message_id"],
                &["p_message_id"],
                None,
            )?;
            ctx.deregister_table(stage::GROUP_CALLS)?;
            ctx.register_table(stage::GROUP_CALLS, rows.into_view())?;
            stage::GROUP_CALLS
        }
        None => stage::PROFILE_EVENTS,
    };
    // Kept: the account base, the account traits and publishing all read it.
    let links = ctx.sql(&ACCOUNT_LINKS.replace("{events}", events)).await?;
    sink.keep(
        ctx,
        links.into_unoptimized_plan(),
        stage::ACCOUNT_LINKS,
        scratch,
    )
    .await?;
    let base = ctx.sql(ACCOUNT_BASE).await?.into_unoptimized_plan();
    let mut taken: BTreeSet<String> = ACCOUNT_COLUMNS.iter().map(|s| s.to_string()).collect();
    taken.extend(
        space
            .traits
            .iter()
            .filter(|t| t.entity == EntityType::Accounts)
            .map(|t| t.key.clone()),
    );
    let mut tables = Vec::new();
    let account_custom = discover_traits(
        ctx,
        stage::ACCOUNT_CALLS,
        "group",
        &taken,
        &mut stats.skipped_traits,
    )
    .await?;
    if !account_custom.is_empty() {
        tables.push(TraitTable {
            plan: custom_traits_plan(
                ctx.table(stage::ACCOUNT_CALLS)
                    .await?
                    .into_unoptimized_plan(),
                "account_id",
                &account_custom,
            )?,
            key: "account_id".into(),
            columns: account_custom
                .iter()
                .map(|c| (c.column.clone(), None))
                .collect(),
        });
        stats.account_traits = type_names(
            account_custom
                .iter()
                .map(|c| (c.column.clone(), c.data_type.clone())),
        );
    }
    // Account-level computed traits aggregate the events of every profile of the account
    // (all of them: accounts are evaluated whole). When `profile_events` holds the touched
    // profiles' only, the linked profiles' event ids are the build side of the join with
    // every event.
    let links = ctx.table(stage::ACCOUNT_LINKS).await?.select(vec![
        col("account_id"),
        col("profile_id").alias("l_profile_id"),
    ])?;
    let account_events = match reuse {
        None => ctx.table(stage::PROFILE_EVENTS).await?.join(
            links,
            JoinType::Inner,
            &["profile_id"],
            &["l_profile_id"],
            None,
        )?,
        Some(_) => {
            let profiles = ctx
                .table(stage::EVENT_PROFILES)
                .await?
                .select_columns(&["message_id", "profile_id"])?;
            let linked = links
                .join(
                    profiles,
                    JoinType::Inner,
                    &["l_profile_id"],
                    &["profile_id"],
                    None,
                )?
                .select(vec![
                    col("account_id"),
                    col("message_id").alias("l_message_id"),
                    col("profile_id"),
                ])?;
            let events = ctx.table(stage::EVENTS).await?;
            let mut columns: Vec<_> = EVENT_COLUMNS.into_iter().map(col).collect();
            columns.extend([col("profile_id"), col("account_id")]);
            linked
                .join(
                    events,
                    JoinType::Inner,
                    &["l_message_id"],
                    &["message_id"],
                    None,
                )?
                .select(columns)?
        }
    };
    let account_events = account_events.into_unoptimized_plan();
    if let Some((plan, cols)) = traits_table(
        space,
        EntityType::Accounts,
        account_events,
        "account_id",
        as_of_micros,
        &|_| true,
    )? {
        for c in &cols {
            stats
                .computed_traits
                .insert(format!("accounts.{}", c.key), c.data_type.to_string());
        }
        tables.push(TraitTable {
            plan,
            key: "account_id".into(),
            columns: cols
                .iter()
                .map(|c| (c.key.clone(), empty_value(c.reducer)))
                .collect(),
        });
    }
    let accounts = join_traits(base, "account_id", tables)?;
    let accounts = LogicalPlanBuilder::from(accounts)
        .sort(vec![col("account_id").sort(true, false)])?
        .build()?;
    sink.keep(ctx, accounts, stage::ACCOUNTS, scratch).await?;
    stats.accounts = ctx.table(stage::ACCOUNTS).await?.count().await? as u64;
    Ok(())
}
