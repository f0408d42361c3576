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

struct Entry {
    addr: Addr<TcpConnection>,
    peer: SocketAddr,
    aliases: Vec<SocketAddr>,
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
            inbound,
            rejected,
        }
    }

    fn start_connection(
        &mut self,
        stream: TcpStream,
        local: SocketAddr,
        peer: SocketAddr,
        ctx: &mut Context<Self>,
    ) -> ConnectionId {
        let id = ConnectionId(self.next_id);
        self.next_id += 1;
        let _ = stream.set_nodelay(true);
        let conn = TcpConnection::start(
            stream,
            id,
            local,
            peer,
            self.settings.clone(),
            ctx.address(),
            self.inbound.clone(),
            self.rejected.clone(),
        );
        self.connections.insert(
            id,
            Entry {
                addr: conn,
                peer,
                aliases: Vec::new(),
            },
        );
        self.by_addr.insert(peer, id);
        id
    }

    fn connect(&mut self, out: Outbound, ctx: &mut Context<Self>) {
        let dest = out.target.addr;
        if let Some(waiting) = self.connecting.get_mut(&dest) {
            waiting.push(out);
            return;
        }
        self.connecting.insert(dest, vec![out]);
        let fut = async move {
            tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(dest))
                .await
                .map_err(|_| io::Error::from(io::ErrorKind::TimedOut))
                .and_then(|r| r)
        };
        ctx.spawn(fut.into_actor(self).map(move |result, act, ctx| {
            let waiting = act.connecting.remove(&dest).unwrap_or_default();
            match result.and_then(|s| s.local_addr().map(|l| (s, l))) {
                Ok((stream, local)) if act.connections.len() < act.max_connections => {
                    debug!("tcp: connected to {dest}");
                    let id = act.start_connection(stream, local, dest, ctx);
                    if let Some(entry) = act.connections.get(&id) {
                        for out in waiting {
                            entry.addr.do_send(out);
                        }
                    }
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
        }));
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
        self.start_connection(stream, a.local, peer, ctx);
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
        let by_id = out
            .target
            .connection
            .and_then(|id| self.connections.get(&id));
        let entry = by_id.or_else(|| {
            self.by_addr
                .get(&out.target.addr)
                .and_then(|id| self.connections.get(id))
        });
        match entry {
            Some(e) => e.addr.do_send(out),
            None => self.connect(out, ctx),
        }
    }
}

impl Handler<ConnectionClosed> for TcpTransport {
    type Result = ();

    fn handle(&mut self, msg: ConnectionClosed, _ctx: &mut Self::Context) {
        if let Some(entry) = self.connections.remove(&msg.id) {
            for addr in std::iter::once(entry.peer).chain(entry.aliases) {
                if self.by_addr.get(&addr) == Some(&msg.id) {
                    self.by_addr.remove(&addr);
                }
            }
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
