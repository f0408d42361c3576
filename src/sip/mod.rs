//! The SIP layer: messages, URIs (through rsip), the transports, transactions and the
//! dispatcher.
//!
//! Owns everything that is SIP rather than presence: message parsing and writing, typed
//! headers, transports (UDP, TCP with Content-Length framing), non-INVITE transactions,
//! dialog identity, and the dispatcher that routes requests to handlers registered at
//! start-up. Must not: know about presentities, resource lists or the database; handlers are
//! plain `Recipient<IncomingRequest>`s.
//!
//! # rsip parses URIs, and nothing else
//!
//! Nothing outside `uri` imports rsip, and it is used for one thing: the `sip:`/`sips:` URI
//! grammar (user, host, port, URI parameters) in Request-URIs and in name-addr headers.
//! Messages are read and written by this module's own code: `wire` splits a head into lines
//! (unfolding continuation lines, trimming `Name : value` spacing, expanding compact header
//! names), `message` parses and writes requests and responses (extension methods included,
//! bodies kept as `Bytes`, never re-encoded), `headers` types the headers (parameters with
//! quoted values, Via, Subscription-State…), and `transport::framing` frames TCP streams by
//! Content-Length. Around rsip, `uri` masks an IPv6 reference before rsip (which rejects
//! them) and restores it, and hands it only `sip:`/`sips:` URIs (rsip 0.4 reads `tel:+1555`
//! as a host named `tel`); other schemes are kept verbatim.
//!
//! The typed headers the server reasons about (Event with `id`, Subscription-State, SIP-ETag,
//! SIP-If-Match, Allow-Events, Min-Expires, Supported, Require, Accept, Accept-Encoding,
//! Content-Encoding, Via, From/To/Contact/Route) live in `headers`.

pub mod client_transactions;
pub mod content_coding;
pub mod dialog;
pub mod dispatcher;
pub mod headers;
pub mod message;
pub mod reject;
pub mod transaction;
pub mod transport;
pub mod uri;
pub mod validation;
pub mod wire;

pub use dispatcher::{Dispatcher, DispatcherSettings, IncomingRequest, Reply};
pub use message::{Method, Request, Response};
pub use reject::Reject;
