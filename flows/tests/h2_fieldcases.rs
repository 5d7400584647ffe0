//! Golden tests for HTTP/2 and gRPC on the shared field captures (issue 15): the F9 kinds
//! (stream reset, GOAWAY) and field cases 09 (gRPC joined mid-way), 10 (gRPC status from
//! trailers) and 11 (HEADERS + CONTINUATION). The captures and what a correct decoder reports
//! are described in `shared/fieldcases/{kinds,cases}/README.md` and `expected/`.

mod support;

use std::collections::BTreeMap;

use flows::record::{
    attr, AttributeValue, GrpcStatusSource, Http2Info, L7Record, L7Type, Record, Span, StatusCode,
};
use support::replay_fieldcase;

/// One exchange: its span and its RESPONSE flow, joined by span id.
#[derive(Debug)]
struct Exchange<'a> {
    span: &'a Span,
    code: Option<u16>,
    http2: Option<&'a Http2Info>,
    grpc_status_header: Option<String>,
    grpc_message_header: Option<String>,
}

impl Exchange<'_> {
    fn attr(&self, k: &str) -> Option<String> {
        match self.span.attributes.get(k) {
            Some(AttributeValue::String(v)) => Some(v.to_string()),
            Some(AttributeValue::Int(v)) => Some(v.to_string()),
            Some(AttributeValue::Bool(v)) => Some(v.to_string()),
            None => None,
        }
    }
    fn int(&self, k: &str) -> Option<i64> {
        self.attr(k).and_then(|v| v.parse().ok())
    }
    fn stream(&self) -> i64 {
        self.int(attr::HTTP2_STREAM_ID).expect("stream id")
    }
    fn client_port(&self) -> i64 {
        self.int(attr::CLIENT_PORT).expect("client port")
    }
    /// `:path` as the span tells it (url.path, or /service/method for gRPC).
    fn path(&self) -> Option<String> {
        self.attr(attr::URL_PATH).or_else(|| {
            Some(format!(
                "/{}/{}",
                self.attr(attr::RPC_SERVICE)?,
                self.attr(attr::RPC_METHOD)?
            ))
        })
    }
    fn grpc_status(&self) -> Option<i64> {
        self.int(attr::RPC_GRPC_STATUS_CODE)
    }
    /// `(method, path, HTTP status, grpc-status)` as the kinds' expectation files list them.
    fn listed(&self) -> (String, Option<String>, Option<u16>, Option<i64>) {
        let method = self
            .attr(attr::HTTP_REQUEST_METHOD)
            .unwrap_or_else(|| "POST".into());
        (method, self.path(), self.code, self.grpc_status())
    }
}

fn exchanges(records: &[Record]) -> Vec<Exchange<'_>> {
    let mut responses = BTreeMap::new();
    for r in records {
        let Record::Flow(f) = r else { continue };
        let (Some(l7), Some(tc)) = (&f.l7, f.trace_context) else {
            continue;
        };
        if let (L7Type::Response, L7Record::Http(h)) = (l7.r#type, &l7.record) {
            responses.insert(tc.span_id.to_string(), h);
        }
    }
    records
        .iter()
        .filter_map(|r| match r {
            Record::Span(s) => Some(&**s),
            _ => None,
        })
        .map(|span| {
            let h = responses.get(&span.span_id.to_string());
            let header = |name: &str| {
                h.and_then(|h| h.headers.iter().find(|x| x.key == name))
                    .map(|x| x.value.to_string())
            };
            Exchange {
                span,
                code: h.and_then(|h| h.code),
                http2: h.and_then(|h| h.http2.as_deref()),
                grpc_status_header: header("grpc-status"),
                grpc_message_header: header("grpc-message"),
            }
        })
        .collect()
}

fn sorted<T: Ord>(mut v: Vec<T>) -> Vec<T> {
    v.sort();
    v
}

const GREETER: &str = "/helloworld.Greeter/";
const GHOST: &str = "no such \u{1F464} ghost";

#[test]
fn f9_response_after_the_clients_cancel_is_reported_and_marked() {
    let (records, c) = replay_fieldcase("kinds", "F9-h2-rst-stream-cancel.pcap");
    let xs = exchanges(&records);
    let get = |m: &str, p: &str, code: Option<u16>, g: Option<i64>| {
        (m.to_string(), Some(p.to_string()), code, g)
    };
    assert_eq!(
        sorted(xs.iter().map(Exchange::listed).collect()),
        sorted(vec![
            get("GET", "/slow", Some(200), None),
            get("POST", "/demo.v1.Echo/Say", Some(200), Some(0)),
            get("GET", "/never", None, None),
            get("GET", "/ok", Some(200), None),
        ])
    );
    let by_stream = |sid| xs.iter().find(|x| x.stream() == sid).unwrap();
    // Streams 1 and 3: answered after the client's RST_STREAM(CANCEL), marked cancelled on
    // the flow and the span.
    for sid in [1, 3] {
        let x = by_stream(sid);
        let h2 = x.http2.expect("HTTP/2 facts on the response flow");
        assert!(h2.cancelled, "stream {sid}");
        assert_eq!(
            h2.reset.map(|r| (r.error_code, r.by_client)),
            Some((8, true))
        );
        assert_eq!(x.attr(attr::HTTP2_CANCELLED).as_deref(), Some("true"));
        assert_eq!(
            x.attr(attr::HTTP2_RESET_ERROR_CODE).as_deref(),
            Some("CANCEL")
        );
    }
    // The gRPC status is the server's, from the trailers that came after the reset.
    assert_eq!(by_stream(3).grpc_status_header.as_deref(), Some("0"));
    // Stream 5: cancelled with no answer: no response, the span says cancelled.
    let never = by_stream(5);
    assert!(never.code.is_none() && never.http2.is_none());
    assert_eq!(never.attr(attr::HTTP2_CANCELLED).as_deref(), Some("true"));
    assert_eq!(never.span.status.code, StatusCode::Error);
    assert!(by_stream(7)
        .http2
        .is_some_and(|h| !h.cancelled && h.reset.is_none()));
    // HPACK in step: every field block decoded, nothing unknown.
    assert_eq!(c.h2_hpack_unknown_fields + c.h2_hpack_errors, 0);
    assert_eq!(c.h2_streams_cancelled, 3);
    assert_eq!(c.h2_frames_after_reset, 4);
    assert_eq!(c.h2_frames_on_closed_streams, 0);
}

#[test]
fn f9_goaway_last_stream_id_is_respected() {
    let (records, c) = replay_fieldcase("kinds", "F9-h2-goaway-last-stream-id.pcap");
    let xs = exchanges(&records);
    let row = |x: &Exchange| (x.client_port(), x.path().unwrap(), x.code);
    assert_eq!(
        sorted(xs.iter().map(row).collect()),
        sorted(vec![
            (47002, "/a".into(), Some(200)),
            (47002, "/b".into(), Some(200)),
            (47002, "/c".into(), None),
            (47002, "/d".into(), None),
            (47003, "/c".into(), Some(200)),
            (47003, "/d".into(), Some(200)),
        ])
    );
    assert_eq!(c.h2_streams_refused_by_goaway, 2);
    assert_eq!(c.h2_streams_cancelled, 0);
}

#[test]
fn case09_grpc_joined_mid_way_is_honest() {
    let (records, c) = replay_fieldcase("cases/pcap", "09-grpc-midstream-honest-partial.pcap");
    let xs = exchanges(&records);
    assert_eq!(
        sorted(xs.iter().map(Exchange::stream).collect()),
        vec![15, 17, 19, 21, 23, 25]
    );
    for x in &xs {
        let sid = x.stream();
        assert_eq!(x.attr(attr::RPC_SYSTEM).as_deref(), Some("grpc"), "s{sid}");
        // grpc-status was indexed to an entry from before the cut: never OK by default.
        assert_ne!(x.grpc_status(), Some(0), "s{sid}");
        match sid {
            // SayHello and the new SayGoodbye: no message, status unknown.
            15 | 17 | 19 | 21 => {
                assert_eq!(x.grpc_status(), None, "s{sid}");
                assert_eq!(x.span.status.code, StatusCode::Unset);
            }
            // Lookup: a literal grpc-message says the call failed: UNKNOWN, inferred.
            _ => {
                assert_eq!(x.grpc_status(), Some(2), "s{sid}");
                assert_eq!(
                    x.attr(attr::GRPC_STATUS_CODE_SOURCE).as_deref(),
                    Some("inferred_from_grpc_message")
                );
                assert_eq!(x.span.status.code, StatusCode::Error);
                assert_eq!(x.span.status.message.as_deref(), Some(GHOST));
                assert_eq!(x.grpc_message_header.as_deref(), Some(GHOST));
                let g = x.http2.and_then(|h| h.grpc.as_ref()).unwrap();
                assert_eq!(
                    (g.code, g.source),
                    (2, GrpcStatusSource::InferredFromMessage)
                );
                // Not the server's grpc-status: no header pretends it was sent.
                assert_eq!(x.grpc_status_header, None);
            }
        }
        // Paths from entries before the cut stay unknown, never guessed.
        let want = (sid == 21).then(|| format!("{GREETER}SayGoodbye"));
        assert_eq!(x.path(), want, "s{sid}");
    }
    assert_eq!(c.grpc_status_inferred_from_message, 2);
}

#[test]
fn case09_control_whole_session_decodes() {
    let (records, _) = replay_fieldcase("cases/pcap", "09-grpc-midstream-honest-partial-full.pcap");
    let xs = exchanges(&records);
    let got: Vec<_> = sorted(
        xs.iter()
            .map(|x| (x.stream(), x.path().unwrap(), x.grpc_status()))
            .collect(),
    );
    let mut want = Vec::new();
    for sid in (1..=25).step_by(2) {
        let call = match sid {
            11 | 13 | 23 | 25 => "Lookup",
            21 => "SayGoodbye",
            _ => "SayHello",
        };
        let code = if call == "Lookup" { 5 } else { 0 };
        want.push((sid, format!("{GREETER}{call}"), Some(code)));
    }
    assert_eq!(got, want);
}

#[test]
fn case10_grpc_status_from_trailers_and_http_mapping() {
    let (records, c) = replay_fieldcase("cases/pcap", "10-grpc-status-from-trailers.pcap");
    let xs = exchanges(&records);
    assert_eq!(xs.len(), 17);
    let grpcio: BTreeMap<i64, Option<i64>> = xs
        .iter()
        .filter(|x| x.client_port() == 59284)
        .map(|x| (x.stream(), x.grpc_status()))
        .collect();
    for (sid, code) in grpcio {
        let want = match sid {
            1 | 25 | 29 => 0,
            23 | 27 => 13,
            _ => 5,
        };
        assert_eq!(code, Some(want), "s{sid}");
    }
    // nginx answers 503 with no grpc-status: UNAVAILABLE by gRPC's mapping, marked derived,
    // the HTTP status kept on the flow and the span.
    let nginx: Vec<_> = xs.iter().filter(|x| x.client_port() == 39428).collect();
    assert_eq!(nginx.len(), 2);
    for x in nginx {
        assert_eq!(x.code, Some(503));
        assert_eq!(x.int(attr::HTTP_RESPONSE_STATUS_CODE), Some(503));
        assert_eq!(x.grpc_status(), Some(14));
        assert_eq!(
            x.attr(attr::GRPC_STATUS_CODE_SOURCE).as_deref(),
            Some("derived_from_http_status")
        );
        assert_eq!(x.span.status.code, StatusCode::Error);
        assert_eq!(x.grpc_status_header, None);
        let g = x.http2.and_then(|h| h.grpc.as_ref()).unwrap();
        assert_eq!(
            (g.code, g.source),
            (14, GrpcStatusSource::DerivedFromHttpStatus)
        );
    }
    assert_eq!(c.grpc_status_derived_from_http_status, 2);
}

#[test]
fn case11_continuation_splits_decode_and_interleaving_stops_the_connection() {
    let (records, c) = replay_fieldcase("cases/pcap", "11-h2-continuation-frames.pcap");
    let xs = exchanges(&records);
    let got = sorted(
        xs.iter()
            .map(|x| (x.client_port(), x.stream(), x.path().unwrap(), x.code))
            .collect::<Vec<_>>(),
    );
    let get = |port, sid, path: &str, code| (port, sid, path.to_string(), Some(code));
    let hello = format!("{GREETER}SayHello");
    let want = sorted(vec![
        get(35232, 13, "/a", 200),
        get(35232, 15, "/b", 200),
        get(35242, 13, "/a", 200),
        get(35242, 15, "/b", 200),
        get(55804, 13, "/a", 200),
        get(55804, 15, "/b", 200),
        get(49220, 1, &hello, 200),
        get(49220, 3, &hello, 200),
        get(35254, 1, "/Request/request", 404),
        get(35254, 3, "/a", 200),
        get(35254, 5, "/b", 200),
    ]);
    assert_eq!(got, want);
    // (f): another stream's HEADERS inside a header block: a connection error, no record at
    // all from that connection (client port 35260), counted.
    let on_35260 = records.iter().any(|r| match r {
        Record::Flow(f) => match f.l4 {
            flows::record::Layer4::Tcp {
                source_port,
                destination_port,
                ..
            } => source_port == 35260 || destination_port == 35260,
            _ => false,
        },
        _ => false,
    });
    assert!(!on_35260);
    assert_eq!(c.h2_connection_error_field_block_interrupted, 1);
    // (e): the CONTINUATION flood is cut and counted.
    assert_eq!(c.h2_continuation_flood, 1);
}
