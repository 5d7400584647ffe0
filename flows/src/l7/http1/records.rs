//! HTTP/1 exchanges as Hubble-style flows and OpenTelemetry spans (HTTP semantic
//! conventions). A message whose body was not seen whole, or whose framing broke a rule,
//! carries the [`BodyError`] on its flow and on the span, so it is never reported as if it
//! were whole.

use std::sync::Arc;

use super::{BodySeen, ResponseHead};
pub use crate::l7::exchange::Peers;
use crate::l7::exchange::{
    http_flow, http_status_is_error, path_and_query, protocol_text, put_ip, put_str,
    split_host_port, RequestHead, KNOWN_METHODS,
};
use crate::record::{
    attr, ip_string, AttributeSource, AttributeValue, Attributes, BodyError, CompactString, Flow,
    HttpHeader, HttpInfo, NewAttributes, Span, SpanKind, SpanStatus, StatusCode,
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
/// `end_ns`. Its attributes are built when first read ([`Attributes::lazy`]), from the
/// request head it shares and a summary of the response.
pub fn span(
    p: &Peers,
    req: &Arc<RequestHead>,
    req_body: BodySeen,
    resp: Option<&ResponseHead>,
    end_ns: u64,
    kind: SpanKind,
) -> Span {
    let answer = resp.map(|r| Answer {
        status: r.status,
        body_size: r.body_size,
        body_error: r.body_error,
    });
    let method_known = KNOWN_METHODS.contains(&&*req.method);
    let status = match (&answer, error_type(answer.as_ref(), kind)) {
        (None, _) => SpanStatus {
            code: StatusCode::Error,
            message: Some("no response".into()),
        },
        (Some(_), Some(_)) => SpanStatus {
            code: StatusCode::Error,
            message: None,
        },
        (Some(_), None) => SpanStatus {
            code: StatusCode::Unset,
            message: None,
        },
    };
    let source = Http1Exchange {
        peers: *p,
        req: req.clone(),
        path: path_in(&req.target),
        req_body,
        answer,
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
        attributes: Attributes::lazy(Arc::new(source), kind),
        socket_cookie: req.start.meta.socket_cookie.or(p.socket_cookie),
        ifindex: req.start.meta.ifindex,
        process: None,
        counterpart: None,
        events: Vec::new(),
    }
}

/// What an HTTP/1 exchange's span attributes are built from: the connection, the request
/// head (shared with the request's flow) and what the response said.
#[derive(Debug)]
struct Http1Exchange {
    peers: Peers,
    req: Arc<RequestHead>,
    /// Where `url.path` ([`path_and_query`]) is in the target, found once for both ends'
    /// metric identities; `None`: the `/` of an absolute-form target without a path.
    path: Option<(usize, usize)>,
    req_body: BodySeen,
    answer: Option<Answer>,
}

/// The response's part of an exchange's span; `None` in its place: no response.
#[derive(Debug, Clone, Copy)]
struct Answer {
    status: Option<u16>,
    body_size: Option<u64>,
    body_error: Option<BodyError>,
}

/// `error.type` of the `kind` end's span, `None` when that span did not fail. HTTP semconv:
/// 5xx is an error for servers; 4xx too for clients. A response whose body was cut short or
/// unreadable did not arrive whole: an error too. No response at all: `no_response`.
fn error_type(answer: Option<&Answer>, kind: SpanKind) -> Option<CompactString> {
    let Some(r) = answer else {
        return Some(CompactString::const_new("no_response"));
    };
    let code = r.status.unwrap_or(0);
    if http_status_is_error(code, kind == SpanKind::Server) {
        Some(compact_str::ToCompactString::to_compact_string(&code))
    } else {
        r.body_error
            .filter(|e| is_incomplete(*e))
            .map(|e| CompactString::const_new(e.as_str()))
    }
}

/// `server.address` and `server.port`: the Host header when present (semconv), else the
/// server socket.
fn server_address<'a>(p: &Peers, req: &'a RequestHead) -> (Option<&'a str>, u16) {
    match req.host.as_deref().map(split_host_port) {
        Some((h, port)) => (Some(h), port.unwrap_or(p.server.port)),
        None => (None, p.server.port),
    }
}

impl Http1Exchange {
    /// `url.path`, as [`path_and_query`] gives it.
    fn path(&self) -> &str {
        self.path
            .and_then(|(a, b)| self.req.target.get(a..b))
            .unwrap_or("/")
    }
}

/// Where [`path_and_query`]'s path is in `target` (`None` when it is not a part of it).
fn path_in(target: &str) -> Option<(usize, usize)> {
    let (path, _) = path_and_query(target);
    let start = (path.as_ptr() as usize).checked_sub(target.as_ptr() as usize)?;
    let end = start + path.len();
    (target.get(start..end) == Some(path)).then_some((start, end))
}

impl AttributeSource for Http1Exchange {
    fn attributes(&self, kind: SpanKind) -> NewAttributes {
        let (p, req) = (&self.peers, &*self.req);
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
        let (host, port) = server_address(p, req);
        let host = host.map_or_else(|| ip_string(server.addr), CompactString::new);
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
        if let Some(n) = self.req_body.size.filter(|n| *n > 0) {
            set(attr::HTTP_REQUEST_BODY_SIZE, (n as i64).into());
        }
        if let Some(e) = self.req_body.error.or(req.framing_error) {
            set(attr::HTTP_REQUEST_BODY_ERROR, e.as_str().into());
        }
        if let Some(r) = req.trace.traceparent_invalid {
            set(attr::TRACEPARENT_INVALID, r.as_str().into());
        }
        if let Some(r) = &self.answer {
            if let Some(code) = r.status {
                set(attr::HTTP_RESPONSE_STATUS_CODE, i64::from(code).into());
            }
            if let Some(n) = r.body_size {
                set(attr::HTTP_RESPONSE_BODY_SIZE, (n as i64).into());
            }
            if let Some(e) = r.body_error {
                set(attr::HTTP_RESPONSE_BODY_ERROR, e.as_str().into());
            }
        }
        if let Some(e) = error_type(self.answer.as_ref(), kind) {
            set(attr::ERROR_TYPE, e.into());
        }
        a
    }

    /// The inputs of the metric keys' values above, raw: method, path (not the query),
    /// the Host header or the server's address, the client's and the peer's addresses,
    /// version, status and response body error (`error.type`), and the kind.
    fn metric_identity(&self, kind: SpanKind, out: &mut Vec<u8>) {
        let (p, req) = (&self.peers, &*self.req);
        out.push(SOURCE_HTTP1);
        out.push(kind as u8);
        put_str(out, &req.method);
        put_str(out, self.path());
        match server_address(p, req).0 {
            Some(h) => {
                out.push(1);
                put_str(out, h);
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
        out.push(req.version as u8);
        match &self.answer {
            None => out.push(0),
            Some(r) => {
                out.push(1);
                out.extend_from_slice(&r.status.map_or(u32::MAX, u32::from).to_le_bytes());
                put_str(out, r.body_error.map_or("", BodyError::as_str));
            }
        }
    }
}

/// [`AttributeSource::metric_identity`]'s first byte for HTTP/1 exchanges.
const SOURCE_HTTP1: u8 = 1;

/// Whether a response body error means the client did not get the whole answer.
fn is_incomplete(e: BodyError) -> bool {
    matches!(e, BodyError::Truncated | BodyError::MalformedChunk)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::key::Endpoint;
    use crate::l7::exchange::{ExchangeTrace, HttpVersion};
    use crate::l7::PacketCtx;

    fn peers(client: &str, server: &str) -> Peers {
        Peers {
            client: Endpoint {
                addr: client.parse().unwrap(),
                port: 40_000,
            },
            server: Endpoint {
                addr: server.parse().unwrap(),
                port: 80,
            },
            socket_cookie: None,
        }
    }

    fn request(method: &'static str, target: &str, host: Option<&str>, ua: &str) -> RequestHead {
        RequestHead {
            method: method.into(),
            target: target.into(),
            version: HttpVersion::Http11,
            host: host.map(CompactString::new),
            user_agent: Some(CompactString::new(ua)),
            headers: Vec::new(),
            content_length: None,
            trace: ExchangeTrace::none(),
            start: PacketCtx::default(),
            head_end: PacketCtx::default(),
            framing_error: None,
            url: Default::default(),
        }
    }

    fn response(status: Option<u16>, body_error: Option<BodyError>) -> ResponseHead {
        ResponseHead {
            status,
            version: HttpVersion::Http11,
            headers: Vec::new(),
            start: PacketCtx::default(),
            head_end: PacketCtx::default(),
            end_ns: 5,
            body_size: Some(10),
            body_error,
        }
    }

    /// An exchange's span, its identity and the values of its metric keys.
    fn probe(
        p: &Peers,
        req: RequestHead,
        resp: Option<ResponseHead>,
        kind: SpanKind,
    ) -> (Vec<u8>, Vec<Option<AttributeValue>>) {
        let s = span(
            p,
            &Arc::new(req),
            BodySeen::default(),
            resp.as_ref(),
            9,
            kind,
        );
        let mut id = Vec::new();
        assert!(s.attributes.metric_identity(&mut id), "built unbuilt");
        let values = attr::METRIC_KEYS
            .iter()
            .map(|k| s.attributes.get(k).cloned())
            .collect();
        (id, values)
    }

    /// The contract of `AttributeSource::metric_identity`: over exchanges that vary in every
    /// input, equal bytes always come with equal metric-key values; and exchanges that differ
    /// only outside the metric keys (query, user agent, body sizes, ports) share their bytes, so
    /// a label set is cached once.
    #[test]
    fn equal_metric_identities_mean_equal_metric_values() {
        let mut seen: Vec<(Vec<u8>, Vec<Option<AttributeValue>>)> = Vec::new();
        let mut cases = 0;
        for (client, server) in [
            ("198.18.0.2", "198.18.0.1"),
            ("198.18.0.3", "198.18.0.1"),
            ("198.18.0.2", "198.18.0.5"),
            ("2001:db8::2", "2001:db8::1"),
        ] {
            let p = peers(client, server);
            for method in ["GET", "POST", "BREW"] {
                for target in ["/a", "/a?q=1", "/b", "http://h/a", "http://h", "*"] {
                    for host in [None, Some("h"), Some("h:8080"), Some("[2001:db8::9]:1")] {
                        for resp in [
                            None,
                            Some((Some(200), None)),
                            Some((Some(404), None)),
                            Some((Some(503), None)),
                            Some((None, None)),
                            Some((Some(200), Some(BodyError::Truncated))),
                            Some((Some(200), Some(BodyError::InvalidContentLength))),
                        ] {
                            for kind in [SpanKind::Client, SpanKind::Server] {
                                for ua in ["curl/8", "h2load"] {
                                    let req = request(method, target, host, ua);
                                    let resp = resp.map(|(s, e)| response(s, e));
                                    let (id, values) = probe(&p, req, resp, kind);
                                    cases += 1;
                                    match seen.iter().find(|(i, _)| *i == id) {
                                        Some((_, v)) => assert_eq!(
                                            *v, values,
                                            "{method} {target} {host:?} {kind:?}"
                                        ),
                                        None => seen.push((id, values)),
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
        // Half the cases differ only in the user agent, and a fifth only in the query.
        assert!(
            seen.len() * 2 <= cases,
            "{} identities of {cases}",
            seen.len()
        );
        // Distinct values, distinct identities (the cache would mix them otherwise: checked
        // above); the query and the user agent are not in them.
        let p = peers("198.18.0.2", "198.18.0.1");
        let ok = || Some(response(Some(200), None));
        let a = probe(&p, request("GET", "/a", None, "x"), ok(), SpanKind::Server);
        let b = probe(
            &p,
            request("GET", "/a?q=2", None, "y"),
            ok(),
            SpanKind::Server,
        );
        assert_eq!(a.0, b.0, "query and user agent are no label");
    }

    /// Unbuilt attributes read as the list itself: the counterpart of a lazy span built by
    /// kind equals the span built for that kind, and a change makes the list its own.
    #[test]
    fn unbuilt_attributes_build_on_read_and_on_change() {
        let p = peers("198.18.0.2", "198.18.0.1");
        let req = Arc::new(request("GET", "/a?q=1", Some("h:8080"), "ua"));
        let resp = response(Some(404), None);
        let client = span(
            &p,
            &req,
            BodySeen::default(),
            Some(&resp),
            9,
            SpanKind::Client,
        );
        let server = span(
            &p,
            &req,
            BodySeen::default(),
            Some(&resp),
            9,
            SpanKind::Server,
        );
        assert_eq!(client.attributes[attr::ERROR_TYPE], "404".into());
        assert_eq!(server.attributes.get(attr::ERROR_TYPE), None);
        assert_eq!(client.attributes[attr::SERVER_ADDRESS], "h".into());
        assert_eq!(client.attributes[attr::SERVER_PORT], 8080_i64.into());
        assert_eq!(
            client.attributes[attr::NETWORK_PEER_ADDRESS],
            "198.18.0.1".into()
        );
        assert_eq!(
            server.attributes[attr::NETWORK_PEER_ADDRESS],
            "198.18.0.2".into()
        );
        let other = client.attributes.lazy_for(SpanKind::Server).unwrap();
        assert_eq!(other, server.attributes);
        let mut changed = server.attributes.clone();
        changed.insert("x", AttributeValue::Int(1));
        assert!(
            !changed.metric_identity(&mut Vec::new()),
            "a changed list is a list"
        );
        assert_eq!(changed.len(), server.attributes.len() + 1);
        assert_eq!(changed.get(attr::URL_QUERY), Some(&"q=1".into()));
    }
}
