//! Writes a `Batch` to SQLite inside the caller's transaction: one statement per kind of row
//! (chunked under SQLite's limit on bound variables), marks and bindings per row or AOR.
//!
//! Owns: the SQLite statements of a group commit. Must not: decide what a batch holds
//! (`batch`) or open connections (`worker`).

use diesel::dsl::sql;
use diesel::prelude::*;
use diesel::sql_types::BigInt;
use diesel::upsert::excluded;
use diesel::SqliteConnection;

use super::batch::Batch;
use super::schema::{bindings, presentity_activity, publications, subscriptions};
use super::SubscriptionRow;

/// Rows per statement: well under SQLite's limit on bound variables (32,766).
const BINDS_PER_STATEMENT: usize = 12_000;
/// Columns of `subscriptions`, for chunking its inserts.
const SUBSCRIPTION_COLUMNS: usize = 25;

/// Writes `batch`, its marks stamped with `epoch`; the caller holds the transaction.
pub(super) fn write(c: &mut SqliteConnection, batch: &Batch<'_>, epoch: i64) -> QueryResult<()> {
    let stamped = |row: &SubscriptionRow| SubscriptionRow {
        mark_epoch: epoch,
        ..row.clone()
    };
    for chunk in batch.publications_gone.chunks(BINDS_PER_STATEMENT) {
        diesel::delete(publications::table.filter(publications::etag.eq_any(chunk))).execute(c)?;
    }
    for chunk in batch.publications_new.chunks(BINDS_PER_STATEMENT / 6) {
        diesel::insert_into(publications::table)
            .values(chunk.to_vec())
            .execute(c)?;
    }
    for chunk in batch.subscriptions_gone().chunks(BINDS_PER_STATEMENT) {
        diesel::delete(subscriptions::table.filter(subscriptions::id.eq_any(chunk))).execute(c)?;
    }
    // New ids cannot conflict: one multi-row insert. diesel writes no multi-row upsert for
    // SQLite, so refreshed rows are upserted one by one (a refresh is rare next to creation).
    for chunk in batch
        .subscriptions_written(true)
        .chunks(BINDS_PER_STATEMENT / SUBSCRIPTION_COLUMNS)
    {
        diesel::insert_into(subscriptions::table)
            .values(chunk.iter().map(|r| stamped(r)).collect::<Vec<_>>())
            .execute(c)?;
    }
    for row in batch.subscriptions_written(false) {
        upsert_subscription(c, &stamped(row))?;
    }
    for (id, mark) in batch.marks() {
        diesel::update(
            subscriptions::table
                .find(id)
                .filter(subscriptions::notify_cseq_mark.lt(mark)),
        )
        .set((
            subscriptions::notify_cseq_mark.eq(mark),
            subscriptions::document_version.eq(mark - 1),
            subscriptions::mark_epoch.eq(epoch),
        ))
        .execute(c)?;
    }
    let aors: Vec<&str> = batch.bindings.iter().map(|(aor, _)| *aor).collect();
    for chunk in aors.chunks(BINDS_PER_STATEMENT) {
        diesel::delete(bindings::table.filter(bindings::aor.eq_any(chunk))).execute(c)?;
    }
    let rows: Vec<_> = batch
        .bindings
        .iter()
        .flat_map(|(_, rows)| rows.iter())
        .collect();
    for chunk in rows.chunks(BINDS_PER_STATEMENT / 6) {
        diesel::insert_into(bindings::table)
            .values(chunk.to_vec())
            .execute(c)?;
    }
    // A presentity's activity changes when it is last seen, not per request: one upsert each.
    for (aor, at) in &batch.activity {
        diesel::insert_into(presentity_activity::table)
            .values((
                presentity_activity::aor.eq(*aor),
                presentity_activity::last_active.eq(*at),
            ))
            .on_conflict(presentity_activity::aor)
            .do_update()
            .set(presentity_activity::last_active.eq(excluded(presentity_activity::last_active)))
            .execute(c)?;
    }
    Ok(())
}

/// Inserts or overwrites a whole subscription; a stored row keeps its higher CSeq mark (both
/// are of this start: a mark written now is above any loaded one, see `worker`).
fn upsert_subscription(c: &mut SqliteConnection, row: &SubscriptionRow) -> QueryResult<()> {
    use subscriptions::*;
    diesel::insert_into(table)
        .values(row)
        .on_conflict(id)
        .do_update()
        .set((
            (
                aor.eq(excluded(aor)),
                call_id.eq(excluded(call_id)),
                local_tag.eq(excluded(local_tag)),
                remote_tag.eq(excluded(remote_tag)),
                event_id.eq(excluded(event_id)),
                accept.eq(excluded(accept)),
                local_uri.eq(excluded(local_uri)),
                remote_uri.eq(excluded(remote_uri)),
                remote_target.eq(excluded(remote_target)),
                route_set.eq(excluded(route_set)),
                remote_cseq.eq(excluded(remote_cseq)),
            ),
            (
                notify_cseq_mark.eq(sql::<BigInt>(
                    "max(subscriptions.notify_cseq_mark, excluded.notify_cseq_mark)",
                )),
                state.eq(excluded(state)),
                document_version.eq(sql::<BigInt>(
                    "max(subscriptions.document_version, excluded.document_version)",
                )),
                expires_at.eq(excluded(expires_at)),
                transport.eq(excluded(transport)),
                local_addr.eq(excluded(local_addr)),
                peer_addr.eq(excluded(peer_addr)),
                accept_encoding.eq(excluded(accept_encoding)),
                list_source.eq(excluded(list_source)),
                list_members.eq(excluded(list_members)),
                linphone_compat.eq(excluded(linphone_compat)),
                mark_epoch.eq(excluded(mark_epoch)),
                event.eq(excluded(event)),
            ),
        ))
        .execute(c)
        .map(drop)
}
