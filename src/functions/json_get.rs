//! `cohort_json_get(json, 'a.b.c')` returns the value at a Segment path as text, or null, and
//! `cohort_json_valid(text)` is true for null or a JSON object: how plans read and check the
//! JSON-shaped event fields (`properties`, `traits`, `context`) every preset normalizes to text.

use std::sync::{Arc, LazyLock};

use datafusion::arrow::array::{Array, AsArray, BooleanBuilder, StringBuilder};
use datafusion::arrow::datatypes::DataType;
use datafusion::common::{Result, ScalarValue, exec_err};
use datafusion::logical_expr::{
    ColumnarValue, Expr, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, Volatility,
};

use super::args::{Texts, string_arg, text_arg};
use super::json_depth;
use super::json_path::text_at_path;

pub(super) static JSON_GET: LazyLock<Arc<ScalarUDF>> =
    LazyLock::new(|| Arc::new(ScalarUDF::from(JsonGet::new())));
pub(super) static JSON_VALID: LazyLock<Arc<ScalarUDF>> =
    LazyLock::new(|| Arc::new(ScalarUDF::from(JsonValid::new())));

/// `cohort_json_get(json, path)`.
pub fn json_get(json: Expr, path: &str) -> Expr {
    JSON_GET.call(vec![json, datafusion::prelude::lit(path)])
}

/// `cohort_json_valid(text)`.
pub fn json_valid(text: Expr) -> Expr {
    JSON_VALID.call(vec![text])
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
