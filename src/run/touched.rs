//! Which profiles a run evaluates again, and whether it may keep the others' published values
//! (issue 19, item 3, design (a): the touched profiles are evaluated again from their whole
//! history; every other profile keeps its traits and memberships).
//!
//! A profile's computed and custom traits and its memberships are a function of its visible
//! events, its identifiers, its SQL trait values and the as-of time, which enters only through
//! windows measured back from it. So between the previous published run and this one, a
//! profile can change only if:
//! - one of its events is new to the history, or became visible (as-of moved past it);
//! - an event of it sits where a window edge moved: `[previous as-of - d, as-of - d]` for every
//!   window length `d` of a trait or audience (`within`, both ends of `between`);
//! - its identifiers changed (merged, split, new identifiers, first/last seen);
//! - its SQL trait values changed (SQL traits are evaluated whole every run).
//!
//! Those are the touched profiles, registered as `touched_profiles (profile_id)`. When the
//! previous run cannot be extended this way (see [`eligible`]) every profile is evaluated, and
//! the run record says why.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Utc};
use datafusion::arrow::datatypes::DataType;
use datafusion::common::JoinType;
use datafusion::logical_expr::{Expr, Operator, binary_expr, cast, col, lit};
use datafusion::prelude::{DataFrame, SessionContext, coalesce};

use super::ctx::RunCtx;
use super::edited::{Edited, as_of_windows, edited};
use super::stages::events::EventsOut;
use super::stages::profiles::trait_kinds;
use super::stages::sql_traits::SqlTraitResult;
use super::tables::{published, stage};
use crate::error::EngineResult;
use crate::functions::{id_node, json_object};
use crate::plan::traits::ts;
use crate::store::manifest::Kept;
use crate::store::{delta, manifest};

/// What the traits and audience stages need to keep the untouched profiles' values.
pub struct Reuse {
    /// The previous run's published `profiles`.
    pub prev_profiles: DataFrame,
    /// Kinds of every custom trait key, the previous run's with this run's new events'.
    pub kinds: BTreeMap<String, BTreeSet<String>>,
    /// Definitions evaluated for every profile (edited, new, or reading an edited one).
    pub edited: Edited,
}

/// How the traits and audiences of a run were evaluated, for the run record.
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct Recompute {
    /// `incremental` (only the touched profiles) or `full`.
    pub mode: String,
    /// Why every profile, when `full`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Profiles evaluated again (every profile when `full`).
    pub profiles: u64,
    /// Definitions evaluated for every profile in an incremental run.
    #[serde(skip_serializing_if = "Edited::is_empty")]
    pub edited: Edited,
    /// Definitions not evaluated: every profile kept its values (a run asked for some
    /// definitions only, see [`super::due`]).
    #[serde(skip_serializing_if = "Kept::is_empty")]
    pub kept: Kept,
    /// SQL traits not evaluated because nothing they read changed (see
    /// [`super::sql_unchanged`]): every profile kept its values.
    #[serde(skip_serializing_if = "BTreeSet::is_empty")]
    pub unchanged_sql_traits: BTreeSet<String>,
    /// SQL traits evaluated for the identifiers of the changed events only, with how many
    /// identifiers (see [`super::sql_keyed`]); every other identifier kept its row.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub keyed_sql_traits: BTreeMap<String, u64>,
}

impl Recompute {
    fn full(why: String) -> Recompute {
        Recompute {
            mode: "full".into(),
            reason: Some(why),
            ..Default::default()
        }
    }
}

/// Why this run must evaluate every profile (`Err`), or the previous run's manifest and as-of.
pub(super) fn eligible<'m>(
    rc: &'m RunCtx<'_>,
    events: &EventsOut,
) -> Result<(&'m manifest::Manifest, DateTime<Utc>, Edited), String> {
    if !rc.keep_unchanged {
        return Err("this evaluation publishes nothing".into());
    }
    let Some(m) = rc.previous.as_ref() else {
        return Err("no previous run".into());
    };
    if rc.opts.full_rebuild {
        return Err("a full rebuild was asked for".into());
    }
    if events.extended.is_none() {
        return Err("the event history was read again".into());
    }
    if rc.rec.identity.as_ref().map(|i| i.mode.as_str()) != Some("incremental") {
        return Err("the identity graph was rebuilt".into());
    }
    for t in [published::PROFILES, published::AUDIENCE_MEMBERSHIP] {
        if !m.tables.contains_key(t) {
            return Err(format!("the previous run published no {t}"));
        }
    }
    let (Some(defs), Some(_)) = (&m.definitions, &m.custom_trait_kinds) else {
        return Err("the previous run kept no fingerprint of its definitions".into());
    };
    let custom_keys: BTreeSet<String> = m
        .custom_trait_kinds
        .iter()
        .flat_map(|k| k.keys().cloned())
        .collect();
    let stale = m.kept.clone().unwrap_or_default();
    let mut edited = edited(rc.space, &rc.rec.definitions, defs, &custom_keys, &stale)?;
    // What this run keeps is not evaluated at all.
    edited.traits.retain(|k| !rc.kept.traits.contains(k));
    edited.audiences.retain(|k| !rc.kept.audiences.contains(k));
    let prev_as_of = DateTime::parse_from_rfc3339(&m.as_of)
        .map_err(|_| "the previous run's as-of cannot be read".to_string())?
        .with_timezone(&Utc);
    if prev_as_of > rc.as_of {
        return Err("as-of moved back".into());
    }
    Ok((m, prev_as_of, edited))
}

fn union_all(parts: Vec<DataFrame>) -> EngineResult<Option<DataFrame>> {
    let mut out: Option<DataFrame> = None;
    for p in parts {
        out = Some(match out {
            Some(o) => o.union(p)?,
            None => p,
        });
    }
    Ok(out)
}

fn distinct_from(a: Expr, b: Expr) -> Expr {
    binary_expr(a, Operator::IsDistinctFrom, b)
}

fn text(c: &str) -> Expr {
    cast(col(c), DataType::Utf8)
}

/// Decides whether the traits and audience stages may keep the untouched profiles' values;
/// when they may, registers `touched_profiles` and sets `rc.reuse`. Records the outcome in
/// `rc.recompute`.
pub async fn find(
    rc: &mut RunCtx<'_>,
    events: &EventsOut,
    sql_traits: &[SqlTraitResult],
) -> EngineResult<()> {
    rc.reuse = None;
    let windows = as_of_windows(rc.space);
    let (m, prev_as_of, edited) = match eligible(rc, events) {
        Ok(v) => v,
        Err(why) => {
            rc.recompute = Recompute::full(why);
            rc.kept.traits.clear();
            rc.kept.audiences.clear();
            return Ok(());
        }
    };
    let ctx = &rc.session;
    let prev_profiles = ctx.read_table(
        delta::provider(
            &rc.out.child(published::PROFILES),
            m.tables[published::PROFILES],
        )
        .await?,
    )?;
    let as_of = rc.as_of.timestamp_micros();
    let prev = prev_as_of.timestamp_micros();

    // Events that are new, became visible, or sit where a window edge moved.
    let mut ids: Vec<DataFrame> = Vec::new();
    let new_rows = events.extended.as_ref().and_then(|e| e.rows.clone());
    if let Some(rows) = &new_rows {
        ids.push(
            DataFrame::new(ctx.state(), rows.clone())
                .select(vec![text("message_id").alias("message_id")])?,
        );
    }
    let new_ids = ids.first().cloned();
    if as_of > prev {
        let mut window: Option<Expr> = None;
        for d in std::iter::once(0).chain(windows.iter().copied()) {
            let d = d * 1_000_000;
            let one = col("timestamp")
                .gt_eq(ts(prev - d))
                .and(col("timestamp").lt_eq(ts(as_of - d)));
            window = Some(match window {
                Some(w) => w.or(one),
                None => one,
            });
        }
        let moved = ctx
            .table(stage::EVENTS)
            .await?
            .filter(window.expect("the as-of edge"))?
            .select(vec![text("message_id").alias("message_id")])?;
        ids.push(moved);
    }
    let ids = union_all(ids)?;
    let event_profiles = ctx.table(stage::EVENT_PROFILES).await?.select(vec![
        text("message_id").alias("e_message_id"),
        text("profile_id").alias("profile_id"),
    ])?;
    let mut touched: Vec<DataFrame> = Vec::new();
    if let Some(ids) = ids {
        touched.push(
            ids.join(
                event_profiles.clone(),
                JoinType::Inner,
                &["message_id"],
                &["e_message_id"],
                None,
            )?
            .select_columns(&["profile_id"])?,
        );
    }
    touched.push(identity_changes(rc, m).await?);
    match sql_changes(ctx, &prev_profiles, sql_traits).await? {
        Ok(Some(df)) => touched.push(df),
        Ok(None) => {}
        Err(why) => {
            rc.recompute = Recompute::full(why);
            rc.kept.traits.clear();
            rc.kept.audiences.clear();
            return Ok(());
        }
    }
    let all = union_all(touched)?.expect("the identity changes");
    let (table, n) = crate::identity::components::materialize(
        all.filter(col("profile_id").is_not_null())?.distinct()?,
    )
    .await?;
    ctx.deregister_table(stage::TOUCHED)?;
    ctx.register_table(stage::TOUCHED, table)?;

    // Custom trait kinds: the previous run's, with those of the events this run made visible.
    let mut kinds: BTreeMap<String, BTreeSet<String>> =
        m.custom_trait_kinds.clone().unwrap_or_default();
    // The identify calls this run added or made visible (up to as-of, with a profile).
    let identify = ctx
        .table(stage::EVENTS)
        .await?
        .filter(col("type").eq(lit("identify")))?;
    let mut fresh: Vec<DataFrame> = Vec::new();
    if let Some(ids) = new_ids {
        fresh.push(identify.clone().join(
            ids.distinct()?,
            JoinType::LeftSemi,
            &["message_id"],
            &["message_id"],
            None,
        )?);
    }
    if as_of > prev {
        fresh.push(identify.filter(col("timestamp").gt(ts(prev)))?);
    }
    if let Some(calls) = union_all(fresh)? {
        let calls = calls.join(
            event_profiles,
            JoinType::LeftSemi,
            &["message_id"],
            &["e_message_id"],
            None,
        )?;
        ctx.deregister_table(stage::FRESH_CALLS)?;
        ctx.register_table(stage::FRESH_CALLS, calls.into_view())?;
        let before = kinds.clone();
        for (k, ks) in trait_kinds(ctx, stage::FRESH_CALLS, "identify").await? {
            kinds.entry(k).or_default().extend(ks);
        }
        ctx.deregister_table(stage::FRESH_CALLS)?;
        for (k, old) in &before {
            let now = &kinds[k];
            let ty = |s: &BTreeSet<String>| {
                crate::plan::profiles::custom_trait_type(s.iter().map(String::as_str))
            };
            if ty(old) != ty(now) {
                rc.recompute = Recompute::full(format!(
                    "custom trait `{k}` changed type ({} to {})",
                    ty(old),
                    ty(now)
                ));
                rc.kept.traits.clear();
                rc.kept.audiences.clear();
                return Ok(());
            }
        }
    }
    rc.recompute = Recompute {
        mode: "incremental".into(),
        reason: None,
        profiles: n,
        edited: edited.clone(),
        kept: rc.kept.clone(),
        unchanged_sql_traits: rc.unchanged_sql_traits.clone(),
        keyed_sql_traits: rc.keyed_sql_traits.clone(),
    };
    rc.reuse = Some(Reuse {
        prev_profiles,
        kinds,
        edited,
    });
    Ok(())
}

/// Profiles (of either run) whose identifiers or their first / last seen times changed.
async fn identity_changes(rc: &RunCtx<'_>, m: &manifest::Manifest) -> EngineResult<DataFrame> {
    let ctx = &rc.session;
    let cols = [
        "profile_id",
        "id_type",
        "id_value",
        "first_seen",
        "last_seen",
    ];
    let side = |df: DataFrame, p: &str| -> EngineResult<DataFrame> {
        Ok(df.select(
            cols.iter()
                .map(|c| match *c {
                    "first_seen" | "last_seen" => col(*c).alias(format!("{p}{c}")),
                    _ => text(c).alias(format!("{p}{c}")),
                })
                .collect::<Vec<Expr>>(),
        )?)
    };
    // When identity resolved only the affected identifiers, every other row is the previous
    // run's: compare the affected ones alone.
    let affected = match rc.rec.identity.as_ref().map(|i| i.affected_identifiers) {
        Some(Some(_)) => Some(
            ctx.table(stage::ID_AFFECTED_NODES)
                .await?
                .select(vec![col("node").alias("a_node")])?,
        ),
        _ => None,
    };
    let only = |df: DataFrame| -> EngineResult<DataFrame> {
        Ok(match &affected {
            Some(a) => df
                .with_column("i_node", id_node(text("id_type"), text("id_value")))?
                .join(
                    a.clone(),
                    JoinType::LeftSemi,
                    &["i_node"],
                    &["a_node"],
                    None,
                )?,
            None => df,
        })
    };
    let now = side(only(ctx.table(stage::ID_IDENTITIES).await?)?, "n_")?;
    let before = match m.tables.get(published::IDENTITIES) {
        Some(v) => {
            ctx.read_table(delta::provider(&rc.out.child(published::IDENTITIES), *v).await?)?
        }
        None => ctx.table(stage::ID_IDENTITIES).await?.limit(0, Some(0))?,
    };
    let before = side(only(before)?, "p_")?;
    let keys = ["profile_id", "id_type", "id_value"];
    let l: Vec<String> = keys.iter().map(|k| format!("n_{k}")).collect();
    let r: Vec<String> = keys.iter().map(|k| format!("p_{k}")).collect();
    let l: Vec<&str> = l.iter().map(String::as_str).collect();
    let r: Vec<&str> = r.iter().map(String::as_str).collect();
    let differs = col("n_profile_id")
        .is_null()
        .or(col("p_profile_id").is_null())
        .or(distinct_from(col("n_first_seen"), col("p_first_seen")))
        .or(distinct_from(col("n_last_seen"), col("p_last_seen")));
    Ok(now
        .join(before, JoinType::Full, &l, &r, None)?
        .filter(differs)?
        .select(vec![
            coalesce(vec![col("n_profile_id"), col("p_profile_id")]).alias("profile_id"),
        ])?)
}

/// Profiles whose SQL trait values differ from the previous run's (`Err` when a column is
/// new to `profiles`).
async fn sql_changes(
    ctx: &SessionContext,
    prev_profiles: &DataFrame,
    sql_traits: &[SqlTraitResult],
) -> EngineResult<Result<Option<DataFrame>, String>> {
    let prev_cols: BTreeSet<&str> = prev_profiles
        .schema()
        .fields()
        .iter()
        .map(|f| f.name().as_str())
        .collect();
    let mut out: Option<DataFrame> = None;
    // A SQL trait not evaluated holds the previous values of every profile.
    for t in sql_traits.iter().filter(|t| !t.kept) {
        if let Some((c, _)) = t
            .columns
            .iter()
            .find(|(c, _)| !prev_cols.contains(c.as_str()))
        {
            return Ok(Err(format!("SQL trait column `{c}` is new")));
        }
        let values = |df: DataFrame, p: &str| -> EngineResult<DataFrame> {
            let any = t
                .columns
                .iter()
                .map(|(c, _)| col(c.as_str()).is_not_null())
                .reduce(Expr::or)
                .unwrap_or(lit(false));
            let pairs = t
                .columns
                .iter()
                .map(|(c, _)| (c.clone(), col(c.as_str())))
                .collect();
            Ok(df.filter(any)?.select(vec![
                text("profile_id").alias(format!("{p}profile_id")),
                json_object(pairs).alias(format!("{p}values")),
            ])?)
        };
        let now = values(ctx.table(t.table.as_str()).await?, "n_")?;
        let before = values(prev_profiles.clone(), "p_")?;
        let changed = now
            .join(
                before,
                JoinType::Full,
                &["n_profile_id"],
                &["p_profile_id"],
                None,
            )?
            .filter(distinct_from(col("n_values"), col("p_values")))?
            .select(vec![
                coalesce(vec![col("n_profile_id"), col("p_profile_id")]).alias("profile_id"),
            ])?;
        out = Some(match out {
            Some(o) => o.union(changed)?,
            None => changed,
        });
    }
    Ok(Ok(out))
}
