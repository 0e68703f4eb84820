//! Encoding finished batches as Parquet files with fixed writer settings (so equal input gives
//! equal bytes) and handing them to the uploader, one bounded file at a time.

use std::sync::Arc;

use datafusion::arrow::datatypes::SchemaRef;
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::parquet::arrow::ArrowWriter;
use datafusion::parquet::basic::Compression;
use datafusion::parquet::file::properties::{EnabledStatistics, WriterProperties};
use datafusion::parquet::schema::types::ColumnPath;
use object_store::path::Path;
use tokio::sync::mpsc;

use crate::error::{GenerateError, GenerateResult};

/// One encoded file, ready to upload.
pub(crate) struct EncodedFile {
    pub path: Path,
    pub bytes: Vec<u8>,
    /// How many messages this file accounts for (a track call is written to `tracks` and to its
    /// per-event table, and counted once, with `tracks`).
    pub messages: u64,
}

/// Where a worker sends its files.
#[derive(Clone)]
pub(crate) struct Output {
    pub prefix: Path,
    pub rows_per_file: usize,
    pub props: Arc<WriterProperties>,
    pub tx: mpsc::Sender<EncodedFile>,
}

/// Columns that are (nearly) unique per row: dictionary encoding only costs time there.
const HIGH_CARDINALITY: &[&str] = &[
    "message_id",
    "id",
    "timestamp",
    "received_at",
    "sent_at",
    "original_timestamp",
    "properties",
    "traits",
    "context",
    "order_id",
    "checkout_id",
    "review_id",
    "email_id",
];

/// JSON text: nobody filters on min/max of it.
const NO_STATS: &[&str] = &["properties", "traits", "context"];

/// The fixed writer settings of every generated file.
pub(crate) fn writer_properties() -> WriterProperties {
    let mut b = WriterProperties::builder()
        .set_compression(Compression::SNAPPY)
        .set_created_by("cohort generate".to_string())
        .set_max_row_group_row_count(Some(1 << 20));
    for c in HIGH_CARDINALITY {
        b = b.set_column_dictionary_enabled(ColumnPath::from(*c), false);
    }
    for c in NO_STATS {
        b = b.set_column_statistics_enabled(ColumnPath::from(*c), EnabledStatistics::None);
    }
    b.build()
}

impl Output {
    /// Encodes `batch` as `<prefix>/<parts...>` and sends it to the uploader.
    pub(crate) fn write(
        &self,
        parts: &[&str],
        schema: &SchemaRef,
        batch: RecordBatch,
        messages: u64,
    ) -> GenerateResult<()> {
        let mut path = self.prefix.clone();
        for p in parts {
            path = path.join(*p);
        }
        let mut buf = Vec::with_capacity(1 << 20);
        let mut w = ArrowWriter::try_new(&mut buf, schema.clone(), Some((*self.props).clone()))?;
        w.write(&batch)?;
        w.close()?;
        self.tx
            .blocking_send(EncodedFile {
                path,
                bytes: buf,
                messages,
            })
            .map_err(|_| GenerateError::Invalid("generation was stopped".into()))
    }
}

/// `part-NNNNN.parquet`
pub(crate) fn part_name(n: u32) -> String {
    format!("part-{n:05}.parquet")
}
