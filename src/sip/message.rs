//! SIP requests and responses as values: parsing from bytes and writing back to bytes.
//!
//! Owns: `Method` (extension methods included), `Headers`, `Request`, `Response`, `Message`,
//! `parse`, serialisation with a computed Content-Length, and the standard reason phrases.
//! Bodies are raw bytes from end to end: never re-encoded, so binary (deflated) bodies survive.
//! Must not: decide anything about a request (see `dispatcher`).

use std::borrow::Cow;
use std::fmt;

use bytes::Bytes;

use super::headers::{parse_delta_seconds, split_list, CSeq, Event, HeaderError, NameAddr, Via};
use super::uri::{Uri, UriError};
use super::wire::{self, is_token_char, WireError};

/// A SIP method (RFC 3261 §7.1, with the event and publication extensions and any extension
/// token).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Method {
    /// REGISTER
    Register,
    /// SUBSCRIBE (RFC 6665)
    Subscribe,
    /// NOTIFY (RFC 6665)
    Notify,
    /// PUBLISH (RFC 3903)
    Publish,
    /// OPTIONS
    Options,
    /// INVITE
    Invite,
    /// ACK
    Ack,
    /// BYE
    Bye,
    /// CANCEL
    Cancel,
    /// MESSAGE (RFC 3428)
    Message,
    /// INFO (RFC 6086)
    Info,
    /// PRACK (RFC 3262)
    Prack,
    /// REFER (RFC 3515)
    Refer,
    /// UPDATE (RFC 3311)
    Update,
    /// Any other method token.
    Extension(String),
}

impl Method {
    /// Reads a method token; `None` if it is not a token. Methods are case-sensitive.
    pub fn parse(s: &str) -> Option<Self> {
        if s.is_empty() || !s.chars().all(is_token_char) {
            return None;
        }
        Some(match s {
            "REGISTER" => Self::Register,
            "SUBSCRIBE" => Self::Subscribe,
            "NOTIFY" => Self::Notify,
            "PUBLISH" => Self::Publish,
            "OPTIONS" => Self::Options,
            "INVITE" => Self::Invite,
            "ACK" => Self::Ack,
            "BYE" => Self::Bye,
            "CANCEL" => Self::Cancel,
            "MESSAGE" => Self::Message,
            "INFO" => Self::Info,
            "PRACK" => Self::Prack,
            "REFER" => Self::Refer,
            "UPDATE" => Self::Update,
            other => Self::Extension(other.to_owned()),
        })
    }

    /// Its metrics label: the token, or `other` for an extension method (a label takes no
    /// value a client chooses).
    pub fn label(&self) -> &'static str {
        match self {
            Self::Extension(_) => "other",
            Self::Register => "REGISTER",
            Self::Subscribe => "SUBSCRIBE",
            Self::Notify => "NOTIFY",
            Self::Publish => "PUBLISH",
            Self::Options => "OPTIONS",
            Self::Invite => "INVITE",
            Self::Ack => "ACK",
            Self::Bye => "BYE",
            Self::Cancel => "CANCEL",
            Self::Message => "MESSAGE",
            Self::Info => "INFO",
            Self::Prack => "PRACK",
            Self::Refer => "REFER",
            Self::Update => "UPDATE",
        }
    }

    /// The method token.
    pub fn as_str(&self) -> &str {
        match self {
            Self::Extension(s) => s,
            known => known.label(),
        }
    }
}

impl fmt::Display for Method {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One header line, name canonical.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    /// Canonical name (compact forms expanded).
    pub name: Cow<'static, str>,
    /// Value, unfolded and trimmed.
    pub value: String,
}

/// Header lines in order of arrival.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Headers(pub Vec<Header>);

impl Headers {
    /// The first value of a header.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|h| h.name.eq_ignore_ascii_case(name))
            .map(|h| h.value.as_str())
    }

    /// Every value of a header, in order (each line; not split on commas).
    pub fn get_all<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.0
            .iter()
            .filter(move |h| h.name.eq_ignore_ascii_case(name))
            .map(|h| h.value.as_str())
    }

    /// Every element of a comma-list header across all its lines.
    pub fn list<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.get_all(name).flat_map(split_list)
    }

    /// True if the header is present at all (even with an empty value).
    pub fn has(&self, name: &str) -> bool {
        self.0.iter().any(|h| h.name.eq_ignore_ascii_case(name))
    }

    /// Appends a header.
    pub fn push(&mut self, name: impl Into<Cow<'static, str>>, value: impl Into<String>) {
        self.0.push(Header {
            name: name.into(),
            value: value.into(),
        });
    }

    /// Removes every line of a header.
    pub fn remove(&mut self, name: &str) {
        self.0.retain(|h| !h.name.eq_ignore_ascii_case(name));
    }
}

/// A SIP request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    /// Method from the request line.
    pub method: Method,
    /// Request-URI.
    pub uri: Uri,
    /// Headers.
    pub headers: Headers,
    /// Body, raw.
    pub body: Bytes,
}

/// A SIP response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    /// Status code, 100–699.
    pub status: u16,
    /// Reason phrase (the standard ones are not copied).
    pub reason: Cow<'static, str>,
    /// Headers.
    pub headers: Headers,
    /// Body, raw.
    pub body: Bytes,
}

/// Either kind of message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Message {
    /// A request.
    Request(Request),
    /// A response.
    Response(Response),
}

/// Why bytes are not a SIP message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    /// Line level problem.
    #[error(transparent)]
    Wire(#[from] WireError),
    /// No blank line ends the head.
    #[error("incomplete message head")]
    IncompleteHead,
    /// Content-Length promises more body than there is.
    #[error("body shorter than Content-Length")]
    TruncatedBody,
    /// The start line is neither a request line nor a status line.
    #[error("malformed start line")]
    BadStartLine,
    /// Version other than SIP/2.0.
    #[error("unsupported SIP version")]
    BadVersion,
    /// The Request-URI is invalid.
    #[error("invalid Request-URI: {0}")]
    BadRequestUri(UriError),
}

/// A message that failed to parse, with its headers when they could be read, so a 400 can
/// still be answered to the right place.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseFailure {
    /// What went wrong.
    pub error: ParseError,
    /// The headers, if the head could be split.
    pub headers: Option<Headers>,
    /// The start line looked like a request line.
    pub looks_like_request: bool,
}

/// Parses one complete message (a datagram, or a frame cut by the stream framer).
/// Bytes after Content-Length are ignored (RFC 3261 §18.3); without Content-Length the body
/// runs to the end of the buffer.
pub fn parse(buf: &[u8]) -> Result<Message, ParseFailure> {
    let fail = |error: ParseError, headers: Option<Headers>, req: bool| ParseFailure {
        error,
        headers,
        looks_like_request: req,
    };
    let head_end =
        wire::head_len(buf).ok_or_else(|| fail(ParseError::IncompleteHead, None, false))?;
    let head = wire::split_head(&buf[..head_end]).map_err(|e| fail(e.into(), None, false))?;
    let looks_like_request = !head.start_line.starts_with("SIP/");
    let content_length = wire::content_length(&head.headers);
    let wire::Head {
        start_line,
        headers: raw,
    } = head;
    let headers = Headers(
        raw.into_iter()
            .map(|(name, value)| Header { name, value })
            .collect(),
    );
    let fail_h = |e: ParseError| fail(e, Some(headers.clone()), looks_like_request);
    let rest = &buf[head_end..];
    let body = match content_length.map_err(|e| fail_h(e.into()))? {
        Some(n) if n > rest.len() => return Err(fail_h(ParseError::TruncatedBody)),
        Some(n) => Bytes::copy_from_slice(&rest[..n]),
        None => Bytes::copy_from_slice(rest),
    };
    if looks_like_request {
        let mut parts = start_line.split(' ');
        let (m, u, v) = match (parts.next(), parts.next(), parts.next(), parts.next()) {
            (Some(m), Some(u), Some(v), None) => (m, u, v),
            _ => return Err(fail_h(ParseError::BadStartLine)),
        };
        let method = Method::parse(m).ok_or_else(|| fail_h(ParseError::BadStartLine))?;
        if v != "SIP/2.0" {
            return Err(fail_h(ParseError::BadVersion));
        }
        let uri = Uri::parse(u).map_err(|e| fail_h(ParseError::BadRequestUri(e)))?;
        Ok(Message::Request(Request {
            method,
            uri,
            headers,
            body,
        }))
    } else {
        let mut parts = start_line.splitn(3, ' ');
        let (v, code, reason) = (parts.next(), parts.next(), parts.next().unwrap_or(""));
        if v != Some("SIP/2.0") {
            return Err(fail_h(ParseError::BadVersion));
        }
        let status = code
            .filter(|c| c.len() == 3)
            .and_then(|c| c.parse::<u16>().ok())
            .filter(|s| (100..700).contains(s))
            .ok_or_else(|| fail_h(ParseError::BadStartLine))?;
        Ok(Message::Response(Response {
            status,
            reason: Cow::Owned(reason.to_owned()),
            headers,
            body,
        }))
    }
}

/// Typed access shared by requests and responses.
pub trait HeaderAccess {
    /// The headers.
    fn headers(&self) -> &Headers;

    /// All Via elements, topmost first.
    fn vias(&self) -> Result<Vec<Via>, HeaderError> {
        self.headers().list("Via").map(Via::parse).collect()
    }
    /// The topmost Via.
    fn top_via(&self) -> Result<Via, HeaderError> {
        let first = self
            .headers()
            .list("Via")
            .next()
            .ok_or(HeaderError::Malformed("Via"))?;
        Via::parse(first)
    }
    /// From.
    fn header_from(&self) -> Result<NameAddr, HeaderError> {
        single(self.headers(), "From").and_then(|v| NameAddr::parse(v, "From"))
    }
    /// To.
    fn header_to(&self) -> Result<NameAddr, HeaderError> {
        single(self.headers(), "To").and_then(|v| NameAddr::parse(v, "To"))
    }
    /// Call-ID.
    fn call_id(&self) -> Result<&str, HeaderError> {
        let v = single(self.headers(), "Call-ID")?;
        if v.is_empty() || v.chars().any(char::is_whitespace) {
            return Err(HeaderError::Malformed("Call-ID"));
        }
        Ok(v)
    }
    /// CSeq.
    fn cseq(&self) -> Result<CSeq, HeaderError> {
        single(self.headers(), "CSeq").and_then(CSeq::parse)
    }
    /// Event, if present.
    fn event(&self) -> Option<Result<Event, HeaderError>> {
        self.headers().get("Event").map(Event::parse)
    }
    /// Expires, if present.
    fn expires(&self) -> Option<Result<u32, HeaderError>> {
        self.headers()
            .get("Expires")
            .map(|v| parse_delta_seconds(v, "Expires"))
    }
}

fn single<'a>(h: &'a Headers, name: &'static str) -> Result<&'a str, HeaderError> {
    let mut it = h.get_all(name);
    match (it.next(), it.next()) {
        (Some(v), None) => Ok(v),
        _ => Err(HeaderError::Malformed(name)),
    }
}

impl HeaderAccess for Request {
    fn headers(&self) -> &Headers {
        &self.headers
    }
}

impl HeaderAccess for Response {
    fn headers(&self) -> &Headers {
        &self.headers
    }
}

/// A buffer for a message with these headers and body, sized so that writing it never
/// regrows (the start line is reckoned at `start_line` bytes).
fn message_buffer(start_line: usize, headers: &Headers, body: &[u8]) -> Vec<u8> {
    let head: usize = headers
        .0
        .iter()
        .map(|h| h.name.len() + h.value.len() + 4)
        .sum();
    Vec::with_capacity(start_line + head + 40 + body.len())
}

/// Appends headers and body after the start line; Content-Length is always computed from the
/// body. Plain byte copies: this runs for every message sent, and `write!` cost a formatting
/// pass per header line.
fn finish_message(mut out: Vec<u8>, headers: &Headers, body: &[u8]) -> Vec<u8> {
    for h in headers.0.iter().filter(|h| h.name != "Content-Length") {
        out.extend_from_slice(h.name.as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(h.value.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"Content-Length: ");
    out.extend_from_slice(itoa::Buffer::new().format(body.len()).as_bytes());
    out.extend_from_slice(b"\r\n\r\n");
    out.extend_from_slice(body);
    out
}

impl Request {
    /// The request as bytes.
    pub fn to_bytes(&self) -> Vec<u8> {
        use std::io::Write;
        let method = self.method.as_str();
        let mut out = message_buffer(method.len() + 96, &self.headers, &self.body);
        out.extend_from_slice(method.as_bytes());
        out.push(b' ');
        // Writing into a Vec cannot fail.
        let _ = write!(out, "{}", self.uri);
        out.extend_from_slice(b" SIP/2.0\r\n");
        finish_message(out, &self.headers, &self.body)
    }
}

impl Response {
    /// A response to `req` per RFC 3261 §8.2.6.2: Via, From, To, Call-ID and CSeq copied.
    /// A To-tag is added when the request's To has none and `to_tag` is given.
    pub fn to_request(req: &Request, status: u16, to_tag: Option<&str>) -> Self {
        Self::from_headers(&req.headers, status, to_tag)
    }

    /// Same as [`Response::to_request`], from headers alone (for requests that failed to parse).
    pub fn from_headers(h: &Headers, status: u16, to_tag: Option<&str>) -> Self {
        // The five copied headers and a few the caller adds, without regrowing.
        let mut headers = Headers(Vec::with_capacity(8));
        for name in ["Via", "From", "To", "Call-ID", "CSeq"] {
            for value in h.get_all(name) {
                let value = match (name, to_tag) {
                    ("To", Some(tag)) if status > 100 && !has_tag(value) => {
                        format!("{value};tag={tag}")
                    }
                    _ => value.to_owned(),
                };
                headers.push(name, value);
            }
        }
        Response {
            status,
            reason: Cow::Borrowed(reason_phrase(status)),
            headers,
            body: Bytes::new(),
        }
    }

    /// The response as bytes.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = message_buffer(16 + self.reason.len(), &self.headers, &self.body);
        out.extend_from_slice(b"SIP/2.0 ");
        out.extend_from_slice(itoa::Buffer::new().format(self.status).as_bytes());
        out.push(b' ');
        out.extend_from_slice(self.reason.as_bytes());
        out.extend_from_slice(b"\r\n");
        finish_message(out, &self.headers, &self.body)
    }
}

/// The To value carries a tag. Only its parameters are read: a response copies the request's
/// To, which need not be parsed as a whole for that (and was, if the request got this far).
fn has_tag(to_value: &str) -> bool {
    NameAddr::params_of(to_value, "To").is_ok_and(|p| p.get("tag").flatten().is_some())
}

/// The RFC 3261 §21 (and extensions') reason phrase for a status code.
pub fn reason_phrase(status: u16) -> &'static str {
    match status {
        100 => "Trying",
        200 => "OK",
        202 => "Accepted",
        400 => "Bad Request",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        406 => "Not Acceptable",
        408 => "Request Timeout",
        412 => "Conditional Request Failed",
        413 => "Request Entity Too Large",
        415 => "Unsupported Media Type",
        416 => "Unsupported URI Scheme",
        420 => "Bad Extension",
        421 => "Extension Required",
        423 => "Interval Too Brief",
        480 => "Temporarily Unavailable",
        481 => "Call/Transaction Does Not Exist",
        482 => "Loop Detected",
        483 => "Too Many Hops",
        489 => "Bad Event",
        500 => "Server Internal Error",
        501 => "Not Implemented",
        503 => "Service Unavailable",
        504 => "Server Time-out",
        505 => "Version Not Supported",
        513 => "Message Too Large",
        _ => match status / 100 {
            1 => "Progress",
            2 => "OK",
            3 => "Redirect",
            4 => "Client Error",
            5 => "Server Error",
            _ => "Global Failure",
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const OPTIONS: &[u8] = b"OPTIONS sip:example.org SIP/2.0\r\n\
v: SIP/2.0/UDP 10.0.0.1:5060;branch=z9hG4bK1, SIP/2.0/TCP [::1]:5070;branch=z9hG4bK0\r\n\
f: <sip:a@example.org>;tag=9\r\n\
t: <sip:example.org>\r\n\
i: abc@10.0.0.1\r\n\
CSeq: 1 OPTIONS\r\n\
Max-Forwards: 70\r\n\
l: 4\r\n\r\nbodyEXTRA";

    fn request(bytes: &[u8]) -> Request {
        match parse(bytes).unwrap() {
            Message::Request(r) => r,
            Message::Response(_) => panic!("expected a request"),
        }
    }

    #[test]
    fn request_parses_with_compact_headers_and_trailing_bytes_are_ignored() {
        let r = request(OPTIONS);
        assert_eq!(r.method, Method::Options);
        assert_eq!(r.vias().unwrap().len(), 2);
        assert_eq!(r.call_id().unwrap(), "abc@10.0.0.1");
        assert_eq!(r.header_from().unwrap().tag(), Some("9"));
        assert_eq!(&r.body[..], b"body");
    }

    #[test]
    fn extension_methods_are_accepted() {
        let r = request(b"FOOBAR sip:x@y SIP/2.0\r\nCSeq: 1 FOOBAR\r\n\r\n");
        assert_eq!(r.method, Method::Extension("FOOBAR".into()));
        assert_eq!(r.cseq().unwrap().method, Method::Extension("FOOBAR".into()));
    }

    #[test]
    fn ipv6_request_uri_is_accepted() {
        let r = request(b"OPTIONS sip:alice@[2001:db8::1]:5060 SIP/2.0\r\n\r\n");
        assert_eq!(r.uri.to_string(), "sip:alice@[2001:db8::1]:5060");
    }

    #[test]
    fn subscription_state_is_readable_from_a_parsed_message() {
        let r = request(
            b"NOTIFY sip:a@b SIP/2.0\r\nSubscription-State: terminated;reason=noresource\r\n\r\n",
        );
        let s = super::super::headers::SubscriptionState::parse(
            r.headers.get("Subscription-State").unwrap(),
        )
        .unwrap();
        assert_eq!(
            s.reason,
            Some(super::super::headers::EventReason::Noresource)
        );
    }

    #[test]
    fn binary_bodies_survive_a_round_trip_byte_for_byte() {
        let body: Vec<u8> = (0u8..=255).chain([0, 13, 10, 13, 10]).collect();
        let mut msg =
            b"PUBLISH sip:a@b SIP/2.0\r\nContent-Encoding: deflate\r\nContent-Length: 261\r\n\r\n"
                .to_vec();
        msg.extend_from_slice(&body);
        let r = request(&msg);
        assert_eq!(&r.body[..], &body[..]);
        let again = request(&r.to_bytes());
        assert_eq!(&again.body[..], &body[..]);
    }

    #[test]
    fn truncated_body_and_bad_start_lines_fail_with_headers_kept() {
        let f = parse(b"OPTIONS sip:a@b SIP/2.0\r\nVia: x\r\nContent-Length: 10\r\n\r\nabc")
            .unwrap_err();
        assert_eq!(f.error, ParseError::TruncatedBody);
        assert!(f.headers.is_some());
        let f = parse(b"OPTIONS sip:a@b SIP/3.0\r\n\r\n").unwrap_err();
        assert_eq!(f.error, ParseError::BadVersion);
        let f = parse(b"SIP/2.0 99 Weird\r\n\r\n").unwrap_err();
        assert_eq!(f.error, ParseError::BadStartLine);
    }

    #[test]
    fn response_copies_dialog_headers_and_adds_a_to_tag() {
        let r = request(OPTIONS);
        let resp = Response::to_request(&r, 200, Some("srv1"));
        assert_eq!(resp.headers.get("To"), Some("<sip:example.org>;tag=srv1"));
        assert_eq!(resp.headers.get_all("Via").count(), 1);
        let text = String::from_utf8(resp.to_bytes()).unwrap();
        assert!(text.starts_with("SIP/2.0 200 OK\r\n"));
        assert!(text.ends_with("Content-Length: 0\r\n\r\n"));
    }
}
