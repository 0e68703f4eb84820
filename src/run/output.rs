//! Where a space's published tables live, and the last good run's tables registered by name
//! (for SQL traits in a run, and for reading).

use datafusion::prelude::SessionContext;

use crate::error::EngineResult;
use crate::spec::Space;
use crate::store::{delta, manifest, objects};

/// Where a space's tables live: `<output>/<space name>`.
pub fn output_location(space: &Space) -> EngineResult<objects::Location> {
    Ok(objects::open_raw(&space.root, &space.output)?.child(&space.name))
}

/// Registers every table of the space's last good run by name, at its published version,
/// unless the session already has a table of that name (a run's own tables win).
pub async fn register_published(ctx: &SessionContext, space: &Space) -> EngineResult<()> {
    let out = output_location(space)?;
    let Some(m) = manifest::read(&out).await? else {
        return Ok(());
    };
    for (table, v) in &m.tables {
        if ctx.table_exist(table.as_str())? {
            continue;
        }
        ctx.register_table(
            table.as_str(),
            delta::provider(&out.child(table), *v).await?,
        )?;
    }
    Ok(())
}
