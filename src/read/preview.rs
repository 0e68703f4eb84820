//! `cohort preview` and `cohort explain audience`: evaluate a space up to its audiences without
//! publishing anything, then describe one audience (its size, the size of each top-level
//! condition, its overlap with the other audiences, sample members) or one profile's place in
//! it (each condition's value and the events that decided it).

use chrono::{DateTime, Utc};
use datafusion::arrow::array::{Array, AsArray};
use datafusion::arrow::datatypes::DataType;
use datafusion::logical_expr::col;
use datafusion::prelude::SessionContext;

use crate::error::{EngineError, EngineResult};
use crate::functions::json_object;
use crate::plan::audiences::top_level_conditions;
use crate::plan::identity::ResolvedRules;
use crate::plan::profiles::column_name;
use crate::run::sink::StageSink;
use crate::run::tables::stage;
use crate::run::{RunOptions, audiences, evaluate, new_record, output_location};
use crate::spec::{AudienceDef, EntityType, Space};

/// What `cohort preview` prints.
#[derive(Clone, Debug, serde::Serialize)]
pub struct PreviewReport {
    pub key: String,
    pub entity: String,
    pub as_of: String,
    /// Members.
    pub size: u64,
    /// Profiles (or accounts) evaluated.
    pub total: u64,
    /// Each top-level condition's text and how many it holds for on its own.
    pub conditions: Vec<(String, u64)>,
    /// Every other audience of the same entity type: its key, its size and the members both
    /// have.
    pub overlaps: Vec<Overlap>,
    /// Up to ten members: id and identifiers (JSON).
    pub samples: Vec<(String, String)>,
}

#[derive(Clone, Debug, serde::Serialize)]
pub struct Overlap {
    pub key: String,
    pub size: u64,
    pub both: u64,
}

/// The audience `key` of `space`.
fn audience(space: &Space, key: &str) -> EngineResult<AudienceDef> {
    space
        .audiences
        .iter()
        .find(|a| a.key == key)
        .cloned()
        .ok_or_else(|| EngineError::NotFound(format!("no audience `{key}` in the space")))
}

/// `space` with `def` added (or replacing the audience of the same key).
pub fn with_audience(space: &Space, def: AudienceDef) -> Space {
    let mut s = space.clone();
    s.audiences.retain(|a| a.key != def.key);
    s.audiences.push(def);
    s.audiences.sort_by(|a, b| a.key.cmp(&b.key));
    s
}

/// A space evaluated up to its audiences, nothing published.
struct Evaluated {
    /// `preview_users` and `preview_accounts` registered: one boolean column per audience
    /// and per top-level condition.
    ctx: SessionContext,
    /// The folder those tables live in: kept while they are read.
    _scratch: crate::run::scratch::Scratch,
    as_of: DateTime<Utc>,
    /// Audience key -> the columns of its top-level conditions, in order.
    top_level: std::collections::BTreeMap<String, Vec<String>>,
}

impl Evaluated {
    fn top_columns(&self, key: &str) -> &[String] {
        self.top_level.get(key).map_or(&[], Vec::as_slice)
    }
}

async fn evaluate_audiences(space: &Space, opts: &RunOptions) -> EngineResult<Evaluated> {
    let started = Utc::now();
    let out = output_location(space)?;
    let mut rec = new_record(space, opts, "preview", started);
    let ev = evaluate(space, opts, &crate::run::Quiet, &out, &mut rec).await?;
    let parsed = audiences::parsed_audiences(space)?;
    let inputs = audiences::session_inputs(&ev.ctx, rec.profiles.as_ref()).await?;
    let as_of_micros = rec.as_of.timestamp_micros();
    let (plans, _) = audiences::compile_over_kept_events(
        &ev.ctx,
        &mut StageSink::Materialize,
        inputs,
        |i| audiences::compile_audiences(space, &parsed, i, as_of_micros, true),
        Some(ev.scratch.path()),
    )
    .await?;
    let ctx = ev.ctx.clone();
    let scratch = Some(ev.scratch.path());
    crate::run::keep(&ctx, plans.users, stage::PREVIEW_USERS, scratch).await?;
    if let Some(a) = plans.accounts {
        crate::run::keep(&ctx, a, stage::PREVIEW_ACCOUNTS, scratch).await?;
    }
    Ok(Evaluated {
        ctx,
        _scratch: ev.scratch,
        as_of: rec.as_of,
        top_level: plans.top_level,
    })
}

async fn count(
    ctx: &SessionContext,
    table: &str,
    cond: datafusion::prelude::Expr,
) -> EngineResult<u64> {
    Ok(ctx.table(table).await?.filter(cond)?.count().await? as u64)
}

/// Previews `key` of `space` (which may hold an audience not yet saved, see
/// [`with_audience`]) as of `opts.as_of`.
pub async fn preview(space: &Space, key: &str, opts: &RunOptions) -> EngineResult<PreviewReport> {
    let def = audience(space, key)?;
    let ev = evaluate_audiences(space, opts).await?;
    let (ctx, as_of) = (&ev.ctx, ev.as_of);
    let (table, id) = match def.entity {
        EntityType::Users => (stage::PREVIEW_USERS, "profile_id"),
        EntityType::Accounts => (stage::PREVIEW_ACCOUNTS, "account_id"),
    };
    let total = ctx.table(table).await?.count().await? as u64;
    let size = count(ctx, table, col(key)).await?;
    let parsed = crate::spec::query::parsed_audience(&def)
        .map_err(|d| EngineError::definition(&[d], &space.root))?;
    let mut conditions = Vec::new();
    for (c, column) in top_level_conditions(&parsed)
        .into_iter()
        .zip(ev.top_columns(key))
    {
        let span = c.span();
        let text = def.query[span.start..span.end.min(def.query.len())]
            .trim()
            .to_string();
        let n = count(ctx, table, col(column.as_str())).await?;
        conditions.push((text, n));
    }
    let mut overlaps = Vec::new();
    for other in space
        .audiences
        .iter()
        .filter(|a| a.key != key && a.entity == def.entity)
    {
        overlaps.push(Overlap {
            key: other.key.clone(),
            size: count(ctx, table, col(other.key.as_str())).await?,
            both: count(ctx, table, col(key).and(col(other.key.as_str()))).await?,
        });
    }
    let identifiers = match def.entity {
        EntityType::Users => {
            let rules = ResolvedRules::from_spec(&space.identity);
            let pairs = rules
                .types
                .iter()
                .map(|t| (t.id_type.clone(), col(column_name(&t.id_type))))
                .collect();
            let ids = ctx.table(stage::PROFILES).await?.select(vec![
                col("profile_id").alias("s_id"),
                json_object(pairs).alias("ids"),
            ])?;
            Some(ids)
        }
        EntityType::Accounts => None,
    };
    let members = ctx
        .table(table)
        .await?
        .filter(col(key))?
        .sort(vec![col(id).sort(true, false)])?
        .limit(0, Some(10))?
        .select(vec![col(id).alias("m_id")])?;
    let rows = match identifiers {
        Some(ids) => members
            .join(
                ids,
                datafusion::common::JoinType::Left,
                &["m_id"],
                &["s_id"],
                None,
            )?
            .select(vec![col("m_id"), col("ids")])?,
        None => members.select(vec![
            col("m_id"),
            json_object(vec![("group_id".into(), col("m_id"))]).alias("ids"),
        ])?,
    };
    let rows = rows.sort(vec![col("m_id").sort(true, false)])?;
    let mut samples = Vec::new();
    for b in rows.collect().await? {
        let id = datafusion::arrow::compute::cast(b.column(0), &DataType::Utf8)
            .map_err(datafusion::error::DataFusionError::from)?;
        let ids = datafusion::arrow::compute::cast(b.column(1), &DataType::Utf8)
            .map_err(datafusion::error::DataFusionError::from)?;
        for i in 0..b.num_rows() {
            samples.push((
                id.as_string::<i32>().value(i).to_string(),
                if ids.is_null(i) {
                    "{}".into()
                } else {
                    ids.as_string::<i32>().value(i).to_string()
                },
            ));
        }
    }
    Ok(PreviewReport {
        key: key.to_string(),
        entity: def.entity.as_str().to_string(),
        as_of: as_of.to_rfc3339(),
        size,
        total,
        conditions,
        overlaps,
        samples,
    })
}

/// What `cohort explain audience` prints.
#[derive(Clone, Debug, serde::Serialize)]
pub struct AudienceExplanation {
    pub key: String,
    pub entity: String,
    pub as_of: String,
    /// The profile (or account) the identifier belongs to.
    pub id: String,
    pub member: bool,
    pub conditions: Vec<ConditionExplanation>,
}

/// One top-level condition: its text, whether it holds, and what decided it.
#[derive(Clone, Debug, serde::Serialize)]
pub struct ConditionExplanation {
    pub text: String,
    pub holds: bool,
    /// `trait('k')` values read by the condition: key and value (as text, or null).
    pub traits: Vec<(String, Option<String>)>,
    /// For each event chain of the condition: its text and the profile's events that match
    /// its name, filters and window (message id, timestamp), newest first, at most 20.
    pub events: Vec<(String, Vec<(String, String)>)>,
}

/// Explains whether the profile of `id_type:id_value` (for an account audience,
/// `group_id:<account>`) is in audience `key`, evaluated as of `opts.as_of`.
pub async fn explain_audience(
    space: &Space,
    key: &str,
    id_type: &str,
    id_value: &str,
    opts: &RunOptions,
) -> EngineResult<AudienceExplanation> {
    use crate::plan::traits::{EventScope, chain_filter};
    use crate::spec::query::ast;
    let def = audience(space, key)?;
    let ev = evaluate_audiences(space, opts).await?;
    let (ctx, as_of) = (&ev.ctx, ev.as_of);
    let text = |df: datafusion::dataframe::DataFrame| async move {
        let mut out: Vec<Vec<Option<String>>> = Vec::new();
        for b in df.collect().await? {
            let cols: Vec<_> = b
                .columns()
                .iter()
                .map(|c| datafusion::arrow::compute::cast(c, &DataType::Utf8))
                .collect::<Result<_, _>>()
                .map_err(datafusion::error::DataFusionError::from)?;
            for i in 0..b.num_rows() {
                out.push(
                    cols.iter()
                        .map(|c| (!c.is_null(i)).then(|| c.as_string::<i32>().value(i).to_string()))
                        .collect(),
                );
            }
        }
        Ok::<_, EngineError>(out)
    };
    let (table, id_col, id) = match def.entity {
        EntityType::Users => {
            let rules = ResolvedRules::from_spec(&space.identity);
            let rule = rules
                .types
                .iter()
                .find(|t| t.id_type == id_type)
                .ok_or_else(|| {
                    let known: Vec<&str> = rules.types.iter().map(|t| t.id_type.as_str()).collect();
                    EngineError::InvalidInput(format!(
                        "`{id_type}` is not an identifier type of `{}` (its types: {})",
                        space.name,
                        known.join(", ")
                    ))
                })?;
            let mut value = id_value.trim().to_string();
            if rule.normalize.iter().any(|n| n == "lowercase") {
                value = value.to_lowercase();
            }
            let found = text(
                ctx.table(stage::ID_IDENTITIES)
                    .await?
                    .filter(col("id_type").eq(datafusion::prelude::lit(id_type)))?
                    .filter(col("id_value").eq(datafusion::prelude::lit(value.as_str())))?
                    .select(vec![col("profile_id")])?,
            )
            .await?;
            let Some(Some(p)) = found.first().and_then(|r| r.first().cloned()) else {
                return Err(EngineError::NotFound(format!(
                    "no profile has `{id_type}:{value}` as of {}",
                    as_of.to_rfc3339()
                )));
            };
            (stage::PREVIEW_USERS, "profile_id", p)
        }
        EntityType::Accounts => {
            if id_type != "group_id" && id_type != "account_id" {
                return Err(EngineError::InvalidInput(format!(
                    "`{key}` is an account audience: name the account as group_id:<id>"
                )));
            }
            (
                stage::PREVIEW_ACCOUNTS,
                "account_id",
                id_value.trim().to_string(),
            )
        }
    };
    let this = col(id_col).eq(datafusion::prelude::lit(id.as_str()));
    let parsed = crate::spec::query::parsed_audience(&def)
        .map_err(|d| EngineError::definition(&[d], &space.root))?;
    let tops = top_level_conditions(&parsed);
    let mut select = vec![col(key)];
    select.extend(ev.top_columns(key).iter().map(|c| col(c.as_str())));
    let row = text(
        ctx.table(table)
            .await?
            .filter(this.clone())?
            .select(select)?,
    )
    .await?;
    let Some(row) = row.first() else {
        return Err(EngineError::NotFound(format!(
            "no {} `{id}`",
            def.entity.as_str()
        )));
    };
    let yes = |v: &Option<String>| v.as_deref() == Some("true");
    let mut conditions = Vec::new();
    for (n, c) in tops.iter().enumerate() {
        let span = c.span();
        let mut refs = Vec::new();
        crate::analyze::audiences::trait_refs(c, &mut refs);
        let mut traits = Vec::new();
        for (k, _) in refs {
            let (t, key_col) = match def.entity {
                EntityType::Accounts => (stage::ACCOUNTS, "account_id"),
                EntityType::Users => (stage::PROFILES, "profile_id"),
            };
            let source = if space.audiences.iter().any(|a| a.key == k) {
                (table, id_col, k.clone())
            } else {
                (t, key_col, column_name(&k))
            };
            let df = ctx.table(source.0).await?;
            let v = if df.schema().has_column_with_unqualified_name(&source.2) {
                text(
                    df.filter(col(source.1).eq(datafusion::prelude::lit(id.as_str())))?
                        .select(vec![col(source.2.as_str())])?,
                )
                .await?
                .first()
                .and_then(|r| r.first().cloned())
                .flatten()
            } else {
                None
            };
            traits.push((k, v));
        }
        let mut events = Vec::new();
        for chain in crate::analyze::audiences::event_chains(c) {
            let scope = EventScope::new(as_of.timestamp_micros());
            // The chain's own name, filters and window (a funnel's children and trait
            // references are not evaluated here: the chain's name and window are).
            let bare = ast::EventChain {
                filters: chain
                    .filters
                    .iter()
                    .filter(|f| match f {
                        ast::Filter::Where { condition, .. } => {
                            let mut r = Vec::new();
                            crate::analyze::audiences::trait_refs(condition, &mut r);
                            r.is_empty()
                                && crate::analyze::audiences::event_chains(condition).is_empty()
                        }
                        _ => true,
                    })
                    .cloned()
                    .collect(),
                ..chain.clone()
            };
            let Ok((matches, _)) = chain_filter(&bare, &scope) else {
                continue;
            };
            let mut events_of = ctx.table(stage::PROFILE_EVENTS).await?;
            if def.entity == EntityType::Accounts {
                events_of = events_of.join(
                    ctx.table(stage::ACCOUNT_LINKS).await?.select(vec![
                        col("account_id"),
                        col("profile_id").alias("l_profile_id"),
                    ])?,
                    datafusion::common::JoinType::Inner,
                    &["profile_id"],
                    &["l_profile_id"],
                    None,
                )?;
            }
            let rows = text(
                events_of
                    .filter(col(id_col).eq(datafusion::prelude::lit(id.as_str())))?
                    .filter(matches)?
                    .sort(vec![col("timestamp").sort(false, false)])?
                    .limit(0, Some(20))?
                    .select(vec![col("message_id"), col("timestamp")])?,
            )
            .await?;
            let span = chain.span;
            events.push((
                def.query[span.start..span.end.min(def.query.len())].to_string(),
                rows.into_iter()
                    .map(|r| {
                        (
                            r[0].clone().unwrap_or_default(),
                            r[1].clone().unwrap_or_default(),
                        )
                    })
                    .collect(),
            ));
        }
        conditions.push(ConditionExplanation {
            text: def.query[span.start..span.end.min(def.query.len())]
                .trim()
                .to_string(),
            holds: yes(&row[n + 1]),
            traits,
            events,
        });
    }
    Ok(AudienceExplanation {
        key: key.to_string(),
        entity: def.entity.as_str().to_string(),
        as_of: as_of.to_rfc3339(),
        id,
        member: yes(&row[0]),
        conditions,
    })
}
