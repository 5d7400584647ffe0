//! Arbitrary bytes in both directions, with gaps and ends, through the HTTP/1 decoder (its
//! httparse and lenient head parsers, framing, resync and pairing): no panics, bounded
//! buffering, and every exchange reported at most once.
#![no_main]
use flows::counters::Counters;
use flows::l7::http1::{Http1Decoder, Http1Event};
use flows::l7::{L7Config, L7Context, L7Event, PacketCtx, StreamDecoder, StreamDir};
use flows::tcp::StreamEvent;
use flows::trace::IdGenerator;
use libfuzzer_sys::fuzz_target;

/// Start lines the lenient parser is there for, so the fuzzer starts next to its branches.
const SEEDS: [&[u8]; 8] = [
    b"",
    b"GET /legacy\r\n",
    b"GET /odd HTTP/1.\r\nHost: h\r\n",
    b"HTTP/1.1 2XX OK\r\nContent-Length: 3\r\n",
    b"HTTP/1.1 200 \x01\x7f\r\nno colon\r\n",
    b"POST /x HTTP/1.1\r\nTransfer-Encoding: chunked, gzip\r\n",
    b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n",
    b"PROPFIND /d HTTP/1.2\nContent-Length: 5\nContent-Length: 7\n",
];

fuzz_target!(|data: &[u8]| {
    let config = L7Config { max_header_bytes: 512, max_headers: 8, ..L7Config::default() };
    let mut counters = Counters::default();
    let mut ids = IdGenerator::new(0);
    let mut dec = Http1Decoder::new();
    let mut out = Vec::new();
    let Some((&first, mut rest)) = data.split_first() else { return };
    let mut ts = 0;
    let mut feed = |dec: &mut Http1Decoder, dir, ev, out: &mut Vec<L7Event>, ts: u64| {
        let mut cx = L7Context { counters: &mut counters, ids: &mut ids, config: &config };
        dec.on_event(dir, ev, &PacketCtx { ts_ns: ts, ..Default::default() }, &mut cx, out);
    };
    // First byte: bits 0-1 join each direction mid-way (a leading gap), bits 2-4 pick a seed
    // for the request direction and bits 5-7 one for the response direction.
    for (bit, dir) in [(1, StreamDir::ToServer), (2, StreamDir::ToClient)] {
        if first & bit != 0 {
            feed(&mut dec, dir, StreamEvent::Gap { len: 0 }, &mut out, ts);
        }
    }
    feed(&mut dec, StreamDir::ToServer, StreamEvent::Data(SEEDS[usize::from(first >> 2 & 7)]), &mut out, ts);
    feed(&mut dec, StreamDir::ToClient, StreamEvent::Data(SEEDS[usize::from(first >> 5)]), &mut out, ts);
    // Then records: control(1) len(1) and `len` bytes. Control bit 0: direction; bits 1-2:
    // 0 data, 1 gap, 2 fin, 3 data.
    let mut reported = std::collections::HashSet::<String>::new();
    while rest.len() >= 2 {
        let ctl = rest[0];
        let len = usize::from(rest[1]).min(rest.len() - 2);
        let bytes = &rest[2..2 + len];
        rest = &rest[2 + len..];
        ts += 1;
        let dir = if ctl & 1 == 0 { StreamDir::ToServer } else { StreamDir::ToClient };
        let ev = match (ctl >> 1) & 3 {
            1 => StreamEvent::Gap { len: len as u64 },
            2 => StreamEvent::Fin,
            _ => StreamEvent::Data(bytes),
        };
        feed(&mut dec, dir, ev, &mut out, ts);
        assert!(dec.buffered() <= 4 * 1024);
        check(&mut out, &mut reported);
    }
    let mut cx = L7Context { counters: &mut counters, ids: &mut ids, config: &config };
    dec.finish(ts + 1, &mut cx, &mut out);
    check(&mut out, &mut reported);
});

/// Each request ends in at most one exchange or unanswered report (told apart by the span id
/// generated for it).
fn check(out: &mut Vec<L7Event>, reported: &mut std::collections::HashSet<String>) {
    for ev in out.drain(..) {
        let request = match &ev {
            L7Event::Http1(Http1Event::Exchange { request: Some(r), .. }) => r,
            L7Event::Http1(Http1Event::Unanswered { request, .. }) => request,
            _ => continue,
        };
        // Placeholders (heads over the cap) share no identity worth checking.
        if !request.method.is_empty() {
            assert!(reported.insert(request.trace.span_id.to_string()), "{ev:?}");
        }
    }
}
