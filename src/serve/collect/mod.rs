//! The collector: Segment's HTTP Tracking API on `cohort serve`'s collect address, so
//! Segment's SDKs send events straight to the lake. A write key (space.yaml's `write_keys`)
//! names one `events` source of one space. A request is answered 200 only when its events
//! are in that source's write-ahead log on disk; a bad message refuses the whole request
//! with a 400 saying which message and why, and nothing of it is kept. The log is flushed to
//! the source as Parquet on a size or age threshold ([`writer`]), and replayed on restart.

pub mod lake;
pub mod message;
pub mod wal;
pub mod writer;

use std::collections::HashMap;
use std::io::Read as _;
use std::path::PathBuf;
use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use base64::Engine as _;
use serde_json::{Value, json};

use super::ServedSpace;
use super::api_errors::{ApiError, add_request_id, json_errors};
use message::{At, Envelope, MAX_REQUEST_BYTES, Refused, Row};
use writer::{SourceLog, Thresholds};

/// An error of the collector's own machinery (its log folder, its lake).
pub type Fail = Box<dyn std::error::Error + Send + Sync>;

/// How `cohort serve` collects.
#[derive(Clone, Debug)]
pub struct CollectConfig {
    pub thresholds: Thresholds,
    /// Where the logs go (`<dir>/<space>/<source>`); default: each space's
    /// `.cohort/collector/<source>`.
    pub log_dir: Option<PathBuf>,
}

/// Every collecting source, by write key.
pub struct Collector {
    by_key: HashMap<String, Arc<SourceLog>>,
    logs: Vec<Arc<SourceLog>>,
    /// Each space's live engine, fed every durable batch.
    live: HashMap<String, Arc<crate::live::LiveSpace>>,
}

impl Collector {
    /// Opens the log of every source with write keys (replaying what a previous process
    /// left); `None` when no served source has any.
    pub fn start(spaces: &[ServedSpace], cfg: &CollectConfig) -> Result<Option<Collector>, Fail> {
        let mut by_key: HashMap<String, Arc<SourceLog>> = HashMap::new();
        let mut owner: HashMap<String, String> = HashMap::new();
        let mut logs = Vec::new();
        for s in spaces {
            let space = &s.space;
            for src in space.sources.iter().filter(|s| !s.write_keys.is_empty()) {
                let dir = match &cfg.log_dir {
                    Some(d) => d.join(&space.name).join(&src.name),
                    None => space.root.join(".cohort").join("collector").join(&src.name),
                };
                let lake = crate::store::objects::open_raw(&space.root, &src.url)
                    .map_err(|e| format!("source `{}` of `{}`: {e}", src.name, space.name))?;
                let log = Arc::new(
                    SourceLog::open(
                        &space.name,
                        &src.name,
                        &dir,
                        lake,
                        src.partition_column.clone(),
                        cfg.thresholds,
                    )
                    .map_err(|e| format!("source `{}` of `{}`: {e}", src.name, space.name))?,
                );
                let here = format!("source `{}` of space `{}`", src.name, space.name);
                for k in &src.write_keys {
                    if let Some(other) = owner.insert(k.clone(), here.clone()) {
                        return Err(format!(
                            "write key `{k}` is given to both {other} and {here}: a write key \
                             names one source"
                        )
                        .into());
                    }
                    by_key.insert(k.clone(), log.clone());
                }
                logs.push(log);
            }
        }
        Ok((!logs.is_empty()).then_some(Collector {
            by_key,
            logs,
            live: HashMap::new(),
        }))
    }

    /// Feeds `live` every batch of `space` once it is durable.
    pub fn set_live(&mut self, space: &str, live: Arc<crate::live::LiveSpace>) {
        self.live.insert(space.to_string(), live);
    }

    /// The live engine of `space`, when it collects.
    pub fn live(&self, space: &str) -> Option<Arc<crate::live::LiveSpace>> {
        self.live.get(space).cloned()
    }

    /// The collecting sources, as `space/source`.
    pub fn sources(&self) -> Vec<String> {
        self.logs
            .iter()
            .map(|l| format!("{}/{}", l.space, l.source))
            .collect()
    }

    /// Seals every log and waits until what was acknowledged is in the lake (live engines
    /// stop first).
    pub async fn flush_all(&self) {
        self.live.values().for_each(|l| l.stop());
        futures::future::join_all(self.logs.iter().map(|l| l.flush())).await;
    }
}

/// The collector's routes: Segment's paths, analytics.js's short ones, and CORS for browsers.
pub fn router(c: Arc<Collector>) -> Router {
    let mut r = Router::new().route("/health", get(|| async { axum::Json(json!({"ok": true})) }));
    // analytics.js reports its own metrics to `/v1/m`: taken and dropped.
    r = r.route(
        "/v1/m",
        post(|| async { axum::Json(json!({"success": true})) })
            .options(|| async { StatusCode::NO_CONTENT }),
    );
    let calls: [(&str, Option<&'static str>); 15] = [
        ("/v1/identify", Some("identify")),
        ("/v1/track", Some("track")),
        ("/v1/page", Some("page")),
        ("/v1/screen", Some("screen")),
        ("/v1/group", Some("group")),
        ("/v1/alias", Some("alias")),
        ("/v1/batch", None),
        ("/v1/import", None),
        ("/v1/i", Some("identify")),
        ("/v1/t", Some("track")),
        ("/v1/p", Some("page")),
        ("/v1/s", Some("screen")),
        ("/v1/g", Some("group")),
        ("/v1/a", Some("alias")),
        ("/v1/b", None),
    ];
    for (path, call) in calls {
        r = r.route(
            path,
            post(move |st: State<Arc<Collector>>, h: HeaderMap, b: Bytes| collect(st, call, h, b))
                .options(|| async { StatusCode::NO_CONTENT }),
        );
    }
    r.layer(axum::middleware::map_response(cors))
        .layer(axum::middleware::map_response(add_request_id))
        .layer(axum::middleware::from_fn(json_errors))
        .layer(DefaultBodyLimit::max(4 * MAX_REQUEST_BYTES))
        .with_state(c)
}

/// Browsers (analytics.js) post across origins.
async fn cors(mut r: Response) -> Response {
    let h = r.headers_mut();
    h.insert(
        header::ACCESS_CONTROL_ALLOW_ORIGIN,
        HeaderValue::from_static("*"),
    );
    h.insert(
        header::ACCESS_CONTROL_ALLOW_HEADERS,
        HeaderValue::from_static("Content-Type, Authorization"),
    );
    h.insert(
        header::ACCESS_CONTROL_ALLOW_METHODS,
        HeaderValue::from_static("POST, OPTIONS"),
    );
    // Chrome asks before a public page posts to a private address (Private Network Access).
    h.insert(
        "access-control-allow-private-network",
        HeaderValue::from_static("true"),
    );
    r
}

fn bad(msg: impl Into<String>) -> Response {
    ApiError::bad_request(msg).into_response()
}

fn unauthorized(msg: &str) -> Response {
    ApiError::new(StatusCode::UNAUTHORIZED, "unauthorized", msg).into_response()
}

/// One request: authenticate, check every message, log them all or none.
async fn collect(
    State(c): State<Arc<Collector>>,
    call: Option<&'static str>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let received_at = chrono::Utc::now();
    let body = match decoded(&headers, body) {
        Ok(b) => b,
        Err(e) => return e.into_response(),
    };
    if body.len() > MAX_REQUEST_BYTES {
        return bad(format!(
            "the request is {} bytes; Segment's limit is {MAX_REQUEST_BYTES} (500 KB) a request \
             and 32 KB a message",
            body.len()
        ));
    }
    let v: Value = match serde_json::from_slice(&body) {
        Ok(v) => v,
        Err(e) => return bad(format!("the body is not JSON: {e}")),
    };
    let Value::Object(mut fields) = v else {
        return bad(format!(
            "the body is a JSON object, not {}",
            message::kind_of(&v)
        ));
    };
    let key = basic_user(&headers).or_else(|| match fields.get("writeKey") {
        Some(Value::String(k)) => Some(k.clone()),
        _ => None,
    });
    let Some(key) = key else {
        return unauthorized(
            "no write key: send it as the Basic-auth user name, or as `writeKey` in the body",
        );
    };
    let Some(log) = c.by_key.get(&key) else {
        return unauthorized("this write key names no source here (space.yaml `write_keys`)");
    };
    let sent = match fields.get("sentAt") {
        Some(Value::String(s)) => match message::parse_time(s) {
            Some(t) => Some(t),
            None => return bad(format!("`sentAt` `{s}` is not an ISO 8601 time")),
        },
        _ => None,
    };
    let env = Envelope {
        received_at,
        sent_at: sent,
    };
    let mut new_id = || uuid::Uuid::new_v4().to_string();
    let mut rows = Vec::new();
    let mut refused: Vec<Refused> = Vec::new();
    match call {
        Some(call) => {
            let m = Value::Object(fields);
            match message::normalize(&m, Some(call), At::Single, &env, &mut new_id) {
                Ok(r) => rows.push(r),
                Err(e) => refused.push(e),
            }
        }
        None => {
            let batch = match fields.remove("batch") {
                Some(Value::Array(b)) => b,
                Some(other) => {
                    return bad(format!(
                        "`batch` is a list of messages, not {}",
                        message::kind_of(&other)
                    ));
                }
                None => {
                    return bad("`batch` is missing: a batch request carries a list of messages");
                }
            };
            for (i, mut m) in batch.into_iter().enumerate() {
                message::inherit(&fields, &mut m);
                match message::normalize(&m, None, At::Batch(i), &env, &mut new_id) {
                    Ok(r) => rows.push(r),
                    Err(e) => refused.push(e),
                }
            }
        }
    }
    if !refused.is_empty() {
        let total = rows.len() + refused.len();
        let shown: Vec<String> = refused.iter().take(10).map(|r| r.to_string()).collect();
        return bad(format!(
            "{} of {total} message(s) refused, so none of this request was kept: {}{}",
            refused.len(),
            shown.join("; "),
            if refused.len() > shown.len() {
                format!("; and {} more", refused.len() - shown.len())
            } else {
                String::new()
            }
        ));
    }
    if rows.is_empty() {
        return axum::Json(json!({"success": true})).into_response();
    }
    let n = rows.len() as u64;
    match log.append(wal::encode(&rows), n).await {
        Ok(()) => {
            if let Some(live) = c.live.get(&log.space) {
                let refs: Vec<&Row> = rows.iter().collect();
                match lake::batch(&refs) {
                    Ok(b) => live.send(&log.source, b),
                    Err(e) => tracing::warn!("live: {e}"),
                }
            }
            axum::Json(json!({"success": true})).into_response()
        }
        Err(e) => ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "unavailable",
            format!(
                "the events could not be written to the collector's log ({e}); none of them \
                 was kept: send them again"
            ),
        )
        .into_response(),
    }
}

/// The body, gunzipped when the sender compressed it (analytics-python's `gzip=True`).
fn decoded(headers: &HeaderMap, body: Bytes) -> Result<Bytes, ApiError> {
    let enc = headers
        .get(header::CONTENT_ENCODING)
        .and_then(|v| v.to_str().ok())
        .map(|s| s.trim().to_ascii_lowercase());
    match enc.as_deref() {
        None | Some("") | Some("identity") => Ok(body),
        Some("gzip") => {
            let mut out = Vec::new();
            let limit = (MAX_REQUEST_BYTES + 1) as u64;
            flate2::read::GzDecoder::new(&body[..])
                .take(limit)
                .read_to_end(&mut out)
                .map_err(|e| ApiError::bad_request(format!("the gzip body cannot be read: {e}")))?;
            Ok(out.into())
        }
        Some(other) => Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            format!("Content-Encoding `{other}` is not taken; send plain or gzip JSON"),
        )),
    }
}

/// The user name of a Basic `Authorization` header (Segment's write key, empty password).
fn basic_user(headers: &HeaderMap) -> Option<String> {
    let v = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, rest) = v.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let raw = base64::engine::general_purpose::STANDARD
        .decode(rest.trim())
        .ok()?;
    let s = String::from_utf8(raw).ok()?;
    let user = s.split_once(':').map_or(s.as_str(), |(u, _)| u);
    (!user.is_empty()).then(|| user.to_string())
}
