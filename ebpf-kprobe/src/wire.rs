//! Byte layout shared with the kernel programs (bpf/attribution.h), as a checked view.
//!
//! Parsed with explicit field ranges rather than pointer casts so a short or corrupt ring record
//! is an error, never undefined behaviour.

use std::{
    net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr},
    ops::Range,
};

/// Bytes of one ring record (`sizeof(struct fsa_sock_event)`).
pub const SOCK_EVENT_LEN: usize = 96;

mod field {
    use std::ops::Range;
    pub const TS_NS: Range<usize> = 0..8;
    pub const COOKIE: Range<usize> = 8..16;
    pub const CGROUP_ID: Range<usize> = 16..24;
    pub const PID: Range<usize> = 24..28;
    pub const TID: Range<usize> = 28..32;
    pub const NETNS: Range<usize> = 32..36;
    pub const FAMILY: Range<usize> = 36..38;
    pub const PROTOCOL: usize = 38;
    pub const KIND: usize = 39;
    pub const SADDR: Range<usize> = 40..56;
    pub const DADDR: Range<usize> = 56..72;
    pub const SPORT: Range<usize> = 72..74;
    pub const DPORT: Range<usize> = 74..76;
    pub const FLAGS: usize = 76;
    pub const OLD_STATE: usize = 77;
    pub const NEW_STATE: usize = 78;
    pub const COMM: Range<usize> = 80..96;
}

const FLAG_COOKIE: u8 = 1;
const FLAG_LOCAL: u8 = 2;
const FLAG_REMOTE: u8 = 4;
const FLAG_PROCESS: u8 = 8;
const FLAG_NETNS: u8 = 16;

pub(crate) const AF_INET: u16 = 2;
pub(crate) const AF_INET6: u16 = 10;

/// Indices of the per-CPU `counters` map (`FSA_CNT_*`), with their metric names.
pub const KERNEL_COUNTERS: &[(u32, &str)] = &[
    (0, "kernel_sock_events"),
    (1, "kernel_sock_ring_full_lost"),
    (2, "kernel_sock_io_deduplicated"),
    (3, "kernel_sock_fd_unreadable"),
];

/// What a record reports (`FSA_KIND_*`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum SockEventKind {
    /// A process connected a socket (TCP or UDP).
    Connect,
    /// A process accepted a TCP connection.
    Accept,
    /// A TCP state change seen outside process context (no owner in the record).
    StateChange,
    /// A TCP socket closed: its owner should be forgotten after a grace period.
    Close,
    /// A process sent on an unconnected UDP socket.
    UdpSend,
    /// A process received on an unconnected UDP socket.
    UdpRecv,
    /// A process sent or received on a TCP or connected UDP socket (kprobe path, or the socket
    /// tracepoints on the tp_btf methods): reported once per socket, peer and process.
    Io,
}

impl SockEventKind {
    fn from_wire(v: u8) -> Option<Self> {
        Some(match v {
            1 => Self::Connect,
            2 => Self::Accept,
            3 => Self::StateChange,
            4 => Self::Close,
            5 => Self::UdpSend,
            6 => Self::UdpRecv,
            7 => Self::Io,
            _ => return None,
        })
    }
}

/// Transport protocol of a socket.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Transport {
    /// IPPROTO_TCP.
    Tcp,
    /// IPPROTO_UDP.
    Udp,
}

impl Transport {
    /// The transport with IANA protocol number `n` (IPPROTO_TCP, IPPROTO_UDP).
    pub fn from_number(n: u8) -> Option<Self> {
        match n {
            6 => Some(Transport::Tcp),
            17 => Some(Transport::Udp),
            _ => None,
        }
    }

    /// The IANA protocol number.
    pub fn number(self) -> u8 {
        match self {
            Transport::Tcp => 6,
            Transport::Udp => 17,
        }
    }
}

/// Both ends of a socket as seen from its owner: `local` is this host's side.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SocketTuple {
    /// TCP or UDP.
    pub proto: Transport,
    /// This host's address and port (the address may be unspecified for unconnected UDP).
    pub local: SocketAddr,
    /// The peer.
    pub remote: SocketAddr,
}

impl SocketTuple {
    /// The same tuple with IPv4-mapped IPv6 addresses (`::ffff:a.b.c.d`) written as IPv4, so a
    /// dual-stack socket matches the IPv4 packets it exchanges.
    pub fn canonical(self) -> Self {
        Self {
            proto: self.proto,
            local: canonical_addr(self.local),
            remote: canonical_addr(self.remote),
        }
    }

    /// The tuple seen from the other end.
    pub fn reversed(self) -> Self {
        Self {
            proto: self.proto,
            local: self.remote,
            remote: self.local,
        }
    }
}

/// `addr` with an IPv4-mapped IPv6 address turned into IPv4.
pub fn canonical_addr(addr: SocketAddr) -> SocketAddr {
    SocketAddr::new(addr.ip().to_canonical(), addr.port())
}

/// Who did it, as the kernel saw at the event.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WireProcess {
    /// Thread group id (the pid users know).
    pub pid: u32,
    /// Thread id.
    pub tid: u32,
    /// Task comm (at most 15 bytes).
    pub comm: String,
    /// cgroup v2 id (inode number of the cgroup directory).
    pub cgroup_id: u64,
}

/// Decoded `struct fsa_sock_event`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SockEvent {
    /// What happened.
    pub kind: SockEventKind,
    /// CLOCK_MONOTONIC nanoseconds.
    pub ts_ns: u64,
    /// The socket cookie, when the program had it.
    pub cookie: Option<u64>,
    /// Both ends, when the local end was known.
    pub tuple: Option<SocketTuple>,
    /// The peer alone (connect hooks run before the local port is bound).
    pub remote: Option<SocketAddr>,
    /// Transport, when known.
    pub proto: Option<Transport>,
    /// The owner, for kinds that run in process context.
    pub process: Option<WireProcess>,
    /// Network namespace inode, when known.
    pub netns: Option<u32>,
    /// TCP state before and after (`StateChange`, `Close`, SYN_SENT `Connect`).
    pub tcp_states: (u8, u8),
}

/// Why a ring record could not be read.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum WireError {
    /// The record is not the size of `struct fsa_sock_event`.
    #[error("attribution ring record of {0} bytes, expected {SOCK_EVENT_LEN}")]
    Length(usize),
    /// A field holds a value the kernel programs never write.
    #[error("attribution ring record has unknown {field} value {value}")]
    Unknown {
        /// Which field.
        field: &'static str,
        /// The value found.
        value: u32,
    },
}

fn arr<const N: usize>(b: &[u8], r: Range<usize>) -> [u8; N] {
    b[r].try_into().expect("range length matches N")
}

/// The address a kernel record holds in a 16-byte field (network byte order, IPv4 in the first
/// 4 bytes), for `family` AF_INET or AF_INET6; `None` for another family.
pub(crate) fn ip_of(family: u16, b: &[u8]) -> Option<IpAddr> {
    match family {
        AF_INET => Some(IpAddr::V4(Ipv4Addr::new(b[0], b[1], b[2], b[3]))),
        AF_INET6 => Some(IpAddr::V6(Ipv6Addr::from(
            <[u8; 16]>::try_from(&b[..16]).expect("16-byte address field"),
        ))),
        _ => None,
    }
}

fn addr(family: u16, b: [u8; 16]) -> IpAddr {
    if family == AF_INET {
        IpAddr::V4(Ipv4Addr::new(b[0], b[1], b[2], b[3]))
    } else {
        IpAddr::V6(Ipv6Addr::from(b))
    }
}

impl SockEvent {
    /// Parses one ring record.
    pub fn parse(record: &[u8]) -> Result<SockEvent, WireError> {
        if record.len() != SOCK_EVENT_LEN {
            return Err(WireError::Length(record.len()));
        }
        let kind = SockEventKind::from_wire(record[field::KIND]).ok_or(WireError::Unknown {
            field: "kind",
            value: record[field::KIND].into(),
        })?;
        let flags = record[field::FLAGS];
        let family = u16::from_ne_bytes(arr(record, field::FAMILY));
        let proto = match record[field::PROTOCOL] {
            6 => Some(Transport::Tcp),
            17 => Some(Transport::Udp),
            _ => None,
        };
        let has_addr = family == AF_INET || family == AF_INET6;
        if !has_addr && family != 0 {
            return Err(WireError::Unknown {
                field: "family",
                value: family.into(),
            });
        }
        let remote = (has_addr && flags & FLAG_REMOTE != 0).then(|| {
            SocketAddr::new(
                addr(family, arr(record, field::DADDR)),
                u16::from_ne_bytes(arr(record, field::DPORT)),
            )
        });
        let local = (has_addr && flags & FLAG_LOCAL != 0).then(|| {
            SocketAddr::new(
                addr(family, arr(record, field::SADDR)),
                u16::from_ne_bytes(arr(record, field::SPORT)),
            )
        });
        let tuple = match (proto, local, remote) {
            (Some(proto), Some(local), Some(remote)) => Some(
                SocketTuple {
                    proto,
                    local,
                    remote,
                }
                .canonical(),
            ),
            _ => None,
        };
        let process = (flags & FLAG_PROCESS != 0).then(|| {
            let comm = &record[field::COMM];
            let end = comm.iter().position(|&c| c == 0).unwrap_or(comm.len());
            WireProcess {
                pid: u32::from_ne_bytes(arr(record, field::PID)),
                tid: u32::from_ne_bytes(arr(record, field::TID)),
                comm: String::from_utf8_lossy(&comm[..end]).into_owned(),
                cgroup_id: u64::from_ne_bytes(arr(record, field::CGROUP_ID)),
            }
        });
        Ok(SockEvent {
            kind,
            ts_ns: u64::from_ne_bytes(arr(record, field::TS_NS)),
            cookie: (flags & FLAG_COOKIE != 0)
                .then(|| u64::from_ne_bytes(arr(record, field::COOKIE)))
                .filter(|&c| c != 0),
            tuple,
            remote: remote.map(canonical_addr),
            proto,
            process,
            netns: (flags & FLAG_NETNS != 0).then(|| u32::from_ne_bytes(arr(record, field::NETNS))),
            tcp_states: (record[field::OLD_STATE], record[field::NEW_STATE]),
        })
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// The C header asserts its layout with `_Static_assert` lines (a mismatch there fails the
    /// clang build); this test reads those same lines and checks our ranges agree with them.
    #[test]
    fn layout_matches_attribution_h() {
        let header = include_str!("../bpf/attribution.h");
        let mut checked = 0;
        for line in header.lines().filter(|l| l.starts_with("_Static_assert(")) {
            let (lhs, rhs) = line.split_once(" == ").expect("assert has ==");
            let value: usize = rhs.split(',').next().unwrap().trim().parse().unwrap();
            let expect = if lhs.contains("sizeof(struct fsa_sock_event)") {
                SOCK_EVENT_LEN
            } else {
                let name = lhs.rsplit(", ").next().unwrap().trim_end_matches(')');
                match name {
                    "ts_ns" => field::TS_NS.start,
                    "cookie" => field::COOKIE.start,
                    "cgroup_id" => field::CGROUP_ID.start,
                    "pid" => field::PID.start,
                    "tid" => field::TID.start,
                    "netns" => field::NETNS.start,
                    "family" => field::FAMILY.start,
                    "protocol" => field::PROTOCOL,
                    "kind" => field::KIND,
                    "saddr" => field::SADDR.start,
                    "daddr" => field::DADDR.start,
                    "sport" => field::SPORT.start,
                    "dport" => field::DPORT.start,
                    "flags" => field::FLAGS,
                    "old_state" => field::OLD_STATE,
                    "new_state" => field::NEW_STATE,
                    "comm" => field::COMM.start,
                    other => {
                        panic!("attribution.h asserts an offset wire.rs does not know: {other}")
                    }
                }
            };
            assert_eq!(expect, value, "{line}");
            checked += 1;
        }
        assert_eq!(checked, 18, "every field of the contract is asserted");
        for (bit, name) in [
            (FLAG_COOKIE, "FSA_F_COOKIE"),
            (FLAG_LOCAL, "FSA_F_LOCAL"),
            (FLAG_REMOTE, "FSA_F_REMOTE"),
            (FLAG_PROCESS, "FSA_F_PROCESS"),
            (FLAG_NETNS, "FSA_F_NETNS"),
        ] {
            assert!(header.contains(&format!("#define {name} {bit} ")), "{name}");
        }
        for (idx, _) in KERNEL_COUNTERS {
            assert!(header.contains(&format!(" {idx} /*")));
        }
        assert!(header.contains(&format!("#define FSA_CNT_MAX {}", KERNEL_COUNTERS.len())));
    }

    /// A record as the kernel would write it (used by the cache tests too).
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn record(
        kind: u8,
        cookie: u64,
        v4: Option<([u8; 4], u16, [u8; 4], u16)>,
        pid: u32,
        comm: &str,
    ) -> Vec<u8> {
        let mut r = vec![0u8; SOCK_EVENT_LEN];
        r[39] = kind;
        r[0..8].copy_from_slice(&5u64.to_ne_bytes());
        let mut flags = 0;
        if cookie != 0 {
            r[8..16].copy_from_slice(&cookie.to_ne_bytes());
            flags |= FLAG_COOKIE;
        }
        r[38] = 6;
        if let Some((s, sp, d, dp)) = v4 {
            r[36..38].copy_from_slice(&AF_INET.to_ne_bytes());
            r[40..44].copy_from_slice(&s);
            r[56..60].copy_from_slice(&d);
            r[72..74].copy_from_slice(&sp.to_ne_bytes());
            r[74..76].copy_from_slice(&dp.to_ne_bytes());
            flags |= FLAG_LOCAL | FLAG_REMOTE;
        }
        if pid != 0 {
            r[24..28].copy_from_slice(&pid.to_ne_bytes());
            r[28..32].copy_from_slice(&(pid + 1).to_ne_bytes());
            r[16..24].copy_from_slice(&77u64.to_ne_bytes());
            r[80..80 + comm.len()].copy_from_slice(comm.as_bytes());
            flags |= FLAG_PROCESS;
        }
        r[76] = flags;
        r
    }

    #[test]
    fn parses_a_record() {
        let r = record(
            2,
            42,
            Some(([10, 0, 0, 1], 80, [10, 0, 0, 2], 5555)),
            9,
            "nginx",
        );
        let e = SockEvent::parse(&r).unwrap();
        assert_eq!(e.kind, SockEventKind::Accept);
        assert_eq!(e.cookie, Some(42));
        let t = e.tuple.unwrap();
        assert_eq!(t.local, "10.0.0.1:80".parse().unwrap());
        assert_eq!(t.remote, "10.0.0.2:5555".parse().unwrap());
        assert_eq!(t.proto, Transport::Tcp);
        let p = e.process.unwrap();
        assert_eq!(
            (p.pid, p.tid, p.comm.as_str(), p.cgroup_id),
            (9, 10, "nginx", 77)
        );
        assert_eq!(e.netns, None);
    }

    #[test]
    fn maps_v4_mapped_v6_to_v4() {
        let mut r = record(1, 1, None, 3, "py");
        r[36..38].copy_from_slice(&AF_INET6.to_ne_bytes());
        let mut s = [0u8; 16];
        s[10] = 0xff;
        s[11] = 0xff;
        s[12..].copy_from_slice(&[127, 0, 0, 1]);
        r[40..56].copy_from_slice(&s);
        r[56..72].copy_from_slice(&s);
        r[72..74].copy_from_slice(&1u16.to_ne_bytes());
        r[74..76].copy_from_slice(&2u16.to_ne_bytes());
        r[76] |= FLAG_LOCAL | FLAG_REMOTE;
        let t = SockEvent::parse(&r).unwrap().tuple.unwrap();
        assert_eq!(t.local, "127.0.0.1:1".parse().unwrap());
        assert_eq!(t.remote, "127.0.0.1:2".parse().unwrap());
    }

    #[test]
    fn rejects_bad_records() {
        assert_eq!(SockEvent::parse(&[0; 10]), Err(WireError::Length(10)));
        let r = record(99, 1, None, 0, "");
        assert!(matches!(
            SockEvent::parse(&r),
            Err(WireError::Unknown { field: "kind", .. })
        ));
        let mut r = record(1, 1, None, 0, "");
        r[36] = 1;
        assert!(matches!(
            SockEvent::parse(&r),
            Err(WireError::Unknown {
                field: "family",
                ..
            })
        ));
    }
}
