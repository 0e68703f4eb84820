//! BigQuery (GoogleSQL) as a [`ScriptDialect`]: one multi-statement query, names in
//! backticks, JSON through `JSON_VALUE` / `JSON_QUERY`, first and last values as a one-element
//! `ARRAY_AGG` of a struct (a struct keeps a null value, which an array may not hold), nulls
//! left out of the arrays the helpers take, aggregate filters folded into the arguments
//! (GoogleSQL has no `FILTER` clause), `SAFE_CAST` for `TRY_CAST`, the helpers and the
//! identity arithmetic as JavaScript functions ([`super::warehouse`]), and the label
//! propagation as a `WHILE` loop in a `BEGIN ... END` block. Strings compare by code point,
//! which is their UTF-8 byte order.

use datafusion::sql::sqlparser::ast;

use super::ScriptDialect;
use super::calls::sql_string;
use super::limit_lists;
use super::text::{TextStyle, engine_text};
use super::warehouse::{
    CHANGED_FROM, COMPONENTS_DOC, FUNCTIONS, Kind, REPLAY_DOC, components_round, components_swap,
    indented,
};
use crate::identity::replay::Limit;
use crate::script::unparse::SqlDialect;

/// BigQuery (`--dialect bigquery`).
pub struct BigQuery;

/// GoogleSQL's type of a JavaScript function's argument or result (no INT64 crosses into
/// JavaScript: small numbers go as FLOAT64, node codes as text).
fn js_type(k: Kind) -> &'static str {
    match k {
        Kind::Text => "STRING",
        Kind::Float => "FLOAT64",
        Kind::TextArray => "ARRAY<STRING>",
        Kind::Events => {
            "ARRAY<STRUCT<seq FLOAT64, m STRING, us FLOAT64, ids ARRAY<STRUCT<n STRING, t FLOAT64>>>>"
        }
        Kind::Limits => "ARRAY<FLOAT64>",
        Kind::State => {
            "STRUCT<owner ARRAY<STRUCT<n STRING, t FLOAT64, p STRING>>, \
             dropped ARRAY<STRUCT<seq FLOAT64, m STRING, n STRING, broken FLOAT64>>>"
        }
    }
}

impl ScriptDialect for BigQuery {
    fn selector(&self) -> SqlDialect {
        SqlDialect::BigQuery
    }

    fn prelude_text(&self) -> &'static str {
        include_str!("../../../queries/script/prelude_bigquery.sql")
    }

    fn quote_ident(&self, name: &str) -> String {
        format!("`{}`", name.replace('`', "\\`"))
    }

    fn text_type(&self) -> &'static str {
        "STRING"
    }

    /// A GoogleSQL string escapes a quote and a backslash with a backslash.
    fn quote_str(&self, s: &str) -> String {
        format!("'{}'", s.replace('\\', "\\\\").replace('\'', "\\'"))
    }

    /// A string member's text, else an object's or array's JSON text; null for a JSON null.
    fn json_text_at(&self, json: &str, keys: &[String]) -> String {
        let path: String = keys
            .iter()
            .map(|k| format!(".\"{}\"", k.replace('"', "\\\"")))
            .collect();
        // The statement's last pass escapes the backslashes and quotes (see `finish`).
        let path = sql_string(&format!("${path}"));
        format!("coalesce(JSON_VALUE({json}, {path}), nullif(JSON_QUERY({json}, {path}), 'null'))")
    }

    fn try_cast(&self, expr: &ast::Expr, data_type: &ast::DataType) -> Option<String> {
        Some(format!("SAFE_CAST({expr} AS {data_type})"))
    }

    fn json_valid(&self, args: &[String]) -> Option<String> {
        Some(format!(
            "({0} IS NULL OR coalesce(JSON_TYPE(SAFE.PARSE_JSON({0})) = 'object', false))",
            args[0]
        ))
    }

    /// The members as text in argument order, the null ones left out (`ARRAY_TO_STRING`
    /// skips null elements).
    fn json_object(&self, args: &[String]) -> String {
        let members: Vec<String> = args
            .chunks(2)
            .map(|kv| {
                format!(
                    "IF({1} IS NULL, NULL, CONCAT('\"', {0}, '\":', TO_JSON_STRING({1})))",
                    kv[0], kv[1]
                )
            })
            .collect();
        format!(
            "CONCAT('{{', ARRAY_TO_STRING([{}], ','), '}}')",
            members.join(", ")
        )
    }

    fn regexp_like(&self, text: &str, pattern: &str) -> String {
        format!("REGEXP_CONTAINS({text}, {pattern})")
    }

    fn nul_position(&self, text: &str) -> String {
        format!("STRPOS({text}, CODE_POINTS_TO_STRING([0]))")
    }

    fn btrim(&self, args: &[String]) -> Option<String> {
        Some(format!("TRIM({})", args.join(", ")))
    }

    fn array_sort(&self, args: &[String]) -> String {
        format!("cohort_array_sort({})", args[0])
    }

    /// An array may hold no null in GoogleSQL; `ARRAY_AGG` is null over no rows already.
    fn array_agg(&self, call: &str) -> Option<String> {
        let open = call.strip_suffix(')')?;
        Some(format!("{open} IGNORE NULLS)"))
    }

    fn collect_values(&self, value: &str) -> String {
        format!("ARRAY_AGG({value} IGNORE NULLS)")
    }

    fn aggregate_filter(&self) -> bool {
        false
    }

    fn explicit_distinct(&self) -> bool {
        true
    }

    /// The first of the rows in order, as a struct (which holds a null value); rows outside
    /// `filter` become null structs, which `IGNORE NULLS` skips.
    fn first_by(&self, value: &str, by: &[(String, bool)], filter: Option<&str>) -> String {
        let by = super::order_list(by);
        let row = match filter {
            Some(c) => format!("IF({c}, STRUCT({value} AS v), NULL) IGNORE NULLS"),
            None => format!("STRUCT({value} AS v)"),
        };
        format!("ARRAY_AGG({row} ORDER BY {by} LIMIT 1)[SAFE_OFFSET(0)].v")
    }

    fn rename(&self, name: &str) -> Option<&'static str> {
        match name {
            "bool_or" => Some("LOGICAL_OR"),
            "bool_and" => Some("LOGICAL_AND"),
            "character_length" => Some("CHAR_LENGTH"),
            _ => None,
        }
    }

    fn finish(&self, sql: String) -> String {
        engine_text(&sql, TextStyle::BIGQUERY)
    }

    fn identity_functions(&self) -> Vec<String> {
        let mut out: Vec<String> = FUNCTIONS
            .iter()
            .map(|f| {
                format!(
                    "{}\nLANGUAGE js\nAS r\"\"\"\n{}\n\"\"\"",
                    f.header("TEMP FUNCTION", js_type),
                    f.body(str::to_string)
                )
            })
            .collect();
        out.push(
            "-- The node code of an identifier (see cohort_id_node_text), as an INT64.\n\
             CREATE TEMP FUNCTION cohort_id_node(id_type STRING, id_value STRING)\n\
             RETURNS INT64\n\
             AS (CAST(cohort_id_node_text(id_type, id_value) AS INT64))"
                .into(),
        );
        out.push(
            "-- A new profile's id (see cohort_id_profile_text).\n\
             CREATE TEMP FUNCTION cohort_id_profile(node INT64)\n\
             RETURNS STRING\n\
             AS (cohort_id_profile_text(CAST(node AS STRING)))"
                .into(),
        );
        out
    }

    fn components(&self) -> Vec<String> {
        vec![format!(
            "{COMPONENTS_DOC}BEGIN\n\
             \x20 DECLARE changed INT64 DEFAULT 1;\n\
             \x20 DROP TABLE IF EXISTS id_components;\n\
             \x20 CREATE TABLE id_components AS SELECT node, node AS component FROM id_nodes;\n\
             \x20 WHILE changed > 0 DO\n\
             {}\
             \x20   SET changed = (\n\
             \x20     SELECT count(*)\n\
             {});\n\
             {}\
             \x20 END WHILE;\n\
             END",
            components_round("    "),
            indented(CHANGED_FROM, "      ").trim_end(),
            components_swap("    "),
        )]
    }

    fn epoch_micros(&self, ts: &str) -> String {
        format!("UNIX_MICROS({ts})")
    }

    fn replay(&self, input: &str, limits: &[Limit]) -> Vec<String> {
        // The JavaScript takes 0 for a limit over all time.
        let (max, windows) = limit_lists(limits, "", "0");
        let us = self.epoch_micros("o.`timestamp`");
        vec![
            format!(
                "-- The events of violating components, numbered in the order the sequential rule takes\n\
                 -- them, (timestamp, message_id), each with its time in microseconds (a FLOAT64,\n\
                 -- exact below 2^53) and its identifiers by rank, then value.\n\
                 CREATE TABLE id_replay_events AS\n\
                 SELECT o.component, o.message_id, o.`timestamp`,\n\
                 \x20      CAST({us} AS FLOAT64) AS us,\n\
                 \x20      ROW_NUMBER() OVER (PARTITION BY o.component ORDER BY o.`timestamp`, o.message_id) AS seq,\n\
                 \x20      ARRAY_AGG(STRUCT(CAST(o.node AS STRING) AS n, CAST(o.rank AS FLOAT64) AS t)\n\
                 \x20          ORDER BY o.rank, o.id_value) AS ids\n\
                 FROM (\n{input}\n) AS o\n\
                 GROUP BY o.component, o.message_id, o.`timestamp`"
            ),
            format!(
                "{REPLAY_DOC}CREATE TABLE id_replay_state AS\n\
                 SELECT component,\n\
                 \x20      cohort_replay(\n\
                 \x20          ARRAY_AGG(STRUCT(CAST(seq AS FLOAT64) AS seq, message_id AS m, us, ids) ORDER BY seq),\n\
                 \x20          ARRAY<FLOAT64>[{max}],\n\
                 \x20          ARRAY<FLOAT64>[{windows}]) AS st\n\
                 FROM id_replay_events\n\
                 GROUP BY component"
            ),
            "CREATE TABLE id_replayed AS\n\
             SELECT CAST(o.n AS INT64) AS node, CAST(o.t AS INT64) AS rank,\n\
             \x20      CAST(o.p AS INT64) AS profile_key\n\
             FROM id_replay_state AS s, UNNEST(s.st.owner) AS o"
                .into(),
            "CREATE TABLE id_replay_dropped AS\n\
             SELECT e.message_id, e.`timestamp`, CAST(d.n AS INT64) AS node,\n\
             \x20      CAST(d.broken AS INT64) AS broken\n\
             FROM (\n\
             \x20 SELECT s.component, x.n, x.seq, x.broken\n\
             \x20 FROM id_replay_state AS s, UNNEST(s.st.dropped) AS x\n\
             ) AS d\n\
             JOIN id_replay_events AS e ON e.component = d.component AND e.seq = CAST(d.seq AS INT64)"
                .into(),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_and_last_take_one_struct_of_the_ordered_rows() {
        let by = vec![("ts".to_string(), true), ("id".to_string(), true)];
        assert_eq!(
            BigQuery.first_by("v", &by, Some("x > 1")),
            "ARRAY_AGG(IF(x > 1, STRUCT(v AS v), NULL) IGNORE NULLS ORDER BY ts DESC, id DESC LIMIT 1)[SAFE_OFFSET(0)].v"
        );
    }

    #[test]
    fn set_operations_say_distinct_and_quotes_take_a_backslash() {
        let out = super::super::query_sql(
            "SELECT a FROM t WHERE a <> 'it''s' UNION SELECT a FROM u UNION ALL SELECT a FROM v",
            &BigQuery,
        )
        .unwrap();
        let out = out.split_whitespace().collect::<Vec<_>>().join(" ");
        assert!(
            out.contains("UNION DISTINCT SELECT a FROM u UNION ALL"),
            "{out}"
        );
        assert!(out.contains(r"'it\'s'"), "{out}");
    }

    #[test]
    fn array_agg_leaves_out_nulls() {
        assert_eq!(
            BigQuery.array_agg("array_agg(DISTINCT x)").as_deref(),
            Some("array_agg(DISTINCT x IGNORE NULLS)")
        );
    }
}
