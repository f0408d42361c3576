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

/// A registrar binding as the presentity sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct BindingTuple {
    /// The contact URI.
    pub contact: String,
    /// Tuple priority (from q, or the configured registrar priority).
    pub priority: Option<f32>,
}

/// Apply a PUBLISH that passed the stateless checks.
#[derive(Message, Debug)]
#[rtype(result = "Result<PublishAccepted, Reject>")]
pub struct Publish {
    /// What it asks for.
    pub kind: PublishKind,
    /// The parsed body, for initial and modify.
    pub doc: Option<Arc<PidfDocument>>,
    /// Granted expiry, seconds.
    pub expires: u32,
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
}

struct Publication {
    doc: Arc<PidfDocument>,
    /// Order of the last modification; newest first in aggregation.
    seq: u64,
    timer: SpawnHandle,
}

/// The presentity actor.
pub struct Presentity {
    aor: Aor,
    settings: PresentitySettings,
    publications: HashMap<String, Publication>,
    bindings: Vec<BindingTuple>,
    /// Watchers' inboxes; each watcher removes itself when it ends.
    watchers: HashMap<u64, Recipient<PresenceChanged>>,
    current: SharedDocument,
    seq: u64,
    /// Messages received from the registry, echoed in `PresentityIdle`.
    received: u64,
    idle_reported: bool,
    /// The registry that created it.
    registry: Addr<Registry>,
}

impl Presentity {
    /// A presentity with nothing in it.
    pub fn new(aor: Aor, settings: PresentitySettings, registry: Addr<Registry>) -> Self {
        let mut p = Self {
            aor,
            settings,
            publications: HashMap::new(),
            bindings: Vec::new(),
            watchers: HashMap::new(),
            current: Arc::new(PresenceDocument {
                version: 0,
                body: Bytes::new(),
            }),
            seq: 0,
            received: 0,
            idle_reported: false,
            registry,
        };
        p.current = Arc::new(p.build(0));
        p
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
            version,
            body: Bytes::from(pidf::serialize(&doc)),
        }
    }

    /// Rebuilds the document and pushes it to every watcher if it changed.
    fn changed(&mut self) {
        let next = self.build(self.current.version + 1);
        if next.body == self.current.body {
            return;
        }
        self.current = Arc::new(next);
        for w in self.watchers.values() {
            // do_send: one message per change per watcher; a watcher only swaps a pointer on
            // each, and coalesces NOTIFYs itself, so its mailbox drains at once.
            w.do_send(PresenceChanged(self.current.clone()));
        }
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

impl Handler<Publish> for Presentity {
    type Result = Result<PublishAccepted, Reject>;

    fn handle(&mut self, msg: Publish, ctx: &mut Self::Context) -> Self::Result {
        self.received += 1;
        self.seq += 1;
        let seq = self.seq;
        let result = match msg.kind {
            PublishKind::Initial => {
                let doc = msg.doc.ok_or(Reject::new(400))?;
                let etag = new_entity_tag();
                let timer = self.arm(etag.clone(), msg.expires, ctx);
                self.publications
                    .insert(etag.clone(), Publication { doc, seq, timer });
                debug!("presentity {}: publication {etag} created", self.aor);
                self.changed();
                Ok(PublishAccepted {
                    etag: Some(etag),
                    expires: msg.expires,
                })
            }
            PublishKind::Refresh(old) | PublishKind::Modify(old) | PublishKind::Remove(old) => {
                // RFC 3903 §6 step 5: an unknown entity-tag gets 412.
                let Some(mut publication) = self.publications.remove(&old) else {
                    self.check_idle();
                    return Err(Reject::new(412));
                };
                ctx.cancel_future(publication.timer);
                if msg.expires == 0 {
                    debug!("presentity {}: publication {old} removed", self.aor);
                    self.changed();
                    self.check_idle();
                    return Ok(PublishAccepted {
                        etag: None,
                        expires: 0,
                    });
                }
                let modified = msg.doc.is_some();
                if let Some(doc) = msg.doc {
                    publication.doc = doc;
                    publication.seq = seq;
                }
                let etag = new_entity_tag();
                publication.timer = self.arm(etag.clone(), msg.expires, ctx);
                self.publications.insert(etag.clone(), publication);
                if modified {
                    self.changed();
                }
                Ok(PublishAccepted {
                    etag: Some(etag),
                    expires: msg.expires,
                })
            }
        };
        self.check_idle();
        result
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
