//! `Watcher<V>`: one actor per presence subscription (dialog plus Event `id`).
//!
//! Owns: the subscription's dialog (Call-ID, tags, route set, remote target, local and remote
//! CSeq), its expiry and state, and its NOTIFYs: built here, sent as client transactions
//! through the dispatcher, one at a time, deflated when the SUBSCRIBE allowed it. What a NOTIFY
//! carries comes from its [`NotifyView`]: one presentity's document ([`PresentityView`], a
//! plain subscription) or a resource list (`rls::ListView`, a list subscription). Changes that
//! arrive while a NOTIFY is outstanding are coalesced: the next NOTIFY carries the latest state.
//! Created by the `Registry` (plain) or `rls::ListServer` (lists) for an accepted SUBSCRIBE;
//! receives in-dialog SUBSCRIBEs through the dispatcher's dialog table. Stops after its final
//! NOTIFY (expiry, unsubscribe), or when a NOTIFY gets 481, times out, or fails; unregisters
//! from the dispatcher and detaches its view from the presentities in `stopping()`.
//!
//! ```text
//!     200 sent + view due ──► NOTIFY(active) ──► [in flight] ──2xx──► idle
//!   change while in flight: remember ─┘        481 / Timer F / error ──► stop
//!   view due later (throttled list) ──► timer ──► NOTIFY
//!   refresh ──► 200, NOTIFY (full state)   unsubscribe or expiry ──► NOTIFY(terminated) ──► stop
//! ```

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::prelude::*;
use bytes::Bytes;
use log::{debug, info};

use super::aor::Aor;
use super::document::SharedDocument;
use super::formats::PresenceFormat;
use super::presentity::{PresenceChanged, Presentity, RemoveWatcher, ResolveAgain};
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

/// When a view has something to notify.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Due {
    /// Nothing to send.
    Nothing,
    /// Send now.
    Now,
    /// Send at this instant (throttling).
    At(Instant),
}

/// What one NOTIFY carries.
#[derive(Debug, Clone)]
pub struct NotifyContent {
    /// Its Content-Type.
    pub content_type: String,
    /// The body, before any content coding.
    pub body: Bytes,
}

/// The future of a view's part of an in-dialog SUBSCRIBE.
pub type UpdateFuture<U> = Pin<Box<dyn Future<Output = Result<U, Reject>>>>;

/// What a subscription notifies: a presentity's document or a resource list. The watcher owns
/// the dialog and sends; the view decides when and what.
pub trait NotifyView: Unpin + Sized + 'static {
    /// What an in-dialog SUBSCRIBE changes in the view beyond the dialog (a list's members).
    type Update: Unpin + 'static;

    /// A watched presentity's document changed.
    fn changed(&mut self, doc: SharedDocument);
    /// Whether a NOTIFY is due; `full_state` when the watcher owes one (first NOTIFY, refresh,
    /// final NOTIFY).
    fn due(&self, full_state: bool, now: Instant) -> Due;
    /// The content of the NOTIFY about to go, whose RLMI `version` (if any) is given.
    fn next(&mut self, full_state: bool, version: u32, now: Instant) -> NotifyContent;
    /// Checks what an in-dialog SUBSCRIBE asks of the view (may look things up).
    fn check_update(&self, request: &Request) -> UpdateFuture<Self::Update>;
    /// Writes the view's part of the stored row, as it will be after `update`.
    fn fill_row(&self, update: Option<&Self::Update>, row: &mut SubscriptionRow);
    /// Applies a committed update; `watcher` is this subscription's inbox.
    fn apply_update(
        &mut self,
        update: Self::Update,
        watcher_id: u64,
        watcher: Recipient<PresenceChanged>,
    );
    /// The subscription ends: stop receiving documents.
    fn detach(&mut self, watcher_id: u64);
    /// The value of the NOTIFY's Event header (without `id`).
    fn event_package(&self) -> &'static str {
        "presence"
    }
    /// Headers added to every NOTIFY and to the 200 of a refresh.
    fn extra_headers(&self) -> &'static [(&'static str, &'static str)] {
        &[]
    }
}

/// The view of a plain subscription: one presentity's document, in the watcher's format.
pub struct PresentityView {
    /// The presentity; it holds this watcher's `Recipient` until `RemoveWatcher`.
    presentity: Addr<Presentity>,
    /// What the watcher's Accept chose.
    format: PresenceFormat,
    document: Option<SharedDocument>,
    /// A document arrived since the last NOTIFY.
    dirty: bool,
}

impl PresentityView {
    /// The view of `presentity` (the registry has sent it `AddWatcher`), written in `format`.
    pub fn new(presentity: Addr<Presentity>, format: PresenceFormat) -> Self {
        Self {
            presentity,
            format,
            document: None,
            dirty: false,
        }
    }
}

impl NotifyView for PresentityView {
    type Update = ();

    fn changed(&mut self, doc: SharedDocument) {
        self.document = Some(doc);
        self.dirty = true;
    }

    fn due(&self, full_state: bool, _now: Instant) -> Due {
        match &self.document {
            Some(_) if full_state || self.dirty => Due::Now,
            _ => Due::Nothing,
        }
    }

    fn next(&mut self, _full_state: bool, _version: u32, _now: Instant) -> NotifyContent {
        self.dirty = false;
        NotifyContent {
            content_type: self.format.content_type().to_owned(),
            body: self
                .document
                .as_ref()
                .map(|d| self.format.render(d.aor.as_str(), &d.body))
                .unwrap_or_default(),
        }
    }

    fn check_update(&self, _request: &Request) -> UpdateFuture<()> {
        Box::pin(std::future::ready(Ok(())))
    }

    fn fill_row(&self, _update: Option<&()>, _row: &mut SubscriptionRow) {}

    fn apply_update(&mut self, _: (), _: u64, _: Recipient<PresenceChanged>) {
        // A refresh asks the users database again (a number's owner, a user's existence).
        // do_send: one per refresh.
        self.presentity.do_send(ResolveAgain { fresh: true });
    }

    fn detach(&mut self, watcher_id: u64) {
        // do_send: one message per ended subscription.
        self.presentity.do_send(RemoveWatcher { id: watcher_id });
    }
}

/// The persistable state of a subscription dialog: everything a watcher needs that is not
/// an actor of this process.
#[derive(Debug, Clone)]
pub struct SubscriptionDialog {
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
    /// Our URI (the SUBSCRIBE's To without its parameters), as it goes into a NOTIFY's From:
    /// kept rendered, since every NOTIFY writes it and nothing reads inside it.
    pub local_uri: String,
    /// The subscriber's URI (the SUBSCRIBE's From without its parameters), rendered.
    pub remote_uri: String,
    /// Where NOTIFYs go (the SUBSCRIBE's Contact).
    pub remote_target: Uri,
    /// Record-Route of the SUBSCRIBE, in order.
    pub route_set: Vec<NameAddr>,
    /// CSeq of the last SUBSCRIBE.
    pub remote_cseq: u32,
    /// Granted expiry in seconds; 0 for a fetch.
    pub expires: u32,
    /// Where the SUBSCRIBE came from (connection reuse).
    pub source: Source,
    /// The SUBSCRIBE's Accept header, if any.
    pub accept: Option<String>,
    /// The SUBSCRIBE's Accept-Encoding header, if any.
    pub accept_encoding: Option<String>,
}

/// Everything a watcher starts with.
pub struct WatcherInit {
    /// Unique id within the registry.
    pub id: u64,
    /// The dialog.
    pub dialog: SubscriptionDialog,
    /// What it shares with the other watchers of its owner.
    pub shared: Arc<WatcherShared>,
}

/// What every watcher started by one owner (the registry, the list server) shares: one
/// allocation for all of them, where each copy of an actix address costs two.
pub struct WatcherShared {
    /// Settings.
    pub settings: WatcherSettings,
    /// The dispatcher: NOTIFYs and the dialog table.
    pub dispatcher: Addr<Dispatcher>,
    /// The store: the dialog is saved before each 2xx.
    pub store: Recipient<Persist>,
}

/// The `Contact` the server puts in its responses and NOTIFYs for a request from `source`.
pub fn local_contact(source: &Source) -> String {
    // Every NOTIFY carries it, and a server has only a few local addresses: each is rendered
    // once per thread.
    thread_local! {
        static RENDERED: std::cell::RefCell<Vec<((Transport, SocketAddr), String)>> =
            const { std::cell::RefCell::new(Vec::new()) };
    }
    let key = (source.transport, source.local);
    RENDERED.with(|rendered| {
        let mut rendered = rendered.borrow_mut();
        if let Some((_, contact)) = rendered.iter().find(|(k, _)| *k == key) {
            return contact.clone();
        }
        let addr = match source.local {
            SocketAddr::V6(a) => format!("[{}]:{}", a.ip(), a.port()),
            a => a.to_string(),
        };
        let contact = match source.transport {
            Transport::Tcp => format!("<sip:{addr};transport=tcp>"),
            Transport::Udp => format!("<sip:{addr}>"),
        };
        // Bounded: addresses beyond the first few are rendered each time.
        if rendered.len() < 16 {
            rendered.push((key, contact.clone()));
        }
        contact
    })
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
    /// Set once the subscription is ending: the final NOTIFY carries this reason.
    terminating: Option<EventReason>,
    final_sent: bool,
    /// The SUBSCRIBE's Accept-Encoding admits deflate.
    deflate: bool,
    /// Committed NOTIFY CSeq high-water mark: every CSeq sent is below it, and the store knows.
    cseq_mark: u32,
    /// A higher mark is being committed.
    mark_pending: bool,
}

/// Start raising the NOTIFY CSeq mark when the next CSeq comes this close to it, so that
/// NOTIFYs never wait for the store in practice.
const MARK_LOW_WATER: u32 = 500;

/// The id of a subscription's stored row.
pub fn subscription_id(dialog: &DialogId, usage: &str) -> String {
    [
        dialog.call_id.as_str(),
        ";",
        &dialog.local_tag,
        ";",
        &dialog.remote_tag,
        ";",
        usage,
    ]
    .concat()
}

/// True when `v` can go into a header value as it is: not empty, no ASCII control character
/// (a CR or LF would end the header line, a NUL cut it).
fn header_safe(v: &str) -> bool {
    !v.is_empty() && !v.bytes().any(|b| b.is_ascii_control())
}

/// A stored local or remote URI, as `to_row` wrote it: a rendered `NameAddr` without
/// parameters (`<uri>`, maybe after a quoted display name). It goes back out as written, so it
/// is checked for that shape and kept as text; parsing it again cost two URI parses per
/// subscription at every restart.
fn stored_name_addr(v: &str, what: &'static str) -> Result<String, RestoreError> {
    let uri = v
        .strip_suffix('>')
        .and_then(|rest| rest.rsplit_once('<'))
        .map(|(_, uri)| uri);
    let shaped = uri.is_some_and(|u| u.contains(':') && !u.contains([' ', '\t']));
    if shaped && header_safe(v) {
        Ok(v.to_owned())
    } else {
        Err(RestoreError::Invalid(what))
    }
}

/// Why a stored subscription could not be restored.
#[derive(Debug, thiserror::Error)]
pub enum RestoreError {
    /// A stored URI, name-addr or address no longer parses.
    #[error("stored {0} is invalid")]
    Invalid(&'static str),
}

impl SubscriptionDialog {
    /// The dialog of a stored row.
    pub fn from_row(row: &SubscriptionRow) -> Result<Self, RestoreError> {
        let name_addr =
            |v: &str, what| NameAddr::parse(v, "stored").map_err(|_| RestoreError::Invalid(what));
        let route_set = row
            .route_set
            .lines()
            .filter(|l| !l.is_empty())
            .map(|l| name_addr(l, "route"))
            .collect::<Result<Vec<_>, _>>()?;
        let transport = match row.transport.as_str() {
            "TCP" => Transport::Tcp,
            "UDP" => Transport::Udp,
            _ => return Err(RestoreError::Invalid("transport")),
        };
        let addr = |v: &str, what| {
            v.parse::<SocketAddr>()
                .map_err(|_| RestoreError::Invalid(what))
        };
        // What goes back out in a header as stored must not be able to break a header line.
        let text = |v: &str, what| {
            header_safe(v)
                .then(|| v.to_owned())
                .ok_or(RestoreError::Invalid(what))
        };
        Ok(SubscriptionDialog {
            aor: Aor::parse(&row.aor).ok_or(RestoreError::Invalid("AOR"))?,
            event_id: row
                .event_id
                .as_deref()
                .map(|id| text(id, "event id"))
                .transpose()?,
            call_id: text(&row.call_id, "Call-ID")?,
            local_tag: text(&row.local_tag, "local tag")?,
            remote_tag: text(&row.remote_tag, "remote tag")?,
            local_uri: stored_name_addr(&row.local_uri, "local URI")?,
            remote_uri: stored_name_addr(&row.remote_uri, "remote URI")?,
            remote_target: Uri::parse(&row.remote_target)
                .map_err(|_| RestoreError::Invalid("remote target"))?,
            route_set,
            remote_cseq: u32::try_from(row.remote_cseq).unwrap_or(u32::MAX),
            expires: u32::try_from((row.expires_at - unix_now()).max(1)).unwrap_or(u32::MAX),
            source: Source {
                transport,
                local: addr(&row.local_addr, "local address")?,
                peer: addr(&row.peer_addr, "peer address")?,
                // The SUBSCRIBE's connection did not survive the restart.
                connection: None,
            },
            accept: row.accept.clone(),
            accept_encoding: row.accept_encoding.clone(),
        })
    }

    /// The row for this dialog with the given expiry (Unix seconds) and CSeq mark.
    pub fn to_row(&self, row_id: &str, expires_at: i64, cseq_mark: u32) -> SubscriptionRow {
        SubscriptionRow {
            id: row_id.to_owned(),
            aor: self.aor.to_string(),
            call_id: self.call_id.clone(),
            local_tag: self.local_tag.clone(),
            remote_tag: self.remote_tag.clone(),
            event_id: self.event_id.clone(),
            accept: self.accept.clone(),
            local_uri: self.local_uri.clone(),
            remote_uri: self.remote_uri.clone(),
            remote_target: self.remote_target.to_string(),
            route_set: self
                .route_set
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join("\n"),
            remote_cseq: i64::from(self.remote_cseq),
            notify_cseq_mark: i64::from(cseq_mark),
            state: "active".into(),
            // RLMI versions are NOTIFY CSeqs minus one, so they too stay below the mark.
            document_version: i64::from(cseq_mark) - 1,
            expires_at,
            transport: self.source.transport.as_str().into(),
            local_addr: self.source.local.to_string(),
            peer_addr: self.source.peer.to_string(),
            accept_encoding: self.accept_encoding.clone(),
            list_source: None,
            list_members: None,
            linphone_compat: false,
            mark_epoch: 0,
        }
    }

    /// The row of a new subscription (before its watcher exists).
    pub fn initial_row(&self) -> SubscriptionRow {
        let usage = usage_key("presence", self.event_id.as_deref());
        let dialog = DialogId {
            call_id: self.call_id.clone(),
            local_tag: self.local_tag.clone(),
            remote_tag: self.remote_tag.clone(),
        };
        self.to_row(
            &subscription_id(&dialog, &usage),
            unix_now() + i64::from(self.expires),
            CSEQ_MARK_STEP as u32,
        )
    }
}

impl<V: NotifyView> Watcher<V> {
    /// A watcher for an accepted SUBSCRIBE.
    pub fn new(init: WatcherInit, view: V) -> Self {
        let terminating = (init.dialog.expires == 0).then_some(EventReason::Timeout);
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
            terminating,
            final_sent: false,
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
        usage_key("presence", self.init.dialog.event_id.as_deref())
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
        self.terminating.is_none().then(|| RegisterDialog {
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
        if self.terminating.is_none() {
            self.terminating = Some(reason);
        }
        self.full_state_due = true;
        self.pump(ctx);
    }

    /// Sends the next NOTIFY if one is due and none is in flight.
    fn pump(&mut self, ctx: &mut Context<Self>) {
        if !self.confirmed || self.in_flight || self.final_sent {
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
            self.terminating.get_or_insert(EventReason::Timeout);
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
        // The dialog table entry comes with the 200 (`Watcher::dialog_registration`).
        if self.terminating.is_none() {
            self.arm_expiry(ctx);
        }
    }

    fn stopping(&mut self, _ctx: &mut Self::Context) -> Running {
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
            Method::Subscribe if !self.final_sent => self.check_refresh(&msg),
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
        match msg.result {
            ClientResult::Response(r) if (200..300).contains(&r.status) => {
                if self.final_sent {
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

#[cfg(test)]
mod tests {
    use super::*;

    fn dialog() -> SubscriptionDialog {
        SubscriptionDialog {
            aor: Aor::parse("sip:alice@example.org").unwrap(),
            event_id: Some("7".into()),
            call_id: "c1@10.0.0.2".into(),
            local_tag: "l1".into(),
            remote_tag: "r1".into(),
            local_uri: "<sip:alice@example.org>".into(),
            remote_uri: "\"Bob \\\"B\\\" <x>\" <sip:bob@example.org;user=phone>".into(),
            remote_target: Uri::parse("sip:bob@10.0.0.2:5070;transport=tcp").unwrap(),
            route_set: vec![NameAddr::parse("<sip:proxy.example.org;lr>", "Route").unwrap()],
            remote_cseq: 3,
            expires: 3600,
            source: Source {
                transport: Transport::Tcp,
                local: "10.0.0.1:5060".parse().unwrap(),
                peer: "10.0.0.2:40000".parse().unwrap(),
                connection: None,
            },
            accept: None,
            accept_encoding: None,
        }
    }

    #[test]
    fn a_stored_dialog_reads_back_as_written() {
        let d = dialog();
        let row = d.to_row("id", unix_now() + 600, 100);
        let back = SubscriptionDialog::from_row(&row).unwrap();
        assert_eq!(back.local_uri, d.local_uri);
        assert_eq!(back.remote_uri, d.remote_uri);
        assert_eq!(back.call_id, d.call_id);
        assert_eq!(
            (back.local_tag, back.remote_tag),
            (d.local_tag, d.remote_tag)
        );
        assert_eq!(back.event_id, d.event_id);
        assert_eq!(back.remote_target, d.remote_target);
        assert_eq!(back.route_set, d.route_set);
        assert_eq!(back.aor, d.aor);
    }

    #[test]
    fn stored_text_that_could_break_a_header_is_refused() {
        let good = dialog().to_row("id", unix_now() + 600, 100);
        type Spoil = fn(&mut SubscriptionRow);
        let cases: [(&str, Spoil); 9] = [
            ("CRLF in a URI", |r| {
                r.local_uri = "<sip:a@x>\r\nX: y".into()
            }),
            ("no angle brackets", |r| {
                r.remote_uri = "sip:bob@example.org".into()
            }),
            ("no scheme", |r| r.remote_uri = "<bob>".into()),
            ("empty URI", |r| r.local_uri = "<>".into()),
            ("space in the URI", |r| r.local_uri = "<sip:a @x>".into()),
            ("LF in the Call-ID", |r| r.call_id = "c\nX: y".into()),
            ("empty tag", |r| r.remote_tag = String::new()),
            ("NUL in a tag", |r| r.local_tag = "a\0".into()),
            ("CR in the event id", |r| r.event_id = Some("1\r".into())),
        ];
        for (what, spoil) in cases {
            let mut row = good.clone();
            spoil(&mut row);
            assert!(SubscriptionDialog::from_row(&row).is_err(), "{what}");
        }
    }
}
