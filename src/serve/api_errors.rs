//! Why every error of the Profile API looks the same: Segment's JSON body
//! (`{"error": {"code", "message"}}`) and a `Request-Id` header, whoever produced it.
//!
//! Three places answer errors. The handlers return [`ApiError`]. axum's own answers (a
//! method the route does not take, a rejected extractor) pass through [`json_errors`], which
//! rewrites any error that is not JSON yet. hyper answers requests it cannot parse (a request
//! line or header that is not HTTP, more than 100 headers, headers past its buffer, a URI too
//! long) before the router sees them, with an empty body; [`JsonErrorListener`] wraps each
//! connection and replaces that automatic answer with the same JSON.

use std::io;
use std::pin::Pin;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll, ready};

use axum::extract::Request;
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde_json::json;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// A fresh `Request-Id`: a per-process random prefix and a counter.
pub fn request_id() -> String {
    static SEED: OnceLock<u64> = OnceLock::new();
    static NEXT: AtomicU64 = AtomicU64::new(1);
    let seed = *SEED.get_or_init(|| {
        let s = std::collections::hash_map::RandomState::new();
        std::hash::BuildHasher::hash_one(&s, std::process::id())
    });
    format!("{seed:016x}-{:08x}", NEXT.fetch_add(1, Ordering::Relaxed))
}

/// An error in Segment's shape: `{"error": {"code": ..., "message": ...}}`.
pub struct ApiError {
    pub(super) status: StatusCode,
    pub(super) code: &'static str,
    pub(super) message: String,
    pub(super) retry_after: Option<u64>,
}

impl ApiError {
    pub(super) fn new(
        status: StatusCode,
        code: &'static str,
        message: impl Into<String>,
    ) -> ApiError {
        ApiError {
            status,
            code,
            message: message.into(),
            retry_after: None,
        }
    }
    pub(super) fn bad_request(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, "bad_request", message)
    }
    pub(super) fn not_found(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::NOT_FOUND, "not_found", message)
    }
    /// A `next` cursor this API did not hand out.
    pub(super) fn bad_cursor(cursor: &str) -> ApiError {
        ApiError::bad_request(format!(
            "`next` cursor `{cursor}` is not valid: use the `cursor.next` of the previous page"
        ))
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = json!({"error": {"code": self.code, "message": self.message}});
        let mut r = (self.status, axum::Json(body)).into_response();
        if self.status == StatusCode::UNAUTHORIZED {
            r.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Basic realm=\"cohort\""),
            );
        }
        if let Some(s) = self.retry_after
            && let Ok(v) = HeaderValue::from_str(&s.to_string())
        {
            r.headers_mut().insert(header::RETRY_AFTER, v);
        }
        r
    }
}

/// The `code` of an error status nobody named.
fn code_of(status: StatusCode) -> &'static str {
    match status.as_u16() {
        400 | 422 => "bad_request",
        401 => "unauthorized",
        403 => "forbidden",
        404 => "not_found",
        405 => "method_not_allowed",
        408 => "request_timeout",
        409 => "conflict",
        413 => "payload_too_large",
        414 => "uri_too_long",
        415 => "unsupported_media_type",
        429 => "rate_limited",
        431 => "request_header_fields_too_large",
        s if s >= 500 => "internal",
        _ => "bad_request",
    }
}

/// Middleware: every response gets a `Request-Id`.
pub(super) async fn add_request_id(mut r: Response) -> Response {
    if let Ok(v) = HeaderValue::from_str(&request_id()) {
        r.headers_mut().insert("request-id", v);
    }
    r
}

/// The header the web app sends with every request.
const APP_HEADER: &str = "x-cohort-app";

/// A 401 to the web app comes without `WWW-Authenticate`, so that the browser leaves the
/// answer to the app's sign-in page instead of opening its own password prompt.
pub(super) async fn no_browser_prompt(req: Request, next: Next) -> Response {
    let from_app = req.headers().contains_key(APP_HEADER);
    let mut r = next.run(req).await;
    if from_app {
        r.headers_mut().remove(header::WWW_AUTHENTICATE);
    }
    r
}

/// Middleware: an error response that is not JSON (axum's rejections, its 405) becomes one
/// in Segment's shape, keeping its status and `Allow` header.
pub(super) async fn json_errors(req: Request, next: Next) -> Response {
    let method = req.method().clone();
    let r = next.run(req).await;
    let status = r.status();
    let is_json = r
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    if !(status.is_client_error() || status.is_server_error()) || is_json {
        return r;
    }
    let (parts, body) = r.into_parts();
    let text = axum::body::to_bytes(body, 64 * 1024)
        .await
        .map(|b| String::from_utf8_lossy(&b).trim().to_string())
        .unwrap_or_default();
    let allow = parts
        .headers
        .get(header::ALLOW)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    // axum sets `Allow` on a 405 outside this layer: it may not be here yet.
    let message = match (status, &allow) {
        (StatusCode::METHOD_NOT_ALLOWED, Some(a)) => {
            format!("this endpoint does not take {method}; it takes {a}")
        }
        (StatusCode::METHOD_NOT_ALLOWED, None) => {
            format!("this endpoint does not take {method}; the Allow header lists what it takes")
        }
        _ if !text.is_empty() => text,
        _ => status
            .canonical_reason()
            .unwrap_or("the request failed")
            .to_string(),
    };
    let mut out = ApiError::new(status, code_of(status), message).into_response();
    for h in [header::ALLOW, header::RETRY_AFTER, header::WWW_AUTHENTICATE] {
        if let Some(v) = parts.headers.get(&h) {
            out.headers_mut().insert(h, v.clone());
        }
    }
    out
}

/// A listener whose connections answer hyper's own parse errors in Segment's JSON shape.
pub struct JsonErrorListener<L>(pub L);

impl<L: axum::serve::Listener> axum::serve::Listener for JsonErrorListener<L> {
    type Io = JsonErrorIo<L::Io>;
    type Addr = L::Addr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        let (io, addr) = self.0.accept().await;
        (
            JsonErrorIo {
                inner: io,
                pending: Vec::new(),
                sent: 0,
            },
            addr,
        )
    }

    fn local_addr(&self) -> io::Result<Self::Addr> {
        self.0.local_addr()
    }
}

/// One connection: reads pass through; a response hyper wrote by itself for a request it
/// could not parse is swapped for the JSON one.
pub struct JsonErrorIo<T> {
    inner: T,
    /// The replacement answer, and how much of it is out.
    pending: Vec<u8>,
    sent: usize,
}

impl<T: AsyncWrite + Unpin> JsonErrorIo<T> {
    /// Writes out what is left of the replacement answer.
    fn drain(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while self.sent < self.pending.len() {
            let n = ready!(Pin::new(&mut self.inner).poll_write(cx, &self.pending[self.sent..]))?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            self.sent += n;
        }
        self.pending.clear();
        self.sent = 0;
        Poll::Ready(Ok(()))
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for JsonErrorIo<T> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_read(cx, buf)
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for JsonErrorIo<T> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        ready!(this.drain(cx))?;
        if let Some((head_len, answer)) = automatic_error(buf) {
            this.pending = answer;
            this.sent = 0;
            // What does not go out now goes on the next flush or shutdown.
            if let Poll::Ready(Err(e)) = this.drain(cx) {
                return Poll::Ready(Err(e));
            }
            return Poll::Ready(Ok(head_len));
        }
        Pin::new(&mut this.inner).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        ready!(this.drain(cx))?;
        Pin::new(&mut this.inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        ready!(this.drain(cx))?;
        Pin::new(&mut this.inner).poll_shutdown(cx)
    }

    /// One buffer per write, so a response head always starts a write.
    fn is_write_vectored(&self) -> bool {
        false
    }
}

/// When `buf` starts with a response head hyper wrote by itself for a request it could not
/// parse (status 400, 414 or 431, an empty body, no `Request-Id`, which every answer of the
/// router has), the head's length and the JSON answer to send instead. hyper writes such a
/// head only once everything before it is flushed, so it starts a write.
fn automatic_error(buf: &[u8]) -> Option<(usize, Vec<u8>)> {
    if !buf.starts_with(b"HTTP/1.") {
        return None;
    }
    let end = buf.windows(4).position(|w| w == b"\r\n\r\n")? + 4;
    let head = std::str::from_utf8(&buf[..end]).ok()?;
    let mut lines = head.split("\r\n").filter(|l| !l.is_empty());
    let status_line = lines.next()?;
    let status = StatusCode::from_bytes(status_line.get(9..12)?.as_bytes()).ok()?;
    let message = match status.as_u16() {
        400 => "the request is not valid HTTP (its request line or a header cannot be parsed)",
        414 => "the request's URI is too long",
        431 => "the request's headers are too large: at most 100 headers, about 400 KB in all",
        _ => return None,
    };
    let mut kept = Vec::new();
    for l in lines {
        let (name, value) = l.split_once(':').unwrap_or((l, ""));
        match name.trim().to_ascii_lowercase().as_str() {
            "request-id" => return None,
            "content-length" if value.trim() != "0" => return None,
            "content-length" | "content-type" | "connection" => {}
            _ => kept.push(l),
        }
    }
    let body = json!({"error": {"code": code_of(status), "message": message}}).to_string();
    let mut out = format!(
        "{status_line}\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\
         request-id: {}\r\nconnection: close\r\n",
        body.len(),
        request_id()
    );
    for l in kept {
        out.push_str(l);
        out.push_str("\r\n");
    }
    out.push_str("\r\n");
    out.push_str(&body);
    Some((end, out.into_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hypers_empty_431_becomes_json_and_router_answers_pass() {
        let hyper = b"HTTP/1.1 431 Request Header Fields Too Large\r\ncontent-length: 0\r\n\
                      date: Sat, 05 Dec 2026 04:30:00 GMT\r\n\r\n";
        let (n, out) = automatic_error(hyper).unwrap();
        assert_eq!(n, hyper.len());
        let out = String::from_utf8(out).unwrap();
        let (head, body) = out.split_once("\r\n\r\n").unwrap();
        assert!(head.starts_with("HTTP/1.1 431 "), "{head}");
        assert!(head.contains("\r\nrequest-id: "), "{head}");
        assert!(head.contains("\r\ndate: Sat"), "{head}");
        assert!(head.contains(&format!("content-length: {}", body.len())));
        let v: serde_json::Value = serde_json::from_str(body).unwrap();
        assert_eq!(v["error"]["code"], "request_header_fields_too_large");

        let ours = b"HTTP/1.1 400 Bad Request\r\ncontent-type: application/json\r\n\
                     request-id: 1-2\r\ncontent-length: 0\r\n\r\n";
        assert!(automatic_error(ours).is_none());
        let ok = b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n";
        assert!(automatic_error(ok).is_none());
        assert!(automatic_error(b"{\"traits\":{}}").is_none());
    }
}
