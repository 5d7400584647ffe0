//! Hubble's metric families, under Cilium's names and label names, so Hubble's Grafana
//! dashboards read flowscope unchanged. Each family and its labels are as Cilium registers
//! them (cilium/cilium `pkg/hubble/metrics/*/handler.go`, namespace `hubble`), without the
//! optional context labels (`sourceContext`/`destinationContext`: pod and namespace names,
//! which a node without Kubernetes identities does not have):
//! - `flow`: `hubble_flows_processed_total{protocol, type, subtype, verdict}` — every flow;
//! - `httpV2`: `hubble_http_requests_total{method, protocol, status, reporter}` and
//!   `hubble_http_request_duration_seconds{method, reporter}` — one per answered exchange;
//!   `reporter` is the role of the end that saw it (`client`/`server`), which Cilium reads
//!   from the flow's traffic direction at the endpoint and flowscope from the span's kind
//!   (the end's role, issue 22), so an exchange between two local processes counts on both
//!   sides as in Cilium;
//! - `dns`: `hubble_dns_queries_total` and `hubble_dns_responses_total{rcode, qtypes,
//!   ips_returned}` with Cilium's rcode names (`dns/rcode.go`);
//! - `drop`: `hubble_drop_total{reason, protocol}` for the kernel drops the agent reports
//!   (`kfree_skb`, agent/drops.rs), `reason` being Hubble's `DropReason` name that matches the
//!   kernel's reason (api/drop_reason.rs) or `DROP_REASON_UNKNOWN`;
//! - `tcp`: `hubble_tcp_flags_total{flag, family}` for SYN, SYN-ACK, FIN and RST of forwarded
//!   packets (with `--l4-records off` there are no packet records and it stays empty).
//!
//! Every label value here comes from a small fixed set (methods are `_OTHER`-folded on spans,
//! statuses are numbers) except `qtypes`, whose names are bounded by the 16-bit QTYPE space.

use std::sync::OnceLock;

use flows::packet::{Direction, TcpFlags};
use flows::record::{
    AttributeValue, Flow, FlowType, IpVersion, L7Record, L7Type, Layer4, Span, SpanKind, Verdict,
};
use prometheus_client::{
    encoding::EncodeLabelSet,
    metrics::{counter::Counter, family::Family, histogram::Histogram},
    registry::{Registry, Unit},
};

use super::span_fields::SpanFields;

/// Prometheus client_golang's default buckets, which Cilium's HTTP histogram uses (it sets
/// none).
const DEFAULT_BUCKETS: [f64; 11] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

fn histogram() -> Histogram {
    Histogram::new(DEFAULT_BUCKETS)
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct FlowLabels {
    protocol: &'static str,
    r#type: &'static str,
    subtype: &'static str,
    verdict: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct HttpLabels {
    method: String,
    protocol: &'static str,
    status: String,
    reporter: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct HttpDurationLabels {
    method: String,
    reporter: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct DnsLabels {
    rcode: &'static str,
    qtypes: String,
    ips_returned: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct DropLabels {
    reason: &'static str,
    protocol: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TcpFlagLabels {
    flag: &'static str,
    family: &'static str,
}

/// Hubble's flow, HTTP, DNS, drop and TCP metric families.
#[derive(Debug)]
pub struct HubbleMetrics {
    flows: Family<FlowLabels, Counter>,
    http_requests: Family<HttpLabels, Counter>,
    http_duration: Family<HttpDurationLabels, Histogram, fn() -> Histogram>,
    dns_queries: Family<DnsLabels, Counter>,
    dns_responses: Family<DnsLabels, Counter>,
    drops: Family<DropLabels, Counter>,
    tcp_flags: Family<TcpFlagLabels, Counter>,
    /// `flows`' counters by [`flow_index`], each made on its label set's first flow (a series
    /// shows once counted, as before): every label comes from a small fixed set, so a flow
    /// costs an index instead of `Family::get_or_create`'s lock and SipHash of four labels.
    flow_counters: Box<[OnceLock<Counter>]>,
    /// `tcp_flags`' counters by flag and family index, made like `flow_counters`.
    tcp_flag_counters: [[OnceLock<Counter>; 2]; 4],
}

/// Cilium's `v1.FlowProtocol` names, indexed by [`flow_protocol`].
const PROTOCOLS: [&str; 7] = [
    "DNS",
    "HTTP",
    "TCP",
    "UDP",
    "ICMPv4",
    "ICMPv6",
    "Unknown L4",
];
/// Hubble's flow `type` and `subtype` pairs.
const FLOW_TYPES: [(&str, &str); 6] = [
    ("Drop", ""),
    ("L7", "DNS"),
    ("L7", "HTTP"),
    ("L7", ""),
    // The trace observation points convert.rs gives L3/L4 flows.
    ("Trace", "from-endpoint"),
    ("Trace", "to-endpoint"),
];
/// Hubble's verdict names.
const VERDICTS: [&str; 2] = ["FORWARDED", "DROPPED"];
/// The TCP flags `hubble_tcp_flags_total` counts, and the address families.
const TCP_FLAGS: [&str; 4] = ["FIN", "SYN", "SYN-ACK", "RST"];
const FAMILIES: [&str; 2] = ["IPv4", "IPv6"];

/// The place of a (protocol, type, verdict) index triple in `flow_counters`.
fn flow_index(protocol: usize, flow_type: usize, verdict: usize) -> usize {
    (protocol * FLOW_TYPES.len() + flow_type) * VERDICTS.len() + verdict
}

impl HubbleMetrics {
    /// Registers the families in `registry`.
    pub fn new(registry: &mut Registry) -> Self {
        let m = Self {
            flows: Family::default(),
            http_requests: Family::default(),
            http_duration: Family::new_with_constructor(histogram),
            dns_queries: Family::default(),
            dns_responses: Family::default(),
            drops: Family::default(),
            tcp_flags: Family::default(),
            flow_counters: (0..PROTOCOLS.len() * FLOW_TYPES.len() * VERDICTS.len())
                .map(|_| OnceLock::new())
                .collect(),
            tcp_flag_counters: Default::default(),
        };
        // prometheus-client appends `_total` to counters, `_seconds` to the unit'd histogram.
        registry.register(
            "hubble_flows_processed",
            "Total number of flows processed",
            m.flows.clone(),
        );
        registry.register(
            "hubble_http_requests",
            "Count of HTTP requests",
            m.http_requests.clone(),
        );
        registry.register_with_unit(
            "hubble_http_request_duration",
            "Quantiles of HTTP request duration in seconds",
            Unit::Seconds,
            m.http_duration.clone(),
        );
        registry.register(
            "hubble_dns_queries",
            "Number of DNS queries observed",
            m.dns_queries.clone(),
        );
        registry.register(
            "hubble_dns_responses",
            "Number of DNS responses observed",
            m.dns_responses.clone(),
        );
        registry.register("hubble_drop", "Number of drops", m.drops.clone());
        registry.register(
            "hubble_tcp_flags",
            "TCP flag occurrences",
            m.tcp_flags.clone(),
        );
        m
    }

    /// Counts one flow record in the flow, DNS, drop and TCP families.
    pub fn observe_flow(&self, f: &Flow) {
        self.observe_flow_dropped_for(f, "UNKNOWN_REASON");
    }

    /// Counts a flow the kernel dropped, under Hubble's `DropReason` name (Cilium's drop
    /// handler labels `reason` with the flow's `drop_reason_desc`).
    pub fn observe_dropped_flow(&self, f: &Flow, reason: &'static str) {
        self.observe_flow_dropped_for(f, reason);
    }

    fn observe_flow_dropped_for(&self, f: &Flow, drop_reason: &'static str) {
        let protocol = flow_protocol(f);
        let flow_type = match (f.verdict, f.flow_type, &f.l7) {
            (Verdict::Dropped, ..) => 0,
            (_, FlowType::L7, Some(l7)) => match l7.record {
                L7Record::Dns(_) => 1,
                L7Record::Http(_) => 2,
            },
            (_, FlowType::L7, None) => 3,
            (_, FlowType::L3L4, _) => match f.traffic_direction {
                Direction::Egress => 4,
                _ => 5,
            },
        };
        let verdict = match f.verdict {
            Verdict::Forwarded => 0,
            Verdict::Dropped => 1,
        };
        self.flow_counters[flow_index(protocol, flow_type, verdict)]
            .get_or_init(|| {
                let (r#type, subtype) = FLOW_TYPES[flow_type];
                self.flows.get_or_create_owned(&FlowLabels {
                    protocol: PROTOCOLS[protocol],
                    r#type,
                    subtype,
                    verdict: VERDICTS[verdict],
                })
            })
            .inc();
        let protocol = PROTOCOLS[protocol];
        if f.verdict == Verdict::Dropped {
            let labels = DropLabels {
                reason: drop_reason,
                protocol,
            };
            self.drops.get_or_create(&labels).inc();
            return;
        }
        if let Some(l7) = &f.l7 {
            if let L7Record::Dns(d) = &l7.record {
                let labels = DnsLabels {
                    rcode: match l7.r#type {
                        L7Type::Request => "",
                        L7Type::Response => rcode_name(d.rcode.unwrap_or(0)),
                    },
                    qtypes: d.qtypes.join(","),
                    ips_returned: d.ips.len().to_string(),
                };
                match l7.r#type {
                    L7Type::Request => self.dns_queries.get_or_create(&labels).inc(),
                    L7Type::Response => self.dns_responses.get_or_create(&labels).inc(),
                };
            }
            return;
        }
        if let Layer4::Tcp { flags, .. } = f.l4 {
            let family = match f.ip.ip_version {
                IpVersion::IPv4 => 0,
                IpVersion::IPv6 => 1,
            };
            let has = |x: TcpFlags| flags.0 & x.0 != 0;
            // An index into TCP_FLAGS.
            let count = |flag: usize| {
                self.tcp_flag_counters[flag][family]
                    .get_or_init(|| {
                        self.tcp_flags.get_or_create_owned(&TcpFlagLabels {
                            flag: TCP_FLAGS[flag],
                            family: FAMILIES[family],
                        })
                    })
                    .inc();
            };
            if has(TcpFlags::FIN) {
                count(0);
            }
            if has(TcpFlags::SYN) {
                count(if has(TcpFlags::ACK) { 2 } else { 1 });
            }
            if has(TcpFlags::RST) {
                count(3);
            }
        }
    }

    /// The request counter and duration histogram of one answered HTTP exchange (or gRPC
    /// call) from the span `s` of one of its ends (`p` are its attributes); None when it has
    /// no response or is INTERNAL.
    pub fn span_handles(&self, s: &Span, p: &SpanFields<'_>) -> Option<(Counter, Histogram)> {
        let Some(AttributeValue::Int(status)) = p.http_status else {
            // Cilium counts RESPONSE flows: an exchange without a response has none.
            return None;
        };
        let reporter = match s.kind {
            SpanKind::Client => "client",
            SpanKind::Server => "server",
            SpanKind::Internal => return None,
        };
        let method = match p.http_method {
            Some(AttributeValue::String(m)) => m.to_string(),
            // gRPC calls are POSTs (gRPC over HTTP/2, "Requests").
            _ if p.rpc_system.is_some() => "POST".to_string(),
            _ => String::new(),
        };
        let protocol = match p.protocol_version {
            Some(AttributeValue::String(v)) if v == "2" => "HTTP/2",
            Some(AttributeValue::String(v)) if v == "1.0" => "HTTP/1.0",
            _ => "HTTP/1.1",
        };
        let requests = self.http_requests.get_or_create_owned(&HttpLabels {
            method: method.clone(),
            protocol,
            status: status.to_string(),
            reporter,
        });
        let duration = self
            .http_duration
            .get_or_create_owned(&HttpDurationLabels { method, reporter });
        Some((requests, duration))
    }
}

/// Cilium's `v1.FlowProtocol`: the L7 protocol, else the L4 one (an index into
/// [`PROTOCOLS`]).
fn flow_protocol(f: &Flow) -> usize {
    match (&f.l7, f.verdict) {
        (Some(l7), Verdict::Forwarded) if f.flow_type == FlowType::L7 => match l7.record {
            L7Record::Dns(_) => 0,
            L7Record::Http(_) => 1,
        },
        _ => match f.l4 {
            Layer4::Tcp { .. } => 2,
            Layer4::Udp { .. } => 3,
            Layer4::Icmpv4 { .. } => 4,
            Layer4::Icmpv6 { .. } => 5,
            Layer4::Other { .. } => 6,
        },
    }
}

/// Cilium's DNS rcode names (`pkg/hubble/metrics/dns/rcode.go`; RFC 6895 §2.3 codes).
fn rcode_name(rcode: u16) -> &'static str {
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
        9 => "Not Authorized",
        10 => "Name not contained in zone",
        11 => "DSO-TYPE Not Implemented",
        16 => "Bad OPT Version",
        17 => "Key not recognized",
        18 => "Signature out of time window",
        19 => "Bad TKEY Mode",
        20 => "Duplicate key name",
        21 => "Algorithm not supported",
        22 => "Bad Truncation",
        23 => "Bad/missing Server Cookie",
        // Cilium's map lookup gives "" for codes it does not name.
        _ => "",
    }
}
