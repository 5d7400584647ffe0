//! Golden tests for the link types and encapsulations of issue 15 kind 1 beyond Ethernet:
//! the same HTTP/1.1 connection, wrapped in each link header (PPP, PPP in HDLC framing,
//! Cisco HDLC, pflog, ipnet, PKTAP, 802.11 bare, after radiotap and after PPI, FDDI) or carried
//! in Ethernet under MPLS and PPPoE, written as a pcap file and replayed through
//! `flows::capture_file` and the engine, gives exactly the exchanges of the plain Ethernet
//! capture; frames of those links that carry no IP are counted by reason.
//!
//! The captures are built here, byte by byte after the layouts cited in
//! `flows/src/packet/link/`, from `flows::synth`'s conversation.

mod support;

use std::sync::atomic::{AtomicUsize, Ordering};

use flows::counters::Counters;
use flows::packet::Direction;
use flows::record::Record;
use flows::synth::{http_connection, SynthFrame};
use support::{golden_config, http_flows, pcap, replay_file, replay_file_lenient};

/// Writes `bytes` as a capture in the temp dir and replays it; every frame must decode
/// unless `lenient`. Each call has its own file: the tests run in parallel.
fn replay(name: &str, bytes: &[u8], lenient: bool) -> (Vec<Record>, Counters) {
    static FILES: AtomicUsize = AtomicUsize::new(0);
    let path = std::env::temp_dir().join(format!(
        "flowscope-link-types-{}-{}-{name}.pcap",
        std::process::id(),
        FILES.fetch_add(1, Ordering::Relaxed)
    ));
    std::fs::write(&path, bytes).expect("write capture");
    let out = if lenient {
        replay_file_lenient(&path, golden_config())
    } else {
        replay_file(&path, golden_config())
    };
    let _ = std::fs::remove_file(&path);
    out
}

fn conversation() -> Vec<SynthFrame> {
    http_connection(7, 3, 40, 1_000_000_000)
}

/// The IPv4 packet of a synthetic Ethernet frame.
fn ip(f: &SynthFrame) -> &[u8] {
    &f.data[14..]
}

/// An 802.11 QoS data frame from the AP (From DS) carrying `ip` under LLC/SNAP
/// (IEEE 802.11-2020 §9.3.2.1, RFC 1042).
fn wlan(ip: &[u8]) -> Vec<u8> {
    let mut f = vec![0x88, 0x02, 0x2c, 0];
    f.extend([0x02; 18]); // addresses 1-3
    f.extend([0x10, 0]); // sequence control
    f.extend([0, 0]); // QoS control: TID 0, no A-MSDU
    f.extend([0xaa, 0xaa, 3, 0, 0, 0, 0x08, 0x00]);
    f.extend(ip);
    f
}

/// The plain Ethernet capture's HTTP flows: what every other wrapping must give.
fn reference() -> Vec<(flows::record::L7Type, String, String, Option<u16>)> {
    let frames: Vec<_> = conversation()
        .into_iter()
        .map(|f| (f.ts_ns, f.data))
        .collect();
    let (records, _) = replay("ethernet", &pcap(1, &frames), false);
    let flows = http_flows(&records);
    assert_eq!(flows.len(), 6, "3 requests, 3 responses: {flows:?}");
    flows
}

/// Wraps each frame of the conversation with `wrap` into a capture of `linktype` and checks
/// it gives the reference exchanges.
fn assert_same_exchanges(name: &str, linktype: u32, wrap: impl Fn(&SynthFrame) -> Vec<u8>) {
    let frames: Vec<_> = conversation().iter().map(|f| (f.ts_ns, wrap(f))).collect();
    let (records, counters) = replay(name, &pcap(linktype, &frames), false);
    assert_eq!(http_flows(&records), reference(), "{name}");
    assert_eq!(counters.decode_not_ip, 0, "{name}");
}

fn with(header: &[u8], body: &[u8]) -> Vec<u8> {
    [header, body].concat()
}

#[test]
fn ppp_with_address_and_control() {
    assert_same_exchanges("ppp", 9, |f| with(&[0xff, 0x03, 0x00, 0x21], ip(f)));
}

#[test]
fn ppp_hdlc_with_a_compressed_protocol_field() {
    assert_same_exchanges("ppp_hdlc", 50, |f| with(&[0xff, 0x03, 0x21], ip(f)));
}

#[test]
fn cisco_hdlc() {
    assert_same_exchanges("c_hdlc", 104, |f| with(&[0x0f, 0x00, 0x08, 0x00], ip(f)));
}

#[test]
fn pflog_with_direction() {
    assert_same_exchanges("pflog", 117, |f| {
        let mut h = vec![0; 64];
        h[0] = 61;
        h[1] = 2; // AF_INET
        h[60] = if f.direction == Direction::Egress {
            2
        } else {
            1
        };
        with(&h, ip(f))
    });
}

#[test]
fn solaris_ipnet() {
    assert_same_exchanges("ipnet", 226, |f| {
        let mut h = vec![1, 2, 0, 0];
        h.extend((ip(f).len() as u32).to_be_bytes());
        h.extend(2u32.to_be_bytes());
        h.resize(24, 0);
        with(&h, ip(f))
    });
}

#[test]
fn apple_pktap_around_ethernet() {
    assert_same_exchanges("pktap", 258, |f| {
        let mut h = vec![0; 108];
        h[0..4].copy_from_slice(&108u32.to_le_bytes());
        h[4..8].copy_from_slice(&1u32.to_le_bytes()); // PTH_TYPE_PACKET
        h[8..12].copy_from_slice(&1u32.to_le_bytes()); // DLT_EN10MB
        h[12..15].copy_from_slice(b"en0");
        with(&h, &f.data)
    });
}

#[test]
fn ieee802_11_bare_after_radiotap_and_after_ppi() {
    assert_same_exchanges("ieee802_11", 105, |f| wlan(ip(f)));
    // Radiotap: version 0, length 12 (TSFT absent; flags and rate present, then padding).
    assert_same_exchanges("radiotap", 127, |f| {
        with(&[0, 0, 12, 0, 0x06, 0, 0, 0, 0, 0x02, 0, 0], &wlan(ip(f)))
    });
    // PPI: version 0, flags 0, length 8, DLT 105.
    assert_same_exchanges("ppi", 192, |f| {
        with(&[0, 0, 8, 0, 105, 0, 0, 0], &wlan(ip(f)))
    });
}

#[test]
fn fddi_llc_snap() {
    assert_same_exchanges("fddi", 10, |f| {
        let mut h = vec![0x50];
        h.extend(&f.data[..12]);
        h.extend([0xaa, 0xaa, 3, 0, 0, 0, 0x08, 0x00]);
        with(&h, ip(f))
    });
}

#[test]
fn mpls_label_stack_inside_ethernet() {
    assert_same_exchanges("mpls", 1, |f| {
        let mut h = f.data[..12].to_vec();
        h.extend([0x88, 0x47]);
        h.extend([0x00, 0x01, 0x00, 0x40]); // label 16, S clear
        h.extend([0x00, 0x02, 0x01, 0x40]); // label 32, bottom of stack
        with(&h, ip(f))
    });
}

#[test]
fn pppoe_session_behind_a_vlan_tag() {
    assert_same_exchanges("pppoe", 1, |f| {
        let mut h = f.data[..12].to_vec();
        h.extend([0x81, 0x00, 0x00, 0x0a, 0x88, 0x64]);
        h.extend([0x11, 0x00, 0x00, 0x17]);
        h.extend((ip(f).len() as u16 + 2).to_be_bytes());
        h.extend([0x00, 0x21]);
        with(&h, ip(f))
    });
}

#[test]
fn frames_without_ip_are_counted_by_reason() {
    let conv = conversation();
    let data = ip(&conv[0]);
    let mut protected = wlan(data);
    protected[1] |= 0x40;
    let wlan_frames = vec![
        (1, [&[0x80u8, 0][..], &[0; 30]].concat()), // beacon
        (2, vec![0xd4, 0, 0, 0, 2, 2, 2, 2, 2, 2]), // ACK, 10 bytes
        (3, protected),
        (4, wlan(data)),
    ];
    let (_, c) = replay("wlan-skips", &pcap(105, &wlan_frames), true);
    assert_eq!((c.decode_wlan_not_data, c.decode_wlan_protected), (2, 1));
    assert_eq!((c.decode_truncated, c.decode_not_ip), (0, 0));
    // LCP Echo-Request, IPCP: not IP.
    let ppp_frames = vec![
        (1, vec![0xff, 0x03, 0xc0, 0x21, 9, 1, 0, 8, 0, 0, 0, 0]),
        (2, vec![0x80, 0x21, 1, 1, 0, 4]),
        (3, with(&[0x00, 0x21], data)),
    ];
    let (_, c) = replay("ppp-skips", &pcap(9, &ppp_frames), true);
    assert_eq!(c.decode_not_ip, 2);
    assert_eq!(c.decode_unsupported_link_type, 0);
}
