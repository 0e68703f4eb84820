//! Problems found in a space, each with a file:line:col, rendered as plain deterministic text.

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
    /// The source line is read from `space_root`/`loc.file`; when it cannot be read, the
    /// snippet is left out.
    pub fn render(&self, space_root: &Path) -> String {
        let mut out = format!("{}: {}\n", self.severity, self.message);
        let mut gutter = 2;
        if let Some(loc) = &self.loc {
            let line_text = std::fs::read_to_string(space_root.join(&loc.file))
                .ok()
                .and_then(|text| {
                    text.lines()
                        .nth(loc.line.saturating_sub(1))
                        .map(str::to_owned)
                });
            match line_text {
                Some(text) if !text.trim().is_empty() => {
                    let number = loc.line.to_string();
                    gutter = (number.len() + 1).max(2);
                    let pad = " ".repeat(gutter);
                    let (shown, start, width) = underline(&text, loc.col, loc.len);
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

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.loc {
            Some(loc) => write!(f, "{}: {loc}: {}", self.severity, self.message),
            None => write!(f, "{}: {}", self.severity, self.message),
        }
    }
}

/// Renders every diagnostic, separated by blank lines.
pub fn render_all(diagnostics: &[Diagnostic], space_root: &Path) -> String {
    diagnostics
        .iter()
        .map(|d| d.render(space_root))
        .collect::<Vec<_>>()
        .join("\n")
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
    (shown, start, end - start)
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
    fn render_without_loc_has_message_and_help() {
        let d = Diagnostic::error(None, "boom").with_help("try less");
        assert_eq!(
            d.render(Path::new("/nonexistent")),
            "error: boom\n  = help: try less\n"
        );
    }
}
