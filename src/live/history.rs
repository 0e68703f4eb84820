//! Every profile's events, held so that one profile's are cheap to read: the published history
//! sorted by profile id with an index of each profile's rows, plus the events received since,
//! per profile. Live evaluation reads a touched profile's whole history from here, so its values
//! are what a batch run over the same events gives.

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
    /// Events received since the published run, by the profile they were given.
    added: HashMap<String, Vec<RecordBatch>>,
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

    /// Adds one event (a one-row batch in any column types that cast to the history's) to
    /// `profile`.
    pub fn add(&mut self, message_id: &str, profile: &str, row: &RecordBatch) -> Result<()> {
        self.seen.insert(message_id.to_string());
        let batch = self.conform(row, profile)?;
        let l = self.label_index(profile);
        for t in self.micros(&batch)?.into_iter().flatten() {
            let at = self.recent.partition_point(|x| *x <= (t, l));
            self.recent.insert(at, (t, l));
        }
        let added = self.added.entry(profile.to_string()).or_default();
        added.push(batch);
        // One-row batches cost more than their rows: keep few per profile.
        if added.len() >= 16 {
            let one = concat_batches(&self.schema, added.iter())?;
            *added = vec![one];
        }
        Ok(())
    }

    /// Every event of `profile` and of the profiles merged into it, labelled `profile`, as one
    /// batch.
    pub fn batch_of(&self, profile: &str, absorbed: &BTreeSet<String>) -> Result<RecordBatch> {
        Ok(concat_batches(&self.schema, &self.of(profile, absorbed)?)?)
    }

    /// Every event of `profile` and of the profiles merged into it, labelled `profile`.
    pub fn of(&self, profile: &str, absorbed: &BTreeSet<String>) -> Result<Vec<RecordBatch>> {
        let mut out = Vec::new();
        for p in std::iter::once(profile).chain(absorbed.iter().map(String::as_str)) {
            if let Some(&(off, len)) = self.rows.get(p) {
                out.push(self.relabel(&self.base.slice(off, len), profile)?);
            }
            for b in self.added.get(p).into_iter().flatten() {
                out.push(self.relabel(b, profile)?);
            }
        }
        Ok(out)
    }

    /// `row` in the history's schema, with `profile` as its profile id.
    fn conform(&self, row: &RecordBatch, profile: &str) -> Result<RecordBatch> {
        let mut cols: Vec<ArrayRef> = Vec::with_capacity(self.schema.fields().len());
        for f in self.schema.fields() {
            let c = match row.schema().index_of(f.name()) {
                Ok(i) => cast(row.column(i), f.data_type())?,
                Err(_) => datafusion::arrow::array::new_null_array(f.data_type(), row.num_rows()),
            };
            cols.push(c);
        }
        cols[self.profile_col] = self.label(profile, row.num_rows())?;
        Ok(RecordBatch::try_new(self.schema.clone(), cols)?)
    }

    fn relabel(&self, b: &RecordBatch, profile: &str) -> Result<RecordBatch> {
        let mut cols = b.columns().to_vec();
        cols[self.profile_col] = self.label(profile, b.num_rows())?;
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
