//! Flow keys: a normalised 5-tuple naming one conversation whichever way a packet goes.
//!
//! The interface index is deliberately not part of the key: one connection is seen on several
//! interfaces (both ends of a veth, a bridge and its port), and it must land in one flow entry.
//! A copy of the same segment seen on the second interface then looks like a retransmit to the
//! reassembler and is dropped there, which is what de-duplicates it.

use std::net::IpAddr;

use serde::{Deserialize, Serialize};

use crate::packet::Packet;

/// One end of a conversation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Endpoint {
    /// IP address.
    pub addr: IpAddr,
    /// Port (0 for protocols without ports).
    pub port: u16,
}

impl std::fmt::Display for Endpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.addr {
            IpAddr::V4(a) => write!(f, "{a}:{}", self.port),
            IpAddr::V6(a) => write!(f, "[{a}]:{}", self.port),
        }
    }
}

/// Which of the key's two endpoints a packet came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Side {
    /// The packet's source is [`FlowKey::lo`].
    Lo,
    /// The packet's source is [`FlowKey::hi`].
    Hi,
}

impl Side {
    /// The other side.
    pub fn other(self) -> Self {
        match self {
            Self::Lo => Self::Hi,
            Self::Hi => Self::Lo,
        }
    }

    /// 0 for `Lo`, 1 for `Hi`: an index into per-direction arrays.
    pub fn index(self) -> usize {
        self as usize
    }
}

/// A normalised 5-tuple: `lo <= hi`, so both directions of a conversation share one key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct FlowKey {
    /// IP protocol number (6 TCP, 17 UDP, ...).
    pub protocol: u8,
    /// The smaller endpoint.
    pub lo: Endpoint,
    /// The larger endpoint.
    pub hi: Endpoint,
}

impl FlowKey {
    /// The key of the packet's conversation and which side sent the packet.
    pub fn from_packet(packet: &Packet<'_>) -> (Self, Side) {
        let (sp, dp) = packet.ports().unwrap_or((0, 0));
        let src = Endpoint {
            addr: packet.src,
            port: sp,
        };
        let dst = Endpoint {
            addr: packet.dst,
            port: dp,
        };
        Self::new(packet.ip_protocol(), src, dst)
    }

    /// Normalises `src -> dst` into a key and the sender's side.
    pub fn new(protocol: u8, src: Endpoint, dst: Endpoint) -> (Self, Side) {
        if src <= dst {
            (
                Self {
                    protocol,
                    lo: src,
                    hi: dst,
                },
                Side::Lo,
            )
        } else {
            (
                Self {
                    protocol,
                    lo: dst,
                    hi: src,
                },
                Side::Hi,
            )
        }
    }

    /// The endpoint on `side`.
    pub fn endpoint(&self, side: Side) -> Endpoint {
        match side {
            Side::Lo => self.lo,
            Side::Hi => self.hi,
        }
    }

    /// Guesses which side is the server when the connection's start was not seen: a port
    /// below 1024 (IANA system ports, RFC 6335 §6) wins, then a port outside the Linux
    /// ephemeral range (32768-60999), then the lower port.
    pub fn guess_server_side(&self) -> Side {
        let rank = |p: u16| -> u8 {
            if p < 1024 {
                0
            } else if !(32768..=60999).contains(&p) {
                1
            } else {
                2
            }
        };
        let (l, h) = (self.lo.port, self.hi.port);
        match rank(l).cmp(&rank(h)) {
            std::cmp::Ordering::Less => Side::Lo,
            std::cmp::Ordering::Greater => Side::Hi,
            std::cmp::Ordering::Equal if h < l => Side::Hi,
            std::cmp::Ordering::Equal => Side::Lo,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ep(s: &str, port: u16) -> Endpoint {
        Endpoint {
            addr: s.parse().unwrap(),
            port,
        }
    }

    #[test]
    fn both_directions_share_a_key() {
        let (k1, s1) = FlowKey::new(6, ep("198.18.0.2", 51234), ep("198.18.0.1", 80));
        let (k2, s2) = FlowKey::new(6, ep("198.18.0.1", 80), ep("198.18.0.2", 51234));
        assert_eq!(k1, k2);
        assert_eq!(s1, s2.other());
        assert_eq!(k1.endpoint(s1), ep("198.18.0.2", 51234));
    }

    #[test]
    fn server_guess_prefers_well_known_ports() {
        let (k, _) = FlowKey::new(6, ep("198.18.0.2", 51234), ep("198.18.0.1", 80));
        assert_eq!(k.endpoint(k.guess_server_side()).port, 80);
        let (k, _) = FlowKey::new(6, ep("198.18.0.1", 8080), ep("198.18.0.2", 45000));
        assert_eq!(k.endpoint(k.guess_server_side()).port, 8080);
        let (k, _) = FlowKey::new(6, ep("198.18.0.1", 9000), ep("198.18.0.2", 8000));
        assert_eq!(k.endpoint(k.guess_server_side()).port, 8000);
    }
}
