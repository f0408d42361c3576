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
        let mut s = String::with_capacity(32);
        s.push_str("sip:");
        s.push_str(user);
        s.push('@');
        match &sip.host {
            Host::Domain(d) => {
                let at = s.len();
                s.push_str(d);
                s[at..].make_ascii_lowercase();
            }
            // Infallible: writing into a String.
            ip => {
                let _ = write!(s, "{ip}");
            }
        }
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

    /// Whether `text` (a PIDF `entity`) names this AOR. Written exactly as the AOR it does
    /// without being parsed (an AOR reads back as itself); otherwise it is parsed.
    pub fn is_named_by(&self, text: &str) -> bool {
        text.trim() == self.0 || Self::parse(text).as_ref() == Some(self)
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

    #[test]
    fn an_aor_reads_back_as_itself_and_is_named_by_any_spelling_of_it() {
        for text in [
            "sip:alice@example.org",
            "sip:+3361234@example.org;user=phone",
            "sip:bob@192.0.2.1:5070",
            "sip:carol@[2001:db8::1]",
        ] {
            let aor = Aor::parse(text).unwrap();
            assert_eq!(aor.as_str(), text);
            assert_eq!(Aor::parse(aor.as_str()).as_ref(), Some(&aor));
            assert!(aor.is_named_by(&format!(" {text} ")));
        }
        let alice = Aor::parse("sip:alice@example.org").unwrap();
        assert!(alice.is_named_by("pres:alice@EXAMPLE.org"));
        assert!(alice.is_named_by("sips:alice@example.org;transport=tcp"));
        assert!(!alice.is_named_by("sip:bob@example.org"));
        assert!(!alice.is_named_by("not a uri"));
    }
}
