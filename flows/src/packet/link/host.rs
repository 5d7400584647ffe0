//! Headers a host's own capture facility puts before the packet: OpenBSD/FreeBSD pf's log
//! (pflog), Solaris' ipnet and Apple's PKTAP. Each names the packet's family or link type.

use super::super::{need, CaptureMeta, DecodeError, Direction};
use super::{bsd_family_ethertype, inner_link, strip, ETHERTYPE_IPV4, ETHERTYPE_IPV6};

/// `struct pfloghdr` up to and including `dir` (OpenBSD `net/if_pflog.h`, FreeBSD
/// `net/if_pflog.h`): length(1) af(1) action(1) reason(1) ifname(16) ruleset(16) rulenr(4)
/// subrulenr(4) uid(4) pid(4) rule_uid(4) rule_pid(4) dir(1).
const PFLOG_MIN_HEADER: usize = 61;
const PFLOG_DIR: usize = 60;
/// `PF_IN` and `PF_OUT` of `dir`.
const PF_IN: u8 = 1;
const PF_OUT: u8 = 2;

/// LINKTYPE_PFLOG (117): the header's first byte is its length, padded to 4 bytes in the
/// file (`BPF_WORDALIGN`, as tcpdump's `print-pflog.c` reads it; systems grew the struct over
/// releases, so the length is read, never assumed); its second byte is the packet's address
/// family in BSD numbering, as in a loopback header.
pub(in crate::packet) fn pflog<'a>(
    frame: &'a [u8],
    meta: &mut CaptureMeta,
) -> Result<(u16, &'a [u8]), DecodeError> {
    need("pflog", frame, PFLOG_MIN_HEADER)?;
    let len = usize::from(frame[0])
        .max(PFLOG_MIN_HEADER)
        .next_multiple_of(4);
    need("pflog", frame, len)?;
    let rest = &frame[len..];
    if meta.direction == Direction::Unknown {
        meta.direction = match frame[PFLOG_DIR] {
            PF_IN => Direction::Ingress,
            PF_OUT => Direction::Egress,
            _ => Direction::Unknown,
        };
    }
    let family = u32::from(frame[1]);
    Ok((bsd_family_ethertype(&family.to_be_bytes(), rest)?, rest))
}

/// Solaris' ipnet families (`IPH_AF_INET`, `IPH_AF_INET6` in `<inet/ipnet.h>`).
const IPH_AF_INET: u8 = 2;
const IPH_AF_INET6: u8 = 26;

/// LINKTYPE_IPNET (226): `struct dl_ipnetinfo` — version(1) family(1) htype(2) pktlen(4)
/// ifindex(4) grifindex(4) zsrc(4) zdst(4), big-endian, 24 bytes.
pub(in crate::packet) fn ipnet<'a>(
    frame: &'a [u8],
    meta: &mut CaptureMeta,
) -> Result<(u16, &'a [u8]), DecodeError> {
    need("ipnet", frame, 24)?;
    if meta.ifindex == 0 {
        meta.ifindex = u32::from_be_bytes([frame[8], frame[9], frame[10], frame[11]]);
    }
    let rest = &frame[24..];
    match frame[1] {
        IPH_AF_INET => Ok((ETHERTYPE_IPV4, rest)),
        IPH_AF_INET6 => Ok((ETHERTYPE_IPV6, rest)),
        other => Err(DecodeError::NotIpFamily(u32::from(other))),
    }
}

/// `pth_type_next` (record type) of a PKTAP header that a packet follows (`PTH_TYPE_PACKET`).
const PTH_TYPE_PACKET: u32 = 1;
/// Offsets in `struct pktap_header` (Darwin `net/pktap.h`): length(4) type_next(4) dlt(4)
/// ifname(24) flags(4) ...
const PTH_DLT: usize = 8;
const PTH_FLAGS: usize = 36;
/// `PTH_FLAG_DIR_IN` and `PTH_FLAG_DIR_OUT`.
const PTH_FLAG_DIR_IN: u32 = 0x1;
const PTH_FLAG_DIR_OUT: u32 = 0x2;

/// LINKTYPE_PKTAP (258): Apple's header, its fields in the capturing host's byte order —
/// little-endian on every Mac, as tcpdump's `print-pktap.c` reads them — starting with its
/// own length; then the frame of the link type `pth_dlt` names (a DLT value, mapped like a
/// file's), decoded as that link type.
pub(in crate::packet) fn pktap<'a>(
    frame: &'a [u8],
    meta: &mut CaptureMeta,
) -> Result<(u16, &'a [u8]), DecodeError> {
    need("pktap", frame, PTH_FLAGS + 4)?;
    let le32 =
        |at: usize| u32::from_le_bytes([frame[at], frame[at + 1], frame[at + 2], frame[at + 3]]);
    let len = le32(0) as usize;
    need("pktap", frame, len.max(PTH_FLAGS + 4))?;
    if le32(4) != PTH_TYPE_PACKET {
        // A record without a packet (PTH_TYPE_NONE, ...): nothing IP in it.
        return Err(DecodeError::NotIpProtocol {
            layer: "pktap",
            protocol: le32(4) as u16,
        });
    }
    if meta.direction == Direction::Unknown {
        let flags = le32(PTH_FLAGS);
        meta.direction = if flags & PTH_FLAG_DIR_IN != 0 {
            Direction::Ingress
        } else if flags & PTH_FLAG_DIR_OUT != 0 {
            Direction::Egress
        } else {
            Direction::Unknown
        };
    }
    strip(inner_link(le32(PTH_DLT))?, &frame[len..], meta)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pflog_header(af: u8, dir: u8) -> Vec<u8> {
        let mut h = vec![0; 64];
        h[0] = 61; // OpenBSD's PFLOG_HDRLEN before padding
        h[1] = af;
        h[PFLOG_DIR] = dir;
        h
    }

    #[test]
    fn pflog_reads_its_length_family_and_direction() {
        let mut f = pflog_header(2, PF_OUT);
        f.push(0x45);
        let mut meta = CaptureMeta::default();
        assert_eq!(pflog(&f, &mut meta), Ok((ETHERTYPE_IPV4, &[0x45][..])));
        assert_eq!(meta.direction, Direction::Egress);
        // FreeBSD's AF_INET6 (28); a longer header (length byte 72).
        let mut f = pflog_header(28, PF_IN);
        f[0] = 72;
        f.resize(72, 0);
        f.push(0x60);
        assert_eq!(
            pflog(&f, &mut CaptureMeta::default()),
            Ok((ETHERTYPE_IPV6, &[0x60][..]))
        );
        let f = pflog_header(7, PF_IN);
        assert_eq!(pflog(&f, &mut meta), Err(DecodeError::NotIpFamily(7)));
        assert_eq!(
            pflog(&f[..40], &mut meta).unwrap_err().reason(),
            "truncated"
        );
    }

    #[test]
    fn ipnet_family_and_interface() {
        let mut f = vec![1, IPH_AF_INET6, 0, 2, 0, 0, 0, 40, 0, 0, 0, 3];
        f.resize(24, 0);
        f.push(0x60);
        let mut meta = CaptureMeta::default();
        assert_eq!(ipnet(&f, &mut meta), Ok((ETHERTYPE_IPV6, &[0x60][..])));
        assert_eq!(meta.ifindex, 3);
        f[1] = IPH_AF_INET;
        assert_eq!(ipnet(&f, &mut meta).unwrap().0, ETHERTYPE_IPV4);
        f[1] = 9;
        assert_eq!(ipnet(&f, &mut meta), Err(DecodeError::NotIpFamily(9)));
        assert_eq!(
            ipnet(&f[..10], &mut meta).unwrap_err().reason(),
            "truncated"
        );
    }

    fn pktap_header(dlt: u32, flags: u32) -> Vec<u8> {
        let mut h = vec![0; 108];
        h[0..4].copy_from_slice(&108u32.to_le_bytes());
        h[4..8].copy_from_slice(&PTH_TYPE_PACKET.to_le_bytes());
        h[PTH_DLT..PTH_DLT + 4].copy_from_slice(&dlt.to_le_bytes());
        h[12..15].copy_from_slice(b"en0");
        h[PTH_FLAGS..PTH_FLAGS + 4].copy_from_slice(&flags.to_le_bytes());
        h
    }

    #[test]
    fn pktap_decodes_the_inner_link_type() {
        // Ethernet inside, sent.
        let mut f = pktap_header(1, PTH_FLAG_DIR_OUT);
        f.extend([0; 12]);
        f.extend([0x86, 0xdd, 0x60]);
        let mut meta = CaptureMeta::default();
        assert_eq!(pktap(&f, &mut meta), Ok((ETHERTYPE_IPV6, &[0x60][..])));
        assert_eq!(meta.direction, Direction::Egress);
        // BSD loopback (DLT_NULL) inside.
        let mut f = pktap_header(0, PTH_FLAG_DIR_IN);
        f.extend([2, 0, 0, 0, 0x45]);
        assert_eq!(
            pktap(&f, &mut CaptureMeta::default()),
            Ok((ETHERTYPE_IPV4, &[0x45][..]))
        );
        // PKTAP in PKTAP, or an inner type we do not decode.
        let f = pktap_header(258, 0);
        assert_eq!(
            pktap(&f, &mut meta),
            Err(DecodeError::UnsupportedLinkType(258))
        );
        let f = pktap_header(147, 0);
        assert_eq!(
            pktap(&f, &mut meta),
            Err(DecodeError::UnsupportedLinkType(147))
        );
        assert_eq!(
            pktap(&f[..50], &mut meta).unwrap_err().reason(),
            "truncated"
        );
    }
}
