//! Engine flows ([`flows::record::Flow`]) to Hubble's wire `flow.Flow`, and back for what the
//! wire carries.
//!
//! Hubble's conventions followed here: `event_type.type` is 4 (MessageTypeTrace) for L3/L4
//! packets, 129 (MessageTypeAccessLog) for L7 and 1 (MessageTypeDrop) for drops; the trace
//! sub-type and `trace_observation_point` say which way the packet went (to-endpoint for
//! packets arriving at this host, from-endpoint for packets leaving it);
//! `traffic_direction` is the direction of the *connection* (INGRESS when the peer connected
//! to us), so a reply keeps its request's direction.

use std::net::IpAddr;

use flows::{
    l7::dns::rcode_name,
    l7::http2::frame::rst_stream::error_name,
    packet::{Direction, TcpFlags},
    record::{
        self, BodyError, DnsInfo, FlowType, GrpcStatus, GrpcStatusSource, Http2Info, HttpHeader,
        HttpInfo, IpInfo, L7Record, L7Type, Layer4, Layer7, ProcessInfo, StreamReset, TraceContext,
        Verdict,
    },
    trace::{InvalidTraceParent, SpanId, TraceId},
};
use prost_types::Timestamp;

use super::proto::{
    flow::{self as pb, layer4::Protocol, layer7::Record},
    flowscope::{DnsExtension, DnsQuestion, FlowExtension, Grpc, Http2, Process},
};

/// Cilium's MessageTypeDrop.
pub const EVENT_TYPE_DROP: i32 = 1;
/// Cilium's MessageTypeTrace (L3/L4 packets).
pub const EVENT_TYPE_TRACE: i32 = 4;
/// Cilium's MessageTypeAccessLog (L7 records).
pub const EVENT_TYPE_L7: i32 = 129;
/// Cilium's TraceToLxc sub-type, printed "to-endpoint".
pub const TRACE_TO_ENDPOINT: i32 = 0;
/// Cilium's TraceFromLxc sub-type, printed "from-endpoint".
pub const TRACE_FROM_ENDPOINT: i32 = 5;

/// `DNS.observation_source` of flowscope's DNS flows: read from captured packets (Cilium
/// fills `proxy` for what its DNS proxy saw).
pub const DNS_OBSERVATION_SOURCE: &str = "wire";

/// Why a wire flow can't become an engine flow.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ConvertError {
    /// `IP.source`/`IP.destination` missing or not an address.
    #[error("flow has no valid IP layer (source {src:?}, destination {dst:?})")]
    BadIp {
        /// The source string.
        src: String,
        /// The destination string.
        dst: String,
    },
    /// A port above 65535.
    #[error("port {0} is out of range")]
    BadPort(u32),
    /// An `l7` without an HTTP or DNS record.
    #[error("flow has an l7 layer with neither http nor dns")]
    NoL7Record,
    /// A trace or span id that is not hex of the right width.
    #[error("{0:?} is not a valid trace or span id")]
    BadId(String),
}

/// Nanoseconds since the Unix epoch as a protobuf Timestamp.
pub fn timestamp(ns: u64) -> Timestamp {
    Timestamp {
        seconds: (ns / 1_000_000_000) as i64,
        nanos: (ns % 1_000_000_000) as i32,
    }
}

/// A protobuf Timestamp as nanoseconds since the Unix epoch (0 before it).
pub fn timestamp_ns(t: &Timestamp) -> u64 {
    if t.seconds < 0 {
        return 0;
    }
    (t.seconds as u64)
        .saturating_mul(1_000_000_000)
        .saturating_add(t.nanos.max(0) as u64)
}

fn tcp_flags(f: TcpFlags) -> pb::TcpFlags {
    pb::TcpFlags {
        fin: f.contains(TcpFlags::FIN),
        syn: f.contains(TcpFlags::SYN),
        rst: f.contains(TcpFlags::RST),
        psh: f.contains(TcpFlags::PSH),
        ack: f.contains(TcpFlags::ACK),
        urg: f.contains(TcpFlags::URG),
        ece: f.contains(TcpFlags::ECE),
        cwr: f.contains(TcpFlags::CWR),
        ns: false,
    }
}

fn tcp_flags_back(f: &pb::TcpFlags) -> TcpFlags {
    let mut out = 0u8;
    for (set, bit) in [
        (f.fin, TcpFlags::FIN),
        (f.syn, TcpFlags::SYN),
        (f.rst, TcpFlags::RST),
        (f.psh, TcpFlags::PSH),
        (f.ack, TcpFlags::ACK),
        (f.urg, TcpFlags::URG),
        (f.ece, TcpFlags::ECE),
        (f.cwr, TcpFlags::CWR),
    ] {
        if set {
            out |= bit.0;
        }
    }
    TcpFlags(out)
}

/// `(service, method)` of a gRPC call: an HTTP request to `/package.Service/Method` sent with
/// `content-type: application/grpc*` or over HTTP/2 (gRPC over HTTP/2, PROTOCOL-HTTP2.md).
pub fn grpc_method(http: &HttpInfo) -> Option<(String, String)> {
    let is_grpc_type = http.headers.iter().any(|h| {
        h.key.eq_ignore_ascii_case("content-type") && h.value.starts_with("application/grpc")
    });
    if !is_grpc_type && !http.protocol.eq_ignore_ascii_case("HTTP/2") {
        return None;
    }
    let path = url_path(&http.url);
    let rest = path.strip_prefix('/')?;
    let (service, method) = rest.split_once('/')?;
    if service.is_empty() || method.is_empty() || method.contains('/') {
        return None;
    }
    if !is_grpc_type && !service.contains('.') {
        // Plain HTTP/2 with a two-segment path: only call it gRPC when it looks qualified.
        return None;
    }
    Some((service.to_string(), method.to_string()))
}

/// flowscope's gRPC extension of an HTTP flow: the method from the path (see
/// [`grpc_method`]) and, on responses, the call's status and how it was learned.
fn grpc_ext(http: &HttpInfo) -> Option<Grpc> {
    let status = http.http2.as_ref().and_then(|x| x.grpc.as_ref());
    let method = grpc_method(http);
    if method.is_none() && status.is_none() {
        return None;
    }
    let (service, method) = method.unwrap_or_default();
    Some(Grpc {
        service,
        method,
        status_code: status.map_or(0, |s| s.code),
        status_source: status
            .map(|s| s.source.as_str().to_string())
            .unwrap_or_default(),
        message: status.and_then(|s| s.message.clone()).unwrap_or_default(),
    })
}

/// The RFC 9113 §7 name of an HTTP/2 error code, or `0x..` for codes without one.
fn h2_error_name(code: u32) -> String {
    match error_name(code) {
        "UNKNOWN_ERROR" => format!("{code:#x}"),
        name => name.to_string(),
    }
}

/// The inverse of [`h2_error_name`].
fn h2_error_code(name: &str) -> Option<u32> {
    match name.strip_prefix("0x") {
        Some(hex) => u32::from_str_radix(hex, 16).ok(),
        None => (0..=0xd).find(|&c| error_name(c) == name),
    }
}

/// flowscope's HTTP/2 extension of an HTTP/2 flow.
fn http2_ext(http: &HttpInfo) -> Option<Http2> {
    let x = http.http2.as_deref()?;
    Some(Http2 {
        stream_id: x.stream_id,
        reset_error_code: x
            .reset
            .map(|r| h2_error_name(r.error_code))
            .unwrap_or_default(),
        reset_by_client: x.reset.is_some_and(|r| r.by_client),
        cancelled: x.cancelled,
    })
}

/// The engine's [`Http2Info`] back from the extension.
fn http2_info_back(ext: &FlowExtension) -> Option<Box<Http2Info>> {
    let x = ext.http2.as_ref()?;
    let grpc = ext.grpc.as_ref().and_then(|g| {
        let source = match g.status_source.as_str() {
            "trailers" => GrpcStatusSource::Trailers,
            "derived_from_http_status" => GrpcStatusSource::DerivedFromHttpStatus,
            "inferred_from_grpc_message" => GrpcStatusSource::InferredFromMessage,
            _ => return None,
        };
        Some(GrpcStatus {
            code: g.status_code,
            source,
            message: (!g.message.is_empty()).then(|| g.message.clone()),
        })
    });
    Some(Box::new(Http2Info {
        stream_id: x.stream_id,
        reset: h2_error_code(&x.reset_error_code).map(|error_code| StreamReset {
            error_code,
            by_client: x.reset_by_client,
        }),
        cancelled: x.cancelled,
        grpc,
    }))
}

/// The path part of an `http://host/path?query` URL or of a bare request target.
pub fn url_path(url: &str) -> &str {
    let after_scheme = match url.find("://") {
        Some(i) => {
            let rest = &url[i + 3..];
            match rest.find('/') {
                Some(j) => &rest[j..],
                None => "/",
            }
        }
        None => url,
    };
    let end = after_scheme.find(['?', '#']).unwrap_or(after_scheme.len());
    &after_scheme[..end]
}

/// Hubble's `traffic_direction`: the direction of the connection relative to this host.
fn connection_direction(packet: Direction, is_reply: Option<bool>) -> pb::TrafficDirection {
    let ingress = match (packet, is_reply) {
        (Direction::Unknown, _) => return pb::TrafficDirection::Unknown,
        (Direction::Ingress, Some(true)) => false,
        (Direction::Egress, Some(true)) => true,
        (Direction::Ingress, _) => true,
        (Direction::Egress, _) => false,
    };
    if ingress {
        pb::TrafficDirection::Ingress
    } else {
        pb::TrafficDirection::Egress
    }
}

/// Converts an engine flow to Hubble's wire flow, stamped with `node_name`, with flowscope's
/// extension packed in `extensions` when it has anything. `uuid` is left empty.
pub fn flow_to_proto(f: &record::Flow, node_name: &str) -> pb::Flow {
    let (mut flow, ext) = flow_to_wire(f, node_name);
    flow.extensions = (ext != FlowExtension::default()).then(|| ext.to_any());
    flow
}

/// The wire process message of an owner.
pub fn process_to_proto(p: &ProcessInfo) -> Process {
    Process {
        pid: p.pid,
        tid: p.tid.unwrap_or(0),
        comm: p.comm.as_deref().unwrap_or_default().to_string(),
        cgroup_id: p.cgroup_id.unwrap_or(0),
        container_id: p.container_id.as_deref().unwrap_or_default().to_string(),
        thread_name: p.thread_name.as_deref().unwrap_or_default().to_string(),
        agent: p.agent,
    }
}

/// An owner from its wire message.
fn process_from_proto(p: &Process) -> ProcessInfo {
    ProcessInfo {
        pid: p.pid,
        tid: (p.tid != 0).then_some(p.tid),
        comm: (!p.comm.is_empty()).then(|| p.comm.as_str().into()),
        cgroup_id: (p.cgroup_id != 0).then_some(p.cgroup_id),
        container_id: (!p.container_id.is_empty()).then(|| p.container_id.as_str().into()),
        thread_name: (!p.thread_name.is_empty()).then(|| p.thread_name.as_str().into()),
        agent: p.agent,
    }
}

/// Like [`flow_to_proto`], but with the extension returned unpacked (and `extensions` unset),
/// so that callers that add to it or only filter on it don't encode and decode it.
pub fn flow_to_wire(f: &record::Flow, node_name: &str) -> (pb::Flow, FlowExtension) {
    let l4 = match f.l4 {
        Layer4::Tcp {
            source_port,
            destination_port,
            flags,
        } => Some(Protocol::Tcp(pb::Tcp {
            source_port: source_port.into(),
            destination_port: destination_port.into(),
            flags: Some(tcp_flags(flags)),
        })),
        Layer4::Udp {
            source_port,
            destination_port,
        } => Some(Protocol::Udp(pb::Udp {
            source_port: source_port.into(),
            destination_port: destination_port.into(),
        })),
        Layer4::Icmpv4 { r#type, code } => Some(Protocol::IcmPv4(pb::IcmPv4 {
            r#type: r#type.into(),
            code: code.into(),
        })),
        Layer4::Icmpv6 { r#type, code } => Some(Protocol::IcmPv6(pb::IcmPv6 {
            r#type: r#type.into(),
            code: code.into(),
        })),
        Layer4::Other { .. } => None,
    };
    let mut grpc = None;
    let mut http_body_error = "";
    let mut http2 = None;
    let l7 = f.l7.as_ref().map(|l7| pb::Layer7 {
        r#type: match l7.r#type {
            L7Type::Request => pb::L7FlowType::Request,
            L7Type::Response => pb::L7FlowType::Response,
        } as i32,
        latency_ns: l7.latency_ns.unwrap_or(0),
        record: Some(match &l7.record {
            L7Record::Http(h) => {
                grpc = grpc_ext(h);
                http2 = http2_ext(h);
                http_body_error = h.body_error.map_or("", BodyError::as_str);
                Record::Http(pb::Http {
                    code: h.code.map(u32::from).unwrap_or(0),
                    method: h.method.to_string(),
                    url: h.url.to_string(),
                    protocol: h.protocol.to_string(),
                    headers: h
                        .headers
                        .iter()
                        .map(|x| pb::HttpHeader {
                            key: x.key.to_string(),
                            value: x.value.to_string(),
                        })
                        .collect(),
                })
            }
            L7Record::Dns(d) => Record::Dns(pb::Dns {
                query: d.query.clone(),
                ips: d.ips.iter().map(IpAddr::to_string).collect(),
                ttl: d.ttl.unwrap_or(0),
                cnames: d.cnames.clone(),
                // Cilium's DNS proxy says `proxy`; flowscope reads DNS off the wire. The
                // `hubble` CLI prints the source after the type (`dns-request wire`), so an
                // empty one would leave a double space there.
                observation_source: DNS_OBSERVATION_SOURCE.to_string(),
                rcode: d.rcode.map(u32::from).unwrap_or(0),
                qtypes: d.qtypes.clone(),
                rrtypes: d.rrtypes.clone(),
                flowscope: Some(DnsExtension {
                    id: d.id.into(),
                    questions: d
                        .questions
                        .iter()
                        .map(|q| DnsQuestion {
                            name: q.name.clone(),
                            qtype: q.qtype.clone(),
                        })
                        .collect(),
                    truncated: d.truncated,
                    response_only: d.response_only,
                    rcode_name: d.rcode.map(rcode_name).unwrap_or_default(),
                    doh: d.doh,
                }),
            }),
        }),
    });
    let is_l7 = f.flow_type == FlowType::L7;
    let (event_type, sub_type, point) = match (f.verdict, is_l7, f.traffic_direction) {
        (Verdict::Dropped, _, _) => (EVENT_TYPE_DROP, 0, pb::TraceObservationPoint::UnknownPoint),
        (_, true, _) => (EVENT_TYPE_L7, 0, pb::TraceObservationPoint::UnknownPoint),
        (_, false, Direction::Egress) => (
            EVENT_TYPE_TRACE,
            TRACE_FROM_ENDPOINT,
            pb::TraceObservationPoint::FromEndpoint,
        ),
        (_, false, _) => (
            EVENT_TYPE_TRACE,
            TRACE_TO_ENDPOINT,
            pb::TraceObservationPoint::ToEndpoint,
        ),
    };
    let process = f.process.as_ref().map(process_to_proto);
    let ext = FlowExtension {
        process,
        span_id: f
            .trace_context
            .map(|t| t.span_id.to_string())
            .unwrap_or_default(),
        parent_span_id: f
            .trace_context
            .and_then(|t| t.parent_span_id)
            .map(|s| s.to_string())
            .unwrap_or_default(),
        grpc,
        payload_bytes: f.payload_bytes,
        ip_len: f.ip_len,
        // The agent's owner of the other end, when it is local too.
        peer_process: f.peer_process.as_ref().map(process_to_proto),
        http_body_error: http_body_error.to_string(),
        http2,
        traceparent_invalid: f
            .trace_context
            .and_then(|t| t.traceparent_invalid)
            .map(|r| r.as_str().to_string())
            .unwrap_or_default(),
        kernel_drop: None,
        kernel_tcp_event: None,
        tcp_health: f.tcp_health.as_deref().map(super::tcp_health::to_proto),
        tcp_srtt_ns: f.tcp_srtt_ns.unwrap_or(0),
        l7_source: f
            .l7_source
            .map(|s| s.as_str())
            .unwrap_or_default()
            .to_string(),
    };
    let mut flow = pb::Flow {
        time: Some(timestamp(f.time_ns)),
        uuid: String::new(),
        verdict: match f.verdict {
            Verdict::Forwarded => pb::Verdict::Forwarded,
            Verdict::Dropped => pb::Verdict::Dropped,
        } as i32,
        // Set by the agent for the kernel's drops (api/drop_reason.rs).
        drop_reason: 0,
        drop_reason_desc: 0,
        ip: Some(pb::Ip {
            source: f.ip.source.to_string(),
            destination: f.ip.destination.to_string(),
            ip_version: match f.ip.ip_version {
                record::IpVersion::IPv4 => pb::IpVersion::IPv4,
                record::IpVersion::IPv6 => pb::IpVersion::IPv6,
            } as i32,
            encrypted: false,
        }),
        l4: Some(pb::Layer4 { protocol: l4 }),
        r#type: if is_l7 {
            pb::FlowType::L7
        } else {
            pb::FlowType::L3L4
        } as i32,
        node_name: node_name.to_string(),
        l7,
        event_type: Some(pb::CiliumEventType {
            r#type: event_type,
            sub_type,
        }),
        traffic_direction: connection_direction(f.traffic_direction, f.is_reply) as i32,
        trace_observation_point: point as i32,
        is_reply: f.is_reply,
        interface: (f.ifindex != 0).then(|| pb::NetworkInterface {
            index: f.ifindex,
            name: String::new(),
        }),
        trace_context: f.trace_context.map(|t| pb::TraceContext {
            parent: Some(pb::TraceParent {
                trace_id: t.trace_id.to_string(),
            }),
        }),
        socket_cookie: f.socket_cookie.unwrap_or(0),
        cgroup_id: f.process.as_ref().and_then(|p| p.cgroup_id).unwrap_or(0),
        summary: String::new(),
        extensions: None,
        // What the node knows of the ends (identities, pods, DNS names) is the store's to add
        // (api/endpoints.rs): the engine flow alone does not tell it.
        source: None,
        destination: None,
        source_names: Vec::new(),
        destination_names: Vec::new(),
    };
    // Written from the finished wire flow, as Cilium's parsers do.
    flow.summary = super::summary::summary(&flow);
    (flow, ext)
}

/// The packet's capture direction, from what [`flow_to_proto`] wrote.
pub fn packet_direction(f: &pb::Flow) -> Direction {
    match f.event_type.as_ref().map(|e| (e.r#type, e.sub_type)) {
        Some((EVENT_TYPE_TRACE, TRACE_TO_ENDPOINT)) => return Direction::Ingress,
        Some((EVENT_TYPE_TRACE, TRACE_FROM_ENDPOINT)) => return Direction::Egress,
        _ => {}
    }
    let conn_ingress = match pb::TrafficDirection::try_from(f.traffic_direction) {
        Ok(pb::TrafficDirection::Ingress) => true,
        Ok(pb::TrafficDirection::Egress) => false,
        _ => return Direction::Unknown,
    };
    let reply = f.is_reply.unwrap_or(false);
    if conn_ingress != reply {
        Direction::Ingress
    } else {
        Direction::Egress
    }
}

fn port(p: u32) -> Result<u16, ConvertError> {
    u16::try_from(p).map_err(|_| ConvertError::BadPort(p))
}

/// Converts a wire flow back to an engine flow (what `replay` or tests need): everything the
/// wire carries round-trips; the DNS answer list (not on Hubble's wire) comes back empty.
pub fn flow_from_proto(f: &pb::Flow) -> Result<record::Flow, ConvertError> {
    let ip = f.ip.clone().unwrap_or_default();
    let bad_ip = || ConvertError::BadIp {
        src: ip.source.clone(),
        dst: ip.destination.clone(),
    };
    let source: IpAddr = ip.source.parse().map_err(|_| bad_ip())?;
    let destination: IpAddr = ip.destination.parse().map_err(|_| bad_ip())?;
    let l4 = match f.l4.as_ref().and_then(|l| l.protocol.as_ref()) {
        Some(Protocol::Tcp(t)) => Layer4::Tcp {
            source_port: port(t.source_port)?,
            destination_port: port(t.destination_port)?,
            flags: t.flags.as_ref().map(tcp_flags_back).unwrap_or_default(),
        },
        Some(Protocol::Udp(u)) => Layer4::Udp {
            source_port: port(u.source_port)?,
            destination_port: port(u.destination_port)?,
        },
        Some(Protocol::Sctp(_)) => Layer4::Other { protocol: 132 },
        Some(Protocol::IcmPv4(i)) => Layer4::Icmpv4 {
            r#type: i.r#type as u8,
            code: i.code as u8,
        },
        Some(Protocol::IcmPv6(i)) => Layer4::Icmpv6 {
            r#type: i.r#type as u8,
            code: i.code as u8,
        },
        None => Layer4::Other { protocol: 0 },
    };
    let ext = FlowExtension::from_flow(f).unwrap_or_default();
    let l7 = match &f.l7 {
        Some(l7) => {
            let record = match &l7.record {
                Some(Record::Http(h)) => L7Record::Http(HttpInfo {
                    code: (h.code != 0).then_some(h.code as u16),
                    method: record::text(&h.method),
                    url: h.url.as_str().into(),
                    protocol: record::text(&h.protocol),
                    headers: h
                        .headers
                        .iter()
                        .map(|x| HttpHeader {
                            key: record::text(&x.key),
                            value: x.value.as_str().into(),
                        })
                        .collect(),
                    body_error: BodyError::from_name(&ext.http_body_error),
                    http2: http2_info_back(&ext),
                }),
                Some(Record::Dns(d)) => {
                    let response = l7.r#type == pb::L7FlowType::Response as i32;
                    let ext = d.flowscope.clone().unwrap_or_default();
                    L7Record::Dns(DnsInfo {
                        id: ext.id as u16,
                        query: d.query.clone(),
                        qtypes: d.qtypes.clone(),
                        rcode: response.then_some(d.rcode as u16),
                        ips: d.ips.iter().filter_map(|s| s.parse().ok()).collect(),
                        ttl: (response && d.ttl != 0).then_some(d.ttl),
                        cnames: d.cnames.clone(),
                        rrtypes: d.rrtypes.clone(),
                        answers: Vec::new(),
                        truncated: ext.truncated,
                        questions: ext
                            .questions
                            .into_iter()
                            .map(|q| record::DnsQuestion {
                                name: q.name,
                                qtype: q.qtype,
                            })
                            .collect(),
                        response_only: ext.response_only,
                        doh: ext.doh,
                    })
                }
                None => return Err(ConvertError::NoL7Record),
            };
            Some(Layer7 {
                r#type: if l7.r#type == pb::L7FlowType::Response as i32 {
                    L7Type::Response
                } else {
                    L7Type::Request
                },
                latency_ns: (l7.latency_ns != 0).then_some(l7.latency_ns),
                record,
            })
        }
        None => None,
    };
    let trace_context = match f.trace_context.as_ref().and_then(|t| t.parent.as_ref()) {
        Some(p) => {
            let trace_id: TraceId = p
                .trace_id
                .parse()
                .map_err(|_| ConvertError::BadId(p.trace_id.clone()))?;
            let span = |s: &str| -> Result<SpanId, ConvertError> {
                s.parse().map_err(|_| ConvertError::BadId(s.to_string()))
            };
            Some(TraceContext {
                trace_id,
                span_id: if ext.span_id.is_empty() {
                    SpanId::default()
                } else {
                    span(&ext.span_id)?
                },
                parent_span_id: if ext.parent_span_id.is_empty() {
                    None
                } else {
                    Some(span(&ext.parent_span_id)?)
                },
                // A reason this build does not know reads as none.
                traceparent_invalid: InvalidTraceParent::from_name(&ext.traceparent_invalid),
            })
        }
        None => None,
    };
    let process = ext.process.as_ref().map(process_from_proto);
    let peer_process = ext.peer_process.as_ref().map(process_from_proto);
    Ok(record::Flow {
        time_ns: f.time.as_ref().map(timestamp_ns).unwrap_or(0),
        verdict: if f.verdict == pb::Verdict::Dropped as i32 {
            Verdict::Dropped
        } else {
            Verdict::Forwarded
        },
        flow_type: if f.r#type == pb::FlowType::L7 as i32 {
            FlowType::L7
        } else {
            FlowType::L3L4
        },
        ip: IpInfo::new(source, destination),
        l4,
        l7,
        traffic_direction: packet_direction(f),
        is_reply: f.is_reply,
        ifindex: f.interface.as_ref().map(|i| i.index).unwrap_or(0),
        socket_cookie: (f.socket_cookie != 0).then_some(f.socket_cookie),
        ip_len: ext.ip_len,
        payload_bytes: ext.payload_bytes,
        trace_context,
        process,
        peer_process,
        tcp_health: ext
            .tcp_health
            .as_ref()
            .map(|h| Box::new(super::tcp_health::from_proto(h))),
        tcp_srtt_ns: (ext.tcp_srtt_ns != 0).then_some(ext.tcp_srtt_ns),
        l7_source: record::L7Source::from_name(&ext.l7_source),
    })
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A fixed L7 HTTP request flow (server side: the request arrived on ifindex 2).
    pub(crate) fn http_request() -> record::Flow {
        record::Flow {
            time_ns: 1_795_612_801_123_456_789,
            verdict: Verdict::Forwarded,
            flow_type: FlowType::L7,
            ip: IpInfo::new("198.18.0.2".parse().unwrap(), "198.18.0.1".parse().unwrap()),
            l4: Layer4::Tcp {
                source_port: 51234,
                destination_port: 80,
                flags: TcpFlags::default(),
            },
            l7: Some(Layer7 {
                r#type: L7Type::Request,
                latency_ns: None,
                record: L7Record::Http(HttpInfo {
                    code: None,
                    method: "GET".into(),
                    url: "http://198.18.0.1/page".into(),
                    protocol: "HTTP/1.1".into(),
                    headers: vec![HttpHeader {
                        key: "user-agent".into(),
                        value: "curl/8".into(),
                    }],
                    body_error: None,
                    http2: None,
                }),
            }),
            traffic_direction: Direction::Ingress,
            is_reply: Some(false),
            ifindex: 2,
            socket_cookie: Some(4242),
            ip_len: 0,
            payload_bytes: 0,
            trace_context: Some(TraceContext {
                trace_id: "4bf92f3577b34da6a3ce929d0e0e4736".parse().unwrap(),
                span_id: "00f067aa0ba902b7".parse().unwrap(),
                parent_span_id: Some("b7ad6b7169203331".parse().unwrap()),
                traceparent_invalid: None,
            }),
            process: Some(ProcessInfo {
                pid: 456,
                tid: Some(457),
                comm: Some("nginx".into()),
                cgroup_id: Some(99),
                container_id: None,
                ..ProcessInfo::default()
            }),
            peer_process: None,
            tcp_health: None,
            tcp_srtt_ns: None,
            l7_source: None,
        }
    }

    /// A fixed L3/L4 SYN leaving the host (client side).
    pub(crate) fn tcp_syn() -> record::Flow {
        record::Flow {
            time_ns: 1_795_612_801_000_000_000,
            verdict: Verdict::Forwarded,
            flow_type: FlowType::L3L4,
            ip: IpInfo::new(
                "2001:db8::2".parse().unwrap(),
                "2001:db8::1".parse().unwrap(),
            ),
            l4: Layer4::Tcp {
                source_port: 40000,
                destination_port: 443,
                flags: TcpFlags::SYN,
            },
            l7: None,
            traffic_direction: Direction::Egress,
            is_reply: Some(false),
            ifindex: 3,
            socket_cookie: None,
            ip_len: 60,
            payload_bytes: 0,
            trace_context: None,
            process: None,
            peer_process: None,
            tcp_health: None,
            tcp_srtt_ns: None,
            l7_source: None,
        }
    }

    pub(crate) fn dns_response() -> record::Flow {
        record::Flow {
            time_ns: 5,
            verdict: Verdict::Forwarded,
            flow_type: FlowType::L7,
            ip: IpInfo::new("198.18.0.1".parse().unwrap(), "198.18.0.2".parse().unwrap()),
            l4: Layer4::Udp {
                source_port: 53,
                destination_port: 33333,
            },
            l7: Some(Layer7 {
                r#type: L7Type::Response,
                latency_ns: Some(1500),
                record: L7Record::Dns(DnsInfo {
                    id: 0x1234,
                    query: "example.com.".into(),
                    qtypes: vec!["A".into(), "AAAA".into()],
                    rcode: Some(0),
                    ips: vec!["93.184.216.34".parse().unwrap()],
                    ttl: Some(300),
                    cnames: vec![],
                    rrtypes: vec!["A".into()],
                    answers: vec![],
                    truncated: true,
                    questions: vec![
                        record::DnsQuestion {
                            name: "example.com.".into(),
                            qtype: "A".into(),
                        },
                        record::DnsQuestion {
                            name: "example.org.".into(),
                            qtype: "AAAA".into(),
                        },
                    ],
                    response_only: true,
                    doh: true,
                }),
            }),
            traffic_direction: Direction::Egress,
            is_reply: Some(true),
            ifindex: 2,
            socket_cookie: None,
            ip_len: 0,
            payload_bytes: 0,
            trace_context: None,
            process: None,
            peer_process: None,
            tcp_health: None,
            tcp_srtt_ns: None,
            l7_source: None,
        }
    }

    #[test]
    fn http_request_fills_hubble_fields() {
        let p = flow_to_proto(&http_request(), "node-a");
        assert_eq!(p.time.as_ref().unwrap().seconds, 1_795_612_801);
        assert_eq!(p.time.as_ref().unwrap().nanos, 123_456_789);
        assert_eq!(p.verdict, pb::Verdict::Forwarded as i32);
        assert_eq!(p.r#type, pb::FlowType::L7 as i32);
        assert_eq!(p.node_name, "node-a");
        assert_eq!(p.ip.as_ref().unwrap().source, "198.18.0.2");
        assert_eq!(
            p.ip.as_ref().unwrap().ip_version,
            pb::IpVersion::IPv4 as i32
        );
        assert_eq!(p.event_type.as_ref().unwrap().r#type, 129);
        assert_eq!(p.traffic_direction, pb::TrafficDirection::Ingress as i32);
        assert_eq!(p.is_reply, Some(false));
        assert_eq!(p.socket_cookie, 4242);
        assert_eq!(p.cgroup_id, 99);
        assert_eq!(
            p.trace_context
                .as_ref()
                .unwrap()
                .parent
                .as_ref()
                .unwrap()
                .trace_id,
            "4bf92f3577b34da6a3ce929d0e0e4736"
        );
        let Some(Record::Http(h)) = p.l7.as_ref().unwrap().record.as_ref() else {
            panic!("not http")
        };
        assert_eq!((h.code, h.method.as_str()), (0, "GET"));
        let ext = FlowExtension::from_flow(&p).unwrap();
        assert_eq!(ext.process.as_ref().unwrap().pid, 456);
        assert_eq!(ext.process.as_ref().unwrap().comm, "nginx");
        assert_eq!(ext.span_id, "00f067aa0ba902b7");
        assert_eq!(ext.parent_span_id, "b7ad6b7169203331");
    }

    #[test]
    fn l4_packets_are_traces_with_observation_points() {
        let p = flow_to_proto(&tcp_syn(), "n");
        let e = p.event_type.as_ref().unwrap();
        assert_eq!((e.r#type, e.sub_type), (4, TRACE_FROM_ENDPOINT));
        assert_eq!(
            p.trace_observation_point,
            pb::TraceObservationPoint::FromEndpoint as i32
        );
        assert_eq!(p.traffic_direction, pb::TrafficDirection::Egress as i32);
        let Some(Protocol::Tcp(t)) = p.l4.as_ref().unwrap().protocol.as_ref() else {
            panic!()
        };
        assert!(t.flags.as_ref().unwrap().syn && !t.flags.as_ref().unwrap().ack);
        // ip_len travels in the extension; no process, so no process there.
        let ext = FlowExtension::from_flow(&p).unwrap();
        assert_eq!((ext.ip_len, ext.process), (60, None));
    }

    #[test]
    fn replies_keep_the_connection_direction() {
        // A DNS answer arriving at the client: connection EGRESS, packet ingress.
        let mut f = dns_response();
        f.traffic_direction = Direction::Ingress;
        let p = flow_to_proto(&f, "n");
        assert_eq!(p.traffic_direction, pb::TrafficDirection::Egress as i32);
        assert_eq!(packet_direction(&p), Direction::Ingress);
    }

    #[test]
    fn dns_extension_carries_what_hubble_lacks() {
        let p = flow_to_proto(&dns_response(), "n");
        let Some(Record::Dns(d)) = p.l7.as_ref().and_then(|l| l.record.as_ref()) else {
            panic!("{p:?}")
        };
        assert_eq!((d.query.as_str(), d.rcode), ("example.com.", 0));
        let ext = d.flowscope.as_ref().unwrap();
        assert_eq!((ext.id, ext.rcode_name.as_str()), (0x1234, "NOERROR"));
        assert!(ext.truncated && ext.response_only && ext.doh);
        let names: Vec<_> = ext.questions.iter().map(|q| q.name.as_str()).collect();
        assert_eq!(names, ["example.com.", "example.org."]);
    }

    #[test]
    fn round_trips() {
        for f in [http_request(), tcp_syn(), dns_response()] {
            let back = flow_from_proto(&flow_to_proto(&f, "n")).unwrap();
            assert_eq!(back, f);
        }
    }

    /// Both ends' processes (issue 22): the thread apart from the process, the agent marked.
    #[test]
    fn both_ends_processes_round_trip() {
        let mut f = http_request();
        f.process.as_mut().unwrap().thread_name = Some("worker-3".into());
        f.peer_process = Some(ProcessInfo {
            pid: 7,
            tid: Some(8),
            comm: Some("flowscope".into()),
            thread_name: Some("tokio-rt-worker".into()),
            agent: true,
            ..ProcessInfo::default()
        });
        let p = flow_to_proto(&f, "n");
        let ext = FlowExtension::from_flow(&p).unwrap();
        let peer = ext.peer_process.as_ref().unwrap();
        assert_eq!(
            (peer.comm.as_str(), peer.thread_name.as_str(), peer.agent),
            ("flowscope", "tokio-rt-worker", true)
        );
        assert_eq!(flow_from_proto(&p).unwrap(), f);
    }

    /// W3C Trace Context §3.2.2: an invalid `traceparent` is marked on the flow's extension.
    #[test]
    fn invalid_traceparent_is_marked_and_round_trips() {
        let mut f = http_request();
        let t = f.trace_context.as_mut().unwrap();
        t.parent_span_id = None;
        t.traceparent_invalid = Some(InvalidTraceParent::Duplicated);
        let p = flow_to_proto(&f, "n");
        let ext = FlowExtension::from_flow(&p).unwrap();
        assert_eq!(ext.traceparent_invalid, "duplicated");
        assert_eq!(flow_from_proto(&p).unwrap(), f);
    }

    #[test]
    fn http_body_errors_travel_in_the_extension() {
        let mut f = http_request();
        if let Some(Layer7 {
            record: L7Record::Http(h),
            ..
        }) = &mut f.l7
        {
            h.body_error = Some(BodyError::MalformedChunk);
        }
        let (_, ext) = flow_to_wire(&f, "n");
        assert_eq!(ext.http_body_error, "malformed_chunk");
        assert_eq!(flow_from_proto(&flow_to_proto(&f, "n")).unwrap(), f);
    }

    #[test]
    fn http2_marks_and_grpc_status_round_trip() {
        let mut f = http_request();
        let Some(Layer7 {
            record: L7Record::Http(h),
            ..
        }) = f.l7.as_mut()
        else {
            unreachable!()
        };
        h.protocol = "HTTP/2".into();
        h.url = "http://svc/demo.v1.Echo/Say".into();
        h.http2 = Some(Box::new(Http2Info {
            stream_id: 3,
            reset: Some(StreamReset {
                error_code: 8,
                by_client: true,
            }),
            cancelled: true,
            grpc: Some(GrpcStatus {
                code: 14,
                source: GrpcStatusSource::DerivedFromHttpStatus,
                message: None,
            }),
        }));
        let (_, ext) = flow_to_wire(&f, "n");
        let g = ext.grpc.as_ref().unwrap();
        assert_eq!(
            (g.status_code, g.status_source.as_str()),
            (14, "derived_from_http_status")
        );
        let x = ext.http2.as_ref().unwrap();
        assert_eq!(
            (x.stream_id, x.reset_error_code.as_str(), x.cancelled),
            (3, "CANCEL", true)
        );
        assert_eq!(flow_from_proto(&flow_to_proto(&f, "n")).unwrap(), f);
        // Codes without an RFC 9113 name survive as hex.
        assert_eq!(h2_error_name(0x1f), "0x1f");
        assert_eq!(h2_error_code("0x1f"), Some(0x1f));
        assert_eq!(h2_error_code("REFUSED_STREAM"), Some(7));
    }

    #[test]
    fn grpc_is_recognised_from_path_and_content_type() {
        let mut h = HttpInfo {
            code: None,
            method: "POST".into(),
            url: "http://svc:50051/helloworld.Greeter/SayHello".into(),
            protocol: "HTTP/2".into(),
            headers: vec![],
            body_error: None,
            http2: None,
        };
        assert_eq!(
            grpc_method(&h),
            Some(("helloworld.Greeter".into(), "SayHello".into()))
        );
        h.url = "/index.html".into();
        assert_eq!(grpc_method(&h), None);
        h.protocol = "HTTP/1.1".into();
        h.url = "/a.B/C".into();
        assert_eq!(grpc_method(&h), None);
        h.headers.push(HttpHeader {
            key: "Content-Type".into(),
            value: "application/grpc+proto".into(),
        });
        assert_eq!(grpc_method(&h), Some(("a.B".into(), "C".into())));
    }

    #[test]
    fn url_paths() {
        assert_eq!(url_path("http://h/a/b?x=1"), "/a/b");
        assert_eq!(url_path("http://h"), "/");
        assert_eq!(url_path("/p#frag"), "/p");
    }
}
