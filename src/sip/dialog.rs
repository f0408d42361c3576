//! Dialog identity (RFC 3261 §12).
//!
//! Owns: `DialogId` (Call-ID, local tag, remote tag) as seen from this server, and how it is
//! read from an in-dialog request. Must not: hold dialog state (the owning actor does).

use super::message::{HeaderAccess, Request};

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
    /// The dialog an incoming request claims to belong to, if its To carries a tag.
    pub fn of_request(req: &Request) -> Option<Self> {
        let to = req.header_to().ok()?;
        let local_tag = to.tag()?.to_owned();
        let remote_tag = req.header_from().ok()?.tag()?.to_owned();
        Some(Self {
            call_id: req.call_id().ok()?.to_owned(),
            local_tag,
            remote_tag,
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
