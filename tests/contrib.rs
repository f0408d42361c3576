//! The operator files in `contrib/`, checked by their tools and against the real server: the
//! Prometheus alert rules by `promtool check rules`, the Grafana dashboard as JSON, and every
//! metric the rules and the dashboard name exposed by the running server's `/metrics`; the
//! systemd unit's commands accepted by the binary.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::BTreeSet;
use std::process::Command;

use common::*;

fn contrib(rel: &str) -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("contrib")
        .join(rel)
}

/// The `presenced_…` names in `text`.
fn metric_names(text: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    let mut rest = text;
    while let Some(at) = rest.find("presenced_") {
        let tail = &rest[at..];
        let end = tail
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(tail.len());
        names.insert(tail[..end].to_owned());
        rest = &tail[end..];
    }
    names
}

/// The series names a metrics text exposes (histograms with their `_bucket`, `_sum`, `_count`).
fn exposed(metrics: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    for line in metrics.lines() {
        let Some(rest) = line.strip_prefix("# TYPE ") else {
            continue;
        };
        let (name, kind) = rest.split_once(' ').unwrap();
        if kind == "histogram" {
            for suffix in ["_bucket", "_sum", "_count"] {
                names.insert(format!("{name}{suffix}"));
            }
        } else {
            names.insert(name.to_owned());
        }
    }
    names
}

#[test]
fn alert_rules_and_dashboard_name_only_metrics_the_server_exposes() -> TestResult {
    let rules = contrib("prometheus/presenced-alerts.yml");
    let out = Command::new("promtool")
        .args(["check", "rules"])
        .arg(&rules)
        .output()
        .expect("promtool must be installed (Debian: prometheus)");
    assert!(
        out.status.success(),
        "promtool: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let dashboard_text = std::fs::read_to_string(contrib("grafana/presenced.json"))?;
    let dashboard: serde_json::Value = serde_json::from_str(&dashboard_text)?;
    let panels = dashboard["panels"].as_array().expect("panels");
    assert!(panels.len() >= 10, "{} panels", panels.len());
    let exprs: String = panels
        .iter()
        .flat_map(|p| p["targets"].as_array().into_iter().flatten())
        .filter_map(|t| t["expr"].as_str())
        .collect::<Vec<_>>()
        .join("\n");

    // Labelled series appear with their first event: a subscription, a publication, the
    // NOTIFY it causes (its latency), answered 481 (a failure).
    let server = TestServer::start_with("", "[presence]\nmin_expires = 1\n");
    let mut w = UdpUa::new(server.udp);
    subscribe(&mut w, "sip:carol@example.org", Some(600));
    let mut p = UdpUa::new(server.udp);
    let pidf = "<?xml version=\"1.0\"?><presence xmlns=\"urn:ietf:params:xml:ns:pidf\" \
                entity=\"sip:carol@example.org\"/>";
    p.send(
        &p.new_request("PUBLISH", "sip:carol@example.org")
            .header("Event: presence")
            .header("Expires: 600")
            .body("application/pidf+xml", pidf.as_bytes())
            .build(),
    );
    p.expect_status(200);
    let n = w.expect_request("NOTIFY");
    w.send(&answer(&n, 481));
    let deadline = std::time::Instant::now() + WAIT;
    let metrics = loop {
        let (status, _, metrics) = http_get(server.http.unwrap(), "/metrics");
        assert_eq!(status, 200);
        if metrics.contains("presenced_notifies_failed_total{")
            || std::time::Instant::now() > deadline
        {
            break metrics;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    };
    let served = exposed(&metrics);
    let named: BTreeSet<String> = metric_names(&exprs)
        .into_iter()
        .chain(metric_names(&std::fs::read_to_string(&rules)?))
        .collect();
    assert!(named.len() >= 10, "{named:?}");
    let unknown: Vec<&String> = named.iter().filter(|n| !served.contains(*n)).collect();
    assert!(
        unknown.is_empty(),
        "not exposed: {unknown:?}\nexposed: {served:?}"
    );
    Ok(())
}

#[test]
fn the_systemd_units_commands_are_the_binarys() -> TestResult {
    let unit = std::fs::read_to_string(contrib("systemd/presenced.service"))?;
    for key in ["ExecStartPre=", "ExecStart="] {
        let line = unit
            .lines()
            .find(|l| l.starts_with(key))
            .unwrap_or_else(|| panic!("no {key}"));
        let args: Vec<&str> = line[key.len()..].split_whitespace().skip(1).collect();
        assert!(args.contains(&"--config"), "{line}");
    }
    // What ExecStartPre runs, on the example config.
    let example = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("config/presenced.toml");
    let out = Command::new(env!("CARGO_BIN_EXE_presenced"))
        .arg("--config")
        .arg(example)
        .arg("--check-config")
        .output()?;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for hardening in [
        "NoNewPrivileges=yes",
        "ProtectSystem=strict",
        "DynamicUser=yes",
    ] {
        assert!(unit.contains(hardening), "{hardening}");
    }
    Ok(())
}
