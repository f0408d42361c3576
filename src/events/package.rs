//! [`EventPackage`]: what an event package (RFC 6665 §7) declares of its own, and nothing the
//! subscription and publication machinery shares.
//!
//! Owns: the contract between a package module (its Event name, its bodies, how publications
//! combine, its body when nothing is known) and the generic machinery of `events` (resources,
//! PUBLISH rules, watchers, persistence). Must not: hold state.

use bytes::Bytes;

use crate::presence::aor::Aor;
use crate::sip::headers::{best_media, parse_weighted_list};
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

/// The NOTIFY body type of `package` for a subscription whose Accept values are `accept`
/// (joined with commas): the one its q-values rate highest, the package's order first among
/// equals, the package's first without Accept; 406 listing them all when none is acceptable.
pub fn negotiate(package: &dyn EventPackage, accept: Option<&str>) -> Result<&'static str, Reject> {
    let served = package.notify_types();
    let Some(accept) = accept else {
        return served.first().copied().ok_or_else(|| Reject::new(500));
    };
    let list = parse_weighted_list(accept, "Accept")
        .map_err(|_| Reject::with_reason(400, "Malformed Accept"))?;
    best_media(&list, served).ok_or_else(|| Reject::new(406).header("Accept", served.join(", ")))
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

    /// The media types of the NOTIFY bodies it can write, in the server's order of
    /// preference: a watcher gets the one its Accept rates highest (the first without Accept;
    /// 406 when it accepts none). Its state is kept in the first.
    fn notify_types(&self) -> &'static [&'static str];

    /// The media types PUBLISH may carry (415 otherwise); none when presenced keeps the state
    /// itself (the registrar for reg), and PUBLISH gets 489.
    fn publish_types(&self) -> &'static [&'static str];

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

    /// The NOTIFY body of `state` in `media_type` (one of `notify_types`) for a subscription's
    /// `version`-th NOTIFY (from 0), which packages whose documents are versioned per
    /// subscription write into it.
    fn notify_body(&self, state: &Bytes, _version: u32, _media_type: &str) -> Bytes {
        state.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A package writing two body types.
    struct TwoTypes;

    impl EventPackage for TwoTypes {
        fn name(&self) -> &'static str {
            "x-two"
        }
        fn notify_types(&self) -> &'static [&'static str] {
            &["application/a+xml", "application/b+xml"]
        }
        fn publish_types(&self) -> &'static [&'static str] {
            &[]
        }
        fn validate(&self, _body: &[u8]) -> Result<(), Reject> {
            Ok(())
        }
        fn combine(&self, _aor: &Aor, newest_first: &[&Bytes]) -> Bytes {
            newest_first[0].clone()
        }
        fn default_body(&self, _aor: &Aor) -> Bytes {
            Bytes::new()
        }
    }

    #[test]
    fn the_highest_q_value_wins_and_the_packages_order_breaks_ties() {
        let p = TwoTypes;
        assert_eq!(negotiate(&p, None).unwrap(), "application/a+xml");
        assert_eq!(
            negotiate(&p, Some("application/a+xml;q=0.5, application/b+xml")).unwrap(),
            "application/b+xml"
        );
        assert_eq!(
            negotiate(&p, Some("application/*")).unwrap(),
            "application/a+xml"
        );
        let refused = negotiate(&p, Some("text/plain")).unwrap_err();
        assert_eq!(refused.status, 406);
        assert_eq!(negotiate(&p, Some("a b c")).unwrap_err().status, 400);
        let body = Bytes::from_static(b"<x version=\"0\" />");
        assert_eq!(&with_version(&body, 7)[..], b"<x version=\"7\" />");
    }
}
