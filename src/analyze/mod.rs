//! Semantics: a loaded space checked against the world and itself. Every source URL can be
//! opened, the output URL is well-formed, every trait and audience query parses into the shape
//! its file needs, and every SQL trait is a read-only query with a known identifier column.

pub mod audiences;
pub mod live;
pub mod sql_trait;

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
    validate_space_as(dir, None).await
}

/// [`validate_space`] of the files in `dir` as if they were the space at `root` (its sources
/// and output resolved from there): how `cohort promote` checks a staged copy of another
/// space's definitions against the target's sources.
pub async fn validate_space_as(dir: &Path, root: Option<&Path>) -> Validation {
    let mut load = spec::load_space(dir);
    if let (Some(space), Some(root)) = (load.space.as_mut(), root) {
        space.root = root.to_path_buf();
    }
    let mut diagnostics = load.diagnostics;
    if let Some(space) = &load.space {
        diagnostics.extend(check_locations(space).await);
        diagnostics.extend(check_definitions(space));
        diagnostics.extend(check_sql_trait_id_columns(space));
    } else if let Some(partial) = &load.partial {
        // Some file has errors: still report what every other definition gets wrong, so that
        // one run of validate shows every problem. Sources and identifier types are left out:
        // a broken space.yaml or identity.yaml would make them report what is not wrong.
        diagnostics.extend(check_definitions(partial));
    }
    spec::sort_diagnostics(&mut diagnostics);
    let has_errors = diagnostics
        .iter()
        .any(|d| matches!(d.severity, Severity::Error));
    Validation {
        space: if has_errors { None } else { load.space },
        diagnostics,
    }
}

/// The checks that look at each definition on its own (and audiences at each other).
fn check_definitions(space: &Space) -> Vec<Diagnostic> {
    let mut out = check_normalizations(space);
    out.extend(check_queries(space));
    out.extend(audiences::check_audiences(space));
    for def in &space.sql_traits {
        out.extend(sql_trait::check_sql_trait(def));
    }
    out
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

/// Every computed trait's and audience's query parses and has the shape its file needs.
fn check_queries(space: &Space) -> Vec<Diagnostic> {
    let traits = space
        .traits
        .iter()
        .filter_map(|d| spec::parsed_trait(d).err());
    let audiences = space
        .audiences
        .iter()
        .filter_map(|d| spec::parsed_audience(d).err());
    traits.chain(audiences).collect()
}

/// A SQL trait's `id_column` must name an identifier type of the space.
fn check_sql_trait_id_columns(space: &Space) -> Vec<Diagnostic> {
    let types: Vec<&str> = space
        .identity
        .identifiers
        .iter()
        .map(|d| d.id_type.as_str())
        .collect();
    let mut out = Vec::new();
    for def in &space.sql_traits {
        let Some(id) = &def.id_column else { continue };
        if types.contains(&id.as_str()) {
            continue;
        }
        let loc = def
            .id_column_loc
            .clone()
            .unwrap_or_else(|| spec::Loc::file_start(def.file.with_extension("yaml")));
        let help = match spec::suggest(id, &types) {
            Some(s) => format!("did you mean `{s}`?"),
            None => format!("the identifier types are: {}", types.join(", ")),
        };
        out.push(
            Diagnostic::error(
                Some(loc),
                format!(
                    "id_column `{id}` of SQL trait `{}` is not an identifier type of the space",
                    def.key
                ),
            )
            .with_help(help),
        );
    }
    out
}

async fn check_locations(space: &Space) -> Vec<Diagnostic> {
    let mut out = Vec::new();
    for s in &space.sources {
        let opened = match objects::open_raw(&space.root, &s.url) {
            Ok(loc) => {
                // A source that collects (write keys) starts empty: its folder is made here,
                // so a new space can be served, validated and run before any event arrives.
                if !s.write_keys.is_empty()
                    && let Some(dir) = loc.local_dir()
                    && !dir.exists()
                {
                    let _ = std::fs::create_dir_all(&dir);
                }
                objects::probe(&loc).await.map(|_| ())
            }
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
