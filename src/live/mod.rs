//! Live definitions: traits and audiences that `cohort serve` updates as its collector receives
//! events, between batch runs.
//!
//! A space's live state starts from its latest published run (see [`load`]) plus the events
//! received since. Each tick takes the events that arrived, normalizes them and finds their
//! identifiers with the batch run's own plans, applies them to the identity graph by Segment's
//! sequential rule ([`identity`]), appends them to the touched profiles' histories
//! ([`history`]) and evaluates those profiles with the batch run's plan builders ([`eval`]).
//! What changes lands in a [`View`] that the Profile API reads; audience entries and exits are
//! kept as [`LiveChange`]s. Between events, the engine wakes when a window edge passes and
//! evaluates the profiles whose events crossed it ([`clock`]). Only definitions whose files
//! are as the published run read them are evaluated ([`defs`]). When a batch run publishes,
//! the state is rebuilt from it and the events received since that the run did not read are
//! applied again, so the batch run is the reference and live values never drift from it.
//! Which definitions are live: [`crate::analyze::live`].

pub mod clock;
pub mod defs;
pub mod eval;
pub mod history;
pub mod identity;
mod ingest;
pub mod load;
mod view;

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::sync::{Arc, RwLock};
use std::time::Instant;

use chrono::{DateTime, Utc};
use datafusion::arrow::array::RecordBatch;
use datafusion::catalog::MemTable;
use datafusion::prelude::SessionContext;
use tokio::sync::mpsc;

use crate::error::EngineResult;
use crate::plan::identity::ResolvedRules;
use crate::spec::Space;
use load::Published;
pub use view::{LiveChange, LiveProfile, View};

/// What a live value is, for the Profile API's `class`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LiveClass {
    Custom,
    Computed,
    Sql,
}

enum Msg {
    Rows(String, RecordBatch),
    Reload,
}

/// One space's live engine.
pub struct LiveSpace {
    space: Space,
    tx: mpsc::UnboundedSender<Msg>,
    view: RwLock<View>,
    /// Set when the server stops: a load cut short then is not a failure to report.
    stopping: std::sync::atomic::AtomicBool,
}

/// What `GET /v1/spaces/{space}/live` shows.
#[derive(Clone, Debug, serde::Serialize)]
pub struct LiveStatus {
    /// The published run live values start from (None until it is loaded).
    pub run_id: Option<String>,
    /// Events applied since that run.
    pub events: u64,
    /// Profiles with live values.
    pub profiles: usize,
    /// Entries and exits found live since that run (counting those no longer kept).
    pub changes: u64,
    /// The last failure, if any: its events wait for the next batch run.
    pub error: Option<String>,
    /// Why nothing is evaluated live until the next run, if so (space.yaml or identity.yaml
    /// changed since the published run, or the space's files have errors).
    pub paused: Option<String>,
    /// Definitions edited, added or removed since the published run (`trait:<key>`,
    /// `audience:<key>`): the Profile API serves their published values until a run
    /// recomputes them; the others stay live.
    pub waiting: Vec<String>,
    /// Ticks since that run, and the events and milliseconds of the last one.
    pub ticks: u64,
    pub last_tick_events: u64,
    pub last_tick_ms: u64,
}

/// The state only the engine's task touches.
struct Inner {
    ctx: SessionContext,
    published: Option<Published>,
    /// Every batch of events received since this process started, to apply again over a new
    /// published run (those the run read are skipped by message id).
    received: Vec<(String, RecordBatch)>,
    /// The published run loaded.
    run_id: Option<String>,
    /// Live flags of the profiles evaluated since the published run.
    flags: HashMap<String, BTreeMap<String, bool>>,
    /// (audience, profile) pairs that entered or exited live.
    ever: HashSet<(String, String)>,
    /// What the current tick found, for the readers' view.
    stage: View,
}

impl LiveSpace {
    /// Starts the engine of `space` (it loads the latest published run first).
    pub fn start(space: Space) -> EngineResult<Arc<LiveSpace>> {
        let (tx, rx) = mpsc::unbounded_channel();
        let live = Arc::new(LiveSpace {
            space,
            tx,
            view: RwLock::new(View::default()),
            stopping: Default::default(),
        });
        let ctx = crate::run::session::new_session(&Default::default())?;
        tokio::spawn(run(Arc::downgrade(&live), ctx, rx));
        Ok(live)
    }

    /// Events the collector made durable: rows of `source` in the events preset's columns.
    pub fn send(&self, source: &str, rows: RecordBatch) {
        let _ = self.tx.send(Msg::Rows(source.to_string(), rows));
    }

    /// The server is stopping.
    pub fn stop(&self) {
        self.stopping
            .store(true, std::sync::atomic::Ordering::SeqCst);
    }

    /// Where the engine is.
    pub fn status(&self) -> LiveStatus {
        let v = self.view.read().unwrap();
        LiveStatus {
            run_id: v.run_id.clone(),
            events: v.events,
            profiles: v.profiles.len(),
            changes: v.dropped + v.changes.len() as u64,
            error: v.error.clone(),
            paused: v.paused.clone(),
            waiting: v.waiting.clone(),
            ticks: v.ticks,
            last_tick_events: v.last_tick_events,
            last_tick_ms: v.last_tick_ms,
        }
    }

    /// The last `n` entries and exits found live, newest last.
    pub fn last_changes(&self, n: usize) -> Vec<LiveChange> {
        let v = self.view.read().unwrap();
        v.changes[v.changes.len().saturating_sub(n)..].to_vec()
    }

    /// The entries and exits found live after the first `seen` of those since the published
    /// run `run_id` (from the first when the engine has moved to another run); also the run it
    /// is on and how many it has found since.
    pub fn changes_since(
        &self,
        run_id: Option<&str>,
        seen: u64,
    ) -> (Option<String>, Vec<LiveChange>, u64) {
        let v = self.view.read().unwrap();
        let total = v.dropped + v.changes.len() as u64;
        let seen = if v.run_id.as_deref() == run_id {
            seen
        } else {
            0
        };
        let from = seen.saturating_sub(v.dropped) as usize;
        let new = v.changes[from.min(v.changes.len())..].to_vec();
        (v.run_id.clone(), new, total)
    }

    /// The space.
    pub fn space(&self) -> &Space {
        &self.space
    }

    /// A batch run published: start again from it.
    pub fn reload(&self) {
        let _ = self.tx.send(Msg::Reload);
    }

    /// The live profile of a profile id (following live merges).
    pub fn profile(&self, id: &str) -> Option<Arc<LiveProfile>> {
        self.view.read().unwrap().profile(id)
    }
    /// The live profile an identifier belongs to, when it has been seen live.
    pub fn find(&self, column: &str, value: &str) -> Option<Arc<LiveProfile>> {
        self.view.read().unwrap().find(column, value)
    }
}

async fn run(
    live: std::sync::Weak<LiveSpace>,
    ctx: SessionContext,
    mut rx: mpsc::UnboundedReceiver<Msg>,
) {
    let space = match live.upgrade() {
        Some(l) => l.space.clone(),
        None => return,
    };
    let mut inner = Inner {
        ctx,
        published: None,
        run_id: None,
        received: Vec::new(),
        flags: HashMap::new(),
        ever: HashSet::new(),
        stage: View::default(),
    };
    let mut reload = true;
    let mut swept_at = tokio::time::Instant::now();
    loop {
        if reload {
            reload = false;
            let mut fresh = match inner.reload(&space).await {
                Ok(true) => Some(View {
                    run_id: inner.run_id.clone(),
                    paused: inner.published.as_ref().and_then(|p| p.paused.clone()),
                    waiting: inner
                        .published
                        .as_ref()
                        .map(|p| p.waiting.clone())
                        .unwrap_or_default(),
                    ..Default::default()
                }),
                Ok(false) => None,
                Err(_) if stopping(&live) => return,
                Err(e) => {
                    tracing::warn!(space = %space.name, "live: cannot load the published run: {e}");
                    inner.stage.error = Some(e.to_string());
                    None
                }
            };
            // Events received since that the new run did not read, applied over it.
            let pending = inner.received.clone();
            if let Err(e) = inner.tick(&space, &pending).await {
                inner.stage.error = Some(e.to_string());
            }
            let Some(l) = live.upgrade() else { return };
            match fresh.as_mut() {
                Some(f) => {
                    f.merge(std::mem::take(&mut inner.stage));
                    *l.view.write().unwrap() = std::mem::take(f);
                }
                None => l
                    .view
                    .write()
                    .unwrap()
                    .merge(std::mem::take(&mut inner.stage)),
            }
        }
        // Events, or the next window edge, swept at most once a second; under a steady
        // flow of events a due sweep goes first, so it is never starved.
        let wake = inner.next_edge().map(|edge| {
            let wait = (edge - Utc::now().timestamp_micros()).clamp(0, 60_000_000);
            let at = tokio::time::Instant::now() + std::time::Duration::from_micros(wait as u64);
            at.max(swept_at + std::time::Duration::from_secs(1))
        });
        let due = wake.is_some_and(|w| w <= tokio::time::Instant::now());
        let received = if due {
            None
        } else {
            tokio::select! {
                biased;
                m = rx.recv() => match m {
                    Some(m) => Some(m),
                    None => return,
                },
                () = async { tokio::time::sleep_until(wake.expect("guarded")).await }, if wake.is_some() => None,
            }
        };
        let Some(first) = received else {
            swept_at = tokio::time::Instant::now();
            let swept = inner.sweep().await;
            if !inner.carry_on(swept, &live, &space.name) || !publish(&live, &mut inner) {
                return;
            }
            continue;
        };
        // Everything that arrived, in one tick.
        let mut batch = Vec::new();
        let mut take = |m: Msg, batch: &mut Vec<(String, RecordBatch)>| match m {
            Msg::Rows(s, b) => batch.push((s, b)),
            Msg::Reload => reload = true,
        };
        take(first, &mut batch);
        while let Ok(m) = rx.try_recv() {
            take(m, &mut batch);
        }
        inner.received.extend(batch.iter().cloned());
        if reload {
            continue;
        }
        let started = Instant::now();
        let ticked = inner.tick(&space, &batch).await;
        if !inner.carry_on(ticked, &live, &space.name) {
            return;
        }
        inner.stage.ticks = 1;
        inner.stage.last_tick_events = batch.iter().map(|(_, b)| b.num_rows() as u64).sum();
        inner.stage.last_tick_ms = started.elapsed().as_millis() as u64;
        if !publish(&live, &mut inner) {
            return;
        }
    }
}

/// Hands what a tick or sweep found to the readers; false when the engine is gone.
fn publish(live: &std::sync::Weak<LiveSpace>, inner: &mut Inner) -> bool {
    let Some(l) = live.upgrade() else {
        return false;
    };
    l.view
        .write()
        .unwrap()
        .merge(std::mem::take(&mut inner.stage));
    true
}

fn stopping(live: &std::sync::Weak<LiveSpace>) -> bool {
    live.upgrade()
        .is_none_or(|l| l.stopping.load(std::sync::atomic::Ordering::SeqCst))
}

impl Inner {
    /// Records how a tick or sweep ended (a failure is shown in the status); whether to carry
    /// on: not when the server is stopping (then a failure is only the stop cutting it short).
    fn carry_on(
        &mut self,
        r: EngineResult<()>,
        live: &std::sync::Weak<LiveSpace>,
        space: &str,
    ) -> bool {
        if let Err(e) = r {
            if stopping(live) {
                return false;
            }
            tracing::warn!(space = %space, "live: {e}");
            self.stage.error = Some(e.to_string());
        }
        true
    }

    /// Loads the latest published run when it is not the one loaded; true when it loaded one.
    async fn reload(&mut self, space: &Space) -> EngineResult<bool> {
        let out = crate::read::output_location(space)?;
        let current = crate::store::manifest::read(&out).await?.map(|m| m.run_id);
        if self.published.is_some() && current == self.run_id {
            return Ok(false);
        }
        self.published = load::published(&self.ctx, space).await?;
        self.run_id = self.published.as_ref().map(|p| p.run_id.clone());
        self.flags.clear();
        self.ever.clear();
        self.stage = View::default();
        // Batches the run read whole are not needed again.
        if let Some(p) = &self.published {
            self.received.retain(|(_, b)| {
                let Ok(i) = b.schema().index_of("message_id") else {
                    return false;
                };
                history::values(b.column(i))
                    .map(|v| v.iter().flatten().any(|m| !p.history.has(m)))
                    .unwrap_or(false)
            });
        }
        Ok(true)
    }

    /// Applies events of `batches` not yet in the history, then evaluates what they touched.
    async fn tick(&mut self, space: &Space, batches: &[(String, RecordBatch)]) -> EngineResult<()> {
        let Some(state) = self.published.as_mut() else {
            return Ok(());
        };
        // Paused: the events wait in `received` for the next published run.
        if batches.is_empty() || state.paused.is_some() {
            return Ok(());
        }
        let now = Utc::now();
        let started = Instant::now();
        let rules = ResolvedRules::from_spec(&space.identity);
        let mut touched: BTreeSet<String> = BTreeSet::new();
        let mut merged_away: Vec<String> = Vec::new();
        let mut identify_calls: Vec<RecordBatch> = Vec::new();
        // One normalization per source for the whole tick (its plans cost the same for one
        // event as for thousands).
        let mut by_source: BTreeMap<&str, Vec<RecordBatch>> = BTreeMap::new();
        for (source, raw) in batches {
            by_source.entry(source).or_default().push(raw.clone());
        }
        for (source, raws) in by_source {
            let Some(src) = space.sources.iter().find(|s| s.name == source) else {
                continue;
            };
            let raw = datafusion::arrow::compute::concat_batches(&raws[0].schema(), &raws)?;
            let (events, occs) = ingest::normalize(&self.ctx, src, &raw, &rules, now).await?;
            tracing::debug!(
                secs = started.elapsed().as_secs_f64(),
                events = events.num_rows(),
                "live tick: normalized"
            );
            let mut stored: Vec<(usize, String)> = Vec::new();
            for (row, mid, ts) in ingest::events_in_order(&events)? {
                if state.history.has(&mid) {
                    continue;
                }
                let ids = occs.get(&mid).cloned().unwrap_or_default();
                let applied = state.graph.apply(&ids, ts);
                let Some(p) = applied.profile else {
                    continue;
                };
                state.history.see(&mid);
                stored.push((row, p.clone()));
                self.stage.events += 1;
                for m in applied.merged {
                    touched.remove(&m);
                    self.stage.moved.insert(m.clone(), p.clone());
                    merged_away.push(m);
                }
                touched.insert(p);
            }
            state.history.add(&events, &stored)?;
            let rows: Vec<usize> = stored.iter().map(|(r, _)| *r).collect();
            identify_calls.extend(ingest::identify_rows(&events, &rows)?);
        }
        for m in &merged_away {
            self.flags.remove(m);
            self.stage.profiles.remove(m);
        }
        if touched.is_empty() {
            return Ok(());
        }
        // Custom trait keys and kinds of the identify calls applied.
        if !identify_calls.is_empty() {
            let schema = identify_calls[0].schema();
            let one = datafusion::arrow::compute::concat_batches(&schema, &identify_calls)?;
            let t = MemTable::try_new(schema, vec![vec![one]])?;
            self.ctx.deregister_table("live_applied")?;
            self.ctx.register_table("live_applied", Arc::new(t))?;
            let kinds =
                crate::run::stages::profiles::trait_kinds(&self.ctx, "live_applied", "identify")
                    .await?;
            self.ctx.deregister_table("live_applied")?;
            for (k, ks) in kinds {
                state.kinds.entry(k).or_default().extend(ks);
            }
            state.custom = load::custom_traits(&state.kinds, &state.taken);
        }
        let list: Vec<String> = touched.into_iter().collect();
        tracing::debug!(
            secs = started.elapsed().as_secs_f64(),
            profiles = list.len(),
            "live tick: events applied"
        );
        self.evaluate(list, &merged_away, now).await
    }

    /// When the next live value can change with no new event (UTC micros).
    fn next_edge(&self) -> Option<i64> {
        let state = self.published.as_ref()?;
        if state.paused.is_some() {
            return None;
        }
        state.clock.next_edge(&state.history)
    }

    /// Evaluates again the profiles whose events crossed a window edge since the last sweep.
    async fn sweep(&mut self) -> EngineResult<()> {
        let Some(state) = self.published.as_mut() else {
            return Ok(());
        };
        let now = Utc::now();
        let due = state.clock.due(&state.history, now.timestamp_micros());
        let list: BTreeSet<String> = due
            .iter()
            .map(|l| state.graph.current(l))
            .filter(|p| state.graph.profiles.contains_key(p))
            .collect();
        if list.is_empty() {
            return Ok(());
        }
        self.evaluate(list.into_iter().collect(), &[], now).await
    }

    /// Evaluates `list` (current profile ids) at `now` and records what changed; `merged_away`
    /// are the profiles this tick merged into others.
    async fn evaluate(
        &mut self,
        list: Vec<String>,
        merged_away: &[String],
        now: DateTime<Utc>,
    ) -> EngineResult<()> {
        let Some(state) = self.published.as_mut() else {
            return Ok(());
        };
        let ev = eval::evaluate(
            &self.ctx,
            &state.space,
            state,
            &list,
            now.timestamp_micros(),
        )
        .await?;
        // Entries and exits, against the last live flags or else the published members.
        let was = |flags: &HashMap<String, BTreeMap<String, bool>>, p: &str, a: &str| {
            flags
                .get(p)
                .and_then(|f| f.get(a).copied())
                .unwrap_or_else(|| state.members.get(a).is_some_and(|m| m.contains(p)))
        };
        let ids_of = |p: &str| -> BTreeMap<String, Vec<String>> {
            let mut out: BTreeMap<String, Vec<String>> = BTreeMap::new();
            if let Some(m) = state.graph.profiles.get(p) {
                for (t, v) in m.ids.keys() {
                    out.entry(t.clone()).or_default().push(v.clone());
                }
            }
            out.values_mut().for_each(|v| v.sort());
            out
        };
        // A profile merged away this tick: its membership counts as its survivor's (a batch
        // run replaces merged-away ids by their survivors in the previous membership).
        let mut absorbed: HashMap<String, Vec<String>> = HashMap::new();
        for m in merged_away {
            absorbed
                .entry(state.graph.current(m))
                .or_default()
                .push(m.clone());
        }
        let classes = Arc::new(view::classes(&state.space, state, &ev.rows));
        // A plan's rows come in no particular order: each profile's row by its id.
        for p in &list {
            let Some(&r) = ev.row_of.get(p) else {
                continue;
            };
            let mut flags = BTreeMap::new();
            for (a, f) in &ev.audiences {
                let before = was(&self.flags, p, a)
                    || absorbed
                        .get(p)
                        .is_some_and(|ms| ms.iter().any(|m| was(&self.flags, m, a)));
                let changed = before != f[r];
                if changed {
                    self.ever.insert((a.clone(), p.clone()));
                    self.stage.changes.push(LiveChange {
                        audience: a.clone(),
                        profile_id: p.clone(),
                        entered: f[r],
                        at: now,
                        identifiers: ids_of(p),
                    });
                }
                flags.insert(a.clone(), f[r]);
            }
            self.flags.insert(p.clone(), flags.clone());
            // What the API shows: members, and those that left live (published entries stay).
            let shown: BTreeMap<String, bool> = flags
                .iter()
                .filter(|(a, m)| **m || self.ever.contains(&((*a).clone(), p.clone())))
                .map(|(a, m)| (a.clone(), *m))
                .collect();
            let identifiers: Vec<(String, String)> = state
                .graph
                .profiles
                .get(p)
                .map(|m| {
                    m.ids
                        .keys()
                        .map(|(t, v)| (crate::plan::profiles::column_name(t), v.clone()))
                        .collect()
                })
                .unwrap_or_default();
            for k in &identifiers {
                self.stage.lookup.insert(k.clone(), p.clone());
            }
            self.stage.profiles.insert(
                p.clone(),
                Arc::new(LiveProfile {
                    profile_id: p.clone(),
                    row: ev.rows.slice(r, 1),
                    traits: classes.clone(),
                    audiences: shown,
                    identifiers,
                    updated_at: now,
                }),
            );
        }
        Ok(())
    }
}
