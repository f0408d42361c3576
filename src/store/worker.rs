//! `StoreWorker`: the actor that owns the database connection, on a `SyncArbiter` (blocking
//! work never runs on the async threads).
//!
//! Owns: the connection, reopened after a failure. Commits each `ApplyBatch` atomically
//! and `LoadSnapshot` at start-up. Created by `app`; stops with the system.
//! Must not: decide what to store (callers send `Change`s) or answer SIP.

use actix::prelude::*;
use diesel::prelude::*;
use log::debug;

use super::models::{BindingRow, PublicationRow, SubscriptionRow};
use super::schema::{bindings, publications, subscriptions};
use super::{commit, open, AnyConnection, Change, SqliteOptions, StoreError};

/// Every recovered subscription's NOTIFY CSeq mark moves up by this much when it is loaded, so
/// a recovered watcher can send at once (see `watcher`).
pub const CSEQ_MARK_STEP: i64 = 1000;

/// Applies changes in one transaction.
#[derive(Message, Debug)]
#[rtype(result = "Result<(), StoreError>")]
pub struct ApplyBatch(pub Vec<Change>);

/// Deletes what expired during the downtime, moves every NOTIFY CSeq mark up by
/// `CSEQ_MARK_STEP`, and returns everything else; one transaction.
#[derive(Message, Debug)]
#[rtype(result = "Result<Snapshot, StoreError>")]
pub struct LoadSnapshot {
    /// Unix seconds; rows expiring at or before it are deleted.
    pub now: i64,
}

/// The stored state at start-up.
#[derive(Debug, Default)]
pub struct Snapshot {
    /// Live plain subscriptions (marks already moved up).
    pub subscriptions: Vec<SubscriptionRow>,
    /// Live list subscriptions (marks already moved up).
    pub list_subscriptions: Vec<SubscriptionRow>,
    /// Live publications, oldest modification first.
    pub publications: Vec<PublicationRow>,
    /// Live bindings.
    pub bindings: Vec<BindingRow>,
    /// Rows deleted because they expired during the downtime.
    pub expired: usize,
}

/// The connection-owning actor.
pub struct StoreWorker {
    url: String,
    sqlite: SqliteOptions,
    conn: Option<AnyConnection>,
}

impl StoreWorker {
    /// A worker starting with an open connection (or none, to open on first use).
    pub fn new(url: String, sqlite: SqliteOptions, conn: Option<AnyConnection>) -> Self {
        Self { url, sqlite, conn }
    }

    fn with_conn<T>(
        &mut self,
        f: impl FnOnce(&mut AnyConnection) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let conn = match self.conn.as_mut() {
            Some(c) => c,
            None => self.conn.insert(open(&self.url, self.sqlite)?),
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

impl Actor for StoreWorker {
    type Context = SyncContext<Self>;
}

impl Handler<ApplyBatch> for StoreWorker {
    type Result = Result<(), StoreError>;

    fn handle(&mut self, msg: ApplyBatch, _ctx: &mut Self::Context) -> Self::Result {
        self.with_conn(|conn| commit(conn, &msg.0).map_err(StoreError::Query))
    }
}

impl Handler<LoadSnapshot> for StoreWorker {
    type Result = Result<Snapshot, StoreError>;

    fn handle(&mut self, msg: LoadSnapshot, _ctx: &mut Self::Context) -> Self::Result {
        let now = msg.now;
        self.with_conn(|conn| {
            conn.transaction(|c| {
                let expired =
                    diesel::delete(subscriptions::table.filter(subscriptions::expires_at.le(now)))
                        .execute(c)?
                        + diesel::delete(
                            publications::table.filter(publications::expires_at.le(now)),
                        )
                        .execute(c)?
                        + diesel::delete(bindings::table.filter(bindings::expires_at.le(now)))
                            .execute(c)?;
                diesel::update(subscriptions::table)
                    .set(
                        subscriptions::notify_cseq_mark
                            .eq(subscriptions::notify_cseq_mark + CSEQ_MARK_STEP),
                    )
                    .execute(c)?;
                Ok(Snapshot {
                    subscriptions: load_subscriptions(c, false)?,
                    list_subscriptions: load_subscriptions(c, true)?,
                    publications: publications::table
                        .order(publications::seq.asc())
                        .select(PublicationRow::as_select())
                        .load(c)?,
                    bindings: bindings::table.select(BindingRow::as_select()).load(c)?,
                    expired,
                })
            })
            .map_err(StoreError::Query)
        })
    }
}

/// The stored plain (or list) subscriptions, into a vector sized once: 100,000 rows grown by
/// doubling would be copied about twice over, into freshly faulted-in memory.
fn load_subscriptions(c: &mut AnyConnection, lists: bool) -> QueryResult<Vec<SubscriptionRow>> {
    use diesel::connection::DefaultLoadingMode;
    let which = || {
        subscriptions::table
            .filter(subscriptions::list_source.is_not_null().eq(lists))
            .into_boxed()
    };
    let count: i64 = which().count().get_result(c)?;
    let mut rows = Vec::with_capacity(usize::try_from(count).unwrap_or(0));
    for row in which()
        .select(SubscriptionRow::as_select())
        .load_iter::<SubscriptionRow, DefaultLoadingMode>(c)?
    {
        rows.push(row?);
    }
    Ok(rows)
}
