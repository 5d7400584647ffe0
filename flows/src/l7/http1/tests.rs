//! The decoder as a whole: pairing, framing, resync, tolerance, marks.

use super::*;
use crate::counters::Counters;
use crate::l7::exchange::HttpVersion;
use crate::l7::{
    L7Config, L7Context, L7Event, L7Protocol, PacketCtx, StreamDecoder, StreamDir, REDACTED,
};
use crate::record::{BodyError, HttpHeader};
use crate::tcp::StreamEvent;
use crate::trace::IdGenerator;

struct H {
    dec: Http1Decoder,
    /// The decoder that took the connection over ([`H::follow_upgrade`]), fed what follows.
    next: Option<Box<dyn StreamDecoder>>,
    c: Counters,
    ids: IdGenerator,
    cfg: L7Config,
    out: Vec<L7Event>,
    ts: u64,
}

/// A compact view of the events for assertions.
#[derive(Debug, PartialEq, Eq)]
enum E {
    Req(String, String),
    Ex(Option<(String, String)>, Option<u16>, Option<u64>),
    NoResp(String, String),
}

impl H {
    fn new() -> Self {
        Self::with(L7Config::default())
    }
    fn with(cfg: L7Config) -> Self {
        Self {
            dec: Http1Decoder::new(),
            next: None,
            c: Counters::default(),
            ids: IdGenerator::new(1),
            cfg,
            out: Vec::new(),
            ts: 0,
        }
    }
    fn ev(&mut self, dir: StreamDir, ev: StreamEvent<'_>) {
        self.ts += 1;
        self.ev_at(dir, ev, self.ts);
    }
    fn ev_at(&mut self, dir: StreamDir, ev: StreamEvent<'_>, ts: u64) {
        let at = PacketCtx {
            ts_ns: ts,
            ..Default::default()
        };
        let mut cx = L7Context {
            counters: &mut self.c,
            ids: &mut self.ids,
            config: &self.cfg,
        };
        match self.next.as_mut() {
            Some(next) => next.on_event(dir, ev, &at, &mut cx, &mut self.out),
            None => self.dec.on_event(dir, ev, &at, &mut cx, &mut self.out),
        }
    }
    /// Swaps in the decoder the connection was handed to, as the engine does; false if none.
    fn follow_upgrade(&mut self) -> bool {
        self.next = self.dec.take_upgrade();
        self.next.is_some()
    }
    fn req(&mut self, bytes: &[u8]) {
        self.ev(StreamDir::ToServer, StreamEvent::Data(bytes));
    }
    fn resp(&mut self, bytes: &[u8]) {
        self.ev(StreamDir::ToClient, StreamEvent::Data(bytes));
    }
    fn finish(&mut self) {
        let mut cx = L7Context {
            counters: &mut self.c,
            ids: &mut self.ids,
            config: &self.cfg,
        };
        match self.next.as_mut() {
            Some(next) => next.finish(999, &mut cx, &mut self.out),
            None => self.dec.finish(999, &mut cx, &mut self.out),
        }
    }
    fn events(&self) -> Vec<E> {
        self.out
            .iter()
            .filter_map(|e| match e {
                L7Event::Http1(e) => Some(e),
                _ => None,
            })
            .map(|e| match e {
                Http1Event::Request(r) => E::Req(r.method.to_string(), r.target.clone()),
                Http1Event::Exchange {
                    request, response, ..
                } => E::Ex(
                    request
                        .as_ref()
                        .map(|r| (r.method.to_string(), r.target.clone())),
                    response.status,
                    response.body_size,
                ),
                Http1Event::Unanswered { request, .. } => {
                    E::NoResp(request.method.to_string(), request.target.clone())
                }
            })
            .collect()
    }
    /// The request body size of every exchange, in order.
    fn req_body_sizes(&self) -> Vec<Option<u64>> {
        self.out
            .iter()
            .filter_map(|e| match e {
                L7Event::Http1(Http1Event::Exchange { request_body, .. }) => {
                    Some(request_body.size)
                }
                _ => None,
            })
            .collect()
    }
    fn exchanges(&self) -> Vec<E> {
        self.events()
            .into_iter()
            .filter(|e| !matches!(e, E::Req(..)))
            .collect()
    }
}

fn ex(m: &str, p: &str, status: u16, body: Option<u64>) -> E {
    E::Ex(Some((m.into(), p.into())), Some(status), body)
}

#[test]
fn keep_alive_exchanges_pair_in_order() {
    let mut h = H::new();
    h.req(b"GET /a HTTP/1.1\r\nHost: h\r\n\r\n");
    h.resp(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello");
    h.req(b"POST /b HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\n\r\nxyz");
    h.resp(b"HTTP/1.1 201 Created\r\nContent-Length: 0\r\n\r\n");
    assert_eq!(
        h.events(),
        vec![
            E::Req("GET".into(), "/a".into()),
            ex("GET", "/a", 200, Some(5)),
            E::Req("POST".into(), "/b".into()),
            ex("POST", "/b", 201, Some(0)),
        ]
    );
    match &h.out[3] {
        L7Event::Http1(Http1Event::Exchange { request_body, .. }) => {
            assert_eq!(request_body.size, Some(3))
        }
        e => panic!("{e:?}"),
    }
}

#[test]
fn pipelined_requests_pair_with_responses_in_order() {
    let mut h = H::new();
    h.req(b"GET /1 HTTP/1.1\r\nHost: h\r\n\r\nGET /2 HTTP/1.1\r\nHost: h\r\n\r\nGET /3 HTTP/1.1\r\nHost: h\r\n\r\n");
    h.resp(b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\naHTTP/1.1 404 Not Found\r\nContent-Length: 2\r\n\r\nbbHTTP/1.1 500 Oops\r\nContent-Length: 0\r\n\r\n");
    assert_eq!(
        h.exchanges(),
        vec![
            ex("GET", "/1", 200, Some(1)),
            ex("GET", "/2", 404, Some(2)),
            ex("GET", "/3", 500, Some(0))
        ]
    );
}

#[test]
fn chunked_body_with_extensions_and_trailers() {
    let mut h = H::new();
    h.req(b"GET /c HTTP/1.1\r\n\r\n");
    h.resp(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n4;name=value;x=\"q\"\r\nWiki\r\n5\r\npedia\r\nE\r\n in\r\n\r\nchunks.\r\n0;last\r\nExpires: never\r\nX-Trailer: 1\r\n\r\n");
    h.req(b"GET /next HTTP/1.1\r\n\r\n");
    h.resp(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n");
    assert_eq!(
        h.exchanges(),
        vec![
            ex("GET", "/c", 200, Some(23)),
            ex("GET", "/next", 200, Some(0))
        ]
    );
    assert_eq!(h.c.http1_bad_chunked, 0);
}

#[test]
fn chunked_request_body_byte_by_byte() {
    let mut h = H::new();
    let req = b"POST /up HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\nGET /after HTTP/1.1\r\n\r\n";
    for b in req.iter() {
        h.req(std::slice::from_ref(b));
    }
    h.resp(
        b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n",
    );
    assert_eq!(
        h.exchanges(),
        vec![
            ex("POST", "/up", 200, Some(0)),
            ex("GET", "/after", 200, Some(0))
        ]
    );
    match &h.out[2] {
        L7Event::Http1(Http1Event::Exchange { request_body, .. }) => {
            assert_eq!(request_body.size, Some(3))
        }
        e => panic!("{e:?}"),
    }
}

#[test]
fn head_204_and_304_have_no_body() {
    let mut h = H::new();
    h.req(b"HEAD /h HTTP/1.1\r\n\r\nGET /n HTTP/1.1\r\n\r\nGET /m HTTP/1.1\r\n\r\nGET /z HTTP/1.1\r\n\r\n");
    // HEAD's Content-Length describes the GET body that was not sent (RFC 9110 §9.3.2).
    h.resp(b"HTTP/1.1 200 OK\r\nContent-Length: 1234\r\n\r\n");
    h.resp(b"HTTP/1.1 204 No Content\r\n\r\n");
    h.resp(b"HTTP/1.1 304 Not Modified\r\nContent-Length: 99\r\n\r\n");
    h.resp(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok");
    assert_eq!(
        h.exchanges(),
        vec![
            ex("HEAD", "/h", 200, Some(0)),
            ex("GET", "/n", 204, Some(0)),
            ex("GET", "/m", 304, Some(0)),
            ex("GET", "/z", 200, Some(2)),
        ]
    );
}

#[test]
fn continue_100_is_informational() {
    let mut h = H::new();
    h.req(b"POST /upload HTTP/1.1\r\nContent-Length: 4\r\nExpect: 100-continue\r\n\r\n");
    h.resp(b"HTTP/1.1 100 Continue\r\n\r\n");
    h.req(b"data");
    h.resp(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n");
    assert_eq!(h.exchanges(), vec![ex("POST", "/upload", 200, Some(0))]);
    assert_eq!(h.c.http1_informational, 1);
}

#[test]
fn upgrade_101_stops_parsing() {
    let mut h = H::new();
    h.req(b"GET /ws HTTP/1.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n");
    h.resp(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\n\x81\x05hello");
    h.req(b"\x81\x85garbage that is not http");
    assert_eq!(h.exchanges(), vec![ex("GET", "/ws", 101, Some(0))]);
    assert_eq!(h.c.http1_upgrades, 1);
    assert_eq!(h.c.http1_parse_errors, 0);
    assert!(!h.dec.is_dead());
}

#[test]
fn a_connect_tunnel_goes_to_a_fresh_protocol_detection() {
    // RFC 9110 §9.3.6: after a 2xx the connection relays bytes to the target. A proxy client
    // speaking plain HTTP through it: those exchanges are decoded, after the CONNECT's own.
    let mut h = H::new();
    h.req(b"CONNECT abc:80 HTTP/1.1\r\nHost: abc:80\r\n\r\n");
    h.resp(b"HTTP/1.1 200 Connection established\r\n\r\n");
    assert_eq!(h.exchanges(), vec![ex("CONNECT", "abc:80", 200, Some(0))]);
    assert!(h.follow_upgrade());
    h.req(b"GET / HTTP/1.1\r\nHost: abc\r\n\r\n");
    h.resp(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok");
    h.finish();
    assert_eq!(
        h.exchanges(),
        vec![
            ex("CONNECT", "abc:80", 200, Some(0)),
            ex("GET", "/", 200, Some(2))
        ]
    );
    assert_eq!(h.c.http1_upgrades, 1);
    // The relayed bytes may come in the same segment as the 2xx head; TLS to the target is
    // recognised as TLS, not read as HTTP.
    let mut h = H::new();
    h.req(b"CONNECT abc:443 HTTP/1.1\r\n\r\n");
    h.resp(b"HTTP/1.1 200 OK\r\n\r\n\x16\x03\x03\x00\x31\x02\x00\x00\x2d\x03\x03");
    assert!(h.follow_upgrade());
    h.req(b"\x17\x03\x03\x00\x05GET /");
    assert_eq!(h.next.as_ref().map(|d| d.protocol()), Some(L7Protocol::Tls));
    assert_eq!(h.c.tls_flows_on_wire, 1);
    assert_eq!(h.c.http1_requests, 1);
    assert_eq!(h.c.http1_invalid_heads + h.c.http1_parse_errors, 0);
}

#[test]
fn close_delimited_response_ends_at_fin() {
    let mut h = H::new();
    h.req(b"GET /old HTTP/1.0\r\n\r\n");
    h.resp(b"HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\n\r\nall of ");
    h.resp(b"this body");
    assert_eq!(h.exchanges(), vec![]);
    h.ev(StreamDir::ToClient, StreamEvent::Fin);
    assert_eq!(h.exchanges(), vec![ex("GET", "/old", 200, Some(16))]);
}

#[test]
fn garbage_marks_the_flow_not_http() {
    let mut h = H::new();
    h.req(b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03");
    // Held until the server's answer says whether it was a request to an HTTP server.
    assert!(!h.dec.is_dead());
    h.resp(b"\x16\x03\x03\x00\x7a\x02\x00\x00\x76\x03\x03");
    assert!(h.dec.is_dead());
    assert_eq!(h.c.http1_parse_errors, 1);
    h.req(b"GET / HTTP/1.1\r\n\r\n");
    assert!(h.events().is_empty());
}

#[test]
fn header_caps_are_counted_and_the_stream_resyncs() {
    let cfg = L7Config {
        max_headers: 4,
        max_header_bytes: 256,
        ..L7Config::default()
    };
    let mut h = H::with(cfg);
    h.req(b"GET /many HTTP/1.1\r\na: 1\r\nb: 2\r\nc: 3\r\nd: 4\r\ne: 5\r\n\r\nGET /ok HTTP/1.1\r\n\r\n");
    assert_eq!(h.c.http1_too_many_headers, 1);
    let mut big = b"GET /big HTTP/1.1\r\n".to_vec();
    big.extend_from_slice(b"X-Filler: ");
    big.extend_from_slice(&[b'z'; 2000]);
    big.extend_from_slice(b"\r\n");
    h.req(&big[..100]);
    h.req(&big[100..]);
    h.req(b"\r\nGET /after HTTP/1.1\r\n\r\n");
    assert_eq!(h.c.http1_header_too_large, 1);
    assert!(h.dec.buffered() <= 2 * 512, "buffer stays near the cap");
    let reqs: Vec<_> = h
        .events()
        .into_iter()
        .filter(|e| matches!(e, E::Req(..)))
        .collect();
    assert_eq!(
        reqs,
        vec![
            E::Req("GET".into(), "/ok".into()),
            E::Req("GET".into(), "/after".into())
        ]
    );
}

#[test]
fn endless_headers_stay_bounded() {
    let mut h = H::new();
    h.req(b"GET / HTTP/1.1\r\n");
    for _ in 0..100_000 {
        h.req(b"X-Endless: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n");
        assert!(h.dec.buffered() <= 4 * h.cfg.max_header_bytes);
    }
    // Either cap may trip first; both end the same way.
    assert!(h.c.http1_header_too_large + h.c.http1_too_many_headers >= 1);
}

#[test]
fn gap_in_head_resyncs_on_next_message() {
    let mut h = H::new();
    h.req(b"GET /1 HTTP/1.1\r\n\r\nGET /2 HTTP/1.1\r\n\r\n");
    h.resp(b"HTTP/1.1 200 OK\r\nContent-Le");
    h.ev(StreamDir::ToClient, StreamEvent::Gap { len: 100 });
    h.resp(b"ngth: 3\r\n\r\nabcHTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n");
    h.req(b"GET /3 HTTP/1.1\r\n\r\n");
    h.resp(b"HTTP/1.1 201 Created\r\nContent-Length: 0\r\n\r\n");
    // Pairing across the gap is unknowable; the response after resync is reported alone
    // and pairing restarts with the next request.
    assert_eq!(
        h.exchanges(),
        vec![
            E::Ex(None, Some(404), Some(0)),
            ex("GET", "/3", 201, Some(0))
        ]
    );
    assert_eq!(h.c.http1_resyncs, 1);
    assert_eq!(h.c.http1_requests_lost_in_gap, 2);
}

#[test]
fn gap_inside_sized_body_keeps_sync() {
    let mut h = H::new();
    h.req(b"GET /big HTTP/1.1\r\n\r\n");
    h.resp(b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n0123456789");
    h.ev(StreamDir::ToClient, StreamEvent::Gap { len: 980 });
    h.resp(b"0123456789");
    assert_eq!(h.exchanges(), vec![ex("GET", "/big", 200, Some(1000))]);
    assert_eq!(h.c.http1_resyncs, 0);
}

#[test]
fn mid_stream_start_finds_the_next_request() {
    let mut h = H::new();
    h.ev(StreamDir::ToServer, StreamEvent::Gap { len: 0 });
    h.ev(StreamDir::ToClient, StreamEvent::Gap { len: 0 });
    h.req(b"rest of some body\r\nGET /x HTTP/1.1\r\nHost: h\r\n\r\n");
    h.resp(b"tail of an earlier response\nHTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n");
    assert_eq!(h.exchanges(), vec![ex("GET", "/x", 200, Some(0))]);
}

#[test]
fn mid_stream_start_finds_lenient_request_lines() {
    // RFC 9112 §3: runs of whitespace between the words, spaces in the target. The start of
    // a connection reads these leniently; a direction joined mid-way must find them too, or
    // their responses come out unpaired.
    for (line, target) in [
        (&b"GET  /  HTTP/1.0\r\n"[..], "/"),
        (b"GET /a b HTTP/1.1\r\n", "/a b"),
    ] {
        let mut h = H::new();
        h.ev(StreamDir::ToServer, StreamEvent::Gap { len: 0 });
        h.ev(StreamDir::ToClient, StreamEvent::Gap { len: 0 });
        h.req(&[line, b"Host: a\r\n\r\n"].concat());
        h.resp(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok");
        assert_eq!(
            h.exchanges(),
            vec![ex("GET", target, 200, Some(2))],
            "{}",
            String::from_utf8_lossy(line)
        );
        assert_eq!(h.c.http1_resync_skipped_bytes, 0);
        assert_eq!(h.c.http1_lenient_heads, 1);
    }
}

#[test]
fn mid_stream_garbage_gives_up_after_the_scan_budget() {
    let cfg = L7Config {
        max_detect_bytes: 1000,
        ..L7Config::default()
    };
    let mut h = H::with(cfg);
    h.ev(StreamDir::ToServer, StreamEvent::Gap { len: 0 });
    for _ in 0..5 {
        h.req(&[0x17; 300]);
    }
    assert!(h.dec.is_dead());
    // Once either direction has shown HTTP, long stretches of body are searched on.
    let mut h = H::with(L7Config {
        max_detect_bytes: 1000,
        ..L7Config::default()
    });
    h.req(b"GET /dl HTTP/1.1\r\n\r\n");
    h.ev(StreamDir::ToClient, StreamEvent::Gap { len: 0 });
    for _ in 0..10 {
        h.resp(&[b'x'; 300]);
    }
    h.resp(b"\r\nHTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n");
    assert!(!h.dec.is_dead());
    h.finish();
    // The response direction was joined mid-way: its first response answers the request.
    assert_eq!(h.exchanges(), vec![ex("GET", "/dl", 200, Some(0))]);
}

#[test]
fn sensitive_headers_are_redacted_even_when_allowed() {
    let cfg = L7Config {
        header_allow_list: vec!["authorization".into(), "cookie".into(), "x-safe".into()],
        ..L7Config::default()
    };
    let mut h = H::with(cfg);
    h.req(b"GET / HTTP/1.1\r\nAuthorization: Bearer secret\r\nCookie: s=1\r\nX-Safe: yes\r\nX-Other: no\r\n\r\n");
    let L7Event::Http1(Http1Event::Request(r)) = &h.out[0] else {
        panic!()
    };
    assert_eq!(
        r.headers,
        [
            ("Authorization", REDACTED),
            ("Cookie", REDACTED),
            ("X-Safe", "yes")
        ]
        .map(|(k, v)| HttpHeader {
            key: k.into(),
            value: v.into()
        })
    );
    let dbg = format!("{:?}", h.out);
    assert!(!dbg.contains("secret"));
}

#[test]
fn traceparent_sets_trace_and_parent() {
    let mut h = H::new();
    h.req(b"GET / HTTP/1.1\r\ntraceparent: 00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01\r\ntracestate: a=1,B=2\r\n\r\n");
    h.req(b"GET / HTTP/1.1\r\ntraceparent: 00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01\r\ntracestate: a=1\r\n\r\n");
    let traces: Vec<_> = h
        .out
        .iter()
        .map(|e| match e {
            L7Event::Http1(Http1Event::Request(r)) => r.trace.clone(),
            _ => panic!(),
        })
        .collect();
    assert_eq!(
        traces[0].trace_id.to_string(),
        "4bf92f3577b34da6a3ce929d0e0e4736"
    );
    assert_eq!(
        traces[0].parent_span_id.unwrap().to_string(),
        "00f067aa0ba902b7"
    );
    assert_eq!(traces[0].trace_state.as_deref(), Some("a=1"));
    assert_eq!(h.c.trace_tracestate_dropped_members, 1);
    assert_ne!(
        traces[1].trace_id.to_string(),
        "4bf92f3577b34da6a3ce929d0e0e4736"
    );
    assert_eq!(traces[1].parent_span_id, None);
    assert_eq!(traces[1].trace_state, None);
    assert_eq!(h.c.trace_invalid_traceparent, 1);
}

#[test]
fn a_request_captured_after_its_response_still_pairs() {
    let mut h = H::new();
    // The response's packet reached us first, but the request was sent earlier.
    h.ev_at(
        StreamDir::ToClient,
        StreamEvent::Data(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"),
        20,
    );
    assert_eq!(h.exchanges(), vec![]);
    h.ev_at(
        StreamDir::ToServer,
        StreamEvent::Data(b"GET /late HTTP/1.1\r\n\r\n"),
        10,
    );
    assert_eq!(h.exchanges(), vec![ex("GET", "/late", 200, Some(0))]);
    assert_eq!(h.c.http1_unpaired_responses, 0);
    // A response older than the next request answers nothing we saw.
    h.ev_at(
        StreamDir::ToClient,
        StreamEvent::Data(b"HTTP/1.1 500 X\r\nContent-Length: 0\r\n\r\n"),
        30,
    );
    h.ev_at(
        StreamDir::ToServer,
        StreamEvent::Data(b"GET /next HTTP/1.1\r\n\r\n"),
        40,
    );
    h.ev_at(
        StreamDir::ToClient,
        StreamEvent::Data(b"HTTP/1.1 201 Y\r\nContent-Length: 0\r\n\r\n"),
        50,
    );
    assert_eq!(
        h.exchanges(),
        vec![
            ex("GET", "/late", 200, Some(0)),
            E::Ex(None, Some(500), Some(0)),
            ex("GET", "/next", 201, Some(0))
        ]
    );
    assert_eq!(h.c.http1_unpaired_responses, 1);
}

#[test]
fn an_early_answer_waits_for_the_request_body() {
    let mut h = H::new();
    // The server answers before reading the body (RFC 9110 §15.5.14 413, or a redirect).
    h.req(b"PUT /up HTTP/1.1\r\nContent-Length: 10\r\n\r\n01234");
    h.resp(b"HTTP/1.1 413 Too Large\r\nContent-Length: 0\r\n\r\n");
    assert_eq!(h.exchanges(), vec![], "final only once both messages are");
    h.req(b"56789");
    assert_eq!(h.exchanges(), vec![ex("PUT", "/up", 413, Some(0))]);
    assert_eq!(h.req_body_sizes(), vec![Some(10)]);
}

#[test]
fn an_early_answer_is_reported_when_the_body_never_ends() {
    // Client closes mid-body.
    let mut h = H::new();
    h.req(b"POST /a HTTP/1.1\r\nContent-Length: 10\r\n\r\n012");
    h.resp(b"HTTP/1.1 301 Moved\r\nContent-Length: 0\r\n\r\n");
    h.ev(StreamDir::ToServer, StreamEvent::Fin);
    assert_eq!(h.exchanges(), vec![ex("POST", "/a", 301, Some(0))]);
    assert_eq!(h.req_body_sizes(), vec![None], "a cut body has no size");
    // Flush (timeout, agent stop) with the body still passing.
    let mut h = H::new();
    h.req(b"POST /b HTTP/1.1\r\nContent-Length: 10\r\n\r\n012");
    h.resp(b"HTTP/1.1 413 X\r\nContent-Length: 0\r\n\r\n");
    h.finish();
    assert_eq!(h.exchanges(), vec![ex("POST", "/b", 413, Some(0))]);
    assert_eq!(h.req_body_sizes(), vec![None]);
    // A gap inside a chunked body loses its framing.
    let mut h = H::new();
    h.req(b"POST /c HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nab");
    h.resp(b"HTTP/1.1 413 X\r\nContent-Length: 0\r\n\r\n");
    h.ev(StreamDir::ToServer, StreamEvent::Gap { len: 100 });
    assert_eq!(h.exchanges(), vec![ex("POST", "/c", 413, Some(0))]);
    assert_eq!(h.req_body_sizes(), vec![None]);
}

#[test]
fn responses_captured_before_the_request_body_ends_keep_its_size() {
    // The two directions reach us interleaved: both responses are decoded while the
    // second request's body is still arriving.
    let mut h = H::new();
    h.ev_at(
        StreamDir::ToServer,
        StreamEvent::Data(b"POST /a HTTP/1.1\r\nContent-Length: 3\r\n\r\nxyz"),
        10,
    );
    h.ev_at(
        StreamDir::ToServer,
        StreamEvent::Data(b"PUT /b HTTP/1.1\r\nContent-Length: 6\r\n\r\nabc"),
        11,
    );
    h.ev_at(
        StreamDir::ToClient,
        StreamEvent::Data(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\nHTTP/1.1 301 M\r\nContent-Length: 4\r\n\r\nmove"),
        50,
    );
    assert_eq!(h.exchanges(), vec![ex("POST", "/a", 200, Some(0))]);
    h.ev_at(StreamDir::ToServer, StreamEvent::Data(b"def"), 12);
    assert_eq!(
        h.exchanges(),
        vec![
            ex("POST", "/a", 200, Some(0)),
            ex("PUT", "/b", 301, Some(4))
        ]
    );
    assert_eq!(h.req_body_sizes(), vec![Some(3), Some(6)]);
    // The same when the response is decoded before the request head.
    let mut h = H::new();
    h.ev_at(
        StreamDir::ToClient,
        StreamEvent::Data(b"HTTP/1.1 301 M\r\nContent-Length: 0\r\n\r\n"),
        50,
    );
    h.ev_at(
        StreamDir::ToServer,
        StreamEvent::Data(b"PUT /b HTTP/1.1\r\nContent-Length: 6\r\n\r\nabc"),
        10,
    );
    assert_eq!(h.exchanges(), vec![]);
    h.ev_at(StreamDir::ToServer, StreamEvent::Data(b"def"), 11);
    assert_eq!(h.exchanges(), vec![ex("PUT", "/b", 301, Some(0))]);
    assert_eq!(h.req_body_sizes(), vec![Some(6)]);
}

#[test]
fn unanswered_requests_are_reported_on_finish() {
    let mut h = H::new();
    h.req(b"GET /slow HTTP/1.1\r\n\r\n");
    h.finish();
    assert_eq!(h.exchanges(), vec![E::NoResp("GET".into(), "/slow".into())]);
    assert_eq!(h.c.http1_unanswered, 1);
}

/// Response body marks of every exchange, in order.
fn resp_marks(h: &H) -> Vec<Option<BodyError>> {
    h.out
        .iter()
        .filter_map(|e| match e {
            L7Event::Http1(Http1Event::Exchange { response, .. }) => Some(response.body_error),
            _ => None,
        })
        .collect()
}

/// Framing marks of every request head, in order.
fn req_marks(h: &H) -> Vec<Option<BodyError>> {
    h.out
        .iter()
        .filter_map(|e| match e {
            L7Event::Http1(Http1Event::Request(r)) => Some(r.framing_error),
            _ => None,
        })
        .collect()
}

fn gap0(h: &mut H, dir: StreamDir) {
    h.ev(dir, StreamEvent::Gap { len: 0 });
}

#[test]
fn http09_simple_request_is_answered_by_the_body_until_close() {
    // RFC 1945 §4.1, §6: no version, no fields; the bare body ends at the close, even when
    // it starts like a status line.
    let mut h = H::new();
    h.req(b"GET /http-looking.html\r\n\r\n");
    h.resp(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n");
    h.resp(b"<p>body</p>");
    assert_eq!(h.exchanges(), vec![]);
    h.ev(StreamDir::ToClient, StreamEvent::Fin);
    assert_eq!(
        h.exchanges(),
        vec![E::Ex(
            Some(("GET".into(), "/http-looking.html".into())),
            None,
            Some(56)
        )]
    );
    let L7Event::Http1(Http1Event::Exchange {
        request, response, ..
    }) = &h.out[1]
    else {
        panic!("{:?}", h.out)
    };
    assert_eq!(request.as_ref().unwrap().version, HttpVersion::Http09);
    assert_eq!(response.version, HttpVersion::Http09);
    assert_eq!((h.c.http1_parse_errors, h.c.http1_simple_requests), (0, 1));
}

#[test]
fn odd_versions_are_read_as_1_1_and_the_connection_goes_on() {
    // RFC 9110 §2.5: HTTP/1.2 is handled as 1.1; `HTTP/1.` has no minor digit.
    let mut h = H::new();
    h.req(b"GET /ok HTTP/1.1\r\n\r\nGET /odd HTTP/1.\r\nHost: h\r\n\r\nGET /v12 HTTP/1.2\r\n\r\n");
    h.resp(
        b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n",
    );
    h.resp(b"HTTP/1.2 200 OK\r\nContent-Length: 0\r\n\r\n");
    assert_eq!(
        h.exchanges(),
        vec![
            ex("GET", "/ok", 200, Some(0)),
            ex("GET", "/odd", 200, Some(0)),
            ex("GET", "/v12", 200, Some(0))
        ]
    );
    assert_eq!((h.c.http1_lenient_heads, h.c.http1_parse_errors), (3, 0));
}

#[test]
fn a_status_sent_as_text_is_no_usable_status_but_still_an_answer() {
    // RFC 9112 §4: status-code = 3DIGIT; the message is still framed by its fields.
    let mut h = H::new();
    h.req(b"GET /a HTTP/1.1\r\n\r\nGET /b HTTP/1.1\r\n\r\n");
    h.resp(b"HTTP/1.1 2XX OK\r\nContent-Length: 3\r\n\r\nabcHTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n");
    assert_eq!(
        h.exchanges(),
        vec![
            E::Ex(Some(("GET".into(), "/a".into())), None, Some(3)),
            ex("GET", "/b", 200, Some(0))
        ]
    );
    assert_eq!(h.c.http1_unusable_status_codes, 1);
}

#[test]
fn reason_phrases_are_ignored_whatever_their_bytes() {
    // RFC 9112 §4: a client SHOULD ignore the reason-phrase.
    let mut h = H::new();
    h.req(b"GET /c HTTP/1.1\r\n\r\nGET /d HTTP/1.1\r\n\r\n");
    h.resp(b"HTTP/1.1 500 Bad\x01\x7f\xff\r\nContent-Length: 0\r\n\r\nHTTP/1.1 200\r\nContent-Length: 0\r\n\r\n");
    assert_eq!(
        h.exchanges(),
        vec![ex("GET", "/c", 500, Some(0)), ex("GET", "/d", 200, Some(0))]
    );
}

#[test]
fn field_lines_without_a_colon_are_skipped_and_counted() {
    // RFC 9112 §5: the line is not a field; the rest of the head still counts.
    let mut h = H::new();
    h.req(b"GET /a HTTP/1.1\r\nHost: h\r\nno colon here\r\n\r\nGET /b HTTP/1.1\r\n\r\n");
    h.resp(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nbroken header line\r\n\r\nhelloHTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n");
    assert_eq!(
        h.exchanges(),
        vec![ex("GET", "/a", 200, Some(5)), ex("GET", "/b", 200, Some(0))]
    );
    assert_eq!(h.c.http1_field_lines_skipped, 2);
}

#[test]
fn a_bad_head_on_an_http_connection_costs_only_itself() {
    let mut h = H::new();
    h.req(b"GET /a HTTP/1.1\r\n\r\n");
    h.resp(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n");
    h.req(b"\x01\x02 not a request\r\n\r\nGET /b HTTP/1.1\r\n\r\n");
    h.resp(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n");
    assert_eq!(
        h.exchanges(),
        vec![ex("GET", "/a", 200, Some(0)), ex("GET", "/b", 200, Some(0))]
    );
    assert_eq!((h.c.http1_invalid_heads, h.c.http1_parse_errors), (1, 0));
    assert!(!h.dec.is_dead());
}

#[test]
fn a_request_of_unknown_length_is_reported_with_the_answer_and_nothing_after_it() {
    // RFC 9112 §6.3 rules 4 and 5: the server answers 400 and closes; the bytes after the
    // head are not requests.
    for (framing, mark) in [
        (
            "Transfer-Encoding: chunked, gzip",
            BodyError::TransferEncodingNotChunked,
        ),
        (
            "Transfer-Encoding: identity",
            BodyError::TransferEncodingNotChunked,
        ),
        (
            "Content-Length: 5\r\nContent-Length: 7",
            BodyError::InvalidContentLength,
        ),
    ] {
        let mut h = H::new();
        let head = format!("POST /bad HTTP/1.1\r\n{framing}\r\n\r\n");
        h.req(head.as_bytes());
        h.req(b"GET /smuggled HTTP/1.1\r\n\r\n");
        h.resp(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
        h.ev(StreamDir::ToClient, StreamEvent::Fin);
        h.req(b"GET /after-close HTTP/1.1\r\n\r\n");
        h.finish();
        assert_eq!(
            h.exchanges(),
            vec![ex("POST", "/bad", 400, Some(0))],
            "{framing}"
        );
        assert_eq!(req_marks(&h), vec![Some(mark)]);
        assert_eq!(h.req_body_sizes(), vec![None]);
        assert_eq!(h.c.http1_invalid_framing, 1);
    }
}

#[test]
fn after_a_request_of_unknown_length_a_server_that_goes_on_is_followed() {
    // A lenient server took the body somehow and kept the connection: look for requests again.
    let mut h = H::new();
    h.req(b"POST /x HTTP/1.1\r\nTransfer-Encoding: identity\r\n\r\nbody");
    h.resp(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n");
    h.req(b"GET /next HTTP/1.1\r\n\r\n");
    h.resp(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n");
    assert_eq!(
        h.exchanges(),
        vec![
            ex("POST", "/x", 200, Some(0)),
            ex("GET", "/next", 200, Some(0))
        ]
    );
}

#[test]
fn transfer_encoding_with_content_length_is_chunked_and_marked() {
    // RFC 9112 §6.3 rule 3: the chunked body hides what Content-Length framing would expose.
    let mut h = H::new();
    h.req(b"POST /both HTTP/1.1\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n1a\r\nGET /smuggled HTTP/1.1\r\n\r\n\r\n0\r\n\r\n");
    h.resp(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n");
    assert_eq!(h.exchanges(), vec![ex("POST", "/both", 200, Some(0))]);
    assert_eq!(
        req_marks(&h),
        vec![Some(BodyError::TransferEncodingWithContentLength)]
    );
    assert_eq!(h.req_body_sizes(), vec![Some(26)]);
}

#[test]
fn transfer_encoding_in_http10_is_faulty_framing() {
    // RFC 9112 §6.1.
    let mut h = H::new();
    h.req(b"POST /old HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n");
    assert_eq!(
        req_marks(&h),
        vec![Some(BodyError::TransferEncodingInHttp10)]
    );
}

#[test]
fn a_malformed_chunk_size_is_marked_and_the_next_exchange_pairs() {
    // RFC 9112 §7.1: 20 hex digits overflow; the exchange is reported, marked, and the
    // pipelined one after it still pairs (framing was lost, no bytes were).
    let mut h = H::new();
    h.req(b"GET /overflow HTTP/1.1\r\n\r\nGET /next HTTP/1.1\r\n\r\n");
    h.resp(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n10000000000000000000\r\nx\r\n");
    h.resp(b"HTTP/1.1 204 No Content\r\n\r\n");
    assert_eq!(
        h.exchanges(),
        vec![
            ex("GET", "/overflow", 200, None),
            ex("GET", "/next", 204, Some(0))
        ]
    );
    assert_eq!(resp_marks(&h), vec![Some(BodyError::MalformedChunk), None]);
    assert_eq!(h.c.http1_bad_chunked, 1);
}

#[test]
fn a_body_cut_by_the_close_is_marked_truncated() {
    // RFC 9112 §8: a huge but well-formed chunk size, one byte, then the close.
    let mut h = H::new();
    h.req(b"GET /huge HTTP/1.1\r\n\r\n");
    h.resp(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n7fffffffffffffff\r\nx");
    h.ev(StreamDir::ToClient, StreamEvent::Fin);
    assert_eq!(h.exchanges(), vec![ex("GET", "/huge", 200, None)]);
    assert_eq!(resp_marks(&h), vec![Some(BodyError::Truncated)]);
    // A Content-Length body likewise; the request side too.
    let mut h = H::new();
    h.req(b"POST /up HTTP/1.1\r\nContent-Length: 10\r\n\r\n123");
    h.ev(StreamDir::ToServer, StreamEvent::Fin);
    h.resp(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n123");
    h.ev(StreamDir::ToClient, StreamEvent::Fin);
    assert_eq!(resp_marks(&h), vec![Some(BodyError::Truncated)]);
    let L7Event::Http1(Http1Event::Exchange { request_body, .. }) = &h.out[1] else {
        panic!("{:?}", h.out)
    };
    assert_eq!(request_body.error, Some(BodyError::Truncated));
}

#[test]
fn joined_mid_way_at_a_request_boundary_the_first_exchange_is_whole() {
    // RFC 9112 §9.3: responses come in request order; the direction that starts later
    // does not cost the other its requests.
    let mut h = H::new();
    gap0(&mut h, StreamDir::ToServer);
    h.req(b"GET /a HTTP/1.1\r\nHost: h\r\n\r\n");
    gap0(&mut h, StreamDir::ToClient);
    h.resp(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok");
    h.req(b"POST /b HTTP/1.1\r\nContent-Length: 1\r\n\r\nx");
    h.resp(b"HTTP/1.1 201 Created\r\nContent-Length: 0\r\n\r\n");
    assert_eq!(
        h.exchanges(),
        vec![
            ex("GET", "/a", 200, Some(2)),
            ex("POST", "/b", 201, Some(0))
        ]
    );
    assert_eq!(
        (h.c.http1_requests_lost_in_gap, h.c.http1_unpaired_responses),
        (0, 0)
    );
}

#[test]
fn a_loss_before_the_first_response_byte_still_unpairs() {
    // Handshake seen, then the server's first segment lost (a gap of known length): the
    // response found next may answer a later request, so the waiting one is not paired.
    let mut h = H::new();
    h.req(b"GET /a HTTP/1.1\r\n\r\n");
    h.ev(StreamDir::ToClient, StreamEvent::Gap { len: 120 });
    h.resp(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n");
    h.finish();
    assert_eq!(h.exchanges(), vec![E::Ex(None, Some(200), Some(0))]);
    assert_eq!(h.c.http1_requests_lost_in_gap, 1);
}

#[test]
fn joined_mid_way_inside_a_response_body() {
    // The leading body bytes (here the end of a chunked body) are no exchange.
    let mut h = H::new();
    gap0(&mut h, StreamDir::ToClient);
    h.resp(b"aaaa\r\n40\r\n");
    h.resp(&[b'b'; 64]);
    h.resp(b"\r\n0\r\n\r\n");
    gap0(&mut h, StreamDir::ToServer);
    h.req(b"GET /poll HTTP/1.1\r\n\r\n");
    h.resp(b"HTTP/1.1 204 No Content\r\n\r\n");
    assert_eq!(h.exchanges(), vec![ex("GET", "/poll", 204, Some(0))]);
}

#[test]
fn an_h2c_upgrade_seen_late_hands_over_to_http2() {
    // RFC 7540 §3.2: the upgraded request is stream 1 of the HTTP/2 connection.
    let mut h = H::new();
    gap0(&mut h, StreamDir::ToServer);
    h.req(b"GET / HTTP/1.1\r\nHost: h\r\nConnection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAAQAAP__\r\n\r\n");
    gap0(&mut h, StreamDir::ToClient);
    h.resp(b"HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: h2c\r\n\r\n");
    assert_eq!(h.c.h2_upgrades, 1);
    assert!(h.dec.take_upgrade().is_some());
}

proptest::proptest! {
    #[test]
    fn arbitrary_bytes_never_panic(
        chunks in proptest::collection::vec((proptest::bool::ANY, proptest::collection::vec(proptest::num::u8::ANY, 0..64)), 0..20),
        prefix in proptest::sample::select(vec![&b""[..], b"GET / HTTP/1.1\r\n", b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"]),
    ) {
        let mut h = H::new();
        h.req(prefix);
        h.resp(prefix);
        for (to_server, bytes) in chunks {
            if to_server { h.req(&bytes) } else { h.resp(&bytes) }
        }
        h.finish();
    }
}

#[test]
fn a_request_line_nobody_can_parse_still_pairs_with_its_answer() {
    // RFC 9112 §3: the server answers an invalid request-line (400); the answer is that
    // request's, reported with what its line held and marked, on a connection not yet
    // known to be HTTP as on one that is.
    let mut h = H::new();
    h.req(b"OPTIONS HTTP/1.1\r\nHost: h\r\n\r\n");
    assert!(h.events().is_empty(), "nothing until the server shows HTTP");
    h.resp(b"HTTP/1.0 400 Bad Request\r\nContent-Length: 0\r\n\r\n");
    h.req(b"GET/ HTTP/1.1\r\nHost: h\r\n\r\n");
    h.resp(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n");
    h.req(b"GET /ok HTTP/1.1\r\nHost: h\r\n\r\n");
    h.resp(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n");
    assert_eq!(
        h.exchanges(),
        vec![
            ex("OPTIONS", "", 400, Some(0)),
            ex("GET/", "", 400, Some(0)),
            ex("GET", "/ok", 200, Some(0)),
        ]
    );
    assert_eq!(
        req_marks(&h),
        vec![
            Some(BodyError::InvalidHead),
            Some(BodyError::InvalidHead),
            None
        ]
    );
    assert_eq!(h.c.http1_invalid_requests, 2);
    assert_eq!(h.c.http1_invalid_framing, 0);
    assert_eq!(h.c.http1_unpaired_responses, 0);
}

#[test]
fn junk_before_a_request_line_keeps_what_follows() {
    for junk in [&b"\xff"[..], b"\xdd\x00\x00\x00"] {
        let mut h = H::new();
        h.req(&[junk, b" GET /txt HTTP/1.1\r\nHost: h\r\n\r\n"].concat());
        h.resp(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok");
        assert_eq!(h.exchanges(), vec![ex("GET", "/txt", 200, Some(2))]);
    }
}

#[test]
fn binary_bytes_where_a_request_should_start_on_an_http_connection_are_skipped() {
    // More likely a body framed wrongly than a request: no placeholder to misalign pairing.
    let mut h = H::new();
    h.req(b"GET /a HTTP/1.1\r\nHost: h\r\n\r\n");
    h.req(b"\x00\x01\x02binary\r\n\r\n");
    h.req(b"GET /b HTTP/1.1\r\nHost: h\r\n\r\n");
    h.resp(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n");
    h.resp(b"HTTP/1.1 204 No Content\r\n\r\n");
    assert_eq!(
        h.exchanges(),
        vec![ex("GET", "/a", 200, Some(0)), ex("GET", "/b", 204, Some(0))]
    );
    assert_eq!(h.c.http1_invalid_requests, 0);
    assert_eq!(h.c.http1_invalid_heads, 1);
}

#[test]
fn a_bad_first_line_with_no_http_answer_yields_no_http_record() {
    // Another text protocol: the server's answer is no status line either.
    let mut h = H::new();
    h.req(b"HELLO there\r\n");
    h.resp(b"+OK ready\r\n");
    assert!(h.dec.is_dead());
    h.finish();
    assert!(h.events().is_empty());
    assert_eq!(h.c.http1_parse_errors, 1);
    // Or no answer at all before the connection ends.
    let mut h = H::new();
    h.req(b"HELLO there\r\n");
    h.finish();
    assert!(h.events().is_empty());
    assert_eq!(h.c.http1_parse_errors, 1);
    assert_eq!(h.c.http1_invalid_requests, 0);
}

#[test]
fn a_bad_line_then_a_good_request_reports_both_in_order() {
    let mut h = H::new();
    h.req(b"BREW /pot HTCPCP/1.0\r\n\r\nGET /a HTTP/1.1\r\nHost: h\r\n\r\n");
    h.resp(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n");
    h.resp(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n");
    assert_eq!(
        h.exchanges(),
        vec![
            ex("BREW", "/pot", 400, Some(0)),
            ex("GET", "/a", 200, Some(0))
        ]
    );
}

#[test]
fn lines_after_an_http09_request_are_no_requests() {
    // RFC 1945 §4.1: a simple request is the connection's last.
    let mut h = H::new();
    h.req(b"GET /x\r\nHost: h\r\n\r\n");
    h.resp(b"<html>x</html>");
    h.ev(StreamDir::ToClient, StreamEvent::Fin);
    h.finish();
    assert_eq!(h.c.http1_invalid_requests, 0);
    assert_eq!(h.c.http1_requests, 1);
}

/// The decoder's layout (see [`super::connection::Http1Decoder`]): the fields every chunk of
/// either direction reads come first, within 128 bytes, whatever is added later.
#[test]
fn per_chunk_fields_come_first() {
    use super::connection::Http1Decoder as D;
    use std::mem::offset_of;
    for (name, at) in [
        ("dead", offset_of!(D, dead)),
        ("body_passing", offset_of!(D, body_passing)),
        ("pending", offset_of!(D, pending)),
        ("doh", offset_of!(D, doh)),
    ] {
        assert!(at < 64, "{name} at {at}");
    }
    assert_eq!(offset_of!(D, req), 128);
}
