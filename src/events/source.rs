//! State sources: components that keep a package's state themselves instead of receiving it
//! by PUBLISH (the registrar, for reg), and the messages between them and the event layer.
//!
//! Owns: the contract. A source numbers its states (higher is newer, over all its AORs), tells
//! the agent of every change (`StateSourced`, dropped when nobody watches the AOR), and answers
//! a resource that starts (`FetchState`), so that its first NOTIFY carries the state of now.
//! Must not: hold state or know a package.

use actix::prelude::*;
use bytes::Bytes;

use crate::presence::aor::Aor;

/// A package's state of one AOR, as its source wrote it.
#[derive(Debug, Clone)]
pub struct SourcedState {
    /// The source's change number (higher is newer).
    pub seq: u64,
    /// The state, as the package's documents carry it.
    pub body: Bytes,
}

/// Asks a source for an AOR's state now (a resource that starts).
#[derive(Message, Debug)]
#[rtype(result = "SourcedState")]
pub struct FetchState {
    /// The AOR.
    pub aor: Aor,
}

/// A source's state of an AOR changed (to the agent, which hands it to a live resource).
#[derive(Message, Debug)]
#[rtype(result = "()")]
pub struct StateSourced {
    /// The package.
    pub package: &'static str,
    /// The AOR.
    pub aor: Aor,
    /// Its state now.
    pub state: SourcedState,
}

/// Makes `fetch` the source of `package`'s state (sent once at start-up).
#[derive(Message)]
#[rtype(result = "()")]
pub struct AttachSource {
    /// The package.
    pub package: &'static str,
    /// Where its resources ask for their state.
    pub fetch: Recipient<FetchState>,
}
