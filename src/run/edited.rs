//! The definitions a run that keeps the untouched profiles' values still evaluates for every
//! profile (issue 19, item 4): a computed trait or audience whose file changed since the
//! previous run, or that is new; those whose values can change for a profile nothing touched
//! (account audiences and `ANY` / `ALL` / `NOT ANY` conditions, which read other profiles;
//! `within_last`, which compares values with as-of); and every audience that reads one of
//! those through `trait(...)`, directly or through other audiences. Everything else is
//! evaluated for the touched profiles only. A removed definition just loses its column or its
//! members. Any other edited file (identity rules, SQL traits, space.yaml) makes the run
//! evaluate everything.
//!
//! Definitions the previous run kept without evaluating them ([`Kept`], see [`super::due`])
//! count as edited.
//!
//! It also gives the window lengths of the definitions ([`as_of_windows`]): where events
//! cross a window edge as as-of moves, their profiles are touched (see [`super::touched`]).

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use crate::plan::profiles::column_name;
use crate::spec::query::ast::{Comparator, EventChain, Expr, Filter, Operand};
use crate::spec::{EntityType, Space, query};
use crate::store::manifest::Kept;

/// The definitions a run evaluates for every profile.
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct Edited {
    /// Computed traits of users: edited, new, or using `within_last`.
    pub traits: BTreeSet<String>,
    /// Audiences: edited, new, of accounts, with `ANY` / `ALL` / `NOT ANY` or `within_last`,
    /// or reading one of those.
    pub audiences: BTreeSet<String>,
}

impl Edited {
    pub fn is_empty(&self) -> bool {
        self.traits.is_empty() && self.audiences.is_empty()
    }
}

/// `file` relative to `root`, with `/`: how definition files are named in fingerprints.
pub fn relative(root: &Path, file: &Path) -> String {
    file.strip_prefix(root)
        .unwrap_or(file)
        .to_string_lossy()
        .replace('\\', "/")
}

/// A definition file's key: the stem of `traits/<key>.yaml`.
pub fn stem(path: &str) -> &str {
    let name = path.rsplit('/').next().unwrap_or(path);
    name.rsplit_once('.').map_or(name, |(s, _)| s)
}

/// What the edits between the previous run's definition files (`before`: path -> fingerprint)
/// and this run's (`now`) make the run evaluate for every profile; `Err(reason)` when they
/// need every definition evaluated for every profile. `custom_keys` are the custom trait keys
/// seen so far (a computed trait added or removed under one of their names moves a column).
pub fn edited(
    space: &Space,
    now: &BTreeMap<String, String>,
    before: &BTreeMap<String, String>,
    custom_keys: &BTreeSet<String>,
    stale: &Kept,
) -> Result<Edited, String> {
    let changed = super::record::changed_files(now, before);
    let changed: BTreeSet<&str> = changed.iter().map(String::as_str).collect();
    let other: Vec<&str> = changed
        .iter()
        .copied()
        .filter(|p| !p.starts_with("traits/") && !p.starts_with("audiences/"))
        .collect();
    if !other.is_empty() {
        return Err(format!(
            "definitions changed since the previous run: {}",
            other.join(", ")
        ));
    }
    let mut out = Edited::default();
    let mut known: BTreeSet<String> = BTreeSet::new();
    for t in &space.traits {
        let rel = relative(&space.root, &t.file);
        let mut r = Reads::default();
        if let Ok(q) = query::parsed_trait(t) {
            r.expr(&q);
        }
        // Account traits are evaluated whole every run.
        let stale = stale.traits.contains(&t.key);
        if t.entity == EntityType::Users
            && (changed.contains(rel.as_str()) || r.within_last || stale)
        {
            out.traits.insert(t.key.clone());
        }
        known.insert(rel);
    }
    // A trait added or removed under a custom trait's name gives that name to the other.
    let custom_columns: BTreeSet<String> = custom_keys.iter().map(|k| column_name(k)).collect();
    let removed = changed
        .iter()
        .filter(|p| p.starts_with("traits/") && !known.contains(**p))
        .map(|p| stem(p).to_string());
    for key in out.traits.iter().cloned().chain(removed) {
        let added_or_removed = !before
            .keys()
            .any(|p| p.starts_with("traits/") && stem(p) == key)
            || !now
                .keys()
                .any(|p| p.starts_with("traits/") && stem(p) == key);
        if added_or_removed && custom_columns.contains(&key) {
            return Err(format!(
                "the computed trait `{key}` was added or removed under a custom trait's name"
            ));
        }
    }
    let mut reads: BTreeMap<&str, BTreeSet<String>> = BTreeMap::new();
    for a in &space.audiences {
        let mut r = Reads::default();
        if let Ok(q) = query::parsed_audience(a) {
            r.expr(&q);
        }
        if changed.contains(relative(&space.root, &a.file).as_str())
            || stale.audiences.contains(&a.key)
            || a.entity == EntityType::Accounts
            || r.quantified
            || r.within_last
        {
            out.audiences.insert(a.key.clone());
        }
        reads.insert(a.key.as_str(), r.traits);
    }
    add_readers(&reads, &out.traits, &mut out.audiences);
    Ok(out)
}

/// Adds to `audiences` every audience of `reads` (audience -> names it reads) that reads one
/// of `traits` or `audiences`, to a fixed point.
pub fn add_readers(
    reads: &BTreeMap<&str, BTreeSet<String>>,
    traits: &BTreeSet<String>,
    audiences: &mut BTreeSet<String>,
) {
    loop {
        let more: Vec<String> = reads
            .iter()
            .filter(|(k, _)| !audiences.contains(**k))
            .filter(|(_, r)| {
                r.iter()
                    .any(|x| traits.contains(x) || audiences.contains(x))
            })
            .map(|(k, _)| k.to_string())
            .collect();
        if more.is_empty() {
            break;
        }
        audiences.extend(more);
    }
}

/// The lengths (seconds) of every window of a computed trait of users or an audience that
/// is measured back from as-of (`within`, both ends of `between`; not `within(parent: ...)`).
pub fn as_of_windows(space: &Space) -> BTreeSet<i64> {
    let mut r = Reads::default();
    for t in space
        .traits
        .iter()
        .filter(|t| t.entity == EntityType::Users)
    {
        if let Ok(q) = query::parsed_trait(t) {
            r.expr(&q);
        }
    }
    for a in &space.audiences {
        if let Ok(q) = query::parsed_audience(a) {
            r.expr(&q);
        }
    }
    r.windows
}

/// `keys` with every audience they read, directly or through others.
pub fn with_reads(space: &Space, keys: &BTreeSet<String>) -> BTreeSet<String> {
    let reads = audience_reads(space);
    let mut out = keys.clone();
    let mut todo: Vec<String> = keys.iter().cloned().collect();
    while let Some(k) = todo.pop() {
        for r in reads.get(k.as_str()).into_iter().flatten() {
            if reads.contains_key(r.as_str()) && out.insert(r.clone()) {
                todo.push(r.clone());
            }
        }
    }
    out
}

/// Every audience's key with the names it reads through `trait(...)`: traits (custom,
/// computed or SQL trait columns) and audiences.
pub fn audience_reads(space: &Space) -> BTreeMap<&str, BTreeSet<String>> {
    space
        .audiences
        .iter()
        .map(|a| {
            let mut r = Reads::default();
            if let Ok(q) = query::parsed_audience(a) {
                r.expr(&q);
            }
            (a.key.as_str(), r.traits)
        })
        .collect()
}

/// What a query reads: the traits (and audiences) it names, the lengths (seconds) of its
/// windows measured back from as-of, and whether it compares values with as-of or reads other
/// profiles.
#[derive(Default)]
struct Reads {
    traits: BTreeSet<String>,
    windows: BTreeSet<i64>,
    within_last: bool,
    quantified: bool,
}

impl Reads {
    fn expr(&mut self, e: &Expr) {
        match e {
            Expr::Or { items, .. } | Expr::And { items, .. } => {
                items.iter().for_each(|i| self.expr(i))
            }
            Expr::Not { expr, .. } => self.expr(expr),
            Expr::Quantified { expr, .. } => {
                self.quantified = true;
                self.expr(expr)
            }
            Expr::Compare {
                left, op, right, ..
            } => {
                self.within_last |= *op == Comparator::WithinLast;
                self.operand(left);
                if let Some(r) = right {
                    self.operand(r);
                }
            }
            Expr::Value { value, .. } => self.operand(value),
        }
    }

    fn operand(&mut self, o: &Operand) {
        match o {
            Operand::Trait { key, .. } => {
                self.traits.insert(key.clone());
            }
            Operand::Event(chain) => self.chain(chain),
            _ => {}
        }
    }

    fn chain(&mut self, chain: &EventChain) {
        for f in &chain.filters {
            match f {
                Filter::Where { condition, .. } => self.expr(condition),
                Filter::Within { window, .. } if !window.parent => {
                    self.windows.insert(window.seconds());
                }
                Filter::Between { from, to, .. } => {
                    for d in [from, to].into_iter().filter(|d| !d.parent) {
                        self.windows.insert(d.seconds());
                    }
                }
                Filter::Within { .. } | Filter::Since { .. } => {}
            }
        }
        if let Some(arg) = chain.reducer.as_ref().and_then(|r| r.arg.as_ref()) {
            self.operand(arg);
        }
    }
}
