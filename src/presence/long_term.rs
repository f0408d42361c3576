//! The documents the users database stands behind: Flexisip's long-term presence, the
//! "unknown" document, and a user's presence as seen through one of their phone numbers.
//!
//! Owns: [`long_term_source`] (one `open` tuple whose contact is the user's SIP URI, with one
//! OMA `service-description` per capability, and a `dm:person` that is `away` with the time
//! the user was last active), [`unknown_document`], [`capabilities`] (from
//! `+org.linphone.specs`), [`render_alias`] and [`rfc3339`]. Pure. Must not: decide when a
//! user exists or which document applies (the presentity does).

use super::pidf::{
    BasicStatus, Contact, Note, PidfDocument, Tuple, DATA_MODEL_NS, OMA_PRES_NS, RPID_NS,
};
use crate::xml::{Element, Node};

/// The id of the long-term tuple (renamed by aggregation if a publication uses it).
pub const LONG_TERM_TUPLE_ID: &str = "ltp";
/// The id of the long-term person.
pub const LONG_TERM_PERSON_ID: &str = "ltp-person";
/// The note of the document for a presentity nothing is known of (Flexisip's wording, which
/// clients show as is).
pub const UNKNOWN_NOTE: &str = "No presence information available yet";

/// Most capabilities kept from a user's contacts: the parameter comes from the network.
const MAX_CAPABILITIES: usize = 32;
/// Longest capability name or version kept.
const MAX_CAPABILITY_LEN: usize = 64;

/// One capability a user's devices advertise (`+org.linphone.specs="name/version,…"`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Capability {
    /// E.g. `groupchat`.
    pub name: String,
    /// E.g. `1.1`; `1.0` when the contact gave none.
    pub version: String,
}

/// The capabilities in `specs` (one `+org.linphone.specs` value per registered contact):
/// each `name/version`, default version 1.0, the highest version per name, sorted by name.
/// Malformed items are skipped.
pub fn capabilities<'a>(specs: impl IntoIterator<Item = &'a str>) -> Vec<Capability> {
    let mut out: Vec<Capability> = Vec::new();
    for spec in specs {
        for item in spec.split(',') {
            let item = item.trim().trim_matches('"').trim();
            let (name, version) = match item.split_once('/') {
                Some((n, v)) => (n.trim(), v.trim()),
                None => (item, "1.0"),
            };
            if !is_token(name) || !is_version(version) {
                continue;
            }
            let full = out.len() >= MAX_CAPABILITIES;
            match out.iter_mut().find(|c| c.name == name) {
                Some(c) if version_key(version) > version_key(&c.version) => {
                    version.clone_into(&mut c.version);
                }
                Some(_) => {}
                None if !full => out.push(Capability {
                    name: name.to_owned(),
                    version: version.to_owned(),
                }),
                None => {}
            }
        }
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    out
}

fn is_token(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= MAX_CAPABILITY_LEN
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'+'))
}

fn is_version(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= MAX_CAPABILITY_LEN
        && s.bytes().all(|b| b.is_ascii_digit() || b == b'.')
}

/// Versions compare number by number (`1.10` above `1.9`).
fn version_key(v: &str) -> Vec<u64> {
    v.split('.').map(|n| n.parse().unwrap_or(0)).collect()
}

/// The long-term source of an existing user: one `open` tuple with `contact` and the time
/// `since` (when the user became known here), one service-description per capability, and a
/// person who is `away`, last active at `last_active` when known.
pub fn long_term_source(
    entity: &str,
    contact: &str,
    since: i64,
    last_active: Option<i64>,
    caps: &[Capability],
) -> PidfDocument {
    let mut doc = PidfDocument::new(entity);
    let mut tuple = Tuple::unbuilt(LONG_TERM_TUPLE_ID, Some(BasicStatus::Open));
    // RFC 3863 §4.4: extension elements sit between <status> and <contact>.
    tuple.element.children = caps
        .iter()
        .map(|c| {
            Node::Element(
                Element::new(Some(OMA_PRES_NS), "service-description")
                    .with_child(Element::new(Some(OMA_PRES_NS), "service-id").with_text(&c.name))
                    .with_child(Element::new(Some(OMA_PRES_NS), "version").with_text(&c.version)),
            )
        })
        .collect();
    tuple.contact = Some(Contact {
        uri: contact.to_owned(),
        priority: None,
    });
    tuple.timestamp = Some(rfc3339(since));
    tuple.rebuild_element();
    doc.tuples.push(tuple);
    let activities =
        Element::new(Some(RPID_NS), "activities").with_child(Element::new(Some(RPID_NS), "away"));
    let mut person = Element::new(Some(DATA_MODEL_NS), "person")
        .with_attr(None, "id", LONG_TERM_PERSON_ID)
        .with_child(activities);
    if let Some(at) = last_active {
        person = person
            .with_child(Element::new(Some(DATA_MODEL_NS), "timestamp").with_text(&rfc3339(at)));
    }
    doc.persons.push(person);
    doc
}

/// The document of a presentity nothing is known of: no tuple, one English note.
pub fn unknown_document(entity: &str) -> PidfDocument {
    let mut doc = PidfDocument::new(entity);
    doc.notes.push(Note {
        lang: Some("en".into()),
        text: UNKNOWN_NOTE.into(),
    });
    doc
}

/// `doc` (a user's document) as seen through the alias `entity` (a `user=phone` URI): the
/// entity is the alias, the first tuple's contact is the user's SIP URI (clients learn who is
/// behind the number there), and every tuple has a contact. A document with no tuple (nothing
/// known of the owner yet) gets the owner's long-term tuple and person, known since `since`:
/// liblinphone aborts on a number's document without a contact, and the owner exists.
pub fn render_alias(doc: &mut PidfDocument, entity: &str, owner: &str, since: i64) {
    entity.clone_into(&mut doc.entity);
    if doc.tuples.is_empty() {
        let long_term = long_term_source(entity, owner, since, None, &[]);
        doc.notes.retain(|n| n.text != UNKNOWN_NOTE);
        doc.tuples = long_term.tuples;
        if doc.persons.is_empty() {
            doc.persons = long_term.persons;
        }
        return;
    }
    for (i, tuple) in doc.tuples.iter_mut().enumerate() {
        if i > 0 && tuple.contact.is_some() {
            continue;
        }
        let priority = tuple.contact.as_ref().and_then(|c| c.priority);
        tuple.contact = Some(Contact {
            uri: owner.to_owned(),
            priority,
        });
        tuple.rebuild_element();
    }
}

/// Unix seconds as an RFC 3339 UTC date-time (`2026-12-07T22:07:30Z`), the `xs:dateTime` form
/// PIDF timestamps take.
pub fn rfc3339(unix: i64) -> String {
    let days = unix.div_euclid(86_400);
    let secs = unix.rem_euclid(86_400);
    // Days to a civil date (H. Hinnant's algorithm, proleptic Gregorian).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        secs / 3600,
        secs % 3600 / 60,
        secs % 60
    )
}

#[cfg(test)]
mod tests {
    use super::super::pidf::serialize;
    use super::*;

    #[test]
    fn timestamps_are_utc_rfc3339() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(1_796_594_850), "2026-12-06T22:07:30Z");
        assert_eq!(rfc3339(951_782_400), "2000-02-29T00:00:00Z");
    }

    #[test]
    fn capabilities_keep_the_highest_version_per_name_with_1_0_by_default() {
        let caps = capabilities([
            "\"groupchat/1.1, lime,ephemeral/1.9\"",
            "groupchat/1.0,ephemeral/1.10,bad name/1,x/abc",
        ]);
        let got: Vec<(&str, &str)> = caps
            .iter()
            .map(|c| (c.name.as_str(), c.version.as_str()))
            .collect();
        assert_eq!(
            got,
            [("ephemeral", "1.10"), ("groupchat", "1.1"), ("lime", "1.0")]
        );
        assert!(capabilities(std::iter::repeat_n("a/1,b/2", 3)).len() == 2);
    }

    #[test]
    fn the_long_term_source_has_one_open_tuple_and_an_away_person() {
        let caps = capabilities(["groupchat/1.1"]);
        let doc = long_term_source(
            "sip:alice@example.org",
            "sip:alice@example.org",
            0,
            Some(60),
            &caps,
        );
        let xml = serialize(&doc);
        assert!(xml.contains("<tuple id=\"ltp\"><status><basic>open</basic></status><op:service-description><op:service-id>groupchat</op:service-id><op:version>1.1</op:version></op:service-description><contact>sip:alice@example.org</contact><timestamp>1970-01-01T00:00:00Z</timestamp></tuple>"), "{xml}");
        assert!(xml.contains("<dm:person id=\"ltp-person\"><rpid:activities><rpid:away/></rpid:activities><dm:timestamp>1970-01-01T00:01:00Z</dm:timestamp></dm:person>"), "{xml}");
    }

    #[test]
    fn the_documents_are_the_fixtures_written_from_flexisips_description() {
        // 2026-12-07T09:00:00Z known here, last active 08:30; capabilities of two devices.
        let caps = capabilities(["groupchat/1.1", "ephemeral,groupchat/1.0"]);
        let doc = long_term_source(
            "sip:alice@example.org",
            "sip:alice@example.org",
            1_796_634_000,
            Some(1_796_632_200),
            &caps,
        );
        assert_eq!(
            serialize(&doc),
            include_str!("../../tests/fixtures/pidf/long-term.xml").trim_end()
        );
        assert_eq!(
            serialize(&unknown_document("sip:nobody@example.org")),
            include_str!("../../tests/fixtures/pidf/unknown.xml").trim_end()
        );
    }

    #[test]
    fn a_number_whose_owner_shows_nothing_yet_still_has_the_owner_as_contact() {
        let mut doc = unknown_document("sip:alice@example.org");
        render_alias(
            &mut doc,
            "sip:+331@example.org;user=phone",
            "sip:alice@example.org",
            0,
        );
        assert_eq!(doc.entity, "sip:+331@example.org;user=phone");
        assert!(doc.notes.is_empty());
        let contacts: Vec<&str> = doc
            .tuples
            .iter()
            .filter_map(|t| t.contact.as_ref().map(|c| c.uri.as_str()))
            .collect();
        assert_eq!(contacts, ["sip:alice@example.org"]);
        assert_eq!(doc.persons.len(), 1);
    }

    #[test]
    fn an_alias_shows_the_phone_as_entity_and_the_user_as_first_contact() {
        let mut doc = long_term_source(
            "sip:alice@example.org",
            "sip:alice@example.org",
            0,
            None,
            &[],
        );
        doc.tuples
            .insert(0, Tuple::new("t1", Some(BasicStatus::Closed)));
        render_alias(
            &mut doc,
            "sip:+331@example.org;user=phone",
            "sip:alice@example.org",
            0,
        );
        let xml = serialize(&doc);
        assert!(
            xml.contains("entity=\"sip:+331@example.org;user=phone\""),
            "{xml}"
        );
        assert!(doc.tuples.iter().all(|t| t
            .contact
            .as_ref()
            .is_some_and(|c| c.uri == "sip:alice@example.org")));
        assert!(xml.contains("<tuple id=\"t1\"><status><basic>closed</basic></status><contact>sip:alice@example.org</contact></tuple>"), "{xml}");
    }
}
