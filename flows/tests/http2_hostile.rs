//! HTTP/2 under hostile input: every cap holds and is counted, nothing panics, and the
//! connection keeps decoding what it can afterwards.

mod support;

use flows::engine::{Engine, EngineConfig, L4Records};
use flows::l7::http2::frame::encode::frame;
use flows::l7::http2::hpack::encode as hp;
use flows::l7::http2::PREFACE;
use flows::record::{attr, AttributeValue};
use flows::synth::TcpConversation;
use proptest::prelude::*;
use support::*;

const DATA: u8 = 0;
const HEADERS: u8 = 1;
const SETTINGS: u8 = 4;
const CONTINUATION: u8 = 9;
const END_STREAM: u8 = 0x1;
const END_HEADERS: u8 = 0x4;

fn conv() -> TcpConversation {
    TcpConversation::new(
        "198.18.0.2:51234".parse().unwrap(),
        "198.18.0.1:8080".parse().unwrap(),
        100,
        9000,
        1_000_000,
    )
}

fn get(path: &str) -> Vec<u8> {
    let mut b = Vec::new();
    hp::indexed(&mut b, 2); // :method GET
    hp::indexed(&mut b, 6); // :scheme http
    hp::literal_indexed_name(&mut b, 4, path, false);
    hp::literal_indexed_name(&mut b, 1, "h.test", false);
    b
}

fn ok() -> Vec<u8> {
    let mut b = Vec::new();
    hp::indexed(&mut b, 8); // :status 200
    b
}

fn open(c: &mut TcpConversation) {
    c.handshake();
    let mut hello = PREFACE.to_vec();
    hello.extend(frame(SETTINGS, 0, 0, &[]));
    c.client_send(&hello, 1448);
    c.server_send(&frame(SETTINGS, 0, 0, &[]), 1448);
}

/// Request `path` on stream `sid` and its 200 answer.
fn exchange(c: &mut TcpConversation, sid: u32, path: &str) {
    c.client_send(
        &frame(HEADERS, END_HEADERS | END_STREAM, sid, &get(path)),
        1448,
    );
    c.server_send(&frame(HEADERS, END_HEADERS | END_STREAM, sid, &ok()), 1448);
}

fn paths(records: &[flows::record::Record]) -> Vec<String> {
    spans(records)
        .iter()
        .filter_map(|s| match s.attributes.get(attr::URL_PATH) {
            Some(AttributeValue::String(p)) => Some(p.to_string()),
            _ => None,
        })
        .collect()
}

/// Runs frames one at a time and returns the records and the most bytes ever buffered.
fn run_watching(e: &mut Engine, c: &TcpConversation) -> (Vec<flows::record::Record>, usize) {
    let mut most = 0;
    let mut all = Vec::new();
    for f in c.frames() {
        all.extend(run_one(e, f));
        most = most.max(e.buffered_bytes());
    }
    e.flush(u64::MAX / 2);
    while let Some(r) = e.poll_record() {
        all.push(r);
    }
    (all, most)
}

fn run_one(e: &mut Engine, f: &flows::synth::SynthFrame) -> Vec<flows::record::Record> {
    let meta = flows::packet::CaptureMeta {
        ts_ns: f.ts_ns,
        ifindex: 2,
        direction: f.direction,
        orig_len: f.data.len() as u32,
        socket_cookie: None,
    };
    let _ = e.handle_frame(f.ts_ns, flows::packet::LinkType::Ethernet, &f.data, meta);
    let mut out = Vec::new();
    while let Some(r) = e.poll_record() {
        out.push(r);
    }
    out
}

#[test]
fn hpack_bomb_is_capped_and_counted() {
    let mut c = conv();
    open(&mut c);
    // One 4000-byte entry referenced 4000 times: 16 MB decoded from a 20 kB block.
    let mut b = get("/bomb");
    hp::literal(&mut b, "x-big", &"a".repeat(4000), true);
    for _ in 0..4000 {
        hp::indexed(&mut b, 62);
    }
    c.client_send(&frame(HEADERS, END_HEADERS | END_STREAM, 1, &b), 1448);
    c.server_send(&frame(HEADERS, END_HEADERS | END_STREAM, 1, &ok()), 1448);
    exchange(&mut c, 3, "/after");
    let mut e = l7_engine();
    let (records, most) = run_watching(&mut e, &c);
    assert_eq!(paths(&records), ["/bomb", "/after"]);
    assert_eq!(e.counters().h2_header_list_capped, 1);
    assert!(most < 256 * 1024, "buffered {most}");
}

#[test]
fn continuation_flood_is_cut_and_the_connection_goes_on() {
    let mut c = conv();
    open(&mut c);
    let mut flood = frame(HEADERS, 0, 1, &get("/flood"));
    for _ in 0..10_000 {
        flood.extend(frame(CONTINUATION, 0, 1, &[]));
    }
    flood.extend(frame(CONTINUATION, END_HEADERS, 1, &[]));
    c.client_send(&flood, 1448);
    exchange(&mut c, 3, "/after");
    let mut e = l7_engine();
    let (records, most) = run_watching(&mut e, &c);
    assert_eq!(e.counters().h2_continuation_flood, 1);
    // The flooded block is gone; the next request (literals only) decodes exactly.
    assert_eq!(paths(&records), ["/after"]);
    assert!(most < 256 * 1024, "buffered {most}");
    // Field blocks after the cut are decoded against a forgotten table: partial, counted.
    assert!(e.counters().h2_field_blocks_with_partial_table >= 1);
}

#[test]
fn oversized_frames_are_skipped_unbuffered() {
    let mut c = conv();
    open(&mut c);
    // Both ends allow 16 MiB frames (SETTINGS_MAX_FRAME_SIZE); then a 1 MiB SETTINGS frame
    // (a multiple of 6) and a 1 MiB HEADERS frame arrive.
    let big = [0, 5, 0, 0xff, 0xff, 0xff];
    c.client_send(&frame(SETTINGS, 0, 0, &big), 1448);
    c.server_send(&frame(SETTINGS, 0, 0, &big), 1448);
    c.server_send(&frame(SETTINGS, 0, 0, &vec![0; 6 * 174_763]), 1448);
    c.client_send(&frame(HEADERS, END_HEADERS, 1, &vec![0x82; 1 << 20]), 1448);
    exchange(&mut c, 3, "/after");
    let mut e = l7_engine();
    let (records, most) = run_watching(&mut e, &c);
    assert_eq!(e.counters().h2_frames_oversized, 2);
    assert_eq!(paths(&records), ["/after"]);
    assert!(most < 256 * 1024, "buffered {most}");
}

#[test]
fn huge_stream_ids_and_too_many_streams() {
    let mut c = conv();
    open(&mut c);
    // The largest stream id, with the reserved bit set (RFC 9113 §4.1: ignored).
    c.client_send(
        &frame(HEADERS, END_HEADERS | END_STREAM, 0xffff_ffff, &get("/max")),
        1448,
    );
    c.server_send(
        &frame(HEADERS, END_HEADERS | END_STREAM, 0x7fff_ffff, &ok()),
        1448,
    );
    // 300 open streams that never finish: 256 are tracked.
    let mut many = Vec::new();
    for i in 0..300u32 {
        many.extend(frame(HEADERS, END_HEADERS, 1 + 2 * i, &get("/open")));
    }
    c.client_send(&many, 1448);
    let mut e = l7_engine();
    let (records, _) = run_watching(&mut e, &c);
    let p = paths(&records);
    assert_eq!(p[0], "/max");
    assert_eq!(p.len(), 1 + 256);
    assert_eq!(e.counters().h2_streams_over_cap, 44);
    assert_eq!(e.counters().h2_streams_unfinished, 256);
}

#[test]
fn garbage_after_the_preface_resyncs() {
    let mut c = conv();
    open(&mut c);
    c.client_send(&[0xff; 5000], 1448);
    exchange(&mut c, 1, "/after");
    exchange(&mut c, 3, "/again");
    let mut e = l7_engine();
    let (records, _) = run_watching(&mut e, &c);
    assert_eq!(paths(&records), ["/after", "/again"]);
    assert!(e.counters().h2_resyncs >= 1);
    assert!(e.counters().h2_frame_errors >= 1);
}

#[test]
fn one_byte_segments() {
    let mut c = conv();
    open(&mut c);
    let mut b = frame(HEADERS, END_HEADERS, 1, &get("/slow"));
    b.extend(frame(DATA, END_STREAM, 1, b"body"));
    c.client_send(&b, 1);
    c.server_send(&frame(HEADERS, END_HEADERS | END_STREAM, 1, &ok()), 1);
    let mut e = l7_engine();
    let (records, _) = run_watching(&mut e, &c);
    assert_eq!(paths(&records), ["/slow"]);
    let s = spans(&records)[0].clone();
    assert_eq!(
        s.attributes[attr::HTTP_REQUEST_BODY_SIZE],
        AttributeValue::Int(4)
    );
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Arbitrary bytes after a valid preface (or instead of one, mid-way): no panic, bounded.
    #[test]
    fn arbitrary_bytes_stay_bounded(
        junk in proptest::collection::vec(any::<u8>(), 0..4096),
        tail in proptest::collection::vec(any::<u8>(), 0..512),
        preface in any::<bool>(),
        mss in 1usize..1500,
    ) {
        let mut c = conv();
        c.handshake();
        let mut bytes = if preface { PREFACE.to_vec() } else { Vec::new() };
        bytes.extend(&junk);
        c.client_send(&bytes, mss);
        c.server_send(&tail, mss);
        let mut e = Engine::new(EngineConfig {
            l4_records: L4Records::Off,
            ..EngineConfig::default()
        });
        let (_, most) = run_watching(&mut e, &c);
        prop_assert!(most < 512 * 1024);
    }
}
