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

use std::io::Write;
use std::sync::Arc;

use datafusion::arrow::array::{
    Array, ArrayRef, AsArray, LargeStringArray, RecordBatch, StringArray, StringViewArray,
};
use datafusion::arrow::datatypes::{DataType, Int64Type};
use datafusion::catalog::TableProvider;
use datafusion::error::DataFusionError;
use datafusion::execution::SendableRecordBatchStream;
use datafusion::functions_aggregate::expr_fn::{count, max};
use datafusion::logical_expr::{JoinType, cast};
use datafusion::prelude::{DataFrame, SessionContext, col, lit};
use futures::StreamExt;
use sha2::{Digest, Sha256};

use crate::error::{EngineError, StoreError};
use crate::run::{output_location, session};
use crate::spec::{self, Space};
use crate::store::{delta, manifest};

/// What an export can fail with.
#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    /// The request cannot be served as asked (unknown audience, format or identifier type, a
    /// space that never published): the message says what to do instead.
    #[error("{0}")]
    Invalid(String),
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

/// The published tables an export reads, at the manifest's versions.
struct Published {
    run_id: String,
    membership: Arc<dyn TableProvider>,
    identities: Arc<dyn TableProvider>,
    runs: Option<Arc<dyn TableProvider>>,
}

async fn published(space: &Space) -> ExportResult<Published> {
    let out = output_location(space)?;
    let never = || {
        ExportError::Invalid(format!(
            "space `{}` has not published a run yet (nothing under {}); run `cohort run` \
             first",
            space.name, out.url
        ))
    };
    let m = manifest::read(&out).await?.ok_or_else(never)?;
    let (Some(mv), Some(iv)) = (
        m.tables.get("audience_membership"),
        m.tables.get("identities"),
    ) else {
        return Err(never());
    };
    let runs = match m.tables.get("runs") {
        Some(v) => Some(delta::provider(&out.child("runs"), *v).await?),
        None => None,
    };
    Ok(Published {
        run_id: m.run_id.clone(),
        membership: delta::provider(&out.child("audience_membership"), *mv).await?,
        identities: delta::provider(&out.child("identities"), *iv).await?,
        runs,
    })
}

/// `(key, entity)` of every audience of the published run, from its run record; None when
/// the record does not list them.
async fn published_audiences(
    ctx: &SessionContext,
    p: &Published,
) -> ExportResult<Option<Vec<(String, String)>>> {
    #[derive(serde::Deserialize)]
    struct Stats {
        audiences: std::collections::BTreeMap<String, Counts>,
    }
    #[derive(serde::Deserialize)]
    struct Counts {
        entity: String,
    }
    let Some(runs) = &p.runs else {
        return Ok(None);
    };
    let batches = ctx
        .read_table(runs.clone())?
        .filter(col("run_id").eq(lit(p.run_id.as_str())))?
        .select(vec![cast(col("audiences"), DataType::Utf8).alias("a")])?
        .collect()
        .await?;
    for b in &batches {
        let a = b.column(0).as_string::<i32>();
        for i in 0..b.num_rows() {
            if a.is_null(i) {
                continue;
            }
            let Ok(s) = serde_json::from_str::<Stats>(a.value(i)) else {
                continue;
            };
            return Ok(Some(
                s.audiences
                    .into_iter()
                    .map(|(k, c)| (k, c.entity))
                    .collect(),
            ));
        }
    }
    Ok(None)
}

fn did_you_mean(word: &str, candidates: &[&str]) -> String {
    spec::suggest(word, candidates)
        .map(|s| format!(" (did you mean `{s}`?)"))
        .unwrap_or_default()
}

/// The entity type (`users` / `accounts`) of audience `key` in the published run, or an
/// error that says why it cannot be exported.
async fn audience_entity(
    ctx: &SessionContext,
    space: &Space,
    p: &Published,
    key: &str,
) -> ExportResult<String> {
    let defined = space.audiences.iter().find(|a| a.key == key);
    let listed = published_audiences(ctx, p).await?;
    if let Some(list) = &listed
        && let Some((_, entity)) = list.iter().find(|(k, _)| k == key)
    {
        return Ok(entity.clone());
    }
    match (defined, listed) {
        (Some(_), Some(_)) => Err(ExportError::Invalid(format!(
            "audience `{key}` is defined in space `{}` but not in its last published run \
             ({}); run the space, then export",
            space.name, p.run_id
        ))),
        // An older run record that does not list audiences: trust the definition.
        (Some(def), None) => Ok(def.entity.as_str().to_string()),
        (None, listed) => {
            let mut keys: Vec<&str> = space.audiences.iter().map(|a| a.key.as_str()).collect();
            if let Some(list) = &listed {
                keys.extend(list.iter().map(|(k, _)| k.as_str()));
            }
            keys.sort_unstable();
            keys.dedup();
            let known = if keys.is_empty() {
                "the space has no audiences".to_string()
            } else {
                format!("its audiences: {}", keys.join(", "))
            };
            Err(ExportError::Invalid(format!(
                "no audience `{key}` in space `{}`{}; {known}",
                space.name,
                did_you_mean(key, &keys)
            )))
        }
    }
}

/// The identifier type a `single` export writes, checked against the space's types.
fn single_type(space: &Space, entity: &str, asked: Option<&str>) -> ExportResult<String> {
    if entity == "accounts" {
        return match asked {
            None | Some("group_id") => Ok("group_id".into()),
            Some(t) => Err(ExportError::Invalid(format!(
                "an account audience has one identifier type, `group_id` (the account id); \
                 --id-type {t} does not apply"
            ))),
        };
    }
    let t = asked.unwrap_or("email");
    let types: Vec<&str> = space
        .identity
        .identifiers
        .iter()
        .map(|d| d.id_type.as_str())
        .filter(|t| *t != "group_id")
        .collect();
    if types.contains(&t) {
        Ok(t.to_string())
    } else {
        Err(ExportError::Invalid(format!(
            "space `{}` has no identifier type `{t}`{}; its types: {}",
            space.name,
            did_you_mean(t, &types),
            types.join(", ")
        )))
    }
}

/// `member_id, id_type, id_value` of every member of `key` (one row per identifier, one
/// row with null type and value for a member without any), optionally of one type only.
fn pairs(
    ctx: &SessionContext,
    p: &Published,
    key: &str,
    entity: &str,
    only: Option<&str>,
) -> ExportResult<DataFrame> {
    let members = ctx
        .read_table(p.membership.clone())?
        .filter(col("audience_key").eq(lit(key)))?
        .select(vec![col("profile_id").alias("member_id")])?;
    if entity == "accounts" {
        return Ok(members.select(vec![
            col("member_id"),
            lit("group_id").alias("id_type"),
            col("member_id").alias("id_value"),
        ])?);
    }
    let mut ids = ctx.read_table(p.identities.clone())?.select(vec![
        col("profile_id"),
        col("id_type"),
        col("id_value"),
    ])?;
    if let Some(t) = only {
        ids = ids.filter(col("id_type").eq(lit(t)))?;
    }
    Ok(members
        .join(ids, JoinType::Left, &["member_id"], &["profile_id"], None)?
        .select(vec![col("member_id"), col("id_type"), col("id_value")])?)
}

/// The indexed layout's identifier columns: each type the members have, with the most
/// values one member has of it, types in alphabetical order.
async fn index_columns(pairs: DataFrame) -> ExportResult<Vec<(String, usize)>> {
    let batches = pairs
        .filter(col("id_type").is_not_null())?
        .aggregate(
            vec![col("member_id"), col("id_type")],
            vec![count(lit(1)).alias("n")],
        )?
        .aggregate(vec![col("id_type")], vec![max(col("n")).alias("n")])?
        .select(vec![
            cast(col("id_type"), DataType::Utf8).alias("id_type"),
            col("n"),
        ])?
        .collect()
        .await?;
    let mut out = Vec::new();
    for b in &batches {
        let t = b.column(0).as_string::<i32>();
        let n = b.column(1).as_primitive::<Int64Type>();
        for i in 0..b.num_rows() {
            out.push((t.value(i).to_string(), n.value(i) as usize));
        }
    }
    out.sort();
    Ok(out)
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

/// The columns after `key,external_ids`, or the single column.
enum Layout {
    Unformatted,
    /// `(type, columns)` in header order.
    Indexed(Vec<(String, usize)>),
    Single {
        id_type: String,
    },
}

/// Turns `(member_id, id_type, id_value)` rows, grouped by member, into CSV lines. Holds one
/// member's identifiers at a time.
struct Encoder {
    layout: Layout,
    hash: bool,
    /// The member being gathered, if any.
    member: Option<String>,
    /// Type names seen, in order of first sight (pairs point into it).
    types: Vec<String>,
    /// The member's values, back to back.
    arena: String,
    /// `(type index, start, end)` of each of the member's identifiers in `arena`.
    pairs: Vec<(usize, usize, usize)>,
    /// Scratch for the JSON object.
    json: Vec<u8>,
    rows: u64,
    members: u64,
}

/// Borrowed text column of any Arrow string type.
enum Texts<'a> {
    Utf8(&'a StringArray),
    Large(&'a LargeStringArray),
    View(&'a StringViewArray),
}

impl<'a> Texts<'a> {
    fn of(a: &'a ArrayRef, what: &str) -> ExportResult<Texts<'a>> {
        match a.data_type() {
            DataType::Utf8 => Ok(Texts::Utf8(a.as_string::<i32>())),
            DataType::LargeUtf8 => Ok(Texts::Large(a.as_string::<i64>())),
            DataType::Utf8View => Ok(Texts::View(a.as_string_view())),
            other => Err(ExportError::Store(StoreError::Corrupt {
                what: format!("published column `{what}`"),
                reason: format!("expected text, found {other}"),
            })),
        }
    }

    fn get(&self, i: usize) -> Option<&'a str> {
        match self {
            Texts::Utf8(a) => (!a.is_null(i)).then(|| a.value(i)),
            Texts::Large(a) => (!a.is_null(i)).then(|| a.value(i)),
            Texts::View(a) => (!a.is_null(i)).then(|| a.value(i)),
        }
    }
}

impl Encoder {
    fn new(layout: Layout, hash: bool) -> Encoder {
        Encoder {
            layout,
            hash,
            member: None,
            types: Vec::new(),
            arena: String::new(),
            pairs: Vec::new(),
            json: Vec::new(),
            rows: 0,
            members: 0,
        }
    }

    fn header(&self) -> Vec<u8> {
        let mut h = Vec::new();
        match &self.layout {
            Layout::Unformatted => h.extend_from_slice(b"key,external_ids"),
            Layout::Indexed(cols) => {
                h.extend_from_slice(b"key,external_ids");
                for (t, n) in cols {
                    for i in 0..*n {
                        h.push(b',');
                        let name = if i == 0 {
                            t.clone()
                        } else {
                            format!("{t}_{i}")
                        };
                        field(&mut h, &name);
                    }
                }
            }
            Layout::Single { id_type } => field(&mut h, id_type),
        }
        h.push(b'\n');
        h
    }

    fn batch(&mut self, b: &RecordBatch, out: &mut Vec<u8>) -> ExportResult<()> {
        let member = Texts::of(b.column(0), "profile_id")?;
        let id_type = Texts::of(b.column(1), "id_type")?;
        let id_value = Texts::of(b.column(2), "id_value")?;
        for i in 0..b.num_rows() {
            let Some(m) = member.get(i) else { continue };
            if self.member.as_deref() != Some(m) {
                self.flush(out)?;
                self.member = Some(m.to_string());
            }
            if let (Some(t), Some(v)) = (id_type.get(i), id_value.get(i)) {
                let ti = match self.types.iter().position(|x| x == t) {
                    Some(ti) => ti,
                    None => {
                        self.types.push(t.to_string());
                        self.types.len() - 1
                    }
                };
                let start = self.arena.len();
                self.arena.push_str(v);
                self.pairs.push((ti, start, self.arena.len()));
            }
        }
        Ok(())
    }

    /// Writes the gathered member's line(s) and forgets it.
    fn flush(&mut self, out: &mut Vec<u8>) -> ExportResult<()> {
        let Some(member) = self.member.take() else {
            return Ok(());
        };
        self.members += 1;
        let (types, arena) = (&self.types, &self.arena);
        self.pairs.sort_unstable_by(|a, b| {
            types[a.0]
                .cmp(&types[b.0])
                .then_with(|| arena[a.1..a.2].cmp(&arena[b.1..b.2]))
        });
        let value = |p: &(usize, usize, usize)| &arena[p.1..p.2];
        let result = match &self.layout {
            Layout::Single { .. } => {
                for p in &self.pairs {
                    if self.hash {
                        sha256_hex(value(p).as_bytes(), out);
                    } else {
                        field(out, value(p));
                    }
                    out.push(b'\n');
                    self.rows += 1;
                }
                Ok(())
            }
            Layout::Unformatted | Layout::Indexed(_) => {
                field(out, &member);
                out.push(b',');
                self.json.clear();
                self.json.push(b'{');
                let mut last: Option<usize> = None;
                for p in &self.pairs {
                    if last != Some(p.0) {
                        if last.is_some() {
                            self.json.extend_from_slice(b"],");
                        }
                        json_string(&mut self.json, &types[p.0]);
                        self.json.extend_from_slice(b":[");
                    } else {
                        self.json.push(b',');
                    }
                    json_string(&mut self.json, value(p));
                    last = Some(p.0);
                }
                if last.is_some() {
                    self.json.push(b']');
                }
                self.json.push(b'}');
                field_bytes(out, &self.json);
                let mut result = Ok(());
                if let Layout::Indexed(cols) = &self.layout {
                    let mut rest = &self.pairs[..];
                    for (t, n) in cols {
                        let k = rest.iter().take_while(|p| types[p.0] == *t).count();
                        if k > *n {
                            result = Err(ExportError::Store(StoreError::Corrupt {
                                what: format!("audience member {member}"),
                                reason: format!(
                                    "{k} identifiers of type {t}, more than the {n} the \
                                     published tables said"
                                ),
                            }));
                        }
                        for p in &rest[..k.min(*n)] {
                            out.push(b',');
                            field(out, value(p));
                        }
                        for _ in k..*n {
                            out.push(b',');
                        }
                        rest = &rest[k..];
                    }
                }
                out.push(b'\n');
                self.rows += 1;
                result
            }
        };
        self.pairs.clear();
        self.arena.clear();
        result
    }
}

/// Appends `s` as a CSV field: quoted, with `"` doubled, only when it needs to be.
fn field(out: &mut Vec<u8>, s: &str) {
    field_bytes(out, s.as_bytes());
}

/// [`field`] of bytes.
fn field_bytes(out: &mut Vec<u8>, b: &[u8]) {
    if b.iter().any(|c| matches!(c, b',' | b'"' | b'\n' | b'\r')) {
        quoted(out, b);
    } else {
        out.extend_from_slice(b);
    }
}

/// Appends `b` as a quoted CSV field.
fn quoted(out: &mut Vec<u8>, b: &[u8]) {
    out.push(b'"');
    for &c in b {
        if c == b'"' {
            out.push(b'"');
        }
        out.push(c);
    }
    out.push(b'"');
}

/// Appends `s` as a JSON string.
fn json_string(out: &mut Vec<u8>, s: &str) {
    // Writing into a Vec cannot fail.
    let _ = serde_json::to_writer(&mut *out, s);
}

/// Appends the lower-case hex SHA-256 of `b`.
fn sha256_hex(b: &[u8], out: &mut Vec<u8>) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    for byte in Sha256::digest(b).iter() {
        out.push(HEX[usize::from(byte >> 4)]);
        out.push(HEX[usize::from(byte & 0xf)]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn batch(rows: &[(&str, Option<&str>, Option<&str>)]) -> RecordBatch {
        let m: ArrayRef = Arc::new(StringArray::from(
            rows.iter().map(|r| Some(r.0)).collect::<Vec<_>>(),
        ));
        let t: ArrayRef = Arc::new(StringViewArray::from(
            rows.iter().map(|r| r.1).collect::<Vec<_>>(),
        ));
        let v: ArrayRef = Arc::new(StringArray::from(
            rows.iter().map(|r| r.2).collect::<Vec<_>>(),
        ));
        RecordBatch::try_from_iter(vec![("member_id", m), ("id_type", t), ("id_value", v)]).unwrap()
    }

    fn encode(layout: Layout, hash: bool, batches: &[RecordBatch]) -> (String, u64, u64) {
        let mut e = Encoder::new(layout, hash);
        let mut out = e.header();
        for b in batches {
            e.batch(b, &mut out).unwrap();
        }
        e.flush(&mut out).unwrap();
        (String::from_utf8(out).unwrap(), e.rows, e.members)
    }

    #[test]
    fn a_member_split_across_batches_is_one_line_with_sorted_values() {
        let b1 = batch(&[
            ("p1", Some("email"), Some("zed@x.io")),
            ("p1", Some("anonymous_id"), Some("a\"1")),
        ]);
        let b2 = batch(&[("p1", Some("email"), Some("amy@x.io")), ("p2", None, None)]);
        let (csv, rows, members) = encode(Layout::Unformatted, false, &[b1, b2]);
        assert_eq!(
            csv,
            "key,external_ids\n\
             p1,\"{\"\"anonymous_id\"\":[\"\"a\\\"\"1\"\"],\"\"email\"\":[\"\"amy@x.io\"\",\"\"zed@x.io\"\"]}\"\n\
             p2,{}\n"
        );
        assert_eq!((rows, members), (2, 2));
    }

    #[test]
    fn indexed_pads_missing_values_and_quotes_commas() {
        let cols = vec![("email".to_string(), 2), ("user_id".to_string(), 1)];
        let b = batch(&[
            ("p1", Some("email"), Some("b@x.io")),
            ("p1", Some("user_id"), Some("u,1")),
            ("p1", Some("email"), Some("a@x.io")),
            ("p2", Some("email"), Some("c@x.io")),
        ]);
        let (csv, _, _) = encode(Layout::Indexed(cols), false, &[b]);
        assert_eq!(
            csv,
            "key,external_ids,email,email_1,user_id\n\
             p1,\"{\"\"email\"\":[\"\"a@x.io\"\",\"\"b@x.io\"\"],\"\"user_id\"\":[\"\"u,1\"\"]}\",a@x.io,b@x.io,\"u,1\"\n\
             p2,\"{\"\"email\"\":[\"\"c@x.io\"\"]}\",c@x.io,,\n"
        );
    }

    #[test]
    fn single_hashes_each_value_on_its_own_row() {
        let b = batch(&[
            ("p1", Some("email"), Some("abc")),
            ("p2", None, None),
            ("p3", Some("email"), Some("")),
        ]);
        let layout = || Layout::Single {
            id_type: "email".into(),
        };
        let (csv, rows, members) = encode(layout(), true, std::slice::from_ref(&b));
        // sha256("abc") and sha256("") from FIPS 180-2 / the empty-string test vector.
        assert_eq!(
            csv,
            "email\n\
             ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad\n\
             e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855\n"
        );
        assert_eq!((rows, members), (2, 3));
        let (csv, _, _) = encode(layout(), false, &[b]);
        assert_eq!(csv, "email\nabc\n\n");
    }

    #[test]
    fn an_indexed_member_over_its_header_is_an_error() {
        let mut e = Encoder::new(Layout::Indexed(vec![("email".into(), 1)]), false);
        let mut out = Vec::new();
        e.batch(
            &batch(&[
                ("p1", Some("email"), Some("a")),
                ("p1", Some("email"), Some("b")),
            ]),
            &mut out,
        )
        .unwrap();
        assert!(e.flush(&mut out).is_err());
    }

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
