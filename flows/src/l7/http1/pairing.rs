//! Pairing requests with responses (RFC 9112 §9.3: on a persistent connection responses
//! come in request order), and the cases where order alone is not enough: a response
//! captured before its request, an answer that comes while the request body still passes,
//! an HTTP/0.9 answer with no status line, an upgrade.

use std::sync::Arc;

use super::connection::{BodyEnd, Http1Decoder, Phase};
use super::framing::Body;
use super::head::{Oddities, Parsed, ParsedRequest, ParsedResponse};
use super::{BodySeen, Http1Event, ResponseHead};
use crate::l7::exchange::{new_trace, ExchangeTrace, HttpVersion, RequestHead};
use crate::l7::{L7Context, L7Event, PacketCtx};
use crate::record::BodyError;

#[derive(Debug)]
pub(super) struct Pending {
    pub head: Arc<RequestHead>,
    pub body: BodySeen,
    /// When its DNS query was whole (DoH, RFC 8484), for the answer's latency.
    pub doh_query_ns: Option<u64>,
}

#[derive(Debug)]
pub(super) struct InFlight {
    pub request: Option<Pending>,
    pub response: ResponseHead,
}

impl Http1Decoder {
    /// The answer to an HTTP/0.9 request begins: a bare body until the close.
    #[cold]
    #[inline(never)]
    pub(super) fn simple_response(&mut self, at: &PacketCtx) {
        let request = self.pending.pop_front();
        self.in_flight = Some(InFlight {
            request,
            response: ResponseHead {
                status: None,
                version: HttpVersion::Http09,
                headers: Vec::new(),
                start: *at,
                head_end: *at,
                end_ns: at.ts_ns,
                body_size: None,
                body_error: None,
            },
        });
        self.resp.confirmed = true;
        self.resp.body_size = 0;
        self.resp.phase = Phase::Body(Body::UntilClose);
    }

    #[cold]
    #[inline(never)]
    pub(super) fn resp_too_large(
        &mut self,
        status: Option<u16>,
        at: &PacketCtx,
        cx: &mut L7Context<'_>,
        out: &mut Vec<L7Event>,
    ) {
        let request = self.pending.pop_front();
        if status.is_some_and(|s| s >= 200) {
            cx.counters.http1_responses += 1;
            out.push(L7Event::Http1(Http1Event::Exchange {
                request_body: request.as_ref().map(|p| p.body).unwrap_or_default(),
                request: request.map(|p| p.head),
                response: Box::new(ResponseHead {
                    status,
                    version: HttpVersion::Http11,
                    headers: Vec::new(),
                    start: *at,
                    head_end: *at,
                    end_ns: at.ts_ns,
                    body_size: None,
                    body_error: None,
                }),
            }));
        } else if let Some(p) = request {
            self.pending.push_front(p);
        }
    }

    pub(super) fn push_pending(
        &mut self,
        r: RequestHead,
        cx: &mut L7Context<'_>,
    ) -> Arc<RequestHead> {
        if self.pending.len() >= cx.config.max_pending_requests.max(1) {
            cx.counters.http1_pending_overflow += 1;
            self.pending.pop_front();
        }
        let head = Arc::new(r);
        self.pending.push_back(Pending {
            head: head.clone(),
            body: BodySeen::default(),
            doh_query_ns: None,
        });
        head
    }

    pub(super) fn on_request(
        &mut self,
        r: ParsedRequest,
        start: PacketCtx,
        at: &PacketCtx,
        cx: &mut L7Context<'_>,
        out: &mut Vec<L7Event>,
    ) {
        cx.counters.http1_requests += 1;
        count_oddities(r.odd, r.framing_error, cx);
        if r.version == HttpVersion::Http09 {
            cx.counters.http1_simple_requests += 1;
        }
        let trace = new_trace(r.traceparent, r.tracestate.as_deref(), cx);
        let body = r.body;
        let (dns_body, accepts_dns) = (r.dns_body, r.accepts_dns);
        let head = RequestHead {
            method: r.method,
            target: r.target,
            version: r.version,
            host: r.host,
            user_agent: r.user_agent,
            headers: r.headers,
            content_length: r.content_length,
            trace,
            start,
            head_end: *at,
            framing_error: r.framing_error,
            url: Default::default(),
        };
        // A parked response captured no earlier than this request answers it.
        while let Some(o) = self.orphans.front() {
            if start.ts_ns <= o.start.ts_ns {
                let response = self.orphans.pop_front().expect("front exists");
                let head = Arc::new(head);
                out.push(L7Event::Http1(Http1Event::Request(head.clone())));
                self.doh_request(&head, dns_body, accepts_dns, cx, out);
                // Complete as soon as its body is (at once when it has none).
                self.await_request_body(head.clone(), response, out);
                self.start_request_body(head, body, out);
                return;
            }
            // This response was sent before the request: it answers nothing we saw.
            let response = self.orphans.pop_front().expect("front exists");
            emit_unpaired(response, cx, out);
        }
        let head = self.push_pending(head, cx);
        out.push(L7Event::Http1(Http1Event::Request(head.clone())));
        let doh_query_ns = self.doh_request(&head, dns_body, accepts_dns, cx, out);
        if let Some(p) = self.pending.back_mut().filter(|_| doh_query_ns.is_some()) {
            p.doh_query_ns = doh_query_ns;
        }
        self.start_request_body(head, body, out);
    }

    /// Reports a request head neither parser could read (marked [`BodyError::InvalidHead`],
    /// counted) as the request the server's next answer pairs with. The request half goes on
    /// in whatever phase it is in (searching for the next message start).
    pub(super) fn report_invalid_request(
        &mut self,
        r: ParsedRequest,
        start: PacketCtx,
        at: &PacketCtx,
        cx: &mut L7Context<'_>,
        out: &mut Vec<L7Event>,
    ) {
        cx.counters.http1_invalid_requests += 1;
        let (phase, size) = (self.req.phase, self.req.body_size);
        self.on_request(r, start, at, cx, out);
        (self.req.phase, self.req.body_size) = (phase, size);
    }

    /// Enters the body of the request just parsed (or ends it at once when it has none).
    pub(super) fn start_request_body(
        &mut self,
        head: Arc<RequestHead>,
        body: Body,
        out: &mut Vec<L7Event>,
    ) {
        // A body still marked passing never ended; it can no longer (a new head began).
        self.end_request_body(BodyEnd::Cut(None), out);
        self.body_passing = Some(head);
        match body {
            Body::Length(0) => self.request_done(BodyEnd::Whole, out),
            Body::Unframed => {
                // Its length is unknown (RFC 9112 §6.3 rules 4, 5): no size, and the bytes
                // that follow are not read as requests while the server answers.
                self.end_request_body(BodyEnd::Cut(None), out);
                self.req.phase = Phase::Unframed;
            }
            b => self.req.phase = Phase::Body(b),
        }
    }

    /// The request message ended; the next request head follows.
    pub(super) fn request_done(&mut self, end: BodyEnd, out: &mut Vec<L7Event>) {
        self.end_request_body(end, out);
        self.req.phase = Phase::Head;
        self.req.body_size = 0;
    }

    /// The passing request body ended. Reports the exchange that waited for it.
    pub(super) fn end_request_body(&mut self, end: BodyEnd, out: &mut Vec<L7Event>) {
        let Some(head) = self.body_passing.take() else {
            return;
        };
        let seen = match end {
            BodyEnd::Whole => BodySeen {
                size: Some(self.req.body_size),
                error: None,
            },
            BodyEnd::Cut(error) => BodySeen { size: None, error },
        };
        match &self.awaiting_body {
            Some((r, _)) if Arc::ptr_eq(r, &head) => {
                let (request, response) = self.awaiting_body.take().expect("checked");
                out.push(L7Event::Http1(Http1Event::Exchange {
                    request: Some(request),
                    request_body: seen,
                    response: Box::new(response),
                }));
            }
            _ => {
                // Still waiting for its response, or its response is still passing.
                let in_flight = self.in_flight.as_mut().and_then(|f| f.request.as_mut());
                if let Some(p) = self
                    .pending
                    .iter_mut()
                    .rev()
                    .chain(in_flight)
                    .find(|p| Arc::ptr_eq(&p.head, &head))
                {
                    p.body = seen;
                }
            }
        }
    }

    /// Holds a complete exchange until its request body ends.
    pub(super) fn await_request_body(
        &mut self,
        request: Arc<RequestHead>,
        response: ResponseHead,
        out: &mut Vec<L7Event>,
    ) {
        // The slot is free here (only the passing request ever waits); flushing guards
        // against losing an exchange should that change.
        self.flush_awaiting(out);
        self.awaiting_body = Some((request, response));
    }

    /// Both directions become opaque (upgrade, CONNECT): a request body still passing will not
    /// be seen end, so its exchange is reported now.
    #[cold]
    #[inline(never)]
    pub(super) fn enter_tunnel(&mut self, out: &mut Vec<L7Event>) {
        self.end_request_body(BodyEnd::Cut(None), out);
        self.flush_awaiting(out);
        self.req.phase = Phase::Tunnel;
        self.resp.phase = Phase::Tunnel;
    }

    /// True while `head`'s body is still passing (its size is not known yet).
    pub(super) fn body_passing(&self, head: &Arc<RequestHead>) -> bool {
        self.body_passing
            .as_ref()
            .is_some_and(|h| Arc::ptr_eq(h, head))
    }

    pub(super) fn on_response(
        &mut self,
        r: ParsedResponse,
        start: PacketCtx,
        at: &PacketCtx,
        cx: &mut L7Context<'_>,
        out: &mut Vec<L7Event>,
    ) {
        count_oddities(r.odd, r.framing_error, cx);
        let head = ResponseHead {
            status: r.status,
            version: r.version,
            headers: r.headers,
            start,
            head_end: *at,
            end_ns: at.ts_ns,
            body_size: None,
            body_error: r.framing_error,
        };
        let status = r.status.unwrap_or(0);
        if status == 101 {
            // RFC 9110 §15.2.2: the connection switches protocol after this response.
            cx.counters.http1_upgrades += 1;
            let request = self.pending.pop_front();
            if let (true, Some(req)) = (r.upgrade_h2c, &request) {
                // RFC 7540 §3.2: HTTP/2 follows; the upgrade request is stream 1 and the
                // HTTP/2 decoder reports it with its HTTP/2 response.
                cx.counters.h2_upgrades += 1;
                let h2 = crate::l7::http2::Http2Decoder::after_upgrade(&req.head, cx.config);
                self.upgraded = Some(Box::new(h2));
                self.enter_tunnel(out);
                return;
            }
            self.emit_exchange(request, head, Some(0), cx, out);
            self.enter_tunnel(out);
            return;
        }
        if (100..200).contains(&status) {
            // Informational: the final response to the same request follows.
            cx.counters.http1_informational += 1;
            self.resp.phase = Phase::Head;
            return;
        }
        let request = self.pending.pop_front();
        if let Some(p) = &request {
            self.after_unframed_request(p, status, r.persistent);
        }
        let method = request.as_ref().map(|p| &*p.head.method).unwrap_or("");
        // RFC 9112 §6.3, in order.
        let body = if method == "HEAD" || status == 204 || status == 304 {
            Body::Length(0)
        } else if method == "CONNECT" && (200..300).contains(&status) {
            // RFC 9110 §9.3.6: the connection is now a tunnel to the target. What it relays
            // is a new stream (plain HTTP from a proxy client, HTTP/2, TLS): its protocol is
            // detected afresh, as a connection's is.
            cx.counters.http1_upgrades += 1;
            self.emit_exchange(request, head, Some(0), cx, out);
            self.upgraded = Some(Box::new(crate::l7::tunnel::ConnectTunnel::new()));
            self.enter_tunnel(out);
            return;
        } else {
            r.body
        };
        self.in_flight = Some(InFlight {
            request,
            response: head,
        });
        if r.dns_body && body != Body::Length(0) {
            self.doh_response_body();
        }
        match body {
            Body::Length(0) => self.response_done(at.ts_ns, BodyEnd::Whole, cx, out),
            b => self.resp.phase = Phase::Body(b),
        }
    }

    /// The server answered `request`; if its length was unknown, its answer says how the
    /// server took what followed (RFC 9112 §6.3 rules 4, 5: 400 and close). A success on a
    /// connection that stays open means the server framed it somehow: look for the next
    /// request again.
    #[cold]
    #[inline(never)]
    pub(super) fn after_unframed_request(
        &mut self,
        request: &Pending,
        status: u16,
        persistent: bool,
    ) {
        let unframed = request
            .head
            .framing_error
            .is_some_and(super::framing::leaves_request_unframed);
        if unframed && self.req.phase == Phase::Unframed && persistent && status < 400 {
            self.req.start_search(true);
        }
    }

    pub(super) fn response_done(
        &mut self,
        end_ns: u64,
        end: BodyEnd,
        cx: &mut L7Context<'_>,
        out: &mut Vec<L7Event>,
    ) {
        if let Some(InFlight {
            request,
            mut response,
        }) = self.in_flight.take()
        {
            response.end_ns = end_ns;
            let whole = end == BodyEnd::Whole;
            self.doh_response_done(request.as_ref(), &response, end_ns, whole, cx, out);
            let size = match end {
                BodyEnd::Whole => Some(self.resp.body_size),
                BodyEnd::Cut(error) => {
                    response.body_error = error.or(response.body_error);
                    None
                }
            };
            self.emit_exchange(request, response, size, cx, out);
        }
        self.resp.body_size = 0;
        if self.resp.phase != Phase::Tunnel && self.resp.phase != Phase::Ended {
            self.resp.phase = Phase::Head;
        }
    }

    pub(super) fn emit_exchange(
        &mut self,
        request: Option<Pending>,
        mut response: ResponseHead,
        body_size: Option<u64>,
        cx: &mut L7Context<'_>,
        out: &mut Vec<L7Event>,
    ) {
        cx.counters.http1_responses += 1;
        response.body_size = body_size;
        // The request may have been parsed while this response's body was passing (it was
        // captured late): pair it if it was sent no later than the response.
        let request = match request {
            Some(r) => Some(r),
            None => match self.pending.front() {
                Some(p) if p.head.start.ts_ns <= response.start.ts_ns => self.pending.pop_front(),
                _ => None,
            },
        };
        if let Some(p) = request.as_ref().filter(|p| self.body_passing(&p.head)) {
            // The response is complete but the request body is still passing (the server
            // answered early, or the capture delivered the response first): the exchange is
            // final only once both messages are, so it waits for the body's size.
            let head = p.head.clone();
            self.await_request_body(head, response, out);
            return;
        }
        let Some(request) = request else {
            if self.orphans.len() >= cx.config.max_pending_requests.max(1) {
                if let Some(old) = self.orphans.pop_front() {
                    emit_unpaired(old, cx, out);
                }
            }
            self.orphans.push_back(response);
            return;
        };
        out.push(L7Event::Http1(Http1Event::Exchange {
            request_body: request.body,
            request: Some(request.head),
            response: Box::new(response),
        }));
    }

    /// Reports the exchange waiting for a request body that will not be seen whole.
    #[cold]
    #[inline(never)]
    pub(super) fn flush_awaiting(&mut self, out: &mut Vec<L7Event>) {
        if let Some((request, response)) = self.awaiting_body.take() {
            out.push(L7Event::Http1(Http1Event::Exchange {
                request: Some(request),
                request_body: BodySeen::default(),
                response: Box::new(response),
            }));
        }
    }

    #[cold]
    #[inline(never)]
    pub(super) fn flush_orphans(&mut self, cx: &mut L7Context<'_>, out: &mut Vec<L7Event>) {
        for o in self.orphans.drain(..) {
            emit_unpaired(o, cx, out);
        }
    }
}

/// Counts what a head needed the lenient parser for, and a framing that breaks the rules.
fn count_oddities(odd: Oddities, framing_error: Option<BodyError>, cx: &mut L7Context<'_>) {
    if odd.lenient {
        cx.counters.http1_lenient_heads += 1;
        cx.counters.http1_field_lines_skipped += u64::from(odd.skipped_lines);
        cx.counters.http1_unusable_status_codes += u64::from(odd.unusable_status);
    }
    if framing_error.is_some_and(|e| e != BodyError::InvalidHead) {
        cx.counters.http1_invalid_framing += 1;
    }
}

/// Reports a response that answers no request we saw.
#[cold]
#[inline(never)]
fn emit_unpaired(response: ResponseHead, cx: &mut L7Context<'_>, out: &mut Vec<L7Event>) {
    cx.counters.http1_unpaired_responses += 1;
    out.push(L7Event::Http1(Http1Event::Exchange {
        request: None,
        request_body: BodySeen::default(),
        response: Box::new(response),
    }));
}

/// A request head over the cap, kept so the pairing stays aligned (never reported as a span
/// when even its method is unknown).
#[cold]
#[inline(never)]
pub(super) fn placeholder(parsed: &Option<Parsed>) -> RequestHead {
    let (method, target, version) = match parsed {
        Some(Parsed::Request(r)) => (r.method.clone(), r.target.clone(), r.version),
        _ => (
            crate::record::Text::Borrowed(""),
            String::new(),
            HttpVersion::Http11,
        ),
    };
    RequestHead {
        method,
        target,
        version,
        host: None,
        user_agent: None,
        headers: Vec::new(),
        content_length: None,
        trace: ExchangeTrace::none(),
        start: PacketCtx::default(),
        head_end: PacketCtx::default(),
        framing_error: None,
        url: Default::default(),
    }
}
