//! The per-packet fast path of [`super::decode_ip`]: a TCP segment (not a SYN) in an IPv4
//! header without options and unfragmented, or in an IPv6 header with no extension headers,
//! read with a few direct loads instead of etherparse's general slicing (which handles IPv4
//! options, IPv6 extension chains, fragments, lax lengths, and builds its error values). Nearly
//! every packet of a busy connection is such a segment.
//!
//! Anything else, or anything this path is unsure of (a length field that disagrees with the
//! captured bytes, a SYN whose options the general path walks for the window scale), returns
//! `None` and takes the general path, so both give the same [`Packet`]: debug builds check
//! it on every packet, and the unit tests below on every one-byte change of sample headers.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use super::{tcp_timestamps, CaptureMeta, Packet, TcpFlags, TcpInfo, Transport};

/// IP protocol number of TCP (IANA; IPv4 Protocol, IPv6 Next Header).
const TCP: u8 = 6;

/// The packet `ip` holds when it is a plain TCP segment (see the module doc), else `None`.
#[inline(always)]
pub(super) fn tcp_segment(ip: &[u8], meta: CaptureMeta) -> Option<Packet<'_>> {
    let (src, dst, segment) = match *ip.first()? {
        // Version 4, IHL 5: no options (RFC 791 §3.1).
        0x45 => {
            let h: &[u8; 20] = ip.get(..20)?.try_into().ok()?;
            let total = usize::from(u16::from_be_bytes([h[2], h[3]]));
            // MF clear and offset 0 (RFC 791 §3.1): not a fragment. The total length covers
            // the header and lies within the captured bytes (not snapped: the general path
            // then takes the captured rest); what follows it is link padding.
            if h[6] & 0x3f != 0 || h[7] != 0 || h[9] != TCP || total < 20 || total > ip.len() {
                return None;
            }
            let src = Ipv4Addr::new(h[12], h[13], h[14], h[15]);
            let dst = Ipv4Addr::new(h[16], h[17], h[18], h[19]);
            (IpAddr::V4(src), IpAddr::V4(dst), &ip[20..total])
        }
        // Version 6 (RFC 8200 §3), the upper layer straight after the fixed header.
        b if b >> 4 == 6 => {
            let h: &[u8; 40] = ip.get(..40)?.try_into().ok()?;
            let payload = usize::from(u16::from_be_bytes([h[4], h[5]]));
            // Payload length 0 is a jumbogram's (RFC 2675), whose length is elsewhere.
            if h[6] != TCP || payload == 0 || 40 + payload > ip.len() {
                return None;
            }
            let src: [u8; 16] = h[8..24].try_into().ok()?;
            let dst: [u8; 16] = h[24..40].try_into().ok()?;
            let seg = &ip[40..40 + payload];
            (
                IpAddr::V6(Ipv6Addr::from(src)),
                IpAddr::V6(Ipv6Addr::from(dst)),
                seg,
            )
        }
        _ => return None,
    };
    // RFC 9293 §3.1: the data offset counts 32-bit words, at least 5.
    let t: &[u8; 20] = segment.get(..20)?.try_into().ok()?;
    let header_len = usize::from(t[12] >> 4) * 4;
    let flags = TcpFlags(t[13]);
    if header_len < 20 || header_len > segment.len() || flags.contains(TcpFlags::SYN) {
        return None;
    }
    let be32 = |i: usize| u32::from_be_bytes([t[i], t[i + 1], t[i + 2], t[i + 3]]);
    let info = TcpInfo {
        src_port: u16::from_be_bytes([t[0], t[1]]),
        dst_port: u16::from_be_bytes([t[2], t[3]]),
        seq: be32(4),
        ack: be32(8),
        flags,
        window: u16::from_be_bytes([t[14], t[15]]),
        window_scale: None,
        timestamps: tcp_timestamps(&segment[..header_len]),
    };
    let payload = &segment[header_len..];
    // Lengths per the headers; the segment lies within the captured bytes, so the wire
    // length is the captured one.
    let ip_len = match src {
        IpAddr::V4(_) => 20 + segment.len(),
        IpAddr::V6(_) => 40 + segment.len(),
    };
    Some(Packet {
        meta,
        src,
        dst,
        transport: Transport::Tcp(info),
        payload,
        ip_len: ip_len as u32,
        payload_wire_len: payload.len() as u32,
    })
}

#[cfg(test)]
mod tests {
    use super::super::decode_ip_general;
    use super::*;

    /// An IPv4 TCP segment: 20-byte IP header, TCP header with the timestamps option (32
    /// bytes), 5 bytes of payload, 4 bytes of link padding.
    fn v4() -> Vec<u8> {
        let mut p = vec![
            0x45, 0, 0, 57, 0x12, 0x34, 0x40, 0, 64, 6, 0, 0, 198, 18, 0, 2, 198, 18, 0, 1,
        ];
        p.extend_from_slice(&tcp_header());
        p.extend_from_slice(b"hello");
        p.extend_from_slice(&[0; 4]);
        p
    }

    /// The same segment in IPv6.
    fn v6() -> Vec<u8> {
        let mut p = vec![0x60, 0, 0, 0, 0, 37, 6, 64];
        p.extend_from_slice(&[0x20, 0x01, 0x0d, 0xb8].repeat(4));
        p.extend_from_slice(&[0xfe, 0x80, 0, 1].repeat(4));
        p.extend_from_slice(&tcp_header());
        p.extend_from_slice(b"hello");
        p
    }

    fn tcp_header() -> [u8; 32] {
        let mut t = [0u8; 32];
        t[..16].copy_from_slice(&[0xc3, 0x50, 0, 80, 0, 0, 1, 0, 0, 0, 2, 0, 0x80, 0x18, 1, 0]);
        t[20..32].copy_from_slice(&[1, 1, 8, 10, 0, 0, 0, 7, 0, 0, 0, 9]);
        t
    }

    /// Whatever the fast path reads equals the general path's packet.
    fn agrees(ip: &[u8]) {
        let meta = CaptureMeta::default();
        if let Some(p) = tcp_segment(ip, meta) {
            assert_eq!(decode_ip_general(ip, meta), Ok(p), "{ip:02x?}");
        }
    }

    #[test]
    fn plain_segments_take_the_fast_path() {
        for p in [v4(), v6()] {
            let fast = tcp_segment(&p, CaptureMeta::default()).expect("fast path");
            assert_eq!(fast.payload, b"hello");
            agrees(&p);
        }
    }

    #[test]
    fn every_one_byte_change_agrees_with_the_general_path() {
        for base in [v4(), v6()] {
            // The IP and TCP headers, every value of each byte; and every cut of the packet.
            for i in 0..base.len().min(72) {
                for b in 0..=255u8 {
                    let mut p = base.clone();
                    p[i] = b;
                    agrees(&p);
                }
            }
            for n in 0..=base.len() {
                agrees(&base[..n]);
            }
        }
    }

    #[test]
    fn what_the_fast_path_leaves_to_the_general_one() {
        let meta = CaptureMeta::default();
        let mut syn = v4();
        syn[20 + 13] = 0x02;
        let mut fragment = v4();
        fragment[6] = 0x20; // MF
        let mut options = v4();
        options[0] = 0x46;
        let mut snapped = v4();
        snapped.truncate(40);
        for p in [syn, fragment, options, snapped] {
            assert!(tcp_segment(&p, meta).is_none());
        }
    }
}
