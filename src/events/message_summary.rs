//! The message-summary event package (RFC 3842): message-waiting indication.
//!
//! Owns: the `application/simple-message-summary` grammar (RFC 3842 §5.2), checked on every
//! PUBLISH, and the package's rules: the newest publication is the state (a voicemail server
//! publishes whole summaries), and with nothing published watchers are told
//! `Messages-Waiting: no`. Pure. Must not: hold state.

use bytes::Bytes;

use super::package::EventPackage;
use crate::presence::aor::Aor;
use crate::sip::Reject;

/// The message-summary package.
#[derive(Debug, Default, Clone, Copy)]
pub struct MessageSummary;

/// Its media type.
pub const SIMPLE_MESSAGE_SUMMARY: &str = "application/simple-message-summary";

/// Why a body is not a simple-message-summary.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum SummaryError {
    /// Not UTF-8 text.
    #[error("not text")]
    NotText,
    /// The first line is not `Messages-Waiting: yes|no`.
    #[error("no Messages-Waiting line first")]
    MissingStatus,
    /// A line of the summary part follows no rule of RFC 3842 §5.2.
    #[error("malformed line {0:?}")]
    Malformed(String),
}

/// RFC 3842 §5.2 message context classes (with their `-message` suffix), and `none`.
const CLASSES: [&str; 6] = [
    "voice-message",
    "fax-message",
    "pager-message",
    "multimedia-message",
    "text-message",
    "none",
];

/// Checks `body` against RFC 3842 §5.2: `Messages-Waiting: yes|no`, an optional
/// `Message-Account: URI`, summary lines `class: new/old [(new-urgent/old-urgent)]`, then
/// optionally a blank line and extension headers (kept, not read). Line ends may be CRLF or LF.
pub fn check(body: &[u8]) -> Result<(), SummaryError> {
    let text = std::str::from_utf8(body).map_err(|_| SummaryError::NotText)?;
    let mut lines = text.lines();
    let status = lines.next().ok_or(SummaryError::MissingStatus)?;
    match header(status) {
        Some((name, value))
            if name.eq_ignore_ascii_case("Messages-Waiting")
                && (value.eq_ignore_ascii_case("yes") || value.eq_ignore_ascii_case("no")) => {}
        _ => return Err(SummaryError::MissingStatus),
    }
    let mut account_allowed = true;
    for line in lines {
        if line.trim().is_empty() {
            // The optional message headers follow: extension headers, not checked here.
            break;
        }
        let malformed = || SummaryError::Malformed(line.chars().take(80).collect());
        let (name, value) = header(line).ok_or_else(malformed)?;
        if account_allowed && name.eq_ignore_ascii_case("Message-Account") {
            account_allowed = false;
            if value.is_empty() || value.contains(char::is_whitespace) {
                return Err(malformed());
            }
            continue;
        }
        account_allowed = false;
        if !CLASSES.iter().any(|c| name.eq_ignore_ascii_case(c)) || !counts(value) {
            return Err(malformed());
        }
    }
    Ok(())
}

/// `Name: value` (RFC 3261 HCOLON: whitespace around the colon).
fn header(line: &str) -> Option<(&str, &str)> {
    let (name, value) = line.split_once(':')?;
    let name = name.trim();
    (!name.is_empty()).then(|| (name, value.trim()))
}

/// `new/old` optionally followed by `(new-urgent/old-urgent)`.
fn counts(value: &str) -> bool {
    let pair = |s: &str| {
        s.split_once('/').is_some_and(|(a, b)| {
            let n = |x: &str| {
                let x = x.trim();
                !x.is_empty() && x.len() <= 10 && x.bytes().all(|b| b.is_ascii_digit())
            };
            n(a) && n(b)
        })
    };
    match value.split_once('(') {
        None => pair(value),
        Some((main, urgent)) => pair(main) && urgent.trim_end().strip_suffix(')').is_some_and(pair),
    }
}

impl EventPackage for MessageSummary {
    fn name(&self) -> &'static str {
        "message-summary"
    }

    fn notify_types(&self) -> &'static [&'static str] {
        &[SIMPLE_MESSAGE_SUMMARY]
    }

    fn publish_types(&self) -> &'static [&'static str] {
        &[SIMPLE_MESSAGE_SUMMARY]
    }

    fn validate(&self, body: &[u8]) -> Result<(), Reject> {
        check(body).map_err(|e| {
            log::debug!("message-summary refused: {e}");
            Reject::with_reason(400, "Malformed Message Summary")
        })
    }

    fn combine(&self, _aor: &Aor, newest_first: &[&Bytes]) -> Bytes {
        // The voicemail server publishes the whole summary each time: the newest is the state.
        newest_first
            .first()
            .map(|b| (*b).clone())
            .unwrap_or_default()
    }

    fn default_body(&self, _aor: &Aor) -> Bytes {
        Bytes::from_static(b"Messages-Waiting: no\r\n")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc_3842_examples_and_variants_pass() {
        for body in [
            "Messages-Waiting: yes\r\nMessage-Account: sip:alice@vmail.example.com\r\nVoice-Message: 2/8 (0/2)\r\n",
            "Messages-Waiting: no\r\n",
            "messages-waiting:YES\nvoice-message: 4/8\nfax-message: 0/0 ( 0 / 0 )\n",
            "Messages-Waiting: yes\r\nVoice-Message: 1/0\r\n\r\nTo: <sip:alice@example.com>\r\nSubject: hi\r\n",
        ] {
            assert_eq!(check(body.as_bytes()), Ok(()), "{body}");
        }
    }

    #[test]
    fn bodies_off_the_grammar_are_refused() {
        let refused = |b: &str| check(b.as_bytes()).is_err();
        assert!(refused(""));
        assert!(refused("Voice-Message: 1/0\r\n"), "status line first");
        assert!(refused("Messages-Waiting: maybe\r\n"));
        assert!(refused("Messages-Waiting: yes\r\nVoice-Message: one/0\r\n"));
        assert!(refused(
            "Messages-Waiting: yes\r\nVoice-Message: 1/0 (1/)\r\n"
        ));
        assert!(refused("Messages-Waiting: yes\r\nSmoke-Signal: 1/0\r\n"));
        assert!(refused(
            "Messages-Waiting: yes\r\nVoice-Message: 1/0\r\nMessage-Account: sip:a@b\r\n"
        ));
        assert!(check(&[0xff, 0xfe]).is_err());
    }

    #[test]
    fn the_newest_publication_is_the_state_and_nothing_means_no() {
        let p = MessageSummary;
        let (old, new) = (Bytes::from_static(b"a"), Bytes::from_static(b"b"));
        let aor = Aor::parse("sip:alice@example.org").unwrap();
        assert_eq!(p.combine(&aor, &[&new, &old]), new);
        assert_eq!(&p.default_body(&aor)[..], b"Messages-Waiting: no\r\n");
        assert_eq!(p.validate(b"x").unwrap_err().status, 400);
    }
}
