//! The JavaScript that the Snowflake and BigQuery scripts run as user-defined functions
//! (`queries/script/warehouse_*.js`), run here by Node: the node hash and profile names are
//! Cohort's to the bit, the sequential replay equals Cohort's own (`identity::replay`) on
//! random components, and the helpers agree with Cohort's JSON kinds and byte order. The
//! warehouses themselves cannot run here (see `warehouses.rs`); their functions can.

use std::collections::BTreeMap;
use std::io::Write;
use std::process::{Command, Stdio};

use cohort::functions::{json_value_kind, node_code};
use cohort::identity::new_profile_id;
use cohort::identity::replay::{Event, Limit, Occurrence, replay};
use serde_json::{Value, json};

const IDENTITY_JS: &str = include_str!("../../queries/script/warehouse_identity.js");
const HELPERS_JS: &str = include_str!("../../queries/script/warehouse_helpers.js");

/// Runs every call of `calls` ({"f": name, "args": [...]}) in Node with both files loaded;
/// the results in order.
fn node(calls: &[Value]) -> Vec<Value> {
    let driver = format!(
        "{IDENTITY_JS}\n{HELPERS_JS}\n\
         const calls = JSON.parse(require('fs').readFileSync(0, 'utf8'));\n\
         const fns = {{ cohortNode, cohortProfile, cohortReplay, cohortModePick,\n\
         \x20 cohortSortedDistinct, cohortJsonKind }};\n\
         process.stdout.write(JSON.stringify(calls.map(c => {{\n\
         \x20 const r = fns[c.f].apply(null, c.args);\n\
         \x20 return r === undefined ? null : r;\n\
         }})));\n"
    );
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("driver.js");
    std::fs::write(&path, driver).unwrap();
    let mut child = Command::new("node")
        .arg(&path)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("node (.ci/node installs it)");
    let input = serde_json::to_vec(calls).unwrap();
    child.stdin.take().unwrap().write_all(&input).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "node failed");
    serde_json::from_slice(&out.stdout).unwrap()
}

/// A small deterministic generator (xorshift).
struct Rng(u64);

impl Rng {
    fn next(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

#[test]
fn node_codes_and_profile_names_are_cohorts_to_the_bit() {
    let mut ids: Vec<(String, String)> = vec![
        ("email".into(), "ann@x.com".into()),
        ("user_id".into(), String::new()),
        ("anonymous_id".into(), "é✓😀\u{FFFD}".into()),
        ("phone".into(), "+1 (555) 010-0000".into()),
    ];
    let mut rng = Rng(7);
    for i in 0..400 {
        let len = rng.next(40) as usize;
        let value: String = (0..len)
            .map(|_| char::from_u32(32 + rng.next(0x2FF) as u32).unwrap_or('x'))
            .collect();
        ids.push((format!("type{}", i % 5), value));
    }
    let calls: Vec<Value> = ids
        .iter()
        .map(|(t, v)| json!({"f": "cohortNode", "args": [t, v]}))
        .collect();
    let codes = node(&calls);
    let expected: Vec<i64> = ids.iter().map(|(t, v)| node_code(t, v)).collect();
    let got: Vec<i64> = codes
        .iter()
        .map(|c| c.as_str().unwrap().parse().unwrap())
        .collect();
    assert_eq!(got, expected);
    assert!(expected.iter().any(|c| *c < 0) && expected.iter().any(|c| *c > 0));

    let mut nodes = expected.clone();
    nodes.extend([0, -1, i64::MIN, i64::MAX]);
    let calls: Vec<Value> = nodes
        .iter()
        .map(|n| json!({"f": "cohortProfile", "args": [n.to_string()]}))
        .collect();
    let names: Vec<String> = node(&calls)
        .into_iter()
        .map(|v| v.as_str().unwrap().to_string())
        .collect();
    let expected: Vec<String> = nodes.iter().map(|n| new_profile_id(*n)).collect();
    assert_eq!(names, expected);
}

/// One random component: events over a few identifiers of three types, each event's
/// identifiers distinct and sorted by (type, node), a day or less apart; each type's limit
/// is over all time or per one to four days.
fn component(rng: &mut Rng) -> (Vec<Event>, Vec<Limit>) {
    const DAY: i64 = 86_400_000_000;
    let pool: Vec<(i64, usize)> = (0..2 + rng.next(12))
        .map(|i| {
            (
                node_code("t", &format!("{}-{i}", rng.next(1000))),
                (rng.next(3)) as usize,
            )
        })
        .collect();
    let limits: Vec<Limit> = (0..3)
        .map(|_| Limit {
            max: 1 + rng.next(3),
            window: (rng.next(2) == 0).then(|| DAY * (1 + rng.next(4)) as i64),
        })
        .collect();
    let mut ts = 1_700_000_000_000_000;
    let events = (0..1 + rng.next(30))
        .map(|_| {
            ts += rng.next(3) as i64 * DAY / 2;
            let mut ids: Vec<(usize, i64)> = Vec::new();
            for _ in 0..1 + rng.next(4) {
                let (n, t) = pool[rng.next(pool.len() as u64) as usize];
                if !ids.iter().any(|(_, m)| *m == n) {
                    ids.push((t, n));
                }
            }
            ids.sort();
            Event {
                ts,
                ids: ids
                    .into_iter()
                    .map(|(type_idx, node)| Occurrence { node, type_idx })
                    .collect(),
            }
        })
        .collect();
    (events, limits)
}

#[test]
fn the_replay_is_cohorts_sequential_rule() {
    let mut rng = Rng(42);
    let cases: Vec<_> = (0..300).map(|_| component(&mut rng)).collect();
    let calls: Vec<Value> = cases
        .iter()
        .map(|(events, limits)| {
            let events: Vec<Value> = events
                .iter()
                .enumerate()
                .map(|(i, e)| {
                    let ids: Vec<Value> = e
                        .ids
                        .iter()
                        .map(|o| json!({"n": o.node.to_string(), "t": o.type_idx}))
                        .collect();
                    json!({"seq": i + 1, "m": format!("m{i}"), "us": e.ts, "ids": ids})
                })
                .collect();
            let max: Vec<u64> = limits.iter().map(|l| l.max).collect();
            let windows: Vec<i64> = limits.iter().map(|l| l.window.unwrap_or(0)).collect();
            json!({"f": "cohortReplay", "args": [events, max, windows]})
        })
        .collect();
    let got = node(&calls);
    let mut dropping = 0;
    let mut windows_mattered = 0;
    for ((events, limits), st) in cases.iter().zip(got) {
        let want = replay(events, limits);
        let ever: Vec<Limit> = limits.iter().map(|l| Limit::ever(l.max)).collect();
        let mut all_time = replay(events, &ever).dropped;
        let mut windowed = want.dropped.clone();
        all_time.sort();
        windowed.sort();
        windows_mattered += usize::from(all_time != windowed);
        let owner: BTreeMap<i64, i64> = st["owner"]
            .as_array()
            .unwrap()
            .iter()
            .map(|o| {
                let n = o["n"].as_str().unwrap().parse().unwrap();
                (n, o["p"].as_str().unwrap().parse().unwrap())
            })
            .collect();
        let expected: BTreeMap<i64, i64> =
            want.node_profile.iter().map(|(a, b)| (*a, *b)).collect();
        assert_eq!(owner, expected, "owners of {events:?} under {limits:?}");
        let mut dropped: Vec<(usize, i64, usize)> = st["dropped"]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| {
                (
                    d["seq"].as_u64().unwrap() as usize - 1,
                    d["n"].as_str().unwrap().parse().unwrap(),
                    d["broken"].as_u64().unwrap() as usize,
                )
            })
            .collect();
        dropped.sort();
        let mut expected = want.dropped.clone();
        expected.sort();
        assert_eq!(dropped, expected, "dropped of {events:?} under {limits:?}");
        dropping += usize::from(!expected.is_empty());
    }
    assert!(dropping > 30, "only {dropping} cases broke a limit");
    assert!(
        windows_mattered > 10,
        "only {windows_mattered} cases dropped otherwise than under limits over all time"
    );
}

#[test]
fn the_helpers_agree_with_cohort() {
    let texts = [
        r#"{"a":1,"b":1.0,"c":-2,"d":"2026-01-31T09:00:00Z","e":"2026-02-30T09:00:00Z","f":null}"#,
        r#"{ "g" : true, "h" : [1, {"x": "]"}], "i" : {"x":"}\"{"}, "k": 1e3, "l": "2024-02-29T23:59:59.5+01:00"}"#,
        r#"{"a":1,"a":"s","m":"x\"y","n":18446744073709551615,"o":"2026-01-31 09:00:00Z"}"#,
        r#"[1, 2]"#,
        r#"{"p": "#,
    ];
    let keys = [
        "a", "b", "c", "d", "e", "f", "g", "h", "i", "k", "l", "m", "n", "o", "q",
    ];
    let mut calls = Vec::new();
    let mut expected = Vec::new();
    for t in texts {
        let parsed: Option<serde_json::Map<String, Value>> = serde_json::from_str(t).ok();
        for k in keys {
            calls.push(json!({"f": "cohortJsonKind", "args": [t, k]}));
            let kind = parsed.as_ref().and_then(|m| m.get(k)).map(json_value_kind);
            expected.push(kind.map(|k| json!(k)).unwrap_or(Value::Null));
        }
    }
    let got = node(&calls);
    assert_eq!(got, expected);
    assert!(got.iter().any(|k| k == "timestamp") && got.iter().any(|k| k == "float"));

    let values = json!(["z", "é", null, "Z", "😀", "\u{FFFD}", "é", "z", "😀"]);
    let got = node(&[
        json!({"f": "cohortSortedDistinct", "args": [values]}),
        json!({"f": "cohortSortedDistinct", "args": [[null]]}),
        json!({"f": "cohortModePick", "args": [values, 2]}),
        json!({"f": "cohortModePick", "args": [values, 3]}),
    ]);
    assert_eq!(
        got,
        vec![
            json!(["Z", "z", "é", "\u{FFFD}", "😀"]),
            Value::Null,
            json!("z"),
            Value::Null
        ]
    );
}
