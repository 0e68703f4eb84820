//! repairs.yaml: corrections to the identity graph, written as files and reviewed like code.
//!
//! Each entry names one kind of repair, the identifier(s) it applies to as `type:value`, and a
//! reason:
//!
//! ```yaml
//! - unlink: anonymous_id:kiosk-7
//!   reason: the in-store iPad every customer signs up on
//! - merge: [email:ada@old.example, user_id:ada]
//!   reason: same person, confirmed by support (SUP-112)
//! ```
//!
//! What each kind does to a run is `plan::repairs`'s business; here they are read and checked
//! against the space's identifier types.

use std::collections::HashMap;

use saphyr::YamlData;

use super::yaml::{self, Node, Reader};
use super::{Loc, suggest};

/// The kinds of repair, as the key that introduces an entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum RepairKind {
    /// The identifier is never used, in this space only.
    Block,
    /// The identifier links nothing: it is dropped from every event that carries another.
    Unlink,
    /// The identifier takes its events: their other identifiers are dropped from them.
    Split,
    /// Two identifiers are one person.
    Merge,
}

impl RepairKind {
    pub const WORDS: [&str; 4] = ["block", "unlink", "split", "merge"];

    pub fn word(self) -> &'static str {
        match self {
            RepairKind::Block => "block",
            RepairKind::Unlink => "unlink",
            RepairKind::Split => "split",
            RepairKind::Merge => "merge",
        }
    }

    pub fn parse(word: &str) -> Option<RepairKind> {
        Some(match word {
            "block" => RepairKind::Block,
            "unlink" => RepairKind::Unlink,
            "split" => RepairKind::Split,
            "merge" => RepairKind::Merge,
            _ => return None,
        })
    }
}

/// One entry of repairs.yaml.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct RepairDef {
    pub kind: RepairKind,
    /// `(type, value)` as written: one, or two for a merge.
    pub ids: Vec<(String, String)>,
    pub reason: String,
    /// The entry in repairs.yaml.
    #[serde(skip)]
    pub loc: Loc,
}

impl RepairDef {
    /// `kind type:value [type:value]`, as the CLI and explain print an entry.
    pub fn describe(&self) -> String {
        let ids: Vec<String> = self.ids.iter().map(|(t, v)| format!("{t}:{v}")).collect();
        format!("{} {}", self.kind.word(), ids.join(" "))
    }
}

/// Splits `type:value` at the first colon.
pub fn split_identifier(s: &str) -> Option<(String, String)> {
    let (t, v) = s.split_once(':')?;
    let (t, v) = (t.trim(), v.trim());
    (!t.is_empty() && !v.is_empty()).then(|| (t.to_string(), v.to_string()))
}

/// The text of one entry, as `cohort identity <kind>` appends it to repairs.yaml: each value
/// a double-quoted scalar (JSON's escapes are YAML's), so any identifier or reason reads back
/// as written.
pub fn entry_text(kind: RepairKind, ids: &[String], reason: &str) -> String {
    let q = |s: &str| serde_json::to_string(s).unwrap_or_else(|_| format!("{s:?}"));
    let target = match ids {
        [one] => q(one),
        _ => format!(
            "[{}]",
            ids.iter().map(|i| q(i)).collect::<Vec<_>>().join(", ")
        ),
    };
    format!("- {}: {target}\n  reason: {}\n", kind.word(), q(reason))
}

const ENTRY_KEYS: [&str; 5] = ["block", "unlink", "split", "merge", "reason"];

/// Reads repairs.yaml (`doc` is its only document, `None` when empty) against the space's
/// identifier types.
pub(crate) fn read(
    r: &mut Reader<'_>,
    doc: Option<&Node<'_>>,
    id_types: &[&str],
) -> Vec<RepairDef> {
    let Some(doc) = doc else {
        return Vec::new();
    };
    let Some(items) = r.list("repairs.yaml", doc) else {
        return Vec::new();
    };
    let mut out: Vec<RepairDef> = Vec::new();
    // Identifier -> the line of the entry that names it, for block / unlink / split.
    let mut claimed: HashMap<(String, String), (RepairKind, usize)> = HashMap::new();
    for item in items {
        let Some(def) = read_entry(r, item, id_types) else {
            continue;
        };
        for id in &def.ids {
            let (t, v) = id;
            match claimed.get(id) {
                Some((k, line)) if def.kind != RepairKind::Merge || *k != RepairKind::Merge => {
                    r.error_at(
                        item,
                        format!("`{t}:{v}` is already repaired on line {line}"),
                    )
                    .help = Some(format!(
                        "one identifier takes one block, unlink or split (and merges only \
                         alongside other merges); keep the entry on line {line} or this one ({})",
                        k.word()
                    ));
                }
                _ => {
                    claimed.insert(id.clone(), (def.kind, def.loc.line));
                }
            }
        }
        out.push(def);
    }
    out
}

fn read_entry(r: &mut Reader<'_>, node: &Node<'_>, id_types: &[&str]) -> Option<RepairDef> {
    let map = r.map(node, "a repair", &ENTRY_KEYS)?;
    let loc = r.loc(node);
    let kinds: Vec<RepairKind> = RepairKind::WORDS
        .iter()
        .filter(|w| map.get(w).is_some())
        .filter_map(|w| RepairKind::parse(w))
        .collect();
    let kind = match kinds.as_slice() {
        [k] => *k,
        [] => {
            r.error_at(
                node,
                "a repair needs one of `block`, `unlink`, `split` or `merge`",
            )
            .help = Some("e.g. `- unlink: anonymous_id:kiosk-7` with a `reason:`".into());
            return None;
        }
        _ => {
            r.error_at(
                node,
                "a repair has one kind: `block`, `unlink`, `split` or `merge`",
            )
            .help = Some("write each repair as its own entry".into());
            return None;
        }
    };
    let reason = r
        .required(&map, "reason")
        .and_then(|n| r.non_empty_string("reason", n));
    let target = map.get(kind.word())?;
    let ids: Vec<(String, String)> = if kind == RepairKind::Merge {
        let items = r.string_list("merge", target, false);
        if items.len() != 2 && matches!(target.data, YamlData::Sequence(_)) {
            r.error_at(
                target,
                format!("`merge` names two identifiers, found {}", items.len()),
            )
            .help = Some("write `merge: [email:ada@old.example, user_id:ada]`".into());
            return None;
        }
        let mut ids = Vec::new();
        for (s, item) in items {
            ids.push(identifier(r, item, &s, id_types)?);
        }
        if ids.len() == 2 && ids[0] == ids[1] {
            r.error_at(target, "`merge` names the same identifier twice");
            return None;
        }
        ids
    } else {
        match &target.data {
            YamlData::Value(saphyr::Scalar::String(s)) => {
                vec![identifier(r, target, s, id_types)?]
            }
            _ => {
                r.error_at(
                    target,
                    format!(
                        "`{}`: expected an identifier like `anonymous_id:kiosk-7`, found {}",
                        kind.word(),
                        yaml::kind(target)
                    ),
                );
                return None;
            }
        }
    };
    if ids.is_empty() {
        return None;
    }
    Some(RepairDef {
        kind,
        ids,
        reason: reason?,
        loc,
    })
}

/// Checks `type:value` against the space's types.
fn identifier(
    r: &mut Reader<'_>,
    node: &Node<'_>,
    text: &str,
    id_types: &[&str],
) -> Option<(String, String)> {
    let Some((t, v)) = split_identifier(text) else {
        r.error_at(node, format!("`{text}` is not `type:value`"))
            .help = Some("e.g. `anonymous_id:kiosk-7` or `email:ada@example.com`".into());
        return None;
    };
    if !id_types.contains(&t.as_str()) {
        let help = match suggest(&t, id_types) {
            Some(s) => format!("did you mean `{s}:{v}`?"),
            None => format!("the space's identifier types: {}", id_types.join(", ")),
        };
        r.error_at(
            node,
            format!("`{t}` is not an identifier type of this space"),
        )
        .help = Some(help);
        return None;
    }
    Some((t, v))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read_text(text: &str) -> (Vec<RepairDef>, Vec<String>) {
        let mut r = Reader::new("repairs.yaml", text);
        let doc = r.parse().unwrap();
        let defs = read(&mut r, doc.as_ref(), &["user_id", "email", "anonymous_id"]);
        let diags = r
            .diags
            .iter()
            .map(|d| format!("{}: {}", d.loc.as_ref().map_or(0, |l| l.line), d.message))
            .collect();
        (defs, diags)
    }

    #[test]
    fn written_entries_read_back() {
        let reason = "the shop's \"tablet\": #7, see SUP-1\nsecond line";
        let mut text = entry_text(
            RepairKind::Unlink,
            &["anonymous_id:kiosk #7".into()],
            reason,
        );
        text += &entry_text(
            RepairKind::Merge,
            &["email:a@x.io".into(), "user_id:u: 1".into()],
            "one",
        );
        let (defs, diags) = read_text(&text);
        assert!(diags.is_empty(), "{diags:?}\n{text}");
        assert_eq!(
            defs[0].ids,
            vec![("anonymous_id".into(), "kiosk #7".into())]
        );
        assert_eq!(defs[0].reason, reason);
        assert_eq!(defs[1].describe(), "merge email:a@x.io user_id:u: 1");
    }

    #[test]
    fn entries_and_their_mistakes() {
        let (defs, diags) = read_text(
            "- unlink: anonymous_id:kiosk-7\n  reason: shared iPad\n\
             - merge: [email:ada@old.example, user_id:ada]\n  reason: support ticket\n",
        );
        assert!(diags.is_empty(), "{diags:?}");
        assert_eq!(defs.len(), 2);
        assert_eq!(defs[0].describe(), "unlink anonymous_id:kiosk-7");
        assert_eq!(
            defs[1].describe(),
            "merge email:ada@old.example user_id:ada"
        );
        assert_eq!(defs[1].loc.line, 3);

        let (_, diags) = read_text(
            "- unlink: anonymus_id:x\n  reason: r\n\
             - split: user_id:u1\n\
             - block: email:e\n  unlink: email:e\n  reason: r\n\
             - block: user_id:u1\n  reason: r\n\
             - merge: [user_id:a]\n  reason: r\n",
        );
        assert_eq!(
            diags,
            vec![
                "1: `anonymus_id` is not an identifier type of this space",
                "3: missing required key `reason`",
                "4: a repair has one kind: `block`, `unlink`, `split` or `merge`",
                "9: `merge` names two identifiers, found 1",
            ],
            "{diags:?}"
        );
    }
}
