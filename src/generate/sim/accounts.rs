//! Sign-up, log-in, identify and group calls, and account chores (B2B accounts).

use crate::generate::catalog::{
    ACCOUNT_TRAITS, CANCEL_REASONS, NO_PROPS, SIGNUP_METHODS, T, USER_TRAITS,
};
use crate::generate::event::Kind;
use crate::generate::text::{push_hex, push_iso_ms};

use super::{Arg, DayGen, LOGIN, SIGN_UP, Sink, push_email_variant};

impl<'a, S: Sink> DayGen<'a, S> {
    pub(super) fn sign_up(&mut self) {
        let u = &self.s.user;
        if u.identifies {
            self.view(SIGN_UP, Arg::None);
            self.s.logged_in = true;
            self.s.ctx_email = self.s.web && self.rng.chance(0.5);
            self.identify();
            self.track(T::SignedUp);
            let method = *self.rng.pick(SIGNUP_METHODS);
            self.ev.set_str("method", method);
            self.ev.set_str("plan", "free");
            self.send();
            if self.rng.chance(0.25) {
                self.begin(Kind::Alias);
                let anon = std::mem::take(&mut self.s.anon);
                self.ev.previous_id.set(&anon);
                self.s.anon = anon;
                self.ev.reset_props(NO_PROPS);
                self.send();
            }
            if self.s.user.account.is_some() {
                self.group();
            }
        } else if u.newsletter {
            self.identify_email_only();
        }
    }

    pub(super) fn sign_in(&mut self) {
        if self.s.web {
            self.view(LOGIN, Arg::None);
        }
        self.s.logged_in = true;
        self.s.ctx_email = self.s.web && self.rng.chance(0.5);
        self.identify();
        self.track(T::SignedIn);
        let method = *self.rng.pick(SIGNUP_METHODS);
        self.ev.set_str("method", method);
        self.send();
    }

    /// Sets traits.email and context.traits.email, sometimes spelled differently.
    fn set_email_trait(&mut self) {
        let mut tmp = std::mem::take(&mut self.tmp);
        tmp.clear();
        push_email_variant(&mut self.rng, &self.s.email, &mut tmp);
        self.ev.set_str("email", &tmp);
        self.ev.ctx.traits_email.set(&tmp);
        self.tmp = tmp;
    }

    fn identify(&mut self) {
        self.begin(Kind::Identify);
        self.ev.reset_props(USER_TRAITS);
        self.set_email_trait();
        let u = &self.s.user;
        let (first, last) = (u.first_name, u.last_name);
        self.ev.set_with("name", |b| {
            b.push_str(first);
            b.push(' ');
            b.push_str(last);
        });
        self.ev.set_str("first_name", first);
        self.ev.set_str("last_name", last);
        self.ev.set_str("plan", u.plan(self.d));
        let created = u.created_ms;
        self.ev.set_with("created_at", |b| push_iso_ms(b, created));
        self.ev.set_str("country", u.country);
        self.send();
    }

    /// An identify call with only an email and no user id (newsletter form, guest checkout).
    pub(super) fn identify_email_only(&mut self) {
        self.begin(Kind::Identify);
        self.ev.reset_props(USER_TRAITS);
        self.set_email_trait();
        self.send();
    }

    fn group(&mut self) {
        let Some(a) = self.s.user.account else { return };
        let acct = self.w.account(a);
        self.begin(Kind::Group);
        acct.push_group_id(self.ev.group_id.write());
        self.ev.reset_props(ACCOUNT_TRAITS);
        self.ev.set_with("name", |b| acct.push_name(b));
        self.ev.set_str("industry", acct.industry);
        self.ev.set_int("employees", acct.employees);
        self.ev.set_str("plan", acct.plan(self.d));
        self.ev.set_with("website", |b| acct.push_website(b));
        self.send();
    }

    /// Things a logged-in user sometimes does at the start of a session.
    pub(super) fn account_chores(&mut self) {
        let currency = self.s.user.currency();
        if self.rng.chance(0.012) {
            let (id, total) = (self.rng.next_u64(), self.rng.range(1_500, 30_000) as i64);
            self.track(T::OrderRefunded);
            self.ev.set_with("order_id", |b| {
                b.push_str("ord_");
                push_hex(b, id, 14);
            });
            self.ev.set_money("total", total);
            self.ev.set_str("currency", currency);
            self.send();
        }
        if self.rng.chance(0.005) {
            let (id, total) = (self.rng.next_u64(), self.rng.range(1_500, 30_000) as i64);
            self.track(T::OrderCancelled);
            self.ev.set_with("order_id", |b| {
                b.push_str("ord_");
                push_hex(b, id, 14);
            });
            self.ev.set_money("total", total);
            self.ev.set_str("currency", currency);
            let reason = *self.rng.pick(CANCEL_REASONS);
            self.ev.set_str("reason", reason);
            self.send();
        }
        let u = &self.s.user;
        if u.upgrade_day <= self.d && self.d < u.upgrade_day + 30 && self.rng.chance(0.5) {
            let plan = u.paid_plan;
            let annual = self.rng.chance(0.3);
            let monthly = if plan == "pro" { 1_999 } else { 999 };
            self.track(T::SubscriptionStarted);
            self.ev.set_str("plan", plan);
            self.ev
                .set_str("billing_period", if annual { "annual" } else { "monthly" });
            self.ev
                .set_money("amount", if annual { monthly * 10 } else { monthly });
            self.ev.set_str("currency", currency);
            self.send();
            self.identify();
        }
        if self.s.user.upgrade_day < self.d && self.rng.chance(0.003) {
            let plan = self.s.user.paid_plan;
            self.track(T::SubscriptionCancelled);
            self.ev.set_str("plan", plan);
            let reason = *self.rng.pick(CANCEL_REASONS);
            self.ev.set_str("reason", reason);
            self.send();
        }
        if self.s.user.account.is_some() && self.rng.chance(0.06) {
            self.group();
        }
    }
}
