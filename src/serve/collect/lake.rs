//! Collected events into the lake: a log segment becomes one Parquet file per day,
//! `<source>/dt=YYYY-MM-DD/collect-<segment>.parquet`, in the `events` preset's layout. Each
//! file is written whole and then made visible (a rename on a local folder, one PUT on S3), so
//! a run never reads half of one. A name is written once: flushing a segment again after a
//! crash skips the days already there, so no event lands twice.

use std::collections::BTreeMap;
use std::sync::Arc;

use datafusion::arrow::array::{ArrayRef, StringBuilder};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::parquet::arrow::ArrowWriter;
use datafusion::parquet::basic::Compression;
use datafusion::parquet::file::properties::WriterProperties;
use object_store::ObjectStoreExt;
use object_store::path::Path;

use super::message::Row;
use crate::spec::preset::EVENTS_COLUMNS;
use crate::store::objects::Location;

/// What collected files have after the `events` preset's columns: what Segment adds.
pub const SEGMENT_COLUMNS: [&str; 5] = [
    "integrations",
    "category",
    "received_at",
    "sent_at",
    "original_timestamp",
];

/// Every column of a collected file, in order.
fn columns() -> impl Iterator<Item = &'static str> {
    EVENTS_COLUMNS.into_iter().chain(SEGMENT_COLUMNS)
}

fn schema() -> SchemaRef {
    Arc::new(Schema::new(
        columns()
            .map(|c| Field::new(c, DataType::Utf8, true))
            .collect::<Vec<_>>(),
    ))
}

pub(super) fn batch(rows: &[&Row]) -> datafusion::error::Result<RecordBatch> {
    let mut cols: Vec<StringBuilder> = columns().map(|_| StringBuilder::new()).collect();
    for r in rows {
        let values: [Option<&str>; 16] = [
            Some(&r.message_id),
            Some(&r.kind),
            r.event.as_deref(),
            r.user_id.as_deref(),
            r.anonymous_id.as_deref(),
            r.group_id.as_deref(),
            r.previous_id.as_deref(),
            Some(&r.timestamp),
            r.properties.as_deref(),
            r.traits.as_deref(),
            r.context.as_deref(),
            r.integrations.as_deref(),
            r.category.as_deref(),
            Some(&r.received_at),
            r.sent_at.as_deref(),
            r.original_timestamp.as_deref(),
        ];
        for (c, v) in cols.iter_mut().zip(values) {
            c.append_option(v);
        }
    }
    let arrays: Vec<ArrayRef> = cols
        .iter_mut()
        .map(|b| Arc::new(b.finish()) as ArrayRef)
        .collect();
    Ok(RecordBatch::try_new(schema(), arrays)?)
}

fn parquet(rows: &[&Row]) -> datafusion::error::Result<Vec<u8>> {
    let props = WriterProperties::builder()
        .set_compression(Compression::SNAPPY)
        .build();
    let mut buf = Vec::new();
    let mut w = ArrowWriter::try_new(&mut buf, schema(), Some(props))?;
    w.write(&batch(rows)?)?;
    w.close()?;
    Ok(buf)
}

/// The file a segment's rows of `day` go to.
pub fn file_path(loc: &Location, partition_column: &str, day: &str, segment: &str) -> Path {
    loc.prefix
        .clone()
        .join(format!("{partition_column}={day}"))
        .join(format!("collect-{segment}.parquet"))
}

/// What flushing one segment did.
#[derive(Debug, Default)]
pub struct Flushed {
    pub files: usize,
    pub events: usize,
    /// Files a previous flush of this segment had already written.
    pub already_there: usize,
}

/// Writes a segment's rows to the lake, one file per day; days already written are skipped.
pub async fn flush(
    loc: &Location,
    partition_column: &str,
    segment: &str,
    rows: &[Row],
) -> Result<Flushed, super::Fail> {
    let mut by_day: BTreeMap<&str, Vec<&Row>> = BTreeMap::new();
    for r in rows {
        by_day.entry(r.day()).or_default().push(r);
    }
    let mut done = Flushed::default();
    for (day, rows) in by_day {
        let path = file_path(loc, partition_column, day, segment);
        let written = match loc.local_dir() {
            Some(_) => write_local(&path, &rows)?,
            None => match loc.store.head(&path).await {
                Ok(_) => false,
                Err(object_store::Error::NotFound { .. }) => {
                    loc.store.put(&path, parquet(&rows)?.into()).await?;
                    true
                }
                Err(e) => return Err(e.into()),
            },
        };
        if written {
            done.files += 1;
            done.events += rows.len();
        } else {
            done.already_there += 1;
        }
    }
    Ok(done)
}

/// A local file: written as a hidden `.collect-….tmp` beside it (which runs never read, and a
/// replay overwrites), fsync'd, renamed into place, and the rename fsync'd. False when the file
/// is there already. The local store is rooted at `/`.
fn write_local(path: &Path, rows: &[&Row]) -> Result<bool, super::Fail> {
    let file = std::path::PathBuf::from(format!("/{path}"));
    if file.exists() {
        return Ok(false);
    }
    let (Some(dir), Some(name)) = (file.parent(), file.file_name()) else {
        return Err(format!("{} is not a file path", file.display()).into());
    };
    let fresh_dir = !dir.exists();
    std::fs::create_dir_all(dir)?;
    let tmp = dir.join(format!(".{}.tmp", name.to_string_lossy()));
    {
        use std::io::Write as _;
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(&parquet(rows)?)?;
        f.sync_all()?;
    }
    std::fs::rename(&tmp, &file)?;
    super::wal::sync_dir(dir)?;
    if fresh_dir && let Some(up) = dir.parent() {
        super::wal::sync_dir(up)?;
    }
    Ok(true)
}
