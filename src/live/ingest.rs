//! A tick's events as a run sees them: the collector's rows (the `events` preset's columns)
//! normalized, checked and deduplicated by the run's own plans, each event's usable
//! identifiers found by identity.yaml's rules, and the order the batch replays them in.

use std::collections::HashMap;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use datafusion::arrow::array::{Array, AsArray, RecordBatch};
use datafusion::arrow::datatypes::{DataType, TimeUnit, TimestampMicrosecondType};
use datafusion::catalog::MemTable;
use datafusion::datasource::provider_as_source;
use datafusion::logical_expr::LogicalPlanBuilder;
use datafusion::prelude::SessionContext;

use super::history::text;
use super::identity::Occ;
use crate::error::EngineResult;
use crate::plan::identity::ResolvedRules;

/// The normalized events of `raw` (a batch of the events preset's columns) and each event's
/// usable identifiers, by message id, as a batch run finds them.
pub(super) async fn normalize(
    ctx: &SessionContext,
    src: &crate::spec::SourceDef,
    raw: &RecordBatch,
    rules: &ResolvedRules,
    now: DateTime<Utc>,
) -> EngineResult<(RecordBatch, HashMap<String, Vec<Occ>>)> {
    use crate::plan::events as ev;
    let t = MemTable::try_new(raw.schema(), vec![vec![raw.clone()]])?;
    let scan = LogicalPlanBuilder::scan(src.name.as_str(), provider_as_source(Arc::new(t)), None)?
        .build()?;
    let table = ev::SourceTable {
        source: src.name.clone(),
        preset: src.preset,
        table: src.name.clone(),
        kind: ev::TableKind::Events,
        partition_column: src.partition_column.clone(),
        scan,
    };
    let Some(normalized) = ev::union_tables(&[table])? else {
        return Ok((RecordBatch::new_empty(raw.schema()), HashMap::new()));
    };
    let events =
        crate::plan::history::valid_events(ev::classify(normalized)?, now.timestamp_micros())?;
    let df = ctx.execute_logical_plan(events.clone()).await?;
    let schema = Arc::new(df.schema().as_arrow().clone());
    let events_batch = datafusion::arrow::compute::concat_batches(&schema, &df.collect().await?)?;
    let mut occs: HashMap<String, Vec<Occ>> = HashMap::new();
    // The identifiers read from the normalized rows (the plan would normalize them again).
    let t = MemTable::try_new(schema.clone(), vec![vec![events_batch.clone()]])?;
    let events =
        LogicalPlanBuilder::scan("events", provider_as_source(Arc::new(t)), None)?.build()?;
    if let Some(plan) = crate::plan::identity::occurrences(ctx, events, rules)? {
        // Blocks, unlinks and splits of repairs.yaml, as a run applies them (merges wait for
        // the next run: where they meet depends on the whole history).
        let plan = crate::plan::repairs::repaired_events(ctx, plan, &rules.repairs)?;
        for b in ctx.execute_logical_plan(plan).await?.collect().await? {
            let s = b.schema();
            let col = |n: &str| -> EngineResult<_> { Ok(text(b.column(s.index_of(n)?))?) };
            let (mid, ty, val) = (col("message_id")?, col("id_type")?, col("id_value")?);
            let violation = b.column(s.index_of("violation")?);
            let rank =
                datafusion::arrow::compute::cast(b.column(s.index_of("rank")?), &DataType::Int64)?;
            let rank = rank.as_primitive::<datafusion::arrow::datatypes::Int64Type>();
            let node =
                datafusion::arrow::compute::cast(b.column(s.index_of("node")?), &DataType::Int64)?;
            let node = node.as_primitive::<datafusion::arrow::datatypes::Int64Type>();
            for i in 0..b.num_rows() {
                if violation.is_valid(i) {
                    continue;
                }
                occs.entry(mid.value(i).to_string()).or_default().push(Occ {
                    rank: rank.value(i) as usize,
                    id_type: ty.value(i).to_string(),
                    id_value: val.value(i).to_string(),
                    node: node.value(i),
                });
            }
        }
    }
    for v in occs.values_mut() {
        v.sort_by(|a, b| (a.rank, &a.id_value).cmp(&(b.rank, &b.id_value)));
    }
    Ok((events_batch, occs))
}

/// (row, message id, timestamp micros) of every event, in the order the batch replays them.
pub(super) fn events_in_order(b: &RecordBatch) -> EngineResult<Vec<(usize, String, i64)>> {
    let s = b.schema();
    let mid = text(b.column(s.index_of("message_id")?))?;
    let ts = datafusion::arrow::compute::cast(
        b.column(s.index_of("timestamp")?),
        &DataType::Timestamp(TimeUnit::Microsecond, None),
    )?;
    let ts = ts.as_primitive::<TimestampMicrosecondType>();
    let mut out: Vec<(usize, String, i64)> = (0..b.num_rows())
        .map(|i| (i, mid.value(i).to_string(), ts.value(i)))
        .collect();
    out.sort_by(|a, b| (a.2, &a.1).cmp(&(b.2, &b.1)));
    Ok(out)
}

/// The identify calls among `rows` of `b` (what custom traits are found in), or None.
pub(super) fn identify_rows(b: &RecordBatch, rows: &[usize]) -> EngineResult<Option<RecordBatch>> {
    let ty = text(b.column(b.schema().index_of("type")?))?;
    let calls: Vec<u32> = rows
        .iter()
        .filter(|&&r| ty.is_valid(r) && ty.value(r) == "identify")
        .map(|&r| r as u32)
        .collect();
    if calls.is_empty() {
        return Ok(None);
    }
    let idx = datafusion::arrow::array::UInt32Array::from(calls);
    Ok(Some(datafusion::arrow::compute::take_record_batch(
        b, &idx,
    )?))
}
