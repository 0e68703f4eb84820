//! JSON text of any depth: serde_json refuses documents nested deeper than 128 levels (its
//! guard against stack overflow), which would set aside valid events as "not a JSON object".
//! This module checks JSON without recursion (an explicit stack, so no depth limit but
//! memory) and reads the top level of deep objects by scanning, so Cohort's functions accept
//! what serde_json alone would refuse. Shallow text still goes through serde_json first.

use serde_json::Value;

/// Whether `text` is one JSON value (with surrounding white space), at any depth.
pub fn valid(text: &str) -> bool {
    serde_json::from_str::<serde::de::IgnoredAny>(text).is_ok() || check(text.as_bytes())
}

/// Whether `text` is a JSON object, at any depth.
pub fn is_object(text: &str) -> bool {
    text.trim_start_matches([' ', '\t', '\n', '\r'])
        .starts_with('{')
        && valid(text)
}

/// Parses `text` with serde_json when it can (depth up to 128).
pub fn parse(text: &str) -> Option<Value> {
    serde_json::from_str(text).ok()
}

/// The top-level entries of a JSON object deeper than serde_json parses: (key, raw value
/// text), in order, duplicates included. None when `text` is not a JSON object.
pub fn deep_entries(text: &str) -> Option<Vec<(String, &str)>> {
    if !is_object(text) {
        return None;
    }
    let mut out = Vec::new();
    let mut bad_key = false;
    crate::functions::each_entry(text.trim(), |k, v| match key_text(k) {
        Some(k) => out.push((k, v)),
        None => bad_key = true,
    });
    (!bad_key).then_some(out)
}

/// A raw key (the text between its quotes) with its escapes decoded.
fn key_text(raw: &str) -> Option<String> {
    if raw.contains('\\') {
        serde_json::from_str::<String>(&format!("\"{raw}\"")).ok()
    } else {
        Some(raw.to_string())
    }
}

/// What a raw JSON value holds, as [`crate::functions::json_value_kind`] names it; objects
/// and arrays are told by their first byte, so their depth does not matter.
pub fn raw_kind(raw: &str) -> Option<&'static str> {
    match raw.as_bytes().first()? {
        b'{' => Some("object"),
        b'[' => Some("array"),
        _ => parse(raw).map(|v| crate::functions::json_value_kind(&v)),
    }
}

/// A JSON syntax check that keeps open containers on a heap stack instead of recursing.
fn check(b: &[u8]) -> bool {
    let mut stack: Vec<u8> = Vec::new();
    let mut i = ws(b, 0);
    'value: loop {
        // A value starts at `i`.
        i = ws(b, i);
        match b.get(i) {
            Some(b'{') => {
                i = ws(b, i + 1);
                if b.get(i) == Some(&b'}') {
                    i += 1;
                } else {
                    stack.push(b'{');
                    match key(b, i) {
                        Some(j) => i = j,
                        None => return false,
                    }
                    continue 'value;
                }
            }
            Some(b'[') => {
                i = ws(b, i + 1);
                if b.get(i) == Some(&b']') {
                    i += 1;
                } else {
                    stack.push(b'[');
                    continue 'value;
                }
            }
            Some(b'"') => match string(b, i) {
                Some(j) => i = j,
                None => return false,
            },
            Some(b't') => match literal(b, i, b"true") {
                Some(j) => i = j,
                None => return false,
            },
            Some(b'f') => match literal(b, i, b"false") {
                Some(j) => i = j,
                None => return false,
            },
            Some(b'n') => match literal(b, i, b"null") {
                Some(j) => i = j,
                None => return false,
            },
            Some(b'-' | b'0'..=b'9') => match number(b, i) {
                Some(j) => i = j,
                None => return false,
            },
            _ => return false,
        }
        // After a value: close containers, or move to the next element.
        loop {
            i = ws(b, i);
            let Some(&open) = stack.last() else {
                return i == b.len();
            };
            match (open, b.get(i)) {
                (b'{', Some(b',')) => match key(b, ws(b, i + 1)) {
                    Some(j) => {
                        i = j;
                        continue 'value;
                    }
                    None => return false,
                },
                (b'[', Some(b',')) => {
                    i += 1;
                    continue 'value;
                }
                (b'{', Some(b'}')) | (b'[', Some(b']')) => {
                    stack.pop();
                    i += 1;
                }
                _ => return false,
            }
        }
    }
}

fn ws(b: &[u8], mut i: usize) -> usize {
    while matches!(b.get(i), Some(b' ' | b'\t' | b'\n' | b'\r')) {
        i += 1;
    }
    i
}

/// A key and its colon, from `i`; returns where its value starts.
fn key(b: &[u8], i: usize) -> Option<usize> {
    if b.get(i) != Some(&b'"') {
        return None;
    }
    let j = ws(b, string(b, i)?);
    (b.get(j) == Some(&b':')).then_some(j + 1)
}

/// A string from its opening quote at `i`; returns the index after the closing quote.
fn string(b: &[u8], i: usize) -> Option<usize> {
    let mut j = i + 1;
    loop {
        match *b.get(j)? {
            b'"' => return Some(j + 1),
            b'\\' => match *b.get(j + 1)? {
                b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't' => j += 2,
                b'u' => {
                    let hex = b.get(j + 2..j + 6)?;
                    if !hex.iter().all(u8::is_ascii_hexdigit) {
                        return None;
                    }
                    j += 6;
                }
                _ => return None,
            },
            c if c < 0x20 => return None,
            _ => j += 1,
        }
    }
}

fn literal(b: &[u8], i: usize, word: &[u8]) -> Option<usize> {
    (b.get(i..i + word.len())? == word).then_some(i + word.len())
}

/// `-? (0 | [1-9][0-9]*) (. [0-9]+)? ([eE] [+-]? [0-9]+)?`
fn number(b: &[u8], mut i: usize) -> Option<usize> {
    let digits = |b: &[u8], mut i: usize| {
        let start = i;
        while b.get(i).is_some_and(u8::is_ascii_digit) {
            i += 1;
        }
        (i > start).then_some(i)
    };
    if b.get(i) == Some(&b'-') {
        i += 1;
    }
    i = match b.get(i)? {
        b'0' => i + 1,
        b'1'..=b'9' => digits(b, i)?,
        _ => return None,
    };
    if b.get(i) == Some(&b'.') {
        i = digits(b, i + 1)?;
    }
    if matches!(b.get(i), Some(b'e' | b'E')) {
        i += 1;
        if matches!(b.get(i), Some(b'+' | b'-')) {
            i += 1;
        }
        i = digits(b, i)?;
    }
    Some(i)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nested(depth: usize) -> String {
        format!("{}1{}", r#"{"a":"#.repeat(depth), "}".repeat(depth))
    }

    #[test]
    fn agrees_with_serde_where_serde_can_parse() {
        let texts = [
            r#"{"a":[1,2,{"b":null}],"c":"x\"y","d":-1.5e3,"e":true,"f":false}"#,
            r#" { } "#,
            "[]",
            r#""text""#,
            "0",
            "-0.0",
            r#"{"a":1,}"#,
            r#"{"a" 1}"#,
            r#"[1,]"#,
            "01",
            "1.",
            "-",
            r#"{"a":"\x"}"#,
            "{\"a\":\"tab\there\"}",
            r#"{"a":"\u00e9"}"#,
            r#"{"a":"\u00g9"}"#,
            "nul",
            "{} {}",
            "",
            r#"{"a":[}"#,
            r#"{"a":{]}"#,
        ];
        for t in texts {
            let serde = serde_json::from_str::<serde::de::IgnoredAny>(t).is_ok();
            assert_eq!(check(t.as_bytes()), serde, "{t}");
        }
    }

    #[test]
    fn deep_objects_are_json() {
        let deep = nested(5_000);
        assert!(
            serde_json::from_str::<Value>(&deep).is_err(),
            "serde stops at 128"
        );
        assert!(is_object(&deep));
        let entries = deep_entries(&deep).unwrap();
        assert_eq!(entries.len(), 1);
        assert_eq!(entries[0].0, "a");
        assert_eq!(raw_kind(entries[0].1), Some("object"));
        let broken = &deep[..deep.len() - 1];
        assert!(!valid(broken));
        assert!(!is_object(&format!("[{deep}]")));
    }
}
