//! The lease that keeps two runs of one space from writing at once.
//!
//! `_cohort/lease.json` in the space's output is created with a conditional PUT (create only if
//! absent; S3 If-None-Match). The holder renews it while it works; a lease whose holder died is
//! taken over once it expires, or at once when its holder was a process on this host that no
//! longer exists (a `kill -9`).

use std::time::Duration;

use chrono::{DateTime, Utc};
use object_store::{ObjectStoreExt, PutMode, PutOptions, PutPayload};
use serde::{Deserialize, Serialize};
use tokio::task::JoinHandle;

use super::objects::Location;
use crate::error::{StoreError, StoreResult};

/// How long a lease lives without renewal.
pub const LEASE_TTL: Duration = Duration::from_secs(60);
const RENEW_EVERY: Duration = Duration::from_secs(15);

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct LeaseInfo {
    pub owner: String,
    pub host: String,
    pub pid: u32,
    pub run_id: String,
    pub acquired_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
}

/// A held lease; renewing in the background until [`Lease::release`].
pub struct Lease {
    space: Location,
    renew: JoinHandle<()>,
}

fn path(space: &Location) -> object_store::path::Path {
    space.prefix.clone().join("_cohort").join("lease.json")
}

/// This machine's host name.
pub fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_string())
        .or_else(|_| std::env::var("HOSTNAME"))
        .unwrap_or_else(|_| "localhost".to_string())
}

/// Whether process `pid` runs on this machine (a zombie counts as gone).
pub fn pid_alive(pid: u32) -> bool {
    let p = std::path::Path::new("/proc").join(pid.to_string());
    if !std::path::Path::new("/proc/self").exists() {
        return true; // no procfs: cannot tell, trust the expiry
    }
    match std::fs::read_to_string(p.join("stat")) {
        // A zombie (state Z) is dead for our purposes.
        Ok(stat) => !stat
            .rsplit(')')
            .next()
            .map(|rest| rest.trim_start().starts_with('Z'))
            .unwrap_or(false),
        Err(_) => false,
    }
}

fn info(run_id: &str) -> LeaseInfo {
    let now = Utc::now();
    let host = host_name();
    let pid = std::process::id();
    LeaseInfo {
        owner: format!("{host}:{pid}"),
        host,
        pid,
        run_id: run_id.to_string(),
        acquired_at: now,
        expires_at: now + chrono::Duration::from_std(LEASE_TTL).expect("ttl"),
    }
}

async fn read(space: &Location) -> StoreResult<Option<LeaseInfo>> {
    match space.store.get(&path(space)).await {
        Ok(r) => {
            let bytes = r.bytes().await?;
            Ok(serde_json::from_slice(&bytes).ok())
        }
        Err(object_store::Error::NotFound { .. }) => Ok(None),
        Err(e) => Err(e.into()),
    }
}

fn is_stale(l: &LeaseInfo) -> bool {
    l.expires_at < Utc::now() || (l.host == host_name() && !pid_alive(l.pid))
}

/// Takes the lease for `run_id`, waiting up to `wait` for a running holder to finish.
pub async fn acquire(space: &Location, run_id: &str, wait: Duration) -> StoreResult<Lease> {
    let deadline = std::time::Instant::now() + wait;
    loop {
        let mine = info(run_id);
        let body = serde_json::to_vec(&mine).expect("lease json");
        let opts = PutOptions {
            mode: PutMode::Create,
            ..Default::default()
        };
        match space
            .store
            .put_opts(&path(space), PutPayload::from(body), opts)
            .await
        {
            Ok(_) => {
                let renew = tokio::spawn(renew_loop(space.clone(), run_id.to_string()));
                return Ok(Lease {
                    space: space.clone(),
                    renew,
                });
            }
            Err(object_store::Error::AlreadyExists { .. }) => {
                let held = read(space).await?;
                match held {
                    Some(h) if !is_stale(&h) => {
                        if std::time::Instant::now() >= deadline {
                            return Err(StoreError::Lease(format!(
                                "another run of this space is in progress (run {} by pid {} on {}, \
                                 since {}); wait for it, or pass --wait <seconds>. \
                                 Lease file: {}/_cohort/lease.json",
                                h.run_id,
                                h.pid,
                                h.host,
                                h.acquired_at.format("%Y-%m-%d %H:%M:%S UTC"),
                                space.url
                            )));
                        }
                        tokio::time::sleep(Duration::from_millis(500)).await;
                    }
                    _ => {
                        // Stale or unreadable: the holder is gone. Remove it and try again.
                        tracing::warn!("taking over a stale lease in {}", space.url);
                        match space.store.delete(&path(space)).await {
                            Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
                            Err(e) => return Err(e.into()),
                        }
                    }
                }
            }
            Err(e) => return Err(e.into()),
        }
    }
}

async fn renew_loop(space: Location, run_id: String) {
    loop {
        tokio::time::sleep(RENEW_EVERY).await;
        let body = serde_json::to_vec(&info(&run_id)).expect("lease json");
        if let Err(e) = space.store.put(&path(&space), PutPayload::from(body)).await {
            tracing::warn!("could not renew the lease: {e}");
        }
    }
}

impl Lease {
    /// Gives the lease back.
    pub async fn release(self) -> StoreResult<()> {
        self.renew.abort();
        match self.space.store.delete(&path(&self.space)).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        self.renew.abort();
    }
}
