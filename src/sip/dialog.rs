//! Dialog identity (RFC 3261 §12).
//!
//! Owns: `DialogId` (Call-ID, local tag, remote tag) as seen from this server, and how it is
//! read from an in-dialog request. Must not: hold dialog state (the owning actor does).

use super::headers::NameAddr;

/// A dialog as seen from the server: Call-ID, our tag, the peer's tag.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct DialogId {
    /// Call-ID.
    pub call_id: String,
    /// Our tag (the To tag of requests we receive in the dialog).
    pub local_tag: String,
    /// The peer's tag (the From tag of requests we receive).
    pub remote_tag: String,
}

impl DialogId {
    /// The dialog an incoming request with this Call-ID, To and From claims to belong to, if
    /// both To and From carry a tag.
    pub fn of(call_id: &str, to: &NameAddr, from: &NameAddr) -> Option<Self> {
        Some(Self {
            call_id: call_id.to_owned(),
            local_tag: to.tag()?.to_owned(),
            remote_tag: from.tag()?.to_owned(),
        })
    }
}

impl std::fmt::Display for DialogId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{};l={};r={}",
            self.call_id, self.local_tag, self.remote_tag
        )
    }
}
