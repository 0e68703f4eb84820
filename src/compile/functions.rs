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
        let input = string_arg(&args.args[0], n)?;
        let input = input.as_string::<i32>();
        let mut outs: Vec<StringBuilder> = paths
            .iter()
            .map(|_| StringBuilder::with_capacity(n, n * 4))
            .collect();
        for i in 0..n {
            let text = (!input.is_null(i)).then(|| input.value(i));
            // As in cohort_json_get: text holding none of the last segments is not parsed.
            let parsed = text
                .filter(|t| t.contains("\\u") || needles.iter().any(|nd| t.contains(nd)))
                .and_then(|t| serde_json::from_str::<Value>(t).ok());
            for (k, out) in outs.iter_mut().enumerate() {
                match parsed
                    .as_ref()
                    .and_then(|v| lookup(v, &segs[k]))
                    .and_then(value_text)
                {
                    Some(t) => out.append_value(t),
                    None => out.append_null(),
                }
            }
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
                _ => out.append_null(),
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
                _ => out.append_null(),
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
    if let Some(inner) = obj.get(segs[0])
        && let Some(found) = lookup(inner, &segs[1..])
    {
        return Some(found);
    }
    // Flattened keys: `device_id` for `device.id`, `traits_email` for `traits.email`.
    let mut key = segs[0].to_string();
    for i in 1..segs.len() {
        key.push('_');
        key.push_str(segs[i]);
        if let Some(inner) = obj.get(&key)
            && let Some(found) = lookup(inner, &segs[i + 1..])
        {
            return Some(found);
        }
    }
    None
}

/// The text form of a JSON value: strings unquoted, null as None, the rest as JSON.
pub fn value_text(v: &Value) -> Option<String> {
    match v {
        Value::Null => None,
        Value::String(s) => Some(s.clone()),
        other => Some(other.to_string()),
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
        let input = string_arg(&args.args[0], n)?;
        let input = input.as_string::<i32>();
        let mut out = StringBuilder::with_capacity(input.len(), input.len() * 8);
        // Any key that can match contains the path's last segment (nested or flattened), so
        // text without it (and without \u escapes that could spell it) is skipped unparsed.
        let needle = segs.last().copied().unwrap_or_default();
        for i in 0..input.len() {
            if input.is_null(i) {
                out.append_null();
                continue;
            }
            let text = input.value(i);
            if !text.contains(needle) && !text.contains("\\u") {
                out.append_null();
                continue;
            }
            match serde_json::from_str::<Value>(text) {
                Ok(v) => match lookup(&v, &segs).and_then(value_text) {
                    Some(t) => out.append_value(t),
                    None => out.append_null(),
                },
                Err(_) => out.append_null(),
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
            let ok = input.is_null(i)
                || matches!(
                    serde_json::from_str::<Value>(input.value(i)),
                    Ok(Value::Object(_))
                );
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
            if let Ok(v) = serde_json::from_str::<Value>(input.value(i))
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
}
