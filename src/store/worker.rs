//! `StoreWorker`: the actor that owns the database connection, on a `SyncArbiter` (blocking
//! work never runs on the async threads).
//!
//! Owns: the connection, reopened after a failure. Commits the `committer`'s queue batch by
//! batch, each atomically, when told to `Drain` it, and `LoadSnapshot` at start-up. Created
//! by `app`; stops with the system.
//! Must not: decide what to store (callers send `Change`s) or answer SIP.

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;

use actix::prelude::*;
use diesel::prelude::*;
use log::{debug, warn};

use super::checkpoint::{WalCheckpointer, WRITER_AUTOCHECKPOINT_PAGES};
use super::committer::{CommitQueue, Committed, Drain};
use super::models::{ActivityRow, BindingRow, PublicationRow, SubscriptionRow};
use super::schema::{bindings, presentity_activity, publications, store_epoch, subscriptions};
use super::{commit, open, AnyConnection, Backend, SqliteOptions, StoreError};

/// Every recovered subscription's NOTIFY CSeq mark moves up by this much for each start of the
/// store since it was written, so a recovered watcher can send at once (see `watcher`).
pub const CSEQ_MARK_STEP: i64 = 1000;

/// The mark a stored row gives the store start `epoch`: its stored mark, moved up by
/// `CSEQ_MARK_STEP` for every start since the row was written (at least one).
///
/// Why this is safe without writing the rows: a row written in start `e` with mark `m` means
/// every CSeq sent until then is below `m`. In each later start `E` (each one counted in
/// `store_epoch` before anything is sent) the recovered watcher sends from
/// `m + (E − e − 1) · STEP` and stays below `m + (E − e) · STEP` unless it first commits a
/// higher mark, stamped `E`. So every start begins above whatever the previous one could send,
/// however many starts pass without the row being written.
pub fn effective_mark(row: &mut SubscriptionRow, epoch: i64) {
    let starts = epoch.saturating_sub(row.mark_epoch).max(1);
    row.notify_cseq_mark = row
        .notify_cseq_mark
        .saturating_add(starts.saturating_mul(CSEQ_MARK_STEP));
    row.document_version = row.notify_cseq_mark - 1;
    row.mark_epoch = epoch;
}

/// Deletes what expired during the downtime, counts this start in `store_epoch`, and returns
/// everything else but the plain subscriptions (those follow with `StreamSubscriptions`),
/// every mark moved up (`effective_mark`); one transaction.
#[derive(Message, Debug)]
#[rtype(result = "Result<Snapshot, StoreError>")]
pub struct LoadSnapshot {
    /// Unix seconds; rows expiring at or before it are deleted.
    pub now: i64,
}

/// The stored state at start-up, but the plain subscriptions.
#[derive(Debug, Default)]
pub struct Snapshot {
    /// Live list subscriptions (marks already moved up).
    pub list_subscriptions: Vec<SubscriptionRow>,
    /// Live publications, oldest modification first.
    pub publications: Vec<PublicationRow>,
    /// Live bindings.
    pub bindings: Vec<BindingRow>,
    /// When each presentity was last active.
    pub activity: Vec<ActivityRow>,
    /// Rows deleted because they expired during the downtime.
    pub expired: usize,
}

/// Rows per `SubscriptionChunk`: small enough that the first recovered NOTIFYs go out while
/// the rest are still read, large enough that a chunk's overhead does not count.
pub const SUBSCRIPTION_CHUNK_ROWS: usize = 1000;

/// Reads the live plain subscriptions (after `LoadSnapshot`), turns each row into a `T` with
/// `prepare` on the store's thread, and sends them to `to` in chunks, the last one marked.
/// Answers how many rows were read. The start-up work is so split over two threads: the
/// store's reads and parsing, and the restore of what was sent.
#[derive(Message)]
#[rtype(result = "Result<usize, StoreError>")]
pub struct StreamSubscriptions<T: Send + 'static> {
    /// What each row becomes (parsed there, so the receiver only restores).
    pub prepare: fn(SubscriptionRow) -> T,
    /// Where the chunks go.
    pub to: Recipient<SubscriptionChunk<T>>,
}

/// A chunk of `StreamSubscriptions`.
#[derive(Message, Debug)]
#[rtype(result = "()")]
pub struct SubscriptionChunk<T: Send + 'static> {
    /// Prepared rows, in the store's order.
    pub items: Vec<T>,
    /// No chunk follows.
    pub last: bool,
}

/// The connection-owning actor.
pub struct StoreWorker {
    url: String,
    sqlite: SqliteOptions,
    conn: Option<AnyConnection>,
    /// This start's `store_epoch`, set by `LoadSnapshot`; shared, so a worker the arbiter
    /// restarts stamps its writes the same.
    epoch: Arc<AtomicI64>,
    /// SQLite: WAL checkpoints off the commit path (`checkpoint`); the writer's connections
    /// then checkpoint only late, as a bound.
    checkpointer: Option<WalCheckpointer>,
}

impl StoreWorker {
    /// A worker starting with an open connection (or none, to open on first use).
    pub fn new(
        url: String,
        sqlite: SqliteOptions,
        conn: Option<AnyConnection>,
        epoch: Arc<AtomicI64>,
    ) -> Self {
        let checkpointer = match Backend::from_url(&url) {
            Ok(Backend::Sqlite(path)) => match WalCheckpointer::start(path) {
                Ok(c) => Some(c),
                Err(e) => {
                    warn!("store: no WAL checkpoint thread ({e}), commits checkpoint themselves");
                    None
                }
            },
            _ => None,
        };
        let mut worker = Self {
            url,
            sqlite,
            conn: None,
            epoch,
            checkpointer,
        };
        if let Some(mut c) = conn {
            match tune(&mut c, worker.checkpointer.is_some()) {
                Ok(()) => worker.conn = Some(c),
                Err(e) => warn!("store: reopening the connection at the first write: {e}"),
            }
        }
        worker
    }

    fn with_conn<T>(
        &mut self,
        f: impl FnOnce(&mut AnyConnection) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let conn = match self.conn.as_mut() {
            Some(c) => c,
            None => {
                let mut c = open(&self.url, self.sqlite)?;
                tune(&mut c, self.checkpointer.is_some())?;
                self.conn.insert(c)
            }
        };
        let result = f(conn);
        if let Err(e) = &result {
            // A broken connection (PostgreSQL restarted) is reopened on the next batch.
            debug!("store: dropping the connection after: {e}");
            self.conn = None;
        }
        result
    }
}

/// Settings of every connection the worker writes through.
///
/// SQLite: with a checkpoint thread (`checkpointed`), the writer checkpoints itself only past
/// `WRITER_AUTOCHECKPOINT_PAGES` (a failure only costs speed, so it is logged and ignored).
///
/// PostgreSQL (`WRITER_PLANNING`): a connection that cannot take them is not used (the batch
/// fails and the next one reopens), because a generic plan made without them can be a
/// sequential scan.
pub fn tune(conn: &mut AnyConnection, checkpointed: bool) -> Result<(), StoreError> {
    match conn {
        AnyConnection::Sqlite(c) => {
            if checkpointed {
                let sql = format!("PRAGMA wal_autocheckpoint = {WRITER_AUTOCHECKPOINT_PAGES}");
                if let Err(e) = diesel::sql_query(sql).execute(c) {
                    warn!("store: cannot move the writer's WAL checkpoint: {e}");
                }
            }
            Ok(())
        }
        AnyConnection::Postgresql(c) => diesel::sql_query(WRITER_PLANNING)
            .execute(c)
            .map(drop)
            .map_err(StoreError::Query),
    }
}

/// How the PostgreSQL writer plans: each prepared statement once, by its keys.
///
/// diesel keeps every statement prepared (the batch statement too, one per shape, see
/// `write_postgres`). Every statement the writer runs either touches rows by key (the batch
/// parts: `= ANY` of keys, `UNNEST` joined on keys, inserts) or reads or purges whole tables at
/// start-up. So a plan made once per statement, without the batch's arrays, is as good as one
/// made at every execution, and planning was about a tenth of the backend's CPU per commit
/// (`force_generic_plan`). But a generic plan made while a table is still small (a fresh
/// database, after a restart) is a sequential scan: `DELETE … WHERE etag = ANY($1)` would then
/// read the whole table, dead rows included, at every commit. `enable_seqscan = off` leaves the
/// planner the key's index wherever one serves; where none does (the start-up reads), a
/// sequential scan is still made, its cost counting `enable_seqscan`'s penalty; `jit = off`
/// keeps that inflated cost from having PostgreSQL JIT-compile the query (120 ms more to read
/// 100,000 subscriptions at start-up). One statement, so every setting holds or none.
pub const WRITER_PLANNING: &str = "SELECT set_config('enable_seqscan', 'off', false), \
     set_config('plan_cache_mode', 'force_generic_plan', false), set_config('jit', 'off', false)";

impl Actor for StoreWorker {
    type Context = SyncContext<Self>;
}

impl Handler<Drain> for StoreWorker {
    type Result = ();

    /// Commits batch after batch until the queue is empty, handing each back to the committer
    /// to answer its waiters; the next commit does not wait for that.
    fn handle(&mut self, msg: Drain, _ctx: &mut Self::Context) {
        // Should this thread unwind mid-batch, what waits is refused (503) and the queue is
        // left idle, so the next `Persist` wakes the worker the arbiter restarts.
        let _idle = IdleOnUnwind(&msg.queue);
        while let Some((changes, waiters)) = msg.queue.next_batch() {
            let epoch = self.epoch.load(Ordering::Relaxed);
            let started = std::time::Instant::now();
            let result =
                self.with_conn(|conn| commit(conn, &changes, epoch).map_err(StoreError::Query));
            crate::metrics::metrics()
                .store_commit
                .observe(started.elapsed().as_secs_f64());
            msg.committer.do_send(Committed {
                changes,
                waiters,
                result,
            });
        }
    }
}

/// Empties the queue and marks it idle if dropped while unwinding (see `Handler<Drain>`):
/// dropping a waiter answers its `Persist` with a `MailboxError`, which every sender takes as
/// 503 like `StoreUnavailable`.
struct IdleOnUnwind<'a>(&'a CommitQueue);

impl Drop for IdleOnUnwind<'_> {
    fn drop(&mut self) {
        if std::thread::panicking() {
            let mut pending = self.0.lock();
            pending.draining = false;
            pending.changes.clear();
            pending.waiters.clear();
        }
    }
}

impl Handler<LoadSnapshot> for StoreWorker {
    type Result = Result<Snapshot, StoreError>;

    fn handle(&mut self, msg: LoadSnapshot, _ctx: &mut Self::Context) -> Self::Result {
        let (snapshot, epoch) = self.with_conn(|c| Ok(load_snapshot(c, msg.now)?))?;
        self.epoch.store(epoch, Ordering::Relaxed);
        debug!("store: start {epoch}");
        Ok(snapshot)
    }
}

/// `LoadSnapshot` on `c`, in one transaction; also gives this start's epoch.
pub fn load_snapshot(c: &mut AnyConnection, now: i64) -> QueryResult<(Snapshot, i64)> {
    c.transaction(|c| {
        let expired =
            diesel::delete(subscriptions::table.filter(subscriptions::expires_at.le(now)))
                .execute(c)?
                + diesel::delete(publications::table.filter(publications::expires_at.le(now)))
                    .execute(c)?
                + diesel::delete(bindings::table.filter(bindings::expires_at.le(now)))
                    .execute(c)?;
        let counted = diesel::update(store_epoch::table.find(1))
            .set(store_epoch::epoch.eq(store_epoch::epoch + 1))
            .execute(c)?;
        if counted == 0 {
            // The migration's row was deleted: count again from 1 (every mark still moves up
            // by at least one step).
            diesel::insert_into(store_epoch::table)
                .values((store_epoch::id.eq(1), store_epoch::epoch.eq(1)))
                .execute(c)?;
        }
        let epoch: i64 = store_epoch::table
            .find(1)
            .select(store_epoch::epoch)
            .first(c)?;
        let snapshot = Snapshot {
            list_subscriptions: load_list_subscriptions(c, epoch)?,
            publications: publications::table
                .order(publications::seq.asc())
                .select(PublicationRow::as_select())
                .load(c)?,
            bindings: bindings::table.select(BindingRow::as_select()).load(c)?,
            activity: presentity_activity::table
                .select(ActivityRow::as_select())
                .load(c)?,
            expired,
        };
        Ok((snapshot, epoch))
    })
}

impl<T: Send + 'static> Handler<StreamSubscriptions<T>> for StoreWorker {
    type Result = Result<usize, StoreError>;

    fn handle(&mut self, msg: StreamSubscriptions<T>, _ctx: &mut Self::Context) -> Self::Result {
        let StreamSubscriptions { prepare, to } = msg;
        let epoch = self.epoch.load(Ordering::Relaxed);
        self.with_conn(|c| {
            let mut items = Vec::with_capacity(SUBSCRIPTION_CHUNK_ROWS);
            let sent = read_subscriptions(c, epoch, |row| {
                items.push(prepare(row));
                if items.len() == SUBSCRIPTION_CHUNK_ROWS {
                    let full =
                        std::mem::replace(&mut items, Vec::with_capacity(SUBSCRIPTION_CHUNK_ROWS));
                    to.do_send(SubscriptionChunk {
                        items: full,
                        last: false,
                    });
                }
            })?;
            to.do_send(SubscriptionChunk { items, last: true });
            Ok(sent)
        })
    }
}

/// Hands every stored plain subscription to `each`, its mark moved up for start `epoch`
/// (`effective_mark`); gives how many there were.
pub fn read_subscriptions(
    c: &mut AnyConnection,
    epoch: i64,
    mut each: impl FnMut(SubscriptionRow),
) -> QueryResult<usize> {
    use diesel::connection::DefaultLoadingMode;
    // The same query for each backend (`as_select` is typed by the backend).
    macro_rules! plain {
        () => {
            subscriptions::table
                .filter(subscriptions::list_source.is_null())
                .select(SubscriptionRow::as_select())
        };
    }
    let mut read = 0;
    let mut take = |row: QueryResult<SubscriptionRow>| -> QueryResult<()> {
        let mut row = row?;
        effective_mark(&mut row, epoch);
        each(row);
        read += 1;
        Ok(())
    };
    match c {
        // In pages along the primary key: libpq receives a whole result before its first
        // row, so one query would make the restore wait for all of it, and its row-by-row
        // mode costs a result of its own per row (a third of this thread's time per row).
        // Nothing writes meanwhile: this thread is the writer.
        AnyConnection::Postgresql(c) => {
            let mut after = String::new();
            loop {
                let page: Vec<SubscriptionRow> = plain!()
                    .filter(subscriptions::id.gt(&after))
                    .order(subscriptions::id)
                    .limit(SUBSCRIPTION_CHUNK_ROWS as i64)
                    .load(c)?;
                let full = page.len() == SUBSCRIPTION_CHUNK_ROWS;
                if let Some(last) = page.last() {
                    after.clone_from(&last.id);
                }
                for row in page {
                    take(Ok(row))?;
                }
                if !full {
                    break;
                }
            }
        }
        AnyConnection::Sqlite(c) => {
            for row in plain!().load_iter::<SubscriptionRow, DefaultLoadingMode>(c)? {
                take(row)?;
            }
        }
    }
    Ok(read)
}

/// The stored list subscriptions, into a vector sized once: 100,000 rows grown by
/// doubling would be copied about twice over, into freshly faulted-in memory.
fn load_list_subscriptions(c: &mut AnyConnection, epoch: i64) -> QueryResult<Vec<SubscriptionRow>> {
    use diesel::connection::DefaultLoadingMode;
    let which = || {
        subscriptions::table
            .filter(subscriptions::list_source.is_not_null())
            .into_boxed()
    };
    let count: i64 = which().count().get_result(c)?;
    let mut rows = Vec::with_capacity(usize::try_from(count).unwrap_or(0));
    for row in which()
        .select(SubscriptionRow::as_select())
        .load_iter::<SubscriptionRow, DefaultLoadingMode>(c)?
    {
        let mut row = row?;
        effective_mark(&mut row, epoch);
        rows.push(row);
    }
    Ok(rows)
}
