//! A whole space as one SQL script for another engine (`cohort compile --script`): the stage
//! plans a first run makes, in order, each unparsed into a `CREATE TABLE ... AS` statement of
//! the target dialect, the identity stage as the statements of [`super::sql_identity`], and
//! Cohort's own functions rewritten into the dialect's built-ins (see [`ScriptDialect`]).
//!
//! The script reads the sources as tables: an `events`-preset source `web` from `web_raw`, a
//! warehouse-preset source `web` from `web.tracks`, `web.identifies`, ... (the schema is the
//! source). It writes every stage table under the name a run gives it in its session (so
//! `events`, `profile_events`, `id_occurrences`, ...) and ends with the published tables
//! (`identities`, `profiles`, `audience_membership`, ...).

use datafusion::common::Result;
use datafusion::logical_expr::LogicalPlan;

use super::dialect::{ScriptDialect, plan_sql, prelude};
use super::unparse::SqlDialect;
use crate::plan::identity::IdType;

/// One step of a run, as the engine records it.
#[derive(Clone, Debug)]
pub enum Step {
    /// A stage table: `name` holds the rows of `plan`.
    Table { name: String, plan: LogicalPlan },
    /// The identity stage: `id_occurrences` holds the rows of `occurrences`; the stage leaves
    /// `id_identities`, `id_violations`, `id_event_profiles` and `id_components`.
    Identity {
        occurrences: LogicalPlan,
        types: Vec<IdType>,
    },
    /// A published table that is a stage table under another name.
    Published { name: String, from: String },
}

/// The suffix of an `events`-preset source's table in the script: `web` reads `web_raw`.
pub const RAW_SUFFIX: &str = "_raw";

/// Where the script's header says it came from.
pub struct ScriptHeader<'a> {
    pub space: &'a str,
    pub as_of: &'a str,
    /// The names of the source tables the script reads, as written in the script.
    pub sources: Vec<String>,
}

/// The script for `steps` in `dialect`. `raw` names the plans' source scans (as the engine
/// names them: the source, or `source.table`) that must be read from another table.
pub fn render(
    steps: &[Step],
    dialect: SqlDialect,
    header: &ScriptHeader<'_>,
    raw: &[(String, String)],
) -> Result<String> {
    render_in(steps, dialect.script_or_err()?, header, raw)
}

/// [`render`] in `d`.
pub fn render_in(
    steps: &[Step],
    d: &dyn ScriptDialect,
    header: &ScriptHeader<'_>,
    raw: &[(String, String)],
) -> Result<String> {
    use std::fmt::Write;
    let mut out = String::new();
    let _ = writeln!(
        out,
        "-- Cohort space `{}` as one {} script: a first run as of {}.\n\
         -- Reads: {}.\n\
         -- Writes every stage table, then the published tables. Run it as a whole, in order.\n",
        header.space,
        d.selector().as_str(),
        header.as_of,
        header.sources.join(", "),
    );
    for s in prelude(d) {
        let _ = writeln!(out, "{s};\n");
    }
    for s in d.identity_functions() {
        let _ = writeln!(out, "{};\n", s.trim_end().trim_end_matches(';'));
    }
    let mut tables: Vec<(&str, &LogicalPlan)> = Vec::new();
    for step in steps {
        match step {
            Step::Table { name, plan } => {
                let sql = plan_sql(plan, d, raw, &tables)?;
                tables.push((name, plan));
                create(&mut out, d, name, &sql);
            }
            Step::Identity { occurrences, types } => {
                let sql = plan_sql(occurrences, d, raw, &tables)?;
                let _ = writeln!(out, "-- The identity stage.");
                create(&mut out, d, "id_occurrences", &sql);
                for s in super::sql_identity::steps(d, types)? {
                    let _ = writeln!(out, "{};\n", s.trim_end().trim_end_matches(';'));
                }
            }
            Step::Published { name, from } => {
                if name != from {
                    let sql = format!("SELECT * FROM {}", d.quote_ident(from));
                    create(&mut out, d, name, &sql);
                }
            }
        }
    }
    Ok(out)
}

/// `DROP TABLE IF EXISTS name; CREATE TABLE name AS sql;` in `d`.
fn create(out: &mut String, d: &dyn ScriptDialect, name: &str, sql: &str) {
    use std::fmt::Write;
    let _ = writeln!(
        out,
        "{};\n{};\n",
        d.drop_table(name),
        d.create_table_as(name, sql)
    );
}
