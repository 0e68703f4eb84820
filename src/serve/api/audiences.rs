//! The audience pages' endpoints: the list (size, entered / exited in the last run, size over
//! runs), one audience (definition, overlaps and sample members from the index; size per
//! top-level condition and "why is this profile in / out" from the preview path), its CSV in
//! Segment's three formats (streamed, as `cohort export` writes it), and the builder's
//! parse-as-you-type and preview of a query not saved. Nothing here publishes.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::rejection::{JsonRejection, PathRejection};
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use futures::StreamExt;
use serde_json::{Value, json};

use super::explorer::{engine_error, published, query};
use super::params::bad_path;
use super::{ApiSpace, ApiState, authorize};
use crate::read::RunOptions;
use crate::read::history::RunSummary;
use crate::serve::api_errors::ApiError;
use crate::serve::export::{ExportError, ExportFormat, ExportOptions, Hash};
use crate::serve::index::{Collection, SpaceIndex, rfc3339};
use crate::spec::{AudienceDef, EntityType, Loc};

/// Sample members an audience page shows.
const SAMPLES: usize = 10;
/// Runs the size-over-runs chart covers.
const CHART_RUNS: usize = 30;

async fn runs(s: &ApiSpace) -> Result<Vec<RunSummary>, ApiError> {
    crate::read::history::runs(&s.served.space)
        .await
        .map_err(engine_error)
}

fn entity_of(s: &ApiSpace, key: &str) -> Option<EntityType> {
    s.served
        .space
        .audiences
        .iter()
        .find(|a| a.key == key)
        .map(|a| a.entity)
}

fn collection(ix: &SpaceIndex, entity: EntityType) -> &Collection {
    match entity {
        EntityType::Users => &ix.users,
        EntityType::Accounts => &ix.accounts,
    }
}

/// `(as_of, members)` of `key` over the succeeded runs, oldest first.
fn history(runs: &[RunSummary], key: &str) -> Vec<Value> {
    let mut h: Vec<Value> = runs
        .iter()
        .filter(|r| r.status == "succeeded")
        .filter_map(|r| {
            r.audiences
                .get(key)
                .map(|(m, e, x)| json!({"as_of": rfc3339(r.as_of), "members": m, "entered": e, "exited": x}))
        })
        .take(CHART_RUNS)
        .collect();
    h.reverse();
    h
}

/// `GET /v1/spaces/{space}/audiences`.
pub(super) async fn list(
    State(st): State<Arc<ApiState>>,
    path: Result<Path<String>, PathRejection>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let Path(space) = path.map_err(bad_path)?;
    let s = authorize(&st, &space, &headers)?;
    let ix = published(&s)?;
    let runs = runs(&s).await?;
    let last = runs.iter().find(|r| r.status == "succeeded");
    let data: Vec<Value> = s
        .served
        .space
        .audiences
        .iter()
        .map(|a| {
            let in_run = last.and_then(|r| r.audiences.get(&a.key));
            // An audience the run evaluated has a size even when nobody is in it; one added
            // since has none yet.
            let size = collection(&ix, a.entity)
                .members(&a.key)
                .map(|m| m.len() as u64)
                .or(in_run.map(|(m, _, _)| *m));
            let (entered, exited) = in_run.map_or((None, None), |(_, e, x)| (Some(*e), Some(*x)));
            json!({
                "key": a.key, "name": a.name, "entity": entity_name(a.entity),
                "description": a.description, "size": size,
                "entered": entered, "exited": exited,
                "history": history(&runs, &a.key),
            })
        })
        .collect();
    Ok(
        axum::Json(json!({"run_id": ix.run_id, "as_of": rfc3339(ix.as_of), "data": data}))
            .into_response(),
    )
}

fn entity_name(e: EntityType) -> &'static str {
    match e {
        EntityType::Users => "users",
        EntityType::Accounts => "accounts",
    }
}

/// Members of both sorted row lists.
fn both(a: &[u32], b: &[u32]) -> usize {
    let (mut i, mut j, mut n) = (0, 0, 0);
    while i < a.len() && j < b.len() {
        match a[i].cmp(&b[j]) {
            std::cmp::Ordering::Less => i += 1,
            std::cmp::Ordering::Greater => j += 1,
            std::cmp::Ordering::Equal => {
                n += 1;
                i += 1;
                j += 1;
            }
        }
    }
    n
}

/// `GET /v1/spaces/{space}/audiences/{key}`: definition, size, overlaps, sample members and
/// size over runs, all from published data.
pub(super) async fn one(
    State(st): State<Arc<ApiState>>,
    path: Result<Path<(String, String)>, PathRejection>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let Path((space, key)) = path.map_err(bad_path)?;
    let s = authorize(&st, &space, &headers)?;
    let ix = published(&s)?;
    let Some(def) = s.served.space.audiences.iter().find(|a| a.key == key) else {
        return Err(ApiError::not_found(format!(
            "no audience `{key}` in the space"
        )));
    };
    let c = collection(&ix, def.entity);
    let members = c.members(&key).unwrap_or_default();
    let overlaps: Vec<Value> = s
        .served
        .space
        .audiences
        .iter()
        .filter(|o| o.key != key && o.entity == def.entity)
        .map(|o| {
            let other = c.members(&o.key).unwrap_or_default();
            json!({"key": o.key, "name": o.name, "size": other.len(), "both": both(members, other)})
        })
        .collect();
    let samples: Vec<Value> = members
        .iter()
        .take(SAMPLES)
        .map(|&row| {
            let ids: Vec<String> = c
                .external_ids(row)
                .iter()
                .take(4)
                .map(|e| format!("{}:{}", e.id_type, e.id_value))
                .collect();
            json!({"id": c.ids[row as usize], "identifiers": ids})
        })
        .collect();
    let runs = runs(&s).await?;
    Ok(axum::Json(json!({
        "key": def.key, "name": def.name, "entity": entity_name(def.entity),
        "description": def.description, "query": def.query,
        "file": def.file.display().to_string(),
        "destinations": def.destinations, "schedule": def.schedule,
        "include_anonymous": def.include_anonymous,
        "run_id": ix.run_id, "as_of": rfc3339(ix.as_of),
        "size": members.len(), "total": c.len(),
        "overlaps": overlaps, "samples": samples,
        "history": history(&runs, &key),
    }))
    .into_response())
}

/// Evaluation options at the published run's as-of, so previews match what the pages show.
fn at_published(ix: &SpaceIndex) -> RunOptions {
    RunOptions {
        as_of: Some(ix.as_of),
        ..Default::default()
    }
}

/// `GET /v1/spaces/{space}/audiences/{key}/conditions`: the size of each top-level condition
/// (the preview path: evaluated, not published).
pub(super) async fn conditions(
    State(st): State<Arc<ApiState>>,
    path: Result<Path<(String, String)>, PathRejection>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let Path((space, key)) = path.map_err(bad_path)?;
    let s = authorize(&st, &space, &headers)?;
    let ix = published(&s)?;
    let _one = s.heavy.acquire().await;
    let r = crate::read::preview::preview(&s.served.space, &key, &at_published(&ix))
        .await
        .map_err(engine_error)?;
    Ok(axum::Json(json!(r)).into_response())
}

/// `GET /v1/spaces/{space}/audiences/{key}/explain?id=type:value`: why that profile is in or
/// out, condition by condition.
pub(super) async fn explain(
    State(st): State<Arc<ApiState>>,
    path: Result<Path<(String, String)>, PathRejection>,
    RawQuery(raw): RawQuery,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let Path((space, key)) = path.map_err(bad_path)?;
    let q = query(raw.as_deref())?;
    let s = authorize(&st, &space, &headers)?;
    let ix = published(&s)?;
    let id = q.get("id").map(|v| v.trim()).unwrap_or_default();
    let Some((t, v)) = id
        .split_once(':')
        .filter(|(t, v)| !t.is_empty() && !v.is_empty())
    else {
        return Err(ApiError::bad_request(format!(
            "`id` `{id}` is not an identifier: use `<type>:<value>`, e.g. `email:ada@example.com`"
        )));
    };
    if entity_of(&s, &key).is_none() {
        return Err(ApiError::not_found(format!(
            "no audience `{key}` in the space"
        )));
    }
    let _one = s.heavy.acquire().await;
    // Its future is not `Send` (it holds DataFusion streams across awaits): a thread of its own.
    let (space, opts, t, v) = (
        s.served.space.clone(),
        at_published(&ix),
        t.to_string(),
        v.to_string(),
    );
    let ex = tokio::task::spawn_blocking(move || {
        tokio::runtime::Handle::current().block_on(crate::read::preview::explain_audience(
            &space, &key, &t, &v, &opts,
        ))
    })
    .await
    .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", e.to_string()))?
    .map_err(engine_error)?;
    Ok(axum::Json(json!(ex)).into_response())
}

/// `GET /v1/spaces/{space}/audiences/{key}/export?format=unformatted|indexed|single`
/// (`id_type=`, `hash=sha256|none` for `single`): the CSV `cohort export` writes, streamed.
pub(super) async fn export(
    State(st): State<Arc<ApiState>>,
    path: Result<Path<(String, String)>, PathRejection>,
    RawQuery(raw): RawQuery,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let Path((space, key)) = path.map_err(bad_path)?;
    let q = query(raw.as_deref())?;
    let s = authorize(&st, &space, &headers)?;
    let invalid = |e: ExportError| match e {
        ExportError::Invalid(m) => ApiError::bad_request(m),
        ExportError::NotFound(m) => ApiError::not_found(m),
        other => ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            other.to_string(),
        ),
    };
    let format = ExportFormat::parse(q.get("format").map_or("unformatted", String::as_str))
        .map_err(invalid)?;
    let mut opts = ExportOptions::new(format);
    opts.id_type = q.get("id_type").cloned();
    opts.hash = q
        .get("hash")
        .map(|h| Hash::parse(h))
        .transpose()
        .map_err(invalid)?;
    let csv = crate::serve::export::open(&s.served.space, &key, &opts)
        .await
        .map_err(invalid)?;
    let name = format!("{key}-{}.csv", format.as_str());
    let body = Body::from_stream(csv.into_stream().map(|r| r.map(axum::body::Bytes::from)));
    Ok((
        [
            (header::CONTENT_TYPE, "text/csv; charset=utf-8".to_string()),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"{name}\""),
            ),
        ],
        body,
    )
        .into_response())
}

/// What the builder sends.
#[derive(serde::Deserialize)]
pub(super) struct Draft {
    query: String,
    #[serde(default)]
    entity: Option<String>,
}

impl Draft {
    fn entity(&self) -> Result<EntityType, ApiError> {
        match self.entity.as_deref() {
            None | Some("users") => Ok(EntityType::Users),
            Some("accounts") => Ok(EntityType::Accounts),
            Some(o) => Err(ApiError::bad_request(format!(
                "`entity` `{o}` is not `users` or `accounts`"
            ))),
        }
    }
}

/// The query's parse error, with where it is (byte span, 1-based line and column in
/// characters), or None when it parses as an audience condition.
fn parse_problem(d: &Draft, entity: EntityType) -> Option<Value> {
    let e = crate::spec::query::parse_audience_query(&d.query, entity).err()?;
    let mut start = e.span.start.min(d.query.len());
    while !d.query.is_char_boundary(start) {
        start -= 1;
    }
    let before = &d.query[..start];
    let line = before.matches('\n').count() + 1;
    let column = before
        .rsplit('\n')
        .next()
        .unwrap_or_default()
        .chars()
        .count()
        + 1;
    Some(json!({
        "message": e.message, "help": e.help,
        "start": e.span.start, "end": e.span.end, "line": line, "column": column,
    }))
}

fn draft(body: Result<axum::Json<Draft>, JsonRejection>) -> Result<Draft, ApiError> {
    body.map(|b| b.0).map_err(|r| {
        ApiError::bad_request(format!(
            "the body must be JSON like {{\"query\": \"...\", \"entity\": \"users\"}}: {}",
            r.body_text()
        ))
    })
}

/// `POST /v1/spaces/{space}/parse` `{"query", "entity"}`: whether it parses, as you type.
pub(super) async fn parse(
    State(st): State<Arc<ApiState>>,
    path: Result<Path<String>, PathRejection>,
    headers: HeaderMap,
    body: Result<axum::Json<Draft>, JsonRejection>,
) -> Result<Response, ApiError> {
    let Path(space) = path.map_err(bad_path)?;
    authorize(&st, &space, &headers)?;
    let d = draft(body)?;
    let problem = parse_problem(&d, d.entity()?);
    Ok(axum::Json(json!({"ok": problem.is_none(), "error": problem})).into_response())
}

/// `POST /v1/spaces/{space}/preview` `{"query", "entity"}`: the size, size per condition,
/// overlaps and sample members of an audience not saved, evaluated at the published run's
/// as-of; nothing is published. A query that does not parse answers 400 with `at`.
pub(super) async fn preview(
    State(st): State<Arc<ApiState>>,
    path: Result<Path<String>, PathRejection>,
    headers: HeaderMap,
    body: Result<axum::Json<Draft>, JsonRejection>,
) -> Result<Response, ApiError> {
    let Path(space) = path.map_err(bad_path)?;
    let s = authorize(&st, &space, &headers)?;
    let d = draft(body)?;
    let entity = d.entity()?;
    if let Some(p) = parse_problem(&d, entity) {
        return Ok((
            StatusCode::BAD_REQUEST,
            axum::Json(json!({"error": {"code": "bad_query", "message": p["message"]}, "at": p})),
        )
            .into_response());
    }
    let ix = published(&s)?;
    let mut key = "preview".to_string();
    while s.served.space.audiences.iter().any(|a| a.key == key) {
        key.push('_');
    }
    let def = AudienceDef {
        key: key.clone(),
        file: format!("audiences/{key}.yaml").into(),
        name: "Preview".into(),
        query: d.query.clone(),
        query_loc: Loc::file_start(format!("audiences/{key}.yaml")),
        entity,
        include_anonymous: true,
        destinations: Vec::new(),
        schedule: None,
        description: None,
        backfill: true,
        first_seen: None,
    };
    let space = crate::read::preview::with_audience(&s.served.space, def);
    let _one = s.heavy.acquire().await;
    let r = crate::read::preview::preview(&space, &key, &at_published(&ix))
        .await
        .map_err(engine_error)?;
    Ok(axum::Json(json!(r)).into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn problem(query: &str) -> Option<Value> {
        let d = Draft {
            query: query.into(),
            entity: None,
        };
        parse_problem(&d, EntityType::Users)
    }

    #[test]
    fn a_parse_error_says_its_line_and_column_in_characters() {
        assert_eq!(problem("event('Order Completed').count() >= 2"), None);
        let p = problem("event('Order Completed').count( >= 2").unwrap();
        assert_eq!(
            (p["line"].as_u64(), p["column"].as_u64()),
            (Some(1), Some(33)),
            "{p}"
        );
        // On a later line, after characters of more than one byte.
        let p = problem("trait('café') = 'é' AND\n  event('x').count( >= 2").unwrap();
        assert_eq!(
            (p["line"].as_u64(), p["column"].as_u64()),
            (Some(2), Some(21)),
            "{p}"
        );
        // Quantifiers are for account audiences.
        let p = problem("ANY(trait('plan') = 'pro')").unwrap();
        assert_eq!(p["line"], 1, "{p}");
    }

    #[test]
    fn overlaps_count_the_rows_both_lists_hold() {
        assert_eq!(both(&[1, 3, 5, 9], &[2, 3, 4, 9, 10]), 2);
        assert_eq!(both(&[], &[1]), 0);
        assert_eq!(both(&[7], &[7]), 1);
    }
}
