//! `Watcher`: one actor per presence subscription (dialog plus Event `id`).
//!
//! Owns: the subscription's dialog (Call-ID, tags, route set, remote target, local and remote
//! CSeq), its expiry and state, and its NOTIFYs: built here, sent as client transactions
//! through the dispatcher, one at a time. Changes that arrive while a NOTIFY is outstanding are
//! coalesced: the next NOTIFY carries the latest document. Created by the `Registry` for an
//! accepted SUBSCRIBE; receives in-dialog SUBSCRIBEs through the dispatcher's dialog table.
//! Stops after its final NOTIFY (expiry, unsubscribe), or when a NOTIFY gets 481, times out,
//! or fails; unregisters from the dispatcher and its presentity in `stopping()`.
//!
//! ```text
//!            200 sent + document ──► NOTIFY(active) ──► [in flight] ──2xx──► idle
//!   change while in flight: remember ─┘        481 / Timer F / error ──► stop
//!   refresh ──► 200, NOTIFY        unsubscribe or expiry ──► NOTIFY(terminated) ──► stop
//! ```

use std::net::SocketAddr;
use std::time::Duration;

use actix::prelude::*;
use log::{debug, info};

use super::aor::Aor;
use super::document::{SharedDocument, PIDF_CONTENT_TYPE};
use super::presentity::{PresenceChanged, Presentity, RemoveWatcher};
use crate::sip::dialog::DialogId;
use crate::sip::dispatcher::{
    usage_key, ClientOutcome, ClientResult, IncomingRequest, RegisterDialog, Reply, ResponseSent,
    SendRequest, UnregisterDialog,
};
use crate::sip::headers::{EventReason, NameAddr, SubState, SubscriptionState};
use crate::sip::message::{HeaderAccess, Headers, Method, Request};
use crate::sip::transport::{Source, Target, Transport};
use crate::sip::uri::{Host, Uri};
use crate::sip::{Dispatcher, Reject};

/// Settings for watchers.
#[derive(Debug, Clone)]
pub struct WatcherSettings {
    /// SUBSCRIBE expiry limits (default, min, max), seconds.
    pub expires: (u32, u32, u32),
    /// Keep the subscription when a NOTIFY gets 408 (SER PA's `ignore_408_on_notify`).
    pub keep_on_408: bool,
}

/// Everything a watcher starts with.
pub struct WatcherInit {
    /// Unique id within the registry.
    pub id: u64,
    /// The presentity watched.
    pub aor: Aor,
    /// Event `id` parameter.
    pub event_id: Option<String>,
    /// Call-ID.
    pub call_id: String,
    /// Our tag.
    pub local_tag: String,
    /// The subscriber's tag.
    pub remote_tag: String,
    /// Our URI (the SUBSCRIBE's To, without tag).
    pub local_uri: NameAddr,
    /// The subscriber's URI (the SUBSCRIBE's From, without tag).
    pub remote_uri: NameAddr,
    /// Where NOTIFYs go (the SUBSCRIBE's Contact).
    pub remote_target: Uri,
    /// Record-Route of the SUBSCRIBE, in order.
    pub route_set: Vec<NameAddr>,
    /// CSeq of the SUBSCRIBE.
    pub remote_cseq: u32,
    /// Granted expiry; 0 for a fetch.
    pub expires: u32,
    /// Where the SUBSCRIBE came from (connection reuse).
    pub source: Source,
    /// Settings.
    pub settings: WatcherSettings,
    /// The presentity, told when the watcher ends.
    pub presentity: Addr<Presentity>,
    /// The dispatcher: NOTIFYs and the dialog table.
    pub dispatcher: Addr<Dispatcher>,
}

/// The `Contact` the server puts in its responses and NOTIFYs for a request from `source`.
pub fn local_contact(source: &Source) -> String {
    let addr = match source.local {
        SocketAddr::V6(a) => format!("[{}]:{}", a.ip(), a.port()),
        a => a.to_string(),
    };
    match source.transport {
        Transport::Tcp => format!("<sip:{addr};transport=tcp>"),
        Transport::Udp => format!("<sip:{addr}>"),
    }
}

/// The watcher actor.
pub struct Watcher {
    init: WatcherInit,
    dialog: DialogId,
    usage: String,
    local_cseq: u32,
    expires_at: std::time::Instant,
    expiry_timer: Option<SpawnHandle>,
    document: Option<SharedDocument>,
    /// The 200 to the SUBSCRIBE has gone out; NOTIFYs may follow.
    confirmed: bool,
    in_flight: bool,
    /// A change (or refresh) arrived while a NOTIFY was in flight.
    dirty: bool,
    /// Set once the subscription is ending: the final NOTIFY carries this reason.
    terminating: Option<EventReason>,
    final_sent: bool,
}

impl Watcher {
    /// A watcher for an accepted SUBSCRIBE.
    pub fn new(init: WatcherInit) -> Self {
        let dialog = DialogId {
            call_id: init.call_id.clone(),
            local_tag: init.local_tag.clone(),
            remote_tag: init.remote_tag.clone(),
        };
        let usage = usage_key("presence", init.event_id.as_deref());
        let terminating = (init.expires == 0).then_some(EventReason::Timeout);
        let expires_at = std::time::Instant::now() + Duration::from_secs(u64::from(init.expires));
        Self {
            init,
            dialog,
            usage,
            local_cseq: 0,
            expires_at,
            expiry_timer: None,
            document: None,
            confirmed: false,
            in_flight: false,
            dirty: false,
            terminating,
            final_sent: false,
        }
    }

    /// The dialog-table entry for this subscription, handed to the dispatcher with the 200 to
    /// the SUBSCRIBE (none for a fetch, which has no dialog usage after its NOTIFY).
    pub fn dialog_registration(&self, addr: &Addr<Self>) -> Option<RegisterDialog> {
        self.terminating.is_none().then(|| RegisterDialog {
            id: self.dialog.clone(),
            usage: self.usage.clone(),
            handler: addr.clone().recipient(),
        })
    }

    fn arm_expiry(&mut self, ctx: &mut Context<Self>) {
        if let Some(h) = self.expiry_timer.take() {
            ctx.cancel_future(h);
        }
        let after = self
            .expires_at
            .saturating_duration_since(std::time::Instant::now());
        self.expiry_timer = Some(ctx.run_later(after, |act, ctx| {
            debug!(
                "watcher {}: subscription to {} expired",
                act.init.id, act.init.aor
            );
            act.terminate(EventReason::Timeout, ctx);
        }));
    }

    fn terminate(&mut self, reason: EventReason, ctx: &mut Context<Self>) {
        if self.terminating.is_none() {
            self.terminating = Some(reason);
        }
        self.dirty = true;
        self.pump(ctx);
    }

    /// Sends the next NOTIFY if one is due and none is in flight.
    fn pump(&mut self, ctx: &mut Context<Self>) {
        if !self.confirmed || self.in_flight || self.final_sent {
            return;
        }
        let Some(doc) = self.document.clone() else {
            return;
        };
        if !self.dirty {
            return;
        }
        self.dirty = false;
        let state = match &self.terminating {
            Some(reason) => {
                self.final_sent = true;
                SubscriptionState {
                    state: SubState::Terminated,
                    expires: None,
                    reason: Some(reason.clone()),
                    retry_after: None,
                }
            }
            None => SubscriptionState {
                state: SubState::Active,
                expires: Some(
                    self.expires_at
                        .saturating_duration_since(std::time::Instant::now())
                        .as_secs()
                        .max(1) as u32,
                ),
                reason: None,
                retry_after: None,
            },
        };
        self.local_cseq += 1;
        let request = self.notify(&state, &doc);
        self.in_flight = true;
        self.init.dispatcher.do_send(SendRequest {
            request,
            target: self.next_hop(),
            owner: ctx.address().recipient(),
            tag: u64::from(self.local_cseq),
        });
    }

    fn notify(&self, state: &SubscriptionState, doc: &SharedDocument) -> Request {
        let i = &self.init;
        let mut h = Headers::default();
        for route in &i.route_set {
            h.push("Route", route.to_string());
        }
        h.push("Max-Forwards", "70");
        h.push("From", format!("{};tag={}", i.local_uri, i.local_tag));
        h.push("To", format!("{};tag={}", i.remote_uri, i.remote_tag));
        h.push("Call-ID", i.call_id.clone());
        h.push("CSeq", format!("{} NOTIFY", self.local_cseq));
        h.push("Contact", local_contact(&i.source));
        h.push(
            "Event",
            match &i.event_id {
                Some(id) => format!("presence;id={id}"),
                None => "presence".to_owned(),
            },
        );
        h.push("Subscription-State", state.to_string());
        h.push("Content-Type", PIDF_CONTENT_TYPE);
        Request {
            method: Method::Notify,
            uri: i.remote_target.clone(),
            headers: h,
            body: doc.body.clone(),
        }
    }

    /// RFC 3261 §12.2.1.1 / §8.1.2: the first Route if there is a route set, otherwise the
    /// remote target; over the SUBSCRIBE's connection while it is open (the transport falls
    /// back to the address when it is gone).
    fn next_hop(&self) -> Target {
        let i = &self.init;
        let uri = i
            .route_set
            .first()
            .map(|r| &r.uri)
            .unwrap_or(&i.remote_target);
        let sip = uri.as_sip();
        let transport = match sip.and_then(|u| u.param("transport")).flatten() {
            Some(t) if t.eq_ignore_ascii_case("tcp") => Transport::Tcp,
            Some(t) if t.eq_ignore_ascii_case("udp") => Transport::Udp,
            _ => i.source.transport,
        };
        // DEVIATION: no RFC 3263 DNS lookup; a next hop named by host name is reached at the
        // address the SUBSCRIBE came from (in practice the proxy in front of us).
        let addr = match sip.map(|u| (&u.host, u.port)) {
            Some((Host::Ip(ip), port)) => SocketAddr::new(*ip, port.unwrap_or(5060)),
            _ => i.source.peer,
        };
        let same_path = transport == i.source.transport;
        Target {
            transport,
            addr,
            connection: if same_path { i.source.connection } else { None },
            local: same_path.then_some(i.source.local),
        }
    }

    fn refresh(&mut self, msg: &IncomingRequest, ctx: &mut Context<Self>) -> Result<Reply, Reject> {
        let req = &msg.request;
        let cseq = req.cseq().map_err(|_| Reject::new(400))?;
        // RFC 3261 §12.2.2: a CSeq lower than the last one is out of order.
        if cseq.seq <= self.init.remote_cseq {
            return Err(Reject::with_reason(500, "CSeq Out Of Order"));
        }
        self.init.remote_cseq = cseq.seq;
        let (default, min, max) = self.init.settings.expires;
        let requested = match req.expires() {
            Some(Ok(e)) => e,
            Some(Err(_)) => return Err(Reject::with_reason(400, "Malformed Expires")),
            None => default,
        };
        if requested != 0 && requested < min {
            return Err(Reject::new(423).header("Min-Expires", min.to_string()));
        }
        let granted = requested.min(max);
        if let Some(contact) = req.headers.list("Contact").next() {
            if let Ok(c) = NameAddr::parse(contact, "Contact") {
                // RFC 6665 §4.1.2.4 / RFC 3261 §12.2.2: a target refresh.
                self.init.remote_target = c.uri;
            }
        }
        self.dirty = true;
        if granted == 0 {
            if let Some(h) = self.expiry_timer.take() {
                ctx.cancel_future(h);
            }
            self.terminating.get_or_insert(EventReason::Timeout);
            info!(
                "watcher {}: unsubscribed from {}",
                self.init.id, self.init.aor
            );
        } else {
            self.expires_at = std::time::Instant::now() + Duration::from_secs(u64::from(granted));
            self.arm_expiry(ctx);
        }
        // The NOTIFY follows once the 200 is sent.
        self.confirmed = false;
        Ok(Reply {
            status: 200,
            to_tag: None,
            headers: vec![
                ("Contact".into(), local_contact(&msg.source)),
                ("Expires".into(), granted.to_string()),
            ],
            body: None,
            on_sent: Some(ctx.address().recipient()),
            dialog: None,
        })
    }
}

impl Actor for Watcher {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        // The dialog table entry comes with the 200 (`Watcher::dialog_registration`).
        if self.terminating.is_none() {
            self.arm_expiry(ctx);
        }
        self.dirty = true;
    }

    fn stopping(&mut self, _ctx: &mut Self::Context) -> Running {
        self.init.dispatcher.do_send(UnregisterDialog {
            id: self.dialog.clone(),
            usage: self.usage.clone(),
        });
        self.init
            .presentity
            .do_send(RemoveWatcher { id: self.init.id });
        debug!("watcher {}: ended", self.init.id);
        Running::Stop
    }
}

impl Handler<PresenceChanged> for Watcher {
    type Result = ();

    fn handle(&mut self, msg: PresenceChanged, ctx: &mut Self::Context) {
        self.document = Some(msg.0);
        self.dirty = true;
        self.pump(ctx);
    }
}

impl Handler<ResponseSent> for Watcher {
    type Result = ();

    fn handle(&mut self, _msg: ResponseSent, ctx: &mut Self::Context) {
        self.confirmed = true;
        self.pump(ctx);
    }
}

impl Handler<IncomingRequest> for Watcher {
    type Result = Result<Reply, Reject>;

    fn handle(&mut self, msg: IncomingRequest, ctx: &mut Self::Context) -> Self::Result {
        match msg.request.method {
            Method::Subscribe if !self.final_sent => self.refresh(&msg, ctx),
            Method::Subscribe => Err(Reject::new(481)),
            _ => Err(Reject::new(405).header("Allow", "SUBSCRIBE")),
        }
    }
}

impl Handler<ClientOutcome> for Watcher {
    type Result = ();

    fn handle(&mut self, msg: ClientOutcome, ctx: &mut Self::Context) {
        if msg.tag != u64::from(self.local_cseq) {
            return;
        }
        self.in_flight = false;
        let id = self.init.id;
        match msg.result {
            ClientResult::Response(r) if (200..300).contains(&r.status) => {
                if self.final_sent {
                    ctx.stop();
                } else {
                    self.pump(ctx);
                }
            }
            ClientResult::Response(r) if r.status == 408 && self.init.settings.keep_on_408 => {
                debug!("watcher {id}: NOTIFY got 408, subscription kept");
                self.pump(ctx);
            }
            ClientResult::Response(r) => {
                info!("watcher {id}: NOTIFY got {}, subscription ended", r.status);
                ctx.stop();
            }
            ClientResult::Timeout => {
                info!("watcher {id}: NOTIFY timed out, subscription ended");
                ctx.stop();
            }
            ClientResult::TransportError => {
                info!("watcher {id}: NOTIFY could not be sent, subscription ended");
                ctx.stop();
            }
        }
    }
}
