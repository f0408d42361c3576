//! `Committer`: group commit in front of the `StoreWorker`.
//!
//! Owns: the changes waiting to be written (`CommitQueue`, shared with the worker). Whatever
//! arrives while a batch is being committed goes into the next batch, so one transaction
//! carries many changes under load. The worker drains the queue itself, batch after batch,
//! until it finds it empty: the next commit starts as soon as the last one ends, however busy
//! the async thread is, and it is woken (`Drain`) only when changes arrive at an idle queue.
//! Each `Persist` is answered once its batch is committed (so a 2xx is sent only for
//! committed state), or with `StoreUnavailable` when the batch failed. Logs an outage once
//! and the recovery once. Created by `app`; lives as long as the system. Must not: know what
//! the changes mean.

use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use actix::dev::{MessageResponse, OneshotSender};
use actix::prelude::*;
use log::{error, info};

use super::worker::StoreWorker;
use super::{Change, StoreError};
use crate::metrics::metrics;

/// The database could not commit; state-changing requests get 503.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the database is unavailable")]
pub struct StoreUnavailable;

/// Writes changes; answered once they are committed.
#[derive(Message, Debug)]
#[rtype(result = "Result<(), StoreUnavailable>")]
pub struct Persist(pub Vec<Change>);

/// Told when a `Persist` is committed, or cannot be: the channel actix answers the `Persist`'s
/// sender on.
pub type Waiter = OneshotSender<Result<(), StoreUnavailable>>;

/// The changes not yet taken by the worker, and who waits for them.
#[derive(Default)]
pub struct Pending {
    /// In arrival order.
    pub changes: Vec<Change>,
    /// One per `Persist` whose changes are in `changes`.
    pub waiters: Vec<Waiter>,
    /// The worker has been woken and has not yet found the queue empty.
    pub draining: bool,
}

/// The queue between the `Committer` (on the async thread) and the `StoreWorker` (on its own).
#[derive(Clone, Default)]
pub struct CommitQueue(Arc<Mutex<Pending>>);

impl CommitQueue {
    /// The queue, locked. A panic while it was held cannot leave it half-written (every
    /// critical section only moves whole vectors and a flag), so a poisoned lock is used as is.
    pub fn lock(&self) -> MutexGuard<'_, Pending> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Takes the next batch and its waiters; `None`, and not draining any more, when empty.
    pub fn next_batch(&self) -> Option<(Vec<Change>, Vec<Waiter>)> {
        let mut pending = self.lock();
        if pending.changes.is_empty() && pending.waiters.is_empty() {
            pending.draining = false;
            return None;
        }
        metrics().store_queue_depth.set(0);
        Some((
            std::mem::take(&mut pending.changes),
            std::mem::take(&mut pending.waiters),
        ))
    }
}

/// Wakes the worker: changes arrived at an idle queue. It commits batches until the queue is
/// empty, handing each batch and its waiters back in a `Committed`.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Drain {
    /// The queue to drain.
    pub queue: CommitQueue,
    /// Where each committed batch goes back.
    pub committer: Recipient<Committed>,
}

/// A batch the worker has committed (or failed to). Its waiters are answered here, on the
/// async thread, all in one turn: answered one by one from the worker's thread, each answer
/// was a wake-up across threads and its response a write of its own. The changes come back to
/// be freed by the thread that allocated them (a free from another thread costs the allocator
/// more on both sides).
#[derive(Message)]
#[rtype(result = "()")]
pub struct Committed {
    /// The batch's changes.
    pub changes: Vec<Change>,
    /// Who waits for them.
    pub waiters: Vec<Waiter>,
    /// The commit's outcome.
    pub result: Result<(), StoreError>,
}

/// The group-commit actor.
pub struct Committer {
    /// The connection owner, on its SyncArbiter; `None` with `memory://` (nothing is stored).
    /// Shared with every `Enqueue` (one reference count, not a copy of the address).
    worker: Option<Arc<Addr<StoreWorker>>>,
    queue: CommitQueue,
    healthy: bool,
}

impl Committer {
    /// A committer writing through `worker`.
    pub fn new(worker: Option<Addr<StoreWorker>>) -> Self {
        Self {
            worker: worker.map(Arc::new),
            queue: CommitQueue::default(),
            healthy: true,
        }
    }
}

impl Actor for Committer {
    type Context = Context<Self>;
}

impl Handler<Persist> for Committer {
    type Result = Enqueue;

    fn handle(&mut self, msg: Persist, _ctx: &mut Self::Context) -> Enqueue {
        Enqueue {
            changes: msg.0,
            queue: self.queue.clone(),
            worker: self.worker.clone(),
        }
    }
}

/// A `Persist` being answered: its changes go into the queue together with the channel actix
/// answers the sender on, which is the `Waiter` itself. So a request costs no task and no
/// channel of its own (a `ResponseFuture` would spawn a task per request to wait on a second
/// channel), and the answer reaches the sender in one wake-up.
pub struct Enqueue {
    changes: Vec<Change>,
    queue: CommitQueue,
    worker: Option<Arc<Addr<StoreWorker>>>,
}

impl MessageResponse<Committer, Persist> for Enqueue {
    fn handle(self, ctx: &mut Context<Committer>, waiter: Option<Waiter>) {
        let Some(worker) = self.worker else {
            // memory://: nothing to commit.
            if let Some(w) = waiter {
                let _ = w.send(Ok(()));
            }
            return;
        };
        // Changes and waiter go in under one lock: the worker takes both or neither.
        let wake = {
            let mut pending = self.queue.lock();
            pending.changes.extend(self.changes);
            metrics()
                .store_queue_depth
                .set(i64::try_from(pending.changes.len()).unwrap_or(i64::MAX));
            // A `do_send` (no answer wanted) leaves no waiter.
            pending.waiters.extend(waiter);
            !std::mem::replace(&mut pending.draining, true)
        };
        if wake {
            let drain = Drain {
                queue: self.queue.clone(),
                committer: ctx.address().recipient(),
            };
            let sent = match worker.try_send(drain) {
                Ok(()) => true,
                // A full mailbox (start-up messages ahead of it) still takes it.
                Err(SendError::Full(drain)) => {
                    worker.do_send(drain);
                    true
                }
                Err(SendError::Closed(_)) => false,
            };
            if !sent {
                // The worker's thread is gone: nothing can be committed.
                let mut pending = self.queue.lock();
                pending.draining = false;
                pending.changes.clear();
                for w in pending.waiters.drain(..) {
                    let _ = w.send(Err(StoreUnavailable));
                }
            }
        }
    }
}

impl Handler<Committed> for Committer {
    type Result = ();

    fn handle(&mut self, msg: Committed, _ctx: &mut Self::Context) {
        let answer = msg
            .result
            .as_ref()
            .map(|_| ())
            .map_err(|_| StoreUnavailable);
        for w in msg.waiters {
            let _ = w.send(answer);
        }
        match msg.result {
            Ok(()) if !self.healthy => {
                info!("store: database available again");
                self.healthy = true;
                metrics().store_up.set(1);
            }
            Err(e) if self.healthy => {
                error!("store: cannot commit, answering 503 until it can: {e}");
                self.healthy = false;
                metrics().store_up.set(0);
            }
            _ => {}
        }
        // `msg.changes` is freed here, on the thread that allocated it.
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::AtomicI64;

    use diesel::prelude::*;

    use super::*;
    use crate::store::{open, schema, PublicationRow, SqliteOptions};

    fn saved(i: usize) -> Change {
        Change::PublicationSaved {
            row: PublicationRow {
                etag: format!("e{i}"),
                aor: "sip:a@b".into(),
                body: b"<presence/>".to_vec(),
                content_type: "application/pidf+xml".into(),
                expires_at: i64::MAX,
                seq: 1,
                event: "presence".into(),
            },
            replaces: None,
        }
    }

    /// A committer writing to a fresh SQLite file in `dir`, and the file's URL.
    fn sqlite_committer(dir: &std::path::Path) -> (Addr<Committer>, String) {
        let url = format!("sqlite://{}/commit.db", dir.display());
        let opts = SqliteOptions::default();
        drop(open(&url, opts).unwrap());
        let worker_url = url.clone();
        let worker = SyncArbiter::start(1, move || {
            StoreWorker::new(worker_url.clone(), opts, None, Arc::new(AtomicI64::new(1)))
        });
        (Committer::new(Some(worker)).start(), url)
    }

    #[actix_rt::test]
    async fn every_persist_is_committed_before_it_is_answered_across_batches() {
        let dir = tempfile::tempdir().unwrap();
        let (committer, url) = sqlite_committer(dir.path());
        let opts = SqliteOptions::default();
        let stored = || {
            let mut c = open(&url, opts).unwrap();
            let etags: Vec<String> = match &mut c {
                crate::store::AnyConnection::Sqlite(c) => schema::publications::table
                    .select(schema::publications::etag)
                    .load(c)
                    .unwrap(),
                crate::store::AnyConnection::Postgresql(_) => unreachable!(),
            };
            etags.len()
        };
        // Sent together, they are answered over several batches (the first one wakes the
        // worker; the others queue behind it), each once its own row is stored.
        let requests: Vec<_> = (0..300)
            .map(|i| committer.send(Persist(vec![saved(i)])))
            .collect();
        let mut answered = 0;
        for r in requests {
            assert_eq!(r.await.unwrap(), Ok(()));
            answered += 1;
            assert!(stored() >= answered, "answered before stored");
        }
        assert_eq!(stored(), 300);
        // The queue went idle; a later change wakes the worker again.
        assert!(!committer_queue_draining(&committer).await);
        assert_eq!(
            committer.send(Persist(vec![saved(300)])).await.unwrap(),
            Ok(())
        );
        assert_eq!(stored(), 301);
    }

    #[actix_rt::test]
    async fn changes_sent_without_an_answer_are_committed_no_later_than_the_next_answered_ones() {
        let dir = tempfile::tempdir().unwrap();
        let (committer, url) = sqlite_committer(dir.path());
        // Expiry timers send their removals this way: no waiter goes into the queue.
        for i in 0..20 {
            committer.do_send(Persist(vec![saved(i)]));
        }
        assert_eq!(
            committer.send(Persist(vec![saved(20)])).await.unwrap(),
            Ok(())
        );
        let mut c = open(&url, SqliteOptions::default()).unwrap();
        let crate::store::AnyConnection::Sqlite(c) = &mut c else {
            unreachable!()
        };
        let stored: i64 = schema::publications::table.count().get_result(c).unwrap();
        assert_eq!(stored, 21);
        assert!(!committer_queue_draining(&committer).await);
    }

    #[actix_rt::test]
    async fn without_a_database_every_persist_is_answered_at_once() {
        let committer = Committer::new(None).start();
        for i in 0..3 {
            assert_eq!(
                committer.send(Persist(vec![saved(i)])).await.unwrap(),
                Ok(())
            );
        }
        assert!(!committer_queue_draining(&committer).await);
    }

    /// Whether the committer's queue is still marked as being drained.
    async fn committer_queue_draining(committer: &Addr<Committer>) -> bool {
        #[derive(Message)]
        #[rtype(result = "bool")]
        struct Draining;
        impl Handler<Draining> for Committer {
            type Result = bool;
            fn handle(&mut self, _: Draining, _: &mut Self::Context) -> bool {
                self.queue.lock().draining
            }
        }
        // The worker marks the queue idle when it finds it empty, just after the last batch
        // went back: give it a moment.
        for _ in 0..100 {
            if !committer.send(Draining).await.unwrap() {
                return false;
            }
            actix_rt::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        true
    }

    #[actix_rt::test]
    async fn a_batch_that_cannot_be_committed_answers_unavailable_and_the_next_one_is_tried() {
        let dir = tempfile::tempdir().unwrap();
        // A database file under a regular file: it can never be opened.
        std::fs::write(dir.path().join("file"), b"").unwrap();
        let url = format!("sqlite://{}/file/x.db", dir.path().display());
        let worker = SyncArbiter::start(1, move || {
            StoreWorker::new(
                url.clone(),
                SqliteOptions::default(),
                None,
                Arc::new(AtomicI64::new(1)),
            )
        });
        let committer = Committer::new(Some(worker)).start();
        for i in 0..2 {
            let answer = committer.send(Persist(vec![saved(i)])).await.unwrap();
            assert_eq!(answer, Err(StoreUnavailable));
        }
        assert!(!committer_queue_draining(&committer).await);
    }
}
