//! `Registrar`: the REGISTER handler and keeper of bindings.
//!
//! Owns: every AOR's bindings and their expiry (swept once a second). Created by `app` at
//! start-up; lives as long as the system. Sends `BindingsChanged` to the presence agent on
//! every change that presence sees, and is the state source of the reg package (RFC 3680):
//! every change, refreshes included, is numbered, written as the AOR's reginfo with what
//! happened to each contact, and sent to the event agent. Must not: authenticate (the proxy
//! in front does) or build PIDF.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use actix::prelude::*;
use log::{debug, info, warn};

use crate::awaiting::{Awaiting, Deferred};
use crate::events::reg::{self, ContactEvent, RegContact};
use crate::events::source::{FetchState, SourcedState, StateSourced};
use crate::inspect::{BindingReport, InspectBindings};
use crate::metrics::metrics;
use crate::presence::agent::{BindingsChanged, PresenceAgent};
use crate::presence::aor::Aor;
use crate::presence::presentity::BindingTuple;
use crate::sip::dispatcher::{IncomingRequest, Reply};
use crate::sip::headers::{NameAddr, Params};
use crate::sip::message::HeaderAccess;
use crate::sip::Reject;
use crate::store::{unix_now, BindingRow, Change, Persist};

/// Registration settings, from `[registrar]`.
#[derive(Debug, Clone, Copy)]
pub struct RegistrarConfig {
    /// Expiry when neither the Contact nor the request gives one, seconds.
    pub default_expires: u32,
    /// Below this (and not 0): 423.
    pub min_expires: u32,
    /// Above this: clamped.
    pub max_expires: u32,
    /// Tuple priority for bindings without `q`; `None` leaves them without priority.
    pub priority: Option<f32>,
    /// Retry-After of a 503 when the store cannot commit, seconds.
    pub retry_after: u32,
}

#[derive(Debug, Clone)]
struct Binding {
    /// The Contact, with its parameters but expires and q.
    contact: NameAddr,
    key: String,
    q: Option<f32>,
    expires_at: Instant,
    call_id: String,
    cseq: u32,
    /// The contact's `+org.linphone.specs` (capabilities for long-term presence).
    specs: Option<String>,
    /// What last happened to it (RFC 3680 §5.1.2).
    event: ContactEvent,
}

/// What a REGISTER did to an AOR's bindings.
#[derive(Debug, Default)]
struct Applied {
    /// Anything stored changed (a refresh too).
    changed: bool,
    /// What presence sees changed (contacts, q, capabilities).
    presence: bool,
    /// The bindings it removed, with why.
    gone: Vec<Binding>,
}

/// The reg package's name.
const REG_PACKAGE: &str = "reg";

/// The registrar actor.
pub struct Registrar {
    config: RegistrarConfig,
    bindings: HashMap<Aor, Vec<Binding>>,
    /// The presence agent, told of every change.
    agent: Addr<PresenceAgent>,
    /// The store: bindings are committed before their 200.
    store: Recipient<Persist>,
    /// Changes per AOR, so a failed commit does not undo a later REGISTER.
    generation: HashMap<Aor, u64>,
    /// REGISTERs waiting for their commit.
    awaiting: Awaiting<Self>,
    /// Told of every change, as the reg package's state.
    reg_listener: Option<Recipient<StateSourced>>,
    /// Changes so far, numbering the reg states.
    reg_seq: u64,
}

impl Registrar {
    /// A registrar feeding `agent`.
    pub fn new(
        config: RegistrarConfig,
        agent: Addr<PresenceAgent>,
        store: Recipient<Persist>,
    ) -> Self {
        Self {
            config,
            bindings: HashMap::new(),
            agent,
            store,
            generation: HashMap::new(),
            awaiting: Awaiting::default(),
            reg_listener: None,
            reg_seq: 0,
        }
    }

    /// Sends every change's reginfo to `listener` (the event agent).
    pub fn with_reg_listener(mut self, listener: Recipient<StateSourced>) -> Self {
        self.reg_listener = Some(listener);
        self
    }

    /// The reginfo of `aor`'s bindings, and of `gone`, those this change removed.
    fn reg_document(&self, aor: &Aor, gone: &[Binding]) -> bytes::Bytes {
        let now = Instant::now();
        let all: Vec<&Binding> = self
            .bindings
            .get(aor)
            .into_iter()
            .flatten()
            .chain(gone)
            .collect();
        let uris: Vec<String> = all.iter().map(|b| b.contact.uri.to_string()).collect();
        let contacts: Vec<RegContact<'_>> = all
            .iter()
            .zip(&uris)
            .map(|(b, uri)| RegContact {
                uri,
                display: b.contact.display.as_deref(),
                params: &b.contact.params,
                event: b.event,
                expires: b.expires_at.saturating_duration_since(now).as_secs(),
                q: b.q,
                call_id: &b.call_id,
                cseq: b.cseq,
            })
            .collect();
        reg::document(aor, &contacts)
    }

    /// Tells the presence agent (when `presence`) and the reg listener of a change.
    fn announce(&mut self, aor: &Aor, presence: bool, gone: &[Binding]) {
        if let Some(listener) = &self.reg_listener {
            self.reg_seq += 1;
            // do_send: one per committed change; the agent drops it when nobody watches.
            listener.do_send(StateSourced {
                package: REG_PACKAGE,
                aor: aor.clone(),
                state: SourcedState {
                    seq: self.reg_seq,
                    body: self.reg_document(aor, gone),
                },
            });
        }
        if !presence {
            return;
        }
        let bindings = self
            .bindings
            .get(aor)
            .map(|list| {
                list.iter()
                    .map(|b| BindingTuple {
                        contact: b.contact.uri.to_string(),
                        priority: b.q.or(self.config.priority),
                        specs: b.specs.clone(),
                    })
                    .collect()
            })
            .unwrap_or_default();
        self.agent.do_send(BindingsChanged {
            aor: aor.clone(),
            bindings,
        });
    }

    /// Applies a REGISTER to the AOR's bindings. Returns the AOR, the bindings as they were
    /// (to put back if the store cannot commit) and what changed; on a refusal nothing has
    /// changed.
    fn register(
        &mut self,
        msg: &IncomingRequest,
    ) -> Result<(Aor, Option<Vec<Binding>>, Applied), Reject> {
        // Parsed and checked by the dispatcher.
        let aor =
            Aor::from_uri(&msg.to.uri).ok_or_else(|| Reject::with_reason(404, "Invalid AOR"))?;
        let previous = self.bindings.get(&aor).cloned();
        match self.apply_register(msg, &aor) {
            Ok(changed) => Ok((aor, previous, changed)),
            Err(reject) => {
                self.put_back(&aor, previous);
                Err(reject)
            }
        }
    }

    /// Moves the bindings gauge by how `aor`'s bindings changed from `before`.
    fn count(&self, aor: &Aor, before: usize) {
        let after = self.bindings.get(aor).map_or(0, Vec::len);
        let delta = i64::try_from(after).unwrap_or(0) - i64::try_from(before).unwrap_or(0);
        metrics().bindings.inc_by(delta);
    }

    fn put_back(&mut self, aor: &Aor, previous: Option<Vec<Binding>>) {
        match previous {
            Some(list) => self.bindings.insert(aor.clone(), list),
            None => self.bindings.remove(aor),
        };
    }

    /// RFC 3261 §10.3 steps 6-8 for one AOR.
    fn apply_register(&mut self, msg: &IncomingRequest, aor: &Aor) -> Result<Applied, Reject> {
        let req = &msg.request;
        let aor = aor.clone();
        let call_id = req.call_id().map_err(|_| Reject::new(400))?.to_owned();
        let cseq = req.cseq().map_err(|_| Reject::new(400))?.seq;
        let header_expires = match req.expires() {
            Some(Ok(e)) => Some(e),
            Some(Err(_)) => return Err(Reject::with_reason(400, "Malformed Expires")),
            None => None,
        };
        let contacts: Vec<&str> = req.headers.list("Contact").collect();
        let now = Instant::now();
        let mut applied = Applied::default();
        if contacts.iter().any(|c| c.trim() == "*") {
            // RFC 3261 §10.3 step 6: `*` only alone and with Expires: 0.
            if contacts.len() != 1 || header_expires != Some(0) {
                return Err(Reject::with_reason(400, "Invalid Wildcard Contact"));
            }
            if let Some(list) = self.bindings.get(&aor) {
                if list.iter().any(|b| b.call_id == call_id && cseq <= b.cseq) {
                    return Err(Reject::with_reason(500, "CSeq Out Of Order"));
                }
            }
            applied.gone = self.bindings.remove(&aor).unwrap_or_default();
            for b in &mut applied.gone {
                b.event = ContactEvent::Unregistered;
            }
            applied.changed = !applied.gone.is_empty();
            applied.presence = applied.changed;
        } else {
            let mut updates = Vec::new();
            for c in &contacts {
                let contact = NameAddr::parse(c, "Contact")
                    .map_err(|_| Reject::with_reason(400, "Malformed Contact"))?;
                let expires = match contact.params.get_unquoted("expires") {
                    Some(v) => v
                        .parse::<u32>()
                        .map_err(|_| Reject::with_reason(400, "Malformed Contact Expires"))?,
                    None => header_expires.unwrap_or(self.config.default_expires),
                };
                if expires != 0 && expires < self.config.min_expires {
                    return Err(
                        Reject::new(423).header("Min-Expires", self.config.min_expires.to_string())
                    );
                }
                let q = contact
                    .params
                    .get_unquoted("q")
                    .and_then(|q| q.parse::<f32>().ok())
                    .filter(|q| (0.0..=1.0).contains(q));
                let specs = contact
                    .params
                    .get_unquoted("+org.linphone.specs")
                    .map(str::to_owned);
                updates.push((contact, expires.min(self.config.max_expires), q, specs));
            }
            let list = self.bindings.entry(aor.clone()).or_default();
            for (contact, expires, q, specs) in updates {
                let key = contact.uri.to_string().to_ascii_lowercase();
                let existing = list.iter().position(|b| b.key == key);
                if let Some(i) = existing {
                    // RFC 3261 §10.3 step 7: same Call-ID needs a higher CSeq.
                    if list[i].call_id == call_id && cseq <= list[i].cseq {
                        return Err(Reject::with_reason(500, "CSeq Out Of Order"));
                    }
                }
                match (existing, expires) {
                    (Some(i), 0) => {
                        let mut gone = list.remove(i);
                        gone.event = ContactEvent::Unregistered;
                        applied.gone.push(gone);
                        applied.changed = true;
                        applied.presence = true;
                    }
                    (None, 0) => {}
                    (slot, secs) => {
                        let expires_at = now + Duration::from_secs(u64::from(secs));
                        // The parameters reg reports; expires and q have their own attributes.
                        let params = Params(
                            contact
                                .params
                                .0
                                .into_iter()
                                .filter(|(n, _)| {
                                    !n.eq_ignore_ascii_case("expires")
                                        && !n.eq_ignore_ascii_case("q")
                                })
                                .collect(),
                        );
                        let event = match slot {
                            None => ContactEvent::Created,
                            // A second's slack: the same Expires a moment later is a refresh.
                            Some(i) if expires_at + Duration::from_secs(1) < list[i].expires_at => {
                                ContactEvent::Shortened
                            }
                            Some(_) => ContactEvent::Refreshed,
                        };
                        let binding = Binding {
                            contact: NameAddr { params, ..contact },
                            key,
                            q,
                            expires_at,
                            call_id: call_id.clone(),
                            cseq,
                            specs,
                            event,
                        };
                        applied.changed = true;
                        match slot {
                            Some(i) => {
                                applied.presence |= list[i].q != binding.q
                                    || list[i].key != binding.key
                                    || list[i].specs != binding.specs;
                                list[i] = binding;
                            }
                            None => {
                                list.push(binding);
                                applied.presence = true;
                            }
                        }
                    }
                }
            }
            if list.is_empty() {
                self.bindings.remove(&aor);
            }
        }
        if applied.presence {
            info!(
                "registrar {aor}: bindings now {}",
                self.bindings.get(&aor).map_or(0, Vec::len)
            );
        }
        Ok(applied)
    }

    /// RFC 3261 §10.3 step 8: the 200 lists every current binding.
    fn reply(&self, aor: &Aor) -> Reply {
        let now = Instant::now();
        let mut reply = Reply::ok();
        for b in self.bindings.get(aor).into_iter().flatten() {
            let left = b.expires_at.saturating_duration_since(now).as_secs();
            reply = reply.header("Contact", format!("<{}>;expires={left}", b.contact.uri));
        }
        reply
    }

    /// The stored form of an AOR's bindings.
    fn rows(&self, aor: &Aor) -> Change {
        let now = Instant::now();
        let unix = unix_now();
        let rows = self
            .bindings
            .get(aor)
            .into_iter()
            .flatten()
            .map(|b| BindingRow {
                aor: aor.to_string(),
                contact: b.contact.uri.to_string(),
                q_value: b.q.map(f64::from),
                expires_at: unix + b.expires_at.saturating_duration_since(now).as_secs() as i64,
                call_id: b.call_id.clone(),
                cseq: i64::from(b.cseq),
                linphone_specs: b.specs.clone(),
                params: (!b.contact.params.0.is_empty()).then(|| b.contact.params.to_string()),
            })
            .collect();
        Change::BindingsReplaced {
            aor: aor.to_string(),
            rows,
        }
    }

    fn sweep(&mut self) {
        let now = Instant::now();
        let mut expired = Vec::new();
        for (aor, list) in &mut self.bindings {
            if list.iter().any(|b| b.expires_at <= now) {
                let (gone, live) = std::mem::take(list)
                    .into_iter()
                    .partition(|b| b.expires_at <= now);
                *list = live;
                expired.push((aor.clone(), gone));
            }
        }
        for (aor, mut gone) in expired {
            debug!("registrar {aor}: binding expired");
            metrics()
                .bindings
                .dec_by(i64::try_from(gone.len()).unwrap_or(0));
            if self.bindings.get(&aor).is_some_and(Vec::is_empty) {
                self.bindings.remove(&aor);
            }
            for b in &mut gone {
                b.event = ContactEvent::Expired;
            }
            self.announce(&aor, true, &gone);
            // do_send: one per expired AOR per sweep; nothing waits for it.
            self.store.do_send(Persist(vec![self.rows(&aor)]));
        }
    }
}

impl Actor for Registrar {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        ctx.run_interval(Duration::from_secs(1), |act, _| act.sweep());
    }
}

impl Handler<IncomingRequest> for Registrar {
    type Result = Deferred<Self, Result<Reply, Reject>>;

    fn handle(&mut self, msg: IncomingRequest, _ctx: &mut Self::Context) -> Self::Result {
        let (aor, previous, applied) = match self.register(&msg) {
            Ok(r) => r,
            Err(reject) => return Deferred::now(Err(reject)),
        };
        if !applied.changed {
            return Deferred::now(Ok(self.reply(&aor)));
        }
        self.count(&aor, previous.as_ref().map_or(0, Vec::len));
        // Applied at once (so later REGISTERs see it), announced and answered once committed.
        let generation = self.generation.entry(aor.clone()).or_default();
        *generation += 1;
        let mine = *generation;
        let persist = self.store.send(Persist(vec![self.rows(&aor)]));
        self.awaiting.then(persist, move |res, act, _| match res {
            Ok(Ok(())) => {
                act.announce(&aor, applied.presence, &applied.gone);
                Ok(act.reply(&aor))
            }
            _ => {
                // Put the bindings back unless a later REGISTER has changed them since.
                if act.generation.get(&aor) == Some(&mine) {
                    let before = act.bindings.get(&aor).map_or(0, Vec::len);
                    act.put_back(&aor, previous);
                    act.count(&aor, before);
                }
                Err(Reject::new(503).header("Retry-After", act.config.retry_after.to_string()))
            }
        })
    }
}

/// Bindings loaded from the store at start-up.
#[derive(Message, Debug)]
#[rtype(result = "()")]
pub struct RestoreBindings(pub Vec<BindingRow>);

impl Handler<RestoreBindings> for Registrar {
    type Result = ();

    fn handle(&mut self, msg: RestoreBindings, _ctx: &mut Self::Context) {
        let now = Instant::now();
        let unix = unix_now();
        let mut aors = Vec::new();
        for row in msg.0 {
            let stored = format!(
                "<{}>{}",
                row.contact,
                row.params.as_deref().unwrap_or_default()
            );
            let (Some(aor), Ok(contact)) = (
                Aor::parse(&row.aor),
                NameAddr::parse(&stored, "stored contact"),
            ) else {
                warn!(
                    "registrar: stored binding {} of {} is invalid, dropped",
                    row.contact, row.aor
                );
                continue;
            };
            let left = u64::try_from(row.expires_at - unix).unwrap_or(0);
            let binding = Binding {
                key: contact.uri.to_string().to_ascii_lowercase(),
                contact,
                q: row.q_value.map(|q| q as f32),
                expires_at: now + Duration::from_secs(left),
                call_id: row.call_id,
                cseq: u32::try_from(row.cseq).unwrap_or(u32::MAX),
                specs: row.linphone_specs,
                event: ContactEvent::Registered,
            };
            self.bindings.entry(aor.clone()).or_default().push(binding);
            metrics().bindings.inc();
            aors.push(aor);
        }
        aors.dedup();
        for aor in aors {
            self.announce(&aor, true, &[]);
        }
    }
}

impl Handler<FetchState> for Registrar {
    type Result = MessageResult<FetchState>;

    fn handle(&mut self, msg: FetchState, _ctx: &mut Self::Context) -> Self::Result {
        MessageResult(SourcedState {
            seq: self.reg_seq,
            body: self.reg_document(&msg.aor, &[]),
        })
    }
}

impl Handler<InspectBindings> for Registrar {
    type Result = MessageResult<InspectBindings>;

    fn handle(&mut self, msg: InspectBindings, _ctx: &mut Self::Context) -> Self::Result {
        let now = Instant::now();
        MessageResult(
            self.bindings
                .get(&msg.0)
                .into_iter()
                .flatten()
                .map(|b| BindingReport {
                    contact: b.contact.uri.to_string(),
                    expires_in: b.expires_at.saturating_duration_since(now).as_secs(),
                    q: b.q,
                    call_id: b.call_id.clone(),
                    cseq: b.cseq,
                })
                .collect(),
        )
    }
}
