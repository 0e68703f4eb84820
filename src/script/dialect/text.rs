//! The last pass over a statement's text for the engines whose string literals take backslash
//! escapes (Spark, Databricks, Snowflake, BigQuery): the Unparser writes standard SQL, where
//! `'\.'` is two characters, and these engines would read it as one. The same pass moves
//! double-quoted names into backticks where a double quote starts a string (Spark, BigQuery),
//! and spells a quote inside a literal as `\'` where `''` is no escape (BigQuery).

/// How an engine's text differs from standard SQL.
#[derive(Clone, Copy, Debug)]
pub(super) struct TextStyle {
    /// Names go in backticks (a double-quoted text is a string).
    pub backtick_names: bool,
    /// A quote inside a string literal is written `\'`.
    pub backslash_quote: bool,
}

impl TextStyle {
    pub const SPARK: TextStyle = TextStyle {
        backtick_names: true,
        backslash_quote: false,
    };
    pub const BIGQUERY: TextStyle = TextStyle {
        backtick_names: true,
        backslash_quote: true,
    };
    pub const SNOWFLAKE: TextStyle = TextStyle {
        backtick_names: false,
        backslash_quote: false,
    };
}

/// `sql` written for an engine of `style`: the backslashes of its string literals doubled, its
/// names and quotes as the style says. Comments are copied as they are.
pub(super) fn engine_text(sql: &str, style: TextStyle) -> String {
    #[derive(PartialEq)]
    enum In {
        Code,
        Str,
        Name,
        Tick,
        Comment,
    }
    let (open_name, close_name) = match style.backtick_names {
        true => ('`', '`'),
        false => ('"', '"'),
    };
    let mut out = String::with_capacity(sql.len() + 16);
    let mut at = In::Code;
    let mut chars = sql.chars().peekable();
    while let Some(c) = chars.next() {
        match at {
            In::Code => match c {
                '\'' => {
                    at = In::Str;
                    out.push(c);
                }
                '"' => {
                    at = In::Name;
                    out.push(open_name);
                }
                '`' => {
                    at = In::Tick;
                    out.push(c);
                }
                '-' if chars.peek() == Some(&'-') => {
                    at = In::Comment;
                    out.push(c);
                }
                _ => out.push(c),
            },
            In::Str => match c {
                '\'' if chars.peek() == Some(&'\'') => {
                    chars.next();
                    out.push_str(if style.backslash_quote { "\\'" } else { "''" });
                }
                '\'' => {
                    at = In::Code;
                    out.push(c);
                }
                '\\' => out.push_str("\\\\"),
                _ => out.push(c),
            },
            In::Name => match c {
                '"' if chars.peek() == Some(&'"') => {
                    chars.next();
                    out.push_str(if style.backtick_names { "\"" } else { "\"\"" });
                }
                '"' => {
                    at = In::Code;
                    out.push(close_name);
                }
                '`' if style.backtick_names => out.push_str("``"),
                _ => out.push(c),
            },
            In::Tick => {
                if c == '`' {
                    at = In::Code;
                }
                out.push(c);
            }
            In::Comment => {
                if c == '\n' {
                    at = In::Code;
                }
                out.push(c);
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const SQL: &str = r#"SELECT "a""b", 'it''s "x" \.' AS "c`d" -- "e" '"#;

    #[test]
    fn spark_names_move_to_backticks_and_backslashes_double() {
        assert_eq!(
            engine_text(SQL, TextStyle::SPARK),
            r#"SELECT `a"b`, 'it''s "x" \\.' AS `c``d` -- "e" '"#
        );
        assert_eq!(
            engine_text("SELECT `a` FROM t", TextStyle::SPARK),
            "SELECT `a` FROM t"
        );
    }

    #[test]
    fn bigquery_quotes_take_a_backslash() {
        assert_eq!(
            engine_text(SQL, TextStyle::BIGQUERY),
            r#"SELECT `a"b`, 'it\'s "x" \\.' AS `c``d` -- "e" '"#
        );
    }

    #[test]
    fn snowflake_keeps_names_and_doubles_backslashes() {
        assert_eq!(
            engine_text(SQL, TextStyle::SNOWFLAKE),
            r#"SELECT "a""b", 'it''s "x" \\.' AS "c`d" -- "e" '"#
        );
    }
}
