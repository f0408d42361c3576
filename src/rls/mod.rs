//! Resource lists (RFC 4662): list subscriptions, request-contained lists (RFC 5367) and
//! server-known lists.
//!
//! Owns: the list model and its loaders (`resource_lists`, the store's `ListResolver`), the
//! `SubscribeRouter` that accepts list SUBSCRIBEs, one `Watcher<ListView>` actor per list
//! subscription, and pure RLMI (`rlmi`) and multipart (`multipart`) building.
//! Must not: reach into presentity internals; members are watched through the presence agent like
//! any watcher.

pub mod list;
pub mod list_view;
pub mod members;
pub mod multipart;
pub mod resource_lists;
pub mod rlmi;
pub mod subscribe_router;
