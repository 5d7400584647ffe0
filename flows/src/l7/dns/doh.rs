//! DNS over HTTPS (RFC 8484), for the HTTP decoders to call: a request or response whose
//! `content-type` is `application/dns-message` carries one DNS message as its body (POST and
//! responses, §4.1, §4.2), and a GET request carries its query base64url-encoded in the `dns`
//! query parameter (§4.1, §6). Seen in cleartext (HTTP/1 or h2c), such an exchange is
//! reported as the HTTP exchange it is and, besides, as DNS flows.
//!
//! An HTTP decoder that sees such a message captures its body with a [`BodyCapture`]
//! (bounded to one DNS message, 64 KiB) instead of skipping it — and only then: other bodies
//! cost nothing. When the body ends it hands the capture to [`body_event`]. The answer is
//! paired with its query by the HTTP exchange (the decoder passes the query's time), never by
//! ID: RFC 8484 §4.1 has clients send ID 0 in every request.

use super::message::DnsMessage;
use super::{parse, records, DnsEvent, DnsTransport};
use crate::counters::Counters;
use crate::l7::{L7Context, PacketCtx, StreamDir};
use crate::record::L7Type;

/// The DoH media type (RFC 8484 §6).
pub const MEDIA_TYPE: &str = "application/dns-message";

/// Largest DNS message (a 16-bit length, RFC 1035 §4.2.2): the most a capture holds.
pub const MAX_MESSAGE: usize = u16::MAX as usize;

/// True when a `content-type` value (text or the raw field bytes) names the DoH media type.
/// Type and subtype are case-insensitive and parameters may follow (RFC 9110 §8.3.1).
/// Compared as bytes: HTTP/1 hands raw field values, and this runs on every message's
/// content type, so no UTF-8 check first (parameters may carry obs-text, RFC 9110 §5.5).
pub fn is_dns_message<T: AsRef<[u8]> + ?Sized>(content_type: &T) -> bool {
    let value = content_type.as_ref();
    let essence = value.split(|&b| b == b';').next().unwrap_or_default();
    essence
        .trim_ascii()
        .eq_ignore_ascii_case(MEDIA_TYPE.as_bytes())
}

/// True when an `Accept` value lists the DoH media type (RFC 9110 §12.5.1: a list of media
/// ranges with parameters; RFC 8484 §4.1 says DoH clients should send it).
pub fn accepts_dns_message<T: AsRef<[u8]> + ?Sized>(accept: &T) -> bool {
    accept.as_ref().split(|&b| b == b',').any(is_dns_message)
}

/// The `dns` parameter of a request target's query (RFC 8484 §4.1, §6), undecoded.
///
/// Runs on every GET's target: one byte scan, nothing more when there is no query (RFC 3986
/// §3.4: the query follows the first `?` and ends at `#`; pairs are `&`-separated).
pub fn dns_parameter(target: &str) -> Option<&str> {
    let bytes = target.as_bytes();
    let q = bytes.iter().position(|&b| b == b'?')? + 1;
    let end = bytes[q..]
        .iter()
        .position(|&b| b == b'#')
        .map_or(bytes.len(), |i| q + i);
    let mut pair = q;
    while pair <= end {
        let pair_end = bytes[pair..end]
            .iter()
            .position(|&b| b == b'&')
            .map_or(end, |i| pair + i);
        if bytes[pair..pair_end].starts_with(b"dns=") {
            // `?`, `#`, `&` and `=` are ASCII: every index here is a char boundary.
            return Some(&target[pair + 4..pair_end]);
        }
        pair = pair_end + 1;
    }
    None
}

/// The DNS query of a GET request target: the `dns` parameter, base64url without padding
/// (RFC 8484 §4.1, §6; RFC 4648 §5). `None` when there is none or it does not decode.
pub fn query_from_target(target: &str) -> Option<Vec<u8>> {
    base64url_decode(dns_parameter(target)?).filter(|m| m.len() <= MAX_MESSAGE)
}

/// Decodes base64url (RFC 4648 §5), tolerating the padding RFC 8484 §6 says to leave out.
fn base64url_decode(s: &str) -> Option<Vec<u8>> {
    let s = s.trim_end_matches('=');
    if s.len() % 4 == 1 {
        return None;
    }
    let mut out = Vec::with_capacity(s.len() * 3 / 4);
    let (mut acc, mut bits) = (0u32, 0u32);
    for c in s.bytes() {
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'-' => 62,
            b'_' => 63,
            _ => return None,
        };
        acc = acc << 6 | u32::from(v);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    Some(out)
}

/// Why a captured body cannot be decoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Spoiled {
    /// Bytes were lost (a capture gap) or the body was cut by the connection's end.
    Cut,
    /// Longer than a DNS message can be.
    TooLong,
    /// The connection's memory budget for stream state was spent.
    OverMemoryCap,
}

/// The body of one DoH message, captured as it passes (at most [`MAX_MESSAGE`] bytes).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct BodyCapture {
    buf: Vec<u8>,
    spoiled: Option<Spoiled>,
}

impl BodyCapture {
    /// An empty capture.
    pub fn new() -> Self {
        Self::default()
    }

    /// The next body bytes (after any transfer coding is removed).
    pub fn push(&mut self, bytes: &[u8]) {
        if self.spoiled.is_some() {
            return;
        }
        if self.buf.len() + bytes.len() > MAX_MESSAGE {
            self.spoil(Spoiled::TooLong);
        } else {
            self.buf.extend_from_slice(bytes);
        }
    }

    /// Body bytes were lost, or the body ended before its framing said: the message cannot
    /// be decoded.
    pub fn gap(&mut self) {
        self.spoil(Spoiled::Cut);
    }

    /// The bytes may not be held (the connection's budget is spent): give up on them.
    pub fn over_memory_cap(&mut self) {
        self.spoil(Spoiled::OverMemoryCap);
    }

    fn spoil(&mut self, why: Spoiled) {
        if self.spoiled.is_none() {
            self.spoiled = Some(why);
        }
        self.buf = Vec::new();
    }

    /// Bytes held.
    pub fn buffered(&self) -> usize {
        self.buf.len()
    }

    /// The whole message, or `None` (counted by reason) when the body was cut or too long.
    pub fn message(&self, counters: &mut Counters) -> Option<&[u8]> {
        match self.spoiled {
            None => return Some(&self.buf),
            Some(Spoiled::Cut) => counters.dns_doh_bodies_incomplete += 1,
            Some(Spoiled::TooLong) => counters.dns_doh_bodies_too_long += 1,
            Some(Spoiled::OverMemoryCap) => counters.dns_doh_bodies_over_memory_cap += 1,
        }
        None
    }
}

/// The DNS event of a DoH body that ended (whole or not) in direction `dir` at `at`.
/// `query_ns` is when the exchange's query was seen, for a response's latency; without it
/// the response is marked response-only. Malformed messages are counted and yield nothing.
pub fn body_event(
    body: &BodyCapture,
    dir: StreamDir,
    at: &PacketCtx,
    query_ns: Option<u64>,
    cx: &mut L7Context<'_>,
) -> Option<DnsEvent> {
    let msg = body.message(cx.counters)?;
    let Ok(m) = parse(msg) else {
        cx.counters.dns_doh_malformed_messages += 1;
        return None;
    };
    Some(event(&m, msg.len(), dir, at, query_ns, cx))
}

/// The DNS query of a GET request whose target is `target` (RFC 8484 §4.1), seen at `at`.
/// A `dns` parameter is DoH when it decodes to a DNS query, or when the request said it
/// accepts `application/dns-message` (`accepts_dns`); only then is one that does not decode
/// counted as malformed (other sites may name a parameter `dns`).
pub fn get_query_event(
    target: &str,
    accepts_dns: bool,
    at: &PacketCtx,
    cx: &mut L7Context<'_>,
) -> Option<DnsEvent> {
    let msg = dns_parameter(target)
        .and_then(base64url_decode)
        .filter(|m| m.len() <= MAX_MESSAGE);
    match msg.as_deref().map(parse) {
        Some(Ok(m)) if !m.is_response => {
            let len = msg.as_ref().map_or(0, Vec::len);
            Some(event(&m, len, StreamDir::ToServer, at, None, cx))
        }
        _ => {
            if accepts_dns {
                cx.counters.dns_doh_malformed_messages += 1;
            }
            None
        }
    }
}

/// The event of DoH message `m` (`len` bytes). Query or response is the message's QR bit,
/// as for the other carriers.
fn event(
    m: &DnsMessage,
    len: usize,
    dir: StreamDir,
    at: &PacketCtx,
    query_ns: Option<u64>,
    cx: &mut L7Context<'_>,
) -> DnsEvent {
    cx.counters.dns_doh_messages += 1;
    let mut info = records::info(m);
    let (kind, latency_ns) = if m.is_response {
        cx.counters.dns_responses += 1;
        if m.truncated {
            cx.counters.dns_truncated_responses += 1;
        }
        let latency = query_ns.map(|q| at.ts_ns.saturating_sub(q));
        if latency.is_none() {
            cx.counters.dns_unmatched_responses += 1;
        }
        info.response_only = latency.is_none();
        (L7Type::Response, latency)
    } else {
        cx.counters.dns_queries += 1;
        (L7Type::Request, None)
    };
    DnsEvent {
        dir,
        transport: DnsTransport::Https,
        at: *at,
        kind,
        latency_ns,
        info,
        message_bytes: len as u64,
    }
}

#[cfg(test)]
mod tests {
    use super::super::message::build;
    use super::*;
    use crate::l7::L7Config;
    use crate::trace::IdGenerator;

    #[test]
    fn media_type_matching() {
        assert!(is_dns_message("application/dns-message"));
        assert!(is_dns_message("Application/DNS-Message ; charset=binary"));
        assert!(!is_dns_message("application/dns-json"));
        assert!(!is_dns_message("application/dns-message-x"));
    }

    #[test]
    fn get_queries_decode_from_base64url() {
        // RFC 8484 §4.1.1's example: www.example.com A, ID 0, RD.
        let target = "/dns-query?dns=AAABAAABAAAAAAAAA3d3dwdleGFtcGxlA2NvbQAAAQAB";
        let q = query_from_target(target).unwrap();
        let m = parse(&q).unwrap();
        assert_eq!(
            (m.id, m.questions[0].name.as_str()),
            (0, "www.example.com.")
        );
        assert_eq!(
            query_from_target("/dns-query?ct&dns=AAAB"),
            Some(vec![0, 0, 1])
        );
        assert_eq!(query_from_target("/dns-query"), None);
        assert_eq!(
            query_from_target("/q?dns=A"),
            None,
            "one base64 digit is no byte"
        );
        assert_eq!(query_from_target("/q?dns=AA*A"), None);
    }

    #[test]
    fn the_dns_parameter_is_a_whole_pair_of_the_query() {
        // RFC 3986 §3.4, §3.5: the query runs from the first `?` to `#`; RFC 8484 §4.1.
        assert_eq!(dns_parameter("/q?x=1&dns=abc&dns=def"), Some("abc"));
        assert_eq!(dns_parameter("/q?&&dns=z"), Some("z"));
        assert_eq!(dns_parameter("/q?dns="), Some(""));
        assert_eq!(dns_parameter("/q?dns=a#dns=b"), Some("a"));
        assert_eq!(dns_parameter("/q?a=1#dns=2"), None);
        assert_eq!(dns_parameter("/q?xdns=1"), None);
        assert_eq!(dns_parameter("/q?"), None);
        assert_eq!(dns_parameter("/dns=1"), None);
        assert_eq!(dns_parameter("/é?dns=ü"), Some("ü"));
    }

    #[test]
    fn accept_lists_name_the_media_type() {
        assert!(accepts_dns_message("application/dns-message"));
        assert!(accepts_dns_message(
            "text/html, application/dns-message;q=0.9"
        ));
        assert!(!accepts_dns_message("*/*"));
    }

    #[test]
    fn bodies_are_bounded_and_gaps_spoil_them() {
        let mut c = Counters::default();
        let mut b = BodyCapture::new();
        b.push(&[1, 2]);
        b.push(&[3]);
        assert_eq!(b.message(&mut c), Some(&[1u8, 2, 3][..]));
        b.push(&vec![0; MAX_MESSAGE]);
        assert_eq!((b.message(&mut c), b.buffered()), (None, 0));
        let mut g = BodyCapture::new();
        g.push(&[1]);
        g.gap();
        assert_eq!(g.message(&mut c), None);
        let mut m = BodyCapture::new();
        m.push(&[1]);
        m.over_memory_cap();
        m.push(&[2]);
        assert_eq!((m.message(&mut c), m.buffered()), (None, 0));
        assert_eq!(
            (
                c.dns_doh_bodies_too_long,
                c.dns_doh_bodies_incomplete,
                c.dns_doh_bodies_over_memory_cap
            ),
            (1, 1, 1)
        );
    }

    fn context<'a>(
        counters: &'a mut Counters,
        ids: &'a mut IdGenerator,
        config: &'a L7Config,
    ) -> L7Context<'a> {
        L7Context {
            counters,
            ids,
            config,
        }
    }

    fn at(ts_ns: u64) -> PacketCtx {
        PacketCtx {
            ts_ns,
            ..Default::default()
        }
    }

    fn captured(bytes: &[u8]) -> BodyCapture {
        let mut b = BodyCapture::new();
        b.push(bytes);
        b
    }

    #[test]
    fn the_exchange_pairs_query_and_answer_whatever_the_ids() {
        let config = L7Config::default();
        let mut ids = IdGenerator::new(0);
        let mut counters = Counters::default();
        let mut cx = context(&mut counters, &mut ids, &config);
        // RFC 8484 §4.1: ID 0 in the query; the answer echoes it, and says nothing else.
        let q = build::query(0, "doh.example.", 1);
        let r = build::a_response(0, "doh.example.", 0, &[[192, 0, 2, 53]], 60);
        let qe = body_event(&captured(&q), StreamDir::ToServer, &at(10), None, &mut cx).unwrap();
        assert_eq!(
            (qe.kind, qe.transport),
            (L7Type::Request, DnsTransport::Https)
        );
        let re = body_event(
            &captured(&r),
            StreamDir::ToClient,
            &at(250),
            Some(10),
            &mut cx,
        );
        let re = re.unwrap();
        assert_eq!((re.latency_ns, re.info.response_only), (Some(240), false));
        let alone = body_event(&captured(&r), StreamDir::ToClient, &at(5), None, &mut cx);
        assert!(alone.unwrap().info.response_only);
        assert!(body_event(
            &captured(&[1, 2]),
            StreamDir::ToServer,
            &at(1),
            None,
            &mut cx
        )
        .is_none());
        assert_eq!(
            (
                counters.dns_doh_malformed_messages,
                counters.dns_doh_messages
            ),
            (1, 3)
        );
        assert_eq!(counters.dns_unmatched_responses, 1);
    }

    #[test]
    fn get_parameters_are_doh_when_they_decode_or_the_client_accepts_it() {
        let config = L7Config::default();
        let mut ids = IdGenerator::new(0);
        let mut counters = Counters::default();
        let mut cx = context(&mut counters, &mut ids, &config);
        let target = "/dns-query?dns=AAABAAABAAAAAAAAA3d3dwdleGFtcGxlA2NvbQAAAQAB";
        let ev = get_query_event(target, false, &at(7), &mut cx).unwrap();
        assert_eq!(
            (ev.kind, ev.info.query.as_str()),
            (L7Type::Request, "www.example.com.")
        );
        assert_eq!((ev.dir, ev.message_bytes), (StreamDir::ToServer, 33));
        // Another site's `dns` parameter is not DoH, and not an error either.
        assert!(get_query_event("/lookup?dns=example.com", false, &at(8), &mut cx).is_none());
        assert_eq!(cx.counters.dns_doh_malformed_messages, 0);
        // A DoH client (Accept: application/dns-message) with a broken parameter is counted.
        assert!(get_query_event("/dns-query?dns=AAAB", true, &at(9), &mut cx).is_none());
        assert!(get_query_event("/dns-query", true, &at(9), &mut cx).is_none());
        assert_eq!(counters.dns_doh_malformed_messages, 2);
    }
}
