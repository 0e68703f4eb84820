//! identity.yaml: identifier types, where each comes from in a message, and blocked values.

use std::collections::HashMap;

use saphyr::{Scalar, YamlData};

use super::values::{is_snake_case, to_snake_case};
use super::yaml::{Node, Reader, kind};
use super::{IdentifierDef, IdentityRules, LimitPeriod, suggest};

const IDENTITY_KEYS: [&str; 2] = ["identifiers", "blocked"];
const IDENTIFIER_KEYS: [&str; 5] = ["type", "from", "priority", "limit", "normalize"];
const BLOCKED_KEYS: [&str; 2] = ["values", "patterns"];

/// Normalizations an identifier may ask for, applied in the order written.
pub const NORMALIZATIONS: [&str; 4] = ["lowercase", "uppercase", "trim", "digits_only"];

/// Whether a `normalize` entry is a SQL expression over `value` rather than a keyword (checked
/// by `analyze`, which can parse SQL).
pub fn is_sql_normalization(s: &str) -> bool {
    s.contains('(') || s.contains("value")
}

/// Message fields that are identifiers by themselves.
const LEAF_ROOTS: [&str; 4] = ["userId", "anonymousId", "previousId", "groupId"];
/// Message fields that hold objects: a path names a field inside.
const OBJECT_ROOTS: [&str; 3] = ["traits", "properties", "context"];

/// Where Segment's own identifier types come from when `from:` is left out.
fn default_from(id_type: &str) -> Option<&'static [&'static str]> {
    Some(match id_type {
        "user_id" => &["userId"],
        "anonymous_id" => &["anonymousId"],
        "email" => &["traits.email", "context.traits.email"],
        "group_id" => &["groupId"],
        "previous_id" => &["previousId"],
        _ => return None,
    })
}

/// Checks a Segment message path (`userId`, `traits.email`, `context.externalIds.crm_id`, ...):
/// `Err((message, help))` when it is not one.
pub fn check_identifier_path(path: &str) -> Result<(), (String, Option<String>)> {
    let parts: Vec<&str> = path.split('.').collect();
    if parts.iter().any(|p| p.trim().is_empty()) {
        return Err((format!("`{path}` has an empty part"), None));
    }
    let root = parts[0];
    let rest = &parts[1..];
    if LEAF_ROOTS.contains(&root) {
        if !rest.is_empty() {
            return Err((
                format!("`{root}` is a plain value with no fields"),
                Some(format!("write `{root}`")),
            ));
        }
        return Ok(());
    }
    if OBJECT_ROOTS.contains(&root) {
        if rest.is_empty() {
            return Err((
                format!("`{root}` alone is not an identifier"),
                Some(format!("name a field inside it, like `{root}.email`")),
            ));
        }
        return Ok(());
    }
    let roots: Vec<&str> = LEAF_ROOTS.iter().chain(&OBJECT_ROOTS).copied().collect();
    let help = match suggest(root, &roots) {
        Some(s) => {
            let mut fixed = vec![s];
            fixed.extend_from_slice(rest);
            format!("did you mean `{}`?", fixed.join("."))
        }
        None => format!(
            "a path starts with one of {}",
            roots
                .iter()
                .map(|r| format!("`{r}`"))
                .collect::<Vec<_>>()
                .join(", ")
        ),
    };
    Err((
        format!("unknown message field `{root}` in `{path}`"),
        Some(help),
    ))
}

/// Reads identity.yaml (`doc` is its only document, `None` when empty).
pub(crate) fn read(r: &mut Reader<'_>, doc: Option<&Node<'_>>) -> IdentityRules {
    let mut rules = IdentityRules::segment_defaults();
    rules.file_present = true;
    let Some(doc) = doc else {
        return rules;
    };
    let Some(map) = r.map(doc, "identity.yaml", &IDENTITY_KEYS) else {
        return rules;
    };
    if let Some(node) = map.get("identifiers")
        && let Some(items) = r.list("identifiers", node)
    {
        if items.is_empty() {
            r.error_at(node, "`identifiers` is empty").help =
                Some("leave the key out to use Segment's defaults".into());
        }
        let mut identifiers = Vec::new();
        let mut seen: HashMap<String, usize> = HashMap::new();
        for item in items {
            let Some((def, type_node)) = read_identifier(r, item) else {
                continue;
            };
            if let Some(line) = seen.get(&def.id_type) {
                r.error_at(
                    type_node,
                    format!("duplicate identifier type `{}`", def.id_type),
                )
                .help = Some(format!(
                    "`{}` is already defined on line {line}; list each type once, with all \
                     its paths in `from`",
                    def.id_type
                ));
                continue;
            }
            seen.insert(def.id_type.clone(), def.loc.line);
            identifiers.push(def);
        }
        rules.identifiers = identifiers;
    }
    if let Some(node) = map.get("blocked")
        && let Some(blocked) = r.map(node, "`blocked`", &BLOCKED_KEYS)
    {
        if let Some(values) = blocked.get("values")
            && let Some(items) = r.list("values", values)
        {
            for item in items {
                match &item.data {
                    YamlData::Value(Scalar::String(s)) => rules.blocked_values.push(s.to_string()),
                    YamlData::Value(_) => rules.blocked_values.push(r.raw_text(item)),
                    _ => {
                        r.error_at(
                            item,
                            format!("`values`: expected a string, found {}", kind(item)),
                        );
                    }
                }
            }
        }
        if let Some(patterns) = blocked.get("patterns") {
            for (pattern, item) in r.string_list("patterns", patterns, false) {
                match regex::Regex::new(&pattern) {
                    Ok(_) => rules.blocked_patterns.push(pattern),
                    Err(e) => {
                        let text = e.to_string();
                        let reason = text
                            .lines()
                            .find_map(|l| l.strip_prefix("error: "))
                            .unwrap_or(text.lines().last().unwrap_or("invalid"));
                        r.error_at(item, format!("invalid regex `{pattern}`: {reason}"));
                    }
                }
            }
        }
    }
    rules
}

/// `limit: 5`, or Segment's per-period form `limit: 5 weekly` (`daily`, `weekly`, `monthly`,
/// `annually`, or `ever`, the same as no period).
fn read_limit(r: &mut Reader<'_>, node: &Node<'_>) -> Option<(u32, Option<LimitPeriod>)> {
    let YamlData::Value(Scalar::String(text)) = &node.data else {
        return r.positive("limit", node).map(|l| (l, None));
    };
    let words: Vec<&str> = text.split_whitespace().collect();
    let number = words.first().and_then(|w| w.parse::<u32>().ok());
    let (Some(limit), [_, rest @ ..]) = (number, words.as_slice()) else {
        r.error_at(
            node,
            format!("`limit`: expected a whole number, optionally with a period, found `{text}`"),
        )
        .help = Some(
            "write `limit: 5`, or `limit: 5 weekly` for at most 5 values added to a \
                      profile in any 7 days (daily, weekly, monthly, annually, ever)"
                .into(),
        );
        return None;
    };
    let word = match rest {
        [] => "ever",
        [word] => word,
        _ => {
            r.error_at(
                node,
                format!("`limit`: expected a number and a period, found `{text}`"),
            );
            return None;
        }
    };
    if limit == 0 {
        r.error_at(node, "`limit` must be at least 1, found 0");
        return None;
    }
    match LimitPeriod::parse(&word.to_lowercase()) {
        Some(period) => Some((limit, period)),
        None => {
            let help = match suggest(&word.to_lowercase(), &LimitPeriod::WORDS) {
                Some(s) => format!("did you mean `{limit} {s}`?"),
                None => format!("a period is one of {}", LimitPeriod::WORDS.join(", ")),
            };
            r.error_at(node, format!("unknown limit period `{word}`"))
                .help = Some(help);
            None
        }
    }
}

fn read_identifier<'n, 'i>(
    r: &mut Reader<'_>,
    node: &'n Node<'i>,
) -> Option<(IdentifierDef, &'n Node<'i>)> {
    let map = r.map(node, "an identifier", &IDENTIFIER_KEYS)?;
    let loc = r.loc(node);
    let id_type = r.required(&map, "type").and_then(|n| {
        let s = r.non_empty_string("type", n)?;
        if !is_snake_case(&s) {
            r.error_at(n, format!("identifier type `{s}` is not snake_case"))
                .help = Some(format!(
                "identifier types are lowercase, e.g. `{}`",
                to_snake_case(&s)
            ));
            return None;
        }
        Some((s, n))
    });
    let from = match (map.get("from"), &id_type) {
        (Some(n), _) => {
            let mut from = Vec::new();
            let items = r.string_list("from", n, true);
            if items.is_empty() && matches!(n.data, YamlData::Sequence(_)) {
                r.error_at(n, "`from` is empty: name at least one message field");
            }
            for (path, item) in items {
                match check_identifier_path(&path) {
                    Ok(()) => from.push(path),
                    Err((message, help)) => {
                        let d = r.error_at(item, message);
                        d.help = help;
                    }
                }
            }
            from
        }
        (None, Some((t, _))) => match default_from(t) {
            Some(paths) => paths.iter().map(|s| (*s).to_owned()).collect(),
            None => {
                r.required(&map, "from");
                let last = r.diags.len() - 1;
                r.diags[last].help = Some(format!(
                    "only Segment's own types (user_id, anonymous_id, email, group_id, \
                     previous_id) have a default; say where `{t}` comes from, e.g. \
                     `from: [traits.{t}]`"
                ));
                Vec::new()
            }
        },
        (None, None) => Vec::new(),
    };
    let priority = map.get("priority").and_then(|n| r.positive("priority", n));
    let (limit, period) = map
        .get("limit")
        .and_then(|n| read_limit(r, n))
        .map_or((None, None), |(l, p)| (Some(l), p));
    let normalize = map.get("normalize").map_or_else(Vec::new, |n| {
        let mut out = Vec::new();
        for (s, item) in r.string_list("normalize", n, true) {
            if NORMALIZATIONS.contains(&s.as_str()) || is_sql_normalization(&s) {
                out.push(s);
            } else {
                let help = match suggest(&s, &NORMALIZATIONS) {
                    Some(k) => format!("did you mean `{k}`?"),
                    None => format!(
                        "known: {}, or a SQL expression over `value` like \
                         `regexp_replace(value, '[^0-9]', '', 'g')`",
                        NORMALIZATIONS.join(", ")
                    ),
                };
                r.error_at(item, format!("unknown normalization `{s}`"))
                    .help = Some(help);
            }
        }
        out
    });
    let (id_type, type_node) = id_type?;
    Some((
        IdentifierDef {
            id_type,
            from,
            priority,
            limit,
            period,
            normalize,
            loc,
        },
        type_node,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identifier_paths() {
        for ok in [
            "userId",
            "anonymousId",
            "previousId",
            "groupId",
            "traits.email",
            "context.traits.email",
            "properties.order_id",
            "context.externalIds.crm_id",
            "context.device.id",
        ] {
            assert_eq!(check_identifier_path(ok), Ok(()), "{ok}");
        }
        let (msg, help) = check_identifier_path("usrId").unwrap_err();
        assert_eq!(msg, "unknown message field `usrId` in `usrId`");
        assert_eq!(help.as_deref(), Some("did you mean `userId`?"));
        let (_, help) = check_identifier_path("trait.email").unwrap_err();
        assert_eq!(help.as_deref(), Some("did you mean `traits.email`?"));
        assert!(check_identifier_path("traits").is_err());
        assert!(check_identifier_path("userId.x").is_err());
        assert!(check_identifier_path("traits..x").is_err());
    }
}
