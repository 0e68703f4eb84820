//! The published `identity_occurrences` table: every identifier occurrence of every event the
//! identity graph was built from, partitioned by the event's day (`dt`). A run that resolved
//! only what its events reach (see [`super::stages::identity_affected`]) appends the
//! occurrences of the events it read or made visible when none of them had a previous version
//! in the table, else rewrites only the days of those events and of their previous versions;
//! any other run rewrites the table.

use datafusion::arrow::datatypes::DataType;
use datafusion::common::JoinType;
use datafusion::functions::expr_fn::to_char;
use datafusion::logical_expr::cast;
use datafusion::prelude::{DataFrame, Expr, SessionContext, col, lit};

use super::bucketed::{self, Layout};
use super::stages::identity_affected::Changed;
use super::tables::{published, stage};
use crate::error::EngineResult;
use crate::store::{delta, manifest, objects};

fn with_day(df: DataFrame) -> EngineResult<DataFrame> {
    Ok(df.with_column("dt", to_char(col("timestamp"), lit("%Y-%m-%d")))?)
}

/// Writes `identity_occurrences` for this run; returns the version that holds it. `changed`
/// is set when the identity stage resolved only the changed events' components (its session
/// tables `id_occ_prev`, `id_changed`, `id_occ_new` and `id_occ_replaced` are registered);
/// else `id_occ_read` holds every occurrence (as read, before repairs).
pub async fn write(
    ctx: &SessionContext,
    out: &objects::Location,
    previous: Option<&manifest::Manifest>,
    changed: Option<Changed>,
    layout: Layout<'_>,
) -> EngineResult<u64> {
    let loc = out.child(published::IDENTITY_OCCURRENCES);
    let prev_version = previous
        .and_then(|m| m.tables.get(published::IDENTITY_OCCURRENCES))
        .copied();
    let (Some(changed), Some(v)) = (changed, prev_version) else {
        let all = with_day(ctx.table(stage::ID_OCC_READ).await?)?;
        return rewrite(ctx, &loc, all, layout).await;
    };
    let new = ctx.table(stage::ID_OCC_NEW).await?;
    let names: Vec<String> = new
        .schema()
        .fields()
        .iter()
        .map(|f| f.name().clone())
        .collect();
    let kept = ctx
        .table(stage::ID_OCC_PREV)
        .await?
        .join_on(
            ctx.table(stage::ID_CHANGED)
                .await?
                .select(vec![col("message_id").alias("c_message_id")])?,
            JoinType::LeftAnti,
            [cast(col("message_id"), DataType::Utf8).eq(col("c_message_id"))],
        )?
        .select(
            new.schema()
                .fields()
                .iter()
                .map(|f| cast(col(f.name()), f.data_type().clone()).alias(f.name()))
                .collect::<Vec<_>>(),
        )?;
    let new = new.select(names.iter().map(|n| col(n.as_str())).collect::<Vec<_>>())?;
    let whole = with_day(kept.union(new.clone())?)?;
    // Another run may have written a version after the one the manifest holds and died
    // before it published: rewrite the table from the published version then.
    if delta::open(&loc).await?.version() != Some(v) {
        return rewrite(ctx, &loc, whole, layout).await;
    }
    if changed.replaced == 0 && new.clone().count().await? == 0 {
        return Ok(v);
    }
    if changed.replaced == 0 {
        // No previous row goes: the changed events' occurrences are added.
        let rows = with_day(new.clone())?.into_unoptimized_plan();
        if let Some(v) = delta::append_at(&loc, rows, &ctx.state(), v).await? {
            return Ok(v);
        }
    }
    let days = with_day(new)?.select(vec![col("dt")])?.union(
        ctx.table(stage::ID_OCC_REPLACED)
            .await?
            .select_columns(&["dt"])?,
    )?;
    let days = super::events_table::distinct_days(ctx, days.into_unoptimized_plan()).await?;
    let list: Vec<Expr> = days.into_iter().map(lit).collect();
    if list.is_empty() {
        return Ok(v);
    }
    let only = col("dt").in_list(list, false);
    let plan = whole.filter(only.clone())?.into_unoptimized_plan();
    Ok(delta::replace_where(&loc, plan, &ctx.state(), only).await?)
}

/// Replaces the table at `loc` with `all`'s rows: in the layout's parts of days, through the
/// scratch folder, when it has more than one.
async fn rewrite(
    ctx: &SessionContext,
    loc: &objects::Location,
    all: DataFrame,
    layout: Layout<'_>,
) -> EngineResult<u64> {
    let plan = all.into_unoptimized_plan();
    let g = layout.write_parts;
    let parts = match g > 1 {
        true => {
            let dir = layout.scratch.join(published::IDENTITY_OCCURRENCES);
            bucketed::materialize_partitioned(ctx, plan, "dt", g, &dir)
                .await?
                .1
        }
        false => vec![plan],
    };
    Ok(delta::overwrite_partitioned_parts(loc, parts, &ctx.state(), &["dt"]).await?)
}
