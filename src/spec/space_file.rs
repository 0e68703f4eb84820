//! space.yaml: the space's name, spec version, sources, output root and defaults.

use std::collections::HashMap;

use super::values::{duration, is_snake_case, parse_memory_limit, schedule, to_snake_case};
use super::yaml::{Map, Node, Reader};
use super::{Loc, Preset, SourceDef, suggest};

/// The spec versions this Cohort understands.
pub const KNOWN_SPEC_VERSIONS: [u32; 1] = [1];

const SPACE_KEYS: [&str; 9] = [
    "name",
    "spec_version",
    "description",
    "sources",
    "output",
    "schedule",
    "memory_limit",
    "sql_trait_timeout",
    "retention",
];

const SOURCE_KEYS: [&str; 5] = ["name", "preset", "url", "partition_column", "write_keys"];

/// What space.yaml says; the rest of [`super::Space`] comes from the other files.
pub(crate) struct Header {
    pub name: String,
    pub spec_version: u32,
    pub description: Option<String>,
    pub sources: Vec<SourceDef>,
    pub output: String,
    pub output_loc: Loc,
    pub schedule: Option<String>,
    pub memory_limit: Option<String>,
    pub sql_trait_timeout: Option<String>,
    pub retention: Option<String>,
}

impl Header {
    /// The header of a space whose space.yaml could not be read: no name, no sources, no
    /// output. Only for [`super::SpaceLoad::partial`], whose other files are still checked.
    pub(crate) fn unread() -> Header {
        Header {
            name: String::new(),
            spec_version: 0,
            description: None,
            sources: Vec::new(),
            output: String::new(),
            output_loc: Loc::file_start("space.yaml"),
            schedule: None,
            memory_limit: None,
            sql_trait_timeout: None,
            retention: None,
        }
    }
}

/// Reads space.yaml; `None` when something required is missing or wrong (all reported).
pub(crate) fn read(r: &mut Reader<'_>, doc: Option<&Node<'_>>) -> Option<Header> {
    let Some(doc) = doc else {
        let loc = r.file_start();
        r.push(super::Diagnostic::error(Some(loc), "space.yaml is empty"))
            .help = Some("it needs at least `name`, `spec_version`, `sources` and `output`".into());
        return None;
    };
    let map = r.map(doc, "space.yaml", &SPACE_KEYS)?;

    let name = r.required(&map, "name").and_then(|node| {
        let name = r.non_empty_string("name", node)?;
        let ok = name.starts_with(|c: char| c.is_ascii_lowercase())
            && name
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-');
        if !ok {
            r.error_at(node, format!("space name `{name}` is not snake_case"))
                .help = Some(format!(
                "names use a-z, 0-9, `_` and `-` and start with a letter, e.g. `{}`",
                to_snake_case(&name)
            ));
            return None;
        }
        Some(name)
    });

    let spec_version = r
        .required(&map, "spec_version")
        .and_then(|node| match node.data {
            saphyr::YamlData::Value(saphyr::Scalar::Integer(v)) => {
                match KNOWN_SPEC_VERSIONS.iter().find(|k| i64::from(**k) == v) {
                    Some(k) => Some(*k),
                    None => {
                        let known: Vec<String> =
                            KNOWN_SPEC_VERSIONS.iter().map(u32::to_string).collect();
                        r.error_at(
                            node,
                            format!(
                                "unknown spec_version {v}; this Cohort knows {}",
                                known.join(", ")
                            ),
                        );
                        None
                    }
                }
            }
            _ => {
                r.error_at(
                    node,
                    format!(
                        "`spec_version`: expected a whole number, found {}",
                        super::yaml::kind(node)
                    ),
                )
                .help = Some("write `spec_version: 1`".into());
                None
            }
        });

    let description = r.opt_string(&map, "description");

    let sources = r
        .required(&map, "sources")
        .and_then(|node| read_sources(r, node));

    let output = r.required(&map, "output").and_then(|node| {
        let s = r.non_empty_string("output", node)?;
        Some((s, r.loc(node)))
    });

    let schedule = schedule(r, &map);

    let memory_limit = map.get("memory_limit").and_then(|node| {
        let s = r.string("memory_limit", node)?;
        if parse_memory_limit(&s).is_none() {
            r.error_at(node, format!("`memory_limit`: `{s}` is not a size"))
                .help = Some("write a size such as `4GB` or `512MB`".into());
            return None;
        }
        Some(s)
    });

    let sql_trait_timeout = duration(r, &map, "sql_trait_timeout", false);
    let retention = duration(r, &map, "retention", true);

    let (output, output_loc) = output?;
    Some(Header {
        name: name?,
        spec_version: spec_version?,
        description,
        sources: sources?,
        output,
        output_loc,
        schedule,
        memory_limit,
        sql_trait_timeout,
        retention,
    })
}

fn read_sources(r: &mut Reader<'_>, node: &Node<'_>) -> Option<Vec<SourceDef>> {
    let items = r.list("sources", node)?;
    if items.is_empty() {
        r.error_at(
            node,
            "`sources` is empty: a space needs at least one source",
        );
        return None;
    }
    let mut sources: Vec<SourceDef> = Vec::new();
    let mut seen: HashMap<String, usize> = HashMap::new();
    let mut ok = true;
    for item in items {
        match read_source(r, item) {
            Some((source, name_node)) => {
                if let Some(line) = seen.get(&source.name) {
                    r.error_at(
                        name_node,
                        format!("duplicate source name `{}`", source.name),
                    )
                    .help = Some(format!(
                        "a source named `{}` is already defined on line {line}; source names are \
                         table names and must be unique",
                        source.name
                    ));
                    ok = false;
                } else if let Some(other) = sources
                    .iter()
                    .find(|s| s.write_keys.iter().any(|k| source.write_keys.contains(k)))
                {
                    r.error_at(
                        name_node,
                        format!(
                            "source `{}` shares a write key with source `{}`",
                            source.name, other.name
                        ),
                    )
                    .help = Some(
                        "a write key names one source: events sent with it go to that source only"
                            .into(),
                    );
                    ok = false;
                } else {
                    seen.insert(source.name.clone(), r.loc(name_node).line);
                    sources.push(source);
                }
            }
            None => ok = false,
        }
    }
    ok.then_some(sources)
}

fn read_source<'n, 'i>(
    r: &mut Reader<'_>,
    node: &'n Node<'i>,
) -> Option<(SourceDef, &'n Node<'i>)> {
    let map = r.map(node, "a source", &SOURCE_KEYS)?;
    let name = r.required(&map, "name").and_then(|n| {
        let s = r.non_empty_string("name", n)?;
        if !is_snake_case(&s) {
            r.error_at(n, format!("source name `{s}` is not snake_case"))
                .help = Some(format!(
                "a source is registered as a table for SQL traits; try `{}`",
                to_snake_case(&s)
            ));
            return None;
        }
        Some((s, n))
    });
    let preset = match map.get("preset") {
        None => Some(Preset::Events),
        Some(n) => r.string("preset", n).and_then(|s| match Preset::parse(&s) {
            Some(p) => Some(p),
            None => {
                let names = Preset::ALL.map(Preset::as_str);
                let help = match suggest(&s, &names) {
                    Some(p) => format!("did you mean `{p}`?"),
                    None => format!("known presets: {}", names.join(", ")),
                };
                r.error_at(n, format!("unknown preset `{s}`")).help = Some(help);
                None
            }
        }),
    };
    let url = r.required(&map, "url").and_then(|n| {
        let s = r.non_empty_string("url", n)?;
        Some((s, r.loc(n)))
    });
    let partition_column = match map.get("partition_column") {
        None => Some("dt".to_owned()),
        Some(n) => r.non_empty_string("partition_column", n),
    };
    let write_keys = read_write_keys(r, &map, preset);
    let (name, name_node) = name?;
    let (url, url_loc) = url?;
    Some((
        SourceDef {
            name,
            preset: preset?,
            url,
            url_loc,
            partition_column: partition_column?,
            write_keys: write_keys?,
        },
        name_node,
    ))
}

/// `write_keys:` of a source: non-empty, distinct strings, on an `events` source only (the
/// collector writes that preset's table).
fn read_write_keys(
    r: &mut Reader<'_>,
    map: &Map<'_, '_>,
    preset: Option<Preset>,
) -> Option<Vec<String>> {
    let Some(node) = map.get("write_keys") else {
        return Some(Vec::new());
    };
    // A bad key is reported, and the others are still compared with the other sources'.
    if preset.is_some_and(|p| p != Preset::Events) {
        r.error_at(
            node,
            "`write_keys` needs an `events` source: the collector writes that preset's table",
        )
        .help = Some("add a source with `preset: events` for collected events".into());
        return None;
    }
    let mut keys: Vec<String> = Vec::new();
    for (k, n) in r.string_list("write_keys", node, true) {
        if k.trim().is_empty() || k.chars().any(|c| c.is_whitespace() || c == ':') {
            r.error_at(
                n,
                format!("write key `{k}` is empty or holds a space or `:`"),
            )
            .help = Some("a write key is sent as a Basic-auth user name".into());
        } else if keys.contains(&k) {
            r.error_at(n, format!("write key `{k}` is listed twice"));
        } else {
            keys.push(k);
        }
    }
    Some(keys)
}
