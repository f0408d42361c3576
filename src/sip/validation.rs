//! The checks every request passes before it is routed, as pure functions (RFC 3261 §8.1.1,
//! §8.2, §18.2; RFC 3581).
//!
//! Owns: the mandatory headers ([`check_mandatory`]), where a response goes
//! ([`response_target`]) and the `received`/`rport` stamp ([`stamp_received`]), Max-Forwards
//! ([`check_max_forwards`]), the served domains ([`domain_served`]) and unknown Require
//! option tags ([`check_require`]). Must not: hold state or send anything (the dispatcher
//! does, and turns every `Reject` into the response).

use std::collections::BTreeSet;
use std::net::{IpAddr, SocketAddr};

use super::dialog::DialogId;
use super::headers::{parse_delta_seconds, parse_token_list, NameAddr, Via};
use super::message::{HeaderAccess, Request};
use super::reject::Reject;
use super::transport::{Source, Target};
use super::uri::Host;

/// What `check_mandatory` found in a request's mandatory headers.
pub struct Mandatory {
    /// The top Via.
    pub via: Via,
    /// The dialog a To tag claims.
    pub dialog: Option<DialogId>,
    /// From, parsed.
    pub from: NameAddr,
    /// To, parsed.
    pub to: NameAddr,
}

/// RFC 3261 §8.1.1: the headers every request must carry. Gives the top Via, the parsed
/// From and To (handed on, so no handler parses them again) and, when the To carries a
/// tag, the dialog the request claims to belong to.
pub fn check_mandatory(req: &Request) -> Result<Mandatory, Reject> {
    let bad = |what: &'static str| Reject::with_reason(400, what);
    let mut vias = req.headers.list("Via");
    let via = vias
        .next()
        .and_then(|top| Via::parse(top).ok())
        .ok_or_else(|| bad("Missing or Malformed Via"))?;
    if via.branch().is_none_or(str::is_empty) {
        return Err(bad("Missing Via Branch"));
    }
    if vias.any(|v| Via::parse(v).is_err()) {
        return Err(bad("Malformed Via"));
    }
    if !req.headers.has("To") {
        return Err(bad("Missing To"));
    }
    let to = req.header_to().map_err(|_| bad("Malformed To"))?;
    if !req.headers.has("From") {
        return Err(bad("Missing From"));
    }
    let from = req.header_from().map_err(|_| bad("Malformed From"))?;
    if from.tag().is_none_or(str::is_empty) {
        return Err(bad("Missing From Tag"));
    }
    if !req.headers.has("Call-ID") {
        return Err(bad("Missing Call-ID"));
    }
    let call_id = req.call_id().map_err(|_| bad("Malformed Call-ID"))?;
    let dialog = DialogId::of(call_id, &to, &from);
    if !req.headers.has("CSeq") {
        return Err(bad("Missing CSeq"));
    }
    let cseq = req.cseq().map_err(|_| bad("Malformed CSeq"))?;
    if cseq.method != req.method {
        return Err(bad("CSeq Method Does Not Match"));
    }
    let max_forwards = req
        .headers
        .get("Max-Forwards")
        .ok_or_else(|| bad("Missing Max-Forwards"))?;
    if parse_delta_seconds(max_forwards, "Max-Forwards").map_or(true, |m| m > 255) {
        return Err(bad("Malformed Max-Forwards"));
    }
    Ok(Mandatory {
        via,
        dialog,
        from,
        to,
    })
}

/// RFC 3261 §18.2.2 with RFC 3581: where a response to a request from `source` goes.
pub fn response_target(source: &Source, via: &Via) -> Target {
    if source.transport.is_reliable() {
        return Target::back_to(source);
    }
    let port = match via.params.get("rport") {
        Some(_) => source.peer.port(),
        None => via.port.unwrap_or(5060),
    };
    Target {
        addr: SocketAddr::new(source.peer.ip(), port),
        ..Target::back_to(source)
    }
}

/// RFC 3261 §18.2.1 and RFC 3581 §4: record where the request really came from, in the
/// top Via (`via`, as parsed from it). A Via that needs neither `received` nor `rport` is
/// left as received; otherwise the top element is written anew and the others kept as
/// they are.
pub fn stamp_received(req: &mut Request, via: &Via, source: &Source) {
    let from_ip = source.peer.ip();
    let sent_by_matches = matches!(via.host, Host::Ip(ip) if ip == from_ip);
    let rport = via.params.get("rport").is_some();
    if sent_by_matches && !rport {
        return;
    }
    let Some(first) = req.headers.0.iter_mut().find(|h| h.name == "Via") else {
        return;
    };
    let mut via = via.clone();
    via.params.set("received", Some(from_ip.to_string()));
    if rport {
        via.params
            .set("rport", Some(source.peer.port().to_string()));
    }
    let mut elements = super::headers::split_list(&first.value);
    elements.next();
    let mut value = via.to_string();
    for other in elements {
        value.push_str(", ");
        value.push_str(other);
    }
    first.value = value;
}

/// RFC 3261 §16.3 step 2 (a UAS answers the same): Max-Forwards 0 gets 483.
pub fn check_max_forwards(req: &Request) -> Result<(), Reject> {
    let max_forwards = req
        .headers
        .get("Max-Forwards")
        .and_then(|m| parse_delta_seconds(m, "Max-Forwards").ok());
    if max_forwards == Some(0) {
        return Err(Reject::new(483));
    }
    Ok(())
}

/// Whether a Request-URI host is one this server answers for: any, when `domains` is empty;
/// else one of `domains` or one of the server's own addresses (`local_addrs`; an unspecified
/// one stands for every address of its family) or `localhost`.
pub fn domain_served(host: &Host, domains: &[String], local_addrs: &[SocketAddr]) -> bool {
    if domains.is_empty() {
        return true;
    }
    match host {
        Host::Ip(ip) => local_addrs
            .iter()
            .any(|a| a.ip() == *ip || (a.ip().is_unspecified() && is_same_family(a.ip(), *ip))),
        Host::Domain(d) => {
            d.eq_ignore_ascii_case("localhost") || domains.iter().any(|s| s.eq_ignore_ascii_case(d))
        }
    }
}

fn is_same_family(a: IpAddr, b: IpAddr) -> bool {
    a.is_ipv4() == b.is_ipv4()
}

/// RFC 3261 §8.2.2.3: a Require naming an option tag not in `supported` gets 420 with
/// Unsupported listing them; a malformed one gets 400.
pub fn check_require(req: &Request, supported: &BTreeSet<String>) -> Result<(), Reject> {
    let required = req
        .headers
        .get_all("Require")
        .map(|v| parse_token_list(v, "Require"))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|_| Reject::with_reason(400, "Malformed Require"))?;
    let unknown: Vec<String> = required
        .into_iter()
        .flatten()
        .filter(|t| !supported.iter().any(|s| s.eq_ignore_ascii_case(t)))
        .collect();
    if unknown.is_empty() {
        Ok(())
    } else {
        Err(Reject::new(420).header("Unsupported", unknown.join(", ")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sip::message::{parse, Message};
    use crate::sip::transport::Transport;

    fn request(extra: &str) -> Request {
        let text = format!(
            "SUBSCRIBE sip:alice@example.org SIP/2.0\r\nVia: SIP/2.0/UDP 192.0.2.1:5070;branch=z9hG4bKx;rport\r\n\
             From: <sip:bob@example.org>;tag=f\r\nTo: <sip:alice@example.org>\r\nCall-ID: c\r\n\
             CSeq: 1 SUBSCRIBE\r\nMax-Forwards: 70\r\n{extra}Content-Length: 0\r\n\r\n"
        );
        match parse(text.as_bytes()) {
            Ok(Message::Request(r)) => r,
            other => panic!("not a request: {other:?}"),
        }
    }

    fn without(name: &str) -> Request {
        let mut r = request("");
        r.headers.0.retain(|h| !h.name.eq_ignore_ascii_case(name));
        r
    }

    fn reason(r: Result<Mandatory, Reject>) -> String {
        match r {
            Ok(_) => "ok".into(),
            Err(e) => format!("{} {}", e.status, e.reason.unwrap_or_default()),
        }
    }

    #[test]
    fn every_mandatory_header_is_checked_with_its_own_reason() {
        assert_eq!(reason(check_mandatory(&request(""))), "ok");
        assert_eq!(
            reason(check_mandatory(&without("Via"))),
            "400 Missing or Malformed Via"
        );
        assert_eq!(reason(check_mandatory(&without("To"))), "400 Missing To");
        assert_eq!(
            reason(check_mandatory(&without("From"))),
            "400 Missing From"
        );
        assert_eq!(
            reason(check_mandatory(&without("Call-ID"))),
            "400 Missing Call-ID"
        );
        assert_eq!(
            reason(check_mandatory(&without("CSeq"))),
            "400 Missing CSeq"
        );
        assert_eq!(
            reason(check_mandatory(&without("Max-Forwards"))),
            "400 Missing Max-Forwards"
        );
        let mut r = request("");
        for h in &mut r.headers.0 {
            if h.name == "CSeq" {
                h.value = "1 NOTIFY".into();
            }
        }
        assert_eq!(
            reason(check_mandatory(&r)),
            "400 CSeq Method Does Not Match"
        );
        let mut r = request("");
        for h in &mut r.headers.0 {
            if h.name == "From" {
                h.value = "<sip:bob@example.org>".into();
            }
        }
        assert_eq!(reason(check_mandatory(&r)), "400 Missing From Tag");
    }

    #[test]
    fn a_to_tag_names_the_dialog() {
        let m = check_mandatory(&request("")).unwrap();
        assert!(m.dialog.is_none());
        let mut r = request("");
        for h in &mut r.headers.0 {
            if h.name == "To" {
                h.value = "<sip:alice@example.org>;tag=t".into();
            }
        }
        assert!(check_mandatory(&r).unwrap().dialog.is_some());
    }

    #[test]
    fn responses_go_to_the_source_port_with_rport_and_are_stamped() {
        let source = Source {
            transport: Transport::Udp,
            local: "127.0.0.1:5060".parse().unwrap(),
            peer: "198.51.100.9:40000".parse().unwrap(),
            connection: None,
        };
        let mut req = request("");
        let via = check_mandatory(&req).unwrap().via;
        assert_eq!(response_target(&source, &via).addr, source.peer);
        stamp_received(&mut req, &via, &source);
        let top = req.headers.list("Via").next().unwrap().to_owned();
        assert!(
            top.contains("received=198.51.100.9") && top.contains("rport=40000"),
            "{top}"
        );
        let no_rport = Via::parse("SIP/2.0/UDP 192.0.2.1:5070;branch=z9hG4bKy").unwrap();
        assert_eq!(
            response_target(&source, &no_rport).addr,
            "198.51.100.9:5070".parse().unwrap()
        );
    }

    #[test]
    fn max_forwards_domains_and_require_are_checked() {
        assert!(check_max_forwards(&request("")).is_ok());
        let mut r = request("");
        for h in &mut r.headers.0 {
            if h.name == "Max-Forwards" {
                h.value = "0".into();
            }
        }
        assert_eq!(check_max_forwards(&r).map_err(|e| e.status), Err(483));

        let local: Vec<SocketAddr> = vec!["0.0.0.0:5060".parse().unwrap()];
        let domains = vec!["example.org".to_owned()];
        let served = |h: Host| domain_served(&h, &domains, &local);
        assert!(served(Host::Domain("EXAMPLE.org".into())));
        assert!(
            served(Host::Ip("10.1.2.3".parse().unwrap())),
            "own address, any of the family"
        );
        assert!(!served(Host::Ip("::1".parse().unwrap())));
        assert!(!served(Host::Domain("other.net".into())));
        assert!(domain_served(
            &Host::Domain("other.net".into()),
            &[],
            &local
        ));

        let supported: BTreeSet<String> = ["eventlist".to_owned()].into();
        assert!(check_require(&request("Require: EventList\r\n"), &supported).is_ok());
        let e = check_require(&request("Require: eventlist, foo\r\n"), &supported).unwrap_err();
        assert_eq!(e.status, 420);
        assert!(e
            .headers
            .iter()
            .any(|(n, v)| n == "Unsupported" && v == "foo"));
        let e = check_require(&request("Require: a b\r\n"), &supported).unwrap_err();
        assert_eq!(e.status, 400);
    }
}
