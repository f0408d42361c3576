//! A small namespace-resolved XML element tree for every document presenced reads or writes
//! (PIDF, resource lists, RLMI): a parser hardened against hostile input, a deterministic
//! writer, and the one escaping routine. A leaf: it imports nothing of presenced.
//!
//! Owns: [`Element`]/[`Node`], [`parse_document`], [`write_element`] and [`escape_into`].
//! Must not: know any vocabulary (PIDF lives in `presence::pidf`, RLMI in `rls::rlmi`),
//! expand entities beyond the five predefined ones and character references, or fetch
//! anything.
//!
//! Names are resolved to namespace URIs while parsing (Namespaces in XML 1.0 §6)
//! and the input's prefixes are discarded: code matches on URIs, never on
//! prefixes, and the writer picks its own prefixes from a [`PrefixMap`]. The
//! price is that QName-valued content (`xsi:type="r:x"`) loses its binding;
//! none of the presence extensions handled in `pidf` defines such content.
//!
//! Hostile-input rules, checked while parsing:
//! - a body above [`XmlLimits::max_bytes`], nesting deeper than
//!   [`XmlLimits::max_depth`] or more than [`XmlLimits::max_elements`]
//!   elements is rejected before or as soon as it is seen;
//! - any DOCTYPE is rejected, which is how entity declarations and external
//!   subsets arrive: nothing is ever expanded or fetched;
//! - the body must be UTF-8 (other declared encodings are refused) and only
//!   XML 1.0 characters and NCNames are accepted, so whatever is parsed can be
//!   written back well-formed.
//!
//! Line ends are read as LF (XML 1.0 §2.11) and literal whitespace in
//! attribute values as a space (§3.3.3), as any conforming parser does.
//! Whitespace-only text between child elements is dropped (every presence
//! schema uses element-only content there); text in leaf elements is kept.

use std::borrow::Cow;
use std::collections::HashSet;
use std::sync::{Arc, LazyLock};

use quick_xml::events::{BytesDecl, BytesStart, Event};
use quick_xml::name::ResolveResult;
use quick_xml::NsReader;

/// The namespace bound to the reserved `xml` prefix (Namespaces in XML 1.0 §3),
/// home of `xml:lang`.
pub const XML_NS: &str = "http://www.w3.org/XML/1998/namespace";

/// A namespace URI, shared: the URIs presence documents use come from one table
/// ([`namespace_uri`]), so an element does not carry its own copy.
pub type NamespaceUri = Arc<str>;

/// The namespace URIs of presence documents and resource lists, each held once.
static WELL_KNOWN_NAMESPACES: LazyLock<Vec<NamespaceUri>> = LazyLock::new(|| {
    [
        "urn:ietf:params:xml:ns:pidf",
        "urn:ietf:params:xml:ns:pidf:data-model",
        "urn:ietf:params:xml:ns:pidf:rpid",
        "urn:ietf:params:xml:ns:pidf:cipid",
        "urn:ietf:params:xml:ns:pidf:caps",
        "urn:ietf:params:xml:ns:pidf:geopriv10",
        "urn:ietf:params:xml:ns:pidf:status:rpid",
        "urn:ietf:params:xml:ns:rlmi",
        "urn:ietf:params:xml:ns:resource-lists",
        "urn:oma:xml:prs:pidf:oma-pres",
        XML_NS,
    ]
    .into_iter()
    .map(Arc::from)
    .collect()
});

/// `uri` as a [`NamespaceUri`]: the shared one when it is well known, a new one otherwise
/// (nothing is added to the table, whatever the input).
pub fn namespace_uri(uri: &str) -> NamespaceUri {
    WELL_KNOWN_NAMESPACES
        .iter()
        .find(|known| known.as_ref() == uri)
        .cloned()
        .unwrap_or_else(|| Arc::from(uri))
}

/// A local name: the names of presence documents and resource lists are shared static
/// strings ([`local_name`]), any other is a copy of its own.
pub type LocalName = Cow<'static, str>;

/// The local names of elements and attributes in PIDF, its data model, RPID, CIPID, RLMI and
/// resource lists, sorted for binary search.
static WELL_KNOWN_LOCAL_NAMES: &[&str] = &[
    "activities",
    "anonymous",
    "appointment",
    "away",
    "basic",
    "breakfast",
    "busy",
    "card",
    "cid",
    "class",
    "contact",
    "device",
    "deviceID",
    "dinner",
    "display-name",
    "entity",
    "entry",
    "entry-ref",
    "external",
    "from",
    "fullState",
    "holiday",
    "homepage",
    "icon",
    "id",
    "idle",
    "in-transit",
    "instance",
    "lang",
    "list",
    "lunch",
    "map",
    "meal",
    "meeting",
    "mood",
    "name",
    "note",
    "on-the-phone",
    "other",
    "permanent-absence",
    "person",
    "place-is",
    "place-type",
    "playing",
    "presence",
    "presentation",
    "priority",
    "privacy",
    "reason",
    "ref",
    "relationship",
    "resource",
    "service-class",
    "sleeping",
    "sound",
    "sphere",
    "state",
    "status",
    "status-icon",
    "steering",
    "time-offset",
    "timestamp",
    "travel",
    "tuple",
    "unknown",
    "until",
    "uri",
    "user-input",
    "vacation",
    "version",
    "video",
    "working",
    "worship",
];

/// `name` as a [`LocalName`]: the shared one when it is well known, a copy otherwise.
pub fn local_name(name: &str) -> LocalName {
    match WELL_KNOWN_LOCAL_NAMES.binary_search(&name) {
        Ok(i) => WELL_KNOWN_LOCAL_NAMES.get(i).map_or_else(
            || Cow::Owned(name.to_owned()),
            |known| Cow::Borrowed(*known),
        ),
        Err(_) => Cow::Owned(name.to_owned()),
    }
}

/// Resource limits applied by [`parse_document`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct XmlLimits {
    /// Largest accepted body, in bytes.
    pub max_bytes: usize,
    /// Deepest accepted element nesting; the root element is at depth 1.
    pub max_depth: usize,
    /// Most elements accepted in one document.
    pub max_elements: usize,
}

impl Default for XmlLimits {
    /// 64 KiB, depth 32, 2048 elements: generous for any real PUBLISH body.
    fn default() -> Self {
        Self {
            max_bytes: 64 * 1024,
            max_depth: 32,
            max_elements: 2048,
        }
    }
}

/// Why a body was not accepted as XML. Positions are byte offsets into the
/// body at or just after the offending markup.
#[derive(Debug, thiserror::Error)]
pub enum XmlError {
    /// The body is larger than [`XmlLimits::max_bytes`].
    #[error("XML body of {size} bytes exceeds the limit of {limit} bytes")]
    TooLarge {
        /// Size of the body.
        size: usize,
        /// The configured limit.
        limit: usize,
    },
    /// Elements nest deeper than [`XmlLimits::max_depth`].
    #[error("XML elements nest deeper than {limit} levels (byte {position})")]
    TooDeep {
        /// The configured limit.
        limit: usize,
        /// Where the limit was crossed.
        position: u64,
    },
    /// The document has more than [`XmlLimits::max_elements`] elements.
    #[error("XML document has more than {limit} elements (byte {position})")]
    TooManyElements {
        /// The configured limit.
        limit: usize,
        /// Where the limit was crossed.
        position: u64,
    },
    /// A DOCTYPE declaration: refused outright, so no entity is ever declared.
    #[error("DOCTYPE declarations are not accepted (byte {position})")]
    Doctype {
        /// Where the declaration ended.
        position: u64,
    },
    /// The body is not valid UTF-8.
    #[error("XML body is not valid UTF-8 (byte {position})")]
    InvalidUtf8 {
        /// First invalid byte.
        position: u64,
    },
    /// The XML declaration names an encoding other than UTF-8.
    #[error("XML declaration names an encoding other than UTF-8 (byte {position})")]
    UnsupportedEncoding {
        /// Where the declaration ended.
        position: u64,
    },
    /// Not well-formed, as detected by the tokenizer: bad syntax, mismatched
    /// end tags, unknown entity references, bad namespace declarations.
    #[error("malformed XML (byte {position})")]
    Malformed {
        /// Where the tokenizer stopped.
        position: u64,
        /// What the tokenizer found.
        #[source]
        source: quick_xml::Error,
    },
    /// An element or attribute uses a prefix that no `xmlns:` declares.
    #[error("undeclared namespace prefix (byte {position})")]
    UndeclaredPrefix {
        /// End of the tag using the prefix.
        position: u64,
    },
    /// An element or attribute name is not an XML NCName.
    #[error("invalid element or attribute name (byte {position})")]
    InvalidName {
        /// End of the tag holding the name.
        position: u64,
    },
    /// Text or an attribute value holds a character XML 1.0 §2.2 forbids.
    #[error("character not allowed in XML (byte {position})")]
    InvalidChar {
        /// End of the text or tag holding it.
        position: u64,
    },
    /// The same attribute (namespace URI and local name) appears twice.
    #[error("duplicate attribute (byte {position})")]
    DuplicateAttribute {
        /// End of the tag.
        position: u64,
    },
    /// Text or a second element outside the root element.
    #[error("content outside the root element (byte {position})")]
    ContentOutsideRoot {
        /// End of the stray content.
        position: u64,
    },
    /// The body ends before the root element is complete, or has none.
    #[error("XML document is incomplete (byte {position})")]
    Incomplete {
        /// End of the body.
        position: u64,
    },
}

/// An element with its namespace resolved.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Element {
    /// Namespace URI; `None` for an element in no namespace.
    pub ns: Option<NamespaceUri>,
    /// Local name (an NCName).
    pub local: LocalName,
    /// Attributes other than namespace declarations, in document order.
    pub attrs: Vec<Attr>,
    /// Child elements and text, in document order.
    pub children: Vec<Node>,
}

/// An attribute with its namespace resolved (unprefixed attributes are in no
/// namespace, Namespaces in XML 1.0 §6.2).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attr {
    /// Namespace URI; `None` for an unprefixed attribute.
    pub ns: Option<NamespaceUri>,
    /// Local name (an NCName).
    pub local: LocalName,
    /// Unescaped value.
    pub value: String,
}

/// A child of an [`Element`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Node {
    /// A child element.
    Element(Element),
    /// Unescaped character data (CDATA sections included).
    Text(String),
}

impl Element {
    /// An empty element `local` in namespace `ns`.
    pub fn new(ns: Option<&str>, local: &str) -> Self {
        Self {
            ns: ns.map(namespace_uri),
            local: local_name(local),
            attrs: Vec::new(),
            children: Vec::new(),
        }
    }

    /// Whether this is element `local` in namespace `ns`.
    pub fn is(&self, ns: &str, local: &str) -> bool {
        self.in_ns(ns) && self.local == local
    }

    /// Whether this element is in namespace `ns`.
    pub fn in_ns(&self, ns: &str) -> bool {
        self.ns.as_deref() == Some(ns)
    }

    /// The value of attribute `local` in namespace `ns`.
    pub fn attr(&self, ns: Option<&str>, local: &str) -> Option<&str> {
        self.attrs
            .iter()
            .find(|a| a.ns.as_deref() == ns && a.local == local)
            .map(|a| a.value.as_str())
    }

    /// Sets attribute `local` in namespace `ns`, replacing any previous value.
    pub fn set_attr(&mut self, ns: Option<&str>, local: &str, value: &str) {
        match self
            .attrs
            .iter_mut()
            .find(|a| a.ns.as_deref() == ns && a.local == local)
        {
            Some(attr) => value.clone_into(&mut attr.value),
            None => self.attrs.push(Attr {
                ns: ns.map(namespace_uri),
                local: local_name(local),
                value: value.to_owned(),
            }),
        }
    }

    /// Builder form of [`Element::set_attr`].
    pub fn with_attr(mut self, ns: Option<&str>, local: &str, value: &str) -> Self {
        self.set_attr(ns, local, value);
        self
    }

    /// Builder: appends a child element.
    pub fn with_child(mut self, child: Element) -> Self {
        self.children.push(Node::Element(child));
        self
    }

    /// Builder: appends a text node.
    pub fn with_text(mut self, text: &str) -> Self {
        self.children.push(Node::Text(text.to_owned()));
        self
    }

    /// Frees the room left in this tree's attribute and child vectors (built one push at a
    /// time, a vector keeps four slots for one child): for a tree that is kept.
    pub fn shrink_to_fit(&mut self) {
        self.attrs.shrink_to_fit();
        self.children.shrink_to_fit();
        for node in &mut self.children {
            if let Node::Element(child) = node {
                child.shrink_to_fit();
            }
        }
    }

    /// The child elements, in document order.
    pub fn elements(&self) -> impl Iterator<Item = &Element> {
        self.children.iter().filter_map(|node| match node {
            Node::Element(el) => Some(el),
            Node::Text(_) => None,
        })
    }

    /// The first child element `local` in namespace `ns`.
    pub fn find(&self, ns: &str, local: &str) -> Option<&Element> {
        self.elements().find(|el| el.is(ns, local))
    }

    /// The direct text children, concatenated.
    pub fn text(&self) -> String {
        self.children
            .iter()
            .filter_map(|node| match node {
                Node::Text(text) => Some(text.as_str()),
                Node::Element(_) => None,
            })
            .collect()
    }
}

/// Parses `bytes` into its root element, enforcing `limits` and the
/// hostile-input rules in the module documentation.
///
/// # Errors
///
/// An [`XmlError`] saying which rule the body breaks and, where it applies, at
/// which byte.
pub fn parse_document(bytes: &[u8], limits: &XmlLimits) -> Result<Element, XmlError> {
    if bytes.len() > limits.max_bytes {
        return Err(XmlError::TooLarge {
            size: bytes.len(),
            limit: limits.max_bytes,
        });
    }
    let text = std::str::from_utf8(bytes).map_err(|e| XmlError::InvalidUtf8 {
        position: e.valid_up_to() as u64,
    })?;
    let mut reader = NsReader::from_str(text.strip_prefix('\u{FEFF}').unwrap_or(text));
    reader.config_mut().check_end_names = true;
    let mut tree = TreeBuilder::new(limits);
    let mut namespaces = ResolvedNamespaces::default();
    loop {
        let event = reader.read_event().map_err(|source| XmlError::Malformed {
            position: reader.error_position(),
            source,
        })?;
        let position = reader.buffer_position();
        match event {
            Event::Start(start) => tree.open(
                read_start(&reader, &start, &mut namespaces, position)?,
                position,
            )?,
            Event::Empty(start) => {
                tree.open(
                    read_start(&reader, &start, &mut namespaces, position)?,
                    position,
                )?;
                tree.close();
            }
            // The reader checks that end tags match (`check_end_names`).
            Event::End(_) => tree.close(),
            Event::Text(raw) => {
                let raw = utf8(&raw, position)?;
                tree.text(&unescape(&normalize_line_ends(raw), position)?, position)?;
            }
            Event::CData(raw) => {
                tree.text(&normalize_line_ends(utf8(&raw, position)?), position)?;
            }
            Event::DocType(_) => return Err(XmlError::Doctype { position }),
            Event::Decl(decl) => check_encoding(&decl, position)?,
            Event::Comment(_) | Event::PI(_) => {}
            Event::Eof => return tree.finish(position),
        }
    }
}

/// Builds the tree from parser events and enforces depth and element limits.
struct TreeBuilder<'l> {
    limits: &'l XmlLimits,
    open: Vec<Element>,
    root: Option<Element>,
    elements: usize,
}

impl<'l> TreeBuilder<'l> {
    fn new(limits: &'l XmlLimits) -> Self {
        Self {
            limits,
            open: Vec::new(),
            root: None,
            elements: 0,
        }
    }

    fn open(&mut self, element: Element, position: u64) -> Result<(), XmlError> {
        if self.root.is_some() {
            return Err(XmlError::ContentOutsideRoot { position });
        }
        self.elements += 1;
        if self.elements > self.limits.max_elements {
            let limit = self.limits.max_elements;
            return Err(XmlError::TooManyElements { limit, position });
        }
        if self.open.len() >= self.limits.max_depth {
            let limit = self.limits.max_depth;
            return Err(XmlError::TooDeep { limit, position });
        }
        self.open.push(element);
        Ok(())
    }

    fn close(&mut self) {
        let Some(mut element) = self.open.pop() else {
            return; // unreachable: the reader rejects unmatched end tags
        };
        if element.elements().next().is_some() {
            element
                .children
                .retain(|node| !matches!(node, Node::Text(t) if is_xml_whitespace(t)));
        }
        // A parsed tree is kept (a publication's document lives as long as the publication):
        // no room for further attributes or children, which vectors grown one push at a
        // time would leave (four slots for one child).
        element.attrs.shrink_to_fit();
        element.children.shrink_to_fit();
        match self.open.last_mut() {
            Some(parent) => parent.children.push(Node::Element(element)),
            None => self.root = Some(element),
        }
    }

    fn text(&mut self, text: &str, position: u64) -> Result<(), XmlError> {
        if !text.chars().all(is_xml_char) {
            return Err(XmlError::InvalidChar { position });
        }
        let Some(parent) = self.open.last_mut() else {
            return if is_xml_whitespace(text) {
                Ok(())
            } else {
                Err(XmlError::ContentOutsideRoot { position })
            };
        };
        // Merge with a preceding text node, so text split by a comment or a
        // CDATA section compares equal to the same text written in one piece.
        match parent.children.last_mut() {
            Some(Node::Text(previous)) => previous.push_str(text),
            _ if text.is_empty() => {}
            _ => parent.children.push(Node::Text(text.to_owned())),
        }
        Ok(())
    }

    fn finish(self, position: u64) -> Result<Element, XmlError> {
        match (self.open.is_empty(), self.root) {
            (true, Some(root)) => Ok(root),
            _ => Err(XmlError::Incomplete { position }),
        }
    }
}

/// Resolves a start tag into an [`Element`] without children.
fn read_start(
    reader: &NsReader<&[u8]>,
    start: &BytesStart<'_>,
    namespaces: &mut ResolvedNamespaces,
    position: u64,
) -> Result<Element, XmlError> {
    let (ns, local) = reader.resolve_element(start.name());
    let mut element = Element {
        ns: namespaces.uri(ns, position)?,
        local: ncname(local.as_ref(), position)?,
        ..Element::default()
    };
    for attr in start.attributes() {
        let attr = attr.map_err(|e| XmlError::Malformed {
            position,
            source: e.into(),
        })?;
        if attr.key.as_namespace_binding().is_some() {
            continue; // declarations are consumed by the resolver
        }
        let (ns, local) = reader.resolve_attribute(attr.key);
        element.attrs.push(Attr {
            ns: namespaces.uri(ns, position)?,
            local: ncname(local.as_ref(), position)?,
            value: attribute_value(&attr.value, position)?,
        });
    }
    // Namespaces in XML 1.0 §6.3: no two attributes with the same expanded name.
    if has_duplicate(&element.attrs) {
        return Err(XmlError::DuplicateAttribute { position });
    }
    Ok(element)
}

/// Whether two of `attrs` have the same expanded name. Real elements have a few attributes,
/// compared pairwise; past `PAIRWISE_ATTRS` a set keeps a hostile element linear.
fn has_duplicate(attrs: &[Attr]) -> bool {
    const PAIRWISE_ATTRS: usize = 8;
    fn name(a: &Attr) -> (Option<&str>, &str) {
        (a.ns.as_deref(), a.local.as_ref())
    }
    if attrs.len() <= PAIRWISE_ATTRS {
        attrs
            .iter()
            .enumerate()
            .any(|(i, a)| attrs.iter().take(i).any(|b| name(a) == name(b)))
    } else {
        let mut seen = HashSet::with_capacity(attrs.len());
        !attrs.iter().all(|a| seen.insert(name(a)))
    }
}

/// The namespace URIs a document has resolved so far, by their raw declared value: each one
/// is read (normalised, unescaped, checked, shared) once per document instead of once per
/// name in it. Holds at most `MAX_RESOLVED_NAMESPACES`; a document declaring more reads the
/// rest every time.
#[derive(Default)]
struct ResolvedNamespaces(Vec<(Vec<u8>, NamespaceUri)>);

const MAX_RESOLVED_NAMESPACES: usize = 16;

impl ResolvedNamespaces {
    /// The namespace URI a name resolved to. The resolver hands over the raw `xmlns`
    /// attribute value, so it is read like any other attribute value.
    fn uri(
        &mut self,
        resolved: ResolveResult<'_>,
        position: u64,
    ) -> Result<Option<NamespaceUri>, XmlError> {
        let raw = match resolved {
            ResolveResult::Bound(ns) => ns.0,
            ResolveResult::Unbound => return Ok(None),
            ResolveResult::Unknown(_) => return Err(XmlError::UndeclaredPrefix { position }),
        };
        if let Some((_, uri)) = self.0.iter().find(|(seen, _)| seen.as_slice() == raw) {
            return Ok(Some(uri.clone()));
        }
        // A well-known URI written as is reads as itself: it has no whitespace, no reference
        // and only characters XML allows.
        let known = WELL_KNOWN_NAMESPACES
            .iter()
            .find(|known| known.as_bytes() == raw)
            .cloned();
        let uri = match known {
            Some(uri) => uri,
            None => with_attribute_value(raw, position, namespace_uri)?,
        };
        if self.0.len() < MAX_RESOLVED_NAMESPACES {
            self.0.push((raw.to_vec(), uri.clone()));
        }
        Ok(Some(uri))
    }
}

fn utf8(bytes: &[u8], position: u64) -> Result<&str, XmlError> {
    std::str::from_utf8(bytes).map_err(|_| XmlError::InvalidUtf8 { position })
}

/// Resolves the predefined entities and character references (XML 1.0 §4.6, §4.1).
fn unescape(raw: &str, position: u64) -> Result<Cow<'_, str>, XmlError> {
    quick_xml::escape::unescape(raw).map_err(|e| XmlError::Malformed {
        position,
        source: e.into(),
    })
}

/// Reads a raw attribute value: normalised, unescaped, and checked for
/// characters XML forbids.
fn attribute_value(raw: &[u8], position: u64) -> Result<String, XmlError> {
    with_attribute_value(raw, position, str::to_owned)
}

/// [`attribute_value`], handed to `take` without a copy of its own.
fn with_attribute_value<T>(
    raw: &[u8],
    position: u64,
    take: impl FnOnce(&str) -> T,
) -> Result<T, XmlError> {
    let normalized = normalize_attr_value(utf8(raw, position)?);
    let value = unescape(&normalized, position)?;
    if value.chars().all(is_xml_char) {
        Ok(take(&value))
    } else {
        Err(XmlError::InvalidChar { position })
    }
}

/// XML 1.0 §2.11: CR LF and lone CR are read as LF.
fn normalize_line_ends(raw: &str) -> Cow<'_, str> {
    if raw.contains('\r') {
        Cow::Owned(raw.replace("\r\n", "\n").replace('\r', "\n"))
    } else {
        Cow::Borrowed(raw)
    }
}

/// XML 1.0 §3.3.3: after §2.11, each literal whitespace character in an
/// attribute value is read as a space (character references are not).
fn normalize_attr_value(raw: &str) -> Cow<'_, str> {
    if raw.contains(['\t', '\n', '\r']) {
        Cow::Owned(raw.replace("\r\n", " ").replace(['\t', '\n', '\r'], " "))
    } else {
        Cow::Borrowed(raw)
    }
}

/// Checks that `name` is an NCName (Namespaces in XML 1.0 §3, XML 1.0 §2.3).
fn ncname(name: &[u8], position: u64) -> Result<LocalName, XmlError> {
    let name = utf8(name, position)?;
    let valid = match name.as_bytes().split_first() {
        // The common case, told byte by byte: an ASCII name.
        Some((first, rest)) if name.is_ascii() => {
            (first.is_ascii_alphabetic() || *first == b'_')
                && rest
                    .iter()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'))
        }
        _ => {
            let mut chars = name.chars();
            chars.next().is_some_and(is_name_start_char)
                && chars.all(|c| is_name_start_char(c) || is_name_char(c))
        }
    };
    if valid {
        Ok(local_name(name))
    } else {
        Err(XmlError::InvalidName { position })
    }
}

/// DEVIATION: XML 1.0 §4.3.3 lets a document declare any encoding; presence
/// bodies are UTF-8 in practice, so anything else is refused rather than misread.
fn check_encoding(decl: &BytesDecl<'_>, position: u64) -> Result<(), XmlError> {
    match decl.encoding() {
        None => Ok(()),
        Some(Ok(name)) if name.eq_ignore_ascii_case(b"UTF-8") => Ok(()),
        Some(Ok(_)) => Err(XmlError::UnsupportedEncoding { position }),
        Some(Err(e)) => Err(XmlError::Malformed {
            position,
            source: e.into(),
        }),
    }
}

/// XML 1.0 §2.3 NameStartChar, without ':'.
fn is_name_start_char(c: char) -> bool {
    matches!(c,
        'A'..='Z' | '_' | 'a'..='z' | '\u{C0}'..='\u{D6}' | '\u{D8}'..='\u{F6}'
        | '\u{F8}'..='\u{2FF}' | '\u{370}'..='\u{37D}' | '\u{37F}'..='\u{1FFF}'
        | '\u{200C}'..='\u{200D}' | '\u{2070}'..='\u{218F}' | '\u{2C00}'..='\u{2FEF}'
        | '\u{3001}'..='\u{D7FF}' | '\u{F900}'..='\u{FDCF}' | '\u{FDF0}'..='\u{FFFD}'
        | '\u{10000}'..='\u{EFFFF}')
}

/// XML 1.0 §2.3 NameChar minus NameStartChar.
fn is_name_char(c: char) -> bool {
    matches!(c, '-' | '.' | '0'..='9' | '\u{B7}' | '\u{300}'..='\u{36F}' | '\u{203F}'..='\u{2040}')
}

/// XML 1.0 §2.2 Char.
fn is_xml_char(c: char) -> bool {
    matches!(c,
        '\t' | '\n' | '\r' | '\u{20}'..='\u{D7FF}' | '\u{E000}'..='\u{FFFD}' | '\u{10000}'..)
}

/// XML 1.0 §2.3 S, or empty.
fn is_xml_whitespace(text: &str) -> bool {
    text.chars().all(|c| matches!(c, ' ' | '\t' | '\n' | '\r'))
}

/// Conventional prefixes for the writer: namespace URI → prefix, `None`
/// meaning the default namespace. Namespaces not listed get `ns1`, `ns2`, …
///
/// A namespace may be listed twice, first as the default and then with a
/// prefix: the prefix is used where a default namespace cannot be, on
/// attributes (Namespaces in XML 1.0 §6.2).
#[derive(Debug, Clone, Copy)]
pub struct PrefixMap<'a> {
    bindings: &'a [(&'a str, Option<&'a str>)],
}

impl<'a> PrefixMap<'a> {
    /// A map from `(namespace URI, prefix)` pairs, declared in this order.
    /// Several namespaces may be listed as the default where no tree uses two
    /// of them: the first of them a tree uses is its default, a later one is
    /// treated as unlisted.
    pub const fn new(bindings: &'a [(&'a str, Option<&'a str>)]) -> Self {
        Self { bindings }
    }

    /// The first entry for `ns`.
    fn get(&self, ns: &str) -> Option<Option<&'a str>> {
        self.bindings
            .iter()
            .find(|(uri, _)| *uri == ns)
            .map(|(_, p)| *p)
    }

    /// The first non-default prefix listed for `ns`.
    fn get_prefix(&self, ns: &str) -> Option<&'a str> {
        self.bindings
            .iter()
            .find_map(|(uri, prefix)| prefix.filter(|_| *uri == ns))
    }

    /// Where `ns` is listed; unlisted namespaces sort last.
    fn rank(&self, ns: &str) -> usize {
        let position = self.bindings.iter().position(|(uri, _)| *uri == ns);
        position.unwrap_or(self.bindings.len())
    }

    fn has_prefix(&self, prefix: &str) -> bool {
        self.bindings.iter().any(|(_, p)| *p == Some(prefix))
    }
}

/// Writes `el` and its subtree to `out`. Every namespace used anywhere in the
/// tree is declared on `el` (the default namespace is re-declared lower down
/// only around elements in no namespace), with prefixes from `prefixes`.
/// Output depends only on the tree and the map, and is well-formed for any
/// tree [`parse_document`] returns; characters XML forbids are written as
/// U+FFFD.
pub fn write_element(el: &Element, out: &mut String, prefixes: &PrefixMap<'_>) {
    let bindings = Bindings::for_tree(el, prefixes);
    write_node(el, out, &bindings, None, true);
}

/// Prefix assignment for one written tree.
struct Bindings<'t> {
    default: Option<&'t str>,
    prefixed: Vec<(&'t str, String)>,
}

impl<'t> Bindings<'t> {
    fn for_tree(root: &'t Element, prefixes: &PrefixMap<'_>) -> Self {
        let (mut element_ns, mut attr_ns) = (Vec::new(), Vec::new());
        collect_namespaces(root, &mut element_ns, &mut attr_ns);
        let mut bindings = Bindings {
            default: None,
            prefixed: Vec::new(),
        };
        let mut counter = 0;
        for ns in element_ns {
            match prefixes.get(ns) {
                Some(None) if bindings.default.is_none() => bindings.default = Some(ns),
                Some(Some(prefix)) => bindings.prefixed.push((ns, prefix.to_owned())),
                _ => bindings.bind_generated(ns, prefixes, &mut counter),
            }
        }
        // Unprefixed attributes are in no namespace, so an attribute in the
        // default namespace (e.g. pidf:mustUnderstand) needs a prefix too.
        for ns in attr_ns {
            if bindings.prefix(ns).is_none() {
                match prefixes.get_prefix(ns) {
                    Some(prefix) => bindings.prefixed.push((ns, prefix.to_owned())),
                    None => bindings.bind_generated(ns, prefixes, &mut counter),
                }
            }
        }
        // Declared in map order, then generated ones in order of first use.
        bindings.prefixed.sort_by_key(|(ns, _)| prefixes.rank(ns));
        bindings
    }

    fn bind_generated(&mut self, ns: &'t str, prefixes: &PrefixMap<'_>, counter: &mut u32) {
        loop {
            *counter += 1;
            let prefix = format!("ns{counter}");
            if !prefixes.has_prefix(&prefix) {
                self.prefixed.push((ns, prefix));
                return;
            }
        }
    }

    /// The prefix bound to `ns`; `xml` is bound implicitly.
    fn prefix(&self, ns: &str) -> Option<&str> {
        if ns == XML_NS {
            return Some("xml");
        }
        self.prefixed
            .iter()
            .find(|(uri, _)| *uri == ns)
            .map(|(_, prefix)| prefix.as_str())
    }

    /// The prefix to write for an element, `None` for unprefixed.
    fn element_prefix(&self, ns: Option<&str>) -> Option<&str> {
        match ns {
            Some(ns) if Some(ns) != self.default => self.prefix(ns),
            _ => None,
        }
    }
}

/// Namespaces used by elements and by attributes, each in order of first use.
fn collect_namespaces<'t>(
    el: &'t Element,
    element_ns: &mut Vec<&'t str>,
    attr_ns: &mut Vec<&'t str>,
) {
    fn note<'t>(list: &mut Vec<&'t str>, ns: Option<&'t str>) {
        if let Some(ns) = ns.filter(|ns| *ns != XML_NS && !list.contains(ns)) {
            list.push(ns);
        }
    }
    note(element_ns, el.ns.as_deref());
    for attr in &el.attrs {
        note(attr_ns, attr.ns.as_deref());
    }
    for child in el.elements() {
        collect_namespaces(child, element_ns, attr_ns);
    }
}

fn write_node(
    el: &Element,
    out: &mut String,
    bindings: &Bindings<'_>,
    in_scope_default: Option<&str>,
    is_root: bool,
) {
    let prefix = bindings.element_prefix(el.ns.as_deref());
    out.push('<');
    write_qname(out, prefix, &el.local);
    // The default namespace in scope for this element and its children.
    let scope_default = match el.ns.as_deref() {
        None => None,
        Some(_) if prefix.is_none() => bindings.default,
        Some(_) => in_scope_default,
    };
    if scope_default != in_scope_default {
        write_attr(out, None, "xmlns", scope_default.unwrap_or(""));
    }
    if is_root {
        for (ns, prefix) in &bindings.prefixed {
            write_attr(out, Some("xmlns"), prefix, ns);
        }
    }
    for attr in &el.attrs {
        let prefix = attr.ns.as_deref().and_then(|ns| bindings.prefix(ns));
        write_attr(out, prefix, &attr.local, &attr.value);
    }
    if el.children.is_empty() {
        out.push_str("/>");
        return;
    }
    out.push('>');
    for child in &el.children {
        match child {
            Node::Element(child) => write_node(child, out, bindings, scope_default, false),
            Node::Text(text) => escape_into(out, text, false),
        }
    }
    out.push_str("</");
    write_qname(out, prefix, &el.local);
    out.push('>');
}

fn write_qname(out: &mut String, prefix: Option<&str>, local: &str) {
    if let Some(prefix) = prefix {
        out.push_str(prefix);
        out.push(':');
    }
    out.push_str(local);
}

fn write_attr(out: &mut String, prefix: Option<&str>, local: &str, value: &str) {
    out.push(' ');
    write_qname(out, prefix, local);
    out.push_str("=\"");
    escape_into(out, value, true);
    out.push('"');
}

/// Escapes character data or a double-quoted attribute value. Whitespace
/// other than space is written as a character reference in attributes and
/// CR everywhere, so it survives XML 1.0 §2.11 and §3.3.3 normalisation;
/// characters XML 1.0 forbids become U+FFFD.
pub fn escape_into(out: &mut String, text: &str, in_attr: bool) {
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '\r' => out.push_str("&#13;"),
            '"' if in_attr => out.push_str("&quot;"),
            '\t' if in_attr => out.push_str("&#9;"),
            '\n' if in_attr => out.push_str("&#10;"),
            c if is_xml_char(c) => out.push(c),
            _ => out.push('\u{FFFD}'),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    type TestResult = Result<(), Box<dyn std::error::Error>>;

    const RPID: &str = "urn:ietf:params:xml:ns:pidf:rpid";
    const PREFIXES: PrefixMap<'static> = PrefixMap::new(&[("urn:a", None), (RPID, Some("rpid"))]);

    fn parse(xml: &str) -> Result<Element, XmlError> {
        parse_document(xml.as_bytes(), &XmlLimits::default())
    }

    fn write(el: &Element) -> String {
        let mut out = String::new();
        write_element(el, &mut out, &PREFIXES);
        out
    }

    /// Every vector of the tree holds exactly its items.
    fn assert_compact(el: &Element) {
        assert_eq!(el.attrs.capacity(), el.attrs.len(), "<{}> attrs", el.local);
        assert_eq!(
            el.children.capacity(),
            el.children.len(),
            "<{}> children",
            el.local
        );
        el.elements().for_each(assert_compact);
    }

    #[test]
    fn the_namespaces_of_presence_documents_are_shared_and_others_are_not() -> TestResult {
        use crate::presence::pidf::{
            CAPS_NS, CIPID_NS, DATA_MODEL_NS, GEOPRIV_NS, PIDF_NS, RPID_NS,
        };
        use crate::rls::{resource_lists::RESOURCE_LISTS_NS, rlmi::RLMI_NS};
        for ns in [
            PIDF_NS,
            DATA_MODEL_NS,
            RPID_NS,
            CIPID_NS,
            CAPS_NS,
            GEOPRIV_NS,
            RLMI_NS,
            RESOURCE_LISTS_NS,
            XML_NS,
        ] {
            assert!(Arc::ptr_eq(&namespace_uri(ns), &namespace_uri(ns)), "{ns}");
        }
        let other = "urn:example:not-known";
        assert!(!Arc::ptr_eq(&namespace_uri(other), &namespace_uri(other)));
        // Parsed elements, escaped URIs included, carry the shared URI.
        let root = parse(
            r#"<p:presence xmlns:p="urn:ietf:params:xml:ns:pid&#102;"><p:tuple/></p:presence>"#,
        )?;
        let tuple = root.elements().next().ok_or("no tuple")?;
        for ns in [&root.ns, &tuple.ns] {
            let ns = ns.as_ref().ok_or("no namespace")?;
            assert!(Arc::ptr_eq(ns, &namespace_uri(PIDF_NS)));
        }
        Ok(())
    }

    #[test]
    fn parsed_and_compacted_trees_keep_no_spare_room() -> TestResult {
        let root = parse(
            "<a xmlns='urn:a' x='1' y='2'><b z='3'><c/>t<d/></b><e>text</e><f/><g/><h/></a>",
        )?;
        assert_compact(&root);
        let mut built = Element::new(Some("urn:a"), "a")
            .with_attr(None, "x", "1")
            .with_child(Element::new(Some("urn:a"), "b").with_text("t"));
        built.attrs.reserve(4);
        if let Some(Node::Element(b)) = built.children.first_mut() {
            b.children.reserve(4);
        }
        built.children.reserve(4);
        assert!(built.children.capacity() > built.children.len());
        built.shrink_to_fit();
        assert_compact(&built);
        assert_eq!(write(&built), "<a xmlns=\"urn:a\" x=\"1\"><b>t</b></a>");
        Ok(())
    }

    fn nested(depth: usize) -> String {
        format!("{}{}", "<a>".repeat(depth), "</a>".repeat(depth))
    }

    #[test]
    fn names_are_resolved_to_namespace_uris_whatever_the_prefix() -> TestResult {
        let root = parse(
            r#"<x:root xmlns:x="urn:a" xmlns="urn:b"><child/><y:child xmlns:y="urn:a" y:at="1" at="2"/></x:root>"#,
        )?;
        assert!(root.is("urn:a", "root"));
        let children: Vec<_> = root.elements().collect();
        assert!(children[0].is("urn:b", "child"));
        assert!(children[1].is("urn:a", "child"));
        assert_eq!(children[1].attr(Some("urn:a"), "at"), Some("1"));
        assert_eq!(children[1].attr(None, "at"), Some("2"));
        assert_eq!(
            children[1].attrs.len(),
            2,
            "xmlns declarations are not attributes"
        );
        Ok(())
    }

    #[test]
    fn namespace_uris_are_unescaped_like_attribute_values() -> TestResult {
        let root = parse(
            r#"<a xmlns="urn:x&amp;y" xmlns:p="urn:ietf:params:xml:ns:pid&#102;"><p:b/></a>"#,
        )?;
        assert!(root.in_ns("urn:x&y"));
        assert!(root
            .elements()
            .any(|b| b.is("urn:ietf:params:xml:ns:pidf", "b")));
        assert_eq!(parse(&write(&root))?, root);
        Ok(())
    }

    #[test]
    fn text_is_unescaped_with_predefined_entities_and_character_references() -> TestResult {
        let root =
            parse("<a t=\"&quot;&#x41;&amp;\">1 &lt; 2 &#233;&#x2014; <![CDATA[<raw&>]]></a>")?;
        assert_eq!(root.text(), "1 < 2 é— <raw&>");
        assert_eq!(root.attr(None, "t"), Some("\"A&"));
        Ok(())
    }

    #[test]
    fn xml_lang_is_kept_in_the_xml_namespace() -> TestResult {
        let root = parse(r#"<note xml:lang="fr">Bonjour</note>"#)?;
        assert_eq!(root.attr(Some(XML_NS), "lang"), Some("fr"));
        assert!(write(&root).contains(r#"xml:lang="fr""#));
        Ok(())
    }

    #[test]
    fn line_ends_and_attribute_whitespace_are_normalised_as_xml_requires() -> TestResult {
        let root = parse("<a v='x\r\ny\tz&#10;'>l1\r\nl2\rl3&#13;<![CDATA[\r\n]]></a>")?;
        assert_eq!(root.attr(None, "v"), Some("x y z\n"));
        assert_eq!(root.text(), "l1\nl2\nl3\r\n");
        Ok(())
    }

    #[test]
    fn whitespace_between_elements_is_dropped_but_leaf_text_is_kept() -> TestResult {
        let root = parse("<a>\n  <b>  padded  </b>\n  <c> </c>\n</a>")?;
        assert_eq!(root.children.len(), 2);
        assert_eq!(
            root.find_local("b").map(Element::text).as_deref(),
            Some("  padded  ")
        );
        assert_eq!(
            root.find_local("c").map(Element::text).as_deref(),
            Some(" ")
        );
        Ok(())
    }

    #[test]
    fn doctype_is_rejected() {
        let result = parse(r#"<!DOCTYPE presence SYSTEM "http://example.com/x.dtd"><presence/>"#);
        assert!(matches!(result, Err(XmlError::Doctype { .. })));
    }

    #[test]
    fn billion_laughs_entity_declarations_are_rejected_without_expansion() {
        let xml = r#"<?xml version="1.0"?>
<!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">]>
<lolz>&lol2;</lolz>"#;
        assert!(matches!(parse(xml), Err(XmlError::Doctype { .. })));
        let xml = r#"<!DOCTYPE x [<!ENTITY a "b">]><x>&a;</x>"#;
        assert!(matches!(parse(xml), Err(XmlError::Doctype { .. })));
    }

    #[test]
    fn unknown_entity_reference_is_rejected() {
        assert!(matches!(
            parse("<a>&a;</a>"),
            Err(XmlError::Malformed { .. })
        ));
        assert!(matches!(
            parse(r#"<a b="&x;"/>"#),
            Err(XmlError::Malformed { .. })
        ));
    }

    #[test]
    fn malformed_documents_are_rejected() {
        for xml in [
            "<a><b></a></b>",
            "<a>",
            "<a",
            "",
            "   ",
            "<a/><b/>",
            "text<a/>",
            "<a></a>tail",
            "<a b=c/>",
            "<a & b/>",
        ] {
            assert!(parse(xml).is_err(), "accepted {xml:?}");
        }
        assert!(matches!(
            parse("<a><b></a>"),
            Err(XmlError::Malformed { .. })
        ));
        assert!(matches!(parse("<a><b>"), Err(XmlError::Incomplete { .. })));
        assert!(matches!(
            parse("<a/><b/>"),
            Err(XmlError::ContentOutsideRoot { .. })
        ));
    }

    #[test]
    fn undeclared_prefix_is_rejected() {
        assert!(matches!(
            parse("<p:a/>"),
            Err(XmlError::UndeclaredPrefix { .. })
        ));
        assert!(matches!(
            parse(r#"<a p:b="1"/>"#),
            Err(XmlError::UndeclaredPrefix { .. })
        ));
    }

    #[test]
    fn invalid_utf8_is_rejected() {
        let result = parse_document(b"<a>\xff</a>", &XmlLimits::default());
        assert!(matches!(result, Err(XmlError::InvalidUtf8 { position: 3 })));
    }

    #[test]
    fn encodings_other_than_utf8_are_rejected() {
        let result = parse(r#"<?xml version="1.0" encoding="ISO-8859-1"?><a/>"#);
        assert!(matches!(result, Err(XmlError::UnsupportedEncoding { .. })));
        assert!(parse(r#"<?xml version="1.0" encoding="utf-8"?><a/>"#).is_ok());
    }

    #[test]
    fn characters_xml_forbids_are_rejected_even_as_references() {
        assert!(matches!(
            parse("<a>&#1;</a>"),
            Err(XmlError::InvalidChar { .. }) | Err(XmlError::Malformed { .. })
        ));
        assert!(matches!(
            parse("<a>\u{1}</a>"),
            Err(XmlError::InvalidChar { .. })
        ));
    }

    #[test]
    fn names_that_are_not_ncnames_are_rejected() {
        assert!(matches!(parse("<1a/>"), Err(XmlError::InvalidName { .. })));
        assert!(matches!(
            parse(r#"<a xmlns:p="urn:p"><p:b:c/></a>"#),
            Err(XmlError::InvalidName { .. })
        ));
    }

    #[test]
    fn well_known_local_names_are_shared_and_others_copied() -> TestResult {
        assert!(WELL_KNOWN_LOCAL_NAMES.windows(2).all(|w| w[0] < w[1]));
        for name in WELL_KNOWN_LOCAL_NAMES {
            assert!(matches!(local_name(name), Cow::Borrowed(n) if n == *name));
        }
        assert!(matches!(local_name("x-custom"), Cow::Owned(n) if n == "x-custom"));
        let root = parse(
            r#"<presence xmlns="urn:ietf:params:xml:ns:pidf"><tuple id="a"><x-custom/></tuple></presence>"#,
        )?;
        assert!(matches!(root.local, Cow::Borrowed("presence")));
        let tuple = root.elements().next().ok_or("no tuple")?;
        assert!(matches!(
            tuple.attrs.first().map(|a| &a.local),
            Some(Cow::Borrowed("id"))
        ));
        assert!(
            matches!(tuple.elements().next().map(|e| &e.local), Some(Cow::Owned(n)) if n == "x-custom")
        );
        Ok(())
    }

    #[test]
    fn names_are_checked_alike_whether_ascii_or_not() -> TestResult {
        for bad in ["<-a/>", "<.a/>", "<a$/>", "<a \u{B7}c=\"2\"/>", "<\u{D7}/>"] {
            assert!(
                matches!(parse(bad), Err(XmlError::InvalidName { .. })),
                "{bad}"
            );
        }
        let root = parse("<_a.b-c9 é\u{B7}d=\"1\"><\u{C0}x\u{300}/></_a.b-c9>")?;
        assert_eq!(root.local, "_a.b-c9");
        assert_eq!(root.attr(None, "é\u{B7}d"), Some("1"));
        assert_eq!(
            root.elements().next().map(|e| e.local.as_ref()),
            Some("\u{C0}x\u{300}")
        );
        Ok(())
    }

    #[test]
    fn duplicate_attributes_are_found_among_few_and_among_many() -> TestResult {
        let many = |dup: bool| {
            let mut xml = String::from(r#"<a xmlns:p="urn:x" xmlns:q="urn:x""#);
            for i in 0..40 {
                xml.push_str(&format!(r#" a{i}="{i}""#));
            }
            xml.push_str(if dup {
                r#" p:b="1" q:b="2"/>"#
            } else {
                r#" p:b="1" b="2"/>"#
            });
            xml
        };
        assert!(matches!(
            parse(&many(true)),
            Err(XmlError::DuplicateAttribute { .. })
        ));
        assert_eq!(parse(&many(false))?.attrs.len(), 42);
        assert!(matches!(
            parse(r#"<a xmlns:p="urn:x" xmlns:q="urn:x" p:b="1" c="2" q:b="3"/>"#),
            Err(XmlError::DuplicateAttribute { .. })
        ));
        // The same local name in two namespaces is two attributes.
        assert_eq!(
            parse(r#"<a xmlns:p="urn:x" b="1" p:b="2"/>"#)?.attrs.len(),
            2
        );
        Ok(())
    }

    #[test]
    fn the_same_attribute_under_two_prefixes_is_rejected() {
        let xml = r#"<a xmlns:p="urn:x" xmlns:q="urn:x" p:b="1" q:b="2"/>"#;
        assert!(matches!(
            parse(xml),
            Err(XmlError::DuplicateAttribute { .. })
        ));
    }

    #[test]
    fn body_above_max_bytes_is_rejected() {
        let limits = XmlLimits {
            max_bytes: 10,
            ..XmlLimits::default()
        };
        let result = parse_document(b"<a>0123456789</a>", &limits);
        assert!(matches!(
            result,
            Err(XmlError::TooLarge {
                size: 17,
                limit: 10
            })
        ));
    }

    #[test]
    fn nesting_deeper_than_max_depth_is_rejected() {
        let limits = XmlLimits {
            max_depth: 4,
            ..XmlLimits::default()
        };
        assert!(parse_document(nested(4).as_bytes(), &limits).is_ok());
        let result = parse_document(nested(5).as_bytes(), &limits);
        assert!(matches!(result, Err(XmlError::TooDeep { limit: 4, .. })));
    }

    #[test]
    fn more_than_max_elements_is_rejected() {
        let limits = XmlLimits {
            max_elements: 3,
            ..XmlLimits::default()
        };
        assert!(parse_document(b"<a><b/><b/></a>", &limits).is_ok());
        let result = parse_document(b"<a><b/><b/><b/></a>", &limits);
        assert!(matches!(
            result,
            Err(XmlError::TooManyElements { limit: 3, .. })
        ));
    }

    #[test]
    fn writer_declares_every_namespace_on_the_root_with_mapped_or_generated_prefixes() -> TestResult
    {
        let root = parse(
            r#"<root xmlns="urn:a"><r:x xmlns:r="urn:ietf:params:xml:ns:pidf:rpid"><o:y xmlns:o="urn:other" o:z="1"/></r:x><u:w xmlns:u="urn:unknown"/></root>"#,
        )?;
        assert_eq!(
            write(&root),
            r#"<root xmlns="urn:a" xmlns:rpid="urn:ietf:params:xml:ns:pidf:rpid" xmlns:ns1="urn:other" xmlns:ns2="urn:unknown"><rpid:x><ns1:y ns1:z="1"/></rpid:x><ns2:w/></root>"#
        );
        Ok(())
    }

    #[test]
    fn writer_escapes_text_and_attributes_so_output_parses_back_equal() -> TestResult {
        let root = Element::new(Some("urn:a"), "a")
            .with_attr(None, "v", "\"<&>'\t\n\r")
            .with_text("<&>]]>\r\n\"'");
        let written = write(&root);
        assert_eq!(
            written,
            r#"<a xmlns="urn:a" v="&quot;&lt;&amp;&gt;'&#9;&#10;&#13;">&lt;&amp;&gt;]]&gt;&#13;
"'</a>"#
        );
        assert_eq!(parse(&written)?, root);
        Ok(())
    }

    #[test]
    fn writer_replaces_characters_xml_forbids() {
        let root = Element::new(None, "a").with_text("x\u{1}y");
        assert_eq!(write(&root), "<a>x\u{FFFD}y</a>");
    }

    #[test]
    fn writer_undeclares_the_default_namespace_around_elements_in_no_namespace() -> TestResult {
        let root = Element::new(Some("urn:a"), "a")
            .with_child(Element::new(None, "plain").with_child(Element::new(Some("urn:a"), "b")));
        let written = write(&root);
        assert_eq!(
            written,
            r#"<a xmlns="urn:a"><plain xmlns=""><b xmlns="urn:a"/></plain></a>"#
        );
        assert_eq!(parse(&written)?, root);
        Ok(())
    }

    #[test]
    fn writer_prefixes_attributes_in_the_default_namespace() -> TestResult {
        let root = Element::new(Some("urn:a"), "a").with_attr(Some("urn:a"), "flag", "1");
        let written = write(&root);
        assert_eq!(
            written,
            r#"<a xmlns="urn:a" xmlns:ns1="urn:a" ns1:flag="1"/>"#
        );
        assert_eq!(parse(&written)?, root);
        Ok(())
    }

    #[test]
    fn generated_prefixes_skip_prefixes_the_map_uses() {
        let prefixes = PrefixMap::new(&[("urn:taken", Some("ns1"))]);
        let root =
            Element::new(Some("urn:new"), "a").with_child(Element::new(Some("urn:taken"), "b"));
        let mut out = String::new();
        write_element(&root, &mut out, &prefixes);
        assert_eq!(
            out,
            r#"<ns2:a xmlns:ns1="urn:taken" xmlns:ns2="urn:new"><ns1:b/></ns2:a>"#
        );
    }

    impl Element {
        fn find_local(&self, local: &str) -> Option<&Element> {
            self.elements().find(|el| el.local == local)
        }
    }
}
