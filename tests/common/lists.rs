//! Reading what list subscriptions receive: deflate, a small MIME reader for multipart
//! NOTIFYs and their RLMI, and schema validation with xmllint.

use std::io::{Read, Write};
use std::process::Command;

use super::{fixture, in_dialog_subscribe_request, RequestBuilder, SipMsg, Ua};

/// The list URI request-contained lists are sent to.
pub const LIST: &str = "sip:friends@example.org";

pub fn deflate(bytes: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(bytes).unwrap();
    e.finish().unwrap()
}

pub fn inflate(bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    flate2::read::ZlibDecoder::new(bytes)
        .read_to_end(&mut out)
        .unwrap();
    out
}

/// One part of a multipart body.
#[derive(Debug)]
pub struct MimePart {
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl MimePart {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// A list NOTIFY as the test reads it (its own small MIME reader).
#[derive(Debug)]
pub struct ListNotify {
    pub msg: SipMsg,
    pub boundary: String,
    pub parts: Vec<MimePart>,
}

impl ListNotify {
    pub fn read(msg: SipMsg) -> Self {
        let ct = msg.header("Content-Type").expect("Content-Type").to_owned();
        assert!(ct.starts_with("multipart/related;"), "{ct}");
        let boundary = ct
            .split(';')
            .find_map(|p| p.trim().strip_prefix("boundary="))
            .expect("boundary")
            .to_owned();
        let raw = match msg.header("Content-Encoding") {
            Some(e) if e.eq_ignore_ascii_case("deflate") => inflate(&msg.body),
            _ => msg.body.clone(),
        };
        let text = String::from_utf8(raw).unwrap();
        let delimiter = format!("--{boundary}");
        assert!(
            text.trim_end().ends_with(&format!("{delimiter}--")),
            "closing delimiter"
        );
        let mut parts = Vec::new();
        for chunk in text.split(&delimiter).skip(1) {
            if chunk.starts_with("--") {
                break;
            }
            let chunk = chunk.strip_prefix("\r\n").unwrap();
            let (head, body) = chunk.split_once("\r\n\r\n").unwrap();
            let headers = head
                .split("\r\n")
                .filter_map(|l| l.split_once(':'))
                .map(|(n, v)| (n.trim().to_owned(), v.trim().to_owned()))
                .collect();
            parts.push(MimePart {
                headers,
                body: body.strip_suffix("\r\n").unwrap_or(body).to_owned(),
            });
        }
        Self {
            msg,
            boundary,
            parts,
        }
    }

    pub fn rlmi(&self) -> &str {
        &self.parts[0].body
    }

    pub fn attr(&self, name: &str) -> String {
        let rlmi = self.rlmi();
        let list = &rlmi[rlmi.find("<list").unwrap()..];
        let list = &list[..list.find('>').unwrap()];
        let start = list.find(&format!(" {name}=\"")).unwrap() + name.len() + 3;
        list[start..start + list[start..].find('"').unwrap()].to_owned()
    }

    pub fn version(&self) -> u32 {
        self.attr("version").parse().unwrap()
    }

    pub fn full_state(&self) -> bool {
        self.attr("fullState") == "true"
    }

    /// The resource URIs in the RLMI, in order.
    pub fn resources(&self) -> Vec<String> {
        self.rlmi()
            .match_indices("<resource uri=\"")
            .map(|(i, m)| {
                let rest = &self.rlmi()[i + m.len()..];
                rest[..rest.find('"').unwrap()].to_owned()
            })
            .collect()
    }

    /// The PIDF part of `uri`, found through its instance's cid.
    pub fn pidf_of(&self, uri: &str) -> Option<&str> {
        let rlmi = self.rlmi();
        let at = rlmi.find(&format!("<resource uri=\"{uri}\""))?;
        let resource = &rlmi[at..at + rlmi[at..].find("</resource>")?];
        let cid_at = resource.find("cid=\"")? + 5;
        let cid = &resource[cid_at..cid_at + resource[cid_at..].find('"')?];
        self.parts[1..]
            .iter()
            .find(|p| {
                let id = p.header("Content-ID").unwrap_or("");
                id == cid || id == format!("<{cid}>")
            })
            .map(|p| p.body.as_str())
    }
}

/// Receives the next list NOTIFY, answers it 200 and reads it.
pub fn expect_list_notify(ua: &mut impl Ua) -> ListNotify {
    ListNotify::read(ua.expect_notify())
}

/// Validates `docs` (name, text) with xmllint against a schema of tests/fixtures/schema.
pub fn xmllint(schema: &str, docs: &[(String, String)]) {
    let dir = tempfile::tempdir().unwrap();
    let mut files = Vec::new();
    for (name, text) in docs {
        let path = dir.path().join(name);
        std::fs::write(&path, text).unwrap();
        files.push(path);
    }
    let out = Command::new("xmllint")
        .arg("--noout")
        .arg("--nonet")
        .arg("--schema")
        .arg(fixture(&format!("schema/{schema}")))
        .args(&files)
        .output()
        .expect("xmllint must be installed (Debian: libxml2-utils)");
    assert!(
        out.status.success(),
        "{schema}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Validates `bodies` with xmllint against a schema of tests/fixtures/schema, each in a file
/// named after its place.
pub fn xmllint_all(schema: &str, bodies: impl IntoIterator<Item = String>) {
    let docs: Vec<(String, String)> = bodies
        .into_iter()
        .enumerate()
        .map(|(i, b)| (format!("doc-{i}.xml"), b))
        .collect();
    xmllint(schema, &docs);
}

/// A captured request (a fixture) as this test's UA sends it: the client's address
/// `client` replaced by `local` (Via, Contact) and the proxy's Route dropped; the body as
/// captured, byte for byte.
pub fn capture(rel: &str, client: &str, local: std::net::SocketAddr) -> Vec<u8> {
    let raw = std::fs::read(fixture(rel)).unwrap();
    let head_end = raw.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
    let head = String::from_utf8(raw[..head_end].to_vec())
        .unwrap()
        .replace(client, &local.to_string());
    let head: String = head
        .split_inclusive("\r\n")
        .filter(|l| !l.starts_with("Route:"))
        .collect();
    let mut bytes = head.into_bytes();
    bytes.extend_from_slice(&raw[head_end..]);
    bytes
}

pub fn resource_lists(uris: &[String]) -> Vec<u8> {
    let mut s = String::from(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n\
         <resource-lists xmlns=\"urn:ietf:params:xml:ns:resource-lists\"><list>\n",
    );
    for u in uris {
        s.push_str(&format!("<entry uri=\"{u}\"/>\n"));
    }
    s.push_str("</list></resource-lists>\n");
    s.into_bytes()
}

/// A request-contained list SUBSCRIBE (RFC 5367), deflated when `deflated`.
pub fn list_subscribe(ua: &impl Ua, uris: &[String], deflated: bool) -> RequestBuilder {
    let xml = resource_lists(uris);
    let mut r = ua
        .new_request("SUBSCRIBE", LIST)
        .header("Event: presence")
        .header("Supported: eventlist")
        .header("Require: recipient-list-subscribe")
        .header("Content-Disposition: recipient-list")
        .header("Accept: application/pidf+xml, application/rlmi+xml, multipart/related")
        .header(&format!("Contact: <sip:watcher@{}>", ua.local_addr()))
        .header("Expires: 600");
    if deflated {
        r = r
            .header("Content-Encoding: deflate")
            .header("Accept-Encoding: gzip;q=0.5, DEFLATE");
        r.body("application/resource-lists+xml", &deflate(&xml))
    } else {
        r.body("application/resource-lists+xml", &xml)
    }
}

pub fn in_dialog_list_subscribe(
    ua: &impl Ua,
    initial: &RequestBuilder,
    ok: &SipMsg,
    cseq: u32,
    expires: u32,
    list: Option<&[String]>,
) -> Vec<u8> {
    let mut r =
        in_dialog_subscribe_request(ua, initial, ok, cseq, expires).header("Supported: eventlist");
    if let Some(uris) = list {
        r = r
            .header("Content-Disposition: recipient-list")
            .body("application/resource-lists+xml", &resource_lists(uris));
    }
    r.build()
}
