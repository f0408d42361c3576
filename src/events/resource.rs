//! `Resource`: one actor per (event package, AOR) of a package served from publications.
//!
//! Owns: the resource's publications by entity-tag (RFC 3903, each with its expiry timer, each
//! committed before its 2xx), its watchers' `Recipient`s, and its state: the package's
//! combination of the live publications, or its default body, or for a package with a state
//! source the source's newest state (fetched when the resource starts; watchers that come
//! before it arrives wait for it), rebuilt on every change and pushed as one shared document
//! to every watcher. Created on demand by the `EventAgent`;
//! when it holds nothing it says so (`ResourceIdle`) and stops when the agent answers `Stop`
//! (the presentity's protocol: no message is lost to a resource that is stopping).
//! Must not: know what its package's bodies mean (the package does) or talk SIP.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::prelude::*;
use bytes::Bytes;
use log::{debug, warn};

use super::agent::{EventAgent, ResourceIdle};
use super::package::EventPackage;
use super::publications::{Plan, Publications};
use super::source::{FetchState, SourcedState};
use crate::inspect::InspectPublications;
use crate::presence::aor::Aor;
use crate::presence::document::{PresenceDocument, SharedDocument};
use crate::presence::presentity::{
    AddWatcher, PresenceChanged, PublishRespond, RemoveWatcher, Stop,
};
use crate::presence::publication::PublishKind;
use crate::sip::Reject;
use crate::store::{unix_now, Change, Persist, PublicationRow};

/// A PUBLISH that passed the package's and RFC 3903's stateless checks.
#[derive(Message)]
#[rtype(result = "()")]
pub struct PublishState {
    /// What it asks for.
    pub kind: PublishKind,
    /// The body, for initial and modify.
    pub body: Bytes,
    /// Granted expiry, seconds.
    pub expires: u32,
    /// Told the outcome once committed (or refused).
    pub respond: PublishRespond,
    /// When it was received.
    pub received_at: Instant,
}

/// A publication loaded from the store at start-up.
#[derive(Message, Debug)]
#[rtype(result = "()")]
pub struct RestoreState {
    /// Its entity-tag.
    pub etag: String,
    /// The body as stored.
    pub body: Bytes,
    /// Seconds left.
    pub expires: u32,
    /// Modification order.
    pub seq: u64,
}

/// The resource actor.
pub struct Resource {
    package: Arc<dyn EventPackage>,
    aor: Aor,
    publications: Publications<Bytes>,
    /// Watchers' inboxes; each removes itself when it ends.
    watchers: HashMap<u64, Recipient<PresenceChanged>>,
    current: SharedDocument,
    /// Messages received from the agent, echoed in `ResourceIdle`.
    received: u64,
    idle_reported: bool,
    /// The agent that created it.
    agent: Addr<EventAgent>,
    /// The store: publications are committed before their 2xx.
    store: Recipient<Persist>,
    /// Retry-After of a 503, seconds.
    retry_after: u32,
    /// The package's state source, if it has one.
    source: Option<Recipient<FetchState>>,
    /// The source's newest state.
    sourced: Option<SourcedState>,
    /// The first state of the source has not arrived: watchers are told nothing yet.
    awaiting_source: bool,
}

/// What a resource is given to work within.
#[derive(Debug, Clone, Copy)]
pub struct ResourceLimits {
    /// Retry-After of a 503, seconds.
    pub retry_after: u32,
    /// Live publications at most.
    pub max_publications: usize,
}

/// A source's newer state of the resource, from the agent.
#[derive(Message, Debug)]
#[rtype(result = "()")]
pub struct SourceChanged(pub SourcedState);

impl Resource {
    /// A resource with nothing published.
    pub fn new(
        package: Arc<dyn EventPackage>,
        aor: Aor,
        agent: Addr<EventAgent>,
        store: Recipient<Persist>,
        limits: ResourceLimits,
        source: Option<Recipient<FetchState>>,
    ) -> Self {
        let body = package.default_body(&aor);
        let publications = Publications::new(package.name(), limits.max_publications);
        Self {
            current: Arc::new(PresenceDocument {
                aor: aor.clone(),
                version: 0,
                body,
                unowned_alias: false,
                changed_at: Instant::now(),
            }),
            package,
            aor,
            publications,
            watchers: HashMap::new(),
            received: 0,
            idle_reported: false,
            agent,
            store,
            retry_after: limits.retry_after,
            awaiting_source: source.is_some(),
            source,
            sourced: None,
        }
    }

    /// The state now: the source's, or the package's combination of the live publications,
    /// newest first.
    fn state(&self) -> Bytes {
        if let Some(s) = &self.sourced {
            return s.body.clone();
        }
        let live = self.publications.newest_first();
        if live.is_empty() {
            return self.package.default_body(&self.aor);
        }
        let bodies: Vec<&Bytes> = live.iter().map(|(_, p)| &p.body).collect();
        self.package.combine(&self.aor, &bodies)
    }

    /// Takes a source's state unless a newer one is already there.
    fn take_sourced(&mut self, state: SourcedState) {
        if self.sourced.as_ref().is_none_or(|s| s.seq < state.seq) {
            self.sourced = Some(state);
        }
    }

    /// Pushes the state to every watcher if it changed.
    fn changed(&mut self) {
        self.changed_since(Instant::now());
    }

    /// The state changed because of a request received `at` (a NOTIFY's latency is measured
    /// from there).
    fn changed_since(&mut self, at: Instant) {
        if self.awaiting_source {
            return;
        }
        let body = self.state();
        if body == self.current.body {
            return;
        }
        self.current = Arc::new(PresenceDocument {
            aor: self.aor.clone(),
            version: self.current.version + 1,
            body,
            unowned_alias: false,
            changed_at: at,
        });
        for w in self.watchers.values() {
            // do_send: one per change per watcher, which coalesces NOTIFYs itself.
            w.do_send(PresenceChanged(self.current.clone()));
        }
    }

    fn is_empty(&self) -> bool {
        self.publications.is_empty() && self.watchers.is_empty()
    }

    fn check_idle(&mut self) {
        if self.is_empty() && !self.idle_reported {
            self.idle_reported = true;
            self.agent.do_send(ResourceIdle {
                package: self.package.name(),
                aor: self.aor.clone(),
                received: self.received,
            });
        } else if !self.is_empty() {
            self.idle_reported = false;
        }
    }

    fn arm(etag: String, expires: u32, ctx: &mut Context<Self>) -> SpawnHandle {
        ctx.run_later(Duration::from_secs(u64::from(expires)), move |act, _| {
            if act.publications.remove(&etag).is_some() {
                debug!(
                    "{} {}: publication {etag} expired",
                    act.package.name(),
                    act.aor
                );
                // do_send: one per expiry; nothing waits for it.
                act.store
                    .do_send(Persist(vec![Change::PublicationRemoved(etag.clone())]));
                act.changed();
                act.check_idle();
            }
        })
    }

    fn row(&self, etag: &str, body: &Bytes, seq: u64, expires: u32) -> PublicationRow {
        PublicationRow {
            etag: etag.to_owned(),
            aor: self.aor.to_string(),
            body: body.to_vec(),
            content_type: self
                .package
                .publish_types()
                .first()
                .copied()
                .unwrap_or_default()
                .to_owned(),
            expires_at: unix_now() + i64::from(expires),
            seq: seq as i64,
            event: self.package.name().to_owned(),
        }
    }
}

impl Actor for Resource {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        let Some(source) = self.source.clone() else {
            return;
        };
        let fetch = source.send(FetchState {
            aor: self.aor.clone(),
        });
        ctx.spawn(fetch.into_actor(self).map(|res, act, _| {
            act.awaiting_source = false;
            match res {
                Ok(state) => act.take_sourced(state),
                Err(e) => warn!(
                    "{} {}: state source unreachable ({e}), default state",
                    act.package.name(),
                    act.aor
                ),
            }
            let before = act.current.version;
            act.changed();
            if act.current.version == before {
                // Unchanged, so not pushed: the watchers that came while waiting have nothing.
                for w in act.watchers.values() {
                    w.do_send(PresenceChanged(act.current.clone()));
                }
            }
        }));
    }
}

impl Handler<SourceChanged> for Resource {
    type Result = ();

    fn handle(&mut self, msg: SourceChanged, _ctx: &mut Self::Context) {
        self.received += 1;
        self.take_sourced(msg.0);
        self.changed();
        self.check_idle();
    }
}

impl Handler<PublishState> for Resource {
    // Atomic: nothing else is handled while the change is committed (RFC 3903 §6 step 5).
    type Result = AtomicResponse<Self, ()>;

    fn handle(&mut self, msg: PublishState, _ctx: &mut Self::Context) -> Self::Result {
        self.received += 1;
        let PublishState {
            kind,
            body,
            expires,
            respond,
            received_at,
        } = msg;
        let body = matches!(kind, PublishKind::Initial | PublishKind::Modify(_)).then_some(body);
        let plan = match self.publications.plan(&self.aor, kind, body, expires) {
            Ok(plan) => plan,
            Err(reject) => {
                self.check_idle();
                respond(Err(reject));
                return AtomicResponse::new(Box::pin(fut::ready(())));
            }
        };
        let (change, superseded) = match &plan {
            Plan::Remove { etag } => (Change::PublicationRemoved(etag.clone()), Vec::new()),
            Plan::Put {
                old,
                etag,
                body,
                seq,
                expires,
                modified,
            } => {
                // Older publications the new body leaves nothing of go with it, in the same
                // commit.
                let superseded: Vec<String> = if *modified {
                    self.publications
                        .iter()
                        .filter(|(tag, p)| {
                            Some(*tag) != old.as_ref() && self.package.supersedes(body, &p.body)
                        })
                        .map(|(tag, _)| tag.clone())
                        .collect()
                } else {
                    Vec::new()
                };
                let change = Change::PublicationSaved {
                    row: self.row(etag, body, *seq, *expires),
                    replaces: old.clone(),
                };
                (change, superseded)
            }
        };
        let mut changes = vec![change];
        changes.extend(superseded.iter().cloned().map(Change::PublicationRemoved));
        let retry_after = self.retry_after;
        let persist = self.store.send(Persist(changes));
        AtomicResponse::new(Box::pin(persist.into_actor(self).map(
            move |res, act, ctx| {
                if !matches!(res, Ok(Ok(()))) {
                    act.check_idle();
                    respond(Err(
                        Reject::new(503).header("Retry-After", retry_after.to_string())
                    ));
                    return;
                }
                let accepted = plan.accepted();
                let mut ended = act.publications.apply(plan, |etag, expires| {
                    Self::arm(etag.to_owned(), expires, ctx)
                });
                ended.extend(superseded.iter().filter_map(|t| act.publications.remove(t)));
                for timer in ended {
                    ctx.cancel_future(timer);
                }
                act.changed_since(received_at);
                act.check_idle();
                respond(Ok(accepted));
            },
        )))
    }
}

impl Handler<RestoreState> for Resource {
    type Result = ();

    fn handle(&mut self, msg: RestoreState, ctx: &mut Self::Context) {
        self.received += 1;
        let timer = Self::arm(msg.etag.clone(), msg.expires, ctx);
        self.publications
            .insert(msg.etag, msg.body, msg.seq, msg.expires, timer);
        self.changed();
        self.check_idle();
    }
}

impl Handler<AddWatcher> for Resource {
    type Result = ();

    fn handle(&mut self, msg: AddWatcher, _ctx: &mut Self::Context) {
        self.received += 1;
        if !self.awaiting_source {
            msg.recipient.do_send(PresenceChanged(self.current.clone()));
        }
        self.watchers.insert(msg.id, msg.recipient);
        self.check_idle();
    }
}

impl Handler<RemoveWatcher> for Resource {
    type Result = ();

    fn handle(&mut self, msg: RemoveWatcher, _ctx: &mut Self::Context) {
        self.watchers.remove(&msg.id);
        self.check_idle();
    }
}

impl Handler<Stop> for Resource {
    type Result = ();

    fn handle(&mut self, _msg: Stop, ctx: &mut Self::Context) {
        if self.is_empty() {
            ctx.stop();
        }
    }
}

impl Handler<InspectPublications> for Resource {
    type Result = MessageResult<InspectPublications>;

    fn handle(&mut self, _msg: InspectPublications, _ctx: &mut Self::Context) -> Self::Result {
        let content_type = self
            .package
            .publish_types()
            .first()
            .copied()
            .unwrap_or_default();
        MessageResult(self.publications.reports(|_| content_type.to_owned()))
    }
}
