//! `destination_dead_letters`: the Delta table under the space's output where messages that
//! failed permanently, or used every attempt, are kept with the reason, so delivery can go on.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use datafusion::arrow::array::{
    ArrayRef, RecordBatch, StringArray, TimestampMicrosecondArray, UInt32Array,
};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use deltalake::protocol::SaveMode;

use super::SyncError;
use super::plan::OutMessage;
use crate::store::{delta, objects::Location};

/// The table's name under `<output>/<space>/`.
pub const TABLE: &str = "destination_dead_letters";

/// One message that could not be delivered.
pub struct DeadLetter<'m> {
    pub message: &'m OutMessage,
    pub attempts: u32,
    pub status: Option<u16>,
    pub error: String,
}

pub fn schema() -> SchemaRef {
    let text = |n: &str, null: bool| Field::new(n, DataType::Utf8, null);
    Arc::new(Schema::new(vec![
        text("destination", false),
        text("audience_key", false),
        text("message_id", false),
        text("run_id", false),
        text("profile_id", false),
        text("id_type", false),
        text("id_value", false),
        text("change", false),
        text("type", false),
        Field::new("attempts", DataType::UInt32, false),
        Field::new("http_status", DataType::UInt32, true),
        text("error", false),
        text("payload", false),
        Field::new(
            "failed_at",
            DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
            false,
        ),
    ]))
}

/// One text column, a value per letter.
fn texts(letters: &[DeadLetter<'_>], f: impl Fn(&DeadLetter<'_>) -> String) -> ArrayRef {
    Arc::new(StringArray::from(
        letters.iter().map(f).collect::<Vec<String>>(),
    ))
}

/// Appends `letters` to the table (created on first use) in one commit.
pub async fn append(
    out: &Location,
    destination: &str,
    audience: &str,
    letters: &[DeadLetter<'_>],
    now: DateTime<Utc>,
) -> Result<(), SyncError> {
    if letters.is_empty() {
        return Ok(());
    }
    let columns: Vec<ArrayRef> = vec![
        texts(letters, |_| destination.to_string()),
        texts(letters, |_| audience.to_string()),
        texts(letters, |l| l.message.message_id().to_string()),
        texts(letters, |l| l.message.run_id.clone()),
        texts(letters, |l| l.message.profile_id.clone()),
        texts(letters, |l| l.message.id_type.clone()),
        texts(letters, |l| l.message.id_value.clone()),
        texts(letters, |l| l.message.change.clone()),
        texts(letters, |l| {
            l.message.payload["type"]
                .as_str()
                .unwrap_or_default()
                .to_string()
        }),
        Arc::new(UInt32Array::from(
            letters.iter().map(|l| l.attempts).collect::<Vec<_>>(),
        )),
        Arc::new(UInt32Array::from(
            letters
                .iter()
                .map(|l| l.status.map(u32::from))
                .collect::<Vec<_>>(),
        )),
        texts(letters, |l| l.error.clone()),
        texts(letters, |l| l.message.payload.to_string()),
        Arc::new(
            TimestampMicrosecondArray::from(vec![now.timestamp_micros(); letters.len()])
                .with_timezone("UTC"),
        ),
    ];
    let batch = RecordBatch::try_new(schema(), columns)
        .map_err(|e| SyncError::State(format!("{TABLE}: {e}")))?;
    let loc = out.child(TABLE);
    let table = delta::open(&loc)
        .await
        .map_err(|e| SyncError::State(format!("{TABLE}: {e}")))?;
    table
        .write(vec![batch])
        .with_save_mode(SaveMode::Append)
        .await
        .map_err(|e| SyncError::State(format!("{TABLE}: {e}")))?;
    Ok(())
}
