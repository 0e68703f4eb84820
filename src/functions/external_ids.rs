//! `cohort_external_ids(context, 'type')` lists the `id` of every `context.externalIds` entry
//! whose `type` is the given one: identity resolution reads external ids as identifiers.

use std::sync::{Arc, LazyLock};

use datafusion::arrow::array::{Array, AsArray, ListBuilder, StringBuilder};
use datafusion::arrow::datatypes::DataType;
use datafusion::common::{Result, ScalarValue, exec_err};
use datafusion::logical_expr::{
    ColumnarValue, Expr, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, Volatility,
};
use serde_json::{Map, Value};

use super::args::string_arg;
use super::json_depth;
use super::json_path::{lookup, value_text};

pub(super) static EXTERNAL_IDS: LazyLock<Arc<ScalarUDF>> =
    LazyLock::new(|| Arc::new(ScalarUDF::from(ExternalIds::new())));

/// `cohort_external_ids(context, id_type)`.
pub fn external_ids(context: Expr, id_type: &str) -> Expr {
    EXTERNAL_IDS.call(vec![context, datafusion::prelude::lit(id_type)])
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
