//! A run that evaluates only some definitions (issue 19, item 5): a scheduled run evaluates
//! the definitions whose slot came, `cohort run --select` the ones it names, each with what it
//! reads (the traits and audiences its query names, to a fixed point). Every other computed
//! trait of users, SQL trait and audience of users keeps the values it had after the previous
//! run, for every profile, when the run may keep values at all (see [`super::touched`]).
//! Those values are stale for the profiles this run touched, so the manifest lists them
//! ([`Kept`]) and the next run that evaluates them evaluates them for every profile.
//!
//! Always evaluated: definitions edited since the previous run or new, computed traits and
//! audiences of accounts (evaluated whole every run), and the SQL traits when any SQL trait
//! of the previous run started profiles (such profiles exist only through its rows).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use datafusion::arrow::datatypes::DataType;
use datafusion::logical_expr::cast;
use datafusion::prelude::{DataFrame, SessionContext, col};

use super::ctx::RunCtx;
use super::edited::{audience_reads, relative, with_reads};
use super::stages::events::EventsOut;
use super::stages::sql_traits::SqlTraitResult;
use super::tables::{published, stage};
use crate::error::EngineResult;
use crate::spec::{EntityType, Space};
use crate::store::delta;
use crate::store::manifest::{Kept, Manifest, SqlTraitState};

/// Sets `rc.kept` for a run asked for some definitions only, when it may keep values (see
/// [`super::touched`]); it may still evaluate every profile, which then clears the kept
/// traits and audiences (not the SQL traits, whose values stay the previous run's).
pub fn decide(rc: &mut RunCtx<'_>, events: &EventsOut) {
    rc.kept = Kept::default();
    let Some(select) = rc.opts.select.as_ref() else {
        return;
    };
    if let Ok((m, _, _)) = super::touched::eligible(rc, events) {
        rc.kept = kept(rc.space, select, &rc.rec.definitions, m);
    }
}

/// The definitions `names` select (`trait:<key>`, `sql_trait:<key>`, `audience:<key>`, or a
/// bare key that names one definition), as `kind:key`; `Err` names the first unknown one.
/// `profiles` (what the scheduler names for a space without definitions) selects nothing.
pub fn parse_selection(space: &Space, names: &[String]) -> Result<BTreeSet<String>, String> {
    let known: Vec<String> = space
        .traits
        .iter()
        .map(|t| format!("trait:{}", t.key))
        .chain(
            space
                .sql_traits
                .iter()
                .map(|t| format!("sql_trait:{}", t.key)),
        )
        .chain(
            space
                .audiences
                .iter()
                .map(|a| format!("audience:{}", a.key)),
        )
        .collect();
    let mut out = BTreeSet::new();
    for n in names.iter().flat_map(|n| n.split(',')).map(str::trim) {
        if n.is_empty() || n == "profiles" {
            continue;
        }
        if known.iter().any(|k| k == n) {
            out.insert(n.to_string());
            continue;
        }
        let bare: Vec<&String> = known
            .iter()
            .filter(|k| k.split_once(':').is_some_and(|(_, key)| key == n))
            .collect();
        match bare.as_slice() {
            [one] => {
                out.insert(one.to_string());
            }
            [] => {
                return Err(format!(
                    "`{n}` is not a definition of space `{}` (name one as trait:<key>, \
                     sql_trait:<key> or audience:<key>)",
                    space.name
                ));
            }
            many => {
                let list: Vec<&str> = many.iter().map(|s| s.as_str()).collect();
                return Err(format!(
                    "`{n}` names several definitions: {}",
                    list.join(", ")
                ));
            }
        }
    }
    Ok(out)
}

/// What a run that evaluates `select` keeps. `now` and `before` are the definition files'
/// fingerprints (this run's, the previous run's); `previous` the previous manifest.
pub fn kept(
    space: &Space,
    select: &BTreeSet<String>,
    now: &BTreeMap<String, String>,
    previous: &Manifest,
) -> Kept {
    let before = previous.definitions.clone().unwrap_or_default();
    let changed = |file: &std::path::Path| {
        let rel = relative(&space.root, file);
        now.get(&rel) != before.get(&rel)
    };
    let named = |kind: &str| -> BTreeSet<String> {
        select
            .iter()
            .filter_map(|s| s.strip_prefix(kind))
            .map(str::to_string)
            .collect()
    };
    // The audiences selected, with every audience they read; then the names they read.
    let audiences = with_reads(space, &named("audience:"));
    let reads = audience_reads(space);
    let mut names: BTreeSet<String> = named("trait:");
    for a in &audiences {
        names.extend(reads.get(a.as_str()).into_iter().flatten().cloned());
    }
    let mut out = Kept::default();
    for t in space
        .traits
        .iter()
        .filter(|t| t.entity == EntityType::Users)
    {
        if !names.contains(&t.key) && !changed(&t.file) {
            out.traits.insert(t.key.clone());
        }
    }
    for a in space
        .audiences
        .iter()
        .filter(|a| a.entity == EntityType::Users)
    {
        if !audiences.contains(&a.key) && !changed(&a.file) {
            out.audiences.insert(a.key.clone());
        }
    }
    let sql_named = named("sql_trait:");
    let states = previous.sql_traits.as_ref();
    let keepable = states.is_some_and(|s| {
        space
            .sql_traits
            .iter()
            .all(|t| s.get(&t.key).is_some_and(|st| st.started == 0))
    });
    if keepable {
        let states = states.expect("checked");
        for t in &space.sql_traits {
            let columns = &states[&t.key].columns;
            if !sql_named.contains(&t.key) && !columns.iter().any(|c| names.contains(c)) {
                out.sql_traits.insert(t.key.clone());
            }
        }
    }
    out
}

/// `evaluated` (the SQL traits this run evaluated) with the kept ones and those that read
/// nothing that changed (see [`super::sql_unchanged`]), in the space's order.
pub async fn with_kept_sql_traits(
    rc: &RunCtx<'_>,
    mut evaluated: Vec<SqlTraitResult>,
) -> EngineResult<Vec<SqlTraitResult>> {
    let kept = not_evaluated(rc);
    if kept.is_empty() {
        return Ok(evaluated);
    }
    let m = rc
        .previous
        .as_ref()
        .expect("kept values come from a previous run");
    let loc = rc.out.child(published::PROFILES);
    let provider = delta::provider(&loc, m.tables[published::PROFILES]).await?;
    let prev = rc.session.read_table(provider)?;
    let states = m.sql_traits.clone().unwrap_or_default();
    let mut out = Vec::with_capacity(rc.space.sql_traits.len());
    for def in &rc.space.sql_traits {
        if kept.contains(&def.key) {
            let state = &states[&def.key];
            out.push(kept_sql_trait(&rc.session, &prev, &def.key, state).await?);
        } else {
            let i = evaluated.iter().position(|r| r.key == def.key);
            out.push(evaluated.remove(i.expect("evaluated")));
        }
    }
    Ok(out)
}

/// A kept SQL trait: its previous values from the previous `profiles`, registered as its
/// session table like an evaluated one.
async fn kept_sql_trait(
    ctx: &SessionContext,
    prev_profiles: &DataFrame,
    key: &str,
    state: &SqlTraitState,
) -> EngineResult<SqlTraitResult> {
    let schema = prev_profiles.schema().clone();
    let mut select = vec![cast(col("profile_id"), DataType::Utf8).alias("profile_id")];
    let mut columns = Vec::new();
    for c in &state.columns {
        let (_, f) = schema.qualified_field_with_unqualified_name(c)?;
        let ty = match f.data_type() {
            DataType::Utf8View | DataType::LargeUtf8 => DataType::Utf8,
            t => t.clone(),
        };
        select.push(cast(col(c.as_str()), ty.clone()).alias(c.as_str()));
        columns.push((c.clone(), ty));
    }
    let any = state
        .columns
        .iter()
        .map(|c| col(c.as_str()).is_not_null())
        .reduce(|a, b| a.or(b))
        .unwrap_or(datafusion::prelude::lit(false));
    let rows = prev_profiles
        .clone()
        .filter(any)?
        .select(select)?
        .sort(vec![col("profile_id").sort(true, false)])?;
    let (provider, n) = crate::identity::components::materialize(rows).await?;
    let table = stage::sql_trait(key);
    ctx.deregister_table(table.as_str())?;
    ctx.register_table(table.as_str(), provider.clone())?;
    Ok(SqlTraitResult {
        key: key.to_string(),
        table,
        id_type: state.id_type.clone(),
        columns,
        rows: n,
        skipped: 0,
        profiles: n,
        new_profiles: 0,
        new_identities: Vec::new(),
        provider: Arc::clone(&provider),
        kept: true,
        keyed: None,
        query_rows: None,
    })
}

/// The SQL traits a run takes from the previous run's `profiles`: the kept ones and those that
/// read nothing that changed.
pub fn not_evaluated(rc: &RunCtx<'_>) -> BTreeSet<String> {
    let mut out = rc.kept.sql_traits.clone();
    out.extend(rc.unchanged_sql_traits.iter().cloned());
    out
}

/// Each SQL trait's state for the manifest: this run's results, with the previous state of
/// those it did not evaluate.
pub fn sql_trait_states(
    results: &[SqlTraitResult],
    previous: Option<&Manifest>,
) -> BTreeMap<String, SqlTraitState> {
    let prev = previous.and_then(|m| m.sql_traits.as_ref());
    results
        .iter()
        .map(|r| {
            let state = match (r.kept, prev) {
                (true, Some(p)) if p.contains_key(&r.key) => p[&r.key].clone(),
                _ => SqlTraitState {
                    columns: r.columns.iter().map(|(c, _)| c.clone()).collect(),
                    id_type: r.id_type.clone(),
                    started: r.new_profiles,
                    // Set when publishing writes them.
                    rows: None,
                },
            };
            (r.key.clone(), state)
        })
        .collect()
}
