//! Byte layout shared with the kernel programs (bpf/tls.h), as a checked view.
//!
//! Parsed with explicit field ranges rather than pointer casts, so a short or corrupt ring
//! record is an error, never undefined behaviour.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

/// Bytes of a record header (`sizeof(struct fst_event)`).
pub const EVENT_HEADER_LEN: usize = 104;
/// Most plaintext bytes the probes copy per call (`FST_MAX_DATA`); the rest of a longer call
/// is counted and reported as missing.
pub const MAX_CAPTURED: usize = 4096;

mod field {
    use std::ops::Range;
    pub const TS_NS: Range<usize> = 0..8;
    pub const SSL: Range<usize> = 8..16;
    pub const COOKIE: Range<usize> = 16..24;
    pub const PID: Range<usize> = 24..28;
    pub const TID: Range<usize> = 28..32;
    pub const NETNS: Range<usize> = 32..36;
    pub const LEN: Range<usize> = 36..40;
    pub const CAPTURED: Range<usize> = 40..44;
    pub const FAMILY: Range<usize> = 44..46;
    pub const KIND: usize = 46;
    pub const FLAGS: usize = 47;
    pub const SADDR: Range<usize> = 48..64;
    pub const DADDR: Range<usize> = 64..80;
    pub const SPORT: Range<usize> = 80..82;
    pub const DPORT: Range<usize> = 82..84;
    pub const COMM: Range<usize> = 88..104;
}

const FLAG_SOCK: u8 = 1;
const FLAG_SOCK_CACHED: u8 = 2;
const FLAG_SOCK_THREAD: u8 = 4;
const FLAG_GO: u8 = 8;
const AF_INET: u16 = 2;
const AF_INET6: u16 = 10;

/// Indices of the per-CPU `counters` map (`FST_CNT_*`), with their metric names.
pub const KERNEL_COUNTERS: &[(u32, &str)] = &[
    (0, "tls_kernel_events"),
    (1, "tls_kernel_ring_full_lost"),
    (2, "tls_kernel_calls_truncated"),
    (3, "tls_kernel_read_faults"),
    (4, "tls_kernel_calls_without_socket"),
    (5, "tls_kernel_nested_calls"),
    // Go crypto/tls (gotls.bpf.c)
    (6, "tls_kernel_go_returns_without_entry"),
    (7, "tls_kernel_go_conns_not_tcp"),
    // The execs ring (soak memory)
    (8, "tls_kernel_exec_events_lost"),
];

/// What a record reports (`FST_KIND_*`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TlsEventKind {
    /// `SSL_write`/`SSL_write_ex` returned: plaintext the process sent.
    Write,
    /// `SSL_read`/`SSL_read_ex` returned: plaintext the process received.
    Read,
    /// A process exec'd: look for TLS libraries in its maps.
    Exec,
}

/// Which TLS implementation a call went through.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TlsStack {
    /// OpenSSL or BoringSSL (`SSL_read`/`SSL_write` and their `_ex` forms).
    OpenSsl,
    /// Go's crypto/tls (`(*tls.Conn).Read`/`Write`); [`TlsEvent::ssl`] is the `*tls.Conn`.
    Go,
}

/// The TCP socket a call's TLS records went over.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TlsSocket {
    /// Socket cookie (0: unknown).
    pub cookie: u64,
    /// Network namespace inode.
    pub netns: u32,
    /// The process's end.
    pub local: SocketAddr,
    /// The peer's end.
    pub remote: SocketAddr,
    /// Learned in an earlier call on the same `SSL*` (this one made no socket syscall).
    pub cached: bool,
    /// The thread's last socket before the call (no socket I/O in it, none known for its
    /// `SSL*`: OpenSSL driven through memory BIOs): a guess, right when the thread serves one
    /// connection at a time.
    pub thread_guess: bool,
}

/// One ring record, borrowing its plaintext from the ring.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TlsEvent<'a> {
    /// CLOCK_MONOTONIC nanoseconds at the call's return (or the exec).
    pub ts_ns: u64,
    /// What happened.
    pub kind: TlsEventKind,
    /// The `SSL*` of the call.
    pub ssl: u64,
    /// Process (tgid) and thread.
    pub pid: u32,
    /// Thread id.
    pub tid: u32,
    /// The thread's comm.
    pub comm: String,
    /// Bytes the call moved.
    pub len: u32,
    /// The socket, when the probes could tell.
    pub socket: Option<TlsSocket>,
    /// The first `min(len, MAX_CAPTURED)` bytes.
    pub data: &'a [u8],
    /// Which TLS implementation the call went through.
    pub stack: TlsStack,
}

impl TlsEvent<'_> {
    /// Bytes the call moved beyond [`TlsEvent::data`].
    pub fn missing(&self) -> u64 {
        u64::from(self.len).saturating_sub(self.data.len() as u64)
    }
}

/// A ring record that cannot be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TlsWireError {
    /// Shorter than its header says.
    #[error("TLS ring record of {len} bytes is shorter than its {need}-byte header and data")]
    Short {
        /// Bytes received.
        len: usize,
        /// Bytes needed.
        need: usize,
    },
    /// An unknown `kind`.
    #[error("TLS ring record has unknown kind {0}")]
    Kind(u8),
}

fn arr<const N: usize>(b: &[u8], r: std::ops::Range<usize>) -> [u8; N] {
    b[r].try_into().expect("range has N bytes")
}

fn addr(family: u16, raw: [u8; 16]) -> Option<IpAddr> {
    match family {
        AF_INET => Some(IpAddr::V4(Ipv4Addr::new(raw[0], raw[1], raw[2], raw[3]))),
        AF_INET6 => {
            let v6 = Ipv6Addr::from(raw);
            // A v4-mapped address is how a dual-stack socket names a v4 peer; the packets carry v4.
            Some(v6.to_ipv4_mapped().map_or(IpAddr::V6(v6), IpAddr::V4))
        }
        _ => None,
    }
}

impl<'a> TlsEvent<'a> {
    /// Reads one ring record.
    pub fn parse(record: &'a [u8]) -> Result<Self, TlsWireError> {
        if record.len() < EVENT_HEADER_LEN {
            return Err(TlsWireError::Short {
                len: record.len(),
                need: EVENT_HEADER_LEN,
            });
        }
        let u32_at = |r| u32::from_ne_bytes(arr(record, r));
        let kind = match record[field::KIND] {
            1 => TlsEventKind::Write,
            2 => TlsEventKind::Read,
            3 => TlsEventKind::Exec,
            k => return Err(TlsWireError::Kind(k)),
        };
        let captured = (u32_at(field::CAPTURED) as usize).min(MAX_CAPTURED);
        let need = EVENT_HEADER_LEN + captured;
        if record.len() < need {
            return Err(TlsWireError::Short {
                len: record.len(),
                need,
            });
        }
        let flags = record[field::FLAGS];
        let family = u16::from_ne_bytes(arr(record, field::FAMILY));
        let socket = (flags & FLAG_SOCK != 0)
            .then(|| {
                let local = addr(family, arr(record, field::SADDR))?;
                let remote = addr(family, arr(record, field::DADDR))?;
                Some(TlsSocket {
                    cookie: u64::from_ne_bytes(arr(record, field::COOKIE)),
                    netns: u32_at(field::NETNS),
                    local: SocketAddr::new(local, u16::from_ne_bytes(arr(record, field::SPORT))),
                    remote: SocketAddr::new(remote, u16::from_ne_bytes(arr(record, field::DPORT))),
                    cached: flags & FLAG_SOCK_CACHED != 0,
                    thread_guess: flags & FLAG_SOCK_THREAD != 0,
                })
            })
            .flatten();
        let comm = &record[field::COMM];
        let end = comm.iter().position(|&b| b == 0).unwrap_or(comm.len());
        Ok(Self {
            ts_ns: u64::from_ne_bytes(arr(record, field::TS_NS)),
            kind,
            ssl: u64::from_ne_bytes(arr(record, field::SSL)),
            pid: u32_at(field::PID),
            tid: u32_at(field::TID),
            comm: String::from_utf8_lossy(&comm[..end]).into_owned(),
            len: u32_at(field::LEN),
            socket,
            data: &record[EVENT_HEADER_LEN..need],
            stack: if flags & FLAG_GO != 0 {
                TlsStack::Go
            } else {
                TlsStack::OpenSsl
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The C header asserts its layout with `_Static_assert` lines (a mismatch fails the clang
    /// build); this test reads the same lines and checks the ranges here agree.
    #[test]
    fn layout_matches_tls_h() {
        let header = include_str!("../bpf/tls.h");
        let mut checked = 0;
        for line in header.lines().filter(|l| l.starts_with("_Static_assert(")) {
            let (lhs, rhs) = line.split_once(" == ").expect("assert has ==");
            let value: usize = rhs.split(',').next().unwrap().trim().parse().unwrap();
            let expect = if lhs.contains("sizeof(struct fst_event)") {
                EVENT_HEADER_LEN
            } else {
                let name = lhs.rsplit(", ").next().unwrap().trim_end_matches(')');
                match name {
                    "ts_ns" => field::TS_NS.start,
                    "ssl" => field::SSL.start,
                    "cookie" => field::COOKIE.start,
                    "pid" => field::PID.start,
                    "tid" => field::TID.start,
                    "netns" => field::NETNS.start,
                    "len" => field::LEN.start,
                    "captured" => field::CAPTURED.start,
                    "family" => field::FAMILY.start,
                    "kind" => field::KIND,
                    "flags" => field::FLAGS,
                    "saddr" => field::SADDR.start,
                    "daddr" => field::DADDR.start,
                    "sport" => field::SPORT.start,
                    "dport" => field::DPORT.start,
                    "comm" => field::COMM.start,
                    other => panic!("tls.h asserts an offset wire.rs does not know: {other}"),
                }
            };
            assert_eq!(expect, value, "{line}");
            checked += 1;
        }
        assert_eq!(checked, 17, "every field of the contract is asserted");
        assert!(header.contains(&format!("#define FST_MAX_DATA {MAX_CAPTURED}\n")));
        assert!(header.contains(&format!("#define FST_CNT_MAX {}\n", KERNEL_COUNTERS.len())));
    }

    fn header(kind: u8, flags: u8, len: u32, captured: u32) -> Vec<u8> {
        let mut r = vec![0u8; EVENT_HEADER_LEN];
        r[field::TS_NS].copy_from_slice(&5u64.to_ne_bytes());
        r[field::SSL].copy_from_slice(&0xabcdu64.to_ne_bytes());
        r[field::COOKIE].copy_from_slice(&9u64.to_ne_bytes());
        r[field::PID].copy_from_slice(&42u32.to_ne_bytes());
        r[field::TID].copy_from_slice(&43u32.to_ne_bytes());
        r[field::LEN].copy_from_slice(&len.to_ne_bytes());
        r[field::CAPTURED].copy_from_slice(&captured.to_ne_bytes());
        r[field::FAMILY].copy_from_slice(&AF_INET.to_ne_bytes());
        r[field::KIND] = kind;
        r[field::FLAGS] = flags;
        r[field::SADDR.start..field::SADDR.start + 4].copy_from_slice(&[10, 0, 0, 2]);
        r[field::DADDR.start..field::DADDR.start + 4].copy_from_slice(&[10, 0, 0, 1]);
        r[field::SPORT].copy_from_slice(&40000u16.to_ne_bytes());
        r[field::DPORT].copy_from_slice(&443u16.to_ne_bytes());
        r[field::COMM.start..field::COMM.start + 4].copy_from_slice(b"curl");
        r
    }

    #[test]
    fn parses_a_write_with_its_socket_and_data() {
        let mut r = header(1, FLAG_SOCK, 10, 3);
        r.extend(b"GET");
        let e = TlsEvent::parse(&r).unwrap();
        assert_eq!(
            (e.kind, e.pid, e.tid, e.comm.as_str()),
            (TlsEventKind::Write, 42, 43, "curl")
        );
        assert_eq!(e.data, b"GET");
        assert_eq!(e.missing(), 7);
        let s = e.socket.unwrap();
        assert_eq!(s.local, "10.0.0.2:40000".parse().unwrap());
        assert_eq!(s.remote, "10.0.0.1:443".parse().unwrap());
        assert_eq!((s.cookie, s.cached, s.thread_guess), (9, false, false));
        assert_eq!(e.stack, TlsStack::OpenSsl);
    }

    #[test]
    fn go_flag_names_the_go_stack() {
        let r = header(2, FLAG_SOCK | FLAG_GO, 0, 0);
        let e = TlsEvent::parse(&r).unwrap();
        assert_eq!(e.stack, TlsStack::Go);
        assert!(e.socket.is_some());
    }

    #[test]
    fn no_socket_flag_no_socket_and_short_records_fail() {
        let mut r = header(2, 0, 3, 3);
        r.extend(b"abc");
        assert_eq!(TlsEvent::parse(&r).unwrap().socket, None);
        assert!(matches!(
            TlsEvent::parse(&r[..EVENT_HEADER_LEN + 1]),
            Err(TlsWireError::Short { .. })
        ));
        assert!(matches!(
            TlsEvent::parse(&r[..10]),
            Err(TlsWireError::Short { .. })
        ));
        assert_eq!(
            TlsEvent::parse(&header(9, 0, 0, 0)),
            Err(TlsWireError::Kind(9))
        );
    }

    #[test]
    fn v4_mapped_v6_is_v4() {
        let mut r = header(1, FLAG_SOCK, 0, 0);
        r[field::FAMILY].copy_from_slice(&AF_INET6.to_ne_bytes());
        let mut a = [0u8; 16];
        a[10] = 0xff;
        a[11] = 0xff;
        a[12..].copy_from_slice(&[10, 0, 0, 2]);
        r[field::SADDR].copy_from_slice(&a);
        r[field::DADDR].copy_from_slice(&a);
        let s = TlsEvent::parse(&r).unwrap().socket.unwrap();
        assert_eq!(s.local.ip(), "10.0.0.2".parse::<IpAddr>().unwrap());
    }
}
