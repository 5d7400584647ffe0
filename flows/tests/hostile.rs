//! Memory stays bounded on hostile input, and every drop shows in the counters.

mod support;

use flows::engine::{Engine, EngineConfig, L4Records};
use flows::packet::{CaptureMeta, Direction, LinkType, TcpFlags};
use flows::synth::TcpConversation;

fn config() -> EngineConfig {
    EngineConfig {
        l4_records: L4Records::Off,
        max_flow_buffer_bytes: 64 * 1024,
        max_total_buffer_bytes: 256 * 1024,
        ..EngineConfig::default()
    }
}

/// Sets the TCP sequence number of an Ethernet/IPv4/TCP frame built by `synth`.
fn set_seq(frame: &mut [u8], seq: u32) {
    frame[14 + 20 + 4..14 + 20 + 8].copy_from_slice(&seq.to_be_bytes());
}

#[test]
fn a_million_tiny_out_of_order_segments_stay_under_budget() {
    let cfg = config();
    let budget = cfg.max_total_buffer_bytes;
    let mut e = Engine::new(cfg);
    // 16 flows: each stays under its own cap, together they blow the total budget.
    let mut flows = Vec::new();
    for i in 0..16u16 {
        let client = format!("198.18.1.{}:{}", i + 1, 40000 + i).parse().unwrap();
        let mut c = TcpConversation::new(client, "198.18.0.1:80".parse().unwrap(), 1000, 5000, 0);
        c.handshake();
        for f in c.frames() {
            e.handle_frame(0, LinkType::Ethernet, &f.data, CaptureMeta::default())
                .unwrap();
        }
        let template = c.frame(true, 0, 5001, TcpFlags::ACK, b"x");
        flows.push((template, c.client_next()));
    }
    let mut max_seen = 0;
    for n in 0..1_000_000u32 {
        let (frame, base) = &mut flows[(n % 16) as usize];
        // Every other byte, skipping the first: nothing ever becomes contiguous by itself.
        let seq = base.wrapping_add(1 + 2 * (n / 16));
        set_seq(frame, seq);
        let meta = CaptureMeta {
            ts_ns: u64::from(n),
            direction: Direction::Ingress,
            ..Default::default()
        };
        e.handle_frame(u64::from(n), LinkType::Ethernet, frame, meta)
            .unwrap();
        max_seen = max_seen.max(e.buffered_bytes());
        while e.poll_record().is_some() {}
    }
    assert!(
        max_seen <= budget + 64 * 1024,
        "buffered {max_seen} over budget {budget}"
    );
    let c = e.counters();
    assert!(c.tcp_gaps_flow_cap + c.tcp_gaps_total_budget > 0, "{c:?}");
    assert!(
        c.tcp_gaps_total_budget > 0,
        "the total budget must have been enforced: {c:?}"
    );
    assert!(c.tcp_out_of_order_segments > 900_000);
}

#[test]
fn endless_headers_stay_bounded_and_are_counted() {
    let mut e = Engine::new(config());
    let mut c = TcpConversation::new(
        "198.18.0.2:40000".parse().unwrap(),
        "198.18.0.1:80".parse().unwrap(),
        1,
        2,
        0,
    );
    c.handshake();
    c.client_send(b"GET / HTTP/1.1\r\n", 1448);
    let line = b"X-Endless: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n"
        .repeat(19);
    for f in c.frames() {
        e.handle_frame(f.ts_ns, LinkType::Ethernet, &f.data, CaptureMeta::default())
            .unwrap();
    }
    let mut max_seen = 0;
    for _ in 0..10_000 {
        let seq = c.client_next();
        let f = c.frame(true, seq, c.server_next(), TcpFlags::ACK, &line);
        c.client_send(&line, 1448); // advance the conversation's sequence numbers
        e.handle_frame(0, LinkType::Ethernet, &f, CaptureMeta::default())
            .unwrap();
        max_seen = max_seen.max(e.buffered_bytes());
        while e.poll_record().is_some() {}
    }
    let cfg = EngineConfig::default();
    assert!(
        max_seen <= 2 * (cfg.l7.max_header_bytes + 2048),
        "buffered {max_seen}"
    );
    let c = e.counters();
    assert!(
        c.http1_header_too_large + c.http1_too_many_headers >= 1,
        "{c:?}"
    );
    assert_eq!(c.http1_requests, 0);
}
