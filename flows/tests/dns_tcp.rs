//! DNS over TCP through the engine on synthetic connections: routing by port and by
//! content, and the same records whatever the segmentation (RFC 7766 §8).

mod support;

use flows::record::{L7Record, L7Type, Record};
use flows::synth::TcpConversation;
use proptest::prelude::*;
use support::*;

fn name(n: &str) -> Vec<u8> {
    let mut out = Vec::new();
    for label in n.split('.').filter(|l| !l.is_empty()) {
        out.push(label.len() as u8);
        out.extend_from_slice(label.as_bytes());
    }
    out.push(0);
    out
}

fn query(id: u16, q: &str) -> Vec<u8> {
    let mut m = id.to_be_bytes().to_vec();
    m.extend_from_slice(&[0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0]);
    m.extend(name(q));
    m.extend_from_slice(&[0, 1, 0, 1]);
    m
}

fn response(id: u16, q: &str, last: u8) -> Vec<u8> {
    let mut m = id.to_be_bytes().to_vec();
    m.extend_from_slice(&[0x81, 0x80, 0, 1, 0, 1, 0, 0, 0, 0]);
    m.extend(name(q));
    m.extend_from_slice(&[
        0, 1, 0, 1, 0xc0, 12, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4, 192, 0, 2, last,
    ]);
    m
}

fn framed(msgs: &[Vec<u8>]) -> Vec<u8> {
    msgs.iter()
        .flat_map(|m| {
            let mut f = (m.len() as u16).to_be_bytes().to_vec();
            f.extend_from_slice(m);
            f
        })
        .collect()
}

/// `(type, query, latency, response_only)` of every DNS flow.
fn dns(records: &[Record]) -> Vec<(L7Type, String, Option<u64>, bool)> {
    records
        .iter()
        .filter_map(|r| match r {
            Record::Flow(f) => match &f.l7.as_ref()?.record {
                L7Record::Dns(d) => {
                    let l7 = f.l7.as_ref().unwrap();
                    Some((l7.r#type, d.query.clone(), l7.latency_ns, d.response_only))
                }
                _ => None,
            },
            _ => None,
        })
        .collect()
}

/// Three pipelined queries answered 3, 1, 2 on `port`, each side cut at `mss` bytes.
fn conversation(port: u16, client_mss: usize, server_mss: usize) -> Vec<flows::synth::SynthFrame> {
    let mut c = TcpConversation::new(
        "198.18.0.10:41000".parse().unwrap(),
        format!("198.18.0.53:{port}").parse().unwrap(),
        1000,
        5000,
        1_000_000,
    );
    c.handshake();
    let names = ["a.example.test.", "b.example.test.", "c.example.test."];
    let queries: Vec<_> = (0..3).map(|i| query(0x100 + i as u16, names[i])).collect();
    c.client_send(&framed(&queries), client_mss);
    let answers: Vec<_> = [2usize, 0, 1]
        .iter()
        .map(|&i| response(0x100 + i as u16, names[i], i as u8))
        .collect();
    c.server_send(&framed(&answers), server_mss);
    c.close();
    c.into_frames()
}

#[test]
fn port_53_is_dns_and_so_is_a_whole_message_elsewhere() {
    for port in [53, 8053] {
        let records = run(&mut l7_engine(), &conversation(port, 1448, 1448));
        let got = dns(&records);
        assert_eq!(got.len(), 6, "port {port}: {got:?}");
        let answered: Vec<_> = got[3..].iter().map(|g| g.1.as_str()).collect();
        assert_eq!(
            answered,
            ["c.example.test.", "a.example.test.", "b.example.test."]
        );
        assert!(got[3..].iter().all(|g| g.2.is_some() && !g.3));
    }
}

#[test]
fn http_on_port_53_is_neither_dns_nor_an_http_error() {
    let mut c = TcpConversation::new(
        "198.18.0.10:41000".parse().unwrap(),
        "198.18.0.53:53".parse().unwrap(),
        1000,
        5000,
        1_000_000,
    );
    c.handshake();
    c.client_send(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", 1448);
    c.server_send(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", 1448);
    let mut e = l7_engine();
    let records = run(&mut e, &c.into_frames());
    assert!(dns(&records).is_empty());
    let cn = e.counters();
    assert_eq!((cn.dns_tcp_not_dns, cn.l7_unrecognised_flows), (1, 1));
    assert_eq!((cn.http1_parse_errors, cn.dns_parse_errors), (0, 0));
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]
    /// RFC 7766 §8: any segmentation of the same byte streams gives the same records.
    #[test]
    fn segmentation_does_not_change_the_records(client_mss in 1usize..80, server_mss in 1usize..120) {
        let want = dns(&run(&mut l7_engine(), &conversation(53, 1448, 1448)));
        let records = run(&mut l7_engine(), &conversation(53, client_mss, server_mss));
        let got: Vec<_> = dns(&records).into_iter().map(|(t, q, l, r)| (t, q, l.is_some(), r)).collect();
        let want: Vec<_> = want.into_iter().map(|(t, q, l, r)| (t, q, l.is_some(), r)).collect();
        prop_assert_eq!(got, want);
    }
}
