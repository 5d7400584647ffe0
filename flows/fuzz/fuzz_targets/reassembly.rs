//! Arbitrary segment sequences (seq, flags, payload, snapped length) through one reassembler:
//! no panics, the buffer stays under its cap, and delivered offsets only grow.
#![no_main]
use flows::counters::Counters;
use flows::packet::TcpFlags;
use flows::tcp::{ReassemblerConfig, Segment, StreamEvent, TcpReassembler};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let cfg = ReassemblerConfig { max_buffered_bytes: 4096 };
    let mut r = TcpReassembler::new();
    let mut c = Counters::default();
    let mut delivered = 0u64;
    let mut rest = data;
    let mut now = 0;
    // Each record: seq(4) flags(1) len(1) snapped_extra(1) then `len` payload bytes.
    while rest.len() >= 7 {
        let seq = u32::from_be_bytes([rest[0], rest[1], rest[2], rest[3]]);
        let flags = TcpFlags(rest[4]);
        let len = usize::from(rest[5]).min(rest.len() - 7);
        let extra = u32::from(rest[6] % 8);
        let payload = &rest[7..7 + len];
        rest = &rest[7 + len..];
        now += 1;
        let seg = Segment { seq, flags, payload, wire_len: len as u32 + extra };
        r.push(&seg, now, &cfg, &mut c, &mut |ev, _| {
            if let StreamEvent::Data(d) = ev {
                delivered += d.len() as u64;
            }
        });
        assert!(r.buffered() <= cfg.max_buffered_bytes);
        if now % 7 == 0 {
            r.on_timeout(now, 3, &mut c, &mut |_, _| {});
        }
        if now % 5 == 0 {
            r.on_peer_ack(seq.wrapping_add(100), now, 2, &mut c, &mut |_, _| {});
        }
    }
    r.flush(&mut c, &mut |_, _| {});
    assert!(delivered <= r.offset());
});
