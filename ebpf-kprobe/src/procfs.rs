//! Owners of sockets that predate the agent, found through /proc.
//!
//! For every network namespace (one representative pid each) the socket tables
//! `/proc/PID/net/{tcp,tcp6,udp,udp6}` give tuple -> socket inode; the `socket:[INODE]` links in
//! `/proc/*/fd` give inode -> pid. One [`ProcSnapshot`] holds both, so many unknown flows in a
//! burst cost one scan.

use std::{
    collections::HashMap,
    fs,
    io::{BufRead, BufReader},
    net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr},
    path::Path,
};

use crate::wire::{SocketTuple, Transport};

/// One row of a /proc/net socket table.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ProcSocket {
    /// Both ends (remote is `0.0.0.0:0` / `[::]:0` for listeners and unconnected UDP).
    pub tuple: SocketTuple,
    /// Socket inode (0 for sockets in TIME_WAIT, which have no owner).
    pub inode: u64,
    /// The `st` column (TCP state number).
    pub state: u8,
}

/// Decodes the kernel's `%08X:%04X` (IPv4) or `%08X%08X%08X%08X:%04X` (IPv6) address column.
///
/// The kernel prints each 32-bit word of the network-order address as a native-endian integer,
/// so on little-endian hosts every word's bytes appear reversed.
pub fn parse_hex_addr(s: &str) -> Option<SocketAddr> {
    let (addr, port) = s.split_once(':')?;
    let port = u16::from_str_radix(port, 16).ok()?;
    let word = |i: usize| -> Option<[u8; 4]> {
        let w = u32::from_str_radix(addr.get(i * 8..i * 8 + 8)?, 16).ok()?;
        Some(w.to_ne_bytes())
    };
    let ip = match addr.len() {
        8 => IpAddr::V4(Ipv4Addr::from(word(0)?)),
        32 => {
            let mut b = [0u8; 16];
            for i in 0..4 {
                b[i * 4..i * 4 + 4].copy_from_slice(&word(i)?);
            }
            IpAddr::V6(Ipv6Addr::from(b))
        }
        _ => return None,
    };
    Some(SocketAddr::new(ip, port))
}

/// Parses a whole `/proc/net/{tcp,udp}{,6}` table (header line skipped, bad lines ignored).
pub fn parse_net_table(text: &str, proto: Transport) -> Vec<ProcSocket> {
    text.lines()
        .skip(1)
        .filter_map(|l| parse_net_row(l, proto))
        .collect()
}

/// Parses one row of a `/proc/net/{tcp,udp}{,6}` table; None for the header and bad lines.
pub fn parse_net_row(line: &str, proto: Transport) -> Option<ProcSocket> {
    // sl local rem st tx:rx tr:when retrnsmt uid timeout inode ...
    let mut f = line.split_whitespace();
    let _sl = f.next()?;
    let local = parse_hex_addr(f.next()?)?;
    let remote = parse_hex_addr(f.next()?)?;
    let state = u8::from_str_radix(f.next()?, 16).ok()?;
    // Skips tx:rx, tr:when, retrnsmt, uid and timeout.
    let inode = f.nth(5)?.parse().ok()?;
    Some(ProcSocket {
        tuple: SocketTuple {
            proto,
            local,
            remote,
        }
        .canonical(),
        state,
        inode,
    })
}

/// Calls `row` for each row of the socket table at `path`, read a line at a time: on a node
/// closing a thousand connections a second the tables hold tens of thousands of TIME_WAIT
/// rows (4 MiB of text, 2.6 MiB parsed, in the 10-minute soak), which read whole made a
/// transient of ~7 MiB in the agent's heap at every scan (BENCHMARKS.md "Soak memory under
/// 50 MB"). Returns false when the file cannot be opened.
fn for_each_net_row(path: &Path, proto: Transport, mut row: impl FnMut(ProcSocket)) -> bool {
    let Ok(file) = fs::File::open(path) else {
        return false;
    };
    let mut rows = BufReader::with_capacity(16 << 10, file);
    let mut line = String::with_capacity(256);
    loop {
        line.clear();
        match rows.read_line(&mut line) {
            Ok(0) | Err(_) => return true,
            Ok(_) => {}
        }
        if let Some(s) = parse_net_row(&line, proto) {
            row(s);
        }
    }
}

/// The inode in a `socket:[12345]` fd link.
pub fn socket_inode(link: &str) -> Option<u64> {
    link.strip_prefix("socket:[")?
        .strip_suffix(']')?
        .parse()
        .ok()
}

/// The inode in a `net:[4026531840]` namespace link.
pub fn ns_inode(link: &str) -> Option<u32> {
    link.split_once(":[")?.1.strip_suffix(']')?.parse().ok()
}

/// A process as /proc describes it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProcProcess {
    /// The pid (a tgid: /proc lists only thread group leaders).
    pub pid: u32,
    /// `/proc/PID/comm`.
    pub comm: String,
    /// cgroup v2 path from `/proc/PID/cgroup`.
    pub cgroup_path: Option<String>,
    /// Network namespace inode.
    pub netns: u32,
}

/// `/proc/PID/comm` of the thread group `pid`: its leader's name, what `ps` shows. None when
/// it has exited.
pub fn read_comm(proc_root: &Path, pid: u32) -> Option<String> {
    let comm = fs::read_to_string(proc_root.join(pid.to_string()).join("comm")).ok()?;
    Some(comm.trim_end_matches('\n').to_string())
}

/// Reads comm, cgroup and netns of `pid`; None when it has exited.
pub fn read_process(proc_root: &Path, pid: u32) -> Option<ProcProcess> {
    let dir = proc_root.join(pid.to_string());
    let comm = fs::read_to_string(dir.join("comm")).ok()?;
    let cgroup_path = fs::read_to_string(dir.join("cgroup"))
        .ok()
        .and_then(|t| crate::cgroup::cgroup2_path_in(&t));
    let netns = fs::read_link(dir.join("ns/net"))
        .ok()
        .and_then(|l| ns_inode(&l.to_string_lossy()))
        .unwrap_or(0);
    Some(ProcProcess {
        pid,
        comm: comm.trim_end_matches('\n').to_string(),
        cgroup_path,
        netns,
    })
}

/// Everything one scan of /proc learned: tuple -> inode for every namespace, inode -> pid.
#[derive(Debug, Default)]
pub struct ProcSnapshot {
    by_tuple: HashMap<SocketTuple, (u64, u32)>,
    owner: HashMap<u64, u32>,
}

impl ProcSnapshot {
    /// Scans `proc_root` (normally `/proc`).
    pub fn scan(proc_root: &Path) -> Self {
        let mut snap = ProcSnapshot::default();
        let mut netns_seen: HashMap<u32, u32> = HashMap::new();
        let Ok(rd) = fs::read_dir(proc_root) else {
            return snap;
        };
        let pids: Vec<u32> = rd
            .flatten()
            .filter_map(|e| e.file_name().to_str()?.parse().ok())
            .collect();
        for &pid in &pids {
            let dir = proc_root.join(pid.to_string());
            if let Some(ns) = fs::read_link(dir.join("ns/net"))
                .ok()
                .and_then(|l| ns_inode(&l.to_string_lossy()))
            {
                netns_seen.entry(ns).or_insert(pid);
            }
            let Ok(fds) = fs::read_dir(dir.join("fd")) else {
                continue;
            };
            for fd in fds.flatten() {
                if let Some(ino) = fs::read_link(fd.path())
                    .ok()
                    .and_then(|l| socket_inode(&l.to_string_lossy()))
                {
                    snap.owner.entry(ino).or_insert(pid);
                }
            }
        }
        for (&ns, &pid) in &netns_seen {
            let net = proc_root.join(pid.to_string()).join("net");
            for (file, proto) in [
                ("tcp", Transport::Tcp),
                ("tcp6", Transport::Tcp),
                ("udp", Transport::Udp),
                ("udp6", Transport::Udp),
            ] {
                for_each_net_row(&net.join(file), proto, |s| {
                    if s.inode != 0 {
                        snap.by_tuple.entry(s.tuple).or_insert((s.inode, ns));
                    }
                });
            }
        }
        snap
    }

    /// The pid owning the socket whose local end is `t.local` (exact tuple first; for UDP also a
    /// socket bound to the local port with no peer).
    pub fn owner_of(&self, t: &SocketTuple) -> Option<(u32, u32)> {
        let t = t.canonical();
        let inode = self.by_tuple.get(&t).copied().or_else(|| {
            let unspec = |a: SocketAddr| match a {
                SocketAddr::V4(_) => SocketAddr::new(Ipv4Addr::UNSPECIFIED.into(), 0),
                SocketAddr::V6(_) => SocketAddr::new(Ipv6Addr::UNSPECIFIED.into(), 0),
            };
            if t.proto != Transport::Udp {
                return None;
            }
            [
                t.local,
                SocketAddr::new(unspec(t.local).ip(), t.local.port()),
            ]
            .into_iter()
            .find_map(|local| {
                self.by_tuple
                    .get(&SocketTuple {
                        proto: t.proto,
                        local,
                        remote: unspec(t.remote),
                    })
                    .copied()
            })
        })?;
        let pid = *self.owner.get(&inode.0)?;
        Some((pid, inode.1))
    }

    /// Sockets found (for tests and logs).
    pub fn len(&self) -> usize {
        self.by_tuple.len()
    }

    /// Whether the scan found no socket at all.
    pub fn is_empty(&self) -> bool {
        self.by_tuple.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_v4_table() {
        let t = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n\
   0: 0100007F:0035 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 12345 1 0000000000000000 100 0 0 10 0\n\
   1: 010012C6:0050 020012C6:D431 01 00000000:00000000 00:00000000 00000000     0        0 777 1 0000000000000000 20 4 30 10 -1\n\
   garbage\n";
        let v = parse_net_table(t, Transport::Tcp);
        assert_eq!(v.len(), 2);
        assert_eq!(v[0].tuple.local, "127.0.0.1:53".parse().unwrap());
        assert_eq!(v[0].tuple.remote, "0.0.0.0:0".parse().unwrap());
        assert_eq!((v[0].state, v[0].inode), (0x0A, 12345));
        assert_eq!(v[1].tuple.local, "198.18.0.1:80".parse().unwrap());
        assert_eq!(v[1].tuple.remote, "198.18.0.2:54321".parse().unwrap());
    }

    #[test]
    fn parses_v6_words_little_endian() {
        if cfg!(target_endian = "big") {
            return;
        }
        // 2001:db8::1 is the bytes 20 01 0d b8 00.. 00 00 00 01; each 4-byte word printed as a
        // little-endian u32: B80D0120 00000000 00000000 01000000.
        let a = parse_hex_addr("B80D0120000000000000000001000000:0050").unwrap();
        assert_eq!(a, "[2001:db8::1]:80".parse().unwrap());
        // ::ffff:127.0.0.1 (v4-mapped) -> words 0, 0, FFFF0000, 0100007F
        let t = "sl local rem st tx rx tr tm retr uid timeout inode\n\
   0: 0000000000000000FFFF00000100007F:1F90 0000000000000000FFFF00000100007F:A000 01 00000000:00000000 00:00000000 00000000 0 0 99 1\n";
        let v = parse_net_table(t, Transport::Tcp);
        assert_eq!(
            v[0].tuple.local,
            "127.0.0.1:8080".parse().unwrap(),
            "mapped -> v4"
        );
        assert_eq!(v[0].tuple.remote, "127.0.0.1:40960".parse().unwrap());
        assert_eq!(parse_hex_addr("zz:0050"), None);
        assert_eq!(parse_hex_addr("0100007F"), None);
        assert_eq!(parse_hex_addr("0100007F0:0050"), None);
    }

    #[test]
    fn reads_a_table_a_row_at_a_time() {
        // More rows than the reader's buffer holds, a TIME_WAIT row (inode 0), a bad line.
        let mut text = String::from("  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n");
        for i in 0..1000u32 {
            text.push_str(&format!(
                "{i:4}: 010012C6:0050 020012C6:{:04X} 01 00000000:00000000 00:00000000 00000000     0        0 {} 1 0000000000000000 20 4 30 10 -1\n",
                10000 + i,
                5000 + i
            ));
        }
        text.push_str("1000: 010012C6:0050 020012C6:0400 06 00000000:00000000 03:00001770 00000000     0        0 0 3 0000000000000000\ngarbage\n");
        let path = std::env::temp_dir().join(format!("fs-procfs-rows-{}", std::process::id()));
        fs::write(&path, &text).unwrap();
        let mut rows = Vec::new();
        assert!(for_each_net_row(&path, Transport::Tcp, |s| rows.push(s)));
        fs::remove_file(&path).unwrap();
        assert_eq!(rows, parse_net_table(&text, Transport::Tcp));
        assert_eq!(rows.len(), 1001);
        assert_eq!((rows[999].inode, rows[999].state), (5999, 0x01));
        assert_eq!((rows[1000].inode, rows[1000].state), (0, 0x06));
        assert!(!for_each_net_row(&path, Transport::Tcp, |_| {}));
    }

    #[test]
    fn parses_links() {
        assert_eq!(socket_inode("socket:[4242]"), Some(4242));
        assert_eq!(socket_inode("pipe:[4242]"), None);
        assert_eq!(socket_inode("/dev/null"), None);
        assert_eq!(ns_inode("net:[4026531840]"), Some(4026531840));
    }

    #[test]
    fn finds_its_own_listener() {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        let c = std::net::TcpStream::connect(addr).unwrap();
        let snap = ProcSnapshot::scan(Path::new("/proc"));
        let me = std::process::id();
        let t = SocketTuple {
            proto: Transport::Tcp,
            local: c.local_addr().unwrap(),
            remote: addr,
        };
        assert_eq!(snap.owner_of(&t).map(|x| x.0), Some(me));
        assert_eq!(
            snap.owner_of(&t.reversed()).map(|x| x.0),
            None,
            "not accepted yet"
        );
        let p = read_process(Path::new("/proc"), me).unwrap();
        assert_eq!(p.pid, me);
        assert!(!p.comm.is_empty());
    }
}
