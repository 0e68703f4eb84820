//! Source presets: which table layout a source follows (DESIGN.md §3).

use std::fmt;

/// The layout of a source's tables.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Preset {
    /// One table: `message_id, type, event, user_id, anonymous_id, group_id, previous_id,
    /// timestamp, properties, traits, context` (the last three JSON text).
    Events,
    /// Segment's warehouse / data-lake schema: `identifies`, `tracks`, `pages`, `screens`,
    /// `groups`, `aliases` and one table per track event, with flattened columns.
    Segment,
    /// RudderStack's warehouse schema: the same tables, RudderStack's column names.
    Rudderstack,
}

/// The columns of the `events` preset's table, in order (DESIGN.md §3): what the generator
/// writes and the collector writes first.
pub const EVENTS_COLUMNS: [&str; 11] = [
    "message_id",
    "type",
    "event",
    "user_id",
    "anonymous_id",
    "group_id",
    "previous_id",
    "timestamp",
    "properties",
    "traits",
    "context",
];

impl Preset {
    pub const ALL: [Preset; 3] = [Preset::Events, Preset::Segment, Preset::Rudderstack];

    pub fn as_str(self) -> &'static str {
        match self {
            Preset::Events => "events",
            Preset::Segment => "segment",
            Preset::Rudderstack => "rudderstack",
        }
    }

    pub fn parse(s: &str) -> Option<Preset> {
        Preset::ALL.into_iter().find(|p| p.as_str() == s)
    }
}

impl fmt::Display for Preset {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}
