//! `Reject`: a request refused with a SIP status.
//!
//! Owns: the value that handlers return to refuse a request. Must not: build or send the
//! response; the dispatcher does that, in one place.

use std::borrow::Cow;

/// A refusal: status, optional reason phrase, and headers the response must carry
/// (Allow, Min-Expires, Allow-Events, Unsupported, Accept, Retry-After, …).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reject {
    /// Status code, 300–699.
    pub status: u16,
    /// Reason phrase; the standard phrase when `None`.
    pub reason: Option<Cow<'static, str>>,
    /// Extra headers.
    pub headers: Vec<(Cow<'static, str>, String)>,
}

impl Reject {
    /// A refusal with the standard reason phrase.
    pub fn new(status: u16) -> Self {
        Self {
            status,
            reason: None,
            headers: Vec::new(),
        }
    }

    /// A refusal whose reason phrase names the problem (`400 Missing Call-ID`).
    pub fn with_reason(status: u16, reason: impl Into<Cow<'static, str>>) -> Self {
        Self {
            status,
            reason: Some(reason.into()),
            headers: Vec::new(),
        }
    }

    /// Adds a header to the response.
    pub fn header(mut self, name: impl Into<Cow<'static, str>>, value: impl Into<String>) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }
}

impl std::fmt::Display for Reject {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.reason {
            Some(r) => write!(f, "{} {r}", self.status),
            None => write!(f, "{}", self.status),
        }
    }
}
