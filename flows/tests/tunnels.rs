//! Golden tests for tunnels (`EngineConfig::decapsulate_tunnels`, on in `replay`): the same
//! HTTP/1.1 connection carried inside VXLAN (RFC 7348), Geneve (RFC 8926), GRE (RFC 2784/2890)
//! and IP-in-IP (RFC 2003), written as an Ethernet pcap, gives exactly the exchanges of the
//! plain capture; with decapsulation off it gives none. The two directions of the overlay use
//! different outer UDP source ports (each end hashes its own, RFC 7348 §5), which must still
//! put the connection on one engine worker.

mod support;

use std::sync::atomic::{AtomicUsize, Ordering};

use flows::engine::EngineConfig;
use flows::packet::LinkType;
use flows::record::Record;
use flows::shard::{Dispatcher, Route};
use flows::synth::{http_connection, SynthFrame};
use support::{golden_config, http_flows, pcap, replay_file};

fn replay(name: &str, frames: &[(u64, Vec<u8>)], decapsulate: bool) -> Vec<Record> {
    static FILES: AtomicUsize = AtomicUsize::new(0);
    let path = std::env::temp_dir().join(format!(
        "flowscope-tunnels-{}-{}-{name}.pcap",
        std::process::id(),
        FILES.fetch_add(1, Ordering::Relaxed)
    ));
    std::fs::write(&path, pcap(1, frames)).expect("write capture");
    let config = EngineConfig {
        decapsulate_tunnels: decapsulate,
        ..golden_config()
    };
    let (records, _) = replay_file(&path, config);
    let _ = std::fs::remove_file(&path);
    records
}

fn conversation() -> Vec<SynthFrame> {
    http_connection(7, 3, 40, 1_000_000_000)
}

/// Whether the inner frame goes from the connection's client (the first frame's source).
fn from_client(f: &SynthFrame, client: &[u8]) -> bool {
    &f.data[26..30] == client
}

/// Ethernet + IPv4 (no options, checksum left 0) around `payload` of IP protocol `proto`,
/// between the two tunnel ends 198.18.9.1 and 198.18.9.2 (`forward`: from the first).
fn outer_ip(proto: u8, forward: bool, payload: &[u8]) -> Vec<u8> {
    let (a, b) = ([198, 18, 9, 1], [198, 18, 9, 2]);
    let (src, dst) = if forward { (a, b) } else { (b, a) };
    let mut f = vec![2, 0, 0, 0, 0, 2, 2, 0, 0, 0, 0, 1, 0x08, 0x00];
    f.extend([0x45, 0]);
    f.extend(((20 + payload.len()) as u16).to_be_bytes());
    f.extend([0, 0, 0x40, 0, 64, proto, 0, 0]);
    f.extend(src);
    f.extend(dst);
    f.extend(payload);
    f
}

fn udp(src_port: u16, dst_port: u16, payload: &[u8]) -> Vec<u8> {
    let mut u = Vec::new();
    u.extend(src_port.to_be_bytes());
    u.extend(dst_port.to_be_bytes());
    u.extend(((8 + payload.len()) as u16).to_be_bytes());
    u.extend([0, 0]);
    u.extend(payload);
    u
}

/// The conversation wrapped frame by frame by `wrap(frame, from_client)`.
fn wrapped(wrap: impl Fn(&SynthFrame, bool) -> Vec<u8>) -> Vec<(u64, Vec<u8>)> {
    let conv = conversation();
    let client = conv[0].data[26..30].to_vec();
    conv.iter()
        .map(|f| (f.ts_ns, wrap(f, from_client(f, &client))))
        .collect()
}

fn vxlan(f: &SynthFrame, fwd: bool) -> Vec<u8> {
    let mut v = vec![0x08, 0, 0, 0, 0, 0, 42, 0];
    v.extend(&f.data);
    // Each end picks its own source port (RFC 7348 §5).
    outer_ip(17, fwd, &udp(if fwd { 50_000 } else { 61_234 }, 4789, &v))
}

fn reference() -> Vec<(flows::record::L7Type, String, String, Option<u16>)> {
    let frames: Vec<_> = conversation()
        .into_iter()
        .map(|f| (f.ts_ns, f.data))
        .collect();
    let flows = http_flows(&replay("plain", &frames, false));
    assert_eq!(flows.len(), 6, "3 requests, 3 responses: {flows:?}");
    flows
}

#[test]
fn vxlan_carries_the_conversation() {
    let frames = wrapped(vxlan);
    assert_eq!(http_flows(&replay("vxlan", &frames, true)), reference());
    assert!(http_flows(&replay("vxlan-off", &frames, false)).is_empty());
}

#[test]
fn geneve_with_options_carries_the_conversation() {
    let frames = wrapped(|f, fwd| {
        // One 4-byte option word, protocol type Ethernet (0x6558).
        let mut g = vec![0x01, 0, 0x65, 0x58, 0, 0, 7, 0, 0x01, 0x02, 0x01, 0x00];
        g.extend(&f.data);
        outer_ip(17, fwd, &udp(if fwd { 40_000 } else { 40_001 }, 6081, &g))
    });
    assert_eq!(http_flows(&replay("geneve", &frames, true)), reference());
}

#[test]
fn gre_with_key_and_sequence_and_ip_in_ip() {
    let gre = wrapped(|f, fwd| {
        // K and S bits: key and sequence number follow; protocol type IPv4.
        let mut g = vec![0x30, 0, 0x08, 0x00, 0, 0, 0, 9, 0, 0, 0, 1];
        g.extend(&f.data[14..]);
        outer_ip(47, fwd, &g)
    });
    assert_eq!(http_flows(&replay("gre", &gre, true)), reference());
    let ipip = wrapped(|f, fwd| outer_ip(4, fwd, &f.data[14..]));
    assert_eq!(http_flows(&replay("ipip", &ipip, true)), reference());
}

#[test]
fn an_overlay_connection_stays_on_one_worker_whatever_its_outer_ports() {
    let config = EngineConfig {
        decapsulate_tunnels: true,
        ..golden_config()
    };
    for seed in 0..8 {
        let mut d = Dispatcher::new(4, &config, seed);
        let routes: Vec<Route> = wrapped(vxlan)
            .iter()
            .map(|(ts, f)| d.route(*ts, LinkType::Ethernet, f, Default::default()))
            .collect();
        assert!(
            routes.windows(2).all(|w| w[0] == w[1]),
            "seed {seed}: {routes:?}"
        );
    }
}
