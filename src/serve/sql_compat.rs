//! The Postgres functions client libraries and psql call that DataFusion and
//! datafusion-postgres lack, as Cohort's endpoint answers them: `version()` in Postgres' shape
//! (SQLAlchemy parses it), `current_database()` (the space), `pg_get_serial_sequence` (no
//! serial columns here: null), `to_regtype` (null for an unknown type name), and what psql's
//! `\df` asks of functions (`pg_function_is_visible`, `pg_get_function_result`,
//! `pg_get_function_arguments`; a space defines no functions of its own, so `\df` lists
//! none).

use std::sync::Arc;

use datafusion::prelude::SessionContext;

/// Registers the functions on a space's context.
pub(super) fn register(ctx: &SessionContext, space: &str) {
    use datafusion::arrow::datatypes::DataType;
    use datafusion::common::ScalarValue;
    use datafusion::logical_expr::{ColumnarValue, Volatility, create_udf};
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
