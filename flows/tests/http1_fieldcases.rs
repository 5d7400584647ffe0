//! Golden tests on the HTTP/1 field captures in `../shared/fieldcases` (hand-built `kinds/F5`-
//! `F7` for RFC 9112 §2-§9 oddities, and `cases/03`-`04` recorded from real peers). Each
//! expectation is the one stated in that folder's README and `expected/*.json`.

mod support;

use std::collections::HashMap;

use flows::record::{
    attr, AttributeValue, BodyError, Flow, HttpInfo, L7Record, L7Type, Record, Span,
};
use support::{replay_fieldcase as replay, spans};

/// One exchange as the expectation files state it: method, path, status.
type Ex = (Option<String>, Option<String>, Option<u16>);

/// The HTTP part of an L7 flow.
fn http(f: &Flow) -> Option<(L7Type, &HttpInfo)> {
    let l7 = f.l7.as_ref()?;
    match &l7.record {
        L7Record::Http(h) => Some((l7.r#type, h)),
        _ => None,
    }
}

fn flows(records: &[Record]) -> impl Iterator<Item = &Flow> {
    records.iter().filter_map(|r| match r {
        Record::Flow(f) => Some(&**f),
        _ => None,
    })
}

/// The path of a URL or request target.
fn path(url: &str) -> String {
    let rest = url
        .split_once("://")
        .map_or(url, |(_, r)| r.find('/').map_or("/", |i| &r[i..]));
    rest.split('?').next().unwrap_or_default().to_string()
}

/// Exchanges in request order: request and response flows joined by span id; a response
/// with no request comes as `(None, None, status)`.
fn exchanges(records: &[Record]) -> Vec<Ex> {
    let mut order = Vec::new();
    let mut by_span: HashMap<String, Ex> = HashMap::new();
    let mut unpaired = Vec::new();
    for f in flows(records) {
        let Some((kind, h)) = http(f) else { continue };
        let span = f.trace_context.map(|t| t.span_id.to_string());
        match (kind, span) {
            (L7Type::Request, Some(id)) => {
                order.push(id.clone());
                by_span.insert(id, (Some(h.method.to_string()), Some(path(&h.url)), None));
            }
            (L7Type::Response, Some(id)) if by_span.contains_key(&id) => {
                // 1xx interim responses are folded into their exchange (101 included).
                if !h.code.is_some_and(|c| (100..200).contains(&c)) || h.code == Some(101) {
                    by_span.get_mut(&id).expect("checked").2 = h.code;
                }
            }
            _ => unpaired.push((None, None, h.code)),
        }
    }
    order
        .into_iter()
        .map(|id| by_span.remove(&id).expect("inserted"))
        .chain(unpaired)
        .collect()
}

fn ex(method: &str, path: &str, status: Option<u16>) -> Ex {
    (Some(method.into()), Some(path.into()), status)
}

/// The response flow of the exchange whose request went to `path`.
fn response<'a>(records: &'a [Record], target: &str) -> &'a Flow {
    let span = flows(records)
        .find(|f| http(f).is_some_and(|(k, h)| k == L7Type::Request && path(&h.url) == target))
        .and_then(|f| f.trace_context)
        .unwrap_or_else(|| panic!("no request for {target}"))
        .span_id;
    flows(records)
        .find(|f| {
            http(f).is_some_and(|(k, _)| k == L7Type::Response)
                && f.trace_context.is_some_and(|t| t.span_id == span)
        })
        .unwrap_or_else(|| panic!("no response for {target}"))
}

/// The span of the exchange whose request went to `target`.
fn span_of<'a>(records: &'a [Record], target: &str) -> &'a Span {
    spans(records)
        .into_iter()
        .find(|s| s.attributes.get(attr::URL_PATH) == Some(&AttributeValue::String(target.into())))
        .unwrap_or_else(|| panic!("no span for {target}"))
}

fn latency_ms(f: &Flow) -> f64 {
    f.l7.as_ref().and_then(|l| l.latency_ns).expect("a latency") as f64 / 1e6
}

fn body_error(f: &Flow) -> Option<BodyError> {
    http(f).and_then(|(_, h)| h.body_error)
}

/// Every HTTP/1 kind capture with the exchanges its expectation file lists, in order.
#[test]
fn kinds_f5_to_f7_report_every_exchange() {
    let cases: &[(&str, &[Ex])] = &[
        (
            "F5-http1-midstream-request-boundary.pcap",
            &[
                ex("GET", "/a", Some(200)),
                ex("POST", "/b", Some(201)),
                ex("GET", "/c", Some(304)),
            ],
        ),
        (
            "F5-http1-midstream-response-body.pcap",
            &[
                ex("GET", "/next", Some(200)),
                ex("GET", "/last", Some(200)),
                ex("GET", "/poll", Some(204)),
            ],
        ),
        (
            "F5-http1-midstream-h2c-upgrade.pcap",
            &[ex("GET", "/", Some(200)), ex("GET", "/second", Some(404))],
        ),
        (
            "F6-http1-extension-methods.pcap",
            &[
                ex("PROPFIND", "/dav/docs/", Some(207)),
                ex("FOO", "/x", Some(501)),
                ex("get", "/lower", Some(501)),
                ex("GET", "/end", Some(200)),
            ],
        ),
        (
            "F6-http1-http09.pcap",
            &[
                ex("GET", "/legacy.txt", None),
                ex("GET", "/modern", Some(200)),
            ],
        ),
        (
            "F6-http1-lf-only.pcap",
            &[
                ex("GET", "/a", Some(200)),
                ex("POST", "/b", Some(201)),
                ex("GET", "/c", Some(200)),
            ],
        ),
        (
            "F6-http1-reason-odd-bytes.pcap",
            &[
                ex("GET", "/a", Some(200)),
                ex("GET", "/b", Some(403)),
                ex("GET", "/c", Some(500)),
                ex("GET", "/d", Some(200)),
            ],
        ),
        (
            "F6-http1-request-header-no-colon.pcap",
            &[ex("GET", "/a", Some(200)), ex("GET", "/b", Some(400))],
        ),
        (
            "F6-http1-response-header-no-colon.pcap",
            &[ex("GET", "/a", Some(200)), ex("GET", "/b", Some(200))],
        ),
        (
            "F6-http1-status-2XX.pcap",
            &[ex("GET", "/a", None), ex("GET", "/b", Some(200))],
        ),
        (
            "F6-http1-status-no-reason.pcap",
            &[
                ex("GET", "/a", Some(200)),
                ex("GET", "/b", Some(204)),
                ex("GET", "/c", Some(404)),
            ],
        ),
        (
            "F6-http1-version-1.2.pcap",
            &[ex("GET", "/v12", Some(200)), ex("GET", "/after", Some(200))],
        ),
        (
            "F6-http1-version-http1dot.pcap",
            &[
                ex("GET", "/ok", Some(200)),
                ex("GET", "/odd", Some(200)),
                ex("GET", "/after", Some(200)),
            ],
        ),
        (
            "F7-cl-conflict.pcap",
            &[
                ex("GET", "/before", Some(200)),
                ex("POST", "/cl2", Some(400)),
            ],
        ),
        (
            "F7-cl-same-value-twice.pcap",
            &[
                ex("POST", "/list", Some(200)),
                ex("POST", "/twice", Some(200)),
                ex("GET", "/after", Some(200)),
            ],
        ),
        (
            "F7-te-and-cl-request.pcap",
            &[
                ex("GET", "/before", Some(200)),
                ex("POST", "/both", Some(200)),
            ],
        ),
        (
            "F7-te-and-cl-response.pcap",
            &[ex("GET", "/a", Some(200)), ex("GET", "/b", Some(200))],
        ),
        (
            "F7-te-chunked-gzip-request.pcap",
            &[
                ex("GET", "/before", Some(200)),
                ex("POST", "/bad-te", Some(400)),
            ],
        ),
        (
            "F7-te-gzip-chunked.pcap",
            &[
                ex("POST", "/upload", Some(201)),
                ex("GET", "/report", Some(200)),
                ex("GET", "/after", Some(200)),
            ],
        ),
        (
            "F7-te-identity-request.pcap",
            &[
                ex("GET", "/before", Some(200)),
                ex("POST", "/identity", Some(400)),
            ],
        ),
        (
            "F7-te-response-gzip-until-close.pcap",
            &[
                ex("GET", "/first", Some(200)),
                ex("GET", "/export.csv", Some(200)),
            ],
        ),
    ];
    for (name, want) in cases {
        let (records, c) = replay("kinds", name);
        assert_eq!(exchanges(&records), *want, "{name}");
        assert_eq!(c.http1_parse_errors, 0, "{name}: {c:?}");
        assert_eq!(c.http1_unpaired_responses, 0, "{name}: {c:?}");
        assert_eq!(c.http1_unanswered, 0, "{name}: {c:?}");
    }
}

#[test]
fn f5_joined_at_a_request_boundary_keeps_every_latency() {
    // RFC 9112 §9.3: responses come in request order, so pairing from the first request
    // seen gives each its own latency (3, 4 and 1 ms in the capture).
    let (records, c) = replay("kinds", "F5-http1-midstream-request-boundary.pcap");
    for (target, ms) in [("/a", 3.0), ("/b", 4.0), ("/c", 1.0)] {
        let l = latency_ms(response(&records, target));
        assert!((l - ms).abs() < 0.01, "{target}: {l} ms");
    }
    assert_eq!(c.http1_requests_lost_in_gap, 0);
}

#[test]
fn f5_joined_inside_a_body_skips_it_and_pairs_what_follows() {
    let (records, c) = replay("kinds", "F5-http1-midstream-response-body.pcap");
    assert_eq!(
        spans(&records).len(),
        3,
        "the leading body bytes are no exchange"
    );
    assert_eq!(latency_ms(response(&records, "/next")), 2.0);
    assert_eq!((c.http1_requests, c.http1_responses), (3, 3));
}

#[test]
fn f5_a_late_h2c_upgrade_folds_the_101_into_stream_1() {
    let (records, c) = replay("kinds", "F5-http1-midstream-h2c-upgrade.pcap");
    assert_eq!((c.h2_upgrades, c.http1_upgrades), (1, 1));
    let codes: Vec<_> = flows(&records)
        .filter_map(http)
        .filter_map(|(_, h)| h.code)
        .collect();
    assert!(
        !codes.contains(&101),
        "the 101 is folded into the upgraded request: {codes:?}"
    );
}

#[test]
fn f6_http09_is_answered_by_the_body_until_close() {
    // RFC 1945 §6: no status line; the close ends the body.
    let (records, c) = replay("kinds", "F6-http1-http09.pcap");
    let resp = response(&records, "/legacy.txt");
    let (_, h) = http(resp).expect("http");
    assert_eq!((h.code, &*h.protocol), (None, "HTTP/0.9"));
    assert_eq!(resp.payload_bytes, 1667);
    assert_eq!(latency_ms(resp), 1.0);
    assert_eq!(c.http1_simple_requests, 1);
}

#[test]
fn f6_odd_lines_are_counted() {
    let (_, c) = replay("kinds", "F6-http1-status-2XX.pcap");
    assert_eq!(c.http1_unusable_status_codes, 1);
    let (_, c) = replay("kinds", "F6-http1-response-header-no-colon.pcap");
    assert_eq!(c.http1_field_lines_skipped, 1);
    let (_, c) = replay("kinds", "F6-http1-request-header-no-colon.pcap");
    assert_eq!(c.http1_field_lines_skipped, 1);
    let (_, c) = replay("kinds", "F6-http1-version-http1dot.pcap");
    assert_eq!(c.http1_lenient_heads, 1);
}

#[test]
fn f7_requests_of_unknown_length_are_marked_and_nothing_after_them_is_parsed() {
    // RFC 9112 §6.3 rules 4 and 5: the server answers 400 and closes.
    for (name, target, mark) in [
        (
            "F7-te-chunked-gzip-request.pcap",
            "/bad-te",
            BodyError::TransferEncodingNotChunked,
        ),
        (
            "F7-te-identity-request.pcap",
            "/identity",
            BodyError::TransferEncodingNotChunked,
        ),
        (
            "F7-cl-conflict.pcap",
            "/cl2",
            BodyError::InvalidContentLength,
        ),
    ] {
        let (records, c) = replay("kinds", name);
        let req = flows(&records)
            .find(|f| http(f).is_some_and(|(k, h)| k == L7Type::Request && path(&h.url) == target))
            .expect("the request");
        assert_eq!(body_error(req), Some(mark), "{name}");
        let span = span_of(&records, target);
        assert_eq!(
            span.attributes.get(attr::HTTP_REQUEST_BODY_ERROR),
            Some(&AttributeValue::String(mark.as_str().into())),
            "{name}"
        );
        assert_eq!(c.http1_invalid_framing, 1, "{name}");
        assert_eq!(
            c.http1_requests, 2,
            "{name}: no request parsed from the body"
        );
    }
    let (records, _) = replay("kinds", "F7-te-and-cl-request.pcap");
    let span = span_of(&records, "/both");
    assert_eq!(
        span.attributes.get(attr::HTTP_REQUEST_BODY_ERROR),
        Some(&AttributeValue::String(
            "transfer_encoding_with_content_length".into()
        ))
    );
}

#[test]
fn case03_close_delimited_and_http09() {
    let (records, c) = replay("cases/pcap", "03-http1-close-delimited-1.0-and-0.9.pcap");
    assert_eq!(
        exchanges(&records),
        vec![
            ex("GET", "/", Some(200)),
            ex("GET", "/index.html", None),
            ex("GET", "/http-looking.html", None)
        ]
    );
    // (a) HTTP/1.0 with no length: every byte up to the FIN, the span ending there.
    let resp = response(&records, "/");
    assert_eq!(resp.payload_bytes, 1088);
    let s = span_of(&records, "/");
    let ms = (s.end_time_ns - s.start_time_ns) as f64 / 1e6;
    assert!((400.0..405.0).contains(&ms), "{ms} ms");
    // (b) HTTP/0.9: no status (not the "404" the body starts with), size = bytes until close.
    for (target, size) in [("/index.html", 41), ("/http-looking.html", 78)] {
        let resp = response(&records, target);
        let (_, h) = http(resp).expect("http");
        assert_eq!(
            (h.code, &*h.protocol, resp.payload_bytes),
            (None, "HTTP/0.9", size)
        );
        let s = span_of(&records, target);
        assert_eq!(s.attributes.get(attr::HTTP_RESPONSE_STATUS_CODE), None);
        assert_eq!(
            s.attributes.get(attr::NETWORK_PROTOCOL_VERSION),
            Some(&AttributeValue::String("0.9".into()))
        );
    }
    assert_eq!(c.http1_parse_errors, 0);
}

#[test]
fn case04_hostile_chunk_sizes_are_marked_on_flow_and_span() {
    let (records, c) = replay("cases/pcap", "04-http1-chunked-huge-size.pcap");
    assert_eq!(exchanges(&records).len(), 10);
    // RFC 9112 §7.1: 20 hex digits and "-1" are no chunk-size; 16 hex digits are one, and the
    // close comes first (§8).
    for (target, mark) in [
        ("/huge", BodyError::Truncated),
        ("/overflow", BodyError::MalformedChunk),
        ("/neg", BodyError::MalformedChunk),
        ("/ffff", BodyError::Truncated),
    ] {
        let resp = response(&records, target);
        assert_eq!(http(resp).and_then(|(_, h)| h.code), Some(200), "{target}");
        assert_eq!(body_error(resp), Some(mark), "{target}");
        let s = span_of(&records, target);
        assert_eq!(
            s.attributes.get(attr::HTTP_RESPONSE_BODY_ERROR),
            Some(&AttributeValue::String(mark.as_str().into())),
            "{target}"
        );
        assert_eq!(
            s.attributes.get(attr::ERROR_TYPE),
            Some(&AttributeValue::String(mark.as_str().into())),
            "{target}"
        );
    }
    for (target, size) in [
        ("/ext", 11),
        ("/upper", 26),
        ("/trailer", 7),
        ("/after-trailer", 2),
        ("/split", 24),
        ("/after-split", 2),
    ] {
        let resp = response(&records, target);
        assert_eq!(http(resp).and_then(|(_, h)| h.code), Some(200), "{target}");
        assert_eq!(
            (resp.payload_bytes, body_error(resp)),
            (size, None),
            "{target}"
        );
    }
    assert_eq!((c.http1_bad_chunked, c.http1_truncated_messages), (2, 2));
}
