//! Event packages beyond presence over real sockets: message-summary (RFC 3842) published
//! by a voicemail server and notified to its watchers, its default body, malformed bodies,
//! routing by Event, and recovery after kill -9.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::lists;
use common::*;

const ALICE: &str = "sip:alice@example.org";
const MWI: &str = "application/simple-message-summary";
const WAITING: &str =
    "Messages-Waiting: yes\r\nMessage-Account: sip:alice@vmail.example.org\r\nVoice-Message: 2/8 (0/2)\r\n";

/// A message-summary SUBSCRIBE to alice.
fn mwi_subscribe(ua: &impl Ua) -> RequestBuilder {
    ua.new_request("SUBSCRIBE", ALICE)
        .header("Event: message-summary")
        .header(&format!("Contact: <sip:phone@{}>", ua.local_addr()))
        .header("Expires: 600")
}

/// The voicemail server's PUBLISH of `body` for alice.
fn mwi_publish(ua: &impl Ua, body: &str) -> RequestBuilder {
    ua.new_request("PUBLISH", ALICE)
        .header("Event: message-summary")
        .header("Expires: 600")
        .body(MWI, body.as_bytes())
}

fn config() -> String {
    "[presence]\nmin_expires = 1\npublish_min_expires = 1\n".into()
}

#[test]
fn a_voicemail_servers_summary_reaches_its_watchers() -> TestResult {
    let server = TestServer::start_with("", &config());
    let mut phone = UdpUa::new(server.udp);
    phone.send(&mwi_subscribe(&phone).build());
    phone.expect_status(200);
    let first = phone.expect_notify();
    assert_eq!(first.header("Event"), Some("message-summary"));
    assert_eq!(first.header("Content-Type"), Some(MWI));
    assert_eq!(
        first.body_str(),
        "Messages-Waiting: no\r\n",
        "nothing published"
    );

    let mut vm = UdpUa::new(server.udp);
    vm.send(&mwi_publish(&vm, WAITING).build());
    let ok = vm.expect_status(200);
    let etag = ok.header("SIP-ETag").unwrap().to_owned();
    assert_eq!(phone.expect_notify().body_str(), WAITING);

    // The newest publication is the state; its removal brings the default back.
    let read = "Messages-Waiting: no\r\nVoice-Message: 0/10\r\n";
    vm.send(
        &mwi_publish(&vm, read)
            .header(&format!("SIP-If-Match: {etag}"))
            .build(),
    );
    let etag = vm.expect_status(200).header("SIP-ETag").unwrap().to_owned();
    assert_eq!(phone.expect_notify().body_str(), read);
    let remove = vm
        .request("PUBLISH", ALICE)
        .header("Event: message-summary")
        .header("Expires: 0")
        .header(&format!("SIP-If-Match: {etag}"));
    vm.send(&remove.build());
    vm.expect_status(200);
    assert_eq!(phone.expect_notify().body_str(), "Messages-Waiting: no\r\n");
    Ok(())
}

#[test]
fn malformed_summaries_and_wrong_types_are_refused() -> TestResult {
    let server = TestServer::start_with("", &config());
    let mut vm = UdpUa::new(server.udp);
    vm.send(&mwi_publish(&vm, "Messages-Waiting: perhaps\r\n").build());
    vm.expect_status(400);
    vm.send(&mwi_publish(&vm, "Messages-Waiting: yes\r\nVoice-Message: lots\r\n").build());
    vm.expect_status(400);
    let wrong = vm
        .request("PUBLISH", ALICE)
        .header("Event: message-summary")
        .body("application/pidf+xml", b"<presence/>");
    vm.send(&wrong.build());
    assert_eq!(vm.expect_status(415).header("Accept"), Some(MWI));
    // A package nobody serves gets 489 naming every package that is served.
    let mut w = UdpUa::new(server.udp);
    let dialog = w
        .new_request("SUBSCRIBE", ALICE)
        .header("Event: x-unknown")
        .header(&format!("Contact: <sip:w@{}>", w.local()));
    w.send(&dialog.build());
    assert_eq!(
        w.expect_status(489).header("Allow-Events"),
        Some("dialog, message-summary, presence, reg")
    );
    // A lamp subscription that accepts no dialog-info gets 406 naming what is served.
    let blind = w
        .new_request("SUBSCRIBE", BLF)
        .header("Event: dialog")
        .header("Accept: application/pidf+xml")
        .header(&format!("Contact: <sip:w@{}>", w.local()));
    w.send(&blind.build());
    assert_eq!(
        w.expect_status(406).header("Accept"),
        Some("application/dialog-info+xml")
    );
    w.send(&w.request("OPTIONS", "sip:example.org").build());
    let ok = w.expect_status(200);
    assert_eq!(
        ok.header("Allow-Events"),
        Some("dialog, message-summary, presence, reg")
    );
    assert!(ok.header("Accept").unwrap().contains(MWI));
    Ok(())
}

#[test]
fn message_summary_subscriptions_and_publications_survive_kill_9() -> TestResult {
    let dir = tempfile::tempdir()?;
    for (store, url) in store_urls(dir.path()) {
        let text = config_with_store(&url, "", &config());
        let server = TestServer::start_config(tempfile::tempdir()?, &text);
        let mut phone = UdpUa::new(server.udp);
        let req = mwi_subscribe(&phone);
        phone.send(&req.build());
        let ok = phone.expect_status(200);
        let before = phone.expect_notify();
        let mut vm = UdpUa::new(server.udp);
        vm.send(&mwi_publish(&vm, WAITING).build());
        vm.expect_status(200);
        let published = phone.expect_notify();
        assert_eq!(published.body_str(), WAITING, "{store}");

        let folder = server.kill_hard();
        let server = TestServer::start_config(folder, &text);
        let recovered = phone.expect_notify();
        assert_eq!(
            recovered.body_str(),
            WAITING,
            "{store}: the publication survived"
        );
        let cseq = |m: &SipMsg| -> u32 {
            m.header("CSeq")
                .unwrap()
                .split_whitespace()
                .next()
                .unwrap()
                .parse()
                .unwrap()
        };
        assert!(cseq(&recovered) > cseq(&published), "{store}");
        assert!(cseq(&published) > cseq(&before));
        // The recovered dialog takes a refresh; the UA now talks to the new server.
        phone.server = server.udp;
        let refresh =
            in_dialog_subscribe_request(&phone, &req, &ok, 2, 600).header("Event: message-summary");
        let mut refresh = refresh;
        refresh.extra.retain(|h| h != "Event: presence");
        phone.send(&refresh.build());
        phone.expect_status(200);
        assert_eq!(phone.expect_notify().body_str(), WAITING, "{store}");
    }
    Ok(())
}

const BLF: &str = "sip:200@example.test";

/// A busy-lamp SUBSCRIBE to extension 200, as a desk phone sends it.
fn blf_subscribe(ua: &impl Ua) -> RequestBuilder {
    ua.new_request("SUBSCRIBE", BLF)
        .header("Event: dialog")
        .header("Accept: application/dialog-info+xml")
        .header(&format!("Contact: <sip:phone@{}>", ua.local_addr()))
        .header("Expires: 600")
}

/// Kamailio's pua_dialoginfo PUBLISH `name` (a fixture), sent from `ua`, answered 200.
fn kamailio_publish(ua: &mut UdpUa, name: &str, expires: Option<u32>) {
    let bytes = lists::capture(
        &format!("captures/kamailio-pua-dialoginfo/{name}.sip"),
        "127.0.0.1:5802",
        ua.local(),
    );
    let mut text = String::from_utf8(bytes).unwrap();
    if let Some(e) = expires {
        text = text.replace("Expires: 11\r\n", &format!("Expires: {e}\r\n"));
    }
    ua.send(text.as_bytes());
    ua.expect_status(200);
}

/// The state of the one dialog a NOTIFY shows, or "idle", and its version.
fn lamp(n: &SipMsg) -> (String, u32) {
    let body = n.body_str();
    let version = body
        .split("version=\"")
        .nth(2)
        .and_then(|v| v.split('"').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no version: {body}"));
    let state = body
        .split("<state>")
        .nth(1)
        .and_then(|s| s.split('<').next())
        .unwrap_or("idle")
        .to_owned();
    (state, version)
}

#[test]
fn a_kamailio_call_lights_the_lamp_in_order_and_puts_it_out_for_good() -> TestResult {
    let server = TestServer::start_with("", &config());
    let mut phone = UdpUa::new(server.udp);
    phone.send(&blf_subscribe(&phone).build());
    phone.expect_status(200);
    let first = phone.expect_notify();
    assert_eq!(first.header("Event"), Some("dialog"));
    assert_eq!(
        first.header("Content-Type"),
        Some("application/dialog-info+xml")
    );
    assert_eq!(lamp(&first), ("idle".into(), 0), "nothing published");

    let mut proxy = UdpUa::new(server.udp);
    let order = ["trying", "early", "confirmed", "terminated"];
    let mut seen = vec![lamp(&first)];
    let mut bodies = vec![first.body_str()];
    for (name, state) in [
        ("publish-01-200-trying", "trying"),
        ("publish-02-200-early", "early"),
        ("publish-04-200-confirmed", "confirmed"),
        ("publish-06-200-terminated", "terminated"),
    ] {
        // The terminated publication lives 1 s here (11 s in the capture).
        let expires = (state == "terminated").then_some(1);
        kamailio_publish(&mut proxy, name, expires);
        loop {
            let n = phone.expect_notify();
            let body = n.body_str();
            assert!(
                body.find("<local>") < body.find("<remote>"),
                "schema order: {body}"
            );
            seen.push(lamp(&n));
            bodies.push(body);
            if seen.last().is_some_and(|(s, _)| s == state) {
                break;
            }
        }
    }
    // Never an older state after a newer one; versions go up by one per NOTIFY.
    let ranks: Vec<usize> = seen[1..]
        .iter()
        .map(|(s, _)| order.iter().position(|o| o == s).unwrap())
        .collect();
    assert!(ranks.windows(2).all(|w| w[0] <= w[1]), "{seen:?}");
    assert!(seen.windows(2).all(|w| w[1].1 == w[0].1 + 1), "{seen:?}");
    // When the terminated publication expires, the older ones (12 h each in the capture) do
    // not light the lamp again: the lamp is idle.
    let after = phone.expect_notify();
    assert_eq!(lamp(&after).0, "idle", "{}", after.body_str());
    bodies.push(after.body_str());
    // What Kamailio sent sloppily goes on valid against RFC 4235's schema.
    lists::xmllint_all("dialog-info.xsd", bodies);
    Ok(())
}

#[test]
fn dialogs_of_several_publishers_are_merged() -> TestResult {
    let server = TestServer::start_with("", &config());
    let mut phone = UdpUa::new(server.udp);
    phone.send(&blf_subscribe(&phone).build());
    phone.expect_status(200);
    phone.expect_notify();
    let mut a = UdpUa::new(server.udp);
    let mut b = UdpUa::new(server.udp);
    let body = |id: &str, state: &str| dialog_info(BLF, id, state);
    for (ua, id, state) in [(&mut a, "call-a", "confirmed"), (&mut b, "call-b", "early")] {
        let req = ua
            .new_request("PUBLISH", BLF)
            .header("Event: dialog")
            .header("Expires: 600")
            .body("application/dialog-info+xml", body(id, state).as_bytes());
        ua.send(&req.build());
        ua.expect_status(200);
    }
    let merged = loop {
        let n = phone.expect_notify();
        if n.body_str().matches("<dialog ").count() == 2 {
            break n.body_str();
        }
    };
    assert!(
        merged.contains("id=\"call-a\"") && merged.contains("id=\"call-b\""),
        "{merged}"
    );
    lists::xmllint("dialog-info.xsd", &[("merged.xml".into(), merged.clone())]);
    // A body that is no dialog-info gets 400.
    let bad = a.new_request("PUBLISH", BLF).header("Event: dialog").body(
        "application/dialog-info+xml",
        b"<dialog-info><dialog/></dialog-info>",
    );
    a.send(&bad.build());
    a.expect_status(400);
    Ok(())
}

#[test]
fn a_busy_lamp_list_gets_rlmi_with_dialog_info_parts_and_survives_kill_9() -> TestResult {
    let dir = tempfile::tempdir()?;
    let url = format!("sqlite://{}", dir.path().join("blf.db").display());
    let text = config_with_store(&url, "", &config());
    let server = TestServer::start_config(tempfile::tempdir()?, &text);
    let mut phone = UdpUa::new(server.udp);
    let lamps: Vec<String> = (200..203)
        .map(|n| format!("sip:{n}@example.test"))
        .collect();
    let mut req = lists::list_subscribe(&phone, &lamps, false);
    for h in &mut req.extra {
        if h.starts_with("Event:") {
            *h = "Event: dialog".into();
        } else if h.starts_with("Accept:") {
            *h = "Accept: multipart/related, application/rlmi+xml, application/dialog-info+xml"
                .into();
        }
    }
    phone.send(&req.build());
    phone.expect_status(200);
    let full = lists::expect_list_notify(&mut phone);
    assert_eq!(full.msg.header("Event"), Some("dialog"));
    assert_eq!(full.msg.header("Require"), Some("eventlist"));
    assert!(full.full_state());
    assert_eq!(full.resources(), lamps);
    let idle = full
        .pidf_of(&lamps[1])
        .expect("a dialog-info part per lamp");
    assert!(
        idle.contains("entity=\"sip:201@example.test\"") && !idle.contains("<dialog "),
        "{idle}"
    );
    let mut docs = vec![("rlmi-0.xml".to_owned(), full.rlmi().to_owned())];
    let mut lamp_docs = vec![("lamp-0.xml".to_owned(), idle.to_owned())];

    let call = "<?xml version=\"1.0\"?>\n<dialog-info xmlns=\"urn:ietf:params:xml:ns:dialog-info\" \
         version=\"0\" state=\"full\" entity=\"sip:201@example.test\"><dialog id=\"c1\" direction=\"recipient\">\
         <state>early</state></dialog></dialog-info>";
    let mut proxy = UdpUa::new(server.udp);
    let publish = proxy
        .new_request("PUBLISH", &lamps[1])
        .header("Event: dialog")
        .header("Expires: 600")
        .body("application/dialog-info+xml", call.as_bytes());
    proxy.send(&publish.build());
    proxy.expect_status(200);
    let ringing = lists::expect_list_notify(&mut phone);
    assert!(!ringing.full_state());
    assert_eq!(
        ringing.resources(),
        [lamps[1].clone()],
        "only the lamp that changed"
    );
    let part = ringing.pidf_of(&lamps[1]).unwrap();
    assert!(part.contains("<state>early</state>"), "{part}");
    assert!(
        part.contains(&format!(" version=\"{}\" ", ringing.version())),
        "the part's version is the list NOTIFY's, which only goes up: {part}"
    );
    docs.push(("rlmi-1.xml".into(), ringing.rlmi().to_owned()));
    lamp_docs.push(("lamp-1.xml".into(), part.to_owned()));

    let folder = server.kill_hard();
    let server = TestServer::start_config(folder, &text);
    phone.server = server.udp;
    let recovered = lists::expect_list_notify(&mut phone);
    assert!(recovered.full_state() && recovered.version() > ringing.version());
    assert_eq!(recovered.msg.header("Event"), Some("dialog"));
    let part = recovered.pidf_of(&lamps[1]).unwrap();
    assert!(
        part.contains("<state>early</state>"),
        "the publication survived: {part}"
    );
    docs.push(("rlmi-2.xml".into(), recovered.rlmi().to_owned()));
    lamp_docs.push(("lamp-2.xml".into(), part.to_owned()));
    lists::xmllint("rlmi.xsd", &docs);
    lists::xmllint("dialog-info.xsd", &lamp_docs);
    Ok(())
}

#[test]
fn a_resource_holds_a_bounded_number_of_publications() -> TestResult {
    let server = TestServer::start_with(
        "",
        "[presence]\nmin_expires = 1\npublish_min_expires = 1\nmax_publications_per_resource = 2\n",
    );
    let mut proxy = UdpUa::new(server.udp);
    let publish = |ua: &UdpUa, id: &str, etag: Option<&str>| {
        let body = dialog_info(BLF, id, "confirmed");
        let mut r = ua
            .new_request("PUBLISH", BLF)
            .header("Event: dialog")
            .header("Expires: 600");
        if let Some(tag) = etag {
            r = r.header(&format!("SIP-If-Match: {tag}"));
        }
        r.body("application/dialog-info+xml", body.as_bytes())
            .build()
    };
    proxy.send(&publish(&proxy, "call-1", None));
    let first = proxy
        .expect_status(200)
        .header("SIP-ETag")
        .unwrap()
        .to_owned();
    proxy.send(&publish(&proxy, "call-2", None));
    proxy.expect_status(200);
    // A third call's publication is one too many; changing a live one still works.
    proxy.send(&publish(&proxy, "call-3", None));
    let refused = proxy.expect_status(403);
    assert!(
        refused.start.contains("Too Many Publications"),
        "{refused:?}"
    );
    proxy.send(&publish(&proxy, "call-1b", Some(&first)));
    proxy.expect_status(200);
    assert_eq!(
        server.log_count("new publication refused"),
        1,
        "logged once"
    );
    Ok(())
}
