//! Link-layer headers: what comes before the IP header, per capture link type.
//!
//! Layouts follow the LINKTYPE registry (draft-ietf-opsawg-pcaplinktype, mirrored at
//! <https://www.tcpdump.org/linktypes.html>); each strip function cites its entry. They return
//! the ethertype of what follows (an IP version is mapped to its ethertype) and the bytes
//! after the header, and fill in what the header knows about direction and interface when
//! the capture itself did not say.

use super::{be16, need, CaptureMeta, DecodeError, Direction, LinkType};

mod host;
mod llc;
mod mpls;
mod ppp;
mod wlan;

pub(super) const ETHERTYPE_IPV4: u16 = 0x0800;
pub(super) const ETHERTYPE_IPV6: u16 = 0x86dd;
const ETHERTYPE_VLAN: u16 = 0x8100;
const ETHERTYPE_QINQ: u16 = 0x88a8;
/// Pre-standard QinQ outer tag still emitted by some switches.
const ETHERTYPE_QINQ_OLD: u16 = 0x9100;
/// QinQ is two tags; beyond a small margin it is garbage, not a real stack.
const MAX_VLAN_TAGS: usize = 4;

/// Strips the link-layer header and returns the ethertype and the bytes after it, filling
/// direction and interface in `meta` from the header when the capture left them unknown.
pub(super) fn strip<'a>(
    link: LinkType,
    frame: &'a [u8],
    meta: &mut CaptureMeta,
) -> Result<(u16, &'a [u8]), DecodeError> {
    let (mut ethertype, mut rest) = match link {
        LinkType::RawIp => return Ok(raw_ip(frame)),
        LinkType::Ethernet => {
            // dst mac(6) src mac(6) ethertype(2)
            need("ethernet", frame, 14)?;
            (be16(frame, 12), &frame[14..])
        }
        LinkType::LinuxSll => {
            // LINKTYPE_LINUX_SLL (113): pkttype(2) arphrd(2) addrlen(2) addr(8) protocol(2)
            need("linux_sll", frame, 16)?;
            if meta.direction == Direction::Unknown {
                meta.direction = sll_direction(be16(frame, 0));
            }
            (be16(frame, 14), &frame[16..])
        }
        LinkType::LinuxSll2 => {
            // LINKTYPE_LINUX_SLL2 (276): protocol(2) reserved(2) ifindex(4) arphrd(2)
            // pkttype(1) addrlen(1) addr(8)
            need("linux_sll2", frame, 20)?;
            if meta.direction == Direction::Unknown {
                meta.direction = sll_direction(u16::from(frame[10]));
            }
            if meta.ifindex == 0 {
                meta.ifindex = u32::from_be_bytes([frame[4], frame[5], frame[6], frame[7]]);
            }
            (be16(frame, 0), &frame[20..])
        }
        LinkType::Null | LinkType::Loop => {
            need("bsd_loopback", frame, 4)?;
            let rest = &frame[4..];
            (bsd_family_ethertype(&frame[..4], rest)?, rest)
        }
        LinkType::Nflog => return nflog(frame, meta),
        LinkType::Ppp | LinkType::PppHdlc => return ppp::ppp(frame),
        LinkType::CiscoHdlc => ppp::cisco_hdlc(frame)?,
        LinkType::Pflog => return host::pflog(frame, meta),
        LinkType::Ipnet => return host::ipnet(frame, meta),
        LinkType::Pktap => return host::pktap(frame, meta),
        LinkType::Ieee80211 => wlan::data_frame(frame)?,
        LinkType::Radiotap => wlan::radiotap(frame)?,
        LinkType::Ppi => return wlan::ppi(frame, meta),
        LinkType::Fddi => llc::fddi(frame)?,
        LinkType::Unsupported(n) => return Err(DecodeError::UnsupportedLinkType(n)),
    };
    let mut tags = 0;
    while matches!(
        ethertype,
        ETHERTYPE_VLAN | ETHERTYPE_QINQ | ETHERTYPE_QINQ_OLD
    ) {
        tags += 1;
        if tags > MAX_VLAN_TAGS {
            return Err(DecodeError::TooManyVlanTags(MAX_VLAN_TAGS));
        }
        // TCI(2) inner ethertype(2) — IEEE 802.1Q §9.6
        need("vlan", rest, 4)?;
        ethertype = be16(rest, 2);
        rest = &rest[4..];
    }
    Ok((ethertype, rest))
}

/// MPLS unicast and multicast (RFC 3032 §5).
const ETHERTYPE_MPLS_UNICAST: u16 = 0x8847;
const ETHERTYPE_MPLS_MULTICAST: u16 = 0x8848;
/// PPPoE session stage (RFC 2516 §4).
const ETHERTYPE_PPPOE_SESSION: u16 = 0x8864;
/// MPLS in PPPoE in MPLS... is not a real stack: a bound on the nesting.
const MAX_ENCAPSULATIONS: usize = 4;

/// Unwraps what a link header's ethertype names besides IP and VLAN tags — an MPLS label
/// stack or a PPPoE session — down to IPv4/IPv6; anything else is [`DecodeError::NotIp`].
/// Only frames of those ethertypes get here (cold), so plain IP frames pay nothing.
#[cold]
pub(super) fn unwrap_encapsulation(
    mut ethertype: u16,
    mut rest: &[u8],
) -> Result<(u16, &[u8]), DecodeError> {
    for _ in 0..MAX_ENCAPSULATIONS {
        (ethertype, rest) = match ethertype {
            ETHERTYPE_IPV4 | ETHERTYPE_IPV6 => return Ok((ethertype, rest)),
            ETHERTYPE_MPLS_UNICAST | ETHERTYPE_MPLS_MULTICAST => mpls::strip(rest)?,
            ETHERTYPE_PPPOE_SESSION => ppp::pppoe_session(rest)?,
            _ => break,
        };
    }
    match ethertype {
        ETHERTYPE_IPV4 | ETHERTYPE_IPV6 => Ok((ethertype, rest)),
        _ => Err(DecodeError::NotIp(ethertype)),
    }
}

/// The link type a nested header (PKTAP, PPI) names for the frame it wraps; those two
/// wrapping themselves is not a real capture and is unsupported (it would also recurse).
fn inner_link(dlt: u32) -> Result<LinkType, DecodeError> {
    match LinkType::from_capture_header(dlt) {
        LinkType::Pktap | LinkType::Ppi | LinkType::Unsupported(_) => {
            Err(DecodeError::UnsupportedLinkType(dlt))
        }
        link => Ok(link),
    }
}

/// The ethertype of an IP packet by its version nibble (RFC 791 §3.1, RFC 8200 §3);
/// anything but 6 is handed on as IPv4 and etherparse rejects a bad version.
fn ethertype_by_version(ip: &[u8]) -> u16 {
    match ip.first().map(|b| b >> 4) {
        Some(6) => ETHERTYPE_IPV6,
        _ => ETHERTYPE_IPV4,
    }
}

/// LINKTYPE_RAW (101), IPV4 (228), IPV6 (229): the frame is the IP packet.
///
/// Files written with the raw DLT value 12 instead of LINKTYPE_RAW are read as raw too, but
/// on OpenBSD DLT 12 is DLT_LOOP (libpcap `pcap/dlt.h`), so such a file may carry a 4-byte
/// loopback family first: a frame whose first nibble is no IP version (0, as a family word
/// starts) and whose first word is a known family is read as a loopback frame.
fn raw_ip(frame: &[u8]) -> (u16, &[u8]) {
    if frame.len() >= 4 && frame[0] >> 4 == 0 {
        if let Ok(ethertype) = bsd_family_ethertype(&frame[..4], &frame[4..]) {
            return (ethertype, &frame[4..]);
        }
    }
    (ethertype_by_version(frame), frame)
}

/// BSD address family values (LINKTYPE_NULL / LINKTYPE_LOOP entries of the registry).
const BSD_AF_INET: u32 = 2;
/// IPX in the registry, but AF_INET6 on Windows (Npcap's loopback adapter writes it).
const WINDOWS_AF_INET6: u32 = 23;
/// AF_INET6 on NetBSD, OpenBSD and BSD/OS.
const BSD_AF_INET6_BSD: u32 = 24;
/// AF_INET6 on FreeBSD and DragonFly BSD.
const BSD_AF_INET6_FREEBSD: u32 = 28;
/// AF_INET6 on Darwin (macOS, iOS).
const BSD_AF_INET6_DARWIN: u32 = 30;

/// The ethertype for a BSD loopback family word.
///
/// LINKTYPE_NULL (0) stores the family in the byte order of the host that captured, which a
/// file does not always state reliably (pcapng sections, files rewritten by tools that swap
/// the file header but not packet bytes), and LINKTYPE_LOOP (108) stores it big-endian. Family
/// values are small, so the word is read big-endian and byte-swapped when that gives a value
/// above 0xFFFF — the rule tcpdump (`print-null.c`) and Wireshark (`packet-null.c`) apply.
/// This accepts both byte orders for both link types without being told the file's order.
/// All three IPv6 values are accepted, as the registry asks.
fn bsd_family_ethertype(word: &[u8], payload: &[u8]) -> Result<u16, DecodeError> {
    let raw = u32::from_be_bytes([word[0], word[1], word[2], word[3]]);
    let family = if raw > 0xFFFF { raw.swap_bytes() } else { raw };
    match family {
        BSD_AF_INET => Ok(ETHERTYPE_IPV4),
        BSD_AF_INET6_BSD | BSD_AF_INET6_FREEBSD | BSD_AF_INET6_DARWIN => Ok(ETHERTYPE_IPV6),
        // An IPX packet starts with its checksum 0xFFFF, never with IP version 6.
        WINDOWS_AF_INET6 if payload.first().is_some_and(|b| b >> 4 == 6) => Ok(ETHERTYPE_IPV6),
        other => Err(DecodeError::NotIpFamily(other)),
    }
}

/// Direction from a Linux cooked header's packet type (`PACKET_*` in `<linux/if_packet.h>`):
/// 4 (OUTGOING) was sent by this host; everything else (HOST, BROADCAST, ...) was received.
fn sll_direction(pkttype: u16) -> Direction {
    if pkttype == 4 {
        Direction::Egress
    } else {
        Direction::Ingress
    }
}

/// NFLOG attribute types (`NFULA_*` in `<linux/netfilter/nfnetlink_log.h>`).
const NFULA_PACKET_HDR: u16 = 1;
const NFULA_IFINDEX_INDEV: u16 = 4;
const NFULA_IFINDEX_OUTDEV: u16 = 5;
const NFULA_PAYLOAD: u16 = 9;
/// Netlink attribute type bits that are flags, not the type (`NLA_TYPE_MASK`).
const NLA_TYPE_MASK: u16 = 0x3FFF;
/// No NFULA type comes near this; a larger one means the TLV is read in the wrong byte order.
const NFULA_TYPE_MAX: u16 = 0xFF;
/// NFLOG's family byte (`NFPROTO_*`): the payload's network protocol.
const NFPROTO_IPV4: u8 = 2;
const NFPROTO_IPV6: u8 = 10;

/// What an NFLOG TLV walk found.
#[derive(Default)]
struct NflogAttrs<'a> {
    payload: Option<&'a [u8]>,
    hw_protocol: Option<u16>,
    hook: Option<u8>,
    indev: Option<u32>,
    outdev: Option<u32>,
}

/// LINKTYPE_NFLOG (239): a 4-byte header (family, version, resource id big-endian), then
/// TLVs whose 16-bit length (header included, padding excluded) and type are in the
/// capturing host's byte order, each padded to 4 bytes; the packet from its network header
/// on is the NFULA_PAYLOAD attribute. The TLVs before it vary (prefix, UID, hardware header,
/// ...), so they are walked, never skipped by a fixed offset.
fn nflog<'a>(frame: &'a [u8], meta: &mut CaptureMeta) -> Result<(u16, &'a [u8]), DecodeError> {
    need("nflog", frame, 4)?;
    let family = frame[0];
    let tlvs = &frame[4..];
    // The host's byte order is not in the frame: little-endian (every common Linux host)
    // first, big-endian when the TLVs do not walk that way.
    let attrs = match nflog_attrs(tlvs, u16::from_le_bytes) {
        Some(le) if le.payload.is_some() => le,
        le => nflog_attrs(tlvs, u16::from_be_bytes)
            .filter(|be| be.payload.is_some())
            .or(le)
            .ok_or(DecodeError::BadNflogTlv)?,
    };
    let payload = attrs.payload.ok_or(DecodeError::NflogWithoutPayload)?;
    // Netfilter hooks (NF_INET_* and NF_BR_* share the numbering): PRE_ROUTING 0 and LOCAL_IN 1
    // saw the packet arrive on the input device; LOCAL_OUT 3 and POST_ROUTING 4 leave on the
    // output device; FORWARD 2 is both, so stays unknown.
    if meta.direction == Direction::Unknown {
        let (direction, dev) = match attrs.hook {
            Some(0 | 1) => (Direction::Ingress, attrs.indev),
            Some(3 | 4) => (Direction::Egress, attrs.outdev),
            _ => (Direction::Unknown, None),
        };
        meta.direction = direction;
        if meta.ifindex == 0 {
            meta.ifindex = dev.unwrap_or(0);
        }
    }
    // The packet header's hardware protocol is the payload's ethertype; without it, the
    // family names the protocol; for other families (bridge, inet) the IP version says.
    let ethertype = match (attrs.hw_protocol, family) {
        (Some(p), _) if p != 0 => p,
        (_, NFPROTO_IPV4) => ETHERTYPE_IPV4,
        (_, NFPROTO_IPV6) => ETHERTYPE_IPV6,
        _ => ethertype_by_version(payload),
    };
    Ok((ethertype, payload))
}

/// Walks NFLOG TLVs with `u16s` reading their length and type; `None` when they do not walk
/// (a length under 4 or past the frame, a type no NFULA attribute has).
fn nflog_attrs<'a>(mut tlvs: &'a [u8], u16s: fn([u8; 2]) -> u16) -> Option<NflogAttrs<'a>> {
    let mut attrs = NflogAttrs::default();
    while tlvs.len() >= 4 {
        let len = usize::from(u16s([tlvs[0], tlvs[1]]));
        let ty = u16s([tlvs[2], tlvs[3]]) & NLA_TYPE_MASK;
        if len < 4 || ty > NFULA_TYPE_MAX {
            return None;
        }
        if ty == NFULA_PAYLOAD {
            // The capture may have snapped the packet: take what is there.
            attrs.payload = Some(&tlvs[4..len.min(tlvs.len())]);
            return Some(attrs);
        }
        if len > tlvs.len() {
            return None;
        }
        let value = &tlvs[4..len];
        match ty {
            // struct nfulnl_msg_packet_hdr { __be16 hw_protocol; __u8 hook; __u8 _pad; }
            NFULA_PACKET_HDR if value.len() >= 3 => {
                attrs.hw_protocol = Some(be16(value, 0));
                attrs.hook = Some(value[2]);
            }
            // Interface indexes are __be32 whatever the host's byte order.
            NFULA_IFINDEX_INDEV if value.len() >= 4 => {
                attrs.indev = Some(u32::from_be_bytes([value[0], value[1], value[2], value[3]]));
            }
            NFULA_IFINDEX_OUTDEV if value.len() >= 4 => {
                attrs.outdev = Some(u32::from_be_bytes([value[0], value[1], value[2], value[3]]));
            }
            _ => {}
        }
        // Attributes are padded to 4 bytes (NLA_ALIGN); the last may end the frame unpadded.
        tlvs = &tlvs[len.next_multiple_of(4).min(tlvs.len())..];
    }
    Some(attrs)
}

#[cfg(test)]
mod tests {
    use super::super::build::tcp_v4;
    use super::super::{decode, TcpFlags};
    use super::*;
    use etherparse::PacketBuilder;

    /// An IPv4/TCP packet (no link header) carrying `payload`.
    fn ipv4(payload: &[u8]) -> Vec<u8> {
        let f = tcp_v4(
            [198, 18, 0, 10],
            40000,
            [198, 18, 0, 80],
            80,
            1,
            TcpFlags::ACK,
            payload,
        );
        f[14..].to_vec()
    }

    /// An IPv6/UDP packet carrying `payload`.
    fn ipv6(payload: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        PacketBuilder::ipv6(
            [0x20, 1, 0xd, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x10],
            [0x20, 1, 0xd, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x53],
            64,
        )
        .udp(5353, 53)
        .write(&mut out, payload)
        .unwrap();
        out
    }

    fn with_header(header: &[u8], ip: &[u8]) -> Vec<u8> {
        let mut f = header.to_vec();
        f.extend_from_slice(ip);
        f
    }

    fn meta() -> CaptureMeta {
        CaptureMeta::default()
    }

    #[test]
    fn bsd_loopback_family_in_either_byte_order() {
        // LINKTYPE_NULL: the capturing host's order; LINKTYPE_LOOP: network order. Both
        // link types accept both orders, and every IPv6 value of the registry.
        let v4 = ipv4(b"GET");
        let v6 = ipv6(b"q");
        let cases: [([u8; 4], &[u8]); 8] = [
            ([2, 0, 0, 0], &v4),
            ([0, 0, 0, 2], &v4),
            ([24, 0, 0, 0], &v6),
            ([0, 0, 0, 24], &v6),
            ([28, 0, 0, 0], &v6),
            ([0, 0, 0, 28], &v6),
            ([30, 0, 0, 0], &v6),
            ([0, 0, 0, 30], &v6),
        ];
        for link in [LinkType::Null, LinkType::Loop] {
            for (word, ip) in cases {
                let f = with_header(&word, ip);
                let p =
                    decode(link, &f, meta()).unwrap_or_else(|e| panic!("{link:?} {word:?}: {e}"));
                assert_eq!(p.src.is_ipv6(), ip[0] >> 4 == 6, "{link:?} {word:?}");
                assert_eq!(p.payload.len(), if p.src.is_ipv6() { 1 } else { 3 });
            }
        }
    }

    #[test]
    fn bsd_loopback_other_families_are_not_ip() {
        // 7 is OSI; 23 is IPX in the registry (an IPX packet starts with checksum 0xFFFF).
        let osi = with_header(&[7, 0, 0, 0], &[0x81; 30]);
        let e = decode(LinkType::Null, &osi, meta()).unwrap_err();
        assert_eq!(e, DecodeError::NotIpFamily(7));
        assert_eq!(e.reason(), "not_ip");
        let ipx = with_header(&[23, 0, 0, 0], &[0xff; 30]);
        assert_eq!(
            decode(LinkType::Null, &ipx, meta()).unwrap_err(),
            DecodeError::NotIpFamily(23)
        );
        assert_eq!(
            decode(LinkType::Loop, &[0, 0, 2], meta())
                .unwrap_err()
                .reason(),
            "truncated"
        );
    }

    #[test]
    fn windows_af_inet6_is_ipv6_when_the_packet_says_so() {
        // Npcap's loopback adapter writes Windows' AF_INET6, 23.
        let f = with_header(&[23, 0, 0, 0], &ipv6(b"q"));
        assert!(decode(LinkType::Null, &f, meta()).unwrap().src.is_ipv6());
    }

    #[test]
    fn raw_ip_with_dlt_loop_header() {
        // DLT 12 is DLT_RAW on most systems but DLT_LOOP on OpenBSD.
        let f = with_header(&[0, 0, 0, 2], &ipv4(b"x"));
        assert_eq!(decode(LinkType::RawIp, &f, meta()).unwrap().payload, b"x");
        let f = with_header(&[0, 0, 0, 24], &ipv6(b"y"));
        assert_eq!(decode(LinkType::RawIp, &f, meta()).unwrap().payload, b"y");
        // A plain raw packet is unaffected.
        let f = ipv4(b"z");
        assert_eq!(decode(LinkType::RawIp, &f, meta()).unwrap().payload, b"z");
    }

    /// An NFLOG frame: header (family, version 0, resource id 5 big-endian), then the TLVs
    /// with length/type in the given byte order, each padded to 4 bytes.
    fn nflog(family: u8, tlvs: &[(u16, &[u8])], little_endian: bool) -> Vec<u8> {
        let mut f = vec![family, 0, 0, 5];
        for (ty, value) in tlvs {
            let len = 4 + value.len() as u16;
            let (l, t) = if little_endian {
                (len.to_le_bytes(), ty.to_le_bytes())
            } else {
                (len.to_be_bytes(), ty.to_be_bytes())
            };
            f.extend_from_slice(&l);
            f.extend_from_slice(&t);
            f.extend_from_slice(value);
            f.resize(f.len().next_multiple_of(4), 0);
        }
        f
    }

    const HWTYPE: u16 = 15;
    const HWHEADER: u16 = 16;
    const HWLEN: u16 = 17;
    const PREFIX: u16 = 10;
    const UID: u16 = 11;
    const GID: u16 = 14;

    #[test]
    fn nflog_received_packet_walks_to_the_payload() {
        let ip = ipv4(b"GET / HTTP/1.1\r\n");
        let f = nflog(
            NFPROTO_IPV4,
            &[
                (NFULA_PACKET_HDR, &[0x08, 0x00, 1, 0]), // LOCAL_IN
                (PREFIX, b"fs-web\0"),                   // 7 bytes: padded
                (NFULA_IFINDEX_INDEV, &3u32.to_be_bytes()),
                (HWTYPE, &1u16.to_be_bytes()),
                (HWLEN, &14u16.to_be_bytes()),
                (HWHEADER, &[0xaa; 14]),
                (NFULA_PAYLOAD, &ip),
            ],
            true,
        );
        let p = decode(LinkType::Nflog, &f, meta()).unwrap();
        assert_eq!(p.payload, b"GET / HTTP/1.1\r\n");
        assert_eq!((p.meta.direction, p.meta.ifindex), (Direction::Ingress, 3));
    }

    #[test]
    fn nflog_sent_packet_has_other_attributes() {
        let ip = ipv6(b"query");
        let f = nflog(
            NFPROTO_IPV6,
            &[
                (NFULA_PACKET_HDR, &[0x86, 0xdd, 3, 0]), // LOCAL_OUT
                (NFULA_IFINDEX_OUTDEV, &7u32.to_be_bytes()),
                (UID, &1000u32.to_be_bytes()),
                (GID, &1000u32.to_be_bytes()),
                (PREFIX, b"out\0"),
                (NFULA_PAYLOAD, &ip),
            ],
            true,
        );
        let p = decode(LinkType::Nflog, &f, meta()).unwrap();
        assert_eq!(p.payload, b"query");
        assert_eq!((p.meta.direction, p.meta.ifindex), (Direction::Egress, 7));
        // A direction the capture already knew is kept.
        let known = CaptureMeta {
            direction: Direction::Ingress,
            ifindex: 9,
            ..meta()
        };
        let p = decode(LinkType::Nflog, &f, known).unwrap();
        assert_eq!((p.meta.direction, p.meta.ifindex), (Direction::Ingress, 9));
    }

    #[test]
    fn nflog_big_endian_host() {
        let f = nflog(
            NFPROTO_IPV4,
            &[(PREFIX, b"be\0"), (NFULA_PAYLOAD, &ipv4(b"x"))],
            false,
        );
        assert_eq!(decode(LinkType::Nflog, &f, meta()).unwrap().payload, b"x");
    }

    #[test]
    fn nflog_family_or_version_names_the_protocol_without_a_packet_header() {
        let f = nflog(NFPROTO_IPV6, &[(NFULA_PAYLOAD, &ipv6(b"a"))], true);
        assert!(decode(LinkType::Nflog, &f, meta()).unwrap().src.is_ipv6());
        // NFPROTO_INET (1) says neither: the IP version does.
        let f = nflog(1, &[(NFULA_PAYLOAD, &ipv6(b"a"))], true);
        assert!(decode(LinkType::Nflog, &f, meta()).unwrap().src.is_ipv6());
        // ARP logged from the bridge family: its packet header says 0x0806.
        let f = nflog(
            7,
            &[
                (NFULA_PACKET_HDR, &[0x08, 0x06, 0, 0]),
                (NFULA_PAYLOAD, &[0; 28]),
            ],
            true,
        );
        assert_eq!(
            decode(LinkType::Nflog, &f, meta()).unwrap_err(),
            DecodeError::NotIp(0x0806)
        );
    }

    #[test]
    fn nflog_snapped_payload_keeps_wire_length() {
        let ip = ipv4(&[b'a'; 100]);
        let f = nflog(NFPROTO_IPV4, &[(NFULA_PAYLOAD, &ip)], true);
        let p = decode(LinkType::Nflog, &f[..f.len() - 60], meta()).unwrap();
        assert_eq!(p.payload.len(), 40);
        assert_eq!(p.payload_wire_len, 100);
    }

    #[test]
    fn nflog_without_payload_or_with_broken_tlvs() {
        let f = nflog(NFPROTO_IPV4, &[(PREFIX, b"no-copy\0")], true);
        let e = decode(LinkType::Nflog, &f, meta()).unwrap_err();
        assert_eq!(e, DecodeError::NflogWithoutPayload);
        assert_eq!(e.reason(), "nflog_without_payload");
        // A TLV length under 4 walks in neither byte order.
        let f = [2, 0, 0, 5, 2, 0, 0, 2, 0, 0, 0, 0];
        let e = decode(LinkType::Nflog, &f, meta()).unwrap_err();
        assert_eq!(e, DecodeError::BadNflogTlv);
        assert_eq!(e.reason(), "bad_nflog_tlv");
        assert_eq!(
            decode(LinkType::Nflog, &[2, 0], meta())
                .unwrap_err()
                .reason(),
            "truncated"
        );
    }
}
