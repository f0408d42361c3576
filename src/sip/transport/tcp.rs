//! `TcpTransport`: the TCP listeners and the table of open connections.
//!
//! Owns: accepting (and refusing beyond `sip.max_tcp_connections`), the connection table
//! (by id, and by peer address for reuse, RFC 3261 §18.2.2 and RFC 5923 `alias`), and opening
//! outbound connections for requests the server sends when none is open. Created by `app` at
//! start-up; stops with the system. Each `TcpConnection` it starts reports back when it stops.
//! Must not: frame or parse messages (that is `TcpConnection`'s job).

use std::collections::HashMap;
use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use actix::prelude::*;
use actix_rt::ArbiterHandle;
use log::{debug, info, warn};
use tokio::net::{TcpListener, TcpStream};

use super::tcp_connection::{ConnectionSettings, TcpConnection};
use super::{ConnectionId, Inbound, InboundRejected, Outbound, SendFailed};

/// How long an outbound connect may take before the send is reported failed.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Sent by a `TcpConnection` when it stops.
#[derive(Message, Debug)]
#[rtype(result = "()")]
pub struct ConnectionClosed {
    /// Which one.
    pub id: ConnectionId,
}

/// Sent by a `TcpConnection` to register an extra address it can be reached at
/// (the Via sent-by of a request carrying `;alias`, RFC 5923).
#[derive(Message, Debug)]
#[rtype(result = "()")]
pub struct ConnectionAlias {
    /// Which connection.
    pub id: ConnectionId,
    /// The address requests to it may name.
    pub addr: SocketAddr,
}

/// An accepted socket.
#[derive(Debug)]
pub struct Accepted {
    stream: io::Result<(TcpStream, SocketAddr)>,
    local: SocketAddr,
}

/// Sent by a `TcpConnection` once it runs (possibly on the I/O arbiter).
#[derive(Message, Debug)]
#[rtype(result = "()")]
pub struct ConnectionStarted {
    /// Which connection.
    pub id: ConnectionId,
    /// Its address.
    pub addr: Addr<TcpConnection>,
}

struct Entry {
    /// None until the connection actor reports `ConnectionStarted`.
    addr: Option<Addr<TcpConnection>>,
    peer: SocketAddr,
    aliases: Vec<SocketAddr>,
    /// Bytes for the connection that came before it started.
    waiting: Vec<Outbound>,
}

/// The TCP transport actor.
pub struct TcpTransport {
    listeners: Vec<TcpListener>,
    settings: ConnectionSettings,
    max_connections: usize,
    next_id: u64,
    connections: HashMap<ConnectionId, Entry>,
    by_addr: HashMap<SocketAddr, ConnectionId>,
    /// Bytes waiting for an outbound connect to finish, by destination.
    connecting: HashMap<SocketAddr, Vec<Outbound>>,
    saturated: bool,
    /// Where connection actors run; `None` runs them on this actor's thread.
    io: Option<ArbiterHandle>,
    /// The dispatcher; handed to each connection.
    inbound: Recipient<Inbound>,
    /// The dispatcher, for rejected input; handed to each connection.
    rejected: Recipient<InboundRejected>,
}

impl TcpTransport {
    /// A transport over already bound listeners.
    pub fn new(
        listeners: Vec<TcpListener>,
        settings: ConnectionSettings,
        max_connections: usize,
        io: Option<ArbiterHandle>,
        inbound: Recipient<Inbound>,
        rejected: Recipient<InboundRejected>,
    ) -> Self {
        Self {
            listeners,
            settings,
            max_connections,
            next_id: 1,
            connections: HashMap::new(),
            by_addr: HashMap::new(),
            connecting: HashMap::new(),
            saturated: false,
            io,
            inbound,
            rejected,
        }
    }

    /// Registers a connection and starts its actor: on the I/O arbiter when there is one
    /// (framing, parsing and socket writes then run beside the dispatcher's thread), else
    /// here. `waiting` is sent once the actor runs.
    fn start_connection(
        &mut self,
        stream: TcpStream,
        local: SocketAddr,
        peer: SocketAddr,
        waiting: Vec<Outbound>,
        ctx: &mut Context<Self>,
    ) {
        let id = ConnectionId(self.next_id);
        self.next_id += 1;
        let _ = stream.set_nodelay(true);
        crate::metrics::metrics().tcp_connections.inc();
        self.connections.insert(
            id,
            Entry {
                addr: None,
                peer,
                aliases: Vec::new(),
                waiting,
            },
        );
        self.by_addr.insert(peer, id);
        let settings = self.settings.clone();
        let (owner, inbound, rejected) =
            (ctx.address(), self.inbound.clone(), self.rejected.clone());
        let Some(io) = self.io.clone() else {
            TcpConnection::start(stream, id, local, peer, settings, owner, inbound, rejected);
            return;
        };
        // A tokio socket belongs to the reactor it was registered with: hand it over as a std
        // socket and register it again on the I/O arbiter.
        let std_stream = match stream.into_std() {
            Ok(s) => s,
            Err(e) => {
                warn!("tcp {peer}: cannot hand the connection to the I/O thread: {e}");
                self.closed(id);
                return;
            }
        };
        io.spawn(async move {
            match TcpStream::from_std(std_stream) {
                Ok(stream) => {
                    TcpConnection::start(
                        stream, id, local, peer, settings, owner, inbound, rejected,
                    );
                }
                Err(e) => {
                    warn!("tcp {peer}: cannot register the connection on the I/O thread: {e}");
                    owner.do_send(ConnectionClosed { id });
                }
            }
        });
    }

    /// Forgets a connection; bytes still waiting for it are reported failed.
    fn closed(&mut self, id: ConnectionId) {
        if let Some(entry) = self.connections.remove(&id) {
            crate::metrics::metrics().tcp_connections.dec();
            for addr in std::iter::once(entry.peer).chain(entry.aliases) {
                if self.by_addr.get(&addr) == Some(&id) {
                    self.by_addr.remove(&addr);
                }
            }
            fail_all(entry.waiting);
        }
    }

    fn connect(&mut self, out: Outbound, ctx: &mut Context<Self>) {
        let dest = out.target.addr;
        if let Some(waiting) = self.connecting.get_mut(&dest) {
            waiting.push(out);
            return;
        }
        self.connecting.insert(dest, vec![out]);
        // The connect runs as a task of its own and reports back as a message: a future spawned
        // in this actor's context would wait until its mailbox ran dry, which under a burst of
        // NOTIFYs (say, after a restart) is the end of the burst.
        let me = ctx.address();
        actix_rt::spawn(async move {
            let result = tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(dest))
                .await
                .map_err(|_| io::Error::from(io::ErrorKind::TimedOut))
                .and_then(|r| r);
            me.do_send(Connected { dest, result });
        });
    }
}

/// An outbound connect finished.
#[derive(Message)]
#[rtype(result = "()")]
struct Connected {
    dest: SocketAddr,
    result: io::Result<TcpStream>,
}

impl Handler<Connected> for TcpTransport {
    type Result = ();

    fn handle(&mut self, msg: Connected, ctx: &mut Self::Context) {
        let dest = msg.dest;
        let waiting = self.connecting.remove(&dest).unwrap_or_default();
        match msg.result.and_then(|s| s.local_addr().map(|l| (s, l))) {
            Ok((stream, local)) if self.connections.len() < self.max_connections => {
                debug!("tcp: connected to {dest}");
                self.start_connection(stream, local, dest, waiting, ctx);
            }
            Ok(_) => {
                warn!("tcp: connection limit reached, cannot connect to {dest}");
                fail_all(waiting);
            }
            Err(e) => {
                debug!("tcp: connect to {dest} failed: {e}");
                fail_all(waiting);
            }
        }
    }
}

fn fail_all(waiting: Vec<Outbound>) {
    for out in waiting {
        if let Some(r) = out.on_failure {
            r.do_send(SendFailed {
                tag: out.tag,
                target: out.target,
            });
        }
    }
}

impl Actor for TcpTransport {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        for listener in std::mem::take(&mut self.listeners) {
            let Ok(local) = listener.local_addr() else {
                continue;
            };
            let accepts = futures_util::stream::unfold(listener, move |l| async move {
                let stream = l.accept().await;
                Some((Accepted { stream, local }, l))
            });
            ctx.add_stream(accepts);
        }
    }
}

impl StreamHandler<Accepted> for TcpTransport {
    fn handle(&mut self, a: Accepted, ctx: &mut Self::Context) {
        let (stream, peer) = match a.stream {
            Ok(s) => s,
            Err(e) => {
                // EMFILE and friends: logged, and the listener keeps going.
                warn!("tcp {}: accept failed: {e}", a.local);
                return;
            }
        };
        if self.connections.len() >= self.max_connections {
            if !self.saturated {
                warn!(
                    "tcp {}: {} connections open, refusing new ones",
                    a.local, self.max_connections
                );
                self.saturated = true;
            }
            drop(stream);
            return;
        }
        if self.saturated {
            info!("tcp {}: accepting connections again", a.local);
            self.saturated = false;
        }
        debug!("tcp {}: accepted {peer}", a.local);
        self.start_connection(stream, a.local, peer, Vec::new(), ctx);
    }

    fn finished(&mut self, _ctx: &mut Self::Context) {
        // Accept streams never end on their own.
    }
}

impl Handler<Outbound> for TcpTransport {
    type Result = ();

    fn handle(&mut self, out: Outbound, ctx: &mut Self::Context) {
        // RFC 3261 §18.2.2: the connection the request came on; else any open connection to
        // the destination; else a new one.
        let id = out
            .target
            .connection
            .filter(|id| self.connections.contains_key(id))
            .or_else(|| self.by_addr.get(&out.target.addr).copied());
        match id.and_then(|id| self.connections.get_mut(&id)) {
            Some(Entry { addr: Some(a), .. }) => a.do_send(out),
            Some(entry) => entry.waiting.push(out),
            None => self.connect(out, ctx),
        }
    }
}

impl Handler<ConnectionClosed> for TcpTransport {
    type Result = ();

    fn handle(&mut self, msg: ConnectionClosed, _ctx: &mut Self::Context) {
        self.closed(msg.id);
    }
}

impl Handler<ConnectionStarted> for TcpTransport {
    type Result = ();

    fn handle(&mut self, msg: ConnectionStarted, _ctx: &mut Self::Context) {
        // A connection closed before it started gets nothing.
        if let Some(entry) = self.connections.get_mut(&msg.id) {
            for out in entry.waiting.drain(..) {
                msg.addr.do_send(out);
            }
            entry.addr = Some(msg.addr);
        }
    }
}

impl Handler<ConnectionAlias> for TcpTransport {
    type Result = ();

    fn handle(&mut self, msg: ConnectionAlias, _ctx: &mut Self::Context) {
        if let Some(entry) = self.connections.get_mut(&msg.id) {
            if !entry.aliases.contains(&msg.addr) && entry.aliases.len() < 4 {
                entry.aliases.push(msg.addr);
                self.by_addr.insert(msg.addr, msg.id);
            }
        }
    }
}
