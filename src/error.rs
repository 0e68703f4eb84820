//! One error type per phase, so that each phase says what went wrong in its own words.
//!
//! Definition problems are not errors here: they are [`crate::spec::Diagnostic`]s, collected
//! all at once and rendered with file:line:col. These enums cover what can fail while working
//! with data: opening stores, writing tables, running plans, generating samples.

use datafusion::error::DataFusionError;

/// Failures of the storage layer: URLs, object stores, Delta tables, leases, manifests.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("cannot use `{url}`: {reason}")]
    BadUrl { url: String, reason: String },
    #[error("object store: {0}")]
    ObjectStore(#[from] object_store::Error),
    #[error("delta table: {0}")]
    Delta(#[from] deltalake::DeltaTableError),
    #[error("{0}")]
    Lease(String),
    #[error("corrupt {what}: {reason}")]
    Corrupt { what: String, reason: String },
    #[error("query: {0}")]
    DataFusion(#[from] DataFusionError),
    #[error("io: {0}")]
    Io(#[from] std::io::Error),
}

/// Failures of a run: planning or executing a stage, or publishing its tables.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error("{0}")]
    Store(#[from] StoreError),
    #[error("query: {0}")]
    DataFusion(#[from] DataFusionError),
    #[error("source `{source_name}`: {reason}")]
    Source { source_name: String, reason: String },
    #[error("{0}")]
    Invalid(String),
}

/// Failures of the sample-data generator.
#[derive(Debug, thiserror::Error)]
pub enum GenerateError {
    #[error("{0}")]
    Store(#[from] StoreError),
    #[error("parquet: {0}")]
    Parquet(#[from] datafusion::parquet::errors::ParquetError),
    #[error("arrow: {0}")]
    Arrow(#[from] datafusion::arrow::error::ArrowError),
    #[error("object store: {0}")]
    ObjectStore(#[from] object_store::Error),
    #[error("{0}")]
    Invalid(String),
}

pub type StoreResult<T> = Result<T, StoreError>;
pub type EngineResult<T> = Result<T, EngineError>;
pub type GenerateResult<T> = Result<T, GenerateError>;
