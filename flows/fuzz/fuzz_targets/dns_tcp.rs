//! Arbitrary bytes in both directions, with gaps, ends and mid-way starts, through the DNS
//! over TCP decoder (framing, resync search, pairing): no panics, no hangs, bounded buffering.
#![no_main]
use flows::counters::Counters;
use flows::l7::dns::DnsTcpDecoder;
use flows::l7::{L7Config, L7Context, PacketCtx, StreamDecoder, StreamDir};
use flows::tcp::StreamEvent;
use flows::trace::IdGenerator;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let config = L7Config {
        max_pending_requests: 8,
        ..L7Config::default()
    };
    let mut counters = Counters::default();
    let mut ids = IdGenerator::new(0);
    let mut dec = DnsTcpDecoder::new();
    let mut out = Vec::new();
    let mut ts = 0;
    let mut feed = |dec: &mut DnsTcpDecoder, dir, ev: StreamEvent<'_>, ts: u64, counters: &mut Counters| {
        let mut cx = L7Context { counters, ids: &mut ids, config: &config };
        dec.on_event(dir, ev, &PacketCtx { ts_ns: ts, ..Default::default() }, &mut cx, &mut out);
        // One frame (2 + 65535 bytes) per direction at most.
        assert!(dec.buffered() <= 2 * (2 + 65535));
        out.clear();
    };
    if mode & 1 == 1 {
        // Joined mid-way in both directions.
        feed(&mut dec, StreamDir::ToServer, StreamEvent::Gap { len: 0 }, 0, &mut counters);
        feed(&mut dec, StreamDir::ToClient, StreamEvent::Gap { len: 0 }, 0, &mut counters);
    }
    // Each record: control(1) len(2, big-endian) then `len` bytes. control bit 0: direction,
    // bits 1-2: 0 data, 1 gap, 2 fin, 3 data. Lengths up to 64 KiB let frames span records.
    let mut rest = rest;
    while rest.len() >= 3 && !dec.is_dead() {
        let ctl = rest[0];
        let len = usize::from(u16::from_be_bytes([rest[1], rest[2]])).min(rest.len() - 3);
        let bytes = &rest[3..3 + len];
        rest = &rest[3 + len..];
        ts += 1;
        let dir = if ctl & 1 == 0 { StreamDir::ToServer } else { StreamDir::ToClient };
        let ev = match (ctl >> 1) & 3 {
            1 => StreamEvent::Gap { len: u64::from(ctl >> 3) },
            2 => StreamEvent::Fin,
            _ => StreamEvent::Data(bytes),
        };
        feed(&mut dec, dir, ev, ts, &mut counters);
    }
    let mut cx = L7Context { counters: &mut counters, ids: &mut ids, config: &config };
    dec.finish(ts + 1, &mut cx, &mut out);
});
