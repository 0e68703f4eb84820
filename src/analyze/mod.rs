//! Semantics: a loaded space checked against the world. Today that means every source URL can
//! be opened and the output URL is well-formed; later issues add name binding, dependency
//! order and types here.

use std::path::Path;

use crate::spec::{self, Diagnostic, Severity, Space};
use crate::store::objects;

/// A space with every problem found in it.
pub struct Validation {
    /// The space, when nothing is an error.
    pub space: Option<Space>,
    pub diagnostics: Vec<Diagnostic>,
}

impl Validation {
    pub fn errors(&self) -> usize {
        self.diagnostics
            .iter()
            .filter(|d| matches!(d.severity, Severity::Error))
            .count()
    }
    pub fn warnings(&self) -> usize {
        self.diagnostics.len() - self.errors()
    }
}

/// Loads `dir` and checks what `spec` cannot: that sources open and the output URL parses.
pub async fn validate_space(dir: &Path) -> Validation {
    let load = spec::load_space(dir);
    let mut diagnostics = load.diagnostics;
    if let Some(space) = &load.space {
        diagnostics.extend(check_locations(space).await);
        diagnostics.extend(check_normalizations(space));
    }
    let has_errors = diagnostics
        .iter()
        .any(|d| matches!(d.severity, Severity::Error));
    Validation {
        space: if has_errors { None } else { load.space },
        diagnostics,
    }
}

/// SQL normalizations of identity.yaml must parse as one expression over `value`.
fn check_normalizations(space: &Space) -> Vec<Diagnostic> {
    use datafusion::sql::sqlparser::dialect::GenericDialect;
    use datafusion::sql::sqlparser::parser::Parser;
    let mut out = Vec::new();
    for def in &space.identity.identifiers {
        for n in &def.normalize {
            if !spec::is_sql_normalization(n) {
                continue;
            }
            let parsed = Parser::new(&GenericDialect)
                .try_with_sql(n)
                .and_then(|mut p| p.parse_expr());
            if let Err(e) = parsed {
                out.push(
                    Diagnostic::error(
                        Some(def.loc.clone()),
                        format!("normalization of `{}` is not a SQL expression: {e}", def.id_type),
                    )
                    .with_help("write one expression over `value`, e.g. `regexp_replace(value, '[^0-9]', '', 'g')`"),
                );
            }
        }
    }
    out
}

async fn check_locations(space: &Space) -> Vec<Diagnostic> {
    let mut out = Vec::new();
    for s in &space.sources {
        let opened = match objects::open_raw(&space.root, &s.url) {
            Ok(loc) => objects::probe(&loc).await.map(|_| ()),
            Err(e) => Err(e),
        };
        if let Err(e) = opened {
            let help = if s.url.starts_with("s3://") {
                "check the bucket name and the AWS_* environment variables (AWS_ENDPOINT_URL, AWS_REGION, credentials)"
            } else {
                "a relative path is taken from the space folder; create the folder or fix the path (`cohort generate --out <url>` writes sample data)"
            };
            out.push(
                Diagnostic::error(
                    Some(s.url_loc.clone()),
                    format!("source `{}` cannot be opened: {e}", s.name),
                )
                .with_help(help),
            );
        }
    }
    if let Err(e) = objects::resolve_url(&space.root, &space.output) {
        out.push(Diagnostic::error(
            Some(space.output_loc.clone()),
            format!("output {e}"),
        ));
    }
    out
}
