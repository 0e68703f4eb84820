//! The identity stage against a plain sequential reference: random small event sets (limits
//! broken, blocked values, ties in time, shared devices) and adversarial shapes (long chains,
//! hubs, cycles, a user with hundreds of anonymous ids).
//!
//! Many independent cases go through one stage call: every case's identifiers and message ids
//! carry the case number, so cases never share a component and each is checked on its own.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

use cohort::plan::identity::{IdType, ResolvedRules};
use cohort::run::identity::resolve_events;
use cohort::run::session::{SessionOptions, new_session};
use cohort::spec::{DEFAULT_BLOCKED_PATTERNS, DEFAULT_BLOCKED_VALUES, LimitPeriod};
use datafusion::arrow::array::{
    Array, AsArray, RecordBatch, StringArray, TimestampMicrosecondArray,
};
use datafusion::arrow::datatypes::{DataType, Field, Schema, TimeUnit};
use datafusion::catalog::MemTable;
use datafusion::prelude::SessionContext;

/// One test event: message id, time, and identifiers as (type, raw value, where from).
#[derive(Clone, Debug)]
pub struct Ev {
    pub message_id: String,
    pub ts: i64,
    pub user_id: Option<String>,
    pub anonymous_id: Option<String>,
    /// traits.email
    pub email: Option<String>,
    /// context.traits.email
    pub context_email: Option<String>,
}

/// `(type, limit, period)` in priority order.
pub type Types = Vec<(&'static str, u64, Option<LimitPeriod>)>;

/// Types whose limits count every value ever added.
pub fn ever(types: &[(&'static str, u64)]) -> Types {
    types.iter().map(|(t, l)| (*t, *l, None)).collect()
}

pub fn rules(types: &Types) -> ResolvedRules {
    ResolvedRules {
        types: types
            .iter()
            .enumerate()
            .map(|(i, (t, limit, period))| IdType {
                id_type: t.to_string(),
                rank: i as u32,
                limit: *limit,
                period: *period,
                from: match *t {
                    "user_id" => vec!["userId".into()],
                    "email" => vec!["traits.email".into(), "context.traits.email".into()],
                    _ => vec!["anonymousId".into()],
                },
                normalize: if *t == "email" {
                    vec!["lowercase".into()]
                } else {
                    vec![]
                },
            })
            .collect(),
        blocked_values: DEFAULT_BLOCKED_VALUES
            .iter()
            .map(|s| s.to_string())
            .collect(),
        blocked_patterns: DEFAULT_BLOCKED_PATTERNS
            .iter()
            .map(|s| s.to_string())
            .collect(),
        repairs: Vec::new(),
    }
}

pub(crate) fn events_batch(evs: &[Ev]) -> RecordBatch {
    let text = |f: &dyn Fn(&Ev) -> Option<String>| -> Arc<dyn Array> {
        Arc::new(StringArray::from(evs.iter().map(f).collect::<Vec<_>>()))
    };
    let json =
        |k: &str, v: &Option<String>| v.as_ref().map(|v| serde_json::json!({ k: v }).to_string());
    let schema = Schema::new(vec![
        Field::new("message_id", DataType::Utf8, false),
        Field::new(
            "timestamp",
            DataType::Timestamp(TimeUnit::Microsecond, Some(Arc::from("UTC"))),
            false,
        ),
        Field::new("user_id", DataType::Utf8, true),
        Field::new("anonymous_id", DataType::Utf8, true),
        Field::new("previous_id", DataType::Utf8, true),
        Field::new("group_id", DataType::Utf8, true),
        Field::new("traits", DataType::Utf8, true),
        Field::new("properties", DataType::Utf8, true),
        Field::new("context", DataType::Utf8, true),
    ]);
    RecordBatch::try_new(
        Arc::new(schema),
        vec![
            text(&|e| Some(e.message_id.clone())),
            Arc::new(
                TimestampMicrosecondArray::from(evs.iter().map(|e| e.ts).collect::<Vec<_>>())
                    .with_timezone("UTC"),
            ),
            text(&|e| e.user_id.clone()),
            text(&|e| e.anonymous_id.clone()),
            text(&|_| None),
            text(&|_| None),
            text(&|e| json("email", &e.email)),
            text(&|_| None),
            text(&|e| {
                e.context_email
                    .as_ref()
                    .map(|v| serde_json::json!({"traits": {"email": v}}).to_string())
            }),
        ],
    )
    .unwrap()
}

/// What a resolution says, in terms the reference also speaks.
#[derive(Debug, Default, PartialEq)]
pub struct Outcome {
    /// Profiles as sets of `type:value`.
    pub profiles: BTreeSet<BTreeSet<String>>,
    /// message id -> its profile, named by the profile's smallest identifier.
    pub event_profile: BTreeMap<String, String>,
    /// Identifiers dropped by a limit in every event that carried them.
    pub orphans: BTreeSet<String>,
    /// (message id, identifier) of blocked identifiers.
    pub blocked: BTreeSet<(String, String)>,
}

async fn collect(ctx: &SessionContext, sql: &str) -> Vec<RecordBatch> {
    ctx.sql(sql).await.unwrap().collect().await.unwrap()
}

/// Runs the stage on `evs`; returns the outcome and the stage's stats.
pub async fn engine(evs: &[Ev], types: &Types) -> (Outcome, cohort::identity::IdentityStats) {
    let ctx = new_session(&SessionOptions::default()).unwrap();
    let b = events_batch(evs);
    ctx.register_table(
        "events",
        Arc::new(MemTable::try_new(b.schema(), vec![vec![b]]).unwrap()),
    )
    .unwrap();
    let (stats, _) = resolve_events(&ctx, &rules(types), false, None)
        .await
        .unwrap();
    let mut out = Outcome::default();
    let mut by_profile: HashMap<String, BTreeSet<String>> = HashMap::new();
    for b in collect(
        &ctx,
        "SELECT profile_id, id_type, id_value FROM id_identities",
    )
    .await
    {
        for i in 0..b.num_rows() {
            by_profile
                .entry(b.column(0).as_string::<i32>().value(i).to_string())
                .or_default()
                .insert(format!(
                    "{}:{}",
                    b.column(1).as_string::<i32>().value(i),
                    b.column(2).as_string::<i32>().value(i)
                ));
        }
    }
    for b in collect(&ctx, "SELECT message_id, profile_id FROM id_event_profiles").await {
        for i in 0..b.num_rows() {
            let p = &by_profile[b.column(1).as_string::<i32>().value(i)];
            out.event_profile.insert(
                b.column(0).as_string::<i32>().value(i).to_string(),
                p.first().unwrap().clone(),
            );
        }
    }
    let kept: BTreeSet<String> = by_profile.values().flatten().cloned().collect();
    for b in collect(
        &ctx,
        "SELECT message_id, id_type, id_value, rule FROM id_violations",
    )
    .await
    {
        for i in 0..b.num_rows() {
            let id = format!(
                "{}:{}",
                b.column(1).as_string::<i32>().value(i),
                b.column(2).as_string::<i32>().value(i)
            );
            let msg = b.column(0).as_string::<i32>().value(i).to_string();
            if b.column(3).as_string::<i32>().value(i) == "limit" {
                if !kept.contains(&id) {
                    out.orphans.insert(id);
                }
            } else {
                out.blocked.insert((msg, id));
            }
        }
    }
    out.profiles = by_profile.into_values().collect();
    (out, stats)
}

fn blocked(v: &str) -> bool {
    let l = v.to_lowercase();
    DEFAULT_BLOCKED_VALUES.contains(&l.as_str()) || v.chars().all(|c| c == '0' || c == '-')
}

/// Segment's sequential rule, written plainly: events in (timestamp, message_id) order,
/// profiles as sets, per-type counts checked before every merge. A per-period limit counts
/// the profile's values of the type added (first kept) less than the period before the event.
pub fn reference(evs: &[Ev], types: &Types) -> Outcome {
    let rank = |t: &str| types.iter().position(|(n, _, _)| *n == t).unwrap();
    let window = |r: usize| types[r].2.map(LimitPeriod::micros);
    let mut added_at: HashMap<(usize, String), i64> = HashMap::new();
    let mut order: Vec<&Ev> = evs.iter().collect();
    order.sort_by(|a, b| (a.ts, &a.message_id).cmp(&(b.ts, &b.message_id)));
    let mut profiles: Vec<BTreeSet<(usize, String)>> = Vec::new(); // (rank, value)
    let mut pcounts: Vec<Vec<u64>> = Vec::new(); // per profile, values per type
    let mut owner: HashMap<(usize, String), usize> = HashMap::new();
    let mut out = Outcome::default();
    let mut seen_ok: BTreeSet<(usize, String)> = BTreeSet::new();
    let mut kept_ever: BTreeSet<(usize, String)> = BTreeSet::new();
    let mut top_of_event: Vec<(String, (usize, String))> = Vec::new();
    let name = |(r, v): &(usize, String)| format!("{}:{}", types[*r].0, v);
    for e in order {
        let mut ids: BTreeSet<(usize, String)> = BTreeSet::new();
        let raw = [
            ("user_id", e.user_id.clone()),
            ("email", e.email.clone()),
            ("email", e.context_email.clone()),
            ("anonymous_id", e.anonymous_id.clone()),
        ];
        for (t, v) in raw {
            let Some(v) = v else { continue };
            let mut v = v.trim().to_string();
            if t == "email" {
                v = v.to_lowercase();
            }
            if blocked(&v) {
                out.blocked
                    .insert((e.message_id.clone(), format!("{t}:{v}")));
                continue;
            }
            ids.insert((rank(t), v));
        }
        let mut ids: Vec<(usize, String)> = ids.into_iter().collect();
        if ids.is_empty() {
            continue;
        }
        seen_ok.extend(ids.iter().cloned());
        loop {
            let matched: BTreeSet<usize> =
                ids.iter().filter_map(|id| owner.get(id).copied()).collect();
            let mut counts = vec![0u64; types.len()];
            for p in &matched {
                for (r, c) in pcounts[*p].iter().enumerate() {
                    counts[r] += match window(r) {
                        None => *c,
                        Some(w) => profiles[*p]
                            .iter()
                            .filter(|id| id.0 == r && added_at[*id] > e.ts - w)
                            .count() as u64,
                    };
                }
            }
            for id in &ids {
                if !owner.contains_key(id) {
                    counts[id.0] += 1;
                }
            }
            let over = types
                .iter()
                .enumerate()
                .any(|(r, (_, limit, _))| counts[r] > *limit);
            if over && ids.len() > 1 {
                ids.pop();
                continue;
            }
            // Merge into the largest matched profile (moving the smaller ones keeps this
            // fast on long chains), then add the new identifiers.
            let target = match matched.iter().max_by_key(|p| profiles[**p].len()) {
                Some(&p) => p,
                None => {
                    profiles.push(BTreeSet::new());
                    pcounts.push(vec![0; types.len()]);
                    profiles.len() - 1
                }
            };
            for p in matched.iter().filter(|p| **p != target) {
                for (r, c) in std::mem::take(&mut pcounts[*p]).into_iter().enumerate() {
                    pcounts[target][r] += c;
                }
                for id in std::mem::take(&mut profiles[*p]) {
                    owner.insert(id.clone(), target);
                    profiles[target].insert(id);
                }
            }
            for id in &ids {
                if !owner.contains_key(id) {
                    owner.insert(id.clone(), target);
                    added_at.insert(id.clone(), e.ts);
                    pcounts[target][id.0] += 1;
                    profiles[target].insert(id.clone());
                }
            }
            break;
        }
        kept_ever.extend(ids.iter().cloned());
        top_of_event.push((e.message_id.clone(), ids[0].clone()));
    }
    let named = |p: &BTreeSet<(usize, String)>| p.iter().map(name).collect::<BTreeSet<String>>();
    out.profiles = profiles
        .iter()
        .filter(|p| !p.is_empty())
        .map(named)
        .collect();
    let mut first_names: HashMap<usize, String> = HashMap::new();
    for (msg, top) in top_of_event {
        let p = owner[&top];
        let first = first_names
            .entry(p)
            .or_insert_with(|| profiles[p].iter().map(name).min().unwrap());
        out.event_profile.insert(msg, first.clone());
    }
    out.orphans = seen_ok.difference(&kept_ever).map(name).collect();
    out
}

/// A small deterministic generator (xorshift), so failures reproduce.
pub(crate) struct Rng(pub(crate) u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    fn chance(&mut self, pct: u64) -> bool {
        self.below(100) < pct
    }
}

pub(crate) fn random_case(rng: &mut Rng, case: usize) -> Vec<Ev> {
    let n = 1 + rng.below(14) as usize;
    let pick = |rng: &mut Rng, pool: &[&str], prefix: &str| -> String {
        let v = pool[rng.below(pool.len() as u64) as usize];
        if ["null", "", "0", "Anonymous", "--"].contains(&v) {
            v.to_string()
        } else {
            format!("c{case}{prefix}{v}")
        }
    };
    (0..n)
        .map(|i| Ev {
            // Message ids are not in time order, and times tie often.
            message_id: format!("c{case}-m{}-{i}", rng.below(10)),
            ts: 1_700_000_000_000_000 + rng.below(5) as i64 * 1_000_000,
            user_id: rng
                .chance(45)
                .then(|| pick(rng, &["u0", "u1", "u2", "null", ""], "_")),
            anonymous_id: rng
                .chance(75)
                .then(|| pick(rng, &["a0", "a1", "a2", "a3", "a4", "0"], "_")),
            email: rng
                .chance(30)
                .then(|| pick(rng, &["E0@x.io", "e1@x.io", "e2@x.io", "Anonymous"], "_")),
            context_email: rng
                .chance(15)
                .then(|| pick(rng, &["e0@x.io", "e3@x.io", "--"], "_")),
        })
        .collect()
}

/// Splits a combined outcome back into cases by the `c<case>` prefix of ids and messages.
fn case_of(s: &str) -> usize {
    let i = s.find('c').expect("case prefix") + 1;
    s[i..]
        .chars()
        .take_while(char::is_ascii_digit)
        .collect::<String>()
        .parse()
        .unwrap()
}

fn split(o: &Outcome) -> BTreeMap<usize, Outcome> {
    let mut m: BTreeMap<usize, Outcome> = BTreeMap::new();
    for p in &o.profiles {
        let c = case_of(p.iter().next().unwrap().split_once(':').unwrap().1);
        m.entry(c).or_default().profiles.insert(p.clone());
    }
    for (msg, p) in &o.event_profile {
        m.entry(case_of(msg))
            .or_default()
            .event_profile
            .insert(msg.clone(), p.clone());
    }
    for id in &o.orphans {
        m.entry(case_of(id.split_once(':').unwrap().1))
            .or_default()
            .orphans
            .insert(id.clone());
    }
    for (msg, id) in &o.blocked {
        m.entry(case_of(msg))
            .or_default()
            .blocked
            .insert((msg.clone(), id.clone()));
    }
    m
}

/// Spreads a case's events over ten days, in half-day steps, so that windows of a day and
/// of a week hold some of its identifiers and not others.
pub(crate) fn over_days(rng: &mut Rng, mut evs: Vec<Ev>) -> Vec<Ev> {
    const HALF_DAY: i64 = 43_200_000_000;
    for e in &mut evs {
        e.ts = 1_700_000_000_000_000 + rng.below(20) as i64 * HALF_DAY;
    }
    evs
}

async fn check_random(seed: u64, cases: usize, types: Types) -> cohort::identity::IdentityStats {
    let mut rng = Rng(seed);
    let periods = types.iter().any(|t| t.2.is_some());
    let all: Vec<Vec<Ev>> = (0..cases)
        .map(|c| {
            let evs = random_case(&mut rng, c);
            if periods {
                over_days(&mut rng, evs)
            } else {
                evs
            }
        })
        .collect();
    let flat: Vec<Ev> = all.iter().flatten().cloned().collect();
    let (got, stats) = engine(&flat, &types).await;
    assert!(
        stats.violating_components > 0,
        "the random cases should break limits"
    );
    let got = split(&got);
    let mut checked = 0;
    for (c, evs) in all.iter().enumerate() {
        let want = reference(evs, &types);
        let empty = Outcome::default();
        let g = got.get(&c).unwrap_or(&empty);
        assert_eq!(
            g, &want,
            "case {c} (seed {seed}) differs from the sequential reference; events: {evs:#?}"
        );
        checked += 1;
    }
    assert_eq!(checked, cases);
    stats
}

#[tokio::test]
async fn random_event_sets_match_the_sequential_reference() {
    // Tight limits break often.
    check_random(
        0x9e37_79b9,
        2000,
        ever(&[("user_id", 1), ("email", 2), ("anonymous_id", 2)]),
    )
    .await;
    // Segment's defaults.
    check_random(
        0x1234_5678,
        2000,
        ever(&[("user_id", 1), ("email", 5), ("anonymous_id", 5)]),
    )
    .await;
}

/// Per-period limits (`2 weekly`, `1 daily`, even a user id per day) against the reference,
/// over events spread across ten days.
#[tokio::test]
async fn per_period_limits_match_the_sequential_reference() {
    use LimitPeriod::{Daily, Weekly};
    check_random(
        0x5eed_0001,
        2000,
        vec![
            ("user_id", 1, None),
            ("email", 1, Some(Daily)),
            ("anonymous_id", 2, Some(Weekly)),
        ],
    )
    .await;
    check_random(
        0x5eed_0002,
        2000,
        vec![
            ("user_id", 1, Some(Daily)),
            ("email", 2, Some(Weekly)),
            ("anonymous_id", 1, Some(Daily)),
        ],
    )
    .await;
    // Loose limits: the windowed check replays only the components that may break one.
    let stats = check_random(
        0x5eed_0003,
        2000,
        vec![
            ("user_id", 1, None),
            ("email", 3, Some(Daily)),
            ("anonymous_id", 3, Some(Weekly)),
        ],
    )
    .await;
    assert!(
        stats.violating_components * 2 < stats.components,
        "{} of {} components replayed",
        stats.violating_components,
        stats.components
    );
}

fn ev(msg: String, ts: i64, user: Option<String>, anon: Option<String>) -> Ev {
    Ev {
        message_id: msg,
        ts,
        user_id: user,
        anonymous_id: anon,
        email: None,
        context_email: None,
    }
}

async fn check_shape(evs: Vec<Ev>, types: Types) -> cohort::identity::IdentityStats {
    let want = reference(&evs, &types);
    let (got, stats) = engine(&evs, &types).await;
    assert_eq!(got.profiles, want.profiles);
    assert_eq!(got.event_profile, want.event_profile);
    assert_eq!(got.orphans, want.orphans);
    stats
}

fn linked(msg: String, ts: i64, anon: String, email: String) -> Ev {
    Ev {
        message_id: msg,
        ts,
        user_id: None,
        anonymous_id: Some(anon),
        email: None,
        context_email: Some(email),
    }
}

#[tokio::test]
async fn a_chain_of_100k_identifiers() {
    // a0 - e0 - a1 - e1 - ... : 100,001 identifiers in one path. With limits that never
    // break it is one profile (pure contraction); with Segment's limit of 5 the replay cuts it.
    let evs: Vec<Ev> = (0..50_000i64)
        .flat_map(|i| {
            [
                linked(
                    format!("m{i:06}a"),
                    i * 10,
                    format!("a{i}"),
                    format!("e{i}@chain.io"),
                ),
                linked(
                    format!("m{i:06}b"),
                    i * 10 + 1,
                    format!("a{}", i + 1),
                    format!("e{i}@chain.io"),
                ),
            ]
        })
        .collect();
    let stats = check_shape(
        evs.clone(),
        ever(&[("anonymous_id", 1_000_000), ("email", 1_000_000)]),
    )
    .await;
    assert_eq!(stats.profiles, 1);
    assert_eq!(stats.violating_components, 0);
    assert!(stats.rounds <= 40, "rounds: {}", stats.rounds);
    let stats = check_shape(evs, ever(&[("anonymous_id", 5), ("email", 5)])).await;
    assert!(stats.profiles > 1000, "profiles: {}", stats.profiles);
    assert_eq!(stats.largest_components[0].identifiers, 100_001);
}

#[tokio::test]
async fn a_device_shared_by_10k_users() {
    let evs: Vec<Ev> = (0..10_000)
        .flat_map(|i| {
            [
                ev(
                    format!("m{i:05}a"),
                    i * 10,
                    Some(format!("u{i}")),
                    Some("shared-tablet".into()),
                ),
                ev(
                    format!("m{i:05}b"),
                    i * 10 + 1,
                    Some(format!("u{i}")),
                    Some(format!("own{i}")),
                ),
            ]
        })
        .collect();
    let stats = check_shape(evs, ever(&[("user_id", 1), ("anonymous_id", 5)])).await;
    assert_eq!(stats.profiles, 10_000);
    assert_eq!(stats.violating_components, 1);
}

#[tokio::test]
async fn cycles_and_a_user_with_hundreds_of_anonymous_ids() {
    let mut evs = Vec::new();
    // 300 rings: a0 - e0 - a1 - e1 - ... - a6 - e6 - a0.
    for r in 0..300 {
        for j in 0..7 {
            evs.push(linked(
                format!("ring{r}-{j}a"),
                j,
                format!("r{r}a{j}"),
                format!("r{r}e{j}@ring.io"),
            ));
            evs.push(linked(
                format!("ring{r}-{j}b"),
                j,
                format!("r{r}a{}", (j + 1) % 7),
                format!("r{r}e{j}@ring.io"),
            ));
        }
    }
    // One user with 400 anonymous ids, seen over time.
    for i in 0..400 {
        evs.push(ev(
            format!("heavy{i:03}"),
            1000 + i,
            Some("heavy-user".into()),
            Some(format!("h{i}")),
        ));
    }
    let stats = check_shape(
        evs.clone(),
        ever(&[("user_id", 1), ("email", 5), ("anonymous_id", 5)]),
    )
    .await;
    assert!(stats.violating_components >= 301);
    let stats = check_shape(
        evs,
        ever(&[("user_id", 1), ("email", 50), ("anonymous_id", 1000)]),
    )
    .await;
    assert_eq!(stats.violating_components, 0);
    assert_eq!(stats.profiles, 301);
}
