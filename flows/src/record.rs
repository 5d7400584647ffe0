//! What the engine emits: Hubble-style [`Flow`]s and OpenTelemetry-style [`Span`]s.
//!
//! Field names follow Hubble's `flow.Flow` JSON where a field exists there (`l4.TCP.flags`,
//! `l7.http.code`, `is_reply`, `socket_cookie`) and OpenTelemetry semantic conventions for span
//! attributes ([`attr`]). Times are nanoseconds from the capture timestamps.

use std::borrow::Cow;
use std::net::IpAddr;
use std::sync::Arc;

pub use compact_str::CompactString;

use serde::{Deserialize, Serialize};

use crate::packet::{Direction, TcpFlags};
use crate::trace::{InvalidTraceParent, SpanId, TraceId};

/// One output of the engine.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Record {
    /// A Hubble-style flow event (L3/L4 packet or L7 request/response).
    Flow(Box<Flow>),
    /// A finished request/response exchange as a span.
    Span(Box<Span>),
}

impl Record {
    /// The record's time: the flow's packet time or the span's end.
    pub fn time_ns(&self) -> u64 {
        match self {
            Record::Flow(f) => f.time_ns,
            Record::Span(s) => s.end_time_ns,
        }
    }
}

/// Whether the packet went through. A passive observer only sees forwarded traffic.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Verdict {
    /// The packet was delivered.
    Forwarded,
    /// The packet was dropped (by a policy or the kernel).
    Dropped,
}

/// Hubble's flow type: a packet event or an L7 event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum FlowType {
    /// A packet (L3/L4 view).
    #[serde(rename = "L3_L4")]
    L3L4,
    /// A parsed L7 request or response.
    L7,
}

/// The IP layer of a flow.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct IpInfo {
    /// Source address.
    pub source: IpAddr,
    /// Destination address.
    pub destination: IpAddr,
    /// "IPv4" or "IPv6".
    #[serde(rename = "ipVersion")]
    pub ip_version: IpVersion,
}

/// IP version as Hubble names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum IpVersion {
    /// IPv4.
    IPv4,
    /// IPv6.
    IPv6,
}

/// The decimal text of every octet (up to three digits, left-aligned) and its length.
const OCTET_TEXT: [([u8; 3], u8); 256] = {
    let mut t = [([0u8; 3], 0u8); 256];
    let mut o = 0;
    while o < 256 {
        let (h, d, u) = ((o / 100) as u8, (o / 10 % 10) as u8, (o % 10) as u8);
        t[o] = if o >= 100 {
            ([b'0' + h, b'0' + d, b'0' + u], 3)
        } else if o >= 10 {
            ([b'0' + d, b'0' + u, 0], 2)
        } else {
            ([b'0' + u, 0, 0], 1)
        };
        o += 1;
    }
    t
};

/// `addr` as text, like its `Display` but without the formatting machinery for IPv4 (spans
/// carry two or three addresses each), and inline (no allocation) for IPv4 and short IPv6.
pub(crate) fn ip_string(addr: IpAddr) -> CompactString {
    match addr {
        IpAddr::V4(v4) => {
            // Written into a buffer, then one copy: `CompactString::push` per digit costs more
            // than the digits (two or three addresses per span, two spans per exchange). Each
            // octet's digits come from a table, not from divisions.
            let mut buf = [0u8; 16];
            let mut n = 0;
            for o in v4.octets() {
                let (digits, len) = OCTET_TEXT[usize::from(o)];
                buf[n..n + 3].copy_from_slice(&digits);
                buf[n + usize::from(len)] = b'.';
                n += usize::from(len) + 1;
            }
            CompactString::from_utf8(&buf[..n - 1]).expect("ASCII digits and dots")
        }
        IpAddr::V6(v6) => compact_str::ToCompactString::to_compact_string(&v6),
    }
}

impl IpInfo {
    /// The IP layer for `source -> destination`.
    pub fn new(source: IpAddr, destination: IpAddr) -> Self {
        Self {
            source,
            destination,
            ip_version: if source.is_ipv4() {
                IpVersion::IPv4
            } else {
                IpVersion::IPv6
            },
        }
    }
}

/// The transport layer of a flow, keyed like Hubble's `l4` oneof.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Layer4 {
    /// TCP.
    #[serde(rename = "TCP")]
    Tcp {
        /// Source port.
        source_port: u16,
        /// Destination port.
        destination_port: u16,
        /// Control bits of this segment (empty on L7 flows).
        flags: TcpFlags,
    },
    /// UDP.
    #[serde(rename = "UDP")]
    Udp {
        /// Source port.
        source_port: u16,
        /// Destination port.
        destination_port: u16,
    },
    /// ICMP for IPv4.
    #[serde(rename = "ICMPv4")]
    Icmpv4 {
        /// Message type.
        r#type: u8,
        /// Message code.
        code: u8,
    },
    /// ICMPv6.
    #[serde(rename = "ICMPv6")]
    Icmpv6 {
        /// Message type.
        r#type: u8,
        /// Message code.
        code: u8,
    },
    /// Another IP protocol.
    #[serde(rename = "other")]
    Other {
        /// IP protocol number.
        protocol: u8,
    },
}

impl Layer4 {
    /// `(source, destination)` ports for TCP and UDP.
    pub fn ports(&self) -> Option<(u16, u16)> {
        match *self {
            Layer4::Tcp {
                source_port,
                destination_port,
                ..
            }
            | Layer4::Udp {
                source_port,
                destination_port,
            } => Some((source_port, destination_port)),
            _ => None,
        }
    }
}

/// Kernel/agent attribution of a flow to a process; the engine leaves it `None` and the agent
/// fills it from the socket cookie.
///
/// Its strings are shared (`Arc<str>`): the agent attributes every record to its local end and
/// its peer from one cached copy per process, so a copy costs a reference count, not an
/// allocation per string (and no free when the record leaves the store).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProcessInfo {
    /// Process (thread group) id.
    pub pid: u32,
    /// Thread id, when known.
    pub tid: Option<u32>,
    /// The process's name, when known: its thread-group leader's `comm` (what `ps` shows),
    /// not the name of the thread that used the socket (that is [`ProcessInfo::thread_name`]).
    pub comm: Option<Arc<str>>,
    /// cgroup v2 id, when known.
    pub cgroup_id: Option<u64>,
    /// Container id derived from the cgroup path, when known.
    pub container_id: Option<Arc<str>>,
    /// Name of the thread that used the socket (its `comm`), when it differs from the
    /// process's: `comm` is the thread-group leader's name (what `ps` shows), so a server's
    /// `tokio-rt-worker` thread is kept here and the process is still called `flowscope`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub thread_name: Option<Arc<str>>,
    /// The process is this agent (its own metrics and API listeners, its exports).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub agent: bool,
}

/// Trace identity attached to L7 flows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct TraceContext {
    /// Trace id (from `traceparent` or generated).
    pub trace_id: TraceId,
    /// Id of the span the engine made for this exchange.
    pub span_id: SpanId,
    /// The caller's span id from `traceparent`, when there was one.
    pub parent_span_id: Option<SpanId>,
    /// Why the request's `traceparent` was not taken (W3C Trace Context §3.2.2), when it had
    /// an invalid or duplicated one: the trace id is then a new one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub traceparent_invalid: Option<InvalidTraceParent>,
}

/// REQUEST or RESPONSE, as in Hubble's `L7FlowType`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum L7Type {
    /// A request (or DNS query).
    Request,
    /// A response (or DNS answer).
    Response,
}

/// A record string that is most often one of a few well-known tokens (a method, a protocol
/// version, an allow-listed header name): those borrow a static copy, so most records
/// allocate (and later free) nothing for them. Build with [`text`] or [`text_owned`].
pub type Text = Cow<'static, str>;

/// The static copy of a common token, if `s` is one.
fn known(s: &str) -> Option<&'static str> {
    Some(match s {
        "GET" => "GET",
        "POST" => "POST",
        "PUT" => "PUT",
        "DELETE" => "DELETE",
        "HEAD" => "HEAD",
        "OPTIONS" => "OPTIONS",
        "PATCH" => "PATCH",
        "CONNECT" => "CONNECT",
        "TRACE" => "TRACE",
        "HTTP/1.0" => "HTTP/1.0",
        "HTTP/1.1" => "HTTP/1.1",
        "HTTP/2" => "HTTP/2",
        "host" => "host",
        "Host" => "Host",
        "user-agent" => "user-agent",
        "User-Agent" => "User-Agent",
        "content-type" => "content-type",
        "Content-Type" => "Content-Type",
        "content-length" => "content-length",
        "Content-Length" => "Content-Length",
        "traceparent" => "traceparent",
        "tracestate" => "tracestate",
        ":authority" => ":authority",
        "grpc-status" => "grpc-status",
        "grpc-message" => "grpc-message",
        "application/grpc" => "application/grpc",
        "" => "",
        _ => return None,
    })
}

/// `s` as a [`Text`]: borrowed when it is a common token, else copied.
pub fn text(s: &str) -> Text {
    match known(s) {
        Some(k) => Cow::Borrowed(k),
        None => Cow::Owned(s.to_owned()),
    }
}

/// `s` as a [`Text`]: borrowed when it is a common token, else `s` itself.
pub fn text_owned(s: String) -> Text {
    match known(&s) {
        Some(k) => Cow::Borrowed(k),
        None => Cow::Owned(s),
    }
}

/// One HTTP header kept on a flow (allow-listed; sensitive values redacted).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HttpHeader {
    /// Header name as sent.
    pub key: Text,
    /// Header value, or `[REDACTED]`: inline when short (most are), so keeping it and
    /// copying it onto the request's flow allocate nothing.
    pub value: CompactString,
}

/// HTTP part of an L7 flow (Hubble's `HTTP` message).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HttpInfo {
    /// Status code; responses only.
    pub code: Option<u16>,
    /// Request method.
    pub method: Text,
    /// `http://host/target` when the Host is known, else the request target; shared by the
    /// exchange's request and response flows.
    pub url: Arc<str>,
    /// "HTTP/1.1", "HTTP/1.0" or "HTTP/2".
    pub protocol: Text,
    /// Allow-listed headers of this message.
    pub headers: Vec<HttpHeader>,
    /// Why this message's body was not seen whole or its length could not be trusted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body_error: Option<BodyError>,
    /// HTTP/2 facts Hubble's `HTTP` message has no field for (HTTP/2 flows only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http2: Option<Box<Http2Info>>,
}

/// Why an HTTP message's body was not seen whole, why its length could not be trusted
/// (RFC 9112 §6.1, §6.3, §7.1, §8), or why its head could not be read (§3). Shown on flows and spans so an exchange is never
/// reported as if it were whole when it was not.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BodyError {
    /// The connection ended (or the capture stopped) before the body did (RFC 9112 §8).
    Truncated,
    /// A chunk-size line that is not hex digits or overflows 64 bits (RFC 9112 §7.1).
    MalformedChunk,
    /// A request whose final transfer coding is not chunked: its length cannot be determined
    /// (RFC 9112 §6.3 rule 4).
    TransferEncodingNotChunked,
    /// Both Transfer-Encoding and Content-Length: the former wins, but the message may be a
    /// smuggling attempt (RFC 9112 §6.1, §6.3 rule 3).
    TransferEncodingWithContentLength,
    /// A Content-Length that is not a number, or several that differ (RFC 9112 §6.3 rule 5;
    /// RFC 9110 §8.6).
    InvalidContentLength,
    /// Transfer-Encoding on an HTTP/1.0 message: framing faulty (RFC 9112 §6.1).
    TransferEncodingInHttp10,
    /// A request head neither parser could read (RFC 9112 §3), which the server answered:
    /// the exchange is reported with what its start line held, and its length is unknown.
    InvalidHead,
}

impl BodyError {
    /// The snake_case name used on records and spans.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Truncated => "truncated",
            Self::MalformedChunk => "malformed_chunk",
            Self::TransferEncodingNotChunked => "transfer_encoding_not_chunked",
            Self::TransferEncodingWithContentLength => "transfer_encoding_with_content_length",
            Self::InvalidContentLength => "invalid_content_length",
            Self::TransferEncodingInHttp10 => "transfer_encoding_in_http10",
            Self::InvalidHead => "invalid_head",
        }
    }

    /// Parses [`BodyError::as_str`]'s names.
    pub fn from_name(name: &str) -> Option<Self> {
        [
            Self::Truncated,
            Self::MalformedChunk,
            Self::TransferEncodingNotChunked,
            Self::TransferEncodingWithContentLength,
            Self::InvalidContentLength,
            Self::TransferEncodingInHttp10,
            Self::InvalidHead,
        ]
        .into_iter()
        .find(|e| e.as_str() == name)
    }
}

/// HTTP/2 facts of an exchange (RFC 9113) that Hubble's `HTTP` message has no field for.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Http2Info {
    /// Stream id.
    pub stream_id: u32,
    /// The RST_STREAM that ended the stream (RFC 9113 §6.4), if one did.
    pub reset: Option<StreamReset>,
    /// The client reset the stream before the server had finished its response (RFC 9113
    /// §8.7, typically CANCEL): the client gave up; what the server sent anyway is reported.
    pub cancelled: bool,
    /// The gRPC status of the call (RESPONSE flows of gRPC calls), when known.
    pub grpc: Option<GrpcStatus>,
}

/// An RST_STREAM frame (RFC 9113 §6.4).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct StreamReset {
    /// Error code (RFC 9113 §7).
    pub error_code: u32,
    /// Whether the client sent it.
    pub by_client: bool,
}

/// A gRPC call's status (grpc/grpc doc/statuscodes.md) and where it came from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GrpcStatus {
    /// Status code.
    pub code: u32,
    /// How the code was learned.
    pub source: GrpcStatusSource,
    /// `grpc-message`, percent-decoded, when the server sent one.
    pub message: Option<String>,
}

/// How a gRPC status was learned.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GrpcStatusSource {
    /// The server's `grpc-status` (trailers, or a Trailers-Only response).
    Trailers,
    /// No `grpc-status`: derived from the HTTP status by gRPC's HTTP-to-status mapping
    /// (grpc/grpc doc/http-grpc-status-mapping.md).
    DerivedFromHttpStatus,
    /// The `grpc-status` could not be decoded (HPACK state from before the capture), but a
    /// non-empty `grpc-message` says the call failed: UNKNOWN.
    InferredFromMessage,
}

impl GrpcStatusSource {
    /// Name used in span attributes and flow extensions.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Trailers => "trailers",
            Self::DerivedFromHttpStatus => "derived_from_http_status",
            Self::InferredFromMessage => "inferred_from_grpc_message",
        }
    }
}

/// One DNS resource record of an answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DnsAnswer {
    /// Owner name.
    pub name: String,
    /// Record type name ("A", "AAAA", "CNAME", ...).
    pub rrtype: String,
    /// Time to live, seconds.
    pub ttl: u32,
    /// Address for A/AAAA, target name for CNAME/NS/PTR, empty otherwise.
    pub data: String,
}

/// One entry of a DNS question section.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DnsQuestion {
    /// Name, with a trailing dot.
    pub name: String,
    /// QTYPE name ("A", "AAAA", ...).
    pub qtype: String,
}

/// DNS part of an L7 flow (Hubble's `DNS` message plus the answers).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DnsInfo {
    /// Message id.
    pub id: u16,
    /// Queried name, with a trailing dot like Hubble.
    pub query: String,
    /// Query types ("A", "AAAA", ...).
    pub qtypes: Vec<String>,
    /// Response code; responses only.
    pub rcode: Option<u16>,
    /// Addresses from A/AAAA answers.
    pub ips: Vec<IpAddr>,
    /// Smallest TTL among the answers.
    pub ttl: Option<u32>,
    /// CNAME targets.
    pub cnames: Vec<String>,
    /// Types of the answer records.
    pub rrtypes: Vec<String>,
    /// Every answer record.
    pub answers: Vec<DnsAnswer>,
    /// TC: the response was cut to fit its transport, so the answers are partial (RFC 1035
    /// §4.1.1); the client retries over TCP (RFC 7766 §5).
    pub truncated: bool,
    /// Every question in the message (QDCOUNT may be above 1); `query` and `qtypes` keep
    /// Hubble's shape (the first name, every type).
    pub questions: Vec<DnsQuestion>,
    /// A response whose query was never seen (joined mid-way, query on another path or
    /// expired): it has no latency.
    pub response_only: bool,
    /// Carried in an HTTP message (DNS over HTTPS, RFC 8484: a POST body, a GET `dns`
    /// parameter or a response body of type `application/dns-message`), not in a UDP
    /// datagram or a length-prefixed TCP stream; the HTTP exchange is reported as well.
    #[serde(default)]
    pub doh: bool,
}

/// The protocol-specific part of an L7 flow.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum L7Record {
    /// HTTP/1.x.
    Http(HttpInfo),
    /// DNS.
    Dns(DnsInfo),
}

/// The L7 part of a flow (Hubble's `Layer7`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Layer7 {
    /// REQUEST or RESPONSE.
    pub r#type: L7Type,
    /// Response time minus request time; responses only.
    pub latency_ns: Option<u64>,
    /// HTTP or DNS details.
    #[serde(flatten)]
    pub record: L7Record,
}

/// A Hubble-style flow event.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Flow {
    /// Packet time (for L7: the time of the packet that completed the message head).
    pub time_ns: u64,
    /// FORWARDED for everything a passive capture sees.
    pub verdict: Verdict,
    /// L3_L4 or L7.
    #[serde(rename = "Type")]
    pub flow_type: FlowType,
    /// Addresses.
    #[serde(rename = "IP")]
    pub ip: IpInfo,
    /// Transport.
    pub l4: Layer4,
    /// L7 event, for L7 flows.
    pub l7: Option<Layer7>,
    /// Capture direction of the packet on its interface.
    pub traffic_direction: Direction,
    /// True when the packet goes server -> client; `None` when the roles are unknown.
    pub is_reply: Option<bool>,
    /// Interface the packet was captured on.
    pub ifindex: u32,
    /// Socket cookie of the local socket, when captured.
    pub socket_cookie: Option<u64>,
    /// IP packet length per its header (L3/L4 flows).
    pub ip_len: u32,
    /// Transport payload bytes on the wire (L3/L4 flows) or body bytes (L7 flows, when known).
    pub payload_bytes: u64,
    /// Trace identity (L7 flows).
    pub trace_context: Option<TraceContext>,
    /// Process attribution, filled by the agent: the local end this record is about (the
    /// sender of an egress packet, the receiver of an ingress one).
    pub process: Option<ProcessInfo>,
    /// The owner of the other end, when it is a local process too (loopback, containers).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub peer_process: Option<ProcessInfo>,
    /// The TCP connection's health so far (RTT, retransmissions, handshake; see
    /// [`TcpHealth`]): on the L3/L4 records of SYN, FIN and RST segments and on every L7 record
    /// of a TCP connection; `None` elsewhere.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tcp_health: Option<Box<TcpHealth>>,
    /// The TCP connection's smoothed RTT at the record's time, both legs as seen from the
    /// capture point ([`TcpHealth::path_srtt_ns`]): on every L7 flow of a TCP connection once
    /// sampled (an exchange's latency minus this is roughly the server's time), and beside
    /// `tcp_health`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tcp_srtt_ns: Option<u64>,
    /// Where an L7 flow's application bytes came from when not from its packets (their TLS
    /// records were not decoded): `None` for flows decoded from the captured packets.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub l7_source: Option<L7Source>,
}

/// A source of an L7 flow's bytes other than its packets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum L7Source {
    /// Plaintext read with uprobes where the process hands it to OpenSSL (`SSL_write`,
    /// `SSL_read` and their `_ex` forms).
    OpensslUprobe,
    /// Plaintext read with uprobes where a Go program hands it to crypto/tls
    /// (`(*tls.Conn).Write`, `(*tls.Conn).Read`).
    GoTlsUprobe,
}

impl L7Source {
    /// The name used in the API extension and JSON: `openssl_uprobe`, `go_tls_uprobe`.
    pub fn as_str(self) -> &'static str {
        match self {
            L7Source::OpensslUprobe => "openssl_uprobe",
            L7Source::GoTlsUprobe => "go_tls_uprobe",
        }
    }

    /// The source named `s` by [`L7Source::as_str`].
    pub fn from_name(s: &str) -> Option<Self> {
        match s {
            "openssl_uprobe" => Some(L7Source::OpensslUprobe),
            "go_tls_uprobe" => Some(L7Source::GoTlsUprobe),
            _ => None,
        }
    }
}

/// Which endpoint of a connection did something.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ConnectionRole {
    /// The side that sent the SYN (or the guessed client).
    Client,
    /// The side that answered it.
    Server,
}

/// Who ended a TCP connection first, how and when.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct TcpClose {
    /// The side whose FIN or RST came first.
    pub by: ConnectionRole,
    /// A RST rather than a FIN (RFC 9293 §3.5.2).
    pub reset: bool,
    /// Its capture time.
    pub time_ns: u64,
}

/// Health of one direction of a TCP connection: the data one side sends and the ACKs that
/// answer it, as seen from the capture point.
///
/// RTT samples are the time from a data segment to the ACK covering it, so they measure the
/// leg between the capture point and the receiver (plus its delayed-ACK wait): at a client's
/// capture, the client's data times the whole path; at a server's, the server's data does.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TcpDirectionHealth {
    /// Smoothed RTT (RFC 6298 §2), when sampled.
    pub srtt_ns: Option<u64>,
    /// RTT variation (RFC 6298 §2), when sampled.
    pub rttvar_ns: Option<u64>,
    /// Smallest RTT sample.
    pub min_rtt_ns: Option<u64>,
    /// Largest RTT sample.
    pub max_rtt_ns: Option<u64>,
    /// RTT samples taken (Karn's rule skips retransmitted segments).
    pub rtt_samples: u32,
    /// Segments sent again (their bytes were seen or acknowledged before, or came too late to
    /// be reordering).
    pub retransmitted_segments: u32,
    /// Payload bytes of those segments.
    pub retransmitted_bytes: u64,
    /// Segments that filled a hole shortly after later data (reordered before the capture).
    pub out_of_order_segments: u32,
    /// Duplicate ACKs the receiver sent back (RFC 5681 §2).
    pub duplicate_acks: u32,
    /// Zero-window advertisements by the receiver: the sender had to stop (RFC 9293
    /// §3.8.6.2).
    pub zero_window_advertisements: u32,
    /// Keep-alives the sender sent (RFC 9293 §3.8.4).
    pub keepalives: u32,
    /// Data segments that filled the receiver's advertised window (bytes in flight equal to
    /// it, RFC 9293 §3.8.6; Wireshark's `tcp.analysis.window_full`): the receiver, not the
    /// network, held the sender back.
    pub window_full_segments: u32,
    /// Zero-window probes the sender sent while the receiver's window was closed (RFC 9293
    /// §3.8.6.1), including Linux's, which look like keep-alives.
    pub zero_window_probes: u32,
}

/// A TCP connection's health from its packets: handshake, RTT per direction, losses and how it
/// ended. Running values: each record carries those at its time.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TcpHealth {
    /// First SYN to the ACK of the SYN/ACK (RFC 9293 §3.5), when the handshake was seen.
    pub handshake_ns: Option<u64>,
    /// First SYN to the first SYN/ACK: the capture point <-> server leg.
    pub syn_to_syn_ack_ns: Option<u64>,
    /// SYN/ACK to the client's ACK: the capture point <-> client leg.
    pub syn_ack_to_ack_ns: Option<u64>,
    /// SYNs the client sent again before an answer.
    pub syn_retransmits: u32,
    /// The server answered the SYN with a RST (RFC 9293 §3.10.7.3): connection refused.
    pub refused: bool,
    /// A SYN with no SYN/ACK (yet).
    pub syn_unanswered: bool,
    /// Data client -> server.
    pub to_server: TcpDirectionHealth,
    /// Data server -> client.
    pub to_client: TcpDirectionHealth,
    /// The first FIN or RST.
    pub closed_by: Option<TcpClose>,
}

impl TcpHealth {
    /// The path's smoothed RTT as seen from the capture point: the sum of both legs' srtt
    /// (each direction's data times one leg), or the one leg known.
    pub fn path_srtt_ns(&self) -> Option<u64> {
        match (self.to_server.srtt_ns, self.to_client.srtt_ns) {
            (Some(a), Some(b)) => Some(a + b),
            (a, b) => a.or(b),
        }
    }

    /// Retransmitted segments both ways.
    pub fn retransmitted_segments(&self) -> u32 {
        self.to_server.retransmitted_segments + self.to_client.retransmitted_segments
    }

    /// Refused, or ended by a RST.
    pub fn reset(&self) -> bool {
        self.refused || self.closed_by.is_some_and(|c| c.reset)
    }
}

/// OpenTelemetry span kind: the two ends of an exchange an observer tells apart, and INTERNAL
/// for work inside a process during a request (syscall spans).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum SpanKind {
    /// The span's process is the accepting end: it served the request.
    Server,
    /// The span's process is the connecting end: it made the request.
    Client,
    /// Work inside the span's process, no remote end (a syscall made while serving a request).
    Internal,
}

impl SpanKind {
    /// The role of the exchange's other end (an INTERNAL span has none: itself).
    pub fn other(self) -> Self {
        match self {
            Self::Server => Self::Client,
            Self::Client => Self::Server,
            Self::Internal => Self::Internal,
        }
    }
}

/// OpenTelemetry span status code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum StatusCode {
    /// Not set (the HTTP semantic conventions leave successes unset).
    Unset,
    /// Explicitly OK.
    Ok,
    /// Failed.
    Error,
}

/// Span status with an optional description.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SpanStatus {
    /// Status code.
    pub code: StatusCode,
    /// Why it failed, for errors.
    pub message: Option<String>,
}

/// A span attribute value.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum AttributeValue {
    /// Boolean.
    Bool(bool),
    /// Integer.
    Int(i64),
    /// String: inline when short (paths, addresses, user agents, protocol names nearly
    /// always are), so a span's attributes take no allocation each, nor does its counterpart's
    /// copy.
    String(CompactString),
}

impl From<&str> for AttributeValue {
    fn from(s: &str) -> Self {
        Self::String(CompactString::new(s))
    }
}
impl From<String> for AttributeValue {
    fn from(s: String) -> Self {
        Self::String(CompactString::from(s))
    }
}
impl From<CompactString> for AttributeValue {
    fn from(s: CompactString) -> Self {
        Self::String(s)
    }
}
impl From<i64> for AttributeValue {
    fn from(v: i64) -> Self {
        Self::Int(v)
    }
}

mod attributes;
pub(crate) use attributes::AttributeSource;
pub use attributes::Attributes;
pub(crate) use attributes::NewAttributes;

/// OpenTelemetry semantic-convention attribute names used on spans (semconv 1.26+).
pub mod attr {
    /// HTTP request method, e.g. `GET`.
    pub const HTTP_REQUEST_METHOD: &str = "http.request.method";
    /// HTTP response status code.
    pub const HTTP_RESPONSE_STATUS_CODE: &str = "http.response.status_code";
    /// Request body size in bytes (when known from framing).
    pub const HTTP_REQUEST_BODY_SIZE: &str = "http.request.body.size";
    /// Response body size in bytes (when known from framing).
    pub const HTTP_RESPONSE_BODY_SIZE: &str = "http.response.body.size";
    /// Path part of the request target.
    pub const URL_PATH: &str = "url.path";
    /// `http` (an observer of cleartext HTTP only sees this scheme).
    pub const URL_SCHEME: &str = "url.scheme";
    /// Query part of the request target, without `?`.
    pub const URL_QUERY: &str = "url.query";
    /// Server host name or address.
    pub const SERVER_ADDRESS: &str = "server.address";
    /// Server port.
    pub const SERVER_PORT: &str = "server.port";
    /// Client address.
    pub const CLIENT_ADDRESS: &str = "client.address";
    /// Client port.
    pub const CLIENT_PORT: &str = "client.port";
    /// Address of the other end of the connection, as seen locally.
    pub const NETWORK_PEER_ADDRESS: &str = "network.peer.address";
    /// Port of the other end of the connection.
    pub const NETWORK_PEER_PORT: &str = "network.peer.port";
    /// Application protocol, e.g. `http`.
    pub const NETWORK_PROTOCOL_NAME: &str = "network.protocol.name";
    /// Application protocol version, e.g. `1.1`.
    pub const NETWORK_PROTOCOL_VERSION: &str = "network.protocol.version";
    /// `tcp` or `udp`.
    pub const NETWORK_TRANSPORT: &str = "network.transport";
    /// User-Agent header value.
    pub const USER_AGENT_ORIGINAL: &str = "user_agent.original";
    /// Error class when the span failed (status code as a string, or `no_response`).
    pub const ERROR_TYPE: &str = "error.type";
    /// RPC system, `grpc` (RPC semconv).
    pub const RPC_SYSTEM: &str = "rpc.system";
    /// Fully-qualified RPC service, e.g. `helloworld.Greeter`.
    pub const RPC_SERVICE: &str = "rpc.service";
    /// RPC method, e.g. `SayHello`.
    pub const RPC_METHOD: &str = "rpc.method";
    /// Numeric gRPC status code.
    pub const RPC_GRPC_STATUS_CODE: &str = "rpc.grpc.status_code";
    /// gRPC request messages seen (flowscope; from the Length-Prefixed-Message framing).
    pub const GRPC_REQUEST_MESSAGES: &str = "flowscope.grpc.request.messages";
    /// Sum of the gRPC request messages' lengths (flowscope).
    pub const GRPC_REQUEST_MESSAGE_BYTES: &str = "flowscope.grpc.request.message_bytes";
    /// gRPC response messages seen (flowscope).
    pub const GRPC_RESPONSE_MESSAGES: &str = "flowscope.grpc.response.messages";
    /// Sum of the gRPC response messages' lengths (flowscope).
    pub const GRPC_RESPONSE_MESSAGE_BYTES: &str = "flowscope.grpc.response.message_bytes";
    /// The call's `grpc-timeout` in nanoseconds (flowscope).
    pub const GRPC_TIMEOUT_NS: &str = "flowscope.grpc.timeout_ns";
    /// HTTP/2 stream id (flowscope).
    pub const HTTP2_STREAM_ID: &str = "flowscope.http2.stream_id";
    /// Set when part of the stream stayed unknown (joined mid-way, HPACK state partial).
    pub const HTTP2_PARTIAL: &str = "flowscope.http2.partial";
    /// Why the request body was not seen whole or its length not trusted (flowscope;
    /// [`super::BodyError`] names).
    pub const HTTP_REQUEST_BODY_ERROR: &str = "flowscope.http.request.body_error";
    /// Why the response body was not seen whole or its length not trusted (flowscope).
    pub const HTTP_RESPONSE_BODY_ERROR: &str = "flowscope.http.response.body_error";
    /// Where `rpc.grpc.status_code` came from when not from `grpc-status` itself:
    /// `derived_from_http_status` or `inferred_from_grpc_message` (flowscope).
    pub const GRPC_STATUS_CODE_SOURCE: &str = "flowscope.grpc.status_code.source";
    /// The client reset the stream before the response completed (flowscope; RFC 9113 §8.7).
    pub const HTTP2_CANCELLED: &str = "flowscope.http2.cancelled";
    /// Error code name of the RST_STREAM that ended the stream (flowscope; RFC 9113 §7).
    pub const HTTP2_RESET_ERROR_CODE: &str = "flowscope.http2.reset.error_code";
    /// Whether the client sent that RST_STREAM (flowscope).
    pub const HTTP2_RESET_BY_CLIENT: &str = "flowscope.http2.reset.by_client";
    /// Why the request's `traceparent` was not taken (`duplicated`, `layout`,
    /// `not_lower_hex`, `forbidden_version`, `zero_trace_id`, `zero_parent_id`; W3C Trace
    /// Context §3.2.2): the span starts a new trace.
    pub const TRACEPARENT_INVALID: &str = "flowscope.trace.traceparent_invalid";

    /// The keys the request metrics' labels are made of (the agent's RED, semconv and Hubble
    /// families): what [`super::Attributes::metric_identity`] stands for.
    pub const METRIC_KEYS: [&str; 13] = [
        RPC_SYSTEM,
        RPC_SERVICE,
        RPC_METHOD,
        RPC_GRPC_STATUS_CODE,
        NETWORK_PROTOCOL_NAME,
        NETWORK_PROTOCOL_VERSION,
        HTTP_REQUEST_METHOD,
        HTTP_RESPONSE_STATUS_CODE,
        URL_PATH,
        CLIENT_ADDRESS,
        SERVER_ADDRESS,
        NETWORK_PEER_ADDRESS,
        ERROR_TYPE,
    ];
}

/// A request/response exchange as an OpenTelemetry span.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Span {
    /// Trace id (from the request's `traceparent` or generated).
    pub trace_id: TraceId,
    /// This span's id (generated).
    pub span_id: SpanId,
    /// Parent span id from `traceparent`.
    pub parent_span_id: Option<SpanId>,
    /// Validated `tracestate` from the request, re-serialised.
    pub trace_state: Option<String>,
    /// Span name per HTTP semconv: the method (no route is known to an observer); inline.
    pub name: CompactString,
    /// SERVER when the local process received the request, CLIENT when it sent it.
    pub kind: SpanKind,
    /// Time of the first request packet.
    pub start_time_ns: u64,
    /// Time of the last response packet (or of the timeout for unanswered requests).
    pub end_time_ns: u64,
    /// Status per HTTP semconv (5xx on servers, 4xx/5xx on clients are errors).
    pub status: SpanStatus,
    /// Semantic-convention attributes ([`attr`]).
    pub attributes: Attributes,
    /// Socket cookie of the local socket, when captured.
    pub socket_cookie: Option<u64>,
    /// Interface the request was captured on.
    pub ifindex: u32,
    /// Process attribution, filled by the agent: the end whose role [`Span::kind`] names.
    pub process: Option<ProcessInfo>,
    /// The same exchange seen from the other end (the other kind, its own span id), built
    /// with [`crate::engine::EngineConfig::span_both_ends`] for callers that learn only later
    /// which ends are local processes; [`crate::roles::spans_for_owners`] picks what to keep.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub counterpart: Option<Box<Span>>,
    /// Moments within the span, in time order (OpenTelemetry span events), e.g. the latency
    /// breakdown's points when syscall spans are on.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub events: Vec<SpanEvent>,
}

/// A named moment within a span (OpenTelemetry trace API "Add Events": a name and a time).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SpanEvent {
    /// What happened, e.g. `request.read`.
    pub name: Cow<'static, str>,
    /// When, ns since the Unix epoch (the span's clock).
    pub time_ns: u64,
}

#[cfg(test)]
mod tests {

    #[test]
    fn common_tokens_borrow_others_are_owned() {
        for t in ["GET", "HTTP/1.1", "Host", "content-length", ""] {
            assert!(matches!(text(t), Cow::Borrowed(b) if b == t), "{t}");
            assert!(matches!(text_owned(t.to_string()), Cow::Borrowed(_)), "{t}");
        }
        for t in ["get", "PROPFIND", "X-Custom", "HOST"] {
            assert!(matches!(text(t), Cow::Owned(ref o) if o == t), "{t}");
            assert!(matches!(text_owned(t.to_string()), Cow::Owned(_)), "{t}");
        }
    }

    use super::*;

    /// A counterpart's attributes share the first span's list: they read, compare and
    /// serialise as the list with the two peer values replaced, and changing either span's
    /// never shows in the other's.
    #[test]
    fn counterpart_attributes_share_the_list_until_changed() {
        let mut n = NewAttributes::new();
        n.push_new(attr::URL_PATH, "/a".into());
        n.push_new(attr::NETWORK_PEER_ADDRESS, "10.0.0.1".into());
        n.push_new(attr::NETWORK_PEER_PORT, 80i64.into());
        n.push_new(attr::NETWORK_TRANSPORT, "tcp".into());
        let mut first: Attributes = n.into();
        let mut other = first.share_with_peer("10.0.0.2".into(), 5555i64.into());
        let mut expected = first.clone();
        expected.insert(attr::NETWORK_PEER_ADDRESS, "10.0.0.2".into());
        expected.insert(attr::NETWORK_PEER_PORT, 5555i64.into());
        assert_eq!(other, expected);
        assert_ne!(other, first);
        assert_eq!(other.get(attr::NETWORK_PEER_PORT), Some(&5555i64.into()));
        assert_eq!(first.get(attr::NETWORK_PEER_PORT), Some(&80i64.into()));
        assert_eq!(
            serde_json::to_string(&other).unwrap(),
            serde_json::to_string(&expected).unwrap()
        );
        assert_eq!(format!("{other:?}"), format!("{expected:?}"));
        // The other way back: the first span's peer again.
        let back = other.share_with_peer("10.0.0.1".into(), 80i64.into());
        assert_eq!(back, first);
        other.insert("x", AttributeValue::Bool(true));
        assert_eq!(
            other.get(attr::NETWORK_PEER_ADDRESS),
            Some(&"10.0.0.2".into())
        );
        assert_eq!(other.len(), 5);
        assert_eq!(first.len(), 4);
        assert!(first.get("x").is_none());
    }

    #[test]
    fn ip_string_is_display() {
        for a in [
            "0.0.0.0",
            "198.18.0.1",
            "10.20.100.255",
            "255.255.255.255",
            "1.2.30.4",
        ] {
            let ip: IpAddr = a.parse().unwrap();
            assert_eq!(ip_string(ip), a);
        }
        for bits in (0..=u32::MAX).step_by(65_537) {
            let ip = IpAddr::from(std::net::Ipv4Addr::from_bits(bits));
            assert_eq!(ip_string(ip), ip.to_string());
        }
        let v6: IpAddr = "2001:db8::1".parse().unwrap();
        assert_eq!(ip_string(v6), "2001:db8::1");
    }

    #[test]
    fn push_new_appends_like_insert() {
        let mut a = Attributes::new();
        let mut b = NewAttributes::new();
        a.insert(attr::URL_PATH, "/".into());
        a.insert(attr::SERVER_PORT, 80.into());
        b.push_new(attr::URL_PATH, "/".into());
        b.push_new(attr::SERVER_PORT, 80.into());
        assert_eq!(a, Attributes::from(b));
    }

    #[test]
    fn flow_json_looks_like_hubble() {
        let flow = Flow {
            time_ns: 1,
            verdict: Verdict::Forwarded,
            flow_type: FlowType::L7,
            ip: IpInfo::new("198.18.0.2".parse().unwrap(), "198.18.0.1".parse().unwrap()),
            l4: Layer4::Tcp {
                source_port: 5000,
                destination_port: 80,
                flags: TcpFlags::default(),
            },
            l7: Some(Layer7 {
                r#type: L7Type::Response,
                latency_ns: Some(1000),
                record: L7Record::Http(HttpInfo {
                    code: Some(200),
                    method: "GET".into(),
                    url: "http://h/".into(),
                    protocol: "HTTP/1.1".into(),
                    headers: vec![],
                    body_error: None,
                    http2: None,
                }),
            }),
            traffic_direction: Direction::Ingress,
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
        };
        let record = Record::Flow(Box::new(flow));
        let v = serde_json::to_value(&record).unwrap();
        assert_eq!(v["flow"]["verdict"], "FORWARDED");
        assert_eq!(v["flow"]["Type"], "L7");
        assert_eq!(v["flow"]["IP"]["ipVersion"], "IPv4");
        assert_eq!(v["flow"]["l4"]["TCP"]["destination_port"], 80);
        assert_eq!(v["flow"]["l7"]["type"], "RESPONSE");
        assert_eq!(v["flow"]["l7"]["http"]["code"], 200);
        assert_eq!(v["flow"]["traffic_direction"], "ingress");
        let back: Record = serde_json::from_value(v).unwrap();
        assert_eq!(back, record);
    }

    #[test]
    fn l7_sources_round_trip_by_name_and_serde() {
        for s in [L7Source::OpensslUprobe, L7Source::GoTlsUprobe] {
            assert_eq!(L7Source::from_name(s.as_str()), Some(s));
            let json = serde_json::to_value(s).unwrap();
            assert_eq!(json, s.as_str());
        }
        assert_eq!(L7Source::from_name("rustls_uprobe"), None);
    }
}
