//! The durable delivery state of one (destination, audience) pair, under
//! `<output>/<space>/_cohort/destinations/<destination>/<audience>/`, through the object store
//! so it works on `s3://` as on a local folder:
//!
//! - `outbox/<run_id>.ndjson`: the messages planned for the runs up to `run_id`, one JSON
//!   object a line, written in one PUT before anything is sent;
//! - `outbox/<run_id>.cursor`: how many of them are settled (delivered or dead-lettered),
//!   rewritten after every batch;
//! - `state.json`: `{"planned_through": run_id}`, the last run whose outbox is settled and
//!   gone;
//! - `live.json`: profile id -> `entered` / `exited`, what `cohort serve` delivered live since
//!   the runs planned so far; the next plan leaves out a change the destination has already
//!   had and forgets the entry.
//!
//! A run is planned once: the newest of `planned_through` and the outboxes' runs is where the
//! next plan starts. A process killed mid-delivery leaves the outbox and its cursor; the next
//! sync re-sends from the cursor, so only the batch in flight is sent twice (same messageIds).

use object_store::path::Path;
use object_store::{ObjectStoreExt, PutPayload};
use serde::{Deserialize, Serialize};

use super::SyncError;
use super::plan::OutMessage;
use crate::store::objects::Location;

#[derive(Debug, Default, Serialize, Deserialize)]
struct PairState {
    planned_through: Option<String>,
}

/// One pair's state folder.
pub struct Pair {
    loc: Location,
}

fn object_err(e: object_store::Error) -> SyncError {
    SyncError::State(e.to_string())
}

impl Pair {
    /// The state of (`destination`, `audience`) under the space's output `out`.
    pub fn new(out: &Location, destination: &str, audience: &str) -> Pair {
        Pair {
            loc: out
                .child("_cohort")
                .child("destinations")
                .child(destination)
                .child(audience),
        }
    }

    fn path(&self, rel: &str) -> Path {
        let mut p = self.loc.prefix.clone();
        for part in rel.split('/') {
            p = p.join(part);
        }
        p
    }

    fn url(&self, rel: &str) -> String {
        format!("{}/{rel}", self.loc.url)
    }

    async fn get(&self, rel: &str) -> Result<Option<Vec<u8>>, SyncError> {
        match self.loc.store.get(&self.path(rel)).await {
            Ok(r) => Ok(Some(r.bytes().await.map_err(object_err)?.to_vec())),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(object_err(e)),
        }
    }

    async fn put(&self, rel: &str, body: Vec<u8>) -> Result<(), SyncError> {
        self.loc
            .store
            .put(&self.path(rel), PutPayload::from(body))
            .await
            .map_err(object_err)?;
        Ok(())
    }

    async fn delete(&self, rel: &str) -> Result<(), SyncError> {
        match self.loc.store.delete(&self.path(rel)).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(object_err(e)),
        }
    }

    async fn state(&self) -> Result<PairState, SyncError> {
        match self.get("state.json").await? {
            Some(b) => serde_json::from_slice(&b).map_err(|e| SyncError::Corrupt {
                what: self.url("state.json"),
                reason: e.to_string(),
            }),
            None => Ok(PairState::default()),
        }
    }

    /// What live delivery sent since the last plan: profile id -> `entered` / `exited`.
    pub async fn live_sent(&self) -> Result<std::collections::BTreeMap<String, String>, SyncError> {
        match self.get("live.json").await? {
            Some(b) => serde_json::from_slice(&b).map_err(|e| SyncError::Corrupt {
                what: self.url("live.json"),
                reason: e.to_string(),
            }),
            None => Ok(Default::default()),
        }
    }

    pub async fn set_live_sent(
        &self,
        sent: &std::collections::BTreeMap<String, String>,
    ) -> Result<(), SyncError> {
        match sent.is_empty() {
            true => self.delete("live.json").await,
            false => {
                let body = serde_json::to_vec(sent).map_err(|e| SyncError::State(e.to_string()))?;
                self.put("live.json", body).await
            }
        }
    }

    /// The runs with an outbox, oldest first.
    pub async fn outboxes(&self) -> Result<Vec<String>, SyncError> {
        use futures::TryStreamExt;
        let prefix = self.path("outbox");
        let objects: Vec<_> = self
            .loc
            .store
            .list(Some(&prefix))
            .try_collect()
            .await
            .map_err(object_err)?;
        let mut runs: Vec<String> = objects
            .iter()
            .filter_map(|o| {
                o.location
                    .filename()
                    .and_then(|f| f.strip_suffix(".ndjson"))
                    .map(str::to_owned)
            })
            .collect();
        runs.sort();
        Ok(runs)
    }

    /// The newest run already planned for this pair, if any.
    pub async fn planned_through(&self) -> Result<Option<String>, SyncError> {
        let settled = self.state().await?.planned_through;
        let newest_outbox = self.outboxes().await?.pop();
        Ok(settled.into_iter().chain(newest_outbox).max())
    }

    /// Writes the plan for the runs up to `run_id` in one PUT. An empty plan settles at once.
    pub async fn write_outbox(&self, run_id: &str, msgs: &[OutMessage]) -> Result<(), SyncError> {
        if msgs.is_empty() {
            return self.settle(run_id).await;
        }
        let mut body = Vec::new();
        for m in msgs {
            serde_json::to_writer(&mut body, m).map_err(|e| SyncError::State(e.to_string()))?;
            body.push(b'\n');
        }
        self.put(&format!("outbox/{run_id}.ndjson"), body).await
    }

    /// The messages of an outbox.
    pub async fn read_outbox(&self, run_id: &str) -> Result<Vec<OutMessage>, SyncError> {
        let rel = format!("outbox/{run_id}.ndjson");
        let Some(bytes) = self.get(&rel).await? else {
            return Ok(Vec::new());
        };
        let mut out = Vec::new();
        for (i, line) in bytes.split(|b| *b == b'\n').enumerate() {
            if line.is_empty() {
                continue;
            }
            out.push(
                serde_json::from_slice(line).map_err(|e| SyncError::Corrupt {
                    what: format!("{} line {}", self.url(&rel), i + 1),
                    reason: e.to_string(),
                })?,
            );
        }
        Ok(out)
    }

    /// How many messages of an outbox are settled.
    pub async fn cursor(&self, run_id: &str) -> Result<usize, SyncError> {
        let rel = format!("outbox/{run_id}.cursor");
        match self.get(&rel).await? {
            None => Ok(0),
            Some(b) => {
                String::from_utf8_lossy(&b)
                    .trim()
                    .parse()
                    .map_err(|e: std::num::ParseIntError| SyncError::Corrupt {
                        what: self.url(&rel),
                        reason: e.to_string(),
                    })
            }
        }
    }

    pub async fn set_cursor(&self, run_id: &str, settled: usize) -> Result<(), SyncError> {
        self.put(
            &format!("outbox/{run_id}.cursor"),
            settled.to_string().into_bytes(),
        )
        .await
    }

    /// Marks the runs up to `run_id` settled: `state.json` first, then the outbox goes, so a
    /// crash in between only leaves a settled outbox behind.
    pub async fn settle(&self, run_id: &str) -> Result<(), SyncError> {
        let current = self.state().await?.planned_through;
        let through = current
            .into_iter()
            .chain([run_id.to_string()])
            .max()
            .expect("one element");
        let body = serde_json::to_vec(&PairState {
            planned_through: Some(through),
        })
        .map_err(|e| SyncError::State(e.to_string()))?;
        self.put("state.json", body).await?;
        self.delete(&format!("outbox/{run_id}.ndjson")).await?;
        self.delete(&format!("outbox/{run_id}.cursor")).await
    }
}
