//! The bag aggregates `cohort_mode(value, min_frequency)`, `cohort_unique(value)` and
//! `cohort_unique_count(value)`: each counts the non-null text values of a group in a bag
//! (value -> occurrences), kept per group so that fused trait aggregation stays fast.

use std::collections::HashMap;
use std::sync::{Arc, LazyLock};

use datafusion::arrow::array::{
    Array, ArrayRef, AsArray, BooleanArray, Int64Builder, ListBuilder, StringBuilder,
};
use datafusion::arrow::datatypes::{DataType, Field, FieldRef, Int64Type};
use datafusion::common::{Result, ScalarValue, exec_err};
use datafusion::logical_expr::function::{AccumulatorArgs, StateFieldsArgs};
use datafusion::logical_expr::{
    Accumulator, AggregateUDF, AggregateUDFImpl, EmitTo, GroupsAccumulator, Signature, Volatility,
};
use datafusion::physical_expr::expressions::Literal;

use super::{OneGroup, OneGroupView, passes};

/// What a bag aggregate returns.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum BagKind {
    Mode,
    Unique,
    UniqueCount,
}

/// `cohort_mode`.
pub static MODE: LazyLock<Arc<AggregateUDF>> =
    LazyLock::new(|| Arc::new(AggregateUDF::from(BagUdaf::new(BagKind::Mode))));
/// `cohort_unique`.
pub static UNIQUE: LazyLock<Arc<AggregateUDF>> =
    LazyLock::new(|| Arc::new(AggregateUDF::from(BagUdaf::new(BagKind::Unique))));
/// `cohort_unique_count`.
pub static UNIQUE_COUNT: LazyLock<Arc<AggregateUDF>> =
    LazyLock::new(|| Arc::new(AggregateUDF::from(BagUdaf::new(BagKind::UniqueCount))));

#[derive(Debug, PartialEq, Eq, Hash)]
struct BagUdaf {
    kind: BagKind,
    signature: Signature,
}

impl BagUdaf {
    fn new(kind: BagKind) -> Self {
        let args = match kind {
            BagKind::Mode => vec![DataType::Utf8, DataType::Int64],
            _ => vec![DataType::Utf8],
        };
        BagUdaf {
            kind,
            signature: Signature::exact(args, Volatility::Immutable),
        }
    }

    /// The minimum frequency of a mode (1 for the others).
    fn min_frequency(&self, args: &AccumulatorArgs) -> Result<u64> {
        if self.kind != BagKind::Mode {
            return Ok(1);
        }
        let min = args
            .exprs
            .get(1)
            .and_then(|e| e.downcast_ref::<Literal>())
            .and_then(|l| match l.value() {
                ScalarValue::Int64(Some(v)) => Some(*v),
                _ => None,
            });
        match min {
            Some(m) => Ok(m.max(1) as u64),
            None => exec_err!("cohort_mode needs a literal minimum frequency"),
        }
    }
}

fn text_list() -> DataType {
    DataType::List(Arc::new(Field::new_list_field(DataType::Utf8, true)))
}

impl AggregateUDFImpl for BagUdaf {
    fn name(&self) -> &str {
        match self.kind {
            BagKind::Mode => "cohort_mode",
            BagKind::Unique => "cohort_unique",
            BagKind::UniqueCount => "cohort_unique_count",
        }
    }
    fn signature(&self) -> &Signature {
        &self.signature
    }
    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(match self.kind {
            BagKind::Mode => DataType::Utf8,
            BagKind::Unique => text_list(),
            BagKind::UniqueCount => DataType::Int64,
        })
    }
    fn default_value(&self, data_type: &DataType) -> Result<ScalarValue> {
        match self.kind {
            BagKind::UniqueCount => Ok(ScalarValue::Int64(Some(0))),
            _ => ScalarValue::try_from(data_type),
        }
    }
    fn accumulator(&self, args: AccumulatorArgs) -> Result<Box<dyn Accumulator>> {
        Ok(Box::new(OneGroup(BagGroups::new(
            self.kind,
            self.min_frequency(&args)?,
        ))))
    }
    fn groups_accumulator_supported(&self, _args: AccumulatorArgs) -> bool {
        true
    }
    fn create_groups_accumulator(
        &self,
        args: AccumulatorArgs,
    ) -> Result<Box<dyn GroupsAccumulator>> {
        Ok(Box::new(BagGroups::new(
            self.kind,
            self.min_frequency(&args)?,
        )))
    }
    fn state_fields(&self, args: StateFieldsArgs) -> Result<Vec<FieldRef>> {
        Ok(vec![
            Arc::new(Field::new(
                format!("{}[values]", args.name),
                text_list(),
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

/// One bag per group.
#[derive(Debug)]
struct BagGroups {
    kind: BagKind,
    min_frequency: u64,
    bags: Vec<HashMap<Box<str>, u64>>,
    /// Bytes held by the bags' values, for memory accounting.
    bytes: usize,
}

/// Roughly what one bag entry costs besides its text.
const ENTRY_BYTES: usize = 48;

impl BagGroups {
    fn new(kind: BagKind, min_frequency: u64) -> Self {
        BagGroups {
            kind,
            min_frequency,
            bags: Vec::new(),
            bytes: 0,
        }
    }

    fn add(&mut self, group: usize, value: &str, n: u64) {
        let bag = &mut self.bags[group];
        match bag.get_mut(value) {
            Some(c) => *c += n,
            None => {
                self.bytes += value.len() + ENTRY_BYTES;
                bag.insert(value.into(), n);
            }
        }
    }

    fn take(&mut self, emit_to: EmitTo) -> Vec<HashMap<Box<str>, u64>> {
        let taken = emit_to.take_needed(&mut self.bags);
        self.bytes = self
            .bags
            .iter()
            .flat_map(|b| b.keys())
            .map(|k| k.len() + ENTRY_BYTES)
            .sum();
        taken
    }

    fn result(&self, bags: &[HashMap<Box<str>, u64>]) -> ArrayRef {
        match self.kind {
            BagKind::Mode => {
                let mut out = StringBuilder::with_capacity(bags.len(), bags.len() * 8);
                for bag in bags {
                    let best = bag
                        .iter()
                        .max_by(|(va, ca), (vb, cb)| ca.cmp(cb).then_with(|| vb.cmp(va)));
                    match best {
                        Some((v, c)) if *c >= self.min_frequency => out.append_value(v),
                        _ => out.append_null(),
                    }
                }
                Arc::new(out.finish())
            }
            BagKind::Unique => {
                let mut out = ListBuilder::new(StringBuilder::new());
                for bag in bags {
                    if bag.is_empty() {
                        out.append_null();
                        continue;
                    }
                    let mut values: Vec<&str> = bag.keys().map(|k| &**k).collect();
                    values.sort_unstable();
                    for v in values {
                        out.values().append_value(v);
                    }
                    out.append(true);
                }
                Arc::new(out.finish())
            }
            BagKind::UniqueCount => {
                let mut out = Int64Builder::with_capacity(bags.len());
                for bag in bags {
                    out.append_value(bag.len() as i64);
                }
                Arc::new(out.finish())
            }
        }
    }
}

/// The bags as `(values, counts)` lists, one row per bag.
fn bag_state(bags: &[HashMap<Box<str>, u64>]) -> Vec<ArrayRef> {
    let mut vs = ListBuilder::new(StringBuilder::new());
    let mut cs = ListBuilder::new(Int64Builder::new());
    for bag in bags {
        for (v, c) in bag {
            vs.values().append_value(v);
            cs.values().append_value(*c as i64);
        }
        vs.append(true);
        cs.append(true);
    }
    vec![Arc::new(vs.finish()), Arc::new(cs.finish())]
}

impl GroupsAccumulator for BagGroups {
    fn update_batch(
        &mut self,
        values: &[ArrayRef],
        group_indices: &[usize],
        opt_filter: Option<&BooleanArray>,
        total_num_groups: usize,
    ) -> Result<()> {
        self.bags.resize_with(total_num_groups, HashMap::new);
        let v = values[0].as_string::<i32>();
        for (row, &g) in group_indices.iter().enumerate() {
            if v.is_valid(row) && passes(opt_filter, row) {
                self.add(g, v.value(row), 1);
            }
        }
        Ok(())
    }

    fn merge_batch(
        &mut self,
        values: &[ArrayRef],
        group_indices: &[usize],
        total_num_groups: usize,
    ) -> Result<()> {
        self.bags.resize_with(total_num_groups, HashMap::new);
        let vs = values[0].as_list::<i32>();
        let cs = values[1].as_list::<i32>();
        let (v_all, c_all) = (vs.values().as_string::<i32>(), cs.values());
        let c_all = c_all.as_primitive::<Int64Type>();
        for (row, &g) in group_indices.iter().enumerate() {
            if vs.is_null(row) {
                continue;
            }
            let offsets = vs.value_offsets();
            let c_offsets = cs.value_offsets();
            let (start, end) = (offsets[row] as usize, offsets[row + 1] as usize);
            let c_start = c_offsets[row] as usize;
            for (k, i) in (start..end).enumerate() {
                self.add(g, v_all.value(i), c_all.value(c_start + k) as u64);
            }
        }
        Ok(())
    }

    fn evaluate(&mut self, emit_to: EmitTo) -> Result<ArrayRef> {
        let bags = self.take(emit_to);
        Ok(self.result(&bags))
    }

    fn state(&mut self, emit_to: EmitTo) -> Result<Vec<ArrayRef>> {
        let bags = self.take(emit_to);
        Ok(bag_state(&bags))
    }

    /// Each input row as the state of a bag holding just its value (or nothing).
    fn convert_to_state(
        &self,
        values: &[ArrayRef],
        opt_filter: Option<&BooleanArray>,
    ) -> Result<Vec<ArrayRef>> {
        let v = values[0].as_string::<i32>();
        let mut vs = ListBuilder::new(StringBuilder::new());
        let mut cs = ListBuilder::new(Int64Builder::new());
        for row in 0..v.len() {
            if v.is_valid(row) && passes(opt_filter, row) {
                vs.values().append_value(v.value(row));
                cs.values().append_value(1);
            }
            vs.append(true);
            cs.append(true);
        }
        Ok(vec![Arc::new(vs.finish()), Arc::new(cs.finish())])
    }

    fn size(&self) -> usize {
        self.bytes + self.bags.capacity() * std::mem::size_of::<HashMap<Box<str>, u64>>()
    }
}

impl OneGroupView for BagGroups {
    fn ensure_group(&mut self) {
        self.bags.resize_with(1, HashMap::new);
    }
    fn group_state(&self) -> Vec<ArrayRef> {
        bag_state(&self.bags)
    }
    fn group_value(&self) -> ArrayRef {
        self.result(&self.bags)
    }
}
