//! `Committer`: group commit in front of the `StoreWorker`.
//!
//! Owns: the changes waiting to be written. Whatever arrives while a batch is being committed
//! goes into the next batch, so one transaction carries many changes under load. Each `Persist`
//! is answered once its batch is committed (so a 2xx is sent only for committed state), or with
//! `StoreUnavailable` when the batch failed. Logs an outage once and the recovery once.
//! Created by `app`; lives as long as the system. Must not: know what the changes mean.

use actix::prelude::*;
use log::{error, info};
use tokio::sync::oneshot;

use super::worker::{ApplyBatch, StoreWorker};
use super::Change;

/// The database could not commit; state-changing requests get 503.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the database is unavailable")]
pub struct StoreUnavailable;

/// Writes changes; answered once they are committed.
#[derive(Message, Debug)]
#[rtype(result = "Result<(), StoreUnavailable>")]
pub struct Persist(pub Vec<Change>);

type Waiter = oneshot::Sender<Result<(), StoreUnavailable>>;

/// The group-commit actor.
pub struct Committer {
    /// The connection owner, on its SyncArbiter; `None` with `memory://` (nothing is stored).
    worker: Option<Addr<StoreWorker>>,
    queue: Vec<Change>,
    waiters: Vec<Waiter>,
    in_flight: bool,
    healthy: bool,
}

impl Committer {
    /// A committer writing through `worker`.
    pub fn new(worker: Option<Addr<StoreWorker>>) -> Self {
        Self {
            worker,
            queue: Vec::new(),
            waiters: Vec::new(),
            in_flight: false,
            healthy: true,
        }
    }

    fn flush(&mut self, ctx: &mut Context<Self>) {
        if self.in_flight || self.queue.is_empty() {
            return;
        }
        let Some(worker) = &self.worker else {
            return;
        };
        self.in_flight = true;
        let batch = std::mem::take(&mut self.queue);
        let waiters = std::mem::take(&mut self.waiters);
        let send = worker.send(ApplyBatch(batch));
        ctx.spawn(send.into_actor(self).map(move |res, act, ctx| {
            act.in_flight = false;
            // The batch comes back to be freed on this thread, after the waiters are answered.
            let (res, _batch) = match res {
                Ok((batch, res)) => (Ok(res), Some(batch)),
                Err(e) => (Err(e), None),
            };
            let result = match res {
                Ok(Ok(())) => {
                    if !act.healthy {
                        info!("store: database available again");
                        act.healthy = true;
                    }
                    Ok(())
                }
                Ok(Err(e)) => {
                    if act.healthy {
                        error!("store: cannot commit, answering 503 until it can: {e}");
                        act.healthy = false;
                    }
                    Err(StoreUnavailable)
                }
                Err(_) => Err(StoreUnavailable),
            };
            for w in waiters {
                let _ = w.send(result);
            }
            act.flush(ctx);
        }));
    }
}

impl Actor for Committer {
    type Context = Context<Self>;
}

impl Handler<Persist> for Committer {
    type Result = ResponseFuture<Result<(), StoreUnavailable>>;

    fn handle(&mut self, msg: Persist, ctx: &mut Self::Context) -> Self::Result {
        if self.worker.is_none() {
            return Box::pin(std::future::ready(Ok(())));
        }
        let (tx, rx) = oneshot::channel();
        self.queue.extend(msg.0);
        self.waiters.push(tx);
        self.flush(ctx);
        Box::pin(async move { rx.await.unwrap_or(Err(StoreUnavailable)) })
    }
}
