//! `Dispatcher`: the one actor every SIP message passes through.
//!
//! Owns: the pipeline for requests — server-transaction match → validation (RFC 3261 §8.1.1,
//! §8.2) → dialog match → route by method to the handlers registered at start-up → fallback —
//! and the client transactions of requests the server sends (Timer E retransmission on UDP,
//! Timer F timeout, final response delivered to the owner). It is the only place where a
//! rejection becomes a response. Created by `app` before the transports; lives as long as the
//! system. Must not: know what a handler does with a request (presence, lists, the DB).
//!
//! Request pipeline:
//! ```text
//!  Inbound ─► mandatory headers ─400─►
//!     │ ok
//!     ├─► server transaction: retransmission ─► absorb / resend final response
//!     ├─► Max-Forwards 0 ─483─►   method not served ─405─►   foreign domain ─404─►
//!     ├─► unknown Require ─420─►  CANCEL ─200/481─►         OPTIONS ─200─►
//!     ├─► To-tag: dialog table ─► dialog owner, or 481
//!     └─► handler for the method ─► Reply | Reject ─► response (stored for retransmissions)
//! ```

use crate::metrics::{metrics, status_class};
use std::borrow::Cow;
use std::collections::{BTreeSet, HashMap};
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::Poll;
use std::time::{Duration, Instant};

use actix::prelude::*;
use bytes::Bytes;
use futures_util::stream::{FuturesUnordered, StreamExt};
use log::{debug, info, warn};

use super::client_transactions::{ClientTransactions, Ending, Finished, Timers};
use super::dialog::DialogId;
use super::headers::{NameAddr, Via};
use super::message::{
    parse, HeaderAccess, Headers, Message as SipMessage, Method, Request, Response,
};
use super::reject::Reject;
use super::transaction::{client_key_of, push_branch, ServerKey, ServerMatch, ServerTransactions};
use super::transport::{
    Inbound, InboundProblem, InboundRejected, Outbound, SendFailed, Source, Target, Transports,
};
use super::validation::{self, Mandatory};

/// How often completed server transactions are swept.
const SWEEP_INTERVAL: Duration = Duration::from_secs(1);

/// A request handed to a handler. The handler answers with a `Reply` or a `Reject`.
#[derive(Message, Debug)]
#[rtype(result = "Result<Reply, Reject>")]
pub struct IncomingRequest {
    /// The request, with `received`/`rport` recorded in its top Via (RFC 3581).
    pub request: Arc<Request>,
    /// Where it came from.
    pub source: Source,
    /// The dialog it belongs to, when it was routed by the dialog table.
    pub dialog: Option<DialogId>,
    /// Its From, as the dispatcher parsed and checked it (every request's is).
    pub from: NameAddr,
    /// Its To, likewise.
    pub to: NameAddr,
    /// When the transport received it.
    pub received_at: Instant,
}

/// Tells a handler that its reply has been handed to the transport (so that, e.g., a NOTIFY
/// follows the 200 to its SUBSCRIBE).
#[derive(Message, Debug, Clone, Copy)]
#[rtype(result = "()")]
pub struct ResponseSent {
    /// The status that was sent.
    pub status: u16,
}

/// A successful answer from a handler.
#[derive(Debug, Default)]
pub struct Reply {
    /// Status, 200–299.
    pub status: u16,
    /// To-tag to add when the request had none (dialog-creating requests).
    pub to_tag: Option<String>,
    /// Extra headers.
    pub headers: Vec<(Cow<'static, str>, String)>,
    /// Body and its Content-Type.
    pub body: Option<(String, Bytes)>,
    /// Told once the response is on its way.
    pub on_sent: Option<Recipient<ResponseSent>>,
    /// A dialog usage to enter in the dialog table before the response goes out, so that the
    /// peer's next in-dialog request cannot overtake the registration.
    pub dialog: Option<RegisterDialog>,
}

impl Reply {
    /// A bare 200 OK.
    pub fn ok() -> Self {
        Self {
            status: 200,
            ..Self::default()
        }
    }

    /// Adds a header.
    pub fn header(mut self, name: impl Into<Cow<'static, str>>, value: impl Into<String>) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }
}

/// Registers a handler for a method, with what it contributes to OPTIONS and Require checks.
#[derive(Message)]
#[rtype(result = "()")]
pub struct RegisterRoute {
    /// Method handled.
    pub method: Method,
    /// The handler.
    pub handler: Recipient<IncomingRequest>,
    /// Event packages served (Allow-Events).
    pub events: Vec<String>,
    /// Body types accepted (Accept).
    pub accept: Vec<String>,
    /// Option tags supported (Supported; Require checks).
    pub option_tags: Vec<String>,
}

/// Registers the owner of a dialog usage (RFC 6665 §4.5.2: dialog plus Event package and id).
/// Usually carried in a `Reply`; also accepted as a message.
#[derive(Message, Debug)]
#[rtype(result = "()")]
pub struct RegisterDialog {
    /// The dialog.
    pub id: DialogId,
    /// The usage key, see [`usage_key`].
    pub usage: String,
    /// Who receives in-dialog requests for it.
    pub handler: Recipient<IncomingRequest>,
}

/// Removes a dialog usage.
#[derive(Message)]
#[rtype(result = "()")]
pub struct UnregisterDialog {
    /// The dialog.
    pub id: DialogId,
    /// The usage key.
    pub usage: String,
}

/// The dialog-usage key of an Event package and id: `presence` or `presence;id=7`.
pub fn usage_key(package: &str, id: Option<&str>) -> String {
    match id {
        Some(id) => format!("{};id={id}", package.to_ascii_lowercase()),
        None => package.to_ascii_lowercase(),
    }
}

/// Sends a request as a client transaction. The dispatcher adds the Via; the owner is told
/// the outcome, tagged with `tag`.
#[derive(Message)]
#[rtype(result = "()")]
pub struct SendRequest {
    /// The request (Via is added here).
    pub request: Request,
    /// Where to send it.
    pub target: Target,
    /// Who is told the outcome.
    pub owner: Recipient<ClientOutcome>,
    /// The owner's correlation tag.
    pub tag: u64,
}

/// What became of a client transaction.
#[derive(Debug, Clone)]
pub enum ClientResult {
    /// A final response arrived.
    Response(Arc<Response>),
    /// Timer F fired: no final response within 64×T1.
    Timeout,
    /// The transport could not send it.
    TransportError,
}

/// Sent to a `SendRequest` owner.
#[derive(Message, Debug, Clone)]
#[rtype(result = "()")]
pub struct ClientOutcome {
    /// The owner's tag.
    pub tag: u64,
    /// The result.
    pub result: ClientResult,
}

/// Settings from `[sip]` the dispatcher needs.
#[derive(Debug, Clone)]
pub struct DispatcherSettings {
    /// Served domains; empty serves all.
    pub domains: Vec<String>,
    /// Addresses the server listens on (requests to these are addressed to the server itself).
    pub local_addrs: Vec<SocketAddr>,
    /// T1.
    pub t1: Duration,
    /// T2.
    pub t2: Duration,
    /// Server header value.
    pub server_name: String,
}

/// A handler of a method, for the event packages it serves (none: every request of the method).
struct Route {
    handler: Recipient<IncomingRequest>,
    events: Vec<String>,
}

/// The dispatcher actor.
pub struct Dispatcher {
    settings: DispatcherSettings,
    transports: Transports,
    /// This actor, as the transports tell it of a request they could not send: made once
    /// in `started`, shared by every client transaction.
    send_failed_to: Option<Arc<Recipient<SendFailed>>>,
    /// Handlers by method; several for SUBSCRIBE and PUBLISH, one per group of event packages.
    routes: HashMap<Method, Vec<Route>>,
    events: BTreeSet<String>,
    accept: BTreeSet<String>,
    option_tags: BTreeSet<String>,
    dialogs: HashMap<(DialogId, String), Recipient<IncomingRequest>>,
    /// Requests that arrived while stored dialogs were still being restored, answered once
    /// `Ready` comes (so a refresh of a recovered dialog never meets a missing dialog);
    /// `None` once ready.
    held: Option<Vec<(Request, Source, Instant)>>,
    /// Each local address as a Via sent-by, rendered once.
    sent_by: Vec<(SocketAddr, String)>,
    server_tx: ServerTransactions,
    /// The requests this server sent (NOTIFYs), each owner told its outcome.
    client: ClientTransactions<Recipient<ClientOutcome>>,
    /// Requests handed to their handlers, each resolving to the handler's answer. One set
    /// polled by one context item (`Answers`), which polls only the requests whose answer
    /// moved: a context item per request made every wake-up of this actor poll every request
    /// still waiting (for a group commit, say), so each message cost more the more were in
    /// flight.
    answers: FuturesUnordered<PendingAnswer>,
}

/// A handler's answer to a request, with what sending it needs.
struct Answer {
    request: Arc<Request>,
    key: ServerKey,
    target: Target,
    source: Source,
    in_dialog: bool,
    result: Result<Result<Reply, Reject>, MailboxError>,
}

type PendingAnswer = Pin<Box<dyn Future<Output = Answer>>>;

/// The context item that sends handlers' answers as they come: lives as long as the actor.
struct Answers;

impl ActorFuture<Dispatcher> for Answers {
    type Output = ();

    fn poll(
        self: Pin<&mut Self>,
        act: &mut Dispatcher,
        _ctx: &mut Context<Dispatcher>,
        task: &mut std::task::Context<'_>,
    ) -> Poll<()> {
        // Empty, the set answers `None`; a request handed over later is polled when the
        // context polls this item again, right after the message that added it.
        while let Poll::Ready(Some(answer)) = act.answers.poll_next_unpin(task) {
            act.answer(answer);
        }
        Poll::Pending
    }
}

impl Dispatcher {
    /// A dispatcher sending through `transports`.
    pub fn new(settings: DispatcherSettings, transports: Transports) -> Self {
        let timers = Timers {
            t1: settings.t1,
            t2: settings.t2,
        };
        let sent_by = settings
            .local_addrs
            .iter()
            .map(|a| {
                let rendered = match a {
                    SocketAddr::V6(v6) => format!("[{}]:{}", v6.ip(), v6.port()),
                    a => a.to_string(),
                };
                (*a, rendered)
            })
            .collect();
        Self {
            sent_by,
            settings,
            transports,
            send_failed_to: None,
            routes: HashMap::new(),
            events: BTreeSet::new(),
            accept: BTreeSet::new(),
            option_tags: BTreeSet::new(),
            dialogs: HashMap::new(),
            server_tx: ServerTransactions::default(),
            client: ClientTransactions::new(timers),
            held: Some(Vec::new()),
            answers: FuturesUnordered::new(),
        }
    }

    fn linger(&self) -> Duration {
        self.settings.t1 * 64
    }

    fn allow(&self) -> String {
        let mut methods: BTreeSet<&str> = self.routes.keys().map(Method::as_str).collect();
        methods.insert("OPTIONS");
        methods.into_iter().collect::<Vec<_>>().join(", ")
    }

    fn join(set: &BTreeSet<String>) -> String {
        set.iter()
            .map(String::as_str)
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// Sends a response and remembers it for retransmissions.
    fn send_response(
        &mut self,
        key: Option<&ServerKey>,
        mut response: Response,
        target: Target,
        close_after: bool,
    ) {
        metrics()
            .sip_responses
            .get_or_create(&[("class", status_class(response.status))])
            .inc();
        response
            .headers
            .push("Server", self.settings.server_name.clone());
        let bytes = Bytes::from(response.to_bytes());
        if let Some(key) = key {
            self.server_tx.complete(
                key,
                bytes.clone(),
                target,
                target.transport.is_reliable(),
                self.linger(),
                Instant::now(),
            );
        }
        if !self.transports.send(Outbound {
            target,
            bytes,
            close_after,
            on_failure: None,
            tag: 0,
        }) {
            warn!("no transport to send a response to {}", target.addr);
        }
    }

    /// Keeps a request for `Ready`, or answers 503 when too many are waiting.
    fn hold(&mut self, req: Request, source: Source, received_at: Instant) {
        let Some(held) = self.held.as_mut() else {
            return;
        };
        if held.len() < MAX_HELD_REQUESTS {
            held.push((req, source, received_at));
            return;
        }
        if held.len() == MAX_HELD_REQUESTS {
            warn!("still restoring stored dialogs: answering 503 until done");
        }
        let target = match req.top_via() {
            Ok(via) => validation::response_target(&source, &via),
            Err(_) if source.transport.is_reliable() => Target::back_to(&source),
            Err(_) => return,
        };
        let reject = Reject::new(503).header("Retry-After", "1");
        self.send_reject(&req, None, target, reject);
    }

    /// Sends a handler's answer (or the error its failure calls for).
    fn answer(&mut self, a: Answer) {
        let Answer {
            request,
            key,
            target,
            source,
            in_dialog,
            result,
        } = a;
        match result {
            Ok(Ok(reply)) => self.send_reply(&request, Some(&key), target, reply),
            Ok(Err(reject)) => {
                debug!("{} from {}: {reject}", request.method, source.peer);
                self.send_reject(&request, Some(&key), target, reject)
            }
            // The dialog's owner ended while the request was on its way: the dialog no longer
            // exists (RFC 3261 §12.2.2).
            Err(MailboxError::Closed) if in_dialog => {
                self.send_reject(&request, Some(&key), target, Reject::new(481))
            }
            Err(e) => {
                warn!(
                    "{} from {}: handler failed: {e}",
                    request.method, source.peer
                );
                self.send_reject(&request, Some(&key), target, Reject::new(500))
            }
        }
    }

    fn send_reject(&mut self, req: &Request, key: Option<&ServerKey>, target: Target, r: Reject) {
        let mut resp = Response::to_request(req, r.status, Some(&super::transaction::new_tag()));
        if let Some(reason) = r.reason {
            resp.reason = reason;
        }
        for (n, v) in r.headers {
            resp.headers.push(n, v);
        }
        self.send_response(key, resp, target, false);
    }

    fn send_reply(
        &mut self,
        req: &Request,
        key: Option<&ServerKey>,
        target: Target,
        mut reply: Reply,
    ) {
        if let Some(d) = reply.dialog.take() {
            self.dialogs.insert((d.id, d.usage), d.handler);
        }
        // RFC 3261 §8.2.6.2: a response always carries a To tag.
        let to_tag = reply.to_tag.unwrap_or_else(super::transaction::new_tag);
        let mut resp = Response::to_request(req, reply.status, Some(&to_tag));
        for (n, v) in reply.headers {
            resp.headers.push(n, v);
        }
        if let Some((content_type, body)) = reply.body {
            resp.headers.push("Content-Type", content_type);
            resp.body = body;
        }
        let status = resp.status;
        self.send_response(key, resp, target, false);
        if let Some(r) = reply.on_sent {
            r.do_send(ResponseSent { status });
        }
    }

    fn handle_request(&mut self, mut req: Request, source: Source, received_at: Instant) {
        if req.method == Method::Ack {
            // No INVITE transactions here: an ACK has nothing to match (RFC 3261 §17.2.3).
            debug!("ACK from {} ignored", source.peer);
            return;
        }
        let Mandatory {
            via,
            dialog,
            from,
            to,
        } = match validation::check_mandatory(&req) {
            Ok(checked) => checked,
            Err(reject) => {
                info!(
                    "{} from {}: rejected with {reject}",
                    req.method, source.peer
                );
                let target = match req.top_via() {
                    Ok(via) => validation::response_target(&source, &via),
                    // Without a Via only a stream has a way back.
                    Err(_) if source.transport.is_reliable() => Target::back_to(&source),
                    Err(_) => return,
                };
                self.send_reject(&req, None, target, reject);
                return;
            }
        };
        validation::stamp_received(&mut req, &via, &source);
        let target = validation::response_target(&source, &via);
        let Some(key) = ServerKey::new(&via, &req.method) else {
            return;
        };
        match self.server_tx.begin(&key) {
            ServerMatch::New => {}
            ServerMatch::InProgress => {
                debug!(
                    "{} retransmission from {} absorbed",
                    req.method, source.peer
                );
                return;
            }
            ServerMatch::Completed(bytes, target) => {
                debug!(
                    "{} retransmission from {}: response resent",
                    req.method, source.peer
                );
                self.transports.send(Outbound {
                    target,
                    bytes,
                    close_after: false,
                    on_failure: None,
                    tag: 0,
                });
                return;
            }
        }
        match self.route(&req, &key, dialog) {
            Ok(Routed::Handler(handler, dialog)) => {
                let in_dialog = dialog.is_some();
                let request = Arc::new(req);
                let msg = IncomingRequest {
                    request: request.clone(),
                    source,
                    dialog,
                    from,
                    to,
                    received_at,
                };
                // No timer per request: handlers are this process's actors and always answer;
                // if one has stopped, the send fails at once with a MailboxError.
                let fut = handler.send(msg);
                self.answers.push(Box::pin(async move {
                    Answer {
                        result: fut.await,
                        request,
                        key,
                        target,
                        source,
                        in_dialog,
                    }
                }));
            }
            Ok(Routed::Answer(reply)) => self.send_reply(&req, Some(&key), target, reply),
            Err(reject) => {
                debug!("{} from {}: {reject}", req.method, source.peer);
                self.send_reject(&req, Some(&key), target, reject);
            }
        }
    }

    /// Everything between the transaction match and the handler.
    fn route(
        &self,
        req: &Request,
        key: &ServerKey,
        dialog: Option<DialogId>,
    ) -> Result<Routed, Reject> {
        validation::check_max_forwards(req)?;
        let served = req.method == Method::Options
            || req.method == Method::Cancel
            || self.routes.contains_key(&req.method);
        if !served {
            return Err(Reject::new(405).header("Allow", self.allow()));
        }
        let Some(uri) = req.uri.as_sip() else {
            return Err(Reject::new(416));
        };
        if !validation::domain_served(
            &uri.host,
            &self.settings.domains,
            &self.settings.local_addrs,
        ) {
            return Err(Reject::with_reason(404, "Domain Not Served"));
        }
        if req.method != Method::Cancel {
            validation::check_require(req, &self.option_tags)?;
        }
        match req.method {
            Method::Cancel => {
                // RFC 3261 §9.2: a CANCEL matching a non-INVITE transaction has no effect on
                // it, but is answered 200; otherwise 481.
                let matched = self
                    .routes
                    .keys()
                    .any(|m| self.server_tx.contains(&key.cancelled(m.clone())));
                return if matched {
                    Ok(Routed::Answer(Reply::ok()))
                } else {
                    Err(Reject::new(481))
                };
            }
            Method::Options => return Ok(Routed::Answer(self.options_reply())),
            _ => {}
        }
        if let Some(dialog) = dialog {
            let usage = match req.event() {
                Some(Ok(e)) => usage_key(&e.package, e.id.as_deref()),
                _ => String::new(),
            };
            return match self.dialogs.get(&(dialog.clone(), usage)) {
                Some(h) => Ok(Routed::Handler(h.clone(), Some(dialog))),
                None => Err(Reject::new(481)),
            };
        }
        let Some(routes) = self.routes.get(&req.method) else {
            return Err(Reject::new(405).header("Allow", self.allow()));
        };
        // RFC 6665 §8.2: a request of an event-based method goes to its package's handler; a
        // package nobody serves gets 489 with every package that is.
        let route = match routes.as_slice() {
            [only] if only.events.is_empty() => only,
            _ => {
                let event = match req.event() {
                    Some(Ok(e)) => Some(e),
                    Some(Err(_)) => return Err(Reject::with_reason(400, "Malformed Event")),
                    None => None,
                };
                let served = event
                    .as_ref()
                    .and_then(|e| routes.iter().find(|r| r.events.iter().any(|p| e.is(p))));
                match served {
                    Some(route) => route,
                    None => {
                        return Err(
                            Reject::new(489).header("Allow-Events", Self::join(&self.events))
                        )
                    }
                }
            }
        };
        Ok(Routed::Handler(route.handler.clone(), None))
    }

    fn options_reply(&self) -> Reply {
        let mut reply = Reply::ok()
            .header("Allow", self.allow())
            .header("Accept", Self::join(&self.accept))
            .header("Supported", Self::join(&self.option_tags));
        if !self.events.is_empty() {
            reply = reply.header("Allow-Events", Self::join(&self.events));
        }
        reply
    }

    fn handle_response(&mut self, resp: Response, source: Source) {
        // Only the top Via's branch is read: a response that matches no transaction of ours
        // is dropped whatever else it says.
        let Some(branch) = resp.headers.list("Via").next().and_then(Via::branch_of) else {
            debug!("response from {} without a Via branch dropped", source.peer);
            return;
        };
        let Some(key) = client_key_of(branch) else {
            debug!(
                "response {} from {} matches no transaction",
                resp.status, source.peer
            );
            return;
        };
        let method = resp.cseq().ok().map(|c| c.method);
        let status = resp.status;
        if let Some(done) = self
            .client
            .response(key, method.as_ref(), status, Arc::new(resp))
        {
            tell(done);
        }
    }

    /// Runs every client-transaction timer that is due: Timer E retransmits on UDP, Timer F
    /// (64×T1 after the start) ends the transaction with a timeout.
    fn client_timers_due(&mut self) {
        let transports = &self.transports;
        let ended = self.client.due(Instant::now(), |target, bytes| {
            transports.send(Outbound {
                target,
                bytes,
                close_after: false,
                on_failure: None,
                tag: 0,
            });
        });
        ended.into_iter().for_each(tell);
    }

    fn local_sent_by(&self, target: &Target) -> &str {
        // A remembered local address may be from before a restart (recovered dialogs).
        let remembered = target
            .local
            .and_then(|l| self.sent_by.iter().find(|(a, _)| *a == l));
        remembered
            .or_else(|| {
                self.sent_by
                    .iter()
                    .find(|(a, _)| a.is_ipv4() == target.addr.is_ipv4())
            })
            .map_or("invalid.invalid", |(_, s)| s.as_str())
    }
}

/// Tells a client transaction's owner how it ended.
fn tell(done: Finished<Recipient<ClientOutcome>, Arc<Response>>) {
    let result = match done.ending {
        Ending::Response(r) => ClientResult::Response(r),
        Ending::Timeout => ClientResult::Timeout,
        Ending::TransportError => ClientResult::TransportError,
    };
    done.owner.do_send(ClientOutcome {
        tag: done.tag,
        result,
    });
}

enum Routed {
    Handler(Recipient<IncomingRequest>, Option<DialogId>),
    Answer(Reply),
}

impl Actor for Dispatcher {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        self.send_failed_to = Some(Arc::new(ctx.address().recipient()));
        // Transports push into this mailbox with try_send; a generous capacity absorbs bursts.
        ctx.set_mailbox_capacity(4096);
        ctx.run_interval(SWEEP_INTERVAL, |act, _| act.server_tx.sweep(Instant::now()));
        // Timer E/F resolution: a quarter of T1, between 5 and 100 ms.
        let tick =
            (self.settings.t1 / 4).clamp(Duration::from_millis(5), Duration::from_millis(100));
        ctx.run_interval(tick, |act, _| act.client_timers_due());
        ctx.spawn(Answers);
    }
}

/// Requests held while restoring, at most; later ones get 503 (a UDP client retransmits, a
/// TCP one retries after Retry-After).
const MAX_HELD_REQUESTS: usize = 10_000;

/// Every stored dialog is restored (its route registered, which this message follows in the
/// mailbox): held requests are now handled, in order, and later ones at once.
#[derive(Message, Debug)]
#[rtype(result = "()")]
pub struct Ready;

impl Handler<Ready> for Dispatcher {
    type Result = ();

    fn handle(&mut self, _msg: Ready, _ctx: &mut Self::Context) {
        let held = self.held.take().unwrap_or_default();
        if !held.is_empty() {
            info!(
                "{} requests held during the restore are handled now",
                held.len()
            );
        }
        for (req, source, received_at) in held {
            self.handle_request(req, source, received_at);
        }
    }
}

impl Handler<Inbound> for Dispatcher {
    type Result = ();

    fn handle(&mut self, msg: Inbound, _ctx: &mut Self::Context) {
        if let SipMessage::Request(req) = &msg.message {
            metrics()
                .sip_requests
                .get_or_create(&[("method", req.method.label())])
                .inc();
        }
        match msg.message {
            SipMessage::Request(req) if self.held.is_some() => {
                self.hold(req, msg.source, msg.received_at)
            }
            SipMessage::Request(req) => self.handle_request(req, msg.source, msg.received_at),
            SipMessage::Response(resp) => self.handle_response(resp, msg.source),
        }
    }
}

impl Handler<InboundRejected> for Dispatcher {
    type Result = ();

    fn handle(&mut self, msg: InboundRejected, _ctx: &mut Self::Context) {
        let source = msg.source;
        let (headers, status, reason, close) = match msg.problem {
            InboundProblem::Unparsable(failure) => {
                info!("unparsable message from {}: {}", source.peer, failure.error);
                // Only requests are answered; a broken response is dropped.
                let Some(h) = failure.headers.filter(|_| failure.looks_like_request) else {
                    if source.transport.is_reliable() {
                        // Nothing sensible can follow on this stream.
                        self.close(&source);
                    }
                    return;
                };
                (h, 400, failure.error.to_string(), false)
            }
            InboundProblem::MissingContentLength(head) => {
                info!(
                    "message without Content-Length from {}: closing",
                    source.peer
                );
                (
                    head_headers(&head),
                    400,
                    "Missing Content-Length".into(),
                    true,
                )
            }
            InboundProblem::Oversize(head) => {
                info!("message over the size limit from {}", source.peer);
                let headers = head.map(|h| head_headers(&h)).unwrap_or_default();
                (
                    headers,
                    513,
                    "Message Too Large".into(),
                    source.transport.is_reliable(),
                )
            }
        };
        let via = headers.list("Via").next().and_then(|v| Via::parse(v).ok());
        let target = match via {
            Some(via) => validation::response_target(&source, &via),
            None if source.transport.is_reliable() => Target::back_to(&source),
            None => return,
        };
        if headers.list("Via").next().is_none() && headers.get("CSeq").is_none() {
            // Not even the makings of a response: just close.
            if close {
                self.close(&source);
            }
            return;
        }
        let mut resp =
            Response::from_headers(&headers, status, Some(&super::transaction::new_tag()));
        resp.reason = reason.into();
        self.send_response(None, resp, target, close);
    }
}

impl Dispatcher {
    fn close(&self, source: &Source) {
        self.transports.send(Outbound {
            target: Target::back_to(source),
            bytes: Bytes::new(),
            close_after: true,
            on_failure: None,
            tag: 0,
        });
    }
}

/// Headers of a head that may be incomplete or malformed; what cannot be read is left out.
fn head_headers(head: &[u8]) -> Headers {
    match parse(head) {
        Ok(SipMessage::Request(r)) => r.headers,
        Ok(SipMessage::Response(r)) => r.headers,
        Err(f) => f.headers.unwrap_or_default(),
    }
}

impl Handler<RegisterRoute> for Dispatcher {
    type Result = ();

    fn handle(&mut self, msg: RegisterRoute, _ctx: &mut Self::Context) {
        self.events.extend(msg.events.iter().cloned());
        self.accept.extend(msg.accept);
        self.option_tags.extend(msg.option_tags);
        self.routes.entry(msg.method).or_default().push(Route {
            handler: msg.handler,
            events: msg.events,
        });
    }
}

impl Handler<RegisterDialog> for Dispatcher {
    type Result = ();

    fn handle(&mut self, msg: RegisterDialog, _ctx: &mut Self::Context) {
        self.dialogs.insert((msg.id, msg.usage), msg.handler);
    }
}

impl Handler<UnregisterDialog> for Dispatcher {
    type Result = ();

    fn handle(&mut self, msg: UnregisterDialog, _ctx: &mut Self::Context) {
        self.dialogs.remove(&(msg.id, msg.usage));
    }
}

impl Handler<SendRequest> for Dispatcher {
    type Result = ();

    fn handle(&mut self, msg: SendRequest, ctx: &mut Self::Context) {
        let mut req = msg.request;
        let key = self.client.new_key();
        let transport = msg.target.transport.as_str();
        let sent_by = self.local_sent_by(&msg.target);
        let mut via = String::with_capacity(40 + transport.len() + sent_by.len());
        via.push_str("SIP/2.0/");
        via.push_str(transport);
        via.push(' ');
        via.push_str(sent_by);
        via.push_str(";branch=");
        push_branch(&mut via, key);
        via.push_str(";rport");
        req.headers.0.retain(|h| h.name != "Via");
        req.headers.0.insert(
            0,
            super::message::Header {
                name: "Via".into(),
                value: via,
            },
        );
        let bytes = Bytes::from(req.to_bytes());
        let sent = self.transports.send(Outbound {
            target: msg.target,
            bytes: bytes.clone(),
            close_after: false,
            on_failure: Some(match &self.send_failed_to {
                Some(to) => Arc::clone(to),
                None => Arc::new(ctx.address().recipient()),
            }),
            tag: key,
        });
        if !sent {
            msg.owner.do_send(ClientOutcome {
                tag: msg.tag,
                result: ClientResult::TransportError,
            });
            return;
        }
        self.client.start(
            key,
            msg.owner,
            msg.tag,
            req.method.clone(),
            bytes,
            msg.target,
            Instant::now(),
        );
    }
}

impl Handler<SendFailed> for Dispatcher {
    type Result = ();

    fn handle(&mut self, msg: SendFailed, _ctx: &mut Self::Context) {
        // The tag is the transaction's key (see `SendRequest`).
        if let Some(done) = self.client.finish(msg.tag, Ending::TransportError) {
            tell(done);
        }
    }
}
