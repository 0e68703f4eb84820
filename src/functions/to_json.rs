//! `cohort_json_object('k1', v1, ...)` builds JSON object text from any Arrow values (leaving
//! out nulls) and `cohort_to_json(v)` turns a struct, list or scalar into JSON text: how presets
//! normalize struct or flattened source columns into the JSON text the other functions read.

use std::sync::{Arc, LazyLock};

use datafusion::arrow::array::{Array, AsArray, StringBuilder};
use datafusion::arrow::datatypes::DataType;
use datafusion::arrow::util::display::{ArrayFormatter, FormatOptions};
use datafusion::common::{Result, ScalarValue, exec_err};
use datafusion::logical_expr::{
    ColumnarValue, Expr, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, Volatility,
};
use serde_json::{Map, Value};

pub(super) static JSON_OBJECT: LazyLock<Arc<ScalarUDF>> =
    LazyLock::new(|| Arc::new(ScalarUDF::from(JsonObject::new())));
pub(super) static TO_JSON: LazyLock<Arc<ScalarUDF>> =
    LazyLock::new(|| Arc::new(ScalarUDF::from(ToJson::new())));

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
