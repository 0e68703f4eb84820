//! The profile endpoints: `/v1/spaces/{space}/collections/{collection}/profiles/{id}/{what}`
//! for traits, external ids, events, metadata and links, read from the space's index.

use std::sync::Arc;

use axum::extract::rejection::PathRejection;
use axum::extract::{Path, RawQuery, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value, json};

use super::params::{Params, bad_path, cursor, external_id_json, identifier, paginate, parse_time};
use super::{ApiState, PATH_SEGMENT, authorize};
use crate::serve::api_errors::ApiError;
use crate::serve::index::{Collection, SpaceIndex, TraitClass, parse_json, rfc3339};

pub(super) async fn profile(
    State(st): State<Arc<ApiState>>,
    path: Result<Path<(String, String, String, String)>, PathRejection>,
    RawQuery(raw): RawQuery,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let Path((space, collection, id, what)) = path.map_err(bad_path)?;
    let p = Params::parse(raw.as_deref())?;
    let s = authorize(&st, &space, &headers)?;
    let accounts = match collection.as_str() {
        "users" => false,
        "accounts" => true,
        other => {
            return Err(ApiError::not_found(format!(
                "collection `{other}` not found: use `users` or `accounts`"
            )));
        }
    };
    if !matches!(
        what.as_str(),
        "traits" | "external_ids" | "events" | "metadata" | "links"
    ) {
        return Err(ApiError::not_found(format!(
            "`{what}` not found: use traits, external_ids, events, metadata or links"
        )));
    }
    let limit = p.limit()?;
    let (t, v) = identifier(&s, &id, accounts)?;
    let ix = super::explorer::published(&s)?;
    let c = if accounts { &ix.accounts } else { &ix.users };
    // Live values (users of a collecting space): an identifier seen live, or the indexed
    // profile's live row.
    let view = if accounts { None } else { s.live() };
    let found = c.find(&t, &v);
    let live = view.as_ref().and_then(|w| {
        w.find(&t, &v)
            .or_else(|| found.and_then(|r| w.profile(&c.ids[r as usize])))
    });
    // A profile that a live merge folded into another is read through the one it is part of.
    let row = match &live {
        Some(l) => c.row_of_id(&l.profile_id),
        None => found,
    };
    if row.is_none() && live.is_none() {
        return Err(ApiError::not_found(format!("profile `{t}:{v}` not found")));
    }
    let path = format!(
        "/v1/spaces/{space}/collections/{collection}/profiles/{}/{what}",
        percent_encoding::utf8_percent_encode(&id, PATH_SEGMENT)
    );
    let body = match (what.as_str(), row) {
        ("traits", _) => {
            let mut every: Vec<(String, TraitClass, Value)> = row
                .map(|r| {
                    c.traits_of(r)
                        .into_iter()
                        .map(|(k, cl, v)| (k.to_string(), cl, v))
                        .collect()
                })
                .unwrap_or_default();
            let mut updated = ix.as_of;
            if let Some(l) = &live {
                super::live::overlay(&mut every, l);
                updated = l.updated_at;
            }
            traits(every, &p, limit, updated, &path, raw.as_deref())?
        }
        (_, None) => {
            let l = live
                .as_ref()
                .expect("a live profile when the index has none");
            super::live::live_only(l, &what, &collection)
        }
        ("external_ids", Some(row)) => {
            let want = Params::list(&p.include);
            let all: Vec<&crate::serve::index::ExternalId> = c
                .external_ids(row)
                .iter()
                .filter(|e| want.as_ref().is_none_or(|w| w.contains(&e.id_type)))
                .collect();
            let (page, next) = paginate(&all, p.offset()?, limit);
            json!({
                "data": page.iter().map(|e| external_id_json(e, &collection)).collect::<Vec<_>>(),
                "cursor": cursor(&path, raw.as_deref(), next),
            })
        }
        ("events", Some(row)) => events(c, row, &p, limit, &collection, &path, raw.as_deref())?,
        ("metadata", Some(row)) => {
            let r = row as usize;
            json!({"metadata": {
                "created_at": c.first_seen[r].map(rfc3339),
                "updated_at": rfc3339(live.as_ref().map_or(ix.as_of, |l| l.updated_at)),
                "expires_at": Value::Null,
                "first_message_at": c.first_seen[r].map(rfc3339),
                "last_message_at": c.last_seen[r].map(rfc3339),
                "last_source_id": Value::Null,
                "last_identify_at": Value::Null,
                "profile_id": c.ids[r],
            }})
        }
        (_, Some(row)) => links(&ix, accounts, row, &p, limit, &path, raw.as_deref())?,
    };
    Ok(axum::Json(body).into_response())
}

fn traits(
    mut every: Vec<(String, TraitClass, Value)>,
    p: &Params,
    limit: usize,
    updated_at: chrono::DateTime<chrono::Utc>,
    path: &str,
    raw: Option<&str>,
) -> Result<Value, ApiError> {
    if let Some(class) = &p.class
        && class != "audience"
        && class != "computed_trait"
    {
        return Err(ApiError::bad_request(format!(
            "class must be `audience` or `computed_trait`, not `{class}`"
        )));
    }
    let include = Params::list(&p.include);
    let after = p.next.clone().filter(|n| !n.is_empty());
    every.sort_by(|a, b| a.0.cmp(&b.0));
    // The cursor is the last key of the previous page: one of the profile's traits.
    if let Some(a) = &after
        && !every.iter().any(|(k, _, _)| k == a)
    {
        return Err(ApiError::bad_cursor(a));
    }
    let all: Vec<(String, TraitClass, Value)> = every
        .into_iter()
        .filter(|(k, class, _)| {
            include.as_ref().is_none_or(|w| w.iter().any(|x| x == k))
                && p.class.as_ref().is_none_or(|f| class.matches(f))
                && after.as_ref().is_none_or(|a| k.as_str() > a.as_str())
        })
        .collect();
    let mut out = Map::new();
    for (k, class, v) in all.iter().take(limit) {
        let v = if p.verbose() {
            json!({"value": v, "class": class.as_str(), "updated_at": rfc3339(updated_at)})
        } else {
            v.clone()
        };
        out.insert(k.to_string(), v);
    }
    let next = (all.len() > limit).then(|| all[limit - 1].0.clone());
    Ok(json!({"traits": out, "cursor": cursor(path, raw, next)}))
}

fn events(
    c: &Collection,
    row: u32,
    p: &Params,
    limit: usize,
    collection: &str,
    path: &str,
    raw: Option<&str>,
) -> Result<Value, ApiError> {
    let include = Params::list(&p.include);
    let exclude = Params::list(&p.exclude);
    let start = p
        .start
        .as_deref()
        .map(|s| parse_time(s, "start"))
        .transpose()?;
    let end = p.end.as_deref().map(|s| parse_time(s, "end")).transpose()?;
    let ascending = match p.sort.as_deref() {
        None | Some("desc") => false,
        Some("asc") => true,
        Some(o) => {
            return Err(ApiError::bad_request(format!(
                "sort must be `asc` or `desc`, not `{o}`"
            )));
        }
    };
    let name =
        |e: &crate::serve::index::RecentEvent| e.event.clone().unwrap_or_else(|| e.kind.clone());
    let mut all: Vec<&crate::serve::index::RecentEvent> = c
        .events(row)
        .iter()
        .filter(|e| {
            include.as_ref().is_none_or(|w| w.contains(&name(e)))
                && exclude.as_ref().is_none_or(|w| !w.contains(&name(e)))
                && start.is_none_or(|s| e.timestamp >= s)
                && end.is_none_or(|x| e.timestamp <= x)
        })
        .collect();
    if ascending {
        all.reverse();
    }
    let (page, next) = paginate(&all, p.offset()?, limit);
    let ext: Vec<Value> = c
        .external_ids(row)
        .iter()
        .map(|e| external_id_json(e, collection))
        .collect();
    let data: Vec<Value> = page
        .iter()
        .map(|e| {
            let mut o = json!({
                "message_id": e.message_id,
                "type": e.kind,
                "timestamp": rfc3339(e.timestamp),
                "context": parse_json(&e.context),
                "external_ids": ext,
                "source_id": Value::Null,
            });
            if let Some(ev) = &e.event {
                o["event"] = Value::String(ev.clone());
            }
            if e.kind == "identify" || e.kind == "group" {
                o["traits"] = parse_json(&e.traits);
            } else {
                o["properties"] = parse_json(&e.properties);
            }
            o
        })
        .collect();
    Ok(json!({"data": data, "cursor": cursor(path, raw, next)}))
}

fn links(
    ix: &SpaceIndex,
    accounts: bool,
    row: u32,
    p: &Params,
    limit: usize,
    path: &str,
    raw: Option<&str>,
) -> Result<Value, ApiError> {
    let (from, to, to_name) = if accounts {
        (&ix.accounts, &ix.users, "users")
    } else {
        (&ix.users, &ix.accounts, "accounts")
    };
    let linked: Vec<&String> = from.links(row).iter().collect();
    let (page, next) = paginate(&linked, p.offset()?, limit);
    let data: Vec<Value> = page
        .iter()
        .map(|id| {
            let ext: Vec<Value> = match to.row_of_id(id) {
                Some(r) => to
                    .external_ids(r)
                    .iter()
                    .map(|e| external_id_json(e, to_name))
                    .collect(),
                None => Vec::new(),
            };
            json!({"to_collection": to_name, "external_ids": ext})
        })
        .collect();
    Ok(json!({"data": data, "cursor": cursor(path, raw, next)}))
}
