//! The run history of a space, read back from its published `runs` table: what `cohort runs`
//! lists, what the scheduler resumes from, and what `GET .../runs` returns.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use datafusion::arrow::array::{Array, AsArray};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, TimeUnit};
use datafusion::prelude::*;
use serde::Serialize;

use super::output_location;
use crate::error::EngineResult;
use crate::run::tables::published;
use crate::spec::Space;
use crate::store::{delta, manifest};

/// One run of the history.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct RunSummary {
    pub run_id: String,
    /// `succeeded`, `failed`, or `abandoned` (it died without recording how it ended).
    pub status: String,
    /// What started it (`manual: cli`, `schedule: audience:a, ...`), when recorded.
    pub trigger: Option<String>,
    pub as_of: DateTime<Utc>,
    pub started_at: DateTime<Utc>,
    pub duration_ms: i64,
    /// Stage -> milliseconds, in run order.
    pub stage_timings: Vec<(String, u64)>,
    pub events: i64,
    /// Audience key -> (members, entered, exited).
    pub audiences: BTreeMap<String, (u64, u64, u64)>,
    /// Why it failed.
    pub message: Option<String>,
}

/// Every run of `space`, newest first (empty when nothing was ever published).
pub async fn runs(space: &Space) -> EngineResult<Vec<RunSummary>> {
    let out = output_location(space)?;
    let Some(m) = manifest::read(&out).await? else {
        return Ok(Vec::new());
    };
    let Some(v) = m.tables.get(published::RUNS) else {
        return Ok(Vec::new());
    };
    let ctx = SessionContext::new();
    let df = ctx.read_table(delta::provider(&out.child(published::RUNS), *v).await?)?;
    let has_trigger = df.schema().has_column_with_unqualified_name("trigger");
    let mut cols = vec![
        col("run_id"),
        col("status"),
        col("as_of"),
        col("started_at"),
        col("duration_ms"),
        col("stage_timings"),
        col("events"),
        col("audiences"),
        col("message"),
    ];
    cols.push(if has_trigger {
        col("trigger")
    } else {
        lit(datafusion::common::ScalarValue::Utf8(None)).alias("trigger")
    });
    let df = df
        .select(cols)?
        .sort(vec![col("started_at").sort(false, false)])?;
    let mut out = Vec::new();
    let text = |a: &dyn Array| -> EngineResult<Vec<Option<String>>> {
        let a = cast(a, &DataType::Utf8).map_err(datafusion::error::DataFusionError::from)?;
        let a = a.as_string::<i32>();
        Ok((0..a.len())
            .map(|i| a.is_valid(i).then(|| a.value(i).to_string()))
            .collect())
    };
    let micros = |a: &dyn Array| -> EngineResult<Vec<i64>> {
        let a = cast(a, &DataType::Timestamp(TimeUnit::Microsecond, None))
            .map_err(datafusion::error::DataFusionError::from)?;
        let a = a.as_primitive::<datafusion::arrow::datatypes::TimestampMicrosecondType>();
        Ok((0..a.len()).map(|i| a.value(i)).collect())
    };
    let int = |a: &dyn Array| -> EngineResult<Vec<i64>> {
        let a = cast(a, &DataType::Int64).map_err(datafusion::error::DataFusionError::from)?;
        let a = a.as_primitive::<datafusion::arrow::datatypes::Int64Type>();
        Ok((0..a.len()).map(|i| a.value(i)).collect())
    };
    for b in df.collect().await? {
        let run_id = text(b.column(0))?;
        let status = text(b.column(1))?;
        let as_of = micros(b.column(2))?;
        let started = micros(b.column(3))?;
        let duration = int(b.column(4))?;
        let timings = text(b.column(5))?;
        let events = int(b.column(6))?;
        let audiences = text(b.column(7))?;
        let message = text(b.column(8))?;
        let trigger = text(b.column(9))?;
        for i in 0..b.num_rows() {
            out.push(RunSummary {
                run_id: run_id[i].clone().unwrap_or_default(),
                status: status[i].clone().unwrap_or_default(),
                trigger: trigger[i].clone(),
                as_of: DateTime::from_timestamp_micros(as_of[i]).unwrap_or_default(),
                started_at: DateTime::from_timestamp_micros(started[i]).unwrap_or_default(),
                duration_ms: duration[i],
                stage_timings: parse_timings(timings[i].as_deref()),
                events: events[i],
                audiences: parse_audiences(audiences[i].as_deref()),
                message: message[i].clone(),
            });
        }
    }
    Ok(out)
}

/// `{"events": 120, ...}` in run order (serde_json keeps insertion order only with a feature
/// Cohort does not enable, so the stages are put back in pipeline order).
fn parse_timings(s: Option<&str>) -> Vec<(String, u64)> {
    const ORDER: [&str; 5] = ["events", "identity", "traits", "audiences", "publish"];
    let Some(map) = s.and_then(|s| serde_json::from_str::<BTreeMap<String, u64>>(s).ok()) else {
        return Vec::new();
    };
    let mut v: Vec<(String, u64)> = map.into_iter().collect();
    v.sort_by_key(|(k, _)| ORDER.iter().position(|o| o == k).unwrap_or(ORDER.len()));
    v
}

fn parse_audiences(s: Option<&str>) -> BTreeMap<String, (u64, u64, u64)> {
    let Some(v) = s.and_then(|s| serde_json::from_str::<serde_json::Value>(s).ok()) else {
        return BTreeMap::new();
    };
    let mut out = BTreeMap::new();
    if let Some(m) = v.get("audiences").and_then(|a| a.as_object()) {
        for (k, c) in m {
            let n = |f: &str| c.get(f).and_then(|x| x.as_u64()).unwrap_or(0);
            out.insert(k.clone(), (n("members"), n("entered"), n("exited")));
        }
    }
    out
}
