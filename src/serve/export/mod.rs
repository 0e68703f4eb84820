//! CSV export of one published audience, in Segment's three download formats, streamed from
//! the last good run (`audience_membership` joined to `identities` at the manifest's versions).
//!
//! - `unformatted`: `key,external_ids`: the profile id and a JSON object of its identifiers
//!   (`{"anonymous_id":["a1"],"email":["ada@example.com"]}`).
//! - `indexed` (Segment's "formatted"): the same two columns, then one column per identifier
//!   type the members have, repeated with indexed headers (`email`, `email_1`, `email_2`) as
//!   far as the member with the most values of that type needs.
//! - `single`: one column named after one identifier type (default `email`), one value per
//!   row; SHA-256 (lower-case hex of the value as published) unless `--hash none`.
//!
//! Types are in alphabetical order, a type's values sorted, rows ordered by profile id, lines
//! end with `\n`, fields are quoted (RFC 4180) only when they hold `,`, `"` or a line break.
//! An account audience's key is the account id and its only identifier is
//! `{"group_id":["<account id>"]}` (as in `audience_changes`). A member with no row in
//! `identities` (a profile a SQL trait started) is exported with `{}` and no single rows.
//!
//! DataFusion joins and sorts the rows by profile (spilling under the space's
//! `memory_limit`); this module reads them a batch at a time and keeps one profile's
//! identifiers at once, so an audience of any size streams out in bounded memory.

mod encode;
mod published;

use std::io::Write;

use datafusion::error::DataFusionError;
use datafusion::execution::SendableRecordBatchStream;
use datafusion::prelude::col;
use futures::StreamExt;

use crate::error::{EngineError, StoreError};
use crate::read::session;
use crate::spec::{self, Space};
use encode::{Encoder, Layout};
use published::{audience_entity, index_columns, pairs, published, single_type};

/// What an export can fail with.
#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    /// The request cannot be served as asked (an unknown format or identifier type, an
    /// option that does not apply): the message says what to do instead.
    #[error("{0}")]
    Invalid(String),
    /// The audience is not there to export (not defined, not in the last published run, or
    /// the space never published): the message says what to do instead.
    #[error("{0}")]
    NotFound(String),
    #[error("export: {0}")]
    Engine(#[from] EngineError),
    #[error("export: {0}")]
    Store(#[from] StoreError),
    #[error("export: query: {0}")]
    DataFusion(#[from] DataFusionError),
    #[error("export: writing the CSV: {0}")]
    Io(#[from] std::io::Error),
}

pub type ExportResult<T> = Result<T, ExportError>;

/// One of Segment's three CSV layouts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExportFormat {
    Unformatted,
    Indexed,
    Single,
}

impl ExportFormat {
    pub const NAMES: [&'static str; 3] = ["unformatted", "indexed", "single"];

    /// The format's name, as `--format` and `?format=` take it.
    pub fn as_str(self) -> &'static str {
        match self {
            ExportFormat::Unformatted => "unformatted",
            ExportFormat::Indexed => "indexed",
            ExportFormat::Single => "single",
        }
    }

    /// Parses a format name; an unknown one is an error naming the three (and the nearest).
    pub fn parse(s: &str) -> ExportResult<ExportFormat> {
        match s {
            "unformatted" => Ok(ExportFormat::Unformatted),
            "indexed" => Ok(ExportFormat::Indexed),
            "single" => Ok(ExportFormat::Single),
            other => Err(ExportError::Invalid(format!(
                "unknown export format `{other}`{}; use unformatted, indexed or single",
                did_you_mean(other, &Self::NAMES)
            ))),
        }
    }
}

/// How the `single` format writes values.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Hash {
    /// Lower-case hex SHA-256 of the value's UTF-8 bytes, as published.
    Sha256,
    /// The value as published.
    None,
}

impl Hash {
    pub fn parse(s: &str) -> ExportResult<Hash> {
        match s {
            "sha256" => Ok(Hash::Sha256),
            "none" => Ok(Hash::None),
            other => Err(ExportError::Invalid(format!(
                "unknown hash `{other}`{}; use sha256 or none",
                did_you_mean(other, &["sha256", "none"])
            ))),
        }
    }
}

/// What to export.
#[derive(Clone, Debug)]
pub struct ExportOptions {
    pub format: ExportFormat,
    /// `single` only: the identifier type (default `email`; `group_id` for account
    /// audiences).
    pub id_type: Option<String>,
    /// `single` only: default SHA-256.
    pub hash: Option<Hash>,
}

impl ExportOptions {
    pub fn new(format: ExportFormat) -> ExportOptions {
        ExportOptions {
            format,
            id_type: None,
            hash: None,
        }
    }
}

/// What an export wrote.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ExportSummary {
    /// Data rows, the header not counted.
    pub rows: u64,
    /// Members of the audience (a `single` export writes no row for a member without a
    /// value of the chosen type).
    pub members: u64,
    /// Bytes of CSV, the header included.
    pub bytes: u64,
}

/// An export under way: pull it chunk by chunk ([`CsvExport::next_chunk`]), or hand it a
/// writer ([`CsvExport::write_to`]) or turn it into a stream ([`CsvExport::into_stream`]).
pub struct CsvExport {
    stream: SendableRecordBatchStream,
    encoder: Encoder,
    header: Option<Vec<u8>>,
    done: bool,
    summary: ExportSummary,
}

/// Chunks handed out are at least this big (except the last).
const CHUNK: usize = 256 * 1024;

fn did_you_mean(word: &str, candidates: &[&str]) -> String {
    spec::suggest(word, candidates)
        .map(|s| format!(" (did you mean `{s}`?)"))
        .unwrap_or_default()
}

/// Starts exporting audience `key` of `space`'s last published run.
pub async fn open(space: &Space, key: &str, opts: &ExportOptions) -> ExportResult<CsvExport> {
    if opts.format != ExportFormat::Single {
        if let Some(t) = &opts.id_type {
            return Err(ExportError::Invalid(format!(
                "--id-type {t} applies to --format single only (the other formats write every \
                 identifier type)"
            )));
        }
        if opts.hash.is_some() {
            return Err(ExportError::Invalid(
                "--hash applies to --format single only (the other formats write values as \
                 published)"
                    .into(),
            ));
        }
    }
    let session_opts = session::SessionOptions {
        memory_limit: space
            .memory_limit
            .as_deref()
            .and_then(spec::parse_memory_limit)
            .map(|b| b as usize),
        spill_dir: None,
    };
    let ctx = session::new_session(&session_opts)?;
    let p = published(space).await?;
    let entity = audience_entity(&ctx, space, &p, key).await?;
    let (layout, only) = match opts.format {
        ExportFormat::Unformatted => (Layout::Unformatted, None),
        ExportFormat::Indexed => {
            let cols = index_columns(pairs(&ctx, &p, key, &entity, None)?).await?;
            (Layout::Indexed(cols), None)
        }
        ExportFormat::Single => {
            let t = single_type(space, &entity, opts.id_type.as_deref())?;
            let hash = opts.hash.unwrap_or(Hash::Sha256) == Hash::Sha256;
            (Layout::Single { id_type: t.clone() }, Some((t, hash)))
        }
    };
    let hash = only.as_ref().is_some_and(|(_, h)| *h);
    let stream = pairs(
        &ctx,
        &p,
        key,
        &entity,
        only.as_ref().map(|(t, _)| t.as_str()),
    )?
    .sort(vec![col("member_id").sort(true, false)])?
    .execute_stream()
    .await?;
    let encoder = Encoder::new(layout, hash);
    let header = encoder.header();
    Ok(CsvExport {
        stream,
        encoder,
        header: Some(header),
        done: false,
        summary: ExportSummary::default(),
    })
}

/// Exports audience `key` of `space` into `out` and says what it wrote.
pub async fn write_csv<W: Write>(
    space: &Space,
    key: &str,
    opts: &ExportOptions,
    out: &mut W,
) -> ExportResult<ExportSummary> {
    open(space, key, opts).await?.write_to(out).await
}

impl CsvExport {
    /// The next piece of the CSV (the header first), or None at the end.
    pub async fn next_chunk(&mut self) -> ExportResult<Option<Vec<u8>>> {
        if self.done {
            return Ok(None);
        }
        let mut buf = self.header.take().unwrap_or_default();
        while buf.len() < CHUNK {
            match self.stream.next().await {
                Some(b) => self.encoder.batch(&b?, &mut buf)?,
                None => {
                    self.done = true;
                    self.encoder.flush(&mut buf)?;
                    break;
                }
            }
        }
        self.summary.bytes += buf.len() as u64;
        self.summary.rows = self.encoder.rows;
        self.summary.members = self.encoder.members;
        Ok(Some(buf))
    }

    /// Writes the whole CSV into `out` (flushed at the end).
    pub async fn write_to<W: Write>(mut self, out: &mut W) -> ExportResult<ExportSummary> {
        while let Some(chunk) = self.next_chunk().await? {
            out.write_all(&chunk)?;
        }
        out.flush()?;
        Ok(self.summary)
    }

    /// The CSV as a stream of chunks (for an HTTP body).
    pub fn into_stream(self) -> impl futures::Stream<Item = ExportResult<Vec<u8>>> + Send {
        futures::stream::try_unfold(self, |mut e| async move {
            Ok(e.next_chunk().await?.map(|c| (c, e)))
        })
    }

    /// What has been written so far (all of it once [`CsvExport::next_chunk`] returned None).
    pub fn summary(&self) -> ExportSummary {
        self.summary
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_names_suggest_the_nearest() {
        let e = ExportFormat::parse("indexd").unwrap_err().to_string();
        assert!(e.contains("did you mean `indexed`?"), "{e}");
        assert!(
            Hash::parse("sha-256")
                .unwrap_err()
                .to_string()
                .contains("sha256")
        );
        assert_eq!(ExportFormat::parse("single").unwrap(), ExportFormat::Single);
    }
}
