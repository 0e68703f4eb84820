//! What an export reads: the published membership and identities at the manifest's
//! versions, the audience's entity from the run record, the identifier type a `single`
//! export writes, and the `(member, type, value)` rows the encoder turns into CSV.

use std::sync::Arc;

use datafusion::arrow::array::{Array, AsArray};
use datafusion::arrow::datatypes::{DataType, Int64Type};
use datafusion::catalog::TableProvider;
use datafusion::functions_aggregate::expr_fn::{count, max};
use datafusion::logical_expr::{JoinType, cast};
use datafusion::prelude::{DataFrame, SessionContext, col, lit};

use super::{ExportError, ExportResult, did_you_mean};
use crate::read::output_location;
use crate::spec::Space;
use crate::store::{delta, manifest};

/// The published tables an export reads, at the manifest's versions.
pub(super) struct Published {
    pub(super) run_id: String,
    membership: Arc<dyn TableProvider>,
    identities: Arc<dyn TableProvider>,
    runs: Option<Arc<dyn TableProvider>>,
}

pub(super) async fn published(space: &Space) -> ExportResult<Published> {
    let out = output_location(space)?;
    let never = || {
        ExportError::NotFound(format!(
            "space `{}` has not published a run yet (nothing under {}); run `cohort run` \
             first",
            space.name, out.url
        ))
    };
    let m = manifest::read(&out).await?.ok_or_else(never)?;
    let (Some(mv), Some(iv)) = (
        m.tables.get(crate::read::published::AUDIENCE_MEMBERSHIP),
        m.tables.get("identities"),
    ) else {
        return Err(never());
    };
    let runs = match m.tables.get("runs") {
        Some(v) => Some(delta::provider(&out.child("runs"), *v).await?),
        None => None,
    };
    Ok(Published {
        run_id: m.run_id.clone(),
        membership: delta::provider(&out.child(crate::read::published::AUDIENCE_MEMBERSHIP), *mv)
            .await?,
        identities: delta::provider(&out.child("identities"), *iv).await?,
        runs,
    })
}

/// `(key, entity)` of every audience of the published run, from its run record; None when
/// the record does not list them.
async fn published_audiences(
    ctx: &SessionContext,
    p: &Published,
) -> ExportResult<Option<Vec<(String, String)>>> {
    #[derive(serde::Deserialize)]
    struct Stats {
        audiences: std::collections::BTreeMap<String, Counts>,
    }
    #[derive(serde::Deserialize)]
    struct Counts {
        entity: String,
    }
    let Some(runs) = &p.runs else {
        return Ok(None);
    };
    let batches = ctx
        .read_table(runs.clone())?
        .filter(col("run_id").eq(lit(p.run_id.as_str())))?
        .select(vec![cast(col("audiences"), DataType::Utf8).alias("a")])?
        .collect()
        .await?;
    for b in &batches {
        let a = b.column(0).as_string::<i32>();
        for i in 0..b.num_rows() {
            if a.is_null(i) {
                continue;
            }
            let Ok(s) = serde_json::from_str::<Stats>(a.value(i)) else {
                continue;
            };
            return Ok(Some(
                s.audiences
                    .into_iter()
                    .map(|(k, c)| (k, c.entity))
                    .collect(),
            ));
        }
    }
    Ok(None)
}

/// The entity type (`users` / `accounts`) of audience `key` in the published run, or an
/// error that says why it cannot be exported.
pub(super) async fn audience_entity(
    ctx: &SessionContext,
    space: &Space,
    p: &Published,
    key: &str,
) -> ExportResult<String> {
    let defined = space.audiences.iter().find(|a| a.key == key);
    let listed = published_audiences(ctx, p).await?;
    if let Some(list) = &listed
        && let Some((_, entity)) = list.iter().find(|(k, _)| k == key)
    {
        return Ok(entity.clone());
    }
    match (defined, listed) {
        (Some(_), Some(_)) => Err(ExportError::NotFound(format!(
            "audience `{key}` is defined in space `{}` but not in its last published run \
             ({}); run the space, then export",
            space.name, p.run_id
        ))),
        // An older run record that does not list audiences: trust the definition.
        (Some(def), None) => Ok(def.entity.as_str().to_string()),
        (None, listed) => {
            let mut keys: Vec<&str> = space.audiences.iter().map(|a| a.key.as_str()).collect();
            if let Some(list) = &listed {
                keys.extend(list.iter().map(|(k, _)| k.as_str()));
            }
            keys.sort_unstable();
            keys.dedup();
            let known = if keys.is_empty() {
                "the space has no audiences".to_string()
            } else {
                format!("its audiences: {}", keys.join(", "))
            };
            Err(ExportError::NotFound(format!(
                "no audience `{key}` in space `{}`{}; {known}",
                space.name,
                did_you_mean(key, &keys)
            )))
        }
    }
}

/// The identifier type a `single` export writes, checked against the space's types.
pub(super) fn single_type(
    space: &Space,
    entity: &str,
    asked: Option<&str>,
) -> ExportResult<String> {
    if entity == "accounts" {
        return match asked {
            None | Some("group_id") => Ok("group_id".into()),
            Some(t) => Err(ExportError::Invalid(format!(
                "an account audience has one identifier type, `group_id` (the account id); \
                 --id-type {t} does not apply"
            ))),
        };
    }
    let t = asked.unwrap_or("email");
    let types: Vec<&str> = space
        .identity
        .identifiers
        .iter()
        .map(|d| d.id_type.as_str())
        .filter(|t| *t != "group_id")
        .collect();
    if types.contains(&t) {
        Ok(t.to_string())
    } else {
        Err(ExportError::Invalid(format!(
            "space `{}` has no identifier type `{t}`{}; its types: {}",
            space.name,
            did_you_mean(t, &types),
            types.join(", ")
        )))
    }
}

/// `member_id, id_type, id_value` of every member of `key` (one row per identifier, one
/// row with null type and value for a member without any), optionally of one type only.
pub(super) fn pairs(
    ctx: &SessionContext,
    p: &Published,
    key: &str,
    entity: &str,
    only: Option<&str>,
) -> ExportResult<DataFrame> {
    let members = ctx
        .read_table(p.membership.clone())?
        .filter(col("audience_key").eq(lit(key)))?
        .select(vec![col("profile_id").alias("member_id")])?;
    if entity == "accounts" {
        return Ok(members.select(vec![
            col("member_id"),
            lit("group_id").alias("id_type"),
            col("member_id").alias("id_value"),
        ])?);
    }
    let mut ids = ctx.read_table(p.identities.clone())?.select(vec![
        col("profile_id"),
        col("id_type"),
        col("id_value"),
    ])?;
    if let Some(t) = only {
        ids = ids.filter(col("id_type").eq(lit(t)))?;
    }
    Ok(members
        .join(ids, JoinType::Left, &["member_id"], &["profile_id"], None)?
        .select(vec![col("member_id"), col("id_type"), col("id_value")])?)
}

/// The indexed layout's identifier columns: each type the members have, with the most
/// values one member has of it, types in alphabetical order.
pub(super) async fn index_columns(pairs: DataFrame) -> ExportResult<Vec<(String, usize)>> {
    let batches = pairs
        .filter(col("id_type").is_not_null())?
        .aggregate(
            vec![col("member_id"), col("id_type")],
            vec![count(lit(1)).alias("n")],
        )?
        .aggregate(vec![col("id_type")], vec![max(col("n")).alias("n")])?
        .select(vec![
            cast(col("id_type"), DataType::Utf8).alias("id_type"),
            col("n"),
        ])?
        .collect()
        .await?;
    let mut out = Vec::new();
    for b in &batches {
        let t = b.column(0).as_string::<i32>();
        let n = b.column(1).as_primitive::<Int64Type>();
        for i in 0..b.num_rows() {
            out.push((t.value(i).to_string(), n.value(i) as usize));
        }
    }
    out.sort();
    Ok(out)
}
