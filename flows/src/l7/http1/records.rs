//! HTTP/1 exchanges as Hubble-style flows and OpenTelemetry spans (HTTP semantic
//! conventions). A message whose body was not seen whole, or whose framing broke a rule,
//! carries the [`BodyError`] on its flow and on the span, so it is never reported as if it
//! were whole.

use super::{BodySeen, ResponseHead};
pub use crate::l7::exchange::Peers;
use crate::l7::exchange::{
    http_flow, http_status_is_error, path_and_query, protocol_text, split_host_port, RequestHead,
    KNOWN_METHODS,
};
use crate::record::{
    attr, ip_string, AttributeValue, BodyError, CompactString, Flow, HttpHeader, HttpInfo,
    NewAttributes, Span, SpanKind, SpanStatus, StatusCode,
};

/// The flow of a request head, carrying its kept headers.
pub fn request_flow(p: &Peers, req: &RequestHead) -> Flow {
    let http = HttpInfo {
        code: None,
        method: req.method.clone(),
        url: req.url(),
        protocol: req.protocol().into(),
        headers: req.headers.clone(),
        body_error: req.framing_error,
        http2: None,
    };
    let payload = req.content_length.unwrap_or(0);
    http_flow(
        p,
        false,
        &req.head_end,
        None,
        http,
        payload,
        Some(&req.trace),
    )
}

/// The flow of a final response, carrying `headers` (its kept headers); `req` is the request
/// it answers, when one was seen.
pub fn response_flow(
    p: &Peers,
    req: Option<&RequestHead>,
    resp: &ResponseHead,
    headers: Vec<HttpHeader>,
) -> Flow {
    let http = HttpInfo {
        code: resp.status,
        method: req.map_or(crate::record::Text::Borrowed(""), |r| r.method.clone()),
        url: req.map(RequestHead::url).unwrap_or_default(),
        protocol: req.map_or_else(|| protocol_text(resp.version), |r| r.protocol().into()),
        headers,
        body_error: resp.body_error,
        http2: None,
    };
    let latency = req.map(|r| resp.start.ts_ns.saturating_sub(r.start.ts_ns));
    let payload = resp.body_size.unwrap_or(0);
    http_flow(
        p,
        true,
        &resp.head_end,
        latency,
        http,
        payload,
        req.map(|r| &r.trace),
    )
}

/// True when [`span`]'s status differs by its kind for this response, so the other end's span
/// cannot be a patched copy: a 4xx is an error for the client only (HTTP semconv); with no
/// response, or any other code, both ends see the same status.
pub fn status_by_kind(resp: Option<&ResponseHead>) -> bool {
    resp.and_then(|r| r.status)
        .is_some_and(|c| http_status_is_error(c, true) != http_status_is_error(c, false))
}

/// The end of an exchange whose span [`span`] builds when the owners are not known: the one
/// the request's capture direction points at ([`crate::roles::end_by_capture`]).
pub fn captured_end(req: &RequestHead) -> SpanKind {
    crate::roles::end_by_capture(req.start.meta.direction)
}

/// The span of an exchange as seen by its `kind` end (CLIENT: the connecting process,
/// SERVER: the accepting one): `resp` `None` for a request that got no answer, ending at
/// `end_ns`.
pub fn span(
    p: &Peers,
    req: &RequestHead,
    req_body: BodySeen,
    resp: Option<&ResponseHead>,
    end_ns: u64,
    kind: SpanKind,
) -> Span {
    let (client, server) = (p.client, p.server);
    let mut a = NewAttributes::new();
    let mut set = |k: &'static str, v: AttributeValue| a.push_new(k, v);
    let method_known = KNOWN_METHODS.contains(&&*req.method);
    set(
        attr::HTTP_REQUEST_METHOD,
        if method_known { &*req.method } else { "_OTHER" }.into(),
    );
    let (path, query) = path_and_query(&req.target);
    set(attr::URL_PATH, path.into());
    if let Some(q) = query {
        set(attr::URL_QUERY, q.into());
    }
    set(attr::URL_SCHEME, "http".into());
    // server.address/port: the Host header when present (semconv), else the server socket.
    let (host, port) = match req.host.as_deref().map(split_host_port) {
        Some((h, p)) => (CompactString::new(h), p.unwrap_or(server.port)),
        None => (ip_string(server.addr), server.port),
    };
    set(attr::SERVER_ADDRESS, host.into());
    set(attr::SERVER_PORT, i64::from(port).into());
    let client_addr = ip_string(client.addr);
    let peer = if kind == SpanKind::Server {
        client
    } else {
        server
    };
    let peer_addr = if peer.addr == client.addr {
        client_addr.clone()
    } else {
        ip_string(peer.addr)
    };
    set(attr::CLIENT_ADDRESS, client_addr.into());
    set(attr::CLIENT_PORT, i64::from(client.port).into());
    set(attr::NETWORK_PEER_ADDRESS, peer_addr.into());
    set(attr::NETWORK_PEER_PORT, i64::from(peer.port).into());
    set(attr::NETWORK_PROTOCOL_NAME, "http".into());
    set(attr::NETWORK_PROTOCOL_VERSION, req.version.semconv().into());
    set(attr::NETWORK_TRANSPORT, "tcp".into());
    if let Some(ua) = &req.user_agent {
        set(attr::USER_AGENT_ORIGINAL, ua.as_str().into());
    }
    if let Some(n) = req_body.size.filter(|n| *n > 0) {
        set(attr::HTTP_REQUEST_BODY_SIZE, (n as i64).into());
    }
    if let Some(e) = req_body.error.or(req.framing_error) {
        set(attr::HTTP_REQUEST_BODY_ERROR, e.as_str().into());
    }
    if let Some(r) = req.trace.traceparent_invalid {
        set(attr::TRACEPARENT_INVALID, r.as_str().into());
    }
    let status = match resp {
        Some(r) => {
            if let Some(code) = r.status {
                set(attr::HTTP_RESPONSE_STATUS_CODE, i64::from(code).into());
            }
            if let Some(n) = r.body_size {
                set(attr::HTTP_RESPONSE_BODY_SIZE, (n as i64).into());
            }
            if let Some(e) = r.body_error {
                set(attr::HTTP_RESPONSE_BODY_ERROR, e.as_str().into());
            }
            // HTTP semconv: 5xx is an error for servers; 4xx too for clients. A response
            // whose body was cut short or unreadable did not arrive whole: an error too.
            let code = r.status.unwrap_or(0);
            let failed = http_status_is_error(code, kind == SpanKind::Server);
            let broken = r.body_error.filter(|e| is_incomplete(*e));
            if failed {
                set(
                    attr::ERROR_TYPE,
                    compact_str::ToCompactString::to_compact_string(&code).into(),
                );
            } else if let Some(e) = broken {
                set(attr::ERROR_TYPE, e.as_str().into());
            }
            if failed || broken.is_some() {
                SpanStatus {
                    code: StatusCode::Error,
                    message: None,
                }
            } else {
                SpanStatus {
                    code: StatusCode::Unset,
                    message: None,
                }
            }
        }
        None => {
            set(attr::ERROR_TYPE, "no_response".into());
            SpanStatus {
                code: StatusCode::Error,
                message: Some("no response".into()),
            }
        }
    };
    Span {
        trace_id: req.trace.trace_id,
        span_id: req.trace.span_id,
        parent_span_id: req.trace.parent_span_id,
        trace_state: req.trace.trace_state.clone(),
        // HTTP semconv: `{method} {http.route}`, and just `{method}` when no route is known
        // (an observer never knows routes); `HTTP` for methods outside the known set.
        name: if method_known {
            CompactString::new(&req.method)
        } else {
            CompactString::const_new("HTTP")
        },
        kind,
        start_time_ns: req.start.ts_ns,
        end_time_ns: end_ns.max(req.start.ts_ns),
        status,
        attributes: a.into(),
        socket_cookie: req.start.meta.socket_cookie.or(p.socket_cookie),
        ifindex: req.start.meta.ifindex,
        process: None,
        counterpart: None,
        events: Vec::new(),
    }
}

/// Whether a response body error means the client did not get the whole answer.
fn is_incomplete(e: BodyError) -> bool {
    matches!(e, BodyError::Truncated | BodyError::MalformedChunk)
}
