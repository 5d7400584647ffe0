//! Engine behaviour end to end on synthetic conversations.

mod support;

use std::net::Ipv4Addr;

use flows::engine::{CaptureHint, Engine, EngineConfig, L4Records};
use flows::packet::{CaptureMeta, Direction, LinkType, TcpFlags};
use flows::record::{
    attr, AttributeValue, FlowType, L7Record, L7Type, Record, SpanKind, StatusCode,
};
use flows::synth::{SynthFrame, TcpConversation};
use support::*;

fn conv() -> TcpConversation {
    TcpConversation::new(
        "198.18.0.2:51234".parse().unwrap(),
        "198.18.0.1:80".parse().unwrap(),
        100,
        9000,
        1_000_000,
    )
}

#[test]
fn one_exchange_gives_flows_and_a_server_span() {
    let mut c = conv();
    c.handshake();
    c.client_send(
        b"GET /hello?x=1 HTTP/1.1\r\nHost: example.test:8080\r\nUser-Agent: curl/8\r\n\r\n",
        1448,
    );
    c.server_send(
        b"HTTP/1.1 503 Unavailable\r\nContent-Length: 4\r\n\r\nbusy",
        1448,
    );
    c.close();
    let mut e = Engine::new(EngineConfig::default());
    let records = run(&mut e, c.frames());

    let l4: Vec<_> = records
        .iter()
        .filter_map(|r| match r {
            Record::Flow(f) if f.flow_type == FlowType::L3L4 => Some(f),
            _ => None,
        })
        .collect();
    assert_eq!(l4.len(), c.frames().len(), "one L3/L4 record per packet");
    assert_eq!(
        l4[0].l4,
        flows::record::Layer4::Tcp {
            source_port: 51234,
            destination_port: 80,
            flags: TcpFlags::SYN
        }
    );
    assert_eq!(l4[0].is_reply, Some(false));
    assert_eq!(l4[1].is_reply, Some(true));

    assert_eq!(
        http_flows(&records),
        vec![
            (
                L7Type::Request,
                "GET".into(),
                "http://example.test:8080/hello?x=1".into(),
                None
            ),
            (
                L7Type::Response,
                "GET".into(),
                "http://example.test:8080/hello?x=1".into(),
                Some(503)
            ),
        ]
    );
    let spans = spans(&records);
    assert_eq!(spans.len(), 1);
    let s = spans[0];
    assert_eq!(s.name, "GET");
    assert_eq!(
        s.kind,
        SpanKind::Server,
        "request seen at ingress: a local server received it"
    );
    assert_eq!(
        s.status.code,
        StatusCode::Error,
        "5xx is an error on a server span"
    );
    let a = &s.attributes;
    assert_eq!(
        a[attr::HTTP_REQUEST_METHOD],
        AttributeValue::String("GET".into())
    );
    assert_eq!(a[attr::URL_PATH], AttributeValue::String("/hello".into()));
    assert_eq!(a[attr::URL_QUERY], AttributeValue::String("x=1".into()));
    assert_eq!(a[attr::HTTP_RESPONSE_STATUS_CODE], AttributeValue::Int(503));
    assert_eq!(
        a[attr::SERVER_ADDRESS],
        AttributeValue::String("example.test".into())
    );
    assert_eq!(a[attr::SERVER_PORT], AttributeValue::Int(8080));
    assert_eq!(
        a[attr::CLIENT_ADDRESS],
        AttributeValue::String("198.18.0.2".into())
    );
    assert_eq!(a[attr::NETWORK_PEER_PORT], AttributeValue::Int(51234));
    assert_eq!(
        a[attr::USER_AGENT_ORIGINAL],
        AttributeValue::String("curl/8".into())
    );
    assert_eq!(a[attr::HTTP_RESPONSE_BODY_SIZE], AttributeValue::Int(4));
    assert!(s.end_time_ns > s.start_time_ns);
    assert_eq!(
        e.counters().flows_evicted_flush + e.counters().flows_evicted_closed,
        1
    );
}

#[test]
fn egress_requests_make_client_spans_and_4xx_is_an_error() {
    let mut c = conv();
    c.handshake();
    c.client_send(b"GET /missing HTTP/1.1\r\n\r\n", 1448);
    c.server_send(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n", 1448);
    let mut frames = c.into_frames();
    for f in &mut frames {
        // Captured on the client host: requests leave, responses arrive.
        f.direction = if f.direction == Direction::Ingress {
            Direction::Egress
        } else {
            Direction::Ingress
        };
    }
    let records = run(&mut l7_engine(), &frames);
    let s = spans(&records)[0];
    assert_eq!(s.kind, SpanKind::Client);
    assert_eq!(s.status.code, StatusCode::Error);
    assert_eq!(
        s.attributes[attr::NETWORK_PEER_ADDRESS],
        AttributeValue::String("198.18.0.1".into())
    );
}

#[test]
fn traceparent_is_carried_to_flows_and_span() {
    let mut c = conv();
    c.handshake();
    c.client_send(b"GET / HTTP/1.1\r\ntraceparent: 00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01\r\n\r\n", 1448);
    c.server_send(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", 1448);
    let records = run(&mut l7_engine(), c.frames());
    let s = spans(&records)[0];
    assert_eq!(s.trace_id.to_string(), "4bf92f3577b34da6a3ce929d0e0e4736");
    assert_eq!(s.parent_span_id.unwrap().to_string(), "00f067aa0ba902b7");
    for r in &records {
        if let Record::Flow(f) = r {
            let tc = f.trace_context.unwrap();
            assert_eq!(tc.trace_id, s.trace_id);
            assert_eq!(tc.span_id, s.span_id);
        }
    }
}

#[test]
fn duplicate_capture_on_two_interfaces_is_deduplicated() {
    let mut c = conv();
    c.handshake();
    c.client_send(b"GET /dup HTTP/1.1\r\n\r\n", 1448);
    c.server_send(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok", 1448);
    c.close();
    // Each frame seen twice (veth host end, then container end).
    let doubled: Vec<SynthFrame> = c
        .frames()
        .iter()
        .flat_map(|f| [f.clone(), f.clone()])
        .collect();
    let mut e = l7_engine();
    let records = run(&mut e, &doubled);
    assert_eq!(spans(&records).len(), 1);
    assert_eq!(http_flows(&records).len(), 2);
    assert!(e.counters().tcp_retransmit_segments >= 2);
}

#[test]
fn unanswered_request_becomes_an_error_span_at_flush() {
    let mut c = conv();
    c.handshake();
    c.client_send(b"POST /slow HTTP/1.1\r\nContent-Length: 2\r\n\r\nhi", 1448);
    let mut e = l7_engine();
    let records = run(&mut e, c.frames());
    let s = spans(&records)[0];
    assert_eq!(s.name, "POST");
    assert_eq!(s.status.code, StatusCode::Error);
    assert_eq!(s.status.message.as_deref(), Some("no response"));
    assert_eq!(
        s.attributes[attr::HTTP_REQUEST_BODY_SIZE],
        AttributeValue::Int(2)
    );
    assert_eq!(e.counters().http1_unanswered, 1);
}

/// Every golden capture, HTTP/1, HTTP/2, gRPC and DNS.
const GOLDEN_PCAPS: [&str; 12] = [
    "keepalive.pcap",
    "pipeline.pcap",
    "pyserver.pcap",
    "odd.pcap",
    "ipv6.pcap",
    "cooked.pcap",
    "dns.pcap",
    "upgrade.pcap",
    "h2/grpc.pcap",
    "h2/prior.pcap",
    "h2/sequential.pcap",
    "h2/upgrade.pcap",
];

fn without_spans(records: Vec<Record>) -> Vec<Record> {
    records
        .into_iter()
        .filter(|r| !matches!(r, Record::Span(_)))
        .collect()
}

#[test]
fn spans_off_builds_no_spans_and_changes_nothing_else() {
    let mut spans_seen = 0;
    for name in GOLDEN_PCAPS {
        for l4_records in [L4Records::EveryPacket, L4Records::Off] {
            let config = EngineConfig {
                l4_records,
                id_seed: 1,
                ..EngineConfig::default()
            };
            assert!(config.spans, "spans are on by default");
            let (with, c_with) = replay_pcap_with(name, config.clone());
            let (without, c_without) = replay_pcap_with(
                name,
                EngineConfig {
                    spans: false,
                    ..config
                },
            );
            spans_seen += spans(&with).len();
            assert!(spans(&without).is_empty(), "{name}: spans built when off");
            assert_eq!(without, without_spans(with), "{name} {l4_records:?}");
            assert_eq!(c_without, c_with, "{name} {l4_records:?}: counters differ");
        }
    }
    assert!(spans_seen > 20, "the captures make spans when on");
}

#[test]
fn spans_off_still_counts_unanswered_requests() {
    let mut c = conv();
    c.handshake();
    c.client_send(b"POST /slow HTTP/1.1\r\nContent-Length: 2\r\n\r\nhi", 1448);
    let mut on = l7_engine();
    let with = run(&mut on, c.frames());
    let mut off = Engine::new(EngineConfig {
        l4_records: L4Records::Off,
        spans: false,
        ..EngineConfig::default()
    });
    let without = run(&mut off, c.frames());
    assert_eq!(spans(&with).len(), 1);
    assert_eq!(without, without_spans(with));
    assert_eq!(off.counters(), on.counters());
    assert_eq!(off.counters().http1_unanswered, 1);
}

/// IP bytes are counted per capture direction from the IP length field, whatever the L3/L4
/// record mode (the agent's `flowscope_bytes_total` comes from these counters).
#[test]
fn ip_bytes_are_counted_per_direction_in_every_mode() {
    let mut c = conv();
    c.handshake();
    c.client_send(b"GET / HTTP/1.1\r\n\r\n", 1448);
    c.server_send(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello", 1448);
    c.close();
    let (mut want_in, mut want_out) = (0u64, 0u64);
    for f in c.frames() {
        // IPv4 total length, after the 14-byte Ethernet header.
        let len = u64::from(u16::from_be_bytes([f.data[16], f.data[17]]));
        match f.direction {
            Direction::Ingress => want_in += len,
            _ => want_out += len,
        }
    }
    assert!(want_in > 0 && want_out > 0);
    for mode in [
        L4Records::EveryPacket,
        L4Records::ControlOnly,
        L4Records::Off,
    ] {
        let mut e = Engine::new(EngineConfig {
            l4_records: mode,
            ..EngineConfig::default()
        });
        run(&mut e, c.frames());
        let k = e.counters();
        assert_eq!(
            (
                k.ip_bytes_ingress,
                k.ip_bytes_egress,
                k.ip_bytes_unknown_direction
            ),
            (want_in, want_out, 0),
            "{mode:?}"
        );
    }
}

#[test]
fn l4_record_modes() {
    let mut c = conv();
    c.handshake();
    c.client_send(b"GET / HTTP/1.1\r\n\r\n", 1448);
    c.server_send(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", 1448);
    c.close();
    let count_l4 = |mode| {
        let mut e = Engine::new(EngineConfig {
            l4_records: mode,
            ..EngineConfig::default()
        });
        run(&mut e, c.frames())
            .iter()
            .filter(|r| matches!(r, Record::Flow(f) if f.flow_type == FlowType::L3L4))
            .count()
    };
    assert_eq!(count_l4(L4Records::EveryPacket), c.frames().len());
    // SYN, SYN-ACK, FIN, FIN.
    assert_eq!(count_l4(L4Records::ControlOnly), 4);
    assert_eq!(count_l4(L4Records::Off), 0);
}

/// Control-only keeps connectionless flows visible: the first packet each way, then one per
/// 5 s each way while the flow keeps sending (Cilium's monitor aggregation does the same).
#[test]
fn control_only_reports_udp_and_icmp_first_packets_then_every_5s() {
    use etherparse::PacketBuilder;
    let udp = |fwd: bool| {
        let (src, dst, sport, dport) = if fwd {
            ([198, 18, 0, 2], [198, 18, 0, 1], 40000, 9999)
        } else {
            ([198, 18, 0, 1], [198, 18, 0, 2], 9999, 40000)
        };
        let mut out = Vec::new();
        PacketBuilder::ethernet2([1; 6], [2; 6])
            .ipv4(src, dst, 64)
            .udp(sport, dport)
            .write(&mut out, b"ping")
            .unwrap();
        out
    };
    let ping = |seq: u16| {
        let mut out = Vec::new();
        PacketBuilder::ethernet2([1; 6], [2; 6])
            .ipv4([198, 18, 0, 2], [198, 18, 0, 1], 64)
            .icmpv4_echo_request(7, seq)
            .write(&mut out, b"x")
            .unwrap();
        out
    };
    const S: u64 = 1_000_000_000;
    let mut frames = Vec::new();
    // (time, forward?) for UDP: out at 0,1,2,6,7 s; back at 0.5, 1.5, 6.5 s.
    for (t, fwd) in [
        (0, true),
        (S / 2, false),
        (S, true),
        (3 * S / 2, false),
        (2 * S, true),
        (6 * S, true),
        (13 * S / 2, false),
        (7 * S, true),
    ] {
        frames.push(SynthFrame {
            ts_ns: 1_000 + t,
            data: udp(fwd),
            direction: if fwd {
                Direction::Ingress
            } else {
                Direction::Egress
            },
        });
    }
    for (i, t) in [0, S, 2 * S, 5 * S].into_iter().enumerate() {
        frames.push(SynthFrame {
            ts_ns: 8 * S + t,
            data: ping(i as u16),
            direction: Direction::Ingress,
        });
    }
    let l4_times = |mode| {
        let mut e = Engine::new(EngineConfig {
            l4_records: mode,
            ..EngineConfig::default()
        });
        run(&mut e, &frames)
            .iter()
            .filter_map(|r| match r {
                Record::Flow(f) if f.flow_type == FlowType::L3L4 => Some(f.time_ns - 1_000),
                _ => None,
            })
            .collect::<Vec<_>>()
    };
    assert_eq!(l4_times(L4Records::EveryPacket).len(), frames.len());
    assert_eq!(
        l4_times(L4Records::ControlOnly),
        [0, S / 2, 6 * S, 13 * S / 2, 8 * S - 1_000, 13 * S - 1_000]
    );
    assert!(l4_times(L4Records::Off).is_empty());
}

#[test]
fn flow_table_cap_refuses_and_counts() {
    let mut e = Engine::new(EngineConfig {
        max_flows: 2,
        ..EngineConfig::default()
    });
    let mut frames = Vec::new();
    for port in 0..5u16 {
        frames.extend(flows::synth::http_connection(
            40000 + port,
            1,
            10,
            1_000 + u64::from(port),
        ));
    }
    frames.sort_by_key(|f| f.ts_ns);
    let _ = run(&mut e, &frames);
    assert!(e.counters().flows_refused_table_full > 0);
    assert!(e.flow_count() <= 2);
}

#[test]
fn idle_flows_are_evicted_by_timeouts() {
    let mut c = conv();
    c.handshake();
    c.client_send(b"GET / HTTP/1.1\r\n\r\n", 1448);
    let mut e = l7_engine();
    for f in c.frames() {
        let meta = CaptureMeta {
            ts_ns: f.ts_ns,
            direction: f.direction,
            ..Default::default()
        };
        e.handle_frame(f.ts_ns, LinkType::Ethernet, &f.data, meta)
            .unwrap();
    }
    assert_eq!(e.flow_count(), 1);
    e.handle_timeout(1_000_000 + 121_000_000_000);
    assert_eq!(e.flow_count(), 0);
    assert_eq!(e.counters().flows_evicted_idle, 1);
    let mut got_span = false;
    while let Some(r) = e.poll_record() {
        got_span |= matches!(r, Record::Span(_));
    }
    assert!(got_span, "the unanswered request is reported at eviction");
}

#[test]
fn reset_closes_and_reports() {
    let mut c = conv();
    c.handshake();
    c.client_send(b"GET /r HTTP/1.1\r\n\r\n", 1448);
    let f = c.frame(
        false,
        c.server_next(),
        c.client_next(),
        TcpFlags::RST | TcpFlags::ACK,
        b"",
    );
    c.push_raw(f, Direction::Egress);
    let mut e = l7_engine();
    let records = run(&mut e, c.frames());
    assert_eq!(spans(&records).len(), 1);
    assert_eq!(
        spans(&records)[0].status.message.as_deref(),
        Some("no response")
    );
}

#[test]
fn sensitive_headers_never_leave_unredacted() {
    let mut c = conv();
    c.handshake();
    c.client_send(
        b"GET / HTTP/1.1\r\nAuthorization: Basic c2VjcmV0\r\nCookie: session=topsecret\r\n\r\n",
        1448,
    );
    c.server_send(
        b"HTTP/1.1 200 OK\r\nSet-Cookie: session=alsosecret\r\nContent-Length: 0\r\n\r\n",
        1448,
    );
    let mut config = EngineConfig::default();
    config.l7.header_allow_list =
        vec!["authorization".into(), "cookie".into(), "set-cookie".into()];
    let records = run(&mut Engine::new(config), c.frames());
    let json = serde_json::to_string(&records).unwrap();
    assert!(
        !json.contains("c2VjcmV0") && !json.contains("topsecret") && !json.contains("alsosecret")
    );
    assert_eq!(json.matches("[REDACTED]").count(), 3);
    // Records round-trip through JSON (the agent's ring and `observe` read them back).
    let back: Vec<Record> = serde_json::from_str(&json).unwrap();
    assert_eq!(back, records);
}

#[test]
fn engine_is_send() {
    fn is_send<T: Send>() {}
    is_send::<Engine>();
}

#[test]
fn a_new_syn_on_a_closed_tuple_starts_a_new_connection() {
    let mut c = conv();
    c.handshake();
    c.client_send(b"GET /one HTTP/1.1\r\n\r\n", 1448);
    c.server_send(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", 1448);
    c.close();
    // The same 4-tuple reused right away (within the close linger), new ISNs.
    let mut c2 = TcpConversation::new(
        "198.18.0.2:51234".parse().unwrap(),
        "198.18.0.1:80".parse().unwrap(),
        777_777,
        3,
        2_000_000,
    );
    c2.handshake();
    c2.client_send(b"GET /two HTTP/1.1\r\n\r\n", 1448);
    c2.server_send(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", 1448);
    let frames: Vec<_> = c.frames().iter().chain(c2.frames()).cloned().collect();
    let mut e = l7_engine();
    let records = run(&mut e, &frames);
    let names: Vec<_> = spans(&records)
        .iter()
        .map(|s| s.attributes[attr::URL_PATH].clone())
        .collect();
    assert_eq!(
        names,
        vec![
            AttributeValue::String("/one".into()),
            AttributeValue::String("/two".into())
        ]
    );
    assert_eq!(e.counters().flows_created, 2);
}

/// A SYN with another ISN after an attempt that carried nothing (its SYN unanswered, or
/// answered and abandoned) is a new attempt on the same tuple, not a retransmission (which
/// repeats the ISN, RFC 9293 §3.4): its exchange is decoded whole. A retransmitted SYN stays
/// one connection.
#[test]
fn a_syn_with_another_isn_after_an_empty_attempt_starts_a_new_connection() {
    let get = b"GET /two HTTP/1.1\r\n\r\n";
    let ok = b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n";
    for answered in [false, true] {
        // The first attempt: a SYN with ISN 77,777 (and, `answered`, its SYN-ACK), then nothing.
        let mut first = TcpConversation::new(
            "198.18.0.2:51234".parse().unwrap(),
            "198.18.0.1:80".parse().unwrap(),
            77_777,
            5_000,
            1_000_000,
        );
        let syn = first.frame(true, 77_777, 0, TcpFlags::SYN, b"");
        first.push_raw(syn, Direction::Ingress);
        if answered {
            let syn_ack = first.frame(false, 5_000, 77_778, TcpFlags::SYN | TcpFlags::ACK, b"");
            first.push_raw(syn_ack, Direction::Egress);
        }
        // The client tries again from the same port, with another ISN.
        let mut second = TcpConversation::new(
            "198.18.0.2:51234".parse().unwrap(),
            "198.18.0.1:80".parse().unwrap(),
            1_000,
            9_000,
            2_000_000,
        );
        second.handshake();
        second.client_send(get, 1448);
        second.server_send(ok, 1448);
        second.close();
        let frames: Vec<_> = first
            .frames()
            .iter()
            .chain(second.frames())
            .cloned()
            .collect();
        let mut e = l7_engine();
        let records = run(&mut e, &frames);
        let paths: Vec<_> = spans(&records)
            .iter()
            .map(|s| s.attributes[attr::URL_PATH].clone())
            .collect();
        assert_eq!(
            paths,
            vec![AttributeValue::String("/two".into())],
            "answered: {answered}"
        );
        let n = e.counters();
        assert_eq!((n.http1_requests, n.http1_responses), (1, 1));
        assert_eq!(n.tcp_syn_new_attempts, 1, "answered: {answered}");
        assert_eq!(n.flows_created, 2);
        assert_eq!(n.tcp_out_of_window_segments, 0);
    }
    // A retransmitted SYN (same ISN) is the same attempt.
    let mut c = conv();
    let syn = c.frame(true, 100, 0, TcpFlags::SYN, b"");
    c.push_raw(syn, Direction::Ingress);
    c.handshake();
    c.client_send(get, 1448);
    c.server_send(ok, 1448);
    let mut e = l7_engine();
    let records = run(&mut e, c.frames());
    assert_eq!(spans(&records).len(), 1);
    assert_eq!(e.counters().tcp_syn_new_attempts, 0);
    assert_eq!(e.counters().flows_created, 1);
}

#[test]
fn a_connection_joined_on_a_keepalive_probe_pairs_its_next_exchange() {
    // RFC 9293 §3.8.4, RFC 1122 §4.2.3.6: the capture starts on an idle connection whose
    // first segment is a keep-alive probe (one garbage byte at SND.NXT - 1); the request
    // follows at SND.NXT.
    let mut c = conv();
    let (client, server) = (c.client_next(), c.server_next());
    let probe = c.frame(true, client - 1, server, TcpFlags::ACK, b"\0");
    c.push_raw(probe, Direction::Ingress);
    let ack = c.frame(false, server, client, TcpFlags::ACK, b"");
    c.push_raw(ack, Direction::Egress);
    c.client_send(b"GET /after-idle HTTP/1.1\r\nHost: h\r\n\r\n", 1448);
    c.server_send(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok", 1448);
    let mut e = l7_engine();
    let records = run(&mut e, c.frames());
    let url = "http://h/after-idle".to_string();
    assert_eq!(
        http_flows(&records),
        vec![
            (L7Type::Request, "GET".into(), url.clone(), None),
            (L7Type::Response, "GET".into(), url, Some(200)),
        ]
    );
    let n = e.counters();
    assert_eq!(n.tcp_keepalives_at_join, 1);
    assert_eq!(n.http1_resync_skipped_bytes, 0);
    assert_eq!(n.http1_unpaired_responses, 0);
}

#[test]
fn plain_http_inside_a_connect_tunnel_is_decoded() {
    // RFC 9110 §9.3.6: after the proxy's 2xx the connection relays the client's bytes to the
    // target; a client speaking plain HTTP through it makes exchanges of their own.
    let mut c = TcpConversation::new(
        "198.18.0.2:51234".parse().unwrap(),
        "198.18.0.1:3128".parse().unwrap(),
        100,
        9000,
        1_000_000,
    );
    c.handshake();
    c.client_send(b"CONNECT abc:80 HTTP/1.1\r\nHost: abc:80\r\n\r\n", 1448);
    c.server_send(b"HTTP/1.1 200 Connection established\r\n\r\n", 1448);
    c.client_send(b"GET /inside HTTP/1.1\r\nHost: abc\r\n\r\n", 1448);
    c.server_send(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok", 1448);
    c.close();
    let mut e = l7_engine();
    let records = run(&mut e, c.frames());
    let inside = "http://abc/inside".to_string();
    assert_eq!(
        http_flows(&records),
        vec![
            (L7Type::Request, "CONNECT".into(), "abc:80".into(), None),
            (
                L7Type::Response,
                "CONNECT".into(),
                "abc:80".into(),
                Some(200)
            ),
            (L7Type::Request, "GET".into(), inside.clone(), None),
            (L7Type::Response, "GET".into(), inside, Some(200)),
        ]
    );
    let n = e.counters();
    assert_eq!((n.http1_requests, n.http1_upgrades), (2, 1));
    assert_eq!(n.l7_unrecognised_flows, 0);
}

#[test]
fn dns_query_and_response_pair_by_id() {
    use etherparse::PacketBuilder;
    let udp = |src: [u8; 4], sport: u16, dst: [u8; 4], dport: u16, payload: &[u8]| {
        let mut out = Vec::new();
        PacketBuilder::ethernet2([1; 6], [2; 6])
            .ipv4(src, dst, 64)
            .udp(sport, dport)
            .write(&mut out, payload)
            .unwrap();
        out
    };
    // id 0x1234 query for example.test A; response with two addresses via a name pointer.
    let mut q = vec![0x12, 0x34, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0];
    q.extend_from_slice(b"\x07example\x04test\x00\x00\x01\x00\x01");
    let mut r = vec![0x12, 0x34, 0x81, 0x80, 0, 1, 0, 2, 0, 0, 0, 0];
    r.extend_from_slice(b"\x07example\x04test\x00\x00\x01\x00\x01");
    for last in [9u8, 10] {
        r.extend_from_slice(&[0xc0, 12, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4, 198, 18, 0, last]);
    }
    let frames = vec![
        SynthFrame {
            ts_ns: 1_000,
            data: udp([198, 18, 0, 2], 40000, [198, 18, 0, 1], 53, &q),
            direction: Direction::Egress,
        },
        SynthFrame {
            ts_ns: 251_000,
            data: udp([198, 18, 0, 1], 53, [198, 18, 0, 2], 40000, &r),
            direction: Direction::Ingress,
        },
    ];
    let mut e = l7_engine();
    let records = run(&mut e, &frames);
    let dns: Vec<_> = records
        .iter()
        .filter_map(|r| match r {
            Record::Flow(f) => match &f.l7.as_ref()?.record {
                L7Record::Dns(d) => Some((
                    f.l7.as_ref().unwrap().r#type,
                    f.l7.as_ref().unwrap().latency_ns,
                    d.clone(),
                    f.is_reply,
                )),
                _ => None,
            },
            _ => None,
        })
        .collect();
    assert_eq!(dns.len(), 2);
    assert_eq!(dns[0].0, L7Type::Request);
    assert_eq!(dns[0].2.query, "example.test.");
    assert_eq!(dns[0].2.qtypes, vec!["A"]);
    assert_eq!(dns[0].3, Some(false));
    assert_eq!(dns[1].0, L7Type::Response);
    assert_eq!(dns[1].1, Some(250_000));
    assert_eq!(dns[1].2.rcode, Some(0));
    assert_eq!(
        dns[1].2.ips,
        vec![
            "198.18.0.9".parse::<std::net::IpAddr>().unwrap(),
            "198.18.0.10".parse().unwrap()
        ]
    );
    assert_eq!(dns[1].2.ttl, Some(60));
    assert_eq!(e.counters().dns_unmatched_responses, 0);
}

#[test]
fn counters_iterate_by_name() {
    let mut e = l7_engine();
    let _ = e.handle_frame(0, LinkType::Ethernet, &[0u8; 3], CaptureMeta::default());
    let c: std::collections::BTreeMap<_, _> = e.counters().iter().collect();
    assert_eq!(c["frames"], 1);
    assert_eq!(c["decode_truncated"], 1);
}

proptest::proptest! {
    /// Arbitrary frames on every link type never panic the engine.
    #[test]
    fn arbitrary_frames_never_panic(frames in proptest::collection::vec((0..LinkType::DECODED.len(), proptest::collection::vec(proptest::num::u8::ANY, 0..120)), 0..30)) {
        let mut e = Engine::new(EngineConfig::default());
        for (i, (link, bytes)) in frames.iter().enumerate() {
            let link = LinkType::DECODED[*link];
            let _ = e.handle_frame(i as u64, link, bytes, CaptureMeta::default());
            e.handle_timeout(i as u64 * 1_000_000_000);
        }
        e.flush(u64::MAX / 2);
        while e.poll_record().is_some() {}
        proptest::prop_assert_eq!(e.buffered_bytes(), 0);
    }
}

/// Frames of a client->server request whose middle segment the capture lost, then the rest.
fn lossy_conversation() -> (TcpConversation, Vec<SynthFrame>) {
    let mut c = conv();
    c.handshake();
    let req1 = b"GET /lost HTTP/1.1\r\nX-Pad: aaaaaaaaaaaaaaaaaaaa\r\n\r\n";
    let req2 = b"GET /after HTTP/1.1\r\n\r\n";
    let base = c.client_next();
    let ack = c.server_next();
    let mut frames = c.frames().to_vec();
    // Segment 1 = req1[..10] (lost), segment 2 = req1[10..] + req2 (captured).
    let mut tail = req1[10..].to_vec();
    tail.extend_from_slice(req2);
    let f = c.frame(
        true,
        base.wrapping_add(10),
        ack,
        TcpFlags::ACK | TcpFlags::PSH,
        &tail,
    );
    frames.push(SynthFrame {
        ts_ns: 2_000_000,
        data: f,
        direction: Direction::Ingress,
    });
    (c, frames)
}

#[test]
fn a_hole_is_skipped_after_the_gap_timeout() {
    let (_, frames) = lossy_conversation();
    let mut e = l7_engine();
    for f in &frames {
        let meta = CaptureMeta {
            ts_ns: f.ts_ns,
            direction: f.direction,
            ..Default::default()
        };
        e.handle_frame(f.ts_ns, LinkType::Ethernet, &f.data, meta)
            .unwrap();
    }
    assert_eq!(
        e.counters().http1_requests,
        0,
        "waiting for the hole to fill"
    );
    assert!(e.buffered_bytes() > 0);
    e.handle_timeout(2_000_000 + 3_000_000_000);
    assert_eq!(e.counters().tcp_gaps_timeout, 1);
    assert_eq!(
        e.counters().http1_requests,
        1,
        "resynced on the next request line"
    );
    assert_eq!(e.buffered_bytes(), 0);
    let reqs: Vec<_> = std::iter::from_fn(|| e.poll_record()).collect();
    assert_eq!(http_flows(&reqs)[0].2, "/after");
}

#[test]
fn a_hole_the_peer_acknowledged_is_skipped_once_past_the_grace() {
    let (c, mut frames) = lossy_conversation();
    let req_len = (b"GET /lost HTTP/1.1\r\nX-Pad: aaaaaaaaaaaaaaaaaaaa\r\n\r\n".len()
        + b"GET /after HTTP/1.1\r\n\r\n".len()) as u32;
    // The server acknowledges everything: the capture, not the network, lost the bytes.
    let ack = c.client_next().wrapping_add(req_len);
    let f = c.frame(false, c.server_next(), ack, TcpFlags::ACK, b"");
    // An ACK right behind the hole proves nothing yet (the directions may be reordered) ...
    frames.push(SynthFrame {
        ts_ns: 2_100_000,
        data: f.clone(),
        direction: Direction::Egress,
    });
    let mut e = l7_engine();
    let early = run(&mut e, &frames);
    assert_eq!(e.counters().tcp_gaps_peer_acked, 0);
    assert_eq!(
        e.counters().tcp_gaps_on_close,
        1,
        "only the final flush skipped it"
    );
    // ... one past the grace period does, without waiting for the gap timeout.
    frames.push(SynthFrame {
        ts_ns: 22_000_000,
        data: f,
        direction: Direction::Egress,
    });
    let mut e = l7_engine();
    let records = run(&mut e, &frames);
    assert_eq!(e.counters().tcp_gaps_peer_acked, 1);
    assert_eq!(e.counters().tcp_gaps_timeout, 0);
    assert_eq!(http_flows(&records)[0].2, "/after");
    assert_eq!(http_flows(&records), http_flows(&early));
}

#[test]
fn snapped_capture_keeps_content_length_framing() {
    // Like the TC program's snap: only the first 128 payload bytes of each packet are kept.
    let mut c = conv();
    c.handshake();
    let body = vec![b'z'; 5000];
    for i in 0..3 {
        c.client_send(
            format!("GET /big/{i} HTTP/1.1\r\nHost: h\r\n\r\n").as_bytes(),
            1448,
        );
        let mut resp =
            format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n", body.len()).into_bytes();
        resp.extend_from_slice(&body);
        c.server_send(&resp, 1448);
    }
    c.close();
    let snapped = snapped(c.frames(), 128);
    let mut e = l7_engine();
    let records = run(&mut e, &snapped);
    let sizes: Vec<_> = spans(&records)
        .iter()
        .map(|s| s.attributes[attr::HTTP_RESPONSE_BODY_SIZE].clone())
        .collect();
    assert_eq!(sizes, vec![AttributeValue::Int(5000); 3]);
    assert!(e.counters().tcp_snapped_bytes > 0);
    assert_eq!(e.counters().http1_resyncs, 0);
}

#[test]
fn snapped_capture_keeps_chunked_framing() {
    // Chunks longer than what a packet keeps: the snapped tail of each segment is a gap
    // inside a chunk's data, which the chunk's size frames (RFC 9112 §7.1).
    let mut c = conv();
    c.handshake();
    for i in 0..3 {
        c.client_send(
            format!("GET /chunks/{i} HTTP/1.1\r\nHost: h\r\n\r\n").as_bytes(),
            1448,
        );
        // Each size line starts a segment (as a server writing chunk by chunk sends them),
        // so the snap keeps it; the data after it is cut.
        c.server_send(
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n",
            1448,
        );
        for line in ["1388\r\n", "\r\n1388\r\n"] {
            let mut chunk = line.as_bytes().to_vec(); // 5000 bytes of data follow
            chunk.extend_from_slice(&[b'z'; 5000]);
            c.server_send(&chunk, 1448);
        }
        c.server_send(b"\r\n0\r\n\r\n", 1448);
    }
    c.close();
    let snapped = snapped(c.frames(), 128);
    let mut e = l7_engine();
    let records = run(&mut e, &snapped);
    let sizes: Vec<_> = spans(&records)
        .iter()
        .map(|s| s.attributes[attr::HTTP_RESPONSE_BODY_SIZE].clone())
        .collect();
    assert_eq!(sizes, vec![AttributeValue::Int(10_000); 3]);
    assert_eq!(e.counters().http1_resyncs, 0);
    assert_eq!(e.counters().http1_bad_chunked, 0);
}

/// `(src, dst, seq, payload length)` of an Ethernet IPv4 TCP frame without options.
fn tcp_span(data: &[u8]) -> (End, End, u32, u32) {
    let ip = &data[14..];
    let total = u32::from(u16::from_be_bytes([ip[2], ip[3]]));
    let tcp = &ip[20..];
    let off = u32::from(tcp[12] >> 4) * 4;
    let addr = |b: &[u8]| Ipv4Addr::new(b[0], b[1], b[2], b[3]);
    (
        (addr(&ip[12..16]), u16::from_be_bytes([tcp[0], tcp[1]])),
        (addr(&ip[16..20]), u16::from_be_bytes([tcp[2], tcp[3]])),
        u32::from_be_bytes([tcp[4], tcp[5], tcp[6], tcp[7]]),
        total - 20 - off,
    )
}

/// An IPv4 address and port.
type End = (Ipv4Addr, u16);

/// What [`with_capture_table`] saw: the records, the hints, the packets cut (and their
/// payload bytes) and the ranges left standing.
struct CaptureRun {
    records: Vec<Record>,
    hints: Vec<CaptureHint>,
    cut: usize,
    cut_bytes: u64,
    table: std::collections::HashMap<(End, End), (u32, u32)>,
}

/// Runs `frames` through an engine giving hints for bodies of 64 KiB or more, applying them
/// after each frame to a table like the TC program's: a later segment lying wholly inside a
/// hinted range keeps only its headers (as the kernel sends it: the IP length still says how
/// long the payload was). Flushes at the end.
fn with_capture_table(frames: &[SynthFrame]) -> (Engine, CaptureRun) {
    let mut e = Engine::new(EngineConfig {
        l4_records: L4Records::Off,
        capture_hint_min_bytes: 65_536,
        ..EngineConfig::default()
    });
    let mut table = std::collections::HashMap::new();
    let (mut hints, mut records, mut cut, mut cut_bytes) = (Vec::new(), Vec::new(), 0, 0);
    for f in frames {
        let (src, dst, seq, len) = tcp_span(&f.data);
        let inside = table
            .get(&(src, dst))
            .is_some_and(|&(from, until): &(u32, u32)| {
                seq.wrapping_sub(from) as i32 >= 0
                    && until.wrapping_sub(seq.wrapping_add(len)) as i32 >= 0
            });
        let data = if inside && len > 0 {
            cut += 1;
            cut_bytes += u64::from(len);
            f.data[..14 + 20 + 20].to_vec()
        } else {
            f.data.clone()
        };
        e.handle_frame(f.ts_ns, LinkType::Ethernet, &data, f.capture_meta())
            .expect("a whole frame");
        while let Some(r) = e.poll_record() {
            records.push(r);
        }
        let new = e.take_capture_hints();
        for h in &new {
            let (s, d) = h.ends();
            let key = |ep: flows::key::Endpoint| match ep.addr {
                std::net::IpAddr::V4(a) => (a, ep.port),
                other => panic!("IPv4 only here, got {other}"),
            };
            match *h {
                CaptureHint::Skip {
                    from_seq,
                    until_seq,
                    ..
                } => {
                    table.insert((key(s), key(d)), (from_seq, until_seq));
                }
                CaptureHint::Clear { .. } => {
                    assert!(
                        table.remove(&(key(s), key(d))).is_some(),
                        "a hint that stood"
                    );
                }
            }
        }
        hints.extend(new);
    }
    e.flush(u64::MAX / 2);
    while let Some(r) = e.poll_record() {
        records.push(r);
    }
    let run = CaptureRun {
        records,
        hints,
        cut,
        cut_bytes,
        table,
    };
    (e, run)
}

#[test]
fn capture_hints_cut_long_bodies_to_headers_and_lose_no_exchange() {
    // The agent's capture as the engine drives it: after each frame the engine's hints are
    // applied to a table like the TC program's, and a later segment lying wholly inside a
    // hinted range keeps only its headers (as the kernel would send it: the IP length still
    // says how long the payload was).
    let mut c = conv();
    c.handshake();
    let long = 300_000;
    let exchanges: [(&str, usize, bool); 4] = [
        ("/small", 2_000, false),
        ("/long", long, false),
        ("/chunked", long, true),
        ("/after", 10, false),
    ];
    for (path, len, chunked) in exchanges {
        c.client_send(
            format!("GET {path} HTTP/1.1\r\nHost: h\r\n\r\n").as_bytes(),
            1448,
        );
        let mut resp = if chunked {
            let mut r = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
            r.extend_from_slice(format!("{len:x}\r\n").as_bytes());
            r
        } else {
            format!("HTTP/1.1 200 OK\r\nContent-Length: {len}\r\n\r\n").into_bytes()
        };
        resp.extend(std::iter::repeat_n(b'z', len));
        if chunked {
            resp.extend_from_slice(b"\r\n0\r\n\r\n");
        }
        c.server_send(&resp, 1448);
    }
    c.close();
    let (
        e,
        CaptureRun {
            records,
            hints,
            cut,
            cut_bytes,
            table,
        },
    ) = with_capture_table(c.frames());
    // One hint per long body, each withdrawn once passed; nothing stands at the end.
    let skips = hints
        .iter()
        .filter(|h| matches!(h, CaptureHint::Skip { .. }))
        .count();
    assert_eq!(skips, 2, "{hints:?}");
    assert_eq!(e.counters().capture_hints, 2);
    assert!(table.is_empty(), "{table:?}");
    // Nearly every body segment of the two long bodies went as headers only.
    let segments = 2 * long / 1448;
    assert!(cut > segments * 9 / 10, "{cut} of ~{segments} cut");
    // Every exchange whole, with its body's size, in order.
    let got: Vec<_> = spans(&records)
        .iter()
        .map(|s| {
            (
                s.attributes[attr::URL_PATH].clone(),
                s.attributes[attr::HTTP_RESPONSE_BODY_SIZE].clone(),
            )
        })
        .collect();
    let want: Vec<_> = exchanges
        .iter()
        .map(|(p, n, _)| (AttributeValue::from(*p), AttributeValue::Int(*n as i64)))
        .collect();
    assert_eq!(got, want);
    assert_eq!(e.counters().http1_resyncs, 0);
    assert_eq!(e.counters().tcp_snapped_bytes, cut_bytes);
}

#[test]
fn capture_hints_cut_ciphertext_after_its_first_64_kib() {
    // TLS without a plaintext source: after the handshake no decoder reads a byte.
    let mut c = conv();
    c.handshake();
    let record = |ty: u8, body: &[u8]| {
        let mut r = vec![ty, 3, 3];
        r.extend_from_slice(&(body.len() as u16).to_be_bytes());
        r.extend_from_slice(body);
        r
    };
    let hello = |hs: u8| record(22, &[&[hs, 0, 0, 60][..], &[0u8; 60]].concat());
    c.client_send(&hello(1), 1448);
    c.server_send(&hello(2), 1448);
    c.client_send(&record(23, &[7u8; 300]), 1448);
    let mut data = Vec::new();
    for _ in 0..40 {
        data.extend(record(23, &[9u8; 16_000]));
    }
    c.server_send(&data, 1448);
    c.close();
    let (e, run) = with_capture_table(c.frames());
    let skips: Vec<_> = run
        .hints
        .iter()
        .filter(|h| matches!(h, CaptureHint::Skip { .. }))
        .collect();
    assert_eq!(skips.len(), 1, "{:?}", run.hints);
    assert_eq!(skips[0].ends().0.port, 80, "the server's direction only");
    assert!(
        run.table.is_empty(),
        "withdrawn at the close: {:?}",
        run.table
    );
    // All but the first 64 KiB (and the segment crossing it) of the 640 KB went as headers.
    let after = (data.len() - 65_536) / 1448;
    assert!(run.cut + 2 >= after, "{} of {after} cut", run.cut);
    assert!(e.counters().tcp_snapped_bytes >= run.cut_bytes);
    assert_eq!(e.counters().tls_flows_on_wire, 1);
    assert_eq!(e.counters().tls_flows_without_plaintext, 1);
    assert!(run.records.iter().all(|r| !matches!(r, Record::Span(_))));
}

#[test]
fn http2_preface_goes_to_the_http2_decoder() {
    let mut c = conv();
    c.handshake();
    c.client_send(
        b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00\x00\x04\x00\x00\x00\x00\x00",
        1448,
    );
    let mut e = l7_engine();
    let records = run(&mut e, c.frames());
    assert!(http_flows(&records).is_empty());
    assert_eq!(e.counters().l7_unrecognised_flows, 0);
    assert_eq!(e.counters().h2_frames, 1);
    assert_eq!(e.counters().http1_parse_errors, 0);
}
