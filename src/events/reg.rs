//! The reg event package (RFC 3680): registration state, from presenced's own registrar.
//!
//! Owns: the `application/reginfo+xml` document of one AOR's bindings (one `<registration>`,
//! a `<contact>` per binding with its state, the event that brought it there, expiry, q,
//! Call-ID, CSeq, URI, display name and every other Contact parameter as `unknown-param`), in
//! the order and with the values RFC 3680's schema allows, and the package's rules: nothing is
//! published (PUBLISH gets 489), only the AOR itself may subscribe (403 for anyone else).
//! Pure. Must not: hold state; the registrar decides what happened to each contact.

use bytes::Bytes;

use super::package::{with_version, EventPackage, Subscribers, VERSION_PLACEHOLDER};
use crate::presence::aor::Aor;
use crate::sip::headers::Params;
use crate::sip::Reject;
use crate::xml::escape_into;

/// The reginfo namespace (RFC 3680 §5.4).
pub const REGINFO_NS: &str = "urn:ietf:params:xml:ns:reginfo";
/// Its media type.
pub const REGINFO: &str = "application/reginfo+xml";

/// RFC 3680 §5.1.2: what last happened to a contact.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ContactEvent {
    /// Known since before the subscription (restored from the store).
    Registered,
    /// Added by a REGISTER.
    Created,
    /// Its expiry pushed back by a REGISTER.
    Refreshed,
    /// Its expiry brought forward by a REGISTER.
    Shortened,
    /// Not refreshed in time.
    Expired,
    /// Removed by a REGISTER (Expires 0, or `*`).
    Unregistered,
}

impl ContactEvent {
    /// Its name in the schema.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Registered => "registered",
            Self::Created => "created",
            Self::Refreshed => "refreshed",
            Self::Shortened => "shortened",
            Self::Expired => "expired",
            Self::Unregistered => "unregistered",
        }
    }

    /// Whether the contact is gone after it (`state="terminated"`).
    pub fn terminates(self) -> bool {
        matches!(self, Self::Expired | Self::Unregistered)
    }
}

/// One binding as the reg package reports it.
#[derive(Debug, Clone, Copy)]
pub struct RegContact<'a> {
    /// The contact URI.
    pub uri: &'a str,
    /// Its display name, escapes as received (`\"`).
    pub display: Option<&'a str>,
    /// Its Contact parameters other than expires and q.
    pub params: &'a Params,
    /// What last happened to it.
    pub event: ContactEvent,
    /// Seconds left (0 once terminated).
    pub expires: u64,
    /// Its q-value.
    pub q: Option<f32>,
    /// The Call-ID of the REGISTER that made it.
    pub call_id: &'a str,
    /// That REGISTER's CSeq.
    pub cseq: u32,
}

/// The reg package.
#[derive(Debug, Default, Clone, Copy)]
pub struct RegPackage;

/// A stable id for `text` (FNV-1a), so that a contact keeps its `id` across NOTIFYs and
/// restarts.
fn stable_id(text: &str) -> String {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for b in text.bytes() {
        hash ^= u64::from(b);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    format!("{hash:016x}")
}

/// The full-state reginfo document of `aor` with `contacts` (those terminated by this change
/// included), its version the placeholder.
pub fn document(aor: &Aor, contacts: &[RegContact<'_>]) -> Bytes {
    let state = if contacts.is_empty() {
        "init"
    } else if contacts.iter().all(|c| c.event.terminates()) {
        "terminated"
    } else {
        "active"
    };
    let mut out = String::with_capacity(256 + 256 * contacts.len());
    out.push_str("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<reginfo xmlns=\"");
    out.push_str(REGINFO_NS);
    out.push('"');
    out.push_str(VERSION_PLACEHOLDER);
    out.push_str("state=\"full\">\n <registration aor=\"");
    escape_into(&mut out, aor.as_str(), true);
    out.push_str("\" id=\"a");
    out.push_str(&stable_id(aor.as_str()));
    out.push_str("\" state=\"");
    out.push_str(state);
    out.push_str("\">\n");
    for c in contacts {
        write_contact(&mut out, c);
    }
    out.push_str(" </registration>\n</reginfo>\n");
    Bytes::from(out)
}

fn write_contact(out: &mut String, c: &RegContact<'_>) {
    let terminated = c.event.terminates();
    out.push_str("  <contact id=\"c");
    out.push_str(&stable_id(&c.uri.to_ascii_lowercase()));
    out.push_str("\" state=\"");
    out.push_str(if terminated { "terminated" } else { "active" });
    out.push_str("\" event=\"");
    out.push_str(c.event.as_str());
    out.push_str("\" expires=\"");
    out.push_str(itoa::Buffer::new().format(if terminated { 0 } else { c.expires }));
    out.push('"');
    if let Some(q) = c.q {
        out.push_str(&format!(" q=\"{q:.3}\""));
    }
    out.push_str(" callid=\"");
    escape_into(out, c.call_id, true);
    out.push_str("\" cseq=\"");
    out.push_str(itoa::Buffer::new().format(c.cseq));
    out.push_str("\">\n   <uri>");
    escape_into(out, c.uri, false);
    out.push_str("</uri>\n");
    if let Some(display) = c.display.filter(|d| !d.is_empty()) {
        out.push_str("   <display-name>");
        escape_into(
            out,
            &display.replace("\\\"", "\"").replace("\\\\", "\\"),
            false,
        );
        out.push_str("</display-name>\n");
    }
    for (name, value) in &c.params.0 {
        out.push_str("   <unknown-param name=\"");
        escape_into(out, name, true);
        out.push_str("\">");
        escape_into(out, value.as_deref().unwrap_or_default(), false);
        out.push_str("</unknown-param>\n");
    }
    out.push_str("  </contact>\n");
}

impl EventPackage for RegPackage {
    fn name(&self) -> &'static str {
        "reg"
    }

    fn notify_types(&self) -> &'static [&'static str] {
        &[REGINFO]
    }

    fn publish_types(&self) -> &'static [&'static str] {
        &[]
    }

    fn subscribers(&self) -> Subscribers {
        Subscribers::OwnerOnly
    }

    fn validate(&self, _body: &[u8]) -> Result<(), Reject> {
        // Not reached: the agent refuses PUBLISH for a package that is not publishable.
        Err(Reject::new(489).header("Allow-Events", "reg"))
    }

    fn combine(&self, aor: &Aor, newest_first: &[&Bytes]) -> Bytes {
        newest_first
            .first()
            .map_or_else(|| self.default_body(aor), |b| (*b).clone())
    }

    fn default_body(&self, aor: &Aor) -> Bytes {
        document(aor, &[])
    }

    fn notify_body(&self, state: &Bytes, version: u32, _media_type: &str) -> Bytes {
        with_version(state, version)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_registration_lists_its_contacts_with_their_events_and_parameters() {
        let aor = Aor::parse("sip:alice@example.test").unwrap();
        let params = Params::parse(";+sip.instance=\"<urn:uuid:1>\";reg-id=1;video", "t").unwrap();
        let none = Params::default();
        let contact = |uri, event, params| RegContact {
            uri,
            display: Some("Alice \\\"A\\\""),
            params,
            event,
            expires: 3600,
            q: Some(0.5),
            call_id: "c1",
            cseq: 7,
        };
        let doc = document(
            &aor,
            &[
                contact("sip:alice@10.0.0.1", ContactEvent::Created, &params),
                contact("sip:alice@10.0.0.2", ContactEvent::Unregistered, &none),
            ],
        );
        let doc = String::from_utf8(RegPackage.notify_body(&doc, 4, REGINFO).to_vec()).unwrap();
        assert!(doc.contains("version=\"4\" state=\"full\""), "{doc}");
        assert!(doc.contains("aor=\"sip:alice@example.test\""), "{doc}");
        assert!(doc.contains("state=\"active\">"), "{doc}");
        assert!(doc.contains("state=\"active\" event=\"created\" expires=\"3600\" q=\"0.500\" callid=\"c1\" cseq=\"7\""), "{doc}");
        assert!(
            doc.contains("state=\"terminated\" event=\"unregistered\" expires=\"0\""),
            "{doc}"
        );
        assert!(
            doc.contains(
                "<unknown-param name=\"+sip.instance\">\"&lt;urn:uuid:1&gt;\"</unknown-param>"
            ),
            "{doc}"
        );
        assert!(
            doc.contains("<unknown-param name=\"video\"></unknown-param>"),
            "{doc}"
        );
        assert!(
            doc.contains("<display-name>Alice \"A\"</display-name>"),
            "{doc}"
        );
        let idle = String::from_utf8(RegPackage.default_body(&aor).to_vec()).unwrap();
        assert!(
            idle.contains("state=\"init\"") && !idle.contains("<contact"),
            "{idle}"
        );
        let gone = document(
            &aor,
            &[contact("sip:alice@10.0.0.1", ContactEvent::Expired, &none)],
        );
        assert!(String::from_utf8_lossy(&gone).contains("\" state=\"terminated\">"));
    }
}
