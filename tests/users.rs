//! Where presence comes from, over real sockets: publication over registration
//! (`presence.registration_state`), the users database (long-term presence, the "unknown"
//! document or 404, the last-activity timestamp), and phone-number aliases, single and in
//! liblinphone's resource lists. The users database runs on SQLite, and on PostgreSQL and
//! MariaDB where the environment names them (`PRESENCED_TEST_PG_URL`,
//! `PRESENCED_TEST_MYSQL_URL` with the `mysql` feature).

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Instant;

use common::lists::*;
use common::*;

const ALICE: &str = "sip:alice@example.org";
const DOMAIN: &str = "example.org";

/// A users database the test fills: one table of accounts (login, domain, phone), with an
/// index on the phone column.
struct UsersDb {
    backend: UsersBackend,
    /// The accounts table (its own name per test on MariaDB, where tests share a database).
    table: String,
    /// Keeps an SQLite file alive.
    _dir: Option<tempfile::TempDir>,
}

enum UsersBackend {
    Sqlite(String),
    Postgres(String),
    #[cfg(feature = "mysql")]
    Mysql(String),
}

impl UsersDb {
    /// Every backend this run can reach, each empty but for the accounts table.
    fn all() -> Vec<UsersDb> {
        let dir = tempfile::tempdir().unwrap();
        let sqlite = format!("sqlite://{}/users.db", dir.path().display());
        let mut dbs = vec![UsersDb {
            backend: UsersBackend::Sqlite(sqlite),
            table: "accounts".into(),
            _dir: Some(dir),
        }];
        match std::env::var("PRESENCED_TEST_PG_URL") {
            Ok(base) if !base.is_empty() => dbs.push(UsersDb {
                backend: UsersBackend::Postgres(fresh_pg_schema(&base)),
                table: "accounts".into(),
                _dir: None,
            }),
            _ => eprintln!("users database on PostgreSQL skipped: PRESENCED_TEST_PG_URL not set"),
        }
        Self::push_mysql(&mut dbs);
        for db in &dbs {
            db.create();
        }
        dbs
    }

    #[cfg(feature = "mysql")]
    fn push_mysql(dbs: &mut Vec<UsersDb>) {
        match std::env::var("PRESENCED_TEST_MYSQL_URL") {
            Ok(url) if !url.is_empty() => dbs.push(UsersDb {
                backend: UsersBackend::Mysql(url),
                table: db_unique("accounts_"),
                _dir: None,
            }),
            _ => eprintln!("users database on MariaDB skipped: PRESENCED_TEST_MYSQL_URL not set"),
        }
    }

    #[cfg(not(feature = "mysql"))]
    fn push_mysql(_dbs: &mut Vec<UsersDb>) {
        eprintln!("users database on MariaDB skipped: built without the mysql feature");
    }

    fn name(&self) -> &'static str {
        match self.backend {
            UsersBackend::Sqlite(_) => "sqlite",
            UsersBackend::Postgres(_) => "postgres",
            #[cfg(feature = "mysql")]
            UsersBackend::Mysql(_) => "mariadb",
        }
    }

    fn url(&self) -> &str {
        match &self.backend {
            UsersBackend::Sqlite(u) | UsersBackend::Postgres(u) => u,
            #[cfg(feature = "mysql")]
            UsersBackend::Mysql(u) => u,
        }
    }

    /// Runs `sql` (with `{t}` standing for the table) on a connection of its own.
    fn exec(&self, sql: &str) {
        use diesel::{Connection, RunQueryDsl};
        let sql = sql.replace("{t}", &self.table);
        let q = diesel::sql_query(&sql);
        match &self.backend {
            UsersBackend::Sqlite(url) => {
                let path = url.strip_prefix("sqlite://").unwrap();
                let mut c = diesel::SqliteConnection::establish(path).unwrap();
                q.execute(&mut c).unwrap_or_else(|e| panic!("{sql}: {e}"));
            }
            UsersBackend::Postgres(url) => {
                let mut c = diesel::PgConnection::establish(url).unwrap();
                q.execute(&mut c).unwrap_or_else(|e| panic!("{sql}: {e}"));
            }
            #[cfg(feature = "mysql")]
            UsersBackend::Mysql(url) => {
                let mut c = diesel::MysqlConnection::establish(url).unwrap();
                q.execute(&mut c).unwrap_or_else(|e| panic!("{sql}: {e}"));
            }
        };
    }

    fn create(&self) {
        self.exec(
            "CREATE TABLE {t} (login VARCHAR(64) NOT NULL, domain VARCHAR(64) NOT NULL, \
             phone VARCHAR(32), PRIMARY KEY (login, domain))",
        );
        self.exec("CREATE INDEX {t}_phone ON {t} (phone)");
    }

    /// Adds `login@example.org`, owning `phone` if given.
    fn add(&self, login: &str, phone: Option<&str>) {
        let phone = phone.map_or("NULL".to_owned(), |p| format!("'{p}'"));
        self.exec(&format!(
            "INSERT INTO {{t}} (login, domain, phone) VALUES ('{login}', '{DOMAIN}', {phone})"
        ));
    }

    fn set_phone(&self, login: &str, phone: Option<&str>) {
        let phone = phone.map_or("NULL".to_owned(), |p| format!("'{p}'"));
        self.exec(&format!(
            "UPDATE {{t}} SET phone = {phone} WHERE login = '{login}'"
        ));
    }

    /// Renames the table away (every query fails, as with a database that is down) or back.
    fn set_down(&self, down: bool) {
        let (from, to) = if down {
            (self.table.clone(), format!("{}_away", self.table))
        } else {
            (format!("{}_away", self.table), self.table.clone())
        };
        match self.backend {
            #[cfg(feature = "mysql")]
            UsersBackend::Mysql(_) => self.exec(&format!("RENAME TABLE {from} TO {to}")),
            _ => self.exec(&format!("ALTER TABLE {from} RENAME TO {to}")),
        }
    }

    /// The `[users]` section for this database, with `extra` keys.
    fn config(&self, extra: &str) -> String {
        // A short cache, so that retries come quickly, and a generous first wait, so that a
        // debug build on a loaded machine still answers in the first NOTIFY; `extra` may set
        // either.
        let defaults: String = [("cache_ttl_s", "1"), ("first_notify_wait_ms", "3000")]
            .iter()
            .filter(|(key, _)| !extra.contains(key))
            .map(|(key, value)| format!("{key} = {value}\n"))
            .collect();
        format!(
            "[users]\ndb_url = \"{}\"\n\
             user_query = \"SELECT login FROM {t} WHERE login = :user AND domain = :domain\"\n\
             phones_query = \"SELECT login AS username, domain, phone FROM {t} WHERE phone IN (:phones)\"\n\
             {defaults}{extra}\n",
            self.url(),
            t = self.table,
        )
    }
}

impl Drop for UsersDb {
    /// MariaDB's tables live in the shared database: dropped with the test.
    fn drop(&mut self) {
        #[cfg(feature = "mysql")]
        if let UsersBackend::Mysql(url) = &self.backend {
            use diesel::{Connection, RunQueryDsl};
            if let Ok(mut c) = diesel::MysqlConnection::establish(url) {
                for t in [self.table.clone(), format!("{}_away", self.table)] {
                    let _ = diesel::sql_query(format!("DROP TABLE IF EXISTS {t}")).execute(&mut c);
                }
            }
        }
    }
}

/// Fills `db` with `accounts` (login, number) and starts a server on it with `extra` users keys.
fn serve(db: &UsersDb, accounts: &[(&str, Option<&str>)], extra: &str) -> TestServer {
    for (login, phone) in accounts {
        db.add(login, *phone);
    }
    start("", &db.config(extra))
}

/// Sends one of liblinphone's captured list SUBSCRIBEs (`fixture`) from `ua`.
fn send_list_capture(ua: &mut UdpUa, fixture: &str) {
    ua.send(&capture(fixture, "127.0.0.1:25082", ua.local()));
}

/// The server's config: short expiries, a quick list throttle, and `extra` sections.
fn config(extra: &str) -> String {
    format!(
        "[presence]\nmin_expires = 1\npublish_min_expires = 1\n{extra}\n\
         [registrar]\nmin_expires = 1\n[rls]\nmin_notify_interval_ms = 100\n"
    )
}

/// The server with `presence_keys` in `[presence]` and the `users` section.
fn start(presence_keys: &str, users: &str) -> TestServer {
    TestServer::start_with("", &format!("{}{users}", config(presence_keys)))
}

/// The text of the first `<contact>` of a PIDF document.
fn first_contact(pidf: &str) -> Option<String> {
    let start = pidf.find("<contact")?;
    let after = &pidf[start..];
    let open_end = after.find('>')? + 1;
    let close = after.find("</contact>")?;
    Some(after[open_end..close].to_owned())
}

/// The `entity` attribute of a PIDF document.
fn entity(pidf: &str) -> Option<String> {
    let start = pidf.find("entity=\"")? + 8;
    Some(pidf[start..start + pidf[start..].find('"')?].to_owned())
}

/// The person's `<dm:timestamp>`, if any.
fn person_timestamp(pidf: &str) -> Option<String> {
    let person = &pidf[pidf.find("<dm:person")?..];
    let start = person.find("<dm:timestamp>")? + 14;
    Some(person[start..start + person[start..].find('<')?].to_owned())
}

/// Receives NOTIFYs (answering each) until one satisfies `done`; panics after `WAIT`.
fn notify_until(ua: &mut impl Ua, what: &str, done: impl Fn(&SipMsg) -> bool) -> SipMsg {
    let deadline = Instant::now() + WAIT;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let msg = ua
            .recv_msg(left)
            .unwrap_or_else(|| panic!("no NOTIFY with {what} within the wait"));
        assert!(msg.is_request("NOTIFY"), "expected NOTIFY, got {msg:#?}");
        ua.send_bytes(&answer(&msg, 200));
        if done(&msg) {
            return msg;
        }
    }
}

/// List NOTIFYs until the full state is complete (a first `fullState="true"` NOTIFY and the
/// ones that carry the rest of it), as one list of (resource URI, RLMI fragment, PIDF part).
fn full_list_state(ua: &mut impl Ua, resources: usize) -> Vec<(String, String, Option<String>)> {
    let first = expect_list_notify(ua);
    assert!(first.full_state(), "{}", first.rlmi());
    let mut notifies = vec![first];
    while notifies.iter().map(|n| n.resources().len()).sum::<usize>() < resources {
        notifies.push(expect_list_notify(ua));
    }
    let mut out = Vec::new();
    for n in &notifies {
        for uri in n.resources() {
            let rlmi = n.rlmi();
            let at = rlmi.find(&format!("<resource uri=\"{uri}\"")).unwrap();
            let fragment = rlmi[at..at + rlmi[at..].find("</resource>").unwrap()].to_owned();
            let pidf = n.pidf_of(&uri).map(str::to_owned);
            out.push((uri, fragment, pidf));
        }
    }
    out
}

/// Validates PIDF documents against the RFC 3863 schema.
fn valid_pidf(docs: &[&str]) {
    let named: Vec<(String, String)> = docs
        .iter()
        .enumerate()
        .map(|(i, d)| (format!("d{i}.xml"), (*d).to_owned()))
        .collect();
    xmllint("pidf.xsd", &named);
}

/// liblinphone's REGISTER, from `ua`.
fn register_liblinphone(ua: &mut UdpUa) {
    ua.send(&capture(
        "captures/liblinphone-register.sip",
        "127.0.0.1:25080",
        ua.local(),
    ));
    ua.expect_status(200);
}

/// liblinphone's PUBLISH of `open` and then of `closed` (its SIP-If-Match the entity-tag
/// the first got), from `ua`; the watcher's NOTIFY after each.
fn publish_open_then_closed(alice: &mut UdpUa, watcher: &mut UdpUa) -> (SipMsg, SipMsg) {
    alice.send(&capture(
        "captures/liblinphone-publish-open.sip",
        "127.0.0.1:25080",
        alice.local(),
    ));
    let ok = alice.expect_status(200);
    let etag = ok.header("SIP-ETag").unwrap().to_owned();
    let open = notify_until(watcher, "the open publication", |n| {
        n.body_str().contains("priority=\"0.8\"")
    });
    let closed_request = String::from_utf8(capture(
        "captures/liblinphone-publish-closed.sip",
        "127.0.0.1:25080",
        alice.local(),
    ))
    .unwrap()
    .replace("SIP-If-Match: e253b4fhn", &format!("SIP-If-Match: {etag}"));
    alice.send(closed_request.as_bytes());
    alice.expect_status(200);
    let closed = notify_until(watcher, "the closed publication", |n| {
        n.body_str().contains("<basic>closed</basic>")
    });
    (open, closed)
}

#[test]
fn a_registered_linphone_that_publishes_closed_is_closed_under_fallback() -> TestResult {
    let dir = tempfile::tempdir()?;
    for (store, url) in store_urls(dir.path()) {
        let server = TestServer::start_config(
            tempfile::tempdir()?,
            &config_with_store(&url, "", &config("")),
        );
        let (mut alice, mut watcher) = (UdpUa::new(server.udp), UdpUa::new(server.udp));
        register_liblinphone(&mut alice);
        let (_, registered, _) = subscribe(&mut watcher, ALICE, Some(600));
        let device = format!("sip:alice@{}", alice.local());
        assert!(
            registered.body_str().contains(&device),
            "{store}: {}",
            registered.body_str()
        );
        assert!(registered.body_str().contains("<basic>open</basic>"));
        let (open, closed) = publish_open_then_closed(&mut alice, &mut watcher);
        // Registration stands in for presence only while nothing is published.
        assert!(
            !open.body_str().contains(&device),
            "{store}: {}",
            open.body_str()
        );
        let closed = closed.body_str();
        assert!(!closed.contains("<basic>open</basic>"), "{store}: {closed}");
        assert!(!closed.contains(&device), "{store}: {closed}");
        valid_pidf(&[&registered.body_str(), &open.body_str(), &closed]);
    }
    Ok(())
}

#[test]
fn registration_state_always_keeps_the_registration_and_off_ignores_it() -> TestResult {
    let server = start("registration_state = \"always\"", "");
    let (mut alice, mut watcher) = (UdpUa::new(server.udp), UdpUa::new(server.udp));
    register_liblinphone(&mut alice);
    let device = format!("sip:alice@{}", alice.local());
    let (_, registered, _) = subscribe(&mut watcher, ALICE, Some(600));
    assert!(registered.body_str().contains(&device));
    let (_, closed) = publish_open_then_closed(&mut alice, &mut watcher);
    let closed = closed.body_str();
    assert!(
        closed.contains("<basic>closed</basic>") && closed.contains(&device),
        "{closed}"
    );
    assert!(closed.contains("<basic>open</basic>"), "{closed}");

    let server = start("registration_state = \"off\"", "");
    let (mut alice, mut watcher) = (UdpUa::new(server.udp), UdpUa::new(server.udp));
    register_liblinphone(&mut alice);
    let (_, registered, _) = subscribe(&mut watcher, ALICE, Some(600));
    let body = registered.body_str();
    assert!(
        !body.contains("<basic>open</basic>"),
        "a registration gives no presence: {body}"
    );
    assert!(
        !body.contains(&format!("sip:alice@{}", alice.local())),
        "{body}"
    );
    let (open, closed) = publish_open_then_closed(&mut alice, &mut watcher);
    assert!(open.body_str().contains("<basic>open</basic>"));
    assert!(!closed.body_str().contains("<basic>open</basic>"));
    Ok(())
}

#[test]
fn an_existing_user_gets_long_term_presence_with_the_capabilities_of_their_contacts() -> TestResult
{
    for db in UsersDb::all() {
        let name = db.name();
        let server = serve(&db, &[("alice", Some("+33100000001"))], "");
        let (mut alice, mut watcher) = (UdpUa::new(server.udp), UdpUa::new(server.udp));
        let (_, first, _) = subscribe(&mut watcher, ALICE, Some(600));
        let doc = first.body_str();
        // One open tuple whose contact is the user, and a person who is away.
        assert!(doc.contains("<tuple id=\"ltp\"><status><basic>open</basic></status><contact>sip:alice@example.org</contact><timestamp>"), "{name}: {doc}");
        assert!(
            doc.contains("<rpid:activities><rpid:away/></rpid:activities>"),
            "{name}: {doc}"
        );
        assert_eq!(doc.matches("<tuple").count(), 1, "{name}: {doc}");
        assert!(
            person_timestamp(&doc).is_none(),
            "{name}: never active: {doc}"
        );

        // Two devices register with their capabilities; the highest version of each counts.
        let register = alice
            .request("REGISTER", "sip:example.org")
            .header(&format!(
                "Contact: <sip:alice@{}>;+org.linphone.specs=\"groupchat/1.1,lime\"",
                alice.local()
            ))
            .header("Contact: <sip:alice@192.0.2.7:5060>;+org.linphone.specs=\"groupchat/1.0,ephemeral\"")
            .header("Expires: 600");
        let mut register = register;
        register.to = format!("<{ALICE}>");
        register.from = format!("<{ALICE}>;tag=r1");
        alice.send(&register.build());
        alice.expect_status(200);
        let caps = notify_until(&mut watcher, "capabilities", |n| {
            n.body_str().contains("service-description")
        })
        .body_str();
        let services: Vec<(String, String)> = caps
            .match_indices("<op:service-id>")
            .map(|(i, m)| {
                let rest = &caps[i + m.len()..];
                let id = rest[..rest.find('<').unwrap()].to_owned();
                let v = &rest[rest.find("<op:version>").unwrap() + 12..];
                (id, v[..v.find('<').unwrap()].to_owned())
            })
            .collect();
        let expected = [("ephemeral", "1.0"), ("groupchat", "1.1"), ("lime", "1.0")];
        assert_eq!(
            services,
            expected.map(|(a, b)| (a.to_owned(), b.to_owned())),
            "{name}: {caps}"
        );
        assert!(
            caps.contains("xmlns:op=\"urn:oma:xml:prs:pidf:oma-pres\""),
            "{caps}"
        );

        // A publication comes first, the long-term tuple after it.
        let body = pidf_body(ALICE, "t1", "open", "at work");
        let publish = alice
            .request("PUBLISH", ALICE)
            .header("Event: presence")
            .header("Expires: 600")
            .body("application/pidf+xml", &body);
        alice.send(&publish.build());
        alice.expect_status(200);
        let published = notify_until(&mut watcher, "the publication", |n| {
            n.body_str().contains("at work")
        })
        .body_str();
        let (t1, ltp) = (
            published.find("<tuple id=\"t1\"").unwrap(),
            published.find("<tuple id=\"ltp\"").unwrap(),
        );
        assert!(t1 < ltp, "{name}: {published}");
        valid_pidf(&[&doc, &caps, &published]);
    }
    Ok(())
}

fn pidf_body(entity: &str, tuple: &str, basic: &str, note: &str) -> Vec<u8> {
    format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<presence xmlns=\"urn:ietf:params:xml:ns:pidf\" \
         entity=\"{entity}\"><tuple id=\"{tuple}\"><status><basic>{basic}</basic></status>\
         <note>{note}</note></tuple></presence>\n"
    )
    .into_bytes()
}

#[test]
fn an_unknown_user_gets_the_unknown_document_or_404() -> TestResult {
    for db in UsersDb::all() {
        let name = db.name();
        let server = serve(&db, &[("alice", None)], "");
        let mut watcher = UdpUa::new(server.udp);
        let (_, n, _) = subscribe(&mut watcher, "sip:nobody@example.org", Some(600));
        let doc = n.body_str();
        assert!(
            doc.contains("<note xml:lang=\"en\">No presence information available yet</note>"),
            "{name}: {doc}"
        );
        assert!(!doc.contains("<tuple"), "{name}: {doc}");
        valid_pidf(&[&doc]);

        let server = start("", &db.config("unknown = \"404\""));
        let mut watcher = UdpUa::new(server.udp);
        watcher.send(&subscribe_request(&watcher, "sip:nobody@example.org").build());
        watcher.expect_status(404);
        let (_, n, _) = subscribe(&mut watcher, ALICE, Some(600));
        assert!(n.body_str().contains("<tuple id=\"ltp\""), "{name}");
    }
    Ok(())
}

#[test]
fn a_burst_of_subscribes_for_one_user_costs_one_query() -> TestResult {
    for db in UsersDb::all() {
        let name = db.name();
        let accounts = [("alice", Some("+33100000001"))];
        let server = serve(&db, &accounts, "cache_ttl_s = 60");
        let mut watchers: Vec<UdpUa> = (0..6).map(|_| UdpUa::new(server.udp)).collect();
        // Four watchers of the user and two of their number, all at once.
        for (i, w) in watchers.iter().enumerate() {
            let target = if i < 4 {
                ALICE
            } else {
                "sip:+33100000001@example.org;user=phone"
            };
            w.send(&subscribe_request(w, target).header("Expires: 600").build());
        }
        for w in &mut watchers {
            w.expect_status(200);
            let n = w.expect_notify();
            assert!(
                n.body_str().contains("<tuple id=\"ltp\""),
                "{name}: {}",
                n.body_str()
            );
        }
        // A later one is answered from the cache.
        let mut late = UdpUa::new(server.udp);
        let (_, n, _) = subscribe(&mut late, "sip:bob@example.org", Some(600));
        assert!(n
            .body_str()
            .contains("No presence information available yet"));
        // Six watchers, one question about alice and one about her number.
        assert_eq!(
            server.wait_log("users: alice@example.org exists: true", 1),
            1,
            "{name}"
        );
        assert_eq!(server.log_count("numbers looked up"), 1, "{name}");
        assert_eq!(
            server.log_count("users: bob@example.org exists: false"),
            1,
            "{name}"
        );
    }
    Ok(())
}

#[test]
fn without_a_wait_the_long_term_document_follows_the_unknown_one() -> TestResult {
    let db = UsersDb::all().remove(0);
    let server = serve(&db, &[("alice", None)], "first_notify_wait_ms = 0");
    let mut watcher = UdpUa::new(server.udp);
    let (_, first, _) = subscribe(&mut watcher, ALICE, Some(600));
    assert!(first
        .body_str()
        .contains("No presence information available yet"));
    let second = watcher.expect_notify();
    assert!(
        second.body_str().contains("<tuple id=\"ltp\""),
        "{}",
        second.body_str()
    );
    Ok(())
}

#[test]
fn the_last_activity_is_shown_once_offline_and_survives_kill_9() -> TestResult {
    let dir = tempfile::tempdir()?;
    let db = UsersDb::all().remove(0);
    db.add("alice", None);
    for (store, url) in store_urls(dir.path()) {
        let folder = tempfile::tempdir()?;
        let text = config_with_store(&url, "", &format!("{}{}", config(""), db.config("")));
        let server = TestServer::start_config(folder, &text);
        let mut alice = UdpUa::new(server.udp);
        let before = unix_rfc3339(0);
        let publish = alice
            .request("PUBLISH", ALICE)
            .header("Event: presence")
            .header("Expires: 600")
            .body(
                "application/pidf+xml",
                &pidf_body(ALICE, "t1", "open", "hi"),
            );
        alice.send(&publish.build());
        let etag = alice
            .expect_status(200)
            .header("SIP-ETag")
            .unwrap()
            .to_owned();
        let remove = alice
            .request("PUBLISH", ALICE)
            .header("Event: presence")
            .header("Expires: 0")
            .header(&format!("SIP-If-Match: {etag}"));
        alice.send(&remove.build());
        alice.expect_status(200);
        let after = unix_rfc3339(1);
        let mut watcher = UdpUa::new(server.udp);
        let (_, n, _) = subscribe(&mut watcher, ALICE, Some(600));
        let seen = person_timestamp(&n.body_str())
            .unwrap_or_else(|| panic!("{store}: no last activity: {}", n.body_str()));
        assert!(
            before <= seen && seen <= after,
            "{store}: {before} <= {seen} <= {after}"
        );

        let folder = server.kill_hard();
        let server = TestServer::start_config(folder, &text);
        let mut watcher = UdpUa::new(server.udp);
        let (_, n, _) = subscribe(&mut watcher, ALICE, Some(600));
        assert_eq!(person_timestamp(&n.body_str()), Some(seen), "{store}");
    }
    Ok(())
}

/// Now plus `plus` seconds, as PIDF writes timestamps (UTC, seconds).
fn unix_rfc3339(plus: u64) -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        + plus;
    let out = std::process::Command::new("date")
        .args(["-u", "-d", &format!("@{now}"), "+%Y-%m-%dT%H:%M:%SZ"])
        .output()
        .unwrap();
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

#[test]
fn a_phone_number_shows_its_owner_and_a_refresh_finds_a_new_owner() -> TestResult {
    for db in UsersDb::all() {
        let name = db.name();
        let server = serve(&db, &[("alice", Some("+33100000001")), ("bob", None)], "");
        let mut watcher = UdpUa::new(server.udp);
        let phone = "sip:+33100000001@example.org;user=phone";
        let (_, n, _) = subscribe(&mut watcher, phone, Some(600));
        let doc = n.body_str();
        assert_eq!(entity(&doc).as_deref(), Some(phone), "{name}: {doc}");
        assert_eq!(first_contact(&doc).as_deref(), Some(ALICE), "{name}: {doc}");
        assert!(doc.contains("<basic>open</basic>"), "{name}: {doc}");

        // A number nobody owns: the unknown document, until bob takes it and the
        // subscription is refreshed.
        let spare = "sip:+33100000009@example.org;user=phone";
        let (ok, n, req) = subscribe(&mut watcher, spare, Some(600));
        assert!(
            n.body_str()
                .contains("No presence information available yet"),
            "{name}"
        );
        db.set_phone("bob", Some("+33100000009"));
        watcher.send(&in_dialog_subscribe(&watcher, &req, &ok, 2, 600));
        watcher.expect_status(200);
        let owned = notify_until(&mut watcher, "bob behind the number", |n| {
            first_contact(&n.body_str()).as_deref() == Some("sip:bob@example.org")
        });
        assert_eq!(entity(&owned.body_str()).as_deref(), Some(spare));
        valid_pidf(&[&doc, &owned.body_str()]);
    }
    Ok(())
}

#[test]
fn liblinphones_deflated_list_with_a_number_and_a_friend_gets_what_it_needs() -> TestResult {
    for db in UsersDb::all() {
        let name = db.name();
        let accounts = [("alice-pf", Some("+33123456789")), ("carol-pf", None)];
        let server = serve(&db, &accounts, "");
        let mut ua = UdpUa::new(server.udp);
        send_list_capture(
            &mut ua,
            "captures/liblinphone-phone-list-subscribe-deflated.sip",
        );
        ua.expect_status(200);
        let state = full_list_state(&mut ua, 2);
        let number = "sip:+33123456789@example.org;user=phone";
        let (uri, fragment, pidf) = &state[0];
        // Byte for byte the list entry, an active instance, and the owner as first contact.
        assert_eq!(uri, number, "{name}");
        assert!(
            fragment.contains("state=\"active\""),
            "{name}: {fragment}\n{}",
            server.log().join("\n")
        );
        let pidf = pidf.as_deref().unwrap();
        assert_eq!(entity(pidf).as_deref(), Some(number), "{name}: {pidf}");
        assert_eq!(
            first_contact(pidf).as_deref(),
            Some("sip:alice-pf@example.org"),
            "{name}: {pidf}"
        );
        let (uri, _, carol) = &state[1];
        assert_eq!(uri, "sip:carol-pf@example.org");
        assert!(
            carol.as_deref().unwrap().contains("<tuple id=\"ltp\""),
            "{name}: {carol:?}\n{}",
            server
                .log()
                .iter()
                .filter(|l| l.contains("users") || l.contains("carol"))
                .cloned()
                .collect::<Vec<_>>()
                .join("\n")
        );
        valid_pidf(&[pidf, carol.as_deref().unwrap()]);
    }
    Ok(())
}

#[test]
fn a_listed_number_without_owner_has_no_instance_until_a_refresh_finds_one() -> TestResult {
    for db in UsersDb::all() {
        let name = db.name();
        let server = serve(&db, &[("alice-pf", None)], "");
        let mut ua = UdpUa::new(server.udp);
        send_list_capture(
            &mut ua,
            "captures/liblinphone-phone-list-subscribe-one-number.sip",
        );
        let ok = ua.expect_status(200);
        let state = full_list_state(&mut ua, 1);
        let number = "sip:+33123456789@example.org;user=phone";
        assert_eq!(state[0].0, number);
        assert!(!state[0].1.contains("<instance"), "{name}: {}", state[0].1);
        assert!(
            state[0].2.is_none(),
            "{name}: no part for an unknown number"
        );

        // The number becomes alice-pf's: the next refresh shows it, without a new list.
        db.set_phone("alice-pf", Some("+33123456789"));
        let local = ua.local();
        let refresh = |cseq: u32| {
            format!(
                "SUBSCRIBE sip:friends@example.org SIP/2.0\r\n\
                 Via: SIP/2.0/UDP {local};branch=z9hG4bK.r{cseq}{n};rport\r\n\
                 From: <sip:bob-pf@example.org>;tag=VA2exAuYI\r\nTo: {to}\r\nCSeq: {cseq} SUBSCRIBE\r\n\
                 Call-ID: QGPY09utmR\r\nMax-Forwards: 70\r\nSupported: eventlist\r\nEvent: presence\r\n\
                 Expires: 3600\r\nContact: <sip:bob-pf@{local};transport=udp>\r\n\
                 Accept: multipart/related\r\nAccept: application/pidf+xml\r\n\
                 Accept: application/rlmi+xml\r\nContent-Length: 0\r\n\r\n",
                to = ok.header("To").unwrap(),
                n = unique("x"),
            )
        };
        ua.send(refresh(21).as_bytes());
        ua.expect_status(200);
        let found = loop {
            let n = expect_list_notify(&mut ua);
            if let Some(pidf) = n.pidf_of(number) {
                break pidf.to_owned();
            }
        };
        assert_eq!(
            first_contact(&found).as_deref(),
            Some("sip:alice-pf@example.org"),
            "{name}"
        );

        // It leaves the service: the next refresh shows the number without an instance again.
        db.set_phone("alice-pf", None);
        ua.send(refresh(22).as_bytes());
        ua.expect_status(200);
        loop {
            let n = expect_list_notify(&mut ua);
            if n.resources().iter().any(|r| r == number) && n.pidf_of(number).is_none() {
                assert!(!n.rlmi().contains("<instance"), "{name}: {}", n.rlmi());
                break;
            }
        }
    }
    Ok(())
}

#[test]
fn a_thousand_number_list_is_resolved_in_full() -> TestResult {
    for db in UsersDb::all() {
        let name = db.name();
        let values: Vec<String> = (0..1000)
            .map(|i| format!("('u{i:04}', '{DOMAIN}', '+3361{i:07}')"))
            .collect();
        db.exec(&format!(
            "INSERT INTO {{t}} (login, domain, phone) VALUES {}",
            values.join(", ")
        ));
        let server = start("", &db.config(""));
        let mut ua = UdpUa::new(server.udp);
        let numbers: Vec<String> = (0..1000)
            .map(|i| format!("sip:+3361{i:07}@example.org;user=phone"))
            .collect();
        ua.send(&list_subscribe(&ua, &numbers, true).build());
        ua.expect_status(200);
        let state = full_list_state(&mut ua, 1000);
        assert_eq!(state.len(), 1000, "{name}");
        for (i, (uri, _, pidf)) in state.iter().enumerate() {
            assert_eq!(uri, &numbers[i], "{name}");
            let pidf = pidf
                .as_deref()
                .unwrap_or_else(|| panic!("{name}: {uri} unresolved"));
            assert_eq!(
                first_contact(pidf),
                Some(format!("sip:u{i:04}@example.org")),
                "{name}"
            );
        }
        // One run of phones_query per chunk of users.phones_per_query, not one per number.
        assert_eq!(
            server.wait_log("numbers looked up", 2),
            2,
            "{name}: {:?}",
            server
                .log()
                .iter()
                .filter(|l| l.contains("numbers looked up"))
                .collect::<Vec<_>>()
        );
    }
    Ok(())
}

#[test]
fn a_users_database_that_goes_down_degrades_to_unknown_and_recovers_by_itself() -> TestResult {
    for db in UsersDb::all() {
        let name = db.name();
        let server = serve(&db, &[("alice", None), ("carol", None)], "");
        db.set_down(true);
        let mut watcher = UdpUa::new(server.udp);
        let (_, n, _) = subscribe(&mut watcher, ALICE, Some(600));
        assert!(
            n.body_str()
                .contains("No presence information available yet"),
            "{name}"
        );
        let mut other = UdpUa::new(server.udp);
        let (_, n, _) = subscribe(&mut other, "sip:carol@example.org", Some(600));
        assert!(
            n.body_str()
                .contains("No presence information available yet"),
            "{name}"
        );
        assert_eq!(
            server.wait_log("users database unavailable", 1),
            1,
            "{name}: logged once"
        );

        db.set_down(false);
        // The watcher from the outage is told without doing anything.
        notify_until(&mut watcher, "long-term presence after the outage", |n| {
            n.body_str().contains("<tuple id=\"ltp\"")
        });
        assert_eq!(
            server.wait_log("users database reachable again", 1),
            1,
            "{name}"
        );
        let mut late = UdpUa::new(server.udp);
        let (_, n, _) = subscribe(&mut late, "sip:carol@example.org", Some(600));
        assert!(n.body_str().contains("<tuple id=\"ltp\""), "{name}");
    }
    Ok(())
}

#[test]
fn a_phone_list_subscription_survives_kill_9_and_its_numbers_are_resolved_again() -> TestResult {
    let dir = tempfile::tempdir()?;
    let db = UsersDb::all().remove(0);
    db.add("alice-pf", Some("+33123456789"));
    db.add("carol-pf", None);
    for (store, url) in store_urls(dir.path()) {
        let text = config_with_store(&url, "", &format!("{}{}", config(""), db.config("")));
        let server = TestServer::start_config(tempfile::tempdir()?, &text);
        let mut ua = UdpUa::new(server.udp);
        send_list_capture(
            &mut ua,
            "captures/liblinphone-phone-list-subscribe-deflated.sip",
        );
        ua.expect_status(200);
        full_list_state(&mut ua, 2);
        let folder = server.kill_hard();
        let server = TestServer::start_config(folder, &text);
        let _ = &server;
        let state = full_list_state(&mut ua, 2);
        let pidf = state[0]
            .2
            .as_deref()
            .unwrap_or_else(|| panic!("{store}: {state:?}"));
        assert_eq!(
            first_contact(pidf).as_deref(),
            Some("sip:alice-pf@example.org"),
            "{store}"
        );
    }
    Ok(())
}
