//! `cohort_id_node(id_type, id_value)`: a stable 64-bit code of an identifier. The same
//! identifier gets the same code in every run, so identity graphs from two runs join on it.

use std::sync::{Arc, LazyLock};

use datafusion::arrow::array::{Array, AsArray, Int64Builder};
use datafusion::arrow::datatypes::DataType;
use datafusion::common::Result;
use datafusion::logical_expr::{
    ColumnarValue, Expr, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, Volatility,
};

use super::args::string_arg;

pub(super) static ID_NODE: LazyLock<Arc<ScalarUDF>> =
    LazyLock::new(|| Arc::new(ScalarUDF::from(IdNode::new())));

/// `cohort_id_node(id_type, id_value)`.
pub fn id_node(id_type: Expr, id_value: Expr) -> Expr {
    ID_NODE.call(vec![id_type, id_value])
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
