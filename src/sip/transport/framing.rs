//! Stream framing (RFC 3261 §18.3): cut a TCP byte stream into messages by Content-Length.
//!
//! Owns: the `SipStreamCodec` decoder: keep-alive pings (RFC 5626 §4.4.1 double CRLF), stray
//! CRLFs between messages (RFC 3261 §7.5), the size limit, and the mandatory Content-Length.
//! Must not: parse anything beyond the head lines needed to find Content-Length.

use bytes::{Bytes, BytesMut};
use tokio_util::codec::Decoder;

use crate::sip::wire;

/// One unit cut from the stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frame {
    /// A complete message, head and body.
    Message(Bytes),
    /// A double-CRLF keep-alive ping; answer with a single CRLF.
    Ping,
}

/// Why the stream cannot be framed any further; the connection closes after the answer.
#[derive(Debug, thiserror::Error)]
pub enum FramingError {
    /// The message exceeds the limit; the head, when complete, lets the server answer 513.
    #[error("message larger than the limit")]
    Oversize(Option<Bytes>),
    /// The head has no Content-Length (mandatory on streams) or an invalid one.
    #[error("missing or invalid Content-Length")]
    MissingContentLength(Bytes),
    /// The socket failed.
    #[error("socket error: {0}")]
    Io(#[from] std::io::Error),
}

/// Decoder cutting SIP messages out of a stream.
#[derive(Debug, Clone)]
pub struct SipStreamCodec {
    max_message_bytes: usize,
}

impl SipStreamCodec {
    /// A codec that refuses messages above `max_message_bytes` (head and body).
    pub fn new(max_message_bytes: usize) -> Self {
        Self { max_message_bytes }
    }
}

impl Decoder for SipStreamCodec {
    type Item = Frame;
    type Error = FramingError;

    fn decode(&mut self, buf: &mut BytesMut) -> Result<Option<Frame>, FramingError> {
        // RFC 5626 §4.4.1: CRLFCRLF is a ping. RFC 3261 §7.5: CRLFs before a start line are
        // ignored; a single CRLF is also how a client answers our pong.
        loop {
            if buf.starts_with(b"\r\n\r\n") {
                let _ = buf.split_to(4);
                return Ok(Some(Frame::Ping));
            }
            if buf.starts_with(b"\r\n") {
                if buf.len() < 4 && b"\r\n\r\n".starts_with(&buf[..]) {
                    return Ok(None); // maybe the start of a ping
                }
                let _ = buf.split_to(2);
                continue;
            }
            break;
        }
        if buf.is_empty() {
            return Ok(None);
        }
        let Some(head_len) = wire::head_len(buf) else {
            if buf.len() > self.max_message_bytes {
                return Err(FramingError::Oversize(None));
            }
            return Ok(None);
        };
        let head = &buf[..head_len];
        if head_len > self.max_message_bytes {
            return Err(FramingError::Oversize(Some(Bytes::copy_from_slice(head))));
        }
        let body_len = match wire::scan_content_length(head) {
            Ok(Some(n)) => n,
            _ => {
                return Err(FramingError::MissingContentLength(Bytes::copy_from_slice(
                    head,
                )))
            }
        };
        let total = head_len.saturating_add(body_len);
        if total > self.max_message_bytes {
            return Err(FramingError::Oversize(Some(Bytes::copy_from_slice(head))));
        }
        if buf.len() < total {
            buf.reserve(total - buf.len());
            return Ok(None);
        }
        Ok(Some(Frame::Message(buf.split_to(total).freeze())))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn codec() -> SipStreamCodec {
        SipStreamCodec::new(200)
    }

    #[test]
    fn pipelined_messages_are_cut_apart() {
        let mut buf = BytesMut::from(
            &b"A sip:x SIP/2.0\r\nl: 2\r\n\r\nhiB sip:x SIP/2.0\r\nContent-Length: 0\r\n\r\n"[..],
        );
        let mut c = codec();
        assert!(
            matches!(c.decode(&mut buf).unwrap(), Some(Frame::Message(m)) if m.ends_with(b"hi"))
        );
        assert!(
            matches!(c.decode(&mut buf).unwrap(), Some(Frame::Message(m)) if m.starts_with(b"B "))
        );
        assert_eq!(c.decode(&mut buf).unwrap(), None);
    }

    #[test]
    fn fragments_wait_for_the_whole_message() {
        let whole = b"A sip:x SIP/2.0\r\nContent-Length: 3\r\n\r\nabc";
        let mut c = codec();
        let mut buf = BytesMut::new();
        for (i, byte) in whole.iter().enumerate() {
            buf.extend_from_slice(&[*byte]);
            let got = c.decode(&mut buf).unwrap();
            assert_eq!(got.is_some(), i == whole.len() - 1);
        }
    }

    #[test]
    fn double_crlf_is_a_ping_and_single_crlf_is_skipped() {
        let mut c = codec();
        let mut buf = BytesMut::from(&b"\r\n\r\n"[..]);
        assert_eq!(c.decode(&mut buf).unwrap(), Some(Frame::Ping));
        let mut buf = BytesMut::from(&b"\r\nA sip:x SIP/2.0\r\nl: 0\r\n\r\n"[..]);
        assert!(matches!(
            c.decode(&mut buf).unwrap(),
            Some(Frame::Message(_))
        ));
    }

    #[test]
    fn missing_content_length_and_oversize_are_errors() {
        let mut buf = BytesMut::from(&b"A sip:x SIP/2.0\r\nVia: x\r\n\r\n"[..]);
        assert!(matches!(
            codec().decode(&mut buf),
            Err(FramingError::MissingContentLength(_))
        ));
        let mut buf = BytesMut::from(&b"A sip:x SIP/2.0\r\nl: 500\r\n\r\n"[..]);
        assert!(matches!(
            codec().decode(&mut buf),
            Err(FramingError::Oversize(Some(_)))
        ));
        let mut buf = BytesMut::from(&[b'x'; 300][..]);
        assert!(matches!(
            codec().decode(&mut buf),
            Err(FramingError::Oversize(None))
        ));
    }
}
