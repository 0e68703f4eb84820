//! Column types as Postgres clients read them from `information_schema.columns`. DataFusion
//! fills `data_type` with Arrow's names (`Utf8View`, `Timestamp(µs, "UTC")`); BI tools and
//! JDBC's `getColumns` expect the SQL names Postgres uses there (`text`, `timestamp with
//! time zone`, `ARRAY`) and the type's own name in `udt_name` (`text`, `timestamptz`,
//! `_text`). Both follow the Postgres type the endpoint sends the column's values as, so
//! what the catalog says and what arrives agree.

use std::str::FromStr;
use std::sync::Arc;

use datafusion::arrow::array::{AsArray, StringArray};
use datafusion::arrow::datatypes::DataType;
use datafusion::logical_expr::{ColumnarValue, Volatility, create_udf};
use datafusion::prelude::SessionContext;
use datafusion_postgres::arrow_pg::datatypes::into_pg_type;
use datafusion_postgres::pgwire::api::Type;

/// The function giving `information_schema.columns.data_type` from Arrow's name.
pub(super) const DATA_TYPE: &str = "cohort_pg_data_type";
/// The function giving `information_schema.columns.udt_name` from Arrow's name.
pub(super) const UDT_NAME: &str = "cohort_pg_udt_name";

/// Registers the two functions on a space's context.
pub(super) fn register(ctx: &SessionContext) {
    for (name, f) in [
        (DATA_TYPE, data_type as fn(&str) -> String),
        (UDT_NAME, udt_name),
    ] {
        ctx.register_udf(create_udf(
            name,
            vec![DataType::Utf8],
            DataType::Utf8,
            Volatility::Immutable,
            Arc::new(move |args: &[ColumnarValue]| {
                let arrays = ColumnarValue::values_to_arrays(args)?;
                let out: StringArray = arrays[0]
                    .as_string::<i32>()
                    .iter()
                    .map(|t| t.map(f))
                    .collect();
                Ok(ColumnarValue::Array(Arc::new(out)))
            }),
        ));
    }
}

/// The Postgres type of values of the Arrow type named `arrow` (`None` when it has none).
fn pg_type(arrow: &str) -> Option<Type> {
    let t = DataType::from_str(arrow).ok()?;
    into_pg_type(&t).ok()
}

/// The SQL name Postgres' `information_schema.columns.data_type` gives the type.
fn data_type(arrow: &str) -> String {
    let Some(t) = pg_type(arrow) else {
        return "USER-DEFINED".into();
    };
    if t.name().starts_with('_') {
        return "ARRAY".into();
    }
    let sql = [
        (Type::BOOL, "boolean"),
        (Type::INT2, "smallint"),
        (Type::INT4, "integer"),
        (Type::INT8, "bigint"),
        (Type::FLOAT4, "real"),
        (Type::FLOAT8, "double precision"),
        (Type::NUMERIC, "numeric"),
        (Type::TEXT, "text"),
        (Type::VARCHAR, "character varying"),
        (Type::BPCHAR, "character"),
        (Type::BYTEA, "bytea"),
        (Type::DATE, "date"),
        (Type::TIME, "time without time zone"),
        (Type::TIMESTAMP, "timestamp without time zone"),
        (Type::TIMESTAMPTZ, "timestamp with time zone"),
        (Type::INTERVAL, "interval"),
        (Type::JSON, "json"),
        (Type::JSONB, "jsonb"),
        (Type::UUID, "uuid"),
    ];
    sql.iter()
        .find(|(pg, _)| *pg == t)
        .map(|(_, name)| name.to_string())
        .unwrap_or_else(|| "USER-DEFINED".into())
}

/// The type's own name, as `information_schema.columns.udt_name` gives it (`_text` for
/// `text[]`).
fn udt_name(arrow: &str) -> String {
    pg_type(arrow)
        .map(|t| t.name().to_string())
        .unwrap_or_else(|| "record".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arrow_names_read_as_postgres_ones() {
        use datafusion::arrow::datatypes::{Field, TimeUnit};
        let name = |t: DataType| t.to_string();
        let list = DataType::List(Arc::new(Field::new("element", DataType::Utf8View, true)));
        let cases = [
            (DataType::Utf8View, "text", "text"),
            (DataType::Int64, "bigint", "int8"),
            (DataType::Int32, "integer", "int4"),
            (DataType::Float64, "double precision", "float8"),
            (DataType::Boolean, "boolean", "bool"),
            (
                DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
                "timestamp with time zone",
                "timestamptz",
            ),
            (
                DataType::Timestamp(TimeUnit::Millisecond, None),
                "timestamp without time zone",
                "timestamp",
            ),
            (
                DataType::Dictionary(Box::new(DataType::UInt16), Box::new(DataType::Utf8)),
                "text",
                "text",
            ),
            (list, "ARRAY", "_text"),
            (DataType::Binary, "bytea", "bytea"),
        ];
        for (t, sql, udt) in cases {
            let arrow = name(t);
            assert_eq!(
                (data_type(&arrow), udt_name(&arrow)),
                (sql.into(), udt.into()),
                "{arrow}"
            );
        }
    }
}
