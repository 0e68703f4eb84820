//! `cohort_first(value, timestamp, message_id)` and `cohort_last(...)`: the value of a group's
//! earliest / latest row by `(timestamp, message_id)`, keeping one row per group.

use std::sync::{Arc, LazyLock};

use datafusion::arrow::array::{
    Array, ArrayRef, AsArray, BooleanArray, Int64Builder, StringBuilder,
};
use datafusion::arrow::datatypes::{DataType, Field, FieldRef, Int64Type};
use datafusion::common::Result;
use datafusion::logical_expr::function::{AccumulatorArgs, StateFieldsArgs};
use datafusion::logical_expr::{
    Accumulator, AggregateUDF, AggregateUDFImpl, EmitTo, GroupsAccumulator, Signature, Volatility,
};

use super::{OneGroup, OneGroupView, passes};
use crate::functions::{Texts, text_array};

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
