//! `presenced-load`: a small SIP load generator for presenced's benchmarks.
//!
//! SIPp spends about 40 µs of CPU per transaction, so on two cores it saturates long before the
//! server does. This generator pipelines requests over several TCP connections, answers NOTIFYs
//! with a pre-built 200, and does only the parsing it needs (Content-Length framing and a few
//! header lookups), so the server's ceiling can be measured.
//!
//! Modes (all over TCP, against `--server HOST:PORT`):
//! - `publish`: PUBLISH cycles (initial, refresh, modify, remove), `--window` cycles in flight
//!   per connection, for `--seconds`.
//! - `subscribe`: SUBSCRIBE cycles (SUBSCRIBE, NOTIFY, un-SUBSCRIBE, final NOTIFY).
//! - `fanout`: `--presentities N` × `--watchers W` subscriptions held, then `--rate` PUBLISH
//!   changes per second spread over the presentities; counts NOTIFYs delivered and the
//!   PUBLISH → NOTIFY latency (the change's send time travels in the PIDF note, or, with
//!   `--event dialog`, in the id of the dialog a busy-lamp PUBLISH reports).
//! - `hold`: establishes `--subscriptions K` subscriptions, prints `held K`, keeps them (and
//!   answers NOTIFYs) for `--seconds`.
//! - `recover`: like `hold`, but every Contact is a listener of ours; after the server is
//!   killed and restarted, the recovered NOTIFYs arrive on connections it opens to us, and the
//!   output gives the Unix times (ms) of the first and the last of them.
//! - `phone-list`: `--lists` list subscriptions (RFC 5367), one after another, each of
//!   `--members` phone numbers `sip:+3361NNNNNNN@example.org;user=phone`, list k taking N
//!   from k × members on (as `scripts/bench_phones.sh` fills the users database), so no list
//!   is answered from what an earlier one cached; each is unsubscribed before the next. Gives the time from the SUBSCRIBE to the end of its first full state (p50 and
//!   max) and the fewest resources with an instance (matched numbers) any list got.
//!
//! Output: one line of `key=value` pairs (mode, transactions, seconds, rate, p50_us, p99_us,
//! notifies, …) for scripts to read.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::BytesMut;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

#[derive(Debug, Clone)]
struct Args {
    mode: String,
    server: SocketAddr,
    connections: usize,
    window: usize,
    seconds: u64,
    presentities: usize,
    watchers: usize,
    rate: u64,
    subscriptions: usize,
    lists: usize,
    members: usize,
    /// The event package of `fanout` and `hold`: `presence` or `dialog` (busy lamps).
    event: String,
}

fn parse_args() -> Result<Args, String> {
    let mut it = std::env::args().skip(1);
    let mode = it
        .next()
        .ok_or("usage: presenced-load MODE --server HOST:PORT [options]")?;
    let mut a = Args {
        mode,
        server: "127.0.0.1:5060".parse().map_err(|_| "bad default")?,
        connections: 4,
        window: 32,
        seconds: 10,
        presentities: 100,
        watchers: 10,
        rate: 1000,
        subscriptions: 10_000,
        lists: 10,
        members: 1000,
        event: "presence".into(),
    };
    while let Some(flag) = it.next() {
        let value = it.next().ok_or(format!("{flag} needs a value"))?;
        let num = || {
            value
                .parse::<u64>()
                .map_err(|_| format!("{flag}: not a number"))
        };
        match flag.as_str() {
            "--server" => a.server = value.parse().map_err(|_| "--server: HOST:PORT")?,
            "--connections" => a.connections = num()? as usize,
            "--window" => a.window = num()? as usize,
            "--seconds" => a.seconds = num()?,
            "--presentities" => a.presentities = num()? as usize,
            "--watchers" => a.watchers = num()? as usize,
            "--rate" => a.rate = num()?,
            "--subscriptions" => a.subscriptions = num()? as usize,
            "--lists" => a.lists = num()? as usize,
            "--event" => match value.as_str() {
                "presence" | "dialog" => a.event = value.clone(),
                _ => return Err("--event: presence or dialog".into()),
            },
            "--members" => a.members = num()? as usize,
            other => return Err(format!("unknown option {other}")),
        }
    }
    if a.connections == 0 || a.window == 0 {
        return Err("--connections and --window must be positive".into());
    }
    Ok(a)
}

/// A received message: start line, a few headers, body.
struct Msg {
    start: String,
    head: String,
    body: Vec<u8>,
}

impl Msg {
    fn header(&self, name: &str) -> Option<&str> {
        self.head.split("\r\n").find_map(|l| {
            let (n, v) = l.split_once(':')?;
            n.trim().eq_ignore_ascii_case(name).then(|| v.trim())
        })
    }
    fn status(&self) -> u16 {
        self.start
            .get(8..11)
            .and_then(|s| s.parse().ok())
            .unwrap_or(0)
    }
    fn is_request(&self) -> bool {
        !self.start.starts_with("SIP/2.0")
    }
    /// The tag of the To header (the server's, in a response to an initial request).
    fn param_of_to_tag(&self) -> String {
        self.header("To")
            .and_then(|to| to.split(";tag=").nth(1))
            .map(|t| t.split(';').next().unwrap_or(t).to_owned())
            .unwrap_or_default()
    }
    /// A 200 to this request.
    fn ok(&self) -> Vec<u8> {
        let mut s = String::from("SIP/2.0 200 OK\r\n");
        for l in self.head.split("\r\n").skip(1) {
            let name = l.split(':').next().unwrap_or("").trim();
            if ["via", "from", "to", "call-id", "cseq"]
                .iter()
                .any(|h| name.eq_ignore_ascii_case(h))
            {
                s.push_str(l);
                s.push_str("\r\n");
            }
        }
        s.push_str("Content-Length: 0\r\n\r\n");
        s.into_bytes()
    }
}

/// Cuts one message off the front of `buf`, without moving the rest (a `Vec` drained per
/// message moved up to 64 KiB each time, CPU taken from the server on a shared machine).
fn take(buf: &mut BytesMut) -> Option<Msg> {
    let end = buf.windows(4).position(|w| w == b"\r\n\r\n")? + 4;
    let head = String::from_utf8_lossy(&buf[..end]).into_owned();
    let len: usize = head
        .split("\r\n")
        .find_map(|l| {
            let (n, v) = l.split_once(':')?;
            (n.trim().eq_ignore_ascii_case("content-length") || n.trim() == "l")
                .then(|| v.trim().parse().ok())?
        })
        .unwrap_or(0);
    if buf.len() < end + len {
        return None;
    }
    let message = buf.split_to(end + len);
    let body = message[end..].to_vec();
    let start = head.split("\r\n").next().unwrap_or("").to_owned();
    Some(Msg { start, head, body })
}

static SEQ: AtomicU64 = AtomicU64::new(1);

fn next_id() -> u64 {
    SEQ.fetch_add(1, Ordering::Relaxed)
}

fn pidf(user: &str, note: &str) -> String {
    format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<presence xmlns=\"urn:ietf:params:xml:ns:pidf\" \
         xmlns:rpid=\"urn:ietf:params:xml:ns:pidf:rpid\" xmlns:dm=\"urn:ietf:params:xml:ns:pidf:data-model\" \
         entity=\"sip:{user}@example.org\">\n<tuple id=\"t1\"><status><basic>open</basic></status>\
         <note>{note}</note></tuple>\n<dm:person id=\"p1\"><rpid:activities><rpid:away/></rpid:activities>\
         </dm:person>\n</presence>\n"
    )
}

/// A busy-lamp state of `user` (RFC 4235): one confirmed call, its id the change's marker.
fn dialog_info(user: &str, marker: &str) -> String {
    format!(
        "<?xml version=\"1.0\"?>\n<dialog-info xmlns=\"urn:ietf:params:xml:ns:dialog-info\" \
         version=\"0\" state=\"full\" entity=\"sip:{user}@example.org\"><dialog id=\"{marker}\" \
         direction=\"recipient\"><state>confirmed</state></dialog></dialog-info>\n"
    )
}

/// The send time (µs after the start) a NOTIFY's body carries: `at<µs>` in a PIDF note or
/// in a dialog id.
fn sent_us(body: &str) -> Option<u64> {
    let rest = body
        .split("<note>at")
        .nth(1)
        .or_else(|| body.split("id=\"at").nth(1))?;
    let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
    digits.parse().ok()
}

/// A request to build.
struct Req<'a> {
    method: &'a str,
    user: &'a str,
    local: SocketAddr,
    call_id: &'a str,
    cseq: u32,
    from_tag: &'a str,
    to_tag: Option<&'a str>,
    extra: &'a str,
    body: &'a str,
}

impl Req<'_> {
    fn bytes(&self) -> Vec<u8> {
        let to_tag = self.to_tag.map(|t| format!(";tag={t}")).unwrap_or_default();
        format!(
            "{m} sip:{u}@example.org SIP/2.0\r\nVia: SIP/2.0/TCP {l};branch=z9hG4bK{b}\r\n\
             From: <sip:load@example.org>;tag={f}\r\nTo: <sip:{u}@example.org>{to_tag}\r\n\
             Call-ID: {c}\r\nCSeq: {s} {m}\r\nMax-Forwards: 70\r\n{x}Content-Length: {n}\r\n\r\n{body}",
            m = self.method,
            u = self.user,
            l = self.local,
            b = next_id(),
            f = self.from_tag,
            c = self.call_id,
            s = self.cseq,
            x = self.extra,
            n = self.body.len(),
            body = self.body,
        )
        .into_bytes()
    }
}

#[expect(
    clippy::too_many_arguments,
    reason = "positional shorthand for Req in a benchmark tool"
)]
fn request(
    method: &str,
    user: &str,
    local: SocketAddr,
    call_id: &str,
    cseq: u32,
    tags: (&str, Option<&str>),
    extra: &str,
    body: &str,
) -> Vec<u8> {
    Req {
        method,
        user,
        local,
        call_id,
        cseq,
        from_tag: tags.0,
        to_tag: tags.1,
        extra,
        body,
    }
    .bytes()
}

/// Shared counters.
#[derive(Default)]
struct Stats {
    transactions: AtomicU64,
    notifies: AtomicU64,
    failures: AtomicU64,
    latencies_us: Mutex<Vec<u32>>,
}

impl Stats {
    fn latency(&self, since: Instant) {
        let us = since.elapsed().as_micros().min(u128::from(u32::MAX)) as u32;
        if let Ok(mut l) = self.latencies_us.lock() {
            l.push(us);
        }
    }
}

/// Per-call state of a PUBLISH or SUBSCRIBE cycle.
struct Cycle {
    user: String,
    step: u32,
    sent_at: Instant,
    etag: String,
    to_tag: String,
}

/// One connection running `window` cycles of `publish` or `subscribe` until `deadline`.
async fn cycles(
    args: Arc<Args>,
    stats: Arc<Stats>,
    conn_no: usize,
    deadline: Instant,
) -> std::io::Result<()> {
    let mut stream = TcpStream::connect(args.server).await?;
    stream.set_nodelay(true)?;
    let local = stream.local_addr()?;
    let mut calls: HashMap<String, Cycle> = HashMap::new();
    let mut out = Vec::new();
    let publish = args.mode == "publish";
    let start_call = |out: &mut Vec<u8>, calls: &mut HashMap<String, Cycle>| {
        let n = next_id();
        let user = format!("load{conn_no}x{}", n % 1000);
        let call_id = format!("c{n}");
        let bytes = if publish {
            request(
                "PUBLISH",
                &user,
                local,
                &call_id,
                1,
                ("t", None),
                "Event: presence\r\nExpires: 600\r\nContent-Type: application/pidf+xml\r\n",
                &pidf(&user, "one"),
            )
        } else {
            let extra = format!(
                "Event: presence\r\nExpires: 600\r\nContact: <sip:load@{local};transport=tcp>\r\n"
            );
            request(
                "SUBSCRIBE",
                &user,
                local,
                &call_id,
                1,
                ("t", None),
                &extra,
                "",
            )
        };
        out.extend_from_slice(&bytes);
        calls.insert(
            call_id,
            Cycle {
                user,
                step: 1,
                sent_at: Instant::now(),
                etag: String::new(),
                to_tag: String::new(),
            },
        );
    };
    for _ in 0..args.window {
        start_call(&mut out, &mut calls);
    }
    let mut buf = BytesMut::with_capacity(65536);
    let mut chunk = vec![0u8; 65536];
    loop {
        if !out.is_empty() {
            stream.write_all(&out).await?;
            out.clear();
        }
        if calls.is_empty() {
            return Ok(());
        }
        let n = match tokio::time::timeout(Duration::from_secs(5), stream.read(&mut chunk)).await {
            Ok(r) => r?,
            Err(_) => {
                stats
                    .failures
                    .fetch_add(calls.len() as u64, Ordering::Relaxed);
                return Ok(());
            }
        };
        if n == 0 {
            return Ok(());
        }
        buf.extend_from_slice(&chunk[..n]);
        while let Some(m) = take(&mut buf) {
            if m.is_request() {
                // NOTIFYs: answer at once, count.
                out.extend_from_slice(&m.ok());
                stats.notifies.fetch_add(1, Ordering::Relaxed);
                continue;
            }
            let Some(call_id) = m.header("Call-ID").map(str::to_owned) else {
                continue;
            };
            let Some(mut c) = calls.remove(&call_id) else {
                continue;
            };
            stats.transactions.fetch_add(1, Ordering::Relaxed);
            stats.latency(c.sent_at);
            if m.status() != 200 {
                stats.failures.fetch_add(1, Ordering::Relaxed);
            }
            if let Some(e) = m.header("SIP-ETag") {
                c.etag = e.to_owned();
            }
            if let Some(tag) = m.header("To").and_then(|t| t.split(";tag=").nth(1)) {
                c.to_tag = tag.to_owned();
            }
            let done = if publish { c.step >= 4 } else { c.step >= 2 };
            if done {
                if Instant::now() < deadline {
                    start_call(&mut out, &mut calls);
                }
                continue;
            }
            c.step += 1;
            let bytes = if publish {
                let (extra, body) = match c.step {
                    2 => (format!("Event: presence\r\nExpires: 600\r\nSIP-If-Match: {}\r\n", c.etag), String::new()),
                    3 => (format!("Event: presence\r\nExpires: 600\r\nSIP-If-Match: {}\r\nContent-Type: application/pidf+xml\r\n", c.etag), pidf(&c.user, "two")),
                    _ => (format!("Event: presence\r\nExpires: 0\r\nSIP-If-Match: {}\r\n", c.etag), String::new()),
                };
                request(
                    "PUBLISH",
                    &c.user,
                    local,
                    &call_id,
                    c.step,
                    ("t", None),
                    &extra,
                    &body,
                )
            } else {
                let extra = format!("Event: presence\r\nExpires: 0\r\nContact: <sip:load@{local};transport=tcp>\r\n");
                request(
                    "SUBSCRIBE",
                    &c.user,
                    local,
                    &call_id,
                    c.step,
                    ("t", Some(&c.to_tag)),
                    &extra,
                    "",
                )
            };
            out.extend_from_slice(&bytes);
            c.sent_at = Instant::now();
            calls.insert(call_id, c);
        }
    }
}

/// One watcher connection: subscribes to its share of presentities and answers NOTIFYs,
/// measuring PUBLISH → NOTIFY latency from the note, until `deadline`.
async fn watchers(
    args: Arc<Args>,
    stats: Arc<Stats>,
    users: Vec<String>,
    epoch: Instant,
    deadline: Instant,
    held: Arc<AtomicU64>,
    contact: Option<SocketAddr>,
) -> std::io::Result<()> {
    let mut stream = TcpStream::connect(args.server).await?;
    stream.set_nodelay(true)?;
    let local = stream.local_addr()?;
    let contact = contact.unwrap_or(local);
    let mut out = Vec::new();
    for user in &users {
        let extra = format!(
            "Event: {}\r\nExpires: 3600\r\nContact: <sip:w@{contact};transport=tcp>\r\n",
            args.event
        );
        out.extend_from_slice(&request(
            "SUBSCRIBE",
            user,
            local,
            &format!("w{}", next_id()),
            1,
            ("w", None),
            &extra,
            "",
        ));
        if out.len() > 32_768 {
            stream.write_all(&out).await?;
            out.clear();
        }
    }
    let mut buf = BytesMut::with_capacity(65536);
    let mut chunk = vec![0u8; 65536];
    loop {
        if !out.is_empty() {
            stream.write_all(&out).await?;
            out.clear();
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Ok(());
        }
        let n = match tokio::time::timeout(left, stream.read(&mut chunk)).await {
            Ok(r) => r?,
            Err(_) => return Ok(()),
        };
        if n == 0 {
            return Ok(());
        }
        buf.extend_from_slice(&chunk[..n]);
        while let Some(m) = take(&mut buf) {
            if m.is_request() {
                out.extend_from_slice(&m.ok());
                stats.notifies.fetch_add(1, Ordering::Relaxed);
                let sent = sent_us(&String::from_utf8_lossy(&m.body));
                if let Some(sent_us) = sent {
                    let now_us = epoch.elapsed().as_micros() as u64;
                    if let Ok(mut l) = stats.latencies_us.lock() {
                        l.push(now_us.saturating_sub(sent_us).min(u64::from(u32::MAX)) as u32);
                    }
                }
            } else if m.status() == 200 {
                held.fetch_add(1, Ordering::Relaxed);
            } else {
                stats.failures.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
}

/// Publishes `rate` changes per second round-robin over the presentities until `deadline`.
async fn publisher(
    args: Arc<Args>,
    stats: Arc<Stats>,
    users: Vec<String>,
    epoch: Instant,
    deadline: Instant,
) -> std::io::Result<()> {
    let mut stream = TcpStream::connect(args.server).await?;
    stream.set_nodelay(true)?;
    let local = stream.local_addr()?;
    let mut etags: HashMap<String, String> = HashMap::new();
    let mut pending: HashMap<String, String> = HashMap::new(); // call-id -> user
    let mut buf = BytesMut::new();
    let mut chunk = vec![0u8; 65536];
    let tick = Duration::from_millis(10);
    let per_tick = (args.rate as f64 * tick.as_secs_f64()).max(1.0) as usize;
    let mut next = 0usize;
    let mut interval = tokio::time::interval(tick);
    while Instant::now() < deadline {
        tokio::select! {
            _ = interval.tick() => {
                let mut out = Vec::new();
                for _ in 0..per_tick {
                    let user = &users[next % users.len()];
                    next += 1;
                    if pending.values().any(|u| u == user) { continue; }
                    let note = format!("at{}", epoch.elapsed().as_micros());
                    let call_id = format!("p{}", next_id());
                    let (event, content_type, body) = if args.event == "dialog" {
                        ("dialog", "application/dialog-info+xml", dialog_info(user, &note))
                    } else {
                        ("presence", "application/pidf+xml", pidf(user, &note))
                    };
                    let if_match = etags.get(user).map(|e| format!("SIP-If-Match: {e}\r\n")).unwrap_or_default();
                    let extra = format!("Event: {event}\r\nExpires: 600\r\n{if_match}Content-Type: {content_type}\r\n");
                    out.extend_from_slice(&request("PUBLISH", user, local, &call_id, 1, ("p", None), &extra, &body));
                    pending.insert(call_id, user.clone());
                }
                stream.write_all(&out).await?;
            }
            r = stream.read(&mut chunk) => {
                let n = r?;
                if n == 0 { return Ok(()); }
                buf.extend_from_slice(&chunk[..n]);
                while let Some(m) = take(&mut buf) {
                    let Some(user) = m.header("Call-ID").and_then(|c| pending.remove(c)) else { continue };
                    stats.transactions.fetch_add(1, Ordering::Relaxed);
                    match m.header("SIP-ETag") {
                        Some(e) if m.status() == 200 => { etags.insert(user, e.to_owned()); }
                        _ => { stats.failures.fetch_add(1, Ordering::Relaxed); etags.remove(&user); }
                    }
                }
            }
        }
    }
    Ok(())
}

/// NOTIFYs received on connections the server opened to us (recover mode).
#[derive(Default)]
struct Recovered {
    count: AtomicU64,
    first_ms: AtomicU64,
    last_ms: AtomicU64,
}

fn unix_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

async fn accept_notifies(listener: tokio::net::TcpListener, rec: Arc<Recovered>) {
    while let Ok((stream, _)) = listener.accept().await {
        let rec = rec.clone();
        tokio::spawn(async move {
            let mut stream = stream;
            let _ = stream.set_nodelay(true);
            let mut buf = BytesMut::new();
            let mut chunk = vec![0u8; 65536];
            loop {
                let n = match stream.read(&mut chunk).await {
                    Ok(0) | Err(_) => return,
                    Ok(n) => n,
                };
                buf.extend_from_slice(&chunk[..n]);
                let mut out = Vec::new();
                while let Some(m) = take(&mut buf) {
                    if m.is_request() {
                        out.extend_from_slice(&m.ok());
                        let now = unix_ms();
                        if rec.count.fetch_add(1, Ordering::Relaxed) == 0 {
                            rec.first_ms.store(now, Ordering::Relaxed);
                        }
                        rec.last_ms.store(now, Ordering::Relaxed);
                    }
                }
                if stream.write_all(&out).await.is_err() {
                    return;
                }
            }
        });
    }
}

fn percentile(sorted: &[u32], p: f64) -> u32 {
    if sorted.is_empty() {
        return 0;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

async fn run(args: Args) -> Result<String, String> {
    let args = Arc::new(args);
    let stats = Arc::new(Stats::default());
    let started = Instant::now();
    let deadline = started + Duration::from_secs(args.seconds);
    let mut tasks = Vec::new();
    let recovered = Arc::new(Recovered::default());
    match args.mode.as_str() {
        "publish" | "subscribe" => {
            for c in 0..args.connections {
                tasks.push(tokio::spawn(cycles(
                    args.clone(),
                    stats.clone(),
                    c,
                    deadline,
                )));
            }
        }
        "fanout" | "hold" | "recover" => {
            // recover: the Contact of every subscription is a listener of ours, so NOTIFYs
            // sent after a server restart (when the subscribing connections are gone) reach us
            // on connections the server opens; their arrival times are the recovery figures.
            let contact = if args.mode == "recover" {
                let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
                    .await
                    .map_err(|e| e.to_string())?;
                let addr = listener.local_addr().map_err(|e| e.to_string())?;
                tokio::spawn(accept_notifies(listener, recovered.clone()));
                Some(addr)
            } else {
                None
            };
            let users: Vec<String> = if args.mode != "fanout" {
                (0..args.subscriptions)
                    .map(|i| format!("held{}", i % 1000))
                    .collect()
            } else {
                (0..args.presentities)
                    .flat_map(|p| std::iter::repeat_n(format!("fan{p}"), args.watchers))
                    .collect()
            };
            let held = Arc::new(AtomicU64::new(0));
            let chunk = users.len().div_ceil(args.connections);
            let settle = Duration::from_secs(if args.mode == "fanout" { 2 } else { 0 });
            for part in users.chunks(chunk.max(1)) {
                tasks.push(tokio::spawn(watchers(
                    args.clone(),
                    stats.clone(),
                    part.to_vec(),
                    started,
                    deadline + settle,
                    held.clone(),
                    contact,
                )));
            }
            let want = users.len() as u64;
            let wait_until = Instant::now() + Duration::from_secs(120);
            while held.load(Ordering::Relaxed) < want && Instant::now() < wait_until {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            println!("held {}", held.load(Ordering::Relaxed));
            if args.mode == "recover" {
                // Wait (bounded by --seconds) for every subscription's recovered NOTIFY.
                let want = args.subscriptions as u64;
                while recovered.count.load(Ordering::Relaxed) < want && Instant::now() < deadline {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                for t in tasks {
                    t.abort();
                }
                let r = &recovered;
                return Ok(format!(
                    "mode=recover subscriptions={} recovered={} first_unix_ms={} all_unix_ms={}",
                    args.subscriptions,
                    r.count.load(Ordering::Relaxed),
                    r.first_ms.load(Ordering::Relaxed),
                    r.last_ms.load(Ordering::Relaxed),
                ));
            }
            if args.mode == "fanout" {
                // Measure only the changes: forget the initial NOTIFYs.
                tokio::time::sleep(Duration::from_millis(500)).await;
                stats.notifies.store(0, Ordering::Relaxed);
                if let Ok(mut l) = stats.latencies_us.lock() {
                    l.clear();
                }
                let pubs: Vec<String> = (0..args.presentities).map(|p| format!("fan{p}")).collect();
                let t0 = Instant::now();
                let pub_deadline = t0 + Duration::from_secs(args.seconds);
                publisher(args.clone(), stats.clone(), pubs, started, pub_deadline)
                    .await
                    .map_err(|e| e.to_string())?;
                tokio::time::sleep(settle).await;
                let secs = t0.elapsed().as_secs_f64();
                let mut l = stats.latencies_us.lock().map_err(|_| "lock")?.clone();
                l.sort_unstable();
                for t in tasks {
                    t.abort();
                }
                return Ok(format!(
                    "mode=fanout subscriptions={} publishes={} notifies={} seconds={secs:.2} notify_rate={:.0} p50_us={} p99_us={} failures={}",
                    users.len(), stats.transactions.load(Ordering::Relaxed), stats.notifies.load(Ordering::Relaxed),
                    stats.notifies.load(Ordering::Relaxed) as f64 / (secs - settle.as_secs_f64()).max(0.001),
                    percentile(&l, 0.5), percentile(&l, 0.99), stats.failures.load(Ordering::Relaxed)
                ));
            }
        }
        "phone-list" => return phone_lists(&args).await.map_err(|e| e.to_string()),
        other => {
            return Err(format!(
                "unknown mode {other} (publish, subscribe, fanout, hold, recover, phone-list)"
            ))
        }
    }
    for t in tasks {
        match t.await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => return Err(format!("connection failed: {e}")),
            Err(e) => return Err(format!("task failed: {e}")),
        }
    }
    let secs = started.elapsed().as_secs_f64();
    let mut l = stats.latencies_us.lock().map_err(|_| "lock")?.clone();
    l.sort_unstable();
    let tx = stats.transactions.load(Ordering::Relaxed);
    Ok(format!(
        "mode={} transactions={tx} seconds={secs:.2} rate={:.0} p50_us={} p99_us={} notifies={} failures={}",
        args.mode, tx as f64 / secs, percentile(&l, 0.5), percentile(&l, 0.99),
        stats.notifies.load(Ordering::Relaxed), stats.failures.load(Ordering::Relaxed)
    ))
}

/// Reads from `stream` into `buf` until `done` is true of a message, answering every request
/// (NOTIFY) with 200 and giving `done` every message; fails after 30 s.
async fn read_until(
    stream: &mut TcpStream,
    buf: &mut BytesMut,
    mut done: impl FnMut(&Msg) -> bool,
) -> std::io::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        while let Some(m) = take(buf) {
            if m.is_request() {
                stream.write_all(&m.ok()).await?;
            }
            if done(&m) {
                return Ok(());
            }
        }
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, stream.read_buf(buf)).await {
            Ok(Ok(0)) => return Err(std::io::ErrorKind::UnexpectedEof.into()),
            Ok(Ok(_)) => {}
            Ok(Err(e)) => return Err(e),
            Err(_) => return Err(std::io::ErrorKind::TimedOut.into()),
        }
    }
}

/// The `phone-list` mode.
async fn phone_lists(args: &Args) -> std::io::Result<String> {
    let mut stream = TcpStream::connect(args.server).await?;
    let local = stream.local_addr()?;
    let mut buf = BytesMut::with_capacity(1 << 20);
    let mut times_us = Vec::new();
    let mut fewest_matched = usize::MAX;
    for k in 0..args.lists {
        let mut body = String::from(
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<resource-lists \
             xmlns=\"urn:ietf:params:xml:ns:resource-lists\"><list>\n",
        );
        for i in k * args.members..(k + 1) * args.members {
            body.push_str(&format!(
                "<entry uri=\"sip:+3361{i:07}@example.org;user=phone\"/>\n"
            ));
        }
        body.push_str("</list></resource-lists>\n");
        let call_id = format!("phone-list-{k}-{}", next_id());
        let tag = format!("pl{k}");
        let extra = format!(
            "Event: presence\r\nSupported: eventlist\r\nRequire: recipient-list-subscribe\r\n\
             Content-Disposition: recipient-list\r\n\
             Accept: multipart/related, application/rlmi+xml, application/pidf+xml\r\n\
             Contact: <sip:load@{local};transport=tcp>\r\nExpires: 600\r\n\
             Content-Type: application/resource-lists+xml\r\n"
        );
        // The list's SUBSCRIBE (CSeq 1) and its unsubscribe (CSeq 2, in the dialog).
        let subscribe = |cseq: u32, to_tag: Option<&str>, extra: &str, body: &str| {
            request(
                "SUBSCRIBE",
                "friends",
                local,
                &call_id,
                cseq,
                (&tag, to_tag),
                extra,
                body,
            )
        };
        let sent = Instant::now();
        stream.write_all(&subscribe(1, None, &extra, &body)).await?;
        let (mut resources, mut matched) = (0usize, 0usize);
        let mut to_tag = String::new();
        read_until(&mut stream, &mut buf, |m| {
            if m.header("Call-ID") != Some(call_id.as_str()) {
                return false; // the end of the list before
            }
            if !m.is_request() && m.status() == 200 {
                to_tag = m.param_of_to_tag();
            }
            if m.start.starts_with("NOTIFY ") {
                let text = String::from_utf8_lossy(&m.body);
                resources += text.matches("<resource ").count();
                matched += text.matches("<instance ").count();
            }
            resources >= args.members
        })
        .await?;
        times_us.push(sent.elapsed().as_micros().min(u128::from(u32::MAX)) as u32);
        fewest_matched = fewest_matched.min(matched);
        let extra = format!(
            "Event: presence\r\nContact: <sip:load@{local};transport=tcp>\r\nExpires: 0\r\n"
        );
        stream
            .write_all(&subscribe(2, Some(&to_tag), &extra, ""))
            .await?;
        read_until(&mut stream, &mut buf, |m| {
            m.header("Call-ID") == Some(call_id.as_str())
                && m.header("Subscription-State")
                    .is_some_and(|s| s.starts_with("terminated"))
        })
        .await?;
    }
    times_us.sort_unstable();
    Ok(format!(
        "mode=phone-list lists={} members={} p50_ms={:.1} max_ms={:.1} fewest_matched={}",
        args.lists,
        args.members,
        f64::from(percentile(&times_us, 0.5)) / 1000.0,
        f64::from(percentile(&times_us, 1.0)) / 1000.0,
        if fewest_matched == usize::MAX {
            0
        } else {
            fewest_matched
        },
    ))
}

fn main() -> std::process::ExitCode {
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("presenced-load: {e}");
            return std::process::ExitCode::from(2);
        }
    };
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("presenced-load: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(args)) {
        Ok(line) => {
            println!("{line}");
            std::process::ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("presenced-load: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}
