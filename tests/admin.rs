//! The admin API over real HTTP: off without a token (404), 401 without the right one, paging
//! of presentities, one presentity's publications (every package), bindings, watchers and
//! document, removing a publication (its watchers notified), notifying again, and the served
//! OpenAPI document matching what the server answers.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::Command;

use common::*;

const TOKEN: &str = "s3cret-token";
const ALICE: &str = "sip:alice@example.org";
const BOB: &str = "sip:bob@example.org";

/// An HTTP/1.1 request with the admin token (or `auth`): status and body.
fn call(addr: SocketAddr, method: &str, path: &str, auth: Option<&str>) -> (u16, String) {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(WAIT)).unwrap();
    let auth = auth.map_or(String::new(), |a| format!("Authorization: {a}\r\n"));
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\n{auth}Content-Length: 0\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).unwrap();
    let text = String::from_utf8(raw).unwrap();
    let (head, body) = text.split_once("\r\n\r\n").unwrap();
    let status = head.split(' ').nth(1).unwrap().parse().unwrap();
    (status, body.to_owned())
}

fn admin(addr: SocketAddr, method: &str, path: &str) -> (u16, serde_json::Value) {
    let (status, body) = call(addr, method, path, Some(&format!("Bearer {TOKEN}")));
    let json = if body.is_empty() {
        serde_json::Value::Null
    } else {
        serde_json::from_str(&body).unwrap_or_else(|e| panic!("{e}: {body}"))
    };
    (status, json)
}

fn enc(aor: &str) -> String {
    aor.replace(':', "%3A").replace('@', "%40")
}

/// The server with the admin API on (the keys go into the `[http]` section, the last one the
/// base config writes).
fn server() -> TestServer {
    TestServer::start_with(
        "",
        &format!("admin_token = \"{TOKEN}\"\n[presence]\nmin_expires = 1\n"),
    )
}

fn publish(ua: &UdpUa, aor: &str, event: &str, content_type: &str, body: &str) -> SipMsg {
    let mut ua2 = UdpUa::new(ua.server);
    ua2.send(
        &ua2.new_request("PUBLISH", aor)
            .header(&format!("Event: {event}"))
            .header("Expires: 600")
            .body(content_type, body.as_bytes())
            .build(),
    );
    ua2.expect_status(200)
}

fn pidf(aor: &str, basic: &str) -> String {
    format!(
        "<?xml version=\"1.0\"?><presence xmlns=\"urn:ietf:params:xml:ns:pidf\" entity=\"{aor}\">\
         <tuple id=\"t\"><status><basic>{basic}</basic></status></tuple></presence>"
    )
}

#[test]
fn without_a_token_the_admin_api_is_off_and_with_one_it_needs_it() -> TestResult {
    let off = TestServer::start();
    let http = off.http.unwrap();
    assert_eq!(call(http, "GET", "/admin/v1/presentities", None).0, 404);
    assert_eq!(
        call(http, "GET", "/admin/v1/presentities", Some("Bearer x")).0,
        404
    );

    let on = server();
    let http = on.http.unwrap();
    for auth in [
        None,
        Some("Bearer wrong"),
        Some("Basic czNjcmV0"),
        Some("Bearer"),
    ] {
        let (status, body) = call(http, "GET", "/admin/v1/presentities", auth);
        assert_eq!(status, 401, "{auth:?}: {body}");
    }
    assert_eq!(call(http, "GET", "/admin/v1/nothing", None).0, 401);
    assert_eq!(admin(http, "GET", "/admin/v1/nothing").0, 404);
    let (status, page) = admin(http, "GET", "/admin/v1/presentities");
    assert_eq!((status, page["items"].as_array().unwrap().len()), (200, 0));
    Ok(())
}

#[test]
fn presentities_are_paged_shown_whole_and_operated_on() -> TestResult {
    let server = server();
    let http = server.http.unwrap();
    let mut w = UdpUa::new(server.udp);
    let (_, first, _) = subscribe(&mut w, ALICE, Some(600));
    assert!(first.body_str().contains("presence"));
    let published = publish(
        &w,
        ALICE,
        "presence",
        "application/pidf+xml",
        &pidf(ALICE, "open"),
    );
    let etag = published.header("SIP-ETag").unwrap().to_owned();
    assert!(w.expect_notify().body_str().contains("open"));
    publish(
        &w,
        BOB,
        "presence",
        "application/pidf+xml",
        &pidf(BOB, "closed"),
    );
    let lamp = dialog_info(ALICE, "c1", "confirmed");
    let lamp_etag = publish(&w, ALICE, "dialog", "application/dialog-info+xml", &lamp)
        .header("SIP-ETag")
        .unwrap()
        .to_owned();
    let mut phone = UdpUa::new(server.udp);
    let mut register = phone
        .new_request("REGISTER", "sip:example.org")
        .header(&format!("Contact: <sip:alice@{}>", phone.local()))
        .header("Expires: 600");
    register.to = format!("<{ALICE}>");
    phone.send(&register.build());
    phone.expect_status(200);

    // Paged, in order, bounded.
    let (status, page) = admin(http, "GET", "/admin/v1/presentities?prefix=sip%3A&limit=1");
    assert_eq!(status, 200);
    assert_eq!(page["items"], serde_json::json!([ALICE]));
    assert_eq!(page["next"], serde_json::json!(ALICE));
    let (_, page) = admin(
        http,
        "GET",
        &format!("/admin/v1/presentities?limit=1&after={}", enc(ALICE)),
    );
    assert_eq!(page["items"], serde_json::json!([BOB]));
    let (_, page) = admin(
        http,
        "GET",
        &format!("/admin/v1/presentities?limit=1&after={}", enc(BOB)),
    );
    assert_eq!(
        (page["items"].as_array().unwrap().len(), &page["next"]),
        (0, &serde_json::Value::Null)
    );
    let (_, page) = admin(http, "GET", "/admin/v1/presentities?prefix=sip%3Ab");
    assert_eq!(page["items"], serde_json::json!([BOB]));

    // One presentity, whole.
    let (status, alice) = admin(
        http,
        "GET",
        &format!("/admin/v1/presentities/{}", enc(ALICE)),
    );
    assert_eq!(status, 200, "{alice}");
    let pubs = alice["publications"].as_array().unwrap();
    let packages: Vec<&str> = pubs
        .iter()
        .map(|p| p["package"].as_str().unwrap())
        .collect();
    assert!(
        packages.contains(&"presence") && packages.contains(&"dialog"),
        "{alice}"
    );
    assert!(pubs.iter().any(|p| p["etag"] == etag.as_str()
        && p["content_type"] == "application/pidf+xml"
        && p["expires_in"].as_u64().unwrap() > 500));
    assert_eq!(alice["watchers"], 1);
    assert!(
        alice["document"].as_str().unwrap().contains("open"),
        "{alice}"
    );
    let bindings = alice["bindings"].as_array().unwrap();
    assert_eq!(bindings.len(), 1, "{alice}");
    assert!(bindings[0]["contact"]
        .as_str()
        .unwrap()
        .starts_with("sip:alice@127.0.0.1"));
    assert_eq!(
        admin(
            http,
            "GET",
            "/admin/v1/presentities/sip%3Anobody%40example.org"
        )
        .0,
        404
    );
    assert_eq!(
        admin(http, "GET", "/admin/v1/presentities/not-an-aor").0,
        400
    );

    // A publication removed: committed, then the watcher is told.
    let path = format!("/admin/v1/presentities/{}/publications/{etag}", enc(ALICE));
    assert_eq!(admin(http, "DELETE", &path).0, 204);
    // The published tuple is gone; the registration stands in for it (registration_state).
    let after = w.expect_notify().body_str();
    assert!(!after.contains("<tuple id=\"t\""), "{after}");
    assert_eq!(admin(http, "DELETE", &path).0, 404, "already gone");
    let lamp_path = format!(
        "/admin/v1/presentities/{}/publications/{lamp_etag}",
        enc(ALICE)
    );
    assert_eq!(
        admin(http, "DELETE", &lamp_path).0,
        204,
        "another package's"
    );
    let (_, alice) = admin(
        http,
        "GET",
        &format!("/admin/v1/presentities/{}", enc(ALICE)),
    );
    assert_eq!(
        alice["publications"].as_array().unwrap().len(),
        0,
        "{alice}"
    );

    // Notified again on request.
    let notify = format!("/admin/v1/presentities/{}/notify", enc(ALICE));
    assert_eq!(admin(http, "POST", &notify).0, 204);
    w.expect_notify();
    assert_eq!(
        admin(
            http,
            "POST",
            "/admin/v1/presentities/sip%3Anobody%40example.org/notify"
        )
        .0,
        404
    );
    Ok(())
}

#[test]
fn the_served_openapi_document_describes_what_the_server_answers() -> TestResult {
    let server = server();
    let http = server.http.unwrap();
    let (status, doc) = admin(http, "GET", "/admin/v1/openapi.json");
    assert_eq!(status, 200);
    assert!(doc["openapi"].as_str().unwrap().starts_with("3."));
    let paths = doc["paths"].as_object().unwrap();
    assert_eq!(paths.len(), 5, "{paths:?}");
    // Every operation, called with the token and the path's example values, answers a status
    // its document lists; and without the token, 401, which it lists too.
    for (path, item) in paths {
        for (method, op) in item.as_object().unwrap() {
            let concrete = path
                .replace("{aor}", &enc(ALICE))
                .replace("{etag}", "no-such-etag");
            let listed: Vec<u16> = op["responses"]
                .as_object()
                .unwrap()
                .keys()
                .map(|k| k.parse().unwrap())
                .collect();
            let (status, _) = call(
                http,
                &method.to_uppercase(),
                &concrete,
                Some(&format!("Bearer {TOKEN}")),
            );
            assert!(
                listed.contains(&status),
                "{method} {path}: {status} not in {listed:?}"
            );
            let (status, _) = call(http, &method.to_uppercase(), &concrete, None);
            assert!(
                listed.contains(&status) && status == 401,
                "{method} {path}: {status}"
            );
        }
    }
    Ok(())
}

#[test]
fn schemathesis_finds_the_server_true_to_its_openapi_document() -> TestResult {
    let server = server();
    let http = server.http.unwrap();
    let w = UdpUa::new(server.udp);
    publish(
        &w,
        ALICE,
        "presence",
        "application/pidf+xml",
        &pidf(ALICE, "open"),
    );
    // A schema-driven tester (schemathesis, from PyPI; the test command installs it) calls
    // every operation with examples, edge cases and fuzzed values, and checks each answer
    // against the document: statuses, bodies, rejected invalid input, 405 with Allow.
    let out = Command::new("python3")
        .args(["-m", "schemathesis.cli", "run"])
        .arg(format!("http://{http}/admin/v1/openapi.json"))
        .args(["--header", &format!("Authorization: Bearer {TOKEN}")])
        .args(["--max-examples", "25", "--seed", "1"])
        .output()
        .expect("python3 must be installed");
    let report = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        !report.contains("No module named"),
        "schemathesis must be installed (python3 -m pip install schemathesis): {report}"
    );
    assert!(out.status.success(), "{report}");
    assert!(report.contains("passed"), "{report}");
    Ok(())
}
