//! The reg event package (RFC 3680) over real sockets: registration state from presenced's own
//! registrar (created, refreshed, shortened, expired, unregistered), Contact parameters as
//! unknown-param, owner-only subscription (403), no PUBLISH (489), bodies valid against RFC
//! 3680's schema, and recovery after kill -9 with higher versions and CSeqs.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::lists;
use common::*;

const ALICE: &str = "sip:alice@example.org";
const REGINFO: &str = "application/reginfo+xml";
const INSTANCE: &str = "+sip.instance=\"<urn:uuid:00000000-0000-1000-8000-000A95A0E128>\"";

fn config() -> String {
    "[presence]\nmin_expires = 1\n[registrar]\nmin_expires = 1\n".into()
}

/// Alice's reg SUBSCRIBE, From alice herself.
fn reg_subscribe(ua: &impl Ua) -> RequestBuilder {
    let mut r = ua
        .new_request("SUBSCRIBE", ALICE)
        .header("Event: reg")
        .header(&format!("Accept: {REGINFO}"))
        .header(&format!("Contact: <sip:alice@{}>", ua.local_addr()))
        .header("Expires: 600");
    r.from = format!("<{ALICE}>;tag={}", unique("t"));
    r
}

/// A REGISTER of alice's `contact` (with its parameters) for `expires` seconds.
fn register(ua: &impl Ua, call_id: &str, cseq: u32, contact: &str, expires: u32) -> Vec<u8> {
    let mut r = ua
        .new_request("REGISTER", "sip:example.org")
        .header(&format!("Contact: {contact}"))
        .header(&format!("Expires: {expires}"));
    r.from = format!("<{ALICE}>;tag={}", unique("t"));
    r.to = format!("<{ALICE}>");
    r.call_id = call_id.to_owned();
    r.cseq = cseq;
    r.build()
}

/// The registration's state and each contact's (state, event), and the document's version.
fn reginfo(n: &SipMsg) -> (String, Vec<(String, String)>, u32) {
    let body = n.body_str();
    let attr = |tag: &str, name: &str| -> String {
        tag.split(&format!(" {name}=\""))
            .nth(1)
            .and_then(|v| v.split('"').next())
            .unwrap_or_else(|| panic!("no {name} in {tag}"))
            .to_owned()
    };
    let root = body.split('>').nth(1).unwrap();
    let registration = body.split("<registration").nth(1).unwrap();
    let registration = registration.split('>').next().unwrap();
    let contacts = body
        .split("<contact ")
        .skip(1)
        .map(|c| {
            let tag = format!(" {}", c.split('>').next().unwrap());
            (attr(&tag, "state"), attr(&tag, "event"))
        })
        .collect();
    (
        attr(registration, "state"),
        contacts,
        attr(root, "version").parse().unwrap(),
    )
}

#[test]
fn registration_state_follows_the_registrar_and_only_its_owner_may_watch() -> TestResult {
    let server = TestServer::start_with("", &config());
    let mut phone = UdpUa::new(server.udp);
    phone.send(&reg_subscribe(&phone).build());
    phone.expect_status(200);
    let first = phone.expect_notify();
    assert_eq!(first.header("Event"), Some("reg"));
    assert_eq!(first.header("Content-Type"), Some(REGINFO));
    assert_eq!(reginfo(&first), ("init".into(), vec![], 0));
    let mut bodies = vec![first.body_str()];

    // Someone else's subscription, and a PUBLISH of reg state, are refused.
    let mut bob = UdpUa::new(server.udp);
    let mut not_alice = reg_subscribe(&bob);
    not_alice.from = format!("<sip:bob@example.org>;tag={}", unique("t"));
    bob.send(&not_alice.build());
    bob.expect_status(403);
    let publish = bob
        .new_request("PUBLISH", ALICE)
        .header("Event: reg")
        .body(REGINFO, first.body_str().as_bytes());
    bob.send(&publish.build());
    let refused = bob.expect_status(489);
    assert!(!refused.header("Allow-Events").unwrap().contains("reg"));

    let mut ua = UdpUa::new(server.udp);
    let contact = format!("<sip:alice@{}>;{INSTANCE};reg-id=1", ua.local());
    let mut steps = Vec::new();
    for (cseq, expires, event) in [
        (1, 600, "created"),
        (2, 600, "refreshed"),
        (3, 2, "shortened"),
    ] {
        ua.send(&register(&ua, "reg-call", cseq, &contact, expires));
        ua.expect_status(200);
        let n = phone.expect_notify();
        let (state, contacts, version) = reginfo(&n);
        assert_eq!(state, "active", "{}", n.body_str());
        assert_eq!(
            contacts,
            vec![("active".into(), event.into())],
            "{}",
            n.body_str()
        );
        steps.push(version);
        bodies.push(n.body_str());
    }
    let body = bodies.last().unwrap();
    assert!(
        body.contains("<unknown-param name=\"+sip.instance\">\"&lt;urn:uuid:00000000-0000-1000-8000-000A95A0E128&gt;\"</unknown-param>")
            && body.contains("<unknown-param name=\"reg-id\">1</unknown-param>")
            && body.contains("callid=\"reg-call\" cseq=\"3\""),
        "{body}"
    );
    // Not refreshed: the contact expires and the registration ends.
    let n = phone.expect_notify();
    assert_eq!(reginfo(&n).0, "terminated", "{}", n.body_str());
    assert_eq!(reginfo(&n).1, vec![("terminated".into(), "expired".into())]);
    steps.push(reginfo(&n).2);
    bodies.push(n.body_str());

    // Registered, then unregistered with Expires 0.
    ua.send(&register(&ua, "reg-call-2", 1, &contact, 600));
    ua.expect_status(200);
    let n = phone.expect_notify();
    assert_eq!(reginfo(&n).1, vec![("active".into(), "created".into())]);
    steps.push(reginfo(&n).2);
    bodies.push(n.body_str());
    ua.send(&register(&ua, "reg-call-2", 2, &contact, 0));
    ua.expect_status(200);
    let n = phone.expect_notify();
    assert_eq!(reginfo(&n).0, "terminated");
    assert_eq!(
        reginfo(&n).1,
        vec![("terminated".into(), "unregistered".into())]
    );
    steps.push(reginfo(&n).2);
    bodies.push(n.body_str());
    assert_eq!(
        steps,
        (1..=steps.len() as u32).collect::<Vec<_>>(),
        "one version per NOTIFY"
    );

    lists::xmllint_all("reginfo.xsd", bodies);
    Ok(())
}

#[test]
fn reg_and_dialog_subscriptions_survive_kill_9_with_higher_versions() -> TestResult {
    let dir = tempfile::tempdir()?;
    for (store, url) in store_urls(dir.path()) {
        let text = config_with_store(&url, "", &config());
        let server = TestServer::start_config(tempfile::tempdir()?, &text);
        let mut phone = UdpUa::new(server.udp);
        phone.send(&reg_subscribe(&phone).build());
        phone.expect_status(200);
        phone.expect_notify();
        let mut ua = UdpUa::new(server.udp);
        let contact = format!("<sip:alice@{}>;{INSTANCE}", ua.local());
        ua.send(&register(&ua, &unique("reg"), 1, &contact, 600));
        ua.expect_status(200);
        let registered = phone.expect_notify();
        assert_eq!(
            reginfo(&registered).1,
            vec![("active".into(), "created".into())]
        );

        let mut lamp = UdpUa::new(server.udp);
        let blf = lamp
            .new_request("SUBSCRIBE", "sip:200@example.org")
            .header("Event: dialog")
            .header(&format!("Contact: <sip:lamp@{}>", lamp.local()))
            .header("Expires: 600");
        lamp.send(&blf.build());
        lamp.expect_status(200);
        lamp.expect_notify();
        let call = dialog_info("sip:200@example.org", "c1", "confirmed");
        let mut proxy = UdpUa::new(server.udp);
        let publish = proxy
            .new_request("PUBLISH", "sip:200@example.org")
            .header("Event: dialog")
            .header("Expires: 600")
            .body("application/dialog-info+xml", call.as_bytes());
        proxy.send(&publish.build());
        proxy.expect_status(200);
        let lit = lamp.expect_notify();
        assert!(
            lit.body_str().contains("<state>confirmed</state>"),
            "{store}"
        );

        let folder = server.kill_hard();
        let _server = TestServer::start_config(folder, &text);
        let cseq = |m: &SipMsg| -> u32 {
            m.header("CSeq")
                .unwrap()
                .split_whitespace()
                .next()
                .unwrap()
                .parse()
                .unwrap()
        };
        let version = |m: &SipMsg| -> u32 {
            let body = m.body_str();
            let root = body.split('>').nth(1).unwrap().to_owned();
            root.split(" version=\"")
                .nth(1)
                .unwrap()
                .split('"')
                .next()
                .unwrap()
                .parse()
                .unwrap()
        };
        let reg = phone.expect_notify();
        assert_eq!(
            reginfo(&reg).1,
            vec![("active".into(), "registered".into())],
            "{store}: the binding survived: {}",
            reg.body_str()
        );
        assert!(
            reg.body_str()
                .contains("urn:uuid:00000000-0000-1000-8000-000A95A0E128"),
            "{store}"
        );
        assert!(
            cseq(&reg) > cseq(&registered) && version(&reg) > version(&registered),
            "{store}"
        );
        let relit = lamp.expect_notify();
        assert!(
            relit.body_str().contains("<state>confirmed</state>"),
            "{store}"
        );
        assert!(
            cseq(&relit) > cseq(&lit) && version(&relit) > version(&lit),
            "{store}"
        );
    }
    Ok(())
}
