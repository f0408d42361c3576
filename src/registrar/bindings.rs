//! `Registrar`: the REGISTER handler and keeper of bindings.
//!
//! Owns: every AOR's bindings and their expiry (swept once a second). Created by `app` at
//! start-up; lives as long as the system. Sends `BindingsChanged` to the presence registry on
//! every change. Must not: authenticate (the proxy in front does) or build PIDF.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use actix::prelude::*;
use log::{debug, info};

use crate::presence::aor::Aor;
use crate::presence::presentity::BindingTuple;
use crate::presence::registry::{BindingsChanged, Registry};
use crate::sip::dispatcher::{IncomingRequest, Reply};
use crate::sip::headers::NameAddr;
use crate::sip::message::HeaderAccess;
use crate::sip::Reject;

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
}

#[derive(Debug, Clone)]
struct Binding {
    contact: NameAddr,
    key: String,
    q: Option<f32>,
    expires_at: Instant,
    call_id: String,
    cseq: u32,
}

/// The registrar actor.
pub struct Registrar {
    config: RegistrarConfig,
    bindings: HashMap<Aor, Vec<Binding>>,
    /// The presence registry, told of every change.
    registry: Addr<Registry>,
}

impl Registrar {
    /// A registrar feeding `registry`.
    pub fn new(config: RegistrarConfig, registry: Addr<Registry>) -> Self {
        Self {
            config,
            bindings: HashMap::new(),
            registry,
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
                    })
                    .collect()
            })
            .unwrap_or_default();
        self.registry.do_send(BindingsChanged {
            aor: aor.clone(),
            bindings,
        });
    }

    fn register(&mut self, msg: &IncomingRequest) -> Result<Reply, Reject> {
        let req = &msg.request;
        let to = req.header_to().map_err(|_| Reject::new(400))?;
        let aor = Aor::from_uri(&to.uri).ok_or_else(|| Reject::with_reason(404, "Invalid AOR"))?;
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
                updates.push((contact, expires.min(self.config.max_expires), q));
            }
            let list = self.bindings.entry(aor.clone()).or_default();
            for (contact, expires, q) in updates {
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
                        };
                        match slot {
                            Some(i) => {
                                changed |= list[i].q != binding.q || list[i].key != binding.key;
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
            self.announce(&aor);
        }
        // RFC 3261 §10.3 step 8: the 200 lists every current binding.
        let mut reply = Reply::ok();
        for b in self.bindings.get(&aor).into_iter().flatten() {
            let left = b.expires_at.saturating_duration_since(now).as_secs();
            reply = reply.header("Contact", format!("<{}>;expires={left}", b.contact.uri));
        }
        Ok(reply)
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
    type Result = Result<Reply, Reject>;

    fn handle(&mut self, msg: IncomingRequest, _ctx: &mut Self::Context) -> Self::Result {
        self.register(&msg)
    }
}
