//! Test support: start the real `presenced` binary on port 0 with a temporary config, and talk
//! to it with raw SIP bytes over real sockets. Every wait is bounded.
//!
//! The little SIP reader here is deliberately independent of the server's own parser, so that a
//! parser bug cannot hide itself.

#![allow(dead_code, unreachable_pub, clippy::unwrap_used, clippy::expect_used)]

use std::collections::VecDeque;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream, UdpSocket};
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub mod lists;

pub type TestResult = Result<(), Box<dyn std::error::Error>>;

/// How long any single expectation waits.
pub const WAIT: Duration = Duration::from_secs(5);

/// A running server process.
pub struct TestServer {
    child: Child,
    pub udp: SocketAddr,
    pub tcp: SocketAddr,
    /// The HTTP side's address, when the config has one.
    pub http: Option<SocketAddr>,
    dir: Option<tempfile::TempDir>,
    log: Arc<Mutex<Vec<String>>>,
}

/// The config every test starts from; `extra` is appended (later keys of a section must be
/// given in the section they belong to, so `extra` holds whole sections).
pub fn base_config(dir: &std::path::Path, sip_extra: &str, extra: &str) -> String {
    config_with_store(
        &format!("sqlite://{}/presenced.db", dir.display()),
        sip_extra,
        extra,
    )
}

impl TestServer {
    /// Starts the server with the base config.
    pub fn start() -> Self {
        Self::start_with("", "")
    }

    /// Starts the server with extra `[sip]` keys and extra sections.
    pub fn start_with(sip_extra: &str, extra: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let config = base_config(dir.path(), sip_extra, extra);
        Self::start_config(dir, &config)
    }

    /// Starts the server with a complete config text.
    pub fn start_config(dir: tempfile::TempDir, config: &str) -> Self {
        let path = dir.path().join("presenced.toml");
        std::fs::write(&path, config).unwrap();
        let mut child = Command::new(env!("CARGO_BIN_EXE_presenced"))
            .arg("--config")
            .arg(&path)
            .env_remove("RUST_LOG")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stderr = child.stderr.take().unwrap();
        let log = Arc::new(Mutex::new(Vec::new()));
        let (tx, rx) = mpsc::channel::<String>();
        let log2 = log.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                log2.lock().unwrap().push(line.clone());
                let _ = tx.send(line);
            }
        });
        let (mut udp, mut tcp, mut http, mut running) = (None, None, None, false);
        let deadline = Instant::now() + Duration::from_secs(20);
        while !(running && udp.is_some() && tcp.is_some()) {
            let left = deadline.saturating_duration_since(Instant::now());
            let line = match rx.recv_timeout(left) {
                Ok(l) => l,
                Err(_) => {
                    let _ = child.kill();
                    panic!(
                        "server did not start; log:\n{}",
                        log.lock().unwrap().join("\n")
                    );
                }
            };
            if let Some(rest) = line.split("listening on udp:").nth(1) {
                udp = rest.trim().parse().ok();
            }
            if let Some(rest) = line.split("listening on tcp:").nth(1) {
                tcp = rest.trim().parse().ok();
            }
            if let Some(rest) = line.split("listening on http:").nth(1) {
                http = rest.trim().parse().ok();
            }
            running |= line.contains(" running");
        }
        TestServer {
            child,
            udp: udp.unwrap(),
            tcp: tcp.unwrap(),
            http,
            dir: Some(dir),
            log,
        }
    }

    /// kill -9: the process gets no chance to do anything. Returns its folder (config, DB).
    pub fn kill_hard(mut self) -> tempfile::TempDir {
        let _ = self.child.kill();
        let _ = self.child.wait();
        self.dir.take().expect("the folder is taken only here")
    }

    pub fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    /// Sends a signal to the server process (ours, by PID).
    pub fn signal(&self, sig: i32) {
        // SAFETY: kill(2) on the PID of a child this test spawned and has not yet reaped.
        unsafe {
            libc::kill(self.pid(), sig);
        }
    }

    /// Waits for the process to exit, up to `limit`.
    pub fn wait_exit(&mut self, limit: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + limit;
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }

    /// Lines the server has logged so far.
    pub fn log(&self) -> Vec<String> {
        self.log.lock().unwrap().clone()
    }

    /// Waits (bounded) until at least `n` log lines contain `needle`; returns how many do.
    /// Logging is asynchronous to the test, so a count is only meaningful after this wait.
    pub fn wait_log(&self, needle: &str, n: usize) -> usize {
        let deadline = Instant::now() + WAIT;
        loop {
            let count = self.log_count(needle);
            if count >= n || Instant::now() >= deadline {
                // A little longer, so that a surplus line would be seen too.
                std::thread::sleep(Duration::from_millis(50));
                return self.log_count(needle);
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Counts log lines containing `needle`.
    pub fn log_count(&self, needle: &str) -> usize {
        self.log().iter().filter(|l| l.contains(needle)).count()
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A SIP message as the test sees it.
#[derive(Debug, Clone)]
pub struct SipMsg {
    pub start: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl SipMsg {
    pub fn status(&self) -> u16 {
        self.start
            .strip_prefix("SIP/2.0 ")
            .and_then(|r| r.get(..3))
            .and_then(|c| c.parse().ok())
            .unwrap_or(0)
    }
    pub fn is_request(&self, method: &str) -> bool {
        self.start.starts_with(&format!("{method} "))
    }
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
    pub fn headers_named(&self, name: &str) -> Vec<&str> {
        self.headers
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
            .collect()
    }
    pub fn body_str(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
    /// The value of `;name=value` in a header.
    pub fn param(&self, header: &str, name: &str) -> Option<String> {
        let v = self.header(header)?;
        v.split(';').skip(1).find_map(|p| {
            let (n, val) = p.split_once('=').unwrap_or((p, ""));
            n.trim()
                .eq_ignore_ascii_case(name)
                .then(|| val.trim().to_string())
        })
    }
}

/// Reads one message from the front of `buf`, if complete (Content-Length framing; without
/// Content-Length the body is empty).
pub fn take_message(buf: &mut Vec<u8>) -> Option<SipMsg> {
    let end = buf.windows(4).position(|w| w == b"\r\n\r\n")? + 4;
    let head = String::from_utf8_lossy(&buf[..end]).into_owned();
    let mut lines = head.split("\r\n");
    let start = lines.next()?.to_string();
    let headers: Vec<(String, String)> = lines
        .filter(|l| !l.is_empty())
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_string(), v.trim().to_string()))
        .collect();
    let len: usize = headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case("Content-Length") || n == "l")
        .and_then(|(_, v)| v.parse().ok())
        .unwrap_or(0);
    if buf.len() < end + len {
        return None;
    }
    let body = buf[end..end + len].to_vec();
    buf.drain(..end + len);
    Some(SipMsg {
        start,
        headers,
        body,
    })
}

static COUNTER: AtomicU64 = AtomicU64::new(1);

/// A unique token for branches, tags and Call-IDs.
pub fn unique(prefix: &str) -> String {
    format!(
        "{prefix}{}x{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    )
}

/// Builds a request with the mandatory headers; `extra` lines are added verbatim and
/// Content-Length is computed.
pub struct RequestBuilder {
    pub method: String,
    pub uri: String,
    pub via: String,
    pub from: String,
    pub to: String,
    pub call_id: String,
    pub cseq: u32,
    pub max_forwards: Option<u32>,
    pub extra: Vec<String>,
    pub body: Vec<u8>,
    pub skip: Vec<&'static str>,
}

impl RequestBuilder {
    pub fn new(method: &str, uri: &str, transport: &str, local: SocketAddr) -> Self {
        Self {
            method: method.into(),
            uri: uri.into(),
            via: format!(
                "SIP/2.0/{transport} {local};branch=z9hG4bK{};rport",
                unique("b")
            ),
            from: format!("<sip:tester@example.org>;tag={}", unique("t")),
            to: format!("<{uri}>"),
            call_id: unique("call"),
            cseq: 1,
            max_forwards: Some(70),
            extra: Vec::new(),
            body: Vec::new(),
            skip: Vec::new(),
        }
    }
    pub fn header(mut self, line: &str) -> Self {
        self.extra.push(line.into());
        self
    }
    pub fn without(mut self, name: &'static str) -> Self {
        self.skip.push(name);
        self
    }
    pub fn body(mut self, content_type: &str, body: &[u8]) -> Self {
        self.extra.push(format!("Content-Type: {content_type}"));
        self.body = body.to_vec();
        self
    }
    pub fn build(&self) -> Vec<u8> {
        let mut s = format!("{} {} SIP/2.0\r\n", self.method, self.uri);
        let mut add = |name: &'static str, value: String| {
            if !self.skip.contains(&name) {
                s.push_str(&format!("{name}: {value}\r\n"));
            }
        };
        add("Via", self.via.clone());
        add("From", self.from.clone());
        add("To", self.to.clone());
        add("Call-ID", self.call_id.clone());
        add("CSeq", format!("{} {}", self.cseq, self.method));
        if let Some(mf) = self.max_forwards {
            add("Max-Forwards", mf.to_string());
        }
        for line in &self.extra {
            s.push_str(line);
            s.push_str("\r\n");
        }
        if !self.skip.contains(&"Content-Length") {
            s.push_str(&format!("Content-Length: {}\r\n", self.body.len()));
        }
        s.push_str("\r\n");
        let mut out = s.into_bytes();
        out.extend_from_slice(&self.body);
        out
    }
}

/// A UDP user agent.
pub struct UdpUa {
    pub sock: UdpSocket,
    pub server: SocketAddr,
    queue: VecDeque<SipMsg>,
}

impl UdpUa {
    pub fn new(server: SocketAddr) -> Self {
        let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
        Self {
            sock,
            server,
            queue: VecDeque::new(),
        }
    }
    pub fn local(&self) -> SocketAddr {
        self.sock.local_addr().unwrap()
    }
    pub fn request(&self, method: &str, uri: &str) -> RequestBuilder {
        RequestBuilder::new(method, uri, "UDP", self.local())
    }
    pub fn send(&self, bytes: &[u8]) {
        self.sock.send_to(bytes, self.server).unwrap();
    }
    /// The next message, or None after `wait`.
    pub fn recv(&mut self, wait: Duration) -> Option<SipMsg> {
        if let Some(m) = self.queue.pop_front() {
            return Some(m);
        }
        let deadline = Instant::now() + wait;
        let mut buf = vec![0u8; 70000];
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return None;
            }
            self.sock.set_read_timeout(Some(left)).unwrap();
            match self.sock.recv_from(&mut buf) {
                Ok((n, _)) => {
                    let mut v = buf[..n].to_vec();
                    if let Some(m) = take_message(&mut v) {
                        return Some(m);
                    }
                }
                Err(_) => return None,
            }
        }
    }
    /// Answers retransmissions of `request` (same Call-ID and CSeq) that are already on their
    /// way, as a UA does; the first other message is kept for the next receive.
    pub fn absorb_retransmissions(&mut self, request: &SipMsg) {
        while let Some(m) = self.recv(Duration::from_millis(200)) {
            let same = m.header("Call-ID") == request.header("Call-ID")
                && m.header("CSeq") == request.header("CSeq")
                && m.start == request.start;
            if !same {
                self.queue.push_front(m);
                return;
            }
            let ok = answer(&m, 200);
            self.send(&ok);
        }
    }

    /// The next message, which must come within WAIT.
    pub fn expect(&mut self) -> SipMsg {
        self.recv(WAIT).expect("no message within the wait")
    }
    /// Expects a response with this status.
    pub fn expect_status(&mut self, status: u16) -> SipMsg {
        let m = self.expect();
        assert_eq!(m.status(), status, "unexpected message: {m:#?}");
        m
    }
}

/// A TCP user agent.
pub struct TcpUa {
    pub stream: TcpStream,
    buf: Vec<u8>,
}

impl TcpUa {
    pub fn connect(server: SocketAddr) -> Self {
        let stream = TcpStream::connect(server).unwrap();
        stream.set_nodelay(true).unwrap();
        Self {
            stream,
            buf: Vec::new(),
        }
    }
    pub fn from_stream(stream: TcpStream) -> Self {
        Self {
            stream,
            buf: Vec::new(),
        }
    }
    pub fn local(&self) -> SocketAddr {
        self.stream.local_addr().unwrap()
    }
    pub fn request(&self, method: &str, uri: &str) -> RequestBuilder {
        RequestBuilder::new(method, uri, "TCP", self.local())
    }
    pub fn send(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).unwrap();
    }
    /// Reads until `pred` holds on the buffer, EOF, or the wait ends. Returns false on EOF.
    fn fill(&mut self, wait: Duration, pred: impl Fn(&[u8]) -> bool) -> Option<bool> {
        let deadline = Instant::now() + wait;
        let mut chunk = [0u8; 65536];
        while !pred(&self.buf) {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return None;
            }
            self.stream.set_read_timeout(Some(left)).unwrap();
            match self.stream.read(&mut chunk) {
                Ok(0) => return Some(false),
                Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
                Err(e)
                    if e.kind() == std::io::ErrorKind::WouldBlock
                        || e.kind() == std::io::ErrorKind::TimedOut =>
                {
                    return None
                }
                Err(_) => return Some(false),
            }
        }
        Some(true)
    }
    pub fn recv(&mut self, wait: Duration) -> Option<SipMsg> {
        let complete = |b: &[u8]| take_message(&mut b.to_vec()).is_some();
        match self.fill(wait, complete) {
            Some(true) => take_message(&mut self.buf),
            _ => None,
        }
    }
    pub fn expect(&mut self) -> SipMsg {
        self.recv(WAIT).expect("no message within the wait")
    }
    pub fn expect_status(&mut self, status: u16) -> SipMsg {
        let m = self.expect();
        assert_eq!(m.status(), status, "unexpected message: {m:#?}");
        m
    }
    /// Reads exactly `n` raw bytes.
    pub fn expect_raw(&mut self, n: usize) -> Vec<u8> {
        let ok = self.fill(WAIT, |b| b.len() >= n);
        assert_eq!(ok, Some(true), "expected {n} raw bytes");
        self.buf.drain(..n).collect()
    }
    /// True if the server closes the connection within `wait` (after any pending data).
    pub fn closed_within(&mut self, wait: Duration) -> bool {
        self.fill(wait, |_| false) == Some(false)
    }
}

/// Path of a fixture file.
pub fn fixture(rel: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(rel)
}

/// The databases a persistence test runs against: SQLite always, PostgreSQL when
/// PRESENCED_TEST_PG_URL is set (each call gets a schema of its own).
pub fn store_urls(dir: &std::path::Path) -> Vec<(&'static str, String)> {
    let mut urls = vec![("sqlite", format!("sqlite://{}/presenced.db", dir.display()))];
    match std::env::var("PRESENCED_TEST_PG_URL") {
        Ok(base) if !base.is_empty() => urls.push(("postgres", fresh_pg_schema(&base))),
        _ => eprintln!("PostgreSQL skipped: PRESENCED_TEST_PG_URL not set"),
    }
    urls
}

/// A name no earlier run has given to a database object: the time and this process's counter.
pub fn db_unique(prefix: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    format!(
        "{prefix}{nanos}x{}",
        COUNTER.fetch_add(1, Ordering::Relaxed)
    )
    .to_lowercase()
}

/// Creates a schema of its own for one test and returns a URL whose search_path is it.
pub fn fresh_pg_schema(base: &str) -> String {
    use diesel::{Connection, RunQueryDsl};
    // PIDs come back between runs and the database keeps its schemas: the time makes the name
    // new on every run.
    let schema = db_unique("t_");
    let mut conn = diesel::PgConnection::establish(base).expect("PRESENCED_TEST_PG_URL reachable");
    diesel::sql_query(format!("CREATE SCHEMA {schema}"))
        .execute(&mut conn)
        .expect("create schema");
    let sep = if base.contains('?') { '&' } else { '?' };
    format!("{base}{sep}options=-c%20search_path%3D{schema}")
}

/// A config for `dir` whose store is `url`; `extra` is appended.
pub fn config_with_store(url: &str, sip_extra: &str, extra: &str) -> String {
    format!(
        "[sip]\nlisten = [\"udp:127.0.0.1:0\", \"tcp:127.0.0.1:0\"]\nt1_ms = 50\nt2_ms = 400\n{sip_extra}\n\
         [store]\nurl = \"{url}\"\n[log]\nlevel = \"debug\"\n[http]\nlisten = [\"127.0.0.1:0\"]\n{extra}\n"
    )
}

/// A response to a received request, copying Via, From, To, Call-ID and CSeq.
pub fn answer(req: &SipMsg, status: u16) -> Vec<u8> {
    let mut s = format!("SIP/2.0 {status} Whatever\r\n");
    for name in ["Via", "From", "To", "Call-ID", "CSeq"] {
        for v in req.headers_named(name) {
            s.push_str(&format!("{name}: {v}\r\n"));
        }
    }
    s.push_str("Content-Length: 0\r\n\r\n");
    s.into_bytes()
}

/// Either kind of test user agent.
pub trait Ua {
    fn send_bytes(&mut self, bytes: &[u8]);
    fn recv_msg(&mut self, wait: Duration) -> Option<SipMsg>;
    fn local_addr(&self) -> SocketAddr;
    fn transport(&self) -> &'static str;

    fn new_request(&self, method: &str, uri: &str) -> RequestBuilder {
        RequestBuilder::new(method, uri, self.transport(), self.local_addr())
    }
    /// The next request of `method`, skipping nothing: anything else is a failure.
    fn expect_request(&mut self, method: &str) -> SipMsg {
        let m = self
            .recv_msg(WAIT)
            .unwrap_or_else(|| panic!("no {method} within the wait"));
        assert!(m.is_request(method), "expected {method}, got {m:#?}");
        m
    }
    fn expect_response(&mut self, status: u16) -> SipMsg {
        let m = self.recv_msg(WAIT).expect("no response within the wait");
        assert_eq!(m.status(), status, "unexpected message: {m:#?}");
        m
    }
    /// Receives a NOTIFY and answers it 200.
    fn expect_notify(&mut self) -> SipMsg {
        let n = self.expect_request("NOTIFY");
        let ok = answer(&n, 200);
        self.send_bytes(&ok);
        n
    }
}

impl Ua for UdpUa {
    fn send_bytes(&mut self, bytes: &[u8]) {
        self.send(bytes)
    }
    fn recv_msg(&mut self, wait: Duration) -> Option<SipMsg> {
        self.recv(wait)
    }
    fn local_addr(&self) -> SocketAddr {
        self.local()
    }
    fn transport(&self) -> &'static str {
        "UDP"
    }
}

impl Ua for TcpUa {
    fn send_bytes(&mut self, bytes: &[u8]) {
        self.send(bytes)
    }
    fn recv_msg(&mut self, wait: Duration) -> Option<SipMsg> {
        self.recv(wait)
    }
    fn local_addr(&self) -> SocketAddr {
        self.local()
    }
    fn transport(&self) -> &'static str {
        "TCP"
    }
}

/// The in-dialog SUBSCRIBE that follows `initial` (answered by `ok`) with this CSeq and Expires.
pub fn in_dialog_subscribe(
    ua: &impl Ua,
    initial: &RequestBuilder,
    ok: &SipMsg,
    cseq: u32,
    expires: u32,
) -> Vec<u8> {
    in_dialog_subscribe_request(ua, initial, ok, cseq, expires).build()
}

/// The builder of `in_dialog_subscribe`, for tests that add headers or a body.
pub fn in_dialog_subscribe_request(
    ua: &impl Ua,
    initial: &RequestBuilder,
    ok: &SipMsg,
    cseq: u32,
    expires: u32,
) -> RequestBuilder {
    let mut r = ua.new_request("SUBSCRIBE", initial.uri.as_str());
    r.from = initial.from.clone();
    r.to = ok.header("To").unwrap().to_string();
    r.call_id = initial.call_id.clone();
    r.cseq = cseq;
    r.header("Event: presence")
        .header(&format!("Contact: <sip:watcher@{}>", ua.local_addr()))
        .header(&format!("Expires: {expires}"))
}

/// An initial SUBSCRIBE for the presence event with the UA as Contact.
pub fn subscribe_request(ua: &impl Ua, aor: &str) -> RequestBuilder {
    ua.new_request("SUBSCRIBE", aor)
        .header("Event: presence")
        .header(&format!("Contact: <sip:watcher@{}>", ua.local_addr()))
}

/// Sends an initial SUBSCRIBE; returns the 200 and the first NOTIFY (answered).
pub fn subscribe(
    ua: &mut impl Ua,
    aor: &str,
    expires: Option<u32>,
) -> (SipMsg, SipMsg, RequestBuilder) {
    let mut req = subscribe_request(ua, aor);
    if let Some(e) = expires {
        req = req.header(&format!("Expires: {e}"));
    }
    ua.send_bytes(&req.build());
    let ok = ua.expect_response(200);
    let notify = ua.expect_notify();
    (ok, notify, req)
}

/// An HTTP/1.1 GET: status, headers (lower-case names) and body.
pub fn http_get(addr: SocketAddr, path: &str) -> (u16, Vec<(String, String)>, String) {
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(WAIT)).unwrap();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).unwrap();
    let text = String::from_utf8(raw).unwrap();
    let (head, body) = text.split_once("\r\n\r\n").unwrap();
    let mut lines = head.lines();
    let status = lines
        .next()
        .unwrap()
        .split(' ')
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    (status, headers, body.to_owned())
}

/// A full-state dialog-info document (RFC 4235) of `entity` with one dialog `id` in `state`, as
/// a PBX publishes it (`version` 0).
pub fn dialog_info(entity: &str, id: &str, state: &str) -> String {
    format!(
        "<?xml version=\"1.0\"?>\n<dialog-info xmlns=\"urn:ietf:params:xml:ns:dialog-info\" \
         version=\"0\" state=\"full\" entity=\"{entity}\"><dialog id=\"{id}\"><state>{state}</state>\
         </dialog></dialog-info>"
    )
}
