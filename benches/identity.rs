//! How fast identity resolution finds connected components at CDP scale, against the floor of a
//! single-threaded union-find on the same edges.
//!
//! The goal: a 25 M-edge identity graph resolved in at most 15 s end to end by
//! [`connected_components`] (randomized contraction as DataFusion queries). Union-find is what a
//! single core can do with everything in one process's memory; the ratio to it says what the
//! query engine costs.
//!
//! Part 1 builds a synthetic graph in memory, deterministically: per user one `user_id` node,
//! 1 + geometric (mean 2.2 in all) anonymous ids, an email for 60% of users, and for 2% of users
//! a shared device (their first anonymous id is also used by an earlier random user). Edges form
//! a star per user plus the shared-device edges; users are added until there are `--edges`
//! edges. The edges go into a `MemTable` of two partitions of 64k-row batches. It then times:
//!
//! * union-find (path halving, union by size) after dictionary-encoding the ids into dense
//!   `u32`s with a `HashMap` (sized for 2 nodes per edge up front); the encoding is part of its
//!   time and is also printed alone;
//! * `connected_components` in a session with no memory limit and in one limited to 4 GB
//!   (`--memory-limit-gb G` picks the limits instead, `none` for unlimited; repeatable).
//!
//! Each DataFusion result is checked against union-find on every node: same node set, and the
//! labels and union-find roots are in one-to-one correspondence (same partition). Peak memory
//! is the process's `VmHWM`, reset before each phase through `/proc/self/clear_refs`, so it is
//! that phase's peak on top of what earlier phases still hold (`rss_before_mb`, the `VmRSS` when
//! the phase starts).
//!
//! Part 2 (`--generator EVENTS`, default 1 M, 0 skips) generates that many sample events of the
//! `events` preset into a temporary space, runs it, and prints the identity stage's figures.
//!
//! Part 3 (`--hub IDS`, default 1 M, 0 skips) is the bad hub: IDS events, each with its own
//! anonymous id and the same email, resolved by the identity stage in a session limited to
//! 4 GB. The component holds IDS + 1 identifiers and breaks the anonymous-id limit, so the
//! sequential rule replays all of it; the line names the largest components as the run
//! record does.
//!
//! Prints `key=value` lines: `graph`, `mem`, `union_find`, `datafusion_cc`, `rounds`, `check`,
//! `generate`, `run`, `identity`, `identity_timings`, `hub`.
//!
//! `cargo bench --bench identity -- --edges 25000000 --generator 1000000 --hub 1000000`

mod common;

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::Arc;
use std::time::Instant;

use cohort::generate::GenerateOptions;
use cohort::identity::components::{connected_components, edge_schema};
use cohort::plan::identity::ResolvedRules;
use cohort::run::identity::resolve_events;
use cohort::run::session::{SessionOptions, new_session};
use cohort::run::{Quiet, RunOptions};
use cohort::spec::IdentityRules;
use datafusion::arrow::array::{
    Array, AsArray, Int64Array, RecordBatch, StringArray, TimestampMicrosecondArray,
};
use datafusion::arrow::datatypes::{DataType, Field, Int64Type, Schema, TimeUnit};
use datafusion::catalog::MemTable;

/// Rows per batch of the edge table.
const BATCH_ROWS: usize = 64 * 1024;
/// Partitions of the edge table.
const PARTITIONS: usize = 2;
/// Node kinds, the top byte of what is hashed into a node id.
const USER: u64 = 1;
const ANON: u64 = 2;
const EMAIL: u64 = 3;

struct Args {
    edges: usize,
    generator: u64,
    hub: u64,
    /// Memory limits of the DataFusion runs, in bytes; None is unlimited.
    limits: Vec<Option<usize>>,
    seed: u64,
}

fn parse_args() -> Args {
    let mut args = Args {
        edges: 25_000_000,
        generator: 1_000_000,
        hub: 1_000_000,
        limits: Vec::new(),
        seed: 42,
    };
    let mut it = std::env::args().skip(1);
    while let Some(a) = it.next() {
        let mut value = || it.next().unwrap_or_else(|| panic!("{a} needs a value"));
        let number = |v: String| -> u64 {
            v.replace('_', "")
                .parse()
                .unwrap_or_else(|_| panic!("`{v}` is not a number"))
        };
        match a.as_str() {
            "--edges" => args.edges = number(value()) as usize,
            "--generator" => args.generator = number(value()),
            "--hub" => args.hub = number(value()),
            "--seed" => args.seed = number(value()),
            "--memory-limit-gb" => {
                let v = value();
                args.limits.push(match v.as_str() {
                    "none" | "0" => None,
                    _ => Some((number(v) as usize) << 30),
                });
            }
            "--bench" => {} // cargo bench passes it
            _ => panic!(
                "unknown argument {a} (use --edges N, --generator EVENTS, --hub IDS, \
                 --memory-limit-gb G|none, --seed S)"
            ),
        }
    }
    if args.limits.is_empty() {
        args.limits = vec![None, Some(4 << 30)];
    }
    args
}

fn main() {
    let args = parse_args();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");

    common::reset_peak();
    let t = Instant::now();
    let graph = Graph::build(args.edges, args.seed);
    let build_secs = t.elapsed().as_secs_f64();
    println!(
        "graph edges={} nodes={} users={} anonymous_ids={} emails={} shared_devices={} build_secs={build_secs:.2}",
        graph.a.len(),
        graph.nodes,
        graph.users,
        graph.anons,
        graph.emails,
        graph.shared,
    );
    let edges = graph.a.len() as u64;
    let (table, batches) = graph.into_table();
    mem("graph");

    let rss_before = common::rss_mb().1;
    common::reset_peak();
    let uf = union_find(&batches);
    let (peak, rss) = common::rss_mb();
    println!(
        "union_find secs={:.2} dictionary_secs={:.2} union_secs={:.2} edges_per_sec={:.0} nodes={} components={} rss_before_mb={rss_before} peak_rss_mb={peak} rss_mb={rss}",
        uf.dict_secs + uf.union_secs,
        uf.dict_secs,
        uf.union_secs,
        edges as f64 / (uf.dict_secs + uf.union_secs),
        uf.roots.len(),
        uf.components,
    );

    for limit in &args.limits {
        let name = match limit {
            None => "none".to_string(),
            Some(b) => format!("{}GB", b >> 30),
        };
        let rss_before = common::rss_mb().1;
        common::reset_peak();
        let ctx = new_session(&SessionOptions {
            memory_limit: *limit,
            spill_dir: None,
        })
        .expect("session");
        let t = Instant::now();
        let result = rt.block_on(connected_components(&ctx, table.clone(), args.seed));
        let secs = t.elapsed().as_secs_f64();
        let (peak, rss) = common::rss_mb();
        let (labels, stats) = match result {
            Ok(r) => r,
            Err(e) => {
                println!("datafusion_cc memory_limit={name} secs={secs:.2} error={e}");
                continue;
            }
        };
        println!(
            "datafusion_cc memory_limit={name} rounds={} secs={secs:.2} stats_secs={:.2} edges_per_sec={:.0} ratio_to_union_find={:.1} rss_before_mb={rss_before} peak_rss_mb={peak} rss_mb={rss}",
            stats.rounds,
            stats.seconds,
            edges as f64 / secs,
            secs / (uf.dict_secs + uf.union_secs),
        );
        println!(
            "rounds memory_limit={name} edges_per_round={}",
            join(&stats.edges_per_round)
        );
        let label_batches = rt
            .block_on(async { ctx.read_table(labels)?.collect().await })
            .expect("read labels");
        let t = Instant::now();
        let c = check(&label_batches, &uf);
        println!(
            "check memory_limit={name} ok={} nodes_uf={} nodes_df={} components_uf={} components_df={} unknown_nodes={} repeated_nodes={} mismatches={} secs={:.2}",
            c.ok(&uf),
            uf.roots.len(),
            c.rows,
            uf.components,
            c.components,
            c.unknown,
            c.repeated,
            c.mismatches,
            t.elapsed().as_secs_f64(),
        );
        drop(label_batches);
        drop(ctx);
        mem(&format!("datafusion_cc_{name}"));
    }
    drop((uf, table, batches));

    if args.generator > 0 {
        rt.block_on(generator_run(args.generator));
    }
    if args.hub > 0 {
        rt.block_on(hub_run(args.hub));
    }
}

/// One email shared by `ids` anonymous ids, one event each, resolved under a 4 GB limit.
async fn hub_run(ids: u64) {
    let n = ids as usize;
    let texts = |f: &dyn Fn(usize) -> Option<String>| -> Arc<dyn Array> {
        Arc::new(StringArray::from((0..n).map(f).collect::<Vec<_>>()))
    };
    let ts = |i: usize| 1_767_225_600_000_000 + i as i64 * 1_000_000;
    let schema = Arc::new(Schema::new(vec![
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
    ]));
    let batch = RecordBatch::try_new(
        schema.clone(),
        vec![
            texts(&|i| Some(format!("hub-{i:08}"))),
            Arc::new(
                TimestampMicrosecondArray::from((0..n).map(ts).collect::<Vec<_>>())
                    .with_timezone("UTC"),
            ),
            texts(&|_| None),
            texts(&|i| Some(format!("anon-{i:08}"))),
            texts(&|_| None),
            texts(&|_| None),
            texts(&|_| Some(r#"{"email":"shared@hub.example"}"#.to_string())),
            texts(&|_| None),
            texts(&|_| None),
        ],
    )
    .expect("hub events");
    let ctx = new_session(&SessionOptions {
        memory_limit: Some(4 << 30),
        spill_dir: None,
    })
    .expect("session");
    ctx.register_table(
        "events",
        Arc::new(MemTable::try_new(schema, vec![vec![batch]]).expect("hub table")),
    )
    .expect("register events");
    let rules = ResolvedRules::from_spec(&IdentityRules::segment_defaults());
    common::reset_peak();
    let t = Instant::now();
    let (stats, _) = resolve_events(&ctx, &rules, false, None)
        .await
        .expect("hub resolution");
    let secs = t.elapsed().as_secs_f64();
    let (peak, _) = common::rss_mb();
    let largest: Vec<String> = stats
        .largest_components
        .iter()
        .map(|c| format!("{}:{}", c.example, c.identifiers))
        .collect();
    println!(
        "hub identifiers={} memory_limit=4GB secs={secs:.2} rounds={} profiles={} violating_components={} replayed_events={} violations={} peak_rss_mb={peak} largest_components={}",
        stats.identifiers,
        stats.rounds,
        stats.profiles,
        stats.violating_components,
        stats.replayed_events,
        stats.violations,
        largest.join(","),
    );
}

/// The synthetic identity graph, as two columns of edge ends.
struct Graph {
    a: Vec<i64>,
    b: Vec<i64>,
    nodes: u64,
    users: u64,
    anons: u64,
    emails: u64,
    shared: u64,
}

impl Graph {
    /// Adds users until there are at least `edges` edges.
    fn build(edges: usize, seed: u64) -> Graph {
        let mut g = Graph {
            a: Vec::with_capacity(edges + 64),
            b: Vec::with_capacity(edges + 64),
            nodes: 0,
            users: 0,
            anons: 0,
            emails: 0,
            shared: 0,
        };
        let mut rng = Rng(seed);
        // Extra anonymous ids are geometric with mean 1.2: continue with probability 1.2 / 2.2.
        let more_anon = 1.2 / 2.2;
        while g.a.len() < edges {
            let user = node_id(USER, g.users);
            let first_anon = node_id(ANON, g.anons);
            loop {
                g.push(user, node_id(ANON, g.anons));
                g.anons += 1;
                if rng.unit() >= more_anon {
                    break;
                }
            }
            if rng.unit() < 0.6 {
                g.push(user, node_id(EMAIL, g.emails));
                g.emails += 1;
            }
            if g.users > 0 && rng.unit() < 0.02 {
                let other = rng.below(g.users);
                g.push(node_id(USER, other), first_anon);
                g.shared += 1;
            }
            g.users += 1;
        }
        g.nodes = g.users + g.anons + g.emails;
        g
    }

    fn push(&mut self, a: i64, b: i64) {
        if a != b {
            self.a.push(a);
            self.b.push(b);
        }
    }

    /// The edge table (batches dealt round-robin to the partitions), and its batches.
    fn into_table(self) -> (Arc<MemTable>, Vec<RecordBatch>) {
        let schema = edge_schema();
        let batches: Vec<RecordBatch> = self
            .a
            .chunks(BATCH_ROWS)
            .zip(self.b.chunks(BATCH_ROWS))
            .map(|(a, b)| {
                RecordBatch::try_new(
                    schema.clone(),
                    vec![
                        Arc::new(Int64Array::from(a.to_vec())),
                        Arc::new(Int64Array::from(b.to_vec())),
                    ],
                )
                .expect("edge batch")
            })
            .collect();
        let mut parts = vec![Vec::new(); PARTITIONS];
        for (i, b) in batches.iter().enumerate() {
            parts[i % PARTITIONS].push(b.clone());
        }
        let table = MemTable::try_new(schema, parts).expect("edge table");
        (Arc::new(table), batches)
    }
}

/// A random-looking 64-bit id for the `n`th node of a kind.
fn node_id(kind: u64, n: u64) -> i64 {
    splitmix64((kind << 56) ^ n) as i64
}

fn splitmix64(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// SplitMix64 as a generator.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        splitmix64(self.0)
    }
    /// Uniform in [0, 1).
    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
    /// Uniform in [0, n).
    fn below(&mut self, n: u64) -> u64 {
        ((self.next() as u128 * n as u128) >> 64) as u64
    }
}

/// Hashes one integer key by a multiply (the ids are random already).
#[derive(Default)]
struct IntHasher(u64);

impl Hasher for IntHasher {
    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 = (self.0.rotate_left(8) ^ *b as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15);
        }
    }
    fn write_i64(&mut self, x: i64) {
        self.0 = (self.0 ^ x as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    }
    fn finish(&self) -> u64 {
        self.0.rotate_left(26)
    }
}

type IntMap<K, V> = HashMap<K, V, BuildHasherDefault<IntHasher>>;

/// Union-find's answer: every node's dense id, and every dense id's root.
struct UnionFind {
    dict: IntMap<i64, u32>,
    roots: Vec<u32>,
    components: u64,
    dict_secs: f64,
    union_secs: f64,
}

fn union_find(batches: &[RecordBatch]) -> UnionFind {
    let t = Instant::now();
    let rows: usize = batches.iter().map(|b| b.num_rows()).sum();
    // Sized for the most nodes `rows` edges can have, so the table never grows.
    let mut dict: IntMap<i64, u32> = IntMap::with_capacity_and_hasher(2 * rows, Default::default());
    let mut dense: Vec<(u32, u32)> = Vec::with_capacity(rows);
    let mut code = |x: i64| -> u32 {
        let next = dict.len() as u32;
        *dict.entry(x).or_insert(next)
    };
    for batch in batches {
        let a = batch.column(0).as_primitive::<Int64Type>().values();
        let b = batch.column(1).as_primitive::<Int64Type>().values();
        for (&x, &y) in a.iter().zip(b.iter()) {
            dense.push((code(x), code(y)));
        }
    }
    let dict_secs = t.elapsed().as_secs_f64();

    let t = Instant::now();
    let n = dict.len();
    let mut parent: Vec<u32> = (0..n as u32).collect();
    let mut size: Vec<u32> = vec![1; n];
    let mut components = n as u64;
    for (x, y) in dense {
        let (mut rx, mut ry) = (find(&mut parent, x), find(&mut parent, y));
        if rx == ry {
            continue;
        }
        if size[rx as usize] < size[ry as usize] {
            std::mem::swap(&mut rx, &mut ry);
        }
        parent[ry as usize] = rx;
        size[rx as usize] += size[ry as usize];
        components -= 1;
    }
    let union_secs = t.elapsed().as_secs_f64();
    let roots = (0..n as u32).map(|x| find(&mut parent, x)).collect();
    UnionFind {
        dict,
        roots,
        components,
        dict_secs,
        union_secs,
    }
}

/// The root of `x`, halving the path on the way.
fn find(parent: &mut [u32], mut x: u32) -> u32 {
    while parent[x as usize] != x {
        let grand = parent[parent[x as usize] as usize];
        parent[x as usize] = grand;
        x = grand;
    }
    x
}

/// How a `(node, label)` table compares with union-find.
struct Check {
    rows: u64,
    components: u64,
    /// Nodes union-find never saw.
    unknown: u64,
    /// Nodes labelled more than once.
    repeated: u64,
    /// Rows whose label disagrees with the pairing of labels and roots seen so far.
    mismatches: u64,
}

impl Check {
    fn ok(&self, uf: &UnionFind) -> bool {
        self.rows == uf.roots.len() as u64
            && self.components == uf.components
            && self.unknown == 0
            && self.repeated == 0
            && self.mismatches == 0
    }
}

/// Checks every labelled node: the labels and the union-find roots must pair one to one.
fn check(batches: &[RecordBatch], uf: &UnionFind) -> Check {
    let n = uf.roots.len();
    let mut seen = vec![false; n];
    // Label of each root; the root's own slot, valid once `has_label` is set.
    let mut label_of_root = vec![0i64; n];
    let mut has_label = vec![false; n];
    let mut root_of_label: IntMap<i64, u32> = IntMap::default();
    let mut c = Check {
        rows: 0,
        components: 0,
        unknown: 0,
        repeated: 0,
        mismatches: 0,
    };
    for batch in batches {
        let nodes = batch.column(0).as_primitive::<Int64Type>();
        let labels = batch.column(1).as_primitive::<Int64Type>();
        for (node, label) in nodes.values().iter().zip(labels.iter()) {
            c.rows += 1;
            let (Some(&d), Some(label)) = (uf.dict.get(node), label) else {
                c.unknown += 1;
                continue;
            };
            let d = d as usize;
            if std::mem::replace(&mut seen[d], true) {
                c.repeated += 1;
            }
            let root = uf.roots[d];
            let r = root as usize;
            let mut bad = false;
            if has_label[r] {
                bad |= label_of_root[r] != label;
            } else {
                has_label[r] = true;
                label_of_root[r] = label;
            }
            bad |= *root_of_label.entry(label).or_insert(root) != root;
            c.mismatches += bad as u64;
        }
    }
    c.components = root_of_label.len() as u64;
    c
}

/// Part 2: the whole identity stage of a run over generated sample events.
async fn generator_run(events: u64) {
    let dir = tempfile::tempdir().expect("temp dir");
    let data = dir.path().join("data").join("events");
    std::fs::create_dir_all(&data).expect("data folder");
    common::generate(&data, events, GenerateOptions::default().seed).await;
    std::fs::write(
        dir.path().join("space.yaml"),
        "name: bench\nspec_version: 1\nsources:\n  - name: web\n    preset: events\n    \
         url: ./data/events\noutput: ./out\n",
    )
    .expect("space.yaml");
    let v = cohort::analyze::validate_space(dir.path()).await;
    let Some(space) = v.space else {
        panic!(
            "the bench space is invalid:\n{}",
            cohort::spec::render_all(&v.diagnostics, dir.path())
        );
    };
    let run_opts = RunOptions {
        as_of: Some(GenerateOptions::default().end),
        ..Default::default()
    };
    common::reset_peak();
    let t = Instant::now();
    let report = cohort::run::run(&space, &run_opts, &Quiet)
        .await
        .expect("run");
    let secs = t.elapsed().as_secs_f64();
    let rec = &report.record;
    let stage_ms = |name: &str| {
        rec.stage_timings
            .iter()
            .find(|(s, _)| s == name)
            .map_or(0, |(_, ms)| *ms)
    };
    println!(
        "run events={} secs={secs:.2} stages={} peak_rss_mb={}",
        rec.events,
        rec.stage_timings
            .iter()
            .map(|(s, ms)| format!("{s}:{ms}ms"))
            .collect::<Vec<_>>()
            .join(","),
        common::rss_mb().0,
    );
    let Some(id) = &rec.identity else {
        println!("identity none");
        return;
    };
    println!(
        "identity stage_ms={} mode={} identifiers={} edges={} rounds={} edges_per_round={} components={} profiles={} violating_components={} merges={} violations={} replayed_events={}",
        stage_ms("identity"),
        id.mode,
        id.identifiers,
        id.edges,
        id.rounds,
        join(&id.edges_per_round),
        id.components,
        id.profiles,
        id.violating_components,
        id.merges,
        id.violations,
        id.replayed_events,
    );
    println!(
        "identity_timings {}",
        id.timings
            .iter()
            .map(|(k, s)| format!("{k}={s:.3}"))
            .collect::<Vec<_>>()
            .join(" ")
    );
}

fn join(v: &[u64]) -> String {
    v.iter().map(u64::to_string).collect::<Vec<_>>().join(",")
}

fn mem(phase: &str) {
    let (peak, rss) = common::rss_mb();
    println!("mem phase={phase} peak_rss_mb={peak} rss_mb={rss}");
}
