//! Server-known resource lists: the configured `rls.list_query` and the actor that runs it.
//!
//! Owns: [`ListQuery`] (the operator's SQL with its named parameters `:from` and `:to` turned
//! into each backend's bind markers) and [`ListResolver`], a `SyncArbiter` actor holding its
//! own connection, to the store's database or to a separate users database
//! (`rls.list_db_url`), so lookups never queue behind commits. Flexisip's
//! `rls-database-request` with `:from`/`:to` is the precedent. Must not: write anything, or
//! know what a list subscription does with the members.

use actix::prelude::*;
use diesel::prelude::*;
use diesel::sql_types::{Nullable, Text};
use log::debug;

use super::sql_template::{Markers, SqlTemplate, SqlTemplateError};
use super::{connect_foreign, AnyConnection, SqliteOptions, StoreError};

/// A named parameter of the list query.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ListParam {
    /// `:from`, the subscriber's AOR (`sip:user@domain`).
    From,
    /// `:to`, the list URI (the SUBSCRIBE's Request-URI as an AOR).
    To,
}

/// Why `rls.list_query` was refused.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum ListQueryError {
    /// A `:name` other than `:from` and `:to`.
    #[error("unknown parameter `:{0}` (only :from and :to exist)")]
    UnknownParameter(String),
    /// A quote is never closed.
    #[error("unterminated quoted string or identifier")]
    Unterminated,
    /// `:to` never appears, so every subscriber's URI would be a list.
    #[error("the query must use :to (the list URI)")]
    MissingTo,
}

/// `rls.list_query`, ready for either backend.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListQuery {
    /// The text with `?` markers (SQLite).
    sqlite: String,
    /// The text with `$1`, `$2`… markers (PostgreSQL).
    postgres: String,
    /// What each marker stands for, in order.
    params: Vec<ListParam>,
}

impl ListQuery {
    /// Reads the configured query; `None` when it is empty (server-known lists disabled).
    pub fn parse(sql: &str) -> Result<Option<Self>, ListQueryError> {
        if sql.trim().is_empty() {
            return Ok(None);
        }
        let template = SqlTemplate::parse(sql, &[("from", ListParam::From), ("to", ListParam::To)])
            .map_err(|e| match e {
                SqlTemplateError::UnknownParameter { name, .. } => {
                    ListQueryError::UnknownParameter(name)
                }
                SqlTemplateError::Unterminated => ListQueryError::Unterminated,
            })?;
        if !template.uses(ListParam::To) {
            return Err(ListQueryError::MissingTo);
        }
        Ok(Some(Self {
            sqlite: template.render(Markers::Question, |_| 1),
            postgres: template.render(Markers::Dollar, |_| 1),
            params: template.params().collect(),
        }))
    }

    /// The values to bind, in marker order.
    fn binds<'a>(&self, from: &'a str, to: &'a str) -> Vec<&'a str> {
        self.params
            .iter()
            .map(|p| match p {
                ListParam::From => from,
                ListParam::To => to,
            })
            .collect()
    }
}

/// One member of a server-known list, as the query returns it.
#[derive(Debug, Clone, PartialEq, Eq, QueryableByName)]
pub struct ListMemberRow {
    /// The member's URI (column `uri`).
    #[diesel(sql_type = Text)]
    pub uri: String,
    /// Its display name (column `name`, may be NULL).
    #[diesel(sql_type = Nullable<Text>)]
    pub name: Option<String>,
}

/// Looks a list up: the members of `list_uri` as `subscriber` sees them; empty when the URI
/// is no list.
#[derive(Message, Debug)]
#[rtype(result = "Result<Vec<ListMemberRow>, StoreError>")]
pub struct ResolveList {
    /// The list URI (`:to`).
    pub list_uri: String,
    /// The subscriber's AOR (`:from`).
    pub subscriber: String,
}

/// The actor running the list query, on its own `SyncArbiter` thread.
pub struct ListResolver {
    url: String,
    sqlite: SqliteOptions,
    query: ListQuery,
    conn: Option<AnyConnection>,
    /// Most members returned; a longer list is cut here (and the lookup logged).
    max_members: usize,
}

impl ListResolver {
    /// A resolver for `query` on the database at `url` (opened on first use).
    pub fn new(url: String, sqlite: SqliteOptions, query: ListQuery, max_members: usize) -> Self {
        Self {
            url,
            sqlite,
            query,
            conn: None,
            max_members,
        }
    }
}

impl Actor for ListResolver {
    type Context = SyncContext<Self>;
}

impl Handler<ResolveList> for ListResolver {
    type Result = Result<Vec<ListMemberRow>, StoreError>;

    fn handle(&mut self, msg: ResolveList, _ctx: &mut Self::Context) -> Self::Result {
        let conn = match self.conn.as_mut() {
            Some(c) => c,
            None => self.conn.insert(connect_foreign(&self.url, self.sqlite)?),
        };
        let binds = self.query.binds(&msg.subscriber, &msg.list_uri);
        let result = match conn {
            AnyConnection::Sqlite(c) => {
                let mut q = diesel::sql_query(&self.query.sqlite).into_boxed();
                for b in &binds {
                    q = q.bind::<Text, _>(*b);
                }
                q.load::<ListMemberRow>(c)
            }
            AnyConnection::Postgresql(c) => {
                let mut q = diesel::sql_query(&self.query.postgres).into_boxed();
                for b in &binds {
                    q = q.bind::<Text, _>(*b);
                }
                q.load::<ListMemberRow>(c)
            }
        };
        match result {
            Ok(mut rows) => {
                if rows.len() > self.max_members {
                    debug!(
                        "list {}: {} members, cut to {}",
                        msg.list_uri,
                        rows.len(),
                        self.max_members
                    );
                    rows.truncate(self.max_members);
                }
                Ok(rows)
            }
            Err(e) => {
                // A broken connection is reopened on the next lookup.
                self.conn = None;
                Err(StoreError::Query(e))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn named_parameters_become_each_backends_markers() {
        let q = ListQuery::parse(
            "SELECT a AS uri, b AS name FROM t WHERE l = :to AND o = :from OR o = :to",
        )
        .unwrap()
        .unwrap();
        assert_eq!(
            q.sqlite,
            "SELECT a AS uri, b AS name FROM t WHERE l = ? AND o = ? OR o = ?"
        );
        assert_eq!(
            q.postgres,
            "SELECT a AS uri, b AS name FROM t WHERE l = $1 AND o = $2 OR o = $3"
        );
        assert_eq!(q.binds("alice", "list"), ["list", "alice", "list"]);
    }

    #[test]
    fn quoted_text_and_casts_are_not_parameters() {
        let q =
            ListQuery::parse("SELECT ':from' AS uri, x::text AS name FROM \"t:to\" WHERE l = :to")
                .unwrap()
                .unwrap();
        assert_eq!(
            q.sqlite,
            "SELECT ':from' AS uri, x::text AS name FROM \"t:to\" WHERE l = ?"
        );
        assert_eq!(q.params, [ListParam::To]);
    }

    #[test]
    fn unknown_parameters_unterminated_quotes_and_no_list_uri_are_refused() {
        assert_eq!(
            ListQuery::parse("SELECT 1 WHERE a = :to AND b = :user"),
            Err(ListQueryError::UnknownParameter("user".into()))
        );
        assert_eq!(
            ListQuery::parse("SELECT 'x WHERE a = :to"),
            Err(ListQueryError::Unterminated)
        );
        assert_eq!(
            ListQuery::parse("SELECT 1 WHERE a = :from"),
            Err(ListQueryError::MissingTo)
        );
        assert_eq!(ListQuery::parse("  "), Ok(None));
    }

    #[test]
    fn the_shipped_query_parses() {
        let q = ListQuery::parse(crate::config::DEFAULT_LIST_QUERY)
            .unwrap()
            .unwrap();
        assert_eq!(q.params, [ListParam::To, ListParam::From]);
    }
}
