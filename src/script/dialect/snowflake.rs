//! Snowflake as a [`ScriptDialect`]: the session set to UTC and to names that ignore case
//! (the script quotes some names and not others; Snowflake stores both in capitals), JSON
//! through `JSON_EXTRACT_PATH_TEXT`, first and last values as `MIN_BY` / `MAX_BY` over a text
//! key, aggregate filters folded into the arguments (Snowflake has no `FILTER` clause), the
//! helpers and the identity arithmetic as JavaScript functions ([`super::warehouse`]), and the
//! label propagation as a Snowflake Scripting block run by `EXECUTE IMMEDIATE`. Text compares
//! by its bytes without a collation, as in Cohort.

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

/// Snowflake (`--dialect snowflake`).
pub struct Snowflake;

/// Snowflake's type of a JavaScript function's argument or result.
fn js_type(k: Kind) -> &'static str {
    match k {
        Kind::Text => "VARCHAR",
        Kind::Float => "FLOAT",
        Kind::TextArray | Kind::Events | Kind::Limits => "ARRAY",
        Kind::State => "VARIANT",
    }
}

impl ScriptDialect for Snowflake {
    fn selector(&self) -> SqlDialect {
        SqlDialect::Snowflake
    }

    fn prelude_text(&self) -> &'static str {
        include_str!("../../../queries/script/prelude_snowflake.sql")
    }

    fn text_type(&self) -> &'static str {
        "VARCHAR"
    }

    /// A backslash starts an escape in a Snowflake string.
    fn quote_str(&self, s: &str) -> String {
        sql_string(&s.replace('\\', "\\\\"))
    }

    fn json_text_at(&self, json: &str, keys: &[String]) -> String {
        let path: String = keys
            .iter()
            .map(|k| format!("[\"{}\"]", k.replace('"', "\\\"")))
            .collect();
        // The statement's last pass doubles the backslash (see `finish`).
        format!("JSON_EXTRACT_PATH_TEXT({json}, {})", sql_string(&path))
    }

    fn json_valid(&self, args: &[String]) -> Option<String> {
        Some(format!(
            "({0} IS NULL OR coalesce(IS_OBJECT(TRY_PARSE_JSON({0})), false))",
            args[0]
        ))
    }

    /// The members as text in argument order, the null ones left out (an `OBJECT` would sort
    /// its keys).
    fn json_object(&self, args: &[String]) -> String {
        let members: Vec<String> = args
            .chunks(2)
            .map(|kv| {
                format!(
                    "IFF({1} IS NULL, NULL, '\"' || {0} || '\":' || TO_JSON(TO_VARIANT({1})))",
                    kv[0], kv[1]
                )
            })
            .collect();
        format!(
            "'{{' || ARRAY_TO_STRING(ARRAY_CONSTRUCT_COMPACT({}), ',') || '}}'",
            members.join(", ")
        )
    }

    /// `REGEXP_LIKE` must match the whole text in Snowflake; DataFusion's matches anywhere.
    fn regexp_like(&self, text: &str, pattern: &str) -> String {
        format!("(REGEXP_INSTR({text}, {pattern}) > 0)")
    }

    fn nul_position(&self, text: &str) -> String {
        format!("CHARINDEX(CHR(0), {text})")
    }

    fn btrim(&self, args: &[String]) -> Option<String> {
        Some(format!("TRIM({})", args.join(", ")))
    }

    /// Ascending, nulls first, as DataFusion's `array_sort`.
    fn array_sort(&self, args: &[String]) -> String {
        format!("ARRAY_SORT({}, TRUE, TRUE)", args[0])
    }

    /// Snowflake's `ARRAY_AGG` is an empty array over no rows.
    fn array_agg(&self, call: &str) -> Option<String> {
        Some(format!("CASE WHEN ARRAY_SIZE({call}) > 0 THEN {call} END"))
    }

    fn aggregate_filter(&self) -> bool {
        false
    }

    /// `MIN_BY` / `MAX_BY` over the time at a fixed width followed by the message id (the only
    /// order Cohort takes first and last values in); rows outside `filter` get a null key,
    /// which both skip.
    fn first_by(&self, value: &str, by: &[(String, bool)], filter: Option<&str>) -> String {
        let key = by
            .iter()
            .enumerate()
            .map(|(i, (e, _))| match i {
                0 => format!("TO_VARCHAR({e}, 'YYYY-MM-DD HH24:MI:SS.FF9')"),
                _ => e.clone(),
            })
            .collect::<Vec<_>>()
            .join(" || ");
        let f = if by.iter().all(|(_, desc)| *desc) {
            "MAX_BY"
        } else {
            "MIN_BY"
        };
        match filter {
            Some(c) => format!("{f}({value}, IFF({c}, {key}, NULL))"),
            None => format!("{f}({value}, {key})"),
        }
    }

    fn rename(&self, name: &str) -> Option<&'static str> {
        match name {
            "bool_or" => Some("BOOLOR_AGG"),
            "bool_and" => Some("BOOLAND_AGG"),
            "character_length" => Some("LENGTH"),
            _ => None,
        }
    }

    fn finish(&self, sql: String) -> String {
        engine_text(&sql, TextStyle::SNOWFLAKE)
    }

    fn identity_functions(&self) -> Vec<String> {
        // JavaScript sees the arguments' names in capitals.
        let mut out: Vec<String> = FUNCTIONS
            .iter()
            .map(|f| {
                format!(
                    "{}\nLANGUAGE JAVASCRIPT\nAS $$\n{}\n$$",
                    f.header("OR REPLACE TEMPORARY FUNCTION", js_type),
                    f.body(|a| a.to_uppercase())
                )
            })
            .collect();
        out.push(
            "-- The node code of an identifier (see cohort_id_node_text), as a number.\n\
             CREATE OR REPLACE TEMPORARY FUNCTION cohort_id_node(id_type VARCHAR, id_value VARCHAR)\n\
             RETURNS NUMBER(38, 0)\n\
             AS $$ TO_NUMBER(cohort_id_node_text(id_type, id_value)) $$"
                .into(),
        );
        out.push(
            "-- A new profile's id (see cohort_id_profile_text).\n\
             CREATE OR REPLACE TEMPORARY FUNCTION cohort_id_profile(node NUMBER(38, 0))\n\
             RETURNS VARCHAR\n\
             AS $$ cohort_id_profile_text(TO_VARCHAR(node)) $$"
                .into(),
        );
        out
    }

    fn components(&self) -> Vec<String> {
        vec![format!(
            "{COMPONENTS_DOC}EXECUTE IMMEDIATE $$\n\
             DECLARE\n\
             \x20 changed INTEGER DEFAULT 1;\n\
             BEGIN\n\
             \x20 DROP TABLE IF EXISTS id_components;\n\
             \x20 CREATE TABLE id_components AS SELECT node, node AS component FROM id_nodes;\n\
             \x20 WHILE (changed > 0) DO\n\
             {}\
             \x20   SELECT count(*) INTO :changed\n\
             {};\n\
             {}\
             \x20 END WHILE;\n\
             END;\n\
             $$",
            components_round("    "),
            indented(CHANGED_FROM, "    ").trim_end(),
            components_swap("    "),
        )]
    }

    fn epoch_micros(&self, ts: &str) -> String {
        format!("date_part(epoch_microsecond, {ts})")
    }

    fn replay(&self, input: &str, limits: &[Limit]) -> Vec<String> {
        // The JavaScript takes 0 for a limit over all time.
        let (max, windows) = limit_lists(limits, "", "0");
        let us = self.epoch_micros("o.\"timestamp\"");
        vec![
            format!(
                "-- The events of violating components, numbered in the order the sequential rule takes\n\
                 -- them, (timestamp, message_id), each with its time in microseconds and its\n\
                 -- identifiers by rank, then value.\n\
                 CREATE TABLE id_replay_events AS\n\
                 SELECT o.component, o.message_id, o.\"timestamp\",\n\
                 \x20      {us} AS us,\n\
                 \x20      ROW_NUMBER() OVER (PARTITION BY o.component ORDER BY o.\"timestamp\", o.message_id) AS seq,\n\
                 \x20      ARRAY_AGG(OBJECT_CONSTRUCT('n', TO_VARCHAR(o.node), 't', o.rank))\n\
                 \x20          WITHIN GROUP (ORDER BY o.rank, o.id_value) AS ids\n\
                 FROM (\n{input}\n) AS o\n\
                 GROUP BY o.component, o.message_id, o.\"timestamp\""
            ),
            format!(
                "{REPLAY_DOC}CREATE TABLE id_replay_state AS\n\
                 SELECT component,\n\
                 \x20      cohort_replay(\n\
                 \x20          ARRAY_AGG(OBJECT_CONSTRUCT('seq', seq, 'm', message_id, 'us', us, 'ids', ids))\n\
                 \x20              WITHIN GROUP (ORDER BY seq),\n\
                 \x20          ARRAY_CONSTRUCT({max}),\n\
                 \x20          ARRAY_CONSTRUCT({windows})) AS st\n\
                 FROM id_replay_events\n\
                 GROUP BY component"
            ),
            "CREATE TABLE id_replayed AS\n\
             SELECT TO_NUMBER(o.value:n::VARCHAR) AS node, o.value:t::INTEGER AS rank,\n\
             \x20      TO_NUMBER(o.value:p::VARCHAR) AS profile_key\n\
             FROM id_replay_state s, LATERAL FLATTEN(input => s.st:owner) o"
                .into(),
            "CREATE TABLE id_replay_dropped AS\n\
             SELECT e.message_id, e.\"timestamp\", TO_NUMBER(d.v:n::VARCHAR) AS node,\n\
             \x20      d.v:broken::INTEGER AS broken\n\
             FROM (\n\
             \x20 SELECT s.component, f.value AS v\n\
             \x20 FROM id_replay_state s, LATERAL FLATTEN(input => s.st:dropped) f\n\
             ) AS d\n\
             JOIN id_replay_events e ON e.component = d.component AND e.seq = d.v:seq::INTEGER"
                .into(),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_and_last_order_by_a_fixed_width_text_key() {
        let by = |desc| vec![("ts".to_string(), desc), ("id".to_string(), desc)];
        assert_eq!(
            Snowflake.first_by("v", &by(true), Some("x > 1")),
            "MAX_BY(v, IFF(x > 1, TO_VARCHAR(ts, 'YYYY-MM-DD HH24:MI:SS.FF9') || id, NULL))"
        );
        assert_eq!(
            Snowflake.first_by("v", &by(false), None),
            "MIN_BY(v, TO_VARCHAR(ts, 'YYYY-MM-DD HH24:MI:SS.FF9') || id)"
        );
    }

    /// `sql` (DataFusion's) as Snowflake's, on one line.
    fn snowflake(sql: &str) -> String {
        let out = super::super::query_sql(sql, &Snowflake).unwrap();
        out.split_whitespace().collect::<Vec<_>>().join(" ")
    }

    #[test]
    fn aggregate_filters_move_into_the_value() {
        let out = snowflake(
            "SELECT cohort_mode(x, 2) FILTER (WHERE c > 1) AS m, \
             count(*) FILTER (WHERE c > 1) AS n, bool_or(b) AS o FROM t",
        );
        assert!(
            out.contains("cohort_mode_pick(array_agg(CASE WHEN c > 1 THEN x END), 2)"),
            "{out}"
        );
        assert!(out.contains("count(CASE WHEN c > 1 THEN 1 END)"), "{out}");
        assert!(out.contains("BOOLOR_AGG(b)"), "{out}");
        assert!(!out.contains("FILTER"), "{out}");
    }

    #[test]
    fn json_objects_keep_the_argument_order() {
        assert_eq!(
            Snowflake.json_object(&["'b'".into(), "x".into()]),
            "'{' || ARRAY_TO_STRING(ARRAY_CONSTRUCT_COMPACT(IFF(x IS NULL, NULL, '\"' || 'b' || '\":' || TO_JSON(TO_VARIANT(x)))), ',') || '}'"
        );
    }
}
