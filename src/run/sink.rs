//! Where a stage's tables go. A run writes each kept stage table once to its scratch folder
//! ([`StageSink::Materialize`]) so later readers do not compute it again; `cohort compile
//! --script` runs the very same stages with [`StageSink::Record`], which does the same and
//! also records each stage table's logical plan (as it reads its upstream tables, by name), the
//! identity stage and the published tables, as the [`Step`]s `script::steps` renders.

use std::path::Path;
use std::sync::Arc;

use datafusion::dataframe::DataFrameWriteOptions;
use datafusion::logical_expr::LogicalPlan;
use datafusion::prelude::SessionContext;

use crate::error::EngineResult;
use crate::script::steps::Step;
use crate::store::scratch;

/// What happens to the tables stages make besides being registered in the session.
pub enum StageSink {
    /// A run: kept tables are written to scratch; nothing is recorded.
    Materialize,
    /// `compile --script`: as [`StageSink::Materialize`], and every stage table's plan is
    /// recorded, in the order the stages make them.
    Record(Vec<Step>),
}

impl StageSink {
    /// Whether plans are recorded (a script is being made).
    pub fn recording(&self) -> bool {
        matches!(self, StageSink::Record(_))
    }

    /// Records that `name` is a stage table computed by `plan` (a later plan of the same name
    /// replaces it).
    pub fn table(&mut self, name: &str, plan: &LogicalPlan) {
        if let StageSink::Record(steps) = self {
            steps.retain(|s| !matches!(s, Step::Table { name: n, .. } if n == name));
            steps.push(Step::Table {
                name: name.to_string(),
                plan: plan.clone(),
            });
        }
    }

    /// Records a step that is not a stage table (the identity stage, a published table).
    pub fn step(&mut self, step: Step) {
        if let StageSink::Record(steps) = self {
            steps.push(step);
        }
    }

    /// The recorded steps (none for [`StageSink::Materialize`]).
    pub fn into_steps(self) -> Vec<Step> {
        match self {
            StageSink::Materialize => Vec::new(),
            StageSink::Record(steps) => steps,
        }
    }

    /// Records `plan` as `name` and registers it as a view of that name.
    pub async fn view(
        &mut self,
        ctx: &SessionContext,
        name: &str,
        plan: LogicalPlan,
    ) -> EngineResult<()> {
        self.table(name, &plan);
        ctx.register_table(name, ctx.execute_logical_plan(plan).await?.into_view())?;
        Ok(())
    }

    /// Records `plan` as `name`, and registers it as `name` written once to the scratch folder
    /// (when there is one); see [`keep`].
    pub async fn keep(
        &mut self,
        ctx: &SessionContext,
        plan: LogicalPlan,
        name: &str,
        scratch: Option<&Path>,
    ) -> EngineResult<()> {
        self.table(name, &plan);
        keep(ctx, plan, name, scratch).await
    }
}

/// Registers `plan` as `name`, written once to the scratch folder (when there is one) so that
/// the later readers of `name` (counts, other stages, the publish) do not compute it again.
pub async fn keep(
    ctx: &SessionContext,
    plan: LogicalPlan,
    name: &str,
    scratch: Option<&Path>,
) -> EngineResult<()> {
    let plan = match scratch {
        Some(dir) => materialize(ctx, plan, &dir.join(name)).await?,
        None => plan,
    };
    ctx.register_table(name, ctx.execute_logical_plan(plan).await?.into_view())?;
    Ok(())
}

/// Writes `plan`'s rows once to Parquet files in `dir` and returns a scan of them, so that
/// later passes read a few local files instead of re-reading (and re-parsing) every source.
pub async fn materialize(
    ctx: &SessionContext,
    plan: LogicalPlan,
    dir: &Path,
) -> EngineResult<LogicalPlan> {
    let schema = Arc::clone(plan.schema());
    let rows = write_parquet(ctx, plan, dir).await?;
    read_back(ctx, dir, rows, schema).await
}

/// Appends `plan`'s rows to Parquet files in `dir` (created if missing); returns how many.
pub async fn write_parquet(
    ctx: &SessionContext,
    plan: LogicalPlan,
    dir: &Path,
) -> EngineResult<u64> {
    write_parquet_with(ctx, plan, dir, DataFrameWriteOptions::new()).await
}

/// [`write_parquet`] into one subfolder `<column>=<value>` per value of `column` (which is
/// not written into the files).
pub async fn write_partitioned(
    ctx: &SessionContext,
    plan: LogicalPlan,
    dir: &Path,
    column: &str,
) -> EngineResult<u64> {
    let by = DataFrameWriteOptions::new().with_partition_by(vec![column.to_string()]);
    write_parquet_with(ctx, plan, dir, by).await
}

async fn write_parquet_with(
    ctx: &SessionContext,
    plan: LogicalPlan,
    dir: &Path,
    write: DataFrameWriteOptions,
) -> EngineResult<u64> {
    std::fs::create_dir_all(dir).map_err(crate::error::StoreError::from)?;
    let path = format!("{}/", dir.display());
    let written = ctx
        .execute_logical_plan(plan)
        .await?
        .write_parquet(&path, write, Some(scratch::parquet_options()))
        .await?;
    Ok(scratch::rows_written(&written))
}

/// A scan of the Parquet files [`write_parquet`] wrote to `dir` (`rows` rows of `schema`).
pub async fn read_back(
    ctx: &SessionContext,
    dir: &Path,
    rows: u64,
    schema: datafusion::common::DFSchemaRef,
) -> EngineResult<LogicalPlan> {
    let path = format!("{}/", dir.display());
    if rows == 0 {
        // No rows, no files: there is nothing to read back (nor a schema to infer from).
        return Ok(LogicalPlan::EmptyRelation(
            datafusion::logical_expr::EmptyRelation {
                produce_one_row: false,
                schema,
            },
        ));
    }
    let read = ctx
        .read_parquet(path, datafusion::prelude::ParquetReadOptions::default())
        .await?;
    Ok(read.into_unoptimized_plan())
}
