//! What waits only for time is reported at the engine's timeout, not when the connection next
//! sends or ends: a DNS-over-TCP query never answered (forgotten after `dns_timeout_ns`,
//! counted) and an HTTP/2 stream the client cancelled on a connection that then goes quiet.
//! And an HTTP/2 connection error stops decoding without calling the flow unrecognised.

mod support;

use flows::engine::{Engine, EngineConfig};
use flows::l7::http2::frame::encode::frame;
use flows::l7::http2::hpack::encode as hp;
use flows::l7::http2::PREFACE;
use flows::packet::LinkType;
use flows::record::{Record, StatusCode};
use flows::synth::{SynthFrame, TcpConversation};
use support::*;

const SECOND: u64 = 1_000_000_000;

/// Feeds `frames` with a timeout scan after each, as the agent and replay do; returns the
/// records so far (no flush) and the time of the last frame.
fn feed(e: &mut Engine, frames: &[SynthFrame]) -> (Vec<Record>, u64) {
    let mut out = Vec::new();
    let mut last = 0;
    for f in frames {
        e.handle_frame(f.ts_ns, LinkType::Ethernet, &f.data, f.capture_meta())
            .unwrap();
        e.handle_timeout(f.ts_ns);
        while let Some(r) = e.poll_record() {
            out.push(r);
        }
        last = f.ts_ns;
    }
    (out, last)
}

fn poll_all(e: &mut Engine) -> Vec<Record> {
    std::iter::from_fn(|| e.poll_record()).collect()
}

fn engine() -> Engine {
    Engine::new(EngineConfig {
        idle_timeout_ns: 600 * SECOND,
        ..golden_config()
    })
}

#[test]
fn an_unanswered_dns_over_tcp_query_is_given_up_at_the_timeout() {
    let mut c = TcpConversation::new(
        "198.18.0.10:41000".parse().unwrap(),
        "198.18.0.53:53".parse().unwrap(),
        1000,
        5000,
        SECOND,
    );
    c.handshake();
    // One query for www.example.test A, ID 0x4242, behind its length (RFC 1035 §4.2.2).
    let mut q = vec![0x42, 0x42, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0];
    q.extend(b"\x03www\x07example\x04test\x00\x00\x01\x00\x01");
    let mut framed = (q.len() as u16).to_be_bytes().to_vec();
    framed.extend(&q);
    c.client_send(&framed, 1448);
    let mut e = engine();
    let (_, last) = feed(&mut e, c.frames());
    let timeout = e.config().dns_timeout_ns;
    e.handle_timeout(last + timeout / 2);
    assert_eq!(e.counters().dns_tcp_queries_timed_out, 0);
    e.handle_timeout(last + timeout + SECOND);
    assert_eq!(e.counters().dns_tcp_queries_timed_out, 1);
    assert_eq!(e.counters().dns_unanswered, 1);
    assert_eq!(e.flow_count(), 1, "the connection itself is not idle yet");
    e.flush(last + timeout + 2 * SECOND);
    assert_eq!(e.counters().dns_unanswered, 1, "counted once");
}

#[test]
fn a_cancelled_stream_on_a_quiet_connection_is_reported_at_the_timeout() {
    let mut c = TcpConversation::new(
        "198.18.0.2:51300".parse().unwrap(),
        "198.18.0.1:8080".parse().unwrap(),
        100,
        9000,
        SECOND,
    );
    c.handshake();
    let mut hello = PREFACE.to_vec();
    hello.extend(frame(4, 0, 0, &[]));
    c.client_send(&hello, 1448);
    c.server_send(&frame(4, 0, 0, &[]), 1448);
    let mut head = Vec::new();
    hp::indexed(&mut head, 2); // :method GET
    hp::indexed(&mut head, 6); // :scheme http
    hp::literal_indexed_name(&mut head, 4, "/slow", false);
    hp::literal_indexed_name(&mut head, 1, "svc.test", false);
    c.client_send(&frame(1, 0x5, 1, &head), 1448);
    // RST_STREAM(CANCEL) from the client (RFC 9113 §8.7), then nothing more.
    c.client_send(&frame(3, 0, 1, &8u32.to_be_bytes()), 1448);
    let mut e = engine();
    let (records, last) = feed(&mut e, c.frames());
    assert!(
        spans(&records).is_empty(),
        "waiting for the server's frames in flight"
    );
    e.handle_timeout(last + 2 * SECOND);
    let records = poll_all(&mut e);
    let spans = spans(&records);
    assert_eq!(
        spans.len(),
        1,
        "reported at the timeout, before any close or flush"
    );
    assert_eq!(spans[0].status.code, StatusCode::Error);
    assert_eq!(e.counters().h2_cancelled_streams_reported_at_timeout, 1);
    assert_eq!(e.counters().h2_streams_cancelled, 1);
    e.flush(last + 3 * SECOND);
    assert!(
        support::spans(&poll_all(&mut e)).is_empty(),
        "reported once"
    );
}

#[test]
fn an_http2_connection_error_is_not_an_unrecognised_flow() {
    // RFC 9113 §6.10, §4.3: a frame of another stream inside a field block is a connection
    // error; decoding stops, but the connection was HTTP/2.
    let mut c = TcpConversation::new(
        "198.18.0.2:51302".parse().unwrap(),
        "198.18.0.1:8080".parse().unwrap(),
        100,
        9000,
        SECOND,
    );
    c.handshake();
    let mut hello = PREFACE.to_vec();
    hello.extend(frame(4, 0, 0, &[]));
    c.client_send(&hello, 1448);
    let mut head = Vec::new();
    hp::indexed(&mut head, 2);
    hp::indexed(&mut head, 6);
    hp::literal_indexed_name(&mut head, 4, "/split", false);
    let mut bad = frame(1, 0, 1, &head[..2]);
    bad.extend(frame(8, 0, 0, &[0, 0, 1, 0]));
    bad.extend(frame(9, 0x4, 1, &head[2..]));
    c.client_send(&bad, 1448);
    c.server_send(b"more bytes the decoder no longer reads", 1448);
    c.close();
    let mut e = engine();
    let _ = run(&mut e, c.frames());
    let cn = e.counters();
    assert_eq!(cn.h2_connection_error_field_block_interrupted, 1);
    assert_eq!(cn.l7_unrecognised_flows, 0);
}
