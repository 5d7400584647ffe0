//! Decoder rules, one test each, driving [`Http2Decoder`] with stream events directly.
//! (End-to-end tests through the engine are in `flows/tests/http2*.rs`.)

use super::frame::encode::frame;
use super::hpack::encode as hp;
use super::*;
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
                    s.request.as_ref().and_then(|r| r.path.clone()),
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
fn interrupted_field_block_is_lost() {
    // §6.10: a field block's frames are contiguous; anything between is an error.
    let mut h = H::new();
    let b = req("/split");
    h.client(&frame(HEADERS, 0, 1, &b[..2]));
    h.client(&frame(WINDOW_UPDATE, 0, 0, &[0, 0, 1, 0]));
    h.client(&frame(CONTINUATION, EH, 1, &b[2..]));
    assert_eq!(h.c.h2_field_blocks_lost, 1);
    assert_eq!(h.c.h2_orphan_continuations, 1);
    assert_eq!(h.c.h2_requests, 0);
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
