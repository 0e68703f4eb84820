//! Segment's sequential identity rule, replayed inside one component that breaks a limit.
//!
//! Events are taken in `(timestamp, message_id)` order. An event's identifiers match existing
//! profiles; if merging those profiles and adding the event's new identifiers would put more
//! than `limit` values of some type on one profile, the event's lowest-priority identifier is
//! dropped (among equal priorities, the largest value) and the merge is tried again. What
//! remains is merged into one profile, or starts a new one when it matches nothing.
//!
//! A per-period limit (`5 weekly`) counts only the values added to the profile within the
//! window that ends at the event: those whose adding event is less than the window before it.
//! A value is added by the first event that keeps it.

use std::collections::HashMap;

/// One usable identifier of an event.
#[derive(Clone, Debug)]
pub struct Occurrence {
    pub node: i64,
    /// Index of the identifier's type in the limits table (its rank).
    pub type_idx: usize,
}

/// One event: its time (microseconds) and its identifiers, sorted by priority, then value.
#[derive(Clone, Debug)]
pub struct Event {
    pub ts: i64,
    pub ids: Vec<Occurrence>,
}

/// One type's limit: at most `max` values on a profile, added within any `window`
/// microseconds when set, ever when not.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limit {
    pub max: u64,
    pub window: Option<i64>,
}

impl Limit {
    /// A limit over all time.
    pub fn ever(max: u64) -> Limit {
        Limit { max, window: None }
    }
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

/// The values of one type on one profile: how many, and when each was added when the type's
/// limit has a window (older ones are let go as time passes them).
#[derive(Clone, Debug, Default)]
struct Values {
    count: u64,
    added: Vec<i64>,
}

struct Profiles {
    parent: Vec<usize>,
    values: Vec<Vec<Values>>,
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

    /// How many values of type `t` profile `r` has that count at time `ts` under `limit`.
    /// Events come in time order, so values that left a window never count again: they are
    /// dropped from the list.
    fn counted(&mut self, r: usize, t: usize, limit: Limit, ts: i64) -> u64 {
        let v = &mut self.values[r][t];
        match limit.window {
            None => v.count,
            Some(w) => {
                v.added.retain(|&a| a > ts - w);
                v.added.len() as u64
            }
        }
    }
}

/// Replays `events` (in processing order, so in time order) under per-type `limits`.
pub fn replay(events: &[Event], limits: &[Limit]) -> Replayed {
    let types = limits.len();
    let mut ps = Profiles {
        parent: Vec::new(),
        values: Vec::new(),
        key: Vec::new(),
    };
    let mut owner: HashMap<i64, usize> = HashMap::new();
    let mut dropped = Vec::new();
    for (ev, event) in events.iter().enumerate() {
        let ts = event.ts;
        let mut keep: Vec<&Occurrence> = event.ids.iter().collect();
        loop {
            let mut roots: Vec<usize> = Vec::new();
            let mut counts = vec![0u64; types];
            for o in &keep {
                match owner.get(&o.node) {
                    Some(&p) => {
                        let r = ps.find(p);
                        if !roots.contains(&r) {
                            roots.push(r);
                            for (t, c) in counts.iter_mut().enumerate() {
                                *c += ps.counted(r, t, limits[t], ts);
                            }
                        }
                    }
                    None => counts[o.type_idx] += 1,
                }
            }
            let broken = (0..types).find(|&t| counts[t] > limits[t].max);
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
                            ps.values.push(vec![Values::default(); types]);
                            ps.key.push(keep[0].node);
                            p
                        }
                    };
                    for &r in roots.iter().skip(1) {
                        ps.parent[r] = target;
                        let moved = std::mem::take(&mut ps.values[r]);
                        for (t, v) in moved.into_iter().enumerate() {
                            let into = &mut ps.values[target][t];
                            into.count += v.count;
                            into.added.extend(v.added);
                        }
                    }
                    for o in &keep {
                        if let std::collections::hash_map::Entry::Vacant(e) = owner.entry(o.node) {
                            e.insert(target);
                            let v = &mut ps.values[target][o.type_idx];
                            v.count += 1;
                            if limits[o.type_idx].window.is_some() {
                                v.added.push(ts);
                            }
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

    fn at(ts: i64, ids: Vec<Occurrence>) -> Event {
        Event { ts, ids }
    }

    #[test]
    fn second_user_id_is_refused_and_the_shared_id_dropped() {
        // Types: 0 = user_id (limit 1), 1 = anonymous_id (limit 5).
        let events = vec![
            at(1, vec![occ(1, 0), occ(10, 1)]), // u1 + a10
            at(2, vec![occ(2, 0), occ(10, 1)]), // u2 + a10: merging would give two user ids
            at(3, vec![occ(11, 1)]),            // a11 alone
        ];
        let r = replay(&events, &[Limit::ever(1), Limit::ever(5)]);
        assert_eq!(r.node_profile[&1], 1);
        assert_eq!(r.node_profile[&10], 1);
        assert_eq!(r.node_profile[&2], 2);
        assert_eq!(r.node_profile[&11], 11);
        assert_eq!(r.dropped, vec![(1, 10, 0)]);
    }

    #[test]
    fn a_weekly_limit_counts_only_the_values_added_in_the_last_seven_days() {
        const DAY: i64 = 86_400_000_000;
        // Types: 0 = user_id (1 ever), 1 = anonymous_id (2 weekly).
        let limits = [
            Limit::ever(1),
            Limit {
                max: 2,
                window: Some(7 * DAY),
            },
        ];
        let events = vec![
            at(0, vec![occ(1, 0), occ(10, 1)]),
            at(DAY, vec![occ(1, 0), occ(11, 1)]),
            // A third anonymous id within the week: dropped (the event stays with u1).
            at(2 * DAY, vec![occ(1, 0), occ(12, 1)]),
            // Seven days after the first: a10 no longer counts, so a13 joins.
            at(7 * DAY, vec![occ(1, 0), occ(13, 1)]),
        ];
        let r = replay(&events, &limits);
        assert_eq!(r.dropped, vec![(2, 12, 1)]);
        assert!(!r.node_profile.contains_key(&12));
        for node in [10, 11, 13] {
            assert_eq!(r.node_profile[&node], 1, "node {node}");
        }
        // The same events under 2 ever: a13 is refused too.
        let r = replay(&events, &[Limit::ever(1), Limit::ever(2)]);
        assert_eq!(r.dropped, vec![(2, 12, 1), (3, 13, 1)]);
    }
}
