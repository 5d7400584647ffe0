//! W3C Trace Context §3.2 on a field case recorded from real peers:
//! `../shared/fieldcases/cases/pcap/16-traceparent-variants.pcap` (curl to nginx over HTTP/1.1,
//! nghttp and python-h2 over h2c; its README and `record/` say how), asserted against
//! `expected/16-traceparent-variants.json`.

mod support;

use flows::record::{attr, AttributeValue, L7Record, L7Type, Record, Span};
use support::{fieldcase_path, replay_fieldcase, spans};

fn path_of(s: &Span) -> &str {
    match s.attributes.get(attr::URL_PATH) {
        Some(AttributeValue::String(p)) => p,
        v => panic!("url.path {v:?}"),
    }
}

/// Every run of 32 lowercase hex digits in `s` (the trace ids an expectation names).
fn trace_ids_in(s: &str) -> Vec<String> {
    let b = s.as_bytes();
    let hex = |c: &u8| c.is_ascii_digit() || (b'a'..=b'f').contains(c);
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        let n = b[i..].iter().take_while(|c| hex(c)).count();
        if n == 32 {
            out.push(s[i..i + 32].to_string());
        }
        i += n.max(1);
    }
    out
}

#[test]
fn golden_case16_traceparent_variants() {
    let (records, c) = replay_fieldcase("cases/pcap", "16-traceparent-variants.pcap");
    let expected: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(fieldcase_path(
            "cases/expected",
            "16-traceparent-variants.json",
        ))
        .expect("expected/16-traceparent-variants.json"),
    )
    .unwrap();
    let spans = spans(&records);
    let mut used = vec![false; spans.len()];
    let mut invalid = 0;
    for x in expected.as_array().unwrap() {
        let Some(path) = x["path"].as_str() else {
            continue;
        };
        // In capture order: the first span of that path not taken yet.
        let i = (0..spans.len())
            .find(|&i| !used[i] && path_of(spans[i]) == path)
            .unwrap_or_else(|| panic!("no span for {path}"));
        used[i] = true;
        let s = spans[i];
        assert_eq!(
            s.attributes[attr::HTTP_RESPONSE_STATUS_CODE],
            AttributeValue::Int(200),
            "{path}"
        );
        let want = x["trace_id"].as_str().unwrap();
        let mark = s.attributes.get(attr::TRACEPARENT_INVALID);
        if want.starts_with("new") {
            // Invalid: no parent, a new trace id, marked (W3C Trace Context §3.2.2).
            invalid += 1;
            assert_eq!(s.parent_span_id, None, "{path}");
            let named = trace_ids_in(&format!("{} {}", x["header"], x["trace_id"]));
            assert!(!named.contains(&s.trace_id.to_string()), "{path}");
            assert!(!s.trace_id.is_zero(), "{path}");
            assert!(mark.is_some(), "{path}: no {}", attr::TRACEPARENT_INVALID);
        } else {
            assert_eq!(s.trace_id.to_string(), want, "{path}");
            let parent = x["parent_span_id"].as_str().unwrap();
            assert_eq!(
                s.parent_span_id.map(|p| p.to_string()).as_deref(),
                Some(parent)
            );
            assert_eq!(mark, None, "{path}");
        }
    }
    assert_eq!(invalid, 7);
    assert_eq!(used.iter().filter(|u| **u).count(), 18);
    assert_eq!(spans.len(), 18);
    // Counted by reason: 2 duplicated, 5 malformed.
    assert_eq!(c.trace_duplicated_traceparent, 2, "{c:?}");
    assert_eq!(c.trace_invalid_traceparent, 5, "{c:?}");
    // The request flows carry the same mark as the spans.
    let marked_flows = records
        .iter()
        .filter(|r| match r {
            Record::Flow(f) => {
                f.l7.as_ref().is_some_and(|l7| {
                    l7.r#type == L7Type::Request && matches!(l7.record, L7Record::Http(_))
                }) && f
                    .trace_context
                    .is_some_and(|t| t.traceparent_invalid.is_some())
            }
            _ => false,
        })
        .count();
    assert_eq!(marked_flows, 7);
}
