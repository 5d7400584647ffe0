//! HTTP/2 and gRPC end to end: synthetic h2 conversations through the engine.

mod support;

use flows::l7::http2::frame::encode::frame;
use flows::l7::http2::hpack::encode as hp;
use flows::l7::http2::PREFACE;
use flows::record::{attr, AttributeValue, L7Record, L7Type, Record, Span, SpanKind, StatusCode};
use flows::synth::TcpConversation;
use support::*;

const DATA: u8 = 0;
const HEADERS: u8 = 1;
const RST_STREAM: u8 = 3;
const SETTINGS: u8 = 4;
const GOAWAY: u8 = 7;
const WINDOW_UPDATE: u8 = 8;
const CONTINUATION: u8 = 9;
const END_STREAM: u8 = 0x1;
const END_HEADERS: u8 = 0x4;
const PADDED: u8 = 0x8;
const PRIORITY: u8 = 0x20;

fn conv() -> TcpConversation {
    TcpConversation::new(
        "198.18.0.2:51234".parse().unwrap(),
        "198.18.0.1:50051".parse().unwrap(),
        100,
        9000,
        1_000_000,
    )
}

/// A field block of literals without indexing (new names), so it decodes with any table.
fn block(fields: &[(&str, &str)]) -> Vec<u8> {
    let mut b = Vec::new();
    for (n, v) in fields {
        hp::literal(&mut b, n, v, false);
    }
    b
}

fn grpc_msg(payload: &[u8]) -> Vec<u8> {
    let mut v = vec![0];
    v.extend((payload.len() as u32).to_be_bytes());
    v.extend(payload);
    v
}

fn grpc_request(path: &str) -> Vec<(&'static str, String)> {
    vec![
        (":method", "POST".into()),
        (":scheme", "http".into()),
        (":path", path.into()),
        (":authority", "greeter.test:50051".into()),
        ("content-type", "application/grpc".into()),
        ("te", "trailers".into()),
    ]
}

fn owned(f: &[(&'static str, String)]) -> Vec<u8> {
    let v: Vec<(&str, &str)> = f.iter().map(|(a, b)| (*a, b.as_str())).collect();
    block(&v)
}

/// Client preface + SETTINGS; server SETTINGS + ACKs.
fn open(c: &mut TcpConversation) {
    c.handshake();
    let mut hello = PREFACE.to_vec();
    hello.extend(frame(SETTINGS, 0, 0, &[0, 3, 0, 0, 0, 100]));
    c.client_send(&hello, 1448);
    let mut s = frame(SETTINGS, 0, 0, &[0, 1, 0, 0, 0x10, 0]);
    s.extend(frame(SETTINGS, 1, 0, &[]));
    c.server_send(&s, 1448);
    c.client_send(&frame(SETTINGS, 1, 0, &[]), 1448);
}

fn span_named<'a>(spans: &[&'a Span], name: &str) -> &'a Span {
    spans.iter().find(|s| s.name == name).unwrap_or_else(|| {
        panic!(
            "no span {name:?} in {:?}",
            spans.iter().map(|s| &s.name).collect::<Vec<_>>()
        )
    })
}

fn int(s: &Span, k: &str) -> i64 {
    match s.attributes.get(k) {
        Some(AttributeValue::Int(v)) => *v,
        other => panic!("{k}: {other:?}"),
    }
}

fn string(s: &Span, k: &str) -> String {
    match s.attributes.get(k) {
        Some(AttributeValue::String(v)) => v.to_string(),
        other => panic!("{k}: {other:?}"),
    }
}

/// `(type, method, url, code, protocol)` of every HTTP/2 flow.
fn h2_flows(records: &[Record]) -> Vec<(L7Type, String, String, Option<u16>)> {
    records
        .iter()
        .filter_map(|r| match r {
            Record::Flow(f) => match &f.l7 {
                Some(l7) => match &l7.record {
                    L7Record::Http(h) if h.protocol == "HTTP/2" => {
                        Some((l7.r#type, h.method.to_string(), h.url.to_string(), h.code))
                    }
                    _ => None,
                },
                None => None,
            },
            _ => None,
        })
        .collect()
}

#[test]
fn prior_knowledge_grpc_unary_call() {
    let mut c = conv();
    open(&mut c);
    let mut req = grpc_request("/helloworld.Greeter/SayHello");
    req.push(("grpc-timeout", "250m".into()));
    req.push((
        "traceparent",
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01".into(),
    ));
    req.push(("tracestate", "congo=t61rcWkgMzE".into()));
    let mut bytes = frame(HEADERS, END_HEADERS, 1, &owned(&req));
    bytes.extend(frame(DATA, END_STREAM, 1, &grpc_msg(b"\x0a\x05world")));
    c.client_send(&bytes, 1448);
    let mut resp = frame(
        HEADERS,
        END_HEADERS,
        1,
        &block(&[(":status", "200"), ("content-type", "application/grpc")]),
    );
    resp.extend(frame(DATA, 0, 1, &grpc_msg(b"\x0a\x0bHello world")));
    resp.extend(frame(
        HEADERS,
        END_HEADERS | END_STREAM,
        1,
        &block(&[("grpc-status", "0"), ("grpc-message", "")]),
    ));
    c.server_send(&resp, 1448);
    c.close();
    let mut e = l7_engine();
    let records = run(&mut e, c.frames());
    assert_eq!(
        h2_flows(&records),
        vec![
            (
                L7Type::Request,
                "POST".into(),
                "http://greeter.test:50051/helloworld.Greeter/SayHello".into(),
                None
            ),
            (
                L7Type::Response,
                "POST".into(),
                "http://greeter.test:50051/helloworld.Greeter/SayHello".into(),
                Some(200)
            ),
        ]
    );
    let spans = spans(&records);
    assert_eq!(spans.len(), 1);
    let s = spans[0];
    assert_eq!(s.name, "helloworld.Greeter/SayHello");
    assert_eq!(s.kind, SpanKind::Server);
    assert_eq!(s.status.code, StatusCode::Unset);
    assert_eq!(string(s, attr::RPC_SYSTEM), "grpc");
    assert_eq!(string(s, attr::RPC_SERVICE), "helloworld.Greeter");
    assert_eq!(string(s, attr::RPC_METHOD), "SayHello");
    assert_eq!(int(s, attr::RPC_GRPC_STATUS_CODE), 0);
    assert_eq!(int(s, attr::GRPC_REQUEST_MESSAGES), 1);
    assert_eq!(int(s, attr::GRPC_REQUEST_MESSAGE_BYTES), 7);
    assert_eq!(int(s, attr::GRPC_RESPONSE_MESSAGES), 1);
    assert_eq!(int(s, attr::GRPC_RESPONSE_MESSAGE_BYTES), 13);
    assert_eq!(int(s, attr::GRPC_TIMEOUT_NS), 250_000_000);
    assert_eq!(string(s, attr::SERVER_ADDRESS), "greeter.test");
    assert_eq!(int(s, attr::SERVER_PORT), 50051);
    assert_eq!(string(s, attr::NETWORK_PROTOCOL_VERSION), "2");
    assert_eq!(s.trace_id.to_string(), "4bf92f3577b34da6a3ce929d0e0e4736");
    assert_eq!(s.parent_span_id.unwrap().to_string(), "00f067aa0ba902b7");
    assert_eq!(s.trace_state.as_deref(), Some("congo=t61rcWkgMzE"));
    assert!(s.end_time_ns > s.start_time_ns);
    let cn = e.counters();
    assert_eq!((cn.h2_requests, cn.h2_responses, cn.grpc_calls), (1, 1, 1));
    assert_eq!(cn.h2_frame_errors, 0);
    assert_eq!(cn.l7_unrecognised_flows, 0);
}

#[test]
fn multiplexed_streams_statuses_resets_and_goaway() {
    let mut c = conv();
    open(&mut c);
    // Three calls opened back to back, plus a plain HTTP/2 GET.
    let mut bytes = Vec::new();
    for (sid, m) in [(1, "A"), (3, "B"), (5, "C"), (9, "D")] {
        let req = grpc_request(&format!("/pkg.Svc/{m}"));
        bytes.extend(frame(HEADERS, END_HEADERS, sid, &owned(&req)));
    }
    bytes.extend(frame(
        HEADERS,
        END_HEADERS | END_STREAM,
        7,
        &block(&[
            (":method", "GET"),
            (":scheme", "http"),
            (":path", "/plain?x=1"),
            (":authority", "web.test"),
        ]),
    ));
    for sid in [1, 3, 5, 9] {
        bytes.extend(frame(DATA, END_STREAM, sid, &grpc_msg(b"q")));
    }
    c.client_send(&bytes, 1448);
    // Answers in reverse order: C fails UNAVAILABLE (trailers-only), B NOT_FOUND, A is reset
    // by the client, the GET gets a 503, and GOAWAY(last=7) refuses D.
    let mut resp = frame(
        HEADERS,
        END_HEADERS | END_STREAM,
        5,
        &block(&[
            (":status", "200"),
            ("content-type", "application/grpc"),
            ("grpc-status", "14"),
            ("grpc-message", "backend%20down"),
        ]),
    );
    resp.extend(frame(
        HEADERS,
        END_HEADERS,
        3,
        &block(&[(":status", "200"), ("content-type", "application/grpc")]),
    ));
    resp.extend(frame(
        HEADERS,
        END_HEADERS | END_STREAM,
        3,
        &block(&[("grpc-status", "5")]),
    ));
    resp.extend(frame(
        HEADERS,
        END_HEADERS,
        7,
        &block(&[(":status", "503"), ("content-type", "text/plain")]),
    ));
    resp.extend(frame(DATA, END_STREAM, 7, b"busy"));
    resp.extend(frame(WINDOW_UPDATE, 0, 0, &[0, 0, 1, 0]));
    resp.extend(frame(GOAWAY, 0, 0, &[0, 0, 0, 7, 0, 0, 0, 0]));
    c.server_send(&resp, 1448);
    c.client_send(&frame(RST_STREAM, 0, 1, &[0, 0, 0, 8]), 1448);
    c.close();
    let mut e = l7_engine();
    let records = run(&mut e, c.frames());
    let spans = spans(&records);
    assert_eq!(spans.len(), 5, "{spans:#?}");
    let a = span_named(&spans, "pkg.Svc/A");
    assert_eq!(a.status.code, StatusCode::Error);
    assert_eq!(string(a, attr::ERROR_TYPE), "CANCEL");
    let b = span_named(&spans, "pkg.Svc/B");
    assert_eq!(int(b, attr::RPC_GRPC_STATUS_CODE), 5);
    assert_eq!(
        b.status.code,
        StatusCode::Unset,
        "NOT_FOUND is not a server error"
    );
    let cc = span_named(&spans, "pkg.Svc/C");
    assert_eq!(int(cc, attr::RPC_GRPC_STATUS_CODE), 14);
    assert_eq!(cc.status.code, StatusCode::Error);
    assert_eq!(cc.status.message.as_deref(), Some("backend down"));
    let d = span_named(&spans, "pkg.Svc/D");
    assert_eq!(string(d, attr::ERROR_TYPE), "GOAWAY");
    let get = span_named(&spans, "GET");
    assert_eq!(int(get, attr::HTTP_RESPONSE_STATUS_CODE), 503);
    assert_eq!(string(get, attr::URL_PATH), "/plain");
    assert_eq!(string(get, attr::URL_QUERY), "x=1");
    assert_eq!(int(get, attr::HTTP_RESPONSE_BODY_SIZE), 4);
    assert_eq!(get.status.code, StatusCode::Error);
    let cn = e.counters();
    assert_eq!(cn.h2_streams_reset, 1);
    assert_eq!(cn.h2_streams_refused_by_goaway, 1);
    assert_eq!(cn.h2_goaways, 1);
    assert_eq!(cn.h2_requests, 5);
}

#[test]
fn client_spans_mark_any_non_ok_grpc_status_as_error() {
    // Egress requests: the local process is the client.
    let mut c = conv();
    open(&mut c);
    c.client_send(
        &frame(
            HEADERS,
            END_HEADERS | END_STREAM,
            1,
            &owned(&grpc_request("/pkg.Svc/Get")),
        ),
        1448,
    );
    c.server_send(
        &frame(
            HEADERS,
            END_HEADERS | END_STREAM,
            1,
            &block(&[
                (":status", "200"),
                ("content-type", "application/grpc"),
                ("grpc-status", "5"),
            ]),
        ),
        1448,
    );
    let mut frames = c.into_frames();
    for f in &mut frames {
        f.direction = match f.direction {
            flows::packet::Direction::Ingress => flows::packet::Direction::Egress,
            _ => flows::packet::Direction::Ingress,
        };
    }
    let records = run(&mut l7_engine(), &frames);
    let s = spans(&records)[0].clone();
    assert_eq!(s.kind, SpanKind::Client);
    assert_eq!(s.status.code, StatusCode::Error);
    assert_eq!(string(&s, attr::ERROR_TYPE), "NOT_FOUND");
}

#[test]
fn continuation_padding_and_priority() {
    let mut c = conv();
    open(&mut c);
    let blk = owned(&grpc_request("/pkg.Svc/Split"));
    let (a, rest) = blk.split_at(10);
    let (b, cpart) = rest.split_at(20);
    // HEADERS with PADDED|PRIORITY carrying the first piece, then two CONTINUATIONs.
    let mut payload = vec![3u8, 0, 0, 0, 0, 15];
    payload.extend(a);
    payload.extend([0, 0, 0]);
    let mut bytes = frame(HEADERS, PADDED | PRIORITY, 1, &payload);
    bytes.extend(frame(CONTINUATION, 0, 1, b));
    bytes.extend(frame(CONTINUATION, END_HEADERS, 1, cpart));
    // Padded DATA.
    let mut data = vec![4u8];
    data.extend(grpc_msg(b"hi"));
    data.extend([0; 4]);
    bytes.extend(frame(DATA, END_STREAM | PADDED, 1, &data));
    c.client_send(&bytes, 7);
    c.server_send(
        &frame(
            HEADERS,
            END_HEADERS | END_STREAM,
            1,
            &block(&[
                (":status", "200"),
                ("content-type", "application/grpc"),
                ("grpc-status", "0"),
            ]),
        ),
        1448,
    );
    let mut e = l7_engine();
    let records = run(&mut e, c.frames());
    let s = spans(&records)[0].clone();
    assert_eq!(s.name, "pkg.Svc/Split");
    assert_eq!(int(&s, attr::GRPC_REQUEST_MESSAGES), 1);
    assert_eq!(int(&s, attr::GRPC_REQUEST_MESSAGE_BYTES), 2);
    assert_eq!(e.counters().h2_frame_errors, 0);
}

/// The request field block of call `n` the way a real encoder writes it: `:path` and
/// `:authority` inserted into the dynamic table on first use, referenced afterwards.
struct Encoder {
    /// Dynamic table, newest first (what the peer's decoder holds).
    table: Vec<(String, String)>,
}

impl Encoder {
    fn field(&mut self, out: &mut Vec<u8>, name: &str, value: &str, static_name: usize) {
        if let Some(i) = self.table.iter().position(|(n, v)| n == name && v == value) {
            hp::indexed(out, 62 + i);
        } else {
            hp::literal_indexed_name(out, static_name, value, true);
            self.table.insert(0, (name.into(), value.into()));
        }
    }

    fn request(&mut self, path: &str) -> Vec<u8> {
        let mut b = Vec::new();
        hp::indexed(&mut b, 3); // :method POST
        hp::indexed(&mut b, 6); // :scheme http
        self.field(&mut b, ":authority", "greeter.test", 1);
        self.field(&mut b, ":path", path, 4);
        self.field(&mut b, "content-type", "application/grpc", 31);
        b
    }
}

/// A connection with four unary calls; each response ends with literal trailers.
fn indexed_conversation(mss: usize) -> (TcpConversation, usize) {
    indexed_conversation_split(1448, mss)
}

/// Like [`indexed_conversation`], with call A sent in `mss_a` segments and the rest in `mss`.
fn indexed_conversation_split(mss_a: usize, mss: usize) -> (TcpConversation, usize) {
    let mut c = conv();
    open(&mut c);
    let mut enc = Encoder { table: Vec::new() };
    let mut capture_start = 0;
    let paths = ["/pkg.Svc/A", "/pkg.Svc/B", "/pkg.Svc/B", "/pkg.Svc/C"];
    for (i, path) in paths.iter().enumerate() {
        let sid = 1 + 2 * i as u32;
        if i == 1 {
            // The capture will begin here: preface, SETTINGS and call A are lost.
            capture_start = c.frames().len();
        }
        let mss = if i == 0 { mss_a } else { mss };
        let mut bytes = frame(HEADERS, END_HEADERS, sid, &enc.request(path));
        bytes.extend(frame(DATA, END_STREAM, sid, &grpc_msg(b"req")));
        c.client_send(&bytes, mss);
        let mut resp = frame(
            HEADERS,
            END_HEADERS,
            sid,
            &block(&[(":status", "200"), ("content-type", "application/grpc")]),
        );
        resp.extend(frame(DATA, 0, sid, &grpc_msg(b"resp")));
        resp.extend(frame(
            HEADERS,
            END_HEADERS | END_STREAM,
            sid,
            &block(&[("grpc-status", "0")]),
        ));
        c.server_send(&resp, mss);
    }
    c.close();
    (c, capture_start)
}

#[test]
fn dynamic_table_indexing_from_the_start() {
    let (c, _) = indexed_conversation(1448);
    let mut e = l7_engine();
    let records = run(&mut e, c.frames());
    let names: Vec<_> = spans(&records).iter().map(|s| s.name.to_string()).collect();
    assert_eq!(names, ["pkg.Svc/A", "pkg.Svc/B", "pkg.Svc/B", "pkg.Svc/C"]);
    assert_eq!(e.counters().h2_hpack_unknown_fields, 0);
}

#[test]
fn mid_stream_start_resolves_entries_inserted_since_capture_began() {
    let (c, start) = indexed_conversation(1448);
    let frames = &c.frames()[start..];
    let mut e = l7_engine();
    let records = run(&mut e, frames);
    let spans = spans(&records);
    // Call B inserted its :path after the capture began: its second use resolves exactly,
    // and C's literal is exact too. :authority and content-type were inserted by call A
    // (before the capture), so they stay unknown — never guessed.
    let names: Vec<_> = spans.iter().map(|s| s.name.to_string()).collect();
    assert_eq!(names, ["pkg.Svc/B", "pkg.Svc/B", "pkg.Svc/C"]);
    for s in &spans {
        assert_eq!(
            s.attributes.get(attr::HTTP2_PARTIAL),
            Some(&AttributeValue::Bool(true))
        );
        // No :authority known: server.address falls back to the socket address.
        assert_eq!(string(s, attr::SERVER_ADDRESS), "198.18.0.1");
        assert_eq!(int(s, attr::RPC_GRPC_STATUS_CODE), 0);
    }
    let flows = h2_flows(&records);
    assert!(flows.contains(&(L7Type::Request, "POST".into(), "/pkg.Svc/B".into(), None)));
    let cn = e.counters();
    assert!(cn.h2_hpack_unknown_fields >= 6, "{cn:?}");
    assert!(cn.h2_hpack_resolved_in_partial_table >= 1, "{cn:?}");
    assert_eq!(cn.h2_streams_partial, 3);
    assert_eq!(cn.l7_unrecognised_flows, 0);
}

#[test]
fn mid_stream_start_recovers_fully_after_a_size_update_to_zero() {
    let mut c = conv();
    open(&mut c);
    let mut enc = Encoder { table: Vec::new() };
    let b = enc.request("/pkg.Svc/Old");
    c.client_send(&frame(HEADERS, END_HEADERS | END_STREAM, 1, &b), 1448);
    let start = c.frames().len();
    // Flush: size update 0 then back to 4096; the encoder starts over.
    let mut b = Vec::new();
    hp::size_update(&mut b, 0);
    hp::size_update(&mut b, 4096);
    enc.table.clear();
    b.extend(enc.request("/pkg.Svc/New"));
    c.client_send(&frame(HEADERS, END_HEADERS | END_STREAM, 3, &b), 1448);
    let b = enc.request("/pkg.Svc/New");
    c.client_send(&frame(HEADERS, END_HEADERS | END_STREAM, 5, &b), 1448);
    for sid in [1, 3, 5] {
        c.server_send(
            &frame(
                HEADERS,
                END_HEADERS | END_STREAM,
                sid,
                &block(&[(":status", "200"), ("grpc-status", "0")]),
            ),
            1448,
        );
    }
    let mut e = l7_engine();
    let records = run(&mut e, &c.frames()[start..]);
    let s = spans(&records);
    assert_eq!(s.len(), 2);
    for s in s {
        assert_eq!(s.name, "pkg.Svc/New");
        assert_eq!(string(s, attr::SERVER_ADDRESS), "greeter.test");
        assert_eq!(s.attributes.get(attr::HTTP2_PARTIAL), None);
    }
    assert_eq!(e.counters().h2_hpack_unknown_fields, 0);
}

#[test]
fn h2c_upgrade_makes_the_upgrade_request_stream_one() {
    let mut c = conv();
    c.handshake();
    c.client_send(
        b"GET /hello HTTP/1.1\r\nHost: up.test\r\nConnection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAAQAoAAAAAIAAAAA\r\n\r\n",
        1448,
    );
    let mut resp =
        b"HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: h2c\r\n\r\n".to_vec();
    resp.extend(frame(SETTINGS, 0, 0, &[]));
    resp.extend(frame(
        HEADERS,
        END_HEADERS,
        1,
        &block(&[(":status", "200"), ("content-type", "text/plain")]),
    ));
    resp.extend(frame(DATA, END_STREAM, 1, b"hello h2c"));
    c.server_send(&resp, 1448);
    let mut hello = PREFACE.to_vec();
    hello.extend(frame(SETTINGS, 0, 0, &[]));
    hello.extend(frame(
        HEADERS,
        END_HEADERS | END_STREAM,
        3,
        &block(&[
            (":method", "GET"),
            (":scheme", "http"),
            (":path", "/second"),
            (":authority", "up.test"),
        ]),
    ));
    c.client_send(&hello, 1448);
    c.server_send(
        &frame(
            HEADERS,
            END_HEADERS | END_STREAM,
            3,
            &block(&[(":status", "404")]),
        ),
        1448,
    );
    c.close();
    let mut e = l7_engine();
    let records = run(&mut e, c.frames());
    let spans = spans(&records);
    assert_eq!(spans.len(), 2, "{spans:#?}");
    assert_eq!(string(spans[0], attr::URL_PATH), "/hello");
    assert_eq!(int(spans[0], attr::HTTP_RESPONSE_STATUS_CODE), 200);
    assert_eq!(int(spans[0], attr::HTTP_RESPONSE_BODY_SIZE), 9);
    assert_eq!(string(spans[0], attr::NETWORK_PROTOCOL_VERSION), "2");
    assert_eq!(int(spans[0], attr::HTTP2_STREAM_ID), 1);
    assert_eq!(string(spans[1], attr::URL_PATH), "/second");
    assert_eq!(int(spans[1], attr::HTTP_RESPONSE_STATUS_CODE), 404);
    let cn = e.counters();
    assert_eq!((cn.h2_upgrades, cn.http1_requests), (1, 1));
    assert_eq!(cn.h2_frame_errors, 0);
}

/// What re-segmentation must not change: every L7 flow and span, minus times and ids.
fn projection(records: &[Record]) -> Vec<String> {
    let mut v: Vec<String> = h2_flows(records)
        .into_iter()
        .map(|f| format!("{f:?}"))
        .collect();
    for s in spans(records) {
        let mut a: Vec<String> = s
            .attributes
            .iter()
            .map(|(k, v)| format!("{k}={v:?}"))
            .collect();
        a.sort();
        v.push(format!("{} {:?} {:?} {a:?}", s.name, s.kind, s.status));
    }
    v
}

mod props {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(48))]

        /// Any segmentation of the same conversation gives the same records, from the start
        /// or joined mid-way.
        #[test]
        fn any_segmentation_gives_the_same_records(mss in 1usize..200, mid in any::<bool>()) {
            let (reference, ref_start) = indexed_conversation(1448);
            let (c, start) = indexed_conversation_split(1448, mss);
            let (want, got) = if mid {
                // The capture begins at call B in both: the same bytes, cut differently.
                (
                    projection(&run(&mut l7_engine(), &reference.frames()[ref_start..])),
                    projection(&run(&mut l7_engine(), &c.frames()[start..])),
                )
            } else {
                (
                    projection(&run(&mut l7_engine(), reference.frames())),
                    projection(&run(&mut l7_engine(), c.frames())),
                )
            };
            prop_assert!(!want.is_empty());
            prop_assert_eq!(got, want);
        }
    }
}

#[test]
fn server_push_is_a_stream_of_its_own() {
    let mut c = conv();
    open(&mut c);
    let get = |path: &str| {
        block(&[
            (":method", "GET"),
            (":scheme", "http"),
            (":path", path),
            (":authority", "push.test"),
        ])
    };
    c.client_send(
        &frame(HEADERS, END_HEADERS | END_STREAM, 1, &get("/")),
        1448,
    );
    // §8.4: PUSH_PROMISE on stream 1 promising stream 2, then both responses.
    let mut promise = vec![0, 0, 0, 2];
    promise.extend(get("/style.css"));
    let mut resp = frame(5, END_HEADERS, 1, &promise);
    resp.extend(frame(
        HEADERS,
        END_HEADERS,
        2,
        &block(&[(":status", "200")]),
    ));
    resp.extend(frame(DATA, END_STREAM, 2, b"body{}"));
    resp.extend(frame(
        HEADERS,
        END_HEADERS | END_STREAM,
        1,
        &block(&[(":status", "200")]),
    ));
    c.server_send(&resp, 1448);
    let mut e = l7_engine();
    let records = run(&mut e, c.frames());
    let spans = spans(&records);
    let paths: Vec<_> = spans.iter().map(|s| string(s, attr::URL_PATH)).collect();
    assert_eq!(paths, ["/style.css", "/"]);
    assert_eq!(
        spans[0].kind,
        SpanKind::Server,
        "pushed by the local server"
    );
    assert_eq!(int(spans[0], attr::HTTP_RESPONSE_BODY_SIZE), 6);
}

#[test]
fn streams_begun_before_the_capture_are_reported_once_the_client_moves_on() {
    let mut c = conv();
    open(&mut c);
    c.client_send(
        &frame(
            HEADERS,
            END_HEADERS | END_STREAM,
            1,
            &owned(&grpc_request("/pkg.Svc/Old")),
        ),
        1448,
    );
    let start = c.frames().len();
    // Captured: only the old stream's answer, then a new call.
    c.server_send(
        &frame(
            HEADERS,
            END_HEADERS | END_STREAM,
            1,
            &block(&[
                (":status", "200"),
                ("content-type", "application/grpc"),
                ("grpc-status", "0"),
            ]),
        ),
        1448,
    );
    c.client_send(
        &frame(
            HEADERS,
            END_HEADERS | END_STREAM,
            3,
            &owned(&grpc_request("/pkg.Svc/New")),
        ),
        1448,
    );
    c.server_send(
        &frame(
            HEADERS,
            END_HEADERS | END_STREAM,
            3,
            &block(&[
                (":status", "200"),
                ("content-type", "application/grpc"),
                ("grpc-status", "0"),
            ]),
        ),
        1448,
    );
    let frames = c.frames()[start..].to_vec();
    let mut e = l7_engine();
    // Feed all but the end: the old stream is reported as soon as the new request shows.
    let mut all = Vec::new();
    for f in &frames {
        let meta = flows::packet::CaptureMeta {
            ts_ns: f.ts_ns,
            ifindex: 2,
            direction: f.direction,
            orig_len: f.data.len() as u32,
            socket_cookie: None,
        };
        e.handle_frame(f.ts_ns, flows::packet::LinkType::Ethernet, &f.data, meta)
            .unwrap();
        while let Some(r) = e.poll_record() {
            all.push(r);
        }
    }
    let responses: Vec<_> = h2_flows(&all)
        .into_iter()
        .filter(|f| f.0 == L7Type::Response)
        .collect();
    assert_eq!(
        responses,
        vec![
            (L7Type::Response, String::new(), String::new(), Some(200)),
            (
                L7Type::Response,
                "POST".into(),
                "http://greeter.test:50051/pkg.Svc/New".into(),
                Some(200)
            ),
        ]
    );
    assert_eq!(spans(&all).len(), 1, "no span for a request never seen");
}

#[test]
fn snapped_responses_end_with_their_data_frame() {
    // The agent keeps the first bytes of each segment (`--snaplen`, 512 by default): a 1 KiB
    // response (HEADERS + DATA with END_STREAM in one segment) loses the end of its DATA
    // payload. The hole ends where the DATA frame ends (RFC 9113 §4.1), so every stream still
    // ends (§6.1) and the connection stays in frame sync: all exchanges reported, none resynced.
    let mut c = conv();
    open(&mut c);
    let n = 300u32;
    for i in 0..n {
        let sid = 1 + 2 * i;
        let req = block(&[
            (":method", "GET"),
            (":scheme", "http"),
            (":path", "/index.html"),
            (":authority", "198.18.0.1"),
        ]);
        c.client_send(&frame(HEADERS, END_HEADERS | END_STREAM, sid, &req), 1448);
        let mut resp = frame(
            HEADERS,
            END_HEADERS,
            sid,
            &block(&[(":status", "200"), ("content-type", "text/html")]),
        );
        resp.extend(frame(DATA, END_STREAM, sid, &[b'x'; 1024]));
        c.server_send(&resp, 1448);
    }
    c.close();
    let snapped: Vec<_> = c
        .frames()
        .iter()
        .map(|f| flows::synth::SynthFrame {
            data: f.data[..f.data.len().min(14 + 20 + 20 + 512)].to_vec(),
            ..f.clone()
        })
        .collect();
    let mut e = l7_engine();
    let records = run(&mut e, &snapped);
    let responses = h2_flows(&records)
        .into_iter()
        .filter(|f| f.0 == L7Type::Response && f.3 == Some(200))
        .count();
    assert_eq!(responses, n as usize);
    let k = e.counters();
    assert!(k.tcp_snapped_bytes > 0);
    assert_eq!((k.h2_resyncs, k.h2_streams_over_cap), (0, 0));
}
