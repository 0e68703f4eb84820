//! What readers of the live engine see: the profiles changed since the published run, the
//! identifiers seen live, the profiles merged away live and the entries and exits found, kept
//! behind one lock and replaced or extended once per tick.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

use chrono::{DateTime, Utc};
use datafusion::arrow::array::RecordBatch;

use super::LiveClass;
use super::load::Published;
use crate::spec::{EntityType, Space};

/// One profile's live values.
pub struct LiveProfile {
    pub profile_id: String,
    /// One row: the `profiles` columns.
    pub row: RecordBatch,
    /// The trait columns of `row` and what they are.
    pub traits: Arc<Vec<(String, LiveClass)>>,
    /// Users audiences it is a member of (true), or left live (false); the others as
    /// published.
    pub audiences: BTreeMap<String, bool>,
    /// (identifier column, value).
    pub identifiers: Vec<(String, String)>,
    pub updated_at: DateTime<Utc>,
}

/// An audience entry or exit found live.
#[derive(Clone, Debug, serde::Serialize)]
pub struct LiveChange {
    pub audience: String,
    pub profile_id: String,
    pub entered: bool,
    pub at: DateTime<Utc>,
    /// Identifier type -> values, as `audience_changes.identifiers` has them.
    pub identifiers: BTreeMap<String, Vec<String>>,
}

/// What readers see: the profiles changed since the published run.
#[derive(Default)]
pub struct View {
    /// The published run the live state starts from.
    pub run_id: Option<String>,
    pub profiles: HashMap<String, Arc<LiveProfile>>,
    /// (identifier column, value) -> profile id, for identifiers seen live.
    pub lookup: HashMap<(String, String), String>,
    /// A profile id merged away live -> the profile it is part of.
    pub moved: HashMap<String, String>,
    /// Entries and exits since the published run, oldest first.
    pub changes: Vec<LiveChange>,
    /// Events applied since the published run.
    pub events: u64,
    /// Changes dropped from the front of `changes` (it keeps the last [`MAX_CHANGES`]).
    pub dropped: u64,
    pub ticks: u64,
    pub last_tick_events: u64,
    pub last_tick_ms: u64,
    /// The last failure of a tick, if any (the tick's events wait for the next batch run).
    pub error: Option<String>,
    /// Why nothing is evaluated live until the next run, if so (see [`defs`]).
    pub paused: Option<String>,
    /// Definitions edited since the published run (`trait:<key>`, `audience:<key>`): they keep
    /// their published values until a run recomputes them (see [`defs`]).
    pub waiting: Vec<String>,
}

impl View {
    /// The live profile of a profile id (following live merges).
    pub fn profile(&self, id: &str) -> Option<Arc<LiveProfile>> {
        let mut id = id;
        while let Some(n) = self.moved.get(id) {
            id = n;
        }
        self.profiles.get(id).cloned()
    }
    /// The live profile an identifier belongs to, when it has been seen live.
    pub fn find(&self, column: &str, value: &str) -> Option<Arc<LiveProfile>> {
        let id = self.lookup.get(&(column.to_string(), value.to_string()))?;
        self.profile(id)
    }
}

impl View {
    /// Adds what a tick found.
    pub(super) fn merge(&mut self, t: View) {
        for (m, p) in &t.moved {
            self.profiles.remove(m);
            self.moved.insert(m.clone(), p.clone());
        }
        self.profiles.extend(t.profiles);
        self.lookup.extend(t.lookup);
        self.changes.extend(t.changes);
        let n = self.changes.len();
        if n > MAX_CHANGES {
            self.changes.drain(..n - MAX_CHANGES);
            self.dropped += (n - MAX_CHANGES) as u64;
        }
        self.events += t.events;
        self.ticks += t.ticks;
        if t.ticks > 0 {
            self.last_tick_events = t.last_tick_events;
            self.last_tick_ms = t.last_tick_ms;
        }
        if t.error.is_some() {
            self.error = t.error;
        }
    }
}

/// Live changes kept for readers.
const MAX_CHANGES: usize = 100_000;

/// The trait columns of live rows and what each is.
pub(super) fn classes(
    space: &Space,
    state: &Published,
    rows: &RecordBatch,
) -> Vec<(String, LiveClass)> {
    let computed: BTreeSet<&str> = space
        .traits
        .iter()
        .filter(|t| t.entity == EntityType::Users)
        .map(|t| t.key.as_str())
        .chain(state.kept_traits.iter().map(String::as_str))
        .collect();
    let mut out = Vec::new();
    for f in rows.schema().fields() {
        let n = f.name();
        let class = if computed.contains(n.as_str()) {
            LiveClass::Computed
        } else if state.custom.iter().any(|c| &c.column == n) {
            LiveClass::Custom
        } else if state.sql_columns.contains(n) {
            LiveClass::Sql
        } else {
            continue;
        };
        out.push((n.clone(), class));
    }
    out
}
