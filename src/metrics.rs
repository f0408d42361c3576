//! Metrics: the counters, gauges and histograms presenced keeps about itself, exposed by the
//! HTTP side in the Prometheus text format.
//!
//! Owns: one process-wide registry and its metrics, every name `presenced_`-prefixed, every
//! label from a fixed set of values (methods, status classes, event packages, causes; never a
//! user's URI), so that cardinality stays bounded whatever the traffic. Modules record through
//! [`metrics()`]; a recording is an atomic add, with no lock on the SIP thread. Must not: hold
//! anything else, or do I/O.

use std::sync::atomic::AtomicU64;
use std::sync::LazyLock;

use prometheus_client::encoding::prometheus_text;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::{Registry, Unit};

/// One label, its value one of a fixed set.
pub type Label = [(&'static str, &'static str); 1];
/// Two labels, their values each one of a fixed set.
pub type Labels = [(&'static str, &'static str); 2];

/// Latency buckets from 100 µs to about 6.5 s (doubling).
fn latency() -> Histogram {
    Histogram::new(exponential_buckets(0.0001, 2.0, 17))
}

/// Every metric.
pub struct Metrics {
    registry: Registry,
    /// SIP requests received, by method (`other` for extension methods).
    pub sip_requests: Family<Label, Counter>,
    /// SIP responses sent, by status class (`1xx` … `6xx`).
    pub sip_responses: Family<Label, Counter>,
    /// NOTIFYs sent, by event package.
    pub notifies_sent: Family<Label, Counter>,
    /// NOTIFYs that failed, by event package and cause (`timeout`, `481`, `status`,
    /// `transport`).
    pub notifies_failed: Family<Labels, Counter>,
    /// Subscriptions held, by event package and kind (`plain`, `list`).
    pub subscriptions: Family<Labels, Gauge>,
    /// Live publications, by event package.
    pub publications: Family<Label, Gauge>,
    /// Presentity actors alive.
    pub presentities: Gauge,
    /// Registrar bindings.
    pub bindings: Gauge,
    /// Open TCP connections.
    pub tcp_connections: Gauge,
    /// Time a group commit takes, seconds.
    pub store_commit: Histogram,
    /// Changes waiting for the next group commit.
    pub store_queue_depth: Gauge,
    /// 1 while the store commits, 0 during an outage.
    pub store_up: Gauge,
    /// From the PUBLISH that changed a resource being received (its commit included), or
    /// another change (a registration, an expiry) being made, to each NOTIFY it causes
    /// leaving, by event package.
    pub change_to_notify: Family<Label, Histogram, fn() -> Histogram>,
    /// How long the last start-up took to restore the stored state, seconds.
    pub restore_seconds: Gauge<f64, AtomicU64>,
    /// 1 once the stored state is restored.
    pub restored: Gauge,
}

impl Metrics {
    fn new() -> Self {
        let mut registry = Registry::with_prefix("presenced");
        let m = Self {
            sip_requests: Family::default(),
            sip_responses: Family::default(),
            notifies_sent: Family::default(),
            notifies_failed: Family::default(),
            subscriptions: Family::default(),
            publications: Family::default(),
            presentities: Gauge::default(),
            bindings: Gauge::default(),
            tcp_connections: Gauge::default(),
            store_commit: latency(),
            store_queue_depth: Gauge::default(),
            store_up: Gauge::default(),
            change_to_notify: Family::new_with_constructor(latency),
            restore_seconds: Gauge::default(),
            restored: Gauge::default(),
            registry: Registry::default(),
        };
        m.store_up.set(1);
        registry.register(
            "sip_requests",
            "SIP requests received, by method",
            m.sip_requests.clone(),
        );
        registry.register(
            "sip_responses",
            "SIP responses sent, by status class",
            m.sip_responses.clone(),
        );
        registry.register(
            "notifies_sent",
            "NOTIFY requests sent, by event package",
            m.notifies_sent.clone(),
        );
        registry.register(
            "notifies_failed",
            "NOTIFY requests that failed, by event package and cause",
            m.notifies_failed.clone(),
        );
        registry.register(
            "subscriptions",
            "Subscriptions held, by event package and kind",
            m.subscriptions.clone(),
        );
        registry.register(
            "publications",
            "Live publications, by event package",
            m.publications.clone(),
        );
        registry.register(
            "presentities",
            "Presentities in memory",
            m.presentities.clone(),
        );
        registry.register(
            "registrar_bindings",
            "Registrar bindings",
            m.bindings.clone(),
        );
        registry.register(
            "tcp_connections",
            "Open SIP TCP connections",
            m.tcp_connections.clone(),
        );
        registry.register_with_unit(
            "store_commit",
            "Duration of a group commit",
            Unit::Seconds,
            m.store_commit.clone(),
        );
        registry.register(
            "store_queue_depth",
            "Changes waiting for the next group commit",
            m.store_queue_depth.clone(),
        );
        registry.register(
            "store_up",
            "1 while the store commits, 0 during an outage",
            m.store_up.clone(),
        );
        registry.register_with_unit(
            "change_to_notify",
            "From a PUBLISH received (or another state change) to each NOTIFY it causes, by event package",
            Unit::Seconds,
            m.change_to_notify.clone(),
        );
        registry.register_with_unit(
            "restore",
            "Duration of the last restore of the stored state",
            Unit::Seconds,
            m.restore_seconds.clone(),
        );
        registry.register(
            "restored",
            "1 once the stored state is restored",
            m.restored.clone(),
        );
        Self { registry, ..m }
    }
}

static METRICS: LazyLock<Metrics> = LazyLock::new(Metrics::new);

/// The process's metrics.
pub fn metrics() -> &'static Metrics {
    &METRICS
}

/// Every metric in the Prometheus text format (version 0.0.4).
pub fn render() -> Result<String, std::fmt::Error> {
    let mut out = String::with_capacity(8192);
    prometheus_text::encode(&mut out, &metrics().registry)?;
    Ok(out)
}

/// The class label of a status code: `2xx` for 200.
pub fn status_class(status: u16) -> &'static str {
    match status / 100 {
        1 => "1xx",
        2 => "2xx",
        3 => "3xx",
        4 => "4xx",
        5 => "5xx",
        _ => "6xx",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_prefixed_and_labels_come_from_fixed_sets() {
        metrics()
            .sip_requests
            .get_or_create(&[("method", "OPTIONS")])
            .inc();
        metrics()
            .change_to_notify
            .get_or_create(&[("package", "dialog")])
            .observe(0.002);
        let text = render().unwrap();
        assert!(
            text.contains("presenced_sip_requests_total{method=\"OPTIONS\"}"),
            "{text}"
        );
        assert!(
            text.contains("presenced_change_to_notify_seconds_bucket{"),
            "{text}"
        );
        assert!(text.contains("presenced_store_up 1"), "{text}");
        for line in text.lines().filter(|l| !l.starts_with('#')) {
            assert!(line.starts_with("presenced_"), "{line}");
        }
        assert_eq!(status_class(487), "4xx");
    }
}
