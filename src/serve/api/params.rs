//! What a request says: the query parameters (each at most once), `type:value` path
//! identifiers normalized as the space's identity rules do, paging and the `cursor` object.

use axum::extract::rejection::PathRejection;
use chrono::{DateTime, Utc};
use serde_json::{Value, json};

use super::{ApiSpace, DEFAULT_LIMIT, MAX_LIMIT};
use crate::serve::api_errors::ApiError;
use crate::serve::index::rfc3339;

/// The query parameters the profile endpoints take.
#[derive(Default)]
pub(super) struct Params {
    pub(super) limit: Option<String>,
    pub(super) next: Option<String>,
    pub(super) include: Option<String>,
    pub(super) exclude: Option<String>,
    pub(super) class: Option<String>,
    pub(super) verbose: Option<String>,
    pub(super) start: Option<String>,
    pub(super) end: Option<String>,
    pub(super) sort: Option<String>,
}

impl Params {
    /// Reads the query string; a parameter given twice is an error (which one would win?),
    /// parameters the endpoints do not know are ignored.
    pub(super) fn parse(raw: Option<&str>) -> Result<Params, ApiError> {
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
    pub(super) fn limit(&self) -> Result<usize, ApiError> {
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
    pub(super) fn list(v: &Option<String>) -> Option<Vec<String>> {
        v.as_ref().map(|s| {
            s.split(',')
                .map(|x| x.trim().to_string())
                .filter(|x| !x.is_empty())
                .collect()
        })
    }
    pub(super) fn verbose(&self) -> bool {
        matches!(self.verbose.as_deref(), Some("true" | "1"))
    }
    pub(super) fn offset(&self) -> Result<usize, ApiError> {
        match self.next.as_deref() {
            None | Some("") => Ok(0),
            Some(s) => s.parse().map_err(|_| ApiError::bad_cursor(s)),
        }
    }
}

/// Normalizes a `type:value` path identifier as the space's identity rules do.
pub(super) fn identifier(
    st: &ApiSpace,
    raw: &str,
    accounts: bool,
) -> Result<(String, String), ApiError> {
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
    Ok((crate::read::column_name(&t), v))
}

/// The `cursor` object: the next page's URL when there is one.
pub(super) fn cursor(path: &str, raw_query: Option<&str>, next: Option<String>) -> Value {
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

pub(super) fn external_id_json(e: &crate::serve::index::ExternalId, collection: &str) -> Value {
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
pub(super) fn bad_path(r: PathRejection) -> ApiError {
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

pub(super) fn paginate<T: Clone>(
    all: &[T],
    offset: usize,
    limit: usize,
) -> (Vec<T>, Option<String>) {
    let end = offset.saturating_add(limit).min(all.len());
    let page = all
        .get(offset.min(all.len())..end)
        .unwrap_or_default()
        .to_vec();
    let next = (end < all.len()).then(|| end.to_string());
    (page, next)
}

pub(super) fn parse_time(s: &str, what: &str) -> Result<DateTime<Utc>, ApiError> {
    DateTime::parse_from_rfc3339(s)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|_| ApiError::bad_request(format!("{what} `{s}` is not an RFC 3339 time")))
}
