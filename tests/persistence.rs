//! Persistence and failover over real sockets and real databases: kill -9 and restart on the
//! same database is invisible to watchers. Runs on SQLite, and on PostgreSQL as well when
//! PRESENCED_TEST_PG_URL is set (a schema per test).

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::{Duration, Instant};

use common::*;

const ALICE: &str = "sip:alice@example.org";
const BOB: &str = "sip:bob@example.org";

fn pidf(entity: &str, basic: &str, note: &str) -> Vec<u8> {
    format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<presence xmlns=\"urn:ietf:params:xml:ns:pidf\" \
         entity=\"{entity}\"><tuple id=\"t1\"><status><basic>{basic}</basic></status><note>{note}</note></tuple></presence>"
    )
    .into_bytes()
}

const SHORT: &str =
    "[presence]\nmin_expires = 1\npublish_min_expires = 1\n[registrar]\nmin_expires = 1\n";

fn subscribe_request(ua: &impl Ua, aor: &str, expires: u32) -> RequestBuilder {
    ua.new_request("SUBSCRIBE", aor)
        .header("Event: presence")
        .header(&format!("Contact: <sip:watcher@{}>", ua.local_addr()))
        .header(&format!("Expires: {expires}"))
}

/// A watcher of alice and a publication for her, each acknowledged.
fn watched_publication(server: &TestServer) -> (UdpUa, UdpUa, String) {
    let mut w = UdpUa::new(server.udp);
    w.send(&subscribe_request(&w, ALICE, 300).build());
    w.expect_status(200);
    w.expect_notify();
    let mut p = UdpUa::new(server.udp);
    p.send(
        &p.request("PUBLISH", ALICE)
            .header("Event: presence")
            .body("application/pidf+xml", &pidf(ALICE, "open", "one"))
            .build(),
    );
    let etag = p.expect_status(200).header("SIP-ETag").unwrap().to_string();
    w.expect_notify();
    (w, p, etag)
}

/// Three new publications for bob while the store cannot commit: each must get 503.
fn new_publications_refused(p: &mut UdpUa) -> Vec<SipMsg> {
    (0..3)
        .map(|i| {
            p.send(
                &p.request("PUBLISH", BOB)
                    .header("Event: presence")
                    .body("application/pidf+xml", &pidf(BOB, "open", &format!("x{i}")))
                    .build(),
            );
            p.expect_status(503)
        })
        .collect()
}

/// Modifies the publication `etag` until the server commits it (bounded by WAIT).
fn republish_until_committed(p: &mut UdpUa, etag: &str, note: &str) -> bool {
    let deadline = Instant::now() + WAIT;
    while Instant::now() < deadline {
        p.send(
            &p.request("PUBLISH", ALICE)
                .header("Event: presence")
                .header(&format!("SIP-If-Match: {etag}"))
                .body("application/pidf+xml", &pidf(ALICE, "open", note))
                .build(),
        );
        if p.expect().status() == 200 {
            return true;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    false
}

fn cseq_of(m: &SipMsg) -> u32 {
    m.header("CSeq")
        .unwrap()
        .split(' ')
        .next()
        .unwrap()
        .parse()
        .unwrap()
}

#[test]
fn kill_9_and_restart_is_invisible_to_watchers_on_every_backend() -> TestResult {
    let dir = tempfile::tempdir()?;
    for (backend, url) in store_urls(dir.path()) {
        let server_dir = tempfile::tempdir()?;
        let config = config_with_store(&url, "", SHORT);
        let server = TestServer::start_config(server_dir, &config);

        // A long subscription, a short one that will expire during the downtime, a
        // publication, and a registrar binding.
        let mut w = UdpUa::new(server.udp);
        let sub = subscribe_request(&w, ALICE, 300);
        w.send(&sub.build());
        let ok = w.expect_status(200);
        let first = w.expect_notify();
        let mut short = UdpUa::new(server.udp);
        let short_sub = subscribe_request(&short, BOB, 2);
        short.send(&short_sub.build());
        let short_ok = short.expect_status(200);
        short.expect_notify();

        let mut p = UdpUa::new(server.udp);
        p.send(
            &p.request("PUBLISH", ALICE)
                .header("Event: presence")
                .header("Expires: 300")
                .body("application/pidf+xml", &pidf(ALICE, "open", "before"))
                .build(),
        );
        let published = p.expect_status(200);
        let etag = published.header("SIP-ETag").unwrap().to_string();
        let before = w.expect_notify();
        assert!(before.body_str().contains(">before<"), "{backend}");

        let mut r = UdpUa::new(server.udp);
        let mut reg = r.request("REGISTER", "sip:example.org");
        reg.to = format!("<{BOB}>");
        r.send(
            &reg.header(&format!("Contact: <sip:bob@{}>", r.local()))
                .header("Expires: 300")
                .build(),
        );
        r.expect_status(200);
        short.expect_notify(); // the binding opens bob for the short watcher

        // kill -9, a downtime long enough for the short subscription to expire, restart.
        let server_dir = server.kill_hard();
        std::thread::sleep(Duration::from_millis(2500));
        let server = TestServer::start_config(server_dir, &config);
        assert_eq!(
            server.wait_log("expired during the downtime", 1),
            1,
            "{backend}"
        );
        // The UAs talk to the restarted server (on new ports) from now on.
        w.server = server.udp;
        p.server = server.udp;
        short.server = server.udp;

        // The recovered dialog gets a NOTIFY it accepts: same Call-ID and tags, a higher CSeq,
        // the current state.
        let n = w.expect_notify();
        // The NOTIFY went out as the server started, so Timer E may have resent it already.
        w.absorb_retransmissions(&n);
        assert_eq!(n.header("Call-ID"), Some(sub.call_id.as_str()), "{backend}");
        assert_eq!(n.param("From", "tag"), ok.param("To", "tag"), "{backend}");
        assert_eq!(
            n.param("To", "tag"),
            sub.from.split("tag=").nth(1).map(str::to_string),
            "{backend}"
        );
        assert!(
            cseq_of(&n) > cseq_of(&before) && cseq_of(&before) > cseq_of(&first),
            "{backend}"
        );
        assert!(
            n.header("Subscription-State")
                .unwrap()
                .starts_with("active"),
            "{backend}"
        );
        assert!(
            n.body_str().contains(">before<"),
            "publication recovered on {backend}"
        );

        // A refresh on the recovered dialog works, and the NOTIFYs keep climbing.
        w.send(&in_dialog_subscribe(&w, &sub, &ok, 2, 300));
        w.expect_status(200);
        let after_refresh = w.expect_notify();
        assert!(
            cseq_of(&after_refresh) > cseq_of(&n),
            "{backend}: {} then {}",
            cseq_of(&n),
            cseq_of(&after_refresh)
        );

        // The publication is still there under its entity-tag.
        p.send(
            &p.request("PUBLISH", ALICE)
                .header("Event: presence")
                .header(&format!("SIP-If-Match: {etag}"))
                .header("Expires: 300")
                .body("application/pidf+xml", &pidf(ALICE, "open", "after"))
                .build(),
        );
        p.expect_status(200);
        assert!(
            w.expect_notify().body_str().contains(">after<"),
            "{backend}"
        );

        // The binding survived: a new subscription to bob sees it open.
        let mut w2 = UdpUa::new(server.udp);
        w2.send(&subscribe_request(&w2, BOB, 300).build());
        w2.expect_status(200);
        let body = w2.expect_notify().body_str();
        assert!(
            body.contains("<basic>open</basic>")
                && body.contains(&format!("sip:bob@{}", r.local())),
            "{backend}: {body}"
        );

        // The subscription that expired during the downtime is gone, and sent nothing.
        assert!(
            short.recv(Duration::from_millis(300)).is_none(),
            "{backend}"
        );
        short.send(&in_dialog_subscribe(&short, &short_sub, &short_ok, 2, 300));
        short.expect_status(481);

        // And an unsubscribe on the recovered dialog works.
        w.send(&in_dialog_subscribe(&w, &sub, &ok, 3, 0));
        w.expect_status(200);
        assert_eq!(
            w.expect_notify().header("Subscription-State"),
            Some("terminated;reason=timeout"),
            "{backend}"
        );
    }
    Ok(())
}

#[test]
fn a_second_restart_still_gives_higher_cseqs() -> TestResult {
    let dir = tempfile::tempdir()?;
    for (backend, url) in store_urls(dir.path()) {
        let config = config_with_store(&url, "", SHORT);
        let mut server = TestServer::start_config(tempfile::tempdir()?, &config);
        let mut w = UdpUa::new(server.udp);
        w.send(&subscribe_request(&w, ALICE, 300).build());
        w.expect_status(200);
        let mut last = cseq_of(&w.expect_notify());
        for _ in 0..2 {
            let d = server.kill_hard();
            server = TestServer::start_config(d, &config);
            w.server = server.udp;
            let n = w.expect_notify();
            assert!(
                cseq_of(&n) > last,
                "{backend}: {} after {last}",
                cseq_of(&n)
            );
            last = cseq_of(&n);
        }
    }
    Ok(())
}

#[test]
fn migrate_applies_the_migrations_and_exits_and_a_bad_database_exits_with_2() -> TestResult {
    let dir = tempfile::tempdir()?;
    for (backend, url) in store_urls(dir.path()) {
        let path = dir.path().join(format!("{backend}.toml"));
        std::fs::write(&path, config_with_store(&url, "", ""))?;
        for _ in 0..2 {
            let out = std::process::Command::new(env!("CARGO_BIN_EXE_presenced"))
                .args(["migrate", "--config", path.to_str().unwrap()])
                .output()?;
            assert_eq!(
                out.status.code(),
                Some(0),
                "{backend}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
    }
    for url in [
        "sqlite:///proc/no/such/dir/p.db",
        "postgres://nobody@127.0.0.1:1/none",
    ] {
        let path = dir.path().join("bad.toml");
        std::fs::write(&path, config_with_store(url, "", ""))?;
        for args in [vec!["--config"], vec!["migrate", "--config"]] {
            let out = std::process::Command::new(env!("CARGO_BIN_EXE_presenced"))
                .args(&args)
                .arg(&path)
                .output()?;
            let err = String::from_utf8_lossy(&out.stderr);
            assert_eq!(out.status.code(), Some(2), "{url}: {err}");
            assert!(err.contains("cannot open the database"), "{url}: {err}");
            assert!(!err.contains("panicked"));
        }
    }
    Ok(())
}

#[test]
fn a_locked_sqlite_database_gets_503_and_notifies_continue_and_it_recovers() -> TestResult {
    use diesel::{Connection, RunQueryDsl};
    let dir = tempfile::tempdir()?;
    let db = dir.path().join("presenced.db");
    let config = format!(
        "[sip]\nlisten = [\"udp:127.0.0.1:0\", \"tcp:127.0.0.1:0\"]\nt1_ms = 50\nt2_ms = 400\n\
         [presence]\nmin_expires = 1\n\
         [store]\nurl = \"sqlite://{}\"\nretry_after_s = 7\nsqlite_busy_timeout_ms = 100\n\
         [log]\nlevel = \"debug\"\n[http]\nlisten = [\"127.0.0.1:0\"]\n",
        db.display()
    );
    let server = TestServer::start_config(tempfile::tempdir()?, &config);
    let (mut w, mut p, etag) = watched_publication(&server);
    let mut short = UdpUa::new(server.udp);
    short.send(&subscribe_request(&short, ALICE, 2).build());
    short.expect_status(200);
    short.expect_notify();

    // Another process holds the write lock: the database cannot commit.
    let mut locker = diesel::SqliteConnection::establish(db.to_str().unwrap())?;
    diesel::sql_query("BEGIN EXCLUSIVE").execute(&mut locker)?;
    for r in new_publications_refused(&mut p) {
        assert_eq!(r.header("Retry-After"), Some("7"));
    }
    let mut w2 = UdpUa::new(server.udp);
    w2.send(&subscribe_request(&w2, ALICE, 300).build());
    w2.expect_status(503);
    // What does not change state is still served.
    p.send(&p.request("OPTIONS", "sip:example.org").build());
    p.expect_status(200);
    // NOTIFYs never wait for the store: the short subscription's expiry is told on time.
    assert_eq!(
        short.expect_notify().header("Subscription-State"),
        Some("terminated;reason=timeout")
    );
    assert_eq!(
        server.wait_log("cannot commit", 1),
        1,
        "the outage is logged once"
    );

    // The lock goes; the next change commits and is notified.
    diesel::sql_query("ROLLBACK").execute(&mut locker)?;
    drop(locker);
    assert!(
        republish_until_committed(&mut p, &etag, "two"),
        "the store recovers by itself"
    );
    assert!(w.expect_notify().body_str().contains(">two<"));
    assert_eq!(server.wait_log("database available again", 1), 1);
    Ok(())
}

#[test]
fn postgres_going_away_gets_503_and_presenced_recovers_by_itself() -> TestResult {
    use diesel::{Connection, RunQueryDsl};
    let Ok(base) = std::env::var("PRESENCED_TEST_PG_URL") else {
        // Without a PostgreSQL server the SQLite outage test above covers the behaviour; CI
        // sets the variable, so this runs there.
        eprintln!("skipped: PRESENCED_TEST_PG_URL not set");
        return Ok(());
    };
    // A database of its own: the test cuts it off without touching other tests' schemas.
    let db = db_unique("outage_");
    let mut admin = diesel::PgConnection::establish(&base)?;
    diesel::sql_query(format!("CREATE DATABASE {db}")).execute(&mut admin)?;
    let (prefix, _) = base.rsplit_once('/').expect("a database name in the URL");
    let url = format!("{prefix}/{db}");
    let config = config_with_store(&url, "", "");
    let server = TestServer::start_config(tempfile::tempdir()?, &config);
    let (mut w, mut p, etag) = watched_publication(&server);

    // The database refuses connections and presenced's session is cut.
    diesel::sql_query(format!("ALTER DATABASE {db} ALLOW_CONNECTIONS false"))
        .execute(&mut admin)?;
    diesel::sql_query(format!(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{db}'"
    ))
    .execute(&mut admin)?;
    for r in new_publications_refused(&mut p) {
        assert!(r.header("Retry-After").is_some());
    }
    p.send(&p.request("OPTIONS", "sip:example.org").build());
    p.expect_status(200);
    assert_eq!(
        server.wait_log("cannot commit", 1),
        1,
        "the outage is logged once"
    );

    // Back again: the next change commits, and the watcher hears of it.
    diesel::sql_query(format!("ALTER DATABASE {db} ALLOW_CONNECTIONS true")).execute(&mut admin)?;
    assert!(
        republish_until_committed(&mut p, &etag, "two"),
        "presenced reconnects by itself"
    );
    assert!(w.expect_notify().body_str().contains(">two<"));
    assert_eq!(server.wait_log("database available again", 1), 1);
    drop(server);
    let _ =
        diesel::sql_query(format!("DROP DATABASE IF EXISTS {db} WITH (FORCE)")).execute(&mut admin);
    Ok(())
}

/// Columns of `subscriptions`, for copying a stored dialog in SQL.
const SUBSCRIPTION_COLUMNS: &str = "id, aor, call_id, local_tag, remote_tag, event_id, accept, \
    local_uri, remote_uri, remote_target, route_set, remote_cseq, notify_cseq_mark, state, \
    document_version, expires_at, transport, local_addr, peer_addr, accept_encoding, \
    list_source, list_members, linphone_compat";

#[test]
fn a_refresh_arriving_while_stored_dialogs_are_restored_waits_and_gets_200() -> TestResult {
    use diesel::{Connection, RunQueryDsl};
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("presenced.db");
    let config = config_with_store(&format!("sqlite://{}", path.display()), "", SHORT);
    let server = TestServer::start_config(tempfile::tempdir()?, &config);
    let mut w = UdpUa::new(server.udp);
    let sub = subscribe_request(&w, ALICE, 300);
    w.send(&sub.build());
    let ok = w.expect_status(200);
    w.expect_notify();
    let d = server.kill_hard();
    // 30,000 more stored dialogs before this one, whose NOTIFYs go to a socket nobody reads:
    // restoring them takes a while, and this dialog is restored last.
    let sink = std::net::UdpSocket::bind("127.0.0.1:0")?;
    let sink_uri = format!("sip:sink@{}", sink.local_addr()?);
    let mut c = diesel::SqliteConnection::establish(&path.to_string_lossy())?;
    let copies = SUBSCRIPTION_COLUMNS
        .replacen("id,", "s.id || '-' || n.i,", 1)
        .replace("call_id,", "s.call_id || '-' || n.i,")
        .replace("remote_target,", &format!("'{sink_uri}',"));
    for sql in [
        "CREATE TEMP TABLE mine AS SELECT * FROM subscriptions".to_string(),
        format!(
            "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 30000) \
             INSERT INTO subscriptions ({SUBSCRIPTION_COLUMNS}) SELECT {copies} FROM mine s, n"
        ),
        "DELETE FROM subscriptions WHERE id IN (SELECT id FROM mine)".into(),
        format!(
            "INSERT INTO subscriptions ({SUBSCRIPTION_COLUMNS}) SELECT {SUBSCRIPTION_COLUMNS} FROM mine"
        ),
    ] {
        diesel::sql_query(sql).execute(&mut c)?;
    }
    drop(c);
    // The refresh is sent from the moment the process starts (on a port fixed beforehand),
    // not after it says it is running, so it arrives while the dialogs are being restored.
    let port = std::net::UdpSocket::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let fixed = config.replace("udp:127.0.0.1:0", &format!("udp:127.0.0.1:{port}"));
    w.server = format!("127.0.0.1:{port}").parse()?;
    let refresh = in_dialog_subscribe(&w, &sub, &ok, 2, 300);
    let sock = w.sock.try_clone()?;
    let to = w.server;
    let sender = std::thread::spawn(move || {
        // Copies of one request: the first that arrives is the transaction, later ones are
        // its retransmissions.
        for _ in 0..200 {
            let _ = sock.send_to(&refresh, to);
            std::thread::sleep(Duration::from_millis(10));
        }
    });
    let server = TestServer::start_config(d, &fixed);
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut refreshed = None;
    while refreshed.is_none() && Instant::now() < deadline {
        let Some(m) = w.recv(Duration::from_secs(1)) else {
            continue;
        };
        if m.is_request("NOTIFY") {
            w.send(&answer(&m, 200));
        } else if m.header("CSeq") == Some("2 SUBSCRIBE") {
            refreshed = Some(m.status());
        }
    }
    let _ = sender.join();
    assert_eq!(refreshed, Some(200), "the refresh of the recovered dialog");
    assert!(
        server.wait_log("subscriptions restored", 1) == 1,
        "{:?}",
        server.log()
    );
    Ok(())
}

/// Runs one statement on the store behind `url` (SQLite file or PostgreSQL schema).
fn run_sql(url: &str, sql: &str) {
    use diesel::{Connection, RunQueryDsl};
    match url.strip_prefix("sqlite://") {
        Some(path) => {
            let mut c = diesel::SqliteConnection::establish(path).unwrap();
            diesel::sql_query(sql).execute(&mut c).unwrap();
        }
        None => {
            let mut c = diesel::PgConnection::establish(url).unwrap();
            diesel::sql_query(sql).execute(&mut c).unwrap();
        }
    }
}

#[test]
fn a_stored_dialog_that_no_longer_parses_is_dropped_and_the_others_come_back() -> TestResult {
    let dir = tempfile::tempdir()?;
    for (backend, url) in store_urls(dir.path()) {
        let config = config_with_store(&url, "", SHORT);
        let server = TestServer::start_config(tempfile::tempdir()?, &config);
        let mut kept = UdpUa::new(server.udp);
        kept.send(&subscribe_request(&kept, ALICE, 300).build());
        kept.expect_status(200);
        let before = kept.expect_notify();
        let mut broken = UdpUa::new(server.udp);
        let sub = subscribe_request(&broken, ALICE, 300);
        broken.send(&sub.build());
        let ok = broken.expect_status(200);
        broken.expect_notify();
        let call_id = ok.header("Call-ID").unwrap().to_owned();
        let d = server.kill_hard();
        // A row the server can no longer read (a hand edit, a bug of another version).
        run_sql(
            &url,
            &format!("UPDATE subscriptions SET peer_addr = 'nowhere' WHERE call_id = '{call_id}'"),
        );
        let server = TestServer::start_config(d, &config);
        kept.server = server.udp;
        broken.server = server.udp;
        let n = kept.expect_notify();
        assert!(
            cseq_of(&n) > cseq_of(&before),
            "{backend}: the other dialog is recovered"
        );
        assert_eq!(
            server.wait_log("peer address is invalid, dropped", 1),
            1,
            "{backend}: logged once"
        );
        assert!(
            broken.recv(Duration::from_millis(500)).is_none(),
            "{backend}: nothing is sent on the unreadable dialog"
        );
        // Not resurrected: its refresh finds no dialog.
        broken.send(&in_dialog_subscribe(&broken, &sub, &ok, 2, 300));
        broken.expect_status(481);
        assert_eq!(
            server.log_count("peer address is invalid, dropped"),
            1,
            "{backend}: {:?}",
            server.log()
        );
    }
    Ok(())
}
