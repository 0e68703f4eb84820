//! Planning a sync: which members and changes of one audience are due at one destination, as
//! Segment Engage payloads with stable message ids.

use std::collections::BTreeMap;
use std::sync::Arc;

use chrono::{DateTime, SecondsFormat, Utc};
use datafusion::arrow::array::{Array, AsArray, RecordBatch};
use datafusion::arrow::datatypes::DataType;
use datafusion::catalog::TableProvider;
use datafusion::common::JoinType;
use datafusion::prelude::{SessionContext, col, lit};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use super::SyncError;
use crate::spec::{AudienceDef, DeliveryMode, DestinationDef, EntityType};

/// One planned message with what the dead-letter table needs to name it.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct OutMessage {
    pub run_id: String,
    pub profile_id: String,
    pub id_type: String,
    pub id_value: String,
    /// `entered` or `exited`.
    pub change: String,
    /// The Segment message as POSTed.
    pub payload: Value,
}

impl OutMessage {
    pub fn message_id(&self) -> &str {
        self.payload["messageId"].as_str().unwrap_or_default()
    }
}

/// A member entering or leaving, with its identifiers at that run.
struct Change {
    run_id: String,
    timestamp: String,
    profile_id: String,
    entered: bool,
    /// id type -> values, sorted.
    ids: BTreeMap<String, Vec<String>>,
}

/// What a published table holds, cast to text, row by row.
fn text_rows(batches: &[RecordBatch]) -> Result<Vec<Vec<Option<String>>>, SyncError> {
    let mut out = Vec::new();
    for b in batches {
        let cols = b
            .columns()
            .iter()
            .map(|c| datafusion::arrow::compute::cast(c, &DataType::Utf8))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| SyncError::Read(e.to_string()))?;
        for i in 0..b.num_rows() {
            out.push(
                cols.iter()
                    .map(|c| {
                        let c = c.as_string::<i32>();
                        (!c.is_null(i)).then(|| c.value(i).to_string())
                    })
                    .collect(),
            );
        }
    }
    Ok(out)
}

/// RFC 3339 with milliseconds and `Z`, as Segment writes timestamps; other text is kept.
fn segment_time(s: &str) -> String {
    DateTime::parse_from_rfc3339(s)
        .map(|t| {
            t.with_timezone(&Utc)
                .to_rfc3339_opts(SecondsFormat::Millis, true)
        })
        .unwrap_or_else(|_| s.to_string())
}

/// The published tables a plan reads, at the manifest's versions.
pub struct Published {
    pub run_id: String,
    pub as_of: String,
    pub membership: Option<Arc<dyn TableProvider>>,
    pub identities: Option<Arc<dyn TableProvider>>,
    pub changes: Option<Arc<dyn TableProvider>>,
}

/// Every member of `audience` now (the first sync of a pair), with its identifiers.
async fn members(pubd: &Published, audience: &AudienceDef) -> Result<Vec<Change>, SyncError> {
    let Some(membership) = &pubd.membership else {
        return Ok(Vec::new());
    };
    let ctx = SessionContext::new();
    let m = ctx
        .read_table(membership.clone())?
        .filter(col("audience_key").eq(lit(audience.key.as_str())))?
        .select(vec![col("profile_id"), col("entity_type")])?;
    let df = match (&pubd.identities, audience.entity) {
        (Some(ids), EntityType::Users) => {
            let i = ctx.read_table(ids.clone())?.select(vec![
                col("profile_id").alias("identity_profile"),
                col("id_type"),
                col("id_value"),
            ])?;
            m.join(
                i,
                JoinType::Left,
                &["profile_id"],
                &["identity_profile"],
                None,
            )?
            .select(vec![col("profile_id"), col("id_type"), col("id_value")])?
        }
        _ => m.select(vec![
            col("profile_id"),
            lit("group_id").alias("id_type"),
            col("profile_id").alias("id_value"),
        ])?,
    };
    let rows = text_rows(&df.collect().await?)?;
    let timestamp = segment_time(&pubd.as_of);
    let mut by_profile: BTreeMap<String, BTreeMap<String, Vec<String>>> = BTreeMap::new();
    for r in rows {
        let Some(profile) = r[0].clone() else {
            continue;
        };
        let ids = by_profile.entry(profile).or_default();
        if let (Some(t), Some(v)) = (&r[1], &r[2]) {
            ids.entry(t.clone()).or_default().push(v.clone());
        }
    }
    Ok(by_profile
        .into_iter()
        .map(|(profile_id, mut ids)| {
            ids.values_mut().for_each(|v| {
                v.sort();
                v.dedup();
            });
            Change {
                run_id: pubd.run_id.clone(),
                timestamp: timestamp.clone(),
                profile_id,
                entered: true,
                ids,
            }
        })
        .collect())
}

/// The entered / exited rows of `audience` published after run `after`.
async fn changes_after(
    pubd: &Published,
    audience: &AudienceDef,
    after: &str,
) -> Result<Vec<Change>, SyncError> {
    let Some(changes) = &pubd.changes else {
        return Ok(Vec::new());
    };
    let ctx = SessionContext::new();
    let df = ctx
        .read_table(changes.clone())?
        .filter(
            col("audience_key")
                .eq(lit(audience.key.as_str()))
                .and(col("run_id").gt(lit(after))),
        )?
        .select(vec![
            col("run_id"),
            col("as_of"),
            col("profile_id"),
            col("change"),
            col("identifiers"),
        ])?
        .sort(vec![
            col("run_id").sort(true, false),
            col("profile_id").sort(true, false),
            col("change").sort(true, false),
        ])?;
    let mut out = Vec::new();
    for r in text_rows(&df.collect().await?)? {
        let (Some(run_id), Some(profile_id), Some(change)) = (&r[0], &r[2], &r[3]) else {
            continue;
        };
        let mut ids: BTreeMap<String, Vec<String>> = BTreeMap::new();
        if let Some(Ok(Value::Object(map))) = r[4].as_deref().map(serde_json::from_str::<Value>) {
            for (t, v) in map {
                let mut values: Vec<String> = match v {
                    Value::String(s) => vec![s],
                    Value::Array(a) => a
                        .into_iter()
                        .filter_map(|x| x.as_str().map(str::to_owned))
                        .collect(),
                    _ => Vec::new(),
                };
                values.sort();
                values.dedup();
                if !values.is_empty() {
                    ids.insert(t, values);
                }
            }
        }
        out.push(Change {
            run_id: run_id.clone(),
            timestamp: segment_time(r[1].as_deref().unwrap_or(&pubd.as_of)),
            profile_id: profile_id.clone(),
            entered: change == "entered",
            ids,
        });
    }
    Ok(out)
}

/// The stable id of one message, from its destination, audience, run, profile, identifier
/// type and value, change (`entered` / `exited`) and call type (`identify` / `track`): the
/// same inputs always give the same id, so a re-sent message can be recognised downstream.
pub fn message_id(parts: [&str; 8]) -> String {
    let mut h = Sha256::new();
    for part in parts {
        h.update(part.as_bytes());
        h.update([0u8]);
    }
    let hex: String = h.finalize()[..16]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    format!("cohort-{hex}")
}

/// `aud_<24 hex>`: a stable id for an audience of a space (Segment's `computation_id`).
pub fn computation_id(space: &str, audience: &str) -> String {
    let mut h = Sha256::new();
    h.update(space.as_bytes());
    h.update([0u8]);
    h.update(audience.as_bytes());
    let hex: String = h.finalize()[..12]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    format!("aud_{hex}")
}

/// The messages for the changes of one audience at one destination: one per identifier value
/// the destination takes and per mode.
fn messages(
    space: &str,
    dest: &DestinationDef,
    audience: &AudienceDef,
    changes: Vec<Change>,
) -> Vec<OutMessage> {
    let collection = match audience.entity {
        EntityType::Users => "users",
        EntityType::Accounts => "accounts",
    };
    let personas = json!({
        "computation_class": "audience",
        "computation_id": computation_id(space, &audience.key),
        "computation_key": audience.key,
        "namespace": space,
        "space_id": space,
    });
    let mut out = Vec::new();
    for c in changes {
        let change = if c.entered { "entered" } else { "exited" };
        let user_id = c.ids.get("user_id").and_then(|v| v.first()).cloned();
        for (id_type, values) in &c.ids {
            if !dest.sends(id_type) {
                continue;
            }
            for value in values {
                for mode in &dest.modes {
                    let id = message_id([
                        &dest.name,
                        &audience.key,
                        &c.run_id,
                        &c.profile_id,
                        id_type,
                        value,
                        change,
                        mode.as_str(),
                    ]);
                    let mut context = json!({
                        "personas": personas,
                        "externalIds": [{
                            "id": value,
                            "type": id_type,
                            "collection": collection,
                            "encoding": "none",
                        }],
                        "library": { "name": "cohort", "version": env!("CARGO_PKG_VERSION") },
                    });
                    let mut p = json!({
                        "type": mode.as_str(),
                        "messageId": id,
                        "timestamp": c.timestamp,
                    });
                    if let Some(u) = &user_id {
                        p["userId"] = json!(u);
                    }
                    if id_type == "anonymous_id" {
                        p["anonymousId"] = json!(value);
                    } else if user_id.is_none() {
                        // Segment needs a userId or an anonymousId: the profile stands in.
                        p["anonymousId"] = json!(c.profile_id);
                    }
                    if audience.entity == EntityType::Accounts {
                        context["groupId"] = json!(c.profile_id);
                    }
                    match mode {
                        DeliveryMode::Identify => {
                            let mut traits = json!({ audience.key.as_str(): c.entered });
                            if id_type == "email" {
                                traits["email"] = json!(value);
                            }
                            p["traits"] = traits;
                        }
                        DeliveryMode::Track => {
                            p["event"] = json!(if c.entered {
                                "Audience Entered"
                            } else {
                                "Audience Exited"
                            });
                            p["properties"] = json!({
                                "audience_key": audience.key,
                                audience.key.as_str(): c.entered,
                            });
                            if id_type == "email" {
                                context["traits"] = json!({ "email": value });
                            }
                        }
                    }
                    p["context"] = context;
                    out.push(OutMessage {
                        run_id: c.run_id.clone(),
                        profile_id: c.profile_id.clone(),
                        id_type: id_type.clone(),
                        id_value: value.clone(),
                        change: change.to_string(),
                        payload: p,
                    });
                }
            }
        }
    }
    out
}

/// The messages of one live entry or exit of `profile_id` (found `at`, the `seq`-th since the
/// published run `run_id`), as a run's change would give them.
#[allow(clippy::too_many_arguments)]
pub fn live_messages(
    space: &str,
    dest: &DestinationDef,
    audience: &AudienceDef,
    run_id: &str,
    seq: u64,
    profile_id: &str,
    entered: bool,
    at: &str,
    ids: BTreeMap<String, Vec<String>>,
) -> Vec<OutMessage> {
    messages(
        space,
        dest,
        audience,
        vec![Change {
            run_id: format!("live:{run_id}:{seq}"),
            timestamp: at.to_string(),
            profile_id: profile_id.to_string(),
            entered,
            ids,
        }],
    )
}

/// The messages due for (`dest`, `audience`): every member when nothing was planned before
/// (`after` is None), else the changes of the runs after `after`.
pub async fn plan(
    space: &str,
    pubd: &Published,
    dest: &DestinationDef,
    audience: &AudienceDef,
    after: Option<&str>,
) -> Result<Vec<OutMessage>, SyncError> {
    let changes = match after {
        None => members(pubd, audience).await?,
        Some(run) => changes_after(pubd, audience, run).await?,
    };
    Ok(messages(space, dest, audience, changes))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn message_ids_are_stable_and_distinct() {
        let parts = [
            "hook", "vip", "r1", "p1", "user_id", "u1", "entered", "identify",
        ];
        let a = message_id(parts);
        assert_eq!(a, message_id(parts));
        assert!(a.starts_with("cohort-") && a.len() == 7 + 32);
        let mut track = parts;
        track[7] = "track";
        assert_ne!(a, message_id(track));
        // Fields are separated: moving a character between two fields changes the id.
        assert_ne!(
            message_id(["ab", "c", "", "", "", "", "", ""]),
            message_id(["a", "bc", "", "", "", "", "", ""])
        );
    }

    #[test]
    fn segment_times_have_milliseconds() {
        assert_eq!(
            segment_time("2026-10-10T00:00:00Z"),
            "2026-10-10T00:00:00.000Z"
        );
        assert_eq!(
            segment_time("2026-10-10T02:00:00+02:00"),
            "2026-10-10T00:00:00.000Z"
        );
    }
}
