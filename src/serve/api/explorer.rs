//! The Profile Explorer's endpoints (what the web app's profile pages read): which spaces a
//! token opens, search by any identifier, one profile whole (identifiers with first and last
//! seen, typed traits with their definitions, audiences with `entered_at`, accounts, recent
//! events) and the identity explanation of a profile. Everything but the identity explanation
//! is read from the space's index; that one reads the published tables as `cohort explain
//! identity` does.

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::rejection::PathRejection;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use datafusion::arrow::datatypes::DataType;
use serde_json::{Value, json};

use super::params::bad_path;
use super::{ApiSpace, ApiState, authorize};
use crate::error::EngineError;
use crate::serve::api_errors::ApiError;
use crate::serve::index::{Collection, SpaceIndex, TraitClass, parse_json, rfc3339};

/// Search answers at most this many profiles.
const SEARCH_LIMIT: usize = 50;
/// A profile page lists at most this many events per page.
const EVENTS_PAGE: usize = 50;

/// The query string as a map (a parameter given twice is an error).
pub(super) fn query(raw: Option<&str>) -> Result<HashMap<String, String>, ApiError> {
    let mut out = HashMap::new();
    for (k, v) in url::form_urlencoded::parse(raw.unwrap_or_default().as_bytes()) {
        if out.insert(k.to_string(), v.into_owned()).is_some() {
            return Err(ApiError::bad_request(format!(
                "`{k}` is given more than once; give each parameter once"
            )));
        }
    }
    Ok(out)
}

/// An engine error as the API answers it: the user's mistakes are 400 / 404, the rest 500.
pub(super) fn engine_error(e: EngineError) -> ApiError {
    match e {
        EngineError::NotFound(m) => ApiError::not_found(m),
        EngineError::InvalidInput(m) | EngineError::Definition(m) => ApiError::bad_request(m),
        other => ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            other.to_string(),
        ),
    }
}

/// The index of a space that has published, or 404 (every index-reading endpoint's answer).
pub(super) fn published(s: &ApiSpace) -> Result<Arc<SpaceIndex>, ApiError> {
    s.index().ok_or_else(|| {
        ApiError::not_found(format!(
            "space `{}` has not published a run yet",
            s.served.name()
        ))
    })
}

/// `GET /v1/whoami`: the spaces the presented token opens (the web app's sign-in).
pub(super) async fn whoami(State(st): State<Arc<ApiState>>, headers: HeaderMap) -> Response {
    let mut spaces: Vec<Value> = Vec::new();
    let mut names: Vec<&String> = st.spaces.keys().collect();
    names.sort();
    for name in names {
        if let Ok(s) = authorize(&st, name, &headers) {
            let ix = s.index();
            spaces.push(json!({
                "name": name,
                "run_id": ix.as_ref().map(|i| i.run_id.clone()),
                "as_of": ix.as_ref().map(|i| rfc3339(i.as_of)),
                "profiles": ix.as_ref().map(|i| i.users.len()),
                "accounts": ix.as_ref().map(|i| i.accounts.len()),
                "scheduler": st.trigger.is_some(),
            }));
        }
    }
    if spaces.is_empty() {
        return ApiError::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "the token opens no space: use HTTP Basic auth with a space's token as the user name",
        )
        .into_response();
    }
    axum::Json(json!({ "spaces": spaces })).into_response()
}

/// The identifier types a bare search value is tried as, in the space's priority order, as
/// identity.yaml names them ([`super::params::identifier`] normalizes the value by that name
/// and maps it to its column).
fn id_types(s: &ApiSpace) -> Vec<String> {
    s.served
        .space
        .identity
        .identifiers
        .iter()
        .map(|i| i.id_type.clone())
        .collect()
}

/// `GET /v1/spaces/{space}/search?q=`: `type:value` looks up that identifier; a bare value is
/// tried as every identifier type, as a profile id and as an account id.
pub(super) async fn search(
    State(st): State<Arc<ApiState>>,
    path: Result<Path<String>, PathRejection>,
    RawQuery(raw): RawQuery,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let Path(space) = path.map_err(bad_path)?;
    let q = query(raw.as_deref())?;
    let s = authorize(&st, &space, &headers)?;
    let ix = published(&s)?;
    let text = q.get("q").map(|v| v.trim()).unwrap_or_default();
    if text.is_empty() {
        return Err(ApiError::bad_request(
            "give `q`: an identifier (`email:ada@example.com`) or a bare value",
        ));
    }
    let types = id_types(&s);
    let mut tries: Vec<(bool, String, String)> = Vec::new();
    match text.split_once(':') {
        Some((t, v)) if types.contains(&t.trim().to_lowercase()) => {
            let (t, v) = super::params::identifier(&s, &format!("{t}:{v}"), false)?;
            tries.push((false, t, v));
        }
        Some((t, v)) if t.trim().eq_ignore_ascii_case("group_id") => {
            tries.push((true, "group_id".into(), v.trim().to_string()));
        }
        _ => {
            for t in &types {
                if let Ok((t, v)) = super::params::identifier(&s, &format!("{t}:{text}"), false) {
                    tries.push((false, t, v));
                }
            }
            tries.push((true, "group_id".into(), text.to_string()));
        }
    }
    let mut found: Vec<Value> = Vec::new();
    let mut seen = std::collections::HashSet::new();
    let mut add = |accounts: bool, c: &Collection, row: u32, matched: String| {
        if found.len() < SEARCH_LIMIT && seen.insert((accounts, row)) {
            found.push(summary(c, row, accounts, &matched));
        }
    };
    for (accounts, t, v) in &tries {
        let c = if *accounts { &ix.accounts } else { &ix.users };
        if let Some(row) = c.find(t, v) {
            add(*accounts, c, row, format!("{t}:{v}"));
        }
    }
    if let Some(row) = ix.users.row_of_id(text) {
        add(false, &ix.users, row, format!("profile_id:{text}"));
    }
    Ok(axum::Json(json!({ "query": text, "data": found })).into_response())
}

/// One search hit.
fn summary(c: &Collection, row: u32, accounts: bool, matched: &str) -> Value {
    let ids: Vec<String> = c
        .external_ids(row)
        .iter()
        .take(6)
        .map(|e| format!("{}:{}", e.id_type, e.id_value))
        .collect();
    json!({
        "collection": if accounts { "accounts" } else { "users" },
        "id": c.ids[row as usize],
        "matched": matched,
        "identifiers": ids,
        "identifier_count": c.external_ids(row).len(),
        "last_seen": c.last_seen[row as usize].map(rfc3339),
    })
}

/// A column's type as the page shows it.
fn type_name(t: &DataType) -> &'static str {
    match t {
        DataType::Boolean => "boolean",
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => "text",
        DataType::Timestamp(_, _) | DataType::Date32 | DataType::Date64 => "timestamp",
        DataType::List(_) | DataType::LargeList(_) => "list",
        t if t.is_integer() => "integer",
        t if t.is_numeric() => "number",
        _ => "other",
    }
}

/// Where a trait column is defined: its file and its query (or SQL).
fn definition(s: &ApiSpace, name: &str, class: TraitClass, accounts: bool) -> Value {
    let sp = &s.served.space;
    match class {
        TraitClass::ComputedTrait => sp
            .traits
            .iter()
            .find(|t| t.key == name && (t.entity == crate::spec::EntityType::Accounts) == accounts)
            .map_or(
                Value::Null,
                |t| json!({"file": t.file.display().to_string(), "query": t.query}),
            ),
        TraitClass::SqlTrait => {
            // A SQL trait's query names its columns; the one that names this column.
            let word = |sql: &str| {
                sql.to_lowercase()
                    .split(|c: char| !(c.is_alphanumeric() || c == '_'))
                    .any(|w| w == name.to_lowercase())
            };
            sp.sql_traits.iter().find(|t| word(&t.sql)).map_or(
                Value::Null,
                |t| json!({"file": t.file.display().to_string(), "query": t.sql, "key": t.key}),
            )
        }
        _ => Value::Null,
    }
}

/// `GET /v1/spaces/{space}/{collection}/{id}`: everything the profile page shows of one
/// profile (`users`, by profile id) or account (`accounts`, by account id); `events_next`
/// pages the events.
pub(super) async fn page(
    State(st): State<Arc<ApiState>>,
    path: Result<Path<(String, String, String)>, PathRejection>,
    RawQuery(raw): RawQuery,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let Path((space, collection, id)) = path.map_err(bad_path)?;
    let q = query(raw.as_deref())?;
    let s = authorize(&st, &space, &headers)?;
    let ix = published(&s)?;
    let accounts = match collection.as_str() {
        "users" => false,
        "accounts" => true,
        other => {
            return Err(ApiError::not_found(format!(
                "`{other}` not found: use `users` or `accounts`"
            )));
        }
    };
    let c = if accounts { &ix.accounts } else { &ix.users };
    let Some(row) = c.row_of_id(&id) else {
        return Err(ApiError::not_found(format!(
            "no {} `{id}` in the published run",
            if accounts { "account" } else { "profile" }
        )));
    };
    let offset: usize = match q.get("events_next") {
        None => 0,
        Some(n) => n
            .parse()
            .map_err(|_| ApiError::bad_request(format!("`events_next` `{n}` is not a number")))?,
    };
    let r = row as usize;
    let identifiers: Vec<Value> = c
        .external_ids(row)
        .iter()
        .map(|e| {
            json!({"type": e.id_type, "value": e.id_value,
                   "first_seen": e.first_seen.map(rfc3339), "last_seen": e.last_seen.map(rfc3339)})
        })
        .collect();
    let mut traits: Vec<Value> = Vec::new();
    for t in &c.traits {
        if let Some(v) = crate::serve::index::json_value(&t.values, r) {
            traits.push(json!({
                "name": t.name,
                "class": t.class.as_str(),
                "type": type_name(t.values.data_type()),
                "value": v,
                "definition": definition(&s, &t.name, t.class, accounts),
            }));
        }
    }
    let audiences: Vec<Value> = c
        .memberships(row)
        .iter()
        .map(|m| {
            let key = &c.audience_keys[m.audience as usize];
            let name = s
                .served
                .space
                .audiences
                .iter()
                .find(|a| &a.key == key)
                .map(|a| a.name.clone());
            json!({"key": key, "name": name, "member": m.member,
                   "entered_at": m.entered_at.map(rfc3339)})
        })
        .collect();
    let all_events = c.events(row);
    let end = offset.saturating_add(EVENTS_PAGE).min(all_events.len());
    let events: Vec<Value> = all_events
        .get(offset.min(end)..end)
        .unwrap_or_default()
        .iter()
        .map(|e| {
            json!({"message_id": e.message_id, "type": e.kind, "event": e.event,
                   "timestamp": rfc3339(e.timestamp), "properties": parse_json(&e.properties),
                   "traits": parse_json(&e.traits), "context": parse_json(&e.context)})
        })
        .collect();
    Ok(axum::Json(json!({
        "collection": collection,
        "id": id,
        "run_id": ix.run_id,
        "as_of": rfc3339(ix.as_of),
        "first_seen": c.first_seen[r].map(rfc3339),
        "last_seen": c.last_seen[r].map(rfc3339),
        "identifiers": identifiers,
        "traits": traits,
        "audiences": audiences,
        "links": c.links(row),
        "events": events,
        "events_total": all_events.len(),
        "events_next": (end < all_events.len()).then(|| end.to_string()),
    }))
    .into_response())
}

/// `GET /v1/spaces/{space}/users/{profile id}/identity`: why the profile's identifiers are one
/// profile (the graph of the events that joined them) and what was set aside on the way.
pub(super) async fn identity(
    State(st): State<Arc<ApiState>>,
    path: Result<Path<(String, String)>, PathRejection>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let Path((space, id)) = path.map_err(bad_path)?;
    let s = authorize(&st, &space, &headers)?;
    let ix = published(&s)?;
    let Some(row) = ix.users.row_of_id(&id) else {
        return Err(ApiError::not_found(format!(
            "no profile `{id}` in the published run"
        )));
    };
    let Some(first) = ix.users.external_ids(row).first() else {
        return Ok(axum::Json(json!({
            "profile_id": id, "identifiers": [], "joins": [], "set_aside": [],
            "note": "this profile was started by a SQL trait: no event has carried its identifier yet",
        }))
        .into_response());
    };
    let ex =
        crate::read::explain::explain_identity(&s.served.space, &first.id_type, &first.id_value)
            .await
            .map_err(engine_error)?;
    Ok(axum::Json(json!({
        "profile_id": ex.profile_id,
        "run_id": ex.run_id,
        "as_of": ex.as_of,
        "identifiers": ex.identifiers,
        "joins": ex.joins,
        "set_aside": ex.set_aside,
    }))
    .into_response())
}
