//! `Watcher<V>`: one actor per subscription (dialog plus Event `id`), of any event package.
//!
//! Owns: the subscription's dialog (a [`SubscriptionDialog`], with the local CSeq and its
//! stored high-water mark), its expiry and state, and its NOTIFYs: built here, sent as client
//! transactions through the dispatcher, one at a time, deflated when the SUBSCRIBE allowed it;
//! and what it counts in the metrics (its subscription, NOTIFYs sent and failed, the latency of
//! a change). What a NOTIFY carries comes from its [`NotifyView`] (`view`): one presentity's
//! document (`view::PresentityView`), a package's resource (`events::agent::ResourceView`) or a
//! resource list (`rls::ListView`). Changes that arrive while a NOTIFY is outstanding are
//! coalesced: the next NOTIFY carries the latest state. Created by the `PresenceAgent`, the
//! `EventAgent` or `rls::SubscribeRouter` for an accepted SUBSCRIBE (or a recovered one);
//! receives in-dialog SUBSCRIBEs through the dispatcher's dialog table. Stops after its final
//! NOTIFY (expiry, unsubscribe), or when a NOTIFY gets 481, times out, or fails; unregisters
//! from the dispatcher and detaches its view in `stopping()`.
//!
//! ```text
//!     200 sent + view due ──► NOTIFY(active) ──► [in flight] ──2xx──► idle
//!   change while in flight: remember ─┘        481 / Timer F / error ──► stop
//!   view due later (throttled list) ──► timer ──► NOTIFY
//!   refresh ──► 200, NOTIFY (full state)   unsubscribe or expiry ──► NOTIFY(terminated) ──► stop
//! ```

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::prelude::*;
use bytes::Bytes;
use log::{debug, info};

use super::presentity::PresenceChanged;
use super::subscription::{local_contact, subscription_id, SubscriptionDialog};
use super::view::{Due, NotifyContent, NotifyView};
use crate::metrics::metrics;
use crate::sip::content_coding::deflate;
use crate::sip::dialog::DialogId;
use crate::sip::dispatcher::{
    usage_key, ClientOutcome, ClientResult, IncomingRequest, RegisterDialog, Reply, ResponseSent,
    SendRequest, UnregisterDialog,
};
use crate::sip::headers::{
    accepts_coding, parse_weighted_list, EventReason, NameAddr, SubState, SubscriptionState,
};
use crate::sip::message::{HeaderAccess, Headers, Method, Request};
use crate::sip::transport::{Source, Target, Transport};
use crate::sip::uri::{Host, Uri};
use crate::sip::{Dispatcher, Reject};
use crate::store::worker::CSEQ_MARK_STEP;
use crate::store::{unix_now, Change, Persist, SubscriptionRow};

/// Settings for watchers.
#[derive(Debug, Clone)]
pub struct WatcherSettings {
    /// SUBSCRIBE expiry limits (default, min, max), seconds.
    pub expires: (u32, u32, u32),
    /// Keep the subscription when a NOTIFY gets 408 (SER PA's `ignore_408_on_notify`).
    pub keep_on_408: bool,
    /// Retry-After of a 503 when the store cannot commit, seconds.
    pub retry_after: u32,
    /// NOTIFY bodies at least this large are deflated when the SUBSCRIBE's Accept-Encoding
    /// allows it; 0 never deflates.
    pub deflate_min_bytes: usize,
}

/// A fresh watcher id, unique in this process (presentities key their recipients by it).
pub fn new_watcher_id() -> u64 {
    static NEXT: AtomicU64 = AtomicU64::new(1);
    NEXT.fetch_add(1, Ordering::Relaxed)
}
/// Everything a watcher starts with.
pub struct WatcherInit {
    /// Unique id within the presence agent.
    pub id: u64,
    /// The dialog.
    pub dialog: SubscriptionDialog,
    /// What it shares with the other watchers of its owner.
    pub shared: Arc<WatcherShared>,
}

/// What every watcher started by one owner (the presence agent, the subscribe router) shares: one
/// allocation for all of them, where each copy of an actix address costs two.
pub struct WatcherShared {
    /// Settings.
    pub settings: WatcherSettings,
    /// The dispatcher: NOTIFYs and the dialog table.
    pub dispatcher: Addr<Dispatcher>,
    /// The store: the dialog is saved before each 2xx.
    pub store: Recipient<Persist>,
}

/// The watcher actor.
pub struct Watcher<V: NotifyView> {
    init: WatcherInit,
    /// What the NOTIFYs carry.
    view: V,
    local_cseq: u32,
    expires_at: Instant,
    expiry_timer: Option<SpawnHandle>,
    /// Wakes `pump` when a throttled view becomes due.
    throttle_timer: Option<SpawnHandle>,
    /// The 200 to the SUBSCRIBE has gone out; NOTIFYs may follow.
    confirmed: bool,
    in_flight: bool,
    /// Full state is owed: first NOTIFY, refresh, final NOTIFY.
    full_state_due: bool,
    /// Active, ending, or ended.
    life: Lifecycle,
    /// The SUBSCRIBE's Accept-Encoding admits deflate.
    deflate: bool,
    /// Committed NOTIFY CSeq high-water mark: every CSeq sent is below it, and the store knows.
    cseq_mark: u32,
    /// A higher mark is being committed.
    mark_pending: bool,
}

/// Where a subscription is in its life (RFC 6665 §4.2.2).
///
/// ```text
///  Active ──expiry / unsubscribe / fetch──► Terminating(reason) ──final NOTIFY──► FinalSent
///                                                                   (stop once answered)
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
enum Lifecycle {
    /// NOTIFYs say `active`, with the time left.
    Active,
    /// The next NOTIFY is the final one, `terminated` with this reason.
    Terminating(EventReason),
    /// The final NOTIFY has gone: refreshes get 481, and the watcher stops once it is answered.
    FinalSent,
}

impl Lifecycle {
    fn is_active(&self) -> bool {
        matches!(self, Lifecycle::Active)
    }
}

/// Start raising the NOTIFY CSeq mark when the next CSeq comes this close to it, so that
/// NOTIFYs never wait for the store in practice.
const MARK_LOW_WATER: u32 = 500;

/// Starts the watcher of an accepted (or, with its stored CSeq mark, recovered) subscription
/// and hands its inbox to `attach` (the presentity or resource it watches) before anything
/// else can reach it. Gives the 200 for a new subscription; a recovered one has no 200, so its
/// dialog is registered with the dispatcher here and nothing is given to send.
pub fn launch<V: NotifyView>(
    init: WatcherInit,
    view: V,
    recovered_mark: Option<i64>,
    attach: impl FnOnce(Recipient<PresenceChanged>),
) -> Reply {
    let (source, expires) = (init.dialog.source, init.dialog.expires);
    let local_tag = init.dialog.local_tag.clone();
    let dispatcher = init.shared.dispatcher.clone();
    let watcher = match recovered_mark {
        Some(mark) => Watcher::recovered(init, view, mark),
        None => Watcher::new(init, view),
    };
    let ctx = Context::<Watcher<V>>::new();
    let registration = watcher.dialog_registration(&ctx.address());
    let headers = recovered_mark
        .is_none()
        .then(|| watcher.response_headers(&source, expires));
    let addr = ctx.run(watcher);
    attach(addr.clone().recipient());
    let Some(headers) = headers else {
        if let Some(d) = registration {
            dispatcher.do_send(d);
        }
        return Reply::default();
    };
    Reply {
        status: 200,
        to_tag: Some(local_tag),
        headers: headers.into_iter().map(|(n, v)| (n.into(), v)).collect(),
        body: None,
        on_sent: Some(addr.recipient()),
        dialog: registration,
    }
}

impl<V: NotifyView> Watcher<V> {
    /// A watcher for an accepted SUBSCRIBE.
    pub fn new(init: WatcherInit, view: V) -> Self {
        // A fetch (Expires: 0) ends with its first NOTIFY.
        let life = if init.dialog.expires == 0 {
            Lifecycle::Terminating(EventReason::Timeout)
        } else {
            Lifecycle::Active
        };
        let expires_at = Instant::now() + Duration::from_secs(u64::from(init.dialog.expires));
        let deflate = init.shared.settings.deflate_min_bytes > 0
            && init
                .dialog
                .accept_encoding
                .as_deref()
                .and_then(|v| parse_weighted_list(v, "Accept-Encoding").ok())
                .is_some_and(|list| accepts_coding(&list, "deflate"));
        Self {
            init,
            view,
            local_cseq: 0,
            expires_at,
            expiry_timer: None,
            throttle_timer: None,
            confirmed: false,
            in_flight: false,
            full_state_due: true,
            life,
            deflate,
            cseq_mark: CSEQ_MARK_STEP as u32,
            mark_pending: false,
        }
    }

    /// A watcher recovered from the store after a restart: its 200 went out long ago, and its
    /// next NOTIFY uses a CSeq above every CSeq sent before: `stored_mark` is the mark as loaded
    /// (`store::worker::effective_mark`), one `CSEQ_MARK_STEP` above what the previous run
    /// could reach.
    pub fn recovered(init: WatcherInit, view: V, stored_mark: i64) -> Self {
        let mut w = Self::new(init, view);
        let previous_mark = (stored_mark - CSEQ_MARK_STEP).max(1);
        w.local_cseq = u32::try_from(previous_mark - 1).unwrap_or(u32::MAX - 1);
        w.cseq_mark = u32::try_from(stored_mark).unwrap_or(u32::MAX);
        w.confirmed = true;
        w
    }

    /// The dialog's id (built when needed: the dialog holds its parts).
    fn dialog_id(&self) -> DialogId {
        DialogId {
            call_id: self.init.dialog.call_id.clone(),
            local_tag: self.init.dialog.local_tag.clone(),
            remote_tag: self.init.dialog.remote_tag.clone(),
        }
    }

    /// The dialog usage key of this subscription.
    fn usage(&self) -> String {
        usage_key(
            &self.init.dialog.package,
            self.init.dialog.event_id.as_deref(),
        )
    }

    /// The stored row's id.
    fn row_id(&self) -> String {
        subscription_id(&self.dialog_id(), &self.usage())
    }

    /// The current row, as it will be after `update`.
    fn row(&self, update: Option<&V::Update>) -> SubscriptionRow {
        let left = self.expires_at.saturating_duration_since(Instant::now());
        let mut row = self.init.dialog.to_row(
            &self.row_id(),
            unix_now() + left.as_secs() as i64,
            self.cseq_mark,
        );
        self.view.fill_row(update, &mut row);
        row
    }

    /// Raises the stored CSeq mark ahead of need. Returns false when the next NOTIFY must wait
    /// for the raise to be committed (the next CSeq would reach the committed mark).
    fn cseq_allowed(&mut self, ctx: &mut Context<Self>) -> bool {
        let next = self.local_cseq.saturating_add(1);
        if next.saturating_add(MARK_LOW_WATER) >= self.cseq_mark && !self.mark_pending {
            self.mark_pending = true;
            let mark = next.saturating_add(CSEQ_MARK_STEP as u32);
            let persist = self
                .init
                .shared
                .store
                .send(Persist(vec![Change::NotifyCSeqMark {
                    id: self.row_id(),
                    mark: i64::from(mark),
                }]));
            ctx.spawn(persist.into_actor(self).map(move |res, act, ctx| {
                act.mark_pending = false;
                if let Ok(Ok(())) = res {
                    act.cseq_mark = act.cseq_mark.max(mark);
                    act.pump(ctx);
                }
            }));
        }
        next < self.cseq_mark
    }

    /// The dialog-table entry for this subscription, handed to the dispatcher with the 200 to
    /// the SUBSCRIBE (none for a fetch, which has no dialog usage after its NOTIFY).
    pub fn dialog_registration(&self, addr: &Addr<Self>) -> Option<RegisterDialog> {
        self.life.is_active().then(|| RegisterDialog {
            id: self.dialog_id(),
            usage: self.usage(),
            handler: addr.clone().recipient(),
        })
    }

    /// Headers of the 200 to a SUBSCRIBE that created or refreshed this subscription.
    pub fn response_headers(&self, source: &Source, expires: u32) -> Vec<(String, String)> {
        let mut headers = vec![
            ("Contact".to_owned(), local_contact(source)),
            ("Expires".to_owned(), expires.to_string()),
        ];
        headers.extend(
            self.view
                .extra_headers()
                .iter()
                .map(|(n, v)| ((*n).to_owned(), (*v).to_owned())),
        );
        headers
    }

    fn arm_expiry(&mut self, ctx: &mut Context<Self>) {
        if let Some(h) = self.expiry_timer.take() {
            ctx.cancel_future(h);
        }
        let after = self.expires_at.saturating_duration_since(Instant::now());
        self.expiry_timer = Some(ctx.run_later(after, |act, ctx| {
            debug!(
                "watcher {}: subscription to {} expired",
                act.init.id, act.init.dialog.aor
            );
            act.terminate(EventReason::Timeout, ctx);
        }));
    }

    fn terminate(&mut self, reason: EventReason, ctx: &mut Context<Self>) {
        if self.life.is_active() {
            self.life = Lifecycle::Terminating(reason);
        }
        self.full_state_due = true;
        self.pump(ctx);
    }

    /// Sends the next NOTIFY if one is due and none is in flight.
    fn pump(&mut self, ctx: &mut Context<Self>) {
        if !self.confirmed || self.in_flight || self.life == Lifecycle::FinalSent {
            return;
        }
        let now = Instant::now();
        match self.view.due(self.full_state_due, now) {
            Due::Nothing => return,
            Due::At(at) => {
                if self.throttle_timer.is_none() {
                    let after = at.saturating_duration_since(now);
                    self.throttle_timer = Some(ctx.run_later(after, |act, ctx| {
                        act.throttle_timer = None;
                        act.pump(ctx);
                    }));
                }
                return;
            }
            Due::Now => {}
        }
        // A fetch has no stored row, so no mark to respect.
        if self.init.dialog.expires != 0 && !self.cseq_allowed(ctx) {
            return;
        }
        if let Some(h) = self.throttle_timer.take() {
            ctx.cancel_future(h);
        }
        let full_state = std::mem::take(&mut self.full_state_due);
        let state = match &self.life {
            Lifecycle::Terminating(reason) => {
                let state = SubscriptionState {
                    state: SubState::Terminated,
                    expires: None,
                    reason: Some(reason.clone()),
                    retry_after: None,
                };
                self.life = Lifecycle::FinalSent;
                state
            }
            // (A final NOTIFY already sent returned above.)
            Lifecycle::Active | Lifecycle::FinalSent => SubscriptionState {
                state: SubState::Active,
                expires: Some(
                    self.expires_at
                        .saturating_duration_since(now)
                        .as_secs()
                        .max(1) as u32,
                ),
                reason: None,
                retry_after: None,
            },
        };
        self.local_cseq += 1;
        // RFC 4662 §5.2: the first RLMI version is 0, and it goes up by one per NOTIFY.
        let content = self.view.next(full_state, self.local_cseq - 1, now);
        let package = self.view.package();
        let m = metrics();
        m.notifies_sent.get_or_create(&[("package", package)]).inc();
        // A change's latency: full state (initial, refresh) reports no change.
        if let (false, Some(at)) = (full_state, content.changed_at) {
            m.change_to_notify
                .get_or_create(&[("package", package)])
                .observe(now.saturating_duration_since(at).as_secs_f64());
        }
        let request = self.notify(&state, content);
        self.in_flight = true;
        self.init.shared.dispatcher.do_send(SendRequest {
            request,
            target: self.next_hop(),
            owner: ctx.address().recipient(),
            tag: u64::from(self.local_cseq),
        });
    }

    fn notify(&self, state: &SubscriptionState, content: NotifyContent) -> Request {
        let i = &self.init;
        // The headers below and the Via the dispatcher adds, without regrowing.
        let mut h = Headers(Vec::with_capacity(14 + i.dialog.route_set.len()));
        for route in &i.dialog.route_set {
            h.push("Route", route.to_string());
        }
        h.push("Max-Forwards", "70");
        // Values are concatenated: a `format!` per header was a tenth of what a NOTIFY cost.
        h.push(
            "From",
            [i.dialog.local_uri.as_str(), ";tag=", &i.dialog.local_tag].concat(),
        );
        h.push(
            "To",
            [i.dialog.remote_uri.as_str(), ";tag=", &i.dialog.remote_tag].concat(),
        );
        h.push("Call-ID", i.dialog.call_id.clone());
        h.push(
            "CSeq",
            [itoa::Buffer::new().format(self.local_cseq), " NOTIFY"].concat(),
        );
        h.push("Contact", local_contact(&i.dialog.source));
        let package = self.view.event_package();
        h.push(
            "Event",
            match &i.dialog.event_id {
                Some(id) => [package, ";id=", id].concat(),
                None => package.to_owned(),
            },
        );
        h.push("Subscription-State", state.render());
        for (name, value) in self.view.extra_headers() {
            h.push(*name, *value);
        }
        h.push("Content-Type", content.content_type);
        // RFC 3261 §20.12: the body is deflated only for a SUBSCRIBE that accepted it.
        let body = if self.deflate && content.body.len() >= i.shared.settings.deflate_min_bytes {
            h.push("Content-Encoding", "deflate");
            Bytes::from(deflate(&content.body))
        } else {
            content.body
        };
        Request {
            method: Method::Notify,
            uri: i.dialog.remote_target.clone(),
            headers: h,
            body,
        }
    }

    /// RFC 3261 §12.2.1.1 / §8.1.2: the first Route if there is a route set, otherwise the
    /// remote target; over the SUBSCRIBE's connection while it is open (the transport falls
    /// back to the address when it is gone).
    fn next_hop(&self) -> Target {
        let i = &self.init;
        let uri = i
            .dialog
            .route_set
            .first()
            .map(|r| &r.uri)
            .unwrap_or(&i.dialog.remote_target);
        let sip = uri.as_sip();
        let transport = match sip.and_then(|u| u.param("transport")).flatten() {
            Some(t) if t.eq_ignore_ascii_case("tcp") => Transport::Tcp,
            Some(t) if t.eq_ignore_ascii_case("udp") => Transport::Udp,
            _ => i.dialog.source.transport,
        };
        // DEVIATION: no RFC 3263 DNS lookup; a next hop named by host name is reached at the
        // address the SUBSCRIBE came from (in practice the proxy in front of us).
        let addr = match sip.map(|u| (&u.host, u.port)) {
            Some((Host::Ip(ip), port)) => SocketAddr::new(*ip, port.unwrap_or(5060)),
            _ => i.dialog.source.peer,
        };
        let same_path = transport == i.dialog.source.transport;
        Target {
            transport,
            addr,
            connection: if same_path {
                i.dialog.source.connection
            } else {
                None
            },
            local: same_path.then_some(i.dialog.source.local),
        }
    }

    /// RFC 6665 §4.2.1.2 checks of an in-dialog SUBSCRIBE; nothing changes yet.
    fn check_refresh(&self, msg: &IncomingRequest) -> Result<Refresh, Reject> {
        let req = &msg.request;
        let cseq = req.cseq().map_err(|_| Reject::new(400))?;
        // RFC 3261 §12.2.2: a CSeq lower than the last one is out of order.
        if cseq.seq <= self.init.dialog.remote_cseq {
            return Err(Reject::with_reason(500, "CSeq Out Of Order"));
        }
        let (default, min, max) = self.init.shared.settings.expires;
        let requested = match req.expires() {
            Some(Ok(e)) => e,
            Some(Err(_)) => return Err(Reject::with_reason(400, "Malformed Expires")),
            None => default,
        };
        if requested != 0 && requested < min {
            return Err(Reject::new(423).header("Min-Expires", min.to_string()));
        }
        // RFC 6665 §4.1.2.4 / RFC 3261 §12.2.2: a target refresh.
        let target = req
            .headers
            .list("Contact")
            .next()
            .and_then(|c| NameAddr::parse(c, "Contact").ok())
            .map(|c| c.uri);
        Ok(Refresh {
            cseq: cseq.seq,
            granted: requested.min(max),
            target,
        })
    }

    /// The stored form of the subscription after `refresh` and the view's `update`.
    fn refreshed_change(&self, refresh: &Refresh, update: &V::Update) -> Change {
        if refresh.granted == 0 {
            return Change::SubscriptionRemoved(self.row_id());
        }
        let mut row = self.row(Some(update));
        row.remote_cseq = i64::from(refresh.cseq);
        row.expires_at = unix_now() + i64::from(refresh.granted);
        if let Some(t) = &refresh.target {
            row.remote_target = t.to_string();
        }
        Change::SubscriptionSaved(Box::new(row))
    }

    /// Applies a committed refresh and builds its 200.
    fn apply_refresh(
        &mut self,
        refresh: Refresh,
        update: V::Update,
        source: &Source,
        ctx: &mut Context<Self>,
    ) -> Reply {
        self.init.dialog.remote_cseq = self.init.dialog.remote_cseq.max(refresh.cseq);
        if let Some(t) = refresh.target {
            self.init.dialog.remote_target = t;
        }
        // RFC 6665 §4.2.1.2: a refresh is answered with full state.
        self.full_state_due = true;
        if refresh.granted == 0 {
            if let Some(h) = self.expiry_timer.take() {
                ctx.cancel_future(h);
            }
            if self.life.is_active() {
                self.life = Lifecycle::Terminating(EventReason::Timeout);
            }
            info!(
                "watcher {}: unsubscribed from {}",
                self.init.id, self.init.dialog.aor
            );
        } else {
            self.view
                .apply_update(update, self.init.id, ctx.address().recipient());
            self.expires_at = Instant::now() + Duration::from_secs(u64::from(refresh.granted));
            self.arm_expiry(ctx);
        }
        // The NOTIFY follows once the 200 is sent.
        self.confirmed = false;
        Reply {
            status: 200,
            to_tag: None,
            headers: self
                .response_headers(source, refresh.granted)
                .into_iter()
                .map(|(n, v)| (n.into(), v))
                .collect(),
            body: None,
            on_sent: Some(ctx.address().recipient()),
            dialog: None,
        }
    }
}

/// An in-dialog SUBSCRIBE that passed its checks.
#[derive(Debug)]
struct Refresh {
    cseq: u32,
    granted: u32,
    target: Option<Uri>,
}

impl<V: NotifyView> Actor for Watcher<V> {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        metrics()
            .subscriptions
            .get_or_create(&[("package", self.view.package()), ("kind", self.view.kind())])
            .inc();
        // The dialog table entry comes with the 200 (`Watcher::dialog_registration`).
        if self.life.is_active() {
            self.arm_expiry(ctx);
        }
    }

    fn stopping(&mut self, _ctx: &mut Self::Context) -> Running {
        metrics()
            .subscriptions
            .get_or_create(&[("package", self.view.package()), ("kind", self.view.kind())])
            .dec();
        // do_send: one message per ended subscription. An unsubscribe already removed the row
        // before its 200; this covers expiry and NOTIFY failures, where nothing waits for it.
        if self.init.dialog.expires != 0 {
            self.init
                .shared
                .store
                .do_send(Persist(vec![Change::SubscriptionRemoved(self.row_id())]));
        }
        self.init.shared.dispatcher.do_send(UnregisterDialog {
            id: self.dialog_id(),
            usage: self.usage(),
        });
        self.view.detach(self.init.id);
        debug!("watcher {}: ended", self.init.id);
        Running::Stop
    }
}

impl<V: NotifyView> Handler<PresenceChanged> for Watcher<V> {
    type Result = ();

    fn handle(&mut self, msg: PresenceChanged, ctx: &mut Self::Context) {
        self.view.changed(msg.0);
        self.pump(ctx);
    }
}

impl<V: NotifyView> Handler<ResponseSent> for Watcher<V> {
    type Result = ();

    fn handle(&mut self, _msg: ResponseSent, ctx: &mut Self::Context) {
        self.confirmed = true;
        self.pump(ctx);
    }
}

impl<V: NotifyView> Handler<IncomingRequest> for Watcher<V> {
    type Result = ResponseActFuture<Self, Result<Reply, Reject>>;

    fn handle(&mut self, msg: IncomingRequest, _ctx: &mut Self::Context) -> Self::Result {
        let refresh = match msg.request.method {
            Method::Subscribe if self.life != Lifecycle::FinalSent => self.check_refresh(&msg),
            Method::Subscribe => Err(Reject::new(481)),
            _ => Err(Reject::new(405).header("Allow", "SUBSCRIBE")),
        };
        let refresh = match refresh {
            Ok(r) => r,
            Err(e) => return Box::pin(fut::ready(Err(e))),
        };
        let update = self.view.check_update(&msg.request);
        let source = msg.source;
        let retry_after = self.init.shared.settings.retry_after;
        Box::pin(update.into_actor(self).then(move |update, act, _ctx| {
            let update = match update {
                Ok(u) => u,
                Err(e) => return futures_util::future::Either::Left(fut::ready(Err(e))),
            };
            // The 200 goes out only once the refreshed (or removed) dialog is committed.
            let persist = act
                .init
                .shared
                .store
                .send(Persist(vec![act.refreshed_change(&refresh, &update)]));
            futures_util::future::Either::Right(persist.into_actor(act).map(
                move |res, act, ctx| match res {
                    Ok(Ok(())) => Ok(act.apply_refresh(refresh, update, &source, ctx)),
                    _ => Err(Reject::new(503).header("Retry-After", retry_after.to_string())),
                },
            ))
        }))
    }
}

impl<V: NotifyView> Handler<ClientOutcome> for Watcher<V> {
    type Result = ();

    fn handle(&mut self, msg: ClientOutcome, ctx: &mut Self::Context) {
        if msg.tag != u64::from(self.local_cseq) {
            return;
        }
        self.in_flight = false;
        let id = self.init.id;
        let cause = match &msg.result {
            ClientResult::Response(r) if (200..300).contains(&r.status) => None,
            ClientResult::Response(r) if r.status == 481 => Some("481"),
            ClientResult::Response(_) => Some("status"),
            ClientResult::Timeout => Some("timeout"),
            ClientResult::TransportError => Some("transport"),
        };
        if let Some(cause) = cause {
            metrics()
                .notifies_failed
                .get_or_create(&[("package", self.view.package()), ("cause", cause)])
                .inc();
        }
        match msg.result {
            ClientResult::Response(r) if (200..300).contains(&r.status) => {
                if self.life == Lifecycle::FinalSent {
                    ctx.stop();
                } else {
                    self.pump(ctx);
                }
            }
            ClientResult::Response(r)
                if r.status == 408 && self.init.shared.settings.keep_on_408 =>
            {
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
