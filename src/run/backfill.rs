//! When each computed trait and audience first appeared in the run history, for `backfill:
//! false` (issue 20, item 4): such a definition counts only the events after that time.
//!
//! The manifest records the time for every definition (`first_seen`, keyed `trait:<key>` /
//! `audience:<key>`): the as-of of the first published run that had it, carried from run to
//! run. A definition the last published run did not have first appears at this run's as-of,
//! so the run that adds it counts no earlier event, and a definition removed and added again
//! starts over. Editing a definition keeps its time. `--full` reads the same times, so it
//! publishes what an incremental run does; the live engine reads them from the run it loads.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};

use crate::spec::Space;
use crate::store::manifest::Manifest;

/// The manifest key of a computed trait.
pub fn trait_key(key: &str) -> String {
    format!("trait:{key}")
}

/// The manifest key of an audience.
pub fn audience_key(key: &str) -> String {
    format!("audience:{key}")
}

/// `space` with each computed trait's and audience's `first_seen` set: from `previous` (the
/// last published run's manifest) when it names the definition, else `as_of`.
pub fn resolve(space: &Space, previous: Option<&Manifest>, as_of: DateTime<Utc>) -> Space {
    let known = previous.and_then(|m| m.first_seen.as_ref());
    let at = |k: String| {
        known
            .and_then(|m| m.get(&k))
            .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
            .map_or(as_of, |t| t.with_timezone(&Utc))
    };
    let mut out = space.clone();
    for t in &mut out.traits {
        t.first_seen = Some(at(trait_key(&t.key)));
    }
    for a in &mut out.audiences {
        a.first_seen = Some(at(audience_key(&a.key)));
    }
    out
}

/// What the manifest records: every definition's `first_seen` (RFC 3339) of a resolved space.
pub fn first_seen(space: &Space) -> BTreeMap<String, String> {
    let traits = space
        .traits
        .iter()
        .filter_map(|t| Some((trait_key(&t.key), t.first_seen?)));
    let audiences = space
        .audiences
        .iter()
        .filter_map(|a| Some((audience_key(&a.key), a.first_seen?)));
    traits
        .chain(audiences)
        .map(|(k, t)| (k, t.to_rfc3339()))
        .collect()
}
