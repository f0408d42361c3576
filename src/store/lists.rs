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

use super::{connect, AnyConnection, SqliteOptions, StoreError};

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
    /// Parameters inside quoted strings and identifiers and PostgreSQL `::` casts are left
    /// alone.
    pub fn parse(sql: &str) -> Result<Option<Self>, ListQueryError> {
        if sql.trim().is_empty() {
            return Ok(None);
        }
        let mut q = Self {
            sqlite: String::with_capacity(sql.len()),
            postgres: String::with_capacity(sql.len()),
            params: Vec::new(),
        };
        let mut chars = sql.char_indices().peekable();
        let mut quote: Option<char> = None;
        let mut previous = '\0';
        while let Some((i, c)) = chars.next() {
            if let Some(open) = quote {
                // A doubled quote inside a literal is an escaped quote: closing and reopening
                // gives the same result.
                if c == open {
                    quote = None;
                }
            } else if c == '\'' || c == '"' {
                quote = Some(c);
            } else if c == ':'
                && previous != ':'
                && chars.peek().is_some_and(|(_, n)| is_name_start(*n))
            {
                let rest = &sql[i + 1..];
                let len = rest
                    .find(|ch: char| !(ch.is_ascii_alphanumeric() || ch == '_'))
                    .unwrap_or(rest.len());
                let name = &rest[..len];
                let param = match name.to_ascii_lowercase().as_str() {
                    "from" => ListParam::From,
                    "to" => ListParam::To,
                    _ => return Err(ListQueryError::UnknownParameter(name.to_owned())),
                };
                q.params.push(param);
                q.sqlite.push('?');
                q.postgres.push_str(&format!("${}", q.params.len()));
                for _ in 0..len {
                    chars.next();
                }
                previous = 'x';
                continue;
            }
            q.sqlite.push(c);
            q.postgres.push(c);
            previous = c;
        }
        if quote.is_some() {
            return Err(ListQueryError::Unterminated);
        }
        if !q.params.contains(&ListParam::To) {
            return Err(ListQueryError::MissingTo);
        }
        Ok(Some(q))
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

fn is_name_start(c: char) -> bool {
    c.is_ascii_alphabetic() || c == '_'
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
            None => self.conn.insert(connect(&self.url, self.sqlite)?),
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
