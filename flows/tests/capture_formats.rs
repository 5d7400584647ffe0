//! Golden tests for capture formats (issue 15 kind 1): the F1 (link types) and F2 (pcapng
//! interfaces and sections) captures of `../shared/fieldcases/kinds/`, read through
//! `flows::capture_file` and the engine, give exactly the exchanges and DNS transactions of
//! their `expected/*.json` (as multisets, like the folder's `check` script).

mod support;

use std::collections::HashMap;
use std::net::IpAddr;

use flows::counters::Counters;
use flows::record::{Flow, L7Record, L7Type, Record};
use support::{fieldcase_path, golden_config, replay_file_lenient};

const KINDS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../shared/fieldcases/kinds");

/// `(method, path, status)`; `None` where the capture has no such part.
type Exchange = (Option<String>, Option<String>, Option<u16>);
/// `(query, qtypes, rcode, sorted answers)`.
type Lookup = (String, String, Option<u16>, Vec<String>);

/// Replays one capture of the kinds folder, as `flowscope replay --l4 off` does (a frame the
/// engine refuses is counted, not fatal); returns its flows.
fn replay(name: &str) -> (Vec<Flow>, Counters) {
    let (records, counters) = replay_file_lenient(&fieldcase_path("kinds", name), golden_config());
    (records.into_iter().filter_map(flow).collect(), counters)
}

fn flow(r: Record) -> Option<Flow> {
    match r {
        Record::Flow(f) => Some(*f),
        _ => None,
    }
}

/// The two ends of a flow as an unordered pair, to tell connections apart.
fn ends(f: &Flow) -> [(IpAddr, u16); 2] {
    let (sp, dp) = f.l4.ports().unwrap_or_default();
    let mut e = [(f.ip.source, sp), (f.ip.destination, dp)];
    e.sort();
    e
}

/// The request target of a URL the engine made (`http://host/target` when the Host is known).
fn target(url: &str) -> String {
    match url.split_once("://") {
        Some((_, rest)) => rest.find('/').map_or("/".into(), |i| rest[i..].to_string()),
        None => url.to_string(),
    }
}

/// HTTP exchanges: a request and its responses share a span id on one connection; an
/// interim (1xx) response folds into its exchange.
fn exchanges(flows: &[Flow]) -> Vec<Exchange> {
    let mut requests = Vec::new();
    let mut responses: HashMap<_, Vec<Option<u16>>> = HashMap::new();
    for f in flows {
        let (Some(l7), Some(tc)) = (&f.l7, &f.trace_context) else {
            continue;
        };
        let L7Record::Http(h) = &l7.record else {
            continue;
        };
        let key = (ends(f), tc.span_id);
        match l7.r#type {
            L7Type::Request => requests.push((key, h.method.to_string(), target(&h.url))),
            L7Type::Response => responses.entry(key).or_default().push(h.code),
        }
    }
    let mut out: Vec<Exchange> = requests
        .into_iter()
        .map(|(key, method, path)| {
            let codes = responses.remove(&key).unwrap_or_default();
            let status = codes
                .iter()
                .find(|c| !matches!(c, Some(100..=199)) || **c == Some(101))
                .or(codes.last())
                .copied()
                .flatten();
            (Some(method), Some(path), status)
        })
        .collect();
    out.extend(
        responses
            .into_values()
            .flatten()
            .map(|code| (None, None, code)),
    );
    out.sort();
    out
}

/// DNS transactions: each response (paired or not), then each query no response answered.
fn lookups(flows: &[Flow]) -> Vec<Lookup> {
    let mut queries = Vec::new();
    let mut out = Vec::new();
    for f in flows {
        let Some(l7) = &f.l7 else { continue };
        let L7Record::Dns(d) = &l7.record else {
            continue;
        };
        let query = d.query.trim_end_matches('.').to_string();
        let qtypes = d.qtypes.join(",");
        if l7.r#type == L7Type::Request {
            queries.push((ends(f), query, qtypes, false));
            continue;
        }
        if l7.latency_ns.is_some() {
            if let Some(q) = queries
                .iter_mut()
                .find(|q| !q.3 && q.0 == ends(f) && q.1 == query)
            {
                q.3 = true;
            }
        }
        let mut answers: Vec<String> = d
            .cnames
            .iter()
            .map(|c| c.trim_end_matches('.').to_lowercase())
            .chain(d.ips.iter().map(IpAddr::to_string))
            .collect();
        answers.sort();
        out.push((query.to_lowercase(), qtypes, d.rcode, answers));
    }
    out.extend(
        queries
            .into_iter()
            .filter(|q| !q.3)
            .map(|(_, query, qtypes, _)| (query.to_lowercase(), qtypes, None, Vec::new())),
    );
    out.sort();
    out
}

/// The expected exchanges and lookups of `expected/<base>.json`.
fn expected(name: &str) -> (Vec<Exchange>, Vec<Lookup>) {
    let base = name.rsplit_once('.').map_or(name, |(b, _)| b);
    let path = format!("{KINDS}/expected/{base}.json");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    let json: serde_json::Value = serde_json::from_str(&text).expect("expected JSON");
    let s = |v: &serde_json::Value| v.as_str().map(str::to_string);
    let mut ex: Vec<Exchange> = json["exchanges"]
        .as_array()
        .expect("exchanges")
        .iter()
        .map(|x| {
            assert!(
                x["grpc_status"].is_null(),
                "{name}: no gRPC in capture formats"
            );
            (
                s(&x["method"]),
                s(&x["path"]),
                x["status"].as_u64().map(|c| c as u16),
            )
        })
        .collect();
    ex.sort();
    let mut dns: Vec<Lookup> = json["dns"]
        .as_array()
        .expect("dns")
        .iter()
        .map(|d| {
            let mut answers: Vec<String> = d["answers"]
                .as_array()
                .expect("answers")
                .iter()
                .map(|a| {
                    let a = a.as_str().expect("answer");
                    a.parse::<IpAddr>()
                        .map_or_else(|_| a.to_lowercase(), |ip| ip.to_string())
                })
                .collect();
            answers.sort();
            (
                d["query"].as_str().expect("query").to_lowercase(),
                d["qtype"].as_str().expect("qtype").to_string(),
                d["rcode"].as_u64().map(|c| c as u16),
                answers,
            )
        })
        .collect();
    dns.sort();
    (ex, dns)
}

/// Replays `name` and asserts its expected exchanges and lookups; returns what it saw.
fn assert_kind(name: &str) -> (Vec<Flow>, Counters) {
    let (flows, counters) = replay(name);
    let (want_ex, want_dns) = expected(name);
    assert_eq!(exchanges(&flows), want_ex, "{name}: HTTP exchanges");
    assert_eq!(lookups(&flows), want_dns, "{name}: DNS transactions");
    assert_eq!(counters.decode_unsupported_link_type, 0, "{name}");
    assert_eq!(
        counters.frames, counters.packets,
        "{name}: every frame decodes"
    );
    (flows, counters)
}

/// Latency of the response to `path`.
fn latency_of(flows: &[Flow], path: &str) -> u64 {
    let span = flows
        .iter()
        .find_map(|f| match (&f.l7, &f.trace_context) {
            (Some(l7), Some(tc)) if l7.r#type == L7Type::Request => match &l7.record {
                L7Record::Http(h) if target(&h.url) == path => Some(tc.span_id),
                _ => None,
            },
            _ => None,
        })
        .unwrap_or_else(|| panic!("no request for {path}"));
    flows
        .iter()
        .find_map(|f| match (&f.l7, &f.trace_context) {
            (Some(l7), Some(tc)) if l7.r#type == L7Type::Response && tc.span_id == span => {
                l7.latency_ns
            }
            _ => None,
        })
        .unwrap_or_else(|| panic!("no response latency for {path}"))
}

#[test]
fn f1_null_little_endian() {
    assert_kind("F1-null-le.pcap");
}

#[test]
fn f1_null_big_endian() {
    assert_kind("F1-null-be.pcap");
}

#[test]
fn f1_loop() {
    assert_kind("F1-loop.pcap");
}

#[test]
fn f1_nflog() {
    let (flows, _) = assert_kind("F1-nflog.pcap");
    // The NFLOG hook and devices give direction and interface (sent: LOCAL_OUT/outdev).
    assert!(flows
        .iter()
        .all(|f| f.traffic_direction != flows::packet::Direction::Unknown && f.ifindex != 0));
}

#[test]
fn f1_linux_sll2() {
    assert_kind("F1-linux-sll2.pcap");
}

#[test]
fn f2_pcapng_link_type_per_interface() {
    let (flows, _) = assert_kind("F2-pcapng-ether-and-null.pcapng");
    let ifaces: std::collections::BTreeSet<u32> = flows.iter().map(|f| f.ifindex).collect();
    assert_eq!(ifaces, [1, 2].into(), "en0 and lo0 stay two interfaces");
}

#[test]
fn f2_pcapng_three_link_types_one_time_base() {
    let (flows, _) = assert_kind("F2-pcapng-ether-sll-rawip.pcapng");
    // tun0 has if_tsresol 9 (ns), the others microseconds: one time base for all.
    assert_eq!(latency_of(&flows, "/tun0"), 400_000);
    assert_eq!(latency_of(&flows, "/eth0"), 800_000);
    assert_eq!(latency_of(&flows, "/any"), 600_000);
}

#[test]
fn f2_pcapng_sections_restart_interfaces() {
    let (flows, counters) = assert_kind("F2-pcapng-two-sections.pcapng");
    assert_eq!(
        counters.decode_not_ip, 0,
        "section 2 read with its own link type"
    );
    let ifaces: std::collections::BTreeSet<u32> = flows.iter().map(|f| f.ifindex).collect();
    assert_eq!(
        ifaces,
        [1, 2].into(),
        "interface 0 of each section is its own"
    );
}
