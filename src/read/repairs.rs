//! repairs.yaml against the last published run: the repairs that name an identifier no event
//! of that run carried (most often a value written otherwise than its type normalizes it, or
//! an identifier from another space), as warnings for `cohort validate`.

use datafusion::prelude::{DataFrame, SessionContext};

use crate::error::EngineResult;
use crate::plan::identity::ResolvedRules;
use crate::run::repairs_table::named_identifiers;
use crate::run::tables::published;
use crate::spec::{Diagnostic, Space};
use crate::store::manifest;

/// A warning for each identifier of repairs.yaml that the last published run never saw.
/// Nothing when the space has no repairs or no published run.
pub async fn unknown_identifiers(space: &Space) -> EngineResult<Vec<Diagnostic>> {
    let rules = ResolvedRules::from_spec(&space.identity);
    if rules.repairs.is_empty() {
        return Ok(Vec::new());
    }
    let out = super::output_location(space)?;
    let Some(m) = manifest::read(&out).await? else {
        return Ok(Vec::new());
    };
    let ctx = SessionContext::new();
    let frame = async |table| -> EngineResult<Option<DataFrame>> {
        match super::published_table(space, table).await? {
            Some(t) => Ok(Some(ctx.read_table(t)?)),
            None => Ok(None),
        }
    };
    let identities = frame(published::IDENTITIES).await?;
    let violations = frame(published::IDENTITY_VIOLATIONS).await?;
    let seen = named_identifiers(&rules.repairs, identities, violations)
        .await?
        .seen;
    let mut out = Vec::new();
    for (r, def) in rules.repairs.iter().zip(&space.identity.repairs) {
        for (id, (t, written)) in r.ids.iter().zip(&def.ids) {
            if seen.contains(&id.text()) {
                continue;
            }
            let normalized = match *written == id.id_value {
                true => String::new(),
                false => format!(" (`{t}:{written}` normalized)"),
            };
            out.push(
                Diagnostic::warning(
                    Some(def.loc.clone()),
                    format!(
                        "`{}`{normalized} is in no event of the last run ({}): this {} \
                         repairs nothing",
                        id.text(),
                        m.run_id,
                        r.kind.word()
                    ),
                )
                .with_help("check the value against `identities`, or remove the entry"),
            );
        }
    }
    Ok(out)
}
