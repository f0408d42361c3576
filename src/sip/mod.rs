//! The SIP layer: a façade over rsip, the transports, transactions and the dispatcher.
//!
//! Owns everything that is SIP rather than presence: message parsing and writing, typed
//! headers, transports (UDP, TCP with Content-Length framing), non-INVITE transactions,
//! dialog identity, and the dispatcher that routes requests to handlers registered at
//! start-up. Must not: know about presentities, resource lists or the database; handlers are
//! plain `Recipient<IncomingRequest>`s.
//!
//! # What rsip does, and what the façade does itself
//!
//! Nothing outside this module imports rsip. rsip 0.4 is used for what it parses correctly:
//! the `sip:`/`sips:` URI grammar (user, host, port, URI parameters) in Request-URIs and in
//! name-addr headers. Around it the façade normalises before and validates after:
//!
//! | rsip 0.4 behaviour | façade |
//! |---|---|
//! | rejects folded header lines | `wire::split_head` unfolds them first |
//! | rejects `Name : value` spacing | `wire::split_head` trims it |
//! | ignores compact forms (i m e l c f t v s k o u) | `wire::canonical_name` expands them |
//! | rejects IPv6 references in URIs and Via | `uri` masks the reference before rsip and restores it; Via is parsed by `headers::Via` |
//! | rejects quoted parameter values | header parameters are parsed by `headers::Params` |
//! | rejects extension methods | `message::Method::Extension` |
//! | never yields Subscription-State | `headers::SubscriptionState` |
//! | ignores Content-Length | `transport::framing` frames streams by it; `message::parse` cuts datagrams by it |
//! | corrupts binary bodies when re-serialising | bodies stay `Bytes` end to end; `message` writes them verbatim |
//! | turns `tel:+1555` into a host named `tel` | only `sip:`/`sips:` reach rsip; other schemes are kept verbatim |
//!
//! The typed headers the server reasons about (Event with `id`, Subscription-State, SIP-ETag,
//! SIP-If-Match, Allow-Events, Min-Expires, Supported, Require, Accept, Accept-Encoding,
//! Content-Encoding, Via, From/To/Contact/Route) live in `headers`.

pub mod content_coding;
pub mod dialog;
pub mod dispatcher;
pub mod headers;
pub mod message;
pub mod reject;
pub mod transaction;
pub mod transport;
pub mod uri;
pub mod wire;

pub use dispatcher::{Dispatcher, DispatcherSettings, IncomingRequest, Reply};
pub use message::{Method, Request, Response};
pub use reject::Reject;
