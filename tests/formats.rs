//! Presence in the formats SER's pa module served, chosen per watcher by Accept, over real
//! sockets: PIDF, CPIM-PIDF, XPIDF and LPIDF; CPIM-PIDF publications; a recovered watcher
//! keeps its format.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;

const ALICE: &str = "sip:alice@example.org";

/// alice, open and busy (RPID), reachable at a device contact.
fn busy_alice(namespace: &str) -> Vec<u8> {
    format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<presence xmlns=\"{namespace}\" \
         xmlns:dm=\"urn:ietf:params:xml:ns:pidf:data-model\" \
         xmlns:rpid=\"urn:ietf:params:xml:ns:pidf:rpid\" entity=\"{ALICE}\">\
         <tuple id=\"d1\"><status><basic>open</basic></status>\
         <contact priority=\"0.7\">sip:alice@192.0.2.4:5060</contact></tuple>\
         <dm:person id=\"p1\"><rpid:activities><rpid:busy/></rpid:activities></dm:person>\
         </presence>\n"
    )
    .into_bytes()
}

fn publish(ua: &mut UdpUa, content_type: &str, body: &[u8]) {
    let req = ua
        .request("PUBLISH", ALICE)
        .header("Event: presence")
        .header("Expires: 600")
        .body(content_type, body);
    ua.send(&req.build());
    ua.expect_status(200);
}

/// Subscribes to alice with `accept`; the first NOTIFY.
fn watch(server: &TestServer, accept: &str) -> SipMsg {
    let mut w = UdpUa::new(server.udp);
    let req = subscribe_request(&w, ALICE)
        .header(&format!("Accept: {accept}"))
        .header("Expires: 600");
    w.send(&req.build());
    w.expect_status(200);
    w.expect_notify()
}

#[test]
fn each_watcher_gets_the_format_its_accept_prefers() -> TestResult {
    let server = TestServer::start();
    let mut p = UdpUa::new(server.udp);
    publish(
        &mut p,
        "application/pidf+xml",
        &busy_alice("urn:ietf:params:xml:ns:pidf"),
    );

    let x = watch(&server, "application/xpidf+xml");
    assert_eq!(x.header("Content-Type"), Some("application/xpidf+xml"));
    let body = x.body_str();
    assert!(
        body.contains(
            "<!DOCTYPE presence PUBLIC \"-//IETF//DTD RFCxxxx XPIDF 1.0//EN\" \"xpidf.dtd\">"
        ),
        "{body}"
    );
    assert!(
        body.contains(
            "<presentity uri=\"sip:alice@example.org;method=SUBSCRIBE\"/>\r\n<atom id=\"d1\">\r\n\
             <address uri=\"sip:alice@192.0.2.4:5060\" priority=\"0.7\">\r\n\
             <status status=\"inuse\"/>"
        ),
        "busy is in use: {body}"
    );

    let l = watch(
        &server,
        "application/xpidf+xml;q=0.5, application/lpidf+xml",
    );
    assert_eq!(l.header("Content-Type"), Some("application/lpidf+xml"));
    assert_eq!(
        l.body_str(),
        "To: <sip:alice@example.org>\r\nContact: <sip:alice@192.0.2.4:5060>;q=1\r\n"
    );

    let c = watch(&server, "application/cpim-pidf+xml");
    assert_eq!(c.header("Content-Type"), Some("application/cpim-pidf+xml"));
    let body = c.body_str();
    assert!(
        body.contains("<presence xmlns=\"urn:ietf:params:xml:ns:cpim-pidf\""),
        "{body}"
    );
    assert!(body.contains("<rpid:busy/>"), "{body}");

    let d = watch(&server, "application/xpidf+xml;q=0.5, application/pidf+xml");
    assert_eq!(d.header("Content-Type"), Some("application/pidf+xml"));
    assert!(d
        .body_str()
        .contains("xmlns=\"urn:ietf:params:xml:ns:pidf\""));

    // OPTIONS says what a SUBSCRIBE may accept.
    let mut o = UdpUa::new(server.udp);
    o.send(&o.request("OPTIONS", "sip:example.org").build());
    let accept = o.expect_status(200).header("Accept").unwrap().to_owned();
    for t in [
        "application/xpidf+xml",
        "application/lpidf+xml",
        "application/cpim-pidf+xml",
    ] {
        assert!(accept.contains(t), "{accept}");
    }
    Ok(())
}

#[test]
fn a_cpim_pidf_publication_reaches_pidf_watchers_as_pidf() -> TestResult {
    let server = TestServer::start();
    let mut p = UdpUa::new(server.udp);
    publish(
        &mut p,
        "application/cpim-pidf+xml",
        &busy_alice("urn:ietf:params:xml:ns:cpim-pidf"),
    );
    let n = watch(&server, "application/pidf+xml");
    let body = n.body_str();
    assert!(
        body.contains("xmlns=\"urn:ietf:params:xml:ns:pidf\"")
            && body.contains("<tuple id=\"d1\"><status><basic>open</basic></status>"),
        "{body}"
    );
    Ok(())
}

#[test]
fn a_recovered_watcher_keeps_its_format() -> TestResult {
    let dir = tempfile::tempdir()?;
    for (store, url) in store_urls(dir.path()) {
        let config = config_with_store(&url, "", "");
        let server = TestServer::start_config(tempfile::tempdir()?, &config);
        let mut w = UdpUa::new(server.udp);
        let req = subscribe_request(&w, ALICE)
            .header("Accept: application/xpidf+xml")
            .header("Expires: 600");
        w.send(&req.build());
        w.expect_status(200);
        w.expect_notify();
        let folder = server.kill_hard();
        let _server = TestServer::start_config(folder, &config);
        let n = w.expect_notify();
        assert_eq!(
            n.header("Content-Type"),
            Some("application/xpidf+xml"),
            "{store}"
        );
        assert!(
            n.body_str().contains("<status status=\"closed\"/>"),
            "{store}: {}",
            n.body_str()
        );
    }
    Ok(())
}
