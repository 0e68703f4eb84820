//! `cohort_text(bytes)` reads binary as UTF-8 text, replacing bytes that are not UTF-8 with
//! U+FFFD instead of failing the run (sources that store text as binary).

use std::sync::{Arc, LazyLock};

use datafusion::arrow::array::{Array, AsArray, StringBuilder};
use datafusion::arrow::datatypes::DataType;
use datafusion::common::Result;
use datafusion::logical_expr::{
    ColumnarValue, Expr, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, Volatility,
};

pub(super) static TEXT: LazyLock<Arc<ScalarUDF>> =
    LazyLock::new(|| Arc::new(ScalarUDF::from(Text::new())));

/// `cohort_text(bytes)`.
pub fn text_lossy(bytes: Expr) -> Expr {
    TEXT.call(vec![bytes])
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
