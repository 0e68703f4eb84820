//! The typed definitions of a space (DESIGN.md §3): what the rest of Cohort reads instead of YAML.

use std::path::PathBuf;

use chrono::{DateTime, Utc};

use super::{DestinationDef, Diagnostic, Loc, Preset};

/// A whole space folder, checked for syntax and shape.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Space {
    /// The folder the space was loaded from, as given to [`super::load_space`].
    pub root: PathBuf,
    pub name: String,
    pub spec_version: u32,
    pub description: Option<String>,
    pub sources: Vec<SourceDef>,
    /// The output root: a path relative to the space, `file://...` or `s3://...`.
    pub output: String,
    pub output_loc: Loc,
    /// Default cron schedule for computed traits and audiences.
    pub schedule: Option<String>,
    /// e.g. `4GB`; see [`super::parse_memory_limit`].
    pub memory_limit: Option<String>,
    /// How long a SQL trait may run when its sidecar sets no `timeout` (e.g. `10m`); see
    /// [`super::parse_duration`].
    pub sql_trait_timeout: Option<String>,
    /// How long published Delta versions are kept (e.g. `7d`), or `off`.
    pub retention: Option<String>,
    pub identity: IdentityRules,
    /// Sorted by key.
    pub traits: Vec<ComputedTraitDef>,
    /// Sorted by key.
    pub sql_traits: Vec<SqlTraitDef>,
    /// Sorted by key.
    pub audiences: Vec<AudienceDef>,
    /// destinations/<name>.yaml, sorted by name.
    pub destinations: Vec<DestinationDef>,
}

/// One source of events, registered under `name` for SQL traits.
#[derive(Clone, Debug, serde::Serialize)]
pub struct SourceDef {
    pub name: String,
    pub preset: Preset,
    pub url: String,
    pub url_loc: Loc,
    /// Default `dt`.
    pub partition_column: String,
    /// Write keys that `cohort serve`'s collector takes for this source (Segment's HTTP
    /// Tracking API); only an `events` source has them. Unique across the space.
    pub write_keys: Vec<String>,
}

/// identity.yaml: which identifiers link events into profiles.
#[derive(Clone, Debug, serde::Serialize)]
pub struct IdentityRules {
    /// When identity.yaml is absent: Segment's defaults ([`IdentityRules::segment_defaults`]).
    pub identifiers: Vec<IdentifierDef>,
    /// Exact values never used as identifiers, in addition to [`DEFAULT_BLOCKED_VALUES`].
    pub blocked_values: Vec<String>,
    /// Regexes (already checked to compile) for values never used as identifiers, in addition
    /// to [`DEFAULT_BLOCKED_PATTERNS`].
    pub blocked_patterns: Vec<String>,
    /// Whether identity.yaml exists.
    pub file_present: bool,
    /// repairs.yaml's entries, in file order.
    pub repairs: Vec<super::RepairDef>,
}

/// Values blocked in every space (DESIGN.md §4), before the space's own `blocked.values`.
pub const DEFAULT_BLOCKED_VALUES: [&str; 9] = [
    "",
    "null",
    "undefined",
    "anonymous",
    "-1",
    "0",
    "nan",
    "none",
    "unknown",
];

/// Patterns blocked in every space (DESIGN.md §4), before the space's own `blocked.patterns`.
pub const DEFAULT_BLOCKED_PATTERNS: [&str; 1] = ["^[0-]*$"];

impl IdentityRules {
    /// Segment's identifiers, used when a space has no identity.yaml: `user_id` (userId,
    /// priority 1, limit 1), `email` (traits.email and context.traits.email, lowercased,
    /// priority 2, limit 5) and `anonymous_id` (anonymousId, priority 3, limit 5).
    pub fn segment_defaults() -> IdentityRules {
        let def =
            |id_type: &str, from: &[&str], priority, limit, normalize: &[&str]| IdentifierDef {
                id_type: id_type.to_owned(),
                from: from.iter().map(|s| (*s).to_owned()).collect(),
                priority: Some(priority),
                limit: Some(limit),
                period: None,
                normalize: normalize.iter().map(|s| (*s).to_owned()).collect(),
                loc: Loc::file_start("identity.yaml"),
            };
        IdentityRules {
            identifiers: vec![
                def("user_id", &["userId"], 1, 1, &[]),
                def(
                    "email",
                    &["traits.email", "context.traits.email"],
                    2,
                    5,
                    &["lowercase"],
                ),
                def("anonymous_id", &["anonymousId"], 3, 5, &[]),
            ],
            blocked_values: Vec::new(),
            blocked_patterns: Vec::new(),
            file_present: false,
            repairs: Vec::new(),
        }
    }
}

/// One identifier type.
#[derive(Clone, Debug, serde::Serialize)]
pub struct IdentifierDef {
    pub id_type: String,
    /// Segment message paths: `userId`, `traits.email`, `context.externalIds.<type>`, ...
    pub from: Vec<String>,
    pub priority: Option<u32>,
    pub limit: Option<u32>,
    /// The period `limit` counts over (`limit: 5 weekly`); `None` is Segment's `ever`.
    pub period: Option<LimitPeriod>,
    /// Normalizations in order: `lowercase`, `uppercase`, `trim`, `digits_only`.
    pub normalize: Vec<String>,
    /// The identifier's mapping in identity.yaml.
    pub loc: Loc,
}

/// The sliding window a per-period limit counts over: at most `limit` values of the type may
/// be added to one profile within any window of this length (Segment's `5 weekly`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum LimitPeriod {
    Daily,
    Weekly,
    Monthly,
    Annually,
}

impl LimitPeriod {
    /// The words `limit:` accepts after the number (`ever` is no period at all).
    pub const WORDS: [&str; 5] = ["ever", "daily", "weekly", "monthly", "annually"];

    /// `Some(None)` for `ever`, `None` for a word that is no period.
    pub fn parse(word: &str) -> Option<Option<LimitPeriod>> {
        Some(Some(match word {
            "ever" => return Some(None),
            "daily" => LimitPeriod::Daily,
            "weekly" => LimitPeriod::Weekly,
            "monthly" => LimitPeriod::Monthly,
            "annually" | "yearly" => LimitPeriod::Annually,
            _ => return None,
        }))
    }

    /// The word, as identity.yaml spells it.
    pub fn word(self) -> &'static str {
        match self {
            LimitPeriod::Daily => "daily",
            LimitPeriod::Weekly => "weekly",
            LimitPeriod::Monthly => "monthly",
            LimitPeriod::Annually => "annually",
        }
    }

    /// The window's length in days: a month is 30 days, a year 365.
    pub fn days(self) -> i64 {
        match self {
            LimitPeriod::Daily => 1,
            LimitPeriod::Weekly => 7,
            LimitPeriod::Monthly => 30,
            LimitPeriod::Annually => 365,
        }
    }

    /// The window's length in microseconds (the unit of event timestamps).
    pub fn micros(self) -> i64 {
        self.days() * 86_400_000_000
    }
}

/// Whether a definition is about users or accounts.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum EntityType {
    #[default]
    Users,
    Accounts,
}

impl EntityType {
    pub const ALL: [EntityType; 2] = [EntityType::Users, EntityType::Accounts];

    pub fn as_str(self) -> &'static str {
        match self {
            EntityType::Users => "users",
            EntityType::Accounts => "accounts",
        }
    }

    pub fn parse(s: &str) -> Option<EntityType> {
        EntityType::ALL.into_iter().find(|e| e.as_str() == s)
    }
}

/// traits/<key>.yaml.
#[derive(Clone, Debug, serde::Serialize)]
pub struct ComputedTraitDef {
    pub key: String,
    /// Relative to the space root.
    pub file: PathBuf,
    pub query: String,
    /// Where the query text starts: for a quoted string, the character after the opening quote;
    /// for a block scalar (`|`, `>`), its first line of content.
    pub query_loc: Loc,
    pub entity: EntityType,
    pub schedule: Option<String>,
    pub description: Option<String>,
    /// `backfill:` (default true). When false, only events after [`Self::first_seen`] count.
    pub backfill: bool,
    /// When the definition first appeared in the space's run history (the as-of of the first
    /// run that had it); set by a run or the live engine from the manifest, None elsewhere.
    pub first_seen: Option<DateTime<Utc>>,
}

/// queries/<key>.sql with its optional queries/<key>.yaml sidecar.
#[derive(Clone, Debug, serde::Serialize)]
pub struct SqlTraitDef {
    pub key: String,
    /// The .sql file, relative to the space root.
    pub file: PathBuf,
    pub sql: String,
    pub id_column: Option<String>,
    /// Where `id_column`'s value is in the sidecar.
    pub id_column_loc: Option<Loc>,
    pub schedule: Option<String>,
    pub description: Option<String>,
    /// How long the query may run (e.g. `5m`), from the sidecar's `timeout`.
    pub timeout: Option<String>,
}

/// audiences/<key>.yaml.
#[derive(Clone, Debug, serde::Serialize)]
pub struct AudienceDef {
    pub key: String,
    /// Relative to the space root.
    pub file: PathBuf,
    /// Default: the key.
    pub name: String,
    pub query: String,
    /// As [`ComputedTraitDef::query_loc`].
    pub query_loc: Loc,
    pub entity: EntityType,
    /// Default true.
    pub include_anonymous: bool,
    pub destinations: Vec<String>,
    pub schedule: Option<String>,
    pub description: Option<String>,
    /// As [`ComputedTraitDef::backfill`].
    pub backfill: bool,
    /// As [`ComputedTraitDef::first_seen`].
    pub first_seen: Option<DateTime<Utc>>,
}

/// The result of loading a space: the space when it has no errors, and every problem found.
#[derive(Clone, Debug, serde::Serialize)]
pub struct SpaceLoad {
    /// Some only when `diagnostics` has no errors (warnings are fine).
    pub space: Option<Space>,
    /// When some file has errors: the definitions that could still be read, for the checks
    /// that look at one definition at a time (query syntax, SQL traits), so that one broken
    /// file does not hide the problems of the others. Its space.yaml part (name, sources,
    /// output) is empty when space.yaml could not be read. Never run it.
    pub partial: Option<Space>,
    /// Sorted by file, line, column.
    pub diagnostics: Vec<Diagnostic>,
}

impl SpaceLoad {
    pub fn errors(&self) -> impl Iterator<Item = &Diagnostic> {
        self.diagnostics.iter().filter(|d| d.is_error())
    }

    pub fn has_errors(&self) -> bool {
        self.errors().next().is_some()
    }
}
