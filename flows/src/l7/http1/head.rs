//! A message head through httparse (falling back to [`super::lenient`] when it rejects one),
//! and what its fields mean for the exchange: framing, trace context, kept headers.

use std::mem::MaybeUninit;

use super::framing::{Body, Framing};
use super::lenient::{self, LenientHead, StartLine};
use crate::l7::dns::doh;
use crate::l7::exchange::HttpVersion;
use crate::l7::{L7Config, REDACTED, SENSITIVE_HEADERS};
use crate::record::{BodyError, CompactString, HttpHeader, Text};
use crate::trace::InboundTraceParent;

/// Largest `max_headers` honoured (the header array lives on the stack).
pub(super) const HEADER_ARRAY: usize = 128;

/// How parsing a (possibly partial) head went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum HeadOutcome {
    /// Head complete; this many bytes of the input consumed.
    Complete(usize),
    /// Need more bytes; all input consumed.
    Partial,
    /// The head is over the byte or field-count cap.
    TooLarge { too_many_headers: bool },
    /// Not an HTTP/1 message head, even read leniently.
    Invalid,
}

/// How far a head strayed from the grammar; all zero when httparse took it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(super) struct Oddities {
    /// httparse rejected it and the lenient parser read it.
    pub lenient: bool,
    /// Field lines skipped (no colon, empty name; RFC 9112 §5).
    pub skipped_lines: u32,
    /// The status was not three digits (RFC 9112 §4): no usable status code.
    pub unusable_status: bool,
}

/// What a request head says, owned.
#[derive(Debug, Default)]
pub(super) struct ParsedRequest {
    pub method: Text,
    pub target: String,
    pub version: HttpVersion,
    pub host: Option<CompactString>,
    pub user_agent: Option<CompactString>,
    pub traceparent: InboundTraceParent,
    pub tracestate: Option<CompactString>,
    pub headers: Vec<HttpHeader>,
    pub content_length: Option<u64>,
    pub body: Body,
    pub framing_error: Option<BodyError>,
    pub odd: Oddities,
    /// `Content-Type: application/dns-message`: the body is a DNS query (RFC 8484 §4.1).
    pub dns_body: bool,
    /// `Accept` lists `application/dns-message`: a DoH client (RFC 8484 §4.1).
    pub accepts_dns: bool,
}

/// What a response head says, owned.
#[derive(Debug, Default)]
pub(super) struct ParsedResponse {
    pub status: Option<u16>,
    pub version: HttpVersion,
    pub headers: Vec<HttpHeader>,
    pub body: Body,
    pub framing_error: Option<BodyError>,
    /// `Upgrade: h2c` (RFC 7540 §3.2): on a 101 the connection continues as HTTP/2.
    pub upgrade_h2c: bool,
    /// The connection stays open after this response (RFC 9112 §9.3).
    pub persistent: bool,
    pub odd: Oddities,
    /// `Content-Type: application/dns-message`: the body is a DNS answer (RFC 8484 §4.2).
    pub dns_body: bool,
}

/// A head of either direction.
#[derive(Debug)]
pub(super) enum Parsed {
    Request(ParsedRequest),
    Response(ParsedResponse),
}

/// Parses a request head from `input`: httparse first, the lenient parser if it refuses.
/// With [`HeadOutcome::TooLarge`] the start line, when it was read, comes along.
pub(super) fn parse_request<'b>(
    input: &'b [u8],
    headers: &mut [MaybeUninit<httparse::Header<'b>>],
    cfg: &L7Config,
    allow: AllowList,
) -> (HeadOutcome, Option<Parsed>) {
    let max_bytes = cfg.max_header_bytes;
    let mut req = httparse::Request::new(&mut []);
    let partial = |req: &httparse::Request<'_, 'b>| {
        req.method.map(|m| {
            Parsed::Request(ParsedRequest {
                method: crate::record::text(m),
                target: req.path.unwrap_or_default().to_string(),
                version: HttpVersion::from_minor(req.version.unwrap_or(1)),
                ..Default::default()
            })
        })
    };
    match req.parse_with_uninit_headers(input, headers) {
        Ok(httparse::Status::Complete(n)) if n <= max_bytes => {
            let version = HttpVersion::from_minor(req.version.unwrap_or(1));
            let method = req.method.unwrap_or_default();
            let target = req.path.unwrap_or_default();
            let parsed = request(method, target, version, req.headers, cfg, allow);
            (HeadOutcome::Complete(n), Some(Parsed::Request(parsed)))
        }
        Ok(httparse::Status::Complete(_)) => (too_large(false), None),
        Ok(httparse::Status::Partial) if input.len() > max_bytes => {
            (too_large(false), partial(&req))
        }
        Ok(httparse::Status::Partial) => (HeadOutcome::Partial, None),
        Err(httparse::Error::TooManyHeaders) => (too_large(true), partial(&req)),
        Err(_) => lenient_head(input, true, headers.len(), cfg, allow),
    }
}

/// Parses a response head from `input`, like [`parse_request`].
pub(super) fn parse_response<'b>(
    input: &'b [u8],
    headers: &mut [MaybeUninit<httparse::Header<'b>>],
    cfg: &L7Config,
    allow: AllowList,
) -> (HeadOutcome, Option<Parsed>) {
    let max_bytes = cfg.max_header_bytes;
    let mut resp = httparse::Response::new(&mut []);
    let partial = |resp: &httparse::Response<'_, 'b>| {
        resp.code.map(|c| {
            Parsed::Response(ParsedResponse {
                status: Some(c),
                version: HttpVersion::from_minor(resp.version.unwrap_or(1)),
                body: Body::UntilClose,
                ..Default::default()
            })
        })
    };
    match httparse::ParserConfig::default()
        .parse_response_with_uninit_headers(&mut resp, input, headers)
    {
        Ok(httparse::Status::Complete(n)) if n <= max_bytes => {
            let version = HttpVersion::from_minor(resp.version.unwrap_or(1));
            let parsed = response(resp.code, version, resp.headers, cfg, allow);
            (HeadOutcome::Complete(n), Some(Parsed::Response(parsed)))
        }
        Ok(httparse::Status::Complete(_)) => (too_large(false), None),
        Ok(httparse::Status::Partial) if input.len() > max_bytes => {
            (too_large(false), partial(&resp))
        }
        Ok(httparse::Status::Partial) => (HeadOutcome::Partial, None),
        Err(httparse::Error::TooManyHeaders) => (too_large(true), partial(&resp)),
        Err(_) => lenient_head(input, false, headers.len(), cfg, allow),
    }
}

#[cold]
#[inline(never)]
fn too_large(too_many_headers: bool) -> HeadOutcome {
    HeadOutcome::TooLarge { too_many_headers }
}

/// The lenient parser's reading of a head httparse refused (RFC 9112 §2.2); `want_request` says
/// which kind of start line the direction carries.
#[cold]
#[inline(never)]
fn lenient_head(
    input: &[u8],
    want_request: bool,
    max_headers: usize,
    cfg: &L7Config,
    allow: AllowList,
) -> (HeadOutcome, Option<Parsed>) {
    let max_bytes = cfg.max_header_bytes;
    let head = lenient::parse(input, max_headers);
    if let LenientHead::Complete { start, .. } = &head {
        if matches!(start, StartLine::Request { .. }) != want_request {
            return (HeadOutcome::Invalid, None);
        }
    }
    match head {
        LenientHead::Complete { len, .. } if len > max_bytes => (too_large(false), None),
        LenientHead::Partial if input.len() > max_bytes => {
            let partial = match lenient::parse_start_line(input) {
                Some(StartLine::Request {
                    method,
                    target,
                    version,
                }) => Some(Parsed::Request(ParsedRequest {
                    method: crate::record::text(method),
                    target: String::from_utf8_lossy(target).into_owned(),
                    version,
                    ..Default::default()
                })),
                _ => None,
            };
            (too_large(false), partial)
        }
        LenientHead::Complete {
            len,
            start,
            fields,
            skipped_lines,
        } => {
            let mut odd = Oddities {
                lenient: true,
                skipped_lines,
                unusable_status: false,
            };
            let parsed = match start {
                StartLine::Request {
                    method,
                    target,
                    version,
                } => {
                    let target = String::from_utf8_lossy(target);
                    let mut r = request(method, &target, version, &fields, cfg, allow);
                    r.odd = odd;
                    Parsed::Request(r)
                }
                StartLine::Response { version, status } => {
                    odd.unusable_status = status.is_none();
                    let mut r = response(status, version, &fields, cfg, allow);
                    r.odd = odd;
                    Parsed::Response(r)
                }
            };
            (HeadOutcome::Complete(len), Some(parsed))
        }
        LenientHead::TooManyFields => (too_large(true), None),
        LenientHead::Partial => (HeadOutcome::Partial, None),
        LenientHead::Invalid => (HeadOutcome::Invalid, None),
    }
}

/// A request head from its start line and fields: one pass over the fields, each name
/// classified once ([`known_field`]).
pub(super) fn request(
    method: &str,
    target: &str,
    version: HttpVersion,
    fields: &[httparse::Header<'_>],
    cfg: &L7Config,
    allow: AllowList,
) -> ParsedRequest {
    let mut framing = Framing::default();
    let mut r = ParsedRequest {
        method: crate::record::text(method),
        target: target.to_string(),
        version,
        ..Default::default()
    };
    let mut kept = Vec::new();
    // W3C Trace Context §3.2.1: any name casing; every field counts, as two make it invalid
    // (the first two are all that decide).
    let mut traceparents: [Option<&[u8]>; 2] = [None, None];
    for h in fields {
        let known = known_field(h.name);
        let kept_as_is = keep(h, known, cfg, allow, &mut kept);
        let slot = match known {
            Known::TransferEncoding => {
                framing.transfer_encoding(h.value);
                continue;
            }
            Known::ContentLength => {
                framing.content_length(h.value);
                continue;
            }
            Known::Host => &mut r.host,
            Known::UserAgent => &mut r.user_agent,
            Known::Tracestate => &mut r.tracestate,
            Known::Traceparent => {
                if let Some(free) = traceparents.iter_mut().find(|t| t.is_none()) {
                    *free = Some(h.value);
                }
                continue;
            }
            Known::ContentType => {
                r.dns_body |= doh::is_dns_message(h.value);
                continue;
            }
            Known::Accept => {
                r.accepts_dns |= doh::accepts_dns_message(h.value);
                continue;
            }
            _ => continue,
        };
        // The first of each is the one taken; when this very field was just kept (not
        // redacted), its text is reused, so no second decoding.
        if slot.is_none() {
            let copy = kept.last().filter(|_| kept_as_is);
            *slot = Some(copy.map_or_else(|| field_value(h.value), |k| k.value.clone()));
        }
    }
    r.traceparent = InboundTraceParent::from_fields(traceparents.into_iter().flatten());
    r.headers = kept;
    (r.body, r.framing_error) = framing.request_body(version);
    r.content_length = match r.body {
        Body::Length(n) if framing.has_content_length => Some(n),
        _ => None,
    };
    r
}

/// A response head from its status line and fields (one pass, like [`request`]).
pub(super) fn response(
    status: Option<u16>,
    version: HttpVersion,
    fields: &[httparse::Header<'_>],
    cfg: &L7Config,
    allow: AllowList,
) -> ParsedResponse {
    let mut framing = Framing::default();
    let mut upgrade_h2c = false;
    // RFC 9112 §9.3: HTTP/1.1 persists unless "close"; HTTP/1.0 only with "keep-alive".
    let mut close = false;
    let mut keep_alive = false;
    let mut dns_body = false;
    let mut kept = Vec::new();
    for h in fields {
        let known = known_field(h.name);
        keep(h, known, cfg, allow, &mut kept);
        match known {
            Known::TransferEncoding => framing.transfer_encoding(h.value),
            Known::ContentLength => framing.content_length(h.value),
            Known::ContentType => dns_body |= doh::is_dns_message(h.value),
            Known::Upgrade => upgrade_h2c |= token_eq(h.value.trim_ascii(), b"h2c"),
            Known::Connection => {
                for option in h.value.split(|b| *b == b',').map(<[u8]>::trim_ascii) {
                    close |= token_eq(option, b"close");
                    keep_alive |= token_eq(option, b"keep-alive");
                }
            }
            _ => {}
        }
    }
    let (body, framing_error) = framing.response_body(version);
    ParsedResponse {
        status,
        version,
        headers: kept,
        body,
        framing_error,
        upgrade_h2c,
        persistent: !close && (version == HttpVersion::Http11 || keep_alive),
        odd: Oddities::default(),
        dns_body,
    }
}

/// Keeps `h` (whose name is `known`) when allow-listed, a sensitive value redacted, built as
/// the records carry it (a common name such as `Host` is a static string, not an
/// allocation). True when it was kept with its own value.
fn keep(
    h: &httparse::Header<'_>,
    known: Known,
    cfg: &L7Config,
    allow: AllowList,
    kept: &mut Vec<HttpHeader>,
) -> bool {
    // A name the decoder knows is listed or not by its bit; others (and every sensitive
    // name: none is a known one) are compared with the list, when it names any
    // (case-insensitively, RFC 9110 §5.1).
    let (listed, sensitive) = match known {
        Known::Other => {
            let listed = allow.others && cfg.header_allow_list.iter().any(|a| name_eq(a, h.name));
            (
                listed,
                listed && SENSITIVE_HEADERS.iter().any(|s| name_eq(s, h.name)),
            )
        }
        k => (allow.has(k), false),
    };
    if !listed {
        return false;
    }
    let value = if sensitive {
        CompactString::const_new(REDACTED)
    } else {
        field_value(h.value)
    };
    if kept.capacity() == 0 {
        // Room for the default list's fields of a message at once: made directly, not through
        // the growth path of a first `push`.
        *kept = Vec::with_capacity(4);
    }
    kept.push(HttpHeader {
        key: crate::record::text(h.name),
        value,
    });
    !sensitive
}

/// [`L7Config::header_allow_list`] as [`keep`] reads it: the listed names the decoder knows
/// ([`Known`]) as bits, and whether any other name is listed. A connection's decoder makes it
/// once: comparing every field's name with every listed name (ten fields, five names) was a
/// fifth of the decoder's instructions per exchange (BENCHMARKS.md, "HTTP/1 per-exchange
/// cost, second pass"), while [`known_field`] already classifies each field.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(super) struct AllowList {
    known: u16,
    others: bool,
}

impl AllowList {
    /// The allow list of `cfg`.
    pub(super) fn of(cfg: &L7Config) -> Self {
        let mut list = Self::default();
        for name in &cfg.header_allow_list {
            match known_field(name) {
                Known::Other => list.others = true,
                k => list.known |= 1 << k as u16,
            }
        }
        list
    }

    /// Whether the known field `k` is listed.
    fn has(self, k: Known) -> bool {
        self.known & (1 << k as u16) != 0
    }
}

/// The fields whose values the decoder reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Known {
    Host,
    UserAgent,
    Tracestate,
    Traceparent,
    ContentType,
    Accept,
    Upgrade,
    Connection,
    TransferEncoding,
    ContentLength,
    Other,
}

/// Which of the [`Known`] fields `name` is (RFC 9110 §5.1: names are case-insensitive). The
/// length picks the one candidate (the first byte among the three of 10 bytes), so each
/// field costs one comparison. Out of line, like [`name_eq`]'s loop: compared inline against
/// constant names, every name unrolls into hundreds of bytes of code, and with many
/// connections interleaved the head path is cold at every message (instruction-cache misses,
/// BENCHMARKS.md).
#[inline(never)]
pub(super) fn known_field(name: &str) -> Known {
    let (candidate, known) = match name.len() {
        4 => ("host", Known::Host),
        6 => ("accept", Known::Accept),
        7 => ("upgrade", Known::Upgrade),
        10 => match name.as_bytes()[0] | 0x20 {
            b'u' => ("user-agent", Known::UserAgent),
            b't' => ("tracestate", Known::Tracestate),
            b'c' => ("connection", Known::Connection),
            _ => return Known::Other,
        },
        11 => ("traceparent", Known::Traceparent),
        12 => ("content-type", Known::ContentType),
        14 => ("content-length", Known::ContentLength),
        17 => ("transfer-encoding", Known::TransferEncoding),
        _ => return Known::Other,
    };
    if first_byte_eq(name.as_bytes(), candidate.as_bytes())
        && same_ignoring_case(name.as_bytes(), candidate.as_bytes())
    {
        known
    } else {
        Known::Other
    }
}

/// Field names compared case-insensitively (RFC 9110 §5.1), as `eq_ignore_ascii_case`
/// does, but byte by byte equal first: names are nearly always sent in one of two casings,
/// so most bytes match as they are, and this runs for every field against every listed name.
fn name_eq(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    a.len() == b.len() && first_byte_eq(a, b) && same_ignoring_case(a, b)
}

/// A cheap necessary condition for [`same_ignoring_case`], inline: the first bytes are equal
/// once bit 0x20 (the ASCII case bit) is set in both (or both slices are empty). Most names
/// of the same length differ there.
fn first_byte_eq(a: &[u8], b: &[u8]) -> bool {
    match (a.first(), b.first()) {
        (Some(x), Some(y)) => x | 0x20 == y | 0x20,
        _ => true,
    }
}

/// A list element or token compared case-insensitively with a known lowercase one (`close`,
/// `chunked`, ...), through the one out-of-line loop: inline, each constant unrolls into
/// hundreds of bytes of code (see [`known_field`]).
pub(super) fn token_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && first_byte_eq(a, b) && same_ignoring_case(a, b)
}

/// The loop of [`name_eq`] and [`token_eq`] (slices of equal length), out of line so that it
/// exists once (see [`known_field`]). Eight bytes at a time (the last eight overlapping the
/// previous ones): equal as they are, or after ASCII lowercasing; it runs for every field
/// against every allow-listed name of its length.
#[inline(never)]
fn same_ignoring_case(a: &[u8], b: &[u8]) -> bool {
    let n = a.len();
    if n < 8 || b.len() != n {
        return a
            .iter()
            .zip(b)
            .all(|(x, y)| x == y || x.eq_ignore_ascii_case(y));
    }
    let word = |s: &[u8], i: usize| {
        u64::from_le_bytes(
            s.get(i..i + 8)
                .and_then(|w| w.try_into().ok())
                .unwrap_or([0; 8]),
        )
    };
    let mut i = 0;
    loop {
        let at = i.min(n - 8);
        let (x, y) = (word(a, at), word(b, at));
        if x != y && ascii_lowercase(x) != ascii_lowercase(y) {
            return false;
        }
        i += 8;
        if i >= n {
            return true;
        }
    }
}

/// Eight bytes with `A`-`Z` made `a`-`z` and every other byte unchanged (as
/// `u8::to_ascii_lowercase` on each).
fn ascii_lowercase(x: u64) -> u64 {
    const HIGH: u64 = 0x8080_8080_8080_8080;
    let low7 = x & !HIGH;
    // Per byte, without carries between bytes (each low7 is below 0x80), the high bit says
    // whether the byte is at least `A` (0x41), and at least `[` (0x5B).
    let from_a = low7 + 0x3F3F_3F3F_3F3F_3F3F;
    let past_z = low7 + 0x2525_2525_2525_2525;
    let upper = from_a & !past_z & !x & HIGH;
    x | (upper >> 2)
}

/// A field value as text: invalid UTF-8 sequences (obs-text, RFC 9110 §5.5) become U+FFFD,
/// as `String::from_utf8_lossy` makes them. Valid values (nearly all) take the standard
/// validator, which is several times cheaper than the lossy one's chunk walk; this runs for
/// every kept field of every message. Inline (no allocation) up to 24 bytes, as most are.
fn field_value(value: &[u8]) -> CompactString {
    match std::str::from_utf8(value) {
        Ok(s) => CompactString::new(s),
        Err(_) => CompactString::from_utf8_lossy(value),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(input: &[u8]) -> (HeadOutcome, Option<ParsedRequest>) {
        let cfg = L7Config::default();
        let mut h = [const { MaybeUninit::uninit() }; 16];
        match parse_request(input, &mut h, &cfg, AllowList::of(&cfg)) {
            (o, Some(Parsed::Request(r))) => (o, Some(r)),
            (o, _) => (o, None),
        }
    }

    fn resp(input: &[u8]) -> (HeadOutcome, Option<ParsedResponse>) {
        let cfg = L7Config::default();
        let mut h = [const { MaybeUninit::uninit() }; 16];
        match parse_response(input, &mut h, &cfg, AllowList::of(&cfg)) {
            (o, Some(Parsed::Response(r))) => (o, Some(r)),
            (o, _) => (o, None),
        }
    }

    #[test]
    fn field_names_compare_ignoring_ascii_case() {
        for (a, b) in [
            ("host", "Host"),
            ("content-type", "CONTENT-TYPE"),
            ("x-a", "x-b"),
            ("ab", "abc"),
            ("k\u{e9}", "K\u{c9}"),
            ("", ""),
        ] {
            assert_eq!(name_eq(a, b), a.eq_ignore_ascii_case(b), "{a} {b}");
        }
    }

    #[test]
    fn known_fields_in_any_casing_only_by_their_whole_name() {
        for (name, known) in [
            ("Host", Known::Host),
            ("HOST", Known::Host),
            ("user-agent", Known::UserAgent),
            ("TraceState", Known::Tracestate),
            ("traceparent", Known::Traceparent),
            ("Content-Type", Known::ContentType),
            ("accept", Known::Accept),
            ("Upgrade", Known::Upgrade),
            ("Connection", Known::Connection),
            ("Transfer-Encoding", Known::TransferEncoding),
            ("content-LENGTH", Known::ContentLength),
            ("hosts", Known::Other),
            ("hast", Known::Other),
            ("xonnection", Known::Other),
            ("content_type", Known::Other),
            ("", Known::Other),
        ] {
            assert_eq!(known_field(name), known, "{name}");
        }
    }

    #[test]
    fn names_compare_as_eq_ignore_ascii_case_does() {
        let names = [
            "Content-Length",
            "content-length",
            "CONTENT-LENGTH",
            "content-lengtH",
            "content-lengti",
            "Transfer-Encoding",
            "transfer-encodinG",
            "x\u{e9}\u{c9}-abcdefgh",
            "x\u{c9}\u{e9}-ABCDEFGH",
            "@[`{@[`{",
            "`{@[`{@[",
            "ab",
        ];
        for a in names {
            for b in names {
                assert_eq!(name_eq(a, b), a.eq_ignore_ascii_case(b), "{a} {b}");
            }
        }
        for x in 0..=255u8 {
            for y in [
                b'a', b'A', b'z', b'Z', b'@', b'[', b'`', b'{', b'-', 0xC1, 0xE1,
            ] {
                let a = [x; 9];
                let b = [y; 9];
                let expect = x.eq_ignore_ascii_case(&y);
                assert_eq!(same_ignoring_case(&a, &b), expect, "{x} {y}");
            }
        }
    }

    #[test]
    fn field_values_read_as_lossy_text() {
        for v in [
            &b"bench.test"[..],
            b"caf\xc3\xa9",
            b"a\xff\xfeb",
            b"",
            b"\xe2\x82",
        ] {
            assert_eq!(field_value(v), String::from_utf8_lossy(v));
        }
    }

    #[test]
    fn strict_heads_take_the_fast_path() {
        let head =
            b"GET /a?b HTTP/1.1\r\nHost: h\r\nUser-Agent: ua\r\nContent-Length: 3\r\n\r\nabc";
        let (o, r) = req(head);
        let r = r.unwrap();
        assert_eq!(o, HeadOutcome::Complete(head.len() - 3));
        assert_eq!((&*r.method, r.target.as_str()), ("GET", "/a?b"));
        assert_eq!(
            (r.host.as_deref(), r.user_agent.as_deref()),
            (Some("h"), Some("ua"))
        );
        assert_eq!((r.body, r.content_length), (Body::Length(3), Some(3)));
        assert_eq!(r.odd, Oddities::default());
    }

    /// `keep` through [`AllowList`] keeps what comparing each name with every listed one
    /// (case-insensitively, RFC 9110 §5.1) keeps, redacting the sensitive ones.
    #[test]
    fn allow_list_keeps_what_the_list_names() {
        let names = [
            "Host",
            "host",
            "HOST",
            "User-Agent",
            "content-type",
            "Content-Length",
            "traceparent",
            "Tracestate",
            "Accept",
            "Connection",
            "Upgrade",
            "Transfer-Encoding",
            "Authorization",
            "cookie",
            "Set-Cookie",
            "X-Request-Id",
            "x-request-id",
            "Date",
            "Server",
            "ETag",
            "hos",
            "hosts",
        ];
        let lists: [&[&str]; 5] = [
            &[
                "host",
                "user-agent",
                "content-type",
                "content-length",
                "traceparent",
            ],
            &[],
            &["X-REQUEST-ID", "authorization", "Host"],
            &["connection", "date", "cookie", "set-cookie"],
            &["accept", "upgrade", "tracestate", "transfer-encoding"],
        ];
        for list in lists {
            let cfg = L7Config {
                header_allow_list: list.iter().map(|s| s.to_string()).collect(),
                ..L7Config::default()
            };
            let allow = AllowList::of(&cfg);
            for name in names {
                let h = httparse::Header { name, value: b"v" };
                let mut kept = Vec::new();
                let own = keep(&h, known_field(name), &cfg, allow, &mut kept);
                let listed = list.iter().any(|a| a.eq_ignore_ascii_case(name));
                let sensitive = SENSITIVE_HEADERS
                    .iter()
                    .any(|s| s.eq_ignore_ascii_case(name));
                let want = listed.then(|| HttpHeader {
                    key: name.to_string().into(),
                    value: if sensitive { REDACTED } else { "v" }.into(),
                });
                assert_eq!(kept.pop(), want, "{name} in {list:?}");
                assert_eq!(own, listed && !sensitive, "{name} in {list:?}");
            }
        }
    }

    #[test]
    fn sensitive_headers_are_redacted() {
        let cfg = L7Config {
            header_allow_list: vec!["authorization".into(), "host".into()],
            ..L7Config::default()
        };
        let mut h = [const { MaybeUninit::uninit() }; 16];
        let input = b"GET / HTTP/1.1\r\nHost: h\r\nAuthorization: Bearer x\r\n\r\n";
        let Some(Parsed::Request(r)) = parse_request(input, &mut h, &cfg, AllowList::of(&cfg)).1
        else {
            panic!()
        };
        assert_eq!(
            r.headers,
            vec![
                HttpHeader {
                    key: "Host".into(),
                    value: "h".into()
                },
                HttpHeader {
                    key: "Authorization".into(),
                    value: REDACTED.into()
                }
            ]
        );
    }

    #[test]
    fn rejected_heads_fall_back_to_the_lenient_parser() {
        // RFC 9110 §2.5: HTTP/1.2 is handled as 1.1.
        let (o, r) = req(b"GET /v12 HTTP/1.2\r\nHost: h\r\n\r\n");
        let r = r.unwrap();
        assert!(matches!(o, HeadOutcome::Complete(_)));
        assert_eq!((r.version, r.odd.lenient), (HttpVersion::Http11, true));
        // RFC 9112 §4: a status that is not 3 digits is no usable status; framing still holds.
        let (o, r) = resp(b"HTTP/1.1 2XX OK\r\nContent-Length: 3\r\n\r\nabc");
        let r = r.unwrap();
        assert!(matches!(o, HeadOutcome::Complete(n) if n == 38));
        assert_eq!(
            (r.status, r.body, r.odd.unusable_status),
            (None, Body::Length(3), true)
        );
    }

    #[test]
    fn persistence_follows_version_and_connection_options() {
        // RFC 9112 §9.3.
        let p = |h: &[u8]| resp(h).1.unwrap().persistent;
        assert!(p(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"));
        assert!(!p(b"HTTP/1.1 400 Bad\r\nConnection: close\r\n\r\n"));
        assert!(!p(b"HTTP/1.0 200 OK\r\n\r\n"));
        assert!(p(b"HTTP/1.0 200 OK\r\nConnection: Keep-Alive\r\n\r\n"));
    }

    #[test]
    fn over_the_cap_is_too_large_with_the_start_line() {
        let mut input = b"GET /big HTTP/1.1\r\n".to_vec();
        input.extend(std::iter::repeat_n(b"X-A: b\r\n", 4000).flatten());
        let (o, r) = req(&input);
        assert_eq!(
            o,
            HeadOutcome::TooLarge {
                too_many_headers: true
            }
        );
        assert_eq!(r.unwrap().target, "/big");
    }
}
