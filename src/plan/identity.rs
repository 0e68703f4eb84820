//! identity.yaml as a plan: every identifier occurrence of every event, normalized and checked
//! against the blocked lists, as rows the identity stage resolves.
//!
//! Output columns (see [`OCCURRENCE_COLUMNS`]): `message_id`, `timestamp`, `id_type`,
//! `id_value` (trimmed, then the type's normalizations), `rank` (0 = the highest priority),
//! `node` (a stable 64-bit code of type and value) and `violation`: null for a usable
//! identifier, else the rule it broke (`blocked_value`, `blocked_pattern`, `too_long`,
//! `control_character`, `invalid_utf8`), with the rule's detail in `violation_detail`.

use datafusion::arrow::datatypes::DataType;
use datafusion::common::{DFSchema, Result, ScalarValue};
use datafusion::functions::expr_fn::{
    btrim, character_length, lower, regexp_like, regexp_replace, upper,
};
use datafusion::logical_expr::{Expr, LogicalPlan, LogicalPlanBuilder, when};
use datafusion::prelude::{SessionContext, col, lit};

use crate::functions::{external_ids, id_node, json_get, node_code};
use crate::plan::repairs::{Repair, RepairId};
use crate::spec::{DEFAULT_BLOCKED_PATTERNS, DEFAULT_BLOCKED_VALUES, IdentityRules, LimitPeriod};

/// The longest identifier value accepted, in characters.
pub const MAX_ID_CHARS: i64 = 1000;

/// Columns of the occurrence plan, in order.
pub const OCCURRENCE_COLUMNS: [&str; 8] = [
    "message_id",
    "timestamp",
    "id_type",
    "id_value",
    "rank",
    "node",
    "violation",
    "violation_detail",
];

/// One identifier type as the engine uses it: priority turned into a rank, defaults filled.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct IdType {
    pub id_type: String,
    /// 0 is the highest priority.
    pub rank: u32,
    /// Most values of this type one profile may hold (added within one `period`, when set).
    pub limit: u64,
    /// The sliding window `limit` counts over; `None` counts every value ever added. Left out
    /// of the fingerprint when `None`, so rules written before periods existed keep theirs.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub period: Option<LimitPeriod>,
    pub from: Vec<String>,
    pub normalize: Vec<String>,
}

impl IdType {
    /// Whether a profile holds at most one value of this type: a limit of 1 ever (`1 weekly`
    /// lets a profile gather one a week).
    pub fn single(&self) -> bool {
        self.limit == 1 && self.period.is_none()
    }

    /// `value` as the run normalizes this type's values: trimmed, then each keyword step
    /// (a SQL step is left out: such a value must be written normalized).
    pub fn normalize_text(&self, value: &str) -> String {
        let mut v = value.trim().to_string();
        for step in &self.normalize {
            v = match step.as_str() {
                "lowercase" => v.to_lowercase(),
                "uppercase" => v.to_uppercase(),
                "trim" => v.trim().to_string(),
                "digits_only" => v.chars().filter(char::is_ascii_digit).collect(),
                _ => v,
            };
        }
        v
    }

    /// The limit's window in microseconds, `None` for ever.
    pub fn window_micros(&self) -> Option<i64> {
        self.period.map(LimitPeriod::micros)
    }
}

/// The identity rules of a space, resolved: types in priority order, every block list.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct ResolvedRules {
    pub types: Vec<IdType>,
    /// Lower-cased exact values, defaults first.
    pub blocked_values: Vec<String>,
    pub blocked_patterns: Vec<String>,
    /// repairs.yaml, resolved. Not part of the fingerprint: a run resolves again only what a
    /// changed repair names (see `run::stages::identity_affected`).
    #[serde(skip)]
    pub repairs: Vec<Repair>,
}

impl ResolvedRules {
    /// Orders the types: explicit priorities first (lower number first), then `user_id`,
    /// `email`, then the rest alphabetically; ties by name. `group_id` is left out: it
    /// identifies accounts, not people.
    pub fn from_spec(rules: &IdentityRules) -> ResolvedRules {
        let mut defs: Vec<_> = rules
            .identifiers
            .iter()
            .filter(|d| d.id_type != "group_id")
            .collect();
        let default_key = |t: &str| match t {
            "user_id" => 1,
            "email" => 2,
            _ => 3,
        };
        defs.sort_by(|a, b| {
            let ka = (a.priority.unwrap_or(u32::MAX), default_key(&a.id_type));
            let kb = (b.priority.unwrap_or(u32::MAX), default_key(&b.id_type));
            ka.cmp(&kb).then_with(|| a.id_type.cmp(&b.id_type))
        });
        let types: Vec<IdType> = defs
            .iter()
            .enumerate()
            .map(|(i, d)| IdType {
                id_type: d.id_type.clone(),
                rank: i as u32,
                limit: u64::from(
                    d.limit
                        .unwrap_or(if d.id_type == "user_id" { 1 } else { 5 }),
                ),
                period: d.period,
                from: d.from.clone(),
                normalize: d.normalize.clone(),
            })
            .collect();
        let mut blocked_values: Vec<String> = DEFAULT_BLOCKED_VALUES
            .iter()
            .map(|s| s.to_string())
            .collect();
        for v in &rules.blocked_values {
            let v = v.trim().to_lowercase();
            if !blocked_values.contains(&v) {
                blocked_values.push(v);
            }
        }
        let mut blocked_patterns: Vec<String> = DEFAULT_BLOCKED_PATTERNS
            .iter()
            .map(|s| s.to_string())
            .collect();
        for p in &rules.blocked_patterns {
            if !blocked_patterns.contains(p) {
                blocked_patterns.push(p.clone());
            }
        }
        let repairs = rules
            .repairs
            .iter()
            .filter_map(|r| {
                let ids = r
                    .ids
                    .iter()
                    .map(|(t, v)| {
                        let t = types.iter().find(|x| x.id_type == *t)?;
                        let id_value = t.normalize_text(v);
                        Some(RepairId {
                            node: node_code(&t.id_type, &id_value),
                            id_type: t.id_type.clone(),
                            id_value,
                        })
                    })
                    .collect::<Option<Vec<_>>>()?;
                Some(Repair {
                    kind: r.kind,
                    ids,
                    reason: r.reason.clone(),
                    at: format!("repairs.yaml:{}", r.loc.line),
                })
            })
            .collect();
        ResolvedRules {
            types,
            blocked_values,
            blocked_patterns,
            repairs,
        }
    }

    /// A stable fingerprint: a change forces a full identity rebuild.
    pub fn fingerprint(&self) -> String {
        let text = serde_json::to_string(self).unwrap_or_default();
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        for b in text.as_bytes() {
            h ^= u64::from(*b);
            h = h.wrapping_mul(0x0000_0100_0000_01b3);
        }
        format!("{h:016x}")
    }
}

/// The raw text of a Segment message path in the normalized event view; `None` for
/// `context.externalIds` paths, which yield several values (see [`occurrences`]).
fn path_expr(path: &str) -> Option<Expr> {
    let (root, rest) = path.split_once('.').unwrap_or((path, ""));
    Some(match root {
        "userId" => col("user_id"),
        "anonymousId" => col("anonymous_id"),
        "previousId" => col("previous_id"),
        "groupId" => col("group_id"),
        "traits" => json_get(col("traits"), rest),
        "properties" => json_get(col("properties"), rest),
        "context" if rest == "externalIds" || rest.starts_with("externalIds.") => return None,
        "context" => json_get(col("context"), rest),
        _ => lit(ScalarValue::Utf8(None)),
    })
}

/// One normalization step on `value`: a keyword, or a SQL expression over `value`.
fn normalize_step(ctx: &SessionContext, step: &str, value: Expr) -> Result<Expr> {
    Ok(match step {
        "lowercase" => lower(value),
        "uppercase" => upper(value),
        "trim" => btrim(vec![value]),
        "digits_only" => regexp_replace(value, lit("[^0-9]"), lit(""), Some(lit("g"))),
        sql => {
            let schema = DFSchema::from_unqualified_fields(
                vec![datafusion::arrow::datatypes::Field::new(
                    "value",
                    DataType::Utf8,
                    true,
                )]
                .into(),
                Default::default(),
            )?;
            let e = ctx.parse_sql_expr(sql, &schema)?;
            use datafusion::common::tree_node::TreeNode;
            let replaced = e.transform(|e| {
                Ok(match &e {
                    Expr::Column(c) if c.name == "value" => {
                        datafusion::common::tree_node::Transformed::yes(value.clone())
                    }
                    _ => datafusion::common::tree_node::Transformed::no(e),
                })
            })?;
            datafusion::logical_expr::cast(replaced.data, DataType::Utf8)
        }
    })
}

/// Every identifier occurrence of `events` (the normalized event view) under `rules`.
pub fn occurrences(
    ctx: &SessionContext,
    events: LogicalPlan,
    rules: &ResolvedRules,
) -> Result<Option<LogicalPlan>> {
    occurrences_from_raw(ctx, raw_identifiers(events, rules)?, rules)
}

/// The raw text of every identifier path, read in one pass over `events`: `message_id`,
/// `timestamp` and one column `raw_<i>` per (type, path) of `rules`, in order (a list of
/// text for `context.externalIds`). Materialize it once and feed it to
/// [`occurrences_from_raw`], which reads it once per path.
pub fn raw_identifiers(events: LogicalPlan, rules: &ResolvedRules) -> Result<LogicalPlan> {
    let mut exprs = vec![col("message_id"), col("timestamp")];
    for (i, (t, path)) in paths(rules).enumerate() {
        let e = match path_expr(path) {
            Some(e) => e,
            None => external_ids(
                col("context"),
                path.strip_prefix("context.externalIds.")
                    .unwrap_or(&t.id_type),
            ),
        };
        exprs.push(e.alias(format!("raw_{i}")));
    }
    LogicalPlanBuilder::from(events).project(exprs)?.build()
}

fn paths(rules: &ResolvedRules) -> impl Iterator<Item = (&IdType, &str)> {
    rules
        .types
        .iter()
        .flat_map(|t| t.from.iter().map(move |p| (t, p.as_str())))
}

/// Occurrences from the output of [`raw_identifiers`].
pub fn occurrences_from_raw(
    ctx: &SessionContext,
    raw: LogicalPlan,
    rules: &ResolvedRules,
) -> Result<Option<LogicalPlan>> {
    // Per identifier type: its paths' occurrences, and whether one event can give a value of
    // it twice (two paths, or a list).
    let mut per_type: Vec<(&str, Vec<LogicalPlan>, bool)> = Vec::new();
    for (i, (t, path)) in paths(rules).enumerate() {
        let name = format!("raw_{i}");
        let base = LogicalPlanBuilder::from(raw.clone()).project(vec![
            col("message_id"),
            col("timestamp"),
            col(&name).alias("raw"),
        ])?;
        let list = path_expr(path).is_none();
        let base = if list {
            base.unnest_column("raw")?
        } else {
            base
        };
        let mut value = btrim(vec![col("raw")]);
        for step in &t.normalize {
            value = normalize_step(ctx, step, value)?;
        }
        let typed = base
            .filter(col("raw").is_not_null())?
            .project(vec![
                col("message_id"),
                col("timestamp"),
                lit(t.id_type.as_str()).alias("id_type"),
                value.alias("id_value"),
                lit(t.rank as i32).alias("rank"),
            ])?
            .filter(col("id_value").is_not_null())?
            .build()?;
        match per_type.last_mut() {
            Some((id_type, parts, repeats)) if *id_type == t.id_type.as_str() => {
                parts.push(typed);
                *repeats = true;
            }
            _ => per_type.push((t.id_type.as_str(), vec![typed], list)),
        }
    }
    // The same identifier twice in one event (traits.email and context.traits.email) is one
    // occurrence. Only a type that can repeat is made distinct, and each type on its own:
    // events are unique by message id, so other types cannot repeat, and one distinct over
    // every occurrence of every type is the costliest step of the stage.
    let mut union: Option<LogicalPlanBuilder> = None;
    for (_, parts, repeats) in per_type {
        let mut one = LogicalPlanBuilder::from(parts[0].clone());
        for p in parts.into_iter().skip(1) {
            one = one.union(p)?;
        }
        if repeats {
            one = one.distinct()?;
        }
        union = Some(match union {
            Some(u) => u.union(one.build()?)?,
            None => one,
        });
    }
    let Some(distinct) = union else {
        return Ok(None);
    };
    let v = || col("id_value");
    let mut check = when(v().like(lit("%\u{FFFD}%")), lit("invalid_utf8"))
        .when(character_length(v()).gt(lit(MAX_ID_CHARS)), lit("too_long"))
        .when(
            regexp_like(v(), lit("[\\x00-\\x1f\\x7f]"), None),
            lit("control_character"),
        )
        .when(
            lower(v()).in_list(
                rules
                    .blocked_values
                    .iter()
                    .map(|b| lit(b.as_str()))
                    .collect(),
                false,
            ),
            lit("blocked_value"),
        );
    let mut detail = when(v().like(lit("%\u{FFFD}%")), lit("bytes that are not UTF-8"))
        .when(
            character_length(v()).gt(lit(MAX_ID_CHARS)),
            lit(format!("longer than {MAX_ID_CHARS} characters")),
        )
        .when(
            regexp_like(v(), lit("[\\x00-\\x1f\\x7f]"), None),
            lit("a control character"),
        )
        .when(
            lower(v()).in_list(
                rules
                    .blocked_values
                    .iter()
                    .map(|b| lit(b.as_str()))
                    .collect(),
                false,
            ),
            lit("on the blocked values list"),
        );
    for p in &rules.blocked_patterns {
        check = check.when(
            regexp_like(v(), lit(p.as_str()), None),
            lit("blocked_pattern"),
        );
        detail = detail.when(
            regexp_like(v(), lit(p.as_str()), None),
            lit(format!("blocked pattern {p}")),
        );
    }
    let violation = check.otherwise(lit(ScalarValue::Utf8(None)))?;
    let detail = detail.otherwise(lit(ScalarValue::Utf8(None)))?;
    distinct
        .project(vec![
            col("message_id"),
            col("timestamp"),
            col("id_type"),
            col("id_value"),
            col("rank"),
            id_node(col("id_type"), col("id_value")).alias("node"),
            violation.alias("violation"),
            detail.alias("violation_detail"),
        ])?
        .build()
        .map(Some)
}
