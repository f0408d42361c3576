//! `PresenceAgent`: the presence event's entry point (RFC 3856's presence agent), and the
//! owner of the AOR → presentity map.
//!
//! Owns: the presentity table (creating presentities on demand, stopping idle ones), the
//! stateless checks of initial SUBSCRIBE (RFC 6665 §4.2.1, RFC 3856) and PUBLISH (RFC 3903
//! §6), PIDF parsing of PUBLISH bodies, and starting one `Watcher` per accepted subscription.
//! Receives binding changes from the registrar as messages, so other sources of registration
//! state can be added without touching presentities. Created by `app` at start-up; lives as
//! long as the system. Must not: send SIP itself (watchers and the dispatcher do).
//!
//! Every message it forwards to a presentity is counted; a presentity that reports itself idle
//! echoes the count it has received, and is stopped only when the two agree, so no message can
//! be lost to a presentity that is stopping.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use actix::prelude::*;
use bytes::Bytes;
use log::{debug, info, warn};

use super::aor::Aor;
use super::directory::{is_phone, LookupUser, UserDirectory, UserStatus};
use super::document::{PIDF_CONTENT_TYPE, PRESENCE_PACKAGE};
use super::formats::{FormatError, PresenceFormat};
use super::pidf::{self, PidfError};
use super::presentity::{
    publish_responder, AddWatcher, BindingTuple, PresenceChanged, Presentity, PresentitySettings,
    Publish, PublishAccepted, PublishRequest, RemoveWatcher, ResolveAgain, RestorePublication,
    SetBindings, Stop,
};
use super::publication::{self, PublishKind, PublishLimits};
use super::subscription::SubscriptionDialog;
use super::view::PresentityView;
use super::watcher::{launch, new_watcher_id, WatcherInit, WatcherSettings, WatcherShared};
use crate::awaiting::{Awaiting, Deferred};
use crate::events::agent::RestoreEventSubscriptions;
use crate::inspect::{
    Inspect, InspectPresentity, ListPresentities, PresentityReport, RemoveFailed,
    RemovePublication, Renotify,
};
use crate::sip::dispatcher::{IncomingRequest, Reply};
use crate::sip::headers::{accepts_media, parse_weighted_list, NameAddr};
use crate::sip::message::{HeaderAccess, Method};
use crate::sip::transaction::new_tag;
use crate::sip::{Dispatcher, Reject};
use crate::store::{
    unix_now, ActivityRow, Change, Persist, PublicationRow, SubscriptionChunk, SubscriptionRow,
};
use crate::xml::{XmlError, XmlLimits};

/// Settings the presence core needs, from `[presence]`.
#[derive(Debug, Clone)]
pub struct PresenceConfig {
    /// SUBSCRIBE: default, minimum and maximum Expires, seconds.
    pub subscribe_default: u32,
    /// Minimum SUBSCRIBE expiry.
    pub subscribe_min: u32,
    /// Maximum SUBSCRIBE expiry.
    pub subscribe_max: u32,
    /// PUBLISH expiry limits.
    pub publish: PublishLimits,
    /// Limits on PIDF bodies.
    pub xml: XmlLimits,
    /// Aggregation settings.
    pub presentity: PresentitySettings,
    /// Watcher settings.
    pub watcher: WatcherSettings,
}

/// Registrar bindings of an AOR changed (all current bindings given).
#[derive(Message, Debug)]
#[rtype(result = "()")]
pub struct BindingsChanged {
    /// The AOR.
    pub aor: Aor,
    /// Its current bindings.
    pub bindings: Vec<BindingTuple>,
}

/// Attach a watcher that is not the presence agent's own (a list subscription) to the presentities
/// of `aors`; each sends it its current document at once.
#[derive(Message)]
#[rtype(result = "()")]
pub struct AttachWatcher {
    /// The watcher's id (`new_watcher_id`).
    pub id: u64,
    /// The presentities to watch.
    pub aors: Vec<Aor>,
    /// Where their documents go.
    pub recipient: Recipient<PresenceChanged>,
}

/// Detach a watcher attached with `AttachWatcher` from the presentities of `aors`.
#[derive(Message, Debug)]
#[rtype(result = "()")]
pub struct DetachWatcher {
    /// The watcher's id.
    pub id: u64,
    /// The presentities it no longer watches.
    pub aors: Vec<Aor>,
}

/// A presentity holds nothing any more.
#[derive(Message, Debug)]
#[rtype(result = "()")]
pub struct PresentityIdle {
    /// Which.
    pub aor: Aor,
    /// How many messages from the presence agent it had received.
    pub received: u64,
    /// When it was last active, kept for its next presentity.
    pub last_active: Option<i64>,
}

/// Subscriptions to these AORs were refreshed: their presentities ask the users database
/// again (a list's numbers; the directory was already told to forget them).
#[derive(Message, Debug)]
#[rtype(result = "()")]
pub struct Reresolve {
    /// The AORs.
    pub aors: Vec<Aor>,
}

/// What the users database gives the presence agent: the directory, and when each presentity was
/// last active (from the store).
pub struct UsersContext {
    /// The directory; none when no users query is configured.
    pub directory: Option<Addr<UserDirectory>>,
    /// A SUBSCRIBE to a user the database does not know gets 404 (`users.unknown = "404"`).
    pub unknown_is_404: bool,
    /// Last activity by AOR, as stored.
    pub last_active: Vec<ActivityRow>,
}

struct Entry {
    addr: Addr<Presentity>,
    sent: u64,
}

/// The presence agent actor.
pub struct PresenceAgent {
    config: PresenceConfig,
    presentities: HashMap<Aor, Entry>,
    /// The store's group committer: subscriptions and publications are saved before 2xx.
    store: Recipient<Persist>,
    /// The start-up restore of stored subscriptions.
    restore: RestoreProgress,
    /// What the presence agent's watchers share.
    watchers: Arc<WatcherShared>,
    /// Requests waiting for their presentity or their commit.
    awaiting: Awaiting<Self>,
    /// The users database's answers; none when no users query is configured.
    directory: Option<Addr<UserDirectory>>,
    unknown_is_404: bool,
    /// When presentities not running now were last active.
    last_active: HashMap<Aor, i64>,
    /// Where stored subscriptions of other event packages go at start-up.
    events: Option<Recipient<RestoreEventSubscriptions>>,
}

/// The presence agent's answer to a request.
type Answer = Deferred<PresenceAgent, Result<Reply, Reject>>;

/// How far the start-up restore is.
#[derive(Default)]
struct RestoreProgress {
    /// Told once the last stored subscription is restored.
    done: Option<tokio::sync::oneshot::Sender<()>>,
    /// Subscriptions restored.
    count: usize,
    /// Time this actor spent restoring them.
    cpu: std::time::Duration,
}

impl PresenceAgent {
    /// A presence agent whose watchers send through `dispatcher`.
    pub fn new(
        config: PresenceConfig,
        dispatcher: Addr<Dispatcher>,
        store: Recipient<Persist>,
    ) -> Self {
        let watchers = Arc::new(WatcherShared {
            settings: config.watcher.clone(),
            dispatcher,
            store: store.clone(),
        });
        Self {
            watchers,
            config,
            presentities: HashMap::new(),
            store,
            restore: RestoreProgress::default(),
            awaiting: Awaiting::default(),
            directory: None,
            unknown_is_404: false,
            last_active: HashMap::new(),
            events: None,
        }
    }

    /// Stored subscriptions of other event packages are handed to `events` as they are read.
    pub fn with_event_agent(mut self, events: Recipient<RestoreEventSubscriptions>) -> Self {
        self.events = Some(events);
        self
    }

    /// Uses the users database as `users` says.
    pub fn with_users(mut self, users: UsersContext) -> Self {
        self.directory = users.directory;
        self.unknown_is_404 = users.unknown_is_404;
        self.last_active = users
            .last_active
            .into_iter()
            .filter_map(|row| Some((Aor::parse(&row.aor)?, row.last_active)))
            .collect();
        self
    }

    /// `done` is told once the last stored subscription (the chunk marked last) is restored.
    pub fn on_restored(mut self, done: tokio::sync::oneshot::Sender<()>) -> Self {
        self.restore.done = Some(done);
        self
    }

    /// The presentity of `aor`, created if needed; counts the message about to be sent. A
    /// known presentity costs a lookup: no key, address or store handle is copied for it.
    fn presentity(&mut self, aor: &Aor, ctx: &mut Context<Self>) -> &Addr<Presentity> {
        if !self.presentities.contains_key(aor) {
            let addr = Presentity::new(
                aor.clone(),
                self.config.presentity,
                ctx.address(),
                self.store.clone(),
                self.directory.clone(),
                self.last_active.get(aor).copied(),
            )
            .start();
            self.presentities
                .insert(aor.clone(), Entry { addr, sent: 0 });
            crate::metrics::metrics().presentities.inc();
        }
        match self.presentities.get_mut(aor) {
            Some(entry) => {
                entry.sent += 1;
                &entry.addr
            }
            // Proof: the entry was inserted just above if it was missing, and nothing
            // between takes it out (std's HashMap has no entry API that avoids copying the
            // key of a known presentity, nor can a borrow returned from a hit be followed by
            // the insert of a miss).
            None => unreachable!("presentity {aor} just inserted"),
        }
    }

    fn subscribe(&mut self, msg: IncomingRequest, ctx: &mut Context<Self>) -> Answer {
        let dialog = match subscription_dialog(&msg, &self.config, &[]) {
            Ok(dialog) => dialog,
            Err(e) => return Deferred::now(Err(e)),
        };
        // The watcher's format, by Accept and q-values (RFC 3856 §6.6: PIDF without one).
        match PresenceFormat::from_accept(dialog.accept.as_deref()) {
            Ok(_) => {}
            Err(FormatError::Malformed) => {
                return Deferred::now(Err(Reject::with_reason(400, "Malformed Accept")))
            }
            Err(FormatError::NoneAcceptable) => {
                return Deferred::now(Err(
                    Reject::new(406).header("Accept", PresenceFormat::all_content_types())
                ))
            }
        }
        let check = match &self.directory {
            Some(d) if self.unknown_is_404 && !is_phone(&dialog.aor) => d.clone(),
            _ => return self.accept_subscribe(dialog, ctx),
        };
        // repro's rule: a user the database does not know cannot be watched. A database that
        // cannot answer refuses nobody.
        let lookup = check.send(LookupUser(dialog.aor.clone()));
        self.awaiting
            .and_then(lookup, move |status, act, ctx| match status {
                Ok(UserStatus::Absent) => {
                    debug!("presentity {}: unknown user, 404", dialog.aor);
                    Deferred::now(Err(Reject::new(404)))
                }
                _ => act.accept_subscribe(dialog, ctx),
            })
    }

    /// Stores an accepted subscription, then starts its watcher and answers 200.
    fn accept_subscribe(&mut self, dialog: SubscriptionDialog, ctx: &mut Context<Self>) -> Answer {
        if dialog.expires == 0 {
            // A fetch leaves no dialog usage behind: nothing to store.
            return Deferred::now(Ok(self.start_watcher(dialog, None, ctx)));
        }
        // The 200 goes out only once the dialog is committed.
        let persist = self
            .store
            .send(Persist(vec![Change::SubscriptionCreated(Box::new(
                dialog.initial_row(),
            ))]));
        self.awaiting.then(persist, move |res, act, ctx| match res {
            Ok(Ok(())) => Ok(act.start_watcher(dialog, None, ctx)),
            _ => Err(act.unavailable()),
        })
    }

    /// 503 with Retry-After, for a change the store could not commit.
    fn unavailable(&self) -> Reject {
        Reject::new(503).header("Retry-After", self.config.watcher.retry_after.to_string())
    }

    /// Starts the watcher of an accepted (or recovered, with its stored CSeq mark) subscription
    /// and returns the 200 for it.
    fn start_watcher(
        &mut self,
        dialog: SubscriptionDialog,
        recovered_mark: Option<i64>,
        ctx: &mut Context<Self>,
    ) -> Reply {
        let id = new_watcher_id();
        let (aor, expires) = (dialog.aor.clone(), dialog.expires);
        // Checked when the SUBSCRIBE came; a stored Accept is read alike.
        let format =
            PresenceFormat::from_accept(dialog.accept.as_deref()).unwrap_or(PresenceFormat::Pidf);
        let presentity = self.presentity(&aor, ctx).clone();
        let init = WatcherInit {
            id,
            dialog,
            shared: self.watchers.clone(),
        };
        let view = PresentityView::new(presentity.clone(), format);
        let reply = launch(init, view, recovered_mark, |recipient| {
            presentity.do_send(AddWatcher { id, recipient });
        });
        if recovered_mark.is_none() {
            info!("presentity {aor}: watcher {id} subscribed for {expires} s");
        }
        reply
    }

    fn publish(&mut self, msg: IncomingRequest, ctx: &mut Context<Self>) -> Answer {
        let req = &msg.request;
        let checked = match publication::check(req, &self.config.publish) {
            Ok(c) => c,
            Err(r) => return Deferred::now(Err(r)),
        };
        let Some(aor) = Aor::from_uri(&req.uri) else {
            return Deferred::now(Err(Reject::new(404)));
        };
        let doc = match checked.kind {
            PublishKind::Initial | PublishKind::Modify(_) => {
                match pidf::parse(&req.body, &self.config.xml) {
                    Ok(doc) => {
                        // RFC 3863 §4.1.1: the entity is the presentity's URI.
                        if !aor.is_named_by(&doc.entity) {
                            return Deferred::now(Err(Reject::with_reason(
                                400,
                                "PIDF Entity Does Not Match Presentity",
                            )));
                        }
                        Some(Arc::new(doc))
                    }
                    Err(e) => return Deferred::now(Err(pidf_reject(&e))),
                }
            }
            PublishKind::Refresh(_) | PublishKind::Remove(_) => None,
        };
        let (kind, expires) = (checked.kind, checked.expires);
        let received_at = msg.received_at;
        let body = req.body.clone();
        let content_type = req
            .headers
            .get("Content-Type")
            .unwrap_or(PIDF_CONTENT_TYPE)
            .to_owned();
        let presentity = self.presentity(&aor, ctx).clone();
        // The presentity answers the dispatcher itself once the change is committed: the
        // presence agent is not woken again for this request.
        Deferred::hand_over(move |to| {
            presentity.do_send(Publish {
                request: PublishRequest {
                    kind,
                    doc,
                    body,
                    content_type,
                    expires,
                    received_at,
                },
                respond: publish_responder(to),
            });
        })
    }
}

/// RFC 6665 §4.2.1.1 checks of an initial SUBSCRIBE, building its dialog. `types` are the
/// body types its NOTIFYs will carry; an Accept header must admit every one of them.
pub fn subscription_dialog(
    msg: &IncomingRequest,
    config: &PresenceConfig,
    types: &[&str],
) -> Result<SubscriptionDialog, Reject> {
    subscription_dialog_for(msg, config, PRESENCE_PACKAGE, types)
}

/// [`subscription_dialog`] for event package `package`.
pub fn subscription_dialog_for(
    msg: &IncomingRequest,
    config: &PresenceConfig,
    package: &str,
    types: &[&str],
) -> Result<SubscriptionDialog, Reject> {
    let req = &msg.request;
    // RFC 6665 §4.2.1.1: the package must be the one this handler serves.
    let event = match req.event() {
        Some(Ok(e)) if e.is(package) => e,
        Some(Ok(_)) | None => {
            return Err(Reject::new(489).header("Allow-Events", package.to_owned()))
        }
        Some(Err(_)) => return Err(Reject::with_reason(400, "Malformed Event")),
    };
    // No Accept means application/pidf+xml (RFC 3856 §6.6); real clients send none.
    let accept: Vec<_> = req.headers.get_all("Accept").collect();
    if !accept.is_empty() {
        let list = parse_weighted_list(&accept.join(","), "Accept")
            .map_err(|_| Reject::with_reason(400, "Malformed Accept"))?;
        if let Some(missing) = types.iter().find(|t| !accepts_media(&list, t)) {
            return Err(Reject::new(406).header("Accept", (*missing).to_owned()));
        }
    }
    let accept_encoding: Vec<_> = req.headers.get_all("Accept-Encoding").collect();
    if !accept_encoding.is_empty()
        && parse_weighted_list(&accept_encoding.join(","), "Accept-Encoding").is_err()
    {
        return Err(Reject::with_reason(400, "Malformed Accept-Encoding"));
    }
    let expires = subscription_expires(req.expires(), config)?;
    let contact = req
        .headers
        .list("Contact")
        .next()
        .ok_or_else(|| Reject::with_reason(400, "Missing Contact"))
        .and_then(|c| {
            NameAddr::parse(c, "Contact").map_err(|_| Reject::with_reason(400, "Malformed Contact"))
        })?;
    let aor = Aor::from_uri(&req.uri).ok_or_else(|| Reject::new(404))?;
    let route_set = req
        .headers
        .list("Record-Route")
        .map(|r| {
            NameAddr::parse(r, "Record-Route")
                .map_err(|_| Reject::with_reason(400, "Malformed Record-Route"))
        })
        .collect::<Result<Vec<_>, _>>()?;
    // Parsed and checked by the dispatcher.
    let (from, to) = (&msg.from, &msg.to);
    let cseq = req.cseq().map_err(|_| Reject::new(400))?;
    let call_id = req.call_id().map_err(|_| Reject::new(400))?.to_owned();

    let dialog = SubscriptionDialog {
        package: package.to_owned(),
        aor,
        event_id: event.id.clone(),
        call_id,
        local_tag: new_tag(),
        remote_tag: from.tag().unwrap_or_default().to_owned(),
        local_uri: to.without_params().to_string(),
        remote_uri: from.without_params().to_string(),
        remote_target: contact.uri,
        route_set,
        remote_cseq: cseq.seq,
        expires,
        source: msg.source,
        accept: (!accept.is_empty()).then(|| accept.join(", ")),
        accept_encoding: (!accept_encoding.is_empty()).then(|| accept_encoding.join(", ")),
    };
    Ok(dialog)
}

/// RFC 6665 §4.2.1.1 expiry rules for a SUBSCRIBE.
pub fn subscription_expires(
    header: Option<Result<u32, crate::sip::headers::HeaderError>>,
    config: &PresenceConfig,
) -> Result<u32, Reject> {
    let requested = match header {
        Some(Ok(e)) => e,
        Some(Err(_)) => return Err(Reject::with_reason(400, "Malformed Expires")),
        None => config.subscribe_default,
    };
    if requested != 0 && requested < config.subscribe_min {
        return Err(Reject::new(423).header("Min-Expires", config.subscribe_min.to_string()));
    }
    Ok(requested.min(config.subscribe_max))
}

/// The SIP answer to a body that is not acceptable PIDF.
fn pidf_reject(e: &PidfError) -> Reject {
    let reason = match e {
        PidfError::Xml(XmlError::TooLarge { .. }) => return Reject::new(413),
        PidfError::Xml(XmlError::Doctype { .. }) => "DOCTYPE Not Allowed In PIDF",
        PidfError::Xml(_) => "Malformed PIDF",
        _ => "Invalid PIDF",
    };
    debug!("PIDF refused: {e}");
    Reject::with_reason(400, reason)
}

impl Actor for PresenceAgent {
    type Context = Context<Self>;
}

impl Handler<IncomingRequest> for PresenceAgent {
    type Result = Answer;

    fn handle(&mut self, msg: IncomingRequest, ctx: &mut Self::Context) -> Self::Result {
        match msg.request.method {
            Method::Subscribe => self.subscribe(msg, ctx),
            Method::Publish => self.publish(msg, ctx),
            _ => Deferred::now(Err(Reject::new(405))),
        }
    }
}

impl Handler<BindingsChanged> for PresenceAgent {
    type Result = ();

    fn handle(&mut self, msg: BindingsChanged, ctx: &mut Self::Context) {
        if msg.bindings.is_empty() && !self.presentities.contains_key(&msg.aor) {
            return;
        }
        self.presentity(&msg.aor, ctx).do_send(SetBindings {
            bindings: msg.bindings,
        });
    }
}

impl Handler<AttachWatcher> for PresenceAgent {
    type Result = ();

    fn handle(&mut self, msg: AttachWatcher, ctx: &mut Self::Context) {
        for aor in msg.aors {
            self.presentity(&aor, ctx).do_send(AddWatcher {
                id: msg.id,
                recipient: msg.recipient.clone(),
            });
        }
    }
}

impl Handler<DetachWatcher> for PresenceAgent {
    type Result = ();

    fn handle(&mut self, msg: DetachWatcher, _ctx: &mut Self::Context) {
        for aor in &msg.aors {
            if let Some(entry) = self.presentities.get(aor) {
                entry.addr.do_send(RemoveWatcher { id: msg.id });
            }
        }
    }
}

impl Handler<PresentityIdle> for PresenceAgent {
    type Result = ();

    fn handle(&mut self, msg: PresentityIdle, _ctx: &mut Self::Context) {
        if let Some(entry) = self.presentities.get(&msg.aor) {
            if entry.sent == msg.received {
                entry.addr.do_send(Stop);
                self.presentities.remove(&msg.aor);
                crate::metrics::metrics().presentities.dec();
                if let Some(at) = msg.last_active {
                    self.last_active.insert(msg.aor, at);
                }
            }
        }
    }
}

impl Handler<Reresolve> for PresenceAgent {
    type Result = ();

    fn handle(&mut self, msg: Reresolve, _ctx: &mut Self::Context) {
        for aor in &msg.aors {
            // Not counted: it adds nothing a stopping presentity would lose.
            if let Some(entry) = self.presentities.get(aor) {
                entry.addr.do_send(ResolveAgain { fresh: false });
            }
        }
    }
}

/// Publications loaded from the store at start-up, oldest modification first.
#[derive(Message, Debug)]
#[rtype(result = "()")]
pub struct RestorePublications(pub Vec<PublicationRow>);

impl Handler<RestorePublications> for PresenceAgent {
    type Result = ();

    fn handle(&mut self, msg: RestorePublications, ctx: &mut Self::Context) {
        let now = unix_now();
        for row in msg.0 {
            if row.event != PRESENCE_PACKAGE {
                warn!(
                    "stored publication {} is for event package {}, not served: dropped",
                    row.etag, row.event
                );
                continue;
            }
            let Some(aor) = Aor::parse(&row.aor) else {
                warn!(
                    "stored publication {} has an invalid AOR, dropped",
                    row.etag
                );
                continue;
            };
            // Parsed again with today's limits; what was accepted then is accepted now.
            let doc = match pidf::parse(&row.body, &self.config.xml) {
                Ok(doc) => Arc::new(doc),
                Err(e) => {
                    warn!(
                        "stored publication {} of {aor} no longer parses ({e}), dropped",
                        row.etag
                    );
                    continue;
                }
            };
            self.presentity(&aor, ctx).do_send(RestorePublication {
                etag: row.etag,
                doc,
                body: row.body.into(),
                content_type: row.content_type,
                expires: u32::try_from((row.expires_at - now).max(1)).unwrap_or(u32::MAX),
                seq: u64::try_from(row.seq).unwrap_or(0),
            });
        }
    }
}

/// A stored plain subscription made ready on the store's thread: its dialog and its NOTIFY
/// CSeq mark (already moved up by the store); `None` for a row that no longer parses.
pub type RecoveredSubscription = Option<(SubscriptionDialog, i64)>;

/// Prepares a stored row for the presence agent (run by the store as it reads, see
/// `store::StreamSubscriptions`); a row that no longer parses is logged and dropped.
pub fn prepare_recovered(row: SubscriptionRow) -> RecoveredSubscription {
    match SubscriptionDialog::from_row(&row) {
        Ok(dialog) => Some((dialog, row.notify_cseq_mark)),
        Err(e) => {
            warn!("stored subscription {}: {e}, dropped", row.id);
            None
        }
    }
}

impl Handler<SubscriptionChunk<RecoveredSubscription>> for PresenceAgent {
    type Result = ();

    fn handle(&mut self, msg: SubscriptionChunk<RecoveredSubscription>, ctx: &mut Self::Context) {
        let started = std::time::Instant::now();
        let mut others = Vec::new();
        for (dialog, mark) in msg.items.into_iter().flatten() {
            if dialog.package != PRESENCE_PACKAGE {
                others.push((dialog, mark));
                continue;
            }
            let _ = self.start_watcher(dialog, Some(mark), ctx);
            self.restore.count += 1;
        }
        if !others.is_empty() {
            match &self.events {
                // do_send: one per chunk of the start-up restore.
                Some(events) => events.do_send(RestoreEventSubscriptions(others)),
                None => warn!(
                    "{} stored subscriptions of other packages dropped",
                    others.len()
                ),
            }
        }
        self.restore.cpu += started.elapsed();
        if msg.last {
            info!(
                "{} subscriptions restored ({} ms on this thread)",
                self.restore.count,
                self.restore.cpu.as_millis()
            );
            if let Some(done) = self.restore.done.take() {
                let _ = done.send(());
            }
        } else {
            // Let this chunk's watchers send their NOTIFYs before the next chunk starts more:
            // the NOTIFYs flow while the rest is restored, and their buffers are reused.
            ctx.wait(fut::wrap_future(tokio::task::yield_now()));
        }
    }
}

impl Handler<ListPresentities> for PresenceAgent {
    type Result = MessageResult<ListPresentities>;

    fn handle(&mut self, msg: ListPresentities, _ctx: &mut Self::Context) -> Self::Result {
        let after = msg.after.as_deref();
        let mut aors: Vec<&str> = self
            .presentities
            .keys()
            .map(Aor::as_str)
            .filter(|a| a.starts_with(&msg.prefix) && after.is_none_or(|after| *a > after))
            .collect();
        aors.sort_unstable();
        aors.truncate(msg.limit);
        MessageResult(aors.into_iter().map(str::to_owned).collect())
    }
}

impl Handler<InspectPresentity> for PresenceAgent {
    type Result = ResponseFuture<Option<PresentityReport>>;

    fn handle(&mut self, msg: InspectPresentity, _ctx: &mut Self::Context) -> Self::Result {
        let asked = self.presentities.get(&msg.0).map(|e| e.addr.send(Inspect));
        Box::pin(async move { asked?.await.ok() })
    }
}

impl Handler<Renotify> for PresenceAgent {
    type Result = ResponseFuture<bool>;

    fn handle(&mut self, msg: Renotify, _ctx: &mut Self::Context) -> Self::Result {
        let asked = self.presentities.get(&msg.0).map(|e| e.addr.send(msg));
        Box::pin(async move {
            match asked {
                Some(sent) => sent.await.unwrap_or(false),
                None => false,
            }
        })
    }
}

impl Handler<RemovePublication> for PresenceAgent {
    type Result = ResponseFuture<Result<bool, RemoveFailed>>;

    fn handle(&mut self, msg: RemovePublication, _ctx: &mut Self::Context) -> Self::Result {
        let Some(entry) = self.presentities.get_mut(&msg.aor) else {
            return Box::pin(async { Ok(false) });
        };
        entry.sent += 1;
        let (tx, rx) = tokio::sync::oneshot::channel();
        // As a PUBLISH with Expires 0 and SIP-If-Match: committed, then notified.
        entry.addr.do_send(Publish {
            request: PublishRequest {
                kind: PublishKind::Remove(msg.etag),
                doc: None,
                body: Bytes::new(),
                content_type: String::new(),
                expires: 0,
                received_at: Instant::now(),
            },
            respond: Box::new(move |outcome| {
                let _ = tx.send(outcome);
            }),
        });
        Box::pin(async move { removal_outcome(rx.await.ok()) })
    }
}

/// What a removal's PUBLISH outcome means to the operator: removed, not there (412), or not
/// committed.
pub fn removal_outcome(
    outcome: Option<Result<PublishAccepted, Reject>>,
) -> Result<bool, RemoveFailed> {
    match outcome {
        Some(Ok(_)) => Ok(true),
        Some(Err(r)) if r.status == 412 => Ok(false),
        _ => Err(RemoveFailed),
    }
}
