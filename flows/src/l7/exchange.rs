//! What the HTTP/1 and HTTP/2 decoders share: an exchange's trace identity (W3C Trace
//! Context), the HTTP/1 request head (HTTP/2 takes one over after `Upgrade: h2c`, RFC 7540
//! §3.2), and the pieces of the HTTP semantic conventions both build spans from.
//!
//! It sits here rather than in either decoder so that neither imports the other.

use std::borrow::Cow;
use std::sync::{Arc, OnceLock};

use crate::key::Endpoint;
use crate::l7::{L7Context, PacketCtx};
use crate::packet::TcpFlags;
use crate::record::{
    BodyError, CompactString, Flow, FlowType, HttpHeader, HttpInfo, IpInfo, L7Record, L7Type,
    Layer4, Layer7, Text, TraceContext, Verdict,
};
use crate::trace::{InboundTraceParent, InvalidTraceParent, SpanId, TraceId, TraceState};

/// Trace identity of one exchange, fixed when its request head is parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExchangeTrace {
    /// From a valid `traceparent`, else generated.
    pub trace_id: TraceId,
    /// Generated for the span of this exchange.
    pub span_id: SpanId,
    /// The caller's span (`traceparent` parent-id).
    pub parent_span_id: Option<SpanId>,
    /// Validated `tracestate`, re-serialised (only with a valid `traceparent`, §3.3).
    pub trace_state: Option<String>,
    /// Why the request's `traceparent` was not taken, when it had an invalid one.
    pub traceparent_invalid: Option<InvalidTraceParent>,
}

impl ExchangeTrace {
    /// All-zero ids: for placeholder requests that are never reported.
    pub fn none() -> Self {
        Self {
            trace_id: TraceId::default(),
            span_id: SpanId::default(),
            parent_span_id: None,
            trace_state: None,
            traceparent_invalid: None,
        }
    }
}

/// Trace identity for a new exchange from its `traceparent` fields and `tracestate` value.
/// An invalid `traceparent` counts as none (W3C Trace Context §3.2.2: a new trace), counted
/// and kept as a mark.
pub(crate) fn new_trace(
    traceparent: InboundTraceParent,
    tracestate: Option<&str>,
    cx: &mut L7Context<'_>,
) -> ExchangeTrace {
    traceparent.count(cx.counters);
    let parent = traceparent.parent();
    // W3C Trace Context §3.3: tracestate is only meaningful with a valid traceparent.
    let trace_state = parent.and(tracestate).and_then(|v| {
        let ts = TraceState::parse(v);
        cx.counters.trace_tracestate_dropped_members += ts.dropped as u64;
        (!ts.is_empty()).then(|| ts.to_string())
    });
    ExchangeTrace {
        trace_id: parent
            .map(|p| p.trace_id)
            .unwrap_or_else(|| cx.ids.trace_id()),
        span_id: cx.ids.span_id(),
        parent_span_id: parent.map(|p| p.parent_id),
        trace_state,
        traceparent_invalid: traceparent.invalid(),
    }
}

/// HTTP/1 protocol versions a message can carry (RFC 9112 §2.3; RFC 1945 for 0.9).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum HttpVersion {
    /// HTTP/0.9: a simple request (`GET /path`, no version, no fields) answered by a bare
    /// body that the close ends (RFC 1945 §4.1, §6).
    Http09,
    /// HTTP/1.0 (RFC 1945).
    Http10,
    /// HTTP/1.1, and any higher 1.x minor version (RFC 9110 §2.5: a recipient treats a
    /// higher minor version as the highest it supports).
    #[default]
    Http11,
}

impl HttpVersion {
    /// From the minor version of an `HTTP/1.x` version.
    pub fn from_minor(minor: u8) -> Self {
        if minor == 0 {
            Self::Http10
        } else {
            Self::Http11
        }
    }

    /// The protocol as Hubble's `l7.http.protocol` spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Http09 => "HTTP/0.9",
            Self::Http10 => "HTTP/1.0",
            Self::Http11 => "HTTP/1.1",
        }
    }

    /// `network.protocol.version` (OTel semconv).
    pub fn semconv(self) -> &'static str {
        match self {
            Self::Http09 => "0.9",
            Self::Http10 => "1.0",
            Self::Http11 => "1.1",
        }
    }
}

/// A parsed HTTP/1 request head.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestHead {
    /// Method token.
    pub method: Text,
    /// Request target as sent (origin-form `/path?q`, absolute-form, `*` or authority).
    pub target: String,
    /// Protocol version.
    pub version: HttpVersion,
    /// `Host` header value (inline when short, as nearly all are).
    pub host: Option<CompactString>,
    /// `User-Agent` header value (inline up to 24 bytes).
    pub user_agent: Option<CompactString>,
    /// Allow-listed headers, sensitive values redacted.
    pub headers: Vec<HttpHeader>,
    /// Body length from Content-Length (chunked bodies are counted as they pass).
    pub content_length: Option<u64>,
    /// Trace identity for the exchange.
    pub trace: ExchangeTrace,
    /// Packet that carried the first byte of the request.
    pub start: PacketCtx,
    /// Packet that completed the head.
    pub head_end: PacketCtx,
    /// The head's framing fields break a message length rule (RFC 9112 §6.1, §6.3).
    pub framing_error: Option<BodyError>,
    /// [`RequestHead::url`], made on first use: the request's flow and its response's share
    /// one copy.
    pub url: OnceLock<Arc<str>>,
}

impl RequestHead {
    /// "HTTP/0.9", "HTTP/1.0" or "HTTP/1.1".
    pub fn protocol(&self) -> &'static str {
        self.version.as_str()
    }

    /// `http://host/target` for origin-form targets with a Host, else the target as sent;
    /// shared by the exchange's flows.
    pub fn url(&self) -> Arc<str> {
        self.url
            .get_or_init(|| match &self.host {
                Some(host) if self.target.starts_with('/') => {
                    shared_concat(&["http://", host, &self.target])
                }
                _ => Arc::from(self.target.as_str()),
            })
            .clone()
    }
}

/// Methods the HTTP semantic conventions name spans after; others become `HTTP` and
/// `http.request.method` `_OTHER`.
pub const KNOWN_METHODS: [&str; 9] = [
    "GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH",
];

/// Splits a request target into path and query (RFC 9112 §3.2; absolute-form drops the
/// scheme and authority).
pub fn path_and_query(target: &str) -> (&str, Option<&str>) {
    // A byte scan: `str::find` with a string pattern sets up a two-way searcher per call,
    // more work than the short targets it searches.
    let scheme_end = target.as_bytes().windows(3).position(|w| w == b"://");
    let rest = match scheme_end {
        Some(i) => {
            let after = &target[i + 3..];
            after.find('/').map_or("/", |j| &after[j..])
        }
        None => target,
    };
    match rest.split_once('?') {
        Some((p, q)) => (p, Some(q)),
        None => (rest, None),
    }
}

/// Splits `host[:port]` / `[v6]:port` from a Host header or `:authority`.
pub fn split_host_port(host: &str) -> (&str, Option<u16>) {
    if let Some(rest) = host.strip_prefix('[') {
        if let Some((h, tail)) = rest.split_once(']') {
            return (h, tail.strip_prefix(':').and_then(|p| p.parse().ok()));
        }
    }
    match host.rsplit_once(':') {
        Some((h, p)) if !h.contains(':') => (h, p.parse().ok()),
        _ => (host, None),
    }
}

/// `parts` joined, in one allocation (the shared string's own) when they fit a stack buffer,
/// as nearly all URLs do, rather than a `String` copied into an `Arc`.
pub(crate) fn shared_concat(parts: &[&str]) -> Arc<str> {
    let mut buf = [0u8; 512];
    let mut len = 0;
    for p in parts {
        let Some(dst) = buf.get_mut(len..len + p.len()) else {
            return Arc::from(parts.concat());
        };
        dst.copy_from_slice(p.as_bytes());
        len += p.len();
    }
    // Joined `str`s are UTF-8; the check only keeps this free of `unsafe`.
    Arc::from(std::str::from_utf8(&buf[..len]).unwrap_or_default())
}

/// Whether a response with status `code` makes the span of `server` (else client) side an
/// error, per the OTel HTTP semantic conventions (span status): a 5xx for both, a 4xx for
/// clients only. Also tells the engine when an exchange's two spans differ in status.
pub fn http_status_is_error(code: u16, server: bool) -> bool {
    code >= 500 || !server && code >= 400
}

/// The protocol string of a message whose request is unknown.
pub fn protocol_text(version: HttpVersion) -> Text {
    Cow::Borrowed(version.as_str())
}

/// The connection an exchange belongs to.
#[derive(Debug, Clone, Copy)]
pub struct Peers {
    /// The client end.
    pub client: Endpoint,
    /// The server end.
    pub server: Endpoint,
    /// Socket cookie seen on the connection.
    pub socket_cookie: Option<u64>,
}

impl Peers {
    /// The same connection with the roles the other way round when `swapped`.
    pub fn swapped_if(self, swapped: bool) -> Self {
        if swapped {
            Self {
                client: self.server,
                server: self.client,
                socket_cookie: self.socket_cookie,
            }
        } else {
            self
        }
    }
}

/// The Hubble L7 flow of one HTTP message (HTTP/1 or HTTP/2): a request (`reply` false, client
/// to server) or a response, seen at `at`, with the exchange's trace identity when its
/// request was seen.
pub fn http_flow(
    p: &Peers,
    reply: bool,
    at: &PacketCtx,
    latency: Option<u64>,
    http: HttpInfo,
    payload: u64,
    trace: Option<&ExchangeTrace>,
) -> Flow {
    let (src, dst, kind) = if reply {
        (p.server, p.client, L7Type::Response)
    } else {
        (p.client, p.server, L7Type::Request)
    };
    Flow {
        time_ns: at.ts_ns,
        verdict: Verdict::Forwarded,
        flow_type: FlowType::L7,
        ip: IpInfo::new(src.addr, dst.addr),
        l4: Layer4::Tcp {
            source_port: src.port,
            destination_port: dst.port,
            flags: TcpFlags::default(),
        },
        l7: Some(Layer7 {
            r#type: kind,
            latency_ns: latency,
            record: L7Record::Http(http),
        }),
        traffic_direction: at.meta.direction,
        is_reply: Some(reply),
        ifindex: at.meta.ifindex,
        socket_cookie: at.meta.socket_cookie.or(p.socket_cookie),
        ip_len: 0,
        payload_bytes: payload,
        trace_context: trace.map(|t| TraceContext {
            trace_id: t.trace_id,
            span_id: t.span_id,
            parent_span_id: t.parent_span_id,
            traceparent_invalid: t.traceparent_invalid,
        }),
        process: None,
        peer_process: None,
        tcp_health: None,
        tcp_srtt_ns: None,
        l7_source: None,
    }
}

/// Appends `s` to a metric identity ([`crate::record::Attributes::metric_identity`]),
/// length first (so that two fields never run into each other).
pub(crate) fn put_str(out: &mut Vec<u8>, s: &str) {
    out.extend_from_slice(&(s.len() as u32).to_le_bytes());
    out.extend_from_slice(s.as_bytes());
}

/// Appends an address to a metric identity: its family, then its bytes.
pub(crate) fn put_ip(out: &mut Vec<u8>, ip: std::net::IpAddr) {
    match ip {
        std::net::IpAddr::V4(v4) => {
            out.push(4);
            out.extend_from_slice(&v4.octets());
        }
        std::net::IpAddr::V6(v6) => {
            out.push(6);
            out.extend_from_slice(&v6.octets());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn http_status_errors_by_side() {
        for (code, server, client) in [(200, false, false), (404, false, true), (503, true, true)] {
            assert_eq!(http_status_is_error(code, true), server, "{code} server");
            assert_eq!(http_status_is_error(code, false), client, "{code} client");
        }
    }

    #[test]
    fn shared_concat_joins_short_and_long() {
        assert_eq!(&*shared_concat(&["http://", "h", "/a"]), "http://h/a");
        assert_eq!(&*shared_concat(&[]), "");
        let long = "x".repeat(600);
        assert_eq!(&*shared_concat(&["/", &long]), format!("/{long}"));
    }

    #[test]
    fn targets_split_into_path_and_query() {
        assert_eq!(path_and_query("/a?b=1"), ("/a", Some("b=1")));
        assert_eq!(path_and_query("http://h:8/x/y?q"), ("/x/y", Some("q")));
        assert_eq!(path_and_query("http://h"), ("/", None));
        assert_eq!(path_and_query("*"), ("*", None));
    }

    #[test]
    fn hosts_split_into_name_and_port() {
        assert_eq!(split_host_port("h:8080"), ("h", Some(8080)));
        assert_eq!(
            split_host_port("[2001:db8::1]:80"),
            ("2001:db8::1", Some(80))
        );
        assert_eq!(split_host_port("2001:db8::1"), ("2001:db8::1", None));
        assert_eq!(split_host_port("h"), ("h", None));
    }

    #[test]
    fn versions_above_1_1_are_1_1() {
        assert_eq!(HttpVersion::from_minor(0), HttpVersion::Http10);
        assert_eq!(HttpVersion::from_minor(2), HttpVersion::Http11);
        assert_eq!(HttpVersion::Http09.as_str(), "HTTP/0.9");
        assert_eq!(HttpVersion::Http09.semconv(), "0.9");
    }
}
