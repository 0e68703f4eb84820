//! What differs between the engines a script is written for, behind one [`ScriptDialect`]
//! trait: quoting, JSON paths, the functions DataFusion has and the engine lacks, the helper
//! functions a script defines first, and the identity stage's iterative steps (the only ones
//! with no portable SQL). [`postgres`], [`duckdb`], [`spark`], [`snowflake`] and [`bigquery`]
//! implement it; another engine is one more implementation, handed out by
//! [`SqlDialect::script`].
//!
//! Around the trait sit the dialect-free passes: [`plan_sql`] writes a run's plan in an
//! engine's SQL ([`plans`] rewrites the plan first, [`aliases`] repairs the Unparser's output,
//! [`calls`] rewrites the calls), and [`query_sql`] writes a DataFusion SQL text (the identity
//! stage's `queries/identity/*.sql`) the same way.

mod aliases;
pub mod bigquery;
mod calls;
pub mod duckdb;
mod plans;
pub mod postgres;
pub mod snowflake;
pub mod spark;
mod spark_identity;
mod text;
mod warehouse;

use datafusion::common::{Result, plan_err};
use datafusion::logical_expr::LogicalPlan;
use datafusion::sql::sqlparser::ast;

use super::unparse::SqlDialect;
use crate::identity::replay::Limit;

/// One target engine of `cohort compile --script`.
pub trait ScriptDialect {
    /// The user-facing name (`--dialect`) this implements; the Unparser's dialect follows it.
    fn selector(&self) -> SqlDialect;

    /// The statements of `queries/script/prelude_<engine>.sql`, separated by a line holding
    /// only `;`: the helpers the rewritten calls use.
    fn prelude_text(&self) -> &'static str;

    /// A table or column name, quoted.
    fn quote_ident(&self, name: &str) -> String {
        format!("\"{}\"", name.replace('"', "\"\""))
    }

    /// The type of a text column in `CREATE TABLE`.
    fn text_type(&self) -> &'static str {
        "text"
    }

    /// A string literal.
    fn quote_str(&self, s: &str) -> String {
        calls::sql_string(s)
    }

    /// `DROP TABLE IF EXISTS name`.
    fn drop_table(&self, name: &str) -> String {
        format!("DROP TABLE IF EXISTS {}", self.quote_ident(name))
    }

    /// `CREATE TABLE name AS query`.
    fn create_table_as(&self, name: &str, query: &str) -> String {
        format!(
            "CREATE TABLE {} AS\n{}",
            self.quote_ident(name),
            query.trim_end()
        )
    }

    /// A text expression ordered byte-wise, as DataFusion orders strings.
    fn byte_order(&self, text: ast::Expr) -> ast::Expr {
        text
    }

    /// The JSON text `json` (an expression) at the key sequence `keys`, as text with strings
    /// unquoted; null when absent.
    fn json_text_at(&self, json: &str, keys: &[String]) -> String;

    /// `TRY_CAST(expr AS data_type)` when the engine has no such cast.
    fn try_cast(&self, _expr: &ast::Expr, _data_type: &ast::DataType) -> Option<String> {
        None
    }

    /// `cohort_json_valid(args)`: true for null or a JSON object; `None` when the prelude
    /// defines the function.
    fn json_valid(&self, args: &[String]) -> Option<String>;

    /// `cohort_json_object(k1, v1, ...)`: a JSON object as text, without the null members.
    fn json_object(&self, args: &[String]) -> String;

    /// `regexp_like(text, pattern)`.
    fn regexp_like(&self, text: &str, pattern: &str) -> String;

    /// `strpos(text, NUL)`: the message-id check looks for a NUL character, which no SQL text
    /// may carry.
    fn nul_position(&self, text: &str) -> String;

    /// `btrim(args)` when the engine spells it otherwise.
    fn btrim(&self, _args: &[String]) -> Option<String> {
        None
    }

    /// `array_sort(args)`.
    fn array_sort(&self, args: &[String]) -> String;

    /// `array_agg(...)` as written (`call`, its `FILTER` included) when the engine's differs
    /// from DataFusion's, which is null over no rows.
    fn array_agg(&self, _call: &str) -> Option<String> {
        None
    }

    /// Whether the engine takes an aggregate's `FILTER (WHERE ...)` clause. Where it does
    /// not, the condition moves into the arguments (`count(CASE WHEN c THEN x END)`): every
    /// aggregate a plan filters skips nulls, but the first and last values, which get the
    /// condition in [`ScriptDialect::first_by`].
    fn aggregate_filter(&self) -> bool {
        true
    }

    /// The aggregate giving `value` of the first row in the order `by` (expression,
    /// descending), among the rows where `filter` (a condition) holds.
    fn first_by(&self, value: &str, by: &[(String, bool)], filter: Option<&str>) -> String {
        let by = order_list(by);
        let filter = filter
            .map(|c| format!(" FILTER (WHERE {c})"))
            .unwrap_or_default();
        format!("(array_agg({value} ORDER BY {by}){filter})[1]")
    }

    /// The aggregate collecting the non-null `value`s for a helper that takes an array
    /// (`cohort_mode_pick`, `cohort_sorted_distinct`); the nulls may stay in.
    fn collect_values(&self, value: &str) -> String {
        format!("array_agg({value})")
    }

    /// Whether a set operation must say `DISTINCT` (GoogleSQL takes no bare `UNION`).
    fn explicit_distinct(&self) -> bool {
        false
    }

    /// The engine's name for a DataFusion function it spells otherwise (`bool_or`, ...).
    fn rename(&self, _name: &str) -> Option<&'static str> {
        None
    }

    /// The last pass over a statement's text, once every rewrite is done.
    fn finish(&self, sql: String) -> String {
        sql
    }

    /// Statements defining the functions the identity steps (and the occurrence plan's
    /// `cohort_id_node`) call: see [`crate::script::sql_identity::functions`].
    fn identity_functions(&self) -> Vec<String>;

    /// Statements that label every identifier of `id_nodes` with the smallest node of its
    /// connected component over `id_adjacency (node, nbr)`: `id_components (node, component)`.
    fn components(&self) -> Vec<String>;

    /// Statements that replay Segment's sequential rule over the events of the violating
    /// components. `input` is the query of those events' identifiers (`component, message_id,
    /// timestamp, node, rank, id_type, id_value`), `limits` each rank's limit (a window in
    /// microseconds for a per-period one: only the values added less than the window before
    /// the event count). They leave `id_replay_events`, `id_replayed (node, rank,
    /// profile_key)` and `id_replay_dropped (message_id, timestamp, node, broken)`: each
    /// identifier an event dropped and the rank whose limit keeping it would have broken.
    fn replay(&self, input: &str, limits: &[Limit]) -> Vec<String>;

    /// A timestamp as whole microseconds since 1970-01-01 UTC (a BIGINT; a FLOAT64 where
    /// the engine passes no INT64 to JavaScript is the caller's cast).
    fn epoch_micros(&self, ts: &str) -> String;
}

/// Each rank's limit, then each rank's window in microseconds (`ever` for a limit over all
/// time), as the elements of two array literals; each number is followed by `suffix`.
pub(super) fn limit_lists(limits: &[Limit], suffix: &str, ever: &str) -> (String, String) {
    let list = |f: &dyn Fn(&Limit) -> String| limits.iter().map(f).collect::<Vec<_>>().join(", ");
    (
        list(&|l| format!("{}{suffix}", l.max)),
        list(&|l| {
            l.window
                .map_or(ever.to_string(), |w| format!("{w}{suffix}"))
        }),
    )
}

impl SqlDialect {
    /// The engine this dialect writes scripts for, if `compile --script` supports it.
    pub fn script(self) -> Option<&'static dyn ScriptDialect> {
        match self {
            SqlDialect::Postgres => Some(&postgres::Postgres),
            SqlDialect::DuckDb => Some(&duckdb::DuckDb),
            SqlDialect::Spark => Some(&spark::Spark::<false>),
            SqlDialect::Databricks => Some(&spark::Spark::<true>),
            SqlDialect::Snowflake => Some(&snowflake::Snowflake),
            SqlDialect::BigQuery => Some(&bigquery::BigQuery),
            _ => None,
        }
    }

    /// [`SqlDialect::script`], or the error a script in another dialect gets.
    pub fn script_or_err(self) -> Result<&'static dyn ScriptDialect> {
        match self.script() {
            Some(d) => Ok(d),
            None => plan_err!(
                "the identity stage has no SQL script for dialect {} (only postgres, duckdb, spark, databricks, snowflake and bigquery)",
                self.as_str()
            ),
        }
    }
}

/// An `ORDER BY` list: each (expression, descending) as `e ASC` or `e DESC`.
fn order_list(by: &[(String, bool)]) -> String {
    by.iter()
        .map(|(e, desc)| format!("{e} {}", if *desc { "DESC" } else { "ASC" }))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Statements that define the helpers the rewritten SQL calls, run first.
pub fn prelude(d: &dyn ScriptDialect) -> Vec<String> {
    d.prelude_text()
        .split("\n;\n")
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .collect()
}

/// `plan` as SQL in `d`; scans named like the first of a `raw` pair read the second, and the
/// earlier stage tables `tables` (name, plan) are read by name.
pub fn plan_sql(
    plan: &LogicalPlan,
    d: &dyn ScriptDialect,
    raw: &[(String, String)],
    tables: &[(&str, &LogicalPlan)],
) -> Result<String> {
    use plans::{
        nested_joins_as_subqueries, no_empty_relations, no_values, opaque_views, raw_scans,
    };
    let plan = nested_joins_as_subqueries(no_empty_relations(no_values(opaque_views(
        plan.clone(),
        tables,
    )?)?)?)?;
    tracing::debug!("script plan:\n{}", plan.display_indent());
    let plan = raw_scans(plan, raw, tables)?;
    let mut stmt = super::unparse::plan_statement(&plan, d.selector())?;
    aliases::alias_derived_tables(&mut stmt);
    calls::rewrite_functions(&mut stmt, d);
    if d.explicit_distinct() {
        calls::explicit_distinct(&mut stmt);
    }
    Ok(d.finish(stmt.to_string()))
}

/// A query written in DataFusion's SQL (one `SELECT`/`WITH`, `--` comments allowed) as a
/// query of `d`: text ordered byte-wise, DataFusion's functions rewritten. The result is
/// pretty-printed, without the comments.
pub fn query_sql(sql: &str, d: &dyn ScriptDialect) -> Result<String> {
    use datafusion::sql::sqlparser::{dialect::GenericDialect, parser::Parser};
    let mut parsed = Parser::parse_sql(&GenericDialect {}, sql)
        .map_err(|e| datafusion::error::DataFusionError::SQL(Box::new(e), None))?;
    let (Some(stmt @ ast::Statement::Query(_)), None) = (parsed.pop(), parsed.pop()) else {
        return plan_err!("not one query: {sql}");
    };
    let mut stmt = stmt;
    calls::order_text_bytewise(&mut stmt, d);
    calls::rewrite_functions(&mut stmt, d);
    if d.explicit_distinct() {
        calls::explicit_distinct(&mut stmt);
    }
    Ok(d.finish(format!("{stmt:#}")))
}
