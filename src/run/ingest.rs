//! The ingestion log: every source file earlier runs read into the event history (path, size,
//! last-modified time, ETag), published as the `ingested_files` table. A run reads only the
//! files the log does not hold; a logged file that changed or went away since means the
//! history holds rows that are no longer in the lake, so the run rebuilds everything from the
//! sources and its record says which file and why.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use datafusion::arrow::array::{
    Array, ArrayRef, AsArray, Int64Array, RecordBatch, StringArray, TimestampMicrosecondArray,
};
use datafusion::arrow::datatypes::{DataType, Field, Int64Type, Schema, SchemaRef, TimeUnit};
use datafusion::prelude::SessionContext;

use super::files::SourceFile;
use super::tables::published;
use crate::error::{EngineResult, StoreError};
use crate::store::objects::Location;
use crate::store::{delta, manifest};

/// One file of the log.
#[derive(Clone, Debug, PartialEq)]
struct Logged {
    source: String,
    table: String,
    size: i64,
    last_modified: i64,
    e_tag: Option<String>,
    run_id: String,
}

/// The files earlier runs ingested, by the path users see (`/data/...` or `s3://...`).
#[derive(Clone, Debug, Default)]
pub struct IngestLog {
    files: BTreeMap<String, Logged>,
}

fn schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("source", DataType::Utf8, false),
        Field::new("source_table", DataType::Utf8, false),
        Field::new("file", DataType::Utf8, false),
        Field::new("size", DataType::Int64, false),
        Field::new(
            "last_modified",
            DataType::Timestamp(TimeUnit::Microsecond, Some(Arc::from("UTC"))),
            false,
        ),
        Field::new("e_tag", DataType::Utf8, true),
        Field::new("run_id", DataType::Utf8, false),
    ]))
}

fn corrupt(reason: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt {
        what: format!("the `{}` table", published::INGESTED_FILES),
        reason: reason.to_string(),
    }
}

fn text(b: &RecordBatch, name: &str) -> Result<ArrayRef, StoreError> {
    let c = b
        .column_by_name(name)
        .ok_or_else(|| corrupt(format!("no column `{name}`")))?;
    datafusion::arrow::compute::cast(c, &DataType::Utf8).map_err(corrupt)
}

impl IngestLog {
    /// The log the manifest `m` names, if that run published one.
    pub async fn read(out: &Location, m: &manifest::Manifest) -> EngineResult<Option<Self>> {
        let Some(v) = m.tables.get(published::INGESTED_FILES) else {
            return Ok(None);
        };
        let provider = delta::provider(&out.child(published::INGESTED_FILES), *v).await?;
        let batches = SessionContext::new()
            .read_table(provider)?
            .collect()
            .await?;
        let mut log = IngestLog::default();
        for b in batches {
            let (source, table, file) = (
                text(&b, "source")?,
                text(&b, "source_table")?,
                text(&b, "file")?,
            );
            let (e_tag, run) = (text(&b, "e_tag")?, text(&b, "run_id")?);
            let int = |name: &str, t: DataType| -> Result<ArrayRef, StoreError> {
                let c = b
                    .column_by_name(name)
                    .ok_or_else(|| corrupt(format!("no column `{name}`")))?;
                datafusion::arrow::compute::cast(c, &t).map_err(corrupt)
            };
            let size = int("size", DataType::Int64)?;
            let modified = int("last_modified", DataType::Int64)?;
            let (size, modified) = (
                size.as_primitive::<Int64Type>(),
                modified.as_primitive::<Int64Type>(),
            );
            let (source, table, file) = (
                source.as_string::<i32>(),
                table.as_string::<i32>(),
                file.as_string::<i32>(),
            );
            let (e_tag, run) = (e_tag.as_string::<i32>(), run.as_string::<i32>());
            for i in 0..b.num_rows() {
                log.files.insert(
                    file.value(i).to_string(),
                    Logged {
                        source: source.value(i).to_string(),
                        table: table.value(i).to_string(),
                        size: size.value(i),
                        last_modified: modified.value(i),
                        e_tag: (!e_tag.is_null(i)).then(|| e_tag.value(i).to_string()),
                        run_id: run.value(i).to_string(),
                    },
                );
            }
        }
        Ok(Some(log))
    }

    /// How many files the log holds.
    pub fn len(&self) -> usize {
        self.files.len()
    }

    /// Whether the log holds no file.
    pub fn is_empty(&self) -> bool {
        self.files.is_empty()
    }

    /// Whether `f` was ingested as it is now (same size and ETag, or same size and
    /// modification time where the store gives no ETag).
    pub fn knows(&self, f: &SourceFile) -> bool {
        self.files
            .get(&f.shown)
            .is_some_and(|l| l.source == f.source && unchanged(l, f))
    }

    /// Why the history cannot be extended, given every file the sources list now: the first
    /// logged file that changed or is gone. None when every logged file is as it was.
    pub fn broken(&self, listed: &[SourceFile]) -> Option<String> {
        let mut seen = BTreeSet::new();
        for f in listed {
            if let Some(l) = self.files.get(&f.shown) {
                seen.insert(f.shown.as_str());
                if l.source != f.source {
                    return Some(format!(
                        "{} was ingested from source `{}` and is now read by source `{}`",
                        f.shown, l.source, f.source
                    ));
                }
                if !unchanged(l, f) {
                    let how = if l.size != f.meta.size as i64 {
                        format!("{} bytes, now {}", l.size, f.meta.size)
                    } else {
                        "same size, modified again".to_string()
                    };
                    return Some(format!(
                        "{} changed after run {} ingested it ({how})",
                        f.shown, l.run_id
                    ));
                }
            }
        }
        self.files
            .iter()
            .find(|(path, _)| !seen.contains(path.as_str()))
            .map(|(path, l)| {
                format!(
                    "{path} was ingested by run {} and is gone (deleted or moved)",
                    l.run_id
                )
            })
    }

    /// The log after a run that ingested `new`: these files plus `new`, as one batch.
    pub fn with_new(&self, new: &[&SourceFile], run_id: &str) -> RecordBatch {
        let mut files = self.files.clone();
        for f in new {
            files.insert(
                f.shown.clone(),
                Logged {
                    source: f.source.clone(),
                    table: f.table.clone(),
                    size: f.meta.size as i64,
                    last_modified: f.meta.last_modified.timestamp_micros(),
                    e_tag: f.meta.e_tag.clone(),
                    run_id: run_id.to_string(),
                },
            );
        }
        let col = |get: &dyn Fn(&Logged) -> String| -> ArrayRef {
            Arc::new(StringArray::from_iter_values(files.values().map(get)))
        };
        let cols: Vec<ArrayRef> = vec![
            col(&|l| l.source.clone()),
            col(&|l| l.table.clone()),
            Arc::new(StringArray::from_iter_values(files.keys())),
            Arc::new(Int64Array::from_iter_values(files.values().map(|l| l.size))),
            Arc::new(
                TimestampMicrosecondArray::from_iter_values(
                    files.values().map(|l| l.last_modified),
                )
                .with_timezone("UTC"),
            ),
            Arc::new(StringArray::from_iter(
                files.values().map(|l| l.e_tag.clone()),
            )),
            col(&|l| l.run_id.clone()),
        ];
        RecordBatch::try_new(schema(), cols).expect("the log matches its schema")
    }
}

fn unchanged(l: &Logged, f: &SourceFile) -> bool {
    if l.size != f.meta.size as i64 {
        return false;
    }
    match (&l.e_tag, &f.meta.e_tag) {
        (Some(a), Some(b)) => a == b,
        _ => l.last_modified == f.meta.last_modified.timestamp_micros(),
    }
}
