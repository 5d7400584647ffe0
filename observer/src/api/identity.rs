//! Cilium's reserved security identities for the ends of a flow, as a node without Cilium can
//! tell them: its own addresses are `host`, the other agents' nodes are `remote-node`, the
//! rest is `world`.
//!
//! The numbers and labels are Cilium's (pkg/identity/numericidentity.go:
//! `ReservedIdentityHost = 1`, `ReservedIdentityWorld = 2`, `ReservedIdentityUnmanaged = 3`,
//! `ReservedIdentityRemoteNode = 6`; pkg/labels/labels.go: `IDNameHost = "host"`,
//! `IDNameWorld = "world"`, `IDNameRemoteNode = "remote-node"`, source `reserved`), so the
//! `hubble` CLI prints `host`, `world`, `remote-node` beside the addresses. A pod has no
//! identity here (Cilium would allocate one from its labels through the API server): it is
//! `unmanaged` (3), Cilium's identity for endpoints it does not manage, and carries its
//! namespace label (see [`super::pods`]).

use std::{
    collections::HashSet,
    io,
    net::{IpAddr, Ipv4Addr, Ipv6Addr},
    sync::RwLock,
};

/// The reserved identities flowscope gives.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ReservedIdentity {
    /// Not resolved (flows read from a file, tests): Cilium's `IdentityUnknown` (0).
    #[default]
    Unknown,
    /// An address of this node, or a process on it.
    Host,
    /// An address outside the cluster as far as this node knows.
    World,
    /// A local pod: an endpoint Cilium does not manage.
    Unmanaged,
    /// Another node of the cluster (another agent announced by the peer service).
    RemoteNode,
}

impl ReservedIdentity {
    /// Cilium's numeric identity.
    pub fn id(self) -> u32 {
        match self {
            ReservedIdentity::Unknown => 0,
            ReservedIdentity::Host => 1,
            ReservedIdentity::World => 2,
            ReservedIdentity::Unmanaged => 3,
            ReservedIdentity::RemoteNode => 6,
        }
    }

    /// Cilium's label for the identity (`reserved:host`), `None` for unknown.
    pub fn label(self) -> Option<&'static str> {
        match self {
            ReservedIdentity::Unknown => None,
            ReservedIdentity::Host => Some("reserved:host"),
            ReservedIdentity::World => Some("reserved:world"),
            ReservedIdentity::Unmanaged => Some("reserved:unmanaged"),
            ReservedIdentity::RemoteNode => Some("reserved:remote-node"),
        }
    }
}

/// Cilium's names of its reserved identities 0..=10, by number (pkg/identity
/// `reservedIdentityNames`): what the `hubble` CLI prints for them, in parentheses.
pub const RESERVED_NAMES: [&str; 11] = [
    "unknown",
    "host",
    "world",
    "unmanaged",
    "health",
    "init",
    "remote-node",
    "kube-apiserver",
    "ingress",
    "world-ipv4",
    "world-ipv6",
];

/// A security identity given as a number or a reserved name (`host`, `reserved:host`).
pub fn parse_identity(s: &str) -> Option<u32> {
    let s = s.trim();
    if let Ok(n) = s.parse() {
        return Some(n);
    }
    let name = s.strip_prefix("reserved:").unwrap_or(s);
    RESERVED_NAMES
        .iter()
        .position(|n| *n == name)
        .map(|i| i as u32)
}

/// The addresses this node knows the owners of: its own interfaces' and the other nodes'.
/// Shared by the flow pipeline (reads, per flow) and the refresh task (writes, rarely).
#[derive(Debug, Default)]
pub struct NodeAddresses {
    local: RwLock<HashSet<IpAddr>>,
    remote_nodes: RwLock<HashSet<IpAddr>>,
}

impl NodeAddresses {
    /// Replaces this node's own addresses.
    pub fn set_local(&self, addrs: impl IntoIterator<Item = IpAddr>) {
        let new: HashSet<IpAddr> = addrs.into_iter().map(canonical).collect();
        let mut cur = self.local.write().unwrap_or_else(|e| e.into_inner());
        if *cur != new {
            *cur = new;
        }
    }

    /// Replaces the other nodes' addresses.
    pub fn set_remote_nodes(&self, addrs: impl IntoIterator<Item = IpAddr>) {
        let new: HashSet<IpAddr> = addrs.into_iter().map(canonical).collect();
        let mut cur = self.remote_nodes.write().unwrap_or_else(|e| e.into_inner());
        if *cur != new {
            *cur = new;
        }
    }

    /// Whether `ip` is this node's: an interface address or any loopback address (the whole
    /// of 127.0.0.0/8 answers locally, RFC 1122 §3.2.1.3).
    pub fn is_local(&self, ip: IpAddr) -> bool {
        let ip = canonical(ip);
        ip.is_loopback()
            || self
                .local
                .read()
                .unwrap_or_else(|e| e.into_inner())
                .contains(&ip)
    }

    /// The identity of an address nothing else is known about: `host`, `remote-node` or
    /// `world`.
    pub fn identity_of(&self, ip: IpAddr) -> ReservedIdentity {
        if self.is_local(ip) {
            return ReservedIdentity::Host;
        }
        let remote = self
            .remote_nodes
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .contains(&canonical(ip));
        if remote {
            ReservedIdentity::RemoteNode
        } else {
            ReservedIdentity::World
        }
    }

    /// Reads this node's interface addresses again.
    pub fn refresh_local(&self) {
        match interface_addresses() {
            Ok(addrs) => self.set_local(addrs),
            Err(e) => tracing::warn!(error = %e, "cannot list this node's addresses (getifaddrs)"),
        }
    }
}

/// An IPv4-mapped IPv6 address (`::ffff:a.b.c.d`, RFC 4291 §2.5.5.2, what a dual-stack socket
/// reports) as the IPv4 address it is.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(IpAddr::V6(v6), IpAddr::V4),
        v4 => v4,
    }
}

/// Every address of every interface of this network namespace (the agent runs in the host's),
/// from `getifaddrs(3)`.
pub fn interface_addresses() -> io::Result<Vec<IpAddr>> {
    let mut head: *mut libc::ifaddrs = std::ptr::null_mut();
    // SAFETY: getifaddrs writes a list head we own and free below with freeifaddrs.
    if unsafe { libc::getifaddrs(&mut head) } != 0 {
        return Err(io::Error::last_os_error());
    }
    let mut out = Vec::new();
    let mut cur = head;
    while !cur.is_null() {
        // SAFETY: `cur` is a node of the list getifaddrs returned, not yet freed.
        let ifa = unsafe { &*cur };
        if !ifa.ifa_addr.is_null() {
            // SAFETY: ifa_addr points to a sockaddr whose family says its real type.
            let family = i32::from(unsafe { (*ifa.ifa_addr).sa_family });
            if family == libc::AF_INET {
                // SAFETY: an AF_INET address is a sockaddr_in.
                let sin = unsafe { &*(ifa.ifa_addr as *const libc::sockaddr_in) };
                out.push(IpAddr::V4(Ipv4Addr::from(u32::from_be(
                    sin.sin_addr.s_addr,
                ))));
            } else if family == libc::AF_INET6 {
                // SAFETY: an AF_INET6 address is a sockaddr_in6.
                let sin6 = unsafe { &*(ifa.ifa_addr as *const libc::sockaddr_in6) };
                out.push(IpAddr::V6(Ipv6Addr::from(sin6.sin6_addr.s6_addr)));
            }
        }
        cur = ifa.ifa_next;
    }
    // SAFETY: `head` came from getifaddrs and is freed once.
    unsafe { libc::freeifaddrs(head) };
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn cilium_numbers_and_labels() {
        let table = [
            (ReservedIdentity::Unknown, 0, None),
            (ReservedIdentity::Host, 1, Some("reserved:host")),
            (ReservedIdentity::World, 2, Some("reserved:world")),
            (ReservedIdentity::Unmanaged, 3, Some("reserved:unmanaged")),
            (
                ReservedIdentity::RemoteNode,
                6,
                Some("reserved:remote-node"),
            ),
        ];
        for (id, n, label) in table {
            assert_eq!((id.id(), id.label()), (n, label), "{id:?}");
        }
    }

    #[test]
    fn identities_by_number_or_name() {
        assert_eq!(parse_identity("6"), Some(6));
        assert_eq!(parse_identity("host"), Some(1));
        assert_eq!(parse_identity("reserved:remote-node"), Some(6));
        assert_eq!(parse_identity("12345"), Some(12345));
        assert_eq!(parse_identity("nope"), None);
        for id in [
            ReservedIdentity::Host,
            ReservedIdentity::World,
            ReservedIdentity::Unmanaged,
            ReservedIdentity::RemoteNode,
        ] {
            assert_eq!(parse_identity(id.label().unwrap()), Some(id.id()));
        }
    }

    #[test]
    fn host_remote_node_world() {
        let a = NodeAddresses::default();
        a.set_local([ip("192.0.2.10"), ip("2001:db8::10")]);
        a.set_remote_nodes([ip("192.0.2.11")]);
        let table = [
            ("192.0.2.10", ReservedIdentity::Host),
            ("::ffff:192.0.2.10", ReservedIdentity::Host),
            ("2001:db8::10", ReservedIdentity::Host),
            ("127.0.0.53", ReservedIdentity::Host),
            ("::1", ReservedIdentity::Host),
            ("192.0.2.11", ReservedIdentity::RemoteNode),
            ("198.51.100.7", ReservedIdentity::World),
            ("2001:db8::11", ReservedIdentity::World),
        ];
        for (addr, want) in table {
            assert_eq!(a.identity_of(ip(addr)), want, "{addr}");
        }
        // A node that left is world again.
        a.set_remote_nodes([]);
        assert_eq!(a.identity_of(ip("192.0.2.11")), ReservedIdentity::World);
    }

    #[test]
    fn lists_this_hosts_loopback() {
        let addrs = interface_addresses().unwrap();
        assert!(addrs.contains(&ip("127.0.0.1")), "{addrs:?}");
    }
}
