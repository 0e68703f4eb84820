//! Spark SQL (Spark 4) and Databricks SQL as a [`ScriptDialect`]: identifiers in backticks, JSON through
//! `get_json_object` and VARIANT, the helpers as temporary SQL functions, first and last values
//! as `min_by` / `max_by`, and the identity stage's loops in [`super::spark_identity`]. Spark's
//! default string order is binary (UTF-8 bytes), so text needs nothing to order byte-wise.
//!
//! Two things differ in Spark's text itself, and [`ScriptDialect::finish`] repairs them after
//! every rewrite: a double-quoted name is a string there (names go in backticks), and a
//! backslash in a string literal starts an escape (each is doubled).

use super::ScriptDialect;
use super::calls::sql_string;
use super::text::{TextStyle, engine_text};
use crate::identity::replay::Limit;
use crate::script::unparse::SqlDialect;

/// Spark SQL (`--dialect spark`), or Databricks SQL (`--dialect databricks`, `DATABRICKS`):
/// the same SQL, set up by the session settings each one takes.
pub struct Spark<const DATABRICKS: bool>;

impl<const DATABRICKS: bool> ScriptDialect for Spark<DATABRICKS> {
    fn selector(&self) -> SqlDialect {
        match DATABRICKS {
            false => SqlDialect::Spark,
            true => SqlDialect::Databricks,
        }
    }

    fn prelude_text(&self) -> &'static str {
        match DATABRICKS {
            false => concat!(
                include_str!("../../../queries/script/prelude_spark.sql"),
                "\n;\n",
                include_str!("../../../queries/script/helpers_spark.sql")
            ),
            true => concat!(
                include_str!("../../../queries/script/prelude_databricks.sql"),
                "\n;\n",
                include_str!("../../../queries/script/helpers_spark.sql")
            ),
        }
    }

    fn quote_ident(&self, name: &str) -> String {
        format!("`{}`", name.replace('`', "``"))
    }

    fn text_type(&self) -> &'static str {
        "STRING"
    }

    fn quote_str(&self, s: &str) -> String {
        sql_string(&s.replace('\\', "\\\\"))
    }

    fn json_text_at(&self, json: &str, keys: &[String]) -> String {
        let path: String = keys
            .iter()
            .map(|k| format!("['{k}']"))
            .collect::<Vec<_>>()
            .concat();
        format!(
            "get_json_object({json}, {})",
            sql_string(&format!("${path}"))
        )
    }

    /// `json_object_keys` is null for anything but a JSON object.
    fn json_valid(&self, args: &[String]) -> Option<String> {
        Some(format!(
            "({0} IS NULL OR json_object_keys({0}) IS NOT NULL)",
            args[0]
        ))
    }

    /// `to_json` of a struct leaves out the fields that are null.
    fn json_object(&self, args: &[String]) -> String {
        format!("to_json(named_struct({}))", args.join(", "))
    }

    fn regexp_like(&self, text: &str, pattern: &str) -> String {
        format!("regexp_like({text}, {pattern})")
    }

    fn nul_position(&self, text: &str) -> String {
        format!("instr({text}, chr(0))")
    }

    /// `sort_array` puts nulls first, as DataFusion's `array_sort` does.
    fn array_sort(&self, args: &[String]) -> String {
        format!("sort_array({})", args[0])
    }

    /// Spark's `array_agg` (`collect_list`) is an empty array over no rows.
    fn array_agg(&self, call: &str) -> Option<String> {
        Some(format!("CASE WHEN size({call}) > 0 THEN {call} END"))
    }

    /// `min_by` / `max_by` over the order as a struct (Spark has no ordered aggregate); the
    /// keys are never null where Cohort orders by them.
    fn first_by(&self, value: &str, by: &[(String, bool)], filter: Option<&str>) -> String {
        let keys = by
            .iter()
            .enumerate()
            .map(|(i, (e, _))| format!("'k{i}', {e}"))
            .collect::<Vec<_>>()
            .join(", ");
        let f = if by.iter().all(|(_, desc)| *desc) {
            "max_by"
        } else {
            "min_by"
        };
        let filter = filter
            .map(|c| format!(" FILTER (WHERE {c})"))
            .unwrap_or_default();
        format!("{f}({value}, named_struct({keys})){filter}")
    }

    fn finish(&self, sql: String) -> String {
        engine_text(&sql, TextStyle::SPARK)
    }

    fn identity_functions(&self) -> Vec<String> {
        super::spark_identity::functions()
    }

    fn components(&self) -> Vec<String> {
        vec![super::spark_identity::components()]
    }

    fn replay(&self, input: &str, limits: &[Limit]) -> Vec<String> {
        super::spark_identity::replay(input, limits, &self.epoch_micros("o.`timestamp`"))
    }

    fn epoch_micros(&self, ts: &str) -> String {
        format!("unix_micros({ts})")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_and_last_are_min_by_and_max_by() {
        let by = |desc| vec![("ts".to_string(), desc), ("id".to_string(), desc)];
        assert_eq!(
            Spark::<false>.first_by("v", &by(false), None),
            "min_by(v, named_struct('k0', ts, 'k1', id))"
        );
        assert_eq!(
            Spark::<false>.first_by("v", &by(true), Some("x")),
            "max_by(v, named_struct('k0', ts, 'k1', id)) FILTER (WHERE x)"
        );
    }
}
