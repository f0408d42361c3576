//! Rows as stored: one struct per table, used for reading and writing.

use diesel::prelude::*;

use super::schema::{bindings, presentity_activity, publications, subscriptions};

/// A subscription dialog (RFC 6665 dialog usage) as stored.
#[derive(Debug, Clone, PartialEq, Queryable, Selectable, Insertable, AsChangeset)]
#[diesel(table_name = subscriptions)]
pub struct SubscriptionRow {
    /// `call_id;local_tag;remote_tag;usage`.
    pub id: String,
    /// The presentity watched.
    pub aor: String,
    /// Call-ID.
    pub call_id: String,
    /// Our tag.
    pub local_tag: String,
    /// The watcher's tag.
    pub remote_tag: String,
    /// Event `id`.
    pub event_id: Option<String>,
    /// The SUBSCRIBE's Accept.
    pub accept: Option<String>,
    /// Our name-addr.
    pub local_uri: String,
    /// The watcher's name-addr.
    pub remote_uri: String,
    /// Where NOTIFYs go.
    pub remote_target: String,
    /// Record-Route values, one per line.
    pub route_set: String,
    /// Last CSeq received in the dialog.
    pub remote_cseq: i64,
    /// Every NOTIFY CSeq sent so far is below this. As loaded, already moved up for the starts
    /// since it was written (`worker::effective_mark`).
    pub notify_cseq_mark: i64,
    /// `active` or `pending`.
    pub state: String,
    /// Version of the last document sent.
    pub document_version: i64,
    /// Unix seconds.
    pub expires_at: i64,
    /// `UDP` or `TCP`.
    pub transport: String,
    /// Our socket address.
    pub local_addr: String,
    /// The peer's address.
    pub peer_addr: String,
    /// The SUBSCRIBE's Accept-Encoding.
    pub accept_encoding: Option<String>,
    /// For a list subscription: `request` (RFC 5367) or `server` (`rls.list_query`).
    pub list_source: Option<String>,
    /// For a list subscription: one `uri<TAB>display name` per line.
    pub list_members: Option<String>,
    /// NOTIFYs use the forms liblinphone needs (`rls.linphone_compat`).
    pub linphone_compat: bool,
    /// The store start (`store_epoch`) in which the mark was written. The store sets it on
    /// every write; what a caller puts here is ignored.
    pub mark_epoch: i64,
    /// The event package (`presence`, …).
    pub event: String,
}

/// A publication (RFC 3903) as stored.
#[derive(Debug, Clone, PartialEq, Queryable, Selectable, Insertable)]
#[diesel(table_name = publications)]
pub struct PublicationRow {
    /// Current entity-tag.
    pub etag: String,
    /// The presentity.
    pub aor: String,
    /// The PIDF body as published.
    pub body: Vec<u8>,
    /// Its Content-Type.
    pub content_type: String,
    /// Unix seconds.
    pub expires_at: i64,
    /// Order of the last modification.
    pub seq: i64,
    /// The event package (`presence`, …).
    pub event: String,
}

/// A registrar binding as stored.
#[derive(Debug, Clone, PartialEq, Queryable, Selectable, Insertable)]
#[diesel(table_name = bindings)]
pub struct BindingRow {
    /// The AOR.
    pub aor: String,
    /// The contact URI.
    pub contact: String,
    /// Its q-value.
    pub q_value: Option<f64>,
    /// Unix seconds.
    pub expires_at: i64,
    /// Call-ID of the REGISTER.
    pub call_id: String,
    /// CSeq of the REGISTER.
    pub cseq: i64,
    /// The contact's `+org.linphone.specs` parameter, as sent.
    pub linphone_specs: Option<String>,
    /// The contact's other header parameters (not expires, not q), as sent: `;name=value…`.
    pub params: Option<String>,
}

/// When a presentity was last active, as stored.
#[derive(Debug, Clone, PartialEq, Eq, Queryable, Selectable, Insertable)]
#[diesel(table_name = presentity_activity)]
pub struct ActivityRow {
    /// The AOR.
    pub aor: String,
    /// Unix seconds.
    pub last_active: i64,
}
