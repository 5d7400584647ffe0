//! Golden tests for DNS over TCP and the DNS record fields, on the shared field captures
//! (issue 15, kind 3): `../shared/fieldcases/kinds/F3-*.pcap` (hand-built, see its README)
//! and `../shared/fieldcases/cases/pcap/{14,15}-*.pcap` (recorded from real clients and
//! servers). Expectations come from those folders' README and expected/*.json.

mod support;

use flows::counters::Counters;
use flows::record::{DnsInfo, Flow, L7Record, L7Type, Layer4, Record};
use support::{fieldcase_path, golden_config, replay_file_lenient};

/// Replays a field case leniently (frames the engine refuses are counted, as `flowscope
/// replay` does); returns the DNS flows and the counters. Panics (the test fails loudly) when
/// the capture is missing.
fn replay(dir: &str, name: &str) -> (Vec<Flow>, Counters) {
    let (out, counters) = replay_file_lenient(&fieldcase_path(dir, name), golden_config());
    let dns = out
        .into_iter()
        .filter_map(|r| match r {
            Record::Flow(f) if matches!(&f.l7, Some(l7) if matches!(l7.record, L7Record::Dns(_))) => {
                Some(*f)
            }
            _ => None,
        })
        .collect();
    (dns, counters)
}

fn dns(f: &Flow) -> &DnsInfo {
    match &f.l7.as_ref().unwrap().record {
        L7Record::Dns(d) => d,
        r => panic!("{r:?}"),
    }
}

fn kind(f: &Flow) -> L7Type {
    f.l7.as_ref().unwrap().r#type
}

fn latency_ms(f: &Flow) -> Option<f64> {
    f.l7.as_ref().unwrap().latency_ns.map(|n| n as f64 / 1e6)
}

fn is_tcp(f: &Flow) -> bool {
    matches!(f.l4, Layer4::Tcp { .. })
}

/// The client's port: the source of a query, the destination of a response.
fn client_port(f: &Flow) -> u16 {
    let (s, d) = match f.l4 {
        Layer4::Tcp {
            source_port,
            destination_port,
            ..
        }
        | Layer4::Udp {
            source_port,
            destination_port,
        } => (source_port, destination_port),
        _ => panic!("{:?}", f.l4),
    };
    if kind(f) == L7Type::Request {
        s
    } else {
        d
    }
}

/// `(query, qtype, rcode, answers (CNAME targets then addresses), latency ms rounded to
/// 0.1, response-only)` of every response, in capture order.
type Answer = (String, String, u16, Vec<String>, Option<f64>, bool);

fn responses(flows: &[Flow]) -> Vec<Answer> {
    flows
        .iter()
        .filter(|f| kind(f) == L7Type::Response)
        .map(|f| {
            let d = dns(f);
            let mut answers = d.cnames.clone();
            answers.extend(d.ips.iter().map(|ip| ip.to_string()));
            (
                d.query.clone(),
                d.qtypes.join(","),
                d.rcode.expect("responses have an rcode"),
                answers,
                latency_ms(f).map(|l| (l * 10.0).round() / 10.0),
                d.response_only,
            )
        })
        .collect()
}

fn answer(q: &str, t: &str, rcode: u16, a: &[&str], lat: Option<f64>) -> Answer {
    (
        q.into(),
        t.into(),
        rcode,
        a.iter().map(|s| s.to_string()).collect(),
        lat,
        lat.is_none(),
    )
}

/// What every DNS-over-TCP capture must show: DNS, not HTTP, on port 53.
fn assert_dns_not_http(c: &Counters) {
    assert_eq!(c.http1_parse_errors, 0, "{c:?}");
    assert_eq!(c.http1_requests + c.http1_responses, 0, "{c:?}");
    assert_eq!(c.l7_unrecognised_flows, 0, "{c:?}");
    assert_eq!(c.dns_parse_errors, 0, "{c:?}");
}

#[test]
fn f3_single_query_and_response() {
    let (flows, c) = replay("kinds", "F3-dns-tcp-single.pcap");
    assert!(flows.iter().all(is_tcp));
    assert_eq!(flows.len(), 2);
    assert_eq!(
        responses(&flows),
        [answer(
            "www.example.com.",
            "A",
            0,
            &["edge.example.com.", "198.18.1.10", "198.18.1.11"],
            Some(1.2)
        )]
    );
    assert_dns_not_http(&c);
    assert_eq!(
        (c.dns_queries, c.dns_responses, c.dns_unanswered),
        (1, 1, 0)
    );
}

#[test]
fn f3_several_messages_in_one_segment() {
    let (flows, c) = replay("kinds", "F3-dns-tcp-multi-in-segment.pcap");
    let got = responses(&flows);
    assert!(
        got.iter().all(|g| g.4.is_some() && !g.5),
        "all paired: {got:?}"
    );
    let without_latency: Vec<_> = got
        .into_iter()
        .map(|(q, t, rcode, a, _, _)| (q, t, rcode, a))
        .collect();
    let want = |q: &str, t: &str, a: &[&str]| {
        let a = a.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        (q.to_string(), t.to_string(), 0, a)
    };
    assert_eq!(
        without_latency,
        [
            want("api.example.org.", "A", &["198.18.2.10"]),
            want("api.example.org.", "AAAA", &["2001:db8:2::10"]),
            want(
                "cdn.example.org.",
                "A",
                &["edge.example.com.", "198.18.2.20"]
            ),
        ]
    );
    assert_dns_not_http(&c);
    assert_eq!(
        (c.dns_queries, c.dns_responses, c.dns_unanswered),
        (3, 3, 0)
    );
}

#[test]
fn f3_messages_split_across_segments() {
    let (flows, c) = replay("kinds", "F3-dns-tcp-split.pcap");
    let got = responses(&flows);
    assert_eq!(got.len(), 2);
    assert_eq!(
        got[0].3,
        ["198.18.3.1", "198.18.3.2", "198.18.3.3", "198.18.3.4"]
    );
    assert_eq!(
        (got[0].0.as_str(), got[0].1.as_str()),
        ("split.example.com.", "A")
    );
    assert_eq!(got[1].3, ["2001:db8:3::1", "2001:db8:3::2"]);
    assert_eq!(got[1].1, "AAAA");
    assert!(got.iter().all(|g| g.4.is_some() && !g.5));
    assert_dns_not_http(&c);
    assert_eq!(c.dns_tcp_truncated_messages + c.dns_tcp_resyncs, 0);
}

#[test]
fn f3_out_of_order_answers_pair_by_id() {
    // RFC 7766 §7: answered 0x5403, 0x5401, 0x5402; latencies 0.8, 3.0, 4.9 ms by ID.
    let (flows, c) = replay("kinds", "F3-dns-tcp-out-of-order.pcap");
    assert_eq!(
        responses(&flows),
        [
            answer("nx.example.com.", "A", 3, &[], Some(0.8)),
            answer("a.example.com.", "A", 0, &["198.18.4.1"], Some(3.0)),
            answer("b.example.com.", "AAAA", 0, &["2001:db8:4::b"], Some(4.9)),
        ]
    );
    let ids: Vec<u16> = flows.iter().map(|f| dns(f).id).collect();
    assert_eq!(ids, [0x5401, 0x5402, 0x5403, 0x5403, 0x5401, 0x5402]);
    assert_dns_not_http(&c);
}

#[test]
fn f3_connection_joined_mid_way_has_responses_only() {
    let (flows, c) = replay("kinds", "F3-dns-tcp-midstream-responses-only.pcap");
    assert_eq!(
        responses(&flows),
        [
            answer("late1.example.com.", "A", 0, &["198.18.5.1"], None),
            answer("late2.example.com.", "AAAA", 0, &["2001:db8:5::2"], None),
            answer("late3.example.org.", "A", 3, &[], None),
        ]
    );
    assert_eq!(flows.len(), 3, "no queries");
    assert_dns_not_http(&c);
    assert_eq!(c.dns_unmatched_responses, 3);
    assert_eq!(c.http1_resyncs, 0);
}

#[test]
fn case14_truncated_udp_then_tcp() {
    let (flows, c) = replay("cases/pcap", "14-dns-truncated-udp-then-tcp.pcap");
    let find = |tcp: bool, port: u16, q: &str, t: &str| -> Vec<&Flow> {
        flows
            .iter()
            .filter(|f| {
                kind(f) == L7Type::Response
                    && is_tcp(f) == tcp
                    && client_port(f) == port
                    && dns(f).query == q
                    && dns(f).qtypes == [t]
            })
            .collect()
    };
    let a16: Vec<String> = (1..=16).map(|i| format!("192.0.2.{i}")).collect();
    let a20: Vec<String> = (1..=20).map(|i| format!("192.0.2.{i}")).collect();
    let ips = |f: &Flow| -> Vec<String> { dns(f).ips.iter().map(|i| i.to_string()).collect() };
    // UDP: the A answers are truncated (TC) and carry what fitted; AAAA are whole.
    for (port, id, lat) in [(36077, 0xa001, 7.214), (52049, 0x5331, 4.276)] {
        let r = find(false, port, "big.test.", "A");
        assert_eq!(r.len(), 1, "UDP A on {port}");
        let d = dns(r[0]);
        assert!(d.truncated, "TC on {port}");
        assert_eq!((d.id, d.rcode, ips(r[0])), (id, Some(0), a16.clone()));
        assert!((latency_ms(r[0]).unwrap() - lat).abs() < 0.05);
        let r = find(false, port, "big.test.", "AAAA");
        assert_eq!(r.len(), 1);
        assert!(!dns(r[0]).truncated);
        assert_eq!(ips(r[0]), ["2001:db8::1"]);
    }
    assert_eq!(dns(find(false, 36077, "big.test.", "A")[0]).cnames.len(), 3);
    // TCP retries: complete answers, paired by ID although answered AAAA first.
    for (port, lat_a, lat_aaaa) in [(39961, 93.5, 81.7), (52600, 94.3, 82.7)] {
        let a = find(true, port, "big.test.", "A");
        let aaaa = find(true, port, "big.test.", "AAAA");
        assert_eq!((a.len(), aaaa.len()), (1, 1), "TCP on {port}");
        assert_eq!(ips(a[0]), a20);
        assert!(!dns(a[0]).truncated);
        assert!((latency_ms(a[0]).unwrap() - lat_a).abs() < 0.1);
        assert!((latency_ms(aaaa[0]).unwrap() - lat_aaaa).abs() < 0.1);
        assert!(aaaa[0].time_ns < a[0].time_ns, "AAAA was answered first");
    }
    // The second connection on the reused client port decodes on its own.
    let other = find(true, 39961, "other.test.", "A");
    assert_eq!(other.len(), 1);
    assert_eq!(
        (dns(other[0]).id, ips(other[0])),
        (0xa003, vec!["192.0.2.99".to_string()])
    );
    assert!((latency_ms(other[0]).unwrap() - 81.5).abs() < 0.1);
    let count = |tcp: bool, k: L7Type| {
        flows
            .iter()
            .filter(|f| {
                is_tcp(f) == tcp
                    && kind(f) == k
                    && (k == L7Type::Request || latency_ms(f).is_some())
            })
            .count()
    };
    assert_eq!(
        (
            count(false, L7Type::Request),
            count(false, L7Type::Response)
        ),
        (4, 4)
    );
    assert_eq!(
        (count(true, L7Type::Request), count(true, L7Type::Response)),
        (5, 5)
    );
    assert_dns_not_http(&c);
    assert_eq!((c.dns_truncated_responses, c.dns_unanswered), (2, 0));
}

#[test]
fn case15_response_only_nodata_and_many_questions() {
    let (flows, c) = replay("cases/pcap", "15-dns-response-only-nodata.pcap");
    let long = "a.".repeat(127);
    let on =
        |port: u16| -> Vec<&Flow> { flows.iter().filter(|f| client_port(f) == port).collect() };
    // (a) A NODATA response whose query is not in the capture.
    let a = on(40001);
    assert_eq!(a.len(), 1);
    let d = dns(a[0]);
    assert_eq!(kind(a[0]), L7Type::Response);
    assert_eq!(
        (d.query.as_str(), d.qtypes.as_slice()),
        (long.as_str(), &["AAAA".to_string()][..])
    );
    assert_eq!((d.rcode, d.ips.len(), d.response_only), (Some(0), 0, true));
    assert_eq!(latency_ms(a[0]), None);
    // (b) The same, paired: NODATA with latency, not response-only.
    let b: Vec<_> = on(40002)
        .into_iter()
        .filter(|f| kind(f) == L7Type::Response)
        .collect();
    assert_eq!(b.len(), 1);
    assert_eq!((dns(b[0]).rcode, dns(b[0]).response_only), (Some(0), false));
    assert!((latency_ms(b[0]).unwrap() - 2.0).abs() < 0.05);
    // (c) NXDOMAIN reads apart from NODATA.
    let cc: Vec<_> = on(40003)
        .into_iter()
        .filter(|f| kind(f) == L7Type::Response)
        .collect();
    assert_eq!(
        (dns(cc[0]).query.as_str(), dns(cc[0]).rcode),
        ("does-not-exist.example.", Some(3))
    );
    assert!((latency_ms(cc[0]).unwrap() - 3.0).abs() < 0.05);
    // (d) QDCOUNT 3: every question listed, on the query and the response.
    for f in on(40004) {
        let names: Vec<_> = dns(f).questions.iter().map(|q| q.name.as_str()).collect();
        assert_eq!(
            names,
            ["x.example.", "y.example.", "z.example."],
            "{:?}",
            kind(f)
        );
        assert_eq!(dns(f).query, "x.example.");
    }
    let d = on(40004)
        .into_iter()
        .find(|f| kind(f) == L7Type::Response)
        .unwrap();
    assert!((latency_ms(d).unwrap() - 1.0).abs() < 0.05);
    assert_eq!(
        dns(d).ips,
        ["192.0.2.7".parse::<std::net::IpAddr>().unwrap()]
    );
    assert_eq!((c.dns_parse_errors, c.dns_unmatched_responses), (0, 1));
}
