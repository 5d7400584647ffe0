//! HTTP/1.x decoder (RFC 9112) over reassembled TCP streams.
//!
//! Heads are parsed with httparse, and when it rejects one, by a lenient parser that reads
//! what real peers accept (RFC 9112 §2.2); bodies are skipped by their framing without being
//! buffered (only a partial head, at most `max_header_bytes`, is ever held). Requests are
//! queued and paired in order with final responses (RFC 9112 §9.3), which gives keep-alive
//! and pipelining for free.
//!
//! The pieces, one concern each:
//! - [`head`]: a head through httparse, and what its fields mean for the exchange;
//! - [`lenient`]: the fallback parser for heads httparse rejects (HTTP/0.9, odd versions,
//!   status codes as text, field lines without a colon, ...);
//! - [`framing`]: the message body length rules (RFC 9112 §6);
//! - [`chunked`]: the chunked transfer coding (RFC 9112 §7.1);
//! - [`resync`]: finding the next message start after a gap or a mid-way join;
//! - [`connection`]: the per-connection state machine: each direction's phase (head, body,
//!   search), gaps and ends;
//! - [`pairing`]: requests paired with responses in order, and the cases order alone misses;
//! - [`doh`]: DNS messages carried in bodies and GET parameters (RFC 8484), as DNS flows;
//! - [`records`]: an exchange as a flow and a span.
//!
//! What an in-order exchange never runs (a mid-way join, gaps, closes, errors, HTTP/0.9, the
//! lenient parser, DoH settling) is `#[cold]` and out of line: the code every packet runs
//! then stays compact, which with the rest of the per-packet path is what decides
//! instruction-cache misses (BENCHMARKS.md, "HTTP/1 replay after the fidelity work").
//!
//! Rules, with their sources:
//! - Message body length: RFC 9112 §6.3 (HEAD, 1xx, 204, 304 have none; CONNECT 2xx becomes a
//!   tunnel, whose bytes go to a fresh protocol detection, RFC 9110 §9.3.6; Transfer-Encoding
//!   beats Content-Length; chunked must be last; a request without either has no body; a
//!   response without either runs until the connection closes). A
//!   request whose length cannot be determined is reported with a mark, paired with what the
//!   server answered, and what follows it is not parsed as requests while the server closes.
//! - Chunked coding: RFC 9112 §7.1 (hex size, extensions ignored, trailer section skipped).
//! - 1xx are informational (RFC 9110 §15.2): the final response follows and pairs with the
//!   request; 101 switches protocols (RFC 9110 §15.2.2), after which we stop parsing.
//! - Empty lines before a request-line are ignored (RFC 9112 §2.2).
//! - After a gap, and in a direction joined mid-way, the stream is searched for the next
//!   message start; gaps inside a Content-Length body only shorten it, so snapped captures
//!   stay in sync. A direction that starts mid-way does not disturb the pairing of the other.
//! - A bad message costs only itself: the stream resynchronises at the next message start.
//!   Bytes that never look like HTTP mark the connection not-HTTP; we stop trying.
//! - An exchange is reported once both its messages are complete: a response that ends while
//!   its request body is still passing (an early 301/413, RFC 9110 §15.5.14, or the capture
//!   delivering the response first) waits for the body's end, or for a close, gap or flush
//!   that means it will not be seen whole (then without a request body size).

mod chunked;
mod connection;
mod doh;
mod framing;
mod head;
mod lenient;
mod pairing;
pub mod records;
mod resync;
#[cfg(test)]
mod tests;

use std::sync::Arc;

pub use connection::Http1Decoder;
pub(crate) use resync::{message_start_at_line, MAX_START_LINE};

use crate::l7::exchange::{HttpVersion, RequestHead};
use crate::l7::PacketCtx;
use crate::record::{BodyError, HttpHeader};

/// A parsed final response and how its body went.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResponseHead {
    /// Status code; `None` for HTTP/0.9 (no status line) or a status that is not 3 digits.
    pub status: Option<u16>,
    /// Protocol version.
    pub version: HttpVersion,
    /// Allow-listed headers, sensitive values redacted.
    pub headers: Vec<HttpHeader>,
    /// Packet that carried the first byte of the status line (or of an HTTP/0.9 body).
    pub start: PacketCtx,
    /// Packet that completed the head.
    pub head_end: PacketCtx,
    /// Time of the packet that completed the message (body included).
    pub end_ns: u64,
    /// Body bytes, when the whole body was seen.
    pub body_size: Option<u64>,
    /// Why the body was not seen whole or its length not trusted.
    pub body_error: Option<BodyError>,
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
        /// The request body as seen.
        request_body: BodySeen,
        /// The response.
        response: Box<ResponseHead>,
    },
    /// A request that got no response before the connection ended.
    Unanswered {
        /// The request.
        request: Arc<RequestHead>,
        /// The request body as seen.
        request_body: BodySeen,
        /// When we gave up on it.
        at_ns: u64,
    },
}

/// How much of a request body passed, and what went wrong with it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct BodySeen {
    /// Body bytes, when the whole body was seen.
    pub size: Option<u64>,
    /// Why it was not seen whole or its length not trusted.
    pub error: Option<BodyError>,
}
