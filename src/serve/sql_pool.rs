//! Each served space's own threads for its SQL queries' work, so that a heavy query of one
//! space cannot starve another space's queries (nor the Profile API, which runs elsewhere).
//!
//! Within one tokio runtime a DataFusion task may compute for a long time in one poll (a
//! batch of a cross join), holding its worker; tasks behind it wait however small they are.
//! Threads of separate runtimes are shared out by the OS instead, which preempts. So the
//! endpoint's connections are served on one runtime, while what a statement computes runs on
//! its space's pool: the statement's planning is polled with the pool as the current runtime
//! (what DataFusion spawns lands there), and its rows are produced by a task of the pool.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use datafusion_postgres::pgwire;
use futures::StreamExt;
use pgwire::error::PgWireResult;
use tokio::runtime::{Handle, Runtime};
use tokio::task::JoinHandle;

/// A stream of a response's items (rows, or CopyData).
pub(super) type Items<T> = Pin<Box<dyn futures::Stream<Item = PgWireResult<T>> + Send>>;

/// Rows produced ahead of the client.
const AHEAD: usize = 1024;

/// A space's threads.
pub(super) struct Pool {
    /// Some until dropped (then shut down without waiting, as a drop in async code must).
    runtime: Option<Runtime>,
}

impl Pool {
    /// A pool of `threads` threads (None: one per core) named after `space`.
    pub fn new(space: &str, threads: Option<usize>) -> std::io::Result<Pool> {
        let mut b = tokio::runtime::Builder::new_multi_thread();
        if let Some(n) = threads {
            b.worker_threads(n.max(1));
        }
        let name: String = format!("sql-{space}").chars().take(15).collect();
        let runtime = b.thread_name(name).enable_all().build()?;
        Ok(Pool {
            runtime: Some(runtime),
        })
    }

    fn handle(&self) -> &Handle {
        self.runtime
            .as_ref()
            .expect("a pool has its runtime until dropped")
            .handle()
    }

    /// `work` polled with this pool as the current runtime: the tasks it spawns run here.
    pub fn enter<F: Future>(&self, work: F) -> Entered<F> {
        Entered {
            handle: self.handle().clone(),
            work: Box::pin(work),
        }
    }

    /// `rows` produced by a task of this pool, a little ahead of the client; dropping the
    /// stream stops the task and, with it, the query.
    pub fn drive<T: Send + 'static>(&self, mut rows: Items<T>) -> Items<T> {
        let (tx, rx) = tokio::sync::mpsc::channel(AHEAD);
        let task = self.handle().spawn(async move {
            while let Some(row) = rows.next().await {
                let last = row.is_err();
                if tx.send(row).await.is_err() || last {
                    break;
                }
            }
        });
        let task = AbortOnDrop(task);
        Box::pin(futures::stream::unfold(
            (rx, task),
            |(mut rx, task)| async move {
                let row = rx.recv().await?;
                Some((row, (rx, task)))
            },
        ))
    }
}

impl Drop for Pool {
    fn drop(&mut self) {
        if let Some(r) = self.runtime.take() {
            r.shutdown_background();
        }
    }
}

/// A future polled inside a pool's runtime context.
pub(super) struct Entered<F> {
    handle: Handle,
    work: Pin<Box<F>>,
}

impl<F: Future> Future for Entered<F> {
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let this = self.get_mut();
        let _in_pool = this.handle.enter();
        this.work.as_mut().poll(cx)
    }
}

struct AbortOnDrop(JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}
