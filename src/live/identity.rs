//! Identity, live: the published graph held in memory, and each new event applied to it by
//! Segment's sequential rule, the one `identity::replay` applies inside a batch run. An event
//! whose identifiers match several profiles merges them unless that would put more values of a
//! type on one profile than its limit; then its lowest-priority identifier is dropped and the
//! merge tried again. The surviving profile id is the one a batch run would keep: the previous
//! profile whose earliest identifier (first seen, priority, type, value) sorts first. A
//! per-period limit counts the values whose first sighting on the profile lies within the
//! window that ends at the event, as the replay does.

use std::collections::{BTreeSet, HashMap};

use crate::identity::replay::Limit;

/// One usable identifier of an event, in the order the batch replays them (rank, then value).
#[derive(Clone, Debug)]
pub struct Occ {
    pub rank: usize,
    pub id_type: String,
    pub id_value: String,
    pub node: i64,
}

/// First and last time an identifier was seen.
#[derive(Clone, Copy, Debug)]
pub struct Seen {
    pub first: i64,
    pub last: i64,
}

/// The identifiers of one profile.
#[derive(Clone, Debug, Default)]
pub struct Members {
    /// (type, value) -> when seen.
    pub ids: HashMap<(String, String), Seen>,
    /// Values per type rank.
    pub counts: Vec<u64>,
    /// Profiles merged into this one since the published run (their published events are
    /// this profile's now).
    pub absorbed: BTreeSet<String>,
}

impl Members {
    /// The earliest identifier: (first seen, rank, type, value), as the batch orders them.
    fn earliest(&self, ranks: &HashMap<String, usize>) -> Option<(i64, usize, String, String)> {
        self.ids
            .iter()
            .map(|((t, v), s)| {
                (
                    s.first,
                    ranks.get(t).copied().unwrap_or(usize::MAX),
                    t.clone(),
                    v.clone(),
                )
            })
            .min()
    }
}

/// What applying one event did.
#[derive(Debug, Default)]
pub struct Applied {
    /// The event's profile (None when none of its identifiers is usable).
    pub profile: Option<String>,
    /// Profiles merged into `profile` by this event.
    pub merged: Vec<String>,
}

/// The graph: every identifier's profile and every profile's identifiers.
#[derive(Default)]
pub struct Graph {
    limits: Vec<Limit>,
    ranks: HashMap<String, usize>,
    owner: HashMap<(String, String), String>,
    pub profiles: HashMap<String, Members>,
    /// A merged-away profile id -> the profile it is part of now.
    pub moved: HashMap<String, String>,
}

impl Graph {
    /// An empty graph for identifier types in rank order with their limits.
    pub fn new(types: &[(String, Limit)]) -> Graph {
        Graph {
            limits: types.iter().map(|t| t.1).collect(),
            ranks: types
                .iter()
                .enumerate()
                .map(|(i, t)| (t.0.clone(), i))
                .collect(),
            ..Default::default()
        }
    }

    /// The values of rank `t` on `profile` that count against its limit at `ts`.
    fn counted(&self, profile: &str, t: usize, ts: i64) -> u64 {
        let m = &self.profiles[profile];
        match self.limits[t].window {
            None => m.counts[t],
            Some(w) => m
                .ids
                .iter()
                .filter(|((id_type, _), seen)| {
                    self.ranks.get(id_type) == Some(&t) && seen.first > ts - w
                })
                .count() as u64,
        }
    }

    /// Adds a published identifier.
    pub fn load(&mut self, profile: &str, id_type: &str, id_value: &str, seen: Seen) {
        let Some(&rank) = self.ranks.get(id_type) else {
            return;
        };
        let types = self.limits.len();
        let m = self.profiles.entry(profile.to_string()).or_default();
        if m.counts.is_empty() {
            m.counts = vec![0; types];
        }
        if m.ids
            .insert((id_type.to_string(), id_value.to_string()), seen)
            .is_none()
        {
            m.counts[rank] += 1;
        }
        self.owner.insert(
            (id_type.to_string(), id_value.to_string()),
            profile.to_string(),
        );
    }

    /// The profile an identifier belongs to.
    pub fn profile_of(&self, id_type: &str, id_value: &str) -> Option<&str> {
        self.owner
            .get(&(id_type.to_string(), id_value.to_string()))
            .map(String::as_str)
    }

    /// The profile a (possibly merged-away) profile id is part of now.
    pub fn current(&self, id: &str) -> String {
        let mut id = id.to_string();
        while let Some(n) = self.moved.get(&id) {
            id = n.clone();
        }
        id
    }

    /// Applies one event at `ts` (microseconds) with its usable identifiers, sorted by rank
    /// then value.
    pub fn apply(&mut self, ids: &[Occ], ts: i64) -> Applied {
        let types = self.limits.len();
        let mut keep: Vec<&Occ> = ids.iter().collect();
        loop {
            let mut roots: Vec<String> = Vec::new();
            let mut counts = vec![0u64; types];
            for o in &keep {
                match self.owner.get(&(o.id_type.clone(), o.id_value.clone())) {
                    Some(p) => {
                        if !roots.contains(p) {
                            roots.push(p.clone());
                            for (t, c) in counts.iter_mut().enumerate() {
                                *c += self.counted(p, t, ts);
                            }
                        }
                    }
                    None => counts[o.rank] += 1,
                }
            }
            let broken = (0..types).any(|t| counts[t] > self.limits[t].max);
            if broken && keep.len() > 1 {
                keep.pop();
                continue;
            }
            let Some(first) = keep.first() else {
                return Applied::default();
            };
            let target = match roots.len() {
                0 => crate::identity::new_profile_id(first.node),
                1 => roots[0].clone(),
                _ => {
                    let ranks = &self.ranks;
                    let profiles = &self.profiles;
                    roots
                        .iter()
                        .min_by_key(|p| (profiles[p.as_str()].earliest(ranks), (*p).clone()))
                        .cloned()
                        .expect("several roots")
                }
            };
            let mut merged = Vec::new();
            for r in roots.iter().filter(|r| **r != target) {
                let m = self.profiles.remove(r).unwrap_or_default();
                let t = self.profiles.entry(target.clone()).or_default();
                if t.counts.is_empty() {
                    t.counts = vec![0; types];
                }
                for (k, s) in m.ids {
                    self.owner.insert(k.clone(), target.clone());
                    t.ids.insert(k, s);
                }
                for (i, c) in m.counts.iter().enumerate() {
                    t.counts[i] += c;
                }
                t.absorbed.extend(m.absorbed);
                t.absorbed.insert(r.clone());
                self.moved.insert(r.clone(), target.clone());
                merged.push(r.clone());
            }
            let t = self.profiles.entry(target.clone()).or_default();
            if t.counts.is_empty() {
                t.counts = vec![0; types];
            }
            for o in &keep {
                let k = (o.id_type.clone(), o.id_value.clone());
                match t.ids.get_mut(&k) {
                    Some(s) => {
                        s.first = s.first.min(ts);
                        s.last = s.last.max(ts);
                    }
                    None => {
                        t.ids.insert(
                            k.clone(),
                            Seen {
                                first: ts,
                                last: ts,
                            },
                        );
                        t.counts[o.rank] += 1;
                        self.owner.insert(k, target.clone());
                    }
                }
            }
            return Applied {
                profile: Some(target),
                merged,
            };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn occ(rank: usize, t: &str, v: &str) -> Occ {
        Occ {
            rank,
            id_type: t.into(),
            id_value: v.into(),
            node: crate::functions::node_code(t, v),
        }
    }

    /// The live graph, fed one event at a time, ends where `identity::replay` (the batch's
    /// sequential reference) ends for the same events: the same identifiers, each in the
    /// profile named after the same identifier. Random events over a few identifiers of three
    /// types with small limits, so that merges and limit drops are common.
    /// The live graph, fed one event at a time, ends where `identity::replay` (the batch's
    /// sequential reference) ends for the same events: the same identifiers, each in the
    /// profile named after the same identifier. Random events over a few identifiers of three
    /// types with small limits, so that merges and limit drops are common; in the second
    /// round two of the limits count per period (a window of 4 and of 9 events' time).
    #[test]
    fn event_by_event_equals_the_sequential_replay() {
        let windowed = |max, window| Limit {
            max,
            window: Some(window),
        };
        let rounds = [
            [Limit::ever(1), Limit::ever(2), Limit::ever(3)],
            [Limit::ever(1), windowed(2, 4), windowed(2, 9)],
        ];
        let names = ["user_id", "email", "anonymous_id"];
        let mut seed = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = move |n: u64| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed % n
        };
        for limits in rounds {
            let types: Vec<(String, Limit)> = names
                .iter()
                .zip(limits)
                .map(|(t, l)| (t.to_string(), l))
                .collect();
            for case in 0..300 {
                let mut g = Graph::new(&types);
                let mut events: Vec<crate::identity::replay::Event> = Vec::new();
                for e in 0..(5 + next(25)) {
                    let mut ids: Vec<Occ> = Vec::new();
                    for _ in 0..(1 + next(3)) {
                        let r = next(3) as usize;
                        let v = format!("v{}", next(6));
                        if !ids.iter().any(|o| o.rank == r && o.id_value == v) {
                            ids.push(occ(r, names[r], &v));
                        }
                    }
                    ids.sort_by(|a, b| (a.rank, &a.id_value).cmp(&(b.rank, &b.id_value)));
                    let ts = 1_000 + e as i64;
                    events.push(crate::identity::replay::Event {
                        ts,
                        ids: ids
                            .iter()
                            .map(|o| crate::identity::replay::Occurrence {
                                node: o.node,
                                type_idx: o.rank,
                            })
                            .collect(),
                    });
                    g.apply(&ids, ts);
                }
                let r = crate::identity::replay::replay(&events, &limits);
                let mut owned = 0;
                for (profile, m) in &g.profiles {
                    for (t, v) in m.ids.keys() {
                        let node = crate::functions::node_code(t, v);
                        let key = r.node_profile.get(&node).copied();
                        assert_eq!(
                            key.map(crate::identity::new_profile_id).as_deref(),
                            Some(profile.as_str()),
                            "case {case} {limits:?}: {t}:{v}"
                        );
                        owned += 1;
                    }
                }
                assert_eq!(owned, r.node_profile.len(), "case {case} {limits:?}");
            }
        }
    }

    #[test]
    fn merges_within_limits_and_drops_past_them() {
        let mut g = Graph::new(&[
            ("user_id".into(), Limit::ever(1)),
            ("anonymous_id".into(), Limit::ever(5)),
        ]);
        let a = g.apply(&[occ(0, "user_id", "u1"), occ(1, "anonymous_id", "a1")], 10);
        let p1 = a.profile.unwrap();
        assert_eq!(
            p1,
            crate::identity::new_profile_id(crate::functions::node_code("user_id", "u1"))
        );
        let b = g.apply(&[occ(1, "anonymous_id", "a2")], 20);
        let p2 = b.profile.unwrap();
        assert_ne!(p1, p2);
        // a1 + a2 in one event: merged into the profile whose earliest identifier is older.
        let c = g.apply(
            &[occ(1, "anonymous_id", "a1"), occ(1, "anonymous_id", "a2")],
            30,
        );
        assert_eq!(c.profile.as_deref(), Some(p1.as_str()));
        assert_eq!(c.merged, vec![p2.clone()]);
        assert_eq!(g.current(&p2), p1);
        // A second user id would break user_id's limit: the anonymous id is dropped.
        let d = g.apply(&[occ(0, "user_id", "u2"), occ(1, "anonymous_id", "a1")], 40);
        assert_ne!(d.profile.as_deref(), Some(p1.as_str()));
        assert_eq!(g.profile_of("anonymous_id", "a1"), Some(p1.as_str()));
    }
}
