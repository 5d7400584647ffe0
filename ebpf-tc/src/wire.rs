//! Byte layouts shared with the kernel programs (bpf/capture.h), as checked views.
//!
//! Parsed with explicit field ranges rather than pointer casts so a short or corrupt ring
//! record is an error, never undefined behaviour.

use std::ops::Range;

/// Bytes in [`PacketHdr`] on the wire (`sizeof(struct fs_packet_hdr)`).
pub const PACKET_HDR_LEN: usize = 40;
/// Largest `cap_len` the kernel programs write (`FS_MAX_CAPTURE`).
pub const MAX_CAPTURE: u32 = 8192;

/// Words of the `port_allow` / `port_deny` bitmaps (`FS_PORT_WORDS`): bit `port % 64` of word
/// `port / 64`.
pub const PORT_WORDS: u32 = 1024;

/// Words of the `if_raw_ip` bitmap (`FS_IF_BITMAP_WORDS`); ifindexes at or above 64 times this
/// are looked up in the `if_l2` hash only.
pub const IF_BITMAP_WORDS: u32 = 1024;

/// The bitmap words (`PORT_WORDS` of them) with the bits of `ports` set.
pub fn port_bitmap(ports: &[u16]) -> Vec<u64> {
    let mut words = vec![0u64; PORT_WORDS as usize];
    for &p in ports {
        words[usize::from(p >> 6)] |= 1 << (p & 63);
    }
    words
}

mod field {
    use std::ops::Range;
    pub const TS_NS: Range<usize> = 0..8;
    pub const SOCKET_COOKIE: Range<usize> = 8..16;
    pub const IFINDEX: Range<usize> = 16..20;
    pub const ORIG_LEN: Range<usize> = 20..24;
    pub const CAP_LEN: Range<usize> = 24..28;
    pub const VLAN_TCI: Range<usize> = 28..30;
    pub const DIRECTION: usize = 30;
    pub const SOURCE: usize = 31;
    pub const FLAGS: usize = 32;
    pub const L2_KIND: usize = 33;
}

/// Where a packet was seen, as the kernel reports it (`FS_DIR_*`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WireDirection {
    /// Received by this host on `ifindex`.
    Ingress,
    /// Sent by this host on `ifindex`.
    Egress,
}

/// Which capture path produced a record (`FS_SRC_*`, plus the userspace-only AF_PACKET path).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CaptureSource {
    /// TC classifier (TCX or clsact).
    Tc,
    /// eBPF socket filter on an AF_PACKET socket.
    Socket,
    /// Plain AF_PACKET socket read in userspace.
    AfPacket,
}

/// Framing of the bytes that follow the header (`FS_L2_*`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum L2Kind {
    /// Starts with an Ethernet header (also loopback).
    Ethernet,
    /// Starts with the IP header (tun, wireguard, ...).
    RawIp,
}

/// Record flag: `socket_cookie` is valid.
pub const FLAG_COOKIE: u8 = 1;
/// Record flag: fewer bytes were captured than the packet had.
pub const FLAG_TRUNCATED: u8 = 2;
/// Record flag: the skb carried an offloaded VLAN tag in `vlan_tci`.
pub const FLAG_VLAN_OFFLOAD: u8 = 4;

/// Decoded `struct fs_packet_hdr`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PacketHdr {
    /// CLOCK_MONOTONIC nanoseconds when the program ran.
    pub ts_ns: u64,
    /// Socket cookie of the sending socket (egress), when [`Self::cookie`] is `Some`.
    pub socket_cookie: u64,
    /// Interface the packet crossed.
    pub ifindex: u32,
    /// Length of the whole packet from its first header on.
    pub orig_len: u32,
    /// Bytes captured after this header.
    pub cap_len: u32,
    /// Offloaded VLAN tag (valid with [`FLAG_VLAN_OFFLOAD`]).
    pub vlan_tci: u16,
    /// Ingress or egress.
    pub direction: WireDirection,
    /// Capture path.
    pub source: CaptureSource,
    /// `FLAG_*` bits.
    pub flags: u8,
    /// Framing of the captured bytes.
    pub l2: L2Kind,
}

/// Why a ring record could not be read.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum WireError {
    /// The record is shorter than its header.
    #[error("ring record of {0} bytes is shorter than the {PACKET_HDR_LEN}-byte header")]
    Short(usize),
    /// The header says more bytes follow than the record holds.
    #[error("ring record claims {claimed} captured bytes but carries {present}")]
    CapLen {
        /// `cap_len` from the header.
        claimed: u32,
        /// Bytes actually after the header.
        present: usize,
    },
    /// A field holds a value the kernel programs never write.
    #[error("ring record has unknown {field} value {value}")]
    Unknown {
        /// Which field.
        field: &'static str,
        /// The value found.
        value: u8,
    },
}

fn le<const N: usize>(b: &[u8], r: Range<usize>) -> [u8; N] {
    b[r].try_into().expect("range length matches N")
}

impl PacketHdr {
    /// The socket cookie, when the kernel had a socket for this packet.
    pub fn cookie(&self) -> Option<u64> {
        (self.flags & FLAG_COOKIE != 0).then_some(self.socket_cookie)
    }

    /// Parses one ring record into its header and the captured bytes.
    pub fn parse(record: &[u8]) -> Result<(PacketHdr, &[u8]), WireError> {
        if record.len() < PACKET_HDR_LEN {
            return Err(WireError::Short(record.len()));
        }
        let cap_len = u32::from_ne_bytes(le(record, field::CAP_LEN));
        let present = record.len() - PACKET_HDR_LEN;
        if cap_len as usize > present {
            return Err(WireError::CapLen {
                claimed: cap_len,
                present,
            });
        }
        let direction = match record[field::DIRECTION] {
            0 => WireDirection::Ingress,
            1 => WireDirection::Egress,
            v => {
                return Err(WireError::Unknown {
                    field: "direction",
                    value: v,
                })
            }
        };
        let source = match record[field::SOURCE] {
            0 => CaptureSource::Tc,
            1 => CaptureSource::Socket,
            v => {
                return Err(WireError::Unknown {
                    field: "source",
                    value: v,
                })
            }
        };
        let l2 = match record[field::L2_KIND] {
            0 => L2Kind::Ethernet,
            1 => L2Kind::RawIp,
            v => {
                return Err(WireError::Unknown {
                    field: "l2_kind",
                    value: v,
                })
            }
        };
        let hdr = PacketHdr {
            ts_ns: u64::from_ne_bytes(le(record, field::TS_NS)),
            socket_cookie: u64::from_ne_bytes(le(record, field::SOCKET_COOKIE)),
            ifindex: u32::from_ne_bytes(le(record, field::IFINDEX)),
            orig_len: u32::from_ne_bytes(le(record, field::ORIG_LEN)),
            cap_len,
            vlan_tci: u16::from_ne_bytes(le(record, field::VLAN_TCI)),
            direction,
            source,
            flags: record[field::FLAGS],
            l2,
        };
        let data = &record[PACKET_HDR_LEN..PACKET_HDR_LEN + cap_len as usize];
        Ok((hdr, data))
    }
}

/// `struct fs_filter_cfg`: the filter switches userspace writes at run time.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FilterCfg {
    /// Keep only packets whose src or dst port is in `port_allow` (and IP fragments after
    /// the first, which carry no ports, so the engine can reassemble their datagram).
    pub port_allow_on: bool,
    /// Keep only packets whose src or dst address is in `cidr{4,6}_allow`.
    pub cidr_allow_on: bool,
    /// Payload bytes kept after the L4 header.
    pub snaplen: u32,
    /// Wake the reader once per this many bytes written while unread (0: the kernel's
    /// default: on every record it has not caught up with).
    pub wakeup_bytes: u32,
}

/// Bytes of `struct fs_filter_cfg`.
pub const FILTER_CFG_LEN: usize = 16;

impl FilterCfg {
    /// The C layout of this value.
    pub fn to_bytes(self) -> [u8; FILTER_CFG_LEN] {
        let mut b = [0u8; FILTER_CFG_LEN];
        b[0..4].copy_from_slice(&u32::from(self.port_allow_on).to_ne_bytes());
        b[4..8].copy_from_slice(&u32::from(self.cidr_allow_on).to_ne_bytes());
        b[8..12].copy_from_slice(&self.snaplen.to_ne_bytes());
        b[12..16].copy_from_slice(&self.wakeup_bytes.to_ne_bytes());
        b
    }
}

/// Most entries of the `body_skip` map (`FS_SKIP_MAX`).
pub const SKIP_MAX: u32 = 4096;
/// Bytes of `struct fs_skip_key`.
pub const SKIP_KEY_LEN: usize = 40;
/// Bytes of `struct fs_skip_range`.
pub const SKIP_RANGE_LEN: usize = 8;

/// Offsets of `struct fs_skip_key`'s fields (`saddr` at 0).
pub mod skip_field {
    /// `daddr[16]`.
    pub const DADDR: usize = 16;
    /// `sport`, host order.
    pub const SPORT: usize = 32;
    /// `dport`, host order.
    pub const DPORT: usize = 34;
    /// `family`: 4 or 6.
    pub const FAMILY: usize = 36;
}

/// `struct fs_skip_key` for segments from `src` to `dst` (addresses as in the IP header,
/// IPv4 in the first 4 bytes of each 16). A pair of different families names no packet and
/// is refused.
pub fn skip_key(
    src: std::net::SocketAddr,
    dst: std::net::SocketAddr,
) -> Option<[u8; SKIP_KEY_LEN]> {
    use std::net::IpAddr;
    let mut k = [0u8; SKIP_KEY_LEN];
    let family = match (src.ip(), dst.ip()) {
        (IpAddr::V4(s), IpAddr::V4(d)) => {
            k[0..4].copy_from_slice(&s.octets());
            k[skip_field::DADDR..skip_field::DADDR + 4].copy_from_slice(&d.octets());
            4
        }
        (IpAddr::V6(s), IpAddr::V6(d)) => {
            k[0..16].copy_from_slice(&s.octets());
            k[skip_field::DADDR..skip_field::DADDR + 16].copy_from_slice(&d.octets());
            6
        }
        _ => return None,
    };
    k[skip_field::SPORT..skip_field::SPORT + 2].copy_from_slice(&src.port().to_ne_bytes());
    k[skip_field::DPORT..skip_field::DPORT + 2].copy_from_slice(&dst.port().to_ne_bytes());
    k[skip_field::FAMILY] = family;
    Some(k)
}

/// `struct fs_skip_range`: sequence numbers `[from_seq, until_seq)`.
pub fn skip_range(from_seq: u32, until_seq: u32) -> [u8; SKIP_RANGE_LEN] {
    let mut r = [0u8; SKIP_RANGE_LEN];
    r[0..4].copy_from_slice(&from_seq.to_ne_bytes());
    r[4..8].copy_from_slice(&until_seq.to_ne_bytes());
    r
}

/// Indices of the per-CPU `counters` map (`FS_CNT_*`), with their metric names.
pub const KERNEL_COUNTERS: &[(u32, &str)] = &[
    (0, "kernel_packets_seen"),
    (1, "kernel_packets_captured"),
    (2, "kernel_ring_full_lost"),
    (3, "kernel_packets_filtered"),
    (4, "kernel_load_bytes_failed"),
    (5, "kernel_body_packets_cut"),
    (6, "kernel_reader_idle_wakeups"),
];

#[cfg(test)]
mod tests {
    use super::*;

    /// The C header asserts its layout with `_Static_assert` lines (a mismatch there fails the
    /// clang build); this test reads those same lines and checks our ranges agree with them.
    #[test]
    fn layout_matches_capture_h() {
        let header = include_str!("../bpf/capture.h");
        let mut checked = 0;
        for line in header.lines().filter(|l| l.starts_with("_Static_assert(")) {
            let (lhs, rhs) = line.split_once(" == ").expect("assert has ==");
            let value: usize = rhs.split(',').next().unwrap().trim().parse().unwrap();
            let expect = if lhs.contains("sizeof(struct fs_packet_hdr)") {
                PACKET_HDR_LEN
            } else if lhs.contains("sizeof(struct fs_filter_cfg)") {
                FILTER_CFG_LEN
            } else if lhs.contains("sizeof(struct fs_skip_key)") {
                SKIP_KEY_LEN
            } else if lhs.contains("sizeof(struct fs_skip_range)") {
                SKIP_RANGE_LEN
            } else if lhs.contains("struct fs_skip_key,") {
                let name = lhs.rsplit(", ").next().unwrap().trim_end_matches(')');
                match name {
                    "daddr" => skip_field::DADDR,
                    "sport" => skip_field::SPORT,
                    "dport" => skip_field::DPORT,
                    "family" => skip_field::FAMILY,
                    other => {
                        panic!("capture.h asserts a skip key field wire.rs does not know: {other}")
                    }
                }
            } else {
                let name = lhs.rsplit(", ").next().unwrap().trim_end_matches(')');
                match name {
                    "ts_ns" => field::TS_NS.start,
                    "socket_cookie" => field::SOCKET_COOKIE.start,
                    "ifindex" => field::IFINDEX.start,
                    "orig_len" => field::ORIG_LEN.start,
                    "cap_len" => field::CAP_LEN.start,
                    "vlan_tci" => field::VLAN_TCI.start,
                    "direction" => field::DIRECTION,
                    "source" => field::SOURCE,
                    "flags" => field::FLAGS,
                    "l2_kind" => field::L2_KIND,
                    other => panic!("capture.h asserts an offset wire.rs does not know: {other}"),
                }
            };
            assert_eq!(expect, value, "{line}");
            checked += 1;
        }
        assert_eq!(
            checked, 18,
            "every field of the contract is asserted in capture.h"
        );
        assert!(header.contains(&format!("#define FS_MAX_CAPTURE {MAX_CAPTURE}")));
        assert!(header.contains(&format!("#define FS_PORT_WORDS {PORT_WORDS}")));
        assert!(header.contains(&format!("#define FS_IF_BITMAP_WORDS {IF_BITMAP_WORDS}")));
        assert!(header.contains(&format!("#define FS_SKIP_MAX {SKIP_MAX}")));
        assert!(header.contains(&format!("#define FS_CNT_MAX {}", KERNEL_COUNTERS.len())));
    }

    #[test]
    fn skip_keys_are_the_headers_addresses_and_host_order_ports() {
        let k = skip_key(
            "198.18.0.1:80".parse().unwrap(),
            "198.18.0.2:51234".parse().unwrap(),
        )
        .expect("one family");
        assert_eq!(&k[0..4], &[198, 18, 0, 1]);
        assert_eq!(&k[4..16], &[0; 12]);
        assert_eq!(&k[16..20], &[198, 18, 0, 2]);
        assert_eq!(u16::from_ne_bytes([k[32], k[33]]), 80);
        assert_eq!(u16::from_ne_bytes([k[34], k[35]]), 51234);
        assert_eq!((k[36], &k[37..40]), (4, &[0u8; 3][..]));
        let k6 = skip_key(
            "[2001:db8::1]:443".parse().unwrap(),
            "[2001:db8::2]:9".parse().unwrap(),
        )
        .expect("one family");
        assert_eq!(k6[15], 1);
        assert_eq!(k6[31], 2);
        assert_eq!(k6[36], 6);
        assert!(skip_key(
            "198.18.0.1:80".parse().unwrap(),
            "[2001:db8::2]:9".parse().unwrap()
        )
        .is_none());
        assert_eq!(
            skip_range(1, 7)[..],
            [1u32.to_ne_bytes(), 7u32.to_ne_bytes()].concat()
        );
    }

    fn record(cap: u32, data: &[u8]) -> Vec<u8> {
        let mut r = vec![0u8; PACKET_HDR_LEN];
        r[0..8].copy_from_slice(&7u64.to_ne_bytes());
        r[8..16].copy_from_slice(&99u64.to_ne_bytes());
        r[16..20].copy_from_slice(&3u32.to_ne_bytes());
        r[20..24].copy_from_slice(&1500u32.to_ne_bytes());
        r[24..28].copy_from_slice(&cap.to_ne_bytes());
        r[30] = 1;
        r[32] = FLAG_COOKIE | FLAG_TRUNCATED;
        r.extend_from_slice(data);
        r
    }

    #[test]
    fn port_bitmap_sets_one_bit_per_port() {
        let w = port_bitmap(&[0, 63, 64, 80, 65535]);
        assert_eq!(w.len(), PORT_WORDS as usize);
        assert_eq!(w[0], 1 | 1 << 63);
        assert_eq!(w[1], 1 | 1 << 16);
        assert_eq!(w[1023], 1 << 63);
        assert_eq!(w.iter().map(|x| x.count_ones()).sum::<u32>(), 5);
    }

    #[test]
    fn parses_a_record() {
        let r = record(3, b"abcdef");
        let (h, d) = PacketHdr::parse(&r).unwrap();
        assert_eq!(d, b"abc");
        assert_eq!(h.ts_ns, 7);
        assert_eq!(h.cookie(), Some(99));
        assert_eq!(h.ifindex, 3);
        assert_eq!(h.orig_len, 1500);
        assert_eq!(h.direction, WireDirection::Egress);
        assert_eq!(h.source, CaptureSource::Tc);
        assert_eq!(h.l2, L2Kind::Ethernet);
    }

    #[test]
    fn rejects_short_and_lying_records() {
        assert_eq!(PacketHdr::parse(&[0; 10]), Err(WireError::Short(10)));
        let r = record(9, b"abc");
        assert_eq!(
            PacketHdr::parse(&r),
            Err(WireError::CapLen {
                claimed: 9,
                present: 3
            })
        );
        let mut r = record(0, b"");
        r[30] = 7;
        assert!(matches!(
            PacketHdr::parse(&r),
            Err(WireError::Unknown {
                field: "direction",
                ..
            })
        ));
    }
}
