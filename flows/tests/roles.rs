//! Who called whom: an exchange's spans by which of its ends are local processes (issue 22).
//!
//! Each case captures one HTTP/1 exchange (a 404, which is an error for the client and not
//! for the server: HTTP semconv "Status") the way a capture point sees it, runs it through the
//! engine with `span_both_ends`, and hands the span to `roles::spans_for_owners` with the
//! owners the agent would know. The connecting end's span is CLIENT and its process, the
//! accepting end's SERVER and its process, whatever the capture direction.

mod support;

use flows::engine::{Engine, EngineConfig, L4Records};
use flows::packet::Direction;
use flows::record::{attr, AttributeValue, ProcessInfo, Record, Span, SpanKind, StatusCode};
use flows::roles::{spans_for_owners, EndOwners};
use flows::synth::TcpConversation;
use support::run;

const CLIENT: &str = "198.18.0.2:40000";
const SERVER: &str = "198.18.0.1:8080";

/// Where the capture saw the exchange.
#[derive(Clone, Copy, Debug)]
enum Capture {
    /// On the client's host: requests leave (egress), responses arrive.
    ClientHost,
    /// On the server's host: requests arrive (ingress), responses leave.
    ServerHost,
    /// On loopback: every packet is seen leaving first.
    Loopback,
}

fn owner(pid: u32, comm: &str) -> ProcessInfo {
    ProcessInfo {
        pid,
        comm: Some(comm.into()),
        ..ProcessInfo::default()
    }
}

/// One exchange's span (with its counterpart) as captured at `capture`; `handshake` false
/// joins the connection mid-way (no SYN: the roles come from the request's direction).
fn exchange_span(capture: Capture, handshake: bool, traceparent: Option<&str>) -> Box<Span> {
    let mut c = TcpConversation::new(CLIENT.parse().unwrap(), SERVER.parse().unwrap(), 1, 9, 1);
    if handshake {
        c.handshake();
    }
    let tp = traceparent.map_or(String::new(), |t| format!("traceparent: {t}\r\n"));
    c.client_send(
        format!("GET /missing HTTP/1.1\r\nHost: web.test\r\n{tp}\r\n").as_bytes(),
        1448,
    );
    c.server_send(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n", 1448);
    let mut frames = c.into_frames();
    for f in &mut frames {
        let from_client = f.direction == Direction::Ingress; // synth: a server-side capture
        f.direction = match (capture, from_client) {
            (Capture::Loopback, _) => Direction::Egress,
            (Capture::ClientHost, true) | (Capture::ServerHost, false) => Direction::Egress,
            _ => Direction::Ingress,
        };
    }
    let mut e = Engine::new(EngineConfig {
        l4_records: L4Records::Off,
        span_both_ends: true,
        ..EngineConfig::default()
    });
    let mut spans: Vec<Box<Span>> = run(&mut e, &frames)
        .into_iter()
        .filter_map(|r| match r {
            Record::Span(s) => Some(s),
            _ => None,
        })
        .collect();
    assert_eq!(spans.len(), 1, "one span record per exchange");
    spans.remove(0)
}

/// What a reported span must be.
#[derive(Debug, PartialEq)]
struct Want {
    kind: SpanKind,
    comm: Option<String>,
    status: StatusCode,
    peer_port: i64,
}

fn got(s: &Span) -> Want {
    let Some(AttributeValue::Int(peer_port)) = s.attributes.get(attr::NETWORK_PEER_PORT) else {
        panic!("no peer port: {s:?}");
    };
    Want {
        kind: s.kind,
        comm: s
            .process
            .as_ref()
            .and_then(|p| p.comm.as_deref().map(str::to_string)),
        status: s.status.code,
        peer_port: *peer_port,
    }
}

/// The client's span: its peer is the server; a 404 is its error.
fn client_span(comm: Option<&'static str>) -> Want {
    Want {
        kind: SpanKind::Client,
        comm: comm.map(String::from),
        status: StatusCode::Error,
        peer_port: 8080,
    }
}

/// The server's span: its peer is the client; a 404 is not its error.
fn server_span(comm: Option<&'static str>) -> Want {
    Want {
        kind: SpanKind::Server,
        comm: comm.map(String::from),
        status: StatusCode::Unset,
        peer_port: 40000,
    }
}

#[test]
fn each_local_end_gets_the_span_of_its_role() {
    use Capture::*;
    let curl = || Some(owner(100, "curl"));
    let python = || Some(owner(200, "python3"));
    #[allow(clippy::type_complexity)]
    let cases: Vec<(
        &str,
        Capture,
        bool,
        Option<ProcessInfo>,
        Option<ProcessInfo>,
        Vec<Want>,
    )> = vec![
        (
            "local client only",
            ClientHost,
            true,
            curl(),
            None,
            vec![client_span(Some("curl"))],
        ),
        (
            "local server only",
            ServerHost,
            true,
            None,
            python(),
            vec![server_span(Some("python3"))],
        ),
        (
            "both local (loopback)",
            Loopback,
            true,
            curl(),
            python(),
            vec![client_span(Some("curl")), server_span(Some("python3"))],
        ),
        (
            "both local, captured on the server's side (veth)",
            ServerHost,
            true,
            curl(),
            python(),
            vec![client_span(Some("curl")), server_span(Some("python3"))],
        ),
        (
            "neither known, client's host",
            ClientHost,
            true,
            None,
            None,
            vec![client_span(None)],
        ),
        (
            "neither known, server's host",
            ServerHost,
            true,
            None,
            None,
            vec![server_span(None)],
        ),
        (
            "neither known, loopback",
            Loopback,
            true,
            None,
            None,
            vec![client_span(None)],
        ),
        // The capture points at the server, but only the client is a known process (a
        // client in a container whose server's owner is not known): the client's span.
        (
            "client known, capture at the server",
            ServerHost,
            true,
            curl(),
            None,
            vec![client_span(Some("curl"))],
        ),
        (
            "server known, capture at the client",
            ClientHost,
            true,
            None,
            python(),
            vec![server_span(Some("python3"))],
        ),
        // Joined mid-way: no SYN, the end that sends the request is the client.
        (
            "mid-way, both local",
            Loopback,
            false,
            curl(),
            python(),
            vec![client_span(Some("curl")), server_span(Some("python3"))],
        ),
        (
            "mid-way, local server only",
            ServerHost,
            false,
            None,
            python(),
            vec![server_span(Some("python3"))],
        ),
    ];
    for (name, capture, handshake, client, server, want) in cases {
        let span = exchange_span(capture, handshake, None);
        let out: Vec<Box<Span>> = spans_for_owners(span, EndOwners { client, server }).collect();
        let got: Vec<Want> = out.iter().map(|s| got(s)).collect();
        assert_eq!(got, want, "{name}");
        for s in &out {
            assert!(
                s.counterpart.is_none(),
                "{name}: counterparts are not reported"
            );
        }
        if let [c, s] = &out[..] {
            assert_eq!(c.trace_id, s.trace_id, "{name}: one trace");
            assert_ne!(c.span_id, s.span_id, "{name}: two spans");
            assert_eq!(
                s.parent_span_id,
                Some(c.span_id),
                "{name}: with no traceparent the server's span is the client's child"
            );
            assert_eq!(c.parent_span_id, None, "{name}");
            assert_eq!(
                c.attributes.get(attr::CLIENT_PORT),
                s.attributes.get(attr::CLIENT_PORT)
            );
            assert_eq!(
                c.attributes.get(attr::SERVER_ADDRESS),
                s.attributes.get(attr::SERVER_ADDRESS)
            );
        }
    }
}

#[test]
fn a_traceparent_stays_the_parent_of_both_spans() {
    let tp = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    let span = exchange_span(Capture::Loopback, true, Some(tp));
    let owners = EndOwners {
        client: Some(owner(1, "curl")),
        server: Some(owner(2, "python3")),
    };
    let out: Vec<Box<Span>> = spans_for_owners(span, owners).collect();
    assert_eq!(out.len(), 2);
    for s in &out {
        assert_eq!(s.trace_id.to_string(), "4bf92f3577b34da6a3ce929d0e0e4736");
        assert_eq!(s.parent_span_id.unwrap().to_string(), "00f067aa0ba902b7");
    }
}

#[test]
fn without_span_both_ends_one_span_by_capture_direction() {
    let mut c = TcpConversation::new(CLIENT.parse().unwrap(), SERVER.parse().unwrap(), 1, 9, 1);
    c.handshake();
    c.client_send(b"GET / HTTP/1.1\r\n\r\n", 1448);
    c.server_send(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", 1448);
    let mut e = Engine::new(EngineConfig {
        l4_records: L4Records::Off,
        ..EngineConfig::default()
    });
    let records = run(&mut e, c.frames());
    let spans = support::spans(&records);
    assert_eq!(spans.len(), 1);
    assert_eq!(spans[0].kind, SpanKind::Server);
    assert!(spans[0].counterpart.is_none());
    // Only the client known: the lone SERVER span cannot be its; it goes out unowned.
    let out: Vec<Box<Span>> = spans_for_owners(
        Box::new(spans[0].clone()),
        EndOwners {
            client: Some(owner(1, "curl")),
            server: None,
        },
    )
    .collect();
    assert_eq!(out.len(), 1);
    assert_eq!(
        (out[0].kind, out[0].process.as_ref()),
        (SpanKind::Server, None)
    );
}

/// A gRPC call answered NOT_FOUND, captured on loopback (every packet seen leaving): the
/// client's span is an error, the server's is not (RPC semconv: servers mark only the
/// server-fault codes), and each has the other end as its peer.
#[test]
fn a_grpc_call_between_local_processes_gives_each_end_its_rpc_span() {
    use flows::l7::http2::frame::encode::frame;
    use flows::l7::http2::hpack::encode as hp;
    let block = |fields: &[(&str, &str)]| {
        let mut b = Vec::new();
        for (n, v) in fields {
            hp::literal(&mut b, n, v, false);
        }
        b
    };
    let (headers, settings, end_stream, end_headers) = (1, 4, 0x1, 0x4);
    let mut c = TcpConversation::new(CLIENT.parse().unwrap(), SERVER.parse().unwrap(), 1, 9, 1);
    c.handshake();
    let mut hello = flows::l7::http2::PREFACE.to_vec();
    hello.extend(frame(settings, 0, 0, &[]));
    c.client_send(&hello, 1448);
    c.server_send(&frame(settings, 0, 0, &[]), 1448);
    let request = block(&[
        (":method", "POST"),
        (":scheme", "http"),
        (":path", "/pkg.Svc/Get"),
        (":authority", "svc.test:8080"),
        ("content-type", "application/grpc"),
    ]);
    c.client_send(&frame(headers, end_headers | end_stream, 1, &request), 1448);
    let response = block(&[
        (":status", "200"),
        ("content-type", "application/grpc"),
        ("grpc-status", "5"),
    ]);
    c.server_send(
        &frame(headers, end_headers | end_stream, 1, &response),
        1448,
    );
    let mut frames = c.into_frames();
    for f in &mut frames {
        f.direction = Direction::Egress;
    }
    let mut e = Engine::new(EngineConfig {
        l4_records: L4Records::Off,
        span_both_ends: true,
        ..EngineConfig::default()
    });
    let span = run(&mut e, &frames)
        .into_iter()
        .find_map(|r| match r {
            Record::Span(s) => Some(s),
            _ => None,
        })
        .expect("a span");
    let owners = EndOwners {
        client: Some(owner(1, "client")),
        server: Some(owner(2, "server")),
    };
    let out: Vec<Box<Span>> = spans_for_owners(span, owners).collect();
    let got: Vec<Want> = out.iter().map(|s| got(s)).collect();
    let want = vec![
        Want {
            kind: SpanKind::Client,
            comm: Some("client".into()),
            status: StatusCode::Error,
            peer_port: 8080,
        },
        Want {
            kind: SpanKind::Server,
            comm: Some("server".into()),
            status: StatusCode::Unset,
            peer_port: 40000,
        },
    ];
    assert_eq!(got, want);
    for s in &out {
        assert_eq!(s.attributes.get(attr::RPC_SERVICE), Some(&"pkg.Svc".into()));
        assert_eq!(
            s.attributes.get(attr::RPC_GRPC_STATUS_CODE),
            Some(&5.into())
        );
    }
}
