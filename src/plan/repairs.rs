//! repairs.yaml applied to a run's identifier occurrences, before the identity stage reads
//! them.
//!
//! Every repair is a change to the occurrences, so the stage itself, its sequential replay,
//! its SQL scripts and its incremental runs apply repairs without knowing of them. In the
//! order of the sequential rule (docs/identity.md), repairs sit between step 2 (an event's
//! usable identifiers) and step 3 (limits):
//!
//! - `block X`: every occurrence of X is set aside (rule `repair_block`), as a blocked value.
//! - `split X`: in every event carrying X, the other usable identifiers are set aside (rule
//!   `repair_split`), so the event goes with X and links X to nothing. When one event carries
//!   two split identifiers, both stay.
//! - `unlink X`: X is set aside (rule `repair_unlink`) from every event that carries a usable
//!   identifier that is not unlinked, so X links nothing and keeps only the events that carry
//!   it alone. An event whose every usable identifier is unlinked keeps its first one (by
//!   priority, then value).
//! - `merge A B`: the event in which the later of the two is first seen (by timestamp, then
//!   message id) carries the other one as well, so the sequential rule merges their profiles
//!   there, limits permitting. A merge whose identifiers are not both seen does nothing.
//!
//! Set-aside occurrences are published in `identity_violations` with the entry and its reason
//! as their detail.

use std::collections::BTreeMap;
use std::sync::Arc;

use datafusion::arrow::array::{Array, AsArray};
use datafusion::arrow::datatypes::{DataType, Int64Type, TimestampMicrosecondType};
use datafusion::common::{JoinType, Result, ScalarValue};
use datafusion::functions_aggregate::expr_fn::{count, first_value, min};
use datafusion::logical_expr::{Expr, LogicalPlan, LogicalPlanBuilder, cast, when};
use datafusion::prelude::{DataFrame, SessionContext, col, lit};

use crate::spec::RepairKind;

/// The rules a repair sets occurrences aside under.
pub const RULE_BLOCK: &str = "repair_block";
pub const RULE_UNLINK: &str = "repair_unlink";
pub const RULE_SPLIT: &str = "repair_split";

/// One identifier a repair names, normalized as its type is.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct RepairId {
    pub id_type: String,
    pub id_value: String,
    pub node: i64,
}

impl RepairId {
    pub fn text(&self) -> String {
        format!("{}:{}", self.id_type, self.id_value)
    }
}

/// One entry of repairs.yaml, resolved against the identity rules.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Repair {
    pub kind: RepairKind,
    pub ids: Vec<RepairId>,
    pub reason: String,
    /// `repairs.yaml:<line>`.
    pub at: String,
}

impl Repair {
    /// What a set-aside occurrence records as its detail: the entry and its reason, not its
    /// line (an entry written above it moves it, and the rows of events no changed repair
    /// reaches are kept from the previous run).
    pub fn detail(&self) -> String {
        let ids: Vec<String> = self.ids.iter().map(RepairId::text).collect();
        format!("{} {}: {}", self.kind.word(), ids.join(" "), self.reason)
    }
}

fn df(ctx: &SessionContext, plan: LogicalPlan) -> DataFrame {
    DataFrame::new(ctx.state(), plan)
}

/// `(r_node, r_kind, r_detail)` for every block, unlink and split.
fn marked_nodes(repairs: &[Repair]) -> Result<Option<LogicalPlan>> {
    let rows: Vec<Vec<Expr>> = repairs
        .iter()
        .filter(|r| r.kind != RepairKind::Merge)
        .flat_map(|r| {
            r.ids
                .iter()
                .map(move |id| vec![lit(id.node), lit(r.kind.word()), lit(r.detail())])
        })
        .collect();
    if rows.is_empty() {
        return Ok(None);
    }
    named_values(rows, &["r_node", "r_kind", "r_detail"]).map(Some)
}

/// A `VALUES` list of `rows` with its columns named `names`.
fn named_values(rows: Vec<Vec<Expr>>, names: &[&str]) -> Result<LogicalPlan> {
    let plan = LogicalPlanBuilder::values(rows)?.build()?;
    let exprs: Vec<Expr> = plan
        .schema()
        .columns()
        .into_iter()
        .zip(names)
        .map(|(c, n)| Expr::Column(c).alias(*n))
        .collect();
    LogicalPlanBuilder::from(plan).project(exprs)?.build()
}

/// `occ` (the columns of `plan::identity::OCCURRENCE_COLUMNS`) with `repairs` applied (see
/// the module docs). Reads the occurrences of merged identifiers to find where they meet.
pub async fn repaired(
    ctx: &SessionContext,
    occ: LogicalPlan,
    repairs: &[Repair],
) -> Result<LogicalPlan> {
    if repairs.is_empty() {
        return Ok(occ);
    }
    let occ = per_event(ctx, occ, repairs)?;
    Ok(match merge_occurrences(ctx, &occ, repairs).await? {
        Some(a) => occ.union(a)?.into_unoptimized_plan(),
        None => occ.into_unoptimized_plan(),
    })
}

/// [`repaired`] for occurrences kept in buckets of events (`parts` of `whole`): each bucket
/// with its events' repairs, and the occurrences merges add to its events (where merged
/// identifiers meet is found over `whole`).
pub async fn repaired_parts(
    ctx: &SessionContext,
    whole: LogicalPlan,
    parts: Vec<LogicalPlan>,
    repairs: &[Repair],
) -> Result<Vec<LogicalPlan>> {
    if repairs.is_empty() {
        return Ok(parts);
    }
    let added = merge_occurrences(ctx, &per_event(ctx, whole, repairs)?, repairs).await?;
    let mut out = Vec::with_capacity(parts.len());
    for part in parts {
        let events = df(ctx, part.clone())
            .select(vec![col("message_id").alias("p_message_id")])?
            .distinct()?;
        let mut repaired = per_event(ctx, part, repairs)?;
        if let Some(a) = &added {
            let here = a.clone().join(
                events,
                JoinType::LeftSemi,
                &["message_id"],
                &["p_message_id"],
                None,
            )?;
            repaired = repaired.union(here)?;
        }
        out.push(repaired.into_unoptimized_plan());
    }
    Ok(out)
}

/// [`repaired`] without merges: blocks, unlinks and splits, which need nothing but each
/// event's own occurrences (what live identity applies to the events it receives).
pub fn repaired_events(
    ctx: &SessionContext,
    occ: LogicalPlan,
    repairs: &[Repair],
) -> Result<LogicalPlan> {
    if repairs.is_empty() {
        return Ok(occ);
    }
    Ok(per_event(ctx, occ, repairs)?.into_unoptimized_plan())
}

/// Blocks, unlinks and splits: each event's occurrences, changed by the repairs of the
/// identifiers it carries.
fn per_event(ctx: &SessionContext, occ: LogicalPlan, repairs: &[Repair]) -> Result<DataFrame> {
    let names: Vec<String> = occ
        .schema()
        .fields()
        .iter()
        .map(|f| f.name().clone())
        .collect();
    let columns = |extra: Vec<(&str, Expr)>| -> Vec<Expr> {
        names
            .iter()
            .map(|n| match extra.iter().find(|(e, _)| e == n) {
                Some((_, x)) => x.clone().alias(n.as_str()),
                None => col(n.as_str()),
            })
            .collect()
    };
    let mut occ = df(ctx, occ);
    if let Some(marked) = marked_nodes(repairs)? {
        // Each occurrence with the repair of its identifier (at most one: repairs.yaml names
        // an identifier in one block, unlink or split). The small side of every join comes
        // first: a hash join holds its first side in memory, and the occurrences have a row
        // per identifier of every event.
        let joined = df(ctx, marked).join(occ, JoinType::Right, &["r_node"], &["node"], None)?;
        let usable = || col("violation").is_null();
        let kind_is = |k: RepairKind| col("r_kind").eq(lit(k.word()));
        // Blocks first: a blocked identifier is not usable for what follows.
        let blocked = usable().and(kind_is(RepairKind::Block));
        let joined = joined.select(vec![
            col("message_id"),
            col("timestamp"),
            col("id_type"),
            col("id_value"),
            col("rank"),
            col("node"),
            when(blocked.clone(), lit(RULE_BLOCK))
                .otherwise(col("violation"))?
                .alias("violation"),
            when(blocked, col("r_detail"))
                .otherwise(col("violation_detail"))?
                .alias("violation_detail"),
            col("r_kind"),
            col("r_detail"),
        ])?;
        // Per event that carries an unlinked or split identifier: how many usable ones are
        // not unlinked, the first split one's detail, the first unlinked one.
        let touched = joined
            .clone()
            .filter(usable().and(kind_is(RepairKind::Unlink).or(kind_is(RepairKind::Split))))?
            .select(vec![col("message_id").alias("t_message_id")])?
            .distinct()?;
        let per_event = touched
            .join(
                joined.clone().filter(usable())?,
                JoinType::RightSemi,
                &["t_message_id"],
                &["message_id"],
                None,
            )?
            .aggregate(
                vec![col("message_id").alias("e_message_id")],
                vec![
                    count(
                        when(kind_is(RepairKind::Unlink), lit(ScalarValue::Null))
                            .otherwise(lit(1))?,
                    )
                    .alias("e_linking"),
                    min(when(kind_is(RepairKind::Split), col("r_detail")).end()?).alias("e_split"),
                    first_value(
                        when(kind_is(RepairKind::Unlink), col("node")).end()?,
                        vec![
                            kind_is(RepairKind::Unlink).is_not_true().sort(true, true),
                            col("rank").sort(true, true),
                            col("id_value").sort(true, true),
                        ],
                    )
                    .alias("e_first_unlinked"),
                ],
            )?;
        let joined = per_event.join(
            joined,
            JoinType::Right,
            &["e_message_id"],
            &["message_id"],
            None,
        )?;
        // Split: the event's other identifiers are set aside. Unlink: the identifier is set
        // aside when the event has another that is not unlinked, or when it is not the
        // event's first unlinked one.
        let split_other = usable()
            .and(col("e_split").is_not_null())
            .and(kind_is(RepairKind::Split).is_not_true());
        let unlinked = usable()
            .and(col("e_split").is_null())
            .and(kind_is(RepairKind::Unlink))
            .and(
                col("e_linking")
                    .gt(lit(0i64))
                    .or(col("node").not_eq(col("e_first_unlinked"))),
            );
        occ = joined.select(columns(vec![
            (
                "violation",
                when(split_other.clone(), lit(RULE_SPLIT))
                    .when(unlinked.clone(), lit(RULE_UNLINK))
                    .otherwise(col("violation"))?,
            ),
            (
                "violation_detail",
                when(split_other, col("e_split"))
                    .when(unlinked, col("r_detail"))
                    .otherwise(col("violation_detail"))?,
            ),
        ]))?;
    }
    Ok(occ)
}

/// The occurrences merges add: for each merge whose identifiers are both usable somewhere,
/// the earlier-seen one in the event where the later one is first seen.
async fn merge_occurrences(
    ctx: &SessionContext,
    occ: &DataFrame,
    repairs: &[Repair],
) -> Result<Option<DataFrame>> {
    let merges: Vec<&Repair> = repairs
        .iter()
        .filter(|r| r.kind == RepairKind::Merge)
        .collect();
    if merges.is_empty() {
        return Ok(None);
    }
    let nodes: Vec<Expr> = merges
        .iter()
        .flat_map(|r| r.ids.iter().map(|i| lit(i.node)))
        .collect();
    let usable = occ.clone().filter(
        col("violation")
            .is_null()
            .and(col("node").in_list(nodes, false)),
    )?;
    // Each merged identifier's first event.
    let firsts = usable
        .clone()
        .aggregate(
            vec![col("node")],
            vec![
                min(col("timestamp")).alias("first_ts"),
                first_value(
                    cast(col("message_id"), DataType::Utf8),
                    vec![
                        col("timestamp").sort(true, true),
                        col("message_id").sort(true, true),
                    ],
                )
                .alias("first_message"),
            ],
        )?
        .select(vec![
            col("node"),
            cast(
                col("first_ts"),
                DataType::Timestamp(
                    datafusion::arrow::datatypes::TimeUnit::Microsecond,
                    Some(Arc::from("UTC")),
                ),
            )
            .alias("first_ts"),
            col("first_message"),
        ])?
        .collect()
        .await?;
    let mut first: BTreeMap<i64, (i64, String)> = BTreeMap::new();
    for b in &firsts {
        let node = b.column(0).as_primitive::<Int64Type>();
        let ts = b.column(1).as_primitive::<TimestampMicrosecondType>();
        let msg = b.column(2).as_string::<i32>();
        for i in 0..b.num_rows() {
            if node.is_valid(i) && ts.is_valid(i) && msg.is_valid(i) {
                first.insert(node.value(i), (ts.value(i), msg.value(i).to_string()));
            }
        }
    }
    // (node to add, its own first event, the event to add it to, that event's time).
    let mut rows: Vec<(i64, String, String, i64)> = Vec::new();
    for r in &merges {
        let (Some(a), Some(b)) = (first.get(&r.ids[0].node), first.get(&r.ids[1].node)) else {
            continue;
        };
        let ((early, early_at), late_at) = if (a.0, &a.1) <= (b.0, &b.1) {
            ((r.ids[0].node, a), b)
        } else {
            ((r.ids[1].node, b), a)
        };
        if early_at.1 != late_at.1 {
            rows.push((early, early_at.1.clone(), late_at.1.clone(), late_at.0));
        }
    }
    if rows.is_empty() {
        return Ok(None);
    }
    let values: Vec<Vec<Expr>> = rows
        .iter()
        .map(|(node, own, to, ts)| {
            vec![
                lit(*node),
                lit(own.as_str()),
                lit(to.as_str()),
                lit(ScalarValue::TimestampMicrosecond(
                    Some(*ts),
                    Some(Arc::from("UTC")),
                )),
            ]
        })
        .collect();
    let adds = df(
        ctx,
        named_values(values, &["m_node", "m_own", "m_to", "m_ts"])?,
    );
    let schema = occ.schema().clone();
    let cast_to = |name: &str, e: Expr| -> Result<Expr> {
        let t = schema
            .field_with_unqualified_name(name)?
            .data_type()
            .clone();
        Ok(cast(e, t).alias(name))
    };
    // The identifier's own occurrence in its first event, moved to the other's first event
    // (an identifier given twice in one event is one occurrence, so this is one row).
    let added = usable
        .join_on(
            adds,
            JoinType::Inner,
            [
                col("node").eq(col("m_node")),
                cast(col("message_id"), DataType::Utf8).eq(col("m_own")),
            ],
        )?
        .select(vec![
            cast_to("message_id", col("m_to"))?,
            cast_to("timestamp", col("m_ts"))?,
            col("id_type"),
            col("id_value"),
            col("rank"),
            col("node"),
            col("violation"),
            col("violation_detail"),
        ])?
        .distinct()?;
    Ok(Some(added))
}
