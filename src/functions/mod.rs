//! Cohort's own scalar functions, used by compiled plans to read JSON-shaped event fields.
//!
//! Every preset normalizes `properties`, `traits` and `context` into JSON object text, whatever
//! the source stored (JSON text, structs or flattened columns). These functions read and build
//! that text:
//!
//! - `cohort_json_get(json, 'a.b.c')` returns the value at a Segment path as text (numbers and
//!   booleans in their JSON spelling, strings unquoted, objects and arrays as JSON), or null.
//!   A path segment also matches a flattened key: `device.id` finds `{"device_id": ..}`, so
//!   `context.device.id` works on a warehouse's `context_device_id` column.
//! - `cohort_json_valid(text)` is true for null or a JSON object, false otherwise.
//! - `cohort_json_object('k1', v1, 'k2', v2, ...)` builds object text from any Arrow values,
//!   leaving out null values.
//! - `cohort_to_json(v)` turns a struct, list or scalar into JSON text.
//! - `cohort_external_ids(context, 'type')` lists the `id` of every `context.externalIds`
//!   entry whose `type` is the given one.
//! - `cohort_id_node(id_type, id_value)` is a stable 64-bit code of an identifier: the same
//!   identifier gets the same code in every run, so graphs from two runs join on it.
//! - `cohort_text(bytes)` reads binary as UTF-8 text, replacing bytes that are not UTF-8 with
//!   U+FFFD instead of failing the run.
//! - `cohort_json_paths(json, 'p1', 'p2', ...)` is `cohort_json_get` of several paths at once,
//!   as a struct with one text field per path (named by the path): the text is parsed once
//!   per row instead of once per path, which is what a plan reading many properties needs.
//! - `cohort_json_keys(json)` lists the top-level keys of an object, and
//!   `cohort_json_kind(json, key)` says what the top-level `key` holds (`null`, `bool`, `int`,
//!   `float`, `timestamp` for an RFC 3339 string, `string`, `object`, `array`), or null when the key is absent: custom traits need
//!   to tell an explicit null (which removes a trait) from a missing key.

use std::sync::{Arc, LazyLock};

use datafusion::arrow::array::{
    Array, ArrayRef, AsArray, BooleanBuilder, Int64Builder, ListBuilder, StringBuilder,
};
use datafusion::arrow::datatypes::DataType;
use datafusion::arrow::util::display::{ArrayFormatter, FormatOptions};
use datafusion::common::{Result, ScalarValue, exec_err};
use datafusion::logical_expr::{
    ColumnarValue, Expr, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, Volatility,
};
use serde_json::{Map, Value};

pub mod json_depth;

/// All of Cohort's functions, to register on a session.
pub fn all() -> Vec<Arc<ScalarUDF>> {
    vec![
        JSON_GET.clone(),
        JSON_VALID.clone(),
        JSON_OBJECT.clone(),
        TO_JSON.clone(),
        EXTERNAL_IDS.clone(),
        ID_NODE.clone(),
        TEXT.clone(),
        JSON_KEYS.clone(),
        JSON_KIND.clone(),
        JSON_PATHS.clone(),
    ]
}

static JSON_PATHS: LazyLock<Arc<ScalarUDF>> =
    LazyLock::new(|| Arc::new(ScalarUDF::from(JsonPaths::new())));

/// `cohort_json_paths(json, 'p1', ...)`.
pub fn json_paths(json: Expr, paths: &[String]) -> Expr {
    let mut args = vec![json];
    args.extend(paths.iter().map(|p| datafusion::prelude::lit(p.as_str())));
    JSON_PATHS.call(args)
}

/// The `(json column, path)` of a `cohort_json_get(<column>, '<path>')` call.
pub fn as_json_get(e: &Expr) -> Option<(&datafusion::common::Column, &str)> {
    let Expr::ScalarFunction(f) = e else {
        return None;
    };
    if f.func.name() != "cohort_json_get" {
        return None;
    }
    match f.args.as_slice() {
        [
            Expr::Column(c),
            Expr::Literal(ScalarValue::Utf8(Some(p)), _),
        ] => Some((c, p.as_str())),
        _ => None,
    }
}

#[derive(Debug, PartialEq, Eq, Hash)]
struct JsonPaths {
    signature: Signature,
}

impl JsonPaths {
    fn new() -> Self {
        Self {
            signature: Signature::variadic_any(Volatility::Immutable),
        }
    }
}

fn path_args(args: &[Option<&ScalarValue>]) -> Result<Vec<String>> {
    args.iter()
        .map(|a| match a {
            Some(ScalarValue::Utf8(Some(p)))
            | Some(ScalarValue::LargeUtf8(Some(p)))
            | Some(ScalarValue::Utf8View(Some(p))) => Ok(p.clone()),
            _ => exec_err!("cohort_json_paths needs literal text paths"),
        })
        .collect()
}

impl ScalarUDFImpl for JsonPaths {
    fn name(&self) -> &str {
        "cohort_json_paths"
    }
    fn signature(&self) -> &Signature {
        &self.signature
    }
    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        datafusion::common::internal_err!("cohort_json_paths types its result from its paths")
    }
    fn return_field_from_args(
        &self,
        args: datafusion::logical_expr::ReturnFieldArgs,
    ) -> Result<datafusion::arrow::datatypes::FieldRef> {
        use datafusion::arrow::datatypes::Field;
        let paths = path_args(args.scalar_arguments.get(1..).unwrap_or_default())?;
        let fields: Vec<Field> = paths
            .iter()
            .map(|p| Field::new(p, DataType::Utf8, true))
            .collect();
        Ok(Arc::new(Field::new(
            self.name(),
            DataType::Struct(fields.into()),
            true,
        )))
    }
    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        use datafusion::arrow::array::StructArray;
        let n = args.number_rows;
        let scalars: Vec<Option<&ScalarValue>> = args.args[1..]
            .iter()
            .map(|a| match a {
                ColumnarValue::Scalar(s) => Some(s),
                ColumnarValue::Array(_) => None,
            })
            .collect();
        let paths = path_args(&scalars)?;
        let segs: Vec<Vec<&str>> = paths.iter().map(|p| p.split('.').collect()).collect();
        let needles: Vec<&str> = segs
            .iter()
            .map(|s| s.last().copied().unwrap_or_default())
            .collect();
        let input = text_arg(&args.args[0], n)?;
        let input = Texts::new(&input)?;
        let mut outs: Vec<StringBuilder> = paths
            .iter()
            .map(|_| StringBuilder::with_capacity(n, n * 4))
            .collect();
        for i in 0..n {
            let text = input.get(i);
            // As in cohort_json_get: text holding none of the last segments is not parsed.
            let text =
                text.filter(|t| t.contains("\\u") || needles.iter().any(|nd| t.contains(nd)));
            texts_at_paths(text, &segs, |k, v| match v {
                Some(t) => outs[k].append_value(t),
                None => outs[k].append_null(),
            });
        }
        let fields: Vec<datafusion::arrow::datatypes::FieldRef> = paths
            .iter()
            .map(|p| {
                Arc::new(datafusion::arrow::datatypes::Field::new(
                    p,
                    DataType::Utf8,
                    true,
                ))
            })
            .collect();
        let arrays: Vec<ArrayRef> = outs
            .iter_mut()
            .map(|b| Arc::new(b.finish()) as ArrayRef)
            .collect();
        Ok(ColumnarValue::Array(Arc::new(StructArray::try_new(
            fields.into(),
            arrays,
            None,
        )?)))
    }
}

static JSON_KEYS: LazyLock<Arc<ScalarUDF>> =
    LazyLock::new(|| Arc::new(ScalarUDF::from(JsonKeys::new())));
static JSON_KIND: LazyLock<Arc<ScalarUDF>> =
    LazyLock::new(|| Arc::new(ScalarUDF::from(JsonKind::new())));

/// `cohort_json_keys(json)`.
pub fn json_keys(json: Expr) -> Expr {
    JSON_KEYS.call(vec![json])
}

/// `cohort_json_kind(json, key)`.
pub fn json_kind(json: Expr, key: Expr) -> Expr {
    JSON_KIND.call(vec![json, key])
}

/// The kind of a JSON value, as `cohort_json_kind` names it.
pub fn json_value_kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "bool",
        Value::Number(n) if n.is_i64() || n.is_u64() => "int",
        Value::Number(_) => "float",
        Value::String(s) if looks_like_time(s) => "timestamp",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

/// An RFC 3339 time such as `2026-01-31T09:00:00Z` (what Segment's libraries send).
fn looks_like_time(s: &str) -> bool {
    s.len() >= 20
        && s.as_bytes().get(10) == Some(&b'T')
        && chrono::DateTime::parse_from_rfc3339(s).is_ok()
}

#[derive(Debug, PartialEq, Eq, Hash)]
struct JsonKeys {
    signature: Signature,
}

impl JsonKeys {
    fn new() -> Self {
        Self {
            signature: Signature::any(1, Volatility::Immutable),
        }
    }
}

impl ScalarUDFImpl for JsonKeys {
    fn name(&self) -> &str {
        "cohort_json_keys"
    }
    fn signature(&self) -> &Signature {
        &self.signature
    }
    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(DataType::List(Arc::new(
            datafusion::arrow::datatypes::Field::new_list_field(DataType::Utf8, true),
        )))
    }
    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let input = string_arg(&args.args[0], args.number_rows)?;
        let input = input.as_string::<i32>();
        let mut out = ListBuilder::new(StringBuilder::new());
        for i in 0..input.len() {
            if input.is_null(i) {
                out.append_null();
                continue;
            }
            match serde_json::from_str::<Value>(input.value(i)) {
                Ok(Value::Object(m)) => {
                    for k in m.keys() {
                        out.values().append_value(k);
                    }
                    out.append(true);
                }
                Ok(_) => out.append_null(),
                // Deeper than serde_json parses: the keys of the top level, sorted and
                // distinct as a parsed map gives them.
                Err(_) => match json_depth::deep_entries(input.value(i)) {
                    Some(entries) => {
                        let keys: std::collections::BTreeSet<String> =
                            entries.into_iter().map(|(k, _)| k).collect();
                        for k in keys {
                            out.values().append_value(k);
                        }
                        out.append(true);
                    }
                    None => out.append_null(),
                },
            }
        }
        Ok(ColumnarValue::Array(Arc::new(out.finish())))
    }
}

#[derive(Debug, PartialEq, Eq, Hash)]
struct JsonKind {
    signature: Signature,
}

impl JsonKind {
    fn new() -> Self {
        Self {
            signature: Signature::any(2, Volatility::Immutable),
        }
    }
}

impl ScalarUDFImpl for JsonKind {
    fn name(&self) -> &str {
        "cohort_json_kind"
    }
    fn signature(&self) -> &Signature {
        &self.signature
    }
    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(DataType::Utf8)
    }
    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let n = args.number_rows;
        let input = string_arg(&args.args[0], n)?;
        let input = input.as_string::<i32>();
        let keys = string_arg(&args.args[1], n)?;
        let keys = keys.as_string::<i32>();
        let mut out = StringBuilder::with_capacity(n, n * 4);
        for i in 0..n {
            if input.is_null(i)
                || keys.is_null(i)
                || (!input.value(i).contains(keys.value(i)) && !input.value(i).contains("\\u"))
            {
                out.append_null();
                continue;
            }
            match serde_json::from_str::<Value>(input.value(i)) {
                Ok(Value::Object(m)) => match m.get(keys.value(i)) {
                    Some(v) => out.append_value(json_value_kind(v)),
                    None => out.append_null(),
                },
                Ok(_) => out.append_null(),
                Err(_) => {
                    let kind = json_depth::deep_entries(input.value(i)).and_then(|entries| {
                        let (_, raw) = entries.iter().rev().find(|(k, _)| k == keys.value(i))?;
                        json_depth::raw_kind(raw)
                    });
                    out.append_option(kind);
                }
            }
        }
        Ok(ColumnarValue::Array(Arc::new(out.finish())))
    }
}

static EXTERNAL_IDS: LazyLock<Arc<ScalarUDF>> =
    LazyLock::new(|| Arc::new(ScalarUDF::from(ExternalIds::new())));
static ID_NODE: LazyLock<Arc<ScalarUDF>> =
    LazyLock::new(|| Arc::new(ScalarUDF::from(IdNode::new())));
static TEXT: LazyLock<Arc<ScalarUDF>> = LazyLock::new(|| Arc::new(ScalarUDF::from(Text::new())));

/// `cohort_external_ids(context, id_type)`.
pub fn external_ids(context: Expr, id_type: &str) -> Expr {
    EXTERNAL_IDS.call(vec![context, datafusion::prelude::lit(id_type)])
}

/// `cohort_id_node(id_type, id_value)`.
pub fn id_node(id_type: Expr, id_value: Expr) -> Expr {
    ID_NODE.call(vec![id_type, id_value])
}

/// `cohort_text(bytes)`.
pub fn text_lossy(bytes: Expr) -> Expr {
    TEXT.call(vec![bytes])
}

/// The stable code of an identifier: FNV-1a over `type NUL value`, then a 64-bit finalizer
/// so that nearby strings spread over the whole range.
pub fn node_code(id_type: &str, id_value: &str) -> i64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in id_type
        .as_bytes()
        .iter()
        .chain(std::iter::once(&0u8))
        .chain(id_value.as_bytes())
    {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h ^= h >> 33;
    h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
    h ^= h >> 33;
    h = h.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    h ^= h >> 33;
    h as i64
}

static JSON_GET: LazyLock<Arc<ScalarUDF>> =
    LazyLock::new(|| Arc::new(ScalarUDF::from(JsonGet::new())));
static JSON_VALID: LazyLock<Arc<ScalarUDF>> =
    LazyLock::new(|| Arc::new(ScalarUDF::from(JsonValid::new())));
static JSON_OBJECT: LazyLock<Arc<ScalarUDF>> =
    LazyLock::new(|| Arc::new(ScalarUDF::from(JsonObject::new())));
static TO_JSON: LazyLock<Arc<ScalarUDF>> =
    LazyLock::new(|| Arc::new(ScalarUDF::from(ToJson::new())));

/// `cohort_json_get(json, path)`.
pub fn json_get(json: Expr, path: &str) -> Expr {
    JSON_GET.call(vec![json, datafusion::prelude::lit(path)])
}

/// `cohort_json_valid(text)`.
pub fn json_valid(text: Expr) -> Expr {
    JSON_VALID.call(vec![text])
}

/// `cohort_json_object(k1, v1, ...)` from (key, value) pairs.
/// With no pairs at all the result is a typed null (there is nothing to describe).
pub fn json_object(pairs: Vec<(String, Expr)>) -> Expr {
    if pairs.is_empty() {
        return datafusion::prelude::lit(ScalarValue::Utf8(None));
    }
    let mut args = Vec::with_capacity(pairs.len() * 2);
    for (k, v) in pairs {
        args.push(datafusion::prelude::lit(k));
        args.push(v);
    }
    JSON_OBJECT.call(args)
}

/// `cohort_to_json(v)`.
pub fn to_json(v: Expr) -> Expr {
    TO_JSON.call(vec![v])
}

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
fn texts_at_paths(text: Option<&str>, segs: &[Vec<&str>], mut f: impl FnMut(usize, Option<&str>)) {
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

/// Rows of a text array of any of Arrow's three string layouts, read in place (a cast from
/// `Utf8View`, which Parquet scans produce, would copy every string).
pub(crate) enum Texts<'a> {
    Utf8(&'a datafusion::arrow::array::StringArray),
    Large(&'a datafusion::arrow::array::LargeStringArray),
    View(&'a datafusion::arrow::array::StringViewArray),
}

impl<'a> Texts<'a> {
    pub(crate) fn new(arr: &'a ArrayRef) -> Result<Texts<'a>> {
        Ok(match arr.data_type() {
            DataType::Utf8 => Texts::Utf8(arr.as_string::<i32>()),
            DataType::LargeUtf8 => Texts::Large(arr.as_string::<i64>()),
            DataType::Utf8View => Texts::View(arr.as_string_view()),
            other => return exec_err!("expected text, found {other}"),
        })
    }

    pub(crate) fn get(&self, i: usize) -> Option<&'a str> {
        match self {
            Texts::Utf8(a) => a.is_valid(i).then(|| a.value(i)),
            Texts::Large(a) => a.is_valid(i).then(|| a.value(i)),
            Texts::View(a) => a.is_valid(i).then(|| a.value(i)),
        }
    }
}

/// A text argument as an array in one of the string layouts [`Texts`] reads.
fn text_arg(v: &ColumnarValue, n: usize) -> Result<ArrayRef> {
    text_array(v.to_array(n)?)
}

/// A text array as it is, in one of the string layouts [`Texts`] reads; a literal null (type
/// Null) as Utf8.
pub(crate) fn text_array(arr: ArrayRef) -> Result<ArrayRef> {
    match arr.data_type() {
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => Ok(arr),
        DataType::Null => Ok(datafusion::arrow::compute::cast(&arr, &DataType::Utf8)?),
        other => exec_err!("expected text, found {other}"),
    }
}

fn string_arg(v: &ColumnarValue, n: usize) -> Result<ArrayRef> {
    let arr = v.to_array(n)?;
    match arr.data_type() {
        DataType::Utf8 => Ok(arr),
        DataType::Null | DataType::LargeUtf8 | DataType::Utf8View => {
            Ok(datafusion::arrow::compute::cast(&arr, &DataType::Utf8)?)
        }
        other => exec_err!("expected text, found {other}"),
    }
}

#[derive(Debug, PartialEq, Eq, Hash)]
struct JsonGet {
    signature: Signature,
}

impl JsonGet {
    fn new() -> Self {
        Self {
            signature: Signature::any(2, Volatility::Immutable),
        }
    }
}

impl ScalarUDFImpl for JsonGet {
    fn name(&self) -> &str {
        "cohort_json_get"
    }
    fn signature(&self) -> &Signature {
        &self.signature
    }
    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(DataType::Utf8)
    }
    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let n = args.number_rows;
        let path = match &args.args[1] {
            ColumnarValue::Scalar(s) => match s {
                ScalarValue::Utf8(Some(p))
                | ScalarValue::LargeUtf8(Some(p))
                | ScalarValue::Utf8View(Some(p)) => p.clone(),
                _ => return exec_err!("cohort_json_get needs a literal text path"),
            },
            ColumnarValue::Array(_) => return exec_err!("cohort_json_get needs a literal path"),
        };
        let segs: Vec<&str> = path.split('.').collect();
        let input = text_arg(&args.args[0], n)?;
        let input = Texts::new(&input)?;
        let mut out = StringBuilder::with_capacity(n, n * 8);
        // Any key that can match contains the path's last segment (nested or flattened), so
        // text without it (and without \u escapes that could spell it) is skipped unparsed.
        let needle = segs.last().copied().unwrap_or_default();
        for i in 0..n {
            let Some(text) = input.get(i) else {
                out.append_null();
                continue;
            };
            if !text.contains(needle) && !text.contains("\\u") {
                out.append_null();
                continue;
            }
            match text_at_path(text, &segs) {
                Some(t) => out.append_value(t),
                None => out.append_null(),
            }
        }
        Ok(ColumnarValue::Array(Arc::new(out.finish())))
    }
}

#[derive(Debug, PartialEq, Eq, Hash)]
struct JsonValid {
    signature: Signature,
}

impl JsonValid {
    fn new() -> Self {
        Self {
            signature: Signature::any(1, Volatility::Immutable),
        }
    }
}

impl ScalarUDFImpl for JsonValid {
    fn name(&self) -> &str {
        "cohort_json_valid"
    }
    fn signature(&self) -> &Signature {
        &self.signature
    }
    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(DataType::Boolean)
    }
    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let input = string_arg(&args.args[0], args.number_rows)?;
        let input = input.as_string::<i32>();
        let mut out = BooleanBuilder::with_capacity(input.len());
        for i in 0..input.len() {
            let ok = input.is_null(i) || json_depth::is_object(input.value(i));
            out.append_value(ok);
        }
        Ok(ColumnarValue::Array(Arc::new(out.finish())))
    }
}

#[derive(Debug, PartialEq, Eq, Hash)]
struct JsonObject {
    signature: Signature,
}

impl JsonObject {
    fn new() -> Self {
        Self {
            signature: Signature::variadic_any(Volatility::Immutable),
        }
    }
}

impl ScalarUDFImpl for JsonObject {
    fn name(&self) -> &str {
        "cohort_json_object"
    }
    fn signature(&self) -> &Signature {
        &self.signature
    }
    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(DataType::Utf8)
    }
    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let n = args.number_rows;
        if !args.args.len().is_multiple_of(2) {
            return exec_err!("cohort_json_object needs key/value pairs");
        }
        let mut keys = Vec::new();
        let mut values = Vec::new();
        for pair in args.args.chunks(2) {
            match &pair[0] {
                ColumnarValue::Scalar(ScalarValue::Utf8(Some(k))) => keys.push(k.clone()),
                _ => return exec_err!("cohort_json_object keys must be text literals"),
            }
            values.push(pair[1].to_array(n)?);
        }
        let mut out = StringBuilder::with_capacity(n, n * 32);
        for row in 0..n {
            let mut obj = Map::new();
            for (k, arr) in keys.iter().zip(&values) {
                let v = cell_to_json(arr.as_ref(), row)?;
                if !v.is_null() {
                    obj.insert(k.clone(), v);
                }
            }
            out.append_value(Value::Object(obj).to_string());
        }
        Ok(ColumnarValue::Array(Arc::new(out.finish())))
    }
}

#[derive(Debug, PartialEq, Eq, Hash)]
struct ToJson {
    signature: Signature,
}

impl ToJson {
    fn new() -> Self {
        Self {
            signature: Signature::any(1, Volatility::Immutable),
        }
    }
}

impl ScalarUDFImpl for ToJson {
    fn name(&self) -> &str {
        "cohort_to_json"
    }
    fn signature(&self) -> &Signature {
        &self.signature
    }
    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(DataType::Utf8)
    }
    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let n = args.number_rows;
        let arr = args.args[0].to_array(n)?;
        let mut out = StringBuilder::with_capacity(n, n * 32);
        for row in 0..n {
            match cell_to_json(arr.as_ref(), row)? {
                Value::Null => out.append_null(),
                v => out.append_value(v.to_string()),
            }
        }
        Ok(ColumnarValue::Array(Arc::new(out.finish())))
    }
}

#[derive(Debug, PartialEq, Eq, Hash)]
struct ExternalIds {
    signature: Signature,
}

impl ExternalIds {
    fn new() -> Self {
        Self {
            signature: Signature::any(2, Volatility::Immutable),
        }
    }
}

impl ScalarUDFImpl for ExternalIds {
    fn name(&self) -> &str {
        "cohort_external_ids"
    }
    fn signature(&self) -> &Signature {
        &self.signature
    }
    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(DataType::new_list(DataType::Utf8, true))
    }
    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let n = args.number_rows;
        let want = match &args.args[1] {
            ColumnarValue::Scalar(ScalarValue::Utf8(Some(t))) => t.clone(),
            _ => return exec_err!("cohort_external_ids needs a literal type"),
        };
        let input = string_arg(&args.args[0], n)?;
        let input = input.as_string::<i32>();
        let mut out = ListBuilder::new(StringBuilder::new());
        for i in 0..input.len() {
            if input.is_null(i) {
                out.append_null();
                continue;
            }
            let parsed = serde_json::from_str::<Value>(input.value(i))
                .ok()
                .or_else(|| {
                    // Deeper than serde_json parses: only `externalIds` is needed.
                    let entries = json_depth::deep_entries(input.value(i))?;
                    let (_, raw) = entries.iter().rev().find(|(k, _)| k == "externalIds")?;
                    let ids = serde_json::from_str::<Value>(raw).ok()?;
                    Some(Value::Object(Map::from_iter([(
                        "externalIds".to_string(),
                        ids,
                    )])))
                });
            if let Some(v) = parsed
                && let Some(Value::Array(items)) = lookup(&v, &["externalIds"])
            {
                for item in items {
                    if item.get("type").and_then(Value::as_str) == Some(want.as_str())
                        && let Some(id) = item.get("id").and_then(value_text)
                    {
                        out.values().append_value(id);
                    }
                }
            }
            out.append(true);
        }
        Ok(ColumnarValue::Array(Arc::new(out.finish())))
    }
}

#[derive(Debug, PartialEq, Eq, Hash)]
struct IdNode {
    signature: Signature,
}

impl IdNode {
    fn new() -> Self {
        Self {
            signature: Signature::any(2, Volatility::Immutable),
        }
    }
}

impl ScalarUDFImpl for IdNode {
    fn name(&self) -> &str {
        "cohort_id_node"
    }
    fn signature(&self) -> &Signature {
        &self.signature
    }
    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(DataType::Int64)
    }
    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let n = args.number_rows;
        let types = string_arg(&args.args[0], n)?;
        let types = types.as_string::<i32>();
        let values = string_arg(&args.args[1], n)?;
        let values = values.as_string::<i32>();
        let mut out = Int64Builder::with_capacity(n);
        for i in 0..n {
            if types.is_null(i) || values.is_null(i) {
                out.append_null();
            } else {
                out.append_value(node_code(types.value(i), values.value(i)));
            }
        }
        Ok(ColumnarValue::Array(Arc::new(out.finish())))
    }
}

#[derive(Debug, PartialEq, Eq, Hash)]
struct Text {
    signature: Signature,
}

impl Text {
    fn new() -> Self {
        Self {
            signature: Signature::any(1, Volatility::Immutable),
        }
    }
}

impl ScalarUDFImpl for Text {
    fn name(&self) -> &str {
        "cohort_text"
    }
    fn signature(&self) -> &Signature {
        &self.signature
    }
    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(DataType::Utf8)
    }
    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let n = args.number_rows;
        let arr = args.args[0].to_array(n)?;
        let arr = match arr.data_type() {
            DataType::Binary => arr,
            DataType::LargeBinary | DataType::BinaryView | DataType::FixedSizeBinary(_) => {
                datafusion::arrow::compute::cast(&arr, &DataType::Binary)?
            }
            _ => {
                return Ok(ColumnarValue::Array(datafusion::arrow::compute::cast(
                    &arr,
                    &DataType::Utf8,
                )?));
            }
        };
        let bytes = arr.as_binary::<i32>();
        let mut out = StringBuilder::with_capacity(n, n * 16);
        for i in 0..n {
            if bytes.is_null(i) {
                out.append_null();
            } else {
                out.append_value(String::from_utf8_lossy(bytes.value(i)));
            }
        }
        Ok(ColumnarValue::Array(Arc::new(out.finish())))
    }
}

/// One Arrow cell as a JSON value.
pub fn cell_to_json(arr: &dyn Array, row: usize) -> Result<Value> {
    use datafusion::arrow::datatypes::*;
    if arr.is_null(row) {
        return Ok(Value::Null);
    }
    Ok(match arr.data_type() {
        DataType::Null => Value::Null,
        DataType::Boolean => Value::Bool(arr.as_boolean().value(row)),
        DataType::Int8 => arr.as_primitive::<Int8Type>().value(row).into(),
        DataType::Int16 => arr.as_primitive::<Int16Type>().value(row).into(),
        DataType::Int32 => arr.as_primitive::<Int32Type>().value(row).into(),
        DataType::Int64 => arr.as_primitive::<Int64Type>().value(row).into(),
        DataType::UInt8 => arr.as_primitive::<UInt8Type>().value(row).into(),
        DataType::UInt16 => arr.as_primitive::<UInt16Type>().value(row).into(),
        DataType::UInt32 => arr.as_primitive::<UInt32Type>().value(row).into(),
        DataType::UInt64 => arr.as_primitive::<UInt64Type>().value(row).into(),
        DataType::Float32 => float(arr.as_primitive::<Float32Type>().value(row) as f64),
        DataType::Float64 => float(arr.as_primitive::<Float64Type>().value(row)),
        DataType::Utf8 => Value::String(arr.as_string::<i32>().value(row).to_string()),
        DataType::LargeUtf8 => Value::String(arr.as_string::<i64>().value(row).to_string()),
        DataType::Utf8View => Value::String(arr.as_string_view().value(row).to_string()),
        DataType::Timestamp(unit, _) => {
            let micros = match unit {
                TimeUnit::Second => {
                    arr.as_primitive::<TimestampSecondType>().value(row) * 1_000_000
                }
                TimeUnit::Millisecond => {
                    arr.as_primitive::<TimestampMillisecondType>().value(row) * 1_000
                }
                TimeUnit::Microsecond => arr.as_primitive::<TimestampMicrosecondType>().value(row),
                TimeUnit::Nanosecond => {
                    arr.as_primitive::<TimestampNanosecondType>().value(row) / 1_000
                }
            };
            match chrono::DateTime::from_timestamp_micros(micros) {
                Some(t) => Value::String(t.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string()),
                None => Value::Null,
            }
        }
        DataType::Struct(fields) => {
            let s = arr.as_struct();
            let mut obj = Map::new();
            for (i, f) in fields.iter().enumerate() {
                let v = cell_to_json(s.column(i).as_ref(), row)?;
                if !v.is_null() {
                    obj.insert(f.name().clone(), v);
                }
            }
            Value::Object(obj)
        }
        DataType::List(_) => {
            let l = arr.as_list::<i32>().value(row);
            Value::Array(
                (0..l.len())
                    .map(|i| cell_to_json(l.as_ref(), i))
                    .collect::<Result<_>>()?,
            )
        }
        DataType::LargeList(_) => {
            let l = arr.as_list::<i64>().value(row);
            Value::Array(
                (0..l.len())
                    .map(|i| cell_to_json(l.as_ref(), i))
                    .collect::<Result<_>>()?,
            )
        }
        _ => {
            let f = ArrayFormatter::try_new(arr, &FormatOptions::default())?;
            Value::String(f.value(row).to_string())
        }
    })
}

fn float(f: f64) -> Value {
    serde_json::Number::from_f64(f)
        .map(Value::Number)
        .unwrap_or(Value::Null)
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
