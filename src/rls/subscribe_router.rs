//! `SubscribeRouter`: the entry point of initial SUBSCRIBEs, deciding between a list subscription
//! (RFC 4662) and a plain one.
//!
//! Owns: recognising lists — a request-contained list (RFC 5367) or a URI the server knows as
//! a list (`rls.list_query`) — the `eventlist` negotiation (421 without it), storing a new list
//! subscription before its 200, starting one `Watcher<ListView>` per list subscription, and
//! restoring stored list subscriptions at start-up. Lists are served for presence and for
//! every package anyone may subscribe to (a busy-lamp list is `Event: dialog`); everything
//! that is not a list goes unchanged to the `PresenceAgent` (presence) or the `EventAgent`
//! (other packages). Created by `app`; lives as long as the system.
//! Must not: send NOTIFYs (watchers do) or touch presentities or resources (the agents do).
//!
//! ```text
//!  SUBSCRIBE ─► recipient-list? ─yes─► eventlist? ─no─► 421
//!      │ no                      └─yes─► read list ─► store ─► Watcher<ListView> ─► 200
//!      └─► eventlist (or rls.lookup_without_eventlist)? ─no─► PresenceAgent / EventAgent
//!              └─yes─► list query finds a list? ─yes─► (same, server-known list)
//!                                            └─no──► PresenceAgent / EventAgent
//! ```

use std::collections::HashMap;
use std::sync::Arc;

use actix::prelude::*;
use log::{info, warn};

use super::list::{self, ListSource, Member};
use super::list_view::{ListSettings, ListView, ServerLookup};
use super::members::ListMembers;
use super::rlmi::RLMI_CONTENT_TYPE;
use crate::awaiting::{Awaiting, Deferred};
use crate::config::LinphoneCompat;
use crate::events::package::Subscribers;
use crate::events::{EventAgent, EventPackage};
use crate::presence::agent::{subscription_dialog_for, PresenceAgent, PresenceConfig};
use crate::presence::aor::Aor;
use crate::presence::directory::UserDirectory;
use crate::presence::document::PRESENCE_PACKAGE;
use crate::presence::subscription::SubscriptionDialog;
use crate::presence::watcher::{new_watcher_id, Watcher, WatcherInit, WatcherShared};
use crate::sip::dispatcher::{IncomingRequest, Reply};
use crate::sip::headers::{parse_token_list, NameAddr, Via};
use crate::sip::message::{HeaderAccess, Method, Request};
use crate::sip::{Dispatcher, Reject};
use crate::store::{Change, ListResolver, Persist, ResolveList, SubscriptionRow};

/// Stored list subscriptions, loaded at start-up (CSeq marks already moved up).
#[derive(Message, Debug)]
#[rtype(result = "()")]
pub struct RestoreListSubscriptions(pub Vec<SubscriptionRow>);

/// The subscribe router actor.
pub struct SubscribeRouter {
    presence: PresenceConfig,
    settings: Arc<ListSettings>,
    compat: LinphoneCompat,
    /// Plain subscriptions, and the presentities list members are watched at.
    agent: Addr<PresenceAgent>,
    /// Handed to watchers: NOTIFYs and the dialog table.
    dispatcher: Addr<Dispatcher>,
    /// The store's group committer.
    store: Recipient<Persist>,
    /// Runs `rls.list_query`; none when server-known lists are off.
    resolver: Option<Addr<ListResolver>>,
    /// What the list watchers share.
    watchers: Arc<WatcherShared>,
    /// Requests waiting for the presence agent, a list lookup or their commit.
    awaiting: Awaiting<Self>,
    /// Resolves a list's phone numbers in one batch; none without a users database.
    directory: Option<Addr<UserDirectory>>,
    /// The other packages' agent: their plain subscriptions, and their lists' resources.
    events: Option<Addr<EventAgent>>,
    /// The packages besides presence whose lists are served.
    list_packages: HashMap<&'static str, Arc<dyn EventPackage>>,
}

/// The subscribe router's answer to a request.
type Answer = Deferred<SubscribeRouter, Result<Reply, Reject>>;

/// A list subscription about to be created.
struct NewList {
    dialog: SubscriptionDialog,
    members_at: ListMembers,
    source: ListSource,
    members: Vec<Member>,
    linphone: bool,
    subscriber: String,
}

impl SubscribeRouter {
    /// A subscribe router in front of `agent`.
    pub fn new(
        presence: PresenceConfig,
        settings: ListSettings,
        compat: LinphoneCompat,
        agent: Addr<PresenceAgent>,
        dispatcher: Addr<Dispatcher>,
        store: Recipient<Persist>,
        resolver: Option<Addr<ListResolver>>,
    ) -> Self {
        let watchers = Arc::new(WatcherShared {
            settings: presence.watcher.clone(),
            dispatcher: dispatcher.clone(),
            store: store.clone(),
        });
        Self {
            presence,
            settings: Arc::new(settings),
            compat,
            agent,
            dispatcher,
            store,
            resolver,
            watchers,
            awaiting: Awaiting::default(),
            directory: None,
            events: None,
            list_packages: HashMap::new(),
        }
    }

    /// Subscriptions to `packages` go to `events`, and lists of those anyone may subscribe to
    /// are served.
    pub fn with_event_packages(
        mut self,
        events: Addr<EventAgent>,
        packages: &[Arc<dyn EventPackage>],
    ) -> Self {
        self.list_packages = packages
            .iter()
            .filter(|p| p.subscribers() == Subscribers::Anyone)
            .map(|p| (p.name(), p.clone()))
            .collect();
        self.events = Some(events);
        self
    }

    /// Where the members of a list of `package` are watched; `None` when its lists are not
    /// served.
    fn members_at(&self, package: &str) -> Option<ListMembers> {
        if package.eq_ignore_ascii_case(PRESENCE_PACKAGE) {
            return Some(ListMembers::Presence(self.agent.clone()));
        }
        let package = self
            .list_packages
            .values()
            .find(|p| p.name().eq_ignore_ascii_case(package))?;
        Some(ListMembers::Package {
            package: package.clone(),
            agent: self.events.clone()?,
        })
    }

    /// Lists resolve their phone numbers through `directory`.
    pub fn with_directory(mut self, directory: Option<Addr<UserDirectory>>) -> Self {
        self.directory = directory;
        self
    }

    /// Hands a request unchanged to the agent of its package.
    fn forward(&self, msg: IncomingRequest) -> Answer {
        let presence = match msg.request.event() {
            Some(Ok(e)) => e.is(PRESENCE_PACKAGE),
            _ => true,
        };
        let to: Recipient<IncomingRequest> = match (&self.events, presence) {
            (Some(events), false) => events.clone().recipient(),
            _ => self.agent.clone().recipient(),
        };
        let sent = to.send(msg);
        self.awaiting.then(sent, |answer, _, _| {
            answer.unwrap_or_else(|_| Err(Reject::new(500)))
        })
    }

    fn unavailable(&self) -> Reject {
        Reject::new(503).header("Retry-After", self.presence.watcher.retry_after.to_string())
    }

    /// The checks every list SUBSCRIBE passes, giving its dialog.
    fn list_dialog(
        &self,
        msg: &IncomingRequest,
        members_at: &ListMembers,
    ) -> Result<SubscriptionDialog, Reject> {
        // RFC 4662 §4.2 / §5.1: a list is only served to a subscriber that supports eventlist.
        if !supports_eventlist(&msg.request) {
            return Err(Reject::new(421).header("Require", "eventlist"));
        }
        subscription_dialog_for(
            msg,
            &self.presence,
            members_at.package(),
            &[
                "multipart/related",
                RLMI_CONTENT_TYPE,
                members_at.part_type(),
            ],
        )
    }

    fn linphone(&self, req: &Request) -> bool {
        match self.compat {
            LinphoneCompat::On => true,
            LinphoneCompat::Off => false,
            LinphoneCompat::Auto => looks_like_linphone(req),
        }
    }

    fn view(&self, new: &NewList) -> ListView {
        ListView::new(
            new.dialog.aor.to_string(),
            new.source,
            new.members.clone(),
            new.linphone,
            self.settings.clone(),
            new.members_at.clone(),
            self.lookup(new.source, &new.subscriber),
        )
        .with_directory(self.directory.clone())
    }

    fn lookup(&self, source: ListSource, subscriber: &str) -> Option<ServerLookup> {
        match source {
            ListSource::Server => self.resolver.clone().map(|resolver| ServerLookup {
                resolver,
                subscriber: subscriber.to_owned(),
            }),
            ListSource::Request => None,
        }
    }

    /// Stores the new list subscription, then starts it and answers 200.
    fn accept(&mut self, new: NewList) -> Answer {
        if new.dialog.expires == 0 {
            // A fetch: one NOTIFY, nothing stored.
            return Deferred::now(Ok(self.start(new, None)));
        }
        let mut row = new.dialog.initial_row();
        row.list_source = Some(new.source.as_str().to_owned());
        row.list_members = Some(list::to_text(&new.members));
        row.linphone_compat = new.linphone;
        let persist = self
            .store
            .send(Persist(vec![Change::SubscriptionCreated(Box::new(row))]));
        self.awaiting.then(persist, move |res, act, _| match res {
            Ok(Ok(())) => Ok(act.start(new, None)),
            _ => Err(act.unavailable()),
        })
    }

    /// Starts the watcher of a new (or recovered, with its stored CSeq mark) list
    /// subscription; returns the 200 for a new one.
    fn start(&mut self, new: NewList, recovered_mark: Option<i64>) -> Reply {
        let id = new_watcher_id();
        let mut view = self.view(&new);
        let source = new.dialog.source;
        let expires = new.dialog.expires;
        let local_tag = new.dialog.local_tag.clone();
        let aor = new.dialog.aor.clone();
        let members = new.members.len();
        let init = WatcherInit {
            id,
            dialog: new.dialog,
            shared: self.watchers.clone(),
        };
        let ctx = Context::<Watcher<ListView>>::new();
        view.attach(id, ctx.address().recipient());
        let watcher = match recovered_mark {
            Some(mark) => Watcher::recovered(init, view, mark),
            None => Watcher::new(init, view),
        };
        let dialog = watcher.dialog_registration(&ctx.address());
        let headers = watcher.response_headers(&source, expires);
        let addr = ctx.run(watcher);
        if recovered_mark.is_some() {
            if let Some(d) = dialog {
                self.dispatcher.do_send(d);
            }
            return Reply::default();
        }
        info!("list {aor}: watcher {id} subscribed to {members} resources for {expires} s");
        Reply {
            status: 200,
            to_tag: Some(local_tag),
            headers: headers.into_iter().map(|(n, v)| (n.into(), v)).collect(),
            body: None,
            on_sent: Some(addr.recipient()),
            dialog,
        }
    }

    fn subscribe(&mut self, msg: IncomingRequest, _ctx: &mut Context<Self>) -> Answer {
        let req = msg.request.clone();
        let subscriber = Aor::from_uri(&msg.from.uri)
            .map(|a| a.to_string())
            .unwrap_or_default();
        let package = match req.event() {
            Some(Ok(e)) => e.package.clone(),
            _ => return self.forward(msg),
        };
        let Some(members_at) = self.members_at(&package) else {
            return self.forward(msg);
        };
        if list::is_request_list(&req) {
            let new = self.list_dialog(&msg, &members_at).and_then(|dialog| {
                let members = list::request_list(&req, &self.settings.limits)?
                    .ok_or_else(|| Reject::with_reason(400, "Missing Resource List"))?;
                Ok(NewList {
                    dialog,
                    members_at,
                    source: ListSource::Request,
                    members,
                    linphone: self.linphone(&req),
                    subscriber,
                })
            });
            return match new {
                Ok(new) => self.accept(new),
                Err(e) => Deferred::now(Err(e)),
            };
        }
        // Without eventlist the SUBSCRIBE cannot take a list: unless told to, do not spend a
        // query finding out that its URI is one (the OpenSIPS and Kamailio rls modules do the
        // same).
        if !self.settings.lookup_without_eventlist && !supports_eventlist(&req) {
            return self.forward(msg);
        }
        let (Some(resolver), Some(list_uri)) = (self.resolver.clone(), Aor::from_uri(&req.uri))
        else {
            return self.forward(msg);
        };
        let lookup = resolver.send(ResolveList {
            list_uri: list_uri.to_string(),
            subscriber: subscriber.clone(),
        });
        self.awaiting.and_then(lookup, move |rows, act, _| {
            let rows = match rows {
                Ok(Ok(rows)) => rows,
                Ok(Err(e)) => {
                    warn!("list lookup of {list_uri} failed: {e}");
                    return Deferred::now(Err(act.unavailable()));
                }
                Err(_) => return Deferred::now(Err(act.unavailable())),
            };
            if rows.is_empty() {
                return act.forward(msg);
            }
            match act.list_dialog(&msg, &members_at) {
                Ok(dialog) => act.accept(NewList {
                    dialog,
                    members_at,
                    source: ListSource::Server,
                    members: list::server_list(rows),
                    linphone: act.linphone(&msg.request),
                    subscriber,
                }),
                Err(e) => Deferred::now(Err(e)),
            }
        })
    }
}

/// Whether the SUBSCRIBE's Supported lists `eventlist`.
fn supports_eventlist(req: &Request) -> bool {
    req.headers
        .list("Supported")
        .filter_map(|v| parse_token_list(v, "Supported").ok())
        .flatten()
        .any(|t| t.eq_ignore_ascii_case("eventlist"))
}

/// liblinphone (belle-sip) says `User-Agent: Unknown` unless the application sets one, so
/// besides the User-Agent the subscriber's own Via is looked at: belle-sip writes its branches
/// `z9hG4bK.` with a dot, a form no other common stack uses. The subscriber's Via is the
/// bottom one (proxies add theirs on top).
pub fn looks_like_linphone(req: &Request) -> bool {
    let ua = req
        .headers
        .get("User-Agent")
        .unwrap_or("")
        .to_ascii_lowercase();
    if ua.contains("linphone") || ua.contains("belle-sip") {
        return true;
    }
    req.headers
        .list("Via")
        .last()
        .and_then(|v| Via::parse(v).ok())
        .and_then(|v| v.branch().map(|b| b.starts_with("z9hG4bK.")))
        .unwrap_or(false)
}

impl Actor for SubscribeRouter {
    type Context = Context<Self>;
}

impl Handler<IncomingRequest> for SubscribeRouter {
    type Result = Answer;

    fn handle(&mut self, msg: IncomingRequest, ctx: &mut Self::Context) -> Self::Result {
        match msg.request.method {
            Method::Subscribe => self.subscribe(msg, ctx),
            _ => self.forward(msg),
        }
    }
}

impl Handler<RestoreListSubscriptions> for SubscribeRouter {
    type Result = ();

    fn handle(&mut self, msg: RestoreListSubscriptions, _ctx: &mut Self::Context) {
        let count = msg.0.len();
        for row in msg.0 {
            let Some(members_at) = self.members_at(&row.event) else {
                warn!(
                    "stored list subscription {} is for package {}, not served: dropped",
                    row.id, row.event
                );
                continue;
            };
            let source = row.list_source.as_deref().and_then(ListSource::parse);
            let (Some(source), Ok(dialog)) = (source, SubscriptionDialog::from_row(&row)) else {
                warn!("stored list subscription {} is invalid, dropped", row.id);
                continue;
            };
            let new = NewList {
                subscriber: NameAddr::parse(&dialog.remote_uri, "stored")
                    .ok()
                    .and_then(|n| Aor::from_uri(&n.uri))
                    .map(|a| a.to_string())
                    .unwrap_or_default(),
                dialog,
                members_at,
                source,
                members: list::from_text(row.list_members.as_deref().unwrap_or("")),
                linphone: row.linphone_compat,
            };
            let _ = self.start(new, Some(row.notify_cseq_mark));
        }
        if count > 0 {
            info!("{count} list subscriptions restored");
        }
    }
}
