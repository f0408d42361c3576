//! The resource list model: the members of one list subscription, from a request-contained
//! list (RFC 5367) or a server-known list (`rls.list_query`), and their stored form.
//!
//! Owns: [`Member`], reading a list SUBSCRIBE's body into members ([`request_list`]: content
//! checks, bounded inflating, parsing, duplicates collapsed by AOR), turning list-query rows
//! into members, and the one-line-per-member text kept in the `list_members` column.
//! Must not: watch presentities or send anything.

use std::collections::HashSet;

use super::resource_lists::{self, ListError, RESOURCE_LISTS_CONTENT_TYPE};
use crate::presence::aor::Aor;
use crate::sip::content_coding::{inflate, InflateError, InflateLimits};
use crate::sip::headers::parse_token_list;
use crate::sip::message::Request;
use crate::sip::Reject;
use crate::store::ListMemberRow;
use crate::xml::{XmlError, XmlLimits};

/// Where a list subscription's members come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ListSource {
    /// Carried in the SUBSCRIBE (RFC 5367).
    Request,
    /// Looked up with `rls.list_query`.
    Server,
}

impl ListSource {
    /// Its stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            ListSource::Request => "request",
            ListSource::Server => "server",
        }
    }

    /// From its stored name.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "request" => Some(ListSource::Request),
            "server" => Some(ListSource::Server),
            _ => None,
        }
    }
}

/// One resource of a list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    /// The URI as listed (the anchor or ref for `<external>`/`<entry-ref>`).
    pub uri: String,
    /// Display name, if any.
    pub name: Option<String>,
    /// The presentity watched; `None` for a resource that is not served.
    pub aor: Option<Aor>,
}

/// Limits on request-contained lists.
#[derive(Debug, Clone, Copy)]
pub struct ListLimits {
    /// Most resources in a list.
    pub max_resources: usize,
    /// Largest body after inflating, bytes.
    pub max_body_bytes: usize,
    /// Largest inflated/deflated ratio.
    pub max_inflate_ratio: usize,
}

/// Whether a SUBSCRIBE carries a request-contained list (RFC 5367 §3).
pub fn is_request_list(req: &Request) -> bool {
    req.headers
        .get_all("Require")
        .filter_map(|v| parse_token_list(v, "Require").ok())
        .flatten()
        .any(|t| t.eq_ignore_ascii_case("recipient-list-subscribe"))
        || req
            .headers
            .get("Content-Disposition")
            .is_some_and(|d| disposition_type(d).eq_ignore_ascii_case("recipient-list"))
}

fn disposition_type(value: &str) -> &str {
    value.split(';').next().unwrap_or("").trim()
}

/// Reads the list a SUBSCRIBE carries; `Ok(None)` when it carries no body (an in-dialog
/// SUBSCRIBE that keeps its list).
pub fn request_list(req: &Request, limits: &ListLimits) -> Result<Option<Vec<Member>>, Reject> {
    if req.body.is_empty() {
        return Ok(None);
    }
    let content_type = req.headers.get("Content-Type").unwrap_or("");
    let media = content_type.split(';').next().unwrap_or("").trim();
    if !media.eq_ignore_ascii_case(RESOURCE_LISTS_CONTENT_TYPE) {
        return Err(Reject::new(415)
            .header("Accept", RESOURCE_LISTS_CONTENT_TYPE)
            .header("Accept-Encoding", "deflate"));
    }
    // RFC 5367 §3: the body is the recipient list.
    if let Some(d) = req.headers.get("Content-Disposition") {
        if !disposition_type(d).eq_ignore_ascii_case("recipient-list") {
            return Err(Reject::with_reason(415, "Unsupported Content-Disposition"));
        }
    }
    let encoding = req.headers.get("Content-Encoding").map(str::trim);
    let inflated;
    let body: &[u8] = match encoding {
        None | Some("") => &req.body,
        Some(e) if e.eq_ignore_ascii_case("identity") => &req.body,
        Some(e) if e.eq_ignore_ascii_case("deflate") => {
            inflated = inflate(
                &req.body,
                &InflateLimits {
                    max_output: limits.max_body_bytes,
                    max_ratio: limits.max_inflate_ratio,
                },
            )
            .map_err(|e| match e {
                InflateError::TooLarge { .. } | InflateError::RatioExceeded { .. } => {
                    log::info!("request-contained list refused: {e}");
                    Reject::with_reason(413, "Resource List Too Large")
                }
                InflateError::Corrupt(_) => Reject::with_reason(400, "Corrupt Deflate Body"),
            })?;
            &inflated
        }
        Some(_) => {
            // RFC 3261 §21.4.16: 415 names the encodings understood.
            return Err(Reject::new(415).header("Accept-Encoding", "deflate"));
        }
    };
    let xml = XmlLimits {
        max_bytes: limits.max_body_bytes,
        max_depth: 32,
        // An entry is an element plus a display name; lists add a few more.
        max_elements: limits.max_resources.saturating_mul(3).saturating_add(64),
    };
    let list = resource_lists::parse(body, &xml, limits.max_resources).map_err(|e| match e {
        ListError::TooManyResources { .. } | ListError::Xml(XmlError::TooLarge { .. }) => {
            Reject::with_reason(413, "Resource List Too Large")
        }
        ListError::Xml(XmlError::TooManyElements { .. }) => {
            Reject::with_reason(413, "Resource List Too Large")
        }
        ListError::Xml(_) => Reject::with_reason(400, "Malformed Resource List"),
        ListError::NotResourceLists | ListError::MissingUri => {
            Reject::with_reason(400, "Invalid Resource List")
        }
    })?;
    let mut members = Vec::with_capacity(list.entries.len() + list.not_served.len());
    let mut seen = HashSet::new();
    for entry in list.entries {
        push_member(&mut members, &mut seen, entry.uri, entry.display_name);
    }
    for item in list.not_served {
        members.push(Member {
            uri: item.uri,
            name: None,
            aor: None,
        });
    }
    Ok(Some(members))
}

/// Adds a member unless its AOR is already listed; a SIP URI without a user part is kept as
/// not served.
fn push_member(
    members: &mut Vec<Member>,
    seen: &mut HashSet<Aor>,
    uri: String,
    name: Option<String>,
) {
    let aor = Aor::parse(&uri);
    if let Some(a) = &aor {
        if !seen.insert(a.clone()) {
            return;
        }
    }
    members.push(Member { uri, name, aor });
}

/// The members of a server-known list, duplicates collapsed.
pub fn server_list(rows: Vec<ListMemberRow>) -> Vec<Member> {
    let mut members = Vec::with_capacity(rows.len());
    let mut seen = HashSet::new();
    for row in rows {
        let name = row.name.filter(|n| !n.trim().is_empty());
        push_member(&mut members, &mut seen, row.uri.trim().to_owned(), name);
    }
    members
}

/// The stored form: one `uri<TAB>name` line per member (tabs and line ends in names become
/// spaces; URIs cannot hold them).
pub fn to_text(members: &[Member]) -> String {
    let mut out = String::new();
    for m in members {
        out.push_str(&m.uri);
        out.push('\t');
        if let Some(n) = &m.name {
            out.extend(n.chars().map(|c| if c.is_control() { ' ' } else { c }));
        }
        out.push('\n');
    }
    out
}

/// Members read back from their stored form.
pub fn from_text(text: &str) -> Vec<Member> {
    text.lines()
        .filter(|l| !l.is_empty())
        .map(|line| {
            let (uri, name) = line.split_once('\t').unwrap_or((line, ""));
            Member {
                uri: uri.to_owned(),
                name: (!name.is_empty()).then(|| name.to_owned()),
                aor: Aor::parse(uri).filter(|_| is_sip(uri)),
            }
        })
        .collect()
}

fn is_sip(uri: &str) -> bool {
    let scheme = uri.split(':').next().unwrap_or("");
    scheme.eq_ignore_ascii_case("sip") || scheme.eq_ignore_ascii_case("sips")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sip::message::{parse, Message};

    const LIMITS: ListLimits = ListLimits {
        max_resources: 10,
        max_body_bytes: 64 * 1024,
        max_inflate_ratio: 100,
    };

    fn subscribe(extra: &str, body: &[u8]) -> Request {
        let mut bytes = format!(
            "SUBSCRIBE sip:friends@example.org SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5062;branch=z9hG4bK1\r\n\
             From: <sip:bob@example.org>;tag=1\r\nTo: <sip:friends@example.org>\r\nCall-ID: c1\r\n\
             CSeq: 1 SUBSCRIBE\r\nMax-Forwards: 70\r\nEvent: presence\r\n{extra}Content-Length: {}\r\n\r\n",
            body.len()
        )
        .into_bytes();
        bytes.extend_from_slice(body);
        match parse(&bytes).unwrap() {
            Message::Request(r) => r,
            Message::Response(_) => unreachable!(),
        }
    }

    const LIST: &str = r#"<?xml version="1.0"?><resource-lists xmlns="urn:ietf:params:xml:ns:resource-lists"><list>
<entry uri="sip:alice@example.org"><display-name>Alice</display-name></entry>
<entry uri="sips:alice@Example.org;transport=tcp"/><entry uri="tel:+15551234"/><entry uri="sip:carol@example.org"/></list></resource-lists>"#;

    #[test]
    fn a_plain_list_reads_with_duplicates_collapsed_by_aor_and_tel_kept_as_not_served() {
        let req = subscribe(
            "Require: recipient-list-subscribe\r\nContent-Type: application/resource-lists+xml\r\nContent-Disposition: recipient-list\r\n",
            LIST.as_bytes(),
        );
        assert!(is_request_list(&req));
        let members = request_list(&req, &LIMITS).unwrap().unwrap();
        let uris: Vec<_> = members.iter().map(|m| m.uri.as_str()).collect();
        assert_eq!(
            uris,
            [
                "sip:alice@example.org",
                "sip:carol@example.org",
                "tel:+15551234"
            ]
        );
        assert_eq!(members[0].name.as_deref(), Some("Alice"));
        assert!(members[2].aor.is_none());
    }

    #[test]
    fn a_deflated_list_is_inflated_and_a_bomb_is_refused_with_413() {
        let deflated = crate::sip::content_coding::deflate(LIST.as_bytes());
        let headers = "Content-Type: application/resource-lists+xml\r\nContent-Encoding: deflate\r\nContent-Disposition: recipient-list\r\n";
        let req = subscribe(headers, &deflated);
        assert_eq!(request_list(&req, &LIMITS).unwrap().unwrap().len(), 3);
        let bomb = crate::sip::content_coding::deflate(&vec![b' '; 4 << 20]);
        let req = subscribe(headers, &bomb);
        assert_eq!(request_list(&req, &LIMITS).unwrap_err().status, 413);
    }

    #[test]
    fn wrong_type_unknown_encoding_and_too_many_resources_are_refused() {
        let req = subscribe("Content-Type: application/pidf+xml\r\n", LIST.as_bytes());
        assert_eq!(request_list(&req, &LIMITS).unwrap_err().status, 415);
        let req = subscribe(
            "Content-Type: application/resource-lists+xml\r\nContent-Encoding: br\r\n",
            LIST.as_bytes(),
        );
        assert_eq!(request_list(&req, &LIMITS).unwrap_err().status, 415);
        let small = ListLimits {
            max_resources: 2,
            ..LIMITS
        };
        let req = subscribe(
            "Content-Type: application/resource-lists+xml\r\n",
            LIST.as_bytes(),
        );
        assert_eq!(request_list(&req, &small).unwrap_err().status, 413);
    }

    #[test]
    fn the_stored_form_reads_back() {
        let members = vec![
            Member {
                uri: "sip:alice@example.org".into(),
                name: Some("Alice\tA.".into()),
                aor: Aor::parse("sip:alice@example.org"),
            },
            Member {
                uri: "tel:+15551234".into(),
                name: None,
                aor: None,
            },
        ];
        let back = from_text(&to_text(&members));
        assert_eq!(back[0].name.as_deref(), Some("Alice A."));
        assert_eq!(back[0].aor, members[0].aor);
        assert_eq!(back[1], members[1]);
    }
}
