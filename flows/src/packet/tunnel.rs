//! Tunnels whose inner packets are the conversations: a capture taken on a physical interface
//! of an overlay network (VXLAN, Geneve), a GRE or IP-in-IP link, or an ERSPAN mirror session
//! carries the traffic worth decoding one header deeper. [`inner`] names the inner frame;
//! the engine decodes it like a captured frame (`EngineConfig::decapsulate_tunnels`, on in
//! `replay`; off in the agent, which captures the same traffic decapsulated on the inner
//! interfaces and must not report it twice).
//!
//! A header we do not decode (source routing, RFC 1701; an unknown protocol type; a GTP-U
//! message other than a G-PDU; PPP control protocols) or one cut short leaves the outer packet
//! to stand alone: that is what it was before, and its L4 record still shows it.

use super::{LinkType, Packet, Transport};

/// VXLAN's UDP destination port (RFC 7348 §5).
pub const VXLAN_PORT: u16 = 4789;
/// Geneve's UDP destination port (RFC 8926 §3.3).
pub const GENEVE_PORT: u16 = 6081;
/// GTP-U's UDP destination port (3GPP TS 29.281 §4.4.2.3): mobile networks' user plane.
pub const GTPU_PORT: u16 = 2152;

/// Protocol types (EtherType values) tunnels name their payload by.
const ETHERTYPE_IPV4: u16 = 0x0800;
const ETHERTYPE_IPV6: u16 = 0x86dd;
/// Transparent Ethernet bridging (RFC 1701): an Ethernet frame follows.
const ETHERTYPE_TEB: u16 = 0x6558;
/// ERSPAN type I and II (GRE protocol type 0x88BE; type I has no sequence number and no
/// ERSPAN header, draft-foschiano-erspan §4.1, §4.2).
const ETHERTYPE_ERSPAN_2: u16 = 0x88be;
/// ERSPAN type III (draft-foschiano-erspan §4.3).
const ETHERTYPE_ERSPAN_3: u16 = 0x22eb;
/// PPP, as PPTP's enhanced GRE names its payload (RFC 2637 §4.1).
const ETHERTYPE_PPP: u16 = 0x880b;

/// The frame `packet` carries, with its link type, when it is a tunnel packet we decode:
/// IP-in-IP (IP protocols 4 and 41, RFC 2003, RFC 2473), GRE (protocol 47, RFC 2784 with the
/// key and sequence fields of RFC 2890; ERSPAN inside it; PPTP's enhanced GRE, RFC 2637),
/// VXLAN (RFC 7348), Geneve (RFC 8926) and GTP-U (3GPP TS 29.281) by their UDP destination
/// ports.
pub fn inner<'a>(packet: &Packet<'a>) -> Option<(LinkType, &'a [u8])> {
    match packet.transport {
        Transport::Other { protocol: 4 | 41 } => Some((LinkType::RawIp, packet.payload)),
        Transport::Other { protocol: 47 } => gre(packet.payload),
        Transport::Udp {
            dst_port: VXLAN_PORT,
            ..
        } => vxlan(packet.payload),
        Transport::Udp {
            dst_port: GENEVE_PORT,
            ..
        } => geneve(packet.payload),
        Transport::Udp {
            dst_port: GTPU_PORT,
            ..
        } => gtpu(packet.payload),
        _ => None,
    }
}

/// By a protocol type: IP (either version: the raw-IP link reads the version nibble) or an
/// Ethernet frame.
fn by_ethertype(ethertype: u16, rest: &[u8]) -> Option<(LinkType, &[u8])> {
    match ethertype {
        ETHERTYPE_IPV4 | ETHERTYPE_IPV6 => Some((LinkType::RawIp, rest)),
        ETHERTYPE_TEB => Some((LinkType::Ethernet, rest)),
        _ => None,
    }
}

/// GRE (RFC 2784 §2: C bit, reserved0 and version 0; RFC 2890 §2: K and S bits add a 4-byte
/// key and sequence number after the optional checksum word).
fn gre(b: &[u8]) -> Option<(LinkType, &[u8])> {
    let flags = u16::from_be_bytes([*b.first()?, *b.get(1)?]);
    let protocol = u16::from_be_bytes([*b.get(2)?, *b.get(3)?]);
    if flags & 0x0007 == 1 {
        return pptp_gre(flags, protocol, b);
    }
    // Version 0 (1 is PPTP's, above); no routing (RFC 1701's R bit, deprecated).
    if flags & 0x0007 != 0 || flags & 0x4000 != 0 {
        return None;
    }
    let sequenced = flags & 0x1000 != 0;
    let len = 4
        + 4 * usize::from(flags & 0x8000 != 0)
        + 4 * usize::from(flags & 0x2000 != 0)
        + 4 * usize::from(sequenced);
    let rest = b.get(len..)?;
    match protocol {
        // Type I has no sequence number and no header of its own; type II has both (8 bytes).
        ETHERTYPE_ERSPAN_2 if !sequenced => Some((LinkType::Ethernet, rest)),
        ETHERTYPE_ERSPAN_2 => Some((LinkType::Ethernet, rest.get(8..)?)),
        // Type III: 12 bytes, and an 8-byte platform subheader when its O bit is set.
        ETHERTYPE_ERSPAN_3 => {
            let o = rest.get(11)? & 0x01 != 0;
            Some((LinkType::Ethernet, rest.get(12 + 8 * usize::from(o)..)?))
        }
        p => by_ethertype(p, rest),
    }
}

/// PPTP's enhanced GRE (RFC 2637 §4.1): version 1, protocol type PPP, the key field always
/// present (payload length and call id), a sequence number with the S bit and an
/// acknowledgement number with the A bit (0x0080); then a PPP frame, which may be empty (an
/// acknowledgement alone).
fn pptp_gre(flags: u16, protocol: u16, b: &[u8]) -> Option<(LinkType, &[u8])> {
    if protocol != ETHERTYPE_PPP || flags & 0x2000 == 0 {
        return None;
    }
    let len = 8 + 4 * usize::from(flags & 0x1000 != 0) + 4 * usize::from(flags & 0x0080 != 0);
    let payload = usize::from(u16::from_be_bytes([*b.get(4)?, *b.get(5)?]));
    let rest = b.get(len..)?;
    match rest.get(..payload) {
        Some(ppp) if !ppp.is_empty() => Some((LinkType::Ppp, ppp)),
        _ => None,
    }
}

/// GTP-U (3GPP TS 29.281 §5.1): version 1 with the protocol type bit set; only a G-PDU
/// (message type 255) carries a user packet. 8 bytes, 4 more when any of the E, S and PN
/// flags is set, then the extension headers the E flag chains (§5.2: each a length in 4-byte
/// units, its content and the next one's type, 0 for none); then the IP packet.
fn gtpu(b: &[u8]) -> Option<(LinkType, &[u8])> {
    let flags = *b.first()?;
    if flags >> 5 != 1 || flags & 0x10 == 0 || *b.get(1)? != 0xff {
        return None;
    }
    let mut at = 8;
    if flags & 0x07 != 0 {
        at = 12;
        let mut next = *b.get(11)?;
        if flags & 0x04 != 0 {
            while next != 0 {
                let words = usize::from(*b.get(at)?);
                if words == 0 {
                    return None;
                }
                at += 4 * words;
                next = *b.get(at - 1)?;
            }
        }
    }
    let rest = b.get(at..)?;
    (!rest.is_empty()).then_some((LinkType::RawIp, rest))
}

/// VXLAN (RFC 7348 §5): 8 bytes, the I flag set for a valid VNI, then an Ethernet frame.
fn vxlan(b: &[u8]) -> Option<(LinkType, &[u8])> {
    if b.first()? & 0x08 == 0 {
        return None;
    }
    Some((LinkType::Ethernet, b.get(8..)?))
}

/// Geneve (RFC 8926 §3.4): version 0, options of `opt_len` 4-byte words after the 8 fixed
/// bytes, then what the protocol type names.
fn geneve(b: &[u8]) -> Option<(LinkType, &[u8])> {
    let first = *b.first()?;
    if first >> 6 != 0 {
        return None;
    }
    let len = 8 + 4 * usize::from(first & 0x3f);
    let protocol = u16::from_be_bytes([*b.get(2)?, *b.get(3)?]);
    by_ethertype(protocol, b.get(len..)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gre_headers_by_their_flags() {
        // Plain GRE carrying IPv4.
        assert_eq!(
            gre(&[0, 0, 0x08, 0, 0x45]),
            Some((LinkType::RawIp, &[0x45][..]))
        );
        // Checksum, key and sequence present: 4 + 12 bytes.
        let mut b = vec![0xb0, 0, 0x86, 0xdd];
        b.extend([0; 12]);
        b.push(0x60);
        assert_eq!(gre(&b), Some((LinkType::RawIp, &[0x60][..])));
        // Transparent Ethernet bridging.
        assert_eq!(gre(&[0, 0, 0x65, 0x58, 1]).unwrap().0, LinkType::Ethernet);
        // Version 1 carrying anything but PPP, routing, unknown protocol, cut short: not
        // decoded.
        assert_eq!(gre(&[0, 1, 0x08, 0, 0x45]), None);
        assert_eq!(gre(&[0x40, 0, 0x08, 0, 0x45]), None);
        assert_eq!(gre(&[0, 0, 0x88, 0x0b, 0]), None);
        assert_eq!(gre(&[0x80, 0, 0x08, 0]), None);
    }

    #[test]
    fn erspan_types_inside_gre() {
        // Type I: no sequence number, the frame follows the GRE header.
        assert_eq!(
            gre(&[0, 0, 0x88, 0xbe, 7]),
            Some((LinkType::Ethernet, &[7][..]))
        );
        // Type II: sequence number, then the 8-byte ERSPAN header.
        let mut b = vec![0x10, 0, 0x88, 0xbe, 0, 0, 0, 1];
        b.extend([0x10, 0, 0, 1, 0, 0, 0, 0, 9]);
        assert_eq!(gre(&b), Some((LinkType::Ethernet, &[9][..])));
        // Type III with the platform subheader (O bit in its 12th byte).
        let mut b = vec![0x10, 0, 0x22, 0xeb, 0, 0, 0, 1];
        b.extend([0; 11]);
        b.push(1);
        b.extend([0; 8]);
        b.push(5);
        assert_eq!(gre(&b), Some((LinkType::Ethernet, &[5][..])));
    }

    #[test]
    fn pptp_enhanced_gre_carries_ppp() {
        // K and S set, version 1, PPP; payload length 3, call id 7; sequence number; then
        // a PPP frame (its protocol field compressed to one byte, 0x21: IPv4, RFC 1661 §6.5)
        // and a byte past the payload length.
        let mut b = vec![0x30, 0x01, 0x88, 0x0b, 0, 3, 0, 7, 0, 0, 0, 1];
        b.extend([0x21, 0x45, 0x00, 0xee]);
        assert_eq!(gre(&b), Some((LinkType::Ppp, &[0x21, 0x45, 0][..])));
        // With the A bit: an acknowledgement number after the sequence number.
        let mut a = vec![0x30, 0x81, 0x88, 0x0b, 0, 1, 0, 7, 0, 0, 0, 1, 0, 0, 0, 9];
        a.push(0x21);
        assert_eq!(gre(&a), Some((LinkType::Ppp, &[0x21][..])));
        // An acknowledgement alone (no payload), no key, or not PPP: nothing inside.
        assert_eq!(gre(&[0x20, 0x81, 0x88, 0x0b, 0, 0, 0, 7, 0, 0, 0, 9]), None);
        assert_eq!(gre(&[0x10, 0x01, 0x88, 0x0b, 0, 0, 0, 1, 0x21]), None);
        assert_eq!(gre(&[0x20, 0x01, 0x08, 0x00, 0, 1, 0, 7, 0x45]), None);
    }

    #[test]
    fn gtpu_g_pdus_carry_ip() {
        // Version 1, PT, no optional fields; G-PDU; length; TEID; then IPv4.
        let plain = [0x30, 0xff, 0, 1, 0, 0, 0, 5, 0x45];
        assert_eq!(gtpu(&plain), Some((LinkType::RawIp, &[0x45][..])));
        // S set: sequence number, N-PDU number and next-extension type (none).
        let seq = [0x32, 0xff, 0, 5, 0, 0, 0, 5, 0, 1, 0, 0, 0x60];
        assert_eq!(gtpu(&seq), Some((LinkType::RawIp, &[0x60][..])));
        // E set: one extension header (PDU session container, 0x85) of one word.
        let ext = [
            0x34, 0xff, 0, 9, 0, 0, 0, 5, 0, 0, 0, 0x85, 1, 0x00, 0x09, 0x00, 0x45,
        ];
        assert_eq!(gtpu(&ext), Some((LinkType::RawIp, &[0x45][..])));
        // An echo request (type 1), GTP' (PT 0), version 2, an empty G-PDU: nothing inside.
        assert_eq!(gtpu(&[0x32, 0x01, 0, 4, 0, 0, 0, 0, 0, 1, 0, 0]), None);
        assert_eq!(gtpu(&[0x20, 0xff, 0, 1, 0, 0, 0, 5, 0x45]), None);
        assert_eq!(gtpu(&[0x50, 0xff, 0, 1, 0, 0, 0, 5, 0x45]), None);
        assert_eq!(gtpu(&plain[..8]), None);
        // A zero-length extension header would never end.
        assert_eq!(
            gtpu(&[0x34, 0xff, 0, 9, 0, 0, 0, 5, 0, 0, 0, 0x85, 0, 0x45]),
            None
        );
    }

    #[test]
    fn vxlan_and_geneve() {
        let mut v = vec![0x08, 0, 0, 0, 0, 0, 42, 0];
        v.push(0xaa);
        assert_eq!(vxlan(&v), Some((LinkType::Ethernet, &[0xaa][..])));
        v[0] = 0;
        assert_eq!(vxlan(&v), None, "no valid VNI");
        // Geneve with one 4-byte option word, carrying Ethernet.
        let mut g = vec![0x01, 0, 0x65, 0x58, 0, 0, 1, 0, 1, 2, 3, 4, 0xbb];
        assert_eq!(geneve(&g), Some((LinkType::Ethernet, &[0xbb][..])));
        g[0] = 0x41;
        assert_eq!(geneve(&g), None, "version 1");
    }
}
