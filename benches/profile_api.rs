//! How fast the Profile API answers traits lookups over a million profiles on loopback.
//!
//! Goal: at least 20,000 requests/s with p99 at most 5 ms (Segment documents p95 under 200 ms
//! at 100 requests/s per space).
//!
//! A run that makes a million profiles needs some 35 M generated events, so this bench writes
//! the published tables of a space directly, as a run would leave them (`profiles` with six
//! trait columns, `identities` with a user id and an email per profile, an audience with a
//! third of the profiles, a `runs` row, the manifest), then indexes them exactly as
//! `cohort serve` does after a run publishes (the index build is timed too). It serves the
//! real router on 127.0.0.1 and drives it from the same process with `--connections`
//! keep-alive HTTP/1.1 connections, each sending `GET .../profiles/user_id:<random>/traits`
//! with Basic auth, for `--secs` seconds after a one-second warm-up. Every response must be a
//! 200 with the profile's traits. Then it times the web app's reads one at a time (the page's
//! assets, profile pages, the audience list). Prints `key=value` lines: `build`, `index`,
//! `load`, `pages`.
//!
//! `cargo bench --bench profile_api -- --profiles 1000000`

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine as _;
use cohort::serve::ServedSpace;
use cohort::serve::api::{self, ApiSpace};
use cohort::store::{delta, manifest, objects};
use datafusion::arrow::array::{
    ArrayRef, BooleanArray, Float64Array, Int64Array, RecordBatch, StringArray,
    TimestampMicrosecondArray,
};
use datafusion::arrow::datatypes::{DataType, Field, Schema, TimeUnit};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

struct Args {
    profiles: usize,
    connections: usize,
    secs: u64,
}

fn args() -> Args {
    let mut a = Args {
        profiles: 1_000_000,
        connections: 32,
        secs: 10,
    };
    let argv: Vec<String> = std::env::args().collect();
    let mut i = 1;
    while i < argv.len() {
        let v = || argv.get(i + 1).and_then(|s| s.parse::<usize>().ok());
        match argv[i].as_str() {
            "--profiles" => a.profiles = v().expect("--profiles N"),
            "--connections" => a.connections = v().expect("--connections N"),
            "--secs" => a.secs = v().expect("--secs N") as u64,
            _ => {
                i += 1;
                continue;
            }
        }
        i += 2;
    }
    a
}

fn ts() -> DataType {
    DataType::Timestamp(TimeUnit::Microsecond, Some(Arc::from("UTC")))
}

fn times(n: usize, base: i64) -> ArrayRef {
    Arc::new(
        TimestampMicrosecondArray::from((0..n).map(|i| base + i as i64).collect::<Vec<_>>())
            .with_timezone("UTC"),
    )
}

/// Writes the published tables of space `bench` with `n` profiles under `out`.
async fn write_published(root: &Path, n: usize) {
    let space_loc = objects::open_raw(root, "./out").unwrap().child("bench");
    let base = 1_790_000_000_000_000i64;
    let ids: Vec<String> = (0..n).map(|i| format!("p{i:08}")).collect();
    let chunk = 250_000;
    let mut versions = std::collections::BTreeMap::new();

    // profiles: ids, first/last seen, user_id, email list, six traits.
    let schema = Arc::new(Schema::new(vec![
        Field::new("profile_id", DataType::Utf8, false),
        Field::new("first_seen", ts(), true),
        Field::new("last_seen", ts(), true),
        Field::new("user_id", DataType::Utf8, true),
        Field::new("name", DataType::Utf8, true),
        Field::new("plan", DataType::Utf8, true),
        Field::new("age", DataType::Int64, true),
        Field::new("vip", DataType::Boolean, true),
        Field::new("total_revenue", DataType::Float64, true),
        Field::new("orders", DataType::Int64, true),
    ]));
    let mut batches = Vec::new();
    for start in (0..n).step_by(chunk) {
        let end = (start + chunk).min(n);
        let r = start..end;
        let cols: Vec<ArrayRef> = vec![
            Arc::new(StringArray::from_iter_values(ids[r.clone()].iter())),
            times(end - start, base),
            times(end - start, base + 1_000_000),
            Arc::new(StringArray::from_iter_values(
                r.clone().map(|i| format!("u{i}")),
            )),
            Arc::new(StringArray::from_iter_values(
                r.clone().map(|i| format!("Person {i}")),
            )),
            Arc::new(StringArray::from_iter_values(
                r.clone().map(|i| ["free", "pro", "team"][i % 3]),
            )),
            Arc::new(Int64Array::from_iter_values(
                r.clone().map(|i| 18 + (i % 60) as i64),
            )),
            Arc::new(BooleanArray::from_iter(r.clone().map(|i| Some(i % 7 == 0)))),
            Arc::new(Float64Array::from_iter_values(
                r.clone().map(|i| (i % 1000) as f64 * 1.5),
            )),
            Arc::new(Int64Array::from_iter_values(
                r.clone().map(|i| (i % 13) as i64),
            )),
        ];
        batches.push(RecordBatch::try_new(schema.clone(), cols).unwrap());
    }
    let v = delta::overwrite_batches(&space_loc.child("profiles"), batches)
        .await
        .unwrap();
    versions.insert("profiles".to_string(), v);

    // identities: user_id and email per profile.
    let schema = Arc::new(Schema::new(vec![
        Field::new("profile_id", DataType::Utf8, false),
        Field::new("id_type", DataType::Utf8, false),
        Field::new("id_value", DataType::Utf8, false),
        Field::new("first_seen", ts(), true),
        Field::new("last_seen", ts(), true),
    ]));
    let mut batches = Vec::new();
    for start in (0..n).step_by(chunk) {
        let end = (start + chunk).min(n);
        for (ty, val) in [("user_id", "u"), ("email", "e")] {
            let r = start..end;
            let cols: Vec<ArrayRef> = vec![
                Arc::new(StringArray::from_iter_values(ids[r.clone()].iter())),
                Arc::new(StringArray::from_iter_values(r.clone().map(|_| ty))),
                Arc::new(StringArray::from_iter_values(r.clone().map(|i| {
                    if ty == "email" {
                        format!("{val}{i}@example.com")
                    } else {
                        format!("{val}{i}")
                    }
                }))),
                times(end - start, base),
                times(end - start, base),
            ];
            batches.push(RecordBatch::try_new(schema.clone(), cols).unwrap());
        }
    }
    let v = delta::overwrite_batches(&space_loc.child("identities"), batches)
        .await
        .unwrap();
    versions.insert("identities".to_string(), v);

    // accounts: none.
    let schema = Arc::new(Schema::new(vec![
        Field::new("account_id", DataType::Utf8, false),
        Field::new("first_seen", ts(), true),
        Field::new("last_seen", ts(), true),
        Field::new(
            "users",
            DataType::List(Arc::new(Field::new("item", DataType::Utf8, true))),
            true,
        ),
    ]));
    let v = delta::overwrite_batches(
        &space_loc.child("accounts"),
        vec![RecordBatch::new_empty(schema)],
    )
    .await
    .unwrap();
    versions.insert("accounts".to_string(), v);

    // One audience with every third profile; its entered rows.
    let members: Vec<usize> = (0..n).step_by(3).collect();
    let m_schema = cohort::run::audiences::membership_schema();
    let cols: Vec<ArrayRef> = vec![
        Arc::new(StringArray::from_iter_values(
            members.iter().map(|_| "big_spenders"),
        )),
        Arc::new(StringArray::from_iter_values(
            members.iter().map(|_| "users"),
        )),
        Arc::new(StringArray::from_iter_values(
            members.iter().map(|i| ids[*i].as_str()),
        )),
        times(members.len(), base),
    ];
    let v = delta::overwrite_batches(
        &space_loc.child("audience_membership"),
        vec![RecordBatch::try_new(m_schema, cols).unwrap()],
    )
    .await
    .unwrap();
    versions.insert("audience_membership".to_string(), v);
    let c_schema = Arc::new(Schema::new(vec![
        Field::new("run_id", DataType::Utf8, false),
        Field::new("as_of", ts(), false),
        Field::new("audience_key", DataType::Utf8, false),
        Field::new("entity_type", DataType::Utf8, false),
        Field::new("profile_id", DataType::Utf8, false),
        Field::new("change", DataType::Utf8, false),
        Field::new("identifiers", DataType::Utf8, true),
    ]));
    let v = delta::overwrite_batches(
        &space_loc.child("audience_changes"),
        vec![RecordBatch::new_empty(c_schema)],
    )
    .await
    .unwrap();
    versions.insert("audience_changes".to_string(), v);

    // The run record: which columns are computed traits.
    let now = chrono::Utc::now();
    let mut rec =
        cohort::run::new_record(&bench_space(root), &Default::default(), "bench-run", now);
    rec.status = cohort::run::record::RunStatus::Succeeded;
    let mut p = cohort::run::profiles::ProfileStats::default();
    p.computed_traits
        .insert("total_revenue".into(), "Float64".into());
    p.computed_traits.insert("orders".into(), "Int64".into());
    rec.profiles = Some(p);
    let v = delta::overwrite_batches(&space_loc.child("runs"), vec![rec.to_batch()])
        .await
        .unwrap();
    versions.insert("runs".to_string(), v);

    manifest::write(
        &space_loc,
        &manifest::Manifest {
            format: manifest::MANIFEST_FORMAT,
            space: "bench".into(),
            run_id: "bench-run".into(),
            as_of: now.to_rfc3339(),
            published_at: now.to_rfc3339(),
            tables: versions,
            identity_rules: None,
            scope_from: None,
            sources: None,
            definitions: None,
            custom_trait_kinds: None,
            kept: None,
            sql_traits: None,
            first_seen: None,
        },
    )
    .await
    .unwrap();
}

fn bench_space(root: &Path) -> cohort::spec::Space {
    std::fs::write(
        root.join("space.yaml"),
        "name: bench\nspec_version: 1\nsources:\n  - name: web\n    preset: events\n    url: ./data\noutput: ./out\n",
    )
    .unwrap();
    std::fs::create_dir_all(root.join("data")).unwrap();
    // The audience the published tables hold, so that the audience list has it.
    std::fs::create_dir_all(root.join("audiences")).unwrap();
    std::fs::write(
        root.join("audiences/big_spenders.yaml"),
        "name: Big spenders\nquery: trait('total_revenue') > 100\n",
    )
    .unwrap();
    let load = cohort::spec::load_space(root);
    load.space.expect("the bench space is valid")
}

/// One keep-alive connection sending requests until `stop`; returns latencies in µs.
async fn client(
    addr: std::net::SocketAddr,
    auth: String,
    profiles: usize,
    seed: u64,
    warm_until: Instant,
    stop: Instant,
) -> (Vec<u32>, u64) {
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    s.set_nodelay(true).unwrap();
    let mut x = seed | 1;
    let mut buf = vec![0u8; 64 * 1024];
    let mut lat = Vec::new();
    let mut bad = 0;
    loop {
        let now = Instant::now();
        if now >= stop {
            break;
        }
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let id = (x % profiles as u64) as usize;
        let req = format!(
            "GET /v1/spaces/bench/collections/users/profiles/user_id:u{id}/traits HTTP/1.1\r\nHost: bench\r\nAuthorization: {auth}\r\n\r\n"
        );
        let t = Instant::now();
        s.write_all(req.as_bytes()).await.unwrap();
        // Read the head, then Content-Length bytes of body.
        let mut have = 0;
        let (head_end, len) = loop {
            let n = s.read(&mut buf[have..]).await.unwrap();
            assert!(n > 0, "server closed the connection");
            have += n;
            if let Some(p) = buf[..have].windows(4).position(|w| w == b"\r\n\r\n") {
                let head = std::str::from_utf8(&buf[..p]).unwrap();
                if !head.starts_with("HTTP/1.1 200") {
                    bad += 1;
                }
                let len = head
                    .lines()
                    .find_map(|l| {
                        l.to_ascii_lowercase()
                            .strip_prefix("content-length:")
                            .map(|v| v.trim().parse::<usize>().unwrap())
                    })
                    .expect("content-length");
                break (p + 4, len);
            }
        };
        while have < head_end + len {
            let n = s.read(&mut buf[have..]).await.unwrap();
            assert!(n > 0);
            have += n;
        }
        if !std::str::from_utf8(&buf[head_end..head_end + len])
            .unwrap()
            .contains(&format!("\"name\":\"Person {id}\""))
        {
            bad += 1;
        }
        if t >= warm_until {
            lat.push(t.elapsed().as_micros() as u32);
        }
    }
    (lat, bad)
}

fn main() {
    let a = args();
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().to_path_buf();
    let server_rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let t = Instant::now();
    server_rt.block_on(write_published(&root, a.profiles));
    println!(
        "build profiles={} secs={:.2}",
        a.profiles,
        t.elapsed().as_secs_f64()
    );
    let space = bench_space(&root);
    let api_space = Arc::new(ApiSpace::new(
        ServedSpace {
            space,
            token: "bench-token".into(),
        },
        0,
    ));
    let t = Instant::now();
    assert!(server_rt.block_on(api_space.refresh()).unwrap());
    println!(
        "index profiles={} secs={:.2} rss_mb={}",
        api_space.index().unwrap().users.len(),
        t.elapsed().as_secs_f64(),
        rss_mb()
    );
    let listener = server_rt
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .unwrap();
    let addr = listener.local_addr().unwrap();
    let app = api::router(vec![api_space], None);
    server_rt.spawn(async move { axum::serve(listener, app).await.unwrap() });

    let client_rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let auth = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode("bench-token:")
    );
    let start = Instant::now();
    let warm_until = start + Duration::from_secs(1);
    let stop = warm_until + Duration::from_secs(a.secs);
    let results = client_rt.block_on(async {
        let mut tasks = Vec::new();
        for c in 0..a.connections {
            tasks.push(tokio::spawn(client(
                addr,
                auth.clone(),
                a.profiles,
                0x9e37_79b9_7f4a_7c15 ^ (c as u64 + 1),
                warm_until,
                stop,
            )));
        }
        let mut all = Vec::new();
        let mut bad = 0;
        for t in tasks {
            let (l, b) = t.await.unwrap();
            all.extend(l);
            bad += b;
        }
        (all, bad)
    });
    let (mut lat, bad) = results;
    lat.sort_unstable();
    let pct = |p: f64| lat[((lat.len() as f64 * p) as usize).min(lat.len() - 1)] as f64 / 1000.0;
    let rps = lat.len() as f64 / a.secs as f64;
    println!(
        "load connections={} secs={} requests={} bad={} rps={:.0} p50_ms={:.2} p95_ms={:.2} p99_ms={:.2} max_ms={:.2}",
        a.connections,
        a.secs,
        lat.len(),
        bad,
        rps,
        pct(0.50),
        pct(0.95),
        pct(0.99),
        *lat.last().unwrap() as f64 / 1000.0
    );
    println!(
        "goal rps>=20000 {} p99<=5ms {}",
        if rps >= 20_000.0 { "met" } else { "NOT met" },
        if pct(0.99) <= 5.0 { "met" } else { "NOT met" }
    );
    assert_eq!(bad, 0, "every response is a 200 with the right profile");
    client_rt.block_on(pages(addr, &auth, a.profiles));
}

/// The web app's reads, one request at a time as a browser makes them: the page and its
/// script, a profile page (`/explorer/profiles/users/{id}`, random profiles) and the audience
/// list. Prints `pages` with each one's p50 / p99 in ms.
async fn pages(addr: std::net::SocketAddr, auth: &str, profiles: usize) {
    let client = reqwest::Client::new();
    let base = format!("http://{addr}");
    let timed = |v: &mut Vec<f64>, t: Instant| v.push(t.elapsed().as_secs_f64() * 1000.0);
    let (mut app, mut profile, mut list) = (Vec::new(), Vec::new(), Vec::new());
    let mut x: u64 = 0x2545_f491_4f6c_dd1d;
    for i in 0..300 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let id = format!("p{:08}", x % profiles as u64);
        let get = |path: String| {
            client
                .get(format!("{base}{path}"))
                .header("Authorization", auth)
        };
        if i % 3 == 0 {
            let t = Instant::now();
            for path in ["/", "/app/app.js", "/app/app.css"] {
                let r = get(path.to_string()).send().await.unwrap();
                assert_eq!(r.status(), 200);
                r.bytes().await.unwrap();
            }
            timed(&mut app, t);
            let t = Instant::now();
            let r = get("/v1/spaces/bench/audiences".into())
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 200);
            assert!(r.text().await.unwrap().contains("\"size\""));
            timed(&mut list, t);
        }
        let t = Instant::now();
        let r = get(format!("/v1/spaces/bench/explorer/profiles/users/{id}"))
            .send()
            .await
            .unwrap();
        let status = r.status();
        let body = r.text().await.unwrap();
        assert_eq!(status, 200, "{id}: {body}");
        timed(&mut profile, t);
    }
    let p = |v: &mut Vec<f64>, q: f64| {
        v.sort_by(f64::total_cmp);
        v[((v.len() as f64 * q) as usize).min(v.len() - 1)]
    };
    println!(
        "pages profiles={profiles} app_p50_ms={:.2} profile_page_p50_ms={:.2} profile_page_p99_ms={:.2} audience_list_p50_ms={:.2} audience_list_p99_ms={:.2}",
        p(&mut app, 0.5),
        p(&mut profile, 0.5),
        p(&mut profile, 0.99),
        p(&mut list, 0.5),
        p(&mut list, 0.99),
    );
}

fn rss_mb() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok())
        })
        .map_or(0, |kb| kb / 1024)
}
