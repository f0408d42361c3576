//! SIP core over real sockets: transports, framing, transactions and the dispatcher's answers.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::net::UdpSocket;
use std::time::Duration;

use common::*;

#[test]
fn options_over_udp_is_answered_with_capabilities() -> TestResult {
    let server = TestServer::start();
    let mut ua = UdpUa::new(server.udp);
    ua.send(&ua.request("OPTIONS", "sip:example.org").build());
    let resp = ua.expect_status(200);
    assert!(resp.header("Allow").unwrap().contains("OPTIONS"));
    assert!(resp.header("Accept").is_some());
    assert!(resp.header("Supported").is_some());
    assert!(resp.header("Allow-Events").unwrap().contains("presence"));
    assert!(resp.param("To", "tag").is_some());
    // RFC 3581: the Via records where the request really came from.
    let via = resp.header("Via").unwrap();
    assert!(
        via.contains(&format!("rport={}", ua.local().port())),
        "{via}"
    );
    assert!(via.contains("received=127.0.0.1"), "{via}");
    Ok(())
}

#[test]
fn responses_echo_the_via_stack_as_received_but_for_the_top_elements_stamp() -> TestResult {
    let server = TestServer::start();
    let mut ua = TcpUa::connect(server.tcp);
    let lower = format!("{};branch=z9hG4bK", ua.local());
    // Sent-by is where the request came from, no rport: nothing to add, so every byte of the
    // Via line comes back (a lower-case transport included), the proxy's element too.
    let line = format!(
        "SIP/2.0/tcp {lower}{} , SIP/2.0/UDP  proxy.example.org;branch=z9hG4bKp;received=192.0.2.9",
        unique("v")
    );
    let mut req = ua.request("OPTIONS", "sip:example.org");
    req.via = line.clone();
    ua.send(&req.build());
    let resp = ua.expect_status(200);
    assert_eq!(resp.headers_named("Via"), vec![line.as_str()]);

    // rport and a sent-by elsewhere: the top element gets received and rport, the element
    // after it in the same line stays as it was.
    let branch = unique("w");
    let mut req = ua.request("OPTIONS", "sip:example.org");
    req.via = format!(
        "SIP/2.0/TCP 192.0.2.1:5060;branch=z9hG4bK{branch};rport, SIP/2.0/UDP  proxy.example.org;branch=z9hG4bKp"
    );
    ua.send(&req.build());
    let resp = ua.expect_status(200);
    let via = resp.headers_named("Via");
    assert_eq!(via.len(), 1, "{via:?}");
    let (top, rest) = via[0].split_once(", ").unwrap();
    assert!(top.starts_with("SIP/2.0/TCP 192.0.2.1:5060;"), "{top}");
    assert!(top.contains(&format!("branch=z9hG4bK{branch}")), "{top}");
    assert!(
        top.contains(&format!("rport={}", ua.local().port())),
        "{top}"
    );
    assert!(top.contains("received=127.0.0.1"), "{top}");
    assert_eq!(rest, "SIP/2.0/UDP  proxy.example.org;branch=z9hG4bKp");
    Ok(())
}

#[test]
fn options_over_tcp_is_answered_on_the_same_connection() -> TestResult {
    let server = TestServer::start();
    let mut ua = TcpUa::connect(server.tcp);
    let req = ua.request("OPTIONS", "sip:example.org").build();
    ua.send(&req);
    let resp = ua.expect_status(200);
    assert!(resp.header("Allow").unwrap().contains("OPTIONS"));
    Ok(())
}

#[test]
fn pipelined_requests_in_one_segment_are_all_answered_in_order() -> TestResult {
    let server = TestServer::start();
    let mut ua = TcpUa::connect(server.tcp);
    let mut batch = Vec::new();
    let mut ids = Vec::new();
    for i in 0..5 {
        let mut r = ua.request("OPTIONS", "sip:example.org");
        r.cseq = i + 1;
        ids.push(r.call_id.clone());
        batch.extend(r.build());
    }
    ua.send(&batch);
    for id in ids {
        let resp = ua.expect_status(200);
        assert_eq!(resp.header("Call-ID"), Some(id.as_str()));
    }
    Ok(())
}

#[test]
fn a_request_spread_over_many_segments_is_reassembled() -> TestResult {
    let server = TestServer::start();
    let mut ua = TcpUa::connect(server.tcp);
    let req = ua
        .request("OPTIONS", "sip:example.org")
        .body("text/plain", b"a body that arrives in pieces")
        .build();
    for chunk in req.chunks(7) {
        ua.send(chunk);
        std::thread::sleep(Duration::from_millis(2));
    }
    ua.expect_status(200);
    Ok(())
}

#[test]
fn double_crlf_keep_alive_gets_a_crlf_pong() -> TestResult {
    let server = TestServer::start();
    let mut ua = TcpUa::connect(server.tcp);
    ua.send(b"\r\n\r\n");
    assert_eq!(ua.expect_raw(2), b"\r\n");
    // The connection still carries SIP afterwards.
    let req = ua.request("OPTIONS", "sip:example.org").build();
    ua.send(&req);
    ua.expect_status(200);
    Ok(())
}

#[test]
fn udp_retransmission_gets_the_same_response_and_is_processed_once() -> TestResult {
    let server = TestServer::start();
    let mut ua = UdpUa::new(server.udp);
    let req = ua.request("OPTIONS", "sip:example.org").build();
    ua.send(&req);
    let first = ua.expect_status(200);
    ua.send(&req);
    let second = ua.expect_status(200);
    // A second processing would have drawn a new To-tag.
    assert_eq!(first.header("To"), second.header("To"));
    assert_eq!(first.body, second.body);
    assert_eq!(server.wait_log("response resent", 1), 1);
    Ok(())
}

#[test]
fn udp_response_without_rport_goes_to_the_via_sent_by_port() -> TestResult {
    let server = TestServer::start();
    let sender = UdpSocket::bind("127.0.0.1:0")?;
    let mut receiver = UdpUa::new(server.udp);
    let mut req = receiver.request("OPTIONS", "sip:example.org");
    req.via = format!(
        "SIP/2.0/UDP {};branch=z9hG4bK{}",
        receiver.local(),
        unique("b")
    );
    sender.send_to(&req.build(), server.udp)?;
    receiver.expect_status(200);
    Ok(())
}

fn expect_reject(server: &TestServer, req: RequestBuilder, status: u16) -> SipMsg {
    let mut ua = UdpUa::new(server.udp);
    let mut req = req;
    req.via = format!(
        "SIP/2.0/UDP {};branch=z9hG4bK{};rport",
        ua.local(),
        unique("b")
    );
    ua.send(&req.build());
    ua.expect_status(status)
}

fn options(server: &TestServer) -> RequestBuilder {
    RequestBuilder::new("OPTIONS", "sip:example.org", "UDP", server.udp)
}

#[test]
fn missing_mandatory_headers_get_400_naming_the_problem() -> TestResult {
    let server = TestServer::start();
    for (name, reason) in [
        ("To", "Missing To"),
        ("From", "Missing From"),
        ("Call-ID", "Missing Call-ID"),
        ("CSeq", "Missing CSeq"),
        ("Max-Forwards", "Missing Max-Forwards"),
    ] {
        let resp = expect_reject(&server, options(&server).without(name), 400);
        assert!(resp.start.contains(reason), "{name}: {}", resp.start);
    }
    let mut no_tag = options(&server);
    no_tag.from = "<sip:tester@example.org>".into();
    assert!(expect_reject(&server, no_tag, 400)
        .start
        .contains("Missing From Tag"));
    let mut mismatch = options(&server);
    mismatch.method = "OPTIONS".into();
    let bytes = String::from_utf8(mismatch.build())?.replace("CSeq: 1 OPTIONS", "CSeq: 1 INFO");
    let mut ua = UdpUa::new(server.udp);
    let bytes = bytes.replace(&server.udp.to_string(), &ua.local().to_string());
    ua.send(bytes.as_bytes());
    assert!(ua
        .expect_status(400)
        .start
        .contains("CSeq Method Does Not Match"));
    Ok(())
}

#[test]
fn via_without_branch_gets_400() -> TestResult {
    let server = TestServer::start();
    let mut ua = UdpUa::new(server.udp);
    let mut req = ua.request("OPTIONS", "sip:example.org");
    req.via = format!("SIP/2.0/UDP {};rport", ua.local());
    ua.send(&req.build());
    assert!(ua.expect_status(400).start.contains("Missing Via Branch"));
    Ok(())
}

#[test]
fn request_without_via_over_tcp_gets_400_on_the_connection() -> TestResult {
    let server = TestServer::start();
    let mut ua = TcpUa::connect(server.tcp);
    let req = ua
        .request("OPTIONS", "sip:example.org")
        .without("Via")
        .build();
    ua.send(&req);
    assert!(ua.expect_status(400).start.contains("Via"));
    Ok(())
}

#[test]
fn max_forwards_zero_gets_483() -> TestResult {
    let server = TestServer::start();
    let mut req = options(&server);
    req.max_forwards = Some(0);
    expect_reject(&server, req, 483);
    Ok(())
}

#[test]
fn unknown_require_gets_420_with_unsupported() -> TestResult {
    let server = TestServer::start();
    let resp = expect_reject(&server, options(&server).header("Require: foo, bar"), 420);
    assert_eq!(resp.header("Unsupported"), Some("foo, bar"));
    Ok(())
}

#[test]
fn unserved_and_extension_methods_get_405_with_allow() -> TestResult {
    let server = TestServer::start();
    for method in ["INVITE", "MESSAGE", "FROBNICATE"] {
        let mut req = options(&server);
        req.method = method.into();
        let resp = expect_reject(&server, req, 405);
        let allow = resp.header("Allow").unwrap();
        assert!(
            allow.contains("OPTIONS") && !allow.contains(method),
            "{allow}"
        );
    }
    Ok(())
}

#[test]
fn foreign_domain_gets_404_when_domains_are_set() -> TestResult {
    let server = TestServer::start_with("domains = [\"example.org\"]", "");
    let mut req = options(&server);
    req.uri = "sip:bob@elsewhere.net".into();
    expect_reject(&server, req, 404);
    // Served domains, case-insensitively, and the server's own address are fine.
    let mut req = options(&server);
    req.uri = "sip:bob@EXAMPLE.org".into();
    expect_reject(&server, req, 200);
    let mut req = options(&server);
    req.uri = format!("sip:{}", server.udp);
    expect_reject(&server, req, 200);
    Ok(())
}

#[test]
fn cancel_matching_nothing_gets_481_and_ack_gets_no_answer() -> TestResult {
    let server = TestServer::start();
    let mut cancel = options(&server);
    cancel.method = "CANCEL".into();
    expect_reject(&server, cancel, 481);
    let mut ua = UdpUa::new(server.udp);
    let mut ack = ua.request("ACK", "sip:example.org");
    ack.method = "ACK".into();
    ua.send(&ack.build());
    assert!(ua.recv(Duration::from_millis(300)).is_none());
    Ok(())
}

#[test]
fn oversize_udp_message_gets_513() -> TestResult {
    let server = TestServer::start_with("max_message_bytes = 2000", "");
    let big = vec![b'x'; 3000];
    let req = options(&server).body("text/plain", &big);
    expect_reject(&server, req, 513);
    Ok(())
}

#[test]
fn oversize_tcp_message_gets_513_and_the_connection_closes() -> TestResult {
    let server = TestServer::start_with("max_message_bytes = 2000", "");
    let mut ua = TcpUa::connect(server.tcp);
    let req = ua
        .request("OPTIONS", "sip:example.org")
        .body("text/plain", &vec![b'x'; 3000])
        .build();
    // Only the head: the server must refuse on Content-Length alone, without buffering.
    let head_end = req.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
    ua.send(&req[..head_end]);
    ua.expect_status(513);
    assert!(ua.closed_within(WAIT));
    Ok(())
}

#[test]
fn endless_tcp_head_is_cut_off_at_the_limit() -> TestResult {
    let server = TestServer::start_with("max_message_bytes = 2000", "");
    let mut ua = TcpUa::connect(server.tcp);
    let mut junk = b"OPTIONS sip:example.org SIP/2.0\r\n".to_vec();
    junk.extend(std::iter::repeat_n(b'a', 5000));
    let _ = ua.stream.set_write_timeout(Some(WAIT));
    let _ = std::io::Write::write_all(&mut ua.stream, &junk);
    assert!(ua.closed_within(WAIT));
    Ok(())
}

#[test]
fn tcp_message_without_content_length_gets_400_then_close() -> TestResult {
    let server = TestServer::start();
    let mut ua = TcpUa::connect(server.tcp);
    let req = ua
        .request("OPTIONS", "sip:example.org")
        .without("Content-Length")
        .build();
    ua.send(&req);
    assert!(ua.expect_status(400).start.contains("Content-Length"));
    assert!(ua.closed_within(WAIT));
    Ok(())
}

#[test]
fn garbage_over_udp_is_dropped_and_the_server_keeps_serving() -> TestResult {
    let server = TestServer::start();
    let mut ua = UdpUa::new(server.udp);
    ua.send(b"\x00\x01\x02 this is not SIP \xff\xfe\r\n\r\n");
    ua.send(b"OPTIONS sip:example.org SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:9;branch=z9hG4bKx\r\nbroken line\r\n\r\n");
    assert!(ua.recv(Duration::from_millis(300)).is_none());
    ua.send(&ua.request("OPTIONS", "sip:example.org").build());
    ua.expect_status(200);
    assert_eq!(server.wait_log("unparsable message", 2), 2);
    Ok(())
}

#[test]
fn malformed_request_uri_gets_400() -> TestResult {
    let server = TestServer::start();
    let mut req = options(&server);
    req.uri = "sip:bob@[::zz]".into();
    let resp = expect_reject(&server, req, 400);
    assert!(resp.start.contains("Request-URI"), "{}", resp.start);
    Ok(())
}

#[test]
fn a_connection_that_dies_mid_message_does_not_disturb_others() -> TestResult {
    let server = TestServer::start();
    let mut other = TcpUa::connect(server.tcp);
    {
        let mut dying = TcpUa::connect(server.tcp);
        let req = dying
            .request("OPTIONS", "sip:example.org")
            .body("text/plain", b"0123456789")
            .build();
        dying.send(&req[..req.len() - 5]);
    }
    let req = other.request("OPTIONS", "sip:example.org").build();
    other.send(&req);
    other.expect_status(200);
    let mut fresh = TcpUa::connect(server.tcp);
    let req = fresh.request("OPTIONS", "sip:example.org").build();
    fresh.send(&req);
    fresh.expect_status(200);
    Ok(())
}

#[test]
fn connections_beyond_the_limit_are_refused() -> TestResult {
    let server = TestServer::start_with("max_tcp_connections = 2", "");
    let mut a = TcpUa::connect(server.tcp);
    let mut b = TcpUa::connect(server.tcp);
    for ua in [&mut a, &mut b] {
        let req = ua.request("OPTIONS", "sip:example.org").build();
        ua.send(&req);
        ua.expect_status(200);
    }
    let mut c = TcpUa::connect(server.tcp);
    assert!(c.closed_within(WAIT), "third connection was not refused");
    drop(a);
    // Once one closes, a new one is admitted.
    let mut admitted = false;
    let deadline = std::time::Instant::now() + WAIT;
    while std::time::Instant::now() < deadline {
        // A refused connection closes at once; give the server a moment to see `a` go.
        std::thread::sleep(Duration::from_millis(20));
        let mut d = TcpUa::connect(server.tcp);
        let req = d.request("OPTIONS", "sip:example.org").build();
        let _ = std::io::Write::write_all(&mut d.stream, &req);
        if d.recv(Duration::from_millis(200))
            .is_some_and(|m| m.status() == 200)
        {
            admitted = true;
            break;
        }
    }
    assert!(admitted);
    Ok(())
}

#[test]
fn idle_connections_are_closed() -> TestResult {
    let server = TestServer::start_with("tcp_idle_timeout_s = 1", "");
    let mut ua = TcpUa::connect(server.tcp);
    let req = ua.request("OPTIONS", "sip:example.org").build();
    ua.send(&req);
    ua.expect_status(200);
    assert!(ua.closed_within(Duration::from_secs(4)));
    Ok(())
}

#[test]
fn compact_and_folded_headers_from_a_client_are_understood() -> TestResult {
    let server = TestServer::start();
    let mut ua = UdpUa::new(server.udp);
    let local = ua.local();
    let req = format!(
        "OPTIONS sip:example.org SIP/2.0\r\n\
         v : SIP/2.0/UDP {local}\r\n ;branch=z9hG4bKfold1;rport\r\n\
         f: <sip:a@example.org>;tag=77\r\n\
         t: <sip:example.org>\r\n\
         i: compact-{}\r\n\
         CSeq: 3 OPTIONS\r\n\
         Max-Forwards: 70\r\n\
         Contact: <sip:a@[::1]:5099>;+sip.instance=\"<urn:uuid:00000000-0000-0000-0000-000000000001>\"\r\n\
         l: 0\r\n\r\n",
        unique("c")
    );
    ua.send(req.as_bytes());
    let resp = ua.expect_status(200);
    assert_eq!(resp.header("CSeq"), Some("3 OPTIONS"));
    Ok(())
}

#[test]
fn sigterm_stops_the_server_with_status_zero_within_five_seconds() -> TestResult {
    let mut server = TestServer::start();
    let tcp = server.tcp;
    server.signal(libc::SIGTERM);
    let status = server
        .wait_exit(Duration::from_secs(5))
        .expect("did not exit in 5 s");
    assert_eq!(status.code(), Some(0));
    assert!(
        std::net::TcpStream::connect(tcp).is_err(),
        "listener still open"
    );
    Ok(())
}

#[test]
fn sigint_stops_the_server_too() -> TestResult {
    let mut server = TestServer::start();
    server.signal(libc::SIGINT);
    let status = server
        .wait_exit(Duration::from_secs(5))
        .expect("did not exit in 5 s");
    assert_eq!(status.code(), Some(0));
    Ok(())
}

fn run_binary(args: &[&str], env: &[(&str, &str)]) -> std::process::Output {
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_presenced"));
    cmd.args(args);
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().unwrap()
}

#[test]
fn bad_configs_exit_with_status_two_and_name_the_key() -> TestResult {
    let dir = tempfile::tempdir()?;
    let cases = [
        (
            "[sip]\nmax_message_bytes = \"big\"\n",
            "sip.max_message_bytes",
        ),
        ("[sip]\nno_such_key = 1\n", "no_such_key"),
        ("[sip]\nlisten = [\"udp:127.0.0.1\"]\n", "sip.listen[0]"),
        ("[http]\nlisten = [\"localhost\"]\n", "http.listen[0]"),
        (
            "[presence]\nmax_publications_per_resource = 0\n",
            "presence.max_publications_per_resource",
        ),
        (
            "[presence]\nmin_expires = 100\nmax_expires = 50\n",
            "presence.min_expires",
        ),
        ("[sip\n", "presenced.toml"),
        ("[affinity]\nsip_thread = [4096]\n", "affinity.sip_thread"),
        (
            "[affinity]\nother_threads = [0, 1024]\n",
            "affinity.other_threads",
        ),
        (
            "[presence]\nregistration_state = \"sometimes\"\n",
            "registration_state",
        ),
        (
            "[users]\nuser_query = \"SELECT 1 FROM a WHERE login = :login\"\n",
            "users.user_query",
        ),
        (
            "[users]\nphones_query = \"SELECT login AS username, domain, phone FROM a\"\n",
            "users.phones_query",
        ),
        (
            "[users]\ndb_url = \"memory://\"\nuser_query = \"SELECT 1 WHERE :user = 'a'\"\n",
            "users.db_url",
        ),
        ("[users]\nunknown = \"403\"\n", "unknown"),
        ("[users]\npool_size = 0\n", "users.pool_size"),
    ];
    for (text, key) in cases {
        let path = dir.path().join("presenced.toml");
        std::fs::write(&path, text)?;
        let out = run_binary(&["--config", path.to_str().unwrap()], &[]);
        assert_eq!(out.status.code(), Some(2), "{text}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(key), "{text}: {err}");
        assert!(!err.contains("panicked"), "{err}");
        assert_eq!(err.trim().lines().count(), 1, "one clear line: {err}");
    }
    let out = run_binary(&["--config", "/nonexistent/presenced.toml"], &[]);
    assert_eq!(out.status.code(), Some(2));
    Ok(())
}

#[test]
fn check_config_and_version_exit_zero_and_env_overrides_apply() -> TestResult {
    let config = concat!(env!("CARGO_MANIFEST_DIR"), "/config/presenced.toml");
    let out = run_binary(&["--config", config, "--check-config"], &[]);
    assert_eq!(out.status.code(), Some(0));
    let out = run_binary(&["--version"], &[]);
    assert_eq!(out.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&out.stdout).contains(env!("CARGO_PKG_VERSION")));
    let out = run_binary(
        &["--config", config, "--check-config"],
        &[("PRESENCED__SIP__MAX_MESSAGE_BYTES", "not-a-number")],
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("sip.max_message_bytes"));
    Ok(())
}

#[test]
fn env_override_changes_a_running_server() -> TestResult {
    // The override lowers the size limit, so a 3000-byte message now gets 513.
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("presenced.toml");
    std::fs::write(&path, base_config(dir.path(), "", ""))?;
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_presenced"))
        .args(["--config", path.to_str().unwrap()])
        .env("PRESENCED__SIP__MAX_MESSAGE_BYTES", "2000")
        .stderr(std::process::Stdio::piped())
        .spawn()?;
    let stderr = child.stderr.take().unwrap();
    let mut udp = None;
    // The port is logged when bound; requests are served once the server says it is running.
    for line in std::io::BufRead::lines(std::io::BufReader::new(stderr)).map_while(Result::ok) {
        if let Some(rest) = line.split("listening on udp:").nth(1) {
            udp = rest.trim().parse().ok();
        }
        if line.contains(" running") {
            break;
        }
    }
    let udp = udp.expect("server did not report its UDP port");
    let mut ua = UdpUa::new(udp);
    ua.send(
        &ua.request("OPTIONS", "sip:example.org")
            .body("text/plain", &[b'x'; 3000])
            .build(),
    );
    let got = ua.expect();
    let _ = child.kill();
    let _ = child.wait();
    assert_eq!(got.status(), 513);
    Ok(())
}

#[test]
fn a_response_matching_no_transaction_is_dropped() -> TestResult {
    let server = TestServer::start();
    let mut ua = UdpUa::new(server.udp);
    let stray = format!(
        "SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP {};branch=z9hG4bKnosuch\r\nFrom: <sip:a@b>;tag=1\r\n\
         To: <sip:a@b>;tag=2\r\nCall-ID: stray\r\nCSeq: 1 NOTIFY\r\nContent-Length: 0\r\n\r\n",
        server.udp
    );
    ua.send(stray.as_bytes());
    assert!(
        ua.recv(Duration::from_millis(300)).is_none(),
        "a response is never answered"
    );
    ua.send(&ua.request("OPTIONS", "sip:example.org").build());
    ua.expect_status(200);
    assert_eq!(server.wait_log("matches no transaction", 1), 1);
    Ok(())
}

#[test]
fn tcp_on_its_own_io_thread_serves_pipelined_requests_and_keeps_alive() -> TestResult {
    let server = TestServer::start_with("tcp_io_thread = true", "");
    let mut ua = TcpUa::connect(server.tcp);
    let mut batch = Vec::new();
    for i in 0..3 {
        let mut r = ua.request("OPTIONS", "sip:example.org");
        r.cseq = i + 1;
        batch.extend(r.build());
    }
    ua.send(&batch);
    for _ in 0..3 {
        ua.expect_status(200);
    }
    ua.send(b"\r\n\r\n");
    assert_eq!(ua.expect_raw(2), b"\r\n");
    Ok(())
}

/// `Cpus_allowed_list` of every thread of `pid`, the main thread first.
fn thread_cpus(pid: i32) -> Vec<(i32, String)> {
    let mut threads: Vec<(i32, String)> = std::fs::read_dir(format!("/proc/{pid}/task"))
        .unwrap()
        .map(|e| {
            let tid: i32 = e.unwrap().file_name().to_str().unwrap().parse().unwrap();
            let status = std::fs::read_to_string(format!("/proc/{pid}/task/{tid}/status")).unwrap();
            let cpus = status
                .lines()
                .find_map(|l| l.strip_prefix("Cpus_allowed_list:"))
                .unwrap()
                .trim()
                .to_owned();
            (tid, cpus)
        })
        .collect();
    threads.sort_by_key(|(tid, _)| (*tid != pid, *tid));
    threads
}

#[test]
fn the_sip_thread_and_every_other_thread_run_on_their_configured_cpus() -> TestResult {
    let allowed = presenced::affinity::allowed_cpus();
    let sip = allowed[0];
    // Two different CPUs where the machine lets this process have two.
    let other = *allowed.get(1).unwrap_or(&sip);
    let server = TestServer::start_with(
        "",
        &format!("[affinity]\nsip_thread = [{sip}]\nother_threads = [{other}]\n"),
    );
    let threads = thread_cpus(server.pid());
    assert!(
        threads.len() >= 2,
        "the store's thread at least: {threads:?}"
    );
    assert_eq!(threads[0], (server.pid(), sip.to_string()), "{threads:?}");
    for (tid, cpus) in &threads[1..] {
        assert_eq!(cpus, &other.to_string(), "thread {tid}: {threads:?}");
    }
    assert_eq!(
        server.log_count(&format!("affinity.sip_thread: pinned to CPUs [{sip}]")),
        1
    );
    // And it serves, writes included (the store's thread commits a PUBLISH).
    let mut ua = UdpUa::new(server.udp);
    ua.send(&ua.request("OPTIONS", "sip:example.org").build());
    ua.expect_status(200);
    let body = std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/pidf/liblinphone-away.xml"
    ))?;
    let publish = ua
        .request("PUBLISH", "sip:alice@example.org")
        .header("Event: presence")
        .header("Expires: 60")
        .body("application/pidf+xml", &body);
    ua.send(&publish.build());
    let ok = ua.expect_status(200);
    assert!(ok.header("SIP-ETag").is_some());
    Ok(())
}

#[test]
fn a_cpu_set_the_kernel_refuses_stops_the_start_with_status_two_naming_the_key() -> TestResult {
    // CPU 1023 is in range but online on no machine this runs on.
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("presenced.toml");
    std::fs::write(
        &path,
        base_config(dir.path(), "", "[affinity]\nsip_thread = [1023]\n"),
    )?;
    let out = run_binary(&["--config", path.to_str().unwrap()], &[]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    let errors: Vec<&str> = err.lines().filter(|l| l.contains("ERROR")).collect();
    assert_eq!(errors.len(), 1, "logged once: {err}");
    assert!(errors[0].contains("affinity.sip_thread"), "{err}");
    assert!(!err.contains("panicked"), "{err}");
    Ok(())
}
