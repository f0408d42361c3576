//! The client transactions of the requests the server sends (NOTIFYs): RFC 3261 §17.1.2's
//! non-INVITE client transaction, without its actor.
//!
//! Owns: the open transactions by key (the 64 random bits their Via branch spells), their
//! Timer E (retransmission over UDP, doubling up to T2, T2 once a provisional response came)
//! and Timer F (64×T1: timeout) deadlines in one heap, and matching responses to them. The
//! dispatcher holds one table, sends what it is told to resend, and tells each owner its
//! outcome. Pure: time is passed in. Must not: send anything or know what the requests are.
//!
//! ```text
//!  start ─► Trying ─1xx─► Proceeding ─final─► finished (owner told the response)
//!             │  └Timer E (UDP): resend, interval doubles up to T2 ┘     │
//!             └──────────────── Timer F (64×T1) ──► finished (timeout) ◄─┘
//! ```

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::time::{Duration, Instant};

use bytes::Bytes;

use super::message::Method;
use super::transaction::{new_client_key, next_timer_e, ClientKey};
use super::transport::Target;

/// Timer settings (RFC 3261 §17.1.2.2).
#[derive(Debug, Clone, Copy)]
pub struct Timers {
    /// T1, the round-trip estimate.
    pub t1: Duration,
    /// T2, the longest retransmission interval.
    pub t2: Duration,
}

/// One open transaction; `O` is who is told its outcome.
struct ClientTx<O> {
    owner: O,
    tag: u64,
    method: Method,
    bytes: Bytes,
    target: Target,
    interval: Duration,
    started: Instant,
    /// When the next timer (E or F) is due; matches one heap entry.
    due: Instant,
}

/// How a transaction ended.
#[derive(Debug, PartialEq, Eq)]
pub enum Ending<R> {
    /// A final response.
    Response(R),
    /// Timer F fired.
    Timeout,
    /// The transport could not send it.
    TransportError,
}

/// A transaction that ended: whom to tell, its tag, and how.
#[derive(Debug, PartialEq, Eq)]
pub struct Finished<O, R> {
    /// The owner.
    pub owner: O,
    /// The owner's tag for it.
    pub tag: u64,
    /// How it ended.
    pub ending: Ending<R>,
}

/// The open client transactions.
pub struct ClientTransactions<O> {
    timers: Timers,
    open: HashMap<ClientKey, ClientTx<O>>,
    /// Timer E/F deadlines, earliest first. An entry whose transaction ended or was
    /// rescheduled is skipped when it comes up: one heap and one tick for every transaction
    /// instead of a timer each.
    deadlines: BinaryHeap<Reverse<(Instant, ClientKey)>>,
}

impl<O> ClientTransactions<O> {
    /// An empty table.
    pub fn new(timers: Timers) -> Self {
        Self {
            timers,
            open: HashMap::new(),
            deadlines: BinaryHeap::new(),
        }
    }

    /// A key for a new transaction: random (a branch cannot be guessed from another, so no
    /// watcher can forge a response to another's NOTIFY), never one in use.
    pub fn new_key(&self) -> ClientKey {
        let mut key = new_client_key();
        while self.open.contains_key(&key) {
            key = new_client_key();
        }
        key
    }

    /// Opens transaction `key` for `bytes` (already sent once to `target`) at `now`.
    #[expect(
        clippy::too_many_arguments,
        reason = "each is a field of the transaction; a struct for them would only rename them"
    )]
    pub fn start(
        &mut self,
        key: ClientKey,
        owner: O,
        tag: u64,
        method: Method,
        bytes: Bytes,
        target: Target,
        now: Instant,
    ) {
        let t1 = self.timers.t1;
        // Over a reliable transport only Timer F runs (RFC 3261 §17.1.2.2).
        let first = if target.transport.is_reliable() {
            t1 * 64
        } else {
            t1
        };
        let due = now + first;
        self.deadlines.push(Reverse((due, key)));
        self.open.insert(
            key,
            ClientTx {
                owner,
                tag,
                method,
                bytes,
                target,
                interval: next_timer_e(t1, self.timers.t2),
                started: now,
                due,
            },
        );
    }

    /// A response whose top Via names `key`, for `method`, with `status`; the transaction it
    /// ends, if final. A response for another method, or to no open transaction, matches
    /// nothing.
    pub fn response<R>(
        &mut self,
        key: ClientKey,
        method: Option<&Method>,
        status: u16,
        response: R,
    ) -> Option<Finished<O, R>> {
        let tx = self.open.get_mut(&key)?;
        if Some(&tx.method) != method {
            return None;
        }
        if status < 200 {
            // RFC 3261 §17.1.2.2: in Proceeding, retransmit every T2.
            tx.interval = self.timers.t2;
            return None;
        }
        self.finish(key, Ending::Response(response))
    }

    /// Ends transaction `key` with `ending`.
    pub fn finish<R>(&mut self, key: ClientKey, ending: Ending<R>) -> Option<Finished<O, R>> {
        self.open.remove(&key).map(|tx| Finished {
            owner: tx.owner,
            tag: tx.tag,
            ending,
        })
    }

    /// Runs every timer due at `now`: `resend` is given what Timer E retransmits; the
    /// transactions Timer F ended are returned.
    pub fn due<R>(
        &mut self,
        now: Instant,
        mut resend: impl FnMut(Target, Bytes),
    ) -> Vec<Finished<O, R>> {
        let timer_f = self.timers.t1 * 64;
        let mut ended = Vec::new();
        while let Some(Reverse((at, _))) = self.deadlines.peek() {
            if *at > now {
                break;
            }
            let Some(Reverse((at, key))) = self.deadlines.pop() else {
                break;
            };
            let Some(tx) = self.open.get_mut(&key) else {
                continue;
            };
            if tx.due != at {
                continue;
            }
            let elapsed = now.saturating_duration_since(tx.started);
            if elapsed >= timer_f {
                log::debug!("{} to {}: Timer F fired", tx.method, tx.target.addr);
                ended.extend(self.finish(key, Ending::Timeout));
                continue;
            }
            let next = if tx.target.transport.is_reliable() {
                timer_f - elapsed
            } else {
                resend(tx.target, tx.bytes.clone());
                let next = tx.interval.min(timer_f - elapsed);
                tx.interval = next_timer_e(tx.interval, self.timers.t2);
                next
            };
            tx.due = now + next;
            self.deadlines.push(Reverse((tx.due, key)));
        }
        ended
    }

    /// How many transactions are open.
    pub fn len(&self) -> usize {
        self.open.len()
    }

    /// Whether none is open.
    pub fn is_empty(&self) -> bool {
        self.open.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sip::transport::Transport;

    const T1: Duration = Duration::from_millis(500);

    fn table() -> ClientTransactions<&'static str> {
        ClientTransactions::new(Timers {
            t1: T1,
            t2: Duration::from_secs(4),
        })
    }

    fn target(transport: Transport) -> Target {
        Target {
            transport,
            addr: "127.0.0.1:5060".parse().unwrap(),
            connection: None,
            local: None,
        }
    }

    fn open(t: &mut ClientTransactions<&'static str>, transport: Transport, now: Instant) -> u64 {
        let key = t.new_key();
        let bytes = Bytes::from_static(b"NOTIFY");
        t.start(key, "w", 7, Method::Notify, bytes, target(transport), now);
        key
    }

    /// The times (ms after the start) at which Timer E resends, up to `until`.
    fn resends(t: &mut ClientTransactions<&'static str>, start: Instant, until: u64) -> Vec<u64> {
        let mut sent = Vec::new();
        for ms in (0..=until).step_by(50) {
            let mut n = 0;
            let ended: Vec<Finished<_, ()>> =
                t.due(start + Duration::from_millis(ms), |_, _| n += 1);
            assert!(ended.is_empty() || ms >= 32_000);
            sent.extend(std::iter::repeat_n(ms, n));
        }
        sent
    }

    #[test]
    fn timer_e_doubles_up_to_t2_over_udp_and_timer_f_ends_it() {
        let mut t = table();
        let start = Instant::now();
        open(&mut t, Transport::Udp, start);
        // 500, 1000 (+1000), 2000 (+2000), 4000 (+4000), then every T2.
        assert_eq!(
            resends(&mut t, start, 15_500),
            [500, 1500, 3500, 7500, 11500, 15500]
        );
        let ended: Vec<Finished<_, ()>> = t.due(start + T1 * 64, |_, _| {});
        assert_eq!(
            ended,
            [Finished {
                owner: "w",
                tag: 7,
                ending: Ending::Timeout
            }]
        );
        assert!(t.is_empty());
    }

    #[test]
    fn over_tcp_nothing_is_resent_and_timer_f_still_ends_it() {
        let mut t = table();
        let start = Instant::now();
        open(&mut t, Transport::Tcp, start);
        assert!(resends(&mut t, start, 31_950).is_empty());
        let ended: Vec<Finished<_, ()>> = t.due(start + T1 * 64, |_, _| {});
        assert_eq!(ended.len(), 1);
    }

    #[test]
    fn a_provisional_response_slows_timer_e_and_a_final_one_ends_it() {
        let mut t = table();
        let start = Instant::now();
        let key = open(&mut t, Transport::Udp, start);
        assert_eq!(t.response(key, Some(&Method::Notify), 100, "trying"), None);
        // The first resend is already scheduled at T1; after it, every T2.
        assert_eq!(resends(&mut t, start, 9_000), [500, 4500, 8500]);
        assert_eq!(t.response(key, Some(&Method::Subscribe), 200, "ok"), None);
        assert_eq!(t.response(key + 1, Some(&Method::Notify), 200, "ok"), None);
        let done = t.response(key, Some(&Method::Notify), 481, "gone");
        assert_eq!(
            done,
            Some(Finished {
                owner: "w",
                tag: 7,
                ending: Ending::Response("gone")
            })
        );
        assert_eq!(t.len(), 0);
        let later: Vec<Finished<_, ()>> = t.due(start + T1 * 64, |_, _| panic!("ended"));
        assert!(later.is_empty());
    }
}
