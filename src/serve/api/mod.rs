//! The Profile API, compatible with Segment's: profiles' traits, external ids, recent events,
//! metadata and links by any identifier, plus the run endpoints. Every lookup reads the
//! space's [`SpaceIndex`], swapped in whole when a run publishes, so a request never waits for
//! a query and never sees half of a run.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Instant;

use axum::Router;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use base64::Engine as _;

mod audiences;
mod explorer;
mod live;
mod params;
mod profiles;
mod runs;

use super::ServedSpace;
pub use super::api_errors::{ApiError, JsonErrorIo, JsonErrorListener, request_id};
use super::index::SpaceIndex;
use profiles::profile;
use runs::{list_runs, start_run};

/// The OpenAPI document of this API, served at `/v1/openapi.json`.
pub const OPENAPI: &str = include_str!("../../../docs/openapi.json");

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
    /// Live values over the index, when the space collects events.
    live: Option<Arc<crate::live::LiveSpace>>,
    /// One evaluation at a time (previews, explanations): each reads the whole space.
    heavy: tokio::sync::Semaphore,
}

impl ApiSpace {
    pub fn new(served: ServedSpace, rate_per_sec: u32) -> ApiSpace {
        ApiSpace {
            served,
            index: RwLock::new(None),
            limiter: Mutex::new(Bucket::new(rate_per_sec)),
            live: None,
            heavy: tokio::sync::Semaphore::new(1),
        }
    }
    /// Answers with live values from `live` over the published ones.
    pub fn set_live(&mut self, live: Arc<crate::live::LiveSpace>) {
        self.live = Some(live);
    }
    /// The live engine (none when the space does not collect).
    pub fn live(&self) -> Option<Arc<crate::live::LiveSpace>> {
        self.live.clone()
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
        let out = crate::read::output_location(&self.served.space)?;
        let current = crate::store::manifest::read(&out).await?.map(|m| m.run_id);
        let indexed = self.index().map(|i| i.run_id.clone());
        if current.is_none() || current == indexed {
            return Ok(false);
        }
        if let Some(ix) = SpaceIndex::build(&self.served.space).await? {
            self.set_index(ix);
            if let Some(l) = &self.live {
                l.reload();
            }
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
        .route("/v1/spaces/{space}/live", get(live::status))
        .route("/v1/whoami", get(explorer::whoami))
        .route("/v1/spaces/{space}/search", get(explorer::search))
        .route(
            "/v1/spaces/{space}/explorer/profiles/{collection}/{id}",
            get(explorer::page),
        )
        .route(
            "/v1/spaces/{space}/explorer/identity/{id}",
            get(explorer::identity),
        )
        .route("/v1/spaces/{space}/audiences", get(audiences::list))
        .route("/v1/spaces/{space}/audiences/{key}", get(audiences::one))
        .route(
            "/v1/spaces/{space}/audiences/{key}/conditions",
            get(audiences::conditions),
        )
        .route(
            "/v1/spaces/{space}/audiences/{key}/explain",
            get(audiences::explain),
        )
        .route(
            "/v1/spaces/{space}/audiences/{key}/export",
            get(audiences::export),
        )
        .route("/v1/spaces/{space}/parse", post(audiences::parse))
        .route("/v1/spaces/{space}/preview", post(audiences::preview))
        .merge(crate::serve::app::router())
        .fallback(not_found)
        .layer(axum::middleware::from_fn(super::api_errors::json_errors))
        .layer(axum::middleware::map_response(
            super::api_errors::add_request_id,
        ))
        .layer(axum::middleware::from_fn(
            super::api_errors::no_browser_prompt,
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
