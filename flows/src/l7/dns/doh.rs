//! DNS over HTTPS bodies (RFC 8484), for the HTTP decoders to call: a request or response
//! whose `content-type` is `application/dns-message` carries one DNS message as its body
//! (POST, §4.1) or, for GET, base64url-encoded in the `dns` query parameter (§4.1, §6).
//!
//! The HTTP decoder that sees such a message captures its body with a [`BodyCapture`]
//! (bounded to one DNS message, 64 KiB) instead of skipping it, and at the end of the
//! exchange hands the query and the response to [`exchange_events`], which decodes both and
//! pairs them by the HTTP exchange: RFC 8484 §4.1 has clients send DNS ID 0 in every request,
//! so the ID cannot pair them.

use super::{parse, records, DnsEvent, DnsTransport};
use crate::counters::Counters;
use crate::l7::{L7Context, PacketCtx, StreamDir};
use crate::record::L7Type;

/// The DoH media type (RFC 8484 §6).
pub const MEDIA_TYPE: &str = "application/dns-message";

/// Largest DNS message (a 16-bit length, RFC 1035 §4.2.2): the most a capture holds.
pub const MAX_MESSAGE: usize = u16::MAX as usize;

/// True when a `content-type` value names the DoH media type. Type and subtype are
/// case-insensitive and parameters may follow (RFC 9110 §8.3.1).
pub fn is_dns_message(content_type: &str) -> bool {
    let essence = content_type.split(';').next().unwrap_or("").trim();
    essence.eq_ignore_ascii_case(MEDIA_TYPE)
}

/// The DNS query of a GET request target: the `dns` parameter, base64url without padding
/// (RFC 8484 §4.1, §6; RFC 4648 §5). `None` when there is none or it does not decode.
pub fn query_from_target(target: &str) -> Option<Vec<u8>> {
    let query = target.split_once('?')?.1;
    let query = query.split('#').next().unwrap_or(query);
    let value = query.split('&').find_map(|kv| kv.strip_prefix("dns="))?;
    base64url_decode(value).filter(|m| m.len() <= MAX_MESSAGE)
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

/// The body of one DoH message, captured as it passes (at most [`MAX_MESSAGE`] bytes).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct BodyCapture {
    buf: Vec<u8>,
    /// Bytes were lost (a capture gap) or the body was longer than a DNS message.
    broken: bool,
}

impl BodyCapture {
    /// An empty capture.
    pub fn new() -> Self {
        Self::default()
    }

    /// The next body bytes (after any transfer coding is removed).
    pub fn push(&mut self, bytes: &[u8]) {
        if self.broken {
            return;
        }
        if self.buf.len() + bytes.len() > MAX_MESSAGE {
            self.broken = true;
            self.buf = Vec::new();
        } else {
            self.buf.extend_from_slice(bytes);
        }
    }

    /// Body bytes were lost: the message cannot be decoded.
    pub fn gap(&mut self) {
        self.broken = true;
        self.buf = Vec::new();
    }

    /// Bytes held.
    pub fn buffered(&self) -> usize {
        self.buf.len()
    }

    /// The whole message, or `None` (counted) when the body was cut or too long.
    pub fn message(&self, counters: &mut Counters) -> Option<&[u8]> {
        if self.broken {
            counters.dns_doh_bodies_incomplete += 1;
            None
        } else {
            Some(&self.buf)
        }
    }
}

/// The DNS events of one DoH exchange: the query (`None`: not seen, or not decodable) sent
/// at its `PacketCtx`, and the response. The response is paired with the query by the
/// exchange, whatever their IDs.
pub fn exchange_events(
    query: Option<(&[u8], &PacketCtx)>,
    response: Option<(&[u8], &PacketCtx)>,
    cx: &mut L7Context<'_>,
) -> Vec<DnsEvent> {
    let mut out = Vec::new();
    let mut query_at = None;
    for (msg, at, dir) in [
        query.map(|(m, at)| (m, at, StreamDir::ToServer)),
        response.map(|(m, at)| (m, at, StreamDir::ToClient)),
    ]
    .into_iter()
    .flatten()
    {
        let Ok(m) = parse(msg) else {
            cx.counters.dns_parse_errors += 1;
            continue;
        };
        let mut info = records::info(&m);
        let (kind, latency_ns) = if dir == StreamDir::ToServer {
            cx.counters.dns_queries += 1;
            query_at = Some(at.ts_ns);
            (L7Type::Request, None)
        } else {
            cx.counters.dns_responses += 1;
            if m.truncated {
                cx.counters.dns_truncated_responses += 1;
            }
            let latency = query_at.map(|q| at.ts_ns.saturating_sub(q));
            if latency.is_none() {
                cx.counters.dns_unmatched_responses += 1;
            }
            info.response_only = latency.is_none();
            (L7Type::Response, latency)
        };
        out.push(DnsEvent {
            dir,
            transport: DnsTransport::Https,
            at: *at,
            kind,
            latency_ns,
            info,
            message_bytes: msg.len() as u64,
        });
    }
    out
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
        assert_eq!(c.dns_doh_bodies_incomplete, 2);
    }

    #[test]
    fn the_exchange_pairs_query_and_answer_whatever_the_ids() {
        let config = L7Config::default();
        let mut ids = IdGenerator::new(0);
        let mut counters = Counters::default();
        let mut cx = L7Context {
            counters: &mut counters,
            ids: &mut ids,
            config: &config,
        };
        let q = build::query(0, "doh.example.", 1);
        let r = build::a_response(0, "doh.example.", 0, &[[192, 0, 2, 53]], 60);
        let at = |ts_ns| PacketCtx {
            ts_ns,
            ..Default::default()
        };
        let evs = exchange_events(Some((&q, &at(10))), Some((&r, &at(250))), &mut cx);
        assert_eq!(evs.len(), 2);
        assert_eq!(
            (evs[1].latency_ns, evs[1].info.response_only),
            (Some(240), false)
        );
        assert_eq!(evs[1].transport, DnsTransport::Https);
        let alone = exchange_events(None, Some((&r, &at(5))), &mut cx);
        assert!(alone[0].info.response_only);
        assert!(exchange_events(Some((&[1, 2][..], &at(1))), None, &mut cx).is_empty());
        assert_eq!(counters.dns_parse_errors, 1);
    }
}
