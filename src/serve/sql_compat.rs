//! The Postgres functions client libraries and psql call that DataFusion and
//! datafusion-postgres lack, as Cohort's endpoint answers them: `version()` in Postgres' shape
//! (SQLAlchemy parses it), `current_database()` (the space), `pg_get_serial_sequence` (no
//! serial columns here: null), `to_regtype` (null for an unknown type name), and what psql's
//! `\df` asks of functions (`pg_function_is_visible`, `pg_get_function_result`,
//! `pg_get_function_arguments`; a space defines no functions of its own, so `\df` lists
//! none).

use std::sync::Arc;

use datafusion::arrow::array::{AsArray, StringArray};
use datafusion::arrow::datatypes::DataType;
use datafusion::common::{Result, ScalarValue};
use datafusion::logical_expr::{
    ColumnarValue, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, Volatility, create_udf,
};
use datafusion::prelude::SessionContext;

/// Registers the functions on a space's context.
pub(super) fn register(ctx: &SessionContext, space: &str) {
    let version = format!(
        "PostgreSQL 16.6 (Cohort {}) on x86_64-pc-linux-gnu, compiled by rustc, 64-bit",
        env!("CARGO_PKG_VERSION")
    );
    ctx.register_udf(create_udf(
        "version",
        vec![],
        DataType::Utf8,
        Volatility::Immutable,
        Arc::new(move |_| {
            Ok(ColumnarValue::Scalar(ScalarValue::Utf8(Some(
                version.clone(),
            ))))
        }),
    ));
    ctx.register_udf(create_udf(
        "pg_get_serial_sequence",
        vec![DataType::Utf8, DataType::Utf8],
        DataType::Utf8,
        Volatility::Immutable,
        Arc::new(|_| Ok(ColumnarValue::Scalar(ScalarValue::Utf8(None)))),
    ));
    ctx.register_udf(create_udf(
        "to_regtype",
        vec![DataType::Utf8],
        DataType::Utf8,
        Volatility::Immutable,
        Arc::new(|_| Ok(ColumnarValue::Scalar(ScalarValue::Utf8(None)))),
    ));
    // The connection's database is the space.
    ctx.register_udf(
        datafusion_postgres::datafusion_pg_catalog::pg_catalog::create_current_database_udf(space),
    );
    // psql's `\df`: every function is Postgres' own (in pg_catalog), none is listed.
    let of_function = |name: &str, result: DataType, value: ScalarValue| {
        create_udf(
            name,
            vec![DataType::Int32],
            result,
            Volatility::Stable,
            Arc::new(move |_| Ok(ColumnarValue::Scalar(value.clone()))),
        )
    };
    ctx.register_udf(of_function(
        "pg_function_is_visible",
        DataType::Boolean,
        ScalarValue::Boolean(Some(true)),
    ));
    ctx.register_udf(of_function(
        "pg_get_function_result",
        DataType::Utf8,
        ScalarValue::Utf8(None),
    ));
    ctx.register_udf(of_function(
        "pg_get_function_arguments",
        DataType::Utf8,
        ScalarValue::Utf8(Some(String::new())),
    ));
}

/// Registers the functions that compute from their arguments.
pub(super) fn register_computed(ctx: &SessionContext) {
    ctx.register_udf(create_udf(
        super::sql_rewrite::LIKE_ESCAPE,
        vec![DataType::Utf8, DataType::Utf8],
        DataType::Utf8,
        Volatility::Immutable,
        Arc::new(|args: &[ColumnarValue]| {
            let arrays = ColumnarValue::values_to_arrays(args)?;
            let (patterns, escapes) = (arrays[0].as_string::<i32>(), arrays[1].as_string::<i32>());
            let out: StringArray = patterns
                .iter()
                .zip(escapes.iter())
                .map(|(p, e)| Some(backslash_pattern(p?, e?)))
                .collect();
            Ok(ColumnarValue::Array(Arc::new(out)))
        }),
    ));
    // SQLAlchemy's column and index reflection: no collations or indexes of our own.
    ctx.register_udf(constant(
        "pg_collation_is_visible",
        ScalarValue::Boolean(Some(true)),
    ));
    ctx.register_udf(constant("pg_get_indexdef", ScalarValue::Utf8(None)));
    // psql's `\d+`: no comments on tables or columns.
    for name in ["col_description", "obj_description", "shobj_description"] {
        ctx.register_udf(constant(name, ScalarValue::Utf8(None)));
    }
    ctx.register_udf(create_udf(
        "current_setting",
        vec![DataType::Utf8],
        DataType::Utf8,
        Volatility::Stable,
        Arc::new(|args: &[ColumnarValue]| {
            let arrays = ColumnarValue::values_to_arrays(args)?;
            let mut out = Vec::with_capacity(arrays[0].len());
            for name in arrays[0].as_string::<i32>().iter() {
                out.push(match name {
                    Some(n) => Some(setting(n)?),
                    None => None,
                });
            }
            Ok(ColumnarValue::Array(Arc::new(StringArray::from(out))))
        }),
    ));
    ctx.register_udf(create_udf(
        super::sql_rewrite::EXPAND_ARRAY,
        vec![DataType::List(Arc::new(
            datafusion::arrow::datatypes::Field::new_list_field(DataType::Int16, true),
        ))],
        expand_array_type(),
        Volatility::Immutable,
        Arc::new(|args: &[ColumnarValue]| {
            let arrays = ColumnarValue::values_to_arrays(args)?;
            Ok(ColumnarValue::Array(expand_array(
                arrays[0].as_list::<i32>(),
            )?))
        }),
    ));
    ctx.register_udf(ScalarUDF::from(JsonBuildObject {
        signature: Signature::variadic_any(Volatility::Immutable),
    }));
}

/// `current_setting(name)` for the settings client libraries read (SQLAlchemy's table
/// options ask for `default_table_access_method`); any other name is Postgres' 42704.
fn setting(name: &str) -> Result<&'static str> {
    Ok(match name.to_ascii_lowercase().as_str() {
        "default_table_access_method" => "heap",
        "server_version" => "16.6",
        "server_version_num" => "160006",
        "server_encoding" | "client_encoding" => "UTF8",
        "standard_conforming_strings" => "on",
        "search_path" => "\"$user\", public",
        "datestyle" => "ISO, MDY",
        "integer_datetimes" => "on",
        "max_identifier_length" => "63",
        _ => {
            return Err(datafusion::error::DataFusionError::Execution(format!(
                "unrecognized configuration parameter \"{name}\""
            )));
        }
    })
}

/// `list<struct<x int, n int>>`: an array's elements with their subscripts.
fn expand_array_type() -> DataType {
    use datafusion::arrow::datatypes::{Field, Fields};
    let fields = Fields::from(vec![
        Field::new("x", DataType::Int32, true),
        Field::new("n", DataType::Int32, false),
    ]);
    DataType::List(Arc::new(Field::new_list_field(
        DataType::Struct(fields),
        true,
    )))
}

/// Each list of smallints as the list of its `(x, n)` pairs, n counting from 1.
fn expand_array(
    lists: &datafusion::arrow::array::ListArray,
) -> Result<datafusion::arrow::array::ArrayRef> {
    use datafusion::arrow::array::{Array, Int32Array, ListArray, StructArray};
    use datafusion::arrow::buffer::OffsetBuffer;
    use datafusion::arrow::datatypes::Int16Type;
    let DataType::List(item) = expand_array_type() else {
        unreachable!("expand_array_type is a list")
    };
    let DataType::Struct(fields) = item.data_type().clone() else {
        unreachable!("its items are structs")
    };
    let (mut xs, mut ns, mut lengths) = (Vec::new(), Vec::new(), Vec::new());
    for i in 0..lists.len() {
        let mut len = 0;
        if lists.is_valid(i) {
            let values = lists.value(i);
            for (n, x) in values.as_primitive::<Int16Type>().iter().enumerate() {
                xs.push(x.map(i32::from));
                ns.push(n as i32 + 1);
                len += 1;
            }
        }
        lengths.push(len);
    }
    let structs = StructArray::try_new(
        fields,
        vec![
            Arc::new(Int32Array::from(xs)),
            Arc::new(Int32Array::from(ns)),
        ],
        None,
    )?;
    Ok(Arc::new(ListArray::try_new(
        item,
        OffsetBuffer::from_lengths(lengths),
        Arc::new(structs),
        lists.nulls().cloned(),
    )?))
}

/// A function of any arguments that answers `value`.
fn constant(name: &'static str, value: ScalarValue) -> ScalarUDF {
    ScalarUDF::from(Constant {
        name,
        value,
        signature: Signature::variadic_any(Volatility::Stable),
    })
}

#[derive(Debug, PartialEq, Eq, Hash)]
struct Constant {
    name: &'static str,
    value: ScalarValue,
    signature: Signature,
}

impl ScalarUDFImpl for Constant {
    fn name(&self) -> &str {
        self.name
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _: &[DataType]) -> Result<DataType> {
        Ok(self.value.data_type())
    }

    fn invoke_with_args(&self, _: ScalarFunctionArgs) -> Result<ColumnarValue> {
        Ok(ColumnarValue::Scalar(self.value.clone()))
    }
}

/// A `LIKE` pattern whose escape character is `esc` (none when empty, as in Postgres'
/// `ESCAPE ''`) written with backslash escapes, the only ones DataFusion takes.
fn backslash_pattern(pattern: &str, esc: &str) -> String {
    let esc = esc.chars().next();
    let mut out = String::with_capacity(pattern.len() + 4);
    let mut chars = pattern.chars();
    while let Some(c) = chars.next() {
        if Some(c) == esc {
            match chars.next() {
                Some(n @ ('%' | '_' | '\\')) => {
                    out.push('\\');
                    out.push(n);
                }
                Some(n) => out.push(n),
                None => {}
            }
        } else if c == '\\' {
            out.push_str("\\\\");
        } else {
            out.push(c);
        }
    }
    out
}

/// Postgres' `json_build_object(k1, v1, …)`, as JSON text (SQLAlchemy's column reflection
/// builds identity and collation details with it).
#[derive(Debug, PartialEq, Eq, Hash)]
struct JsonBuildObject {
    signature: Signature,
}

impl ScalarUDFImpl for JsonBuildObject {
    fn name(&self) -> &str {
        "json_build_object"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _: &[DataType]) -> Result<DataType> {
        Ok(DataType::Utf8)
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        if !args.args.len().is_multiple_of(2) {
            return datafusion::common::plan_err!(
                "json_build_object takes pairs of keys and values, got {} arguments",
                args.args.len()
            );
        }
        let arrays = ColumnarValue::values_to_arrays(&args.args)?;
        let mut out = Vec::with_capacity(args.number_rows);
        for row in 0..args.number_rows {
            let mut object = serde_json::Map::new();
            for pair in arrays.chunks(2) {
                let key = match ScalarValue::try_from_array(&pair[0], row)? {
                    k if k.is_null() => {
                        return datafusion::common::exec_err!("json_build_object: a key is null");
                    }
                    k => json_key(&k),
                };
                object.insert(
                    key,
                    json_value(&ScalarValue::try_from_array(&pair[1], row)?),
                );
            }
            out.push(Some(serde_json::Value::Object(object).to_string()));
        }
        Ok(ColumnarValue::Array(Arc::new(StringArray::from(out))))
    }
}

fn json_key(v: &ScalarValue) -> String {
    match v {
        ScalarValue::Utf8(Some(s))
        | ScalarValue::Utf8View(Some(s))
        | ScalarValue::LargeUtf8(Some(s)) => s.clone(),
        other => other.to_string(),
    }
}

fn json_value(v: &ScalarValue) -> serde_json::Value {
    use serde_json::Value as J;
    match v {
        v if v.is_null() => J::Null,
        ScalarValue::Boolean(Some(b)) => J::Bool(*b),
        ScalarValue::Int8(Some(n)) => J::from(*n),
        ScalarValue::Int16(Some(n)) => J::from(*n),
        ScalarValue::Int32(Some(n)) => J::from(*n),
        ScalarValue::Int64(Some(n)) => J::from(*n),
        ScalarValue::UInt8(Some(n)) => J::from(*n),
        ScalarValue::UInt16(Some(n)) => J::from(*n),
        ScalarValue::UInt32(Some(n)) => J::from(*n),
        ScalarValue::UInt64(Some(n)) => J::from(*n),
        ScalarValue::Float32(Some(n)) => J::from(*n),
        ScalarValue::Float64(Some(n)) => J::from(*n),
        other => J::String(json_key(other)),
    }
}

#[cfg(test)]
mod tests {
    use super::backslash_pattern;

    /// JDBC's key queries, as `sql_rewrite` makes them, over a `pg_index`-like table.
    #[tokio::test]
    async fn expanded_arrays_read_as_postgres_rows() {
        use datafusion::arrow::util::pretty::pretty_format_batches;
        let ctx = datafusion::prelude::SessionContext::new();
        super::register_computed(&ctx);
        ctx.sql("CREATE TABLE idx AS SELECT 7 AS indrelid, [CAST(3 AS SMALLINT), CAST(1 AS SMALLINT)] AS indkey")
            .await
            .unwrap();
        let run = |sql: &'static str| {
            let ctx = ctx.clone();
            async move {
                let rows = ctx.sql(sql).await.unwrap().collect().await.unwrap();
                pretty_format_batches(&rows).unwrap().to_string()
            }
        };
        let pairs = run(
            "SELECT indrelid, get_field(unnest(cohort_pg_expandarray(indkey)), 'n') AS n, \
                         unnest(cohort_pg_expandarray(indkey)) AS keys FROM idx",
        )
        .await;
        assert!(pairs.contains("| 7        | 1 | {x: 3, n: 1} |"), "{pairs}");
        assert!(pairs.contains("| 7        | 2 | {x: 1, n: 2} |"), "{pairs}");
        let joined = run(
            "SELECT i.n FROM (SELECT unnest(cohort_pg_expandarray(indkey)) AS keys \
                          FROM idx) s, (SELECT 1 AS n) i WHERE get_field(s.keys, 'x') = i.n",
        )
        .await;
        assert!(joined.contains("| 1 |"), "{joined}");
    }

    #[test]
    fn like_patterns_take_backslash_escapes() {
        // SQLAlchemy's schema filter: `NOT LIKE 'pg/_' || '%' ESCAPE '/'`.
        assert_eq!(backslash_pattern("pg/_%", "/"), "pg\\_%");
        assert_eq!(backslash_pattern("a//b", "/"), "a/b");
        assert_eq!(backslash_pattern("a\\b", "/"), "a\\\\b");
        assert_eq!(backslash_pattern("a\\b_", ""), "a\\\\b_");
        assert_eq!(backslash_pattern("a\\_b", "\\"), "a\\_b");
    }
}
