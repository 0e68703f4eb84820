//! How a run writes its scratch Parquet: the tables it keeps between stages (history,
//! occurrences, joins written a bucket at a time), which are read back by the same run only.
//! One place for their settings, so the run's stages and the identity stage write alike.

use datafusion::arrow::array::{Array, RecordBatch, UInt64Array};
use datafusion::config::TableParquetOptions;

/// Parquet settings for scratch tables.
pub fn parquet_options() -> TableParquetOptions {
    let mut options = TableParquetOptions::default();
    // zstd at its fastest level: scratch tables are some 9 GB each at 100 M events as
    // Snappy, which filled this machine's disk before the run could publish.
    options.global.compression = Some("zstd(1)".into());
    // Small row groups and one serializer per file keep the writer's buffers small, so a run
    // under a tight memory limit spends its budget on sorts and aggregates, which can spill.
    options.global.allow_single_file_parallelism = false;
    options.global.max_row_group_size = 4096;
    options
}

/// The rows a DataFusion write reports it wrote (its result batches' counts).
pub fn rows_written(result: &[RecordBatch]) -> u64 {
    result
        .iter()
        .filter_map(|b| b.column(0).as_any().downcast_ref::<UInt64Array>())
        .flat_map(|c| c.iter().flatten())
        .sum()
}
