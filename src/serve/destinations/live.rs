//! Live entries and exits to destinations: `cohort serve` sends what its live engine finds
//! (see `crate::live`) to the destinations of each audience within a second, as the same
//! Segment identify / track payloads a run's changes give, retried and dead-lettered the same
//! way. Each pair remembers what it sent live (`live.json`, see [`super::outbox`]) so that the
//! next run's plan does not send the same entry or exit again.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use serde_json::Value;

use super::{dead_letter, deliver, outbox, plan};
use crate::live::LiveSpace;
use crate::spec::EntityType;

/// Keeps live delivery and run planning from rewriting a pair's `live.json` at once.
pub(super) static STATE: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// How often live delivery looks for new changes.
const EVERY: Duration = Duration::from_millis(200);

/// Delivers `live`'s changes for as long as the server runs.
pub async fn run(live: Arc<LiveSpace>) {
    let space = live.space().clone();
    if space.destinations.is_empty() {
        return;
    }
    let out = match crate::read::output_location(&space) {
        Ok(o) => o,
        Err(e) => {
            tracing::warn!("live delivery of `{}`: {e}", space.name);
            return;
        }
    };
    let mut senders: HashMap<String, deliver::Sender> = HashMap::new();
    let (mut run_id, mut seen): (Option<String>, u64) = (None, 0);
    loop {
        tokio::time::sleep(EVERY).await;
        let (now_on, changes, total) = live.changes_since(run_id.as_deref(), seen);
        let first = total - changes.len() as u64;
        run_id = now_on;
        seen = total;
        let Some(run) = run_id.clone() else { continue };
        for (i, c) in changes.iter().enumerate() {
            let Some(audience) = space
                .audiences
                .iter()
                .find(|a| a.key == c.audience && a.entity == EntityType::Users)
            else {
                continue;
            };
            for name in &audience.destinations {
                let Some(dest) = space.destinations.iter().find(|d| &d.name == name) else {
                    continue;
                };
                let sender = match senders.get_mut(name) {
                    Some(s) => s,
                    None => match deliver::Sender::new(dest) {
                        Ok(s) => senders.entry(name.clone()).or_insert(s),
                        Err(e) => {
                            tracing::warn!("live delivery to `{name}`: {e}");
                            continue;
                        }
                    },
                };
                let msgs = plan::live_messages(
                    &space.name,
                    dest,
                    audience,
                    &run,
                    first + i as u64,
                    &c.profile_id,
                    c.entered,
                    &crate::serve::index::rfc3339(c.at),
                    c.identifiers.clone(),
                );
                if msgs.is_empty() {
                    continue;
                }
                let payloads: Vec<&Value> = msgs.iter().map(|m| &m.payload).collect();
                let letters: Vec<dead_letter::DeadLetter> = match sender.send(&payloads).await {
                    deliver::Outcome::Delivered => Vec::new(),
                    deliver::Outcome::Failed {
                        attempts,
                        status,
                        error,
                        ..
                    } => msgs
                        .iter()
                        .map(|m| dead_letter::DeadLetter {
                            message: m,
                            attempts,
                            status,
                            error: error.clone(),
                        })
                        .collect(),
                };
                let pair = outbox::Pair::new(&out, name, &audience.key);
                let recorded = async {
                    if !letters.is_empty() {
                        dead_letter::append(&out, name, &audience.key, &letters, Utc::now())
                            .await?;
                    }
                    let _guard = STATE.lock().await;
                    let mut sent = pair.live_sent().await?;
                    let change = if c.entered { "entered" } else { "exited" };
                    sent.insert(c.profile_id.clone(), change.to_string());
                    pair.set_live_sent(&sent).await
                }
                .await;
                if let Err(e) = recorded {
                    tracing::warn!("live delivery to `{name}`: {e}");
                }
            }
        }
    }
}
