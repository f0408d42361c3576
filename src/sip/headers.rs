//! Typed header codecs the façade implements itself.
//!
//! Owns: header parameters with quoted values, comma-list splitting that respects quotes and
//! angle brackets, and the typed headers the server reasons about: Via, name-addr headers
//! (From, To, Contact, Route, Record-Route), CSeq, Event (with `id`), Subscription-State,
//! SIP-ETag, SIP-If-Match, Allow-Events, Min-Expires, option-tag lists (Supported, Require),
//! Accept, Accept-Encoding and Content-Encoding. Must not: know which header a request needs;
//! that is the dispatcher's and the handlers' business.
//!
//! rsip 0.4 rejects quoted parameter values (`+sip.instance="<urn:uuid:…>"`) and IPv6 in Via,
//! and has no Subscription-State; these codecs do not depend on it except for the URI inside a
//! name-addr, which goes through [`Uri::parse`].

use std::fmt;

use super::message::Method;
use super::uri::{Host, Uri, UriError};
use super::wire::is_token_char;

/// Why a header value could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HeaderError {
    /// The value does not follow the header's grammar.
    #[error("malformed {0}")]
    Malformed(&'static str),
    /// The URI inside it is not valid.
    #[error("invalid URI in {0}: {1}")]
    Uri(&'static str, UriError),
}

/// Header parameters (`;name=value`), names compared case-insensitively.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Params(pub Vec<(String, Option<String>)>);

impl Params {
    /// Reads `;a=b;c;d="quoted ; value"` (leading `;` optional).
    pub fn parse(s: &str, what: &'static str) -> Result<Self, HeaderError> {
        let mut out = Vec::new();
        for part in split_outside_quotes(s, b';') {
            let part = part.trim();
            if part.is_empty() {
                continue;
            }
            let (name, value) = match part.split_once('=') {
                Some((n, v)) => (n.trim(), Some(v.trim())),
                None => (part, None),
            };
            if name.is_empty() || !name.chars().all(is_token_char) {
                return Err(HeaderError::Malformed(what));
            }
            if let Some(v) = value {
                let quoted = v.len() >= 2 && v.starts_with('"') && v.ends_with('"');
                let ok = quoted || v.chars().all(|c| is_token_char(c) || "[]:".contains(c));
                if !ok {
                    return Err(HeaderError::Malformed(what));
                }
            }
            out.push((name.to_owned(), value.map(str::to_owned)));
        }
        Ok(Params(out))
    }

    /// A parameter's value (quotes kept); `Some(None)` for a flag.
    pub fn get(&self, name: &str) -> Option<Option<&str>> {
        self.0
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_deref())
    }

    /// A parameter's value with surrounding quotes removed.
    pub fn get_unquoted(&self, name: &str) -> Option<&str> {
        self.get(name).flatten().map(unquote)
    }

    /// Sets or replaces a parameter.
    pub fn set(&mut self, name: &str, value: Option<String>) {
        match self
            .0
            .iter_mut()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
        {
            Some(slot) => slot.1 = value,
            None => self.0.push((name.to_owned(), value)),
        }
    }
}

impl fmt::Display for Params {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (name, value) in &self.0 {
            match value {
                Some(v) => write!(f, ";{name}={v}")?,
                None => write!(f, ";{name}")?,
            }
        }
        Ok(())
    }
}

/// Removes one pair of surrounding double quotes.
pub fn unquote(s: &str) -> &str {
    s.strip_prefix('"')
        .and_then(|r| r.strip_suffix('"'))
        .unwrap_or(s)
}

/// Splits on `sep` (an ASCII character) outside double-quoted strings and `<…>`; always
/// yields at least one part.
pub fn split_outside_quotes(s: &str, sep: u8) -> SplitOutsideQuotes<'_> {
    debug_assert!(
        sep.is_ascii() && !matches!(sep, b'"' | b'<' | b'>' | b'\\'),
        "a separator inside a character would split it; a delimiter cannot be one"
    );
    SplitOutsideQuotes { rest: Some(s), sep }
}

/// The parts of [`split_outside_quotes`], in order (an iterator: splitting allocates nothing).
#[derive(Debug, Clone)]
pub struct SplitOutsideQuotes<'a> {
    /// What is left to split; `None` once the last part was given.
    rest: Option<&'a str>,
    sep: u8,
}

impl<'a> Iterator for SplitOutsideQuotes<'a> {
    type Item = &'a str;

    fn next(&mut self) -> Option<&'a str> {
        let s = self.rest?;
        let bytes = s.as_bytes();
        let (mut quoted, mut angle) = (false, false);
        let mut i = 0;
        // From one byte that matters in the current state to the next, found by memchr: in a
        // quoted string `"` and `\`, inside `<…>` `>` and `"`, elsewhere the separator, `"`
        // and `<`. Each is ASCII, and no byte of a multi-byte UTF-8 character is, so a split
        // never falls inside a character.
        while i < bytes.len() {
            let rest = &bytes[i..];
            let found = if quoted {
                memchr::memchr2(b'"', b'\\', rest)
            } else if angle {
                memchr::memchr2(b'>', b'"', rest)
            } else {
                memchr::memchr3(self.sep, b'"', b'<', rest)
            };
            let Some(at) = found.map(|at| i + at) else {
                break;
            };
            i = at + 1;
            match bytes[at] {
                // An escaped byte in a quoted string is skipped.
                b'\\' => i += 1,
                b'"' => quoted = !quoted,
                b'<' => angle = true,
                b'>' => angle = false,
                _ => {
                    self.rest = Some(&s[at + 1..]);
                    return Some(&s[..at]);
                }
            }
        }
        self.rest = None;
        Some(s)
    }
}

/// Splits a comma-separated header value into its elements (empty elements dropped).
pub fn split_list(s: &str) -> impl Iterator<Item = &str> {
    split_outside_quotes(s, b',')
        .map(str::trim)
        .filter(|p| !p.is_empty())
}

/// A Via header value (RFC 3261 §20.42).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Via {
    /// Transport token, upper case (`UDP`, `TCP`, `TLS`, …).
    pub transport: String,
    /// sent-by host.
    pub host: Host,
    /// sent-by port.
    pub port: Option<u16>,
    /// Parameters (branch, received, rport, alias, …).
    pub params: Params,
}

impl Via {
    /// Parses one Via element.
    pub fn parse(s: &str) -> Result<Self, HeaderError> {
        const W: &str = "Via";
        let bad = || HeaderError::Malformed(W);
        let (proto, rest) = s
            .trim()
            .split_once(|c: char| c.is_whitespace())
            .ok_or_else(bad)?;
        let mut proto_parts = proto.split('/').map(str::trim);
        let (name, version, transport) = (
            proto_parts.next().ok_or_else(bad)?,
            proto_parts.next().ok_or_else(bad)?,
            proto_parts.next().ok_or_else(bad)?,
        );
        if !name.eq_ignore_ascii_case("SIP") || version != "2.0" || transport.is_empty() {
            return Err(bad());
        }
        let rest = rest.trim();
        let (sent_by, params) = match rest.find(';') {
            Some(i) => (rest[..i].trim(), &rest[i..]),
            None => (rest, ""),
        };
        let (host, port) = split_host_port(sent_by).ok_or_else(bad)?;
        Ok(Via {
            transport: transport.to_ascii_uppercase(),
            host,
            port,
            params: Params::parse(params, W)?,
        })
    }

    /// The branch parameter.
    pub fn branch(&self) -> Option<&str> {
        self.params.get("branch").flatten()
    }

    /// The branch parameter of a Via value, read without parsing the rest: matching a
    /// response to its client transaction needs nothing else.
    pub fn branch_of(value: &str) -> Option<&str> {
        split_outside_quotes(value, b';').skip(1).find_map(|param| {
            let (name, value) = param.split_once('=')?;
            name.trim()
                .eq_ignore_ascii_case("branch")
                .then(|| value.trim())
                .filter(|b| !b.is_empty())
        })
    }

    /// `host[:port]` as written.
    pub fn sent_by(&self) -> String {
        SentBy(self).to_string()
    }

    /// `host[:port]` as written, to write somewhere without a `String` of its own.
    pub fn sent_by_display(&self) -> impl fmt::Display + '_ {
        SentBy(self)
    }
}

/// Writes a Via's `host[:port]`.
struct SentBy<'a>(&'a Via);

impl fmt::Display for SentBy<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0.port {
            Some(p) => write!(f, "{}:{p}", self.0.host),
            None => write!(f, "{}", self.0.host),
        }
    }
}

impl fmt::Display for Via {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "SIP/2.0/{} {}{}",
            self.transport,
            SentBy(self),
            self.params
        )
    }
}

/// Splits `host[:port]`, with IPv6 in brackets.
pub fn split_host_port(s: &str) -> Option<(Host, Option<u16>)> {
    let (host, port) = if s.starts_with('[') {
        let close = s.find(']')?;
        let after = &s[close + 1..];
        let port = match after.strip_prefix(':') {
            Some(p) => Some(p.trim().parse().ok()?),
            None if after.is_empty() => None,
            None => return None,
        };
        (&s[..=close], port)
    } else {
        match s.rsplit_once(':') {
            Some((h, p)) => (h, Some(p.trim().parse().ok()?)),
            None => (s, None),
        }
    };
    Some((Host::parse(host.trim()).ok()?, port))
}

/// A name-addr or addr-spec header value: From, To, Contact, Route, Record-Route.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NameAddr {
    /// Display name without its surrounding quotes, escapes kept as received (`\"`, `\\`),
    /// so that it is written back between quotes as it is.
    pub display: Option<String>,
    /// The URI.
    pub uri: Uri,
    /// Header parameters after the URI (tag, expires, q, +sip.instance, …).
    pub params: Params,
}

impl NameAddr {
    /// Parses `"Name" <uri>;params`, `<uri>;params` or `uri;params` (RFC 3261 §20.10: in the
    /// last form, parameters belong to the header, not the URI).
    pub fn parse(s: &str, what: &'static str) -> Result<Self, HeaderError> {
        let (display, uri_text, params_text) = split_name_addr(s, what)?;
        let uri = Uri::parse(uri_text).map_err(|e| HeaderError::Uri(what, e))?;
        Ok(NameAddr {
            display: display.map(str::to_owned),
            uri,
            params: Params::parse(params_text, what)?,
        })
    }

    /// The header parameters of a name-addr value, its URI not parsed (for a value already
    /// checked with [`NameAddr::parse`], or where only a parameter matters).
    pub fn params_of(s: &str, what: &'static str) -> Result<Params, HeaderError> {
        Params::parse(split_name_addr(s, what)?.2, what)
    }

    /// The `tag` parameter.
    pub fn tag(&self) -> Option<&str> {
        self.params.get("tag").flatten()
    }

    /// The value without its header parameters: `"Name" <uri>` (a subscription's URIs, as
    /// its NOTIFYs' From and To carry them with their own tags).
    pub fn without_params(&self) -> impl fmt::Display + '_ {
        AddrOnly(self)
    }
}

/// Writes a name-addr's display name and URI, not its parameters.
struct AddrOnly<'a>(&'a NameAddr);

impl fmt::Display for AddrOnly<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Escaped already: escaping again would turn `\"` into `\\"`, which ends the string.
        if let Some(d) = &self.0.display {
            write!(f, "\"{d}\" ")?;
        }
        write!(f, "<{}>", self.0.uri)
    }
}

impl fmt::Display for NameAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}{}", AddrOnly(self), self.params)
    }
}

/// Display name (unquoted, `None` when empty), URI text and parameter text of a name-addr or
/// addr-spec value.
fn split_name_addr<'a>(
    s: &'a str,
    what: &'static str,
) -> Result<(Option<&'a str>, &'a str, &'a str), HeaderError> {
    let s = s.trim();
    if let Some(open) = find_outside_quotes(s, '<') {
        let close = s[open..].find('>').ok_or(HeaderError::Malformed(what))? + open;
        let display = unquote(s[..open].trim());
        let display = (!display.is_empty()).then_some(display);
        Ok((display, &s[open + 1..close], &s[close + 1..]))
    } else {
        Ok(match s.find(';') {
            Some(i) => (None, &s[..i], &s[i..]),
            None => (None, s, ""),
        })
    }
}

fn find_outside_quotes(s: &str, target: char) -> Option<usize> {
    let mut quoted = false;
    let mut escaped = false;
    for (i, c) in s.char_indices() {
        if escaped {
            escaped = false;
        } else if c == '\\' && quoted {
            escaped = true;
        } else if c == '"' {
            quoted = !quoted;
        } else if c == target && !quoted {
            return Some(i);
        }
    }
    None
}

/// CSeq (RFC 3261 §20.16).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CSeq {
    /// Sequence number (< 2^31 per RFC 3261 §8.1.1.5; up to u32 accepted).
    pub seq: u32,
    /// Method.
    pub method: Method,
}

impl CSeq {
    /// Parses `1234 METHOD`.
    pub fn parse(s: &str) -> Result<Self, HeaderError> {
        let bad = || HeaderError::Malformed("CSeq");
        let mut it = s.split_whitespace();
        let seq = it.next().ok_or_else(bad)?.parse().map_err(|_| bad())?;
        let method = Method::parse(it.next().ok_or_else(bad)?).ok_or_else(bad)?;
        if it.next().is_some() {
            return Err(bad());
        }
        Ok(CSeq { seq, method })
    }
}

impl fmt::Display for CSeq {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.seq, self.method)
    }
}

/// Event (RFC 6665 §8.2.1): package, optional `id`, other parameters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    /// Event package, e.g. `presence` (compared case-insensitively, RFC 6665 §8.2.1).
    pub package: String,
    /// The `id` parameter, distinguishing subscriptions in one dialog.
    pub id: Option<String>,
    /// All parameters, `id` included.
    pub params: Params,
}

impl Event {
    /// Parses `presence;id=7`.
    pub fn parse(s: &str) -> Result<Self, HeaderError> {
        let s = s.trim();
        let (package, params) = match s.find(';') {
            Some(i) => (s[..i].trim(), &s[i..]),
            None => (s, ""),
        };
        if package.is_empty() || !package.chars().all(is_token_char) {
            return Err(HeaderError::Malformed("Event"));
        }
        let params = Params::parse(params, "Event")?;
        Ok(Event {
            package: package.to_owned(),
            id: params.get_unquoted("id").map(str::to_owned),
            params,
        })
    }

    /// True for the given package name.
    pub fn is(&self, package: &str) -> bool {
        self.package.eq_ignore_ascii_case(package)
    }
}

impl fmt::Display for Event {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}{}", self.package, self.params)
    }
}

/// Subscription states (RFC 6665 §8.2.3 `substate-value`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SubState {
    /// The subscription is active.
    Active,
    /// Awaiting authorization.
    Pending,
    /// Ended.
    Terminated,
    /// An extension value.
    Extension(String),
}

/// Reasons for a terminated subscription (RFC 6665 §8.2.3 `event-reason-value`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EventReason {
    /// `deactivated`
    Deactivated,
    /// `probation`
    Probation,
    /// `rejected`
    Rejected,
    /// `timeout`
    Timeout,
    /// `giveup`
    Giveup,
    /// `noresource`
    Noresource,
    /// `invariant`
    Invariant,
    /// An extension value.
    Extension(String),
}

impl EventReason {
    fn parse(s: &str) -> Self {
        match s.to_ascii_lowercase().as_str() {
            "deactivated" => Self::Deactivated,
            "probation" => Self::Probation,
            "rejected" => Self::Rejected,
            "timeout" => Self::Timeout,
            "giveup" => Self::Giveup,
            "noresource" => Self::Noresource,
            "invariant" => Self::Invariant,
            _ => Self::Extension(s.to_owned()),
        }
    }

    fn as_str(&self) -> &str {
        match self {
            Self::Deactivated => "deactivated",
            Self::Probation => "probation",
            Self::Rejected => "rejected",
            Self::Timeout => "timeout",
            Self::Giveup => "giveup",
            Self::Noresource => "noresource",
            Self::Invariant => "invariant",
            Self::Extension(s) => s,
        }
    }
}

/// Subscription-State (RFC 6665 §8.2.3).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubscriptionState {
    /// The state.
    pub state: SubState,
    /// `expires` in seconds.
    pub expires: Option<u32>,
    /// `reason`, for terminated.
    pub reason: Option<EventReason>,
    /// `retry-after` in seconds.
    pub retry_after: Option<u32>,
}

impl SubscriptionState {
    /// Parses `active;expires=600` and the like.
    pub fn parse(s: &str) -> Result<Self, HeaderError> {
        const W: &str = "Subscription-State";
        let s = s.trim();
        let (value, params) = match s.find(';') {
            Some(i) => (s[..i].trim(), &s[i..]),
            None => (s, ""),
        };
        if value.is_empty() || !value.chars().all(is_token_char) {
            return Err(HeaderError::Malformed(W));
        }
        let state = match value.to_ascii_lowercase().as_str() {
            "active" => SubState::Active,
            "pending" => SubState::Pending,
            "terminated" => SubState::Terminated,
            _ => SubState::Extension(value.to_owned()),
        };
        let params = Params::parse(params, W)?;
        let number = |name: &str| -> Result<Option<u32>, HeaderError> {
            params
                .get_unquoted(name)
                .map(|v| v.parse().map_err(|_| HeaderError::Malformed(W)))
                .transpose()
        };
        Ok(SubscriptionState {
            state,
            expires: number("expires")?,
            reason: params.get_unquoted("reason").map(EventReason::parse),
            retry_after: number("retry-after")?,
        })
    }
}

impl SubscriptionState {
    /// The header value, built without a formatting pass (every NOTIFY carries one).
    pub fn render(&self) -> String {
        let state = match &self.state {
            SubState::Active => "active",
            SubState::Pending => "pending",
            SubState::Terminated => "terminated",
            SubState::Extension(s) => s,
        };
        let mut out = String::with_capacity(state.len() + 48);
        out.push_str(state);
        if let Some(r) = &self.reason {
            out.push_str(";reason=");
            out.push_str(r.as_str());
        }
        let mut digits = itoa::Buffer::new();
        if let Some(e) = self.expires {
            out.push_str(";expires=");
            out.push_str(digits.format(e));
        }
        if let Some(r) = self.retry_after {
            out.push_str(";retry-after=");
            out.push_str(digits.format(r));
        }
        out
    }
}

impl fmt::Display for SubscriptionState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.render())
    }
}

/// An entity-tag as carried by SIP-ETag and SIP-If-Match (RFC 3903 §11.3: a token).
pub fn parse_entity_tag(s: &str, what: &'static str) -> Result<String, HeaderError> {
    let s = s.trim();
    if s.is_empty() || !s.chars().all(is_token_char) {
        return Err(HeaderError::Malformed(what));
    }
    Ok(s.to_owned())
}

/// A list of tokens: Allow-Events, Supported, Require, Content-Encoding, Allow. An empty value
/// is an empty list (baresip sends `Supported:` with nothing after it).
pub fn parse_token_list(s: &str, what: &'static str) -> Result<Vec<String>, HeaderError> {
    split_list(s)
        .map(|t| {
            if t.chars().all(is_token_char) {
                Ok(t.to_owned())
            } else {
                Err(HeaderError::Malformed(what))
            }
        })
        .collect()
}

/// A delta-seconds value (Expires, Min-Expires, Max-Forwards).
pub fn parse_delta_seconds(s: &str, what: &'static str) -> Result<u32, HeaderError> {
    let s = s.trim();
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return Err(HeaderError::Malformed(what));
    }
    // RFC 3261 §20.19: a value too large is taken as the largest representable.
    Ok(s.parse().unwrap_or(u32::MAX))
}

/// One element of Accept / Accept-Encoding with its q-value (RFC 3261 §20.1, §20.2).
#[derive(Debug, Clone, PartialEq)]
pub struct Weighted {
    /// The media range (`type/subtype`, lower case) or content coding (lower case).
    pub value: String,
    /// Quality, 0.0 to 1.0; 1.0 when absent.
    pub q: f32,
}

/// Parses Accept or Accept-Encoding.
pub fn parse_weighted_list(s: &str, what: &'static str) -> Result<Vec<Weighted>, HeaderError> {
    split_list(s)
        .map(|item| {
            let (value, params) = match item.find(';') {
                Some(i) => (item[..i].trim(), &item[i..]),
                None => (item, ""),
            };
            if value.is_empty() || !value.chars().all(|c| is_token_char(c) || c == '/') {
                return Err(HeaderError::Malformed(what));
            }
            let params = Params::parse(params, what)?;
            let q = match params.get_unquoted("q") {
                Some(q) => q
                    .parse::<f32>()
                    .ok()
                    .filter(|q| (0.0..=1.0).contains(q))
                    .ok_or(HeaderError::Malformed(what))?,
                None => 1.0,
            };
            Ok(Weighted {
                value: value.to_ascii_lowercase(),
                q,
            })
        })
        .collect()
}

/// True if an Accept list admits `media` (`type/subtype`), honouring `*/*`, `type/*` and q=0.
pub fn accepts_media(accept: &[Weighted], media: &str) -> bool {
    let media = media.to_ascii_lowercase();
    let (mtype, _) = media.split_once('/').unwrap_or((&media, ""));
    accept.iter().any(|w| {
        w.q > 0.0
            && (w.value == media
                || w.value == "*/*"
                || w.value.strip_suffix("/*").is_some_and(|t| t == mtype))
    })
}

/// The quality an Accept list gives `media` (RFC 7231 §5.3.2): that of the most specific
/// range matching it (`type/subtype`, then `type/*`, then `*/*`); 0 when none does.
pub fn media_quality(accept: &[Weighted], media: &str) -> f32 {
    let media = media.to_ascii_lowercase();
    let (mtype, _) = media.split_once('/').unwrap_or((&media, ""));
    let exact = accept.iter().find(|w| w.value == media);
    let by_type = || {
        accept
            .iter()
            .find(|w| w.value.strip_suffix("/*").is_some_and(|t| t == mtype))
    };
    let any = || accept.iter().find(|w| w.value == "*/*");
    exact.or_else(by_type).or_else(any).map_or(0.0, |w| w.q)
}

/// The media type of `served` (in the server's order of preference) that an Accept list
/// `accept` rates highest (RFC 7231 §5.3.2), the server's order first among equals; `None`
/// when it accepts none of them (a 406).
pub fn best_media<'a>(accept: &[Weighted], served: &[&'a str]) -> Option<&'a str> {
    let mut best: Option<(f32, &'a str)> = None;
    for media in served {
        let q = media_quality(accept, media);
        if q > 0.0 && best.is_none_or(|(b, _)| q > b) {
            best = Some((q, media));
        }
    }
    best.map(|(_, m)| m)
}

/// True if an Accept-Encoding list admits `coding` (RFC 7231 §5.3.4 rules, `*` included).
pub fn accepts_coding(accept: &[Weighted], coding: &str) -> bool {
    let coding = coding.to_ascii_lowercase();
    match accept.iter().find(|w| w.value == coding) {
        Some(w) => w.q > 0.0,
        None => accept.iter().any(|w| w.value == "*" && w.q > 0.0),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_most_specific_media_range_gives_the_quality() {
        let accept = parse_weighted_list(
            "application/*;q=0.5, */*;q=0.1, application/xpidf+xml;q=0",
            "Accept",
        )
        .unwrap();
        assert_eq!(media_quality(&accept, "application/pidf+xml"), 0.5);
        assert_eq!(media_quality(&accept, "Application/XPIDF+xml"), 0.0);
        assert_eq!(media_quality(&accept, "text/plain"), 0.1);
        assert_eq!(media_quality(&[], "text/plain"), 0.0);
    }

    #[test]
    fn the_branch_is_read_alike_with_or_without_parsing_the_via() {
        for v in [
            "SIP/2.0/TCP 127.0.0.1:5060;branch=z9hG4bK.abc;rport",
            "SIP/2.0/UDP h.example ; rport ; BRANCH = z9hG4bKx ;received=1.2.3.4",
            "SIP/2.0/TCP [::1]:5061;x=\"a;branch=no\";branch=z9hG4bKq",
            "SIP/2.0/UDP h.example;rport",
            "SIP/2.0/UDP h.example;branch=",
        ] {
            let parsed = Via::parse(v).ok();
            let parsed = parsed
                .as_ref()
                .and_then(Via::branch)
                .filter(|b| !b.is_empty());
            assert_eq!(Via::branch_of(v), parsed, "{v}");
        }
        assert_eq!(
            Via::branch_of("SIP/2.0/UDP h;branch=z9hG4bK1"),
            Some("z9hG4bK1")
        );
        assert_eq!(Via::branch_of("SIP/2.0/UDP h;rport"), None);
    }

    #[test]
    fn quoted_parameter_values_are_accepted() {
        let c = NameAddr::parse(
            "<sip:alice@192.0.2.1:5060;transport=tcp>;+sip.instance=\"<urn:uuid:0a1b-2c3d>\";expires=600",
            "Contact",
        )
        .unwrap();
        assert_eq!(
            c.params.get_unquoted("+sip.instance"),
            Some("<urn:uuid:0a1b-2c3d>")
        );
        assert_eq!(c.params.get_unquoted("expires"), Some("600"));
        assert_eq!(
            c.uri.as_sip().unwrap().param("transport"),
            Some(Some("tcp"))
        );
    }

    #[test]
    fn name_addr_forms_parse() {
        let f = NameAddr::parse("\"Bob, Jr\" <sip:bob@example.org>;tag=abc", "From").unwrap();
        assert_eq!(f.display.as_deref(), Some("Bob, Jr"));
        assert_eq!(f.tag(), Some("abc"));
        let t = NameAddr::parse("sip:bob@example.org;tag=x", "To").unwrap();
        assert_eq!(t.tag(), Some("x"));
        assert!(t.uri.as_sip().unwrap().params.is_empty());
        assert!(NameAddr::parse("<sip:bob@example.org", "To").is_err());
    }

    #[test]
    fn ipv6_in_via_is_accepted() {
        let v = Via::parse("SIP/2.0/UDP [2001:db8::9]:5062;branch=z9hG4bKx;rport").unwrap();
        assert_eq!(v.host, Host::Ip("2001:db8::9".parse().unwrap()));
        assert_eq!(v.port, Some(5062));
        assert_eq!(v.branch(), Some("z9hG4bKx"));
        assert_eq!(v.params.get("rport"), Some(None));
        assert_eq!(
            v.to_string(),
            "SIP/2.0/UDP [2001:db8::9]:5062;branch=z9hG4bKx;rport"
        );
        let v = Via::parse("SIP / 2.0 / tcp host.example;branch=z9hG4bK1").unwrap_err();
        assert_eq!(v, HeaderError::Malformed("Via"));
    }

    #[test]
    fn comma_lists_respect_quotes_and_brackets() {
        let parts: Vec<_> = split_list("\"a, b\" <sip:x@y;p=1,2>, <sip:z@w>, ,sip:q@r").collect();
        assert_eq!(
            parts,
            vec!["\"a, b\" <sip:x@y;p=1,2>", "<sip:z@w>", "sip:q@r"]
        );
    }

    #[test]
    fn splitting_keeps_empty_parts_and_escaped_quotes() {
        let parts: Vec<_> = split_outside_quotes(";a=\"x\\\";y\";;b", b';').collect();
        assert_eq!(parts, vec!["", "a=\"x\\\";y\"", "", "b"]);
        assert_eq!(split_outside_quotes("", b',').collect::<Vec<_>>(), vec![""]);
        assert_eq!(
            split_outside_quotes("a,", b',').collect::<Vec<_>>(),
            vec!["a", ""]
        );
    }

    /// The splitter as first written, a character at a time: the reference for the memchr one.
    fn split_char_by_char(s: &str, sep: char) -> Vec<&str> {
        let mut parts = Vec::new();
        let mut rest = s;
        'parts: loop {
            let (mut quoted, mut angle, mut escaped) = (false, false, false);
            for (i, c) in rest.char_indices() {
                if escaped {
                    escaped = false;
                    continue;
                }
                match c {
                    '\\' if quoted => escaped = true,
                    '"' => quoted = !quoted,
                    '<' if !quoted => angle = true,
                    '>' if !quoted => angle = false,
                    c if c == sep && !quoted && !angle => {
                        parts.push(&rest[..i]);
                        rest = &rest[i + 1..];
                        continue 'parts;
                    }
                    _ => {}
                }
            }
            parts.push(rest);
            return parts;
        }
    }

    #[test]
    fn splitting_agrees_with_the_character_by_character_reference() {
        let cases = [
            "SIP/2.0/TCP 10.0.0.1:5060;branch=z9hG4bKabc;rport=5060;received=10.0.0.2",
            "\"Zoë; Ünïcødé, \\\"q\\\"\" <sip:zoë@x;lr>;tag=é;x=\"a,b\",<sip:b@y>",
            "<sip:a@x;p=\"q>\";r>;s,t",
            "a\\;b;\"c\\\\\";d\";e\"",
            "\"unterminated;x,y",
            "<unterminated;x,y",
            "\"ends in an escape\\",
            ">;<>;\"\";;",
            "é;ü,€;😀,\"😀;\"",
            "",
            ";",
            ",,",
        ];
        for case in cases {
            for sep in [';', ','] {
                assert_eq!(
                    split_outside_quotes(case, sep as u8).collect::<Vec<_>>(),
                    split_char_by_char(case, sep),
                    "{case:?} split on {sep:?}"
                );
            }
        }
    }

    #[test]
    fn a_name_addr_renders_without_its_parameters() {
        let n = NameAddr::parse("\"A \\\"q\\\"\" <sip:a@x;lr>;tag=1;x", "From").unwrap();
        assert_eq!(
            n.without_params().to_string(),
            "\"A \\\"q\\\"\" <sip:a@x;lr>"
        );
        assert_eq!(n.to_string(), format!("{};tag=1;x", n.without_params()));
        let n = NameAddr::parse("sip:b@y;tag=2", "To").unwrap();
        assert_eq!(n.without_params().to_string(), "<sip:b@y>");
    }

    #[test]
    fn name_addr_parameters_are_read_without_the_uri() {
        let p = NameAddr::params_of("\"A;b\" <sip:a@x;tag=uri>;tag=hdr;x", "To").unwrap();
        assert_eq!(p.get("tag"), Some(Some("hdr")));
        assert_eq!(p.get("x"), Some(None));
        let p = NameAddr::params_of("sip:a@x;tag=9", "To").unwrap();
        assert_eq!(p.get("tag"), Some(Some("9")));
        assert!(NameAddr::params_of("<sip:a@x;tag=1", "To").is_err());
        assert!(NameAddr::params_of("<sip:a@x>", "To").unwrap().0.is_empty());
    }

    #[test]
    fn via_prints_as_parsed() {
        let v =
            Via::parse("SIP/2.0/tcp Host.Example:5070;branch=z9hG4bK1;received=192.0.2.1").unwrap();
        assert_eq!(v.sent_by(), "Host.Example:5070");
        assert_eq!(
            v.to_string(),
            "SIP/2.0/TCP Host.Example:5070;branch=z9hG4bK1;received=192.0.2.1"
        );
    }

    #[test]
    fn subscription_state_parses_and_prints() {
        let s = SubscriptionState::parse("terminated;reason=timeout").unwrap();
        assert_eq!(s.state, SubState::Terminated);
        assert_eq!(s.reason, Some(EventReason::Timeout));
        let s = SubscriptionState::parse("Active ; expires=3600").unwrap();
        assert_eq!(s.state, SubState::Active);
        assert_eq!(s.expires, Some(3600));
        assert_eq!(s.to_string(), "active;expires=3600");
        assert!(SubscriptionState::parse("active;expires=soon").is_err());
    }

    #[test]
    fn event_keeps_its_id() {
        let e = Event::parse("Presence;id=42").unwrap();
        assert!(e.is("presence"));
        assert_eq!(e.id.as_deref(), Some("42"));
        assert!(Event::parse("").is_err());
    }

    #[test]
    fn entity_tags_min_expires_and_option_tags() {
        assert_eq!(parse_entity_tag(" a1b2 ", "SIP-ETag").unwrap(), "a1b2");
        assert!(parse_entity_tag("a b", "SIP-If-Match").is_err());
        assert_eq!(parse_delta_seconds("60", "Min-Expires").unwrap(), 60);
        assert_eq!(
            parse_delta_seconds("99999999999", "Expires").unwrap(),
            u32::MAX
        );
        assert!(parse_delta_seconds("-1", "Expires").is_err());
        assert_eq!(
            parse_token_list("", "Supported").unwrap(),
            Vec::<String>::new()
        );
        assert_eq!(
            parse_token_list("eventlist, 100rel", "Require").unwrap(),
            vec!["eventlist", "100rel"]
        );
        assert_eq!(
            parse_token_list("presence, presence.winfo", "Allow-Events").unwrap(),
            vec!["presence", "presence.winfo"]
        );
    }

    #[test]
    fn accept_and_accept_encoding_honour_q_values() {
        let a = parse_weighted_list("application/PIDF+xml;q=0.5, text/*", "Accept").unwrap();
        assert!(accepts_media(&a, "application/pidf+xml"));
        assert!(accepts_media(&a, "text/plain"));
        assert!(!accepts_media(&a, "application/rlmi+xml"));
        let e =
            parse_weighted_list("gzip;q=1.0, Deflate;q=0.3, identity", "Accept-Encoding").unwrap();
        assert!(accepts_coding(&e, "deflate"));
        let e = parse_weighted_list("*;q=0.1, deflate;q=0", "Accept-Encoding").unwrap();
        assert!(!accepts_coding(&e, "deflate"));
        assert!(accepts_coding(&e, "gzip"));
        assert_eq!(
            parse_token_list("deflate", "Content-Encoding").unwrap(),
            vec!["deflate"]
        );
    }

    #[test]
    fn cseq_parses_extension_methods() {
        let c = CSeq::parse("7 FOO").unwrap();
        assert_eq!(c.method, Method::Extension("FOO".into()));
        assert!(CSeq::parse("x SUBSCRIBE").is_err());
        assert!(CSeq::parse("1").is_err());
    }
}
