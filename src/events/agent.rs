//! `EventAgent`: the entry point of the event packages besides presence (which has its own
//! agent), and the owner of their (package, AOR) → resource map.
//!
//! Owns: the packages registered at start-up and their state sources (`source`: the
//! registrar for reg), the resource table (created on demand, stopped when idle, as the
//! presence agent does with presentities), the stateless checks of initial SUBSCRIBE (RFC 6665
//! §4.2.1, the body type by Accept, the package's rule of who may subscribe) and PUBLISH (RFC
//! 3903 §6, 489 for a package nothing is published to, then the package's own body check),
//! starting one `Watcher<ResourceView>` per accepted subscription, attaching list watchers to
//! resources, and restoring stored publications and subscriptions of its packages. Created by
//! `app`; lives as long as the system. Must not: know what a package's bodies mean (the
//! package does) or send SIP itself.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use actix::prelude::*;
use log::{info, warn};

use super::package::{negotiate, EventPackage, Subscribers};
use super::resource::{PublishState, Resource, ResourceLimits, RestoreState, SourceChanged};
use super::source::{AttachSource, FetchState, StateSourced};
use crate::awaiting::{Awaiting, Deferred};
use crate::inspect::{
    InspectPublications, InspectResources, PublicationReport, RemoveFailed, RemovePublication,
};
use crate::presence::agent::removal_outcome;
use crate::presence::agent::{subscription_dialog_for, PresenceConfig};
use crate::presence::aor::Aor;
use crate::presence::document::SharedDocument;
use crate::presence::presentity::{
    publish_responder, AddWatcher, PresenceChanged, RemoveWatcher, Stop,
};
use crate::presence::publication::{self, PublishKind};
use crate::presence::subscription::SubscriptionDialog;
use crate::presence::view::{Due, Latest, NotifyContent, NotifyView, UpdateFuture};
use crate::presence::watcher::{launch, new_watcher_id, WatcherInit, WatcherShared};
use crate::sip::dispatcher::{IncomingRequest, Reply};
use crate::sip::message::{HeaderAccess, Method, Request};
use crate::sip::{Dispatcher, Reject};
use crate::store::{unix_now, Change, Persist, PublicationRow, SubscriptionRow};

/// A resource holds nothing any more.
#[derive(Message, Debug)]
#[rtype(result = "()")]
pub struct ResourceIdle {
    /// Its package.
    pub package: &'static str,
    /// Its AOR.
    pub aor: Aor,
    /// How many agent messages it had received.
    pub received: u64,
}

/// Attach a list watcher (RFC 4662) to the resources of `aors` in `package`; each answers with
/// its state.
#[derive(Message)]
#[rtype(result = "()")]
pub struct AttachResourceWatcher {
    /// The package.
    pub package: &'static str,
    /// The watcher's id (`new_watcher_id`).
    pub id: u64,
    /// The resources to watch.
    pub aors: Vec<Aor>,
    /// Where their states go.
    pub recipient: Recipient<PresenceChanged>,
}

/// Detach a watcher attached with `AttachResourceWatcher`.
#[derive(Message, Debug)]
#[rtype(result = "()")]
pub struct DetachResourceWatcher {
    /// The package.
    pub package: &'static str,
    /// The watcher's id.
    pub id: u64,
    /// The resources it no longer watches.
    pub aors: Vec<Aor>,
}

/// Stored publications of the agent's packages, loaded at start-up (oldest first).
#[derive(Message, Debug)]
#[rtype(result = "()")]
pub struct RestoreEventPublications(pub Vec<PublicationRow>);

/// Stored subscriptions of the agent's packages, with their NOTIFY CSeq marks (already moved
/// up by the store), handed over by the presence agent as it restores its own.
#[derive(Message, Debug)]
#[rtype(result = "()")]
pub struct RestoreEventSubscriptions(pub Vec<(SubscriptionDialog, i64)>);

struct Entry {
    addr: Addr<Resource>,
    sent: u64,
}

/// The event agent actor.
pub struct EventAgent {
    config: PresenceConfig,
    packages: HashMap<&'static str, Arc<dyn EventPackage>>,
    resources: HashMap<(&'static str, Aor), Entry>,
    /// The store's group committer.
    store: Recipient<Persist>,
    /// What the agent's watchers share.
    watchers: Arc<WatcherShared>,
    /// Requests waiting for their commit.
    awaiting: Awaiting<Self>,
    /// The state sources of packages whose state presenced keeps itself.
    sources: HashMap<&'static str, Recipient<FetchState>>,
}

/// The agent's answer to a request.
type Answer = Deferred<EventAgent, Result<Reply, Reject>>;

impl EventAgent {
    /// An agent serving `packages`, whose watchers send through `dispatcher`.
    pub fn new(
        config: PresenceConfig,
        packages: Vec<Arc<dyn EventPackage>>,
        dispatcher: Addr<Dispatcher>,
        store: Recipient<Persist>,
    ) -> Self {
        let watchers = Arc::new(WatcherShared {
            settings: config.watcher.clone(),
            dispatcher,
            store: store.clone(),
        });
        Self {
            config,
            packages: packages.into_iter().map(|p| (p.name(), p)).collect(),
            resources: HashMap::new(),
            store,
            watchers,
            awaiting: Awaiting::default(),
            sources: HashMap::new(),
        }
    }

    /// The package a request's Event names, among the agent's.
    fn package_of(&self, req: &Request) -> Result<Arc<dyn EventPackage>, Reject> {
        match req.event() {
            Some(Ok(e)) => self
                .packages
                .values()
                .find(|p| e.is(p.name()))
                .cloned()
                .ok_or_else(|| self.unserved()),
            Some(Err(_)) => Err(Reject::with_reason(400, "Malformed Event")),
            None => Err(self.unserved()),
        }
    }

    fn unserved(&self) -> Reject {
        let mut names: Vec<&str> = self.packages.keys().copied().collect();
        names.sort_unstable();
        Reject::new(489).header("Allow-Events", names.join(", "))
    }

    /// The resource of (`package`, `aor`), created if needed; counts the message about to go.
    fn resource(
        &mut self,
        package: &Arc<dyn EventPackage>,
        aor: &Aor,
        ctx: &mut Context<Self>,
    ) -> Addr<Resource> {
        let retry_after = self.config.watcher.retry_after;
        let key = (package.name(), aor.clone());
        let store = self.store.clone();
        let source = self.sources.get(package.name()).cloned();
        let entry = self.resources.entry(key).or_insert_with(|| Entry {
            addr: Resource::new(
                package.clone(),
                aor.clone(),
                ctx.address(),
                store,
                ResourceLimits {
                    retry_after,
                    max_publications: self.config.publish.max_per_resource,
                },
                source,
            )
            .start(),
            sent: 0,
        });
        entry.sent += 1;
        entry.addr.clone()
    }

    fn subscribe(&mut self, msg: IncomingRequest, ctx: &mut Context<Self>) -> Answer {
        let dialog = self.package_of(&msg.request).and_then(|package| {
            let dialog = subscription_dialog_for(&msg, &self.config, package.name(), &[])?;
            negotiate(package.as_ref(), dialog.accept.as_deref())?;
            Ok(dialog)
        });
        let dialog = match dialog {
            Ok(d) => d,
            Err(e) => return Deferred::now(Err(e)),
        };
        if let Err(e) = self.may_subscribe(&msg, &dialog) {
            return Deferred::now(Err(e));
        }
        if dialog.expires == 0 {
            // A fetch: one NOTIFY, nothing stored.
            return Deferred::now(Ok(self.start_watcher(dialog, None, ctx)));
        }
        let persist = self
            .store
            .send(Persist(vec![Change::SubscriptionCreated(Box::new(
                dialog.initial_row(),
            ))]));
        let retry_after = self.config.watcher.retry_after;
        self.awaiting.then(persist, move |res, act, ctx| match res {
            Ok(Ok(())) => Ok(act.start_watcher(dialog, None, ctx)),
            _ => Err(Reject::new(503).header("Retry-After", retry_after.to_string())),
        })
    }

    /// The package's rule of who may subscribe.
    fn may_subscribe(
        &self,
        msg: &IncomingRequest,
        dialog: &SubscriptionDialog,
    ) -> Result<(), Reject> {
        let Some(package) = self.packages.get(dialog.package.as_str()) else {
            return Err(self.unserved());
        };
        match package.subscribers() {
            Subscribers::Anyone => Ok(()),
            Subscribers::OwnerOnly => {
                if Aor::from_uri(&msg.from.uri).as_ref() == Some(&dialog.aor) {
                    Ok(())
                } else {
                    info!(
                        "{} {}: subscription from {} refused, owner only",
                        package.name(),
                        dialog.aor,
                        msg.from.uri
                    );
                    Err(Reject::new(403))
                }
            }
        }
    }

    /// Starts the watcher of a new (or recovered, with its CSeq mark) subscription; the 200
    /// for a new one.
    fn start_watcher(
        &mut self,
        dialog: SubscriptionDialog,
        recovered_mark: Option<i64>,
        ctx: &mut Context<Self>,
    ) -> Reply {
        let Some(package) = self.packages.get(dialog.package.as_str()).cloned() else {
            warn!(
                "subscription to {}: package {} not served",
                dialog.aor, dialog.package
            );
            return Reply::default();
        };
        let id = new_watcher_id();
        let (aor, expires) = (dialog.aor.clone(), dialog.expires);
        // Checked when the subscription was made; a stored one gets its type again.
        let media_type = negotiate(package.as_ref(), dialog.accept.as_deref())
            .ok()
            .or_else(|| package.notify_types().first().copied())
            .unwrap_or_default();
        let resource = self.resource(&package, &aor, ctx);
        let init = WatcherInit {
            id,
            dialog,
            shared: self.watchers.clone(),
        };
        let view = ResourceView {
            package: package.clone(),
            media_type,
            resource: resource.clone(),
            latest: Latest::default(),
        };
        let reply = launch(init, view, recovered_mark, |recipient| {
            resource.do_send(AddWatcher { id, recipient });
        });
        if recovered_mark.is_none() {
            info!(
                "{} {aor}: watcher {id} subscribed for {expires} s",
                package.name()
            );
        }
        reply
    }

    fn publish(&mut self, msg: IncomingRequest, ctx: &mut Context<Self>) -> Answer {
        let req = &msg.request;
        let package = match self.package_of(req) {
            Ok(p) => p,
            Err(e) => return Deferred::now(Err(e)),
        };
        if package.publish_types().is_empty() {
            let mut names: Vec<&str> = self
                .packages
                .values()
                .filter(|p| !p.publish_types().is_empty())
                .map(|p| p.name())
                .collect();
            names.sort_unstable();
            return Deferred::now(Err(Reject::with_reason(489, "Event Not Publishable")
                .header("Allow-Events", names.join(", "))));
        }
        let checked = match publication::check_for(
            req,
            &self.config.publish,
            package.name(),
            package.publish_types(),
        ) {
            Ok(c) => c,
            Err(e) => return Deferred::now(Err(e)),
        };
        if matches!(checked.kind, PublishKind::Initial | PublishKind::Modify(_)) {
            if let Err(e) = package.validate(&req.body) {
                return Deferred::now(Err(e));
            }
        }
        let Some(aor) = Aor::from_uri(&req.uri) else {
            return Deferred::now(Err(Reject::new(404)));
        };
        let body = req.body.clone();
        let received_at = msg.received_at;
        let resource = self.resource(&package, &aor, ctx);
        // The resource answers the dispatcher itself once the change is committed.
        Deferred::hand_over(move |to| {
            resource.do_send(PublishState {
                kind: checked.kind,
                body,
                expires: checked.expires,
                respond: publish_responder(to),
                received_at,
            });
        })
    }
}

impl Actor for EventAgent {
    type Context = Context<Self>;
}

impl Handler<IncomingRequest> for EventAgent {
    type Result = Answer;

    fn handle(&mut self, msg: IncomingRequest, ctx: &mut Self::Context) -> Self::Result {
        match msg.request.method {
            Method::Subscribe => self.subscribe(msg, ctx),
            Method::Publish => self.publish(msg, ctx),
            _ => Deferred::now(Err(Reject::new(405))),
        }
    }
}

impl Handler<ResourceIdle> for EventAgent {
    type Result = ();

    fn handle(&mut self, msg: ResourceIdle, _ctx: &mut Self::Context) {
        let key = (msg.package, msg.aor);
        if let Some(entry) = self.resources.get(&key) {
            if entry.sent == msg.received {
                entry.addr.do_send(Stop);
                self.resources.remove(&key);
            }
        }
    }
}

impl Handler<AttachResourceWatcher> for EventAgent {
    type Result = ();

    fn handle(&mut self, msg: AttachResourceWatcher, ctx: &mut Self::Context) {
        let Some(package) = self.packages.get(msg.package).cloned() else {
            warn!(
                "list watcher {}: package {} not served",
                msg.id, msg.package
            );
            return;
        };
        for aor in msg.aors {
            self.resource(&package, &aor, ctx).do_send(AddWatcher {
                id: msg.id,
                recipient: msg.recipient.clone(),
            });
        }
    }
}

impl Handler<DetachResourceWatcher> for EventAgent {
    type Result = ();

    fn handle(&mut self, msg: DetachResourceWatcher, _ctx: &mut Self::Context) {
        for aor in msg.aors {
            if let Some(entry) = self.resources.get(&(msg.package, aor)) {
                entry.addr.do_send(RemoveWatcher { id: msg.id });
            }
        }
    }
}

impl Handler<AttachSource> for EventAgent {
    type Result = ();

    fn handle(&mut self, msg: AttachSource, _ctx: &mut Self::Context) {
        self.sources.insert(msg.package, msg.fetch);
    }
}

impl Handler<StateSourced> for EventAgent {
    type Result = ();

    fn handle(&mut self, msg: StateSourced, _ctx: &mut Self::Context) {
        // Only a live resource wants it; one that starts later fetches the state itself.
        if let Some(entry) = self.resources.get_mut(&(msg.package, msg.aor)) {
            entry.sent += 1;
            entry.addr.do_send(SourceChanged(msg.state));
        }
    }
}

impl Handler<RestoreEventPublications> for EventAgent {
    type Result = ();

    fn handle(&mut self, msg: RestoreEventPublications, ctx: &mut Self::Context) {
        let now = unix_now();
        for row in msg.0 {
            let (Some(package), Some(aor)) = (
                self.packages.get(row.event.as_str()).cloned(),
                Aor::parse(&row.aor),
            ) else {
                warn!(
                    "stored publication {} ({} of {}) not served, dropped",
                    row.etag, row.event, row.aor
                );
                continue;
            };
            self.resource(&package, &aor, ctx).do_send(RestoreState {
                etag: row.etag,
                body: row.body.into(),
                expires: u32::try_from((row.expires_at - now).max(1)).unwrap_or(u32::MAX),
                seq: u64::try_from(row.seq).unwrap_or(0),
            });
        }
    }
}

impl Handler<RestoreEventSubscriptions> for EventAgent {
    type Result = ();

    fn handle(&mut self, msg: RestoreEventSubscriptions, ctx: &mut Self::Context) {
        let count = msg.0.len();
        for (dialog, mark) in msg.0 {
            let _ = self.start_watcher(dialog, Some(mark), ctx);
        }
        info!("{count} event subscriptions restored");
    }
}

/// What a subscription to a package's resource notifies: the resource's state, as the package
/// writes it.
pub struct ResourceView {
    package: Arc<dyn EventPackage>,
    /// The resource; it holds this watcher's `Recipient` until `RemoveWatcher`.
    resource: Addr<Resource>,
    latest: Latest,
    /// The body type this watcher gets (its Accept's choice).
    media_type: &'static str,
}

impl NotifyView for ResourceView {
    type Update = ();

    fn changed(&mut self, doc: SharedDocument) {
        self.latest.set(doc);
    }

    fn due(&self, full_state: bool, _now: Instant) -> Due {
        self.latest.due(full_state)
    }

    fn next(&mut self, _full_state: bool, version: u32, _now: Instant) -> NotifyContent {
        let package = self.package.clone();
        let doc = self.latest.take();
        NotifyContent {
            content_type: self.media_type.to_owned(),
            changed_at: doc.map(|d| d.changed_at),
            body: doc
                .map(|d| package.notify_body(&d.body, version, self.media_type))
                .unwrap_or_default(),
        }
    }

    fn check_update(&self, _request: &Request) -> UpdateFuture<()> {
        Box::pin(std::future::ready(Ok(())))
    }

    fn fill_row(&self, _update: Option<&()>, _row: &mut SubscriptionRow) {}

    fn apply_update(&mut self, _: (), _: u64, _: Recipient<PresenceChanged>) {}

    fn detach(&mut self, watcher_id: u64) {
        // do_send: one message per ended subscription.
        self.resource.do_send(RemoveWatcher { id: watcher_id });
    }

    fn event_package(&self) -> &'static str {
        self.package.name()
    }
}

impl Handler<InspectResources> for EventAgent {
    type Result = ResponseFuture<Vec<PublicationReport>>;

    fn handle(&mut self, msg: InspectResources, _ctx: &mut Self::Context) -> Self::Result {
        let mut names: Vec<&'static str> = self.packages.keys().copied().collect();
        names.sort_unstable();
        let asked: Vec<_> = names
            .into_iter()
            .filter_map(|name| self.resources.get(&(name, msg.0.clone())))
            .map(|e| e.addr.send(InspectPublications))
            .collect();
        Box::pin(async move {
            let mut out = Vec::new();
            for answer in asked {
                out.extend(answer.await.unwrap_or_default());
            }
            out
        })
    }
}

impl Handler<RemovePublication> for EventAgent {
    type Result = ResponseFuture<Result<bool, RemoveFailed>>;

    fn handle(&mut self, msg: RemovePublication, _ctx: &mut Self::Context) -> Self::Result {
        // The entity-tag says nothing of its package: each live resource of the AOR is asked
        // in turn, and answers 412 unless it holds it.
        let mut removals = Vec::new();
        for (key, entry) in &mut self.resources {
            if key.1 != msg.aor {
                continue;
            }
            entry.sent += 1;
            let (tx, rx) = tokio::sync::oneshot::channel();
            entry.addr.do_send(PublishState {
                kind: PublishKind::Remove(msg.etag.clone()),
                body: bytes::Bytes::new(),
                expires: 0,
                respond: Box::new(move |outcome| {
                    let _ = tx.send(outcome);
                }),
                received_at: Instant::now(),
            });
            removals.push(rx);
        }
        Box::pin(async move {
            let mut removed = false;
            for rx in removals {
                removed |= removal_outcome(rx.await.ok())?;
            }
            Ok(removed)
        })
    }
}
