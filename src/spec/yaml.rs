//! Reading YAML with positions: typed getters over saphyr's `MarkedYaml` that turn every
//! surprise into a [`Diagnostic`] at the right line and column and carry on.

use std::path::PathBuf;

use saphyr::{LoadableYamlNode, MarkedYaml, Marker, Scalar, YamlData};

use super::{Diagnostic, Loc, suggest};

pub(crate) type Node<'i> = MarkedYaml<'i>;

/// How many collections one line may open in compact block style (`- - x`).
const MAX_COMPACT_NESTING: usize = 100;

/// One file being read: its name, its text and the problems found in it so far.
pub(crate) struct Reader<'t> {
    pub file: PathBuf,
    text: &'t str,
    lines: Vec<&'t str>,
    pub diags: Vec<Diagnostic>,
}

/// A mapping's entries with string keys, in document order.
pub(crate) struct Map<'n, 'i> {
    pub node: &'n Node<'i>,
    entries: Vec<(String, &'n Node<'i>, &'n Node<'i>)>,
}

impl<'n, 'i> Map<'n, 'i> {
    /// The value under `key`, even when it is null.
    pub fn raw(&self, key: &str) -> Option<&'n Node<'i>> {
        self.entries
            .iter()
            .find(|(k, _, _)| k == key)
            .map(|(_, _, v)| *v)
    }

    fn key_node(&self, key: &str) -> Option<&'n Node<'i>> {
        self.entries
            .iter()
            .find(|(k, _, _)| k == key)
            .map(|(_, k, _)| *k)
    }

    /// The value under `key`; a null value counts as absent.
    pub fn get(&self, key: &str) -> Option<&'n Node<'i>> {
        self.raw(key).filter(|v| !is_null(v))
    }
}

pub(crate) fn is_null(node: &Node<'_>) -> bool {
    matches!(node.data, YamlData::Value(Scalar::Null))
}

/// "a string", "an integer", ...: what a value is, for "expected X, found Y".
pub(crate) fn kind(node: &Node<'_>) -> &'static str {
    match &node.data {
        YamlData::Value(Scalar::Null) => "nothing",
        YamlData::Value(Scalar::Boolean(_)) => "a boolean",
        YamlData::Value(Scalar::Integer(_)) => "an integer",
        YamlData::Value(Scalar::FloatingPoint(_)) => "a number",
        YamlData::Value(Scalar::String(_)) | YamlData::Representation(..) => "a string",
        YamlData::Sequence(_) => "a list",
        YamlData::Mapping(_) => "a mapping",
        YamlData::Tagged(..) => "a tagged value",
        YamlData::Alias(_) => "an alias (anchors and aliases are not supported)",
        YamlData::BadValue => "an invalid value",
    }
}

pub(crate) fn as_str<'n>(node: &'n Node<'_>) -> Option<&'n str> {
    match &node.data {
        YamlData::Value(Scalar::String(s)) => Some(s),
        _ => None,
    }
}

impl<'t> Reader<'t> {
    pub fn new(file: impl Into<PathBuf>, text: &'t str) -> Self {
        Reader {
            file: file.into(),
            text,
            lines: text.lines().collect(),
            diags: Vec::new(),
        }
    }

    /// Parses the text. `Err(())` after a syntax error (already reported); `Ok(None)` for a
    /// file with no document at all.
    #[allow(clippy::result_unit_err)]
    pub fn parse(&mut self) -> Result<Option<Node<'t>>, ()> {
        if let Some(loc) = self.too_deep() {
            self.diags.push(
                Diagnostic::error(
                    Some(loc),
                    format!("YAML nested deeper than {MAX_COMPACT_NESTING} levels on one line"),
                )
                .with_help("a definition file needs a few levels; write one `- ` per line"),
            );
            return Err(());
        }
        match MarkedYaml::load_from_str(self.text) {
            Ok(docs) => {
                let mut docs = docs.into_iter();
                let first = docs.next();
                if let Some(second) = docs.next() {
                    self.error_at(&second, "a definition file holds one YAML document")
                        .help = Some("remove the `---` and everything after it".into());
                }
                Ok(first)
            }
            Err(e) => {
                let mark = e.marker();
                let col = mark.col() + 1;
                let len = self
                    .lines
                    .get(mark.line().saturating_sub(1))
                    .map(|l| {
                        l.chars()
                            .skip(mark.col())
                            .take_while(|c| c.is_alphanumeric() || *c == '_' || *c == '-')
                            .count()
                    })
                    .unwrap_or(0)
                    .max(1);
                let loc = Loc {
                    file: self.file.clone(),
                    line: mark.line().max(1),
                    col,
                    len,
                };
                let diag = if e.info() == "duplicated key in mapping" {
                    let key = self.slice_line(mark.line(), mark.col(), len);
                    Diagnostic::error(Some(loc), format!("duplicate key `{key}`"))
                        .with_help("a key may appear once in a mapping; remove one of them")
                } else {
                    Diagnostic::error(Some(loc), format!("YAML syntax error: {}", e.info()))
                };
                self.diags.push(diag);
                Err(())
            }
        }
    }

    /// Where a line opens more than [`MAX_COMPACT_NESTING`] collections at once (`- - - ...`).
    /// saphyr limits flow nesting (`[[[`) itself; compact block nesting is only bounded by the
    /// stack, and a line of 20,000 `- ` overflows it.
    fn too_deep(&self) -> Option<Loc> {
        for (i, line) in self.lines.iter().enumerate() {
            let mut rest = line.trim_start_matches([' ', '\t']);
            let mut levels = 0;
            while let Some(after) = rest
                .strip_prefix('-')
                .or_else(|| rest.strip_prefix('?'))
                .filter(|a| a.starts_with([' ', '\t']))
            {
                levels += 1;
                if levels > MAX_COMPACT_NESTING {
                    let col = line.len() - rest.len();
                    return Some(Loc {
                        file: self.file.clone(),
                        line: i + 1,
                        col: line[..col].chars().count() + 1,
                        len: 1,
                    });
                }
                rest = after.trim_start_matches([' ', '\t']);
            }
        }
        None
    }

    fn slice_line(&self, line: usize, col: usize, len: usize) -> String {
        self.lines
            .get(line.saturating_sub(1))
            .map(|l| l.chars().skip(col).take(len).collect())
            .unwrap_or_default()
    }

    /// The place of a node: its first line, underlining the node (or the rest of that line when
    /// the node spans several lines).
    pub fn loc(&self, node: &Node<'_>) -> Loc {
        self.loc_between(&node.span.start, &node.span.end)
    }

    fn loc_between(&self, start: &Marker, end: &Marker) -> Loc {
        let line = start.line().max(1);
        let col = start.col();
        let len = if end.line() == start.line() && end.col() > col {
            end.col() - col
        } else {
            self.lines
                .get(line - 1)
                .map(|l| l.trim_end().chars().count().saturating_sub(col))
                .unwrap_or(0)
        };
        Loc {
            file: self.file.clone(),
            line,
            col: col + 1,
            len: len.max(1),
        }
    }

    /// Where a string value's text starts: after the opening quote of a quoted scalar.
    pub fn content_loc(&self, node: &Node<'_>) -> Loc {
        let mut loc = self.loc(node);
        let first = self
            .lines
            .get(loc.line - 1)
            .and_then(|l| l.chars().nth(loc.col - 1));
        if matches!(first, Some('"' | '\'')) {
            loc.col += 1;
            loc.len = loc.len.saturating_sub(2).max(1);
        }
        loc
    }

    /// The source text of a node on one line (e.g. `-1` for an integer).
    pub fn raw_text(&self, node: &Node<'_>) -> String {
        let loc = self.loc(node);
        self.slice_line(loc.line, loc.col - 1, loc.len)
    }

    pub fn file_start(&self) -> Loc {
        Loc::file_start(self.file.clone())
    }

    pub fn error_at(&mut self, node: &Node<'_>, message: impl Into<String>) -> &mut Diagnostic {
        let loc = self.loc(node);
        self.push(Diagnostic::error(Some(loc), message))
    }

    pub fn push(&mut self, diag: Diagnostic) -> &mut Diagnostic {
        self.diags.push(diag);
        self.diags.last_mut().expect("just pushed")
    }

    /// The node as a mapping with string keys, reporting keys outside `allowed` (with a
    /// suggestion) and keys that are not strings. `what` names the mapping in messages
    /// ("space.yaml", "a source", ...).
    pub fn map<'n, 'i>(
        &mut self,
        node: &'n Node<'i>,
        what: &str,
        allowed: &[&str],
    ) -> Option<Map<'n, 'i>> {
        let YamlData::Mapping(mapping) = &node.data else {
            self.error_at(
                node,
                format!("expected a mapping for {what}, found {}", kind(node)),
            );
            return None;
        };
        let mut entries = Vec::new();
        for (k, v) in mapping.iter() {
            let Some(key) = as_str(k) else {
                let found = if let YamlData::Value(Scalar::Null) = k.data {
                    "an empty key".to_owned()
                } else {
                    kind(k).to_owned()
                };
                self.error_at(k, format!("keys must be strings, found {found}"));
                continue;
            };
            if !allowed.contains(&key) {
                let help = match suggest(key, allowed) {
                    Some(s) => format!("did you mean `{s}`?"),
                    None => format!("known keys: {}", allowed.join(", ")),
                };
                self.error_at(k, format!("unknown key `{key}` in {what}"))
                    .help = Some(help);
                continue;
            }
            entries.push((key.to_owned(), k, v));
        }
        Some(Map { node, entries })
    }

    /// A required value: reports a missing key at the mapping and a null value at its key.
    pub fn required<'n, 'i>(&mut self, map: &Map<'n, 'i>, key: &str) -> Option<&'n Node<'i>> {
        match map.raw(key) {
            None => {
                self.error_at(map.node, format!("missing required key `{key}`"));
                None
            }
            Some(v) if is_null(v) => {
                let at = map.key_node(key).unwrap_or(v);
                self.error_at(at, format!("`{key}` needs a value"));
                None
            }
            Some(v) => Some(v),
        }
    }

    fn wrong_type(&mut self, key: &str, expected: &str, node: &Node<'_>) {
        self.error_at(
            node,
            format!("`{key}`: expected {expected}, found {}", kind(node)),
        );
    }

    pub fn string(&mut self, key: &str, node: &Node<'_>) -> Option<String> {
        match as_str(node) {
            Some(s) => Some(s.to_owned()),
            None => {
                self.wrong_type(key, "a string", node);
                None
            }
        }
    }

    /// An optional string: absent or null is `None`, a wrong type is reported.
    pub fn opt_string(&mut self, map: &Map<'_, '_>, key: &str) -> Option<String> {
        let node = map.get(key)?;
        self.string(key, node)
    }

    /// A string that must not be blank.
    pub fn non_empty_string(&mut self, key: &str, node: &Node<'_>) -> Option<String> {
        let s = self.string(key, node)?;
        if s.trim().is_empty() {
            self.error_at(node, format!("`{key}` is empty"));
            return None;
        }
        Some(s)
    }

    pub fn bool(&mut self, key: &str, node: &Node<'_>) -> Option<bool> {
        match node.data {
            YamlData::Value(Scalar::Boolean(b)) => Some(b),
            _ => {
                self.wrong_type(key, "true or false", node);
                if let Some(s) = as_str(node)
                    && ["yes", "no", "on", "off", "y", "n"].contains(&s.to_lowercase().as_str())
                {
                    let b = ["yes", "on", "y"].contains(&s.to_lowercase().as_str());
                    let last = self.diags.len() - 1;
                    self.diags[last].help =
                        Some(format!("YAML 1.2 reads `{s}` as text; write `{b}`"));
                }
                None
            }
        }
    }

    /// A whole number >= 1.
    pub fn positive(&mut self, key: &str, node: &Node<'_>) -> Option<u32> {
        match node.data {
            YamlData::Value(Scalar::Integer(i)) if i >= 1 && i <= i64::from(u32::MAX) => {
                Some(i as u32)
            }
            YamlData::Value(Scalar::Integer(i)) => {
                self.error_at(node, format!("`{key}` must be at least 1, found {i}"));
                None
            }
            _ => {
                self.wrong_type(key, "a whole number", node);
                None
            }
        }
    }

    /// A list of strings (a single string is accepted as a list of one when `single_ok`),
    /// each with its node. Items of the wrong type are reported and skipped.
    pub fn string_list<'n, 'i>(
        &mut self,
        key: &str,
        node: &'n Node<'i>,
        single_ok: bool,
    ) -> Vec<(String, &'n Node<'i>)> {
        match &node.data {
            YamlData::Value(Scalar::String(s)) if single_ok => vec![(s.to_string(), node)],
            YamlData::Sequence(items) => {
                let mut out = Vec::new();
                for item in items {
                    match as_str(item) {
                        Some(s) => out.push((s.to_owned(), item)),
                        None => self.wrong_type(key, "a string in this list", item),
                    }
                }
                out
            }
            _ => {
                self.wrong_type(key, "a list of strings", node);
                Vec::new()
            }
        }
    }

    /// The items of a list.
    pub fn list<'n, 'i>(&mut self, key: &str, node: &'n Node<'i>) -> Option<&'n [Node<'i>]> {
        match &node.data {
            YamlData::Sequence(items) => Some(items),
            _ => {
                self.wrong_type(key, "a list", node);
                None
            }
        }
    }
}
