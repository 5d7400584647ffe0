//! Arbitrary bytes in both directions, with gaps and ends, through the HTTP/2 decoder (from
//! the preface or joined mid-way) and through HPACK alone: no panics and bounded buffering;
//! and the Huffman decoder against its bit-by-bit reference.
#![no_main]
use flows::counters::Counters;
use flows::l7::http2::{hpack, Http2Decoder};
use flows::l7::{L7Config, L7Context, PacketCtx, StreamDecoder, StreamDir};
use flows::tcp::StreamEvent;
use flows::trace::IdGenerator;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let config = L7Config {
        h2_max_frame_bytes: 4096,
        h2_max_header_block_bytes: 4096,
        h2_max_header_list_bytes: 4096,
        h2_max_hpack_table_bytes: 4096,
        h2_max_streams: 16,
        ..L7Config::default()
    };
    if mode & 3 == 3 {
        // The Huffman decoder's tables against the bit-by-bit reference (RFC 7541 §5.2: same
        // bytes, same errors), on the bytes as one string.
        let mut slow = Vec::new();
        let reference = hpack::huffman::decode_reference(rest, &mut slow).map(|_| slow);
        let fast = hpack::huffman::decode(rest, &mut Vec::new()).map(<[u8]>::to_vec);
        assert_eq!(fast, reference);
        // HPACK alone, both a fresh and a partial table.
        let mut out = Vec::new();
        let _ = hpack::Decoder::new(4096).decode(rest, 4096, &mut out);
        out.clear();
        let _ = hpack::Decoder::partial(4096).decode(rest, 4096, &mut out);
        return;
    }
    let mut counters = Counters::default();
    let mut ids = IdGenerator::new(0);
    let mut dec = if mode & 1 == 0 {
        Http2Decoder::with_preface(&config)
    } else {
        Http2Decoder::mid_stream(&config)
    };
    let mut out = Vec::new();
    // Each record: control(1) len(1) then `len` bytes. control bit 0: direction,
    // bits 1-2: 0 data, 1 gap, 2 fin, 3 data.
    let mut rest = rest;
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
        assert!(dec.buffered() <= 1024 * 1024 + 2 * 300 * 1024);
        out.clear();
    }
    let mut cx = L7Context { counters: &mut counters, ids: &mut ids, config: &config };
    dec.finish(ts + 1, &mut cx, &mut out);
});
