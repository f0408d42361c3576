//! Reading the resource list carried in a request-contained list SUBSCRIBE
//! (RFC 5367): an RFC 4826 `application/resource-lists+xml` body.
//!
//! Owns: [`parse`], which flattens every `<list>` into the SIP URIs the server
//! will subscribe to ([`ListEntry`]) and the items it reports as not served
//! ([`NotServed`]), with duplicates collapsed and a resource limit enforced.
//! Must not: fetch anything (`<external>` and `<entry-ref>` are only reported,
//! never resolved), decode `Content-Encoding` (see `sip::content_coding`), or decide
//! how the list is subscribed to.

use std::collections::HashSet;

use crate::xml::{parse_document, Element, XmlError, XmlLimits};

/// The resource-lists namespace (RFC 4826 §3.2).
pub const RESOURCE_LISTS_NS: &str = "urn:ietf:params:xml:ns:resource-lists";

/// The MIME type of a resource-lists body (RFC 4826 §3.1).
pub const RESOURCE_LISTS_CONTENT_TYPE: &str = "application/resource-lists+xml";

/// One served member: a sip: or sips: URI.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListEntry {
    /// The `uri` attribute, trimmed, otherwise as written.
    pub uri: String,
    /// The entry's `<display-name>`, trimmed; `None` when absent or empty.
    pub display_name: Option<String>,
}

/// Why an item of the list is not served.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NotServedKind {
    /// An `<entry>` whose URI is not a sip: or sips: URI (tel:, mailto:, pres:, no scheme).
    NonSipUri,
    /// An `<external>` reference to a list held elsewhere; never fetched.
    External,
    /// An `<entry-ref>` reference to an entry held elsewhere; never fetched.
    EntryRef,
}

/// An item the server will not fetch, echoed in RLMI as not served.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NotServed {
    /// The entry's `uri`, or the `<external>` anchor, or the `<entry-ref>` ref; trimmed.
    pub uri: String,
    /// What kind of item it was.
    pub kind: NotServedKind,
}

/// A resource list flattened in document order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ResourceList {
    /// The sip:/sips: members, duplicates removed (the first occurrence wins).
    pub entries: Vec<ListEntry>,
    /// The items that will not be served, duplicates removed by exact string.
    pub not_served: Vec<NotServed>,
}

/// Why a body was not accepted as a resource list.
#[derive(Debug, thiserror::Error)]
pub enum ListError {
    /// The body is not acceptable XML.
    #[error("resource list body is not acceptable XML")]
    Xml(#[from] XmlError),
    /// The root element is not `<resource-lists>` in [`RESOURCE_LISTS_NS`].
    #[error("root element is not resource-lists in {RESOURCE_LISTS_NS}")]
    NotResourceLists,
    /// An `<entry>` has no `uri` attribute, or an empty one.
    #[error("resource list entry without a uri")]
    MissingUri,
    /// The list names more distinct resources than the server accepts.
    #[error("resource list names more than {limit} resources")]
    TooManyResources {
        /// The configured limit.
        limit: usize,
    },
}

/// Parses a resource-lists body into the members to serve and those not served.
///
/// Every `<list>` is walked in document order, at any nesting depth (bounded by
/// `limits.max_depth`); elements in other namespaces are ignored as extensions.
/// An `<external>` without `anchor` or an `<entry-ref>` without `ref` (or with
/// an empty one) has nothing to report and is skipped.
///
/// # Errors
///
/// [`ListError::Xml`] when the body is refused by [`parse_document`],
/// [`ListError::NotResourceLists`] for another root, [`ListError::MissingUri`]
/// for an `<entry>` without a (non-empty) `uri`, and [`ListError::TooManyResources`] as soon
/// as more than `max_resources` distinct items have been seen.
pub fn parse(
    body: &[u8],
    limits: &XmlLimits,
    max_resources: usize,
) -> Result<ResourceList, ListError> {
    let root = parse_document(body, limits)?;
    // RFC 4826 §3.2: the root is <resource-lists>, holding zero or more <list>.
    if !root.is(RESOURCE_LISTS_NS, "resource-lists") {
        return Err(ListError::NotResourceLists);
    }
    let mut out = Collector {
        list: ResourceList::default(),
        seen_entries: HashSet::new(),
        seen_not_served: HashSet::new(),
        max_resources,
    };
    // An explicit stack instead of recursion, so depth never touches the call stack.
    let mut stack = vec![root.elements()];
    while let Some(children) = stack.last_mut() {
        let Some(el) = children.next() else {
            stack.pop();
            continue;
        };
        // Only the root's iterator is at depth 1: there, only <list> is meaningful.
        let inside_list = stack.len() > 1;
        if !el.in_ns(RESOURCE_LISTS_NS) {
            continue; // RFC 4826 §3.2: elements from other namespaces are extensions.
        }
        match el.local.as_ref() {
            "list" => stack.push(el.elements()),
            "entry" if inside_list => out.entry(el)?,
            // RFC 4826 §3.2: <external anchor> points at a list on another server and
            // <entry-ref ref> at an entry in a document tree; neither is dereferenced.
            "external" if inside_list => {
                if let Some(anchor) = el.attr(None, "anchor") {
                    out.not_served(anchor, NotServedKind::External)?;
                }
            }
            "entry-ref" if inside_list => {
                if let Some(reference) = el.attr(None, "ref") {
                    out.not_served(reference, NotServedKind::EntryRef)?;
                }
            }
            _ => {} // <display-name> of a list, or anything misplaced.
        }
    }
    Ok(out.list)
}

/// Accumulates the flattened list, collapsing duplicates and counting resources.
struct Collector {
    list: ResourceList,
    seen_entries: HashSet<String>,
    seen_not_served: HashSet<String>,
    max_resources: usize,
}

impl Collector {
    fn entry(&mut self, el: &Element) -> Result<(), ListError> {
        // RFC 4826 §3.2: the uri attribute of <entry> is mandatory.
        let uri = el.attr(None, "uri").map(str::trim).unwrap_or_default();
        if uri.is_empty() {
            return Err(ListError::MissingUri);
        }
        let Some(key) = sip_key(uri) else {
            return self.not_served(uri, NotServedKind::NonSipUri);
        };
        if self.seen_entries.contains(&key) {
            return Ok(());
        }
        self.make_room()?;
        self.seen_entries.insert(key);
        let display_name = el
            .find(RESOURCE_LISTS_NS, "display-name")
            .map(|d| d.text().trim().to_owned())
            .filter(|d| !d.is_empty());
        self.list.entries.push(ListEntry {
            uri: uri.to_owned(),
            display_name,
        });
        Ok(())
    }

    fn not_served(&mut self, uri: &str, kind: NotServedKind) -> Result<(), ListError> {
        let uri = uri.trim();
        if uri.is_empty() || self.seen_not_served.contains(uri) {
            return Ok(());
        }
        self.make_room()?;
        self.seen_not_served.insert(uri.to_owned());
        self.list.not_served.push(NotServed {
            uri: uri.to_owned(),
            kind,
        });
        Ok(())
    }

    fn make_room(&self) -> Result<(), ListError> {
        if self.list.entries.len() + self.list.not_served.len() >= self.max_resources {
            return Err(ListError::TooManyResources {
                limit: self.max_resources,
            });
        }
        Ok(())
    }
}

/// The duplicate key of a sip: or sips: URI, `None` for any other URI.
///
/// Deliberately simpler than RFC 3261 §19.1.4 URI comparison: the key is
/// `scheme:user@host[:port]` with scheme and host lowercased, the user kept as
/// written, and everything from the first `;` or `?` after the user part
/// (URI parameters and headers) dropped. The first `@` separates user and host;
/// a URI without `@` is keyed by its host alone.
fn sip_key(uri: &str) -> Option<String> {
    let (scheme, rest) = uri.split_once(':')?;
    if !scheme.eq_ignore_ascii_case("sip") && !scheme.eq_ignore_ascii_case("sips") {
        return None;
    }
    let scheme = scheme.to_ascii_lowercase();
    let (user, host) = match rest.split_once('@') {
        Some((user, host)) => (Some(user), host),
        None => (None, rest),
    };
    let host = host
        .split([';', '?'])
        .next()
        .unwrap_or_default()
        .to_ascii_lowercase();
    Some(match user {
        Some(user) => format!("{scheme}:{user}@{host}"),
        None => format!("{scheme}:{host}"),
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::sip::content_coding::{inflate, InflateLimits};

    fn list(xml: &str) -> Result<ResourceList, ListError> {
        parse(xml.as_bytes(), &XmlLimits::default(), 100)
    }

    fn doc(lists: &str) -> String {
        format!(
            r#"<?xml version="1.0"?><resource-lists xmlns="{RESOURCE_LISTS_NS}">{lists}</resource-lists>"#
        )
    }

    fn entry(uri: &str, display_name: Option<&str>) -> ListEntry {
        ListEntry {
            uri: uri.to_owned(),
            display_name: display_name.map(str::to_owned),
        }
    }

    fn uris(list: &ResourceList) -> Vec<&str> {
        list.entries.iter().map(|e| e.uri.as_str()).collect()
    }

    #[test]
    fn a_flat_list_yields_its_entries_in_order_with_display_names() {
        let got = list(&doc(
            r#"<list><entry uri=" sip:bob@example.com "><display-name> Bob </display-name></entry>
               <entry uri="sips:carol@example.com"><display-name>  </display-name></entry></list>"#,
        ))
        .unwrap();
        assert_eq!(
            got.entries,
            [
                entry("sip:bob@example.com", Some("Bob")),
                entry("sips:carol@example.com", None)
            ]
        );
        assert!(got.not_served.is_empty());
    }

    #[test]
    fn nested_lists_are_flattened_in_document_order() {
        let got = list(&doc(
            r#"<list name="a"><display-name>A</display-name><entry uri="sip:1@x"/>
                 <list name="b"><entry uri="sip:2@x"/><list><entry uri="sip:3@x"/></list></list>
                 <entry uri="sip:4@x"/></list>
               <list><entry uri="sip:5@x"/></list>"#,
        ))
        .unwrap();
        assert_eq!(
            uris(&got),
            ["sip:1@x", "sip:2@x", "sip:3@x", "sip:4@x", "sip:5@x"]
        );
    }

    #[test]
    fn duplicates_differing_in_scheme_or_host_case_or_parameters_collapse_to_the_first() {
        let got = list(&doc(
            r#"<list><entry uri="sip:bob@Example.COM;transport=tcp"><display-name>First</display-name></entry>
               <entry uri="SIP:bob@example.com"><display-name>Second</display-name></entry>
               <entry uri="sip:bob@example.com?Subject=x"/>
               <entry uri="sip:Bob@example.com"/>
               <entry uri="sip:bob@example.com:5061"/>
               <entry uri="sips:bob@example.com"/></list>"#,
        ))
        .unwrap();
        assert_eq!(
            got.entries[0],
            entry("sip:bob@Example.COM;transport=tcp", Some("First"))
        );
        assert_eq!(
            uris(&got)[1..],
            [
                "sip:Bob@example.com",
                "sip:bob@example.com:5061",
                "sips:bob@example.com"
            ]
        );
    }

    #[test]
    fn non_sip_uris_externals_and_entry_refs_are_not_served_and_collapse_exactly() {
        let got = list(&doc(
            r#"<list><entry uri="tel:+15551234"/><entry uri="mailto:a@x"/><entry uri="pres:a@x"/>
               <entry uri="garbage"/><entry uri="tel:+15551234"/><entry uri="sip:ok@x"/>
               <external anchor="http://xcap.example.com/list"/>
               <entry-ref ref="users/sip:a@x/index/~~/resource-lists/list/entry"/></list>"#,
        ))
        .unwrap();
        assert_eq!(uris(&got), ["sip:ok@x"]);
        let not_served: Vec<_> = got
            .not_served
            .iter()
            .map(|n| (n.uri.as_str(), n.kind))
            .collect();
        assert_eq!(
            not_served,
            [
                ("tel:+15551234", NotServedKind::NonSipUri),
                ("mailto:a@x", NotServedKind::NonSipUri),
                ("pres:a@x", NotServedKind::NonSipUri),
                ("garbage", NotServedKind::NonSipUri),
                ("http://xcap.example.com/list", NotServedKind::External),
                (
                    "users/sip:a@x/index/~~/resource-lists/list/entry",
                    NotServedKind::EntryRef
                ),
            ]
        );
    }

    #[test]
    fn elements_from_other_namespaces_are_ignored() {
        let got = list(&doc(
            r#"<list xmlns:x="urn:ext"><x:entry uri="sip:no@x"/><entry uri="sip:yes@x"><x:display-name>No</x:display-name></entry>
               <x:list><entry uri="sip:hidden@x"/></x:list></list>"#,
        ))
        .unwrap();
        assert_eq!(got.entries, [entry("sip:yes@x", None)]);
    }

    #[test]
    fn an_entry_without_a_uri_is_an_error() {
        for body in [
            r#"<list><entry><display-name>x</display-name></entry></list>"#,
            r#"<list><list><entry uri="  "/></list></list>"#,
        ] {
            assert!(
                matches!(list(&doc(body)), Err(ListError::MissingUri)),
                "{body}"
            );
        }
    }

    #[test]
    fn a_root_other_than_resource_lists_in_its_namespace_is_an_error() {
        for xml in [
            r#"<resource-lists><list><entry uri="sip:a@x"/></list></resource-lists>"#,
            r#"<presence xmlns="urn:ietf:params:xml:ns:pidf"/>"#,
        ] {
            assert!(
                matches!(list(xml), Err(ListError::NotResourceLists)),
                "{xml}"
            );
        }
    }

    #[test]
    fn more_distinct_resources_than_the_limit_is_an_error_but_duplicates_do_not_count() {
        let xml = doc(
            r#"<list><entry uri="sip:a@x"/><entry uri="sip:a@X"/><entry uri="tel:1"/><entry uri="sip:b@x"/></list>"#,
        );
        let limits = XmlLimits::default();
        assert!(parse(xml.as_bytes(), &limits, 3).is_ok());
        let result = parse(xml.as_bytes(), &limits, 2);
        assert!(matches!(
            result,
            Err(ListError::TooManyResources { limit: 2 })
        ));
    }

    #[test]
    fn a_doctype_is_refused_by_the_xml_layer() {
        let xml = format!(
            r#"<!DOCTYPE r [<!ENTITY e "sip:a@x">]>{}"#,
            doc(r#"<list><entry uri="&e;"/></list>"#)
        );
        assert!(matches!(
            list(&xml),
            Err(ListError::Xml(XmlError::Doctype { .. }))
        ));
    }

    #[test]
    fn the_liblinphone_body_lists_alice_then_carol() {
        // The body of tests/fixtures/captures/liblinphone-rls-subscribe.sip, inflated.
        let xml = r#"<?xml version="1.0" encoding="UTF-8"?>
<resource-lists xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" xmlns="urn:ietf:params:xml:ns:resource-lists">
 <list>
  <entry uri="sip:alice@example.org"/>
  <entry uri="sip:carol@example.org"/>
 </list>
</resource-lists>
"#;
        let got = list(xml).unwrap();
        assert_eq!(
            got.entries,
            [
                entry("sip:alice@example.org", None),
                entry("sip:carol@example.org", None)
            ]
        );
        assert!(got.not_served.is_empty());
    }

    #[test]
    fn the_liblinphone_capture_inflates_to_a_list_of_alice_then_carol() {
        let capture = include_bytes!("../../tests/fixtures/captures/liblinphone-rls-subscribe.sip");
        let start = capture.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
        let body = &capture[start..];
        assert_eq!(body.len(), 182, "Content-Length of the capture");
        let xml = inflate(
            body,
            &InflateLimits {
                max_output: 64 * 1024,
                max_ratio: 100,
            },
        )
        .unwrap();
        let list = parse(&xml, &XmlLimits::default(), 100).unwrap();
        let entry = |uri: &str| ListEntry {
            uri: uri.to_owned(),
            display_name: None,
        };
        assert_eq!(
            list.entries,
            [
                entry("sip:alice@example.org"),
                entry("sip:carol@example.org")
            ]
        );
        assert!(list.not_served.is_empty());
    }
}
