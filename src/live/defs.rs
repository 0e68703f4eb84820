//! Which definitions the live engine evaluates over a published run (issue 20, item 4): the
//! ones whose files are still as that run read them.
//!
//! A definition edited (or added, or removed) since the run is not evaluated live: a run
//! recomputes it (with its backfill) while the others stay live, and until then the Profile
//! API serves the values the run published. So the live values of every definition always come
//! from the same definition text as the published ones, and a live tick never mixes an old
//! definition for some profiles with a new one for others. Audiences that read an edited
//! trait or audience wait with it. A change to space.yaml or identity.yaml (sources, identity
//! rules) pauses live evaluation until a run publishes with it; SQL traits are batch, so their
//! files do not matter here.

use std::collections::{BTreeMap, BTreeSet};

use crate::spec::{EntityType, Space};
use crate::store::manifest::Manifest;

/// The definitions to evaluate live.
#[derive(Clone, Debug)]
pub struct LiveDefs {
    /// The space with only the computed traits and audiences evaluated live.
    pub space: Space,
    /// Computed traits (column names) that keep their published values: edited or removed
    /// since the run.
    pub kept_traits: Vec<String>,
    /// Audiences that keep their published members: edited or removed since the run, or
    /// reading one of those.
    pub kept_audiences: BTreeSet<String>,
    /// Why nothing is evaluated live until the next run publishes, if so.
    pub paused: Option<String>,
    /// Every definition edited, added or removed since the run, and the audiences reading one
    /// (`trait:<key>`, `audience:<key>`): what waits for the next run.
    pub waiting: Vec<String>,
}

/// What to evaluate live over the run of manifest `m`, given the space as `cohort serve`
/// loaded it (`started`) and its files now.
pub fn live_defs(started: &Space, m: &Manifest) -> LiveDefs {
    let Some(published) = &m.definitions else {
        // A run from before definitions were recorded: the files as loaded.
        return LiveDefs {
            space: started.clone(),
            kept_traits: Vec::new(),
            kept_audiences: BTreeSet::new(),
            paused: None,
            waiting: Vec::new(),
        };
    };
    let (_, now) = crate::run::record::definitions_fingerprint(&started.root);
    let changed: BTreeSet<&str> = now
        .keys()
        .chain(published.keys())
        .filter(|k| now.get(*k) != published.get(*k))
        .map(String::as_str)
        .collect();
    let paused = |why: String| LiveDefs {
        space: started.clone(),
        kept_traits: Vec::new(),
        kept_audiences: BTreeSet::new(),
        paused: Some(why),
        waiting: Vec::new(),
    };
    let settings: Vec<&str> = changed
        .iter()
        .copied()
        .filter(|p| *p == "space.yaml" || *p == "identity.yaml")
        .collect();
    if !settings.is_empty() {
        return paused(format!(
            "{} changed since the published run: live values wait for the next run",
            settings.join(" and ")
        ));
    }
    let load = crate::spec::load_space(&started.root);
    let Some(mut space) = load.space else {
        let first = load
            .diagnostics
            .iter()
            .find(|d| d.is_error())
            .map(|d| d.to_string())
            .unwrap_or_default();
        return paused(format!(
            "the space's files have errors ({first}): live values wait for a run"
        ));
    };
    space.root = started.root.clone();
    let path = |file: &std::path::Path| file.to_string_lossy().replace('\\', "/");
    let stem = |p: &str| -> String {
        let name = p.rsplit('/').next().unwrap_or(p);
        name.rsplit_once('.').map_or(name, |(s, _)| s).to_string()
    };
    // Edited, added or removed since the run.
    let kept_traits: Vec<String> = changed
        .iter()
        .filter(|p| p.starts_with("traits/"))
        .map(|p| stem(p))
        .collect();
    let mut kept_audiences: BTreeSet<String> = changed
        .iter()
        .filter(|p| p.starts_with("audiences/"))
        .map(|p| stem(p))
        .collect();
    // Audiences reading one of them, to a fixed point.
    let reads: BTreeMap<String, BTreeSet<String>> = crate::run::edited::audience_reads(&space)
        .into_iter()
        .map(|(k, r)| (k.to_string(), r))
        .collect();
    loop {
        let more: Vec<String> = reads
            .iter()
            .filter(|(k, _)| !kept_audiences.contains(*k))
            .filter(|(_, r)| {
                r.iter()
                    .any(|x| kept_traits.contains(x) || kept_audiences.contains(x))
            })
            .map(|(k, _)| k.clone())
            .collect();
        if more.is_empty() {
            break;
        }
        kept_audiences.extend(more);
    }
    space
        .traits
        .retain(|t| !changed.contains(path(&t.file).as_str()));
    space.audiences.retain(|a| !kept_audiences.contains(&a.key));
    let waiting = kept_traits
        .iter()
        .map(|k| format!("trait:{k}"))
        .chain(kept_audiences.iter().map(|k| format!("audience:{k}")))
        .collect();
    // Only users traits are columns of `profiles`.
    let kept_traits = kept_traits
        .into_iter()
        .filter(|k| {
            started
                .traits
                .iter()
                .chain(&space.traits)
                .find(|t| &t.key == k)
                .is_none_or(|t| t.entity == EntityType::Users)
        })
        .collect();
    LiveDefs {
        space,
        kept_traits,
        kept_audiences,
        paused: None,
        waiting,
    }
}
