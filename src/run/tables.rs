//! Every table name a run uses, spelled once: the session tables stages hand each other
//! ([`stage`]), the tables a run publishes ([`published`]) and which session table each
//! published table is. Stages, the publish, `read` (preview, explain) and the script all take
//! their names from here.

/// Tables registered in a run's session, in the order stages make them.
pub mod stage {
    /// Stage 1: good, deduplicated events up to as-of (one view per source name besides).
    pub const EVENTS: &str = "events";
    /// Scratch folder of every source row, classified (kept for `event_errors`).
    pub const CLASSIFIED: &str = "classified";
    /// The rows of `classified` set aside (a full run keeps only these once its history is
    /// written).
    pub const CLASSIFIED_ERRORS: &str = "classified_errors";
    /// Stage 1: the event history after this run (every good, deduplicated event ingested
    /// so far, whatever its time), what `events` is cut from and `events` is published from.
    pub const HISTORY: &str = "event_history";
    /// Stage 1, a run that extended the previous history and replaced none of its events:
    /// the rows it added to it.
    pub const HISTORY_ADDED: &str = "event_history_added";

    /// Stage 2: identifier values read out of the events, one column per path.
    pub const ID_RAW: &str = "id_raw";
    /// Stage 2: one row per identifier occurrence, repairs applied (what the resolver reads).
    pub const ID_OCCURRENCES: &str = "id_occurrences";
    /// Stage 2: the occurrences as the events carry them, before repairs (published as
    /// `identity_occurrences`).
    pub const ID_OCC_READ: &str = "id_occ_read";
    /// Stage 2, left by the resolver: every identifier with its profile.
    pub const ID_IDENTITIES: &str = "id_identities";
    /// Stage 2, left by the resolver: identifiers over their type's limit.
    pub const ID_VIOLATIONS: &str = "id_violations";
    /// Stage 2, left by the resolver: the graph's components.
    pub const ID_COMPONENTS: &str = "id_components";
    /// Stage 2, left by the resolver: `(message_id, profile_id)`.
    pub const ID_EVENT_PROFILES: &str = "id_event_profiles";
    /// Stage 2: the previous run's identities (for what changed).
    pub const PREV_IDENTITIES: &str = "prev_identities";
    /// Stage 2: the previous run's graph (an incremental run starts from it).
    pub const PREV_GRAPH: &str = "prev_graph";
    /// Stage 2: each event's profile, as later stages read it.
    pub const EVENT_PROFILES: &str = "event_profiles";
    /// Stage 2, a run extending the history: the message ids of the events this run read or
    /// made visible (see [`crate::run::stages::identity_affected`]).
    pub const ID_CHANGED: &str = "id_changed";
    /// Stage 2, the same: the changed events' occurrences as they are now.
    pub const ID_OCC_NEW: &str = "id_occ_new";
    /// Stage 2, the same: the previous run's published occurrences (with their day `dt`).
    pub const ID_OCC_PREV: &str = "id_occ_prev";
    /// Stage 2, the same: `(node, usable, dt)` of the changed events' previous occurrences.
    pub const ID_OCC_REPLACED: &str = "id_occ_replaced";
    /// Stage 2, the same: the identifiers the changed events carry (now or before).
    pub const ID_SEEDS: &str = "id_seeds";
    /// Stage 2, the same: every identifier resolved again.
    pub const ID_AFFECTED_NODES: &str = "id_affected_nodes";
    /// Stage 2, the same: every event resolved again.
    pub const ID_AFFECTED_MESSAGES: &str = "id_affected_messages";
    /// Stage 2, the same: the message ids of the previous events resolved again (of the
    /// previous components the changed events reach); dropped once counted.
    pub const ID_AFFECTED_REACHED: &str = "id_affected_reached";

    /// Stage 3: the profiles evaluated again when the others keep their values (see
    /// [`crate::run::touched`]).
    pub const TOUCHED: &str = "touched_profiles";
    /// Stage 3: every event with its profile, not kept (what edited definitions read when the
    /// others are evaluated for the touched profiles only).
    pub const ALL_EVENTS: &str = "all_profile_events";
    /// Stage 4b: the group calls with their profiles (when `profile_events` holds the touched
    /// profiles' events only).
    pub const GROUP_CALLS: &str = "group_calls_with_profiles";
    /// Stage 3: the identify calls this run made visible (for their custom trait kinds).
    pub const FRESH_CALLS: &str = "fresh_identify_calls";
    /// Stage 3: every event with its profile (of the touched profiles only, when the others
    /// keep their values).
    pub const PROFILE_EVENTS: &str = "profile_events";
    /// Stage 3: profiles with their traits.
    pub const PROFILES: &str = "cohort_profiles";
    /// Stage 3: which profile belongs to which account.
    pub const ACCOUNT_LINKS: &str = "account_links";
    /// Stage 3: the `group` calls, keyed by account.
    pub const ACCOUNT_CALLS: &str = "account_calls";
    /// Stage 3: accounts with their traits.
    pub const ACCOUNTS: &str = "cohort_accounts";

    /// Stage 5: the events any audience reads, with only the columns audiences use.
    pub const AUDIENCE_EVENTS: &str = "audience_events";
    /// Stage 5: the users in each audience.
    pub const AUDIENCE_USERS: &str = "cohort_audience_users";
    /// Stage 5: the accounts in each account audience.
    pub const AUDIENCE_ACCOUNTS: &str = "cohort_audience_accounts";
    /// Stage 5: every member now, with `entered_at`.
    pub const AUDIENCE_MEMBERSHIP: &str = "cohort_audience_membership";
    /// Stage 6: this run's entered / exited rows.
    pub const AUDIENCE_CHANGES_RUN: &str = "cohort_audience_changes_run";
    /// Stage 6: the published history of changes plus this run's.
    pub const AUDIENCE_CHANGES: &str = "cohort_audience_changes";

    /// A preview's users (`cohort preview`), in a session of its own.
    pub const PREVIEW_USERS: &str = "preview_users";
    /// A preview's accounts.
    pub const PREVIEW_ACCOUNTS: &str = "preview_accounts";

    /// The session table holding a SQL trait's merged rows.
    pub fn sql_trait(key: &str) -> String {
        format!("sqltrait_{key}")
    }

    /// The session table of the profiles a SQL trait starts, `(profile_id, id_type,
    /// id_value)`: kept only when a run is recorded for a script (a run keeps them in memory).
    pub fn sql_trait_started(key: &str) -> String {
        format!("sqltrait_{key}_started")
    }
}

/// Tables a run publishes (Delta tables under `<output>/<space>/`).
pub mod published {
    pub const EVENT_ERRORS: &str = "event_errors";
    pub const IDENTITIES: &str = "identities";
    pub const IDENTITY_VIOLATIONS: &str = "identity_violations";
    pub const IDENTITY_GRAPH: &str = "identity_graph";
    pub const PROFILE_MERGES: &str = "profile_merges";
    pub const PROFILES: &str = "profiles";
    pub const ACCOUNTS: &str = "accounts";
    pub const ACCOUNT_LINKS: &str = "account_links";
    pub const AUDIENCE_MEMBERSHIP: &str = "audience_membership";
    pub const AUDIENCE_CHANGES: &str = "audience_changes";
    pub const RECENT_EVENTS: &str = "recent_events";
    pub const RUNS: &str = "runs";
    /// The event history, with each event's profile, partitioned by day (a run's only).
    pub const EVENTS: &str = "events";
    /// The source files the history was read from (a run's only).
    pub const INGESTED_FILES: &str = "ingested_files";
    /// Every identifier occurrence of every event the identity graph was built from,
    /// partitioned by day (a run's only).
    pub const IDENTITY_OCCURRENCES: &str = "identity_occurrences";
    /// Each entry of repairs.yaml and what it did (a space with repairs, or that had some).
    pub const IDENTITY_REPAIRS: &str = "identity_repairs";
}

/// The columns of an event that `profile_events` (and `recent_events`) carry besides its
/// `profile_id`.
pub const EVENT_COLUMNS: [&str; 8] = [
    "message_id",
    "type",
    "event",
    "timestamp",
    "group_id",
    "properties",
    "traits",
    "context",
];

/// Tables a run publishes besides [`PUBLISHED_TABLES`]: its incremental state, which a script
/// (`cohort compile --script`, always a whole recompute) does not make.
pub const HISTORY_TABLES: [&str; 3] = [
    published::EVENTS,
    published::INGESTED_FILES,
    published::IDENTITY_OCCURRENCES,
];

/// Names of the tables a run publishes, in publish order.
pub const PUBLISHED_TABLES: [&str; 12] = [
    published::EVENT_ERRORS,
    published::IDENTITIES,
    published::IDENTITY_VIOLATIONS,
    published::IDENTITY_GRAPH,
    published::PROFILE_MERGES,
    published::PROFILES,
    published::ACCOUNTS,
    published::ACCOUNT_LINKS,
    published::AUDIENCE_MEMBERSHIP,
    published::AUDIENCE_CHANGES,
    published::RECENT_EVENTS,
    published::RUNS,
];

/// Tables the identity stage publishes, and the session table each one comes from.
pub const IDENTITY_TABLES: [(&str, &str); 3] = [
    (published::IDENTITIES, stage::ID_IDENTITIES),
    (published::IDENTITY_VIOLATIONS, stage::ID_VIOLATIONS),
    (published::IDENTITY_GRAPH, stage::ID_COMPONENTS),
];

/// Published tables that are a later stage's session table as it stands: (published, session).
pub const PUBLISHED_FROM_STAGES: [(&str, &str); 5] = [
    (published::PROFILES, stage::PROFILES),
    (published::ACCOUNTS, stage::ACCOUNTS),
    (published::ACCOUNT_LINKS, stage::ACCOUNT_LINKS),
    (published::AUDIENCE_MEMBERSHIP, stage::AUDIENCE_MEMBERSHIP),
    (published::AUDIENCE_CHANGES, stage::AUDIENCE_CHANGES),
];

/// Every published table that is a session table as it stands, identity's first, in publish
/// order: (published, session).
pub fn copied_tables() -> impl Iterator<Item = (&'static str, &'static str)> {
    IDENTITY_TABLES.into_iter().chain(PUBLISHED_FROM_STAGES)
}
