//! The Profile API's live layer: a collecting space's live values (see `crate::live`) laid
//! over the published index, and the answers for a profile that exists only live so far (its
//! first events arrived after the last batch run).

use std::sync::Arc;

use axum::extract::rejection::PathRejection;
use axum::extract::{Path, RawQuery, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::params::{Params, bad_path};
use super::{ApiState, authorize};
use crate::serve::api_errors::ApiError;

use crate::live::{LiveClass, LiveProfile};
use crate::serve::index::{TraitClass, json_value, rfc3339};

/// Replaces the live-evaluated traits and audiences of `every` with `l`'s values (a value that
/// is null live is removed, as the index leaves nulls out).
pub(super) fn overlay(every: &mut Vec<(String, TraitClass, Value)>, l: &LiveProfile) {
    let schema = l.row.schema();
    for (name, class) in l.traits.iter() {
        let Ok(i) = schema.index_of(name) else {
            continue;
        };
        every.retain(|(k, _, _)| k != name);
        if let Some(v) = json_value(l.row.column(i), 0) {
            let class = match class {
                LiveClass::Custom => TraitClass::Custom,
                LiveClass::Computed => TraitClass::ComputedTrait,
                LiveClass::Sql => TraitClass::SqlTrait,
            };
            every.push((name.clone(), class, v));
        }
    }
    for (a, member) in &l.audiences {
        let published = every
            .iter()
            .position(|(k, c, _)| k == a && *c == TraitClass::Audience);
        // `audiences` holds members and those that left live: the index's entries too.
        match published {
            Some(p) => every[p].2 = Value::Bool(*member),
            None => every.push((a.clone(), TraitClass::Audience, Value::Bool(*member))),
        }
    }
}

/// `external_ids`, `metadata`, `events` and `links` of a profile the published run does not
/// have yet.
pub(super) fn live_only(l: &LiveProfile, what: &str, collection: &str) -> Value {
    match what {
        "external_ids" => {
            let mut ids = l.identifiers.clone();
            ids.sort();
            json!({
                "data": ids.iter().map(|(t, v)| json!({
                    "id": v,
                    "type": t,
                    "collection": collection,
                    "created_at": Value::Null,
                    "encoding": "none",
                    "source_id": Value::Null,
                })).collect::<Vec<_>>(),
                "cursor": {"url": "", "has_more": false, "next": ""},
            })
        }
        "metadata" => json!({"metadata": {
            "created_at": Value::Null,
            "updated_at": rfc3339(l.updated_at),
            "expires_at": Value::Null,
            "first_message_at": Value::Null,
            "last_message_at": Value::Null,
            "last_source_id": Value::Null,
            "last_identify_at": Value::Null,
            "profile_id": l.profile_id,
        }}),
        _ => json!({"data": [], "cursor": {"url": "", "has_more": false, "next": ""}}),
    }
}

/// `GET /v1/spaces/{space}/live`: the live engine's state and its last entries and exits
/// (`limit`, default 10); 404 when the space does not collect.
pub(super) async fn status(
    State(st): State<Arc<ApiState>>,
    path: Result<Path<String>, PathRejection>,
    RawQuery(raw): RawQuery,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let Path(space) = path.map_err(bad_path)?;
    let p = Params::parse(raw.as_deref())?;
    let s = authorize(&st, &space, &headers)?;
    let limit = p.limit()?;
    let Some(l) = s.live() else {
        return Err(ApiError::not_found(format!(
            "space `{space}` has no live definitions: give a source `write_keys` in its \
             space.yaml so that `cohort serve` collects its events"
        )));
    };
    let changes: Vec<Value> = l
        .last_changes(limit)
        .into_iter()
        .map(|c| {
            json!({
                "audience": c.audience,
                "profile_id": c.profile_id,
                "change": if c.entered { "entered" } else { "exited" },
                "at": rfc3339(c.at),
                "identifiers": c.identifiers,
            })
        })
        .collect();
    Ok(axum::Json(json!({"live": l.status(), "changes": changes})).into_response())
}
