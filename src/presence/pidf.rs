//! RFC 3863 PIDF documents: the typed model, parsing and serialisation.
//!
//! Owns: [`PidfDocument`] and its parts, [`parse`], [`serialize`], and the
//! conventional output prefixes.
//! Must not: compose documents from several sources (that is `aggregation`),
//! check that `entity` matches the presentity (the caller does, when it
//! accepts a publication), or touch XML below the element tree
//! (that is `xml`).
//!
//! The model types the PIDF vocabulary and keeps everything else intact as
//! [`Element`] trees, namespaces included: RFC 4479 `dm:person` and
//! `dm:device`, RPID (RFC 4480), CIPID (RFC 4482), caps (RFC 5196), GEOPRIV
//! (RFC 4119) and anything unknown. PIDF-namespace elements must sit where the
//! RFC 3863 §4.4 schema puts them; any order of the extension elements is
//! accepted on input, and output follows the schema's sequences:
//!
//! ```text
//! presence: tuple*, note*, ##other* (persons, devices, then the rest)
//! tuple:    status, ##other*, contact?, note*, timestamp?
//! status:   basic?, ##other*
//! ```
//!
//! Output uses the same prefixes whatever the input used: PIDF as the default
//! namespace, `rpid`, `dm`, `c`, `caps` and `gp` (see [`PREFIXES`]); baresip
//! recognises RPID only under the literal `rpid:` prefix.

use crate::xml::{
    namespace_uri, parse_document, write_element, Element, Node, PrefixMap, XmlError, XmlLimits,
    XML_NS,
};

/// The PIDF namespace (RFC 3863 §4.4).
pub const PIDF_NS: &str = "urn:ietf:params:xml:ns:pidf";
/// The namespace of CPIM-PIDF, the draft PIDF that preceded RFC 3863 (SER's pa module served
/// it as `application/cpim-pidf+xml`); the same vocabulary under another namespace.
pub const CPIM_PIDF_NS: &str = "urn:ietf:params:xml:ns:cpim-pidf";

/// The presence data model namespace of RFC 4479 (`dm:person`, `dm:device`).
pub const DATA_MODEL_NS: &str = "urn:ietf:params:xml:ns:pidf:data-model";
/// The RPID namespace (RFC 4480).
pub const RPID_NS: &str = "urn:ietf:params:xml:ns:pidf:rpid";
/// The CIPID namespace (RFC 4482).
pub const CIPID_NS: &str = "urn:ietf:params:xml:ns:pidf:cipid";
/// The service capabilities namespace (RFC 5196).
pub const CAPS_NS: &str = "urn:ietf:params:xml:ns:pidf:caps";
/// The GEOPRIV location object namespace (RFC 4119).
pub const GEOPRIV_NS: &str = "urn:ietf:params:xml:ns:pidf:geopriv10";

/// The OMA presence namespace (OMA-SUP-XSD_prs_pidf_omapres), whose `service-description`
/// carries a service's id and version.
pub const OMA_PRES_NS: &str = "urn:oma:xml:prs:pidf:oma-pres";

/// The prefixes [`serialize`] writes: PIDF as the default namespace (and as
/// `pidf` on attributes such as the RFC 3863 `mustUnderstand`), then the
/// conventional prefixes of RFCs 4480, 4479, 4482, 5196 and 4119.
pub const PREFIXES: PrefixMap<'static> = PrefixMap::new(&[
    (PIDF_NS, None),
    (PIDF_NS, Some("pidf")),
    // A CPIM-PIDF document has it in PIDF's place (no document has both).
    (CPIM_PIDF_NS, None),
    (CPIM_PIDF_NS, Some("pidf")),
    (RPID_NS, Some("rpid")),
    (DATA_MODEL_NS, Some("dm")),
    (CIPID_NS, Some("c")),
    (CAPS_NS, Some("caps")),
    (GEOPRIV_NS, Some("gp")),
    (OMA_PRES_NS, Some("op")),
]);

const XML_DECLARATION: &str = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n";

/// A PIDF `<presence>` document (RFC 3863).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PidfDocument {
    /// The `entity` attribute: the presentity's URI, unchecked.
    pub entity: String,
    /// The `<tuple>` elements, in document order.
    pub tuples: Vec<Tuple>,
    /// Presence-level `<note>` elements.
    pub notes: Vec<Note>,
    /// RFC 4479 `<dm:person>` elements, kept intact.
    pub persons: Vec<Element>,
    /// RFC 4479 `<dm:device>` elements, kept intact.
    pub devices: Vec<Element>,
    /// Every other top-level element (from a non-PIDF namespace), kept intact.
    pub extensions: Vec<Element>,
}

impl PidfDocument {
    /// A document for `entity` with nothing in it.
    pub fn new(entity: &str) -> Self {
        Self {
            entity: entity.to_owned(),
            tuples: Vec::new(),
            notes: Vec::new(),
            persons: Vec::new(),
            devices: Vec::new(),
            extensions: Vec::new(),
        }
    }
}

/// A `<tuple>` (RFC 3863).
///
/// The typed fields are authoritative for PIDF content; [`Tuple::element`]
/// carries everything else (attributes of `tuple` and `status` other than
/// `id`, `##other` children of `status` and of `tuple`). On parse, `element`
/// is stored in the canonical form [`Tuple::to_element`] produces.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tuple {
    /// The `id` attribute (an `xs:ID`, unique within a document).
    pub id: String,
    /// `<status><basic>`: optional in the RFC 3863 §4.4 schema.
    pub basic: Option<BasicStatus>,
    /// `<contact>`.
    pub contact: Option<Contact>,
    /// Tuple-level `<note>` elements.
    pub notes: Vec<Note>,
    /// `<timestamp>`, as written (an `xs:dateTime`, not checked).
    pub timestamp: Option<String>,
    /// The tuple element, holding the extension content.
    pub element: Element,
}

/// `<basic>` values (RFC 3863).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BasicStatus {
    /// `open`: the contact address can accept communication.
    Open,
    /// `closed`: it cannot.
    Closed,
}

/// `<contact>` (RFC 3863).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Contact {
    /// The contact URI.
    pub uri: String,
    /// The `priority` attribute.
    pub priority: Option<QValue>,
}

/// A `qvalue` (RFC 3863 §4.4 `tns:qvalue`, the RFC 3261 §25.1 ABNF), held in
/// thousandths so that it compares and prints exactly.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct QValue(u16);

/// A `<note>` (RFC 3863), at presence or tuple level.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Note {
    /// The `xml:lang` attribute.
    pub lang: Option<String>,
    /// The note text.
    pub text: String,
}

/// Why a body was not accepted as PIDF.
#[derive(Debug, thiserror::Error)]
pub enum PidfError {
    /// Not well-formed or over a limit.
    #[error(transparent)]
    Xml(#[from] XmlError),
    /// The root is not `<presence>` in the PIDF namespace.
    #[error("root element is not <presence> in namespace {PIDF_NS}")]
    NotPidf,
    /// `<presence>` has no (or an empty) `entity` attribute.
    #[error("<presence> has no entity attribute")]
    MissingEntity,
    /// A `<tuple>` breaks the RFC 3863 §4.4 schema.
    #[error("tuple {id:?}: {problem}")]
    InvalidTuple {
        /// The tuple's id, when it has one.
        id: Option<String>,
        /// What is wrong with it.
        problem: TupleProblem,
    },
    /// A PIDF-namespace child of `<presence>` other than `<tuple>` and `<note>`.
    #[error("unexpected PIDF element <{local}> in <presence>")]
    UnexpectedElement {
        /// The unexpected element's local name.
        local: String,
    },
}

/// What is wrong with a `<tuple>`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TupleProblem {
    /// No (or an empty) `id` attribute.
    #[error("no id attribute")]
    MissingId,
    /// No `<status>` element.
    #[error("no <status> element")]
    MissingStatus,
    /// `<basic>` is neither `open` nor `closed`.
    #[error("<basic> is neither open nor closed")]
    InvalidBasic,
    /// `priority` is not a qvalue.
    #[error("contact priority is not a qvalue")]
    InvalidPriority,
    /// An element the schema allows once appears again.
    #[error("more than one <{0}>")]
    Repeated(&'static str),
    /// A PIDF-namespace element the schema does not allow in `<tuple>` or `<status>`.
    #[error("unexpected PIDF element <{0}>")]
    UnexpectedElement(String),
}

/// Parses a PIDF body (RFC 3863) under `limits`.
///
/// # Errors
///
/// [`PidfError::Xml`] if the body is not acceptable XML, otherwise the first
/// PIDF rule it breaks.
pub fn parse(body: &[u8], limits: &XmlLimits) -> Result<PidfDocument, PidfError> {
    let mut root = parse_document(body, limits)?;
    if root.is(CPIM_PIDF_NS, "presence") {
        // CPIM-PIDF is PIDF under its draft namespace: read as PIDF from here on.
        swap_namespace(&mut root, CPIM_PIDF_NS, PIDF_NS);
    }
    if !root.is(PIDF_NS, "presence") {
        return Err(PidfError::NotPidf);
    }
    let entity = root
        .attr(None, "entity")
        .filter(|entity| !entity.is_empty())
        .ok_or(PidfError::MissingEntity)?;
    let mut doc = PidfDocument::new(entity);
    // The children are moved into the document, not copied.
    for node in root.children {
        let Node::Element(child) = node else {
            continue;
        };
        if child.in_ns(PIDF_NS) {
            match child.local.as_ref() {
                "tuple" => doc.tuples.push(parse_tuple(child)?),
                "note" => doc.notes.push(parse_note(&child)),
                _ => {
                    let local = child.local.into_owned();
                    return Err(PidfError::UnexpectedElement { local });
                }
            }
        } else if child.is(DATA_MODEL_NS, "person") {
            doc.persons.push(child);
        } else if child.is(DATA_MODEL_NS, "device") {
            doc.devices.push(child);
        } else {
            doc.extensions.push(child);
        }
    }
    Ok(doc)
}

/// Moves every element and attribute of `el`'s tree in namespace `from` to `to`.
fn swap_namespace(el: &mut Element, from: &str, to: &str) {
    if el.in_ns(from) {
        el.ns = Some(namespace_uri(to));
    }
    for attr in &mut el.attrs {
        if attr.ns.as_deref() == Some(from) {
            attr.ns = Some(namespace_uri(to));
        }
    }
    for child in &mut el.children {
        if let Node::Element(child) = child {
            swap_namespace(child, from, to);
        }
    }
}

/// Writes `doc` as CPIM-PIDF (`application/cpim-pidf+xml`): [`serialize`]'s document with the
/// PIDF namespace replaced by the draft's.
pub fn serialize_cpim(doc: &PidfDocument) -> String {
    let mut root = presence_element(doc);
    swap_namespace(&mut root, PIDF_NS, CPIM_PIDF_NS);
    let mut out = String::from(XML_DECLARATION);
    write_element(&root, &mut out, &PREFIXES);
    out
}

/// Writes `doc` as a UTF-8 PIDF body with an XML declaration, in RFC 3863
/// §4.4 element order and with [`PREFIXES`].
pub fn serialize(doc: &PidfDocument) -> String {
    let root = presence_element(doc);
    let mut out = String::from(XML_DECLARATION);
    write_element(&root, &mut out, &PREFIXES);
    out
}

/// `doc` as one `<presence>` element tree, in RFC 3863 §4.4 order.
fn presence_element(doc: &PidfDocument) -> Element {
    let mut root = Element::new(Some(PIDF_NS), "presence").with_attr(None, "entity", &doc.entity);
    let tuples = doc.tuples.iter().map(Tuple::to_element);
    let notes = doc.notes.iter().map(Note::to_element);
    let others = doc
        .persons
        .iter()
        .chain(&doc.devices)
        .chain(&doc.extensions)
        .cloned();
    root.children = tuples
        .chain(notes)
        .chain(others)
        .map(Node::Element)
        .collect();
    root
}

impl Tuple {
    /// A tuple with only an id and a basic status.
    pub fn new(id: &str, basic: Option<BasicStatus>) -> Self {
        let mut tuple = Self::unbuilt(id, basic);
        tuple.element = tuple.to_element();
        tuple
    }

    /// A tuple with only an id and a basic status, its [`Tuple::element`] not built yet: for
    /// callers that fill in more fields and then call [`Tuple::rebuild_element`].
    pub fn unbuilt(id: &str, basic: Option<BasicStatus>) -> Self {
        Self {
            id: id.to_owned(),
            basic,
            contact: None,
            notes: Vec::new(),
            timestamp: None,
            element: Element::new(Some(PIDF_NS), "tuple"),
        }
    }

    /// Rebuilds [`Tuple::element`] from the typed fields and its own extension content
    /// ([`Tuple::to_element`]), compacted to be kept.
    pub fn rebuild_element(&mut self) {
        self.element = self.to_element();
        self.element.shrink_to_fit();
    }

    /// Changes the id, in the field and in [`Tuple::element`].
    pub fn set_id(&mut self, id: &str) {
        id.clone_into(&mut self.id);
        self.element.set_attr(None, "id", id);
    }

    /// The tuple as an element in RFC 3863 §4.4 order: the typed fields, plus
    /// the extension content of [`Tuple::element`].
    pub fn to_element(&self) -> Element {
        let source_status = self.element.find(PIDF_NS, "status");
        let mut status = Element::new(Some(PIDF_NS), "status");
        if let Some(source_status) = source_status {
            status.attrs.clone_from(&source_status.attrs);
        }
        if let Some(basic) = self.basic {
            status = status.with_child(leaf("basic", basic.as_str()));
        }
        status
            .children
            .extend(source_status.into_iter().flat_map(foreign_children));

        let mut tuple = Element::new(Some(PIDF_NS), "tuple").with_attr(None, "id", &self.id);
        let other_attrs = self
            .element
            .attrs
            .iter()
            .filter(|a| !(a.ns.is_none() && a.local == "id"));
        tuple.attrs.extend(other_attrs.cloned());
        tuple = tuple.with_child(status);
        tuple.children.extend(foreign_children(&self.element));
        if let Some(contact) = &self.contact {
            tuple = tuple.with_child(contact.to_element());
        }
        tuple
            .children
            .extend(self.notes.iter().map(|n| Node::Element(n.to_element())));
        if let Some(timestamp) = &self.timestamp {
            tuple = tuple.with_child(leaf("timestamp", timestamp));
        }
        tuple
    }
}

impl BasicStatus {
    /// The `<basic>` text.
    pub fn as_str(self) -> &'static str {
        match self {
            BasicStatus::Open => "open",
            BasicStatus::Closed => "closed",
        }
    }

    fn parse(text: &str) -> Option<Self> {
        match text.trim() {
            "open" => Some(BasicStatus::Open),
            "closed" => Some(BasicStatus::Closed),
            _ => None,
        }
    }
}

impl Contact {
    fn to_element(&self) -> Element {
        let mut contact = leaf("contact", &self.uri);
        if let Some(priority) = self.priority {
            contact.set_attr(None, "priority", &priority.to_string());
        }
        contact
    }
}

impl QValue {
    /// The highest priority, 1.
    pub const MAX: QValue = QValue(1000);

    /// Parses `qvalue = ( "0" [ "." 0*3DIGIT ] ) / ( "1" [ "." 0*3("0") ] )`
    /// (RFC 3261 §25.1), surrounding whitespace allowed (`xs:decimal`).
    pub fn parse(text: &str) -> Option<Self> {
        let text = text.trim();
        let (int, frac) = text.split_once('.').unwrap_or((text, ""));
        if frac.len() > 3 || !frac.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        let thousandths = frac
            .bytes()
            .chain(std::iter::repeat(b'0'))
            .take(3)
            .fold(0, |acc, digit| acc * 10 + u16::from(digit - b'0'));
        match int {
            "0" => Some(QValue(thousandths)),
            "1" if thousandths == 0 => Some(QValue::MAX),
            _ => None,
        }
    }

    /// The qvalue nearest `q`, or `None` if `q` is not within 0..=1.
    pub fn from_f32(q: f32) -> Option<Self> {
        // `as` is exact here: the product is rounded and within 0..=1000.
        (0.0..=1.0)
            .contains(&q)
            .then(|| QValue((q * 1000.0).round() as u16))
    }

    /// The value in thousandths (0..=1000).
    pub fn thousandths(self) -> u16 {
        self.0
    }
}

impl std::fmt::Display for QValue {
    /// Shortest form: `1`, `0`, `0.8`, `0.125`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.0 {
            0 => f.write_str("0"),
            1000.. => f.write_str("1"),
            n => f.write_str(format!("0.{n:03}").trim_end_matches('0')),
        }
    }
}

impl Note {
    fn to_element(&self) -> Element {
        let mut note = leaf("note", &self.text);
        if let Some(lang) = &self.lang {
            note.set_attr(Some(XML_NS), "lang", lang);
        }
        note
    }
}

fn parse_tuple(el: Element) -> Result<Tuple, PidfError> {
    let id = el.attr(None, "id").filter(|id| !id.is_empty());
    let invalid = |problem| PidfError::InvalidTuple {
        id: id.map(str::to_owned),
        problem,
    };
    let mut tuple = Tuple::unbuilt(id.ok_or_else(|| invalid(TupleProblem::MissingId))?, None);
    read_tuple_fields(&el, &mut tuple).map_err(invalid)?;
    tuple.element = el;
    tuple.rebuild_element();
    Ok(tuple)
}

/// Fills the typed fields of `tuple` from the PIDF children of `el`.
fn read_tuple_fields(el: &Element, tuple: &mut Tuple) -> Result<(), TupleProblem> {
    let mut status = None;
    for child in pidf_children(el) {
        match child.local.as_ref() {
            "status" => set_once(&mut status, child, "status")?,
            "contact" => set_once(&mut tuple.contact, parse_contact(child)?, "contact")?,
            "note" => tuple.notes.push(parse_note(child)),
            "timestamp" => set_once(
                &mut tuple.timestamp,
                child.text().trim().to_owned(),
                "timestamp",
            )?,
            other => return Err(TupleProblem::UnexpectedElement(other.to_owned())),
        }
    }
    let status = status.ok_or(TupleProblem::MissingStatus)?;
    for child in pidf_children(status) {
        if child.local != "basic" {
            return Err(TupleProblem::UnexpectedElement(child.local.to_string()));
        }
        let basic = BasicStatus::parse(&child.text()).ok_or(TupleProblem::InvalidBasic)?;
        set_once(&mut tuple.basic, basic, "basic")?;
    }
    Ok(())
}

fn parse_contact(el: &Element) -> Result<Contact, TupleProblem> {
    let priority = match el.attr(None, "priority") {
        Some(text) => Some(QValue::parse(text).ok_or(TupleProblem::InvalidPriority)?),
        None => None,
    };
    Ok(Contact {
        uri: el.text().trim().to_owned(),
        priority,
    })
}

fn parse_note(el: &Element) -> Note {
    Note {
        lang: el.attr(Some(XML_NS), "lang").map(str::to_owned),
        text: el.text(),
    }
}

/// Stores `value` in `slot` unless an element the schema allows once is repeated.
fn set_once<T>(slot: &mut Option<T>, value: T, name: &'static str) -> Result<(), TupleProblem> {
    match slot {
        Some(_) => Err(TupleProblem::Repeated(name)),
        None => {
            *slot = Some(value);
            Ok(())
        }
    }
}

fn pidf_children(el: &Element) -> impl Iterator<Item = &Element> {
    el.elements().filter(|child| child.in_ns(PIDF_NS))
}

/// The child elements of `el` outside the PIDF namespace: the `##other`
/// content of RFC 3863 §4.4.
fn foreign_children(el: &Element) -> impl Iterator<Item = Node> + '_ {
    el.elements()
        .filter(|child| !child.in_ns(PIDF_NS))
        .map(|child| Node::Element(child.clone()))
}

fn leaf(local: &str, text: &str) -> Element {
    Element::new(Some(PIDF_NS), local).with_text(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    type TestResult = Result<(), Box<dyn std::error::Error>>;

    /// Every PIDF fixture, by file name.
    const FIXTURES: &[(&str, &[u8])] = &[
        (
            "baresip-open.xml",
            include_bytes!("../../tests/fixtures/pidf/baresip-open.xml"),
        ),
        (
            "baresip-closed.xml",
            include_bytes!("../../tests/fixtures/pidf/baresip-closed.xml"),
        ),
        (
            "linphonec-online.xml",
            include_bytes!("../../tests/fixtures/pidf/linphonec-online.xml"),
        ),
        (
            "liblinphone-note.xml",
            include_bytes!("../../tests/fixtures/pidf/liblinphone-note.xml"),
        ),
        (
            "liblinphone-away.xml",
            include_bytes!("../../tests/fixtures/pidf/liblinphone-away.xml"),
        ),
        (
            "liblinphone-busy.xml",
            include_bytes!("../../tests/fixtures/pidf/liblinphone-busy.xml"),
        ),
        (
            "liblinphone-closed.xml",
            include_bytes!("../../tests/fixtures/pidf/liblinphone-closed.xml"),
        ),
        (
            "twinkle-open.xml",
            include_bytes!("../../tests/fixtures/pidf/twinkle-open.xml"),
        ),
        (
            "rpid-dm-cipid-prefixed.xml",
            include_bytes!("../../tests/fixtures/pidf/rpid-dm-cipid-prefixed.xml"),
        ),
    ];

    fn fixture(name: &str) -> Result<PidfDocument, Box<dyn std::error::Error>> {
        let (_, body) = FIXTURES
            .iter()
            .find(|(n, _)| *n == name)
            .ok_or("no such fixture")?;
        Ok(parse(body, &XmlLimits::default())?)
    }

    fn parse_str(xml: &str) -> Result<PidfDocument, PidfError> {
        parse(xml.as_bytes(), &XmlLimits::default())
    }

    fn tuple_problem(xml: &str) -> Option<TupleProblem> {
        match parse_str(xml) {
            Err(PidfError::InvalidTuple { problem, .. }) => Some(problem),
            _ => None,
        }
    }

    fn presence(inner: &str) -> String {
        format!(r#"<presence xmlns="{PIDF_NS}" entity="sip:a@example.org">{inner}</presence>"#)
    }

    #[test]
    fn every_fixture_survives_parse_serialize_parse_unchanged() -> TestResult {
        for (name, body) in FIXTURES {
            let doc = parse(body, &XmlLimits::default()).map_err(|e| format!("{name}: {e}"))?;
            let written = serialize(&doc);
            let again = parse(written.as_bytes(), &XmlLimits::default())?;
            assert_eq!(again, doc, "{name} changed in a round trip:\n{written}");
            assert_eq!(serialize(&again), written, "{name}: output is not stable");
        }
        Ok(())
    }

    #[test]
    fn baresip_publication_is_read_and_reordered_to_the_schema_sequence() -> TestResult {
        let doc = fixture("baresip-open.xml")?;
        assert_eq!(doc.entity, "sip:alice@example.org");
        assert_eq!(doc.tuples.len(), 1);
        assert_eq!(doc.tuples[0].id, "t4109");
        assert_eq!(doc.tuples[0].basic, Some(BasicStatus::Open));
        assert_eq!(
            doc.tuples[0].contact.as_ref().map(|c| c.uri.as_str()),
            Some("sip:alice@example.org")
        );
        assert_eq!(doc.persons.len(), 1);
        let written = serialize(&doc);
        let tuple_at = written.find("<tuple").ok_or("no tuple")?;
        let person_at = written.find("<dm:person").ok_or("no person")?;
        assert!(
            tuple_at < person_at,
            "RFC 3863 §4.4 puts tuples before extensions:\n{written}"
        );
        assert!(written.contains("<dm:person id=\"p4159\"><rpid:activities/></dm:person>"));
        Ok(())
    }

    #[test]
    fn liblinphone_publication_keeps_note_priority_timestamp_and_activities() -> TestResult {
        let doc = fixture("liblinphone-away.xml")?;
        let tuple = &doc.tuples[0];
        assert_eq!(
            tuple.notes,
            vec![Note {
                lang: None,
                text: "In a meeting".into()
            }]
        );
        assert_eq!(
            tuple
                .contact
                .as_ref()
                .and_then(|c| c.priority)
                .map(QValue::thousandths),
            Some(800)
        );
        assert_eq!(tuple.timestamp.as_deref(), Some("2026-11-21T16:59:31Z"));
        let activities = doc.persons[0]
            .find(RPID_NS, "activities")
            .ok_or("no activities")?;
        assert!(activities.find(RPID_NS, "away").is_some());
        let written = serialize(&doc);
        assert!(written.contains(r#"<contact priority="0.8">sip:alice@example.org</contact>"#));
        assert!(written.contains("<rpid:activities><rpid:away/></rpid:activities>"));
        Ok(())
    }

    #[test]
    fn status_extensions_survive_inside_status() -> TestResult {
        let doc = fixture("linphonec-online.xml")?;
        let written = serialize(&doc);
        assert!(
            written.contains(r#"<status><basic>open</basic><ns1:online/></status>"#),
            "{written}"
        );
        assert!(written.contains(r#"xmlns:ns1="http://www.linphone.org/xsds/pidfonline.xsd""#));
        Ok(())
    }

    #[test]
    fn output_uses_conventional_prefixes_whatever_the_input_used() -> TestResult {
        let doc = fixture("rpid-dm-cipid-prefixed.xml")?;
        let written = serialize(&doc);
        for declaration in [
            r#"<presence xmlns="urn:ietf:params:xml:ns:pidf" "#,
            r#"xmlns:rpid="urn:ietf:params:xml:ns:pidf:rpid""#,
            r#"xmlns:dm="urn:ietf:params:xml:ns:pidf:data-model""#,
            r#"xmlns:c="urn:ietf:params:xml:ns:pidf:cipid""#,
            r#"xmlns:caps="urn:ietf:params:xml:ns:pidf:caps""#,
            r#"xmlns:gp="urn:ietf:params:xml:ns:pidf:geopriv10""#,
        ] {
            assert!(
                written.contains(declaration),
                "missing {declaration} in\n{written}"
            );
        }
        for element in [
            "<rpid:on-the-phone/>",
            "<c:display-name>",
            "<caps:audio>",
            "<gp:usage-rules/>",
            "<dm:deviceID>",
        ] {
            assert!(written.contains(element), "missing {element} in\n{written}");
        }
        assert!(!written.contains("<p:") && !written.contains("<r:") && !written.contains("<ci:"));
        assert!(
            written.contains(r#" pidf:mustUnderstand="false"/>"#),
            "{written}"
        );
        Ok(())
    }

    #[test]
    fn extensions_keep_their_namespaces_and_place() -> TestResult {
        let doc = fixture("rpid-dm-cipid-prefixed.xml")?;
        let person = doc.persons.first().ok_or("no person")?;
        assert!(person.find(CIPID_NS, "display-name").is_some());
        assert!(doc
            .devices
            .first()
            .is_some_and(|d| d.find(DATA_MODEL_NS, "deviceID").is_some()));
        assert!(doc
            .extensions
            .first()
            .is_some_and(|e| e.is("urn:example:custom", "mood-ring")));
        let tuple = doc.tuples.first().ok_or("no tuple")?;
        let status = tuple.element.find(PIDF_NS, "status").ok_or("no status")?;
        assert!(status.find(GEOPRIV_NS, "geopriv").is_some());
        assert!(tuple.element.find(CAPS_NS, "servcaps").is_some());
        assert_eq!(
            tuple.contact.as_ref().and_then(|c| c.priority),
            Some(QValue::MAX)
        );
        Ok(())
    }

    #[test]
    fn notes_keep_their_xml_lang() -> TestResult {
        let doc = fixture("rpid-dm-cipid-prefixed.xml")?;
        let langs: Vec<_> = doc.notes.iter().map(|n| n.lang.as_deref()).collect();
        assert_eq!(langs, [Some("en"), Some("fr"), None]);
        assert_eq!(doc.notes[1].text, "Déjeuner — de retour à 14h");
        assert_eq!(doc.notes[0].text, "Lunch & coffee, back at 2");
        let written = serialize(&doc);
        assert!(written.contains(r#"<note xml:lang="en">Lunch &amp; coffee, back at 2</note>"#));
        assert!(written.contains(r#"<note xml:lang="en">Desk phone</note>"#));
        Ok(())
    }

    #[test]
    fn entity_is_exposed_for_the_caller_to_check() -> TestResult {
        let doc = parse_str(&presence("").replace("sip:a@example.org", "sip:mallory@example.org"))?;
        assert_eq!(doc.entity, "sip:mallory@example.org");
        Ok(())
    }

    #[test]
    fn a_root_other_than_pidf_presence_is_rejected() {
        let wrong_ns = r#"<presence xmlns="urn:example" entity="sip:a@example.org"/>"#;
        assert!(matches!(parse_str(wrong_ns), Err(PidfError::NotPidf)));
        let wrong_name = format!(r#"<list xmlns="{PIDF_NS}"/>"#);
        assert!(matches!(parse_str(&wrong_name), Err(PidfError::NotPidf)));
    }

    #[test]
    fn presence_without_entity_is_rejected() {
        let xml = format!(r#"<presence xmlns="{PIDF_NS}"/>"#);
        assert!(matches!(parse_str(&xml), Err(PidfError::MissingEntity)));
        let xml = format!(r#"<presence xmlns="{PIDF_NS}" entity=""/>"#);
        assert!(matches!(parse_str(&xml), Err(PidfError::MissingEntity)));
    }

    #[test]
    fn invalid_tuples_are_rejected_with_the_reason() {
        let cases = [
            ("<tuple><status/></tuple>", TupleProblem::MissingId),
            (r#"<tuple id="t"/>"#, TupleProblem::MissingStatus),
            (
                r#"<tuple id="t"><status><basic>away</basic></status></tuple>"#,
                TupleProblem::InvalidBasic,
            ),
            (
                r#"<tuple id="t"><status/><contact priority="high">sip:a@b</contact></tuple>"#,
                TupleProblem::InvalidPriority,
            ),
            (
                r#"<tuple id="t"><status/><status/></tuple>"#,
                TupleProblem::Repeated("status"),
            ),
            (
                r#"<tuple id="t"><status><basic>open</basic><basic>closed</basic></status></tuple>"#,
                TupleProblem::Repeated("basic"),
            ),
        ];
        for (tuple, expected) in cases {
            assert_eq!(tuple_problem(&presence(tuple)), Some(expected), "{tuple}");
        }
    }

    #[test]
    fn tuple_without_basic_is_accepted_as_rfc_3863_allows() -> TestResult {
        let doc = parse_str(&presence(r#"<tuple id="t"><status/></tuple>"#))?;
        assert_eq!(doc.tuples[0].basic, None);
        Ok(())
    }

    #[test]
    fn pidf_elements_out_of_place_are_rejected() {
        let result = parse_str(&presence("<status/>"));
        assert!(matches!(result, Err(PidfError::UnexpectedElement { local }) if local == "status"));
        let basic_in_tuple = r#"<tuple id="t"><status/><basic>open</basic></tuple>"#;
        let problem = TupleProblem::UnexpectedElement("basic".to_owned());
        assert_eq!(tuple_problem(&presence(basic_in_tuple)), Some(problem));
        let tuple_in_status = r#"<tuple id="t"><status><tuple id="u"/></status></tuple>"#;
        let problem = TupleProblem::UnexpectedElement("tuple".to_owned());
        assert_eq!(tuple_problem(&presence(tuple_in_status)), Some(problem));
    }

    #[test]
    fn doctype_is_rejected_through_the_pidf_parser() {
        let xml = format!(r#"<!DOCTYPE x [<!ENTITY a "b">]>{}"#, presence("&a;"));
        assert!(matches!(
            parse_str(&xml),
            Err(PidfError::Xml(XmlError::Doctype { .. }))
        ));
    }

    #[test]
    fn qvalues_parse_and_print_exactly() {
        let cases = [
            ("0", Some("0")),
            ("0.8", Some("0.8")),
            ("0.125", Some("0.125")),
            ("1.000", Some("1")),
            ("0.", Some("0")),
        ];
        for (text, printed) in cases {
            assert_eq!(
                QValue::parse(text).map(|q| q.to_string()).as_deref(),
                printed,
                "{text}"
            );
        }
        for text in ["1.5", "0.1234", "2", "-0", "", ".5", "0.x"] {
            assert_eq!(QValue::parse(text), None, "{text}");
        }
        assert_eq!(QValue::from_f32(0.8).map(QValue::thousandths), Some(800));
        assert_eq!(QValue::from_f32(f32::NAN), None);
        assert_eq!(QValue::from_f32(1.5), None);
    }

    #[test]
    fn new_tuple_serializes_to_a_minimal_tuple() {
        let mut doc = PidfDocument::new("sip:a@example.org");
        doc.tuples.push(Tuple::new("t1", Some(BasicStatus::Closed)));
        assert_eq!(
            serialize(&doc),
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<presence xmlns=\"urn:ietf:params:xml:ns:pidf\" entity=\"sip:a@example.org\"><tuple id=\"t1\"><status><basic>closed</basic></status></tuple></presence>"
        );
    }
}
