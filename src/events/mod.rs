//! Event packages beyond presence (RFC 6665), served from publications or from a state source:
//! one module per package (its Event name, its body types and their check, how publications
//! combine, its default body, who may subscribe) on one machinery written once — resources of
//! (package, AOR) holding publications by entity-tag, the `EventAgent` routing SUBSCRIBE and
//! PUBLISH to them, Accept negotiation, watchers, lists and persistence shared with presence.
//! Adding a package is one module and one line in `app`.
//!
//! Owns: `package` (the [`EventPackage`] trait and Accept negotiation), `publications` (the
//! entity-tag table every resource and presentity keeps its publications in), `resource` (one
//! actor per package and AOR), `agent` (the entry point), `source` (packages whose state
//! presenced keeps itself), and the packages: `dialog` (RFC 4235), `message_summary` (RFC
//! 3842) and `reg` (RFC 3680, from the registrar).
//! Must not: know one package from another outside its module.

pub mod agent;
pub mod dialog;
pub mod message_summary;
pub mod package;
pub mod publications;
pub mod reg;
pub mod resource;
pub mod source;

pub use agent::EventAgent;
pub use package::EventPackage;
