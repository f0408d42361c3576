//! Event packages beyond presence over real sockets: message-summary (RFC 3842) published
//! by a voicemail server and notified to its watchers, its default body, malformed bodies,
//! routing by Event, and recovery after kill -9.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

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
        Some("message-summary, presence")
    );
    w.send(&w.request("OPTIONS", "sip:example.org").build());
    let ok = w.expect_status(200);
    assert_eq!(ok.header("Allow-Events"), Some("message-summary, presence"));
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
