//! Registrar callbacks: REGISTER bindings (RFC 3261 §10.3) as a source of presence.
//!
//! Owns: the bindings of each AOR (contact, q, expiry, Call-ID/CSeq) and their expiry, in the
//! `Registrar` actor. Each change is told to the presence agent as `BindingsChanged`, so
//! that other sources of registration state (reg-event NOTIFYs from an external registrar)
//! can feed presentities the same way. Must not: build PIDF.

pub mod bindings;

pub use bindings::{Registrar, RegistrarConfig};
