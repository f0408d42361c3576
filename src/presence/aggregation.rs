//! Composition of a presentity's sources (publications and registrar
//! bindings) into the one PIDF document its watchers receive.
//!
//! Owns: [`aggregate`], [`binding_tuple`] and the precedence rules below.
//! Must not: decide which sources are current or in what order they come
//! (the presentity actor does, e.g. newest publication first), check the
//! sources' `entity` (done when a publication is accepted), or filter what a
//! watcher may see (that is `policy`).
//!
//! Rules, applied to the sources in the order given (RFC 3903 leaves
//! composition to local policy; these follow the RFC 4479 data model):
//!
//! - **Tuples and devices:** all of them, from every source, in order.
//! - **Ids:** `id` is an `xs:ID`, unique within a document (RFC 3863 §4.4 and
//!   the RFC 4479 schema). Tuple, person and device ids share one space; an id
//!   already used by an earlier source, or earlier in the same source, is
//!   rewritten to `<id>-<n>` with the smallest free `n` ≥ 1. Nothing else is
//!   rewritten, and nothing else needs to be: tuples point at devices through
//!   `<dm:deviceID>` content (RFC 4479), never through `id`.
//! - **Person:** RFC 4479 models one person per presentity, so the output
//!   has at most one `<dm:person>`: **the first person of the first source
//!   that has one wins** (with newest-first ordering, the most recent
//!   publication's person); every other person is dropped, never merged.
//! - **Notes:** presence-level notes from every source, each distinct
//!   `(xml:lang, text)` pair once, in first-seen order.
//! - **Other extensions:** all of them, in order.
//! - **No sources:** an empty `<presence>`, or, with
//!   [`AggregationOptions::closed_when_empty`], one tuple [`OFFLINE_TUPLE_ID`]
//!   with basic status `closed`.
//!
//! Ids nested inside copied elements (e.g. RPID elements with their own `id`)
//! are left as they are.

use std::collections::HashSet;

use super::pidf::{BasicStatus, Contact, PidfDocument, QValue, Tuple};
use crate::xml::Element;

/// The id of the tuple [`aggregate`] writes for a presentity with no sources
/// when [`AggregationOptions::closed_when_empty`] is set.
pub const OFFLINE_TUPLE_ID: &str = "offline";

/// One source of presence information for a presentity.
#[derive(Debug, Clone, Copy)]
pub struct Source<'a> {
    /// Names the source in logs, e.g. a publication's entity-tag or `reg:<contact>`.
    pub key: &'a str,
    /// The source's document.
    pub doc: &'a PidfDocument,
}

/// How [`aggregate`] treats a presentity with no sources.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct AggregationOptions {
    /// Report one `closed` tuple instead of an empty document.
    pub closed_when_empty: bool,
}

/// Composes `sources`, in the order given, into one document for `entity`,
/// following the rules in the module documentation.
pub fn aggregate(
    entity: &str,
    sources: &[Source<'_>],
    options: &AggregationOptions,
) -> PidfDocument {
    let mut out = PidfDocument::new(entity);
    if sources.is_empty() {
        if options.closed_when_empty {
            let offline = Tuple::new(OFFLINE_TUPLE_ID, Some(BasicStatus::Closed));
            out.tuples.push(offline);
        }
        return out;
    }
    let mut ids = IdSpace::default();
    let mut person_from = None;
    for source in sources {
        for tuple in &source.doc.tuples {
            let mut tuple = tuple.clone();
            let id = ids.claim(entity, source.key, &tuple.id);
            tuple.set_id(&id);
            out.tuples.push(tuple);
        }
        for person in &source.doc.persons {
            match person_from {
                None => {
                    out.persons.push(ids.claim_element(entity, source.key, person));
                    person_from = Some(source.key);
                }
                Some(winner) => log::debug!(
                    "presentity {entity}: person from source {} dropped, source {winner} takes precedence",
                    source.key
                ),
            }
        }
        for device in &source.doc.devices {
            out.devices
                .push(ids.claim_element(entity, source.key, device));
        }
        for note in &source.doc.notes {
            if !out.notes.contains(note) {
                out.notes.push(note.clone());
            }
        }
        out.extensions.extend(source.doc.extensions.iter().cloned());
    }
    out
}

/// The tuple for a registrar binding: basic `open`, the binding's contact
/// URI, and its `q` as the priority (dropped unless within 0..=1).
pub fn binding_tuple(id: &str, contact_uri: &str, priority: Option<f32>) -> Tuple {
    let mut tuple = Tuple::unbuilt(id, Some(BasicStatus::Open));
    tuple.contact = Some(Contact {
        uri: contact_uri.to_owned(),
        priority: priority.and_then(QValue::from_f32),
    });
    tuple.rebuild_element();
    tuple
}

/// The ids used so far in the document being built.
#[derive(Default)]
struct IdSpace {
    used: HashSet<String>,
}

impl IdSpace {
    /// `wanted` if unused, else `<wanted>-<n>` with the smallest free `n`.
    fn claim(&mut self, entity: &str, key: &str, wanted: &str) -> String {
        if self.used.insert(wanted.to_owned()) {
            return wanted.to_owned();
        }
        let mut n = 1u32;
        loop {
            let candidate = format!("{wanted}-{n}");
            if self.used.insert(candidate.clone()) {
                log::debug!(
                    "presentity {entity}: id {wanted} from source {key} renamed to {candidate}"
                );
                return candidate;
            }
            n += 1;
        }
    }

    /// A copy of `el` whose `id` attribute, if any, is unique.
    fn claim_element(&mut self, entity: &str, key: &str, el: &Element) -> Element {
        let mut el = el.clone();
        if let Some(wanted) = el.attr(None, "id").map(str::to_owned) {
            let id = self.claim(entity, key, &wanted);
            el.set_attr(None, "id", &id);
        }
        el
    }
}

#[cfg(test)]
mod tests {
    use super::super::pidf::{parse, serialize, Note, DATA_MODEL_NS, RPID_NS};
    use super::*;
    use crate::xml::XmlLimits;

    type TestResult = Result<(), Box<dyn std::error::Error>>;

    const ALICE: &str = "sip:alice@example.org";

    fn doc(body: &[u8]) -> Result<PidfDocument, Box<dyn std::error::Error>> {
        Ok(parse(body, &XmlLimits::default())?)
    }

    fn sources<'a>(docs: &'a [(&'a str, PidfDocument)]) -> Vec<Source<'a>> {
        docs.iter().map(|(key, doc)| Source { key, doc }).collect()
    }

    fn ids(doc: &PidfDocument) -> Vec<&str> {
        doc.tuples.iter().map(|t| t.id.as_str()).collect()
    }

    fn attr_ids(elements: &[Element]) -> Vec<Option<&str>> {
        elements.iter().map(|el| el.attr(None, "id")).collect()
    }

    #[test]
    fn two_devices_publications_are_combined_with_unique_ids_and_the_newest_person() -> TestResult {
        // Newest first: one device reports "busy", an older publication from
        // another device "away", and both happen to use the same tuple id.
        let busy = doc(include_bytes!(
            "../../tests/fixtures/pidf/liblinphone-busy.xml"
        ))?;
        let mut away = doc(include_bytes!(
            "../../tests/fixtures/pidf/liblinphone-away.xml"
        ))?;
        away.tuples[0].set_id("gi6blk");
        let docs = [("etag-new", busy), ("etag-old", away)];

        let out = aggregate(ALICE, &sources(&docs), &AggregationOptions::default());

        assert_eq!(ids(&out), ["gi6blk", "gi6blk-1"]);
        assert_eq!(out.persons.len(), 1, "RFC 4479: one person per presentity");
        let person = &out.persons[0];
        assert_eq!(person.attr(None, "id"), Some("b.0k01"));
        let activities = person.find(RPID_NS, "activities").ok_or("no activities")?;
        assert!(
            activities.find(RPID_NS, "busy").is_some(),
            "newest person wins"
        );
        let notes: Vec<_> = out
            .tuples
            .iter()
            .map(|t| t.notes[0].text.as_str())
            .collect();
        assert_eq!(notes, ["On the phone", "In a meeting"]);
        Ok(())
    }

    #[test]
    fn renamed_ids_are_written_out_and_read_back() -> TestResult {
        let twinkle = doc(include_bytes!("../../tests/fixtures/pidf/twinkle-open.xml"))?;
        let docs = [
            ("a", twinkle.clone()),
            ("b", twinkle.clone()),
            ("c", twinkle),
        ];
        let out = aggregate(ALICE, &sources(&docs), &AggregationOptions::default());
        let again = parse(serialize(&out).as_bytes(), &XmlLimits::default())?;
        assert_eq!(ids(&again), ["dpauug", "dpauug-1", "dpauug-2"]);
        assert_eq!(again, out);
        Ok(())
    }

    #[test]
    fn tuple_person_and_device_ids_share_one_space() {
        let mut first = PidfDocument::new(ALICE);
        first.tuples.push(Tuple::new("x", None));
        let mut second = PidfDocument::new(ALICE);
        second
            .persons
            .push(Element::new(Some(DATA_MODEL_NS), "person").with_attr(None, "id", "x"));
        second
            .devices
            .push(Element::new(Some(DATA_MODEL_NS), "device").with_attr(None, "id", "x-1"));
        second
            .devices
            .push(Element::new(Some(DATA_MODEL_NS), "device"));
        let docs = [("first", first), ("second", second)];

        let out = aggregate(ALICE, &sources(&docs), &AggregationOptions::default());

        assert_eq!(attr_ids(&out.persons), [Some("x-1")]);
        assert_eq!(attr_ids(&out.devices), [Some("x-1-1"), None]);
    }

    #[test]
    fn persons_of_later_sources_are_dropped_even_when_the_first_source_has_none() -> TestResult {
        let twinkle = doc(include_bytes!("../../tests/fixtures/pidf/twinkle-open.xml"))?;
        let baresip = doc(include_bytes!("../../tests/fixtures/pidf/baresip-open.xml"))?;
        let liblinphone = doc(include_bytes!(
            "../../tests/fixtures/pidf/liblinphone-away.xml"
        ))?;
        let docs = [
            ("twinkle", twinkle),
            ("baresip", baresip),
            ("liblinphone", liblinphone),
        ];
        let out = aggregate(ALICE, &sources(&docs), &AggregationOptions::default());
        assert_eq!(
            attr_ids(&out.persons),
            [Some("p4159")],
            "baresip's person: first source with one"
        );
        assert_eq!(out.tuples.len(), 3);
        Ok(())
    }

    #[test]
    fn presence_notes_are_kept_once_per_language_and_text() {
        let note = |lang: Option<&str>, text: &str| Note {
            lang: lang.map(str::to_owned),
            text: text.to_owned(),
        };
        let mut first = PidfDocument::new(ALICE);
        first.notes = vec![note(Some("en"), "Lunch"), note(None, "Lunch")];
        let mut second = PidfDocument::new(ALICE);
        second.notes = vec![note(Some("en"), "Lunch"), note(Some("fr"), "Déjeuner")];
        let docs = [("first", first), ("second", second)];

        let out = aggregate(ALICE, &sources(&docs), &AggregationOptions::default());

        assert_eq!(
            out.notes,
            [
                note(Some("en"), "Lunch"),
                note(None, "Lunch"),
                note(Some("fr"), "Déjeuner")
            ]
        );
    }

    #[test]
    fn extensions_from_every_source_are_kept() -> TestResult {
        let prefixed = doc(include_bytes!(
            "../../tests/fixtures/pidf/rpid-dm-cipid-prefixed.xml"
        ))?;
        let docs = [("a", prefixed.clone()), ("b", prefixed)];
        let out = aggregate(ALICE, &sources(&docs), &AggregationOptions::default());
        assert_eq!(out.extensions.len(), 2);
        assert_eq!(attr_ids(&out.devices), [Some("pc33"), Some("pc33-1")]);
        Ok(())
    }

    #[test]
    fn no_sources_give_one_closed_tuple_when_asked() {
        let options = AggregationOptions {
            closed_when_empty: true,
        };
        let out = aggregate(ALICE, &[], &options);
        assert_eq!(out.entity, ALICE);
        assert_eq!(out.tuples.len(), 1);
        assert_eq!(out.tuples[0].id, OFFLINE_TUPLE_ID);
        assert_eq!(out.tuples[0].basic, Some(BasicStatus::Closed));
    }

    #[test]
    fn no_sources_give_an_empty_presence_by_default() {
        let out = aggregate(ALICE, &[], &AggregationOptions::default());
        assert_eq!(out, PidfDocument::new(ALICE));
        assert!(serialize(&out).ends_with(
            r#"<presence xmlns="urn:ietf:params:xml:ns:pidf" entity="sip:alice@example.org"/>"#
        ));
    }

    #[test]
    fn binding_tuple_is_open_with_contact_and_priority() -> TestResult {
        let tuple = binding_tuple("reg-1", "sip:alice@192.0.2.7:5060", Some(0.7));
        assert_eq!(tuple.basic, Some(BasicStatus::Open));
        let mut doc = PidfDocument::new(ALICE);
        doc.tuples.push(tuple);
        let written = serialize(&doc);
        assert!(written.contains(
            r#"<tuple id="reg-1"><status><basic>open</basic></status><contact priority="0.7">sip:alice@192.0.2.7:5060</contact></tuple>"#
        ));
        assert_eq!(parse(written.as_bytes(), &XmlLimits::default())?, doc);
        assert_eq!(
            binding_tuple("r", "sip:a@b", Some(7.0))
                .contact
                .and_then(|c| c.priority),
            None
        );
        Ok(())
    }
}
