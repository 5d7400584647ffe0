//! Per-stream state (RFC 9113 §5.1) and what a finished stream reports.
//!
//! A stream is reported once: when both ends have sent END_STREAM, when either resets it
//! (RST_STREAM, §6.4), when a GOAWAY says it was never processed (§6.8), or when the
//! connection ends first. A client's reset crosses the server's frames already on the wire
//! (§5.4.2, §6.4: the sender of RST_STREAM must expect them), so a stream the client reset
//! before the server finished waits for them (see `Http2Decoder`) and is reported with what
//! arrived, marked cancelled. Streams first seen mid-way (their HEADERS were before the capture)
//! are reported too, with what is known and `partial` set.

use std::borrow::Cow;
use std::sync::Arc;

use compact_str::CompactString;

use super::grpc::{MessageReader, MessageStats, StatusEvidence};
use super::hpack::{Field, FieldBytes};
use crate::l7::exchange::ExchangeTrace;
use crate::l7::{PacketCtx, REDACTED, SENSITIVE_HEADERS};
use crate::record::{GrpcStatusSource, HttpHeader};

/// The request side of a stream: its pseudo-headers (RFC 9113 §8.3.1) and chosen fields.
/// `None` means unknown (not seen, or from an HPACK entry we never saw), never "absent".
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct H2Request {
    /// Stream id.
    pub stream_id: u32,
    /// `:method`.
    pub method: Option<CompactString>,
    /// `:scheme`.
    pub scheme: Option<CompactString>,
    /// `:authority` (or `host`).
    pub authority: Option<CompactString>,
    /// `:path`.
    pub path: Option<CompactString>,
    /// `content-type`.
    pub content_type: Option<CompactString>,
    /// `user-agent`.
    pub user_agent: Option<CompactString>,
    /// `grpc-timeout`, in nanoseconds.
    pub grpc_timeout_ns: Option<u64>,
    /// Allow-listed fields, sensitive values redacted; kept as the flow records them, so a
    /// record's copy allocates no name or value (common names are static, values inline).
    pub headers: Vec<HttpHeader>,
    /// Fields whose name or value stayed unknown.
    pub unknown_fields: u32,
    /// Promised by the server (PUSH_PROMISE, §8.4) rather than sent by the client.
    pub pushed: bool,
    /// The HTTP/1.1 request that upgraded the connection (RFC 7540 §3.2: stream 1).
    pub upgraded: bool,
    /// The engine's client/server guess was backwards (learned from the field blocks).
    pub roles_swapped: bool,
    /// Trace identity.
    pub trace: ExchangeTrace,
    /// Packet of the first frame of the request.
    pub start: PacketCtx,
    /// Packet that completed the request's field block.
    pub head_end: PacketCtx,
}

/// The response side's final (non-1xx) field block.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct H2Response {
    /// `:status`.
    pub status: Option<u16>,
    /// `content-type`.
    pub content_type: Option<CompactString>,
    /// Allow-listed fields, sensitive values redacted; kept as the flow records them, so a
    /// record's copy allocates no name or value (common names are static, values inline).
    pub headers: Vec<HttpHeader>,
    /// Fields whose name or value stayed unknown.
    pub unknown_fields: u32,
    /// Packet of the response's first frame.
    pub start: PacketCtx,
    /// Packet that completed the field block.
    pub head_end: PacketCtx,
}

/// How a stream ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StreamEnd {
    /// Both ends sent END_STREAM.
    Complete,
    /// RST_STREAM with this error code (RFC 9113 §7), sent by the client or the server.
    Reset {
        /// Error code.
        code: u32,
        /// Whether the client sent it.
        by_client: bool,
    },
    /// A GOAWAY's Last-Stream-ID excluded it: never processed (§6.8).
    GoAway {
        /// The GOAWAY's error code.
        code: u32,
    },
    /// The connection ended (or the capture did) before the stream did.
    ConnectionEnd,
    /// A connection error (RFC 9113 §5.4.1) with this code ended the connection before the
    /// stream: decoding stopped there.
    ConnectionError {
        /// Error code (§7).
        code: u32,
    },
    /// Reported before its end was seen: it had lost bytes to a capture gap (its END_STREAM
    /// was most likely in it) and the connection's stream table was full
    /// (`h2_max_streams`), so it made room for a new stream.
    Evicted,
}

/// gRPC facts about a stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GrpcCall {
    /// Fully-qualified service, e.g. `helloworld.Greeter`.
    pub service: CompactString,
    /// Method, e.g. `SayHello`.
    pub method: CompactString,
    /// The call's gRPC status: `grpc-status` from the trailers (or a trailers-only
    /// response), else what [`super::grpc::call_status`] makes of the response; `None` when
    /// unknown.
    pub status: Option<u32>,
    /// `grpc-message`, percent-decoded.
    pub message: Option<String>,
    /// Request messages.
    pub request: MessageStats,
    /// Response messages.
    pub response: MessageStats,
    /// Message framing was lost in a capture gap: counts are lower bounds.
    pub framing_lost: bool,
    /// How `status` was learned (set with it).
    pub status_source: Option<GrpcStatusSource>,
}

/// A finished stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct H2Stream {
    /// Stream id.
    pub stream_id: u32,
    /// The request, when its field block was seen.
    pub request: Option<Arc<H2Request>>,
    /// The final response head, when seen.
    pub response: Option<H2Response>,
    /// gRPC details, when the stream carried gRPC.
    pub grpc: Option<GrpcCall>,
    /// DATA bytes from the client (payload without padding).
    pub request_body_bytes: u64,
    /// DATA bytes from the server.
    pub response_body_bytes: u64,
    /// How it ended.
    pub end: StreamEnd,
    /// When it ended.
    pub end_ns: u64,
    /// First frame of the stream we saw.
    pub first_seen: PacketCtx,
    /// Some of the stream's frames were not seen (joined mid-way, or a gap).
    pub partial: bool,
    /// The engine's client/server guess was backwards (learned from the field blocks).
    pub roles_swapped: bool,
    /// The client reset the stream before the server ended it (RFC 9113 §8.7): the client
    /// gave up; `response` is what the server had sent anyway.
    pub cancelled: bool,
}

/// A stream in progress.
#[derive(Debug)]
pub(crate) struct Stream {
    pub request: Option<Arc<H2Request>>,
    pub response: Option<H2Response>,
    pub grpc_status: Option<u32>,
    pub grpc_message: Option<String>,
    pub readers: [MessageReader; 2],
    pub body_bytes: [u64; 2],
    pub done: [bool; 2],
    pub partial: bool,
    pub first_seen: PacketCtx,
    pub last_ns: u64,
    /// Bytes of kept field values (counted against the connection's cap).
    pub bytes: usize,
    /// The reset that ends the stream, once the server's frames in flight have arrived.
    pub reset: Option<StreamEnd>,
    /// The client reset the stream before the server ended it.
    pub cancelled: bool,
    /// A server field block had fields we could not decode, or was lost.
    pub response_fields_unknown: bool,
    /// DNS messages carried on the stream (RFC 8484), being captured.
    pub doh: super::doh::StreamDoh,
}

impl Stream {
    pub fn new(at: &PacketCtx, partial: bool) -> Self {
        Self {
            request: None,
            response: None,
            grpc_status: None,
            grpc_message: None,
            readers: Default::default(),
            body_bytes: [0; 2],
            done: [false; 2],
            partial,
            first_seen: *at,
            last_ns: at.ts_ns,
            bytes: 0,
            reset: None,
            cancelled: false,
            response_fields_unknown: false,
            doh: Default::default(),
        }
    }

    /// Whether this looks like gRPC: a gRPC content-type on either side.
    fn is_grpc(&self) -> bool {
        let ct =
            |c: &Option<CompactString>| c.as_deref().is_some_and(super::grpc::is_grpc_content_type);
        // Joined mid-way, content-type may have come from a table entry we never saw: a POST
        // to a `/package.Service/Method` path with unknown fields is then taken for gRPC
        // (as observer's `grpc_method` does for HTTP/2); its status stays unknown.
        let looks_grpc = |r: &H2Request| {
            r.content_type.is_none()
                && r.unknown_fields > 0
                && r.method.as_deref() == Some("POST")
                && r.path
                    .as_deref()
                    .and_then(super::grpc::split_path)
                    .is_some_and(|(service, _)| service.contains('.'))
        };
        self.request
            .as_ref()
            .is_some_and(|r| ct(&r.content_type) || looks_grpc(r))
            || self.response.as_ref().is_some_and(|r| ct(&r.content_type))
            // grpc-status and grpc-message are gRPC's own trailers (PROTOCOL-HTTP2.md).
            || self.grpc_status.is_some()
            || self.grpc_message.is_some()
    }

    pub fn finish(self, stream_id: u32, end: StreamEnd, end_ns: u64) -> H2Stream {
        let grpc = if self.is_grpc() {
            let (service, method) = self
                .request
                .as_ref()
                .and_then(|r| r.path.as_deref())
                .and_then(super::grpc::split_path)
                .map(|(s, m)| (CompactString::new(s), CompactString::new(m)))
                .unwrap_or_default();
            let status = super::grpc::call_status(&StatusEvidence {
                grpc_status: self.grpc_status,
                message: self.grpc_message.as_deref(),
                http_status: self.response.as_ref().and_then(|r| r.status),
                fields_unknown: self.response_fields_unknown,
                response_ended: self.done[1],
            });
            Some(GrpcCall {
                service,
                method,
                status: status.map(|(code, _)| code),
                message: self.grpc_message,
                request: self.readers[0].stats,
                response: self.readers[1].stats,
                framing_lost: self.readers.iter().any(|r| r.lost),
                status_source: status.map(|(_, source)| source),
            })
        } else {
            None
        };
        H2Stream {
            stream_id,
            request: self.request,
            response: self.response,
            grpc,
            request_body_bytes: self.body_bytes[0],
            response_body_bytes: self.body_bytes[1],
            end,
            end_ns: end_ns.max(self.last_ns),
            first_seen: self.first_seen,
            partial: self.partial,
            roles_swapped: false,
            cancelled: self.cancelled,
        }
    }
}

/// Bytes as text, kept lossily; borrowed (no allocation) when they are UTF-8, as pseudo-header
/// and field names are (lowercase ASCII in HTTP/2, RFC 9113 §8.2.1) and values nearly always.
fn text(b: &[u8]) -> Cow<'_, str> {
    // `from_utf8` first: its ASCII fast path is far cheaper than the lossy scan.
    match std::str::from_utf8(b) {
        Ok(t) => Cow::Borrowed(t),
        Err(_) => String::from_utf8_lossy(b),
    }
}

/// The names the decoder reads from field blocks: the pseudo-headers (RFC 9113 §8.3) and the
/// fields a record or a rule uses. [`FieldSummary::new`]'s one pass over a block notes where
/// each first appears, so reading one is a table read, not a search of the block.
const LOOKED_UP: usize = 13;

/// The [`LOOKED_UP`] names, by slot.
const LOOKED_UP_NAMES: [&str; LOOKED_UP] = [
    ":method",
    ":scheme",
    ":authority",
    ":path",
    ":status",
    "host",
    "content-type",
    "user-agent",
    "grpc-timeout",
    "tracestate",
    "grpc-status",
    "grpc-message",
    "accept",
];

/// `name`'s slot among the [`LOOKED_UP`] names, if it is one: the length and one byte that
/// tells names of that length apart pick the one candidate, then one comparison (called for
/// every field of every block, so not a search of the list).
#[inline]
fn looked_up(name: &[u8]) -> Option<usize> {
    let at = |i: usize| name.get(i).copied().unwrap_or(0);
    let k = match name.len() {
        4 => 5,
        5 => 3,
        6 => 12,
        7 => match at(2) {
            b'e' => 0,
            b'c' => 1,
            _ => 4,
        },
        10 => match at(0) {
            b':' => 2,
            b'u' => 7,
            _ => 9,
        },
        11 => 10,
        12 => match at(5) {
            b'n' => 6,
            b't' => 8,
            _ => 11,
        },
        _ => return None,
    };
    same_short(LOOKED_UP_NAMES[k].as_bytes(), name).then_some(k)
}

/// `a == b` for names of 4 to 16 bytes of the same length, as two overlapping word
/// comparisons (first and last 4 or 8 bytes) instead of a call to `memcmp`.
fn same_short(a: &[u8], b: &[u8]) -> bool {
    fn word<const N: usize>(s: &[u8], at: usize) -> Option<[u8; N]> {
        s.get(at..at + N)?.try_into().ok()
    }
    let n = a.len();
    if n != b.len() {
        return false;
    }
    match n {
        8..=16 => word::<8>(a, 0) == word(b, 0) && word::<8>(a, n - 8) == word(b, n - 8),
        4..8 => word::<4>(a, 0) == word(b, 0) && word::<4>(a, n - 4) == word(b, n - 4),
        _ => a == b,
    }
}

/// A bit for names of `len` bytes in a set of lengths (lengths past 62 share the top bit).
fn len_bit(len: usize) -> u64 {
    1 << len.min(63)
}

/// A `:status` value (RFC 9113 §8.3.2) as a number, read from the bytes as `str::parse`
/// reads the text: an optional `+`, then decimal digits, within `u16` (anything else, invalid
/// UTF-8 included, is no number either way).
pub(crate) fn status_code(v: &[u8]) -> Option<u16> {
    let digits = v.strip_prefix(b"+").unwrap_or(v);
    if digits.is_empty() {
        return None;
    }
    digits.iter().try_fold(0u16, |n, &b| {
        let d = b.checked_sub(b'0').filter(|&d| d <= 9)?;
        n.checked_mul(10)?.checked_add(u16::from(d))
    })
}

/// A field block's fields, read in place: pseudo-headers and chosen fields are looked up by
/// name, only the allow-listed copies are made up front; unknown fields are counted.
pub(crate) struct FieldSummary<'a> {
    fields: &'a [Field],
    /// For each [`LOOKED_UP`] name, the index in `fields` of the first field with that name
    /// (`u32::MAX`: none).
    first: [u32; LOOKED_UP],
    /// For each [`LOOKED_UP`] name, the index in `headers` of the allow-listed copy of its
    /// first field's value, when that copy is that value as [`Self::get`] makes it and inline
    /// (`u32::MAX`: none): `get` then copies it instead of checking the text again.
    copies: [u32; LOOKED_UP],
    pub headers: Vec<HttpHeader>,
    pub unknown: u32,
}

impl<'a> FieldSummary<'a> {
    pub fn new(fields: &'a [Field], allow: &[String]) -> Self {
        let mut s = FieldSummary {
            fields,
            first: [u32::MAX; LOOKED_UP],
            copies: [u32::MAX; LOOKED_UP],
            headers: Vec::new(),
            unknown: 0,
        };
        // The allow list's name lengths: most names match none, and skip the comparisons.
        let allow_lens = allow.iter().fold(0u64, |m, a| m | len_bit(a.len()));
        for (i, f) in fields.iter().enumerate() {
            let Some(name) = f.name.as_deref() else {
                s.unknown += 1;
                continue;
            };
            let slot = looked_up(name);
            if let Some(k) = slot {
                if s.first[k] == u32::MAX {
                    s.first[k] = u32::try_from(i).unwrap_or(u32::MAX - 1);
                }
            }
            let Some(value) = f.value.as_deref() else {
                s.unknown += 1;
                continue;
            };
            if name.starts_with(b":") || allow.is_empty() {
                continue;
            }
            // An ASCII name compares as bytes (no text made for the names not allowed), and
            // one spelled as listed (HTTP/2 names are lowercase, RFC 9113 §8.2.1) takes the
            // list's text.
            let allowed = if name.is_ascii() {
                if allow_lens & len_bit(name.len()) == 0 {
                    continue;
                }
                allow.iter().find_map(|a| {
                    if a.as_bytes() == name {
                        Some(Cow::Borrowed(a.as_str()))
                    } else if a.as_bytes().eq_ignore_ascii_case(name) {
                        Some(text(name))
                    } else {
                        None
                    }
                })
            } else {
                let name = text(name);
                allow
                    .iter()
                    .any(|a| a.eq_ignore_ascii_case(&name))
                    .then_some(name)
            };
            if let Some(name) = allowed {
                let value = if SENSITIVE_HEADERS.contains(&name.as_ref()) {
                    CompactString::const_new(REDACTED)
                } else {
                    let value = CompactString::from(text(value));
                    if let Some(k) = slot.filter(|&k| s.first[k] as usize == i) {
                        if !value.is_heap_allocated() {
                            s.copies[k] = u32::try_from(s.headers.len()).unwrap_or(u32::MAX);
                        }
                    }
                    value
                };
                s.headers.push(HttpHeader {
                    key: crate::record::text(&name),
                    value,
                });
            }
        }
        s
    }

    /// The value of the first field named `name` whose name is known; `None` when there is
    /// none or its value is unknown. Names are compared as bytes: `name` is ASCII, so this is
    /// the comparison with the name as (lossy) text.
    /// Kept as a `CompactString`: the values a record keeps (method, scheme, authority,
    /// content-type, user-agent; most paths) fit inline, without an allocation.
    #[inline]
    fn value_copy(&self, name: &str) -> Option<CompactString> {
        let copy = looked_up(name.as_bytes())
            .and_then(|k| self.headers.get(self.copies[k] as usize))
            .map(|h| h.value.clone());
        copy.or_else(|| self.value_text(name).map(CompactString::from))
    }

    /// [`Self::get`] or [`Self::pseudo`] without a copy, for values only looked at.
    #[inline]
    pub fn value_text(&self, name: &str) -> Option<Cow<'a, str>> {
        // A static table value (RFC 7541 Appendix A) is text already.
        self.value(name).map(|v| match v {
            FieldBytes::Static(t) => Cow::Borrowed(*t),
            v => text(v),
        })
    }

    /// The bytes of [`Self::value_text`].
    #[inline]
    pub fn value_bytes(&self, name: &str) -> Option<&'a [u8]> {
        self.value(name).map(|v| &**v)
    }

    /// The value of the first field named `name`, when known (inlined, so that a constant
    /// name's slot is found at compile time).
    #[inline]
    fn value(&self, name: &str) -> Option<&'a FieldBytes> {
        let field = match looked_up(name.as_bytes()) {
            Some(k) => self.fields.get(self.first[k] as usize),
            None => self
                .fields
                .iter()
                .find(|f| f.name.as_deref() == Some(name.as_bytes())),
        };
        field.and_then(|f| f.value.as_ref())
    }

    /// A pseudo-header's value (`name` starts with `:`); `None` when absent or unknown.
    pub fn pseudo(&self, name: &str) -> Option<CompactString> {
        self.value_copy(name)
    }

    /// A regular field's value; `None` when absent or unknown.
    pub fn get(&self, name: &str) -> Option<CompactString> {
        self.value_copy(name)
    }

    /// The known values (as text) of the regular fields whose name `pick` chooses.
    pub fn values_where<P: Fn(&[u8]) -> bool>(
        &self,
        pick: P,
    ) -> impl Iterator<Item = Cow<'a, [u8]>> + use<'a, P> {
        self.fields
            .iter()
            .filter(move |f| {
                f.name
                    .as_deref()
                    .is_some_and(|n| !n.starts_with(b":") && pick(n))
            })
            .filter_map(|f| f.value.as_deref())
            .map(|v| match text(v) {
                Cow::Borrowed(t) => Cow::Borrowed(t.as_bytes()),
                Cow::Owned(t) => Cow::Owned(t.into_bytes()),
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn field(name: Option<&str>, value: Option<&str>) -> Field {
        Field {
            name: name.map(|n| FieldBytes::from(n.as_bytes())),
            value: value.map(|v| FieldBytes::from(v.as_bytes())),
        }
    }

    #[test]
    fn looked_up_names_have_their_slots_and_no_others() {
        for (k, n) in LOOKED_UP_NAMES.iter().enumerate() {
            assert_eq!(looked_up(n.as_bytes()), Some(k), "{n}");
        }
        for n in [
            "",
            ":methoD",
            ":schemes",
            "hosts",
            "Host",
            "date",
            "content-types",
            "grpc-timeouT",
            "grpc-massage",
            ":protocol",
            "user-agenT",
            "tracestatE",
            "accepT",
            "te",
        ] {
            assert_eq!(looked_up(n.as_bytes()), None, "{n}");
        }
    }

    #[test]
    fn same_short_is_slice_equality() {
        let words = [
            "", "a", "abcd", "abce", "bbcd", "abcdefg", "abcdefh", "xbcdefg",
        ];
        let long = [
            "abcdefgh",
            "abcdefgx",
            "xbcdefgh",
            "grpc-message",
            "grpc-messagf",
        ];
        let longer = ["0123456789abcdef", "0123456789abcdeF", "0123456789abcdef0"];
        let all: Vec<&str> = words.iter().chain(&long).chain(&longer).copied().collect();
        for a in &all {
            for b in &all {
                assert_eq!(same_short(a.as_bytes(), b.as_bytes()), a == b, "{a} {b}");
            }
        }
    }

    #[test]
    fn status_code_reads_as_str_parse_does() {
        for v in [
            "200", "+200", "0", "00204", "65535", "65536", "", "+", "-1", " 200", "200 ", "2x0",
            "++1", "\u{ff10}",
        ] {
            assert_eq!(status_code(v.as_bytes()), v.parse::<u16>().ok(), "{v:?}");
        }
        assert_eq!(status_code(b"\xff200"), None);
    }

    #[test]
    fn lookups_find_the_first_field_of_a_name() {
        // RFC 9113 §8.3: the first of a name answers, even when its value is unknown (HPACK
        // state partial); names are compared exactly; names outside the noted set are found
        // by a search.
        let fields = [
            field(None, Some("x")),
            field(Some(":method"), Some("POST")),
            field(Some("content-type"), None),
            field(Some("content-type"), Some("text/plain")),
            field(Some("x-custom"), Some("1")),
            field(Some("x-custom"), Some("2")),
            field(Some("Accept"), Some("a/b")),
            field(Some(":status"), Some("204")),
        ];
        let s = FieldSummary::new(&fields, &[]);
        assert_eq!(s.unknown, 2);
        assert_eq!(s.value_text(":method").as_deref(), Some("POST"));
        assert_eq!(s.value_text("content-type"), None);
        assert_eq!(s.value_text("x-custom").as_deref(), Some("1"));
        assert_eq!(s.value_text("accept"), None);
        assert_eq!(s.value_text(":path"), None);
        assert_eq!(s.value_bytes(":status").and_then(status_code), Some(204));
    }

    #[test]
    fn values_read_through_allow_listed_copies_are_the_same() {
        // `get` takes a kept header's copy only for the first field of the exact name.
        let fields = [
            field(Some("User-Agent"), Some("upper")),
            field(Some("user-agent"), Some("first")),
            field(Some("user-agent"), Some("second")),
            field(Some("content-type"), None),
            field(Some("content-type"), Some("text/plain")),
            field(Some("host"), Some("h".repeat(40).as_str())),
        ];
        let allow = ["user-agent", "content-type", "host"].map(String::from);
        let mut s = FieldSummary::new(&fields, &allow);
        for _ in 0..2 {
            assert_eq!(s.get("user-agent").as_deref(), Some("first"));
            assert_eq!(s.get("content-type"), None);
            assert_eq!(s.get("host").as_deref(), Some("h".repeat(40).as_str()));
            // The copies moved into a record: read from the fields again.
            let _ = std::mem::take(&mut s.headers);
        }
    }

    #[test]
    fn allow_listed_fields_keep_their_wire_name() {
        // Matched without case (RFC 9110 §5.1), recorded as sent; sensitive values redacted.
        let fields = [
            field(Some("user-agent"), Some("curl/8")),
            field(Some("Content-Type"), Some("a/b")),
            field(Some("cookie"), Some("secret")),
            field(Some("x-other"), Some("no")),
        ];
        let long = "x".repeat(70);
        let fields = [
            fields.as_slice(),
            &[
                field(Some(&long), Some("long")),
                field(Some(&"x".repeat(63)), Some("63")),
            ],
        ]
        .concat();
        let allow = ["user-agent", "CONTENT-TYPE", "cookie", &"X".repeat(70)].map(String::from);
        let s = FieldSummary::new(&fields, &allow);
        let got: Vec<(&str, &str)> = s
            .headers
            .iter()
            .map(|h| (h.key.as_ref(), h.value.as_str()))
            .collect();
        assert_eq!(
            got,
            [
                ("user-agent", "curl/8"),
                ("Content-Type", "a/b"),
                ("cookie", REDACTED),
                (long.as_str(), "long"),
            ]
        );
    }
}
