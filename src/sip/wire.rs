//! Wire level: where a message starts and ends, and the header-line normalisation that runs
//! before anything is handed to rsip.
//!
//! Owns: finding the end of the head, reading Content-Length (full and compact form) for stream
//! framing, unfolding continuation lines (RFC 3261 §7.3.1), trimming `Name : value` spacing,
//! expanding compact header names (RFC 3261 §7.3.3, RFC 6665 §8.2.1 `o`/`u`), and canonical
//! header-name spelling. Must not: interpret header values beyond Content-Length.

use std::borrow::Cow;

/// What went wrong while splitting a head into lines.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WireError {
    /// The head is not UTF-8 text.
    #[error("message head is not UTF-8")]
    NotUtf8,
    /// The message has no start line.
    #[error("empty message")]
    Empty,
    /// A header line has no colon or an empty or invalid name.
    #[error("malformed header line")]
    BadHeaderLine,
    /// A continuation line came before any header.
    #[error("continuation line before the first header")]
    StrayContinuation,
    /// Content-Length is not a number, or two different values were given.
    #[error("invalid Content-Length")]
    BadContentLength,
    /// Too many header lines.
    #[error("too many header lines")]
    TooManyHeaders,
}

/// Most header lines accepted in one message; protects against a head made of tiny lines.
pub const MAX_HEADER_LINES: usize = 256;

/// Returns the length of the head including the blank line that ends it, if complete.
/// Accepts CRLF (RFC 3261) and, leniently, bare LF line ends.
pub fn head_len(buf: &[u8]) -> Option<usize> {
    memchr::memchr_iter(b'\n', buf).find_map(|i| match buf.get(i + 1) {
        Some(b'\n') => Some(i + 2),
        Some(b'\r') if buf.get(i + 2) == Some(&b'\n') => Some(i + 3),
        _ => None,
    })
}

/// Expands a compact header name to its full form (RFC 3261 §7.3.3 and extensions).
pub fn expand_compact(name: &str) -> Option<&'static str> {
    if name.len() != 1 {
        return None;
    }
    Some(match name.as_bytes()[0].to_ascii_lowercase() {
        b'i' => "Call-ID",
        b'm' => "Contact",
        b'e' => "Content-Encoding",
        b'l' => "Content-Length",
        b'c' => "Content-Type",
        b'f' => "From",
        b's' => "Subject",
        b'k' => "Supported",
        b't' => "To",
        b'v' => "Via",
        b'o' => "Event",
        b'u' => "Allow-Events",
        b'r' => "Refer-To",
        b'b' => "Referred-By",
        b'x' => "Session-Expires",
        b'a' => "Accept-Contact",
        b'j' => "Reject-Contact",
        b'd' => "Request-Disposition",
        b'y' => "Identity",
        _ => return None,
    })
}

/// The canonical spelling of well-known header names, so lookups and output are uniform.
/// Kept in byte order for exact-match binary search.
const CANONICAL: &[&str] = &[
    "Accept",
    "Accept-Encoding",
    "Accept-Language",
    "Allow",
    "Allow-Events",
    "CSeq",
    "Call-ID",
    "Contact",
    "Content-Disposition",
    "Content-Encoding",
    "Content-Length",
    "Content-Type",
    "Event",
    "Expires",
    "From",
    "Max-Forwards",
    "Min-Expires",
    "Proxy-Require",
    "Record-Route",
    "Require",
    "Retry-After",
    "Route",
    "SIP-ETag",
    "SIP-If-Match",
    "Server",
    "Subscription-State",
    "Supported",
    "To",
    "Unsupported",
    "User-Agent",
    "Via",
];

/// The name a header is stored under: compact forms expanded, known names canonically spelt,
/// unknown names as received.
pub fn canonical_name(name: &str) -> Cow<'static, str> {
    if let Some(full) = expand_compact(name) {
        return Cow::Borrowed(full);
    }
    // Most clients spell names canonically: an exact match first, by binary search (the
    // table is sorted by byte order), then a case-insensitive scan.
    if let Ok(i) = CANONICAL.binary_search(&name) {
        return Cow::Borrowed(CANONICAL[i]);
    }
    CANONICAL
        .iter()
        .find(|known| known.eq_ignore_ascii_case(name))
        .map(|known| Cow::Borrowed(*known))
        .unwrap_or_else(|| Cow::Owned(name.to_owned()))
}

/// RFC 3261 §25.1 `token` characters.
pub fn is_token_char(c: char) -> bool {
    c.is_ascii() && is_token_byte(c as u8)
}

/// RFC 3261 §25.1 `token` characters, as bytes (every one is ASCII).
pub fn is_token_byte(b: u8) -> bool {
    matches!(b, b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'-' | b'.' | b'!' | b'%' | b'*' | b'_' | b'+' | b'`' | b'\'' | b'~')
}

/// A head split into its start line and normalised `(name, value)` header pairs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Head<'a> {
    /// The request or status line, without line end.
    pub start_line: &'a str,
    /// Headers in order, names canonical, values trimmed and unfolded.
    pub headers: Vec<(Cow<'static, str>, String)>,
}

/// Splits a head (everything before the body) into start line and normalised headers.
pub fn split_head(head: &[u8]) -> Result<Head<'_>, WireError> {
    let text = std::str::from_utf8(head).map_err(|_| WireError::NotUtf8)?;
    // At most one header per line: the list is sized once instead of regrowing.
    let line_ends = memchr::memchr_iter(b'\n', head).count();
    // A head ends with a blank line; leading blank lines are keep-alive residue.
    let mut lines = line_spans(head)
        .map(|span| &text[span])
        .skip_while(|l| l.is_empty());
    let start_line = lines.next().ok_or(WireError::Empty)?;
    let mut headers: Vec<(Cow<'static, str>, String)> =
        Vec::with_capacity(line_ends.min(MAX_HEADER_LINES));
    for line in lines {
        let bytes = line.as_bytes();
        let Some(&first) = bytes.first() else {
            break;
        };
        if first == b' ' || first == b'\t' {
            // RFC 3261 §7.3.1: a continuation line is folded into the previous value with a
            // single space.
            let (_, value) = headers.last_mut().ok_or(WireError::StrayContinuation)?;
            let more = line.trim();
            if !more.is_empty() {
                if !value.is_empty() {
                    value.push(' ');
                }
                value.push_str(more);
            }
            continue;
        }
        if headers.len() >= MAX_HEADER_LINES {
            return Err(WireError::TooManyHeaders);
        }
        let colon = memchr::memchr(b':', bytes).ok_or(WireError::BadHeaderLine)?;
        // RFC 3261 §7.3.1 allows whitespace between the name and the colon.
        let name_end = bytes[..colon]
            .iter()
            .rposition(|b| *b != b' ' && *b != b'\t')
            .map_or(0, |last| last + 1);
        let name = &bytes[..name_end];
        if name.is_empty() || !name.iter().all(|b| is_token_byte(*b)) {
            return Err(WireError::BadHeaderLine);
        }
        // Both ends are ASCII (the colon, and the name's last token byte), so these are
        // character boundaries.
        let (name, value) = (&line[..name.len()], &line[colon + 1..]);
        headers.push((canonical_name(name), value.trim().to_owned()));
    }
    Ok(Head {
        start_line,
        headers,
    })
}

/// Where the lines of `bytes` lie: split at each `\n`, a `\r` before it left out (the spans
/// of `split('\n')` with the `\r` stripped), line ends found by `memchr`. Every bound is a
/// line end or an end of `bytes`, so a `str` may be sliced at them.
fn line_spans(bytes: &[u8]) -> impl Iterator<Item = std::ops::Range<usize>> + '_ {
    let mut start = 0;
    memchr::memchr_iter(b'\n', bytes)
        .chain(std::iter::once(bytes.len()))
        .map(move |end| {
            let line = start..end;
            start = end + 1;
            if bytes[line.clone()].ends_with(b"\r") {
                line.start..line.end - 1
            } else {
                line
            }
        })
}

/// The Content-Length of a head, if present. Several equal values are accepted; different
/// values are an error (request smuggling defence).
pub fn content_length(headers: &[(Cow<'static, str>, String)]) -> Result<Option<usize>, WireError> {
    let mut found: Option<usize> = None;
    for (name, value) in headers {
        if name != "Content-Length" {
            continue;
        }
        let v = value.trim();
        if v.is_empty() || v.len() > 10 || !v.bytes().all(|b| b.is_ascii_digit()) {
            return Err(WireError::BadContentLength);
        }
        let n: usize = v.parse().map_err(|_| WireError::BadContentLength)?;
        match found {
            Some(prev) if prev != n => return Err(WireError::BadContentLength),
            _ => found = Some(n),
        }
    }
    Ok(found)
}

/// Content-Length read straight from a head's bytes, without splitting it into headers (the
/// stream framer's fast path). Same rules as [`content_length`]: several equal values are
/// accepted, different or invalid ones are an error.
pub fn scan_content_length(head: &[u8]) -> Result<Option<usize>, WireError> {
    let mut found: Option<usize> = None;
    let mut lines = line_spans(head).map(|span| &head[span]).skip(1).peekable();
    while let Some(line) = lines.next() {
        let Some(colon) = memchr::memchr(b':', line) else {
            continue;
        };
        let name = line[..colon].trim_ascii_end();
        if !(name.eq_ignore_ascii_case(b"content-length") || name.eq_ignore_ascii_case(b"l")) {
            continue;
        }
        let mut value = line[colon + 1..].trim_ascii();
        // A value folded onto the next line (RFC 3261 §7.3.1).
        if value.is_empty() {
            if let Some(next) = lines
                .peek()
                .filter(|l| l.starts_with(b" ") || l.starts_with(b"\t"))
            {
                value = next.trim_ascii();
            }
        }
        if value.is_empty() || value.len() > 10 || !value.iter().all(u8::is_ascii_digit) {
            return Err(WireError::BadContentLength);
        }
        let n = value
            .iter()
            .fold(0usize, |acc, d| acc * 10 + usize::from(d - b'0'));
        match found {
            Some(prev) if prev != n => return Err(WireError::BadContentLength),
            _ => found = Some(n),
        }
    }
    Ok(found)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn head_len_finds_crlf_and_lf_blank_lines() {
        assert_eq!(head_len(b"A\r\nB: c\r\n\r\nbody"), Some(11));
        assert_eq!(head_len(b"A\nB: c\n\nbody"), Some(8));
        assert_eq!(head_len(b"A\r\nB: c\r\n"), None);
    }

    #[test]
    fn lines_end_at_lf_with_or_without_cr() {
        let spans = |b: &'static [u8]| {
            line_spans(b)
                .map(|r| std::str::from_utf8(&b[r]).unwrap())
                .collect::<Vec<_>>()
        };
        assert_eq!(spans(b"a\r\nb\nc\r\n\r\n"), vec!["a", "b", "c", "", ""]);
        assert_eq!(spans(b""), vec![""]);
        assert_eq!(spans(b"\r"), vec![""]);
        assert_eq!(spans(b"x\r\r\ny"), vec!["x\r", "y"]);
        let head = split_head(b"\r\n\nSIP/2.0 200 OK\nVia: a\r\nTo : \xc3\xa9\r\n\r\n").unwrap();
        assert_eq!(head.start_line, "SIP/2.0 200 OK");
        assert_eq!(
            head.headers,
            vec![
                ("Via".into(), "a".to_owned()),
                ("To".into(), "é".to_owned())
            ]
        );
    }

    #[test]
    fn folded_header_lines_are_unfolded() {
        let head =
            split_head(b"OPTIONS sip:a@b SIP/2.0\r\nSubject: one\r\n  two\r\n\tthree\r\n\r\n")
                .unwrap();
        assert_eq!(
            head.headers,
            vec![("Subject".into(), "one two three".into())]
        );
    }

    #[test]
    fn space_before_colon_is_accepted() {
        let head = split_head(b"OPTIONS sip:a@b SIP/2.0\r\nCall-ID  : abc\r\n\r\n").unwrap();
        assert_eq!(head.headers, vec![("Call-ID".into(), "abc".into())]);
    }

    #[test]
    fn every_compact_form_expands() {
        let pairs = [
            ("i", "Call-ID"),
            ("m", "Contact"),
            ("e", "Content-Encoding"),
            ("l", "Content-Length"),
            ("c", "Content-Type"),
            ("f", "From"),
            ("t", "To"),
            ("v", "Via"),
            ("s", "Subject"),
            ("k", "Supported"),
            ("o", "Event"),
            ("u", "Allow-Events"),
        ];
        for (compact, full) in pairs {
            assert_eq!(canonical_name(compact), full);
            assert_eq!(canonical_name(&compact.to_uppercase()), full);
        }
        assert_eq!(canonical_name("call-id"), "Call-ID");
        assert_eq!(canonical_name("X-Custom"), "X-Custom");
    }

    #[test]
    fn content_length_is_read_from_compact_form_and_conflicts_are_rejected() {
        let head = split_head(b"SIP/2.0 200 OK\r\nl: 12\r\n\r\n").unwrap();
        assert_eq!(content_length(&head.headers), Ok(Some(12)));
        let head = split_head(b"SIP/2.0 200 OK\r\nl: 12\r\nContent-Length: 13\r\n\r\n").unwrap();
        assert_eq!(
            content_length(&head.headers),
            Err(WireError::BadContentLength)
        );
        let head = split_head(b"SIP/2.0 200 OK\r\nContent-Length: -1\r\n\r\n").unwrap();
        assert_eq!(
            content_length(&head.headers),
            Err(WireError::BadContentLength)
        );
    }

    #[test]
    fn the_canonical_table_is_sorted_for_binary_search() {
        assert!(CANONICAL.windows(2).all(|w| w[0] < w[1]));
    }

    #[test]
    fn content_length_scan_agrees_with_the_full_parse() {
        for head in [
            &b"A sip:x SIP/2.0\r\nl: 12\r\n\r\n"[..],
            b"A sip:x SIP/2.0\r\nContent-Length : 7\r\nX: y\r\n\r\n",
            b"A sip:x SIP/2.0\r\nContent-Length:\r\n 9\r\n\r\n",
            b"A sip:x SIP/2.0\r\nVia: x\r\n\r\n",
            b"A sip:x SIP/2.0\r\nl: 1\r\nContent-Length: 2\r\n\r\n",
            b"A sip:x SIP/2.0\r\nContent-Length: 1x\r\n\r\n",
        ] {
            let full = split_head(head)
                .map_err(|_| ())
                .and_then(|h| content_length(&h.headers).map_err(|_| ()));
            assert_eq!(
                scan_content_length(head).map_err(|_| ()),
                full,
                "{}",
                String::from_utf8_lossy(head)
            );
        }
    }

    #[test]
    fn bad_header_lines_are_errors() {
        assert_eq!(
            split_head(b"A sip:a SIP/2.0\r\nno colon here\r\n\r\n"),
            Err(WireError::BadHeaderLine)
        );
        assert_eq!(
            split_head(b"A sip:a SIP/2.0\r\n continuation\r\n\r\n"),
            Err(WireError::StrayContinuation)
        );
    }
}
