//! What a subscription notifies: the [`NotifyView`] a watcher asks when a NOTIFY is due and
//! what it carries, and [`PresentityView`], the view of a plain subscription (one presentity's
//! document, in the watcher's format).
//!
//! Owns: the contract between the watcher actor (the dialog, sending, expiry) and what it
//! carries (a presentity's document, or a resource list in `rls::ListView`). Must not: send
//! anything.

use std::future::Future;
use std::pin::Pin;
use std::time::Instant;

use actix::prelude::*;
use bytes::Bytes;

use super::document::SharedDocument;
use super::formats::PresenceFormat;
use super::presentity::{PresenceChanged, Presentity, RemoveWatcher, ResolveAgain};
use crate::sip::message::Request;
use crate::sip::Reject;
use crate::store::SubscriptionRow;

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
    /// When the state it reports changed; `None` when it reports none (full state owed).
    pub changed_at: Option<Instant>,
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
    /// The event package as served, lower case (a metrics label).
    fn package(&self) -> &'static str {
        self.event_package()
    }
    /// `plain` or `list` (a metrics label).
    fn kind(&self) -> &'static str {
        "plain"
    }
    /// Headers added to every NOTIFY and to the 200 of a refresh.
    fn extra_headers(&self) -> &'static [(&'static str, &'static str)] {
        &[]
    }
}

/// The latest document a view of one resource was sent, and whether a NOTIFY owes it.
#[derive(Default)]
pub struct Latest {
    document: Option<SharedDocument>,
    /// A document arrived since the last NOTIFY.
    dirty: bool,
}

impl Latest {
    /// A new document arrived.
    pub fn set(&mut self, doc: SharedDocument) {
        self.document = Some(doc);
        self.dirty = true;
    }

    /// A NOTIFY is due once a document is known: when full state is owed or it changed.
    pub fn due(&self, full_state: bool) -> Due {
        match &self.document {
            Some(_) if full_state || self.dirty => Due::Now,
            _ => Due::Nothing,
        }
    }

    /// The document for the NOTIFY about to go, which now owes nothing.
    pub fn take(&mut self) -> Option<&SharedDocument> {
        self.dirty = false;
        self.document.as_ref()
    }
}

/// The view of a plain subscription: one presentity's document, in the watcher's format.
pub struct PresentityView {
    /// The presentity; it holds this watcher's `Recipient` until `RemoveWatcher`.
    presentity: Addr<Presentity>,
    /// What the watcher's Accept chose.
    format: PresenceFormat,
    latest: Latest,
}

impl PresentityView {
    /// The view of `presentity` (the presence agent has sent it `AddWatcher`), written in `format`.
    pub fn new(presentity: Addr<Presentity>, format: PresenceFormat) -> Self {
        Self {
            presentity,
            format,
            latest: Latest::default(),
        }
    }
}

impl NotifyView for PresentityView {
    type Update = ();

    fn changed(&mut self, doc: SharedDocument) {
        self.latest.set(doc);
    }

    fn due(&self, full_state: bool, _now: Instant) -> Due {
        self.latest.due(full_state)
    }

    fn next(&mut self, _full_state: bool, _version: u32, _now: Instant) -> NotifyContent {
        let format = self.format;
        let doc = self.latest.take();
        NotifyContent {
            content_type: format.content_type().to_owned(),
            changed_at: doc.map(|d| d.changed_at),
            body: doc
                .map(|d| format.render(d.aor.as_str(), &d.body))
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
