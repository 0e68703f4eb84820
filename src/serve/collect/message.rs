//! Segment's rules for one incoming message: which calls exist and what each needs, the size
//! limits, a `messageId` when the sender gave none, `receivedAt`, and the clock-skew
//! correction of `timestamp` from `sentAt`. What comes out is a row of the `events` preset.

use chrono::{DateTime, Datelike, SecondsFormat, Utc};
use serde_json::{Map, Value};

/// Segment's limits: 32 KB a message, 500 KB a request.
pub const MAX_MESSAGE_BYTES: usize = 32 * 1024;
pub const MAX_REQUEST_BYTES: usize = 500 * 1024;

/// The six calls of the Tracking API.
pub const CALLS: [&str; 6] = ["identify", "track", "page", "screen", "group", "alias"];

/// One collected event, as the `events` preset stores it (JSON objects as text).
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Row {
    pub message_id: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub event: Option<String>,
    pub user_id: Option<String>,
    pub anonymous_id: Option<String>,
    pub group_id: Option<String>,
    pub previous_id: Option<String>,
    /// The corrected time, RFC 3339 with milliseconds.
    pub timestamp: String,
    pub properties: Option<String>,
    pub traits: Option<String>,
    pub context: Option<String>,
    pub integrations: Option<String>,
    /// A page's or screen's category (`page(category, name)`).
    pub category: Option<String>,
    pub received_at: String,
    pub sent_at: Option<String>,
    pub original_timestamp: Option<String>,
}

impl Row {
    /// The UTC day of the corrected timestamp (`YYYY-MM-DD`): the row's `dt=` partition.
    pub fn day(&self) -> &str {
        &self.timestamp[..10]
    }
}

/// Where a message came from in the request, for errors: `the message` or `batch[3]`.
#[derive(Clone, Copy, Debug)]
pub enum At {
    Single,
    Batch(usize),
}

/// Why a message was refused.
#[derive(Debug)]
pub struct Refused {
    pub at: At,
    pub message_id: Option<String>,
    pub reason: String,
}

impl std::fmt::Display for Refused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.at {
            At::Single => write!(f, "the message")?,
            At::Batch(i) => write!(f, "batch[{i}]")?,
        }
        if let Some(id) = &self.message_id {
            write!(f, " (messageId `{id}`)")?;
        }
        write!(f, ": {}", self.reason)
    }
}

/// What the request gave for every message: when it arrived and the batch's `sentAt`.
pub struct Envelope {
    pub received_at: DateTime<Utc>,
    pub sent_at: Option<DateTime<Utc>>,
}

/// Turns one message into a row, or says why not. `call` is the endpoint's call (`None` for
/// a batch, where each message names its own `type`).
pub fn normalize(
    v: &Value,
    call: Option<&str>,
    at: At,
    env: &Envelope,
    new_id: &mut dyn FnMut() -> String,
) -> Result<Row, Refused> {
    let Value::Object(m) = v else {
        return Err(Refused {
            at,
            message_id: None,
            reason: format!("a message is a JSON object, not {}", kind_of(v)),
        });
    };
    let given_id = m.get("messageId").and_then(|v| id_text(v).ok().flatten());
    let refuse = |reason: String| Refused {
        at,
        message_id: given_id.clone(),
        reason,
    };
    let size = serde_json::to_vec(v).map(|b| b.len()).unwrap_or(0);
    if size > MAX_MESSAGE_BYTES {
        return Err(refuse(format!(
            "the message is {size} bytes; Segment's limit is {MAX_MESSAGE_BYTES} (32 KB)"
        )));
    }
    let kind = match call {
        Some(c) => c.to_string(),
        None => match m.get("type") {
            Some(Value::String(t)) if CALLS.contains(&t.to_ascii_lowercase().as_str()) => {
                t.to_ascii_lowercase()
            }
            Some(Value::String(t)) => {
                return Err(refuse(format!(
                    "`type` `{t}` is not a call; it is one of {}",
                    CALLS.join(", ")
                )));
            }
            Some(other) => {
                return Err(refuse(format!(
                    "`type` is a string naming the call, not {}",
                    kind_of(other)
                )));
            }
            None => {
                return Err(refuse(format!(
                    "`type` is missing: a batch's messages each name their call ({})",
                    CALLS.join(", ")
                )));
            }
        },
    };
    let text = |key: &str| -> Result<Option<String>, Refused> {
        match m.get(key) {
            None => Ok(None),
            Some(v) => id_text(v)
                .map_err(|k| refuse(format!("`{key}` is a string (or a number), not {k}"))),
        }
    };
    let object = |key: &str| -> Result<Option<String>, Refused> {
        match m.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(o @ Value::Object(_)) => Ok(Some(o.to_string())),
            Some(other) => Err(refuse(format!(
                "`{key}` is a JSON object, not {}",
                kind_of(other)
            ))),
        }
    };
    let user_id = text("userId")?;
    let anonymous_id = text("anonymousId")?;
    let previous_id = text("previousId")?;
    let group_id = text("groupId")?;
    let message_id = match text("messageId")? {
        Some(id) if !id.is_empty() => id,
        _ => new_id(),
    };
    let present = |v: &Option<String>| v.as_deref().is_some_and(|s| !s.is_empty());
    match kind.as_str() {
        "alias" if !present(&previous_id) || !(present(&user_id) || present(&anonymous_id)) => {
            return Err(refuse(
                "an alias call needs `previousId` and `userId` (or `anonymousId`)".into(),
            ));
        }
        "alias" => {}
        _ if !present(&user_id) && !present(&anonymous_id) => {
            return Err(refuse(format!(
                "a {kind} call needs `userId` or `anonymousId`"
            )));
        }
        "group" if !present(&group_id) => {
            return Err(refuse("a group call needs `groupId`".into()));
        }
        _ => {}
    }
    let event = match kind.as_str() {
        "track" => match text("event")? {
            Some(e) if !e.trim().is_empty() => Some(e),
            _ => {
                return Err(refuse(
                    "a track call needs `event`, the event's name".into(),
                ));
            }
        },
        "page" | "screen" => text("name")?,
        _ => None,
    };
    let (properties, traits) = match kind.as_str() {
        "track" | "page" | "screen" => (object("properties")?, None),
        "identify" | "group" => (None, object("traits")?),
        _ => (None, None),
    };
    let time = |key: &str| -> Result<Option<DateTime<Utc>>, Refused> {
        match m.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => parse_time(s).map(Some).ok_or_else(|| {
                refuse(format!(
                    "`{key}` `{s}` is not an ISO 8601 time (e.g. 2026-12-05T18:00:00.000Z)"
                ))
            }),
            Some(other) => Err(refuse(format!(
                "`{key}` is an ISO 8601 string, not {}",
                kind_of(other)
            ))),
        }
    };
    let original = time("timestamp")?;
    let sent = time("sentAt")?.or(env.sent_at);
    // Segment: timestamp = receivedAt - (sentAt - originalTimestamp), when the sender says
    // when it sent; otherwise its own timestamp, else the arrival.
    let corrected = match (original, sent) {
        (Some(o), Some(s)) => env.received_at.checked_sub_signed(s - o),
        (Some(o), None) => Some(o),
        (None, _) => Some(env.received_at),
    };
    let Some(corrected) = corrected.filter(|t| (1..=9999).contains(&t.year())) else {
        return Err(refuse(
            "`timestamp` corrected by `sentAt` falls outside years 1 to 9999".into(),
        ));
    };
    Ok(Row {
        message_id,
        kind,
        event,
        user_id,
        anonymous_id,
        group_id,
        previous_id,
        timestamp: iso(corrected),
        properties,
        traits,
        context: object("context")?,
        integrations: object("integrations")?,
        category: text("category")?,
        received_at: iso(env.received_at),
        sent_at: sent.map(iso),
        original_timestamp: original.map(iso),
    })
}

/// RFC 3339 in UTC with milliseconds, as Segment writes times.
pub fn iso(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// An ISO 8601 time with an offset (or `Z`); a time without one is read as UTC.
pub fn parse_time(s: &str) -> Option<DateTime<Utc>> {
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Some(t.with_timezone(&Utc));
    }
    chrono::NaiveDateTime::parse_from_str(s, "%Y-%m-%dT%H:%M:%S%.f")
        .ok()
        .map(|n| n.and_utc())
}

/// A string id, or a number written as text; null is absent.
fn id_text(v: &Value) -> Result<Option<String>, &'static str> {
    match v {
        Value::Null => Ok(None),
        Value::String(s) => Ok(Some(s.clone())),
        Value::Number(n) => Ok(Some(n.to_string())),
        other => Err(kind_of(other)),
    }
}

pub fn kind_of(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}

/// The batch's own fields, beside `batch`: `sentAt`, and `context` / `integrations` that
/// every message inherits unless it has its own (as analytics-python and Segment do).
pub fn inherit(batch_fields: &Map<String, Value>, message: &mut Value) {
    if let Value::Object(m) = message {
        for key in ["context", "integrations"] {
            if let Some(v) = batch_fields.get(key)
                && !m.contains_key(key)
            {
                m.insert(key.to_string(), v.clone());
            }
        }
    }
}

#[cfg(test)]
mod tests;
