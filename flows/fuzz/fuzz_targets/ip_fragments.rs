//! IP fragment reassembly under arbitrary fragment sequences: colliding identifications,
//! overlaps, duplicates, odd lengths, snapped fragments, IPv4 and IPv6 (with and without a
//! Hop-by-Hop header), plus raw bytes given to `Fragment::parse`. No panics; the caps hold
//! after every fragment; a reassembled datagram decodes (or fails) like any packet; nothing is
//! left held after `flush`. The same bytes then go through the engine.
#![no_main]
use flows::counters::Counters;
use flows::engine::{Engine, EngineConfig};
use flows::ip::{CapturePoint, Fragment, IpReassembler, ReassemblyLimits};
use flows::packet::{decode_ip, CaptureMeta, LinkType};
use libfuzzer_sys::fuzz_target;

/// An IPv4 fragment of datagram `id` (UDP) with `data` at `offset`.
fn v4(id: u16, offset: u16, more: bool, data: &[u8]) -> Vec<u8> {
    let total = (20 + data.len()) as u16;
    let fo = (offset / 8) | if more { 0x2000 } else { 0 };
    let mut p = vec![
        0x45, 0, 0, 0, 0, 0, 0, 0, 64, 17, 0, 0, 198, 18, 0, 53, 198, 18, 0, 2,
    ];
    p[2..4].copy_from_slice(&total.to_be_bytes());
    p[4..6].copy_from_slice(&id.to_be_bytes());
    p[6..8].copy_from_slice(&fo.to_be_bytes());
    p.extend_from_slice(data);
    p
}

/// An IPv6 fragment of datagram `id` (UDP), optionally after a Hop-by-Hop header.
fn v6(id: u32, offset: u16, more: bool, hbh: bool, data: &[u8]) -> Vec<u8> {
    let exts: &[u8] = if hbh { &[44, 0, 1, 4, 0, 0, 0, 0] } else { &[] };
    let plen = (exts.len() + 8 + data.len()) as u16;
    let mut p = vec![0x60, 0, 0, 0, 0, 0, if hbh { 0 } else { 44 }, 64];
    p[4..6].copy_from_slice(&plen.to_be_bytes());
    p.extend_from_slice(&[0x20, 1, 0xd, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x53]);
    p.extend_from_slice(&[0x20, 1, 0xd, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2]);
    p.extend_from_slice(exts);
    p.extend_from_slice(&[17, 0]);
    p.extend_from_slice(&((offset & 0xfff8) | u16::from(more)).to_be_bytes());
    p.extend_from_slice(&id.to_be_bytes());
    p.extend_from_slice(data);
    p
}

fuzz_target!(|data: &[u8]| {
    let limits = ReassemblyLimits {
        timeout_ns: 50,
        max_bytes: 8192,
        max_datagrams: 3,
    };
    let mut r = IpReassembler::new();
    let mut c = Counters::default();
    let mut e = Engine::new(EngineConfig {
        ip_fragment_timeout_ns: 50,
        max_ip_fragment_bytes: 8192,
        max_ip_fragmented_datagrams: 3,
        ..EngineConfig::default()
    });
    let mut rest = data;
    let mut now = 0u64;
    // Each record: sel(1) offset(2) len(1) snap(1), then for raw records `len` packet bytes.
    while rest.len() >= 5 {
        let (sel, offset, len, snap) = (
            rest[0],
            u16::from_be_bytes([rest[1], rest[2]]),
            usize::from(rest[3]),
            rest[4],
        );
        rest = &rest[5..];
        now += u64::from(sel >> 5);
        let packet = if sel & 0x80 != 0 && sel & 0x40 != 0 {
            let n = len.min(rest.len());
            let p = rest[..n].to_vec();
            rest = &rest[n..];
            p
        } else {
            let payload: Vec<u8> = (0..len * 4).map(|i| i as u8 ^ sel).collect();
            let (more, id) = (sel & 2 != 0, u16::from((sel >> 2) & 3));
            if sel & 1 == 0 {
                v4(id, offset, more, &payload)
            } else {
                v6(u32::from(id), offset, more, sel & 0x10 != 0, &payload)
            }
        };
        let cut = packet.len().saturating_sub(usize::from(snap) * 8);
        let captured = if snap & 0x80 != 0 {
            &packet[..cut]
        } else {
            &packet[..]
        };
        if let Ok(f) = Fragment::parse(captured) {
            assert!(f.data.len() as u32 <= f.len);
            if let Some(out) = r.push(now, CapturePoint::default(), &f, &limits, &mut c) {
                if let Ok(p) = decode_ip(&out.packet, CaptureMeta::default()) {
                    assert!(p.payload_wire_len as usize >= p.payload.len());
                }
            }
        }
        assert!(r.held_bytes() <= limits.max_bytes);
        assert!(r.datagrams() <= limits.max_datagrams);
        let _ = e.handle_frame(now, LinkType::RawIp, captured, CaptureMeta::default());
        e.handle_timeout(now);
        while e.poll_record().is_some() {}
        assert!(e.ip_fragment_bytes() <= 8192);
        if now % 16 == 0 {
            r.on_timeout(now, &limits, &mut c);
        }
    }
    r.flush(&mut c);
    assert_eq!((r.held_bytes(), r.datagrams()), (0, 0));
    e.flush(now + 1);
    while e.poll_record().is_some() {}
    assert_eq!(e.ip_fragment_bytes(), 0);
});
