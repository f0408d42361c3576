//! The service's users database: the operator's `users.*_query` SQL and the actors that run it.
//!
//! Owns: [`UsersQueries`] (each query read once, with its named parameters), [`UsersBackend`]
//! (SQLite, PostgreSQL, or MySQL/MariaDB behind the `mysql` feature), and [`UsersDb`], a
//! `SyncArbiter` actor of which `users.pool_size` run, each with its own connection, so a slow
//! lookup never holds up the SIP thread or the store's commits. A connection that fails is
//! dropped and opened again on the next lookup. Must not: cache (the presence side's directory
//! does), write anything, or migrate a database it does not own.

use actix::prelude::*;
use diesel::prelude::*;
use diesel::sql_types::{BigInt, Text};
use log::debug;

use super::sql_template::{Markers, SqlTemplate, SqlTemplateError};
use super::{connect_foreign, AnyConnection, Backend, SqliteOptions, StoreError};
use crate::config::UsersSettings;

/// A named parameter of the users queries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UsersParam {
    /// `:user`, the user part of the AOR.
    User,
    /// `:domain`, the host part of the AOR.
    Domain,
    /// `:phones`, a list of telephone numbers as written in `user=phone` URIs.
    Phones,
}

/// The configured queries; `None` where a query is empty (its feature is off).
#[derive(Debug, Clone, Default)]
pub struct UsersQueries {
    /// `users.user_query`.
    pub user: Option<SqlTemplate<UsersParam>>,
    /// `users.phones_query`.
    pub phones: Option<SqlTemplate<UsersParam>>,
    /// `users.password_query`.
    pub password: Option<SqlTemplate<UsersParam>>,
}

impl UsersQueries {
    /// Reads the three queries; an error names the key.
    pub fn parse(settings: &UsersSettings) -> Result<Self, (&'static str, String)> {
        const ACCOUNT: &[(&str, UsersParam)] =
            &[("user", UsersParam::User), ("domain", UsersParam::Domain)];
        const PHONES: &[(&str, UsersParam)] = &[("phones", UsersParam::Phones)];
        let read = |key: &'static str,
                    sql: &str,
                    names: &[(&str, UsersParam)],
                    needs: UsersParam|
         -> Result<Option<SqlTemplate<UsersParam>>, (&'static str, String)> {
            if sql.trim().is_empty() {
                return Ok(None);
            }
            let t = SqlTemplate::parse(sql.trim().trim_end_matches(';'), names)
                .map_err(|e: SqlTemplateError| (key, e.to_string()))?;
            if !t.uses(needs) {
                let name = names
                    .iter()
                    .find(|(_, p)| *p == needs)
                    .map_or("", |(n, _)| *n);
                return Err((key, format!("the query must use :{name}")));
            }
            Ok(Some(t))
        };
        Ok(Self {
            user: read(
                "users.user_query",
                &settings.user_query,
                ACCOUNT,
                UsersParam::User,
            )?,
            phones: read(
                "users.phones_query",
                &settings.phones_query,
                PHONES,
                UsersParam::Phones,
            )?,
            password: read(
                "users.password_query",
                &settings.password_query,
                ACCOUNT,
                UsersParam::User,
            )?,
        })
    }
}

/// Which database a users URL names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UsersBackend {
    /// SQLite or PostgreSQL, opened like the store's.
    Shared(String),
    /// `mysql://…` (MySQL or MariaDB).
    Mysql(String),
}

/// Why a users database URL was refused.
#[derive(Debug, thiserror::Error)]
pub enum UsersUrlError {
    /// A scheme no backend takes.
    #[error(transparent)]
    Scheme(#[from] StoreError),
    /// `mysql://` in a build without the `mysql` feature.
    #[error("mysql:// needs presenced built with the `mysql` feature")]
    MysqlNotBuilt,
    /// `memory://` holds no users.
    #[error("memory:// holds no users: set users.db_url")]
    Memory,
}

impl UsersBackend {
    /// Chooses the backend from the URL scheme.
    pub fn from_url(url: &str) -> Result<Self, UsersUrlError> {
        if url.starts_with("mysql://") {
            return if cfg!(feature = "mysql") {
                Ok(UsersBackend::Mysql(url.to_owned()))
            } else {
                Err(UsersUrlError::MysqlNotBuilt)
            };
        }
        match Backend::from_url(url)? {
            Backend::Memory => Err(UsersUrlError::Memory),
            _ => Ok(UsersBackend::Shared(url.to_owned())),
        }
    }
}

/// One connection to the users database.
enum UsersConnection {
    /// SQLite or PostgreSQL.
    Shared(AnyConnection),
    /// MySQL or MariaDB.
    #[cfg(feature = "mysql")]
    Mysql(diesel::MysqlConnection),
}

/// One user owning a number, as `phones_query` returns it.
#[derive(Debug, Clone, PartialEq, Eq, QueryableByName)]
pub struct PhoneOwnerRow {
    /// The user part of the owner's SIP URI (column `username`).
    #[diesel(sql_type = Text)]
    pub username: String,
    /// Its host part (column `domain`).
    #[diesel(sql_type = Text)]
    pub domain: String,
    /// The number, as the query was given it (column `phone`).
    #[diesel(sql_type = Text)]
    pub phone: String,
}

/// How many rows the user query gave.
#[derive(QueryableByName)]
struct RowCount {
    #[diesel(sql_type = BigInt)]
    n: i64,
}

/// A password or HA1, as `password_query` returns it.
#[derive(QueryableByName)]
struct PasswordRow {
    #[diesel(sql_type = Text)]
    password: String,
}

/// Do these users exist? One run of `user_query` each, on one thread, answered together.
#[derive(Message, Debug)]
#[rtype(result = "Result<Vec<bool>, StoreError>")]
pub struct FindUsers {
    /// (user part, host part) of each.
    pub accounts: Vec<(String, String)>,
}

/// Who owns these numbers? (one run of `phones_query`)
#[derive(Message, Debug)]
#[rtype(result = "Result<Vec<PhoneOwnerRow>, StoreError>")]
pub struct FindPhoneOwners {
    /// The numbers, as written in their URIs.
    pub phones: Vec<String>,
}

/// The password (or HA1) of `user@domain`, if the user exists.
#[derive(Message, Debug)]
#[rtype(result = "Result<Option<String>, StoreError>")]
pub struct FindPassword {
    /// User part.
    pub user: String,
    /// Host part.
    pub domain: String,
}

/// One of the threads running users queries.
pub struct UsersDb {
    url: String,
    sqlite: SqliteOptions,
    queries: UsersQueries,
    conn: Option<UsersConnection>,
}

impl UsersDb {
    /// A worker for `queries` on the database at `url` (opened on first use).
    pub fn new(url: String, sqlite: SqliteOptions, queries: UsersQueries) -> Self {
        Self {
            url,
            sqlite,
            queries,
            conn: None,
        }
    }

    fn connection(&mut self) -> Result<&mut UsersConnection, StoreError> {
        if self.conn.is_none() {
            let conn = match UsersBackend::from_url(&self.url) {
                #[cfg(feature = "mysql")]
                Ok(UsersBackend::Mysql(url)) => {
                    UsersConnection::Mysql(diesel::MysqlConnection::establish(&url).map_err(
                        |source| StoreError::Open {
                            url: super::redact(&url),
                            source,
                        },
                    )?)
                }
                _ => UsersConnection::Shared(connect_foreign(&self.url, self.sqlite)?),
            };
            self.conn = Some(conn);
        }
        // Filled just above when it was empty.
        self.conn.as_mut().ok_or(StoreError::Gone)
    }

    /// Runs `template` with `values` bound in marker order (a list parameter's values in turn)
    /// and loads its rows as `R`; a failure drops the connection.
    fn load<R>(&mut self, sql: Sql<'_>) -> Result<Vec<R>, StoreError>
    where
        R: QueryableByName<diesel::sqlite::Sqlite>
            + QueryableByName<diesel::pg::Pg>
            + MysqlRow
            + 'static,
    {
        let result = match self.connection()? {
            UsersConnection::Shared(AnyConnection::Sqlite(c)) => {
                let mut q = diesel::sql_query(sql.text(Markers::Question)).into_boxed();
                for v in &sql.values {
                    q = q.bind::<Text, _>(*v);
                }
                q.load::<R>(c)
            }
            UsersConnection::Shared(AnyConnection::Postgresql(c)) => {
                let mut q = diesel::sql_query(sql.text(Markers::Dollar)).into_boxed();
                for v in &sql.values {
                    q = q.bind::<Text, _>(*v);
                }
                q.load::<R>(c)
            }
            #[cfg(feature = "mysql")]
            UsersConnection::Mysql(c) => {
                let mut q = diesel::sql_query(sql.text(Markers::Question)).into_boxed();
                for v in &sql.values {
                    q = q.bind::<Text, _>(*v);
                }
                q.load::<R>(c)
            }
        };
        result.map_err(|e| {
            // A broken connection is opened again on the next lookup.
            self.conn = None;
            StoreError::Query(e)
        })
    }
}

/// `QueryableByName` on MySQL too when that backend is built.
#[cfg(feature = "mysql")]
pub trait MysqlRow: QueryableByName<diesel::mysql::Mysql> {}
#[cfg(feature = "mysql")]
impl<T: QueryableByName<diesel::mysql::Mysql>> MysqlRow for T {}
/// `QueryableByName` on MySQL too when that backend is built.
#[cfg(not(feature = "mysql"))]
pub trait MysqlRow {}
#[cfg(not(feature = "mysql"))]
impl<T> MysqlRow for T {}

/// A query about to run: its template, how it is wrapped, and its values in marker order.
struct Sql<'a> {
    template: &'a SqlTemplate<UsersParam>,
    /// Text around the operator's query (`SELECT COUNT(*) … FROM (` and `) …`).
    wrap: Option<(&'static str, &'static str)>,
    /// How many values the list parameter has.
    list_len: usize,
    values: Vec<&'a str>,
}

impl<'a> Sql<'a> {
    /// `template` with `:user`/`:domain` bound.
    fn account(template: &'a SqlTemplate<UsersParam>, user: &'a str, domain: &'a str) -> Self {
        let values = template
            .params()
            .map(|p| match p {
                UsersParam::Domain => domain,
                UsersParam::User | UsersParam::Phones => user,
            })
            .collect();
        Self {
            template,
            wrap: None,
            list_len: 1,
            values,
        }
    }

    /// `template` with `:phones` bound to `phones`.
    fn phones(template: &'a SqlTemplate<UsersParam>, phones: &'a [String]) -> Self {
        let mut values = Vec::new();
        for _ in template.params() {
            values.extend(phones.iter().map(String::as_str));
        }
        Self {
            template,
            wrap: None,
            list_len: phones.len(),
            values,
        }
    }

    fn text(&self, markers: Markers) -> String {
        let inner = self.template.render(markers, |p| match p {
            UsersParam::Phones => self.list_len,
            UsersParam::User | UsersParam::Domain => 1,
        });
        match self.wrap {
            Some((before, after)) => format!("{before}{inner}{after}"),
            None => inner,
        }
    }
}

impl Actor for UsersDb {
    type Context = SyncContext<Self>;
}

impl Handler<FindUsers> for UsersDb {
    type Result = Result<Vec<bool>, StoreError>;

    fn handle(&mut self, msg: FindUsers, _ctx: &mut Self::Context) -> Self::Result {
        let Some(template) = self.queries.user.clone() else {
            return Ok(vec![false; msg.accounts.len()]);
        };
        let mut found = Vec::with_capacity(msg.accounts.len());
        for (user, domain) in &msg.accounts {
            // The operator's query may return any columns: only whether it has rows counts.
            let mut sql = Sql::account(&template, user, domain);
            sql.wrap = Some(("SELECT COUNT(*) AS n FROM (", ") AS user_query_rows"));
            let rows: Vec<RowCount> = self.load(sql)?;
            let exists = rows.first().is_some_and(|r| r.n > 0);
            debug!("users: {user}@{domain} exists: {exists}");
            found.push(exists);
        }
        Ok(found)
    }
}

impl Handler<FindPhoneOwners> for UsersDb {
    type Result = Result<Vec<PhoneOwnerRow>, StoreError>;

    fn handle(&mut self, msg: FindPhoneOwners, _ctx: &mut Self::Context) -> Self::Result {
        let Some(template) = self.queries.phones.clone() else {
            return Ok(Vec::new());
        };
        if msg.phones.is_empty() {
            return Ok(Vec::new());
        }
        let rows: Vec<PhoneOwnerRow> = self.load(Sql::phones(&template, &msg.phones))?;
        debug!(
            "users: {} numbers looked up, {} owners",
            msg.phones.len(),
            rows.len()
        );
        Ok(rows)
    }
}

impl Handler<FindPassword> for UsersDb {
    type Result = Result<Option<String>, StoreError>;

    fn handle(&mut self, msg: FindPassword, _ctx: &mut Self::Context) -> Self::Result {
        let Some(template) = self.queries.password.clone() else {
            return Ok(None);
        };
        let rows: Vec<PasswordRow> = self.load(Sql::account(&template, &msg.user, &msg.domain))?;
        Ok(rows.into_iter().next().map(|r| r.password))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(user: &str, phones: &str, password: &str) -> UsersSettings {
        UsersSettings {
            user_query: user.into(),
            phones_query: phones.into(),
            password_query: password.into(),
            ..UsersSettings::default()
        }
    }

    #[test]
    fn each_query_must_use_its_parameter_and_no_other() {
        let ok = UsersQueries::parse(&settings(
            "SELECT 1 FROM accounts WHERE login = :user AND domain = :domain;",
            "SELECT login AS username, domain, phone FROM accounts WHERE phone IN (:phones)",
            "",
        ))
        .unwrap();
        assert!(ok.user.is_some() && ok.phones.is_some() && ok.password.is_none());
        let (key, _) = UsersQueries::parse(&settings("SELECT 1 FROM a WHERE d = :domain", "", ""))
            .unwrap_err();
        assert_eq!(key, "users.user_query");
        let (key, e) =
            UsersQueries::parse(&settings("", "SELECT 1 FROM a WHERE p = :user", "")).unwrap_err();
        assert_eq!(key, "users.phones_query");
        assert!(e.contains(":phones"), "{e}");
    }

    #[test]
    fn the_backend_is_chosen_by_scheme() {
        assert!(matches!(
            UsersBackend::from_url("sqlite://users.db"),
            Ok(UsersBackend::Shared(_))
        ));
        assert!(matches!(
            UsersBackend::from_url("memory://"),
            Err(UsersUrlError::Memory)
        ));
        let mysql = UsersBackend::from_url("mysql://root@127.0.0.1/test");
        if cfg!(feature = "mysql") {
            assert!(matches!(mysql, Ok(UsersBackend::Mysql(_))));
        } else {
            assert!(matches!(mysql, Err(UsersUrlError::MysqlNotBuilt)));
        }
    }

    #[test]
    fn lookups_run_the_operators_queries_on_sqlite() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}/users.db", dir.path().display());
        let AnyConnection::Sqlite(mut c) =
            super::super::connect(&url, SqliteOptions::default()).unwrap()
        else {
            panic!("sqlite expected");
        };
        diesel::sql_query("CREATE TABLE accounts (login TEXT, domain TEXT, phone TEXT, ha1 TEXT)")
            .execute(&mut c)
            .unwrap();
        diesel::sql_query(
            "INSERT INTO accounts VALUES ('alice', 'example.org', '+331', 'h1'), \
             ('bob', 'example.org', '+332', 'h2')",
        )
        .execute(&mut c)
        .unwrap();
        let queries = UsersQueries::parse(&settings(
            "SELECT login FROM accounts WHERE login = :user AND domain = :domain",
            "SELECT login AS username, domain, phone FROM accounts WHERE phone IN (:phones)",
            "SELECT ha1 AS password FROM accounts WHERE login = :user AND domain = :domain",
        ))
        .unwrap();
        let sys = actix::System::new();
        sys.block_on(async move {
            let db = SyncArbiter::start(1, move || {
                UsersDb::new(url.clone(), SqliteOptions::default(), queries.clone())
            });
            let account = |user: &str| (user.to_owned(), "example.org".to_owned());
            let found = db
                .send(FindUsers {
                    accounts: vec![account("alice"), account("carol")],
                })
                .await
                .unwrap()
                .unwrap();
            assert_eq!(found, [true, false]);
            let owners = db
                .send(FindPhoneOwners {
                    phones: vec!["+332".into(), "+339".into()],
                })
                .await
                .unwrap()
                .unwrap();
            assert_eq!(
                owners,
                [PhoneOwnerRow {
                    username: "bob".into(),
                    domain: "example.org".into(),
                    phone: "+332".into()
                }]
            );
            let password = db
                .send(FindPassword {
                    user: "alice".into(),
                    domain: "example.org".into(),
                })
                .await
                .unwrap()
                .unwrap();
            assert_eq!(password.as_deref(), Some("h1"));
        });
    }
}
