//! The per-connection state machine: each direction's phase (head, body, search for the next
//! message start), and what gaps and ends do to it. Pairing lives in [`super::pairing`].

use std::collections::VecDeque;
use std::mem::MaybeUninit;
use std::sync::Arc;

use super::chunked::{ChunkStep, Chunked};
use super::doh::DohBodies;
use super::framing::Body;
use super::head::{self, HeadOutcome, Parsed, ParsedRequest};
use super::lenient;
use super::pairing::{placeholder, InFlight, Pending};
use super::resync::{self, Match, Scan, MAX_START_LINE};
use super::{Http1Event, ResponseHead};
use crate::l7::exchange::{new_trace, HttpVersion, RequestHead};
use crate::l7::{L7Context, L7Event, L7Protocol, PacketCtx, StreamDecoder, StreamDir};
use crate::record::{BodyError, Text};
use crate::tcp::StreamEvent;
use crate::trace::InboundTraceParent;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Phase {
    /// Waiting for / inside a message head.
    Head,
    /// Skipping a body.
    Body(Body),
    /// Searching for the next message start (joined mid-way, after a gap or a bad message).
    Resync,
    /// After a request whose length cannot be determined (RFC 9112 §6.3 rules 4, 5): its
    /// bytes and whatever follows are not messages, until the server shows it kept going.
    Unframed,
    /// After an upgrade or CONNECT: the bytes are another protocol's (handed to `upgraded`
    /// when we decode it, opaque otherwise).
    Tunnel,
    /// Stream ended.
    Ended,
}

/// How a message body ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum BodyEnd {
    /// Seen whole (its size is known).
    Whole,
    /// Not seen whole: cut by a gap, a close or broken framing (with the mark, if any).
    Cut(Option<BodyError>),
}

/// One direction's parse state.
#[derive(Debug)]
pub(super) struct Half {
    pub(super) phase: Phase,
    /// Partial head (or a partial message start found while resyncing).
    pub(super) buf: Vec<u8>,
    /// Packet that carried the current message's first byte.
    pub(super) msg_start: Option<PacketCtx>,
    /// Body bytes of the current message so far.
    pub(super) body_size: u64,
    /// The current head was found by resync: a parse failure means a false start.
    pub(super) resynced: bool,
    /// A message has been parsed in this direction (it is HTTP).
    pub(super) confirmed: bool,
    /// Bytes scanned while resyncing a not-yet-confirmed stream.
    pub(super) scanned: usize,
    /// The last byte seen was a LF (a line starts at the next one).
    pub(super) at_line_start: bool,
    /// Some event (bytes or a gap) has been seen in this direction.
    pub(super) started: bool,
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
            started: false,
        }
    }

    /// Search for the next message start from here on.
    pub(super) fn start_search(&mut self, line_start: bool) {
        self.phase = Phase::Resync;
        self.buf.clear();
        self.msg_start = None;
        self.body_size = 0;
        self.at_line_start = line_start;
    }
}

/// Decodes both directions of one HTTP/1 connection.
///
/// `repr(C)`, fields in the order written: what every chunk of either direction reads first
/// (`dead`, `body_passing`, `pending`, `doh`: the first two cache lines), then each
/// direction's state, then what only some messages touch. With many connections interleaved
/// the decoder is cold at each packet, so every line it touches is a miss.
#[derive(Debug)]
#[repr(C)]
pub struct Http1Decoder {
    pub(super) dead: bool,
    /// The request whose body is being skipped (wherever it sits: `pending`, `in_flight` or
    /// `awaiting_body`). Only one can be: messages in one direction are sequential.
    pub(super) body_passing: Option<Arc<RequestHead>>,
    /// Requests waiting for their final response, oldest first.
    pub(super) pending: VecDeque<Pending>,
    /// DoH bodies being captured (RFC 8484; see [`super::doh`]).
    pub(super) doh: DohBodies,
    pub(super) req: Half,
    pub(super) resp: Half,
    /// The response whose body is being skipped.
    pub(super) in_flight: Option<InFlight>,
    /// Final responses that came with no request waiting, oldest first. The capture may
    /// deliver a request after its response (the two directions can be captured on different
    /// CPUs); a request sent no later than a parked response is paired with it.
    pub(super) orphans: VecDeque<ResponseHead>,
    /// An exchange whose response is complete while its request body is still passing (the
    /// server answered early, e.g. 301/413 before reading the body, or the capture delivered
    /// the response first). It is reported when the body ends, with its size, or when it can
    /// no longer end (gap, close, flush), without. One slot suffices: it only ever holds the
    /// `body_passing` request.
    pub(super) awaiting_body: Option<(Arc<RequestHead>, ResponseHead)>,
    /// The decoder that takes over the connection — after `101` with `Upgrade: h2c`, HTTP/2;
    /// after a CONNECT's 2xx, the tunnel's ([`crate::l7::tunnel`]) — fed the bytes after
    /// that head until the caller swaps it in ([`StreamDecoder::take_upgrade`]).
    pub(super) upgraded: Option<Box<dyn StreamDecoder>>,
    /// A request head neither parser could read, at the very start of a connection not yet
    /// seen to be HTTP, with where it started and where it was given up on. Reported (marked
    /// [`BodyError::InvalidHead`]) once either side shows the connection is HTTP — the
    /// server's answer is this request's (RFC 9112 §3) — and dropped (counted as a parse
    /// error) when it never does, so a protocol that is not HTTP yields no HTTP record.
    pub(super) provisional: Option<Box<(ParsedRequest, PacketCtx, PacketCtx)>>,
    /// The configuration's header allow list as the head parser reads it, made at the first
    /// head (the decoder is made without the configuration; it never changes).
    pub(super) allow: Option<head::AllowList>,
}

impl Default for Http1Decoder {
    fn default() -> Self {
        Self::new()
    }
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
            provisional: None,
            doh: DohBodies::default(),
            allow: None,
        }
    }

    fn half(&mut self, dir: StreamDir) -> &mut Half {
        match dir {
            StreamDir::ToServer => &mut self.req,
            StreamDir::ToClient => &mut self.resp,
        }
    }

    #[cold]
    #[inline(never)]
    fn die(&mut self, cx: &mut L7Context<'_>) {
        // A bad first head held for an answer that never came: not a request after all.
        self.provisional = None;
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
                    if let Some(next) = self.upgraded.as_mut() {
                        next.on_event(dir, StreamEvent::Data(data), at, cx, out);
                    }
                    return;
                }
                Phase::Ended => return,
                Phase::Unframed => {
                    cx.counters.http1_unframed_bytes += data.len() as u64;
                    return;
                }
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
    #[cold]
    #[inline(never)]
    fn resync(
        &mut self,
        dir: StreamDir,
        data: &[u8],
        at: &PacketCtx,
        cx: &mut L7Context<'_>,
    ) -> usize {
        let max_detect = cx.config.max_detect_bytes;
        // A request line longer than a head may be is no message start anyway.
        let limit = MAX_START_LINE.min(cx.config.max_header_bytes).max(16);
        let half = self.half(dir);
        // A start split across the previous chunk's end was parked in `buf`.
        if !half.buf.is_empty() {
            let old = half.buf.len();
            let take = data.len().min(limit + 1 - old.min(limit));
            let mut probe = Vec::with_capacity(old + take);
            probe.extend_from_slice(&half.buf);
            probe.extend_from_slice(&data[..take]);
            let m = match dir {
                StreamDir::ToServer => resync::request_start(&probe, limit),
                StreamDir::ToClient => resync::status_start(&probe),
            };
            match m {
                Match::Full => {
                    // `head` goes on from the parked bytes with all of `data`.
                    half.phase = Phase::Head;
                    half.resynced = true;
                    return 0;
                }
                Match::Prefix => {
                    half.buf = probe;
                    return take;
                }
                Match::No => {
                    half.buf.clear();
                    half.msg_start = None;
                }
            }
        }
        let (skipped, found) = match resync::scan(data, dir, half.at_line_start, limit) {
            Scan::Found(i) => (i, true),
            Scan::Prefix(i) => {
                half.buf = data[i..].to_vec();
                half.msg_start = Some(*at);
                cx.counters.http1_resync_skipped_bytes += i as u64;
                return data.len();
            }
            Scan::NotFound => (data.len(), false),
        };
        cx.counters.http1_resync_skipped_bytes += skipped as u64;
        if !self.req.confirmed && !self.resp.confirmed {
            let half = self.half(dir);
            half.scanned += skipped;
            if half.scanned > max_detect {
                // Never looked like HTTP: stop trying.
                self.provisional = None;
                self.dead = true;
                return data.len();
            }
        }
        if found {
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
        let max_headers = cx.config.max_headers.clamp(1, head::HEADER_ARRAY);
        let allow = *self
            .allow
            .get_or_insert_with(|| head::AllowList::of(cx.config));
        let simple = dir == StreamDir::ToClient
            && self
                .pending
                .front()
                .is_some_and(|p| p.head.version == HttpVersion::Http09);
        let half = self.half(dir);
        if simple && half.buf.is_empty() && half.msg_start.is_none() {
            // RFC 1945 §6: an HTTP/0.9 request is answered by the bare entity body, which the
            // close ends; no status line comes, even when the body starts like one.
            self.simple_response(at);
            return 0;
        }
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
        let mut headers =
            [const { MaybeUninit::<httparse::Header<'_>>::uninit() }; head::HEADER_ARRAY];
        let (mut outcome, parsed) = {
            let input: &[u8] = if prev > 0 { &half.buf } else { data };
            let headers = &mut headers[..max_headers];
            match dir {
                StreamDir::ToServer => head::parse_request(input, headers, cx.config, allow),
                StreamDir::ToClient => head::parse_response(input, headers, cx.config, allow),
            }
        };
        if half.resynced && matches!(outcome, HeadOutcome::Complete(_)) && false_start(&parsed) {
            // Found by a search and only readable by skipping lines or as HTTP/0.9: more
            // likely body bytes that look like a start line than a message.
            outcome = HeadOutcome::Invalid;
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
                if self.provisional.is_some() {
                    self.report_provisional(cx, out);
                }
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
                self.head_too_large(dir, too_many_headers, &parsed, at, cx, out);
                // Search on from just after the message start: the next message may already
                // be in this chunk (the bytes held in `buf` were searched before).
                skip + usize::from(prev == 0)
            }
            HeadOutcome::Invalid => self.head_invalid(dir, data, prev, at, cx, out) + skip,
        }
    }

    /// The connection is HTTP: the bad head held before this message was a request. Out of
    /// line: only at the start of a connection whose first head was unreadable.
    #[cold]
    #[inline(never)]
    fn report_provisional(&mut self, cx: &mut L7Context<'_>, out: &mut Vec<L7Event>) {
        if let Some(p) = self.provisional.take() {
            let (r, p_start, p_at) = *p;
            self.report_invalid_request(r, p_start, &p_at, cx, out);
        }
    }

    /// A head over the byte or field-count cap: counted, its place in the pairing kept, and
    /// the search for the next message start begins. Out of line: never on an in-order
    /// exchange.
    #[cold]
    #[inline(never)]
    fn head_too_large(
        &mut self,
        dir: StreamDir,
        too_many_headers: bool,
        parsed: &Option<Parsed>,
        at: &PacketCtx,
        cx: &mut L7Context<'_>,
        out: &mut Vec<L7Event>,
    ) {
        let half = self.half(dir);
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
                let mut r = placeholder(parsed);
                r.trace = new_trace(InboundTraceParent::Absent, None, cx);
                self.push_pending(r, cx);
            }
            StreamDir::ToClient => {
                let status = match parsed {
                    Some(Parsed::Response(r)) => r.status,
                    _ => None,
                };
                self.resp_too_large(status, at, cx, out);
            }
        }
        let half = self.half(dir);
        half.phase = Phase::Resync;
        half.resynced = true;
        half.at_line_start = false;
    }

    /// A head neither parser reads, in `data` (after any empty lines) or, when `prev` bytes
    /// were held, in the direction's buffer; returns the bytes of `data` consumed. Out of
    /// line: never on an in-order exchange.
    #[cold]
    #[inline(never)]
    fn head_invalid(
        &mut self,
        dir: StreamDir,
        data: &[u8],
        prev: usize,
        at: &PacketCtx,
        cx: &mut L7Context<'_>,
        out: &mut Vec<L7Event>,
    ) -> usize {
        let max_bytes = cx.config.max_header_bytes;
        let confirmed = self.req.confirmed || self.resp.confirmed;
        // RFC 1945 §4.1: an HTTP/0.9 request has no fields and is the connection's
        // last; the bytes after it are not a request the server answers.
        let none_held = self.provisional.is_none()
            && !self
                .pending
                .iter()
                .any(|p| p.head.version == HttpVersion::Http09);
        let half = self.half(dir);
        let at_boundary = !half.resynced;
        let input: &[u8] = if prev > 0 { &half.buf } else { data };
        let mut next_at = None;
        if at_boundary
            && dir == StreamDir::ToServer
            && none_held
            // On a connection known to be HTTP, binary bytes where a request should
            // start are more likely a body framed wrongly than a request; at the very
            // start, only the server's answer can tell (held, see `provisional`).
            && (!confirmed || lenient::text_line(input))
        {
            // Where a request must start, a head neither parser reads is still a
            // request to the server, which answers it (RFC 9112 §3: 400 or 301; real
            // servers also 405, 411, 200): keep its place in the order, so the answer
            // pairs with it and not with the next request.
            let start = half.msg_start.unwrap_or(*at);
            let (method, target, version) = lenient::salvage_request_line(input);
            next_at = lenient::bodiless_head_end(input, max_bytes);
            let r = ParsedRequest {
                method: Text::Owned(method),
                target,
                version,
                body: Body::Length(0),
                framing_error: Some(BodyError::InvalidHead),
                ..Default::default()
            };
            if confirmed {
                self.report_invalid_request(r, start, at, cx, out);
            } else {
                self.provisional = Some(Box::new((r, start, *at)));
            }
        } else if at_boundary && !confirmed {
            self.die(cx);
            return data.len();
        } else if at_boundary {
            // A bad message on a connection that is HTTP: it costs only itself.
            cx.counters.http1_invalid_heads += 1;
        }
        let half = self.half(dir);
        half.buf.clear();
        half.msg_start = None;
        if let Some(end) = next_at {
            // Its fields end at a blank line and announce no body (RFC 9112 §6.3
            // rule 6): the next request starts right after.
            half.phase = Phase::Head;
            return end.saturating_sub(prev);
        }
        // Keep searching after its first byte.
        half.phase = Phase::Resync;
        half.at_line_start = false;
        usize::from(prev == 0)
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
        // RFC 8484: a body of type application/dns-message is kept (bounded); others only
        // pass.
        let mut capture = self.doh.capture(dir);
        let half = match dir {
            StreamDir::ToServer => &mut self.req,
            StreamDir::ToClient => &mut self.resp,
        };
        let (used, done) = match body {
            Body::Length(remaining) => {
                let take = remaining.min(data.len() as u64);
                half.body_size += take;
                half.phase = Phase::Body(Body::Length(remaining - take));
                if let Some(c) = capture {
                    c.push(&data[..take as usize]);
                }
                (take as usize, remaining == take)
            }
            Body::UntilClose | Body::Unframed => {
                half.body_size += data.len() as u64;
                if let Some(c) = capture {
                    c.push(data);
                }
                (data.len(), false)
            }
            Body::Chunked(mut state) => match state.step_data(data, &mut half.body_size, |d| {
                if let Some(c) = capture.as_mut() {
                    c.push(d);
                }
            }) {
                ChunkStep::More(n) => {
                    half.phase = Phase::Body(Body::Chunked(state));
                    (n, false)
                }
                ChunkStep::Done(n) => (n, true),
                ChunkStep::Bad => {
                    // RFC 9112 §7.1: the message is reported, marked; its framing is lost
                    // but no bytes are, so the pairing of the others stands.
                    cx.counters.http1_bad_chunked += 1;
                    let end = BodyEnd::Cut(Some(BodyError::MalformedChunk));
                    self.lose_sync(dir, at, end, false, cx, out);
                    return 0;
                }
            },
        };
        if done {
            if dir == StreamDir::ToServer {
                self.doh_query_done(at, cx, out);
            }
            self.message_done(dir, at, BodyEnd::Whole, cx, out);
        }
        used
    }

    fn message_done(
        &mut self,
        dir: StreamDir,
        at: &PacketCtx,
        end: BodyEnd,
        cx: &mut L7Context<'_>,
        out: &mut Vec<L7Event>,
    ) {
        match dir {
            StreamDir::ToServer => self.request_done(end, out),
            StreamDir::ToClient => self.response_done(at.ts_ns, end, cx, out),
        }
    }

    /// The stream position in `dir` is unknown: finish the current message as `end` and
    /// search for the next start. When `bytes_lost` (a gap), messages may have vanished, so
    /// in-order pairing can no longer be trusted.
    #[cold]
    #[inline(never)]
    fn lose_sync(
        &mut self,
        dir: StreamDir,
        at: &PacketCtx,
        end: BodyEnd,
        bytes_lost: bool,
        cx: &mut L7Context<'_>,
        out: &mut Vec<L7Event>,
    ) {
        cx.counters.http1_resyncs += 1;
        if dir == StreamDir::ToClient && self.in_flight.is_some() {
            // The head was seen: report the exchange, without a body size.
            self.response_done(at.ts_ns, end, cx, out);
        }
        if dir == StreamDir::ToServer {
            self.end_request_body(end, out);
            if bytes_lost {
                self.flush_awaiting(out);
            }
        }
        if bytes_lost {
            cx.counters.http1_requests_lost_in_gap += self.pending.len() as u64;
            self.pending.clear();
            self.flush_orphans(cx, out);
        }
        let half = self.half(dir);
        if matches!(half.phase, Phase::Tunnel | Phase::Ended) {
            return;
        }
        // Segment boundaries usually fall on message boundaries: try a match right after.
        half.start_search(true);
    }

    #[cold]
    #[inline(never)]
    fn gap(
        &mut self,
        dir: StreamDir,
        len: u64,
        at: &PacketCtx,
        cx: &mut L7Context<'_>,
        out: &mut Vec<L7Event>,
    ) {
        if let Some(c) = self.doh.capture(dir) {
            // Body bytes were lost: the DNS message cannot be decoded.
            c.gap();
        }
        let half = self.half(dir);
        if !std::mem::replace(&mut half.started, true) && len == 0 {
            // Joined mid-way (RFC 9112 §6.3, §9.3): this direction starts somewhere inside
            // its stream (a gap of unknown length before anything). Nothing of it was seen
            // since the join, so nothing was lost: find its next message start and pair
            // from there, leaving the other direction's requests be. (A known loss before
            // the first byte, handshake seen, is a gap like any other.)
            cx.counters.http1_resyncs += 1;
            half.start_search(true);
            return;
        }
        match half.phase {
            Phase::Tunnel | Phase::Ended | Phase::Unframed => {}
            // A gap inside a sized body only shortens it: framing survives.
            Phase::Body(Body::Length(remaining)) if len > 0 && len <= remaining => {
                half.body_size += len;
                half.phase = Phase::Body(Body::Length(remaining - len));
                if len == remaining {
                    // The size is known from the framing even if some bytes were not seen.
                    self.message_done(dir, at, BodyEnd::Whole, cx, out);
                }
            }
            // Likewise inside a chunk's data (RFC 9112 §7.1): the chunk's size says where the
            // next size line starts. A snapped segment's tail (`--snaplen`, or the kernel
            // cutting a body segment to its headers, see [`StreamDecoder::skippable`]) lands
            // here on any chunk longer than what a packet keeps.
            Phase::Body(Body::Chunked(state @ Chunked::Data { remaining }))
                if len > 0 && len <= remaining =>
            {
                half.body_size += len;
                half.phase = Phase::Body(Body::Chunked(state.after_data(len)));
            }
            Phase::Body(Body::UntilClose) if len > 0 => half.body_size += len,
            Phase::Resync => {
                half.buf.clear();
                half.at_line_start = true;
            }
            _ => self.lose_sync(dir, at, BodyEnd::Cut(None), true, cx, out),
        }
    }

    #[cold]
    #[inline(never)]
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
                self.response_done(at.ts_ns, BodyEnd::Whole, cx, out);
            }
            Phase::Body(_) => {
                // RFC 9112 §8: closed before the framing said the body ends.
                cx.counters.http1_truncated_messages += 1;
                let end = BodyEnd::Cut(Some(BodyError::Truncated));
                self.message_done(dir, at, end, cx, out);
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
            StreamEvent::Data(d) => {
                self.half(dir).started = true;
                self.feed(dir, d, at, cx, out);
            }
            StreamEvent::Gap { len } => self.gap(dir, len, at, cx, out),
            StreamEvent::Fin | StreamEvent::Reset => {
                self.half(dir).started = true;
                self.end(dir, at, cx, out);
            }
        }
        self.doh_after_event(cx, out);
    }

    fn finish(&mut self, now_ns: u64, cx: &mut L7Context<'_>, out: &mut Vec<L7Event>) {
        if self.provisional.take().is_some() {
            // Nothing ever showed the connection is HTTP: its first bytes were not a request.
            cx.counters.http1_parse_errors += 1;
        }
        if matches!(self.resp.phase, Phase::Body(Body::UntilClose)) {
            self.response_done(now_ns, BodyEnd::Cut(None), cx, out);
        } else if self.in_flight.is_some() {
            cx.counters.http1_truncated_messages += 1;
            self.response_done(now_ns, BodyEnd::Cut(None), cx, out);
        }
        self.end_request_body(BodyEnd::Cut(None), out);
        self.flush_awaiting(out);
        self.flush_orphans(cx, out);
        self.doh_finish(cx, out);
        for p in self.pending.drain(..) {
            cx.counters.http1_unanswered += 1;
            out.push(L7Event::Http1(Http1Event::Unanswered {
                request: p.head,
                request_body: p.body,
                at_ns: now_ns,
            }));
        }
        self.req.phase = Phase::Ended;
        self.resp.phase = Phase::Ended;
    }

    fn is_dead(&self) -> bool {
        self.dead
    }

    fn skippable(&self, dir: StreamDir, _delivered: u64) -> u64 {
        // A DoH body is read (RFC 8484); an upgraded or tunnelled connection's bytes go to
        // the decoder that takes over.
        if self.dead || self.upgraded.is_some() || self.doh.capturing(dir) {
            return 0;
        }
        let half = match dir {
            StreamDir::ToServer => &self.req,
            StreamDir::ToClient => &self.resp,
        };
        match half.phase {
            Phase::Body(Body::Length(remaining)) => remaining,
            Phase::Body(Body::Chunked(Chunked::Data { remaining })) => remaining,
            _ => 0,
        }
    }

    fn buffered(&self) -> usize {
        self.req.buf.capacity() + self.resp.buf.capacity() + self.doh.buffered()
    }

    fn take_upgrade(&mut self) -> Option<Box<dyn StreamDecoder>> {
        self.upgraded.take()
    }
}

/// Whether a head found by a search is more likely body bytes than a message: readable only
/// by skipping field lines, or as an HTTP/0.9 request (which has no version to confirm it).
fn false_start(parsed: &Option<Parsed>) -> bool {
    match parsed {
        Some(Parsed::Request(r)) => r.odd.skipped_lines > 0 || r.version == HttpVersion::Http09,
        Some(Parsed::Response(r)) => r.odd.skipped_lines > 0,
        None => false,
    }
}
