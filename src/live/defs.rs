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

use std::collections::BTreeSet;

use crate::run::edited::{add_readers, audience_reads, relative, stem};
use crate::run::record::{changed_files, definitions_fingerprint};
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

impl LiveDefs {
    /// Every definition as `cohort serve` loaded it, and why nothing is evaluated, if so.
    fn as_loaded(started: &Space, paused: Option<String>) -> LiveDefs {
        LiveDefs {
            space: started.clone(),
            kept_traits: Vec::new(),
            kept_audiences: BTreeSet::new(),
            paused,
            waiting: Vec::new(),
        }
    }
}

/// What to evaluate live over the run of manifest `m`, given the space as `cohort serve`
/// loaded it (`started`) and its files now.
pub fn live_defs(started: &Space, m: &Manifest) -> LiveDefs {
    // A run from before definitions were recorded: the files as loaded.
    let Some(published) = &m.definitions else {
        return LiveDefs::as_loaded(started, None);
    };
    let (_, now) = definitions_fingerprint(&started.root);
    let changed = changed_files(&now, published);
    let settings: Vec<&str> = changed
        .iter()
        .map(String::as_str)
        .filter(|p| *p == "space.yaml" || *p == "identity.yaml")
        .collect();
    if !settings.is_empty() {
        let why = format!(
            "{} changed since the published run: live values wait for the next run",
            settings.join(" and ")
        );
        return LiveDefs::as_loaded(started, Some(why));
    }
    let load = crate::spec::load_space(&started.root);
    let Some(mut space) = load.space else {
        let first = load
            .diagnostics
            .iter()
            .find(|d| d.is_error())
            .map(|d| d.to_string())
            .unwrap_or_default();
        let why = format!("the space's files have errors ({first}): live values wait for a run");
        return LiveDefs::as_loaded(started, Some(why));
    };
    space.root = started.root.clone();
    // Edited, added or removed since the run, and the audiences reading one of them.
    let keys = |dir: &str| -> BTreeSet<String> {
        changed
            .iter()
            .filter(|p| p.starts_with(dir))
            .map(|p| stem(p).to_string())
            .collect()
    };
    let kept_traits = keys("traits/");
    let mut kept_audiences = keys("audiences/");
    add_readers(&audience_reads(&space), &kept_traits, &mut kept_audiences);
    space
        .traits
        .retain(|t| !changed.contains(&relative(&space.root, &t.file)));
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
