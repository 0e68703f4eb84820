//! The presets' row layouts: the `events` preset's one JSON-text table, and Segment's and
//! RudderStack's warehouse tables (`identifies`, `tracks`, `pages`, `screens`, `groups`,
//! `aliases` and one typed table per track event), filled column by column.

use std::sync::Arc;

use datafusion::arrow::array::{
    ArrayBuilder, ArrayRef, BooleanBuilder, Float64Builder, Int64Builder, StringBuilder,
    TimestampMicrosecondBuilder,
};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use datafusion::arrow::record_batch::RecordBatch;

use super::catalog::{ACCOUNT_TRAITS, PAGE_PROPS, Prop, TRACKS, Ty, USER_TRAITS};
use super::event::{Bad, Event, Kind, Val};
use super::output::{Output, part_name};
use super::sim::Sink;
use super::text::{push_date, push_iso_ms};
use crate::error::GenerateResult;
pub use crate::spec::preset::EVENTS_COLUMNS;

/// The schema of the `events` preset's table.
pub fn events_schema() -> SchemaRef {
    Arc::new(Schema::new(
        EVENTS_COLUMNS
            .iter()
            .map(|c| Field::new(*c, DataType::Utf8, true))
            .collect::<Vec<_>>(),
    ))
}

fn dt_dir(epoch_day: i64) -> String {
    let mut s = String::from("dt=");
    push_date(&mut s, epoch_day);
    s
}

/// Writes the `events` preset: `<out>/dt=YYYY-MM-DD/part-NNNNN.parquet`.
pub(crate) struct EventsSink {
    out: Output,
    schema: SchemaRef,
    dt: String,
    part: u32,
    rows: usize,
    cols: Vec<StringBuilder>,
    buf: String,
}

impl EventsSink {
    pub(crate) fn new(out: Output) -> Self {
        let cap = out.rows_per_file.min(1 << 16);
        EventsSink {
            schema: events_schema(),
            dt: String::new(),
            part: 0,
            rows: 0,
            cols: (0..EVENTS_COLUMNS.len())
                .map(|i| {
                    let bytes = match i {
                        8 => 160,
                        10 => 360,
                        _ => 24,
                    };
                    StringBuilder::with_capacity(cap, cap * bytes)
                })
                .collect(),
            buf: String::with_capacity(1024),
            out,
        }
    }

    fn flush(&mut self) -> GenerateResult<()> {
        if self.rows == 0 {
            return Ok(());
        }
        let arrays: Vec<ArrayRef> = self
            .cols
            .iter_mut()
            .map(|b| Arc::new(b.finish()) as ArrayRef)
            .collect();
        let batch = RecordBatch::try_new(self.schema.clone(), arrays)?;
        let name = part_name(self.part);
        self.out
            .write(&[&self.dt, &name], &self.schema, batch, self.rows as u64)?;
        self.part += 1;
        self.rows = 0;
        Ok(())
    }
}

/// Appends the JSON of `ev`'s properties or traits, broken on purpose for a bad row.
fn push_json(ev: &Event, buf: &mut String) {
    ev.push_props_json(buf);
    if ev.bad == Bad::Json {
        buf.pop();
        buf.push_str(",\"broken");
    }
}

impl Sink for EventsSink {
    fn start_day(&mut self, epoch_day: i64) {
        self.dt = dt_dir(epoch_day);
        self.part = 0;
    }

    fn emit(&mut self, ev: &Event) -> GenerateResult<()> {
        let c = &mut self.cols;
        c[0].append_option(ev.message_id.get());
        c[1].append_value(if ev.bad == Bad::Type {
            "bogus"
        } else {
            ev.kind.as_str()
        });
        c[2].append_option(ev.event_text());
        c[3].append_option(ev.user_id.get());
        c[4].append_option(ev.anonymous_id.get());
        c[5].append_option(ev.group_id.get());
        c[6].append_option(ev.previous_id.get());
        let buf = &mut self.buf;
        if ev.bad == Bad::Timestamp {
            c[7].append_value("not-a-date");
        } else {
            buf.clear();
            push_iso_ms(buf, ev.ts_ms);
            c[7].append_value(buf.as_str());
        }
        match ev.kind {
            Kind::Track | Kind::Page | Kind::Screen => {
                buf.clear();
                push_json(ev, buf);
                c[8].append_value(buf.as_str());
                c[9].append_null();
            }
            Kind::Identify | Kind::Group => {
                c[8].append_null();
                buf.clear();
                push_json(ev, buf);
                c[9].append_value(buf.as_str());
            }
            Kind::Alias => {
                c[8].append_null();
                c[9].append_null();
            }
        }
        buf.clear();
        ev.push_context_json(buf);
        c[10].append_value(buf.as_str());
        self.rows += 1;
        if self.rows >= self.out.rows_per_file {
            self.flush()?;
        }
        Ok(())
    }

    fn finish(&mut self) -> GenerateResult<()> {
        self.flush()
    }
}

/// The two warehouse dialects.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Dialect {
    Segment,
    Rudderstack,
}

fn ts_type() -> DataType {
    DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()))
}

/// The columns every warehouse table starts with.
fn common_fields(d: Dialect) -> Vec<Field> {
    let mut f = vec![
        Field::new("id", DataType::Utf8, true),
        Field::new("anonymous_id", DataType::Utf8, true),
        Field::new("user_id", DataType::Utf8, true),
        Field::new("timestamp", ts_type(), true),
        Field::new("received_at", ts_type(), true),
        Field::new("sent_at", ts_type(), true),
        Field::new("original_timestamp", ts_type(), true),
    ];
    if d == Dialect::Rudderstack {
        f.push(Field::new("channel", DataType::Utf8, true));
    }
    let ip = match d {
        Dialect::Segment => "context_ip",
        Dialect::Rudderstack => "context_request_ip",
    };
    for name in [
        "context_library_name",
        "context_library_version",
        ip,
        "context_user_agent",
        "context_locale",
        "context_device_id",
        "context_device_type",
        "context_os_name",
        "context_page_path",
        "context_page_url",
        "context_page_title",
        "context_traits_email",
    ] {
        f.push(Field::new(name, DataType::Utf8, true));
    }
    f
}

fn prop_fields(props: &[Prop]) -> impl Iterator<Item = Field> + '_ {
    props.iter().map(|p| {
        let t = match p.ty {
            Ty::Str => DataType::Utf8,
            Ty::Int => DataType::Int64,
            Ty::Float => DataType::Float64,
            Ty::Bool => DataType::Boolean,
        };
        Field::new(p.name, t, true)
    })
}

// Fixed table slots.
const IDENTIFIES: usize = 0;
const TRACKS_T: usize = 1;
const PAGES_T: usize = 2;
const SCREENS: usize = 3;
const GROUPS: usize = 4;
const ALIASES: usize = 5;
const PER_EVENT: usize = 6;

/// Every warehouse table of a dialect, with its fixed schema, in a fixed order.
pub(crate) fn warehouse_tables(d: Dialect) -> Vec<(&'static str, SchemaRef)> {
    let with = |extra: Vec<Field>| {
        let mut f = common_fields(d);
        f.extend(extra);
        Arc::new(Schema::new(f))
    };
    let event_cols = || {
        vec![
            Field::new("event", DataType::Utf8, true),
            Field::new("event_text", DataType::Utf8, true),
        ]
    };
    let mut out = vec![
        ("identifies", with(prop_fields(USER_TRAITS).collect())),
        ("tracks", with(event_cols())),
        (
            "pages",
            with(
                std::iter::once(Field::new("name", DataType::Utf8, true))
                    .chain(prop_fields(PAGE_PROPS))
                    .collect(),
            ),
        ),
        (
            "screens",
            with(vec![Field::new("name", DataType::Utf8, true)]),
        ),
        (
            "groups",
            with(
                std::iter::once(Field::new("group_id", DataType::Utf8, true))
                    .chain(prop_fields(ACCOUNT_TRAITS))
                    .collect(),
            ),
        ),
        (
            "aliases",
            with(vec![Field::new("previous_id", DataType::Utf8, true)]),
        ),
    ];
    for t in TRACKS {
        out.push((
            t.table,
            with(
                event_cols()
                    .into_iter()
                    .chain(prop_fields(t.props))
                    .collect(),
            ),
        ));
    }
    out
}

enum Col {
    Str(StringBuilder),
    Int(Int64Builder),
    Float(Float64Builder),
    Bool(BooleanBuilder),
    Ts(TimestampMicrosecondBuilder),
}

impl Col {
    fn new(t: &DataType) -> Col {
        match t {
            DataType::Int64 => Col::Int(Int64Builder::new()),
            DataType::Float64 => Col::Float(Float64Builder::new()),
            DataType::Boolean => Col::Bool(BooleanBuilder::new()),
            DataType::Timestamp(..) => {
                Col::Ts(TimestampMicrosecondBuilder::new().with_timezone("UTC"))
            }
            _ => Col::Str(StringBuilder::new()),
        }
    }

    #[inline]
    fn str(&mut self, v: Option<&str>) {
        match self {
            Col::Str(b) => b.append_option(v),
            _ => unreachable!("not a string column"),
        }
    }

    #[inline]
    fn ts_ms(&mut self, ms: i64) {
        match self {
            Col::Ts(b) => b.append_value(ms * 1000),
            _ => unreachable!("not a timestamp column"),
        }
    }

    #[inline]
    fn val(&mut self, ev: &Event, v: Val) {
        match (self, v) {
            (Col::Str(b), v) => b.append_option(ev.str_of(v)),
            (Col::Int(b), Val::Int(i)) => b.append_value(i),
            (Col::Int(b), _) => b.append_null(),
            (Col::Float(b), Val::Money(c)) => b.append_value(c as f64 / 100.0),
            (Col::Float(b), _) => b.append_null(),
            (Col::Bool(b), Val::Bool(x)) => b.append_value(x),
            (Col::Bool(b), _) => b.append_null(),
            (Col::Ts(b), _) => b.append_null(),
        }
    }

    fn finish(&mut self) -> ArrayRef {
        match self {
            Col::Str(b) => Arc::new(b.finish()),
            Col::Int(b) => Arc::new(b.finish()),
            Col::Float(b) => Arc::new(b.finish()),
            Col::Bool(b) => Arc::new(b.finish()),
            Col::Ts(b) => Arc::new(b.finish()),
        }
    }

    fn len(&self) -> usize {
        match self {
            Col::Str(b) => b.len(),
            Col::Int(b) => b.len(),
            Col::Float(b) => b.len(),
            Col::Bool(b) => b.len(),
            Col::Ts(b) => b.len(),
        }
    }
}

struct Table {
    name: &'static str,
    schema: SchemaRef,
    cols: Vec<Col>,
    rows: usize,
    part: u32,
    /// Whether this table's rows count as messages (per-event tables repeat `tracks`).
    counts: bool,
}

/// Writes Segment's or RudderStack's tables: `<out>/<table>/dt=YYYY-MM-DD/part-NNNNN.parquet`.
pub(crate) struct WarehouseSink {
    out: Output,
    dialect: Dialect,
    dt: String,
    tables: Vec<Table>,
    /// Rows buffered over all tables.
    buffered: usize,
}

impl WarehouseSink {
    pub(crate) fn new(out: Output, dialect: Dialect) -> Self {
        let tables = warehouse_tables(dialect)
            .into_iter()
            .enumerate()
            .map(|(i, (name, schema))| Table {
                name,
                cols: schema
                    .fields()
                    .iter()
                    .map(|f| Col::new(f.data_type()))
                    .collect(),
                schema,
                rows: 0,
                part: 0,
                counts: i < PER_EVENT,
            })
            .collect();
        WarehouseSink {
            out,
            dialect,
            dt: String::new(),
            tables,
            buffered: 0,
        }
    }

    /// Fills the common columns of table `t`; returns the index of the next column.
    fn common(&mut self, t: usize, ev: &Event) -> usize {
        let rudder = self.dialect == Dialect::Rudderstack;
        let c = &mut self.tables[t].cols;
        let ctx = &ev.ctx;
        c[0].str(ev.message_id.get());
        c[1].str(ev.anonymous_id.get());
        c[2].str(ev.user_id.get());
        c[3].ts_ms(ev.ts_ms);
        c[4].ts_ms(ev.received_ms);
        c[5].ts_ms(ev.sent_ms);
        c[6].ts_ms(ev.original_ms);
        let mut i = 7;
        if rudder {
            c[7].str(Some(ctx.channel));
            i = 8;
        }
        c[i].str(Some(ctx.library_name));
        c[i + 1].str(Some(ctx.library_version));
        c[i + 2].str(ctx.ip.get());
        c[i + 3].str(ctx.user_agent);
        c[i + 4].str(ctx.locale);
        c[i + 5].str(ctx.device_id.get());
        c[i + 6].str(ctx.device_type);
        c[i + 7].str(ctx.os_name);
        c[i + 8].str(ctx.page_path.get());
        c[i + 9].str(ctx.page_url.get());
        c[i + 10].str(ctx.page_title);
        c[i + 11].str(ctx.traits_email.get());
        i + 12
    }

    fn row(
        &mut self,
        t: usize,
        ev: &Event,
        with_event: bool,
        with_props: bool,
    ) -> GenerateResult<()> {
        let mut i = self.common(t, ev);
        let table = &mut self.tables[t];
        let c = &mut table.cols;
        match ev.kind {
            Kind::Track if with_event => {
                c[i].str(Some(TRACKS[ev.track].table));
                c[i + 1].str(Some(TRACKS[ev.track].name));
                i += 2;
            }
            Kind::Page | Kind::Screen => {
                c[i].str(Some(ev.name));
                i += 1;
            }
            Kind::Group => {
                c[i].str(ev.group_id.get());
                i += 1;
            }
            Kind::Alias => {
                c[i].str(ev.previous_id.get());
                i += 1;
            }
            _ => {}
        }
        if with_props {
            for v in &ev.vals[..ev.schema.len()] {
                c[i].val(ev, *v);
                i += 1;
            }
        }
        debug_assert_eq!(i, c.len(), "table {}", table.name);
        debug_assert!(
            c.iter().all(|col| col.len() == table.rows + 1),
            "table {}",
            table.name
        );
        table.rows += 1;
        self.buffered += 1;
        if table.rows >= self.out.rows_per_file {
            self.flush(t)?;
        } else if self.buffered >= self.out.rows_per_file {
            // Memory stays bounded by `rows_per_file` rows whatever the number of tables.
            let largest = (0..self.tables.len())
                .max_by_key(|&i| (self.tables[i].rows, std::cmp::Reverse(i)))
                .unwrap_or(t);
            self.flush(largest)?;
        }
        Ok(())
    }

    fn flush(&mut self, t: usize) -> GenerateResult<()> {
        let table = &mut self.tables[t];
        if table.rows == 0 {
            return Ok(());
        }
        self.buffered -= table.rows;
        let arrays: Vec<ArrayRef> = table.cols.iter_mut().map(Col::finish).collect();
        let batch = RecordBatch::try_new(table.schema.clone(), arrays)?;
        let name = part_name(table.part);
        let messages = if table.counts { table.rows as u64 } else { 0 };
        self.out.write(
            &[table.name, &self.dt, &name],
            &table.schema,
            batch,
            messages,
        )?;
        table.part += 1;
        table.rows = 0;
        Ok(())
    }
}

impl Sink for WarehouseSink {
    fn start_day(&mut self, epoch_day: i64) {
        self.dt = dt_dir(epoch_day);
        for t in &mut self.tables {
            t.part = 0;
        }
    }

    fn emit(&mut self, ev: &Event) -> GenerateResult<()> {
        match ev.kind {
            Kind::Identify => self.row(IDENTIFIES, ev, false, true),
            Kind::Track => {
                self.row(TRACKS_T, ev, true, false)?;
                self.row(PER_EVENT + ev.track, ev, true, true)
            }
            Kind::Page => self.row(PAGES_T, ev, false, true),
            Kind::Screen => self.row(SCREENS, ev, false, false),
            Kind::Group => self.row(GROUPS, ev, false, true),
            Kind::Alias => self.row(ALIASES, ev, false, false),
        }
    }

    fn finish(&mut self) -> GenerateResult<()> {
        for t in 0..self.tables.len() {
            self.flush(t)?;
        }
        Ok(())
    }
}
