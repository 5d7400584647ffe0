//! The contract behind the agent's request metrics on spans whose attributes are unbuilt
//! (`Attributes::metric_identity`): over every HTTP/1, HTTP/2 and gRPC exchange of the shared
//! field captures and this crate's recorded ones, seen from both ends, two spans with equal
//! identity bytes hold equal values under every key the metrics read (`attr::METRIC_KEYS`),
//! and every engine span of an exchange carries an identity (the metrics never fall back to
//! building a list for a label set they have seen).

mod support;

use std::path::PathBuf;

use flows::engine::EngineConfig;
use flows::record::{attr, AttributeValue, Record, Span};
use support::{fieldcase_path, golden_config, replay_file_lenient};

/// The captures: field cases (kinds and cases) and `tests/data`, pcap and pcapng.
fn captures() -> Vec<PathBuf> {
    let mut out = Vec::new();
    let kinds = fieldcase_path("kinds", "F6-http1-http09.pcap");
    let cases = fieldcase_path("cases/pcap", "16-traceparent-variants.pcap");
    let data = PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data"));
    for dir in [
        kinds.parent().unwrap().to_path_buf(),
        cases.parent().unwrap().to_path_buf(),
        data.clone(),
        data.join("h2"),
    ] {
        for e in std::fs::read_dir(&dir).unwrap() {
            let p = e.unwrap().path();
            let ext = p.extension().and_then(|e| e.to_str()).unwrap_or("");
            if ext == "pcap" || ext == "pcapng" {
                out.push(p);
            }
        }
    }
    out.sort();
    out
}

/// The values of the metric keys in `s`'s attributes (built here by reading them).
fn metric_values(s: &Span) -> Vec<Option<AttributeValue>> {
    attr::METRIC_KEYS
        .iter()
        .map(|k| s.attributes.get(k).cloned())
        .collect()
}

#[test]
fn equal_identities_hold_equal_metric_values_on_real_captures() {
    let config = EngineConfig {
        span_both_ends: true,
        ..golden_config()
    };
    let mut seen: Vec<(Vec<u8>, Vec<Option<AttributeValue>>, String)> = Vec::new();
    let (mut spans, mut http2) = (0, 0);
    for path in captures() {
        let (records, _) = replay_file_lenient(&path, config.clone());
        for r in &records {
            let Record::Span(s) = r else { continue };
            for s in std::iter::once(&**s).chain(s.counterpart.as_deref()) {
                let mut id = Vec::new();
                assert!(
                    s.attributes.metric_identity(&mut id),
                    "{}: an engine span with a built list",
                    path.display()
                );
                spans += 1;
                http2 += usize::from(s.attributes.get(attr::HTTP2_STREAM_ID).is_some());
                let values = metric_values(s);
                match seen.iter().find(|(i, ..)| *i == id) {
                    Some((_, v, first)) => assert_eq!(
                        *v,
                        values,
                        "same identity, other labels: {} and {first}",
                        path.display()
                    ),
                    None => seen.push((id, values, path.display().to_string())),
                }
            }
        }
    }
    assert!(
        spans > 100 && http2 > 20,
        "{spans} spans, {http2} HTTP/2 ones"
    );
    assert!(seen.len() < spans, "no two spans share a label set?");
}
