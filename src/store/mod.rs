//! Persistence: the only module that imports diesel.
//!
//! Owns: the connection (SQLite embedded, or PostgreSQL, chosen explicitly from the
//! `store.url` scheme: diesel's combined `establish()` could silently take a PostgreSQL URL for
//! a SQLite file name), the embedded migrations (one set per backend), the rows, and the two
//! actors: `StoreWorker` (on a `SyncArbiter`, owns the connection, runs one transaction per
//! batch, taking batch after batch from the commit queue) and `Committer` (queues the changes
//! that wait for the next batch; each is answered once it is committed). Messages are
//! domain-shaped (`Change`, `LoadSnapshot`).
//! Must not: hold SIP or presence logic.

pub mod batch;
pub mod checkpoint;
pub mod committer;
pub mod lists;
pub mod models;
pub mod schema;
pub mod sql_template;
pub mod users;
pub mod worker;
mod write_postgres;
mod write_sqlite;

use std::path::PathBuf;

use diesel::prelude::*;
use diesel::{Connection, PgConnection, SqliteConnection};
use diesel_migrations::{embed_migrations, EmbeddedMigrations, MigrationHarness};
use log::info;

pub use batch::Batch;
pub use committer::{Committer, Persist, StoreUnavailable};
pub use lists::{ListMemberRow, ListQuery, ListResolver, ResolveList};
pub use models::{ActivityRow, BindingRow, PublicationRow, SubscriptionRow};
pub use worker::{LoadSnapshot, Snapshot, StoreWorker, StreamSubscriptions, SubscriptionChunk};

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

impl SqliteOptions {
    /// The SQLite options `[store]` sets.
    pub fn of(settings: &crate::config::StoreSettings) -> Self {
        Self {
            busy_timeout_ms: settings.sqlite_busy_timeout_ms,
            fsync_every_commit: settings.sqlite_fsync_every_commit,
        }
    }
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
        Backend::Postgres(pg) => {
            // How the writer's connection plans its statements is set by the store worker
            // (`worker::tune`), not here: this also opens the list query's database.
            let conn = PgConnection::establish(&pg).map_err(open_err)?;
            Ok(AnyConnection::Postgresql(conn))
        }
        Backend::Memory => Err(StoreError::UnknownScheme(
            "memory:// has no database to open".into(),
        )),
    }
}

/// Opens a database presenced only reads and does not own (a users database, the list
/// query's): SQLite keeps its journal mode (switching it would need a write lock, and is the
/// owner's choice), waits for locks as the store does, and is used read-only.
pub fn connect_foreign(url: &str, sqlite: SqliteOptions) -> Result<AnyConnection, StoreError> {
    match Backend::from_url(url)? {
        Backend::Sqlite(path) => {
            let mut conn =
                SqliteConnection::establish(&path.to_string_lossy()).map_err(|source| {
                    StoreError::Open {
                        url: redact(url),
                        source,
                    }
                })?;
            diesel::sql_query(format!("PRAGMA busy_timeout = {}", sqlite.busy_timeout_ms))
                .execute(&mut conn)
                .and_then(|_| diesel::sql_query("PRAGMA query_only = ON").execute(&mut conn))
                .map_err(StoreError::Query)?;
            Ok(AnyConnection::Sqlite(conn))
        }
        _ => connect(url, sqlite),
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
    /// A presentity was last active at `at` (Unix seconds).
    LastActive {
        /// The AOR.
        aor: String,
        /// When.
        at: i64,
    },
}

/// Commits `changes` atomically: folded into one write per row (`Batch`), then one SQLite
/// transaction, or one PostgreSQL statement (its own transaction, one round trip). Every
/// subscription mark written is stamped with `epoch`, the store start it belongs to.
pub fn commit(conn: &mut AnyConnection, changes: &[Change], epoch: i64) -> QueryResult<()> {
    let batch = Batch::of(changes);
    if batch.is_empty() {
        return Ok(());
    }
    match conn {
        AnyConnection::Sqlite(c) => c.transaction(|c| write_sqlite::write(c, &batch, epoch)),
        AnyConnection::Postgresql(c) => write_postgres::write(c, &batch, epoch),
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
        commit(
            conn,
            &[Change::BindingsReplaced {
                aor: "sip:a@b".into(),
                rows: vec![BindingRow {
                    aor: "sip:a@b".into(),
                    contact: "sip:a@1.2.3.4".into(),
                    q_value: Some(0.5),
                    expires_at: 1,
                    call_id: "c".into(),
                    cseq: 1,
                    linphone_specs: Some("groupchat/1.1".into()),
                    params: Some(";+sip.instance=\"<urn:uuid:1>\";reg-id=1".into()),
                }],
            }],
            1,
        )
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
            // One row of another package, to see the column written and read back.
            event: if etag == "c" {
                "message-summary"
            } else {
                "presence"
            }
            .into(),
        }
    }

    /// A fresh store on SQLite, and on PostgreSQL (its own schema) when a server is given.
    fn stores(dir: &std::path::Path, name: &str) -> Vec<AnyConnection> {
        let mut conns = vec![open(
            &format!("sqlite://{}/{name}.db", dir.display()),
            SqliteOptions::default(),
        )
        .unwrap()];
        let Ok(base) = std::env::var("PRESENCED_TEST_PG_URL") else {
            eprintln!("{name} on PostgreSQL skipped: PRESENCED_TEST_PG_URL not set");
            return conns;
        };
        let mut admin = PgConnection::establish(&base).unwrap();
        let schema = format!("{name}_{}_{}", std::process::id(), unix_now());
        diesel::sql_query(format!("CREATE SCHEMA {schema}"))
            .execute(&mut admin)
            .unwrap();
        let sep = if base.contains('?') { '&' } else { '?' };
        let url = format!("{base}{sep}options=-c%20search_path%3D{schema}");
        conns.push(open(&url, SqliteOptions::default()).unwrap());
        conns
    }

    fn sorted<T: Ord>(mut v: Vec<T>) -> Vec<T> {
        v.sort();
        v
    }

    #[test]
    fn batches_of_every_kind_of_change_end_in_the_same_rows_on_both_backends() {
        use schema::{bindings, publications, subscriptions};
        let dir = tempfile::tempdir().unwrap();
        for mut conn in stores(dir.path(), "batch") {
            let saved = |etag: &str, replaces: Option<&str>| Change::PublicationSaved {
                row: publication(etag),
                replaces: replaces.map(str::to_owned),
            };
            let sub = |id: &str, mark: i64, cseq: i64| {
                let mut row = batch::tests::subscription(id, mark);
                row.remote_cseq = cseq;
                Box::new(row)
            };
            let binding = |aor: &str, contact: &str, cseq: i64| BindingRow {
                aor: aor.into(),
                contact: contact.into(),
                q_value: Some(0.5),
                expires_at: 1,
                call_id: "c".into(),
                cseq,
                linphone_specs: Some("lime".into()),
                params: None,
            };
            commit(
                &mut conn,
                &[
                    saved("x", None),
                    saved("y", None),
                    saved("z", None),
                    Change::SubscriptionCreated(sub("s1", 1000, 1)),
                    Change::SubscriptionCreated(sub("s2", 1000, 1)),
                    Change::SubscriptionCreated(sub("s3", 1000, 1)),
                    Change::BindingsReplaced {
                        aor: "sip:a@b".into(),
                        rows: vec![
                            binding("sip:a@b", "sip:1", 1),
                            binding("sip:a@b", "sip:2", 1),
                        ],
                    },
                ],
                1,
            )
            .unwrap();
            commit(
                &mut conn,
                &[
                    saved("a", None),
                    saved("b", Some("x")),
                    Change::PublicationRemoved("y".into()),
                    Change::PublicationRemoved("nothing".into()),
                    saved("c", Some("z")),
                    // A mark raise, then a refresh written from the older mark.
                    Change::NotifyCSeqMark {
                        id: "s1".into(),
                        mark: 2000,
                    },
                    Change::SubscriptionRemoved("s2".into()),
                    Change::NotifyCSeqMark {
                        id: "s3".into(),
                        mark: 3000,
                    },
                    Change::BindingsReplaced {
                        aor: "sip:a@b".into(),
                        rows: vec![
                            binding("sip:a@b", "sip:2", 2),
                            binding("sip:a@b", "sip:3", 2),
                        ],
                    },
                    Change::LastActive {
                        aor: "sip:a@b".into(),
                        at: 20,
                    },
                    Change::LastActive {
                        aor: "sip:a@b".into(),
                        at: 10,
                    },
                    Change::LastActive {
                        aor: "sip:c@d".into(),
                        at: 5,
                    },
                ],
                1,
            )
            .unwrap();
            // A later batch overwrites what a presentity's activity was.
            commit(
                &mut conn,
                &[Change::LastActive {
                    aor: "sip:c@d".into(),
                    at: 7,
                }],
                1,
            )
            .unwrap();
            // Across batches too, a refresh does not lower a committed mark.
            commit(
                &mut conn,
                &[
                    Change::SubscriptionSaved(sub("s1", 1000, 2)),
                    Change::NotifyCSeqMark {
                        id: "s3".into(),
                        mark: 2500,
                    },
                ],
                1,
            )
            .unwrap();
            // More rows than one SQLite statement takes.
            let many: Vec<Change> = (0..1200)
                .map(|i| saved(&format!("m{i}"), None))
                .chain((0..600).map(|i| Change::SubscriptionCreated(sub(&format!("n{i}"), 1, 1))))
                .collect();
            commit(&mut conn, &many, 1).unwrap();
            let removed: Vec<Change> = (0..1200)
                .map(|i| Change::PublicationRemoved(format!("m{i}")))
                .chain((0..600).map(|i| Change::SubscriptionRemoved(format!("n{i}"))))
                .collect();
            commit(&mut conn, &removed, 1).unwrap();
            let etags: Vec<(String, String)> = publications::table
                .select((publications::etag, publications::event))
                .load(&mut conn)
                .unwrap();
            let event = |e: &str, p: &str| (e.to_owned(), p.to_owned());
            assert_eq!(
                sorted(etags),
                [
                    event("a", "presence"),
                    event("b", "presence"),
                    event("c", "message-summary")
                ]
            );
            let subs: Vec<(String, i64, i64, i64)> = subscriptions::table
                .select((
                    subscriptions::id,
                    subscriptions::notify_cseq_mark,
                    subscriptions::document_version,
                    subscriptions::remote_cseq,
                ))
                .load(&mut conn)
                .unwrap();
            assert_eq!(
                sorted(subs),
                [
                    ("s1".to_owned(), 2000, 1999, 2),
                    ("s3".to_owned(), 3000, 2999, 1)
                ]
            );
            let binds: Vec<(String, i64, Option<String>)> = bindings::table
                .select((bindings::contact, bindings::cseq, bindings::linphone_specs))
                .load(&mut conn)
                .unwrap();
            let lime = Some("lime".to_owned());
            assert_eq!(
                sorted(binds),
                [
                    ("sip:2".to_owned(), 2, lime.clone()),
                    ("sip:3".to_owned(), 2, lime)
                ]
            );
            let activity: Vec<(String, i64)> = schema::presentity_activity::table
                .select((
                    schema::presentity_activity::aor,
                    schema::presentity_activity::last_active,
                ))
                .load(&mut conn)
                .unwrap();
            assert_eq!(
                sorted(activity),
                [("sip:a@b".to_owned(), 20), ("sip:c@d".to_owned(), 7)]
            );
        }
    }

    #[test]
    fn postgres_group_commits_reuse_one_prepared_statement_per_shape() {
        #[derive(QueryableByName)]
        struct Prepared {
            #[diesel(sql_type = diesel::sql_types::BigInt)]
            n: i64,
        }
        let dir = tempfile::tempdir().unwrap();
        for mut conn in stores(dir.path(), "prepared") {
            let AnyConnection::Postgresql(_) = conn else {
                continue; // SQLite has its own statement cache; this is about PostgreSQL's.
            };
            let prepared = |c: &mut AnyConnection| {
                match c {
                AnyConnection::Postgresql(c) => {
                    diesel::sql_query(
                        "SELECT count(*) AS n FROM pg_prepared_statements WHERE statement LIKE 'WITH %'",
                    )
                    .get_result::<Prepared>(c)
                    .unwrap()
                    .n
                }
                AnyConnection::Sqlite(_) => unreachable!(),
            }
            };
            let saved = |etag: &str, replaces: Option<&str>| Change::PublicationSaved {
                row: publication(etag),
                replaces: replaces.map(str::to_owned),
            };
            assert_eq!(prepared(&mut conn), 0);
            commit(&mut conn, &[saved("p1", None)], 1).unwrap();
            assert_eq!(
                prepared(&mut conn),
                1,
                "the first commit prepares its statement"
            );
            // The same shape with other rows and another row count: the same statement.
            commit(&mut conn, &[saved("p2", None), saved("p3", None)], 1).unwrap();
            commit(&mut conn, &[saved("p4", None)], 1).unwrap();
            assert_eq!(prepared(&mut conn), 1, "one shape, one prepared statement");
            // Another shape (a delete part as well) is a second statement.
            commit(&mut conn, &[saved("p5", Some("p1"))], 1).unwrap();
            commit(&mut conn, &[saved("p6", Some("p2"))], 1).unwrap();
            assert_eq!(prepared(&mut conn), 2);
            let etags: Vec<String> = schema::publications::table
                .select(schema::publications::etag)
                .load(&mut conn)
                .unwrap();
            assert_eq!(sorted(etags), ["p3", "p4", "p5", "p6"]);
        }
    }

    #[test]
    fn the_postgres_writer_plans_each_batch_statement_once_and_by_its_keys_on_empty_tables() {
        #[derive(QueryableByName)]
        struct Statement {
            #[diesel(sql_type = diesel::sql_types::Text)]
            statement: String,
            #[diesel(sql_type = diesel::sql_types::Integer)]
            params: i32,
            #[diesel(sql_type = diesel::sql_types::BigInt)]
            generic_plans: i64,
            #[diesel(sql_type = diesel::sql_types::BigInt)]
            custom_plans: i64,
        }
        #[derive(QueryableByName)]
        struct PlanLine {
            #[diesel(sql_type = diesel::sql_types::Text)]
            line: String,
        }
        let dir = tempfile::tempdir().unwrap();
        for mut conn in stores(dir.path(), "planning") {
            if !matches!(conn, AnyConnection::Postgresql(_)) {
                continue; // SQLite plans every statement once, when it is prepared.
            }
            worker::tune(&mut conn, false).unwrap();
            // Every kind of part, on tables that are empty or nearly so: where a generic plan
            // made without the settings would scan the whole table.
            let saved = |etag: &str, replaces: Option<&str>| Change::PublicationSaved {
                row: publication(etag),
                replaces: replaces.map(str::to_owned),
            };
            let sub = |id: &str| Box::new(batch::tests::subscription(id, 1000));
            let binding = batch::tests::binding;
            for round in 0..7 {
                let p = |n: i32| format!("p{round}-{n}");
                let s = |n: i32| format!("s{round}-{n}");
                let changes = [
                    saved(&p(1), None),
                    saved(&p(2), None),
                    saved(&p(3), Some(&format!("p{}-1", round - 1))),
                    Change::PublicationRemoved(format!("p{}-2", round - 1)),
                    Change::SubscriptionCreated(sub(&s(1))),
                    Change::SubscriptionCreated(sub(&s(2))),
                    Change::SubscriptionRemoved(format!("s{}-1", round - 1)),
                    Change::NotifyCSeqMark {
                        id: format!("s{}-2", round - 1),
                        mark: 5000 + i64::from(round),
                    },
                    Change::BindingsReplaced {
                        aor: "sip:a@b".into(),
                        rows: vec![binding(&format!("sip:{round}"))],
                    },
                ];
                commit(&mut conn, &changes, 1).unwrap();
            }
            let AnyConnection::Postgresql(c) = &mut conn else {
                unreachable!()
            };
            let statements = diesel::sql_query(
                "SELECT statement, cardinality(parameter_types) AS params, generic_plans, custom_plans \
                 FROM pg_prepared_statements WHERE statement LIKE 'WITH %'",
            )
            .load::<Statement>(c)
            .unwrap();
            assert!(!statements.is_empty());
            // EXPLAIN's lines as rows.
            diesel::sql_query(
                "CREATE FUNCTION pg_temp.explain_lines(q text) RETURNS SETOF text \
                 LANGUAGE plpgsql AS $$ DECLARE l text; BEGIN \
                 FOR l IN EXECUTE 'EXPLAIN ' || q LOOP RETURN NEXT l; END LOOP; END $$",
            )
            .execute(c)
            .unwrap();
            let mut parts = 0;
            for (n, st) in statements.iter().enumerate() {
                assert_eq!(st.custom_plans, 0, "{}", st.statement);
                assert!(st.generic_plans >= 1, "{}", st.statement);
                // The plan each execution used: the same statement prepared again, explained.
                diesel::sql_query(format!("PREPARE probe{n} AS {}", st.statement))
                    .execute(c)
                    .unwrap();
                let nulls = vec!["NULL"; usize::try_from(st.params).unwrap()].join(", ");
                let plan: Vec<String> = diesel::sql_query(format!(
                    "SELECT line FROM pg_temp.explain_lines('EXECUTE probe{n}({nulls})') AS line"
                ))
                .load::<PlanLine>(c)
                .unwrap()
                .into_iter()
                .map(|l| l.line)
                .collect();
                assert!(
                    !plan.iter().any(|l| l.contains("Seq Scan")),
                    "{}\n{}",
                    st.statement,
                    plan.join("\n")
                );
                parts += plan.iter().filter(|l| l.contains("Index")).count();
            }
            assert!(parts >= 4, "the deletes and the mark update go by the keys");
            // The start-up reads, whose sequential scans carry enable_seqscan's penalty in
            // their cost, are not JIT-compiled for it.
            let plan: Vec<String> = diesel::sql_query(
                "SELECT line FROM pg_temp.explain_lines(\
                 'SELECT * FROM subscriptions WHERE list_source IS NOT NULL') AS line",
            )
            .load::<PlanLine>(c)
            .unwrap()
            .into_iter()
            .map(|l| l.line)
            .collect();
            assert!(plan[0].contains("Seq Scan"), "{plan:?}");
            assert!(!plan.iter().any(|l| l.starts_with("JIT")), "{plan:?}");
        }
    }

    #[test]
    fn every_start_moves_the_marks_up_one_step_without_rewriting_them_on_both_backends() {
        use worker::{load_snapshot, read_subscriptions};
        let dir = tempfile::tempdir().unwrap();
        for mut conn in stores(dir.path(), "epoch") {
            // (id, effective mark) of the stored plain subscriptions in start `epoch`.
            let read = |c: &mut AnyConnection, epoch: i64| {
                let mut marks = Vec::new();
                read_subscriptions(c, epoch, |r| marks.push((r.id, r.notify_cseq_mark))).unwrap();
                sorted(marks)
            };
            let (_, first) = load_snapshot(&mut conn, 0).unwrap();
            let mut s1 = batch::tests::subscription("s1", 1000);
            s1.expires_at = i64::MAX;
            let mut s2 = batch::tests::subscription("s2", 1000);
            s2.expires_at = i64::MAX;
            commit(
                &mut conn,
                &[
                    Change::SubscriptionCreated(Box::new(s1.clone())),
                    Change::SubscriptionCreated(Box::new(s2)),
                ],
                first,
            )
            .unwrap();
            // Restart: a NOTIFY CSeq below 1000 was sent; the watcher may now send from 1000
            // (mark − step) up to 2000 without writing.
            let (_, second) = load_snapshot(&mut conn, 0).unwrap();
            assert_eq!(second, first + 1);
            assert_eq!(
                read(&mut conn, second),
                [("s1".to_owned(), 2000), ("s2".to_owned(), 2000)]
            );
            // Restart again with nothing written: the next start begins at 2000, above all of
            // the previous one, from the same stored rows.
            let (_, third) = load_snapshot(&mut conn, 0).unwrap();
            assert_eq!(
                read(&mut conn, third),
                [("s1".to_owned(), 3000), ("s2".to_owned(), 3000)]
            );
            let stored: Vec<i64> = schema::subscriptions::table
                .select(schema::subscriptions::notify_cseq_mark)
                .load(&mut conn)
                .unwrap();
            assert_eq!(stored, [1000, 1000], "no row is rewritten by a start");
            // s1 raises its mark in this start, then a refresh is written from the older one.
            s1.notify_cseq_mark = 3000;
            commit(
                &mut conn,
                &[
                    Change::NotifyCSeqMark {
                        id: "s1".into(),
                        mark: 3500,
                    },
                    Change::SubscriptionSaved(Box::new(s1)),
                ],
                third,
            )
            .unwrap();
            let (_, fourth) = load_snapshot(&mut conn, 0).unwrap();
            assert_eq!(
                read(&mut conn, fourth),
                [("s1".to_owned(), 4500), ("s2".to_owned(), 4000)]
            );
        }
    }

    #[test]
    fn every_plain_subscription_is_read_once_across_pages_on_both_backends() {
        use worker::{load_snapshot, read_subscriptions, SUBSCRIPTION_CHUNK_ROWS};
        let dir = tempfile::tempdir().unwrap();
        for mut conn in stores(dir.path(), "pages") {
            let (_, epoch) = load_snapshot(&mut conn, 0).unwrap();
            // Two full pages and a part of one (PostgreSQL reads in pages of a chunk), plus
            // list subscriptions, which are not plain and are read elsewhere.
            let count = 2 * SUBSCRIPTION_CHUNK_ROWS + 345;
            let mut changes: Vec<Change> = (0..count)
                .map(|i| {
                    let mut row = batch::tests::subscription(&format!("s{i}"), 1000);
                    row.expires_at = i64::MAX;
                    Change::SubscriptionCreated(Box::new(row))
                })
                .collect();
            for i in 0..3 {
                let mut row = batch::tests::subscription(&format!("list{i}"), 1000);
                row.expires_at = i64::MAX;
                row.list_source = Some("request".into());
                changes.push(Change::SubscriptionCreated(Box::new(row)));
            }
            commit(&mut conn, &changes, epoch).unwrap();
            let mut ids = Vec::new();
            let read = read_subscriptions(&mut conn, epoch, |r| ids.push(r.id)).unwrap();
            assert_eq!(read, count);
            let expected: Vec<String> = (0..count).map(|i| format!("s{i}")).collect();
            assert_eq!(sorted(ids), sorted(expected));
        }
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
            // PostgreSQL is optional outside CI; CI sets the variable.
            eprintln!("skipped: PRESENCED_TEST_PG_URL not set");
            return;
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
