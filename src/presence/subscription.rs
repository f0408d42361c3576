//! `SubscriptionDialog`: a subscription's dialog as data, and its stored form.
//!
//! Owns: the dialog state a watcher needs that is not an actor of this process (Call-ID, tags,
//! URIs, route set, remote target, CSeq, expiry, where the SUBSCRIBE came from, its Accept
//! headers), the row it is stored as and read back from (checked, since stored text goes back
//! into headers as written), the stored row's id, and the Contact the server writes for it.
//! Must not: send anything or hold timers (the watcher actor does).

use std::net::SocketAddr;

use super::aor::Aor;
use crate::sip::dialog::DialogId;
use crate::sip::dispatcher::usage_key;
use crate::sip::headers::NameAddr;
use crate::sip::transport::{Source, Transport};
use crate::sip::uri::Uri;
use crate::store::worker::CSEQ_MARK_STEP;
use crate::store::{unix_now, SubscriptionRow};

/// The persistable state of a subscription dialog: everything a watcher needs that is not
/// an actor of this process.
#[derive(Debug, Clone)]
pub struct SubscriptionDialog {
    /// The event package (`presence`, `message-summary`…).
    pub package: String,
    /// The presentity (or resource) watched.
    pub aor: Aor,
    /// Event `id` parameter.
    pub event_id: Option<String>,
    /// Call-ID.
    pub call_id: String,
    /// Our tag.
    pub local_tag: String,
    /// The subscriber's tag.
    pub remote_tag: String,
    /// Our URI (the SUBSCRIBE's To without its parameters), as it goes into a NOTIFY's From:
    /// kept rendered, since every NOTIFY writes it and nothing reads inside it.
    pub local_uri: String,
    /// The subscriber's URI (the SUBSCRIBE's From without its parameters), rendered.
    pub remote_uri: String,
    /// Where NOTIFYs go (the SUBSCRIBE's Contact).
    pub remote_target: Uri,
    /// Record-Route of the SUBSCRIBE, in order.
    pub route_set: Vec<NameAddr>,
    /// CSeq of the last SUBSCRIBE.
    pub remote_cseq: u32,
    /// Granted expiry in seconds; 0 for a fetch.
    pub expires: u32,
    /// Where the SUBSCRIBE came from (connection reuse).
    pub source: Source,
    /// The SUBSCRIBE's Accept header, if any.
    pub accept: Option<String>,
    /// The SUBSCRIBE's Accept-Encoding header, if any.
    pub accept_encoding: Option<String>,
}

/// The `Contact` the server puts in its responses and NOTIFYs for a request from `source`.
pub fn local_contact(source: &Source) -> String {
    // Every NOTIFY carries it, and a server has only a few local addresses: each is rendered
    // once per thread.
    thread_local! {
        static RENDERED: std::cell::RefCell<Vec<((Transport, SocketAddr), String)>> =
            const { std::cell::RefCell::new(Vec::new()) };
    }
    let key = (source.transport, source.local);
    RENDERED.with(|rendered| {
        let mut rendered = rendered.borrow_mut();
        if let Some((_, contact)) = rendered.iter().find(|(k, _)| *k == key) {
            return contact.clone();
        }
        let addr = match source.local {
            SocketAddr::V6(a) => format!("[{}]:{}", a.ip(), a.port()),
            a => a.to_string(),
        };
        let contact = match source.transport {
            Transport::Tcp => format!("<sip:{addr};transport=tcp>"),
            Transport::Udp => format!("<sip:{addr}>"),
        };
        // Bounded: addresses beyond the first few are rendered each time.
        if rendered.len() < 16 {
            rendered.push((key, contact.clone()));
        }
        contact
    })
}

/// The id of a subscription's stored row.
pub fn subscription_id(dialog: &DialogId, usage: &str) -> String {
    [
        dialog.call_id.as_str(),
        ";",
        &dialog.local_tag,
        ";",
        &dialog.remote_tag,
        ";",
        usage,
    ]
    .concat()
}

/// True when `v` can go into a header value as it is: not empty, no ASCII control character
/// (a CR or LF would end the header line, a NUL cut it).
fn header_safe(v: &str) -> bool {
    !v.is_empty() && !v.bytes().any(|b| b.is_ascii_control())
}

/// A stored local or remote URI, as `to_row` wrote it: a rendered `NameAddr` without
/// parameters (`<uri>`, maybe after a quoted display name). It goes back out as written, so it
/// is checked for that shape and kept as text; parsing it again cost two URI parses per
/// subscription at every restart.
fn stored_name_addr(v: &str, what: &'static str) -> Result<String, RestoreError> {
    let uri = v
        .strip_suffix('>')
        .and_then(|rest| rest.rsplit_once('<'))
        .map(|(_, uri)| uri);
    let shaped = uri.is_some_and(|u| u.contains(':') && !u.contains([' ', '\t']));
    if shaped && header_safe(v) {
        Ok(v.to_owned())
    } else {
        Err(RestoreError::Invalid(what))
    }
}

/// Why a stored subscription could not be restored.
#[derive(Debug, thiserror::Error)]
pub enum RestoreError {
    /// A stored URI, name-addr or address no longer parses.
    #[error("stored {0} is invalid")]
    Invalid(&'static str),
}

impl SubscriptionDialog {
    /// The dialog of a stored row.
    pub fn from_row(row: &SubscriptionRow) -> Result<Self, RestoreError> {
        let name_addr =
            |v: &str, what| NameAddr::parse(v, "stored").map_err(|_| RestoreError::Invalid(what));
        let route_set = row
            .route_set
            .lines()
            .filter(|l| !l.is_empty())
            .map(|l| name_addr(l, "route"))
            .collect::<Result<Vec<_>, _>>()?;
        let transport = match row.transport.as_str() {
            "TCP" => Transport::Tcp,
            "UDP" => Transport::Udp,
            _ => return Err(RestoreError::Invalid("transport")),
        };
        let addr = |v: &str, what| {
            v.parse::<SocketAddr>()
                .map_err(|_| RestoreError::Invalid(what))
        };
        // What goes back out in a header as stored must not be able to break a header line.
        let text = |v: &str, what| {
            header_safe(v)
                .then(|| v.to_owned())
                .ok_or(RestoreError::Invalid(what))
        };
        Ok(SubscriptionDialog {
            package: row.event.clone(),
            aor: Aor::parse(&row.aor).ok_or(RestoreError::Invalid("AOR"))?,
            event_id: row
                .event_id
                .as_deref()
                .map(|id| text(id, "event id"))
                .transpose()?,
            call_id: text(&row.call_id, "Call-ID")?,
            local_tag: text(&row.local_tag, "local tag")?,
            remote_tag: text(&row.remote_tag, "remote tag")?,
            local_uri: stored_name_addr(&row.local_uri, "local URI")?,
            remote_uri: stored_name_addr(&row.remote_uri, "remote URI")?,
            remote_target: Uri::parse(&row.remote_target)
                .map_err(|_| RestoreError::Invalid("remote target"))?,
            route_set,
            remote_cseq: u32::try_from(row.remote_cseq).unwrap_or(u32::MAX),
            expires: u32::try_from((row.expires_at - unix_now()).max(1)).unwrap_or(u32::MAX),
            source: Source {
                transport,
                local: addr(&row.local_addr, "local address")?,
                peer: addr(&row.peer_addr, "peer address")?,
                // The SUBSCRIBE's connection did not survive the restart.
                connection: None,
            },
            accept: row.accept.clone(),
            accept_encoding: row.accept_encoding.clone(),
        })
    }

    /// The row for this dialog with the given expiry (Unix seconds) and CSeq mark.
    pub fn to_row(&self, row_id: &str, expires_at: i64, cseq_mark: u32) -> SubscriptionRow {
        SubscriptionRow {
            id: row_id.to_owned(),
            aor: self.aor.to_string(),
            call_id: self.call_id.clone(),
            local_tag: self.local_tag.clone(),
            remote_tag: self.remote_tag.clone(),
            event_id: self.event_id.clone(),
            accept: self.accept.clone(),
            local_uri: self.local_uri.clone(),
            remote_uri: self.remote_uri.clone(),
            remote_target: self.remote_target.to_string(),
            route_set: self
                .route_set
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join("\n"),
            remote_cseq: i64::from(self.remote_cseq),
            notify_cseq_mark: i64::from(cseq_mark),
            state: "active".into(),
            // RLMI versions are NOTIFY CSeqs minus one, so they too stay below the mark.
            document_version: i64::from(cseq_mark) - 1,
            expires_at,
            transport: self.source.transport.as_str().into(),
            local_addr: self.source.local.to_string(),
            peer_addr: self.source.peer.to_string(),
            accept_encoding: self.accept_encoding.clone(),
            list_source: None,
            list_members: None,
            event: self.package.clone(),
            linphone_compat: false,
            mark_epoch: 0,
        }
    }

    /// The row of a new subscription (before its watcher exists).
    pub fn initial_row(&self) -> SubscriptionRow {
        let usage = usage_key(&self.package, self.event_id.as_deref());
        let dialog = DialogId {
            call_id: self.call_id.clone(),
            local_tag: self.local_tag.clone(),
            remote_tag: self.remote_tag.clone(),
        };
        self.to_row(
            &subscription_id(&dialog, &usage),
            unix_now() + i64::from(self.expires),
            CSEQ_MARK_STEP as u32,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::presence::document::PRESENCE_PACKAGE;

    fn dialog() -> SubscriptionDialog {
        SubscriptionDialog {
            package: PRESENCE_PACKAGE.into(),
            aor: Aor::parse("sip:alice@example.org").unwrap(),
            event_id: Some("7".into()),
            call_id: "c1@10.0.0.2".into(),
            local_tag: "l1".into(),
            remote_tag: "r1".into(),
            local_uri: "<sip:alice@example.org>".into(),
            remote_uri: "\"Bob \\\"B\\\" <x>\" <sip:bob@example.org;user=phone>".into(),
            remote_target: Uri::parse("sip:bob@10.0.0.2:5070;transport=tcp").unwrap(),
            route_set: vec![NameAddr::parse("<sip:proxy.example.org;lr>", "Route").unwrap()],
            remote_cseq: 3,
            expires: 3600,
            source: Source {
                transport: Transport::Tcp,
                local: "10.0.0.1:5060".parse().unwrap(),
                peer: "10.0.0.2:40000".parse().unwrap(),
                connection: None,
            },
            accept: None,
            accept_encoding: None,
        }
    }

    #[test]
    fn a_stored_dialog_reads_back_as_written() {
        let d = dialog();
        let row = d.to_row("id", unix_now() + 600, 100);
        let back = SubscriptionDialog::from_row(&row).unwrap();
        assert_eq!(back.local_uri, d.local_uri);
        assert_eq!(back.remote_uri, d.remote_uri);
        assert_eq!(back.call_id, d.call_id);
        assert_eq!(
            (back.local_tag, back.remote_tag),
            (d.local_tag, d.remote_tag)
        );
        assert_eq!(back.event_id, d.event_id);
        assert_eq!(back.remote_target, d.remote_target);
        assert_eq!(back.route_set, d.route_set);
        assert_eq!(back.aor, d.aor);
        assert_eq!(back.package, d.package);
    }

    #[test]
    fn stored_text_that_could_break_a_header_is_refused() {
        let good = dialog().to_row("id", unix_now() + 600, 100);
        type Spoil = fn(&mut SubscriptionRow);
        let cases: [(&str, Spoil); 9] = [
            ("CRLF in a URI", |r| {
                r.local_uri = "<sip:a@x>\r\nX: y".into()
            }),
            ("no angle brackets", |r| {
                r.remote_uri = "sip:bob@example.org".into()
            }),
            ("no scheme", |r| r.remote_uri = "<bob>".into()),
            ("empty URI", |r| r.local_uri = "<>".into()),
            ("space in the URI", |r| r.local_uri = "<sip:a @x>".into()),
            ("LF in the Call-ID", |r| r.call_id = "c\nX: y".into()),
            ("empty tag", |r| r.remote_tag = String::new()),
            ("NUL in a tag", |r| r.local_tag = "a\0".into()),
            ("CR in the event id", |r| r.event_id = Some("1\r".into())),
        ];
        for (what, spoil) in cases {
            let mut row = good.clone();
            spoil(&mut row);
            assert!(SubscriptionDialog::from_row(&row).is_err(), "{what}");
        }
    }
}
