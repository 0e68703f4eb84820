//! The run record: what a run did, as one row of the `runs` table and as a report for the CLI.

use std::collections::BTreeMap;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use datafusion::arrow::array::{
    ArrayRef, Int64Array, RecordBatch, StringArray, TimestampMicrosecondArray,
};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use serde::Serialize;

/// How a run stands, as the `runs` table spells it (`running`, `succeeded`, `failed`,
/// `abandoned`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum RunStatus {
    /// Still working.
    #[default]
    Running,
    Succeeded,
    Failed,
    /// Died without recording how it ended (written by the next run).
    Abandoned,
}

impl RunStatus {
    /// The status as the `runs` table holds it.
    pub fn as_str(self) -> &'static str {
        match self {
            RunStatus::Running => "running",
            RunStatus::Succeeded => "succeeded",
            RunStatus::Failed => "failed",
            RunStatus::Abandoned => "abandoned",
        }
    }
}

impl std::fmt::Display for RunStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl PartialEq<&str> for RunStatus {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

/// How the events stage read the sources: only new files into the previous history, or
/// every file (and why).
#[derive(Clone, Debug, Default, Serialize)]
pub struct IngestStats {
    /// `incremental` (new files added to the previous history) or `full`.
    pub mode: String,
    /// Why the run read every file, when it did.
    pub reason: Option<String>,
    /// Files read this run.
    pub new_files: i64,
    /// Files not read again: the previous run's history holds their rows.
    pub known_files: i64,
}

/// What one run did.
#[derive(Clone, Debug, Default, Serialize)]
pub struct RunRecord {
    pub run_id: String,
    pub space: String,
    /// `running` (while it works), then `succeeded` or `failed`; `abandoned` for a run
    /// that died without recording how it ended (written by the next run).
    pub status: RunStatus,
    pub as_of: DateTime<Utc>,
    pub started_at: DateTime<Utc>,
    pub finished_at: DateTime<Utc>,
    /// Stage name -> milliseconds, in run order.
    pub stage_timings: Vec<(String, u64)>,
    /// Rows read from all sources (good, bad, duplicate, after as-of).
    pub rows_read: i64,
    /// Distinct good events up to as_of: what later stages see.
    pub events: i64,
    /// Extra copies of a message id, dropped.
    pub duplicates: i64,
    /// Rows set aside with a reason (see `event_errors`).
    pub bad_events: i64,
    /// Good rows whose timestamp is after as_of, left out of this run.
    pub after_as_of: i64,
    /// "source/type" -> distinct good events.
    pub events_by_source_type: BTreeMap<String, i64>,
    /// reason -> rows.
    pub errors_by_reason: BTreeMap<String, i64>,
    /// Window the run read, in days before as_of (None: all history).
    pub window_days: Option<i64>,
    /// Hash of every definition file, and per file.
    pub definitions_hash: String,
    pub definitions: BTreeMap<String, String>,
    /// What the identity stage did (mode, rounds, largest components, ...).
    pub identity: Option<crate::identity::IdentityStats>,
    /// What the profiles and traits stages made (counts, trait columns and their types).
    pub profiles: Option<super::profiles::ProfileStats>,
    /// What the audience stage made: members, entered and exited per audience.
    pub audiences: Option<super::audiences::AudienceStats>,
    /// Why the run failed, when it did.
    pub message: Option<String>,
    /// What started the run (`schedule: <due definitions>`, `manual: cli`, ...) and which
    /// attempt it was, when known.
    pub trigger: Option<String>,
    /// Source files that could not be read and were set aside (`--skip-bad-files`).
    pub skipped_files: Vec<super::files::SkippedFile>,
    /// How the sources were read (empty for a script, which reads every file).
    pub ingest: IngestStats,
}

fn ts_field(name: &str) -> Field {
    Field::new(
        name,
        DataType::Timestamp(TimeUnit::Microsecond, Some(Arc::from("UTC"))),
        false,
    )
}

/// The schema of the `runs` table.
pub fn runs_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("run_id", DataType::Utf8, false),
        Field::new("space", DataType::Utf8, false),
        Field::new("status", DataType::Utf8, false),
        ts_field("as_of"),
        ts_field("started_at"),
        ts_field("finished_at"),
        Field::new("duration_ms", DataType::Int64, false),
        Field::new("stage_timings", DataType::Utf8, false),
        Field::new("rows_read", DataType::Int64, false),
        Field::new("events", DataType::Int64, false),
        Field::new("duplicates", DataType::Int64, false),
        Field::new("bad_events", DataType::Int64, false),
        Field::new("after_as_of", DataType::Int64, false),
        Field::new("events_by_source_type", DataType::Utf8, false),
        Field::new("errors_by_reason", DataType::Utf8, false),
        Field::new("window_days", DataType::Int64, true),
        Field::new("definitions_hash", DataType::Utf8, false),
        Field::new("definitions", DataType::Utf8, false),
        Field::new("message", DataType::Utf8, true),
        Field::new("identity", DataType::Utf8, true),
        Field::new("profiles", DataType::Utf8, true),
        Field::new("audiences", DataType::Utf8, true),
        Field::new("trigger", DataType::Utf8, true),
        // JSON list of {source, table, file, reason}; null when no file was set aside.
        Field::new("skipped_files", DataType::Utf8, true),
        // JSON {mode, reason, new_files, known_files}: how the sources were read.
        Field::new("ingest", DataType::Utf8, true),
    ]))
}

fn micros(t: DateTime<Utc>) -> ArrayRef {
    Arc::new(TimestampMicrosecondArray::from(vec![t.timestamp_micros()]).with_timezone("UTC"))
}

fn text(s: &str) -> ArrayRef {
    Arc::new(StringArray::from(vec![s]))
}

fn int(v: i64) -> ArrayRef {
    Arc::new(Int64Array::from(vec![v]))
}

impl RunRecord {
    /// This record as a one-row batch of [`runs_schema`].
    pub fn to_batch(&self) -> RecordBatch {
        let timings: serde_json::Map<String, serde_json::Value> = self
            .stage_timings
            .iter()
            .map(|(k, v)| (k.clone(), (*v).into()))
            .collect();
        let json = |v: &BTreeMap<String, i64>| serde_json::to_string(v).unwrap_or_default();
        let cols: Vec<ArrayRef> = vec![
            text(&self.run_id),
            text(&self.space),
            text(self.status.as_str()),
            micros(self.as_of),
            micros(self.started_at),
            micros(self.finished_at),
            int((self.finished_at - self.started_at).num_milliseconds()),
            text(&serde_json::Value::Object(timings).to_string()),
            int(self.rows_read),
            int(self.events),
            int(self.duplicates),
            int(self.bad_events),
            int(self.after_as_of),
            text(&json(&self.events_by_source_type)),
            text(&json(&self.errors_by_reason)),
            Arc::new(Int64Array::from(vec![self.window_days])),
            text(&self.definitions_hash),
            text(&serde_json::to_string(&self.definitions).unwrap_or_default()),
            Arc::new(StringArray::from(vec![self.message.clone()])),
            Arc::new(StringArray::from(vec![
                self.identity
                    .as_ref()
                    .map(|i| serde_json::to_string(i).unwrap_or_default()),
            ])),
            Arc::new(StringArray::from(vec![
                self.profiles
                    .as_ref()
                    .map(|p| serde_json::to_string(p).unwrap_or_default()),
            ])),
            Arc::new(StringArray::from(vec![
                self.audiences
                    .as_ref()
                    .map(|a| serde_json::to_string(a).unwrap_or_default()),
            ])),
            Arc::new(StringArray::from(vec![self.trigger.clone()])),
            Arc::new(StringArray::from(vec![
                (!self.skipped_files.is_empty())
                    .then(|| serde_json::to_string(&self.skipped_files).unwrap_or_default()),
            ])),
            Arc::new(StringArray::from(vec![
                (!self.ingest.mode.is_empty())
                    .then(|| serde_json::to_string(&self.ingest).unwrap_or_default()),
            ])),
        ];
        RecordBatch::try_new(runs_schema(), cols).expect("runs row matches its schema")
    }
}

/// FNV-1a, 64 bits: a stable fingerprint for definition files (not for security).
pub fn fingerprint(bytes: &[u8]) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in bytes {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    format!("{h:016x}")
}

/// The definition files (paths) whose fingerprints differ between `a` and `b`, added and
/// removed ones included.
pub fn changed_files(
    a: &BTreeMap<String, String>,
    b: &BTreeMap<String, String>,
) -> std::collections::BTreeSet<String> {
    a.keys()
        .chain(b.keys())
        .filter(|k| a.get(*k) != b.get(*k))
        .cloned()
        .collect()
}

/// Fingerprints of every definition file of a space, and of all of them together.
pub fn definitions_fingerprint(root: &std::path::Path) -> (String, BTreeMap<String, String>) {
    let mut files = BTreeMap::new();
    let mut visit = |rel: &str| {
        let p = root.join(rel);
        if let Ok(bytes) = std::fs::read(&p) {
            files.insert(rel.to_string(), fingerprint(&bytes));
        }
    };
    visit("space.yaml");
    visit("identity.yaml");
    for dir in ["traits", "queries", "audiences"] {
        if let Ok(rd) = std::fs::read_dir(root.join(dir)) {
            let mut names: Vec<String> = rd
                .filter_map(|e| e.ok())
                .filter(|e| e.path().is_file())
                .map(|e| e.file_name().to_string_lossy().to_string())
                .collect();
            names.sort();
            for n in names {
                visit(&format!("{dir}/{n}"));
            }
        }
    }
    let all: String = files.iter().map(|(k, v)| format!("{k}={v};")).collect();
    (fingerprint(all.as_bytes()), files)
}
