//! The Profile API, compatible with Segment's: profiles' traits, external ids, recent events,
//! metadata and links by any identifier, plus the run endpoints. Every lookup reads the
//! space's [`SpaceIndex`], swapped in whole when a run publishes, so a request never waits for
//! a query and never sees half of a run.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Instant;

use axum::Router;
use axum::extract::rejection::PathRejection;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use base64::Engine as _;
use chrono::{DateTime, Utc};
use serde_json::{Map, Value, json};

use super::ServedSpace;
pub use super::api_errors::{ApiError, JsonErrorIo, JsonErrorListener, request_id};
use super::index::{Collection, SpaceIndex, TraitClass, parse_json, rfc3339};

/// The OpenAPI document of this API, served at `/v1/openapi.json`.
pub const OPENAPI: &str = include_str!("../../docs/openapi.json");

/// What a path segment keeps unencoded when the API writes a URL back (`cursor.url`).
const PATH_SEGMENT: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~')
    .remove(b':');

/// Default and largest `limit`.
pub const DEFAULT_LIMIT: usize = 10;
pub const MAX_LIMIT: usize = 200;

/// Starts runs for `POST /v1/spaces/{space}/runs` (the scheduler, in `cohort serve`).
pub trait RunTrigger: Send + Sync {
    /// Queues a run of `space` now; false when the space has no scheduler.
    fn trigger(&self, space: &str) -> bool;
}

/// A space behind the API: its token, its current index and its rate limiter.
pub struct ApiSpace {
    pub served: ServedSpace,
    index: RwLock<Option<Arc<SpaceIndex>>>,
    limiter: Mutex<Bucket>,
}

impl ApiSpace {
    pub fn new(served: ServedSpace, rate_per_sec: u32) -> ApiSpace {
        ApiSpace {
            served,
            index: RwLock::new(None),
            limiter: Mutex::new(Bucket::new(rate_per_sec)),
        }
    }
    /// The index in use (none until a run has published).
    pub fn index(&self) -> Option<Arc<SpaceIndex>> {
        self.index.read().unwrap().clone()
    }
    /// Puts a new index in place; requests already running finish on the old one.
    pub fn set_index(&self, ix: SpaceIndex) {
        *self.index.write().unwrap() = Some(Arc::new(ix));
    }
    /// Rebuilds the index when the space's published run differs from the indexed one.
    pub async fn refresh(&self) -> crate::error::EngineResult<bool> {
        let out = crate::run::output_location(&self.served.space)?;
        let current = crate::store::manifest::read(&out).await?.map(|m| m.run_id);
        let indexed = self.index().map(|i| i.run_id.clone());
        if current.is_none() || current == indexed {
            return Ok(false);
        }
        if let Some(ix) = SpaceIndex::build(&self.served.space).await? {
            self.set_index(ix);
            return Ok(true);
        }
        Ok(false)
    }
}

/// A token bucket: `rate` requests per second, bursts up to one second's worth.
struct Bucket {
    rate: f64,
    tokens: f64,
    at: Instant,
}

impl Bucket {
    fn new(rate: u32) -> Bucket {
        Bucket {
            rate: f64::from(rate),
            tokens: f64::from(rate),
            at: Instant::now(),
        }
    }
    /// Takes a token; Err(seconds until one is free) when empty. Rate 0 means no limit.
    fn take(&mut self) -> Result<(), f64> {
        if self.rate <= 0.0 {
            return Ok(());
        }
        let now = Instant::now();
        self.tokens =
            (self.tokens + now.duration_since(self.at).as_secs_f64() * self.rate).min(self.rate);
        self.at = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            Ok(())
        } else {
            Err((1.0 - self.tokens) / self.rate)
        }
    }
}

/// What the router shares.
pub struct ApiState {
    pub spaces: HashMap<String, Arc<ApiSpace>>,
    pub trigger: Option<Arc<dyn RunTrigger>>,
}

/// The router over `spaces` (no socket: tests call it directly, `cohort serve` binds it
/// through a [`JsonErrorListener`], so that hyper's own parse errors are JSON too).
pub fn router(spaces: Vec<Arc<ApiSpace>>, trigger: Option<Arc<dyn RunTrigger>>) -> Router {
    let state = Arc::new(ApiState {
        spaces: spaces
            .into_iter()
            .map(|s| (s.served.name().to_string(), s))
            .collect(),
        trigger,
    });
    Router::new()
        .route("/v1/openapi.json", get(openapi))
        .route(
            "/v1/spaces/{space}/collections/{collection}/profiles/{id}/{what}",
            get(profile),
        )
        .route("/v1/spaces/{space}/runs", get(list_runs).post(start_run))
        .fallback(not_found)
        .layer(axum::middleware::from_fn(super::api_errors::json_errors))
        .layer(axum::middleware::map_response(
            super::api_errors::add_request_id,
        ))
        .with_state(state)
}

async fn not_found() -> ApiError {
    ApiError::not_found("no such endpoint; see /v1/openapi.json")
}

async fn openapi() -> Response {
    (
        [(header::CONTENT_TYPE, "application/json")],
        OPENAPI.to_string(),
    )
        .into_response()
}

/// The space named in the path, once the request's Basic-auth user is its token and its rate
/// limit has room.
fn authorize(st: &ApiState, space: &str, headers: &HeaderMap) -> Result<Arc<ApiSpace>, ApiError> {
    let unauthorized = |m: &str| ApiError::new(StatusCode::UNAUTHORIZED, "unauthorized", m);
    let presented = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            v.strip_prefix("Basic ")
                .or_else(|| v.strip_prefix("basic "))
        })
        .ok_or_else(|| {
            unauthorized(
                "missing credentials: use HTTP Basic auth with the space's token as the user name",
            )
        })?;
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(presented.trim())
        .map_err(|_| unauthorized("the Authorization header is not valid Basic auth"))?;
    let user = decoded
        .split(|b| *b == b':')
        .next()
        .unwrap_or_default()
        .to_vec();
    let Some(s) = st.spaces.get(space) else {
        return Err(ApiError::not_found(format!("space `{space}` not found")));
    };
    if !super::token_matches(&user, &s.served.token) {
        return Err(unauthorized("the token is not valid for this space"));
    }
    if let Err(wait) = s.limiter.lock().unwrap().take() {
        let mut e = ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            "rate_limited",
            "too many requests for this space; retry after the time in Retry-After",
        );
        e.retry_after = Some(wait.ceil().max(1.0) as u64);
        return Err(e);
    }
    Ok(s.clone())
}

/// The query parameters the profile endpoints take.
#[derive(Default)]
struct Params {
    limit: Option<String>,
    next: Option<String>,
    include: Option<String>,
    exclude: Option<String>,
    class: Option<String>,
    verbose: Option<String>,
    start: Option<String>,
    end: Option<String>,
    sort: Option<String>,
}

impl Params {
    /// Reads the query string; a parameter given twice is an error (which one would win?),
    /// parameters the endpoints do not know are ignored.
    fn parse(raw: Option<&str>) -> Result<Params, ApiError> {
        let mut p = Params::default();
        for (k, v) in url::form_urlencoded::parse(raw.unwrap_or_default().as_bytes()) {
            let slot = match k.as_ref() {
                "limit" => &mut p.limit,
                "next" => &mut p.next,
                "include" => &mut p.include,
                "exclude" => &mut p.exclude,
                "class" => &mut p.class,
                "verbose" => &mut p.verbose,
                "start" => &mut p.start,
                "end" => &mut p.end,
                "sort" => &mut p.sort,
                _ => continue,
            };
            if slot.is_some() {
                return Err(ApiError::bad_request(format!(
                    "`{k}` is given more than once; give each parameter once"
                )));
            }
            *slot = Some(v.into_owned());
        }
        Ok(p)
    }
    fn limit(&self) -> Result<usize, ApiError> {
        match &self.limit {
            None => Ok(DEFAULT_LIMIT),
            Some(s) => match s.parse::<usize>() {
                Ok(n) if (1..=MAX_LIMIT).contains(&n) => Ok(n),
                _ => Err(ApiError::bad_request(format!(
                    "limit must be a whole number from 1 to {MAX_LIMIT}, not `{s}`"
                ))),
            },
        }
    }
    fn list(v: &Option<String>) -> Option<Vec<String>> {
        v.as_ref().map(|s| {
            s.split(',')
                .map(|x| x.trim().to_string())
                .filter(|x| !x.is_empty())
                .collect()
        })
    }
    fn verbose(&self) -> bool {
        matches!(self.verbose.as_deref(), Some("true" | "1"))
    }
    fn offset(&self) -> Result<usize, ApiError> {
        match self.next.as_deref() {
            None | Some("") => Ok(0),
            Some(s) => s.parse().map_err(|_| ApiError::bad_cursor(s)),
        }
    }
}

/// Normalizes a `type:value` path identifier as the space's identity rules do.
fn identifier(st: &ApiSpace, raw: &str, accounts: bool) -> Result<(String, String), ApiError> {
    let Some((t, v)) = raw.split_once(':') else {
        return Err(ApiError::bad_request(format!(
            "`{raw}` is not an identifier: use `<type>:<value>`, e.g. `user_id:123` or `email:ada%40example.com`"
        )));
    };
    let t = t.trim().to_lowercase();
    if v.is_empty() {
        return Err(ApiError::bad_request(format!("`{raw}` has an empty value")));
    }
    if accounts {
        return Ok((t, v.to_string()));
    }
    let mut v = v.to_string();
    if let Some(def) = st
        .served
        .space
        .identity
        .identifiers
        .iter()
        .find(|i| i.id_type == t)
    {
        for step in &def.normalize {
            v = match step.as_str() {
                "lowercase" => v.to_lowercase(),
                "uppercase" => v.to_uppercase(),
                "trim" => v.trim().to_string(),
                "digits_only" => v.chars().filter(|c| c.is_ascii_digit()).collect(),
                _ => v,
            };
        }
    }
    Ok((crate::plan::profiles::column_name(&t), v))
}

/// The `cursor` object: the next page's URL when there is one.
fn cursor(path: &str, raw_query: Option<&str>, next: Option<String>) -> Value {
    let mut kept: Vec<String> = raw_query
        .unwrap_or_default()
        .split('&')
        .filter(|p| !p.is_empty() && !p.starts_with("next="))
        .map(str::to_string)
        .collect();
    let (has_more, next) = match next {
        Some(n) => {
            kept.push(format!(
                "next={}",
                percent_encoding::utf8_percent_encode(&n, percent_encoding::NON_ALPHANUMERIC)
            ));
            (true, n)
        }
        None => (false, String::new()),
    };
    let url = if kept.is_empty() {
        path.to_string()
    } else {
        format!("{path}?{}", kept.join("&"))
    };
    json!({"url": url, "has_more": has_more, "next": next})
}

fn external_id_json(e: &super::index::ExternalId, collection: &str) -> Value {
    json!({
        "id": e.id_value,
        "type": e.id_type,
        "collection": collection,
        "created_at": e.first_seen.map(rfc3339),
        "encoding": "none",
        "source_id": Value::Null,
    })
}

/// A path the router matched but could not decode (a segment that is not UTF-8 once
/// percent-decoded) as a 400 in Segment's shape.
fn bad_path(r: PathRejection) -> ApiError {
    use axum::extract::path::ErrorKind;
    if let PathRejection::FailedToDeserializePathParams(e) = &r
        && let ErrorKind::InvalidUtf8InPathParam { key } = e.kind()
    {
        return ApiError::bad_request(format!(
            "the `{key}` in the path is not valid UTF-8 once percent-decoded"
        ));
    }
    ApiError::bad_request(format!("the path cannot be read: {}", r.body_text()))
}

async fn profile(
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
    let Some(ix) = s.index() else {
        return Err(ApiError::not_found(format!(
            "space `{space}` has not published a run yet"
        )));
    };
    let c = if accounts { &ix.accounts } else { &ix.users };
    let Some(row) = c.find(&t, &v) else {
        return Err(ApiError::not_found(format!("profile `{t}:{v}` not found")));
    };
    let path = format!(
        "/v1/spaces/{space}/collections/{collection}/profiles/{}/{what}",
        percent_encoding::utf8_percent_encode(&id, PATH_SEGMENT)
    );
    let body = match what.as_str() {
        "traits" => traits(c, row, &p, limit, &ix, &path, raw.as_deref())?,
        "external_ids" => {
            let want = Params::list(&p.include);
            let all: Vec<&super::index::ExternalId> = c
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
        "events" => events(c, row, &p, limit, &collection, &path, raw.as_deref())?,
        "metadata" => {
            let r = row as usize;
            json!({"metadata": {
                "created_at": c.first_seen[r].map(rfc3339),
                "updated_at": rfc3339(ix.as_of),
                "expires_at": Value::Null,
                "first_message_at": c.first_seen[r].map(rfc3339),
                "last_message_at": c.last_seen[r].map(rfc3339),
                "last_source_id": Value::Null,
                "last_identify_at": Value::Null,
                "profile_id": c.ids[r],
            }})
        }
        _ => links(&ix, accounts, row, &p, limit, &path, raw.as_deref())?,
    };
    Ok(axum::Json(body).into_response())
}

fn paginate<T: Clone>(all: &[T], offset: usize, limit: usize) -> (Vec<T>, Option<String>) {
    let end = offset.saturating_add(limit).min(all.len());
    let page = all
        .get(offset.min(all.len())..end)
        .unwrap_or_default()
        .to_vec();
    let next = (end < all.len()).then(|| end.to_string());
    (page, next)
}

fn traits(
    c: &Collection,
    row: u32,
    p: &Params,
    limit: usize,
    ix: &SpaceIndex,
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
    let every = c.traits_of(row);
    // The cursor is the last key of the previous page: one of the profile's traits.
    if let Some(a) = &after
        && !every.iter().any(|(k, _, _)| *k == a.as_str())
    {
        return Err(ApiError::bad_cursor(a));
    }
    let all: Vec<(&str, TraitClass, Value)> = every
        .into_iter()
        .filter(|(k, class, _)| {
            include.as_ref().is_none_or(|w| w.iter().any(|x| x == k))
                && p.class.as_ref().is_none_or(|f| class.matches(f))
                && after.as_ref().is_none_or(|a| *k > a.as_str())
        })
        .collect();
    let mut out = Map::new();
    for (k, class, v) in all.iter().take(limit) {
        let v = if p.verbose() {
            json!({"value": v, "class": class.as_str(), "updated_at": rfc3339(ix.as_of)})
        } else {
            v.clone()
        };
        out.insert(k.to_string(), v);
    }
    let next = (all.len() > limit).then(|| all[limit - 1].0.to_string());
    Ok(json!({"traits": out, "cursor": cursor(path, raw, next)}))
}

fn parse_time(s: &str, what: &str) -> Result<DateTime<Utc>, ApiError> {
    DateTime::parse_from_rfc3339(s)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|_| ApiError::bad_request(format!("{what} `{s}` is not an RFC 3339 time")))
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
    let name = |e: &super::index::RecentEvent| e.event.clone().unwrap_or_else(|| e.kind.clone());
    let mut all: Vec<&super::index::RecentEvent> = c
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

async fn list_runs(
    State(st): State<Arc<ApiState>>,
    path: Result<Path<String>, PathRejection>,
    RawQuery(raw): RawQuery,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let Path(space) = path.map_err(bad_path)?;
    let p = Params::parse(raw.as_deref())?;
    let s = authorize(&st, &space, &headers)?;
    let limit = p.limit()?;
    let runs = crate::read::history::runs(&s.served.space)
        .await
        .map_err(|e| {
            ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal",
                format!("cannot read the run history: {e}"),
            )
        })?;
    let (page, next) = paginate(&runs, p.offset()?, limit);
    let path = format!("/v1/spaces/{space}/runs");
    Ok(axum::Json(json!({"data": page, "cursor": cursor(&path, None, next)})).into_response())
}

async fn start_run(
    State(st): State<Arc<ApiState>>,
    path: Result<Path<String>, PathRejection>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let Path(space) = path.map_err(bad_path)?;
    authorize(&st, &space, &headers)?;
    let queued = st.trigger.as_ref().is_some_and(|t| t.trigger(&space));
    if !queued {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "no_scheduler",
            "this server does not run the space's scheduler",
        ));
    }
    Ok((
        StatusCode::ACCEPTED,
        axum::Json(json!({"status": "queued", "space": space})),
    )
        .into_response())
}
