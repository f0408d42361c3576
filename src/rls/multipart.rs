//! `multipart/related` bodies (RFC 2387, RFC 2046 §5.1) for RFC 4662 list
//! NOTIFYs: the RLMI document as root part, then one part per resource state.
//!
//! Owns: boundaries and Content-IDs ([`new_boundary`], [`new_content_id`]),
//! part encoding ([`encode_part`], [`closing`], [`body`]) and the
//! Content-Type header value ([`content_type`]).
//! Must not: build the RLMI or PIDF documents (the caller passes them in as
//! [`Part`]s), compress, decide which parts a NOTIFY carries, or choose the
//! [`PartIdStyle`] for a subscriber.
//!
//! Every line ends in CRLF. A body is laid out as
//!
//! ```text
//! --BOUNDARY\r\n                          \
//! Content-Transfer-Encoding: binary\r\n   |
//! Content-ID: <cid>\r\n                   |  encode_part, once per part,
//! Content-Type: type\r\n                  |  root (the RLMI) first
//! \r\n                                    |
//! part body\r\n                           /
//! --BOUNDARY--\r\n                           closing
//! ```
//!
//! so `body(..).len()` is the sum of the [`encode_part`] lengths plus the
//! [`closing`] length, and a caller can size a NOTIFY part by part.
//!
//! The boundary is always a token of letters and digits and is never quoted in
//! the Content-Type: liblinphone 5.1 fails on a quoted boundary, and an
//! unquoted token is valid for every parser (RFC 2046 §5.1.1, RFC 2045 §5.1).
//!
//! A part body is not scanned for the boundary. RFC 2046 §5.1.1 requires that
//! the delimiter never occurs inside a part; [`new_boundary`] draws 24
//! alphanumerics from a cryptographically secure generator (62^24, about
//! 10^43 values), fresh for each body, so neither chance nor a publisher who
//! cannot see the boundary in advance will produce `--BOUNDARY` in a part.
//! Callers must therefore take a new boundary for every body they build.

use bytes::{BufMut, Bytes, BytesMut};
use rand::distr::Alphanumeric;
use rand::Rng;

/// Length of a boundary from [`new_boundary`] (RFC 2046 §5.1.1 allows 1..=70).
const BOUNDARY_LEN: usize = 24;
/// Length of the random local part of a Content-ID from [`new_content_id`].
const CONTENT_ID_LOCAL_LEN: usize = 16;
/// The Content-Transfer-Encoding line of every part.
const TRANSFER_ENCODING_LINE: &str = "Content-Transfer-Encoding: binary\r\n";

/// How a part's Content-ID header is spelled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PartIdStyle {
    /// `Content-ID: <cid>`, as RFC 2392 §2 and RFC 2387 define it.
    Rfc,
    /// `Content-Id: cid`, without angle brackets: liblinphone 5.1 only finds
    /// parts whose id header is written exactly this way.
    // DEVIATION: RFC 2392 §2 requires the angle brackets around the
    // Content-ID value; liblinphone 5.1 does not match parts that have them.
    Linphone,
}

/// One body part of a `multipart/related` body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Part {
    /// The bare Content-ID, without angle brackets (`local@host`), as the
    /// RLMI `cid` attribute and the `start` parameter refer to it.
    pub content_id: String,
    /// The part's Content-Type value, written as given. For the RLMI root use
    /// `application/rlmi+xml;charset="UTF-8"` (as in the NOTIFY liblinphone
    /// accepted); for presence parts `application/pidf+xml`.
    pub content_type: String,
    /// The part's content, written unchanged (`binary` transfer encoding).
    pub body: Bytes,
}

/// A fresh boundary: 24 random alphanumerics, a token, never quoted.
///
/// Take a new one for every body (see the module documentation).
pub fn new_boundary() -> String {
    rand::rng()
        .sample_iter(Alphanumeric)
        .take(BOUNDARY_LEN)
        .map(char::from)
        .collect()
}

/// A fresh Content-ID local part@host.
///
/// The local part is 16 random lowercase letters and digits. `host` is the
/// server's host name or address; characters that cannot appear in an
/// RFC 2822 §3.4.1 domain (anything but letters, digits, `.`, `-`, and the
/// `[`, `]`, `:` of an address literal) are dropped so the id can be written
/// in a header and an XML attribute unchanged. An empty result becomes
/// `localhost`.
pub fn new_content_id(host: &str) -> String {
    let mut rng = rand::rng();
    let mut id: String = (0..CONTENT_ID_LOCAL_LEN)
        .filter_map(|_| char::from_digit(rng.random_range(0..36), 36))
        .collect();
    id.push('@');
    let before = id.len();
    id.extend(
        host.chars()
            .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '[' | ']' | ':')),
    );
    if id.len() == before {
        id.push_str("localhost");
    }
    id
}

/// Bytes of one encoded part: `"--boundary\r\n"` + part headers + `"\r\n"` +
/// body + `"\r\n"`.
///
/// The headers are, in this order, `Content-Transfer-Encoding: binary`, the id
/// header in `style`, and `Content-Type`. The trailing CRLF belongs to the
/// delimiter that follows (RFC 2046 §5.1.1), which is why the next part or
/// [`closing`] can start directly with `--`.
pub fn encode_part(boundary: &str, part: &Part, style: PartIdStyle) -> Vec<u8> {
    let mut out = Vec::with_capacity(encoded_part_len(boundary, part, style));
    write_part(&mut out, boundary, part, style);
    out
}

/// Bytes closing the body: `"--boundary--\r\n"`.
pub fn closing(boundary: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(boundary.len() + 6);
    write_closing(&mut out, boundary);
    out
}

/// The body: root part (the RLMI) first, then the other parts, then closing.
///
/// RFC 2387 §3 and RFC 4662 §5 put the root first; [`content_type`] names it
/// again in `start`. The length equals the sum of the [`encode_part`]
/// lengths of `root` and `parts` plus the [`closing`] length.
pub fn body(boundary: &str, root: &Part, parts: &[Part], style: PartIdStyle) -> Bytes {
    let len = std::iter::once(root)
        .chain(parts)
        .map(|p| encoded_part_len(boundary, p, style))
        .sum::<usize>()
        + closing_len(boundary);
    let mut out = BytesMut::with_capacity(len);
    for part in std::iter::once(root).chain(parts) {
        write_part(&mut out, boundary, part, style);
    }
    write_closing(&mut out, boundary);
    out.freeze()
}

/// The Content-Type header value:
/// `multipart/related;type="application/rlmi+xml";start="<cid>";boundary=TOKEN`.
///
/// `root_content_type` is the root part's media type; any parameters on it
/// (`;charset=...`) are dropped, since RFC 2387 §3.1 `type` is a bare media
/// type: pass [`super::rlmi::RLMI_CONTENT_TYPE`]. `root_cid` is the root
/// part's bare Content-ID; `start` always carries it in angle brackets
/// (RFC 2387 §3.2), in both [`PartIdStyle`]s. `boundary` comes from
/// [`new_boundary`] and is written unquoted.
pub fn content_type(boundary: &str, root_content_type: &str, root_cid: &str) -> String {
    let media_type = root_content_type
        .split(';')
        .next()
        .unwrap_or(root_content_type)
        .trim();
    let mut out = String::with_capacity(64 + media_type.len() + root_cid.len() + boundary.len());
    out.push_str("multipart/related;type=\"");
    push_quoted_content(&mut out, media_type);
    // RFC 2387 §3.2: start is the root's Content-ID, angle brackets included.
    out.push_str("\";start=\"<");
    push_quoted_content(&mut out, root_cid);
    // Unquoted token: liblinphone 5.1 does not parse a quoted boundary.
    out.push_str(">\";boundary=");
    out.push_str(boundary);
    out
}

/// Appends `value` as the inside of an RFC 822 quoted-string, escaping `"`
/// and `\` as quoted-pairs and dropping CR and LF (no header folding here).
fn push_quoted_content(out: &mut String, value: &str) {
    for c in value.chars() {
        match c {
            '"' | '\\' => {
                out.push('\\');
                out.push(c);
            }
            '\r' | '\n' => {}
            c => out.push(c),
        }
    }
}

/// The id header line's name and brackets for `style`.
fn id_header(style: PartIdStyle) -> (&'static str, &'static str, &'static str) {
    match style {
        // RFC 2392 §2: content-id = "Content-ID" ":" "<" addr-spec ">".
        PartIdStyle::Rfc => ("Content-ID: ", "<", ">"),
        PartIdStyle::Linphone => ("Content-Id: ", "", ""),
    }
}

/// Length of [`encode_part`]'s output without building it.
fn encoded_part_len(boundary: &str, part: &Part, style: PartIdStyle) -> usize {
    let (name, open, close) = id_header(style);
    (2 + boundary.len() + 2)
        + TRANSFER_ENCODING_LINE.len()
        + (name.len() + open.len() + part.content_id.len() + close.len() + 2)
        + ("Content-Type: ".len() + part.content_type.len() + 2)
        + 2
        + part.body.len()
        + 2
}

/// Length of [`closing`]'s output.
fn closing_len(boundary: &str) -> usize {
    2 + boundary.len() + 4
}

/// Writes one encoded part (see [`encode_part`]).
fn write_part<B: BufMut>(out: &mut B, boundary: &str, part: &Part, style: PartIdStyle) {
    let (name, open, close) = id_header(style);
    // RFC 2046 §5.1.1: dash-boundary = "--" boundary, then CRLF and headers.
    out.put_slice(b"--");
    out.put_slice(boundary.as_bytes());
    out.put_slice(b"\r\n");
    out.put_slice(TRANSFER_ENCODING_LINE.as_bytes());
    out.put_slice(name.as_bytes());
    out.put_slice(open.as_bytes());
    out.put_slice(part.content_id.as_bytes());
    out.put_slice(close.as_bytes());
    out.put_slice(b"\r\n");
    out.put_slice(b"Content-Type: ");
    out.put_slice(part.content_type.as_bytes());
    out.put_slice(b"\r\n");
    // RFC 2046 §5.1.1: an empty line ends the part headers.
    out.put_slice(b"\r\n");
    out.put_slice(&part.body);
    // RFC 2046 §5.1.1: the CRLF before the next "--" belongs to the delimiter.
    out.put_slice(b"\r\n");
}

/// Writes the close delimiter (see [`closing`]).
fn write_closing<B: BufMut>(out: &mut B, boundary: &str) {
    // RFC 2046 §5.1.1: close-delimiter = delimiter "--"; no epilogue follows.
    out.put_slice(b"--");
    out.put_slice(boundary.as_bytes());
    out.put_slice(b"--\r\n");
}

#[cfg(test)]
mod tests {
    use super::super::rlmi::{self, Instance, InstanceState, Resource, RLMI_CONTENT_TYPE};
    use super::*;

    /// The RLMI root part's Content-Type, as in the accepted capture.
    const RLMI_PART_TYPE: &str = "application/rlmi+xml;charset=\"UTF-8\"";
    const PIDF_TYPE: &str = "application/pidf+xml";

    /// The inflated body of a list NOTIFY that liblinphone 5.1 accepted
    /// (client-captures/liblinphone/rls-eventlist-linphone-style-OK,
    /// 0007_out_udp_NOTIFY.sip.body-decoded).
    const CAPTURE_BODY: &str = concat!(
        "--bndz2w537ci0vl6\r\n",
        "Content-Transfer-Encoding: binary\r\n",
        "Content-Id: rlmi@capture\r\n",
        "Content-Type: application/rlmi+xml;charset=\"UTF-8\"\r\n",
        "\r\n",
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\r\n",
        "<list xmlns=\"urn:ietf:params:xml:ns:rlmi\" uri=\"sip:friends@example.org\" version=\"0\" fullState=\"true\">\r\n",
        " <resource uri=\"sip:alice@example.org\"><instance id=\"i0\" state=\"active\" cid=\"quwa720@capture\"/></resource>\r\n",
        " <resource uri=\"sip:carol@example.org\"><instance id=\"i1\" state=\"active\" cid=\"5dk8bz1@capture\"/></resource>\r\n",
        "</list>\r\n",
        "\r\n",
        "--bndz2w537ci0vl6\r\n",
        "Content-Transfer-Encoding: binary\r\n",
        "Content-Id: quwa720@capture\r\n",
        "Content-Type: application/pidf+xml\r\n",
        "\r\n",
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\r\n",
        "<presence xmlns=\"urn:ietf:params:xml:ns:pidf\" xmlns:dm=\"urn:ietf:params:xml:ns:pidf:data-model\" xmlns:rpid=\"urn:ietf:params:xml:ns:pidf:rpid\" entity=\"sip:alice@example.org\">\r\n",
        " <tuple id=\"t1\">\r\n",
        "  <status><basic>open</basic></status>\r\n",
        "  <contact>sip:alice@example.org</contact>\r\n",
        " </tuple>\r\n",
        "</presence>\r\n",
        "\r\n",
        "--bndz2w537ci0vl6\r\n",
        "Content-Transfer-Encoding: binary\r\n",
        "Content-Id: 5dk8bz1@capture\r\n",
        "Content-Type: application/pidf+xml\r\n",
        "\r\n",
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\r\n",
        "<presence xmlns=\"urn:ietf:params:xml:ns:pidf\" xmlns:dm=\"urn:ietf:params:xml:ns:pidf:data-model\" xmlns:rpid=\"urn:ietf:params:xml:ns:pidf:rpid\" entity=\"sip:carol@example.org\">\r\n",
        " <tuple id=\"t1\">\r\n",
        "  <status><basic>open</basic></status>\r\n",
        "  <contact>sip:carol@example.org</contact>\r\n",
        " </tuple>\r\n",
        "</presence>\r\n",
        "\r\n",
        "--bndz2w537ci0vl6--\r\n",
    );

    /// The capture's NOTIFY Content-Type header value.
    const CAPTURE_CONTENT_TYPE: &str = "multipart/related;type=\"application/rlmi+xml\";start=\"<rlmi@capture>\";boundary=bndz2w537ci0vl6";

    fn part(cid: &str, content_type: &str, body: &str) -> Part {
        Part {
            content_id: cid.to_owned(),
            content_type: content_type.to_owned(),
            body: Bytes::copy_from_slice(body.as_bytes()),
        }
    }

    fn pidf(entity: &str) -> String {
        format!(
            concat!(
                "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\r\n",
                "<presence xmlns=\"urn:ietf:params:xml:ns:pidf\" xmlns:dm=\"urn:ietf:params:xml:ns:pidf:data-model\" xmlns:rpid=\"urn:ietf:params:xml:ns:pidf:rpid\" entity=\"{0}\">\r\n",
                " <tuple id=\"t1\">\r\n",
                "  <status><basic>open</basic></status>\r\n",
                "  <contact>{0}</contact>\r\n",
                " </tuple>\r\n",
                "</presence>\r\n",
            ),
            entity
        )
    }

    /// A two-member list body built the way the list subscription will:
    /// RLMI root with two resources, then two PIDF parts.
    fn list_body(
        boundary: &str,
        root_cid: &str,
        member_cids: [&str; 2],
        style: PartIdStyle,
    ) -> Bytes {
        let members = ["sip:alice@example.org", "sip:carol@example.org"];
        let fragments: Vec<String> = members
            .iter()
            .zip(member_cids)
            .enumerate()
            .map(|(i, (uri, cid))| {
                rlmi::resource_xml(&Resource {
                    uri: (*uri).to_owned(),
                    name: None,
                    instances: vec![Instance {
                        id: format!("i{i}"),
                        state: InstanceState::Active,
                        cid: Some(cid.to_owned()),
                    }],
                })
            })
            .collect();
        let doc = rlmi::document("sip:friends@example.org", 0, true, &fragments);
        let root = part(root_cid, RLMI_PART_TYPE, &doc);
        let parts: Vec<Part> = members
            .iter()
            .zip(member_cids)
            .map(|(uri, cid)| part(cid, PIDF_TYPE, &pidf(uri)))
            .collect();
        body(boundary, &root, &parts, style)
    }

    /// Each part's header lines, split at the delimiters of `boundary`.
    fn part_headers(body: &str, boundary: &str) -> Vec<Vec<String>> {
        let delimiter = format!("--{boundary}\r\n");
        body.split(delimiter.as_str())
            .skip(1)
            .map(|part| {
                part.split("\r\n\r\n")
                    .next()
                    .unwrap_or_default()
                    .split("\r\n")
                    .map(str::to_owned)
                    .collect()
            })
            .collect()
    }

    fn header_names(headers: &[Vec<String>]) -> Vec<Vec<String>> {
        headers
            .iter()
            .map(|part| {
                part.iter()
                    .map(|line| line.split(':').next().unwrap_or_default().to_owned())
                    .collect()
            })
            .collect()
    }

    #[test]
    fn rfc_style_writes_content_id_in_angle_brackets() {
        let encoded = encode_part("B0", &part("x1@h", PIDF_TYPE, "<p/>"), PartIdStyle::Rfc);
        assert_eq!(
            encoded,
            concat!(
                "--B0\r\n",
                "Content-Transfer-Encoding: binary\r\n",
                "Content-ID: <x1@h>\r\n",
                "Content-Type: application/pidf+xml\r\n",
                "\r\n",
                "<p/>\r\n",
            )
            .as_bytes()
        );
    }

    #[test]
    fn linphone_style_writes_content_id_bare_with_lowercase_d() {
        let encoded = encode_part(
            "B0",
            &part("x1@h", RLMI_PART_TYPE, "<l/>"),
            PartIdStyle::Linphone,
        );
        assert_eq!(
            encoded,
            concat!(
                "--B0\r\n",
                "Content-Transfer-Encoding: binary\r\n",
                "Content-Id: x1@h\r\n",
                "Content-Type: application/rlmi+xml;charset=\"UTF-8\"\r\n",
                "\r\n",
                "<l/>\r\n",
            )
            .as_bytes()
        );
    }

    #[test]
    fn closing_is_the_close_delimiter_and_a_line_end() {
        assert_eq!(closing("abc123"), b"--abc123--\r\n");
    }

    #[test]
    fn a_boundary_is_24_alphanumerics_and_differs_between_calls() {
        let a = new_boundary();
        let b = new_boundary();
        for boundary in [&a, &b] {
            assert_eq!(boundary.len(), 24);
            assert!(boundary.chars().all(|c| c.is_ascii_alphanumeric()));
        }
        assert_ne!(a, b);
    }

    #[test]
    fn a_content_id_is_a_random_local_part_at_the_host() {
        let a = new_content_id("presence.example.org");
        let b = new_content_id("presence.example.org");
        assert_ne!(a, b);
        for id in [&a, &b] {
            let (local, host) = id.split_once('@').unwrap_or_default();
            assert_eq!(host, "presence.example.org");
            assert_eq!(local.len(), 16);
            assert!(local
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit()));
        }
    }

    #[test]
    fn a_content_id_keeps_only_domain_characters_of_the_host() {
        let id = new_content_id("[::1]");
        assert!(id.ends_with("@[::1]"));
        let id = new_content_id("h<o>st\r\n\"x\" y");
        assert!(id.ends_with("@hostxy"), "{id}");
        let id = new_content_id(">\r\n");
        assert!(id.ends_with("@localhost"), "{id}");
    }

    #[test]
    fn body_length_is_the_sum_of_part_lengths_plus_closing() {
        let boundary = new_boundary();
        let root = part("r@h", RLMI_PART_TYPE, "<list/>");
        let parts = vec![
            part("a@h", PIDF_TYPE, "alice"),
            part("b@h", PIDF_TYPE, ""),
            part("c@h", "application/octet-stream", "\r\n--x\r\n"),
        ];
        for style in [PartIdStyle::Rfc, PartIdStyle::Linphone] {
            let built = body(&boundary, &root, &parts, style);
            let expected: usize = std::iter::once(&root)
                .chain(&parts)
                .map(|p| encode_part(&boundary, p, style).len())
                .sum::<usize>()
                + closing(&boundary).len();
            assert_eq!(built.len(), expected);
        }
    }

    #[test]
    fn body_is_the_root_then_the_parts_then_the_closing() {
        let boundary = new_boundary();
        let root = part("r@h", RLMI_PART_TYPE, "<list/>");
        let parts = vec![part("a@h", PIDF_TYPE, "A"), part("b@h", PIDF_TYPE, "B")];
        let built = body(&boundary, &root, &parts, PartIdStyle::Rfc);
        let mut expected = encode_part(&boundary, &root, PartIdStyle::Rfc);
        for p in &parts {
            expected.extend(encode_part(&boundary, p, PartIdStyle::Rfc));
        }
        expected.extend(closing(&boundary));
        assert_eq!(&built[..], &expected[..]);
        assert!(built.starts_with(format!("--{boundary}\r\n").as_bytes()));
        assert!(built.ends_with(&closing(&boundary)));
    }

    #[test]
    fn a_body_with_only_the_root_part_is_well_formed() {
        let built = body(
            "Q1",
            &part("r@h", RLMI_PART_TYPE, "x"),
            &[],
            PartIdStyle::Rfc,
        );
        assert_eq!(
            &built[..],
            concat!(
                "--Q1\r\n",
                "Content-Transfer-Encoding: binary\r\n",
                "Content-ID: <r@h>\r\n",
                "Content-Type: application/rlmi+xml;charset=\"UTF-8\"\r\n",
                "\r\n",
                "x\r\n",
                "--Q1--\r\n",
            )
            .as_bytes()
        );
    }

    #[test]
    fn content_type_names_the_root_with_brackets_and_an_unquoted_boundary() {
        assert_eq!(
            content_type("Ab12", RLMI_CONTENT_TYPE, "r1@h"),
            "multipart/related;type=\"application/rlmi+xml\";start=\"<r1@h>\";boundary=Ab12"
        );
    }

    #[test]
    fn content_type_drops_parameters_of_the_root_type() {
        assert_eq!(
            content_type("Ab12", RLMI_PART_TYPE, "r1@h"),
            "multipart/related;type=\"application/rlmi+xml\";start=\"<r1@h>\";boundary=Ab12"
        );
    }

    #[test]
    fn content_type_matches_the_accepted_liblinphone_capture() {
        assert_eq!(
            content_type("bndz2w537ci0vl6", RLMI_CONTENT_TYPE, "rlmi@capture"),
            CAPTURE_CONTENT_TYPE
        );
    }

    #[test]
    fn a_linphone_style_list_body_reproduces_the_accepted_capture_byte_for_byte() {
        let built = list_body(
            "bndz2w537ci0vl6",
            "rlmi@capture",
            ["quwa720@capture", "5dk8bz1@capture"],
            PartIdStyle::Linphone,
        );
        assert_eq!(String::from_utf8_lossy(&built), CAPTURE_BODY);
    }

    #[test]
    fn a_linphone_style_list_body_has_the_captures_part_headers_in_order() {
        let boundary = new_boundary();
        let root_cid = new_content_id("example.org");
        let member_cids = [new_content_id("example.org"), new_content_id("example.org")];
        let built = list_body(
            &boundary,
            &root_cid,
            [&member_cids[0], &member_cids[1]],
            PartIdStyle::Linphone,
        );
        let built = String::from_utf8_lossy(&built);

        let ours = part_headers(&built, &boundary);
        let capture = part_headers(CAPTURE_BODY, "bndz2w537ci0vl6");
        assert_eq!(ours.len(), 3);
        assert_eq!(header_names(&ours), header_names(&capture));
        // Same values apart from the ids, which are fresh.
        for (our_part, capture_part) in ours.iter().zip(&capture) {
            for (ours_line, capture_line) in our_part.iter().zip(capture_part) {
                if !capture_line.starts_with("Content-Id:") {
                    assert_eq!(ours_line, capture_line);
                }
            }
        }
        let ids: Vec<&str> = ours
            .iter()
            .filter_map(|headers| headers.get(1))
            .filter_map(|line| line.strip_prefix("Content-Id: "))
            .collect();
        assert_eq!(
            ids,
            [
                root_cid.as_str(),
                member_cids[0].as_str(),
                member_cids[1].as_str()
            ]
        );
        // The RLMI refers to the member parts by their bare ids.
        for cid in &member_cids {
            assert!(built.contains(&format!(" cid=\"{cid}\"/>")));
        }
        assert!(built.starts_with(&format!("--{boundary}\r\n")));
        assert!(built.ends_with(&format!("\r\n--{boundary}--\r\n")));
    }

    #[test]
    fn an_rfc_style_list_body_differs_from_linphone_style_only_in_the_id_lines() {
        let cids = ["a@h", "b@h"];
        let rfc = list_body("Zz9", "r@h", cids, PartIdStyle::Rfc);
        let linphone = list_body("Zz9", "r@h", cids, PartIdStyle::Linphone);
        let rfc = String::from_utf8_lossy(&rfc);
        let linphone = String::from_utf8_lossy(&linphone);
        let rfc_lines: Vec<&str> = rfc.split("\r\n").collect();
        let linphone_lines: Vec<&str> = linphone.split("\r\n").collect();
        assert_eq!(rfc_lines.len(), linphone_lines.len());
        let differing: Vec<(&str, &str)> = rfc_lines
            .iter()
            .zip(&linphone_lines)
            .filter(|(a, b)| a != b)
            .map(|(a, b)| (*a, *b))
            .collect();
        assert_eq!(
            differing,
            [
                ("Content-ID: <r@h>", "Content-Id: r@h"),
                ("Content-ID: <a@h>", "Content-Id: a@h"),
                ("Content-ID: <b@h>", "Content-Id: b@h"),
            ]
        );
    }
}
