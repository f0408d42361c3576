//! `UdpTransport`: one actor per `udp:` listen entry.
//!
//! Owns: its socket. Receives datagrams as a stream (one at a time, so a flood waits in the
//! kernel's buffer rather than in memory), parses them and hands them to the dispatcher;
//! sends whatever `Outbound` it is given. Created by `app` at start-up; stops when the system
//! stops. Must not: answer anything itself.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use actix::prelude::*;
use bytes::Bytes;
use log::{debug, warn};
use tokio::net::UdpSocket;

use super::{Inbound, InboundProblem, InboundRejected, Outbound, SendFailed, Source, Transport};
use crate::sip::message;

/// One received datagram.
#[derive(Debug)]
pub struct Datagram {
    bytes: Bytes,
    peer: SocketAddr,
}

/// The UDP socket actor.
pub struct UdpTransport {
    socket: Arc<UdpSocket>,
    local: SocketAddr,
    max_message_bytes: usize,
    /// The dispatcher; held for the actor's life.
    inbound: Recipient<Inbound>,
    /// The dispatcher again, for messages it must reject.
    rejected: Recipient<InboundRejected>,
}

impl UdpTransport {
    /// Wraps a bound socket.
    pub fn new(
        socket: UdpSocket,
        max_message_bytes: usize,
        inbound: Recipient<Inbound>,
        rejected: Recipient<InboundRejected>,
    ) -> io::Result<Self> {
        let local = socket.local_addr()?;
        Ok(Self {
            socket: Arc::new(socket),
            local,
            max_message_bytes,
            inbound,
            rejected,
        })
    }

    fn source(&self, peer: SocketAddr) -> Source {
        Source {
            transport: Transport::Udp,
            local: self.local,
            peer,
            connection: None,
        }
    }
}

impl Actor for UdpTransport {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        // One byte more than the limit, so an oversize datagram is recognised as such.
        let cap = self.max_message_bytes + 1;
        let state = (self.socket.clone(), vec![0u8; cap]);
        let datagrams = futures_util::stream::unfold(state, |(socket, mut buf)| async move {
            loop {
                match socket.recv_from(&mut buf).await {
                    Ok((n, peer)) => {
                        let bytes = Bytes::copy_from_slice(&buf[..n]);
                        return Some((Datagram { bytes, peer }, (socket, buf)));
                    }
                    // ICMP errors from earlier sends surface here; they are not fatal.
                    Err(e) => debug!("udp recv error: {e}"),
                }
            }
        });
        ctx.add_stream(datagrams);
    }
}

impl StreamHandler<Datagram> for UdpTransport {
    fn handle(&mut self, d: Datagram, _ctx: &mut Self::Context) {
        // Keep-alives (RFC 5626 uses STUN on UDP; CRLF-only datagrams are also seen) carry
        // nothing to answer.
        if d.bytes.iter().all(|b| matches!(b, b'\r' | b'\n' | 0)) {
            return;
        }
        let source = self.source(d.peer);
        if d.bytes.len() > self.max_message_bytes {
            let head = super::super::wire::head_len(&d.bytes).map(|n| d.bytes.slice(..n));
            self.reject(InboundProblem::Oversize(head), source);
            return;
        }
        match message::parse(&d.bytes) {
            Ok(message) => {
                let inbound = Inbound {
                    message,
                    source,
                    received_at: Instant::now(),
                };
                // Bounded: on a full dispatcher mailbox the datagram is dropped, as the network
                // would; the sender's retransmission tries again.
                if let Err(SendError::Full(_)) = self.inbound.try_send(inbound) {
                    warn!(
                        "udp {}: dispatcher busy, datagram from {} dropped",
                        self.local, d.peer
                    );
                }
            }
            Err(failure) => self.reject(InboundProblem::Unparsable(failure), source),
        }
    }

    fn finished(&mut self, _ctx: &mut Self::Context) {
        // The receive stream never ends on its own; this runs only at shutdown.
        debug!("udp {}: receive stream ended", self.local);
    }
}

impl UdpTransport {
    fn reject(&self, problem: InboundProblem, source: Source) {
        // Bounded like `Inbound` above.
        let _ = self.rejected.try_send(InboundRejected { problem, source });
    }
}

impl Handler<Outbound> for UdpTransport {
    type Result = ();

    fn handle(&mut self, out: Outbound, ctx: &mut Self::Context) {
        match self.socket.try_send_to(&out.bytes, out.target.addr) {
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                let socket = self.socket.clone();
                let fut = async move {
                    if let Err(e) = socket.send_to(&out.bytes, out.target.addr).await {
                        debug!("udp send to {} failed: {e}", out.target.addr);
                        if let Some(r) = out.on_failure {
                            r.do_send(SendFailed {
                                tag: out.tag,
                                target: out.target,
                            });
                        }
                    }
                };
                ctx.spawn(fut.into_actor(self));
            }
            Err(e) => {
                debug!("udp send to {} failed: {e}", out.target.addr);
                if let Some(r) = out.on_failure {
                    r.do_send(SendFailed {
                        tag: out.tag,
                        target: out.target,
                    });
                }
            }
        }
    }
}
