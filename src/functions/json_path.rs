//! Segment paths in JSON text: the lookup rule every function shares (a path segment also
//! matches a flattened key: `device.id` finds `{"device_id": ..}`, so `context.device.id` works
//! on a warehouse's `context_device_id` column) and a scanner that finds a path's value in JSON
//! text without parsing the whole document.

use serde_json::Value;

use super::json_depth;

/// Looks a Segment path up in a parsed JSON value; see the module docs for flattened keys.
pub fn lookup<'a>(v: &'a Value, segs: &[&str]) -> Option<&'a Value> {
    if segs.is_empty() {
        return Some(v);
    }
    let obj = v.as_object()?;
    find_path(segs, |k| obj.get(k), lookup)
}

/// The path rule every lookup shares, given how to find a key of the object at hand and how
/// to look the rest of the path up in what it holds: `segs[0]` then the rest, else a flattened
/// key (`device_id` for `device.id`, `traits_email` for `traits.email`) then the rest.
/// `segs` is not empty.
fn find_path<T>(
    segs: &[&str],
    key: impl Fn(&str) -> Option<T>,
    rest: impl Fn(T, &[&str]) -> Option<T>,
) -> Option<T> {
    if let Some(inner) = key(segs[0])
        && let Some(found) = rest(inner, &segs[1..])
    {
        return Some(found);
    }
    let mut flat = segs[0].to_string();
    for i in 1..segs.len() {
        flat.push('_');
        flat.push_str(segs[i]);
        if let Some(inner) = key(&flat)
            && let Some(found) = rest(inner, &segs[i + 1..])
        {
            return Some(found);
        }
    }
    None
}

/// `lookup` + `value_text` on JSON text without building a value: the text is checked to be
/// JSON without allocating, then only the path's keys are found by skipping over the rest.
/// Gives what parsing to a [`Value`] and looking up would give (the last of duplicate keys
/// wins, as in a parsed map), or None for text that is not JSON.
pub fn text_at_path<'a>(text: &'a str, segs: &[&str]) -> Option<std::borrow::Cow<'a, str>> {
    if !json_depth::valid(text) {
        return None;
    }
    let raw = raw_lookup(text.trim(), segs)?;
    raw_value_text(raw)
}

fn raw_lookup<'a>(v: &'a str, segs: &[&str]) -> Option<&'a str> {
    if segs.is_empty() {
        return Some(v);
    }
    if !v.starts_with('{') {
        return None;
    }
    find_path(segs, |k| raw_key(v, k), raw_lookup)
}

/// The raw value of the last `key` of the object text `obj` (valid JSON).
fn raw_key<'a>(obj: &'a str, key: &str) -> Option<&'a str> {
    let mut found = None;
    for_each_entry(obj, |k, v| {
        if key_is(k, key) {
            found = Some(v);
        }
    });
    found
}

/// Whether the raw key text (between its quotes) spells `key`.
fn key_is(raw: &str, key: &str) -> bool {
    if raw.contains('\\') {
        serde_json::from_str::<String>(&format!("\"{raw}\"")).is_ok_and(|k| k == key)
    } else {
        raw == key
    }
}

/// Calls `f(raw key, raw value)` for each entry of the object text `obj` (valid JSON, trimmed),
/// in order.
pub(crate) fn each_entry<'a>(obj: &'a str, f: impl FnMut(&'a str, &'a str)) {
    for_each_entry(obj, f)
}

/// Calls `f(raw key, raw value)` for each entry of the object text `obj` (valid JSON), in order.
fn for_each_entry<'a>(obj: &'a str, mut f: impl FnMut(&'a str, &'a str)) {
    let b = obj.as_bytes();
    let mut i = skip_ws(b, 1);
    while i < b.len() && b[i] == b'"' {
        let key_end = skip_string(b, i);
        let start = skip_ws(b, skip_ws(b, key_end) + 1);
        let end = skip_value(b, start);
        f(&obj[i + 1..key_end - 1], &obj[start..end]);
        i = skip_ws(b, end);
        if i < b.len() && b[i] == b',' {
            i = skip_ws(b, i + 1);
        }
    }
}

/// Like [`raw_lookup`] on an object whose top-level entries are already split out.
fn entries_lookup<'a>(entries: &[(&'a str, &'a str)], segs: &[&str]) -> Option<&'a str> {
    let last = |key: &str| {
        entries
            .iter()
            .rev()
            .find(|(k, _)| key_is(k, key))
            .map(|e| e.1)
    };
    find_path(segs, last, raw_lookup)
}

fn skip_ws(b: &[u8], mut i: usize) -> usize {
    while i < b.len() && matches!(b[i], b' ' | b'\n' | b'\r' | b'\t') {
        i += 1;
    }
    i
}

/// From an opening quote to just after the closing one.
fn skip_string(b: &[u8], i: usize) -> usize {
    let mut j = i + 1;
    while j < b.len() && b[j] != b'"' {
        j += if b[j] == b'\\' { 2 } else { 1 };
    }
    j + 1
}

fn skip_value(b: &[u8], i: usize) -> usize {
    match b.get(i) {
        Some(b'"') => skip_string(b, i),
        Some(b'{' | b'[') => {
            let mut depth = 0usize;
            let mut j = i;
            while j < b.len() {
                match b[j] {
                    b'"' => {
                        j = skip_string(b, j);
                        continue;
                    }
                    b'{' | b'[' => depth += 1,
                    b'}' | b']' => {
                        depth -= 1;
                        if depth == 0 {
                            return j + 1;
                        }
                    }
                    _ => {}
                }
                j += 1;
            }
            j
        }
        _ => {
            let mut j = i;
            while j < b.len() && !matches!(b[j], b',' | b'}' | b']' | b' ' | b'\n' | b'\r' | b'\t')
            {
                j += 1;
            }
            j
        }
    }
}

/// [`value_text`] of raw JSON value text.
fn raw_value_text(raw: &str) -> Option<std::borrow::Cow<'_, str>> {
    use std::borrow::Cow;
    let b = raw.as_bytes();
    match b.first()? {
        b'"' if !raw.contains('\\') => Some(Cow::Borrowed(&raw[1..raw.len() - 1])),
        b'n' => None,
        b't' | b'f' => Some(Cow::Borrowed(raw)),
        // Whole numbers keep their spelling; serde_json spells `-0` as `-0.0`.
        b'-' | b'0'..=b'9' if b[1..].iter().all(u8::is_ascii_digit) && raw != "-0" => {
            Some(Cow::Borrowed(raw))
        }
        _ => match serde_json::from_str::<Value>(raw) {
            Ok(v) => value_text(&v).map(Cow::Owned),
            // An object or array deeper than serde_json parses: its text as it is.
            Err(_) if matches!(b[0], b'{' | b'[') && json_depth::valid(raw) => {
                Some(Cow::Borrowed(raw))
            }
            Err(_) => None,
        },
    }
}

/// [`text_at_path`] of several paths: calls `f(i, text)` for each path `i`, scanning the
/// object's entries once.
pub(super) fn texts_at_paths(
    text: Option<&str>,
    segs: &[Vec<&str>],
    mut f: impl FnMut(usize, Option<&str>),
) {
    let valid = text
        .filter(|t| json_depth::valid(t))
        .map(str::trim)
        .filter(|t| t.starts_with('{'));
    let mut entries: Vec<(&str, &str)> = Vec::with_capacity(16);
    if let Some(t) = valid {
        for_each_entry(t, |k, v| entries.push((k, v)));
    }
    for (i, s) in segs.iter().enumerate() {
        let v = valid
            .and_then(|_| entries_lookup(&entries, s))
            .and_then(raw_value_text);
        f(i, v.as_deref());
    }
}

/// The text form of a JSON value: strings unquoted, null as None, the rest as JSON.
pub fn value_text(v: &Value) -> Option<String> {
    match v {
        Value::Null => None,
        Value::String(s) => Some(s.clone()),
        other => Some(other.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lookup_finds_nested_and_flattened_keys() {
        let v: Value = serde_json::from_str(
            r#"{"device":{"id":"d1"},"traits_email":"a@b.c","library_name":"js","x":{"y_z":1}}"#,
        )
        .unwrap();
        assert_eq!(lookup(&v, &["device", "id"]), Some(&Value::from("d1")));
        assert_eq!(
            lookup(&v, &["traits", "email"]),
            Some(&Value::from("a@b.c"))
        );
        assert_eq!(lookup(&v, &["library", "name"]), Some(&Value::from("js")));
        assert_eq!(lookup(&v, &["x", "y", "z"]), Some(&Value::from(1)));
        assert_eq!(lookup(&v, &["device", "type"]), None);
        assert_eq!(value_text(&Value::from(2.5)), Some("2.5".to_string()));
        assert_eq!(value_text(&Value::Null), None);
    }

    /// The scanner gives what parsing and looking up gives, on tricky text.
    #[test]
    fn text_at_path_agrees_with_parsing() {
        let texts = [
            r#"{"device":{"id":"d1","type":"ios"},"traits_email":"a@b.c","x":{"y_z":1}}"#,
            r#" { "a" : "x\"y" , "b":[1,{"c":"}"}], "n": null, "t": true, "f": -1.50e1 } "#,
            r#"{"a":1,"a":2,"k\u0065y":"escaped key","s":"\u00e9t\u00e9","o":{"p":[1, 2]}}"#,
            r#"{"price":"12.5","zero":-0,"neg":-3,"big":12345678901234567890,"e":1E2}"#,
            r#"{"nested":{"deep":{"er":"yes"}},"nested_deep":{"er":"flat"},"empty":{}}"#,
            r#"{"a":"broken"#,
            r#"[1,2,3]"#,
            r#""just text""#,
            r#"{}"#,
        ];
        let paths = [
            "device.id",
            "device.type",
            "traits.email",
            "x.y.z",
            "a",
            "b",
            "n",
            "t",
            "f",
            "key",
            "s",
            "o",
            "o.p",
            "price",
            "zero",
            "neg",
            "big",
            "e",
            "nested.deep.er",
            "empty",
            "missing",
            "nested.deep",
        ];
        for t in texts {
            for p in paths {
                let segs: Vec<&str> = p.split('.').collect();
                let parsed = serde_json::from_str::<Value>(t)
                    .ok()
                    .and_then(|v| lookup(&v, &segs).and_then(value_text));
                assert_eq!(
                    text_at_path(t, &segs).map(|c| c.into_owned()),
                    parsed,
                    "{p} in {t}"
                );
            }
            let all: Vec<Vec<&str>> = paths.iter().map(|p| p.split('.').collect()).collect();
            texts_at_paths(Some(t), &all, |i, v| {
                assert_eq!(
                    v.map(str::to_string),
                    text_at_path(t, &all[i]).map(|c| c.into_owned()),
                    "{} of all paths in {t}",
                    paths[i]
                );
            });
        }
    }
}
