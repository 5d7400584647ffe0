//! Byte layout of a syscall record (bpf/syscalls.h), as a checked view, and the syscalls the
//! programs are attached to.

use std::net::{IpAddr, SocketAddr};

use crate::wire::{ip_of, SocketTuple, Transport};

/// A syscall ring record that can't be read.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum WireError {
    /// The record is not the size of `struct fss_event`.
    #[error("syscall ring record of {0} bytes, expected {SYSCALL_EVENT_LEN}")]
    Length(usize),
    /// A field holds a value the kernel program never writes.
    #[error("syscall ring record has unknown {field} value {value}")]
    Unknown {
        /// Which field.
        field: &'static str,
        /// The value found.
        value: i64,
    },
}

/// Bytes of one ring record (`sizeof(struct fss_event)`).
pub const SYSCALL_EVENT_LEN: usize = 208;

mod field {
    use std::ops::Range;
    pub const ENTER_NS: Range<usize> = 0..8;
    pub const EXIT_NS: Range<usize> = 8..16;
    pub const RET: Range<usize> = 16..24;
    pub const ARGS: Range<usize> = 24..48;
    pub const PID: Range<usize> = 48..52;
    pub const TID: Range<usize> = 52..56;
    pub const NR: Range<usize> = 56..60;
    pub const FAMILY: Range<usize> = 60..62;
    pub const FD_KIND: usize = 62;
    pub const PROTOCOL: usize = 63;
    pub const SADDR: Range<usize> = 64..80;
    pub const DADDR: Range<usize> = 80..96;
    pub const SPORT: Range<usize> = 96..98;
    pub const DPORT: Range<usize> = 98..100;
    pub const PATH_LEN: Range<usize> = 100..104;
    pub const PATH: Range<usize> = 104..208;
}

const FD_NONE: u8 = 0;
const FD_FILE: u8 = 1;
const FD_SOCKET: u8 = 2;
const FD_OTHER_SOCKET: u8 = 3;

/// Indices of the per-CPU `fss_counters` map (`FSS_CNT_*`), with their status names.
pub const SYSCALL_COUNTERS: &[(u32, &str)] = &[
    (0, "syscall_events"),
    (1, "syscall_ring_full_lost"),
    (2, "syscall_exits_without_entry"),
    (3, "syscall_inflight_full"),
];

/// The syscalls flowscope follows in traced processes: the blocking work a request handler
/// does (files, fsync, outgoing connections) and the socket I/O that ties a thread to the
/// request it serves.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Syscall {
    /// read(2)
    Read,
    /// write(2)
    Write,
    /// open(2) (not on arm64)
    Open,
    /// openat(2)
    Openat,
    /// close(2): only keeps the fd → path table right; never a span.
    Close,
    /// pread64(2)
    Pread64,
    /// pwrite64(2)
    Pwrite64,
    /// readv(2)
    Readv,
    /// writev(2)
    Writev,
    /// sendfile(2) (tracepoint `sendfile64`)
    Sendfile,
    /// connect(2)
    Connect,
    /// sendto(2)
    Sendto,
    /// recvfrom(2)
    Recvfrom,
    /// sendmsg(2)
    Sendmsg,
    /// recvmsg(2)
    Recvmsg,
    /// fsync(2)
    Fsync,
    /// fdatasync(2)
    Fdatasync,
}

/// `(syscall, tracepoint name suffix, number)` for this architecture (arch/x86/entry/syscalls/
/// syscall_64.tbl; include/uapi/asm-generic/unistd.h for arm64).
#[cfg(not(target_arch = "aarch64"))]
pub const SYSCALLS: &[(Syscall, &str, i32)] = &[
    (Syscall::Read, "read", 0),
    (Syscall::Write, "write", 1),
    (Syscall::Open, "open", 2),
    (Syscall::Close, "close", 3),
    (Syscall::Pread64, "pread64", 17),
    (Syscall::Pwrite64, "pwrite64", 18),
    (Syscall::Readv, "readv", 19),
    (Syscall::Writev, "writev", 20),
    (Syscall::Sendfile, "sendfile64", 40),
    (Syscall::Connect, "connect", 42),
    (Syscall::Sendto, "sendto", 44),
    (Syscall::Recvfrom, "recvfrom", 45),
    (Syscall::Sendmsg, "sendmsg", 46),
    (Syscall::Recvmsg, "recvmsg", 47),
    (Syscall::Fsync, "fsync", 74),
    (Syscall::Fdatasync, "fdatasync", 75),
    (Syscall::Openat, "openat", 257),
];

/// `(syscall, tracepoint name suffix, number)` for arm64 (asm-generic/unistd.h; no open(2)).
#[cfg(target_arch = "aarch64")]
pub const SYSCALLS: &[(Syscall, &str, i32)] = &[
    (Syscall::Openat, "openat", 56),
    (Syscall::Close, "close", 57),
    (Syscall::Read, "read", 63),
    (Syscall::Write, "write", 64),
    (Syscall::Readv, "readv", 65),
    (Syscall::Writev, "writev", 66),
    (Syscall::Pread64, "pread64", 67),
    (Syscall::Pwrite64, "pwrite64", 68),
    (Syscall::Sendfile, "sendfile64", 71),
    (Syscall::Fsync, "fsync", 82),
    (Syscall::Fdatasync, "fdatasync", 83),
    (Syscall::Connect, "connect", 203),
    (Syscall::Sendto, "sendto", 206),
    (Syscall::Recvfrom, "recvfrom", 207),
    (Syscall::Sendmsg, "sendmsg", 211),
    (Syscall::Recvmsg, "recvmsg", 212),
];

impl Syscall {
    /// The syscall numbered `nr` on this architecture.
    pub fn from_nr(nr: i32) -> Option<Self> {
        SYSCALLS.iter().find(|s| s.2 == nr).map(|s| s.0)
    }

    /// This architecture's number, when it has the syscall.
    pub fn nr(self) -> Option<i32> {
        SYSCALLS.iter().find(|s| s.0 == self).map(|s| s.2)
    }

    /// The name users know (`openat`, `fsync`, `sendfile`).
    pub fn name(self) -> &'static str {
        match self {
            Self::Read => "read",
            Self::Write => "write",
            Self::Open => "open",
            Self::Openat => "openat",
            Self::Close => "close",
            Self::Pread64 => "pread64",
            Self::Pwrite64 => "pwrite64",
            Self::Readv => "readv",
            Self::Writev => "writev",
            Self::Sendfile => "sendfile",
            Self::Connect => "connect",
            Self::Sendto => "sendto",
            Self::Recvfrom => "recvfrom",
            Self::Sendmsg => "sendmsg",
            Self::Recvmsg => "recvmsg",
            Self::Fsync => "fsync",
            Self::Fdatasync => "fdatasync",
        }
    }

    /// Reads bytes from its fd (the count is the return value).
    pub fn reads(self) -> bool {
        matches!(
            self,
            Self::Read | Self::Pread64 | Self::Readv | Self::Recvfrom | Self::Recvmsg
        )
    }

    /// Writes bytes to its fd (the count is the return value).
    pub fn writes(self) -> bool {
        matches!(
            self,
            Self::Write
                | Self::Pwrite64
                | Self::Writev
                | Self::Sendto
                | Self::Sendmsg
                | Self::Sendfile
        )
    }
}

/// What the syscall's fd argument referred to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FdTarget {
    /// No fd argument (open/openat), or the fd could not be read.
    None,
    /// Not a socket: a file, pipe or device.
    File,
    /// A TCP or UDP socket: its ends as the kernel holds them.
    Socket(SocketTuple),
    /// A socket of another family or protocol.
    OtherSocket,
}

/// One finished syscall of a traced thread.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SyscallEvent {
    /// CLOCK_MONOTONIC ns at entry.
    pub enter_ns: u64,
    /// CLOCK_MONOTONIC ns at exit.
    pub exit_ns: u64,
    /// Return value: bytes, an fd, or -errno.
    pub ret: i64,
    /// The first three arguments.
    pub args: [u64; 3],
    /// Process (tgid).
    pub pid: u32,
    /// Thread.
    pub tid: u32,
    /// Which syscall; `None` for a number the table does not know (a program attached by a
    /// newer loader).
    pub syscall: Option<Syscall>,
    /// The fd argument's target.
    pub fd: FdTarget,
    /// open/openat: the path argument (lossy UTF-8, at most 103 bytes).
    pub path: Option<String>,
}

impl SyscallEvent {
    /// Parses one ring record.
    pub fn parse(r: &[u8]) -> Result<Self, WireError> {
        if r.len() < SYSCALL_EVENT_LEN {
            return Err(WireError::Length(r.len()));
        }
        let u16_at = |f: std::ops::Range<usize>| u16::from_ne_bytes([r[f.start], r[f.start + 1]]);
        let u32_at =
            |f: std::ops::Range<usize>| u32::from_ne_bytes(r[f].try_into().expect("4-byte field"));
        let u64_at =
            |f: std::ops::Range<usize>| u64::from_ne_bytes(r[f].try_into().expect("8-byte field"));
        let fd = match r[field::FD_KIND] {
            FD_NONE => FdTarget::None,
            FD_FILE => FdTarget::File,
            FD_OTHER_SOCKET => FdTarget::OtherSocket,
            FD_SOCKET => {
                let family = u16_at(field::FAMILY);
                let addr = |f: std::ops::Range<usize>| -> Result<IpAddr, WireError> {
                    ip_of(family, &r[f]).ok_or(WireError::Unknown {
                        field: "family",
                        value: family.into(),
                    })
                };
                let proto =
                    Transport::from_number(r[field::PROTOCOL]).ok_or(WireError::Unknown {
                        field: "protocol",
                        value: r[field::PROTOCOL].into(),
                    })?;
                FdTarget::Socket(
                    SocketTuple {
                        proto,
                        local: SocketAddr::new(addr(field::SADDR)?, u16_at(field::SPORT)),
                        remote: SocketAddr::new(addr(field::DADDR)?, u16_at(field::DPORT)),
                    }
                    .canonical(),
                )
            }
            other => {
                return Err(WireError::Unknown {
                    field: "fd_kind",
                    value: other.into(),
                })
            }
        };
        let path_len = (u32_at(field::PATH_LEN) as usize).min(field::PATH.len());
        // The length counts the NUL that bpf_probe_read_user_str wrote.
        let path = (path_len > 0).then(|| {
            let b = &r[field::PATH.start..field::PATH.start + path_len];
            String::from_utf8_lossy(b.strip_suffix(&[0]).unwrap_or(b)).into_owned()
        });
        let a = field::ARGS.start;
        let args = [
            u64_at(a..a + 8),
            u64_at(a + 8..a + 16),
            u64_at(a + 16..a + 24),
        ];
        Ok(SyscallEvent {
            enter_ns: u64_at(field::ENTER_NS),
            exit_ns: u64_at(field::EXIT_NS),
            ret: u64_at(field::RET) as i64,
            args,
            pid: u32_at(field::PID),
            tid: u32_at(field::TID),
            syscall: Syscall::from_nr(u32_at(field::NR) as i32),
            fd,
            path,
        })
    }

    /// The fd argument, for syscalls that have one.
    pub fn fd(&self) -> Option<i32> {
        match self.syscall? {
            Syscall::Open | Syscall::Openat => None,
            _ => Some(self.args[0] as i32),
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::wire::AF_INET;

    /// A record as the kernel writes it: `nr` on fd 5, 100 bytes, 198.18.0.1:80 serving
    /// 198.18.0.2:40000.
    pub(crate) fn record(nr: i32, fd_kind: u8) -> Vec<u8> {
        let mut r = vec![0u8; SYSCALL_EVENT_LEN];
        r[field::ENTER_NS].copy_from_slice(&10u64.to_ne_bytes());
        r[field::EXIT_NS].copy_from_slice(&25u64.to_ne_bytes());
        r[field::RET].copy_from_slice(&100i64.to_ne_bytes());
        r[field::ARGS.start..field::ARGS.start + 8].copy_from_slice(&5u64.to_ne_bytes());
        r[field::PID].copy_from_slice(&42u32.to_ne_bytes());
        r[field::TID].copy_from_slice(&43u32.to_ne_bytes());
        r[field::NR].copy_from_slice(&nr.to_ne_bytes());
        r[field::FD_KIND] = fd_kind;
        if fd_kind == FD_SOCKET {
            r[field::FAMILY].copy_from_slice(&AF_INET.to_ne_bytes());
            r[field::PROTOCOL] = 6;
            r[64..68].copy_from_slice(&[198, 18, 0, 1]);
            r[80..84].copy_from_slice(&[198, 18, 0, 2]);
            r[field::SPORT].copy_from_slice(&80u16.to_ne_bytes());
            r[field::DPORT].copy_from_slice(&40000u16.to_ne_bytes());
        }
        r
    }

    #[test]
    fn parses_a_socket_read() {
        let nr = Syscall::Read.nr().unwrap();
        let e = SyscallEvent::parse(&record(nr, FD_SOCKET)).unwrap();
        assert_eq!(e.syscall, Some(Syscall::Read));
        assert_eq!((e.enter_ns, e.exit_ns, e.ret), (10, 25, 100));
        assert_eq!((e.pid, e.tid), (42, 43));
        assert_eq!(e.fd(), Some(5));
        let FdTarget::Socket(t) = e.fd else {
            panic!("{:?}", e.fd)
        };
        assert_eq!(t.local, "198.18.0.1:80".parse().unwrap());
        assert_eq!(t.remote, "198.18.0.2:40000".parse().unwrap());
        assert_eq!(t.proto, Transport::Tcp);
        assert_eq!(e.path, None);
    }

    #[test]
    fn parses_an_openat_path_and_rejects_bad_records() {
        let mut r = record(Syscall::Openat.nr().unwrap(), FD_NONE);
        let p = b"/etc/hostname\0";
        r[field::PATH.start..field::PATH.start + p.len()].copy_from_slice(p);
        r[field::PATH_LEN].copy_from_slice(&(p.len() as u32).to_ne_bytes());
        let e = SyscallEvent::parse(&r).unwrap();
        assert_eq!(e.path.as_deref(), Some("/etc/hostname"));
        assert_eq!(e.fd(), None);
        assert_eq!(e.fd, FdTarget::None);
        assert_eq!(SyscallEvent::parse(&r[..10]), Err(WireError::Length(10)));
        r[field::FD_KIND] = 9;
        assert!(SyscallEvent::parse(&r).is_err());
        let mut s = record(0, FD_SOCKET);
        s[field::PROTOCOL] = 1;
        assert!(SyscallEvent::parse(&s).is_err());
    }

    #[test]
    fn the_table_is_consistent() {
        for &(s, tp, nr) in SYSCALLS {
            assert_eq!(Syscall::from_nr(nr), Some(s), "{tp}");
            assert_eq!(s.nr(), Some(nr));
            assert!(!(s.reads() && s.writes()), "{tp}");
            assert!(tp.starts_with(s.name()), "{tp} vs {}", s.name());
        }
    }

    /// syscalls.h asserts its layout with `_Static_assert` lines; this checks ours agrees.
    #[test]
    fn layout_matches_syscalls_h() {
        let header = include_str!("../../bpf/syscalls.h");
        let mut checked = 0;
        for line in header.lines().filter(|l| l.starts_with("_Static_assert(")) {
            let (lhs, rhs) = line.split_once(" == ").expect("assert has ==");
            let value: usize = rhs.split(',').next().unwrap().trim().parse().unwrap();
            let expect = if lhs.contains("sizeof(struct fss_event)") {
                SYSCALL_EVENT_LEN
            } else {
                match lhs.rsplit(", ").next().unwrap().trim_end_matches(')') {
                    "enter_ns" => field::ENTER_NS.start,
                    "exit_ns" => field::EXIT_NS.start,
                    "ret" => field::RET.start,
                    "args" => field::ARGS.start,
                    "pid" => field::PID.start,
                    "tid" => field::TID.start,
                    "nr" => field::NR.start,
                    "family" => field::FAMILY.start,
                    "fd_kind" => field::FD_KIND,
                    "protocol" => field::PROTOCOL,
                    "saddr" => field::SADDR.start,
                    "daddr" => field::DADDR.start,
                    "sport" => field::SPORT.start,
                    "dport" => field::DPORT.start,
                    "path_len" => field::PATH_LEN.start,
                    "path" => field::PATH.start,
                    other => panic!("syscalls.h asserts an offset wire.rs does not know: {other}"),
                }
            };
            assert_eq!(expect, value, "{line}");
            checked += 1;
        }
        assert_eq!(checked, 17, "every field of the contract is asserted");
        for (v, name) in [
            (FD_NONE, "FSS_FD_NONE"),
            (FD_FILE, "FSS_FD_FILE"),
            (FD_SOCKET, "FSS_FD_SOCKET"),
            (FD_OTHER_SOCKET, "FSS_FD_OTHER_SOCKET"),
        ] {
            assert!(header.contains(&format!("#define {name} {v} ")), "{name}");
        }
        for &(i, _) in SYSCALL_COUNTERS {
            assert!(header.contains(&format!(" {i} /* ")), "counter index {i}");
        }
        assert!(header.contains(&format!("#define FSS_CNT_MAX {}", SYSCALL_COUNTERS.len())));
    }
}
