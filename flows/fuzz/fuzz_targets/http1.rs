//! Arbitrary bytes in both directions, with gaps and ends, through the HTTP/1 decoder:
//! no panics and bounded buffering.
#![no_main]
use flows::counters::Counters;
use flows::l7::http1::Http1Decoder;
use flows::l7::{L7Config, L7Context, PacketCtx, StreamDecoder, StreamDir};
use flows::tcp::StreamEvent;
use flows::trace::IdGenerator;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let config = L7Config { max_header_bytes: 512, max_headers: 8, ..L7Config::default() };
    let mut counters = Counters::default();
    let mut ids = IdGenerator::new(0);
    let mut dec = Http1Decoder::new();
    let mut out = Vec::new();
    // Each record: control(1) len(1) then `len` bytes. control bit 0: direction,
    // bits 1-2: 0 data, 1 gap, 2 fin, 3 data.
    let mut rest = data;
    let mut ts = 0;
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
        let mut cx = L7Context { counters: &mut counters, ids: &mut ids, config: &config };
        dec.on_event(dir, ev, &PacketCtx { ts_ns: ts, ..Default::default() }, &mut cx, &mut out);
        assert!(dec.buffered() <= 4 * 1024);
        out.clear();
    }
    let mut cx = L7Context { counters: &mut counters, ids: &mut ids, config: &config };
    dec.finish(ts + 1, &mut cx, &mut out);
});
