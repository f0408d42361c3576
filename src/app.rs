//! Start-up and shutdown order.
//!
//! Owns: binding the configured sockets, then starting, in order, the dispatcher's context,
//! the domain actors that register with it, and the transports; waiting for the shutdown
//! future; then stopping. The threads it starts inherit `affinity.other_threads`; the SIP
//! thread (this one) takes `affinity.sip_thread` once they are all started. Takes bound
//! sockets and a shutdown future so tests and embedders can run it on port 0 with their own
//! stop signal. Must not: make protocol decisions.

use std::future::Future;
use std::net::SocketAddr;

use actix::prelude::*;
use log::{info, warn};

use std::sync::{Arc, Mutex};

use crate::config::{ListenTransport, Settings, UnknownUser};
use crate::events::agent::RestoreEventPublications;
use crate::events::dialog::DialogPackage;
use crate::events::message_summary::MessageSummary;
use crate::events::reg::RegPackage;
use crate::events::source::AttachSource;
use crate::events::{EventAgent, EventPackage};
use crate::http::admin::AdminTargets;
use crate::presence::agent::UsersContext;
use crate::presence::agent::{prepare_recovered, RecoveredSubscription, RestorePublications};
use crate::presence::directory::{DirectorySettings, UserDirectory};
use crate::presence::document::PRESENCE_PACKAGE;
use crate::presence::formats::PresenceFormat;
use crate::presence::presentity::PresentitySettings;
use crate::presence::presentity::UsersUse;
use crate::presence::publication::PublishLimits;
use crate::presence::publication::PUBLISHED_TYPES;
use crate::presence::watcher::WatcherSettings;
use crate::presence::{PresenceAgent, PresenceConfig};
use crate::registrar::bindings::RestoreBindings;
use crate::registrar::{Registrar, RegistrarConfig};
use crate::rls::list::ListLimits;
use crate::rls::list_view::ListSettings;
use crate::rls::resource_lists::RESOURCE_LISTS_CONTENT_TYPE;
use crate::rls::subscribe_router::{RestoreListSubscriptions, SubscribeRouter};
use crate::sip::dispatcher::Ready;
use crate::sip::dispatcher::RegisterRoute;
use crate::sip::transport::tcp_connection::ConnectionSettings;
use crate::sip::transport::{TcpTransport, Transports, UdpTransport};
use crate::sip::Method;
use crate::sip::{Dispatcher, DispatcherSettings};
use crate::store::users::{UsersDb, UsersQueries};
use crate::store::{
    self, AnyConnection, Committer, ListQuery, ListResolver, LoadSnapshot, Persist, Snapshot,
    StoreError, StoreWorker, StreamSubscriptions, SubscriptionChunk,
};
use crate::xml::XmlLimits;

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// A socket could not be bound.
    #[error("cannot listen on {transport}:{addr}: {source}")]
    Bind {
        /// udp or tcp.
        transport: &'static str,
        /// The address.
        addr: SocketAddr,
        /// The OS error.
        source: std::io::Error,
    },
    /// The configuration is unusable.
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
    /// The database cannot be opened, migrated or read.
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
    /// A bound socket could not be handed to the runtime.
    #[error("socket setup failed: {0}")]
    Socket(#[from] std::io::Error),
}

/// Sockets bound before the runtime takes them.
#[derive(Debug, Default)]
pub struct BoundSockets {
    /// UDP sockets.
    pub udp: Vec<std::net::UdpSocket>,
    /// TCP listeners.
    pub tcp: Vec<std::net::TcpListener>,
    /// HTTP listeners.
    pub http: Vec<std::net::TcpListener>,
}

/// Checks what the settings name that other modules read: the database URLs (by scheme), the
/// operator's SQL (its named parameters) and the CPU sets. An error names the key, as
/// `Settings::load`'s do; `main` runs both before anything starts (and for `--check-config`).
pub fn check(settings: &Settings) -> Result<(), crate::config::ConfigError> {
    let invalid = |key: &str, problem: String| crate::config::ConfigError::Invalid {
        key: key.into(),
        problem,
    };
    store::Backend::from_url(&settings.store.url)
        .map_err(|e| invalid("store.url", e.to_string()))?;
    let l = &settings.rls;
    if !l.list_db_url.is_empty() {
        store::Backend::from_url(&l.list_db_url)
            .map_err(|e| invalid("rls.list_db_url", e.to_string()))?;
    }
    ListQuery::parse(&l.list_query).map_err(|e| invalid("rls.list_query", e.to_string()))?;
    let u = &settings.users;
    if u.enabled() {
        let (key, url) = if u.db_url.is_empty() {
            ("store.url", &settings.store.url)
        } else {
            ("users.db_url", &u.db_url)
        };
        store::users::UsersBackend::from_url(url).map_err(|e| invalid(key, e.to_string()))?;
    }
    UsersQueries::parse(u).map_err(|(key, e)| invalid(key, e))?;
    for (key, cpus) in settings.affinity.keyed() {
        crate::affinity::check(cpus).map_err(|e| invalid(key, e.to_string()))?;
    }
    Ok(())
}

/// Binds every `sip.listen` entry.
pub fn bind(settings: &Settings) -> Result<BoundSockets, StartError> {
    let mut sockets = BoundSockets::default();
    for listen in settings.sip.listen_addrs()? {
        let addr = listen.addr;
        match listen.transport {
            ListenTransport::Udp => {
                let s = std::net::UdpSocket::bind(addr).map_err(|source| StartError::Bind {
                    transport: "udp",
                    addr,
                    source,
                })?;
                s.set_nonblocking(true)?;
                sockets.udp.push(s);
            }
            ListenTransport::Tcp => {
                let s = std::net::TcpListener::bind(addr).map_err(|source| StartError::Bind {
                    transport: "tcp",
                    addr,
                    source,
                })?;
                s.set_nonblocking(true)?;
                sockets.tcp.push(s);
            }
        }
    }
    for addr in settings.http.listen_addrs()? {
        let s = std::net::TcpListener::bind(addr).map_err(|source| StartError::Bind {
            transport: "http",
            addr,
            source,
        })?;
        s.set_nonblocking(true)?;
        sockets.http.push(s);
    }
    Ok(sockets)
}

/// Starts the presence agent and the registrar and registers them with the dispatcher.
async fn start_presence(
    settings: &Settings,
    dispatcher: &Addr<Dispatcher>,
    store: Recipient<Persist>,
    snapshot: Snapshot,
    worker: Option<Addr<StoreWorker>>,
) -> Result<Restoring, StartError> {
    let p = &settings.presence;
    let config = PresenceConfig {
        subscribe_default: p.default_expires,
        subscribe_min: p.min_expires,
        subscribe_max: p.max_expires,
        publish: PublishLimits {
            default_expires: p.publish_default_expires,
            min_expires: p.publish_min_expires,
            max_expires: p.publish_max_expires,
            max_per_resource: p.max_publications_per_resource,
        },
        xml: XmlLimits {
            max_bytes: p.max_body_bytes,
            max_depth: p.max_xml_depth,
            ..XmlLimits::default()
        },
        presentity: PresentitySettings {
            closed_when_unknown: p.closed_when_unknown,
            retry_after: settings.store.retry_after_s,
            registration_state: p.registration_state,
            max_publications: p.max_publications_per_resource,
            users: UsersUse {
                long_term: !settings.users.user_query.trim().is_empty(),
                phones: !settings.users.phones_query.trim().is_empty(),
                first_wait: std::time::Duration::from_millis(settings.users.first_notify_wait_ms),
                ttl: std::time::Duration::from_secs(settings.users.cache_ttl_s),
            },
        },
        watcher: WatcherSettings {
            expires: (p.default_expires, p.min_expires, p.max_expires),
            keep_on_408: p.keep_subscription_on_408,
            retry_after: settings.store.retry_after_s,
            deflate_min_bytes: p.deflate_min_bytes,
        },
    };
    let (done, restored) = tokio::sync::oneshot::channel();
    let directory = start_user_directory(settings)?;
    // The event packages served from publications besides presence: one line each.
    let packages: Vec<Arc<dyn EventPackage>> = vec![
        Arc::new(DialogPackage),
        Arc::new(MessageSummary),
        Arc::new(RegPackage),
    ];
    let event_types: Vec<String> = packages
        .iter()
        .flat_map(|p| p.notify_types().iter().chain(p.publish_types()))
        .map(|t| (*t).to_owned())
        .collect();
    let event_names: Vec<String> = packages.iter().map(|p| p.name().to_owned()).collect();
    let events = EventAgent::new(
        config.clone(),
        packages.clone(),
        dispatcher.clone(),
        store.clone(),
    )
    .start();
    let agent = PresenceAgent::new(config.clone(), dispatcher.clone(), store.clone())
        .on_restored(done)
        .with_event_agent(events.clone().recipient())
        .with_users(UsersContext {
            directory: directory.clone(),
            unknown_is_404: settings.users.unknown == UnknownUser::NotFound,
            last_active: snapshot.activity,
        })
        .start();
    let r = &settings.registrar;
    let registrar = Registrar::new(
        RegistrarConfig {
            default_expires: r.default_expires,
            min_expires: r.min_expires,
            max_expires: r.max_expires,
            priority: r.priority,
            retry_after: settings.store.retry_after_s,
        },
        agent.clone(),
        store.clone(),
    )
    .with_reg_listener(events.clone().recipient())
    .start();
    events.do_send(AttachSource {
        package: RegPackage.name(),
        fetch: registrar.clone().recipient(),
    });
    // Recovery order: bindings (their tuples reach the presentities first), publications,
    // then subscriptions, so every recovered watcher's first NOTIFY carries the current state.
    // Waiting for the registrar also means its BindingsChanged are queued before the rest.
    let l = &settings.rls;
    let router = SubscribeRouter::new(
        config,
        ListSettings {
            min_notify_interval: std::time::Duration::from_millis(l.min_notify_interval_ms),
            max_notify_bytes: l.max_notify_bytes,
            limits: ListLimits {
                max_resources: l.max_resources,
                max_body_bytes: l.max_list_body_bytes,
                max_inflate_ratio: l.max_inflate_ratio,
            },
            retry_after: settings.store.retry_after_s,
            lookup_without_eventlist: l.lookup_without_eventlist,
        },
        l.linphone_compat,
        agent.clone(),
        dispatcher.clone(),
        store.clone(),
        start_list_resolver(settings)?,
    )
    .with_directory(directory)
    .with_event_packages(events.clone(), &packages)
    .start();
    let _ = registrar.send(RestoreBindings(snapshot.bindings)).await;
    // Each package's publications go to its agent.
    let (presence_pubs, event_pubs): (Vec<_>, Vec<_>) = snapshot
        .publications
        .into_iter()
        .partition(|p| p.event == PRESENCE_PACKAGE);
    agent.do_send(RestorePublications(presence_pubs));
    events.do_send(RestoreEventPublications(event_pubs));
    let _ = router
        .send(RestoreListSubscriptions(snapshot.list_subscriptions))
        .await;
    // The plain subscriptions come from the store's thread in chunks, read and parsed there
    // while this thread restores the chunks before them.
    let streaming = match worker {
        Some(worker) => Some(worker.send(StreamSubscriptions {
            prepare: prepare_recovered,
            to: agent.clone().recipient(),
        })),
        None => {
            agent.do_send(SubscriptionChunk {
                items: Vec::new(),
                last: true,
            });
            None
        }
    };
    dispatcher.do_send(RegisterRoute {
        method: Method::Publish,
        handler: events.clone().recipient(),
        events: event_names.clone(),
        accept: event_types.clone(),
        option_tags: Vec::new(),
    });
    // Every SUBSCRIBE passes the router: any package but reg can be a list (RFC 4662).
    dispatcher.do_send(RegisterRoute {
        method: Method::Subscribe,
        handler: router.recipient(),
        events: std::iter::once(PRESENCE_PACKAGE.to_owned())
            .chain(event_names)
            .collect(),
        accept: PresenceFormat::SERVED_TYPES
            .iter()
            .chain(&[RESOURCE_LISTS_CONTENT_TYPE])
            .map(|t| (*t).to_owned())
            .collect(),
        option_tags: vec!["eventlist".into(), "recipient-list-subscribe".into()],
    });
    dispatcher.do_send(RegisterRoute {
        method: Method::Publish,
        handler: agent.clone().recipient(),
        events: vec!["presence".into()],
        accept: PUBLISHED_TYPES.iter().map(|t| (*t).to_owned()).collect(),
        option_tags: Vec::new(),
    });
    dispatcher.do_send(RegisterRoute {
        method: Method::Register,
        handler: registrar.clone().recipient(),
        events: Vec::new(),
        accept: Vec::new(),
        option_tags: Vec::new(),
    });
    Ok(Restoring {
        restored,
        streaming,
        admin: AdminTargets {
            presence: agent,
            events,
            registrar,
        },
    })
}

/// The restore of the stored plain subscriptions, under way when the listeners open.
struct Restoring {
    /// Told once every stored subscription is restored.
    restored: tokio::sync::oneshot::Receiver<()>,
    /// The store's answer once it has read them all (none without a database).
    streaming: Option<actix::dev::Request<StoreWorker, StreamSubscriptions<RecoveredSubscription>>>,
    /// What the admin API asks.
    admin: AdminTargets,
}

/// Starts the actor running `rls.list_query`, on `rls.list_db_url` or else the store's
/// database; none when the query is empty or there is no database to run it on.
fn start_list_resolver(settings: &Settings) -> Result<Option<Addr<ListResolver>>, StartError> {
    let l = &settings.rls;
    let Some(query) =
        ListQuery::parse(&l.list_query).map_err(|e| crate::config::ConfigError::Invalid {
            key: "rls.list_query".into(),
            problem: e.to_string(),
        })?
    else {
        info!("rls: server-known lists off (rls.list_query is empty)");
        return Ok(None);
    };
    let url = if l.list_db_url.is_empty() {
        settings.store.url.clone()
    } else {
        l.list_db_url.clone()
    };
    if matches!(store::Backend::from_url(&url)?, store::Backend::Memory) {
        info!("rls: server-known lists off (no database: set rls.list_db_url)");
        return Ok(None);
    }
    let sqlite = store::SqliteOptions::of(&settings.store);
    let max = l.max_resources;
    Ok(Some(SyncArbiter::start(1, move || {
        ListResolver::new(url.clone(), sqlite, query.clone(), max)
    })))
}

/// Starts the users database's pool and the directory in front of it; none when no users
/// query is configured. The database is opened on first use, so a users database that is down
/// at start-up only degrades lookups.
fn start_user_directory(settings: &Settings) -> Result<Option<Addr<UserDirectory>>, StartError> {
    let u = &settings.users;
    if !u.enabled() {
        info!("users: no users database (no users query configured)");
        return Ok(None);
    }
    let queries =
        UsersQueries::parse(u).map_err(|(key, problem)| crate::config::ConfigError::Invalid {
            key: key.into(),
            problem,
        })?;
    let url = if u.db_url.is_empty() {
        settings.store.url.clone()
    } else {
        u.db_url.clone()
    };
    info!(
        "users: database {} (long-term presence {}, phone numbers {})",
        store::redact(&url),
        if queries.user.is_some() { "on" } else { "off" },
        if queries.phones.is_some() {
            "on"
        } else {
            "off"
        },
    );
    let sqlite = store::SqliteOptions::of(&settings.store);
    let db = SyncArbiter::start(u.pool_size, move || {
        UsersDb::new(url.clone(), sqlite, queries.clone())
    });
    Ok(Some(
        UserDirectory::new(
            DirectorySettings {
                users: !u.user_query.trim().is_empty(),
                phones: !u.phones_query.trim().is_empty(),
                ttl: std::time::Duration::from_secs(u.cache_ttl_s),
                max_entries: u.cache_max_entries,
                phones_per_query: u.phones_per_query,
            },
            db,
        )
        .start(),
    ))
}

/// Opens the database and applies migrations (before any socket is served); `None` for
/// `memory://`.
pub fn open_store(settings: &Settings) -> Result<Option<AnyConnection>, StartError> {
    Ok(store::open_any(
        &settings.store.url,
        store::SqliteOptions::of(&settings.store),
    )?)
}

/// Starts the store actors on `conn` and loads what survived the last run, but the plain
/// subscriptions (`StreamSubscriptions` reads those).
async fn start_store(
    settings: &Settings,
    conn: Option<AnyConnection>,
) -> Result<(Addr<Committer>, Option<Addr<StoreWorker>>, Snapshot), StartError> {
    let Some(conn) = conn else {
        warn!("store: memory:// — nothing is stored, nothing survives a restart");
        return Ok((Committer::new(None).start(), None, Snapshot::default()));
    };
    let url = settings.store.url.clone();
    let sqlite = store::SqliteOptions::of(&settings.store);
    // The SyncArbiter's factory runs on its thread; the connection opened at start-up is
    // handed over once, later factories (a restarted worker) open their own.
    let slot = Arc::new(Mutex::new(Some(conn)));
    let epoch = Arc::new(std::sync::atomic::AtomicI64::new(0));
    let worker = SyncArbiter::start(1, move || {
        let conn = slot.lock().ok().and_then(|mut s| s.take());
        StoreWorker::new(url.clone(), sqlite, conn, epoch.clone())
    });
    let loading = std::time::Instant::now();
    let snapshot = worker
        .send(LoadSnapshot {
            now: store::unix_now(),
        })
        .await
        .map_err(|_| StoreError::Gone)??;
    info!(
        "store: {} list subscriptions, {} publications, {} bindings loaded in {} ms; {} expired during the downtime",
        snapshot.list_subscriptions.len(),
        snapshot.publications.len(),
        snapshot.bindings.len(),
        loading.elapsed().as_millis(),
        snapshot.expired
    );
    Ok((
        Committer::new(Some(worker.clone())).start(),
        Some(worker),
        snapshot,
    ))
}

/// Pins the calling thread to the CPUs under `key`; a set the kernel refuses is the
/// operator's to fix.
fn pin_this_thread(key: &str, cpus: &[usize]) -> Result<(), StartError> {
    crate::affinity::pin_current_thread(cpus).map_err(|e| {
        StartError::Config(crate::config::ConfigError::Invalid {
            key: key.into(),
            problem: e.to_string(),
        })
    })?;
    if !cpus.is_empty() {
        info!("{key}: pinned to CPUs {cpus:?}");
    }
    Ok(())
}

/// Runs the server on `sockets` until `shutdown` completes. Must be called inside an actix
/// system.
pub async fn run(
    settings: Settings,
    store_conn: Option<AnyConnection>,
    sockets: BoundSockets,
    shutdown: impl Future<Output = ()>,
) -> Result<(), StartError> {
    // Every thread started from here on inherits this set (see `affinity`); the SIP thread
    // takes its own once they are all started.
    pin_this_thread("affinity.other_threads", &settings.affinity.other_threads)?;
    let starting = std::time::Instant::now();
    // Up before the restore, so that /health/ready can say it is restoring.
    let admin_targets = crate::http::admin::Targets::default();
    let http = crate::http::start(
        sockets.http,
        settings.http.admin_token.clone(),
        admin_targets.clone(),
    )?;
    let (committer, worker, snapshot) = start_store(&settings, store_conn).await?;
    let dispatcher_ctx = Context::<Dispatcher>::new();
    let dispatcher = dispatcher_ctx.address();
    let mut transports = Transports::new();
    let mut local_addrs = Vec::new();
    let max = settings.sip.max_message_bytes;

    for socket in sockets.udp {
        let socket = tokio::net::UdpSocket::from_std(socket)?;
        let local = socket.local_addr()?;
        let udp = UdpTransport::new(
            socket,
            max,
            dispatcher.clone().recipient(),
            dispatcher.clone().recipient(),
        )?;
        transports.add_udp(local, udp.start());
        local_addrs.push(local);
        info!("listening on udp:{local}");
    }
    // TCP connection actors (framing, parsing, socket writes) get a thread of their own, so
    // the dispatcher's thread only routes and runs presence.
    let io_arbiter = settings.sip.tcp_io_thread.then(actix_rt::Arbiter::new);
    let mut listeners = Vec::new();
    for listener in sockets.tcp {
        let listener = tokio::net::TcpListener::from_std(listener)?;
        let local = listener.local_addr()?;
        local_addrs.push(local);
        listeners.push(listener);
        info!("listening on tcp:{local}");
    }
    if !listeners.is_empty() {
        let tcp = TcpTransport::new(
            listeners,
            ConnectionSettings {
                max_message_bytes: max,
                idle_timeout: std::time::Duration::from_secs(settings.sip.tcp_idle_timeout_s),
            },
            settings.sip.max_tcp_connections,
            io_arbiter.as_ref().map(actix_rt::Arbiter::handle),
            dispatcher.clone().recipient(),
            dispatcher.clone().recipient(),
        );
        transports.set_tcp(tcp.start());
    }

    let reading = std::time::Instant::now();
    let restoring = start_presence(
        &settings,
        &dispatcher,
        committer.recipient(),
        snapshot,
        worker,
    )
    .await?;

    let dispatcher_settings = DispatcherSettings {
        domains: settings.sip.domains.clone(),
        local_addrs,
        t1: settings.sip.t1(),
        t2: settings.sip.t2(),
        server_name: settings.sip.server_name.clone(),
    };
    pin_this_thread("affinity.sip_thread", &settings.affinity.sip_thread)?;
    let dispatcher = dispatcher_ctx.run(Dispatcher::new(dispatcher_settings, transports));
    // Requests wait in the dispatcher until every stored dialog is back (recovered NOTIFYs
    // go out meanwhile): a refresh of a recovered dialog never gets 481.
    // The admin API answers once the actors run (503 before).
    let _ = admin_targets.set(restoring.admin);
    let restored = restoring.restored;
    actix::spawn(async move {
        let _ = restored.await;
        dispatcher.do_send(Ready);
        let m = crate::metrics::metrics();
        m.restore_seconds.set(starting.elapsed().as_secs_f64());
        m.restored.set(1);
    });
    info!("presenced {} running", env!("CARGO_PKG_VERSION"));

    let mut shutdown = std::pin::pin!(shutdown);
    let result = match restoring.streaming {
        Some(streaming) => tokio::select! {
            () = &mut shutdown => Ok(()),
            read = streaming => match read {
                Ok(Ok(n)) => {
                    info!(
                        "store: {n} subscriptions read in {} ms",
                        reading.elapsed().as_millis()
                    );
                    shutdown.await;
                    Ok(())
                }
                // Restoring only part of what was acknowledged would lose dialogs silently.
                Ok(Err(e)) => Err(StartError::Store(e)),
                Err(_) => Err(StartError::Store(StoreError::Gone)),
            },
        },
        None => {
            shutdown.await;
            Ok(())
        }
    };
    info!("shutting down");
    if let Some(http) = http {
        http.stop(true).await;
    }
    if let Some(io) = io_arbiter {
        io.stop();
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_settings_pass_the_checks() {
        check(&Settings::default()).unwrap();
    }

    #[test]
    fn what_other_modules_read_is_checked_and_named() {
        let key = |mutate: fn(&mut Settings)| {
            let mut s = Settings::default();
            mutate(&mut s);
            match check(&s) {
                Err(crate::config::ConfigError::Invalid { key, .. }) => key,
                other => panic!("{other:?}"),
            }
        };
        assert_eq!(key(|s| s.store.url = "mongodb://x".into()), "store.url");
        assert_eq!(
            key(|s| s.rls.list_query = "SELECT :who".into()),
            "rls.list_query"
        );
        assert_eq!(
            key(|s| s.users.phones_query = "SELECT 1".into()),
            "users.phones_query"
        );
        assert_eq!(
            key(|s| s.affinity.sip_thread = vec![5000]),
            "affinity.sip_thread"
        );
    }
}
