//! `TcpConnection`: one actor per TCP connection, accepted or opened.
//!
//! Owns: the socket halves, framing by Content-Length, the CRLF keep-alive pong, the idle
//! timeout, and buffered writes (everything owed to the peer is coalesced by the writer into as
//! few syscalls as the socket allows). Created by `TcpTransport`; stops when the peer closes,
//! on a socket or framing error (after the dispatcher's answer is written), or when idle for
//! `sip.tcp_idle_timeout_s`; tells `TcpTransport` in `stopping()`.
//! Must not: decide answers. Framing errors go to the dispatcher as `InboundRejected`.

use std::io;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use actix::io::{WriteHandler, Writer};
use actix::prelude::*;
use log::debug;
use tokio::net::tcp::OwnedWriteHalf;
use tokio::net::TcpStream;
use tokio_util::codec::FramedRead;

use super::framing::{Frame, FramingError, SipStreamCodec};
use super::tcp::{ConnectionAlias, ConnectionClosed, ConnectionStarted, TcpTransport};
use super::{ConnectionId, Inbound, InboundProblem, InboundRejected, Outbound, Source, Transport};
use crate::sip::message::{self, HeaderAccess, Message as SipMessage};
use crate::sip::uri::Host;

/// How long a connection waits for the dispatcher's answer to a framing error before closing
/// anyway.
const CLOSE_GRACE: Duration = Duration::from_secs(2);

/// Per-connection limits, from `[sip]`.
#[derive(Debug, Clone)]
pub struct ConnectionSettings {
    /// Largest message, bytes.
    pub max_message_bytes: usize,
    /// Idle time before closing.
    pub idle_timeout: Duration,
}

/// The connection actor.
pub struct TcpConnection {
    id: ConnectionId,
    source: Source,
    idle_timeout: Duration,
    last_activity: Instant,
    /// Write half; flushed by actix as the socket allows.
    writer: Writer<OwnedWriteHalf, io::Error>,
    /// Reading stopped after a framing error; the connection closes after the answer.
    closing: bool,
    /// The transport's table entry; told in `stopping()`.
    owner: Addr<TcpTransport>,
    /// The dispatcher.
    inbound: Recipient<Inbound>,
    /// The dispatcher, for rejected input.
    rejected: Recipient<InboundRejected>,
}

impl TcpConnection {
    /// Starts the actor for a connected stream.
    #[expect(
        clippy::too_many_arguments,
        reason = "plain wiring of one actor's fields"
    )]
    pub fn start(
        stream: TcpStream,
        id: ConnectionId,
        local: SocketAddr,
        peer: SocketAddr,
        settings: ConnectionSettings,
        owner: Addr<TcpTransport>,
        inbound: Recipient<Inbound>,
        rejected: Recipient<InboundRejected>,
    ) -> Addr<Self> {
        let (read, write) = stream.into_split();
        TcpConnection::create(move |ctx| {
            ctx.add_stream(FramedRead::new(
                read,
                SipStreamCodec::new(settings.max_message_bytes),
            ));
            TcpConnection {
                id,
                source: Source {
                    transport: Transport::Tcp,
                    local,
                    peer,
                    connection: Some(id),
                },
                idle_timeout: settings.idle_timeout,
                last_activity: Instant::now(),
                writer: Writer::new(write, ctx),
                closing: false,
                owner,
                inbound,
                rejected,
            }
        })
    }

    fn reject(&mut self, problem: InboundProblem, ctx: &mut Context<Self>) {
        self.closing = true;
        // Bounded: one per connection, after which the connection reads nothing more.
        let _ = self.rejected.try_send(InboundRejected {
            problem,
            source: self.source,
        });
        ctx.run_later(CLOSE_GRACE, |_, ctx| ctx.stop());
    }

    /// RFC 5923: a request whose top Via carries `alias` lets us reuse this connection for
    /// requests to its sent-by address.
    fn note_alias(&self, msg: &SipMessage) {
        let SipMessage::Request(req) = msg else {
            return;
        };
        // Most requests carry no `alias` anywhere in their Via: those are not parsed here.
        let mentions_alias = req.headers.get("Via").is_some_and(|v| {
            v.as_bytes()
                .windows(5)
                .any(|w| w.eq_ignore_ascii_case(b"alias"))
        });
        if !mentions_alias {
            return;
        }
        let Ok(via) = req.top_via() else { return };
        if via.params.get("alias").is_none() {
            return;
        }
        let Host::Ip(ip) = via.host else {
            return;
        };
        let addr = SocketAddr::new(ip, via.port.unwrap_or(5060));
        if addr != self.source.peer {
            self.owner.do_send(ConnectionAlias { id: self.id, addr });
        }
    }
}

impl Actor for TcpConnection {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        self.owner.do_send(ConnectionStarted {
            id: self.id,
            addr: ctx.address(),
        });
        let tick =
            (self.idle_timeout / 4).clamp(Duration::from_millis(250), Duration::from_secs(30));
        ctx.run_interval(tick, |act, ctx| {
            if act.last_activity.elapsed() >= act.idle_timeout {
                debug!("tcp {}: idle, closing", act.source.peer);
                ctx.stop();
            }
        });
    }

    fn stopping(&mut self, _ctx: &mut Self::Context) -> Running {
        self.owner.do_send(ConnectionClosed { id: self.id });
        Running::Stop
    }
}

impl StreamHandler<Result<Frame, FramingError>> for TcpConnection {
    fn handle(&mut self, item: Result<Frame, FramingError>, ctx: &mut Self::Context) {
        if self.closing {
            return;
        }
        self.last_activity = Instant::now();
        match item {
            Ok(Frame::Ping) => self.writer.write(b"\r\n"),
            Ok(Frame::Message(bytes)) => match message::parse(&bytes) {
                Ok(message) => {
                    self.note_alias(&message);
                    let inbound = Inbound {
                        message,
                        source: self.source,
                        received_at: self.last_activity,
                    };
                    // Bounded: if the dispatcher's mailbox is full, stop reading until it has
                    // taken this message (back-pressure onto the peer's TCP window).
                    if let Err(SendError::Full(inbound)) = self.inbound.try_send(inbound) {
                        let send = self.inbound.send(inbound);
                        ctx.wait(send.into_actor(self).map(|_, _, _| ()));
                    }
                }
                Err(failure) => self.reject(InboundProblem::Unparsable(failure), ctx),
            },
            Err(FramingError::MissingContentLength(head)) => {
                debug!("tcp {}: message without Content-Length", self.source.peer);
                self.reject(InboundProblem::MissingContentLength(head), ctx);
            }
            Err(FramingError::Oversize(head)) => {
                debug!("tcp {}: message over the size limit", self.source.peer);
                self.reject(InboundProblem::Oversize(head), ctx);
            }
            Err(FramingError::Io(e)) => {
                debug!("tcp {}: read error: {e}", self.source.peer);
                ctx.stop();
            }
        }
    }

    fn finished(&mut self, ctx: &mut Self::Context) {
        // Peer closed (possibly mid-message) or framing stopped; after a framing error the
        // answer may still be on its way, and `reject` has armed the grace timer.
        if !self.closing {
            debug!("tcp {}: closed by peer", self.source.peer);
            ctx.stop();
        }
    }
}

impl Handler<Outbound> for TcpConnection {
    type Result = ();

    fn handle(&mut self, out: Outbound, _ctx: &mut Self::Context) {
        self.writer.write(&out.bytes);
        if out.close_after {
            // The writer flushes what it holds, then `WriteHandler::finished` stops the actor.
            self.writer.close();
        }
    }
}

impl WriteHandler<io::Error> for TcpConnection {
    fn error(&mut self, err: io::Error, _ctx: &mut Self::Context) -> Running {
        debug!("tcp {}: write error: {err}", self.source.peer);
        Running::Stop
    }
}
