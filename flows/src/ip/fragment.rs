//! One IP fragment as a checked view over its captured bytes: which datagram it belongs to,
//! where its data goes, and the headers a reassembled datagram would start with.
//!
//! Parsed by hand (a few fixed fields) so that the view borrows the frame and the rules of
//! RFC 791 §3.2 and RFC 8200 §4.5 sit beside the code that applies them. Nothing here keeps
//! state; [`super::reassembly::IpReassembler`] does.

/// Which datagram a fragment belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DatagramKey {
    /// RFC 791 §3.2: "the source, destination, protocol, and identification".
    V4 {
        /// Source address.
        src: [u8; 4],
        /// Destination address.
        dst: [u8; 4],
        /// IP protocol of the datagram.
        protocol: u8,
        /// Identification field.
        id: u16,
    },
    /// RFC 8200 §4.5: source address, destination address and Fragment Identification (the
    /// next header is not part of the key: only the first fragment's counts).
    V6 {
        /// Source address.
        src: [u8; 16],
        /// Destination address.
        dst: [u8; 16],
        /// Fragment header's Identification.
        id: u32,
    },
}

/// A fragment of an IPv4 or IPv6 datagram, borrowed from the captured packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fragment<'a> {
    /// The datagram this fragment belongs to.
    pub key: DatagramKey,
    /// Offset of this fragment's data in the datagram's fragmentable part, in bytes.
    pub offset: u32,
    /// Length of this fragment's data on the wire (per the IP length fields).
    pub len: u32,
    /// Length of the whole fragment packet on the wire, headers included (IP length field).
    pub ip_len: u32,
    /// More fragments follow (IPv4 MF flag, IPv6 M flag); false on the last fragment.
    pub more: bool,
    /// The data the capture holds: a prefix of the `len` wire bytes (shorter when snapped).
    pub data: &'a [u8],
    /// What a reassembled datagram starts with, taken from the first fragment (offset 0):
    /// the IPv4 header with its options (RFC 791 §3.2), or the IPv6 header and the extension
    /// headers before the Fragment header, the Unfragmentable Part (RFC 8200 §4.5).
    pub header: &'a [u8],
    /// IPv6: index in `header` of the Next Header field that names the Fragment header.
    pub next_header_at: usize,
    /// IPv6: the Fragment header's Next Header, the first header of the fragmentable part.
    pub next_header: u8,
}

/// Why bytes flagged as a fragment cannot be used as one.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FragmentError {
    /// The capture ends inside a header the fragment needs.
    #[error("fragment truncated in {layer} header: need {need} bytes, have {have}")]
    Truncated {
        /// Header cut short.
        layer: &'static str,
        /// Bytes it needs.
        need: usize,
        /// Bytes captured.
        have: usize,
    },
    /// Not IPv4 or IPv6, or an IPv4 header length below 20 bytes.
    #[error("bad IP header: {0}")]
    BadHeader(&'static str),
    /// A complete packet (IPv4 MF clear and offset 0, or an IPv6 atomic fragment, RFC 6946).
    #[error("not a fragment (offset 0, no more fragments)")]
    NotFragment,
    /// The IP length fields leave less room than the headers take.
    #[error("IP length {ip_len} is shorter than its {header_len} header bytes")]
    LengthBelowHeaders {
        /// Length per the IP header.
        ip_len: usize,
        /// Header bytes before the fragment data.
        header_len: usize,
    },
    /// RFC 8200 §4.5: a fragment with M set whose length is not a multiple of 8 "must be
    /// discarded".
    #[error("IPv6 fragment of {0} bytes with M set is not a multiple of 8 bytes")]
    UnalignedLength(u32),
    /// A fragment carrying no data.
    #[error("fragment carries no data")]
    Empty,
}

fn need(layer: &'static str, data: &[u8], n: usize) -> Result<(), FragmentError> {
    if data.len() < n {
        Err(FragmentError::Truncated {
            layer,
            need: n,
            have: data.len(),
        })
    } else {
        Ok(())
    }
}

fn be16(b: &[u8], at: usize) -> u16 {
    u16::from_be_bytes([b[at], b[at + 1]])
}

impl<'a> Fragment<'a> {
    /// Reads the fragment in `ip`, the captured bytes of an IP packet (from its first header
    /// byte; trailing link padding and a snapped tail are allowed).
    pub fn parse(ip: &'a [u8]) -> Result<Self, FragmentError> {
        need("ip", ip, 1)?;
        match ip[0] >> 4 {
            4 => Self::parse_v4(ip),
            6 => Self::parse_v6(ip),
            _ => Err(FragmentError::BadHeader("IP version is neither 4 nor 6")),
        }
    }

    /// RFC 791 §3.1-3.2.
    fn parse_v4(ip: &'a [u8]) -> Result<Self, FragmentError> {
        need("ipv4", ip, 20)?;
        let header_len = usize::from(ip[0] & 0x0f) * 4;
        if header_len < 20 {
            return Err(FragmentError::BadHeader("IPv4 IHL below 5"));
        }
        need("ipv4", ip, header_len)?;
        let ip_len = usize::from(be16(ip, 2));
        if ip_len < header_len {
            return Err(FragmentError::LengthBelowHeaders { ip_len, header_len });
        }
        // Flags (3 bits: reserved, DF, MF) and Fragment Offset in 8-byte units (13 bits).
        let flags_offset = be16(ip, 6);
        let more = flags_offset & 0x2000 != 0;
        let offset = u32::from(flags_offset & 0x1fff) * 8;
        if !more && offset == 0 {
            return Err(FragmentError::NotFragment);
        }
        let mut len = (ip_len - header_len) as u32;
        if more {
            // Every fragment but the last carries a multiple of 8 bytes (§3.2, "the data
            // must be broken on 8 octet boundaries"); Linux trims a stray tail rather than
            // dropping the fragment (net/ipv4/ip_fragment.c, ip_frag_queue), and so do we.
            len &= !7;
        }
        if len == 0 {
            return Err(FragmentError::Empty);
        }
        let end = (header_len + len as usize).min(ip.len());
        Ok(Self {
            key: DatagramKey::V4 {
                src: [ip[12], ip[13], ip[14], ip[15]],
                dst: [ip[16], ip[17], ip[18], ip[19]],
                protocol: ip[9],
                id: be16(ip, 4),
            },
            offset,
            len,
            ip_len: ip_len as u32,
            more,
            data: &ip[header_len..end],
            header: &ip[..header_len],
            next_header_at: 9,
            next_header: ip[9],
        })
    }

    /// RFC 8200 §4.5: the Unfragmentable Part is every header before the Fragment header.
    fn parse_v6(ip: &'a [u8]) -> Result<Self, FragmentError> {
        need("ipv6", ip, 40)?;
        let ip_len = 40 + usize::from(be16(ip, 4));
        let (mut next, mut next_at, mut at) = (ip[6], 6, 40);
        // Walk the headers that may precede a Fragment header (RFC 8200 §4.1): Hop-by-Hop
        // (0), Routing (43), Destination Options (60), each (len + 1) * 8 bytes, and AH (51,
        // RFC 4302 §2.2: (len + 2) * 4 bytes). Each step advances at least 8 bytes, and the
        // captured length bounds the walk.
        while next != 44 {
            let len = match next {
                0 | 43 | 60 => {
                    need("ipv6 extension", ip, at + 2)?;
                    (usize::from(ip[at + 1]) + 1) * 8
                }
                51 => {
                    need("ipv6 authentication", ip, at + 2)?;
                    (usize::from(ip[at + 1]) + 2) * 4
                }
                _ => return Err(FragmentError::NotFragment),
            };
            need("ipv6 extension", ip, at + len)?;
            next = ip[at];
            next_at = at;
            at += len;
        }
        // Fragment header: Next Header(1) Reserved(1) Offset(13 bits) Res(2) M(1) Ident(4).
        need("ipv6 fragment", ip, at + 8)?;
        let offset_m = be16(ip, at + 2);
        let more = offset_m & 1 != 0;
        let offset = u32::from(offset_m & 0xfff8);
        if !more && offset == 0 {
            // RFC 6946 §4: an atomic fragment is processed as a whole packet, never mixed
            // with fragments of the same identification.
            return Err(FragmentError::NotFragment);
        }
        let data_at = at + 8;
        if ip_len < data_at {
            return Err(FragmentError::LengthBelowHeaders {
                ip_len,
                header_len: data_at,
            });
        }
        let len = (ip_len - data_at) as u32;
        if more && !len.is_multiple_of(8) {
            return Err(FragmentError::UnalignedLength(len));
        }
        if len == 0 {
            return Err(FragmentError::Empty);
        }
        let mut src = [0; 16];
        let mut dst = [0; 16];
        src.copy_from_slice(&ip[8..24]);
        dst.copy_from_slice(&ip[24..40]);
        Ok(Self {
            key: DatagramKey::V6 {
                src,
                dst,
                id: u32::from_be_bytes([ip[at + 4], ip[at + 5], ip[at + 6], ip[at + 7]]),
            },
            offset,
            len,
            ip_len: ip_len as u32,
            more,
            data: &ip[data_at..ip_len.min(ip.len())],
            header: &ip[..at],
            next_header_at: next_at,
            next_header: ip[at],
        })
    }

    /// One past the last byte of this fragment's data in the fragmentable part.
    pub fn end(&self) -> u32 {
        self.offset + self.len
    }
}

#[cfg(test)]
pub(crate) mod build {
    //! Fragment builders for the unit tests of this module and of the reassembler.

    /// An IPv4 fragment: `data` at byte `offset` of datagram `id` (protocol UDP).
    pub fn v4(id: u16, offset: u32, more: bool, data: &[u8]) -> Vec<u8> {
        let total = 20 + data.len();
        let mut p = vec![0x45, 0, 0, 0, 0, 0, 0, 0, 64, 17, 0, 0];
        p[2..4].copy_from_slice(&(total as u16).to_be_bytes());
        p[4..6].copy_from_slice(&id.to_be_bytes());
        let fo = (offset / 8) as u16 | if more { 0x2000 } else { 0 };
        p[6..8].copy_from_slice(&fo.to_be_bytes());
        p.extend_from_slice(&[198, 18, 0, 53, 198, 18, 0, 2]);
        p.extend_from_slice(data);
        p
    }

    /// An IPv6 fragment with the extension headers `exts` (raw, chained by `first_next`)
    /// before its Fragment header.
    pub fn v6_with(
        first_next: u8,
        exts: &[u8],
        id: u32,
        offset: u32,
        more: bool,
        data: &[u8],
    ) -> Vec<u8> {
        let mut p = vec![0x60, 0, 0, 0, 0, 0, first_next, 64];
        let plen = exts.len() + 8 + data.len();
        p[4..6].copy_from_slice(&(plen as u16).to_be_bytes());
        p.extend_from_slice(&[0x20, 1, 0xd, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x53]);
        p.extend_from_slice(&[0x20, 1, 0xd, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2]);
        p.extend_from_slice(exts);
        let om = (offset as u16 & 0xfff8) | u16::from(more);
        p.push(17);
        p.push(0);
        p.extend_from_slice(&om.to_be_bytes());
        p.extend_from_slice(&id.to_be_bytes());
        p.extend_from_slice(data);
        p
    }

    /// An IPv6 fragment with no other extension header.
    pub fn v6(id: u32, offset: u32, more: bool, data: &[u8]) -> Vec<u8> {
        v6_with(44, &[], id, offset, more, data)
    }
}

#[cfg(test)]
mod tests {
    use super::build::*;
    use super::*;

    #[test]
    fn ipv4_fields() {
        let p = v4(0x3101, 552, true, &[7; 16]);
        let f = Fragment::parse(&p).unwrap();
        assert_eq!(
            f.key,
            DatagramKey::V4 {
                src: [198, 18, 0, 53],
                dst: [198, 18, 0, 2],
                protocol: 17,
                id: 0x3101
            }
        );
        assert_eq!((f.offset, f.len, f.more, f.end()), (552, 16, true, 568));
        assert_eq!(f.data, &[7; 16]);
        assert_eq!(f.header.len(), 20);
    }

    #[test]
    fn ipv4_whole_packet_is_not_a_fragment() {
        let p = v4(1, 0, false, b"abc");
        assert_eq!(Fragment::parse(&p), Err(FragmentError::NotFragment));
    }

    #[test]
    fn ipv4_unaligned_non_last_fragment_is_trimmed_like_linux() {
        // RFC 791 §3.2: non-last fragments end on 8-byte boundaries; the stray tail goes.
        let p = v4(1, 0, true, &[1; 13]);
        let f = Fragment::parse(&p).unwrap();
        assert_eq!((f.len, f.data.len()), (8, 8));
        assert_eq!(
            Fragment::parse(&v4(1, 0, true, &[1; 7])),
            Err(FragmentError::Empty)
        );
    }

    #[test]
    fn snapped_fragment_keeps_wire_length_and_link_padding_is_ignored() {
        let p = v4(1, 8, false, &[9; 100]);
        let f = Fragment::parse(&p[..60]).unwrap();
        assert_eq!((f.len, f.data.len()), (100, 40));
        let mut padded = v4(1, 8, false, &[9; 4]);
        padded.extend_from_slice(&[0; 20]);
        assert_eq!(Fragment::parse(&padded).unwrap().data, &[9; 4]);
    }

    #[test]
    fn ipv6_fields() {
        let p = v6(0x000a_6201, 1232, false, &[5; 20]);
        let f = Fragment::parse(&p).unwrap();
        assert!(matches!(
            f.key,
            DatagramKey::V6 {
                id: 0x000a_6201,
                ..
            }
        ));
        assert_eq!((f.offset, f.len, f.more), (1232, 20, false));
        assert_eq!(
            (f.header.len(), f.next_header_at, f.next_header),
            (40, 6, 17)
        );
    }

    #[test]
    fn ipv6_extension_headers_before_the_fragment_header_are_unfragmentable() {
        // Hop-by-Hop (8 bytes, PadN) then Routing (type 0 stub, 8 bytes) then Fragment.
        let hbh = [43, 0, 1, 4, 0, 0, 0, 0];
        let rt = [44, 0, 0, 0, 0, 0, 0, 0];
        let exts: Vec<u8> = hbh.iter().chain(&rt).copied().collect();
        let p = v6_with(0, &exts, 9, 0, true, &[1; 16]);
        let f = Fragment::parse(&p).unwrap();
        assert_eq!(f.header.len(), 56);
        assert_eq!(
            f.next_header_at, 48,
            "the Routing header names the Fragment header"
        );
        assert_eq!(f.data, &[1; 16]);
    }

    #[test]
    fn ipv6_rules() {
        // RFC 8200 §4.5: M set and a length that is not a multiple of 8 -> discard.
        assert_eq!(
            Fragment::parse(&v6(1, 0, true, &[0; 12])),
            Err(FragmentError::UnalignedLength(12))
        );
        // RFC 6946: an atomic fragment is a whole packet.
        assert_eq!(
            Fragment::parse(&v6(1, 0, false, &[0; 12])),
            Err(FragmentError::NotFragment)
        );
        // No Fragment header at all.
        let mut p = v6(1, 8, false, &[0; 8]);
        p[6] = 17;
        assert_eq!(Fragment::parse(&p), Err(FragmentError::NotFragment));
    }

    #[test]
    fn truncated_and_garbage_inputs_are_errors() {
        let p = v6(1, 8, false, &[0; 8]);
        for cut in 0..48 {
            assert!(Fragment::parse(&p[..cut]).is_err(), "cut at {cut}");
        }
        assert!(Fragment::parse(&[0x75; 30]).is_err());
        let mut short = v4(1, 8, false, &[0; 8]);
        short[2..4].copy_from_slice(&10u16.to_be_bytes());
        assert!(matches!(
            Fragment::parse(&short),
            Err(FragmentError::LengthBelowHeaders { .. })
        ));
    }
}
