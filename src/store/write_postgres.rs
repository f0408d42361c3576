//! Writes a `Batch` to PostgreSQL as one statement: a `WITH` of one data-modifying part per
//! kind of row, each taking its rows as arrays (`UNNEST`, `= ANY`).
//!
//! One statement is one round trip and, outside an explicit transaction, its own atomic
//! transaction: no `BEGIN`/`COMMIT` round trips, and the statement text does not grow with
//! the batch. The parts of one statement all see the same snapshot and run in no set order,
//! which is safe because `Batch` writes each row at most once: the parts touch disjoint rows
//! (a binding's delete spares exactly the contacts its upsert writes).
//!
//! Owns: the PostgreSQL statement of a group commit. Must not: decide what a batch holds
//! (`batch`) or open connections (`worker`).

use diesel::pg::Pg;
use diesel::prelude::*;
use diesel::query_builder::{AstPass, QueryFragment, QueryId};
use diesel::sql_types::{Array, BigInt, Binary, Bool, Double, Nullable, Text};
use diesel::PgConnection;

use super::batch::Batch;
use super::models::SubscriptionRow;

/// The columns of `subscriptions` in the order `SubscriptionRow` binds them, with their
/// array types.
const SUBSCRIPTION_COLUMNS: [(&str, &str); 25] = [
    ("id", "text[]"),
    ("aor", "text[]"),
    ("call_id", "text[]"),
    ("local_tag", "text[]"),
    ("remote_tag", "text[]"),
    ("event_id", "text[]"),
    ("accept", "text[]"),
    ("local_uri", "text[]"),
    ("remote_uri", "text[]"),
    ("remote_target", "text[]"),
    ("route_set", "text[]"),
    ("remote_cseq", "int8[]"),
    ("notify_cseq_mark", "int8[]"),
    ("state", "text[]"),
    ("document_version", "int8[]"),
    ("expires_at", "int8[]"),
    ("transport", "text[]"),
    ("local_addr", "text[]"),
    ("peer_addr", "text[]"),
    ("accept_encoding", "text[]"),
    ("list_source", "text[]"),
    ("list_members", "text[]"),
    ("linphone_compat", "bool[]"),
    ("mark_epoch", "int8[]"),
    ("event", "text[]"),
];

/// One bound parameter: a column's values as an array, or one value.
enum Param<'a> {
    Text(Vec<&'a str>),
    OptText(Vec<Option<&'a str>>),
    BigInts(Vec<i64>),
    BigInt(i64),
    Binary(Vec<&'a [u8]>),
    OptDouble(Vec<Option<f64>>),
    Bool(Vec<bool>),
}

/// A statement being built: its `WITH` parts and their bound parameters.
///
/// Unlike `diesel::sql_query`, it lets diesel keep the statement prepared: its text depends
/// only on which parts a batch has (a few dozen texts at most), never on the rows, so the
/// connection's statement cache (keyed by text and bind types) parses each text once instead
/// of at every group commit; the writer's connection also plans it once (generic plan, by
/// the keys' indexes: `worker::WRITER_PLANNING`).
struct Statement<'a> {
    parts: Vec<String>,
    params: Vec<Param<'a>>,
    sql: String,
}

impl<'a> Statement<'a> {
    fn new() -> Self {
        Self {
            parts: Vec::new(),
            params: Vec::new(),
            sql: String::new(),
        }
    }

    /// Binds one parameter, giving its placeholder.
    fn bind(&mut self, param: Param<'a>) -> String {
        self.params.push(param);
        format!("${}", self.params.len())
    }

    fn text(&mut self, values: Vec<&'a str>) -> String {
        self.bind(Param::Text(values))
    }

    fn opt_text(&mut self, values: Vec<Option<&'a str>>) -> String {
        self.bind(Param::OptText(values))
    }

    fn bigint(&mut self, values: Vec<i64>) -> String {
        self.bind(Param::BigInts(values))
    }

    fn part(&mut self, name: &str, sql: String) {
        self.parts.push(format!("{name} AS ({sql})"));
    }
}

impl Statement<'_> {
    /// Binds the parameter that placeholder `$n` (from `bind`) stands for.
    fn push_param<'b>(&'b self, out: &mut AstPass<'_, 'b, Pg>, n: &str) -> QueryResult<()> {
        let param = n
            .parse::<usize>()
            .ok()
            .and_then(|n| self.params.get(n.checked_sub(1)?))
            .ok_or_else(|| {
                diesel::result::Error::QueryBuilderError(format!("no parameter ${n}").into())
            })?;
        match param {
            Param::Text(v) => out.push_bind_param::<Array<Text>, _>(v),
            Param::OptText(v) => out.push_bind_param::<Array<Nullable<Text>>, _>(v),
            Param::BigInts(v) => out.push_bind_param::<Array<BigInt>, _>(v),
            Param::BigInt(v) => out.push_bind_param::<BigInt, _>(v),
            Param::Binary(v) => out.push_bind_param::<Array<Binary>, _>(v),
            Param::OptDouble(v) => out.push_bind_param::<Array<Nullable<Double>>, _>(v),
            Param::Bool(v) => out.push_bind_param::<Array<Bool>, _>(v),
        }
    }
}

/// diesel writes each placeholder itself as it binds, numbering them in order; so the text
/// goes out in pieces, each `$n` of it replaced by binding parameter n there. A parameter
/// used twice is sent twice.
impl QueryFragment<Pg> for Statement<'_> {
    fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, Pg>) -> QueryResult<()> {
        let mut rest = self.sql.as_str();
        while let Some(at) = rest.find('$') {
            out.push_sql(&rest[..at]);
            let after = &rest[at + 1..];
            let digits = after.bytes().take_while(u8::is_ascii_digit).count();
            self.push_param(&mut out, &after[..digits])?;
            rest = &after[digits..];
        }
        out.push_sql(rest);
        Ok(())
    }
}

/// No static id: diesel keys the prepared statement by its text and bind types.
impl QueryId for Statement<'_> {
    type QueryId = ();
    const HAS_STATIC_QUERY_ID: bool = false;
}

/// Writes `batch` in one statement (its own transaction).
pub(super) fn write(c: &mut PgConnection, batch: &Batch<'_>, epoch: i64) -> QueryResult<()> {
    let mut st = Statement::new();
    if !batch.publications_gone.is_empty() {
        let etags = st.text(batch.publications_gone.clone());
        st.part(
            "publications_gone",
            format!("DELETE FROM publications WHERE etag = ANY({etags})"),
        );
    }
    if !batch.publications_new.is_empty() {
        let rows = &batch.publications_new;
        let cols = [
            st.text(rows.iter().map(|r| r.etag.as_str()).collect()),
            st.text(rows.iter().map(|r| r.aor.as_str()).collect()),
            st.bind(Param::Binary(
                rows.iter().map(|r| r.body.as_slice()).collect(),
            )),
            st.text(rows.iter().map(|r| r.content_type.as_str()).collect()),
            st.bigint(rows.iter().map(|r| r.expires_at).collect()),
            st.bigint(rows.iter().map(|r| r.seq).collect()),
            st.text(rows.iter().map(|r| r.event.as_str()).collect()),
        ];
        st.part(
            "publications_new",
            format!(
                "INSERT INTO publications (etag, aor, body, content_type, expires_at, seq, event) \
                 SELECT * FROM UNNEST({}::text[], {}::text[], {}::bytea[], {}::text[], {}::int8[], {}::int8[], {}::text[])",
                cols[0], cols[1], cols[2], cols[3], cols[4], cols[5], cols[6]
            ),
        );
    }
    let gone = batch.subscriptions_gone();
    if !gone.is_empty() {
        let ids = st.text(gone);
        st.part(
            "subscriptions_gone",
            format!("DELETE FROM subscriptions WHERE id = ANY({ids})"),
        );
    }
    let put = batch.subscriptions_put();
    if !put.is_empty() {
        let sql = upsert_subscriptions(&mut st, &put, epoch);
        st.part("subscriptions_put", sql);
    }
    let marks = batch.marks();
    if !marks.is_empty() {
        let ids = st.text(marks.iter().map(|(id, _)| *id).collect());
        let values = st.bigint(marks.iter().map(|(_, m)| *m).collect());
        let epoch = st.bind(Param::BigInt(epoch));
        st.part(
            "subscriptions_mark",
            format!(
                "UPDATE subscriptions s SET notify_cseq_mark = m.mark, document_version = m.mark - 1, \
                 mark_epoch = {epoch}::int8 FROM UNNEST({ids}::text[], {values}::int8[]) AS m(id, mark) \
                 WHERE s.id = m.id AND s.notify_cseq_mark < m.mark"
            ),
        );
    }
    if !batch.bindings.is_empty() {
        let aors = st.text(batch.bindings.iter().map(|(aor, _)| *aor).collect());
        let rows: Vec<_> = batch.bindings.iter().flat_map(|(_, r)| r.iter()).collect();
        let cols = [
            st.text(rows.iter().map(|r| r.aor.as_str()).collect()),
            st.text(rows.iter().map(|r| r.contact.as_str()).collect()),
            st.bind(Param::OptDouble(rows.iter().map(|r| r.q_value).collect())),
            st.bigint(rows.iter().map(|r| r.expires_at).collect()),
            st.text(rows.iter().map(|r| r.call_id.as_str()).collect()),
            st.bigint(rows.iter().map(|r| r.cseq).collect()),
            st.opt_text(rows.iter().map(|r| r.linphone_specs.as_deref()).collect()),
            st.opt_text(rows.iter().map(|r| r.params.as_deref()).collect()),
        ];
        st.part(
            "bindings_gone",
            format!(
                "DELETE FROM bindings b WHERE b.aor = ANY({aors}) AND NOT EXISTS \
                 (SELECT 1 FROM UNNEST({}::text[], {}::text[]) AS n(aor, contact) \
                 WHERE n.aor = b.aor AND n.contact = b.contact)",
                cols[0], cols[1]
            ),
        );
        st.part(
            "bindings_put",
            format!(
                "INSERT INTO bindings (aor, contact, q_value, expires_at, call_id, cseq, linphone_specs, params) \
                 SELECT * FROM UNNEST({}::text[], {}::text[], {}::float8[], {}::int8[], {}::text[], {}::int8[], {}::text[], {}::text[]) \
                 ON CONFLICT (aor, contact) DO UPDATE SET q_value = EXCLUDED.q_value, \
                 expires_at = EXCLUDED.expires_at, call_id = EXCLUDED.call_id, cseq = EXCLUDED.cseq, \
                 linphone_specs = EXCLUDED.linphone_specs, params = EXCLUDED.params",
                cols[0], cols[1], cols[2], cols[3], cols[4], cols[5], cols[6], cols[7]
            ),
        );
    }
    if !batch.activity.is_empty() {
        let aors = st.text(batch.activity.iter().map(|(aor, _)| *aor).collect());
        let ats = st.bigint(batch.activity.iter().map(|(_, at)| *at).collect());
        st.part(
            "activity_put",
            format!(
                "INSERT INTO presentity_activity (aor, last_active) \
                 SELECT * FROM UNNEST({aors}::text[], {ats}::int8[]) \
                 ON CONFLICT (aor) DO UPDATE SET last_active = EXCLUDED.last_active"
            ),
        );
    }
    if st.parts.is_empty() {
        return Ok(());
    }
    st.sql = format!("WITH {} SELECT 1", st.parts.join(", "));
    c.execute_returning_count(&st).map(drop)
}

/// The upsert part for whole subscriptions, their marks stamped with `epoch`: a stored row
/// keeps its higher CSeq mark (both are of this start: a mark written now is above any loaded
/// one, see `worker`).
fn upsert_subscriptions<'a>(
    st: &mut Statement<'a>,
    rows: &[&'a SubscriptionRow],
    epoch: i64,
) -> String {
    let text = |f: fn(&SubscriptionRow) -> &str| rows.iter().map(|r| f(r)).collect::<Vec<_>>();
    let opt = |f: fn(&SubscriptionRow) -> Option<&str>| rows.iter().map(|r| f(r)).collect();
    let int = |f: fn(&SubscriptionRow) -> i64| rows.iter().map(|r| f(r)).collect();
    // In SUBSCRIPTION_COLUMNS order.
    let params = [
        st.text(text(|r| &r.id)),
        st.text(text(|r| &r.aor)),
        st.text(text(|r| &r.call_id)),
        st.text(text(|r| &r.local_tag)),
        st.text(text(|r| &r.remote_tag)),
        st.opt_text(opt(|r| r.event_id.as_deref())),
        st.opt_text(opt(|r| r.accept.as_deref())),
        st.text(text(|r| &r.local_uri)),
        st.text(text(|r| &r.remote_uri)),
        st.text(text(|r| &r.remote_target)),
        st.text(text(|r| &r.route_set)),
        st.bigint(int(|r| r.remote_cseq)),
        st.bigint(int(|r| r.notify_cseq_mark)),
        st.text(text(|r| &r.state)),
        st.bigint(int(|r| r.document_version)),
        st.bigint(int(|r| r.expires_at)),
        st.text(text(|r| &r.transport)),
        st.text(text(|r| &r.local_addr)),
        st.text(text(|r| &r.peer_addr)),
        st.opt_text(opt(|r| r.accept_encoding.as_deref())),
        st.opt_text(opt(|r| r.list_source.as_deref())),
        st.opt_text(opt(|r| r.list_members.as_deref())),
        st.bind(Param::Bool(
            rows.iter().map(|r| r.linphone_compat).collect(),
        )),
        st.bigint(vec![epoch; rows.len()]),
        st.text(text(|r| &r.event)),
    ];
    let names: Vec<&str> = SUBSCRIPTION_COLUMNS.iter().map(|(n, _)| *n).collect();
    let arrays: Vec<String> = params
        .iter()
        .zip(SUBSCRIPTION_COLUMNS)
        .map(|(p, (_, ty))| format!("{p}::{ty}"))
        .collect();
    let set: Vec<String> = names
        .iter()
        .skip(1)
        .map(|n| match *n {
            "notify_cseq_mark" | "document_version" => {
                format!("{n} = GREATEST(subscriptions.{n}, EXCLUDED.{n})")
            }
            _ => format!("{n} = EXCLUDED.{n}"),
        })
        .collect();
    format!(
        "INSERT INTO subscriptions ({}) SELECT * FROM UNNEST({}) ON CONFLICT (id) DO UPDATE SET {}",
        names.join(", "),
        arrays.join(", "),
        set.join(", ")
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_column_list_is_the_tables() {
        use super::super::schema::subscriptions;
        let select =
            diesel::debug_query::<Pg, _>(&subscriptions::table.select(subscriptions::all_columns))
                .to_string();
        let names: Vec<String> = SUBSCRIPTION_COLUMNS
            .iter()
            .map(|(n, _)| format!("\"subscriptions\".\"{n}\""))
            .collect();
        assert!(
            select.starts_with(&format!("SELECT {} FROM", names.join(", "))),
            "{select}"
        );
    }
}
