//! `Presentity`: one actor per AOR that has publications, registrar bindings or watchers.
//!
//! Owns: the AOR's publications (in the entity-tag table every package shares), the tuples derived
//! from registrar bindings (`presence.registration_state` decides when they count), what the
//! users database says of the AOR (long-term presence, or the "unknown" document), when the
//! AOR was last active, the watchers' `Recipient`s, and the aggregated document, rebuilt on
//! every change and pushed as one shared snapshot to every watcher. A presentity whose AOR is a
//! phone number (`user=phone`) owned by a user watches that user's presentity and shows its
//! document under the number. A new watcher's first document waits for the users database up
//! to `users.first_notify_wait_ms`. Created on demand by the `PresenceAgent`; when it holds nothing
//! it says so (`PresentityIdle`) and stops when the presence agent answers `Stop`.
//! Must not: talk SIP or touch the database.
//!
//! ```text
//!  Publish / SetBindings / AddWatcher ──► state ──► aggregate ──► PresenceChanged ──► watchers
//!  publication timer ──► expire ─────────┘              ▲
//!  users database ──► account / number owner ───────────┘ (held watchers released)
//!  owner's PresenceChanged (phone numbers) ─────────────┘
//!  nothing left ──► PresentityIdle ──► PresenceAgent ──► Stop (if nothing was sent meanwhile)
//! ```

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::prelude::*;
use bytes::Bytes;
use log::{debug, warn};

use super::agent::{AttachWatcher, DetachWatcher, PresenceAgent, PresentityIdle};
use super::aggregation::{aggregate, binding_tuple, AggregationOptions, Source};
use super::aor::Aor;
use super::directory::{
    is_phone, LookupPhone, LookupUser, PhoneStatus, ResolvePhones, UserDirectory, UserStatus,
};
use super::document::{PresenceDocument, SharedDocument, PRESENCE_PACKAGE};
use super::long_term::{capabilities, long_term_source, render_alias, unknown_document};
use super::pidf::{self, PidfDocument};
use super::publication::PublishKind;
use super::watcher::new_watcher_id;
use crate::config::RegistrationState;
use crate::events::publications::{Plan, Publications};
use crate::inspect::{Inspect, PresentityReport, Renotify};
use crate::sip::dispatcher::Reply;
use crate::sip::Reject;
use crate::store::{unix_now, Change, Persist, PublicationRow};
use crate::xml::XmlLimits;
use actix::dev::OneshotSender;

/// A registrar binding as the presentity sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct BindingTuple {
    /// The contact URI.
    pub contact: String,
    /// Tuple priority (from q, or the configured registrar priority).
    pub priority: Option<f32>,
    /// The contact's `+org.linphone.specs`, its capabilities.
    pub specs: Option<String>,
}

/// Where a PUBLISH's outcome goes: straight to whoever answers the request (the dispatcher's
/// channel, through the presence agent's mapping to a SIP reply), so that no hub actor is woken
/// between the commit and the response.
pub type PublishRespond = Box<dyn FnOnce(Result<PublishAccepted, Reject>) + Send>;

/// The `PublishRespond` that answers the asker's channel `to` (none when nobody waits): a 200
/// with Expires and SIP-ETag (RFC 3903 §6 step 8), or the refusal.
pub fn publish_responder(to: Option<OneshotSender<Result<Reply, Reject>>>) -> PublishRespond {
    Box::new(move |outcome| {
        let answer = outcome.map(|accepted| {
            let mut reply = Reply::ok().header("Expires", accepted.expires.to_string());
            if let Some(etag) = accepted.etag {
                reply = reply.header("SIP-ETag", etag);
            }
            reply
        });
        if let Some(to) = to {
            // The dispatcher may have given up on the request: nothing to do then.
            let _ = to.send(answer);
        }
    })
}

/// Apply a PUBLISH that passed the stateless checks; the outcome goes to `respond` once the
/// change is committed (or refused).
#[derive(Message)]
#[rtype(result = "()")]
pub struct Publish {
    /// The change asked for.
    pub request: PublishRequest,
    /// Told the outcome.
    pub respond: PublishRespond,
}

/// What a PUBLISH that passed the stateless checks asks of its presentity.
#[derive(Debug)]
pub struct PublishRequest {
    /// What it asks for.
    pub kind: PublishKind,
    /// The parsed body, for initial and modify.
    pub doc: Option<Arc<PidfDocument>>,
    /// The body as received, for initial and modify (stored as is).
    pub body: Bytes,
    /// The body's Content-Type.
    pub content_type: String,
    /// Granted expiry, seconds.
    pub expires: u32,
    /// When it was received.
    pub received_at: Instant,
}

/// A publication loaded from the store at start-up.
#[derive(Message, Debug)]
#[rtype(result = "()")]
pub struct RestorePublication {
    /// Its entity-tag.
    pub etag: String,
    /// The parsed body.
    pub doc: Arc<PidfDocument>,
    /// The body as stored.
    pub body: Bytes,
    /// Its Content-Type.
    pub content_type: String,
    /// Seconds left.
    pub expires: u32,
    /// Modification order.
    pub seq: u64,
}

/// A PUBLISH the presentity accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublishAccepted {
    /// The publication's new entity-tag (none after a removal).
    pub etag: Option<String>,
    /// Granted expiry, seconds.
    pub expires: u32,
}

/// Replace the tuples that come from registrar bindings.
#[derive(Message, Debug)]
#[rtype(result = "()")]
pub struct SetBindings {
    /// Every current binding of the AOR.
    pub bindings: Vec<BindingTuple>,
}

/// A new document for a watcher.
#[derive(Message, Debug, Clone)]
#[rtype(result = "()")]
pub struct PresenceChanged(pub SharedDocument);

/// Add a watcher; it is sent the current document at once.
#[derive(Message)]
#[rtype(result = "()")]
pub struct AddWatcher {
    /// The watcher's id (unique per agent).
    pub id: u64,
    /// Where documents go.
    pub recipient: Recipient<PresenceChanged>,
}

/// Remove a watcher.
#[derive(Message, Debug)]
#[rtype(result = "()")]
pub struct RemoveWatcher {
    /// The watcher's id.
    pub id: u64,
}

/// Sent by the presence agent after `PresentityIdle` when nothing else is on its way.
#[derive(Message, Debug)]
#[rtype(result = "()")]
pub struct Stop;

/// Ask the users database again (a subscription was refreshed): a number that became a
/// user's, or left them, shows so; `fresh` forgets the directory's cached answer first.
#[derive(Message, Debug)]
#[rtype(result = "()")]
pub struct ResolveAgain {
    /// Ask the database even where the directory has an answer cached.
    pub fresh: bool,
}

/// Settings for aggregation.
#[derive(Debug, Clone, Copy)]
pub struct PresentitySettings {
    /// With nothing known, say `closed` rather than nothing.
    pub closed_when_unknown: bool,
    /// Retry-After of a 503 when the store cannot commit, seconds.
    pub retry_after: u32,
    /// When registrar bindings count as presence.
    pub registration_state: RegistrationState,
    /// What the users database is used for.
    pub users: UsersUse,
    /// Live publications at most.
    pub max_publications: usize,
}

/// What a presentity asks the users database, and how long it waits for it.
#[derive(Debug, Clone, Copy, Default)]
pub struct UsersUse {
    /// `users.user_query` is set: existing users get long-term presence, unknown ones the
    /// "unknown" document.
    pub long_term: bool,
    /// `users.phones_query` is set: `user=phone` AORs show their owner's presence.
    pub phones: bool,
    /// How long a new watcher's first document waits for the database.
    pub first_wait: Duration,
    /// How long an answer stands before a new watcher makes the presentity ask again.
    pub ttl: Duration,
}

/// Last activity is written at most this often while a user keeps publishing (a removal or an
/// expiry is written at once): it only shows once they are gone.
const ACTIVITY_WRITE_INTERVAL_S: i64 = 60;

/// What the users database said of this presentity's user.
#[derive(Debug, Clone, Copy)]
enum Account {
    /// Not asked yet (or nothing to ask).
    NotAsked,
    /// Asked; no answer yet.
    Asking,
    /// Answered.
    Known {
        status: UserStatus,
        /// When the answer came (a new watcher asks again after `UsersUse::ttl`).
        at: Instant,
        /// Unix seconds since when the user is known to exist here.
        since: i64,
    },
}

/// For a phone-number presentity: whose presence it shows.
#[derive(Debug)]
enum Alias {
    /// Not a number, or numbers are not looked up.
    None,
    /// Asked; no answer yet.
    Resolving,
    /// Owned by a user, whose presentity it watches under `watch_id`; `doc` is the owner's
    /// latest document.
    Owner {
        owner: Aor,
        watch_id: u64,
        doc: Option<SharedDocument>,
        at: Instant,
        /// Unix seconds since when the owner is known.
        since: i64,
    },
    /// Nobody owns it (or the database could not say).
    Unowned { at: Instant, unavailable: bool },
}

/// A presence publication: its PIDF parsed once, and as received (stored as is).
#[derive(Debug, Clone)]
struct Publication {
    doc: Arc<PidfDocument>,
    body: Bytes,
    content_type: String,
}

/// The presentity actor.
pub struct Presentity {
    aor: Aor,
    settings: PresentitySettings,
    publications: Publications<Publication>,
    bindings: Vec<BindingTuple>,
    /// Watchers' inboxes; each watcher removes itself when it ends.
    watchers: HashMap<u64, Recipient<PresenceChanged>>,
    /// The aggregated document watchers were last sent.
    current: SharedDocument,
    /// `current` is out of date: the state changed while nobody watched. Aggregating and
    /// serialising is left to the next watcher that attaches.
    stale: bool,
    /// Messages received from the presence agent, echoed in `PresentityIdle`.
    received: u64,
    idle_reported: bool,
    /// The presence agent that created it.
    agent: Addr<PresenceAgent>,
    /// The store: publications are committed before their 2xx.
    store: Recipient<Persist>,
    /// The users database's answers; none when no users query is configured.
    directory: Option<Addr<UserDirectory>>,
    account: Account,
    alias: Alias,
    /// Watchers whose first document waits for the users database.
    held: Vec<(u64, Recipient<PresenceChanged>)>,
    /// Releases `held` after `UsersUse::first_wait`.
    hold_timer: Option<SpawnHandle>,
    /// When the AOR was last active (Unix seconds), and when that was last written.
    last_active: Option<i64>,
    written_active: Option<i64>,
    /// A number's owner is being asked.
    asking_alias: bool,
}

impl Presentity {
    /// A presentity with nothing in it; `last_active` is what the store remembers.
    pub fn new(
        aor: Aor,
        settings: PresentitySettings,
        agent: Addr<PresenceAgent>,
        store: Recipient<Persist>,
        directory: Option<Addr<UserDirectory>>,
        last_active: Option<i64>,
    ) -> Self {
        let alias = if settings.users.phones && directory.is_some() && is_phone(&aor) {
            Alias::Resolving
        } else {
            Alias::None
        };
        Self {
            directory,
            account: Account::NotAsked,
            alias,
            held: Vec::new(),
            hold_timer: None,
            last_active,
            written_active: last_active,
            asking_alias: false,
            aor: aor.clone(),
            settings,
            publications: Publications::new(PRESENCE_PACKAGE, settings.max_publications),
            bindings: Vec::new(),
            watchers: HashMap::new(),
            current: Arc::new(PresenceDocument {
                aor: aor.clone(),
                version: 0,
                body: Bytes::new(),
                unowned_alias: false,
                changed_at: Instant::now(),
            }),
            stale: true,
            received: 0,
            idle_reported: false,
            agent,
            store,
        }
    }

    fn build(&self, version: u64, changed_at: Instant) -> PresenceDocument {
        let (doc, unowned_alias) = match &self.alias {
            Alias::Owner {
                owner, doc, since, ..
            } => (self.through_alias(owner, doc.as_ref(), *since), false),
            Alias::Resolving | Alias::Unowned { .. } => (unknown_document(self.aor.as_str()), true),
            Alias::None => (self.aggregate(), false),
        };
        PresenceDocument {
            aor: self.aor.clone(),
            version,
            body: Bytes::from(pidf::serialize(&doc)),
            unowned_alias,
            changed_at,
        }
    }

    /// The AOR's own sources composed: publications newest first, the registration tuples
    /// where `registration_state` lets them count, then the long-term source of a user the
    /// database knows.
    fn aggregate(&self) -> PidfDocument {
        let pubs = self.publications.newest_first();
        let registered = match self.settings.registration_state {
            RegistrationState::Always => true,
            // repro's rule: registration stands in for presence only without a publication.
            RegistrationState::Fallback => pubs.is_empty(),
            RegistrationState::Off => false,
        };
        let bindings: &[BindingTuple] = if registered { &self.bindings } else { &[] };
        let binding_docs: Vec<PidfDocument> = bindings
            .iter()
            .enumerate()
            .map(|(i, b)| {
                let mut d = PidfDocument::new(self.aor.as_str());
                d.tuples
                    .push(binding_tuple(&format!("reg{i}"), &b.contact, b.priority));
                d
            })
            .collect();
        let long_term = match self.account {
            Account::Known {
                status: UserStatus::Exists,
                since,
                ..
            } => Some(long_term_source(
                self.aor.as_str(),
                self.aor.as_str(),
                since,
                self.last_active,
                &capabilities(self.bindings.iter().filter_map(|b| b.specs.as_deref())),
            )),
            _ => None,
        };
        let mut sources: Vec<Source<'_>> = pubs
            .iter()
            .map(|(etag, p)| Source {
                key: etag,
                doc: &p.body.doc,
            })
            .collect();
        sources.extend(binding_docs.iter().zip(bindings).map(|(doc, b)| Source {
            key: b.contact.as_str(),
            doc,
        }));
        if let Some(doc) = &long_term {
            sources.push(Source {
                key: "long-term",
                doc,
            });
        }
        if sources.is_empty() && self.settings.users.long_term && self.directory.is_some() {
            // Flexisip's document for a presentity nothing is known of.
            return unknown_document(self.aor.as_str());
        }
        aggregate(
            self.aor.as_str(),
            &sources,
            &AggregationOptions {
                closed_when_empty: self.settings.closed_when_unknown,
            },
        )
    }

    /// The owner's document under this number: the number as entity, the owner's SIP URI as
    /// the first contact.
    fn through_alias(&self, owner: &Aor, doc: Option<&SharedDocument>, since: i64) -> PidfDocument {
        let limits = XmlLimits {
            max_bytes: usize::MAX,
            ..XmlLimits::default()
        };
        let mut d = match doc.map(|d| pidf::parse(&d.body, &limits)) {
            Some(Ok(d)) => d,
            Some(Err(e)) => {
                warn!(
                    "presentity {}: document of {owner} unreadable ({e})",
                    self.aor
                );
                PidfDocument::new(self.aor.as_str())
            }
            None => PidfDocument::new(self.aor.as_str()),
        };
        render_alias(&mut d, self.aor.as_str(), owner.as_str(), since);
        d
    }
    /// Rebuilds the document and pushes it to every watcher if it changed; with no watcher,
    /// only marks it out of date.
    fn changed(&mut self) {
        self.changed_since(Instant::now());
    }

    /// The state changed because of a request received `at` (a NOTIFY's latency is measured
    /// from there).
    fn changed_since(&mut self, at: Instant) {
        if self.watchers.is_empty() {
            self.stale = true;
            return;
        }
        if !self.rebuild_since(at) {
            return;
        }
        for w in self.watchers.values() {
            // do_send: one message per change per watcher; a watcher only swaps a pointer on
            // each, and coalesces NOTIFYs itself, so its mailbox drains at once.
            w.do_send(PresenceChanged(self.current.clone()));
        }
    }

    /// Aggregates the document anew; false when it came out the same.
    fn rebuild(&mut self) -> bool {
        self.rebuild_since(Instant::now())
    }

    fn rebuild_since(&mut self, at: Instant) -> bool {
        self.stale = false;
        let next = self.build(self.current.version + 1, at);
        if next.body == self.current.body {
            return false;
        }
        self.current = Arc::new(next);
        true
    }

    fn is_empty(&self) -> bool {
        self.publications.is_empty()
            && self.bindings.is_empty()
            && self.watchers.is_empty()
            && self.held.is_empty()
    }

    fn check_idle(&mut self) {
        if self.is_empty() && !self.idle_reported {
            self.idle_reported = true;
            self.agent.do_send(PresentityIdle {
                aor: self.aor.clone(),
                received: self.received,
                last_active: self.last_active,
            });
        } else if !self.is_empty() {
            self.idle_reported = false;
        }
    }

    fn arm(etag: String, expires: u32, ctx: &mut Context<Self>) -> SpawnHandle {
        ctx.run_later(Duration::from_secs(u64::from(expires)), move |act, _| {
            if act.publications.remove(&etag).is_some() {
                debug!("presentity {}: publication {etag} expired", act.aor);
                let mut changes = vec![Change::PublicationRemoved(etag.clone())];
                changes.extend(act.active(true));
                // do_send: one per expiry; nothing waits for it.
                act.store.do_send(Persist(changes));
                act.changed();
                act.check_idle();
            }
        })
    }
}

impl Actor for Presentity {
    type Context = Context<Self>;

    fn started(&mut self, _ctx: &mut Self::Context) {
        debug!("presentity {}: started", self.aor);
    }

    fn stopping(&mut self, _ctx: &mut Self::Context) -> Running {
        self.leave_owner();
        debug!("presentity {}: stopped", self.aor);
        Running::Stop
    }
}

/// The users database's side: asking it, holding new watchers for its answer, following a
/// number's owner, and the last activity.
impl Presentity {
    /// Records activity now; the change to store, if it is due (a removal always is).
    fn active(&mut self, removal: bool) -> Option<Change> {
        if !self.settings.users.long_term {
            return None;
        }
        let now = unix_now();
        self.last_active = Some(now);
        let due = removal
            || self
                .written_active
                .is_none_or(|w| now - w >= ACTIVITY_WRITE_INTERVAL_S);
        due.then(|| {
            self.written_active = Some(now);
            Change::LastActive {
                aor: self.aor.to_string(),
                at: now,
            }
        })
    }

    /// Whether a new watcher's first document should still wait for the database.
    fn pending(&self) -> bool {
        matches!(self.account, Account::Asking)
            || matches!(
                self.alias,
                Alias::Resolving | Alias::Owner { doc: None, .. }
            )
    }

    /// Asks the database what it has not answered, or answered too long ago (or could not
    /// answer); `force` asks the number's owner again whatever the age.
    fn ask(&mut self, force: bool, ctx: &mut Context<Self>) {
        let Some(directory) = self.directory.clone() else {
            return;
        };
        let ttl = self.settings.users.ttl;
        let stale = |at: &Instant| at.elapsed() >= ttl;
        let alias_due = !self.asking_alias
            && match &self.alias {
                Alias::None => false,
                Alias::Resolving => true,
                Alias::Owner { at, .. } => force || stale(at),
                Alias::Unowned { at, unavailable } => force || *unavailable || stale(at),
            };
        if alias_due {
            self.asking_alias = true;
            let lookup = directory.send(LookupPhone(self.aor.clone()));
            ctx.spawn(lookup.into_actor(self).map(|res, act, ctx| {
                act.asking_alias = false;
                act.owner_answered(res.unwrap_or(PhoneStatus::Unavailable), ctx);
            }));
        }
        if !matches!(self.alias, Alias::None) || !self.settings.users.long_term {
            return;
        }
        let account_due = match &self.account {
            Account::NotAsked => true,
            Account::Asking => false,
            Account::Known { status, at, .. } => *status == UserStatus::Unavailable || stale(at),
        };
        if account_due {
            let previous = self.account;
            self.account = Account::Asking;
            let lookup = directory.send(LookupUser(self.aor.clone()));
            ctx.spawn(lookup.into_actor(self).map(move |res, act, ctx| {
                act.account_answered(res.unwrap_or(UserStatus::Unavailable), previous, ctx);
            }));
        }
    }

    fn account_answered(&mut self, status: UserStatus, previous: Account, ctx: &mut Context<Self>) {
        let since = match previous {
            Account::Known {
                status: UserStatus::Exists,
                since,
                ..
            } => since,
            _ => unix_now(),
        };
        self.account = Account::Known {
            status,
            at: Instant::now(),
            since,
        };
        debug!("presentity {}: users database says {status:?}", self.aor);
        if status == UserStatus::Unavailable {
            self.retry_later(ctx);
        }
        self.changed();
        self.release_held(ctx);
    }

    fn owner_answered(&mut self, status: PhoneStatus, ctx: &mut Context<Self>) {
        let at = Instant::now();
        match status {
            PhoneStatus::Owner(owner) => {
                if let Alias::Owner {
                    owner: current,
                    at: when,
                    ..
                } = &mut self.alias
                {
                    if *current == owner {
                        *when = at;
                        self.release_held(ctx);
                        return;
                    }
                }
                self.leave_owner();
                let watch_id = new_watcher_id();
                debug!("presentity {}: number of {owner}", self.aor);
                // do_send: one per change of owner.
                self.agent.do_send(AttachWatcher {
                    id: watch_id,
                    aors: vec![owner.clone()],
                    recipient: ctx.address().recipient(),
                });
                self.alias = Alias::Owner {
                    owner,
                    watch_id,
                    doc: None,
                    at,
                    since: unix_now(),
                };
            }
            PhoneStatus::NoOwner | PhoneStatus::Unavailable => {
                let unavailable = status == PhoneStatus::Unavailable;
                debug!("presentity {}: no owner ({status:?})", self.aor);
                self.leave_owner();
                self.alias = Alias::Unowned { at, unavailable };
                if unavailable {
                    self.retry_later(ctx);
                }
                self.changed();
            }
        }
        self.release_held(ctx);
    }

    /// Stops watching the owner of the number, if any.
    fn leave_owner(&mut self) {
        if let Alias::Owner {
            owner, watch_id, ..
        } = &self.alias
        {
            // do_send: one per change of owner or stop.
            self.agent.do_send(DetachWatcher {
                id: *watch_id,
                aors: vec![owner.clone()],
            });
        }
    }

    /// While watched, asks an unavailable database again after the cache's lifetime.
    fn retry_later(&mut self, ctx: &mut Context<Self>) {
        let wait = self.settings.users.ttl.max(Duration::from_secs(1));
        ctx.run_later(wait, |act, ctx| {
            if !act.watchers.is_empty() || !act.held.is_empty() {
                act.ask(false, ctx);
            }
        });
    }

    /// Sends held watchers their first document once nothing is pending any more.
    fn release_held(&mut self, ctx: &mut Context<Self>) {
        self.release(false, ctx);
    }

    /// Sends held watchers the current document: once nothing is pending, or at once when
    /// `force` (the wait is over; a later answer goes out as a further NOTIFY).
    fn release(&mut self, force: bool, ctx: &mut Context<Self>) {
        if self.held.is_empty() || (!force && self.pending()) {
            return;
        }
        if let Some(t) = self.hold_timer.take() {
            ctx.cancel_future(t);
        }
        if self.stale || self.current.body.is_empty() {
            self.rebuild();
        }
        for (id, recipient) in std::mem::take(&mut self.held) {
            recipient.do_send(PresenceChanged(self.current.clone()));
            self.watchers.insert(id, recipient);
        }
    }
}

impl Presentity {
    fn row(&self, etag: &str, p: &Publication, seq: u64, expires: u32) -> PublicationRow {
        PublicationRow {
            etag: etag.to_owned(),
            aor: self.aor.to_string(),
            body: p.body.to_vec(),
            content_type: p.content_type.clone(),
            expires_at: unix_now() + i64::from(expires),
            seq: seq as i64,
            event: PRESENCE_PACKAGE.to_owned(),
        }
    }

    /// Applies a committed plan.
    fn apply(
        &mut self,
        plan: Plan<Publication>,
        received_at: Instant,
        ctx: &mut Context<Self>,
    ) -> PublishAccepted {
        let accepted = plan.accepted();
        let modified = match &plan {
            Plan::Remove { etag } => {
                debug!("presentity {}: publication {etag} removed", self.aor);
                true
            }
            Plan::Put { modified, .. } => *modified,
        };
        let ended = self.publications.apply(plan, |etag, expires| {
            Self::arm(etag.to_owned(), expires, ctx)
        });
        for timer in ended {
            ctx.cancel_future(timer);
        }
        if modified {
            self.changed_since(received_at);
        }
        self.check_idle();
        accepted
    }
}

impl Handler<Publish> for Presentity {
    // Atomic: the presentity takes no other message while its change is being committed, so
    // two PUBLISHes for one entity-tag cannot both pass the check (RFC 3903 §6 step 5).
    type Result = AtomicResponse<Self, ()>;

    fn handle(&mut self, msg: Publish, _ctx: &mut Self::Context) -> Self::Result {
        self.received += 1;
        let Publish { request, respond } = msg;
        let received_at = request.received_at;
        let body = request.doc.map(|doc| Publication {
            doc,
            body: request.body,
            content_type: request.content_type,
        });
        let plan = match self
            .publications
            .plan(&self.aor, request.kind, body, request.expires)
        {
            Ok(plan) => plan,
            Err(reject) => {
                self.check_idle();
                respond(Err(reject));
                return AtomicResponse::new(Box::pin(fut::ready(())));
            }
        };
        let change = match &plan {
            Plan::Remove { etag } => Change::PublicationRemoved(etag.clone()),
            Plan::Put {
                old,
                etag,
                body,
                seq,
                expires,
                ..
            } => Change::PublicationSaved {
                row: self.row(etag, body, *seq, *expires),
                replaces: old.clone(),
            },
        };
        let mut changes = vec![change];
        changes.extend(self.active(matches!(plan, Plan::Remove { .. })));
        let retry_after = self.settings.retry_after;
        let persist = self.store.send(Persist(changes));
        AtomicResponse::new(Box::pin(persist.into_actor(self).map(
            move |res, act, ctx| {
                respond(match res {
                    Ok(Ok(())) => Ok(act.apply(plan, received_at, ctx)),
                    _ => {
                        act.check_idle();
                        Err(Reject::new(503).header("Retry-After", retry_after.to_string()))
                    }
                })
            },
        )))
    }
}

impl Handler<RestorePublication> for Presentity {
    type Result = ();

    fn handle(&mut self, msg: RestorePublication, ctx: &mut Self::Context) {
        self.received += 1;
        let timer = Self::arm(msg.etag.clone(), msg.expires, ctx);
        let publication = Publication {
            doc: msg.doc,
            body: msg.body,
            content_type: msg.content_type,
        };
        self.publications
            .insert(msg.etag, publication, msg.seq, msg.expires, timer);
        self.changed();
        self.check_idle();
    }
}

impl Handler<SetBindings> for Presentity {
    type Result = ();

    fn handle(&mut self, msg: SetBindings, _ctx: &mut Self::Context) {
        self.received += 1;
        // A registration, or its end, is activity; written at once when the last one goes.
        let gone = msg.bindings.is_empty();
        if let Some(change) = self.active(gone) {
            // do_send: one per registration change; nothing waits for it.
            self.store.do_send(Persist(vec![change]));
        }
        self.bindings = msg.bindings;
        self.changed();
        self.check_idle();
    }
}

impl Handler<AddWatcher> for Presentity {
    type Result = ();

    fn handle(&mut self, msg: AddWatcher, ctx: &mut Self::Context) {
        self.received += 1;
        self.ask(false, ctx);
        if self.pending() && !self.settings.users.first_wait.is_zero() {
            // The first document waits for the users database, up to first_wait; what
            // comes later goes out as a further NOTIFY.
            self.held.push((msg.id, msg.recipient));
            if self.hold_timer.is_none() {
                let wait = self.settings.users.first_wait;
                self.hold_timer = Some(ctx.run_later(wait, |act, ctx| {
                    act.hold_timer = None;
                    act.release(true, ctx);
                }));
            }
        } else {
            if self.stale {
                self.rebuild();
            }
            msg.recipient.do_send(PresenceChanged(self.current.clone()));
            self.watchers.insert(msg.id, msg.recipient);
        }
        self.check_idle();
    }
}

impl Handler<RemoveWatcher> for Presentity {
    type Result = ();

    fn handle(&mut self, msg: RemoveWatcher, _ctx: &mut Self::Context) {
        self.watchers.remove(&msg.id);
        self.held.retain(|(id, _)| *id != msg.id);
        self.check_idle();
    }
}

impl Handler<PresenceChanged> for Presentity {
    type Result = ();

    /// The owner of this number has a new document.
    fn handle(&mut self, msg: PresenceChanged, ctx: &mut Self::Context) {
        match &mut self.alias {
            Alias::Owner { owner, doc, .. } if *owner == msg.0.aor => *doc = Some(msg.0),
            // From an owner this number has left meanwhile.
            _ => return,
        }
        self.changed();
        self.release_held(ctx);
    }
}

impl Handler<ResolveAgain> for Presentity {
    type Result = ();

    fn handle(&mut self, msg: ResolveAgain, ctx: &mut Self::Context) {
        if msg.fresh {
            if let Some(directory) = &self.directory {
                if !matches!(self.alias, Alias::None) {
                    // do_send: one per refresh of a subscription to this number.
                    directory.do_send(ResolvePhones {
                        phones: vec![self.aor.clone()],
                        fresh: true,
                    });
                }
            }
        }
        self.ask(true, ctx);
    }
}

impl Handler<Stop> for Presentity {
    type Result = ();

    fn handle(&mut self, _msg: Stop, ctx: &mut Self::Context) {
        if self.is_empty() {
            ctx.stop();
        }
    }
}

impl Handler<Inspect> for Presentity {
    type Result = MessageResult<Inspect>;

    fn handle(&mut self, _msg: Inspect, _ctx: &mut Self::Context) -> Self::Result {
        if self.stale {
            self.rebuild();
        }
        MessageResult(PresentityReport {
            publications: self.publications.reports(|p| p.content_type.clone()),
            document: String::from_utf8_lossy(&self.current.body).into_owned(),
            watchers: self.watchers.len() + self.held.len(),
        })
    }
}

impl Handler<Renotify> for Presentity {
    type Result = bool;

    fn handle(&mut self, _msg: Renotify, ctx: &mut Self::Context) -> bool {
        // What the users database says may have changed too.
        self.ask(true, ctx);
        self.rebuild();
        for w in self.watchers.values() {
            // do_send: one per watcher per operator request.
            w.do_send(PresenceChanged(self.current.clone()));
        }
        true
    }
}
