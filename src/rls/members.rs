//! `ListMembers`: where a list subscription's members are watched, by its event package —
//! presentities at the presence agent, or a package's resources (dialog for a busy-lamp list)
//! at the event agent — and what their parts in a list NOTIFY are.
//!
//! Owns: attaching and detaching a list watcher at its members, the part type and body of a
//! member's document (a versioned package writes the list NOTIFY's version into it, which only
//! goes up, across restarts too), and the list NOTIFY's Event. Must not: hold state.

use std::sync::Arc;

use actix::prelude::*;
use bytes::Bytes;

use crate::events::agent::{AttachResourceWatcher, DetachResourceWatcher};
use crate::events::{EventAgent, EventPackage};
use crate::presence::agent::{AttachWatcher, DetachWatcher, PresenceAgent, Reresolve};
use crate::presence::aor::Aor;
use crate::presence::document::{PIDF_CONTENT_TYPE, PRESENCE_PACKAGE};
use crate::presence::presentity::PresenceChanged;

/// Where a list's members are watched.
#[derive(Clone)]
pub enum ListMembers {
    /// Presentities (Event: presence).
    Presence(Addr<PresenceAgent>),
    /// A package's resources.
    Package {
        /// The package.
        package: Arc<dyn EventPackage>,
        /// The agent holding its resources.
        agent: Addr<EventAgent>,
    },
}

impl ListMembers {
    /// The package's Event name.
    pub fn package(&self) -> &'static str {
        match self {
            Self::Presence(_) => PRESENCE_PACKAGE,
            Self::Package { package, .. } => package.name(),
        }
    }

    /// Whether members can be phone numbers resolved through the users database.
    pub fn resolves_phones(&self) -> bool {
        matches!(self, Self::Presence(_))
    }

    /// Watches `aors` for `id`; each answers with its document.
    pub fn attach(&self, id: u64, aors: Vec<Aor>, recipient: Recipient<PresenceChanged>) {
        // do_send: one message per list subscription (or list change).
        match self {
            Self::Presence(agent) => agent.do_send(AttachWatcher {
                id,
                aors,
                recipient,
            }),
            Self::Package { package, agent } => agent.do_send(AttachResourceWatcher {
                package: package.name(),
                id,
                aors,
                recipient,
            }),
        }
    }

    /// Stops watching `aors` for `id`.
    pub fn detach(&self, id: u64, aors: Vec<Aor>) {
        // do_send: one message per ended subscription (or list change).
        match self {
            Self::Presence(agent) => agent.do_send(DetachWatcher { id, aors }),
            Self::Package { package, agent } => agent.do_send(DetachResourceWatcher {
                package: package.name(),
                id,
                aors,
            }),
        }
    }

    /// Asks again who owns the numbers `phones` (a refresh).
    pub fn reresolve(&self, phones: Vec<Aor>) {
        if let Self::Presence(agent) = self {
            // do_send: one per refresh.
            agent.do_send(Reresolve { aors: phones });
        }
    }

    /// The media type of a member's part.
    pub fn part_type(&self) -> &'static str {
        match self {
            Self::Presence(_) => PIDF_CONTENT_TYPE,
            Self::Package { package, .. } => {
                package.notify_types().first().copied().unwrap_or_default()
            }
        }
    }

    /// A member's part body, in the list NOTIFY numbered `version`.
    pub fn part_body(&self, body: &Bytes, version: u32) -> Bytes {
        match self {
            Self::Presence(_) => body.clone(),
            Self::Package { package, .. } => package.notify_body(body, version, self.part_type()),
        }
    }
}
