//! The event history a run extends: whether the previous run's history may be extended (and
//! why not), and that history read back with its ingestion log and its `event_errors`.
//!
//! A run extends the previous history when the previous run published one, no full rebuild
//! was asked for, the run reads all history (no `--window-days`), every source uses the
//! `events` preset, the sources are defined as before and as-of did not move back. Some of
//! those reasons also mean the previous identity graph may hold what is no longer true (a
//! source changed, as-of moved back, a file changed): the run context's `history_break` says
//! so, and the identity stage rebuilds too.

use chrono::DateTime;
use datafusion::functions_aggregate::expr_fn::count;
use datafusion::logical_expr::{LogicalPlan, LogicalPlanBuilder, cast};
use datafusion::prelude::{col, lit};

use super::ctx::RunCtx;
use super::ingest::IngestLog;
use super::record::fingerprint;
use super::tables::published;
use crate::error::EngineResult;
use crate::plan::history as hp;
use crate::spec::{Preset, Space};
use crate::store::delta;

/// The previous run's history, as this run extends it.
pub struct Previous {
    /// The files it was read from.
    pub log: IngestLog,
    /// Its rows, with the history's columns and types.
    pub history: LogicalPlan,
    /// Its `event_errors` rows but unreadable files (those are read, and reported, again).
    pub errors: Option<LogicalPlan>,
}

impl Previous {
    /// How many of its events are up to `as_of_micros`.
    pub async fn events_up_to(
        &self,
        ctx: &datafusion::prelude::SessionContext,
        as_of_micros: i64,
    ) -> EngineResult<i64> {
        let plan = LogicalPlanBuilder::from(hp::events_up_to(self.history.clone(), as_of_micros)?)
            .aggregate(Vec::<datafusion::prelude::Expr>::new(), vec![count(lit(1))])?
            .build()?;
        let batches = ctx.execute_logical_plan(plan).await?.collect().await?;
        Ok(batches
            .first()
            .and_then(|b| {
                b.column(0)
                    .as_any()
                    .downcast_ref::<datafusion::arrow::array::Int64Array>()
                    .map(|a| a.value(0))
            })
            .unwrap_or(0))
    }
}

/// What the manifest keeps of the space's sources: a history read under other source
/// definitions cannot be extended.
pub fn sources_fingerprint(space: &Space) -> String {
    let mut text = String::from("history-v1;");
    for s in &space.sources {
        text.push_str(&format!(
            "{}|{}|{}|{};",
            s.name, s.preset, s.url, s.partition_column
        ));
    }
    fingerprint(text.as_bytes())
}

/// The previous run's history when this run may extend it, else why not (setting
/// `ctx.history_break` when the previous identity graph cannot be trusted either).
pub async fn previous(ctx: &mut RunCtx<'_>) -> EngineResult<Result<Previous, String>> {
    let Some(m) = ctx.previous.clone() else {
        return Ok(Err("no previous run".into()));
    };
    if ctx.opts.full_rebuild {
        return Ok(Err("a full rebuild was asked for".into()));
    }
    if let Some(d) = ctx.opts.window_days {
        return Ok(Err(format!(
            "--window-days {d} reads a window of the sources, not the history"
        )));
    }
    if let Some(s) = ctx
        .space
        .sources
        .iter()
        .find(|s| s.preset != Preset::Events)
    {
        return Ok(Err(format!(
            "source `{}` uses the `{}` preset, whose tables are read whole every run",
            s.name, s.preset
        )));
    }
    let Some(sources) = m.sources.as_deref() else {
        return Ok(Err("the previous run kept no event history".into()));
    };
    if sources != sources_fingerprint(ctx.space) {
        let why = "the space's sources changed (space.yaml)".to_string();
        ctx.history_break = Some(why.clone());
        return Ok(Err(why));
    }
    let Ok(prev) = DateTime::parse_from_rfc3339(&m.as_of) else {
        return Ok(Err("the previous run kept no event history".into()));
    };
    if ctx.as_of < prev {
        let why = format!(
            "as-of {} is before the previous run's {}",
            ctx.as_of.to_rfc3339(),
            prev.to_rfc3339()
        );
        ctx.history_break = Some(why.clone());
        return Ok(Err(why));
    }
    let (Some(v), Some(log)) = (
        m.tables.get(published::EVENTS),
        IngestLog::read(&ctx.out, &m).await?,
    ) else {
        return Ok(Err("the previous run kept no event history".into()));
    };
    let table = delta::provider(&ctx.out.child(published::EVENTS), *v).await?;
    let history = hp::typed_history(ctx.session.read_table(table)?.into_unoptimized_plan())?;
    let errors = match m.tables.get(published::EVENT_ERRORS) {
        Some(v) => {
            let table = delta::provider(&ctx.out.child(published::EVENT_ERRORS), *v).await?;
            let text = datafusion::arrow::datatypes::DataType::Utf8;
            let names = super::publish::EVENT_ERROR_COLUMNS;
            Some(
                LogicalPlanBuilder::from(ctx.session.read_table(table)?.into_unoptimized_plan())
                    .filter(col("reason").not_eq(lit(super::files::UNREADABLE_FILE)))?
                    .project(names.map(|c| cast(col(c), text.clone()).alias(c)))?
                    .build()?,
            )
        }
        None => None,
    };
    Ok(Ok(Previous {
        log,
        history,
        errors,
    }))
}
