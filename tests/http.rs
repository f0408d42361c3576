//! The HTTP side over real sockets: liveness and readiness (during a restore, during a store
//! outage, and after), and `/metrics` in the Prometheus text format, checked by promtool,
//! whose counters and gauges move as SIP traffic flows.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::io::{BufRead, BufReader, Write};
use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::*;

/// A sample's value in a metrics text (`name{labels}` as written), 0 when absent.
fn sample(text: &str, series: &str) -> f64 {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' '))
        .map_or(0.0, |v| v.trim().parse().unwrap())
}

/// Polls `/health/ready` until it answers `status`; the last body.
fn ready_becomes(http: SocketAddr, status: u16) -> String {
    let deadline = Instant::now() + WAIT;
    loop {
        let (got, _, body) = http_get(http, "/health/ready");
        if got == status || Instant::now() > deadline {
            assert_eq!(got, status, "{body}");
            return body;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// promtool's verdict on a metrics text (Debian: prometheus; the test command installs it).
fn promtool_check(text: &str) {
    let mut child = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("promtool must be installed (Debian: prometheus)");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let report = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success() && report.trim().is_empty(),
        "promtool: {report}"
    );
}

#[test]
fn metrics_pass_promtool_and_move_with_sip_traffic() -> TestResult {
    let server = TestServer::start_with("", "[presence]\nmin_expires = 1\n");
    let http = server.http.expect("the HTTP side listens");
    let (status, headers, body) = http_get(http, "/health/live");
    assert_eq!((status, body.contains("live")), (200, true));
    assert!(headers
        .iter()
        .any(|(n, v)| n == "content-type" && v.contains("json")));
    ready_becomes(http, 200);
    assert_eq!(http_get(http, "/nothing-here").0, 404);

    let (status, headers, before) = http_get(http, "/metrics");
    assert_eq!(status, 200);
    assert!(
        headers
            .iter()
            .any(|(n, v)| n == "content-type" && v.starts_with("text/plain; version=0.0.4")),
        "{headers:?}"
    );
    promtool_check(&before);
    let subscribes = "presenced_sip_requests_total{method=\"SUBSCRIBE\"}";
    let watchers = "presenced_subscriptions{package=\"presence\",kind=\"plain\"}";

    let mut w = UdpUa::new(server.udp);
    let (_, _, _) = subscribe(&mut w, "sip:alice@example.org", Some(600));
    let mut p = UdpUa::new(server.udp);
    let pidf = "<?xml version=\"1.0\"?><presence xmlns=\"urn:ietf:params:xml:ns:pidf\" \
                entity=\"sip:alice@example.org\"><tuple id=\"t\"><status><basic>open</basic>\
                </status></tuple></presence>";
    p.send(
        &p.new_request("PUBLISH", "sip:alice@example.org")
            .header("Event: presence")
            .header("Expires: 600")
            .body("application/pidf+xml", pidf.as_bytes())
            .build(),
    );
    p.expect_status(200);
    w.expect_notify();

    let (_, _, after) = http_get(http, "/metrics");
    promtool_check(&after);
    assert_eq!(
        sample(&after, subscribes) - sample(&before, subscribes),
        1.0
    );
    assert_eq!(sample(&after, watchers) - sample(&before, watchers), 1.0);
    assert_eq!(
        sample(&after, "presenced_publications{package=\"presence\"}"),
        1.0
    );
    assert!(
        sample(
            &after,
            "presenced_notifies_sent_total{package=\"presence\"}"
        ) >= sample(
            &before,
            "presenced_notifies_sent_total{package=\"presence\"}"
        ) + 2.0,
        "the first NOTIFY and the one the PUBLISH caused"
    );
    assert!(sample(&after, "presenced_sip_responses_total{class=\"2xx\"}") >= 2.0);
    let latency = |suffix: &str| {
        sample(
            &after,
            &format!("presenced_change_to_notify_seconds_{suffix}{{package=\"presence\"}}"),
        )
    };
    assert!(latency("count") >= 1.0);
    assert!(
        latency("sum") / latency("count") < 1.0,
        "PUBLISH received to NOTIFY sent, on loopback"
    );
    assert!(sample(&after, "presenced_store_commit_seconds_count") >= 2.0);
    assert_eq!(sample(&after, "presenced_store_up"), 1.0);
    assert_eq!(sample(&after, "presenced_restored"), 1.0);
    // No label carries a user's URI.
    assert!(!after.contains("alice"), "{after}");
    Ok(())
}

#[test]
fn readiness_says_the_store_is_unavailable_during_an_outage() -> TestResult {
    use diesel::{Connection, RunQueryDsl};
    let dir = tempfile::tempdir()?;
    let db = dir.path().join("presenced.db");
    let config = config_with_store(
        &format!("sqlite://{}", db.display()),
        "",
        "[presence]\nmin_expires = 1\n",
    )
    .replace(
        "[log]",
        "retry_after_s = 3\nsqlite_busy_timeout_ms = 100\n[log]",
    );
    let server = TestServer::start_config(tempfile::tempdir()?, &config);
    let http = server.http.unwrap();
    ready_becomes(http, 200);
    let mut p = UdpUa::new(server.udp);
    let publish = |ua: &UdpUa| {
        ua.new_request("PUBLISH", "sip:bob@example.org")
            .header("Event: presence")
            .header("Expires: 600")
            .body(
                "application/pidf+xml",
                b"<?xml version=\"1.0\"?><presence xmlns=\"urn:ietf:params:xml:ns:pidf\" \
                  entity=\"sip:bob@example.org\"/>",
            )
            .build()
    };
    // Another process holds the write lock: nothing can be committed.
    let mut locker = diesel::SqliteConnection::establish(db.to_str().unwrap())?;
    diesel::sql_query("BEGIN EXCLUSIVE").execute(&mut locker)?;
    p.send(&publish(&p));
    p.expect_status(503);
    let body = ready_becomes(http, 503);
    assert!(body.contains("store_unavailable"), "{body}");
    assert_eq!(http_get(http, "/health/live").0, 200, "alive all the same");
    let (_, _, metrics) = http_get(http, "/metrics");
    assert_eq!(sample(&metrics, "presenced_store_up"), 0.0);

    diesel::sql_query("ROLLBACK").execute(&mut locker)?;
    drop(locker);
    let deadline = Instant::now() + WAIT;
    loop {
        p.send(&publish(&p));
        if p.expect().status() == 200 {
            break;
        }
        assert!(Instant::now() < deadline, "the store never recovered");
        std::thread::sleep(Duration::from_millis(50));
    }
    ready_becomes(http, 200);
    Ok(())
}

#[test]
fn readiness_says_restoring_until_the_stored_state_is_back() -> TestResult {
    use diesel::{Connection, RunQueryDsl};
    let Ok(base) = std::env::var("PRESENCED_TEST_PG_URL") else {
        // A restore on SQLite is too quick to catch; CI sets the variable, so this runs there.
        eprintln!("skipped: PRESENCED_TEST_PG_URL not set");
        return Ok(());
    };
    let url = fresh_pg_schema(&base);
    let config = config_with_store(&url, "", "");
    // A first run makes the tables.
    let server = TestServer::start_config(tempfile::tempdir()?, &config);
    drop(server);

    // The stored subscriptions cannot be read while the test holds this lock.
    let mut locker = diesel::PgConnection::establish(&url)?;
    diesel::sql_query("BEGIN").execute(&mut locker)?;
    diesel::sql_query("LOCK TABLE subscriptions IN ACCESS EXCLUSIVE MODE").execute(&mut locker)?;
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("presenced.toml");
    std::fs::write(&path, &config)?;
    let mut child = Command::new(env!("CARGO_BIN_EXE_presenced"))
        .arg("--config")
        .arg(&path)
        .env_remove("RUST_LOG")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()?;
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let http: SocketAddr = loop {
        let line = lines.next().expect("the server logs its HTTP address")?;
        if let Some(rest) = line.split("listening on http:").nth(1) {
            break rest.trim().parse()?;
        }
    };
    // The rest of the log is drained, so that the server never blocks on a full pipe.
    std::thread::spawn(move || lines.for_each(drop));
    let (status, _, body) = http_get(http, "/health/ready");
    assert_eq!(status, 503, "{body}");
    assert!(body.contains("restoring"), "{body}");
    assert_eq!(http_get(http, "/health/live").0, 200);

    diesel::sql_query("COMMIT").execute(&mut locker)?;
    let ready = ready_becomes(http, 200);
    assert!(ready.contains("ready"), "{ready}");
    let (_, _, metrics) = http_get(http, "/metrics");
    assert_eq!(sample(&metrics, "presenced_restored"), 1.0);
    assert!(sample(&metrics, "presenced_restore_seconds") > 0.0);
    let _ = child.kill();
    let _ = child.wait();
    Ok(())
}
