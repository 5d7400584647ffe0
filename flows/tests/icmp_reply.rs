//! `is_reply` of ICMP messages follows their type (RFC 792, RFC 4443 §4, RFC 4861 §4), not
//! which end sent the flow's first packet.

mod support;

use etherparse::PacketBuilder;
use flows::engine::{Engine, EngineConfig, L4Records};
use flows::packet::Direction;
use flows::record::{Layer4, Record};
use flows::synth::SynthFrame;
use support::*;

const A: [u8; 16] = [0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1];
const B: [u8; 16] = [0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2];

fn icmpv6(src: [u8; 16], dst: [u8; 16], icmp_type: u8, ts_ns: u64) -> SynthFrame {
    let mut data = Vec::new();
    PacketBuilder::ethernet2([1; 6], [2; 6])
        .ipv6(src, dst, 255)
        .icmpv6_raw(icmp_type, 0, [0; 4])
        .write(&mut data, &[0; 20])
        .unwrap();
    SynthFrame {
        ts_ns,
        data,
        direction: if src == A {
            Direction::Egress
        } else {
            Direction::Ingress
        },
    }
}

/// `(type, is_reply)` of every ICMPv6 record.
fn replies(frames: &[SynthFrame]) -> Vec<(u8, Option<bool>)> {
    let mut e = Engine::new(EngineConfig {
        l4_records: L4Records::EveryPacket,
        ..EngineConfig::default()
    });
    run(&mut e, frames)
        .into_iter()
        .filter_map(|r| match r {
            Record::Flow(f) => match f.l4 {
                Layer4::Icmpv6 { r#type, .. } => Some((r#type, f.is_reply)),
                _ => None,
            },
            _ => None,
        })
        .collect()
}

#[test]
fn echo_after_neighbour_discovery_from_the_peer_is_a_request() {
    // B checks A's address first (unicast NS, A answers NA), then A pings B.
    let frames = [
        icmpv6(B, A, 135, 1_000),
        icmpv6(A, B, 136, 2_000),
        icmpv6(A, B, 128, 3_000),
        icmpv6(B, A, 129, 4_000),
    ];
    assert_eq!(
        replies(&frames),
        [
            (135, Some(false)),
            (136, Some(true)),
            (128, Some(false)),
            (129, Some(true))
        ]
    );
}

#[test]
fn a_flow_first_seen_at_a_reply_makes_its_sender_the_server() {
    // Joined mid-way: the echo reply comes first; an error message after it goes the
    // flow's reply way (from the server).
    let frames = [
        icmpv6(B, A, 129, 1_000),
        icmpv6(A, B, 128, 2_000),
        icmpv6(B, A, 1, 3_000),
    ];
    assert_eq!(
        replies(&frames),
        [(129, Some(true)), (128, Some(false)), (1, Some(true))]
    );
}
