//! Stage 1 as plans: every source table, whatever its preset, projected into one normalized
//! event schema, then classified (bad rows get a reason) and deduplicated by message id.
//!
//! Normalized columns: `source, source_table, message_id, type, event, name, user_id,
//! anonymous_id, group_id, previous_id, timestamp, timestamp_raw, properties, traits, context`.
//! `event` is the track name, or `Page Viewed` / `Screen Viewed` for page and screen calls
//! (whose own name stays in `name`). `properties`, `traits` and `context` are JSON object text.

use std::ops::Not;
use std::sync::Arc;

use datafusion::arrow::datatypes::{DataType, TimeUnit};
use datafusion::common::{DFSchema, JoinType, Result};
use datafusion::functions::expr_fn::{btrim, concat, lower, nullif};
use datafusion::logical_expr::{Expr, LogicalPlan, LogicalPlanBuilder, cast, try_cast, when};
use datafusion::prelude::lit;

use crate::functions::{json_object, json_valid, text_lossy, to_json};
use crate::spec::Preset;

/// Event types of the Segment spec.
pub const EVENT_TYPES: [&str; 6] = ["identify", "track", "page", "screen", "group", "alias"];

/// Which table of a preset a scan reads, and so which call type its rows are.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TableKind {
    /// The `events` preset's single table; the row's `type` column says the call type.
    Events,
    Identifies,
    /// Segment's `tracks` table: track calls without their properties.
    Tracks,
    /// A per-event table (`order_completed`, ...): track calls with flattened properties.
    TrackEvent,
    Pages,
    Screens,
    Groups,
    Aliases,
}

impl TableKind {
    /// The kind of a warehouse table by its name (any other name is a per-event table).
    pub fn of_warehouse_table(name: &str) -> Option<TableKind> {
        Some(match name {
            "identifies" => TableKind::Identifies,
            "tracks" => TableKind::Tracks,
            "pages" => TableKind::Pages,
            "screens" => TableKind::Screens,
            "groups" => TableKind::Groups,
            "aliases" => TableKind::Aliases,
            // Derived tables a warehouse keeps beside the calls; not events.
            "users" | "accounts" | "_cohort" => return None,
            _ => TableKind::TrackEvent,
        })
    }

    fn call_type(self) -> Option<&'static str> {
        match self {
            TableKind::Events => None,
            TableKind::Identifies => Some("identify"),
            TableKind::Tracks | TableKind::TrackEvent => Some("track"),
            TableKind::Pages => Some("page"),
            TableKind::Screens => Some("screen"),
            TableKind::Groups => Some("group"),
            TableKind::Aliases => Some("alias"),
        }
    }
}

/// One scanned table of a source.
#[derive(Clone, Debug)]
pub struct SourceTable {
    pub source: String,
    pub preset: Preset,
    pub table: String,
    pub kind: TableKind,
    /// Hive partition column of the table (`dt`), left out of properties.
    pub partition_column: String,
    pub scan: LogicalPlan,
}

fn utc_micros() -> DataType {
    DataType::Timestamp(TimeUnit::Microsecond, Some(Arc::from("UTC")))
}

fn find<'a>(schema: &'a DFSchema, names: &[&str]) -> Option<(&'a str, &'a DataType)> {
    for n in names {
        if let Some(f) = schema.fields().iter().find(|f| f.name() == n) {
            return Some((f.name().as_str(), f.data_type()));
        }
    }
    None
}

fn column(name: &str) -> Expr {
    Expr::Column(datafusion::common::Column::from_name(name))
}

fn is_binary(t: &DataType) -> bool {
    matches!(
        t,
        DataType::Binary
            | DataType::LargeBinary
            | DataType::BinaryView
            | DataType::FixedSizeBinary(_)
    )
}

/// White space trimmed from identifiers (not only spaces: a message id of `"\t\n"` is none).
const ID_SPACE: &str = " \t\n\r\u{b}\u{c}";

/// A text column, trimmed, with empty strings as null; null when the column is absent.
/// Numbers and bytes are text too (files of one source disagree on an id's type).
fn id_text(schema: &DFSchema, names: &[&str]) -> Expr {
    match find(schema, names) {
        Some((n, _)) => nullif(
            btrim(vec![plain_text(schema, &[n]), lit(ID_SPACE)]),
            lit(""),
        ),
        None => lit(datafusion::common::ScalarValue::Utf8(None)),
    }
}

/// A column as text: bytes read as UTF-8 (invalid bytes replaced), anything else cast.
fn plain_text(schema: &DFSchema, names: &[&str]) -> Expr {
    match find(schema, names) {
        Some((n, t)) if is_binary(t) => text_lossy(column(n)),
        Some((n, _)) => cast(column(n), DataType::Utf8),
        None => lit(datafusion::common::ScalarValue::Utf8(None)),
    }
}

/// A JSON-ish column: text stays text (bytes are read as text), structs, maps and lists
/// become JSON text, so a file that stores `properties` as a struct and one that stores JSON
/// text give the same rows.
fn json_text(schema: &DFSchema, names: &[&str]) -> Expr {
    match find(schema, names) {
        Some((n, DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View)) => {
            cast(column(n), DataType::Utf8)
        }
        Some((n, t)) if is_binary(t) => text_lossy(column(n)),
        Some((n, _)) => to_json(column(n)),
        None => lit(datafusion::common::ScalarValue::Utf8(None)),
    }
}

/// The event time as UTC microseconds, and as the text it was written as. Any timestamp unit
/// and time zone converts; a value that no microsecond timestamp can hold (year -285 million
/// in milliseconds) becomes null, which sets the row aside as `invalid_timestamp`.
fn timestamp_exprs(schema: &DFSchema) -> Result<(Expr, Expr)> {
    Ok(
        match find(schema, &["timestamp", "original_timestamp", "received_at"]) {
            Some((n, DataType::Timestamp(_, _))) => {
                // Only times in years 1 to 9999 are written as text; the others (which a
                // formatter cannot always spell) as the number the file stores.
                let micros = try_cast(column(n), utc_micros());
                let in_range = micros
                    .clone()
                    .gt_eq(ts_micros(FIRST_MICROS))
                    .and(micros.clone().lt_eq(ts_micros(LAST_MICROS)));
                let raw = when(in_range, cast(micros.clone(), DataType::Utf8))
                    .otherwise(cast(cast(column(n), DataType::Int64), DataType::Utf8))?;
                (micros, raw)
            }
            Some((n, _)) => (
                try_cast(plain_text(schema, &[n]), utc_micros()),
                plain_text(schema, &[n]),
            ),
            None => (
                lit(datafusion::common::ScalarValue::TimestampMicrosecond(
                    None,
                    Some(Arc::from("UTC")),
                )),
                lit(datafusion::common::ScalarValue::Utf8(None)),
            ),
        },
    )
}

/// Columns of a warehouse table that are part of the call rather than its properties/traits.
fn is_reserved(kind: TableKind, name: &str, partition_column: &str) -> bool {
    const COMMON: [&str; 16] = [
        "id",
        "message_id",
        "anonymous_id",
        "user_id",
        "timestamp",
        "received_at",
        "sent_at",
        "original_timestamp",
        "uuid_ts",
        "loaded_at",
        "event",
        "event_text",
        "channel",
        "rudder_id",
        "type",
        "context",
    ];
    if name == partition_column || COMMON.contains(&name) || name.starts_with("context_") {
        return true;
    }
    match kind {
        TableKind::Groups => name == "group_id",
        TableKind::Aliases => name == "previous_id",
        TableKind::Pages | TableKind::Screens => name == "name",
        _ => false,
    }
}

/// The flattened columns of a warehouse table as one JSON object.
fn flattened_object(schema: &DFSchema, kind: TableKind, partition_column: &str) -> Expr {
    let pairs: Vec<(String, Expr)> = schema
        .fields()
        .iter()
        .filter(|f| !is_reserved(kind, f.name(), partition_column))
        .map(|f| (f.name().clone(), column(f.name())))
        .collect();
    json_object(pairs)
}

/// `context_*` columns (and `channel`) as one JSON object with the prefix removed; a path
/// like `context.device.id` then finds `device_id` (see [`crate::functions::lookup`]).
fn context_object(schema: &DFSchema) -> Expr {
    let pairs: Vec<(String, Expr)> = schema
        .fields()
        .iter()
        .filter_map(|f| {
            let name = f.name();
            if let Some(rest) = name.strip_prefix("context_") {
                Some((rest.to_string(), column(name)))
            } else if name == "channel" {
                Some(("channel".to_string(), column(name)))
            } else {
                None
            }
        })
        .collect();
    json_object(pairs)
}

/// Projects one source table into the normalized event schema.
pub fn normalize_table(t: &SourceTable) -> Result<LogicalPlan> {
    let schema = t.scan.schema().as_ref().clone();
    let s = &schema;
    let null_text = || lit(datafusion::common::ScalarValue::Utf8(None));
    let (ts, ts_raw) = timestamp_exprs(s)?;

    let (message_id, ty, raw_event, properties, traits, context) = match t.kind {
        TableKind::Events => (
            id_text(s, &["message_id", "messageId", "id"]),
            lower(btrim(vec![plain_text(s, &["type"])])),
            plain_text(s, &["event", "name"]),
            json_text(s, &["properties"]),
            json_text(s, &["traits"]),
            json_text(s, &["context"]),
        ),
        kind => {
            let ty = lit(kind.call_type().unwrap_or("track"));
            let raw_event = match kind {
                TableKind::Tracks | TableKind::TrackEvent => {
                    match (find(s, &["event_text"]), find(s, &["event"])) {
                        (Some(_), Some(_)) => datafusion::functions::expr_fn::coalesce(vec![
                            plain_text(s, &["event_text"]),
                            plain_text(s, &["event"]),
                        ]),
                        (Some(_), None) => plain_text(s, &["event_text"]),
                        _ => plain_text(s, &["event"]),
                    }
                }
                TableKind::Pages | TableKind::Screens => plain_text(s, &["name"]),
                _ => null_text(),
            };
            let flat = flattened_object(s, kind, &t.partition_column);
            let (props, traits) = match kind {
                TableKind::TrackEvent | TableKind::Pages | TableKind::Screens => {
                    (flat, null_text())
                }
                TableKind::Identifies | TableKind::Groups => (null_text(), flat),
                _ => (null_text(), null_text()),
            };
            (
                id_text(s, &["id", "message_id"]),
                ty,
                raw_event,
                props,
                traits,
                context_object(s),
            )
        }
    };

    let ty_col = column("type");
    let exprs = vec![
        lit(t.source.as_str()).alias("source"),
        lit(t.table.as_str()).alias("source_table"),
        message_id.alias("message_id"),
        ty.alias("type"),
        raw_event.alias("raw_event"),
        id_text(s, &["user_id", "userId"]).alias("user_id"),
        id_text(s, &["anonymous_id", "anonymousId"]).alias("anonymous_id"),
        id_text(s, &["group_id", "groupId"]).alias("group_id"),
        id_text(s, &["previous_id", "previousId"]).alias("previous_id"),
        ts.alias("timestamp"),
        ts_raw.alias("timestamp_raw"),
        properties.alias("properties"),
        traits.alias("traits"),
        context.alias("context"),
    ];
    let projected = LogicalPlanBuilder::from(t.scan.clone()).project(exprs)?;
    // Second projection: event names per Segment (`Page Viewed`, `Screen Viewed`).
    let is_view = ty_col
        .clone()
        .in_list(vec![lit("page"), lit("screen")], false);
    let event = when(ty_col.clone().eq(lit("track")), column("raw_event"))
        .when(ty_col.clone().eq(lit("page")), lit("Page Viewed"))
        .when(ty_col.clone().eq(lit("screen")), lit("Screen Viewed"))
        .otherwise(null_text())?;
    let name = when(is_view, column("raw_event")).otherwise(null_text())?;
    projected
        .project(
            NORMALIZED
                .iter()
                .map(|c| match *c {
                    "event" => event.clone().alias("event"),
                    "name" => name.clone().alias("name"),
                    other => column(other),
                })
                .collect::<Vec<_>>(),
        )?
        .build()
}

/// The normalized columns, in order.
pub const NORMALIZED: [&str; 15] = [
    "source",
    "source_table",
    "message_id",
    "type",
    "event",
    "name",
    "user_id",
    "anonymous_id",
    "group_id",
    "previous_id",
    "timestamp",
    "timestamp_raw",
    "properties",
    "traits",
    "context",
];

/// All tables of all sources as one normalized plan. A warehouse's `tracks` table contributes
/// only the calls that have no per-event table row (those carry the properties).
pub fn union_tables(tables: &[SourceTable]) -> Result<Option<LogicalPlan>> {
    let mut plans = Vec::new();
    let mut by_source: std::collections::BTreeMap<&str, Vec<&SourceTable>> = Default::default();
    for t in tables {
        by_source.entry(t.source.as_str()).or_default().push(t);
    }
    for (_, ts) in by_source {
        let per_event: Vec<LogicalPlan> = ts
            .iter()
            .filter(|t| t.kind == TableKind::TrackEvent)
            .map(|t| normalize_table(t))
            .collect::<Result<_>>()?;
        for t in &ts {
            let plan = normalize_table(t)?;
            if t.kind == TableKind::Tracks && !per_event.is_empty() {
                let mut ids: Option<LogicalPlanBuilder> = None;
                for p in &per_event {
                    let b = LogicalPlanBuilder::from(p.clone())
                        .project(vec![column("message_id").alias("pe_message_id")])?;
                    ids = Some(match ids {
                        None => b,
                        Some(acc) => acc.union(b.build()?)?,
                    });
                }
                let ids = ids.expect("non-empty").build()?;
                let anti = LogicalPlanBuilder::from(plan)
                    .join_detailed(
                        ids,
                        JoinType::LeftAnti,
                        (vec!["message_id"], vec!["pe_message_id"]),
                        None,
                        datafusion::common::NullEquality::NullEqualsNothing,
                    )?
                    .build()?;
                plans.push(anti);
            } else {
                plans.push(plan);
            }
        }
    }
    let mut iter = plans.into_iter();
    let Some(first) = iter.next() else {
        return Ok(None);
    };
    let mut b = LogicalPlanBuilder::from(first);
    for p in iter {
        b = b.union(p)?;
    }
    Ok(Some(b.build()?))
}

/// 0001-01-01T00:00:00Z and 9999-12-31T23:59:59.999999Z in microseconds: event times outside
/// these years are set aside (`invalid_timestamp`); most engines and formats cannot hold them.
/// (The last instant, not 10000-01-01, so that scripts for other engines can spell it.)
const FIRST_MICROS: i64 = -62_135_596_800_000_000;
const LAST_MICROS: i64 = 253_402_300_799_999_999;

/// A UTC timestamp literal.
fn ts_micros(micros: i64) -> Expr {
    lit(datafusion::common::ScalarValue::TimestampMicrosecond(
        Some(micros),
        Some(Arc::from("UTC")),
    ))
}

/// Adds `error_reason` and `error_detail` (null for good rows).
pub fn classify(normalized: LogicalPlan) -> Result<LogicalPlan> {
    let null_text = || lit(datafusion::common::ScalarValue::Utf8(None));
    let types: Vec<Expr> = EVENT_TYPES.iter().map(|t| lit(*t)).collect();
    let no_id = column("user_id")
        .is_null()
        .and(column("anonymous_id").is_null())
        .and(column("previous_id").is_null());
    let bad_json = |c: &str| json_valid(column(c)).not();
    let bad_id = datafusion::functions::expr_fn::strpos(column("message_id"), lit("\0")).gt(lit(0));
    let ts = ts_micros;
    let no_time = column("timestamp").is_null();
    let out_of_range = column("timestamp")
        .lt(ts(FIRST_MICROS))
        .or(column("timestamp").gt(ts(LAST_MICROS)));
    let bad_time = no_time.clone().or(out_of_range.clone());
    let reason = when(column("message_id").is_null(), lit("missing_message_id"))
        .when(bad_id.clone(), lit("invalid_message_id"))
        .when(
            column("type")
                .is_null()
                .or(column("type").in_list(types.clone(), true)),
            lit("invalid_type"),
        )
        .when(bad_time, lit("invalid_timestamp"))
        .when(
            bad_json("properties")
                .or(bad_json("traits"))
                .or(bad_json("context")),
            lit("invalid_json"),
        )
        .when(no_id, lit("no_identifier"))
        .otherwise(null_text())?;
    let quoted = |c: &str| {
        datafusion::functions::expr_fn::coalesce(vec![
            concat(vec![lit("\""), column(c), lit("\"")]),
            lit("null"),
        ])
    };
    let detail = when(
        column("message_id").is_null(),
        lit("the row has no message id"),
    )
    .when(bad_id, lit("the message id holds a NUL character"))
    .when(
        column("type")
            .is_null()
            .or(column("type").in_list(types, true)),
        concat(vec![
            lit("type "),
            quoted("type"),
            lit(" is not one of identify, track, page, screen, group, alias"),
        ]),
    )
    .when(
        no_time,
        concat(vec![
            lit("timestamp "),
            quoted("timestamp_raw"),
            lit(" cannot be parsed"),
        ]),
    )
    .when(
        out_of_range.clone(),
        concat(vec![
            lit("timestamp "),
            quoted("timestamp_raw"),
            lit(" is outside years 1 to 9999"),
        ]),
    )
    .when(
        bad_json("properties"),
        lit("properties is not a JSON object"),
    )
    .when(bad_json("traits"), lit("traits is not a JSON object"))
    .when(bad_json("context"), lit("context is not a JSON object"))
    .when(
        column("user_id")
            .is_null()
            .and(column("anonymous_id").is_null())
            .and(column("previous_id").is_null()),
        lit("no userId, anonymousId or previousId"),
    )
    .otherwise(null_text())?;
    let mut exprs: Vec<Expr> = NORMALIZED.iter().map(|c| column(c)).collect();
    exprs.push(reason.alias("error_reason"));
    exprs.push(detail.alias("error_detail"));
    LogicalPlanBuilder::from(normalized).project(exprs)?.build()
}
