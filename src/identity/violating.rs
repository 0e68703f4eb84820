//! The sequential replay of the components that break a limit, over the session: their
//! events read in the order the rule takes them (`queries/identity/replay_input.sql`), each
//! component replayed on its own ([`super::replay`]), and the result as two tables, each
//! identifier's profile key and the identifiers a limit dropped.

use std::sync::Arc;

use datafusion::arrow::array::{
    AsArray, Int64Array, RecordBatch, StringBuilder, TimestampMicrosecondArray,
};
use datafusion::arrow::datatypes::{
    DataType, Field, Int32Type, Int64Type, Schema, TimeUnit, TimestampMicrosecondType,
};
use datafusion::catalog::MemTable;
use datafusion::common::Result;
use datafusion::prelude::SessionContext;

use super::{TypeLimit, replay, text_column};

const REPLAY_INPUT: &str = include_str!("../../queries/identity/replay_input.sql");

/// Replays every violating component; returns `id_replayed (node, profile_key)`,
/// `id_dropped (message_id, timestamp, node, id_type, id_value, detail)` and the number of
/// events replayed.
pub(super) async fn replay_violating(
    ctx: &SessionContext,
    types: &[TypeLimit],
) -> Result<(Arc<MemTable>, Arc<MemTable>, u64)> {
    let batches = ctx.sql(REPLAY_INPUT).await?.collect().await?;
    let limits: Vec<replay::Limit> = types.iter().map(|t| t.limit).collect();
    let mut replayed_nodes = Int64Array::builder(0);
    let mut replayed_keys = Int64Array::builder(0);
    let mut d_msg = StringBuilder::new();
    let mut d_ts: Vec<i64> = Vec::new();
    let mut d_node = Int64Array::builder(0);
    let mut d_type = StringBuilder::new();
    let mut d_value = StringBuilder::new();
    let mut d_detail = StringBuilder::new();
    let mut events_replayed = 0u64;

    // Rows arrive ordered by component, then event; gather one component at a time.
    struct Ev {
        message_id: String,
        ts: i64,
        ids: Vec<(i64, usize, String)>,
    }
    let mut comp: Option<i64> = None;
    let mut evs: Vec<Ev> = Vec::new();
    let mut flush = |evs: &mut Vec<Ev>| {
        if evs.is_empty() {
            return;
        }
        events_replayed += evs.len() as u64;
        let occs: Vec<replay::Event> = evs
            .iter()
            .map(|e| replay::Event {
                ts: e.ts,
                ids: e
                    .ids
                    .iter()
                    .map(|(node, t, _)| replay::Occurrence {
                        node: *node,
                        type_idx: *t,
                    })
                    .collect(),
            })
            .collect();
        let r = replay::replay(&occs, &limits);
        let mut pairs: Vec<_> = r.node_profile.into_iter().collect();
        pairs.sort_unstable();
        for (node, key) in pairs {
            replayed_nodes.append_value(node);
            replayed_keys.append_value(key);
        }
        for (ev, node, broken) in r.dropped {
            let e = &evs[ev];
            let (_, t, value) = e
                .ids
                .iter()
                .find(|(n, _, _)| *n == node)
                .expect("dropped identifier belongs to the event");
            d_msg.append_value(&e.message_id);
            d_ts.push(e.ts);
            d_node.append_value(node);
            d_type.append_value(&types[*t].id_type);
            d_value.append_value(value);
            d_detail.append_value(types[broken].broken_detail());
        }
        evs.clear();
    };
    for b in &batches {
        let c = b.column(0).as_primitive::<Int64Type>();
        let msg = text_column(b.column(1))?;
        let ts = b.column(2).as_primitive::<TimestampMicrosecondType>();
        let node = b.column(3).as_primitive::<Int64Type>();
        let rank = b.column(4).as_primitive::<Int32Type>();
        let value = text_column(b.column(6))?;
        for i in 0..b.num_rows() {
            if comp != Some(c.value(i)) {
                flush(&mut evs);
                comp = Some(c.value(i));
            }
            let same_event = evs
                .last()
                .is_some_and(|e| e.message_id == msg.value(i) && e.ts == ts.value(i));
            if !same_event {
                evs.push(Ev {
                    message_id: msg.value(i).to_string(),
                    ts: ts.value(i),
                    ids: Vec::new(),
                });
            }
            evs.last_mut().expect("an event").ids.push((
                node.value(i),
                rank.value(i) as usize,
                value.value(i).to_string(),
            ));
        }
    }
    flush(&mut evs);

    let replayed_schema = Arc::new(Schema::new(vec![
        Field::new("node", DataType::Int64, false),
        Field::new("profile_key", DataType::Int64, false),
    ]));
    let replayed = RecordBatch::try_new(
        replayed_schema.clone(),
        vec![
            Arc::new(replayed_nodes.finish()),
            Arc::new(replayed_keys.finish()),
        ],
    )?;
    let ts_type = DataType::Timestamp(TimeUnit::Microsecond, Some(Arc::from("UTC")));
    let dropped_schema = Arc::new(Schema::new(vec![
        Field::new("message_id", DataType::Utf8, false),
        Field::new("timestamp", ts_type, false),
        Field::new("node", DataType::Int64, false),
        Field::new("id_type", DataType::Utf8, false),
        Field::new("id_value", DataType::Utf8, false),
        Field::new("detail", DataType::Utf8, false),
    ]));
    let dropped = RecordBatch::try_new(
        dropped_schema.clone(),
        vec![
            Arc::new(d_msg.finish()),
            Arc::new(TimestampMicrosecondArray::from(d_ts).with_timezone("UTC")),
            Arc::new(d_node.finish()),
            Arc::new(d_type.finish()),
            Arc::new(d_value.finish()),
            Arc::new(d_detail.finish()),
        ],
    )?;
    Ok((
        Arc::new(MemTable::try_new(replayed_schema, vec![vec![replayed]])?),
        Arc::new(MemTable::try_new(dropped_schema, vec![vec![dropped]])?),
        events_replayed,
    ))
}
