//! Evaluates touched profiles the way a batch run does, with the same plan builders over their
//! whole history: the profile row (`profile_base_plan` over their identifiers, custom traits,
//! the fused computed-traits aggregation, SQL traits as published) and then every users
//! audience (`audiences_plan`). Only the touched profiles' rows are in the inputs, so a tick
//! costs milliseconds however large the space is.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use datafusion::arrow::array::{
    Array, ArrayRef, AsArray, RecordBatch, StringBuilder, TimestampMicrosecondBuilder, UInt32Array,
};
use datafusion::arrow::compute::{cast, concat_batches, take};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use datafusion::catalog::MemTable;
use datafusion::datasource::provider_as_source;
use datafusion::logical_expr::{LogicalPlan, LogicalPlanBuilder, col, lit};
use datafusion::prelude::SessionContext;

use super::history::text;
use super::load::Published;
use crate::error::{EngineError, EngineResult};
use crate::plan::audiences::{AudienceInputs, audiences_plan, space_queries};
use crate::plan::identity::ResolvedRules;
use crate::plan::profiles::{
    IdColumn, TraitTable, custom_traits_plan, join_traits, profile_base_plan,
};
use crate::plan::traits::empty_value;
use crate::spec::{EntityType, Space};

/// Live values of some profiles: their rows (the `profiles` columns, in no particular order),
/// each profile's row, and each users audience's membership by row.
pub struct Evaluated {
    pub rows: RecordBatch,
    pub row_of: std::collections::HashMap<String, usize>,
    pub audiences: Vec<(String, Vec<bool>)>,
}

fn mem(name: &str, schema: SchemaRef, batches: Vec<RecordBatch>) -> EngineResult<LogicalPlan> {
    let t = MemTable::try_new(schema, vec![batches])?;
    Ok(LogicalPlanBuilder::scan(name, provider_as_source(Arc::new(t)), None)?.build()?)
}

fn time() -> DataType {
    DataType::Timestamp(TimeUnit::Microsecond, Some(Arc::from("UTC")))
}

/// Evaluates `profiles` (current ids) at `as_of_micros`.
pub async fn evaluate(
    ctx: &SessionContext,
    space: &Space,
    state: &Published,
    profiles: &[String],
    as_of_micros: i64,
) -> EngineResult<Evaluated> {
    let started = std::time::Instant::now();
    let rules = ResolvedRules::from_spec(&space.identity);
    // Their events (with those of the profiles merged into them), copied once.
    let none = BTreeSet::new();
    let all = state.history.batch_of_all(profiles.iter().map(|p| {
        let absorbed = state.graph.profiles.get(p).map(|m| &m.absorbed);
        (p.as_str(), absorbed.unwrap_or(&none))
    }))?;
    let n_events = all.num_rows();
    let pe = mem("profile_events", state.history.schema(), vec![all])?;
    tracing::debug!(
        secs = started.elapsed().as_secs_f64(),
        events = n_events,
        "live evaluate: history read"
    );
    // Their identifiers.
    let id_schema = Arc::new(Schema::new(vec![
        Field::new("profile_id", DataType::Utf8, false),
        Field::new("id_type", DataType::Utf8, false),
        Field::new("id_value", DataType::Utf8, false),
        Field::new("first_seen", time(), false),
        Field::new("last_seen", time(), false),
    ]));
    let (mut p, mut t, mut v) = (
        StringBuilder::new(),
        StringBuilder::new(),
        StringBuilder::new(),
    );
    let (mut f, mut l) = (
        TimestampMicrosecondBuilder::new().with_timezone("UTC"),
        TimestampMicrosecondBuilder::new().with_timezone("UTC"),
    );
    for id in profiles {
        let Some(m) = state.graph.profiles.get(id) else {
            continue;
        };
        for ((ty, val), s) in &m.ids {
            p.append_value(id);
            t.append_value(ty);
            v.append_value(val);
            f.append_value(s.first);
            l.append_value(s.last);
        }
    }
    let cols: Vec<ArrayRef> = vec![
        Arc::new(p.finish()),
        Arc::new(t.finish()),
        Arc::new(v.finish()),
        Arc::new(f.finish()),
        Arc::new(l.finish()),
    ];
    let ids_batch = RecordBatch::try_new(id_schema.clone(), cols)?;
    let identities = mem("identities", id_schema, vec![ids_batch])?;
    let id_cols = IdColumn::of_rules(&rules);
    let base = profile_base_plan(identities, &id_cols)?;
    let mut tables = Vec::new();
    if !state.custom.is_empty() {
        let calls = LogicalPlanBuilder::from(pe.clone())
            .filter(col("type").eq(lit("identify")))?
            .build()?;
        tables.push(TraitTable {
            plan: custom_traits_plan(calls, "profile_id", &state.custom)?,
            key: "profile_id".into(),
            columns: state
                .custom
                .iter()
                .map(|c| (c.column.clone(), None))
                .collect(),
        });
    }
    if let Some((plan, cols)) = crate::run::stages::profiles::traits_table(
        space,
        EntityType::Users,
        pe.clone(),
        "profile_id",
        as_of_micros,
        &|_| true,
    )? {
        tables.push(TraitTable {
            plan,
            key: "profile_id".into(),
            columns: cols
                .iter()
                .map(|c| (c.key.clone(), empty_value(c.reducer)))
                .collect(),
        });
    }
    // SQL traits (batch) and computed traits edited since the run: as published.
    let as_published: Vec<String> = state
        .sql_columns
        .iter()
        .chain(&state.kept_traits)
        .cloned()
        .collect();
    if !as_published.is_empty() {
        tables.push(TraitTable {
            plan: published_columns(state, profiles, &as_published)?,
            key: "profile_id".into(),
            columns: as_published.iter().map(|c| (c.clone(), None)).collect(),
        });
    }
    let rows_plan = join_traits(base, "profile_id", tables)?;
    // In the published column order and types; custom traits typed by their kinds now (a key
    // first seen live is a new column).
    let published = state.profiles.schema();
    let mut fields: Vec<Field> = Vec::new();
    for f in published.fields() {
        match state.custom.iter().find(|c| &c.column == f.name()) {
            Some(c) => fields.push(Field::new(f.name(), c.data_type.clone(), true)),
            None => fields.push(f.as_ref().clone()),
        }
    }
    for c in &state.custom {
        if published.index_of(&c.column).is_err() {
            fields.push(Field::new(&c.column, c.data_type.clone(), true));
        }
    }
    let pschema = Arc::new(Schema::new(fields));
    let rows_plan = LogicalPlanBuilder::from(rows_plan)
        .project(
            pschema
                .fields()
                .iter()
                .map(|f| {
                    datafusion::logical_expr::cast(col(f.name()), f.data_type().clone())
                        .alias(f.name())
                })
                .collect::<Vec<_>>(),
        )?
        .build()?;
    let df = ctx.execute_logical_plan(rows_plan).await?;
    let rows = concat_batches(&pschema, &df.collect().await?)?;
    tracing::debug!(
        secs = started.elapsed().as_secs_f64(),
        "live evaluate: traits"
    );
    // Audiences over those rows.
    let parsed_aud = crate::run::stages::audiences::parsed_audiences(space)?;
    let users: Vec<_> = space_queries(space, &parsed_aud)
        .into_iter()
        .filter(|q| q.entity == EntityType::Users)
        .collect();
    let mut audiences = Vec::new();
    let order = index_of(&rows)?;
    if !users.is_empty() {
        let mut data_typed: BTreeSet<String> =
            state.custom.iter().map(|c| c.column.clone()).collect();
        data_typed.extend(state.sql_columns.iter().cloned());
        let inputs = AudienceInputs {
            profiles: mem("cohort_profiles", pschema.clone(), vec![rows.clone()])?,
            events: pe,
            accounts: state.accounts.clone(),
            links: state.links.clone(),
            data_typed,
            lenient: false,
        };
        let plans = audiences_plan(&inputs, &users, as_of_micros, false)
            .map_err(|e| EngineError::Definition(e.message))?;
        let out = ctx
            .execute_logical_plan(plans.users)
            .await?
            .collect()
            .await?;
        let mut flags: BTreeMap<String, Vec<bool>> = users
            .iter()
            .map(|q| (q.key.to_string(), vec![false; rows.num_rows()]))
            .collect();
        for b in &out {
            let ids = text(b.column(b.schema().index_of("profile_id")?))?;
            for (key, f) in flags.iter_mut() {
                let c = cast(b.column(b.schema().index_of(key)?), &DataType::Boolean)?;
                let c = c.as_boolean();
                for i in 0..b.num_rows() {
                    if let Some(&r) = order.get(ids.value(i)) {
                        f[r] = c.is_valid(i) && c.value(i);
                    }
                }
            }
        }
        audiences = flags.into_iter().collect();
    }
    tracing::debug!(
        secs = started.elapsed().as_secs_f64(),
        "live evaluate: audiences"
    );
    Ok(Evaluated {
        rows,
        row_of: order,
        audiences,
    })
}

/// Profile id -> row.
fn index_of(rows: &RecordBatch) -> EngineResult<std::collections::HashMap<String, usize>> {
    let ids = text(rows.column(rows.schema().index_of("profile_id")?))?;
    Ok((0..ids.len())
        .map(|i| (ids.value(i).to_string(), i))
        .collect())
}

/// `profile_id` and `columns` of the published rows of `profiles`: a profile's own value, or
/// when it has none, that of a profile merged into it (a SQL trait's row follows its
/// identifier, as the batch run joins it through the graph).
fn published_columns(
    state: &Published,
    profiles: &[String],
    columns: &[String],
) -> EngineResult<LogicalPlan> {
    let schema = state.profiles.schema();
    let rows_of = |p: &String| -> Vec<u32> {
        let absorbed = state.graph.profiles.get(p).map(|m| m.absorbed.clone());
        std::iter::once(p)
            .chain(absorbed.iter().flatten())
            .filter_map(|id| state.profile_rows.get(id).map(|&r| r as u32))
            .collect()
    };
    let candidates: Vec<(&str, Vec<u32>)> = profiles
        .iter()
        .map(|p| (p.as_str(), rows_of(p)))
        .filter(|(_, r)| !r.is_empty())
        .collect();
    let mut fields = vec![Field::new("profile_id", DataType::Utf8, false)];
    let mut cols: Vec<ArrayRef> = vec![Arc::new(datafusion::arrow::array::StringArray::from(
        candidates.iter().map(|(p, _)| *p).collect::<Vec<_>>(),
    ))];
    for c in columns {
        let i = schema.index_of(c)?;
        let values = state.profiles.column(i);
        let idx = UInt32Array::from(
            candidates
                .iter()
                .map(|(_, rows)| {
                    rows.iter()
                        .copied()
                        .find(|&r| values.is_valid(r as usize))
                        .unwrap_or(rows[0])
                })
                .collect::<Vec<_>>(),
        );
        fields.push(schema.field(i).clone().with_nullable(true));
        cols.push(take(values, &idx, None)?);
    }
    let schema = Arc::new(Schema::new(fields));
    let b = RecordBatch::try_new(schema.clone(), cols)?;
    mem("sql_traits", schema, vec![b])
}
