//! `cohort_json_keys(json)` lists the top-level keys of an object, and
//! `cohort_json_kind(json, key)` says what the top-level `key` holds (`null`, `bool`, `int`,
//! `float`, `timestamp` for an RFC 3339 string, `string`, `object`, `array`), or null when the
//! key is absent: custom traits need to tell an explicit null (which removes a trait) from a
//! missing key. One family: both name what a top-level entry holds.

use std::sync::{Arc, LazyLock};

use datafusion::arrow::array::{Array, AsArray, ListBuilder, StringBuilder};
use datafusion::arrow::datatypes::DataType;
use datafusion::common::Result;
use datafusion::logical_expr::{
    ColumnarValue, Expr, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, Volatility,
};
use serde_json::Value;

use super::args::string_arg;
use super::json_depth;

pub(super) static JSON_KEYS: LazyLock<Arc<ScalarUDF>> =
    LazyLock::new(|| Arc::new(ScalarUDF::from(JsonKeys::new())));
pub(super) static JSON_KIND: LazyLock<Arc<ScalarUDF>> =
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
