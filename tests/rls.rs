//! Resource list subscriptions over real sockets: RFC 4662 list NOTIFYs, RFC 5367
//! request-contained lists (deflated too), server-known lists from the store, throttling,
//! size caps, the liblinphone forms, and recovery after kill -9.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use common::lists::*;
use common::*;

fn rls_config(extra_rls: &str) -> String {
    let interval = if extra_rls.contains("min_notify_interval_ms") {
        ""
    } else {
        "min_notify_interval_ms = 300\n"
    };
    format!(
        "[presence]\nmin_expires = 1\npublish_min_expires = 1\n\
         [rls]\n{interval}{extra_rls}\n"
    )
}

fn members(n: usize, prefix: &str) -> Vec<String> {
    (0..n)
        .map(|i| format!("sip:{prefix}{i:04}@example.org"))
        .collect()
}

fn publish(ua: &mut impl Ua, aor: &str, basic: &str, note: &str) {
    let body = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<presence xmlns=\"urn:ietf:params:xml:ns:pidf\" \
         entity=\"{aor}\"><tuple id=\"t1\"><status><basic>{basic}</basic></status><note>{note}</note></tuple></presence>\n"
    );
    let req = ua
        .new_request("PUBLISH", aor)
        .header("Event: presence")
        .header("Expires: 600")
        .body("application/pidf+xml", body.as_bytes());
    ua.send_bytes(&req.build());
    ua.expect_response(200);
}

#[test]
fn a_list_subscribe_without_eventlist_gets_421_requiring_it() -> TestResult {
    let server = TestServer::start_with("", &rls_config(""));
    let mut ua = UdpUa::new(server.udp);
    let mut req = list_subscribe(&ua, &members(2, "a"), false);
    req.extra.retain(|h| !h.starts_with("Supported"));
    ua.send(&req.build());
    let r = ua.expect_status(421);
    assert_eq!(r.header("Require"), Some("eventlist"));
    Ok(())
}

#[test]
fn a_request_contained_list_gets_a_full_state_rlmi_notify_that_validates() -> TestResult {
    let server = TestServer::start_with("", &rls_config("linphone_compat = \"off\""));
    let mut ua = UdpUa::new(server.udp);
    let mut uris = members(3, "v");
    uris.push("tel:+15551234".into());
    uris.push("sip:V0000@EXAMPLE.org".into()); // the user part is case-sensitive: a new member
    uris.push("sips:v0001@Example.org;transport=tcp".into()); // the same AOR as v0001
    publish(&mut ua, "sip:v0000@example.org", "open", "here");
    ua.send(&list_subscribe(&ua, &uris, false).build());
    let ok = ua.expect_status(200);
    assert_eq!(ok.header("Require"), Some("eventlist"));
    let n = expect_list_notify(&mut ua);
    assert_eq!(n.msg.header("Event"), Some("presence"));
    assert_eq!(n.msg.header("Require"), Some("eventlist"));
    assert!(
        !n.boundary.starts_with('"'),
        "boundary is an unquoted token"
    );
    assert!(n
        .msg
        .header("Content-Type")
        .unwrap()
        .contains("type=\"application/rlmi+xml\""));
    assert!(n.full_state());
    assert_eq!(n.version(), 0);
    assert_eq!(
        n.resources(),
        [
            "sip:v0000@example.org",
            "sip:v0001@example.org",
            "sip:v0002@example.org",
            "sip:V0000@example.org",
            "tel:+15551234"
        ]
    );
    assert!(n.rlmi().contains("reason=\"noresource\""), "{}", n.rlmi());
    // RFC form of the part ids.
    for p in &n.parts {
        let id = p.header("Content-ID").expect("Content-ID");
        assert!(id.starts_with('<') && id.ends_with('>'), "{id}");
    }
    assert!(n
        .pidf_of("sip:v0000@example.org")
        .unwrap()
        .contains("<note>here</note>"));
    let mut docs = vec![("rlmi.xml".to_owned(), n.rlmi().to_owned())];
    xmllint("rlmi.xsd", &docs);
    docs = n.parts[1..]
        .iter()
        .enumerate()
        .map(|(i, p)| (format!("p{i}.xml"), p.body.clone()))
        .collect();
    assert_eq!(docs.len(), 4, "one PIDF part per served member");
    xmllint("pidf.xsd", &docs);
    Ok(())
}

#[test]
fn the_liblinphone_capture_gets_deflated_linphone_style_notifies() -> TestResult {
    let server = TestServer::start_with("", &rls_config(""));
    let mut ua = UdpUa::new(server.udp);
    publish(&mut ua, "sip:alice@example.org", "open", "hi");
    // The capture as liblinphone sent it, with this test's address as Contact and Via.
    ua.send(&capture(
        "captures/liblinphone-rls-subscribe.sip",
        "127.0.0.1:25082",
        ua.local(),
    ));
    let ok = ua.expect_status(200);
    let n = ua.expect_notify();
    // liblinphone needs these (auto: its Via branch is belle-sip's z9hG4bK. form).
    assert_eq!(n.header("Event"), Some("Presence"));
    assert_eq!(
        n.header("Content-Encoding"),
        Some("deflate"),
        "Accept-Encoding: deflate"
    );
    let n = ListNotify::read(n);
    for p in &n.parts {
        let id = p.header("Content-Id").expect("Content-Id");
        assert!(!id.starts_with('<'), "{id}");
        assert!(p.headers.iter().any(|(name, _)| name == "Content-Id"));
    }
    assert_eq!(
        n.resources(),
        ["sip:alice@example.org", "sip:carol@example.org"]
    );
    assert!(n
        .pidf_of("sip:alice@example.org")
        .unwrap()
        .contains("<basic>open</basic>"));
    // Its unsubscribe (a deflate Content-Encoding with no body) ends the subscription.
    let unsub = format!(
        "SUBSCRIBE sip:presence@{} SIP/2.0\r\nVia: SIP/2.0/UDP {};branch=z9hG4bK.unsub1;rport\r\n\
         From: <sip:bob@example.org>;tag=VZn0ubHaV\r\nTo: {}\r\nCSeq: 21 SUBSCRIBE\r\nCall-ID: k1BiRMLeQP\r\n\
         Max-Forwards: 70\r\nSupported: eventlist\r\nEvent: presence\r\nExpires: 0\r\nContent-Encoding: deflate\r\n\
         Contact: <sip:bob@{};transport=udp>\r\nContent-Length: 0\r\n\r\n",
        server.udp,
        ua.local(),
        ok.header("To").unwrap(),
        ua.local()
    );
    ua.send(unsub.as_bytes());
    ua.expect_status(200);
    let last = ua.expect_notify();
    assert!(last
        .header("Subscription-State")
        .unwrap()
        .starts_with("terminated"));
    Ok(())
}

#[test]
fn compat_on_forces_the_linphone_forms_and_a_plain_client_keeps_the_rfc_forms() -> TestResult {
    let server = TestServer::start_with("", &rls_config("linphone_compat = \"on\""));
    let mut ua = UdpUa::new(server.udp);
    ua.send(&list_subscribe(&ua, &members(2, "c"), false).build());
    ua.expect_status(200);
    let n = expect_list_notify(&mut ua);
    assert_eq!(n.msg.header("Event"), Some("Presence"));
    assert!(n.parts[0]
        .headers
        .iter()
        .any(|(name, v)| name == "Content-Id" && !v.starts_with('<')));
    drop(server);
    let server = TestServer::start_with("", &rls_config(""));
    let mut ua = UdpUa::new(server.udp);
    ua.send(&list_subscribe(&ua, &members(2, "c"), false).build());
    ua.expect_status(200);
    let n = expect_list_notify(&mut ua);
    assert_eq!(
        n.msg.header("Event"),
        Some("presence"),
        "auto, not liblinphone"
    );
    assert!(n.parts[0].header("Content-ID").unwrap().starts_with('<'));
    Ok(())
}

#[test]
fn member_changes_are_coalesced_into_one_partial_notify_and_a_refresh_gets_full_state() -> TestResult
{
    let server = TestServer::start_with("", &rls_config("min_notify_interval_ms = 800"));
    let mut ua = UdpUa::new(server.udp);
    let uris = members(6, "m");
    let req = list_subscribe(&ua, &uris, false);
    ua.send(&req.build());
    let ok = ua.expect_status(200);
    let first = expect_list_notify(&mut ua);
    assert!(first.full_state());
    // A burst of changes from three members inside one interval.
    let mut p = UdpUa::new(server.udp);
    for u in &uris[..3] {
        publish(&mut p, u, "open", "burst");
    }
    let partial = expect_list_notify(&mut ua);
    assert!(!partial.full_state());
    assert_eq!(partial.version(), 1);
    assert_eq!(partial.resources(), uris[..3].to_vec());
    for u in &uris[..3] {
        assert!(partial.pidf_of(u).unwrap().contains("<note>burst</note>"));
    }
    assert!(
        ua.recv(Duration::from_millis(1200)).is_none(),
        "the burst gave one NOTIFY"
    );
    // A refresh is answered with full state.
    let refresh = in_dialog_list_subscribe(&ua, &req, &ok, 2, 600, None);
    ua.send(&refresh);
    let r = ua.expect_status(200);
    assert_eq!(r.header("Require"), Some("eventlist"));
    let full = expect_list_notify(&mut ua);
    assert!(full.full_state());
    assert_eq!(full.version(), 2);
    assert_eq!(full.resources().len(), 6);
    // A refresh with a changed list replaces it, with full state again.
    let new_list = members(2, "n");
    let change = in_dialog_list_subscribe(&ua, &req, &ok, 3, 600, Some(&new_list));
    ua.send(&change);
    ua.expect_status(200);
    let replaced = expect_list_notify(&mut ua);
    assert!(replaced.full_state());
    assert_eq!(replaced.resources(), new_list);
    // Old members no longer notify.
    publish(&mut p, &uris[4], "open", "gone");
    publish(&mut p, &new_list[1], "open", "new");
    let partial = expect_list_notify(&mut ua);
    assert_eq!(partial.resources(), [new_list[1].clone()]);
    Ok(())
}

#[test]
fn a_thousand_member_list_is_spread_over_notifies_by_the_size_cap() -> TestResult {
    let server = TestServer::start_with(
        "",
        &rls_config("max_notify_bytes = 20000\nmax_resources = 1000"),
    );
    let mut ua = TcpUa::connect(server.tcp);
    let uris = members(1000, "k");
    ua.send(&list_subscribe(&ua, &uris, true).build());
    ua.expect_status(200);
    let mut seen = Vec::new();
    let mut notifies = 0;
    let deadline = Instant::now() + Duration::from_secs(30);
    while seen.len() < 1000 && Instant::now() < deadline {
        let n = expect_list_notify(&mut ua);
        let raw = if n.msg.header("Content-Encoding").is_some() {
            inflate(&n.msg.body).len()
        } else {
            n.msg.body.len()
        };
        assert!(raw <= 20000, "body of {raw} bytes above the cap");
        assert_eq!(n.full_state(), notifies == 0, "only the first is fullState");
        assert_eq!(n.version(), notifies);
        for r in n.resources() {
            assert!(n.pidf_of(&r).is_some(), "{r} has its part");
            seen.push(r);
        }
        notifies += 1;
    }
    assert!(notifies > 1, "split into several NOTIFYs");
    let distinct: BTreeSet<_> = seen.iter().cloned().collect();
    assert_eq!(seen.len(), 1000, "no resource twice");
    assert_eq!(distinct, uris.into_iter().collect::<BTreeSet<_>>());
    Ok(())
}

#[test]
fn oversized_lists_and_deflate_bombs_are_refused_with_413() -> TestResult {
    let server = TestServer::start_with("", &rls_config("max_resources = 10"));
    let mut ua = UdpUa::new(server.udp);
    ua.send(&list_subscribe(&ua, &members(11, "o"), false).build());
    let r = ua.expect_status(413);
    assert!(r.start.contains("Resource List Too Large"), "{}", r.start);
    // 4 MB of spaces inflate far beyond the ratio cap.
    let bomb = deflate(&vec![b' '; 4 << 20]);
    let req = ua
        .new_request("SUBSCRIBE", LIST)
        .header("Event: presence")
        .header("Supported: eventlist")
        .header("Require: recipient-list-subscribe")
        .header("Content-Disposition: recipient-list")
        .header("Content-Encoding: deflate")
        .header(&format!("Contact: <sip:watcher@{}>", ua.local()))
        .body("application/resource-lists+xml", &bomb);
    ua.send(&req.build());
    ua.expect_status(413);
    assert_eq!(server.wait_log("request-contained list refused", 1), 1);
    // The server still serves.
    ua.send(&list_subscribe(&ua, &members(3, "o"), false).build());
    ua.expect_status(200);
    Ok(())
}

/// Inserts a server-known list into the store's resource_list_members table.
fn insert_members(url: &str, rows: &[(&str, &str, &str, Option<&str>)]) {
    use diesel::{Connection, RunQueryDsl};
    let sql: Vec<String> = rows
        .iter()
        .enumerate()
        .map(|(i, (list, owner, member, name))| {
            format!(
                "INSERT INTO resource_list_members (list_uri, owner, member_uri, display_name, position) \
                 VALUES ('{list}', '{owner}', '{member}', {}, {i})",
                name.map_or("NULL".into(), |n| format!("'{n}'"))
            )
        })
        .collect();
    if let Some(path) = url.strip_prefix("sqlite://") {
        let mut c = diesel::SqliteConnection::establish(path).unwrap();
        for s in &sql {
            diesel::sql_query(s).execute(&mut c).unwrap();
        }
    } else {
        let mut c = diesel::PgConnection::establish(url).unwrap();
        for s in &sql {
            diesel::sql_query(s).execute(&mut c).unwrap();
        }
    }
}

#[test]
fn a_server_known_list_gives_each_subscriber_their_own_members() -> TestResult {
    let scratch = tempfile::tempdir()?;
    for (backend, url) in store_urls(scratch.path()) {
        let dir = tempfile::tempdir()?;
        let server = TestServer::start_config(dir, &config_with_store(&url, "", &rls_config("")));
        insert_members(
            &url,
            &[
                (
                    LIST,
                    "sip:tester@example.org",
                    "sip:s1@example.org",
                    Some("Sam One"),
                ),
                (LIST, "sip:tester@example.org", "sip:s2@example.org", None),
                (LIST, "sip:other@example.org", "sip:s3@example.org", None),
                (LIST, "*", "sip:everyone@example.org", None),
            ],
        );
        let mut ua = UdpUa::new(server.udp);
        let req = |ua: &UdpUa| {
            ua.new_request("SUBSCRIBE", LIST)
                .header("Event: presence")
                .header(&format!("Contact: <sip:watcher@{}>", ua.local()))
        };
        // Without eventlist there is no lookup (rls.lookup_without_eventlist is off): the list
        // URI is subscribed to as a presentity.
        ua.send(&req(&ua).build());
        ua.expect_status(200);
        let n = ua.expect_notify();
        assert_eq!(
            n.header("Content-Type"),
            Some("application/pidf+xml"),
            "{backend}"
        );
        ua.send(&req(&ua).header("Supported: eventlist").build());
        ua.expect_status(200);
        let n = expect_list_notify(&mut ua);
        assert_eq!(
            n.resources(),
            [
                "sip:s1@example.org",
                "sip:s2@example.org",
                "sip:everyone@example.org"
            ],
            "{backend}"
        );
        assert!(n.rlmi().contains("<name>Sam One</name>"), "{}", n.rlmi());
        // A URI that is no list is a plain subscription.
        let plain = ua
            .new_request("SUBSCRIBE", "sip:s1@example.org")
            .header("Event: presence")
            .header("Supported: eventlist")
            .header(&format!("Contact: <sip:watcher@{}>", ua.local()));
        ua.send(&plain.build());
        ua.expect_status(200);
        let n = ua.expect_notify();
        assert_eq!(
            n.header("Content-Type"),
            Some("application/pidf+xml"),
            "{backend}"
        );
    }
    Ok(())
}

#[test]
fn with_lookup_without_eventlist_a_server_known_list_needs_eventlist() -> TestResult {
    let scratch = tempfile::tempdir()?;
    let url = format!("sqlite://{}/presenced.db", scratch.path().display());
    let dir = tempfile::tempdir()?;
    let server = TestServer::start_config(
        dir,
        &config_with_store(&url, "", &rls_config("lookup_without_eventlist = true")),
    );
    insert_members(&url, &[(LIST, "*", "sip:everyone@example.org", None)]);
    let mut ua = UdpUa::new(server.udp);
    for (uri, status) in [(LIST, 421), ("sip:everyone@example.org", 200)] {
        let req = ua
            .new_request("SUBSCRIBE", uri)
            .header("Event: presence")
            .header(&format!("Contact: <sip:watcher@{}>", ua.local()));
        ua.send(&req.build());
        let r = ua.expect_status(status);
        if status == 421 {
            assert_eq!(r.header("Require"), Some("eventlist"));
        }
    }
    Ok(())
}

#[test]
fn list_subscriptions_survive_kill_9_with_full_state_and_a_higher_version() -> TestResult {
    let scratch = tempfile::tempdir()?;
    for (backend, url) in store_urls(scratch.path()) {
        let dir = tempfile::tempdir()?;
        let config = config_with_store(&url, "", &rls_config(""));
        let server = TestServer::start_config(dir, &config);
        let mut ua = UdpUa::new(server.udp);
        let uris = members(3, "r");
        let req = list_subscribe(&ua, &uris, true);
        ua.send(&req.build());
        let ok = ua.expect_status(200);
        let first = expect_list_notify(&mut ua);
        let dir = server.kill_hard();
        let server = TestServer::start_config(dir, &config);
        ua.server = server.udp;
        let n = expect_list_notify(&mut ua);
        assert_eq!(
            n.msg.header("Call-ID"),
            first.msg.header("Call-ID"),
            "{backend}"
        );
        assert_eq!(n.msg.param("From", "tag"), first.msg.param("From", "tag"));
        assert!(n.full_state(), "{backend}: full state after a restart");
        assert!(n.version() > first.version(), "{backend}");
        assert_eq!(n.resources(), uris, "{backend}");
        assert_eq!(n.msg.header("Content-Encoding"), Some("deflate"));
        // Members still notify, and a refresh works on the recovered dialog.
        let mut p = UdpUa::new(server.udp);
        publish(&mut p, &uris[1], "open", "after restart");
        let partial = expect_list_notify(&mut ua);
        assert_eq!(partial.resources(), [uris[1].clone()], "{backend}");
        let refresh = in_dialog_list_subscribe(&ua, &req, &ok, 2, 600, None);
        ua.send(&refresh);
        ua.expect_status(200);
        let full = expect_list_notify(&mut ua);
        assert!(full.full_state());
        assert!(full.pidf_of(&uris[1]).unwrap().contains("after restart"));
    }
    Ok(())
}

#[test]
fn a_users_database_of_its_own_serves_lists_through_a_custom_query() -> TestResult {
    use diesel::{Connection, RunQueryDsl};
    let users = tempfile::tempdir()?;
    let users_db = users.path().join("users.db");
    let mut c = diesel::SqliteConnection::establish(users_db.to_str().unwrap())?;
    for sql in [
        "CREATE TABLE users (id INTEGER PRIMARY KEY, sip_uri TEXT NOT NULL)",
        "CREATE TABLE friends (user_id INTEGER NOT NULL, sip_uri TEXT NOT NULL, label TEXT)",
        "INSERT INTO users VALUES (1, 'sip:tester@example.org')",
        "INSERT INTO friends VALUES (1, 'sip:pal@example.org', 'Pal'), (1, 'sip:bud@example.org', NULL)",
    ] {
        diesel::sql_query(sql).execute(&mut c)?;
    }
    let query = "SELECT f.sip_uri AS uri, f.label AS name FROM friends f JOIN users u ON u.id = f.user_id \
                 WHERE u.sip_uri = :from AND :to = 'sip:buddies@example.org' ORDER BY f.sip_uri DESC";
    let server = TestServer::start_with(
        "",
        &rls_config(&format!(
            "list_db_url = \"sqlite://{}\"\nlist_query = \"{query}\"",
            users_db.display()
        )),
    );
    let mut ua = UdpUa::new(server.udp);
    let req = ua
        .new_request("SUBSCRIBE", "sip:buddies@example.org")
        .header("Event: presence")
        .header("Supported: eventlist")
        .header(&format!("Contact: <sip:watcher@{}>", ua.local()));
    ua.send(&req.build());
    ua.expect_status(200);
    let n = expect_list_notify(&mut ua);
    assert_eq!(
        n.resources(),
        ["sip:pal@example.org", "sip:bud@example.org"]
    );
    assert!(n.rlmi().contains("<name>Pal</name>"));
    Ok(())
}
