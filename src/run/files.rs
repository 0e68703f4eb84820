//! A source table's Parquet files read one by one, so that real lakes do not stop a run:
//! each file's own schema is read (files written by several writers over years disagree on
//! string kinds, timestamp units, id types, struct vs JSON text), files are grouped by schema
//! and each group is scanned over exactly its files, and a file that cannot be read is named
//! (or set aside, with `--skip-bad-files`) instead of failing the read of the whole folder.
//!
//! Coercion of what has one meaning happens per group in [`crate::plan::events`]: there each
//! group's columns, whatever their types, are projected into the one normalized event schema.

use std::collections::BTreeMap;
use std::sync::Arc;

use async_trait::async_trait;
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::catalog::Session;
use datafusion::datasource::file_format::FileFormat;
use datafusion::datasource::file_format::parquet::ParquetFormat;
use datafusion::datasource::listing::PartitionedFile;
use datafusion::datasource::physical_plan::{FileGroup, FileScanConfigBuilder};
use datafusion::execution::object_store::ObjectStoreUrl;
use datafusion::logical_expr::{Expr, TableProviderFilterPushDown, TableType};
use datafusion::physical_plan::ExecutionPlan;
use datafusion::prelude::SessionContext;
use futures::{StreamExt, TryStreamExt};
use object_store::{ObjectMeta, ObjectStore};
use serde::Serialize;

use crate::error::EngineResult;
use crate::store::objects::Location;

/// The reason given in `event_errors` for a file set aside.
pub const UNREADABLE_FILE: &str = "unreadable_file";

/// A file of a source that could not be read, set aside by `--skip-bad-files`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct SkippedFile {
    pub source: String,
    pub table: String,
    /// The file's URL or local path.
    pub file: String,
    pub reason: String,
}

/// One Parquet file of a source table, with where it lives.
#[derive(Clone, Debug)]
pub struct SourceFile {
    pub source: String,
    pub table: String,
    pub store: Arc<dyn ObjectStore>,
    pub store_url: ObjectStoreUrl,
    pub meta: ObjectMeta,
    /// How the file is named to users: a local path, or `s3://bucket/key`.
    pub shown: String,
}

impl SourceFile {
    pub fn new(source: &str, table: &str, loc: &Location, meta: ObjectMeta) -> EngineResult<Self> {
        let base = loc.store_url();
        let shown = if base.scheme() == "file" {
            format!("/{}", meta.location)
        } else {
            format!("{}{}", base.as_str(), meta.location)
        };
        Ok(SourceFile {
            source: source.to_string(),
            table: table.to_string(),
            store: loc.store.clone(),
            store_url: ObjectStoreUrl::parse(base.as_str())?,
            meta,
            shown,
        })
    }

    pub fn skipped(&self, reason: impl Into<String>) -> SkippedFile {
        SkippedFile {
            source: self.source.clone(),
            table: self.table.clone(),
            file: self.shown.clone(),
            reason: reason.into(),
        }
    }
}

/// The Parquet format with the session's Parquet options (plain strings, ...).
pub fn parquet_format(state: &dyn Session) -> ParquetFormat {
    ParquetFormat::default().with_options(state.default_table_options().parquet)
}

/// Each file's own schema (from its footer), or why it cannot be read. Footers are read
/// concurrently, as DataFusion reads them for one table.
pub async fn file_schemas(
    state: &dyn Session,
    files: Vec<SourceFile>,
) -> Vec<(SourceFile, Result<SchemaRef, String>)> {
    let format = parquet_format(state);
    let concurrency = state
        .config_options()
        .execution
        .meta_fetch_concurrency
        .get();
    let format = &format;
    futures::stream::iter(files)
        .map(|f| async move {
            let r = if f.meta.size == 0 {
                Err("the file is empty (0 bytes)".to_string())
            } else {
                format
                    .infer_schema(state, &f.store, std::slice::from_ref(&f.meta))
                    .await
                    .map_err(|e| reason_of(&e))
            };
            (f, r)
        })
        .boxed() // Send for any lifetime (rust-lang/rust#64552), as DataFusion does here
        .buffered(concurrency)
        .collect()
        .await
}

/// The innermost message of a DataFusion error: what went wrong with the file, without the
/// layers of context it passed through.
pub fn reason_of(e: &datafusion::error::DataFusionError) -> String {
    e.find_root().to_string()
}

/// Whether a failed scan may be the fault of one file's bytes, so that probing the files one
/// by one can name it. Errors pass through several layers (tasks, writers) before they reach
/// the run, so only what is surely not a file's fault (running out of memory) is ruled out.
pub fn may_be_bad_file(e: &datafusion::error::DataFusionError) -> bool {
    !matches!(
        e.find_root(),
        datafusion::error::DataFusionError::ResourcesExhausted(_)
    )
}

/// A column's type with the ways of writing the same thing made one: the three string
/// layouts are text, the three binary layouts are bytes. Files that differ only there share
/// a scan (DataFusion casts such columns as it reads).
fn canonical(t: &DataType) -> DataType {
    match t {
        DataType::LargeUtf8 | DataType::Utf8View => DataType::Utf8,
        DataType::LargeBinary | DataType::BinaryView => DataType::Binary,
        other => other.clone(),
    }
}

/// Files grouped so that every group has one type per column name: a file joins the first
/// group whose columns it does not contradict (missing columns read as null), else starts a
/// group. Lakes whose files all share a schema (or only add columns over time) make one
/// group, and so one scan as before.
pub fn group_by_schema(files: Vec<(SourceFile, SchemaRef)>) -> Vec<(SchemaRef, Vec<SourceFile>)> {
    struct Group {
        order: Vec<String>,
        types: BTreeMap<String, DataType>,
        files: Vec<SourceFile>,
    }
    let mut groups: Vec<Group> = Vec::new();
    for (file, schema) in files {
        let cols: Vec<(String, DataType)> = schema
            .fields()
            .iter()
            .map(|f| (f.name().clone(), canonical(f.data_type())))
            .collect();
        let fits = |g: &Group| {
            cols.iter()
                .all(|(n, t)| g.types.get(n).is_none_or(|gt| gt == t))
        };
        let g = match groups.iter().position(fits) {
            Some(i) => &mut groups[i],
            None => {
                groups.push(Group {
                    order: Vec::new(),
                    types: BTreeMap::new(),
                    files: Vec::new(),
                });
                groups.last_mut().expect("just pushed")
            }
        };
        for (n, t) in cols {
            if !g.types.contains_key(&n) {
                g.order.push(n.clone());
                g.types.insert(n, t);
            }
        }
        g.files.push(file);
    }
    groups
        .into_iter()
        .map(|g| {
            let fields: Vec<Field> = g
                .order
                .iter()
                .map(|n| Field::new(n, g.types[n].clone(), true))
                .collect();
            (Arc::new(Schema::new(fields)), g.files)
        })
        .collect()
}

/// A table over a fixed list of Parquet files that share one schema: no listing at plan time,
/// no schema merge; each file's columns are cast to the group's types as they are read.
#[derive(Debug)]
pub struct FileListTable {
    schema: SchemaRef,
    store_url: ObjectStoreUrl,
    files: Vec<ObjectMeta>,
}

impl FileListTable {
    pub fn new(schema: SchemaRef, files: &[SourceFile]) -> Self {
        let store_url = files
            .first()
            .map(|f| f.store_url.clone())
            .unwrap_or_else(ObjectStoreUrl::local_filesystem);
        FileListTable {
            schema,
            store_url,
            files: files.iter().map(|f| f.meta.clone()).collect(),
        }
    }
}

#[async_trait]
impl datafusion::catalog::TableProvider for FileListTable {
    fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    fn table_type(&self) -> TableType {
        TableType::Base
    }

    fn supports_filters_pushdown(
        &self,
        filters: &[&Expr],
    ) -> datafusion::error::Result<Vec<TableProviderFilterPushDown>> {
        Ok(vec![
            TableProviderFilterPushDown::Unsupported;
            filters.len()
        ])
    }

    async fn scan(
        &self,
        state: &dyn Session,
        projection: Option<&Vec<usize>>,
        _filters: &[Expr],
        limit: Option<usize>,
    ) -> datafusion::error::Result<Arc<dyn ExecutionPlan>> {
        let format = parquet_format(state);
        let source = format.file_source(self.schema.clone().into());
        let files: Vec<PartitionedFile> = self
            .files
            .iter()
            .cloned()
            .map(PartitionedFile::from)
            .collect();
        let groups = FileGroup::new(files).split_files(state.config().target_partitions());
        let config = FileScanConfigBuilder::new(self.store_url.clone(), source)
            .with_file_groups(groups)
            .with_projection_indices(projection.cloned())?
            .with_limit(limit)
            .build();
        format.create_physical_plan(state, config).await
    }
}

/// Reads every row of every column of each file, one file at a time, and returns the files
/// that fail with why: after a scan failed, this names the file whose pages are corrupt.
/// Costs a second read of the files, so it runs only after a failure.
pub async fn probe(
    ctx: &SessionContext,
    files: &[(SchemaRef, SourceFile)],
) -> EngineResult<Vec<SkippedFile>> {
    let mut bad = Vec::new();
    let results: Vec<Option<SkippedFile>> = futures::stream::iter(files)
        .map(|(schema, f)| async move {
            let table = FileListTable::new(schema.clone(), std::slice::from_ref(f));
            let read = async {
                let mut stream = ctx.read_table(Arc::new(table))?.execute_stream().await?;
                while stream.try_next().await?.is_some() {}
                Ok::<_, datafusion::error::DataFusionError>(())
            };
            read.await.err().map(|e| f.skipped(reason_of(&e)))
        })
        .boxed() // Send for any lifetime (rust-lang/rust#64552)
        .buffered(2)
        .collect()
        .await;
    bad.extend(results.into_iter().flatten());
    Ok(bad)
}
