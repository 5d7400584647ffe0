//! DNS over HTTPS (RFC 8484) in cleartext through the engine: HTTP/1 POST, HTTP/1 GET and
//! h2c (prior knowledge) exchanges carrying `application/dns-message` yield DNS flows, marked
//! `doh`, besides their HTTP flows and spans, which stay as they are. The captures are built
//! here, frame by frame (real Ethernet/IPv4/TCP with etherparse), with DNS messages laid out
//! by hand per RFC 1035 §4.1 (name compression included), as a DoH server sends them.

mod support;

use flows::l7::http2::frame::encode::frame;
use flows::l7::http2::hpack::encode as hp;
use flows::l7::http2::PREFACE;
use flows::record::{DnsInfo, Flow, L7Record, L7Type, Layer4, Record};
use flows::synth::{SynthFrame, TcpConversation};
use support::*;

/// `name` as DNS labels (RFC 1035 §3.1).
fn labels(name: &str) -> Vec<u8> {
    let mut out = Vec::new();
    for l in name.split('.').filter(|l| !l.is_empty()) {
        out.push(l.len() as u8);
        out.extend_from_slice(l.as_bytes());
    }
    out.push(0);
    out
}

/// A recursive query for `name`/`qtype` with ID 0 (RFC 8484 §4.1) and an EDNS(0) OPT record
/// (RFC 6891), as DoH clients send it.
fn query(name: &str, qtype: u16) -> Vec<u8> {
    let mut m = vec![0, 0, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 1];
    m.extend(labels(name));
    m.extend(qtype.to_be_bytes());
    m.extend([0, 1]);
    // OPT: root name, type 41, UDP size 4096, no flags, no options.
    m.extend([0, 0, 41, 0x10, 0, 0, 0, 0, 0, 0, 0]);
    m
}

/// The answer: `name` is a CNAME for `target`, which has the A records `addrs`; names after
/// the question are compression pointers (RFC 1035 §4.1.4).
fn answer(name: &str, target: &str, addrs: &[[u8; 4]]) -> Vec<u8> {
    let ancount = 1 + addrs.len() as u16;
    let mut m = vec![0, 0, 0x81, 0x80, 0, 1];
    m.extend(ancount.to_be_bytes());
    m.extend([0, 0, 0, 0]);
    m.extend(labels(name));
    m.extend([0, 1, 0, 1]);
    // CNAME: owner = the question's name (offset 12).
    let target_labels = labels(target);
    m.extend([0xc0, 12, 0, 5, 0, 1, 0, 0, 0x0e, 0x10]);
    m.extend((target_labels.len() as u16).to_be_bytes());
    let target_at = m.len() as u8;
    m.extend(&target_labels);
    for a in addrs {
        m.extend([0xc0, target_at, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4]);
        m.extend(a);
    }
    m
}

/// base64url without padding (RFC 4648 §5, RFC 8484 §6).
fn base64url(bytes: &[u8]) -> String {
    const ABC: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let n =
            chunk.iter().fold(0u32, |acc, b| acc << 8 | u32::from(*b)) << (8 * (3 - chunk.len()));
        for i in 0..=chunk.len() {
            out.push(ABC[(n >> (18 - 6 * i) & 63) as usize] as char);
        }
    }
    out
}

fn conversation(client_port: u16, server_port: u16) -> TcpConversation {
    TcpConversation::new(
        format!("198.18.0.20:{client_port}").parse().unwrap(),
        format!("198.18.0.53:{server_port}").parse().unwrap(),
        7000,
        90_000,
        1_000_000_000,
    )
}

fn http1_post(q: &[u8]) -> Vec<u8> {
    let mut m = format!(
        "POST /dns-query HTTP/1.1\r\nHost: doh.example.test\r\nUser-Agent: doh-client/1\r\n\
         Content-Type: application/dns-message\r\nAccept: application/dns-message\r\n\
         Content-Length: {}\r\n\r\n",
        q.len()
    )
    .into_bytes();
    m.extend(q);
    m
}

fn http1_answer(r: &[u8]) -> Vec<u8> {
    let mut m = format!(
        "HTTP/1.1 200 OK\r\nContent-Type: application/dns-message\r\nCache-Control: max-age=60\r\n\
         Content-Length: {}\r\n\r\n",
        r.len()
    )
    .into_bytes();
    m.extend(r);
    m
}

fn dns_flows(records: &[Record]) -> Vec<(&Flow, L7Type, Option<u64>, &DnsInfo)> {
    records
        .iter()
        .filter_map(|r| match r {
            Record::Flow(f) => match &f.l7.as_ref()?.record {
                L7Record::Dns(d) => {
                    let l7 = f.l7.as_ref()?;
                    Some((&**f, l7.r#type, l7.latency_ns, d))
                }
                _ => None,
            },
            _ => None,
        })
        .collect()
}

fn tcp_ports(f: &Flow) -> (u16, u16) {
    match f.l4 {
        Layer4::Tcp {
            source_port,
            destination_port,
            ..
        } => (source_port, destination_port),
        ref l4 => panic!("DoH rides TCP, got {l4:?}"),
    }
}

/// Checks one DoH exchange's two DNS flows: the query from the client, the answer with its
/// latency, both marked `doh`.
fn assert_doh_pair(records: &[Record], client_port: u16, server_port: u16, name: &str) {
    let dns = dns_flows(records);
    assert_eq!(dns.len(), 2, "{dns:#?}");
    let (qf, qt, _, q) = dns[0];
    let (rf, rt, latency, r) = dns[1];
    assert_eq!((qt, rt), (L7Type::Request, L7Type::Response));
    assert_eq!(tcp_ports(qf), (client_port, server_port));
    assert_eq!(tcp_ports(rf), (server_port, client_port));
    assert!(q.doh && r.doh, "marked as carried by HTTP");
    assert_eq!((q.query.as_str(), r.query.as_str()), (name, name));
    assert_eq!(q.qtypes, ["A"]);
    assert_eq!(
        (q.id, r.id),
        (0, 0),
        "RFC 8484 §4.1: ID 0, paired by the exchange"
    );
    assert_eq!(r.rcode, Some(0));
    assert_eq!(r.cnames, ["edge.cdn.example.test."]);
    let ips: Vec<String> = r.ips.iter().map(ToString::to_string).collect();
    assert_eq!(ips, ["192.0.2.10", "192.0.2.11"]);
    assert_eq!(r.ttl, Some(60));
    assert!(!r.response_only);
    assert_eq!(latency, Some(rf.time_ns - qf.time_ns));
    assert!(latency.unwrap() > 0);
}

fn replay(frames: &[SynthFrame]) -> (Vec<Record>, flows::counters::Counters) {
    let mut e = l7_engine();
    let records = run(&mut e, frames);
    (records, e.counters().clone())
}

const NAME: &str = "www.doh.example.test.";
const ADDRS: [[u8; 4]; 2] = [[192, 0, 2, 10], [192, 0, 2, 11]];

#[test]
fn http1_post_bodies_are_dns() {
    let mut c = conversation(50100, 80);
    c.handshake();
    c.client_send(&http1_post(&query(NAME, 1)), 64);
    c.server_send(
        &http1_answer(&answer(NAME, "edge.cdn.example.test.", &ADDRS)),
        1448,
    );
    c.close();
    let (records, cn) = replay(c.frames());
    assert_doh_pair(&records, 50100, 80, NAME);
    // The HTTP exchange is reported as without DoH: request, response, span.
    let http = http_flows(&records);
    assert_eq!(http.len(), 2);
    assert_eq!(
        (http[1].1.as_str(), http[1].2.as_str(), http[1].3),
        ("POST", "http://doh.example.test/dns-query", Some(200))
    );
    assert_eq!(spans(&records).len(), 1);
    assert_eq!(
        (cn.dns_doh_messages, cn.dns_queries, cn.dns_responses),
        (2, 1, 1)
    );
    assert_eq!(
        cn.dns_doh_malformed_messages + cn.dns_doh_bodies_incomplete,
        0
    );
}

#[test]
fn http1_get_parameters_are_dns() {
    let mut c = conversation(50102, 8053);
    c.handshake();
    let q = query(NAME, 1);
    let get = format!(
        "GET /dns-query?dns={} HTTP/1.1\r\nHost: doh.example.test\r\nAccept: application/dns-message\r\n\r\n",
        base64url(&q)
    );
    c.client_send(get.as_bytes(), 1448);
    c.server_send(
        &http1_answer(&answer(NAME, "edge.cdn.example.test.", &ADDRS)),
        40,
    );
    // A second, ordinary exchange on the keep-alive connection stays plain HTTP.
    c.client_send(
        b"GET /health HTTP/1.1\r\nHost: doh.example.test\r\n\r\n",
        1448,
    );
    c.server_send(
        b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 2\r\n\r\nok",
        1448,
    );
    c.close();
    let (records, cn) = replay(c.frames());
    assert_doh_pair(&records, 50102, 8053, NAME);
    assert_eq!(dns_flows(&records)[0].3.questions.len(), 1);
    assert_eq!(http_flows(&records).len(), 4);
    assert_eq!(spans(&records).len(), 2);
    assert_eq!(cn.dns_doh_messages, 2);
}

#[test]
fn h2c_streams_are_dns() {
    let mut c = conversation(50104, 80);
    c.handshake();
    let mut hello = PREFACE.to_vec();
    hello.extend(frame(4, 0, 0, &[]));
    c.client_send(&hello, 1448);
    let mut s = frame(4, 0, 0, &[]);
    s.extend(frame(4, 1, 0, &[]));
    c.server_send(&s, 1448);
    let mut head = Vec::new();
    hp::indexed(&mut head, 3); // :method POST
    hp::indexed(&mut head, 6); // :scheme http
    hp::literal_indexed_name(&mut head, 4, "/dns-query", false);
    hp::literal_indexed_name(&mut head, 1, "doh.example.test", true);
    hp::literal_indexed_name(&mut head, 31, "application/dns-message", true);
    hp::literal_indexed_name(&mut head, 19, "application/dns-message", false);
    let q = query(NAME, 1);
    let mut req = frame(1, 0x4, 1, &head);
    req.extend(frame(0, 0x1, 1, &q));
    c.client_send(&req, 1448);
    let mut resp_head = Vec::new();
    hp::indexed(&mut resp_head, 8); // :status 200
    hp::literal_indexed_name(&mut resp_head, 31, "application/dns-message", false);
    let r = answer(NAME, "edge.cdn.example.test.", &ADDRS);
    let mut resp = frame(1, 0x4, 1, &resp_head);
    resp.extend(frame(0, 0, 1, &r[..20]));
    resp.extend(frame(0, 0x1, 1, &r[20..]));
    c.server_send(&resp, 30);
    c.close();
    let (records, cn) = replay(c.frames());
    assert_doh_pair(&records, 50104, 80, NAME);
    let http = http_flows(&records);
    assert_eq!(http.len(), 2, "{http:?}");
    assert_eq!((http[1].1.as_str(), http[1].3), ("POST", Some(200)));
    assert_eq!(spans(&records).len(), 1);
    assert_eq!((cn.dns_doh_messages, cn.h2_streams_partial), (2, 0));
    assert_eq!(cn.l7_unrecognised_flows, 0);
}

#[test]
fn malformed_bodies_cost_only_their_dns_flow() {
    let mut c = conversation(50106, 80);
    c.handshake();
    c.client_send(&http1_post(b"\x00\x00\x01"), 1448);
    c.server_send(&http1_answer(b"\x00"), 1448);
    c.client_send(&http1_post(&query(NAME, 1)), 1448);
    c.server_send(
        &http1_answer(&answer(NAME, "edge.cdn.example.test.", &ADDRS)),
        1448,
    );
    c.close();
    let (records, cn) = replay(c.frames());
    assert_doh_pair(&records, 50106, 80, NAME);
    assert_eq!(http_flows(&records).len(), 4);
    assert_eq!(cn.dns_doh_malformed_messages, 2);
}
