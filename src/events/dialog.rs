//! The dialog event package (RFC 4235): busy-lamp field.
//!
//! Owns: reading `application/dialog-info+xml` publications as real publishers write them
//! (Kamailio's pua_dialoginfo: `<remote>` before `<local>`, a capitalised `Trying`,
//! `version="0"` on every PUBLISH), merging a resource's publications by dialog id (the newest
//! publication that mentions a dialog decides its state), superseding older publications whose
//! every dialog a newer one decides (so an ended call cannot light the lamp again when its
//! `terminated` publication expires before the older ones: Kamailio bug 3192), and writing
//! full-state documents that follow RFC 4235's schema (children in its order, states in lower
//! case) with the subscription's own `version`. Pure. Must not: hold state.

use std::collections::HashSet;

use bytes::Bytes;

use super::package::{with_version, EventPackage, VERSION_PLACEHOLDER};
use crate::presence::aor::Aor;
use crate::sip::Reject;
use crate::xml::{escape_into, parse_document, write_element, Element, Node, PrefixMap, XmlLimits};

/// The dialog-info namespace (RFC 4235 §4.1).
pub const DIALOG_INFO_NS: &str = "urn:ietf:params:xml:ns:dialog-info";
/// Its media type.
pub const DIALOG_INFO: &str = "application/dialog-info+xml";

/// RFC 4235 §4.1.1: the states of a dialog.
const STATES: [&str; 5] = ["trying", "proceeding", "early", "confirmed", "terminated"];

/// The children of `<dialog>` in the schema's order; anything else follows them.
const CHILD_ORDER: [&str; 8] = [
    "exclusive",
    "state",
    "duration",
    "replaces",
    "referred-by",
    "route-set",
    "local",
    "remote",
];

/// The dialog package.
#[derive(Debug, Default, Clone, Copy)]
pub struct DialogPackage;

/// The dialogs of a dialog-info document, by id, normalised; `None` for a body that is not one.
fn dialogs(body: &[u8]) -> Option<Vec<(String, Element)>> {
    let limits = XmlLimits {
        max_bytes: 65_536,
        ..XmlLimits::default()
    };
    let root = parse_document(body, &limits).ok()?;
    if !root.is(DIALOG_INFO_NS, "dialog-info") {
        return None;
    }
    let mut out = Vec::new();
    for d in root.elements().filter(|e| e.is(DIALOG_INFO_NS, "dialog")) {
        let id = d.attr(None, "id").filter(|id| !id.is_empty())?.to_owned();
        out.push((id, normalise(d)?));
    }
    Some(out)
}

/// A `<dialog>` as RFC 4235's schema wants it: its children in the schema's order, its state
/// in lower case; `None` without a known state.
fn normalise(d: &Element) -> Option<Element> {
    let state = d.find(DIALOG_INFO_NS, "state")?;
    let text = state.text().trim().to_ascii_lowercase();
    if !STATES.contains(&text.as_str()) {
        return None;
    }
    let mut state = state.clone();
    state.children = vec![Node::Text(text)];
    let rank = |e: &Element| {
        if e.in_ns(DIALOG_INFO_NS) {
            CHILD_ORDER
                .iter()
                .position(|n| *n == e.local.as_ref())
                .unwrap_or(CHILD_ORDER.len())
        } else {
            CHILD_ORDER.len()
        }
    };
    let mut children: Vec<Element> = d
        .elements()
        .map(|e| {
            if e.is(DIALOG_INFO_NS, "state") {
                state.clone()
            } else {
                e.clone()
            }
        })
        .collect();
    // A stable sort: same-rank children (extensions) keep their order.
    children.sort_by_key(rank);
    let mut out = d.clone();
    out.children = children.into_iter().map(Node::Element).collect();
    Some(out)
}

/// A full-state document for `entity` with `dialogs`, its version the placeholder.
fn document(entity: &str, dialogs: &[&Element]) -> Bytes {
    const PREFIXES: PrefixMap<'static> = PrefixMap::new(&[(DIALOG_INFO_NS, None)]);
    let mut out = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<dialog-info xmlns=\"");
    out.push_str(DIALOG_INFO_NS);
    out.push('"');
    out.push_str(VERSION_PLACEHOLDER);
    out.push_str("state=\"full\" entity=\"");
    escape_into(&mut out, entity, true);
    out.push_str("\">");
    for d in dialogs {
        write_element(d, &mut out, &PREFIXES);
    }
    out.push_str("</dialog-info>\n");
    Bytes::from(out)
}

impl EventPackage for DialogPackage {
    fn name(&self) -> &'static str {
        "dialog"
    }

    fn notify_types(&self) -> &'static [&'static str] {
        &[DIALOG_INFO]
    }

    fn publish_types(&self) -> &'static [&'static str] {
        &[DIALOG_INFO]
    }

    fn validate(&self, body: &[u8]) -> Result<(), Reject> {
        match dialogs(body) {
            Some(_) => Ok(()),
            None => Err(Reject::with_reason(400, "Malformed Dialog Info")),
        }
    }

    fn combine(&self, aor: &Aor, newest_first: &[&Bytes]) -> Bytes {
        let mut seen = HashSet::new();
        let mut merged = Vec::new();
        for body in newest_first {
            for (id, d) in dialogs(body).unwrap_or_default() {
                // The newest publication that mentions a dialog decides it.
                if seen.insert(id) {
                    merged.push(d);
                }
            }
        }
        document(aor.as_str(), &merged.iter().collect::<Vec<_>>())
    }

    fn default_body(&self, aor: &Aor) -> Bytes {
        document(aor.as_str(), &[])
    }

    fn supersedes(&self, newer: &Bytes, older: &Bytes) -> bool {
        let (Some(newer), Some(older)) = (dialogs(newer), dialogs(older)) else {
            return false;
        };
        let decided: HashSet<&String> = newer.iter().map(|(id, _)| id).collect();
        !older.is_empty() && older.iter().all(|(id, _)| decided.contains(id))
    }

    fn notify_body(&self, state: &Bytes, version: u32, _media_type: &str) -> Bytes {
        with_version(state, version)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const AOR: &str = "sip:200@example.test";

    fn publication(state: &str, id: &str) -> Bytes {
        Bytes::from(format!(
            "<?xml version=\"1.0\"?>\n<dialog-info xmlns=\"urn:ietf:params:xml:ns:dialog-info\" \
             version=\"0\" state=\"full\" entity=\"{AOR}\"><dialog id=\"{id}\" direction=\"initiator\">\
             <remote><identity>sip:201@example.test</identity></remote><state>{state}</state>\
             <local><identity>{AOR}</identity></local></dialog></dialog-info>"
        ))
    }

    #[test]
    fn sloppy_publications_are_written_in_the_schemas_order_and_case() {
        let p = DialogPackage;
        let aor = Aor::parse(AOR).unwrap();
        let doc = p.combine(&aor, &[&publication("Trying", "d1")]);
        let doc = String::from_utf8(p.notify_body(&doc, 3, DIALOG_INFO).to_vec()).unwrap();
        assert!(doc.contains("<dialog-info xmlns=\"urn:ietf:params:xml:ns:dialog-info\" version=\"3\" state=\"full\" entity=\"sip:200@example.test\">"), "{doc}");
        let (state, local, remote) = (
            doc.find("<state>trying</state>").unwrap(),
            doc.find("<local>").unwrap(),
            doc.find("<remote>").unwrap(),
        );
        assert!(state < local && local < remote, "{doc}");
        assert!(p.validate(&publication("Trying", "d1")).is_ok());
        assert!(p.validate(&publication("ringing", "d1")).is_err());
        assert!(p.validate(b"<dialog-info/>").is_err(), "no namespace");
    }

    #[test]
    fn the_newest_mention_of_a_dialog_decides_and_others_are_kept() {
        let p = DialogPackage;
        let aor = Aor::parse(AOR).unwrap();
        let (new, old, other) = (
            publication("confirmed", "d1"),
            publication("early", "d1"),
            publication("early", "d2"),
        );
        let doc = String::from_utf8(p.combine(&aor, &[&new, &other, &old]).to_vec()).unwrap();
        assert_eq!(doc.matches("<dialog ").count(), 2, "{doc}");
        assert!(
            doc.contains("<state>confirmed</state>")
                && !doc.contains("id=\"d1\" direction=\"initiator\"><state>early"),
            "{doc}"
        );
        assert!(p.supersedes(&new, &old));
        assert!(!p.supersedes(&new, &other));
        let idle = String::from_utf8(p.default_body(&aor).to_vec()).unwrap();
        assert!(
            !idle.contains("<dialog ") && idle.ends_with("></dialog-info>\n"),
            "{idle}"
        );
    }
}
