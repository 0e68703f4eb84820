//! Sending batches to one webhook: a JSON POST per batch, at most `rate_limit` requests a
//! second, retried with exponential backoff (or the server's `Retry-After`) on 5xx, 429,
//! timeouts and connection errors; any other 4xx is permanent.

use std::time::Duration;

use chrono::{SecondsFormat, Utc};
use reqwest::StatusCode;
use reqwest::header::{CONTENT_TYPE, HeaderMap, HeaderName, HeaderValue, RETRY_AFTER, USER_AGENT};
use serde_json::{Value, json};
use tokio::time::Instant;

use super::SyncError;
use crate::spec::{DestinationDef, substitute_env};

/// The longest wait between two tries, whatever the backoff or `Retry-After` say.
const MAX_DELAY: Duration = Duration::from_secs(300);

/// How a batch ended.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    Delivered,
    Failed {
        /// A 4xx other than 429: trying again will not help.
        permanent: bool,
        attempts: u32,
        status: Option<u16>,
        error: String,
    },
}

/// Spaces requests at least `1 / rate` seconds apart.
struct RateLimiter {
    interval: Duration,
    next: Option<Instant>,
}

impl RateLimiter {
    async fn wait(&mut self) {
        let now = Instant::now();
        let at = match self.next {
            Some(n) if n > now => {
                tokio::time::sleep_until(n).await;
                n
            }
            _ => now,
        };
        self.next = Some(at + self.interval);
    }
}

/// A destination's HTTP client, rate limiter and counters.
pub struct Sender {
    client: reqwest::Client,
    url: String,
    max_attempts: u32,
    backoff: Duration,
    limiter: RateLimiter,
    /// Requests made, retries included.
    pub requests: u64,
    /// Requests that were tries after a failure.
    pub retries: u64,
}

impl Sender {
    /// A sender for `dest`, with `${ENV_VAR}` replaced in its URL and headers.
    pub fn new(dest: &DestinationDef) -> Result<Sender, SyncError> {
        let bad = |reason: String| SyncError::Config {
            destination: dest.name.clone(),
            reason,
        };
        let url = substitute_env(&dest.url).map_err(|e| bad(format!("url: {e}")))?;
        let mut headers = HeaderMap::new();
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        let agent = format!("cohort/{}", env!("CARGO_PKG_VERSION"));
        headers.insert(
            USER_AGENT,
            HeaderValue::from_str(&agent).expect("ascii user agent"),
        );
        for (name, value) in &dest.headers {
            let value = substitute_env(value).map_err(|e| bad(format!("header {name}: {e}")))?;
            let n = HeaderName::from_bytes(name.as_bytes())
                .map_err(|e| bad(format!("header {name}: {e}")))?;
            let mut v =
                HeaderValue::from_str(&value).map_err(|e| bad(format!("header {name}: {e}")))?;
            v.set_sensitive(true);
            headers.insert(n, v);
        }
        let client = reqwest::Client::builder()
            .timeout(Duration::from_millis(dest.timeout_ms))
            .default_headers(headers)
            .build()
            .map_err(|e| bad(e.to_string()))?;
        Ok(Sender {
            client,
            url,
            max_attempts: dest.max_attempts,
            backoff: Duration::from_millis(dest.backoff_ms),
            limiter: RateLimiter {
                interval: Duration::from_secs_f64(1.0 / dest.rate_limit),
                next: None,
            },
            requests: 0,
            retries: 0,
        })
    }

    /// POSTs `{"batch": [...], "sentAt": ...}` until it is accepted, fails permanently or has
    /// used every attempt.
    pub async fn send(&mut self, batch: &[&Value]) -> Outcome {
        let mut attempt = 0;
        loop {
            attempt += 1;
            self.limiter.wait().await;
            self.requests += 1;
            if attempt > 1 {
                self.retries += 1;
            }
            let body = json!({
                "batch": batch,
                "sentAt": Utc::now().to_rfc3339_opts(SecondsFormat::Millis, true),
            });
            let result = self
                .client
                .post(&self.url)
                .body(body.to_string())
                .send()
                .await;
            let (status, error, retry_after) = match result {
                Ok(resp) => {
                    let status = resp.status();
                    if status.is_success() {
                        // Read the body so the connection can be reused.
                        let _ = resp.bytes().await;
                        return Outcome::Delivered;
                    }
                    let retry_after = resp
                        .headers()
                        .get(RETRY_AFTER)
                        .and_then(|v| v.to_str().ok())
                        .and_then(|v| v.trim().parse::<u64>().ok())
                        .map(Duration::from_secs);
                    let text = resp.text().await.unwrap_or_default();
                    let mut error = format!("HTTP {status}");
                    let text = text.trim();
                    if !text.is_empty() {
                        error.push_str(": ");
                        error.extend(text.chars().take(200));
                    }
                    let retryable =
                        status.is_server_error() || status == StatusCode::TOO_MANY_REQUESTS;
                    if !retryable {
                        return Outcome::Failed {
                            permanent: true,
                            attempts: attempt,
                            status: Some(status.as_u16()),
                            error,
                        };
                    }
                    (Some(status.as_u16()), error, retry_after)
                }
                Err(e) => {
                    let what = if e.is_timeout() {
                        "timed out"
                    } else if e.is_connect() {
                        "connection failed"
                    } else {
                        "request failed"
                    };
                    (None, format!("{what}: {e}"), None)
                }
            };
            if attempt >= self.max_attempts {
                return Outcome::Failed {
                    permanent: false,
                    attempts: attempt,
                    status,
                    error,
                };
            }
            let backoff = self
                .backoff
                .saturating_mul(1u32 << (attempt - 1).min(20))
                .min(MAX_DELAY);
            let delay = retry_after
                .map_or(backoff, |r| r.max(backoff))
                .min(MAX_DELAY);
            tracing::debug!("{}: {error}; retrying in {delay:?}", self.url);
            tokio::time::sleep(delay).await;
        }
    }
}
