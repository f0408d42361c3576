//! Transports: the sockets, and the messages that carry bytes between them and the dispatcher.
//!
//! Owns: `UdpTransport` (one actor per `udp:` listen entry), `TcpTransport` (the TCP
//! listeners and the table of open connections, for admission and connection reuse),
//! `TcpConnection` (one actor per connection, framing by Content-Length), and the
//! `Transports` handle through which everything else sends bytes.
//! Must not: decide how to answer anything. Framing errors and unparsable messages are handed
//! to the dispatcher, which is the one place that turns a problem into a SIP response.

pub mod framing;
pub mod tcp;
pub mod tcp_connection;
pub mod udp;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use actix::prelude::*;
use bytes::Bytes;

use super::message::{Message as SipMessage, ParseFailure};

pub use tcp::TcpTransport;
pub use tcp_connection::TcpConnection;
pub use udp::UdpTransport;

/// Transport protocol of a hop.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Transport {
    /// UDP.
    Udp,
    /// TCP.
    Tcp,
}

impl Transport {
    /// Via transport token.
    pub fn as_str(self) -> &'static str {
        match self {
            Transport::Udp => "UDP",
            Transport::Tcp => "TCP",
        }
    }

    /// True for stream transports (reliable, framed by Content-Length).
    pub fn is_reliable(self) -> bool {
        matches!(self, Transport::Tcp)
    }
}

/// Identifies one TCP connection for its lifetime.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ConnectionId(pub u64);

/// Where a message came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Source {
    /// The transport.
    pub transport: Transport,
    /// Our socket's address.
    pub local: SocketAddr,
    /// The peer's address.
    pub peer: SocketAddr,
    /// The connection, for TCP.
    pub connection: Option<ConnectionId>,
}

/// Where to send bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Target {
    /// The transport.
    pub transport: Transport,
    /// Destination address (for TCP: used when the connection is gone or not given).
    pub addr: SocketAddr,
    /// Preferred existing connection, for TCP.
    pub connection: Option<ConnectionId>,
    /// Preferred local socket, for UDP (responses leave from the socket the request reached).
    pub local: Option<SocketAddr>,
}

impl Target {
    /// The way back to where a message came from.
    pub fn back_to(source: &Source) -> Self {
        Target {
            transport: source.transport,
            addr: source.peer,
            connection: source.connection,
            local: Some(source.local),
        }
    }
}

/// A parsed message received from the network; sent by transports to the dispatcher.
#[derive(Message, Debug)]
#[rtype(result = "()")]
pub struct Inbound {
    /// The message.
    pub message: SipMessage,
    /// Where it came from.
    pub source: Source,
    /// When it arrived.
    pub received_at: Instant,
}

/// Why a received message cannot be used; the dispatcher decides the answer.
#[derive(Debug)]
pub enum InboundProblem {
    /// The bytes did not parse.
    Unparsable(ParseFailure),
    /// A stream message without Content-Length (RFC 3261 §18.3: mandatory on streams).
    MissingContentLength(Bytes),
    /// A message larger than `sip.max_message_bytes`; the head, when it was complete.
    Oversize(Option<Bytes>),
}

/// A message that could not be used; sent by transports to the dispatcher.
#[derive(Message, Debug)]
#[rtype(result = "()")]
pub struct InboundRejected {
    /// What is wrong.
    pub problem: InboundProblem,
    /// Where it came from.
    pub source: Source,
}

/// Bytes to send; handled by `UdpTransport` and `TcpTransport`/`TcpConnection`.
#[derive(Message, Debug, Clone)]
#[rtype(result = "()")]
pub struct Outbound {
    /// Destination.
    pub target: Target,
    /// The serialised message.
    pub bytes: Bytes,
    /// Close the connection once these bytes are written (after a framing error).
    pub close_after: bool,
    /// Told if the bytes could not be handed to the network (no route, connect failed).
    /// Shared: a copy of an actix recipient allocates three times, an `Arc` not at all.
    pub on_failure: Option<Arc<Recipient<SendFailed>>>,
    /// Opaque tag returned in `SendFailed`, e.g. a transaction branch.
    pub tag: u64,
}

/// Sent to `Outbound::on_failure` when bytes could not be sent.
#[derive(Message, Debug, Clone, Copy)]
#[rtype(result = "()")]
pub struct SendFailed {
    /// The `Outbound::tag`.
    pub tag: u64,
    /// The destination.
    pub target: Target,
}

/// Handle to every transport; cloned into whoever sends bytes.
#[derive(Clone, Default)]
pub struct Transports {
    udp: Vec<(SocketAddr, Addr<UdpTransport>)>,
    tcp: Option<Addr<TcpTransport>>,
}

impl Transports {
    /// An empty set; transports are added at start-up.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a UDP socket actor.
    pub fn add_udp(&mut self, local: SocketAddr, addr: Addr<UdpTransport>) {
        self.udp.push((local, addr));
    }

    /// Sets the TCP transport actor.
    pub fn set_tcp(&mut self, addr: Addr<TcpTransport>) {
        self.tcp = Some(addr);
    }

    /// Local addresses of every socket (UDP and TCP listeners are given separately at
    /// start-up; this lists the UDP ones).
    pub fn udp_locals(&self) -> impl Iterator<Item = SocketAddr> + '_ {
        self.udp.iter().map(|(a, _)| *a)
    }

    /// Hands bytes to the right transport. Returns false if no transport can carry them.
    ///
    /// `do_send` is used on purpose: transports never block, so their mailboxes drain at
    /// socket speed, and every sender is itself bounded by the requests it is answering.
    pub fn send(&self, out: Outbound) -> bool {
        match out.target.transport {
            Transport::Udp => {
                let same_family = |a: &SocketAddr| a.is_ipv4() == out.target.addr.is_ipv4();
                let chosen = out
                    .target
                    .local
                    .and_then(|l| self.udp.iter().find(|(a, _)| *a == l))
                    .or_else(|| self.udp.iter().find(|(a, _)| same_family(a)))
                    .or_else(|| self.udp.first());
                match chosen {
                    Some((_, udp)) => {
                        udp.do_send(out);
                        true
                    }
                    None => false,
                }
            }
            Transport::Tcp => match &self.tcp {
                Some(tcp) => {
                    tcp.do_send(out);
                    true
                }
                None => false,
            },
        }
    }
}
