//! Byte layout of a drop record (bpf/drops.h), as a checked view.

use std::net::IpAddr;

use crate::wire::{ip_of, Transport};

/// A drop ring record that can't be read.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum WireError {
    /// The record is not the size of `struct fsd_drop_event`.
    #[error("drop ring record of {0} bytes, expected {DROP_EVENT_LEN}")]
    Length(usize),
    /// A field holds a value the kernel program never writes.
    #[error("drop ring record has unknown {field} value {value}")]
    Unknown {
        /// Which field.
        field: &'static str,
        /// The value found.
        value: u32,
    },
}

/// Bytes of one ring record (`sizeof(struct fsd_drop_event)`).
pub const DROP_EVENT_LEN: usize = 80;

mod field {
    use std::ops::Range;
    pub const TS_NS: Range<usize> = 0..8;
    pub const COOKIE: Range<usize> = 8..16;
    pub const REASON: Range<usize> = 16..20;
    pub const IFINDEX: Range<usize> = 20..24;
    pub const NETNS: Range<usize> = 24..28;
    pub const FAMILY: Range<usize> = 28..30;
    pub const PROTOCOL: usize = 30;
    pub const TCP_FLAGS: usize = 31;
    pub const SADDR: Range<usize> = 32..48;
    pub const DADDR: Range<usize> = 48..64;
    pub const SPORT: Range<usize> = 64..66;
    pub const DPORT: Range<usize> = 66..68;
    pub const LEN: Range<usize> = 68..72;
    pub const FLAGS: usize = 72;
    pub const KIND: usize = 73;
    pub const TCP_STATE: usize = 74;
    pub const SEGMENTS: Range<usize> = 76..78;
}

const FLAG_COOKIE: u8 = 1;
const FLAG_IFINDEX: u8 = 2;
const FLAG_NETNS: u8 = 4;

/// Indices of the per-CPU `drop_counters` map (`FSD_CNT_*`), with their status names.
pub const DROP_COUNTERS: &[(u32, &str)] = &[
    (0, "kernel_drops_reported"),
    (1, "kernel_drops_ring_full_lost"),
    (2, "kernel_drops_rate_limited"),
    (3, "kernel_drops_not_tcp_udp"),
    (4, "kernel_frees_not_specified"),
    (5, "kernel_frees_queue_purge"),
    (6, "kernel_tcp_retransmitted_segments"),
    (7, "kernel_tcp_resets_sent"),
    (8, "kernel_tcp_resets_received"),
    (9, "kernel_tcp_resets_sent_no_socket"),
    (10, "kernel_tcp_listen_overflows"),
];

/// `reason` of a SYN dropped for a full accept queue on a kernel whose `enum skb_drop_reason`
/// has no `TCP_LISTEN_OVERFLOW` (before 6.15): see `on_conn_request` in bpf/drops.bpf.c.
pub const LISTEN_OVERFLOW_UNNUMBERED: u32 = 0xffff_fffe;

/// What a ring record reports (`FSD_KIND_*`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EventKind {
    /// kfree_skb: the kernel dropped the packet.
    Drop = 0,
    /// tcp:tcp_retransmit_skb: the socket sent data (or a SYN) again.
    Retransmit = 1,
    /// tcp:tcp_send_reset: this host reset the connection.
    ResetSent = 2,
    /// tcp:tcp_receive_reset: the peer's RST reset the socket.
    ResetReceived = 3,
}

/// One packet the kernel dropped, as the kfree_skb program saw it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DropEvent {
    /// CLOCK_MONOTONIC ns.
    pub ts_ns: u64,
    /// `enum skb_drop_reason` as the running kernel numbers it (see [`super::DropReasons`]).
    pub reason: u32,
    /// Sender's address and port.
    pub source: (IpAddr, u16),
    /// Addressee's address and port.
    pub destination: (IpAddr, u16),
    /// TCP or UDP.
    pub transport: Transport,
    /// TCP control bits (byte 13 of the TCP header); 0 for UDP.
    pub tcp_flags: u8,
    /// Interface of the skb (its device, else the one it came in on).
    pub ifindex: Option<u32>,
    /// Network namespace inode of the device or socket.
    pub netns: Option<u32>,
    /// Cookie of the socket the skb belonged to.
    pub cookie: Option<u64>,
    /// IP packet length per its header.
    pub len: u32,
    /// A drop, or a TCP event (then `reason` is 0 and `source` is the end that sent).
    pub kind: EventKind,
    /// TCP events: the socket's state (`TCP_ESTABLISHED` = 1, ... as in include/net/tcp_states.h).
    pub tcp_state: u8,
    /// Retransmissions: segments sent again.
    pub segments: u16,
}

impl DropEvent {
    /// Parses one ring record.
    pub fn parse(r: &[u8]) -> Result<Self, WireError> {
        if r.len() < DROP_EVENT_LEN {
            return Err(WireError::Length(r.len()));
        }
        let u16_at = |f: std::ops::Range<usize>| u16::from_ne_bytes([r[f.start], r[f.start + 1]]);
        let u32_at =
            |f: std::ops::Range<usize>| u32::from_ne_bytes(r[f].try_into().expect("4-byte field"));
        let u64_at =
            |f: std::ops::Range<usize>| u64::from_ne_bytes(r[f].try_into().expect("8-byte field"));
        let family = u16_at(field::FAMILY);
        let addr = |f: std::ops::Range<usize>| -> Result<IpAddr, WireError> {
            ip_of(family, &r[f]).ok_or(WireError::Unknown {
                field: "family",
                value: family.into(),
            })
        };
        let transport = Transport::from_number(r[field::PROTOCOL]).ok_or(WireError::Unknown {
            field: "protocol",
            value: r[field::PROTOCOL].into(),
        })?;
        let flags = r[field::FLAGS];
        Ok(DropEvent {
            ts_ns: u64_at(field::TS_NS),
            reason: u32_at(field::REASON),
            source: (addr(field::SADDR)?, u16_at(field::SPORT)),
            destination: (addr(field::DADDR)?, u16_at(field::DPORT)),
            transport,
            tcp_flags: r[field::TCP_FLAGS],
            ifindex: (flags & FLAG_IFINDEX != 0).then(|| u32_at(field::IFINDEX)),
            netns: (flags & FLAG_NETNS != 0).then(|| u32_at(field::NETNS)),
            cookie: (flags & FLAG_COOKIE != 0).then(|| u64_at(field::COOKIE)),
            len: u32_at(field::LEN),
            kind: match r[field::KIND] {
                0 => EventKind::Drop,
                1 => EventKind::Retransmit,
                2 => EventKind::ResetSent,
                3 => EventKind::ResetReceived,
                other => {
                    return Err(WireError::Unknown {
                        field: "kind",
                        value: other.into(),
                    })
                }
            },
            tcp_state: r[field::TCP_STATE],
            segments: u16_at(field::SEGMENTS),
        })
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::wire::{AF_INET, AF_INET6};

    /// A record as the kernel writes it: TCP SYN 198.18.0.2:40000 -> 198.18.0.1:80.
    pub(crate) fn record(reason: u32, cookie: Option<u64>) -> Vec<u8> {
        let mut r = vec![0u8; DROP_EVENT_LEN];
        r[field::TS_NS].copy_from_slice(&5u64.to_ne_bytes());
        r[field::REASON].copy_from_slice(&reason.to_ne_bytes());
        r[field::IFINDEX].copy_from_slice(&7u32.to_ne_bytes());
        r[field::FAMILY].copy_from_slice(&AF_INET.to_ne_bytes());
        r[field::PROTOCOL] = 6;
        r[field::TCP_FLAGS] = 0x02;
        r[32..36].copy_from_slice(&[198, 18, 0, 2]);
        r[48..52].copy_from_slice(&[198, 18, 0, 1]);
        r[field::SPORT].copy_from_slice(&40000u16.to_ne_bytes());
        r[field::DPORT].copy_from_slice(&80u16.to_ne_bytes());
        r[field::LEN].copy_from_slice(&60u32.to_ne_bytes());
        r[field::FLAGS] = FLAG_IFINDEX;
        if let Some(c) = cookie {
            r[field::COOKIE].copy_from_slice(&c.to_ne_bytes());
            r[field::FLAGS] |= FLAG_COOKIE;
        }
        r
    }

    #[test]
    fn parses_a_tcp_syn_drop() {
        let e = DropEvent::parse(&record(12, Some(99))).unwrap();
        assert_eq!(e.reason, 12);
        assert_eq!(e.source, ("198.18.0.2".parse().unwrap(), 40000));
        assert_eq!(e.destination, ("198.18.0.1".parse().unwrap(), 80));
        assert_eq!(e.transport, Transport::Tcp);
        assert_eq!(e.tcp_flags, 0x02);
        assert_eq!(e.ifindex, Some(7));
        assert_eq!(e.netns, None);
        assert_eq!(e.cookie, Some(99));
        assert_eq!(e.len, 60);
        assert_eq!(DropEvent::parse(&record(3, None)).unwrap().cookie, None);
    }

    #[test]
    fn parses_v6_and_rejects_bad_records() {
        let mut r = record(3, None);
        r[field::FAMILY].copy_from_slice(&AF_INET6.to_ne_bytes());
        r[field::PROTOCOL] = 17;
        let mut a = [0u8; 16];
        a[0] = 0x20;
        a[1] = 0x01;
        a[2] = 0x0d;
        a[3] = 0xb8;
        a[15] = 2;
        r[field::SADDR].copy_from_slice(&a);
        let e = DropEvent::parse(&r).unwrap();
        assert_eq!(e.source.0, "2001:db8::2".parse::<IpAddr>().unwrap());
        assert_eq!(e.transport, Transport::Udp);
        assert_eq!(DropEvent::parse(&r[..10]), Err(WireError::Length(10)));
        assert_eq!(e.kind, EventKind::Drop);
        let mut t = r.clone();
        t[field::KIND] = 1;
        t[field::TCP_STATE] = 1;
        t[field::SEGMENTS].copy_from_slice(&3u16.to_ne_bytes());
        let e = DropEvent::parse(&t).unwrap();
        assert_eq!(
            (e.kind, e.tcp_state, e.segments),
            (EventKind::Retransmit, 1, 3)
        );
        t[field::KIND] = 9;
        assert!(DropEvent::parse(&t).is_err());
        r[field::FAMILY].copy_from_slice(&1u16.to_ne_bytes());
        assert!(DropEvent::parse(&r).is_err());
    }

    /// drops.h asserts its layout with `_Static_assert` lines; this checks ours agrees.
    #[test]
    fn layout_matches_drops_h() {
        let header = include_str!("../../bpf/drops.h");
        let mut checked = 0;
        for line in header.lines().filter(|l| l.starts_with("_Static_assert(")) {
            let (lhs, rhs) = line.split_once(" == ").expect("assert has ==");
            let value: usize = rhs.split(',').next().unwrap().trim().parse().unwrap();
            let expect = if lhs.contains("sizeof(struct fsd_drop_event)") {
                DROP_EVENT_LEN
            } else {
                match lhs.rsplit(", ").next().unwrap().trim_end_matches(')') {
                    "ts_ns" => field::TS_NS.start,
                    "cookie" => field::COOKIE.start,
                    "reason" => field::REASON.start,
                    "ifindex" => field::IFINDEX.start,
                    "netns" => field::NETNS.start,
                    "family" => field::FAMILY.start,
                    "protocol" => field::PROTOCOL,
                    "tcp_flags" => field::TCP_FLAGS,
                    "saddr" => field::SADDR.start,
                    "daddr" => field::DADDR.start,
                    "sport" => field::SPORT.start,
                    "dport" => field::DPORT.start,
                    "len" => field::LEN.start,
                    "flags" => field::FLAGS,
                    "kind" => field::KIND,
                    "tcp_state" => field::TCP_STATE,
                    "segments" => field::SEGMENTS.start,
                    other => panic!("drops.h asserts an offset wire.rs does not know: {other}"),
                }
            };
            assert_eq!(expect, value, "{line}");
            checked += 1;
        }
        assert_eq!(checked, 18, "every field of the contract is asserted");
        for (kind, name) in [
            (EventKind::Drop, "FSD_KIND_DROP"),
            (EventKind::Retransmit, "FSD_KIND_RETRANSMIT"),
            (EventKind::ResetSent, "FSD_KIND_RESET_SENT"),
            (EventKind::ResetReceived, "FSD_KIND_RESET_RECEIVED"),
        ] {
            assert!(
                header.contains(&format!("#define {name} {} ", kind as u8)),
                "{name}"
            );
        }
        for (bit, name) in [
            (FLAG_COOKIE, "FSD_F_COOKIE"),
            (FLAG_IFINDEX, "FSD_F_IFINDEX"),
            (FLAG_NETNS, "FSD_F_NETNS"),
        ] {
            assert!(header.contains(&format!("#define {name} {bit} ")), "{name}");
        }
        for &(i, _) in DROP_COUNTERS {
            assert!(header.contains(&format!(" {i} /* ")), "counter index {i}");
        }
        assert!(header.contains(&format!("#define FSD_CNT_MAX {}", DROP_COUNTERS.len())));
        assert!(header.contains(&format!(
            "#define FSD_REASON_LISTEN_OVERFLOW_UNNUMBERED {LISTEN_OVERFLOW_UNNUMBERED:#x}"
        )));
    }
}
