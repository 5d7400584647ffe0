//! HTTP/2 streams as Hubble-style flows and OpenTelemetry spans.
//!
//! Flows use Hubble's `l7.http` with protocol `HTTP/2` (Hubble has no gRPC record; consumers
//! find gRPC by `:path` and content-type, see observer's `grpc_method`). Spans follow the
//! HTTP semantic conventions, or the RPC ones (`rpc.system = grpc`) for gRPC calls. Unknown
//! fields (partial HPACK state) are left out rather than guessed, and such spans carry
//! `flowscope.http2.partial = true`. What Hubble has no field for (stream id, reset,
//! cancellation, a gRPC status and how it was learned) goes in [`Http2Info`] on the flow and
//! in `flowscope.*` span attributes.

use super::frame::rst_stream::error_name;
use super::grpc;
use super::stream::{H2Request, H2Stream, StreamEnd};
pub use crate::l7::exchange::Peers;
use std::sync::Arc;

use crate::l7::exchange::{
    http_flow, http_status_is_error, put_ip, put_str, shared_concat, split_host_port, KNOWN_METHODS,
};
use crate::record::{
    attr, ip_string, AttributeSource, AttributeValue, Attributes, CompactString, Flow, GrpcStatus,
    GrpcStatusSource, Http2Info, HttpHeader, HttpInfo, NewAttributes, Span, SpanKind, SpanStatus,
    StatusCode, StreamReset,
};

/// Hubble's protocol string for HTTP/2 flows.
pub const PROTOCOL: &str = "HTTP/2";

/// `http://authority/path` when both are known, else the path, else empty (unknown).
fn url_of(req: &H2Request) -> Arc<str> {
    match (&req.authority, &req.path) {
        (Some(a), Some(p)) if p.starts_with('/') => {
            shared_concat(&[req.scheme.as_deref().unwrap_or("http"), "://", a, p])
        }
        (_, Some(p)) => Arc::from(p.as_str()),
        _ => Arc::default(),
    }
}

/// The REQUEST flow of a stream, at the end of its request field block.
pub fn request_flow(p: &Peers, req: &H2Request) -> Flow {
    let p = &p.swapped_if(req.roles_swapped);
    let http = HttpInfo {
        code: None,
        method: crate::record::text(req.method.as_deref().unwrap_or_default()),
        url: url_of(req),
        protocol: PROTOCOL.into(),
        headers: req.headers.clone(),
        body_error: None,
        http2: Some(Box::new(Http2Info {
            stream_id: req.stream_id,
            ..Http2Info::default()
        })),
    };
    http_flow(p, false, &req.head_end, None, http, 0, Some(&req.trace))
}

/// The RESPONSE flow of a finished stream, when its response head was seen.
pub fn response_flow(p: &Peers, st: &H2Stream) -> Option<Flow> {
    let p = &p.swapped_if(st.roles_swapped);
    let resp = st.response.as_ref()?;
    let req = st.request.as_deref();
    let mut headers = resp.headers.clone();
    if let Some(g) = &st.grpc {
        // Only what the server sent: a derived or inferred status is in `http2.grpc`.
        if let (Some(code), Some(GrpcStatusSource::Trailers)) = (g.status, g.status_source) {
            headers.push(HttpHeader {
                key: "grpc-status".into(),
                value: compact_str::ToCompactString::to_compact_string(&code),
            });
        }
        if let Some(m) = &g.message {
            headers.push(HttpHeader {
                key: "grpc-message".into(),
                value: m.as_str().into(),
            });
        }
    }
    let http = HttpInfo {
        code: resp.status,
        method: crate::record::text(req.and_then(|r| r.method.as_deref()).unwrap_or_default()),
        url: req.map(url_of).unwrap_or_default(),
        protocol: PROTOCOL.into(),
        headers,
        body_error: None,
        http2: Some(Box::new(http2_info(st))),
    };
    let latency = req.map(|r| resp.start.ts_ns.saturating_sub(r.start.ts_ns));
    Some(http_flow(
        p,
        true,
        &resp.head_end,
        latency,
        http,
        st.response_body_bytes,
        req.map(|r| &r.trace),
    ))
}

/// The stream's reset, if a RST_STREAM ended it.
fn reset_of(st: &H2Stream) -> Option<StreamReset> {
    match st.end {
        StreamEnd::Reset { code, by_client } => Some(StreamReset {
            error_code: code,
            by_client,
        }),
        _ => None,
    }
}

/// What a RESPONSE flow tells beyond Hubble's fields.
fn http2_info(st: &H2Stream) -> Http2Info {
    Http2Info {
        stream_id: st.stream_id,
        reset: reset_of(st),
        cancelled: st.cancelled,
        grpc: st.grpc.as_ref().and_then(|g| {
            Some(GrpcStatus {
                code: g.status?,
                source: g.status_source?,
                message: g.message.clone(),
            })
        }),
    }
}

/// A failed outcome: `error.type` `kind`, status ERROR with `message`.
fn error(kind: String, message: Option<String>) -> Outcome {
    (
        Some(kind),
        SpanStatus {
            code: StatusCode::Error,
            message,
        },
    )
}

/// A span's `error.type` (`None`: it did not fail) and status.
type Outcome = (Option<String>, SpanStatus);

/// Neither failed nor OK: UNSET (OTel: instrumentation leaves OK to the application).
fn unset() -> Outcome {
    (
        None,
        SpanStatus {
            code: StatusCode::Unset,
            message: None,
        },
    )
}

/// The outcome of `st` (whose request was seen) for its `kind` end: RPC semconv for gRPC
/// (error by code; servers only for the server-fault codes), else HTTP semconv
/// ([`http_status_is_error`]); a stream that did not end cleanly failed as [`end_error`] says.
fn outcome(st: &H2Stream, kind: SpanKind) -> Outcome {
    let server_side = kind == SpanKind::Server;
    if let Some(g) = &st.grpc {
        return match (g.status, end_error(st.end)) {
            (Some(code), _) if grpc::is_error(code, server_side) => {
                let message = g.message.clone().filter(|m| !m.is_empty()).or_else(|| {
                    (g.status_source == Some(GrpcStatusSource::DerivedFromHttpStatus)).then(|| {
                        let http = st.response.as_ref().and_then(|r| r.status);
                        format!("no grpc-status; HTTP status {}", http.unwrap_or_default())
                    })
                });
                error(grpc::status_name(code).to_string(), message)
            }
            (Some(_), _) => unset(),
            (None, Some((kind, msg))) => error(kind, Some(msg)),
            // Ended cleanly with a status we could not read (HPACK state partial, fields
            // unseen): unknown, never guessed. (A readable response without grpc-status
            // has a derived one, see grpc::call_status.)
            (None, None) => unset(),
        };
    }
    let code = st.response.as_ref().and_then(|r| r.status);
    match (code, end_error(st.end)) {
        // HTTP semconv (`http_status_is_error`).
        (Some(c), _) if http_status_is_error(c, server_side) => error(c.to_string(), None),
        (Some(_), None) => unset(),
        // A reset after a complete response with NO_ERROR is how servers stop reading a
        // request body they do not need (RFC 9113 §8.1).
        (Some(_), Some(_)) if matches!(st.end, StreamEnd::Reset { code: 0, .. }) => unset(),
        (_, Some((kind, msg))) => error(kind, Some(msg)),
        (None, None) => unset(),
    }
}

/// How a stream that did not end cleanly failed, for `error.type`.
fn end_error(end: StreamEnd) -> Option<(String, String)> {
    match end {
        StreamEnd::Complete => None,
        StreamEnd::Reset { code, by_client } => Some((
            error_name(code).to_string(),
            format!(
                "stream reset by the {} ({})",
                if by_client { "client" } else { "server" },
                error_name(code)
            ),
        )),
        StreamEnd::GoAway { code } => Some((
            "GOAWAY".to_string(),
            format!("refused by GOAWAY ({})", error_name(code)),
        )),
        StreamEnd::ConnectionEnd => Some((
            "no_response".to_string(),
            "connection ended before the stream".to_string(),
        )),
        StreamEnd::Evicted => Some((
            "incomplete".to_string(),
            "reported before its end: bytes lost in a capture gap and the stream table full"
                .to_string(),
        )),
        StreamEnd::ConnectionError { code } => Some((
            error_name(code).to_string(),
            format!(
                "connection error ({}) before the stream ended",
                error_name(code)
            ),
        )),
    }
}

/// True when [`span`]'s status for `st` differs by its kind, so the other end's span cannot be
/// a patched copy: gRPC codes that only clients count as errors (RPC semconv), and, outside
/// gRPC, a 4xx (an error for the client only, HTTP semconv).
pub fn status_by_kind(st: &H2Stream) -> bool {
    match &st.grpc {
        Some(g) => g
            .status
            .is_some_and(|c| grpc::is_error(c, true) != grpc::is_error(c, false)),
        None => st
            .response
            .as_ref()
            .and_then(|r| r.status)
            .is_some_and(|c| http_status_is_error(c, true) != http_status_is_error(c, false)),
    }
}

/// The server end of `st`'s span (after any role swap): the CLIENT span's peer.
pub fn span_server(p: &Peers, st: &H2Stream) -> crate::key::Endpoint {
    p.swapped_if(st.roles_swapped).server
}

/// True when [`span`] makes a span for `st` (its request was seen).
pub fn has_span(st: &H2Stream) -> bool {
    st.request.is_some()
}

/// The end of a stream whose span [`span`] builds when the owners are not known: the one its
/// request's capture direction points at ([`crate::roles::end_by_capture`]). A pushed request
/// travels server -> client (PUSH_PROMISE, RFC 9113 §8.4): its direction is reversed.
pub fn captured_end(st: &H2Stream) -> Option<SpanKind> {
    let req = st.request.as_deref()?;
    let end = crate::roles::end_by_capture(req.start.meta.direction);
    Some(if req.pushed { end.other() } else { end })
}

/// The span of a finished stream whose request was seen, as seen by its `kind` end (CLIENT:
/// the connecting process, SERVER: the accepting one). Its attributes are built when first
/// read ([`Attributes::lazy`]), from the stream it shares.
pub fn span(p: &Peers, st: &Arc<H2Stream>, kind: SpanKind) -> Option<Span> {
    let p = p.swapped_if(st.roles_swapped);
    let req = st.request.as_deref()?;
    let name = match (&st.grpc, req.method.as_deref()) {
        (Some(g), _) if !g.service.is_empty() => {
            compact_str::format_compact!("{}/{}", g.service, g.method)
        }
        (Some(_), _) => CompactString::const_new("grpc"),
        (None, Some(m)) if KNOWN_METHODS.contains(&m) => CompactString::new(m),
        (None, _) => CompactString::const_new("HTTP"),
    };
    let (_, status) = outcome(st, kind);
    Some(Span {
        trace_id: req.trace.trace_id,
        span_id: req.trace.span_id,
        parent_span_id: req.trace.parent_span_id,
        trace_state: req.trace.trace_state.clone(),
        name,
        kind,
        start_time_ns: req.start.ts_ns,
        end_time_ns: st.end_ns.max(req.start.ts_ns),
        status,
        attributes: Attributes::lazy(
            Arc::new(Http2Exchange {
                peers: p,
                st: st.clone(),
            }),
            kind,
        ),
        socket_cookie: req.start.meta.socket_cookie.or(p.socket_cookie),
        ifindex: req.start.meta.ifindex,
        process: None,
        counterpart: None,
        events: Vec::new(),
    })
}

/// What an HTTP/2 stream's span attributes are built from: its connection (roles as the
/// stream says) and the stream.
#[derive(Debug)]
struct Http2Exchange {
    peers: Peers,
    st: Arc<H2Stream>,
}

impl AttributeSource for Http2Exchange {
    fn attributes(&self, kind: SpanKind) -> NewAttributes {
        match self.st.request.as_deref() {
            Some(req) => attributes(&self.peers, &self.st, req, kind),
            None => NewAttributes::new(),
        }
    }

    /// The inputs of the metric keys' values, raw: gRPC service, method and status code, or
    /// the HTTP method, path (not the query) and status; `:authority` or the server's
    /// address, the client's and the peer's addresses, and `error.type` (the outcome for
    /// `kind`).
    fn metric_identity(&self, kind: SpanKind, out: &mut Vec<u8>) {
        let (p, st) = (&self.peers, &*self.st);
        out.push(SOURCE_HTTP2);
        out.push(kind as u8);
        let Some(req) = st.request.as_deref() else {
            return;
        };
        let status = st.response.as_ref().and_then(|r| r.status);
        out.extend_from_slice(&status.map_or(u32::MAX, u32::from).to_le_bytes());
        match &st.grpc {
            Some(g) => {
                out.push(1);
                put_str(out, &g.service);
                put_str(out, &g.method);
                out.extend_from_slice(&g.status.map_or(u32::MAX, u32::from).to_le_bytes());
            }
            None => {
                out.push(0);
                match req.method.as_deref() {
                    Some(m) => {
                        out.push(1);
                        put_str(out, m);
                    }
                    None => out.push(0),
                }
                match req.path.as_deref() {
                    Some(path) => {
                        out.push(1);
                        put_str(out, path.split_once('?').map_or(path, |(p, _)| p));
                    }
                    None => out.push(0),
                }
            }
        }
        match req.authority.as_deref() {
            Some(a) => {
                out.push(1);
                put_str(out, split_host_port(a).0);
            }
            None => {
                out.push(0);
                put_ip(out, p.server.addr);
            }
        }
        put_ip(out, p.client.addr);
        let peer = if kind == SpanKind::Server {
            p.client
        } else {
            p.server
        };
        put_ip(out, peer.addr);
        put_str(out, outcome(st, kind).0.as_deref().unwrap_or(""));
    }
}

/// [`AttributeSource::metric_identity`]'s first byte for HTTP/2 streams.
const SOURCE_HTTP2: u8 = 2;

/// The span attributes of `st` (whose request was seen) for its `kind` end, `p` its connection
/// (roles swapped as the stream says).
fn attributes(p: &Peers, st: &H2Stream, req: &H2Request, kind: SpanKind) -> NewAttributes {
    let server_side = kind == SpanKind::Server;
    let mut a = NewAttributes::new();
    let partial = st.partial
        || req.unknown_fields > 0
        || st.response.as_ref().is_some_and(|r| r.unknown_fields > 0);
    if let Some(g) = &st.grpc {
        a.push_new(attr::RPC_SYSTEM, "grpc".into());
        if !g.service.is_empty() {
            a.push_new(attr::RPC_SERVICE, g.service.as_str().into());
            a.push_new(attr::RPC_METHOD, g.method.as_str().into());
        }
        if let Some(code) = g.status {
            a.push_new(attr::RPC_GRPC_STATUS_CODE, i64::from(code).into());
        }
        match g.status_source {
            Some(src @ GrpcStatusSource::DerivedFromHttpStatus)
            | Some(src @ GrpcStatusSource::InferredFromMessage) => {
                a.push_new(attr::GRPC_STATUS_CODE_SOURCE, src.as_str().into());
            }
            Some(GrpcStatusSource::Trailers) | None => {}
        }
        // The HTTP status stays: a proxy's 503 is what the derived code came from.
        if let Some(c) = st.response.as_ref().and_then(|r| r.status) {
            a.push_new(attr::HTTP_RESPONSE_STATUS_CODE, i64::from(c).into());
        }
        let stats = [
            (attr::GRPC_REQUEST_MESSAGES, g.request.messages),
            (attr::GRPC_REQUEST_MESSAGE_BYTES, g.request.bytes),
            (attr::GRPC_RESPONSE_MESSAGES, g.response.messages),
            (attr::GRPC_RESPONSE_MESSAGE_BYTES, g.response.bytes),
        ];
        for (k, v) in stats {
            a.push_new(k, (v as i64).into());
        }
        if let Some(t) = req.grpc_timeout_ns {
            a.push_new(attr::GRPC_TIMEOUT_NS, (t as i64).into());
        }
        if let (Some(e), _) = outcome(st, kind) {
            a.push_new(attr::ERROR_TYPE, e.into());
        }
    } else {
        let method = req.method.as_deref();
        let known = method.is_some_and(|m| KNOWN_METHODS.contains(&m));
        if let Some(m) = method {
            a.push_new(
                attr::HTTP_REQUEST_METHOD,
                if known { m } else { "_OTHER" }.into(),
            );
        }
        if let Some(path) = &req.path {
            let (p, q) = match path.split_once('?') {
                Some((p, q)) => (p, Some(q)),
                None => (path.as_str(), None),
            };
            a.push_new(attr::URL_PATH, p.into());
            if let Some(q) = q {
                a.push_new(attr::URL_QUERY, q.into());
            }
        }
        if let Some(s) = &req.scheme {
            a.push_new(attr::URL_SCHEME, s.as_str().into());
        }
        let code = st.response.as_ref().and_then(|r| r.status);
        if let Some(c) = code {
            a.push_new(attr::HTTP_RESPONSE_STATUS_CODE, i64::from(c).into());
        }
        if st.request_body_bytes > 0 {
            a.push_new(
                attr::HTTP_REQUEST_BODY_SIZE,
                (st.request_body_bytes as i64).into(),
            );
        }
        if st.response.is_some() && st.end == StreamEnd::Complete {
            a.push_new(
                attr::HTTP_RESPONSE_BODY_SIZE,
                (st.response_body_bytes as i64).into(),
            );
        }
        if let (Some(e), _) = outcome(st, kind) {
            a.push_new(attr::ERROR_TYPE, e.into());
        }
    }
    let (client, server) = (p.client, p.server);
    let (host, port) = match req.authority.as_deref().map(split_host_port) {
        Some((h, port)) => (CompactString::new(h), port.unwrap_or(server.port)),
        None => (ip_string(server.addr), server.port),
    };
    a.push_new(attr::SERVER_ADDRESS, host.into());
    a.push_new(attr::SERVER_PORT, i64::from(port).into());
    a.push_new(attr::CLIENT_ADDRESS, ip_string(client.addr).into());
    a.push_new(attr::CLIENT_PORT, i64::from(client.port).into());
    let peer = if server_side { client } else { server };
    a.push_new(attr::NETWORK_PEER_ADDRESS, ip_string(peer.addr).into());
    a.push_new(attr::NETWORK_PEER_PORT, i64::from(peer.port).into());
    a.push_new(attr::NETWORK_PROTOCOL_NAME, "http".into());
    a.push_new(attr::NETWORK_PROTOCOL_VERSION, "2".into());
    a.push_new(attr::NETWORK_TRANSPORT, "tcp".into());
    if let Some(ua) = &req.user_agent {
        a.push_new(attr::USER_AGENT_ORIGINAL, ua.as_str().into());
    }
    a.push_new(attr::HTTP2_STREAM_ID, i64::from(st.stream_id).into());
    if partial {
        a.push_new(attr::HTTP2_PARTIAL, AttributeValue::Bool(true));
    }
    if let Some(r) = reset_of(st) {
        a.push_new(
            attr::HTTP2_RESET_ERROR_CODE,
            error_name(r.error_code).into(),
        );
        a.push_new(
            attr::HTTP2_RESET_BY_CLIENT,
            AttributeValue::Bool(r.by_client),
        );
    }
    if st.cancelled {
        a.push_new(attr::HTTP2_CANCELLED, AttributeValue::Bool(true));
    }
    if let Some(r) = req.trace.traceparent_invalid {
        a.push_new(attr::TRACEPARENT_INVALID, r.as_str().into());
    }
    a
}
