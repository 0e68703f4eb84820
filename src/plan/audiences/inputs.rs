//! Audience inputs without data, for `cohort compile`.
use std::collections::BTreeSet;

use datafusion::arrow::datatypes::DataType;
use datafusion::logical_expr::{LogicalPlan, LogicalPlanBuilder};

use crate::plan::traits::reducer_type;
use crate::spec::EntityType;
use crate::spec::query::ast::{self, Operand};

use super::AudienceInputs;

/// Audience inputs without data: empty tables with the columns a run gives profiles (ids,
/// first/last seen, computed traits), accounts and links, and `events` as given. Custom and
/// SQL traits are not known before data is read, so unknown trait keys read as unknown text
/// (`lenient`). Used by `cohort compile`.
pub fn static_inputs(
    space: &crate::spec::Space,
    events: LogicalPlan,
) -> datafusion::common::Result<AudienceInputs> {
    use datafusion::arrow::datatypes::{Field, Schema, TimeUnit};
    use datafusion::catalog::MemTable;
    use std::sync::Arc;
    let time = DataType::Timestamp(TimeUnit::Microsecond, Some(Arc::from("UTC")));
    let text = |n: &str| Field::new(n, DataType::Utf8, true);
    let computed = |entity: EntityType| {
        space
            .traits
            .iter()
            .filter(move |t| t.entity == entity)
            .filter_map(|t| match crate::spec::query::parsed_trait(t).ok()? {
                ast::Expr::Value {
                    value: Operand::Event(chain),
                    ..
                } => Some(Field::new(
                    t.key.as_str(),
                    reducer_type(chain.reducer?.kind),
                    true,
                )),
                _ => None,
            })
    };
    let rules = crate::plan::identity::ResolvedRules::from_spec(&space.identity);
    let mut profile = vec![
        text("profile_id"),
        Field::new("first_seen", time.clone(), true),
        Field::new("last_seen", time.clone(), true),
    ];
    for t in &rules.types {
        let name = crate::plan::profiles::column_name(&t.id_type);
        profile.push(if t.single() {
            text(&name)
        } else {
            Field::new(name, crate::plan::profiles::utf8_list(), true)
        });
    }
    profile.extend(computed(EntityType::Users));
    let mut account = vec![
        text("account_id"),
        Field::new("first_seen", time.clone(), true),
        Field::new("last_seen", time, true),
        Field::new("users", DataType::Int64, true),
    ];
    account.extend(computed(EntityType::Accounts));
    let scan = |name: &str, fields: Vec<Field>| -> datafusion::common::Result<LogicalPlan> {
        let schema = Arc::new(Schema::new(fields));
        let provider = datafusion::datasource::provider_as_source(Arc::new(MemTable::try_new(
            schema,
            vec![vec![]],
        )?));
        LogicalPlanBuilder::scan(name, provider, None)?.build()
    };
    Ok(AudienceInputs {
        profiles: scan("profiles", profile)?,
        events,
        accounts: scan("accounts", account)?,
        links: scan(
            "account_links",
            vec![text("account_id"), text("profile_id")],
        )?,
        data_typed: BTreeSet::new(),
        lenient: true,
    })
}
