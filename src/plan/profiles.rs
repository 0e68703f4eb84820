//! The plans that assemble profiles and accounts: custom traits (latest value per key wins),
//! external ids per identifier type, first and last seen, and the join of every trait column
//! onto every profile (so a profile without events still gets count 0 and nulls).

use std::sync::Arc;

use datafusion::arrow::datatypes::{DataType, Field, TimeUnit};
use datafusion::common::{Column, JoinType, Result};
use datafusion::functions_aggregate::expr_fn as agg;
use datafusion::functions_nested::expr_fn::array_sort;
use datafusion::logical_expr::{
    Expr, ExprFunctionExt, LogicalPlan, LogicalPlanBuilder, TryCast, col, lit,
};
use datafusion::prelude::coalesce;

use crate::functions::{json_get, json_kind};

/// A custom trait found in the data: the JSON key, its column name and its type.
#[derive(Clone, Debug, PartialEq)]
pub struct CustomTrait {
    pub key: String,
    pub column: String,
    pub data_type: DataType,
}

/// The column type of a custom trait whose non-null values had these JSON kinds
/// (`cohort_json_kind` names): all integers int64, numbers float64, all booleans boolean,
/// all RFC 3339 times timestamp, anything else (strings, mixes, objects, arrays as JSON text) utf8.
pub fn custom_trait_type<'a>(kinds: impl IntoIterator<Item = &'a str>) -> DataType {
    let kinds: Vec<&str> = kinds.into_iter().filter(|k| *k != "null").collect();
    if kinds.is_empty() {
        return DataType::Utf8;
    }
    if kinds.iter().all(|k| *k == "int") {
        DataType::Int64
    } else if kinds.iter().all(|k| matches!(*k, "int" | "float")) {
        DataType::Float64
    } else if kinds.iter().all(|k| *k == "bool") {
        DataType::Boolean
    } else if kinds.iter().all(|k| *k == "timestamp") {
        DataType::Timestamp(TimeUnit::Microsecond, Some(Arc::from("UTC")))
    } else {
        DataType::Utf8
    }
}

/// A name usable as a column in Delta and in SQL without quoting surprises: characters
/// other than letters, digits and `_` become `_`.
pub fn column_name(key: &str) -> String {
    let mut s: String = key
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect();
    if s.is_empty() || s.starts_with(|c: char| c.is_ascii_digit()) {
        s.insert(0, '_');
    }
    s
}

fn typed(text: Expr, t: &DataType) -> Expr {
    if *t == DataType::Utf8 {
        text
    } else {
        Expr::TryCast(TryCast::new(Box::new(text), t.clone()))
    }
}

/// Latest value per key per `entity` over `calls` (identify or group calls with `traits`,
/// `timestamp`, `message_id`): the last call carrying the key wins (timestamp, then
/// message_id); an explicit null removes the trait. Columns: `entity`, then one per trait.
pub fn custom_traits_plan(
    calls: LogicalPlan,
    entity: &str,
    traits: &[CustomTrait],
) -> Result<LogicalPlan> {
    let order = vec![
        col("timestamp").sort(true, false),
        col("message_id").sort(true, false),
    ];
    let mut aggs = Vec::with_capacity(traits.len());
    for t in traits {
        let carries = json_kind(col("traits"), lit(t.key.as_str())).is_not_null();
        let last = datafusion::functions_aggregate::first_last::last_value_udaf()
            .call(vec![json_get(col("traits"), &t.key)])
            .order_by(order.clone())
            .filter(carries)
            .build()?;
        aggs.push(typed(last, &t.data_type).alias(&t.column));
    }
    LogicalPlanBuilder::from(calls)
        .filter(col(entity).is_not_null())?
        .aggregate(vec![col(entity)], aggs)?
        .build()
}

/// An identifier type and whether a profile holds at most one value of it.
#[derive(Clone, Debug)]
pub struct IdColumn {
    pub id_type: String,
    pub single: bool,
}

impl IdColumn {
    /// The identifier columns of a profile, in the rules' priority order (a type with limit 1
    /// is one value, any other a list).
    pub fn of_rules(rules: &crate::plan::identity::ResolvedRules) -> Vec<IdColumn> {
        rules
            .types
            .iter()
            .map(|t| IdColumn {
                id_type: t.id_type.clone(),
                single: t.single(),
            })
            .collect()
    }
}

/// One row per profile of `identities` (`profile_id, id_type, id_value, first_seen,
/// last_seen`): first and last seen, and a column per identifier type (its value when the
/// type's limit is 1, else the sorted list of values).
pub fn profile_base_plan(identities: LogicalPlan, ids: &[IdColumn]) -> Result<LogicalPlan> {
    let mut aggs = vec![
        agg::min(col("first_seen")).alias("first_seen"),
        agg::max(col("last_seen")).alias("last_seen"),
    ];
    for id in ids {
        let of_type = col("id_type").eq(lit(id.id_type.as_str()));
        let e = if id.single {
            agg::min(col("id_value")).filter(of_type).build()?
        } else {
            array_sort(
                datafusion::functions_aggregate::array_agg::array_agg_udaf()
                    .call(vec![col("id_value")])
                    .distinct()
                    .filter(of_type)
                    .build()?,
                lit("ASC"),
                lit("NULLS LAST"),
            )
        };
        aggs.push(e.alias(column_name(&id.id_type)));
    }
    LogicalPlanBuilder::from(identities)
        .aggregate(vec![col("profile_id")], aggs)?
        .build()
}

/// A table of trait columns keyed by an entity column, to join onto the base.
pub struct TraitTable {
    pub plan: LogicalPlan,
    /// The key column of `plan`.
    pub key: String,
    /// (column, value when the entity has no row).
    pub columns: Vec<(String, Option<Expr>)>,
}

/// `base` LEFT JOIN every table on `base_key`, keeping base's columns and each table's
/// trait columns (with their defaults for entities without a row).
pub fn join_traits(
    base: LogicalPlan,
    base_key: &str,
    tables: Vec<TraitTable>,
) -> Result<LogicalPlan> {
    let mut keep: Vec<Expr> = base
        .schema()
        .fields()
        .iter()
        .map(|f| qcol("b", f.name()).alias(f.name()))
        .collect();
    let mut b = LogicalPlanBuilder::from(base).alias("b")?;
    for (i, t) in tables.into_iter().enumerate() {
        let alias = format!("t{i}");
        let right = LogicalPlanBuilder::from(t.plan).alias(&alias)?.build()?;
        b = b.join(
            right,
            JoinType::Left,
            (
                vec![Column::new(Some("b"), base_key)],
                vec![Column::new(Some(alias.as_str()), t.key.as_str())],
            ),
            None,
        )?;
        for (c, default) in t.columns {
            let e = qcol(&alias, &c);
            let e = match default {
                Some(d) => coalesce(vec![e, d]),
                None => e,
            };
            keep.push(e.alias(c));
        }
    }
    b.project(keep)?.build()
}

/// `relation.name`, without parsing (names may hold capitals or dots).
fn qcol(relation: &str, name: &str) -> Expr {
    Expr::Column(Column::new(Some(relation), name))
}

/// A list<utf8> type, as unique traits and multi-valued id columns use.
pub fn utf8_list() -> DataType {
    DataType::List(Arc::new(Field::new_list_field(DataType::Utf8, true)))
}
