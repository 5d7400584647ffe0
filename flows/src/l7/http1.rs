//! HTTP/1.x decoder (RFC 9112) over reassembled TCP streams.
//!
//! Heads are parsed with httparse; bodies are skipped by their framing without being buffered
//! (only a partial head, at most `max_header_bytes`, is ever held). Requests are queued and
//! paired in order with final responses, which gives keep-alive and pipelining for free.
//!
//! Rules, with their sources:
//! - Message body length: RFC 9112 §6.3 (HEAD, 1xx, 204, 304 have none; CONNECT 2xx becomes a
//!   tunnel; Transfer-Encoding beats Content-Length; chunked must be last; a request without
//!   either has no body; a response without either runs until the connection closes).
//! - Chunked coding: RFC 9112 §7.1 (hex size, extensions ignored, trailer section skipped).
//! - 1xx are informational (RFC 9110 §15.2): the final response follows and pairs with the
//!   request; 101 switches protocols (RFC 9110 §15.2.2), after which we stop parsing.
//! - Empty lines before a request-line are ignored (RFC 9112 §2.2).
//! - After a gap the stream is searched for the next request-line / `HTTP/1.x ` status-line;
//!   gaps inside a Content-Length body only shorten it, so snapped captures stay in sync.
//! - Bytes that are not HTTP mark the connection not-HTTP; we stop trying.
//! - An exchange is reported once both its messages are complete: a response that ends while
//!   its request body is still passing (an early 301/413, RFC 9110 §15.5.14, or the capture
//!   delivering the response first) waits for the body's end, or for a close, gap or flush
//!   that means it will not be seen whole (then without a request body size).

use std::collections::VecDeque;
use std::mem::MaybeUninit;
use std::sync::Arc;

use crate::l7::{
    L7Context, L7Event, L7Protocol, PacketCtx, StreamDecoder, StreamDir, REDACTED,
    SENSITIVE_HEADERS,
};
use crate::tcp::StreamEvent;
use crate::trace::{
    is_traceparent, InboundTraceParent, InvalidTraceParent, SpanId, TraceId, TraceState,
};

/// Largest `max_headers` honoured (the header array lives on the stack).
const HEADER_ARRAY: usize = 128;

/// Request methods recognised when resyncing (RFC 9110 §9 plus PATCH, RFC 5789).
const METHODS: [&[u8]; 9] = [
    b"GET ",
    b"POST ",
    b"PUT ",
    b"HEAD ",
    b"DELETE ",
    b"OPTIONS ",
    b"PATCH ",
    b"CONNECT ",
    b"TRACE ",
];
/// Status-line starts recognised when resyncing (RFC 9112 §4).
const STATUS_STARTS: [&[u8]; 2] = [b"HTTP/1.1 ", b"HTTP/1.0 "];

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

/// A parsed request head.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestHead {
    /// Method token.
    pub method: crate::record::Text,
    /// Request target as sent (origin-form `/path?q`, absolute-form, `*` or authority).
    pub target: String,
    /// Minor version: 0 for HTTP/1.0, 1 for HTTP/1.1.
    pub version: u8,
    /// `Host` header value.
    pub host: Option<String>,
    /// `User-Agent` header value.
    pub user_agent: Option<String>,
    /// Allow-listed headers, sensitive values redacted.
    pub headers: Vec<(String, String)>,
    /// Body length from Content-Length (chunked bodies are counted as they pass).
    pub content_length: Option<u64>,
    /// Trace identity for the exchange.
    pub trace: ExchangeTrace,
    /// Packet that carried the first byte of the request.
    pub start: PacketCtx,
    /// Packet that completed the head.
    pub head_end: PacketCtx,
}

impl RequestHead {
    /// "HTTP/1.0" or "HTTP/1.1".
    pub fn protocol(&self) -> &'static str {
        version_str(self.version)
    }
}

/// A parsed final response and how its body went.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResponseHead {
    /// Status code.
    pub status: u16,
    /// Minor version.
    pub version: u8,
    /// Allow-listed headers, sensitive values redacted.
    pub headers: Vec<(String, String)>,
    /// Packet that carried the first byte of the status line.
    pub start: PacketCtx,
    /// Packet that completed the head.
    pub head_end: PacketCtx,
    /// Time of the packet that completed the message (body included).
    pub end_ns: u64,
    /// Body bytes, when the whole body was seen.
    pub body_size: Option<u64>,
}

/// What the HTTP/1 decoder reports.
#[derive(Debug, Clone, PartialEq)]
pub enum Http1Event {
    /// A request head was parsed.
    Request(Arc<RequestHead>),
    /// A final response completed; `request` is `None` when nothing was waiting for it.
    Exchange {
        /// The request it answers.
        request: Option<Arc<RequestHead>>,
        /// Request body bytes, when its body was seen whole.
        request_body_size: Option<u64>,
        /// The response.
        response: Box<ResponseHead>,
    },
    /// A request that got no response before the connection ended.
    Unanswered {
        /// The request.
        request: Arc<RequestHead>,
        /// Request body bytes, when seen whole.
        request_body_size: Option<u64>,
        /// When we gave up on it.
        at_ns: u64,
    },
}

fn version_str(v: u8) -> &'static str {
    if v == 0 {
        "HTTP/1.0"
    } else {
        "HTTP/1.1"
    }
}

/// Chunked transfer coding state (RFC 9112 §7.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Chunked {
    /// Reading hex digits of a chunk-size.
    Size { size: u64, digits: u8 },
    /// Skipping chunk-ext up to CRLF.
    Ext { size: u64, skipped: u32 },
    /// Expecting LF after the size line's CR.
    SizeLf { size: u64 },
    /// Inside chunk-data.
    Data { remaining: u64 },
    /// Expecting CR after chunk-data.
    DataCr,
    /// Expecting LF after chunk-data.
    DataLf,
    /// Inside the trailer section; `line` is the length of the current field line.
    Trailer { line: u32, total: u32 },
}

/// Longest chunk-ext or trailer section we skip before calling the framing broken.
const CHUNK_LINE_LIMIT: u32 = 16 * 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ChunkStep {
    /// Consumed this many bytes; more body follows.
    More(usize),
    /// Consumed this many bytes; the body ended.
    Done(usize),
    /// Framing is broken.
    Bad,
}

impl Chunked {
    fn start() -> Self {
        Chunked::Size { size: 0, digits: 0 }
    }

    /// Advances over `data`, adding chunk-data bytes to `body`.
    fn step(&mut self, data: &[u8], body: &mut u64) -> ChunkStep {
        let mut i = 0;
        while i < data.len() {
            let b = data[i];
            match *self {
                Chunked::Data { remaining } => {
                    let take = remaining.min((data.len() - i) as u64);
                    *body += take;
                    i += take as usize;
                    *self = if remaining == take {
                        Chunked::DataCr
                    } else {
                        Chunked::Data {
                            remaining: remaining - take,
                        }
                    };
                    continue;
                }
                Chunked::Size { size, digits } => {
                    if let Some(d) = (b as char).to_digit(16) {
                        // 16 hex digits fill a u64; more is an overflow attack.
                        if digits >= 16 {
                            return ChunkStep::Bad;
                        }
                        *self = Chunked::Size {
                            size: size << 4 | u64::from(d),
                            digits: digits + 1,
                        };
                    } else if digits == 0 {
                        return ChunkStep::Bad;
                    } else if b == b';' || b == b' ' || b == b'\t' {
                        *self = Chunked::Ext { size, skipped: 0 };
                    } else if b == b'\r' {
                        *self = Chunked::SizeLf { size };
                    } else if b == b'\n' {
                        // Bare LF: tolerated as many servers do (RFC 9112 §2.2 allows it).
                        *self = Self::after_size(size);
                    } else {
                        return ChunkStep::Bad;
                    }
                }
                Chunked::Ext { size, skipped } => {
                    if b == b'\r' {
                        *self = Chunked::SizeLf { size };
                    } else if b == b'\n' {
                        *self = Self::after_size(size);
                    } else if skipped >= CHUNK_LINE_LIMIT {
                        return ChunkStep::Bad;
                    } else {
                        *self = Chunked::Ext {
                            size,
                            skipped: skipped + 1,
                        };
                    }
                }
                Chunked::SizeLf { size } => {
                    if b != b'\n' {
                        return ChunkStep::Bad;
                    }
                    *self = Self::after_size(size);
                }
                Chunked::DataCr => {
                    *self = match b {
                        b'\r' => Chunked::DataLf,
                        b'\n' => Chunked::start(),
                        _ => return ChunkStep::Bad,
                    };
                }
                Chunked::DataLf => {
                    if b != b'\n' {
                        return ChunkStep::Bad;
                    }
                    *self = Chunked::start();
                }
                Chunked::Trailer { line, total } => {
                    if total >= CHUNK_LINE_LIMIT {
                        return ChunkStep::Bad;
                    }
                    match b {
                        b'\n' if line == 0 => return ChunkStep::Done(i + 1),
                        b'\n' => {
                            *self = Chunked::Trailer {
                                line: 0,
                                total: total + 1,
                            }
                        }
                        b'\r' => {
                            *self = Chunked::Trailer {
                                line,
                                total: total + 1,
                            }
                        }
                        _ => {
                            *self = Chunked::Trailer {
                                line: line + 1,
                                total: total + 1,
                            }
                        }
                    }
                }
            }
            i += 1;
        }
        ChunkStep::More(i)
    }

    fn after_size(size: u64) -> Self {
        if size == 0 {
            // last-chunk: the trailer section follows, ended by an empty line.
            Chunked::Trailer { line: 0, total: 0 }
        } else {
            Chunked::Data { remaining: size }
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Body {
    Length(u64),
    Chunked(Chunked),
    UntilClose,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Waiting for / inside a message head.
    Head,
    /// Skipping a body.
    Body(Body),
    /// Searching for the next message start after a gap.
    Resync,
    /// After an upgrade or CONNECT: opaque bytes.
    Tunnel,
    /// Stream ended.
    Ended,
}

/// One direction's parse state.
#[derive(Debug)]
struct Half {
    phase: Phase,
    /// Partial head (or a partial message start found while resyncing).
    buf: Vec<u8>,
    /// Packet that carried the current message's first byte.
    msg_start: Option<PacketCtx>,
    /// Body bytes of the current message so far.
    body_size: u64,
    /// The current head was found by resync: a parse failure means a false start.
    resynced: bool,
    /// A message has been parsed in this direction (it is HTTP).
    confirmed: bool,
    /// Bytes scanned while resyncing a not-yet-confirmed stream.
    scanned: usize,
    /// The last byte seen was a LF (a line starts at the next one).
    at_line_start: bool,
}

impl Half {
    fn new() -> Self {
        Self {
            phase: Phase::Head,
            buf: Vec::new(),
            msg_start: None,
            body_size: 0,
            resynced: false,
            confirmed: false,
            scanned: 0,
            at_line_start: true,
        }
    }
}

#[derive(Debug)]
struct Pending {
    head: Arc<RequestHead>,
    body_size: Option<u64>,
}

#[derive(Debug)]
struct InFlight {
    request: Option<Pending>,
    response: ResponseHead,
}

/// Decodes both directions of one HTTP/1 connection.
#[derive(Debug)]
pub struct Http1Decoder {
    req: Half,
    resp: Half,
    /// Requests waiting for their final response, oldest first.
    pending: VecDeque<Pending>,
    /// The response whose body is being skipped.
    in_flight: Option<InFlight>,
    /// The request whose body is being skipped (wherever it sits: `pending`, `in_flight` or
    /// `awaiting_body`). Only one can be: messages in one direction are sequential.
    body_passing: Option<Arc<RequestHead>>,
    /// Final responses that came with no request waiting, oldest first. The capture may
    /// deliver a request after its response (the two directions can be captured on different
    /// CPUs); a request sent no later than a parked response is paired with it.
    orphans: VecDeque<ResponseHead>,
    /// An exchange whose response is complete while its request body is still passing (the
    /// server answered early, e.g. 301/413 before reading the body, or the capture delivered
    /// the response first). It is reported when the body ends, with its size, or when it can
    /// no longer end (gap, close, flush), without. One slot suffices: it only ever holds the
    /// `body_passing` request.
    awaiting_body: Option<(Arc<RequestHead>, ResponseHead)>,
    /// After `101` with `Upgrade: h2c`: the HTTP/2 decoder that takes over, fed the bytes
    /// after the 101 head until the caller swaps it in ([`StreamDecoder::take_upgrade`]).
    upgraded: Option<Box<crate::l7::http2::Http2Decoder>>,
    dead: bool,
}

impl Default for Http1Decoder {
    fn default() -> Self {
        Self::new()
    }
}

enum HeadOutcome {
    /// Head complete; this many bytes of the input consumed.
    Complete(usize),
    /// Need more bytes; all input consumed.
    Partial,
    /// The head is over the byte or field-count cap.
    TooLarge { too_many_headers: bool },
    /// Not HTTP.
    Invalid,
}

impl Http1Decoder {
    /// A decoder expecting a request from the client and a response from the server.
    pub fn new() -> Self {
        Self {
            req: Half::new(),
            resp: Half::new(),
            pending: VecDeque::new(),
            in_flight: None,
            body_passing: None,
            orphans: VecDeque::new(),
            awaiting_body: None,
            upgraded: None,
            dead: false,
        }
    }

    fn half(&mut self, dir: StreamDir) -> &mut Half {
        match dir {
            StreamDir::ToServer => &mut self.req,
            StreamDir::ToClient => &mut self.resp,
        }
    }

    fn die(&mut self, cx: &mut L7Context<'_>) {
        if !self.dead {
            cx.counters.http1_parse_errors += 1;
            self.dead = true;
        }
    }

    fn feed(
        &mut self,
        dir: StreamDir,
        mut data: &[u8],
        at: &PacketCtx,
        cx: &mut L7Context<'_>,
        out: &mut Vec<L7Event>,
    ) {
        while !data.is_empty() && !self.dead {
            let phase = self.half(dir).phase;
            let used = match phase {
                Phase::Tunnel => {
                    if let Some(h2) = self.upgraded.as_mut() {
                        h2.on_event(dir, StreamEvent::Data(data), at, cx, out);
                    }
                    return;
                }
                Phase::Ended => return,
                Phase::Resync => self.resync(dir, data, at, cx),
                Phase::Head => self.head(dir, data, at, cx, out),
                Phase::Body(body) => self.body(dir, body, data, at, cx, out),
            };
            // Only a search for a message start reads `at_line_start`, and every way into
            // `Resync` sets it, so it is only worth the (cache-missing) read of the last body
            // byte when the search goes on.
            let half = self.half(dir);
            if used > 0 && half.phase == Phase::Resync {
                half.at_line_start = data[used - 1] == b'\n';
            }
            data = &data[used..];
        }
    }

    /// Searches for a message start; returns the bytes consumed (skipped).
    fn resync(
        &mut self,
        dir: StreamDir,
        data: &[u8],
        at: &PacketCtx,
        cx: &mut L7Context<'_>,
    ) -> usize {
        let patterns: &[&[u8]] = match dir {
            StreamDir::ToServer => &METHODS,
            StreamDir::ToClient => &STATUS_STARTS,
        };
        let max_detect = cx.config.max_detect_bytes;
        let half = self.half(dir);
        // A start split across the previous chunk's end was parked in `buf`.
        if !half.buf.is_empty() {
            let mut probe = std::mem::take(&mut half.buf);
            let take = data.len().min(16);
            probe.extend_from_slice(&data[..take]);
            match match_start(patterns, &probe) {
                Match::Full => {
                    probe.truncate(probe.len() - take);
                    half.buf = probe;
                    half.phase = Phase::Head;
                    half.resynced = true;
                    return 0;
                }
                Match::Prefix => {
                    half.buf = probe;
                    return take;
                }
                Match::No => {}
            }
        }
        // A status-line start ("HTTP/1.1 ") is distinctive enough to match anywhere (a
        // response often follows the previous body on the same line); a method name is not,
        // so requests are only looked for at line starts.
        let anywhere = dir == StreamDir::ToClient;
        let mut found = None;
        let mut line_start = half.at_line_start;
        for (i, &b) in data.iter().enumerate() {
            if line_start || anywhere && b == b'H' {
                match match_start(patterns, &data[i..]) {
                    Match::Full => {
                        found = Some(i);
                        break;
                    }
                    Match::Prefix => {
                        half.buf = data[i..].to_vec();
                        cx.counters.http1_resync_skipped_bytes += i as u64;
                        return data.len();
                    }
                    Match::No => {}
                }
            }
            line_start = b == b'\n';
        }
        let skipped = found.unwrap_or(data.len());
        cx.counters.http1_resync_skipped_bytes += skipped as u64;
        if !self.req.confirmed && !self.resp.confirmed {
            let half = self.half(dir);
            half.scanned += skipped;
            if half.scanned > max_detect {
                // Never looked like HTTP: stop trying.
                self.dead = true;
                return data.len();
            }
        }
        if found.is_some() {
            let half = self.half(dir);
            half.phase = Phase::Head;
            half.resynced = true;
            half.msg_start = Some(*at);
        }
        skipped
    }

    /// Parses (part of) a message head; returns bytes of `data` consumed.
    fn head(
        &mut self,
        dir: StreamDir,
        data: &[u8],
        at: &PacketCtx,
        cx: &mut L7Context<'_>,
        out: &mut Vec<L7Event>,
    ) -> usize {
        let max_bytes = cx.config.max_header_bytes;
        let max_headers = cx.config.max_headers.clamp(1, HEADER_ARRAY);
        let half = self.half(dir);
        let mut skip = 0;
        if half.buf.is_empty() && half.msg_start.is_none() {
            // RFC 9112 §2.2: ignore empty lines before a message.
            skip = data
                .iter()
                .take_while(|b| **b == b'\r' || **b == b'\n')
                .count();
            if skip == data.len() {
                return skip;
            }
        }
        if half.msg_start.is_none() {
            half.msg_start = Some(*at);
        }
        let data = &data[skip..];
        let prev = half.buf.len();
        if prev > 0 {
            let room = (max_bytes + 1).saturating_sub(prev);
            half.buf.extend_from_slice(&data[..data.len().min(room)]);
        }
        // Uninitialised: httparse writes the fields it parses; zeroing 128 of them (4 KiB) per
        // head was a measurable share of the decoder.
        let mut headers = [const { MaybeUninit::<httparse::Header<'_>>::uninit() }; HEADER_ARRAY];
        let outcome;
        let parsed;
        {
            let input: &[u8] = if prev > 0 { &half.buf } else { data };
            (outcome, parsed) = match dir {
                StreamDir::ToServer => {
                    parse_request(input, &mut headers[..max_headers], max_bytes, cx.config)
                }
                StreamDir::ToClient => {
                    parse_response(input, &mut headers[..max_headers], max_bytes, cx.config)
                }
            };
        }
        match outcome {
            HeadOutcome::Complete(n) => {
                let used = skip + n.saturating_sub(prev);
                half.buf.clear();
                half.confirmed = true;
                half.resynced = false;
                half.scanned = 0;
                let start = half.msg_start.take().unwrap_or(*at);
                half.body_size = 0;
                match parsed {
                    Some(Parsed::Request(r)) => self.on_request(r, start, at, cx, out),
                    Some(Parsed::Response(r)) => self.on_response(r, start, at, cx, out),
                    None => {}
                }
                used
            }
            HeadOutcome::Partial => {
                if prev == 0 {
                    half.buf.extend_from_slice(data);
                }
                skip + data.len()
            }
            HeadOutcome::TooLarge { too_many_headers } => {
                if too_many_headers {
                    cx.counters.http1_too_many_headers += 1;
                } else {
                    cx.counters.http1_header_too_large += 1;
                }
                half.buf.clear();
                half.msg_start = None;
                match dir {
                    StreamDir::ToServer => {
                        // The request is lost: keep pairing aligned with a placeholder.
                        let mut r = parsed_placeholder(&parsed);
                        r.trace = new_trace(InboundTraceParent::Absent, None, cx);
                        self.push_pending(r, cx);
                    }
                    StreamDir::ToClient => {
                        let status = match &parsed {
                            Some(Parsed::Response(r)) => r.status,
                            _ => 0,
                        };
                        self.resp_too_large(status, at, cx, out);
                    }
                }
                let half = self.half(dir);
                half.phase = Phase::Resync;
                half.resynced = true;
                half.at_line_start = false;
                // Search on from just after the message start: the next message may already
                // be in this chunk (the bytes held in `buf` were searched before).
                skip + usize::from(prev == 0)
            }
            HeadOutcome::Invalid => {
                if half.resynced {
                    // A false start found by resync: keep searching after its first byte.
                    half.buf.clear();
                    half.msg_start = None;
                    half.phase = Phase::Resync;
                    half.at_line_start = false;
                    skip + usize::from(prev == 0)
                } else {
                    self.die(cx);
                    skip + data.len()
                }
            }
        }
    }

    fn resp_too_large(
        &mut self,
        status: u16,
        at: &PacketCtx,
        cx: &mut L7Context<'_>,
        out: &mut Vec<L7Event>,
    ) {
        let request = self.pending.pop_front();
        if status >= 200 {
            cx.counters.http1_responses += 1;
            out.push(L7Event::Http1(Http1Event::Exchange {
                request_body_size: request.as_ref().and_then(|p| p.body_size),
                request: request.map(|p| p.head),
                response: Box::new(ResponseHead {
                    status,
                    version: 1,
                    headers: Vec::new(),
                    start: *at,
                    head_end: *at,
                    end_ns: at.ts_ns,
                    body_size: None,
                }),
            }));
        } else if let Some(p) = request {
            self.pending.push_front(p);
        }
    }

    fn push_pending(&mut self, r: RequestHead, cx: &mut L7Context<'_>) -> Arc<RequestHead> {
        if self.pending.len() >= cx.config.max_pending_requests.max(1) {
            cx.counters.http1_pending_overflow += 1;
            self.pending.pop_front();
        }
        let head = Arc::new(r);
        self.pending.push_back(Pending {
            head: head.clone(),
            body_size: None,
        });
        head
    }

    fn on_request(
        &mut self,
        r: ParsedRequest,
        start: PacketCtx,
        at: &PacketCtx,
        cx: &mut L7Context<'_>,
        out: &mut Vec<L7Event>,
    ) {
        cx.counters.http1_requests += 1;
        let trace = new_trace(r.traceparent, r.tracestate.as_deref(), cx);
        let body = r.body;
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
        };
        // A parked response captured no earlier than this request answers it.
        while let Some(o) = self.orphans.front() {
            if start.ts_ns <= o.start.ts_ns {
                let response = self.orphans.pop_front().expect("front exists");
                let head = Arc::new(head);
                out.push(L7Event::Http1(Http1Event::Request(head.clone())));
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
        self.start_request_body(head, body, out);
    }

    /// Enters the body of the request just parsed (or ends it at once when it has none).
    fn start_request_body(&mut self, head: Arc<RequestHead>, body: Body, out: &mut Vec<L7Event>) {
        // A body still marked passing never ended; it can no longer (a new head began).
        self.end_request_body(false, out);
        self.body_passing = Some(head);
        match body {
            Body::Length(0) => self.request_done(true, out),
            b => self.req.phase = Phase::Body(b),
        }
    }

    /// The request message ended (`complete`: seen whole, else cut short by a close or a
    /// broken framing); the next request head follows.
    fn request_done(&mut self, complete: bool, out: &mut Vec<L7Event>) {
        self.end_request_body(complete, out);
        self.req.phase = Phase::Head;
        self.req.body_size = 0;
    }

    /// The passing request body ended: its size is known when `complete`, else it was cut
    /// short (close, gap, flush). Reports the exchange that waited for it.
    fn end_request_body(&mut self, complete: bool, out: &mut Vec<L7Event>) {
        if let Some(head) = self.body_passing.take() {
            let size = complete.then_some(self.req.body_size);
            match &self.awaiting_body {
                Some((r, _)) if Arc::ptr_eq(r, &head) => {
                    let (request, response) = self.awaiting_body.take().expect("checked");
                    out.push(L7Event::Http1(Http1Event::Exchange {
                        request: Some(request),
                        request_body_size: size,
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
                        p.body_size = size;
                    }
                }
            }
        }
    }

    /// Holds a complete exchange until its request body ends.
    fn await_request_body(
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
    fn enter_tunnel(&mut self, out: &mut Vec<L7Event>) {
        self.end_request_body(false, out);
        self.flush_awaiting(out);
        self.req.phase = Phase::Tunnel;
        self.resp.phase = Phase::Tunnel;
    }

    /// True while `head`'s body is still passing (its size is not known yet).
    fn body_passing(&self, head: &Arc<RequestHead>) -> bool {
        self.body_passing
            .as_ref()
            .is_some_and(|h| Arc::ptr_eq(h, head))
    }

    fn on_response(
        &mut self,
        r: ParsedResponse,
        start: PacketCtx,
        at: &PacketCtx,
        cx: &mut L7Context<'_>,
        out: &mut Vec<L7Event>,
    ) {
        let head = ResponseHead {
            status: r.status,
            version: r.version,
            headers: r.headers,
            start,
            head_end: *at,
            end_ns: at.ts_ns,
            body_size: None,
        };
        if r.status == 101 {
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
        if (100..200).contains(&r.status) {
            // Informational: the final response to the same request follows.
            cx.counters.http1_informational += 1;
            self.resp.phase = Phase::Head;
            return;
        }
        let request = self.pending.pop_front();
        let method = request.as_ref().map(|p| &*p.head.method).unwrap_or("");
        // RFC 9112 §6.3, in order.
        let body = if method == "HEAD" || r.status == 204 || r.status == 304 {
            Body::Length(0)
        } else if method == "CONNECT" && (200..300).contains(&r.status) {
            cx.counters.http1_upgrades += 1;
            self.emit_exchange(request, head, Some(0), cx, out);
            self.enter_tunnel(out);
            return;
        } else {
            r.body
        };
        self.in_flight = Some(InFlight {
            request,
            response: head,
        });
        match body {
            Body::Length(0) => self.response_done(at.ts_ns, true, cx, out),
            b => self.resp.phase = Phase::Body(b),
        }
    }

    fn response_done(
        &mut self,
        end_ns: u64,
        complete: bool,
        cx: &mut L7Context<'_>,
        out: &mut Vec<L7Event>,
    ) {
        if let Some(InFlight {
            request,
            mut response,
        }) = self.in_flight.take()
        {
            response.end_ns = end_ns;
            let size = complete.then_some(self.resp.body_size);
            self.emit_exchange(request, response, size, cx, out);
        }
        self.resp.body_size = 0;
        if self.resp.phase != Phase::Tunnel && self.resp.phase != Phase::Ended {
            self.resp.phase = Phase::Head;
        }
    }

    fn emit_exchange(
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
        if request.is_none() {
            if self.orphans.len() >= cx.config.max_pending_requests.max(1) {
                if let Some(old) = self.orphans.pop_front() {
                    emit_unpaired(old, cx, out);
                }
            }
            self.orphans.push_back(response);
            return;
        }
        out.push(L7Event::Http1(Http1Event::Exchange {
            request_body_size: request.as_ref().and_then(|p| p.body_size),
            request: request.map(|p| p.head),
            response: Box::new(response),
        }));
    }

    /// Reports the exchange waiting for a request body that will not be seen whole.
    fn flush_awaiting(&mut self, out: &mut Vec<L7Event>) {
        if let Some((request, response)) = self.awaiting_body.take() {
            out.push(L7Event::Http1(Http1Event::Exchange {
                request: Some(request),
                request_body_size: None,
                response: Box::new(response),
            }));
        }
    }

    fn flush_orphans(&mut self, cx: &mut L7Context<'_>, out: &mut Vec<L7Event>) {
        for o in self.orphans.drain(..) {
            emit_unpaired(o, cx, out);
        }
    }

    /// Skips body bytes; returns bytes consumed.
    fn body(
        &mut self,
        dir: StreamDir,
        body: Body,
        data: &[u8],
        at: &PacketCtx,
        cx: &mut L7Context<'_>,
        out: &mut Vec<L7Event>,
    ) -> usize {
        let half = self.half(dir);
        let (used, done) = match body {
            Body::Length(remaining) => {
                let take = remaining.min(data.len() as u64);
                half.body_size += take;
                half.phase = Phase::Body(Body::Length(remaining - take));
                (take as usize, remaining == take)
            }
            Body::UntilClose => {
                half.body_size += data.len() as u64;
                (data.len(), false)
            }
            Body::Chunked(mut state) => match state.step(data, &mut half.body_size) {
                ChunkStep::More(n) => {
                    half.phase = Phase::Body(Body::Chunked(state));
                    (n, false)
                }
                ChunkStep::Done(n) => (n, true),
                ChunkStep::Bad => {
                    cx.counters.http1_bad_chunked += 1;
                    self.lose_sync(dir, at, cx, out);
                    return 0;
                }
            },
        };
        if done {
            self.message_done(dir, at, true, cx, out);
        }
        used
    }

    fn message_done(
        &mut self,
        dir: StreamDir,
        at: &PacketCtx,
        complete: bool,
        cx: &mut L7Context<'_>,
        out: &mut Vec<L7Event>,
    ) {
        match dir {
            StreamDir::ToServer => self.request_done(complete, out),
            StreamDir::ToClient => self.response_done(at.ts_ns, complete, cx, out),
        }
    }

    /// The stream position in `dir` is unknown: finish what can be finished and resync.
    fn lose_sync(
        &mut self,
        dir: StreamDir,
        at: &PacketCtx,
        cx: &mut L7Context<'_>,
        out: &mut Vec<L7Event>,
    ) {
        cx.counters.http1_resyncs += 1;
        if dir == StreamDir::ToClient && self.in_flight.is_some() {
            // The head was seen: report the exchange, without a body size.
            self.response_done(at.ts_ns, false, cx, out);
        }
        if dir == StreamDir::ToServer {
            // A body cut by the gap has no known size.
            self.end_request_body(false, out);
            self.flush_awaiting(out);
        }
        // Messages may have vanished in the gap, so in-order pairing can no longer be trusted.
        cx.counters.http1_requests_lost_in_gap += self.pending.len() as u64;
        self.pending.clear();
        self.flush_orphans(cx, out);
        let half = self.half(dir);
        if matches!(half.phase, Phase::Tunnel | Phase::Ended) {
            return;
        }
        half.phase = Phase::Resync;
        half.buf.clear();
        half.msg_start = None;
        half.body_size = 0;
        // Segment boundaries usually fall on message boundaries: try a match right after.
        half.at_line_start = true;
    }

    fn gap(
        &mut self,
        dir: StreamDir,
        len: u64,
        at: &PacketCtx,
        cx: &mut L7Context<'_>,
        out: &mut Vec<L7Event>,
    ) {
        let half = self.half(dir);
        match half.phase {
            Phase::Tunnel | Phase::Ended => {}
            // A gap inside a sized body only shortens it: framing survives.
            Phase::Body(Body::Length(remaining)) if len > 0 && len <= remaining => {
                half.body_size += len;
                half.phase = Phase::Body(Body::Length(remaining - len));
                if len == remaining {
                    // The size is known from the framing even if some bytes were not seen.
                    self.message_done(dir, at, true, cx, out);
                }
            }
            Phase::Body(Body::UntilClose) if len > 0 => half.body_size += len,
            Phase::Resync => {
                half.buf.clear();
                half.at_line_start = true;
            }
            _ => self.lose_sync(dir, at, cx, out),
        }
    }

    fn end(
        &mut self,
        dir: StreamDir,
        at: &PacketCtx,
        cx: &mut L7Context<'_>,
        out: &mut Vec<L7Event>,
    ) {
        let half = self.half(dir);
        match half.phase {
            // RFC 9112 §6.3 rule 8: the close delimits the response.
            Phase::Body(Body::UntilClose) if dir == StreamDir::ToClient => {
                self.response_done(at.ts_ns, true, cx, out);
            }
            Phase::Body(_) => {
                cx.counters.http1_truncated_messages += 1;
                self.message_done(dir, at, false, cx, out);
            }
            Phase::Head if !half.buf.is_empty() => cx.counters.http1_truncated_messages += 1,
            _ => {}
        }
        let half = self.half(dir);
        half.phase = Phase::Ended;
        half.buf = Vec::new();
    }
}

impl StreamDecoder for Http1Decoder {
    fn protocol(&self) -> L7Protocol {
        L7Protocol::Http1
    }

    fn on_event(
        &mut self,
        dir: StreamDir,
        event: StreamEvent<'_>,
        at: &PacketCtx,
        cx: &mut L7Context<'_>,
        out: &mut Vec<L7Event>,
    ) {
        if self.dead {
            return;
        }
        match event {
            StreamEvent::Data(d) => self.feed(dir, d, at, cx, out),
            StreamEvent::Gap { len } => self.gap(dir, len, at, cx, out),
            StreamEvent::Fin | StreamEvent::Reset => self.end(dir, at, cx, out),
        }
    }

    fn finish(&mut self, now_ns: u64, cx: &mut L7Context<'_>, out: &mut Vec<L7Event>) {
        if matches!(self.resp.phase, Phase::Body(Body::UntilClose)) {
            self.response_done(now_ns, false, cx, out);
        } else if self.in_flight.is_some() {
            cx.counters.http1_truncated_messages += 1;
            self.response_done(now_ns, false, cx, out);
        }
        self.end_request_body(false, out);
        self.flush_awaiting(out);
        self.flush_orphans(cx, out);
        for p in self.pending.drain(..) {
            cx.counters.http1_unanswered += 1;
            out.push(L7Event::Http1(Http1Event::Unanswered {
                request: p.head,
                request_body_size: p.body_size,
                at_ns: now_ns,
            }));
        }
        self.req.phase = Phase::Ended;
        self.resp.phase = Phase::Ended;
    }

    fn is_dead(&self) -> bool {
        self.dead
    }

    fn buffered(&self) -> usize {
        self.req.buf.capacity() + self.resp.buf.capacity()
    }

    fn take_upgrade(&mut self) -> Option<Box<dyn StreamDecoder>> {
        self.upgraded.take().map(|d| d as Box<dyn StreamDecoder>)
    }
}

/// Reports a response that answers no request we saw.
fn emit_unpaired(response: ResponseHead, cx: &mut L7Context<'_>, out: &mut Vec<L7Event>) {
    cx.counters.http1_unpaired_responses += 1;
    out.push(L7Event::Http1(Http1Event::Exchange {
        request: None,
        request_body_size: None,
        response: Box::new(response),
    }));
}

enum Match {
    Full,
    Prefix,
    No,
}

fn match_start(patterns: &[&[u8]], data: &[u8]) -> Match {
    for p in patterns {
        if data.len() >= p.len() {
            if data.starts_with(p) {
                return Match::Full;
            }
        } else if p.starts_with(data) {
            return Match::Prefix;
        }
    }
    Match::No
}

/// Trace identity for a new exchange from its `traceparent` fields and `tracestate` value
/// (shared with the HTTP/2 decoder). An invalid `traceparent` counts as none (W3C Trace
/// Context §3.2.2), counted and kept as a mark.
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

#[derive(Debug)]
enum Parsed {
    Request(ParsedRequest),
    Response(ParsedResponse),
}

#[derive(Debug, Default)]
struct ParsedRequest {
    method: crate::record::Text,
    target: String,
    version: u8,
    host: Option<String>,
    user_agent: Option<String>,
    traceparent: InboundTraceParent,
    tracestate: Option<String>,
    headers: Vec<(String, String)>,
    content_length: Option<u64>,
    body: Body,
}

impl Default for Body {
    fn default() -> Self {
        Body::Length(0)
    }
}

#[derive(Debug)]
struct ParsedResponse {
    status: u16,
    version: u8,
    headers: Vec<(String, String)>,
    body: Body,
    /// `Upgrade: h2c` (RFC 7540 §3.2): on a 101 the connection continues as HTTP/2.
    upgrade_h2c: bool,
}

fn parsed_placeholder(parsed: &Option<Parsed>) -> RequestHead {
    let (method, target, version) = match parsed {
        Some(Parsed::Request(r)) => (r.method.clone(), r.target.clone(), r.version),
        _ => (crate::record::Text::Borrowed(""), String::new(), 1),
    };
    RequestHead {
        method,
        target,
        version,
        host: None,
        user_agent: None,
        headers: Vec::new(),
        content_length: None,
        trace: ExchangeTrace {
            trace_id: TraceId::default(),
            span_id: SpanId::default(),
            parent_span_id: None,
            trace_state: None,
            traceparent_invalid: None,
        },
        start: PacketCtx::default(),
        head_end: PacketCtx::default(),
    }
}

/// Framing facts from the header fields (RFC 9112 §6.1-6.3).
struct Framing {
    chunked: bool,
    transfer_encoding: bool,
    content_length: Option<u64>,
    invalid: bool,
}

fn framing(headers: &[httparse::Header<'_>]) -> Framing {
    let mut f = Framing {
        chunked: false,
        transfer_encoding: false,
        content_length: None,
        invalid: false,
    };
    for h in headers {
        if h.name.eq_ignore_ascii_case("transfer-encoding") {
            f.transfer_encoding = true;
            // Only the final coding matters: chunked must be last (RFC 9112 §6.3 rule 4).
            let last = h.value.rsplit(|b| *b == b',').next().unwrap_or(b"");
            f.chunked = last.trim_ascii().eq_ignore_ascii_case(b"chunked");
        } else if h.name.eq_ignore_ascii_case("content-length") {
            // A list of identical values is allowed (RFC 9110 §8.6); differing ones are not.
            for v in h.value.split(|b| *b == b',') {
                let v = v.trim_ascii();
                let n = std::str::from_utf8(v)
                    .ok()
                    .filter(|s| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()))
                    .and_then(|s| s.parse::<u64>().ok());
                match (n, f.content_length) {
                    (None, _) => f.invalid = true,
                    (Some(n), Some(old)) if n != old => f.invalid = true,
                    (Some(n), _) => f.content_length = Some(n),
                }
            }
        }
    }
    f
}

fn keep_headers(
    headers: &[httparse::Header<'_>],
    cfg: &crate::l7::L7Config,
) -> Vec<(String, String)> {
    let mut kept = Vec::new();
    for h in headers {
        if !cfg
            .header_allow_list
            .iter()
            .any(|a| a.eq_ignore_ascii_case(h.name))
        {
            continue;
        }
        let value = if SENSITIVE_HEADERS
            .iter()
            .any(|s| s.eq_ignore_ascii_case(h.name))
        {
            REDACTED.to_string()
        } else {
            String::from_utf8_lossy(h.value).into_owned()
        };
        kept.push((h.name.to_string(), value));
    }
    kept
}

fn header_str(headers: &[httparse::Header<'_>], name: &str) -> Option<String> {
    headers
        .iter()
        .find(|h| h.name.eq_ignore_ascii_case(name))
        .map(|h| String::from_utf8_lossy(h.value).into_owned())
}

fn classify(err: httparse::Error, len: usize, max_bytes: usize) -> HeadOutcome {
    match err {
        httparse::Error::TooManyHeaders => HeadOutcome::TooLarge {
            too_many_headers: true,
        },
        _ if len > max_bytes => HeadOutcome::TooLarge {
            too_many_headers: false,
        },
        _ => HeadOutcome::Invalid,
    }
}

fn parse_request<'b>(
    input: &'b [u8],
    headers: &mut [MaybeUninit<httparse::Header<'b>>],
    max_bytes: usize,
    cfg: &crate::l7::L7Config,
) -> (HeadOutcome, Option<Parsed>) {
    let mut req = httparse::Request::new(&mut []);
    match req.parse_with_uninit_headers(input, headers) {
        Ok(httparse::Status::Complete(n)) if n <= max_bytes => {
            let hs = &*req.headers;
            let f = framing(hs);
            // RFC 9112 §6.3 rule 4: a request whose final coding is not chunked is invalid;
            // conflicting Content-Length values are too (rule 5).
            if f.invalid || f.transfer_encoding && !f.chunked {
                return (HeadOutcome::Invalid, None);
            }
            let body = if f.chunked {
                Body::Chunked(Chunked::start())
            } else {
                Body::Length(f.content_length.unwrap_or(0))
            };
            let parsed = ParsedRequest {
                method: crate::record::text(req.method.unwrap_or_default()),
                target: req.path.unwrap_or_default().to_string(),
                version: req.version.unwrap_or(1),
                host: header_str(hs, "host"),
                user_agent: header_str(hs, "user-agent"),
                // W3C Trace Context §3.2.1: any casing; every field, as two are invalid.
                traceparent: InboundTraceParent::from_fields(
                    hs.iter()
                        .filter(|h| is_traceparent(h.name.as_bytes()))
                        .map(|h| h.value),
                ),
                tracestate: header_str(hs, "tracestate"),
                headers: keep_headers(hs, cfg),
                content_length: if f.chunked { None } else { f.content_length },
                body,
            };
            (HeadOutcome::Complete(n), Some(Parsed::Request(parsed)))
        }
        Ok(httparse::Status::Complete(_)) => (
            HeadOutcome::TooLarge {
                too_many_headers: false,
            },
            None,
        ),
        Ok(httparse::Status::Partial) => {
            let partial = req.method.map(|m| {
                Parsed::Request(ParsedRequest {
                    method: crate::record::text(m),
                    target: req.path.unwrap_or_default().to_string(),
                    version: req.version.unwrap_or(1),
                    ..Default::default()
                })
            });
            if input.len() > max_bytes {
                (
                    HeadOutcome::TooLarge {
                        too_many_headers: false,
                    },
                    partial,
                )
            } else {
                (HeadOutcome::Partial, None)
            }
        }
        Err(e) => {
            let partial = req.method.map(|m| {
                Parsed::Request(ParsedRequest {
                    method: crate::record::text(m),
                    target: req.path.unwrap_or_default().to_string(),
                    version: req.version.unwrap_or(1),
                    ..Default::default()
                })
            });
            (classify(e, input.len(), max_bytes), partial)
        }
    }
}

fn parse_response<'b>(
    input: &'b [u8],
    headers: &mut [MaybeUninit<httparse::Header<'b>>],
    max_bytes: usize,
    cfg: &crate::l7::L7Config,
) -> (HeadOutcome, Option<Parsed>) {
    let mut resp = httparse::Response::new(&mut []);
    match httparse::ParserConfig::default()
        .parse_response_with_uninit_headers(&mut resp, input, headers)
    {
        Ok(httparse::Status::Complete(n)) if n <= max_bytes => {
            let hs = &*resp.headers;
            let f = framing(hs);
            if f.invalid {
                return (HeadOutcome::Invalid, None);
            }
            let body = if f.transfer_encoding {
                // RFC 9112 §6.3 rule 4: chunked last, else read until close.
                if f.chunked {
                    Body::Chunked(Chunked::start())
                } else {
                    Body::UntilClose
                }
            } else if let Some(n) = f.content_length {
                Body::Length(n)
            } else {
                Body::UntilClose
            };
            let upgrade_h2c = hs.iter().any(|h| {
                h.name.eq_ignore_ascii_case("upgrade")
                    && h.value.trim_ascii().eq_ignore_ascii_case(b"h2c")
            });
            let parsed = ParsedResponse {
                status: resp.code.unwrap_or(0),
                version: resp.version.unwrap_or(1),
                headers: keep_headers(hs, cfg),
                body,
                upgrade_h2c,
            };
            (HeadOutcome::Complete(n), Some(Parsed::Response(parsed)))
        }
        Ok(httparse::Status::Complete(_)) => (
            HeadOutcome::TooLarge {
                too_many_headers: false,
            },
            None,
        ),
        Ok(httparse::Status::Partial) if input.len() > max_bytes => {
            let partial = resp.code.map(|c| {
                Parsed::Response(ParsedResponse {
                    status: c,
                    version: resp.version.unwrap_or(1),
                    headers: Vec::new(),
                    body: Body::UntilClose,
                    upgrade_h2c: false,
                })
            });
            (
                HeadOutcome::TooLarge {
                    too_many_headers: false,
                },
                partial,
            )
        }
        Ok(httparse::Status::Partial) => (HeadOutcome::Partial, None),
        Err(e) => {
            let partial = resp.code.map(|c| {
                Parsed::Response(ParsedResponse {
                    status: c,
                    version: resp.version.unwrap_or(1),
                    headers: Vec::new(),
                    body: Body::UntilClose,
                    upgrade_h2c: false,
                })
            });
            (classify(e, input.len(), max_bytes), partial)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::counters::Counters;
    use crate::l7::L7Config;
    use crate::trace::IdGenerator;

    struct H {
        dec: Http1Decoder,
        c: Counters,
        ids: IdGenerator,
        cfg: L7Config,
        out: Vec<L7Event>,
        ts: u64,
    }

    /// A compact view of the events for assertions.
    #[derive(Debug, PartialEq, Eq)]
    enum E {
        Req(String, String),
        Ex(Option<(String, String)>, u16, Option<u64>),
        NoResp(String, String),
    }

    impl H {
        fn new() -> Self {
            Self::with(L7Config::default())
        }
        fn with(cfg: L7Config) -> Self {
            Self {
                dec: Http1Decoder::new(),
                c: Counters::default(),
                ids: IdGenerator::new(1),
                cfg,
                out: Vec::new(),
                ts: 0,
            }
        }
        fn ev(&mut self, dir: StreamDir, ev: StreamEvent<'_>) {
            self.ts += 1;
            self.ev_at(dir, ev, self.ts);
        }
        fn ev_at(&mut self, dir: StreamDir, ev: StreamEvent<'_>, ts: u64) {
            let at = PacketCtx {
                ts_ns: ts,
                ..Default::default()
            };
            let mut cx = L7Context {
                counters: &mut self.c,
                ids: &mut self.ids,
                config: &self.cfg,
            };
            self.dec.on_event(dir, ev, &at, &mut cx, &mut self.out);
        }
        fn req(&mut self, bytes: &[u8]) {
            self.ev(StreamDir::ToServer, StreamEvent::Data(bytes));
        }
        fn resp(&mut self, bytes: &[u8]) {
            self.ev(StreamDir::ToClient, StreamEvent::Data(bytes));
        }
        fn finish(&mut self) {
            let mut cx = L7Context {
                counters: &mut self.c,
                ids: &mut self.ids,
                config: &self.cfg,
            };
            self.dec.finish(999, &mut cx, &mut self.out);
        }
        fn events(&self) -> Vec<E> {
            self.out
                .iter()
                .filter_map(|e| match e {
                    L7Event::Http1(e) => Some(e),
                    _ => None,
                })
                .map(|e| match e {
                    Http1Event::Request(r) => E::Req(r.method.to_string(), r.target.clone()),
                    Http1Event::Exchange {
                        request, response, ..
                    } => E::Ex(
                        request
                            .as_ref()
                            .map(|r| (r.method.to_string(), r.target.clone())),
                        response.status,
                        response.body_size,
                    ),
                    Http1Event::Unanswered { request, .. } => {
                        E::NoResp(request.method.to_string(), request.target.clone())
                    }
                })
                .collect()
        }
        /// `request_body_size` of every exchange, in order.
        fn req_body_sizes(&self) -> Vec<Option<u64>> {
            self.out
                .iter()
                .filter_map(|e| match e {
                    L7Event::Http1(Http1Event::Exchange {
                        request_body_size, ..
                    }) => Some(*request_body_size),
                    _ => None,
                })
                .collect()
        }
        fn exchanges(&self) -> Vec<E> {
            self.events()
                .into_iter()
                .filter(|e| !matches!(e, E::Req(..)))
                .collect()
        }
    }

    fn ex(m: &str, p: &str, status: u16, body: Option<u64>) -> E {
        E::Ex(Some((m.into(), p.into())), status, body)
    }

    #[test]
    fn keep_alive_exchanges_pair_in_order() {
        let mut h = H::new();
        h.req(b"GET /a HTTP/1.1\r\nHost: h\r\n\r\n");
        h.resp(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello");
        h.req(b"POST /b HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\n\r\nxyz");
        h.resp(b"HTTP/1.1 201 Created\r\nContent-Length: 0\r\n\r\n");
        assert_eq!(
            h.events(),
            vec![
                E::Req("GET".into(), "/a".into()),
                ex("GET", "/a", 200, Some(5)),
                E::Req("POST".into(), "/b".into()),
                ex("POST", "/b", 201, Some(0)),
            ]
        );
        match &h.out[3] {
            L7Event::Http1(Http1Event::Exchange {
                request_body_size, ..
            }) => assert_eq!(*request_body_size, Some(3)),
            e => panic!("{e:?}"),
        }
    }

    #[test]
    fn pipelined_requests_pair_with_responses_in_order() {
        let mut h = H::new();
        h.req(b"GET /1 HTTP/1.1\r\nHost: h\r\n\r\nGET /2 HTTP/1.1\r\nHost: h\r\n\r\nGET /3 HTTP/1.1\r\nHost: h\r\n\r\n");
        h.resp(b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\naHTTP/1.1 404 Not Found\r\nContent-Length: 2\r\n\r\nbbHTTP/1.1 500 Oops\r\nContent-Length: 0\r\n\r\n");
        assert_eq!(
            h.exchanges(),
            vec![
                ex("GET", "/1", 200, Some(1)),
                ex("GET", "/2", 404, Some(2)),
                ex("GET", "/3", 500, Some(0))
            ]
        );
    }

    #[test]
    fn chunked_body_with_extensions_and_trailers() {
        let mut h = H::new();
        h.req(b"GET /c HTTP/1.1\r\n\r\n");
        h.resp(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n4;name=value;x=\"q\"\r\nWiki\r\n5\r\npedia\r\nE\r\n in\r\n\r\nchunks.\r\n0;last\r\nExpires: never\r\nX-Trailer: 1\r\n\r\n");
        h.req(b"GET /next HTTP/1.1\r\n\r\n");
        h.resp(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n");
        assert_eq!(
            h.exchanges(),
            vec![
                ex("GET", "/c", 200, Some(23)),
                ex("GET", "/next", 200, Some(0))
            ]
        );
        assert_eq!(h.c.http1_bad_chunked, 0);
    }

    #[test]
    fn chunked_request_body_byte_by_byte() {
        let mut h = H::new();
        let req = b"POST /up HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\nGET /after HTTP/1.1\r\n\r\n";
        for b in req.iter() {
            h.req(std::slice::from_ref(b));
        }
        h.resp(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n");
        assert_eq!(
            h.exchanges(),
            vec![
                ex("POST", "/up", 200, Some(0)),
                ex("GET", "/after", 200, Some(0))
            ]
        );
        match &h.out[2] {
            L7Event::Http1(Http1Event::Exchange {
                request_body_size, ..
            }) => assert_eq!(*request_body_size, Some(3)),
            e => panic!("{e:?}"),
        }
    }

    #[test]
    fn head_204_and_304_have_no_body() {
        let mut h = H::new();
        h.req(b"HEAD /h HTTP/1.1\r\n\r\nGET /n HTTP/1.1\r\n\r\nGET /m HTTP/1.1\r\n\r\nGET /z HTTP/1.1\r\n\r\n");
        // HEAD's Content-Length describes the GET body that was not sent (RFC 9110 §9.3.2).
        h.resp(b"HTTP/1.1 200 OK\r\nContent-Length: 1234\r\n\r\n");
        h.resp(b"HTTP/1.1 204 No Content\r\n\r\n");
        h.resp(b"HTTP/1.1 304 Not Modified\r\nContent-Length: 99\r\n\r\n");
        h.resp(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok");
        assert_eq!(
            h.exchanges(),
            vec![
                ex("HEAD", "/h", 200, Some(0)),
                ex("GET", "/n", 204, Some(0)),
                ex("GET", "/m", 304, Some(0)),
                ex("GET", "/z", 200, Some(2)),
            ]
        );
    }

    #[test]
    fn continue_100_is_informational() {
        let mut h = H::new();
        h.req(b"POST /upload HTTP/1.1\r\nContent-Length: 4\r\nExpect: 100-continue\r\n\r\n");
        h.resp(b"HTTP/1.1 100 Continue\r\n\r\n");
        h.req(b"data");
        h.resp(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n");
        assert_eq!(h.exchanges(), vec![ex("POST", "/upload", 200, Some(0))]);
        assert_eq!(h.c.http1_informational, 1);
    }

    #[test]
    fn upgrade_101_stops_parsing() {
        let mut h = H::new();
        h.req(b"GET /ws HTTP/1.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n");
        h.resp(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\n\x81\x05hello");
        h.req(b"\x81\x85garbage that is not http");
        assert_eq!(h.exchanges(), vec![ex("GET", "/ws", 101, Some(0))]);
        assert_eq!(h.c.http1_upgrades, 1);
        assert_eq!(h.c.http1_parse_errors, 0);
        assert!(!h.dec.is_dead());
    }

    #[test]
    fn close_delimited_response_ends_at_fin() {
        let mut h = H::new();
        h.req(b"GET /old HTTP/1.0\r\n\r\n");
        h.resp(b"HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\n\r\nall of ");
        h.resp(b"this body");
        assert_eq!(h.exchanges(), vec![]);
        h.ev(StreamDir::ToClient, StreamEvent::Fin);
        assert_eq!(h.exchanges(), vec![ex("GET", "/old", 200, Some(16))]);
    }

    #[test]
    fn garbage_marks_the_flow_not_http() {
        let mut h = H::new();
        h.req(b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03");
        assert!(h.dec.is_dead());
        assert_eq!(h.c.http1_parse_errors, 1);
        h.req(b"GET / HTTP/1.1\r\n\r\n");
        assert!(h.events().is_empty());
    }

    #[test]
    fn header_caps_are_counted_and_the_stream_resyncs() {
        let cfg = L7Config {
            max_headers: 4,
            max_header_bytes: 256,
            ..L7Config::default()
        };
        let mut h = H::with(cfg);
        h.req(b"GET /many HTTP/1.1\r\na: 1\r\nb: 2\r\nc: 3\r\nd: 4\r\ne: 5\r\n\r\nGET /ok HTTP/1.1\r\n\r\n");
        assert_eq!(h.c.http1_too_many_headers, 1);
        let mut big = b"GET /big HTTP/1.1\r\n".to_vec();
        big.extend_from_slice(b"X-Filler: ");
        big.extend_from_slice(&[b'z'; 2000]);
        big.extend_from_slice(b"\r\n");
        h.req(&big[..100]);
        h.req(&big[100..]);
        h.req(b"\r\nGET /after HTTP/1.1\r\n\r\n");
        assert_eq!(h.c.http1_header_too_large, 1);
        assert!(h.dec.buffered() <= 2 * 512, "buffer stays near the cap");
        let reqs: Vec<_> = h
            .events()
            .into_iter()
            .filter(|e| matches!(e, E::Req(..)))
            .collect();
        assert_eq!(
            reqs,
            vec![
                E::Req("GET".into(), "/ok".into()),
                E::Req("GET".into(), "/after".into())
            ]
        );
    }

    #[test]
    fn endless_headers_stay_bounded() {
        let mut h = H::new();
        h.req(b"GET / HTTP/1.1\r\n");
        for _ in 0..100_000 {
            h.req(b"X-Endless: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n");
            assert!(h.dec.buffered() <= 4 * h.cfg.max_header_bytes);
        }
        // Either cap may trip first; both end the same way.
        assert!(h.c.http1_header_too_large + h.c.http1_too_many_headers >= 1);
    }

    #[test]
    fn gap_in_head_resyncs_on_next_message() {
        let mut h = H::new();
        h.req(b"GET /1 HTTP/1.1\r\n\r\nGET /2 HTTP/1.1\r\n\r\n");
        h.resp(b"HTTP/1.1 200 OK\r\nContent-Le");
        h.ev(StreamDir::ToClient, StreamEvent::Gap { len: 100 });
        h.resp(b"ngth: 3\r\n\r\nabcHTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n");
        h.req(b"GET /3 HTTP/1.1\r\n\r\n");
        h.resp(b"HTTP/1.1 201 Created\r\nContent-Length: 0\r\n\r\n");
        // Pairing across the gap is unknowable; the response after resync is reported alone
        // and pairing restarts with the next request.
        assert_eq!(
            h.exchanges(),
            vec![E::Ex(None, 404, Some(0)), ex("GET", "/3", 201, Some(0))]
        );
        assert_eq!(h.c.http1_resyncs, 1);
        assert_eq!(h.c.http1_requests_lost_in_gap, 2);
    }

    #[test]
    fn gap_inside_sized_body_keeps_sync() {
        let mut h = H::new();
        h.req(b"GET /big HTTP/1.1\r\n\r\n");
        h.resp(b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n0123456789");
        h.ev(StreamDir::ToClient, StreamEvent::Gap { len: 980 });
        h.resp(b"0123456789");
        assert_eq!(h.exchanges(), vec![ex("GET", "/big", 200, Some(1000))]);
        assert_eq!(h.c.http1_resyncs, 0);
    }

    #[test]
    fn mid_stream_start_finds_the_next_request() {
        let mut h = H::new();
        h.ev(StreamDir::ToServer, StreamEvent::Gap { len: 0 });
        h.ev(StreamDir::ToClient, StreamEvent::Gap { len: 0 });
        h.req(b"rest of some body\r\nGET /x HTTP/1.1\r\nHost: h\r\n\r\n");
        h.resp(b"tail of an earlier response\nHTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n");
        assert_eq!(h.exchanges(), vec![ex("GET", "/x", 200, Some(0))]);
    }

    #[test]
    fn mid_stream_garbage_gives_up_after_the_scan_budget() {
        let cfg = L7Config {
            max_detect_bytes: 1000,
            ..L7Config::default()
        };
        let mut h = H::with(cfg);
        h.ev(StreamDir::ToServer, StreamEvent::Gap { len: 0 });
        for _ in 0..5 {
            h.req(&[0x17; 300]);
        }
        assert!(h.dec.is_dead());
        // Once either direction has shown HTTP, long stretches of body are searched on.
        let mut h = H::with(L7Config {
            max_detect_bytes: 1000,
            ..L7Config::default()
        });
        h.req(b"GET /dl HTTP/1.1\r\n\r\n");
        h.ev(StreamDir::ToClient, StreamEvent::Gap { len: 0 });
        for _ in 0..10 {
            h.resp(&[b'x'; 300]);
        }
        h.resp(b"\r\nHTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n");
        assert!(!h.dec.is_dead());
        h.finish();
        assert_eq!(h.exchanges(), vec![E::Ex(None, 200, Some(0))]);
    }

    #[test]
    fn sensitive_headers_are_redacted_even_when_allowed() {
        let cfg = L7Config {
            header_allow_list: vec!["authorization".into(), "cookie".into(), "x-safe".into()],
            ..L7Config::default()
        };
        let mut h = H::with(cfg);
        h.req(b"GET / HTTP/1.1\r\nAuthorization: Bearer secret\r\nCookie: s=1\r\nX-Safe: yes\r\nX-Other: no\r\n\r\n");
        let L7Event::Http1(Http1Event::Request(r)) = &h.out[0] else {
            panic!()
        };
        assert_eq!(
            r.headers,
            vec![
                ("Authorization".into(), REDACTED.into()),
                ("Cookie".into(), REDACTED.into()),
                ("X-Safe".into(), "yes".into())
            ]
        );
        let dbg = format!("{:?}", h.out);
        assert!(!dbg.contains("secret"));
    }

    #[test]
    fn traceparent_sets_trace_and_parent() {
        let mut h = H::new();
        h.req(b"GET / HTTP/1.1\r\ntraceparent: 00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01\r\ntracestate: a=1,B=2\r\n\r\n");
        h.req(b"GET / HTTP/1.1\r\ntraceparent: 00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01\r\ntracestate: a=1\r\n\r\n");
        let traces: Vec<_> = h
            .out
            .iter()
            .map(|e| match e {
                L7Event::Http1(Http1Event::Request(r)) => r.trace.clone(),
                _ => panic!(),
            })
            .collect();
        assert_eq!(
            traces[0].trace_id.to_string(),
            "4bf92f3577b34da6a3ce929d0e0e4736"
        );
        assert_eq!(
            traces[0].parent_span_id.unwrap().to_string(),
            "00f067aa0ba902b7"
        );
        assert_eq!(traces[0].trace_state.as_deref(), Some("a=1"));
        assert_eq!(h.c.trace_tracestate_dropped_members, 1);
        assert_ne!(
            traces[1].trace_id.to_string(),
            "4bf92f3577b34da6a3ce929d0e0e4736"
        );
        assert_eq!(traces[1].parent_span_id, None);
        assert_eq!(traces[1].trace_state, None);
        assert_eq!(h.c.trace_invalid_traceparent, 1);
    }

    #[test]
    fn a_request_captured_after_its_response_still_pairs() {
        let mut h = H::new();
        // The response's packet reached us first, but the request was sent earlier.
        h.ev_at(
            StreamDir::ToClient,
            StreamEvent::Data(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"),
            20,
        );
        assert_eq!(h.exchanges(), vec![]);
        h.ev_at(
            StreamDir::ToServer,
            StreamEvent::Data(b"GET /late HTTP/1.1\r\n\r\n"),
            10,
        );
        assert_eq!(h.exchanges(), vec![ex("GET", "/late", 200, Some(0))]);
        assert_eq!(h.c.http1_unpaired_responses, 0);
        // A response older than the next request answers nothing we saw.
        h.ev_at(
            StreamDir::ToClient,
            StreamEvent::Data(b"HTTP/1.1 500 X\r\nContent-Length: 0\r\n\r\n"),
            30,
        );
        h.ev_at(
            StreamDir::ToServer,
            StreamEvent::Data(b"GET /next HTTP/1.1\r\n\r\n"),
            40,
        );
        h.ev_at(
            StreamDir::ToClient,
            StreamEvent::Data(b"HTTP/1.1 201 Y\r\nContent-Length: 0\r\n\r\n"),
            50,
        );
        assert_eq!(
            h.exchanges(),
            vec![
                ex("GET", "/late", 200, Some(0)),
                E::Ex(None, 500, Some(0)),
                ex("GET", "/next", 201, Some(0))
            ]
        );
        assert_eq!(h.c.http1_unpaired_responses, 1);
    }

    #[test]
    fn an_early_answer_waits_for_the_request_body() {
        let mut h = H::new();
        // The server answers before reading the body (RFC 9110 §15.5.14 413, or a redirect).
        h.req(b"PUT /up HTTP/1.1\r\nContent-Length: 10\r\n\r\n01234");
        h.resp(b"HTTP/1.1 413 Too Large\r\nContent-Length: 0\r\n\r\n");
        assert_eq!(h.exchanges(), vec![], "final only once both messages are");
        h.req(b"56789");
        assert_eq!(h.exchanges(), vec![ex("PUT", "/up", 413, Some(0))]);
        assert_eq!(h.req_body_sizes(), vec![Some(10)]);
    }

    #[test]
    fn an_early_answer_is_reported_when_the_body_never_ends() {
        // Client closes mid-body.
        let mut h = H::new();
        h.req(b"POST /a HTTP/1.1\r\nContent-Length: 10\r\n\r\n012");
        h.resp(b"HTTP/1.1 301 Moved\r\nContent-Length: 0\r\n\r\n");
        h.ev(StreamDir::ToServer, StreamEvent::Fin);
        assert_eq!(h.exchanges(), vec![ex("POST", "/a", 301, Some(0))]);
        assert_eq!(h.req_body_sizes(), vec![None], "a cut body has no size");
        // Flush (timeout, agent stop) with the body still passing.
        let mut h = H::new();
        h.req(b"POST /b HTTP/1.1\r\nContent-Length: 10\r\n\r\n012");
        h.resp(b"HTTP/1.1 413 X\r\nContent-Length: 0\r\n\r\n");
        h.finish();
        assert_eq!(h.exchanges(), vec![ex("POST", "/b", 413, Some(0))]);
        assert_eq!(h.req_body_sizes(), vec![None]);
        // A gap inside a chunked body loses its framing.
        let mut h = H::new();
        h.req(b"POST /c HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nab");
        h.resp(b"HTTP/1.1 413 X\r\nContent-Length: 0\r\n\r\n");
        h.ev(StreamDir::ToServer, StreamEvent::Gap { len: 100 });
        assert_eq!(h.exchanges(), vec![ex("POST", "/c", 413, Some(0))]);
        assert_eq!(h.req_body_sizes(), vec![None]);
    }

    #[test]
    fn responses_captured_before_the_request_body_ends_keep_its_size() {
        // The two directions reach us interleaved: both responses are decoded while the
        // second request's body is still arriving.
        let mut h = H::new();
        h.ev_at(
            StreamDir::ToServer,
            StreamEvent::Data(b"POST /a HTTP/1.1\r\nContent-Length: 3\r\n\r\nxyz"),
            10,
        );
        h.ev_at(
            StreamDir::ToServer,
            StreamEvent::Data(b"PUT /b HTTP/1.1\r\nContent-Length: 6\r\n\r\nabc"),
            11,
        );
        h.ev_at(
            StreamDir::ToClient,
            StreamEvent::Data(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\nHTTP/1.1 301 M\r\nContent-Length: 4\r\n\r\nmove"),
            50,
        );
        assert_eq!(h.exchanges(), vec![ex("POST", "/a", 200, Some(0))]);
        h.ev_at(StreamDir::ToServer, StreamEvent::Data(b"def"), 12);
        assert_eq!(
            h.exchanges(),
            vec![
                ex("POST", "/a", 200, Some(0)),
                ex("PUT", "/b", 301, Some(4))
            ]
        );
        assert_eq!(h.req_body_sizes(), vec![Some(3), Some(6)]);
        // The same when the response is decoded before the request head.
        let mut h = H::new();
        h.ev_at(
            StreamDir::ToClient,
            StreamEvent::Data(b"HTTP/1.1 301 M\r\nContent-Length: 0\r\n\r\n"),
            50,
        );
        h.ev_at(
            StreamDir::ToServer,
            StreamEvent::Data(b"PUT /b HTTP/1.1\r\nContent-Length: 6\r\n\r\nabc"),
            10,
        );
        assert_eq!(h.exchanges(), vec![]);
        h.ev_at(StreamDir::ToServer, StreamEvent::Data(b"def"), 11);
        assert_eq!(h.exchanges(), vec![ex("PUT", "/b", 301, Some(0))]);
        assert_eq!(h.req_body_sizes(), vec![Some(6)]);
    }

    #[test]
    fn unanswered_requests_are_reported_on_finish() {
        let mut h = H::new();
        h.req(b"GET /slow HTTP/1.1\r\n\r\n");
        h.finish();
        assert_eq!(h.exchanges(), vec![E::NoResp("GET".into(), "/slow".into())]);
        assert_eq!(h.c.http1_unanswered, 1);
    }

    #[test]
    fn conflicting_content_length_is_not_http() {
        let mut h = H::new();
        h.req(b"POST / HTTP/1.1\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd");
        assert!(h.dec.is_dead());
        let mut h = H::new();
        h.req(b"POST / HTTP/1.1\r\nContent-Length: 3, 3\r\n\r\nabc");
        assert!(!h.dec.is_dead());
    }

    proptest::proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(
            chunks in proptest::collection::vec((proptest::bool::ANY, proptest::collection::vec(proptest::num::u8::ANY, 0..64)), 0..20),
            prefix in proptest::sample::select(vec![&b""[..], b"GET / HTTP/1.1\r\n", b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"]),
        ) {
            let mut h = H::new();
            h.req(prefix);
            h.resp(prefix);
            for (to_server, bytes) in chunks {
                if to_server { h.req(&bytes) } else { h.resp(&bytes) }
            }
            h.finish();
        }
    }
}
