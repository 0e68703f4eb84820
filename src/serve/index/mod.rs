//! The Profile API's lookup index: built once when a run publishes (from that run's tables),
//! then every request is a hash lookup and a few array reads, never a query.
//!
//! Profiles and accounts are kept as Arrow columns sorted by id; identifiers, audience
//! memberships, links and recent events hang off each row as ranges (offsets into flat
//! vectors), so a million profiles cost a few hundred megabytes and no per-row allocations.
mod build;

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use datafusion::arrow::array::{Array, ArrayRef, AsArray};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, Int64Type, TimeUnit, TimestampMicrosecondType};
use serde_json::{Map, Value};

/// What kind of trait a column is, as `class=` filters and `verbose` shows it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TraitClass {
    /// From identify (users) or group (accounts) calls.
    Custom,
    ComputedTrait,
    SqlTrait,
    Audience,
}

impl TraitClass {
    pub fn as_str(self) -> &'static str {
        match self {
            TraitClass::Custom => "custom_trait",
            TraitClass::ComputedTrait => "computed_trait",
            TraitClass::SqlTrait => "sql_trait",
            TraitClass::Audience => "audience",
        }
    }
    /// Whether `class=<filter>` selects this class (`computed_trait` takes SQL traits too, as
    /// Segment counts them among computed traits).
    pub fn matches(self, filter: &str) -> bool {
        match filter {
            "audience" => self == TraitClass::Audience,
            "computed_trait" => matches!(self, TraitClass::ComputedTrait | TraitClass::SqlTrait),
            _ => false,
        }
    }
}

/// A trait column of a collection.
pub struct TraitColumn {
    pub name: String,
    pub class: TraitClass,
    pub values: ArrayRef,
}

/// An identifier of a profile (`external_ids`).
pub struct ExternalId {
    pub id_type: String,
    pub id_value: String,
    pub first_seen: Option<DateTime<Utc>>,
    pub last_seen: Option<DateTime<Utc>>,
}

/// A row's place in one audience: a member now, or one that exited (kept, as Segment keeps the
/// trait as `false`).
#[derive(Clone, Copy, Debug)]
pub struct Membership {
    /// Index into [`Collection::audience_keys`].
    pub audience: u32,
    pub member: bool,
    /// When it entered (the as-of of that run), for members now.
    pub entered_at: Option<DateTime<Utc>>,
}

/// One recent event of a profile.
pub struct RecentEvent {
    pub message_id: String,
    pub kind: String,
    pub event: Option<String>,
    pub timestamp: DateTime<Utc>,
    /// JSON texts as the events carried them.
    pub properties: Option<String>,
    pub traits: Option<String>,
    pub context: Option<String>,
}

/// Users or accounts: rows sorted by id, with everything the API returns per row.
pub struct Collection {
    /// `<type>:<value>` -> row.
    lookup: HashMap<Box<str>, u32>,
    pub ids: Vec<String>,
    pub first_seen: Vec<Option<DateTime<Utc>>>,
    pub last_seen: Vec<Option<DateTime<Utc>>>,
    /// Sorted by name.
    pub traits: Vec<TraitColumn>,
    pub audience_keys: Vec<String>,
    /// Row -> its audiences, members now and exited ones.
    audiences: Ranges<Membership>,
    /// Audience index -> rows that are members now, ascending.
    members: Vec<Vec<u32>>,
    external_ids: Ranges<ExternalId>,
    /// Row -> ids of the other collection (a user's accounts, an account's users).
    links: Ranges<String>,
    events: Ranges<RecentEvent>,
}

/// Per-row lists in one flat vector.
struct Ranges<T> {
    offsets: Vec<u32>,
    items: Vec<T>,
}

impl<T> Ranges<T> {
    /// From `(row, item)` pairs sorted by row.
    fn from_sorted(rows: usize, pairs: impl IntoIterator<Item = (u32, T)>) -> Ranges<T> {
        let mut offsets = Vec::with_capacity(rows + 1);
        let mut items = Vec::new();
        offsets.push(0);
        for (row, item) in pairs {
            while offsets.len() <= row as usize {
                offsets.push(items.len() as u32);
            }
            items.push(item);
        }
        while offsets.len() <= rows {
            offsets.push(items.len() as u32);
        }
        Ranges { offsets, items }
    }
    fn of(&self, row: u32) -> &[T] {
        let r = row as usize;
        &self.items[self.offsets[r] as usize..self.offsets[r + 1] as usize]
    }
}

impl Collection {
    /// The row of an identifier (`type` and `value` already normalized).
    pub fn find(&self, id_type: &str, value: &str) -> Option<u32> {
        let key = format!("{id_type}:{value}");
        self.lookup.get(key.as_str()).copied()
    }
    pub fn len(&self) -> usize {
        self.ids.len()
    }
    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }
    pub fn external_ids(&self, row: u32) -> &[ExternalId] {
        self.external_ids.of(row)
    }
    pub fn links(&self, row: u32) -> &[String] {
        self.links.of(row)
    }
    pub fn events(&self, row: u32) -> &[RecentEvent] {
        self.events.of(row)
    }
    /// Every non-null trait of a row with its class, sorted by name (audiences included).
    pub fn traits_of(&self, row: u32) -> Vec<(&str, TraitClass, Value)> {
        let mut out: Vec<(&str, TraitClass, Value)> = Vec::new();
        for t in &self.traits {
            if let Some(v) = json_value(&t.values, row as usize) {
                out.push((t.name.as_str(), t.class, v));
            }
        }
        for m in self.audiences.of(row) {
            out.push((
                self.audience_keys[m.audience as usize].as_str(),
                TraitClass::Audience,
                Value::Bool(m.member),
            ));
        }
        out.sort_by(|a, b| a.0.cmp(b.0));
        out
    }
    /// A row's audiences (members now and exited), in key order.
    pub fn memberships(&self, row: u32) -> &[Membership] {
        self.audiences.of(row)
    }
    /// The rows that are members of audience `key` now, ascending (None: no such audience
    /// in the published run).
    pub fn members(&self, key: &str) -> Option<&[u32]> {
        let a = self
            .audience_keys
            .binary_search_by(|k| k.as_str().cmp(key))
            .ok()?;
        self.members.get(a).map(Vec::as_slice)
    }
    /// The row of an id of this collection (a profile id or an account id).
    pub fn row_of_id(&self, id: &str) -> Option<u32> {
        self.ids
            .binary_search_by(|p| p.as_str().cmp(id))
            .ok()
            .map(|r| r as u32)
    }
}

/// The index of one published run of a space.
pub struct SpaceIndex {
    pub run_id: String,
    pub as_of: DateTime<Utc>,
    pub users: Collection,
    pub accounts: Collection,
}

/// The value of one cell as JSON (`None` for null).
pub fn json_value(a: &ArrayRef, i: usize) -> Option<Value> {
    if a.is_null(i) {
        return None;
    }
    Some(match a.data_type() {
        DataType::Boolean => Value::Bool(a.as_boolean().value(i)),
        DataType::Int64 => Value::from(a.as_primitive::<Int64Type>().value(i)),
        DataType::Int8
        | DataType::Int16
        | DataType::Int32
        | DataType::UInt8
        | DataType::UInt16
        | DataType::UInt32
        | DataType::UInt64 => {
            let c = cast(&a.slice(i, 1), &DataType::Int64).ok()?;
            Value::from(c.as_primitive::<Int64Type>().value(0))
        }
        DataType::Float64 => serde_json::Number::from_f64(
            a.as_primitive::<datafusion::arrow::datatypes::Float64Type>()
                .value(i),
        )
        .map_or(Value::Null, Value::Number),
        DataType::Float32 | DataType::Float16 | DataType::Decimal128(_, _) => {
            let c = cast(&a.slice(i, 1), &DataType::Float64).ok()?;
            serde_json::Number::from_f64(
                c.as_primitive::<datafusion::arrow::datatypes::Float64Type>()
                    .value(0),
            )
            .map_or(Value::Null, Value::Number)
        }
        DataType::Utf8 => Value::String(a.as_string::<i32>().value(i).to_string()),
        DataType::LargeUtf8 => Value::String(a.as_string::<i64>().value(i).to_string()),
        DataType::Utf8View => Value::String(a.as_string_view().value(i).to_string()),
        DataType::Timestamp(TimeUnit::Microsecond, _) => {
            let v = a.as_primitive::<TimestampMicrosecondType>().value(i);
            Value::String(rfc3339(DateTime::from_timestamp_micros(v)?))
        }
        DataType::List(_) => {
            let l = a.as_list::<i32>();
            let inner = l.value(i);
            Value::Array(
                (0..inner.len())
                    .map(|j| json_value(&inner, j).unwrap_or(Value::Null))
                    .collect(),
            )
        }
        DataType::LargeList(_) => {
            let l = a.as_list::<i64>();
            let inner = l.value(i);
            Value::Array(
                (0..inner.len())
                    .map(|j| json_value(&inner, j).unwrap_or(Value::Null))
                    .collect(),
            )
        }
        _ => {
            let c = cast(&a.slice(i, 1), &DataType::Utf8).ok()?;
            Value::String(c.as_string::<i32>().value(0).to_string())
        }
    })
}

/// `2026-11-02T10:00:00.000Z`, as Segment writes times.
pub fn rfc3339(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// Turns a JSON text column value back into JSON (objects stay objects).
pub fn parse_json(s: &Option<String>) -> Value {
    s.as_deref()
        .and_then(|s| serde_json::from_str(s).ok())
        .unwrap_or(Value::Object(Map::new()))
}
