//! Values that change because time passes, with no new event: an event leaving a `within`
//! window, or entering or leaving a `between` range, as the evaluation time moves. Each window
//! length `w` of the live definitions makes an event at `t` cross an edge at `t + w`; the
//! engine wakes at the earliest such edge after the last sweep and evaluates again the
//! profiles whose events crossed one, as a batch run at that time would find them (the run's
//! `touched` does the same between two as-ofs).

use std::collections::BTreeSet;

use super::history::History;
use crate::spec::Space;

/// The window edges of a loaded run's live definitions, and how far they have been swept.
#[derive(Clone, Debug)]
pub struct Clock {
    /// Window lengths in micros (`within`, both ends of `between`).
    windows: Vec<i64>,
    /// Every edge up to here has been applied (UTC micros): the run's as-of at first.
    last: i64,
}

impl Clock {
    /// The windows of `space`'s live definitions, swept up to `as_of` (the run's).
    pub fn new(space: &Space, as_of: i64) -> Clock {
        Clock {
            windows: crate::run::edited::as_of_windows(space)
                .into_iter()
                .filter(|w| *w > 0)
                .map(|w| w.saturating_mul(1_000_000))
                .collect(),
            last: as_of,
        }
    }

    /// When the next value can change (UTC micros): the earliest edge after the last sweep.
    pub fn next_edge(&self, history: &History) -> Option<i64> {
        self.windows
            .iter()
            .filter_map(|w| history.next_after(self.last - w).map(|t| t + w))
            .min()
    }

    /// The profiles (history labels) with an event that crossed an edge in `(last, now]`;
    /// everything up to `now` counts as swept then.
    pub fn due(&mut self, history: &History, now: i64) -> BTreeSet<String> {
        if now <= self.last {
            return BTreeSet::new();
        }
        let mut out = BTreeSet::new();
        for w in &self.windows {
            out.extend(history.profiles_between(self.last - w, now - w));
        }
        self.last = now;
        out
    }
}
