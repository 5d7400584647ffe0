//! Golden tests on captures recorded for real by `tests/data/record.sh` (nginx, python
//! servers, curl, dig in network namespaces). Expectations are written by hand from what the
//! script does, not snapshots of our own output; `tshark_agrees` checks them against tshark.

mod support;

use std::net::IpAddr;
use std::process::Command;

use flows::record::{attr, AttributeValue, L7Record, L7Type, Record};
use support::*;

/// `(method, target, status, response body size)` per exchange, in order, from the spans.
fn exchanges(records: &[Record]) -> Vec<(String, String, Option<i64>, Option<i64>)> {
    spans(records)
        .iter()
        .map(|s| {
            let int = |k: &str| match s.attributes.get(k) {
                Some(AttributeValue::Int(v)) => Some(*v),
                _ => None,
            };
            let path = match &s.attributes[attr::URL_PATH] {
                AttributeValue::String(p) => p.to_string(),
                v => panic!("{v:?}"),
            };
            (
                s.name.to_string(),
                path,
                int(attr::HTTP_RESPONSE_STATUS_CODE),
                int(attr::HTTP_RESPONSE_BODY_SIZE),
            )
        })
        .collect()
}

fn ex(
    m: &str,
    p: &str,
    status: i64,
    body: Option<i64>,
) -> (String, String, Option<i64>, Option<i64>) {
    (m.into(), p.into(), Some(status), body)
}

fn assert_clean(c: &flows::counters::Counters) {
    assert_eq!(c.http1_parse_errors, 0, "{c:?}");
    assert_eq!(c.tcp_gap_bytes, 0, "{c:?}");
    assert_eq!(c.http1_unpaired_responses, 0, "{c:?}");
    assert_eq!(c.http1_unanswered, 0, "{c:?}");
}

#[test]
fn nginx_keep_alive_and_head() {
    let (records, c) = replay_pcap("keepalive.pcap");
    let got = exchanges(&records);
    assert_eq!(got.len(), 4);
    // /a is "alpha\n", /b is "bravo bravo\n"; the 404 page size is nginx's business.
    assert_eq!(got[0], ex("GET", "/a", 200, Some(6)));
    assert_eq!(got[1], ex("GET", "/b", 200, Some(12)));
    assert_eq!(
        (got[2].0.as_str(), got[2].1.as_str(), got[2].2),
        ("GET", "/missing", Some(404))
    );
    // HEAD: Content-Length 6 is announced, no body follows (RFC 9110 §9.3.2).
    assert_eq!(got[3], ex("HEAD", "/a", 200, Some(0)));
    assert_eq!(
        c.flows_created, 2,
        "curl reuses one connection for the three GETs"
    );
    assert_clean(&c);
    let s = spans(&records)[0];
    assert_eq!(
        s.attributes[attr::SERVER_ADDRESS],
        AttributeValue::String("198.18.0.1".into())
    );
    assert_eq!(
        s.attributes[attr::CLIENT_ADDRESS],
        AttributeValue::String("198.18.0.2".into())
    );
    assert!(
        matches!(&s.attributes[attr::USER_AGENT_ORIGINAL], AttributeValue::String(ua) if ua.starts_with("curl/"))
    );
}

#[test]
fn pipelined_requests() {
    let (records, c) = replay_pcap("pipeline.pcap");
    let got = exchanges(&records);
    assert_eq!(got.len(), 3);
    assert_eq!(got[0], ex("GET", "/a", 200, Some(6)));
    assert_eq!(got[1], ex("GET", "/b", 200, Some(12)));
    assert_eq!(
        (got[2].0.as_str(), got[2].1.as_str(), got[2].2),
        ("GET", "/nope", Some(404))
    );
    assert_eq!(
        c.flows_created, 1,
        "all three requests went out in one write on one connection"
    );
    assert_clean(&c);
}

#[test]
fn odd_framing_chunked_204_304_continue_close() {
    let (records, c) = replay_pcap("odd.pcap");
    let close_body = "this body ends when the connection closes\n".len() as i64;
    assert_eq!(
        exchanges(&records),
        vec![
            // "hello" + " world" in two chunks, with an extension and a trailer.
            ex("GET", "/chunked", 200, Some(11)),
            ex("GET", "/nocontent", 204, Some(0)),
            ex("GET", "/notmodified", 304, Some(0)),
            ex("POST", "/upload", 201, Some(7)),
            ex("GET", "/close", 200, Some(close_body)),
        ]
    );
    let upload = spans(&records)[3];
    assert_eq!(
        upload.attributes[attr::HTTP_REQUEST_BODY_SIZE],
        AttributeValue::Int(3000)
    );
    assert_eq!(c.http1_informational, 1, "one 100 Continue");
    assert_clean(&c);
}

#[test]
fn upgrade_stops_parsing() {
    let (records, c) = replay_pcap("upgrade.pcap");
    assert_eq!(
        exchanges(&records),
        vec![ex("GET", "/upgrade", 101, Some(0))]
    );
    // The client wrote an HTTP-looking request after the 101; it belongs to the new protocol.
    assert_eq!(c.http1_requests, 1);
    assert_eq!(c.http1_upgrades, 1);
    assert_clean(&c);
}

#[test]
fn ipv6() {
    let (records, c) = replay_pcap("ipv6.pcap");
    assert_eq!(
        exchanges(&records),
        vec![
            ex("GET", "/a", 200, Some(6)),
            ex("GET", "/b", 200, Some(12))
        ]
    );
    let client: IpAddr = "2001:db8::2".parse().unwrap();
    for r in &records {
        if let Record::Flow(f) = r {
            let l7 = f.l7.as_ref().unwrap();
            let src = if l7.r#type == L7Type::Request {
                f.ip.source
            } else {
                f.ip.destination
            };
            assert_eq!(src, client);
        }
    }
    let url = records
        .iter()
        .find_map(|r| match r {
            Record::Flow(f) => match &f.l7.as_ref()?.record {
                L7Record::Http(h) => Some(h.url.clone()),
                _ => None,
            },
            _ => None,
        })
        .unwrap();
    assert_eq!(&*url, "http://[2001:db8::1]/a");
    assert_clean(&c);
}

#[test]
fn python_http_server() {
    let (records, c) = replay_pcap("pyserver.pcap");
    let got = exchanges(&records);
    assert_eq!(got[0], ex("GET", "/f.txt", 200, Some(12)));
    assert_eq!((got[1].1.as_str(), got[1].2), ("/nothing", Some(404)));
    assert_eq!(got.len(), 2);
    assert_clean(&c);
}

#[test]
fn dns_over_udp() {
    let (records, c) = replay_pcap("dns.pcap");
    let dns: Vec<_> = records
        .iter()
        .filter_map(|r| match r {
            Record::Flow(f) => match &f.l7.as_ref()?.record {
                L7Record::Dns(d) => Some((
                    f.l7.as_ref().unwrap().r#type,
                    f.l7.as_ref().unwrap().latency_ns,
                    d.clone(),
                )),
                _ => None,
            },
            _ => None,
        })
        .collect();
    assert_eq!(dns.len(), 8);
    let responses: Vec<_> = dns.iter().filter(|d| d.0 == L7Type::Response).collect();
    assert!(
        responses.iter().all(|r| r.1.is_some()),
        "every answer pairs with its query"
    );
    let ip = |s: &str| s.parse::<IpAddr>().unwrap();
    assert_eq!(responses[0].2.query, "example.test.");
    assert_eq!(responses[0].2.qtypes, vec!["A"]);
    assert_eq!(
        responses[0].2.ips,
        vec![ip("198.18.0.10"), ip("198.18.0.11")]
    );
    assert_eq!(responses[0].2.ttl, Some(60));
    assert_eq!(responses[1].2.qtypes, vec!["AAAA"]);
    assert_eq!(responses[1].2.ips, vec![ip("2001:db8::10")]);
    assert_eq!(responses[1].2.ttl, Some(120));
    assert_eq!(responses[2].2.query, "www.test.");
    assert_eq!(responses[2].2.cnames, vec!["example.test."]);
    assert_eq!(
        responses[2].2.ips,
        vec![ip("198.18.0.10"), ip("198.18.0.11")]
    );
    assert_eq!(responses[3].2.query, "missing.test.");
    assert_eq!(responses[3].2.rcode, Some(3));
    assert!(responses[3].2.ips.is_empty());
    assert_eq!(c.dns_parse_errors, 0);
    assert_eq!(c.dns_unmatched_responses, 0);
}

#[test]
fn linux_cooked_capture_gives_direction_and_interface() {
    let (records, c) = replay_pcap("cooked.pcap");
    assert_eq!(exchanges(&records), vec![ex("GET", "/b", 200, Some(12))]);
    // Captured on the client host: the request leaves, so a local client made it.
    let s = spans(&records)[0];
    assert_eq!(s.kind, flows::record::SpanKind::Client);
    assert_ne!(s.ifindex, 0, "SLL2 carries the interface index");
    let dirs: Vec<_> = records
        .iter()
        .filter_map(|r| match r {
            Record::Flow(f) => Some((f.l7.as_ref().unwrap().r#type, f.traffic_direction)),
            _ => None,
        })
        .collect();
    use flows::packet::Direction::{Egress, Ingress};
    assert_eq!(
        dirs,
        vec![(L7Type::Request, Egress), (L7Type::Response, Ingress)]
    );
    assert_clean(&c);
}

/// tshark's view: requests `(method, uri)` and final response codes, in capture order.
fn tshark_http(name: &str) -> (Vec<(String, String)>, Vec<u16>) {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data")
        .join(name);
    let out = Command::new("tshark")
        .args(["-r"])
        .arg(&path)
        .args(["-Y", "http", "-T", "fields", "-E", "separator=|"])
        .args([
            "-e",
            "http.request.method",
            "-e",
            "http.request.uri",
            "-e",
            "http.response.code",
        ])
        .output()
        .expect("tshark must be installed for the differential test (apt-get install tshark)");
    assert!(
        out.status.success(),
        "tshark failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut reqs = Vec::new();
    let mut codes = Vec::new();
    for line in String::from_utf8(out.stdout).unwrap().lines() {
        let f: Vec<&str> = line.split('|').collect();
        if !f[0].is_empty() {
            // Pipelined requests in one segment come out comma-joined.
            for (m, u) in f[0].split(',').zip(f[1].split(',')) {
                reqs.push((m.to_string(), u.to_string()));
            }
        }
        for code in f[2].split(',').filter(|c| !c.is_empty()) {
            let code: u16 = code.parse().unwrap();
            // 1xx other than 101 are informational; we count them, not report them.
            if code >= 200 || code == 101 {
                codes.push(code);
            }
        }
    }
    (reqs, codes)
}

#[test]
fn tshark_agrees() {
    for name in [
        "keepalive.pcap",
        "pipeline.pcap",
        "odd.pcap",
        "upgrade.pcap",
        "ipv6.pcap",
        "pyserver.pcap",
    ] {
        let (records, _) = replay_pcap(name);
        let mut reqs = Vec::new();
        let mut codes = Vec::new();
        for r in &records {
            if let Record::Flow(f) = r {
                if let Some(l7) = &f.l7 {
                    if let L7Record::Http(h) = &l7.record {
                        match l7.r#type {
                            L7Type::Request => {
                                let uri = h.url.split_once("://").map_or(&*h.url, |(_, rest)| {
                                    rest.find('/').map_or("/", |i| &rest[i..])
                                });
                                reqs.push((h.method.to_string(), uri.to_string()));
                            }
                            L7Type::Response => codes.push(h.code.unwrap()),
                        }
                    }
                }
            }
        }
        let (t_reqs, t_codes) = tshark_http(name);
        assert!(!t_reqs.is_empty(), "{name}: tshark saw no HTTP");
        assert_eq!(reqs, t_reqs, "{name}: requests differ from tshark");
        assert_eq!(codes, t_codes, "{name}: responses differ from tshark");
    }
}
