//! Compiled plans as text: `cohort compile` shows each definition's logical plan and the SQL
//! DataFusion's Unparser writes for it in a chosen dialect. SQL is an output here, never the
//! way plans are built.
//!
//! The plans are built over an empty `profile_events` table with the columns a run gives it,
//! so compiling needs no data and no previous run.

use std::sync::Arc;

use datafusion::arrow::datatypes::{DataType, Field, Schema, TimeUnit};
use datafusion::catalog::MemTable;
use datafusion::common::Result;
use datafusion::logical_expr::{LogicalPlan, LogicalPlanBuilder};
use datafusion::prelude::SessionContext;
use datafusion::sql::sqlparser::ast;
use datafusion::sql::unparser::Unparser;
use datafusion::sql::unparser::dialect::{
    CharacterLengthStyle, CustomDialect, CustomDialectBuilder, DefaultDialect, Dialect,
    DuckDBDialect, IntervalStyle, PostgreSqlDialect,
};

/// The SQL dialects `cohort compile` writes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SqlDialect {
    DataFusion,
    Postgres,
    DuckDb,
    BigQuery,
    Snowflake,
    Spark,
    Databricks,
}

impl SqlDialect {
    pub const ALL: [SqlDialect; 7] = [
        SqlDialect::DataFusion,
        SqlDialect::Postgres,
        SqlDialect::DuckDb,
        SqlDialect::BigQuery,
        SqlDialect::Snowflake,
        SqlDialect::Spark,
        SqlDialect::Databricks,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            SqlDialect::DataFusion => "datafusion",
            SqlDialect::Postgres => "postgres",
            SqlDialect::DuckDb => "duckdb",
            SqlDialect::BigQuery => "bigquery",
            SqlDialect::Snowflake => "snowflake",
            SqlDialect::Spark => "spark",
            SqlDialect::Databricks => "databricks",
        }
    }

    pub fn parse(s: &str) -> Option<SqlDialect> {
        SqlDialect::ALL.into_iter().find(|d| d.as_str() == s)
    }

    fn unparser_dialect(self) -> Box<dyn Dialect> {
        match self {
            SqlDialect::DataFusion => Box::new(DefaultDialect {}),
            SqlDialect::Postgres => Box::new(PostgreSqlDialect {}),
            SqlDialect::DuckDb => Box::new(DuckDBDialect::new()),
            SqlDialect::BigQuery => Box::new(bigquery_dialect()),
            SqlDialect::Snowflake => Box::new(snowflake_dialect()),
            SqlDialect::Spark | SqlDialect::Databricks => Box::new(spark_dialect()),
        }
    }

    /// The character the dialect quotes identifiers with.
    pub fn identifier_quote(self) -> char {
        match self {
            SqlDialect::Spark | SqlDialect::Databricks | SqlDialect::BigQuery => '`',
            _ => '"',
        }
    }
}

/// Spark SQL for the Unparser: identifiers in backticks, `STRING` (Spark refuses a `VARCHAR`
/// without a length), `TIMESTAMP` for times with or without a zone (a Spark session keeps
/// times in UTC once its time zone is UTC) and `INTERVAL 90 DAY`.
fn spark_dialect() -> CustomDialect {
    let timestamp = ast::DataType::Timestamp(None, ast::TimezoneInfo::None);
    CustomDialectBuilder::new()
        .with_identifier_quote_style('`')
        .with_utf8_cast_dtype(ast::DataType::String(None))
        .with_large_utf8_cast_dtype(ast::DataType::String(None))
        .with_int64_cast_dtype(ast::DataType::BigInt(None))
        .with_timestamp_cast_dtype(timestamp.clone(), timestamp)
        .with_interval_style(IntervalStyle::MySQL)
        .with_character_length_style(CharacterLengthStyle::Length)
        .with_requires_derived_table_alias(true)
        .build()
}

/// Snowflake for the Unparser: `TIMESTAMP` (NTZ) for every time, the script's session being
/// in UTC; no column aliases on a derived table.
fn snowflake_dialect() -> CustomDialect {
    let timestamp = ast::DataType::Timestamp(None, ast::TimezoneInfo::None);
    CustomDialectBuilder::new()
        .with_identifier_quote_style('"')
        .with_timestamp_cast_dtype(timestamp.clone(), timestamp)
        .with_character_length_style(CharacterLengthStyle::Length)
        .with_supports_column_alias_in_table_alias(false)
        .with_requires_derived_table_alias(true)
        .build()
}

/// GoogleSQL for the Unparser: backticks, its own type names (`STRING`, `INT64`, `FLOAT64`),
/// `TIMESTAMP` for every time and `INTERVAL 90 DAY`; no column aliases on a derived table.
fn bigquery_dialect() -> CustomDialect {
    let timestamp = ast::DataType::Timestamp(None, ast::TimezoneInfo::None);
    CustomDialectBuilder::new()
        .with_identifier_quote_style('`')
        .with_utf8_cast_dtype(ast::DataType::String(None))
        .with_large_utf8_cast_dtype(ast::DataType::String(None))
        .with_int64_cast_dtype(ast::DataType::Int64)
        .with_int32_cast_dtype(ast::DataType::Int64)
        .with_float64_ast_dtype(ast::DataType::Float64)
        .with_timestamp_cast_dtype(timestamp.clone(), timestamp)
        .with_interval_style(IntervalStyle::MySQL)
        .with_character_length_style(CharacterLengthStyle::Length)
        .with_supports_column_alias_in_table_alias(false)
        .with_requires_derived_table_alias(true)
        .build()
}

/// `plan` as SQL text in `dialect`, pretty-printed.
pub fn plan_to_sql(plan: &LogicalPlan, dialect: SqlDialect) -> Result<String> {
    Ok(plan_statement(plan, dialect)?.to_string())
}

/// `plan` as a SQL statement of `dialect`, pretty-printed.
pub fn plan_statement(plan: &LogicalPlan, dialect: SqlDialect) -> Result<ast::Statement> {
    let d = dialect.unparser_dialect();
    let mut sql = Unparser::new(d.as_ref())
        .with_pretty(true)
        .plan_to_sql(plan)?;
    restore_time_order(&mut sql, dialect.identifier_quote());
    Ok(sql)
}

/// DataFusion 55's Unparser drops an aggregate's `ORDER BY`. Cohort orders only `first_value`
/// and `last_value`, always by `(timestamp, message_id)`, so the clause is put back here.
fn restore_time_order(sql: &mut ast::Statement, quote: char) {
    use datafusion::sql::sqlparser::ast::{
        FunctionArgumentClause, FunctionArguments, Ident, OrderByExpr, OrderByOptions,
        visit_expressions_mut,
    };
    let _ = visit_expressions_mut(sql, |e| {
        if let ast::Expr::Function(f) = e
            && matches!(
                f.name.to_string().to_lowercase().as_str(),
                "first_value" | "last_value"
            )
            && let FunctionArguments::List(list) = &mut f.args
            && list.clauses.is_empty()
        {
            let by = |c: &str| OrderByExpr {
                expr: ast::Expr::Identifier(Ident::with_quote(quote, c)),
                options: OrderByOptions {
                    asc: Some(true),
                    nulls_first: Some(false),
                },
                with_fill: None,
            };
            list.clauses = vec![FunctionArgumentClause::OrderBy(vec![
                by("timestamp"),
                by("message_id"),
            ])];
        }
        std::ops::ControlFlow::<()>::Continue(())
    });
}

/// The columns of `profile_events`: every good event of the run with its profile.
pub fn profile_events_schema() -> Arc<Schema> {
    let text = |n: &str| Field::new(n, DataType::Utf8, true);
    Arc::new(Schema::new(vec![
        Field::new("message_id", DataType::Utf8, false),
        text("type"),
        text("event"),
        Field::new(
            "timestamp",
            DataType::Timestamp(TimeUnit::Microsecond, Some(Arc::from("UTC"))),
            false,
        ),
        text("group_id"),
        text("properties"),
        text("traits"),
        text("context"),
        Field::new("profile_id", DataType::Utf8, false),
    ]))
}

/// A session with an empty `profile_events` table registered, and a scan of it.
pub fn compile_session() -> Result<(SessionContext, LogicalPlan)> {
    let ctx = SessionContext::new();
    for f in crate::functions::all() {
        ctx.register_udf(f.as_ref().clone());
    }
    for f in crate::functions::aggregates::all() {
        ctx.register_udaf(f.as_ref().clone());
    }
    let schema = profile_events_schema();
    ctx.register_table(
        "profile_events",
        Arc::new(MemTable::try_new(schema.clone(), vec![vec![]])?),
    )?;
    let provider = datafusion::datasource::provider_as_source(Arc::new(MemTable::try_new(
        schema,
        vec![vec![]],
    )?));
    let scan = LogicalPlanBuilder::scan("profile_events", provider, None)?.build()?;
    Ok((ctx, scan))
}

/// A problem compiling a space: the rendered diagnostic text.
#[derive(Debug)]
pub struct CompileFailure(pub String);

/// Every computed trait of `space` as text: each trait's own plan and SQL, then the fused
/// plan of each entity type (the one a run executes) and its SQL, in `dialect`.
pub fn render_space(
    space: &crate::spec::Space,
    dialect: SqlDialect,
    as_of_micros: i64,
) -> std::result::Result<String, CompileFailure> {
    use crate::plan::traits::{TraitQuery, computed_traits_plan};
    use crate::spec::{Diagnostic, EntityType, query};
    use std::fmt::Write;

    let fail = |d: Diagnostic| CompileFailure(d.render(&space.root));
    let df = |e: datafusion::error::DataFusionError| CompileFailure(format!("error: {e}\n"));
    let (_, scan) = compile_session().map_err(df)?;
    let mut out = String::new();
    let _ = writeln!(
        out,
        "-- space `{}`, dialect {}, as of {}\n",
        space.name,
        dialect.as_str(),
        chrono::DateTime::from_timestamp_micros(as_of_micros)
            .map(|t| t.to_rfc3339())
            .unwrap_or_default()
    );
    for entity in [EntityType::Users, EntityType::Accounts] {
        let key = match entity {
            EntityType::Users => "profile_id",
            EntityType::Accounts => "account_id",
        };
        let input = match entity {
            EntityType::Users => scan.clone(),
            EntityType::Accounts => LogicalPlanBuilder::from(scan.clone())
                .project(vec![
                    datafusion::prelude::col("message_id"),
                    datafusion::prelude::col("type"),
                    datafusion::prelude::col("event"),
                    datafusion::prelude::col("timestamp"),
                    datafusion::prelude::col("properties"),
                    datafusion::prelude::col("context"),
                    datafusion::prelude::col("group_id").alias("account_id"),
                ])
                .and_then(|b| b.build())
                .map_err(df)?,
        };
        let mut parsed = Vec::new();
        for def in space.traits.iter().filter(|t| t.entity == entity) {
            parsed.push((def, query::parsed_trait(def).map_err(fail)?));
        }
        if parsed.is_empty() {
            continue;
        }
        let compile = |items: &[TraitQuery<'_>]| {
            computed_traits_plan(input.clone(), key, items, as_of_micros).map_err(|e| {
                let def = parsed
                    .iter()
                    .find(|(d, _)| e.key.as_deref() == Some(d.key.as_str()))
                    .map(|(d, _)| *d);
                let loc = def.map(|d| query::span_loc(&d.query_loc, &d.query, e.span));
                fail(Diagnostic::error(loc, e.message.clone()))
            })
        };
        for (def, q) in &parsed {
            let (plan, cols) = compile(&[TraitQuery {
                key: &def.key,
                query: q,
            }])?;
            let _ = writeln!(
                out,
                "-- trait `{}` ({}, {}): {}\n-- plan:\n{}\n-- sql:\n{};\n",
                def.key,
                entity.as_str(),
                cols[0].data_type,
                def.query.trim(),
                indent(&plan.display_indent().to_string()),
                plan_to_sql(&plan, dialect).map_err(df)?
            );
        }
        let items: Vec<TraitQuery<'_>> = parsed
            .iter()
            .map(|(d, q)| TraitQuery {
                key: &d.key,
                query: q,
            })
            .collect();
        let (plan, _) = compile(&items)?;
        let _ = writeln!(
            out,
            "-- every computed trait of {} in one aggregation (what a run executes):\n-- plan:\n{}\n-- sql:\n{};\n",
            entity.as_str(),
            indent(&plan.display_indent().to_string()),
            plan_to_sql(&plan, dialect).map_err(df)?
        );
    }
    render_audiences(space, dialect, as_of_micros, &scan, &mut out)?;
    Ok(out)
}

/// The audiences' plans (users, then accounts) and their SQL, appended to `out`.
fn render_audiences(
    space: &crate::spec::Space,
    dialect: SqlDialect,
    as_of_micros: i64,
    events: &LogicalPlan,
    out: &mut String,
) -> std::result::Result<(), CompileFailure> {
    use crate::plan::audiences::{audiences_plan, error_diagnostic, space_queries, static_inputs};
    use crate::spec::{Diagnostic, query};
    use std::fmt::Write;
    if space.audiences.is_empty() {
        return Ok(());
    }
    let fail = |d: Diagnostic| CompileFailure(d.render(&space.root));
    let df = |e: datafusion::error::DataFusionError| CompileFailure(format!("error: {e}\n"));
    let mut parsed = Vec::new();
    for d in &space.audiences {
        parsed.push(query::parsed_audience(d).map_err(fail)?);
    }
    let queries = space_queries(space, &parsed);
    let inputs = static_inputs(space, events.clone()).map_err(df)?;
    let plans = audiences_plan(&inputs, &queries, as_of_micros, false)
        .map_err(|e| fail(error_diagnostic(space, &e)))?;
    let _ = writeln!(out, "-- audiences, in evaluation order:");
    for k in &plans.order {
        if let Some(d) = space.audiences.iter().find(|d| &d.key == k) {
            let _ = writeln!(
                out,
                "--   {} ({}{}): {}",
                d.key,
                d.entity.as_str(),
                if d.include_anonymous {
                    ""
                } else {
                    ", with a user_id"
                },
                d.query.trim()
            );
        }
    }
    let _ = writeln!(out);
    let mut sections = vec![("users", &plans.users)];
    if let Some(a) = &plans.accounts {
        sections.push(("accounts", a));
    }
    for (entity, plan) in sections {
        let _ = writeln!(
            out,
            "-- every {entity} audience in one plan (what a run executes):\n-- plan:\n{}\n-- sql:\n{};\n",
            indent(&plan.display_indent().to_string()),
            plan_to_sql(plan, dialect).map_err(df)?
        );
    }
    Ok(())
}

fn indent(s: &str) -> String {
    s.lines()
        .map(|l| format!("--   {l}\n"))
        .collect::<String>()
        .trim_end()
        .to_string()
}
