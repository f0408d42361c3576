//! Address-of-record normalisation.
//!
//! Owns: turning a URI into the key a presentity is known by. Rule: scheme (`sips` folds to
//! `sip`, `pres:` to `sip:` for PIDF entities, RFC 3859), user as written, host in lower case,
//! port dropped unless given, and no parameters except `user=phone`. Must not: look anything up.

use std::fmt::{self, Write as _};

use crate::sip::uri::{Host, Uri};

/// A normalised address of record, e.g. `sip:alice@example.org`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Aor(String);

impl Aor {
    /// The AOR of a URI, or `None` when it is not a SIP URI with a user part.
    pub fn from_uri(uri: &Uri) -> Option<Self> {
        let sip = uri.as_sip()?;
        let user = sip.user.as_deref().filter(|u| !u.is_empty())?;
        let host = match &sip.host {
            Host::Domain(d) => d.to_ascii_lowercase(),
            ip => ip.to_string(),
        };
        let mut s = format!("sip:{user}@{host}");
        if let Some(port) = sip.port {
            // Infallible: writing into a String.
            let _ = write!(s, ":{port}");
        }
        if sip
            .param("user")
            .flatten()
            .is_some_and(|v| v.eq_ignore_ascii_case("phone"))
        {
            s.push_str(";user=phone");
        }
        Some(Aor(s))
    }

    /// The AOR of a URI written as text (PIDF `entity`, with `pres:` accepted).
    pub fn parse(text: &str) -> Option<Self> {
        let text = text.trim();
        let text = match text.get(..5) {
            Some(p) if p.eq_ignore_ascii_case("pres:") => format!("sip:{}", &text[5..]),
            _ => text.to_owned(),
        };
        Self::from_uri(&Uri::parse(&text).ok()?)
    }

    /// The AOR as a URI string.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Aor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_case_scheme_and_parameters_are_normalised() {
        let a = Aor::parse("sips:alice@EXAMPLE.org;transport=tcp").unwrap();
        assert_eq!(a.as_str(), "sip:alice@example.org");
        assert_eq!(Aor::parse("pres:alice@example.org"), Some(a));
        let p = Aor::parse("sip:+3361234@example.org;user=phone;foo=bar").unwrap();
        assert_eq!(p.as_str(), "sip:+3361234@example.org;user=phone");
        assert!(Aor::parse("sip:example.org").is_none());
        assert!(Aor::parse("tel:+123").is_none());
    }
}
