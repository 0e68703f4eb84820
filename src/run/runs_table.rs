//! The `runs` table: how a run's row (and the rows of runs that died without writing theirs)
//! joins the published history, and what the history says about past definitions.

use std::collections::{BTreeMap, HashSet};

use datafusion::arrow::array::{AsArray, RecordBatch};
use datafusion::prelude::{SessionContext, col, lit};

use super::record::{self, RunRecord};
use super::tables::published;
use crate::error::{EngineResult, StoreError};
use crate::store::{delta, manifest, objects};

/// Rewrites `runs` as the previous published history plus the rows of `dead` runs not in it
/// yet and this run, in one commit.
pub(super) async fn write_runs(
    out: &objects::Location,
    previous: Option<&manifest::Manifest>,
    dead: &[RunRecord],
    rec: &RunRecord,
) -> EngineResult<u64> {
    let loc = out.child(published::RUNS);
    let mut batches = Vec::new();
    let mut known = HashSet::new();
    if let Some(v) = previous.and_then(|m| m.tables.get(published::RUNS)) {
        let ctx = SessionContext::new();
        let provider = delta::provider(&loc, *v).await?;
        let df = ctx.read_table(provider)?;
        for b in df.collect().await? {
            let b = conform(b)?;
            let ids = b.column(0).as_string::<i32>();
            known.extend((0..b.num_rows()).map(|i| ids.value(i).to_string()));
            batches.push(b);
        }
    }
    for d in dead {
        // A run killed after its row was written (but before it removed its marker) is in.
        if !known.contains(&d.run_id) {
            batches.push(d.to_batch());
        }
    }
    batches.push(rec.to_batch());
    Ok(delta::overwrite_batches(&loc, batches).await?)
}

/// The definition files of every successful published run, oldest first.
pub(crate) async fn definitions_history(
    out: &objects::Location,
    previous: Option<&manifest::Manifest>,
) -> EngineResult<Vec<BTreeMap<String, String>>> {
    let Some(v) = previous.and_then(|m| m.tables.get(published::RUNS)) else {
        return Ok(Vec::new());
    };
    let ctx = SessionContext::new();
    let df = ctx
        .read_table(delta::provider(&out.child(published::RUNS), *v).await?)?
        .filter(col("status").eq(lit("succeeded")))?
        .sort(vec![col("started_at").sort(true, false)])?
        .select(vec![col("definitions")])?;
    let mut out = Vec::new();
    for b in df.collect().await? {
        let c = datafusion::arrow::compute::cast(
            b.column(0),
            &datafusion::arrow::datatypes::DataType::Utf8,
        )
        .map_err(datafusion::error::DataFusionError::from)?;
        let c = c.as_string::<i32>();
        for i in 0..b.num_rows() {
            if let Ok(m) = serde_json::from_str(c.value(i)) {
                out.push(m);
            }
        }
    }
    Ok(out)
}

/// Reorders and fills an old `runs` batch to today's schema.
fn conform(b: RecordBatch) -> EngineResult<RecordBatch> {
    let schema = record::runs_schema();
    let cols = schema
        .fields()
        .iter()
        .map(|f| match b.column_by_name(f.name()) {
            Some(c) => datafusion::arrow::compute::cast(c, f.data_type()),
            None => Ok(datafusion::arrow::array::new_null_array(
                f.data_type(),
                b.num_rows(),
            )),
        })
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| StoreError::Corrupt {
            what: "old runs table".into(),
            reason: e.to_string(),
        })?;
    Ok(
        RecordBatch::try_new(schema, cols).map_err(|e| StoreError::Corrupt {
            what: "old runs table".into(),
            reason: e.to_string(),
        })?,
    )
}

/// Records a failed run in `runs` and points the manifest's `runs` entry at it; the other
/// tables keep the last good run.
pub(super) async fn record_failure(
    out: &objects::Location,
    dead: &[RunRecord],
    rec: &RunRecord,
) -> EngineResult<()> {
    let previous = manifest::read(out).await?;
    let v = write_runs(out, previous.as_ref(), dead, rec).await?;
    let mut m = previous.unwrap_or(manifest::Manifest {
        format: manifest::MANIFEST_FORMAT,
        space: rec.space.clone(),
        run_id: String::new(),
        as_of: String::new(),
        published_at: String::new(),
        tables: BTreeMap::new(),
        identity_rules: None,
        scope_from: None,
        sources: None,
        definitions: None,
        custom_trait_kinds: None,
        kept: None,
        sql_traits: None,
        first_seen: None,
    });
    m.tables.insert(published::RUNS.into(), v);
    manifest::write(out, &m).await?;
    Ok(())
}
