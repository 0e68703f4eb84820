//! The definition folders: traits/, queries/, audiences/ and destinations/, one definition per
//! file, the file stem being the key (a destination's stem is its name).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::destination::{DestinationDef, read_destination, unknown_destination_help};
use super::diagnostic::slash_path;
use super::values::{duration, entity, is_snake_case, schedule, to_snake_case};
use super::yaml::{Map, Node, Reader};
use super::{AudienceDef, ComputedTraitDef, Diagnostic, Loc, SqlTraitDef, suggest};

const TRAIT_KEYS: [&str; 5] = ["query", "type", "schedule", "description", "backfill"];
const SIDECAR_KEYS: [&str; 4] = ["description", "schedule", "id_column", "timeout"];
const AUDIENCE_KEYS: [&str; 8] = [
    "name",
    "query",
    "type",
    "include_anonymous",
    "destinations",
    "schedule",
    "description",
    "backfill",
];

/// Everything read from the definition folders.
#[derive(Default)]
pub(crate) struct Definitions {
    pub traits: Vec<ComputedTraitDef>,
    pub sql_traits: Vec<SqlTraitDef>,
    pub audiences: Vec<AudienceDef>,
    pub destinations: Vec<DestinationDef>,
}

/// Reads traits/, queries/, audiences/ and destinations/ under `root`, reporting into `diags`.
/// `id_types` are the space's identifier types (destinations name the ones they send).
pub(crate) fn read(root: &Path, id_types: &[String], diags: &mut Vec<Diagnostic>) -> Definitions {
    stray_top_level(root, diags);
    let mut defs = Definitions::default();
    // Every destination file's name, even a broken one's: audiences are checked against these.
    let mut destination_names: Vec<String> = Vec::new();
    for (rel, text) in yaml_files(root, "destinations", diags) {
        let name = file_key(&rel, diags);
        if let Some(n) = &name {
            destination_names.push(n.clone());
        }
        let mut r = Reader::new(&rel, &text);
        if let Some(def) = read_destination(&mut r, name, id_types) {
            defs.destinations.push(def);
        }
        diags.append(&mut r.diags);
    }
    // key -> the first file that defined it
    let mut keys: BTreeMap<String, PathBuf> = BTreeMap::new();

    for (rel, text) in yaml_files(root, "traits", diags) {
        let key = file_key(&rel, diags);
        let mut r = Reader::new(&rel, &text);
        if let Some(def) = read_trait(&mut r, key.clone()) {
            defs.traits.push(def);
        }
        diags.append(&mut r.diags);
        claim_key(key, &rel, &mut keys, diags);
    }

    for (rel, sql, sidecar) in query_files(root, diags) {
        let key = file_key(&rel, diags);
        let mut ok = true;
        if sql.trim().is_empty() {
            diags.push(
                Diagnostic::error(
                    Some(Loc::file_start(&rel)),
                    format!("{} is empty", slash_path(&rel)),
                )
                .with_help(
                    "a SQL trait is a SELECT returning one identifier column and trait columns",
                ),
            );
            ok = false;
        }
        let mut def = SqlTraitDef {
            key: key.clone().unwrap_or_default(),
            file: rel.clone(),
            sql,
            id_column: None,
            id_column_loc: None,
            schedule: None,
            description: None,
            timeout: None,
        };
        if let Some((yaml_rel, yaml_text)) = sidecar {
            let mut r = Reader::new(&yaml_rel, &yaml_text);
            if let Ok(Some(doc)) = r.parse()
                && let Some(map) = r.map(&doc, "a SQL trait's sidecar", &SIDECAR_KEYS)
            {
                def.description = r.opt_string(&map, "description");
                def.schedule = schedule(&mut r, &map);
                def.timeout = duration(&mut r, &map, "timeout", false);
                if let Some(n) = map.get("id_column") {
                    def.id_column = r.non_empty_string("id_column", n);
                    def.id_column_loc = Some(r.loc(n));
                }
            }
            ok &= r.diags.is_empty();
            diags.append(&mut r.diags);
        }
        if ok && key.is_some() {
            defs.sql_traits.push(def);
        }
        claim_key(key, &rel, &mut keys, diags);
    }

    for (rel, text) in yaml_files(root, "audiences", diags) {
        let key = file_key(&rel, diags);
        let mut r = Reader::new(&rel, &text);
        if let Some(def) = read_audience(&mut r, key.clone(), Some(destination_names.as_slice())) {
            defs.audiences.push(def);
        }
        diags.append(&mut r.diags);
        claim_key(key, &rel, &mut keys, diags);
    }
    defs
}

/// Warns about near-misses at the top of the space (`trait/`, `identiy.yaml`): files that look
/// meant for Cohort but would be silently skipped.
fn stray_top_level(root: &Path, diags: &mut Vec<Diagnostic>) {
    const FOLDERS: [&str; 4] = ["traits", "queries", "audiences", "destinations"];
    const FILES: [&str; 3] = ["space.yaml", "identity.yaml", "repairs.yaml"];
    let Ok(read) = std::fs::read_dir(root) else {
        return;
    };
    let mut entries: Vec<(String, bool)> = read
        .filter_map(Result::ok)
        .map(|e| {
            let is_dir = e.file_type().is_ok_and(|t| t.is_dir());
            (e.file_name().to_string_lossy().into_owned(), is_dir)
        })
        .collect();
    entries.sort();
    for (name, is_dir) in entries {
        let (known, what): (&[&str], &str) = if is_dir {
            (&FOLDERS, "folder")
        } else if name.ends_with(".yaml") {
            (&FILES, "file")
        } else {
            continue;
        };
        if known.contains(&name.as_str()) {
            continue;
        }
        if let Some(meant) = suggest(&name, known) {
            diags.push(
                Diagnostic::warning(
                    Some(Loc::file_start(&name)),
                    format!("ignored {what} {name}: Cohort does not read it"),
                )
                .with_help(format!("did you mean `{meant}`?")),
            );
        }
    }
}

/// Records that `rel` defines `key`, reporting a clash with an earlier file.
fn claim_key(
    key: Option<String>,
    rel: &Path,
    keys: &mut BTreeMap<String, PathBuf>,
    diags: &mut Vec<Diagnostic>,
) {
    let Some(key) = key else { return };
    if let Some(first) = keys.get(&key) {
        diags.push(
            Diagnostic::error(
                Some(Loc::file_start(rel)),
                format!(
                    "key `{key}` is defined twice: by {} and by {}",
                    slash_path(first),
                    slash_path(rel)
                ),
            )
            .with_help(
                "traits, SQL traits and audiences share one namespace (`trait('key')` names any \
                 of them); rename one of the files",
            ),
        );
    } else {
        keys.insert(key, rel.to_path_buf());
    }
}

/// The key of a definition file (its stem), when it is snake_case.
fn file_key(rel: &Path, diags: &mut Vec<Diagnostic>) -> Option<String> {
    let stem = rel.file_stem()?.to_string_lossy().into_owned();
    if is_snake_case(&stem) {
        return Some(stem);
    }
    let ext = rel
        .extension()
        .map(|e| e.to_string_lossy().into_owned())
        .unwrap_or_default();
    diags.push(
        Diagnostic::error(
            Some(Loc::file_start(rel)),
            format!(
                "`{stem}` is not a valid key: the file name is the key, and keys are snake_case"
            ),
        )
        .with_help(format!(
            "keys use a-z, 0-9 and `_` and start with a letter; rename the file to `{}.{ext}`",
            to_snake_case(&stem)
        )),
    );
    None
}

/// The files of one folder, sorted by name, with a warning for anything that is not a
/// definition. Hidden files are skipped silently.
fn folder_entries(root: &Path, folder: &str, diags: &mut Vec<Diagnostic>) -> Vec<PathBuf> {
    let dir = root.join(folder);
    let Ok(read) = std::fs::read_dir(&dir) else {
        if dir.is_file() {
            diags.push(Diagnostic::warning(
                Some(Loc::file_start(folder)),
                format!("`{folder}` is a file, not a folder; it is ignored"),
            ));
        }
        return Vec::new();
    };
    let mut names: Vec<(String, bool)> = read
        .filter_map(Result::ok)
        .map(|e| {
            let is_dir = e.file_type().is_ok_and(|t| t.is_dir());
            (e.file_name().to_string_lossy().into_owned(), is_dir)
        })
        .filter(|(name, _)| !name.starts_with('.'))
        .collect();
    names.sort();
    let mut out = Vec::new();
    for (name, is_dir) in names {
        let rel = Path::new(folder).join(&name);
        if is_dir {
            diags.push(Diagnostic::warning(
                Some(Loc::file_start(&rel)),
                format!(
                    "ignored folder {}: definitions are not read from sub-folders",
                    slash_path(&rel)
                ),
            ));
        } else {
            out.push(rel);
        }
    }
    out
}

fn ignored(rel: &Path, expected: &str, diags: &mut Vec<Diagnostic>) {
    let d = Diagnostic::warning(
        Some(Loc::file_start(rel)),
        format!(
            "ignored {}: only {expected} files are read here",
            slash_path(rel)
        ),
    );
    let d = if rel.extension().is_some_and(|e| e == "yml") {
        let renamed = rel.with_extension("yaml");
        d.with_help(format!("rename it to {}", slash_path(&renamed)))
    } else {
        d
    };
    diags.push(d);
}

fn read_text(root: &Path, rel: &Path, diags: &mut Vec<Diagnostic>) -> Option<String> {
    match super::text::read_text(root, rel) {
        Ok(text) => Some(text),
        Err(super::text::ReadError::NotUtf8(d)) => {
            diags.push(d);
            None
        }
        Err(super::text::ReadError::Io(e)) => {
            diags.push(Diagnostic::error(
                Some(Loc::file_start(rel)),
                format!("cannot read {}: {e}", slash_path(rel)),
            ));
            None
        }
    }
}

/// The .yaml files of a folder with their text.
fn yaml_files(root: &Path, folder: &str, diags: &mut Vec<Diagnostic>) -> Vec<(PathBuf, String)> {
    let mut out = Vec::new();
    for rel in folder_entries(root, folder, diags) {
        if rel.extension().is_some_and(|e| e == "yaml") {
            if let Some(text) = read_text(root, &rel, diags) {
                out.push((rel, text));
            }
        } else {
            ignored(&rel, ".yaml", diags);
        }
    }
    out
}

type QueryFile = (PathBuf, String, Option<(PathBuf, String)>);

/// The .sql files of queries/ with their text and their optional .yaml sidecars.
fn query_files(root: &Path, diags: &mut Vec<Diagnostic>) -> Vec<QueryFile> {
    let entries = folder_entries(root, "queries", diags);
    let has = |rel: &Path| entries.iter().any(|e| e == rel);
    let mut out = Vec::new();
    for rel in &entries {
        match rel.extension().and_then(|e| e.to_str()) {
            Some("sql") => {
                let Some(sql) = read_text(root, rel, diags) else {
                    continue;
                };
                let yaml = rel.with_extension("yaml");
                let sidecar = if has(&yaml) {
                    read_text(root, &yaml, diags).map(|t| (yaml, t))
                } else {
                    None
                };
                out.push((rel.clone(), sql, sidecar));
            }
            Some("yaml") => {
                let sql = rel.with_extension("sql");
                if !has(&sql) {
                    diags.push(
                        Diagnostic::error(
                            Some(Loc::file_start(rel)),
                            format!(
                                "missing file {}: {} is its sidecar",
                                slash_path(&sql),
                                slash_path(rel)
                            ),
                        )
                        .with_help(
                            "a SQL trait is a .sql file; the .yaml beside it only adds \
                             description, schedule, id_column and timeout",
                        ),
                    );
                }
            }
            _ => ignored(rel, ".sql and .yaml", diags),
        }
    }
    out
}

/// `query:`: required, non-empty, kept with the place its text starts.
fn query(r: &mut Reader<'_>, map: &Map<'_, '_>) -> Option<(String, Loc)> {
    let node = r.required(map, "query")?;
    let q = r.non_empty_string("query", node)?;
    Some((q, r.content_loc(node)))
}

/// The top-level mapping of a definition file; an empty file is reported as such.
fn top<'n, 'i>(
    r: &mut Reader<'_>,
    doc: Option<&'n Node<'i>>,
    what: &str,
    keys: &[&str],
) -> Option<Map<'n, 'i>> {
    let Some(doc) = doc else {
        let loc = r.file_start();
        r.push(Diagnostic::error(
            Some(loc),
            format!("{} is empty", slash_path(&r.file)),
        ))
        .help = Some(format!("{what} needs at least `query: ...`"));
        return None;
    };
    r.map(doc, what, keys)
}

fn read_trait(r: &mut Reader<'_>, key: Option<String>) -> Option<ComputedTraitDef> {
    let doc = r.parse().ok()?;
    let map = top(r, doc.as_ref(), "a computed trait", &TRAIT_KEYS)?;
    let query = query(r, &map);
    let entity = entity(r, &map);
    let schedule = schedule(r, &map);
    let description = r.opt_string(&map, "description");
    let backfill = backfill(r, &map);
    let (query, query_loc) = query?;
    Some(ComputedTraitDef {
        key: key?,
        file: r.file.clone(),
        query,
        query_loc,
        entity,
        schedule,
        description,
        backfill,
        first_seen: None,
    })
}

/// Reads an audience file; with `known_destinations`, every destination it names must be one
/// of them.
fn read_audience(
    r: &mut Reader<'_>,
    key: Option<String>,
    known_destinations: Option<&[String]>,
) -> Option<AudienceDef> {
    let doc = r.parse().ok()?;
    let map = top(r, doc.as_ref(), "an audience", &AUDIENCE_KEYS)?;
    let name = map.get("name").and_then(|n| r.non_empty_string("name", n));
    let query = query(r, &map);
    let entity = entity(r, &map);
    let include_anonymous = map
        .get("include_anonymous")
        .and_then(|n| r.bool("include_anonymous", n))
        .unwrap_or(true);
    let destinations = map.get("destinations").map_or_else(Vec::new, |n| {
        let mut out: Vec<String> = Vec::new();
        for (d, item) in r.string_list("destinations", n, false) {
            if d.trim().is_empty() {
                r.error_at(item, "a destination is empty");
            } else if out.contains(&d) {
                r.error_at(item, format!("destination `{d}` is listed twice"));
            } else if let Some(known) = known_destinations
                && !known.contains(&d)
            {
                r.error_at(item, format!("unknown destination `{d}`")).help =
                    Some(unknown_destination_help(&d, known));
            } else {
                out.push(d);
            }
        }
        out
    });
    let schedule = schedule(r, &map);
    let description = r.opt_string(&map, "description");
    let backfill = backfill(r, &map);
    let (query, query_loc) = query?;
    let key = key?;
    Some(AudienceDef {
        name: name.unwrap_or_else(|| key.clone()),
        key,
        file: r.file.clone(),
        query,
        query_loc,
        entity,
        include_anonymous,
        destinations,
        schedule,
        description,
        backfill,
        first_seen: None,
    })
}

/// `backfill:` (default true): whether events from before the definition first appeared
/// count.
fn backfill(r: &mut Reader<'_>, map: &Map<'_, '_>) -> bool {
    map.get("backfill")
        .and_then(|n| r.bool("backfill", n))
        .unwrap_or(true)
}

/// Reads one audience file that may live outside the space (for `cohort preview`): `rel` is
/// how the file is named in diagnostics, `text` its content. Its key is its file stem.
pub fn read_audience_text(rel: &Path, text: &str) -> Result<AudienceDef, Vec<Diagnostic>> {
    let mut diags = Vec::new();
    let key = file_key(rel, &mut diags);
    let mut r = Reader::new(rel, text);
    let def = read_audience(&mut r, key, None);
    diags.append(&mut r.diags);
    match def {
        Some(d) if diags.iter().all(|d| !d.is_error()) => Ok(d),
        _ => Err(diags),
    }
}
