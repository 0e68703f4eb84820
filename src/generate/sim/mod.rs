//! One day of the store: sessions of users on their devices, each a plausible shopping path
//! (browse, search, cart, checkout, sign-up, log-in, e-mails, B2B group calls), turned into
//! messages with the hard cases mixed in (duplicates, late arrivals, placeholder ids, email
//! spellings, bad rows). A day depends only on the seed and its index, so days run in parallel.
//!
//! Files: this one holds the day's setup and sessions; `messages.rs` builds and sends messages,
//! `shopping.rs` plays the shopping path, `accounts.rs` sign-ups, log-ins and group calls.

mod accounts;
mod messages;
mod shopping;

use super::catalog::{CAMPAIGNS, T};
use super::event::{Bad, Event};
use super::rng::Rng;
use super::text::{DAY_MS, push_hex};
use super::world::{Device, User, World};
use crate::error::{GenerateError, GenerateResult};

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
