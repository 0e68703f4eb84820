//! The simulated store's population, derived on demand from `hash(seed, index)`: users with
//! their devices, emails and accounts, and how many events and sign-ups each day gets. Nothing
//! per user is stored, so memory does not grow with the number of users.

use super::GenerateOptions;
use super::catalog::{
    ACCOUNT_PLANS, ANDROID_UAS, COMPANY_SUFFIXES, COMPANY_WORDS, EMAIL_DOMAINS, FIRST_NAMES,
    INDUSTRIES, IOS_UAS, LAST_NAMES, LOCALES, PAID_PLANS, Product, WEB_DESKTOP_UAS, WEB_MOBILE_UAS,
    catalog,
};
use super::rng::{below, hash, mix, unit};
use super::text::{DAY_MS, civil_from_days, push_hex, push_u64, push_uuid, weekday};
use crate::spec::Preset;

const TAG_USER: u64 = 1;
const TAG_DEVICE: u64 = 2;
const TAG_ACCOUNT: u64 = 3;
const TAG_PRE: u64 = 4;

/// Share of users who exist before the first day (returning customers).
const PRE_EXISTING: f64 = 0.4;

/// Everything fixed for one run: options, the day plan and the catalog.
#[derive(Debug)]
pub(crate) struct World {
    pub seed: u64,
    pub preset: Preset,
    pub days: u32,
    /// Day number (since 1970-01-01) of day 0.
    pub first_day: i64,
    /// The end of the data, exclusive, in ms since the epoch.
    pub end_ms: i64,
    pub n_users: u64,
    pub n_pre: u64,
    pub n_accounts: u64,
    /// `events_cum[d]..events_cum[d + 1]`: the messages that arrive on day `d`.
    pub events_cum: Vec<u64>,
    /// Users signed up by the end of day `d` (those before `n_pre` always existed).
    pub users_cum: Vec<u64>,
    pub catalog: Vec<Product>,
}

impl World {
    pub(crate) fn new(opts: &GenerateOptions) -> World {
        let end_ms = opts.end.timestamp_millis();
        let last_day = (end_ms - 1).div_euclid(DAY_MS);
        let days = opts.days.max(1);
        let first_day = last_day - (days as i64 - 1);
        // Traffic grows over the period, peaks at weekends and in the holiday season.
        let weights: Vec<f64> = (0..days as i64)
            .map(|d| {
                let day = first_day + d;
                let growth = 1.0 + 0.6 * d as f64 / days as f64;
                let week = [1.0, 0.97, 0.96, 1.0, 1.07, 1.18, 1.12][weekday(day) as usize];
                let (_, m, dd) = civil_from_days(day);
                let season = match (m, dd) {
                    (11, 20..) => 1.6,
                    (12, ..=24) => 1.45,
                    (1, ..=7) => 1.2,
                    _ => 1.0,
                };
                growth * week * season
            })
            .collect();
        let total_w: f64 = weights.iter().sum();
        let cum_share = |d: usize| weights[..d].iter().sum::<f64>() / total_w;
        let mut events_cum = Vec::with_capacity(days as usize + 1);
        let mut acc = 0.0;
        events_cum.push(0);
        for w in &weights {
            acc += w;
            events_cum.push(((opts.events as f64) * (acc / total_w)).round() as u64);
        }
        *events_cum.last_mut().expect("days >= 1") = opts.events;
        let n_users = (opts.events / 30).max(1);
        let n_pre = ((n_users as f64 * PRE_EXISTING).round() as u64).clamp(1, n_users);
        let new_users = n_users - n_pre;
        let mut users_cum: Vec<u64> = (1..=days as usize)
            .map(|d| n_pre + (new_users as f64 * cum_share(d)).round() as u64)
            .collect();
        *users_cum.last_mut().expect("days >= 1") = n_users;
        World {
            seed: opts.seed,
            preset: opts.preset,
            days,
            first_day,
            end_ms,
            n_users,
            n_pre,
            n_accounts: (n_users / 25).max(1),
            events_cum,
            users_cum,
            catalog: catalog(opts.seed),
        }
    }

    /// Users who exist at the start of day `d`.
    pub(crate) fn users_before(&self, d: u32) -> u64 {
        if d == 0 {
            self.n_pre
        } else {
            self.users_cum[d as usize - 1]
        }
    }

    /// How likely a user is to be active in a session draw (a heavy-tailed mix of regulars and
    /// one-time visitors).
    #[inline]
    pub(crate) fn activity(&self, u: u64) -> f64 {
        let x = unit(hash(self.seed, TAG_USER, u, 9));
        0.03 + 0.97 * x * x * x
    }

    /// The user with index `u`.
    pub(crate) fn user(&self, u: u64) -> User {
        let h = hash(self.seed, TAG_USER, u, 0);
        let r = |k: u64| unit(mix(h ^ k.wrapping_mul(0x9E37_79B9_7F4A_7C15)));
        let rb = |k: u64, n: u64| below(mix(h ^ k.wrapping_mul(0xC2B2_AE3D_27D4_EB4F)), n);
        let signup_day = if u < self.n_pre {
            -1 - rb(1, 720) as i64
        } else {
            self.users_cum.partition_point(|&c| c <= u) as i64
        };
        let nd = r(2);
        let n_devices = if nd < 0.45 {
            1
        } else if nd < 0.75 {
            2
        } else if nd < 0.9 {
            3
        } else {
            4
        };
        let identifies = r(3) < 0.72;
        let partner = if self.n_users > 1 && r(5) < 0.015 {
            Some((u + 1 + rb(6, self.n_users - 1)) % self.n_users)
        } else {
            None
        };
        let (country, locale) = LOCALES[rb(7, LOCALES.len() as u64) as usize];
        User {
            idx: u,
            signup_day,
            n_devices,
            identifies,
            newsletter: !identifies && r(4) < 0.35,
            partner,
            account: if identifies && r(8) < 0.3 {
                Some(rb(9, self.n_accounts))
            } else {
                None
            },
            first_name: FIRST_NAMES[rb(10, FIRST_NAMES.len() as u64) as usize],
            last_name: LAST_NAMES[rb(11, LAST_NAMES.len() as u64) as usize],
            domain: EMAIL_DOMAINS[rb(12, EMAIL_DOMAINS.len() as u64) as usize],
            country,
            locale,
            upgrade_day: if r(13) < 0.25 {
                signup_day + 3 + rb(14, 200) as i64
            } else {
                i64::MAX
            },
            paid_plan: PAID_PLANS[rb(15, PAID_PLANS.len() as u64) as usize],
            // Sign-ups happen between 06:00 and midnight.
            created_ms: (self.first_day + signup_day) * DAY_MS
                + DAY_MS / 4
                + rb(16, (DAY_MS * 3 / 4) as u64) as i64,
            id_word: (u as u32).wrapping_mul(0x9E37_79B1) ^ (mix(self.seed ^ TAG_PRE) as u32),
        }
    }

    /// Device `k` (< `user.n_devices`) of a user. A shared device is another user's first one.
    pub(crate) fn device(&self, user: &User, k: u64) -> Device {
        let (bu, bk) = match user.partner {
            Some(p) if k == user.n_devices - 1 => (p, 0),
            _ => (user.idx, k),
        };
        let h = hash(self.seed, TAG_DEVICE, bu, bk);
        let x = unit(mix(h ^ 1));
        let kind = if x < 0.45 {
            DeviceKind::Desktop
        } else if x < 0.65 {
            DeviceKind::MobileWeb
        } else if x < 0.85 {
            DeviceKind::Ios
        } else {
            DeviceKind::Android
        };
        let pick = |salt: u64, n: usize| below(mix(h ^ salt), n as u64) as usize;
        let (ua, os) = match kind {
            DeviceKind::Desktop => WEB_DESKTOP_UAS[pick(2, WEB_DESKTOP_UAS.len())],
            DeviceKind::MobileWeb => WEB_MOBILE_UAS[pick(2, WEB_MOBILE_UAS.len())],
            DeviceKind::Ios => (IOS_UAS[pick(2, IOS_UAS.len())], "iOS"),
            DeviceKind::Android => (ANDROID_UAS[pick(2, ANDROID_UAS.len())], "Android"),
        };
        const FIRST_OCTETS: [u8; 12] = [24, 31, 45, 63, 71, 82, 98, 104, 151, 174, 185, 203];
        let ipw = mix(h ^ 3);
        let ip = [
            FIRST_OCTETS[below(ipw, 12) as usize],
            (ipw >> 8) as u8,
            (ipw >> 16) as u8,
            1 + (ipw >> 24) as u8 % 254,
        ];
        let own = hash(self.seed, TAG_DEVICE, user.idx, k + 100);
        Device {
            kind,
            anon_a: mix(h ^ 4),
            anon_b: mix(h ^ 5),
            dev_a: mix(h ^ 6),
            dev_b: mix(h ^ 7),
            ip,
            user_agent: ua,
            os_name: os,
            login_day: if k == 0 {
                user.signup_day
            } else {
                user.signup_day + 1 + below(own, 120) as i64
            },
            clock_skew_ms: if unit(mix(h ^ 8)) < 0.08 {
                below(mix(h ^ 9), 600_000) as i64 - 300_000
            } else {
                below(mix(h ^ 9), 4_000) as i64 - 2_000
            },
        }
    }

    /// An account's traits.
    pub(crate) fn account(&self, a: u64) -> Account {
        let h = hash(self.seed, TAG_ACCOUNT, a, 0);
        let p = |salt: u64, n: usize| below(mix(h ^ salt), n as u64) as usize;
        let x = unit(mix(h ^ 5));
        Account {
            idx: a,
            word1: COMPANY_WORDS[p(1, COMPANY_WORDS.len())],
            word2: COMPANY_WORDS[p(2, COMPANY_WORDS.len())],
            suffix: COMPANY_SUFFIXES[p(3, COMPANY_SUFFIXES.len())],
            industry: INDUSTRIES[p(4, INDUSTRIES.len())],
            employees: (5.0 * (1.0 / (1.0 - x * 0.999)).powf(1.6)).round() as i64,
            plan_before: ACCOUNT_PLANS[p(6, 2)],
            upgrade_day: if unit(mix(h ^ 7)) < 0.3 {
                p(8, self.days as usize) as i64
            } else {
                i64::MAX
            },
        }
    }
}

/// One simulated person.
#[derive(Clone, Debug)]
pub(crate) struct User {
    pub idx: u64,
    /// The day (index into the run, negative = before it) the user signed up or first came.
    pub signup_day: i64,
    pub n_devices: u64,
    /// Whether the user ever logs in (has a `user_id`).
    pub identifies: bool,
    /// Never logs in but leaves an email (newsletter form): identify calls without `user_id`.
    pub newsletter: bool,
    /// Whose first device this user's last device is (a shared family tablet or office PC).
    pub partner: Option<u64>,
    pub account: Option<u64>,
    pub first_name: &'static str,
    pub last_name: &'static str,
    pub domain: &'static str,
    pub country: &'static str,
    pub locale: &'static str,
    pub upgrade_day: i64,
    pub paid_plan: &'static str,
    pub created_ms: i64,
    id_word: u32,
}

impl User {
    /// Appends the user's `user_id`.
    pub(crate) fn push_user_id(&self, buf: &mut String) {
        buf.push_str("usr_");
        push_hex(buf, self.id_word as u64, 8);
    }

    /// Appends the user's email in its canonical (lower-case, trimmed) form.
    pub(crate) fn push_email(&self, buf: &mut String) {
        push_ascii_lower(buf, self.first_name);
        buf.push('.');
        push_ascii_lower(buf, self.last_name);
        push_u64(buf, self.idx);
        buf.push('@');
        buf.push_str(self.domain);
    }

    /// The plan on day `d`.
    pub(crate) fn plan(&self, d: i64) -> &'static str {
        if d >= self.upgrade_day {
            self.paid_plan
        } else {
            "free"
        }
    }

    pub(crate) fn currency(&self) -> &'static str {
        match self.country {
            "GB" => "GBP",
            "DE" | "FR" | "ES" | "NL" => "EUR",
            _ => "USD",
        }
    }
}

/// Appends a name as the ASCII letters an email address would use.
fn push_ascii_lower(buf: &mut String, s: &str) {
    for c in s.chars() {
        let c = match c {
            'é' | 'è' | 'É' => 'e',
            'ü' | 'Ü' => 'u',
            'ö' | 'ō' | 'Ö' => 'o',
            'í' => 'i',
            'á' | 'à' => 'a',
            'ë' => 'e',
            c => c,
        };
        if c.is_ascii_alphanumeric() {
            buf.push(c.to_ascii_lowercase());
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum DeviceKind {
    Desktop,
    MobileWeb,
    Ios,
    Android,
}

/// One browser or app install.
#[derive(Clone, Debug)]
pub(crate) struct Device {
    pub kind: DeviceKind,
    anon_a: u64,
    anon_b: u64,
    dev_a: u64,
    dev_b: u64,
    pub ip: [u8; 4],
    pub user_agent: &'static str,
    pub os_name: &'static str,
    /// The day the owner first logs in on it.
    pub login_day: i64,
    pub clock_skew_ms: i64,
}

impl Device {
    pub(crate) fn is_web(&self) -> bool {
        matches!(self.kind, DeviceKind::Desktop | DeviceKind::MobileWeb)
    }

    pub(crate) fn push_anonymous_id(&self, buf: &mut String) {
        push_uuid(buf, self.anon_a, self.anon_b, false);
    }

    /// The app's device id (IDFV / Android id); web devices have none.
    pub(crate) fn push_device_id(&self, buf: &mut String) {
        push_uuid(buf, self.dev_a, self.dev_b, self.kind == DeviceKind::Ios);
    }

    pub(crate) fn push_ip(&self, buf: &mut String) {
        for (i, o) in self.ip.iter().enumerate() {
            if i > 0 {
                buf.push('.');
            }
            push_u64(buf, *o as u64);
        }
    }

    pub(crate) fn device_type(&self) -> Option<&'static str> {
        match self.kind {
            DeviceKind::Ios => Some("ios"),
            DeviceKind::Android => Some("android"),
            _ => None,
        }
    }

    /// (library name, version, channel)
    pub(crate) fn library(&self) -> (&'static str, &'static str, &'static str) {
        match self.kind {
            DeviceKind::Desktop | DeviceKind::MobileWeb => ("analytics.js", "next-1.70.0", "web"),
            DeviceKind::Ios => ("analytics-ios", "4.1.8", "mobile"),
            DeviceKind::Android => ("analytics-android", "4.11.3", "mobile"),
        }
    }
}

/// A B2B customer account (group calls).
#[derive(Clone, Debug)]
pub(crate) struct Account {
    pub idx: u64,
    pub word1: &'static str,
    pub word2: &'static str,
    pub suffix: &'static str,
    pub industry: &'static str,
    pub employees: i64,
    pub plan_before: &'static str,
    pub upgrade_day: i64,
}

impl Account {
    pub(crate) fn push_group_id(&self, buf: &mut String) {
        buf.push_str("acct_");
        push_u64(buf, 100_000 + self.idx);
    }

    pub(crate) fn push_name(&self, buf: &mut String) {
        buf.push_str(self.word1);
        if self.word2 != self.word1 {
            push_ascii_lower(buf, self.word2);
        }
        buf.push(' ');
        buf.push_str(self.suffix);
    }

    pub(crate) fn push_website(&self, buf: &mut String) {
        buf.push_str("https://");
        push_ascii_lower(buf, self.word1);
        if self.word2 != self.word1 {
            push_ascii_lower(buf, self.word2);
        }
        buf.push_str(".example.com");
    }

    pub(crate) fn plan(&self, d: i64) -> &'static str {
        if d >= self.upgrade_day {
            "enterprise"
        } else {
            self.plan_before
        }
    }
}
