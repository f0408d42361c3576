//! RFC 3903 rules for a PUBLISH, as pure functions.
//!
//! Owns: classifying a PUBLISH (initial, refresh, modify, remove), the expiry rules, and the
//! checks that need no state (Event, Content-Type, body presence). Must not: hold publications
//! (the presentity does) or parse PIDF (see `pidf`).

use std::time::{SystemTime, UNIX_EPOCH};

use crate::sip::headers::parse_entity_tag;
use crate::sip::message::{HeaderAccess, Request};
use crate::sip::Reject;

use super::document::PIDF_CONTENT_TYPE;

/// What a PUBLISH asks for (RFC 3903 §4).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PublishKind {
    /// No SIP-If-Match, a body: a new publication.
    Initial,
    /// SIP-If-Match, no body: extend the publication's life.
    Refresh(String),
    /// SIP-If-Match and a body: replace the publication's state.
    Modify(String),
    /// SIP-If-Match and Expires: 0: remove it.
    Remove(String),
}

/// Expiry limits for publications, seconds.
#[derive(Debug, Clone, Copy)]
pub struct PublishLimits {
    /// Used when the request has no Expires.
    pub default_expires: u32,
    /// Below this (and not 0): 423.
    pub min_expires: u32,
    /// Above this: clamped.
    pub max_expires: u32,
    /// Live publications one resource holds at most (a new one beyond gets 403).
    pub max_per_resource: usize,
}

/// A PUBLISH that passed the stateless checks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckedPublish {
    /// What it asks for.
    pub kind: PublishKind,
    /// Granted expiry in seconds (0 for a removal).
    pub expires: u32,
}

/// The body types a presence PUBLISH may carry: PIDF, or CPIM-PIDF (the same document under
/// the draft's namespace).
pub const PUBLISHED_TYPES: [&str; 2] = [PIDF_CONTENT_TYPE, CPIM_PIDF_CONTENT_TYPE];

/// Content type of CPIM-PIDF bodies.
pub const CPIM_PIDF_CONTENT_TYPE: &str = "application/cpim-pidf+xml";

/// RFC 3903 §6 steps 1–5 for a presence PUBLISH, without state: Event, expiry, SIP-If-Match,
/// Content-Type and body.
pub fn check(req: &Request, limits: &PublishLimits) -> Result<CheckedPublish, Reject> {
    check_for(req, limits, "presence", &PUBLISHED_TYPES)
}

/// RFC 3903 §6 steps 1–5 for a PUBLISH of event package `package`, whose bodies may be of
/// `types`: the rules every package shares.
pub fn check_for(
    req: &Request,
    limits: &PublishLimits,
    package: &str,
    types: &[&str],
) -> Result<CheckedPublish, Reject> {
    // RFC 3903 §6 step 2: the event package must be one we serve.
    match req.event() {
        Some(Ok(e)) if e.is(package) => {}
        Some(Ok(_)) | None => {
            return Err(Reject::new(489).header("Allow-Events", package.to_owned()));
        }
        Some(Err(_)) => return Err(Reject::with_reason(400, "Malformed Event")),
    }
    let requested = match req.expires() {
        Some(Ok(e)) => e,
        Some(Err(_)) => return Err(Reject::with_reason(400, "Malformed Expires")),
        None => limits.default_expires,
    };
    let if_match = match req.headers.get("SIP-If-Match") {
        Some(v) => Some(
            parse_entity_tag(v, "SIP-If-Match")
                .map_err(|_| Reject::with_reason(400, "Malformed SIP-If-Match"))?,
        ),
        None => None,
    };
    let has_body = !req.body.is_empty();
    // RFC 3903 §6 step 3: expiry below the minimum gets 423 (except a removal).
    if requested != 0 && requested < limits.min_expires {
        return Err(Reject::new(423).header("Min-Expires", limits.min_expires.to_string()));
    }
    let expires = requested.min(limits.max_expires);
    if has_body {
        let content_type = req.headers.get("Content-Type").unwrap_or("");
        let media = content_type.split(';').next().unwrap_or("").trim();
        if !types.iter().any(|t| media.eq_ignore_ascii_case(t)) {
            return Err(Reject::new(415).header("Accept", types.join(", ")));
        }
        if req
            .headers
            .get("Content-Encoding")
            .is_some_and(|e| !e.trim().is_empty() && !e.trim().eq_ignore_ascii_case("identity"))
        {
            return Err(Reject::new(415).header("Accept-Encoding", "identity"));
        }
    }
    let kind = match (if_match, has_body, expires) {
        (Some(tag), _, 0) => PublishKind::Remove(tag),
        (Some(tag), false, _) => PublishKind::Refresh(tag),
        (Some(tag), true, _) => PublishKind::Modify(tag),
        // RFC 3903 §6 step 4: an initial PUBLISH must carry a body.
        (None, false, _) => return Err(Reject::with_reason(400, "Initial PUBLISH Without Body")),
        (None, true, 0) => return Err(Reject::with_reason(400, "Initial PUBLISH With Expires 0")),
        (None, true, _) => PublishKind::Initial,
    };
    Ok(CheckedPublish { kind, expires })
}

/// A fresh entity-tag (RFC 3903 §11.3: unique among the presentity's publications): the
/// milliseconds since the Unix epoch (48 bits) then 48 random bits, in 24 hex digits.
///
/// Unpredictable, and unique across restarts and across nodes sharing a store (two tags of
/// the same millisecond are equal with probability 2^-48). The time comes first so that a tag
/// made later sorts after every tag made before it: the store's primary-key index on the tags
/// then grows at its right edge, where a B-tree insert is cheapest (PostgreSQL skips the
/// descent from the root), and the tags a refresh or a remove deletes sit on the few pages
/// written last; random tags would spread every insert and delete over the whole index.
pub fn new_entity_tag() -> String {
    let millis = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |since| since.as_millis());
    let time = (millis & 0xffff_ffff_ffff) as u64;
    format!("{time:012x}{:012x}", rand::random::<u64>() >> 16)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entity_tags_are_24_hex_digits_and_distinct() {
        let tags: std::collections::HashSet<String> =
            (0..10_000).map(|_| new_entity_tag()).collect();
        assert_eq!(tags.len(), 10_000);
        for tag in &tags {
            assert_eq!(tag.len(), 24, "{tag}");
            assert!(
                tag.bytes()
                    .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)),
                "{tag}"
            );
        }
    }

    #[test]
    fn a_later_entity_tag_sorts_after_an_earlier_one() {
        let earlier: Vec<String> = (0..100).map(|_| new_entity_tag()).collect();
        std::thread::sleep(std::time::Duration::from_millis(2));
        let later = new_entity_tag();
        assert!(
            earlier.iter().all(|tag| *tag < later),
            "{later} {earlier:?}"
        );
        // The time part is the clock's milliseconds.
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_millis());
        let stamped = u128::from_str_radix(&later[..12], 16).unwrap_or(0);
        assert!(stamped <= now && now - stamped < 60_000, "{stamped} {now}");
    }
}
