//! Presence over real sockets: SUBSCRIBE/NOTIFY, PUBLISH, registrar callbacks.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::{Duration, Instant};

use common::*;

const ALICE: &str = "sip:alice@example.org";

/// Short expiries so that expiry paths run in seconds.
fn server() -> TestServer {
    TestServer::start_with(
        "",
        "[presence]\ndefault_expires = 600\nmin_expires = 2\nmax_expires = 3600\n\
         publish_default_expires = 600\npublish_min_expires = 1\npublish_max_expires = 3600\n\
         max_body_bytes = 4096\nmax_xml_depth = 16\n\
         [registrar]\nmin_expires = 1\n",
    )
}

fn pidf(entity: &str, tuple: &str, basic: &str, note: &str) -> Vec<u8> {
    format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n\
         <presence xmlns=\"urn:ietf:params:xml:ns:pidf\" xmlns:rpid=\"urn:ietf:params:xml:ns:pidf:rpid\" \
         xmlns:dm=\"urn:ietf:params:xml:ns:pidf:data-model\" entity=\"{entity}\">\n\
         <tuple id=\"{tuple}\"><status><basic>{basic}</basic></status><note>{note}</note></tuple>\n\
         <dm:person id=\"p1\"><rpid:activities><rpid:away/></rpid:activities></dm:person>\n\
         </presence>\n"
    )
    .into_bytes()
}

fn publish(
    ua: &mut impl Ua,
    aor: &str,
    if_match: Option<&str>,
    expires: Option<u32>,
    body: Option<&[u8]>,
) -> SipMsg {
    let mut req = ua.new_request("PUBLISH", aor).header("Event: presence");
    if let Some(tag) = if_match {
        req = req.header(&format!("SIP-If-Match: {tag}"));
    }
    if let Some(e) = expires {
        req = req.header(&format!("Expires: {e}"));
    }
    if let Some(b) = body {
        req = req.body("application/pidf+xml", b);
    }
    ua.send_bytes(&req.build());
    ua.recv_msg(WAIT).expect("no answer to PUBLISH")
}

#[test]
fn new_subscription_gets_200_then_an_active_notify_with_the_current_document() -> TestResult {
    let server = server();
    let mut w = UdpUa::new(server.udp);
    let (ok, notify, _) = subscribe(&mut w, ALICE, Some(300));
    assert!(ok.param("To", "tag").is_some());
    assert!(ok.header("Contact").is_some());
    assert_eq!(ok.header("Expires"), Some("300"));
    let state = notify.header("Subscription-State").unwrap();
    assert!(state.starts_with("active;expires="), "{state}");
    let left: u32 = notify
        .param("Subscription-State", "expires")
        .unwrap()
        .parse()?;
    assert!((295..=300).contains(&left));
    assert_eq!(notify.header("Event"), Some("presence"));
    assert_eq!(notify.header("Content-Type"), Some("application/pidf+xml"));
    assert_eq!(notify.header("CSeq"), Some("1 NOTIFY"));
    assert!(notify.header("Contact").is_some());
    assert!(notify.header("Max-Forwards").is_some());
    // Dialog: the NOTIFY's From tag is the 200's To tag; its To tag is the watcher's From tag.
    assert_eq!(notify.param("From", "tag"), ok.param("To", "tag"));
    assert!(notify
        .start
        .starts_with(&format!("NOTIFY sip:watcher@{} ", w.local())));
    let body = notify.body_str();
    assert!(body.contains("entity=\"sip:alice@example.org\""), "{body}");
    assert!(
        body.contains("<basic>closed</basic>"),
        "nothing known means closed: {body}"
    );
    Ok(())
}

#[test]
fn subscription_expiry_is_defaulted_clamped_and_checked_against_the_minimum() -> TestResult {
    let server = server();
    let mut w = UdpUa::new(server.udp);
    let (ok, _, _) = subscribe(&mut w, ALICE, None);
    assert_eq!(ok.header("Expires"), Some("600"));
    let (ok, _, _) = subscribe(&mut w, ALICE, Some(999_999));
    assert_eq!(ok.header("Expires"), Some("3600"));
    let req = subscribe_request(&w, ALICE).header("Expires: 1");
    w.send(&req.build());
    let resp = w.expect_status(423);
    assert_eq!(resp.header("Min-Expires"), Some("2"));
    Ok(())
}

#[test]
fn refresh_and_unsubscribe_in_the_dialog() -> TestResult {
    let server = server();
    let mut w = UdpUa::new(server.udp);
    let (ok, _, initial) = subscribe(&mut w, ALICE, Some(300));
    w.send(&in_dialog_subscribe(&w, &initial, &ok, 2, 600));
    assert_eq!(w.expect_status(200).header("Expires"), Some("600"));
    let n = w.expect_notify();
    assert!(n
        .header("Subscription-State")
        .unwrap()
        .starts_with("active"));
    assert_eq!(n.header("CSeq"), Some("2 NOTIFY"));
    w.send(&in_dialog_subscribe(&w, &initial, &ok, 3, 0));
    w.expect_status(200);
    let n = w.expect_notify();
    assert_eq!(
        n.header("Subscription-State"),
        Some("terminated;reason=timeout")
    );
    assert_eq!(n.header("CSeq"), Some("3 NOTIFY"));
    // The dialog is gone.
    w.send(&in_dialog_subscribe(&w, &initial, &ok, 4, 600));
    w.expect_status(481);
    Ok(())
}

#[test]
fn fetch_gets_one_terminated_notify() -> TestResult {
    let server = server();
    let mut w = UdpUa::new(server.udp);
    let (ok, notify, _) = subscribe(&mut w, ALICE, Some(0));
    assert_eq!(ok.header("Expires"), Some("0"));
    assert_eq!(
        notify.header("Subscription-State"),
        Some("terminated;reason=timeout")
    );
    assert!(notify.body_str().contains("<basic>closed</basic>"));
    assert!(w.recv(Duration::from_millis(300)).is_none());
    Ok(())
}

#[test]
fn wrong_event_accept_and_unknown_dialog_are_refused() -> TestResult {
    let server = server();
    let mut w = UdpUa::new(server.udp);
    let contact = format!("Contact: <sip:w@{}>", w.local());
    w.send(&w.request("SUBSCRIBE", ALICE).header(&contact).build());
    // Allow-Events names every package served.
    assert_eq!(
        w.expect_status(489).header("Allow-Events"),
        Some("dialog, message-summary, presence, reg")
    );
    w.send(
        &w.request("SUBSCRIBE", ALICE)
            .header("Event: x-unknown")
            .header(&contact)
            .build(),
    );
    w.expect_status(489);
    w.send(
        &w.request("SUBSCRIBE", ALICE)
            .header("Event: presence")
            .header("Accept: text/plain, application/pidf+xml;q=0")
            .header(&contact)
            .build(),
    );
    assert_eq!(
        w.expect_status(406).header("Accept"),
        Some(
            "application/pidf+xml, application/cpim-pidf+xml, application/xpidf+xml, \
             application/lpidf+xml"
        )
    );
    let mut stray = w
        .request("SUBSCRIBE", ALICE)
        .header("Event: presence")
        .header(&contact);
    stray.to = format!("<{ALICE}>;tag=nosuchdialog");
    w.send(&stray.build());
    w.expect_status(481);
    Ok(())
}

#[test]
fn an_expired_subscription_gets_a_terminated_notify() -> TestResult {
    let server = server();
    let mut w = UdpUa::new(server.udp);
    let (_, _, _) = subscribe(&mut w, ALICE, Some(2));
    let started = Instant::now();
    let n = w.expect_notify();
    assert_eq!(
        n.header("Subscription-State"),
        Some("terminated;reason=timeout")
    );
    assert!(started.elapsed() >= Duration::from_millis(1500));
    Ok(())
}

#[test]
fn publish_lifecycle_initial_refresh_modify_remove() -> TestResult {
    let server = server();
    let mut w = UdpUa::new(server.udp);
    let mut p = UdpUa::new(server.udp);
    subscribe(&mut w, ALICE, Some(300));

    let resp = publish(
        &mut p,
        ALICE,
        None,
        Some(120),
        Some(&pidf(ALICE, "t1", "open", "first")),
    );
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.header("Expires"), Some("120"));
    let etag1 = resp.header("SIP-ETag").unwrap().to_string();
    let n = w.expect_notify();
    let body = n.body_str();
    assert!(
        body.contains("<basic>open</basic>") && body.contains("first"),
        "{body}"
    );
    assert!(
        body.contains("rpid:away"),
        "RPID kept with its conventional prefix: {body}"
    );

    let resp = publish(&mut p, ALICE, Some(&etag1), Some(120), None);
    assert_eq!(resp.status(), 200);
    let etag2 = resp.header("SIP-ETag").unwrap().to_string();
    assert_ne!(etag1, etag2);
    assert!(
        w.recv(Duration::from_millis(300)).is_none(),
        "a refresh changes nothing"
    );

    let resp = publish(
        &mut p,
        ALICE,
        Some(&etag2),
        Some(120),
        Some(&pidf(ALICE, "t1", "closed", "second")),
    );
    assert_eq!(resp.status(), 200);
    let etag3 = resp.header("SIP-ETag").unwrap().to_string();
    let body = w.expect_notify().body_str();
    assert!(body.contains("second") && !body.contains("first"), "{body}");

    let resp = publish(&mut p, ALICE, Some(&etag3), Some(0), None);
    assert_eq!(resp.status(), 200);
    let body = w.expect_notify().body_str();
    assert!(
        !body.contains("second") && body.contains("<basic>closed</basic>"),
        "{body}"
    );
    // The old entity-tags are dead.
    assert_eq!(
        publish(&mut p, ALICE, Some(&etag1), None, None).status(),
        412
    );
    Ok(())
}

#[test]
fn a_watcher_arriving_after_unwatched_changes_gets_the_latest_state() -> TestResult {
    let server = server();
    let mut p = UdpUa::new(server.udp);
    // Publishes `basic`/`note` over the publication `etag` (a new one without); its new ETag.
    let mut change = |etag: Option<&str>, basic: &str, note: &str| {
        let resp = publish(
            &mut p,
            ALICE,
            etag,
            Some(120),
            Some(&pidf(ALICE, "t1", basic, note)),
        );
        assert_eq!(resp.status(), 200, "{note}");
        resp.header("SIP-ETag").unwrap().to_string()
    };
    let watcher_sees = |basic: &str, note: &str, not: &str| {
        let mut w = UdpUa::new(server.udp);
        let (ok, notify, initial) = subscribe(&mut w, ALICE, Some(300));
        let body = notify.body_str();
        assert!(
            body.contains(note)
                && !body.contains(not)
                && body.contains(&format!("<basic>{basic}</basic>")),
            "{body}"
        );
        (w, ok, initial)
    };
    // Changes while nobody watches: the document is aggregated only when a watcher comes.
    let etag = change(None, "open", "first");
    let etag = change(Some(&etag), "open", "second");
    let (mut w1, ok, initial) = watcher_sees("open", "second", "first");

    // The watcher leaves; the presentity changes twice unwatched; a new watcher sees the last.
    w1.send(&in_dialog_subscribe(&w1, &initial, &ok, 2, 0));
    w1.expect_status(200);
    assert_eq!(
        w1.expect_notify().header("Subscription-State"),
        Some("terminated;reason=timeout")
    );
    let etag = change(Some(&etag), "closed", "third");
    change(Some(&etag), "closed", "fourth");
    watcher_sees("closed", "fourth", "third");
    Ok(())
}

#[test]
fn bad_publishes_get_their_errors() -> TestResult {
    let server = server();
    let mut p = UdpUa::new(server.udp);
    let good = pidf(ALICE, "t1", "open", "x");
    assert_eq!(
        publish(&mut p, ALICE, Some("nosuchetag"), None, None).status(),
        412
    );
    assert_eq!(publish(&mut p, ALICE, None, None, None).status(), 400);
    // Wrong content type.
    let req = p
        .request("PUBLISH", ALICE)
        .header("Event: presence")
        .body("text/plain", b"hi");
    p.send(&req.build());
    assert_eq!(
        p.expect_status(415).header("Accept"),
        Some("application/pidf+xml, application/cpim-pidf+xml")
    );
    // Missing and wrong Event.
    let req = p
        .request("PUBLISH", ALICE)
        .body("application/pidf+xml", &good);
    p.send(&req.build());
    p.expect_status(489);
    // Expiry below the minimum, and above the maximum.
    let r = publish(&mut p, ALICE, None, Some(99_999), Some(&good));
    assert_eq!(r.header("Expires"), Some("3600"));
    // Entity mismatch.
    let other = pidf("sip:bob@example.org", "t1", "open", "x");
    let r = publish(&mut p, ALICE, None, None, Some(&other));
    assert_eq!(r.status(), 400);
    assert!(r.start.contains("Entity"), "{}", r.start);
    Ok(())
}

#[test]
fn publish_expiry_below_the_minimum_gets_423() -> TestResult {
    let server = TestServer::start_with("", "[presence]\npublish_min_expires = 60\n");
    let mut p = UdpUa::new(server.udp);
    let r = publish(
        &mut p,
        ALICE,
        None,
        Some(10),
        Some(&pidf(ALICE, "t", "open", "x")),
    );
    assert_eq!(r.status(), 423);
    assert_eq!(r.header("Min-Expires"), Some("60"));
    Ok(())
}

#[test]
fn hostile_bodies_are_refused_and_nothing_breaks() -> TestResult {
    let server = server();
    let mut p = UdpUa::new(server.udp);
    let laughs = format!(
        "<?xml version=\"1.0\"?><!DOCTYPE lolz [<!ENTITY lol \"lol\"><!ENTITY lol2 \"&lol;&lol;&lol;\">]>\
         <presence xmlns=\"urn:ietf:params:xml:ns:pidf\" entity=\"{ALICE}\"><note>&lol2;</note></presence>"
    );
    let external = format!(
        "<?xml version=\"1.0\"?><!DOCTYPE p [<!ENTITY x SYSTEM \"file:///etc/passwd\">]>\
         <presence xmlns=\"urn:ietf:params:xml:ns:pidf\" entity=\"{ALICE}\"><note>&x;</note></presence>"
    );
    for body in [laughs, external] {
        let r = publish(&mut p, ALICE, None, None, Some(body.as_bytes()));
        assert_eq!(r.status(), 400, "{}", r.start);
        assert!(r.start.contains("DOCTYPE"), "{}", r.start);
    }
    let r = publish(
        &mut p,
        ALICE,
        None,
        None,
        Some(b"<presence xmlns=\"urn:ietf:params:xml:ns:pidf\" entity=\"x\"><tuple"),
    );
    assert_eq!(r.status(), 400);
    let deep = format!(
        "<presence xmlns=\"urn:ietf:params:xml:ns:pidf\" entity=\"{ALICE}\">{}{}</presence>",
        "<x:a xmlns:x=\"urn:x\">".repeat(40),
        "</x:a>".repeat(40)
    );
    assert_eq!(
        publish(&mut p, ALICE, None, None, Some(deep.as_bytes())).status(),
        400
    );
    let big = pidf(ALICE, "t", "open", &"n".repeat(5000));
    assert_eq!(publish(&mut p, ALICE, None, None, Some(&big)).status(), 413);
    // Still serving.
    let ok = publish(
        &mut p,
        ALICE,
        None,
        None,
        Some(&pidf(ALICE, "t", "open", "fine")),
    );
    assert_eq!(ok.status(), 200);
    Ok(())
}

#[test]
fn two_devices_publish_and_one_expires() -> TestResult {
    let server = server();
    let mut w = UdpUa::new(server.udp);
    let mut phone = UdpUa::new(server.udp);
    let mut desk = UdpUa::new(server.udp);
    subscribe(&mut w, ALICE, Some(300));
    assert_eq!(
        publish(
            &mut phone,
            ALICE,
            None,
            Some(60),
            Some(&pidf(ALICE, "t1", "open", "phone"))
        )
        .status(),
        200
    );
    w.expect_notify();
    assert_eq!(
        publish(
            &mut desk,
            ALICE,
            None,
            Some(1),
            Some(&pidf(ALICE, "t1", "open", "desk"))
        )
        .status(),
        200
    );
    let body = w.expect_notify().body_str();
    assert!(body.contains("phone") && body.contains("desk"), "{body}");
    // Tuple ids are made unique across publications.
    assert!(
        body.contains("id=\"t1\"") && body.contains("id=\"t1-1\""),
        "{body}"
    );
    let body = w.expect_notify().body_str();
    assert!(
        body.contains("phone") && !body.contains("desk"),
        "after expiry: {body}"
    );
    Ok(())
}

#[test]
fn register_makes_the_presentity_open_and_unregister_closes_it() -> TestResult {
    let server = server();
    let mut r = UdpUa::new(server.udp);
    let contact = format!("<sip:alice@{};transport=udp>", r.local());
    let mut reg = r.request("REGISTER", "sip:example.org");
    reg.to = format!("<{ALICE}>");
    let reg1 = reg
        .header(&format!("Contact: {contact};q=0.7"))
        .header("Expires: 120");
    r.send(&reg1.build());
    let ok = r.expect_status(200);
    assert!(
        ok.header("Contact").unwrap().contains("expires="),
        "{ok:#?}"
    );

    let mut w = TcpUa::connect(server.tcp);
    let (_, notify, _) = subscribe(&mut w, ALICE, Some(300));
    let body = notify.body_str();
    assert!(body.contains("<basic>open</basic>"), "{body}");
    assert!(
        body.contains(&format!("sip:alice@{};transport=udp", r.local())),
        "{body}"
    );
    assert!(body.contains("priority=\"0.7\""), "{body}");

    let mut unreg = r.request("REGISTER", "sip:example.org");
    unreg.to = format!("<{ALICE}>");
    unreg.call_id = reg1.call_id.clone();
    unreg.cseq = 2;
    r.send(&unreg.header("Contact: *").header("Expires: 0").build());
    r.expect_status(200);
    let body = w.expect_notify().body_str();
    assert!(body.contains("<basic>closed</basic>"), "{body}");
    Ok(())
}

#[test]
fn register_bindings_expire_and_bad_registers_are_refused() -> TestResult {
    let server = server();
    let mut r = UdpUa::new(server.udp);
    let mut w = UdpUa::new(server.udp);
    let mut reg = r.request("REGISTER", "sip:example.org");
    reg.to = format!("<{ALICE}>");
    r.send(
        &reg.header(&format!("Contact: <sip:alice@{}>;expires=1", r.local()))
            .build(),
    );
    r.expect_status(200);
    let (_, n, _) = subscribe(&mut w, ALICE, Some(300));
    assert!(n.body_str().contains("<basic>open</basic>"));
    let body = w.expect_notify().body_str();
    assert!(
        body.contains("<basic>closed</basic>"),
        "binding expired: {body}"
    );
    let mut bad = r.request("REGISTER", "sip:example.org");
    bad.to = format!("<{ALICE}>");
    r.send(&bad.header("Contact: *").header("Expires: 60").build());
    r.expect_status(400);
    Ok(())
}

#[test]
fn a_notify_that_is_never_answered_ends_its_subscription() -> TestResult {
    let server = server();
    let mut w = UdpUa::new(server.udp);
    let req = subscribe_request(&w, ALICE).header("Expires: 300");
    w.send(&req.build());
    let ok = w.expect_status(200);
    // Timer E retransmits the unanswered NOTIFY; Timer F (64 x 50 ms) then ends it.
    let first = w.expect_request("NOTIFY");
    let again = w.expect_request("NOTIFY");
    assert_eq!(first.header("CSeq"), again.header("CSeq"));
    let deadline = Instant::now() + Duration::from_secs(6);
    while Instant::now() < deadline && w.recv(Duration::from_millis(500)).is_some() {}
    w.send(&in_dialog_subscribe(&w, &req, &ok, 2, 300));
    w.expect_status(481);
    Ok(())
}

#[test]
fn a_notify_rejected_with_481_ends_its_subscription() -> TestResult {
    let server = server();
    let mut w = UdpUa::new(server.udp);
    let req = subscribe_request(&w, ALICE);
    w.send(&req.build());
    let ok = w.expect_status(200);
    let n = w.expect_request("NOTIFY");
    w.send(&answer(&n, 481));
    server.wait_log("subscription ended", 1);
    w.send(&in_dialog_subscribe(&w, &req, &ok, 2, 300));
    w.expect_status(481);
    Ok(())
}

#[test]
fn a_burst_of_publishes_is_coalesced_without_two_notifies_outstanding() -> TestResult {
    let server = server();
    let mut w = TcpUa::connect(server.tcp);
    let mut p = UdpUa::new(server.udp);
    subscribe(&mut w, ALICE, Some(300));
    let mut etag = publish(
        &mut p,
        ALICE,
        None,
        None,
        Some(&pidf(ALICE, "t", "open", "n0")),
    )
    .header("SIP-ETag")
    .unwrap()
    .to_string();
    for i in 1..50 {
        let r = publish(
            &mut p,
            ALICE,
            Some(&etag),
            None,
            Some(&pidf(ALICE, "t", "open", &format!("n{i}"))),
        );
        assert_eq!(r.status(), 200);
        etag = r.header("SIP-ETag").unwrap().to_string();
    }
    // Answer slowly; while one NOTIFY is unanswered no other may arrive.
    let mut last_cseq = 1u32;
    let mut last_body = String::new();
    let mut count = 0;
    while let Some(n) = w.recv(Duration::from_millis(700)) {
        assert!(n.is_request("NOTIFY"));
        let cseq: u32 = n
            .header("CSeq")
            .unwrap()
            .split(' ')
            .next()
            .unwrap()
            .parse()?;
        assert!(
            cseq > last_cseq,
            "CSeq must increase: {cseq} after {last_cseq}"
        );
        last_cseq = cseq;
        assert!(
            w.recv(Duration::from_millis(60)).is_none(),
            "two NOTIFYs outstanding"
        );
        w.send(&answer(&n, 200));
        last_body = n.body_str();
        count += 1;
    }
    assert!(
        last_body.contains(">n49<"),
        "final state reached: {last_body}"
    );
    assert!(count < 50, "changes were coalesced ({count} NOTIFYs)");
    Ok(())
}

#[test]
fn notifies_reuse_the_tcp_connection_of_the_subscribe() -> TestResult {
    // linphone over TCP: the Contact names an ephemeral port nobody listens on, with ;alias.
    let server = server();
    let mut w = TcpUa::connect(server.tcp);
    let mut req = w
        .request("SUBSCRIBE", ALICE)
        .header("Event: presence")
        .header("Contact: <sip:bob@127.0.0.1:1;transport=tcp>");
    req.via = format!(
        "SIP/2.0/TCP {};branch=z9hG4bK{};alias",
        w.local(),
        unique("b")
    );
    w.send(&req.build());
    w.expect_status(200);
    let n = w.expect_notify();
    assert!(n
        .start
        .starts_with("NOTIFY sip:bob@127.0.0.1:1;transport=tcp "));
    Ok(())
}

#[test]
fn record_route_becomes_the_notify_route_set() -> TestResult {
    let server = server();
    let mut w = UdpUa::new(server.udp);
    let proxy = format!("<sip:{};lr>", w.local());
    let req = w
        .request("SUBSCRIBE", ALICE)
        .header("Event: presence;id=42")
        .header("Contact: <sip:bob@192.0.2.99:5060>")
        .header(&format!("Record-Route: {proxy}"));
    w.send(&req.build());
    w.expect_status(200);
    // The NOTIFY goes to the route (our socket), not to the unreachable Contact.
    let n = w.expect_notify();
    assert_eq!(n.header("Route"), Some(proxy.as_str()));
    assert_eq!(n.header("Event"), Some("presence;id=42"));
    assert!(n.start.starts_with("NOTIFY sip:bob@192.0.2.99:5060 "));
    Ok(())
}

fn capture(path: &str, ua_addr: &str) -> Vec<u8> {
    let text = std::fs::read(fixture(path)).unwrap();
    // The captures were made with the client on 127.0.0.1:5064 (baresip) or :5062.
    let s = String::from_utf8(text).unwrap();
    s.replace("127.0.0.1:5064", ua_addr)
        .replace("127.0.0.1:5062", ua_addr)
        .into_bytes()
}

#[test]
fn baresip_captures_subscribe_and_publish_as_sent() -> TestResult {
    let server = server();
    let mut w = UdpUa::new(server.udp);
    let mut p = UdpUa::new(server.udp);
    // Empty `Supported:`, no Accept, Route to the proxy.
    w.send(&capture(
        "captures/baresip-udp-subscribe.sip",
        &w.local().to_string(),
    ));
    w.expect_status(200);
    w.expect_notify();
    // A new Call-ID on every PUBLISH; publications are matched by entity-tag.
    p.send(&capture(
        "captures/baresip-udp-publish-open.sip",
        &p.local().to_string(),
    ));
    assert_eq!(p.expect().status(), 200);
    let body = w.expect_notify().body_str();
    assert!(body.contains("<basic>open</basic>"), "{body}");
    // baresip recognises RPID only under the literal `rpid:` prefix.
    assert!(
        body.contains("xmlns:rpid=\"urn:ietf:params:xml:ns:pidf:rpid\"")
            && body.contains("<rpid:activities"),
        "{body}"
    );
    Ok(())
}

#[test]
fn a_notify_opens_a_new_tcp_connection_when_the_subscribe_connection_is_gone() -> TestResult {
    let server = server();
    let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    let contact_addr = listener.local_addr()?;
    {
        let mut w = TcpUa::connect(server.tcp);
        let req = w
            .request("SUBSCRIBE", ALICE)
            .header("Event: presence")
            .header(&format!("Contact: <sip:bob@{contact_addr};transport=tcp>"));
        w.send(&req.build());
        w.expect_status(200);
        w.expect_notify();
    }
    // The subscriber's connection is closed; a change must reach the Contact over a new one.
    assert_eq!(server.wait_log("closed by peer", 1), 1);
    let mut p = UdpUa::new(server.udp);
    assert_eq!(
        publish(
            &mut p,
            ALICE,
            None,
            None,
            Some(&pidf(ALICE, "t", "open", "x"))
        )
        .status(),
        200
    );
    listener.set_nonblocking(false)?;
    let (stream, _) = listener.accept()?;
    stream.set_nodelay(true)?;
    let mut conn = TcpUa::from_stream(stream);
    let n = conn.expect_notify();
    assert!(n.body_str().contains("<basic>open</basic>"));
    Ok(())
}

#[test]
fn a_notify_answered_408_ends_the_subscription_unless_configured_to_keep_it() -> TestResult {
    for keep in [false, true] {
        let server = TestServer::start_with(
            "",
            &format!("[presence]\nkeep_subscription_on_408 = {keep}\n"),
        );
        let mut w = UdpUa::new(server.udp);
        let req = subscribe_request(&w, ALICE);
        w.send(&req.build());
        let ok = w.expect_status(200);
        let n = w.expect_request("NOTIFY");
        w.send(&answer(&n, 408));
        // The server logs what it did with the 408 before the refresh is sent.
        let outcome = if keep {
            "subscription kept"
        } else {
            "subscription ended"
        };
        assert_eq!(server.wait_log(outcome, 1), 1);
        w.send(&in_dialog_subscribe(&w, &req, &ok, 2, 600));
        w.expect_status(if keep { 200 } else { 481 });
    }
    Ok(())
}

#[test]
fn subscriptions_work_with_tcp_on_its_own_io_thread() -> TestResult {
    let server = TestServer::start_with("tcp_io_thread = true", "");
    let mut w = TcpUa::connect(server.tcp);
    let (ok, _, initial) = subscribe(&mut w, ALICE, Some(300));
    let mut p = UdpUa::new(server.udp);
    assert_eq!(
        publish(
            &mut p,
            ALICE,
            None,
            None,
            Some(&pidf(ALICE, "t", "open", "io"))
        )
        .status(),
        200
    );
    assert!(w.expect_notify().body_str().contains(">io<"));
    // The un-SUBSCRIBE follows the 200 at once: the dialog is registered before the 200 leaves.
    w.send(&in_dialog_subscribe(&w, &initial, &ok, 2, 0));
    w.expect_response(200);
    assert_eq!(
        w.expect_notify().header("Subscription-State"),
        Some("terminated;reason=timeout")
    );
    Ok(())
}

#[test]
fn users_with_dots_in_their_names_are_presentities_like_any_other() -> TestResult {
    let server = server();
    let aor = "sip:john.doe@example.org";
    let mut w = UdpUa::new(server.udp);
    let (_, first, _) = subscribe(&mut w, aor, Some(600));
    assert_eq!(
        first.header("Subscription-State").map(|s| &s[..6]),
        Some("active")
    );
    let mut p = UdpUa::new(server.udp);
    let ok = publish(
        &mut p,
        aor,
        None,
        Some(600),
        Some(&pidf(aor, "t1", "open", "dotted")),
    );
    assert_eq!(ok.status(), 200);
    let n = w.expect_notify();
    assert!(
        n.body_str().contains("entity=\"sip:john.doe@example.org\"")
            && n.body_str().contains("dotted"),
        "{}",
        n.body_str()
    );
    Ok(())
}
