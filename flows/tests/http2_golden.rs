//! HTTP/2 golden tests on captures recorded from real peers (nghttpd + nghttp) by
//! `tests/data/h2/record.sh`; expectations checked by hand against the script.

mod support;

use flows::counters::Counters;
use flows::engine::{Engine, EngineConfig, L4Records};
use flows::packet::{CaptureMeta, LinkType};
use flows::record::{attr, AttributeValue, Record, Span, StatusCode};
use support::spans;

/// Replays `tests/data/h2/NAME`, dropping the first `skip` packets (a capture that began
/// late).
fn replay(name: &str, skip: usize) -> (Vec<Record>, Counters) {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data/h2")
        .join(name);
    let file =
        std::fs::File::open(&path).unwrap_or_else(|e| panic!("open {}: {e}", path.display()));
    let mut reader = pcap_file::pcap::PcapReader::new(file).expect("a pcap file");
    let link = LinkType::from_pcap_linktype(u32::from(reader.header().datalink)).unwrap();
    let mut e = Engine::new(EngineConfig {
        l4_records: L4Records::Off,
        id_seed: 1,
        ..EngineConfig::default()
    });
    let mut out = Vec::new();
    let mut last = 0;
    let mut n = 0;
    while let Some(pkt) = reader.next_packet() {
        let pkt = pkt.expect("valid pcap record");
        n += 1;
        if n <= skip {
            continue;
        }
        let ts = pkt.timestamp.as_nanos() as u64;
        let meta = CaptureMeta {
            ts_ns: ts,
            orig_len: pkt.orig_len,
            ..Default::default()
        };
        e.handle_frame(ts, link, &pkt.data, meta)
            .expect("frame decodes");
        e.handle_timeout(ts);
        while let Some(r) = e.poll_record() {
            out.push(r);
        }
        last = ts;
    }
    e.flush(last);
    while let Some(r) = e.poll_record() {
        out.push(r);
    }
    (out, e.counters().clone())
}

fn s(span: &Span, k: &str) -> Option<String> {
    match span.attributes.get(k) {
        Some(AttributeValue::String(v)) => Some(v.to_string()),
        Some(AttributeValue::Int(v)) => Some(v.to_string()),
        Some(AttributeValue::Bool(v)) => Some(v.to_string()),
        None => None,
    }
}

/// `(path, status, response body size, stream id)` per span.
fn summary(records: &[Record]) -> Vec<Summary> {
    let mut v: Vec<_> = spans(records)
        .iter()
        .map(|sp| {
            (
                s(sp, attr::URL_PATH),
                s(sp, attr::HTTP_RESPONSE_STATUS_CODE),
                s(sp, attr::HTTP_RESPONSE_BODY_SIZE),
                s(sp, attr::HTTP2_STREAM_ID),
            )
        })
        .collect();
    v.sort();
    v
}

#[test]
#[ignore = "prints a capture's records: H2_PCAP=name H2_SKIP=n"]
fn print_capture() {
    let name = std::env::var("H2_PCAP").unwrap_or("prior.pcap".into());
    let skip = std::env::var("H2_SKIP").map_or(0, |v| v.parse().unwrap());
    let (records, c) = replay(&name, skip);
    for r in &records {
        println!("{}", serde_json::to_string(r).unwrap());
    }
    for (k, v) in c.iter().filter(|(_, v)| *v > 0) {
        println!("{k} = {v}");
    }
    println!("{:?}", summary(&records));
}

/// `(path, status, response body size, stream id)`; `None` when absent.
type Summary = (
    Option<String>,
    Option<String>,
    Option<String>,
    Option<String>,
);

type Row = (&'static str, &'static str, &'static str, &'static str);

fn rows(want: &[Row]) -> Vec<Summary> {
    let mut v: Vec<_> = want
        .iter()
        .map(|(a, b, c, d)| {
            (
                Some(a.to_string()),
                Some(b.to_string()),
                Some(c.to_string()),
                Some(d.to_string()),
            )
        })
        .collect();
    v.sort();
    v
}

/// nghttp -> nghttpd, prior knowledge: four concurrent streams (nghttp opens 3..11 as
/// PRIORITY anchors, so requests are 13..19), a 404 among them, traceparent on each.
#[test]
fn nghttp_prior_knowledge_multiplexed() {
    let (records, c) = replay("prior.pcap", 0);
    assert_eq!(
        summary(&records),
        rows(&[
            ("/a", "200", "6", "13"),
            ("/b", "200", "12", "15"),
            ("/missing", "404", "147", "17"),
            ("/big", "200", "40000", "19"),
        ])
    );
    for sp in spans(&records) {
        assert_eq!(sp.trace_id.to_string(), "4bf92f3577b34da6a3ce929d0e0e4736");
        assert_eq!(sp.parent_span_id.unwrap().to_string(), "00f067aa0ba902b7");
        assert_eq!(
            s(sp, attr::USER_AGENT_ORIGINAL).as_deref(),
            Some("nghttp2/1.52.0")
        );
        assert_eq!(sp.status.code, StatusCode::Unset);
        assert_eq!(s(sp, attr::HTTP2_PARTIAL), None);
    }
    assert_eq!((c.h2_requests, c.h2_responses, c.h2_goaways), (4, 4, 1));
    assert_eq!(
        c.h2_frame_errors + c.h2_hpack_errors + c.h2_hpack_unknown_fields,
        0
    );
}

/// h2load -m 1: six requests one after another on one connection.
#[test]
fn h2load_sequential_requests() {
    let (records, c) = replay("sequential.pcap", 0);
    let paths: Vec<_> = spans(&records)
        .iter()
        .map(|sp| s(sp, attr::URL_PATH).unwrap())
        .collect();
    assert_eq!(paths, ["/a", "/b", "/missing", "/a", "/b", "/missing"]);
    assert_eq!(c.h2_hpack_unknown_fields, 0);
}

/// The same capture joined at the second request (the handshake, preface, SETTINGS and the
/// first exchange dropped): the client's HPACK table is unknown, yet every later :path is
/// exact (h2load sends them as literals or indexes entries inserted since the join), latencies
/// are exact, and fields that come from entries inserted before the join (:authority,
/// user-agent) are left out rather than guessed.
#[test]
fn h2load_joined_mid_way() {
    let (records, c) = replay("sequential.pcap", 8);
    assert_eq!(
        summary(&records),
        rows(&[
            ("/b", "200", "12", "3"),
            ("/missing", "404", "147", "5"),
            ("/a", "200", "6", "7"),
            ("/b", "200", "12", "9"),
            ("/missing", "404", "147", "11"),
        ])
    );
    for sp in spans(&records) {
        assert_eq!(s(sp, attr::HTTP2_PARTIAL).as_deref(), Some("true"));
        assert_eq!(s(sp, attr::USER_AGENT_ORIGINAL), None);
        assert_eq!(s(sp, attr::SERVER_ADDRESS).as_deref(), Some("198.18.0.1"));
        assert_eq!(s(sp, attr::HTTP_REQUEST_METHOD).as_deref(), Some("GET"));
    }
    // Request 2 left at .896743, its response at .896756 (tcpdump -r sequential.pcap).
    let first = spans(&records)[0].clone();
    assert_eq!(first.end_time_ns - first.start_time_ns, 13_000);
    assert_eq!(c.tcp_mid_stream_starts, 1);
    assert_eq!(c.h2_streams_partial, 5);
    assert!(c.h2_hpack_unknown_fields > 0);
    assert_eq!(c.h2_frame_errors + c.h2_hpack_errors, 0);
}

/// curl --http2 -> nghttpx: HTTP/1.1 `Upgrade: h2c`, 101, then the answer on stream 1.
#[test]
fn curl_h2c_upgrade() {
    let (records, c) = replay("upgrade.pcap", 0);
    assert_eq!(summary(&records), rows(&[("/a", "200", "6", "1")]));
    let sp = spans(&records)[0].clone();
    assert_eq!(
        s(&sp, attr::USER_AGENT_ORIGINAL).as_deref(),
        Some("curl/7.88.1")
    );
    assert_eq!(s(&sp, attr::NETWORK_PROTOCOL_VERSION).as_deref(), Some("2"));
    assert_eq!((c.http1_requests, c.h2_upgrades, c.h2_responses), (1, 1, 1));
    assert_eq!(
        c.h2_frame_errors + c.h2_hpack_errors + c.l7_unrecognised_flows,
        0
    );
}

/// grpcio client -> grpcio server (`grpc_peers.py`): five calls on one connection.
#[test]
fn grpcio_calls() {
    let (records, c) = replay("grpc.pcap", 0);
    let sp = spans(&records);
    let got: Vec<_> = sp
        .iter()
        .map(|x| {
            (
                x.name.as_str(),
                s(x, attr::RPC_GRPC_STATUS_CODE).unwrap(),
                x.status.code,
                s(x, attr::GRPC_REQUEST_MESSAGES).unwrap(),
                s(x, attr::GRPC_RESPONSE_MESSAGES).unwrap(),
                s(x, attr::GRPC_RESPONSE_MESSAGE_BYTES).unwrap(),
            )
        })
        .collect();
    let want = [
        (
            "pkg.Greeter/SayHello",
            "0",
            StatusCode::Unset,
            "1",
            "1",
            "12",
        ),
        // NOT_FOUND is not a server-side error per the RPC semantic conventions.
        ("pkg.Greeter/Fail", "5", StatusCode::Unset, "1", "0", "0"),
        ("pkg.Greeter/Stream", "0", StatusCode::Unset, "1", "3", "12"),
        (
            "pkg.Greeter/Missing",
            "12",
            StatusCode::Error,
            "1",
            "0",
            "0",
        ),
        (
            "pkg.Greeter/SayHello",
            "0",
            StatusCode::Unset,
            "1",
            "1",
            "19",
        ),
    ];
    let want: Vec<_> = want
        .iter()
        .map(|(n, st, code, rq, rs, rb)| {
            (
                *n,
                st.to_string(),
                *code,
                rq.to_string(),
                rs.to_string(),
                rb.to_string(),
            )
        })
        .collect();
    assert_eq!(got, want);
    for x in &sp {
        assert_eq!(x.trace_id.to_string(), "0af7651916cd43dd8448eb211c80319c");
        assert_eq!(x.parent_span_id.unwrap().to_string(), "b7ad6b7169203331");
        assert_eq!(s(x, attr::RPC_SYSTEM).as_deref(), Some("grpc"));
        assert_eq!(s(x, attr::RPC_SERVICE).as_deref(), Some("pkg.Greeter"));
    }
    assert_eq!(sp[3].status.message.as_deref(), Some("Method not found!"));
    assert_eq!(s(sp[3], attr::ERROR_TYPE).as_deref(), Some("UNIMPLEMENTED"));
    // grpc-timeout as sent by grpc-c for a 5 s deadline (rounded up on the wire).
    let timeout: i64 = s(sp[0], attr::GRPC_TIMEOUT_NS).unwrap().parse().unwrap();
    assert!(
        (5_000_000_000..=5_100_000_000).contains(&timeout),
        "{timeout}"
    );
    // The NOT_FOUND message travels on the response flow.
    let fail = records
        .iter()
        .find_map(|r| match r {
            Record::Flow(f) => match &f.l7 {
                Some(l7) => match &l7.record {
                    flows::record::L7Record::Http(h)
                        if h.url.ends_with("/Fail") && h.code.is_some() =>
                    {
                        Some(h.headers.clone())
                    }
                    _ => None,
                },
                None => None,
            },
            _ => None,
        })
        .unwrap();
    assert!(fail
        .iter()
        .any(|h| h.key == "grpc-status" && h.value == "5"));
    assert!(fail
        .iter()
        .any(|h| h.key == "grpc-message" && h.value == "no such thing"));
    assert_eq!((c.grpc_calls, c.h2_requests), (5, 5));
    assert_eq!(
        c.h2_frame_errors + c.h2_hpack_errors + c.h2_hpack_unknown_fields,
        0
    );
}

/// The gRPC capture joined at packet 18 (after the first call): the engine's port guess
/// takes the client (37406) for the server — both ports are ephemeral — and the decoder
/// turns the roles round from `:method`/`:status`. Fields from grpc-c's dynamic table
/// entries inserted before the join (content-type, the first call's :path, `grpc-status: 0`)
/// stay unknown; new literals (the other paths, `grpc-status: 5`/`12`) are exact.
#[test]
fn grpcio_joined_mid_way() {
    let (records, c) = replay("grpc.pcap", 17);
    let sp = spans(&records);
    let got: Vec<_> = sp
        .iter()
        .map(|x| {
            (
                x.name.to_string(),
                s(x, attr::RPC_GRPC_STATUS_CODE),
                s(x, attr::CLIENT_PORT).unwrap(),
                s(x, attr::HTTP2_STREAM_ID).unwrap(),
            )
        })
        .collect();
    let want = vec![
        (
            "pkg.Greeter/Fail".to_string(),
            Some("5".to_string()),
            "37406".to_string(),
            "3".to_string(),
        ),
        (
            "pkg.Greeter/Stream".to_string(),
            None,
            "37406".to_string(),
            "5".to_string(),
        ),
        (
            "pkg.Greeter/Missing".to_string(),
            Some("12".to_string()),
            "37406".to_string(),
            "7".to_string(),
        ),
        // The fifth call's :path was indexed from call 1's entry: unknown; its trailers'
        // grpc-message (gRPC's own field) still says gRPC. Its grpc-status (`0`, indexed
        // from before the join) stays unknown: no status, never OK by default.
        (
            "grpc".to_string(),
            None,
            "37406".to_string(),
            "9".to_string(),
        ),
    ];
    assert_eq!(got, want);
    for x in &sp {
        assert_eq!(s(x, attr::HTTP2_PARTIAL).as_deref(), Some("true"));
        assert_eq!(s(x, attr::SERVER_PORT).as_deref(), Some("50051"));
    }
    // Unknown status is not an error we can claim; UNIMPLEMENTED is.
    assert_eq!(sp[1].status.code, StatusCode::Unset);
    assert_eq!(sp[2].status.code, StatusCode::Error);
    assert_eq!(c.h2_roles_swapped, 1);
    assert!(c.h2_hpack_unknown_fields > 0);
    assert_eq!(c.h2_frame_errors + c.h2_hpack_errors, 0);
}
