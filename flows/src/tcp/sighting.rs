//! One packet captured twice is not a retransmission. TC on `lo` sees each packet leave and
//! arrive; a forwarded packet (a pod's, through its veth and the node's uplink) is seen on
//! every interface it crosses. Both sightings carry the same segment, byte for byte, at
//! another capture point microseconds apart, which connection health would otherwise count as
//! the segment sent again (its RTT sample and loss figures with it).
//!
//! A retransmission crosses the same capture points as the original, later: a retransmission
//! timeout is at least 200 ms (RFC 6298 §2.4, Linux's TCP_RTO_MIN), a tail-loss probe at least
//! ~10 ms (RFC 8985 §7.2), and a fast retransmit follows three duplicate ACKs, by which time
//! the side has sent later segments. So the same segment (sequence and acknowledgment numbers,
//! control bits, window, payload length and TSval, RFC 9293 §3.1 / RFC 7323 §3) seen again at
//! another capture point within [`SAME_PACKET_NS`] of its last sighting is the same packet.

use crate::packet::{Direction, TcpInfo};

/// Longest gap between two sightings of one packet at two capture points on one host.
pub const SAME_PACKET_NS: u64 = 1_000_000;

/// The last segment each side sent, as first seen (indexed like the reassemblers).
#[derive(Debug, Default, Clone, Copy)]
pub struct Sightings {
    last: [Option<Sighting>; 2],
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Segment {
    seq: u32,
    ack: u32,
    flags: u8,
    window: u16,
    payload_len: u32,
    tsval: Option<u32>,
}

#[derive(Debug, Clone, Copy)]
struct Sighting {
    segment: Segment,
    point: (u32, Direction),
    at_ns: u64,
}

impl Sightings {
    /// Whether `tcp` (with `payload_len` payload bytes on the wire), sent by side `side`
    /// (0 or 1) and captured at `(ifindex, direction)` at `at_ns`, is the packet last seen
    /// from that side at another capture point: then it is not a new segment. Otherwise it
    /// becomes that side's last segment.
    pub fn is_again(
        &mut self,
        side: usize,
        tcp: &TcpInfo,
        payload_len: u32,
        point: (u32, Direction),
        at_ns: u64,
    ) -> bool {
        let segment = Segment {
            seq: tcp.seq,
            ack: tcp.ack,
            flags: tcp.flags.0,
            window: tcp.window,
            payload_len,
            tsval: tcp.timestamps.map(|(v, _)| v),
        };
        let last = &mut self.last[side & 1];
        let again = last.is_some_and(|l| {
            l.segment == segment
                && l.point != point
                && at_ns.saturating_sub(l.at_ns) <= SAME_PACKET_NS
        });
        if !again {
            *last = Some(Sighting {
                segment,
                point,
                at_ns,
            });
        }
        again
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::packet::TcpFlags;

    fn seg(seq: u32, tsval: u32) -> TcpInfo {
        TcpInfo {
            src_port: 40000,
            dst_port: 80,
            seq,
            ack: 7,
            flags: TcpFlags::ACK,
            window: 512,
            window_scale: None,
            timestamps: Some((tsval, 3)),
        }
    }

    const LO_OUT: (u32, Direction) = (1, Direction::Egress);
    const LO_IN: (u32, Direction) = (1, Direction::Ingress);
    const ETH0_OUT: (u32, Direction) = (2, Direction::Egress);

    #[test]
    fn loopbacks_two_sightings_are_one_packet() {
        let mut s = Sightings::default();
        assert!(!s.is_again(0, &seg(100, 5), 10, LO_OUT, 1_000));
        assert!(s.is_again(0, &seg(100, 5), 10, LO_IN, 1_020));
        // The other side's segments are its own.
        assert!(!s.is_again(1, &seg(100, 5), 10, LO_IN, 1_030));
        // The next segment is new.
        assert!(!s.is_again(0, &seg(110, 5), 10, LO_OUT, 2_000));
    }

    #[test]
    fn a_forwarded_packet_seen_on_three_interfaces_is_one_packet() {
        let mut s = Sightings::default();
        assert!(!s.is_again(0, &seg(100, 5), 10, (7, Direction::Ingress), 0));
        assert!(s.is_again(0, &seg(100, 5), 10, (8, Direction::Egress), 30_000));
        assert!(s.is_again(0, &seg(100, 5), 10, ETH0_OUT, 60_000));
    }

    #[test]
    fn a_retransmission_is_not_a_second_sighting() {
        let mut s = Sightings::default();
        assert!(!s.is_again(0, &seg(100, 5), 10, LO_OUT, 0));
        assert!(s.is_again(0, &seg(100, 5), 10, LO_IN, 10_000));
        // Sent again 200 ms later at the first capture point: the same bytes, even the same
        // TSval (a sender without timestamps), but too late to be the same packet.
        assert!(!s.is_again(0, &seg(100, 5), 10, LO_OUT, 200_000_000));
        assert!(s.is_again(0, &seg(100, 5), 10, LO_IN, 200_010_000));
        // Another TSval is another packet.
        assert!(!s.is_again(0, &seg(100, 6), 10, LO_IN, 200_030_000));
        // At the capture point it was last seen at: not the same packet.
        assert!(!s.is_again(0, &seg(100, 6), 10, LO_IN, 200_040_000));
    }
}
