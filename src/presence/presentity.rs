//! `Presentity`: one actor per AOR that has publications, registrar bindings or watchers.
//!
//! Owns: the AOR's publications by entity-tag (each with its expiry timer), the tuples derived
//! from registrar bindings, the watchers' `Recipient`s, and the aggregated document, rebuilt on
//! every change and pushed as one shared snapshot to every watcher. Created on demand by the
//! `Registry`; when it holds nothing it says so (`PresentityIdle`) and stops when the registry
//! answers `Stop`. Must not: talk SIP or touch the database.
//!
//! ```text
//!  Publish / SetBindings / AddWatcher ──► state ──► aggregate ──► PresenceChanged ──► watchers
//!  publication timer ──► expire ─────────┘
//!  nothing left ──► PresentityIdle ──► Registry ──► Stop (if nothing was sent meanwhile)
//! ```

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use actix::prelude::*;
use bytes::Bytes;
use log::debug;

use super::aggregation::{aggregate, binding_tuple, AggregationOptions, Source};
use super::aor::Aor;
use super::document::{PresenceDocument, SharedDocument};
use super::pidf::{self, PidfDocument};
use super::publication::{new_entity_tag, PublishKind};
use super::registry::{PresentityIdle, Registry};
use crate::sip::Reject;
use crate::store::{unix_now, Change, Persist, PublicationRow};

/// A registrar binding as the presentity sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct BindingTuple {
    /// The contact URI.
    pub contact: String,
    /// Tuple priority (from q, or the configured registrar priority).
    pub priority: Option<f32>,
}

/// Where a PUBLISH's outcome goes: straight to whoever answers the request (the dispatcher's
/// channel, through the registry's mapping to a SIP reply), so that no hub actor is woken
/// between the commit and the response.
pub type PublishRespond = Box<dyn FnOnce(Result<PublishAccepted, Reject>) + Send>;

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
    /// The watcher's id (unique per registry).
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

/// Sent by the registry after `PresentityIdle` when nothing else is on its way.
#[derive(Message, Debug)]
#[rtype(result = "()")]
pub struct Stop;

/// Settings for aggregation.
#[derive(Debug, Clone, Copy)]
pub struct PresentitySettings {
    /// With nothing known, say `closed` rather than nothing.
    pub closed_when_unknown: bool,
    /// Retry-After of a 503 when the store cannot commit, seconds.
    pub retry_after: u32,
}

struct Publication {
    doc: Arc<PidfDocument>,
    body: Bytes,
    content_type: String,
    /// Order of the last modification; newest first in aggregation.
    seq: u64,
    /// Its expiry; set once the publication is in the table.
    timer: Option<SpawnHandle>,
}

/// The presentity actor.
pub struct Presentity {
    aor: Aor,
    settings: PresentitySettings,
    publications: HashMap<String, Publication>,
    bindings: Vec<BindingTuple>,
    /// Watchers' inboxes; each watcher removes itself when it ends.
    watchers: HashMap<u64, Recipient<PresenceChanged>>,
    /// The aggregated document watchers were last sent.
    current: SharedDocument,
    /// `current` is out of date: the state changed while nobody watched. Aggregating and
    /// serialising is left to the next watcher that attaches.
    stale: bool,
    seq: u64,
    /// Messages received from the registry, echoed in `PresentityIdle`.
    received: u64,
    idle_reported: bool,
    /// The registry that created it.
    registry: Addr<Registry>,
    /// The store: publications are committed before their 2xx.
    store: Recipient<Persist>,
}

impl Presentity {
    /// A presentity with nothing in it.
    pub fn new(
        aor: Aor,
        settings: PresentitySettings,
        registry: Addr<Registry>,
        store: Recipient<Persist>,
    ) -> Self {
        Self {
            aor: aor.clone(),
            settings,
            publications: HashMap::new(),
            bindings: Vec::new(),
            watchers: HashMap::new(),
            current: Arc::new(PresenceDocument {
                aor: aor.clone(),
                version: 0,
                body: Bytes::new(),
            }),
            stale: true,
            seq: 0,
            received: 0,
            idle_reported: false,
            registry,
            store,
        }
    }

    fn build(&self, version: u64) -> PresenceDocument {
        let mut pubs: Vec<(&String, &Publication)> = self.publications.iter().collect();
        pubs.sort_by_key(|p| std::cmp::Reverse(p.1.seq));
        let binding_docs: Vec<PidfDocument> = self
            .bindings
            .iter()
            .enumerate()
            .map(|(i, b)| {
                let mut d = PidfDocument::new(self.aor.as_str());
                d.tuples
                    .push(binding_tuple(&format!("reg{i}"), &b.contact, b.priority));
                d
            })
            .collect();
        let mut sources: Vec<Source<'_>> = pubs
            .iter()
            .map(|(etag, p)| Source {
                key: etag.as_str(),
                doc: &p.doc,
            })
            .collect();
        sources.extend(
            binding_docs
                .iter()
                .zip(&self.bindings)
                .map(|(doc, b)| Source {
                    key: b.contact.as_str(),
                    doc,
                }),
        );
        let doc = aggregate(
            self.aor.as_str(),
            &sources,
            &AggregationOptions {
                closed_when_empty: self.settings.closed_when_unknown,
            },
        );
        PresenceDocument {
            aor: self.aor.clone(),
            version,
            body: Bytes::from(pidf::serialize(&doc)),
        }
    }

    /// Rebuilds the document and pushes it to every watcher if it changed; with no watcher,
    /// only marks it out of date.
    fn changed(&mut self) {
        if self.watchers.is_empty() {
            self.stale = true;
            return;
        }
        if !self.rebuild() {
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
        self.stale = false;
        let next = self.build(self.current.version + 1);
        if next.body == self.current.body {
            return false;
        }
        self.current = Arc::new(next);
        true
    }

    fn is_empty(&self) -> bool {
        self.publications.is_empty() && self.bindings.is_empty() && self.watchers.is_empty()
    }

    fn check_idle(&mut self) {
        if self.is_empty() && !self.idle_reported {
            self.idle_reported = true;
            self.registry.do_send(PresentityIdle {
                aor: self.aor.clone(),
                received: self.received,
            });
        } else if !self.is_empty() {
            self.idle_reported = false;
        }
    }

    fn arm(&self, etag: String, expires: u32, ctx: &mut Context<Self>) -> SpawnHandle {
        ctx.run_later(Duration::from_secs(u64::from(expires)), move |act, _| {
            if act.publications.remove(&etag).is_some() {
                debug!("presentity {}: publication {etag} expired", act.aor);
                // do_send: one per expiry; nothing waits for it.
                act.store
                    .do_send(Persist(vec![Change::PublicationRemoved(etag.clone())]));
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
        debug!("presentity {}: stopped", self.aor);
        Running::Stop
    }
}

impl Presentity {
    fn row(&self, etag: &str, p: &Publication, expires: u32) -> PublicationRow {
        PublicationRow {
            etag: etag.to_owned(),
            aor: self.aor.to_string(),
            body: p.body.to_vec(),
            content_type: p.content_type.clone(),
            expires_at: unix_now() + i64::from(expires),
            seq: p.seq as i64,
        }
    }

    /// RFC 3903 §6 against the current state: what the PUBLISH changes, without changing it.
    fn plan(&mut self, msg: PublishRequest) -> Result<Plan, Reject> {
        self.seq += 1;
        let seq = self.seq;
        match msg.kind {
            PublishKind::Initial => {
                let doc = msg.doc.ok_or(Reject::new(400))?;
                Ok(Plan::Put {
                    old: None,
                    etag: new_entity_tag(),
                    publication: Publication {
                        doc,
                        body: msg.body,
                        content_type: msg.content_type,
                        seq,
                        timer: None,
                    },
                    expires: msg.expires,
                    modified: true,
                })
            }
            PublishKind::Refresh(old) | PublishKind::Modify(old) | PublishKind::Remove(old) => {
                // RFC 3903 §6 step 5: an unknown entity-tag gets 412.
                let Some(current) = self.publications.get(&old) else {
                    return Err(Reject::new(412));
                };
                if msg.expires == 0 {
                    return Ok(Plan::Remove { etag: old });
                }
                let modified = msg.doc.is_some();
                let publication = match msg.doc {
                    Some(doc) => Publication {
                        doc,
                        body: msg.body,
                        content_type: msg.content_type,
                        seq,
                        timer: None,
                    },
                    None => Publication {
                        doc: current.doc.clone(),
                        body: current.body.clone(),
                        content_type: current.content_type.clone(),
                        seq: current.seq,
                        timer: None,
                    },
                };
                Ok(Plan::Put {
                    old: Some(old),
                    etag: new_entity_tag(),
                    publication,
                    expires: msg.expires,
                    modified,
                })
            }
        }
    }

    /// Applies a committed plan.
    fn apply(&mut self, plan: Plan, ctx: &mut Context<Self>) -> PublishAccepted {
        let accepted = match plan {
            Plan::Remove { etag } => {
                if let Some(p) = self.publications.remove(&etag) {
                    if let Some(t) = p.timer {
                        ctx.cancel_future(t);
                    }
                }
                debug!("presentity {}: publication {etag} removed", self.aor);
                self.changed();
                PublishAccepted {
                    etag: None,
                    expires: 0,
                }
            }
            Plan::Put {
                old,
                etag,
                mut publication,
                expires,
                modified,
            } => {
                if let Some(p) = old.and_then(|o| self.publications.remove(&o)) {
                    if let Some(t) = p.timer {
                        ctx.cancel_future(t);
                    }
                }
                publication.timer = Some(self.arm(etag.clone(), expires, ctx));
                self.publications.insert(etag.clone(), publication);
                if modified {
                    self.changed();
                }
                PublishAccepted {
                    etag: Some(etag),
                    expires,
                }
            }
        };
        self.check_idle();
        accepted
    }
}

/// What an accepted PUBLISH will do, once committed.
enum Plan {
    /// Store `publication` under `etag` (replacing `old`).
    Put {
        old: Option<String>,
        etag: String,
        publication: Publication,
        expires: u32,
        modified: bool,
    },
    /// Remove the publication `etag`.
    Remove { etag: String },
}

impl Handler<Publish> for Presentity {
    // Atomic: the presentity takes no other message while its change is being committed, so
    // two PUBLISHes for one entity-tag cannot both pass the check (RFC 3903 §6 step 5).
    type Result = AtomicResponse<Self, ()>;

    fn handle(&mut self, msg: Publish, _ctx: &mut Self::Context) -> Self::Result {
        self.received += 1;
        let Publish { request, respond } = msg;
        let plan = match self.plan(request) {
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
                publication,
                expires,
                ..
            } => Change::PublicationSaved {
                row: self.row(etag, publication, *expires),
                replaces: old.clone(),
            },
        };
        let retry_after = self.settings.retry_after;
        let persist = self.store.send(Persist(vec![change]));
        AtomicResponse::new(Box::pin(persist.into_actor(self).map(
            move |res, act, ctx| {
                respond(match res {
                    Ok(Ok(())) => Ok(act.apply(plan, ctx)),
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
        self.seq = self.seq.max(msg.seq);
        let timer = self.arm(msg.etag.clone(), msg.expires, ctx);
        self.publications.insert(
            msg.etag,
            Publication {
                doc: msg.doc,
                body: msg.body,
                content_type: msg.content_type,
                seq: msg.seq,
                timer: Some(timer),
            },
        );
        self.changed();
        self.check_idle();
    }
}

impl Handler<SetBindings> for Presentity {
    type Result = ();

    fn handle(&mut self, msg: SetBindings, _ctx: &mut Self::Context) {
        self.received += 1;
        self.bindings = msg.bindings;
        self.changed();
        self.check_idle();
    }
}

impl Handler<AddWatcher> for Presentity {
    type Result = ();

    fn handle(&mut self, msg: AddWatcher, _ctx: &mut Self::Context) {
        self.received += 1;
        if self.stale {
            self.rebuild();
        }
        msg.recipient.do_send(PresenceChanged(self.current.clone()));
        self.watchers.insert(msg.id, msg.recipient);
        self.check_idle();
    }
}

impl Handler<RemoveWatcher> for Presentity {
    type Result = ();

    fn handle(&mut self, msg: RemoveWatcher, _ctx: &mut Self::Context) {
        self.watchers.remove(&msg.id);
        self.check_idle();
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
