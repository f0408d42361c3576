//! `Content-Encoding: deflate` bodies (RFC 3261 §20.12), as liblinphone sends
//! resource lists and expects NOTIFY bodies.
//!
//! Owns: [`inflate`], bounded against decompression bombs by [`InflateLimits`],
//! and [`deflate`]. Must not: look at SIP headers (the caller decides that the
//! body is deflate-encoded) or interpret the decoded bytes.
//!
//! RFC 9110 §8.4.1.2: the "deflate" coding is the zlib format (RFC 1950)
//! wrapping a deflate stream (RFC 1951). Some senders put the raw RFC 1951
//! stream on the wire instead, so [`inflate`] accepts both.

use std::io::{self, Read, Write};

use flate2::read::{DeflateDecoder, ZlibDecoder};
use flate2::write::ZlibEncoder;
use flate2::Compression;

/// How much output [`inflate`] may produce.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InflateLimits {
    /// Most bytes of decoded output accepted.
    pub max_output: usize,
    /// Most bytes of decoded output accepted per byte of encoded input.
    pub max_ratio: usize,
}

/// Why a deflate-encoded body was not decoded.
#[derive(Debug, thiserror::Error)]
pub enum InflateError {
    /// The decoded body is larger than [`InflateLimits::max_output`].
    #[error("inflated body exceeds the limit of {limit} bytes")]
    TooLarge {
        /// The configured limit.
        limit: usize,
    },
    /// The decoded body is more than [`InflateLimits::max_ratio`] times the encoded one.
    #[error("inflated body is more than {ratio} times its encoded size")]
    RatioExceeded {
        /// The configured ratio.
        ratio: usize,
    },
    /// The body is not a valid zlib or raw deflate stream.
    #[error("corrupt deflate body")]
    Corrupt(#[source] io::Error),
}

/// Decodes a zlib (RFC 1950) or raw deflate (RFC 1951) body within `limits`.
///
/// Output is read through a [`Read::take`] in fixed chunks, never sized from
/// the input, and decoding stops as soon as the output passes
/// `limits.max_output` or `body.len() * limits.max_ratio` bytes, whichever is
/// smaller (that limit is the error reported). An empty body decodes to
/// nothing; bytes after the end of a zlib stream are ignored.
///
/// # Errors
///
/// [`InflateError::TooLarge`] or [`InflateError::RatioExceeded`] when a limit
/// is passed, [`InflateError::Corrupt`] when the stream cannot be decoded.
pub fn inflate(body: &[u8], limits: &InflateLimits) -> Result<Vec<u8>, InflateError> {
    if body.is_empty() {
        return Ok(Vec::new());
    }
    if has_zlib_header(body) {
        read_bounded(ZlibDecoder::new(body), body.len(), limits)
    } else {
        read_bounded(DeflateDecoder::new(body), body.len(), limits)
    }
}

/// Encodes `body` in the zlib format (RFC 1950) at the default compression level.
pub fn deflate(body: &[u8]) -> Vec<u8> {
    // Unreachable error branch: writing into a Vec<u8> never fails, and flate2
    // reports a compressor error only for invalid parameters, which the default
    // level is not. Should it ever happen, stored blocks are still a valid zlib
    // encoding of `body`, so the caller's Content-Encoding stays truthful.
    zlib_compress(body).unwrap_or_else(|_| zlib_stored(body))
}

/// Size of each read from the decoder.
const CHUNK: u64 = 8 * 1024;

/// RFC 1950 §2.2: CM (low nibble of CMF) is 8 for deflate, CINFO (high nibble)
/// is at most 7, and CMF * 256 + FLG is a multiple of 31.
fn has_zlib_header(body: &[u8]) -> bool {
    match body {
        [cmf, flg, ..] => {
            cmf & 0x0f == 8 && cmf >> 4 <= 7 && (u16::from(*cmf) * 256 + u16::from(*flg)) % 31 == 0
        }
        _ => false,
    }
}

fn read_bounded(
    decoder: impl Read,
    input_len: usize,
    limits: &InflateLimits,
) -> Result<Vec<u8>, InflateError> {
    let max_ratio_output = input_len.saturating_mul(limits.max_ratio);
    let cap = limits.max_output.min(max_ratio_output);
    // One byte past the cap is enough to know the cap was passed.
    let mut reader = decoder.take(u64::try_from(cap).unwrap_or(u64::MAX).saturating_add(1));
    let mut out = Vec::new();
    loop {
        let read = (&mut reader)
            .take(CHUNK)
            .read_to_end(&mut out)
            .map_err(InflateError::Corrupt)?;
        if out.len() > limits.max_output {
            return Err(InflateError::TooLarge {
                limit: limits.max_output,
            });
        }
        if out.len() > max_ratio_output {
            return Err(InflateError::RatioExceeded {
                ratio: limits.max_ratio,
            });
        }
        if read == 0 {
            return Ok(out);
        }
    }
}

fn zlib_compress(body: &[u8]) -> io::Result<Vec<u8>> {
    let mut encoder = ZlibEncoder::new(Vec::new(), Compression::default());
    encoder.write_all(body)?;
    encoder.finish()
}

/// `body` as a zlib stream of stored (uncompressed) deflate blocks.
fn zlib_stored(body: &[u8]) -> Vec<u8> {
    // RFC 1950 §2.2: CMF 0x78 (deflate, 32 KiB window), FLG 0x01 (check bits, level 0).
    let mut out = vec![0x78, 0x01];
    let mut blocks = body.chunks(usize::from(u16::MAX)).peekable();
    if blocks.peek().is_none() {
        out.extend_from_slice(&[0x01, 0x00, 0x00, 0xff, 0xff]); // one empty final block
    }
    while let Some(block) = blocks.next() {
        // RFC 1951 §3.2.4: BFINAL bit, BTYPE 00, then LEN and its complement NLEN.
        out.push(u8::from(blocks.peek().is_none()));
        let len = u16::try_from(block.len()).unwrap_or(u16::MAX);
        out.extend_from_slice(&len.to_le_bytes());
        out.extend_from_slice(&(!len).to_le_bytes());
        out.extend_from_slice(block);
    }
    // RFC 1950 §2.2: the Adler-32 of the uncompressed data, most significant byte first.
    let (a, b) = body.iter().fold((1u32, 0u32), |(a, b), &byte| {
        let a = (a + u32::from(byte)) % 65521;
        (a, (b + a) % 65521)
    });
    out.extend_from_slice(&((b << 16) | a).to_be_bytes());
    out
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    const LIMITS: InflateLimits = InflateLimits {
        max_output: 64 * 1024,
        max_ratio: 100,
    };

    fn zeros_bomb() -> Vec<u8> {
        deflate(&vec![0; 10 * 1024 * 1024])
    }

    #[test]
    fn deflate_then_inflate_round_trips() {
        let body = b"<resource-lists/> and some more text text text".repeat(20);
        let encoded = deflate(&body);
        assert!(has_zlib_header(&encoded));
        assert!(encoded.len() < body.len());
        assert_eq!(inflate(&encoded, &LIMITS).unwrap(), body);
        assert_eq!(inflate(&deflate(b""), &LIMITS).unwrap(), b"");
    }

    #[test]
    fn an_empty_body_inflates_to_nothing() {
        assert_eq!(inflate(b"", &LIMITS).unwrap(), b"");
    }

    #[test]
    fn raw_deflate_without_the_zlib_wrapper_is_accepted() {
        let mut encoder = flate2::write::DeflateEncoder::new(Vec::new(), Compression::default());
        encoder.write_all(b"raw rfc 1951 stream").unwrap();
        let raw = encoder.finish().unwrap();
        assert!(!has_zlib_header(&raw));
        assert_eq!(inflate(&raw, &LIMITS).unwrap(), b"raw rfc 1951 stream");
    }

    #[test]
    fn bytes_after_the_zlib_stream_are_ignored() {
        let mut encoded = deflate(b"payload");
        encoded.extend_from_slice(b"\r\ntrailing garbage");
        assert_eq!(inflate(&encoded, &LIMITS).unwrap(), b"payload");
    }

    #[test]
    fn a_zeros_bomb_is_refused_by_ratio_before_reaching_max_output() {
        let bomb = zeros_bomb();
        let limits = InflateLimits {
            max_output: 1 << 20,
            max_ratio: 100,
        };
        assert!(bomb.len() * 100 < 1 << 20, "the ratio must bind first");
        let result = inflate(&bomb, &limits);
        assert!(matches!(
            result,
            Err(InflateError::RatioExceeded { ratio: 100 })
        ));
    }

    #[test]
    fn a_zeros_bomb_is_refused_by_size_when_the_ratio_is_huge() {
        let limits = InflateLimits {
            max_output: 1 << 20,
            max_ratio: usize::MAX,
        };
        let result = inflate(&zeros_bomb(), &limits);
        assert!(matches!(
            result,
            Err(InflateError::TooLarge { limit: 1_048_576 })
        ));
    }

    #[test]
    fn output_exactly_at_the_limits_is_accepted() {
        let body = vec![b'a'; 4096];
        let encoded = deflate(&body);
        let exact = InflateLimits {
            max_output: 4096,
            max_ratio: 4096_usize.div_ceil(encoded.len()),
        };
        assert_eq!(inflate(&encoded, &exact).unwrap(), body);
        let short = InflateLimits {
            max_output: 4095,
            ..exact
        };
        assert!(matches!(
            inflate(&encoded, &short),
            Err(InflateError::TooLarge { limit: 4095 })
        ));
    }

    #[test]
    fn corrupt_or_truncated_input_is_refused() {
        let encoded = deflate(&b"truncated in the middle".repeat(10));
        let truncated = &encoded[..encoded.len() / 2];
        // Blocks of the reserved type 11 (RFC 1951 §3.2.3), after a zlib header or raw.
        for body in [
            &[0x78, 0x9c, 0xff, 0xff, 0xff][..],
            &[0xff, 0x00, 0x12][..],
            truncated,
        ] {
            let result = inflate(body, &LIMITS);
            assert!(matches!(result, Err(InflateError::Corrupt(_))), "{body:?}");
        }
    }

    #[test]
    fn the_stored_block_fallback_is_a_valid_zlib_stream() {
        let body: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
        let limits = InflateLimits {
            max_output: 1 << 20,
            max_ratio: 2,
        };
        for input in [&body[..], &b""[..], &b"x"[..]] {
            let stored = zlib_stored(input);
            assert!(has_zlib_header(&stored));
            assert_eq!(inflate(&stored, &limits).unwrap(), input);
        }
    }
}
