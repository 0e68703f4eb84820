//! Building a [`SpaceIndex`] from a published run: its tables read at the manifest's versions
//! into sorted columns, identifier maps, memberships and recent events.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use chrono::{DateTime, Utc};
use datafusion::arrow::array::{Array, ArrayRef, AsArray, RecordBatch};
use datafusion::arrow::compute::{cast, concat_batches};
use datafusion::arrow::datatypes::{DataType, TimeUnit, TimestampMicrosecondType};
use datafusion::prelude::*;

use super::{
    Collection, ExternalId, Membership, Ranges, RecentEvent, SpaceIndex, TraitClass, TraitColumn,
};
use crate::error::{EngineError, EngineResult};
use crate::read;
use crate::spec::Space;
use crate::store::manifest;

fn texts(a: &ArrayRef) -> EngineResult<Vec<Option<String>>> {
    let c = cast(a, &DataType::Utf8).map_err(datafusion::error::DataFusionError::from)?;
    let c = c.as_string::<i32>();
    Ok((0..c.len())
        .map(|i| c.is_valid(i).then(|| c.value(i).to_string()))
        .collect())
}

fn times(a: &ArrayRef) -> EngineResult<Vec<Option<DateTime<Utc>>>> {
    let c = cast(a, &DataType::Timestamp(TimeUnit::Microsecond, None))
        .map_err(datafusion::error::DataFusionError::from)?;
    let c = c.as_primitive::<TimestampMicrosecondType>();
    Ok((0..c.len())
        .map(|i| {
            c.is_valid(i)
                .then(|| DateTime::from_timestamp_micros(c.value(i)))
                .flatten()
        })
        .collect())
}

/// Runs `df` and returns its rows as one batch (empty with the schema when no rows).
async fn one_batch(df: DataFrame) -> EngineResult<RecordBatch> {
    let schema = Arc::new(df.schema().as_arrow().clone());
    let batches = df.collect().await?;
    concat_batches(&schema, &batches).map_err(|e| EngineError::Internal(e.to_string()))
}

/// The trait classes of the run's columns, from its run record.
#[derive(Default, serde::Deserialize)]
struct Columns {
    #[serde(default)]
    computed_traits: BTreeMap<String, String>,
    #[serde(default)]
    sql_traits: BTreeMap<String, String>,
}

impl SpaceIndex {
    /// Builds the index of the space's last published run; `None` when nothing was published.
    pub async fn build(space: &Space) -> EngineResult<Option<SpaceIndex>> {
        let out = read::output_location(space)?;
        let Some(m) = manifest::read(&out).await? else {
            return Ok(None);
        };
        if !m.tables.contains_key("profiles") {
            return Ok(None);
        }
        let ctx = SessionContext::new();
        for (table, v) in &m.tables {
            ctx.register_table(
                table.as_str(),
                crate::store::delta::provider(&out.child(table), *v).await?,
            )?;
        }
        let columns = run_columns(&ctx, &m.run_id).await?;
        let id_types: Vec<String> = space
            .identity
            .identifiers
            .iter()
            .map(|i| crate::read::column_name(&i.id_type))
            .collect();
        let as_of = DateTime::parse_from_rfc3339(&m.as_of)
            .map(|t| t.with_timezone(&Utc))
            .unwrap_or_default();

        // Users.
        let profiles = one_batch(
            ctx.table("profiles")
                .await?
                .sort(vec![col("profile_id").sort(true, false)])?,
        )
        .await?;
        let fixed = ["profile_id", "first_seen", "last_seen"];
        let class_of = |name: &str, account: bool| -> TraitClass {
            let computed = if account {
                format!("accounts.{name}")
            } else {
                name.to_string()
            };
            if columns.computed_traits.contains_key(&computed) {
                TraitClass::ComputedTrait
            } else if columns.sql_traits.contains_key(name) {
                TraitClass::SqlTrait
            } else {
                TraitClass::Custom
            }
        };
        let user_traits: Vec<TraitColumn> = profiles
            .schema()
            .fields()
            .iter()
            .enumerate()
            .filter(|(_, f)| !fixed.contains(&f.name().as_str()) && !id_types.contains(f.name()))
            .map(|(i, f)| TraitColumn {
                name: f.name().clone(),
                class: class_of(f.name(), false),
                values: profiles.column(i).clone(),
            })
            .collect();
        let user_ids: Vec<String> = texts(profiles.column_by_name("profile_id").unwrap())?
            .into_iter()
            .map(Option::unwrap_or_default)
            .collect();
        let row_of = |ids: &[String], id: &str| -> Option<u32> {
            ids.binary_search_by(|p| p.as_str().cmp(id))
                .ok()
                .map(|r| r as u32)
        };

        let identities = one_batch(
            ctx.table("identities")
                .await?
                .select_columns(&[
                    "profile_id",
                    "id_type",
                    "id_value",
                    "first_seen",
                    "last_seen",
                ])?
                .sort(vec![
                    col("profile_id").sort(true, false),
                    col("id_type").sort(true, false),
                    col("id_value").sort(true, false),
                ])?,
        )
        .await?;
        let mut lookup: HashMap<Box<str>, u32> = HashMap::with_capacity(identities.num_rows());
        let mut ext = Vec::with_capacity(identities.num_rows());
        {
            let pid = texts(identities.column(0))?;
            let ty = texts(identities.column(1))?;
            let val = texts(identities.column(2))?;
            let seen = times(identities.column(3))?;
            let last = times(identities.column(4))?;
            for i in 0..identities.num_rows() {
                let (Some(p), Some(t), Some(v)) = (&pid[i], &ty[i], &val[i]) else {
                    continue;
                };
                let Some(row) = row_of(&user_ids, p) else {
                    continue;
                };
                lookup.insert(format!("{t}:{v}").into_boxed_str(), row);
                ext.push((
                    row,
                    ExternalId {
                        id_type: t.clone(),
                        id_value: v.clone(),
                        first_seen: seen[i],
                        last_seen: last[i],
                    },
                ));
            }
        }
        // Profiles started by a SQL trait have an id column but no `identities` row yet.
        for (i, f) in profiles.schema().fields().iter().enumerate() {
            if !id_types.contains(f.name()) || f.data_type() != &DataType::Utf8 {
                continue;
            }
            let vals = texts(profiles.column(i))?;
            for (row, v) in vals.iter().enumerate() {
                if let Some(v) = v {
                    lookup
                        .entry(format!("{}:{v}", f.name()).into_boxed_str())
                        .or_insert(row as u32);
                }
            }
        }
        let (audience_keys, user_aud, account_aud) = audiences(&ctx).await?;
        let user_events = recent_events(&ctx, &m, &user_ids, row_of).await?;

        // Accounts.
        let accounts = one_batch(
            ctx.table("accounts")
                .await?
                .sort(vec![col("account_id").sort(true, false)])?,
        )
        .await?;
        let account_fixed = ["account_id", "first_seen", "last_seen", "users"];
        let account_traits: Vec<TraitColumn> = accounts
            .schema()
            .fields()
            .iter()
            .enumerate()
            .filter(|(_, f)| !account_fixed.contains(&f.name().as_str()))
            .map(|(i, f)| TraitColumn {
                name: f.name().clone(),
                class: class_of(f.name(), true),
                values: accounts.column(i).clone(),
            })
            .collect();
        let account_ids: Vec<String> = texts(accounts.column_by_name("account_id").unwrap())?
            .into_iter()
            .map(Option::unwrap_or_default)
            .collect();
        let mut account_lookup = HashMap::with_capacity(account_ids.len());
        let mut account_ext = Vec::with_capacity(account_ids.len());
        for (row, id) in account_ids.iter().enumerate() {
            account_lookup.insert(format!("group_id:{id}").into_boxed_str(), row as u32);
            account_ext.push((
                row as u32,
                ExternalId {
                    id_type: "group_id".into(),
                    id_value: id.clone(),
                    first_seen: None,
                    last_seen: None,
                },
            ));
        }
        // Links both ways, from the group calls (`account_links`).
        let mut account_users: Vec<(u32, String)> = Vec::new();
        let mut user_accounts: Vec<(u32, String)> = Vec::new();
        if m.tables.contains_key(crate::read::published::ACCOUNT_LINKS) {
            let links = one_batch(
                ctx.table(crate::read::published::ACCOUNT_LINKS)
                    .await?
                    .select_columns(&["account_id", "profile_id"])?,
            )
            .await?;
            let acc = texts(links.column(0))?;
            let prof = texts(links.column(1))?;
            for (a, p) in acc.into_iter().zip(prof) {
                let (Some(a), Some(p)) = (a, p) else { continue };
                if let Some(urow) = row_of(&user_ids, &p) {
                    user_accounts.push((urow, a.clone()));
                }
                if let Some(arow) = row_of(&account_ids, &a) {
                    account_users.push((arow, p));
                }
            }
        }
        user_accounts.sort();
        account_users.sort();

        let (user_first, user_last) = (
            times(profiles.column_by_name("first_seen").unwrap())?,
            times(profiles.column_by_name("last_seen").unwrap())?,
        );
        let (acc_first, acc_last) = (
            times(accounts.column_by_name("first_seen").unwrap())?,
            times(accounts.column_by_name("last_seen").unwrap())?,
        );
        let n_users = user_ids.len();
        let n_accounts = account_ids.len();
        let user_aud = by_row(&user_ids, user_aud);
        let account_aud = by_row(&account_ids, account_aud);
        Ok(Some(SpaceIndex {
            run_id: m.run_id.clone(),
            as_of,
            users: Collection {
                lookup,
                first_seen: user_first,
                last_seen: user_last,
                traits: sorted(user_traits),
                audience_keys: audience_keys.clone(),
                members: members(audience_keys.len(), &user_aud),
                audiences: Ranges::from_sorted(n_users, user_aud),
                external_ids: Ranges::from_sorted(n_users, ext),
                links: Ranges::from_sorted(n_users, user_accounts),
                events: Ranges::from_sorted(n_users, user_events),
                ids: user_ids,
            },
            accounts: Collection {
                lookup: account_lookup,
                first_seen: acc_first,
                last_seen: acc_last,
                traits: sorted(account_traits),
                members: members(audience_keys.len(), &account_aud),
                audience_keys,
                audiences: Ranges::from_sorted(n_accounts, account_aud),
                external_ids: Ranges::from_sorted(n_accounts, account_ext),
                links: Ranges::from_sorted(n_accounts, account_users),
                events: Ranges::from_sorted(n_accounts, Vec::new()),
                ids: account_ids,
            },
        }))
    }
}

fn sorted(mut v: Vec<TraitColumn>) -> Vec<TraitColumn> {
    v.sort_by(|a, b| a.name.cmp(&b.name));
    v
}

/// `(profile id, membership)` sorted by profile id -> `(row, membership)`.
fn by_row(ids: &[String], v: Memberships) -> Vec<(u32, Membership)> {
    v.into_iter()
        .filter_map(|(p, m)| {
            ids.binary_search_by(|x| x.as_str().cmp(&p))
                .ok()
                .map(|r| (r as u32, m))
        })
        .collect()
}

/// Per audience, the rows that are members now (ascending, as `pairs` is sorted by row).
fn members(audiences: usize, pairs: &[(u32, Membership)]) -> Vec<Vec<u32>> {
    let mut out = vec![Vec::new(); audiences];
    for (row, m) in pairs {
        if m.member {
            out[m.audience as usize].push(*row);
        }
    }
    out
}

type Memberships = Vec<(String, Membership)>;

/// Audience keys, and per entity type every (id, audience, member now) of anyone who is or was
/// a member (`false` once exited, as Segment keeps the trait), sorted by id.
async fn audiences(ctx: &SessionContext) -> EngineResult<(Vec<String>, Memberships, Memberships)> {
    let now = ctx
        .table(crate::read::published::AUDIENCE_MEMBERSHIP)
        .await?
        .select(vec![
            col("audience_key").alias("m_key"),
            col("entity_type").alias("m_entity"),
            col("profile_id").alias("m_id"),
            col("entered_at").alias("m_entered_at"),
        ])?;
    let ever = ctx
        .table("audience_changes")
        .await?
        .select_columns(&["audience_key", "entity_type", "profile_id"])?
        .union(
            ctx.table(crate::read::published::AUDIENCE_MEMBERSHIP)
                .await?
                .select_columns(&["audience_key", "entity_type", "profile_id"])?,
        )?
        .distinct()?;
    let joined = ever
        .join(
            now,
            JoinType::Left,
            &["audience_key", "entity_type", "profile_id"],
            &["m_key", "m_entity", "m_id"],
            None,
        )?
        .select(vec![
            col("audience_key"),
            col("entity_type"),
            col("profile_id"),
            col("m_id").is_not_null().alias("member"),
            col("m_entered_at"),
        ])?
        .sort(vec![
            col("profile_id").sort(true, false),
            col("audience_key").sort(true, false),
        ])?;
    let b = one_batch(joined).await?;
    let keys_col = texts(b.column(0))?;
    let entity = texts(b.column(1))?;
    let ids = texts(b.column(2))?;
    let member = b.column(3).as_boolean();
    let entered = times(b.column(4))?;
    let mut keys: Vec<String> = keys_col.iter().flatten().cloned().collect();
    keys.sort();
    keys.dedup();
    let (mut users, mut accounts) = (Vec::new(), Vec::new());
    for i in 0..b.num_rows() {
        let (Some(k), Some(e), Some(id)) = (&keys_col[i], &entity[i], &ids[i]) else {
            continue;
        };
        let a = keys.binary_search(k).unwrap_or_default() as u32;
        let entry = (
            id.clone(),
            Membership {
                audience: a,
                member: member.value(i),
                entered_at: entered[i],
            },
        );
        if e == "accounts" {
            accounts.push(entry);
        } else {
            users.push(entry);
        }
    }
    Ok((keys, users, accounts))
}

/// The run's `profiles` column of its run record: which columns are computed or SQL traits.
async fn run_columns(ctx: &SessionContext, run_id: &str) -> EngineResult<Columns> {
    let b = one_batch(
        ctx.table("runs")
            .await?
            .filter(col("run_id").eq(lit(run_id)))?
            .select_columns(&["profiles"])?,
    )
    .await?;
    Ok(texts(b.column(0))?
        .into_iter()
        .flatten()
        .next()
        .and_then(|s| serde_json::from_str(&s).ok())
        .unwrap_or_default())
}

/// Each profile's events of the last 14 days (newest first), when the run published them.
async fn recent_events(
    ctx: &SessionContext,
    m: &manifest::Manifest,
    ids: &[String],
    row_of: impl Fn(&[String], &str) -> Option<u32>,
) -> EngineResult<Vec<(u32, RecentEvent)>> {
    if !m.tables.contains_key(crate::read::published::RECENT_EVENTS) {
        return Ok(Vec::new());
    }
    let b = one_batch(
        ctx.table(crate::read::published::RECENT_EVENTS)
            .await?
            .select_columns(&[
                "profile_id",
                "message_id",
                "type",
                "event",
                "timestamp",
                "properties",
                "traits",
                "context",
            ])?
            .sort(vec![
                col("profile_id").sort(true, false),
                col("timestamp").sort(false, false),
                col("message_id").sort(true, false),
            ])?,
    )
    .await?;
    let cols: Vec<Vec<Option<String>>> = [0, 1, 2, 3, 5, 6, 7]
        .iter()
        .map(|i| texts(b.column(*i)))
        .collect::<EngineResult<_>>()?;
    let ts = times(b.column(4))?;
    let mut out = Vec::with_capacity(b.num_rows());
    for i in 0..b.num_rows() {
        let (Some(p), Some(t)) = (&cols[0][i], ts[i]) else {
            continue;
        };
        let Some(row) = row_of(ids, p) else {
            continue;
        };
        out.push((
            row,
            RecentEvent {
                message_id: cols[1][i].clone().unwrap_or_default(),
                kind: cols[2][i].clone().unwrap_or_default(),
                event: cols[3][i].clone(),
                timestamp: t,
                properties: cols[4][i].clone(),
                traits: cols[5][i].clone(),
                context: cols[6][i].clone(),
            },
        ));
    }
    Ok(out)
}
