//! One day of the store: sessions of users on their devices, each a plausible shopping path
//! (browse, search, cart, checkout, sign-up, log-in, e-mails, B2B group calls), turned into
//! messages with the hard cases mixed in (duplicates, late arrivals, placeholder ids, email
//! spellings, bad rows). A day depends only on the seed and its index, so days run in parallel.

use super::catalog::{
    ACCOUNT_TRAITS, CAMPAIGNS, CANCEL_REASONS, CATEGORIES, COUPONS, NO_PROPS, PAGE_PROPS, PAGES,
    PAYMENT_METHODS, PLACEHOLDERS, PROMOTIONS, Product, REFERRERS, REVIEW_BODIES, SEARCH_QUERIES,
    SHARE_VIA, SIGNUP_METHODS, T, TRACKS, USER_TRAITS,
};
use super::event::{Bad, Event, Kind};
use super::rng::Rng;
use super::text::{DAY_MS, push_hex, push_iso_ms, push_u64};
use super::world::{Device, User, World};
use crate::error::{GenerateError, GenerateResult};
use crate::spec::Preset;

/// Receives the messages of one day, in order, and writes them out.
pub(crate) trait Sink {
    /// A new day begins; its files go to the `dt=` partition of `epoch_day`.
    fn start_day(&mut self, epoch_day: i64);
    fn emit(&mut self, ev: &Event) -> GenerateResult<()>;
    /// The day is over: write what is buffered.
    fn finish(&mut self) -> GenerateResult<()>;
}

/// What one day produced.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Stats {
    pub events: u64,
    pub duplicates: u64,
    pub bad_rows: u64,
    pub late: u64,
}

impl std::ops::AddAssign for Stats {
    fn add_assign(&mut self, o: Stats) {
        self.events += o.events;
        self.duplicates += o.duplicates;
        self.bad_rows += o.bad_rows;
        self.late += o.late;
    }
}

/// A message is re-sent later with the same message id.
const P_DUP: f64 = 0.004;
/// Each of the four kinds of bad row (`events` preset only).
const P_BAD_EACH: f64 = 0.0008;
const P_PLACEHOLDER_USER: f64 = 0.002;
const P_PLACEHOLDER_ANON: f64 = 0.001;
/// An email is written with other capitals or surrounding spaces.
const P_EMAIL_VARIANT: f64 = 0.05;
/// A session was recorded offline and arrives days later.
const P_LATE_SESSION: f64 = 0.012;
/// A session is a marketing e-mail being opened (server-side, `user_id` only).
const P_EMAIL_SESSION: f64 = 0.08;

const HOUR_WEIGHTS: [f64; 24] = [
    0.4, 0.25, 0.15, 0.12, 0.12, 0.2, 0.4, 0.7, 1.0, 1.2, 1.3, 1.35, 1.4, 1.35, 1.3, 1.3, 1.35,
    1.5, 1.7, 1.9, 2.0, 1.8, 1.3, 0.8,
];

// Indexes into PAGES.
const HOME: usize = 0;
const CATEGORY: usize = 1;
const SEARCH: usize = 2;
const PRODUCT: usize = 3;
const CART: usize = 4;
const CHECKOUT: usize = 5;
const CONFIRMATION: usize = 6;
const ACCOUNT: usize = 7;
const SIGN_UP: usize = 8;
const LOGIN: usize = 9;
const WISHLIST: usize = 10;
const HELP: usize = 11;

const SITE: &str = "https://shop.example.com";

/// Generates day `d` of the run into `sink`.
pub(crate) fn run_day<S: Sink>(w: &World, d: u32, sink: &mut S) -> GenerateResult<Stats> {
    let mut g = DayGen::new(w, d, sink);
    g.run();
    match g.failed.take() {
        Some(e) => Err(e),
        None => Ok(g.stats),
    }
}

enum Arg {
    None,
    Category(usize),
    Product(usize),
}

/// The state of the session being played.
struct Session {
    user: User,
    dev: Option<Device>,
    logged_in: bool,
    web: bool,
    t: i64,
    t_limit: i64,
    late: bool,
    arrival: i64,
    over: bool,
    ctx_email: bool,
    email: String,
    user_id: String,
    anon: String,
    prev_url: String,
    cart: Vec<(usize, i64)>,
    cart_id: String,
}

struct DayGen<'a, S: Sink> {
    w: &'a World,
    sink: &'a mut S,
    rng: Rng,
    d: i64,
    epoch_day: i64,
    day_start: i64,
    day_end: i64,
    budget: u64,
    emitted: u64,
    stats: Stats,
    pending: Vec<(u64, Event)>,
    failed: Option<GenerateError>,
    ev: Event,
    s: Session,
    tmp: String,
    hour_cum: [f64; 24],
}

impl<'a, S: Sink> DayGen<'a, S> {
    fn new(w: &'a World, d: u32, sink: &'a mut S) -> Self {
        let epoch_day = w.first_day + d as i64;
        let day_start = epoch_day * DAY_MS;
        let mut hour_cum = [0.0; 24];
        let total: f64 = HOUR_WEIGHTS.iter().sum();
        let mut acc = 0.0;
        for (i, h) in HOUR_WEIGHTS.iter().enumerate() {
            acc += h / total;
            hour_cum[i] = acc;
        }
        DayGen {
            w,
            sink,
            rng: Rng::new(super::rng::hash(w.seed, 0xDA7, d as u64, 0)),
            d: d as i64,
            epoch_day,
            day_start,
            day_end: (day_start + DAY_MS).min(w.end_ms),
            budget: w.events_cum[d as usize + 1] - w.events_cum[d as usize],
            emitted: 0,
            stats: Stats::default(),
            pending: Vec::new(),
            failed: None,
            ev: Event::default(),
            s: Session {
                user: w.user(0),
                dev: None,
                logged_in: false,
                web: false,
                t: 0,
                t_limit: 0,
                late: false,
                arrival: 0,
                over: true,
                ctx_email: false,
                email: String::new(),
                user_id: String::new(),
                anon: String::new(),
                prev_url: String::new(),
                cart: Vec::with_capacity(8),
                cart_id: String::new(),
            },
            tmp: String::new(),
            hour_cum,
        }
    }

    fn run(&mut self) {
        let (from, to) = (
            self.w.users_before(self.d as u32),
            self.w.users_cum[self.d as usize],
        );
        for u in from..to {
            if self.full() {
                break;
            }
            self.start_session(u, Some(0), 0); // signs up
            self.shopping(true);
        }
        while !self.full() {
            let r = self.rng.f64();
            let u = self.pick_user();
            if r < P_EMAIL_SESSION {
                let user = self.w.user(u);
                if user.identifies && user.signup_day < self.d {
                    self.email_session(user);
                    continue;
                }
            }
            let late = if self.d >= 2 && r > 1.0 - P_LATE_SESSION {
                self.rng.range(2, self.d.min(7) as u64) as i64
            } else {
                0
            };
            self.start_session(u, None, late);
            self.shopping(false);
        }
        for (_, e) in std::mem::take(&mut self.pending) {
            self.write(&e, true);
        }
        if self.failed.is_none()
            && let Err(e) = self.sink.finish()
        {
            self.failed = Some(e);
        }
    }

    /// No more messages today: the budget (minus scheduled re-sends) is spent, or writing failed.
    #[inline]
    fn full(&self) -> bool {
        self.failed.is_some() || self.emitted + self.pending.len() as u64 >= self.budget
    }

    #[inline]
    fn alive(&self) -> bool {
        !self.full() && !self.s.over
    }

    /// A user who exists today, the regulars more often than the one-time visitors.
    fn pick_user(&mut self) -> u64 {
        let pool = self.w.users_cum[self.d as usize];
        for _ in 0..64 {
            let u = self.rng.below(pool);
            if self.rng.f64() < self.w.activity(u) {
                return u;
            }
        }
        self.rng.below(pool)
    }

    fn time_of_day(&mut self) -> i64 {
        let x = self.rng.f64();
        let hour = self.hour_cum.iter().position(|&c| x < c).unwrap_or(23) as i64;
        hour * 3_600_000 + self.rng.below(3_600_000) as i64
    }

    /// Starts a session of user `u` on device `device` (a random one of theirs if `None`).
    /// The sign-up session (device 0) starts when the account is created (`created_at`).
    fn start_session(&mut self, u: u64, device: Option<u64>, late_days: i64) {
        let user = self.w.user(u);
        // Nobody records events offline before they first came.
        let late_days = if user.signup_day > self.d - late_days {
            0
        } else {
            late_days
        };
        let k = device.unwrap_or_else(|| self.rng.below(user.n_devices));
        let dev = self.w.device(&user, k);
        let tod = if device == Some(0) && user.signup_day == self.d {
            user.created_ms - self.day_start
        } else {
            self.time_of_day()
        };
        let s = &mut self.s;
        s.logged_in = user.identifies && self.d >= dev.login_day;
        s.web = dev.is_web();
        s.user_id.clear();
        user.push_user_id(&mut s.user_id);
        s.email.clear();
        user.push_email(&mut s.email);
        s.anon.clear();
        dev.push_anonymous_id(&mut s.anon);
        s.prev_url.clear();
        s.cart.clear();
        s.over = false;
        if late_days > 0 {
            s.late = true;
            s.t = self.day_start - late_days * DAY_MS + tod;
            s.t_limit = self.day_start - (late_days - 1) * DAY_MS;
            s.arrival =
                self.day_start + self.rng.below((self.day_end - self.day_start) as u64) as i64;
        } else {
            s.late = false;
            s.t = self.day_start + tod * (self.day_end - self.day_start) / DAY_MS;
            s.t_limit = self.day_end;
        }
        s.ctx_email = s.logged_in && s.web && self.rng.chance(0.3);
        let ctx = &mut self.ev.ctx;
        let (lib, version, channel) = dev.library();
        ctx.library_name = lib;
        ctx.library_version = version;
        ctx.channel = channel;
        dev.push_ip(ctx.ip.write());
        ctx.user_agent = Some(dev.user_agent);
        ctx.locale = Some(user.locale);
        ctx.os_name = Some(dev.os_name);
        ctx.device_type = dev.device_type();
        if s.web {
            ctx.device_id.clear();
        } else {
            dev.push_device_id(ctx.device_id.write());
        }
        ctx.page_path.clear();
        ctx.page_url.clear();
        ctx.page_title = None;
        s.user = user;
        s.dev = Some(dev);
        self.new_cart();
    }

    fn new_cart(&mut self) {
        let (a, b) = (self.rng.next_u64(), self.rng.next_u64());
        let c = &mut self.s.cart_id;
        c.clear();
        c.push_str("cart_");
        push_hex(c, a, 16);
        push_hex(c, b >> 48, 4);
    }

    /// A server-side session: the user opens a marketing e-mail (and maybe clicks).
    fn email_session(&mut self, user: User) {
        let tod = self.time_of_day();
        let s = &mut self.s;
        s.logged_in = true;
        s.web = false;
        s.user_id.clear();
        user.push_user_id(&mut s.user_id);
        s.dev = None;
        s.late = false;
        s.over = false;
        s.ctx_email = false;
        s.t = self.day_start + tod * (self.day_end - self.day_start) / DAY_MS;
        s.t_limit = self.day_end;
        s.user = user;
        let ctx = &mut self.ev.ctx;
        ctx.library_name = "analytics-node";
        ctx.library_version = "2.1.0";
        ctx.channel = "server";
        ctx.ip.clear();
        ctx.user_agent = None;
        ctx.locale = None;
        ctx.os_name = None;
        ctx.device_type = None;
        ctx.device_id.clear();
        ctx.page_path.clear();
        ctx.page_url.clear();
        ctx.page_title = None;
        let (campaign, subject) = *self.rng.pick(CAMPAIGNS);
        let email_id = self.rng.next_u64();
        self.track(T::EmailOpened);
        self.ev.set_with("email_id", |b| {
            b.push_str("em_");
            push_hex(b, email_id, 12);
        });
        self.ev.set_str("email_subject", subject);
        self.ev.set_str("campaign_name", campaign);
        self.send();
        if self.rng.chance(0.35) {
            self.s.t += self.rng.range(5_000, 600_000) as i64;
            self.track(T::EmailLinkClicked);
            self.ev.set_with("email_id", |b| {
                b.push_str("em_");
                push_hex(b, email_id, 12);
            });
            self.ev.set_str("campaign_name", campaign);
            self.ev.set_with("link_url", |b| {
                b.push_str(SITE);
                b.push_str("/?utm_source=email&utm_campaign=");
                b.push_str(campaign);
            });
            self.send();
        }
    }

    // ----- building and sending messages -----

    /// Starts a message of `kind` carrying the session's identity.
    fn begin(&mut self, kind: Kind) {
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

    fn track(&mut self, t: T) {
        self.begin(Kind::Track);
        self.ev.track = t as usize;
        self.ev.reset_props(TRACKS[t as usize].props);
    }

    /// Sends the message being built: stamps id and times, mixes in the hard cases.
    fn send(&mut self) {
        if self.full() || self.s.over {
            return;
        }
        if self.s.t >= self.s.t_limit {
            self.s.over = true;
            return;
        }
        let (a, b) = (self.rng.next_u64(), self.rng.next_u64());
        super::text::push_uuid(self.ev.message_id.write(), a, b, false);
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

    fn write(&mut self, ev: &Event, dup: bool) {
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

    fn view(&mut self, page: usize, arg: Arg) {
        let (name, path, title) = PAGES[page];
        if !self.s.web {
            self.begin(Kind::Screen);
            self.ev.name = name;
            self.ev.reset_props(NO_PROPS);
            self.send();
            return;
        }
        let mut p = std::mem::take(&mut self.tmp);
        p.clear();
        p.push_str(path);
        match arg {
            Arg::None => {}
            Arg::Category(c) => p.push_str(CATEGORIES[c].1),
            Arg::Product(i) => p.push_str(&self.w.catalog[i].id),
        }
        {
            let ctx = &mut self.ev.ctx;
            ctx.page_path.set(&p);
            let url = ctx.page_url.write();
            url.push_str(SITE);
            url.push_str(&p);
            ctx.page_title = Some(title);
        }
        self.begin(Kind::Page);
        self.ev.name = name;
        self.ev.reset_props(PAGE_PROPS);
        self.ev.set_str("path", &p);
        self.ev.set_with("url", |b| {
            b.push_str(SITE);
            b.push_str(&p);
        });
        self.ev.set_str("title", title);
        if !self.s.prev_url.is_empty() {
            let prev = std::mem::take(&mut self.s.prev_url);
            self.ev.set_str("referrer", &prev);
            self.s.prev_url = prev;
        } else if self.rng.chance(0.6) {
            let r = *self.rng.pick(REFERRERS);
            self.ev.set_str("referrer", r);
        }
        self.s.prev_url.clear();
        self.s.prev_url.push_str(SITE);
        self.s.prev_url.push_str(&p);
        self.tmp = p;
        self.send();
    }

    fn shopping(&mut self, onboarding: bool) {
        if !self.s.web {
            if onboarding {
                self.track(T::AppInstalled);
                self.app_version();
                self.send();
            }
            self.track(T::AppOpened);
            self.app_version();
            let bg = self.rng.chance(0.3);
            self.ev.set_bool("from_background", bg);
            self.send();
        }
        self.view(HOME, Arg::None);
        if onboarding {
            let n = self.rng.range(0, 3);
            self.browse(n);
            self.sign_up();
        } else {
            // Logging in on this device, or again after a while.
            let u = &self.s.user;
            let comes_back = u.identifies
                && !self.s.logged_in
                && self.d >= u.signup_day
                && self.rng.chance(0.35);
            if comes_back || (self.s.logged_in && self.rng.chance(0.15)) {
                self.sign_in();
            }
            if self.s.logged_in {
                self.account_chores();
            }
        }
        let steps = 1 + ((-(1.0 - self.rng.f64()).ln()) * 6.0).min(40.0) as u64;
        self.browse(steps);
        if self.s.logged_in && self.rng.chance(0.04) {
            self.track(T::SignedOut);
            self.send();
            self.s.logged_in = false;
            self.s.ctx_email = false;
        }
    }

    fn app_version(&mut self) {
        let (v, b) = if self.s.user_agent_is_new() {
            ("4.12.0", 4120)
        } else {
            ("4.11.2", 4112)
        };
        self.ev.set_str("version", v);
        self.ev.set_int("build", b);
    }

    fn browse(&mut self, steps: u64) {
        for _ in 0..steps {
            if !self.alive() {
                return;
            }
            let r = self.rng.f64();
            if r < 0.16 {
                self.search();
            } else if r < 0.34 {
                self.category();
            } else if r < 0.72 {
                self.product(None);
            } else if r < 0.77 {
                self.promotion();
            } else if r < 0.84 {
                if self.s.cart.is_empty() {
                    self.product(None);
                } else {
                    self.cart();
                }
            } else if r < 0.87 {
                let page = *self.rng.pick(&[ACCOUNT, HELP, WISHLIST]);
                self.view(page, Arg::None);
            } else if r < 0.93 && !self.s.cart.is_empty() {
                self.checkout();
                return;
            } else {
                self.product(None);
            }
        }
        if !self.s.cart.is_empty() && self.rng.chance(0.1) {
            self.checkout();
        }
    }

    fn pick_product(&mut self) -> usize {
        let x = self.rng.f64();
        ((self.w.catalog.len() as f64) * x * x) as usize
    }

    fn product_props(&mut self, p: usize, qty: i64) {
        let prod: &Product = &self.w.catalog[p];
        let ev = &mut self.ev;
        ev.set_str("product_id", &prod.id);
        ev.set_str("sku", &prod.sku);
        ev.set_str("category", CATEGORIES[prod.category].0);
        ev.set_str("name", &prod.name);
        ev.set_str("brand", prod.brand);
        ev.set_money("price", prod.price_cents as i64);
        ev.set_int("quantity", qty);
    }

    fn product(&mut self, clicked: Option<usize>) {
        let p = clicked.unwrap_or_else(|| self.pick_product());
        self.view(PRODUCT, Arg::Product(p));
        self.track(T::ProductViewed);
        self.product_props(p, 1);
        let currency = self.s.user.currency();
        self.ev.set_str("currency", currency);
        self.ev
            .set_money("value", self.w.catalog[p].price_cents as i64);
        self.send();
        if self.rng.chance(0.3) && self.s.cart.len() < 8 {
            let qty = if self.rng.chance(0.8) {
                1
            } else {
                self.rng.range(2, 4) as i64
            };
            self.track(T::ProductAdded);
            self.product_props(p, qty);
            let cart_id = std::mem::take(&mut self.s.cart_id);
            self.ev.set_str("cart_id", &cart_id);
            self.s.cart_id = cart_id;
            self.send();
            self.s.cart.push((p, qty));
        }
        if self.s.logged_in && self.rng.chance(0.03) {
            self.track(T::WishlistAdded);
            self.product_props(p, 1);
            self.wishlist_id();
            self.send();
        }
        if self.rng.chance(0.02) {
            self.track(T::ProductShared);
            self.product_props(p, 1);
            let via = *self.rng.pick(SHARE_VIA);
            self.ev.set_str("share_via", via);
            self.send();
        }
        if self.s.logged_in && self.rng.chance(0.015) {
            self.track(T::ReviewSubmitted);
            self.product_props(p, 1);
            let id = self.rng.next_u64();
            self.ev.set_with("review_id", |b| {
                b.push_str("rev_");
                push_hex(b, id, 12);
            });
            let rating = [5, 5, 5, 4, 4, 3, 2, 1][self.rng.below(8) as usize];
            self.ev.set_int("rating", rating);
            let body = *self.rng.pick(REVIEW_BODIES);
            self.ev.set_str("review_body", body);
            self.send();
        }
        if self.s.logged_in && self.rng.chance(0.008) {
            self.track(T::WishlistRemoved);
            self.product_props(p, 1);
            self.wishlist_id();
            self.send();
        }
    }

    fn wishlist_id(&mut self) {
        let idx = self.s.user.idx;
        self.ev.set_with("wishlist_id", |b| {
            b.push_str("wl_");
            push_u64(b, idx);
        });
    }

    fn search(&mut self) {
        let q = *self.rng.pick(SEARCH_QUERIES);
        self.view(SEARCH, Arg::None);
        self.track(T::ProductsSearched);
        self.ev.set_str("query", q);
        let results = self.rng.below(120) as i64;
        self.ev.set_int("results", results);
        self.send();
        if results > 0 && self.rng.chance(0.5) {
            let p = self.pick_product();
            self.click(p);
        }
    }

    fn click(&mut self, p: usize) {
        self.track(T::ProductClicked);
        self.product_props(p, 1);
        let pos = 1 + self.rng.below(24) as i64;
        self.ev.set_int("position", pos);
        self.send();
        self.product(Some(p));
    }

    fn category(&mut self) {
        let c = self.rng.below(CATEGORIES.len() as u64) as usize;
        self.view(CATEGORY, Arg::Category(c));
        self.track(T::ProductListViewed);
        self.ev.set_with("list_id", |b| {
            b.push_str(CATEGORIES[c].1);
            b.push_str("-grid");
        });
        self.ev.set_str("category", CATEGORIES[c].0);
        self.send();
        if self.rng.chance(0.45) {
            let n = self.w.catalog.len();
            let start = self.pick_product();
            let p = (0..n)
                .map(|i| (start + i) % n)
                .find(|&i| self.w.catalog[i].category == c);
            if let Some(p) = p {
                self.click(p);
            }
        }
    }

    fn promotion(&mut self) {
        let (id, creative, name) = *self.rng.pick(PROMOTIONS);
        let position = *self.rng.pick(&["home_top", "home_middle", "sidebar"]);
        for t in [T::PromotionViewed, T::PromotionClicked] {
            self.track(t);
            self.ev.set_str("promotion_id", id);
            self.ev.set_str("creative", creative);
            self.ev.set_str("name", name);
            self.ev.set_str("position", position);
            self.send();
            if !self.rng.chance(0.25) {
                break;
            }
        }
    }

    fn cart_value(&self) -> i64 {
        self.s
            .cart
            .iter()
            .map(|&(p, q)| self.w.catalog[p].price_cents as i64 * q)
            .sum()
    }

    fn cart(&mut self) {
        self.view(CART, Arg::None);
        self.track(T::CartViewed);
        let cart_id = std::mem::take(&mut self.s.cart_id);
        self.ev.set_str("cart_id", &cart_id);
        self.ev.set_int("products", self.s.cart.len() as i64);
        let v = self.cart_value();
        self.ev.set_money("value", v);
        self.send();
        if self.rng.chance(0.2)
            && let Some((p, q)) = self.s.cart.pop()
        {
            self.track(T::ProductRemoved);
            self.product_props(p, q);
            self.ev.set_str("cart_id", &cart_id);
            self.send();
        }
        self.s.cart_id = cart_id;
    }

    fn checkout(&mut self) {
        if self.s.cart.is_empty() {
            return;
        }
        let subtotal = self.cart_value();
        let products = self.s.cart.len() as i64;
        let quantity: i64 = self.s.cart.iter().map(|c| c.1).sum();
        let (oa, ca) = (self.rng.next_u64(), self.rng.next_u64());
        let order = |b: &mut String| {
            b.push_str("ord_");
            push_hex(b, oa, 14);
        };
        let checkout = |b: &mut String| {
            b.push_str("chk_");
            push_hex(b, ca, 14);
        };
        let currency = self.s.user.currency();
        self.view(CHECKOUT, Arg::None);
        self.track(T::CheckoutStarted);
        self.ev.set_with("order_id", order);
        self.ev.set_with("checkout_id", checkout);
        self.ev.set_money("value", subtotal);
        self.ev.set_money("revenue", subtotal);
        self.ev.set_str("currency", currency);
        self.ev.set_int("products", products);
        self.send();
        self.track(T::CheckoutStepViewed);
        self.ev.set_with("checkout_id", checkout);
        self.ev.set_int("step", 1);
        self.send();
        // Logging in (or leaving an email as a guest) at checkout.
        let u = &self.s.user;
        if !self.s.logged_in && u.identifies && self.d >= u.signup_day && self.rng.chance(0.5) {
            self.sign_in();
        } else if !self.s.logged_in && (u.identifies || u.newsletter) && self.rng.chance(0.4) {
            self.identify_email_only();
        }
        let mut discount = 0;
        let mut coupon = None;
        if self.rng.chance(0.15) {
            let (cid, cname, pct) = *self.rng.pick(COUPONS);
            self.track(T::CouponEntered);
            self.ev.set_with("order_id", order);
            self.ev.set_str("coupon_id", cid);
            self.send();
            if self.rng.chance(0.75) {
                discount = subtotal * pct as i64 / 100;
                coupon = Some(cid);
                self.track(T::CouponApplied);
                self.ev.set_with("order_id", order);
                self.ev.set_str("coupon_id", cid);
                self.ev.set_str("coupon_name", cname);
                self.ev.set_money("discount", discount);
            } else {
                self.track(T::CouponDenied);
                self.ev.set_with("order_id", order);
                self.ev.set_str("coupon_id", cid);
                let reason = *self.rng.pick(&["expired", "invalid", "minimum_not_met"]);
                self.ev.set_str("reason", reason);
            }
            self.send();
        }
        self.track(T::PaymentInfoEntered);
        self.ev.set_with("checkout_id", checkout);
        self.ev.set_with("order_id", order);
        self.ev.set_int("step", 2);
        let method = *self.rng.pick(PAYMENT_METHODS);
        self.ev.set_str("payment_method", method);
        self.send();
        if !self.rng.chance(0.72) {
            return;
        }
        let revenue = subtotal - discount;
        let shipping = if subtotal >= 5_000 { 0 } else { 599 };
        let tax = revenue * 8 / 100;
        self.view(CONFIRMATION, Arg::None);
        self.track(T::OrderCompleted);
        self.ev.set_with("order_id", order);
        self.ev.set_with("checkout_id", checkout);
        self.ev.set_money("total", revenue + shipping + tax);
        self.ev.set_money("revenue", revenue);
        self.ev.set_money("subtotal", subtotal);
        self.ev.set_money("shipping", shipping);
        self.ev.set_money("tax", tax);
        self.ev.set_money("discount", discount);
        if let Some(c) = coupon {
            self.ev.set_str("coupon", c);
        }
        self.ev.set_str("currency", currency);
        self.ev.set_int("products", products);
        self.ev.set_int("quantity", quantity);
        self.send();
        self.s.cart.clear();
        self.new_cart();
    }

    fn sign_up(&mut self) {
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

    fn sign_in(&mut self) {
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
    fn identify_email_only(&mut self) {
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
    fn account_chores(&mut self) {
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

/// Writes one message to the sink and counts it.
fn record<S: Sink>(
    sink: &mut S,
    ev: &Event,
    dup: bool,
    stats: &mut Stats,
    emitted: &mut u64,
    failed: &mut Option<GenerateError>,
    epoch_day: i64,
) {
    if let Err(e) = sink.emit(ev) {
        *failed = Some(e);
        return;
    }
    *emitted += 1;
    stats.events += 1;
    // What a reader sets aside: the planted bad rows, and rows whose every identifier is a
    // blank placeholder. Their copies are bad too, not duplicates of a good event.
    if ev.bad != Bad::None || ev.lacks_identifier() {
        stats.bad_rows += 1;
    } else if dup {
        stats.duplicates += 1;
    }
    if ev.bad != Bad::Timestamp && ev.ts_ms.div_euclid(DAY_MS) < epoch_day {
        stats.late += 1;
    }
}

impl Session {
    fn user_agent_is_new(&self) -> bool {
        self.dev
            .as_ref()
            .is_some_and(|d| d.user_agent.contains("4.12") || d.user_agent.contains("Android 14"))
    }
}

/// Appends an email, now and then with other capitals or surrounding spaces (the same address
/// to anyone who normalizes: trim and lower-case).
fn push_email_variant(rng: &mut Rng, email: &str, buf: &mut String) {
    if !rng.chance(P_EMAIL_VARIANT) {
        buf.push_str(email);
        return;
    }
    match rng.below(4) {
        0 => {
            let mut up = true;
            for c in email.chars() {
                buf.push(if up { c.to_ascii_uppercase() } else { c });
                up = matches!(c, '.' | '@');
            }
        }
        1 => {
            let start = buf.len();
            buf.push_str(email);
            buf[start..].make_ascii_uppercase();
        }
        2 => {
            buf.push(' ');
            buf.push_str(email);
            buf.push(' ');
        }
        _ => {
            buf.push_str(email);
            buf.push_str("  ");
        }
    }
}
