//! [`EventPackage`]: what an event package (RFC 6665 §7) declares of its own, and nothing the
//! subscription and publication machinery shares.
//!
//! Owns: the contract between a package module (its Event name, its bodies, how publications
//! combine, its body when nothing is known) and the generic machinery of `events` (resources,
//! PUBLISH rules, watchers, persistence). Must not: hold state.

use bytes::Bytes;

use crate::presence::aor::Aor;
use crate::sip::Reject;

/// Written where a versioned document's `version` goes, replaced by each subscription's own
/// version on the way out.
pub const VERSION_PLACEHOLDER: &str = " version=\"0\" ";

/// `state` with the placeholder replaced by `version`.
pub fn with_version(state: &Bytes, version: u32) -> Bytes {
    let text = String::from_utf8_lossy(state);
    let versioned = format!(" version=\"{version}\" ");
    Bytes::from(text.replacen(VERSION_PLACEHOLDER, &versioned, 1))
}

/// Who may subscribe to a package's resources.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Subscribers {
    /// Any watcher (authorization comes later, per watcher).
    Anyone,
    /// Only the resource's owner: From's AOR is the Request-URI's (403 otherwise).
    OwnerOnly,
}

/// An event package served from publications, or from state presenced keeps itself.
pub trait EventPackage: Send + Sync + 'static {
    /// Its Event header value, e.g. `message-summary`.
    fn name(&self) -> &'static str;

    /// The media type its PUBLISH bodies and NOTIFY bodies have.
    fn body_type(&self) -> &'static str;

    /// Whether PUBLISH sets its state (RFC 3903); when presenced keeps the state itself (the
    /// registrar for reg), PUBLISH gets 489.
    fn publishable(&self) -> bool {
        true
    }

    /// Who may subscribe.
    fn subscribers(&self) -> Subscribers {
        Subscribers::Anyone
    }

    /// Checks a PUBLISH body (RFC 3903 §6 step 6): a body that does not follow the package's
    /// grammar gets 400.
    fn validate(&self, body: &[u8]) -> Result<(), Reject>;

    /// The state of resource `aor` from its live publications' bodies, newest first (never
    /// empty).
    fn combine(&self, aor: &Aor, newest_first: &[&Bytes]) -> Bytes;

    /// The body a watcher gets when nothing is published for `aor`.
    fn default_body(&self, aor: &Aor) -> Bytes;

    /// Whether a new publication leaves nothing of an older one standing (the older is then
    /// removed, so that it cannot come back when the newer expires first).
    fn supersedes(&self, _newer: &Bytes, _older: &Bytes) -> bool {
        false
    }

    /// The NOTIFY body of `state` for a subscription's `version`-th NOTIFY (from 0), for
    /// packages whose documents are versioned per subscription.
    fn notify_body(&self, state: &Bytes, _version: u32) -> Bytes {
        state.clone()
    }
}
