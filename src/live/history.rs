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
        Ok(History {
            schema,
            base,
            rows,
            added: HashMap::new(),
            seen,
            profile_col,
        })
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
