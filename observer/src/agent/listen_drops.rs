//! SYNs dropped at TCP listeners whose accept queue is full, per listener, from sock_diag.
//!
//! The kernel frees such a SYN with consume_skb, as if handled (tcp_conn_request: "goto drop";
//! tcp_rcv_state_process: consume_skb), so the kfree_skb tracepoint never sees it, and no
//! tracepoint fires on that path: reporting each one takes a hook on tcp_conn_request (the
//! fentry program in drops.bpf.c, where the kernel allows BPF trampolines; this one has no
//! ftrace). What every kernel keeps is the listener's own drop count: tcp_listendrop() adds
//! one to the socket's sk_drops (and to the namespace's ListenDrops) for each SYN or
//! handshake-completing ACK a listener refused (full accept queue: ListenOverflows; full SYN
//! queue without syncookies; no memory). sock_diag (NETLINK_SOCK_DIAG, the interface of
//! `ss -ltm`, its `d` field) reads it per listener, for the agent's network namespace.

use std::{
    collections::BTreeMap,
    io,
    net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr},
};

/// Listeners reported in status by port, at most: the busiest first.
pub const MAX_LISTENERS_REPORTED: usize = 16;

/// One listening socket's queue and drops.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listener {
    /// Its local address.
    pub local: SocketAddr,
    /// Connections waiting in its accept queue.
    pub queued: u32,
    /// Its accept queue's limit (the listen() backlog, capped by somaxconn).
    pub backlog: u32,
    /// SYNs and handshake ACKs it refused (sk_drops; see the module docs).
    pub drops: u32,
}

// linux/netlink.h, linux/sock_diag.h, linux/inet_diag.h
const NETLINK_SOCK_DIAG: i32 = 4;
const SOCK_DIAG_BY_FAMILY: u16 = 20;
const NLM_F_REQUEST: u16 = 1;
const NLM_F_DUMP: u16 = 0x300;
const NLMSG_ERROR: u16 = 2;
const NLMSG_DONE: u16 = 3;
const TCP_LISTEN: u32 = 10;
const INET_DIAG_SKMEMINFO: u16 = 7;
const SK_MEMINFO_DROPS: usize = 8;
/// `sizeof(struct inet_diag_msg)`.
const DIAG_MSG_LEN: usize = 72;

/// The request: nlmsghdr (16 bytes) + inet_diag_req_v2 (56 bytes).
fn request(family: u8) -> [u8; 72] {
    let mut r = [0u8; 72];
    r[0..4].copy_from_slice(&72u32.to_ne_bytes());
    r[4..6].copy_from_slice(&SOCK_DIAG_BY_FAMILY.to_ne_bytes());
    r[6..8].copy_from_slice(&(NLM_F_REQUEST | NLM_F_DUMP).to_ne_bytes());
    r[8..12].copy_from_slice(&1u32.to_ne_bytes());
    r[16] = family;
    r[17] = libc::IPPROTO_TCP as u8;
    r[18] = 1 << (INET_DIAG_SKMEMINFO - 1);
    r[20..24].copy_from_slice(&(1u32 << TCP_LISTEN).to_ne_bytes());
    r
}

/// Parses one inet_diag_msg and its attributes.
fn parse_listener(m: &[u8]) -> Option<Listener> {
    if m.len() < DIAG_MSG_LEN {
        return None;
    }
    let u32_at = |o: usize| u32::from_ne_bytes(m[o..o + 4].try_into().expect("4 bytes"));
    let port = u16::from_be_bytes([m[4], m[5]]);
    let ip = match i32::from(m[0]) {
        libc::AF_INET => IpAddr::V4(Ipv4Addr::new(m[8], m[9], m[10], m[11])),
        libc::AF_INET6 => IpAddr::V6(Ipv6Addr::from(
            <[u8; 16]>::try_from(&m[8..24]).expect("16 bytes"),
        )),
        _ => return None,
    };
    let mut drops = 0;
    let mut off = DIAG_MSG_LEN;
    while off + 4 <= m.len() {
        let len = usize::from(u16::from_ne_bytes([m[off], m[off + 1]]));
        let kind = u16::from_ne_bytes([m[off + 2], m[off + 3]]);
        if len < 4 || off + len > m.len() {
            break;
        }
        let at = off + 4 + SK_MEMINFO_DROPS * 4;
        if kind == INET_DIAG_SKMEMINFO && at + 4 <= off + len {
            drops = u32::from_ne_bytes(m[at..at + 4].try_into().expect("4 bytes"));
        }
        off += (len + 3) & !3;
    }
    Some(Listener {
        local: SocketAddr::new(ip, port),
        queued: u32_at(56),
        backlog: u32_at(60),
        drops,
    })
}

/// Parses a dump's messages; `Ok(true)` at its end.
fn parse_messages(buf: &[u8], out: &mut Vec<Listener>) -> io::Result<bool> {
    let mut off = 0;
    while off + 16 <= buf.len() {
        let len = u32::from_ne_bytes(buf[off..off + 4].try_into().expect("4 bytes")) as usize;
        let kind = u16::from_ne_bytes([buf[off + 4], buf[off + 5]]);
        if len < 16 || off + len > buf.len() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("sock_diag message of {len} bytes at {off} of {}", buf.len()),
            ));
        }
        match kind {
            NLMSG_DONE => return Ok(true),
            NLMSG_ERROR => {
                let errno = buf
                    .get(off + 16..off + 20)
                    .map_or(0, |b| i32::from_ne_bytes(b.try_into().expect("4 bytes")));
                return Err(io::Error::from_raw_os_error(-errno));
            }
            SOCK_DIAG_BY_FAMILY => out.extend(parse_listener(&buf[off + 16..off + len])),
            _ => {}
        }
        off += (len + 3) & !3;
    }
    Ok(false)
}

/// The TCP listeners of this network namespace, IPv4 and IPv6.
pub fn listeners() -> io::Result<Vec<Listener>> {
    // SAFETY: plain socket calls on a descriptor this function owns and closes.
    let fd = unsafe {
        libc::socket(
            libc::AF_NETLINK,
            libc::SOCK_DGRAM | libc::SOCK_CLOEXEC,
            NETLINK_SOCK_DIAG,
        )
    };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    let result = (|| {
        let mut out = Vec::new();
        for family in [libc::AF_INET as u8, libc::AF_INET6 as u8] {
            let req = request(family);
            // SAFETY: `req` is a live buffer of its length; the kernel is the destination
            // (a zeroed sockaddr_nl).
            let sent = unsafe {
                let mut addr: libc::sockaddr_nl = std::mem::zeroed();
                addr.nl_family = libc::AF_NETLINK as u16;
                libc::sendto(
                    fd,
                    req.as_ptr().cast(),
                    req.len(),
                    0,
                    (&addr as *const libc::sockaddr_nl).cast(),
                    std::mem::size_of::<libc::sockaddr_nl>() as u32,
                )
            };
            if sent < 0 {
                return Err(io::Error::last_os_error());
            }
            let mut buf = vec![0u8; 32 << 10];
            loop {
                // SAFETY: `buf` is a live buffer of its length.
                let n = unsafe { libc::recv(fd, buf.as_mut_ptr().cast(), buf.len(), 0) };
                if n < 0 {
                    return Err(io::Error::last_os_error());
                }
                if parse_messages(&buf[..n as usize], &mut out)? || n == 0 {
                    break;
                }
            }
        }
        Ok(out)
    })();
    // SAFETY: closes the descriptor opened above, once.
    unsafe { libc::close(fd) };
    result
}

/// Status counters: `tcp_listen_drops` (all listeners) and `tcp_listen_drops_port_<port>`
/// for up to [`MAX_LISTENERS_REPORTED`] ports with drops (IPv4 and IPv6 listeners of a port
/// together), or `tcp_listen_drops_unavailable` when sock_diag can't be read.
pub fn listen_drop_counters() -> Vec<(String, u64)> {
    match listeners() {
        Ok(l) => counters_of(&l),
        Err(_) => vec![("tcp_listen_drops_unavailable".into(), 1)],
    }
}

fn counters_of(listeners: &[Listener]) -> Vec<(String, u64)> {
    let mut by_port: BTreeMap<u16, u64> = BTreeMap::new();
    for l in listeners.iter().filter(|l| l.drops > 0) {
        *by_port.entry(l.local.port()).or_default() += u64::from(l.drops);
    }
    let total: u64 = by_port.values().sum();
    let mut ports: Vec<(u16, u64)> = by_port.into_iter().collect();
    ports.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    let mut out = vec![("tcp_listen_drops".to_string(), total)];
    out.extend(
        ports
            .into_iter()
            .take(MAX_LISTENERS_REPORTED)
            .map(|(p, d)| (format!("tcp_listen_drops_port_{p}"), d)),
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An inet_diag_msg for 0.0.0.0:8080 with a SKMEMINFO attribute.
    fn message(drops: u32) -> Vec<u8> {
        let mut m = vec![0u8; DIAG_MSG_LEN];
        m[0] = libc::AF_INET as u8;
        m[1] = TCP_LISTEN as u8;
        m[4..6].copy_from_slice(&8080u16.to_be_bytes());
        m[56..60].copy_from_slice(&2u32.to_ne_bytes());
        m[60..64].copy_from_slice(&1u32.to_ne_bytes());
        let mut attr = vec![0u8; 4 + 9 * 4];
        let len = attr.len() as u16;
        attr[0..2].copy_from_slice(&len.to_ne_bytes());
        attr[2..4].copy_from_slice(&INET_DIAG_SKMEMINFO.to_ne_bytes());
        attr[4 + 32..4 + 36].copy_from_slice(&drops.to_ne_bytes());
        m.extend(attr);
        m
    }

    #[test]
    fn a_listener_with_its_queue_and_drops() {
        let l = parse_listener(&message(7)).unwrap();
        assert_eq!(l.local, "0.0.0.0:8080".parse().unwrap());
        assert_eq!((l.queued, l.backlog, l.drops), (2, 1, 7));
        assert!(parse_listener(&[0u8; 10]).is_none());
    }

    #[test]
    fn a_dump_ends_at_done_and_reports_errors() {
        let mut buf = Vec::new();
        let m = message(3);
        buf.extend(((16 + m.len()) as u32).to_ne_bytes());
        buf.extend(SOCK_DIAG_BY_FAMILY.to_ne_bytes());
        buf.extend([0u8; 10]);
        buf.extend(&m);
        buf.extend(20u32.to_ne_bytes());
        buf.extend(NLMSG_DONE.to_ne_bytes());
        buf.extend([0u8; 14]);
        let mut out = Vec::new();
        assert!(parse_messages(&buf, &mut out).unwrap());
        assert_eq!(out.len(), 1);
        let mut err = Vec::new();
        err.extend(20u32.to_ne_bytes());
        err.extend(NLMSG_ERROR.to_ne_bytes());
        err.extend([0u8; 10]);
        err.extend((-libc::EPERM).to_ne_bytes());
        assert!(parse_messages(&err, &mut Vec::new()).is_err());
    }

    #[test]
    fn counters_by_port_busiest_first_and_bounded() {
        let l = |port: u16, drops| Listener {
            local: SocketAddr::new(Ipv4Addr::UNSPECIFIED.into(), port),
            queued: 0,
            backlog: 1,
            drops,
        };
        let mut all = vec![l(80, 2), l(443, 0), l(8080, 5), l(80, 1)];
        let c = counters_of(&all);
        assert_eq!(
            c,
            vec![
                ("tcp_listen_drops".to_string(), 8),
                ("tcp_listen_drops_port_8080".to_string(), 5),
                ("tcp_listen_drops_port_80".to_string(), 3),
            ]
        );
        all = (1..100).map(|p| l(p, 1)).collect();
        assert_eq!(counters_of(&all).len(), 1 + MAX_LISTENERS_REPORTED);
    }

    /// The real thing, in this process's namespace (needs no privilege).
    #[test]
    fn reads_this_namespaces_listeners() {
        let sock = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = sock.local_addr().unwrap().port();
        let found = listeners().unwrap();
        assert!(
            found.iter().any(|l| l.local.port() == port),
            "{port} not in {found:?}"
        );
    }
}
