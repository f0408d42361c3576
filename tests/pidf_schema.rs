//! Generated PIDF validates against the RFC 3863 §4.4 schema
//! (`tests/fixtures/schema/pidf.xsd`, `##other` content processed laxly),
//! checked with `xmllint --nonet`. Needs xmllint (Debian: libxml2-utils): the
//! tests fail, never skip, when it is missing.

use std::error::Error;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use presenced::presence::aggregation::{aggregate, binding_tuple, AggregationOptions, Source};
use presenced::presence::pidf::{self, PidfDocument};
use presenced::xml::XmlLimits;

type Fallible<T = ()> = Result<T, Box<dyn Error>>;

fn fixtures_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

/// Every `tests/fixtures/pidf/*.xml`, by file name, sorted.
fn fixture_bodies() -> Fallible<Vec<(String, Vec<u8>)>> {
    let mut paths = Vec::new();
    for entry in fs::read_dir(fixtures_dir().join("pidf"))? {
        let path = entry?.path();
        if path.extension().is_some_and(|ext| ext == "xml") {
            paths.push(path);
        }
    }
    paths.sort();
    let mut bodies = Vec::new();
    for path in paths {
        let name = path
            .file_name()
            .ok_or("fixture without a name")?
            .to_string_lossy()
            .into_owned();
        bodies.push((name, fs::read(&path)?));
    }
    assert!(
        bodies.len() >= 9,
        "expected the PIDF fixtures, found {}",
        bodies.len()
    );
    Ok(bodies)
}

fn fixture_docs() -> Fallible<Vec<(String, PidfDocument)>> {
    let mut docs = Vec::new();
    for (name, body) in fixture_bodies()? {
        let doc = pidf::parse(&body, &XmlLimits::default()).map_err(|e| format!("{name}: {e}"))?;
        docs.push((name, doc));
    }
    Ok(docs)
}

/// Writes `documents` to a temporary directory and runs xmllint on them all.
fn xmllint(documents: &[(String, String)]) -> Fallible<Output> {
    let dir = tempfile::tempdir()?;
    let mut files = Vec::new();
    for (name, body) in documents {
        let path = dir.path().join(name);
        fs::write(&path, body)?;
        files.push(path);
    }
    let schema = fixtures_dir().join("schema/pidf.xsd");
    let output = Command::new("xmllint")
        .args(["--nonet", "--noout", "--schema"])
        .arg(schema)
        .args(&files)
        .output()
        .map_err(|e| {
            format!("cannot run xmllint ({e}); install it: apt-get install -y libxml2-utils")
        })?;
    Ok(output)
}

fn assert_schema_valid(documents: &[(String, String)]) -> Fallible {
    let output = xmllint(documents)?;
    let report = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "xmllint rejected generated PIDF:\n{report}"
    );
    assert_eq!(
        report.matches(" validates").count(),
        documents.len(),
        "{report}"
    );
    Ok(())
}

#[test]
fn serialized_fixtures_validate_against_the_rfc_3863_schema() -> Fallible {
    let documents: Vec<_> = fixture_docs()?
        .into_iter()
        .map(|(name, doc)| (format!("serialized-{name}"), pidf::serialize(&doc)))
        .collect();
    assert_schema_valid(&documents)
}

#[test]
fn aggregated_documents_validate_against_the_rfc_3863_schema() -> Fallible {
    let entity = "sip:alice@example.org";
    let docs = fixture_docs()?;
    let mut binding = PidfDocument::new(entity);
    binding.tuples.push(binding_tuple(
        "reg-1",
        "sip:alice@192.0.2.7:5060;transport=tcp",
        Some(0.5),
    ));
    // Not an IPv6 contact: libxml2's xs:anyURI check rejects `sip:a@[2001:db8::7]`,
    // a valid SIP URI (RFC 3261 §25.1) whose brackets RFC 3986 allows only after `//`.
    binding.tuples.push(binding_tuple(
        "reg-2",
        "sips:alice@client.example.org:5061",
        None,
    ));
    // Every fixture twice, so that tuple, person and device ids collide.
    let mut sources: Vec<_> = docs
        .iter()
        .chain(&docs)
        .map(|(key, doc)| Source { key, doc })
        .collect();
    sources.push(Source {
        key: "reg",
        doc: &binding,
    });

    let everything = aggregate(entity, &sources, &AggregationOptions::default());
    let closed = aggregate(
        entity,
        &[],
        &AggregationOptions {
            closed_when_empty: true,
        },
    );
    let empty = aggregate(entity, &[], &AggregationOptions::default());
    // Every tuple of every source, the colliding ids renamed rather than dropped.
    let fixture_tuples: usize = docs.iter().map(|(_, d)| d.tuples.len()).sum();
    assert_eq!(
        everything.tuples.len(),
        fixture_tuples * 2 + binding.tuples.len()
    );

    let documents = [
        ("everything", &everything),
        ("closed", &closed),
        ("empty", &empty),
    ]
    .map(|(name, doc)| (format!("aggregated-{name}.xml"), pidf::serialize(doc)));
    assert_schema_valid(&documents)
}

#[test]
fn schema_rejects_the_raw_baresip_capture_so_the_check_is_not_vacuous() -> Fallible {
    // baresip writes <dm:person> before <tuple>, against the §4.4 sequence;
    // its serialisation is among the valid documents above.
    let raw = fs::read_to_string(fixtures_dir().join("pidf/baresip-open.xml"))?;
    let output = xmllint(&[("raw-baresip-open.xml".to_owned(), raw)])?;
    let report = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "{report}");
    assert!(report.contains("fails to validate"), "{report}");
    Ok(())
}
