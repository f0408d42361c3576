//! `Registrar`: the REGISTER handler and keeper of bindings.
//!
//! Owns: every AOR's bindings and their expiry (swept once a second). Created by `app` at
//! start-up; lives as long as the system. Sends `BindingsChanged` to the presence agent on
//! every change. Must not: authenticate (the proxy in front does) or build PIDF.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use actix::prelude::*;
use log::{debug, info, warn};

use crate::awaiting::{Awaiting, Deferred};
use crate::presence::agent::{BindingsChanged, PresenceAgent};
use crate::presence::aor::Aor;
use crate::presence::presentity::BindingTuple;
use crate::sip::dispatcher::{IncomingRequest, Reply};
use crate::sip::headers::NameAddr;
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
    contact: NameAddr,
    key: String,
    q: Option<f32>,
    expires_at: Instant,
    call_id: String,
    cseq: u32,
    /// The contact's `+org.linphone.specs` (capabilities for long-term presence).
    specs: Option<String>,
}

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
        }
    }

    fn announce(&self, aor: &Aor) {
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
    /// (to put back if the store cannot commit) and whether anything changed; on a refusal
    /// nothing has changed.
    fn register(
        &mut self,
        msg: &IncomingRequest,
    ) -> Result<(Aor, Option<Vec<Binding>>, bool), Reject> {
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

    fn put_back(&mut self, aor: &Aor, previous: Option<Vec<Binding>>) {
        match previous {
            Some(list) => self.bindings.insert(aor.clone(), list),
            None => self.bindings.remove(aor),
        };
    }

    /// RFC 3261 §10.3 steps 6-8 for one AOR.
    fn apply_register(&mut self, msg: &IncomingRequest, aor: &Aor) -> Result<bool, Reject> {
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
        let mut changed = false;
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
            changed = self.bindings.remove(&aor).is_some();
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
                        list.remove(i);
                        changed = true;
                    }
                    (None, 0) => {}
                    (slot, secs) => {
                        let binding = Binding {
                            contact: NameAddr {
                                params: Default::default(),
                                ..contact
                            },
                            key,
                            q,
                            expires_at: now + Duration::from_secs(u64::from(secs)),
                            call_id: call_id.clone(),
                            cseq,
                            specs,
                        };
                        match slot {
                            Some(i) => {
                                changed |= list[i].q != binding.q
                                    || list[i].key != binding.key
                                    || list[i].specs != binding.specs;
                                list[i] = binding;
                            }
                            None => {
                                list.push(binding);
                                changed = true;
                            }
                        }
                    }
                }
            }
            if list.is_empty() {
                self.bindings.remove(&aor);
            }
        }
        if changed {
            info!(
                "registrar {aor}: bindings now {}",
                self.bindings.get(&aor).map_or(0, Vec::len)
            );
        }
        Ok(changed)
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
            let before = list.len();
            list.retain(|b| b.expires_at > now);
            if list.len() != before {
                expired.push(aor.clone());
            }
        }
        for aor in expired {
            debug!("registrar {aor}: binding expired");
            if self.bindings.get(&aor).is_some_and(Vec::is_empty) {
                self.bindings.remove(&aor);
            }
            self.announce(&aor);
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
        let (aor, previous, changed) = match self.register(&msg) {
            Ok(r) => r,
            Err(reject) => return Deferred::now(Err(reject)),
        };
        if !changed {
            return Deferred::now(Ok(self.reply(&aor)));
        }
        // Applied at once (so later REGISTERs see it), announced and answered once committed.
        let generation = self.generation.entry(aor.clone()).or_default();
        *generation += 1;
        let mine = *generation;
        let persist = self.store.send(Persist(vec![self.rows(&aor)]));
        self.awaiting.then(persist, move |res, act, _| match res {
            Ok(Ok(())) => {
                act.announce(&aor);
                Ok(act.reply(&aor))
            }
            _ => {
                // Put the bindings back unless a later REGISTER has changed them since.
                if act.generation.get(&aor) == Some(&mine) {
                    act.put_back(&aor, previous);
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
            let (Some(aor), Ok(contact)) = (
                Aor::parse(&row.aor),
                NameAddr::parse(&format!("<{}>", row.contact), "stored contact"),
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
            };
            self.bindings.entry(aor.clone()).or_default().push(binding);
            aors.push(aor);
        }
        aors.dedup();
        for aor in aors {
            self.announce(&aor);
        }
    }
}
