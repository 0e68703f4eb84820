//! SQL traits inside a run (DESIGN.md §4): each `queries/<key>.sql` runs as a read-only query in
//! the run's session, its result is held to the contract (one identifier column, at most 25
//! trait columns, no null or duplicate identifiers), and its rows are merged into profiles
//! through the identity graph. Call [`run_sql_traits`] after the identity stage; each trait's
//! rows are left registered as `sqltrait_<key> (profile_id, <trait columns>)`
//! ([`stage::sql_trait`]).
//!
//! Identifier values are normalized exactly as the identity stage normalizes them (the same
//! occurrence plan, [`occurrences_from_raw`]), so `Ann@X.com` in a SQL trait finds the profile
//! that holds `ann@x.com`. Blocked values (`unknown`, `-1`, ...) are skipped, as the identity
//! stage skips them. An identifier the graph does not know starts a profile, named as the
//! identity stage would name a profile whose earliest identifier it is.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use datafusion::arrow::array::{
    Array, ArrayRef, AsArray, Int64Array, RecordBatch, StringArray, UInt32Array,
};
use datafusion::arrow::compute::{cast, concat_batches, take};
use datafusion::arrow::datatypes::{DataType, Field, Int32Type, Int64Type, Schema, SchemaRef};
use datafusion::catalog::MemTable;
use datafusion::common::JoinType;
use datafusion::logical_expr::{LogicalPlanBuilder, cast as cast_expr};
use datafusion::prelude::{SessionContext, col, lit};

use crate::analyze::sql_trait::{check_sql_trait, read_only};
use crate::error::{EngineError, EngineResult};
use crate::identity::{new_profile_id, text_column};
use crate::plan::identity::{IdType, ResolvedRules, occurrences_from_raw};
use crate::run::ctx::RunCtx;
use crate::run::sink::StageSink;
use crate::run::sql_keyed::{self, KeyedTrait};
use crate::run::tables::stage;
use crate::spec::{Space, SqlTraitDef, format_duration, parse_duration, slash_path};

/// The most trait columns a SQL trait may return besides its identifier column.
pub const MAX_SQL_TRAIT_COLUMNS: usize = 25;

/// How often a SQL trait runs when its sidecar sets no `schedule` (Segment's default).
pub const DEFAULT_SQL_TRAIT_SCHEDULE: &str = "0 */12 * * *";

/// How long a SQL trait may run when neither its sidecar nor space.yaml sets a timeout.
pub const DEFAULT_SQL_TRAIT_TIMEOUT: Duration = Duration::from_secs(3600);

/// How many example values an error lists.
const EXAMPLES: usize = 10;

/// The cron schedule of a SQL trait: its sidecar's, else [`DEFAULT_SQL_TRAIT_SCHEDULE`].
pub fn sql_trait_schedule(def: &SqlTraitDef) -> &str {
    def.schedule
        .as_deref()
        .unwrap_or(DEFAULT_SQL_TRAIT_SCHEDULE)
}

/// How long a SQL trait may run, and where that limit was set (for the error that names it):
/// its sidecar's `timeout`, else space.yaml's `sql_trait_timeout`, else
/// [`DEFAULT_SQL_TRAIT_TIMEOUT`].
pub fn sql_trait_timeout(space: &Space, def: &SqlTraitDef) -> (Duration, String) {
    let sidecar = slash_path(&def.file.with_extension("yaml"));
    if let Some(d) = def.timeout.as_deref().and_then(parse_duration) {
        return (d, sidecar);
    }
    if let Some(d) = space.sql_trait_timeout.as_deref().and_then(parse_duration) {
        return (d, "sql_trait_timeout in space.yaml".into());
    }
    (
        DEFAULT_SQL_TRAIT_TIMEOUT,
        format!("the default; set `timeout:` in {sidecar}"),
    )
}

/// One SQL trait after a run.
#[derive(Clone, Debug)]
pub struct SqlTraitResult {
    pub key: String,
    /// The session table it is registered as: `sqltrait_<key>`.
    pub table: String,
    /// The identifier type of its identifier column (also the column's name).
    pub id_type: String,
    /// The trait columns, in the query's order, with their types.
    pub columns: Vec<(String, DataType)>,
    /// Rows the query returned.
    pub rows: u64,
    /// Rows whose identifier is blocked (or normalizes to nothing), left out.
    pub skipped: u64,
    /// Profiles with a row in `table`.
    pub profiles: u64,
    /// Of those, profiles the identity graph does not know (started by this trait).
    pub new_profiles: u64,
    /// The profiles this trait started, with the identifier value that started each.
    pub new_identities: Vec<(String, String)>,
    /// `(profile_id, <trait columns>)`, one row per profile, sorted by profile id.
    pub provider: Arc<MemTable>,
    /// Whether the values were taken from the previous run's `profiles`, not evaluated.
    pub kept: bool,
    /// When evaluated for the changed identifiers only, how many (see
    /// [`crate::run::sql_keyed`]).
    pub keyed: Option<u64>,
    /// The query's rows before the merge (an evaluated trait's), for the next run.
    pub query_rows: Option<RecordBatch>,
}

/// Runs every SQL trait of `space` in `ctx`, which must hold the identity stage's tables
/// (`id_identities`). Before the queries run, the previous run's published tables are
/// registered under their names (`identities`, `profiles`, ...) unless the session already
/// has a table of that name.
pub async fn run_sql_traits(
    ctx: &SessionContext,
    space: &Space,
) -> EngineResult<Vec<SqlTraitResult>> {
    let (skip, keyed) = (Default::default(), Default::default());
    traits_into(ctx, &mut StageSink::Materialize, space, &skip, &keyed).await
}

/// Stage 3a: every SQL trait of the space, after the identity stage (see [`run_sql_traits`]);
/// those the run keeps (see [`crate::run::due`]) or that read nothing that changed (see
/// [`crate::run::sql_unchanged`]) with their previous values.
pub async fn run(ctx: &mut RunCtx<'_>) -> EngineResult<Vec<SqlTraitResult>> {
    ctx.unchanged_sql_traits = crate::run::sql_unchanged::find(ctx).await?;
    let kept = crate::run::due::not_evaluated(ctx);
    let keyed = crate::run::sql_keyed::find(ctx, &kept).await?;
    let mut evaluated = traits_into(&ctx.session, &mut ctx.sink, ctx.space, &kept, &keyed).await?;
    for r in &mut evaluated {
        if let Some(n) = r.keyed {
            ctx.keyed_sql_traits.insert(r.key.clone(), n);
        }
        if let Some(rows) = r.query_rows.take() {
            ctx.sql_trait_rows.push((r.key.clone(), rows));
        }
    }
    crate::run::due::with_kept_sql_traits(ctx, evaluated).await
}

async fn traits_into(
    ctx: &SessionContext,
    sink: &mut StageSink,
    space: &Space,
    skip: &std::collections::BTreeSet<String>,
    keyed: &BTreeMap<String, KeyedTrait>,
) -> EngineResult<Vec<SqlTraitResult>> {
    if space.sql_traits.iter().all(|d| skip.contains(&d.key)) {
        return Ok(Vec::new());
    }
    crate::run::register_published(ctx, space).await?;
    let rules = ResolvedRules::from_spec(&space.identity);
    let mut out = Vec::with_capacity(space.sql_traits.len());
    for def in space.sql_traits.iter().filter(|d| !skip.contains(&d.key)) {
        let (limit, set_in) = sql_trait_timeout(space, def);
        // On timeout the trait's future is dropped, and with it the DataFusion stream: its
        // spawned tasks are aborted, so an endless query stops using the machine.
        let keyed = keyed.get(&def.key).map(|k| (space, k));
        match tokio::time::timeout(limit, trait_into(ctx, sink, &rules, def, keyed)).await {
            Ok(result) => out.push(result?),
            Err(_) => {
                return Err(EngineError::Stopped(format!(
                    "SQL trait `{}` exceeded its {} timeout ({set_in}); the query was \
                     cancelled and the last good run stays published",
                    def.key,
                    format_duration(limit)
                )));
            }
        }
    }
    Ok(out)
}

fn problem(def: &SqlTraitDef, what: impl std::fmt::Display) -> EngineError {
    EngineError::Definition(format!(
        "SQL trait `{}` ({}): {what}",
        def.key,
        slash_path(&def.file)
    ))
}

/// `a, b, c` of at most [`EXAMPLES`] values, each in backticks.
fn examples<'a>(values: impl IntoIterator<Item = &'a str>) -> String {
    values
        .into_iter()
        .take(EXAMPLES)
        .map(|v| format!("`{v}`"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Runs one SQL trait; see [`run_sql_traits`].
pub async fn run_sql_trait(
    ctx: &SessionContext,
    rules: &ResolvedRules,
    def: &SqlTraitDef,
) -> EngineResult<SqlTraitResult> {
    trait_into(ctx, &mut StageSink::Materialize, rules, def, None).await
}

/// [`run_sql_trait`], recording into `sink`: a script gets the merge as plans (a run merges
/// in memory).
async fn trait_into(
    ctx: &SessionContext,
    sink: &mut StageSink,
    rules: &ResolvedRules,
    def: &SqlTraitDef,
    keyed: Option<(&Space, &KeyedTrait)>,
) -> EngineResult<SqlTraitResult> {
    if let Some(d) = check_sql_trait(def).into_iter().find(|d| d.is_error()) {
        // "SQL trait `k` is refused: ..." -> "SQL trait `k` (queries/k.sql) is refused: ..."
        let prefix = format!("SQL trait `{}` ", def.key);
        let rest = d.message.strip_prefix(&prefix).unwrap_or(&d.message);
        return Err(EngineError::Definition(format!(
            "SQL trait `{}` ({}) {rest}",
            def.key,
            slash_path(&def.file)
        )));
    }
    let df = ctx
        .sql_with_options(&def.sql, read_only())
        .await
        .map_err(|e| problem(def, e))?;

    // The contract on columns.
    let names: Vec<String> = df
        .schema()
        .fields()
        .iter()
        .map(|f| f.name().clone())
        .collect();
    let type_names: Vec<&str> = rules.types.iter().map(|t| t.id_type.as_str()).collect();
    let id_type: &IdType = match &def.id_column {
        Some(c) => {
            let t = rules
                .types
                .iter()
                .find(|t| &t.id_type == c)
                .ok_or_else(|| {
                    problem(
                        def,
                        format!(
                            "id_column `{c}` is not an identifier type of the space ({})",
                            type_names.join(", ")
                        ),
                    )
                })?;
            if !names.contains(c) {
                return Err(problem(
                    def,
                    format!(
                        "id_column is `{c}` but the query returns no column `{c}` (it returns {})",
                        examples(names.iter().map(String::as_str))
                    ),
                ));
            }
            t
        }
        None => {
            let ids: Vec<&IdType> = rules
                .types
                .iter()
                .filter(|t| names.contains(&t.id_type))
                .collect();
            match ids.as_slice() {
                [one] => one,
                [] => {
                    return Err(problem(
                        def,
                        format!(
                            "the query returns no identifier column; name exactly one column \
                             after an identifier type of the space ({})",
                            type_names.join(", ")
                        ),
                    ));
                }
                many => {
                    return Err(problem(
                        def,
                        format!(
                            "the query returns {} identifier columns ({}); return exactly one, \
                             or name the identifier in `id_column` of {}",
                            many.len(),
                            examples(many.iter().map(|t| t.id_type.as_str())),
                            slash_path(&def.file.with_extension("yaml"))
                        ),
                    ));
                }
            }
        }
    };
    let id_col = id_type.id_type.as_str();
    let mut seen = HashMap::new();
    for n in &names {
        *seen.entry(n.as_str()).or_insert(0usize) += 1;
    }
    if let Some(n) = names.iter().find(|n| seen[n.as_str()] > 1) {
        return Err(problem(
            def,
            format!("the query returns two columns named `{n}`; give each column its own name"),
        ));
    }
    let trait_names: Vec<&String> = names.iter().filter(|n| *n != id_col).collect();
    if trait_names.len() > MAX_SQL_TRAIT_COLUMNS {
        return Err(problem(
            def,
            format!(
                "the query returns {} trait columns besides `{id_col}`; at most \
                 {MAX_SQL_TRAIT_COLUMNS} are allowed",
                trait_names.len()
            ),
        ));
    }
    if trait_names.iter().any(|n| *n == "profile_id") {
        return Err(problem(
            def,
            "a trait column is named `profile_id`, which the merged table uses for the profile; \
             rename it",
        ));
    }

    // The rows, in one batch.
    let query = df.logical_plan().clone();
    let schema: SchemaRef = Arc::new(df.schema().as_arrow().clone());
    let incremental = match keyed {
        Some((space, k)) => sql_keyed::evaluate(ctx, space, def, k, (&schema, id_col))
            .await
            .map_err(|e| problem(def, e))?,
        None => None,
    };
    let keyed = incremental.as_ref().map(|(_, n)| *n);
    let batches = match incremental {
        Some((rows, _)) => rows,
        None => df.collect().await.map_err(|e| problem(def, e))?,
    };
    let schema = batches.first().map_or(schema, |b| b.schema());
    let all = concat_batches(&schema, &batches).map_err(|e| problem(def, e))?;
    let rows = all.num_rows();
    let id_index = schema.index_of(id_col).map_err(|e| problem(def, e))?;
    let raw_ids = all.column(id_index);
    if raw_ids.null_count() > 0 {
        return Err(problem(
            def,
            format!(
                "{} of {rows} rows have a null `{id_col}`; every row needs an identifier \
                 (filter them out with `WHERE {id_col} IS NOT NULL`)",
                raw_ids.null_count()
            ),
        ));
    }

    // Normalize with the identity stage's own occurrence plan: one type, read from one column.
    let raw_text: ArrayRef = cast(raw_ids, &DataType::Utf8).map_err(|e| problem(def, e))?;
    let raw_schema = Arc::new(Schema::new(vec![
        Field::new("message_id", DataType::Int64, false),
        Field::new("raw_0", DataType::Utf8, true),
    ]));
    let raw_batch = RecordBatch::try_new(
        raw_schema,
        vec![
            Arc::new(Int64Array::from_iter_values(0..rows as i64)),
            raw_text,
        ],
    )
    .map_err(|e| problem(def, e))?;
    let raw = LogicalPlanBuilder::from(ctx.read_batch(raw_batch)?.into_unoptimized_plan())
        .project(vec![
            col("message_id"),
            lit(0i64).alias("timestamp"),
            col("raw_0"),
        ])?
        .build()?;
    let one_type = ResolvedRules {
        types: vec![IdType {
            // `userId` is read from the `raw_0` column as it stands.
            from: vec!["userId".into()],
            ..id_type.clone()
        }],
        ..rules.clone()
    };
    let occ = occurrences_from_raw(ctx, raw, &one_type)?
        .ok_or_else(|| problem(def, "no identifier type to normalize with"))?;

    // Merge through the graph: (id_type, id_value) -> profile_id.
    if !ctx.table_exist(stage::ID_IDENTITIES)? {
        return Err(problem(
            def,
            "the identity stage has not run in this session (no `id_identities`)",
        ));
    }
    let graph = ctx.table(stage::ID_IDENTITIES).await?.select(vec![
        cast_expr(col("profile_id"), DataType::Utf8).alias("g_profile_id"),
        cast_expr(col("id_type"), DataType::Utf8).alias("g_type"),
        cast_expr(col("id_value"), DataType::Utf8).alias("g_value"),
    ])?;
    let merged = ctx
        .execute_logical_plan(occ)
        .await?
        .select(vec![
            col("message_id"),
            cast_expr(col("id_type"), DataType::Utf8).alias("id_type"),
            cast_expr(col("id_value"), DataType::Utf8).alias("id_value"),
            col("rank"),
            col("node"),
            col("violation"),
        ])?
        .join(
            graph,
            JoinType::Left,
            &["id_type", "id_value"],
            &["g_type", "g_value"],
            None,
        )?
        .select(vec![
            col("message_id"),
            col("id_value"),
            col("rank"),
            col("node"),
            col("violation"),
            col("g_profile_id"),
        ])?
        .collect()
        .await?;

    struct Row {
        row: u32,
        value: String,
        rank: i32,
        profile: String,
        new: bool,
    }
    let mut usable: Vec<Row> = Vec::new();
    let mut blocked: Vec<String> = Vec::new();
    for b in &merged {
        let row = b.column(0).as_primitive::<Int64Type>();
        let value = text_column(b.column(1))?;
        let rank = b.column(2).as_primitive::<Int32Type>();
        let node = b.column(3).as_primitive::<Int64Type>();
        let violation = b.column(4);
        let profile = text_column(b.column(5))?;
        for i in 0..b.num_rows() {
            if !violation.is_null(i) {
                blocked.push(value.value(i).to_string());
                continue;
            }
            let new = profile.is_null(i);
            usable.push(Row {
                row: row.value(i) as u32,
                value: value.value(i).to_string(),
                rank: rank.value(i),
                profile: if new {
                    new_profile_id(node.value(i))
                } else {
                    profile.value(i).to_string()
                },
                new,
            });
        }
    }
    let skipped = rows - usable.len();
    if skipped > 0 {
        blocked.sort();
        tracing::warn!(
            "SQL trait `{}`: {skipped} rows skipped, their `{id_col}` is blocked or empty \
             after normalization (e.g. {})",
            def.key,
            examples(blocked.iter().map(String::as_str))
        );
    }

    // No identifier twice (after normalization).
    let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
    for r in &usable {
        *counts.entry(r.value.as_str()).or_default() += 1;
    }
    let dups: Vec<(&str, usize)> = counts.into_iter().filter(|(_, n)| *n > 1).collect();
    if !dups.is_empty() {
        let shown = dups
            .iter()
            .take(EXAMPLES)
            .map(|(v, n)| format!("`{v}` ({n} rows)"))
            .collect::<Vec<_>>()
            .join(", ");
        return Err(problem(
            def,
            format!(
                "{} `{id_col}` values appear in more than one row: {shown}{}; each identifier \
                 may have one row (aggregate with GROUP BY {id_col})",
                dups.len(),
                if dups.len() > EXAMPLES { ", ..." } else { "" }
            ),
        ));
    }

    // One row per profile: the highest-priority identifier, then the smallest value.
    usable.sort_by(|a, b| (&a.profile, a.rank, &a.value).cmp(&(&b.profile, b.rank, &b.value)));
    usable.dedup_by(|later, first| later.profile == first.profile);
    let new_identities: Vec<(String, String)> = usable
        .iter()
        .filter(|r| r.new)
        .map(|r| (r.profile.clone(), r.value.clone()))
        .collect();
    let new_profiles = new_identities.len();
    let indices = UInt32Array::from_iter_values(usable.iter().map(|r| r.row));
    let mut fields = vec![Arc::new(Field::new("profile_id", DataType::Utf8, false))];
    let mut columns: Vec<ArrayRef> = vec![Arc::new(StringArray::from_iter_values(
        usable.iter().map(|r| r.profile.as_str()),
    ))];
    let mut trait_columns = Vec::new();
    for (i, f) in schema.fields().iter().enumerate() {
        if i == id_index {
            continue;
        }
        trait_columns.push((f.name().clone(), f.data_type().clone()));
        fields.push(Arc::new(Field::new(f.name(), f.data_type().clone(), true)));
        columns.push(take(all.column(i), &indices, None).map_err(|e| problem(def, e))?);
    }
    let out_schema = Arc::new(Schema::new(fields));
    let out = RecordBatch::try_new(out_schema.clone(), columns).map_err(|e| problem(def, e))?;
    let provider = Arc::new(MemTable::try_new(out_schema, vec![vec![out]])?);
    let table = stage::sql_trait(&def.key);
    if sink.recording() {
        let trait_names: Vec<String> = trait_columns.iter().map(|(n, _)| n.clone()).collect();
        let (merged, started) =
            super::sql_trait_merge::merge_plans(ctx, query, id_col, &one_type, &trait_names)
                .await?;
        sink.table(&table, &merged);
        let started_table = stage::sql_trait_started(&def.key);
        ctx.deregister_table(started_table.as_str())?;
        sink.view(ctx, &started_table, started).await?;
    }
    ctx.deregister_table(table.as_str())?;
    ctx.register_table(table.as_str(), provider.clone())?;
    Ok(SqlTraitResult {
        key: def.key.clone(),
        table,
        id_type: id_col.to_string(),
        columns: trait_columns,
        rows: rows as u64,
        skipped: skipped as u64,
        profiles: usable.len() as u64,
        new_profiles: new_profiles as u64,
        new_identities,
        provider,
        kept: false,
        keyed,
        query_rows: Some(all),
    })
}
