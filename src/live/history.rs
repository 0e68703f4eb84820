//! Every profile's events, held so that one profile's are cheap to read: the published history
//! sorted by profile id with an index of each profile's rows, plus the events received since,
//! kept in the batches they arrived in with each profile's row numbers. Live evaluation reads
//! the touched profiles' whole histories from here in one copy, so their values are what a
//! batch run over the same events gives.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, AsArray, RecordBatch, StringArray};
use datafusion::arrow::compute::{cast, concat_batches};
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::common::Result;

/// The events of every profile.
pub struct History {
    schema: SchemaRef,
    /// Published events, sorted by profile id.
    base: RecordBatch,
    /// Profile id -> (offset, length) in `base`.
    rows: HashMap<String, (usize, usize)>,
    /// Events received since the published run, one batch per tick and source (their
    /// `profile_id` is empty: the profile is in `added`).
    chunks: Vec<RecordBatch>,
    /// Profile -> its events received since, as (chunk, row), by the profile they were given.
    added: HashMap<String, Vec<(u32, u32)>>,
    /// Every message id of the published history and of the events added since.
    seen: HashSet<String>,
    /// Index of `profile_id` in `schema`.
    profile_col: usize,
    /// Every event's (timestamp in UTC micros, profile label in `labels`), sorted: which
    /// profiles have events in a time range (see [`super::clock`]).
    times: Vec<(i64, u32)>,
    /// The same for the events added since (kept apart: inserting into `times` would move
    /// the whole published history for every event).
    recent: Vec<(i64, u32)>,
    labels: Vec<String>,
    label_of: HashMap<String, u32>,
}

impl History {
    /// From the published events (any order; `profile_id` is one of their columns) and the
    /// message ids of the whole published history.
    pub fn new(schema: SchemaRef, batches: &[RecordBatch], seen: HashSet<String>) -> Result<Self> {
        let base = concat_batches(&schema, batches)?;
        let profile_col = schema.index_of("profile_id")?;
        let mut rows: HashMap<String, (usize, usize)> = HashMap::new();
        let ids = text(base.column(profile_col))?;
        let mut i = 0;
        while i < ids.len() {
            let id = ids.value(i);
            let mut j = i + 1;
            while j < ids.len() && ids.value(j) == id {
                j += 1;
            }
            rows.insert(id.to_string(), (i, j - i));
            i = j;
        }
        let mut h = History {
            schema,
            base,
            rows,
            chunks: Vec::new(),
            added: HashMap::new(),
            seen,
            profile_col,
            times: Vec::new(),
            recent: Vec::new(),
            labels: Vec::new(),
            label_of: HashMap::new(),
        };
        let ts = h.micros(&h.base.clone())?;
        let mut times = Vec::with_capacity(ts.len());
        for (i, t) in ts.into_iter().enumerate() {
            if let Some(t) = t {
                let l = h.label_index(ids.value(i));
                times.push((t, l));
            }
        }
        times.sort_unstable();
        h.times = times;
        Ok(h)
    }

    fn label_index(&mut self, profile: &str) -> u32 {
        if let Some(&i) = self.label_of.get(profile) {
            return i;
        }
        let i = self.labels.len() as u32;
        self.labels.push(profile.to_string());
        self.label_of.insert(profile.to_string(), i);
        i
    }

    /// The `timestamp` column of `b` as UTC micros.
    fn micros(&self, b: &RecordBatch) -> Result<Vec<Option<i64>>> {
        use datafusion::arrow::datatypes::{DataType, TimeUnit, TimestampMicrosecondType};
        let i = self.schema.index_of("timestamp")?;
        let c = cast(
            b.column(i),
            &DataType::Timestamp(TimeUnit::Microsecond, None),
        )?;
        let c = c.as_primitive::<TimestampMicrosecondType>();
        Ok((0..c.len())
            .map(|r| (!c.is_null(r)).then(|| c.value(r)))
            .collect())
    }

    /// The profiles (as labelled when their events were stored; follow merges from there)
    /// with an event timestamped in `(after, until]`.
    pub fn profiles_between(&self, after: i64, until: i64) -> BTreeSet<String> {
        let mut out = BTreeSet::new();
        for times in [&self.times, &self.recent] {
            let from = times.partition_point(|(t, _)| *t <= after);
            out.extend(
                times[from..]
                    .iter()
                    .take_while(|(t, _)| *t <= until)
                    .map(|(_, l)| self.labels[*l as usize].clone()),
            );
        }
        out
    }

    /// The earliest event timestamp after `after`, if any.
    pub fn next_after(&self, after: i64) -> Option<i64> {
        [&self.times, &self.recent]
            .into_iter()
            .filter_map(|times| {
                let from = times.partition_point(|(t, _)| *t <= after);
                times.get(from).map(|(t, _)| *t)
            })
            .min()
    }

    pub fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    /// Whether a message id is already in the history (a repeat counts once).
    pub fn has(&self, message_id: &str) -> bool {
        self.seen.contains(message_id)
    }

    /// Marks a message id as in the history: a later copy of it is a repeat.
    pub fn see(&mut self, message_id: &str) {
        self.seen.insert(message_id.to_string());
    }

    /// Adds the rows `applied` names of `events` (a batch in any column types that cast to
    /// the history's), each to the profile it names. The batch is cast once and kept whole;
    /// the profiles hold its row numbers. A tick applies thousands of events, and copying
    /// them per event or per profile cost more than the events.
    pub fn add(&mut self, events: &RecordBatch, applied: &[(usize, String)]) -> Result<()> {
        if applied.is_empty() {
            return Ok(());
        }
        let whole = self.conform(events)?;
        let ts = self.micros(&whole)?;
        let chunk = self.chunks.len() as u32;
        self.chunks.push(whole);
        let mut times = Vec::with_capacity(applied.len());
        for (row, profile) in applied {
            let l = self.label_index(profile);
            if let Some(t) = ts[*row] {
                times.push((t, l));
            }
            self.added
                .entry(profile.clone())
                .or_default()
                .push((chunk, *row as u32));
        }
        // Events arrive about in time order: the new times go after the old ones.
        times.sort_unstable();
        let in_order = match (self.recent.last(), times.first()) {
            (Some(last), Some(first)) => last <= first,
            _ => true,
        };
        self.recent.extend(times);
        if !in_order {
            self.recent.sort_unstable();
        }
        Ok(())
    }

    /// Every event of each of `profiles` and of the profiles merged into it, labelled with
    /// the profile, as one batch: each event is copied once.
    pub fn batch_of_all<'a>(
        &self,
        profiles: impl IntoIterator<Item = (&'a str, &'a BTreeSet<String>)>,
    ) -> Result<RecordBatch> {
        // (batch, row) into [base, chunks...], and each row's profile.
        let mut at: Vec<(usize, usize)> = Vec::new();
        let mut labels: Vec<&str> = Vec::new();
        for (profile, absorbed) in profiles {
            let before = at.len();
            for p in std::iter::once(profile).chain(absorbed.iter().map(String::as_str)) {
                if let Some(&(off, len)) = self.rows.get(p) {
                    at.extend((off..off + len).map(|r| (0, r)));
                }
                for &(c, r) in self.added.get(p).into_iter().flatten() {
                    at.push((c as usize + 1, r as usize));
                }
            }
            labels.extend(std::iter::repeat_n(profile, at.len() - before));
        }
        let batches: Vec<&RecordBatch> = std::iter::once(&self.base).chain(&self.chunks).collect();
        let b = datafusion::arrow::compute::interleave_record_batch(&batches, &at)?;
        let mut cols = b.columns().to_vec();
        let a: ArrayRef = Arc::new(StringArray::from(labels));
        cols[self.profile_col] = cast(&a, self.schema.field(self.profile_col).data_type())?;
        Ok(RecordBatch::try_new(self.schema.clone(), cols)?)
    }

    /// `rows` in the history's schema, with an empty profile id (rows get their profile's
    /// when they are read back).
    fn conform(&self, rows: &RecordBatch) -> Result<RecordBatch> {
        let mut cols: Vec<ArrayRef> = Vec::with_capacity(self.schema.fields().len());
        for f in self.schema.fields() {
            let c = match rows.schema().index_of(f.name()) {
                Ok(i) => cast(rows.column(i), f.data_type())?,
                Err(_) => datafusion::arrow::array::new_null_array(f.data_type(), rows.num_rows()),
            };
            cols.push(c);
        }
        cols[self.profile_col] = self.label("", rows.num_rows())?;
        Ok(RecordBatch::try_new(self.schema.clone(), cols)?)
    }

    fn label(&self, profile: &str, n: usize) -> Result<ArrayRef> {
        let a: ArrayRef = Arc::new(StringArray::from(vec![profile; n]));
        Ok(cast(&a, self.schema.field(self.profile_col).data_type())?)
    }
}

/// A text column as `StringArray`, whatever its string type.
pub fn text(a: &ArrayRef) -> Result<StringArray> {
    let c = cast(a, &datafusion::arrow::datatypes::DataType::Utf8)?;
    Ok(c.as_string::<i32>().clone())
}

/// Rows of `a` that are not null, as strings.
pub fn values(a: &ArrayRef) -> Result<Vec<Option<String>>> {
    let t = text(a)?;
    Ok((0..t.len())
        .map(|i| (!t.is_null(i)).then(|| t.value(i).to_string()))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::array::TimestampMicrosecondArray;
    use datafusion::arrow::datatypes::{DataType, Field, Schema, TimeUnit};

    fn schema() -> SchemaRef {
        Arc::new(Schema::new(vec![
            Field::new("message_id", DataType::Utf8, false),
            Field::new(
                "timestamp",
                DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
                true,
            ),
            Field::new("profile_id", DataType::Utf8, false),
        ]))
    }

    fn batch(rows: &[(&str, i64, &str)]) -> RecordBatch {
        RecordBatch::try_new(
            schema(),
            vec![
                Arc::new(StringArray::from_iter_values(rows.iter().map(|r| r.0))),
                Arc::new(
                    TimestampMicrosecondArray::from_iter_values(rows.iter().map(|r| r.1))
                        .with_timezone("UTC"),
                ),
                Arc::new(StringArray::from_iter_values(rows.iter().map(|r| r.2))),
            ],
        )
        .unwrap()
    }

    fn rows(b: &RecordBatch) -> Vec<(String, String)> {
        let (m, p) = (text(b.column(0)).unwrap(), text(b.column(2)).unwrap());
        let mut out: Vec<_> = (0..b.num_rows())
            .map(|i| (p.value(i).to_string(), m.value(i).to_string()))
            .collect();
        out.sort();
        out
    }

    #[test]
    fn added_events_are_read_with_their_profile_and_merged_profiles_relabelled() {
        let base = batch(&[("m1", 10, "a"), ("m2", 20, "a"), ("m3", 30, "b")]);
        let seen = ["m1", "m2", "m3"].map(String::from).into_iter().collect();
        let mut h = History::new(schema(), &[base], seen).unwrap();
        // One tick: rows 0 and 2 applied (to a and c), row 1 a repeat left out.
        let tick = batch(&[("m4", 40, ""), ("m1", 41, ""), ("m5", 50, "")]);
        h.add(&tick, &[(0, "a".into()), (2, "c".into())]).unwrap();
        let none = BTreeSet::new();
        let merged: BTreeSet<String> = ["b".to_string()].into();
        let all = h.batch_of_all([("a", &none), ("c", &merged)]).unwrap();
        assert_eq!(
            rows(&all),
            [
                ("a", "m1"),
                ("a", "m2"),
                ("a", "m4"),
                ("c", "m3"),
                ("c", "m5")
            ]
            .map(|(p, m)| (p.to_string(), m.to_string()))
        );
        assert_eq!(all.schema(), schema());
        // A second tick, earlier than the first: the times stay sorted.
        h.add(&batch(&[("m6", 35, "")]), &[(0, "b".into())])
            .unwrap();
        assert_eq!(
            h.profiles_between(34, 45),
            ["a", "b"].map(String::from).into()
        );
        assert_eq!(h.next_after(41), Some(50));
        assert_eq!(rows(&h.batch_of_all([("b", &none)]).unwrap()).len(), 2);
    }
}
