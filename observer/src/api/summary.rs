//! `Flow.summary` (Hubble field 100000): the one phrase the `hubble` CLI prints in its SUMMARY
//! column, in exactly the wording Cilium's parsers give it, so that compact/dict/table output
//! against flowscope reads like output against Cilium.
//!
//! Cilium builds it in two places, and so does this module:
//! - L3/L4 (pkg/hubble/parser/threefour `decodeLayers`): the name of the innermost layer
//!   gopacket decoded — `TCP Flags: SYN, ACK`, `UDP`, `SCTP`, `ICMPv4 EchoRequest`,
//!   `ICMPv6 DestinationUnreachable(PortUnreachable)`, or `IPv4`/`IPv6` when the transport is
//!   one Hubble does not decode;
//! - L7 (pkg/hubble/parser/seven `httpSummary`, `dnsSummary`): `HTTP/1.1 GET http://h/p`,
//!   `HTTP/1.1 200 12ms (GET http://h/p)`, `DNS Query example.com. A`,
//!   `DNS Answer "192.0.2.1" TTL: 30 (Query example.com. A)`. gRPC is HTTP/2 there
//!   (`HTTP/2 POST http://h/pkg.Service/Method`), as Envoy reports it to Cilium.
//!
//! It is computed from the wire flow when a client reads it (never per packet).

use std::fmt::Write as _;

use super::proto::flow::{
    layer4::Protocol, layer7::Record, Dns, Flow, Http, IpVersion, L7FlowType, TcpFlags,
};

/// The summary Cilium would give `f`.
pub fn summary(f: &Flow) -> String {
    if let Some(l7) = &f.l7 {
        // Cilium summarises an L7 record by its record alone; an L7 flow without one (or a
        // SAMPLE) has an empty summary there too.
        let kind = L7FlowType::try_from(l7.r#type).unwrap_or(L7FlowType::UnknownL7Type);
        return match &l7.record {
            Some(Record::Http(h)) => http(kind, h, l7.latency_ns),
            Some(Record::Dns(d)) => dns(kind, d),
            None => String::new(),
        };
    }
    match f.l4.as_ref().and_then(|l| l.protocol.as_ref()) {
        Some(Protocol::Tcp(t)) => {
            format!("TCP Flags: {}", tcp_flags(&t.flags.unwrap_or_default()))
        }
        Some(Protocol::Udp(_)) => "UDP".to_string(),
        Some(Protocol::Sctp(_)) => "SCTP".to_string(),
        Some(Protocol::IcmPv4(i)) => format!("ICMPv4 {}", icmp_type_code(ICMPV4, i.r#type, i.code)),
        Some(Protocol::IcmPv6(i)) => format!("ICMPv6 {}", icmp_type_code(ICMPV6, i.r#type, i.code)),
        // A transport gopacket does not decode: the IP layer is the last one.
        None => match f.ip.as_ref().map(|ip| IpVersion::try_from(ip.ip_version)) {
            Some(Ok(IpVersion::IPv4)) => "IPv4".to_string(),
            Some(Ok(IpVersion::IPv6)) => "IPv6".to_string(),
            _ => String::new(),
        },
    }
}

/// Cilium's `getTCPFlags`: set flags in its fixed order, comma-separated.
fn tcp_flags(f: &TcpFlags) -> String {
    [
        (f.syn, "SYN"),
        (f.ack, "ACK"),
        (f.rst, "RST"),
        (f.fin, "FIN"),
        (f.psh, "PSH"),
        (f.urg, "URG"),
        (f.ece, "ECE"),
        (f.cwr, "CWR"),
        (f.ns, "NS"),
    ]
    .iter()
    .filter(|(set, _)| *set)
    .map(|(_, name)| *name)
    .collect::<Vec<_>>()
    .join(", ")
}

/// Cilium's `httpSummary`: `PROTO METHOD URL` for a request, `PROTO CODE Nms (METHOD URL)`
/// for a response (latency truncated to whole milliseconds).
fn http(kind: L7FlowType, h: &Http, latency_ns: u64) -> String {
    match kind {
        L7FlowType::Request => format!("{} {} {}", h.protocol, h.method, h.url),
        L7FlowType::Response => format!(
            "{} {} {}ms ({} {})",
            h.protocol,
            h.code,
            latency_ns / 1_000_000,
            h.method,
            h.url
        ),
        _ => String::new(),
    }
}

/// Cilium's `dnsSummary`. A response names its source: `Proxy` when Cilium's DNS proxy saw
/// it (`observation_source: proxy`), `Query` otherwise — flowscope reads DNS off the wire,
/// which is Cilium's non-proxy case.
fn dns(kind: L7FlowType, d: &Dns) -> String {
    let qtypes = d.qtypes.join(",");
    match kind {
        L7FlowType::Request => format!("DNS Query {} {qtypes}", d.query),
        L7FlowType::Response => {
            let answer = if d.rcode != 0 {
                format!("RCode: {}", rcode_name(d.rcode))
            } else {
                let mut parts = Vec::new();
                if !d.ips.is_empty() {
                    parts.push(go_quote(&d.ips.join(",")));
                }
                if !d.cnames.is_empty() {
                    parts.push(format!("CNAMEs: {}", go_quote(&d.cnames.join(","))));
                }
                parts.join(" ")
            };
            let source = if d.observation_source == "proxy" {
                "Proxy"
            } else {
                "Query"
            };
            format!(
                "DNS Answer {answer} TTL: {} ({source} {} {qtypes})",
                d.ttl, d.query
            )
        }
        _ => String::new(),
    }
}

/// gopacket's `DNSResponseCode.String()` (the names Cilium prints), RFC 1035 §4.1.1,
/// RFC 2136 §2.2, RFC 2845 §4.3, RFC 2930 §4.1, RFC 4635 §5, RFC 6891 §9, RFC 7873 §8.
fn rcode_name(rcode: u32) -> &'static str {
    match rcode {
        0 => "No Error",
        1 => "Format Error",
        2 => "Server Failure",
        3 => "Non-Existent Domain",
        4 => "Not Implemented",
        5 => "Query Refused",
        6 => "Name Exists when it should not",
        7 => "RR Set Exists when it should not",
        8 => "RR Set that should exist does not",
        9 => "Server Not Authoritative for zone",
        10 => "Name not contained in zone",
        16 => "Bad OPT Version",
        17 => "Key not recognized",
        18 => "Signature out of time window",
        19 => "Bad TKEY Mode",
        20 => "Duplicate key name",
        21 => "Algorithm not supported",
        22 => "Bad Truncation",
        23 => "Bad Cookie",
        _ => "Unknown",
    }
}

/// Go's `%q` (strconv.Quote): double quotes, with `"` and `\` escaped and control
/// characters written as Go escapes, so names with odd bytes print as Cilium prints them.
fn go_quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\u{7}' => out.push_str("\\a"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{b}' => out.push_str("\\v"),
            c if (c as u32) < 0x20 || c == '\u{7f}' => {
                let _ = write!(out, "\\x{:02x}", c as u32);
            }
            c if c.is_control() => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// One ICMP type: its name and, when the type uses codes, the names of its codes.
type IcmpType = (u32, &'static str, &'static [(u32, &'static str)]);

/// gopacket's `icmpv4TypeCodeInfo` (RFC 792, RFC 950, RFC 1256, RFC 1812 §5.2.7.1).
const ICMPV4: &[IcmpType] = &[
    (0, "EchoReply", &[]),
    (
        3,
        "DestinationUnreachable",
        &[
            (0, "Net"),
            (1, "Host"),
            (2, "Protocol"),
            (3, "Port"),
            (4, "FragmentationNeeded"),
            (5, "SourceRoutingFailed"),
            (6, "NetUnknown"),
            (7, "HostUnknown"),
            (8, "SourceIsolated"),
            (9, "NetAdminProhibited"),
            (10, "HostAdminProhibited"),
            (11, "NetTOS"),
            (12, "HostTOS"),
            (13, "CommAdminProhibited"),
            (14, "HostPrecedence"),
            (15, "PrecedenceCutoff"),
        ],
    ),
    (4, "SourceQuench", &[]),
    (
        5,
        "Redirect",
        &[(0, "Net"), (1, "Host"), (2, "TOS+Net"), (3, "TOS+Host")],
    ),
    (8, "EchoRequest", &[]),
    (9, "RouterAdvertisement", &[]),
    (10, "RouterSolicitation", &[]),
    (
        11,
        "TimeExceeded",
        &[(0, "TTLExceeded"), (1, "FragmentReassemblyTimeExceeded")],
    ),
    (
        12,
        "ParameterProblem",
        &[
            (0, "PointerIndicatesError"),
            (1, "MissingOption"),
            (2, "BadLength"),
        ],
    ),
    (13, "TimestampRequest", &[]),
    (14, "TimestampReply", &[]),
    (15, "InfoRequest", &[]),
    (16, "InfoReply", &[]),
    (17, "AddressMaskRequest", &[]),
    (18, "AddressMaskReply", &[]),
];

/// gopacket's `icmpv6TypeCodeInfo` (RFC 4443 §3–4, RFC 4861 §4).
const ICMPV6: &[IcmpType] = &[
    (
        1,
        "DestinationUnreachable",
        &[
            (0, "NoRouteToDst"),
            (1, "AdminProhibited"),
            (2, "BeyondScopeOfSrc"),
            (3, "AddressUnreachable"),
            (4, "PortUnreachable"),
            (5, "SrcAddressFailedPolicy"),
            (6, "RejectRouteToDst"),
        ],
    ),
    (2, "PacketTooBig", &[]),
    (
        3,
        "TimeExceeded",
        &[
            (0, "HopLimitExceeded"),
            (1, "FragmentReassemblyTimeExceeded"),
        ],
    ),
    (
        4,
        "ParameterProblem",
        &[
            (0, "ErroneousHeaderField"),
            (1, "UnrecognizedNextHeader"),
            (2, "UnrecognizedIPv6Option"),
        ],
    ),
    (128, "EchoRequest", &[]),
    (129, "EchoReply", &[]),
    (133, "RouterSolicitation", &[]),
    (134, "RouterAdvertisement", &[]),
    (135, "NeighborSolicitation", &[]),
    (136, "NeighborAdvertisement", &[]),
    (137, "Redirect", &[]),
];

/// gopacket's `ICMPv{4,6}TypeCode.String()`: `Type`, `Type(Code)`, `Type(Code: N)` for a
/// code the type does not define (or any code on a type without codes), `T(C)` for an
/// unknown type.
fn icmp_type_code(table: &[IcmpType], t: u32, code: u32) -> String {
    let Some((_, name, codes)) = table.iter().find(|(n, _, _)| *n == t) else {
        return format!("{t}({code})");
    };
    if codes.is_empty() && code == 0 {
        return (*name).to_string();
    }
    match codes.iter().find(|(c, _)| *c == code) {
        Some((_, code_name)) => format!("{name}({code_name})"),
        None => format!("{name}(Code: {code})"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::proto::flow::{IcmPv4, IcmPv6, Ip, Layer4, Layer7, Sctp, Tcp, Udp};

    fn l4(p: Protocol) -> Flow {
        Flow {
            ip: Some(Ip {
                ip_version: IpVersion::IPv4 as i32,
                ..Default::default()
            }),
            l4: Some(Layer4 { protocol: Some(p) }),
            ..Default::default()
        }
    }

    fn tcp(flags: TcpFlags) -> Flow {
        l4(Protocol::Tcp(Tcp {
            source_port: 1,
            destination_port: 2,
            flags: Some(flags),
        }))
    }

    fn icmp4(t: u32, code: u32) -> Flow {
        l4(Protocol::IcmPv4(IcmPv4 { r#type: t, code }))
    }

    fn icmp6(t: u32, code: u32) -> Flow {
        l4(Protocol::IcmPv6(IcmPv6 { r#type: t, code }))
    }

    fn l7(kind: L7FlowType, latency_ns: u64, record: Record) -> Flow {
        Flow {
            l7: Some(Layer7 {
                r#type: kind as i32,
                latency_ns,
                record: Some(record),
            }),
            // The L4 layer of an L7 flow never shows in its summary.
            ..tcp(TcpFlags {
                psh: true,
                ack: true,
                ..Default::default()
            })
        }
    }

    fn http(protocol: &str, method: &str, url: &str, code: u32) -> Record {
        Record::Http(Http {
            code,
            method: method.into(),
            url: url.into(),
            protocol: protocol.into(),
            headers: vec![],
        })
    }

    fn dns(query: &str, qtypes: &[&str], rcode: u32, ips: &[&str], cnames: &[&str]) -> Record {
        Record::Dns(Dns {
            query: query.into(),
            ips: ips.iter().map(|s| s.to_string()).collect(),
            ttl: if ips.is_empty() && cnames.is_empty() {
                0
            } else {
                30
            },
            cnames: cnames.iter().map(|s| s.to_string()).collect(),
            observation_source: String::new(),
            rcode,
            qtypes: qtypes.iter().map(|s| s.to_string()).collect(),
            ..Default::default()
        })
    }

    /// Every flow kind and the string Cilium gives it.
    #[test]
    fn summaries_per_flow_kind() {
        let syn_ack = TcpFlags {
            syn: true,
            ack: true,
            ..Default::default()
        };
        let every = TcpFlags {
            fin: true,
            syn: true,
            rst: true,
            psh: true,
            ack: true,
            urg: true,
            ece: true,
            cwr: true,
            ns: true,
        };
        let mut udp6 = l4(Protocol::Udp(Udp::default()));
        udp6.ip.as_mut().unwrap().ip_version = IpVersion::IPv6 as i32;
        let mut gre = l4(Protocol::Udp(Udp::default()));
        gre.l4 = None;
        let mut gre6 = gre.clone();
        gre6.ip.as_mut().unwrap().ip_version = IpVersion::IPv6 as i32;
        let mut proxy_dns = l7(
            L7FlowType::Response,
            0,
            dns("example.com.", &["A"], 0, &["192.0.2.1"], &[]),
        );
        if let Some(Record::Dns(d)) = proxy_dns.l7.as_mut().unwrap().record.as_mut() {
            d.observation_source = "proxy".into();
        }
        use L7FlowType::{Request, Response};
        let table: Vec<(&str, Flow, &str)> = vec![
            ("tcp syn", tcp(TcpFlags { syn: true, ..Default::default() }), "TCP Flags: SYN"),
            ("tcp syn-ack", tcp(syn_ack), "TCP Flags: SYN, ACK"),
            ("tcp every flag, Cilium's order", tcp(every), "TCP Flags: SYN, ACK, RST, FIN, PSH, URG, ECE, CWR, NS"),
            ("tcp no flags", tcp(TcpFlags::default()), "TCP Flags: "),
            ("udp", l4(Protocol::Udp(Udp::default())), "UDP"),
            ("udp over ipv6", udp6, "UDP"),
            ("sctp", l4(Protocol::Sctp(Sctp::default())), "SCTP"),
            ("undecoded transport, ipv4", gre, "IPv4"),
            ("undecoded transport, ipv6", gre6, "IPv6"),
            ("no layers", Flow::default(), ""),
            ("icmpv4 echo request", icmp4(8, 0), "ICMPv4 EchoRequest"),
            ("icmpv4 echo reply", icmp4(0, 0), "ICMPv4 EchoReply"),
            ("icmpv4 port unreachable", icmp4(3, 3), "ICMPv4 DestinationUnreachable(Port)"),
            ("icmpv4 frag needed", icmp4(3, 4), "ICMPv4 DestinationUnreachable(FragmentationNeeded)"),
            ("icmpv4 ttl exceeded", icmp4(11, 0), "ICMPv4 TimeExceeded(TTLExceeded)"),
            ("icmpv4 redirect tos+host", icmp4(5, 3), "ICMPv4 Redirect(TOS+Host)"),
            ("icmpv4 unknown code", icmp4(3, 99), "ICMPv4 DestinationUnreachable(Code: 99)"),
            ("icmpv4 code on a codeless type", icmp4(8, 1), "ICMPv4 EchoRequest(Code: 1)"),
            ("icmpv4 unknown type", icmp4(42, 7), "ICMPv4 42(7)"),
            ("icmpv6 echo request", icmp6(128, 0), "ICMPv6 EchoRequest"),
            ("icmpv6 port unreachable", icmp6(1, 4), "ICMPv6 DestinationUnreachable(PortUnreachable)"),
            ("icmpv6 packet too big", icmp6(2, 0), "ICMPv6 PacketTooBig"),
            ("icmpv6 hop limit", icmp6(3, 0), "ICMPv6 TimeExceeded(HopLimitExceeded)"),
            ("icmpv6 neighbor solicitation", icmp6(135, 0), "ICMPv6 NeighborSolicitation"),
            ("icmpv6 MLD (not in gopacket's table)", icmp6(143, 0), "ICMPv6 143(0)"),
            (
                "http request",
                l7(Request, 0, http("HTTP/1.1", "GET", "http://host/path", 0)),
                "HTTP/1.1 GET http://host/path",
            ),
            (
                "http response, latency truncated to ms",
                l7(Response, 12_999_999, http("HTTP/1.1", "GET", "http://host/path", 200)),
                "HTTP/1.1 200 12ms (GET http://host/path)",
            ),
            (
                "http response without a request",
                l7(Response, 0, http("HTTP/1.1", "", "", 502)),
                "HTTP/1.1 502 0ms ( )",
            ),
            (
                "grpc request",
                l7(Request, 0, http("HTTP/2", "POST", "http://svc:50051/helloworld.Greeter/SayHello", 0)),
                "HTTP/2 POST http://svc:50051/helloworld.Greeter/SayHello",
            ),
            (
                "grpc response",
                l7(Response, 3_000_000, http("HTTP/2", "POST", "http://svc:50051/helloworld.Greeter/SayHello", 200)),
                "HTTP/2 200 3ms (POST http://svc:50051/helloworld.Greeter/SayHello)",
            ),
            (
                "dns query",
                l7(Request, 0, dns("example.com.", &["A"], 0, &[], &[])),
                "DNS Query example.com. A",
            ),
            (
                "dns query, two types",
                l7(Request, 0, dns("example.com.", &["A", "AAAA"], 0, &[], &[])),
                "DNS Query example.com. A,AAAA",
            ),
            (
                "dns answer",
                l7(Response, 0, dns("example.com.", &["A"], 0, &["192.0.2.1"], &[])),
                "DNS Answer \"192.0.2.1\" TTL: 30 (Query example.com. A)",
            ),
            (
                "dns answer, addresses and cnames",
                l7(Response, 0, dns("www.example.com.", &["A"], 0, &["192.0.2.1", "192.0.2.2"], &["example.com."])),
                "DNS Answer \"192.0.2.1,192.0.2.2\" CNAMEs: \"example.com.\" TTL: 30 (Query www.example.com. A)",
            ),
            (
                "dns answer, no records",
                l7(Response, 0, dns("example.com.", &["AAAA"], 0, &[], &[])),
                "DNS Answer  TTL: 0 (Query example.com. AAAA)",
            ),
            (
                "dns nxdomain",
                l7(Response, 0, dns("nope.example.", &["A"], 3, &[], &[])),
                "DNS Answer RCode: Non-Existent Domain TTL: 0 (Query nope.example. A)",
            ),
            (
                "dns servfail",
                l7(Response, 0, dns("example.com.", &["A"], 2, &[], &[])),
                "DNS Answer RCode: Server Failure TTL: 0 (Query example.com. A)",
            ),
            (
                "dns unassigned rcode",
                l7(Response, 0, dns("example.com.", &["A"], 12, &[], &[])),
                "DNS Answer RCode: Unknown TTL: 0 (Query example.com. A)",
            ),
            ("dns answer seen by Cilium's proxy", proxy_dns, "DNS Answer \"192.0.2.1\" TTL: 30 (Proxy example.com. A)"),
            (
                "l7 sample",
                l7(L7FlowType::Sample, 0, http("HTTP/1.1", "GET", "/", 0)),
                "",
            ),
        ];
        for (what, flow, want) in table {
            assert_eq!(summary(&flow), want, "{what}");
        }
    }

    #[test]
    fn quoting_is_gos() {
        assert_eq!(go_quote("a.b"), "\"a.b\"");
        assert_eq!(go_quote("a\"b\\c"), "\"a\\\"b\\\\c\"");
        assert_eq!(go_quote("x\ty\u{1}\u{7f}"), "\"x\\ty\\x01\\x7f\"");
        assert_eq!(go_quote("\u{85}é"), "\"\\u0085é\"");
    }
}
