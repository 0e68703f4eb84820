//! Which definitions `cohort serve` keeps live (updated as the collector receives events) and
//! why the others wait for the next batch run. `cohort validate` and `cohort compile` print
//! this list; the live engine evaluates exactly the definitions it calls live.
//!
//! A definition is live when its value for one profile depends only on that profile's own
//! events, identifiers and traits: then evaluating the profiles an event touches is enough.
//! Account traits and account audiences read every user of an account, and SQL traits are
//! queries over the warehouse with their own schedule: those stay batch.

use crate::analyze::audiences::trait_refs;
use crate::spec::{EntityType, Space, query};

/// One definition's place.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Liveness {
    /// `computed trait`, `custom traits`, `SQL trait`, `audience`.
    pub kind: &'static str,
    pub key: String,
    pub live: bool,
    /// Why not live, or what a live value reads that is not live.
    pub note: Option<String>,
}

/// Every definition of `space`, in the order: custom traits, computed traits, SQL traits,
/// audiences.
pub fn liveness(space: &Space) -> Vec<Liveness> {
    let mut out = vec![Liveness {
        kind: "custom traits",
        key: "(identify calls)".into(),
        live: true,
        note: Some("group calls' account traits stay batch".into()),
    }];
    for t in &space.traits {
        out.push(match t.entity {
            EntityType::Users => Liveness {
                kind: "computed trait",
                key: t.key.clone(),
                live: true,
                note: None,
            },
            EntityType::Accounts => Liveness {
                kind: "computed trait",
                key: t.key.clone(),
                live: false,
                note: Some("an account trait reads every user of the account".into()),
            },
        });
    }
    for t in &space.sql_traits {
        out.push(Liveness {
            kind: "SQL trait",
            key: t.key.clone(),
            live: false,
            note: Some("a query over the warehouse, run on its schedule by batch runs".into()),
        });
    }
    for a in &space.audiences {
        let (live, note) = match a.entity {
            EntityType::Accounts => (
                false,
                Some("an account audience reads every user of the account".to_string()),
            ),
            EntityType::Users => {
                let mut refs = Vec::new();
                if let Ok(q) = query::parsed_audience(a) {
                    trait_refs(&q, &mut refs);
                }
                let mut sql: Vec<String> = refs
                    .into_iter()
                    .map(|(k, _)| k)
                    .filter(|k| space.sql_traits.iter().any(|s| &s.key == k))
                    .collect();
                sql.dedup();
                let note = (!sql.is_empty()).then(|| {
                    format!(
                        "reads SQL trait(s) {} as of the last batch run",
                        sql.iter()
                            .map(|k| format!("`{k}`"))
                            .collect::<Vec<_>>()
                            .join(", ")
                    )
                });
                (true, note)
            }
        };
        out.push(Liveness {
            kind: "audience",
            key: a.key.clone(),
            live,
            note,
        });
    }
    out
}

/// The list as `cohort validate` prints it: one line per definition.
pub fn render(list: &[Liveness]) -> String {
    let mut s =
        String::from("live in `cohort serve` (updated as the collector receives events):\n");
    for l in list {
        let state = if l.live { "live " } else { "batch" };
        s.push_str(&format!("  {state}  {:<15} {}", l.kind, l.key));
        if let Some(n) = &l.note {
            s.push_str(&format!("  ({n})"));
        }
        s.push('\n');
    }
    s
}
