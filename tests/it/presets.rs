//! Each preset read end to end from generated data, and partition pruning by window.

use cohort::read;
use cohort::run::{self, Quiet, RunOptions};
use cohort::spec::Preset;

use crate::common::{gen_end, generate, load, write_space};

async fn run_preset(preset: Preset) {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let g = generate(preset, 20_000, 11, &data).await;
    write_space(
        tmp.path(),
        "p",
        &[("web", preset.as_str(), "./data")],
        "./out",
    );
    let space = load(tmp.path()).await;
    let opts = RunOptions {
        as_of: Some(gen_end()),
        ..Default::default()
    };
    let r = run::run(&space, &opts, &Quiet).await.unwrap().record;
    let p = preset.as_str();
    for ty in ["identify", "track", "page", "screen", "group", "alias"] {
        let n = r
            .events_by_source_type
            .get(&format!("web/{ty}"))
            .copied()
            .unwrap_or(0);
        assert!(
            n > 0,
            "{p}: no {ty} events in {:?}",
            r.events_by_source_type
        );
    }
    assert_eq!(r.duplicates as u64, g.duplicates, "{p}: duplicates");
    assert_eq!(
        r.bad_events as u64, g.bad_rows,
        "{p}: bad rows {:?}",
        r.errors_by_reason
    );
    if preset == Preset::Events {
        assert_eq!(
            r.bad_events as u64, g.bad_rows,
            "{p}: bad rows {:?}",
            r.errors_by_reason
        );
    }
    assert_eq!(
        r.rows_read as u64, g.events,
        "{p}: every written row is read once"
    );
    assert_eq!(
        r.events + r.duplicates + r.bad_events + r.after_as_of,
        r.rows_read,
        "{p}: rows add up"
    );

    // Paths into properties, traits and context work whatever the preset stores.
    let ctx = read::query_session(&space, gen_end()).await.unwrap();
    let row = ctx
        .sql(
            "SELECT \
               count(*) FILTER (WHERE event = 'Order Completed'), \
               count(cohort_json_get(properties, 'revenue')) FILTER (WHERE event = 'Order Completed'), \
               count(*) FILTER (WHERE type = 'identify'), \
               count(cohort_json_get(traits, 'email')) FILTER (WHERE type = 'identify'), \
               count(cohort_json_get(context, 'device.id')), \
               count(*) \
             FROM events",
        )
        .await
        .unwrap()
        .collect()
        .await
        .unwrap();
    let v = |i: usize| {
        row[0]
            .column(i)
            .as_any()
            .downcast_ref::<datafusion::arrow::array::Int64Array>()
            .unwrap()
            .value(0)
    };
    assert!(v(0) > 0, "{p}: no orders");
    assert_eq!(v(0), v(1), "{p}: every order has properties.revenue");
    assert!(
        v(2) > 0 && v(3) * 10 >= v(2) * 9,
        "{p}: identify calls carry traits.email ({} of {})",
        v(3),
        v(2)
    );
    assert!(
        v(4) * 5 > v(5),
        "{p}: events carry context.device.id ({} of {})",
        v(4),
        v(5)
    );
}

#[tokio::test]
async fn events_preset_end_to_end() {
    run_preset(Preset::Events).await;
}

#[tokio::test]
async fn segment_preset_end_to_end() {
    run_preset(Preset::Segment).await;
}

#[tokio::test]
async fn rudderstack_preset_end_to_end() {
    run_preset(Preset::Rudderstack).await;
}

/// A run that needs only a window never opens older partitions: a corrupt file in an old
/// `dt=` folder breaks a full run but not a 30-day one.
#[tokio::test]
async fn window_prunes_old_partitions() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    generate(Preset::Events, 20_000, 5, &data).await;
    let mut parts: Vec<_> = std::fs::read_dir(&data)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().to_string())
        .filter(|n| n.starts_with("dt="))
        .collect();
    parts.sort();
    let oldest = data.join(&parts[0]);
    let file = std::fs::read_dir(&oldest)
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    std::fs::write(&file, b"this is not parquet").unwrap();
    write_space(tmp.path(), "w", &[("web", "events", "./data")], "./out");
    let space = load(tmp.path()).await;

    let full = RunOptions {
        as_of: Some(gen_end()),
        ..Default::default()
    };
    let err = run::run(&space, &full, &Quiet)
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("Parquet") || err.contains("parquet"), "{err}");

    let windowed = RunOptions {
        as_of: Some(gen_end()),
        window_days: Some(30),
        ..Default::default()
    };
    let r = run::run(&space, &windowed, &Quiet).await.unwrap().record;
    assert_eq!(r.window_days, Some(30));
    assert!(r.events > 0);
    // The failed full run is in the history, the windowed one after it.
    let ctx = datafusion::prelude::SessionContext::new();
    let runs = read::published_table(&space, "runs")
        .await
        .unwrap()
        .unwrap();
    ctx.register_table("runs", runs).unwrap();
    let s = crate::common::query_text(&ctx, "SELECT status FROM runs ORDER BY started_at").await;
    let failed = s.find("failed").expect(&s);
    let ok = s.find("succeeded").expect(&s);
    assert!(failed < ok, "{s}");
}

/// The memory limit reaches DataFusion: far too little fails with "Resources exhausted",
/// a small limit (well under the data's size) publishes the same tables as no limit. Under
/// it the identity stage's joins are sort-merge joins, and the event-to-profile joins run in
/// buckets (300,000 events need two under 160 MB; see `run::bucketed`).
#[tokio::test]
async fn memory_limit_spills_and_is_enforced() {
    let tmp = tempfile::tempdir().unwrap();
    generate(Preset::Events, 300_000, 8, &tmp.path().join("data")).await;
    write_space(tmp.path(), "mem", &[("web", "events", "./data")], "./out");
    let space = load(tmp.path()).await;
    let with_limit = |limit: Option<usize>| RunOptions {
        as_of: Some(gen_end()),
        // Both runs read every file (the second would otherwise find nothing new).
        full_rebuild: true,
        session: cohort::run::session::SessionOptions {
            memory_limit: limit,
            spill_dir: Some(tmp.path().join("spill")),
        },
        ..Default::default()
    };
    let published = || async {
        let ctx = datafusion::prelude::SessionContext::new();
        run::register_published(&ctx, &space).await.unwrap();
        let mut all = Vec::new();
        for (table, cols) in [
            ("identities", "profile_id, id_type, id_value"),
            ("profiles", "*"),
            ("events", "profile_id, message_id, dt"),
            (
                "identity_occurrences",
                "message_id, id_type, id_value, node, dt",
            ),
        ] {
            let sql = format!("SELECT {cols} FROM {table} ORDER BY 1, 2, 3");
            let rows = crate::common::text_rows(&ctx, &sql).await;
            assert!(!rows.is_empty(), "{table} has rows");
            all.push((table, rows));
        }
        all
    };
    let free = run::run(&space, &with_limit(None), &Quiet)
        .await
        .unwrap()
        .record;
    let free_tables = published().await;
    let tight = run::run(&space, &with_limit(Some(160 << 20)), &Quiet)
        .await
        .unwrap()
        .record;
    assert_eq!(
        (free.events, free.duplicates, free.bad_events),
        (tight.events, tight.duplicates, tight.bad_events)
    );
    // The limit is tight enough for the joins that do not fit it.
    let k = cohort::run::bucketed::buckets(Some(160 << 20), tight.events as u64);
    assert!(k > 1, "{} events in {k} bucket(s)", tight.events);
    // ... and for writing the tables partitioned by day in parts of days, one commit each.
    let g = cohort::run::bucketed::write_parts(Some(160 << 20), tight.events as u64);
    assert!(g > 1, "{} events in {g} part(s)", tight.events);
    let versions = |table: &str| {
        std::fs::read_dir(tmp.path().join("out/mem").join(table).join("_delta_log"))
            .unwrap()
            .filter(|e| {
                e.as_ref()
                    .unwrap()
                    .path()
                    .extension()
                    .is_some_and(|x| x == "json")
            })
            .count()
    };
    assert!(versions("events") > 2, "one commit per part");
    for ((table, want), (_, got)) in free_tables.iter().zip(published().await) {
        assert!(got == *want, "{table} differs under the limit");
    }
    let err = run::run(&space, &with_limit(Some(4 << 10)), &Quiet)
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("Resources exhausted"), "{err}");
}

/// An `events` table that stores properties and context as structs, a typed timestamp, and
/// lacks some columns altogether: paths still work and missing columns read as null.
#[tokio::test]
async fn struct_columns_and_typed_timestamps() {
    use datafusion::arrow::array::{
        ArrayRef, Float64Array, RecordBatch, StringArray, StructArray, TimestampMillisecondArray,
    };
    use datafusion::arrow::datatypes::{DataType, Field, Fields, Schema, TimeUnit};
    use std::sync::Arc;

    let tmp = tempfile::tempdir().unwrap();
    let text = |v: Vec<&str>| Arc::new(StringArray::from(v)) as ArrayRef;
    let props_fields = Fields::from(vec![
        Field::new("revenue", DataType::Float64, true),
        Field::new("product_id", DataType::Utf8, true),
    ]);
    let props = StructArray::new(
        props_fields.clone(),
        vec![
            Arc::new(Float64Array::from(vec![Some(12.5), None])) as ArrayRef,
            text(vec!["p1", "p2"]),
        ],
        None,
    );
    let device_fields = Fields::from(vec![Field::new("id", DataType::Utf8, true)]);
    let device = StructArray::new(device_fields.clone(), vec![text(vec!["d9", "d8"])], None);
    let ctx_fields = Fields::from(vec![Field::new(
        "device",
        DataType::Struct(device_fields),
        true,
    )]);
    let context = StructArray::new(ctx_fields.clone(), vec![Arc::new(device) as ArrayRef], None);
    let schema = Arc::new(Schema::new(vec![
        Field::new("message_id", DataType::Utf8, false),
        Field::new("type", DataType::Utf8, false),
        Field::new("event", DataType::Utf8, true),
        Field::new("userId", DataType::Utf8, true),
        Field::new(
            "timestamp",
            DataType::Timestamp(TimeUnit::Millisecond, None),
            true,
        ),
        Field::new("properties", DataType::Struct(props_fields), true),
        Field::new("context", DataType::Struct(ctx_fields), true),
    ]));
    let batch = RecordBatch::try_new(
        schema.clone(),
        vec![
            text(vec!["s1", "s2"]),
            text(vec!["track", "track"]),
            text(vec!["Order Completed", "Product Viewed"]),
            text(vec!["u1", "u2"]),
            Arc::new(TimestampMillisecondArray::from(vec![
                1_790_000_000_000,
                1_790_000_100_000,
            ])),
            Arc::new(props),
            Arc::new(context),
        ],
    )
    .unwrap();
    let dir = tmp.path().join("data");
    std::fs::create_dir_all(&dir).unwrap();
    let file = std::fs::File::create(dir.join("events.parquet")).unwrap();
    let mut w = datafusion::parquet::arrow::ArrowWriter::try_new(file, schema, None).unwrap();
    w.write(&batch).unwrap();
    w.close().unwrap();

    write_space(
        tmp.path(),
        "structs",
        &[("web", "events", "./data")],
        "./out",
    );
    let space = load(tmp.path()).await;
    let as_of = cohort::cli::parse_time("2026-10-01").unwrap();
    let ctx = read::query_session(&space, as_of).await.unwrap();
    let s = crate::common::query_text(
        &ctx,
        "SELECT message_id, user_id, anonymous_id, cohort_json_get(properties, 'revenue'), \
         cohort_json_get(properties, 'product_id'), cohort_json_get(context, 'device.id'), \
         CAST(timestamp AS VARCHAR) FROM events ORDER BY message_id",
    )
    .await;
    let expected = [
        "| s1         | u1      |              | 12.5",
        "| s2         | u2      |              |",
    ];
    for e in expected {
        assert!(s.contains(e), "{e:?} not in\n{s}");
    }
    assert!(
        s.contains("p1") && s.contains("d9") && s.contains("d8"),
        "{s}"
    );
    assert!(s.contains("2026-09-21T14:13:20Z"), "{s}");
}
