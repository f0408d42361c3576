//! `PresenceDocument`: one immutable, shared snapshot of a presentity's aggregated state.
//!
//! Owns: the serialised PIDF body and its version. Created by the presentity on every change and
//! shared by `Arc` with every watcher, so fan-out never copies a document per watcher.
//! Must not: change after creation.

use std::sync::Arc;

use bytes::Bytes;

use super::aor::Aor;

/// The aggregated document as sent in NOTIFY bodies.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PresenceDocument {
    /// The presentity it describes.
    pub aor: Aor,
    /// Increments with every change of the presentity's state.
    pub version: u64,
    /// `application/pidf+xml` body.
    pub body: Bytes,
    /// The AOR is a phone number no user owns (or whose owner could not be looked up): a
    /// list shows its resource without an instance, as liblinphone expects of a number that
    /// is not a user.
    pub unowned_alias: bool,
    /// When this state was made (the change NOTIFYs report is measured from here).
    pub changed_at: std::time::Instant,
}

/// A shared snapshot.
pub type SharedDocument = Arc<PresenceDocument>;

/// Content type of PIDF bodies (RFC 3863).
pub const PIDF_CONTENT_TYPE: &str = "application/pidf+xml";

/// The presence event package's name (RFC 3856), as stored with its publications and
/// subscriptions.
pub const PRESENCE_PACKAGE: &str = "presence";
