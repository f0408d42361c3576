//! What operators may ask of the running server and have it do (the admin API's side inside
//! the actors): the reports, and the messages the presence agent, the presentities, the event
//! agent, the resources and the registrar answer.
//!
//! Owns: the report types (serialisable, bounded: a listing is paged, a report names what one
//! resource holds) and the messages. Must not: hold state, or be used on any SIP path.

use actix::prelude::*;
use serde::Serialize;

use crate::presence::aor::Aor;

/// A publication as the admin API shows it.
#[derive(Debug, Clone, Serialize)]
pub struct PublicationReport {
    /// Its event package.
    pub package: &'static str,
    /// Its entity-tag.
    pub etag: String,
    /// Its media type.
    pub content_type: String,
    /// Seconds until it expires.
    pub expires_in: u64,
}

/// A registrar binding as the admin API shows it.
#[derive(Debug, Clone, Serialize)]
pub struct BindingReport {
    /// The contact URI.
    pub contact: String,
    /// Seconds until it expires.
    pub expires_in: u64,
    /// Its q-value.
    pub q: Option<f32>,
    /// The REGISTER's Call-ID.
    pub call_id: String,
    /// The REGISTER's CSeq.
    pub cseq: u32,
}

/// What a presentity holds.
#[derive(Debug, Clone, Serialize)]
pub struct PresentityReport {
    /// Its presence publications.
    pub publications: Vec<PublicationReport>,
    /// The document its watchers were last sent (PIDF).
    pub document: String,
    /// Its watchers (plain subscriptions and lists).
    pub watchers: usize,
}

/// The AORs of the presentities in memory whose AOR starts with `prefix`, after `after`, in
/// order, at most `limit`.
#[derive(Message, Debug)]
#[rtype(result = "Vec<String>")]
pub struct ListPresentities {
    /// What the AORs start with (`sip:` included).
    pub prefix: String,
    /// The last AOR of the previous page.
    pub after: Option<String>,
    /// The page's size.
    pub limit: usize,
}

/// A presentity's report; `None` when it is not in memory.
#[derive(Message, Debug)]
#[rtype(result = "Option<PresentityReport>")]
pub struct InspectPresentity(pub Aor);

/// The publications of every other package's resources of an AOR.
#[derive(Message, Debug)]
#[rtype(result = "Vec<PublicationReport>")]
pub struct InspectResources(pub Aor);

/// A resource's publications (to one resource actor).
#[derive(Message, Debug)]
#[rtype(result = "Vec<PublicationReport>")]
pub struct InspectPublications;

/// A presentity's report (to its actor).
#[derive(Message, Debug)]
#[rtype(result = "PresentityReport")]
pub struct Inspect;

/// An AOR's registrar bindings.
#[derive(Message, Debug)]
#[rtype(result = "Vec<BindingReport>")]
pub struct InspectBindings(pub Aor);

/// Removes publication `etag` of `aor`, as a PUBLISH with Expires 0 would (committed, then
/// notified); false when there is none.
#[derive(Message, Debug)]
#[rtype(result = "Result<bool, RemoveFailed>")]
pub struct RemovePublication {
    /// The resource.
    pub aor: Aor,
    /// The publication.
    pub etag: String,
}

/// A removal could not be committed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the store cannot commit")]
pub struct RemoveFailed;

/// Composes a presentity's document anew (asking the users database again) and NOTIFYs every
/// watcher; false when the presentity is not in memory.
#[derive(Message, Debug)]
#[rtype(result = "bool")]
pub struct Renotify(pub Aor);
