//! Text arguments of Cohort's functions, read in whichever of Arrow's string layouts they come.

use datafusion::arrow::array::{Array, ArrayRef, AsArray};
use datafusion::arrow::datatypes::DataType;
use datafusion::common::{Result, exec_err};
use datafusion::logical_expr::ColumnarValue;

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
pub(super) fn text_arg(v: &ColumnarValue, n: usize) -> Result<ArrayRef> {
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

pub(super) fn string_arg(v: &ColumnarValue, n: usize) -> Result<ArrayRef> {
    let arr = v.to_array(n)?;
    match arr.data_type() {
        DataType::Utf8 => Ok(arr),
        DataType::Null | DataType::LargeUtf8 | DataType::Utf8View => {
            Ok(datafusion::arrow::compute::cast(&arr, &DataType::Utf8)?)
        }
        other => exec_err!("expected text, found {other}"),
    }
}
