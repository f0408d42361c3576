//! The formats presence is served in, one per watcher, chosen by its SUBSCRIBE's Accept: PIDF
//! (RFC 3863), and the three that SER's pa module served to older clients — CPIM-PIDF (the
//! draft PIDF), XPIDF (Windows Messenger, older Cisco and Polycom phones) and LPIDF.
//!
//! Owns: [`PresenceFormat`], the negotiation ([`PresenceFormat::from_accept`]: the highest
//! q-value wins, the server's order breaks ties, no Accept means PIDF) and turning the
//! presentity's PIDF document into each format ([`PresenceFormat::render`]). Pure.
//! Must not: compose documents (the presentity does) or know who watches.
//!
//! What the legacy formats say, from PIDF: XPIDF has one `<atom>` per tuple, its
//! `<address uri priority>` the tuple's contact (the presentity when it has none), and
//! `<status status>` `closed` for a closed tuple, `inuse` for an open one whose person is
//! busy or on the phone (RPID), `inactive` when they are away, `open` otherwise. LPIDF, in SER
//! pa's layout despite its `+xml` name, is a `To:` line and one `Contact: <uri>;q=` line per
//! tuple, q 1 when open and 0 when closed.

use bytes::Bytes;

use super::pidf::{self, BasicStatus, PidfDocument, RPID_NS};
use crate::sip::headers::{best_media, parse_weighted_list};
use crate::xml::{escape_into, XmlLimits};

/// A format presence can be written in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PresenceFormat {
    /// `application/pidf+xml` (RFC 3863), the default.
    Pidf,
    /// `application/cpim-pidf+xml`: PIDF under the draft's namespace.
    CpimPidf,
    /// `application/xpidf+xml`.
    Xpidf,
    /// `application/lpidf+xml`.
    Lpidf,
}

/// Every format, in the server's order of preference.
pub const SERVED: [PresenceFormat; 4] = [
    PresenceFormat::Pidf,
    PresenceFormat::CpimPidf,
    PresenceFormat::Xpidf,
    PresenceFormat::Lpidf,
];

/// Why no format could be chosen.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum FormatError {
    /// The Accept header does not parse.
    #[error("malformed Accept")]
    Malformed,
    /// It accepts none of the formats (RFC 6665 §4.2.1.1 and RFC 3261 §21.4.7: 406).
    #[error("no presence format acceptable")]
    NoneAcceptable,
}

impl PresenceFormat {
    /// Every format's MIME type, in the server's order.
    pub const SERVED_TYPES: [&'static str; 4] = [
        "application/pidf+xml",
        "application/cpim-pidf+xml",
        "application/xpidf+xml",
        "application/lpidf+xml",
    ];

    /// Its MIME type.
    pub fn content_type(self) -> &'static str {
        let [pidf, cpim, xpidf, lpidf] = Self::SERVED_TYPES;
        match self {
            PresenceFormat::Pidf => pidf,
            PresenceFormat::CpimPidf => cpim,
            PresenceFormat::Xpidf => xpidf,
            PresenceFormat::Lpidf => lpidf,
        }
    }

    /// Every format's MIME type, for Accept headers (406, OPTIONS).
    pub fn all_content_types() -> String {
        Self::SERVED_TYPES.join(", ")
    }

    /// The format for a SUBSCRIBE whose Accept values are `accept` (joined with commas; none
    /// means PIDF, RFC 3856 §6.6): the one with the highest q-value, the server's order first
    /// among equals.
    pub fn from_accept(accept: Option<&str>) -> Result<Self, FormatError> {
        let Some(accept) = accept else {
            return Ok(PresenceFormat::Pidf);
        };
        let list = parse_weighted_list(accept, "Accept").map_err(|_| FormatError::Malformed)?;
        let chosen = best_media(&list, &Self::SERVED_TYPES).ok_or(FormatError::NoneAcceptable)?;
        SERVED
            .into_iter()
            .find(|f| f.content_type() == chosen)
            .ok_or(FormatError::NoneAcceptable)
    }

    /// `pidf_body` (the presentity `aor`'s PIDF document, as the presentity wrote it) in
    /// this format.
    pub fn render(self, aor: &str, pidf_body: &Bytes) -> Bytes {
        if self == PresenceFormat::Pidf {
            return pidf_body.clone();
        }
        let limits = XmlLimits {
            max_bytes: usize::MAX,
            ..XmlLimits::default()
        };
        let doc = pidf::parse(pidf_body, &limits).unwrap_or_else(|e| {
            // Written by this server, so it parses; should it not, nothing is said rather than
            // something wrong.
            log::warn!("presentity {aor}: own document unreadable ({e})");
            PidfDocument::new(aor)
        });
        Bytes::from(match self {
            PresenceFormat::Pidf | PresenceFormat::CpimPidf => pidf::serialize_cpim(&doc),
            PresenceFormat::Xpidf => xpidf(&doc, aor),
            PresenceFormat::Lpidf => lpidf(&doc, aor),
        })
    }
}

/// What an open tuple's person is doing, as XPIDF says it.
fn open_status(doc: &PidfDocument) -> &'static str {
    let activities: Vec<&str> = doc
        .persons
        .first()
        .and_then(|p| p.find(RPID_NS, "activities"))
        .map(|a| {
            a.elements()
                .filter(|e| e.in_ns(RPID_NS))
                .map(|e| e.local.as_ref())
                .collect()
        })
        .unwrap_or_default();
    let any = |names: &[&str]| activities.iter().any(|a| names.contains(a));
    if any(&[
        "busy",
        "on-the-phone",
        "meeting",
        "presentation",
        "performance",
    ]) {
        "inuse"
    } else if any(&[
        "away",
        "sleeping",
        "vacation",
        "holiday",
        "permanent-absence",
        "appointment",
        "meal",
        "breakfast",
        "dinner",
        "travel",
        "in-transit",
    ]) {
        "inactive"
    } else {
        "open"
    }
}

/// One `(address, priority text, open)` per tuple: the contact (the presentity when the tuple
/// has none), its priority (0.8 by default, as SER pa wrote), and whether it is open.
fn addresses<'a>(doc: &'a PidfDocument, aor: &'a str) -> Vec<(&'a str, String, bool)> {
    doc.tuples
        .iter()
        .map(|t| {
            let uri = t.contact.as_ref().map_or(aor, |c| c.uri.as_str());
            let priority = t
                .contact
                .as_ref()
                .and_then(|c| c.priority)
                .map_or_else(|| "0.8".to_owned(), |q| q.to_string());
            (uri, priority, t.basic == Some(BasicStatus::Open))
        })
        .collect()
}

/// XPIDF, as SER pa wrote it (with the DTD's public identifier corrected).
fn xpidf(doc: &PidfDocument, aor: &str) -> String {
    let mut out = String::from(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\r\n\
         <!DOCTYPE presence PUBLIC \"-//IETF//DTD RFCxxxx XPIDF 1.0//EN\" \"xpidf.dtd\">\r\n\
         <presence>\r\n<presentity uri=\"",
    );
    escape_into(&mut out, aor, true);
    out.push_str(";method=SUBSCRIBE\"/>\r\n");
    let open = open_status(doc);
    let atom = |out: &mut String, id: &str, uri: &str, priority: &str, status: &str| {
        out.push_str("<atom id=\"");
        escape_into(out, id, true);
        out.push_str("\">\r\n<address uri=\"");
        escape_into(out, uri, true);
        out.push_str("\" priority=\"");
        out.push_str(priority);
        out.push_str("\">\r\n<status status=\"");
        out.push_str(status);
        out.push_str("\"/>\r\n</address>\r\n</atom>\r\n");
    };
    if doc.tuples.is_empty() {
        atom(&mut out, "none", aor, "0.8", "closed");
    }
    for (tuple, (uri, priority, is_open)) in doc.tuples.iter().zip(addresses(doc, aor)) {
        let status = if is_open { open } else { "closed" };
        atom(&mut out, &tuple.id, uri, &priority, status);
    }
    out.push_str("</presence>\r\n");
    out
}

/// LPIDF in SER pa's layout: `To:` and one `Contact:` line per tuple.
fn lpidf(doc: &PidfDocument, aor: &str) -> String {
    let mut out = format!("To: <{aor}>\r\n");
    for (uri, _, open) in addresses(doc, aor) {
        out.push_str("Contact: <");
        out.push_str(uri);
        out.push_str(if open { ">;q=1\r\n" } else { ">;q=0\r\n" });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const AOR: &str = "sip:alice@example.org";

    fn body(basic: &str, activity: Option<&str>) -> Bytes {
        let person = activity.map_or(String::new(), |a| {
            format!(
                "<dm:person id=\"p\"><rpid:activities><rpid:{a}/></rpid:activities></dm:person>"
            )
        });
        Bytes::from(format!(
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<presence xmlns=\"urn:ietf:params:xml:ns:pidf\" \
             xmlns:dm=\"urn:ietf:params:xml:ns:pidf:data-model\" xmlns:rpid=\"urn:ietf:params:xml:ns:pidf:rpid\" \
             entity=\"{AOR}\"><tuple id=\"t1\"><status><basic>{basic}</basic></status>\
             <contact priority=\"0.5\">sip:alice@192.0.2.4</contact></tuple>{person}</presence>"
        ))
    }

    #[test]
    fn the_highest_q_wins_and_the_servers_order_breaks_ties() {
        use PresenceFormat::*;
        let pick = |a: &str| PresenceFormat::from_accept(Some(a));
        assert_eq!(PresenceFormat::from_accept(None), Ok(Pidf));
        assert_eq!(pick("application/xpidf+xml"), Ok(Xpidf));
        assert_eq!(
            pick("application/lpidf+xml, application/xpidf+xml"),
            Ok(Xpidf)
        );
        assert_eq!(
            pick("application/pidf+xml;q=0.2, application/cpim-pidf+xml"),
            Ok(CpimPidf)
        );
        assert_eq!(pick("*/*"), Ok(Pidf));
        assert_eq!(
            pick("application/*, application/pidf+xml;q=0"),
            Ok(CpimPidf)
        );
        assert_eq!(pick("text/plain"), Err(FormatError::NoneAcceptable));
        assert_eq!(
            pick("application/pidf+xml;q=2"),
            Err(FormatError::Malformed)
        );
    }

    #[test]
    fn xpidf_has_an_atom_per_tuple_with_its_contact_and_status() {
        let x = PresenceFormat::Xpidf.render(AOR, &body("open", None));
        let x = std::str::from_utf8(&x).unwrap();
        assert!(x.starts_with("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\r\n<!DOCTYPE presence PUBLIC \"-//IETF//DTD RFCxxxx XPIDF 1.0//EN\" \"xpidf.dtd\">\r\n<presence>\r\n"), "{x}");
        assert!(x.contains("<presentity uri=\"sip:alice@example.org;method=SUBSCRIBE\"/>\r\n<atom id=\"t1\">\r\n<address uri=\"sip:alice@192.0.2.4\" priority=\"0.5\">\r\n<status status=\"open\"/>\r\n</address>\r\n</atom>\r\n</presence>\r\n"), "{x}");
        let status = |basic, activity| {
            let x = PresenceFormat::Xpidf.render(AOR, &body(basic, activity));
            let x = String::from_utf8(x.to_vec()).unwrap();
            let at = x.find("status=\"").unwrap() + 8;
            x[at..at + x[at..].find('"').unwrap()].to_owned()
        };
        assert_eq!(status("open", Some("on-the-phone")), "inuse");
        assert_eq!(status("open", Some("busy")), "inuse");
        assert_eq!(status("open", Some("away")), "inactive");
        assert_eq!(status("closed", Some("busy")), "closed");
        let empty = PresenceFormat::Xpidf
            .render(AOR, &Bytes::from(pidf::serialize(&PidfDocument::new(AOR))));
        assert!(std::str::from_utf8(&empty).unwrap().contains("<atom id=\"none\">\r\n<address uri=\"sip:alice@example.org\" priority=\"0.8\">\r\n<status status=\"closed\"/>"));
    }

    #[test]
    fn lpidf_is_sers_to_and_contact_lines() {
        let l = PresenceFormat::Lpidf.render(AOR, &body("open", None));
        assert_eq!(
            &l[..],
            b"To: <sip:alice@example.org>\r\nContact: <sip:alice@192.0.2.4>;q=1\r\n"
        );
        let l = PresenceFormat::Lpidf.render(AOR, &body("closed", None));
        assert!(l.ends_with(b";q=0\r\n"));
    }

    #[test]
    fn cpim_pidf_is_pidf_under_the_drafts_namespace_and_reads_back() {
        let c = PresenceFormat::CpimPidf.render(AOR, &body("open", Some("away")));
        let c = std::str::from_utf8(&c).unwrap();
        assert!(
            c.contains("<presence xmlns=\"urn:ietf:params:xml:ns:cpim-pidf\""),
            "{c}"
        );
        assert!(!c.contains("\"urn:ietf:params:xml:ns:pidf\""), "{c}");
        assert!(
            c.contains("xmlns:rpid=\"urn:ietf:params:xml:ns:pidf:rpid\""),
            "{c}"
        );
        let back = pidf::parse(c.as_bytes(), &XmlLimits::default()).unwrap();
        let original = pidf::parse(&body("open", Some("away")), &XmlLimits::default()).unwrap();
        assert_eq!(back, original);
        assert_eq!(
            PresenceFormat::Pidf.render(AOR, &body("open", None)),
            body("open", None)
        );
    }
}
