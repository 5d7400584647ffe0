//! IP fragment reassembly through the engine (RFC 791 §3.2, RFC 8200 §4.5): golden tests on
//! the hand-built F4 captures in `shared/fieldcases/kinds` (see its README for what each holds
//! and how `make.py` made it), and generated fragment sets in every order.

mod support;

use std::net::IpAddr;

use etherparse::PacketBuilder;
use flows::counters::Counters;
use flows::engine::{Engine, EngineConfig, L4Records};
use flows::ip::{CapturePoint, Fragment, IpReassembler, ReassemblyLimits};
use flows::packet::{decode_ip, CaptureMeta, DecodeError, Direction, LinkType};
use flows::record::{L7Record, L7Type, Record};
use proptest::prelude::*;
use support::replay_fieldcase;

/// `(query, rcode, answer addresses)` of every DNS response record.
type DnsResponse = (String, Option<u16>, Vec<IpAddr>);

fn engine() -> Engine {
    Engine::new(EngineConfig {
        l4_records: L4Records::Off,
        id_seed: 1,
        ..EngineConfig::default()
    })
}

fn drain(e: &mut Engine, out: &mut Vec<Record>) {
    while let Some(r) = e.poll_record() {
        out.push(r);
    }
}

fn dns_responses(records: &[Record]) -> Vec<DnsResponse> {
    records
        .iter()
        .filter_map(|r| match r {
            Record::Flow(f) => {
                let l7 = f.l7.as_ref()?;
                match (&l7.record, l7.r#type) {
                    (L7Record::Dns(d), L7Type::Response) => {
                        Some((d.query.clone(), d.rcode, d.ips.clone()))
                    }
                    _ => None,
                }
            }
            _ => None,
        })
        .collect()
}

fn v4_range(prefix: [u8; 3], n: u8) -> Vec<IpAddr> {
    (1..=n)
        .map(|i| IpAddr::from([prefix[0], prefix[1], prefix[2], i]))
        .collect()
}

fn v6_range(third: u16, n: u16) -> Vec<IpAddr> {
    (1..=n)
        .map(|i| IpAddr::from([0x2001, 0xdb8, third, 0, 0, 0, 0, i]))
        .collect()
}

#[test]
fn f4_dns_udp_ipv4_fragments() {
    let (records, c) = replay_fieldcase("kinds", "F4-dns-udp-ipv4-fragments.pcap");
    assert_eq!(
        dns_responses(&records),
        vec![
            (
                "pool.example.org.".into(),
                Some(0),
                v4_range([198, 18, 6], 40)
            ),
            ("pool6.example.org.".into(), Some(0), v6_range(6, 0x30)),
        ]
    );
    assert_eq!((c.decode_ip_fragment, c.ip_frag_reassembled), (5, 2));
    assert_eq!((c.dns_unanswered, c.dns_parse_errors), (0, 0));
    assert_eq!(c.ip_frag_reassembled_snapped, 0);
}

#[test]
fn f4_dns_udp_ipv6_fragments() {
    let (records, c) = replay_fieldcase("kinds", "F4-dns-udp-ipv6-fragments.pcap");
    assert_eq!(
        dns_responses(&records),
        vec![
            ("pool6.example.org.".into(), Some(0), v6_range(7, 0x3c)),
            (
                "pool.example.org.".into(),
                Some(0),
                v4_range([198, 18, 7], 64)
            ),
        ]
    );
    assert_eq!((c.decode_ip_fragment, c.ip_frag_reassembled), (4, 2));
    assert_eq!((c.dns_unanswered, c.dns_parse_errors), (0, 0));
}

#[test]
fn f4_fragment_first_missing() {
    let (records, c) = replay_fieldcase("kinds", "F4-fragment-first-missing.pcap");
    // Orphans never decode: a later fragment has no UDP header, a lone first fragment is not
    // a datagram. The ordinary lookup after them does.
    assert_eq!(
        dns_responses(&records),
        vec![(
            "after.example.org.".into(),
            Some(0),
            vec!["198.18.8.99".parse().unwrap()]
        )]
    );
    assert_eq!(c.decode_ip_fragment, 3);
    assert_eq!(c.ip_frag_reassembled, 0);
    assert_eq!(c.dns_unanswered, 3);
    assert_eq!(
        c.ip_frag_dropped_incomplete_at_flush + c.ip_frag_dropped_timeout,
        3,
        "each orphan is counted once: {c:?}"
    );
}

// -------------------------------------------------------------------------------------------
// Generated fragment sets.

const CLIENT4: [u8; 4] = [198, 18, 0, 2];
const SERVER4: [u8; 4] = [198, 18, 0, 53];
const CLIENT6: [u8; 16] = [0x20, 1, 0xd, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2];
const SERVER6: [u8; 16] = [0x20, 1, 0xd, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x53];

/// A DNS query for big.test A with id `id`.
fn query(id: u16) -> Vec<u8> {
    let mut q = id.to_be_bytes().to_vec();
    q.extend_from_slice(&[0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0]);
    q.extend_from_slice(b"\x03big\x04test\x00\x00\x01\x00\x01");
    q
}

/// Its answer with `n` addresses 198.18.9.1..=n (16 bytes each, so it needs fragments).
fn answer(id: u16, n: u8) -> Vec<u8> {
    let mut r = id.to_be_bytes().to_vec();
    r.extend_from_slice(&[0x81, 0x80, 0, 1, 0, n, 0, 0, 0, 0]);
    r.extend_from_slice(b"\x03big\x04test\x00\x00\x01\x00\x01");
    for i in 1..=n {
        r.extend_from_slice(&[0xc0, 12, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4, 198, 18, 9, i]);
    }
    r
}

fn udp_v4(src: [u8; 4], sport: u16, dst: [u8; 4], dport: u16, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    PacketBuilder::ipv4(src, dst, 64)
        .udp(sport, dport)
        .write(&mut out, payload)
        .unwrap();
    out
}

fn udp_v6(src: [u8; 16], sport: u16, dst: [u8; 16], dport: u16, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    PacketBuilder::ipv6(src, dst, 64)
        .udp(sport, dport)
        .write(&mut out, payload)
        .unwrap();
    out
}

/// Cuts an IPv4 packet into fragments of `size` data bytes (a multiple of 8), RFC 791 §3.2.
fn fragment_v4(packet: &[u8], id: u16, size: usize) -> Vec<Vec<u8>> {
    let hl = usize::from(packet[0] & 0x0f) * 4;
    let data = &packet[hl..];
    data.chunks(size)
        .enumerate()
        .map(|(i, chunk)| {
            let mut f = packet[..hl].to_vec();
            f[2..4].copy_from_slice(&((hl + chunk.len()) as u16).to_be_bytes());
            f[4..6].copy_from_slice(&id.to_be_bytes());
            let more = (i + 1) * size < data.len();
            let fo = ((i * size / 8) as u16) | if more { 0x2000 } else { 0 };
            f[6..8].copy_from_slice(&fo.to_be_bytes());
            f.extend_from_slice(chunk);
            f
        })
        .collect()
}

/// Cuts an IPv6 packet into fragments of `size` data bytes with `exts` (chained, the first
/// named by `first`, the last naming 44) as the Unfragmentable Part, RFC 8200 §4.5.
fn fragment_v6(packet: &[u8], first: u8, exts: &[u8], id: u32, size: usize) -> Vec<Vec<u8>> {
    let next = packet[6];
    let data = &packet[40..];
    data.chunks(size)
        .enumerate()
        .map(|(i, chunk)| {
            let mut f = packet[..40].to_vec();
            f[6] = first;
            f[4..6].copy_from_slice(&((exts.len() + 8 + chunk.len()) as u16).to_be_bytes());
            f.extend_from_slice(exts);
            let more = (i + 1) * size < data.len();
            let om = ((i * size) as u16 & 0xfff8) | u16::from(more);
            f.extend_from_slice(&[next, 0]);
            f.extend_from_slice(&om.to_be_bytes());
            f.extend_from_slice(&id.to_be_bytes());
            f.extend_from_slice(chunk);
            f
        })
        .collect()
}

/// Feeds the query, then the answer's fragments in `order`, at 1 ms steps; flushes.
fn run_exchange(
    e: &mut Engine,
    query: &[u8],
    fragments: &[Vec<u8>],
    order: &[usize],
) -> Vec<Record> {
    let mut out = Vec::new();
    let meta = |ts, direction| CaptureMeta {
        ts_ns: ts,
        direction,
        ..Default::default()
    };
    e.handle_frame(
        1_000_000,
        LinkType::RawIp,
        query,
        meta(1_000_000, Direction::Egress),
    )
    .unwrap();
    for (n, &i) in order.iter().enumerate() {
        let ts = 2_000_000 + n as u64 * 1_000_000;
        e.handle_frame(
            ts,
            LinkType::RawIp,
            &fragments[i],
            meta(ts, Direction::Ingress),
        )
        .unwrap();
        e.handle_timeout(ts);
        drain(e, &mut out);
    }
    e.flush(1_000_000_000);
    drain(e, &mut out);
    out
}

fn big_test(n: u8) -> Vec<DnsResponse> {
    let ips = (1..=n).map(|i| IpAddr::from([198, 18, 9, i])).collect();
    vec![("big.test.".into(), Some(0), ips)]
}

#[test]
fn ipv4_fragments_in_any_order_decode_as_the_whole_datagram() {
    let q = udp_v4(CLIENT4, 40001, SERVER4, 53, &query(7));
    let a = udp_v4(SERVER4, 53, CLIENT4, 40001, &answer(7, 60));
    let frags = fragment_v4(&a, 0x1234, 256);
    assert_eq!(frags.len(), 4);
    for order in [[0, 1, 2, 3], [3, 2, 1, 0], [2, 0, 3, 1], [1, 3, 0, 2]] {
        let mut e = engine();
        let records = run_exchange(&mut e, &q, &frags, &order);
        assert_eq!(dns_responses(&records), big_test(60), "{order:?}");
        let c = e.counters();
        assert_eq!(
            (c.ip_frag_reassembled, c.packets, c.dns_unanswered),
            (1, 2, 0)
        );
        // Bytes: every fragment's IP length (the wire), the datagram not counted again.
        let wire: usize = frags.iter().map(Vec::len).sum();
        assert_eq!(c.ip_bytes_ingress, wire as u64);
        assert_eq!(e.ip_fragment_bytes(), 0);
    }
}

#[test]
fn ipv6_fragments_after_other_extension_headers() {
    let q = udp_v6(CLIENT6, 40002, SERVER6, 53, &query(8));
    let a = udp_v6(SERVER6, 53, CLIENT6, 40002, &answer(8, 60));
    // Hop-by-Hop (PadN) then Destination Options (PadN) before the Fragment header (RFC 8200
    // §4.1 order): both stay in the reassembled packet.
    let exts = [60, 0, 1, 4, 0, 0, 0, 0, 44, 0, 1, 4, 0, 0, 0, 0];
    let frags = fragment_v6(&a, 0, &exts, 0x000a_6301, 400);
    assert_eq!(frags.len(), 3);
    for order in [[2, 1, 0], [0, 2, 1], [1, 0, 2]] {
        let mut e = engine();
        let records = run_exchange(&mut e, &q, &frags, &order);
        assert_eq!(dns_responses(&records), big_test(60), "{order:?}");
        assert_eq!(e.counters().ip_frag_reassembled, 1);
    }
}

#[test]
fn overlapping_fragments_lose_the_datagram_not_the_next_one() {
    let q = udp_v4(CLIENT4, 40003, SERVER4, 53, &query(9));
    let a = udp_v4(SERVER4, 53, CLIENT4, 40003, &answer(9, 60));
    let mut frags = fragment_v4(&a, 0x2222, 256);
    // A forged fragment covering the middle of two real ones (RFC 5722 / "teardrop").
    frags.push(fragment_v4(&a, 0x2222, 128)[3].clone()); // bytes 384..512, MF set

    let mut e = engine();
    let records = run_exchange(&mut e, &q, &frags, &[0, 4, 1, 2, 3]);
    assert!(dns_responses(&records).is_empty());
    let c = e.counters().clone();
    assert_eq!(
        (c.ip_frag_dropped_overlap, c.ip_frag_late_fragments),
        (1, 2)
    );
    assert_eq!(c.dns_unanswered, 1);
    // A later datagram with another identification goes through.
    let frags = fragment_v4(&a, 0x2223, 256);
    let records = run_exchange(&mut e, &q, &frags, &[3, 2, 1, 0]);
    assert_eq!(dns_responses(&records), big_test(60));
}

#[test]
fn an_incomplete_datagram_times_out() {
    let a = udp_v4(SERVER4, 53, CLIENT4, 40004, &answer(10, 60));
    let frags = fragment_v4(&a, 0x3333, 256);
    let mut e = engine();
    let meta = CaptureMeta::default();
    e.handle_frame(0, LinkType::RawIp, &frags[0], meta).unwrap();
    e.handle_frame(0, LinkType::RawIp, &frags[1], meta).unwrap();
    assert!(e.ip_fragment_bytes() > 0);
    e.handle_timeout(29_000_000_000);
    assert_eq!(e.counters().ip_frag_dropped_timeout, 0);
    e.handle_timeout(30_000_000_000);
    assert_eq!(e.counters().ip_frag_dropped_timeout, 1);
    assert_eq!(e.ip_fragment_bytes(), 0);
}

#[test]
fn reassembly_can_be_turned_off() {
    let a = udp_v4(SERVER4, 53, CLIENT4, 40005, &answer(11, 60));
    let frags = fragment_v4(&a, 0x4444, 256);
    let mut e = Engine::new(EngineConfig {
        max_ip_fragmented_datagrams: 0,
        ..EngineConfig::default()
    });
    for f in &frags {
        let err = e
            .handle_frame(0, LinkType::RawIp, f, CaptureMeta::default())
            .unwrap_err();
        assert!(matches!(err, DecodeError::Fragment { .. }));
    }
    assert_eq!(e.counters().decode_ip_fragment, 4);
    assert_eq!(
        (e.counters().ip_frag_reassembled, e.counters().packets),
        (0, 0)
    );
}

#[test]
fn a_snapped_fragment_gives_a_snapped_datagram() {
    // The capture kept 100 bytes of each fragment's data (as the agent's snaplen may).
    let payload = vec![b'x'; 900];
    let a = udp_v4(SERVER4, 53, CLIENT4, 40006, &payload);
    let frags = fragment_v4(&a, 0x5555, 512);
    let limits = ReassemblyLimits {
        timeout_ns: 1,
        max_bytes: 1 << 20,
        max_datagrams: 4,
    };
    let (mut r, mut c) = (IpReassembler::new(), Counters::default());
    let first = Fragment::parse(&frags[0][..120]).unwrap();
    assert!(r
        .push(0, CapturePoint::default(), &first, &limits, &mut c)
        .is_none());
    let last = Fragment::parse(&frags[1][..120]).unwrap();
    let out = r
        .push(0, CapturePoint::default(), &last, &limits, &mut c)
        .unwrap();
    assert!(out.snapped);
    let p = decode_ip(&out.packet, CaptureMeta::default()).unwrap();
    assert_eq!(p.ports(), Some((53, 40006)));
    assert_eq!(
        p.payload.len(),
        100 - 8,
        "the UDP header took 8 of the 100 bytes"
    );
    assert_eq!(p.payload_wire_len, 900);
    assert_eq!(p.ip_len, 20 + 8 + 900);
}

proptest::proptest! {
    /// Any order, with duplicates, of a datagram's fragments gives the same DNS answer.
    #[test]
    fn any_order_with_duplicates(
        order in Just((0..6usize).collect::<Vec<_>>()).prop_shuffle(),
        dups in proptest::collection::vec(0..6usize, 0..4),
        v6 in proptest::bool::ANY,
    ) {
        let (q, frags) = if v6 {
            let q = udp_v6(CLIENT6, 40007, SERVER6, 53, &query(12));
            let a = udp_v6(SERVER6, 53, CLIENT6, 40007, &answer(12, 60));
            (q, fragment_v6(&a, 44, &[], 77, 168))
        } else {
            let q = udp_v4(CLIENT4, 40007, SERVER4, 53, &query(12));
            let a = udp_v4(SERVER4, 53, CLIENT4, 40007, &answer(12, 60));
            (q, fragment_v4(&a, 77, 168))
        };
        proptest::prop_assert_eq!(frags.len(), 6);
        // A copy of the fragment that completes the datagram would start a new one: repeat
        // only the others, right after their first copy.
        let mut seq = order.clone();
        let mut repeated = 0u64;
        for d in dups.iter().filter(|d| Some(*d) != order.last()) {
            let at = seq.iter().position(|x| x == d).unwrap();
            seq.insert(at + 1, *d);
            repeated += 1;
        }
        let mut e = engine();
        let records = run_exchange(&mut e, &q, &frags, &seq);
        proptest::prop_assert_eq!(dns_responses(&records), big_test(60));
        proptest::prop_assert_eq!(e.counters().ip_frag_duplicates, repeated);
    }
}
