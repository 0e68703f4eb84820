//! `cohort explain identity`: why an identifier belongs to its profile, from the published run.
//!
//! Reads the last good run's `identities` and `identity_violations`, then re-reads the events
//! that carry the profile's identifiers (as of that run) and walks them in time order from the
//! profile's highest-priority identifier to the one asked about: each hop is an event that
//! carried both.

use std::collections::{HashMap, VecDeque};

use chrono::{DateTime, Utc};
use datafusion::arrow::array::{Array, AsArray, RecordBatch};
use datafusion::arrow::datatypes::TimestampMicrosecondType;
use datafusion::prelude::{col, lit};

use crate::error::{EngineError, EngineResult};
use crate::identity::text_column;
use crate::plan::identity::{ResolvedRules, occurrences};
use crate::run::tables::{published, stage};
use crate::spec::Space;
use crate::store::manifest;

/// An identifier of a profile.
#[derive(Clone, Debug, serde::Serialize)]
pub struct IdentifierRow {
    pub id_type: String,
    pub id_value: String,
    pub first_seen: DateTime<Utc>,
    pub last_seen: DateTime<Utc>,
}

/// One hop of a chain: `event` carried `from` and `to`.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Link {
    pub from: String,
    pub to: String,
    pub message_id: String,
    pub timestamp: DateTime<Utc>,
}

/// An event in which the identifier was blocked or dropped.
#[derive(Clone, Debug, serde::Serialize)]
pub struct ViolationRow {
    pub message_id: String,
    pub timestamp: DateTime<Utc>,
    pub rule: String,
    pub detail: Option<String>,
    pub profile_id: Option<String>,
}

/// Everything `explain identity` prints.
#[derive(Clone, Debug, serde::Serialize)]
pub struct IdentityExplanation {
    pub identifier: String,
    pub run_id: String,
    pub as_of: String,
    pub profile_id: Option<String>,
    pub identifiers: Vec<IdentifierRow>,
    pub chain: Vec<Link>,
    pub violations: Vec<ViolationRow>,
    /// How every identifier of the profile joined it: for each, the event that first linked it
    /// to one reached before it, breadth-first from the first identifier (the graph the web
    /// app draws; `chain` is the path in it to the identifier asked about).
    pub joins: Vec<Link>,
    /// Identifiers set aside (blocked or dropped) in events that went to this profile, oldest
    /// first, at most [`SET_ASIDE_SHOWN`].
    pub set_aside: Vec<SetAside>,
    /// The entries of repairs.yaml that name the identifier, as `repairs.yaml:<line> <kind>
    /// <identifiers>: <reason>`.
    pub repairs: Vec<String>,
}

/// An identifier set aside in one event of the profile.
#[derive(Clone, Debug, serde::Serialize)]
pub struct SetAside {
    /// `type:value`.
    pub identifier: String,
    pub message_id: String,
    pub timestamp: DateTime<Utc>,
    pub rule: String,
    pub detail: Option<String>,
}

/// How many set-aside identifiers [`IdentityExplanation::set_aside`] lists.
pub const SET_ASIDE_SHOWN: usize = 50;

fn ts(micros: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_micros(micros).unwrap_or_default()
}

/// Explains `id_type:id_value` in the last published run of `space`.
pub async fn explain_identity(
    space: &Space,
    id_type: &str,
    id_value: &str,
) -> EngineResult<IdentityExplanation> {
    let out = super::output_location(space)?;
    let m = manifest::read(&out).await?.ok_or_else(|| {
        EngineError::NotFound(format!(
            "`{}` has no published run yet: run `cohort run` first",
            space.name
        ))
    })?;
    let rules = ResolvedRules::from_spec(&space.identity);
    let Some(rule) = rules.types.iter().find(|t| t.id_type == id_type) else {
        let known: Vec<&str> = rules.types.iter().map(|t| t.id_type.as_str()).collect();
        return Err(EngineError::InvalidInput(format!(
            "`{id_type}` is not an identifier type of `{}` (its types: {})",
            space.name,
            known.join(", ")
        )));
    };
    let value = rule.normalize_text(id_value);
    let named = format!("{id_type}:{value}");
    let repairs: Vec<String> = rules
        .repairs
        .iter()
        .filter(|r| r.ids.iter().any(|i| i.text() == named))
        .map(|r| {
            let ids: Vec<String> = r.ids.iter().map(|i| i.text()).collect();
            format!("{} {} {}: {}", r.at, r.kind.word(), ids.join(" "), r.reason)
        })
        .collect();
    let as_of = DateTime::parse_from_rfc3339(&m.as_of)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|e| {
            EngineError::Store(crate::error::StoreError::Corrupt {
                what: "manifest".into(),
                reason: format!("as_of: {e}"),
            })
        })?;
    let ctx = super::query_session(space, as_of).await?;
    let mut ex = IdentityExplanation {
        identifier: format!("{id_type}:{value}"),
        run_id: m.run_id.clone(),
        as_of: m.as_of.clone(),
        profile_id: None,
        identifiers: Vec::new(),
        chain: Vec::new(),
        violations: Vec::new(),
        joins: Vec::new(),
        set_aside: Vec::new(),
        repairs,
    };

    // Violations of this identifier.
    let v = ctx
        .table(published::IDENTITY_VIOLATIONS)
        .await?
        .filter(
            col("id_type")
                .eq(lit(id_type))
                .and(col("id_value").eq(lit(value.as_str()))),
        )?
        .sort(vec![
            col("timestamp").sort(true, true),
            col("message_id").sort(true, true),
        ])?
        .limit(0, Some(20))?
        .select_columns(&["message_id", "timestamp", "rule", "detail", "profile_id"])?
        .collect()
        .await?;
    for b in &v {
        let msg = text_column(b.column(0))?;
        let t = b.column(1).as_primitive::<TimestampMicrosecondType>();
        let rule = text_column(b.column(2))?;
        let detail = text_column(b.column(3))?;
        let pid = text_column(b.column(4))?;
        for i in 0..b.num_rows() {
            ex.violations.push(ViolationRow {
                message_id: msg.value(i).to_string(),
                timestamp: ts(t.value(i)),
                rule: rule.value(i).to_string(),
                detail: (!detail.is_null(i)).then(|| detail.value(i).to_string()),
                profile_id: (!pid.is_null(i)).then(|| pid.value(i).to_string()),
            });
        }
    }

    // The profile.
    let found = ctx
        .table(published::IDENTITIES)
        .await?
        .filter(
            col("id_type")
                .eq(lit(id_type))
                .and(col("id_value").eq(lit(value.as_str()))),
        )?
        .select_columns(&["profile_id"])?
        .collect()
        .await?;
    let Some(first) = found.iter().find(|b| b.num_rows() > 0) else {
        return Ok(ex);
    };
    let profile_id = text_column(first.column(0))?.value(0).to_string();
    let rows = ctx
        .table(published::IDENTITIES)
        .await?
        .filter(col("profile_id").eq(lit(profile_id.as_str())))?
        .select_columns(&["id_type", "id_value", "first_seen", "last_seen"])?
        .collect()
        .await?;
    for b in &rows {
        let t = text_column(b.column(0))?;
        let v = text_column(b.column(1))?;
        let f = b.column(2).as_primitive::<TimestampMicrosecondType>();
        let l = b.column(3).as_primitive::<TimestampMicrosecondType>();
        for i in 0..b.num_rows() {
            ex.identifiers.push(IdentifierRow {
                id_type: t.value(i).to_string(),
                id_value: v.value(i).to_string(),
                first_seen: ts(f.value(i)),
                last_seen: ts(l.value(i)),
            });
        }
    }
    let rank_of = |t: &str| {
        rules
            .types
            .iter()
            .find(|r| r.id_type == t)
            .map_or(u32::MAX, |r| r.rank)
    };
    ex.identifiers.sort_by(|a, b| {
        (rank_of(&a.id_type), a.first_seen, &a.id_value).cmp(&(
            rank_of(&b.id_type),
            b.first_seen,
            &b.id_value,
        ))
    });
    ex.joins = joins(&ctx, &rules, &ex.identifiers).await?;
    ex.chain = chain(&ex.joins, &ex.identifier);
    ex.set_aside = set_aside(&ctx, &profile_id).await?;
    ex.profile_id = Some(profile_id);
    Ok(ex)
}

/// The hops from the profile's first identifier to `target` in the tree of [`joins`].
fn chain(joins: &[Link], target: &str) -> Vec<Link> {
    let parent: HashMap<&str, &Link> = joins.iter().map(|l| (l.to.as_str(), l)).collect();
    let mut links = Vec::new();
    let mut cur = target;
    while let Some(l) = parent.get(cur) {
        links.push((*l).clone());
        cur = l.from.as_str();
    }
    links.reverse();
    links
}

/// Identifiers set aside in the events that went to `profile_id`.
async fn set_aside(
    ctx: &datafusion::prelude::SessionContext,
    profile_id: &str,
) -> EngineResult<Vec<SetAside>> {
    let batches = ctx
        .table(published::IDENTITY_VIOLATIONS)
        .await?
        .filter(col("profile_id").eq(lit(profile_id)))?
        .sort(vec![
            col("timestamp").sort(true, true),
            col("message_id").sort(true, true),
            col("id_type").sort(true, true),
        ])?
        .limit(0, Some(SET_ASIDE_SHOWN))?
        .select_columns(&[
            "id_type",
            "id_value",
            "message_id",
            "timestamp",
            "rule",
            "detail",
        ])?
        .collect()
        .await?;
    let mut out = Vec::new();
    for b in &batches {
        let ty = text_column(b.column(0))?;
        let v = text_column(b.column(1))?;
        let msg = text_column(b.column(2))?;
        let t = b.column(3).as_primitive::<TimestampMicrosecondType>();
        let rule = text_column(b.column(4))?;
        let detail = text_column(b.column(5))?;
        for i in 0..b.num_rows() {
            out.push(SetAside {
                identifier: format!("{}:{}", ty.value(i), v.value(i)),
                message_id: msg.value(i).to_string(),
                timestamp: ts(t.value(i)),
                rule: rule.value(i).to_string(),
                detail: (!detail.is_null(i)).then(|| detail.value(i).to_string()),
            });
        }
    }
    Ok(out)
}

/// How each identifier of the profile was reached from its first one, over the events in
/// which both ends were kept: breadth-first, taking events in time order at each step.
async fn joins(
    ctx: &datafusion::prelude::SessionContext,
    rules: &ResolvedRules,
    identifiers: &[IdentifierRow],
) -> EngineResult<Vec<Link>> {
    let Some(start) = identifiers.first() else {
        return Ok(Vec::new());
    };
    let start = format!("{}:{}", start.id_type, start.id_value);
    if identifiers.len() == 1 {
        return Ok(Vec::new());
    }
    let events = ctx.table(stage::EVENTS).await?.into_unoptimized_plan();
    let Some(occ) = occurrences(ctx, events, rules)? else {
        return Ok(Vec::new());
    };
    let occ = crate::plan::repairs::repaired(ctx, occ, &rules.repairs).await?;
    let nodes: Vec<_> = identifiers
        .iter()
        .map(|i| lit(crate::functions::node_code(&i.id_type, &i.id_value)))
        .collect();
    let dropped = ctx
        .table(published::IDENTITY_VIOLATIONS)
        .await?
        .filter(col("rule").eq(lit("limit")))?
        .select(vec![
            col("message_id").alias("d_message_id"),
            col("id_type").alias("d_id_type"),
            col("id_value").alias("d_id_value"),
        ])?;
    let batches: Vec<RecordBatch> = ctx
        .execute_logical_plan(occ)
        .await?
        .filter(
            col("violation")
                .is_null()
                .and(col("node").in_list(nodes, false)),
        )?
        .join(
            dropped,
            datafusion::common::JoinType::LeftAnti,
            &["message_id", "id_type", "id_value"],
            &["d_message_id", "d_id_type", "d_id_value"],
            None,
        )?
        .sort(vec![
            col("timestamp").sort(true, true),
            col("message_id").sort(true, true),
            col("rank").sort(true, true),
        ])?
        .select_columns(&["message_id", "timestamp", "id_type", "id_value"])?
        .collect()
        .await?;
    // Events in time order, each with its identifiers of this profile.
    let mut evs: Vec<(String, i64, Vec<String>)> = Vec::new();
    for b in &batches {
        let msg = text_column(b.column(0))?;
        let t = b.column(1).as_primitive::<TimestampMicrosecondType>();
        let ty = text_column(b.column(2))?;
        let v = text_column(b.column(3))?;
        for i in 0..b.num_rows() {
            let id = format!("{}:{}", ty.value(i), v.value(i));
            match evs.last_mut() {
                Some(e) if e.0 == msg.value(i) && e.1 == t.value(i) => e.2.push(id),
                _ => evs.push((msg.value(i).to_string(), t.value(i), vec![id])),
            }
        }
    }
    // Breadth-first from the start, taking events in time order at each step.
    let mut by_id: HashMap<&str, Vec<usize>> = HashMap::new();
    for (i, e) in evs.iter().enumerate() {
        for id in &e.2 {
            by_id.entry(id.as_str()).or_default().push(i);
        }
    }
    let mut links = Vec::new();
    let mut queue = VecDeque::from([start.clone()]);
    let mut seen = std::collections::HashSet::from([start]);
    while let Some(cur) = queue.pop_front() {
        for &ei in by_id.get(cur.as_str()).map(Vec::as_slice).unwrap_or(&[]) {
            let e = &evs[ei];
            for other in &e.2 {
                if seen.insert(other.clone()) {
                    links.push(Link {
                        from: cur.clone(),
                        to: other.clone(),
                        message_id: e.0.clone(),
                        timestamp: ts(e.1),
                    });
                    queue.push_back(other.clone());
                }
            }
        }
    }
    Ok(links)
}
