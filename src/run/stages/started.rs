//! The profiles SQL traits start: identifiers a SQL trait returned that no event has carried
//! yet become profiles of their own (with no first or last seen), in a run from the traits'
//! results in memory and in a script from each trait's recorded table.

use std::collections::BTreeSet;

use datafusion::arrow::datatypes::DataType;
use datafusion::logical_expr::{col, lit};
use datafusion::prelude::SessionContext;

use super::sql_traits::SqlTraitResult;
use crate::error::EngineResult;
use crate::run::tables::stage;

/// `(profile_id, id_type, id_value, first_seen, last_seen)` of the profiles SQL traits
/// started, each once (two traits may start the same one), never seen in an event.
pub(super) fn started_profiles(
    sql_traits: &[SqlTraitResult],
) -> EngineResult<datafusion::arrow::record_batch::RecordBatch> {
    use datafusion::arrow::array::{StringArray, TimestampMicrosecondArray};
    use datafusion::arrow::datatypes::{Field, Schema, TimeUnit};
    use std::sync::Arc;
    let rows: BTreeSet<(&str, &str, &str)> = sql_traits
        .iter()
        .flat_map(|t| {
            t.new_identities
                .iter()
                .map(|(p, v)| (p.as_str(), t.id_type.as_str(), v.as_str()))
        })
        .collect();
    let time = DataType::Timestamp(TimeUnit::Microsecond, Some(Arc::from("UTC")));
    let schema = Arc::new(Schema::new(vec![
        Field::new("profile_id", DataType::Utf8, true),
        Field::new("id_type", DataType::Utf8, true),
        Field::new("id_value", DataType::Utf8, true),
        Field::new("first_seen", time.clone(), true),
        Field::new("last_seen", time, true),
    ]));
    let text = |i: usize| {
        Arc::new(StringArray::from_iter_values(rows.iter().map(
            |r| match i {
                0 => r.0,
                1 => r.1,
                _ => r.2,
            },
        ))) as datafusion::arrow::array::ArrayRef
    };
    let none = || {
        Arc::new(TimestampMicrosecondArray::from(vec![None; rows.len()]).with_timezone("UTC"))
            as datafusion::arrow::array::ArrayRef
    };
    Ok(datafusion::arrow::record_batch::RecordBatch::try_new(
        schema,
        vec![text(0), text(1), text(2), none(), none()],
    )
    .map_err(datafusion::error::DataFusionError::from)?)
}

/// The identities of the profiles with those SQL traits start, as a plan over each trait's
/// recorded `sqltrait_<key>_started` table (for a script; a run holds them in memory).
pub(super) async fn started_plan(
    ctx: &SessionContext,
    identities: datafusion::prelude::DataFrame,
    sql_traits: &[SqlTraitResult],
) -> EngineResult<datafusion::prelude::DataFrame> {
    use datafusion::arrow::datatypes::TimeUnit;
    use datafusion::common::ScalarValue;
    use datafusion::logical_expr::cast;
    let time = DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()));
    let mut all: Option<datafusion::prelude::DataFrame> = None;
    for t in sql_traits {
        let one = ctx
            .table(stage::sql_trait_started(&t.key).as_str())
            .await?
            .select(vec![
                col("profile_id"),
                lit(t.id_type.as_str()).alias("id_type"),
                col("id_value"),
                cast(lit(ScalarValue::Null), time.clone()).alias("first_seen"),
                cast(lit(ScalarValue::Null), time.clone()).alias("last_seen"),
            ])?;
        all = Some(match all {
            Some(a) => a.union(one)?,
            None => one,
        });
    }
    Ok(match all {
        Some(all) => identities.union(all.distinct()?)?,
        None => identities,
    })
}
