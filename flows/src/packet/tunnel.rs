//! Tunnels whose inner packets are the conversations: a capture taken on a physical interface
//! of an overlay network (VXLAN, Geneve), a GRE or IP-in-IP link, or an ERSPAN mirror session
//! carries the traffic worth decoding one header deeper. [`inner`] names the inner frame;
//! the engine decodes it like a captured frame (`EngineConfig::decapsulate_tunnels`, on in
//! `replay`; off in the agent, which captures the same traffic decapsulated on the inner
//! interfaces and must not report it twice).
//!
//! A header we do not decode (GRE version 1, RFC 2637; source routing, RFC 1701; an unknown
//! protocol type) or one cut short leaves the outer packet to stand alone: that is what it
//! was before, and its L4 record still shows it.

use super::{LinkType, Packet, Transport};

/// VXLAN's UDP destination port (RFC 7348 §5).
pub const VXLAN_PORT: u16 = 4789;
/// Geneve's UDP destination port (RFC 8926 §3.3).
pub const GENEVE_PORT: u16 = 6081;

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

/// The frame `packet` carries, with its link type, when it is a tunnel packet we decode:
/// IP-in-IP (IP protocols 4 and 41, RFC 2003, RFC 2473), GRE (protocol 47, RFC 2784 with the
/// key and sequence fields of RFC 2890; ERSPAN inside it), VXLAN (RFC 7348) and Geneve
/// (RFC 8926) by their UDP destination ports.
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
    // Version 0 only (1 is PPTP's enhanced GRE); no routing (RFC 1701's R bit, deprecated).
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
        // Version 1 (PPTP), routing, unknown protocol, cut short: not decoded.
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
