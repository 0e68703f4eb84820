//! Building a message that carries the session's identity, and sending it (with the hard
//! cases: duplicates, placeholder ids, bad rows) to the day's sink.

use crate::generate::catalog::{PLACEHOLDERS, T, TRACKS};
use crate::generate::event::{Bad, Event, Kind};
use crate::spec::Preset;

use super::{
    DayGen, P_BAD_EACH, P_DUP, P_PLACEHOLDER_ANON, P_PLACEHOLDER_USER, Sink, push_email_variant,
    record,
};

impl<'a, S: Sink> DayGen<'a, S> {
    /// Starts a message of `kind` carrying the session's identity.
    pub(super) fn begin(&mut self, kind: Kind) {
        let ev = &mut self.ev;
        ev.kind = kind;
        ev.bad = Bad::None;
        if self.s.logged_in {
            ev.user_id.set(&self.s.user_id);
        } else {
            ev.user_id.clear();
        }
        if self.s.dev.is_some() {
            ev.anonymous_id.set(&self.s.anon);
        } else {
            ev.anonymous_id.clear();
        }
        ev.group_id.clear();
        ev.previous_id.clear();
        if self.s.ctx_email {
            push_email_variant(
                &mut self.rng,
                &self.s.email,
                self.ev.ctx.traits_email.write(),
            );
        } else {
            self.ev.ctx.traits_email.clear();
        }
    }

    pub(super) fn track(&mut self, t: T) {
        self.begin(Kind::Track);
        self.ev.track = t as usize;
        self.ev.reset_props(TRACKS[t as usize].props);
    }

    /// Sends the message being built: stamps id and times, mixes in the hard cases.
    pub(super) fn send(&mut self) {
        if self.full() || self.s.over {
            return;
        }
        if self.s.t >= self.s.t_limit {
            self.s.over = true;
            return;
        }
        let (a, b) = (self.rng.next_u64(), self.rng.next_u64());
        crate::generate::text::push_uuid(self.ev.message_id.write(), a, b, false);
        let s = &mut self.s;
        let ev = &mut self.ev;
        ev.ts_ms = s.t;
        let received = if s.late {
            let r = s.arrival;
            s.arrival = (s.arrival + self.rng.range(5, 400) as i64).min(self.day_end - 1);
            r
        } else {
            (s.t + self.rng.range(40, 1_500) as i64).min(self.day_end - 1)
        };
        let skew = s.dev.as_ref().map_or(0, |d| d.clock_skew_ms);
        ev.received_ms = received;
        ev.original_ms = ev.ts_ms + skew;
        ev.sent_ms = received + skew;
        s.t += self.rng.range(3_000, 75_000) as i64;
        if self.rng.chance(P_PLACEHOLDER_USER) {
            let p = *self.rng.pick(PLACEHOLDERS);
            ev.user_id.set(p);
        }
        if self.rng.chance(P_PLACEHOLDER_ANON) {
            let p = *self.rng.pick(PLACEHOLDERS);
            ev.anonymous_id.set(p);
        }
        if self.w.preset == Preset::Events {
            let x = self.rng.f64();
            if x < 4.0 * P_BAD_EACH {
                let has_json = !matches!(ev.kind, Kind::Alias);
                ev.bad = match (x / P_BAD_EACH) as u32 {
                    0 => Bad::Timestamp,
                    1 if has_json => Bad::Json,
                    1 | 2 => Bad::Type,
                    _ => Bad::NoIds,
                };
                if ev.bad == Bad::NoIds {
                    ev.user_id.clear();
                    ev.anonymous_id.clear();
                }
            }
        }
        let DayGen {
            sink,
            ev,
            stats,
            emitted,
            failed,
            epoch_day,
            ..
        } = self;
        record(*sink, ev, false, stats, emitted, failed, *epoch_day);
        if self.ev.bad == Bad::None
            && self.emitted + (self.pending.len() as u64) < self.budget
            && self.rng.chance(P_DUP)
        {
            let at = self.emitted + self.rng.range(1, 3_000);
            self.pending.push((at, self.ev.clone()));
        }
        let mut i = 0;
        while i < self.pending.len() {
            if self.pending[i].0 <= self.emitted {
                let (_, e) = self.pending.remove(i);
                self.write(&e, true);
            } else {
                i += 1;
            }
        }
    }

    pub(super) fn write(&mut self, ev: &Event, dup: bool) {
        record(
            self.sink,
            ev,
            dup,
            &mut self.stats,
            &mut self.emitted,
            &mut self.failed,
            self.epoch_day,
        );
    }

    // ----- what people do -----
}
