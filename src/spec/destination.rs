//! destinations/<name>.yaml: where an audience's members are delivered (a webhook receiving
//! Segment payloads), and how hard to try. Read here so that audiences can be checked against
//! the destinations that exist; `serve::destinations` does the delivering.

use std::path::PathBuf;

use saphyr::{Scalar, YamlData};

use super::suggest;
use super::yaml::{Map, Node, Reader, as_str, kind};

const DESTINATION_KEYS: [&str; 11] = [
    "type",
    "url",
    "mode",
    "batch_size",
    "rate_limit",
    "timeout",
    "max_attempts",
    "backoff",
    "headers",
    "identifiers",
    "description",
];

/// The kinds of destination Cohort can deliver to.
pub const DESTINATION_TYPES: [&str; 1] = ["webhook"];

/// How an audience reaches a destination, as in Segment Engage (both may be on).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum DeliveryMode {
    /// `identify` with the audience key as a boolean trait (`true` entered, `false` exited).
    Identify,
    /// `track` `Audience Entered` / `Audience Exited`.
    Track,
}

impl DeliveryMode {
    pub const ALL: [DeliveryMode; 2] = [DeliveryMode::Identify, DeliveryMode::Track];

    pub fn as_str(self) -> &'static str {
        match self {
            DeliveryMode::Identify => "identify",
            DeliveryMode::Track => "track",
        }
    }
}

/// destinations/<name>.yaml: a webhook that receives Segment payloads in batches.
#[derive(Clone, Debug, serde::Serialize)]
pub struct DestinationDef {
    /// The file stem; audiences list it under `destinations:`.
    pub name: String,
    /// Relative to the space root.
    pub file: PathBuf,
    /// The URL batches are POSTed to; `${ENV_VAR}` is replaced when a sync starts.
    pub url: String,
    /// Sorted, without repeats; default `[identify]`.
    pub modes: Vec<DeliveryMode>,
    /// Messages per request; default 100.
    pub batch_size: u32,
    /// Requests per second, retries included; default 10.
    pub rate_limit: f64,
    /// How long one request may take; default 10 s.
    pub timeout_ms: u64,
    /// Tries per request before its messages are dead-lettered; default 5.
    pub max_attempts: u32,
    /// The first retry's delay, doubled at each further retry; default 1 s.
    pub backoff_ms: u64,
    /// Extra request headers in file order; values may hold `${ENV_VAR}`.
    pub headers: Vec<(String, String)>,
    /// Identifier types sent (one message per value); `None`: every type.
    pub identifiers: Option<Vec<String>>,
    pub description: Option<String>,
}

impl DestinationDef {
    /// Whether messages for identifiers of `id_type` go to this destination.
    pub fn sends(&self, id_type: &str) -> bool {
        self.identifiers
            .as_ref()
            .is_none_or(|ids| ids.iter().any(|t| t == id_type))
    }
}

/// Replaces every `${NAME}` in `text` with the environment variable NAME. Errors name the
/// first variable that is not set, or an unclosed `${`.
pub fn substitute_env(text: &str) -> Result<String, String> {
    substitute_with(text, |name| std::env::var(name).ok())
}

fn substitute_with(text: &str, lookup: impl Fn(&str) -> Option<String>) -> Result<String, String> {
    let mut out = String::new();
    let mut rest = text;
    while let Some(start) = rest.find("${") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let Some(end) = after.find('}') else {
            return Err(format!("`${{` without a closing `}}` in `{text}`"));
        };
        let name = &after[..end];
        match lookup(name) {
            Some(v) => out.push_str(&v),
            None => return Err(format!("environment variable {name} is not set")),
        }
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

/// Checks the `${NAME}` references of a value: closed, and NAME an environment variable name.
fn check_env_refs(r: &mut Reader<'_>, node: &Node<'_>, key: &str, value: &str) {
    let mut rest = value;
    while let Some(start) = rest.find("${") {
        let after = &rest[start + 2..];
        let Some(end) = after.find('}') else {
            r.error_at(node, format!("`{key}`: `${{` without a closing `}}`"));
            return;
        };
        let name = &after[..end];
        let ok = name.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_')
            && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
        if !ok {
            r.error_at(
                node,
                format!("`{key}`: `${{{name}}}` is not an environment variable name"),
            )
            .help = Some("write `${NAME}` with letters, digits and `_`".into());
            return;
        }
        rest = &after[end + 1..];
    }
}

/// A duration: `250ms`, `10s`, `2m`, or a whole number of seconds.
fn duration_ms(r: &mut Reader<'_>, key: &str, node: &Node<'_>) -> Option<u64> {
    let bad = |r: &mut Reader<'_>| {
        r.error_at(
            node,
            format!(
                "`{key}`: expected a duration such as `500ms`, `10s` or `2m`, found {}",
                kind(node)
            ),
        );
        None
    };
    match &node.data {
        YamlData::Value(Scalar::Integer(i)) if *i >= 1 => Some(*i as u64 * 1000),
        YamlData::Value(Scalar::String(s)) => {
            let s = s.trim();
            let (digits, scale) = if let Some(d) = s.strip_suffix("ms") {
                (d, 1)
            } else if let Some(d) = s.strip_suffix('s') {
                (d, 1000)
            } else if let Some(d) = s.strip_suffix('m') {
                (d, 60_000)
            } else {
                return bad(r);
            };
            match digits.trim().parse::<u64>() {
                Ok(n) if n >= 1 => Some(n * scale),
                _ => bad(r),
            }
        }
        _ => bad(r),
    }
}

/// Reads one destination file. `id_types` are the space's identifier types (for
/// `identifiers:`).
pub(crate) fn read_destination(
    r: &mut Reader<'_>,
    name: Option<String>,
    id_types: &[String],
) -> Option<DestinationDef> {
    let doc = r.parse().ok()?;
    let Some(doc) = doc else {
        let loc = r.file_start();
        r.push(super::Diagnostic::error(
            Some(loc),
            format!("{} is empty", super::slash_path(&r.file)),
        ))
        .help = Some("a destination needs at least `type: webhook` and `url: ...`".into());
        return None;
    };
    let map = r.map(&doc, "a destination", &DESTINATION_KEYS)?;
    let mut ok = true;

    if let Some(node) = r.required(&map, "type") {
        if let Some(t) = r.string("type", node) {
            if !DESTINATION_TYPES.contains(&t.as_str()) {
                let help = match suggest(&t, &DESTINATION_TYPES) {
                    Some(s) => format!("did you mean `{s}`?"),
                    None => format!("known types: {}", DESTINATION_TYPES.join(", ")),
                };
                r.error_at(node, format!("unknown destination type `{t}`"))
                    .help = Some(help);
                ok = false;
            }
        } else {
            ok = false;
        }
    } else {
        ok = false;
    }

    let url = r.required(&map, "url").and_then(|node| {
        let url = r.non_empty_string("url", node)?;
        check_env_refs(r, node, "url", &url);
        let shown = substitute_with(&url, |_| Some("x".into())).unwrap_or_default();
        if !(shown.starts_with("http://") || shown.starts_with("https://")) {
            r.error_at(
                node,
                format!("`url`: `{url}` is not an http:// or https:// URL"),
            );
            return None;
        }
        Some(url)
    });

    let modes = mode(r, &map);
    let batch_size = map
        .get("batch_size")
        .map_or(Some(100), |n| r.positive("batch_size", n));
    let max_attempts = map
        .get("max_attempts")
        .map_or(Some(5), |n| r.positive("max_attempts", n));
    let rate_limit = map.get("rate_limit").map_or(Some(10.0), |n| match n.data {
        YamlData::Value(Scalar::Integer(i)) if i >= 1 => Some(i as f64),
        YamlData::Value(Scalar::FloatingPoint(f)) if f.into_inner() > 0.0 => Some(f.into_inner()),
        _ => {
            r.error_at(
                n,
                format!(
                    "`rate_limit`: expected requests per second (a number above 0), found {}",
                    r.raw_text(n)
                ),
            );
            None
        }
    });
    let timeout_ms = map
        .get("timeout")
        .map_or(Some(10_000), |n| duration_ms(r, "timeout", n));
    let backoff_ms = map
        .get("backoff")
        .map_or(Some(1_000), |n| duration_ms(r, "backoff", n));
    let headers = headers(r, &map);
    let identifiers = map.get("identifiers").map(|n| {
        let mut out: Vec<String> = Vec::new();
        for (t, item) in r.string_list("identifiers", n, true) {
            if !id_types.contains(&t) {
                let known: Vec<&str> = id_types.iter().map(String::as_str).collect();
                let help = match suggest(&t, &known) {
                    Some(s) => format!("did you mean `{s}`?"),
                    None => format!("the space's identifier types: {}", known.join(", ")),
                };
                r.error_at(item, format!("unknown identifier type `{t}`"))
                    .help = Some(help);
            } else if out.contains(&t) {
                r.error_at(item, format!("identifier type `{t}` is listed twice"));
            } else {
                out.push(t);
            }
        }
        out
    });
    let description = r.opt_string(&map, "description");
    if !ok || !r.diags.iter().all(|d| !d.is_error()) {
        return None;
    }
    Some(DestinationDef {
        name: name?,
        file: r.file.clone(),
        url: url?,
        modes: modes?,
        batch_size: batch_size?,
        rate_limit: rate_limit?,
        timeout_ms: timeout_ms?,
        max_attempts: max_attempts?,
        backoff_ms: backoff_ms?,
        headers: headers?,
        identifiers,
        description,
    })
}

/// `mode:` identify, track or a list of both; default identify.
fn mode(r: &mut Reader<'_>, map: &Map<'_, '_>) -> Option<Vec<DeliveryMode>> {
    let Some(node) = map.get("mode") else {
        return Some(vec![DeliveryMode::Identify]);
    };
    let mut out = Vec::new();
    let mut ok = true;
    let items = r.string_list("mode", node, true);
    if items.is_empty() {
        r.error_at(node, "`mode` needs `identify`, `track` or both");
        return None;
    }
    for (m, item) in items {
        match DeliveryMode::ALL.into_iter().find(|d| d.as_str() == m) {
            Some(d) if out.contains(&d) => {
                r.error_at(item, format!("mode `{m}` is listed twice"));
                ok = false;
            }
            Some(d) => out.push(d),
            None => {
                let names = DeliveryMode::ALL.map(DeliveryMode::as_str);
                let help = match suggest(&m, &names) {
                    Some(s) => format!("did you mean `{s}`?"),
                    None => "`mode` is `identify`, `track` or both".into(),
                };
                r.error_at(item, format!("unknown mode `{m}`")).help = Some(help);
                ok = false;
            }
        }
    }
    out.sort();
    ok.then_some(out)
}

/// `headers:` a mapping of header name to text.
fn headers(r: &mut Reader<'_>, map: &Map<'_, '_>) -> Option<Vec<(String, String)>> {
    let Some(node) = map.get("headers") else {
        return Some(Vec::new());
    };
    let YamlData::Mapping(m) = &node.data else {
        r.error_at(
            node,
            format!("`headers`: expected a mapping, found {}", kind(node)),
        );
        return None;
    };
    let mut out = Vec::new();
    let mut ok = true;
    for (k, v) in m.iter() {
        let Some(name) = as_str(k) else {
            r.error_at(
                k,
                format!("header names must be strings, found {}", kind(k)),
            );
            ok = false;
            continue;
        };
        let valid = !name.is_empty()
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b));
        if !valid {
            r.error_at(k, format!("`{name}` is not a valid header name"));
            ok = false;
            continue;
        }
        let value = match &v.data {
            YamlData::Value(Scalar::String(s)) => s.to_string(),
            YamlData::Value(Scalar::Integer(_) | Scalar::FloatingPoint(_)) => r.raw_text(v),
            _ => {
                r.error_at(
                    v,
                    format!("header `{name}`: expected text, found {}", kind(v)),
                );
                ok = false;
                continue;
            }
        };
        check_env_refs(r, v, name, &value);
        out.push((name.to_owned(), value));
    }
    ok.then_some(out)
}

/// Where an audience names its destinations: used to point at an unknown one.
pub(crate) fn unknown_destination_help(name: &str, known: &[String]) -> String {
    let names: Vec<&str> = known.iter().map(String::as_str).collect();
    match suggest(name, &names) {
        Some(s) => format!("did you mean `{s}`?"),
        None if names.is_empty() => {
            format!("create destinations/{name}.yaml (`type: webhook`, `url: ...`)")
        }
        None => format!(
            "known destinations: {}; or create destinations/{name}.yaml",
            names.join(", ")
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn env_substitution() {
        let env = |n: &str| (n == "TOKEN").then(|| "s3cret".to_string());
        assert_eq!(
            substitute_with("Bearer ${TOKEN}!", env).unwrap(),
            "Bearer s3cret!"
        );
        assert_eq!(substitute_with("plain", env).unwrap(), "plain");
        assert_eq!(
            substitute_with("${MISSING}", env).unwrap_err(),
            "environment variable MISSING is not set"
        );
        assert!(substitute_with("${TOKEN", env).is_err());
    }
}
