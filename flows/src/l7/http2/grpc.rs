//! gRPC over HTTP/2 (grpc/grpc doc/PROTOCOL-HTTP2.md): service and method from `:path`,
//! `grpc-status`/`grpc-message` from trailers (or a trailers-only response), `grpc-timeout`,
//! and message counts and sizes from the 5-byte Length-Prefixed-Message header, read from
//! DATA bytes as they pass without buffering messages.

use crate::record::GrpcStatusSource;

/// A checked view of the Length-Prefixed-Message header:
///
/// ```text
/// Compressed-Flag (8) | Message-Length (32, big endian)
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MessagePrefix<'a>(&'a [u8; MessagePrefix::LEN]);

mod field {
    use std::ops::Range;
    pub const COMPRESSED: usize = 0;
    pub const LENGTH: Range<usize> = 1..5;
}

impl<'a> MessagePrefix<'a> {
    /// Header length.
    pub const LEN: usize = 5;

    /// A view over the first five bytes of `b`.
    pub fn new(b: &'a [u8]) -> Option<Self> {
        b.first_chunk::<5>().map(MessagePrefix)
    }

    /// The Compressed-Flag: 1 when the message uses the `grpc-encoding` (0 and 1 are the only
    /// defined values).
    pub fn compressed(&self) -> bool {
        self.0[field::COMPRESSED] != 0
    }

    /// Whether the flag is a defined value.
    pub fn flag_valid(&self) -> bool {
        self.0[field::COMPRESSED] <= 1
    }

    /// Message length in bytes.
    pub fn len(&self) -> u32 {
        let l = &self.0[field::LENGTH];
        u32::from_be_bytes([l[0], l[1], l[2], l[3]])
    }

    /// True for an empty message.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Message counts of one direction of a call.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MessageStats {
    /// Messages whose prefix was seen.
    pub messages: u64,
    /// Sum of their Message-Length fields.
    pub bytes: u64,
    /// Messages with the Compressed-Flag set.
    pub compressed: u64,
}

/// Reads Length-Prefixed-Message framing out of a stream's DATA bytes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MessageReader {
    /// Prefix bytes gathered so far (a prefix may span DATA frames).
    prefix: [u8; MessagePrefix::LEN],
    got: u8,
    /// Message bytes still to skip.
    remaining: u64,
    /// Counts so far.
    pub stats: MessageStats,
    /// Framing was lost (a capture gap inside DATA, or a flag that is not 0/1): counts are
    /// lower bounds and no more are read.
    pub lost: bool,
}

impl MessageReader {
    /// Feeds DATA bytes.
    pub fn feed(&mut self, mut data: &[u8]) {
        while !data.is_empty() && !self.lost {
            if self.remaining > 0 {
                let take = self.remaining.min(data.len() as u64);
                self.remaining -= take;
                data = &data[take as usize..];
                continue;
            }
            let need = MessagePrefix::LEN - usize::from(self.got);
            let take = need.min(data.len());
            self.prefix[usize::from(self.got)..][..take].copy_from_slice(&data[..take]);
            self.got += take as u8;
            data = &data[take..];
            if usize::from(self.got) == MessagePrefix::LEN {
                let p = MessagePrefix(&self.prefix);
                if !p.flag_valid() {
                    self.lost = true;
                    return;
                }
                self.stats.messages += 1;
                self.stats.bytes += u64::from(p.len());
                self.stats.compressed += u64::from(p.compressed());
                self.remaining = u64::from(p.len());
                self.got = 0;
            }
        }
    }

    /// DATA bytes were lost.
    pub fn gap(&mut self) {
        self.lost = true;
    }
}

/// `(service, method)` from a gRPC `:path` of the form `/package.Service/Method`.
pub fn split_path(path: &str) -> Option<(&str, &str)> {
    let (service, method) = path.strip_prefix('/')?.split_once('/')?;
    (!service.is_empty() && !method.is_empty() && !method.contains('/'))
        .then_some((service, method))
}

/// Whether a `content-type` says gRPC (`application/grpc` or `application/grpc+proto`, ...).
pub fn is_grpc_content_type(ct: &str) -> bool {
    ct.strip_prefix("application/grpc")
        .is_some_and(|rest| rest.is_empty() || rest.starts_with('+') || rest.starts_with(';'))
}

/// `grpc-timeout` in nanoseconds: `TimeoutValue TimeoutUnit`, at most 8 digits, unit one of
/// H M S m u n.
pub fn parse_timeout(v: &str) -> Option<u64> {
    let v = v.trim();
    let (digits, unit) = v.split_at(v.len().checked_sub(1)?);
    if digits.is_empty() || digits.len() > 8 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let n: u64 = digits.parse().ok()?;
    let per = match unit {
        "H" => 3_600_000_000_000,
        "M" => 60_000_000_000,
        "S" => 1_000_000_000,
        "m" => 1_000_000,
        "u" => 1_000,
        "n" => 1,
        _ => return None,
    };
    n.checked_mul(per)
}

/// `grpc-message` is percent-encoded (PROTOCOL-HTTP2.md: "Percent-Encoded"); decodes it,
/// leaving malformed escapes as they are.
pub fn decode_message(v: &str) -> String {
    let b = v.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' && i + 2 < b.len() {
            let hex = |c: u8| (c as char).to_digit(16);
            if let (Some(h), Some(l)) = (hex(b[i + 1]), hex(b[i + 2])) {
                out.push((h * 16 + l) as u8);
                i += 3;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The gRPC status for a response that carries no `grpc-status`, from its HTTP status, as
/// gRPC clients map it (grpc/grpc doc/http-grpc-status-mapping.md): such a response did not
/// come from a gRPC server (a proxy or load balancer answered), so the HTTP status is all
/// there is.
pub fn status_from_http(status: u16) -> u32 {
    match status {
        400 => 13,                   // INTERNAL
        401 => 16,                   // UNAUTHENTICATED
        403 => 7,                    // PERMISSION_DENIED
        404 => 12,                   // UNIMPLEMENTED
        429 | 502 | 503 | 504 => 14, // UNAVAILABLE
        _ => 2,                      // UNKNOWN
    }
}

/// What the server's field blocks told about a call's outcome.
#[derive(Debug, Clone, Copy, Default)]
pub struct StatusEvidence<'a> {
    /// `grpc-status`, when decoded.
    pub grpc_status: Option<u32>,
    /// `grpc-message`, percent-decoded, when decoded.
    pub message: Option<&'a str>,
    /// The final `:status`, when decoded.
    pub http_status: Option<u16>,
    /// A server field block of the stream had fields we could not decode (HPACK entries from
    /// before the capture) or was lost: `grpc-status` may have been among them.
    pub fields_unknown: bool,
    /// The server ended the stream (END_STREAM): no `grpc-status` is still to come.
    pub response_ended: bool,
}

/// The call's gRPC status, and how it was learned; `None` when it cannot be known.
///
/// - `grpc-status` as sent (PROTOCOL-HTTP2.md: in the trailers or a Trailers-Only response).
/// - Undecodable fields may hide the `grpc-status`: never guess, least of all OK. A
///   non-empty `grpc-message` only comes with a failure, so the call failed: UNKNOWN,
///   inferred. Otherwise the status stays unknown.
/// - All fields decoded and no `grpc-status`: a non-200 HTTP status maps by gRPC's
///   HTTP-to-status table (derived); else a non-empty `grpc-message` means UNKNOWN
///   (inferred); else a 200 whose stream ended without `grpc-status` is UNKNOWN, as gRPC
///   clients report it ("missing grpc-status", derived).
pub fn call_status(e: &StatusEvidence<'_>) -> Option<(u32, GrpcStatusSource)> {
    if let Some(code) = e.grpc_status {
        return Some((code, GrpcStatusSource::Trailers));
    }
    let failure_message = e.message.is_some_and(|m| !m.is_empty());
    if e.fields_unknown {
        return failure_message.then_some((2, GrpcStatusSource::InferredFromMessage));
    }
    match e.http_status {
        Some(s) if s != 200 => Some((status_from_http(s), GrpcStatusSource::DerivedFromHttpStatus)),
        _ if failure_message => Some((2, GrpcStatusSource::InferredFromMessage)),
        Some(_) if e.response_ended => Some((2, GrpcStatusSource::DerivedFromHttpStatus)),
        _ => None,
    }
}

/// gRPC status code names (grpc/grpc doc/statuscodes.md).
pub fn status_name(code: u32) -> &'static str {
    match code {
        0 => "OK",
        1 => "CANCELLED",
        2 => "UNKNOWN",
        3 => "INVALID_ARGUMENT",
        4 => "DEADLINE_EXCEEDED",
        5 => "NOT_FOUND",
        6 => "ALREADY_EXISTS",
        7 => "PERMISSION_DENIED",
        8 => "RESOURCE_EXHAUSTED",
        9 => "FAILED_PRECONDITION",
        10 => "ABORTED",
        11 => "OUT_OF_RANGE",
        12 => "UNIMPLEMENTED",
        13 => "INTERNAL",
        14 => "UNAVAILABLE",
        15 => "DATA_LOSS",
        16 => "UNAUTHENTICATED",
        _ => "UNKNOWN_CODE",
    }
}

/// OTel RPC semconv (gRPC): a SERVER span is an error only for UNKNOWN, DEADLINE_EXCEEDED,
/// UNIMPLEMENTED, INTERNAL, UNAVAILABLE and DATA_LOSS; a CLIENT span for any non-OK code.
pub fn is_error(code: u32, server: bool) -> bool {
    if server {
        matches!(code, 2 | 4 | 12 | 13 | 14 | 15)
    } else {
        code != 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefix_view() {
        let p = MessagePrefix::new(&[1, 0, 0, 1, 0, 9]).unwrap();
        assert!(p.compressed() && p.flag_valid());
        assert_eq!(p.len(), 256);
        assert!(MessagePrefix::new(&[0, 0, 0]).is_none());
    }

    #[test]
    fn reader_counts_messages_across_any_split() {
        let mut bytes = vec![0, 0, 0, 0, 3, b'a', b'b', b'c', 1, 0, 0, 0, 0];
        bytes.extend([0, 0, 0, 0, 2, b'x', b'y']);
        for cut in 0..bytes.len() {
            let mut r = MessageReader::default();
            r.feed(&bytes[..cut]);
            r.feed(&bytes[cut..]);
            assert_eq!(
                r.stats,
                MessageStats {
                    messages: 3,
                    bytes: 5,
                    compressed: 1
                }
            );
        }
        let mut r = MessageReader::default();
        r.feed(&[7, 0, 0, 0, 0]);
        assert!(r.lost);
    }

    #[test]
    fn paths_timeouts_messages() {
        assert_eq!(
            split_path("/helloworld.Greeter/SayHello"),
            Some(("helloworld.Greeter", "SayHello"))
        );
        assert_eq!(split_path("/a/b/c"), None);
        assert_eq!(split_path("/"), None);
        assert!(is_grpc_content_type("application/grpc"));
        assert!(is_grpc_content_type("application/grpc+proto"));
        assert!(!is_grpc_content_type("application/grpc-web"));
        assert_eq!(parse_timeout("100m"), Some(100_000_000));
        assert_eq!(parse_timeout("2S"), Some(2_000_000_000));
        assert_eq!(parse_timeout("123456789S"), None);
        assert_eq!(parse_timeout("1x"), None);
        assert_eq!(decode_message("not%20found%zz"), "not found%zz");
        assert!(is_error(14, true) && !is_error(5, true) && is_error(5, false));
    }

    #[test]
    fn http_status_maps_by_grpc_table() {
        // grpc/grpc doc/http-grpc-status-mapping.md.
        let table = [
            (400, 13),
            (401, 16),
            (403, 7),
            (404, 12),
            (429, 14),
            (502, 14),
            (503, 14),
            (504, 14),
            (500, 2),
            (418, 2),
        ];
        for (http, grpc) in table {
            assert_eq!(status_from_http(http), grpc, "HTTP {http}");
        }
    }

    #[test]
    fn sent_status_wins_over_everything() {
        let e = StatusEvidence {
            grpc_status: Some(5),
            message: Some("gone"),
            http_status: Some(503),
            fields_unknown: true,
            response_ended: true,
        };
        assert_eq!(call_status(&e), Some((5, GrpcStatusSource::Trailers)));
    }

    #[test]
    fn no_grpc_status_derives_from_http_status() {
        let e = StatusEvidence {
            http_status: Some(503),
            ..Default::default()
        };
        assert_eq!(
            call_status(&e),
            Some((14, GrpcStatusSource::DerivedFromHttpStatus))
        );
        // A 200 without grpc-status: UNKNOWN once the stream ended, else still to come.
        let mut e = StatusEvidence {
            http_status: Some(200),
            ..Default::default()
        };
        assert_eq!(call_status(&e), None);
        e.response_ended = true;
        assert_eq!(
            call_status(&e),
            Some((2, GrpcStatusSource::DerivedFromHttpStatus))
        );
    }

    #[test]
    fn undecodable_status_is_never_ok_and_a_message_means_failure() {
        // The grpc-status may be among the unknown fields: the HTTP status says nothing.
        let mut e = StatusEvidence {
            http_status: Some(200),
            fields_unknown: true,
            response_ended: true,
            ..Default::default()
        };
        assert_eq!(call_status(&e), None);
        e.message = Some("");
        assert_eq!(call_status(&e), None);
        e.message = Some("no such ghost");
        assert_eq!(
            call_status(&e),
            Some((2, GrpcStatusSource::InferredFromMessage))
        );
    }

    #[test]
    fn a_failure_message_without_status_is_unknown_even_when_all_fields_decoded() {
        // Trailers seen without the response head (joined mid-way): no HTTP status to map.
        let e = StatusEvidence {
            message: Some("deadline"),
            ..Default::default()
        };
        assert_eq!(
            call_status(&e),
            Some((2, GrpcStatusSource::InferredFromMessage))
        );
        // A non-200 status still maps by the table.
        let e = StatusEvidence {
            message: Some("bad gateway"),
            http_status: Some(502),
            ..Default::default()
        };
        assert_eq!(
            call_status(&e),
            Some((14, GrpcStatusSource::DerivedFromHttpStatus))
        );
    }
}
