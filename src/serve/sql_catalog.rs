//! Postgres' catalog as clients read it. datafusion-pg-catalog ships `pg_index` and
//! `pg_constraint` with their vector and array columns (`indkey`, `conkey`, …) as text, so
//! the queries that SQLAlchemy, JDBC and psql send to find keys and indexes
//! (`unnest(indkey)`, `generate_subscripts(conkey, 1)`) cannot be planned. This wraps the
//! `pg_catalog` schema and serves those two tables with the columns as arrays, as Postgres
//! types them (`int2vector`/`int2[]` as smallint arrays, `oidvector`/`oid[]` as oid arrays),
//! and `pg_class` with the `reloptions` column it lacks.

use std::collections::HashMap;
use std::sync::Arc;

use async_trait::async_trait;
use datafusion::arrow::array::{Array, ArrayRef, ListBuilder, PrimitiveBuilder};
use datafusion::arrow::array::{AsArray, RecordBatch};
use datafusion::arrow::datatypes::{
    ArrowPrimitiveType, DataType, Field, Int16Type, Int32Type, Schema,
};
use datafusion::catalog::{MemTable, SchemaProvider, TableProvider};
use datafusion::error::{DataFusionError, Result};
use datafusion::prelude::SessionContext;

/// The array columns of the tables this serves, and their element type.
const ARRAYS: &[(&str, &[(&str, DataType)])] = &[
    (
        "pg_index",
        &[
            ("indkey", DataType::Int16),
            ("indoption", DataType::Int16),
            ("indclass", DataType::Int32),
            ("indcollation", DataType::Int32),
        ],
    ),
    (
        "pg_constraint",
        &[
            ("conkey", DataType::Int16),
            ("confkey", DataType::Int16),
            ("confdelsetcols", DataType::Int16),
            ("conpfeqop", DataType::Int32),
            ("conppeqop", DataType::Int32),
            ("conffeqop", DataType::Int32),
            ("conexclop", DataType::Int32),
        ],
    ),
];

/// Replaces the `pg_catalog` schema of the context's catalog `catalog` with one whose
/// `pg_index` and `pg_constraint` have their arrays typed.
pub(super) async fn patch(ctx: &SessionContext, catalog: &str) -> Result<()> {
    let cat = ctx
        .catalog(catalog)
        .ok_or_else(|| DataFusionError::Plan(format!("no catalog {catalog}")))?;
    let inner = cat
        .schema("pg_catalog")
        .ok_or_else(|| DataFusionError::Plan("no pg_catalog".into()))?;
    let mut tables = HashMap::new();
    for (name, columns) in ARRAYS {
        let Some(table) = inner.table(name).await? else {
            continue;
        };
        let batches = datafusion::physical_plan::collect(
            table.scan(&ctx.state(), None, &[], None).await?,
            ctx.task_ctx(),
        )
        .await?;
        tables.insert(name.to_string(), typed(table.schema(), &batches, columns)?);
    }
    cat.register_schema("pg_catalog", Arc::new(PgCatalog { inner, tables }))?;
    Ok(())
}

/// A table's rows with the named text columns parsed into arrays.
fn typed(
    schema: Arc<Schema>,
    batches: &[RecordBatch],
    columns: &[(&str, DataType)],
) -> Result<Arc<dyn TableProvider>> {
    let element = |name: &str| {
        columns
            .iter()
            .find(|(c, _)| *c == name)
            .map(|(_, t)| t.clone())
    };
    let fields: Vec<Field> = schema
        .fields()
        .iter()
        .map(|f| match element(f.name()) {
            Some(t) if f.data_type() == &DataType::Utf8 => Field::new(
                f.name(),
                DataType::List(Arc::new(Field::new_list_field(t, true))),
                true,
            ),
            _ => f.as_ref().clone(),
        })
        .collect();
    let out_schema = Arc::new(Schema::new(fields));
    let mut out = Vec::new();
    for batch in batches {
        let columns: Vec<ArrayRef> = batch
            .columns()
            .iter()
            .zip(schema.fields())
            .map(|(col, f)| match element(f.name()) {
                Some(t) if f.data_type() == &DataType::Utf8 => parse_arrays(col.as_ref(), &t),
                _ => col.clone(),
            })
            .collect();
        out.push(RecordBatch::try_new(out_schema.clone(), columns)?);
    }
    Ok(Arc::new(MemTable::try_new(out_schema, vec![out])?))
}

/// Postgres' text forms of `int2vector` (`1 2`) and arrays (`{1,2}`) as list arrays.
fn parse_arrays(col: &dyn Array, element: &DataType) -> ArrayRef {
    match element {
        DataType::Int16 => lists::<Int16Type>(col),
        _ => lists::<Int32Type>(col),
    }
}

fn lists<T: ArrowPrimitiveType>(col: &dyn Array) -> ArrayRef
where
    T::Native: TryFrom<i64>,
{
    let mut b = ListBuilder::new(PrimitiveBuilder::<T>::new());
    for v in col.as_string::<i32>().iter() {
        let Some(s) = v else {
            b.append(false);
            continue;
        };
        let numbers = s
            .trim_matches(|c| c == '{' || c == '}')
            .split(|c: char| c == ',' || c.is_whitespace())
            .filter_map(|n| n.parse::<i64>().ok())
            .filter_map(|n| T::Native::try_from(n).ok());
        for n in numbers {
            b.values().append_value(n);
        }
        b.append(true);
    }
    Arc::new(b.finish())
}

/// `pg_class` with the `reloptions` column it lacks (psql's `\d+` and SQLAlchemy's index
/// reflection read it): no table here has storage options, so it is null.
fn with_reloptions(pg_class: Arc<dyn TableProvider>) -> Result<Arc<dyn TableProvider>> {
    use datafusion::common::Column;
    use datafusion::datasource::{ViewTable, provider_as_source};
    use datafusion::logical_expr::{Expr, LogicalPlanBuilder, lit};
    let list = DataType::List(Arc::new(Field::new_list_field(DataType::Utf8, true)));
    let mut columns: Vec<_> = pg_class
        .schema()
        .fields()
        .iter()
        .map(|f| Expr::Column(Column::new(Some("pg_class"), f.name())))
        .collect();
    columns.push(lit(datafusion::common::ScalarValue::try_from(&list)?).alias("reloptions"));
    let plan = LogicalPlanBuilder::scan("pg_class", provider_as_source(pg_class), None)?
        .project(columns)?
        .build()?;
    Ok(Arc::new(ViewTable::new(plan, None)))
}

/// datafusion-pg-catalog's `pg_catalog` with some tables served from here.
#[derive(Debug)]
struct PgCatalog {
    inner: Arc<dyn SchemaProvider>,
    tables: HashMap<String, Arc<dyn TableProvider>>,
}

#[async_trait]
impl SchemaProvider for PgCatalog {
    fn table_names(&self) -> Vec<String> {
        self.inner.table_names()
    }

    async fn table(&self, name: &str) -> Result<Option<Arc<dyn TableProvider>>> {
        match self.tables.get(name) {
            Some(t) => Ok(Some(t.clone())),
            None if name == "pg_class" => match self.inner.table(name).await? {
                Some(t) => with_reloptions(t).map(Some),
                None => Ok(None),
            },
            None => self.inner.table(name).await,
        }
    }

    fn table_exist(&self, name: &str) -> bool {
        self.inner.table_exist(name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vectors_and_arrays_parse_as_postgres_prints_them() {
        let col = datafusion::arrow::array::StringArray::from(vec![
            Some("1 2"),
            Some("{3,4}"),
            Some(""),
            None,
        ]);
        let out = parse_arrays(&col, &DataType::Int16);
        let list = out.as_list::<i32>();
        let values = |i: usize| -> Vec<i16> {
            list.value(i)
                .as_primitive::<datafusion::arrow::datatypes::Int16Type>()
                .values()
                .to_vec()
        };
        assert_eq!(values(0), vec![1, 2]);
        assert_eq!(values(1), vec![3, 4]);
        assert!(values(2).is_empty());
        assert!(list.is_null(3));
    }
}
