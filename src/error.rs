//! Errors by meaning, so that every caller (the CLI's exit code, the Profile API's status)
//! can tell a user's mistake from a failure without reading a message.
//!
//! [`Error`] is the one error a command ends with; [`Error::exit_code`] maps its meaning to
//! the process exit code, once, in `cli::main`. [`StoreError`] and [`GenerateError`] are the
//! storage layer's and the sample generator's own words; a store failure becomes
//! [`Error::Store`].

use std::path::Path;

use datafusion::error::DataFusionError;

use crate::spec::Diagnostic;

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
    #[error("cannot list {url}: {cause}")]
    List {
        url: String,
        cause: object_store::Error,
    },
    #[error("corrupt {what}: {reason}")]
    Corrupt { what: String, reason: String },
    #[error("query: {0}")]
    DataFusion(#[from] DataFusionError),
    #[error("io: {0}")]
    Io(#[from] std::io::Error),
}

/// What went wrong, by meaning. The first three are the user's to fix (exit 2); the rest are
/// failures of a run, a source, the storage or Cohort itself (exit 1).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The definitions are wrong: their diagnostics, rendered with file:line:col and the
    /// offending line (see [`Error::definition`]).
    #[error("{0}")]
    Definition(String),
    /// A flag or argument value cannot be used (an unknown identifier type, a malformed
    /// `type:value`, an option that does not apply).
    #[error("{0}")]
    InvalidInput(String),
    /// What was asked for does not exist: an audience, a profile, a destination, a published
    /// run.
    #[error("{0}")]
    NotFound(String),
    /// A source of the space cannot be read.
    #[error("source `{source_name}`: {reason}")]
    Source { source_name: String, reason: String },
    /// The storage failed: an object store, a Delta table, a lease, a manifest.
    #[error("{0}")]
    Store(#[from] StoreError),
    /// A local file or folder cannot be read or written: what was being done, and why.
    #[error("{what}: {cause}")]
    Io { what: String, cause: std::io::Error },
    /// Planning or executing a query failed.
    #[error("query: {0}")]
    DataFusion(#[from] DataFusionError),
    /// A fault of Cohort: a state it should never reach, data of an unexpected shape.
    #[error("{0}")]
    Internal(String),
    /// The run was stopped before publishing: its timeout passed or it was interrupted; the
    /// last good run stays published.
    #[error("{0}")]
    Stopped(String),
}

impl Error {
    /// Definition problems, rendered against the folder their locations are relative to.
    pub fn definition(diagnostics: &[Diagnostic], root: &Path) -> Error {
        Error::Definition(crate::spec::render_all(diagnostics, root))
    }

    /// The process exit code of a command that ended with this error: 2 when the input (a
    /// definition, a flag, a name) is the user's to fix, 1 when something failed.
    pub fn exit_code(&self) -> u8 {
        match self {
            Error::Definition(_) | Error::InvalidInput(_) | Error::NotFound(_) => 2,
            Error::Source { .. }
            | Error::Store(_)
            | Error::Io { .. }
            | Error::DataFusion(_)
            | Error::Internal(_)
            | Error::Stopped(_) => 1,
        }
    }
}

/// The error of a run and of what reads its results (the name the engine's code uses).
pub type EngineError = Error;

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
pub type EngineResult<T> = Result<T, Error>;
pub type GenerateResult<T> = Result<T, GenerateError>;

impl From<datafusion::arrow::error::ArrowError> for Error {
    /// Arrow failures are query failures (a cast, a batch of the wrong shape).
    fn from(e: datafusion::arrow::error::ArrowError) -> Error {
        Error::DataFusion(DataFusionError::ArrowError(Box::new(e), None))
    }
}
