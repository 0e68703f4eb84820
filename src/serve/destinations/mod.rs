//! Webhook destinations: delivering audience members to the destinations their audiences name,
//! as Segment Engage does — every member on a pair's first sync, only entered / exited
//! afterwards, one message per identifier value, batched, retried, rate limited, with
//! permanent failures kept in `destination_dead_letters`.
//!
//! [`sync`] is the one entry point: `cohort sync` calls it, and `cohort serve` calls it after
//! every successful scheduled run. It reads the last published run (the manifest's versions of
//! `audience_membership`, `audience_changes` and `identities`), plans what is due for each
//! (destination, audience) pair into a durable outbox ([`outbox`]), then sends the outbox
//! batch by batch, moving a cursor as batches settle. Delivery is at least once: after a crash
//! the next sync resumes from the cursor, and only the batch that was in flight is sent again,
//! with the same messageIds. A lease under `_cohort/destinations/` keeps two syncs of one
//! space apart (a run of the space is not blocked).

mod dead_letter;
mod deliver;
pub mod live;
mod outbox;
mod plan;

use std::time::Duration;

use chrono::Utc;
use serde_json::Value;

use crate::error::{EngineError, StoreError};
use crate::read;
use crate::spec::{AudienceDef, DestinationDef, Space};
use crate::store::{delta, lease, manifest, objects::Location};

pub use dead_letter::TABLE as DEAD_LETTER_TABLE;
pub use plan::{OutMessage, computation_id, message_id};

/// What can stop a sync (a destination's own failures are in its [`DestinationReport`]).
#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    #[error("{0}")]
    Engine(#[from] EngineError),
    #[error("{0}")]
    Store(#[from] StoreError),
    #[error("reading published tables: {0}")]
    DataFusion(#[from] datafusion::error::DataFusionError),
    #[error("reading published tables: {0}")]
    Read(String),
    #[error("destination state: {0}")]
    State(String),
    #[error("corrupt {what}: {reason}")]
    Corrupt { what: String, reason: String },
    #[error("destination `{destination}`: {reason}")]
    Config { destination: String, reason: String },
}

/// How to sync.
#[derive(Clone, Debug)]
pub struct SyncOptions {
    /// Only these destinations (by name); empty: every destination of the space.
    pub only: Vec<String>,
    /// How long to wait for another sync of the space to finish.
    pub lease_wait: Duration,
}

impl Default for SyncOptions {
    fn default() -> Self {
        SyncOptions {
            only: Vec::new(),
            lease_wait: Duration::from_secs(60),
        }
    }
}

/// What one destination got in a sync.
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct DestinationReport {
    pub name: String,
    /// The audiences that name this destination.
    pub audiences: Vec<String>,
    /// Messages planned by this sync (new runs only).
    pub planned: u64,
    /// Messages accepted by the webhook (including ones planned by an earlier, interrupted
    /// sync).
    pub delivered: u64,
    /// Messages written to `destination_dead_letters`.
    pub dead_lettered: u64,
    /// Outboxes an earlier sync left part-sent, resumed here.
    pub resumed: u64,
    /// HTTP requests made, retries included.
    pub requests: u64,
    /// Requests that were retries.
    pub retries: u64,
    /// Why this destination stopped early (the others carry on).
    pub error: Option<String>,
}

/// What a sync did.
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct SyncReport {
    /// The published run synced up to; None when the space has never published.
    pub run_id: Option<String>,
    pub destinations: Vec<DestinationReport>,
}

/// Delivers everything due since the last sync of each (destination, audience) pair of
/// `space`, up to its last published run. Safe to call at any time and from several processes
/// (they take turns); returns when every outbox is settled or a destination failed.
pub async fn sync(space: &Space, opts: &SyncOptions) -> Result<SyncReport, SyncError> {
    let out = read::output_location(space)?;
    let mut report = SyncReport::default();
    let Some(m) = manifest::read(&out).await? else {
        return Ok(report);
    };
    report.run_id = Some(m.run_id.clone());
    let holder = format!("sync-{}", Utc::now().format("%Y%m%dT%H%M%S%3fZ"));
    let lease = lease::acquire(
        &out.child("_cohort").child("destinations"),
        &holder,
        opts.lease_wait,
    )
    .await?;
    let table = |name: &str| {
        let out = &out;
        let version = m.tables.get(name).copied();
        let name = name.to_string();
        async move {
            match version {
                Some(v) => delta::provider(&out.child(&name), v).await.map(Some),
                None => Ok(None),
            }
        }
    };
    let published = plan::Published {
        run_id: m.run_id.clone(),
        as_of: m.as_of.clone(),
        membership: table(crate::read::published::AUDIENCE_MEMBERSHIP).await?,
        identities: table("identities").await?,
        changes: table("audience_changes").await?,
    };
    for dest in &space.destinations {
        if !opts.only.is_empty() && !opts.only.contains(&dest.name) {
            continue;
        }
        let audiences: Vec<&AudienceDef> = space
            .audiences
            .iter()
            .filter(|a| a.destinations.contains(&dest.name))
            .collect();
        let mut rep = DestinationReport {
            name: dest.name.clone(),
            audiences: audiences.iter().map(|a| a.key.clone()).collect(),
            ..Default::default()
        };
        if let Err(e) = sync_destination(space, &out, &published, dest, &audiences, &mut rep).await
        {
            tracing::warn!("destination {}: {e}", dest.name);
            rep.error = Some(e.to_string());
        }
        report.destinations.push(rep);
    }
    lease.release().await?;
    Ok(report)
}

async fn sync_destination(
    space: &Space,
    out: &Location,
    published: &plan::Published,
    dest: &DestinationDef,
    audiences: &[&AudienceDef],
    rep: &mut DestinationReport,
) -> Result<(), SyncError> {
    let mut sender = deliver::Sender::new(dest)?;
    let result = async {
        for audience in audiences {
            let pair = outbox::Pair::new(out, &dest.name, &audience.key);
            let through = pair.planned_through().await?;
            if through
                .as_deref()
                .is_none_or(|t| t < published.run_id.as_str())
            {
                let msgs =
                    plan::plan(&space.name, published, dest, audience, through.as_deref()).await?;
                // Changes live delivery already sent are not sent again.
                let _guard = live::STATE.lock().await;
                let mut sent = pair.live_sent().await?;
                let changed: std::collections::BTreeSet<String> =
                    msgs.iter().map(|m| m.profile_id.clone()).collect();
                let msgs: Vec<_> = msgs
                    .into_iter()
                    .filter(|m| sent.get(&m.profile_id) != Some(&m.change))
                    .collect();
                // A run's change settles what live delivery sent for that profile.
                sent.retain(|p, _| !changed.contains(p));
                rep.planned += msgs.len() as u64;
                pair.write_outbox(&published.run_id, &msgs).await?;
                pair.set_live_sent(&sent).await?;
            }
            for run in pair.outboxes().await? {
                deliver_outbox(out, &pair, &run, dest, &audience.key, &mut sender, rep).await?;
            }
        }
        Ok::<(), SyncError>(())
    }
    .await;
    rep.requests = sender.requests;
    rep.retries = sender.retries;
    result
}

/// Sends one outbox from its cursor to its end, then settles it.
async fn deliver_outbox(
    out: &Location,
    pair: &outbox::Pair,
    run: &str,
    dest: &DestinationDef,
    audience: &str,
    sender: &mut deliver::Sender,
    rep: &mut DestinationReport,
) -> Result<(), SyncError> {
    let msgs = pair.read_outbox(run).await?;
    let mut cursor = pair.cursor(run).await?.min(msgs.len());
    if cursor > 0 && cursor < msgs.len() {
        rep.resumed += 1;
    }
    while cursor < msgs.len() {
        let end = (cursor + dest.batch_size as usize).min(msgs.len());
        let batch = &msgs[cursor..end];
        let payloads: Vec<&Value> = batch.iter().map(|m| &m.payload).collect();
        let mut letters = Vec::new();
        match sender.send(&payloads).await {
            deliver::Outcome::Delivered => rep.delivered += batch.len() as u64,
            deliver::Outcome::Failed {
                permanent: true, ..
            } if batch.len() > 1 => {
                // One bad message must not sink the others: send them one by one.
                for m in batch {
                    match sender.send(&[&m.payload]).await {
                        deliver::Outcome::Delivered => rep.delivered += 1,
                        deliver::Outcome::Failed {
                            attempts,
                            status,
                            error,
                            ..
                        } => letters.push(dead_letter::DeadLetter {
                            message: m,
                            attempts,
                            status,
                            error,
                        }),
                    }
                }
            }
            deliver::Outcome::Failed {
                attempts,
                status,
                error,
                ..
            } => {
                for m in batch {
                    letters.push(dead_letter::DeadLetter {
                        message: m,
                        attempts,
                        status,
                        error: error.clone(),
                    });
                }
            }
        }
        dead_letter::append(out, &dest.name, audience, &letters, Utc::now()).await?;
        rep.dead_lettered += letters.len() as u64;
        cursor = end;
        pair.set_cursor(run, cursor).await?;
    }
    pair.settle(run).await
}
