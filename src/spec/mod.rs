//! Syntax: the files of a space folder parsed into typed definitions, with file:line:col on
//! every problem. Knows nothing of DataFusion or storage.
//!
//! [`load_space`] reads a whole space folder (DESIGN.md §3) and reports every problem of every
//! file in one pass, as [`Diagnostic`]s sorted by file, line and column. Query strings are only
//! checked to be non-empty here; they keep their [`Loc`] so that the query-language parser
//! ([`query`], run by `analyze::validate_space`) can point into the file.

mod defs;
mod destination;
mod diagnostic;
mod folders;
mod identity;
pub mod preset;
pub mod query;
mod repairs;
mod space_file;
mod starter;
mod suggest;
mod text;
mod values;
mod yaml;

use std::path::{Path, PathBuf};

pub use defs::{
    AudienceDef, ComputedTraitDef, DEFAULT_BLOCKED_PATTERNS, DEFAULT_BLOCKED_VALUES, EntityType,
    IdentifierDef, IdentityRules, LimitPeriod, SourceDef, Space, SpaceLoad, SqlTraitDef,
};
pub use destination::{DESTINATION_TYPES, DeliveryMode, DestinationDef, substitute_env};
pub use diagnostic::{Diagnostic, Loc, Severity, render_all, slash_path, sort_diagnostics};
pub use folders::read_audience_text;
pub use identity::{NORMALIZATIONS, check_identifier_path, is_sql_normalization};
pub use preset::Preset;
pub use query::{
    MAX_NESTING, QueryError, parse_audience_query, parse_query, parse_trait_query, parsed_audience,
    parsed_trait, query_diagnostic, span_loc,
};
pub use repairs::{RepairDef, RepairKind, entry_text, split_identifier};
pub use space_file::KNOWN_SPEC_VERSIONS;
pub use starter::init_files;
pub use suggest::{edit_distance, suggest};
pub use values::{format_duration, is_snake_case, parse_duration, parse_memory_limit};

use text::ReadError;
use yaml::Reader;

/// Reads the space folder `dir`: space.yaml, identity.yaml (optional), traits/, queries/,
/// audiences/ and destinations/. Every problem of every file is reported; the space is returned only when none
/// of them is an error. Source URLs are not opened here (that is `analyze`'s job).
pub fn load_space(dir: &Path) -> SpaceLoad {
    let mut diags = Vec::new();

    let header = match text::read_text(dir, Path::new("space.yaml")) {
        Ok(text) => {
            let mut r = Reader::new("space.yaml", &text);
            let header = match r.parse() {
                Ok(doc) => space_file::read(&mut r, doc.as_ref()),
                Err(()) => None,
            };
            diags.append(&mut r.diags);
            header
        }
        Err(ReadError::NotUtf8(d)) => {
            diags.push(d);
            None
        }
        Err(ReadError::Io(e)) => {
            let mut d = if e.kind() == std::io::ErrorKind::NotFound {
                Diagnostic::error(None, format!("no space.yaml in {}", dir.display()))
            } else {
                Diagnostic::error(
                    None,
                    format!("cannot read space.yaml in {}: {e}", dir.display()),
                )
            };
            if !dir.is_dir() {
                d = d.with_help(format!("{} is not a folder", dir.display()));
            } else if dir.join("space.yml").is_file() {
                d = d.with_help("found space.yml; rename it to space.yaml");
            } else if e.kind() == std::io::ErrorKind::NotFound {
                d = d.with_help("create one with `cohort init`, or point at a space folder");
            }
            diags.push(d);
            None
        }
    };

    let identity = match text::read_text(dir, Path::new("identity.yaml")) {
        Ok(text) => {
            let mut r = Reader::new("identity.yaml", &text);
            let rules = match r.parse() {
                Ok(doc) => identity::read(&mut r, doc.as_ref()),
                Err(()) => IdentityRules::segment_defaults(),
            };
            diags.append(&mut r.diags);
            rules
        }
        Err(ReadError::NotUtf8(d)) => {
            diags.push(d);
            IdentityRules::segment_defaults()
        }
        Err(ReadError::Io(e)) if e.kind() == std::io::ErrorKind::NotFound => {
            if dir.join("identity.yml").is_file() {
                diags.push(
                    Diagnostic::warning(
                        Some(Loc::file_start("identity.yml")),
                        "ignored identity.yml: Segment's default identity rules are used",
                    )
                    .with_help("rename it to identity.yaml"),
                );
            }
            IdentityRules::segment_defaults()
        }
        Err(ReadError::Io(e)) => {
            diags.push(Diagnostic::error(
                Some(Loc::file_start("identity.yaml")),
                format!("cannot read identity.yaml: {e}"),
            ));
            IdentityRules::segment_defaults()
        }
    };

    let mut identity = identity;
    match text::read_text(dir, Path::new("repairs.yaml")) {
        Ok(text) => {
            let mut r = Reader::new("repairs.yaml", &text);
            if let Ok(doc) = r.parse() {
                let types: Vec<&str> = identity
                    .identifiers
                    .iter()
                    .map(|i| i.id_type.as_str())
                    .filter(|t| *t != "group_id")
                    .collect();
                identity.repairs = repairs::read(&mut r, doc.as_ref(), &types);
            }
            diags.append(&mut r.diags);
        }
        Err(ReadError::NotUtf8(d)) => diags.push(d),
        Err(ReadError::Io(e)) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(ReadError::Io(e)) => diags.push(Diagnostic::error(
            Some(Loc::file_start("repairs.yaml")),
            format!("cannot read repairs.yaml: {e}"),
        )),
    }

    let id_types: Vec<String> = identity
        .identifiers
        .iter()
        .map(|i| i.id_type.clone())
        .chain(["group_id".to_string()])
        .collect();
    let id_types = {
        let mut t = id_types;
        t.sort();
        t.dedup();
        t
    };
    let defs = folders::read(dir, &id_types, &mut diags);

    diagnostic::sort_diagnostics(&mut diags);
    let has_errors = diags.iter().any(Diagnostic::is_error);
    let header_read = header.is_some();
    let h = header.unwrap_or_else(space_file::Header::unread);
    let space = Space {
        root: dir.to_path_buf(),
        name: h.name,
        spec_version: h.spec_version,
        description: h.description,
        sources: h.sources,
        output: h.output,
        output_loc: h.output_loc,
        schedule: h.schedule,
        memory_limit: h.memory_limit,
        sql_trait_timeout: h.sql_trait_timeout,
        retention: h.retention,
        identity,
        traits: defs.traits,
        sql_traits: defs.sql_traits,
        audiences: defs.audiences,
        destinations: defs.destinations,
    };
    let (space, partial) = if header_read && !has_errors {
        (Some(space), None)
    } else {
        (None, Some(space))
    };
    SpaceLoad {
        space,
        partial,
        diagnostics: diags,
    }
}

impl Space {
    /// Every definition key (traits, SQL traits, audiences) with the file defining it.
    pub fn keys(&self) -> Vec<(&str, &PathBuf)> {
        let mut keys: Vec<(&str, &PathBuf)> = self
            .traits
            .iter()
            .map(|t| (t.key.as_str(), &t.file))
            .chain(self.sql_traits.iter().map(|t| (t.key.as_str(), &t.file)))
            .chain(self.audiences.iter().map(|a| (a.key.as_str(), &a.file)))
            .collect();
        keys.sort();
        keys
    }
}
