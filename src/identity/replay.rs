//! Segment's sequential identity rule, replayed inside one component that breaks a limit.
//!
//! Events are taken in `(timestamp, message_id)` order. An event's identifiers match existing
//! profiles; if merging those profiles and adding the event's new identifiers would put more
//! than `limit` values of some type on one profile, the event's lowest-priority identifier is
//! dropped (among equal priorities, the largest value) and the merge is tried again. What
//! remains is merged into one profile, or starts a new one when it matches nothing.

use std::collections::HashMap;

/// One usable identifier of an event.
#[derive(Clone, Debug)]
pub struct Occurrence {
    pub node: i64,
    /// Index of the identifier's type in the limits table (its rank).
    pub type_idx: usize,
}

/// The outcome of a replay.
#[derive(Debug, Default)]
pub struct Replayed {
    /// node -> profile key (the node of the identifier that started the profile).
    pub node_profile: HashMap<i64, i64>,
    /// (event index, node) of every identifier dropped from an event by a limit, with the type
    /// index whose limit would have been broken.
    pub dropped: Vec<(usize, i64, usize)>,
}

struct Profiles {
    parent: Vec<usize>,
    counts: Vec<Vec<u64>>,
    key: Vec<i64>,
}

impl Profiles {
    fn find(&mut self, mut p: usize) -> usize {
        while self.parent[p] != p {
            self.parent[p] = self.parent[self.parent[p]];
            p = self.parent[p];
        }
        p
    }
}

/// Replays `events` (each already sorted by priority, then value; events in processing
/// order) under per-type `limits`.
pub fn replay(events: &[Vec<Occurrence>], limits: &[u64]) -> Replayed {
    let types = limits.len();
    let mut ps = Profiles {
        parent: Vec::new(),
        counts: Vec::new(),
        key: Vec::new(),
    };
    let mut owner: HashMap<i64, usize> = HashMap::new();
    let mut dropped = Vec::new();
    for (ev, ids) in events.iter().enumerate() {
        let mut keep: Vec<&Occurrence> = ids.iter().collect();
        loop {
            let mut roots: Vec<usize> = Vec::new();
            let mut counts = vec![0u64; types];
            for o in &keep {
                match owner.get(&o.node) {
                    Some(&p) => {
                        let r = ps.find(p);
                        if !roots.contains(&r) {
                            roots.push(r);
                            for (t, c) in ps.counts[r].iter().enumerate() {
                                counts[t] += c;
                            }
                        }
                    }
                    None => counts[o.type_idx] += 1,
                }
            }
            let broken = (0..types).find(|&t| counts[t] > limits[t]);
            match broken {
                Some(t) if keep.len() > 1 => {
                    let last = keep.pop().expect("more than one identifier");
                    dropped.push((ev, last.node, t));
                }
                _ => {
                    // Merge into the oldest matched profile, add the new identifiers.
                    roots.sort_unstable();
                    let target = match roots.first() {
                        Some(&r) => r,
                        None => {
                            let p = ps.parent.len();
                            ps.parent.push(p);
                            ps.counts.push(vec![0; types]);
                            ps.key.push(keep[0].node);
                            p
                        }
                    };
                    for &r in roots.iter().skip(1) {
                        ps.parent[r] = target;
                        let moved = std::mem::take(&mut ps.counts[r]);
                        for (t, c) in moved.into_iter().enumerate() {
                            ps.counts[target][t] += c;
                        }
                    }
                    for o in &keep {
                        if let std::collections::hash_map::Entry::Vacant(e) = owner.entry(o.node) {
                            e.insert(target);
                            ps.counts[target][o.type_idx] += 1;
                        }
                    }
                    break;
                }
            }
        }
    }
    let mut node_profile = HashMap::with_capacity(owner.len());
    for (node, p) in owner {
        let r = ps.find(p);
        node_profile.insert(node, ps.key[r]);
    }
    Replayed {
        node_profile,
        dropped,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn occ(node: i64, type_idx: usize) -> Occurrence {
        Occurrence { node, type_idx }
    }

    #[test]
    fn second_user_id_is_refused_and_the_shared_id_dropped() {
        // Types: 0 = user_id (limit 1), 1 = anonymous_id (limit 5).
        let events = vec![
            vec![occ(1, 0), occ(10, 1)], // u1 + a10
            vec![occ(2, 0), occ(10, 1)], // u2 + a10: merging would give two user ids
            vec![occ(11, 1)],            // a11 alone
        ];
        let r = replay(&events, &[1, 5]);
        assert_eq!(r.node_profile[&1], 1);
        assert_eq!(r.node_profile[&10], 1);
        assert_eq!(r.node_profile[&2], 2);
        assert_eq!(r.node_profile[&11], 11);
        assert_eq!(r.dropped, vec![(1, 10, 0)]);
    }
}
