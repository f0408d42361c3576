//! The presence event package (RFC 3856) and publication (RFC 3903).
//!
//! Owns: `agent` (AOR → presentity actor, initial SUBSCRIBE and PUBLISH checks),
//! `presentity` (one actor per AOR: publications by entity-tag, registrar tuples, watchers),
//! `watcher` (one actor per subscription dialog: state, expiry, NOTIFY CSeq and coalescing),
//! `directory` (what the users database says of users and phone numbers, cached), and the
//! pure parts: `aor`, `publication` (RFC 3903 rules), `aggregation`, `pidf`,
//! `long_term` (long-term presence and the "unknown" document), `document` (the immutable
//! snapshot shared with watchers).
//! Must not: open sockets (NOTIFYs go through the dispatcher) or call the database.

pub mod agent;
pub mod aggregation;
pub mod aor;
pub mod directory;
pub mod document;
pub mod formats;
pub mod long_term;
pub mod pidf;
pub mod presentity;
pub mod publication;
pub mod subscription;
pub mod view;
pub mod watcher;

pub use agent::{PresenceAgent, PresenceConfig};
