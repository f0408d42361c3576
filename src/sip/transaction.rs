//! Non-INVITE transactions (RFC 3261 §17), as pure tables the dispatcher drives.
//!
//! Owns: server-transaction matching (§17.2.3) and the memory of final responses for
//! retransmissions (Timer J: 64×T1 on UDP, nothing on TCP); client-transaction bookkeeping
//! and the Timer E schedule (§17.1.2.2). Must not: send anything or arm timers itself; the
//! dispatcher owns the actor context, this module only says what is due.
//!
//! Server transaction states, as kept here:
//! ```text
//!   request ──► Trying ──final response──► Completed ──64×T1 (UDP) / at once (TCP)──► gone
//!                 ▲ retransmission: absorbed     ▲ retransmission: response sent again
//! ```

use std::collections::HashMap;
use std::fmt::Write as _;
use std::time::{Duration, Instant};

use bytes::Bytes;

use super::headers::Via;
use super::message::Method;
use super::transport::Target;

/// Most server transactions remembered at once; beyond it, new ones are not remembered (their
/// retransmissions are processed again rather than memory growing without bound).
pub const MAX_SERVER_TRANSACTIONS: usize = 200_000;

/// RFC 3261 §17.2.3: branch, sent-by and method identify a server transaction.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ServerKey {
    /// The branch, a space (which neither may contain), then the sent-by in lower case: one
    /// allocation per key.
    branch_sent_by: String,
    method: Method,
}

impl ServerKey {
    /// The key of a request with top Via `via` and request method `method`.
    pub fn new(via: &Via, method: &Method) -> Option<Self> {
        let branch = via.branch()?;
        let mut branch_sent_by = String::with_capacity(branch.len() + 48);
        branch_sent_by.push_str(branch);
        branch_sent_by.push(' ');
        // Infallible: writing into a String.
        let _ = write!(branch_sent_by, "{}", via.sent_by_display());
        if let Some(sent_by) = branch_sent_by.get_mut(branch.len() + 1..) {
            sent_by.make_ascii_lowercase();
        }
        Some(Self {
            branch_sent_by,
            method: method.clone(),
        })
    }

    /// The key of the transaction a CANCEL with this key targets (same branch, other method).
    pub fn cancelled(&self, method: Method) -> Self {
        Self {
            method,
            ..self.clone()
        }
    }
}

enum ServerState {
    Trying,
    Completed {
        response: Bytes,
        target: Target,
        until: Instant,
    },
}

/// What a request is, from the transaction layer's point of view.
#[derive(Debug, PartialEq, Eq)]
pub enum ServerMatch {
    /// A new transaction: process the request.
    New,
    /// A retransmission while the request is still being processed: absorb it.
    InProgress,
    /// A retransmission after the final response: send this again.
    Completed(Bytes, Target),
}

/// The server transaction table.
#[derive(Default)]
pub struct ServerTransactions {
    map: HashMap<ServerKey, ServerState>,
}

impl ServerTransactions {
    /// Matches a request, starting a transaction if it is new.
    pub fn begin(&mut self, key: &ServerKey) -> ServerMatch {
        match self.map.get(key) {
            Some(ServerState::Trying) => ServerMatch::InProgress,
            Some(ServerState::Completed {
                response, target, ..
            }) => ServerMatch::Completed(response.clone(), *target),
            None => {
                if self.map.len() < MAX_SERVER_TRANSACTIONS {
                    self.map.insert(key.clone(), ServerState::Trying);
                }
                ServerMatch::New
            }
        }
    }

    /// True if a transaction with this key exists (for CANCEL matching).
    pub fn contains(&self, key: &ServerKey) -> bool {
        self.map.contains_key(key)
    }

    /// Records the final response. On a reliable transport the state goes at once (Timer J
    /// is zero); otherwise it is kept for `linger` to answer retransmissions.
    pub fn complete(
        &mut self,
        key: &ServerKey,
        response: Bytes,
        target: Target,
        reliable: bool,
        linger: Duration,
        now: Instant,
    ) {
        if reliable {
            self.map.remove(key);
        } else if let Some(state) = self.map.get_mut(key) {
            *state = ServerState::Completed {
                response,
                target,
                until: now + linger,
            };
        }
    }

    /// Forgets completed transactions whose time is up.
    pub fn sweep(&mut self, now: Instant) {
        self.map.retain(|_, s| match s {
            ServerState::Trying => true,
            ServerState::Completed { until, .. } => *until > now,
        });
    }

    /// Transactions held.
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// True when none are held.
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }
}

/// The next Timer E interval (RFC 3261 §17.1.2.2): doubles from T1, capped at T2.
pub fn next_timer_e(current: Duration, t2: Duration) -> Duration {
    (current * 2).min(t2)
}

/// RFC 3261 §8.1.1.7: every branch we send starts with it.
const MAGIC_COOKIE: &str = "z9hG4bK";

/// Digits of a branch's key: 64 bits in lowercase hex.
const KEY_DIGITS: usize = 16;

/// A fresh client transaction key: 64 random bits, so that nobody who sees one branch can
/// guess another (a forged 481 to someone else's NOTIFY would end their subscription).
pub fn new_client_key() -> ClientKey {
    rand::random()
}

/// Appends the RFC 3261 branch of client transaction `key`: the magic cookie, then the key in
/// 16 lowercase hex digits.
pub fn push_branch(out: &mut String, key: ClientKey) {
    out.push_str(MAGIC_COOKIE);
    for shift in (0..KEY_DIGITS).rev() {
        let nibble = ((key >> (shift * 4)) & 0xf) as u8;
        out.push(char::from(match nibble {
            0..=9 => b'0' + nibble,
            _ => b'a' + nibble - 10,
        }));
    }
}

/// The client transaction key a response's top-Via branch names, if it is a branch we could
/// have sent: exactly what [`push_branch`] writes (branches compare case-sensitively).
pub fn client_key_of(branch: &str) -> Option<ClientKey> {
    let digits = branch.strip_prefix(MAGIC_COOKIE)?;
    if digits.len() != KEY_DIGITS
        || !digits
            .bytes()
            .all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
    {
        return None;
    }
    u64::from_str_radix(digits, 16).ok()
}

/// A fresh tag (RFC 3261 §19.3: at least 32 random bits).
pub fn new_tag() -> String {
    format!("{:016x}", rand::random::<u64>())
}

/// Client transactions are keyed by their branch (RFC 3261 §17.1.3: branch and CSeq method),
/// held as the 64 random bits the branch spells (see [`push_branch`]).
pub type ClientKey = u64;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sip::transport::Transport;

    fn key() -> ServerKey {
        let via = Via::parse("SIP/2.0/UDP 10.0.0.1:5060;branch=z9hG4bKabc").unwrap();
        ServerKey::new(&via, &Method::Options).unwrap()
    }

    fn target() -> Target {
        Target {
            transport: Transport::Udp,
            addr: "10.0.0.1:5060".parse().unwrap(),
            connection: None,
            local: None,
        }
    }

    #[test]
    fn retransmissions_are_absorbed_then_answered_from_memory() {
        let mut t = ServerTransactions::default();
        let now = Instant::now();
        assert_eq!(t.begin(&key()), ServerMatch::New);
        assert_eq!(t.begin(&key()), ServerMatch::InProgress);
        t.complete(
            &key(),
            Bytes::from_static(b"resp"),
            target(),
            false,
            Duration::from_secs(32),
            now,
        );
        assert_eq!(
            t.begin(&key()),
            ServerMatch::Completed(Bytes::from_static(b"resp"), target())
        );
        t.sweep(now + Duration::from_secs(33));
        assert!(t.is_empty());
    }

    #[test]
    fn reliable_transports_forget_at_once() {
        let mut t = ServerTransactions::default();
        assert_eq!(t.begin(&key()), ServerMatch::New);
        t.complete(
            &key(),
            Bytes::new(),
            target(),
            true,
            Duration::from_secs(32),
            Instant::now(),
        );
        assert!(t.is_empty());
    }

    #[test]
    fn timer_e_doubles_up_to_t2() {
        let t2 = Duration::from_secs(4);
        let mut e = Duration::from_millis(500);
        let mut seen = Vec::new();
        for _ in 0..5 {
            e = next_timer_e(e, t2);
            seen.push(e.as_millis());
        }
        assert_eq!(seen, vec![1000, 2000, 4000, 4000, 4000]);
    }

    #[test]
    fn a_branch_names_its_key_and_nothing_else_does() {
        for key in [0, 1, 0xdead_beef, u64::MAX, new_client_key()] {
            let mut branch = String::new();
            push_branch(&mut branch, key);
            assert_eq!(branch, format!("z9hG4bK{key:016x}"));
            assert_eq!(client_key_of(&branch), Some(key));
        }
        for other in [
            "",
            "z9hG4bK",
            "z9hG4bK00000000000000ff0",
            "z9hG4bK00000000000000f",
            "z9hG4bK00000000000000FF",
            "Z9HG4BK00000000000000ff",
            "z9hG4bK+000000000000000",
            "z9hG4bK00000000000000é",
            "abc",
        ] {
            assert_eq!(client_key_of(other), None, "{other}");
        }
    }
}
