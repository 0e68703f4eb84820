//! Cohort's own aggregate functions: what a computed trait needs that DataFusion does not have.
//!
//! `cohort_mode(value, min_frequency)` is the most frequent non-null text value of a group,
//! ties broken alphabetically (the smallest value wins), or null when the top value occurs fewer
//! than `min_frequency` times. It is one aggregate, so a mode trait fuses into the same
//! aggregation as every other computed trait.

use std::collections::HashMap;
use std::sync::{Arc, LazyLock};

use datafusion::arrow::array::{
    Array, ArrayRef, AsArray, Int64Array, Int64Builder, ListArray, StringArray, StringBuilder,
};
use datafusion::arrow::datatypes::{DataType, Field, FieldRef, Int64Type};
use datafusion::common::{Result, ScalarValue, exec_err};
use datafusion::logical_expr::function::{AccumulatorArgs, StateFieldsArgs};
use datafusion::logical_expr::{
    Accumulator, AggregateUDF, AggregateUDFImpl, Signature, Volatility,
};
use datafusion::physical_expr::expressions::Literal;

/// `cohort_mode`.
pub static MODE: LazyLock<Arc<AggregateUDF>> =
    LazyLock::new(|| Arc::new(AggregateUDF::from(ModeUdaf::new())));

/// Every aggregate of this module, for registration in a session.
pub fn all() -> Vec<Arc<AggregateUDF>> {
    vec![MODE.clone()]
}

#[derive(Debug, PartialEq, Eq, Hash)]
struct ModeUdaf {
    signature: Signature,
}

impl ModeUdaf {
    fn new() -> Self {
        ModeUdaf {
            signature: Signature::exact(
                vec![DataType::Utf8, DataType::Int64],
                Volatility::Immutable,
            ),
        }
    }
}

impl AggregateUDFImpl for ModeUdaf {
    fn name(&self) -> &str {
        "cohort_mode"
    }
    fn signature(&self) -> &Signature {
        &self.signature
    }
    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(DataType::Utf8)
    }
    fn accumulator(&self, args: AccumulatorArgs) -> Result<Box<dyn Accumulator>> {
        let min = args
            .exprs
            .get(1)
            .and_then(|e| e.downcast_ref::<Literal>())
            .and_then(|l| match l.value() {
                ScalarValue::Int64(Some(v)) => Some(*v),
                _ => None,
            });
        let Some(min_frequency) = min else {
            return exec_err!("cohort_mode needs a literal minimum frequency");
        };
        Ok(Box::new(ModeAccumulator {
            counts: HashMap::new(),
            min_frequency: min_frequency.max(1) as u64,
        }))
    }
    fn state_fields(&self, args: StateFieldsArgs) -> Result<Vec<FieldRef>> {
        Ok(vec![
            Arc::new(Field::new(
                format!("{}[values]", args.name),
                DataType::List(Arc::new(Field::new_list_field(DataType::Utf8, true))),
                true,
            )),
            Arc::new(Field::new(
                format!("{}[counts]", args.name),
                DataType::List(Arc::new(Field::new_list_field(DataType::Int64, true))),
                true,
            )),
        ])
    }
}

#[derive(Debug)]
struct ModeAccumulator {
    counts: HashMap<String, u64>,
    min_frequency: u64,
}

impl Accumulator for ModeAccumulator {
    fn update_batch(&mut self, values: &[ArrayRef]) -> Result<()> {
        let v = values[0].as_string::<i32>();
        for s in v.iter().flatten() {
            *self.counts.entry(s.to_string()).or_default() += 1;
        }
        Ok(())
    }

    fn merge_batch(&mut self, states: &[ArrayRef]) -> Result<()> {
        let values = states[0].as_list::<i32>();
        let counts = states[1].as_list::<i32>();
        for row in 0..values.len() {
            if values.is_null(row) {
                continue;
            }
            let vs = values.value(row);
            let cs = counts.value(row);
            let vs = vs.as_string::<i32>();
            let cs = cs.as_primitive::<Int64Type>();
            for i in 0..vs.len() {
                *self.counts.entry(vs.value(i).to_string()).or_default() += cs.value(i) as u64;
            }
        }
        Ok(())
    }

    fn state(&mut self) -> Result<Vec<ScalarValue>> {
        let mut vs = StringBuilder::new();
        let mut cs = Int64Builder::new();
        for (v, c) in &self.counts {
            vs.append_value(v);
            cs.append_value(*c as i64);
        }
        let vs: StringArray = vs.finish();
        let cs: Int64Array = cs.finish();
        Ok(vec![
            ScalarValue::List(Arc::new(ListArray::from_iter_primitive_list(vs))),
            ScalarValue::List(Arc::new(ListArray::from_iter_primitive_list(cs))),
        ])
    }

    fn evaluate(&mut self) -> Result<ScalarValue> {
        let best = self
            .counts
            .iter()
            .max_by(|(va, ca), (vb, cb)| ca.cmp(cb).then_with(|| vb.cmp(va)));
        Ok(match best {
            Some((v, c)) if *c >= self.min_frequency => ScalarValue::Utf8(Some(v.clone())),
            _ => ScalarValue::Utf8(None),
        })
    }

    fn size(&self) -> usize {
        std::mem::size_of_val(self) + self.counts.keys().map(|k| k.capacity() + 32).sum::<usize>()
    }
}

/// Wraps a list of values as a one-row list array (state of a group).
trait OneRowList {
    fn from_iter_primitive_list(values: impl Array + 'static) -> Self;
}

impl OneRowList for ListArray {
    fn from_iter_primitive_list(values: impl Array + 'static) -> Self {
        let field = Arc::new(Field::new_list_field(values.data_type().clone(), true));
        let len = values.len() as i32;
        ListArray::new(
            field,
            datafusion::arrow::buffer::OffsetBuffer::new(vec![0, len].into()),
            Arc::new(values),
            None,
        )
    }
}
