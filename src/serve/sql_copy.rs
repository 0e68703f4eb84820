//! `COPY (query) TO STDOUT` and `COPY table [(columns)] TO STDOUT`, in text, CSV and binary,
//! as connectorx (and through it polars), ADBC and psql's `\copy … to` read results: the
//! query runs in the connection's session and its rows stream out as CopyData, under the
//! same stops, places and threads as any query (`Stop::guard`). `COPY … FROM` and copies to
//! files or programs are refused (the endpoint only reads, and writes nothing on the server).

use std::sync::Arc;

use datafusion::arrow::array::RecordBatch;
use datafusion::prelude::SessionContext;
use datafusion::sql::sqlparser::ast::{
    CopyLegacyCsvOption, CopyLegacyOption, CopyOption, CopySource, CopyTarget, Statement,
};
use datafusion_postgres::arrow_pg;
use datafusion_postgres::pgwire;
use futures::StreamExt;
use pgwire::api::portal::Format;
use pgwire::api::results::{
    CopyCsvOptions, CopyEncoder, CopyResponse, CopyTextOptions, FieldInfo, Response,
};
use pgwire::error::{PgWireError, PgWireResult};
use pgwire::messages::copy::CopyData;

use super::sql_intake::user_error;

/// A `COPY … TO STDOUT`: the query whose rows it sends, and how.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct CopyOut {
    pub query: String,
    format: Kind,
    header: bool,
    delimiter: Option<char>,
    null: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Kind {
    Text,
    Csv,
    Binary,
}

/// The copy `s` asks for, if it is a `COPY … TO STDOUT`; an error for any other `COPY`.
pub(super) fn copy_out(s: &Statement) -> PgWireResult<Option<CopyOut>> {
    let Statement::Copy {
        source,
        to,
        target,
        options,
        legacy_options,
        ..
    } = s
    else {
        return Ok(None);
    };
    if !*to || !matches!(target, CopyTarget::Stdout) {
        return Err(user_error(
            "25006",
            "the Cohort SQL endpoint only copies out, to the client: COPY … TO STDOUT".into(),
        ));
    }
    let query = match source {
        CopySource::Query(q) => q.to_string(),
        CopySource::Table {
            table_name,
            columns,
        } => {
            let columns = match columns.is_empty() {
                true => "*".to_string(),
                false => columns
                    .iter()
                    .map(|c| c.to_string())
                    .collect::<Vec<_>>()
                    .join(", "),
            };
            format!("SELECT {columns} FROM {table_name}")
        }
    };
    let mut copy = CopyOut {
        query,
        format: Kind::Text,
        header: false,
        delimiter: None,
        null: None,
    };
    for o in options {
        match o {
            CopyOption::Format(f) => {
                copy.format = match f.value.to_ascii_lowercase().as_str() {
                    "text" => Kind::Text,
                    "csv" => Kind::Csv,
                    "binary" => Kind::Binary,
                    other => {
                        return Err(user_error(
                            "22023",
                            format!("COPY format \"{other}\" not recognized"),
                        ));
                    }
                }
            }
            CopyOption::Header(h) => copy.header = *h,
            CopyOption::Delimiter(d) => copy.delimiter = Some(*d),
            CopyOption::Null(n) => copy.null = Some(n.clone()),
            other => {
                return Err(user_error(
                    "0A000",
                    format!("COPY option {other} is not supported here"),
                ));
            }
        }
    }
    for o in legacy_options {
        match o {
            CopyLegacyOption::Binary => copy.format = Kind::Binary,
            CopyLegacyOption::Delimiter(d) => copy.delimiter = Some(*d),
            CopyLegacyOption::Null(n) => copy.null = Some(n.clone()),
            CopyLegacyOption::Csv(csv) => {
                copy.format = Kind::Csv;
                for c in csv {
                    match c {
                        CopyLegacyCsvOption::Header => copy.header = true,
                        other => {
                            return Err(user_error(
                                "0A000",
                                format!("COPY option {other} is not supported here"),
                            ));
                        }
                    }
                }
            }
            other => {
                return Err(user_error(
                    "0A000",
                    format!("COPY option {other} is not supported here"),
                ));
            }
        }
    }
    Ok(Some(copy))
}

impl CopyOut {
    /// Plans the copy's query in `ctx` and answers with its rows as a CopyOut response.
    pub async fn run(&self, ctx: &SessionContext) -> PgWireResult<Response> {
        let api = |e: datafusion::error::DataFusionError| PgWireError::ApiError(Box::new(e));
        let df = ctx.sql(&self.query).await.map_err(api)?;
        let schema = Arc::new(df.schema().as_arrow().clone());
        let format = match self.format {
            Kind::Binary => Format::UnifiedBinary,
            _ => Format::UnifiedText,
        };
        let fields = Arc::new(arrow_pg::datatypes::arrow_schema_to_pg_fields(
            &schema, &format, None,
        )?);
        let mut encoder = self.encoder(fields.clone());
        let header = match (self.format, self.header) {
            (Kind::Csv, true) => Some(header_line(&fields, self.delimiter.unwrap_or(','))),
            _ => None,
        };
        let batches = df.execute_stream().await.map_err(api)?;
        let rows = batches.flat_map(move |batch| {
            let out = match batch {
                Ok(batch) => encode(&mut encoder, &batch, &fields),
                Err(e) => vec![Err(PgWireError::ApiError(Box::new(e)))],
            };
            futures::stream::iter(out)
        });
        let rows = futures::stream::iter(header.map(Ok)).chain(rows);
        let code = match self.format {
            Kind::Binary => 1,
            _ => 0,
        };
        Ok(Response::CopyOut(CopyResponse::new(
            code,
            schema.fields().len(),
            rows,
        )))
    }

    fn encoder(&self, fields: Arc<Vec<FieldInfo>>) -> CopyEncoder {
        match self.format {
            Kind::Binary => CopyEncoder::new_binary(fields),
            Kind::Text => {
                let mut o = CopyTextOptions::default();
                if let Some(d) = self.delimiter {
                    o.delimiter = d.to_string().into();
                }
                if let Some(n) = &self.null {
                    o.null_string = n.as_str().into();
                }
                CopyEncoder::new_text(fields, o)
            }
            Kind::Csv => {
                let mut o = CopyCsvOptions::default();
                if let Some(d) = self.delimiter {
                    o.delimiter = d.to_string().into();
                }
                if let Some(n) = &self.null {
                    o.null_string = n.as_str().into();
                }
                CopyEncoder::new_csv(fields, o)
            }
        }
    }
}

/// One CopyData per row of `batch`.
fn encode(
    encoder: &mut CopyEncoder,
    batch: &RecordBatch,
    fields: &[FieldInfo],
) -> Vec<PgWireResult<CopyData>> {
    use arrow_pg::encoder::{Encoder, encode_value};
    let schema = batch.schema();
    let mut out = Vec::with_capacity(batch.num_rows());
    for row in 0..batch.num_rows() {
        for (i, column) in batch.columns().iter().enumerate() {
            if let Err(e) = encode_value(encoder, column, row, schema.field(i), &fields[i]) {
                out.push(Err(e));
                return out;
            }
        }
        out.push(Ok(Encoder::take_row(encoder)));
    }
    out
}

/// A CSV header line naming the columns.
fn header_line(fields: &[FieldInfo], delimiter: char) -> CopyData {
    let names: Vec<String> = fields
        .iter()
        .map(|f| {
            let name = f.name();
            match name.contains([delimiter, '"', '\n', '\r']) {
                true => format!("\"{}\"", name.replace('"', "\"\"")),
                false => name.to_string(),
            }
        })
        .collect();
    CopyData::new(format!("{}\n", names.join(&delimiter.to_string())).into())
}
