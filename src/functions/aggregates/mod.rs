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
//!
//! Files: `bag.rs` (mode, unique, unique count), `pick.rs` (first, last); this file registers
//! them and holds the row accumulator both wrap their per-group accumulator in.

use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, BooleanArray};
use datafusion::common::{Result, ScalarValue};
use datafusion::logical_expr::{Accumulator, AggregateUDF, GroupsAccumulator};

mod bag;
mod pick;

pub use bag::{MODE, UNIQUE, UNIQUE_COUNT};
pub use pick::{FIRST, LAST};

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

fn passes(filter: Option<&BooleanArray>, row: usize) -> bool {
    filter.is_none_or(|f| f.is_valid(row) && f.value(row))
}

/// A per-group accumulator that can show one group's state and value without emitting it.
trait OneGroupView: GroupsAccumulator + std::fmt::Debug + Sync {
    /// Makes sure group 0 exists.
    fn ensure_group(&mut self);
    fn group_state(&self) -> Vec<ArrayRef>;
    fn group_value(&self) -> ArrayRef;
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
