//! Smoke runs of the SIPp scenarios in scripts/sipp against a freshly started server: every
//! scenario, over UDP and TCP, a few calls at a low rate. A check that the scenarios still
//! work, not a benchmark (scripts/bench.sh is the benchmark).

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};

use common::*;

fn sipp_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("scripts/sipp")
}

/// A local port for SIPp's own socket: SIPp's default (5060) would collide between the
/// instances that tests run at once.
fn free_port() -> u16 {
    let tcp = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    tcp.local_addr().unwrap().port()
}

/// The SIPp command for one scenario; runs in `workdir` so its log files stay out of the repo.
fn sipp(
    server: std::net::SocketAddr,
    transport: &str,
    scenario: &str,
    inf: &Path,
    calls: u32,
    workdir: &Path,
) -> Command {
    let mut cmd = Command::new("sipp");
    cmd.current_dir(workdir)
        .arg(server.to_string())
        .args([
            "-t",
            transport,
            "-i",
            "127.0.0.1",
            "-p",
            &free_port().to_string(),
        ])
        .arg("-sf")
        .arg(sipp_dir().join(scenario))
        .arg("-inf")
        .arg(inf)
        .args(["-m", &calls.to_string(), "-r", "20", "-l", "10"])
        .args(["-timeout", "30s", "-timeout_error", "-nostdin"])
        .args(["-trace_err", "-error_file"])
        .arg(workdir.join(format!("{scenario}-{transport}-errors.log")))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    cmd
}

fn spawn(mut cmd: Command) -> Child {
    cmd.spawn().unwrap_or_else(|e| {
        panic!("cannot run sipp ({e}); install it: apt-get install -y sip-tester")
    })
}

fn assert_success(what: &str, out: Output, workdir: &Path) {
    if !out.status.success() {
        let errors: String = std::fs::read_dir(workdir)
            .into_iter()
            .flatten()
            .flatten()
            .filter(|e| e.file_name().to_string_lossy().ends_with("errors.log"))
            .map(|e| std::fs::read_to_string(e.path()).unwrap_or_default())
            .collect();
        panic!(
            "{what}: sipp exited with {:?}\n{}\n{}\n{errors}",
            out.status.code(),
            String::from_utf8_lossy(&out.stdout)
                .lines()
                .filter(|l| l.contains("call") || l.contains("<-") || l.contains("->"))
                .collect::<Vec<_>>()
                .join("\n"),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

/// Generates injection files with the repository's generator.
fn csvs(n: u32, w: u32, dir: &Path) {
    let status = Command::new("bash")
        .arg(sipp_dir().join("gen_csv.sh"))
        .args([n.to_string(), w.to_string(), "example.org".into()])
        .arg(dir)
        .status()
        .unwrap();
    assert!(status.success());
}

fn run_single(scenario: &str) -> TestResult {
    let server = TestServer::start();
    let dir = tempfile::tempdir()?;
    csvs(4, 1, dir.path());
    let inf = dir.path().join("presentities.csv");
    for (transport, addr) in [("u1", server.udp), ("t1", server.tcp)] {
        let child = spawn(sipp(addr, transport, scenario, &inf, 8, dir.path()));
        assert_success(
            &format!("{scenario} over {transport}"),
            child.wait_with_output()?,
            dir.path(),
        );
    }
    Ok(())
}

#[test]
fn publish_scenario_passes_over_udp_and_tcp() -> TestResult {
    run_single("publish.xml")
}

#[test]
fn subscribe_scenario_passes_over_udp_and_tcp() -> TestResult {
    run_single("subscribe.xml")
}

#[test]
fn register_scenario_passes_over_udp_and_tcp() -> TestResult {
    run_single("register.xml")
}

#[test]
fn message_summary_publish_scenario_passes_over_udp_and_tcp() -> TestResult {
    run_single("mwi_publish.xml")
}

#[test]
fn message_summary_subscribe_scenario_passes_over_udp_and_tcp() -> TestResult {
    run_single("mwi_subscribe.xml")
}

#[test]
fn busy_lamp_publish_scenario_passes_over_udp_and_tcp() -> TestResult {
    run_single("blf_publish.xml")
}

#[test]
fn busy_lamp_subscribe_scenario_passes_over_udp_and_tcp() -> TestResult {
    run_single("blf_subscribe.xml")
}

/// Runs a watcher scenario and fanout_publish.xml at once against `target` (server, transport,
/// work folder); both must succeed. Returns the watchers' successful calls.
fn watchers_with_publishers(
    target: (std::net::SocketAddr, &str, &Path),
    watch_scenario: &str,
    watch_inf: &Path,
    watch_calls: u32,
    publish_inf: &Path,
    publish_calls: u32,
) -> Result<Option<u32>, Box<dyn std::error::Error>> {
    let (addr, transport, dir) = target;
    // Order does not matter: a watcher that subscribes after the final change sees it in its
    // first NOTIFY.
    let watchers = spawn(sipp(
        addr,
        transport,
        watch_scenario,
        watch_inf,
        watch_calls,
        dir,
    ));
    let publishers = spawn(sipp(
        addr,
        transport,
        "fanout_publish.xml",
        publish_inf,
        publish_calls,
        dir,
    ));
    // Both are waited for before either is judged, so no sipp outlives the test.
    let published = publishers.wait_with_output();
    let out = watchers.wait_with_output()?;
    assert_success(&format!("publishers over {transport}"), published?, dir);
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert_success(&format!("{watch_scenario} over {transport}"), out, dir);
    Ok(stdout
        .lines()
        .find(|l| l.contains("Successful call"))
        .and_then(|l| l.rsplit('|').next())
        .and_then(|v| v.trim().parse::<u32>().ok()))
}

#[test]
fn fanout_scenario_delivers_the_final_state_to_every_watcher_over_udp_and_tcp() -> TestResult {
    let dir = tempfile::tempdir()?;
    let (n, w) = (3, 4);
    csvs(n, w, dir.path());
    for transport in ["u1", "t1"] {
        // A fresh server per transport: the publications of one run must not leak into the
        // next (a stale "final" state would end the watchers early).
        let server = TestServer::start();
        let addr = if transport == "u1" {
            server.udp
        } else {
            server.tcp
        };
        let successful = watchers_with_publishers(
            (addr, transport, dir.path()),
            "fanout_watch.xml",
            &dir.path().join("watchers.csv"),
            n * w,
            &dir.path().join("presentities.csv"),
            n,
        )?;
        assert_eq!(successful, Some(n * w), "every watcher saw the final state");
    }
    Ok(())
}

#[test]
fn list_scenario_delivers_the_last_members_final_state_to_every_list_over_udp_and_tcp() -> TestResult
{
    let dir = tempfile::tempdir()?;
    let (members, lists) = (3, 4);
    csvs(members, 1, dir.path());
    let scenario = dir.path().join("list_watch.xml");
    let status = Command::new("bash")
        .arg(sipp_dir().join("gen_list_watch.sh"))
        .args([members.to_string(), "example.org".into()])
        .arg(&scenario)
        .status()?;
    assert!(status.success());
    for transport in ["u1", "t1"] {
        let server = TestServer::start();
        let addr = if transport == "u1" {
            server.udp
        } else {
            server.tcp
        };
        let inf = dir.path().join("presentities.csv");
        let successful = watchers_with_publishers(
            (addr, transport, dir.path()),
            scenario.to_str().unwrap(),
            &inf,
            lists,
            &inf,
            members,
        )?;
        assert_eq!(successful, Some(lists), "every list saw the final state");
    }
    Ok(())
}
