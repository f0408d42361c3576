//! RFC 4662 RLMI (Resource List Meta-Information) documents: the
//! `application/rlmi+xml` root part of a list NOTIFY.
//!
//! Owns: the RLMI model handed in by the list subscription ([`Resource`],
//! [`Instance`], [`InstanceState`]) and its serialisation ([`resource_xml`],
//! [`document`], [`document_overhead`]).
//! Must not: decide which resources or instances a NOTIFY carries, track the
//! list `version` counter, build the PIDF parts or the multipart body (that is
//! `multipart`), or parse RLMI.
//!
//! Serialisation is split so that a caller can size a NOTIFY before building
//! it: each resource is written once with [`resource_xml`], and
//!
//! ```text
//! document(uri, v, fs, frags).len()
//!     == document_overhead(uri, v, fs) + frags.iter().map(String::len).sum()
//! ```
//!
//! Layout follows the NOTIFY that liblinphone accepted (one resource per
//! line, CRLF line ends):
//!
//! ```text
//! <?xml version="1.0" encoding="UTF-8"?>
//! <list xmlns="urn:ietf:params:xml:ns:rlmi" uri="sip:friends@example.org" version="0" fullState="true">
//!  <resource uri="sip:alice@example.org"><instance id="i0" state="active" cid="x@host"/></resource>
//! </list>
//! ```
//!
//! All text is escaped by `xml::escape_into` (`& < > "`, plus tabs and line ends as character
//! references), and characters that XML 1.0 §2.2 does not allow become U+FFFD, so the output
//! is always well-formed and valid against the RFC 4662 RLMI schema whatever the strings
//! contain.

/// The RLMI namespace (RFC 4662 §5), the default namespace of the document.
pub const RLMI_NS: &str = "urn:ietf:params:xml:ns:rlmi";

/// The media type of an RLMI document (RFC 4662 §5), without parameters:
/// the value for the `type` parameter of the multipart/related Content-Type.
pub const RLMI_CONTENT_TYPE: &str = "application/rlmi+xml";

/// The XML declaration and the line end after it.
const DECLARATION: &str = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\r\n";
/// The list close tag and the final line end.
const LIST_CLOSE: &str = "</list>\r\n";

/// The state of one back-end subscription of a resource, written as the
/// `state` attribute of `<instance>` (RFC 4662 §5; the values are those of the
/// Subscription-State header, RFC 6665 §8.2.3).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InstanceState {
    /// `state="active"`: the subscription is accepted.
    Active,
    /// `state="pending"`: the subscription awaits authorisation.
    Pending,
    /// `state="terminated"`: the subscription has ended.
    Terminated {
        /// The `reason` attribute, an RFC 6665 event reason value such as
        /// `rejected`, `noresource` or `timeout`; left out when empty.
        reason: String,
    },
}

impl InstanceState {
    /// The `state` attribute value.
    fn as_str(&self) -> &'static str {
        match self {
            InstanceState::Active => "active",
            InstanceState::Pending => "pending",
            InstanceState::Terminated { .. } => "terminated",
        }
    }
}

/// One `<instance>` of a resource: a back-end subscription (RFC 4662 §5).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Instance {
    /// The `id` attribute: stable for the life of the back-end subscription
    /// and unique within the resource.
    pub id: String,
    /// The `state` (and, when terminated, `reason`) attributes.
    pub state: InstanceState,
    /// The `cid` attribute: the bare Content-ID (no angle brackets) of the
    /// body part that carries this instance's state, when the NOTIFY has one.
    pub cid: Option<String>,
}

/// One `<resource>` of the list (RFC 4662 §5).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resource {
    /// The `uri` attribute: the resource's URI as listed in the resource list.
    pub uri: String,
    /// The display name, written as a `<name>` child when present.
    pub name: Option<String>,
    /// The resource's instances; empty when there is no back-end subscription
    /// to report (RFC 4662 §5 allows a resource without instances).
    pub instances: Vec<Instance>,
}

/// XML of one `<resource>` element, so a caller can size a body before
/// assembling it.
///
/// The fragment is one line of the document: a space, the element, CRLF.
/// [`document`] concatenates fragments verbatim, so the fragment's length is
/// exactly what it adds to the document.
pub fn resource_xml(r: &Resource) -> String {
    let mut out = String::with_capacity(64 + r.uri.len() + 64 * r.instances.len());
    out.push_str(" <resource uri=\"");
    escape_into(&mut out, &r.uri);
    out.push_str("\">");
    if let Some(name) = &r.name {
        // RFC 4662 §5: <name> is a human-readable name for the resource; the
        // schema orders it before the instances.
        out.push_str("<name>");
        escape_into(&mut out, name);
        out.push_str("</name>");
    }
    for instance in &r.instances {
        out.push_str("<instance id=\"");
        escape_into(&mut out, &instance.id);
        out.push_str("\" state=\"");
        out.push_str(instance.state.as_str());
        out.push('"');
        if let InstanceState::Terminated { reason } = &instance.state {
            // RFC 4662 §5: "reason" accompanies a terminated instance; an
            // empty one says nothing, so it is left out.
            if !reason.is_empty() {
                out.push_str(" reason=\"");
                escape_into(&mut out, reason);
                out.push('"');
            }
        }
        if let Some(cid) = &instance.cid {
            // RFC 4662 §5: "cid" is the Content-ID of the part carrying the
            // instance's state, without the angle brackets.
            out.push_str(" cid=\"");
            escape_into(&mut out, cid);
            out.push('"');
        }
        out.push_str("/>");
    }
    out.push_str("</resource>\r\n");
    out
}

/// The full document: declaration, `<list xmlns=... uri version fullState>`,
/// the given resource XML fragments (from [`resource_xml`], verbatim and in
/// order), `</list>`.
///
/// `version` is the list subscription's counter and `full_state` says whether
/// this document lists every resource or only changed ones (RFC 4662 §5); the
/// caller keeps both.
pub fn document(list_uri: &str, version: u32, full_state: bool, resources: &[String]) -> String {
    let open = list_open(list_uri, version, full_state);
    let fragments: usize = resources.iter().map(String::len).sum();
    let mut out =
        String::with_capacity(DECLARATION.len() + open.len() + fragments + LIST_CLOSE.len());
    out.push_str(DECLARATION);
    out.push_str(&open);
    for fragment in resources {
        out.push_str(fragment);
    }
    out.push_str(LIST_CLOSE);
    out
}

/// Bytes [`document`] adds around the fragments (declaration + list open and
/// close tags, line ends included) for sizing.
pub fn document_overhead(list_uri: &str, version: u32, full_state: bool) -> usize {
    DECLARATION.len() + list_open(list_uri, version, full_state).len() + LIST_CLOSE.len()
}

/// The `<list ...>` open tag and its line end.
fn list_open(list_uri: &str, version: u32, full_state: bool) -> String {
    // RFC 4662 §5: "uri", "version" and "fullState" are all required on <list>.
    let mut out = String::with_capacity(96 + list_uri.len());
    out.push_str("<list xmlns=\"");
    out.push_str(RLMI_NS);
    out.push_str("\" uri=\"");
    escape_into(&mut out, list_uri);
    out.push_str("\" version=\"");
    out.push_str(&version.to_string());
    out.push_str("\" fullState=\"");
    out.push_str(if full_state { "true" } else { "false" });
    out.push_str("\">\r\n");
    out
}

/// Appends `text` escaped as a double-quoted attribute value (`xml`'s routine): tabs and
/// line ends become character references, which also keeps each resource fragment on one
/// CRLF-terminated line.
fn escape_into(out: &mut String, text: &str) {
    crate::xml::escape_into(out, text, true);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn instance(id: &str, state: InstanceState, cid: Option<&str>) -> Instance {
        Instance {
            id: id.to_owned(),
            state,
            cid: cid.map(str::to_owned),
        }
    }

    fn sample_resources() -> Vec<Resource> {
        vec![
            Resource {
                uri: "sip:alice@example.org".to_owned(),
                name: Some("Alice".to_owned()),
                instances: vec![instance("i0", InstanceState::Active, Some("a1@host"))],
            },
            Resource {
                uri: "sip:bob@example.org".to_owned(),
                name: None,
                instances: vec![instance("i1", InstanceState::Pending, None)],
            },
            Resource {
                uri: "sip:carol@example.org".to_owned(),
                name: Some("Carol".to_owned()),
                instances: vec![instance(
                    "i2",
                    InstanceState::Terminated {
                        reason: "rejected".to_owned(),
                    },
                    None,
                )],
            },
        ]
    }

    #[test]
    fn a_full_state_document_lists_names_and_every_instance_state() {
        let fragments: Vec<String> = sample_resources().iter().map(resource_xml).collect();
        let doc = document("sip:friends@example.org", 3, true, &fragments);
        assert_eq!(
            doc,
            concat!(
                "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\r\n",
                "<list xmlns=\"urn:ietf:params:xml:ns:rlmi\" uri=\"sip:friends@example.org\" version=\"3\" fullState=\"true\">\r\n",
                " <resource uri=\"sip:alice@example.org\"><name>Alice</name><instance id=\"i0\" state=\"active\" cid=\"a1@host\"/></resource>\r\n",
                " <resource uri=\"sip:bob@example.org\"><instance id=\"i1\" state=\"pending\"/></resource>\r\n",
                " <resource uri=\"sip:carol@example.org\"><name>Carol</name><instance id=\"i2\" state=\"terminated\" reason=\"rejected\"/></resource>\r\n",
                "</list>\r\n",
            )
        );
    }

    #[test]
    fn a_resource_is_written_as_in_the_accepted_liblinphone_capture() {
        let r = Resource {
            uri: "sip:alice@example.org".to_owned(),
            name: None,
            instances: vec![instance(
                "i0",
                InstanceState::Active,
                Some("quwa720@capture"),
            )],
        };
        assert_eq!(
            resource_xml(&r),
            " <resource uri=\"sip:alice@example.org\"><instance id=\"i0\" state=\"active\" cid=\"quwa720@capture\"/></resource>\r\n"
        );
    }

    #[test]
    fn an_empty_list_is_the_declaration_and_the_list_tags() {
        let doc = document("sip:friends@example.org", 0, true, &[]);
        assert_eq!(
            doc,
            concat!(
                "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\r\n",
                "<list xmlns=\"urn:ietf:params:xml:ns:rlmi\" uri=\"sip:friends@example.org\" version=\"0\" fullState=\"true\">\r\n",
                "</list>\r\n",
            )
        );
        assert_eq!(
            doc.len(),
            document_overhead("sip:friends@example.org", 0, true)
        );
    }

    #[test]
    fn a_partial_document_says_full_state_false() {
        let doc = document("sip:l@x", u32::MAX, false, &[]);
        assert!(doc.contains(" version=\"4294967295\" fullState=\"false\">"));
    }

    #[test]
    fn document_length_is_overhead_plus_fragment_lengths() {
        let uri = "sip:a&b<\"'>@example.org";
        let fragments: Vec<String> = sample_resources().iter().map(resource_xml).collect();
        for (version, full_state) in [(0, true), (9, false), (12345, true)] {
            let doc = document(uri, version, full_state, &fragments);
            let fragment_bytes: usize = fragments.iter().map(String::len).sum();
            assert_eq!(
                doc.len(),
                document_overhead(uri, version, full_state) + fragment_bytes
            );
        }
    }

    #[test]
    fn markup_characters_are_escaped_in_attributes_and_text() {
        let r = Resource {
            uri: "sip:a&b@x;p=\"q\"".to_owned(),
            name: Some("Tom & <Jerry> \"T\" 'J'".to_owned()),
            instances: vec![instance(
                "<&'\">",
                InstanceState::Terminated {
                    reason: "a&b".to_owned(),
                },
                Some("c'd@x"),
            )],
        };
        assert_eq!(
            resource_xml(&r),
            concat!(
                " <resource uri=\"sip:a&amp;b@x;p=&quot;q&quot;\">",
                // An apostrophe needs no reference inside double quotes or in text.
                "<name>Tom &amp; &lt;Jerry&gt; &quot;T&quot; 'J'</name>",
                "<instance id=\"&lt;&amp;'&quot;&gt;\" state=\"terminated\" reason=\"a&amp;b\" cid=\"c'd@x\"/>",
                "</resource>\r\n",
            )
        );
    }

    #[test]
    fn tabs_and_line_ends_are_written_as_references() {
        let r = Resource {
            uri: "sip:x".to_owned(),
            name: Some("a\tb\nc\r\nd".to_owned()),
            instances: vec![instance("i\t\n\r", InstanceState::Active, None)],
        };
        assert_eq!(
            resource_xml(&r),
            " <resource uri=\"sip:x\"><name>a&#9;b&#10;c&#13;&#10;d</name><instance id=\"i&#9;&#10;&#13;\" state=\"active\"/></resource>\r\n"
        );
    }

    #[test]
    fn characters_not_allowed_in_xml_are_replaced() {
        let r = Resource {
            uri: "sip:\u{0}a\u{1b}b@x".to_owned(),
            name: Some("n\u{8}\u{FFFE}\u{FFFF}\u{E000}\u{1F600}\u{7F}é".to_owned()),
            instances: vec![],
        };
        assert_eq!(
            resource_xml(&r),
            " <resource uri=\"sip:\u{FFFD}a\u{FFFD}b@x\"><name>n\u{FFFD}\u{FFFD}\u{FFFD}\u{E000}\u{1F600}\u{7F}é</name></resource>\r\n"
        );
        let doc = document("sip:\u{1}list@x", 1, true, &[]);
        assert!(doc.contains(" uri=\"sip:\u{FFFD}list@x\" "));
    }

    #[test]
    fn a_terminated_instance_without_a_reason_has_no_reason_attribute() {
        let r = Resource {
            uri: "sip:x".to_owned(),
            name: None,
            instances: vec![instance(
                "i0",
                InstanceState::Terminated {
                    reason: String::new(),
                },
                None,
            )],
        };
        assert_eq!(
            resource_xml(&r),
            " <resource uri=\"sip:x\"><instance id=\"i0\" state=\"terminated\"/></resource>\r\n"
        );
    }

    #[test]
    fn a_resource_may_have_several_instances_in_the_given_order() {
        let r = Resource {
            uri: "sip:x".to_owned(),
            name: None,
            instances: vec![
                instance("b", InstanceState::Pending, None),
                instance("a", InstanceState::Active, Some("c@h")),
            ],
        };
        assert_eq!(
            resource_xml(&r),
            " <resource uri=\"sip:x\"><instance id=\"b\" state=\"pending\"/><instance id=\"a\" state=\"active\" cid=\"c@h\"/></resource>\r\n"
        );
    }
}
