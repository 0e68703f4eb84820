//! The definitions `cohort serve` runs a space with: its files as they are now. The server
//! looks at them every [`EVERY`]; when traits, SQL traits, audiences or identity rules changed
//! and the space still validates, the next run uses them, and a run is queued at once so that
//! edited definitions are recomputed in the background while the live engine keeps the others
//! live (see [`crate::live::defs`]). Files with errors are reported with their file:line:col
//! and runs keep the last valid definitions; a change to space.yaml (sources, output, write
//! keys) needs a restart.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::mpsc;

use crate::run::record::{changed_files, definitions_fingerprint};
use crate::schedule::Trigger;
use crate::spec::Space;

/// How often the files are compared with the ones in use.
pub(super) const EVERY: Duration = Duration::from_secs(2);

/// One served space's definitions.
pub(super) struct SpaceDefs {
    /// The space as the server started with it (its space.yaml part never changes).
    started: Space,
    state: Mutex<State>,
}

struct State {
    /// The fingerprint of the files last looked at (valid or not), and their paths -> hashes.
    seen: String,
    /// The definitions runs use.
    space: Space,
    /// The files of `space`: path -> hash.
    files: std::collections::BTreeMap<String, String>,
}

impl SpaceDefs {
    pub(super) fn new(space: Space) -> SpaceDefs {
        let (seen, files) = definitions_fingerprint(&space.root);
        SpaceDefs {
            started: space.clone(),
            state: Mutex::new(State { seen, space, files }),
        }
    }

    /// The definitions runs use now.
    pub(super) fn current(&self) -> Space {
        self.state.lock().unwrap().space.clone()
    }

    /// Reads the files again when they changed since the last look. Some(the changed files)
    /// when a new valid set was taken.
    pub(super) async fn refresh(&self) -> Option<Vec<String>> {
        let root = self.started.root.clone();
        let (seen, files) = definitions_fingerprint(&root);
        let before = {
            let mut st = self.state.lock().unwrap();
            if st.seen == seen {
                return None;
            }
            st.seen = seen;
            st.files.clone()
        };
        let name = &self.started.name;
        let changed: Vec<String> = changed_files(&files, &before).into_iter().collect();
        if changed.iter().any(|p| p == "space.yaml") {
            eprintln!(
                "space `{name}`: space.yaml changed; restart `cohort serve` to use it (runs keep \
                 the definitions they had)"
            );
            return None;
        }
        let v = crate::analyze::validate_space(&root).await;
        let Some(mut space) = v.space else {
            eprintln!(
                "space `{name}`: the changed definitions have errors; runs keep the last valid \
                 ones until they are fixed:\n{}",
                crate::spec::render_all(&v.diagnostics, &root)
            );
            return None;
        };
        space.root = root;
        let mut st = self.state.lock().unwrap();
        st.space = space;
        st.files = files;
        Some(changed)
    }
}

/// The definition files that differ from those the last published run read (none before a
/// first run).
async fn since_published(space: &Space) -> Vec<String> {
    let Ok(out) = crate::read::output_location(space) else {
        return Vec::new();
    };
    let Ok(Some(m)) = crate::store::manifest::read(&out).await else {
        return Vec::new();
    };
    let Some(published) = m.definitions else {
        return Vec::new();
    };
    let (_, now) = definitions_fingerprint(&space.root);
    changed_files(&now, &published).into_iter().collect()
}

/// Looks at `defs` every [`EVERY`]; when they changed (or, at the start, when they are not the
/// ones the last published run read), queues a run on `runs` (or, without a scheduler, says
/// how to recompute them).
pub(super) async fn watch(defs: Arc<SpaceDefs>, runs: Option<mpsc::Sender<Trigger>>) {
    let mut first = true;
    loop {
        let changed = if std::mem::take(&mut first) {
            Some(since_published(&defs.current()).await).filter(|c| !c.is_empty())
        } else {
            tokio::time::sleep(EVERY).await;
            defs.refresh().await
        };
        let Some(changed) = changed else {
            continue;
        };
        let name = &defs.started.name;
        let what = changed.join(", ");
        match &runs {
            Some(tx) => {
                eprintln!(
                    "space `{name}`: definitions changed ({what}); a run recomputes them, the \
                     others stay live meanwhile"
                );
                let _ = tx.try_send(Trigger::Manual(format!("definitions changed: {what}")));
            }
            None => eprintln!(
                "space `{name}`: definitions changed ({what}); no scheduled runs here, so run \
                 `cohort run {}` to recompute them",
                defs.started.root.display()
            ),
        }
    }
}
