//! How fast `cohort export` writes a 1 M-member audience as CSV (goal: indexed format in
//! ≤ 1 s; Segment documents about 30 s for a formatted CSV of 1 M rows).
//!
//! A real run large enough for 1 M members would take many minutes here, so the bench writes
//! the published state directly through `store`, as a run leaves it: `identities`
//! (`--profiles` profiles, default 2 M: a user id for 80 %, 0–2 emails, 1–3 anonymous ids,
//! values from a fixed pseudo-random sequence), `audience_membership` (audience `big` with
//! every other profile, `--members` default 1 M, and audience `small` with every tenth),
//! `runs` (a run record listing both audiences) and the manifest. The space itself is a
//! starter-sized folder (1 000 generated events) so that it loads and validates like a real
//! one. Then it exports `big` to a file in each format, `--repeat` times (default 3), and
//! prints the best time of each: `export format=... members rows bytes secs`.
//!
//! `cargo bench --bench export`

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use chrono::{TimeZone, Utc};
use cohort::run::audiences::{AudienceCounts, AudienceStats};
use cohort::serve::export::{self, ExportFormat, ExportOptions};
use cohort::store::{delta, manifest};
use datafusion::arrow::array::{
    ArrayBuilder, ArrayRef, RecordBatch, StringBuilder, TimestampMicrosecondBuilder,
};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};

fn arg(name: &str, default: u64) -> u64 {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .map(|v| v.parse().expect("a number"))
        .unwrap_or(default)
}

fn time_type() -> DataType {
    DataType::Timestamp(TimeUnit::Microsecond, Some(Arc::from("UTC")))
}

fn identities_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("profile_id", DataType::Utf8, true),
        Field::new("id_type", DataType::Utf8, true),
        Field::new("id_value", DataType::Utf8, true),
        Field::new("first_seen", time_type(), true),
        Field::new("last_seen", time_type(), true),
    ]))
}

/// A small, fixed pseudo-random sequence (SplitMix64).
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
}

fn profile_id(i: u64) -> String {
    // Shaped like Cohort's ids (`use_` + 16 hex digits) and spread like them.
    let mut r = Rng(i);
    format!("use_{:016x}", r.next())
}

/// The `identities` batches: (batches, identifier rows).
fn identities(profiles: u64) -> (Vec<RecordBatch>, u64) {
    let t0 = Utc
        .with_ymd_and_hms(2026, 1, 1, 0, 0, 0)
        .unwrap()
        .timestamp_micros();
    let mut rng = Rng(42);
    let mut batches = Vec::new();
    let mut rows = 0u64;
    let chunk = 200_000u64;
    let mut start = 0;
    while start < profiles {
        let end = (start + chunk).min(profiles);
        let (mut p, mut t, mut v) = (
            StringBuilder::new(),
            StringBuilder::new(),
            StringBuilder::new(),
        );
        let (mut f, mut l) = (
            TimestampMicrosecondBuilder::new().with_timezone("UTC"),
            TimestampMicrosecondBuilder::new().with_timezone("UTC"),
        );
        for i in start..end {
            let pid = profile_id(i);
            let r = rng.next();
            let mut ids: Vec<(&str, String)> = Vec::new();
            if r % 10 < 8 {
                ids.push(("user_id", format!("user-{i:08}")));
            }
            for k in 0..(r >> 8) % 3 {
                ids.push((
                    "email",
                    format!("person{i}.{k}@example{}.com", (r >> 16) % 97),
                ));
            }
            for k in 0..1 + (r >> 24) % 3 {
                ids.push(("anonymous_id", format!("{:016x}-{k}", rng.next())));
            }
            for (ty, val) in ids {
                p.append_value(&pid);
                t.append_value(ty);
                v.append_value(val);
                let seen = t0 + (rng.next() % 300) as i64 * 86_400_000_000;
                f.append_value(seen);
                l.append_value(seen + 3_600_000_000);
                rows += 1;
            }
        }
        let cols: Vec<ArrayRef> = vec![
            Arc::new(p.finish()),
            Arc::new(t.finish()),
            Arc::new(v.finish()),
            Arc::new(f.finish()),
            Arc::new(l.finish()),
        ];
        batches.push(RecordBatch::try_new(identities_schema(), cols).expect("identities"));
        start = end;
    }
    (batches, rows)
}

/// `audience_membership`: `big` = every other profile (up to `members`), `small` = every tenth.
fn membership(profiles: u64, members: u64) -> (Vec<RecordBatch>, u64, u64) {
    let schema = cohort::run::audiences::membership_schema();
    let entered = Utc
        .with_ymd_and_hms(2026, 11, 1, 0, 0, 0)
        .unwrap()
        .timestamp_micros();
    let (mut big, mut small) = (0u64, 0u64);
    let mut batches = Vec::new();
    let (mut k, mut e, mut p, mut at) = (
        StringBuilder::new(),
        StringBuilder::new(),
        StringBuilder::new(),
        TimestampMicrosecondBuilder::new().with_timezone("UTC"),
    );
    let mut flush = |k: &mut StringBuilder,
                     e: &mut StringBuilder,
                     p: &mut StringBuilder,
                     at: &mut TimestampMicrosecondBuilder| {
        let cols: Vec<ArrayRef> = vec![
            Arc::new(k.finish()),
            Arc::new(e.finish()),
            Arc::new(p.finish()),
            Arc::new(at.finish()),
        ];
        batches.push(RecordBatch::try_new(schema.clone(), cols).expect("membership"));
    };
    for i in 0..profiles {
        let mut add = |key: &str| {
            k.append_value(key);
            e.append_value("users");
            p.append_value(profile_id(i));
            at.append_value(entered);
        };
        if i % 2 == 0 && big < members {
            add("big");
            big += 1;
        }
        if i % 10 == 0 {
            add("small");
            small += 1;
        }
        if k.len() >= 200_000 {
            flush(&mut k, &mut e, &mut p, &mut at);
        }
    }
    flush(&mut k, &mut e, &mut p, &mut at);
    (batches, big, small)
}

async fn publish(space: &cohort::spec::Space, profiles: u64, members: u64) -> u64 {
    let t = Instant::now();
    let out = cohort::run::output_location(space).expect("output");
    let (ids, id_rows) = identities(profiles);
    let (mem, big, small) = membership(profiles, members);
    let mut tables = BTreeMap::new();
    let v = delta::overwrite_batches(&out.child("identities"), ids)
        .await
        .expect("identities");
    tables.insert("identities".to_string(), v);
    let v = delta::overwrite_batches(&out.child("audience_membership"), mem)
        .await
        .expect("membership");
    tables.insert("audience_membership".to_string(), v);

    let now = Utc::now();
    let run_id = "20261123T000000000Z-00001";
    let opts = cohort::run::RunOptions {
        as_of: Some(Utc.with_ymd_and_hms(2026, 11, 1, 0, 0, 0).unwrap()),
        ..Default::default()
    };
    let mut rec = cohort::run::new_record(space, &opts, run_id, now);
    rec.status = cohort::run::record::RunStatus::Succeeded;
    let mut stats = AudienceStats::default();
    for (key, n) in [("big", big), ("small", small)] {
        stats.audiences.insert(
            key.into(),
            AudienceCounts {
                entity: "users".into(),
                members: n,
                entered: n,
                exited: 0,
            },
        );
    }
    rec.audiences = Some(stats);
    let v = delta::overwrite_batches(&out.child("runs"), vec![rec.to_batch()])
        .await
        .expect("runs");
    tables.insert("runs".to_string(), v);
    let m = manifest::Manifest {
        format: manifest::MANIFEST_FORMAT,
        space: space.name.clone(),
        run_id: run_id.into(),
        as_of: rec.as_of.to_rfc3339(),
        published_at: now.to_rfc3339(),
        tables,
        identity_rules: None,
        scope_from: None,
        sources: None,
        definitions: None,
        custom_trait_kinds: None,
        kept: None,
        sql_traits: None,
        first_seen: None,
    };
    manifest::write(&out, &m).await.expect("manifest");
    println!(
        "publish profiles={profiles} identifiers={id_rows} big={big} small={small} secs={:.2}",
        t.elapsed().as_secs_f64()
    );
    big
}

async fn space(dir: &Path) -> cohort::spec::Space {
    let data = dir.join("data/events");
    let loc = cohort::store::objects::open_raw(Path::new("/"), data.to_str().expect("utf-8"))
        .expect("data folder");
    let opts = cohort::generate::GenerateOptions {
        events: 1_000,
        ..Default::default()
    };
    cohort::generate::generate(&opts, &loc, &|_| {})
        .await
        .expect("generate");
    std::fs::write(
        dir.join("space.yaml"),
        "name: bench\nspec_version: 1\nsources:\n  - name: web\n    preset: events\n    \
         url: ./data/events\noutput: ./out\n",
    )
    .expect("space.yaml");
    std::fs::create_dir_all(dir.join("audiences")).expect("audiences");
    for key in ["big", "small"] {
        std::fs::write(
            dir.join(format!("audiences/{key}.yaml")),
            "query: \"event('Order Completed').count() >= 1\"\n",
        )
        .expect("audience");
    }
    let v = cohort::analyze::validate_space(dir).await;
    v.space.expect("the bench space is valid")
}

fn main() {
    let profiles = arg("--profiles", 2_000_000);
    let members = arg("--members", 1_000_000);
    let repeat = arg("--repeat", 3);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let tmp = tempfile::tempdir().expect("tempdir");
        let space = space(tmp.path()).await;
        let big = publish(&space, profiles, members).await;
        let path = tmp.path().join("big.csv");

        let single = ExportOptions {
            format: ExportFormat::Single,
            id_type: Some("email".into()),
            hash: None,
        };
        for (name, opts) in [
            ("indexed", ExportOptions::new(ExportFormat::Indexed)),
            ("unformatted", ExportOptions::new(ExportFormat::Unformatted)),
            ("single_email_sha256", single),
        ] {
            let mut best = f64::MAX;
            let mut summary = None;
            for _ in 0..repeat {
                let t = Instant::now();
                let mut file = std::fs::File::create(&path).expect("csv file");
                let s = export::write_csv(&space, "big", &opts, &mut file)
                    .await
                    .expect("export");
                drop(file);
                best = best.min(t.elapsed().as_secs_f64());
                summary = Some(s);
            }
            let s = summary.expect("at least one repeat");
            assert_eq!(s.members, big, "every member exported");
            println!(
                "export format={name} members={} rows={} bytes={} secs={best:.3}",
                s.members, s.rows, s.bytes
            );
        }
    });
}
