//! SIP URIs (RFC 3261 §19.1) as the rest of the server sees them.
//!
//! Owns: the `Uri` type, parsing through rsip with the façade's pre- and post-processing, and
//! writing URIs back out. Must not: know what a URI means to presence (AOR rules live in
//! `presence`).
//!
//! rsip 0.4 parses `sip:`/`sips:` URIs with user, host, port and parameters, but rejects IPv6
//! references (`sip:alice@[2001:db8::1]:5060`) and turns a `tel:` URI into a host called `tel`.
//! The façade therefore masks an IPv6 reference with a placeholder host before rsip sees it and
//! puts the address back afterwards, and only hands `sip:`/`sips:` URIs to rsip at all; any
//! other absolute URI (`tel:`, `urn:`, …) is kept verbatim.

use std::fmt;
use std::net::{IpAddr, Ipv6Addr};

/// Placeholder host used to get an IPv6 reference past rsip.
const V6_MASK: &str = "ipv6-reference.invalid";

/// Why a URI was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UriError {
    /// No scheme, or characters outside the URI grammar.
    #[error("not a URI")]
    NotAUri,
    /// A bracketed IPv6 reference that is not an IPv6 address.
    #[error("invalid IPv6 reference")]
    BadIpv6,
    /// rsip refused the `sip:`/`sips:` URI.
    #[error("invalid SIP URI")]
    BadSipUri,
}

/// The host part of a SIP URI.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Host {
    /// A host name (kept as received; compare with `eq_ignore_ascii_case`).
    Domain(String),
    /// An IPv4 or IPv6 address.
    Ip(IpAddr),
}

impl Host {
    /// Parses a host as it appears in a URI or Via (`example.com`, `1.2.3.4`, `[::1]`).
    pub fn parse(s: &str) -> Result<Self, UriError> {
        if let Some(inner) = s.strip_prefix('[').and_then(|r| r.strip_suffix(']')) {
            return inner
                .parse::<Ipv6Addr>()
                .map(|a| Host::Ip(IpAddr::V6(a)))
                .map_err(|_| UriError::BadIpv6);
        }
        if let Ok(ip) = s.parse::<IpAddr>() {
            return Ok(Host::Ip(ip));
        }
        if s.is_empty()
            || !s
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.')
        {
            return Err(UriError::NotAUri);
        }
        Ok(Host::Domain(s.to_owned()))
    }

    /// True when both name the same host (domains compared case-insensitively).
    pub fn same_as(&self, other: &Host) -> bool {
        match (self, other) {
            (Host::Domain(a), Host::Domain(b)) => a.eq_ignore_ascii_case(b),
            (Host::Ip(a), Host::Ip(b)) => a == b,
            _ => false,
        }
    }
}

impl fmt::Display for Host {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Host::Domain(d) => f.write_str(d),
            Host::Ip(IpAddr::V6(a)) => write!(f, "[{a}]"),
            Host::Ip(IpAddr::V4(a)) => write!(f, "{a}"),
        }
    }
}

/// A URI parameter: name and optional value.
pub type Param = (String, Option<String>);

/// A parsed URI.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Uri {
    /// `sip:` or `sips:`.
    Sip(SipUri),
    /// Any other absolute URI, verbatim (`tel:+1555`, `urn:uuid:…`).
    Other(String),
}

/// A `sip:`/`sips:` URI.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SipUri {
    /// `sips:` rather than `sip:`.
    pub secure: bool,
    /// User part, as received (escapes kept).
    pub user: Option<String>,
    /// Host.
    pub host: Host,
    /// Port, if given.
    pub port: Option<u16>,
    /// URI parameters in order.
    pub params: Vec<Param>,
    /// The `?headers` part, verbatim, if any.
    pub headers: Option<String>,
}

impl SipUri {
    /// The value of a parameter (case-insensitive name); `Some(None)` for a flag parameter.
    pub fn param(&self, name: &str) -> Option<Option<&str>> {
        self.params
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_deref())
    }
}

impl Uri {
    /// Parses a URI. `sip:`/`sips:` go through rsip; other schemes are kept verbatim.
    pub fn parse(s: &str) -> Result<Self, UriError> {
        let s = s.trim();
        let (scheme, rest) = s.split_once(':').ok_or(UriError::NotAUri)?;
        if scheme.is_empty()
            || !scheme.starts_with(|c: char| c.is_ascii_alphabetic())
            || !scheme
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c))
            || rest.is_empty()
            || s.chars()
                .any(|c| c.is_whitespace() || c.is_control() || c == '<' || c == '>')
        {
            return Err(UriError::NotAUri);
        }
        let secure = if scheme.eq_ignore_ascii_case("sip") {
            false
        } else if scheme.eq_ignore_ascii_case("sips") {
            true
        } else {
            return Ok(Uri::Other(s.to_owned()));
        };
        // rsip reads `sip:` + the rest; a URI already written so is handed over as it is.
        let as_sip = (scheme == "sip").then_some(s);
        parse_sip(secure, rest, as_sip).map(Uri::Sip)
    }

    /// The SIP URI, if this is one.
    pub fn as_sip(&self) -> Option<&SipUri> {
        match self {
            Uri::Sip(u) => Some(u),
            Uri::Other(_) => None,
        }
    }
}

/// Whether `user` is an RFC 3261 §25.1 user part: unreserved, escaped and user-unreserved
/// characters.
fn valid_user(user: &str) -> bool {
    let bytes = user.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        let c = bytes[i];
        if c == b'%' {
            if !(bytes.get(i + 1).is_some_and(u8::is_ascii_hexdigit)
                && bytes.get(i + 2).is_some_and(u8::is_ascii_hexdigit))
            {
                return false;
            }
            i += 3;
            continue;
        }
        if !(c.is_ascii_alphanumeric() || b"-_.!~*'()&=+$,;?/".contains(&c)) {
            return false;
        }
        i += 1;
    }
    !user.is_empty()
}

/// Splits `[user@]host[:port]` off the front of what follows `sip:` and masks an IPv6
/// reference so that rsip accepts the rest. `as_sip`: the whole URI, when it is `sip:` + `rest`.
fn parse_sip(secure: bool, rest: &str, as_sip: Option<&str>) -> Result<SipUri, UriError> {
    // The host starts after the last '@' before any '?' (a user part may hold ';').
    let host_end = rest.find(['?']).unwrap_or(rest.len());
    let host_start = rest[..host_end].rfind('@').map(|i| i + 1).unwrap_or(0);
    // The user part is read here: rsip takes a user with a '.' (john.doe) for part of the host.
    let user = match host_start {
        0 => None,
        at => {
            let userinfo = &rest[..at - 1];
            // A password (RFC 3261 §19.1.1: not recommended) is not part of the user.
            let user = userinfo.split_once(':').map_or(userinfo, |(u, _)| u);
            if !valid_user(user) {
                return Err(UriError::BadSipUri);
            }
            Some(user.to_owned())
        }
    };
    let mut ipv6: Option<Ipv6Addr> = None;
    let masked: String;
    let for_rsip = if rest[host_start..].starts_with('[') {
        let close = rest[host_start..].find(']').ok_or(UriError::BadIpv6)? + host_start;
        let addr = rest[host_start + 1..close]
            .parse::<Ipv6Addr>()
            .map_err(|_| UriError::BadIpv6)?;
        ipv6 = Some(addr);
        masked = format!("sip:{}{}", V6_MASK, &rest[close + 1..]);
        masked.as_str()
    } else if let (Some(whole), None) = (as_sip, &user) {
        whole
    } else {
        masked = format!("sip:{}", &rest[host_start..]);
        masked.as_str()
    };
    let parsed = rsip::Uri::try_from(for_rsip).map_err(|_| UriError::BadSipUri)?;
    // Validate after rsip: it must have seen a sip: URI and consumed a host.
    if !matches!(parsed.scheme, Some(rsip::Scheme::Sip)) {
        return Err(UriError::BadSipUri);
    }
    let host = match (&parsed.host_with_port.host, ipv6) {
        (_, Some(addr)) => Host::Ip(IpAddr::V6(addr)),
        (rsip::Host::IpAddr(ip), None) => Host::Ip(*ip),
        (rsip::Host::Domain(d), None) => Host::parse(d.value())?,
    };
    // rsip rewrites some parameters (`transport=tcp` comes back as `TCP`), so parameters are
    // read from the validated text itself.
    let params = uri_params(&rest[host_start..host_end]);
    let headers = rest
        .split_once('?')
        .map(|(_, h)| h.to_owned())
        .filter(|h| !h.is_empty());
    Ok(SipUri {
        secure,
        port: parsed.host_with_port.port.map(|p| *p.value()),
        user,
        host,
        params,
        headers,
    })
}

/// Parameters of `host[:port];a=b;c`, in order.
fn uri_params(host_part: &str) -> Vec<Param> {
    // An IPv6 reference holds no ';', so the first ';' ends host and port.
    let Some((_, params)) = host_part.split_once(';') else {
        return Vec::new();
    };
    params
        .split(';')
        .filter(|p| !p.is_empty())
        .map(|p| match p.split_once('=') {
            Some((n, v)) => (n.to_owned(), Some(v.to_owned())),
            None => (p.to_owned(), None),
        })
        .collect()
}

impl fmt::Display for SipUri {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(if self.secure { "sips:" } else { "sip:" })?;
        if let Some(user) = &self.user {
            write!(f, "{user}@")?;
        }
        write!(f, "{}", self.host)?;
        if let Some(port) = self.port {
            write!(f, ":{port}")?;
        }
        for (name, value) in &self.params {
            match value {
                Some(v) => write!(f, ";{name}={v}")?,
                None => write!(f, ";{name}")?,
            }
        }
        if let Some(h) = &self.headers {
            write!(f, "?{h}")?;
        }
        Ok(())
    }
}

impl fmt::Display for Uri {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Uri::Sip(u) => u.fmt(f),
            Uri::Other(s) => f.write_str(s),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sip(s: &str) -> SipUri {
        match Uri::parse(s).unwrap() {
            Uri::Sip(u) => u,
            Uri::Other(o) => panic!("not a sip uri: {o}"),
        }
    }

    #[test]
    fn plain_sip_uri_parses_with_params() {
        let u = sip("sip:alice@example.org:5070;transport=tcp;lr");
        assert_eq!(u.user.as_deref(), Some("alice"));
        assert_eq!(u.host, Host::Domain("example.org".into()));
        assert_eq!(u.port, Some(5070));
        assert_eq!(u.param("transport"), Some(Some("tcp")));
        assert_eq!(u.param("lr"), Some(None));
        assert_eq!(u.to_string(), "sip:alice@example.org:5070;transport=tcp;lr");
    }

    #[test]
    fn users_with_dots_and_other_rfc_3261_characters_are_users() {
        for (text, user, host) in [
            ("sip:john.doe@example.org", "john.doe", "example.org"),
            ("sip:K.L-5_m!~*'()@b.c", "K.L-5_m!~*'()", "b.c"),
            (
                "sip:%41lice@example.org;transport=tcp",
                "%41lice",
                "example.org",
            ),
            ("sip:+331234;user=phone@b.c", "+331234;user=phone", "b.c"),
            ("sip:john.doe:secret@example.org", "john.doe", "example.org"),
        ] {
            let u = sip(text);
            assert_eq!(u.user.as_deref(), Some(user), "{text}");
            assert_eq!(u.host, Host::Domain(host.into()), "{text}");
        }
        assert_eq!(
            sip("sip:john.doe@[::1]:5062").user.as_deref(),
            Some("john.doe")
        );
        for bad in [
            "sip:@example.org",
            "sip:jo hn@example.org",
            "sip:a%4@b.c",
            "sip:a<b@c.d",
        ] {
            assert!(Uri::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn ipv6_references_are_accepted() {
        let u = sip("sip:alice@[2001:db8::1]:5060;transport=udp");
        assert_eq!(u.host, Host::Ip("2001:db8::1".parse().unwrap()));
        assert_eq!(u.port, Some(5060));
        assert_eq!(u.to_string(), "sip:alice@[2001:db8::1]:5060;transport=udp");
        let bare = sip("sip:[::1]");
        assert_eq!(bare.user, None);
        assert_eq!(bare.host, Host::Ip("::1".parse().unwrap()));
        assert_eq!(Uri::parse("sip:a@[::zz]"), Err(UriError::BadIpv6));
    }

    #[test]
    fn tel_and_other_schemes_are_kept_verbatim() {
        assert_eq!(
            Uri::parse("tel:+15551234").unwrap(),
            Uri::Other("tel:+15551234".into())
        );
        assert!(Uri::parse("no scheme").is_err());
        assert!(Uri::parse("sip:").is_err());
    }

    #[test]
    fn scheme_case_and_sips_do_not_change_the_parse() {
        let lower = sip("sip:bob@Example.org:5080;transport=tcp");
        let upper = sip("SIP:bob@Example.org:5080;transport=tcp");
        assert_eq!(lower, upper);
        assert_eq!(lower.host, Host::Domain("Example.org".into()));
        let secure = sip("sips:bob@Example.org:5080;transport=tcp");
        assert!(secure.secure);
        assert_eq!((secure.user, secure.host), (lower.user, lower.host));
    }

    #[test]
    fn user_phone_parameter_survives() {
        let u = sip("sip:+33612345678@example.org;user=phone");
        assert_eq!(u.param("user"), Some(Some("phone")));
    }
}
