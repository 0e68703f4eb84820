//! `cohort_json_paths(json, 'p1', 'p2', ...)`: `cohort_json_get` of several paths at once, as a
//! struct with one text field per path (named by the path), so a plan reading many properties
//! of one JSON column parses its text once per row instead of once per path.

use std::sync::{Arc, LazyLock};

use datafusion::arrow::array::{ArrayRef, StringBuilder};
use datafusion::arrow::datatypes::DataType;
use datafusion::common::{Result, ScalarValue, exec_err};
use datafusion::logical_expr::{
    ColumnarValue, Expr, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, Volatility,
};

use super::args::{Texts, text_arg};
use super::json_path::texts_at_paths;

pub(super) static JSON_PATHS: LazyLock<Arc<ScalarUDF>> =
    LazyLock::new(|| Arc::new(ScalarUDF::from(JsonPaths::new())));

/// `cohort_json_paths(json, 'p1', ...)`.
pub fn json_paths(json: Expr, paths: &[String]) -> Expr {
    let mut args = vec![json];
    args.extend(paths.iter().map(|p| datafusion::prelude::lit(p.as_str())));
    JSON_PATHS.call(args)
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
