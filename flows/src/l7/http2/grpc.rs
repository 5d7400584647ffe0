//! gRPC over HTTP/2 (grpc/grpc doc/PROTOCOL-HTTP2.md): service and method from `:path`,
//! `grpc-status`/`grpc-message` from trailers (or a trailers-only response), `grpc-timeout`,
//! and message counts and sizes from the 5-byte Length-Prefixed-Message header, read from
//! DATA bytes as they pass without buffering messages.

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
}
