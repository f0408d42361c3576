//! presenced: a SIP presence server.
//!
//! # Architecture
//!
//! ```text
//!  UDP socket ─► UdpTransport ─┐                       ┌─► handlers (Recipient<IncomingRequest>)
//!  TCP listener ─► TcpTransport ─► TcpConnection ─┴─► Dispatcher ─┤   registered at start-up
//!                                                    ▲   └─► dialog owners (RegisterDialog)
//!           Outbound bytes ◄── Transports ◄──────────┘ responses, client transactions
//! ```
//!
//! Transports cut bytes into messages and hand them to the [`sip::Dispatcher`], which matches
//! transactions and dialogs, validates, and routes by method. Rejections become responses in
//! the dispatcher only.
//!
//! # Modules
//! - [`config`]: typed settings, read once at start-up.
//! - [`sip`]: the SIP layer (façade over rsip, transports, transactions, dispatcher).
//! - [`presence`]: presentities, watchers, PUBLISH, PIDF and aggregation.
//! - [`events`]: the event packages beyond presence (dialog, message-summary, reg), on one
//!   package-independent machinery.
//! - [`http`]: the HTTP side: health checks, metrics and the admin API.
//! - [`inspect`]: what the admin API asks of the actors and has them do.
//! - [`metrics`]: the counters, gauges and histograms presenced keeps about itself.
//! - [`registrar`]: REGISTER bindings, fed to presentities as messages.
//! - [`rls`]: resource list subscriptions (RFC 4662): request-contained (RFC 5367) and
//!   server-known lists, one `Watcher<ListView>` per list subscription.
//! - [`store`]: persistence (diesel; SQLite or PostgreSQL), group commits, list and users
//!   lookups.
//! - [`xml`]: the XML reader and writer of every document (PIDF, RLMI, resource lists).
//! - [`app`]: start-up and shutdown order.
//! - [`affinity`]: the CPUs the SIP thread and the other threads may run on.
//! - [`awaiting`]: the futures a hub actor waits on, polled only when woken.
//!
//! # Glossary (RFC terms, used exactly)
//! presentity, watcher, subscription, publication, entity-tag, notifier, resource list,
//! AOR (address of record), contact, binding, dialog, transaction.

pub mod affinity;
pub mod app;
pub mod awaiting;
pub mod config;
pub mod events;
pub mod http;
pub mod inspect;
pub mod metrics;
pub mod presence;
pub mod registrar;
pub mod rls;
pub mod sip;
pub mod store;
pub mod xml;

/// Installs SIGINT and SIGTERM handlers at once (so a signal that arrives before the server
/// is waiting is not lost) and returns the future that completes on either. Must be called
/// inside the runtime.
pub fn shutdown_signal() -> std::io::Result<impl std::future::Future<Output = ()>> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    Ok(async move {
        tokio::select! {
            _ = term.recv() => {}
            _ = int.recv() => {}
        }
    })
}
