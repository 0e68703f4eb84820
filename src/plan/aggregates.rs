//! Cohort's own aggregate functions: what a computed trait needs that DataFusion does not have,
//! or has only on a slow path.
//!
//! All three count the non-null text values of a group in a bag (value -> occurrences):
//!
//! - `cohort_mode(value, min_frequency)` is the most frequent value, ties broken alphabetically
//!   (the smallest value wins), or null when the top value occurs fewer than `min_frequency`
//!   times.
//! - `cohort_unique(value)` is the sorted list of distinct values (null when there are none).
//! - `cohort_unique_count(value)` is how many distinct values there are (0 when none).
//!
//! `cohort_first(value, timestamp, message_id)` and `cohort_last(...)` pick the value of the
//! earliest / latest row by `(timestamp, message_id)`.
//!
//! Each has a per-group accumulator for grouped aggregation (one bag per group, updated row by
//! row), which is what keeps a space's fused trait aggregation fast: DataFusion's DISTINCT
//! aggregates and its adapter for row accumulators slice every batch per group. The state
//! between partial and final aggregation is the bag as two lists, values and counts.

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

use crate::functions::{Texts, text_array};

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

/// Every aggregate of this module, for registration in a session.
pub fn all() -> Vec<Arc<AggregateUDF>> {
    vec![
        MODE.clone(),
        UNIQUE.clone(),
        UNIQUE_COUNT.clone(),
        FIRST.clone(),
        LAST.clone(),
    ]
}

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

fn passes(filter: Option<&BooleanArray>, row: usize) -> bool {
    filter.is_none_or(|f| f.is_valid(row) && f.value(row))
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

/// `cohort_first`.
pub static FIRST: LazyLock<Arc<AggregateUDF>> =
    LazyLock::new(|| Arc::new(AggregateUDF::from(PickUdaf::new(false))));
/// `cohort_last`.
pub static LAST: LazyLock<Arc<AggregateUDF>> =
    LazyLock::new(|| Arc::new(AggregateUDF::from(PickUdaf::new(true))));

/// `cohort_first(value, timestamp, message_id)` / `cohort_last(...)`: the text value of the
/// group's earliest / latest row by `(timestamp, message_id)`, null included (a filter picks
/// the rows that count). What `first_value(v ORDER BY timestamp, message_id)` gives, with a
/// per-group accumulator that keeps one row per group instead of DataFusion's row path.
#[derive(Debug, PartialEq, Eq, Hash)]
struct PickUdaf {
    last: bool,
    signature: Signature,
}

impl PickUdaf {
    fn new(last: bool) -> Self {
        PickUdaf {
            last,
            signature: Signature::any(3, Volatility::Immutable),
        }
    }
}

impl AggregateUDFImpl for PickUdaf {
    fn name(&self) -> &str {
        if self.last {
            "cohort_last"
        } else {
            "cohort_first"
        }
    }
    fn signature(&self) -> &Signature {
        &self.signature
    }
    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(DataType::Utf8)
    }
    fn accumulator(&self, _args: AccumulatorArgs) -> Result<Box<dyn Accumulator>> {
        Ok(Box::new(OneGroup(PickGroups::new(self.last))))
    }
    fn groups_accumulator_supported(&self, _args: AccumulatorArgs) -> bool {
        true
    }
    fn create_groups_accumulator(
        &self,
        _args: AccumulatorArgs,
    ) -> Result<Box<dyn GroupsAccumulator>> {
        Ok(Box::new(PickGroups::new(self.last)))
    }
    fn state_fields(&self, args: StateFieldsArgs) -> Result<Vec<FieldRef>> {
        Ok(vec![
            Arc::new(Field::new(
                format!("{}[value]", args.name),
                DataType::Utf8,
                true,
            )),
            Arc::new(Field::new(
                format!("{}[timestamp]", args.name),
                DataType::Int64,
                true,
            )),
            Arc::new(Field::new(
                format!("{}[message_id]", args.name),
                DataType::Utf8,
                true,
            )),
        ])
    }
}

/// Calls `f(row, time, message_id, value)` for each row of `(value, time, message_id)`
/// arrays that has a time and passes `filter`.
fn pick_rows(
    arrays: &[ArrayRef],
    filter: Option<&BooleanArray>,
    mut f: impl FnMut(usize, i64, &str, Option<&str>),
) -> Result<()> {
    let (v, t, m) = (
        text_array(Arc::clone(&arrays[0]))?,
        time_array(&arrays[1])?,
        text_array(Arc::clone(&arrays[2]))?,
    );
    let (v, m) = (Texts::new(&v)?, Texts::new(&m)?);
    let t = t.as_primitive::<Int64Type>();
    for row in 0..t.len() {
        if t.is_valid(row) && passes(filter, row) {
            f(row, t.value(row), m.get(row).unwrap_or(""), v.get(row));
        }
    }
    Ok(())
}

/// Microseconds (or whatever unit the timestamp has: only the order matters) as Int64.
fn time_array(a: &ArrayRef) -> Result<ArrayRef> {
    Ok(datafusion::arrow::compute::cast(a, &DataType::Int64)?)
}

/// The picked row of one group: its time, message id and value.
type Pick = (i64, Box<str>, Option<Box<str>>);

#[derive(Debug)]
struct PickGroups {
    last: bool,
    picks: Vec<Option<Pick>>,
    bytes: usize,
}

impl PickGroups {
    fn new(last: bool) -> Self {
        PickGroups {
            last,
            picks: Vec::new(),
            bytes: 0,
        }
    }

    fn offer(&mut self, group: usize, ts: i64, id: &str, value: Option<&str>) {
        let better = match &self.picks[group] {
            None => true,
            Some((t, m, _)) => {
                let ord = (ts, id).cmp(&(*t, &**m));
                if self.last { ord.is_gt() } else { ord.is_lt() }
            }
        };
        if better {
            self.bytes += id.len() + value.map_or(0, str::len);
            self.picks[group] = Some((ts, id.into(), value.map(Into::into)));
        }
    }

    /// Offers every row of `(value, time, message_id)` arrays that passes `filter`.
    fn offer_rows(
        &mut self,
        arrays: &[ArrayRef],
        group_indices: &[usize],
        filter: Option<&BooleanArray>,
    ) -> Result<()> {
        pick_rows(arrays, filter, |row, ts, id, value| {
            self.offer(group_indices[row], ts, id, value)
        })
    }

    fn take(&mut self, emit_to: EmitTo) -> Vec<Option<Pick>> {
        let taken = emit_to.take_needed(&mut self.picks);
        self.bytes = self
            .picks
            .iter()
            .flatten()
            .map(|(_, m, v)| m.len() + v.as_ref().map_or(0, |v| v.len()))
            .sum();
        taken
    }
}

fn pick_state(picks: &[Option<Pick>]) -> Vec<ArrayRef> {
    let mut v = StringBuilder::new();
    let mut t = Int64Builder::new();
    let mut m = StringBuilder::new();
    for p in picks {
        match p {
            Some((ts, id, value)) => {
                v.append_option(value.as_deref());
                t.append_value(*ts);
                m.append_value(id);
            }
            None => {
                v.append_null();
                t.append_null();
                m.append_null();
            }
        }
    }
    vec![
        Arc::new(v.finish()),
        Arc::new(t.finish()),
        Arc::new(m.finish()),
    ]
}

fn pick_values(picks: &[Option<Pick>]) -> ArrayRef {
    let mut out = StringBuilder::new();
    for p in picks {
        out.append_option(p.as_ref().and_then(|(_, _, v)| v.as_deref()));
    }
    Arc::new(out.finish())
}

impl GroupsAccumulator for PickGroups {
    fn update_batch(
        &mut self,
        values: &[ArrayRef],
        group_indices: &[usize],
        opt_filter: Option<&BooleanArray>,
        total_num_groups: usize,
    ) -> Result<()> {
        self.picks.resize(total_num_groups, None);
        self.offer_rows(values, group_indices, opt_filter)
    }

    fn merge_batch(
        &mut self,
        values: &[ArrayRef],
        group_indices: &[usize],
        total_num_groups: usize,
    ) -> Result<()> {
        self.picks.resize(total_num_groups, None);
        self.offer_rows(values, group_indices, None)
    }

    fn evaluate(&mut self, emit_to: EmitTo) -> Result<ArrayRef> {
        Ok(pick_values(&self.take(emit_to)))
    }

    fn state(&mut self, emit_to: EmitTo) -> Result<Vec<ArrayRef>> {
        Ok(pick_state(&self.take(emit_to)))
    }

    /// Each input row that passes the filter as a pick of its own; the others as no pick.
    fn convert_to_state(
        &self,
        values: &[ArrayRef],
        opt_filter: Option<&BooleanArray>,
    ) -> Result<Vec<ArrayRef>> {
        let mut picks: Vec<Option<Pick>> = vec![None; values[0].len()];
        pick_rows(values, opt_filter, |row, ts, id, value| {
            picks[row] = Some((ts, id.into(), value.map(Into::into)));
        })?;
        Ok(pick_state(&picks))
    }

    fn size(&self) -> usize {
        self.bytes + self.picks.capacity() * std::mem::size_of::<Option<Pick>>()
    }
}

/// A per-group accumulator that can show one group's state and value without emitting it.
trait OneGroupView: GroupsAccumulator + std::fmt::Debug + Sync {
    /// Makes sure group 0 exists.
    fn ensure_group(&mut self);
    fn group_state(&self) -> Vec<ArrayRef>;
    fn group_value(&self) -> ArrayRef;
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

impl OneGroupView for PickGroups {
    fn ensure_group(&mut self) {
        self.picks.resize(1, None);
    }
    fn group_state(&self) -> Vec<ArrayRef> {
        pick_state(&self.picks)
    }
    fn group_value(&self) -> ArrayRef {
        pick_values(&self.picks)
    }
}

/// The row accumulator DataFusion also asks for: the per-group accumulator with one group.
#[derive(Debug)]
struct OneGroup<G>(G);

impl<G: OneGroupView> Accumulator for OneGroup<G> {
    fn update_batch(&mut self, values: &[ArrayRef]) -> Result<()> {
        let groups = vec![0; values[0].len()];
        self.0.update_batch(values, &groups, None, 1)
    }

    fn merge_batch(&mut self, states: &[ArrayRef]) -> Result<()> {
        let groups = vec![0; states[0].len()];
        self.0.merge_batch(states, &groups, 1)
    }

    fn state(&mut self) -> Result<Vec<ScalarValue>> {
        self.0.ensure_group();
        self.0
            .group_state()
            .iter()
            .map(|a| ScalarValue::try_from_array(a, 0))
            .collect()
    }

    fn evaluate(&mut self) -> Result<ScalarValue> {
        self.0.ensure_group();
        ScalarValue::try_from_array(&self.0.group_value(), 0)
    }

    fn size(&self) -> usize {
        std::mem::size_of_val(self) + GroupsAccumulator::size(&self.0)
    }
}
