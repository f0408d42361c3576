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
//! - [`registrar`]: REGISTER bindings, fed to presentities as messages.
//! - [`app`]: start-up and shutdown order.
//!
//! # Glossary (RFC terms, used exactly)
//! presentity, watcher, subscription, publication, entity-tag, notifier, resource list,
//! AOR (address of record), contact, binding, dialog, transaction.

pub mod app;
pub mod config;
pub mod presence;
pub mod registrar;
pub mod sip;

/// Completes on SIGINT or SIGTERM.
pub async fn shutdown_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let term = signal(SignalKind::terminate());
    let int = signal(SignalKind::interrupt());
    match (term, int) {
        (Ok(mut term), Ok(mut int)) => {
            tokio::select! {
                _ = term.recv() => {}
                _ = int.recv() => {}
            }
        }
        // Without signal handlers the process can still be killed; wait forever.
        _ => std::future::pending::<()>().await,
    }
}
