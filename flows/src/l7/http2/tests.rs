//! Decoder rules, one test each, driving [`Http2Decoder`] with stream events directly.
//! (End-to-end tests through the engine are in `flows/tests/http2*.rs`.)

use super::frame::encode::frame;
use super::hpack::encode as hp;
use super::*;
use crate::counters::Counters;
use crate::record::GrpcStatusSource;
use crate::trace::IdGenerator;

const DATA: u8 = 0;
const HEADERS: u8 = 1;
const RST_STREAM: u8 = 3;
const SETTINGS: u8 = 4;
const GOAWAY: u8 = 7;
const WINDOW_UPDATE: u8 = 8;
const CONTINUATION: u8 = 9;
const ES: u8 = 0x1;
const EH: u8 = 0x4;

struct H {
    dec: Http2Decoder,
    c: Counters,
    ids: IdGenerator,
    cfg: L7Config,
    out: Vec<L7Event>,
    ts: u64,
}

impl H {
    fn new() -> Self {
        let cfg = L7Config::default();
        let mut h = Self {
            dec: Http2Decoder::with_preface(&cfg),
            c: Counters::default(),
            ids: IdGenerator::new(1),
            cfg,
            out: Vec::new(),
            ts: 0,
        };
        let mut hello = PREFACE.to_vec();
        hello.extend(frame(SETTINGS, 0, 0, &[]));
        h.ev(StreamDir::ToServer, StreamEvent::Data(&hello));
        h
    }
    fn ev(&mut self, dir: StreamDir, ev: StreamEvent<'_>) {
        self.ts += 1;
        let mut cx = L7Context {
            counters: &mut self.c,
            ids: &mut self.ids,
            config: &self.cfg,
        };
        let at = PacketCtx {
            ts_ns: self.ts,
            ..Default::default()
        };
        self.dec.on_event(dir, ev, &at, &mut cx, &mut self.out);
    }
    fn client(&mut self, b: &[u8]) {
        self.ev(StreamDir::ToServer, StreamEvent::Data(b));
    }
    fn server(&mut self, b: &[u8]) {
        self.ev(StreamDir::ToClient, StreamEvent::Data(b));
    }
    fn finish(&mut self) {
        let mut cx = L7Context {
            counters: &mut self.c,
            ids: &mut self.ids,
            config: &self.cfg,
        };
        self.dec.finish(1_000, &mut cx, &mut self.out);
    }
    /// Finished streams: `(id, path, status, end)`.
    fn streams(&self) -> Vec<(u32, Option<String>, Option<u16>, StreamEnd)> {
        self.out
            .iter()
            .filter_map(|e| match e {
                L7Event::Http2(Http2Event::Stream(s)) => Some((
                    s.stream_id,
                    s.request
                        .as_ref()
                        .and_then(|r| r.path.as_deref().map(String::from)),
                    s.response.as_ref().and_then(|r| r.status),
                    s.end,
                )),
                _ => None,
            })
            .collect()
    }
}

fn req(path: &str) -> Vec<u8> {
    let mut b = Vec::new();
    hp::indexed(&mut b, 3); // :method POST
    hp::literal_indexed_name(&mut b, 4, path, true); // :path, indexed
    b
}

fn status(code: &str) -> Vec<u8> {
    let mut b = Vec::new();
    hp::literal_indexed_name(&mut b, 8, code, false);
    b
}

#[test]
fn informational_responses_precede_the_final_one() {
    // RFC 9113 §8.1: zero or more 1xx field blocks, then the final response.
    let mut h = H::new();
    h.client(&frame(HEADERS, EH | ES, 1, &req("/a")));
    h.server(&frame(HEADERS, EH, 1, &status("103")));
    h.server(&frame(HEADERS, EH | ES, 1, &status("204")));
    assert_eq!(
        h.streams(),
        [(1, Some("/a".into()), Some(204), StreamEnd::Complete)]
    );
}

#[test]
fn a_gap_inside_data_keeps_frame_sync() {
    let mut h = H::new();
    h.client(&frame(HEADERS, EH, 1, &req("/up")));
    let body = frame(DATA, ES, 1, &[7u8; 100]);
    h.client(&body[..30]);
    h.ev(StreamDir::ToServer, StreamEvent::Gap { len: 50 });
    h.client(&body[80..]);
    h.server(&frame(HEADERS, EH | ES, 1, &status("200")));
    assert_eq!(h.streams().len(), 1);
    assert_eq!(h.c.h2_resyncs, 0);
    let L7Event::Http2(Http2Event::Stream(s)) = h.out.last().unwrap() else {
        panic!()
    };
    assert_eq!(s.request_body_bytes, 100);
    assert!(s.partial);
}

#[test]
fn a_gap_ending_at_a_data_frames_end_keeps_its_end_stream() {
    // A capture snap length cuts each response segment after its first bytes: the hole ends
    // exactly where the DATA frame ends (RFC 9113 §4.1 gives its length), so the frame still
    // ends there with END_STREAM (§6.1) and the next frame is read in sync.
    let mut h = H::new();
    for sid in [1u32, 3, 5] {
        h.client(&frame(HEADERS, EH | ES, sid, &req("/page")));
        let mut seg = frame(HEADERS, EH, sid, &status("200"));
        let head = seg.len();
        seg.extend(frame(DATA, ES, sid, &[b'x'; 1024]));
        // Snapped 40 bytes into the DATA payload; the rest of the segment is a gap.
        let kept = head + 9 + 40;
        h.server(&seg[..kept]);
        h.ev(
            StreamDir::ToClient,
            StreamEvent::Gap {
                len: (seg.len() - kept) as u64,
            },
        );
    }
    let s = h.streams();
    assert_eq!(s.len(), 3, "{s:?}");
    assert!(s.iter().all(|(_, p, c, e)| p.as_deref() == Some("/page")
        && *c == Some(200)
        && *e == StreamEnd::Complete));
    assert_eq!(h.c.h2_resyncs, 0);
    assert_eq!(h.c.h2_gaps, 3);
    // A hole that eats a whole padded-out frame payload, and one that ends exactly at the end
    // of a frame being skipped, keep sync too.
    h.client(&frame(HEADERS, EH | ES, 7, &req("/next")));
    let w = frame(WINDOW_UPDATE, 0, 0, &[0, 0, 1, 0]);
    h.server(&w[..9]);
    h.ev(StreamDir::ToClient, StreamEvent::Gap { len: 4 });
    h.server(&frame(HEADERS, EH | ES, 7, &status("204")));
    assert_eq!(h.streams().len(), 4);
    assert_eq!(h.c.h2_resyncs, 0);
}

#[test]
fn a_full_stream_table_reports_its_oldest_gapped_stream() {
    // Streams whose END_STREAM went into a capture gap (here: the hole runs past the DATA
    // frame into the next one, so sync is lost) would hold the table until the connection
    // ends; once it is full, the oldest of them is reported as evicted and new streams are
    // still decoded. Streams that lost nothing are never evicted.
    let mut h = H::new();
    h.cfg.h2_max_streams = 4;
    for sid in [1u32, 3, 5] {
        h.client(&frame(HEADERS, EH | ES, sid, &req("/cut")));
        let mut seg = frame(HEADERS, EH, sid, &status("200"));
        let head = seg.len();
        seg.extend(frame(DATA, 0, sid, &[b'x'; 100]));
        seg.extend(frame(DATA, ES, sid, &[b'x'; 100]));
        h.server(&seg[..head + 9 + 10]);
        h.ev(
            StreamDir::ToClient,
            StreamEvent::Gap {
                len: (seg.len() - head - 19) as u64,
            },
        );
        // The next server frame header arrives whole: sync comes back at it.
        h.server(&frame(WINDOW_UPDATE, 0, 0, &[0, 0, 1, 0]));
    }
    // Opened after the gaps, nothing lost: never evicted.
    h.client(&frame(HEADERS, EH, 7, &req("/open")));
    assert!(h.streams().is_empty());
    for sid in [9u32, 11, 13] {
        h.client(&frame(HEADERS, EH | ES, sid, &req("/new")));
    }
    for sid in [9u32, 11, 13] {
        h.server(&frame(HEADERS, EH | ES, sid, &status("204")));
    }
    let s = h.streams();
    let evicted: Vec<_> = s
        .iter()
        .filter(|x| x.3 == StreamEnd::Evicted)
        .map(|x| x.0)
        .collect();
    assert_eq!(evicted, [1, 3, 5]);
    let new: Vec<_> = s.iter().filter(|x| x.2 == Some(204)).map(|x| x.0).collect();
    assert_eq!(new, [9, 11, 13]);
    assert_eq!((h.c.h2_streams_evicted, h.c.h2_streams_over_cap), (3, 0));
    // Now only the untouched stream 7 is open: a full table of streams that lost nothing
    // refuses the next one instead.
    for sid in [15u32, 17, 19] {
        h.client(&frame(HEADERS, EH, sid, &req("/held")));
    }
    h.client(&frame(HEADERS, EH, 21, &req("/refused")));
    assert_eq!((h.c.h2_streams_evicted, h.c.h2_streams_over_cap), (3, 1));
}

#[test]
fn a_gap_inside_a_field_block_forgets_the_table() {
    let mut h = H::new();
    h.client(&frame(HEADERS, EH | ES, 1, &req("/first")));
    let f = frame(HEADERS, EH | ES, 3, &req("/lost"));
    h.client(&f[..12]);
    h.ev(StreamDir::ToServer, StreamEvent::Gap { len: 3 });
    h.client(&f[15..]);
    assert_eq!(h.c.h2_field_blocks_lost, 1);
    // Index 62 is now unknown (an insertion of unknown content happened), not "/first".
    let mut b = Vec::new();
    hp::indexed(&mut b, 3);
    hp::indexed(&mut b, 62);
    h.client(&frame(HEADERS, EH | ES, 5, &b));
    for sid in [1, 5] {
        h.server(&frame(HEADERS, EH | ES, sid, &status("200")));
    }
    let s = h.streams();
    assert_eq!(s[0].1.as_deref(), Some("/first"));
    assert_eq!((s[1].0, s[1].1.as_deref()), (5, None));
    assert_eq!(h.c.h2_hpack_unknown_fields, 1);
}

#[test]
fn a_frame_inside_a_field_block_is_a_connection_error() {
    // §6.10, §4.3: only CONTINUATION frames of the same stream may follow a HEADERS without
    // END_HEADERS; anything else is a connection error: decoding stops.
    let mut h = H::new();
    h.client(&frame(HEADERS, EH, 1, &req("/open")));
    let b = req("/split");
    h.client(&frame(HEADERS, 0, 3, &b[..2]));
    h.client(&frame(WINDOW_UPDATE, 0, 0, &[0, 0, 1, 0]));
    h.client(&frame(CONTINUATION, EH, 3, &b[2..]));
    h.server(&frame(HEADERS, EH | ES, 1, &status("200")));
    assert!(h.dec.is_dead());
    assert!(h.dec.stopped_by_protocol_error(), "HTTP/2 all the same");
    assert_eq!(h.c.h2_connection_error_field_block_interrupted, 1);
    assert_eq!(h.c.h2_requests, 1, "only /open, before the error");
    // The stream under way ends with the connection; nothing after the error is decoded.
    assert_eq!(
        h.streams(),
        [(
            1,
            Some("/open".into()),
            None,
            StreamEnd::ConnectionError { code: 1 }
        )]
    );
    assert_eq!(h.c.h2_responses, 0);
}

#[test]
fn another_streams_headers_inside_a_field_block_yields_no_record() {
    // Field case 11 (f): HEADERS(1, no END_HEADERS), HEADERS(3, complete), CONTINUATION(1):
    // no request is guessed from either block.
    let mut h = H::new();
    let b = req("/one");
    h.client(&frame(HEADERS, 0, 1, &b[..2]));
    h.client(&frame(HEADERS, EH | ES, 3, &req("/three")));
    h.client(&frame(CONTINUATION, EH, 1, &b[2..]));
    h.finish();
    assert!(h.out.is_empty(), "{:?}", h.out);
    assert_eq!(h.c.h2_connection_error_field_block_interrupted, 1);
    assert_eq!(h.c.h2_orphan_continuations, 0);
}

#[test]
fn resets_goaway_and_closed_streams() {
    let mut h = H::new();
    for sid in [1, 3, 5] {
        h.client(&frame(HEADERS, EH | ES, sid, &req("/x")));
    }
    // Server resets 1 (REFUSED_STREAM), GOAWAY with Last-Stream-ID 3: 5 was not processed.
    h.server(&frame(RST_STREAM, 0, 1, &[0, 0, 0, 7]));
    h.server(&frame(GOAWAY, 0, 0, &[0, 0, 0, 3, 0, 0, 0, 0]));
    h.server(&frame(HEADERS, EH | ES, 3, &status("200")));
    // Late frames on a finished stream do not reopen it.
    h.server(&frame(DATA, ES, 1, b"late"));
    h.finish();
    assert_eq!(
        h.streams(),
        [
            (
                1,
                Some("/x".into()),
                None,
                StreamEnd::Reset {
                    code: 7,
                    by_client: false
                }
            ),
            (5, Some("/x".into()), None, StreamEnd::GoAway { code: 0 }),
            (3, Some("/x".into()), Some(200), StreamEnd::Complete),
        ]
    );
    assert_eq!(h.c.h2_frames_on_closed_streams, 1);
}

#[test]
fn zero_window_increment_is_a_counted_error() {
    // §6.9: an increment of 0 is an error.
    let mut h = H::new();
    h.client(&frame(WINDOW_UPDATE, 0, 0, &[0, 0, 0, 0]));
    assert_eq!(h.c.h2_frame_errors, 1);
}

#[test]
fn settings_header_table_size_bounds_size_updates() {
    // RFC 7541 §6.3 / RFC 9113 §6.5.2: the server allows the client's encoder 100 bytes; an
    // update to 4096 exceeds it and is counted.
    let mut h = H::new();
    h.server(&frame(SETTINGS, 0, 0, &[0, 1, 0, 0, 0, 100]));
    let mut b = Vec::new();
    hp::size_update(&mut b, 4096);
    b.extend(req("/x"));
    h.client(&frame(HEADERS, EH | ES, 1, &b));
    assert_eq!(h.c.h2_hpack_bad_size_updates, 1);
    assert_eq!(h.c.h2_requests, 1);
}

#[test]
fn unfinished_streams_are_reported_when_the_connection_ends() {
    let mut h = H::new();
    h.client(&frame(HEADERS, EH, 1, &req("/slow")));
    h.finish();
    assert_eq!(
        h.streams(),
        [(1, Some("/slow".into()), None, StreamEnd::ConnectionEnd)]
    );
    assert_eq!(h.c.h2_streams_unfinished, 1);
}

impl H {
    /// A connection joined mid-way (HPACK state from before the capture unknown).
    fn mid() -> Self {
        let cfg = L7Config::default();
        Self {
            dec: Http2Decoder::mid_stream(&cfg),
            c: Counters::default(),
            ids: IdGenerator::new(1),
            cfg,
            out: Vec::new(),
            ts: 0,
        }
    }
    /// Moves the clock to `ts_ns` (for the next event).
    fn at(&mut self, ts_ns: u64) {
        self.ts = ts_ns;
    }
    /// Finished streams, whole.
    fn finished(&self) -> Vec<&H2Stream> {
        self.out
            .iter()
            .filter_map(|e| match e {
                L7Event::Http2(Http2Event::Stream(s)) => Some(&**s),
                _ => None,
            })
            .collect()
    }
}

const CANCEL: [u8; 4] = [0, 0, 0, 8];

fn grpc_req(path: &str) -> Vec<u8> {
    let mut b = req(path);
    hp::literal_indexed_name(&mut b, 31, "application/grpc", false); // content-type
    b
}

#[test]
fn a_response_crossing_the_clients_reset_is_reported_cancelled() {
    // §5.4.2, §6.4: the server's answer was on the wire when the client's RST_STREAM(CANCEL)
    // went out; an endpoint must expect such frames, and a passive observer sees them all.
    let mut h = H::new();
    h.client(&frame(HEADERS, EH | ES, 1, &req("/slow")));
    h.client(&frame(RST_STREAM, 0, 1, &CANCEL));
    assert!(h.finished().is_empty(), "waits for the frames in flight");
    h.server(&frame(HEADERS, EH, 1, &status("200")));
    h.server(&frame(DATA, ES, 1, b"late body"));
    let s = h.finished();
    assert_eq!(s.len(), 1);
    assert_eq!(s[0].response.as_ref().and_then(|r| r.status), Some(200));
    assert_eq!(s[0].response_body_bytes, 9);
    assert_eq!(
        s[0].end,
        StreamEnd::Reset {
            code: 8,
            by_client: true
        }
    );
    assert!(s[0].cancelled);
    assert_eq!(h.c.h2_streams_cancelled, 1);
    assert_eq!(h.c.h2_frames_after_reset, 2);
    assert_eq!(h.c.h2_frames_on_closed_streams, 0);
}

#[test]
fn grpc_trailers_after_the_clients_reset_give_the_status() {
    let mut h = H::new();
    h.client(&frame(HEADERS, EH, 3, &grpc_req("/demo.v1.Echo/Say")));
    h.client(&frame(DATA, ES, 3, &[0, 0, 0, 0, 0]));
    h.server(&frame(HEADERS, EH, 3, &status("200")));
    h.client(&frame(RST_STREAM, 0, 3, &CANCEL));
    h.server(&frame(DATA, 0, 3, &[0, 0, 0, 0, 0]));
    let mut t = Vec::new();
    hp::literal(&mut t, "grpc-status", "0", false);
    h.server(&frame(HEADERS, EH | ES, 3, &t));
    let s = h.finished();
    let g = s[0].grpc.as_ref().unwrap();
    assert_eq!(
        (g.status, g.status_source),
        (Some(0), Some(GrpcStatusSource::Trailers))
    );
    assert!(s[0].cancelled);
}

#[test]
fn a_stream_cancelled_without_answer_is_reported_without_response() {
    let mut h = H::new();
    h.at(1_000);
    h.client(&frame(HEADERS, EH | ES, 5, &req("/never")));
    h.client(&frame(RST_STREAM, 0, 5, &CANCEL));
    h.client(&frame(HEADERS, EH | ES, 7, &req("/ok")));
    assert!(h.finished().is_empty());
    // The wait ends with the connection's first packet RESET_LINGER_NS after the reset
    // (seen at 1_002; each event advances the clock by one).
    h.at(1_002 + RESET_LINGER_NS - 1);
    h.server(&frame(HEADERS, EH | ES, 7, &status("200")));
    let s = h.finished();
    assert_eq!(s.len(), 2);
    assert_eq!((s[0].stream_id, s[0].response.is_none()), (5, true));
    assert!(s[0].cancelled);
    // It ended when the reset was seen, not when the wait did.
    assert_eq!(s[0].end_ns, 1_002);
    assert_eq!(s[1].stream_id, 7);
    // A late frame now is on a closed stream.
    h.server(&frame(HEADERS, EH | ES, 5, &status("200")));
    assert_eq!(h.c.h2_frames_on_closed_streams, 1);
}

#[test]
fn a_cancelled_stream_is_reported_at_the_timeout_when_the_connection_goes_quiet() {
    // No packet follows the reset: the engine's timeout ends the wait, not the close.
    let mut h = H::new();
    h.at(1_000);
    h.client(&frame(HEADERS, EH | ES, 1, &req("/never")));
    h.client(&frame(RST_STREAM, 0, 1, &CANCEL));
    let timeout = |h: &mut H, now_ns| {
        let mut cx = L7Context {
            counters: &mut h.c,
            ids: &mut h.ids,
            config: &h.cfg,
        };
        h.dec.on_timeout(now_ns, 0, &mut cx, &mut h.out);
    };
    timeout(&mut h, 1_002 + RESET_LINGER_NS - 1);
    assert!(
        h.finished().is_empty(),
        "still waiting for frames in flight"
    );
    timeout(&mut h, 1_002 + RESET_LINGER_NS);
    let s = h.finished();
    assert_eq!(s.len(), 1);
    assert!(s[0].cancelled && s[0].response.is_none());
    assert_eq!(s[0].end_ns, 1_002, "it ended with the reset");
    assert_eq!(h.c.h2_cancelled_streams_reported_at_timeout, 1);
    // Once only.
    timeout(&mut h, 1_002 + 2 * RESET_LINGER_NS);
    h.finish();
    assert_eq!(h.finished().len(), 1);
}

#[test]
fn a_cancelled_stream_is_reported_when_the_connection_ends() {
    let mut h = H::new();
    h.client(&frame(HEADERS, EH | ES, 1, &req("/never")));
    h.client(&frame(RST_STREAM, 0, 1, &CANCEL));
    h.finish();
    let s = h.finished();
    assert_eq!(s.len(), 1);
    assert!(matches!(s[0].end, StreamEnd::Reset { code: 8, .. }) && s[0].cancelled);
    assert!(s[0].response.is_none());
}

#[test]
fn a_reset_after_the_response_ended_is_reported_at_once_and_not_cancelled() {
    let mut h = H::new();
    h.client(&frame(HEADERS, EH, 1, &req("/upload")));
    h.server(&frame(HEADERS, EH | ES, 1, &status("413")));
    h.client(&frame(RST_STREAM, 0, 1, &CANCEL));
    let s = h.finished();
    assert_eq!(s.len(), 1);
    assert!(!s[0].cancelled);
    assert_eq!(h.c.h2_streams_cancelled, 0);
}

#[test]
fn hpack_stays_in_step_through_frames_on_reset_and_closed_streams() {
    // RFC 9113 §4.3: every field block changes the connection's decoding state, whatever
    // became of its stream; skipping one would shift every later dynamic-table index.
    let mut h = H::new();
    for sid in [1, 3, 5] {
        h.client(&frame(HEADERS, EH | ES, sid, &req("/x")));
    }
    h.client(&frame(RST_STREAM, 0, 1, &CANCEL));
    // A response on the reset stream inserts content-type "text/one" (index 62).
    let mut b = status("200");
    hp::literal_indexed_name(&mut b, 31, "text/one", true);
    h.server(&frame(HEADERS, EH | ES, 1, &b));
    // The server resets stream 3 (closed); a block of it still inserts "text/three".
    h.server(&frame(RST_STREAM, 0, 3, &[0, 0, 0, 7]));
    let mut b = status("200");
    hp::literal_indexed_name(&mut b, 31, "text/three", true);
    h.server(&frame(HEADERS, EH | ES, 3, &b));
    assert_eq!(h.c.h2_frames_on_closed_streams, 1);
    // Index 62 is now "text/three", 63 "text/one".
    let mut b = status("200");
    hp::indexed(&mut b, 63);
    h.server(&frame(HEADERS, EH | ES, 5, &b));
    h.finish();
    let ct = |sid: u32| {
        h.finished()
            .iter()
            .find(|s| s.stream_id == sid)
            .and_then(|s| s.response.as_ref())
            .and_then(|r| r.content_type.clone())
    };
    assert_eq!(ct(1).as_deref(), Some("text/one"));
    assert_eq!(ct(5).as_deref(), Some("text/one"));
}

#[test]
fn grpc_without_grpc_status_maps_the_http_status() {
    // grpc/grpc doc/http-grpc-status-mapping.md: a proxy's 503 is UNAVAILABLE.
    let mut h = H::new();
    h.client(&frame(
        HEADERS,
        EH,
        1,
        &grpc_req("/helloworld.Greeter/SayHello"),
    ));
    h.client(&frame(DATA, ES, 1, &[0, 0, 0, 0, 0]));
    let mut b = status("503");
    hp::literal_indexed_name(&mut b, 31, "text/html", false);
    h.server(&frame(HEADERS, EH, 1, &b));
    h.server(&frame(DATA, ES, 1, b"<html>"));
    let s = h.finished();
    let g = s[0].grpc.as_ref().unwrap();
    assert_eq!(
        (g.status, g.status_source),
        (Some(14), Some(GrpcStatusSource::DerivedFromHttpStatus))
    );
    assert_eq!(s[0].response.as_ref().unwrap().status, Some(503));
    assert_eq!(h.c.grpc_status_derived_from_http_status, 1);
}

#[test]
fn undecodable_grpc_status_with_a_message_is_unknown_never_ok() {
    // Joined mid-way: grpc-status refers to a table entry from before the capture; a
    // non-empty literal grpc-message says the call failed (UNKNOWN, inferred). Without a
    // message the status stays unknown.
    let mut h = H::mid();
    for sid in [21, 23] {
        let mut b = Vec::new();
        hp::indexed(&mut b, 3); // :method POST
        hp::indexed(&mut b, 62); // :path, unknown
        hp::indexed(&mut b, 63); // content-type, unknown
        h.client(&frame(HEADERS, EH | ES, sid, &b));
        let mut b = status("200");
        hp::indexed(&mut b, 64); // grpc-status, unknown
        hp::literal(
            &mut b,
            "grpc-message",
            if sid == 21 { "" } else { "no%20such" },
            false,
        );
        h.server(&frame(HEADERS, EH | ES, sid, &b));
    }
    let s = h.finished();
    let g = |i: usize| s[i].grpc.as_ref().map(|g| (g.status, g.status_source));
    assert_eq!(g(0), Some((None, None)));
    assert_eq!(
        g(1),
        Some((Some(2), Some(GrpcStatusSource::InferredFromMessage)))
    );
    assert_eq!(
        s[1].grpc.as_ref().unwrap().message.as_deref(),
        Some("no such")
    );
    assert_eq!(h.c.grpc_status_inferred_from_message, 1);
}
