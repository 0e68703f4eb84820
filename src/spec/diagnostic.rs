//! Problems found in a space, each with a file:line:col, rendered as plain deterministic text.

use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};

/// A place in a space file: the file relative to the space root, a 1-based line and column
/// (in characters) and how many characters to underline.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
pub struct Loc {
    /// Relative to the space root, e.g. `identity.yaml` or `traits/total_revenue.yaml`.
    pub file: PathBuf,
    /// 1-based line.
    pub line: usize,
    /// 1-based column, in characters.
    pub col: usize,
    /// Characters to underline; at least 1.
    pub len: usize,
}

impl Loc {
    /// The first character of `file`: for problems with a file as a whole.
    pub fn file_start(file: impl Into<PathBuf>) -> Loc {
        Loc {
            file: file.into(),
            line: 1,
            col: 1,
            len: 1,
        }
    }
}

impl fmt::Display for Loc {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}", slash_path(&self.file), self.line, self.col)
    }
}

/// How bad a problem is: errors stop a run, warnings are only shown.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Error,
    Warning,
}

impl Severity {
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Error => "error",
            Severity::Warning => "warning",
        }
    }
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One problem in a space.
#[derive(Clone, Debug, PartialEq, Eq, Hash, serde::Serialize)]
pub struct Diagnostic {
    pub severity: Severity,
    pub loc: Option<Loc>,
    pub message: String,
    pub help: Option<String>,
}

impl Diagnostic {
    pub fn error(loc: Option<Loc>, message: impl Into<String>) -> Self {
        Diagnostic {
            severity: Severity::Error,
            loc,
            message: message.into(),
            help: None,
        }
    }

    pub fn warning(loc: Option<Loc>, message: impl Into<String>) -> Self {
        Diagnostic {
            severity: Severity::Warning,
            loc,
            message: message.into(),
            help: None,
        }
    }

    pub fn with_help(mut self, help: impl Into<String>) -> Self {
        self.help = Some(help.into());
        self
    }

    pub fn is_error(&self) -> bool {
        self.severity == Severity::Error
    }

    /// Plain text, no colours, independent of the terminal:
    ///
    /// ```text
    /// error: unknown key `priorty` in an identifier
    ///  --> identity.yaml:3:41
    ///   |
    /// 3 |   - { type: user_id, from: [userId], priorty: 1 }
    ///   |                                      ^^^^^^^
    ///   = help: did you mean `priority`?
    /// ```
    ///
    /// The source line is read from `space_root`/`loc.file` (bytes that are not UTF-8 shown
    /// as `\u{FFFD}`); when it cannot be read, the snippet is left out. A line longer than
    /// [`SHOWN_WIDTH`] characters is shown as a window around the column, cut with `…`.
    pub fn render(&self, space_root: &Path) -> String {
        let text = self
            .loc
            .as_ref()
            .and_then(|loc| read_lossy(&space_root.join(&loc.file)));
        self.render_in(text.as_deref())
    }

    /// [`Diagnostic::render`] with the text of `loc.file` already read.
    fn render_in(&self, file_text: Option<&str>) -> String {
        let mut out = format!("{}: {}\n", self.severity, self.message);
        let mut gutter = 2;
        if let Some(loc) = &self.loc {
            let line_text = file_text.and_then(|text| text.lines().nth(loc.line.saturating_sub(1)));
            match line_text {
                Some(text) if !text.trim().is_empty() => {
                    let number = loc.line.to_string();
                    gutter = (number.len() + 1).max(2);
                    let pad = " ".repeat(gutter);
                    let (shown, start, width) = underline(text, loc.col, loc.len);
                    out.push_str(&format!("{}--> {loc}\n", " ".repeat(gutter - 1)));
                    out.push_str(&format!("{pad}|\n"));
                    out.push_str(&format!("{number} | {shown}\n"));
                    out.push_str(&format!(
                        "{pad}| {}{}\n",
                        " ".repeat(start),
                        "^".repeat(width)
                    ));
                }
                _ => out.push_str(&format!("{}--> {loc}\n", " ".repeat(gutter - 1))),
            }
        }
        if let Some(help) = &self.help {
            out.push_str(&format!("{}= help: {help}\n", " ".repeat(gutter)));
        }
        out
    }
}

/// The widest source line shown under a diagnostic, in characters; longer lines are cut to a
/// window around the column.
pub const SHOWN_WIDTH: usize = 100;

/// At most this many diagnostics are shown per file; the rest are counted in one line.
pub const SHOWN_PER_FILE: usize = 20;

/// A file's text, with bytes that are not UTF-8 replaced; `None` when it cannot be read.
fn read_lossy(path: &Path) -> Option<String> {
    std::fs::read(path)
        .ok()
        .map(|bytes| String::from_utf8_lossy(&bytes).into_owned())
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.loc {
            Some(loc) => write!(f, "{}: {loc}: {}", self.severity, self.message),
            None => write!(f, "{}: {}", self.severity, self.message),
        }
    }
}

/// Renders every diagnostic, separated by blank lines: at most [`SHOWN_PER_FILE`] per file,
/// then one line counting the rest of that file's (a file with 30,000 errors would otherwise
/// print each of them). Each file is read once.
pub fn render_all(diagnostics: &[Diagnostic], space_root: &Path) -> String {
    let mut texts: HashMap<&Path, Option<String>> = HashMap::new();
    let mut shown: HashMap<Option<&Path>, usize> = HashMap::new();
    let mut hidden: Vec<(&Path, usize, usize)> = Vec::new();
    let mut parts = Vec::new();
    for d in diagnostics {
        let file = d.loc.as_ref().map(|l| l.file.as_path());
        let n = shown.entry(file).or_default();
        if *n >= SHOWN_PER_FILE
            && let Some(file) = file
        {
            let i = match hidden.iter().position(|(f, ..)| *f == file) {
                Some(i) => i,
                None => {
                    hidden.push((file, 0, 0));
                    hidden.len() - 1
                }
            };
            if d.is_error() {
                hidden[i].1 += 1;
            } else {
                hidden[i].2 += 1;
            }
            continue;
        }
        *n += 1;
        let text = file.and_then(|f| {
            texts
                .entry(f)
                .or_insert_with(|| read_lossy(&space_root.join(f)))
                .as_deref()
        });
        parts.push(d.render_in(text));
    }
    for (file, errors, warnings) in hidden {
        let count = match (errors, warnings) {
            (e, 0) => format!("{e} more error(s)"),
            (0, w) => format!("{w} more warning(s)"),
            (e, w) => format!("{e} more error(s) and {w} more warning(s)"),
        };
        parts.push(format!(
            "... and {count} in {} not shown (the first {SHOWN_PER_FILE} are above)\n",
            slash_path(file)
        ));
    }
    parts.join("\n")
}

/// Sorts by file, then line, then column (diagnostics without a place first), keeping the
/// order of emission among equals, and drops exact repeats.
pub fn sort_diagnostics(diagnostics: &mut Vec<Diagnostic>) {
    diagnostics.sort_by(|a, b| {
        let key = |d: &Diagnostic| d.loc.as_ref().map(|l| (l.file.clone(), l.line, l.col));
        key(a).cmp(&key(b))
    });
    diagnostics.dedup();
}

/// The line with tabs expanded, and the display column and width of the underline.
fn underline(text: &str, col: usize, len: usize) -> (String, usize, usize) {
    let mut shown = String::new();
    let mut start = None;
    let mut end = None;
    let first = col.max(1) - 1;
    let last = first + len.max(1);
    for (i, c) in text.chars().enumerate() {
        if i == first {
            start = Some(shown.chars().count());
        }
        if i == last {
            end = Some(shown.chars().count());
        }
        if c == '\t' {
            shown.push_str("    ");
        } else {
            shown.push(c);
        }
    }
    let total = shown.chars().count();
    let start = start.unwrap_or(total);
    let end = end.unwrap_or(total).max(start + 1);
    if total <= SHOWN_WIDTH {
        return (shown, start, end - start);
    }
    // A window of SHOWN_WIDTH characters with the column a third of the way in.
    let from = start
        .saturating_sub(SHOWN_WIDTH / 3)
        .min(total.saturating_sub(SHOWN_WIDTH));
    let to = (from + SHOWN_WIDTH).min(total);
    let mut window: String = shown.chars().skip(from).take(to - from).collect();
    let mut caret = start - from;
    if from > 0 {
        window.insert(0, '…');
        caret += 1;
    }
    if to < total {
        window.push('…');
    }
    let width = end.min(to).saturating_sub(start).max(1);
    (window, caret, width)
}

/// A relative path with `/` separators on every platform, so output is the same everywhere.
pub fn slash_path(path: &Path) -> String {
    path.components()
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect::<Vec<_>>()
        .join("/")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn underline_clamps_to_the_line() {
        assert_eq!(underline("abc", 2, 1), ("abc".into(), 1, 1));
        assert_eq!(underline("abc", 2, 10), ("abc".into(), 1, 2));
        assert_eq!(underline("abc", 9, 1), ("abc".into(), 3, 1));
        assert_eq!(underline("\tab", 2, 1), ("    ab".into(), 4, 1));
    }

    #[test]
    fn long_lines_are_cut_to_a_window_around_the_column() {
        let line = format!("{}XYZ{}", "a".repeat(5_000), "b".repeat(5_000));
        let (shown, start, width) = underline(&line, 5_001, 3);
        assert_eq!(shown.chars().count(), SHOWN_WIDTH + 2);
        assert!(shown.starts_with('…') && shown.ends_with('…'));
        assert_eq!(
            shown.chars().skip(start).take(width).collect::<String>(),
            "XYZ"
        );
        // At the start: no leading cut.
        let (shown, start, _) = underline(&line, 1, 1);
        assert!(shown.starts_with('a') && shown.ends_with('…'));
        assert_eq!(start, 0);
        // At the end: no trailing cut, and the caret stays on the line.
        let (shown, start, width) = underline(&line, 10_003, 1);
        assert!(shown.starts_with('…') && shown.ends_with('b'));
        assert_eq!((start, width), (SHOWN_WIDTH, 1));
    }

    #[test]
    fn render_all_caps_each_file() {
        let d = |file: &str, line| {
            Diagnostic::error(
                Some(Loc {
                    file: file.into(),
                    line,
                    col: 1,
                    len: 1,
                }),
                "boom",
            )
        };
        let mut all: Vec<Diagnostic> = (1..=30_000).map(|l| d("a.yaml", l)).collect();
        all.push(d("b.yaml", 1));
        all.push(Diagnostic::warning(
            Some(Loc::file_start("a.yaml")),
            "careful",
        ));
        let text = render_all(&all, Path::new("/nonexistent"));
        assert_eq!(text.matches("error: boom").count(), SHOWN_PER_FILE + 1);
        assert!(text.contains("b.yaml:1:1"));
        assert!(
            text.contains("... and 29980 more error(s) and 1 more warning(s) in a.yaml not shown"),
            "{text}"
        );
    }

    #[test]
    fn render_without_loc_has_message_and_help() {
        let d = Diagnostic::error(None, "boom").with_help("try less");
        assert_eq!(
            d.render(Path::new("/nonexistent")),
            "error: boom\n  = help: try less\n"
        );
    }
}
