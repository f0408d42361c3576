//! Persistence: the only module that imports diesel.
//!
//! Owns: the connection (SQLite embedded, or PostgreSQL, chosen explicitly from the
//! `store.url` scheme: diesel's combined `establish()` could silently take a PostgreSQL URL for
//! a SQLite file name), the embedded migrations (one set per backend), the rows, and the two
//! actors: `StoreWorker` (on a `SyncArbiter`, owns the connection, runs one transaction per
//! batch) and `Committer` (groups whatever changes are waiting into the next batch and answers
//! each once it is committed). Messages are domain-shaped (`Change`, `LoadSnapshot`).
//! Must not: hold SIP or presence logic.

pub mod committer;
pub mod lists;
pub mod models;
pub mod schema;
pub mod worker;

use std::path::PathBuf;

use diesel::prelude::*;
use diesel::{Connection, PgConnection, SqliteConnection};
use diesel_migrations::{embed_migrations, EmbeddedMigrations, MigrationHarness};
use log::info;

pub use committer::{Committer, Persist, StoreUnavailable};
pub use lists::{ListMemberRow, ListQuery, ListResolver, ResolveList};
pub use models::{BindingRow, PublicationRow, SubscriptionRow};
pub use worker::{LoadSnapshot, Snapshot, StoreWorker};

/// Runs the same diesel expression on whichever backend `conn` is: for statements (multi-row
/// inserts, `IN` lists) that diesel's multi-backend connection does not offer.
macro_rules! with_backend {
    ($conn:expr, $c:ident => $body:expr) => {
        match $conn {
            AnyConnection::Sqlite($c) => $body,
            AnyConnection::Postgresql($c) => $body,
        }
    };
}

const SQLITE_MIGRATIONS: EmbeddedMigrations = embed_migrations!("migrations/sqlite");
const POSTGRES_MIGRATIONS: EmbeddedMigrations = embed_migrations!("migrations/postgres");

/// Why the store failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// `store.url` names no supported backend.
    #[error("store.url `{0}` must be sqlite://…, postgres://… or memory://")]
    UnknownScheme(String),
    /// The database could not be opened.
    #[error("cannot open the database {url}: {source}")]
    Open {
        /// The URL (without password).
        url: String,
        /// Why.
        #[source]
        source: diesel::ConnectionError,
    },
    /// A migration failed.
    #[error("database migration failed: {0}")]
    Migration(String),
    /// A query failed.
    #[error("database error: {0}")]
    Query(#[from] diesel::result::Error),
    /// The store actor is gone.
    #[error("the store is not running")]
    Gone,
}

/// A connection to either backend; queries are written once for both.
#[derive(diesel::MultiConnection)]
pub enum AnyConnection {
    /// PostgreSQL, for shared deployments.
    Postgresql(PgConnection),
    /// SQLite, embedded (the default).
    Sqlite(SqliteConnection),
}

/// Which backend a URL names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Backend {
    /// `sqlite://PATH` (relative) or `sqlite:///abs/path`.
    Sqlite(PathBuf),
    /// `postgres://…` or `postgresql://…`, passed to libpq as is.
    Postgres(String),
    /// `memory://`: nothing is stored and nothing survives a restart (benchmarks, tests).
    Memory,
}

impl Backend {
    /// Chooses the backend from the URL scheme, and nothing else.
    pub fn from_url(url: &str) -> Result<Self, StoreError> {
        if let Some(path) = url.strip_prefix("sqlite://") {
            return Ok(Backend::Sqlite(PathBuf::from(path)));
        }
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            return Ok(Backend::Postgres(url.to_owned()));
        }
        if url == "memory://" {
            return Ok(Backend::Memory);
        }
        Err(StoreError::UnknownScheme(redact(url)))
    }
}

/// The URL without a password, for logs and errors.
pub fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(s), Some(at)) if at > s => {
            let userinfo = &url[s + 3..at];
            let user = userinfo.split(':').next().unwrap_or("");
            format!("{}{user}:***{}", &url[..s + 3], &url[at..])
        }
        _ => url.to_owned(),
    }
}

/// SQLite settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SqliteOptions {
    /// How long a write waits for a lock before it fails (and its request gets 503), ms.
    pub busy_timeout_ms: u32,
    /// `synchronous = FULL` (fsync at every commit: survives power loss) rather than
    /// `NORMAL` (WAL written at every commit, fsync at checkpoints: survives kill -9 and crashes
    /// of presenced, not power loss).
    pub fsync_every_commit: bool,
}

impl Default for SqliteOptions {
    fn default() -> Self {
        Self {
            busy_timeout_ms: 5000,
            fsync_every_commit: false,
        }
    }
}

/// Opens the database named by `url` and applies pending migrations; `None` for `memory://`.
pub fn open_any(url: &str, sqlite: SqliteOptions) -> Result<Option<AnyConnection>, StoreError> {
    match Backend::from_url(url)? {
        Backend::Memory => Ok(None),
        _ => open(url, sqlite).map(Some),
    }
}

/// Opens the database named by `url` and applies pending migrations.
pub fn open(url: &str, sqlite: SqliteOptions) -> Result<AnyConnection, StoreError> {
    let mut conn = connect(url, sqlite)?;
    match &mut conn {
        AnyConnection::Sqlite(c) => {
            c.run_pending_migrations(SQLITE_MIGRATIONS)
                .map_err(|e| StoreError::Migration(e.to_string()))?;
        }
        AnyConnection::Postgresql(c) => {
            c.run_pending_migrations(POSTGRES_MIGRATIONS)
                .map_err(|e| StoreError::Migration(e.to_string()))?;
        }
    }
    info!("store: {} ready", redact(url));
    Ok(conn)
}

/// Opens the database named by `url` without touching its schema (a users database the
/// list query reads, or the store once migrated).
pub fn connect(url: &str, sqlite: SqliteOptions) -> Result<AnyConnection, StoreError> {
    let open_err = |source| StoreError::Open {
        url: redact(url),
        source,
    };
    match Backend::from_url(url)? {
        Backend::Sqlite(path) => {
            if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                std::fs::create_dir_all(dir).map_err(|e| {
                    open_err(diesel::ConnectionError::BadConnection(format!(
                        "cannot create {}: {e}",
                        dir.display()
                    )))
                })?;
            }
            let mut conn =
                SqliteConnection::establish(&path.to_string_lossy()).map_err(open_err)?;
            // busy_timeout before WAL: switching journal modes itself may wait on a lock. In WAL
            // mode every commit is written to the WAL before its 2xx, so kill -9 loses nothing
            // with either synchronous setting; FULL also fsyncs it (power loss).
            let synchronous = if sqlite.fsync_every_commit {
                "FULL"
            } else {
                "NORMAL"
            };
            diesel::sql_query(format!("PRAGMA busy_timeout = {}", sqlite.busy_timeout_ms))
                .execute(&mut conn)
                .and_then(|_| diesel::sql_query("PRAGMA journal_mode = WAL").execute(&mut conn))
                .and_then(|_| {
                    diesel::sql_query(format!("PRAGMA synchronous = {synchronous}"))
                        .execute(&mut conn)
                })
                .map_err(StoreError::Query)?;
            Ok(AnyConnection::Sqlite(conn))
        }
        Backend::Postgres(pg) => Ok(AnyConnection::Postgresql(
            PgConnection::establish(&pg).map_err(open_err)?,
        )),
        Backend::Memory => Err(StoreError::UnknownScheme(
            "memory:// has no database to open".into(),
        )),
    }
}

/// One state change, as a store records it.
#[derive(Debug, Clone, PartialEq)]
pub enum Change {
    /// A subscription was created (its id is new).
    SubscriptionCreated(Box<SubscriptionRow>),
    /// A subscription was refreshed (the whole row is written).
    SubscriptionSaved(Box<SubscriptionRow>),
    /// A subscription's NOTIFY CSeq high-water mark moved.
    NotifyCSeqMark {
        /// The subscription.
        id: String,
        /// The new mark.
        mark: i64,
    },
    /// A subscription ended.
    SubscriptionRemoved(String),
    /// A publication was created, refreshed or modified; `replaces` is its previous ETag.
    PublicationSaved {
        /// The row under its new ETag.
        row: PublicationRow,
        /// The ETag it had before, if any.
        replaces: Option<String>,
    },
    /// A publication was removed or expired.
    PublicationRemoved(String),
    /// Every binding of an AOR, replacing what was stored.
    BindingsReplaced {
        /// The AOR.
        aor: String,
        /// Its bindings now.
        rows: Vec<BindingRow>,
    },
}

/// Applies changes in order, inside the caller's transaction.
pub fn apply(conn: &mut AnyConnection, changes: &[Change]) -> QueryResult<()> {
    use schema::{bindings, subscriptions};
    // Publications: every delete of the batch in one statement, every insert in another. Safe
    // in any order: an entity-tag is new when inserted, and a client can name it (to refresh,
    // modify or remove) only after the 2xx that follows its commit, so no batch both inserts
    // and deletes one.
    // New subscriptions likewise: their ids are new, and nothing can name them before the 2xx.
    let mut doomed: Vec<&str> = Vec::new();
    let mut fresh: Vec<&PublicationRow> = Vec::new();
    let mut created: Vec<&SubscriptionRow> = Vec::new();
    for change in changes {
        match change {
            Change::SubscriptionCreated(row) => created.push(row),
            Change::PublicationSaved { row, replaces } => {
                doomed.extend(replaces.as_deref());
                fresh.push(row);
            }
            Change::PublicationRemoved(etag) => doomed.push(etag),
            _ => {}
        }
    }
    delete_publications(conn, &doomed)?;
    insert_publications(conn, fresh)?;
    for chunk in created.chunks(ROWS_PER_STATEMENT / 4) {
        with_backend!(conn, c => diesel::insert_into(subscriptions::table).values(chunk.to_vec()).execute(c))?;
    }
    // The rest in order, consecutive changes of one kind in one statement where they can be:
    // a round trip per statement is what PostgreSQL costs.
    let mut rest = changes;
    while let Some(first) = rest.first() {
        let run = rest
            .iter()
            .take_while(|c| std::mem::discriminant(*c) == std::mem::discriminant(first))
            .count();
        let (now, later) = rest.split_at(run);
        rest = later;
        match first {
            Change::PublicationSaved { .. }
            | Change::PublicationRemoved(_)
            | Change::SubscriptionCreated(_) => {}
            Change::SubscriptionRemoved(_) => {
                let ids: Vec<&str> = now
                    .iter()
                    .filter_map(|c| match c {
                        Change::SubscriptionRemoved(id) => Some(id.as_str()),
                        _ => None,
                    })
                    .collect();
                for chunk in ids.chunks(ROWS_PER_STATEMENT) {
                    with_backend!(conn, c => diesel::delete(subscriptions::table.filter(subscriptions::id.eq_any(chunk))).execute(c))?;
                }
            }
            _ => {
                for change in now {
                    match change {
                        Change::SubscriptionSaved(row) => upsert_subscription(conn, row)?,
                        Change::NotifyCSeqMark { id, mark } => {
                            diesel::update(subscriptions::table.find(id))
                                .set(subscriptions::notify_cseq_mark.eq(mark))
                                .execute(conn)?;
                        }
                        Change::BindingsReplaced { aor, rows } => {
                            diesel::delete(bindings::table.filter(bindings::aor.eq(aor)))
                                .execute(conn)?;
                            if !rows.is_empty() {
                                with_backend!(conn, c => diesel::insert_into(bindings::table).values(rows).execute(c))?;
                            }
                        }
                        // Handled above.
                        Change::SubscriptionCreated(_)
                        | Change::PublicationSaved { .. }
                        | Change::PublicationRemoved(_)
                        | Change::SubscriptionRemoved(_) => {}
                    }
                }
            }
        }
    }
    Ok(())
}

/// Rows per statement: well under SQLite's limit on bound variables (32,766).
const ROWS_PER_STATEMENT: usize = 500;

fn delete_publications(conn: &mut AnyConnection, etags: &[&str]) -> QueryResult<()> {
    use schema::publications;
    for chunk in etags.chunks(ROWS_PER_STATEMENT) {
        with_backend!(conn, c => diesel::delete(publications::table.filter(publications::etag.eq_any(chunk))).execute(c))?;
    }
    Ok(())
}

fn insert_publications(conn: &mut AnyConnection, rows: Vec<&PublicationRow>) -> QueryResult<()> {
    use schema::publications;
    for chunk in rows.chunks(ROWS_PER_STATEMENT) {
        with_backend!(conn, c => diesel::insert_into(publications::table).values(chunk.to_vec()).execute(c))?;
    }
    Ok(())
}

/// One statement per backend: SQLite `REPLACE`, PostgreSQL `ON CONFLICT … DO UPDATE`.
fn upsert_subscription(conn: &mut AnyConnection, row: &SubscriptionRow) -> QueryResult<()> {
    use schema::subscriptions;
    match conn {
        AnyConnection::Sqlite(c) => diesel::replace_into(subscriptions::table)
            .values(row)
            .execute(c)
            .map(drop),
        AnyConnection::Postgresql(c) => diesel::insert_into(subscriptions::table)
            .values(row)
            .on_conflict(subscriptions::id)
            .do_update()
            .set(row)
            .execute(c)
            .map(drop),
    }
}

/// Seconds since the Unix epoch.
pub fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_backend_comes_from_the_scheme_only() {
        assert_eq!(
            Backend::from_url("sqlite://var/p.db").unwrap(),
            Backend::Sqlite("var/p.db".into())
        );
        assert_eq!(
            Backend::from_url("sqlite:///tmp/p.db").unwrap(),
            Backend::Sqlite("/tmp/p.db".into())
        );
        assert!(matches!(
            Backend::from_url("postgres://u@localhost/db").unwrap(),
            Backend::Postgres(_)
        ));
        assert!(Backend::from_url("mysql://x").is_err());
        assert!(Backend::from_url("var/p.db").is_err());
    }

    #[test]
    fn passwords_are_redacted() {
        assert_eq!(
            redact("postgres://bob:secret@h/db"),
            "postgres://bob:***@h/db"
        );
        assert_eq!(redact("sqlite://var/p.db"), "sqlite://var/p.db");
    }
}

#[cfg(test)]
mod migration_tests {
    use super::*;

    fn redo(conn: &mut AnyConnection) {
        let run = |c: &mut AnyConnection| match c {
            AnyConnection::Sqlite(c) => {
                let all = c.applied_migrations().unwrap().len();
                for _ in 0..all {
                    c.revert_last_migration(SQLITE_MIGRATIONS).unwrap();
                }
                c.run_pending_migrations(SQLITE_MIGRATIONS).unwrap();
            }
            AnyConnection::Postgresql(c) => {
                let all = c.applied_migrations().unwrap().len();
                for _ in 0..all {
                    c.revert_last_migration(POSTGRES_MIGRATIONS).unwrap();
                }
                c.run_pending_migrations(POSTGRES_MIGRATIONS).unwrap();
            }
        };
        run(conn);
        // The tables are usable after the round trip.
        conn.transaction(|c| {
            apply(
                c,
                &[Change::BindingsReplaced {
                    aor: "sip:a@b".into(),
                    rows: vec![BindingRow {
                        aor: "sip:a@b".into(),
                        contact: "sip:a@1.2.3.4".into(),
                        q_value: Some(0.5),
                        expires_at: 1,
                        call_id: "c".into(),
                        cseq: 1,
                    }],
                }],
            )
        })
        .unwrap();
    }

    fn publication(etag: &str) -> PublicationRow {
        PublicationRow {
            etag: etag.into(),
            aor: "sip:a@b".into(),
            body: b"<presence/>".to_vec(),
            content_type: "application/pidf+xml".into(),
            expires_at: i64::MAX,
            seq: 1,
        }
    }

    #[test]
    fn a_batch_of_mixed_changes_is_applied_in_order_with_runs_coalesced() {
        use schema::publications;
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}/batch.db", dir.path().display());
        let mut conn = open(&url, SqliteOptions::default()).unwrap();
        let saved = |etag: &str, replaces: Option<&str>| Change::PublicationSaved {
            row: publication(etag),
            replaces: replaces.map(str::to_owned),
        };
        apply(
            &mut conn,
            &[saved("x", None), saved("y", None), saved("z", None)],
        )
        .unwrap();
        apply(
            &mut conn,
            &[
                saved("a", None),
                saved("b", Some("x")),
                Change::PublicationRemoved("y".into()),
                Change::PublicationRemoved("nothing".into()),
                saved("c", Some("z")),
            ],
        )
        .unwrap();
        // More rows than one statement takes.
        let many: Vec<Change> = (0..1200).map(|i| saved(&format!("m{i}"), None)).collect();
        apply(&mut conn, &many).unwrap();
        let removed: Vec<Change> = (0..1200)
            .map(|i| Change::PublicationRemoved(format!("m{i}")))
            .collect();
        apply(&mut conn, &removed).unwrap();
        let mut etags: Vec<String> = publications::table
            .select(publications::etag)
            .load(&mut conn)
            .unwrap();
        etags.sort();
        assert_eq!(etags, vec!["a", "b", "c"]);
    }

    #[test]
    fn every_sqlite_migration_reverts_and_reapplies() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}/redo.db", dir.path().display());
        redo(&mut open(&url, SqliteOptions::default()).unwrap());
    }

    #[test]
    fn every_postgres_migration_reverts_and_reapplies_when_a_server_is_given() {
        let Ok(base) = std::env::var("PRESENCED_TEST_PG_URL") else {
            return; // PostgreSQL is optional outside CI; CI sets the variable.
        };
        let mut admin = PgConnection::establish(&base).unwrap();
        let schema = format!("redo_{}_{}", std::process::id(), unix_now());
        diesel::sql_query(format!("CREATE SCHEMA {schema}"))
            .execute(&mut admin)
            .unwrap();
        let sep = if base.contains('?') { '&' } else { '?' };
        let url = format!("{base}{sep}options=-c%20search_path%3D{schema}");
        redo(&mut open(&url, SqliteOptions::default()).unwrap());
    }
}
